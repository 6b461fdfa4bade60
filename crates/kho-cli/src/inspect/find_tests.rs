//! `inspect --find` on images whose handover address is not given: what
//! the scan finds, which candidate it decodes, its limits, bad input, and
//! the cost of scanning a large empty image.

use std::path::PathBuf;
use std::time::Instant;

use kho_inspect::find::{Candidate, Found, Limits, find};
use kho_inspect::inspect;
use kho_inspect::report::{Report, Start};
use kho_inspect::test_util::fixture::{self, BASE, Fixture, SIZE};
use kho_mem::{HostMem, PhysAddr, PhysMem};

use super::Image;

const RAM: [(u64, u64); 1] = [(BASE, SIZE)];

fn scan(f: &Fixture) -> Found {
    find(&f.mem, &RAM, Limits::default())
}

fn runs(r: &Report) -> Vec<(u32, u64, u64)> {
    r.preserved
        .as_ref()
        .unwrap()
        .runs
        .iter()
        .map(|r| (r.order, r.addr, r.blocks))
        .collect()
}

fn codes(problems: &[kho_inspect::report::Problem]) -> Vec<&'static str> {
    problems.iter().map(|p| p.code).collect()
}

fn roots(found: &Found) -> Vec<(u64, Option<&str>, Vec<u64>)> {
    found
        .candidates
        .iter()
        .filter_map(|c| match c {
            Candidate::RootFdt {
                addr,
                abi_version,
                named_by,
                ..
            } => Some((*addr, abi_version.as_deref(), named_by.clone())),
            _ => None,
        })
        .collect()
}

fn starts(found: &Found) -> Vec<Start> {
    found.decoded.iter().map(|d| d.start).collect()
}

/// The fixture with neither the x86 nor the DTB handoff left in memory.
fn fdt_only() -> Fixture {
    let mut f = fixture::build();
    f.remove_x86_handoff();
    f.remove_dtb();
    f
}

#[test]
fn a_root_fdt_alone_is_found_and_decoded_without_scratch() {
    let f = fdt_only();
    let found = scan(&f);
    assert_eq!(roots(&found), [(f.fdt, Some("kho-v2"), vec![])]);
    assert_eq!(found.candidates.len(), 1, "{:#?}", found.candidates);
    assert_eq!(found.problems, vec![]);
    assert_eq!(starts(&found), [Start::Fdt(f.fdt)]);
    let d = &found.decoded[0];
    assert!(d.why.contains("the only root KHO FDT"), "{}", d.why);
    // Exactly what `--fdt` decodes.
    assert_eq!(d.report.problems, vec![]);
    assert_eq!(runs(&d.report), f.runs);
    assert_eq!(d.report.scratch, None);
    assert_eq!(
        d.report.preserved,
        inspect(&f.mem, Start::Fdt(f.fdt)).preserved
    );
    assert!(found.is_sound());
    assert_eq!(found.nothing_found(), None);
    // The memblock sub-blob is an FDT at a page start too: skipped, and said why.
    let memblock = found
        .skipped
        .iter()
        .find(|s| s.addr == f.memblock_blob)
        .unwrap_or_else(|| panic!("{:#?}", found.skipped));
    assert!(
        memblock.reason.contains("\"memblock-v1\""),
        "{}",
        memblock.reason
    );
    assert_eq!(found.scan.bytes, SIZE);
    assert!(found.scan.fdt_magics >= 2);
}

#[test]
fn an_x86_setup_data_entry_names_the_fdt_and_its_scratch() {
    let mut f = fixture::build();
    f.remove_dtb();
    let entry = f.setup_data_entry();
    let found = scan(&f);
    assert_eq!(roots(&found), [(f.fdt, Some("kho-v2"), vec![entry])]);
    let boot: Vec<_> = found.candidates.iter().skip(1).collect();
    match boot.as_slice() {
        [
            Candidate::X86SetupData {
                addr,
                handover,
                abi_version,
                names_root_fdt,
            },
        ] => {
            assert_eq!(*addr, entry);
            assert_eq!((handover.fdt, handover.fdt_size), (f.fdt, 4096));
            assert_eq!((handover.scratch, handover.scratch_len), f.scratch_array);
            assert_eq!(abi_version.as_deref(), Some("kho-v2"));
            assert!(*names_root_fdt);
        }
        other => panic!("{other:#?}"),
    }
    assert_eq!(starts(&found), [Start::X86SetupData(entry)]);
    let r = &found.decoded[0].report;
    // The same handover as from the zero page (which is gone here).
    let from_zero_page = inspect(&fixture::build().mem, Start::X86BootParams(f.boot_params));
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.handover, from_zero_page.handover);
    assert_eq!(r.scratch, from_zero_page.scratch);
    assert_eq!(r.preserved, from_zero_page.preserved);
    assert_eq!(r.subtrees.len(), 3);
    assert!(found.decoded[0].notes.is_empty());
    assert!(found.is_sound());
}

