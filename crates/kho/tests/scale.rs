//! The incoming side at scale: preserve, walk and revive up to 16 GiB of order-0 pages, 1 TiB of folios and a 16 TiB+ sparse layout in `HostMem`, counting every byte the engine allocates.
//!
//! Each tier builds a preserved set with [`KhoOut`], hands it over, and
//! revives it with [`KhoIn`]: `populate`, `reserve_preserved` (the walk),
//! then `restore_folio` of every block until `unrestored_blocks() == 0`.
//! A counting global allocator watches that window on the test's own
//! thread (tests run in parallel). The walk and the restores allocate
//! nothing: `KhoIn` keeps restore state in the incoming tree's leaves, so
//! the only memory that grows with the tree is the caller's `VisitedSet`
//! buffer, `8 * VisitedSet::words_for(nodes)` bytes. `populate` makes one
//! transient allocation of fixed size, the FDT parser's list of subtrees
//! (see [`POPULATE_HEAP`]), freed before it returns.
//!
//! Node counts are checked three ways: the walk's `WalkStats::nodes`, the
//! outgoing tree's `NodeStats`, and a model that counts the distinct key
//! prefixes of every level (one table per distinct prefix at each table
//! level, one leaf per distinct leaf prefix).
//!
//! Timings are printed (`cargo test -p kho --test scale -- --nocapture`);
//! `docs/BENCHMARKS.md` records them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kho::{Error, KhoIn, KhoOut, WalkStats};
use kho_abi::AbiVersion;
use kho_abi::radix::{
    BITMAP_SIZE_LOG2, BITMAP_WORDS, ROOT_LEVEL, encode_key, leaf_bit, level_shift, table_index,
};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, ScratchArea, ScratchAreas};

// ---------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------

/// `System`, counting what each thread allocates.
struct Counting;

thread_local! {
    /// Bytes this thread allocated minus bytes it freed.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    /// Highest `LIVE` since the last [`Window::open`].
    static PEAK: Cell<i64> = const { Cell::new(0) };
    /// Allocations (and reallocations) this thread made, and their bytes.
    static CALLS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size as i64;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
}

fn on_dealloc(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - size as i64));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counters are
// thread-local `Cell`s with const initializers (no allocation, no
// destructor), so counting never re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_dealloc(layout.size());
        on_alloc(new_size);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What this thread allocated between [`Window::open`] and
/// [`Window::close`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Heap {
    /// Allocation calls.
    calls: u64,
    /// Bytes those calls asked for.
    bytes: u64,
    /// Highest live heap above the level at `open`.
    peak: i64,
    /// Live heap at `close` above the level at `open`: what was kept.
    retained: i64,
}

struct Window {
    live: i64,
    calls: u64,
    bytes: u64,
}

impl Window {
    /// Start measuring: the peak is reset to the current live bytes.
    fn open() -> Window {
        let live = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(live));
        Window {
            live,
            calls: CALLS.with(Cell::get),
            bytes: BYTES.with(Cell::get),
        }
    }

    fn close(self) -> Heap {
        Heap {
            calls: CALLS.with(Cell::get) - self.calls,
            bytes: BYTES.with(Cell::get) - self.bytes,
            peak: PEAK.with(Cell::get) - self.live,
            retained: LIVE.with(Cell::get) - self.live,
        }
    }
}

/// The window measures what it should: a `Vec` inside it is seen.
#[test]
fn the_counter_sees_allocations() {
    let w = Window::open();
    let v = std::hint::black_box(vec![0u8; 1000]);
    drop(v);
    let heap = w.close();
    assert_eq!(
        heap,
        Heap {
            calls: 1,
            bytes: 1000,
            peak: 1000,
            retained: 0
        }
    );
}

// ---------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
const PAGE: u64 = 4096;

fn order(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

fn r(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(a), s).unwrap()
}

/// `count` blocks of `2^order` pages, the first at `start`, then every
/// `stride` bytes. Addresses are recomputed on each pass: walking a run
/// allocates nothing.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    order: u32,
    count: u64,
    stride: u64,
}

impl Run {
    const fn new(start: u64, order: u32, count: u64, stride: u64) -> Run {
        Run {
            start,
            order,
            count,
            stride,
        }
    }

