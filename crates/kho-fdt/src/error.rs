//! The crate's one error type, with a precise one-line `Display` per variant.

use alloc::string::String;
use core::fmt;

use kho_abi::AbiVersion;
use kho_mem::PhysAddr;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong building, parsing or rendering a KHO FDT.
///
/// Offsets (`offset` fields) are byte offsets from the start of the blob: of
/// the header field, the structure-block token, the node (its
/// `FDT_BEGIN_NODE` token) or the property value the error is about. Header
/// fields sit at fixed offsets (magic 0x0, totalsize 0x4, version 0x14), which
/// the `Display` text names.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // --- container: header and blocks -------------------------------------
    /// The blob is shorter than the FDT header needs.
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed (4 for the magic, 40 for the whole header).
        needed: usize,
    },
    /// The header magic (offset 0x0) is not `0xd00dfeed`.
    BadMagic {
        /// The big-endian value found.
        found: u32,
    },
    /// The header version (offset 0x14) is older than 17, or
    /// `last_comp_version` (offset 0x18) is newer than 17.
    UnsupportedHeaderVersion {
        /// `version` as found.
        version: u32,
        /// `last_comp_version` as found.
        last_comp_version: u32,
    },
    /// The header `totalsize` (offset 0x4) is larger than the byte slice.
    ExceedsBlob {
        /// `totalsize` as found.
        totalsize: u32,
        /// Length of the slice passed in.
        len: usize,
    },
    /// The header `totalsize` (offset 0x4) is larger than one KHO page.
    TotalSizeTooLarge {
        /// `totalsize` as found.
        totalsize: u32,
        /// The limit, [`kho_abi::fdt::MAX_FDT_SIZE`].
        max: usize,
    },
    /// The header `totalsize` (offset 0x4) is smaller than the header itself.
    TotalSizeTooSmall {
        /// `totalsize` as found.
        totalsize: u32,
    },
    /// A block named by the header does not lie between the end of the header
    /// and `totalsize`.
    BlockOutOfBounds {
        /// Which block.
        block: Block,
        /// The block's offset from the header.
        offset: u32,
        /// The block's size from the header (0 for the reservation map,
        /// whose size the header does not record).
        size: u32,
        /// `totalsize` from the header.
        totalsize: u32,
    },
    /// A block offset is not aligned as the format requires (memory
    /// reservation map: 8 bytes, structure block: 4 bytes).
    MisalignedBlock {
        /// Which block.
        block: Block,
        /// The block's offset from the header.
        offset: u32,
        /// The required alignment.
        align: u32,
    },
    /// The memory reservation map starting at `offset` has no all-zero
    /// terminating entry before `totalsize`.
    UnterminatedMemReserveMap {
        /// Offset of the reservation map.
        offset: usize,
    },
    /// The structure block is not a well-formed token stream.
    MalformedStructure {
        /// Offset of the offending token.
        offset: usize,
        /// What is wrong.
        reason: Malformed,
    },

    // --- KHO root semantics ----------------------------------------------
    /// The root node has no `compatible` property.
    MissingCompatible {
        /// Offset of the root node.
        offset: usize,
    },
    /// The root `compatible` is not exactly one known version string.
    UnknownCompatible {
        /// The value found, NUL-terminator stripped, non-printable bytes
        /// escaped (`\0`, `\xNN`).
        compatible: String,
        /// Offset of the `compatible` value.
        offset: usize,
    },
    /// The root node has no `preserved-memory-map` property.
    MissingMemoryMap {
        /// Offset of the root node.
        offset: usize,
    },
    /// `preserved-memory-map` is not exactly 8 bytes.
    BadMemoryMapLength {
        /// Length found.
        len: usize,
        /// Offset of the value.
        offset: usize,
    },
    /// `preserved-memory-map` is zero (no radix tree; allowed in kho-v1,
    /// where it means nothing is preserved).
    ZeroMemoryMap {
        /// Offset of the value.
        offset: usize,
    },
    /// `preserved-memory-map` is not page-aligned (radix nodes and kho-v1
    /// chunks are pages).
    MisalignedMemoryMap {
        /// The address found.
        addr: PhysAddr,
        /// Offset of the value.
        offset: usize,
    },
    /// A child of the root has no `preserved-data` property.
    MissingPreservedData {
        /// The child's name.
        node: String,
        /// Offset of the child node.
        offset: usize,
    },
    /// A child's `preserved-data` is not exactly 8 bytes.
    BadPreservedDataLength {
        /// The child's name.
        node: String,
        /// Length found.
        len: usize,
        /// Offset of the value.
        offset: usize,
    },
    /// A child's `preserved-data` is zero.
    ZeroPreservedData {
        /// The child's name.
        node: String,
        /// Offset of the value.
        offset: usize,
    },
    /// A kho-v1 child of the root has no `fdt` property (kho-v1's name
    /// for what later versions call `preserved-data`).
    MissingV1Fdt {
        /// The child's name.
        node: String,
        /// Offset of the child node.
        offset: usize,
    },
    /// A kho-v1 child's `fdt` is not exactly 8 bytes.
    BadV1FdtLength {
        /// The child's name.
        node: String,
        /// Length found.
        len: usize,
        /// Offset of the value.
        offset: usize,
    },
    /// A kho-v1 child's `fdt` is zero.
    ZeroV1Fdt {
        /// The child's name.
        node: String,
        /// Offset of the value.
        offset: usize,
    },
    /// A child has no `blob-size` although the version requires one.
    MissingBlobSize {
        /// The child's name.
        node: String,
        /// The version that requires it.
        version: AbiVersion,
        /// Offset of the child node.
        offset: usize,
    },
    /// A child's `blob-size` is not exactly 8 bytes.
    BadBlobSizeLength {
        /// The child's name.
        node: String,
        /// Length found.
        len: usize,
        /// Offset of the value.
        offset: usize,
    },
    /// Two children of the root share a name (builder: the name is taken).
    DuplicateSubtree {
        /// The name.
        name: String,
        /// Offset of the second node with that name (`None` from the builder).
        offset: Option<usize>,
    },

    // --- builder ---------------------------------------------------------
    /// A subtree name is not 1-31 characters of `[A-Za-z0-9,._+-]` starting
    /// with a letter (a device-tree node name without a unit address).
    InvalidNodeName {
        /// The name as given.
        name: String,
    },
    /// A subtree was added without a size under a version that requires
    /// `blob-size`.
    BlobSizeRequired {
        /// The subtree name.
        name: String,
        /// The builder's version.
        version: AbiVersion,
    },
    /// A subtree was added with a size under a version whose children
    /// carry no `blob-size` (kho-v1: a child names an FDT, sized by its own
    /// header).
    BlobSizeNotInVersion {
        /// The subtree name.
        name: String,
        /// The builder's version.
        version: AbiVersion,
    },
    /// A subtree was added with data address zero, which readers reject.
    ZeroSubtreeData {
        /// The subtree name.
        name: String,
    },
    /// The builder's memory map address is not page-aligned, or zero
    /// under a version other than kho-v1.
    InvalidMemoryMap {
        /// The address given to the builder.
        addr: PhysAddr,
    },
    /// The serialised FDT would not fit in one page.
    TooLarge {
        /// Size the FDT would have.
        size: usize,
        /// The limit, [`kho_abi::fdt::MAX_FDT_SIZE`].
        max: usize,
    },
    /// The underlying `vm-fdt` writer refused an operation.
    Writer(vm_fdt::Error),
}

