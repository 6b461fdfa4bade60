//! Criterion benchmarks of the radix tracker against `RoaringTreemap` and
//! `BTreeSet<u64>` doing the same work in the same run.
//!
//! Workloads (all over 16 GiB = 4 Mi pages of order 0 at [2 GiB, 18 GiB);
//! the walks read trees in a 17 GiB `HostMem` whose untouched bytes cost
//! nothing, so every preserved page is RAM):
//!
//! - `insert`: preserve 4 Mi order-0 pages one call each, in address order
//!   (`sequential`) and in a fixed random permutation (`random`);
//! - `range`: preserve the 16 GiB as one page range (`aligned`: the range
//!   starts on a 2 GiB boundary, 4 blocks; `unaligned`: one page later, one
//!   page shorter, 40 blocks); roaring uses `insert_range`, `BTreeSet`
//!   inserts every page;
//! - `walk_blocks`: visit every preserved page, `dense` (all 4 Mi pages) and
//!   `sparse` (a fixed random 1/16 of them);
//! - `walk_ranges`: the same sets as coalesced runs.
//!
//! The radix walks are the untrusted incoming walks (every entry and block
//! checked, a `VisitedSet` in use). Run with `cargo bench -p kho-radix`;
//! the figures are recorded in `docs/BENCHMARKS.md`.

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

fn pfn(p: u64) -> Pfn {
    Pfn::try_new(p).unwrap()
}

/// A `PhysMem` shaped like a kernel's direct map: one flat, word-addressed
/// RAM region whose aligned `u64` accesses are a bounds check and a load or
/// store, plus a free-list page allocator. `HostMem` (the test arena) pays
/// a region search and a `memmove` per access; a kernel's `PhysMem` pays
/// neither, so the tree is measured over both.
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
        // Byte access is not used by the tree; keep it simple.
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

/// The 4 Mi frames in a fixed random order (Fisher-Yates).
fn shuffled() -> Vec<u64> {
    let mut v: Vec<u64> = (FIRST..FIRST + PAGES).collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in (1..v.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// A fixed random 1/16 of the frames, ascending.
fn sparse() -> Vec<u64> {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    (FIRST..FIRST + PAGES)
        .filter(|_| rng.next().is_multiple_of(16))
        .collect()
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Time `iters` runs of `fill` on a fresh tree, excluding its teardown.
fn time_tree<M: PhysMem>(
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

/// Call `f` for every frame: the given order, or ascending if `None`.
/// Generic, so each structure's insert is inlined into the loop.
#[inline(always)]
fn for_frames(frames: Option<&[u64]>, f: impl FnMut(u64)) {
    match frames {
        Some(v) => v.iter().copied().for_each(f),
        None => (FIRST..FIRST + PAGES).for_each(f),
    }
}

fn insert(c: &mut Criterion) {
    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, NODE_RAM).unwrap();
    let mut direct = DirectMem::new(HostMem::DEFAULT_BASE.as_u64(), NODE_RAM);
    let random = shuffled();
    let order0 = Order::ZERO;
    let mut g = c.benchmark_group("insert");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(PAGES));
    for (name, frames) in [("sequential", None), ("random", Some(&random[..]))] {
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter_custom(|iters| {
                time_tree(&mut mem, iters, |tree, mem| {
                    for_frames(frames, |p| tree.preserve(mem, pfn(p), order0).unwrap());
                })
            })
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter_custom(|iters| {
                time_tree(&mut direct, iters, |tree, mem| {
                    for_frames(frames, |p| tree.preserve(mem, pfn(p), order0).unwrap());
                })
            })
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter_custom(|iters| {
                time_build(iters, || {
                    let mut set = RoaringTreemap::new();
                    for_frames(frames, |p| {
                        set.insert(p);
                    });
                    set
                })
            })
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter_custom(|iters| {
                time_build(iters, || {
                    let mut set = BTreeSet::new();
                    for_frames(frames, |p| {
                        set.insert(p);
                    });
                    set
                })
            })
        });
    }
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
                time_tree(&mut mem, iters, |tree, mem| {
                    tree.preserve_range(mem, pfn(start), n).unwrap();
                })
            })
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter_custom(|iters| {
                time_tree(&mut direct, iters, |tree, mem| {
                    tree.preserve_range(mem, pfn(start), n).unwrap();
                })
            })
        });
    }
    g.bench_function("roaring/aligned", |b| {
        b.iter_custom(|iters| {
            time_build(iters, || {
                let mut set = RoaringTreemap::new();
                set.insert_range(FIRST..FIRST + PAGES);
                set
            })
        })
    });
    g.bench_function("btreeset/aligned", |b| {
        b.iter_custom(|iters| {
            time_build(iters, || (FIRST..FIRST + PAGES).collect::<BTreeSet<u64>>())
        })
    });
    g.finish();
}

