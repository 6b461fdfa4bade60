//! The crate's one error type: refused requests on the outgoing side and
//! what is wrong with an untrusted handover on the incoming side.

use core::fmt;

use kho_mem::{PhysAddr, PhysRange};

/// Where a range came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum At {
    /// An entry of a `mem` property: the byte offset of its 16 bytes in
    /// the FDT blob.
    Fdt {
        /// Offset of the entry from the start of the FDT.
        offset: usize,
    },
    /// An entry of the mem cache.
    Cache {
        /// Index of the entry (0 = first).
        index: usize,
        /// Physical address of the entry's 16 bytes.
        addr: PhysAddr,
    },
    /// A range given to [`Tracker::preserve`](crate::Tracker::preserve).
    Preserve,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            At::Fdt { offset } => write!(f, "mem entry at FDT offset {offset:#x}"),
            At::Cache { index, addr } => write!(f, "mem cache entry {index} at {addr}"),
            At::Preserve => f.write_str("preserved range"),
        }
    }
}

/// What is wrong with an FDT's container (header, blocks, tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FdtProblem {
    /// The blob is shorter than the header or than its `totalsize`.
    Truncated,
    /// The magic is not `0xd00dfeed`.
    BadMagic,
    /// The header's version is below 17 (or `last_comp_version` above 17).
    Version,
    /// The memory reservation map, structure or strings block lies outside
    /// `totalsize`, or is not aligned (8 bytes for the map, 4 for the
    /// structure block); the offset is the header field's.
    BlockOutside,
    /// An unknown token.
    BadToken(u32),
    /// A token, name or property value runs past the structure block.
    PastStructure,
    /// A property name offset points outside the strings block, the name
    /// is not NUL-terminated inside it, or it is empty or not printable
    /// ASCII.
    BadName,
    /// A node name is empty, contains `/` or is not printable ASCII.
    BadNodeName,
    /// A property follows a child node of the same node.
    PropertyAfterChild,
    /// The memory reservation map has no terminating all-zero entry.
    ReserveMap,
    /// Nodes nest deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    TooDeep,
    /// The structure does not start with one root node with an empty name.
    NoRoot,
    /// A property outside any node, or a node after the root closed.
    OutsideRoot,
    /// More end-node tokens than nodes, or `FDT_END` with nodes open.
    Unbalanced,
    /// A problem kho-fdt's walk reports that this enum has no name for
    /// (none today; kho-fdt's error enums are non-exhaustive).
    Other,
}

impl fmt::Display for FdtProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FdtProblem::Truncated => f.write_str("the blob is truncated"),
            FdtProblem::BadMagic => f.write_str("bad magic"),
            FdtProblem::Version => f.write_str("unsupported header version"),
            FdtProblem::BlockOutside => f.write_str("a block lies outside the blob"),
            FdtProblem::BadToken(t) => write!(f, "unknown token {t:#x}"),
            FdtProblem::PastStructure => f.write_str("runs past the structure block"),
            FdtProblem::BadName => f.write_str("bad property name"),
            FdtProblem::BadNodeName => f.write_str("bad node name"),
            FdtProblem::PropertyAfterChild => f.write_str("a property after a child node"),
            FdtProblem::ReserveMap => f.write_str("unterminated memory reservation map"),
            FdtProblem::TooDeep => f.write_str("nodes nest too deep"),
            FdtProblem::NoRoot => f.write_str("no root node"),
            FdtProblem::OutsideRoot => f.write_str("a token outside the root node"),
            FdtProblem::Unbalanced => f.write_str("unbalanced nodes"),
            FdtProblem::Other => f.write_str("malformed"),
        }
    }
}

