//! `ScratchAllocator`: the early allocator of a KHO boot.
//!
//! During a KHO boot nothing outside scratch may be touched until every
//! preserved block is known (Linux: `memblock_set_kho_scratch_only()` from
//! `kho_populate` until memblock releases memory). This allocator enforces
//! that:
//!
//! - **Scratch-only mode** (the initial mode): the pool is the scratch
//!   areas, nothing else.
//! - After [`ScratchAllocator::end_scratch_only`] (call it once the
//!   preserved-memory walk has [`reserve`](ScratchAllocator::reserve)d
//!   every preserved block): the pool is the scratch areas plus the usable
//!   RAM of the memory map passed to that call.
//!
//! In both modes, allocation is **first fit by ascending address** over the
//! pool (touching or overlapping pool ranges count as one contiguous range,
//! as memblock merges them), page-granular (sizes round up to whole pages, alignments below a
//! page become a page), and never returns a page that overlaps a reserved
//! range or an earlier allocation: every allocation is itself recorded as
//! reserved. Reservations are kept sorted and merged (overlapping or
//! touching ranges coalesce), rounded outward to whole pages, in a list of
//! at most `N` disjoint ranges ([`DEFAULT_RESERVED_CAPACITY`] by default);
//! when it is full, [`Error::ReservedFull`] is returned and nothing changes.
//! Reserve what must survive — the incoming FDT and descriptor array, the
//! running image, preserved blocks as the radix walk reports them — before
//! allocating. Nothing is ever freed (like memblock before the page
//! allocator: early allocations are simply handed over).
//!
//! Internally everything is in page frame numbers, so ranges ending at
//! 2^64 are handled without overflow.

use kho_mem::{PAGE_SHIFT, PAGE_SIZE, PhysAddr, PhysRange};

use crate::{Error, MAX_AREAS, MAX_MEMMAP_ENTRIES, MemRegion, Result, ScratchAreas};

/// Default capacity of the allocator's reservation list.
pub const DEFAULT_RESERVED_CAPACITY: usize = 256;

/// A half-open range of page frames `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Frames {
    start: u64,
    end: u64,
}

impl Frames {
    /// Pages fully inside `r` (scratch and RAM are rounded inward).
    fn inner(r: PhysRange) -> Frames {
        let start = u128::from(r.start().as_u64());
        let end = start + u128::from(r.size());
        let page = PAGE_SIZE as u128;
        let first = start.div_ceil(page) as u64;
        let last = (end / page) as u64;
        Frames {
            start: first,
            end: last.max(first),
        }
    }

    /// Pages touching `r` (reservations are rounded outward).
    fn outer(r: PhysRange) -> Frames {
        let start = u128::from(r.start().as_u64());
        let end = start + u128::from(r.size());
        let page = PAGE_SIZE as u128;
        Frames {
            start: (start / page) as u64,
            end: end.div_ceil(page) as u64,
        }
    }

    fn is_empty(self) -> bool {
        self.start >= self.end
    }

    fn to_range(self) -> Result<PhysRange> {
        let bytes = (self.end - self.start) << PAGE_SHIFT;
        Ok(PhysRange::try_new(
            PhysAddr::new(self.start << PAGE_SHIFT),
            bytes,
        )?)
    }
}

