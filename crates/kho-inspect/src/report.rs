//! What `inspect` found, as data: the same structure is printed as text
//! ([`crate::text`]) and serialized as JSON (`--json`, [`crate::json`];
//! addresses and sizes are JSON numbers, locations objects, the schema
//! [`SCHEMA`]).
//!
//! Problems come causes first: [`follows_from`] tells which problem is a
//! consequence of which (a preserved-set check that failed because the walk
//! of the tree stopped early, a subtree's content that could not be read
//! because its blob is outside the image), and the decoder lists every
//! cause before the consequences.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Serialize, Serializer};

use crate::find::Found;
use crate::image::{Format, Segment};

/// Where the decoder started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "addr", rename_all = "kebab-case")]
pub enum Start {
    /// The root KHO FDT itself (`--fdt`); the scratch array is unknown.
    Fdt(u64),
    /// An x86 zero page whose `setup_data` chain holds the KHO entry.
    X86BootParams(u64),
    /// A boot DTB whose `/chosen` names the handover.
    Dtb(u64),
    /// An x86 `setup_data` entry of type 10 (`--find` starts here: the
    /// zero page that links it is not needed to decode the handover).
    X86SetupData(u64),
}

/// Everything one inspection found. Each part is `None` when an earlier
/// problem made it unreachable (the problem is in [`Report::problems`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The handover as the arch handoff names it (`None` with `--fdt`).
    pub handover: Option<HandoverInfo>,
    /// The root `compatible`: `kho-v1` … `kho-v4`, or `kho-2024` for the
    /// 2024 design ([`Report::rfc2024`]).
    pub abi_version: Option<String>,
    /// The root KHO FDT.
    pub fdt: Option<FdtInfo>,
    /// `None`: not named by the start point (`--fdt`) or unreadable.
    pub scratch: Option<Vec<ScratchInfo>>,
    /// The preserved set (`None`: no usable `preserved-memory-map`).
    pub preserved: Option<Preserved>,
    /// The root FDT's children, in FDT order.
    pub subtrees: Vec<SubtreeInfo>,
    /// A handover of the 2024 design: its scratch region, mem cache and
    /// the tree's ranges by node (then `handover`, `scratch` and
    /// `preserved` are `None` and `subtrees` empty: that design has none
    /// of them). `None`, and absent from the JSON, for kho-v1 … kho-v4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rfc2024: Option<Rfc2024>,
    /// Every structural problem: the causes in the order found, then the
    /// problems that follow from them ([`follows_from`]; in JSON each
    /// problem's `follows`).
    #[serde(serialize_with = "serialize_problems")]
    pub problems: Vec<Problem>,
}

/// What `kho_populate` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HandoverInfo {
    /// Physical address of the root KHO FDT.
    pub fdt: u64,
    /// Bytes of its mapping (one page).
    pub fdt_size: u64,
    /// Physical address of the scratch descriptor array.
    pub scratch: u64,
    /// Its length in bytes.
    pub scratch_len: u64,
}

/// What a 2024-design handover holds (docs/ABI.md, "The 2024 design"):
/// one FDT whose nodes carry `mem` ranges, the mem cache (the same ranges,
/// one sorted array) and one scratch region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rfc2024 {
    /// The x86 `kho_data` it was read from (`None` from the FDT alone:
    /// only that entry names the scratch region and the mem cache).
    pub kho_data: Option<Rfc2024Handover>,
    /// The mem cache (`None` from the FDT alone).
    pub mem_cache: Option<MemCacheInfo>,
    /// The tree's `mem` ranges by node (`None`: the FDT could not be read,
    /// or is not a device tree with the root compatible `kho-2024`).
    pub tree: Option<RangeTree>,
    /// Whether the tree and the mem cache were compared and hold exactly
    /// the same entries (`None`: not compared, because one is unknown,
    /// failed its own checks first, or is past a limit).
    pub agree: Option<bool>,
}