    /// `count` adjacent blocks.
    const fn dense(start: u64, order: u32, count: u64) -> Run {
        Run::new(start, order, count, PAGE << order)
    }

    fn blocks(self) -> impl Iterator<Item = (PhysAddr, Order)> {
        let o = order(self.order);
        (0..self.count).map(move |i| (PhysAddr::new(self.start + i * self.stride), o))
    }

    /// Every byte of the run's blocks (and the gaps between them).
    fn span(self) -> PhysRange {
        r(
            self.start,
            (self.count - 1) * self.stride + (PAGE << self.order),
        )
    }
}

/// Low RAM every tier has: nodes, the FDT and metadata pages come from its
/// bottom; scratch sits 64 MiB up, inside the same 128 MiB order-0 leaf as
/// the FDT page.
const LOW: u64 = GIB;
const LOW_SIZE: u64 = GIB;
const SCRATCH: u64 = LOW + 64 * MIB;
const SCRATCH_SIZE: u64 = 32 * MIB;

/// One tier: RAM regions (the low one included) and what to preserve.
struct Tier {
    name: &'static str,
    ram: Vec<PhysRange>,
    runs: Vec<Run>,
}

impl Tier {
    fn blocks(&self) -> u64 {
        self.runs.iter().map(|r| r.count).sum()
    }
}

/// RAM `[1 GiB, 1 GiB + size)`: low RAM followed by preserved memory from
/// 2 GiB.
fn one_region(size: u64) -> Vec<PhysRange> {
    vec![r(LOW, size)]
}

/// 16 GiB of order-0 pages at [2 GiB, 18 GiB): 4 Mi blocks.
fn tier_16g_order0() -> Tier {
    Tier {
        name: "16 GiB order-0",
        ram: one_region(17 * GIB),
        runs: vec![Run::dense(2 * GIB, 0, 16 * GIB / PAGE)],
    }
}

/// 1 GiB at [2 GiB, 3 GiB): fragmented order-0 pages in the lower half,
/// 2 MiB folios in the upper half.
fn tier_1g_mixed() -> Tier {
    let half = 2 * GIB + 512 * MIB;
    Tier {
        name: "1 GiB mixed",
        ram: one_region(2 * GIB),
        runs: vec![
            Run::dense(2 * GIB, 0, 1000),
            Run::new(2 * GIB + 8 * MIB, 0, 20_000, 3 * PAGE),
            Run::new(2 * GIB + 256 * MIB, 0, 500, 29 * PAGE),
            Run::new(2 * GIB + 320 * MIB, 0, 20_000, 2 * PAGE),
            Run::dense(half, 9, 128),
            Run::new(half + 256 * MIB, 9, 32, 8 * MIB),
        ],
    }
}

/// 64 GiB at [2 GiB, 66 GiB): four 1 GiB folios, 2 MiB folios, and a few
/// order-0 pages in the last 2 MiB.
fn tier_64g_folios() -> Tier {
    let pages_at = 66 * GIB - 2 * MIB;
    Tier {
        name: "64 GiB 2 MiB + 1 GiB folios",
        ram: one_region(66 * GIB),
        runs: vec![
            Run::dense(2 * GIB, 18, 4),
            Run::dense(6 * GIB, 9, (pages_at - 6 * GIB) / (2 * MIB)),
            Run::new(pages_at, 0, 64, 8 * PAGE),
        ],
    }
}

/// 1 TiB at [2 GiB, 1026 GiB): 1020 folios of 1 GiB, then 4 GiB of 2 MiB
/// folios.
fn tier_1t_folios() -> Tier {
    Tier {
        name: "1 TiB 1 GiB + 2 MiB folios",
        ram: one_region(1026 * GIB),
        runs: vec![
            Run::dense(2 * GIB, 18, 1020),
            Run::dense(1022 * GIB, 9, 2048),
        ],
    }
}

