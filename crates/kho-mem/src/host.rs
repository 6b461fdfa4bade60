//! `HostMem`: a `PhysMem` over host memory at realistic physical addresses.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::{Error, Order, PAGE_SHIFT, PAGE_SIZE, PhysAddr, PhysMem, PhysRange, Result};

/// One RAM region: its bytes and which of its pages are in use.
#[derive(Debug)]
struct Region {
    range: PhysRange,
    bytes: Vec<u8>,
    /// Bit per page: allocated or reserved.
    used: Vec<u64>,
    /// Page index where the next search starts (next fit).
    hint: u64,
}

impl Region {
    fn pages(&self) -> u64 {
        self.range.size() >> PAGE_SHIFT
    }

    fn is_used(&self, page: u64) -> bool {
        self.used[(page / 64) as usize] & (1 << (page % 64)) != 0
    }

    fn set_used(&mut self, first: u64, count: u64, used: bool) {
        for page in first..first + count {
            let word = &mut self.used[(page / 64) as usize];
            if used {
                *word |= 1 << (page % 64);
            } else {
                *word &= !(1 << (page % 64));
            }
        }
    }

    fn block_is_free(&self, first: u64, count: u64) -> bool {
        let mut page = first;
        let end = first + count;
        while page < end {
            if page.is_multiple_of(64) && end - page >= 64 {
                if self.used[(page / 64) as usize] != 0 {
                    return false;
                }
                page += 64;
            } else {
                if self.is_used(page) {
                    return false;
                }
                page += 1;
            }
        }
        true
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
            if count == 1 && self.used[(page / 64) as usize] == u64::MAX {
                page = (page / 64 + 1) * 64;
                continue;
            }
            if self.block_is_free(page, count) {
                return Some(page);
            }
            page = first_aligned(page + count)?;
        }
        None
    }

    fn offset(&self, addr: PhysAddr, len: u64) -> Option<usize> {
        let off = addr.checked_offset_from(self.range.start())?;
        let end = off.checked_add(len)?;
        if end > self.range.size() {
            return None;
        }
        usize::try_from(off).ok()
    }
}

/// A [`PhysMem`] backed by host memory, with one or more RAM regions at
/// chosen physical addresses and a page allocator over them.
///
/// Region bytes are allocated zeroed, so the host only commits the pages that
/// are touched: an arena can describe gigabytes of RAM cheaply. Allocation is
/// next-fit from low addresses and hands out naturally aligned blocks.
/// [`HostMem::reserve`] keeps ranges (scratch, preserved memory) away from
/// the allocator, and [`HostMem::fail_allocations_after`] injects allocation
/// failures for error-path tests.
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
            let len = usize::try_from(range.size()).map_err(|_| Error::NotRam {
                addr: range.start().as_u64(),
                len: range.size(),
            })?;
            let pages = range.size() >> PAGE_SHIFT;
            regions.push(Region {
                range,
                bytes: vec![0u8; len],
                used: vec![0u64; pages.div_ceil(64) as usize],
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
        let region = self.region_mut(range.start(), range.size())?;
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

    fn region(&self, addr: PhysAddr, len: u64) -> Result<(&Region, usize)> {
        let len_or_one = len.max(1);
        for r in &self.regions {
            if let Some(off) = r.offset(addr, len_or_one) {
                return Ok((r, off));
            }
        }
        Err(Error::NotRam {
            addr: addr.as_u64(),
            len,
        })
    }

    fn region_mut(&mut self, addr: PhysAddr, len: u64) -> Result<&mut Region> {
        let len_or_one = len.max(1);
        self.regions
            .iter_mut()
            .find(|r| r.offset(addr, len_or_one).is_some())
            .ok_or(Error::NotRam {
                addr: addr.as_u64(),
                len,
            })
    }
}

impl PhysMem for HostMem {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let (r, off) = self.region(addr, buf.len() as u64)?;
        buf.copy_from_slice(&r.bytes[off..off + buf.len()]);
        Ok(())
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        let r = self.region_mut(addr, len)?;
        let off = r.offset(addr, len.max(1)).ok_or(Error::NotRam {
            addr: addr.as_u64(),
            len,
        })?;
        r.bytes[off..off + data.len()].copy_from_slice(data);
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
                let off = (page << PAGE_SHIFT) as usize;
                r.bytes[off..off + order.bytes() as usize].fill(0);
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
        let r = self.region_mut(addr, order.bytes())?;
        let first = (addr.as_u64() - r.range.start().as_u64()) >> PAGE_SHIFT;
        r.set_used(first, order.pages(), false);
        self.live.remove(&addr.as_u64());
        self.allocated_pages -= order.pages();
        Ok(())
    }

    #[inline]
    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        let (r, off) = self.region(addr, 8)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(&r.bytes[off..off + 8]);
        Ok(u64::from_le_bytes(le))
    }

    #[inline]
    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        let r = self.region_mut(addr, 8)?;
        let off = r.offset(addr, 8).ok_or(Error::NotRam {
            addr: addr.as_u64(),
            len: 8,
        })?;
        r.bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        let len = (out.len() as u64) * 8;
        let (r, off) = self.region(addr, len)?;
        for (w, b) in out
            .iter_mut()
            .zip(r.bytes[off..off + len as usize].chunks_exact(8))
        {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
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

    proptest! {
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
