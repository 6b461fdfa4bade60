//! One corrupted handover per incoming error: the input that produces it,
//! and the error with the offset or address it names.

mod common;

use common::*;
use kho_abi::Le64;
use kho_abi::rfc2024::{KhoData, MEM_NOINIT};
use kho_mem::{HostMem, PhysAddr, PhysMem};
use kho_ranges::{At, Error, FdtProblem, Handover, Incoming};

const P: u64 = 0x1000;

/// A good range outside scratch, and a second one.
const A: (u64, u64) = (FREE, 2 * P);
const B: (u64, u64) = (FREE + 0x10_0000, P);

/// Place `fdt` and `cache` and read them.
fn check(fdt: &[u8], cache: &[(u64, u64)]) -> Error {
    let mut mem = mem();
    let h = place(&mut mem, fdt, &entries(cache));
    read(&mem, &h).unwrap_err()
}

/// Where the entry `e` sits in `fdt`.
fn at_fdt(fdt: &[u8], e: (u64, u64)) -> At {
    At::Fdt {
        offset: find(fdt, &entries(&[e])),
    }
}

fn at_cache(index: usize) -> At {
    At::Cache {
        index,
        addr: PhysAddr::new(CACHE_AT + 16 * index as u64),
    }
}

#[test]
fn good_tree_and_cache_are_accepted() {
    let fdt = tree(&[("a", &[A]), ("b", &[B])]);
    let mut mem = mem();
    let h = place(&mut mem, &fdt, &entries(&[A, B]));
    assert_eq!(read(&mem, &h).unwrap().len(), 2);
}

#[test]
fn empty_range() {
    let bad = (FREE + 0x20_0000, 0);
    let fdt = tree(&[("a", &[A, bad])]);
    let e = check(&fdt, &[A]);
    assert_eq!(
        e,
        Error::EmptyRange {
            at: at_fdt(&fdt, bad),
            addr: PhysAddr::new(bad.0)
        }
    );
}

#[test]
fn length_not_whole_pages() {
    let bad = (FREE + 0x20_0000, P + 8);
    let fdt = tree(&[("a", &[bad])]);
    assert_eq!(
        check(&fdt, &[]),
        Error::Misaligned {
            at: at_fdt(&fdt, bad),
            addr: PhysAddr::new(bad.0),
            len: P + 8
        }
    );
}

#[test]
fn reserved_flags_or_unaligned_address() {
    let bad = (FREE + 0x20_0000 + 0x10, P);
    let fdt = tree(&[("a", &[bad])]);
    assert_eq!(
        check(&fdt, &[]),
        Error::ReservedFlags {
            at: at_fdt(&fdt, bad),
            raw: bad.0
        }
    );
}

#[test]
fn range_overflow() {
    let bad = (!0xfff, 2 * P);
    let fdt = tree(&[("a", &[bad])]);
    assert_eq!(
        check(&fdt, &[]),
        Error::RangeOverflow {
            at: at_fdt(&fdt, bad),
            addr: PhysAddr::new(bad.0),
            len: 2 * P
        }
    );
}

#[test]
fn range_outside_ram() {
    // Straddles the end of RAM.
    let bad = (BASE + RAM - P, 2 * P);
    let fdt = tree(&[("a", &[bad])]);
    assert_eq!(
        check(&fdt, &[]),
        Error::NotRam {
            at: at_fdt(&fdt, bad),
            range: r(bad.0, bad.1)
        }
    );
}

#[test]
fn range_inside_scratch() {
    let bad = (FREE - P, 2 * P); // the last scratch page and the next one
    let fdt = tree(&[("a", &[bad])]);
    assert_eq!(
        check(&fdt, &[]),
        Error::InScratch {
            at: at_fdt(&fdt, bad),
            range: r(bad.0, bad.1),
            scratch: scratch()
        }
    );
}

/// Two nodes whose ranges overlap; the cache holds both, sorted, as a
/// writer that did not check would write it: refused while the cache is
/// read, before any reservation.
#[test]
fn overlapping_mem_ranges() {
    let c = (A.0 + P, 2 * P);
    let fdt = tree(&[("a", &[A]), ("c", &[c])]);
    assert_eq!(
        check(&fdt, &[A, c]),
        Error::Overlap {
            at: at_cache(1),
            range: r(c.0, c.1),
            other: r(A.0, A.1)
        }
    );
}