/// A block of an FDT named by its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Block {
    /// The memory reservation map (`off_mem_rsvmap`, header offset 0x10).
    MemReserveMap,
    /// The structure block (`off_dt_struct`/`size_dt_struct`, 0x8/0x24).
    Structure,
    /// The strings block (`off_dt_strings`/`size_dt_strings`, 0xc/0x20).
    Strings,
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Block::MemReserveMap => "memory reservation map",
            Block::Structure => "structure block",
            Block::Strings => "strings block",
        })
    }
}

/// Why a structure block is malformed (see [`Error::MalformedStructure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// A token, or the fixed part of a property, runs past the block's end.
    TruncatedToken,
    /// A token value that is not defined by the FDT format.
    UnknownToken(u32),
    /// The first token is not `FDT_BEGIN_NODE` (the root node).
    NoRootNode(u32),
    /// The root node's name is not empty.
    RootNameNotEmpty,
    /// A node name has no NUL before the end of the structure block.
    UnterminatedNodeName,
    /// A child node name is empty, contains `/`, or is not printable ASCII.
    BadNodeName,
    /// A property value runs past the end of the structure block.
    PropertyValueOutOfBounds {
        /// The property length field.
        len: u32,
    },
    /// A property's name offset is outside the strings block.
    NameOffsetOutOfBounds {
        /// The `nameoff` field.
        nameoff: u32,
    },
    /// A property's name has no NUL before the end of the strings block.
    UnterminatedPropertyName {
        /// The `nameoff` field.
        nameoff: u32,
    },
    /// A property name is empty or not printable ASCII.
    BadPropertyName {
        /// The `nameoff` field.
        nameoff: u32,
    },
    /// A property follows a child node of the same node.
    PropertyAfterChild,
    /// Nodes are nested deeper than [`crate::MAX_DEPTH`].
    TooDeep,
    /// An `FDT_NOP` token. Valid in general DTBs, but neither KHO's writers
    /// (libfdt sequential write, `fdt_pack`, `fdt_del_node`) nor dtc emit
    /// one, and the lookup crate this parser relies on mishandles them.
    Nop,
    /// `FDT_END_NODE` with no open node, or `FDT_END` inside an open node.
    UnbalancedEnd,
    /// A token other than `FDT_END` after the root node closed.
    AfterRoot(u32),
    /// The structure block ends without an `FDT_END` token.
    MissingEnd,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::TruncatedToken => {
                f.write_str("token runs past the end of the structure block")
            }
            Malformed::UnknownToken(t) => write!(f, "unknown token {t:#010x}"),
            Malformed::NoRootNode(t) => {
                write!(
                    f,
                    "expected FDT_BEGIN_NODE of the root node, found {t:#010x}"
                )
            }
            Malformed::RootNameNotEmpty => f.write_str("root node name is not empty"),
            Malformed::UnterminatedNodeName => {
                f.write_str("node name is not NUL-terminated inside the structure block")
            }
            Malformed::BadNodeName => {
                f.write_str("node name is empty, contains '/', or is not printable ASCII")
            }
            Malformed::PropertyValueOutOfBounds { len } => write!(
                f,
                "property value of {len} bytes runs past the end of the structure block"
            ),
            Malformed::NameOffsetOutOfBounds { nameoff } => write!(
                f,
                "property name offset {nameoff:#x} is outside the strings block"
            ),
            Malformed::UnterminatedPropertyName { nameoff } => write!(
                f,
                "property name at strings offset {nameoff:#x} is not NUL-terminated"
            ),
            Malformed::BadPropertyName { nameoff } => write!(
                f,
                "property name at strings offset {nameoff:#x} is empty or not printable ASCII"
            ),
            Malformed::PropertyAfterChild => f.write_str("property after a child node"),
            Malformed::TooDeep => write!(f, "nodes nested deeper than {}", crate::MAX_DEPTH),
            Malformed::Nop => f.write_str("FDT_NOP tokens are not supported"),
            Malformed::UnbalancedEnd => f.write_str("unbalanced FDT_END_NODE/FDT_END"),
            Malformed::AfterRoot(t) => write!(
                f,
                "token {t:#010x} after the root node closed (expected FDT_END)"
            ),
            Malformed::MissingEnd => {
                f.write_str("no FDT_END before the end of the structure block")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC, FDT_VERSION, U64_PROP_LEN};
        match self {
            Error::Truncated { len, needed } => write!(
                f,
                "FDT blob too short: {len} bytes, the header needs {needed}"
            ),
            Error::BadMagic { found } => write!(
                f,
                "bad FDT magic {found:#010x} at offset 0x0 (expected {FDT_MAGIC:#010x})"
            ),
            Error::UnsupportedHeaderVersion {
                version,
                last_comp_version,
            } => write!(
                f,
                "unsupported FDT header version {version} (last_comp_version \
                 {last_comp_version}) at offset 0x14: need version >= {FDT_VERSION} \
                 and last_comp_version <= {FDT_VERSION}"
            ),
            Error::ExceedsBlob { totalsize, len } => write!(
                f,
                "FDT totalsize {totalsize} (offset 0x4) exceeds the {len}-byte blob"
            ),
            Error::TotalSizeTooLarge { totalsize, max } => write!(
                f,
                "FDT totalsize {totalsize} (offset 0x4) exceeds the {max}-byte KHO FDT page"
            ),
            Error::TotalSizeTooSmall { totalsize } => write!(
                f,
                "FDT totalsize {totalsize} (offset 0x4) is smaller than the \
                 {FDT_HEADER_SIZE}-byte header"
            ),
            Error::BlockOutOfBounds {
                block,
                offset,
                size,
                totalsize,
            } => write!(
                f,
                "FDT {block} at {offset:#x} (size {size:#x}) is outside \
                 [{FDT_HEADER_SIZE:#x}, totalsize {totalsize:#x})"
            ),
            Error::MisalignedBlock {
                block,
                offset,
                align,
            } => write!(
                f,
                "FDT {block} offset {offset:#x} is not {align}-byte aligned"
            ),
            Error::UnterminatedMemReserveMap { offset } => write!(
                f,
                "FDT memory reservation map at {offset:#x} has no terminating entry \
                 before totalsize"
            ),
            Error::MalformedStructure { offset, reason } => {
                write!(f, "malformed FDT structure at offset {offset:#x}: {reason}")
            }
            Error::MissingCompatible { offset } => write!(
                f,
                "KHO FDT root node (offset {offset:#x}) has no compatible property"
            ),
            Error::UnknownCompatible { compatible, offset } => {
                write!(
                    f,
                    "unknown KHO root compatible \"{compatible}\" at offset {offset:#x} (expected "
                )?;
                let last = AbiVersion::ALL.len() - 1;
                for (i, v) in AbiVersion::ALL.into_iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        i if i == last => " or ",
                        _ => ", ",
                    };
                    write!(f, "{sep}\"{v}\"")?;
                }
                f.write_str(")")
            }
            Error::MissingMemoryMap { offset } => write!(
                f,
                "KHO FDT root node (offset {offset:#x}) has no preserved-memory-map property"
            ),
            Error::BadMemoryMapLength { len, offset } => write!(
                f,
                "preserved-memory-map at offset {offset:#x} is {len} bytes, expected \
                 {U64_PROP_LEN}"
            ),
            Error::ZeroMemoryMap { offset } => {
                write!(f, "preserved-memory-map at offset {offset:#x} is zero")
            }
            Error::MisalignedMemoryMap { addr, offset } => write!(
                f,
                "preserved-memory-map {addr} at offset {offset:#x} is not page-aligned"
            ),
            Error::MissingPreservedData { node, offset } => write!(
                f,
                "KHO subtree {node:?} (offset {offset:#x}) has no preserved-data property"
            ),
            Error::BadPreservedDataLength { node, len, offset } => write!(
                f,
                "preserved-data of KHO subtree {node:?} at offset {offset:#x} is {len} \
                 bytes, expected {U64_PROP_LEN}"
            ),
            Error::ZeroPreservedData { node, offset } => write!(
                f,
                "preserved-data of KHO subtree {node:?} at offset {offset:#x} is zero"
            ),
            Error::MissingV1Fdt { node, offset } => write!(
                f,
                "kho-v1 KHO subtree {node:?} (offset {offset:#x}) has no fdt property"
            ),
            Error::BadV1FdtLength { node, len, offset } => write!(
                f,
                "fdt of kho-v1 KHO subtree {node:?} at offset {offset:#x} is {len} bytes, \
                 expected {U64_PROP_LEN}"
            ),
            Error::ZeroV1Fdt { node, offset } => write!(
                f,
                "fdt of kho-v1 KHO subtree {node:?} at offset {offset:#x} is zero"
            ),
            Error::MissingBlobSize {
                node,
                version,
                offset,
            } => write!(
                f,
                "KHO subtree {node:?} (offset {offset:#x}) has no blob-size property, \
                 required by {version}"
            ),
            Error::BadBlobSizeLength { node, len, offset } => write!(
                f,
                "blob-size of KHO subtree {node:?} at offset {offset:#x} is {len} bytes, \
                 expected {U64_PROP_LEN}"
            ),
            Error::DuplicateSubtree { name, offset } => match offset {
                Some(offset) => write!(f, "duplicate KHO subtree {name:?} at offset {offset:#x}"),
                None => write!(f, "duplicate KHO subtree {name:?}"),
            },
            Error::InvalidNodeName { name } => write!(
                f,
                "invalid KHO subtree name {name:?}: need 1-{} characters of \
                 [A-Za-z0-9,._+-] starting with a letter",
                crate::build::MAX_NAME_LEN
            ),
            Error::BlobSizeRequired { name, version } => {
                write!(f, "KHO subtree {name:?} needs a blob size under {version}")
            }
            Error::BlobSizeNotInVersion { name, version } => write!(
                f,
                "KHO subtree {name:?}: {version} children carry no blob-size (a child names \
                 an FDT, sized by its own header)"
            ),
            Error::ZeroSubtreeData { name } => {
                write!(f, "KHO subtree {name:?} has data address zero")
            }
            Error::InvalidMemoryMap { addr } => write!(
                f,
                "preserved-memory-map {addr} must be page-aligned, and non-zero after kho-v1"
            ),
            Error::TooLarge { size, max } => write!(
                f,
                "KHO FDT would be {size} bytes, more than the {max}-byte page"
            ),
            Error::Writer(e) => write!(f, "FDT writer failed: {e}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Writer(e) => Some(writer_source(e)),
            _ => None,
        }
    }
}

