//! The budget (issue 15): an image built to cost far more than its size is
//! decoded in bounded work and memory, and the report names the limit that
//! stopped it and what was not decoded. Times are printed, not asserted.

mod common;

use std::time::Instant;

use common::{BOMB_FDT, BOMB_ROOT, bomb};
use kho_inspect::report::{Location, Problem, Report};
use kho_inspect::{Image, Limits, Start};

const BUDGET: &str = "budget-exceeded";

fn budget_problems(r: &Report) -> Vec<&Problem> {
    r.problems.iter().filter(|p| p.code == BUDGET).collect()
}

/// Issue 15's image: before the budget, `inspect` listed all 7,864,320
/// runs (643 MB, 27 s in the debug build). Now the walk stops at the
/// `runs` limit and says so.
#[test]
fn an_image_claiming_2_pow_50_bytes_stops_at_the_runs_limit() {
    let file = bomb(480);
    assert!(file.len() < 2 << 20, "{} bytes", file.len());
    let image = Image::elf(&file[..]).unwrap();
    assert_eq!(image.segments()[0].memsz, 1 << 50);

    let t = Instant::now();
    let r = kho_inspect::inspect(&image, Start::Fdt(BOMB_FDT));
    let took = t.elapsed();
    let limits = Limits::default();
    let p = r.preserved.as_ref().unwrap();
    assert_eq!(p.runs.len(), limits.runs);
    assert!(!p.complete);
    assert_eq!(p.radix, None);
    let budget = budget_problems(&r);
    assert_eq!(budget.len(), 1, "{:#?}", r.problems);
    assert_eq!(budget[0].location, Location::RadixTree { root: BOMB_ROOT });
    assert_eq!(
        budget[0].location.to_string(),
        format!("radix tree at {BOMB_ROOT:#x}")
    );
    assert!(
        budget[0]
            .message
            .starts_with("the preserved set has more than 1048576 runs (the `runs` limit)"),
        "{}",
        budget[0].message
    );
    // The runs listed are the tree's first, in key order.
    assert_eq!((p.runs[0].addr, p.runs[1].addr), (0x1000, 0x3000));
    eprintln!(
        "issue 15's image, default limits: {} runs in {:.2} s",
        p.runs.len(),
        took.as_secs_f64()
    );
    // The text says it too.
    let text = kho_inspect::text::render_report(&r);
    assert!(text.contains("(incomplete: the walk stopped at a problem)"));
    assert!(text.contains("budget-exceeded at radix tree at 0x2000: "));
}

#[test]
fn each_decoder_limit_is_named_with_its_value() {
    let file = bomb(8);
    let image = Image::elf(&file[..]).unwrap();
    let with = |limits: Limits, start: u64| {
        let r = kho_inspect::inspect_with(&image, Start::Fdt(start), limits);
        let budget: Vec<Problem> = budget_problems(&r).into_iter().cloned().collect();
        (r, budget)
    };
    let d = Limits::default();

    // Everything fits: the tree is 4 + 1 tables and 8 leaves.
    let (r, budget) = with(d, BOMB_FDT);
    assert_eq!(budget, []);
    assert_eq!(r.problems, []);
    let p = r.preserved.unwrap();
    assert_eq!(p.runs.len(), 8 * 16384);
    assert_eq!(p.radix.map(|n| (n.tables, n.leaves)), Some((5, 8)));

    let (r, budget) = with(Limits { nodes: 6, ..d }, BOMB_FDT);
    assert_eq!(budget.len(), 1);
    assert!(
        budget[0]
            .message
            .starts_with("the tree has more than 6 nodes (the `nodes` limit)"),
        "{}",
        budget[0].message
    );
    assert!(!r.preserved.unwrap().complete);

    // The FDT, the tables and a leaf or two fit in 32 KiB; 8 leaves do not.
    let (r, budget) = with(
        Limits {
            bytes: 32 << 10,
            ..d
        },
        BOMB_FDT,
    );
    assert_eq!(budget.len(), 1, "{:#?}", r.problems);
    assert_eq!(budget[0].location, Location::Image);
    assert_eq!(budget[0].location.to_string(), "the image");
    assert!(
        budget[0].message.starts_with(
            "decoding would read more than 0x8000 bytes of the image (the `bytes` limit)"
        ),
        "{}",
        budget[0].message
    );
    // What the refused read caused (a "not RAM" walk error) is not listed.
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    let runs = r.preserved.unwrap().runs.len();
    assert!(runs > 0 && runs < 8 * 16384 && runs % 16384 == 0, "{runs}");

    // A radix table is no root FDT: one problem, and with `problems: 0`
    // only its count.
    let (r, budget) = with(Limits { problems: 0, ..d }, BOMB_ROOT);
    assert_eq!(r.problems, budget);
    assert_eq!(budget[0].location, Location::Report);
    assert_eq!(budget[0].location.to_string(), "the report");
    assert_eq!(
        budget[0].message,
        "1 more problem found and not listed (the `problems` limit, 0)"
    );
}

