//! Fuzz target: the decoder behind `cargo xtask inspect` on a real handover
//! that the input damages. The first part of the input drives the old
//! kernel (`KhoOut` in every ABI version: folios, a vmalloc area, a
//! `reserve_mem` region, kexec-metadata, the stub's blob with folio records
//! and extents, lib/test_kho.c's `kho_test` sub-FDT and its folio array,
//! other subtrees); both arch handoffs are written (a zero page with its
//! `setup_data` entry, a boot DTB with `/chosen`). The rest overwrites whole
//! 64-bit words with values chosen to hurt (node, block and structure
//! addresses, misaligned and out-of-RAM ones, all ones). Then the decoder
//! runs from every start point, `find` scans the whole arena, and every
//! report is rendered as text and JSON: never a panic (overflow checks are
//! on), and the budget bounds the work.
//!
//! When the first byte has bit 7 set, the old kernel is the 2024 design's
//! instead (kho-ranges' `Tracker`: ranges in nested nodes, NOINIT ones,
//! client properties), handed over by a 48-byte `kho_data` in the
//! `setup_data` entry, and damaged and decoded the same way.
#![no_main]

#[path = "common.rs"]
mod common;

use kho::KhoOut;
use kho::handoff::{dt, x86};
use kho_abi::x86::{SETUP_KEXEC_KHO, SetupDataHeader, boot_params as bp, e820};
use kho_abi::{AbiVersion, Le32, Le64};
use kho_inspect::report::{FindOutput, ImageInfo, Output};
use kho_inspect::{Format, Limits, Start};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_scratch::ScratchAreas;
use libfuzzer_sys::fuzz_target;

/// The last 8 pages of the arena are scratch: the scratch array, the zero
/// page and its `setup_data` entry, the boot DTB.
const SCRATCH_PAGES: u64 = 8;

const LIMITS: Limits = Limits {
    nodes: 512,
    runs: 2048,
    blocks: 2048,
    bytes: 1 << 20,
    problems: 64,
    fdt_bytes: 1 << 16,
    root_fdts: 8,
    setup_data: 16,
    dtbs: 8,
    dtb_bytes: 1 << 20,
    skipped: 8,
    read_errors: 4,
    decodes: 4,
    scan_bytes: 1 << 20,
};

/// What the damage aims at.
struct Targets {
    addrs: Vec<u64>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Bit 7: the 2024 design; the rest counts the operations.
    let ops_len = first & 0x7f;
    let (ops, damage) = rest.split_at((usize::from(ops_len) * 3).min(rest.len()));
    if first & 0x80 != 0 {
        rfc2024(ops, damage);
        return;
    }
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
    let mut targets = Targets { addrs: Vec::new() };
    old_kernel(&mut mem, &mut out, ops, &mut targets);

    // kho-v1 publishes its FDT (and chunk list) at finalize; a no-op after.
    if out.finalize(&mut mem).is_err() {
        return;
    }
    let Ok(array) = areas.write_array(&mut mem, scratch.start()) else {
        return;
    };
    let handover = out.handover(array);
    let boot_params = scratch_at + 0x1000;
    let entry = scratch_at + 0x2000;
    let dtb = scratch_at + 0x3000;
    zero_page(
        &mut mem,
        boot_params,
        scratch,
        Some((PhysAddr::new(entry), handover)),
    );
    if let Ok(blob) = dt::write_chosen(&boot_dtb(), Some(&handover), None) {
        let _ = mem.write(PhysAddr::new(dtb), &blob);
    }

    // The radix root, or kho-v1's first chunk (named only by the FDT).
    let root = match out.tree() {
        Some(tree) => tree.root().as_u64(),
        None => common::memory_map(&mem, out.fdt()).unwrap_or(out.fdt().as_u64()),
    };
    damage_and_inspect(
        &mut mem,
        damage,
        out.fdt().as_u64(),
        root,
        &targets,
        [boot_params, entry, dtb],
    );
});

