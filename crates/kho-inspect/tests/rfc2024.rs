//! Handovers of the 2024 design (docs/ABI.md, "The 2024 design"), written
//! by kho-ranges' `Tracker` and placed as that design's old kernel places
//! them: the FDT and the mem cache in scratch, a 48-byte `kho_data` in a
//! type-10 `setup_data` entry linked from a zero page. The inspector decodes
//! them from every x86 start point, from the FDT alone and with `find`, and
//! names each corruption with its own problem code.

use kho::handoff::x86::{self, BootParamsOut, MemoryEntry};
use kho_abi::rfc2024::{COMPATIBLE, KhoData, KhoMem, MEM_NOINIT};
use kho_abi::x86::{SETUP_KEXEC_KHO, SetupDataHeader, boot_params, e820};
use kho_abi::{Le32, Le64};
use kho_inspect::report::{Location, MemRangeInfo, Rfc2024};
use kho_inspect::{Limits, Report, Start};
use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
use kho_ranges::{MemFlags, Tracker};
use zerocopy::IntoBytes;

const BASE: u64 = 0x4000_0000;
const RAM: u64 = 8 << 20;
/// Scratch: the first 2 MiB; the FDT, the cache and the boot structures
/// live in it.
const SCRATCH: u64 = 2 << 20;
const FREE: u64 = BASE + SCRATCH;
const FDT_AT: u64 = BASE + 0x1000;
const CACHE_AT: u64 = BASE + 0x10_0000;
const BOOT_PARAMS: u64 = BASE + 0x18_0000;
const ENTRY: u64 = BASE + 0x18_1000;
const P: u64 = 0x1000;

fn range(addr: u64, size: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(addr), size).unwrap()
}

fn scratch() -> PhysRange {
    range(BASE, SCRATCH)
}

/// The FDT and the mem cache of a tracker with ranges in the root, two
/// nested nodes and a node with a unit address, two of them NOINIT.
fn serialized() -> (Vec<u8>, Vec<u8>) {
    let mut t = Tracker::new(scratch()).unwrap();
    t.preserve("", range(FREE, P), MemFlags::NONE).unwrap();
    t.preserve(
        "ftrace/cpu0",
        range(FREE + 0x10_0000, 2 * P),
        MemFlags::NONE,
    )
    .unwrap();
    t.preserve("ftrace/cpu0", range(FREE + 0x20_0000, P), MemFlags::NOINIT)
        .unwrap();
    t.preserve(
        "ftrace/cpu1",
        range(FREE + 0x30_0000, 4 * P),
        MemFlags::NONE,
    )
    .unwrap();
    t.preserve(
        "guest@1",
        range(FREE + 0x40_0000, 0x10_0000),
        MemFlags::NOINIT,
    )
    .unwrap();
    t.set_property("guest@1", "vcpus", &4u32.to_be_bytes())
        .unwrap();
    let out = t.serialize().unwrap();
    (out.fdt().to_vec(), out.mem_cache().to_vec())
}

/// RAM with `fdt` and `cache` in scratch, named by a 48-byte `kho_data`
/// at [`ENTRY`] that the zero page at [`BOOT_PARAMS`] links.
fn place(fdt: &[u8], cache: &[u8]) -> HostMem {
    let mut mem = HostMem::new(PhysAddr::new(BASE), RAM).unwrap();
    mem.write(PhysAddr::new(FDT_AT), fdt).unwrap();
    mem.write(PhysAddr::new(CACHE_AT), cache).unwrap();
    let memory = [MemoryEntry {
        range: range(BASE, RAM),
        kind: e820::RAM,
    }];
    // write_boot_params writes kho-v2's 32-byte kho_data only: the zero
    // page without it, then the 2024 entry by hand.
    let params = BootParamsOut {
        memory: &memory,
        cmdline: None,
        kho: None,
        acpi_rsdp: None,
        ramdisk: None,
        setup_header: None,
    };
    x86::write_boot_params(&mut mem, PhysAddr::new(BOOT_PARAMS), &params).unwrap();
    let header = SetupDataHeader {
        next: Le64::new(0),
        type_: Le32::new(SETUP_KEXEC_KHO),
        len: Le32::new(48),
    };
    let data = KhoData {
        dt_addr: Le64::new(FDT_AT),
        dt_size: Le64::new(fdt.len() as u64),
        scratch_addr: Le64::new(BASE),
        scratch_size: Le64::new(SCRATCH),
        mem_cache_addr: Le64::new(CACHE_AT),
        mem_cache_size: Le64::new(cache.len() as u64),
    };
    mem.write(PhysAddr::new(ENTRY), header.as_bytes()).unwrap();
    mem.write(PhysAddr::new(ENTRY + 16), data.as_bytes())
        .unwrap();
    mem.write_u64(
        PhysAddr::new(BOOT_PARAMS + boot_params::SETUP_DATA as u64),
        ENTRY,
    )
    .unwrap();
    mem
}