#[test]
fn an_arm64_dtb_names_the_fdt_and_its_scratch() {
    let mut f = fixture::build();
    f.remove_x86_handoff();
    let found = scan(&f);
    assert_eq!(roots(&found), [(f.fdt, Some("kho-v2"), vec![f.dtb])]);
    match &found.candidates[1..] {
        [
            Candidate::Dtb {
                addr,
                handover,
                names_root_fdt: true,
                ..
            },
        ] => {
            assert_eq!(*addr, f.dtb);
            assert_eq!((handover.scratch, handover.scratch_len), f.scratch_array);
        }
        other => panic!("{other:#?}"),
    }
    assert_eq!(starts(&found), [Start::Dtb(f.dtb)]);
    let r = &found.decoded[0].report;
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.scratch.as_ref().map(Vec::len), Some(2));
    assert_eq!(runs(r), f.runs);
    assert!(found.is_sound());
}

#[test]
fn with_both_handoffs_the_fdt_is_decoded_once_from_the_first() {
    let f = fixture::build();
    let entry = f.setup_data_entry();
    let found = scan(&f);
    let mut by = vec![entry, f.dtb];
    by.sort_unstable();
    assert_eq!(roots(&found), [(f.fdt, Some("kho-v2"), by.clone())]);
    assert_eq!(found.candidates.len(), 3);
    assert_eq!(found.decoded.len(), 1);
    assert!(found.decoded[0].why.contains("(and 1 more)"));
    assert_eq!(found.decoded[0].report.problems, vec![]);
    assert_eq!(found.decoded[0].report.handover.map(|h| h.fdt), Some(f.fdt));
}

#[test]
fn two_unnamed_fdts_are_each_decoded_and_said_so() {
    let mut f = fdt_only();
    let copy = f.copy_fdt();
    let found = scan(&f);
    let mut want = vec![f.fdt, copy];
    want.sort_unstable();
    let got: Vec<u64> = roots(&found).iter().map(|r| r.0).collect();
    assert_eq!(got, want);
    assert_eq!(
        starts(&found),
        want.iter().map(|&a| Start::Fdt(a)).collect::<Vec<_>>()
    );
    for d in &found.decoded {
        assert!(d.why.contains("one of 2 root KHO FDTs"), "{}", d.why);
        assert_eq!(runs(&d.report), f.runs);
    }
    // The copy is not a preserved page: the decoder says so for that one.
    let copy_report = &found.decoded[want.iter().position(|&a| a == copy).unwrap()].report;
    assert_eq!(codes(&copy_report.problems), ["fdt-not-preserved"]);
    assert!(!found.is_sound());
}

#[test]
fn a_named_fdt_is_preferred_to_an_unnamed_copy() {
    let mut f = fixture::build();
    f.remove_dtb();
    let copy = f.copy_fdt();
    let found = scan(&f);
    assert_eq!(roots(&found).len(), 2);
    assert_eq!(starts(&found), [Start::X86SetupData(f.setup_data_entry())]);
    assert!(
        roots(&found)
            .iter()
            .any(|(a, _, by)| *a == copy && by.is_empty())
    );
    assert!(found.is_sound());
}

