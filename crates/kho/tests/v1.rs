//! kho-v1 (Linux 6.16 – 6.19) through the engine: KhoOut tracks with
//! bitmaps and publishes at finalize, KhoIn walks the chunk list.

use core::ops::ControlFlow;

use kho::{Error, Handover, KhoIn, KhoOut};
use kho_abi::AbiVersion;
use kho_abi::v1::BitmapSize;
use kho_fdt::KhoFdt;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, ScratchArea, ScratchAreas};

const BASE: u64 = 0x4000_0000;
const RAM: u64 = 256 << 20;
const SIZES: [BitmapSize; 2] = [BitmapSize::Page, BitmapSize::Bytes512];

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
    for (kind, at) in [(AreaKind::Lowmem, 32u64), (AreaKind::Global, 16)] {
        areas
            .push(ScratchArea {
                kind,
                range: r(BASE + RAM - (at << 20), 16 << 20),
            })
            .unwrap();
    }
    for a in areas.as_slice() {
        mem.reserve(a.range).unwrap();
    }
    (mem, areas)
}

/// A client sub-FDT (`compatible = name`, one u32 `magic`) in a page of
/// its own; returns the page and the FDT's size.
fn client_fdt(mem: &mut HostMem, name: &str, magic: u32) -> (PhysAddr, u64) {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("compatible", name).unwrap();
    w.property_u32("magic", magic).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let page = mem.alloc_page().unwrap();
    mem.write(page, &blob).unwrap();
    (page, blob.len() as u64)
}

const FOLIO_ORDERS: [u32; 6] = [0, 0, 1, 3, 9, 10];
const CLIENTS: [&str; 3] = ["memblock", "kho_test", "luo"];

/// The old kernel under kho-v1: folios of several orders with content,
/// three client FDTs, finalize; returns the handover, the folios and the
/// client pages.
fn hand_over_v1(
    mem: &mut HostMem,
    areas: &ScratchAreas,
    size: BitmapSize,
) -> (Handover, Vec<(PhysAddr, Order)>, Vec<PhysAddr>) {
    let mut out = KhoOut::new_v1(mem, size).unwrap();
    assert_eq!(out.version(), AbiVersion::V1);
    assert_eq!(out.tracker().map(|t| t.bitmap_size()), Some(size));
    assert!(out.tree().is_none());
    out.exclude_scratch(areas);
    let mut folios = Vec::new();
    for (i, o) in FOLIO_ORDERS.into_iter().enumerate() {
        let phys = mem.alloc_pages(order(o)).unwrap();
        mem.fill(phys, order(o).bytes(), 0xa0 + i as u8).unwrap();
        out.preserve_folio(mem, phys, order(o)).unwrap();
        folios.push((phys, order(o)));
    }
    let mut clients = Vec::new();
    for (i, name) in CLIENTS.into_iter().enumerate() {
        let (page, len) = client_fdt(mem, name, 0x4b48_4f21 + i as u32);
        out.preserve_folio(mem, page, Order::ZERO).unwrap();
        // A size, when given, must be the FDT's own.
        let size = (i == 1).then_some(len);
        out.add_subtree(mem, name, page, size).unwrap();
        clients.push(page);
    }
    let array_at = areas.as_slice()[0].range.start();
    let array = areas.write_array(mem, array_at).unwrap();
    // No FDT before finalize: the page is zeros and the handover refused.
    let mut head = [0xffu8; 64];
    mem.read(out.fdt(), &mut head).unwrap();
    assert_eq!(head, [0; 64]);
    assert_eq!(
        out.check_handover(mem, areas.as_slice(), &[array]),
        Err(Error::NotFinalized)
    );
    assert!(!out.is_finalized());
    out.finalize(mem).unwrap();
    assert!(out.is_finalized());
    out.check_handover(mem, areas.as_slice(), &[array]).unwrap();
    (out.handover(array), folios, clients)
}

