//! Scratch sizing: from `kho_scratch=` and what the kernel allocated during boot.
//!
//! Follows CORE-MM (the newest upstream variant, spec section 7.3):
//!
//! - Scale `s` (default 200 %), with `L` = boot allocations below the
//!   low-memory limit, `T` = all boot allocations, `N(n)` = those on node `n`
//!   (Linux `memblock_reserved_kern_size`):
//!   - lowmem = round_up(L·s/100, 2 MiB)
//!   - global = round_up(T·s/100 − L·s/100, 2 MiB) (the subtraction uses the
//!     *unrounded* lowmem, as CORE-MM does; CORE-v2 subtracted the rounded one)
//!   - node n = round_up(N(n)·s/100, 2 MiB)
//! - Explicit `L,G,P`: each rounded up to 2 MiB (CORE-MM rounds lowmem and
//!   global too; CORE-v2 used them unrounded).
//!
//! **Minimum.** Upstream can compute a zero size — the global area whenever
//! every boot allocation is below the low limit (the usual small VM), a node
//! the kernel allocated nothing on, or an explicit `0` — and then reserves
//! an empty area (memblock returns an address for a zero-byte request and
//! reserves nothing). An empty area holds nothing and cannot be validated
//! as RAM, so here every area gets at least one [`AREA_ALIGN`] (2 MiB)
//! pageblock instead.
//!
//! Arithmetic is exact (128-bit products); a size that does not fit 64 bits
//! is [`Error::ScaledSizeOverflow`] where upstream would wrap.

use kho_abi::scratch::AREA_ALIGN;
use kho_mem::PhysRange;

use crate::{AreaKind, Error, LowLimit, MAX_NUMA_NODES, NodeId, Result, ScratchSpec};

/// A small map from node id to a byte count, at most [`MAX_NUMA_NODES`] entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeBytes {
    entries: [(NodeId, u64); MAX_NUMA_NODES],
    len: usize,
}

impl NodeBytes {
    const fn new() -> NodeBytes {
        NodeBytes {
            entries: [(NodeId::ZERO, 0); MAX_NUMA_NODES],
            len: 0,
        }
    }

    fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries[..self.len].iter().copied()
    }

    fn get(&self, node: NodeId) -> Option<u64> {
        self.iter().find(|(n, _)| *n == node).map(|(_, b)| b)
    }

    fn slot(&mut self, node: NodeId) -> Result<&mut u64> {
        let pos = match self.entries[..self.len]
            .iter()
            .position(|(n, _)| *n == node)
        {
            Some(pos) => pos,
            None => {
                let entry = self.entries.get_mut(self.len).ok_or(Error::TooManyNodes {
                    max: MAX_NUMA_NODES,
                })?;
                *entry = (node, 0);
                self.len += 1;
                self.len - 1
            }
        };
        Ok(&mut self.entries[pos].1)
    }
}

/// How much memory the kernel allocated during boot (Linux: memblock
/// reservations flagged `MEMBLOCK_RSRV_KERN`), the input of default sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootUsage {
    below_low_limit: u64,
    total: u64,
    nodes: NodeBytes,
}

impl Default for BootUsage {
    fn default() -> BootUsage {
        BootUsage::new(0, 0)
    }
}

impl BootUsage {
    /// Usage with the given totals and no per-node figures (every node
    /// counts as zero until [`BootUsage::with_node`] says otherwise).
    pub const fn new(below_low_limit: u64, total: u64) -> BootUsage {
        BootUsage {
            below_low_limit,
            total,
            nodes: NodeBytes::new(),
        }
    }

    /// Set the bytes allocated on `node`.
    pub fn with_node(mut self, node: NodeId, bytes: u64) -> Result<BootUsage> {
        *self.nodes.slot(node)? = bytes;
        Ok(self)
    }

    /// Sum kernel boot allocations given as `(range, node)`, counting the
    /// part of each range below `low` toward the low-memory figure.
    pub fn from_allocations(
        allocations: impl IntoIterator<Item = (PhysRange, NodeId)>,
        low: LowLimit,
    ) -> Result<BootUsage> {
        let limit = u128::from(low.get().as_u64());
        let mut usage = BootUsage::default();
        for (range, node) in allocations {
            let start = u128::from(range.start().as_u64());
            let end = start + u128::from(range.size());
            let below = end.min(limit).saturating_sub(start) as u64;
            usage.below_low_limit = usage.below_low_limit.saturating_add(below);
            usage.total = usage.total.saturating_add(range.size());
            let slot = usage.nodes.slot(node)?;
            *slot = slot.saturating_add(range.size());
        }
        Ok(usage)
    }

    /// Bytes allocated below the low-memory limit.
    pub const fn below_low_limit(&self) -> u64 {
        self.below_low_limit
    }

    /// Bytes allocated anywhere.
    pub const fn total(&self) -> u64 {
        self.total
    }

