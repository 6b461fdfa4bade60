//! A full handover through the host arena: preserve, publish, hand over, revive, restore.

use kho::{Error, Handover, KhoIn, KhoOut};
use kho_abi::AbiVersion;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, ScratchArea, ScratchAreas};

const BASE: u64 = 0x4000_0000;
const RAM: u64 = 256 << 20;

fn r(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(a), s).unwrap()
}

fn order(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

/// Scratch at the top 32 MiB of RAM, kept away from the arena's allocator.
fn setup() -> (HostMem, ScratchAreas) {
    let mut mem = HostMem::new(PhysAddr::new(BASE), RAM).unwrap();
    let mut areas = ScratchAreas::new();
    areas
        .push(ScratchArea {
            kind: AreaKind::Lowmem,
            range: r(BASE + RAM - (32 << 20), 16 << 20),
        })
        .unwrap();
    areas
        .push(ScratchArea {
            kind: AreaKind::Global,
            range: r(BASE + RAM - (16 << 20), 16 << 20),
        })
        .unwrap();
    for a in areas.as_slice() {
        mem.reserve(a.range).unwrap();
    }
    (mem, areas)
}

/// Generation N: preserve folios with content, a blob, metadata; write the
/// scratch array inside scratch; return the handover and what was preserved.
fn hand_over(mem: &mut HostMem, areas: &ScratchAreas) -> (Handover, Vec<(PhysAddr, Order)>) {
    hand_over_as(mem, areas, AbiVersion::V2)
}

/// [`hand_over`] writing the root FDT as `version`.
fn hand_over_as(
    mem: &mut HostMem,
    areas: &ScratchAreas,
    version: AbiVersion,
) -> (Handover, Vec<(PhysAddr, Order)>) {
    let mut out = KhoOut::new(mem, version).unwrap();
    let mut folios = Vec::new();
    for (i, o) in [0u32, 1, 3, 9].into_iter().enumerate() {
        let phys = mem.alloc_pages(order(o)).unwrap();
        mem.fill(phys, order(o).bytes(), 0xa0 + i as u8).unwrap();
        out.preserve_folio(mem, phys, order(o)).unwrap();
        folios.push((phys, order(o)));
    }
    let blob = mem.alloc_page().unwrap();
    mem.write(blob, b"client state").unwrap();
    out.preserve_folio(mem, blob, Order::ZERO).unwrap();
    out.add_subtree(mem, "client", blob, Some(12)).unwrap();
    out.add_kexec_metadata(mem, 4, "kho-rs-test").unwrap();
    let array_at = areas.as_slice()[0].range.start();
    let array = areas.write_array(mem, array_at).unwrap();
    out.check_handover(mem, areas.as_slice(), &[array]).unwrap();
    (out.handover(array), folios)
}

#[test]
fn one_generation_hands_over_to_the_next() {
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over(&mut mem, &areas);

    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    assert_eq!(kin.version(), AbiVersion::V2);
    assert_eq!(kin.scratch_areas().as_slice(), areas.as_slice());
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let mut reserved = Vec::new();
    let stats = kin
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |range, o| {
            reserved.push((range.start(), o));
            Ok(())
        })
        .unwrap();
    // 4 folios + blob + metadata page + the FDT page itself.
    assert_eq!(stats.blocks, 7);
    assert_eq!(stats.pages, 1 + 2 + 8 + 512 + 3);
    // Key order: highest order first.
    let orders: Vec<u32> = reserved.iter().map(|(_, o)| o.get()).collect();
    assert!(orders.windows(2).all(|w| w[0] >= w[1]), "{orders:?}");

    assert_eq!(kin.kexec_count(&mem).unwrap(), Some(4));
    let (blob, size) = kin.subtree("client").unwrap();
    assert_eq!(size, Some(12));
    let mut text = [0u8; 12];
    mem.read(blob, &mut text).unwrap();
    assert_eq!(&text, b"client state");

    for (i, &(phys, o)) in folios.iter().enumerate() {
        // The wrong order is refused, the right one accepted exactly once.
        let wrong = order(o.get() + 1);
        assert_eq!(
            kin.restore_folio(&mut mem, phys, wrong),
            Err(Error::NotRestorable {
                addr: phys,
                order: wrong,
                preserved: Some(o)
            })
        );
        kin.restore_folio(&mut mem, phys, o).unwrap();
        assert!(matches!(
            kin.restore_folio(&mut mem, phys, o),
            Err(Error::NotRestorable {
                preserved: None,
                ..
            })
        ));
        let mut first = [0u8; 1];
        mem.read(phys, &mut first).unwrap();
        assert_eq!(first[0], 0xa0 + i as u8);
    }
    assert_eq!(kin.unrestored_blocks(), 3);
    let mut visited = VisitedSet::new(&mut buf);
    let left: u64 = kin
        .unrestored(&mem, &mut visited)
        .map(|r| r.unwrap().blocks())
        .sum();
    assert_eq!(left, 3);
}