/// KhoOut(V1) → KhoIn for both bitmap sizes: every folio restored once
/// with its order and content, every client FDT found, the bitmaps saying
/// what is left.
#[test]
fn v1_round_trip_for_both_bitmap_sizes() {
    for size in SIZES {
        let (mut mem, areas) = setup();
        let (handover, folios, clients) = hand_over_v1(&mut mem, &areas, size);

        // The root FDT as Linux 6.16 – 6.19 read it.
        let mut page = [0u8; 4096];
        mem.read(handover.fdt, &mut page).unwrap();
        let fdt = KhoFdt::parse(&page).unwrap();
        assert_eq!(fdt.version(), AbiVersion::V1);
        assert_ne!(fdt.memory_map(), PhysAddr::ZERO);
        assert!(fdt.render().contains("\t\tfdt = le64:"));

        let mut kin = KhoIn::populate(&mem, handover).unwrap();
        assert_eq!(kin.version(), AbiVersion::V1, "{size:?}");
        assert_eq!(kin.memory_map(), fdt.memory_map());
        assert_eq!(kin.subtree_names(), CLIENTS);
        for (name, &page) in CLIENTS.iter().zip(&clients) {
            assert_eq!(kin.subtree(name), Some((page, None)));
        }
        assert_eq!(kin.kexec_count(&mem).unwrap(), None);
        // The radix walk does not apply.
        let mut vbuf = vec![0u64; VisitedSet::words_for(64)];
        assert!(matches!(
            kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut vbuf), |_, _| Ok(())),
            Err(Error::NotInVersion {
                version: AbiVersion::V1,
                ..
            })
        ));
        assert_eq!(
            kin.restore_folio(&mut mem, folios[0].0, folios[0].1),
            Err(Error::NotWalked)
        );

        let mut buf = [0u64; kho_bitmaps::IncomingMap::words_for(16)];
        let mut reserved = Vec::new();
        let stats = kin
            .reserve_preserved_v1(&mem, size, &mut buf, |range, o| {
                reserved.push((range.start(), o));
                Ok(())
            })
            .unwrap();
        // 6 folios + 3 client pages + the root FDT page.
        assert_eq!(stats.blocks, 10, "{size:?}");
        assert_eq!(stats.pages, 1 + 1 + 2 + 8 + 512 + 1024 + 3 + 1);
        // List order: orders ascending, as kho_mem_deserialize reserves.
        let orders: Vec<u32> = reserved.iter().map(|(_, o)| o.get()).collect();
        assert!(orders.windows(2).all(|w| w[0] <= w[1]), "{orders:?}");
        assert!(reserved.iter().any(|&(p, _)| p == handover.fdt));
        assert!(stats.nodes >= 5, "one chunk and one bitmap per order");

        for (i, &(phys, o)) in folios.iter().enumerate() {
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
            assert_eq!(
                kin.restore_folio(&mut mem, phys, o),
                Err(Error::NotRestorable {
                    addr: phys,
                    order: o,
                    preserved: None
                })
            );
            let mut bytes = vec![0u8; o.bytes() as usize];
            mem.read(phys, &mut bytes).unwrap();
            assert!(bytes.iter().all(|&b| b == 0xa0 + i as u8), "folio {i}");
        }
        // Left: the three client pages and the FDT page, all order 0.
        assert_eq!(kin.unrestored_blocks(), 4);
        let mut left = 0;
        let flow = kin
            .for_each_unrestored_v1(&mem, |run| {
                assert_eq!(run.order(), Order::ZERO);
                left += run.blocks();
                ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert!(flow.is_continue());
        assert_eq!(left, 4);
        let mut visited = VisitedSet::new(&mut vbuf);
        let items: Vec<_> = kin.unrestored(&mem, &mut visited).collect();
        assert!(matches!(items[..], [Err(Error::NotInVersion { .. })]));
        for page in clients {
            kin.restore_folio(&mut mem, page, Order::ZERO).unwrap();
        }
        assert_eq!(kin.unrestored_blocks(), 1);
    }
}