/// The 2024 design's x86 `kho_data` (48 bytes, `kho_abi::rfc2024::KhoData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rfc2024Handover {
    /// Physical address of the FDT (`dt_addr`).
    pub fdt: u64,
    /// Its size in bytes (`dt_size`; the FDT's `totalsize` must fit in it).
    pub fdt_size: u64,
    /// The scratch region's first byte (`scratch_addr`).
    pub scratch: u64,
    /// Its size in bytes (`scratch_size`).
    pub scratch_size: u64,
    /// Physical address of the mem cache (`mem_cache_addr`).
    pub mem_cache: u64,
    /// Its size in bytes (`mem_cache_size`, 16 per entry).
    pub mem_cache_size: u64,
}

/// The mem cache: what the next kernel reserves before it can read the
/// FDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemCacheInfo {
    /// Its physical address.
    pub addr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Whole 16-byte entries in it.
    pub entries: u64,
    /// Whether it passed `kho_ranges::MemCache::validate` (every entry RAM
    /// outside scratch, sorted, disjoint); `None`: not checked (past the
    /// `runs` limit).
    pub valid: Option<bool>,
}

/// The `mem` ranges of a 2024-design tree, by node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RangeTree {
    /// Whether every entry is listed (false: the walk stopped at a
    /// problem, or at the `runs` limit).
    pub complete: bool,
    /// The nodes with at least one range, in FDT order.
    pub nodes: Vec<NodeRanges>,
    /// Ranges listed.
    pub ranges: u64,
    /// 4 KiB pages in them.
    pub pages: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// How many have the NOINIT flag.
    pub noinit: u64,
}

/// One node's `mem` property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRanges {
    /// The node's path: `/` for the root, `/ftrace/cpu0`.
    pub path: String,
    /// Its ranges, in property order.
    pub ranges: Vec<MemRangeInfo>,
    /// 4 KiB pages in them.
    pub pages: u64,
    /// How many have the NOINIT flag.
    pub noinit: u64,
}

/// One `mem` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemRangeInfo {
    /// First byte (flags removed).
    pub addr: u64,
    /// Bytes.
    pub size: u64,
    /// The NOINIT flag: reserve, do not initialise page metadata.
    pub noinit: bool,
}

/// The root KHO FDT.
#[derive(Clone, Debug, Serialize)]
pub struct FdtInfo {
    /// Its physical address.
    pub addr: u64,
    /// The header's `totalsize` (0 if the header is unreadable).
    pub total_size: u64,
    /// `preserved-memory-map` (`None` if the FDT was refused).
    pub memory_map: Option<u64>,
    /// The canonical rendering (`kho_fdt::render`); for a refused FDT that
    /// is still a valid device tree, and for a 2024-design tree of at most
    /// 64 KiB, the plain rendering (`kho_fdt::render_blob`).
    pub rendered: Option<String>,
}

/// One scratch area from the descriptor array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScratchInfo {
    /// Its index in the array.
    pub index: usize,
    /// `lowmem`, `global` or `node N`: the role of its array position.
    pub kind: String,
    /// First physical address.
    pub addr: u64,
    /// Bytes.
    pub size: u64,
}

/// The preserved set, from the radix walk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Preserved {
    /// Whether the walk reached the end (false: it stopped at a problem,
    /// and the runs are those before it).
    pub complete: bool,
    /// Maximal runs of adjacent blocks of one order, in key order (highest
    /// order first, then ascending address), as `kho_radix::ranges` yields.
    pub runs: Vec<Run>,
    /// Blocks in the runs.
    pub blocks: u64,
    /// 4 KiB pages in the runs.
    pub pages: u64,
    /// Bytes in the runs.
    pub bytes: u64,
    /// Node accounting (`None` if the walk did not complete, and for a
    /// kho-v1 handover).
    pub radix: Option<RadixNodes>,
    /// A kho-v1 handover's chunk list (`None` from kho-v2 on, and when the
    /// list did not validate).
    pub v1_map: Option<V1Map>,
}

