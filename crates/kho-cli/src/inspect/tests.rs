//! `inspect` on images with a known handover: exact decoding, the image
//! formats, every corruption class, and no panic on random damage.

use std::path::PathBuf;

use kho_inspect::inspect;
use kho_inspect::report::{Content, Location, Part, Report, Start, Vmalloc, follows_from};
use kho_inspect::test_util::fixture::{self, BASE, Fixture, SCRATCH, SIZE};
use kho_inspect::test_util::{Load, elf_core};
use kho_mem::{PhysAddr, PhysMem};

use super::Image;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-inspect-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

fn codes(r: &Report) -> Vec<&'static str> {
    r.problems.iter().map(|p| p.code).collect()
}

fn problem<'r>(r: &'r Report, code: &str) -> &'r kho_inspect::report::Problem {
    r.problems
        .iter()
        .find(|p| p.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:#?}", r.problems))
}

#[test]
fn sound_handover_decodes_to_exactly_the_preserved_set() {
    let f = fixture::build();
    let r = inspect(&f.mem, Start::X86BootParams(f.boot_params));
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.abi_version.as_deref(), Some("kho-v2"));
    let h = r.handover.unwrap();
    assert_eq!((h.fdt, h.fdt_size), (f.fdt, 4096));
    assert_eq!((h.scratch, h.scratch_len), f.scratch_array);
    let fdt = r.fdt.as_ref().unwrap();
    assert_eq!(fdt.memory_map, Some(f.root));
    assert!(
        fdt.rendered
            .as_ref()
            .unwrap()
            .contains("compatible = \"kho-v2\";")
    );

    let scratch: Vec<_> = r
        .scratch
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.index, a.kind.as_str(), a.addr, a.size))
        .collect();
    assert_eq!(
        scratch,
        [
            (0, "lowmem", SCRATCH[0].0, SCRATCH[0].1),
            (1, "global", SCRATCH[1].0, SCRATCH[1].1)
        ]
    );

    // Block for block what the outgoing tree holds, in its key order.
    assert_eq!(runs(&r), f.runs);
    let p = r.preserved.as_ref().unwrap();
    assert!(p.complete);
    // 4 folios, 5 vmalloc pages + 1 chunk, the log, 3 blobs, the FDT page.
    let blocks: u64 = f.runs.iter().map(|r| r.2).sum();
    assert_eq!(p.blocks, blocks);
    assert_eq!(p.blocks, 4 + 5 + 1 + 1 + 3 + 1);
    assert_eq!(p.pages, (1 + 2 + 8 + 512) + 5 + 1 + 16 + 3 + 1);
    assert_eq!(p.bytes, p.pages * 4096);
    let radix = p.radix.unwrap();
    assert_eq!(radix.root, f.root);
    assert_eq!((radix.tables, radix.leaves), f.nodes);
    assert_eq!(radix.bytes, (f.nodes.0 + f.nodes.1) * 4096);

    let names: Vec<_> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["memblock", "kho-stub", "kexec-metadata"]);
    match &r.subtrees[0].content {
        Content::Memblock { regions } => {
            assert_eq!(regions.len(), 1);
            assert_eq!(
                (regions[0].name.as_str(), regions[0].start, regions[0].size),
                ("kho_log", f.log, fixture::LOG_SIZE)
            );
        }
        other => panic!("memblock decoded as {other:?}"),
    }
    assert_eq!(r.subtrees[0].addr, f.memblock_blob);
    match &r.subtrees[1].content {
        Content::KhoStub {
            generation,
            seed,
            records,
            vmalloc,
        } => {
            assert_eq!((*generation, *seed), (1, 0x5eed));
            let got: Vec<_> = records.iter().map(|r| (r.phys, r.order)).collect();
            assert_eq!(got, f.folios);
            assert_eq!(records[2].checksum, 0xc0de_0002);
            let Vmalloc::Area(v) = vmalloc else {
                panic!("vmalloc {vmalloc:?}");
            };
            assert_eq!(
                (v.total_pages, v.blocks, v.chunks, v.order, v.first),
                (5, 5, 1, 0, f.vmalloc_first)
            );
        }
        other => panic!("kho-stub decoded as {other:?}"),
    }
    assert_eq!(r.subtrees[1].addr, f.stub_blob);
    match &r.subtrees[2].content {
        Content::KexecMetadata {
            version,
            release,
            kexec_count,
        } => assert_eq!(
            (*version, release.as_str(), *kexec_count),
            (1, "fixture-6.19", 2)
        ),
        other => panic!("kexec-metadata decoded as {other:?}"),
    }
    assert_eq!(r.subtrees[2].addr, f.metadata_blob);
}