/// The same range in two nodes, once in the cache.
#[test]
fn same_range_in_two_nodes() {
    let fdt = tree(&[("a", &[A]), ("b", &[A])]);
    let second = find(&fdt[find(&fdt, &entries(&[A])) + 16..], &entries(&[A]))
        + find(&fdt, &entries(&[A]))
        + 16;
    assert_eq!(
        check(&fdt, &[A]),
        Error::Overlap {
            at: At::Fdt { offset: second },
            range: r(A.0, A.1),
            other: r(A.0, A.1)
        }
    );
}

#[test]
fn cache_misses_a_tree_range() {
    let fdt = tree(&[("a", &[A]), ("b", &[B])]);
    assert_eq!(
        check(&fdt, &[A]),
        Error::NotInCache {
            at: at_fdt(&fdt, B),
            range: r(B.0, B.1)
        }
    );
}

#[test]
fn cache_has_a_range_no_node_holds() {
    let fdt = tree(&[("a", &[A])]);
    assert_eq!(
        check(&fdt, &[A, B]),
        Error::NotInTree {
            at: at_cache(1),
            range: r(B.0, B.1)
        }
    );
}

/// Same address, different length or flags: a disagreement too.
#[test]
fn cache_disagrees_on_length_or_flags() {
    let fdt = tree(&[("a", &[A])]);
    assert_eq!(
        check(&fdt, &[(A.0, P)]),
        Error::NotInCache {
            at: at_fdt(&fdt, A),
            range: r(A.0, A.1)
        }
    );
    assert_eq!(
        check(&fdt, &[(A.0 | MEM_NOINIT, A.1)]),
        Error::NotInCache {
            at: at_fdt(&fdt, A),
            range: r(A.0, A.1)
        }
    );
}

#[test]
fn cache_unsorted() {
    let fdt = tree(&[("a", &[A]), ("b", &[B])]);
    assert_eq!(
        check(&fdt, &[B, A]),
        Error::CacheUnsorted {
            at: at_cache(1),
            range: r(A.0, A.1),
            previous: r(B.0, B.1)
        }
    );
}

#[test]
fn cache_range_checked_too() {
    let fdt = tree(&[("a", &[A])]);
    let bad = (BASE + RAM, P);
    assert_eq!(
        check(&fdt, &[A, bad]),
        Error::NotRam {
            at: at_cache(1),
            range: r(bad.0, bad.1)
        }
    );
}

#[test]
fn cache_length_not_whole_entries() {
    let fdt = tree(&[("a", &[A])]);
    let mut mem = mem();
    let mut cache = entries(&[A]);
    cache.extend_from_slice(&[0; 8]);
    let h = place(&mut mem, &fdt, &cache);
    assert_eq!(
        read(&mem, &h).unwrap_err(),
        Error::CacheLength {
            cache: r(CACHE_AT, 24)
        }
    );
}

#[test]
fn cache_not_ram() {
    let fdt = tree(&[("a", &[A])]);
    let mut mem = mem();
    let mut h = place(&mut mem, &fdt, &entries(&[A]));
    h.mem_cache = r(BASE + RAM - 8, 16);
    assert_eq!(
        read(&mem, &h).unwrap_err(),
        Error::CacheNotRam { cache: h.mem_cache }
    );
}

#[test]
fn mem_length_not_whole_entries() {
    let fdt = tree_with(kho_abi::rfc2024::COMPATIBLE, &[("a", &[])], |_, w| {
        w.property("mem", &[0u8; 24]).unwrap();
    });
    let offset = find(&fdt, &[0u8; 24]);
    assert_eq!(check(&fdt, &[]), Error::MemLength { offset, len: 24 });
}

#[test]
fn two_mem_properties_in_one_node() {
    let fdt = tree_with(kho_abi::rfc2024::COMPATIBLE, &[("a", &[A])], |_, w| {
        w.property("mem", &entries(&[B])).unwrap();
    });
    let offset = find(&fdt, &entries(&[B]));
    assert_eq!(check(&fdt, &[A, B]), Error::DuplicateMem { offset });
}