/// kho-v1's preserved-memory map: a linked list of chunk pages naming
/// per-order bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct V1Map {
    /// The first chunk's physical address (0: nothing preserved).
    pub first: u64,
    /// Bytes per bitmap: 4096 (Linux 6.17.9 on) or 512 (6.16 to 6.17.8).
    /// Nothing in the handover says which: the list is read both ways and
    /// this is the one that validates; `None` when both do and give the
    /// same blocks (the bytes past 512 of every bitmap are zero). When both
    /// validate with different blocks, 4096 is used and a `v1-bitmap-size`
    /// problem says so.
    pub bitmap_bytes: Option<u64>,
    /// Chunk pages in the list.
    pub chunks: u64,
    /// Bitmaps the chunks name.
    pub bitmaps: u64,
}

/// A run of `blocks` adjacent blocks of `2^order` pages from `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The order of every block in the run.
    pub order: u32,
    /// The first block's physical address.
    pub addr: u64,
    /// Bytes the run covers.
    pub size: u64,
    /// Blocks in the run.
    pub blocks: u64,
}

/// The radix tree's nodes (one page each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RadixNodes {
    /// The root table's physical address.
    pub root: u64,
    /// Table nodes, the root included.
    pub tables: u64,
    /// Leaf (bitmap) nodes.
    pub leaves: u64,
    /// Bytes of node pages.
    pub bytes: u64,
}

/// One child of the root FDT.
#[derive(Clone, Debug, Serialize)]
pub struct SubtreeInfo {
    /// The child node's name.
    pub name: String,
    /// `preserved-data`.
    pub addr: u64,
    /// `blob-size`, if the node has one.
    pub size: Option<u64>,
    /// Byte offset of the node in the root FDT (`None` when read from a
    /// refused FDT).
    pub fdt_offset: Option<usize>,
    /// The blob, decoded where its format is known.
    pub content: Content,
}

/// A subtree's blob, decoded where its format is known.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum Content {
    /// memblock's `memblock-v1` FDT: the `reserve_mem` regions.
    Memblock {
        /// The regions, in blob order.
        regions: Vec<RegionInfo>,
    },
    /// `struct kho_kexec_metadata`.
    KexecMetadata {
        /// The blob's version (1).
        version: u32,
        /// The previous kernel's release string.
        release: String,
        /// Kexecs since the cold boot.
        kexec_count: u32,
    },
    /// The kho-stub's blob (docs/HANDOVER.md, "The stub's blob").
    KhoStub {
        /// The generation that wrote it.
        generation: u32,
        /// The seed of its content.
        seed: u64,
        /// Its folio records.
        records: Vec<StubRecord>,
        /// Its vmalloc area.
        vmalloc: Vmalloc,
    },
    /// lib/test_kho.c's `kho_test` sub-FDT and the folios its vmalloc'ed
    /// array lists.
    KhoTest {
        /// `nr_folios`.
        nr_folios: u32,
        /// `csum`.
        csum: u32,
        /// The folios the array lists.
        folios: Vec<TestFolio>,
        /// The array's vmalloc area (`folios_info`).
        vmalloc: Vmalloc,
    },
    /// A format `inspect` does not know: address and size only.
    Unknown,
    /// A known format that failed its checks (see the problems).
    Invalid,
}

/// A `reserve_mem` region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionInfo {
    /// The `reserve_mem` name.
    pub name: String,
    /// First physical address.
    pub start: u64,
    /// Bytes.
    pub size: u64,
}

/// One folio of lib/test_kho.c (`phys | order` in its array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TestFolio {
    /// Physical address.
    pub phys: u64,
    /// Order.
    pub order: u32,
}

/// One folio the stub preserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StubRecord {
    /// Physical address (of the first block).
    pub phys: u64,
    /// Order of the block(s).
    pub order: u32,
    /// The generation that filled it.
    pub generation: u32,
    /// Block id its content derives from.
    pub block: u32,
    /// Checksum of its content.
    pub checksum: u64,
    /// Blocks in the record (guest-memory extents; 1 for a folio).
    pub count: u32,
    /// log2 of the distance between the blocks, in blocks.
    pub spacing: u32,
}

/// The vmalloc area a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Vmalloc {
    /// The descriptor is all zero.
    None,
    /// The chain passed every check.
    Area(VmallocInfo),
    /// The descriptor or its chain failed a check (see the problems).
    Invalid,
}

