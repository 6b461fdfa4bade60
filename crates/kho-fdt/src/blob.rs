//! Container validation of any FDT: header, blocks and one bounds-checked,
//! allocation-free token walk of the structure block, public as
//! [`FdtBlob::walk`].
//!
//! The walk reports each node and property as an [`Event`] with its
//! absolute byte offset, so readers of other FDT shapes (kho-ranges' 2024
//! `mem` properties in any node) share it instead of walking tokens
//! themselves. [`crate::KhoFdt::parse`] reads everything it needs during
//! that one walk.
//!
//! Everything the `fdt` 0.1.5 lookups would otherwise `unwrap`, `expect` or
//! index out of bounds on is checked here first, so that [`ValidFdt::fdt`]
//! (used by the renderer and [`crate::dtb`]) only ever sees blobs on which
//! its `find_node`, `children` and `properties` cannot panic: blocks inside
//! `totalsize`, every token inside the structure block, names
//! NUL-terminated printable ASCII, property values inside the structure
//! block, name offsets inside the strings block, properties before
//! children, no `FDT_NOP` (see [`without_nops`]), one root with an empty
//! name, `FDT_END` present.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC, FDT_VERSION};
use zerocopy::big_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{Block, Error, Malformed, Result};

/// Deepest node nesting accepted, counting the root as depth 1 (as libfdt's
/// `FDT_MAX_DEPTH` and vm-fdt's writer do).
pub const MAX_DEPTH: usize = 64;

pub(crate) const FDT_BEGIN_NODE: u32 = 1;
pub(crate) const FDT_END_NODE: u32 = 2;
pub(crate) const FDT_PROP: u32 = 3;
pub(crate) const FDT_NOP: u32 = 4;
pub(crate) const FDT_END: u32 = 9;

/// The on-disk header: ten big-endian `u32`s.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawHeader {
    magic: U32,
    totalsize: U32,
    off_dt_struct: U32,
    off_dt_strings: U32,
    off_mem_rsvmap: U32,
    version: U32,
    last_comp_version: U32,
    boot_cpuid_phys: U32,
    size_dt_strings: U32,
    size_dt_struct: U32,
}

const _: () = assert!(size_of::<RawHeader>() == FDT_HEADER_SIZE);

/// The decoded FDT header of a validated blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FdtHeader {
    /// Total size of the blob in bytes.
    pub totalsize: u32,
    /// Offset of the structure block.
    pub off_dt_struct: u32,
    /// Offset of the strings block.
    pub off_dt_strings: u32,
    /// Offset of the memory reservation map.
    pub off_mem_rsvmap: u32,
    /// Format version (17 for everything written today).
    pub version: u32,
    /// Oldest version this blob is compatible with (16 as written by libfdt,
    /// dtc and vm-fdt).
    pub last_comp_version: u32,
    /// Physical id of the boot CPU (unused by KHO, 0).
    pub boot_cpuid_phys: u32,
    /// Size of the strings block.
    pub size_dt_strings: u32,
    /// Size of the structure block.
    pub size_dt_struct: u32,
}

/// What [`FdtBlob::walk`] does with `FDT_NOP` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nops {
    /// Refuse them ([`Malformed::Nop`]), as [`crate::KhoFdt::parse`] and
    /// [`crate::dtb::Dtb::parse`] do.
    Refuse,
    /// Skip them without an event, as libfdt does.
    Skip,
}

/// One step of [`FdtBlob::walk`], in blob order.
///
/// Offsets are absolute byte offsets from the start of the blob, for error
/// messages; depths count the root as 1. Every name has passed the walk's
/// checks: printable ASCII without its NUL, a node name non-empty and
/// without `/` (the root's empty), a property name non-empty (so
/// `core::str::from_utf8` on any of them succeeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event<'a> {
    /// A node opens.
    Begin {
        /// Offset of its `FDT_BEGIN_NODE` token.
        offset: usize,
        /// Its name (with any `@unit-address`; empty for the root).
        name: &'a [u8],
        /// Its depth: 1 for the root, 2 for a child of the root.
        depth: usize,
    },
    /// A property of the innermost open node (properties come before that
    /// node's children).
    Prop {
        /// Offset of its value (the `FDT_PROP` token is 12 bytes before).
        offset: usize,
        /// Its name, from the strings block.
        name: &'a [u8],
        /// Its value, inside the structure block.
        value: &'a [u8],
        /// Depth of the node it belongs to.
        depth: usize,
    },
    /// The innermost open node closes.
    End {
        /// Offset of its `FDT_END_NODE` token.
        offset: usize,
        /// Depth of the node that closes (1: the root).
        depth: usize,
    },
}

