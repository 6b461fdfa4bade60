//! Why an image cannot be read at all: the crate's one error type.
//!
//! Everything wrong *inside* a readable image is not an error but a
//! [`Problem`](crate::report::Problem) in the report: the decoder goes on
//! wherever it can. These are the cases where there is nothing to decode.

use alloc::string::String;
use core::fmt;

/// The image is unusable: not an ELF core, a truncated one, a raw image
/// that does not fit the address space, or storage that fails.
///
/// The messages name the part of the file at fault but not the file: a
/// caller prefixes its name (`"{file}: {error}"`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A raw image of zero bytes.
    Empty,
    /// A raw image whose last byte would lie past the 64-bit address space.
    RawPastEnd {
        /// Physical address of byte 0.
        base: u64,
        /// Bytes in the image.
        len: u64,
    },
    /// No ELF magic (`\x7fELF`) at offset 0: a raw file needs its base.
    NotElf,
    /// The ELF file header is refused (not 64-bit, bad identification,
    /// truncated): the ELF reader's reason.
    ElfHeader {
        /// The ELF reader's reason.
        reason: String,
    },
    /// The ELF header's byte order is unknown: the ELF reader's reason.
    ElfByteOrder {
        /// The ELF reader's reason.
        reason: String,
    },
    /// The program header table is refused (entry size, offset, count).
    ProgramHeaders {
        /// Why.
        reason: String,
    },
    /// A `PT_LOAD` segment has more file bytes than memory bytes.
    FileSizeAboveMemSize {
        /// Index of the program header.
        index: usize,
        /// Its `p_paddr`.
        paddr: u64,
    },
    /// A `PT_LOAD` segment's memory runs past the 64-bit address space.
    SegmentPastEnd {
        /// Index of the program header.
        index: usize,
        /// Its `p_paddr`.
        paddr: u64,
    },
    /// A `PT_LOAD` segment's file bytes run past the end of the file (a
    /// truncated dump).
    SegmentPastFile {
        /// Index of the program header.
        index: usize,
        /// Its `p_paddr`.
        paddr: u64,
        /// Its `p_filesz`.
        filesz: u64,
        /// Its `p_offset`.
        offset: u64,
        /// The file's length.
        file_len: u64,
    },
    /// No `PT_LOAD` segment with memory: no guest memory at all.
    NoLoadSegment,
    /// Two `PT_LOAD` segments cover the same physical memory.
    SegmentsOverlap {
        /// The lower segment's `p_paddr`.
        first: u64,
        /// The higher one's.
        second: u64,
    },
    /// The storage failed to give bytes it holds (`ReadAt::read_at`).
    Read {
        /// File offset of the read.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = |f: &mut fmt::Formatter<'_>, index: &usize, paddr: &u64| {
            write!(
                f,
                "ELF program header {index} (PT_LOAD at physical {paddr:#x}): "
            )
        };
        match self {
            Error::Empty => f.write_str("the image is empty"),
            Error::RawPastEnd { base, len } => write!(
                f,
                "the image ({len:#x} bytes) at base {base:#x} runs past the end of the address space"
            ),
            Error::NotElf => f.write_str(
                "not an ELF core (QEMU dump-guest-memory); a raw image needs its base address",
            ),
            Error::ElfHeader { reason } => write!(
                f,
                "not a 64-bit ELF file QEMU's dump-guest-memory writes: {reason}"
            ),
            Error::ElfByteOrder { reason } => write!(f, "bad ELF byte order: {reason}"),
            Error::ProgramHeaders { reason } => write!(f, "bad ELF program headers: {reason}"),
            Error::FileSizeAboveMemSize { index, paddr } => {
                header(f, index, paddr)?;
                f.write_str("p_filesz is larger than p_memsz")
            }
            Error::SegmentPastEnd { index, paddr } => {
                header(f, index, paddr)?;
                f.write_str("runs past the end of the address space")
            }
            Error::SegmentPastFile {
                index,
                paddr,
                filesz,
                offset,
                file_len,
            } => {
                header(f, index, paddr)?;
                write!(
                    f,
                    "its {filesz:#x} file bytes at offset {offset:#x} run past the end of the \
                     {file_len:#x}-byte file (a truncated dump?)"
                )
            }
            Error::NoLoadSegment => {
                f.write_str("the ELF file has no PT_LOAD segment, so no guest memory")
            }
            Error::SegmentsOverlap { first, second } => write!(
                f,
                "PT_LOAD segments at physical {first:#x} and {second:#x} overlap"
            ),
            Error::Read { offset, len } => {
                write!(f, "cannot read {len:#x} bytes at file offset {offset:#x}")
            }
        }
    }
}

impl core::error::Error for Error {}
