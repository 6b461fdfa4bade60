//! Physical memory of the running stub: the identity map as a `PhysMem`.
//!
//! [`StubMem`] reads and writes RAM through the identity map (every access
//! checked against the RAM ranges, below the mapped limit, never address 0,
//! which Rust may not dereference) and
//! allocates pages from the *kernel pool*: RAM that is not scratch, not the
//! image, not low memory and not reserved for preserved blocks. Preserved
//! memory, radix nodes and the root FDT come from this pool, so they can
//! never land in scratch; boot-time handoff structures are allocated from
//! scratch separately (see `generation.rs`).

use alloc::vec;
use alloc::vec::Vec;

use kho_mem::{Error, Order, PhysAddr, PhysMem, PhysRange, Result};

/// Most RAM ranges tracked.
pub const MAX_RAM_RANGES: usize = 64;
const PAGE: u64 = kho_mem::PAGE_SIZE as u64;

/// Reads and writes identity-mapped RAM; allocation from a page bitmap.
#[derive(Debug)]
pub struct StubMem {
    ram: [Option<PhysRange>; MAX_RAM_RANGES],
    /// One bit per page below `limit`: set = not available to the allocator.
    used: Vec<u64>,
    limit: u64,
    hint: u64,
}

impl StubMem {
    /// RAM = `ram` clipped to `[1, limit)` (the identity map's reach, minus
    /// address 0); only whole pages of it start as available to the
    /// allocator, so page 0 is never handed out.
    pub fn new(ram: impl IntoIterator<Item = PhysRange>, limit: u64) -> StubMem {
        let pages = limit / PAGE;
        let mut mem = StubMem {
            ram: [None; MAX_RAM_RANGES],
            used: vec![u64::MAX; pages.div_ceil(64) as usize],
            limit,
            hint: 0,
        };
        let mut n = 0;
        for r in ram {
            let start = r.start().as_u64().max(1);
            let end = r.end().map_or(limit, |e| e.as_u64().min(limit));
            if start >= end || n == MAX_RAM_RANGES {
                continue;
            }
            if let Ok(clipped) = PhysRange::try_new(PhysAddr::new(start), end - start) {
                mem.ram[n] = Some(clipped);
                n += 1;
                let first = start.next_multiple_of(PAGE);
                if let Ok(pages) =
                    PhysRange::try_new(PhysAddr::new(first), (end - first.min(end)) & !(PAGE - 1))
                {
                    mem.set(pages, false);
                }
            }
        }
        mem
    }

    /// The RAM ranges.
    pub fn ram(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.ram.iter().flatten().copied()
    }

    /// Start allocation searches at `addr`: the allocator hands out pages
    /// from there upwards first, and below it only when the rest is full.
    /// A fixed start keeps the addresses of preserved memory independent of
    /// the stub's own size, so reviewed snapshots do not churn.
    pub fn start_allocations_at(&mut self, addr: PhysAddr) {
        self.hint = addr.as_u64() / PAGE;
    }

    /// Keep every page overlapping `range` away from the allocator.
    pub fn reserve(&mut self, range: PhysRange) {
        self.set(range, true);
    }

    fn set(&mut self, range: PhysRange, used: bool) {
        let Some(last) = range.last() else { return };
        let first = range.start().as_u64() / PAGE;
        let last = (last.as_u64().min(self.limit.saturating_sub(1))) / PAGE;
        if first > last {
            return;
        }
        // Whole 64-page words at once, single bits at the ragged ends.
        let mut page = first;
        while page <= last {
            let (w, b) = ((page / 64) as usize, page % 64);
            if b == 0 && last - page >= 63 {
                self.used[w] = if used { u64::MAX } else { 0 };
                page += 64;
                continue;
            }
            if used {
                self.used[w] |= 1 << b;
            } else {
                self.used[w] &= !(1 << b);
            }
            page += 1;
        }
    }

    fn is_free(&self, first: u64, count: u64) -> bool {
        (first..first + count).all(|p| self.used[(p / 64) as usize] & (1 << (p % 64)) == 0)
    }

    fn checked(&self, addr: PhysAddr, len: u64) -> Result<usize> {
        if self.is_ram(addr, len) {
            usize::try_from(addr.as_u64()).map_err(|_| Error::NotRam {
                addr: addr.as_u64(),
                len,
            })
        } else {
            Err(Error::NotRam {
                addr: addr.as_u64(),
                len,
            })
        }
    }
}

impl PhysMem for StubMem {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let at = self.checked(addr, buf.len() as u64)?;
        // SAFETY: `checked` proved [addr, addr + len) is RAM inside the
        // identity map and does not contain address 0: a valid, mapped source.
        unsafe { core::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()> {
        let at = self.checked(addr, data.len() as u64)?;
        // SAFETY: as in `read`; the stub owns all RAM, and callers only write
        // memory they allocated, reserved for a handover, or preserved.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        Ok(())
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        let Ok(want) = PhysRange::try_new(addr, len.max(1)) else {
            return false;
        };
        self.ram().any(|r| r.contains_range(want))
    }

    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr> {
        let count = order.pages();
        let total = self.limit / PAGE;
        for pass in 0..2 {
            let mut page = if pass == 0 { self.hint } else { 0 };
            page = page.div_ceil(count) * count;
            while page + count <= total {
                if count == 1 && self.used[(page / 64) as usize] == u64::MAX {
                    page = (page / 64 + 1) * 64;
                    continue;
                }
                if self.is_free(page, count) {
                    let range = PhysRange::try_new(PhysAddr::new(page * PAGE), order.bytes())?;
                    self.set(range, true);
                    self.hint = page + count;
                    self.fill(range.start(), range.size(), 0)?;
                    return Ok(range.start());
                }
                page += count;
            }
        }
        Err(Error::OutOfMemory { order: order.get() })
    }

    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> Result<()> {
        let range = PhysRange::try_new(addr, order.bytes())?;
        let first = addr.as_u64() / PAGE;
        let all_used = (first..first + order.pages())
            .all(|p| self.used[(p / 64) as usize] & (1 << (p % 64)) != 0);
        if !addr.is_aligned(order.bytes()) || !self.is_ram(addr, order.bytes()) || !all_used {
            return Err(Error::NotAllocated {
                addr: addr.as_u64(),
                order: order.get(),
            });
        }
        self.set(range, false);
        Ok(())
    }
}