/// Finalize freezes the state, abort undoes it (frees the chunk list,
/// removes the FDT), and what kho-v1 cannot carry is refused by name.
#[test]
fn v1_finalize_and_abort() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V1).unwrap();
    assert_eq!(
        out.tracker().map(|t| t.bitmap_size()),
        Some(BitmapSize::Page),
        "the default size"
    );
    let folio = mem.alloc_pages(order(2)).unwrap();
    out.preserve_folio(&mut mem, folio, order(2)).unwrap();
    let (client, len) = client_fdt(&mut mem, "client", 1);
    out.preserve_folio(&mut mem, client, Order::ZERO).unwrap();
    out.add_subtree(&mut mem, "client", client, None).unwrap();
    assert_eq!(out.abort(&mut mem), Err(Error::NotFinalized));

    let before = mem.allocated_pages();
    out.finalize(&mut mem).unwrap();
    // One chunk per order: orders 0 and 2.
    assert_eq!(mem.allocated_pages(), before + 2);
    let mut page = [0u8; 4096];
    mem.read(out.fdt(), &mut page).unwrap();
    let map = KhoFdt::parse(&page).unwrap().memory_map();
    assert_ne!(map, PhysAddr::ZERO);

    // Frozen: every change is refused and nothing moves.
    let other = mem.alloc_page().unwrap();
    assert_eq!(out.finalize(&mut mem), Err(Error::Finalized));
    assert_eq!(
        out.preserve_folio(&mut mem, other, Order::ZERO),
        Err(Error::Finalized)
    );
    assert_eq!(
        out.unpreserve_folio(&mut mem, folio, order(2)),
        Err(Error::Finalized)
    );
    assert_eq!(
        out.preserve_pages(&mut mem, r(other.as_u64(), 4096)),
        Err(Error::Finalized)
    );
    assert_eq!(
        out.unpreserve_pages(&mut mem, r(folio.as_u64(), 4 << 12)),
        Err(Error::Finalized)
    );
    assert_eq!(
        out.add_subtree(&mut mem, "more", client, None),
        Err(Error::Finalized)
    );
    assert_eq!(
        out.remove_subtree(&mut mem, "client"),
        Err(Error::Finalized)
    );
    assert_eq!(out.tracker().map(|t| t.blocks()), Some(3));

    // Abort: the chunks are freed, the FDT is gone, changes work again.
    out.abort(&mut mem).unwrap();
    assert!(!out.is_finalized());
    assert_eq!(
        mem.allocated_pages(),
        before + 1,
        "the chunks freed, `other` kept"
    );
    mem.read(out.fdt(), &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(out.abort(&mut mem), Err(Error::NotFinalized));
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    assert_eq!(
        out.check_handover(&mem, areas.as_slice(), &[array]),
        Err(Error::NotFinalized)
    );
    out.unpreserve_folio(&mut mem, folio, order(2)).unwrap();
    assert!(out.remove_subtree(&mut mem, "client").unwrap());
    out.add_subtree(&mut mem, "client", client, Some(len))
        .unwrap();
    out.finalize(&mut mem).unwrap();
    mem.read(out.fdt(), &mut page).unwrap();
    let fdt = KhoFdt::parse(&page).unwrap();
    assert_eq!(
        fdt.subtrees().map(|s| s.name()).collect::<Vec<_>>(),
        ["client"]
    );

    // What a kho-v1 handover cannot carry, or the engine cannot write in it.
    out.abort(&mut mem).unwrap();
    let not_in_v1 = |e: Result<_, Error>, what: &str| match e {
        Err(Error::NotInVersion {
            what: w,
            version: AbiVersion::V1,
        }) => assert_eq!(w, what),
        other => panic!("{what}: {other:?}"),
    };
    not_in_v1(
        out.add_kexec_metadata(&mut mem, 1, "6.18.0").map(|_| ()),
        "kexec-metadata",
    );
    not_in_v1(
        out.preserve_vmalloc(&mut mem, [other], Order::ZERO, 0)
            .map(|_| ()),
        "vmalloc preservation",
    );
    not_in_v1(
        out.preserve_memblock(&mut mem, &[]).map(|_| ()),
        "memblock preservation",
    );
    // A kho-v1 child names an FDT, sized by its header.
    mem.write(other, b"not an FDT").unwrap();
    assert_eq!(
        out.add_subtree(&mut mem, "raw", other, None),
        Err(Error::SubtreeNotFdt {
            name: "raw".into(),
            addr: other
        })
    );
    assert_eq!(
        out.add_subtree(&mut mem, "client2", client, Some(len + 1)),
        Err(Error::SubtreeSizeMismatch {
            name: "client2".into(),
            size: len + 1,
            totalsize: len
        })
    );
    assert_eq!(
        out.add_subtree(&mut mem, "far", PhysAddr::new(0x10_0000_0000), None),
        Err(Error::SubtreeNotFdt {
            name: "far".into(),
            addr: PhysAddr::new(0x10_0000_0000)
        })
    );
}

