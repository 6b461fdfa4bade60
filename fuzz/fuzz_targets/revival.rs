//! Fuzz target: a whole revival of a real handover that the input damages
//! word by word. The first part of the input drives the old kernel
//! (`KhoOut`: folios, a vmalloc area, a reserve_mem region, subtrees,
//! kexec-metadata); the rest overwrites whole 64-bit words of RAM with
//! values chosen to hurt (other nodes' and blocks' addresses, the root,
//! misaligned and out-of-RAM addresses, all ones), so the radix tree can
//! grow cycles, shared nodes and redirections, not just bad bytes (kho-v1's
//! chunk list and bitmaps alike: every ABI version is driven). Then the
//! new kernel runs everything a revival runs: `populate`, the reserving
//! walk, `kexec-metadata`, memblock from memory, the vmalloc restore, every
//! folio's restore and the list of what is left. Every step must give a
//! value or a named error: never a panic (overflow checks are on), a hang
//! or unbounded memory.
#![no_main]

#[path = "common.rs"]
mod common;

use kho::{KhoIn, KhoOut};
use kho_abi::AbiVersion;
use kho_abi::v1::BitmapSize;
use kho_mem::{Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::ScratchAreas;
use libfuzzer_sys::fuzz_target;

/// The last 4 pages of the arena are scratch; the old kernel allocates
/// below them.
const SCRATCH_PAGES: u64 = 4;

fuzz_target!(|data: &[u8]| {
    let Some((&ops_len, rest)) = data.split_first() else {
        return;
    };
    let (ops, damage) = rest.split_at((usize::from(ops_len) * 2).min(rest.len()));
    let mut mem = common::arena(&[]);
    let scratch_at = common::BASE + common::RAM - SCRATCH_PAGES * 4096;
    let Ok(scratch) = PhysRange::try_new(PhysAddr::new(scratch_at), SCRATCH_PAGES * 4096) else {
        return;
    };
    let _ = mem.reserve(scratch);
    let Ok(areas) = ScratchAreas::from_ranges(&[scratch]) else {
        return;
    };
    let version = AbiVersion::ALL[usize::from(ops_len) % AbiVersion::ALL.len()];
    let Ok(mut out) = KhoOut::new(&mut mem, version) else {
        return;
    };
    out.exclude_scratch(&areas);

    // The old kernel: 2 bytes an operation.
    let mut folios: Vec<(PhysAddr, Order)> = Vec::new();
    let mut vmalloc_pages: Vec<PhysAddr> = Vec::new();
    for (i, op) in ops.chunks_exact(2).enumerate() {
        match op[0] % 6 {
            0 | 1 => {
                let Ok(order) = Order::try_new(u32::from(op[1] % 4)) else {
                    continue;
                };
                if let Ok(p) = mem.alloc_pages(order)
                    && out.preserve_folio(&mut mem, p, order).is_ok()
                {
                    folios.push((p, order));
                }
            }
            2 => {
                if let Ok(p) = mem.alloc_page() {
                    vmalloc_pages.push(p);
                }
            }
            3 => {
                if let Ok(p) = mem.alloc_page() {
                    let name = format!("client-{i}");
                    let _ = out.preserve_folio(&mut mem, p, Order::ZERO);
                    let _ = out.add_subtree(&mut mem, &name, p, Some(u64::from(op[1]) + 1));
                }
            }
            4 => {
                if let Ok(p) = mem.alloc_page()
                    && let Ok(region) = kho_memblock::Region::new("kho_log", p, 4096)
                {
                    let _ = out.preserve_memblock(&mut mem, &[region]);
                }
            }
            _ => {
                let _ = out.add_kexec_metadata(&mut mem, u32::from(op[1]), "fuzz");
            }
        }
    }
    let desc = out
        .preserve_vmalloc(&mut mem, vmalloc_pages.iter().copied(), Order::ZERO, 1)
        .ok();
    // kho-v1 publishes its FDT (and chunk list) at finalize; a no-op after.
    if out.finalize(&mut mem).is_err() {
        return;
    }
    let Ok(array) = areas.write_array(&mut mem, scratch.start()) else {
        return;
    };
    let handover = out.handover(array);

    // Word-granular damage: 3 bytes a hit (word index, value kind).
    let fdt = out.fdt().as_u64();
    // The radix root, or kho-v1's first chunk (named only by the FDT).
    let root = match out.tree() {
        Some(tree) => tree.root().as_u64(),
        None => common::memory_map(&mem, out.fdt()).unwrap_or(fdt),
    };
    let targets: Vec<u64> = folios.iter().map(|(p, _)| p.as_u64()).collect();
    for hit in damage.chunks_exact(3) {
        let word = u64::from(u16::from_le_bytes([hit[0], hit[1]])) % (common::RAM / 8);
        let at = PhysAddr::new(common::BASE + word * 8);
        let value = match hit[2] % 8 {
            0 => 0,
            1 => u64::MAX,
            2 => root,
            3 => fdt,
            4 => targets
                .get(usize::from(hit[2]) % targets.len().max(1))
                .copied()
                .unwrap_or(root),
            5 => common::BASE + (u64::from(hit[2]) << 12),
            6 => common::BASE + u64::from(hit[2]),
            _ => 0x10_0000_0000,
        };
        let _ = mem.write_u64(at, value);
    }

    // The new kernel.
    let Ok(mut kin) = KhoIn::populate(&mem, handover) else {
        return;
    };
    let mut buf = [0u64; VisitedSet::words_for(512)];
    let walked = if kin.version().uses_chunk_list() {
        // KhoOut::new(V1) writes page bitmaps.
        let mut map = [0u64; kho_bitmaps::IncomingMap::words_for(512)];
        kin.reserve_preserved_v1(&mem, BitmapSize::Page, &mut map, |_, _| Ok(()))
    } else {
        kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
    };
    if walked.is_err() {
        return;
    }
    let _ = kin.kexec_metadata(&mem);
    let mut page = [0u8; 4096];
    if let Ok(Some(blob)) = kin.memblock(&mem, &mut page) {
        let want = kho_memblock::ReserveMem {
            size: 4096,
            align: 4096,
            name: "kho_log",
        };
        let region = blob.revive(&want).map(|r| r.range());
        if let Ok(range) = region
            && let Some(pages) = kho_memblock::covering_pages(range)
        {
            let _ = kin.restore_pages(&mut mem, pages);
        }
    }
    for name in kin.subtree_names().into_iter().map(String::from).collect::<Vec<_>>() {
        if let Some((at, _)) = kin.subtree(&name) {
            let _ = kin.restore_folio(&mut mem, at, Order::ZERO);
        }
    }
    if let Some(desc) = desc {
        let _ = kin.restore_vmalloc(&mut mem, &desc);
    }
    for (p, order) in folios {
        let _ = kin.restore_folio(&mut mem, p, order);
    }
    let _ = kin.restore_folio(&mut mem, handover.fdt, Order::ZERO);
    // What is left, counted and listed (the list re-walks the damaged tree).
    let _ = kin.unrestored_blocks();
    let _ = kin.for_each_unrestored_v1(&mem, |_| core::ops::ControlFlow::<()>::Continue(()));
    for run in kin.unrestored(&mem, &mut VisitedSet::new(&mut buf)) {
        if run.is_err() {
            break;
        }
    }
});