/// The early allocator of a KHO boot (see the module docs).
///
/// ```
/// use kho_mem::{PhysAddr, PhysRange};
/// use kho_scratch::{MemRegion, NodeId, ScratchAllocator, ScratchAreas};
///
/// let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
/// let areas = ScratchAreas::from_ranges(&[r(0x4000_0000, 0x20_0000)])?;
/// let mut early: ScratchAllocator = ScratchAllocator::new(&areas);
/// early.reserve(r(0x4000_0000, 0x1000))?; // e.g. the incoming array's page
/// assert_eq!(early.alloc(0x1000, 0x1000)?, r(0x4000_1000, 0x1000));
/// assert_eq!(early.alloc(0x10, 0x4000)?, r(0x4000_4000, 0x1000));
/// assert!(early.alloc(0x20_0000, 0x1000).is_err()); // scratch is exhausted
///
/// // The preserved-memory walk is done: other RAM may be used now.
/// early.end_scratch_only(&[MemRegion::ram(r(0x4000_0000, 0x100_0000), NodeId::ZERO)])?;
/// assert_eq!(early.alloc(0x20_0000, 0x20_0000)?, r(0x4020_0000, 0x20_0000));
/// # Ok::<(), kho_scratch::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ScratchAllocator<const N: usize = DEFAULT_RESERVED_CAPACITY> {
    scratch: [Frames; MAX_AREAS],
    scratch_len: usize,
    ram: [Frames; MAX_MEMMAP_ENTRIES],
    ram_len: usize,
    reserved: [Frames; N],
    reserved_len: usize,
    scratch_only: bool,
}

impl<const N: usize> ScratchAllocator<N> {
    /// An allocator in scratch-only mode over `areas` (empty areas and
    /// partial pages at their edges are ignored).
    pub fn new(areas: &ScratchAreas) -> Self {
        let mut scratch = [Frames::default(); MAX_AREAS];
        let mut scratch_len = 0;
        for f in areas.ranges().map(Frames::inner).filter(|f| !f.is_empty()) {
            scratch[scratch_len] = f;
            scratch_len += 1;
        }
        ScratchAllocator {
            scratch,
            scratch_len,
            ram: [Frames::default(); MAX_MEMMAP_ENTRIES],
            ram_len: 0,
            reserved: [Frames::default(); N],
            reserved_len: 0,
            scratch_only: true,
        }
    }

    /// Whether only scratch is handed out.
    pub fn is_scratch_only(&self) -> bool {
        self.scratch_only
    }

    /// Keep `range` (rounded outward to pages) from ever being handed out.
    pub fn reserve(&mut self, range: PhysRange) -> Result<()> {
        let f = Frames::outer(range);
        if f.is_empty() {
            return Ok(());
        }
        self.insert_reserved(f)
    }

    /// The reserved ranges (including allocations), sorted and merged.
    pub fn reserved(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.reserved[..self.reserved_len]
            .iter()
            .filter_map(|f| f.to_range().ok())
    }