/// An FDT whose header and blocks passed the container checks, ready to be
/// walked: magic, version 17 (`last_comp_version` at most 17), `totalsize`
/// within the slice and the caller's limit, every block inside
/// `totalsize` and aligned, the memory reservation map terminated.
///
/// The structure block is checked as [`FdtBlob::walk`] goes. Nothing is
/// allocated, and nothing is copied: the walk's names and values borrow
/// the blob.
///
/// ```
/// use core::ops::ControlFlow;
/// use kho_fdt::{Event, FdtBlob, Nops};
///
/// # let mut b = kho_fdt::KhoFdtBuilder::new(
/// #     kho_abi::AbiVersion::V3, kho_mem::PhysAddr::new(0x4123_4000));
/// # b.add_subtree("memblock", kho_mem::PhysAddr::new(0x4124_5000), Some(4096))?;
/// # let blob = b.build()?;
/// let fdt = FdtBlob::new(&blob, 4096)?;
/// let mut nodes = Vec::new();
/// let flow = fdt.walk(Nops::Refuse, |e| {
///     if let Event::Begin { name, depth, .. } = e {
///         nodes.push((name, depth));
///     }
///     ControlFlow::<()>::Continue(())
/// })?;
/// assert!(flow.is_continue());
/// assert_eq!(nodes, [(&b""[..], 1), (&b"memblock"[..], 2)]);
/// # Ok::<(), kho_fdt::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FdtBlob<'a> {
    /// The blob cut to `totalsize`.
    bytes: &'a [u8],
    header: FdtHeader,
}

impl core::fmt::Debug for FdtBlob<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FdtBlob")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<'a> FdtBlob<'a> {
    /// Checks the header and blocks of `blob` (see [`FdtBlob`]); `max_size`
    /// bounds `totalsize` (`usize::MAX` for no limit beyond the slice).
    /// Never panics; the first failure is returned.
    pub fn new(blob: &'a [u8], max_size: usize) -> Result<FdtBlob<'a>> {
        let (bytes, header, _) = check_container(blob, max_size, false)?;
        Ok(FdtBlob { bytes, header })
    }

    /// The decoded header.
    pub fn header(&self) -> &FdtHeader {
        &self.header
    }

    /// The blob cut to its `totalsize`.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Walks the structure block once, calling `f` for every node opening,
    /// property and node closing, in blob order; stops early when `f`
    /// breaks, and returns what it broke with.
    ///
    /// Every token is checked before `f` sees it, and the first problem is
    /// [`Error::MalformedStructure`] with the token's offset: tokens and
    /// property values inside the structure block, node names
    /// NUL-terminated printable ASCII without `/` (the root's empty),
    /// property names inside the strings block and printable ASCII, no
    /// property after a child node, nesting at most [`MAX_DEPTH`], one
    /// root, balanced nodes, `FDT_END` present; `FDT_NOP` as `nops` says.
    /// A walk that runs to the end has checked the whole block; one that
    /// breaks has checked it up to the event it broke on, so a caller that
    /// needs the whole blob valid (as [`crate::KhoFdt::parse`] does) never
    /// breaks, and decides after the walk.
    ///
    /// Linear in the structure block (each step consumes at least 4 bytes),
    /// allocation-free, with constant stack.
    pub fn walk<B>(
        &self,
        nops: Nops,
        f: impl FnMut(Event<'a>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        let w = walker(self.bytes, &self.header, nops == Nops::Skip);
        w.walk(f).map(|(_, flow)| flow)
    }
}

/// A blob whose header and structure block passed [`validate`].
#[derive(Clone, Copy)]
pub(crate) struct ValidFdt<'a> {
    /// The blob cut to `totalsize`.
    pub(crate) bytes: &'a [u8],
    pub(crate) header: FdtHeader,
    pub(crate) fdt: fdt::Fdt<'a>,
}

impl core::fmt::Debug for ValidFdt<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ValidFdt")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<'a> ValidFdt<'a> {
    /// The lookup view of a blob whose structure [`FdtBlob::walk`] (with
    /// [`Nops::Refuse`]) has walked to the end without error.
    pub(crate) fn from_walked(blob: FdtBlob<'a>) -> Result<ValidFdt<'a>> {
        let FdtBlob { bytes, header } = blob;
        let fdt = fdt::Fdt::new(bytes).map_err(|e| match e {
            fdt::FdtError::BadMagic => Error::BadMagic { found: FDT_MAGIC },
            _ => Error::Truncated {
                len: bytes.len(),
                needed: FDT_HEADER_SIZE,
            },
        })?;
        Ok(ValidFdt { bytes, header, fdt })
    }

    /// The root node. Present in every validated blob.
    pub(crate) fn root(&self) -> Result<fdt::node::FdtNode<'_, 'a>> {
        self.fdt.find_node("/").ok_or(Error::MalformedStructure {
            offset: self.header.off_dt_struct as usize,
            reason: Malformed::NoRootNode(0),
        })
    }

    /// Entries of the memory reservation map (address, size), terminator
    /// excluded.
    pub(crate) fn mem_reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let start = self.header.off_mem_rsvmap as usize;
        self.bytes
            .get(start..)
            .unwrap_or_default()
            .chunks_exact(16)
            .map(|e| (be64(&e[..8]), be64(&e[8..])))
            .take_while(|&(a, s)| a != 0 || s != 0)
    }
}

