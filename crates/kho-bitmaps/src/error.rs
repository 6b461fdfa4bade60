//! The crate's one error type: rejected requests on the outgoing side and
//! corruption found in an untrusted chunk list on the incoming side.

use core::fmt;

use kho_mem::{Order, Pfn, PhysAddr};

/// Where an entry sits: the chunk page holding it and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryAt {
    /// Physical address of the chunk page.
    pub chunk: PhysAddr,
    /// Index of the entry in the chunk (0 … 254).
    pub entry: usize,
}

impl fmt::Display for EntryAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chunk {} entry {}", self.chunk, self.entry)
    }
}

/// Why a tracker operation or the reading of a chunk list failed.
///
/// Outgoing-side variants name the block (`pfn`, `order`) that was
/// rejected; when they are returned the tracker is unchanged. Incoming-side
/// variants name where the corruption is: the chunk's position in the list
/// (0 = the chunk `preserved-memory-map` points at) or the entry
/// ([`EntryAt`]).
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
    /// The block's order is above the tracker's maximum order.
    OrderTooLarge {
        /// The order given.
        order: Order,
        /// The largest order this tracker accepts.
        max: Order,
    },
    /// Exactly this block is already preserved.
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
    /// A page range that ends beyond the last frame a 64-bit physical
    /// address can name.
    RangeTooLarge {
        /// First frame of the range.
        start: Pfn,
        /// Pages in the range.
        nr_pages: u64,
    },
    /// The tracker has been serialized (finalized): it changes again only
    /// after [`Tracker::abort`](crate::Tracker::abort).
    Finalized,
    /// A bitmap or chunk page could not be allocated; nothing changed.
    Alloc {
        /// The allocator's error.
        source: kho_mem::Error,
    },
    /// A page the tracker allocated could not be read, written or freed:
    /// the [`PhysMem`](kho_mem::PhysMem) no longer backs it.
    Access {
        /// The address accessed.
        addr: PhysAddr,
        /// The memory error.
        source: kho_mem::Error,
    },
    /// A chunk address (the map itself or a `next`) is not page-aligned.
    ChunkMisaligned {
        /// Position of the chunk in the list (0 = first).
        position: usize,
        /// The address found.
        chunk: PhysAddr,
    },
    /// A chunk page is not RAM.
    ChunkNotRam {
        /// Position of the chunk in the list (0 = first).
        position: usize,
        /// The address found.
        chunk: PhysAddr,
    },
    /// The list comes back to a chunk it already went through. The cycle
    /// is named by the first chunk the list reaches twice.
    ChunkCycle {
        /// The first chunk reached twice: where the cycle starts.
        chunk: PhysAddr,
        /// Its position in the list (the chunks before it lead into the
        /// cycle).
        first: usize,
        /// The position at which it is reached again (`first` plus the
        /// cycle's length).
        again: usize,
    },
    /// A chunk's `num_elms` is above the 255 entries a chunk holds.
    TooManyEntries {
        /// The chunk.
        chunk: PhysAddr,
        /// The count found.
        num_elms: u32,
    },
    /// A chunk's `order` is above what the bitmap size allows
    /// ([`BitmapSize::max_order`](kho_abi::v1::BitmapSize::max_order)).
    ChunkOrderTooLarge {
        /// The chunk.
        chunk: PhysAddr,
        /// The order found.
        order: u32,
        /// The largest order accepted.
        max: u32,
    },
    /// An entry's bitmap address is 0, which Linux reads as NULL.
    NullBitmap {
        /// The entry.
        at: EntryAt,
    },
    /// An entry's bitmap is not aligned to its size.
    BitmapMisaligned {
        /// The entry.
        at: EntryAt,
        /// The bitmap address found.
        bitmap: PhysAddr,
    },
    /// An entry's bitmap is not RAM.
    BitmapNotRam {
        /// The entry.
        at: EntryAt,
        /// The bitmap address found.
        bitmap: PhysAddr,
    },
    /// An entry's `phys_start` is not a multiple of what one bitmap of its
    /// order covers (`PRESERVE_BITS << (order + PAGE_SHIFT)`).
    PhysStartMisaligned {
        /// The entry.
        at: EntryAt,
        /// The `phys_start` found.
        phys_start: u64,
        /// The chunk's order.
        order: u32,
    },
    /// Two entries describe the same bitmap index of the same order.
    DuplicateEntry {
        /// The earlier entry in list order.
        first: EntryAt,
        /// The later one.
        second: EntryAt,
        /// Their order.
        order: u32,
        /// Their `phys_start`.
        phys_start: u64,
    },
    /// Two entries point at the same bitmap.
    SharedBitmap {
        /// The bitmap.
        bitmap: PhysAddr,
        /// The earlier entry in list order.
        first: EntryAt,
        /// The later one.
        second: EntryAt,
    },
    /// An entry's bitmap lies inside a chunk page of the list.
    BitmapInChunk {
        /// The entry.
        at: EntryAt,
        /// The bitmap address found.
        bitmap: PhysAddr,
        /// The chunk page it lies in.
        chunk: PhysAddr,
    },
    /// A set bit stands for a block that is not entirely RAM.
    BlockNotRam {
        /// The entry whose bitmap holds the bit.
        at: EntryAt,
        /// The bit index.
        bit: usize,
        /// The block's first byte.
        phys: PhysAddr,
        /// The block's order.
        order: Order,
    },
    /// The list has more chunk and bitmap pages than the caller's buffer
    /// holds (one word each).
    TooManyPages {
        /// The number of pages the buffer holds.
        capacity: usize,
    },
    /// Memory that passed the RAM check could not be read.
    Read {
        /// The address read.
        addr: PhysAddr,
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
                write!(f, "order {order} exceeds the tracker's maximum order {max}")
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
            Error::Finalized => f.write_str(
                "the preserved-memory map is serialized (finalized); abort it before changing it",
            ),
            Error::Alloc { source } => {
                write!(f, "cannot allocate a bitmap or chunk page: {source}")
            }
            Error::Access { addr, source } => {
                write!(f, "cannot access the tracker's page at {addr}: {source}")
            }
            Error::ChunkMisaligned { position, chunk } => {
                write!(f, "chunk {position} address {chunk} is not page-aligned")
            }
            Error::ChunkNotRam { position, chunk } => {
                write!(f, "chunk {position} at {chunk} is not RAM")
            }
            Error::ChunkCycle {
                chunk,
                first,
                again,
            } => write!(
                f,
                "chunk {again} is chunk {first} again ({chunk}): the list is a cycle"
            ),
            Error::TooManyEntries { chunk, num_elms } => write!(
                f,
                "chunk {chunk} claims {num_elms} entries, more than the 255 a chunk holds"
            ),
            Error::ChunkOrderTooLarge { chunk, order, max } => write!(
                f,
                "chunk {chunk} has order {order}, above the maximum order {max}"
            ),
            Error::NullBitmap { at } => write!(f, "{at} has a null bitmap"),
            Error::BitmapMisaligned { at, bitmap } => {
                write!(f, "{at} bitmap {bitmap} is not aligned to its size")
            }
            Error::BitmapNotRam { at, bitmap } => write!(f, "{at} bitmap {bitmap} is not RAM"),
            Error::PhysStartMisaligned {
                at,
                phys_start,
                order,
            } => write!(
                f,
                "{at} phys_start {phys_start:#x} is not a multiple of an order-{order} \
                 bitmap's span"
            ),
            Error::DuplicateEntry {
                first,
                second,
                order,
                phys_start,
            } => write!(
                f,
                "{second} repeats {first}: both describe order {order} at {phys_start:#x}"
            ),
            Error::SharedBitmap {
                bitmap,
                first,
                second,
            } => write!(f, "{first} and {second} share the bitmap {bitmap}"),
            Error::BitmapInChunk { at, bitmap, chunk } => {
                write!(f, "{at} bitmap {bitmap} lies inside chunk {chunk}")
            }
            Error::BlockNotRam {
                at,
                bit,
                phys,
                order,
            } => write!(
                f,
                "{at} bit {bit} preserves the order-{order} block at {phys}, which is not RAM"
            ),
            Error::TooManyPages { capacity } => write!(
                f,
                "the map has more than {capacity} chunk and bitmap pages, \
                 the capacity of the buffer"
            ),
            Error::Read { addr, source } => write!(f, "cannot read {addr}: {source}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Alloc { source } | Error::Access { source, .. } | Error::Read { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}
