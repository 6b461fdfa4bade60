//! Hypervisor-scale "guest memory": gigabytes that stay put for every generation.
//!
//! `kho_stub.guest=1g:N,2m:N,4k:N` makes the first generation (and any
//! generation that boots cold) allocate, fill and preserve what a host's
//! guests would own: `1g` 1 GiB folios (order 18), `2m` 2 MiB folios
//! (order 9) and `4k` single pages taken every other page (a fragmented
//! run: no two adjacent). Every later generation restores each block,
//! checks every word, and preserves it again, unchanged, for the next.
//!
//! The stub's blob lists the memory as extents (one [`Record`] for a run of
//! equally spaced blocks of one order), so the blob, and the heap that holds
//! the kept records, grow with fragmentation, not with the gigabytes.
//! Every word gets a value from a cheap generator — `base ^ index * K`,
//! with `base` mixed from the seed, the generation that filled the block
//! and its block id — unique per word, so any changed word is caught,
//! at one multiply per word (a TCG guest checks gigabytes per generation).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kho_mem::{Order, PhysAddr, PhysMem};
use zerocopy::little_endian::{U16, U32, U64};

use crate::content;
use kho_abi::stub::Record;

/// Block ids of guest memory start here (folios, vmalloc pages, clients
/// and kho_test content use lower ids).
pub const BLOCK_BASE: u32 = 1 << 20;
/// Order of a 1 GiB folio.
const ORDER_1G: u32 = 18;
/// Order of a 2 MiB folio.
const ORDER_2M: u32 = 9;
/// Most blocks in one extent record.
const MAX_EXTENT: u32 = u16::MAX as u32;
const WORD_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// What `kho_stub.guest=` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestSpec {
    /// 1 GiB folios.
    pub gib: u32,
    /// 2 MiB folios.
    pub mib2: u32,
    /// Fragmented 4 KiB pages.
    pub pages: u32,
}

impl GuestSpec {
    /// Parse `1g:N,2m:N,4k:N` (any subset, any order, each once).
    pub fn parse(text: &str) -> Result<GuestSpec, &'static str> {
        let mut spec = GuestSpec::default();
        let mut seen = [false; 3];
        for part in text.split(',') {
            let (kind, count) = part.split_once(':').ok_or("not kind:count")?;
            let count: u32 = count.parse().map_err(|_| "count is not a number")?;
            let (slot, field) = match kind {
                "1g" => (0, &mut spec.gib),
                "2m" => (1, &mut spec.mib2),
                "4k" => (2, &mut spec.pages),
                _ => return Err("kind is not 1g, 2m or 4k"),
            };
            if seen[slot] {
                return Err("a kind given twice");
            }
            seen[slot] = true;
            *field = count;
        }
        if spec.gib > 64 || spec.mib2 > 1 << 16 || spec.pages > 1 << 22 {
            return Err("more than 64 GiB folios, 65536 2 MiB folios or 4194304 pages");
        }
        Ok(spec)
    }

    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == GuestSpec::default()
    }

    /// Bytes it asks for.
    #[cfg_attr(target_os = "none", allow(dead_code))]
    pub fn bytes(&self) -> u64 {
        (u64::from(self.gib) << 30) + (u64::from(self.mib2) << 21) + (u64::from(self.pages) << 12)
    }
}

/// Whether a record is guest memory.
pub fn is_guest(rec: &Record) -> bool {
    rec.block.get() >= BLOCK_BASE
}

/// The blocks of an extent: `(phys, block id)` for each.
pub fn blocks(rec: &Record) -> Result<impl Iterator<Item = (PhysAddr, u32)>, String> {
    let order = Order::try_new(rec.order.get()).map_err(|e| format!("{e}"))?;
    let count = u32::from(rec.count.get()).max(1);
    let spacing = u32::from(rec.spacing.get());
    let stride = order
        .bytes()
        .checked_shl(spacing)
        .filter(|_| spacing < 8)
        .ok_or("extent spacing too large")?;
    let start = rec.phys.get();
    u64::from(count - 1)
        .checked_mul(stride)
        .and_then(|span| start.checked_add(span))
        .and_then(|l| l.checked_add(order.bytes() - 1))
        .ok_or("extent wraps")?;
    let block = rec.block.get();
    block
        .checked_add(count - 1)
        .ok_or("extent block ids wrap")?;
    Ok((0..count).map(move |i| (PhysAddr::new(start + u64::from(i) * stride), block + i)))
}

/// The first word of a block's content.
fn base(seed: u64, generation: u32, block: u32) -> u64 {
    content::mix(seed ^ (u64::from(generation) << 40) ^ (u64::from(block) << 8) ^ 0x0067_7565_7374)
}

