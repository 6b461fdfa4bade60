//! The engine's error type.

use core::fmt;

use kho_mem::PhysAddr;

/// Why a handover could not be built or accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Physical memory access failed.
    Mem(kho_mem::Error),
    /// The zero page lacks the boot-flag / "HdrS" magic.
    BadBootParams {
        /// Where the zero page was read.
        at: PhysAddr,
    },
    /// More memory map entries than the format holds.
    TooManyMemoryEntries {
        /// Entries given or found.
        count: usize,
        /// The format's capacity.
        max: usize,
    },
    /// An e820 entry whose range wraps the address space.
    BadMemoryEntry {
        /// Index in the table.
        index: usize,
    },
    /// The `setup_data` chain or its KHO entry is malformed.
    BadSetupData {
        /// The entry at fault.
        at: PhysAddr,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Mem(e) => write!(f, "memory access: {e}"),
            Error::BadBootParams { at } => write!(f, "no boot_params magic at {at}"),
            Error::TooManyMemoryEntries { count, max } => {
                write!(f, "{count} memory map entries, the format holds {max}")
            }
            Error::BadMemoryEntry { index } => {
                write!(f, "memory map entry {index} wraps the address space")
            }
            Error::BadSetupData { at, reason } => write!(f, "setup_data at {at}: {reason}"),
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

impl From<kho_mem::Error> for Error {
    fn from(e: kho_mem::Error) -> Self {
        Error::Mem(e)
    }
}