fn be64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(w)
}

fn be32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let w = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// Checks the header and blocks of `blob` and walks its structure block.
///
/// `max_size` bounds `totalsize` (one page for a KHO root FDT).
pub(crate) fn validate(blob: &[u8], max_size: usize) -> Result<ValidFdt<'_>> {
    let checked = FdtBlob::new(blob, max_size)?;
    let _ = checked.walk(Nops::Refuse, |_| ControlFlow::<()>::Continue(()))?;
    ValidFdt::from_walked(checked)
}

/// What [`normalize`] changed in a blob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Normalized {
    /// `FDT_NOP` tokens removed from the structure block.
    pub nops: usize,
    /// The header version the blob had, if it was older than 17 (the
    /// header now says 17, with `size_dt_struct` filled in).
    pub from_version: Option<u32>,
}

impl Normalized {
    /// Whether the blob was changed at all.
    pub fn changed(&self) -> bool {
        self.nops > 0 || self.from_version.is_some()
    }
}

/// Rewrite, in place, a valid FDT that libfdt (and so Linux) accepts but
/// this crate's parsers ([`crate::KhoFdt::parse`], [`crate::dtb::Dtb::parse`])
/// refuse, into the form they accept:
///
/// - `FDT_NOP` tokens, which libfdt leaves where it deleted a property or a
///   node in place (`fdt_delprop`, `fdt_nop_node`; Linux's arm64
///   `kexec_file_load` does so in the DTB it hands on), are removed and the
///   structure block is compacted (its freed tail zeroed);
/// - a version 16 header, which has no `size_dt_struct` (libfdt bounds the
///   structure block by `totalsize` below version 17), gets the real size
///   and says version 17.
///
/// Everything else is checked as those parsers check it; on error `buf` is
/// unchanged. Blocks do not move, so offsets stay meaningful. Allocates at
/// most one structure block's copy (bounded by `max_size`).
pub fn normalize(buf: &mut [u8], max_size: usize) -> Result<Normalized> {
    let (header, nops, compact) = {
        let (bytes, header, _) = check_container(buf, max_size, true)?;
        let w = walker(bytes, &header, true);
        let (nops, _) = w.walk(|_| ControlFlow::<()>::Continue(()))?;
        if nops == 0 && header.version >= FDT_VERSION {
            return Ok(Normalized::default());
        }
        (header, nops, w.compact())
    };
    let s_start = header.off_dt_struct as usize;
    // The old block ended at FDT_END: the compacted tokens plus the NOPs.
    let old_end = s_start + compact.len() + 4 * nops;
    if let Some(block) = buf.get_mut(s_start..old_end) {
        let (kept, freed) = block.split_at_mut(compact.len());
        kept.copy_from_slice(&compact);
        freed.fill(0);
    }
    let set = |buf: &mut [u8], at: usize, v: u32| {
        if let Some(w) = buf.get_mut(at..at + 4) {
            w.copy_from_slice(&v.to_be_bytes());
        }
    };
    let from_version = (header.version < FDT_VERSION).then_some(header.version);
    if from_version.is_some() {
        set(buf, 0x14, FDT_VERSION);
        set(buf, 0x18, header.last_comp_version.min(16));
    }
    set(buf, 0x24, compact.len() as u32);
    Ok(Normalized { nops, from_version })
}

/// `blob` (cut to its `totalsize`) normalized by [`normalize`], or `None`
/// if it needed no change.
pub(crate) fn without_nops(blob: &[u8], max_size: usize) -> Result<Option<Vec<u8>>> {
    let (bytes, header, _) = check_container(blob, max_size, true)?;
    // Copy only what needs a change (a boot DTB can be 1 MiB).
    let (nops, _) = walker(bytes, &header, true).walk(|_| ControlFlow::<()>::Continue(()))?;
    if nops == 0 && header.version >= FDT_VERSION {
        return Ok(None);
    }
    let mut out = bytes.to_vec();
    normalize(&mut out, max_size)?;
    Ok(Some(out))
}

