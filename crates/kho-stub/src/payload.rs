//! The stub's payload: the next kernel, its initramfs and command line, carried as the initrd.
//!
//! Format "kho-stub payload v1" (all little-endian), written by the xtask
//! and documented in docs/HANDOVER.md:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `b"KHOPAYLD"` |
//! | 8 | u32 version = 1 |
//! | 12 | u32 entry count |
//! | 16 | `count` entries of 24 bytes: u32 kind, u32 reserved (0), u64 offset from the payload's start, u64 size |
//!
//! Kinds: [`KIND_KERNEL`] (an x86_64 bzImage or arm64 Image, required),
//! [`KIND_INITRAMFS`] (a cpio archive, optional) and [`KIND_CMDLINE`] (the
//! Linux command line as text, no NUL needed). Each kind appears at most
//! once. The payload arrives from another kernel (or the harness), so
//! [`Payload::parse`] checks every bound and reports a named error.

use core::fmt;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic at offset 0.
pub const MAGIC: [u8; 8] = *b"KHOPAYLD";
/// The only version this stub reads.
pub const VERSION: u32 = 1;
/// Entry kind: the Linux kernel image.
pub const KIND_KERNEL: u32 = 1;
/// Entry kind: the initramfs.
pub const KIND_INITRAMFS: u32 = 2;
/// Entry kind: the Linux command line.
pub const KIND_CMDLINE: u32 = 3;
/// Most entries a payload may list (one per kind, with room to spare).
pub const MAX_ENTRIES: u32 = 16;
/// Longest command line accepted (x86's `COMMAND_LINE_SIZE` is 2048; the
/// kernel's own `cmdline_size` is checked where it is known).
pub const MAX_CMDLINE: usize = 4096;

/// The payload header.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32,
    /// Number of [`Entry`]s after the header.
    pub count: U32,
}

/// One payload entry.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Entry {
    /// `KIND_*`.
    pub kind: U32,
    /// Reserved, 0.
    pub reserved: U32,
    /// Offset of the data from the payload's start.
    pub offset: U64,
    /// Size of the data in bytes.
    pub size: U64,
}

const _: () = {
    assert!(size_of::<Header>() == 16);
    assert!(size_of::<Entry>() == 24);
};

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// Shorter than the 16-byte header.
    TruncatedHeader {
        /// The payload's length.
        len: usize,
    },
    /// The magic is not `KHOPAYLD`.
    BadMagic,
    /// A version other than 1.
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// No entries, or more than [`MAX_ENTRIES`].
    BadCount {
        /// The count found.
        count: u32,
    },
    /// The entry table runs past the payload's end.
    TruncatedEntries {
        /// The count found.
        count: u32,
        /// The payload's length.
        len: usize,
    },
    /// An entry's reserved field is not 0.
    ReservedNotZero {
        /// Entry index.
        index: usize,
    },
    /// An entry of an unknown kind.
    UnknownKind {
        /// Entry index.
        index: usize,
        /// The kind found.
        kind: u32,
    },
    /// A kind listed twice.
    DuplicateKind {
        /// Entry index of the second one.
        index: usize,
        /// The kind.
        kind: u32,
    },
    /// `offset + size` overflows.
    Overflow {
        /// Entry index.
        index: usize,
    },
    /// An entry's data lies (partly) outside the payload or inside its
    /// header and entry table.
    OutOfBounds {
        /// Entry index.
        index: usize,
        /// The entry's offset.
        offset: u64,
        /// The entry's size.
        size: u64,
        /// The payload's length.
        len: usize,
    },
    /// No kernel entry, or an empty one.
    NoKernel,
    /// The command line is longer than [`MAX_CMDLINE`], contains a NUL
    /// before its end, or is not UTF-8.
    BadCmdline,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PayloadError::TruncatedHeader { len } => {
                write!(
                    f,
                    "payload of {len} bytes is shorter than its 16-byte header"
                )
            }
            PayloadError::BadMagic => f.write_str("payload magic is not KHOPAYLD"),
            PayloadError::UnsupportedVersion { version } => {
                write!(f, "payload version {version} is not 1")
            }
            PayloadError::BadCount { count } => write!(
                f,
                "payload lists {count} entries, expected 1 to {MAX_ENTRIES}"
            ),
            PayloadError::TruncatedEntries { count, len } => write!(
                f,
                "payload entry table of {count} entries runs past its end ({len} bytes)"
            ),
            PayloadError::ReservedNotZero { index } => {
                write!(f, "payload entry {index} has a non-zero reserved field")
            }
            PayloadError::UnknownKind { index, kind } => {
                write!(f, "payload entry {index} has unknown kind {kind}")
            }
            PayloadError::DuplicateKind { index, kind } => {
                write!(f, "payload entry {index} repeats kind {kind}")
            }
            PayloadError::Overflow { index } => {
                write!(f, "payload entry {index}: offset + size overflows")
            }
            PayloadError::OutOfBounds {
                index,
                offset,
                size,
                len,
            } => write!(
                f,
                "payload entry {index} [{offset:#x}, +{size:#x}) is outside the data of a {len:#x}-byte payload"
            ),
            PayloadError::NoKernel => f.write_str("payload has no (or an empty) kernel entry"),
            PayloadError::BadCmdline => {
                f.write_str("payload command line is too long, has an inner NUL or is not UTF-8")
            }
        }
    }
}

