//! Outgoing side and round trips through the host arena: preserve, retrieve,
//! revive, unpreserve, and the all-or-nothing rollback of every failure.

mod common;

use common::*;
use kho_mem::{Order, PAGE_SIZE, Pfn, PhysAddr, PhysMem, PhysRange};
use kho_memblock::{
    Error, MemblockBlob, MemblockFdt, Region, Token, parse_reserve_mem, preserve_memblock,
    read_blob, retrieve, unpreserve_memblock,
};

fn tok(s: &str) -> Token {
    Token::new(s.as_bytes())
}

fn preserved(tree: &kho_radix::RadixTree, mem: &kho_mem::HostMem, phys: u64) -> bool {
    tree.find_block(mem, Pfn::try_from_phys(PhysAddr::new(phys)).unwrap())
        .unwrap()
        .is_some()
}

/// Three regions: page-aligned, unaligned sharing a page with the first,
/// and a large one; all found again, byte for byte.
#[test]
fn round_trip() {
    let (mut mem, mut tree) = setup();
    let before = state(&tree, &mem);
    let regions = [
        // Ends 64 bytes before a page boundary...
        Region::new("oops", PhysAddr::new(0x40f0_0000), 0xffc0).unwrap(),
        // ...where this one starts: page 0x40f0f000 is shared.
        Region::new("small", PhysAddr::new(0x40f0_ffc0), 0x2040).unwrap(),
        Region::new("kho_log", PhysAddr::new(0x4100_0000), 2 << 20).unwrap(),
    ];
    let blob = preserve_memblock(&mut mem, &mut tree, &regions).unwrap();
    assert!(blob.phys.is_page_aligned());
    assert!(blob.size as usize <= PAGE_SIZE);

    // The blob page and every page the regions touch are preserved; the
    // pages around them are not.
    assert!(preserved(&tree, &mem, blob.phys.as_u64()));
    for page in (0x40f0_0000..0x40f1_2000).step_by(PAGE as usize) {
        assert!(preserved(&tree, &mem, page), "{page:#x}");
    }
    assert!(!preserved(&tree, &mem, 0x40f1_2000));
    assert!(!preserved(&tree, &mem, 0x40ef_f000));
    // kho_log is naturally aligned: one order-9 block.
    assert!(
        tree.is_preserved(
            &mem,
            Pfn::try_from_phys(PhysAddr::new(0x4100_0000)).unwrap(),
            Order::try_new(9).unwrap()
        )
        .unwrap()
    );

    let mut buf = [0u8; PAGE_SIZE];
    let fdt = retrieve(&mem, blob.phys, Some(blob.size), &mut buf).unwrap();
    assert_eq!(fdt.len(), 3);
    assert!(!fdt.is_empty());
    assert_eq!(fdt.regions().collect::<Vec<_>>(), regions);
    assert_eq!(fdt.find("small").unwrap(), regions[1]);
    assert_eq!(fdt.as_bytes().len() as u64, blob.size);

    // Without blob-size, the header's totalsize is used.
    let mut buf2 = [0u8; PAGE_SIZE];
    let bytes = read_blob(&mem, blob.phys, None, &mut buf2).unwrap();
    assert_eq!(bytes.len() as u64, blob.size);

    // The next kernel's reserve_mem= lines revive the regions.
    let req = parse_reserve_mem("0xffc0:64K:oops").unwrap();
    assert_eq!(fdt.revive(&req).unwrap(), regions[0]);
    let req = parse_reserve_mem("2M:2M:kho_log").unwrap();
    assert_eq!(fdt.revive(&req).unwrap(), regions[2]);

    unpreserve_memblock(&mut mem, &mut tree, blob).unwrap();
    assert_eq!(
        state(&tree, &mem),
        before,
        "unpreserve is the exact inverse"
    );
}

#[test]
fn no_regions_is_an_empty_blob() {
    let (mut mem, mut tree) = setup();
    let before = state(&tree, &mem);
    let blob = preserve_memblock(&mut mem, &mut tree, &[]).unwrap();
    let mut buf = [0u8; PAGE_SIZE];
    let fdt = retrieve(&mem, blob.phys, None, &mut buf).unwrap();
    assert!(fdt.is_empty());
    assert_eq!(fdt.find("oops"), Err(Error::NotFound { name: tok("oops") }));
    unpreserve_memblock(&mut mem, &mut tree, blob).unwrap();
    assert_eq!(state(&tree, &mem), before);
}

