//! The decoder: from a start point in guest memory to a [`Report`], through
//! the same crates a kernel uses.
//!
//! The checks are `kho_populate`'s and `kho_memory_init`'s (kho, kho-fdt,
//! kho-scratch, kho-radix), then each client's retrieval (kho-memblock,
//! kho-vmalloc, `kexec-metadata`, the stub's blob). A kernel stops at the
//! first failure; the decoder goes on wherever the rest can still be read,
//! so one run lists every problem it can reach.
//!
//! Its work and memory follow the handover and stop at the [`Limits`]:
//! every read goes through a byte meter ([`Metered`]), the radix walk's
//! visited set grows only as the tree does, up to `nodes`, and the runs,
//! the blocks checked one by one and the problems listed each have their
//! bound. Past one, a `budget-exceeded` problem says which, and what was not
//! decoded.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Display;
use core::ops::ControlFlow;

use kho::Handover;
use kho::handoff::{dt, x86};
use kho_abi::PAGE_SIZE;
use kho_abi::fdt as fdt_abi;
use kho_abi::metadata::{self, KexecMetadata};
use kho_abi::radix::{ROOT_LEVEL, TABLE_ENTRIES};
use kho_abi::v1::BitmapSize;
use kho_abi::x86::{SETUP_KEXEC_KHO, SetupDataHeader};
use kho_bitmaps::IncomingMap;
use kho_fdt::KhoFdt;
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, ReadPolicy, ScratchArea, ScratchAreas};

use crate::Limits;
use crate::budget::Metered;
use crate::report::{
    Content, FdtInfo, HandoverInfo, Location, Part, Preserved, Problem, RadixNodes, RegionInfo,
    Report, Run, ScratchInfo, Start, StubRecord, SubtreeInfo, TestFolio, V1Map, Vmalloc,
    VmallocInfo, causes_first,
};
use crate::runs::RunSet;
use crate::stub_blob;

pub(crate) mod rfc2024;

const PAGE: u64 = PAGE_SIZE as u64;

/// Nodes the first radix walk may visit (1 << 14, 150 KiB of visited set);
/// eight times more for each retry of a larger tree, up to
/// [`Limits::nodes`], so the set stays within 8× the tree and the walks
/// before the last cost at most a seventh of it.
const FIRST_NODES: usize = 1 << 14;
/// Growth of the visited set between walks.
const NODES_GROWTH: usize = 8;
/// The problem code of every budget bound ([`Limits`]).
pub(crate) const BUDGET_EXCEEDED: &str = "budget-exceeded";
/// lib/test_kho.c's subtree: name, compatible, magic ("KHO!").
const KHO_TEST_NAME: &str = "kho_test";
const KHO_TEST_COMPATIBLE: &[u8] = b"kho-test-v1\0";
const KHO_TEST_MAGIC: u32 = 0x4b48_4f21;
/// The largest `kho_test` sub-FDT read (test_kho's is a few hundred bytes).
const MAX_KHO_TEST_FDT: u64 = 64 << 10;
/// The most folios a `kho_test` array may list (test_kho's 8 MiB of
/// order-0 folios is 2048): a bound on what a corrupt image can cost.
const MAX_KHO_TEST_FOLIOS: u32 = 1 << 20;
/// Largest boot DTB read from an image (Linux's limit for arm64 is 2 MiB).
const MAX_DTB: u64 = 2 << 20;
/// Largest stub blob read (the stub's records fit in a few pages).
const MAX_STUB_BLOB: u64 = 1 << 20;

/// Decode the handover reachable from `start` in `mem`, within the default
/// [`Limits`].
pub fn inspect<M: PhysMem>(mem: &M, start: Start) -> Report {
    inspect_with(mem, start, Limits::default())
}

/// Decode the handover reachable from `start` in `mem`, within `limits`
/// (its decoder budget: `nodes`, `runs`, `blocks`, `bytes`, `problems`).
pub fn inspect_with<M: PhysMem>(mem: &M, start: Start, limits: Limits) -> Report {
    let mut d = Decoder {
        mem: Metered::new(mem, limits.bytes),
        limits,
        report: Report::default(),
        unlisted: 0,
        checked_blocks: 0,
        exceeded: Vec::new(),
    };
    d.run(start);
    d.finish()
}

struct Decoder<'m, M> {
    mem: Metered<'m, M>,
    limits: Limits,
    report: Report,
    /// Problems found past [`Limits::problems`].
    unlisted: u64,
    /// Blocks checked one by one so far ([`Limits::blocks`]).
    checked_blocks: u64,
    /// The limits already reported (each once).
    exceeded: Vec<&'static str>,
}

