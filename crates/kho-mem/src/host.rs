//! `HostMem`: a `PhysMem` over host memory at realistic physical addresses.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use zerocopy::IntoBytes;

use crate::{Error, Order, PAGE_SHIFT, PAGE_SIZE, PhysAddr, PhysMem, PhysRange, Result};

/// log2 of the bytes in one chunk of region memory, the unit the host
/// allocates on first write (1 MiB).
const CHUNK_SHIFT: u32 = 20;
/// Bytes in one chunk.
const CHUNK_SIZE: u64 = 1 << CHUNK_SHIFT;
/// Byte mask of an offset inside a chunk.
const CHUNK_MASK: u64 = CHUNK_SIZE - 1;

/// One RAM region: its bytes, in lazily allocated chunks, and which of its
/// pages are in use.
#[derive(Debug)]
struct Region {
    range: PhysRange,
    /// `range.start()` and `range.size()` as plain numbers.
    start: u64,
    size: u64,
    /// The region's bytes in [`CHUNK_SIZE`] pieces (the last one may be
    /// shorter), stored as words whose in-memory bytes are the region's
    /// bytes, so that an aligned `u64` access is one word (`from_le` /
    /// `to_le` of it). `None` reads as zeros; the first write of a non-zero
    /// byte allocates the chunk.
    chunks: Vec<Option<Box<[u64]>>>,
    /// Bit per page: allocated or reserved.
    used: Vec<u64>,
    /// Page index where the next search starts (next fit).
    hint: u64,
}

/// The bits of the word holding `page` that cover `page ..` up to `end`
/// (exclusive) within that word, and how many pages that is.
fn word_mask(page: u64, end: u64) -> (u64, u64) {
    let bit = page % 64;
    let n = (64 - bit).min(end - page);
    let mask = if n == 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << bit
    };
    (mask, n)
}

impl Region {
    fn pages(&self) -> u64 {
        self.range.size() >> PAGE_SHIFT
    }

    /// Mark pages `first .. first + count` used or free, a word at a time.
    fn set_used(&mut self, first: u64, count: u64, used: bool) {
        let end = first + count;
        let mut page = first;
        while page < end {
            let (mask, n) = word_mask(page, end);
            let word = &mut self.used[(page / 64) as usize];
            if used {
                *word |= mask;
            } else {
                *word &= !mask;
            }
            page += n;
        }
    }

    /// The first used page in `first .. end`, if any.
    fn first_used(&self, first: u64, end: u64) -> Option<u64> {
        let mut page = first;
        while page < end {
            let (mask, n) = word_mask(page, end);
            let hit = self.used[(page / 64) as usize] & mask;
            if hit != 0 {
                return Some(page / 64 * 64 + u64::from(hit.trailing_zeros()));
            }
            page += n;
        }
        None
    }

    /// First free naturally aligned block of `count` pages at or after `from`.
    fn find_free(&self, count: u64, from: u64) -> Option<u64> {
        let base_pfn = self.range.start().as_u64() >> PAGE_SHIFT;
        // Page index whose pfn is the first multiple of `count` at or after `from`.
        let first_aligned = |from: u64| -> Option<u64> {
            let pfn = base_pfn.checked_add(from)?;
            let aligned = pfn.checked_add(count - 1)? & !(count - 1);
            Some(aligned - base_pfn)
        };
        let mut page = first_aligned(from)?;
        while page.checked_add(count)? <= self.pages() {
            // A fully used word holds no free page: skip it whole.
            if self.used[(page / 64) as usize] == u64::MAX {
                page = first_aligned((page / 64 + 1) * 64)?;
                continue;
            }
            match self.first_used(page, page + count) {
                None => return Some(page),
                // Every candidate containing that page fails too.
                Some(used) => page = first_aligned(used + 1)?,
            }
        }
        None
    }

    /// The offset of `addr` in the region if all of `[addr, addr + len)`
    /// lies in it (plain arithmetic: this is on every access's path, in
    /// debug builds too).
    #[inline]
    fn offset(&self, addr: u64, len: u64) -> Option<u64> {
        let off = addr.wrapping_sub(self.start);
        if addr >= self.start && off < self.size && len <= self.size - off {
            Some(off)
        } else {
            None
        }
    }