/// A vmalloc area restored (validated) from its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VmallocInfo {
    /// The first chunk page.
    pub first: u64,
    /// Pages of the area.
    pub total_pages: u32,
    /// The descriptor's flags.
    pub flags: u16,
    /// Order of its blocks.
    pub order: u32,
    /// Chunk pages in the chain.
    pub chunks: usize,
    /// Blocks the chain lists.
    pub blocks: usize,
}

/// The version of the JSON form of [`Output`] and [`FindOutput`]: the
/// top-level `"schema"` field of everything `inspect --json` prints
/// (docs/DEBUGGING.md, "JSON"). A change that renames, removes or retypes a
/// field bumps it; a new field does not.
pub const SCHEMA: &str = "kho-inspect/1";

/// A structural problem: a stable code, where it is, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Kebab-case class, stable for scripts (e.g. `radix-cycle`).
    pub code: &'static str,
    /// Where: the structure, by kind and physical address, and the part of
    /// it the problem is about.
    pub location: Location,
    /// The decoding crate's error text.
    pub message: String,
}

/// Where a problem is: the structure it is in, by kind and physical
/// address, and where the decoder knows it, the entry, byte or item inside
/// it. In JSON an object whose `kind` is the variant in kebab case
/// (`radix-entry`) with the variant's fields; as text (`Display`) the
/// phrase `inspect` prints after the code (`radix level 4 table 0x…, entry
/// 3 (at 0x…)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Location {
    /// An x86 zero page (`boot_params`).
    BootParams {
        /// Its physical address.
        addr: u64,
    },
    /// An x86 `setup_data` entry.
    SetupData {
        /// Its physical address.
        addr: u64,
        /// The zero page whose chain links it, when the decoder started
        /// there.
        boot_params: Option<u64>,
    },
    /// A boot DTB.
    Dtb {
        /// Its physical address.
        addr: u64,
    },
    /// The `/chosen` node of a boot DTB.
    Chosen {
        /// The DTB's physical address.
        dtb: u64,
    },
    /// The root KHO FDT.
    RootFdt {
        /// Its physical address.
        addr: u64,
        /// The byte in it the problem is about (physical `addr + offset`).
        offset: Option<u64>,
    },
    /// The scratch descriptor array as a whole.
    ScratchArray {
        /// Its physical address.
        addr: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// One entry of the scratch array.
    ScratchEntry {
        /// The entry's index.
        index: usize,
        /// The entry's physical address.
        addr: u64,
        /// The array's physical address.
        array: u64,
        /// The array's length in bytes.
        array_len: u64,
    },
    /// Two entries of the scratch array (they overlap).
    ScratchEntries {
        /// The first entry's index.
        first: usize,
        /// The second entry's index.
        second: usize,
        /// The array's physical address.
        array: u64,
        /// The array's length in bytes.
        array_len: u64,
    },
    /// kho-v1's chunk list as a whole.
    V1Map {
        /// Its first chunk's physical address.
        first: u64,
    },
    /// The preserved-memory radix tree as a whole.
    RadixTree {
        /// Its root table's physical address.
        root: u64,
    },
    /// One entry of a radix table.
    RadixEntry {
        /// The table's level (5 is the root, 1 points at leaves).
        level: u32,
        /// The table's physical address.
        table: u64,
        /// The entry's index in the table.
        index: usize,
        /// The entry's physical address.
        addr: u64,
    },
    /// One bit of a radix leaf (a bitmap of blocks).
    RadixLeafBit {
        /// The leaf's physical address.
        leaf: u64,
        /// The bit's index.
        bit: usize,
    },
    /// A radix node page: a table (levels 1 to 5) or a leaf (level 0).
    RadixNode {
        /// Its level.
        level: u32,
        /// Its physical address.
        addr: u64,
    },
    /// A run of the preserved set.
    PreservedRun {
        /// The order of its blocks.
        order: u32,
        /// Its first block's physical address.
        addr: u64,
        /// Bytes it covers.
        size: u64,
        /// Blocks in it.
        blocks: u64,
    },
    /// A subtree's blob (a child of the root FDT), or a part of it.
    Subtree {
        /// The child node's name.
        name: String,
        /// Its `preserved-data`.
        addr: u64,
        /// The part of the blob (`None`: the blob as a whole).
        part: Option<Part>,
    },
    /// The 2024 design's scratch region.
    ScratchRegion {
        /// Its first byte.
        addr: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// The 2024 design's mem cache as a whole.
    MemCache {
        /// Its physical address.
        addr: u64,
        /// Its size in bytes.
        len: u64,
    },
    /// One entry of the 2024 design's mem cache.
    MemCacheEntry {
        /// The entry's index.
        index: usize,
        /// The entry's physical address.
        addr: u64,
        /// The cache's physical address.
        cache: u64,
        /// The cache's size in bytes.
        cache_len: u64,
    },
    /// One entry of a `mem` property of a 2024-design tree.
    MemEntry {
        /// The FDT's physical address.
        fdt: u64,
        /// The entry's byte offset in it (physical `fdt + offset`).
        offset: u64,
        /// The path of the node holding it, where the walk got there.
        node: Option<String>,
    },
    /// The image as a whole (the `bytes` budget).
    Image,
    /// The report as a whole (the `problems` budget).
    Report,
    /// `--find`: a bound of the scan, by name (`root FDTs`, `device
    /// trees`, `boot structures`, `scan-bytes`, `decodes`).
    Scan {
        /// The bound.
        bound: &'static str,
    },
    /// `--find`: a range of the image's RAM.
    Ram {
        /// Its first physical address.
        addr: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// A place told in words. The decoder never reports one; it is for
    /// callers that build problems of their own (`"…".into()`).
    Text {
        /// The words.
        text: String,
    },
}

/// A part of a subtree's blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Part {
    /// `memblock`: a `reserve_mem` region.
    Region {
        /// Its `reserve_mem` name.
        name: String,
        /// Its first physical address.
        start: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// `kho-stub`: a folio record.
    Record {
        /// The record's index.
        index: usize,
    },
    /// `kho-stub`: the vmalloc descriptor in the blob's header.
    Vmalloc {
        /// Its byte offset in the blob.
        offset: u64,
        /// The chain's first chunk, as the descriptor names it.
        first: u64,
    },
    /// `kho_test`: the `folios_info` vmalloc descriptor.
    FoliosInfo,
    /// `kho_test`: an entry of the vmalloc'ed folio array.
    ArrayEntry {
        /// The entry's index.
        index: u64,
    },
    /// `kho_test`: a folio the array lists.
    Folio {
        /// The folio's index in the array.
        index: u64,
    },
}

impl Location {
    /// `name` at `addr`, the blob as a whole.
    pub fn subtree(name: &str, addr: u64) -> Location {
        Location::Subtree {
            name: String::from(name),
            addr,
            part: None,
        }
    }

    /// The same subtree, at `part`.
    pub fn at(&self, part: Part) -> Location {
        match self {
            Location::Subtree { name, addr, .. } => Location::Subtree {
                name: name.clone(),
                addr: *addr,
                part: Some(part),
            },
            other => other.clone(),
        }
    }

    /// The subtree this location is in: (name, `preserved-data`).
    fn in_subtree(&self) -> Option<(&str, u64)> {
        match self {
            Location::Subtree { name, addr, .. } => Some((name, *addr)),
            _ => None,
        }
    }
}

impl From<&str> for Location {
    fn from(text: &str) -> Location {
        Location::Text {
            text: String::from(text),
        }
    }
}

impl From<String> for Location {
    fn from(text: String) -> Location {
        Location::Text { text }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::BootParams { addr } => write!(f, "boot_params at {addr:#x}"),
            Location::SetupData { addr, boot_params } => {
                write!(f, "setup_data entry at {addr:#x}")?;
                match boot_params {
                    Some(bp) => write!(f, " (boot_params at {bp:#x})"),
                    None => Ok(()),
                }
            }
            Location::Dtb { addr } => write!(f, "DTB at {addr:#x}"),
            Location::Chosen { dtb } => write!(f, "/chosen of the DTB at {dtb:#x}"),
            Location::RootFdt { addr, offset } => {
                write!(f, "root FDT at {addr:#x}")?;
                match offset {
                    Some(off) => write!(
                        f,
                        ", byte offset {off:#x} (physical {:#x})",
                        addr.wrapping_add(*off)
                    ),
                    None => Ok(()),
                }
            }
            Location::ScratchArray { addr, len } => {
                write!(f, "scratch array at {addr:#x}+{len:#x}")
            }
            Location::ScratchEntry {
                index,
                addr,
                array,
                array_len,
            } => write!(
                f,
                "scratch entry {index} at {addr:#x} (scratch array at {array:#x}+{array_len:#x})"
            ),
            Location::ScratchEntries {
                first,
                second,
                array,
                array_len,
            } => write!(
                f,
                "scratch entries {first} and {second} (scratch array at {array:#x}+{array_len:#x})"
            ),
            Location::V1Map { first } => write!(f, "kho-v1 chunk list at {first:#x}"),
            Location::RadixTree { root } => write!(f, "radix tree at {root:#x}"),
            Location::RadixEntry {
                level,
                table,
                index,
                addr,
            } => write!(
                f,
                "radix level {level} table {table:#x}, entry {index} (at {addr:#x})"
            ),
            Location::RadixLeafBit { leaf, bit } => write!(f, "radix leaf {leaf:#x}, bit {bit}"),
            Location::RadixNode { level: 0, addr } => write!(f, "radix leaf {addr:#x}"),
            Location::RadixNode { level, addr } => write!(f, "radix level {level} table {addr:#x}"),
            Location::PreservedRun {
                order,
                addr,
                size,
                blocks,
            } => write!(
                f,
                "preserved run of {blocks} order-{order} block(s) at {addr:#x}+{size:#x}"
            ),
            Location::Subtree { name, addr, part } => {
                write!(f, "subtree {name:?} at {addr:#x}")?;
                match part {
                    None => Ok(()),
                    Some(Part::Region { name, start, size }) => {
                        write!(f, ", region {name:?} at {start:#x}+{size:#x}")
                    }
                    Some(Part::Record { index }) => write!(f, ", record {index}"),
                    Some(Part::Vmalloc { offset, first }) => write!(
                        f,
                        ", vmalloc descriptor at blob offset {offset} (first chunk {first:#x})"
                    ),
                    Some(Part::FoliosInfo) => f.write_str(", folios_info"),
                    Some(Part::ArrayEntry { index }) => write!(f, ", array entry {index}"),
                    Some(Part::Folio { index }) => write!(f, ", folio {index}"),
                }
            }
            Location::ScratchRegion { addr, size } => {
                write!(f, "scratch region {addr:#x}+{size:#x}")
            }
            Location::MemCache { addr, len } => write!(f, "mem cache at {addr:#x}+{len:#x}"),
            Location::MemCacheEntry {
                index,
                addr,
                cache,
                cache_len,
            } => write!(
                f,
                "mem cache entry {index} at {addr:#x} (mem cache at {cache:#x}+{cache_len:#x})"
            ),
            Location::MemEntry { fdt, offset, node } => {
                f.write_str("mem entry")?;
                if let Some(node) = node {
                    write!(f, " of node {node:?}")?;
                }
                write!(
                    f,
                    " (root FDT at {fdt:#x}, byte offset {offset:#x}, physical {:#x})",
                    fdt.wrapping_add(*offset)
                )
            }
            Location::Image => f.write_str("the image"),
            Location::Report => f.write_str("the report"),
            Location::Scan { bound } => write!(f, "the scan ({bound})"),
            Location::Ram { addr, len } => write!(f, "RAM {addr:#x}+{len:#x}"),
            Location::Text { text } => f.write_str(text),
        }
    }
}

/// The problems that stop the walk of the preserved-memory tree: after
/// one, the preserved set holds only the runs before it.
const WALK_STOPS: [&str; 10] = [
    "radix-root-misaligned",
    "radix-root-outside-image",
    "radix-unused-root-slot",
    "radix-misaligned-entry",
    "radix-entry-outside-image",
    "radix-cycle",
    "radix-shared-node",
    "radix-invalid-key",
    "radix-block-outside-image",
    "radix",
];

/// The checks made against the preserved set: each is a consequence of a
/// walk that stopped early (what it looks for may be in the part of the
/// tree that was not walked).
const PRESERVED_CHECKS: [&str; 6] = [
    "fdt-not-preserved",
    "subtree-not-preserved",
    "memblock-region-not-preserved",
    "kho-stub-record-not-preserved",
    "kho-test-folio-not-preserved",
    "vmalloc-not-preserved",
];

/// Whether `p` stopped the walk of the tree (a `radix-read` of a node
/// during the walk does; one while counting the nodes after it does not).
fn stops_walk(p: &Problem) -> bool {
    WALK_STOPS.contains(&p.code)
        || (p.code == "radix-read" && matches!(p.location, Location::RadixNode { .. }))
}

/// For each of `problems`, the index of the problem it follows from
/// (`None`: it is a cause). A problem follows from another when the report
/// can tell that the other made it happen:
///
/// - every check against the preserved set (`*-not-preserved`) follows
///   from the first problem that stopped the walk of the radix tree: the
///   set it checks against is cut short there;
/// - every other problem inside a subtree whose blob is not in the image
///   (`subtree-outside-image`) follows from that one: its content could
///   not be read.
pub fn follows_from(problems: &[Problem]) -> Vec<Option<usize>> {
    let walk = problems.iter().position(stops_walk);
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if PRESERVED_CHECKS.contains(&p.code)
                && let Some(w) = walk
            {
                return Some(w);
            }
            let subtree = p.location.in_subtree()?;
            problems
                .iter()
                .position(|q| {
                    q.code == "subtree-outside-image" && q.location.in_subtree() == Some(subtree)
                })
                .filter(|&q| q != i)
        })
        .collect()
}

