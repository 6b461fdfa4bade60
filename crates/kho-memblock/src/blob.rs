//! The `memblock-v1` sub-blob: building it, reading it back from memory,
//! and the validated view the next kernel looks regions up in.

use alloc::vec::Vec;
use core::fmt;

use kho_abi::fdt::{FDT_HEADER_SIZE, PROP_COMPATIBLE, U64_PROP_LEN};
use kho_abi::memblock::{COMPATIBLE, PROP_SIZE, PROP_START, REGION_COMPATIBLE};
use kho_mem::{PAGE_SIZE, PhysAddr, PhysMem};
use kho_scratch::Token;
use vm_fdt::FdtWriter;

use crate::cmdline::MAX_NAME_LEN;
use crate::error::token;
use crate::region::check_against;
use crate::{Error, Region, ReserveMem, Result};

/// Builds the sub-blob upstream's `prepare_kho_fdt` writes for `regions`,
/// in their order:
///
/// ```text
/// / {
///     compatible = "memblock-v1";
///     <name> {
///         compatible = "reserve-mem-v1";
///         start = <8 bytes, little-endian>;
///         size = <8 bytes, little-endian>;
///     };
///     ...
/// };
/// ```
///
/// Errors: [`Error::DuplicateName`], [`Error::RegionsOverlap`],
/// [`Error::TooLarge`] (more than one page, about 40 regions),
/// [`Error::Blob`] if the FDT writer refuses something.
pub fn build_blob(regions: &[Region<'_>]) -> Result<Vec<u8>> {
    for (i, r) in regions.iter().enumerate() {
        check_against(r, regions[..i].iter().copied())?;
    }
    let blob = write_fdt(regions).map_err(|e| Error::Blob(e.into()))?;
    if blob.len() > PAGE_SIZE {
        return Err(Error::TooLarge { size: blob.len() });
    }
    Ok(blob)
}

fn write_fdt(regions: &[Region<'_>]) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string(PROP_COMPATIBLE, COMPATIBLE)?;
    for r in regions {
        let node = w.begin_node(r.name())?;
        w.property_string(PROP_COMPATIBLE, REGION_COMPATIBLE)?;
        w.property(PROP_START, &r.start().as_u64().to_le_bytes())?;
        w.property(PROP_SIZE, &r.size().to_le_bytes())?;
        w.end_node(node)?;
    }
    w.end_node(root)?;
    w.finish()
}

/// Reads the sub-blob at `phys` into `buf` and returns the bytes read.
///
/// `size` is the child's `blob-size` when the root FDT has one (kho-v3,
/// kho-v4 and the blob-size revision); otherwise the FDT header's
/// `totalsize` is read first. Either way at most one page is read.
///
/// Errors: [`Error::BlobTooLarge`], [`Error::BlobNotRam`], [`Error::Access`].
/// The bytes themselves are checked by [`MemblockFdt::parse`].
pub fn read_blob<'b, M: PhysMem + ?Sized>(
    mem: &M,
    phys: PhysAddr,
    size: Option<u64>,
    buf: &'b mut [u8; PAGE_SIZE],
) -> Result<&'b [u8]> {
    let len = match size {
        Some(size) => size,
        None => {
            let mut head = [0u8; 8];
            if !mem.is_ram(phys, head.len() as u64) {
                return Err(Error::BlobNotRam { phys, size: 8 });
            }
            mem.read(phys, &mut head)
                .map_err(|source| Error::Access { addr: phys, source })?;
            u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]))
        }
    };
    if len > PAGE_SIZE as u64 {
        return Err(Error::BlobTooLarge { size: len });
    }
    if !mem.is_ram(phys, len) {
        return Err(Error::BlobNotRam { phys, size: len });
    }
    // `len` is at most PAGE_SIZE.
    let out = &mut buf[..len as usize];
    mem.read(phys, out)
        .map_err(|source| Error::Access { addr: phys, source })?;
    Ok(out)
}