    /// Bytes in chunk `index`.
    fn chunk_len(&self, index: usize) -> usize {
        let start = (index as u64) << CHUNK_SHIFT;
        (self.range.size() - start).min(CHUNK_SIZE) as usize
    }

    /// Copy the region's bytes at `off` into `buf` (bounds already checked).
    fn read_at(&self, off: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let at = off + done as u64;
            let inner = (at & CHUNK_MASK) as usize;
            let n = (CHUNK_SIZE as usize - inner).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match self.chunks.get((at >> CHUNK_SHIFT) as usize) {
                Some(Some(chunk)) => dst.copy_from_slice(&chunk.as_bytes()[inner..inner + n]),
                _ => dst.fill(0),
            }
            done += n;
        }
    }

    /// Copy `data` to the region's bytes at `off` (bounds already checked),
    /// allocating the chunks it writes non-zero bytes to.
    fn write_at(&mut self, off: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = off + done as u64;
            let index = (at >> CHUNK_SHIFT) as usize;
            let inner = (at & CHUNK_MASK) as usize;
            let n = (CHUNK_SIZE as usize - inner).min(data.len() - done);
            let src = &data[done..done + n];
            done += n;
            let len = self.chunk_len(index);
            let slot = &mut self.chunks[index];
            if slot.is_none() && src.iter().all(|&b| b == 0) {
                continue;
            }
            let chunk = slot.get_or_insert_with(|| vec![0u64; len / 8].into_boxed_slice());
            chunk.as_mut_bytes()[inner..inner + n].copy_from_slice(src);
        }
    }

    /// Zero the region's bytes `off .. off + len` (bounds already checked):
    /// chunks the range covers whole go back to `None`, chunks never
    /// allocated stay so.
    fn zero_at(&mut self, off: u64, len: u64) {
        let mut at = off;
        let end = off + len;
        while at < end {
            let index = (at >> CHUNK_SHIFT) as usize;
            let inner = (at & CHUNK_MASK) as usize;
            let chunk_len = self.chunk_len(index);
            let n = ((chunk_len - inner) as u64).min(end - at) as usize;
            let slot = &mut self.chunks[index];
            if inner == 0 && n == chunk_len {
                *slot = None;
            } else if let Some(chunk) = slot {
                chunk.as_mut_bytes()[inner..inner + n].fill(0);
            }
            at += n as u64;
        }
    }
}

/// A [`PhysMem`] backed by host memory, with one or more RAM regions at
/// chosen physical addresses and a page allocator over them.
///
/// Memory is sparse: a region's bytes live in 1 MiB chunks the host
/// allocates on the first write of a non-zero byte, and chunks never
/// written read as zeros. What an arena costs is the chunks it touched
/// plus one bit per page of RAM (32 MiB for 1 TiB) and a pointer per
/// chunk (16 MiB for 1 TiB), so tests can describe terabytes of RAM at
/// realistic addresses. Allocation is next-fit from low addresses and
/// hands out naturally aligned, zero-filled blocks (zeroing drops the
/// chunks a block covers whole). [`HostMem::reserve`] keeps ranges
/// (scratch, preserved memory) away from the allocator, and
/// [`HostMem::fail_allocations_after`] injects allocation failures for
/// error-path tests.
#[derive(Debug)]
pub struct HostMem {
    regions: Vec<Region>,
    /// Live allocations: start address -> order.
    live: BTreeMap<u64, u32>,
    allocated_pages: u64,
    fail_after: Option<u64>,
}

impl HostMem {
    /// RAM base used by tests that do not care: where QEMU's arm64 `virt`
    /// machine puts RAM, a realistic non-zero physical address.
    pub const DEFAULT_BASE: PhysAddr = PhysAddr::new(0x4000_0000);

    /// An arena with one RAM region `[base, base + size)`.
    pub fn new(base: PhysAddr, size: u64) -> Result<HostMem> {
        HostMem::with_ram(&[PhysRange::try_new(base, size)?])
    }