impl<M: PhysMem> Decoder<'_, M> {
    /// Record a problem. After the byte budget refused a read, what fails
    /// is its consequence: the budget is reported instead, once. Past
    /// [`Limits::problems`] problems are only counted.
    fn problem(&mut self, code: &'static str, location: Location, message: impl Display) {
        if self.mem.refused() {
            self.bytes_exceeded();
            return;
        }
        if self.report.problems.len() >= self.limits.problems {
            self.unlisted = self.unlisted.saturating_add(1);
            return;
        }
        self.report.problems.push(Problem {
            code,
            location,
            message: message.to_string(),
        });
    }

    /// Record that `limit` stopped the decoder (once per limit; not counted
    /// against [`Limits::problems`]).
    fn exceeded(&mut self, limit: &'static str, location: Location, message: String) {
        if self.exceeded.contains(&limit) {
            return;
        }
        self.exceeded.push(limit);
        self.report.problems.push(Problem {
            code: BUDGET_EXCEEDED,
            location,
            message,
        });
    }

    fn bytes_exceeded(&mut self) {
        let n = self.limits.bytes;
        self.exceeded(
            "bytes",
            Location::Image,
            format!(
                "decoding would read more than {n:#x} bytes of the image (the `bytes` limit); \
                 the read past it was refused and what needed it is not decoded"
            ),
        );
    }

    /// Count one block checked on its own; `false` past [`Limits::blocks`]
    /// (reported once, at `at`).
    fn check_block(&mut self, at: &Location) -> bool {
        if self.checked_blocks >= self.limits.blocks {
            let n = self.limits.blocks;
            self.exceeded(
                "blocks",
                at.clone(),
                format!(
                    "more than {n} blocks to check one by one against the preserved set (the \
                     `blocks` limit); this and later blocks are not checked"
                ),
            );
            return false;
        }
        self.checked_blocks += 1;
        true
    }

    /// The report, with the budgets that stopped something, its problems
    /// causes first.
    fn finish(mut self) -> Report {
        if self.mem.refused() {
            self.bytes_exceeded();
        }
        if self.unlisted > 0 {
            let (n, listed) = (self.unlisted, self.limits.problems);
            self.exceeded(
                "problems",
                Location::Report,
                format!(
                    "{n} more problem{} found and not listed (the `problems` limit, {listed})",
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
        self.report.problems = causes_first(core::mem::take(&mut self.report.problems));
        self.report
    }

    fn run(&mut self, start: Start) {
        let handover = match start {
            Start::Fdt(addr) => Handover {
                fdt: PhysAddr::new(addr),
                fdt_size: PAGE,
                scratch: PhysAddr::ZERO,
                scratch_len: 0,
            },
            Start::X86BootParams(addr) => match self.x86_handover(addr) {
                Some(X86Kho::Kho(h)) => h,
                Some(X86Kho::Rfc2024 { entry }) => {
                    self.rfc2024_entry(entry, Some(addr));
                    return;
                }
                None => return,
            },
            Start::Dtb(addr) => match self.dt_handover(addr) {
                Some(h) => h,
                None => return,
            },
            Start::X86SetupData(addr) => match self.x86_entry_handover(addr) {
                Some(X86Kho::Kho(h)) => h,
                Some(X86Kho::Rfc2024 { entry }) => {
                    self.rfc2024_entry(entry, None);
                    return;
                }
                None => return,
            },
        };
        let scratch = if matches!(start, Start::Fdt(_)) {
            None
        } else {
            self.report.handover = Some(HandoverInfo {
                fdt: handover.fdt.as_u64(),
                fdt_size: handover.fdt_size,
                scratch: handover.scratch.as_u64(),
                scratch_len: handover.scratch_len,
            });
            self.scratch(handover.scratch, handover.scratch_len)
        };

        let Some(page) = self.fdt_page(handover) else {
            return;
        };
        let fdt = match KhoFdt::parse(&page) {
            Ok(fdt) => fdt,
            // From the FDT alone, a tree of the 2024 design (which has no
            // one-page limit) is decoded as one.
            Err(_) if matches!(start, Start::Fdt(_)) && rfc2024::looks_rfc2024(&page) => {
                self.rfc2024_fdt_alone(handover.fdt, &page);
                return;
            }
            Err(e) => {
                self.refused_fdt(handover.fdt, &page, &e);
                self.despite_refusal(&page, scratch.as_ref());
                return;
            }
        };
        self.report.abi_version = Some(fdt.version().to_string());
        self.report.fdt = Some(FdtInfo {
            addr: handover.fdt.as_u64(),
            total_size: fdt.total_size() as u64,
            memory_map: Some(fdt.memory_map().as_u64()),
            rendered: Some(fdt.render()),
        });

        // kho-v1's memory map is a chunk list of bitmaps, not a radix tree.
        let set = if fdt.version().uses_chunk_list() {
            self.preserved_v1(fdt.memory_map(), scratch.as_ref())
        } else {
            self.preserved(fdt.memory_map(), scratch.as_ref())
        };
        if let Some(set) = &set
            && !set.has_block(handover.fdt.as_u64(), 0)
        {
            self.problem(
                "fdt-not-preserved",
                Location::RootFdt {
                    addr: handover.fdt.as_u64(),
                    offset: None,
                },
                "the root FDT page is not preserved as an order-0 block",
            );
        }
        for subtree in fdt.subtrees() {
            let child = Child {
                name: subtree.name(),
                data: subtree.data(),
                size: subtree.size(),
                offset: Some(subtree.offset()),
            };
            let info = self.subtree(&child, set.as_ref());
            self.report.subtrees.push(info);
        }
    }

    // --- start points ------------------------------------------------------

    fn x86_handover(&mut self, addr: u64) -> Option<X86Kho> {
        let at = Location::BootParams { addr };
        let params = match x86::read_boot_params(&self.mem, PhysAddr::new(addr)) {
            Ok(p) => p,
            Err(e) => {
                self.problem("boot-params", at.clone(), e);
                return None;
            }
        };
        // As `find_kho` reads the chain, except that a 48-byte entry is the
        // 2024 design's.
        let found = x86::find_kho_entry(&self.mem, params.setup_data).and_then(|entry| {
            entry
                .map(|e| match e.len {
                    rfc2024::SETUP_DATA_LEN => Ok(X86Kho::Rfc2024 {
                        entry: e.at.as_u64(),
                    }),
                    _ => e.read_handover(&self.mem).map(X86Kho::Kho),
                })
                .transpose()
        });
        match found {
            Ok(Some(kho)) => Some(kho),
            Ok(None) => {
                self.problem(
                    "no-handover",
                    at.clone(),
                    format!(
                        "the setup_data chain (head {:#x}) has no KHO entry (type 10)",
                        params.setup_data
                    ),
                );
                None
            }
            Err(e) => {
                let code = "setup-data";
                let location = match &e {
                    kho::Error::BadSetupData { at: entry, .. } => Location::SetupData {
                        addr: entry.as_u64(),
                        boot_params: Some(addr),
                    },
                    _ => at,
                };
                self.problem(code, location, e);
                None
            }
        }
    }

    /// One `setup_data` entry that must be the KHO entry itself (its zero
    /// page unknown): read as `find_kho` reads the chain's KHO entry, or as
    /// the 2024 design's when its `len` is 48.
    fn x86_entry_handover(&mut self, addr: u64) -> Option<X86Kho> {
        let at = Location::SetupData {
            addr,
            boot_params: None,
        };
        let header = match self.mem.read_obj::<SetupDataHeader>(PhysAddr::new(addr)) {
            Ok(h) => h,
            Err(e) => {
                self.problem(
                    "setup-data",
                    at.clone(),
                    format_args!("cannot read the entry: {e}"),
                );
                return None;
            }
        };
        if header.type_.get() != SETUP_KEXEC_KHO {
            self.problem(
                "setup-data",
                at.clone(),
                format!(
                    "type {} is not the KHO entry (type {SETUP_KEXEC_KHO})",
                    header.type_.get()
                ),
            );
            return None;
        }
        if header.len.get() == rfc2024::SETUP_DATA_LEN {
            return Some(X86Kho::Rfc2024 { entry: addr });
        }
        match x86::find_kho(&self.mem, addr) {
            Ok(Some(h)) => Some(X86Kho::Kho(h)),
            Ok(None) => {
                self.problem("no-handover", at.clone(), "the entry is not a KHO entry");
                None
            }
            Err(e) => {
                self.problem("setup-data", at.clone(), e);
                None
            }
        }
    }

    fn dt_handover(&mut self, addr: u64) -> Option<Handover> {
        let at = Location::Dtb { addr };
        let mut head = [0u8; 8];
        if let Err(e) = self.mem.read(PhysAddr::new(addr), &mut head) {
            self.problem(
                "dtb",
                at.clone(),
                format_args!("cannot read the DTB header: {e}"),
            );
            return None;
        }
        let total = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
        if !(8..=MAX_DTB).contains(&total) {
            self.problem(
                "dtb",
                at.clone(),
                format!("DTB totalsize {total:#x} (offset 0x4) is not between 8 and {MAX_DTB:#x}"),
            );
            return None;
        }
        let mut blob = vec![0u8; total as usize];
        if let Err(e) = self.mem.read(PhysAddr::new(addr), &mut blob) {
            self.problem(
                "dtb",
                at.clone(),
                format!("cannot read the {total:#x}-byte DTB: {e}"),
            );
            return None;
        }
        match dt::read_chosen(&blob) {
            Ok(Some(h)) => Some(h),
            Ok(None) => {
                self.problem(
                    "no-handover",
                    at.clone(),
                    "/chosen has neither linux,kho-fdt nor linux,kho-scratch",
                );
                None
            }
            Err(kho::Error::Fdt(e)) => {
                self.problem("dtb", at.clone(), e);
                None
            }
            Err(e) => {
                self.problem("chosen", Location::Chosen { dtb: addr }, e);
                None
            }
        }
    }

    // --- root FDT ----------------------------------------------------------

    /// The FDT mapping `kho_populate` makes: one page of RAM at most.
    fn fdt_page(&mut self, h: Handover) -> Option<Vec<u8>> {
        let at = Location::RootFdt {
            addr: h.fdt.as_u64(),
            offset: None,
        };
        if h.fdt_size == 0 || h.fdt_size > PAGE || !self.mem.is_ram(h.fdt, h.fdt_size) {
            let e = kho::Error::BadFdtMapping {
                addr: h.fdt,
                size: h.fdt_size,
            };
            self.problem("fdt-outside-image", at.clone(), e);
            return None;
        }
        let mut page = vec![0u8; h.fdt_size as usize];
        if let Err(e) = self.mem.read(h.fdt, &mut page) {
            self.problem("fdt-outside-image", at.clone(), e);
            return None;
        }
        Some(page)
    }

    fn refused_fdt(&mut self, addr: PhysAddr, page: &[u8], e: &kho_fdt::Error) {
        let total = page
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_be_bytes(b)));
        let location = Location::RootFdt {
            addr: addr.as_u64(),
            offset: fdt_error_offset(e).map(|off| off as u64),
        };
        self.problem(fdt_error_code(e), location, e);
        self.report.fdt = Some(FdtInfo {
            addr: addr.as_u64(),
            total_size: total,
            memory_map: None,
            rendered: kho_fdt::render_blob(page).ok(),
        });
    }

    /// After a refused root FDT that is still a device tree with a usable
    /// `preserved-memory-map`: walk the tree and decode the known subtrees
    /// anyway (a kernel would stop; a debugger wants the rest too).
    fn despite_refusal(&mut self, page: &[u8], scratch: Option<&ScratchAreas>) {
        let Ok(dtb) = kho_fdt::dtb::Dtb::parse(page) else {
            return;
        };
        let le64 = |v: &[u8]| <[u8; 8]>::try_from(v).ok().map(u64::from_le_bytes);
        let Some(root) = dtb
            .property("/", fdt_abi::PROP_PRESERVED_MEMORY_MAP)
            .and_then(le64)
            .filter(|&r| r != 0 && r.is_multiple_of(PAGE))
        else {
            return;
        };
        if let Some(fdt) = self.report.fdt.as_mut() {
            fdt.memory_map = Some(root);
        }
        let set = self.preserved(PhysAddr::new(root), scratch);
        let known = [
            kho_abi::memblock::SUBTREE_NAME,
            stub_blob::SUBTREE_NAME,
            metadata::SUBTREE_NAME,
        ];
        for name in known {
            let node = format!("/{name}");
            let Some(data) = dtb
                .property(&node, fdt_abi::PROP_PRESERVED_DATA)
                .and_then(le64)
                .filter(|&d| d != 0)
            else {
                continue;
            };
            let child = Child {
                name,
                data: PhysAddr::new(data),
                size: dtb.property(&node, fdt_abi::PROP_BLOB_SIZE).and_then(le64),
                offset: None,
            };
            let info = self.subtree(&child, set.as_ref());
            self.report.subtrees.push(info);
        }
    }

    // --- scratch -----------------------------------------------------------

    /// The scratch array, read as `kho_populate` does; when it is refused,
    /// each entry is checked on its own so that every bad entry is listed
    /// and the good ones still count for the overlap checks.
    fn scratch(&mut self, at: PhysAddr, len: u64) -> Option<ScratchAreas> {
        let areas = match ScratchAreas::read_array(&self.mem, at, len, ReadPolicy::LINUX) {
            Ok(areas) => areas,
            Err(e) => self.scratch_entries(at, len, e)?,
        };
        self.report.scratch = Some(
            areas
                .iter()
                .enumerate()
                .map(|(index, a)| ScratchInfo {
                    index,
                    kind: a.kind.to_string(),
                    addr: a.range.start().as_u64(),
                    size: a.range.size(),
                })
                .collect(),
        );
        Some(areas)
    }

    fn scratch_entries(
        &mut self,
        at: PhysAddr,
        len: u64,
        first: kho_scratch::Error,
    ) -> Option<ScratchAreas> {
        let array = Location::ScratchArray {
            addr: at.as_u64(),
            len,
        };
        let entry_len = kho_scratch::array_byte_len(1);
        let whole_array_bad = matches!(
            first,
            kho_scratch::Error::ArrayLength { .. }
                | kho_scratch::Error::TooManyEntries { .. }
                | kho_scratch::Error::ArrayNotRam { .. }
        );
        if whole_array_bad {
            self.problem("scratch-array", array, first);
            return None;
        }
        let mut areas = ScratchAreas::new();
        let mut good: Vec<(usize, ScratchArea)> = Vec::new();
        // The length passed read_array's checks: at most MAX_AREAS entries,
        // all inside the address space.
        let entries = (len / entry_len).min(kho_scratch::MAX_AREAS as u64) as usize;
        for index in 0..entries {
            let Some(entry_at) = at.checked_add(index as u64 * entry_len) else {
                break;
            };
            let location = Location::ScratchEntry {
                index,
                addr: entry_at.as_u64(),
                array: at.as_u64(),
                array_len: len,
            };
            match ScratchAreas::read_array(&self.mem, entry_at, entry_len, ReadPolicy::LINUX) {
                Ok(one) => {
                    if let Some(area) = one.iter().next() {
                        let area = ScratchArea {
                            kind: AreaKind::from_index(index),
                            range: area.range,
                        };
                        good.push((index, area));
                    }
                }
                Err(e) => {
                    let e = reindex(e, index);
                    self.problem(scratch_error_code(&e), location, e);
                }
            }
        }
        for (i, (first, a)) in good.iter().enumerate() {
            for (second, b) in good.iter().skip(i + 1) {
                if a.range.overlaps(b.range) {
                    let e = kho_scratch::Error::EntriesOverlap {
                        first: *first,
                        second: *second,
                    };
                    self.problem(
                        "scratch-overlap",
                        Location::ScratchEntries {
                            first: *first,
                            second: *second,
                            array: at.as_u64(),
                            array_len: len,
                        },
                        e,
                    );
                }
            }
        }
        for (_, area) in good {
            // At most MAX_AREAS entries passed the length check.
            let _ = areas.push(area);
        }
        Some(areas)
    }

    // --- preserved memory --------------------------------------------------

    /// Walk the radix tree from `root` (kho-radix's validating walk), check
    /// the runs against scratch, count the nodes. `None` when the walk was
    /// stopped by the budget: a set cut short would make every later
    /// "is it preserved?" check a false alarm.
    fn preserved(&mut self, root: PhysAddr, scratch: Option<&ScratchAreas>) -> Option<RunSet> {
        let walk = self.walk(root);
        let runs = walk.runs;
        let mut preserved = Preserved {
            complete: walk.end == WalkEnd::Complete,
            blocks: saturating_sum(runs.iter().map(|r| r.blocks)),
            pages: saturating_sum(runs.iter().map(|r| r.size / PAGE)),
            bytes: saturating_sum(runs.iter().map(|r| r.size)),
            ..Preserved::default()
        };
        let tree = Location::RadixTree {
            root: root.as_u64(),
        };
        match &walk.end {
            WalkEnd::Complete => {}
            WalkEnd::Error(e) => {
                self.problem(radix_error_code(e), radix_error_location(e, root), e)
            }
            WalkEnd::Nodes => {
                let n = self.limits.nodes;
                self.exceeded(
                    "nodes",
                    tree.clone(),
                    format!(
                        "the tree has more than {n} nodes (the `nodes` limit); the walk stopped \
                         there: the runs after it, the node count and the preservation checks \
                         of the subtrees are not decoded"
                    ),
                );
            }
            WalkEnd::Runs => {
                let n = self.limits.runs;
                self.exceeded(
                    "runs",
                    tree.clone(),
                    format!(
                        "the preserved set has more than {n} runs (the `runs` limit); the \
                         first {n} are listed, the rest of the tree, the node count and the \
                         preservation checks of the subtrees are not decoded"
                    ),
                );
            }
        }
        if let Some(areas) = scratch {
            self.runs_in_scratch(&runs, areas);
        }
        if walk.end == WalkEnd::Complete {
            match count_nodes(&self.mem, root, walk.nodes) {
                Ok(nodes) => {
                    if let Some(areas) = scratch {
                        self.nodes_in_scratch(&nodes, areas);
                    }
                    let (tables, leaves) = (nodes.tables.len() as u64, nodes.leaves.len() as u64);
                    preserved.radix = Some(RadixNodes {
                        root: root.as_u64(),
                        tables,
                        leaves,
                        bytes: tables.saturating_add(leaves).saturating_mul(PAGE),
                    });
                }
                Err(e) => self.problem("radix-read", tree, e),
            }
        }
        let budget_stopped = matches!(walk.end, WalkEnd::Nodes | WalkEnd::Runs);
        let set = (!budget_stopped).then(|| RunSet::new(&runs));
        preserved.runs = runs;
        self.report.preserved = Some(preserved);
        set
    }

    /// kho-v1's preserved set: the chunk list validated by kho-bitmaps
    /// (read with page bitmaps, then with 512-byte ones: nothing in the
    /// handover says which the previous kernel used), its blocks coalesced
    /// into runs within the `runs` limit, and its pages (which are not
    /// preserved) checked against scratch. The `nodes` limit bounds the
    /// list's pages.
    fn preserved_v1(&mut self, first: PhysAddr, scratch: Option<&ScratchAreas>) -> Option<RunSet> {
        let at = Location::V1Map {
            first: first.as_u64(),
        };
        let words = IncomingMap::words_for(self.limits.nodes.min(usize::MAX / 4));
        let mut buf = Vec::new();
        if buf.try_reserve_exact(words).is_err() {
            self.exceeded(
                "nodes",
                at,
                "no memory for the chunk list's page records: the map is not decoded".to_owned(),
            );
            return None;
        }
        buf.resize(words, 0u64);
        let page =
            IncomingMap::validate(&self.mem, first, BitmapSize::Page, &mut buf).map(|m| m.blocks());
        let small = IncomingMap::validate(&self.mem, first, BitmapSize::Bytes512, &mut buf)
            .map(|m| m.blocks());
        let (size, known) = match (page, small) {
            (Ok(a), Ok(b)) if a == b => (BitmapSize::Page, false),
            (Ok(a), Ok(b)) => {
                self.problem(
                    "v1-bitmap-size",
                    at.clone(),
                    format!(
                        "the chunk list validates with both bitmap sizes but the sets differ: \
                         page-sized bitmaps (Linux 6.17.9 on) give {a} blocks, 512-byte ones \
                         (6.16 to 6.17.8) {b}; decoded with page-sized bitmaps"
                    ),
                );
                (BitmapSize::Page, true)
            }
            (Ok(_), Err(_)) => (BitmapSize::Page, true),
            (Err(_), Ok(_)) => (BitmapSize::Bytes512, true),
            (Err(page_err), Err(small_err)) => {
                self.v1_map_problem(at, &page_err, &small_err);
                return None;
            }
        };
        // Validated again with the size that won (the list is known good,
        // and the buffer's page records are then that size's).
        let Ok(list) = IncomingMap::validate(&self.mem, first, size, &mut buf) else {
            return None;
        };
        let max_runs = self.limits.runs;
        let mut runs = Vec::new();
        let mut complete = true;
        let walked = list.for_each_range(&self.mem, |r| {
            if runs.len() >= max_runs {
                complete = false;
                return ControlFlow::Break(());
            }
            runs.push(Run {
                order: r.order().get(),
                addr: r.range().start().as_u64(),
                size: r.range().size(),
                blocks: r.blocks(),
            });
            ControlFlow::Continue(())
        });
        let info = V1Map {
            first: first.as_u64(),
            bitmap_bytes: known.then(|| list.bitmap_size().bytes()),
            chunks: list.chunks() as u64,
            bitmaps: list.bitmaps() as u64,
        };
        let pages: Vec<PhysRange> = list.metadata().collect();
        if let Err(e) = walked {
            // The list validated a moment ago: only a changed image gets here.
            self.problem("v1-map", at.clone(), e);
            complete = false;
        }
        if !complete && runs.len() >= self.limits.runs {
            let n = self.limits.runs;
            self.exceeded(
                "runs",
                at.clone(),
                format!(
                    "the preserved set has more than {n} runs (the `runs` limit); the first \
                     {n} are listed, the rest and the preservation checks of the subtrees are \
                     not decoded"
                ),
            );
        }
        if let Some(areas) = scratch {
            self.runs_in_scratch(&runs, areas);
            for page in &pages {
                if let Err(e) = kho_scratch::check_no_overlap(areas, [*page]) {
                    self.problem(
                        "v1-map-in-scratch",
                        Location::V1Map {
                            first: first.as_u64(),
                        },
                        format!(
                            "the chunk-list page or bitmap at {:#x}+{:#x} lies in scratch, \
                             which the next kernel allocates from before it reads the map: {e}",
                            page.start().as_u64(),
                            page.size()
                        ),
                    );
                }
            }
        }
        let set = complete.then(|| RunSet::new(&runs));
        self.report.preserved = Some(Preserved {
            complete,
            blocks: saturating_sum(runs.iter().map(|r| r.blocks)),
            pages: saturating_sum(runs.iter().map(|r| r.size / PAGE)),
            bytes: saturating_sum(runs.iter().map(|r| r.size)),
            runs,
            radix: None,
            v1_map: Some(info),
        });
        set
    }

    /// A kho-v1 chunk list that validates with neither bitmap size.
    fn v1_map_problem(
        &mut self,
        at: Location,
        page_err: &kho_bitmaps::Error,
        small_err: &kho_bitmaps::Error,
    ) {
        if let kho_bitmaps::Error::TooManyPages { capacity } = page_err {
            self.exceeded(
                "nodes",
                at,
                format!(
                    "the chunk list has more pages than the `nodes` limit allows ({capacity} \
                     page records); the map is not decoded"
                ),
            );
            return;
        }
        self.problem(
            "v1-map",
            at,
            format!(
                "{page_err} (read with page-sized bitmaps, as Linux 6.17.9 on writes them; \
                 read with 512-byte bitmaps, as 6.16 to 6.17.8 did: {small_err})"
            ),
        );
    }

    /// A problem for every run that overlaps scratch.
    fn runs_in_scratch(&mut self, runs: &[Run], areas: &ScratchAreas) {
        for run in runs {
            let Ok(range) = PhysRange::try_new(PhysAddr::new(run.addr), run.size) else {
                continue;
            };
            if let Err(e) = kho_scratch::check_no_overlap(areas, [range]) {
                self.problem(
                    "preserved-in-scratch",
                    Location::PreservedRun {
                        order: run.order,
                        addr: run.addr,
                        size: run.size,
                        blocks: run.blocks,
                    },
                    e,
                );
            }
        }
    }

    /// kho-radix's validating walk, coalesced into runs, within the `nodes`
    /// and `runs` limits: the visited set starts small and grows eightfold
    /// (a new walk each time) while the tree outgrows it.
    fn walk(&mut self, root: PhysAddr) -> Walk {
        // A visited set's words must fit a usize (any larger fails to
        // allocate below and ends the walk at the budget).
        let limit = self.limits.nodes.min(usize::MAX / 2);
        let mut capacity = FIRST_NODES.min(limit);
        loop {
            let mut buf = Vec::new();
            let words = VisitedSet::words_for(capacity);
            if buf.try_reserve_exact(words).is_err() {
                // No memory for a set this large: the budget ends here.
                return Walk {
                    runs: Vec::new(),
                    end: WalkEnd::Nodes,
                    nodes: 0,
                };
            }
            buf.resize(words, 0u64);
            let mut visited = VisitedSet::new(&mut buf);
            let mut runs = Vec::new();
            let mut end = WalkEnd::Complete;
            for item in kho_radix::ranges(&self.mem, root, &mut visited) {
                match item {
                    Ok(_) if runs.len() >= self.limits.runs => {
                        end = WalkEnd::Runs;
                        break;
                    }
                    Ok(r) => runs.push(Run {
                        order: r.order().get(),
                        addr: r.range().start().as_u64(),
                        size: r.range().size(),
                        blocks: r.blocks(),
                    }),
                    Err(kho_radix::Error::VisitedSetFull { .. }) => end = WalkEnd::Nodes,
                    Err(e) => end = WalkEnd::Error(e),
                }
            }
            if end == WalkEnd::Nodes && capacity < limit {
                capacity = capacity.saturating_mul(NODES_GROWTH).min(limit);
                continue;
            }
            return Walk {
                runs,
                end,
                nodes: visited.len(),
            };
        }
    }

    /// Radix nodes are not preserved: the next kernel keeps them only
    /// because it allocates from scratch alone until the walk is done.
    fn nodes_in_scratch(&mut self, nodes: &Nodes, areas: &ScratchAreas) {
        let all = nodes
            .tables
            .iter()
            .copied()
            .chain(nodes.leaves.iter().map(|&n| (n, 0)));
        for (node, level) in all {
            let Ok(range) = PhysRange::try_new(PhysAddr::new(node), PAGE) else {
                continue;
            };
            if let Some((index, area)) = areas.overlapping(range) {
                self.problem(
                    "radix-node-in-scratch",
                    Location::RadixNode { level, addr: node },
                    format!(
                        "the node lies in scratch area {index} ({}+{:#x}), which the next \
                         kernel allocates from before it walks the tree",
                        area.range.start(),
                        area.range.size()
                    ),
                );
            }
        }
    }

    // --- subtrees ----------------------------------------------------------

    fn subtree(&mut self, s: &Child<'_>, set: Option<&RunSet>) -> SubtreeInfo {
        let name = s.name;
        let addr = s.data.as_u64();
        let at = Location::subtree(name, addr);
        let content = match name {
            kho_abi::memblock::SUBTREE_NAME => self.memblock(s, &at, set),
            metadata::SUBTREE_NAME => self.metadata(s, &at),
            stub_blob::SUBTREE_NAME => self.stub_blob(s, &at, set),
            KHO_TEST_NAME => self.kho_test(s, &at, set),
            _ => Content::Unknown,
        };
        // The blob's own pages must be preserved (by its client): without
        // blob-size, at least its first page.
        let len = s.size.unwrap_or(1).max(1);
        match PhysRange::try_new(s.data, len) {
            Ok(range) if self.mem.is_ram(s.data, len) => {
                if let Some(missing) = set.and_then(|set| set.first_uncovered(range)) {
                    self.problem(
                        "subtree-not-preserved",
                        at.clone(),
                        format!(
                            "the blob's page at {missing:#x} is not in the preserved set \
                             (each client preserves its blob)"
                        ),
                    );
                }
            }
            _ => self.problem(
                "subtree-outside-image",
                at.clone(),
                format!("the blob [{addr:#x}, +{len:#x}) is not in the image"),
            ),
        }
        SubtreeInfo {
            name: name.to_owned(),
            addr,
            size: s.size,
            fdt_offset: s.offset,
            content,
        }
    }

    fn memblock(&mut self, s: &Child<'_>, at: &Location, set: Option<&RunSet>) -> Content {
        let mut buf = [0u8; PAGE_SIZE];
        let fdt = match kho_memblock::retrieve(&self.mem, s.data, s.size, &mut buf) {
            Ok(fdt) => fdt,
            Err(e) => {
                self.problem("memblock", at.clone(), e);
                return Content::Invalid;
            }
        };
        let regions: Vec<RegionInfo> = fdt
            .regions()
            .map(|r| RegionInfo {
                name: r.name().to_owned(),
                start: r.start().as_u64(),
                size: r.size(),
            })
            .collect();
        if let Some(set) = set {
            for r in &regions {
                let page_start = r.start & !(PAGE - 1);
                let span = (r.start - page_start).saturating_add(r.size);
                let Ok(range) = PhysRange::try_new(PhysAddr::new(page_start), span) else {
                    continue;
                };
                if let Some(missing) = set.first_uncovered(range) {
                    self.problem(
                        "memblock-region-not-preserved",
                        at.at(Part::Region {
                            name: r.name.clone(),
                            start: r.start,
                            size: r.size,
                        }),
                        format!("the region's page at {missing:#x} is not in the preserved set"),
                    );
                }
            }
        }
        Content::Memblock { regions }
    }

    /// `kexec-metadata`, with the reader's checks (blob-size present and
    /// large enough, version 1).
    fn metadata(&mut self, s: &Child<'_>, at: &Location) -> Content {
        let bad = |reason| kho::Error::BadMetadata { reason };
        let Some(size) = s.size else {
            self.problem("kexec-metadata", at.clone(), bad("no blob-size"));
            return Content::Invalid;
        };
        if size < metadata::MIN_SIZE_FOR_VERSION as u64 {
            self.problem(
                "kexec-metadata",
                at.clone(),
                bad("blob smaller than its version field"),
            );
            return Content::Invalid;
        }
        let version = match self.mem.read_obj::<kho_abi::Le32>(s.data) {
            Ok(v) => v.get(),
            Err(e) => {
                self.problem("kexec-metadata", at.clone(), e);
                return Content::Invalid;
            }
        };
        if version != metadata::VERSION {
            self.problem(
                "kexec-metadata",
                at.clone(),
                format!("{} (version {version})", bad("unknown version")),
            );
            return Content::Invalid;
        }
        if size < size_of::<KexecMetadata>() as u64 {
            self.problem(
                "kexec-metadata",
                at.clone(),
                bad("blob shorter than version 1"),
            );
            return Content::Invalid;
        }
        match self.mem.read_obj::<KexecMetadata>(s.data) {
            Ok(m) => Content::KexecMetadata {
                version,
                release: String::from_utf8_lossy(m.release_bytes()).into_owned(),
                kexec_count: m.kexec_count.get(),
            },
            Err(e) => {
                self.problem("kexec-metadata", at.clone(), e);
                Content::Invalid
            }
        }
    }

    /// lib/test_kho.c's sub-FDT (compatible, magic, `data` with
    /// `nr_folios`, `folios_info`, `csum` of exactly 4, 16 and 4 bytes), the
    /// vmalloc'ed array its descriptor names (restored by kho-vmalloc
    /// against the preserved set) and every folio the array lists, each of
    /// which must be a preserved block of its recorded order.
    fn kho_test(&mut self, s: &Child<'_>, at: &Location, set: Option<&RunSet>) -> Content {
        const CODE: &str = "kho-test";
        let Some(size) = s.size.filter(|&n| (8..=MAX_KHO_TEST_FDT).contains(&n)) else {
            self.problem(
                CODE,
                at.clone(),
                format!(
                    "blob-size {:?} is missing or out of 8..={MAX_KHO_TEST_FDT}",
                    s.size
                ),
            );
            return Content::Invalid;
        };
        let mut bytes = vec![0u8; size as usize];
        if let Err(e) = self.mem.read(s.data, &mut bytes) {
            self.problem(CODE, at.clone(), e);
            return Content::Invalid;
        }
        let dtb = match kho_fdt::dtb::Dtb::parse(&bytes) {
            Ok(d) => d,
            Err(e) => {
                self.problem(CODE, at.clone(), e);
                return Content::Invalid;
            }
        };
        let prop = |path: &str, name: &str, len: usize| {
            dtb.property(path, name).filter(|v| v.len() == len)
        };
        let u32_le = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(u32::from_le_bytes);
        if dtb.property("/", "compatible") != Some(KHO_TEST_COMPATIBLE) {
            self.problem(CODE, at.clone(), "root compatible is not \"kho-test-v1\"");
            return Content::Invalid;
        }
        if prop("/", "magic", 4).and_then(u32_le) != Some(KHO_TEST_MAGIC) {
            self.problem(CODE, at.clone(), "magic is not 0x4b484f21");
            return Content::Invalid;
        }
        let (Some(nr), Some(info), Some(csum)) = (
            prop("/data", "nr_folios", 4).and_then(u32_le),
            prop("/data", "folios_info", 16),
            prop("/data", "csum", 4).and_then(u32_le),
        ) else {
            self.problem(
                CODE,
                at.clone(),
                "node data lacks nr_folios (4 bytes), folios_info (16) or csum (4)",
            );
            return Content::Invalid;
        };
        let Ok(desc) =
            <kho_abi::vmalloc::VmallocDescriptor as zerocopy::FromBytes>::read_from_bytes(info)
        else {
            self.problem(
                CODE,
                at.clone(),
                "folios_info is not a kho_vmalloc descriptor",
            );
            return Content::Invalid;
        };
        if nr > MAX_KHO_TEST_FOLIOS {
            self.problem(
                CODE,
                at.clone(),
                format!("nr_folios {nr} is more than {MAX_KHO_TEST_FOLIOS}"),
            );
            return Content::Invalid;
        }
        let area = match kho_vmalloc::restore_vmalloc_checked(&self.mem, &desc, |p, o| {
            set.is_none_or(|set| set.has_block(p.as_u64(), o.get()))
        }) {
            Ok(area) => area,
            Err(e) => {
                self.problem(vmalloc_error_code(&e), at.at(Part::FoliosInfo), e);
                return Content::KhoTest {
                    nr_folios: nr,
                    csum,
                    folios: Vec::new(),
                    vmalloc: Vmalloc::Invalid,
                };
            }
        };
        let total_pages = u64::from(area.total_pages());
        // nr ≤ MAX_KHO_TEST_FOLIOS: the array's bytes fit easily.
        let array_bytes = u64::from(nr) * 8;
        if array_bytes > total_pages.saturating_mul(PAGE) {
            self.problem(
                CODE,
                at.clone(),
                format!("{nr} folios do not fit the array's {total_pages} pages"),
            );
            return Content::Invalid;
        }
        // Only the pages the folios are in (an area may claim 2^32 pages).
        let needed = array_bytes.div_ceil(PAGE) as usize;
        let pages: Vec<PhysAddr> = area
            .iter_pages(&self.mem)
            .take(needed)
            .filter_map(Result::ok)
            .collect();
        let mut folios = Vec::with_capacity(nr as usize);
        for i in 0..u64::from(nr) {
            let entry = pages
                .get((i * 8 / PAGE) as usize)
                .and_then(|page| page.checked_add(i * 8 % PAGE));
            let read = match entry {
                Some(entry) => self.mem.read_u64(entry),
                None => Err(kho_mem::Error::NotRam {
                    addr: area.first().as_u64(),
                    len: array_bytes,
                }),
            };
            let value = match read {
                Ok(v) => v,
                Err(e) => {
                    self.problem(CODE, at.at(Part::ArrayEntry { index: i }), e);
                    return Content::Invalid;
                }
            };
            let folio = TestFolio {
                phys: value & !(PAGE - 1),
                order: (value & (PAGE - 1)) as u32,
            };
            if let Some(set) = set
                && self.check_block(at)
                && !set.has_block(folio.phys, folio.order)
            {
                self.problem(
                    "kho-test-folio-not-preserved",
                    at.at(Part::Folio { index: i }),
                    format!(
                        "folio {:#x} of order {} is not a preserved block of that order",
                        folio.phys, folio.order
                    ),
                );
            }
            folios.push(folio);
        }
        Content::KhoTest {
            nr_folios: nr,
            csum,
            folios,
            vmalloc: Vmalloc::Area(VmallocInfo {
                first: area.first().as_u64(),
                total_pages: area.total_pages(),
                flags: area.flags(),
                order: area.order().get(),
                chunks: area.chunks(),
                blocks: area.blocks(),
            }),
        }
    }

    /// The stub's blob: header, records, and the vmalloc area its
    /// descriptor names (restored by kho-vmalloc against the preserved set).
    fn stub_blob(&mut self, s: &Child<'_>, at: &Location, set: Option<&RunSet>) -> Content {
        let size = match s.size {
            Some(size) => size,
            // No blob-size: the header says how many records follow.
            None => match self.mem.read_obj::<stub_blob::Header>(s.data) {
                // In u64: a count of 2^32 - 1 must not overflow a 32-bit usize.
                Ok(h) => {
                    let record = size_of::<stub_blob::Record>() as u64;
                    size_of::<stub_blob::Header>() as u64 + u64::from(h.count.get()) * record
                }
                Err(e) => {
                    self.problem("kho-stub-blob", at.clone(), e);
                    return Content::Invalid;
                }
            },
        };
        if size > MAX_STUB_BLOB {
            self.problem(
                "kho-stub-blob",
                at.clone(),
                format!("blob size {size:#x} is larger than {MAX_STUB_BLOB:#x}"),
            );
            return Content::Invalid;
        }
        let mut bytes = vec![0u8; size as usize];
        if let Err(e) = self.mem.read(s.data, &mut bytes) {
            self.problem("kho-stub-blob", at.clone(), e);
            return Content::Invalid;
        }
        let (header, records) = match stub_blob::parse(&bytes) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.problem("kho-stub-blob", at.clone(), e);
                return Content::Invalid;
            }
        };
        let records: Vec<StubRecord> = records
            .iter()
            .map(|r| StubRecord {
                phys: r.phys.get(),
                order: r.order.get(),
                generation: r.generation.get(),
                block: r.block.get(),
                checksum: r.checksum.get(),
                count: u32::from(r.count.get()).max(1),
                spacing: u32::from(r.spacing.get()),
            })
            .collect();
        if let Some(set) = set {
            'records: for (i, r) in records.iter().enumerate() {
                // An extent's blocks are `(4096 << order) << spacing` apart.
                let stride = 4096u64
                    .checked_shl(r.order)
                    .and_then(|b| b.checked_shl(r.spacing))
                    .unwrap_or(0);
                let mut missing = None;
                for k in 0..u64::from(r.count) {
                    if !self.check_block(at) {
                        break 'records;
                    }
                    let block = k
                        .checked_mul(stride)
                        .and_then(|off| r.phys.checked_add(off));
                    if !block.is_some_and(|b| stride != 0 && set.has_block(b, r.order)) {
                        missing = Some(block);
                        break;
                    }
                }
                if let Some(block) = missing {
                    self.problem(
                        "kho-stub-record-not-preserved",
                        at.at(Part::Record { index: i }),
                        format!(
                            "folio {:#x} of order {} is not a preserved block of that order",
                            block.unwrap_or(r.phys),
                            r.order
                        ),
                    );
                }
            }
        }
        let desc = header.vmalloc;
        let vmalloc = if desc.first.get() == 0 && desc.total_pages.get() == 0 {
            Vmalloc::None
        } else {
            let restored = kho_vmalloc::restore_vmalloc_checked(&self.mem, &desc, |p, o| {
                set.is_none_or(|set| set.has_block(p.as_u64(), o.get()))
            });
            match restored {
                Ok(area) => Vmalloc::Area(VmallocInfo {
                    first: area.first().as_u64(),
                    total_pages: area.total_pages(),
                    flags: area.flags(),
                    order: area.order().get(),
                    chunks: area.chunks(),
                    blocks: area.blocks(),
                }),
                Err(e) => {
                    self.problem(
                        vmalloc_error_code(&e),
                        at.at(Part::Vmalloc {
                            offset: core::mem::offset_of!(stub_blob::Header, vmalloc) as u64,
                            first: desc.first.get(),
                        }),
                        e,
                    );
                    Vmalloc::Invalid
                }
            }
        };
        Content::KhoStub {
            generation: header.generation.get(),
            seed: header.seed.get(),
            records,
            vmalloc,
        }
    }
}