fn good() -> HostMem {
    let (fdt, cache) = serialized();
    place(&fdt, &cache)
}

/// A hand-written tree (the Tracker refuses what these tests need):
/// `(node, entries)` per child of the root, `""` for the root itself.
fn tree(nodes: &[(&str, &[KhoMem])]) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("compatible", COMPATIBLE).unwrap();
    for (name, e) in nodes.iter().filter(|(n, _)| n.is_empty()) {
        let _ = name;
        w.property("mem", e.as_bytes()).unwrap();
    }
    for (name, e) in nodes.iter().filter(|(n, _)| !n.is_empty()) {
        let n = w.begin_node(name).unwrap();
        w.property("mem", e.as_bytes()).unwrap();
        w.end_node(n).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn m(addr: u64, len: u64) -> KhoMem {
    KhoMem::new(addr, len, 0)
}

fn codes(r: &Report) -> Vec<&'static str> {
    r.problems.iter().map(|p| p.code).collect()
}

fn rfc2024(r: &Report) -> &Rfc2024 {
    r.rfc2024.as_ref().expect("a 2024-design report")
}

#[test]
fn a_2024_handover_decodes_from_boot_params() {
    let mem = good();
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    assert_eq!(r.problems, []);
    assert_eq!(r.abi_version.as_deref(), Some("kho-2024"));
    // The kho-v2 … v4 parts stay empty: the design has none of them.
    assert!(r.handover.is_none() && r.scratch.is_none() && r.preserved.is_none());
    assert!(r.subtrees.is_empty());
    let x = rfc2024(&r);
    let k = x.kho_data.unwrap();
    let (fdt, cache) = serialized();
    assert_eq!(
        (k.fdt, k.fdt_size, k.scratch, k.scratch_size),
        (FDT_AT, fdt.len() as u64, BASE, SCRATCH)
    );
    assert_eq!(
        (k.mem_cache, k.mem_cache_size),
        (CACHE_AT, cache.len() as u64)
    );
    let c = x.mem_cache.unwrap();
    assert_eq!((c.entries, c.valid), (5, Some(true)));
    assert_eq!(x.agree, Some(true));
    let t = x.tree.as_ref().unwrap();
    assert!(t.complete);
    assert_eq!((t.ranges, t.pages, t.bytes, t.noinit), (5, 264, 264 * P, 2));
    let nodes: Vec<(&str, usize, u64, u64)> = t
        .nodes
        .iter()
        .map(|n| (n.path.as_str(), n.ranges.len(), n.pages, n.noinit))
        .collect();
    assert_eq!(
        nodes,
        [
            ("/", 1, 1, 0),
            ("/ftrace/cpu0", 2, 3, 1),
            ("/ftrace/cpu1", 1, 4, 0),
            ("/guest@1", 1, 256, 1),
        ]
    );
    assert_eq!(
        t.nodes[1].ranges,
        [
            MemRangeInfo {
                addr: FREE + 0x10_0000,
                size: 2 * P,
                noinit: false
            },
            MemRangeInfo {
                addr: FREE + 0x20_0000,
                size: P,
                noinit: true
            },
        ]
    );
    let f = r.fdt.as_ref().unwrap();
    assert_eq!((f.addr, f.total_size), (FDT_AT, fdt.len() as u64));
    let rendered = f.rendered.as_deref().unwrap();
    assert!(
        rendered.contains("compatible = \"kho-2024\";"),
        "{rendered}"
    );
    assert!(rendered.contains("\tguest@1 {"), "{rendered}");
}

