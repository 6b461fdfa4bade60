//! Outgoing-side behaviour: each named error from the input that should
//! produce it, all-or-nothing on failure, freeing and node accounting.

mod common;

use std::collections::BTreeSet;

use common::*;
use kho_mem::{HostMem, Pfn, PhysMem};
use kho_radix::{Error, NodeStats, RadixTree};

const BASE: u64 = 0x4000_0000;

fn setup() -> (HostMem, RadixTree) {
    let mut mem = host(BASE, 64 << 20);
    let tree = RadixTree::new(&mut mem).unwrap();
    (mem, tree)
}

type Snapshot = (Vec<(u64, u32)>, NodeStats, u64, Vec<(u64, u64)>);

/// Everything observable about a tree: its blocks, its counters (but the
/// cumulative `freed`, which a rollback advances), the allocator's view,
/// and every byte of the first 64 pages (where the nodes are).
fn snapshot(tree: &RadixTree, mem: &HostMem) -> Snapshot {
    let pages: Vec<u64> = (0..64).map(|i| BASE + i * PAGE).collect();
    (
        tree_walk(tree, mem),
        NodeStats {
            freed: 0,
            ..tree.node_stats()
        },
        mem.allocated_pages(),
        nonzero_words(mem, &pages).into_iter().collect(),
    )
}

#[test]
fn misaligned() {
    let (mut mem, mut tree) = setup();
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x40_0100), ord(9)),
        Err(Error::Misaligned {
            pfn: pfn(0x40_0100),
            order: ord(9)
        })
    );
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(3), ord(1)),
        Err(Error::Misaligned {
            pfn: pfn(3),
            order: ord(1)
        })
    );
    assert_eq!(mem.allocated_pages(), 1);
}

#[test]
fn order_above_the_maximum() {
    let mut mem = host(BASE, 64 << 20);
    let mut tree = RadixTree::with_max_order(&mut mem, ord(10)).unwrap();
    assert_eq!(tree.max_order(), ord(10));
    assert_eq!(
        tree.preserve(&mut mem, pfn(0), ord(11)),
        Err(Error::OrderTooLarge {
            order: ord(11),
            max: ord(10)
        })
    );
    // Ranges are capped instead: 4096 aligned pages become 4 order-10 blocks.
    tree.preserve_range(&mut mem, pfn(0x4_0000), 4096).unwrap();
    assert_eq!(
        tree_walk(&tree, &mem),
        (0..4)
            .map(|i| ((0x4_0000 + i * 1024) * PAGE, 10))
            .collect::<Vec<_>>()
    );
    // The default tree takes the key encoding's limit.
    let (mut mem, mut tree) = setup();
    assert_eq!(tree.max_order(), kho_mem::Order::MAX);
    tree.preserve(&mut mem, pfn(0), kho_mem::Order::MAX)
        .unwrap();
    assert_eq!(tree_walk(&tree, &mem), [(0, 51)]);
}

#[test]
fn already_preserved() {
    let (mut mem, mut tree) = setup();
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    let before = snapshot(&tree, &mem);
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x4_0200), ord(9)),
        Err(Error::AlreadyPreserved {
            pfn: pfn(0x4_0200),
            order: ord(9)
        })
    );
    assert_eq!(snapshot(&tree, &mem), before);
}

#[test]
fn overlap_with_a_larger_block() {
    let (mut mem, mut tree) = setup();
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    let before = snapshot(&tree, &mem);
    for (p, o) in [(0x4_0200, 0), (0x4_03ff, 0), (0x4_0300, 8), (0x4_0210, 4)] {
        assert_eq!(
            tree.preserve(&mut mem, pfn(p), ord(o)),
            Err(Error::Overlap {
                pfn: pfn(p),
                order: ord(o),
                existing_pfn: pfn(0x4_0200),
                existing_order: ord(9)
            }),
            "{p:#x} order {o}"
        );
    }
    // Neighbours are fine.
    tree.preserve(&mut mem, pfn(0x4_01ff), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(0x4_0400), ord(0)).unwrap();
    tree.unpreserve(&mut mem, pfn(0x4_01ff), ord(0)).unwrap();
    tree.unpreserve(&mut mem, pfn(0x4_0400), ord(0)).unwrap();
    assert_eq!(snapshot(&tree, &mem).0, before.0);
}