/// `vm_fdt::Error` implements `std::error::Error` only with vm-fdt's `std`
/// feature, which a `no_std` build cannot enable. This wrapper gives it a
/// `core::error::Error` impl so [`Error::Writer`] can still report a source.
#[derive(Debug)]
struct WriterSource(vm_fdt::Error);

impl fmt::Display for WriterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl core::error::Error for WriterSource {}

/// A `'static` wrapper equal to `e`. Every `vm_fdt::Error` variant is a unit
/// variant, so each arm is a promoted constant and no allocation or unsafe
/// reference cast is needed.
fn writer_source(e: &vm_fdt::Error) -> &'static WriterSource {
    use vm_fdt::Error as E;
    match e {
        E::PropertyBeforeBeginNode => &WriterSource(E::PropertyBeforeBeginNode),
        E::PropertyAfterEndNode => &WriterSource(E::PropertyAfterEndNode),
        E::PropertyValueTooLarge => &WriterSource(E::PropertyValueTooLarge),
        E::TotalSizeTooLarge => &WriterSource(E::TotalSizeTooLarge),
        E::InvalidString => &WriterSource(E::InvalidString),
        E::OutOfOrderEndNode => &WriterSource(E::OutOfOrderEndNode),
        E::UnclosedNode => &WriterSource(E::UnclosedNode),
        E::InvalidMemoryReservation => &WriterSource(E::InvalidMemoryReservation),
        E::OverlappingMemoryReservations => &WriterSource(E::OverlappingMemoryReservations),
        E::InvalidNodeName => &WriterSource(E::InvalidNodeName),
        E::InvalidPropertyName => &WriterSource(E::InvalidPropertyName),
        E::NodeDepthTooLarge => &WriterSource(E::NodeDepthTooLarge),
        E::DuplicatePhandle => &WriterSource(E::DuplicatePhandle),
    }
}