impl core::error::Error for PayloadError {}

/// Bytes of the header and a full entry table: what [`Layout::parse`]
/// needs at most.
pub const MAX_HEAD: usize = size_of::<Header>() + MAX_ENTRIES as usize * size_of::<Entry>();

/// Where one entry's data is, relative to the payload's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset from the payload's start.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
}

/// A validated payload's layout: where each part is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The kernel image (never empty).
    pub kernel: Span,
    /// The initramfs, if any (never empty).
    pub initramfs: Option<Span>,
    /// The command line, if any.
    pub cmdline: Option<Span>,
}

impl Layout {
    /// Validate the header and entry table of a payload of `len` bytes.
    /// `head` is its start: at least [`MAX_HEAD`] bytes, or all of it when
    /// shorter. Every entry must lie inside the payload, after the table.
    pub fn parse(head: &[u8], len: u64) -> Result<Layout, PayloadError> {
        let too_short = |len: u64| PayloadError::TruncatedHeader {
            len: usize::try_from(len).unwrap_or(usize::MAX),
        };
        if len < size_of::<Header>() as u64 {
            return Err(too_short(len));
        }
        let (header, rest) = Header::ref_from_prefix(head).map_err(|_| too_short(len))?;
        if header.magic != MAGIC {
            return Err(PayloadError::BadMagic);
        }
        if header.version.get() != VERSION {
            return Err(PayloadError::UnsupportedVersion {
                version: header.version.get(),
            });
        }
        let count = header.count.get();
        if count == 0 || count > MAX_ENTRIES {
            return Err(PayloadError::BadCount { count });
        }
        let table_end = (size_of::<Header>() + count as usize * size_of::<Entry>()) as u64;
        let truncated = PayloadError::TruncatedEntries {
            count,
            len: usize::try_from(len).unwrap_or(usize::MAX),
        };
        if len < table_end {
            return Err(truncated);
        }
        let (entries, _) =
            <[Entry]>::ref_from_prefix_with_elems(rest, count as usize).map_err(|_| truncated)?;
        let mut found: [Option<Span>; 3] = [None; 3];
        for (index, e) in entries.iter().enumerate() {
            if e.reserved.get() != 0 {
                return Err(PayloadError::ReservedNotZero { index });
            }
            let kind = e.kind.get();
            let slot = match kind {
                KIND_KERNEL | KIND_INITRAMFS | KIND_CMDLINE => (kind - 1) as usize,
                _ => return Err(PayloadError::UnknownKind { index, kind }),
            };
            if found[slot].is_some() {
                return Err(PayloadError::DuplicateKind { index, kind });
            }
            let (offset, size) = (e.offset.get(), e.size.get());
            let end = offset
                .checked_add(size)
                .ok_or(PayloadError::Overflow { index })?;
            // Data may not overlap the header and entry table.
            if offset < table_end || end > len {
                return Err(PayloadError::OutOfBounds {
                    index,
                    offset,
                    size,
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                });
            }
            found[slot] = Some(Span { offset, size });
        }
        let kernel = found[0]
            .filter(|k| k.size > 0)
            .ok_or(PayloadError::NoKernel)?;
        let cmdline = found[2];
        if cmdline.is_some_and(|c| c.size > MAX_CMDLINE as u64) {
            return Err(PayloadError::BadCmdline);
        }
        Ok(Layout {
            kernel,
            initramfs: found[1].filter(|i| i.size > 0),
            cmdline,
        })
    }
}

/// The command line entry's bytes as text: trailing NULs dropped, no other
/// NUL, UTF-8, at most [`MAX_CMDLINE`] bytes.
pub fn cmdline_text(bytes: &[u8]) -> Result<&str, PayloadError> {
    let text = match bytes.iter().rposition(|&b| b != 0) {
        Some(last) => &bytes[..=last],
        None => &[],
    };
    if text.len() > MAX_CMDLINE || text.contains(&0) {
        return Err(PayloadError::BadCmdline);
    }
    core::str::from_utf8(text).map_err(|_| PayloadError::BadCmdline)
}