/// RAM far apart up to 16 TiB and beyond, with blocks of orders 0, 1, 9
/// and 18 in each region: root slot 0 (orders >= 2), 1 (order 1), 2
/// (order 0 below 2^63) and, with the region at 2^63, slot 3.
fn tier_sparse_16t() -> Tier {
    let regions = [
        (TIB, 2 * GIB),
        (8 * TIB, 2 * GIB),
        (16 * TIB - 2 * GIB, 2 * GIB),
        (16 * TIB + 512 * GIB, 2 * GIB),
        (1u64 << 63, 2 * GIB),
    ];
    let mut ram = vec![r(LOW, LOW_SIZE)];
    let mut runs = Vec::new();
    for (base, size) in regions {
        ram.push(r(base, size));
        runs.extend([
            Run::dense(base, 18, 1),
            Run::new(base + GIB, 9, 100, 4 * MIB),
            Run::new(base + GIB + 512 * MIB, 1, 500, 16 * KIB),
            Run::new(base + GIB + 768 * MIB, 0, 3000, 12 * KIB),
        ]);
    }
    Tier {
        name: "16 TiB+ sparse",
        ram,
        runs,
    }
}

// ---------------------------------------------------------------------------
// Handover and revival
// ---------------------------------------------------------------------------

/// What generation N handed over.
struct HandedOver {
    mem: HostMem,
    handover: kho::Handover,
    /// The tier's runs plus the FDT and metadata pages.
    runs: Vec<Run>,
    /// Outgoing tree tables + leaves.
    nodes: u64,
    preserve: Duration,
}

fn scratch_areas() -> ScratchAreas {
    let mut areas = ScratchAreas::new();
    let half = SCRATCH_SIZE / 2;
    for (i, kind) in [AreaKind::Lowmem, AreaKind::Global].into_iter().enumerate() {
        areas
            .push(ScratchArea {
                kind,
                range: r(SCRATCH + i as u64 * half, half),
            })
            .unwrap();
    }
    areas
}

/// Generation N: every run preserved block by block, the FDT and metadata
/// pages, the scratch array written inside scratch, the handover checked.
fn hand_over(tier: &Tier) -> HandedOver {
    let mut mem = HostMem::with_ram(&tier.ram).unwrap();
    let areas = scratch_areas();
    for a in areas.as_slice() {
        mem.reserve(a.range).unwrap();
    }
    // Preserved memory is not the arena's to hand out as nodes.
    for run in &tier.runs {
        mem.reserve(run.span()).unwrap();
    }
    let start = Instant::now();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    for run in &tier.runs {
        for (phys, o) in run.blocks() {
            out.preserve_folio(&mut mem, phys, o).unwrap();
        }
    }
    let meta = out.add_kexec_metadata(&mut mem, 1, "kho-rs-scale").unwrap();
    let array_at = areas.as_slice()[0].range.start();
    let array = areas.write_array(&mut mem, array_at).unwrap();
    out.check_handover(&mem, areas.as_slice(), &[array])
        .unwrap();
    let preserve = start.elapsed();
    let stats = out.node_stats();
    let mut runs = tier.runs.clone();
    runs.push(Run::dense(out.fdt().as_u64(), 0, 1));
    runs.push(Run::dense(meta.as_u64(), 0, 1));
    let handover = out.handover(array);
    HandedOver {
        mem,
        handover,
        runs,
        nodes: stats.tables + stats.leaves,
        preserve,
    }
}

/// The nodes a minimal kho-v2 tree holding `blocks` has: one table per
/// distinct key prefix at each table level (the root's prefix is empty),
/// one leaf per distinct leaf prefix. Consecutive blocks of a run share
/// prefixes, so only changes are recorded.
fn model_nodes(blocks: impl Iterator<Item = (PhysAddr, Order)>) -> u64 {
    // Level l table (1 ..= ROOT_LEVEL) is selected by key >> level_shift(l + 1)
    // (the root by nothing); a leaf by key >> BITMAP_SIZE_LOG2.
    let shifts: Vec<u32> = (1..ROOT_LEVEL)
        .map(|l| level_shift(l + 1))
        .chain([BITMAP_SIZE_LOG2])
        .collect();
    let mut seen: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); shifts.len()];
    let mut last: Vec<Option<u64>> = vec![None; shifts.len()];
    let leaf = shifts.len() - 1;
    for (phys, o) in blocks {
        let key = encode_key(phys.as_u64(), o.get()).unwrap();
        // Prefixes nest: the same leaf means the same tables above it.
        if last[leaf] == Some(key >> BITMAP_SIZE_LOG2) {
            continue;
        }
        for (i, &s) in shifts.iter().enumerate() {
            let prefix = key >> s;
            if last[i] != Some(prefix) {
                seen[i].insert(prefix);
                last[i] = Some(prefix);
            }
        }
    }
    1 + seen.iter().map(|s| s.len() as u64).sum::<u64>()
}