#[test]
fn wrong_or_missing_compatible() {
    let fdt = tree_with("kho-v1", &[("a", &[A])], |_, _| {});
    let offset = find(&fdt, b"kho-v1\0");
    assert_eq!(check(&fdt, &[A]), Error::Compatible { offset });
    // A string list starting with it is not exactly it.
    let fdt = tree_with("kho-v1", &[("a", &[A])], |_, _| {});
    let mut list = fdt.clone();
    let at = find(&fdt, b"kho-v1\0");
    list[at..at + 7].copy_from_slice(b"kho-202");
    assert_eq!(check(&list, &[A]), Error::Compatible { offset: at });
    let fdt = tree_with("", &[("a", &[A])], |_, _| {});
    // The root node's FDT_BEGIN_NODE token is the first of the structure.
    let root = u32::from_be_bytes(fdt[8..12].try_into().unwrap()) as usize;
    assert_eq!(check(&fdt, &[A]), Error::Compatible { offset: root });
}

#[test]
fn fdt_container_problems() {
    let good = tree(&[("a", &[A])]);
    let mut bad = good.clone();
    bad[0] = 0;
    assert_eq!(
        check(&bad, &[A]),
        Error::Fdt {
            offset: 0,
            problem: FdtProblem::BadMagic
        }
    );
    // totalsize beyond the blob handed over.
    assert_eq!(
        check(&good[..good.len() - 4], &[A]),
        Error::Fdt {
            offset: 4,
            problem: FdtProblem::Truncated
        }
    );
    // The root's FDT_BEGIN_NODE replaced by an unknown token.
    let mut bad = good.clone();
    let s = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    bad[s..s + 4].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        check(&bad, &[A]),
        Error::Fdt {
            offset: s,
            problem: FdtProblem::BadToken(7)
        }
    );
    // A property length running past the structure block.
    let mut bad = good.clone();
    let v = find(&good, &entries(&[A]));
    bad[v - 8..v - 4].copy_from_slice(&0x10_0000u32.to_be_bytes());
    assert_eq!(
        check(&bad, &[A]),
        Error::Fdt {
            offset: v - 12,
            problem: FdtProblem::PastStructure
        }
    );
    // A property name offset outside the strings block.
    let mut bad = good.clone();
    bad[v - 4..v].copy_from_slice(&0x10_0000u32.to_be_bytes());
    assert_eq!(
        check(&bad, &[A]),
        Error::Fdt {
            offset: v - 4,
            problem: FdtProblem::BadName
        }
    );
}

/// Checks kho-fdt's shared walk adds, and what it still accepts: a node
/// name with `/` and a property after a child are named; `FDT_NOP`
/// tokens (libfdt's in-place deletions) are skipped.
#[test]
fn fdt_walk_names_and_nops() {
    let good = tree(&[("a", &[A]), ("b", &[B])]);
    // The FDT_BEGIN_NODE token of "a", then its name.
    let a = find(&good, &[0, 0, 0, 1, b'a', 0, 0, 0]);
    let mut bad = good.clone();
    bad[a + 4] = b'/';
    assert_eq!(
        check(&bad, &[A, B]),
        Error::Fdt {
            offset: a,
            problem: FdtProblem::BadNodeName
        }
    );
    // "b"'s FDT_BEGIN_NODE and name turned into a property of the root,
    // after the child "a": a one-word name offset into the strings
    // block and an empty value.
    let b = find(&good, &[0, 0, 0, 1, b'b', 0, 0, 0]);
    let mut bad = good.clone();
    bad[b..b + 4].copy_from_slice(&3u32.to_be_bytes());
    bad[b + 4..b + 8].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        check(&bad, &[A, B]),
        Error::Fdt {
            offset: b,
            problem: FdtProblem::PropertyAfterChild
        }
    );
    // A client property NOPed out in place is skipped.
    let fdt = tree_with(kho_abi::rfc2024::COMPATIBLE, &[("a", &[A])], |_, w| {
        w.property("client", &[0xab; 8]).unwrap();
    });
    let at = find(&fdt, &[0xab; 8]) - 12;
    let mut nop = fdt.clone();
    for w in (at..at + 20).step_by(4) {
        nop[w..w + 4].copy_from_slice(&4u32.to_be_bytes());
    }
    let mut mem = mem();
    let h = place(&mut mem, &nop, &entries(&[A]));
    assert_eq!(read(&mem, &h).unwrap().len(), 1);
}

