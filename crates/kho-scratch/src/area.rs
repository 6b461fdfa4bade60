//! Scratch areas: `ScratchArea`, the fixed-capacity `ScratchAreas` list, and
//! the check that preserved memory stays out of them.

use core::fmt;
use core::ops::Deref;

use kho_abi::scratch::{AREA_ALIGN, FIRST_NODE_INDEX, GLOBAL_INDEX, LOWMEM_INDEX};
use kho_mem::{PhysAddr, PhysRange};

use crate::{Error, MAX_AREAS, NodeId, Result};

/// Which scratch area: its role in the descriptor array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AreaKind {
    /// Entry [`LOWMEM_INDEX`]: below the architecture's low-memory limit.
    Lowmem,
    /// Entry [`GLOBAL_INDEX`]: anywhere, for allocations without a node.
    Global,
    /// One per NUMA node with memory. For areas placed by
    /// [`place_scratch`](crate::place_scratch) this is the node's id; for
    /// areas read from an incoming array, which does not record node ids,
    /// it is the entry's position among the per-node entries (index − 2),
    /// which is the node id when node ids are dense.
    Node(NodeId),
}

impl AreaKind {
    /// The kind of entry `index` of a Linux-ordered array.
    pub const fn from_index(index: usize) -> AreaKind {
        match index {
            LOWMEM_INDEX => AreaKind::Lowmem,
            GLOBAL_INDEX => AreaKind::Global,
            n => AreaKind::Node(NodeId::new((n - FIRST_NODE_INDEX) as u32)),
        }
    }
}

impl fmt::Display for AreaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AreaKind::Lowmem => f.write_str("lowmem"),
            AreaKind::Global => f.write_str("global"),
            AreaKind::Node(n) => write!(f, "node {n}"),
        }
    }
}

/// One physically contiguous scratch area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScratchArea {
    /// Its role.
    pub kind: AreaKind,
    /// Where it is.
    pub range: PhysRange,
}

/// An empty range at address zero, for filling unused slots.
// Evaluated at compile time: a failure would be a build error, never a
// runtime panic.
#[allow(clippy::panic)]
pub(crate) const EMPTY_RANGE: PhysRange = match PhysRange::try_new(PhysAddr::ZERO, 0) {
    Ok(r) => r,
    Err(_) => panic!("an empty range at zero cannot wrap"),
};

impl ScratchArea {
    const EMPTY: ScratchArea = ScratchArea {
        kind: AreaKind::Lowmem,
        range: EMPTY_RANGE,
    };
}

/// The scratch areas of one kernel, in descriptor-array order
/// (`[lowmem, global, node…]`), at most [`MAX_AREAS`] of them.
///
/// Derefs to `[ScratchArea]`. Built by [`place_scratch`](crate::place_scratch)
/// on a cold boot or [`ScratchAreas::read_array`] on a KHO boot, or by hand
/// with [`ScratchAreas::push`].
#[derive(Clone, Copy)]
pub struct ScratchAreas {
    areas: [ScratchArea; MAX_AREAS],
    len: usize,
}

impl Default for ScratchAreas {
    fn default() -> ScratchAreas {
        ScratchAreas::new()
    }
}

impl PartialEq for ScratchAreas {
    fn eq(&self, other: &ScratchAreas) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ScratchAreas {}

impl fmt::Debug for ScratchAreas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Deref for ScratchAreas {
    type Target = [ScratchArea];
    fn deref(&self) -> &[ScratchArea] {
        &self.areas[..self.len]
    }
}

impl ScratchAreas {
    /// No areas.
    pub const fn new() -> ScratchAreas {
        ScratchAreas {
            areas: [ScratchArea::EMPTY; MAX_AREAS],
            len: 0,
        }
    }

    /// Append an area (no checks besides capacity).
    pub fn push(&mut self, area: ScratchArea) -> Result<()> {
        let slot = self
            .areas
            .get_mut(self.len)
            .ok_or(Error::TooManyAreas { max: MAX_AREAS })?;
        *slot = area;
        self.len += 1;
        Ok(())
    }

    /// Areas from ranges in array order; kinds follow [`AreaKind::from_index`].
    pub fn from_ranges(ranges: &[PhysRange]) -> Result<ScratchAreas> {
        let mut out = ScratchAreas::new();
        for (index, &range) in ranges.iter().enumerate() {
            out.push(ScratchArea {
                kind: AreaKind::from_index(index),
                range,
            })?;
        }
        Ok(out)
    }

