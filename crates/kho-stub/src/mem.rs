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
    /// Where [`StubMem::start_allocations_at`] put the first search: a
    /// search that reaches the end wraps to here before it tries below, so
    /// what lies below (the image QEMU loaded, its DTB) shifts no address
    /// until memory above is full.
    pool_start: u64,
}

impl StubMem {
    /// RAM = `ram` clipped to `[1, limit)` (the identity map's reach, minus
    /// address 0); only whole pages of it start as available to the
    /// allocator, so page 0 is never handed out.
    ///
    /// The page bitmap covers RAM up to its highest end (one bit per page,
    /// 32 KiB per GiB), not the whole identity map.
    pub fn new(ram: impl IntoIterator<Item = PhysRange>, limit: u64) -> StubMem {
        let view = RamView::new(ram, limit);
        let top = view
            .ram
            .iter()
            .flatten()
            .filter_map(|r| r.end().map(|e| e.as_u64()))
            .max()
            .unwrap_or(0);
        let limit = limit.min(top.next_multiple_of(PAGE));
        let mut mem = StubMem {
            ram: view.ram,
            used: vec![u64::MAX; (limit / PAGE).div_ceil(64) as usize],
            limit,
            hint: 0,
            pool_start: 0,
        };
        for r in view.ram.iter().flatten() {
            let (start, end) = (r.start().as_u64(), r.end().map_or(limit, |e| e.as_u64()));
            let first = start.next_multiple_of(PAGE);
            if let Ok(pages) =
                PhysRange::try_new(PhysAddr::new(first), (end - first.min(end)) & !(PAGE - 1))
            {
                mem.set(pages, false);
            }
        }
        mem
    }

    /// Start allocation searches at `addr`: the allocator hands out pages
    /// from there upwards first, and below it only when the rest is full.
    /// A fixed start keeps the addresses of preserved memory independent of
    /// the stub's own size, so reviewed snapshots do not churn.
    pub fn start_allocations_at(&mut self, addr: PhysAddr) {
        self.hint = addr.as_u64() / PAGE;
        self.pool_start = self.hint;
    }

    /// Keep every page overlapping `range` away from the allocator.
    pub fn reserve(&mut self, range: PhysRange) {
        self.set(range, true);
    }

    /// Reserve `range` only if none of its pages is in use yet: `Err` names
    /// the first page that is (the image, boot data, scratch, the payload,
    /// or an earlier claim). An incoming walk claims each preserved block
    /// and radix node this way, so a block overlapping any of those, or
    /// another block, is caught before anything is allocated.
    pub fn claim(&mut self, range: PhysRange) -> core::result::Result<(), PhysAddr> {
        let Some(last) = range.last() else {
            return Ok(());
        };
        let first = range.start().as_u64() / PAGE;
        let last = last.as_u64() / PAGE;
        if last >= self.limit / PAGE {
            return Err(PhysAddr::new(self.limit.max(range.start().as_u64())));
        }
        let mut page = first;
        while page <= last {
            let (w, b) = ((page / 64) as usize, page % 64);
            let word = self.used[w] >> b;
            if word != 0 {
                let hit = page + u64::from(word.trailing_zeros());
                if hit <= last {
                    return Err(PhysAddr::new(hit * PAGE));
                }
                break;
            }
            page = (page / 64 + 1) * 64;
        }
        self.set(range, true);
        Ok(())
    }

    /// [`PhysMem::alloc_pages`] without the zero fill, for callers that
    /// write every byte anyway (gigabytes of guest memory under TCG).
    pub fn alloc_pages_dirty(&mut self, order: Order) -> Result<PhysAddr> {
        let count = order.pages();
        let total = self.limit / PAGE;
        for from in [self.hint, self.pool_start, 0] {
            let mut page = from;
            page = page.div_ceil(count) * count;
            while page + count <= total {
                if self.used[(page / 64) as usize] == u64::MAX {
                    // A full word: no block of any size starts in it.
                    page = ((page / 64 + 1) * 64).div_ceil(count) * count;
                    continue;
                }
                if self.is_free(page, count) {
                    let range = PhysRange::try_new(PhysAddr::new(page * PAGE), order.bytes())?;
                    self.set(range, true);
                    self.hint = page + count;
                    return Ok(range.start());
                }
                page += count;
            }
        }
        Err(Error::OutOfMemory { order: order.get() })
    }