/// Every version from kho-v2 on round-trips through the engine: the
/// writer emits the version it was given and the reader reports it
/// (kho-v1, with its finalize and bitmap walk, in tests/v1.rs).
#[test]
fn every_version_hands_over() {
    for version in AbiVersion::ALL.into_iter().filter(|v| !v.has_finalize()) {
        let (mut mem, areas) = setup();
        let (handover, folios) = hand_over_as(&mut mem, &areas, version);
        let mut page = [0u8; 4096];
        mem.read(handover.fdt, &mut page).unwrap();
        let fdt = kho_fdt::KhoFdt::parse(&page).unwrap();
        assert_eq!(fdt.version(), version);
        let mut kin = KhoIn::populate(&mem, handover).unwrap();
        assert_eq!(kin.version(), version);
        let mut buf = vec![0u64; VisitedSet::words_for(1024)];
        let stats = kin
            .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
            .unwrap();
        assert_eq!(stats.blocks, 7, "{version}");
        assert_eq!(kin.kexec_count(&mem).unwrap(), Some(4));
        assert_eq!(kin.subtree("client").unwrap().1, Some(12));
        for (phys, o) in folios {
            kin.restore_folio(&mut mem, phys, o).unwrap();
        }
    }
}

/// Linux 7.2 writes kho-v4 with each child's `blob-size` before its
/// `preserved-data` (libfdt inserts new properties first). The same tree in
/// that layout revives exactly as our own layout does.
#[test]
fn kho_v4_in_linux_property_order_revives() {
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over_as(&mut mem, &areas, AbiVersion::V4);
    let (map, children) = our_children(&mem, handover);
    let linux = linux_layout(map, &children, false);
    assert!(linux.len() <= 4096);
    let mut fresh = [0u8; 4096];
    fresh[..linux.len()].copy_from_slice(&linux);
    mem.write(handover.fdt, &fresh).unwrap();

    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    assert_eq!(kin.version(), AbiVersion::V4);
    let mut names = kin.subtree_names();
    names.sort_unstable();
    assert_eq!(names, ["client", "kexec-metadata"]);
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let stats = kin
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert_eq!(stats.blocks, 7);
    assert_eq!(kin.kexec_count(&mem).unwrap(), Some(4));
    assert_eq!(kin.subtree("client").unwrap().1, Some(12));
    for (phys, o) in folios {
        kin.restore_folio(&mut mem, phys, o).unwrap();
    }
}

/// The memory map and the (name, data, size) of every child of the FDT
/// kho-rs wrote for `handover`.
fn our_children(mem: &HostMem, handover: Handover) -> (u64, Vec<(String, u64, u64)>) {
    let mut page = [0u8; 4096];
    mem.read(handover.fdt, &mut page).unwrap();
    let ours = kho_fdt::KhoFdt::parse(&page).unwrap();
    let children = ours
        .subtrees()
        .map(|s| (s.name().to_owned(), s.data().as_u64(), s.size().unwrap()))
        .collect();
    (ours.memory_map().as_u64(), children)
}

