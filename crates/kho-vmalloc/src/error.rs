//! The crate's one error type: rejected preservations on the outgoing side and
//! corrupted descriptors or chunk chains on the incoming side.

use core::fmt;

use kho_mem::{Order, PhysAddr};

/// Why a vmalloc area could not be preserved, unpreserved or restored.
///
/// Chunk errors name the chunk by its position in the chain (`chunk`, 0 for
/// the one `first` points at) and its physical address. Block errors name
/// the block by its position in the area (`index`, 0-based, in
/// virtual-address order); as every chunk but the last holds
/// [`CHUNK_ENTRIES`](kho_abi::vmalloc::CHUNK_ENTRIES) blocks, block `index`
/// is slot `index % 511` of chunk `index / 511`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The flags have bits outside
    /// [`FLAGS_KNOWN`](kho_abi::vmalloc::FLAGS_KNOWN).
    UnknownFlags {
        /// The flags given or found.
        flags: u16,
    },
    /// The descriptor's order is above [`Order::MAX`], the largest block a
    /// radix key can encode.
    OrderTooLarge {
        /// The order found in the descriptor.
        order: u16,
    },
    /// The descriptor's `total_pages` is not a whole number of
    /// `2^order`-page blocks.
    PagesNotMultiple {
        /// `total_pages` from the descriptor.
        total_pages: u32,
        /// The descriptor's order.
        order: Order,
    },
    /// The area would have more pages than the descriptor's 32-bit
    /// `total_pages` can count.
    TooManyPages {
        /// Blocks given so far, the one that overflowed included.
        blocks: u64,
        /// The blocks' order.
        order: Order,
    },
    /// The descriptor's `first` is zero: there is no chunk chain (a
    /// preserving kernel always writes at least one chunk).
    NoChunks,
    /// A chunk address is not page-aligned.
    ChunkMisaligned {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// The address found.
        phys: PhysAddr,
    },
    /// A chunk page is not RAM.
    ChunkNotRam {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// The address found.
        phys: PhysAddr,
    },
    /// A chunk's `next` leads back to a chunk already in the chain.
    ChainCycle {
        /// Position the repeated chunk would have taken in the chain.
        chunk: usize,
        /// The address of the repeated chunk.
        phys: PhysAddr,
    },
    /// The caller's preservation check says a chunk page is not preserved as
    /// an order-0 page.
    ChunkNotPreserved {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// The chunk's address.
        phys: PhysAddr,
    },
    /// A block address of zero was given: zero terminates a chunk's list,
    /// so it cannot name a block.
    BlockAtZero {
        /// Position of the block in the area.
        index: usize,
    },
    /// A block address is not aligned to its `2^order` pages.
    BlockMisaligned {
        /// Position of the block in the area.
        index: usize,
        /// The block's address.
        phys: PhysAddr,
        /// The area's order.
        order: Order,
    },
    /// A block is not entirely RAM.
    BlockNotRam {
        /// Position of the block in the area.
        index: usize,
        /// The block's address.
        phys: PhysAddr,
        /// The area's order.
        order: Order,
    },
    /// The caller's preservation check says a block is not preserved.
    BlockNotPreserved {
        /// Position of the block in the area.
        index: usize,
        /// The block's address.
        phys: PhysAddr,
        /// The area's order.
        order: Order,
    },
    /// A non-zero entry where the zero terminator must be: the blocks before
    /// it already add up to the descriptor's `total_pages`.
    MissingTerminator {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// Slot of the entry (0 … 510).
        slot: usize,
        /// The entry found.
        entry: u64,
    },
    /// A non-zero entry after the zero terminator of a chunk.
    EntryAfterTerminator {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// Slot of the entry (1 … 510).
        slot: usize,
        /// The entry found.
        entry: u64,
    },
    /// A chunk whose list is terminated by a zero entry links to another
    /// chunk; only the last chunk may be partly filled.
    NextAfterTerminator {
        /// Position of the chunk in the chain.
        chunk: usize,
        /// The `next` value found.
        next: u64,
    },
    /// The chain ended before its blocks added up to `total_pages`.
    CountMismatch {
        /// `total_pages` from the descriptor.
        total_pages: u32,
        /// Pages the chain's blocks add up to.
        found: u64,
    },
    /// The caller's slice cannot hold every block of the area.
    BufferTooSmall {
        /// Blocks in the area.
        needed: usize,
        /// Length of the slice given.
        len: usize,
    },
    /// A chunk page could not be allocated; nothing was preserved.
    ChunkAlloc {
        /// The allocator's error.
        source: kho_mem::Error,
    },
    /// Memory at `addr` could not be read or written (a chunk page, or the
    /// place a descriptor is stored).
    Access {
        /// The address of the access.
        addr: PhysAddr,
        /// The memory error.
        source: kho_mem::Error,
    },
    /// The radix tree refused to preserve `pages` pages at `phys` (already
    /// preserved, overlapping, out of node memory, …); nothing was preserved.
    Preserve {
        /// First byte of the pages.
        phys: PhysAddr,
        /// Number of pages.
        pages: u64,
        /// The tree's error.
        source: kho_radix::Error,
    },
    /// The radix tree refused to unpreserve `pages` pages at `phys`.
    Unpreserve {
        /// First byte of the pages.
        phys: PhysAddr,
        /// Number of pages.
        pages: u64,
        /// The tree's error.
        source: kho_radix::Error,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::UnknownFlags { flags } => write!(
                f,
                "vmalloc flags {flags:#06x} have bits outside {:#06x}",
                kho_abi::vmalloc::FLAGS_KNOWN
            ),
            Error::OrderTooLarge { order } => write!(
                f,
                "vmalloc order {order} exceeds the maximum order {}",
                Order::MAX
            ),
            Error::PagesNotMultiple { total_pages, order } => write!(
                f,
                "vmalloc total_pages {total_pages} is not a multiple of the \
                 {}-page order-{order} block",
                order.pages()
            ),
            Error::TooManyPages { blocks, order } => write!(
                f,
                "{blocks} order-{order} blocks exceed the 32-bit total_pages of a vmalloc descriptor"
            ),
            Error::NoChunks => f.write_str("vmalloc descriptor has no chunk chain (first is 0)"),
            Error::ChunkMisaligned { chunk, phys } => {
                write!(f, "vmalloc chunk {chunk} at {phys} is not page-aligned")
            }
            Error::ChunkNotRam { chunk, phys } => {
                write!(f, "vmalloc chunk {chunk} at {phys} is not RAM")
            }
            Error::ChainCycle { chunk, phys } => write!(
                f,
                "vmalloc chunk chain loops: chunk {chunk} would be {phys}, already in the chain"
            ),
            Error::ChunkNotPreserved { chunk, phys } => {
                write!(f, "vmalloc chunk {chunk} at {phys} is not preserved")
            }
            Error::BlockAtZero { index } => write!(
                f,
                "vmalloc block {index} is at address 0, which terminates a chunk"
            ),
            Error::BlockMisaligned { index, phys, order } => write!(
                f,
                "vmalloc block {index} at {phys} is not aligned to its order-{order} size"
            ),
            Error::BlockNotRam { index, phys, order } => {
                write!(
                    f,
                    "vmalloc order-{order} block {index} at {phys} is not RAM"
                )
            }
            Error::BlockNotPreserved { index, phys, order } => write!(
                f,
                "vmalloc order-{order} block {index} at {phys} is not preserved"
            ),
            Error::MissingTerminator { chunk, slot, entry } => write!(
                f,
                "vmalloc chunk {chunk} slot {slot} holds {entry:#x} where the terminator \
                 must be: total_pages is already reached"
            ),
            Error::EntryAfterTerminator { chunk, slot, entry } => write!(
                f,
                "vmalloc chunk {chunk} slot {slot} holds {entry:#x} after the terminator"
            ),
            Error::NextAfterTerminator { chunk, next } => write!(
                f,
                "vmalloc chunk {chunk} is terminated but links to {next:#x}"
            ),
            Error::CountMismatch { total_pages, found } => write!(
                f,
                "vmalloc chain ends after {found} pages, the descriptor says {total_pages}"
            ),
            Error::BufferTooSmall { needed, len } => write!(
                f,
                "vmalloc area has {needed} blocks, the buffer holds {len}"
            ),
            Error::ChunkAlloc { source } => {
                write!(f, "cannot allocate a vmalloc chunk page: {source}")
            }
            Error::Access { addr, source } => {
                write!(f, "cannot access vmalloc data at {addr}: {source}")
            }
            Error::Preserve {
                phys,
                pages,
                source,
            } => write!(f, "cannot preserve {pages} pages at {phys}: {source}"),
            Error::Unpreserve {
                phys,
                pages,
                source,
            } => write!(f, "cannot unpreserve {pages} pages at {phys}: {source}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::ChunkAlloc { source } | Error::Access { source, .. } => Some(source),
            Error::Preserve { source, .. } | Error::Unpreserve { source, .. } => Some(source),
            _ => None,
        }
    }
}