/// Blocks in address order skip the overlap check while they stay outside
/// the envelope of what is preserved; one that reaches back into it (or
/// covers it) is still caught, in either direction and after unpreserves.
#[test]
fn address_order_fast_path_still_sees_overlaps() {
    let (mut mem, mut tree) = setup();
    // Ascending: pages, then a THP, then pages again.
    for p in 0x4_0000..0x4_0010 {
        tree.preserve(&mut mem, pfn(p), ord(0)).unwrap();
    }
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    tree.preserve(&mut mem, pfn(0x4_0400), ord(0)).unwrap();
    // A block covering the envelope's start, and one reaching back into it.
    let overlap = |p: u64, o: u32, at: u64, eo: u32| Error::Overlap {
        pfn: pfn(p),
        order: ord(o),
        existing_pfn: pfn(at),
        existing_order: ord(eo),
    };
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x3_fe00), ord(9)),
        Ok(()),
        "below the envelope"
    );
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x4_0000), ord(4)),
        Err(overlap(0x4_0000, 4, 0x4_0000, 0))
    );
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x4_0000), ord(18)),
        Err(overlap(0x4_0000, 18, 0x4_0000, 0))
    );
    // Unpreserving the top block leaves the envelope wide: still checked.
    tree.unpreserve(&mut mem, pfn(0x4_0400), ord(0)).unwrap();
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x4_0300), ord(0)),
        Err(overlap(0x4_0300, 0, 0x4_0200, 9))
    );
    // Emptied, the tree starts a fresh envelope.
    for p in 0x4_0000..0x4_0010 {
        tree.unpreserve(&mut mem, pfn(p), ord(0)).unwrap();
    }
    tree.unpreserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    tree.unpreserve(&mut mem, pfn(0x3_fe00), ord(9)).unwrap();
    assert!(tree.is_empty());
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x4_0201), ord(0)),
        Err(overlap(0x4_0201, 0, 0x4_0200, 9))
    );
}

#[test]
fn overlap_with_smaller_blocks_anywhere_inside() {
    let (mut mem, mut tree) = setup();
    // Pages in different leaves (128 MiB apart) and an order-3 block.
    let inner = [
        (0x10_0000 + 0x3_0000, 0),
        (0x10_0000 + 0x7_ffff, 0),
        (0x10_0000 + 0x1_0008, 3),
    ];
    for &(p, o) in &inner {
        tree.preserve(&mut mem, pfn(p), ord(o)).unwrap();
    }
    let before = snapshot(&tree, &mem);
    // An order-20 block (4 GiB) covering all of them: the first conflict
    // in the check order (order 0 before order 3, lowest address first).
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x10_0000), ord(20)),
        Err(Error::Overlap {
            pfn: pfn(0x10_0000),
            order: ord(20),
            existing_pfn: pfn(0x13_0000),
            existing_order: ord(0)
        })
    );
    // Order 10 around the order-3 block only.
    assert_eq!(
        tree.preserve(&mut mem, pfn(0x11_0000), ord(10)),
        Err(Error::Overlap {
            pfn: pfn(0x11_0000),
            order: ord(10),
            existing_pfn: pfn(0x11_0008),
            existing_order: ord(3)
        })
    );
    // Huge orders span whole tables of smaller keys.
    for o in [30u32, 40, 51] {
        let err = tree.preserve(&mut mem, pfn(0), ord(o)).unwrap_err();
        assert!(
            matches!(err, Error::Overlap { existing_pfn, .. } if existing_pfn == pfn(0x13_0000)),
            "{o}: {err:?}"
        );
    }
    assert_eq!(snapshot(&tree, &mem), before);
    // Free space next to them is fine at any order.
    tree.preserve(&mut mem, pfn(0x20_0000), ord(20)).unwrap();
    tree.preserve(&mut mem, pfn(0x11_0400), ord(10)).unwrap();
}