#[test]
fn revive_checks_alignment_then_size() {
    let (mut mem, mut tree) = setup();
    let r = Region::new("trace", PhysAddr::new(0x40f0_1000), 0x3000).unwrap();
    let blob = preserve_memblock(&mut mem, &mut tree, &[r]).unwrap();
    let mut buf = [0u8; PAGE_SIZE];
    let fdt = retrieve(&mem, blob.phys, Some(blob.size), &mut buf).unwrap();
    let revive = |v: &str| fdt.revive(&parse_reserve_mem(v).unwrap());
    assert_eq!(revive("0x3000:4K:trace"), Ok(r));
    assert_eq!(revive("0x3000::trace"), Ok(r));
    assert_eq!(
        revive("0x4000:8K:trace"),
        Err(Error::AlignmentMismatch {
            name: tok("trace"),
            start: PhysAddr::new(0x40f0_1000),
            align: 0x2000
        })
    );
    assert_eq!(
        revive("0x4000:4K:trace"),
        Err(Error::SizeMismatch {
            name: tok("trace"),
            expected: 0x4000,
            found: 0x3000
        })
    );
    assert_eq!(
        revive("0x3000:4K:oops"),
        Err(Error::NotFound { name: tok("oops") })
    );
}

#[test]
fn refused_region_lists_change_nothing() {
    let (mut mem, mut tree) = setup();
    let before = state(&tree, &mem);
    let a = Region::new("a", PhysAddr::new(0x40f0_0000), 0x2000).unwrap();
    let mut preserve = |regions: &[Region<'_>]| {
        let e = preserve_memblock(&mut mem, &mut tree, regions).unwrap_err();
        (e, state(&tree, &mem))
    };

    let (e, s) = preserve(&[a, Region::new("a", PhysAddr::new(0x40f1_0000), 64).unwrap()]);
    assert_eq!(e, Error::DuplicateName { name: tok("a") });
    assert_eq!(s, before);

    let (e, s) = preserve(&[a, Region::new("b", PhysAddr::new(0x40f0_1fff), 2).unwrap()]);
    assert_eq!(
        e,
        Error::RegionsOverlap {
            first: tok("a"),
            second: tok("b")
        }
    );
    assert_eq!(s, before);

    let (e, s) = preserve(&[
        a,
        Region::new("low", PhysAddr::new(0x1000_0000), 0x1000).unwrap(),
    ]);
    assert_eq!(
        e,
        Error::RegionNotRam {
            name: tok("low"),
            start: PhysAddr::new(0x1000_0000),
            size: 0x1000
        }
    );
    assert_eq!(s, before);

    // About 40 regions fit the page; 60 do not.
    let names: Vec<String> = (0..60).map(|i| format!("region{i:02}")).collect();
    let many: Vec<Region<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Region::new(n, PhysAddr::new(0x4100_0000 + i as u64 * PAGE), PAGE).unwrap())
        .collect();
    let (e, s) = preserve(&many);
    assert!(
        matches!(e, Error::TooLarge { size } if size > PAGE_SIZE),
        "{e}"
    );
    assert_eq!(s, before);
}

#[test]
fn region_constructor_refusals() {
    let at = PhysAddr::new(0x40f0_0000);
    assert_eq!(Region::new("", at, 1), Err(Error::EmptyName));
    assert_eq!(
        Region::new("1log", at, 1),
        Err(Error::InvalidName { name: tok("1log") })
    );
    assert_eq!(
        Region::new("sixteen_chars_xx", at, 1),
        Err(Error::NameTooLong {
            name: tok("sixteen_chars_xx"),
            len: 16
        })
    );
    assert_eq!(
        Region::new("a", at, 0),
        Err(Error::EmptyRegion { name: tok("a") })
    );
    assert_eq!(
        Region::new("a", PhysAddr::new(u64::MAX - 0xfff), 0x1000),
        Err(Error::RegionWraps {
            name: tok("a"),
            start: PhysAddr::new(u64::MAX - 0xfff),
            size: 0x1000
        })
    );
    let r = Region::new("a", at, 0x1000).unwrap();
    assert_eq!(r.range(), PhysRange::try_new(at, 0x1000).unwrap());
    assert_eq!((r.name(), r.start(), r.size()), ("a", at, 0x1000));
}

/// A region overlapping memory already preserved makes the radix tree
/// refuse; everything before it is rolled back.
#[test]
fn radix_refusal_rolls_back() {
    let (mut mem, mut tree) = setup();
    let taken = Pfn::try_from_phys(PhysAddr::new(0x4180_0000)).unwrap();
    tree.preserve(&mut mem, taken, Order::ZERO).unwrap();
    let before = state(&tree, &mem);
    let regions = [
        Region::new("a", PhysAddr::new(0x40f0_0000), 0x5000).unwrap(),
        Region::new("b", PhysAddr::new(0x4180_0000), 0x1000).unwrap(),
    ];
    let e = preserve_memblock(&mut mem, &mut tree, &regions).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Preserve {
                start,
                pages: 1,
                source: kho_radix::Error::AlreadyPreserved { .. }
            } if start == PhysAddr::new(0x4180_0000)
        ),
        "{e}"
    );
    assert_eq!(state(&tree, &mem), before);
}