/// Word-granular damage, 3 bytes a hit (word index, value kind), aimed at
/// `fdt`, `root` and the `targets`; then the inspector from every start
/// point (`starts`: zero page, `setup_data` entry, boot DTB) and the FDT,
/// then `find`, every report rendered.
fn damage_and_inspect(
    mem: &mut HostMem,
    damage: &[u8],
    fdt: u64,
    root: u64,
    targets: &Targets,
    starts: [u64; 3],
) {
    let [boot_params, entry, dtb] = starts;
    for hit in damage.chunks_exact(3) {
        let word = u64::from(u16::from_le_bytes([hit[0], hit[1]])) % (common::RAM / 8);
        let at = PhysAddr::new(common::BASE + word * 8);
        let value = match hit[2] % 10 {
            0 => 0,
            1 => u64::MAX,
            2 => root,
            3 => fdt,
            4 => targets
                .addrs
                .get(usize::from(hit[2]) % targets.addrs.len().max(1))
                .copied()
                .unwrap_or(root),
            5 => common::BASE + (u64::from(hit[2]) << 12),
            6 => common::BASE + u64::from(hit[2]),
            7 => u64::from(0xd00d_feedu32.swap_bytes()) | u64::from(hit[2]) << 40,
            8 => mem.read_u64(at).unwrap_or(0) ^ (1 << (hit[2] % 64)),
            _ => 0x10_0000_0000,
        };
        let _ = mem.write_u64(at, value);
    }

    // The inspector, from every start point, then with no address.
    let info = ImageInfo {
        file: "fuzz".into(),
        format: Format::Raw,
        segments: Vec::new(),
    };
    for start in [
        Start::X86BootParams(boot_params),
        Start::X86SetupData(entry),
        Start::Dtb(dtb),
        Start::Fdt(fdt),
    ] {
        let report = kho_inspect::inspect_with(&*mem, start, LIMITS);
        let out = Output {
            image: info.clone(),
            start,
            report,
        };
        let _ = kho_inspect::text::render(&out);
        let _ = kho_inspect::json::render(&out);
    }
    let ram: Vec<(u64, u64)> = mem.ram().map(|r| (r.start().as_u64(), r.size())).collect();
    let found = kho_inspect::find::find(&*mem, &ram, LIMITS);
    let out = FindOutput { image: info, found };
    let _ = kho_inspect::text::render_find(&out);
    let _ = kho_inspect::json::render(&out);
}

/// The old kernel: 3 bytes an operation (kind, two arguments).
fn old_kernel(mem: &mut HostMem, out: &mut KhoOut, ops: &[u8], t: &mut Targets) {
    let mut folios: Vec<(PhysAddr, Order)> = Vec::new();
    let mut vmalloc_pages: Vec<PhysAddr> = Vec::new();
    let mut records: Vec<[u8; 32]> = Vec::new();
    for (i, op) in ops.chunks_exact(3).enumerate() {
        match op[0] % 8 {
            0 | 1 => {
                let Ok(order) = Order::try_new(u32::from(op[1] % 4)) else {
                    continue;
                };
                if let Ok(p) = mem.alloc_pages(order)
                    && out.preserve_folio(mem, p, order).is_ok()
                {
                    folios.push((p, order));
                    t.addrs.push(p.as_u64());
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
                    let _ = out.preserve_folio(mem, p, Order::ZERO);
                    let _ = out.add_subtree(mem, &name, p, Some(u64::from(op[1]) + 1));
                }
            }
            4 => {
                if let Ok(p) = mem.alloc_page()
                    && let Ok(region) = kho_memblock::Region::new("kho_log", p, 4096)
                {
                    let _ = out.preserve_memblock(mem, &[region]);
                }
            }
            5 => {
                if let Ok(at) = out.add_kexec_metadata(mem, u32::from(op[1]), "fuzz") {
                    t.addrs.push(at.as_u64());
                }
            }
            // A stub record of the folio `op[1]` picks: one block, or an
            // extent of `op[2] % 8` blocks `op[2] / 8 % 4` orders apart.
            6 => {
                if let Some(&(p, order)) = folios.get(usize::from(op[1]) % folios.len().max(1)) {
                    let mut r = [0u8; 32];
                    r[..8].copy_from_slice(&p.as_u64().to_le_bytes());
                    r[16..20].copy_from_slice(&order.get().to_le_bytes());
                    r[28..30].copy_from_slice(&u16::from(op[2] % 8).to_le_bytes());
                    r[30..32].copy_from_slice(&u16::from(op[2] / 8 % 4).to_le_bytes());
                    records.push(r);
                }
            }
            _ => {
                if let Some(at) = kho_test(mem, out, &folios) {
                    t.addrs.push(at);
                }
            }
        }
    }
    let desc = out
        .preserve_vmalloc(mem, vmalloc_pages.iter().copied(), Order::ZERO, 1)
        .ok();
    // The stub's blob (docs/HANDOVER.md): header, then the records.
    let mut blob = Vec::new();
    blob.extend_from_slice(b"KHOSTUB1");
    blob.extend_from_slice(&1u32.to_le_bytes());
    blob.extend_from_slice(&(records.len() as u32).to_le_bytes());
    blob.extend_from_slice(&0x5eedu64.to_le_bytes());
    match &desc {
        Some(d) => blob.extend_from_slice(zerocopy::IntoBytes::as_bytes(d)),
        None => blob.extend_from_slice(&[0; 16]),
    }
    blob.extend_from_slice(&0u64.to_le_bytes());
    for r in &records {
        blob.extend_from_slice(r);
    }
    if blob.len() <= 4096
        && let Ok(p) = mem.alloc_page()
        && mem.write(p, &blob).is_ok()
    {
        let _ = out.preserve_folio(mem, p, Order::ZERO);
        let _ = out.add_subtree(mem, "kho-stub", p, Some(blob.len() as u64));
        t.addrs.push(p.as_u64());
        if let Some(d) = desc {
            t.addrs.push(d.first.get());
        }
    }
}

