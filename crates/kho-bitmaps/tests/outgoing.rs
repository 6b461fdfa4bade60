//! The outgoing side: every tracker error, all-or-nothing ranges,
//! allocation failures, finalize/abort and page accounting.

#![cfg(feature = "alloc")]

mod common;

use std::ops::ControlFlow;

use common::*;
use kho_bitmaps::{BitmapSize, Error, Tracker};
use kho_mem::{HostMem, Pfn, PhysAddr, PhysMem};

const P: u64 = BASE / PAGE; // first frame of RAM

fn mem() -> HostMem {
    ram(256 << 20)
}

fn blocks(t: &Tracker, mem: &HostMem) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let _ = t
        .walk(mem, |p, o| {
            out.push((p.as_u64(), o.get()));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    out
}

#[test]
fn misaligned_and_order_too_large() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    assert_eq!(t.max_order(), ord(36));
    assert_eq!(
        t.preserve(&mut m, pfn(P + 1), ord(1)),
        Err(Error::Misaligned {
            pfn: pfn(P + 1),
            order: ord(1)
        })
    );
    assert_eq!(
        t.preserve(&mut m, pfn(0), ord(37)),
        Err(Error::OrderTooLarge {
            order: ord(37),
            max: ord(36)
        })
    );
    let mut t = Tracker::with_max_order(BitmapSize::Bytes512, ord(10));
    assert_eq!(t.max_order(), ord(10));
    assert_eq!(
        t.preserve(&mut m, pfn(P), ord(11)),
        Err(Error::OrderTooLarge {
            order: ord(11),
            max: ord(10)
        })
    );
    // A range is split with the cap: 2048 aligned pages are 2 blocks of 10.
    t.preserve_range(&mut m, pfn(P), 2048).unwrap();
    assert_eq!(blocks(&t, &m), [(P, 10), (P + 1024, 10)]);
    assert_eq!(m.allocated_pages(), 1);
}

#[test]
fn already_preserved_and_overlap() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    t.preserve(&mut m, pfn(P + 512), ord(9)).unwrap();
    assert_eq!(
        t.preserve(&mut m, pfn(P + 512), ord(9)),
        Err(Error::AlreadyPreserved {
            pfn: pfn(P + 512),
            order: ord(9)
        })
    );
    // A smaller block inside: the containing block is named.
    assert_eq!(
        t.preserve(&mut m, pfn(P + 700), ord(0)),
        Err(Error::Overlap {
            pfn: pfn(P + 700),
            order: ord(0),
            existing_pfn: pfn(P + 512),
            existing_order: ord(9)
        })
    );
    // A larger block around smaller ones: the lowest is named.
    t.preserve(&mut m, pfn(P + 5000), ord(0)).unwrap();
    t.preserve(&mut m, pfn(P + 4100), ord(2)).unwrap();
    assert_eq!(
        t.preserve(&mut m, pfn(P + 4096), ord(12)),
        Err(Error::Overlap {
            pfn: pfn(P + 4096),
            order: ord(12),
            existing_pfn: pfn(P + 4100),
            existing_order: ord(2)
        })
    );
    // Across the bitmaps of a smaller order: an order-16 block covers two
    // order-0 page bitmaps (32768 pages each); only the second has a bit.
    t.preserve(&mut m, pfn(P + 65536 + 40000), ord(0)).unwrap();
    assert_eq!(
        t.preserve(&mut m, pfn(P + 65536), ord(16)),
        Err(Error::Overlap {
            pfn: pfn(P + 65536),
            order: ord(16),
            existing_pfn: pfn(P + 65536 + 40000),
            existing_order: ord(0)
        })
    );
    // Adjacent blocks do not overlap.
    t.preserve(&mut m, pfn(P + 1024), ord(9)).unwrap();
    t.preserve(&mut m, pfn(P), ord(9)).unwrap();
    assert_eq!(t.blocks(), 6);
}

#[test]
fn not_preserved() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    t.preserve(&mut m, pfn(P), ord(3)).unwrap();
    for (p, o) in [(P, 2), (P + 8, 3), (P, 4)] {
        assert_eq!(
            t.unpreserve(&mut m, pfn(p), ord(o)),
            Err(Error::NotPreserved {
                pfn: pfn(p),
                order: ord(o)
            })
        );
    }
    t.unpreserve(&mut m, pfn(P), ord(3)).unwrap();
    // The emptied bitmap was freed.
    assert_eq!((t.bitmaps(), m.allocated_pages()), (0, 0));
    assert!(t.is_empty());
}