/// A kho-v4 handover laid out as Linux 7.2 writes it (every child's
/// `blob-size` before its `preserved-data`) decodes as cleanly as ours.
#[test]
fn a_kho_v4_handover_in_linux_layout_decodes_clean() {
    let mut f = fixture::build_as(kho_abi::AbiVersion::V4);
    f.relayout_fdt_like_linux();
    for start in [
        Start::X86BootParams(f.boot_params),
        Start::Dtb(f.dtb),
        Start::Fdt(f.fdt),
    ] {
        let r = inspect(&f.mem, start);
        assert_eq!(r.problems, vec![], "{start:?}");
        assert_eq!(r.abi_version.as_deref(), Some("kho-v4"));
        let rendered = r.fdt.as_ref().unwrap().rendered.as_ref().unwrap();
        assert!(rendered.contains("compatible = \"kho-v4\";"), "{rendered}");
        assert_eq!(runs(&r), f.runs);
        let names: Vec<_> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["kexec-metadata", "kho-stub", "memblock"]);
        assert!(r.subtrees.iter().all(|s| s.size.is_some()));
    }
}

#[test]
fn every_start_point_reaches_the_same_handover() {
    let f = fixture::build();
    let x86 = inspect(&f.mem, Start::X86BootParams(f.boot_params));
    let dtb = inspect(&f.mem, Start::Dtb(f.dtb));
    let fdt = inspect(&f.mem, Start::Fdt(f.fdt));
    for r in [&dtb, &fdt] {
        assert_eq!(r.problems, vec![]);
        assert_eq!(r.preserved, x86.preserved);
        assert_eq!(r.subtrees.len(), 3);
    }
    assert_eq!(dtb.handover, x86.handover);
    assert_eq!(dtb.scratch, x86.scratch);
    // The FDT alone does not name scratch.
    assert_eq!((fdt.handover, fdt.scratch), (None, None));
}