/// Fill a block with its content; returns its checksum (wrapping sum).
fn fill<M: PhysMem>(
    mem: &mut M,
    seed: u64,
    generation: u32,
    block: u32,
    phys: PhysAddr,
    order: Order,
) -> Result<u64, String> {
    let b = base(seed, generation, block);
    let mut sum = 0u64;
    content::fill(
        mem,
        phys,
        order,
        |i| b ^ i.wrapping_mul(WORD_STEP),
        |page| sum = page.iter().fold(sum, |s, &w| s.wrapping_add(w)),
    )?;
    Ok(sum)
}

/// Check every word of a block; returns its checksum.
fn check<M: PhysMem>(
    mem: &M,
    seed: u64,
    generation: u32,
    block: u32,
    phys: PhysAddr,
    order: Order,
) -> Result<u64, String> {
    let b = base(seed, generation, block);
    let mut sum = 0u64;
    content::check(
        mem,
        phys,
        order,
        |i| b ^ i.wrapping_mul(WORD_STEP),
        |page| sum = page.iter().fold(sum, |s, &w| s.wrapping_add(w)),
    )
    .map_err(|e| format!("guest block {block}: {e}"))?;
    Ok(sum)
}

/// Restore and check every block of an extent (its record came from the
/// previous generation's blob); returns the bytes checked.
pub fn verify<M: PhysMem>(
    k: &mut kho::KhoIn,
    mem: &mut M,
    seed: u64,
    rec: &Record,
) -> Result<u64, String> {
    let order = Order::try_new(rec.order.get()).map_err(|e| format!("{e}"))?;
    let mut sum = 0u64;
    let mut bytes = 0u64;
    for (phys, block) in blocks(rec)? {
        k.restore_folio(mem, phys, order)
            .map_err(|e| format!("guest block {block} at {phys}: {e}"))?;
        sum = sum.wrapping_add(check(mem, seed, rec.generation.get(), block, phys, order)?);
        bytes += order.bytes();
    }
    if sum != rec.checksum.get() {
        return Err(format!(
            "guest extent at {}: checksum {sum:#x}, blob says {:#x}",
            rec.phys.get(),
            rec.checksum.get()
        ));
    }
    Ok(bytes)
}

/// Preserve every block of an extent again.
pub fn preserve<M: PhysMem>(
    mem: &mut M,
    out: &mut kho::KhoOut,
    rec: &Record,
) -> Result<(), String> {
    let order = Order::try_new(rec.order.get()).map_err(|e| format!("{e}"))?;
    for (phys, _) in blocks(rec)? {
        out.preserve_folio(mem, phys, order)
            .map_err(|e| format!("guest block at {phys}: {e}"))?;
    }
    Ok(())
}

/// An extent being built: blocks of one order, `stride` bytes apart.
struct Open {
    rec: Record,
    stride: u64,
}