#[test]
fn fake_magics_and_lookalikes_are_skipped_not_fatal() {
    let mut f = fdt_only();
    let fake = |f: &mut Fixture, header: &[u32]| {
        let page = f.mem.alloc_page().unwrap();
        let bytes: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        f.mem.write(page, &bytes).unwrap();
        page.as_u64()
    };
    let magic = 0xd00d_feed;
    // totalsize past the page, a wrong version, blocks outside totalsize,
    // a header with nothing after it.
    let huge = fake(&mut f, &[magic, 0xffff_ffff, 0x38, 0x48, 0x28, 17, 16]);
    let old = fake(&mut f, &[magic, 0x100, 0x38, 0x48, 0x28, 1, 1]);
    let outside = fake(
        &mut f,
        &[magic, 0x100, 0x2000, 0x3000, 0x28, 17, 16, 0, 0x10, 0x10],
    );
    let bare = fake(&mut f, &[magic]);
    // Magics and setup_data words at the very ends of RAM, where the
    // structure would run past the image.
    let end = BASE + SIZE;
    f.mem
        .write(PhysAddr::new(end - 8), &magic.to_be_bytes())
        .unwrap();
    f.mem
        .write(
            PhysAddr::new(end - 4096),
            &[magic.to_be_bytes(), 0x800u32.to_be_bytes()].concat(),
        )
        .unwrap();
    let word = 10u64 | (32 << 32);
    f.write_u64(end - 16, word);
    // One at the start of a page that begins a second RAM range: its
    // header is in the first range.
    let split = f.mem.alloc_page().unwrap().as_u64();
    f.write_u64(split, word);
    // A setup_data lookalike naming the FDT's page + 1 (not page-aligned)
    // and one naming a page outside the image.
    let entry = f.mem.alloc_page().unwrap().as_u64();
    for (at, fdt) in [(entry, f.fdt + 1), (entry + 0x100, end + 0x1000)] {
        f.write_u64(at + 8, word);
        f.write_u64(at + 16, fdt);
        f.write_u64(at + 24, 4096);
    }

    let ram = [(BASE, split - BASE), (split, end - split)];
    let found = find(&f.mem, &ram, Limits::default());
    assert_eq!(found.scan.setup_data_headers, 4);
    assert_eq!(roots(&found), [(f.fdt, Some("kho-v2"), vec![])]);
    assert_eq!(found.candidates.len(), 1, "{:#?}", found.candidates);
    assert_eq!(found.problems, vec![]);
    for addr in [huge, old, outside, bare, end - 4096] {
        let s = found
            .skipped
            .iter()
            .find(|s| s.addr == addr)
            .unwrap_or_else(|| panic!("{addr:#x} not in {:#?}", found.skipped));
        assert!(
            s.reason.starts_with("FDT magic, but not a device tree: "),
            "{}",
            s.reason
        );
    }
    assert_eq!(starts(&found), [Start::Fdt(f.fdt)]);
    assert!(found.is_sound(), "{:#?}", found.decoded[0].report.problems);

    // At physical address 0 and at the top of the address space.
    let mut low = HostMem::new(PhysAddr::ZERO, 1 << 16).unwrap();
    low.write_u64(PhysAddr::ZERO, word).unwrap();
    low.write(PhysAddr::new(8), &magic.to_be_bytes()).unwrap();
    low.write(PhysAddr::new(0x1000), &magic.to_be_bytes())
        .unwrap();
    let found = find(
        &low,
        &[(0, 1 << 16), (u64::MAX - 0xfff, 0x1000)],
        Limits::default(),
    );
    assert!(found.nothing_found().is_some());
    assert_eq!(found.scan.setup_data_headers, 0);
    assert_eq!(codes(&found.problems), ["find-read"]);
}

#[test]
fn nothing_found_is_one_line_with_the_reason() {
    let mem = HostMem::new(PhysAddr::new(BASE), 1 << 20).unwrap();
    let found = find(&mem, &[(BASE, 1 << 20)], Limits::default());
    assert!(found.candidates.is_empty() && found.decoded.is_empty());
    let why = found.nothing_found().unwrap();
    assert!(!why.contains('\n'), "{why}");
    assert!(
        why.starts_with("no KHO handover found in 0x100000 bytes of RAM (1 range)"),
        "{why}"
    );
    assert!(!found.is_sound());

    // Only a broken FDT magic: still nothing, and the line says what was skipped.
    let mut mem = mem;
    mem.write(PhysAddr::new(BASE + 0x3000), &0xd00d_feedu32.to_be_bytes())
        .unwrap();
    let found = find(&mem, &[(BASE, 1 << 20)], Limits::default());
    let why = found.nothing_found().unwrap();
    assert!(
        why.ends_with("; 1 FDT magic at a page start skipped"),
        "{why}"
    );
}