/// One property [`salvage`] met: the node it is in (`None`: the root; the
/// name of a child of the root otherwise), its name and its value.
pub(crate) struct SalvagedProp<'a> {
    pub(crate) node: Option<&'a [u8]>,
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// A tolerant walk of a DTB that [`validate`] refuses (for a defect in a
/// node the reader does not need): the header and blocks must still be
/// sound, then the structure block is walked token by token, every read
/// bounds-checked, and `f` sees each property of the root and of the
/// root's children (deeper nodes are skipped; names are not checked). The
/// walk stops at the first token it cannot make sense of, keeping what it
/// saw before. Linear in the structure block.
pub(crate) fn salvage<'a>(
    blob: &'a [u8],
    max_size: usize,
    mut f: impl FnMut(SalvagedProp<'a>),
) -> Result<()> {
    let (bytes, header, _) = check_container(blob, max_size, true)?;
    let w = walker(bytes, &header, true);
    let mut pos = 0usize;
    let mut depth = 0usize;
    let mut node: Option<&'a [u8]> = None;
    while let Ok(tok) = w.token(pos) {
        match tok {
            FDT_BEGIN_NODE => {
                let start = pos + 4;
                let rest = w.structure.get(start..).unwrap_or_default();
                let Some(nul) = rest.iter().position(|&b| b == 0) else {
                    break;
                };
                depth += 1;
                if depth == 2 {
                    node = rest.get(..nul);
                }
                pos = align4(start + nul + 1);
            }
            FDT_END_NODE => {
                let Some(d) = depth.checked_sub(1) else {
                    break;
                };
                depth = d;
                if depth < 2 {
                    node = None;
                }
                pos += 4;
            }
            FDT_PROP => {
                let (Ok(len), Ok(nameoff)) = (w.token(pos + 4), w.token(pos + 8)) else {
                    break;
                };
                let start = pos + 12;
                let Some(value) = start
                    .checked_add(len as usize)
                    .and_then(|end| w.structure.get(start..end))
                else {
                    break;
                };
                let name = w
                    .strings
                    .get(nameoff as usize..)
                    .and_then(|r| r.split(|&b| b == 0).next());
                if let Some(name) = name
                    && (1..=2).contains(&depth)
                {
                    f(SalvagedProp { node, name, value });
                }
                pos = align4(start + value.len());
            }
            FDT_NOP => pos += 4,
            _ => break,
        }
    }
    Ok(())
}

fn walker<'a>(bytes: &'a [u8], header: &FdtHeader, allow_nop: bool) -> Walker<'a> {
    let s_start = header.off_dt_struct as usize;
    let s_end = s_start + header.size_dt_struct as usize;
    let t_start = header.off_dt_strings as usize;
    let t_end = t_start + header.size_dt_strings as usize;
    Walker {
        bytes,
        structure: bytes.get(s_start..s_end).unwrap_or_default(),
        base: s_start,
        strings: bytes.get(t_start..t_end).unwrap_or_default(),
        allow_nop,
    }
}

/// Oldest header version [`normalize`] accepts: 16, the version libfdt
/// writers mark as `last_comp_version` and the oldest with a strings size.
const FDT_OLDEST_VERSION: u32 = 16;

/// The header and blocks of `blob`: (the blob cut to `totalsize`, the
/// header, the magic). With `v16`, a version 16 header is accepted and its
/// structure block taken to run to `totalsize`, as libfdt reads it.
fn check_container(blob: &[u8], max_size: usize, v16: bool) -> Result<(&[u8], FdtHeader, u32)> {
    // Magic first, so a short non-FDT blob says "bad magic" when it can.
    let magic = be32_at(blob, 0).ok_or(Error::Truncated {
        len: blob.len(),
        needed: 4,
    })?;
    if magic != FDT_MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let (raw, _) = RawHeader::ref_from_prefix(blob).map_err(|_| Error::Truncated {
        len: blob.len(),
        needed: FDT_HEADER_SIZE,
    })?;
    let mut header = FdtHeader {
        totalsize: raw.totalsize.get(),
        off_dt_struct: raw.off_dt_struct.get(),
        off_dt_strings: raw.off_dt_strings.get(),
        off_mem_rsvmap: raw.off_mem_rsvmap.get(),
        version: raw.version.get(),
        last_comp_version: raw.last_comp_version.get(),
        boot_cpuid_phys: raw.boot_cpuid_phys.get(),
        size_dt_strings: raw.size_dt_strings.get(),
        size_dt_struct: raw.size_dt_struct.get(),
    };
    let oldest = if v16 { FDT_OLDEST_VERSION } else { FDT_VERSION };
    if header.version < oldest || header.last_comp_version > FDT_VERSION {
        return Err(Error::UnsupportedHeaderVersion {
            version: header.version,
            last_comp_version: header.last_comp_version,
        });
    }
    if header.version < FDT_VERSION {
        header.size_dt_struct = header.totalsize.saturating_sub(header.off_dt_struct);
    }
    let totalsize = header.totalsize as usize;
    if totalsize > blob.len() {
        return Err(Error::ExceedsBlob {
            totalsize: header.totalsize,
            len: blob.len(),
        });
    }
    if totalsize > max_size {
        return Err(Error::TotalSizeTooLarge {
            totalsize: header.totalsize,
            max: max_size,
        });
    }
    if totalsize < FDT_HEADER_SIZE {
        return Err(Error::TotalSizeTooSmall {
            totalsize: header.totalsize,
        });
    }
    let bytes = blob.get(..totalsize).unwrap_or_default();

    check_block(Block::MemReserveMap, header.off_mem_rsvmap, 0, &header)?;
    if !header.off_mem_rsvmap.is_multiple_of(8) {
        return Err(Error::MisalignedBlock {
            block: Block::MemReserveMap,
            offset: header.off_mem_rsvmap,
            align: 8,
        });
    }
    check_block(
        Block::Structure,
        header.off_dt_struct,
        header.size_dt_struct,
        &header,
    )?;
    if !header.off_dt_struct.is_multiple_of(4) {
        return Err(Error::MisalignedBlock {
            block: Block::Structure,
            offset: header.off_dt_struct,
            align: 4,
        });
    }
    check_block(
        Block::Strings,
        header.off_dt_strings,
        header.size_dt_strings,
        &header,
    )?;
    check_rsvmap(bytes, header.off_mem_rsvmap as usize)?;
    Ok((bytes, header, magic))
}