/// What an x86 KHO `setup_data` entry names.
#[derive(Clone, Copy, Debug)]
enum X86Kho {
    /// kho-v2 and later: the `kho_data` read.
    Kho(Handover),
    /// The 2024 design (`len` 48): the entry, read by [`rfc2024`].
    Rfc2024 {
        /// The entry's physical address.
        entry: u64,
    },
}

/// A child of the root FDT, as the decoder needs it.
#[derive(Clone, Copy, Debug)]
struct Child<'a> {
    name: &'a str,
    /// `preserved-data`.
    data: PhysAddr,
    /// `blob-size`.
    size: Option<u64>,
    /// Byte offset of the node (unknown when read from a refused FDT).
    offset: Option<usize>,
}

/// How the walk of the preserved-memory tree ended.
#[derive(Debug, PartialEq, Eq)]
enum WalkEnd {
    /// Every node was walked.
    Complete,
    /// At a structural problem of the tree.
    Error(kho_radix::Error),
    /// At [`Limits::nodes`].
    Nodes,
    /// At [`Limits::runs`].
    Runs,
}

/// What the walk found.
#[derive(Debug)]
struct Walk {
    /// The runs before it ended.
    runs: Vec<Run>,
    end: WalkEnd,
    /// Nodes it visited.
    nodes: usize,
}