    /// Allocate `size` bytes (rounded up to pages) aligned to `align` (a
    /// power of two; at least a page), first fit by ascending address.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<PhysRange> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(Error::BadAlignment { align });
        }
        let pages = size.div_ceil(PAGE_SIZE as u64);
        let align_pages = (align >> PAGE_SHIFT).max(1);
        let oom = Error::OutOfMemory {
            size,
            align,
            scratch_only: self.scratch_only,
        };
        let start = self.lowest_fit(pages, align_pages).ok_or(oom)?;
        let block = Frames {
            start,
            end: start + pages, // lowest_fit checked it fits
        };
        self.insert_reserved(block)?;
        block.to_range()
    }

    /// End scratch-only mode: from now on the usable RAM in `map` may be
    /// handed out too (still never anything reserved). Calling it again
    /// replaces the RAM list.
    pub fn end_scratch_only(&mut self, map: &[MemRegion]) -> Result<()> {
        let mut ram = [Frames::default(); MAX_MEMMAP_ENTRIES];
        let mut len = 0;
        for f in map
            .iter()
            .filter(|r| r.is_usable_ram())
            .map(|r| Frames::inner(r.range))
            .filter(|f| !f.is_empty())
        {
            let slot = ram.get_mut(len).ok_or(Error::TooManyMemoryRegions {
                max: MAX_MEMMAP_ENTRIES,
            })?;
            *slot = f;
            len += 1;
        }
        self.ram = ram;
        self.ram_len = len;
        self.scratch_only = false;
        Ok(())
    }

    /// The pool: scratch, plus RAM once scratch-only mode has ended.
    fn pool(&self) -> impl Iterator<Item = Frames> + '_ {
        self.scratch[..self.scratch_len]
            .iter()
            .chain(self.ram[..self.ram_len].iter())
            .copied()
    }

    /// The lowest `align`-aligned start of `pages` frames that lie in the
    /// pool (which may be made of several touching or overlapping ranges)
    /// and overlap no reservation.
    fn lowest_fit(&self, pages: u64, align: u64) -> Option<u64> {
        let reserved = &self.reserved[..self.reserved_len];
        let mut c = self
            .pool()
            .map(|f| f.start)
            .min()?
            .checked_next_multiple_of(align)?;
        loop {
            let end = c.checked_add(pages)?;
            // Coverage: walk through the pool ranges from `c`.
            let mut pos = c;
            while pos < end {
                match self
                    .pool()
                    .filter(|f| f.start <= pos && pos < f.end)
                    .map(|f| f.end)
                    .max()
                {
                    Some(next) => pos = next,
                    None => break,
                }
            }
            if pos < end {
                // `pos` is not in the pool: no block containing it fits;
                // continue at the next pool range above it.
                c = self
                    .pool()
                    .filter(|f| f.start > pos)
                    .map(|f| f.start)
                    .min()?
                    .checked_next_multiple_of(align)?;
                continue;
            }
            // Reservations are sorted and disjoint: the first one ending
            // above `c` is the only candidate for the lowest overlap.
            let i = reserved.partition_point(|r| r.end <= c);
            match reserved.get(i) {
                Some(r) if r.start < end => c = r.end.checked_next_multiple_of(align)?,
                _ => return Some(c),
            }
        }
    }

    /// Insert into the sorted, merged list; nothing changes on failure.
    fn insert_reserved(&mut self, f: Frames) -> Result<()> {
        let len = self.reserved_len;
        let list = &self.reserved[..len];
        // First entry that touches or follows `f`, and one past the last
        // entry that touches or precedes it.
        let lo = list.partition_point(|r| r.end < f.start);
        let hi = list.partition_point(|r| r.start <= f.end);
        if lo == hi {
            // Disjoint from everything: insert at `lo`.
            if len == N {
                return Err(Error::ReservedFull { capacity: N });
            }
            self.reserved.copy_within(lo..len, lo + 1);
            self.reserved[lo] = f;
            self.reserved_len += 1;
        } else {
            let merged = Frames {
                start: f.start.min(list[lo].start),
                end: f.end.max(list[hi - 1].end),
            };
            self.reserved[lo] = merged;
            self.reserved.copy_within(hi..len, lo + 1);
            self.reserved_len -= hi - lo - 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn r(a: u64, s: u64) -> PhysRange {
        PhysRange::try_new(PhysAddr::new(a), s).unwrap()
    }

    #[test]
    fn merging_and_capacity() {
        let areas = ScratchAreas::from_ranges(&[r(0, 0x10_0000)]).unwrap();
        let mut a: ScratchAllocator<3> = ScratchAllocator::new(&areas);
        a.reserve(r(0x5000, 0x1000)).unwrap();
        a.reserve(r(0x1000, 0x1000)).unwrap();
        a.reserve(r(0x9000, 1)).unwrap();
        assert_eq!(
            a.reserve(r(0xb000, 1)),
            Err(Error::ReservedFull { capacity: 3 })
        );
        // Touching ranges merge, so this still fits.
        a.reserve(r(0x2000, 0x3000)).unwrap();
        assert!(a.reserved().eq([r(0x1000, 0x5000), r(0x9000, 0x1000)]));
        a.reserve(r(0x7fff, 2)).unwrap(); // rounds outward to two pages
        assert!(a.reserved().eq([r(0x1000, 0x5000), r(0x7000, 0x3000)]));
        a.reserve(r(0, 0x20000)).unwrap();
        assert!(a.reserved().eq([r(0, 0x20000)]));
        a.reserve(r(0x50000, 0)).unwrap(); // empty: nothing
        assert_eq!(a.reserved().count(), 1);
        // An allocation that cannot be recorded is not handed out.
        a.reserve(r(0x30000, 0x1000)).unwrap();
        a.reserve(r(0x40000, 0x1000)).unwrap();
        // First fit at 0x80000 would be a fourth disjoint range.
        assert_eq!(
            a.alloc(0x1000, 0x4_0000),
            Err(Error::ReservedFull { capacity: 3 })
        );
        assert!(
            a.reserved()
                .eq([r(0, 0x20000), r(0x30000, 0x1000), r(0x40000, 0x1000)])
        );
        // At 0x20000 it touches the first range and merges.
        assert_eq!(a.alloc(0x1000, 0x2_0000), Ok(r(0x20000, 0x1000)));
    }

    #[test]
    fn argument_errors() {
        let areas = ScratchAreas::from_ranges(&[r(0x20_0000, 0x20_0000)]).unwrap();
        let mut a: ScratchAllocator = ScratchAllocator::new(&areas);
        assert_eq!(a.alloc(0, 4096), Err(Error::ZeroSize));
        assert_eq!(a.alloc(1, 3), Err(Error::BadAlignment { align: 3 }));
        assert_eq!(a.alloc(1, 0), Err(Error::BadAlignment { align: 0 }));
        assert_eq!(
            a.alloc(0x40_0000, 4096),
            Err(Error::OutOfMemory {
                size: 0x40_0000,
                align: 4096,
                scratch_only: true
            })
        );
        assert_eq!(
            a.alloc(u64::MAX, 1 << 63).map(|_| ()),
            Err(Error::OutOfMemory {
                size: u64::MAX,
                align: 1 << 63,
                scratch_only: true
            })
        );
        // Small alignments become a page.
        assert_eq!(a.alloc(1, 1), Ok(r(0x20_0000, 0x1000)));
        assert_eq!(a.alloc(1, 8), Ok(r(0x20_1000, 0x1000)));
    }

    #[test]
    fn top_of_the_address_space() {
        let top = r(0xffff_ffff_ffe0_0000, 0x20_0000);
        let areas = ScratchAreas::from_ranges(&[top]).unwrap();
        let mut a: ScratchAllocator = ScratchAllocator::new(&areas);
        a.reserve(r(0xffff_ffff_ffff_f000, 0x1000)).unwrap();
        assert_eq!(
            a.alloc(0x1f_f000, 4096),
            Ok(r(0xffff_ffff_ffe0_0000, 0x1f_f000))
        );
        assert!(a.alloc(1, 1).is_err());
    }

    #[test]
    fn unaligned_areas_are_rounded_inward() {
        let areas = ScratchAreas::from_ranges(&[r(0x1800, 0x2000), r(0x10_0000, 0x800)]).unwrap();
        let mut a: ScratchAllocator = ScratchAllocator::new(&areas);
        assert_eq!(a.alloc(1, 1), Ok(r(0x2000, 0x1000)));
        assert!(a.alloc(1, 1).is_err());
        a.end_scratch_only(&[MemRegion::new(
            r(0x4000, 0x4000),
            crate::MemKind::Reserved,
            NodeId::ZERO,
        )])
        .unwrap();
        assert!(a.alloc(1, 1).is_err(), "reserved map entries are not RAM");
        assert!(!a.is_scratch_only());
        let many: std::vec::Vec<MemRegion> = (0..=MAX_MEMMAP_ENTRIES as u64)
            .map(|i| MemRegion::ram(r(i << 20, 0x1000), NodeId::ZERO))
            .collect();
        assert_eq!(
            a.end_scratch_only(&many),
            Err(Error::TooManyMemoryRegions {
                max: MAX_MEMMAP_ENTRIES
            })
        );
    }
}