/// `[offset, offset + size)` must lie inside `[header size, totalsize)`.
fn check_block(block: Block, offset: u32, size: u32, header: &FdtHeader) -> Result<()> {
    let end = u64::from(offset) + u64::from(size);
    if (offset as usize) < FDT_HEADER_SIZE || end > u64::from(header.totalsize) {
        return Err(Error::BlockOutOfBounds {
            block,
            offset,
            size,
            totalsize: header.totalsize,
        });
    }
    Ok(())
}

/// The reservation map must end with an all-zero entry inside the blob.
fn check_rsvmap(bytes: &[u8], offset: usize) -> Result<()> {
    let terminated = bytes
        .get(offset..)
        .unwrap_or_default()
        .chunks_exact(16)
        .any(|e| e.iter().all(|&b| b == 0));
    if terminated {
        Ok(())
    } else {
        Err(Error::UnterminatedMemReserveMap { offset })
    }
}

/// The structure-block walker. Every read is bounds-checked; the walk is
/// linear in the block size (each iteration consumes at least 4 bytes).
struct Walker<'a> {
    bytes: &'a [u8],
    structure: &'a [u8],
    /// Offset of `structure` in `bytes`, to report absolute offsets.
    base: usize,
    strings: &'a [u8],
    /// Skip `FDT_NOP` tokens instead of refusing them.
    allow_nop: bool,
}

impl<'a> Walker<'a> {
    fn err(&self, pos: usize, reason: Malformed) -> Error {
        Error::MalformedStructure {
            offset: self.base + pos,
            reason,
        }
    }

    fn token(&self, pos: usize) -> Result<u32> {
        be32_at(self.structure, pos).ok_or_else(|| self.err(pos, Malformed::TruncatedToken))
    }