/// The sum of `values`, at most `u64::MAX` (runs of different orders may
/// overlap in a corrupt tree, so their sizes can add up past 2^64).
fn saturating_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

// --- radix node accounting -------------------------------------------------

/// The radix tree's node pages.
#[derive(Debug, Default)]
struct Nodes {
    /// Tables: (address, level).
    tables: Vec<(u64, u32)>,
    leaves: Vec<u64>,
}

/// List the tree's nodes by level. kho-radix's walk reports the number of
/// nodes it visited ([`VisitedSet::len`]) but not tables and leaves apart,
/// so this small walk over the kho-abi layout counts them. It runs only
/// after kho-radix validated the same tree (aligned, in the image, no cycle
/// or shared node) and stops at `limit` nodes, the number that walk saw.
fn count_nodes<M: PhysMem>(mem: &M, root: PhysAddr, limit: usize) -> kho_mem::Result<Nodes> {
    let mut nodes = Nodes::default();
    let mut stack = vec![(root.as_u64(), ROOT_LEVEL)];
    let mut table = vec![0u64; TABLE_ENTRIES];
    while let Some((node, level)) = stack.pop() {
        if nodes.tables.len() + nodes.leaves.len() >= limit {
            break;
        }
        nodes.tables.push((node, level));
        mem.read_u64s(PhysAddr::new(node), &mut table)?;
        for &entry in table.iter().filter(|&&e| e != 0) {
            if level == 1 {
                nodes.leaves.push(entry);
            } else {
                stack.push((entry, level - 1));
            }
        }
    }
    Ok(nodes)
}