    /// An arena with the given RAM regions (page-aligned, non-empty,
    /// non-overlapping, in any order).
    pub fn with_ram(ram: &[PhysRange]) -> Result<HostMem> {
        let mut sorted: Vec<PhysRange> = ram.to_vec();
        sorted.sort();
        for r in &sorted {
            if r.is_empty() {
                return Err(Error::Empty {
                    addr: r.start().as_u64(),
                });
            }
            for v in [r.start().as_u64(), r.size()] {
                if v % PAGE_SIZE as u64 != 0 {
                    return Err(Error::Misaligned {
                        addr: v,
                        align: PAGE_SIZE as u64,
                    });
                }
            }
        }
        for pair in sorted.windows(2) {
            if pair[0].overlaps(pair[1]) {
                return Err(Error::Overlap {
                    first: pair[0].start().as_u64(),
                    second: pair[1].start().as_u64(),
                });
            }
        }
        let mut regions = Vec::with_capacity(sorted.len());
        for range in sorted {
            let too_big = Error::NotRam {
                addr: range.start().as_u64(),
                len: range.size(),
            };
            // Offsets into the region are computed in u64 and indexed in
            // usize: the region must be addressable on this host.
            usize::try_from(range.size()).map_err(|_| too_big)?;
            let chunks = usize::try_from(range.size().div_ceil(CHUNK_SIZE)).map_err(|_| too_big)?;
            let words =
                usize::try_from((range.size() >> PAGE_SHIFT).div_ceil(64)).map_err(|_| too_big)?;
            regions.push(Region {
                range,
                start: range.start().as_u64(),
                size: range.size(),
                chunks: vec![None; chunks],
                used: vec![0u64; words],
                hint: 0,
            });
        }
        Ok(HostMem {
            regions,
            live: BTreeMap::new(),
            allocated_pages: 0,
            fail_after: None,
        })
    }

    /// The RAM regions, ascending.
    pub fn ram(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.regions.iter().map(|r| r.range)
    }

    /// Pages currently handed out by [`PhysMem::alloc_pages`] and not freed.
    pub fn allocated_pages(&self) -> u64 {
        self.allocated_pages
    }

    /// Keep every page overlapping `range` away from the allocator.
    ///
    /// The range must be RAM; pages already allocated stay allocated.
    pub fn reserve(&mut self, range: PhysRange) -> Result<()> {
        let Some(last) = range.last() else {
            return Ok(());
        };
        if !self.is_ram(range.start(), range.size()) {
            return Err(Error::NotRam {
                addr: range.start().as_u64(),
                len: range.size(),
            });
        }
        let (region, _) = self.region_mut(range.start(), range.size())?;
        let first = (range.start().as_u64() - region.range.start().as_u64()) >> PAGE_SHIFT;
        let end = ((last.as_u64() - region.range.start().as_u64()) >> PAGE_SHIFT) + 1;
        region.set_used(first, end - first, true);
        Ok(())
    }

    /// After `n` more successful allocations, fail every allocation with
    /// [`Error::OutOfMemory`]; `None` turns injection off.
    pub fn fail_allocations_after(&mut self, n: Option<u64>) {
        self.fail_after = n;
    }

    /// The region holding all of `[addr, addr + len)` (`addr` alone if
    /// `len == 0`) and the offset of `addr` in it.
    #[inline]
    fn region(&self, addr: PhysAddr, len: u64) -> Result<(&Region, u64)> {
        let len_or_one = if len == 0 { 1 } else { len };
        for r in &self.regions {
            if let Some(off) = r.offset(addr.as_u64(), len_or_one) {
                return Ok((r, off));
            }
        }
        Err(Error::NotRam {
            addr: addr.as_u64(),
            len,
        })
    }

    /// [`HostMem::region`], mutable.
    #[inline]
    fn region_mut(&mut self, addr: PhysAddr, len: u64) -> Result<(&mut Region, u64)> {
        let len_or_one = if len == 0 { 1 } else { len };
        for r in &mut self.regions {
            if let Some(off) = r.offset(addr.as_u64(), len_or_one) {
                return Ok((r, off));
            }
        }
        Err(Error::NotRam {
            addr: addr.as_u64(),
            len,
        })
    }
}