    /// Walk the structure block, calling `f` per event (see
    /// [`FdtBlob::walk`]); the number of `FDT_NOP` tokens skipped, and
    /// whether `f` broke.
    ///
    /// Positions are relative to the structure block, which lies inside
    /// `bytes` (`check_container`), so `base + pos` and `pos + 12` for a
    /// `pos` inside the block cannot overflow; lengths read from the blob
    /// are added with `checked_add`.
    fn walk<B>(
        &self,
        mut f: impl FnMut(Event<'a>) -> ControlFlow<B>,
    ) -> Result<(usize, ControlFlow<B>)> {
        debug_assert!(self.bytes.len() >= self.base + self.structure.len());
        let mut nops = 0usize;
        let mut pos = 0usize;
        let mut depth = 0usize;
        let mut root_done = false;
        // Whether the previous token allows a property next: only right after
        // FDT_BEGIN_NODE or another property.
        let mut props_allowed = false;
        // Property names already checked, by name offset: a blob names few
        // distinct properties, each many times (KHO's root FDT: 4 names).
        let mut names_checked: [Option<(u32, &'a [u8])>; 4] = [None; 4];
        loop {
            let tok = self.token(pos)?;
            if tok == FDT_NOP && self.allow_nop {
                nops += 1;
                pos += 4;
                if pos >= self.structure.len() {
                    return Err(self.err(pos, Malformed::MissingEnd));
                }
                continue;
            }
            if root_done && tok != FDT_END {
                return Err(self.err(pos, Malformed::AfterRoot(tok)));
            }
            // Before the root opens (the first token but for skipped NOPs).
            if depth == 0 && !root_done && tok != FDT_BEGIN_NODE {
                return Err(self.err(pos, Malformed::NoRootNode(tok)));
            }
            let event = match tok {
                FDT_BEGIN_NODE => {
                    if depth >= MAX_DEPTH {
                        return Err(self.err(pos, Malformed::TooDeep));
                    }
                    let name_start = pos + 4;
                    let rest = self.structure.get(name_start..).unwrap_or_default();
                    let nul = rest
                        .iter()
                        .position(|&b| b == 0)
                        .ok_or_else(|| self.err(pos, Malformed::UnterminatedNodeName))?;
                    let name = rest.get(..nul).unwrap_or_default();
                    if depth == 0 {
                        if !name.is_empty() {
                            return Err(self.err(pos, Malformed::RootNameNotEmpty));
                        }
                    } else if !valid_node_name(name) {
                        return Err(self.err(pos, Malformed::BadNodeName));
                    }
                    depth += 1;
                    props_allowed = true;
                    let offset = self.base + pos;
                    pos = align4(name_start + nul + 1);
                    Event::Begin {
                        offset,
                        name,
                        depth,
                    }
                }
                FDT_END_NODE => {
                    let closed = depth;
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| self.err(pos, Malformed::UnbalancedEnd))?;
                    root_done = depth == 0;
                    props_allowed = false;
                    let offset = self.base + pos;
                    pos += 4;
                    Event::End {
                        offset,
                        depth: closed,
                    }
                }
                FDT_PROP => {
                    if !props_allowed {
                        return Err(self.err(pos, Malformed::PropertyAfterChild));
                    }
                    let len = self.token(pos + 4)?;
                    let nameoff = self.token(pos + 8)?;
                    let value_start = pos + 12;
                    let value_end = value_start
                        .checked_add(len as usize)
                        .filter(|&end| end <= self.structure.len())
                        .ok_or_else(|| {
                            self.err(pos, Malformed::PropertyValueOutOfBounds { len })
                        })?;
                    let value = self
                        .structure
                        .get(value_start..value_end)
                        .unwrap_or_default();
                    let cached = names_checked
                        .iter()
                        .flatten()
                        .find(|(off, _)| *off == nameoff)
                        .map(|&(_, name)| name);
                    let name = match cached {
                        Some(name) => name,
                        None => {
                            let name = self.prop_name(pos, nameoff)?;
                            names_checked.rotate_right(1);
                            names_checked[0] = Some((nameoff, name));
                            name
                        }
                    };
                    pos = align4(value_end);
                    Event::Prop {
                        offset: self.base + value_start,
                        name,
                        value,
                        depth,
                    }
                }
                FDT_NOP => return Err(self.err(pos, Malformed::Nop)),
                FDT_END => {
                    if depth != 0 || !root_done {
                        return Err(self.err(pos, Malformed::UnbalancedEnd));
                    }
                    return Ok((nops, ControlFlow::Continue(())));
                }
                other => return Err(self.err(pos, Malformed::UnknownToken(other))),
            };
            if let ControlFlow::Break(b) = f(event) {
                return Ok((nops, ControlFlow::Break(b)));
            }
            if pos >= self.structure.len() {
                return Err(self.err(pos, Malformed::MissingEnd));
            }
        }
    }

    /// The structure block without its `FDT_NOP` tokens. Only called after
    /// [`Walker::walk`] succeeded, so every token and length is in bounds.
    fn compact(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.structure.len());
        let mut pos = 0usize;
        while let Some(tok) = be32_at(self.structure, pos) {
            let next = match tok {
                FDT_BEGIN_NODE => {
                    let rest = self.structure.get(pos + 4..).unwrap_or_default();
                    let nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                    align4(pos + 4 + nul + 1)
                }
                FDT_PROP => {
                    let len = be32_at(self.structure, pos + 4).unwrap_or(0) as usize;
                    align4(pos + 12 + len)
                }
                _ => pos + 4,
            };
            let next = next.min(self.structure.len());
            if tok != FDT_NOP {
                out.extend_from_slice(self.structure.get(pos..next).unwrap_or_default());
            }
            if tok == FDT_END {
                break;
            }
            pos = next;
        }
        out
    }

    /// The name at `nameoff` in the strings block, checked: inside the
    /// block, NUL-terminated there, non-empty printable ASCII.
    fn prop_name(&self, pos: usize, nameoff: u32) -> Result<&'a [u8]> {
        let rest = self
            .strings
            .get(nameoff as usize..)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| self.err(pos, Malformed::NameOffsetOutOfBounds { nameoff }))?;
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err(pos, Malformed::UnterminatedPropertyName { nameoff }))?;
        let name = rest.get(..nul).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err(self.err(pos, Malformed::BadPropertyName { nameoff }));
        }
        Ok(name)
    }
}

fn valid_node_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b'/')
}