/// `problems` with the causes first (in their order), then the
/// consequences (in theirs).
pub(crate) fn causes_first(problems: Vec<Problem>) -> Vec<Problem> {
    let follows = follows_from(&problems);
    let (causes, consequences): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .zip(follows)
        .partition(|(_, f)| f.is_none());
    causes
        .into_iter()
        .chain(consequences)
        .map(|(p, _)| p)
        .collect()
}

/// A problem as JSON lists it: its fields and `follows`, the index of the
/// problem it follows from in the same list (`null`: a cause).
#[derive(Serialize)]
struct Listed<'a> {
    code: &'static str,
    location: &'a Location,
    message: &'a str,
    follows: Option<usize>,
}

/// Serialize a list of problems with each one's `follows`.
pub(crate) fn serialize_problems<S: Serializer>(
    problems: &[Problem],
    s: S,
) -> Result<S::Ok, S::Error> {
    let follows = follows_from(problems);
    s.collect_seq(problems.iter().zip(follows).map(|(p, follows)| Listed {
        code: p.code,
        location: &p.location,
        message: &p.message,
        follows,
    }))
}

/// The image part of the output.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    /// The image's name as the caller gives it (a file name).
    pub file: String,
    /// ELF core or raw.
    pub format: Format,
    /// Its loaded ranges, by address.
    pub segments: Vec<Segment>,
}