#[test]
fn raw_and_elf_images_read_like_the_guest_memory() {
    let f = fixture::build();
    let dir = temp_dir("images");
    let ram = f.ram();
    let raw = dir.join("guest.raw");
    std::fs::write(&raw, &ram).unwrap();
    // Two segments, the upper one listed first, whose last MiB (untouched
    // scratch, all zero) is not in the file: p_filesz < p_memsz.
    let half = SIZE / 2;
    let elf = dir.join("guest.elf");
    let (lower, upper) = ram.split_at(half as usize);
    std::fs::write(
        &elf,
        elf_core(&[
            Load {
                paddr: BASE + half,
                memsz: half,
                data: &upper[..(half - (1 << 20)) as usize],
            },
            Load {
                paddr: BASE,
                memsz: half,
                data: lower,
            },
        ]),
    )
    .unwrap();

    let expected = inspect(&f.mem, Start::X86BootParams(f.boot_params));
    for (path, base) in [(&raw, Some(BASE)), (&elf, None)] {
        let image = Image::open(path, base).unwrap();
        assert_eq!(image.segments().len(), if base.is_some() { 1 } else { 2 });
        assert!(image.is_ram(PhysAddr::new(BASE), SIZE));
        assert!(
            image.is_ram(PhysAddr::new(BASE + half - 8), 16),
            "across segments"
        );
        assert!(!image.is_ram(PhysAddr::new(BASE + SIZE - 8), 16));
        assert!(!image.is_ram(PhysAddr::new(BASE - 1), 1));
        let mut tail = [0xffu8; 16];
        image
            .read(PhysAddr::new(BASE + SIZE - 16), &mut tail)
            .unwrap();
        assert_eq!(tail, [0; 16]);
        let mut word = [0u8; 8];
        image.read(PhysAddr::new(f.root), &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), f.read_u64(f.root));
        assert_eq!(
            image.read(PhysAddr::new(BASE + SIZE), &mut word),
            Err(kho_mem::Error::NotRam {
                addr: BASE + SIZE,
                len: 8
            })
        );

        let r = inspect(&image, Start::X86BootParams(f.boot_params));
        assert_eq!(r.problems, vec![]);
        assert_eq!(runs(&r), f.runs);
        assert_eq!(r.preserved, expected.preserved);
        assert_eq!(r.scratch, expected.scratch);
        assert_eq!(
            serde_json::to_value(&r.subtrees).unwrap(),
            serde_json::to_value(&expected.subtrees).unwrap()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_images_are_one_line_errors() {
    let dir = temp_dir("bad-images");
    let err =
        |path: &PathBuf, base: Option<u64>| format!("{:#}", Image::open(path, base).unwrap_err());

    let text = dir.join("text.bin");
    std::fs::write(&text, b"not a dump").unwrap();
    assert!(
        err(&text, None).contains("is not an ELF core"),
        "{}",
        err(&text, None)
    );
    assert!(Image::open(&text, Some(0x1000)).is_ok());
    assert!(err(&text, Some(u64::MAX - 4)).contains("runs past the end of the address space"));

    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(err(&empty, Some(0)).contains("is empty"));
    assert!(err(&empty, None).contains("is not an ELF core"));
    assert!(err(&dir.join("missing"), None).contains("opening"));

    let ram = vec![0u8; 0x2000];
    let truncated = dir.join("truncated.elf");
    let load = |paddr: u64, data| Load {
        paddr,
        memsz: 0x1000,
        data,
    };
    let mut bytes = elf_core(&[Load {
        paddr: 0x1000,
        memsz: 0x2000,
        data: &ram,
    }]);
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&truncated, &bytes).unwrap();
    assert!(
        err(&truncated, None).contains("truncated dump"),
        "{}",
        err(&truncated, None)
    );

    let no_load = dir.join("noload.elf");
    std::fs::write(&no_load, elf_core(&[])).unwrap();
    assert!(err(&no_load, None).contains("no PT_LOAD segment"));

    let overlap = dir.join("overlap.elf");
    let page = &ram[..0x1000];
    std::fs::write(
        &overlap,
        elf_core(&[load(0x1000, page), load(0x1800, page)]),
    )
    .unwrap();
    assert!(err(&overlap, None).contains("overlap"));

    let bad_header = dir.join("badheader.elf");
    std::fs::write(&bad_header, b"\x7fELF\x01\x01\x01").unwrap();
    assert!(
        err(&bad_header, None).contains("not a 64-bit ELF file"),
        "{}",
        err(&bad_header, None)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn corrupted(corrupt: impl FnOnce(&mut Fixture)) -> (Fixture, Report) {
    let mut f = fixture::build();
    corrupt(&mut f);
    let r = inspect(&f.mem, Start::X86BootParams(f.boot_params));
    (f, r)
}

#[test]
fn a_radix_cycle_is_named_with_its_table_and_entry() {
    let (f, r) = corrupted(Fixture::corrupt_cycle);
    let p = problem(&r, "radix-cycle");
    assert!(
        p.location.to_string().starts_with("radix level 4 table 0x"),
        "{}",
        p.location
    );
    assert!(p.message.contains("cycle"), "{}", p.message);
    assert!(
        p.message.contains(&format!("{:#x}", f.root)),
        "{}",
        p.message
    );
    // The walk stopped; what came before the problem is still shown.
    let preserved = r.preserved.unwrap();
    assert!(!preserved.complete);
    assert_eq!(preserved.radix, None);
}

#[test]
fn a_table_entry_outside_the_image_is_named() {
    let (_, r) = corrupted(Fixture::corrupt_entry_outside_image);
    let p = problem(&r, "radix-entry-outside-image");
    assert!(
        p.location.to_string().starts_with("radix level 4 table"),
        "{}",
        p.location
    );
    assert!(p.message.contains("is not RAM"), "{}", p.message);
}

#[test]
fn a_misaligned_table_entry_is_named() {
    let (_, r) = corrupted(Fixture::corrupt_misaligned_entry);
    let p = problem(&r, "radix-misaligned-entry");
    assert!(p.message.contains("not page-aligned"), "{}", p.message);
}

#[test]
fn a_wrong_compatible_is_named_with_its_byte_offset() {
    let (f, r) = corrupted(Fixture::corrupt_compatible);
    assert_eq!(codes(&r), ["fdt-compatible"]);
    let p = &r.problems[0];
    assert!(
        p.location
            .to_string()
            .starts_with(&format!("root FDT at {:#x}, byte offset 0x", f.fdt)),
        "{}",
        p.location
    );
    assert!(matches!(
        p.location,
        Location::RootFdt { addr, offset: Some(_) } if addr == f.fdt
    ));
    assert!(p.message.contains("kho-v9"), "{}", p.message);
    // The refused FDT is still shown, as a plain device tree.
    let rendered = r.fdt.as_ref().unwrap().rendered.as_ref().unwrap();
    assert!(rendered.contains("\"kho-v9\""), "{rendered}");
    // The scratch array comes from the handoff, not the FDT: still read.
    assert_eq!(r.scratch.as_ref().unwrap().len(), 2);
    // The FDT is still a device tree with a memory map: the walk and the
    // known subtrees are decoded anyway.
    assert_eq!(runs(&r), f.runs);
    let names: Vec<_> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["memblock", "kho-stub", "kexec-metadata"]);
    assert!(r.subtrees.iter().all(|s| s.fdt_offset.is_none()));
}

#[test]
fn a_preserved_block_inside_scratch_is_named() {
    let (f, r) = corrupted(Fixture::corrupt_scratch_over_preserved);
    let p = problem(&r, "preserved-in-scratch");
    let (folio, _) = f.folios[3];
    assert!(
        p.location
            .to_string()
            .contains(&format!("order-9 block(s) at {folio:#x}+0x200000")),
        "{}",
        p.location
    );
    assert_eq!(
        p.location,
        Location::PreservedRun {
            order: 9,
            addr: folio,
            size: 0x20_0000,
            blocks: 1
        }
    );
    assert!(p.message.contains("scratch"), "{}", p.message);
    // Everything else still decodes.
    assert!(r.preserved.unwrap().complete);
    assert_eq!(r.subtrees.len(), 3);
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let mut f = fixture::build();
    // Scratch entry 0 misaligned, the vmalloc chain's first chunk pointing
    // at itself, the kexec-metadata version wrong.
    let entry = f.scratch_array.0;
    let a = f.read_u64(entry);
    f.write_u64(entry, a + 0x10);
    f.write_u64(f.vmalloc_first, f.vmalloc_first);
    f.mem
        .write(PhysAddr::new(f.metadata_blob), &7u32.to_le_bytes())
        .unwrap();
    let r = inspect(&f.mem, Start::X86BootParams(f.boot_params));
    let got = codes(&r);
    for code in ["scratch-misaligned-entry", "vmalloc", "kexec-metadata"] {
        assert!(got.iter().any(|c| c.starts_with(code)), "{code} in {got:?}");
    }
    let p = problem(&r, "scratch-misaligned-entry");
    assert!(
        p.location.to_string().starts_with("scratch entry 0 at"),
        "{}",
        p.location
    );
    // The good scratch entry is still listed, the walk still complete.
    assert_eq!(r.scratch.unwrap().len(), 1);
    assert!(r.preserved.unwrap().complete);
}

#[test]
fn subtrees_and_records_must_be_preserved() {
    let mut f = fixture::build();
    // A stub record naming a block that is not preserved, and a memblock
    // region moved to memory nobody preserved.
    let record = f.stub_blob + 48;
    f.write_u64(record, BASE + (20 << 20));
    let r = inspect(&f.mem, Start::Fdt(f.fdt));
    let p = problem(&r, "kho-stub-record-not-preserved");
    assert!(
        p.location.to_string().ends_with("record 0"),
        "{}",
        p.location
    );
    assert_eq!(
        p.location,
        Location::subtree("kho-stub", f.stub_blob).at(Part::Record { index: 0 })
    );

    let mut f = fixture::build();
    f.mem
        .write(PhysAddr::new(f.stub_blob), b"KHOSTUB9")
        .unwrap();
    let r = inspect(&f.mem, Start::Fdt(f.fdt));
    assert_eq!(codes(&r), ["kho-stub-blob"]);
    assert!(matches!(r.subtrees[1].content, Content::Invalid));
}

#[test]
fn a_wrong_start_point_is_a_problem_not_a_panic() {
    let f = fixture::build();
    for (start, code) in [
        (Start::X86BootParams(f.dtb), "boot-params"),
        (Start::X86BootParams(BASE + SIZE), "boot-params"),
        (Start::Dtb(f.boot_params), "dtb"),
        (Start::Dtb(BASE + SIZE - 4), "dtb"),
        (Start::Fdt(f.root), "fdt-header"),
        (Start::Fdt(BASE + SIZE), "fdt-outside-image"),
    ] {
        let r = inspect(&f.mem, start);
        assert_eq!(codes(&r), [code], "{start:?}: {:#?}", r.problems);
    }
}

/// xorshift64*: deterministic damage without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_damage_never_panics() {
    let clean = fixture::build();
    // The pages a decoder reads: handoff, FDT, radix nodes, blobs, chunks.
    let mut pages = vec![
        clean.fdt,
        clean.root,
        clean.scratch_array.0,
        clean.boot_params,
        clean.dtb,
        clean.stub_blob,
        clean.memblock_blob,
        clean.metadata_blob,
        clean.vmalloc_first,
    ];
    let (_, level4) = clean.first_entry(clean.root);
    pages.push(level4);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..60 {
        let mut f = fixture::build();
        for _ in 0..1 + round % 8 {
            let page = pages[(next(&mut state) % pages.len() as u64) as usize];
            let at = page + next(&mut state) % 512 * 8;
            let value = match next(&mut state) % 4 {
                0 => next(&mut state),
                1 => f.read_u64(at) ^ (1 << (next(&mut state) % 64)),
                2 => page,
                _ => 0,
            };
            f.write_u64(at, value);
        }
        for start in [
            Start::X86BootParams(f.boot_params),
            Start::Dtb(f.dtb),
            Start::Fdt(f.fdt),
        ] {
            let r = inspect(&f.mem, start);
            // Whatever it found, it says where.
            assert!(
                r.problems
                    .iter()
                    .all(|p| !p.location.to_string().is_empty())
            );
        }
    }
}

/// One corrupt radix entry stops the walk: it is the one cause, and every
/// check against the cut-short preserved set follows from it. The text
/// says so first.
#[test]
fn a_corrupt_radix_entry_is_the_cause_of_the_failed_checks() {
    let (f, r) = corrupted(Fixture::corrupt_misaligned_entry);
    let follows = follows_from(&r.problems);
    assert_eq!(r.problems[0].code, "radix-misaligned-entry");
    let (_, level4) = f.first_entry(f.root);
    let (entry, _) = f.first_entry(level4);
    assert_eq!(
        r.problems[0].location,
        Location::RadixEntry {
            level: 4,
            table: level4,
            index: ((entry - level4) / 8) as usize,
            addr: entry,
        }
    );
    assert_eq!(follows[0], None);
    assert!(r.problems.len() > 5, "{:#?}", r.problems);
    for (p, f) in r.problems.iter().zip(&follows).skip(1) {
        assert!(p.code.ends_with("-not-preserved"), "{p:?}");
        assert_eq!(*f, Some(0), "{p:?}");
    }
    let text = kho_inspect::text::render_report(&r);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "verdict: {} problems (1 cause, {} consequences); first cause: radix-misaligned-entry at radix level 4 table {level4:#x}",
            r.problems.len(),
            r.problems.len() - 1
        )),
        "{text}"
    );
    assert!(
        text.contains("\n    consequence: fdt-not-preserved at root FDT at "),
        "{text}"
    );
}

/// A blob outside the image: what its content decoder could not read
/// follows from it, though the decoder finds it first.
#[test]
fn a_subtree_outside_the_image_is_the_cause_of_its_content_problems() {
    let mut f = fixture::build();
    let fdt = PhysAddr::new(f.fdt);
    let mut page = vec![0u8; 4096];
    f.mem.read(fdt, &mut page).unwrap();
    let at = f.metadata_blob.to_le_bytes();
    let off = page.windows(8).position(|w| w == at).unwrap();
    let outside = BASE + SIZE + 0x1000;
    f.mem
        .write(PhysAddr::new(f.fdt + off as u64), &outside.to_le_bytes())
        .unwrap();
    let r = inspect(&f.mem, Start::Fdt(f.fdt));
    assert_eq!(codes(&r), ["subtree-outside-image", "kexec-metadata"]);
    assert_eq!(follows_from(&r.problems), [None, Some(0)]);
    assert_eq!(
        r.problems[0].location,
        Location::subtree("kexec-metadata", outside)
    );
}