/// lib/test_kho.c's subtree: a sub-FDT naming a vmalloc'ed array of the
/// folios (`phys | order`); returns the sub-FDT's address.
fn kho_test(mem: &mut HostMem, out: &mut KhoOut, folios: &[(PhysAddr, Order)]) -> Option<u64> {
    let array = mem.alloc_page().ok()?;
    for (i, (p, order)) in folios.iter().take(512).enumerate() {
        let _ = mem.write_u64(
            PhysAddr::new(array.as_u64() + 8 * i as u64),
            p.as_u64() | u64::from(order.get()),
        );
    }
    let desc = out.preserve_vmalloc(mem, [array], Order::ZERO, 1).ok()?;
    let mut w = vm_fdt::FdtWriter::new().ok()?;
    let root = w.begin_node("").ok()?;
    w.property_string("compatible", "kho-test-v1").ok()?;
    w.property("magic", &0x4b48_4f21u32.to_le_bytes()).ok()?;
    let node = w.begin_node("data").ok()?;
    w.property("nr_folios", &(folios.len().min(512) as u32).to_le_bytes())
        .ok()?;
    w.property("folios_info", zerocopy::IntoBytes::as_bytes(&desc))
        .ok()?;
    w.property("csum", &0u32.to_le_bytes()).ok()?;
    w.end_node(node).ok()?;
    w.end_node(root).ok()?;
    let blob = w.finish().ok()?;
    if blob.len() > 4096 {
        return None;
    }
    let at = mem.alloc_page().ok()?;
    mem.write(at, &blob).ok()?;
    let _ = out.preserve_folio(mem, at, Order::ZERO);
    out.add_subtree(mem, "kho_test", at, Some(blob.len() as u64))
        .ok()?;
    Some(at.as_u64())
}

/// Node paths the 2024 design's old kernel preserves in: the root, nested
/// nodes, a unit address.
const NODES_2024: [&str; 5] = ["", "a", "a/b", "a/b/c", "d@1"];

