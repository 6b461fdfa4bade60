//! The crate's one error type: rejected requests on the outgoing side and
//! corruption found while walking an untrusted tree on the incoming side.

use core::fmt;

use kho_mem::{Order, Pfn, PhysAddr};

/// Why a tree operation or a walk failed.
///
/// Outgoing-side variants name the block (`pfn`, `order`) that was rejected;
/// when they are returned the tree is unchanged. Incoming-side variants name
/// where the corruption is: the `level` of the node holding the bad entry
/// (5 = root … 1 = the last table level, 0 = a leaf), the `index` of the
/// entry (table slot or leaf bit) and the `node`'s physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `pfn` is not aligned to the `2^order` pages of its block.
    Misaligned {
        /// First frame of the block.
        pfn: Pfn,
        /// The block's order.
        order: Order,
    },
    /// The block's order is above the tree's maximum order
    /// ([`RadixTree::max_order`](crate::RadixTree::max_order)).
    OrderTooLarge {
        /// The order given.
        order: Order,
        /// The largest order this tree accepts.
        max: Order,
    },
    /// Exactly this block (same key) is already preserved.
    AlreadyPreserved {
        /// First frame of the block.
        pfn: Pfn,
        /// The block's order.
        order: Order,
    },
    /// The block overlaps a preserved block of another order.
    Overlap {
        /// First frame of the rejected block.
        pfn: Pfn,
        /// Order of the rejected block.
        order: Order,
        /// First frame of the preserved block it overlaps.
        existing_pfn: Pfn,
        /// Order of the preserved block it overlaps.
        existing_order: Order,
    },
    /// Unpreserve of a block that is not preserved with exactly this order.
    NotPreserved {
        /// First frame of the block.
        pfn: Pfn,
        /// The block's order.
        order: Order,
    },
    /// A page range whose end lies beyond the last frame a 64-bit physical
    /// address can name.
    RangeTooLarge {
        /// First frame of the range.
        start: Pfn,
        /// Pages in the range.
        nr_pages: u64,
    },
    /// A node page could not be allocated; nothing was inserted.
    NodeAlloc {
        /// Level of the node that could not be allocated (5 = root, 0 = leaf).
        level: u32,
        /// The allocator's error.
        source: kho_mem::Error,
    },
    /// A node of our own tree could not be read, written or freed: the
    /// [`PhysMem`](kho_mem::PhysMem) no longer backs pages it handed out.
    NodeAccess {
        /// The node's physical address.
        node: PhysAddr,
        /// The memory error.
        source: kho_mem::Error,
    },
    /// The root address is not page-aligned.
    RootMisaligned {
        /// The root address given.
        root: PhysAddr,
    },
    /// The root page is not RAM.
    RootNotRam {
        /// The root address given.
        root: PhysAddr,
    },
    /// A root slot that no valid key can select holds an entry. Keys are
    /// below `2^53`, so only root slots 0 … 3 may be used.
    UnusedRootSlot {
        /// The root's physical address.
        node: PhysAddr,
        /// The slot index (4 … 511).
        index: usize,
        /// The entry found there.
        entry: u64,
    },
    /// A table entry is not page-aligned.
    EntryMisaligned {
        /// Level of the table holding the entry (5 … 1).
        level: u32,
        /// Entry index in the table.
        index: usize,
        /// The table's physical address.
        node: PhysAddr,
        /// The entry found there.
        entry: u64,
    },
    /// A table entry points to a page that is not RAM.
    EntryNotRam {
        /// Level of the table holding the entry (5 … 1).
        level: u32,
        /// Entry index in the table.
        index: usize,
        /// The table's physical address.
        node: PhysAddr,
        /// The entry found there.
        entry: u64,
    },
    /// A table entry points to one of the table's own ancestors (or itself).
    Cycle {
        /// Level of the table holding the entry (5 … 1).
        level: u32,
        /// Entry index in the table.
        index: usize,
        /// The table's physical address.
        node: PhysAddr,
        /// The entry found there (an ancestor's address).
        entry: u64,
    },
    /// A table entry points to a node already reached through another entry.
    SharedNode {
        /// Level of the table holding the entry (5 … 1).
        level: u32,
        /// Entry index in the table.
        index: usize,
        /// The table's physical address.
        node: PhysAddr,
        /// The entry found there (a node visited before).
        entry: u64,
    },
    /// A leaf bit whose key decodes to no block (keys 0 and 1, which only the
    /// leaf under the all-zero prefix can hold).
    InvalidKey {
        /// The leaf's physical address.
        node: PhysAddr,
        /// The bit index in the leaf.
        index: usize,
        /// The key the bit stands for.
        key: u64,
    },
    /// A leaf bit decodes to a block that is not entirely RAM.
    BlockNotRam {
        /// The leaf's physical address.
        node: PhysAddr,
        /// The bit index in the leaf.
        index: usize,
        /// The block's first byte.
        phys: PhysAddr,
        /// The block's order.
        order: Order,
    },
    /// The walk reached more distinct nodes than its
    /// [`VisitedSet`](crate::VisitedSet) can hold.
    VisitedSetFull {
        /// The number of nodes the set can hold.
        capacity: usize,
    },
    /// A node that passed the RAM check could not be read.
    NodeRead {
        /// Level of the node (5 … 0).
        level: u32,
        /// The node's physical address.
        node: PhysAddr,
        /// The memory error.
        source: kho_mem::Error,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Misaligned { pfn, order } => {
                write!(f, "pfn {pfn} is not aligned to its order-{order} block")
            }
            Error::OrderTooLarge { order, max } => {
                write!(f, "order {order} exceeds the tree's maximum order {max}")
            }
            Error::AlreadyPreserved { pfn, order } => {
                write!(f, "order-{order} block at pfn {pfn} is already preserved")
            }
            Error::Overlap {
                pfn,
                order,
                existing_pfn,
                existing_order,
            } => write!(
                f,
                "order-{order} block at pfn {pfn} overlaps the preserved \
                 order-{existing_order} block at pfn {existing_pfn}"
            ),
            Error::NotPreserved { pfn, order } => {
                write!(f, "order-{order} block at pfn {pfn} is not preserved")
            }
            Error::RangeTooLarge { start, nr_pages } => write!(
                f,
                "page range at pfn {start} of {nr_pages:#x} pages ends beyond the last frame"
            ),
            Error::NodeAlloc { level, source } => {
                write!(f, "cannot allocate a level-{level} radix node: {source}")
            }
            Error::NodeAccess { node, source } => {
                write!(f, "cannot access radix node {node}: {source}")
            }
            Error::RootMisaligned { root } => {
                write!(f, "radix root {root} is not page-aligned")
            }
            Error::RootNotRam { root } => write!(f, "radix root {root} is not RAM"),
            Error::UnusedRootSlot { node, index, entry } => write!(
                f,
                "level 5 (root) table {node} entry {index} is {entry:#x}, \
                 but no valid key uses root slots above 3"
            ),
            Error::EntryMisaligned {
                level,
                index,
                node,
                entry,
            } => write!(
                f,
                "level {level} table {node} entry {index} ({entry:#x}) is not page-aligned"
            ),
            Error::EntryNotRam {
                level,
                index,
                node,
                entry,
            } => write!(
                f,
                "level {level} table {node} entry {index} ({entry:#x}) is not RAM"
            ),
            Error::Cycle {
                level,
                index,
                node,
                entry,
            } => write!(
                f,
                "level {level} table {node} entry {index} ({entry:#x}) points back to \
                 an ancestor: cycle"
            ),
            Error::SharedNode {
                level,
                index,
                node,
                entry,
            } => write!(
                f,
                "level {level} table {node} entry {index} ({entry:#x}) points to a node \
                 already visited"
            ),
            Error::InvalidKey { node, index, key } => write!(
                f,
                "level 0 leaf {node} bit {index} stands for key {key:#x}, which encodes no block"
            ),
            Error::BlockNotRam {
                node,
                index,
                phys,
                order,
            } => write!(
                f,
                "level 0 leaf {node} bit {index} preserves the order-{order} block at \
                 {phys}, which is not RAM"
            ),
            Error::VisitedSetFull { capacity } => write!(
                f,
                "the tree has more than {capacity} nodes, the capacity of the visited set"
            ),
            Error::NodeRead {
                level,
                node,
                source,
            } => write!(f, "cannot read level {level} node {node}: {source}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::NodeAlloc { source, .. }
            | Error::NodeAccess { source, .. }
            | Error::NodeRead { source, .. } => Some(source),
            _ => None,
        }
    }
}
