//! Criterion benchmarks of kho-fdt's root-FDT builder and parser against
//! libfdt doing the same work in the same run, and of `KhoOut::add_subtree`.
//!
//! Workloads, each with 0, 1, 16 and 64 children named `client-<i>`, every
//! child with `preserved-data` and `blob-size` (kho-v4, the version Linux
//! 7.2 writes):
//!
//! - `fdt_build`: write the whole FDT. kho-rs: `KhoFdtBuilder::new`, one
//!   `add_subtree` per child, `build` (a fresh `Vec`). libfdt: the
//!   sequential-write API (`fdt_create`, `fdt_begin_node`, `fdt_property`,
//!   ..., `fdt_finish`) into a reused page-sized buffer, in C
//!   (`csrc/libfdt_harness.c`), one FFI call per FDT.
//! - `fdt_parse`: read the same blob (kho-rs's) back. kho-rs:
//!   `KhoFdt::parse` (header, a full structure walk, root, every child,
//!   duplicate names), then every child's values. libfdt:
//!   `fdt_check_header`, the root's compatible and memory map, then
//!   `fdt_for_each_subnode` reading each name, `preserved-data` and
//!   `blob-size`; it checks neither the whole structure nor duplicates.
//! - `kho_out_add`: `KhoOut::add_subtree` once per child on a fresh
//!   `KhoOut` over `HostMem`; every call republishes the FDT page.
//!
//! Run with `cargo bench -p kho-bench`; the figures are recorded in
//! `docs/BENCHMARKS.md` (section kho-fdt). Building needs libfdt-dev.

use std::ffi::{CString, c_char, c_int, c_void};
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use kho::KhoOut;
use kho_abi::AbiVersion;
use kho_fdt::{KhoFdt, KhoFdtBuilder};
use kho_mem::{HostMem, PhysAddr};

unsafe extern "C" {
    /// `csrc/libfdt_harness.c`: writes the FDT, returns its size or a
    /// negative libfdt error.
    fn kho_libfdt_build(
        buf: *mut c_void,
        bufsize: c_int,
        compatible: *const c_char,
        map: u64,
        n: c_int,
        names: *const *const c_char,
        data: *const u64,
        sizes: *const u64,
    ) -> c_int;
    /// `csrc/libfdt_harness.c`: reads the FDT, returns the number of
    /// children or a negative libfdt error.
    fn kho_libfdt_parse(fdt: *const c_void, compatible: *const c_char, sum: *mut u64) -> c_int;
}

const VERSION: AbiVersion = AbiVersion::V4;
const MEMORY_MAP: PhysAddr = PhysAddr::new(0x4123_4000);
const COUNTS: [usize; 4] = [0, 1, 16, 64];
const PAGE: usize = 4096;

/// The children of a workload: names, `preserved-data`, `blob-size`.
struct Children {
    names: Vec<String>,
    c_names: Vec<CString>,
    data: Vec<u64>,
    sizes: Vec<u64>,
}

impl Children {
    fn new(n: usize) -> Children {
        let names: Vec<String> = (0..n).map(|i| format!("client-{i}")).collect();
        Children {
            c_names: names
                .iter()
                .map(|s| CString::new(s.as_str()).unwrap())
                .collect(),
            names,
            data: (0..n as u64).map(|i| 0x4124_5000 + i * 0x1000).collect(),
            sizes: (0..n as u64).map(|i| 4096 + i).collect(),
        }
    }

    fn build_kho_rs(&self) -> Vec<u8> {
        let mut b = KhoFdtBuilder::new(VERSION, MEMORY_MAP);
        for ((name, &data), &size) in self.names.iter().zip(&self.data).zip(&self.sizes) {
            b.add_subtree(name, PhysAddr::new(data), Some(size))
                .unwrap();
        }
        b.build().unwrap()
    }
}