/// A validated `memblock-v1` sub-blob, borrowed from its bytes.
///
/// [`MemblockFdt::parse`] has checked every region, so lookups
/// ([`find`](MemblockFdt::find), [`revive`](MemblockFdt::revive)) and
/// [`regions`](MemblockFdt::regions) cannot fail for a malformed blob.
#[derive(Clone, Copy)]
pub struct MemblockFdt<'a> {
    fdt: fdt::Fdt<'a>,
    bytes: &'a [u8],
    regions: usize,
}

impl fmt::Debug for MemblockFdt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `fdt::Fdt`'s own Debug walks the tree with lookups this crate
        // avoids; print the checked summary instead.
        f.debug_struct("MemblockFdt")
            .field("len", &self.bytes.len())
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

/// Whether the NUL-separated string list `value` contains `s`
/// (libfdt's `fdt_stringlist_contains`: every entry must be terminated).
fn stringlist_contains(value: &[u8], s: &str) -> bool {
    let mut rest = value;
    while let Some(nul) = rest.iter().position(|&b| b == 0) {
        if &rest[..nul] == s.as_bytes() {
            return true;
        }
        rest = &rest[nul + 1..];
    }
    false
}

/// `Some(token)` of a property value, for error messages.
fn found(value: Option<&[u8]>) -> Option<Token> {
    value.map(|v| token(v.strip_suffix(&[0]).unwrap_or(v)))
}

/// A property of `node` by name.
fn prop<'a>(node: &fdt::node::FdtNode<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    node.properties().find(|p| p.name == name).map(|p| p.value)
}