/// A kho-v4 FDT as Linux 7.2 lays it out (children newest first, each
/// child's `blob-size` first). With `libfdt_forms`, also in the forms
/// libfdt reads but kho-rs never writes: a `compatible` string list, the
/// `FDT_NOP`s `fdt_delprop` leaves (one in the root, one in a child) and a
/// version 16 header.
fn linux_layout(map: u64, children: &[(String, u64, u64)], libfdt_forms: bool) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    if libfdt_forms {
        w.property_string_list("compatible", vec!["vendor,kho".into(), "kho-v4".into()])
            .unwrap();
        w.property_null("deleted-prop").unwrap();
    } else {
        w.property_string("compatible", "kho-v4").unwrap();
    }
    w.property("preserved-memory-map", &map.to_le_bytes())
        .unwrap();
    // Linux's child order too: the last one added comes first.
    for (name, data, size) in children.iter().rev() {
        let c = w.begin_node(name).unwrap();
        w.property("blob-size", &size.to_le_bytes()).unwrap();
        if libfdt_forms {
            w.property_null("deleted-prop").unwrap();
        }
        w.property("preserved-data", &data.to_le_bytes()).unwrap();
        w.end_node(c).unwrap();
    }
    w.end_node(root).unwrap();
    let mut blob = w.finish().unwrap();
    if libfdt_forms {
        let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let strings = be32(&blob, 0x0c) as usize;
        let name_off = blob[strings..]
            .windows(13)
            .position(|w| w == b"deleted-prop\0")
            .unwrap() as u32;
        // Every empty FDT_PROP naming it becomes three FDT_NOPs, exactly as
        // libfdt's fdt_nop_property leaves it.
        let (start, end) = (be32(&blob, 0x08) as usize, strings);
        let mut at = start;
        let mut nopped = 0;
        while at + 12 <= end {
            if be32(&blob, at) == 3 && be32(&blob, at + 4) == 0 && be32(&blob, at + 8) == name_off {
                for k in 0..3 {
                    blob[at + 4 * k..at + 4 * k + 4].copy_from_slice(&4u32.to_be_bytes());
                }
                nopped += 1;
            }
            at += 4;
        }
        assert_eq!(nopped, 1 + children.len());
        // Version 16: no size_dt_struct (left as garbage).
        blob[0x14..0x18].copy_from_slice(&16u32.to_be_bytes());
        blob[0x24..0x28].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    }
    blob
}

/// libfdt, and so Linux, reads a compatible string list, FDT_NOPs and a v16
/// header; so does the engine, and the handover revives in full.
#[test]
fn libfdt_forms_revive() {
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over_as(&mut mem, &areas, AbiVersion::V4);
    let (map, children) = our_children(&mem, handover);
    let linux = linux_layout(map, &children, true);
    // The strict reader (fdt-dump, inspect) still names what it refuses.
    assert!(matches!(
        kho_fdt::KhoFdt::parse(&linux),
        Err(kho_fdt::Error::UnsupportedHeaderVersion { version: 16, .. })
    ));
    let mut fresh = [0u8; 4096];
    fresh[..linux.len()].copy_from_slice(&linux);
    mem.write(handover.fdt, &fresh).unwrap();

    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    assert_eq!(kin.version(), AbiVersion::V4);
    assert_eq!(kin.fdt().unwrap().rejected().count(), 0);
    let mut names = kin.subtree_names();
    names.sort_unstable();
    assert_eq!(names, ["client", "kexec-metadata"]);
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert_eq!(kin.kexec_count(&mem).unwrap(), Some(4));
    for (phys, o) in folios {
        kin.restore_folio(&mut mem, phys, o).unwrap();
    }
    // The previous kernel's page itself was not rewritten.
    let mut after = [0u8; 4096];
    mem.read(handover.fdt, &mut after).unwrap();
    assert_eq!(after, fresh);
}