// --- error classes and locations -------------------------------------------

fn radix_error_code(e: &kho_radix::Error) -> &'static str {
    use kho_radix::Error as E;
    match e {
        E::RootMisaligned { .. } => "radix-root-misaligned",
        E::RootNotRam { .. } => "radix-root-outside-image",
        E::UnusedRootSlot { .. } => "radix-unused-root-slot",
        E::EntryMisaligned { .. } => "radix-misaligned-entry",
        E::EntryNotRam { .. } => "radix-entry-outside-image",
        E::Cycle { .. } => "radix-cycle",
        E::SharedNode { .. } => "radix-shared-node",
        E::InvalidKey { .. } => "radix-invalid-key",
        E::BlockNotRam { .. } => "radix-block-outside-image",
        E::NodeRead { .. } => "radix-read",
        _ => "radix",
    }
}

fn radix_error_location(e: &kho_radix::Error, root: PhysAddr) -> Location {
    use kho_radix::Error as E;
    let entry = |level: u32, table: PhysAddr, index: usize| Location::RadixEntry {
        level,
        table: table.as_u64(),
        index,
        addr: table.as_u64().wrapping_add(8 * index as u64),
    };
    match *e {
        E::UnusedRootSlot { node, index, .. } => entry(ROOT_LEVEL, node, index),
        E::EntryMisaligned {
            level, index, node, ..
        }
        | E::EntryNotRam {
            level, index, node, ..
        }
        | E::Cycle {
            level, index, node, ..
        }
        | E::SharedNode {
            level, index, node, ..
        } => entry(level, node, index),
        E::InvalidKey { node, index, .. } | E::BlockNotRam { node, index, .. } => {
            Location::RadixLeafBit {
                leaf: node.as_u64(),
                bit: index,
            }
        }
        E::NodeRead { level, node, .. } => Location::RadixNode {
            level,
            addr: node.as_u64(),
        },
        _ => Location::RadixTree {
            root: root.as_u64(),
        },
    }
}