/// `--find` over an image reads its file, not its `p_memsz`: the 2^50
/// bytes of zero fill are counted as scanned but never read.
#[test]
fn find_skips_the_zero_fill() {
    let file = bomb(480);
    let image = Image::elf(&file[..]).unwrap();
    let limits = Limits {
        runs: 1000,
        ..Limits::default()
    };
    let t = Instant::now();
    let found = kho_inspect::find::find_in(&image, limits);
    let took = t.elapsed();
    assert_eq!(found.scan.bytes, 1 << 50);
    assert_eq!(found.decoded.len(), 1);
    let r = &found.decoded[0].report;
    assert_eq!(r.preserved.as_ref().map(|p| p.runs.len()), Some(1000));
    assert_eq!(budget_problems(r).len(), 1);
    eprintln!(
        "--find over 2^50 bytes of RAM in a {} byte file: {:.2} s",
        file.len(),
        took.as_secs_f64()
    );
}

/// `--max-scan-bytes`: the scan stops reading at the bound, names where,
/// and keeps (and decodes) what it found before it.
#[test]
fn the_scan_stops_at_its_byte_budget() {
    let file = bomb(480);
    let image = Image::elf(&file[..]).unwrap();
    let none = kho_inspect::find::find_in(
        &image,
        Limits {
            scan_bytes: 0,
            ..Limits::default()
        },
    );
    assert!(none.decoded.is_empty());
    let limit: Vec<_> = none
        .problems
        .iter()
        .filter(|p| {
            p.code == "find-limit"
                && p.location
                    == Location::Scan {
                        bound: "scan-bytes",
                    }
        })
        .collect();
    assert_eq!(limit.len(), 1, "{:?}", none.problems);
    assert!(limit[0].message.contains("--max-scan-bytes"));
    assert!(limit[0].message.contains("was not scanned"));

    // A budget the file fits in: the same result as without one.
    let all = kho_inspect::find::find_in(
        &image,
        Limits {
            runs: 10,
            scan_bytes: file.len() as u64,
            ..Limits::default()
        },
    );
    assert_eq!(all.decoded.len(), 1);
    assert!(!all.problems.iter().any(|p| p.code == "find-limit"));
}

/// The stub's blob lists an extent of 200 pages, every other page: 200
/// blocks to check one by one. With `blocks: 50` the checks stop, named;
/// the record is still listed.
#[test]
fn the_blocks_limit_stops_the_checks_of_a_long_extent() {
    use kho::KhoOut;
    use kho_abi::AbiVersion;
    use kho_inspect::report::Content;
    use kho_mem::{HostMem, Order, PhysMem, PhysRange};

    let base = HostMem::DEFAULT_BASE;
    let mut mem = HostMem::new(base, 8 << 20).unwrap();
    let region = PhysRange::try_new(base.checked_add(4 << 20).unwrap(), 2 << 20).unwrap();
    mem.reserve(region).unwrap();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    let first = region.start();
    for k in 0..200u64 {
        let page = first.checked_add(k * 0x2000).unwrap();
        out.preserve_folio(&mut mem, page, Order::ZERO).unwrap();
    }
    // The stub's blob (docs/HANDOVER.md): a header, then one record.
    let mut blob = Vec::new();
    blob.extend_from_slice(b"KHOSTUB1");
    for v in [1u32, 1] {
        blob.extend_from_slice(&v.to_le_bytes()); // generation, record count
    }
    blob.extend_from_slice(&0x5eedu64.to_le_bytes()); // seed
    blob.extend_from_slice(&[0; 16]); // no vmalloc area
    blob.extend_from_slice(&0u64.to_le_bytes()); // no log
    for v in [first.as_u64(), 0] {
        blob.extend_from_slice(&v.to_le_bytes()); // phys, checksum
    }
    for v in [0u32, 1, 0] {
        blob.extend_from_slice(&v.to_le_bytes()); // order, generation, block
    }
    for v in [200u16, 1] {
        blob.extend_from_slice(&v.to_le_bytes()); // count, spacing: 2 pages apart
    }
    let at = mem.alloc_page().unwrap();
    mem.write(at, &blob).unwrap();
    out.preserve_folio(&mut mem, at, Order::ZERO).unwrap();
    out.add_subtree(&mut mem, "kho-stub", at, Some(blob.len() as u64))
        .unwrap();
    let start = Start::Fdt(out.fdt().as_u64());
    assert_eq!(kho_inspect::inspect(&mem, start).problems, []);

    let limits = Limits {
        blocks: 50,
        ..Limits::default()
    };
    let r = kho_inspect::inspect_with(&mem, start, limits);
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    let p = &r.problems[0];
    assert_eq!(p.code, BUDGET);
    assert_eq!(p.location, Location::subtree("kho-stub", at.as_u64()));
    assert_eq!(
        p.location.to_string(),
        format!("subtree \"kho-stub\" at {:#x}", at.as_u64())
    );
    assert!(
        p.message
            .starts_with("more than 50 blocks to check one by one against the preserved set"),
        "{}",
        p.message
    );
    match &r.subtrees[0].content {
        Content::KhoStub { records, .. } => assert_eq!(records[0].count, 200),
        other => panic!("{other:?}"),
    }
}