#[test]
fn range_too_large() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    assert_eq!(
        t.preserve_range(&mut m, Pfn::MAX, 2),
        Err(Error::RangeTooLarge {
            start: Pfn::MAX,
            nr_pages: 2
        })
    );
    assert_eq!(
        t.unpreserve_range(&mut m, pfn(1), u64::MAX),
        Err(Error::RangeTooLarge {
            start: pfn(1),
            nr_pages: u64::MAX
        })
    );
    t.preserve_range(&mut m, pfn(P), 0).unwrap();
    assert!(t.is_empty());
}

#[test]
fn ranges_are_all_or_nothing() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    t.preserve(&mut m, pfn(P + 12), ord(0)).unwrap();
    // Pages 3 .. 13 split as 3 (0), 4..8 (2), 8..12 (2), 12 (0): the last
    // one is taken, and the three before are rolled back.
    assert_eq!(
        t.preserve_range(&mut m, pfn(P + 3), 10),
        Err(Error::AlreadyPreserved {
            pfn: pfn(P + 12),
            order: ord(0)
        })
    );
    assert_eq!(blocks(&t, &m), [(P + 12, 0)]);
    assert_eq!(t.blocks(), 1);
    // Unpreserving a range that is not preserved as the same blocks
    // changes nothing: 12 .. 32 splits as 12..16 (order 2), 16..32 (4),
    // but page 12 is an order-0 block.
    t.preserve_range(&mut m, pfn(P + 16), 16).unwrap();
    assert_eq!(
        t.unpreserve_range(&mut m, pfn(P + 12), 20),
        Err(Error::NotPreserved {
            pfn: pfn(P + 12),
            order: ord(2)
        })
    );
    assert_eq!(blocks(&t, &m), [(P + 12, 0), (P + 16, 4)]);
    t.unpreserve_range(&mut m, pfn(P + 16), 16).unwrap();
    assert_eq!(t.pages(), 1);
}

#[test]
fn allocation_failures_change_nothing() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    t.preserve(&mut m, pfn(P), ord(0)).unwrap();
    m.fail_allocations_after(Some(0));
    // Same bitmap: no allocation needed.
    t.preserve(&mut m, pfn(P + 1), ord(0)).unwrap();
    // Another order needs a bitmap page.
    let err = t.preserve(&mut m, pfn(P + 2), ord(1)).unwrap_err();
    assert!(matches!(err, Error::Alloc { .. }), "{err:?}");
    assert!(core::error::Error::source(&err).is_some());
    // A range whose second block needs a page: the first is rolled back.
    let err = t.preserve_range(&mut m, pfn(P + 2), 3).unwrap_err();
    assert!(matches!(err, Error::Alloc { .. }), "{err:?}");
    assert_eq!(blocks(&t, &m), [(P, 0), (P + 1, 0)]);
    assert_eq!(m.allocated_pages(), 1);

    // serialize needs chunk pages: none, then one of two.
    m.fail_allocations_after(None);
    t.preserve(&mut m, pfn(P + 2), ord(1)).unwrap();
    for after in [0, 1] {
        m.fail_allocations_after(Some(after));
        let err = t.serialize(&mut m).unwrap_err();
        assert!(matches!(err, Error::Alloc { .. }), "{err:?}");
        assert!(!t.is_serialized());
        assert_eq!(m.allocated_pages(), 2, "after {after}");
    }
    m.fail_allocations_after(None);
    let map = t.serialize(&mut m).unwrap();
    assert_eq!(m.allocated_pages(), 4);
    assert_eq!(
        walk_all(&m, map, BitmapSize::Page).unwrap(),
        [(BASE, 0), (BASE + PAGE, 0), (BASE + 2 * PAGE, 1)]
    );
}

