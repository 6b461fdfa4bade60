//! The memory map placement works on: typed ranges with a NUMA node, and the
//! architecture's low-memory limit.

use core::fmt;

use kho_mem::{PhysAddr, PhysRange};

/// A NUMA node id (Linux `nid`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(u32);

impl NodeId {
    /// Node 0, the only node of a non-NUMA machine.
    pub const ZERO: NodeId = NodeId(0);

    /// A node id.
    pub const fn new(id: u32) -> NodeId {
        NodeId(id)
    }

    /// The id as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a memory-map entry is. Only [`MemKind::Usable`] memory can hold
/// scratch; every other kind is treated as in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemKind {
    /// Ordinary RAM (e820 type 1, a device-tree `memory` node).
    Usable,
    /// Reserved by firmware (e820 type 2).
    Reserved,
    /// ACPI tables, reclaimable after boot (e820 type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage (e820 type 4).
    AcpiNvs,
    /// Defective memory (e820 type 5).
    Unusable,
    /// Persistent memory (e820 type 7).
    Persistent,
    /// Any other e820 type.
    Other(u32),
}

impl MemKind {
    /// The kind of an e820 entry type.
    pub const fn from_e820(kind: u32) -> MemKind {
        match kind {
            1 => MemKind::Usable,
            2 => MemKind::Reserved,
            3 => MemKind::AcpiReclaimable,
            4 => MemKind::AcpiNvs,
            5 => MemKind::Unusable,
            7 => MemKind::Persistent,
            other => MemKind::Other(other),
        }
    }

    /// Whether memory of this kind is RAM the kernel may allocate
    /// (what Linux puts in `memblock.memory`).
    pub const fn is_usable(self) -> bool {
        matches!(self, MemKind::Usable)
    }
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemRegion {
    /// The physical range.
    pub range: PhysRange,
    /// What it is.
    pub kind: MemKind,
    /// The NUMA node it belongs to ([`NodeId::ZERO`] without NUMA).
    pub node: NodeId,
}

impl MemRegion {
    /// An entry.
    pub const fn new(range: PhysRange, kind: MemKind, node: NodeId) -> MemRegion {
        MemRegion { range, kind, node }
    }

    /// Usable RAM on `node`.
    pub const fn ram(range: PhysRange, node: NodeId) -> MemRegion {
        MemRegion::new(range, MemKind::Usable, node)
    }

    /// Whether the entry is usable RAM with at least one byte.
    pub const fn is_usable_ram(&self) -> bool {
        self.kind.is_usable() && !self.range.is_empty()
    }
}

/// The architecture's low-memory limit (Linux `ARCH_LOW_ADDRESS_LIMIT`).
///
/// The low-memory scratch area is placed so that it **ends at or below**
/// this value, exactly as `memblock_phys_alloc_range(.., 0, limit)` treats
/// its `end` argument. Upstream's limit is the last low address (x86_64:
/// `4 GiB - 1`), so the 2 MiB block just below 4 GiB is never chosen; this
/// mirrors that. [`BootUsage::from_allocations`](crate::BootUsage::from_allocations)
/// counts bytes below the same value, as `memblock_reserved_kern_size` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LowLimit(PhysAddr);

const FOUR_GIB: u64 = 1 << 32;

impl LowLimit {
    /// x86_64: `4 GiB - 1`.
    pub const X86_64: LowLimit = LowLimit(PhysAddr::new(FOUR_GIB - 1));

    /// No limit: the low-memory area may go anywhere.
    pub const NONE: LowLimit = LowLimit(PhysAddr::new(u64::MAX));

    /// An explicit limit (the upstream `ARCH_LOW_ADDRESS_LIMIT` value).
    pub const fn new(limit: PhysAddr) -> LowLimit {
        LowLimit(limit)
    }

    /// arm64: `arm64_dma_phys_limit - 1`, assuming firmware imposes no
    /// tighter DMA limit (no `dma-ranges`, no IORT restriction).
    ///
    /// `ram` is the span of all RAM (`memblock_start_of_DRAM()` to
    /// `memblock_end_of_DRAM()`). When RAM starts below 4 GiB the DMA zone
    /// ends at `min(4 GiB, end of RAM)`; when it starts above, ZONE_DMA
    /// covers all RAM. QEMU `virt` with RAM at 1 GiB: `min(4 GiB, end) - 1`.
    /// An empty span gives the x86_64 value. Not re-verified against a
    /// pinned kernel (spec section 16).
    pub const fn arm64(ram: PhysRange) -> LowLimit {
        let last = match ram.last() {
            Some(last) => last.as_u64(),
            None => return LowLimit::X86_64,
        };
        let zone_last = if ram.start().as_u64() < FOUR_GIB && last > FOUR_GIB - 1 {
            FOUR_GIB - 1
        } else {
            last
        };
        // arm64_dma_phys_limit = zone_last + 1; the limit is one less.
        LowLimit(PhysAddr::new(zone_last))
    }

    /// The limit value.
    pub const fn get(self) -> PhysAddr {
        self.0
    }
}