impl ImageInfo {
    /// The part of `image` a report shows, under the name `file`.
    pub fn new<R: crate::ReadAt>(file: String, image: &crate::Image<R>) -> ImageInfo {
        ImageInfo {
            file,
            format: image.format(),
            segments: image.segments().to_vec(),
        }
    }
}

/// Everything one inspection from a known start prints.
#[derive(Clone, Debug, Serialize)]
pub struct Output {
    /// The image.
    pub image: ImageInfo,
    /// Where the decoder started.
    pub start: Start,
    /// What it found.
    #[serde(flatten)]
    pub report: Report,
}

/// Everything `--find` prints.
#[derive(Clone, Debug, Serialize)]
pub struct FindOutput {
    /// The image.
    pub image: ImageInfo,
    /// What the scan found and the handovers it decoded.
    #[serde(flatten)]
    pub found: Found,
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;

    fn problem(code: &'static str, location: Location) -> Problem {
        Problem {
            code,
            location,
            message: String::from("m"),
        }
    }

    #[test]
    fn checks_against_a_cut_set_follow_from_the_walk_problem() {
        let entry = Location::RadixEntry {
            level: 3,
            table: 0x1000,
            index: 2,
            addr: 0x1010,
        };
        let list = vec![
            problem("scratch-misaligned-entry", "scratch".into()),
            problem("radix-cycle", entry.clone()),
            problem("fdt-not-preserved", "fdt".into()),
            problem(
                "subtree-not-preserved",
                Location::subtree("memblock", 0x5000),
            ),
            problem("preserved-in-scratch", "run".into()),
        ];
        assert_eq!(follows_from(&list), [None, None, Some(1), Some(1), None]);
        let ordered = causes_first(list);
        let codes: Vec<_> = ordered.iter().map(|p| p.code).collect();
        assert_eq!(
            codes,
            [
                "scratch-misaligned-entry",
                "radix-cycle",
                "preserved-in-scratch",
                "fdt-not-preserved",
                "subtree-not-preserved"
            ]
        );
        assert_eq!(follows_from(&ordered), [None, None, None, Some(1), Some(1)]);
        // Without a walk problem the same checks are causes; a radix-read
        // while counting nodes (the walk was complete) stops nothing.
        let list = vec![
            problem("radix-read", Location::RadixTree { root: 0x1000 }),
            problem("fdt-not-preserved", "fdt".into()),
        ];
        assert_eq!(follows_from(&list), [None, None]);
    }

