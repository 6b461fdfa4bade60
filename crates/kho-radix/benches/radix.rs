//! Criterion benchmarks of the radix tracker against its peers, all in the
//! same run: Linux 7.2's own algorithm (re-implemented below over the same
//! `PhysMem`), `RoaringTreemap` and `BTreeSet<u64>`.
//!
//! Implementations (the name before the `_` in criterion's directory):
//!
//! - `radix`, `radix-direct`: [`RadixTree`] and the untrusted walks over
//!   `HostMem` (the test arena) and over `DirectMem` (below: a flat array
//!   shaped like a kernel's direct map);
//! - `upstream`, `upstream-direct`: [`upstream`], how Linux 7.2's
//!   `kho_radix_add_page`, `kho_preserve_pages` and `kho_radix_walk_tree`
//!   work, over the same two memories: a descent from the root for every
//!   block, no caches, no checks;
//! - `roaring`, `btreeset`: the same set of radix keys in a
//!   `RoaringTreemap` / `BTreeSet<u64>` (on the heap; nothing to hand over).
//!
//! Workloads (frames from 2 GiB upwards):
//!
//! - `insert`: preserve order-0 pages one call each, `sequential` (address
//!   order) or `random` (a fixed permutation), over 1 MiB, 1 GiB, 16 GiB;
//! - `mixed`: a folio set of orders 0, 2, 4, 9 and 18 over 16 GiB (see
//!   [`mixed`]), preserved in address order or in a fixed random order;
//! - `range`: 16 GiB as one page range, `aligned` (4 blocks) or
//!   `unaligned` (one page later, one page shorter: 40 blocks of orders 0 to
//!   21); roaring uses `insert_range` of the pages' keys and `BTreeSet`
//!   inserts every key;
//! - `walk_blocks`: one callback per block of a built set: `small` (1 MiB of
//!   order-0 pages), `dense` (16 GiB of order-0 pages), `sparse` (a fixed
//!   random 1/16 of them), `mixed` (the folio set), `unaligned` (the 40
//!   blocks the unaligned 16 GiB range preserve leaves). The radix walks are the
//!   untrusted incoming walks (every entry and block checked) with a
//!   `VisitedSet` sized as kho-stub sizes it (16 Ki nodes);
//! - `walk_ranges`: the same sets as coalesced runs; `upstream` coalesces
//!   in its walk's callback, roaring and `BTreeSet` in a loop over their
//!   iterators.
//!
//! Run with `cargo bench -p kho-radix`; the figures are recorded in
//! `docs/BENCHMARKS.md`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kho_mem::{HostMem, Order, Pfn, PhysAddr, PhysMem};
use kho_radix::{RadixTree, VisitedSet};
use roaring::RoaringTreemap;

/// RAM for the walks: 17 GiB from 1 GiB, so every preserved page is RAM;
/// node pages are allocated from its bottom.
const RAM: u64 = 17 << 30;
/// RAM for the insert and range benchmarks, which only need room for
/// nodes (the outgoing side does not require preserved pages to be RAM).
/// Small on purpose: `HostMem`'s next-fit allocator would otherwise hand
/// every iteration fresh, never-touched pages, measuring page faults and
/// growing the process by gigabytes.
const NODE_RAM: u64 = 64 << 20;
/// First preserved frame: 2 GiB.
const FIRST: u64 = (2 << 30) >> 12;
/// 16 GiB of 4 KiB pages.
const PAGES: u64 = 4 << 20;
/// The node capacity kho-stub gives its walk's `VisitedSet`.
const STUB_WALK_NODES: usize = 16 * 1024;

/// The order-0 set sizes of `insert`: name and pages.
const SIZES: [(&str, u64); 3] = [("1MiB", 256), ("1GiB", 1 << 18), ("16GiB", PAGES)];

fn pfn(p: u64) -> Pfn {
    Pfn::try_new(p).unwrap()
}