/// A validated payload: slices of the bytes it was parsed from (the stub
/// itself reads payloads in memory through [`Layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(target_os = "none", allow(dead_code))]
pub struct Payload<'a> {
    /// The kernel image.
    pub kernel: &'a [u8],
    /// The initramfs, if any (never empty).
    pub initramfs: Option<&'a [u8]>,
    /// The command line (trailing NULs dropped; empty without an entry).
    pub cmdline: &'a str,
}

#[cfg_attr(target_os = "none", allow(dead_code))]
impl<'a> Payload<'a> {
    /// Validate `bytes` (exactly the payload, e.g. the whole initrd).
    pub fn parse(bytes: &'a [u8]) -> Result<Payload<'a>, PayloadError> {
        let layout = Layout::parse(bytes, bytes.len() as u64)?;
        // Layout::parse checked every span against the length.
        let slice = |s: Span| {
            bytes
                .get(s.offset as usize..(s.offset + s.size) as usize)
                .unwrap_or_default()
        };
        Ok(Payload {
            kernel: slice(layout.kernel),
            initramfs: layout.initramfs.map(slice),
            cmdline: cmdline_text(layout.cmdline.map(slice).unwrap_or_default())?,
        })
    }
}

/// Build a payload (page-aligned data, as the xtask writes it): for tests.
#[cfg(test)]
pub fn build(kernel: &[u8], initramfs: Option<&[u8]>, cmdline: &str) -> alloc::vec::Vec<u8> {
    let mut parts: alloc::vec::Vec<(u32, &[u8])> = alloc::vec![(KIND_KERNEL, kernel)];
    if let Some(i) = initramfs {
        parts.push((KIND_INITRAMFS, i));
    }
    parts.push((KIND_CMDLINE, cmdline.as_bytes()));
    let header = Header {
        magic: MAGIC,
        version: U32::new(VERSION),
        count: U32::new(parts.len() as u32),
    };
    let mut out = header.as_bytes().to_vec();
    let mut offset = (16 + 24 * parts.len()).next_multiple_of(4096);
    for (kind, data) in &parts {
        let e = Entry {
            kind: U32::new(*kind),
            reserved: U32::new(0),
            offset: U64::new(offset as u64),
            size: U64::new(data.len() as u64),
        };
        out.extend_from_slice(e.as_bytes());
        offset = (offset + data.len()).next_multiple_of(4096);
    }
    for (_, data) in &parts {
        out.resize(out.len().next_multiple_of(4096), 0);
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn set_u32(p: &mut [u8], at: usize, v: u32) {
        p[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn set_u64(p: &mut [u8], at: usize, v: u64) {
        p[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn round_trip_with_and_without_initramfs() {
        let p = build(&[1; 5000], Some(&[2; 10]), "console=ttyS0 kho=on");
        let got = Payload::parse(&p).unwrap();
        assert_eq!(got.kernel, &[1; 5000][..]);
        assert_eq!(got.initramfs, Some(&[2; 10][..]));
        assert_eq!(got.cmdline, "console=ttyS0 kho=on");
        // The xtask's layout: entries at 16, data page-aligned.
        assert_eq!(&p[..8], b"KHOPAYLD");
        assert_eq!(&p[16..20], &1u32.to_le_bytes());
        assert_eq!(&p[24..32], &4096u64.to_le_bytes());
        let p = build(&[7; 3], None, "");
        let got = Payload::parse(&p).unwrap();
        assert_eq!(
            (got.kernel, got.initramfs, got.cmdline),
            (&[7u8; 3][..], None, "")
        );
    }

    #[test]
    fn the_layout_needs_only_the_head() {
        let p = build(&[1; 5000], Some(&[2; 10]), "console=ttyS0");
        let whole = Layout::parse(&p, p.len() as u64).unwrap();
        assert_eq!(Layout::parse(&p[..MAX_HEAD], p.len() as u64), Ok(whole));
        assert_eq!(
            whole,
            Layout {
                kernel: Span {
                    offset: 4096,
                    size: 5000
                },
                initramfs: Some(Span {
                    offset: 12288,
                    size: 10
                }),
                cmdline: Some(Span {
                    offset: 16384,
                    size: 13
                }),
            }
        );
        // A head cut inside the table of a longer payload is refused.
        assert!(matches!(
            Layout::parse(&p[..40], p.len() as u64),
            Err(PayloadError::TruncatedEntries { count: 3, .. })
        ));
        assert_eq!(cmdline_text(b"a b\0"), Ok("a b"));
        assert_eq!(cmdline_text(b""), Ok(""));
    }

    #[test]
    fn trailing_nuls_of_the_command_line_are_dropped() {
        let p = build(&[1; 8], None, "a=b\0\0");
        assert_eq!(Payload::parse(&p).unwrap().cmdline, "a=b");
        let p = build(&[1; 8], None, "a\0b");
        assert_eq!(Payload::parse(&p), Err(PayloadError::BadCmdline));
        let long = "x".repeat(MAX_CMDLINE + 1);
        assert_eq!(
            Payload::parse(&build(&[1; 8], None, &long)),
            Err(PayloadError::BadCmdline)
        );
        let mut p = build(&[1; 8], None, "ab");
        let at = p.len() - 2;
        p[at] = 0xff;
        assert_eq!(Payload::parse(&p), Err(PayloadError::BadCmdline));
    }

    #[test]
    fn header_errors() {
        let good = build(&[1; 64], None, "x");
        assert_eq!(
            Payload::parse(&good[..15]),
            Err(PayloadError::TruncatedHeader { len: 15 })
        );
        let mut p = good.clone();
        p[0] = b'X';
        assert_eq!(Payload::parse(&p), Err(PayloadError::BadMagic));
        let mut p = good.clone();
        set_u32(&mut p, 8, 2);
        assert_eq!(
            Payload::parse(&p),
            Err(PayloadError::UnsupportedVersion { version: 2 })
        );
        for count in [0, MAX_ENTRIES + 1, u32::MAX] {
            let mut p = good.clone();
            set_u32(&mut p, 12, count);
            assert_eq!(Payload::parse(&p), Err(PayloadError::BadCount { count }));
        }
        // Two entries claimed, but the payload ends inside the second.
        assert_eq!(
            Payload::parse(&good[..16 + 24 + 10]),
            Err(PayloadError::TruncatedEntries { count: 2, len: 50 })
        );
    }

    #[test]
    fn entry_errors() {
        let good = build(&[1; 64], Some(&[2; 4]), "x");
        let e = |i: usize| 16 + 24 * i;
        let mut p = good.clone();
        set_u32(&mut p, e(1) + 4, 1);
        assert_eq!(
            Payload::parse(&p),
            Err(PayloadError::ReservedNotZero { index: 1 })
        );
        let mut p = good.clone();
        set_u32(&mut p, e(2), 9);
        assert_eq!(
            Payload::parse(&p),
            Err(PayloadError::UnknownKind { index: 2, kind: 9 })
        );
        let mut p = good.clone();
        set_u32(&mut p, e(2), KIND_KERNEL);
        assert_eq!(
            Payload::parse(&p),
            Err(PayloadError::DuplicateKind { index: 2, kind: 1 })
        );
        let mut p = good.clone();
        set_u64(&mut p, e(0) + 8, u64::MAX - 8);
        assert_eq!(Payload::parse(&p), Err(PayloadError::Overflow { index: 0 }));
        // Past the end, by one byte.
        let mut p = good.clone();
        let len = p.len() as u64;
        set_u64(&mut p, e(0) + 8, len - 63);
        assert!(matches!(
            Payload::parse(&p),
            Err(PayloadError::OutOfBounds { index: 0, .. })
        ));
        // Exactly to the end is fine.
        set_u64(&mut p, e(0) + 8, len - 64);
        assert!(Payload::parse(&p).is_ok());
        // Inside the header or entry table.
        let mut p = good.clone();
        set_u64(&mut p, e(1) + 8, 16 + 24 * 3 - 1);
        assert!(matches!(
            Payload::parse(&p),
            Err(PayloadError::OutOfBounds { index: 1, .. })
        ));
        // A huge size that does not overflow but is out of bounds.
        let mut p = good.clone();
        set_u64(&mut p, e(0) + 16, u64::MAX / 2);
        assert!(matches!(
            Payload::parse(&p),
            Err(PayloadError::OutOfBounds { index: 0, .. })
        ));
    }

    #[test]
    fn the_kernel_is_required_and_not_empty() {
        let mut p = build(&[1; 64], None, "x");
        set_u64(&mut p, 16 + 16, 0);
        assert_eq!(Payload::parse(&p), Err(PayloadError::NoKernel));
        // Only a command line.
        let mut only = Vec::from(
            Header {
                magic: MAGIC,
                version: U32::new(1),
                count: U32::new(1),
            }
            .as_bytes(),
        );
        only.extend_from_slice(
            Entry {
                kind: U32::new(KIND_CMDLINE),
                reserved: U32::new(0),
                offset: U64::new(40),
                size: U64::new(1),
            }
            .as_bytes(),
        );
        only.push(b'x');
        assert_eq!(Payload::parse(&only), Err(PayloadError::NoKernel));
        // An empty initramfs entry is the same as none.
        let p = build(&[1; 64], Some(&[]), "x");
        assert_eq!(Payload::parse(&p).unwrap().initramfs, None);
    }
}