/// Bytes `KhoIn` keeps per accepted child of the root FDT (its name's
/// place in the FDT copy, `preserved-data` and `blob-size`).
const CHILD_BYTES: u64 = 32;

/// What `KhoIn::populate` allocates: `KhoFdt::parse` collects the root
/// FDT's children in a `Vec<Subtree>`, whose first allocation holds four
/// (our handovers have one child, `kexec-metadata`), freed before
/// `populate` returns; `KhoIn` keeps one entry per child. Neither depends
/// on what was preserved.
const POPULATE_HEAP: Heap = Heap {
    calls: 2,
    bytes: 4 * size_of::<kho_fdt::Subtree<'static>>() as u64 + CHILD_BYTES,
    peak: 4 * size_of::<kho_fdt::Subtree<'static>>() as i64 + CHILD_BYTES as i64,
    retained: CHILD_BYTES as i64,
};

/// What reviving one tier measured.
#[derive(Debug)]
struct Revival {
    stats: WalkStats,
    visited_words: usize,
    /// The engine's heap use in `populate`, and in the walk and every
    /// restore.
    populate_heap: Heap,
    heap: Heap,
    walk: Duration,
    restore: Duration,
}

/// Generation N+1: populate, walk, restore every block, measuring the
/// engine's heap use (and `HostMem`'s, which is also on this thread: the
/// restores clear bits in leaves that hold bits, so their chunks exist).
fn revive(h: &mut HandedOver) -> Revival {
    let words = VisitedSet::words_for(h.nodes as usize);
    let mut buf = vec![0u64; words];
    let mut visited = VisitedSet::new(&mut buf);
    let mut reserved = 0u64;

    let start = Instant::now();
    let window = Window::open();
    let mut kin = KhoIn::populate(&h.mem, h.handover).unwrap();
    let populate_heap = window.close();
    let window = Window::open();
    let stats = kin
        .reserve_preserved(&h.mem, &mut visited, |_, _| {
            reserved += 1;
            Ok(())
        })
        .unwrap();
    let walk = start.elapsed();
    let start = Instant::now();
    for run in &h.runs {
        for (phys, o) in run.blocks() {
            kin.restore_folio(&mut h.mem, phys, o).unwrap();
        }
    }
    let restore = start.elapsed();
    let heap = window.close();

    assert_eq!(reserved, stats.blocks);
    assert_eq!(kin.unrestored_blocks(), 0);
    // Nothing left: a re-walk finds no run.
    assert_eq!(kin.unrestored(&h.mem, &mut visited).count(), 0);
    Revival {
        stats,
        visited_words: words,
        populate_heap,
        heap,
        walk,
        restore,
    }
}

/// The whole tier: hand over, revive, check counts and the memory bound,
/// print the figures.
fn run_tier(tier: &Tier) -> (HandedOver, Revival) {
    let total = Instant::now();
    let mut h = hand_over(tier);
    let model = model_nodes(h.runs.iter().flat_map(|r| r.blocks()));
    let rev = revive(&mut h);
    let blocks: u64 = h.runs.iter().map(|r| r.count).sum();
    let pages: u64 = h.runs.iter().map(|r| r.count << r.order).sum();
    assert_eq!(rev.stats.blocks, blocks, "{}", tier.name);
    assert_eq!(rev.stats.pages, pages, "{}", tier.name);
    assert_eq!(rev.stats.nodes, h.nodes, "{}: walk vs NodeStats", tier.name);
    assert_eq!(rev.stats.nodes, model, "{}: walk vs model", tier.name);
    // The memory bound: a VisitedSet of words_for(nodes) holds the tree;
    // the engine allocates nothing in the walk and the restores, and only
    // the FDT parse's fixed, transient subtree list in populate.
    let capacity = VisitedSet::new(&mut vec![0; rev.visited_words]).capacity();
    assert!(rev.stats.nodes as usize <= capacity);
    assert_eq!(
        rev.heap,
        Heap::default(),
        "{}: walk + restore heap",
        tier.name
    );
    assert_eq!(
        rev.populate_heap, POPULATE_HEAP,
        "{}: populate heap",
        tier.name
    );
    println!(
        "{:<28} blocks {:>8} nodes {:>4} visited {:>6} B heap: populate {} B, walk+restore {} B | preserve {:>9.1?} populate+walk {:>9.1?} restore {:>9.1?} total {:>9.1?}",
        tier.name,
        rev.stats.blocks,
        rev.stats.nodes,
        rev.visited_words * 8,
        rev.populate_heap.bytes,
        rev.heap.bytes,
        h.preserve,
        rev.walk,
        rev.restore,
        total.elapsed(),
    );
    (h, rev)
}

