//! What `inspect` found, as data: the same structure is printed as text and
//! serialized as JSON (`--json`; addresses and sizes are JSON numbers).

use serde::Serialize;

/// Where the decoder started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "addr", rename_all = "kebab-case")]
pub(crate) enum Start {
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
pub(crate) struct Report {
    /// The handover as the arch handoff names it (`None` with `--fdt`).
    pub(crate) handover: Option<HandoverInfo>,
    /// The root `compatible`: `kho-v2`, `kho-v3` or `kho-v4`.
    pub(crate) abi_version: Option<String>,
    pub(crate) fdt: Option<FdtInfo>,
    /// `None`: not named by the start point (`--fdt`) or unreadable.
    pub(crate) scratch: Option<Vec<ScratchInfo>>,
    pub(crate) preserved: Option<Preserved>,
    pub(crate) subtrees: Vec<SubtreeInfo>,
    /// Every structural problem, in the order found.
    pub(crate) problems: Vec<Problem>,
}

/// What `kho_populate` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct HandoverInfo {
    pub(crate) fdt: u64,
    pub(crate) fdt_size: u64,
    pub(crate) scratch: u64,
    pub(crate) scratch_len: u64,
}

/// The root KHO FDT.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FdtInfo {
    pub(crate) addr: u64,
    /// The header's `totalsize` (0 if the header is unreadable).
    pub(crate) total_size: u64,
    /// `preserved-memory-map` (`None` if the FDT was refused).
    pub(crate) memory_map: Option<u64>,
    /// The canonical rendering (`kho_fdt::render`); for a refused FDT that
    /// is still a valid device tree, the plain rendering.
    pub(crate) rendered: Option<String>,
}

/// One scratch area from the descriptor array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ScratchInfo {
    pub(crate) index: usize,
    /// `lowmem`, `global` or `node N`: the role of its array position.
    pub(crate) kind: String,
    pub(crate) addr: u64,
    pub(crate) size: u64,
}

/// The preserved set, from the radix walk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Preserved {
    /// Whether the walk reached the end (false: it stopped at a problem,
    /// and the runs are those before it).
    pub(crate) complete: bool,
    /// Maximal runs of adjacent blocks of one order, in key order (highest
    /// order first, then ascending address), as `kho_radix::ranges` yields.
    pub(crate) runs: Vec<Run>,
    pub(crate) blocks: u64,
    pub(crate) pages: u64,
    pub(crate) bytes: u64,
    /// Node accounting (`None` if the walk did not complete).
    pub(crate) radix: Option<RadixNodes>,
}

/// A run of `blocks` adjacent blocks of `2^order` pages from `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Run {
    pub(crate) order: u32,
    pub(crate) addr: u64,
    pub(crate) size: u64,
    pub(crate) blocks: u64,
}

/// The radix tree's nodes (one page each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RadixNodes {
    pub(crate) root: u64,
    /// Table nodes, the root included.
    pub(crate) tables: u64,
    /// Leaf (bitmap) nodes.
    pub(crate) leaves: u64,
    pub(crate) bytes: u64,
}

/// One child of the root FDT.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SubtreeInfo {
    pub(crate) name: String,
    /// `preserved-data`.
    pub(crate) addr: u64,
    /// `blob-size`, if the node has one.
    pub(crate) size: Option<u64>,
    /// Byte offset of the node in the root FDT (`None` when read from a
    /// refused FDT).
    pub(crate) fdt_offset: Option<usize>,
    pub(crate) content: Content,
}

/// A subtree's blob, decoded where its format is known.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub(crate) enum Content {
    /// memblock's `memblock-v1` FDT: the `reserve_mem` regions.
    Memblock { regions: Vec<RegionInfo> },
    /// `struct kho_kexec_metadata`.
    KexecMetadata {
        version: u32,
        release: String,
        kexec_count: u32,
    },
    /// The kho-stub's blob (docs/HANDOVER.md, "The stub's blob").
    KhoStub {
        generation: u32,
        seed: u64,
        records: Vec<StubRecord>,
        vmalloc: Vmalloc,
    },
    /// lib/test_kho.c's `kho_test` sub-FDT and the folios its vmalloc'ed
    /// array lists.
    KhoTest {
        nr_folios: u32,
        csum: u32,
        folios: Vec<TestFolio>,
        vmalloc: Vmalloc,
    },
    /// A format `inspect` does not know: address and size only.
    Unknown,
    /// A known format that failed its checks (see the problems).
    Invalid,
}

/// A `reserve_mem` region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RegionInfo {
    pub(crate) name: String,
    pub(crate) start: u64,
    pub(crate) size: u64,
}

/// One folio of lib/test_kho.c (`phys | order` in its array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct TestFolio {
    pub(crate) phys: u64,
    pub(crate) order: u32,
}

/// One folio the stub preserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct StubRecord {
    pub(crate) phys: u64,
    pub(crate) order: u32,
    pub(crate) generation: u32,
    pub(crate) block: u32,
    pub(crate) checksum: u64,
    /// Blocks in the record (guest-memory extents; 1 for a folio).
    pub(crate) count: u32,
    /// log2 of the distance between the blocks, in blocks.
    pub(crate) spacing: u32,
}

/// The vmalloc area a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub(crate) enum Vmalloc {
    /// The descriptor is all zero.
    None,
    /// The chain passed every check.
    Area(VmallocInfo),
    /// The descriptor or its chain failed a check (see the problems).
    Invalid,
}

/// A vmalloc area restored (validated) from its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct VmallocInfo {
    /// The first chunk page.
    pub(crate) first: u64,
    pub(crate) total_pages: u32,
    pub(crate) flags: u16,
    pub(crate) order: u32,
    pub(crate) chunks: usize,
    pub(crate) blocks: usize,
}

/// A structural problem: a stable code, where it is, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    /// Kebab-case class, stable for scripts (e.g. `radix-cycle`).
    pub(crate) code: &'static str,
    /// Where: a physical address and the structure around it.
    pub(crate) location: String,
    /// The decoding crate's error text.
    pub(crate) message: String,
}