#[test]
fn nodes_too_deep() {
    // 65 nested nodes, written by hand (vm-fdt stops at 64).
    let mut s = Vec::new();
    for d in 0..65 {
        s.extend_from_slice(&1u32.to_be_bytes());
        s.extend_from_slice(if d == 0 { &[0, 0, 0, 0] } else { b"n\0\0\0" });
    }
    for _ in 0..65 {
        s.extend_from_slice(&2u32.to_be_bytes());
    }
    s.extend_from_slice(&9u32.to_be_bytes());
    let mut blob = Vec::new();
    let total = 40 + 16 + s.len();
    for w in [
        0xd00d_feed,
        total as u32,
        56,
        total as u32,
        40,
        17,
        16,
        0,
        0,
        s.len() as u32,
    ] {
        blob.extend_from_slice(&u32::to_be_bytes(w));
    }
    blob.extend_from_slice(&[0; 16]); // empty reservation map
    blob.extend_from_slice(&s);
    assert_eq!(
        check(&blob, &[]),
        Error::Fdt {
            offset: 56 + 64 * 8,
            problem: FdtProblem::TooDeep
        }
    );
}

#[test]
fn too_many_ranges_for_the_buffer() {
    let fdt = tree(&[("a", &[A]), ("b", &[B])]);
    let mut mem = mem();
    let h = place(&mut mem, &fdt, &entries(&[A, B]));
    let mut none: [u64; 0] = [];
    assert_eq!(
        Incoming::validate(&mem, &fdt, &h, &mut none).unwrap_err(),
        Error::TooManyRanges {
            ranges: 2,
            capacity: 0
        }
    );
    // One word tracks 64 ranges.
    let mut one = [u64::MAX; 1];
    assert!(Incoming::validate(&mem, &fdt, &h, &mut one).is_ok());
}

#[test]
fn fdt_larger_than_the_buffer() {
    let fdt = tree(&[("a", &[A])]);
    let mut mem = mem();
    let h = place(&mut mem, &fdt, &entries(&[A]));
    let mut small = [0u8; 64];
    assert_eq!(
        h.read_fdt(&mem, &mut small).unwrap_err(),
        Error::FdtTooLarge {
            size: fdt.len() as u64,
            capacity: 64
        }
    );
}

#[test]
fn kho_data_that_wraps() {
    let data = KhoData {
        mem_cache_addr: Le64::new(u64::MAX - 0xf),
        mem_cache_size: Le64::new(0x20),
        ..KhoData::default()
    };
    assert_eq!(
        Handover::from_kho_data(&data).unwrap_err(),
        Error::BadHandover {
            field: "mem_cache",
            addr: u64::MAX - 0xf,
            size: 0x20
        }
    );
}

#[test]
fn scratch_not_ram_or_misaligned() {
    let fdt = tree(&[("a", &[A])]);
    let mut mem = mem();
    let mut h = place(&mut mem, &fdt, &entries(&[A]));
    h.scratch = r(BASE + RAM - P, 2 * P);
    assert_eq!(
        read(&mem, &h).unwrap_err(),
        Error::BadScratch { scratch: h.scratch }
    );
    h.scratch = r(BASE + 8, P);
    assert_eq!(
        read(&mem, &h).unwrap_err(),
        Error::BadScratch { scratch: h.scratch }
    );
}

/// RAM in two regions: a range spanning the hole is not RAM.
#[test]
fn range_across_a_hole() {
    let lo = r(BASE, RAM);
    let hi = r(BASE + RAM + 0x10_0000, 0x10_0000);
    let mut mem = HostMem::with_ram(&[lo, hi]).unwrap();
    let bad = (BASE + RAM - P, 0x10_0000 + 2 * P);
    let fdt = tree(&[("a", &[bad])]);
    let h = place(&mut mem, &fdt, &[]);
    assert_eq!(
        read(&mem, &h).unwrap_err(),
        Error::NotRam {
            at: at_fdt(&fdt, bad),
            range: r(bad.0, bad.1)
        }
    );
    let _ = mem.is_ram(PhysAddr::new(BASE), 1);
}
