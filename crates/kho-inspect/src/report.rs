//! What `inspect` found, as data: the same structure is printed as text
//! ([`crate::text`]) and serialized as JSON (`--json`, [`crate::json`];
//! addresses and sizes are JSON numbers).

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

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
    /// The root `compatible`: `kho-v2`, `kho-v3` or `kho-v4`.
    pub abi_version: Option<String>,
    /// The root KHO FDT.
    pub fdt: Option<FdtInfo>,
    /// `None`: not named by the start point (`--fdt`) or unreadable.
    pub scratch: Option<Vec<ScratchInfo>>,
    /// The preserved set (`None`: no usable `preserved-memory-map`).
    pub preserved: Option<Preserved>,
    /// The root FDT's children, in FDT order.
    pub subtrees: Vec<SubtreeInfo>,
    /// Every structural problem, in the order found.
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
    /// is still a valid device tree, the plain rendering.
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
    /// Node accounting (`None` if the walk did not complete).
    pub radix: Option<RadixNodes>,
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

/// A structural problem: a stable code, where it is, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Kebab-case class, stable for scripts (e.g. `radix-cycle`).
    pub code: &'static str,
    /// Where: a physical address and the structure around it.
    pub location: String,
    /// The decoding crate's error text.
    pub message: String,
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