/// The structures holding the same set of frames: the tree in each memory.
struct Sets {
    root: PhysAddr,
    direct_root: PhysAddr,
    roaring: RoaringTreemap,
    btree: BTreeSet<u64>,
    pages: u64,
}

fn build_tree<M: PhysMem>(mem: &mut M, frames: &[u64]) -> PhysAddr {
    let mut tree = RadixTree::new(mem).unwrap();
    for &p in frames {
        tree.preserve(mem, pfn(p), Order::ZERO).unwrap();
    }
    tree.root()
}

fn build_sets(mem: &mut HostMem, direct: &mut DirectMem, frames: &[u64]) -> Sets {
    Sets {
        root: build_tree(mem, frames),
        direct_root: build_tree(direct, frames),
        roaring: frames.iter().copied().collect(),
        btree: frames.iter().copied().collect(),
        pages: frames.len() as u64,
    }
}

/// Coalesce ascending frames into `(first, count)` runs; returns a checksum.
fn coalesce(frames: impl Iterator<Item = u64>) -> u64 {
    let mut sum = 0u64;
    let mut run: Option<(u64, u64)> = None;
    for p in frames {
        run = match run {
            Some((s, n)) if s + n == p => Some((s, n + 1)),
            Some((s, n)) => {
                sum = sum.wrapping_add(black_box(s ^ n));
                Some((p, 1))
            }
            None => Some((p, 1)),
        };
    }
    if let Some((s, n)) = run {
        sum = sum.wrapping_add(black_box(s ^ n));
    }
    sum
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

fn ranges_sum<M: PhysMem>(mem: &M, root: PhysAddr, buf: &mut [u64]) -> u64 {
    let mut visited = VisitedSet::new(buf);
    kho_radix::ranges(mem, root, &mut visited).fold(0u64, |a, r| {
        let r = r.unwrap().range();
        a.wrapping_add(black_box(r.start().as_u64() ^ r.size()))
    })
}

fn walks(c: &mut Criterion) {
    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, RAM).unwrap();
    let mut direct = DirectMem::new(HostMem::DEFAULT_BASE.as_u64(), RAM);
    let dense: Vec<u64> = (FIRST..FIRST + PAGES).collect();
    let sets = [
        ("dense", build_sets(&mut mem, &mut direct, &dense)),
        ("sparse", build_sets(&mut mem, &mut direct, &sparse())),
    ];
    drop(dense);
    let mut buf = vec![0u64; VisitedSet::words_for(4096)];

    let mut g = c.benchmark_group("walk_blocks");
    for (name, s) in &sets {
        g.throughput(Throughput::Elements(s.pages));
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter(|| walk_sum(&mem, s.root, &mut buf))
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter(|| walk_sum(&direct, s.direct_root, &mut buf))
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter(|| {
                s.roaring
                    .iter()
                    .fold(0u64, |a, p| a.wrapping_add(black_box(p << 12)))
            })
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter(|| {
                s.btree
                    .iter()
                    .fold(0u64, |a, &p| a.wrapping_add(black_box(p << 12)))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("walk_ranges");
    for (name, s) in &sets {
        g.throughput(Throughput::Elements(s.pages));
        g.bench_function(format!("radix/{name}"), |b| {
            b.iter(|| ranges_sum(&mem, s.root, &mut buf))
        });
        g.bench_function(format!("radix-direct/{name}"), |b| {
            b.iter(|| ranges_sum(&direct, s.direct_root, &mut buf))
        });
        g.bench_function(format!("roaring/{name}"), |b| {
            b.iter(|| coalesce(s.roaring.iter()))
        });
        g.bench_function(format!("btreeset/{name}"), |b| {
            b.iter(|| coalesce(s.btree.iter().copied()))
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