#[test]
fn not_preserved() {
    let (mut mem, mut tree) = setup();
    let np = |p, o| Error::NotPreserved {
        pfn: pfn(p),
        order: ord(o),
    };
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(0x4_0000), ord(0)),
        Err(np(0x4_0000, 0))
    );
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    tree.preserve(&mut mem, pfn(0x4_1000), ord(0)).unwrap();
    let before = snapshot(&tree, &mem);
    // Wrong order, a page inside, a neighbour in the same leaf word, a
    // page in a leaf that does not exist.
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(0x4_0200), ord(8)),
        Err(np(0x4_0200, 8))
    );
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(0x4_0201), ord(0)),
        Err(np(0x4_0201, 0))
    );
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(0x4_1001), ord(0)),
        Err(np(0x4_1001, 0))
    );
    assert_eq!(
        tree.unpreserve(&mut mem, pfn(0x80_0000), ord(0)),
        Err(np(0x80_0000, 0))
    );
    assert_eq!(snapshot(&tree, &mem), before);
}

#[test]
fn ranges_past_the_last_frame() {
    let (mut mem, mut tree) = setup();
    assert_eq!(
        tree.preserve_range(&mut mem, Pfn::MAX, 2),
        Err(Error::RangeTooLarge {
            start: Pfn::MAX,
            nr_pages: 2
        })
    );
    tree.preserve_range(&mut mem, Pfn::MAX, 1).unwrap();
    tree.preserve_range(&mut mem, pfn(5), 0).unwrap();
    assert_eq!(tree.preserved_pages(), 1);
}

#[test]
fn range_preserve_rolls_back() {
    let (mut mem, mut tree) = setup();
    // A page in the middle of the range blocks it.
    tree.preserve(&mut mem, pfn(0x4_0807), ord(0)).unwrap();
    let before = snapshot(&tree, &mem);
    let err = tree
        .preserve_range(&mut mem, pfn(0x4_0001), 0x1000)
        .unwrap_err();
    // Blocks 1, 2..4, 4..8, ... 0x400..0x800 went in, then 0x800..0x1000
    // (order 11) hit the page.
    assert_eq!(
        err,
        Error::Overlap {
            pfn: pfn(0x4_0800),
            order: ord(11),
            existing_pfn: pfn(0x4_0807),
            existing_order: ord(0)
        }
    );
    assert_eq!(snapshot(&tree, &mem), before);
}

#[test]
fn node_allocation_failure_leaves_no_trace() {
    // A new path needs up to 5 nodes; fail each allocation in turn.
    for n in 0..5 {
        let (mut mem, mut tree) = setup();
        tree.preserve(&mut mem, pfn(0x4_0000), ord(0)).unwrap();
        let before = snapshot(&tree, &mem);
        mem.fail_allocations_after(Some(n));
        let err = tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap_err();
        mem.fail_allocations_after(None);
        assert!(
            matches!(err, Error::NodeAlloc { level, source: kho_mem::Error::OutOfMemory { order: 0 } } if level == 4 - n as u32),
            "{n}: {err:?}"
        );
        assert_eq!(
            snapshot(&tree, &mem),
            before,
            "after failing allocation {n}"
        );
        // The tree still works afterwards.
        tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    }
    // The root itself.
    let mut mem = host(BASE, 1 << 20);
    mem.fail_allocations_after(Some(0));
    assert!(matches!(
        RadixTree::new(&mut mem),
        Err(Error::NodeAlloc { level: 5, .. })
    ));
}

#[test]
fn range_allocation_failure_rolls_back() {
    let (mut mem, mut tree) = setup();
    let before = snapshot(&tree, &mem);
    // Unaligned range: many orders, so many paths; allow only some nodes.
    for n in [0u64, 3, 7, 12, 20] {
        mem.fail_allocations_after(Some(n));
        let err = tree
            .preserve_range(&mut mem, pfn(0x4_0003), 0x2_0000)
            .unwrap_err();
        mem.fail_allocations_after(None);
        assert!(matches!(err, Error::NodeAlloc { .. }), "{n}: {err:?}");
        assert_eq!(snapshot(&tree, &mem), before, "budget {n}");
    }
    tree.preserve_range(&mut mem, pfn(0x4_0003), 0x2_0000)
        .unwrap();
    assert_eq!(tree.preserved_pages(), 0x2_0000);
}

