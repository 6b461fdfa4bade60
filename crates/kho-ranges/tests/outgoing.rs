//! The outgoing side's named errors: the active-phase lifecycle misused,
//! and ranges, names and properties the tracker refuses (leaving it
//! unchanged).

mod common;

use common::*;
use kho_mem::{PhysAddr, PhysRange};
use kho_ranges::{At, Error, MemFlags, Tracker};

const P: u64 = 0x1000;

fn tracker() -> Tracker {
    Tracker::new(scratch()).unwrap()
}

#[test]
fn preserve_after_serialize_is_refused() {
    let mut t = tracker();
    t.preserve("a", r(FREE, P), MemFlags::NONE).unwrap();
    t.serialize().unwrap();
    assert_eq!(
        t.preserve("a", r(FREE + P, P), MemFlags::NONE),
        Err(Error::Active)
    );
    assert_eq!(t.unpreserve("a", r(FREE, P)), Err(Error::Active));
    assert_eq!(t.set_property("a", "x", b""), Err(Error::Active));
    assert_eq!(t.ranges(), 1);
}

#[test]
fn serialize_twice_is_refused() {
    let mut t = tracker();
    let first = t.serialize().unwrap().clone();
    assert_eq!(t.serialize().unwrap_err(), Error::AlreadyActive);
    assert_eq!(t.serialized().unwrap(), &first);
}

#[test]
fn leaving_a_phase_never_entered_is_refused() {
    let mut t = tracker();
    assert_eq!(t.leave_active(), Err(Error::NotActive));
    assert_eq!(t.serialized().unwrap_err(), Error::NotActive);
    t.serialize().unwrap();
    t.leave_active().unwrap();
    assert_eq!(t.leave_active(), Err(Error::NotActive));
}

#[test]
fn bad_ranges_are_refused() {
    let mut t = tracker();
    t.preserve("a", r(FREE, 2 * P), MemFlags::NONE).unwrap();
    assert_eq!(
        t.preserve("b", r(FREE + P, 2 * P), MemFlags::NONE),
        Err(Error::Overlap {
            at: At::Preserve,
            range: r(FREE + P, 2 * P),
            other: r(FREE, 2 * P)
        })
    );
    // Overlapping from below, and the same range with other flags.
    assert_eq!(
        t.preserve("b", r(FREE - P, 2 * P), MemFlags::NONE)
            .unwrap_err(),
        Error::InScratch {
            at: At::Preserve,
            range: r(FREE - P, 2 * P),
            scratch: scratch()
        }
    );
    assert!(matches!(
        t.preserve("b", r(FREE, 2 * P), MemFlags::NOINIT),
        Err(Error::Overlap { .. })
    ));
    assert_eq!(
        t.preserve("b", r(FREE + 0x10_0010, P), MemFlags::NONE),
        Err(Error::ReservedFlags {
            at: At::Preserve,
            raw: FREE + 0x10_0010
        })
    );
    assert_eq!(
        t.preserve("b", r(FREE + 0x10_0000, P + 1), MemFlags::NONE),
        Err(Error::Misaligned {
            at: At::Preserve,
            addr: PhysAddr::new(FREE + 0x10_0000),
            len: P + 1
        })
    );
    assert_eq!(
        t.preserve("b", r(FREE + 0x10_0000, 0), MemFlags::NONE),
        Err(Error::EmptyRange {
            at: At::Preserve,
            addr: PhysAddr::new(FREE + 0x10_0000)
        })
    );
    // Adjacent on both sides is fine.
    t.preserve("b", r(FREE + 2 * P, P), MemFlags::NONE).unwrap();
    t.preserve("c", r(FREE + 0x20_0000 - P, P), MemFlags::NONE)
        .unwrap();
    t.preserve("c", r(FREE + 0x20_0000, P), MemFlags::NONE)
        .unwrap();
    assert_eq!(t.ranges(), 4);
}

