//! The outgoing side: write the sub-blob into a page and preserve it and the
//! regions' pages; and the exact inverse.

use alloc::vec::Vec;

use kho_mem::{Order, PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr, PhysMem, PhysRange};
use kho_radix::{PageBlocks, RadixTree};

use crate::blob::{MemblockFdt, build_blob, read_blob};
use crate::error::token;
use crate::{Error, Region, Result};

/// Where a preserved sub-blob is: what the caller registers with its KHO
/// engine as the root FDT child [`SUBTREE_NAME`](kho_abi::memblock::SUBTREE_NAME)
/// (`preserved-data = phys`, and `blob-size = size` under kho-v3 and kho-v4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemblockBlob {
    /// Physical address of the page holding the sub-blob.
    pub phys: PhysAddr,
    /// The sub-blob's length in bytes (its FDT `totalsize`, at most a page).
    pub size: u64,
}

/// The pages region `r` preserves: those its bytes touch, minus any page
/// an earlier region already preserves.
///
/// Regions need not be page-aligned (`reserve_mem=` aligns to 64 bytes by
/// default), so two regions can share a boundary page; a page is preserved
/// once, by the first region that touches it. As regions are disjoint,
/// only a region's first and last page can be shared.
fn own_pages(r: PhysRange, earlier: &[PhysRange]) -> (Pfn, u64) {
    let first = r.start().as_u64() >> PAGE_SHIFT;
    let last = r.last().map_or(first, |l| l.as_u64() >> PAGE_SHIFT);
    let covered = |pfn: u64| {
        earlier.iter().any(|e| {
            let lo = e.start().as_u64() >> PAGE_SHIFT;
            let hi = e.last().map_or(lo, |l| l.as_u64() >> PAGE_SHIFT);
            lo <= pfn && pfn <= hi
        })
    };
    let mut lo = first;
    let mut end = last + 1;
    if covered(lo) {
        lo += 1;
    }
    if end > lo && covered(end - 1) {
        end -= 1;
    }
    // Every frame of a 64-bit address fits a Pfn.
    (Pfn::try_new(lo).unwrap_or_default(), end.saturating_sub(lo))
}

/// The pages a region's memory was preserved as: its range rounded out to
/// whole pages (a region need not be page-sized; [`preserve_memblock`]
/// preserves every page it touches). Restore these pages, not the region.
/// `None` if rounding up passes the end of the address space.
pub fn covering_pages(range: PhysRange) -> Option<PhysRange> {
    let page = 1u64 << PAGE_SHIFT;
    let start = range.start().as_u64() & !(page - 1);
    let end = range.start().as_u64().checked_add(range.size())?;
    let end = end.checked_next_multiple_of(page)?;
    PhysRange::try_new(kho_mem::PhysAddr::new(start), end - start).ok()
}