fn ord(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

/// The kho-v2 key of a block (spec §3.3).
fn key(pfn: u64, order: u32) -> u64 {
    (1u64 << (52 - order)) | (pfn >> order)
}

/// `(phys, order)` of a key (spec §3.3).
#[inline(always)]
fn decode(key: u64) -> (u64, u32) {
    let order = 52 - (63 - key.leading_zeros());
    (key << (12 + order), order)
}

/// A `PhysMem` shaped like a kernel's direct map: one flat, word-addressed
/// RAM region whose aligned `u64` accesses are a bounds check and a load or
/// store, plus a free-list page allocator. `HostMem` (the test arena) pays
/// a region search per access; a kernel's `PhysMem` does not, so the trees
/// are measured over both.
struct DirectMem {
    base: u64,
    words: Vec<u64>,
    next_page: u64,
    free: Vec<u64>,
}

impl DirectMem {
    fn new(base: u64, size: u64) -> DirectMem {
        DirectMem {
            base,
            // Zeroed by calloc: untouched pages cost nothing.
            words: vec![0; (size / 8) as usize],
            next_page: base,
            free: Vec::new(),
        }
    }

    #[inline(always)]
    fn index(&self, addr: PhysAddr, bytes: u64) -> kho_mem::Result<usize> {
        let off = addr.as_u64().wrapping_sub(self.base);
        let not_ram = kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len: bytes,
        };
        if !off.is_multiple_of(8)
            || off
                .checked_add(bytes)
                .is_none_or(|end| end > self.words.len() as u64 * 8)
        {
            return Err(not_ram);
        }
        Ok((off / 8) as usize)
    }
}

impl PhysMem for DirectMem {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        // Byte access is not used by the trees; keep it simple.
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.as_u64() + i as u64;
            let w = self.read_u64(PhysAddr::new(a & !7))?;
            *b = (w >> ((a % 8) * 8)) as u8;
        }
        Ok(())
    }
    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        for (i, &b) in data.iter().enumerate() {
            let a = addr.as_u64() + i as u64;
            let at = PhysAddr::new(a & !7);
            let shift = (a % 8) * 8;
            let w = self.read_u64(at)?;
            self.write_u64(at, (w & !(0xff << shift)) | (u64::from(b) << shift))?;
        }
        Ok(())
    }
    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        let off = addr.as_u64().wrapping_sub(self.base);
        off < self.words.len() as u64 * 8
            && off
                .checked_add(len)
                .is_some_and(|end| end <= self.words.len() as u64 * 8)
    }
    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        let oom = kho_mem::Error::OutOfMemory { order: order.get() };
        if order != Order::ZERO {
            return Err(oom);
        }
        let page = match self.free.pop() {
            Some(page) => page,
            None => {
                let page = self.next_page;
                self.next_page += 4096;
                page
            }
        };
        let i = self.index(PhysAddr::new(page), 4096).map_err(|_| oom)?;
        self.words[i..i + 512].fill(0);
        Ok(PhysAddr::new(page))
    }
    fn free_pages(&mut self, addr: PhysAddr, _order: Order) -> kho_mem::Result<()> {
        self.free.push(addr.as_u64());
        Ok(())
    }
    #[inline(always)]
    fn read_u64(&self, addr: PhysAddr) -> kho_mem::Result<u64> {
        let i = self.index(addr, 8)?;
        Ok(self.words[i])
    }
    #[inline(always)]
    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> kho_mem::Result<()> {
        let i = self.index(addr, 8)?;
        self.words[i] = value;
        Ok(())
    }
    #[inline(always)]
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> kho_mem::Result<()> {
        let i = self.index(addr, out.len() as u64 * 8)?;
        out.copy_from_slice(&self.words[i..i + out.len()]);
        Ok(())
    }
}

