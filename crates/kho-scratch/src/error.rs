//! The crate's error type, and `Token`, the quoted piece of input an error names.

use core::fmt;

use kho_mem::{PhysAddr, PhysRange};

use crate::AreaKind;

/// How many bytes of a bad command-line token an [`Error`] keeps.
pub const TOKEN_CAPACITY: usize = 32;

/// A copy of the piece of command-line input an error is about.
///
/// Errors own their data (no lifetimes, no allocation), so the token is
/// copied into a small inline buffer; longer tokens keep their first
/// [`TOKEN_CAPACITY`] bytes and display with a trailing `...`. `Display`
/// prints the token in double quotes with non-printable bytes escaped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token {
    bytes: [u8; TOKEN_CAPACITY],
    len: u8,
    truncated: bool,
}

impl Token {
    /// Copy (the start of) `bytes`.
    pub fn new(bytes: &[u8]) -> Token {
        let len = bytes.len().min(TOKEN_CAPACITY);
        let mut buf = [0u8; TOKEN_CAPACITY];
        buf[..len].copy_from_slice(&bytes[..len]);
        Token {
            bytes: buf,
            len: len as u8,
            truncated: bytes.len() > TOKEN_CAPACITY,
        }
    }

    /// The bytes kept (at most [`TOKEN_CAPACITY`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the original token was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl PartialEq<&str> for Token {
    fn eq(&self, other: &&str) -> bool {
        !self.truncated && self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.as_bytes() {
            for c in core::ascii::escape_default(b) {
                write!(f, "{}", char::from(c))?;
            }
        }
        if self.truncated {
            f.write_str("...")?;
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

/// The two early parameters this crate parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// `kho=` (enable or disable KHO).
    Kho,
    /// `kho_scratch=` (scratch sizes).
    KhoScratch,
}

impl Param {
    /// The parameter's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Param::Kho => "kho",
            Param::KhoScratch => "kho_scratch",
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ---- command line -------------------------------------------------
    /// The parameter appeared without `=value` (`kho` or `kho_scratch`
    /// alone); Linux hands the handler a NULL value and gets `-EINVAL`.
    MissingValue {
        /// Which parameter.
        param: Param,
    },
    /// The parameter's value is the empty string (`kho_scratch=`, `kho=`).
    EmptyValue {
        /// Which parameter.
        param: Param,
    },
    /// A `kho=` value that is not a boolean by kstrtobool's rules.
    InvalidBool {
        /// The value given.
        token: Token,
    },
    /// The number before `%` has more than 10 characters.
    ScaleTooLong {
        /// The whole `kho_scratch=` value.
        token: Token,
    },
    /// The text before `%` is not a base-10 unsigned number.
    ScaleInvalid {
        /// The text before `%`.
        token: Token,
    },
    /// The number before `%` does not fit an unsigned 32-bit integer.
    ScaleOutOfRange {
        /// The text before `%`.
        token: Token,
    },
    /// The explicit form needs a `,` before size number `field` (1 or 2).
    MissingComma {
        /// Index of the size that should follow the comma (1 = global, 2 = per-node).
        field: u8,
        /// The input from where the comma was expected.
        token: Token,
    },
    /// Size number `field` (0 = lowmem, 1 = global, 2 = per-node) is empty.
    EmptyNumber {
        /// Index of the empty size.
        field: u8,
        /// The input from where the number was expected (empty at the end).
        token: Token,
    },
    /// A size does not fit in 64 bits (Linux would silently wrap it).
    SizeOverflow {
        /// The number with its suffix.
        token: Token,
    },
    /// All three explicit sizes are zero.
    AllZero {
        /// The whole `kho_scratch=` value.
        token: Token,
    },
    /// Characters follow the third size.
    TrailingCharacters {
        /// The unparsed rest of the value.
        token: Token,
    },

    // ---- sizing -------------------------------------------------------
    /// A size computed from the boot usage and the scale, or rounded up to
    /// [`AREA_ALIGN`](kho_abi::scratch::AREA_ALIGN), does not fit in 64 bits.
    ScaledSizeOverflow {
        /// The area whose size overflowed.
        area: AreaKind,
    },
    /// More distinct NUMA nodes than [`MAX_NUMA_NODES`](crate::MAX_NUMA_NODES).
    TooManyNodes {
        /// The capacity.
        max: usize,
    },

    // ---- memory map and placement ----------------------------------------
    /// Two usable entries of the memory map overlap.
    MemoryMapOverlap {
        /// The first entry.
        first: PhysRange,
        /// The second entry.
        second: PhysRange,
    },
    /// No aligned, contiguous, free range of usable RAM is big enough.
    DoesNotFit {
        /// The area being placed.
        area: AreaKind,
        /// Its size in bytes.
        size: u64,
        /// The window that was searched (for a node: the span of its RAM).
        searched: PhysRange,
    },
    /// More areas than [`MAX_AREAS`](crate::MAX_AREAS).
    TooManyAreas {
        /// The capacity.
        max: usize,
    },
    /// More usable memory-map entries than
    /// [`MAX_MEMMAP_ENTRIES`](crate::MAX_MEMMAP_ENTRIES) (allocator RAM list).
    TooManyMemoryRegions {
        /// The capacity.
        max: usize,
    },

    // ---- descriptor array -------------------------------------------------
    /// The array's byte length is zero or not a multiple of 16.
    ArrayLength {
        /// The byte length given.
        byte_len: u64,
    },
    /// The array has more entries than [`MAX_AREAS`](crate::MAX_AREAS).
    TooManyEntries {
        /// Entries in the array.
        count: u64,
        /// The capacity.
        max: usize,
    },
    /// The array itself is not (entirely) RAM.
    ArrayNotRam {
        /// Where the array starts.
        addr: PhysAddr,
        /// Its byte length.
        len: u64,
    },
    /// Entry `index` has size zero.
    EntryEmpty {
        /// Index in the array.
        index: usize,
    },
    /// Entry `index` runs past the end of the 64-bit address space.
    EntryWraps {
        /// Index in the array.
        index: usize,
        /// Its start address.
        addr: PhysAddr,
        /// Its size.
        size: u64,
    },
    /// Entry `index` has a start or size that is not page-aligned.
    EntryMisaligned {
        /// Index in the array.
        index: usize,
        /// Its start address.
        addr: PhysAddr,
        /// Its size.
        size: u64,
    },
    /// Entry `index` is not (entirely) RAM.
    EntryNotRam {
        /// Index in the array.
        index: usize,
        /// The area.
        range: PhysRange,
    },
    /// Entries `first` and `second` overlap.
    EntriesOverlap {
        /// Index of the earlier entry.
        first: usize,
        /// Index of the later entry.
        second: usize,
    },
    /// Physical-memory access failed.
    Mem(kho_mem::Error),

    // ---- early allocator ------------------------------------------------
    /// An allocation of zero bytes.
    ZeroSize,
    /// An alignment that is not a power of two.
    BadAlignment {
        /// The alignment given.
        align: u64,
    },
    /// No free range fits the request.
    OutOfMemory {
        /// Bytes requested.
        size: u64,
        /// Alignment requested.
        align: u64,
        /// Whether only scratch was searched.
        scratch_only: bool,
    },
    /// The allocator's reservation list is full (it merges adjacent and
    /// overlapping ranges, so this takes that many disjoint reservations).
    ReservedFull {
        /// The capacity.
        capacity: usize,
    },

    // ---- preserved-set check ----------------------------------------------
    /// A preserved block intersects scratch area `index`.
    PreservedInScratch {
        /// The preserved block.
        block: PhysRange,
        /// The scratch area it intersects.
        area: PhysRange,
        /// The area's index.
        index: usize,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl From<kho_mem::Error> for Error {
    fn from(e: kho_mem::Error) -> Error {
        Error::Mem(e)
    }
}

const FIELDS: [&str; 3] = ["lowmem", "global", "per-node"];

fn field_name(field: u8) -> &'static str {
    FIELDS.get(usize::from(field)).copied().unwrap_or("size")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::MissingValue { param } => write!(f, "{param}: missing value"),
            Error::EmptyValue { param } => write!(f, "{param}: empty value"),
            Error::InvalidBool { token } => {
                write!(f, "kho: {token} is not a boolean (on/off, y/n, 1/0, ...)")
            }
            Error::ScaleTooLong { token } => {
                write!(f, "kho_scratch: scale {token} is longer than 10 digits")
            }
            Error::ScaleInvalid { token } => {
                write!(f, "kho_scratch: scale {token} is not a decimal number")
            }
            Error::ScaleOutOfRange { token } => {
                write!(f, "kho_scratch: scale {token} does not fit 32 bits")
            }
            Error::MissingComma { field, token } => write!(
                f,
                "kho_scratch: expected ',' before the {} size at {token}",
                field_name(field)
            ),
            Error::EmptyNumber { field, token } => write!(
                f,
                "kho_scratch: the {} size is empty at {token}",
                field_name(field)
            ),
            Error::SizeOverflow { token } => {
                write!(f, "kho_scratch: size {token} does not fit 64 bits")
            }
            Error::AllZero { token } => write!(f, "kho_scratch: all sizes are zero in {token}"),
            Error::TrailingCharacters { token } => {
                write!(f, "kho_scratch: unexpected trailing characters {token}")
            }
            Error::ScaledSizeOverflow { area } => {
                write!(f, "the {area} scratch size overflows 64 bits")
            }
            Error::TooManyNodes { max } => write!(f, "more than {max} NUMA nodes"),
            Error::MemoryMapOverlap { first, second } => {
                write!(f, "memory map entries {first} and {second} overlap")
            }
            Error::DoesNotFit {
                area,
                size,
                searched,
            } => write!(
                f,
                "{area} scratch area of {size:#x} bytes does not fit in free RAM within {searched}"
            ),
            Error::TooManyAreas { max } => write!(f, "more than {max} scratch areas"),
            Error::TooManyMemoryRegions { max } => {
                write!(f, "more than {max} usable memory-map entries")
            }
            Error::ArrayLength { byte_len } => write!(
                f,
                "scratch array length {byte_len:#x} is zero or not a multiple of 16"
            ),
            Error::TooManyEntries { count, max } => {
                write!(
                    f,
                    "scratch array has {count} entries, at most {max} allowed"
                )
            }
            Error::ArrayNotRam { addr, len } => {
                write!(f, "scratch array [{addr}, +{len:#x}) is not RAM")
            }
            Error::EntryEmpty { index } => write!(f, "scratch entry {index} is empty"),
            Error::EntryWraps { index, addr, size } => write!(
                f,
                "scratch entry {index} ({addr} + {size:#x}) wraps the address space"
            ),
            Error::EntryMisaligned { index, addr, size } => write!(
                f,
                "scratch entry {index} ({addr} + {size:#x}) is not page-aligned"
            ),
            Error::EntryNotRam { index, range } => {
                write!(f, "scratch entry {index} {range} is not RAM")
            }
            Error::EntriesOverlap { first, second } => {
                write!(f, "scratch entries {first} and {second} overlap")
            }
            Error::Mem(e) => write!(f, "physical memory access failed: {e}"),
            Error::ZeroSize => f.write_str("zero-byte allocation"),
            Error::BadAlignment { align } => {
                write!(f, "alignment {align:#x} is not a power of two")
            }
            Error::OutOfMemory {
                size,
                align,
                scratch_only,
            } => write!(
                f,
                "no free {} memory for {size:#x} bytes aligned to {align:#x}",
                if scratch_only { "scratch" } else { "early" }
            ),
            Error::ReservedFull { capacity } => {
                write!(f, "reservation list full ({capacity} disjoint ranges)")
            }
            Error::PreservedInScratch { block, area, index } => write!(
                f,
                "preserved block {block} intersects scratch area {index} {area}"
            ),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Mem(e) => Some(e),
            _ => None,
        }
    }
}