/// `kho_test`'s array descriptor may claim a huge area: here one preserved
/// order-31 block (2^31 pages, 8 TiB of an image whose zero fill covers
/// it) listing one folio. The decoder reads only the array's first page;
/// it used to collect the address of every page of the area first (16 GiB
/// of addresses for this one).
#[test]
fn a_huge_kho_test_array_costs_only_the_pages_its_folios_are_in() {
    use kho_fdt::KhoFdtBuilder;
    use kho_inspect::report::Content;
    use kho_mem::{HostMem, Order, Pfn, PhysAddr, PhysMem};
    use kho_radix::RadixTree;

    const BASE: u64 = 0x4000_0000;
    const SIZE: u64 = 1 << 20;
    const HUGE: u64 = 8 << 40;
    let mut mem = HostMem::new(PhysAddr::new(BASE), SIZE).unwrap();
    let mut tree = RadixTree::new(&mut mem).unwrap();
    let page = |mem: &mut HostMem, tree: &mut RadixTree| {
        let p = mem.alloc_page().unwrap();
        tree.preserve(mem, Pfn::try_from_phys(p).unwrap(), Order::ZERO)
            .unwrap();
        p
    };
    // The huge block: RAM only in the image below, so the tree is written
    // directly (KhoOut would refuse a block outside its RAM).
    tree.preserve(
        &mut mem,
        Pfn::try_from_phys(PhysAddr::new(HUGE)).unwrap(),
        Order::try_new(31).unwrap(),
    )
    .unwrap();
    let chunk = page(&mut mem, &mut tree);
    mem.write_u64(chunk.checked_add(8).unwrap(), HUGE).unwrap();
    let mut desc = Vec::new();
    desc.extend_from_slice(&chunk.as_u64().to_le_bytes());
    desc.extend_from_slice(&(1u32 << 31).to_le_bytes()); // total_pages
    desc.extend_from_slice(&1u16.to_le_bytes()); // flags: VM_ALLOC
    desc.extend_from_slice(&31u16.to_le_bytes()); // order
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("compatible", "kho-test-v1").unwrap();
    w.property("magic", &0x4b48_4f21u32.to_le_bytes()).unwrap();
    let data = w.begin_node("data").unwrap();
    w.property("nr_folios", &1u32.to_le_bytes()).unwrap();
    w.property("folios_info", &desc).unwrap();
    w.property("csum", &0u32.to_le_bytes()).unwrap();
    w.end_node(data).unwrap();
    w.end_node(root).unwrap();
    let sub_fdt = w.finish().unwrap();
    let sub = page(&mut mem, &mut tree);
    mem.write(sub, &sub_fdt).unwrap();
    let fdt = page(&mut mem, &mut tree);
    let mut b = KhoFdtBuilder::new(kho_abi::AbiVersion::V4, tree.root());
    b.add_subtree("kho_test", sub, Some(sub_fdt.len() as u64))
        .unwrap();
    mem.write(fdt, &b.build().unwrap()).unwrap();

    let mut ram = vec![0u8; SIZE as usize];
    mem.read(PhysAddr::new(BASE), &mut ram).unwrap();
    let core = common::elf_core(&[
        common::Load {
            paddr: BASE,
            memsz: SIZE,
            data: &ram,
        },
        common::Load {
            paddr: HUGE,
            memsz: HUGE,
            data: &[],
        },
    ]);
    let image = Image::elf(&core[..]).unwrap();
    let r = kho_inspect::inspect(&image, Start::Fdt(fdt.as_u64()));
    match &r.subtrees[0].content {
        // The one folio the array lists reads as 0 (the zero fill): not a
        // preserved block, and said so.
        Content::KhoTest { folios, .. } => assert_eq!(folios.len(), 1),
        other => panic!("{other:?} {:#?}", r.problems),
    }
    let codes: Vec<&str> = r.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["kho-test-folio-not-preserved"], "{:#?}", r.problems);
}