    /// The areas as a slice.
    pub fn as_slice(&self) -> &[ScratchArea] {
        self
    }

    /// The ranges, in array order.
    pub fn ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.iter().map(|a| a.range)
    }

    /// Total bytes of scratch.
    pub fn total_size(&self) -> u64 {
        self.ranges()
            .fold(0u64, |sum, r| sum.saturating_add(r.size()))
    }

    /// The first area (index and area) sharing a byte with `range`
    /// (upstream `kho_scratch_overlap`, used before preserving memory).
    pub fn overlapping(&self, range: PhysRange) -> Option<(usize, ScratchArea)> {
        self.iter()
            .enumerate()
            .find(|(_, a)| a.range.overlaps(range))
            .map(|(i, a)| (i, *a))
    }

    /// Whether `range` lies entirely inside one area.
    pub fn contains_range(&self, range: PhysRange) -> bool {
        self.iter()
            .any(|a| !a.range.is_empty() && a.range.contains_range(range))
    }

    /// Whether every area starts and ends on an
    /// [`AREA_ALIGN`] (2 MiB pageblock) boundary, as areas Linux places do.
    /// Incoming areas only have to be page-aligned; this reports whether
    /// they are also pageblock-aligned.
    pub fn all_area_aligned(&self) -> bool {
        self.ranges()
            .all(|r| r.start().is_aligned(AREA_ALIGN) && r.size() % AREA_ALIGN == 0)
    }
}

/// Check that no preserved block intersects any scratch area.
///
/// Used by the preserve path (refuse to preserve scratch memory) and by a
/// boot stub's self-checks before a handover. Returns the first offending
/// block.
///
/// ```
/// use kho_mem::{PhysAddr, PhysRange};
/// use kho_scratch::{check_no_overlap, Error, ScratchAreas};
///
/// let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
/// let areas = ScratchAreas::from_ranges(&[r(0x20_0000, 0x20_0000)])?;
/// assert!(check_no_overlap(&areas, [r(0x40_0000, 0x1000)]).is_ok());
/// assert!(matches!(
///     check_no_overlap(&areas, [r(0x3f_f000, 0x2000)]),
///     Err(Error::PreservedInScratch { index: 0, .. })
/// ));
/// # Ok::<(), Error>(())
/// ```
pub fn check_no_overlap(
    areas: &[ScratchArea],
    blocks: impl IntoIterator<Item = PhysRange>,
) -> Result<()> {
    for block in blocks {
        if let Some((index, area)) = areas
            .iter()
            .enumerate()
            .find(|(_, a)| a.range.overlaps(block))
        {
            return Err(Error::PreservedInScratch {
                block,
                area: area.range,
                index,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn r(a: u64, s: u64) -> PhysRange {
        PhysRange::try_new(PhysAddr::new(a), s).unwrap()
    }

    #[test]
    fn capacity_kinds_and_queries() {
        let many: Vec<PhysRange> = (0..=MAX_AREAS as u64)
            .map(|i| r(i << 21, 1 << 21))
            .collect();
        assert_eq!(
            ScratchAreas::from_ranges(&many),
            Err(Error::TooManyAreas { max: MAX_AREAS })
        );
        let areas = ScratchAreas::from_ranges(&many[..4]).unwrap();
        let kinds: Vec<_> = areas.iter().map(|a| a.kind.to_string()).collect();
        assert_eq!(kinds, ["lowmem", "global", "node 0", "node 1"]);
        assert_eq!(
            areas.overlapping(r(0x3f_f000, 0x2000)).map(|(i, _)| i),
            Some(1)
        );
        assert_eq!(areas.overlapping(r(0x80_0000, 0x1000)), None);
        assert!(areas.contains_range(r(0x20_0000, 0x20_0000)));
        assert!(
            !areas.contains_range(r(0x3f_f000, 0x2000)),
            "spans two areas"
        );
        assert_eq!(areas.total_size(), 8 << 20);
        assert!(areas.all_area_aligned());
        assert_eq!(
            check_no_overlap(&areas, [r(0x80_0000, 1), r(0x60_0000, 1)]),
            Err(Error::PreservedInScratch {
                block: r(0x60_0000, 1),
                area: r(0x60_0000, 0x20_0000),
                index: 3
            })
        );
        assert_eq!(
            Error::PreservedInScratch {
                block: r(0x60_0000, 1),
                area: r(0x60_0000, 0x20_0000),
                index: 3
            }
            .to_string(),
            "preserved block [0x600000, +0x1) intersects scratch area 3 [0x600000, +0x200000)"
        );
    }
}