#[test]
fn range_up_to_the_top_of_the_address_space() {
    let mut t = tracker();
    let top = PhysRange::try_new(PhysAddr::new(0u64.wrapping_sub(2 * P)), 2 * P).unwrap();
    t.preserve("top", top, MemFlags::NONE).unwrap();
    assert!(matches!(
        t.preserve("top", r(u64::MAX - 0xfff, P), MemFlags::NONE),
        Err(Error::Overlap { .. })
    ));
}

#[test]
fn unpreserve_what_is_not_there() {
    let mut t = tracker();
    t.preserve("a", r(FREE, 2 * P), MemFlags::NONE).unwrap();
    for (node, range) in [
        ("a", r(FREE, P)),
        ("b", r(FREE, 2 * P)),
        ("a/x", r(FREE, 2 * P)),
    ] {
        assert_eq!(
            t.unpreserve(node, range),
            Err(Error::NotPreserved { range })
        );
    }
    t.unpreserve("/a", r(FREE, 2 * P)).unwrap();
    assert_eq!(t.ranges(), 0);
}

#[test]
fn invalid_names_are_refused() {
    let mut t = tracker();
    let m = |t: &mut Tracker, p: &str| t.preserve(p, r(FREE, P), MemFlags::NONE);
    assert_eq!(m(&mut t, "a//b"), Err(Error::InvalidName { offset: 2 }));
    assert_eq!(m(&mut t, "a/b/"), Err(Error::InvalidName { offset: 4 }));
    assert_eq!(m(&mut t, "a/9b"), Err(Error::InvalidName { offset: 2 }));
    assert_eq!(m(&mut t, "a/b c"), Err(Error::InvalidName { offset: 3 }));
    assert_eq!(m(&mut t, "a@1@2"), Err(Error::InvalidName { offset: 3 }));
    let long = "x".repeat(32);
    assert_eq!(m(&mut t, &long), Err(Error::InvalidName { offset: 0 }));
    let deep = vec!["n"; 64].join("/");
    assert_eq!(m(&mut t, &deep), Err(Error::InvalidName { offset: 126 }));
    let ok = vec!["n"; 63].join("/");
    m(&mut t, &ok).unwrap();
    assert_eq!(
        t.set_property("a", "bad name", b""),
        Err(Error::InvalidName { offset: 3 })
    );
    // The deepest tree serializes.
    t.serialize().unwrap();
}

#[test]
fn tracker_owned_properties_are_refused() {
    let mut t = tracker();
    assert_eq!(
        t.set_property("a", "mem", b""),
        Err(Error::ReservedProperty)
    );
    assert_eq!(
        t.set_property("", "compatible", b""),
        Err(Error::ReservedProperty)
    );
    assert_eq!(
        t.set_property("/", "compatible", b""),
        Err(Error::ReservedProperty)
    );
    // A child may have its own compatible.
    t.set_property("a", "compatible", b"ftrace-v1\0").unwrap();
    t.set_property("a", "compatible", b"ftrace-v2\0").unwrap();
    let out = t.serialize().unwrap();
    find(out.fdt(), b"ftrace-v2\0");
    assert!(!out.fdt().windows(10).any(|w| w == b"ftrace-v1\0"));
}

#[test]
fn bad_scratch_is_refused() {
    for s in [r(BASE, 0), r(BASE + 8, P), r(BASE, P + 8)] {
        assert_eq!(
            Tracker::new(s).unwrap_err(),
            Error::BadScratch { scratch: s }
        );
    }
}

#[test]
fn errors_display_and_are_errors() {
    let e: Box<dyn std::error::Error> = Box::new(Error::NotInTree {
        at: At::Cache {
            index: 3,
            addr: PhysAddr::new(0x4010_0030),
        },
        range: r(0x4200_0000, P),
    });
    assert_eq!(
        e.to_string(),
        "mem cache entry 3 at 0x40100030: range [0x42000000, +0x1000) is in no mem \
         property (the tree and the cache disagree)"
    );
}