    /// Bytes allocated on `node`.
    pub fn node(&self, node: NodeId) -> u64 {
        self.nodes.get(node).unwrap_or(0)
    }
}

/// The size of every scratch area, rounded and with the minimum applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScratchSizes {
    lowmem: u64,
    global: u64,
    per_node_default: u64,
    nodes: NodeBytes,
}

impl ScratchSizes {
    /// Compute the sizes for `spec` (see the module docs for the formulas).
    ///
    /// ```
    /// use kho_scratch::{BootUsage, NodeId, ScratchSizes, ScratchSpec};
    ///
    /// const M: u64 = 1 << 20;
    /// // The kernel allocated 40 MiB during boot, 30 MiB of it below 4 GiB.
    /// let usage = BootUsage::new(30 * M, 40 * M).with_node(NodeId::new(0), 40 * M)?;
    /// let sizes = ScratchSizes::compute(ScratchSpec::default(), &usage)?;
    /// assert_eq!(sizes.lowmem(), 60 * M);
    /// assert_eq!(sizes.global(), 20 * M);
    /// assert_eq!(sizes.node(NodeId::new(0)), 80 * M);
    /// assert_eq!(sizes.node(NodeId::new(1)), 2 * M); // the minimum
    /// # Ok::<(), kho_scratch::Error>(())
    /// ```
    pub fn compute(spec: ScratchSpec, usage: &BootUsage) -> Result<ScratchSizes> {
        match spec {
            ScratchSpec::Explicit {
                lowmem,
                global,
                per_node,
            } => ScratchSizes::explicit(lowmem, global, per_node),
            ScratchSpec::Scale { percent } => {
                let scale = |bytes: u64, area: AreaKind| -> Result<u64> {
                    let v = u128::from(bytes) * u128::from(percent) / 100;
                    u64::try_from(v).map_err(|_| Error::ScaledSizeOverflow { area })
                };
                let low = scale(usage.below_low_limit, AreaKind::Lowmem)?;
                let total = scale(usage.total, AreaKind::Global)?;
                let mut nodes = NodeBytes::new();
                for (node, bytes) in usage.nodes.iter() {
                    let area = AreaKind::Node(node);
                    *nodes.slot(node)? = finish(scale(bytes, area)?, area)?;
                }
                Ok(ScratchSizes {
                    lowmem: finish(low, AreaKind::Lowmem)?,
                    global: finish(total.saturating_sub(low), AreaKind::Global)?,
                    per_node_default: AREA_ALIGN,
                    nodes,
                })
            }
        }
    }

    /// Explicit sizes (`kho_scratch=L,G,P`), rounded up with the minimum applied.
    pub fn explicit(lowmem: u64, global: u64, per_node: u64) -> Result<ScratchSizes> {
        Ok(ScratchSizes {
            lowmem: finish(lowmem, AreaKind::Lowmem)?,
            global: finish(global, AreaKind::Global)?,
            per_node_default: finish(per_node, AreaKind::Node(NodeId::ZERO))?,
            nodes: NodeBytes::new(),
        })
    }

    /// Size of the low-memory area.
    pub const fn lowmem(&self) -> u64 {
        self.lowmem
    }

    /// Size of the global area.
    pub const fn global(&self) -> u64 {
        self.global
    }

    /// Size of `node`'s area.
    pub fn node(&self, node: NodeId) -> u64 {
        self.nodes.get(node).unwrap_or(self.per_node_default)
    }

    /// Size of the area of kind `kind`.
    pub fn of(&self, kind: AreaKind) -> u64 {
        match kind {
            AreaKind::Lowmem => self.lowmem,
            AreaKind::Global => self.global,
            AreaKind::Node(n) => self.node(n),
        }
    }
}