/// Allocate (with `alloc`, which need not zero: every byte is written),
/// fill and describe the guest memory `spec` asks for, as generation
/// `generation`; returns its extents (not yet preserved).
pub fn create<M: PhysMem>(
    mem: &mut M,
    alloc: fn(&mut M, Order) -> kho_mem::Result<PhysAddr>,
    spec: &GuestSpec,
    seed: u64,
    generation: u32,
) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut next_block = BLOCK_BASE;
    let mut open: Option<Open> = None;
    let add = |records: &mut Vec<Record>,
               open: &mut Option<Open>,
               phys: PhysAddr,
               order: u32,
               spacing: u16,
               block: u32,
               sum: u64| {
        let stride = (4096u64 << order) << spacing;
        if let Some(o) = open.as_mut() {
            let count = u32::from(o.rec.count.get());
            if o.rec.order.get() == order
                && o.rec.spacing.get() == spacing
                && o.rec.phys.get() + u64::from(count) * o.stride == phys.as_u64()
                && count < MAX_EXTENT
            {
                o.rec.count = U16::new((count + 1) as u16);
                o.rec.checksum = U64::new(o.rec.checksum.get().wrapping_add(sum));
                return;
            }
        }
        if let Some(done) = open.take() {
            records.push(done.rec);
        }
        *open = Some(Open {
            rec: Record {
                phys: U64::new(phys.as_u64()),
                checksum: U64::new(sum),
                order: U32::new(order),
                generation: U32::new(generation),
                block: U32::new(block),
                count: U16::new(1),
                spacing: U16::new(spacing),
            },
            stride,
        });
    };
    for (count, order) in [(spec.gib, ORDER_1G), (spec.mib2, ORDER_2M)] {
        let o = Order::try_new(order).map_err(|e| format!("{e}"))?;
        for _ in 0..count {
            let phys = alloc(mem, o).map_err(|e| format!("guest order-{order} folio: {e}"))?;
            let sum = fill(mem, seed, generation, next_block, phys, o)?;
            add(&mut records, &mut open, phys, order, 0, next_block, sum);
            next_block += 1;
        }
    }
    // The fragmented run: a page, a gap, a page ... the gaps are freed.
    let mut gaps: Vec<(PhysAddr, u32)> = Vec::new();
    for _ in 0..spec.pages {
        let phys = alloc(mem, Order::ZERO).map_err(|e| format!("guest page: {e}"))?;
        let sum = fill(mem, seed, generation, next_block, phys, Order::ZERO)?;
        add(&mut records, &mut open, phys, 0, 1, next_block, sum);
        next_block += 1;
        let gap = alloc(mem, Order::ZERO).map_err(|e| format!("guest page gap: {e}"))?;
        match gaps.last_mut() {
            Some((start, n)) if start.as_u64() + u64::from(*n) * 8192 == gap.as_u64() => *n += 1,
            _ => gaps.push((gap, 1)),
        }
    }
    if let Some(done) = open.take() {
        records.push(done.rec);
    }
    for (start, n) in gaps {
        for i in 0..u64::from(n) {
            mem.free_page(PhysAddr::new(start.as_u64() + i * 8192))
                .map_err(|e| format!("{e}"))?;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            GuestSpec::parse("1g:2,2m:400,4k:20000"),
            Ok(GuestSpec {
                gib: 2,
                mib2: 400,
                pages: 20000
            })
        );
        assert_eq!(GuestSpec::parse("4k:3").unwrap().bytes(), 3 * 4096);
        for bad in ["1g", "1g:x", "3m:1", "1g:1,1g:2", "1g:65", ""] {
            assert!(GuestSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extents_expand_to_their_blocks() {
        let rec = Record {
            phys: U64::new(0x1000_0000),
            checksum: U64::new(0),
            order: U32::new(0),
            generation: U32::new(1),
            block: U32::new(BLOCK_BASE + 5),
            count: U16::new(3),
            spacing: U16::new(1),
        };
        let b: Vec<_> = blocks(&rec).unwrap().collect();
        assert_eq!(
            b,
            [
                (PhysAddr::new(0x1000_0000), BLOCK_BASE + 5),
                (PhysAddr::new(0x1000_2000), BLOCK_BASE + 6),
                (PhysAddr::new(0x1000_4000), BLOCK_BASE + 7)
            ]
        );
        let wrapping = Record {
            phys: U64::new(u64::MAX - 4095),
            count: U16::new(2),
            ..rec
        };
        assert!(blocks(&wrapping).is_err());
    }

    /// Create on the host, hand over, verify; a changed word is named.
    #[test]
    fn created_memory_verifies_and_catches_a_changed_word() {
        use kho::{KhoIn, KhoOut};
        use kho_abi::AbiVersion;
        use kho_mem::{HostMem, PhysRange};
        use kho_radix::VisitedSet;
        use kho_scratch::ScratchAreas;

        for corrupt in [false, true] {
            let base = PhysAddr::new(0x4000_0000);
            let mut mem = HostMem::new(base, 64 << 20).unwrap();
            let scratch =
                PhysRange::try_new(PhysAddr::new(0x4000_0000 + (60 << 20)), 4 << 20).unwrap();
            mem.reserve(scratch).unwrap();
            let spec = GuestSpec {
                gib: 0,
                mib2: 3,
                pages: 5,
            };
            let records = create(&mut mem, |m, o| m.alloc_pages(o), &spec, 9, 0).unwrap();
            // Three contiguous folios make one extent; five pages another.
            assert_eq!(records.len(), 2, "{records:?}");
            let mut out = KhoOut::new(&mut mem, AbiVersion::NEWEST).unwrap();
            for r in &records {
                preserve(&mut mem, &mut out, r).unwrap();
            }
            if corrupt {
                let (phys, _) = blocks(&records[1]).unwrap().nth(4).unwrap();
                mem.write_u64(phys.checked_add(8 * 77).unwrap(), 1).unwrap();
            }
            let areas = ScratchAreas::from_ranges(&[scratch]).unwrap();
            let array = areas.write_array(&mut mem, scratch.start()).unwrap();
            let mut k = KhoIn::populate(&mem, out.handover(array)).unwrap();
            let mut buf = alloc::vec![0u64; VisitedSet::words_for(256)];
            k.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
                .unwrap();
            let mut bytes = 0;
            let mut result = Ok(());
            for r in &records {
                match verify(&mut k, &mut mem, 9, r) {
                    Ok(b) => bytes += b,
                    Err(e) => result = Err(e),
                }
            }
            if corrupt {
                let e = result.unwrap_err();
                assert!(e.contains("word 77"), "{e}");
            } else {
                result.unwrap();
                assert_eq!(bytes, spec.bytes());
                // Only the root FDT page is left.
                assert_eq!(k.unrestored_blocks(), 1);
            }
        }
    }
}