    /// A copy of the RAM bounds that reads and writes memory exactly as
    /// this `StubMem` does but allocates nothing: lets a walk read memory
    /// while its callback reserves pages in the `StubMem`.
    /// Make the `len` bytes of RAM at `dst` equal to those at `src`,
    /// storing only the 8-byte words that differ (the ranges must not
    /// overlap). Staging the next image over a slot an earlier generation
    /// ran from rewrites nothing of its code: under TCG, each store into a
    /// page that holds translated code takes QEMU's slow path until every
    /// translation on the page is gone (and then the code must be
    /// translated again), so an unconditional copy there cost 50 ms a
    /// generation (docs/BENCHMARKS.md). On hardware it is one extra load a
    /// word.
    pub fn copy_changed(&mut self, src: PhysAddr, dst: PhysAddr, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let from = self.checked(src, len)?;
        let to = self.checked(dst, len)?;
        let n = usize::try_from(len).map_err(|_| Error::Overflow {
            addr: src.as_u64(),
            len,
        })?;
        if PhysRange::try_new(src, len)?.overlaps(PhysRange::try_new(dst, len)?) {
            return Err(Error::Overlap {
                first: src.as_u64(),
                second: dst.as_u64(),
            });
        }
        let (words, tail) = (n / 8, n % 8);
        for i in 0..words {
            // SAFETY: `checked` proved both ranges are RAM inside the
            // identity map, not containing address 0, and they do not
            // overlap; word `i` lies within both. The stub owns all RAM,
            // and callers write only memory they allocated.
            unsafe {
                let s = core::ptr::read_unaligned((from as *const u64).add(i));
                let d = (to as *mut u64).add(i);
                if core::ptr::read_unaligned(d) != s {
                    core::ptr::write_unaligned(d, s);
                }
            }
        }
        // SAFETY: as above, for the last `tail` bytes of both ranges.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (from + words * 8) as *const u8,
                (to + words * 8) as *mut u8,
                tail,
            )
        };
        Ok(())
    }

    pub fn ram_view(&self) -> RamView {
        RamView {
            ram: self.ram,
            limit: self.limit,
        }
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
        let mut page = first;
        let end = first + count;
        while page < end {
            if page.is_multiple_of(64) && end - page >= 64 {
                if self.used[(page / 64) as usize] != 0 {
                    return false;
                }
                page += 64;
            } else {
                if self.used[(page / 64) as usize] & (1 << (page % 64)) != 0 {
                    return false;
                }
                page += 1;
            }
        }
        true
    }

    fn checked(&self, addr: PhysAddr, len: u64) -> Result<usize> {
        checked(&self.ram, addr, len)
    }
}

/// `addr` as a pointer-sized integer if `[addr, addr + len)` is RAM.
fn checked(ram: &[Option<PhysRange>], addr: PhysAddr, len: u64) -> Result<usize> {
    let not_ram = Error::NotRam {
        addr: addr.as_u64(),
        len,
    };
    if !is_ram(ram, addr, len) {
        return Err(not_ram);
    }
    usize::try_from(addr.as_u64()).map_err(|_| not_ram)
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
        is_ram(&self.ram, addr, len)
    }

    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        read_u64(&self.ram, addr)
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        write_u64(&self.ram, addr, value)
    }

    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        read_u64s(&self.ram, addr, out)
    }

    fn fill(&mut self, addr: PhysAddr, len: u64, byte: u8) -> Result<()> {
        fill(&self.ram, addr, len, byte)
    }

    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr> {
        let at = self.alloc_pages_dirty(order)?;
        self.fill(at, order.bytes(), 0)?;
        Ok(at)
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

// The fast paths of `PhysMem` (issue 18): one RAM check per call and a
// direct access, instead of the trait's defaults that go through `read` and
// `write` a word or a 256-byte chunk at a time (every radix word of a walk,
// every zeroed page).

/// One little-endian word, with one RAM check.
fn read_u64(ram: &[Option<PhysRange>], addr: PhysAddr) -> Result<u64> {
    let at = checked(ram, addr, 8)?;
    // SAFETY: `checked` proved the 8 bytes are RAM inside the identity map,
    // not containing address 0; `read_unaligned` needs no alignment.
    Ok(u64::from_le(unsafe {
        core::ptr::read_unaligned(at as *const u64)
    }))
}

/// Store one little-endian word, with one RAM check.
fn write_u64(ram: &[Option<PhysRange>], addr: PhysAddr, value: u64) -> Result<()> {
    let at = checked(ram, addr, 8)?;
    // SAFETY: as in `read_u64`; the stub owns all RAM (see `StubMem::write`).
    unsafe { core::ptr::write_unaligned(at as *mut u64, value.to_le()) };
    Ok(())
}

/// `out.len()` consecutive words from `addr`, with one RAM check.
fn read_u64s(ram: &[Option<PhysRange>], addr: PhysAddr, out: &mut [u64]) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let len = (out.len() as u64).checked_mul(8).ok_or(Error::Overflow {
        addr: addr.as_u64(),
        len: u64::MAX,
    })?;
    let at = checked(ram, addr, len)?;
    for (i, w) in out.iter_mut().enumerate() {
        // SAFETY: `checked` proved all `len` bytes from `at` are RAM inside
        // the identity map; word `i` lies within them.
        *w = u64::from_le(unsafe { core::ptr::read_unaligned((at as *const u64).add(i)) });
    }
    Ok(())
}