/// Linux 7.2's preserved-memory radix tree algorithm
/// (kernel/liveupdate/kexec_handover.c), re-implemented from its
/// description over `PhysMem` so that it runs on the same memory as
/// [`RadixTree`]: the baseline kho-rs's speed is stated against.
///
/// What it does, as upstream: `add_page` computes the key and descends from
/// the root through five table levels for every block, allocating a zeroed
/// page for each missing node (on failure it frees what it allocated and
/// clears the anchor entry), then sets the leaf bit; a duplicate is a
/// silent no-op and nothing looks for overlaps. `preserve_pages` splits a
/// range into `min(ctz(pfn), ilog2(left))` blocks (no NUMA split here) and
/// deletes what it added if one fails. The walk recurses through every
/// table entry in ascending order and, in each leaf, visits every set bit
/// (`for_each_set_bit`), decoding its key for the callback. It trusts the
/// tree: no RAM, alignment or shared-node checks.
mod upstream {
    use kho_mem::{PhysAddr, PhysMem, Result};

    const TABLE_SIZE_LOG2: u32 = 9;
    const BITMAP_SIZE_LOG2: u32 = 15;
    const MAX_DEPTH: u32 = 6;
    const TABLE_ENTRIES: u64 = 1 << TABLE_SIZE_LOG2;

    fn encode_key(pfn: u64, order: u32) -> u64 {
        (1u64 << (52 - order)) | (pfn >> order)
    }

    fn decode_key(key: u64) -> (u64, u32) {
        // fls64 counts from 1.
        let order_bit = 64 - key.leading_zeros();
        let order = 52 - order_bit + 1;
        (key << (12 + order), order)
    }

    fn table_index(key: u64, level: u32) -> u64 {
        (key >> ((level - 1) * TABLE_SIZE_LOG2 + BITMAP_SIZE_LOG2)) % TABLE_ENTRIES
    }

    fn read<M: PhysMem>(mem: &M, addr: u64) -> Result<u64> {
        mem.read_u64(PhysAddr::new(addr))
    }

    fn write<M: PhysMem>(mem: &mut M, addr: u64, value: u64) -> Result<()> {
        mem.write_u64(PhysAddr::new(addr), value)
    }

    /// `struct kho_radix_tree`: the root table.
    pub struct Tree {
        pub root: u64,
    }

    impl Tree {
        pub fn new<M: PhysMem>(mem: &mut M) -> Result<Tree> {
            Ok(Tree {
                root: mem.alloc_page()?.as_u64(),
            })
        }

        /// `kho_radix_add_page`.
        #[inline]
        pub fn add_page<M: PhysMem>(&mut self, mem: &mut M, pfn: u64, order: u32) -> Result<()> {
            let key = encode_key(pfn, order);
            let mut intermediate = [0u64; MAX_DEPTH as usize];
            let mut anchor: Option<(u64, u64)> = None;
            let mut node = self.root;
            for i in (1..MAX_DEPTH).rev() {
                let idx = table_index(key, i);
                let entry = read(mem, node + 8 * idx)?;
                if entry != 0 {
                    node = entry;
                    continue;
                }
                let new = match mem.alloc_page() {
                    Ok(page) => page.as_u64(),
                    Err(err) => {
                        for &page in intermediate.iter().filter(|&&p| p != 0) {
                            mem.free_page(PhysAddr::new(page))?;
                        }
                        if let Some((node, idx)) = anchor {
                            write(mem, node + 8 * idx, 0)?;
                        }
                        return Err(err);
                    }
                };
                write(mem, node + 8 * idx, new)?;
                if anchor.is_none() {
                    anchor = Some((node, idx));
                }
                intermediate[i as usize] = new;
                node = new;
            }
            let idx = key % (1 << BITMAP_SIZE_LOG2);
            let word = node + 8 * (idx / 64);
            let value = read(mem, word)?;
            write(mem, word, value | (1 << (idx % 64)))
        }