/// A little-endian `u64` property of exactly 8 bytes.
fn u64_prop(node: &fdt::node::FdtNode<'_, '_>, name: &'static str) -> Result<u64> {
    let value = prop(node, name).ok_or(Error::MissingProperty {
        name: token(node.name),
        property: name,
    })?;
    let bytes: [u8; U64_PROP_LEN] = value.try_into().map_err(|_| Error::BadPropertyLength {
        name: token(node.name),
        property: name,
        len: value.len(),
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// One region node, fully checked on its own.
fn region_of<'a>(node: &fdt::node::FdtNode<'_, 'a>) -> Result<Region<'a>> {
    let name = node.name;
    if name.len() > MAX_NAME_LEN {
        return Err(Error::NameTooLong {
            name: token(name),
            len: name.len(),
        });
    }
    let compatible = prop(node, PROP_COMPATIBLE);
    if !compatible.is_some_and(|c| stringlist_contains(c, REGION_COMPATIBLE)) {
        return Err(Error::RegionNotCompatible {
            name: token(name),
            found: found(compatible),
        });
    }
    let start = u64_prop(node, PROP_START)?;
    let size = u64_prop(node, PROP_SIZE)?;
    Region::checked(name, PhysAddr::new(start), size)
}

impl<'a> MemblockFdt<'a> {
    /// Validates `blob` as a `memblock-v1` sub-blob. Never panics.
    ///
    /// Only the header's `totalsize` bytes are used. Checks, in order (the
    /// first failure is returned):
    ///
    /// 1. the FDT container: header, blocks and a bounds-checked walk of the
    ///    structure block, by [`kho_fdt::dtb::Dtb::parse`] ([`Error::Blob`]
    ///    with the offset); node names are printable ASCII without `/`;
    /// 2. the root `compatible` lists `"memblock-v1"`
    ///    ([`Error::RootNotCompatible`]);
    /// 3. every child of the root, in blob order: name at most
    ///    [`MAX_NAME_LEN`] bytes, `compatible` lists `"reserve-mem-v1"`,
    ///    `start` and `size` present and 8 bytes, `size` non-zero,
    ///    `start + size` not wrapping, name not used by an earlier child,
    ///    range not overlapping an earlier child's.
    ///
    /// Other properties and nodes below the regions are ignored, as
    /// upstream ignores them. Whether the regions are RAM needs the memory
    /// map: see [`MemblockFdt::check_ram`].
    pub fn parse(blob: &'a [u8]) -> Result<MemblockFdt<'a>> {
        // kho-fdt's validator is the workspace's one panic-free FDT check
        // (no allocation); it also cuts the blob to its totalsize.
        let bytes = kho_fdt::dtb::Dtb::parse(blob)
            .map_err(Error::Blob)?
            .as_bytes();
        let fdt = fdt::Fdt::new(bytes).map_err(|_| {
            Error::Blob(kho_fdt::Error::Truncated {
                len: bytes.len(),
                needed: FDT_HEADER_SIZE,
            })
        })?;
        let root = fdt
            .find_node("/")
            .ok_or(Error::RootNotCompatible { found: None })?;
        let compatible = prop(&root, PROP_COMPATIBLE);
        if !compatible.is_some_and(|c| stringlist_contains(c, COMPATIBLE)) {
            return Err(Error::RootNotCompatible {
                found: found(compatible),
            });
        }
        let mut regions = 0;
        for (i, node) in root.children().enumerate() {
            let r = region_of(&node)?;
            let earlier = root.children().take(i).filter_map(|n| region_of(&n).ok());
            check_against(&r, earlier)?;
            regions += 1;
        }
        Ok(MemblockFdt {
            fdt,
            bytes,
            regions,
        })
    }

    /// The blob's bytes (cut to its `totalsize`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions
    }

    /// Whether the blob has no region.
    pub fn is_empty(&self) -> bool {
        self.regions == 0
    }

    /// The regions, in blob order.
    pub fn regions(&self) -> impl Iterator<Item = Region<'a>> + '_ {
        self.fdt
            .find_node("/")
            .into_iter()
            .flat_map(|root| root.children())
            .filter_map(|n| region_of(&n).ok())
    }

    /// The region called `name` ([`Error::NotFound`] if none).
    pub fn find(&self, name: &str) -> Result<Region<'a>> {
        self.regions()
            .find(|r| r.name() == name)
            .ok_or(Error::NotFound { name: token(name) })
    }

    /// Upstream's `reserve_mem_kho_revive`: the region `req.name`, if its
    /// start is aligned to `req.align` and its size is exactly `req.size`.
    ///
    /// Errors: [`Error::NotFound`], [`Error::AlignmentMismatch`],
    /// [`Error::SizeMismatch`] (checked in that order, as upstream does).
    /// Upstream then falls back to a fresh allocation and says why.
    pub fn revive(&self, req: &ReserveMem<'_>) -> Result<Region<'a>> {
        let r = self.find(req.name)?;
        if r.start().as_u64() % req.align.max(1) != 0 {
            return Err(Error::AlignmentMismatch {
                name: token(req.name),
                start: r.start(),
                align: req.align,
            });
        }
        if r.size() != req.size {
            return Err(Error::SizeMismatch {
                name: token(req.name),
                expected: req.size,
                found: r.size(),
            });
        }
        Ok(r)
    }

    /// Checks that every region is RAM in `mem` ([`Error::RegionNotRam`]
    /// for the first that is not).
    pub fn check_ram<M: PhysMem + ?Sized>(&self, mem: &M) -> Result<()> {
        for r in self.regions() {
            if !mem.is_ram(r.start(), r.size()) {
                return Err(Error::RegionNotRam {
                    name: token(r.name()),
                    start: r.start(),
                    size: r.size(),
                });
            }
        }
        Ok(())
    }
}

/// The next kernel's whole retrieval: [`read_blob`], [`MemblockFdt::parse`]
/// and [`MemblockFdt::check_ram`]. `phys` and `size` are the root FDT's
/// `memblock` child (`preserved-data`, `blob-size` if present).
pub fn retrieve<'b, M: PhysMem + ?Sized>(
    mem: &M,
    phys: PhysAddr,
    size: Option<u64>,
    buf: &'b mut [u8; PAGE_SIZE],
) -> Result<MemblockFdt<'b>> {
    let blob = read_blob(mem, phys, size, buf)?;
    let fdt = MemblockFdt::parse(blob)?;
    fdt.check_ram(mem)?;
    Ok(fdt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_lists() {
        assert!(stringlist_contains(b"memblock-v1\0", "memblock-v1"));
        assert!(stringlist_contains(b"x\0memblock-v1\0", "memblock-v1"));
        assert!(!stringlist_contains(b"memblock-v1", "memblock-v1"));
        assert!(!stringlist_contains(b"memblock-v12\0", "memblock-v1"));
        assert!(!stringlist_contains(b"", "memblock-v1"));
        assert!(!stringlist_contains(b"\0", "memblock-v1"));
    }
}
