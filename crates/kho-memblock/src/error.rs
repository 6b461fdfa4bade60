//! The crate's one error type: bad `reserve_mem=` values, regions that cannot
//! be preserved, and sub-blobs the next kernel must refuse.

use core::fmt;

use kho_abi::memblock::{COMPATIBLE, REGION_COMPATIBLE};
use kho_mem::PhysAddr;
use kho_scratch::Token;

use crate::{MAX_NAME_LEN, SMP_CACHE_BYTES};

/// Why a `reserve_mem=` value, a region list or a memblock sub-blob was
/// refused.
///
/// Names and bad command-line input are quoted as a [`Token`] (the first
/// 32 bytes, escaped when displayed), so the type owns its data without
/// allocating.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // --- reserve_mem= syntax -------------------------------------------------
    /// The value does not start with a size (`reserve_mem=:4K:log`).
    MissingSize {
        /// The whole value.
        token: Token,
    },
    /// The size is zero (`reserve_mem=0:4K:log`).
    ZeroSize {
        /// The size as written.
        token: Token,
    },
    /// A size or alignment does not fit 64 bits (Linux would wrap it).
    NumberOverflow {
        /// The number with its suffix.
        token: Token,
    },
    /// The size is not followed by `:` (`reserve_mem=1M,4K:log`).
    ExpectedColonAfterSize {
        /// The value from the size on.
        token: Token,
    },
    /// The alignment is not followed by `:` (`reserve_mem=1M:4K`).
    ExpectedColonAfterAlign {
        /// The value from the alignment on.
        token: Token,
    },
    /// The alignment, once raised to [`SMP_CACHE_BYTES`], is not a power of
    /// two (Linux accepts it and aligns wrongly).
    AlignNotPowerOfTwo {
        /// The alignment as written.
        token: Token,
        /// Its value.
        align: u64,
    },
    // --- names -------------------------------------------------------------
    /// The region name is empty.
    EmptyName,
    /// The region name is longer than [`MAX_NAME_LEN`] bytes
    /// (`RESERVE_MEM_NAME_SIZE` minus the NUL).
    NameTooLong {
        /// The name.
        name: Token,
        /// Its length in bytes.
        len: usize,
    },
    /// The region name is only whitespace.
    BlankName {
        /// The name.
        name: Token,
    },
    /// The region name cannot be an FDT node name here: it must start with a
    /// letter and use only `A-Z a-z 0-9 , . _ + -`.
    InvalidName {
        /// The name.
        name: Token,
    },
    // --- region lists --------------------------------------------------------
    /// A region of zero bytes.
    EmptyRegion {
        /// The region's name.
        name: Token,
    },
    /// `start + size` passes the end of the 64-bit address space.
    RegionWraps {
        /// The region's name.
        name: Token,
        /// Its start.
        start: PhysAddr,
        /// Its size in bytes.
        size: u64,
    },
    /// A region is not entirely RAM.
    RegionNotRam {
        /// The region's name.
        name: Token,
        /// Its start.
        start: PhysAddr,
        /// Its size in bytes.
        size: u64,
    },
    /// Two regions have the same name.
    DuplicateName {
        /// The name.
        name: Token,
    },
    /// Two regions share at least one byte.
    RegionsOverlap {
        /// The earlier region's name.
        first: Token,
        /// The later region's name.
        second: Token,
    },
    /// The sub-blob would not fit its one page.
    TooLarge {
        /// The size it would have.
        size: usize,
    },
    // --- reading a sub-blob --------------------------------------------------
    /// The FDT container could not be built, or is not a valid FDT (see the
    /// wrapped error for the offset and the reason).
    Blob(kho_fdt::Error),
    /// The blob size (from `blob-size` or the FDT header) is above one page.
    BlobTooLarge {
        /// The size found.
        size: u64,
    },
    /// The blob is not entirely RAM.
    BlobNotRam {
        /// The blob's address.
        phys: PhysAddr,
        /// The bytes that were to be read.
        size: u64,
    },
    /// The root `compatible` is missing or does not list `"memblock-v1"`.
    RootNotCompatible {
        /// The property value found, if any.
        found: Option<Token>,
    },
    /// A region node's `compatible` is missing or does not list
    /// `"reserve-mem-v1"`.
    RegionNotCompatible {
        /// The node name.
        name: Token,
        /// The property value found, if any.
        found: Option<Token>,
    },
    /// A region node lacks `start` or `size`.
    MissingProperty {
        /// The node name.
        name: Token,
        /// The property.
        property: &'static str,
    },
    /// A region's `start` or `size` is not exactly 8 bytes.
    BadPropertyLength {
        /// The node name.
        name: Token,
        /// The property.
        property: &'static str,
        /// Its length.
        len: usize,
    },
    /// No region of that name.
    NotFound {
        /// The name looked up.
        name: Token,
    },
    /// The revived region's start is not aligned as `reserve_mem=` asks.
    AlignmentMismatch {
        /// The region's name.
        name: Token,
        /// Its start.
        start: PhysAddr,
        /// The alignment asked for.
        align: u64,
    },
    /// The revived region's size is not the size `reserve_mem=` asks for.
    SizeMismatch {
        /// The region's name.
        name: Token,
        /// The size asked for.
        expected: u64,
        /// The size in the sub-blob.
        found: u64,
    },
    // --- memory and the radix tree -------------------------------------------
    /// The blob page could not be allocated; nothing was preserved.
    PageAlloc {
        /// The allocator's error.
        source: kho_mem::Error,
    },
    /// Memory at `addr` could not be read, written or freed.
    Access {
        /// The address of the access.
        addr: PhysAddr,
        /// The memory error.
        source: kho_mem::Error,
    },
    /// The radix tree refused to preserve `pages` pages at `start`;
    /// nothing was preserved.
    Preserve {
        /// First byte of the pages.
        start: PhysAddr,
        /// Number of pages.
        pages: u64,
        /// The tree's error.
        source: kho_radix::Error,
    },
    /// The radix tree refused to unpreserve `pages` pages at `start`.
    Unpreserve {
        /// First byte of the pages.
        start: PhysAddr,
        /// Number of pages.
        pages: u64,
        /// The tree's error.
        source: kho_radix::Error,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Displays an optional quoted value, or "none".
struct Found<'a>(&'a Option<Token>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("none"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingSize { token } => {
                write!(f, "reserve_mem: {token} does not start with a size")
            }
            Error::ZeroSize { token } => write!(f, "reserve_mem: size {token} is zero"),
            Error::NumberOverflow { token } => {
                write!(f, "reserve_mem: number {token} does not fit 64 bits")
            }
            Error::ExpectedColonAfterSize { token } => {
                write!(f, "reserve_mem: expected ':' after the size in {token}")
            }
            Error::ExpectedColonAfterAlign { token } => write!(
                f,
                "reserve_mem: expected ':' and a name after the alignment in {token}"
            ),
            Error::AlignNotPowerOfTwo { token, align } => write!(
                f,
                "reserve_mem: alignment {token} ({align:#x}) is not a power of two \
                 (values below {SMP_CACHE_BYTES} become {SMP_CACHE_BYTES})"
            ),
            Error::EmptyName => f.write_str("reserve_mem: empty region name"),
            Error::NameTooLong { name, len } => write!(
                f,
                "reserve_mem: region name {name} is {len} bytes, at most {MAX_NAME_LEN} allowed"
            ),
            Error::BlankName { name } => {
                write!(f, "reserve_mem: region name {name} is only whitespace")
            }
            Error::InvalidName { name } => write!(
                f,
                "region name {name} is not a valid node name: it must start with a letter \
                 and use only [A-Za-z0-9,._+-]"
            ),
            Error::EmptyRegion { name } => write!(f, "region {name} is empty"),
            Error::RegionWraps { name, start, size } => write!(
                f,
                "region {name} at {start} of {size:#x} bytes wraps past the end of memory"
            ),
            Error::RegionNotRam { name, start, size } => {
                write!(f, "region {name} at {start} of {size:#x} bytes is not RAM")
            }
            Error::DuplicateName { name } => write!(f, "two regions are named {name}"),
            Error::RegionsOverlap { first, second } => {
                write!(f, "regions {first} and {second} overlap")
            }
            Error::TooLarge { size } => write!(
                f,
                "memblock sub-blob would be {size} bytes, more than its {}-byte page",
                kho_mem::PAGE_SIZE
            ),
            Error::Blob(e) => write!(f, "memblock sub-blob: {e}"),
            Error::BlobTooLarge { size } => write!(
                f,
                "memblock sub-blob of {size} bytes is larger than its {}-byte page",
                kho_mem::PAGE_SIZE
            ),
            Error::BlobNotRam { phys, size } => {
                write!(f, "memblock sub-blob at {phys} ({size} bytes) is not RAM")
            }
            Error::RootNotCompatible { found } => write!(
                f,
                "memblock sub-blob root compatible is {}, expected \"{COMPATIBLE}\"",
                Found(found)
            ),
            Error::RegionNotCompatible { name, found } => write!(
                f,
                "memblock region {name} compatible is {}, expected \"{REGION_COMPATIBLE}\"",
                Found(found)
            ),
            Error::MissingProperty { name, property } => {
                write!(f, "memblock region {name} has no {property} property")
            }
            Error::BadPropertyLength {
                name,
                property,
                len,
            } => write!(
                f,
                "memblock region {name} {property} is {len} bytes, expected 8"
            ),
            Error::NotFound { name } => write!(f, "no memblock region named {name}"),
            Error::AlignmentMismatch { name, start, align } => write!(
                f,
                "memblock region {name} at {start} is not aligned to {align:#x}"
            ),
            Error::SizeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "memblock region {name} has size {found:#x}, reserve_mem asks for {expected:#x}"
            ),
            Error::PageAlloc { source } => {
                write!(f, "cannot allocate the memblock sub-blob page: {source}")
            }
            Error::Access { addr, source } => {
                write!(f, "cannot access memblock data at {addr}: {source}")
            }
            Error::Preserve {
                start,
                pages,
                source,
            } => write!(f, "cannot preserve {pages} pages at {start}: {source}"),
            Error::Unpreserve {
                start,
                pages,
                source,
            } => write!(f, "cannot unpreserve {pages} pages at {start}: {source}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Blob(e) => Some(e),
            Error::PageAlloc { source } | Error::Access { source, .. } => Some(source),
            Error::Preserve { source, .. } | Error::Unpreserve { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A [`Token`] quoting `s`.
pub(crate) fn token(s: impl AsRef<[u8]>) -> Token {
    Token::new(s.as_ref())
}