        /// `kho_radix_del_page`.
        pub fn del_page<M: PhysMem>(&mut self, mem: &mut M, pfn: u64, order: u32) -> Result<()> {
            let key = encode_key(pfn, order);
            let mut node = self.root;
            for i in (1..MAX_DEPTH).rev() {
                node = read(mem, node + 8 * table_index(key, i))?;
                if node == 0 {
                    return Ok(());
                }
            }
            let idx = key % (1 << BITMAP_SIZE_LOG2);
            let word = node + 8 * (idx / 64);
            let value = read(mem, word)?;
            write(mem, word, value & !(1 << (idx % 64)))
        }

        /// `kho_preserve_pages` without the scratch and NUMA checks.
        pub fn preserve_pages<M: PhysMem>(
            &mut self,
            mem: &mut M,
            start: u64,
            nr_pages: u64,
        ) -> Result<()> {
            let end = start + nr_pages;
            let mut pfn = start;
            while pfn < end {
                let order = pfn.trailing_zeros().min(63 - (end - pfn).leading_zeros());
                if let Err(err) = self.add_page(mem, pfn, order) {
                    // __kho_unpreserve(start, pfn)
                    let mut p = start;
                    while p < pfn {
                        let o = p.trailing_zeros().min(63 - (pfn - p).leading_zeros());
                        self.del_page(mem, p, o)?;
                        p += 1 << o;
                    }
                    return Err(err);
                }
                pfn += 1 << order;
            }
            Ok(())
        }

        /// `kho_radix_walk_tree`: `cb` returning non-zero stops the walk.
        pub fn walk<M: PhysMem>(
            &self,
            mem: &M,
            cb: &mut impl FnMut(u64, u32) -> i32,
        ) -> Result<i32> {
            walk_tree(mem, self.root, MAX_DEPTH - 1, 0, cb)
        }

        /// Free every node (not upstream: the benchmark's teardown).
        pub fn destroy<M: PhysMem>(self, mem: &mut M) -> Result<()> {
            free(mem, self.root, MAX_DEPTH - 1)
        }
    }

    fn walk_tree<M: PhysMem>(
        mem: &M,
        node: u64,
        level: u32,
        start: u64,
        cb: &mut impl FnMut(u64, u32) -> i32,
    ) -> Result<i32> {
        for i in 0..TABLE_ENTRIES {
            let entry = read(mem, node + 8 * i)?;
            if entry == 0 {
                continue;
            }
            let shift = (level - 1) * TABLE_SIZE_LOG2 + BITMAP_SIZE_LOG2;
            let key = start | (i << shift);
            let err = if level == 1 {
                walk_leaf(mem, entry, key, cb)?
            } else {
                walk_tree(mem, entry, level - 1, key, cb)?
            };
            if err != 0 {
                return Ok(err);
            }
        }
        Ok(0)
    }

    /// `kho_radix_walk_leaf`: `for_each_set_bit` over the bitmap.
    fn walk_leaf<M: PhysMem>(
        mem: &M,
        leaf: u64,
        key: u64,
        cb: &mut impl FnMut(u64, u32) -> i32,
    ) -> Result<i32> {
        for w in 0..(1u64 << BITMAP_SIZE_LOG2) / 64 {
            let mut bits = read(mem, leaf + 8 * w)?;
            while bits != 0 {
                let i = w * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                let (phys, order) = decode_key(key | i);
                let err = cb(phys, order);
                if err != 0 {
                    return Ok(err);
                }
            }
        }
        Ok(0)
    }

    fn free<M: PhysMem>(mem: &mut M, node: u64, level: u32) -> Result<()> {
        if level > 0 {
            for i in 0..TABLE_ENTRIES {
                let child = read(mem, node + 8 * i)?;
                if child != 0 {
                    free(mem, child, level - 1)?;
                }
            }
        }
        mem.free_page(PhysAddr::new(node))
    }
}