fn fdt_error_code(e: &kho_fdt::Error) -> &'static str {
    use kho_fdt::Error as E;
    match e {
        E::MalformedStructure { .. } => "fdt-structure",
        E::MissingCompatible { .. } | E::UnknownCompatible { .. } => "fdt-compatible",
        E::MissingMemoryMap { .. }
        | E::BadMemoryMapLength { .. }
        | E::ZeroMemoryMap { .. }
        | E::MisalignedMemoryMap { .. } => "fdt-memory-map",
        E::MissingPreservedData { .. }
        | E::BadPreservedDataLength { .. }
        | E::ZeroPreservedData { .. }
        | E::MissingV1Fdt { .. }
        | E::BadV1FdtLength { .. }
        | E::ZeroV1Fdt { .. }
        | E::MissingBlobSize { .. }
        | E::BadBlobSizeLength { .. }
        | E::DuplicateSubtree { .. } => "fdt-subtree",
        _ => "fdt-header",
    }
}

/// The byte offset in the blob an FDT error is about, where it names one.
fn fdt_error_offset(e: &kho_fdt::Error) -> Option<usize> {
    use kho_fdt::Error as E;
    match e {
        E::BadMagic { .. } => Some(0),
        E::ExceedsBlob { .. } | E::TotalSizeTooLarge { .. } | E::TotalSizeTooSmall { .. } => {
            Some(4)
        }
        E::UnsupportedHeaderVersion { .. } => Some(0x14),
        E::UnterminatedMemReserveMap { offset }
        | E::MalformedStructure { offset, .. }
        | E::MissingCompatible { offset }
        | E::UnknownCompatible { offset, .. }
        | E::MissingMemoryMap { offset }
        | E::BadMemoryMapLength { offset, .. }
        | E::ZeroMemoryMap { offset }
        | E::MisalignedMemoryMap { offset, .. }
        | E::MissingPreservedData { offset, .. }
        | E::BadPreservedDataLength { offset, .. }
        | E::ZeroPreservedData { offset, .. }
        | E::MissingV1Fdt { offset, .. }
        | E::BadV1FdtLength { offset, .. }
        | E::ZeroV1Fdt { offset, .. }
        | E::MissingBlobSize { offset, .. }
        | E::BadBlobSizeLength { offset, .. } => Some(*offset),
        E::DuplicateSubtree { offset, .. } => *offset,
        _ => None,
    }
}