/// Set `len` bytes from `addr` to `byte`, with one RAM check.
fn fill(ram: &[Option<PhysRange>], addr: PhysAddr, len: u64, byte: u8) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let at = checked(ram, addr, len)?;
    let n = usize::try_from(len).map_err(|_| Error::NotRam {
        addr: addr.as_u64(),
        len,
    })?;
    // SAFETY: `checked` proved `[addr, addr + len)` is RAM inside the
    // identity map, not containing address 0; the stub owns all RAM.
    unsafe { core::ptr::write_bytes(at as *mut u8, byte, n) };
    Ok(())
}

fn is_ram(ram: &[Option<PhysRange>], addr: PhysAddr, len: u64) -> bool {
    let Ok(want) = PhysRange::try_new(addr, len.max(1)) else {
        return false;
    };
    ram.iter().flatten().any(|r| r.contains_range(want))
}

/// RAM access without an allocator: [`StubMem::ram_view`], or a reader of
/// boot structures before the memory map is known.
#[derive(Clone, Copy, Debug)]
pub struct RamView {
    ram: [Option<PhysRange>; MAX_RAM_RANGES],
    limit: u64,
}

impl RamView {
    /// RAM = `ram` clipped to `[1, limit)` (the identity map's reach, minus
    /// address 0, which Rust may not dereference); at most
    /// [`MAX_RAM_RANGES`] ranges are kept.
    pub fn new(ram: impl IntoIterator<Item = PhysRange>, limit: u64) -> RamView {
        let mut view = RamView {
            ram: [None; MAX_RAM_RANGES],
            limit,
        };
        let mut n = 0;
        for r in ram {
            let start = r.start().as_u64().max(1);
            let end = r.end().map_or(limit, |e| e.as_u64().min(limit));
            if start >= end || n == MAX_RAM_RANGES {
                continue;
            }
            if let Ok(clipped) = PhysRange::try_new(PhysAddr::new(start), end - start) {
                view.ram[n] = Some(clipped);
                n += 1;
            }
        }
        view
    }
}

impl PhysMem for RamView {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let at = checked(&self.ram, addr, buf.len() as u64)?;
        // SAFETY: as in `StubMem::read`: `checked` proved the source is RAM
        // inside the identity map, not containing address 0.
        unsafe { core::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()> {
        let at = checked(&self.ram, addr, data.len() as u64)?;
        // SAFETY: as in `StubMem::write`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        Ok(())
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        addr.as_u64() < self.limit && is_ram(&self.ram, addr, len)
    }

    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        read_u64(&self.ram, addr)
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        write_u64(&self.ram, addr, value)
    }

    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        read_u64s(&self.ram, addr, out)
    }

    fn fill(&mut self, addr: PhysAddr, len: u64, byte: u8) -> Result<()> {
        fill(&self.ram, addr, len, byte)
    }

    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr> {
        Err(Error::OutOfMemory { order: order.get() })
    }

    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> Result<()> {
        Err(Error::NotAllocated {
            addr: addr.as_u64(),
            order: order.get(),
        })
    }
}