#[test]
fn finalize_abort_and_destroy() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Bytes512);
    t.preserve_range(&mut m, pfn(P), 3).unwrap();
    t.preserve(&mut m, pfn(P + 512), ord(9)).unwrap();
    let map = t.serialize(&mut m).unwrap();
    assert!(t.is_serialized());
    // 3 bitmaps (orders 0, 1, 9) + 3 chunks.
    assert_eq!((t.bitmaps(), t.chunks_needed()), (3, 3));
    assert_eq!(m.allocated_pages(), 6);
    assert_eq!(
        t.preserve(&mut m, pfn(P + 4), ord(0)),
        Err(Error::Finalized)
    );
    assert_eq!(t.unpreserve(&mut m, pfn(P), ord(1)), Err(Error::Finalized));
    assert_eq!(
        t.preserve_range(&mut m, pfn(P + 4), 1),
        Err(Error::Finalized)
    );
    assert_eq!(t.unpreserve_range(&mut m, pfn(P), 1), Err(Error::Finalized));
    // Serializing again replaces the list (the old chunks are freed).
    // Ascending order: order 0, then 1, then 9.
    let expect = [(BASE + 2 * PAGE, 0), (BASE, 1), (BASE + (2 << 20), 9)];
    assert_eq!(walk_all(&m, map, BitmapSize::Bytes512).unwrap(), expect);
    let again = t.serialize(&mut m).unwrap();
    assert_eq!(m.allocated_pages(), 6);
    assert_eq!(walk_all(&m, again, BitmapSize::Bytes512).unwrap(), expect);
    t.abort(&mut m).unwrap();
    assert!(!t.is_serialized());
    assert_eq!(m.allocated_pages(), 3);
    t.preserve(&mut m, pfn(P + 4), ord(0)).unwrap();
    let _ = t.serialize(&mut m).unwrap();
    t.destroy(&mut m).unwrap();
    assert_eq!(m.allocated_pages(), 0);
}

#[test]
fn access_failures_are_named() {
    // Writes fail: the fresh bitmap page is given back.
    let mut m = Faulty {
        inner: mem(),
        faults: Faults {
            writes: true,
            ..Faults::default()
        },
    };
    let mut t = Tracker::new(BitmapSize::Page);
    let err = t.preserve(&mut m, pfn(P), ord(0)).unwrap_err();
    assert!(matches!(err, Error::Access { .. }), "{err:?}");
    assert!(core::error::Error::source(&err).is_some());
    assert_eq!((t.blocks(), m.inner.allocated_pages()), (0, 0));

    // Frees fail: unpreserving the last bit of a bitmap, destroying.
    m.faults.writes = false;
    t.preserve(&mut m, pfn(P), ord(0)).unwrap();
    m.faults.frees = true;
    let err = t.unpreserve(&mut m, pfn(P), ord(0)).unwrap_err();
    assert!(matches!(err, Error::Access { .. }), "{err:?}");
    assert_eq!(t.blocks(), 1);
    let err = t.destroy(&mut m).unwrap_err();
    assert!(matches!(err, Error::Access { addr, .. } if addr != PhysAddr::ZERO));
}

/// Blocks anywhere in the 52-bit frame space are tracked (the tracker
/// does not check RAM), and their `phys_start` values stay exact.
#[test]
fn high_addresses_and_large_orders() {
    let mut m = mem();
    let mut t = Tracker::new(BitmapSize::Page);
    // The last order-36 block: 2^64 - 2^48.
    let top = (1u64 << 52) - (1 << 36);
    t.preserve(&mut m, pfn(top), ord(36)).unwrap();
    assert_eq!(
        t.preserve(&mut m, pfn((1 << 52) - 1), ord(0)),
        Err(Error::Overlap {
            pfn: pfn((1 << 52) - 1),
            order: ord(0),
            existing_pfn: pfn(top),
            existing_order: ord(36)
        })
    );
    t.preserve(&mut m, pfn(top - 1), ord(0)).unwrap();
    assert_eq!(blocks(&t, &m), [(top - 1, 0), (top, 36)]);
    let map = t.serialize(&mut m).unwrap();
    // Order 36: a page bitmap spans 2^(15 + 12 + 36) = 2^63 bytes; the
    // block is in bitmap 1 (phys_start 2^63), bit (2^16 - 1) % 32768.
    let c1 = m.read_u64(map).unwrap();
    assert_eq!(m.read_u64(PhysAddr::new(c1 + 16)).unwrap(), 1 << 63);
    let bitmap = m.read_u64(PhysAddr::new(c1 + 24)).unwrap();
    assert_eq!(
        m.read_u64(PhysAddr::new(bitmap + 511 * 8)).unwrap(),
        1 << 63
    );
}