/// xorshift64*: a small deterministic generator (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `v` in a fixed random order (Fisher-Yates).
fn shuffle<T>(mut v: Vec<T>) -> Vec<T> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in (1..v.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// A fixed random 1/16 of the 16 GiB of frames, ascending.
fn sparse() -> Vec<(u64, u32)> {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    (FIRST..FIRST + PAGES)
        .filter(|_| rng.next().is_multiple_of(16))
        .map(|p| (p, 0))
        .collect()
}

/// A folio set as a kernel might preserve it, over the 16 GiB from 2 GiB,
/// in address order: each 1 GiB is, one time in four, a 1 GiB hugetlb
/// folio (order 18); otherwise each of its 2 MiB pageblocks is, one time in
/// two, a THP (order 9), and otherwise splits into 64 KiB units that are,
/// with equal odds, one order-4 folio, four order-2 folios, sixteen pages,
/// order-2 folios and pages interleaved, or free.
fn mixed() -> Vec<(u64, u32)> {
    let mut rng = Rng(0xf011_05e7_0000_0001);
    let mut v = Vec::new();
    for gib in 0..PAGES >> 18 {
        let base = FIRST + (gib << 18);
        if rng.next().is_multiple_of(4) {
            v.push((base, 18));
            continue;
        }
        for block in 0..512 {
            let block = base + block * 512;
            if rng.next().is_multiple_of(2) {
                v.push((block, 9));
                continue;
            }
            for unit in 0..32 {
                let unit = block + unit * 16;
                match rng.next() % 5 {
                    0 => v.push((unit, 4)),
                    1 => v.extend((0..4).map(|i| (unit + 4 * i, 2))),
                    2 => v.extend((0..16).map(|i| (unit + i, 0))),
                    3 => {
                        for half in [0, 8] {
                            v.push((unit + half, 2));
                            v.extend((4..8).map(|i| (unit + half + i, 0)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    v
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

/// Time `iters` runs of `fill` on a fresh `RadixTree`, excluding its
/// creation and teardown.
fn time_radix<M: PhysMem>(
    mem: &mut M,
    iters: u64,
    mut fill: impl FnMut(&mut RadixTree, &mut M),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut tree = RadixTree::new(mem).unwrap();
        let start = Instant::now();
        fill(&mut tree, mem);
        total += start.elapsed();
        black_box(tree.node_stats());
        tree.destroy(mem).unwrap();
    }
    total
}

/// As [`time_radix`] for the upstream tree.
fn time_upstream<M: PhysMem>(
    mem: &mut M,
    iters: u64,
    mut fill: impl FnMut(&mut upstream::Tree, &mut M),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut tree = upstream::Tree::new(mem).unwrap();
        let start = Instant::now();
        fill(&mut tree, mem);
        total += start.elapsed();
        black_box(tree.root);
        tree.destroy(mem).unwrap();
    }
    total
}

/// Time `iters` runs of `build`, excluding the drop of what it built.
fn time_build<T>(iters: u64, mut build: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let built = build();
        total += start.elapsed();
        drop(black_box(built));
    }
    total
}

/// Preserve `blocks` one call each, with each implementation, under
/// `{impl}/{name}` in group `g`.
fn bench_blocks(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    mem: &mut HostMem,
    direct: &mut DirectMem,
    name: &str,
    blocks: &[(u64, u32)],
) {
    let orders: Vec<Order> = (0..=51).map(ord).collect();
    g.bench_function(format!("radix/{name}"), |b| {
        b.iter_custom(|iters| {
            time_radix(mem, iters, |tree, mem| {
                for &(p, o) in blocks {
                    tree.preserve(mem, pfn(p), orders[o as usize]).unwrap();
                }
            })
        })
    });
    g.bench_function(format!("upstream/{name}"), |b| {
        b.iter_custom(|iters| {
            time_upstream(mem, iters, |tree, mem| {
                for &(p, o) in blocks {
                    tree.add_page(mem, p, o).unwrap();
                }
            })
        })
    });
    g.bench_function(format!("radix-direct/{name}"), |b| {
        b.iter_custom(|iters| {
            time_radix(direct, iters, |tree, mem| {
                for &(p, o) in blocks {
                    tree.preserve(mem, pfn(p), orders[o as usize]).unwrap();
                }
            })
        })
    });
    g.bench_function(format!("upstream-direct/{name}"), |b| {
        b.iter_custom(|iters| {
            time_upstream(direct, iters, |tree, mem| {
                for &(p, o) in blocks {
                    tree.add_page(mem, p, o).unwrap();
                }
            })
        })
    });
    g.bench_function(format!("roaring/{name}"), |b| {
        b.iter_custom(|iters| {
            time_build(iters, || {
                let mut set = RoaringTreemap::new();
                for &(p, o) in blocks {
                    set.insert(key(p, o));
                }
                set
            })
        })
    });
    g.bench_function(format!("btreeset/{name}"), |b| {
        b.iter_custom(|iters| {
            time_build(iters, || {
                let mut set = BTreeSet::new();
                for &(p, o) in blocks {
                    set.insert(key(p, o));
                }
                set
            })
        })
    });
}

fn insert(c: &mut Criterion) {
    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, NODE_RAM).unwrap();
    let mut direct = DirectMem::new(HostMem::DEFAULT_BASE.as_u64(), NODE_RAM);
    let mut g = c.benchmark_group("insert");
    g.sampling_mode(SamplingMode::Flat);
    for (size, pages) in SIZES {
        let frames: Vec<(u64, u32)> = (FIRST..FIRST + pages).map(|p| (p, 0)).collect();
        g.throughput(Throughput::Elements(pages));
        bench_blocks(
            &mut g,
            &mut mem,
            &mut direct,
            &format!("sequential-{size}"),
            &frames,
        );
        let frames = shuffle(frames);
        bench_blocks(
            &mut g,
            &mut mem,
            &mut direct,
            &format!("random-{size}"),
            &frames,
        );
    }
    g.finish();

    let mut g = c.benchmark_group("mixed");
    g.sampling_mode(SamplingMode::Flat);
    let set = mixed();
    g.throughput(Throughput::Elements(set.len() as u64));
    bench_blocks(&mut g, &mut mem, &mut direct, "sequential", &set);
    let set = shuffle(set);
    bench_blocks(&mut g, &mut mem, &mut direct, "random", &set);
    g.finish();
}

fn range(c: &mut Criterion) {
    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, NODE_RAM).unwrap();
    let mut direct = DirectMem::new(HostMem::DEFAULT_BASE.as_u64(), NODE_RAM);
    let mut g = c.benchmark_group("range");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(PAGES));
    for (name, start, n) in [
        ("aligned", FIRST, PAGES),
        ("unaligned", FIRST + 1, PAGES - 2),
    ] {
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter_custom(|iters| {
                time_radix(&mut mem, iters, |tree, mem| {
                    tree.preserve_range(mem, pfn(start), n).unwrap();
                })
            })
        });
        g.bench_function(format!("upstream/{name}"), |b| {
            b.iter_custom(|iters| {
                time_upstream(&mut mem, iters, |tree, mem| {
                    tree.preserve_pages(mem, start, n).unwrap();
                })
            })
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter_custom(|iters| {
                time_radix(&mut direct, iters, |tree, mem| {
                    tree.preserve_range(mem, pfn(start), n).unwrap();
                })
            })
        });
        g.bench_function(format!("upstream-direct/{name}"), |b| {
            b.iter_custom(|iters| {
                time_upstream(&mut direct, iters, |tree, mem| {
                    tree.preserve_pages(mem, start, n).unwrap();
                })
            })
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter_custom(|iters| {
                time_build(iters, || {
                    let mut set = RoaringTreemap::new();
                    set.insert_range(key(start, 0)..key(start + n, 0));
                    set
                })
            })
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter_custom(|iters| {
                time_build(iters, || {
                    (start..start + n)
                        .map(|p| key(p, 0))
                        .collect::<BTreeSet<u64>>()
                })
            })
        });
    }
    g.finish();
}

/// One set of blocks in every structure: the radix tree and the upstream
/// tree in each memory, and the keys in roaring and `BTreeSet`.
struct Sets {
    name: &'static str,
    root: PhysAddr,
    direct_root: PhysAddr,
    upstream: upstream::Tree,
    direct_upstream: upstream::Tree,
    roaring: RoaringTreemap,
    btree: BTreeSet<u64>,
    blocks: u64,
}

fn build_radix<M: PhysMem>(mem: &mut M, blocks: &[(u64, u32)]) -> PhysAddr {
    let mut tree = RadixTree::new(mem).unwrap();
    for &(p, o) in blocks {
        tree.preserve(mem, pfn(p), ord(o)).unwrap();
    }
    tree.root()
}

fn build_upstream<M: PhysMem>(mem: &mut M, blocks: &[(u64, u32)]) -> upstream::Tree {
    let mut tree = upstream::Tree::new(mem).unwrap();
    for &(p, o) in blocks {
        tree.add_page(mem, p, o).unwrap();
    }
    tree
}

fn build_sets(
    mem: &mut HostMem,
    direct: &mut DirectMem,
    name: &'static str,
    blocks: &[(u64, u32)],
) -> Sets {
    Sets {
        name,
        root: build_radix(mem, blocks),
        direct_root: build_radix(direct, blocks),
        upstream: build_upstream(mem, blocks),
        direct_upstream: build_upstream(direct, blocks),
        roaring: blocks.iter().map(|&(p, o)| key(p, o)).collect(),
        btree: blocks.iter().map(|&(p, o)| key(p, o)).collect(),
        blocks: blocks.len() as u64,
    }
}

/// Coalesces `(phys, order)` blocks arriving in key order into runs of one
/// order adjacent in memory, folding each finished run into a checksum.
#[derive(Default)]
struct Coalesce {
    sum: u64,
    run: Option<(u64, u64, u32)>,
}

impl Coalesce {
    #[inline(always)]
    fn push(&mut self, phys: u64, order: u32) {
        let size = 4096u64 << order;
        self.run = match self.run {
            Some((s, n, o)) if o == order && s + n == phys => Some((s, n + size, o)),
            Some((s, n, _)) => {
                self.sum = self.sum.wrapping_add(black_box(s ^ n));
                Some((phys, size, order))
            }
            None => Some((phys, size, order)),
        };
    }

    fn finish(mut self) -> u64 {
        if let Some((s, n, _)) = self.run {
            self.sum = self.sum.wrapping_add(black_box(s ^ n));
        }
        self.sum
    }
}

/// Per-block walk of the tree at `root`; every address goes through
/// `black_box` so the callback cannot be folded away.
fn walk_sum<M: PhysMem>(mem: &M, root: PhysAddr, buf: &mut [u64]) -> u64 {
    let mut visited = VisitedSet::new(buf);
    let mut sum = 0u64;
    let flow = kho_radix::walk(mem, root, &mut visited, |phys, _| {
        sum = sum.wrapping_add(black_box(phys.as_u64()));
        ControlFlow::<()>::Continue(())
    });
    assert!(flow.is_ok());
    sum
}

fn upstream_sum<M: PhysMem>(mem: &M, tree: &upstream::Tree) -> u64 {
    let mut sum = 0u64;
    let err = tree.walk(mem, &mut |phys, _| {
        sum = sum.wrapping_add(black_box(phys));
        0
    });
    assert_eq!(err, Ok(0));
    sum
}

fn ranges_sum<M: PhysMem>(mem: &M, root: PhysAddr, buf: &mut [u64]) -> u64 {
    let mut visited = VisitedSet::new(buf);
    kho_radix::ranges(mem, root, &mut visited).fold(0u64, |a, r| {
        let r = r.unwrap().range();
        a.wrapping_add(black_box(r.start().as_u64() ^ r.size()))
    })
}

fn upstream_ranges<M: PhysMem>(mem: &M, tree: &upstream::Tree) -> u64 {
    let mut runs = Coalesce::default();
    let err = tree.walk(mem, &mut |phys, order| {
        runs.push(phys, order);
        0
    });
    assert_eq!(err, Ok(0));
    runs.finish()
}

fn keys_ranges(keys: impl Iterator<Item = u64>) -> u64 {
    let mut runs = Coalesce::default();
    for k in keys {
        let (phys, order) = decode(k);
        runs.push(phys, order);
    }
    runs.finish()
}

fn walks(c: &mut Criterion) {
    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, RAM).unwrap();
    let mut direct = DirectMem::new(HostMem::DEFAULT_BASE.as_u64(), RAM);
    let small: Vec<(u64, u32)> = (FIRST..FIRST + 256).map(|p| (p, 0)).collect();
    let dense: Vec<(u64, u32)> = (FIRST..FIRST + PAGES).map(|p| (p, 0)).collect();
    // The 16 GiB range preserved one page late and one page short (the
    // `range` group's `unaligned`): 40 blocks of orders 0-21, as a range
    // preservation leaves it for the next kernel to walk.
    let unaligned: Vec<(u64, u32)> = kho_radix::PageBlocks::new(pfn(FIRST + 1), PAGES - 2)
        .unwrap()
        .map(|(p, o)| (p.as_u64(), o.get()))
        .collect();
    let sets = [
        build_sets(&mut mem, &mut direct, "small", &small),
        build_sets(&mut mem, &mut direct, "dense", &dense),
        build_sets(&mut mem, &mut direct, "sparse", &sparse()),
        build_sets(&mut mem, &mut direct, "mixed", &mixed()),
        build_sets(&mut mem, &mut direct, "unaligned", &unaligned),
    ];
    drop(dense);
    let mut buf = vec![0u64; VisitedSet::words_for(STUB_WALK_NODES)];

    let mut g = c.benchmark_group("walk_blocks");
    for s in &sets {
        let name = s.name;
        g.throughput(Throughput::Elements(s.blocks));
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter(|| walk_sum(&mem, s.root, &mut buf))
        });
        g.bench_function(format!("upstream/{name}"), |b| {
            b.iter(|| upstream_sum(&mem, &s.upstream))
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter(|| walk_sum(&direct, s.direct_root, &mut buf))
        });
        g.bench_function(format!("upstream-direct/{name}"), |b| {
            b.iter(|| upstream_sum(&direct, &s.direct_upstream))
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter(|| {
                s.roaring
                    .iter()
                    .fold(0u64, |a, k| a.wrapping_add(black_box(decode(k).0)))
            })
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter(|| {
                s.btree
                    .iter()
                    .fold(0u64, |a, &k| a.wrapping_add(black_box(decode(k).0)))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("walk_ranges");
    for s in sets.iter().filter(|s| s.name != "small") {
        let name = s.name;
        g.throughput(Throughput::Elements(s.blocks));
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter(|| ranges_sum(&mem, s.root, &mut buf))
        });
        g.bench_function(format!("upstream/{name}"), |b| {
            b.iter(|| upstream_ranges(&mem, &s.upstream))
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter(|| ranges_sum(&direct, s.direct_root, &mut buf))
        });
        g.bench_function(format!("upstream-direct/{name}"), |b| {
            b.iter(|| upstream_ranges(&direct, &s.direct_upstream))
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter(|| keys_ranges(s.roaring.iter()))
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter(|| keys_ranges(s.btree.iter().copied()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = insert, range, walks
}
criterion_main!(benches);