#[test]
fn wrong_compatible_is_no_revival() {
    let (mut mem, areas) = setup();
    let (handover, _) = hand_over(&mut mem, &areas);
    let mut page = [0u8; 4096];
    mem.read(handover.fdt, &mut page).unwrap();
    let at = page.windows(6).position(|w| w == b"kho-v2").unwrap();
    mem.write(handover.fdt.checked_add(at as u64).unwrap(), b"kho-v9")
        .unwrap();
    let err = KhoIn::populate(&mem, handover).unwrap_err();
    assert!(
        matches!(err, Error::Fdt(kho_fdt::Error::UnknownCompatible { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("kho-v9"), "{err}");
}

#[test]
fn bad_mappings_and_arrays_are_no_revival() {
    let (mut mem, areas) = setup();
    let (handover, _) = hand_over(&mut mem, &areas);
    let outside = Handover {
        fdt: PhysAddr::new(0x1000),
        ..handover
    };
    assert!(matches!(
        KhoIn::populate(&mem, outside),
        Err(Error::BadFdtMapping { .. })
    ));
    let two_pages = Handover {
        fdt_size: 8192,
        ..handover
    };
    assert!(matches!(
        KhoIn::populate(&mem, two_pages),
        Err(Error::BadFdtMapping { .. })
    ));
    let odd_array = Handover {
        scratch_len: 24,
        ..handover
    };
    assert!(matches!(
        KhoIn::populate(&mem, odd_array),
        Err(Error::Scratch(_))
    ));
}

#[test]
fn linux_zero_size_scratch_entry_revives() {
    // Linux 7.2's array in a 1 GiB guest: lowmem, the global area with
    // size 0, node 0. The empty entry holds nothing and must not stop the
    // revival; the others are used as they are.
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over(&mut mem, &areas);
    let lowmem = areas.as_slice()[0].range;
    let global = areas.as_slice()[1].range;
    let mut raw = Vec::new();
    for (addr, size) in [
        (lowmem.start().as_u64(), lowmem.size()),
        (global.start().as_u64() + (8 << 20), 0),
        (global.start().as_u64(), global.size()),
    ] {
        raw.extend_from_slice(&addr.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
    }
    let at = PhysAddr::new(lowmem.start().as_u64() + (8 << 20));
    mem.write(at, &raw).unwrap();
    let h = Handover {
        scratch: at,
        scratch_len: raw.len() as u64,
        ..handover
    };
    let mut kin = KhoIn::populate(&mem, h).unwrap();
    let sizes: Vec<u64> = kin
        .scratch_areas()
        .as_slice()
        .iter()
        .map(|a| a.range.size())
        .collect();
    assert_eq!(sizes, [lowmem.size(), 0, global.size()]);
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let stats = kin
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert!(stats.blocks >= folios.len() as u64);
    for (phys, o) in folios {
        kin.restore_folio(&mut mem, phys, o).unwrap();
    }
}

#[test]
fn preserved_block_inside_scratch_fails_the_walk() {
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over(&mut mem, &areas);
    // A scratch array that claims the first folio's memory as scratch.
    let (victim, o) = folios[3];
    let mut bad = ScratchAreas::new();
    bad.push(areas.as_slice()[0]).unwrap();
    bad.push(ScratchArea {
        kind: AreaKind::Global,
        range: r(victim.as_u64(), o.bytes()),
    })
    .unwrap();
    let array = bad
        .write_array(&mut mem, areas.as_slice()[1].range.start())
        .unwrap();
    let h = Handover {
        scratch: array.start(),
        scratch_len: array.size(),
        ..handover
    };
    let mut kin = KhoIn::populate(&mem, h).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let err = kin
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Scratch(kho_scratch::Error::PreservedInScratch { .. })
        ),
        "{err}"
    );
}

/// A handover whose root FDT page is not preserved is refused: a kernel
/// reading the FDT in place later would read freed memory.
#[test]
fn unpreserved_root_fdt_page_fails_the_walk() {
    let (mut mem, areas) = setup();
    let (handover, _) = hand_over(&mut mem, &areas);
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    // Restoring clears the page's bit in the tree in memory, as a kernel
    // that unpreserved it would have.
    kin.restore_folio(&mut mem, handover.fdt, order(0)).unwrap();
    let mut again = KhoIn::populate(&mem, handover).unwrap();
    let err = again
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::FdtNotPreserved { fdt } if fdt == handover.fdt),
        "{err}"
    );
}

/// A radix node inside a scratch area could be overwritten before the walk
/// reads it: the revival is refused by name.
#[test]
fn radix_node_inside_scratch_fails_the_walk() {
    let (mut mem, areas) = setup();
    let (handover, _) = hand_over(&mut mem, &areas);
    // Every node the walk reads, then a scratch area over the last one.
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    let mut visited = VisitedSet::new(&mut buf);
    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    kin.reserve_preserved(&mem, &mut visited, |_, _| Ok(()))
        .unwrap();
    let node = visited.nodes().last().unwrap();
    let mut bad = ScratchAreas::new();
    bad.push(areas.as_slice()[0]).unwrap();
    bad.push(ScratchArea {
        kind: AreaKind::Global,
        range: r(node.as_u64(), 4096),
    })
    .unwrap();
    let array = bad
        .write_array(&mut mem, areas.as_slice()[1].range.start())
        .unwrap();
    let h = Handover {
        scratch: array.start(),
        scratch_len: array.size(),
        ..handover
    };
    let mut kin = KhoIn::populate(&mem, h).unwrap();
    let err = kin
        .reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::NodeInScratch { node: n, index: 1, .. } if n == node),
        "{err}"
    );
    assert!(err.to_string().contains("lies in scratch area 1"), "{err}");
}