    #[test]
    fn a_blob_outside_the_image_is_the_cause_of_its_parts_problems() {
        let kho_stub = Location::subtree("kho-stub", 0x7000);
        let list = vec![
            problem("kho-stub-blob", kho_stub.clone()),
            problem(
                "kexec-metadata",
                Location::subtree("kexec-metadata", 0x7000),
            ),
            problem("subtree-outside-image", kho_stub.clone()),
            problem("vmalloc", kho_stub.at(Part::FoliosInfo)),
        ];
        assert_eq!(follows_from(&list), [Some(2), None, None, Some(2)]);
    }

    #[test]
    fn locations_read_as_before_in_text() {
        let cases = [
            (
                Location::RootFdt {
                    addr: 0x572000,
                    offset: Some(0x4c),
                },
                "root FDT at 0x572000, byte offset 0x4c (physical 0x57204c)",
            ),
            (
                Location::SetupData {
                    addr: 0x2000,
                    boot_params: Some(0x1000),
                },
                "setup_data entry at 0x2000 (boot_params at 0x1000)",
            ),
            (
                Location::ScratchEntry {
                    index: 1,
                    addr: 0x10,
                    array: 0,
                    array_len: 0x30,
                },
                "scratch entry 1 at 0x10 (scratch array at 0x0+0x30)",
            ),
            (
                Location::RadixNode {
                    level: 0,
                    addr: 0x9000,
                },
                "radix leaf 0x9000",
            ),
            (
                Location::subtree("kho-stub", 0x5000).at(Part::Vmalloc {
                    offset: 24,
                    first: 0x6000,
                }),
                "subtree \"kho-stub\" at 0x5000, vmalloc descriptor at blob offset 24 (first chunk 0x6000)",
            ),
            (Location::Scan { bound: "decodes" }, "the scan (decodes)"),
            (
                Location::MemEntry {
                    fdt: 0x1000,
                    offset: 0x60,
                    node: Some(String::from("/ftrace/cpu0")),
                },
                "mem entry of node \"/ftrace/cpu0\" (root FDT at 0x1000, byte offset 0x60, \
                 physical 0x1060)",
            ),
            (
                Location::MemCacheEntry {
                    index: 2,
                    addr: 0x8020,
                    cache: 0x8000,
                    cache_len: 0x50,
                },
                "mem cache entry 2 at 0x8020 (mem cache at 0x8000+0x50)",
            ),
            (
                Location::ScratchRegion {
                    addr: 0x4000_0000,
                    size: 0x20_0000,
                },
                "scratch region 0x40000000+0x200000",
            ),
        ];
        for (location, text) in cases {
            assert_eq!(location.to_string(), text);
        }
    }
}