/// Why a tracker operation failed, or why a handover is refused.
///
/// Range variants say where the range came from ([`At`]); other incoming
/// variants carry the FDT offset or physical address of the problem. When
/// an outgoing operation fails, the tracker is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A range of length 0.
    EmptyRange {
        /// Where the range came from.
        at: At,
        /// Its address.
        addr: PhysAddr,
    },
    /// A range whose length is not a multiple of the page size.
    Misaligned {
        /// Where the range came from.
        at: At,
        /// Its address (flags removed).
        addr: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// A range whose `addr` has bits below the page size set other than
    /// `MEM_NOINIT` (bit 0): reserved flags, or an address that is not
    /// page-aligned.
    ReservedFlags {
        /// Where the range came from.
        at: At,
        /// The raw `addr` field.
        raw: u64,
    },
    /// A range that ends beyond the 64-bit address space.
    RangeOverflow {
        /// Where the range came from.
        at: At,
        /// Its address.
        addr: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// A range that is not entirely RAM.
    NotRam {
        /// Where the range came from.
        at: At,
        /// The range.
        range: PhysRange,
    },
    /// A range that overlaps the scratch region.
    InScratch {
        /// Where the range came from.
        at: At,
        /// The range.
        range: PhysRange,
        /// The scratch region.
        scratch: PhysRange,
    },
    /// Two preserved ranges overlap (or are the same range twice).
    Overlap {
        /// Where the later range came from.
        at: At,
        /// The later range.
        range: PhysRange,
        /// The range it overlaps.
        other: PhysRange,
    },
    /// The scratch region is empty, not page-aligned, or (incoming) not RAM.
    BadScratch {
        /// The scratch region.
        scratch: PhysRange,
    },
    /// A `kho_data` field pair whose range wraps past 2^64.
    BadHandover {
        /// The field pair: `"dt"`, `"scratch"` or `"mem_cache"`.
        field: &'static str,
        /// The address field.
        addr: u64,
        /// The size field.
        size: u64,
    },
    /// Preserving, unpreserving or setting a property during the active
    /// phase: the tree is serialized and may not change until
    /// [`Tracker::leave_active`](crate::Tracker::leave_active).
    Active,
    /// [`Tracker::serialize`](crate::Tracker::serialize) while already in
    /// the active phase.
    AlreadyActive,
    /// Leaving the active phase, or asking for the serialized handover,
    /// when not in it.
    NotActive,
    /// Unpreserve of a range the node does not hold exactly.
    NotPreserved {
        /// The range.
        range: PhysRange,
    },
    /// A node path component that is empty, too long or has a character a
    /// node name may not have.
    InvalidName {
        /// Byte offset of the component in the path or property name.
        offset: usize,
    },
    /// A property the tracker owns: `mem` anywhere, `compatible` at the
    /// root.
    ReservedProperty,
    /// The FDT writer failed (vm-fdt's message).
    FdtWriter {
        /// What vm-fdt reported.
        reason: &'static str,
    },
    /// The FDT container is malformed.
    Fdt {
        /// Byte offset of the problem in the blob.
        offset: usize,
        /// What is wrong.
        problem: FdtProblem,
    },
    /// The root `compatible` is missing or not the 2024 design's.
    Compatible {
        /// Offset of the property value, or of the root node if absent.
        offset: usize,
    },
    /// A `mem` property whose length is not a multiple of 16.
    MemLength {
        /// Offset of the property value.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// A node with a second `mem` property.
    DuplicateMem {
        /// Offset of the second property's value.
        offset: usize,
    },
    /// The FDT is larger than the caller's buffer.
    FdtTooLarge {
        /// `dt_size`.
        size: u64,
        /// The buffer's length.
        capacity: usize,
    },
    /// The mem cache's size is not a multiple of 16.
    CacheLength {
        /// The mem cache.
        cache: PhysRange,
    },
    /// The mem cache array itself is not RAM.
    CacheNotRam {
        /// The mem cache.
        cache: PhysRange,
    },
    /// A mem cache entry starts below the previous one: the cache must be
    /// sorted by address.
    CacheUnsorted {
        /// The entry.
        at: At,
        /// Its range.
        range: PhysRange,
        /// The previous entry's range.
        previous: PhysRange,
    },
    /// A `mem` entry of the tree that the mem cache does not hold exactly
    /// (address, flags and length): the next kernel would not reserve it.
    NotInCache {
        /// The tree entry.
        at: At,
        /// Its range.
        range: PhysRange,
    },
    /// A mem cache entry that no `mem` property of the tree holds: memory
    /// reserved that no client owns.
    NotInTree {
        /// The cache entry.
        at: At,
        /// Its range.
        range: PhysRange,
    },
    /// The mem cache has more entries than the caller's buffer has bits.
    TooManyRanges {
        /// Entries in the mem cache.
        ranges: usize,
        /// Entries the buffer can track (64 per word).
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
            Error::EmptyRange { at, addr } => write!(f, "{at}: empty range at {addr}"),
            Error::Misaligned { at, addr, len } => write!(
                f,
                "{at}: range at {addr} of {len:#x} bytes is not a whole number of pages"
            ),
            Error::ReservedFlags { at, raw } => write!(
                f,
                "{at}: addr {raw:#x} has reserved low bits set (only bit 0, NOINIT, is defined)"
            ),
            Error::RangeOverflow { at, addr, len } => write!(
                f,
                "{at}: range at {addr} of {len:#x} bytes ends beyond the address space"
            ),
            Error::NotRam { at, range } => write!(f, "{at}: range {range} is not RAM"),
            Error::InScratch { at, range, scratch } => {
                write!(
                    f,
                    "{at}: range {range} overlaps the scratch region {scratch}"
                )
            }
            Error::Overlap { at, range, other } => {
                write!(
                    f,
                    "{at}: range {range} overlaps the preserved range {other}"
                )
            }
            Error::BadScratch { scratch } => write!(
                f,
                "scratch region {scratch} is empty, not page-aligned or not RAM"
            ),
            Error::BadHandover { field, addr, size } => write!(
                f,
                "kho_data {field} at {addr:#x} of {size:#x} bytes wraps past the address space"
            ),
            Error::Active => f.write_str(
                "the KHO tree is serialized (active phase); leave the active phase to change it",
            ),
            Error::AlreadyActive => {
                f.write_str("the KHO tree is already serialized (active phase)")
            }
            Error::NotActive => f.write_str("not in the KHO active phase"),
            Error::NotPreserved { range } => {
                write!(f, "range {range} is not preserved in this node")
            }
            Error::InvalidName { offset } => write!(f, "invalid name at byte {offset}"),
            Error::ReservedProperty => f.write_str(
                "`mem` (and `compatible` at the root) are written by the tracker, not set",
            ),
            Error::FdtWriter { reason } => write!(f, "FDT writer: {reason}"),
            Error::Fdt { offset, problem } => write!(f, "FDT offset {offset:#x}: {problem}"),
            Error::Compatible { offset } => write!(
                f,
                "FDT offset {offset:#x}: the root compatible is not \"{}\"",
                kho_abi::rfc2024::COMPATIBLE
            ),
            Error::MemLength { offset, len } => write!(
                f,
                "FDT offset {offset:#x}: mem property of {len} bytes is not a multiple of 16"
            ),
            Error::DuplicateMem { offset } => {
                write!(
                    f,
                    "FDT offset {offset:#x}: a second mem property in one node"
                )
            }
            Error::FdtTooLarge { size, capacity } => write!(
                f,
                "the FDT of {size} bytes is larger than the {capacity}-byte buffer"
            ),
            Error::CacheLength { cache } => {
                write!(
                    f,
                    "mem cache {cache} is not a whole number of 16-byte entries"
                )
            }
            Error::CacheNotRam { cache } => write!(f, "mem cache {cache} is not RAM"),
            Error::CacheUnsorted {
                at,
                range,
                previous,
            } => write!(
                f,
                "{at}: range {range} starts below the previous entry {previous}: \
                 the mem cache is not sorted"
            ),
            Error::NotInCache { at, range } => write!(
                f,
                "{at}: range {range} is not in the mem cache (the tree and the cache disagree)"
            ),
            Error::NotInTree { at, range } => write!(
                f,
                "{at}: range {range} is in no mem property (the tree and the cache disagree)"
            ),
            Error::TooManyRanges { ranges, capacity } => write!(
                f,
                "the mem cache has {ranges} entries, more than the buffer tracks ({capacity})"
            ),
            Error::Read { addr, source } => write!(f, "cannot read {addr}: {source}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