#[test]
fn handover_check_catches_boot_ranges_outside_scratch() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V2).unwrap();
    let outside = r(BASE, 4096);
    assert_eq!(
        out.check_handover(&mem, areas.as_slice(), &[outside]),
        Err(Error::OutsideScratch {
            addr: PhysAddr::new(BASE),
            len: 4096
        })
    );
    // A block preserved inside scratch is caught too.
    let inside = areas.as_slice()[1].range.start();
    out.preserve_folio(&mut mem, inside, Order::ZERO).unwrap();
    assert!(matches!(
        out.check_handover(&mem, areas.as_slice(), &[]),
        Err(Error::Scratch(
            kho_scratch::Error::PreservedInScratch { .. }
        ))
    ));
}

#[test]
fn subtrees_are_replaced_and_removed() {
    let (mut mem, _) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V3).unwrap();
    assert!(matches!(
        out.add_subtree(&mut mem, "a", PhysAddr::new(BASE), None),
        Err(Error::Fdt(kho_fdt::Error::BlobSizeRequired { .. }))
    ));
    out.add_subtree(&mut mem, "a", PhysAddr::new(BASE), Some(8))
        .unwrap();
    out.add_subtree(&mut mem, "a", PhysAddr::new(BASE + 0x1000), Some(16))
        .unwrap();
    let mut page = [0u8; 4096];
    mem.read(out.fdt(), &mut page).unwrap();
    let fdt = kho_fdt::KhoFdt::parse(&page).unwrap();
    assert_eq!(fdt.subtrees().count(), 1);
    assert_eq!(
        fdt.subtree("a").unwrap().data(),
        PhysAddr::new(BASE + 0x1000)
    );
    assert!(out.remove_subtree(&mut mem, "a").unwrap());
    assert!(!out.remove_subtree(&mut mem, "a").unwrap());
}

#[test]
fn vmalloc_area_and_reserve_mem_region_survive() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V2).unwrap();
    // 600 scattered pages: more than one chunk (511 entries).
    let mut pages = Vec::new();
    for i in 0..600u64 {
        let p = mem.alloc_page().unwrap();
        let gap = mem.alloc_page().unwrap();
        mem.write_u64(p, i).unwrap();
        pages.push(p);
        let _ = gap;
    }
    let desc = out
        .preserve_vmalloc(&mut mem, pages.iter().copied(), Order::ZERO, 1)
        .unwrap();
    let log = mem.alloc_pages(order(4)).unwrap();
    mem.write(log, b"gen 0\n").unwrap();
    let region = kho_memblock::Region::new("kho_log", log, 64 << 10).unwrap();
    out.preserve_memblock(&mut mem, &[region]).unwrap();
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    let handover = out.handover(array);

    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(4096)];
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    let area = kin.restore_vmalloc(&mut mem, &desc).unwrap();
    assert_eq!((area.total_pages(), area.chunks()), (600, 2));
    let back: Vec<PhysAddr> = area.iter_blocks(&mem).map(|b| b.unwrap()).collect();
    assert_eq!(back, pages);
    assert_eq!(mem.read_u64(back[599]).unwrap(), 599);
    // Restoring again fails: the blocks are no longer preserved blocks.
    assert!(matches!(
        kin.restore_vmalloc(&mut mem, &desc),
        Err(Error::Vmalloc(_))
    ));

    let mut page = [0u8; 4096];
    let blob_phys = kin.subtree("memblock").unwrap().0;
    let memblock = kin.memblock(&mem, &mut page).unwrap().unwrap();
    let found = memblock.find("kho_log").unwrap();
    assert_eq!((found.start(), found.size()), (log, 64 << 10));
    kin.restore_pages(&mut mem, found.range()).unwrap();
    kin.restore_folio(&mut mem, blob_phys, Order::ZERO).unwrap();
    // Left: the FDT page.
    assert_eq!(kin.unrestored_blocks(), 1);
}

#[test]
fn vmalloc_chain_naming_unpreserved_memory_is_refused() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V2).unwrap();
    let p = mem.alloc_page().unwrap();
    let desc = out.preserve_vmalloc(&mut mem, [p], Order::ZERO, 1).unwrap();
    // The block is dropped from the tree behind the descriptor's back.
    out.unpreserve_folio(&mut mem, p, Order::ZERO).unwrap();
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    let mut kin = KhoIn::populate(&mem, out.handover(array)).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert!(matches!(
        kin.restore_vmalloc(&mut mem, &desc),
        Err(Error::Vmalloc(kho_vmalloc::Error::BlockNotPreserved { .. }))
    ));
}