/// Preserves named `reserve_mem` regions as upstream's `prepare_kho_fdt`
/// does: builds the `memblock-v1` sub-blob ([`build_blob`]), writes it into
/// a freshly allocated page, preserves that page (order 0) and every
/// region's pages in `tree`, and returns where the blob is.
///
/// Each region's pages are preserved with
/// [`RadixTree::preserve_range`] (upstream's `kho_preserve_pages`, same
/// decomposition into naturally aligned blocks). Unlike upstream, which
/// preserves `size >> PAGE_SHIFT` pages from the page holding `start` (and
/// so misses the tail of an unaligned region), every page a region's bytes
/// touch is preserved, once (see the crate docs).
///
/// The caller then adds the root FDT child `memblock` from the returned
/// [`MemblockBlob`] (upstream does it between preserving the page and the
/// regions; the order is invisible to the next kernel).
///
/// All or nothing: on any error, everything this call preserved is
/// unpreserved and the page is freed. Errors: those of [`build_blob`],
/// [`Error::RegionNotRam`], [`Error::PageAlloc`], [`Error::Access`],
/// [`Error::Preserve`] (e.g. a region overlapping memory preserved before).
pub fn preserve_memblock<M: PhysMem + ?Sized>(
    mem: &mut M,
    tree: &mut RadixTree,
    regions: &[Region<'_>],
) -> Result<MemblockBlob> {
    let blob = build_blob(regions)?;
    for r in regions {
        if !mem.is_ram(r.start(), r.size()) {
            return Err(Error::RegionNotRam {
                name: token(r.name()),
                start: r.start(),
                size: r.size(),
            });
        }
    }
    let page = alloc_nonzero_page(mem)?;
    if let Err(source) = mem.write(page, &blob) {
        let _ = mem.free_page(page);
        return Err(Error::Access { addr: page, source });
    }
    if let Err(source) = tree.preserve(mem, page.pfn_floor(), Order::ZERO) {
        let _ = mem.free_page(page);
        return Err(Error::Preserve {
            start: page,
            pages: 1,
            source,
        });
    }
    let ranges: Vec<PhysRange> = regions.iter().map(Region::range).collect();
    for (i, r) in ranges.iter().enumerate() {
        let (pfn, pages) = own_pages(*r, &ranges[..i]);
        if let Err(source) = tree.preserve_range(mem, pfn, pages) {
            for (j, done) in ranges[..i].iter().enumerate() {
                let (pfn, pages) = own_pages(*done, &ranges[..j]);
                let _ = tree.unpreserve_range(mem, pfn, pages);
            }
            let _ = tree.unpreserve(mem, page.pfn_floor(), Order::ZERO);
            let _ = mem.free_page(page);
            return Err(Error::Preserve {
                start: pfn.phys(),
                pages,
                source,
            });
        }
    }
    Ok(MemblockBlob {
        phys: page,
        size: blob.len() as u64,
    })
}

/// One zeroed page whose address is not 0 (a zero `preserved-data` is
/// refused by readers). If the allocator hands out page 0, it is held while
/// another page is taken, then given back.
fn alloc_nonzero_page<M: PhysMem + ?Sized>(mem: &mut M) -> Result<PhysAddr> {
    let page = mem
        .alloc_page()
        .map_err(|source| Error::PageAlloc { source })?;
    if page != PhysAddr::ZERO {
        return Ok(page);
    }
    let other = mem.alloc_page();
    let _ = mem.free_page(PhysAddr::ZERO);
    other.map_err(|source| Error::PageAlloc { source })
}

/// The first radix block of `pages` pages at `pfn` that `tree` does not
/// hold, as the error `unpreserve_range` would give.
fn check_preserved<M: PhysMem + ?Sized>(
    tree: &RadixTree,
    mem: &M,
    pfn: Pfn,
    pages: u64,
) -> Result<(), kho_radix::Error> {
    for (pfn, order) in PageBlocks::with_max_order(pfn, pages, tree.max_order())? {
        if !tree.is_preserved(mem, pfn, order)? {
            return Err(kho_radix::Error::NotPreserved { pfn, order });
        }
    }
    Ok(())
}

/// Undoes [`preserve_memblock`] exactly: reads the regions back from the
/// blob, unpreserves their pages and the blob page, and frees the page.
///
/// All or nothing: the blob is read and validated, and every page is
/// checked to be preserved, before anything changes; a failure leaves
/// `tree` and memory as they were. (Remove the root FDT child first.)
pub fn unpreserve_memblock<M: PhysMem + ?Sized>(
    mem: &mut M,
    tree: &mut RadixTree,
    blob: MemblockBlob,
) -> Result<()> {
    let mut buf = [0u8; PAGE_SIZE];
    let bytes = read_blob(&*mem, blob.phys, Some(blob.size), &mut buf)?;
    let fdt = MemblockFdt::parse(bytes)?;
    let ranges: Vec<PhysRange> = fdt.regions().map(|r| r.range()).collect();
    let page = blob.phys;
    let mut plan = Vec::with_capacity(ranges.len() + 1);
    plan.push((page.pfn_floor(), 1));
    for (i, r) in ranges.iter().enumerate() {
        plan.push(own_pages(*r, &ranges[..i]));
    }
    for &(pfn, pages) in &plan {
        check_preserved(tree, &*mem, pfn, pages).map_err(|source| Error::Unpreserve {
            start: pfn.phys(),
            pages,
            source,
        })?;
    }
    for &(pfn, pages) in plan.iter().rev() {
        tree.unpreserve_range(mem, pfn, pages)
            .map_err(|source| Error::Unpreserve {
                start: pfn.phys(),
                pages,
                source,
            })?;
    }
    mem.free_page(page)
        .map_err(|source| Error::Access { addr: page, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, size: u64) -> PhysRange {
        PhysRange::try_new(PhysAddr::new(start), size).unwrap()
    }

    fn own(x: PhysRange, earlier: &[PhysRange]) -> (u64, u64) {
        let (pfn, n) = own_pages(x, earlier);
        (pfn.as_u64(), n)
    }

    #[test]
    fn pages_touched_and_shared_once() {
        assert_eq!(own(r(0x1000, 0x1000), &[]), (1, 1));
        assert_eq!(own(r(0x1040, 0x40), &[]), (1, 1));
        assert_eq!(own(r(0x1800, 0x1000), &[]), (1, 2));
        // B shares A's last page; C shares A's first page; D lies inside a
        // page A already holds.
        let a = r(0x1800, 0x2000); // pages 1, 2, 3
        assert_eq!(own(a, &[]), (1, 3));
        assert_eq!(own(r(0x3800, 0x1000), &[a]), (4, 1)); // pages 3, 4
        assert_eq!(own(r(0x1000, 0x800), &[a]), (2, 0)); // page 1
        assert_eq!(own(r(0x0c00, 0x800), &[a]), (0, 1)); // pages 0, 1
        assert_eq!(own(r(0x3800, 0x100), &[a]), (4, 0)); // page 3 only
        // A region ending at the top of memory.
        let top = r(u64::MAX - 0xfff, 0x1000);
        assert_eq!(own(top, &[]), (u64::MAX >> 12, 1));
    }
}

#[cfg(test)]
mod covering_tests {
    use super::*;

    #[test]
    fn regions_round_out_to_whole_pages() {
        let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
        assert_eq!(
            covering_pages(r(0x4000_0000, 1024)),
            Some(r(0x4000_0000, 4096))
        );
        assert_eq!(
            covering_pages(r(0x4000_0800, 4096)),
            Some(r(0x4000_0000, 8192))
        );
        assert_eq!(
            covering_pages(r(0x4000_0000, 8192)),
            Some(r(0x4000_0000, 8192))
        );
        assert_eq!(covering_pages(r(u64::MAX - 4096, 16)), None);
    }
}