impl PhysMem for HostMem {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let (r, off) = self.region(addr, buf.len() as u64)?;
        r.read_at(off, buf);
        Ok(())
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()> {
        let (r, off) = self.region_mut(addr, data.len() as u64)?;
        r.write_at(off, data);
        Ok(())
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        self.region(addr, len).is_ok()
    }

    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr> {
        if self.fail_after == Some(0) {
            return Err(Error::OutOfMemory { order: order.get() });
        }
        let count = order.pages();
        for r in &mut self.regions {
            let found = r.find_free(count, r.hint).or_else(|| r.find_free(count, 0));
            if let Some(page) = found {
                r.set_used(page, count, true);
                r.hint = page + count;
                r.zero_at(page << PAGE_SHIFT, order.bytes());
                let addr = r.range.start().as_u64() + (page << PAGE_SHIFT);
                self.live.insert(addr, order.get());
                self.allocated_pages += count;
                if let Some(n) = self.fail_after.as_mut() {
                    *n -= 1;
                }
                return Ok(PhysAddr::new(addr));
            }
        }
        Err(Error::OutOfMemory { order: order.get() })
    }

    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> Result<()> {
        let not_allocated = Error::NotAllocated {
            addr: addr.as_u64(),
            order: order.get(),
        };
        if self.live.get(&addr.as_u64()) != Some(&order.get()) {
            return Err(not_allocated);
        }
        let (r, _) = self.region_mut(addr, order.bytes())?;
        let first = (addr.as_u64() - r.range.start().as_u64()) >> PAGE_SHIFT;
        r.set_used(first, order.pages(), false);
        self.live.remove(&addr.as_u64());
        self.allocated_pages -= order.pages();
        Ok(())
    }