/// Round up to [`AREA_ALIGN`] and apply the one-pageblock minimum.
fn finish(bytes: u64, area: AreaKind) -> Result<u64> {
    let rounded = bytes
        .checked_next_multiple_of(AREA_ALIGN)
        .ok_or(Error::ScaledSizeOverflow { area })?;
    Ok(rounded.max(AREA_ALIGN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::PhysAddr;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    fn n(id: u32) -> NodeId {
        NodeId::new(id)
    }

    #[test]
    fn scale_table() {
        // (scale, below_low, total, [(node, bytes)], lowmem, global, [(node, size)])
        type Row = (
            u32,
            u64,
            u64,
            &'static [(u32, u64)],
            u64,
            u64,
            &'static [(u32, u64)],
        );
        let table: &[Row] = &[
            // Default 200 %, everything below 4 GiB: global would be zero.
            (
                200,
                50 * M,
                50 * M,
                &[(0, 50 * M)],
                100 * M,
                2 * M,
                &[(0, 100 * M)],
            ),
            // Unaligned figures round up.
            (
                200,
                3 * M + 1,
                5 * M,
                &[(0, 5 * M)],
                8 * M,
                4 * M,
                &[(0, 10 * M)],
            ),
            // Global uses the unrounded lowmem (CORE-MM): 2*(7M) - 2*(3M+1)
            // = 8M - 2 bytes -> 8M (CORE-v2 would give 14M - 8M = 6M).
            (200, 3 * M + 1, 7 * M, &[], 8 * M, 8 * M, &[]),
            // 100 %, two nodes, one with nothing allocated.
            (
                100,
                10 * M,
                30 * M,
                &[(0, 25 * M), (1, 0)],
                10 * M,
                20 * M,
                &[(0, 26 * M), (1, 2 * M)],
            ),
            // Scale 0 gives minimum areas.
            (
                0,
                10 * M,
                30 * M,
                &[(0, 30 * M)],
                2 * M,
                2 * M,
                &[(0, 2 * M)],
            ),
            // Nothing allocated at all.
            (200, 0, 0, &[], 2 * M, 2 * M, &[]),
            // Large scale on large usage.
            (
                1000,
                G,
                4 * G,
                &[(3, 4 * G)],
                10 * G,
                30 * G,
                &[(3, 40 * G)],
            ),
            // Inconsistent input (below > total) saturates to the minimum.
            (100, 8 * M, 4 * M, &[], 8 * M, 2 * M, &[]),
        ];
        for &(percent, low, total, nodes, want_low, want_global, want_nodes) in table {
            let mut usage = BootUsage::new(low, total);
            for &(id, bytes) in nodes {
                usage = usage.with_node(n(id), bytes).unwrap();
            }
            let s = ScratchSizes::compute(ScratchSpec::Scale { percent }, &usage).unwrap();
            assert_eq!(
                (s.lowmem(), s.global()),
                (want_low, want_global),
                "{percent}% {low} {total}"
            );
            for &(id, size) in want_nodes {
                assert_eq!(s.node(n(id)), size, "node {id}");
            }
            assert_eq!(s.node(n(99)), 2 * M, "unlisted node gets the minimum");
        }
    }

    #[test]
    fn explicit_table() {
        type Sizes = (u64, u64, u64);
        let table: &[(Sizes, Sizes)] = &[
            ((16 * M, 512 * M, 256 * M), (16 * M, 512 * M, 256 * M)),
            ((1, 2 * M + 1, 3 * M), (2 * M, 4 * M, 4 * M)),
            ((0, 1, 0), (2 * M, 2 * M, 2 * M)),
            ((4 * G, 0, G - 1), (4 * G, 2 * M, G)),
        ];
        for &((l, g, p), (wl, wg, wp)) in table {
            let spec = ScratchSpec::Explicit {
                lowmem: l,
                global: g,
                per_node: p,
            };
            let s = ScratchSizes::compute(spec, &BootUsage::new(G, G)).unwrap();
            assert_eq!((s.lowmem(), s.global(), s.node(n(7))), (wl, wg, wp));
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let usage = BootUsage::new(u64::MAX, u64::MAX);
        assert_eq!(
            ScratchSizes::compute(ScratchSpec::Scale { percent: 200 }, &usage),
            Err(Error::ScaledSizeOverflow {
                area: AreaKind::Lowmem
            })
        );
        assert_eq!(
            ScratchSizes::explicit(1, u64::MAX, 1),
            Err(Error::ScaledSizeOverflow {
                area: AreaKind::Global
            })
        );
        let usage = BootUsage::new(0, 0).with_node(n(2), u64::MAX / 2).unwrap();
        assert_eq!(
            ScratchSizes::compute(ScratchSpec::Scale { percent: 300 }, &usage),
            Err(Error::ScaledSizeOverflow {
                area: AreaKind::Node(n(2))
            })
        );
    }

    #[test]
    fn usage_from_allocations() {
        let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
        let allocs = [
            (r(0x100_0000, 16 * M), n(0)),   // kernel image, low
            (r(0xffe0_0000, 4 * M), n(0)),   // straddles the x86 limit (4 GiB - 1)
            (r(0x1_4000_0000, 8 * M), n(1)), // high, node 1
            (r(0x1_4080_0000, 8 * M), n(1)),
        ];
        let u = BootUsage::from_allocations(allocs, LowLimit::X86_64).unwrap();
        assert_eq!(u.total(), 36 * M);
        // 16 MiB + the part of the straddling range below 0xffff_ffff.
        assert_eq!(u.below_low_limit(), 16 * M + (0xffff_ffff - 0xffe0_0000));
        assert_eq!(
            (u.node(n(0)), u.node(n(1)), u.node(n(2))),
            (20 * M, 16 * M, 0)
        );

        let many = (0..=MAX_NUMA_NODES as u32).map(|i| (r(u64::from(i) << 21, 4096), n(i)));
        assert_eq!(
            BootUsage::from_allocations(many, LowLimit::X86_64),
            Err(Error::TooManyNodes {
                max: MAX_NUMA_NODES
            })
        );
    }
}