#[test]
fn range_unpreserve_is_all_or_nothing() {
    let (mut mem, mut tree) = setup();
    tree.preserve_range(&mut mem, pfn(0x4_0003), 1000).unwrap();
    let before = snapshot(&tree, &mem);
    // One page more than preserved: the last block differs.
    assert!(matches!(
        tree.unpreserve_range(&mut mem, pfn(0x4_0003), 1001),
        Err(Error::NotPreserved { .. })
    ));
    // One page earlier: the first block (order 1 at 0x4_0002) differs.
    assert_eq!(
        tree.unpreserve_range(&mut mem, pfn(0x4_0002), 1001),
        Err(Error::NotPreserved {
            pfn: pfn(0x4_0002),
            order: ord(1)
        })
    );
    assert_eq!(snapshot(&tree, &mem), before);
    tree.unpreserve_range(&mut mem, pfn(0x4_0003), 1000)
        .unwrap();
    assert!(tree.is_empty());
    assert_eq!(mem.allocated_pages(), 1);
}

#[test]
fn empty_nodes_are_freed_and_counted() {
    let (mut mem, mut tree) = setup();
    let pages: Vec<u64> = (0..3000).map(|i| 0x4_0000 + i * 37).collect();
    for &p in &pages {
        tree.preserve(&mut mem, pfn(p), ord(0)).unwrap();
    }
    let peak = tree.node_stats();
    // 3000 * 37 pages = 433 MiB: 4 leaves of 128 MiB, root + 4 tables.
    assert_eq!((peak.tables, peak.leaves), (5, 4));
    for &p in pages.iter().rev() {
        tree.unpreserve(&mut mem, pfn(p), ord(0)).unwrap();
    }
    let s = tree.node_stats();
    assert_eq!((s.tables, s.leaves, s.bytes, s.freed), (1, 0, 4096, 8));
    assert_eq!(mem.allocated_pages(), 1);
    tree.destroy(&mut mem).unwrap();
    assert_eq!(mem.allocated_pages(), 0);
}

#[test]
fn queries() {
    let (mut mem, mut tree) = setup();
    tree.preserve(&mut mem, pfn(0x4_0200), ord(9)).unwrap();
    tree.preserve(&mut mem, pfn(0x4_1000), ord(0)).unwrap();
    assert!(tree.is_preserved(&mem, pfn(0x4_0200), ord(9)).unwrap());
    assert!(!tree.is_preserved(&mem, pfn(0x4_0200), ord(0)).unwrap());
    assert!(!tree.is_preserved(&mem, pfn(0x4_1001), ord(0)).unwrap());
    assert_eq!(
        tree.find_block(&mem, pfn(0x4_03ff)).unwrap(),
        Some((pfn(0x4_0200), ord(9)))
    );
    assert_eq!(
        tree.find_block(&mem, pfn(0x4_1000)).unwrap(),
        Some((pfn(0x4_1000), ord(0)))
    );
    assert_eq!(tree.find_block(&mem, pfn(0x4_0400)).unwrap(), None);
    assert_eq!((tree.preserved_blocks(), tree.preserved_pages()), (2, 513));
}

