//! Writer → reader round trips: several nodes (nested, the root, client
//! properties), flags, the active-phase lifecycle, and the exact bytes of
//! the `mem` properties and the mem cache.

mod common;

use core::ops::ControlFlow;

use common::*;
use kho_abi::rfc2024::{KhoData, MEM_NOINIT};
use kho_mem::{PhysAddr, PhysRange};
use kho_ranges::{Handover, Incoming, MemFlags, Tracker};

fn tracker() -> Tracker {
    Tracker::new(scratch()).unwrap()
}

#[test]
fn several_nodes_round_trip() {
    let mut t = tracker();
    t.preserve("ftrace/cpu0", r(FREE + 0x10_0000, 0x4000), MemFlags::NONE)
        .unwrap();
    t.preserve("ftrace/cpu1", r(FREE + 0x20_0000, 0x2000), MemFlags::NONE)
        .unwrap();
    t.preserve("ftrace/cpu0", r(FREE, 0x1000), MemFlags::NONE)
        .unwrap();
    t.preserve("", r(FREE + 0x40_0000, 0x1000), MemFlags::NONE)
        .unwrap();
    t.preserve("guest@1", r(FREE + 0x100_0000, 1 << 20), MemFlags::NOINIT)
        .unwrap();
    // Adjacent to a preserved range: allowed, not merged.
    t.preserve("guest@1", r(FREE + 0x110_0000, 0x1000), MemFlags::NONE)
        .unwrap();
    t.set_property("ftrace", "names", b"cpu0\0cpu1\0").unwrap();
    t.set_property("", "generation", &7u64.to_le_bytes())
        .unwrap();
    assert_eq!(t.ranges(), 6);

    let out = t.serialize().unwrap().clone();
    assert_eq!(out.ranges(), 6);
    assert_eq!(out.mem_cache().len(), 6 * 16);
    let mut mem = mem();
    let h = place_serialized(&mut mem, &out);
    let got: Vec<_> = read(&mem, &h)
        .unwrap()
        .iter()
        .map(|m| (m.start().as_u64(), m.len(), m.flags()))
        .collect();
    assert_eq!(
        got,
        [
            (FREE, 0x1000, MemFlags::NONE),
            (FREE + 0x10_0000, 0x4000, MemFlags::NONE),
            (FREE + 0x20_0000, 0x2000, MemFlags::NONE),
            (FREE + 0x40_0000, 0x1000, MemFlags::NONE),
            (FREE + 0x100_0000, 1 << 20, MemFlags::NOINIT),
            (FREE + 0x110_0000, 0x1000, MemFlags::NONE),
        ]
    );

    // The tree side: each range in its node, in FDT order (root first,
    // then children as first used, each node's ranges sorted).
    let mut bits = [0u64; 1];
    let incoming = Incoming::validate(&mem, out.fdt(), &h, &mut bits).unwrap();
    let mut nodes = Vec::new();
    let _ = incoming
        .for_each_tree_range(|t| {
            // The offset names the entry's bytes in the FDT.
            let raw = t.range.start().as_u64() | t.range.flags().bits();
            assert_eq!(out.fdt()[t.offset..t.offset + 8], raw.to_le_bytes());
            nodes.push((t.node, t.depth, t.range.start().as_u64()));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert_eq!(
        nodes,
        [
            ("", 1, FREE + 0x40_0000),
            ("cpu0", 3, FREE),
            ("cpu0", 3, FREE + 0x10_0000),
            ("cpu1", 3, FREE + 0x20_0000),
            ("guest@1", 2, FREE + 0x100_0000),
            ("guest@1", 2, FREE + 0x110_0000),
        ]
    );
    // The client properties are in the FDT.
    find(out.fdt(), b"cpu0\0cpu1\0");
    find(out.fdt(), &7u64.to_le_bytes());
}

#[test]
fn nothing_preserved_round_trips() {
    let mut t = tracker();
    let out = t.serialize().unwrap().clone();
    assert!(out.mem_cache().is_empty());
    let mut mem = mem();
    let h = place_serialized(&mut mem, &out);
    assert_eq!(read(&mem, &h).unwrap(), []);
    let mut none: [u64; 0] = [];
    let incoming = Incoming::validate(&mem, out.fdt(), &h, &mut none).unwrap();
    assert!(incoming.is_empty());
}

/// The wire bytes, worked out by hand: each `mem` entry is `addr | flags`
/// then `len`, little-endian; the cache is the same entries sorted.
#[test]
fn mem_and_cache_bytes() {
    let mut t = tracker();
    t.preserve("b", r(0x4200_0000, 0x2000), MemFlags::NOINIT)
        .unwrap();
    t.preserve("a", r(0x4100_0000, 0x1000), MemFlags::NONE)
        .unwrap();
    let out = t.serialize().unwrap();
    let b = [
        0x01, 0x00, 0x00, 0x42, 0, 0, 0, 0, // 0x4200_0000 | NOINIT
        0x00, 0x20, 0, 0, 0, 0, 0, 0, // 0x2000
    ];
    let a = [
        0x00, 0x00, 0x00, 0x41, 0, 0, 0, 0, // 0x4100_0000
        0x00, 0x10, 0, 0, 0, 0, 0, 0, // 0x1000
    ];
    assert_eq!(out.mem_cache(), [a, b].concat());
    // Node "b" was used first, so it comes first in the tree; its `mem`
    // property (len 16, big-endian in the token) holds exactly `b`.
    let fdt = out.fdt();
    let at_b = find(fdt, &b);
    let at_a = find(fdt, &a);
    assert!(at_b < at_a);
    assert_eq!(fdt[at_b - 12..at_b - 8], 3u32.to_be_bytes()); // FDT_PROP
    assert_eq!(fdt[at_b - 8..at_b - 4], 16u32.to_be_bytes()); // its length
    assert_eq!(MEM_NOINIT, 1);
}

#[test]
fn kho_data_round_trip() {
    let mut t = tracker();
    t.preserve("x", r(FREE, 0x1000), MemFlags::NONE).unwrap();
    let out = t.serialize().unwrap();
    let h = out
        .handover(scratch(), PhysAddr::new(FDT_AT), PhysAddr::new(CACHE_AT))
        .unwrap();
    let data: KhoData = h.to_kho_data();
    assert_eq!(data.dt_addr.get(), FDT_AT);
    assert_eq!(data.dt_size.get(), out.fdt().len() as u64);
    assert_eq!(data.scratch_addr.get(), BASE);
    assert_eq!(data.scratch_size.get(), SCRATCH_SIZE);
    assert_eq!(data.mem_cache_addr.get(), CACHE_AT);
    assert_eq!(data.mem_cache_size.get(), 16);
    assert_eq!(Handover::from_kho_data(&data).unwrap(), h);
}

/// The active phase: leave it, change the tree, serialize again.
#[test]
fn leave_active_then_change_and_serialize_again() {
    let mut t = tracker();
    t.preserve("x", r(FREE, 0x1000), MemFlags::NONE).unwrap();
    let first = t.serialize().unwrap().clone();
    assert!(t.is_active());
    assert_eq!(t.serialized().unwrap(), &first);
    t.leave_active().unwrap();
    assert!(!t.is_active());
    t.unpreserve("x", r(FREE, 0x1000)).unwrap();
    t.preserve("y", r(FREE + 0x1000, 0x1000), MemFlags::NONE)
        .unwrap();
    let second = t.serialize().unwrap().clone();
    assert_ne!(first, second);
    let mut mem = mem();
    let h = place_serialized(&mut mem, &second);
    let got = read(&mem, &h).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].range(), r(FREE + 0x1000, 0x1000));
}

/// A range ending exactly at the top of RAM, and one touching scratch's end.
#[test]
fn boundaries_are_accepted() {
    let mut t = tracker();
    t.preserve("top", r(BASE + RAM - 0x1000, 0x1000), MemFlags::NONE)
        .unwrap();
    t.preserve("low", r(FREE, 0x1000), MemFlags::NONE).unwrap();
    let out = t.serialize().unwrap().clone();
    let mut mem = mem();
    let h = place_serialized(&mut mem, &out);
    assert_eq!(read(&mem, &h).unwrap().len(), 2);
    let _ = PhysRange::try_new(PhysAddr::new(0), 0).unwrap();
}