fn align4(x: usize) -> usize {
    x.saturating_add(3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A minimal valid blob: header, empty rsvmap, `/ { p = "x"; c { }; };`.
    fn minimal() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string("p", "x").unwrap();
        let c = w.begin_node("c").unwrap();
        w.end_node(c).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn set_be32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn minimal_is_valid() {
        let b = minimal();
        let v = validate(&b, 4096).unwrap();
        assert_eq!(v.header.version, 17);
        assert_eq!(v.header.last_comp_version, 16);
        assert_eq!(v.header.off_mem_rsvmap, 40);
        assert_eq!(v.header.off_dt_struct, 56);
        assert_eq!(v.mem_reservations().count(), 0);
    }

    /// The events of `minimal()`, with their absolute offsets; a breaking
    /// callback stops the walk; `Nops::Skip` reports no event for a NOP.
    #[test]
    fn walk_events() {
        let b = minimal();
        let s = 56; // off_dt_struct
        let fdt = FdtBlob::new(&b, 4096).unwrap();
        let mut events = Vec::new();
        let flow = fdt.walk(Nops::Refuse, |e| {
            events.push(e);
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        let want = [
            Event::Begin {
                offset: s,
                name: b"",
                depth: 1,
            },
            Event::Prop {
                offset: s + 20,
                name: b"p",
                value: b"x\0",
                depth: 1,
            },
            Event::Begin {
                offset: s + 24,
                name: b"c",
                depth: 2,
            },
            Event::End {
                offset: s + 32,
                depth: 2,
            },
            Event::End {
                offset: s + 36,
                depth: 1,
            },
        ];
        assert_eq!(events, want);
        assert_eq!(fdt.as_bytes(), &b[..]);

        let mut seen = 0;
        let flow = fdt.walk(Nops::Refuse, |e| {
            seen += 1;
            match e {
                Event::Prop { value, .. } => ControlFlow::Break(value),
                _ => ControlFlow::Continue(()),
            }
        });
        assert_eq!((flow, seen), (Ok(ControlFlow::Break(&b"x\0"[..])), 2));

        // The child replaced by NOPs (its BEGIN_NODE, name and END_NODE
        // words), as libfdt's fdt_nop_node leaves it.
        let mut v = b.clone();
        for at in [s + 24, s + 28, s + 32] {
            set_be32(&mut v, at, FDT_NOP);
        }
        let fdt = FdtBlob::new(&v, 4096).unwrap();
        let mut events = Vec::new();
        let walked = fdt.walk(Nops::Skip, |e| {
            events.push(e);
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(walked, Ok(ControlFlow::Continue(())));
        assert_eq!(events, [want[0], want[1], want[4]]);
        assert_eq!(
            fdt.walk(Nops::Refuse, |_| ControlFlow::<()>::Continue(())),
            Err(Error::MalformedStructure {
                offset: s + 24,
                reason: Malformed::Nop
            })
        );
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            validate(&[0xd0, 0x0d], 4096).unwrap_err(),
            Error::Truncated { len: 2, needed: 4 }
        );
        let b = minimal();
        assert_eq!(
            validate(&b[..20], 4096).unwrap_err(),
            Error::Truncated {
                len: 20,
                needed: 40
            }
        );
        let mut v = b.clone();
        set_be32(&mut v, 20, 16);
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::UnsupportedHeaderVersion { version: 16, .. })
        ));
        let mut v = b.clone();
        set_be32(&mut v, 4, 20);
        assert_eq!(
            validate(&v, 4096).unwrap_err(),
            Error::TotalSizeTooSmall { totalsize: 20 }
        );
        let mut v = b.clone();
        set_be32(&mut v, 16, 44);
        assert_eq!(
            validate(&v, 4096).unwrap_err(),
            Error::MisalignedBlock {
                block: Block::MemReserveMap,
                offset: 44,
                align: 8
            }
        );
        let mut v = b.clone();
        set_be32(&mut v, 8, 58);
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::BlockOutOfBounds {
                block: Block::Structure,
                ..
            }) | Err(Error::MisalignedBlock {
                block: Block::Structure,
                ..
            })
        ));
        let mut v = b.clone();
        set_be32(&mut v, 12, u32::MAX);
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::BlockOutOfBounds {
                block: Block::Strings,
                ..
            })
        ));
        // Fill the reservation map with non-zero bytes up to totalsize.
        let mut v = b.clone();
        for x in &mut v[40..] {
            *x = 0xff;
        }
        assert_eq!(
            validate(&v, 4096).unwrap_err(),
            Error::UnterminatedMemReserveMap { offset: 40 }
        );
    }

    #[test]
    fn structure_errors() {
        let b = minimal();
        let s = 56; // off_dt_struct
        // NOP in place of the root's first property token.
        let mut v = b.clone();
        set_be32(&mut v, s + 8, FDT_NOP);
        assert_eq!(
            validate(&v, 4096).unwrap_err(),
            Error::MalformedStructure {
                offset: s + 8,
                reason: Malformed::Nop
            }
        );
        // Property name offset past the strings block.
        let mut v = b.clone();
        set_be32(&mut v, s + 16, 1000);
        assert_eq!(
            validate(&v, 4096).unwrap_err(),
            Error::MalformedStructure {
                offset: s + 8,
                reason: Malformed::NameOffsetOutOfBounds { nameoff: 1000 }
            }
        );
        // Property length past the block.
        let mut v = b.clone();
        set_be32(&mut v, s + 12, 0x1000);
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::MalformedStructure {
                reason: Malformed::PropertyValueOutOfBounds { len: 0x1000 },
                ..
            })
        ));
        // Root name not empty.
        let mut v = b.clone();
        v[s + 4] = b'r';
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::MalformedStructure {
                reason: Malformed::RootNameNotEmpty,
                ..
            })
        ));
        // Drop FDT_END by shrinking the structure block by 4.
        let mut v = b.clone();
        let size = u32::from_be_bytes(v[36..40].try_into().unwrap());
        set_be32(&mut v, 36, size - 4);
        assert!(matches!(
            validate(&v, 4096),
            Err(Error::MalformedStructure {
                reason: Malformed::MissingEnd,
                ..
            })
        ));
    }

    #[test]
    fn depth_limit() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let mut open = Vec::new();
        open.push(w.begin_node("").unwrap());
        for _ in 1..MAX_DEPTH {
            open.push(w.begin_node("n").unwrap());
        }
        while let Some(n) = open.pop() {
            w.end_node(n).unwrap();
        }
        let b = w.finish().unwrap();
        let v = validate(&b, 1 << 20).unwrap();
        // The lookups the crate uses stay panic-free at the depth limit.
        let root = v.root().unwrap();
        assert_eq!(root.children().count(), 1);
    }

    /// A v17 blob rewritten as libfdt's oldest readable form: version 16,
    /// no `size_dt_struct` (garbage there, as a v16 writer leaves it).
    fn as_v16(b: &[u8]) -> Vec<u8> {
        let mut v = b.to_vec();
        set_be32(&mut v, 0x14, 16);
        set_be32(&mut v, 0x18, 16);
        set_be32(&mut v, 0x24, 0xdead_beef);
        v
    }

    #[test]
    fn normalize_removes_nops_and_upgrades_v16() {
        let b = minimal();
        let s = 56; // off_dt_struct
        let struct_size = u32::from_be_bytes(b[0x24..0x28].try_into().unwrap()) as usize;

        // Unchanged: a clean v17 blob.
        let mut v = b.clone();
        assert_eq!(normalize(&mut v, 4096), Ok(Normalized::default()));
        assert_eq!(v, b);

        // NOPs before the root's property and before FDT_END: shift the
        // tokens right by two words to make room, as fdt_nop_* would leave.
        let mut v = b.clone();
        let end = s + struct_size;
        let mut with_nops = v[..s + 4 + 4].to_vec(); // header.., BEGIN_NODE "" (8 bytes)
        with_nops.extend_from_slice(&FDT_NOP.to_be_bytes());
        with_nops.extend_from_slice(&v[s + 8..end - 4]);
        with_nops.extend_from_slice(&FDT_NOP.to_be_bytes());
        with_nops.extend_from_slice(&v[end - 4..]);
        let strings = u32::from_be_bytes(v[0x0c..0x10].try_into().unwrap()) + 8;
        set_be32(&mut with_nops, 0x0c, strings);
        let total = with_nops.len() as u32;
        set_be32(&mut with_nops, 0x04, total);
        set_be32(&mut with_nops, 0x24, struct_size as u32 + 8);
        v = with_nops;
        assert!(validate(&v, 4096).is_err(), "validate refuses NOPs");
        let n = normalize(&mut v, 4096).unwrap();
        assert_eq!((n.nops, n.from_version, n.changed()), (2, None, true));
        let valid = validate(&v, 4096).unwrap();
        assert_eq!(valid.header.size_dt_struct as usize, struct_size);
        let root = valid.root().unwrap();
        assert_eq!(root.property("p").unwrap().value, b"x\0");
        assert_eq!(root.children().count(), 1);

        // Version 16: the structure block runs to totalsize.
        let mut v = as_v16(&b);
        assert!(validate(&v, 4096).is_err(), "validate wants version 17");
        let n = normalize(&mut v, 4096).unwrap();
        assert_eq!((n.nops, n.from_version), (0, Some(16)));
        assert_eq!(v, b, "a v16 blob becomes exactly its v17 twin");

        // Older than 16, or newer-only blobs, stay refused, and `buf` is
        // left as it was.
        let mut v = b.clone();
        set_be32(&mut v, 0x14, 15);
        let before = v.clone();
        assert!(matches!(
            normalize(&mut v, 4096),
            Err(Error::UnsupportedHeaderVersion { version: 15, .. })
        ));
        assert_eq!(v, before);
        let mut v = as_v16(&b);
        set_be32(&mut v, 0x18, 18);
        assert!(normalize(&mut v, 4096).is_err());

        // A v16 blob without FDT_END before totalsize is malformed.
        let mut v = as_v16(&b);
        set_be32(&mut v, s + struct_size - 4, FDT_NOP);
        assert!(matches!(
            normalize(&mut v, 4096),
            Err(Error::MalformedStructure { .. })
        ));
    }
}