#[test]
fn an_unknown_kho_version_is_a_problem_and_still_decoded() {
    let mut f = fdt_only();
    f.corrupt_compatible();
    let found = scan(&f);
    assert_eq!(roots(&found), [(f.fdt, None, vec![])]);
    match &found.candidates[0] {
        Candidate::RootFdt {
            compatible, error, ..
        } => {
            assert_eq!(compatible, "kho-v9");
            assert!(error.as_ref().unwrap().contains("kho-v9"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(codes(&found.problems), ["find-unknown-version"]);
    assert!(found.problems[0].message.contains("\"kho-v9\""));
    assert!(found.problems[0].message.contains("\"kho-v4\""));
    assert_eq!(codes(&found.decoded[0].report.problems), ["fdt-compatible"]);
    assert!(!found.is_sound());
}

#[test]
fn a_boot_structure_naming_a_damaged_fdt_is_decoded_to_say_why() {
    let mut f = fixture::build();
    f.remove_dtb();
    let entry = f.setup_data_entry();
    // The FDT page's header is damaged: the scan finds no root FDT.
    f.write_u64(f.fdt, 0);
    let found = scan(&f);
    assert_eq!(roots(&found), []);
    match found.candidates.as_slice() {
        [
            Candidate::X86SetupData {
                addr,
                names_root_fdt: false,
                ..
            },
        ] => assert_eq!(*addr, entry),
        other => panic!("{other:#?}"),
    }
    assert_eq!(starts(&found), [Start::X86SetupData(entry)]);
    assert!(found.decoded[0].why.contains("the scan found none there"));
    assert_eq!(codes(&found.decoded[0].report.problems), ["fdt-header"]);
    assert!(!found.is_sound());
}

#[test]
fn an_all_empty_scratch_array_gets_a_note() {
    let mut f = fixture::build();
    f.remove_dtb();
    let (array, len) = f.scratch_array;
    f.mem
        .write(PhysAddr::new(array), &vec![0u8; len as usize])
        .unwrap();
    let found = scan(&f);
    let d = &found.decoded[0];
    assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    assert!(d.notes[0].contains("kexec_file_load"), "{}", d.notes[0]);
}

#[test]
fn past_a_limit_the_scan_says_so() {
    let mut f = fdt_only();
    for _ in 0..3 {
        f.copy_fdt();
    }
    let limits = Limits {
        root_fdts: 2,
        decodes: 1,
        ..Limits::default()
    };
    let found = find(&f.mem, &RAM, limits);
    assert_eq!(roots(&found).len(), 2);
    assert_eq!(found.decoded.len(), 1);
    assert_eq!(codes(&found.problems), ["find-limit", "find-limit"]);
    assert!(
        found.problems[0]
            .message
            .contains("more than 2 root KHO FDTs")
    );
    assert!(found.problems[1].message.contains("2 candidates to decode"));

    let limits = Limits {
        dtbs: 0,
        ..Limits::default()
    };
    let found = find(&fixture::build().mem, &RAM, limits);
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.location.to_string().contains("device trees"))
    );
    // The x86 entry still names the FDT.
    assert_eq!(found.decoded.len(), 1);
}

/// xorshift64*, as in tests.rs.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_magics_and_damage_never_panic() {
    let clean = fixture::build();
    let targets = [
        clean.fdt,
        clean.dtb,
        clean.setup_data_entry(),
        clean.memblock_blob,
        clean.root,
        clean.scratch_array.0,
    ];
    let mut state = 0x1234_5678_9abc_def1u64;
    for round in 0..40 {
        let mut f = fixture::build();
        for _ in 0..1 + round % 6 {
            let at = if next(&mut state).is_multiple_of(2) {
                targets[(next(&mut state) % targets.len() as u64) as usize]
                    + next(&mut state) % 64 * 8
            } else {
                BASE + next(&mut state) % (SIZE / 8) * 8
            };
            let value = match next(&mut state) % 5 {
                0 => u64::from(0xd00d_feedu32.swap_bytes()) | (next(&mut state) << 32),
                1 => 10 | (32 << 32),
                2 => next(&mut state),
                3 => f.fdt,
                _ => 0,
            };
            f.write_u64(at, value);
        }
        let found = scan(&f);
        assert!(
            found
                .problems
                .iter()
                .all(|p| !p.location.to_string().is_empty())
        );
        assert!(found.decoded.len() <= Limits::default().decodes);
        assert!(found.nothing_found().is_some() || !found.decoded.is_empty());
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-find-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The scan reads the whole image once, a chunk at a time: a 1 GiB sparse
/// raw file (all zero) is scanned in seconds, and an FDT placed near its
/// end is found. The time is printed, not asserted.
#[test]
fn a_1_gib_sparse_image_is_scanned_lazily() {
    let dir = temp_dir("sparse");
    let path = dir.join("sparse.raw");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    let image = Image::open(&path, Some(0)).unwrap();
    let t = Instant::now();
    let found = find(&image, &image.ram_ranges(), Limits::default());
    let empty = t.elapsed();
    assert_eq!(found.scan.bytes, 1 << 30);
    assert_eq!(found.scan.nonzero_pages, 0);
    assert!(found.nothing_found().is_some());

    // The fixture's FDT page at 1 GiB − 1 MiB.
    let f = fdt_only();
    let mut page = vec![0u8; 4096];
    f.mem.read(PhysAddr::new(f.fdt), &mut page).unwrap();
    let at = (1u64 << 30) - (1 << 20);
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&page, at)
        .unwrap();
    let image = Image::open(&path, Some(0)).unwrap();
    let t = Instant::now();
    let found = find(&image, &image.ram_ranges(), Limits::default());
    let one = t.elapsed();
    assert_eq!(roots(&found), [(at, Some("kho-v2"), vec![])]);
    // Its radix tree is not in this image: the decoder says so.
    assert_eq!(
        codes(&found.decoded[0].report.problems).first(),
        Some(&"radix-root-outside-image")
    );
    eprintln!(
        "scanned 1 GiB sparse raw image: {:.2} s empty, {:.2} s with one FDT",
        empty.as_secs_f64(),
        one.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