    #[inline]
    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        let (r, off) = self.region(addr, 8)?;
        // Fast path: an aligned word, one word of one chunk.
        if off % 8 == 0 {
            let word = (off & CHUNK_MASK) as usize / 8;
            return Ok(match r.chunks.get((off >> CHUNK_SHIFT) as usize) {
                Some(Some(chunk)) => u64::from_le(chunk[word]),
                _ => 0,
            });
        }
        let mut le = [0u8; 8];
        r.read_at(off, &mut le);
        Ok(u64::from_le_bytes(le))
    }

    #[inline]
    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        let (r, off) = self.region_mut(addr, 8)?;
        // Fast path: an aligned word in a chunk that exists.
        if off % 8 == 0
            && let Some(Some(chunk)) = r.chunks.get_mut((off >> CHUNK_SHIFT) as usize)
        {
            chunk[(off & CHUNK_MASK) as usize / 8] = value.to_le();
            return Ok(());
        }
        r.write_at(off, &value.to_le_bytes());
        Ok(())
    }

    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        let len = (out.len() as u64) * 8;
        let (r, off) = self.region(addr, len)?;
        let inner = off & CHUNK_MASK;
        // Fast path: aligned words in one chunk (a node page always is).
        if off % 8 == 0 && inner + len <= CHUNK_SIZE {
            match r.chunks.get((off >> CHUNK_SHIFT) as usize) {
                Some(Some(chunk)) => {
                    let first = inner as usize / 8;
                    out.copy_from_slice(&chunk[first..first + out.len()]);
                    if cfg!(target_endian = "big") {
                        for w in out.iter_mut() {
                            *w = u64::from_le(*w);
                        }
                    }
                }
                _ => out.fill(0),
            }
            return Ok(());
        }
        r.read_at(off, out.as_mut_bytes());
        if cfg!(target_endian = "big") {
            for w in out.iter_mut() {
                *w = u64::from_le(*w);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use proptest::prelude::*;

    fn order(o: u32) -> Order {
        Order::try_new(o).unwrap()
    }

    #[test]
    fn reads_and_writes_respect_ram_bounds() {
        let mut m = HostMem::new(HostMem::DEFAULT_BASE, 0x10_0000).unwrap();
        let end = PhysAddr::new(0x4010_0000);
        assert!(m.write_u64(PhysAddr::new(0x400f_fff8), 7).is_ok());
        assert_eq!(m.read_u64(PhysAddr::new(0x400f_fff8)), Ok(7));
        assert_eq!(
            m.read_u64(PhysAddr::new(0x400f_fffc)),
            Err(Error::NotRam {
                addr: 0x400f_fffc,
                len: 8
            })
        );
        assert_eq!(
            m.write(end, &[1]),
            Err(Error::NotRam {
                addr: 0x4010_0000,
                len: 1
            })
        );
        assert_eq!(
            m.read_u64(PhysAddr::new(u64::MAX - 3)),
            Err(Error::NotRam {
                addr: u64::MAX - 3,
                len: 8
            })
        );
        assert!(!m.is_ram(PhysAddr::new(0x3fff_f000), 0x2000));
        assert!(m.is_ram(HostMem::DEFAULT_BASE, 0x10_0000));
    }

    #[test]
    fn regions_must_be_aligned_and_disjoint() {
        let r = |a, s| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
        assert_eq!(
            HostMem::with_ram(&[r(0x1000, 0x2000), r(0x2000, 0x1000)]).unwrap_err(),
            Error::Overlap {
                first: 0x1000,
                second: 0x2000
            }
        );
        assert_eq!(
            HostMem::with_ram(&[r(0x1800, 0x1000)]).unwrap_err(),
            Error::Misaligned {
                addr: 0x1800,
                align: 4096
            }
        );
        assert_eq!(
            HostMem::with_ram(&[r(0x1000, 0)]).unwrap_err(),
            Error::Empty { addr: 0x1000 }
        );
        let m = HostMem::with_ram(&[r(0x8000_0000, 0x1000), r(0x1000, 0x1000)]).unwrap();
        assert_eq!(
            m.ram().map(|r| r.start().as_u64()).collect::<Vec<_>>(),
            [0x1000, 0x8000_0000]
        );
        // An access may not straddle a hole between regions.
        assert!(!m.is_ram(PhysAddr::new(0x1ff8), 16));
    }

    #[test]
    fn allocations_are_zeroed_aligned_and_freed_exactly() {
        let mut m = HostMem::new(PhysAddr::new(0x1000_0000), 4 << 20).unwrap();
        let a = m.alloc_page().unwrap();
        m.fill(a, 4096, 0xaa).unwrap();
        m.free_page(a).unwrap();
        let b = m.alloc_pages(order(9)).unwrap();
        assert!(b.is_aligned(2 << 20));
        let mut buf = [0xffu8; 64];
        m.read(b, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 64]);
        assert_eq!(m.allocated_pages(), 512);
        assert_eq!(
            m.free_pages(b, order(8)),
            Err(Error::NotAllocated {
                addr: b.as_u64(),
                order: 8
            })
        );
        assert_eq!(m.free_pages(b, order(9)), Ok(()));
        assert_eq!(
            m.free_pages(b, order(9)),
            Err(Error::NotAllocated {
                addr: b.as_u64(),
                order: 9
            })
        );
        assert_eq!(m.allocated_pages(), 0);
    }

    #[test]
    fn reserved_ranges_are_never_allocated() {
        let base = PhysAddr::new(0x1000_0000);
        let mut m = HostMem::new(base, 64 * 4096).unwrap();
        m.reserve(PhysRange::try_new(PhysAddr::new(0x1000_0800), 0x1_0000).unwrap())
            .unwrap();
        let mut got = Vec::new();
        while let Ok(p) = m.alloc_page() {
            got.push(p.as_u64());
        }
        // 0x1000_0800 .. 0x1001_0800 touches pages 0..=16: 17 reserved pages.
        assert_eq!(got.len(), 64 - 17);
        assert!(got.iter().all(|&p| p >= 0x1001_1000));
        assert_eq!(m.alloc_page(), Err(Error::OutOfMemory { order: 0 }));
    }

    #[test]
    fn injected_failures() {
        let mut m = HostMem::new(HostMem::DEFAULT_BASE, 1 << 20).unwrap();
        m.fail_allocations_after(Some(2));
        assert!(m.alloc_page().is_ok());
        assert!(m.alloc_page().is_ok());
        assert_eq!(m.alloc_page(), Err(Error::OutOfMemory { order: 0 }));
        m.fail_allocations_after(None);
        assert!(m.alloc_page().is_ok());
    }

    #[test]
    fn read_u64s_matches_read_u64() {
        let mut m = HostMem::new(HostMem::DEFAULT_BASE, 1 << 20).unwrap();
        for i in 0..600u64 {
            m.write_u64(PhysAddr::new(0x4000_0000 + i * 8), i * 3)
                .unwrap();
        }
        let mut out = [0u64; 600];
        m.read_u64s(HostMem::DEFAULT_BASE, &mut out).unwrap();
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as u64 * 3));
        // The trait's default implementation agrees with the override.
        let mut via_default = [0u64; 600];
        struct Plain<'a>(&'a HostMem);
        impl PhysMem for Plain<'_> {
            fn read(&self, a: PhysAddr, b: &mut [u8]) -> Result<()> {
                self.0.read(a, b)
            }
            fn write(&mut self, _: PhysAddr, _: &[u8]) -> Result<()> {
                unreachable!()
            }
            fn is_ram(&self, a: PhysAddr, l: u64) -> bool {
                self.0.is_ram(a, l)
            }
            fn alloc_pages(&mut self, o: Order) -> Result<PhysAddr> {
                Err(Error::OutOfMemory { order: o.get() })
            }
            fn free_pages(&mut self, a: PhysAddr, o: Order) -> Result<()> {
                Err(Error::NotAllocated {
                    addr: a.as_u64(),
                    order: o.get(),
                })
            }
        }
        Plain(&m)
            .read_u64s(HostMem::DEFAULT_BASE, &mut via_default)
            .unwrap();
        assert_eq!(out, via_default);
    }

    impl HostMem {
        /// Chunks currently allocated, over every region.
        fn touched_chunks(&self) -> usize {
            self.regions
                .iter()
                .map(|r| r.chunks.iter().filter(|c| c.is_some()).count())
                .sum()
        }
    }

    #[test]
    fn a_terabyte_region_costs_what_it_touches() {
        const TIB: u64 = 1 << 40;
        const GIB: u64 = 1 << 30;
        let mut m = HostMem::new(PhysAddr::new(TIB), TIB).unwrap();
        assert!(m.is_ram(PhysAddr::new(TIB), TIB));
        assert_eq!(m.touched_chunks(), 0);
        let first = PhysAddr::new(TIB);
        let last = PhysAddr::new(2 * TIB - 8);
        m.write_u64(first, 0x0123_4567_89ab_cdef).unwrap();
        m.write(last, b"the end.").unwrap();
        assert_eq!(m.read_u64(first), Ok(0x0123_4567_89ab_cdef));
        let mut end = [0u8; 8];
        m.read(last, &mut end).unwrap();
        assert_eq!(&end, b"the end.");
        assert_eq!(m.read_u64(PhysAddr::new(TIB + TIB / 2)), Ok(0));
        assert_eq!(m.touched_chunks(), 2);
        assert_eq!(
            m.read_u64(PhysAddr::new(2 * TIB - 4)),
            Err(Error::NotRam {
                addr: 2 * TIB - 4,
                len: 8
            })
        );

        // Every 1 GiB block, in address order; allocating one zeroes it by
        // dropping the chunks it covers.
        let gib = order(18);
        for i in 0..1024 {
            let block = m.alloc_pages(gib).unwrap();
            assert_eq!(block.as_u64(), TIB + i * GIB);
        }
        assert_eq!(m.alloc_pages(gib), Err(Error::OutOfMemory { order: 18 }));
        assert_eq!(m.alloc_page(), Err(Error::OutOfMemory { order: 0 }));
        assert_eq!(m.allocated_pages(), TIB >> PAGE_SHIFT);
        assert_eq!(m.touched_chunks(), 0);
        assert_eq!(m.read_u64(first), Ok(0));
        m.read(last, &mut end).unwrap();
        assert_eq!(end, [0u8; 8]);

        // A freed block in the middle is found again, by any order.
        let middle = PhysAddr::new(TIB + 517 * GIB);
        m.free_pages(middle, gib).unwrap();
        assert_eq!(m.alloc_pages(order(9)), Ok(middle));
        assert_eq!(m.alloc_page(), Ok(middle.checked_add(2 << 20).unwrap()));
    }

    #[test]
    fn accesses_cross_chunk_boundaries() {
        let base = 0x8000_0000u64;
        let mut m = HostMem::new(PhysAddr::new(base), 3 * CHUNK_SIZE).unwrap();
        let seam = base + CHUNK_SIZE;
        let data: Vec<u8> = (0..200u8).collect();
        m.write(PhysAddr::new(seam - 100), &data).unwrap();
        let mut back = [0u8; 200];
        m.read(PhysAddr::new(seam - 100), &mut back).unwrap();
        assert_eq!(&back[..], &data[..]);
        assert_eq!(m.touched_chunks(), 2);

        // Unaligned words across the next seam, written and read both ways.
        let seam2 = seam + CHUNK_SIZE;
        m.write_u64(PhysAddr::new(seam2 - 3), 0x1122_3344_5566_7788)
            .unwrap();
        assert_eq!(
            m.read_u64(PhysAddr::new(seam2 - 3)),
            Ok(0x1122_3344_5566_7788)
        );
        let mut bytes = [0u8; 8];
        m.read(PhysAddr::new(seam2 - 3), &mut bytes).unwrap();
        assert_eq!(u64::from_le_bytes(bytes), 0x1122_3344_5566_7788);
        let mut words = [0u64; 3];
        m.read_u64s(PhysAddr::new(seam2 - 11), &mut words).unwrap();
        assert_eq!(words[1], 0x1122_3344_5566_7788);
        assert_eq!(m.touched_chunks(), 3);

        // Zeros written to a chunk never touched leave it unallocated.
        let mut m = HostMem::new(PhysAddr::new(base), 3 * CHUNK_SIZE).unwrap();
        m.fill(PhysAddr::new(seam - 4096), 3 * 4096, 0).unwrap();
        m.write_u64(PhysAddr::new(seam2), 0).unwrap();
        assert_eq!(m.touched_chunks(), 0);
    }

    #[test]
    fn reallocated_blocks_read_as_zero() {
        // 2 MiB and one page: the order-9 block covers two chunks whole, the
        // page is the whole of a short last chunk. Each block has only one
        // place to go, so reallocation returns the same memory.
        let base = PhysAddr::new(0x4000_0000);
        let mut m = HostMem::new(base, (2 << 20) + 4096).unwrap();
        let big = m.alloc_pages(order(9)).unwrap();
        let small = m.alloc_page().unwrap();
        assert_eq!(small.as_u64(), big.as_u64() + (2 << 20));
        m.fill(big, 2 << 20, 0xaa).unwrap();
        m.fill(small, 4096, 0x55).unwrap();
        assert_eq!(m.touched_chunks(), 3);
        m.free_pages(big, order(9)).unwrap();
        m.free_page(small).unwrap();
        // Freed memory keeps its bytes until it is allocated again.
        assert_eq!(m.read_u64(small), Ok(0x5555_5555_5555_5555));
        assert_eq!(m.alloc_pages(order(9)), Ok(big));
        assert_eq!(m.alloc_page(), Ok(small));
        let mut words = [0xffu64; 512];
        for at in (0..(2 << 20) + 4096).step_by(4096) {
            m.read_u64s(big.checked_add(at).unwrap(), &mut words)
                .unwrap();
            assert!(words.iter().all(|&w| w == 0), "{at:#x}");
        }

        // A page inside a chunk that stays allocated is zeroed in place.
        let mut m = HostMem::new(base, 16 * 4096).unwrap();
        let pages: Vec<PhysAddr> = (0..16).map(|_| m.alloc_page().unwrap()).collect();
        for &p in &pages {
            m.fill(p, 4096, 0xcc).unwrap();
        }
        m.free_page(pages[7]).unwrap();
        assert_eq!(m.alloc_page(), Ok(pages[7]));
        let mut page = [0xffu8; 4096];
        m.read(pages[7], &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0));
        m.read(pages[8], &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0xcc));
    }

    #[test]
    fn large_ranges_mark_whole_words() {
        // An unaligned base so that blocks start mid-word.
        let base = PhysAddr::new(0x4000_0000 + 5 * 4096);
        let mut m = HostMem::new(base, 1 << 30).unwrap();
        m.reserve(PhysRange::try_new(base, 4096 * 1000).unwrap())
            .unwrap();
        let r = &m.regions[0];
        assert_eq!(r.first_used(0, r.pages()), Some(0));
        assert_eq!(r.first_used(1000, r.pages()), None);
        assert_eq!(r.first_used(999, 1000), Some(999));
        // The first free 2 MiB-aligned block after 1000 reserved pages.
        let b = m.alloc_pages(order(9)).unwrap();
        assert_eq!(b.as_u64(), 0x4000_0000 + (1024 << 12));
        let r = &m.regions[0];
        // Its pages are 1019 .. 1531 of the region, set across 9 words.
        assert_eq!(r.first_used(1000, 1019), None);
        assert_eq!(r.first_used(1000, 1020), Some(1019));
        assert_eq!(r.first_used(1530, r.pages()), Some(1530));
        assert_eq!(r.first_used(1531, r.pages()), None);
        m.free_pages(b, order(9)).unwrap();
        let r = &m.regions[0];
        assert_eq!(r.first_used(1000, r.pages()), None);
    }

    proptest! {
        /// Reads and writes at random offsets around chunk seams agree with
        /// a flat model of the region's bytes.
        #[test]
        fn bytes_match_a_flat_model(ops in proptest::collection::vec((0u64..6, 0u64..64, 1usize..300, any::<u8>()), 1..50)) {
            let base = 0x1_0000_0000u64;
            let size = 3 * CHUNK_SIZE;
            let mut m = HostMem::new(PhysAddr::new(base), size).unwrap();
            let mut model = vec![0u8; size as usize];
            for (seam, delta, len, byte) in ops {
                // Offsets just before and after the two chunk seams and the end.
                let around = (seam / 2 + 1) * CHUNK_SIZE;
                let off = if seam % 2 == 0 { around - delta - 1 } else { around + delta };
                let off = off.min(size - 1);
                let len = len.min((size - off) as usize);
                let data: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                m.write(PhysAddr::new(base + off), &data).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&data);
                let start = off.saturating_sub(16);
                let n = (len as u64 + 32).min(size - start) as usize;
                let mut back = vec![0u8; n];
                m.read(PhysAddr::new(base + start), &mut back).unwrap();
                prop_assert_eq!(&back[..], &model[start as usize..start as usize + n]);
                if off + 8 <= size {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(&model[off as usize..off as usize + 8]);
                    prop_assert_eq!(m.read_u64(PhysAddr::new(base + off)), Ok(u64::from_le_bytes(le)));
                }
            }
        }

        /// Random alloc/free sequences: blocks never overlap, stay aligned and
        /// inside RAM, and the page count matches a model.
        #[test]
        fn allocator_model(ops in proptest::collection::vec((0u32..5, any::<bool>(), any::<u16>()), 1..200)) {
            let base = PhysAddr::new(0x2000_0000);
            let mut m = HostMem::new(base, 256 * 4096).unwrap();
            let mut live: BTreeSet<(u64, u32)> = BTreeSet::new();
            for (o, alloc, pick) in ops {
                if alloc || live.is_empty() {
                    if let Ok(a) = m.alloc_pages(order(o)) {
                        let size = 4096u64 << o;
                        prop_assert!(a.is_aligned(size));
                        prop_assert!(m.is_ram(a, size));
                        for &(b, bo) in &live {
                            let bsize = 4096u64 << bo;
                            prop_assert!(a.as_u64() + size <= b || b + bsize <= a.as_u64());
                        }
                        live.insert((a.as_u64(), o));
                    }
                } else {
                    let &(a, ao) = live.iter().nth(pick as usize % live.len()).unwrap();
                    prop_assert_eq!(m.free_pages(PhysAddr::new(a), order(ao)), Ok(()));
                    live.remove(&(a, ao));
                }
                let pages: u64 = live.iter().map(|&(_, o)| 1u64 << o).sum();
                prop_assert_eq!(m.allocated_pages(), pages);
            }
        }
    }
}