// ---------------------------------------------------------------------------
// Tiers
// ---------------------------------------------------------------------------

/// The case: revive 16 GiB of order-0 pages and keep the engine's
/// own allocation under the bound (it is zero).
#[test]
fn revive_16_gib_of_order_0_pages() {
    let tier = tier_16g_order0();
    assert_eq!(tier.blocks(), 4 << 20);
    // The kho-radix figure: 16 GiB of 4 KiB pages starting 128 MiB-aligned
    // inside one 64 GiB span (a level-1 table's reach) is 128 leaves of
    // 32768 pages under one path of 5 tables (root, levels 4 .. 1).
    let alone = model_nodes(tier.runs[0].blocks());
    assert_eq!(alone, 5 + 128);
    assert_eq!(alone, 133);
    let (_, rev) = run_tier(&tier);
    // Plus one leaf for the FDT and metadata pages at 1 GiB (same 64 GiB
    // span, so no new table).
    assert_eq!(rev.stats.nodes, 134);
    assert_eq!(rev.stats.blocks, (4 << 20) + 2);
    // 134 nodes: 155 words, 1240 bytes of VisitedSet.
    assert_eq!(rev.visited_words * 8, 1240);
}

#[test]
fn revive_1_gib_mixed() {
    let tier = tier_1g_mixed();
    let (_, rev) = run_tier(&tier);
    assert_eq!(rev.stats.blocks, tier.blocks() + 2);
}

#[test]
fn revive_64_gib_of_folios() {
    let tier = tier_64g_folios();
    let (_, rev) = run_tier(&tier);
    assert_eq!(rev.stats.pages, 4 * (1 << 18) + 30_719 * 512 + 64 + 2);
}

#[test]
fn revive_1_tib_of_folios() {
    let tier = tier_1t_folios();
    let (_, rev) = run_tier(&tier);
    assert_eq!(rev.stats.blocks, 1020 + 2048 + 2);
}

#[test]
fn revive_a_sparse_16_tib_layout() {
    let tier = tier_sparse_16t();
    let (h, rev) = run_tier(&tier);
    assert_eq!(rev.stats.blocks, tier.blocks() + 2);
    // Every root slot a key can select is in use: 0 (orders >= 2), 1
    // (order 1), 2 and 3 (order 0 below and above 2^63).
    let root = memory_map(&h);
    for slot in 0..=kho_radix::MAX_ROOT_SLOT as u64 {
        let entry = h.mem.read_u64(root.checked_add(8 * slot).unwrap()).unwrap();
        assert_ne!(entry, 0, "root slot {slot}");
    }
    assert_eq!(kho_radix::MAX_ROOT_SLOT, 3);
}

// ---------------------------------------------------------------------------
// Walk limits
// ---------------------------------------------------------------------------

/// The leaf holding the block's bit: a descent of the tree as the kho-v2
/// layout defines it.
fn leaf_of(mem: &HostMem, root: PhysAddr, phys: u64, o: u32) -> PhysAddr {
    let key = encode_key(phys, o).unwrap();
    let mut node = root.as_u64();
    for level in (1..=ROOT_LEVEL).rev() {
        node = mem
            .read_u64(PhysAddr::new(node + 8 * table_index(key, level) as u64))
            .unwrap();
        assert_ne!(node, 0);
    }
    // The block really is in that leaf.
    let bit = leaf_bit(key);
    let word = mem
        .read_u64(PhysAddr::new(node + 8 * (bit / 64) as u64))
        .unwrap();
    assert_ne!(word & (1 << (bit % 64)), 0);
    PhysAddr::new(node)
}