/// libfdt's side of `fdt_build`: the FDT written into `buf`.
fn build_libfdt(
    buf: &mut [u8; PAGE],
    compatible: &CString,
    names: &[*const c_char],
    c: &Children,
) -> usize {
    // SAFETY: `buf` is writable for PAGE bytes; `compatible` and every
    // entry of `names` are NUL-terminated strings that outlive the call;
    // `names`, `data` and `sizes` each hold `names.len()` elements.
    let r = unsafe {
        kho_libfdt_build(
            buf.as_mut_ptr().cast(),
            PAGE as c_int,
            compatible.as_ptr(),
            MEMORY_MAP.as_u64(),
            names.len() as c_int,
            names.as_ptr(),
            c.data.as_ptr(),
            c.sizes.as_ptr(),
        )
    };
    assert!(r > 0, "libfdt build failed: {r}");
    r as usize
}

/// libfdt's side of `fdt_parse`: (children, sum of the values read).
fn parse_libfdt(blob: &[u8], compatible: &CString) -> (usize, u64) {
    let mut sum = 0;
    // SAFETY: `blob` is a whole, valid FDT that kho-fdt built, so libfdt
    // reads only inside it (within its header's totalsize, `blob.len()`);
    // `compatible` is NUL-terminated; `sum` is writable.
    let r = unsafe { kho_libfdt_parse(blob.as_ptr().cast(), compatible.as_ptr(), &mut sum) };
    assert!(r >= 0, "libfdt parse failed: {r}");
    (r as usize, sum)
}

/// kho-rs's side of `fdt_parse`, reading what libfdt's side reads.
fn parse_kho_rs(blob: &[u8]) -> (usize, u64) {
    let fdt = KhoFdt::parse(blob).unwrap();
    let mut sum = fdt.memory_map().as_u64();
    for s in fdt.subtrees() {
        sum += s.name().len() as u64 + s.data().as_u64() + s.size().unwrap_or(0);
    }
    (fdt.subtrees().len(), sum)
}

fn fdt_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdt_build");
    let compatible = CString::new(VERSION.compatible()).unwrap();
    for n in COUNTS {
        let children = Children::new(n);
        let names: Vec<*const c_char> = children.c_names.iter().map(|s| s.as_ptr()).collect();
        // Both write the same tree (libfdt's header is 8 bytes longer: it
        // aligns the reservation map to 16).
        let ours = children.build_kho_rs();
        let mut buf = Box::new([0u8; PAGE]);
        let len = build_libfdt(&mut buf, &compatible, &names, &children);
        assert_eq!(parse_kho_rs(&buf[..len]), parse_kho_rs(&ours));

        g.bench_function(BenchmarkId::new("kho-rs", n), |b| {
            b.iter(|| black_box(children.build_kho_rs()))
        });
        g.bench_function(BenchmarkId::new("libfdt", n), |b| {
            b.iter(|| black_box(build_libfdt(&mut buf, &compatible, &names, &children)))
        });
    }
    g.finish();
}

fn fdt_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdt_parse");
    let compatible = CString::new(VERSION.compatible()).unwrap();
    for n in COUNTS {
        let blob = Children::new(n).build_kho_rs();
        assert_eq!(parse_kho_rs(&blob), parse_libfdt(&blob, &compatible));
        g.bench_function(BenchmarkId::new("kho-rs", n), |b| {
            b.iter(|| black_box(parse_kho_rs(black_box(&blob))))
        });
        g.bench_function(BenchmarkId::new("libfdt", n), |b| {
            b.iter(|| black_box(parse_libfdt(black_box(&blob), &compatible)))
        });
    }
    g.finish();
}

fn kho_out_add(c: &mut Criterion) {
    let mut g = c.benchmark_group("kho_out_add");
    for n in COUNTS {
        let children = Children::new(n);
        g.bench_function(BenchmarkId::new("kho-rs", n), |b| {
            b.iter_batched(
                || {
                    let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 1 << 20).unwrap();
                    let out = KhoOut::new(&mut mem, VERSION).unwrap();
                    (mem, out)
                },
                |(mut mem, mut out)| {
                    for ((name, &data), &size) in children
                        .names
                        .iter()
                        .zip(&children.data)
                        .zip(&children.sizes)
                    {
                        out.add_subtree(&mut mem, name, PhysAddr::new(data), Some(size))
                            .unwrap();
                    }
                    (mem, out)
                },
                // One input at a time: a batch of KhoOuts (each several
                // KiB, with its HostMem) would put page faults of the
                // output vector inside the timed region.
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = fdt_build, fdt_parse, kho_out_add
}
criterion_main!(benches);