fn scratch_error_code(e: &kho_scratch::Error) -> &'static str {
    use kho_scratch::Error as E;
    match e {
        E::EntryMisaligned { .. } => "scratch-misaligned-entry",
        E::EntryNotRam { .. } => "scratch-entry-outside-image",
        E::EntryWraps { .. } => "scratch-entry-wraps",
        E::EntryEmpty { .. } => "scratch-empty-entry",
        E::EntriesOverlap { .. } => "scratch-overlap",
        _ => "scratch-array",
    }
}

/// An error about a one-entry array read at entry `index`'s address, told
/// with the entry's real index.
fn reindex(e: kho_scratch::Error, index: usize) -> kho_scratch::Error {
    use kho_scratch::Error as E;
    match e {
        E::EntryEmpty { .. } => E::EntryEmpty { index },
        E::EntryWraps { addr, size, .. } => E::EntryWraps { index, addr, size },
        E::EntryMisaligned { addr, size, .. } => E::EntryMisaligned { index, addr, size },
        E::EntryNotRam { range, .. } => E::EntryNotRam { index, range },
        other => other,
    }
}

fn vmalloc_error_code(e: &kho_vmalloc::Error) -> &'static str {
    use kho_vmalloc::Error as E;
    match e {
        E::ChainCycle { .. } => "vmalloc-cycle",
        E::ChunkNotRam { .. } | E::BlockNotRam { .. } => "vmalloc-outside-image",
        E::ChunkMisaligned { .. } | E::BlockMisaligned { .. } => "vmalloc-misaligned",
        E::ChunkNotPreserved { .. } | E::BlockNotPreserved { .. } => "vmalloc-not-preserved",
        _ => "vmalloc",
    }
}