impl From<vm_fdt::Error> for Error {
    fn from(e: vm_fdt::Error) -> Error {
        Error::Writer(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use core::error::Error as _;

    #[test]
    fn writer_errors_have_a_source() {
        let e = Error::Writer(vm_fdt::Error::InvalidNodeName);
        assert_eq!(e.to_string(), "FDT writer failed: Invalid node name");
        let src = e.source().map(|s| s.to_string());
        assert_eq!(src.as_deref(), Some("Invalid node name"));
        assert!(Error::ZeroMemoryMap { offset: 8 }.source().is_none());
    }

    #[test]
    fn display_is_one_line() {
        let samples = [
            Error::UnknownCompatible {
                compatible: "kho-v9".into(),
                offset: 0x40,
            },
            Error::MalformedStructure {
                offset: 0x38,
                reason: Malformed::Nop,
            },
            Error::InvalidNodeName {
                name: "bad\nname".into(),
            },
        ];
        for e in samples {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
        }
        assert_eq!(
            Error::UnknownCompatible {
                compatible: "kho-v9".into(),
                offset: 0x4c,
            }
            .to_string(),
            "unknown KHO root compatible \"kho-v9\" at offset 0x4c \
             (expected \"kho-v1\", \"kho-v2\", \"kho-v3\" or \"kho-v4\")"
        );
        assert_eq!(
            Error::BlobSizeNotInVersion {
                name: "memblock".into(),
                version: AbiVersion::V1,
            }
            .to_string(),
            "KHO subtree \"memblock\": kho-v1 children carry no blob-size (a child names an \
             FDT, sized by its own header)"
        );
    }
}