fn memory_map(h: &HandedOver) -> PhysAddr {
    KhoIn::populate(&h.mem, h.handover).unwrap().memory_map()
}

#[test]
fn a_tree_larger_than_the_visited_set_is_refused() {
    let h = hand_over(&tier_1g_mixed());
    let nodes = h.nodes as usize;
    // The largest buffer that cannot hold every node.
    let mut words = VisitedSet::words_for(nodes);
    while VisitedSet::new(&mut vec![0; words]).capacity() >= nodes {
        words -= 1;
    }
    let mut buf = vec![0u64; words];
    let capacity = VisitedSet::new(&mut buf).capacity();
    assert_eq!(capacity, nodes - 1);
    let mut kin = KhoIn::populate(&h.mem, h.handover).unwrap();
    let err = kin
        .reserve_preserved(&h.mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Radix(kho_radix::Error::VisitedSetFull { capacity })
    );
    assert_eq!(kin.unrestored_blocks(), 0);
    // One node more is enough.
    let mut buf = vec![0u64; VisitedSet::words_for(nodes)];
    let rev = kin
        .reserve_preserved(&h.mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert_eq!(rev.nodes as usize, nodes);
}

/// An order-9 leaf spans 64 GiB of 2 MiB folios: set every bit and it
/// names blocks below RAM (which starts at 1 GiB). The walk checks the
/// whole leaf before it reports any of its blocks.
#[test]
fn an_all_ones_leaf_over_non_ram_is_refused() {
    let tier = tier_1g_mixed();
    let mut h = hand_over(&tier);
    let root = memory_map(&h);
    let folio = tier.runs[4].start;
    let leaf = leaf_of(&h.mem, root, folio, 9);
    for w in 0..BITMAP_WORDS as u64 {
        h.mem
            .write_u64(leaf.checked_add(8 * w).unwrap(), u64::MAX)
            .unwrap();
    }
    let mut kin = KhoIn::populate(&h.mem, h.handover).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(h.nodes as usize)];
    let mut reserved = Vec::new();
    let err = kin
        .reserve_preserved(&h.mem, &mut VisitedSet::new(&mut buf), |range, o| {
            reserved.push((range.start(), o));
            Ok(())
        })
        .unwrap_err();
    // Bit 0 of the leaf is the 2 MiB folio at physical 0.
    assert_eq!(
        err,
        Error::Radix(kho_radix::Error::BlockNotRam {
            node: leaf,
            index: 0,
            phys: PhysAddr::new(0),
            order: order(9),
        })
    );
    // Order 9 is the highest order in this tree: nothing was reported.
    assert!(reserved.is_empty());
    assert_eq!(kin.unrestored_blocks(), 0);
}

/// The order-0 leaf holding the FDT page covers [1 GiB, 1 GiB + 128 MiB),
/// all RAM, scratch included: with every bit set, the leaf passes the RAM
/// check and the walk reports its blocks in order until the first one
/// inside scratch, which fails the revival.
#[test]
fn an_all_ones_leaf_over_scratch_is_refused() {
    let mut h = hand_over(&tier_1g_mixed());
    let root = memory_map(&h);
    let fdt = h.handover.fdt.as_u64();
    let leaf = leaf_of(&h.mem, root, fdt, 0);
    for w in 0..BITMAP_WORDS as u64 {
        h.mem
            .write_u64(leaf.checked_add(8 * w).unwrap(), u64::MAX)
            .unwrap();
    }
    let mut kin = KhoIn::populate(&h.mem, h.handover).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(h.nodes as usize)];
    let mut order0 = 0u64;
    let err = kin
        .reserve_preserved(&h.mem, &mut VisitedSet::new(&mut buf), |range, o| {
            if o == Order::ZERO && range.start().as_u64() < 2 * GIB {
                order0 += 1;
            }
            Ok(())
        })
        .unwrap_err();
    let areas = scratch_areas();
    assert_eq!(
        err,
        Error::Scratch(kho_scratch::Error::PreservedInScratch {
            block: r(SCRATCH, PAGE),
            area: areas.as_slice()[0].range,
            index: 0,
        })
    );
    // Every page of [1 GiB, scratch) was reported before the failure.
    assert_eq!(order0, (SCRATCH - LOW) / PAGE);
    assert_eq!(kin.unrestored_blocks(), 0);
}
