//! Fault injection: corrupt the outgoing handover in one named way.
//!
//! Each class corrupts exactly one thing the next generation validates, so
//! the harness can check that the next generation refuses it with the right
//! reason and boots cold (or, where upstream goes on with a partial
//! revival, does that and says so).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kho_abi::fdt::{
    PROP_BLOB_SIZE, PROP_COMPATIBLE, PROP_PRESERVED_DATA, PROP_PRESERVED_MEMORY_MAP,
};
use kho_abi::scratch::ScratchDescriptor;
use kho_abi::vmalloc::VmallocDescriptor;
use kho_fdt::KhoFdt;
use kho_fdt::dtb::{Dtb, Edit};
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use vm_fdt::FdtWriter;

use crate::config::FaultClass;
use crate::mem::StubMem;

/// An address no QEMU machine of the test matrix has RAM at (64 GiB).
pub const OUTSIDE_RAM: u64 = 0x10_0000_0000;

fn text<E: core::fmt::Display>(e: E) -> String {
    format!("{e}")
}

/// What the root FDT's root node should say instead of the truth.
enum Root<'n> {
    NoMemoryMap,
    MemoryMapBytes(Vec<u8>),
    /// The root as it is, but this child's `preserved-data` is this.
    ChildData(&'n str, u64),
    /// The root as it is, but this child's `blob-size` is this.
    ChildBlobSize(&'n str, u64),
    /// The root as it is, but this child appears twice.
    DuplicateChild(&'n str),
}

/// Rewrite the root FDT page with the same children but a different root.
fn rewrite_root(mem: &mut StubMem, fdt_page: PhysAddr, root: Root<'_>) -> Result<(), String> {
    let mut page = [0u8; 4096];
    mem.read(fdt_page, &mut page).map_err(text)?;
    let parsed = KhoFdt::parse(&page).map_err(text)?;
    let compatible = parsed.version().compatible();
    let memory_map = parsed.memory_map().as_u64();
    let children: Vec<(String, u64, Option<u64>)> = parsed
        .subtrees()
        .map(|s| (String::from(s.name()), s.data().as_u64(), s.size()))
        .collect();
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = FdtWriter::new()?;
        let r = w.begin_node("")?;
        w.property_string(PROP_COMPATIBLE, compatible)?;
        match &root {
            Root::MemoryMapBytes(v) => w.property(PROP_PRESERVED_MEMORY_MAP, v)?,
            Root::NoMemoryMap => {}
            _ => w.property(PROP_PRESERVED_MEMORY_MAP, &memory_map.to_le_bytes())?,
        }
        for (name, data, size) in &children {
            let copies = match &root {
                Root::DuplicateChild(twice) if twice == name => 2,
                _ => 1,
            };
            for _ in 0..copies {
                let c = w.begin_node(name)?;
                let data = match &root {
                    Root::ChildData(n, v) if n == name => *v,
                    _ => *data,
                };
                w.property(PROP_PRESERVED_DATA, &data.to_le_bytes())?;
                let size = match &root {
                    Root::ChildBlobSize(n, v) if n == name => Some(*v),
                    _ => *size,
                };
                if let Some(size) = size {
                    w.property(PROP_BLOB_SIZE, &size.to_le_bytes())?;
                }
                w.end_node(c)?;
            }
        }
        w.end_node(r)?;
        w.finish()
    };
    let blob = build().map_err(|e| format!("{e:?}"))?;
    if blob.len() > page.len() {
        return Err(String::from("corrupted FDT does not fit its page"));
    }
    page.fill(0);
    page[..blob.len()].copy_from_slice(&blob);
    mem.write(fdt_page, &page).map_err(text)
}

/// Corrupt the KHO state itself: the root FDT, the radix tree or the
/// vmalloc chain (classes that are not [`FaultClass::at_handoff`]).
pub fn corrupt_state(
    mem: &mut StubMem,
    class: FaultClass,
    fdt_page: PhysAddr,
    radix_root: PhysAddr,
    vmalloc: &VmallocDescriptor,
) -> Result<(), String> {
    let at = |off: u64| fdt_page.checked_add(off).ok_or("FDT page wraps");
    match class {
        FaultClass::BadMagic => mem
            .write(fdt_page, &0xdead_beefu32.to_be_bytes())
            .map_err(text),
        FaultClass::Truncated => mem.write(at(4)?, &40u32.to_be_bytes()).map_err(text),
        FaultClass::Compatible => {
            let mut page = [0u8; 4096];
            mem.read(fdt_page, &mut page).map_err(text)?;
            // Whatever version `kho_stub.abi` wrote ("kho-vN", 6 bytes).
            let ours = KhoFdt::parse(&page).map_err(text)?.version().compatible();
            let off = page
                .windows(ours.len())
                .position(|w| w == ours.as_bytes())
                .ok_or("no compatible to corrupt")?;
            mem.write(at(off as u64)?, b"kho-v9").map_err(text)
        }
        FaultClass::MemoryMapMissing => rewrite_root(mem, fdt_page, Root::NoMemoryMap),
        FaultClass::SubtreeDataZero => rewrite_root(
            mem,
            fdt_page,
            Root::ChildData(crate::config::FIRST_CLIENT, 0),
        ),
        FaultClass::SubtreeDataOutsideRam => rewrite_root(
            mem,
            fdt_page,
            Root::ChildData(crate::config::FIRST_CLIENT, OUTSIDE_RAM),
        ),
        FaultClass::SubtreeDuplicate => rewrite_root(
            mem,
            fdt_page,
            Root::DuplicateChild(crate::config::FIRST_CLIENT),
        ),
        FaultClass::SubtreeBlobSizeAbsurd => rewrite_root(
            mem,
            fdt_page,
            Root::ChildBlobSize(crate::config::FIRST_CLIENT, 1 << 62),
        ),
        FaultClass::FdtTooLarge => mem.write(at(4)?, &8192u32.to_be_bytes()).map_err(text),
        FaultClass::MemblockCompatible => edit_memblock(
            mem,
            fdt_page,
            &[Edit::Set {
                path: "/",
                name: PROP_COMPATIBLE,
                value: b"memblock-v9\0",
            }],
        ),
        FaultClass::MemblockOutsideRam => {
            let path = alloc::format!("/{}", crate::config::LOG_REGION);
            edit_memblock(
                mem,
                fdt_page,
                &[Edit::Set {
                    path: &path,
                    name: kho_abi::memblock::PROP_START,
                    value: &OUTSIDE_RAM.to_le_bytes(),
                }],
            )
        }
        FaultClass::MemblockOverlap => {
            // A second region, `kho_log2`, exactly over the log.
            let (blob, size) = subtree(mem, fdt_page, kho_abi::memblock::SUBTREE_NAME)?;
            let mut page = vec![0u8; size.min(4096) as usize];
            mem.read(blob, &mut page).map_err(text)?;
            let dtb = Dtb::parse(&page).map_err(text)?;
            let log = alloc::format!("/{}", crate::config::LOG_REGION);
            let start = dtb
                .property(&log, kho_abi::memblock::PROP_START)
                .ok_or("no kho_log region")?
                .to_vec();
            let len = dtb
                .property(&log, kho_abi::memblock::PROP_SIZE)
                .ok_or("no kho_log region")?
                .to_vec();
            let twin = alloc::format!("{log}2");
            edit_memblock(
                mem,
                fdt_page,
                &[
                    Edit::Set {
                        path: &twin,
                        name: PROP_COMPATIBLE,
                        value: b"reserve-mem-v1\0",
                    },
                    Edit::Set {
                        path: &twin,
                        name: kho_abi::memblock::PROP_START,
                        value: &start,
                    },
                    Edit::Set {
                        path: &twin,
                        name: kho_abi::memblock::PROP_SIZE,
                        value: &len,
                    },
                ],
            )
        }
        FaultClass::KexecMetadataVersion | FaultClass::KexecMetadataCount => {
            let (meta, _) = subtree(mem, fdt_page, kho_abi::metadata::SUBTREE_NAME)?;
            let (off, value) = if class == FaultClass::KexecMetadataVersion {
                (0, 2u32)
            } else {
                // After the u32 version and the 65-byte release string.
                (4 + kho_abi::metadata::RELEASE_LEN as u64, u32::MAX)
            };
            let field = meta.checked_add(off).ok_or("kexec-metadata wraps")?;
            mem.write(field, &value.to_le_bytes()).map_err(text)
        }
        FaultClass::KexecMetadataShort => rewrite_root(
            mem,
            fdt_page,
            Root::ChildBlobSize(kho_abi::metadata::SUBTREE_NAME, 40),
        ),
        FaultClass::VmallocChunkOutsideRam
        | FaultClass::VmallocChunkMisaligned
        | FaultClass::VmallocChunkUnpreserved => {
            let (blob, _) = subtree(mem, fdt_page, kho_abi::stub::SUBTREE_NAME)?;
            // The descriptor's `first`: blob offset 24.
            let first = blob.checked_add(24).ok_or("blob wraps")?;
            let value = match class {
                FaultClass::VmallocChunkOutsideRam => OUTSIDE_RAM,
                FaultClass::VmallocChunkMisaligned => vmalloc.first.get() + 8,
                // The radix root: RAM, page-aligned, never itself preserved.
                _ => radix_root.as_u64(),
            };
            mem.write_u64(first, value).map_err(text)
        }
        FaultClass::VmallocBlockUnpreserved => {
            let first = PhysAddr::new(vmalloc.first.get());
            if first == PhysAddr::ZERO {
                return Err(String::from(
                    "vmalloc faults need a vmalloc area (kho_stub.vmalloc_pages > 0)",
                ));
            }
            // The radix root: RAM, page-aligned, and never itself preserved.
            let slot = first.checked_add(8).ok_or("chunk wraps")?;
            mem.write_u64(slot, radix_root.as_u64()).map_err(text)
        }
        FaultClass::ContentFlip => {
            let (blob, _) = subtree(mem, fdt_page, kho_abi::stub::SUBTREE_NAME)?;
            // Record 0's `phys`: blob offset 48.
            let rec = blob.checked_add(48).ok_or("blob wraps")?;
            let folio = PhysAddr::new(mem.read_u64(rec).map_err(text)?);
            let byte = folio.checked_add(100).ok_or("folio wraps")?;
            let mut b = [0u8];
            mem.read(byte, &mut b).map_err(text)?;
            mem.write(byte, &[b[0] ^ 0x20]).map_err(text)
        }
        FaultClass::MemoryMap4Bytes => {
            let low = (radix_root.as_u64() as u32).to_le_bytes().to_vec();
            rewrite_root(mem, fdt_page, Root::MemoryMapBytes(low))
        }
        FaultClass::MemoryMapZero => rewrite_root(
            mem,
            fdt_page,
            Root::MemoryMapBytes(0u64.to_le_bytes().to_vec()),
        ),
        FaultClass::MemoryMapOutsideRam => rewrite_root(
            mem,
            fdt_page,
            Root::MemoryMapBytes(OUTSIDE_RAM.to_le_bytes().to_vec()),
        ),
        FaultClass::RadixOutsideRam => {
            let (slot, _) = entry(mem, radix_root, End::First)?;
            mem.write_u64(slot, OUTSIDE_RAM).map_err(text)
        }
        FaultClass::RadixMisalignedEntry => {
            let (slot, child) = entry(mem, radix_root, End::First)?;
            mem.write_u64(slot, child.as_u64() + 8).map_err(text)
        }
        FaultClass::RadixSharedNode => {
            let (_, table) = entry(mem, radix_root, End::First)?;
            let (slot, child) = entry(mem, table, End::First)?;
            let next = slot.checked_add(8).ok_or("radix table wraps")?;
            if mem.read_u64(next).map_err(text)? != 0 {
                return Err(String::from("the slot after the first entry is in use"));
            }
            mem.write_u64(next, child.as_u64()).map_err(text)
        }
        FaultClass::RadixCycle => {
            let (_, child) = entry(mem, radix_root, End::First)?;
            let (slot, _) = entry(mem, child, End::First)?;
            mem.write_u64(slot, radix_root.as_u64()).map_err(text)
        }
        FaultClass::RadixFullLeaf => {
            // The last entry at every level leads to the largest keys: the
            // order-0 leaf (if order-0 blocks are preserved, as here).
            let mut node = radix_root;
            for _ in 0..kho_abi::radix::ROOT_LEVEL {
                node = entry(mem, node, End::Last)?.1;
            }
            mem.write(node, &[0xff; 4096]).map_err(text)
        }
        FaultClass::RadixOverlap => {
            // The first order-9 block in the tree, and the bit of the page
            // after its first in the order-0 leaf of that address.
            let mut folio = None;
            let _ = kho_radix::walk(
                &*mem,
                radix_root,
                &mut kho_radix::VisitedSet::new(&mut [0u64; kho_radix::VisitedSet::words_for(256)]),
                |phys, order| {
                    if order.get() == 9 {
                        folio = Some(phys);
                        return core::ops::ControlFlow::Break(());
                    }
                    core::ops::ControlFlow::Continue(())
                },
            )
            .map_err(text)?;
            let folio = folio.ok_or("no order-9 block to overlap")?;
            let page = folio.checked_add(4096).ok_or("folio wraps")?;
            set_block_bit(mem, radix_root, page, 0, true)
        }
        FaultClass::VmallocBlockOutsideRam | FaultClass::VmallocBlockMisaligned => {
            let first = PhysAddr::new(vmalloc.first.get());
            if first == PhysAddr::ZERO {
                return Err(String::from(
                    "vmalloc faults need a vmalloc area (kho_stub.vmalloc_pages > 0)",
                ));
            }
            // Slot 0 of the first chunk, after its `next` word.
            let slot = first.checked_add(8).ok_or("chunk wraps")?;
            let value = if class == FaultClass::VmallocBlockOutsideRam {
                OUTSIDE_RAM
            } else {
                mem.read_u64(slot).map_err(text)? + 8
            };
            mem.write_u64(slot, value).map_err(text)
        }
        FaultClass::VmallocCountMismatch => {
            let mut page = [0u8; 4096];
            mem.read(fdt_page, &mut page).map_err(text)?;
            let blob = KhoFdt::parse(&page)
                .map_err(text)?
                .subtree(kho_abi::stub::SUBTREE_NAME)
                .ok_or("no kho-stub subtree")?
                .data();
            // The descriptor's total_pages: blob offset 24 + 8.
            let at = blob.checked_add(32).ok_or("blob wraps")?;
            let mut le = [0u8; 4];
            mem.read(at, &mut le).map_err(text)?;
            let total = u32::from_le_bytes(le) + 1;
            mem.write(at, &total.to_le_bytes()).map_err(text)
        }
        FaultClass::VmallocCycle => {
            let first = PhysAddr::new(vmalloc.first.get());
            if first == PhysAddr::ZERO {
                return Err(String::from(
                    "vmalloc-cycle needs a vmalloc area (kho_stub.vmalloc_pages > 0)",
                ));
            }
            mem.write_u64(first, first.as_u64()).map_err(text)
        }
        // Acted on by the next generation (generation.rs, `verify`).
        FaultClass::HeapInRevival => Ok(()),
        _ => Err(String::from("fault applies at hand-off time")),
    }
}

/// The root FDT child `name`: its `preserved-data` and `blob-size`.
fn subtree(mem: &StubMem, fdt_page: PhysAddr, name: &str) -> Result<(PhysAddr, u64), String> {
    let mut page = [0u8; 4096];
    mem.read(fdt_page, &mut page).map_err(text)?;
    let s = KhoFdt::parse(&page)
        .map_err(text)?
        .subtree(name)
        .ok_or_else(|| format!("no {name} subtree"))?;
    Ok((s.data(), s.size().unwrap_or(4096)))
}

/// Apply `edits` to the memblock blob (an FDT in one page) and keep the
/// root FDT's `blob-size` in step with it.
fn edit_memblock(mem: &mut StubMem, fdt_page: PhysAddr, edits: &[Edit<'_>]) -> Result<(), String> {
    let name = kho_abi::memblock::SUBTREE_NAME;
    let (blob, size) = subtree(mem, fdt_page, name)?;
    let mut page = vec![0u8; size.min(4096) as usize];
    mem.read(blob, &mut page).map_err(text)?;
    let out = Dtb::parse(&page)
        .and_then(|d| d.rewrite(edits))
        .map_err(text)?;
    if out.len() > 4096 {
        return Err(String::from("edited memblock blob does not fit its page"));
    }
    mem.write(blob, &out).map_err(text)?;
    if out.len() as u64 != size {
        rewrite_root(mem, fdt_page, Root::ChildBlobSize(name, out.len() as u64))?;
    }
    Ok(())
}

/// Set (`on`) or clear the bit of the block (`phys`, `order`) in its
/// existing leaf.
pub fn set_block_bit(
    mem: &mut StubMem,
    root: PhysAddr,
    phys: PhysAddr,
    order: u32,
    on: bool,
) -> Result<(), String> {
    use kho_abi::radix::{ROOT_LEVEL, encode_key, leaf_bit, table_index};
    let key = encode_key(phys.as_u64(), order).ok_or("block has no key")?;
    let mut node = root;
    for level in (1..=ROOT_LEVEL).rev() {
        let slot = node
            .checked_add(8 * table_index(key, level) as u64)
            .ok_or("radix table wraps")?;
        let next = mem.read_u64(slot).map_err(text)?;
        if next == 0 {
            return Err(format!("no order-{order} leaf for {phys}"));
        }
        node = PhysAddr::new(next);
    }
    let bit = leaf_bit(key);
    let word = node
        .checked_add(8 * (bit / 64) as u64)
        .ok_or("radix leaf wraps")?;
    let w = mem.read_u64(word).map_err(text)?;
    let mask = 1u64 << (bit % 64);
    mem.write_u64(word, if on { w | mask } else { w & !mask })
        .map_err(text)
}

/// Move the tree's last leaf (the order-0 one) to `to` (a free page) and
/// point its table entry there.
pub fn move_last_leaf(mem: &mut StubMem, root: PhysAddr, to: PhysAddr) -> Result<(), String> {
    let mut slot = None;
    let mut node = root;
    for _ in 0..kho_abi::radix::ROOT_LEVEL {
        let (s, next) = entry(mem, node, End::Last)?;
        slot = Some(s);
        node = next;
    }
    let slot = slot.ok_or("radix tree has no levels")?;
    let mut leaf = [0u8; 4096];
    mem.read(node, &mut leaf).map_err(text)?;
    mem.write(to, &leaf).map_err(text)?;
    mem.write_u64(slot, to.as_u64()).map_err(text)
}

/// Which non-zero entry of a table [`entry`] returns.
#[derive(Clone, Copy)]
enum End {
    First,
    Last,
}

/// The first or last non-zero entry of the table page at `table`: (its
/// slot, its value).
fn entry(mem: &StubMem, table: PhysAddr, end: End) -> Result<(PhysAddr, PhysAddr), String> {
    let mut entries = [0u64; 512];
    mem.read_u64s(table, &mut entries).map_err(text)?;
    let nonzero = |e: &u64| *e != 0;
    let i = match end {
        End::First => entries.iter().position(nonzero),
        End::Last => entries.iter().rposition(nonzero),
    }
    .ok_or("radix table is empty")?;
    let slot = table.checked_add(i as u64 * 8).ok_or("radix table wraps")?;
    Ok((slot, PhysAddr::new(entries[i])))
}

/// Corrupt the scratch array written at `array`: entry 1 (the global area)
/// becomes `range`.
pub fn corrupt_scratch_entry(
    mem: &mut StubMem,
    array: PhysRange,
    range: PhysRange,
) -> Result<(), String> {
    let entry = array.start().checked_add(16).ok_or("scratch array wraps")?;
    if array.size() < 32 {
        return Err(String::from("scratch array has no entry 1"));
    }
    mem.write_obj(
        entry,
        &ScratchDescriptor::new(range.start().as_u64(), range.size()),
    )
    .map_err(text)
}

/// Most chunks [`corrupt_v1_chunks`] follows to find the last one.
const MAX_V1_CHUNKS: usize = 4096;

/// kho-v1: corrupt the finalized chunk list named by the root FDT at
/// `fdt_page`: the last chunk's `next` := the first chunk
/// (`V1ChunkCycle`), or the first chunk's `next` := [`OUTSIDE_RAM`]
/// (`V1ChunkOutsideRam`).
pub fn corrupt_v1_chunks(
    mem: &mut StubMem,
    class: FaultClass,
    fdt_page: PhysAddr,
) -> Result<(), String> {
    let mut page = [0u8; 4096];
    mem.read(fdt_page, &mut page).map_err(text)?;
    let parsed = KhoFdt::parse(&page).map_err(text)?;
    let first = parsed.memory_map();
    if first == PhysAddr::ZERO {
        return Err(String::from("kho-v1 handover has no chunk list to corrupt"));
    }
    match class {
        FaultClass::V1ChunkOutsideRam => mem.write_u64(first, OUTSIDE_RAM).map_err(text),
        FaultClass::V1ChunkCycle => {
            let mut last = first;
            for _ in 0..MAX_V1_CHUNKS {
                let mut next = [0u64; 1];
                mem.read_u64s(last, &mut next).map_err(text)?;
                if next[0] == 0 {
                    return mem.write_u64(last, first.as_u64()).map_err(text);
                }
                last = PhysAddr::new(next[0]);
            }
            Err(String::from("kho-v1 chunk list does not end"))
        }
        _ => Err(String::from("not a kho-v1 chunk fault")),
    }
}