#[test]
fn rollback_on_every_allocation_failure() {
    let (mut mem, mut tree) = setup();
    let before = state(&tree, &mem);
    let regions = [
        Region::new("a", PhysAddr::new(0x40f0_0000), 0x5000).unwrap(),
        Region::new("b", PhysAddr::new(0x4180_0000), 3 << 20).unwrap(),
        Region::new("c", PhysAddr::new(0x4100_0040), 0x40).unwrap(),
    ];
    let mut failures = 0;
    for n in 0.. {
        mem.fail_allocations_after(Some(n));
        let r = preserve_memblock(&mut mem, &mut tree, &regions);
        mem.fail_allocations_after(None);
        match r {
            Ok(blob) => {
                unpreserve_memblock(&mut mem, &mut tree, blob).unwrap();
                assert_eq!(state(&tree, &mem), before);
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(
                    matches!(e, Error::PageAlloc { .. } | Error::Preserve { .. }),
                    "{e}"
                );
                assert_eq!(state(&tree, &mem), before, "after failure {n}: {e}");
            }
        }
    }
    assert!(failures >= 2);
}

#[test]
fn unpreserve_refuses_when_a_page_is_gone() {
    let (mut mem, mut tree) = setup();
    let regions = [Region::new("a", PhysAddr::new(0x40f0_0000), 0x4000).unwrap()];
    let blob = preserve_memblock(&mut mem, &mut tree, &regions).unwrap();
    let pfn = Pfn::try_from_phys(PhysAddr::new(0x40f0_0000)).unwrap();
    // Someone removed the region's order-2 block behind our back.
    tree.unpreserve(&mut mem, pfn, Order::try_new(2).unwrap())
        .unwrap();
    let now = state(&tree, &mem);
    let e = unpreserve_memblock(&mut mem, &mut tree, blob).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unpreserve {
                pages: 4,
                source: kho_radix::Error::NotPreserved { .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(state(&tree, &mem), now);
}

#[test]
fn retrieval_refusals() {
    let (mut mem, mut tree) = setup();
    let regions = [Region::new("a", PhysAddr::new(0x40f0_0000), 0x4000).unwrap()];
    let blob = preserve_memblock(&mut mem, &mut tree, &regions).unwrap();
    let mut buf = [0u8; PAGE_SIZE];
    assert_eq!(
        retrieve(&mem, blob.phys, Some(PAGE + 1), &mut buf).unwrap_err(),
        Error::BlobTooLarge { size: PAGE + 1 }
    );
    assert_eq!(
        retrieve(&mem, PhysAddr::new(0x1000), None, &mut buf).unwrap_err(),
        Error::BlobNotRam {
            phys: PhysAddr::new(0x1000),
            size: 8
        }
    );
    let end = PhysAddr::new(BASE + (32 << 20) - 0x100);
    assert_eq!(
        retrieve(&mem, end, Some(0x200), &mut buf).unwrap_err(),
        Error::BlobNotRam {
            phys: end,
            size: 0x200
        }
    );
    // A blob-size shorter than the FDT is the validator's refusal.
    assert!(matches!(
        retrieve(&mem, blob.phys, Some(blob.size - 1), &mut buf).unwrap_err(),
        Error::Blob(kho_fdt::Error::ExceedsBlob { .. })
    ));
    // A header claiming more than a page.
    mem.write(
        PhysAddr::new(blob.phys.as_u64() + 4),
        &0x2000u32.to_be_bytes(),
    )
    .unwrap();
    assert_eq!(
        retrieve(&mem, blob.phys, None, &mut buf).unwrap_err(),
        Error::BlobTooLarge { size: 0x2000 }
    );
}

#[test]
fn regions_outside_ram_are_refused_on_retrieval() {
    let blob = raw(&ROOT, &[("a", &region(0x1000_0000, 0x1000))]);
    let fdt = MemblockFdt::parse(&blob).unwrap();
    let (mem, _tree) = setup();
    assert_eq!(
        fdt.check_ram(&mem),
        Err(Error::RegionNotRam {
            name: tok("a"),
            start: PhysAddr::new(0x1000_0000),
            size: 0x1000
        })
    );
}

#[test]
fn blob_struct_is_what_gets_registered() {
    let (mut mem, mut tree) = setup();
    let blob = preserve_memblock(&mut mem, &mut tree, &[]).unwrap();
    let again = MemblockBlob {
        phys: blob.phys,
        size: blob.size,
    };
    assert_eq!(blob, again);
    assert_eq!(kho_memblock::SUBTREE_NAME, "memblock");
}