/// What the next kernel would refuse (and lose every client's memory
/// over) is refused at the call instead, with a named error.
#[test]
fn the_preserve_api_refuses_what_the_next_kernel_would() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    let before = out.tree().unwrap().preserved_blocks();
    // Outside RAM.
    let outside = PhysAddr::new(0x10_0000_0000);
    assert_eq!(
        out.preserve_folio(&mut mem, outside, Order::ZERO),
        Err(Error::PreserveNotRam {
            addr: outside,
            size: 4096
        })
    );
    // An order larger than RAM can hold (1 GiB in 256 MiB).
    let base = PhysAddr::new(BASE);
    assert_eq!(
        out.preserve_folio(&mut mem, base, order(18)),
        Err(Error::PreserveNotRam {
            addr: base,
            size: 1 << 30
        })
    );
    assert!(matches!(
        out.preserve_pages(&mut mem, r(BASE + RAM - 4096, 8192)),
        Err(Error::PreserveNotRam { .. })
    ));
    // Inside scratch, once the engine knows scratch.
    let in_scratch = areas.as_slice()[0].range.start();
    out.exclude_scratch(&areas);
    assert!(matches!(
        out.preserve_folio(&mut mem, in_scratch, Order::ZERO),
        Err(Error::Scratch(kho_scratch::Error::PreservedInScratch {
            index: 0,
            ..
        }))
    ));
    // The root FDT page stays preserved.
    let fdt = out.fdt();
    assert_eq!(
        out.unpreserve_folio(&mut mem, fdt, Order::ZERO),
        Err(Error::RootFdtPage { addr: fdt })
    );
    assert_eq!(
        out.unpreserve_pages(&mut mem, r(fdt.as_u64(), 4096)),
        Err(Error::RootFdtPage { addr: fdt })
    );
    assert_eq!(out.tree().unwrap().preserved_blocks(), before);
    // A good block still goes in.
    let p = mem.alloc_page().unwrap();
    out.preserve_folio(&mut mem, p, Order::ZERO).unwrap();

    // restore_pages takes whole pages, as preserve_pages does.
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    let mut kin = KhoIn::populate(&mem, out.handover(array)).unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    assert!(matches!(
        kin.restore_pages(&mut mem, r(p.as_u64(), 1024)),
        Err(Error::Mem(kho_mem::Error::Misaligned { .. }))
    ));
    kin.restore_pages(&mut mem, r(p.as_u64(), 4096)).unwrap();
}

/// Linux fails `kho_retrieve_subtree` for a malformed child and every
/// other client goes on; so does `KhoIn`, and it names what it left out.
#[test]
fn a_malformed_child_loses_only_itself() {
    let (mut mem, areas) = setup();
    let (handover, folios) = hand_over(&mut mem, &areas);
    // Zero the `client` child's preserved-data in the FDT page.
    let mut page = [0u8; 4096];
    mem.read(handover.fdt, &mut page).unwrap();
    let (blob, _) = kho_fdt::KhoFdt::parse(&page)
        .map(|f| (f.subtree("client").unwrap().data(), ()))
        .unwrap();
    let le = blob.as_u64().to_le_bytes();
    let at = page.windows(8).position(|w| w == le).unwrap();
    page[at..at + 8].fill(0);
    mem.write(handover.fdt, &page).unwrap();
    assert!(
        kho_fdt::KhoFdt::parse(&page).is_err(),
        "strict parse refuses it"
    );

    let mut kin = KhoIn::populate(&mem, handover).unwrap();
    assert_eq!(kin.subtree("client"), None);
    let fdt = kin.fdt().unwrap();
    let rejected: Vec<_> = fdt.rejected().map(|(n, e)| (n, e.to_string())).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, "client");
    assert!(rejected[0].1.contains("zero"), "{}", rejected[0].1);
    // Every other client proceeds.
    assert_eq!(kin.kexec_count(&mem).unwrap(), Some(4));
    let mut buf = vec![0u64; VisitedSet::words_for(1024)];
    kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
        .unwrap();
    for (phys, o) in folios {
        kin.restore_folio(&mut mem, phys, o).unwrap();
    }
}