/// The 2024 design's old kernel: 3 bytes an operation (node and flags,
/// page, length and NOINIT), then its FDT and mem cache placed in scratch
/// and named by a 48-byte `kho_data` in the `setup_data` entry the zero
/// page links; then the same damage and inspection.
fn rfc2024(ops: &[u8], damage: &[u8]) {
    let mut mem = common::arena(&[]);
    let scratch_at = common::BASE + common::RAM - SCRATCH_PAGES * 4096;
    let Ok(scratch) = PhysRange::try_new(PhysAddr::new(scratch_at), SCRATCH_PAGES * 4096) else {
        return;
    };
    let Ok(mut tracker) = kho_ranges::Tracker::new(scratch) else {
        return;
    };
    let mut targets = Targets { addrs: Vec::new() };
    let pages = common::RAM / 4096 - SCRATCH_PAGES;
    for op in ops.chunks_exact(3) {
        let node = NODES_2024[usize::from(op[0] & 0x7f) % NODES_2024.len()];
        if op[0] & 0x80 != 0 {
            let _ = tracker.set_property(node, "client", &op[1..]);
            continue;
        }
        let start = common::BASE + u64::from(op[1]) % pages * 4096;
        let len = (u64::from(op[2] & 0x3) + 1) * 4096;
        let flags = if op[2] & 0x80 != 0 {
            kho_ranges::MemFlags::NOINIT
        } else {
            kho_ranges::MemFlags::NONE
        };
        if let Ok(range) = PhysRange::try_new(PhysAddr::new(start), len)
            && tracker.preserve(node, range, flags).is_ok()
        {
            targets.addrs.push(start);
        }
    }
    let Ok(out) = tracker.serialize() else {
        return;
    };
    // Scratch: the FDT (two pages at most) and the cache, the zero page
    // and its entry, as in the other path's layout.
    let (fdt_at, cache_at) = (scratch_at + 0x4000, scratch_at + 0x6000);
    if out.fdt().len() > 0x2000 || out.mem_cache().len() > 0x2000 {
        return;
    }
    let (Ok(()), Ok(())) = (
        mem.write(PhysAddr::new(fdt_at), out.fdt()),
        mem.write(PhysAddr::new(cache_at), out.mem_cache()),
    ) else {
        return;
    };
    let Ok(handover) = out.handover(scratch, PhysAddr::new(fdt_at), PhysAddr::new(cache_at)) else {
        return;
    };
    let (boot_params, entry, dtb) = (
        scratch_at + 0x1000,
        scratch_at + 0x2000,
        scratch_at + 0x3000,
    );
    // The 2024 entry is written by hand below: kho-v2's writer makes 32 bytes.
    zero_page(&mut mem, boot_params, scratch, None);
    let header = SetupDataHeader {
        next: Le64::new(0),
        type_: Le32::new(SETUP_KEXEC_KHO),
        len: Le32::new(kho_abi::rfc2024::KHO_DATA_SIZE as u32),
    };
    let _ = mem.write_obj(PhysAddr::new(entry), &header);
    let _ = mem.write_obj(PhysAddr::new(entry + 16), &handover.to_kho_data());
    let _ = mem.write_u64(PhysAddr::new(boot_params + bp::SETUP_DATA as u64), entry);
    targets.addrs.push(entry);
    damage_and_inspect(
        &mut mem,
        damage,
        fdt_at,
        cache_at,
        &targets,
        [boot_params, entry, dtb],
    );
}

/// The x86 zero page at `at`: the arena's RAM in e820 (`fallback` if that
/// range cannot be formed) and, when given, kho-v2's `setup_data` entry.
fn zero_page(
    mem: &mut HostMem,
    at: u64,
    fallback: PhysRange,
    kho: Option<(PhysAddr, kho::Handover)>,
) {
    let memory = [x86::MemoryEntry {
        range: PhysRange::try_new(PhysAddr::new(common::BASE), common::RAM).unwrap_or(fallback),
        kind: e820::RAM,
    }];
    let params = x86::BootParamsOut {
        memory: &memory,
        cmdline: None,
        kho,
        acpi_rsdp: None,
        ramdisk: None,
        setup_header: None,
    };
    let _ = x86::write_boot_params(mem, PhysAddr::new(at), &params);
}

/// A minimal arm64-style boot DTB: 2+2 cells, a memory node, `/chosen`.
fn boot_dtb() -> Vec<u8> {
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = vm_fdt::FdtWriter::new()?;
        let root = w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        let memory = w.begin_node("memory@40000000")?;
        w.property_string("device_type", "memory")?;
        w.property_array_u64("reg", &[common::BASE, common::RAM])?;
        w.end_node(memory)?;
        let chosen = w.begin_node("chosen")?;
        w.end_node(chosen)?;
        w.end_node(root)?;
        w.finish()
    };
    build().unwrap_or_default()
}
