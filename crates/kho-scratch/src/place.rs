//! Placement of the scratch areas on a cold boot, mirroring memblock.
//!
//! Linux places the areas late in memblock time (spec section 7.4), each
//! with [`AREA_ALIGN`] alignment and top-down (memblock's default
//! direction), each avoiding everything reserved so far, including the areas
//! placed before it:
//!
//! 1. lowmem: `memblock_phys_alloc_range(size, 2 MiB, 0, ARCH_LOW_ADDRESS_LIMIT)`
//!    — the highest fit that ends at or below the [`LowLimit`];
//! 2. global: `memblock_phys_alloc(size, 2 MiB)` — the highest fit anywhere;
//! 3. one per node with memory, ascending node id:
//!    `memblock_alloc_range_nid(.., nid, exact_nid = true)` — the highest
//!    fit inside that node's memory, never falling back to another node.
//!
//! As in memblock, the first page of the address space is never used,
//! adjacent usable entries of the same node merge into one contiguous
//! range, and no area straddles two nodes (memblock keeps regions of
//! different nodes apart). Every non-usable map entry counts as in use, so
//! an overlap between a usable and a reserved entry resolves to reserved.
//!
//! The result is the highest aligned position where each area fits, the
//! same address memblock's top-down search returns. Linux allocates the
//! descriptor array (one page, top-down) just before the areas; to
//! reproduce its placement exactly, pass that page in `in_use`.

use kho_abi::scratch::AREA_ALIGN;
use kho_mem::{PAGE_SIZE, PhysAddr, PhysRange};

use crate::{
    AreaKind, Error, LowLimit, MAX_NUMA_NODES, MemRegion, NodeId, Result, ScratchArea,
    ScratchAreas, ScratchSizes,
};

const TOP: u128 = 1 << 64;

/// Place the lowmem, global and per-node scratch areas.
///
/// `map` is the firmware memory map (entries in any order; usable entries
/// must not overlap each other), `in_use` everything already taken (kernel
/// image, initrd, firmware tables, the boot stub's own data: anything that
/// must survive until the areas are handed over). The result is in
/// descriptor-array order `[lowmem, global, node…]` with one per-node area
/// for every node that has usable RAM.
///
/// ```
/// use kho_mem::{PhysAddr, PhysRange};
/// use kho_scratch::{place_scratch, AreaKind, LowLimit, MemRegion, NodeId, ScratchSizes};
///
/// const M: u64 = 1 << 20;
/// let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
/// // QEMU arm64 virt: 1 GiB of RAM at 1 GiB, the kernel at its start.
/// let map = [MemRegion::ram(r(0x4000_0000, 1024 * M), NodeId::ZERO)];
/// let kernel = [r(0x4000_0000, 32 * M)];
/// let sizes = ScratchSizes::explicit(16 * M, 64 * M, 32 * M)?;
/// let low = LowLimit::arm64(map[0].range);
/// let areas = place_scratch(&map, &kernel, &sizes, low)?;
/// assert_eq!(areas.len(), 3);
/// assert_eq!(areas[0].kind, AreaKind::Lowmem);
/// // Top-down: the lowmem area must end at or below the limit (end of RAM
/// // - 1), so it ends one pageblock below 2 GiB; the global area does not
/// // fit in the 2 MiB left above it and goes right below it.
/// assert_eq!(areas[0].range, r(0x7ee0_0000, 16 * M));
/// assert_eq!(areas[1].range, r(0x7ae0_0000, 64 * M));
/// assert_eq!(areas[2].range, r(0x78e0_0000, 32 * M));
/// # Ok::<(), kho_scratch::Error>(())
/// ```
pub fn place_scratch(
    map: &[MemRegion],
    in_use: &[PhysRange],
    sizes: &ScratchSizes,
    low: LowLimit,
) -> Result<ScratchAreas> {
    validate_map(map)?;
    let mut nodes = [NodeId::ZERO; MAX_NUMA_NODES];
    let node_count = nodes_with_memory(map, &mut nodes)?;

    let mut areas = ScratchAreas::new();
    let page = PAGE_SIZE as u64;

    let kinds = [AreaKind::Lowmem, AreaKind::Global]
        .into_iter()
        .chain(nodes[..node_count].iter().map(|&n| AreaKind::Node(n)));
    for kind in kinds {
        let size = sizes.of(kind);
        let (hi, node, searched) = match kind {
            AreaKind::Lowmem => {
                let hi = u128::from(low.get().as_u64());
                (hi, None, window(page, hi))
            }
            AreaKind::Global => (TOP, None, window(page, TOP)),
            AreaKind::Node(n) => (TOP, Some(n), node_span(map, n)),
        };
        let search = Search {
            map,
            in_use,
            placed: &areas,
        };
        let start = search
            .top_down(size, AREA_ALIGN, page, hi, node)
            .ok_or(Error::DoesNotFit {
                area: kind,
                size,
                searched,
            })?;
        let range = PhysRange::try_new(PhysAddr::new(start), size)?;
        areas.push(ScratchArea { kind, range })?;
    }
    Ok(areas)
}

