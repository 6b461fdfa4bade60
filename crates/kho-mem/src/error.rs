//! The error type of physical-memory access and address construction.

use core::fmt;

/// Why an address could not be built or memory could not be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `addr` is not aligned to `align` bytes.
    Misaligned {
        /// The offending address.
        addr: u64,
        /// The alignment required.
        align: u64,
    },
    /// An order above the largest the KHO key encoding allows.
    OrderTooLarge {
        /// The order given.
        order: u32,
        /// The largest order allowed.
        max: u32,
    },
    /// A page frame number whose address does not fit in 64 bits.
    PfnTooLarge {
        /// The frame number given.
        pfn: u64,
    },
    /// `addr + len` wraps around the 64-bit address space.
    Overflow {
        /// Start of the range.
        addr: u64,
        /// Length of the range.
        len: u64,
    },
    /// An access or range touches memory that is not RAM.
    NotRam {
        /// Start of the access.
        addr: u64,
        /// Length of the access.
        len: u64,
    },
    /// No free naturally aligned block of `2^order` pages.
    OutOfMemory {
        /// The order requested.
        order: u32,
    },
    /// A free of memory that is not an allocated block of that order.
    NotAllocated {
        /// The address given.
        addr: u64,
        /// The order given.
        order: u32,
    },
    /// A memory map whose ranges overlap.
    Overlap {
        /// Start of the first range.
        first: u64,
        /// Start of the second range.
        second: u64,
    },
    /// A zero-length range where one with content is required.
    Empty {
        /// Start of the range.
        addr: u64,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Misaligned { addr, align } => {
                write!(f, "address {addr:#x} is not aligned to {align:#x}")
            }
            Error::OrderTooLarge { order, max } => {
                write!(f, "order {order} exceeds the maximum order {max}")
            }
            Error::PfnTooLarge { pfn } => write!(f, "pfn {pfn:#x} does not fit a 64-bit address"),
            Error::Overflow { addr, len } => {
                write!(f, "range {addr:#x} + {len:#x} overflows the address space")
            }
            Error::NotRam { addr, len } => {
                write!(f, "range [{addr:#x}, +{len:#x}) is not RAM")
            }
            Error::OutOfMemory { order } => write!(f, "out of memory for an order-{order} block"),
            Error::NotAllocated { addr, order } => {
                write!(f, "{addr:#x} is not an allocated order-{order} block")
            }
            Error::Overlap { first, second } => {
                write!(f, "ranges at {first:#x} and {second:#x} overlap")
            }
            Error::Empty { addr } => write!(f, "empty range at {addr:#x}"),
        }
    }
}

impl core::error::Error for Error {}