#[test]
fn every_start_point_and_find_agree() {
    let mem = good();
    let from_params = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    let from_entry = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert_eq!(from_entry.problems, []);
    assert_eq!(from_entry.rfc2024, from_params.rfc2024);

    // From the FDT alone: the tree's own checks; scratch and cache unknown.
    let alone = kho_inspect::inspect(&mem, Start::Fdt(FDT_AT));
    assert_eq!(alone.problems, []);
    assert_eq!(alone.abi_version.as_deref(), Some("kho-2024"));
    let x = rfc2024(&alone);
    assert_eq!((x.kho_data, x.mem_cache, x.agree), (None, None, None));
    assert_eq!(x.tree, rfc2024(&from_params).tree);

    let found = kho_inspect::find::find(&mem, &[(BASE, RAM)], Limits::default());
    assert!(found.is_sound(), "{:#?}", found.problems);
    let json = kho_inspect::json::render(&found).unwrap();
    assert!(json.contains("\"kind\": \"x86-setup-data-2024\""), "{json}");
    assert!(json.contains("\"abi_version\": \"kho-2024\""), "{json}");
    assert_eq!(found.decoded.len(), 1);
    let d = &found.decoded[0];
    assert_eq!(d.start, Start::X86SetupData(ENTRY));
    assert_eq!(d.report.rfc2024, from_params.rfc2024);
    let text = kho_inspect::text::render_find(&kho_inspect::report::FindOutput {
        image: kho_inspect::report::ImageInfo {
            file: "mem".into(),
            format: kho_inspect::Format::Raw,
            segments: Vec::new(),
        },
        found: found.clone(),
    });
    assert!(
        text.contains(&format!(
            "  root KHO FDT at {FDT_AT:#x}: kho-2024, {} bytes, at a page start; named by the \
             boot structure at {ENTRY:#x}\n",
            serialized().0.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  x86 setup_data KHO entry at {ENTRY:#x} (type 10, len 48: the 2024 design, at an \
             8-byte boundary): fdt={FDT_AT:#x}"
        )),
        "{text}"
    );
    assert!(
        text.contains("verdict: sound: 1 handover found and decoded"),
        "{text}"
    );

    // Without the entry, the FDT alone is found and decoded.
    let mut bare = good();
    bare.write(PhysAddr::new(ENTRY), &[0; 64]).unwrap();
    let found = kho_inspect::find::find(&bare, &[(BASE, RAM)], Limits::default());
    assert!(found.is_sound(), "{:#?}", found.problems);
    assert_eq!(found.decoded[0].start, Start::Fdt(FDT_AT));
    assert_eq!(found.decoded[0].report.rfc2024, alone.rfc2024);
}

#[test]
fn a_tree_larger_than_a_page_is_found_and_read_whole() {
    let mut t = Tracker::new(scratch()).unwrap();
    for i in 0..300 {
        t.preserve("big", range(FREE + i * 2 * P, P), MemFlags::NONE)
            .unwrap();
    }
    let out = t.serialize().unwrap();
    assert!(out.fdt().len() > 4096);
    let mem = place(out.fdt(), out.mem_cache());
    for start in [
        Start::X86BootParams(BOOT_PARAMS),
        Start::X86SetupData(ENTRY),
        Start::Fdt(FDT_AT),
    ] {
        let r = kho_inspect::inspect(&mem, start);
        assert_eq!(r.problems, [], "{start:?}");
        let t = rfc2024(&r).tree.as_ref().unwrap();
        assert_eq!((t.ranges, t.nodes.len()), (300, 1), "{start:?}");
    }
    let found = kho_inspect::find::find(&mem, &[(BASE, RAM)], Limits::default());
    assert!(found.is_sound(), "{:#?}", found.problems);
    assert_eq!(found.scan.dtbs_read, 1);
    assert_eq!(found.decoded.len(), 1);
}

#[test]
fn overlapping_ranges_across_two_nodes_are_named() {
    let (a, inside) = (m(FREE, 2 * P), m(FREE + P, P));
    let fdt = tree(&[("a", &[a]), ("b", &[inside])]);
    let mem = place(&fdt, [a, inside].as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    // The cache overlaps itself, and so does the tree.
    assert_eq!(codes(&r), ["rfc2024-cache", "rfc2024-range"]);
    assert!(matches!(
        r.problems[0].location,
        Location::MemCacheEntry { index: 1, .. }
    ));
    match &r.problems[1].location {
        Location::MemEntry { fdt, node, .. } => {
            assert_eq!((*fdt, node.as_deref()), (FDT_AT, Some("/b")));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.problems[1].message.contains("overlaps"),
        "{:?}",
        r.problems[1]
    );
    let x = rfc2024(&r);
    assert_eq!((x.mem_cache.unwrap().valid, x.agree), (Some(false), None));
    // The ranges are still listed.
    assert_eq!(x.tree.as_ref().unwrap().ranges, 2);
    // From the FDT alone, the tree's own problem.
    let r = kho_inspect::inspect(&mem, Start::Fdt(FDT_AT));
    assert_eq!(codes(&r), ["rfc2024-range"]);
}

#[test]
fn a_cache_that_disagrees_with_the_tree_is_named() {
    let (a, b) = (m(FREE, P), m(FREE + 0x10_0000, P));
    // An entry only in the cache.
    let mem = place(&tree(&[("a", &[a])]), [a, b].as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    assert_eq!(codes(&r), ["rfc2024-not-in-tree"]);
    assert!(matches!(
        r.problems[0].location,
        Location::MemCacheEntry { index: 1, addr, cache: CACHE_AT, cache_len: 32 }
            if addr == CACHE_AT + 16
    ));
    assert_eq!(rfc2024(&r).agree, Some(false));
    // An entry only in the tree.
    let fdt = tree(&[("a", &[a]), ("b", &[b])]);
    let mem = place(&fdt, a.as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert_eq!(codes(&r), ["rfc2024-not-in-cache"]);
    match &r.problems[0].location {
        Location::MemEntry { node, offset, .. } => {
            assert_eq!(node.as_deref(), Some("/b"));
            let at = fdt.windows(16).position(|w| w == b.as_bytes()).unwrap();
            assert_eq!(*offset, at as u64);
        }
        other => panic!("{other:?}"),
    }
    // Flags count: the same range NOINIT in the tree only.
    let noinit = KhoMem::new(FREE, P, MEM_NOINIT);
    let mem = place(&tree(&[("a", &[noinit])]), a.as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert_eq!(codes(&r), ["rfc2024-not-in-cache"]);
}

#[test]
fn an_unsorted_cache_is_named() {
    let (a, b) = (m(FREE, P), m(FREE + 0x10_0000, P));
    let mem = place(&tree(&[("a", &[a, b])]), [b, a].as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    assert_eq!(codes(&r), ["rfc2024-cache"]);
    assert!(
        r.problems[0].message.contains("not sorted"),
        "{:?}",
        r.problems
    );
    assert!(matches!(
        r.problems[0].location,
        Location::MemCacheEntry { index: 1, .. }
    ));
    // The tree alone is fine, so it is listed, and not compared.
    let x = rfc2024(&r);
    assert_eq!(x.tree.as_ref().unwrap().ranges, 2);
    assert_eq!(x.agree, None);
}

#[test]
fn a_range_outside_ram_is_named_in_cache_and_tree() {
    let outside = m(BASE + RAM, P);
    let mem = place(&tree(&[("", &[outside])]), outside.as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    assert_eq!(codes(&r), ["rfc2024-cache", "rfc2024-range"]);
    assert!(r.problems.iter().all(|p| p.message.contains("is not RAM")));
    match &r.problems[1].location {
        Location::MemEntry { node, .. } => assert_eq!(node.as_deref(), Some("/")),
        other => panic!("{other:?}"),
    }
    // A range in scratch is named too (the scratch region is known).
    let in_scratch = m(BASE + 0x40_000, P);
    let mem = place(&tree(&[("a", &[in_scratch])]), in_scratch.as_bytes());
    let r = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert_eq!(codes(&r), ["rfc2024-cache", "rfc2024-range"]);
    assert!(
        r.problems[1].message.contains("scratch"),
        "{:?}",
        r.problems
    );
}

#[test]
fn a_bad_tree_shape_and_header_are_named() {
    let good_range = m(FREE, P);
    // A misaligned length: the walk stops there, after listing the rest.
    let bad = m(FREE + 0x10_0000, P + 8);
    let mem = place(&tree(&[("a", &[good_range, bad])]), good_range.as_bytes());
    let r = kho_inspect::inspect(&mem, Start::Fdt(FDT_AT));
    assert_eq!(codes(&r), ["rfc2024-range"]);
    let t = rfc2024(&r).tree.as_ref().unwrap();
    assert!(!t.complete);
    assert_eq!(t.ranges, 1);
    // A scratch region that is not page-aligned.
    let (fdt, cache) = serialized();
    let mut mem = place(&fdt, &cache);
    mem.write_u64(PhysAddr::new(ENTRY + 16 + 16), BASE + 8)
        .unwrap();
    let r = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert!(codes(&r).contains(&"rfc2024-scratch"), "{:?}", r.problems);
    assert!(matches!(
        r.problems[0].location,
        Location::ScratchRegion { addr, .. } if addr == BASE + 8
    ));
    // A kho_data pair that wraps.
    let mut mem = place(&fdt, &cache);
    mem.write_u64(PhysAddr::new(ENTRY + 16 + 40), u64::MAX)
        .unwrap();
    let r = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    assert_eq!(codes(&r), ["rfc2024-handover"]);
    assert!(matches!(
        r.problems[0].location,
        Location::SetupData {
            addr: ENTRY,
            boot_params: Some(BOOT_PARAMS)
        }
    ));
    // dt_size shorter than the tree's totalsize.
    let mut mem = place(&fdt, &cache);
    mem.write_u64(PhysAddr::new(ENTRY + 16 + 8), 64).unwrap();
    let r = kho_inspect::inspect(&mem, Start::X86SetupData(ENTRY));
    assert_eq!(codes(&r), ["rfc2024-tree"]);
    assert!(rfc2024(&r).tree.is_none());
}

#[test]
fn an_fdt_larger_than_the_limit_is_named_not_read() {
    let mem = good();
    let fdt_len = serialized().0.len() as u64;
    let limits = Limits {
        fdt_bytes: 256,
        ..Limits::default()
    };
    for start in [
        Start::X86BootParams(BOOT_PARAMS),
        Start::X86SetupData(ENTRY),
        Start::Fdt(FDT_AT),
    ] {
        let r = kho_inspect::inspect_with(&mem, start, limits);
        assert_eq!(codes(&r), ["budget-exceeded"], "{start:?}");
        let p = &r.problems[0];
        assert!(p.message.contains("the `fdt_bytes` limit"), "{p:?}");
        assert!(p.message.contains(&format!("{fdt_len:#x} bytes")), "{p:?}");
        assert_eq!(
            p.location,
            Location::RootFdt {
                addr: FDT_AT,
                offset: None
            }
        );
        assert!(rfc2024(&r).tree.is_none());
        assert_eq!(r.fdt.as_ref().unwrap().total_size, fdt_len);
    }
    // A header claiming 4 GiB is the same problem, never an allocation.
    let mut huge = good();
    huge.write(PhysAddr::new(FDT_AT + 4), &u32::MAX.to_be_bytes())
        .unwrap();
    let r = kho_inspect::inspect(&huge, Start::Fdt(FDT_AT));
    assert_eq!(codes(&r), ["budget-exceeded"]);
    // `find` does not read it whole either; the entry's dt_size bounds what
    // the decoder reads, and the tree is then refused as truncated.
    let found = kho_inspect::find::find(&huge, &[(BASE, RAM)], Limits::default());
    assert_eq!(
        found.problems.iter().map(|p| p.code).collect::<Vec<_>>(),
        ["find-limit"]
    );
    let d = &found.decoded[0];
    assert_eq!(d.start, Start::X86SetupData(ENTRY));
    assert_eq!(codes(&d.report), ["rfc2024-tree"]);
    // More entries than the `runs` limit: listed up to it, not checked.
    let r = kho_inspect::inspect_with(
        &mem,
        Start::X86BootParams(BOOT_PARAMS),
        Limits {
            runs: 2,
            ..Limits::default()
        },
    );
    assert_eq!(codes(&r), ["budget-exceeded"]);
    assert!(r.problems[0].message.contains("the `runs` limit"));
    let x = rfc2024(&r);
    assert_eq!(x.mem_cache.unwrap().valid, None);
    assert_eq!(x.tree.as_ref().unwrap().ranges, 2);
}

#[test]
fn the_text_report_of_a_2024_handover() {
    let mem = good();
    let report = kho_inspect::inspect(&mem, Start::X86BootParams(BOOT_PARAMS));
    let text = kho_inspect::text::render_report(&report);
    assert_eq!(text, GOLDEN_TEXT, "{text}");
    // Cut lists: each node shows its first ranges and counts the rest.
    let short = kho_inspect::text::render_report_with(&report, kho_inspect::text::Lists::First(1));
    assert!(
        short.contains(
            "    0x0040300000+0x2000\n  … and 1 more ranges (--verbose lists them all)\n"
        ),
        "{short}"
    );
}

/// The text of [`good`] from its zero page: every line checked by hand
/// against the handover (the FDT's `mem` bytes are the ranges below, flags
/// in the lowest byte; 1 + 2 + 1 + 4 + 256 = 264 pages; 5 × 16 = 0x50
/// bytes of cache).
const GOLDEN_TEXT: &str = concat!(
    "verdict: sound: kho-2024 handover, 5 ranges (264 pages) preserved in 4 nodes\n",
    "problems: none\n",
    "\n",
    "handover (2024 design): fdt=0x40001000 (0x145 bytes) scratch region=0x40000000+0x200000 mem cache=0x40100000+0x50\n",
    "ABI version: kho-2024\n",
    "\n",
    "root FDT at 0x40001000 (325 bytes):\n",
    "  // FDT \"kho-2024\": totalsize 325 (0x145) bytes, dt version 17 (last compatible 16)\n",
    "  /dts-v1/;\n",
    "  \n",
    "  / {\n",
    "  \tcompatible = \"kho-2024\";\n",
    "  \tmem = [00 00 20 40 00 00 00 00 00 10 00 00 00 00 00 00];\n",
    "  \n",
    "  \tftrace {\n",
    "  \n",
    "  \t\tcpu0 {\n",
    "  \t\t\tmem = [00 00 30 40 00 00 00 00 00 20 00 00 00 00 00 00 01 00 40 40 00 00 00 00 00 10 00 00 00 00 00 00];\n",
    "  \t\t};\n",
    "  \n",
    "  \t\tcpu1 {\n",
    "  \t\t\tmem = [00 00 50 40 00 00 00 00 00 40 00 00 00 00 00 00];\n",
    "  \t\t};\n",
    "  \t};\n",
    "  \n",
    "  \tguest@1 {\n",
    "  \t\tmem = [01 00 60 40 00 00 00 00 00 00 10 00 00 00 00 00];\n",
    "  \t\tvcpus = [00 00 00 04];\n",
    "  \t};\n",
    "  };\n",
    "\n",
    "scratch region: 0x40000000+0x200000\n",
    "mem cache at 0x40100000+0x50: 5 entries, sound (sorted, disjoint, RAM outside scratch)\n",
    "tree and mem cache: agree (every mem entry is in the cache, every cache entry in a node)\n",
    "\n",
    "preserved ranges: 5 ranges in 4 nodes, 264 pages, 0x108000 bytes, 2 NOINIT\n",
    "  /: 1 range, 1 page, 0 NOINIT\n",
    "    0x0040200000+0x1000\n",
    "  /ftrace/cpu0: 2 ranges, 3 pages, 1 NOINIT\n",
    "    0x0040300000+0x2000\n",
    "    0x0040400000+0x1000 noinit\n",
    "  /ftrace/cpu1: 1 range, 4 pages, 0 NOINIT\n",
    "    0x0040500000+0x4000\n",
    "  /guest@1: 1 range, 256 pages, 1 NOINIT\n",
    "    0x0040600000+0x100000 noinit\n",
);