/// `[lo, hi)` as a range (empty if `hi <= lo`).
fn window(lo: u64, hi: u128) -> PhysRange {
    let size = hi.saturating_sub(u128::from(lo)).min(u128::from(u64::MAX)) as u64;
    PhysRange::try_new(PhysAddr::new(lo), size).unwrap_or(crate::area::EMPTY_RANGE)
}

fn end_of(r: PhysRange) -> u128 {
    u128::from(r.start().as_u64()) + u128::from(r.size())
}

/// The span of `node`'s usable RAM (for error messages).
fn node_span(map: &[MemRegion], node: NodeId) -> PhysRange {
    let mut lo = u64::MAX;
    let mut hi = 0u128;
    for r in map.iter().filter(|r| r.is_usable_ram() && r.node == node) {
        lo = lo.min(r.range.start().as_u64());
        hi = hi.max(end_of(r.range));
    }
    window(lo, hi)
}

fn validate_map(map: &[MemRegion]) -> Result<()> {
    let usable = || map.iter().filter(|r| r.is_usable_ram());
    for (i, a) in usable().enumerate() {
        if let Some(b) = usable().skip(i + 1).find(|b| a.range.overlaps(b.range)) {
            return Err(Error::MemoryMapOverlap {
                first: a.range,
                second: b.range,
            });
        }
    }
    Ok(())
}

/// Distinct nodes with usable RAM, ascending (Linux's `N_MEMORY` order).
fn nodes_with_memory(map: &[MemRegion], out: &mut [NodeId; MAX_NUMA_NODES]) -> Result<usize> {
    let mut count = 0;
    for r in map.iter().filter(|r| r.is_usable_ram()) {
        if out[..count].contains(&r.node) {
            continue;
        }
        let slot = out.get_mut(count).ok_or(Error::TooManyNodes {
            max: MAX_NUMA_NODES,
        })?;
        *slot = r.node;
        count += 1;
    }
    out[..count].sort_unstable();
    Ok(count)
}

/// Free usable memory = usable map entries minus blockers (in-use ranges,
/// non-usable map entries, areas placed so far).
struct Search<'a> {
    map: &'a [MemRegion],
    in_use: &'a [PhysRange],
    placed: &'a [ScratchArea],
}

impl Search<'_> {
    fn usable(&self, node: Option<NodeId>) -> impl Iterator<Item = &MemRegion> + '_ {
        self.map
            .iter()
            .filter(move |r| r.is_usable_ram() && node.is_none_or(|n| r.node == n))
    }

    fn blockers(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.in_use
            .iter()
            .copied()
            .chain(
                self.map
                    .iter()
                    .filter(|r| !r.kind.is_usable())
                    .map(|r| r.range),
            )
            .chain(self.placed.iter().map(|a| a.range))
            .filter(|r| !r.is_empty())
    }

    /// The highest `c` (a multiple of `align`, `c >= lo`, `c + size <= hi`)
    /// such that `[c, c + size)` is free, usable, on one node (on `node`
    /// when given).
    fn top_down(
        &self,
        size: u64,
        align: u64,
        lo: u64,
        hi: u128,
        node: Option<NodeId>,
    ) -> Option<u64> {
        let size = u128::from(size);
        let mask = !(u128::from(align) - 1);
        let mut limit = hi;
        loop {
            // The highest end of usable memory at or below `limit`.
            let top = self
                .usable(node)
                .filter(|r| u128::from(r.range.start().as_u64()) < limit)
                .map(|r| end_of(r.range).min(limit))
                .max()?;
            let c = top.checked_sub(size)? & mask;
            if c < u128::from(lo) {
                return None;
            }
            match self.next_limit(c, c + size, node) {
                None => return u64::try_from(c).ok(),
                Some(next) => limit = next,
            }
        }
    }

    /// `None` if `[c, end)` is free usable memory of a single node (of
    /// `node` when given); otherwise the highest end a lower window may
    /// have. Every window starting at or below `c` and ending above that
    /// value contains a byte that is not usable or not on the window's node
    /// (the first such byte at or after `c`), or overlaps a blocker that
    /// overlaps `[c, end)` (whose start is then the limit), so none of them
    /// can fit.
    fn next_limit(&self, c: u128, end: u128, node: Option<NodeId>) -> Option<u128> {
        let mut bad = None::<u128>;
        let mut lower = |p: u128| bad = Some(bad.map_or(p, |b| b.min(p)));

        // Coverage by usable entries, all on one node.
        let mut want = node;
        let mut pos = c;
        while pos < end {
            let hit = self.usable(want).find(|r| {
                let s = u128::from(r.range.start().as_u64());
                s <= pos && pos < end_of(r.range)
            });
            match hit {
                Some(r) => {
                    want = Some(r.node);
                    pos = end_of(r.range);
                }
                None => {
                    lower(pos);
                    break;
                }
            }
        }
        // Blockers.
        for b in self.blockers() {
            let s = u128::from(b.start().as_u64());
            if s < end && end_of(b) > c {
                lower(s);
            }
        }
        bad
    }
}

#[cfg(test)]
mod tests;