/// From kho-v2 on there is nothing to finalize: both calls do nothing,
/// and the kho-v1 walk is refused by name.
#[test]
fn finalize_is_a_no_op_after_v1() {
    let (mut mem, areas) = setup();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    assert!(out.is_finalized());
    out.finalize(&mut mem).unwrap();
    out.abort(&mut mem).unwrap();
    assert!(out.is_finalized() && out.tracker().is_none());
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    out.check_handover(&mem, areas.as_slice(), &[array])
        .unwrap();
    let mut kin = KhoIn::populate(&mem, out.handover(array)).unwrap();
    let mut buf = [0u64; 64];
    assert!(matches!(
        kin.reserve_preserved_v1(&mem, BitmapSize::Page, &mut buf, |_, _| Ok(())),
        Err(Error::NotInVersion {
            version: AbiVersion::V4,
            ..
        })
    ));
}

/// Walk a handover whose map was damaged by `damage(mem, first_chunk)`.
fn walk_damaged(
    size: BitmapSize,
    damage: impl FnOnce(&mut HostMem, &ScratchAreas, Handover, PhysAddr),
) -> Result<kho::WalkStats, Error> {
    let (mut mem, areas) = setup();
    let (handover, _, _) = hand_over_v1(&mut mem, &areas, size);
    let kin = KhoIn::populate(&mem, handover).unwrap();
    damage(&mut mem, &areas, handover, kin.memory_map());
    let mut kin2 = KhoIn::populate(&mem, handover).unwrap();
    let mut buf = [0u64; kho_bitmaps::IncomingMap::words_for(16)];
    let mut reserved = 0;
    let result = kin2.reserve_preserved_v1(&mem, size, &mut buf, |_, _| {
        reserved += 1;
        Ok(())
    });
    if result.is_err() {
        assert_eq!(reserved, 0, "nothing is reserved from a corrupt map");
    }
    // The first KhoIn was never walked.
    assert_eq!(kin.unrestored_blocks(), 0);
    result
}

/// A damaged chunk list is refused with a named error before anything is
/// reserved: a cycle, a chunk outside RAM, a chunk inside scratch.
#[test]
fn v1_corrupted_chunk_list_is_refused() {
    for size in SIZES {
        // Cycle: the first chunk's `next` points back at itself.
        let e = walk_damaged(size, |mem, _, _, first| {
            mem.write_u64(first, first.as_u64()).unwrap();
        });
        assert!(
            matches!(
                e,
                Err(Error::Bitmaps(kho_bitmaps::Error::ChunkCycle {
                    first: 0,
                    again: 1,
                    ..
                }))
            ),
            "{e:?}"
        );
        // A chunk outside RAM: the first chunk's `next`.
        let outside = PhysAddr::new(0x10_0000_0000);
        let e = walk_damaged(size, |mem, _, _, first| {
            mem.write_u64(first, outside.as_u64()).unwrap();
        });
        assert_eq!(
            e,
            Err(Error::Bitmaps(kho_bitmaps::Error::ChunkNotRam {
                position: 1,
                chunk: outside
            }))
        );
        assert!(e.unwrap_err().to_string().contains("is not RAM"));
        // The first chunk moved into scratch (the FDT names the copy).
        let e = walk_damaged(size, |mem, areas, handover, first| {
            let area = areas.as_slice()[1].range;
            let copy = PhysAddr::new(area.start().as_u64() + 0x10_0000);
            let mut chunk = [0u8; 4096];
            mem.read(first, &mut chunk).unwrap();
            mem.write(copy, &chunk).unwrap();
            let mut fdt = [0u8; 4096];
            mem.read(handover.fdt, &mut fdt).unwrap();
            let needle = first.as_u64().to_le_bytes();
            let at = fdt.windows(8).position(|w| w == needle).unwrap();
            fdt[at..at + 8].copy_from_slice(&copy.as_u64().to_le_bytes());
            mem.write(handover.fdt, &fdt).unwrap();
        });
        assert!(
            matches!(e, Err(Error::MapPageInScratch { index: 1, .. })),
            "{e:?}"
        );
    }
}