/// Perf-anchors target (c): tracking memory is exactly 4096 × nodes, and
/// bounded per GiB for dense order 0 and for 2 MiB folios.
#[test]
fn tracking_memory_bounds() {
    // 1 GiB of order-0 pages (a max-order-0 tree makes preserve_range
    // insert page by page): <= 33 KiB per GiB + 20 KiB.
    let mut mem = host(BASE, 8 << 20);
    let mut tree = RadixTree::with_max_order(&mut mem, ord(0)).unwrap();
    tree.preserve_range(&mut mem, pfn(0x10_0000), 1 << 18)
        .unwrap();
    let s = tree.node_stats();
    assert_eq!((s.tables, s.leaves), (5, 8));
    assert!(s.bytes <= 33 * 1024 + 20 * 1024, "{s:?}");
    assert_eq!(s.bytes, mem.allocated_pages() * PAGE);

    // 64 GiB of 2 MiB folios: one leaf: <= 4 KiB per 64 GiB + 20 KiB.
    let mut mem = host(BASE, 8 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    for i in 0..32768u64 {
        tree.preserve(&mut mem, pfn(0x100_0000 + i * 512), ord(9))
            .unwrap();
    }
    let s = tree.node_stats();
    assert_eq!((s.tables, s.leaves), (5, 1));
    assert!(s.bytes <= 4 * 1024 + 20 * 1024);

    // The model's minimum agrees.
    let model: BTreeSet<(u64, u32)> = (0..32768u64).map(|i| (0x100_0000 + i * 512, 9)).collect();
    assert_eq!(min_nodes(&model), (5, 1));
}

#[test]
fn page_zero_is_never_a_node() {
    // RAM from 0: the allocator's first page is phys 0, which a table entry
    // cannot name. The tree keeps it aside and uses the next one.
    let mut mem = host(0, 1 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    assert_eq!(tree.root().as_u64(), PAGE);
    tree.preserve(&mut mem, pfn(7), ord(0)).unwrap();
    assert_eq!(walk_all(&mem, tree.root()).unwrap(), [(7 * PAGE, 0)]);
    assert_eq!(mem.allocated_pages(), 7);
    tree.destroy(&mut mem).unwrap();
    assert_eq!(mem.allocated_pages(), 0);
}

#[test]
fn walk_breaks_early() {
    let (mut mem, mut tree) = setup();
    tree.preserve_range(&mut mem, pfn(0x4_0000), 100).unwrap();
    let mut seen = 0;
    let flow = tree
        .walk(&mem, |phys, _| {
            seen += 1;
            if seen == 2 {
                std::ops::ControlFlow::Break(phys)
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(
        flow,
        std::ops::ControlFlow::Break(kho_mem::PhysAddr::new(0x4_0040 * PAGE))
    );
    let _ = mem.read_u64(tree.root()).unwrap();
}

/// A PhysMem whose writes start failing: the tree's own nodes become
/// unwritable (a broken PhysMem, never input).
struct ReadOnlyAfter {
    inner: HostMem,
    writable: bool,
}

impl PhysMem for ReadOnlyAfter {
    fn read(&self, addr: kho_mem::PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        self.inner.read(addr, buf)
    }
    fn write(&mut self, addr: kho_mem::PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        if !self.writable {
            return Err(kho_mem::Error::NotRam {
                addr: addr.as_u64(),
                len: data.len() as u64,
            });
        }
        self.inner.write(addr, data)
    }
    fn is_ram(&self, addr: kho_mem::PhysAddr, len: u64) -> bool {
        self.inner.is_ram(addr, len)
    }
    fn alloc_pages(&mut self, order: kho_mem::Order) -> kho_mem::Result<kho_mem::PhysAddr> {
        self.inner.alloc_pages(order)
    }
    fn free_pages(
        &mut self,
        addr: kho_mem::PhysAddr,
        order: kho_mem::Order,
    ) -> kho_mem::Result<()> {
        self.inner.free_pages(addr, order)
    }
}

#[test]
fn node_access_failure_is_reported_and_changes_nothing() {
    let mut mem = ReadOnlyAfter {
        inner: host(BASE, 1 << 20),
        writable: true,
    };
    let mut tree = RadixTree::new(&mut mem).unwrap();
    tree.preserve(&mut mem, pfn(0x4_0000), ord(0)).unwrap();
    mem.writable = false;
    let leaf = node_on_path(&mem.inner, tree.root().as_u64(), spec_key(0x4_0001, 0), 0);
    let err = tree.preserve(&mut mem, pfn(0x4_0001), ord(0)).unwrap_err();
    assert!(
        matches!(err, Error::NodeAccess { node, source: kho_mem::Error::NotRam { .. } } if node.as_u64() == leaf),
        "{err:?}"
    );
    mem.writable = true;
    // The failed call left no trace, in memory or in the word cache.
    assert!(!tree.is_preserved(&mem, pfn(0x4_0001), ord(0)).unwrap());
    assert_eq!(tree.preserved_blocks(), 1);
    tree.preserve(&mut mem, pfn(0x4_0001), ord(0)).unwrap();
    assert_eq!(
        tree_walk(&tree, &mem),
        [(0x4_0000 * PAGE, 0), (0x4_0001 * PAGE, 0)]
    );
}
