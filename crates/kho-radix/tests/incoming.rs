//! `IncomingTree`: adopt a walked tree, restore from its leaves, and prove
//! the handle stays the same size whatever the tree holds.

mod common;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use common::*;
use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
use kho_radix::{Error, IncomingTree, RadixTree, VisitedSet};
use proptest::prelude::*;

const BASE: u64 = 0x4000_0000;

fn adopt(mem: &HostMem, root: PhysAddr, buf: &mut [u64]) -> (IncomingTree, Vec<(u64, u32)>) {
    let mut visited = VisitedSet::new(buf);
    let mut seen = Vec::new();
    let flow = IncomingTree::walk(mem, root, &mut visited, |phys, order| {
        seen.push((phys.as_u64(), order.get()));
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    match flow {
        ControlFlow::Continue(tree) => (tree, seen),
        ControlFlow::Break(()) => unreachable!(),
    }
}

#[test]
fn take_clears_exactly_one_block_once() {
    let mut mem = HostMem::new(PhysAddr::new(BASE), 256 << 20).unwrap();
    let mut out = RadixTree::new(&mut mem).unwrap();
    let folio = phys_pfn(BASE + (64 << 20));
    out.preserve(&mut mem, folio, ord(9)).unwrap();
    out.preserve_range(&mut mem, phys_pfn(BASE + (128 << 20)), 5)
        .unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    let (mut tree, seen) = adopt(&mem, out.root(), &mut buf);
    assert_eq!(seen.len(), 3);
    assert_eq!(tree.walked_blocks(), 3);
    assert_eq!(tree.walked_pages(), 512 + 5);
    assert_eq!(tree.remaining_blocks(), 3);

    // The wrong order, a misaligned frame, a page inside the folio: refused
    // and nothing changes.
    assert!(!tree.contains(&mem, folio, ord(8)).unwrap());
    assert_eq!(
        tree.take(&mut mem, folio, ord(8)),
        Err(Error::NotPreserved {
            pfn: folio,
            order: ord(8)
        })
    );
    let inside = pfn(folio.as_u64() + 1);
    assert_eq!(
        tree.take(&mut mem, inside, ord(9)),
        Err(Error::Misaligned {
            pfn: inside,
            order: ord(9)
        })
    );
    assert_eq!(
        tree.find_block(&mem, inside).unwrap(),
        Some((folio, ord(9)))
    );
    assert_eq!(tree.remaining_blocks(), 3);

    tree.take(&mut mem, folio, ord(9)).unwrap();
    assert_eq!(
        tree.take(&mut mem, folio, ord(9)),
        Err(Error::NotPreserved {
            pfn: folio,
            order: ord(9)
        })
    );
    assert_eq!(tree.find_block(&mem, inside).unwrap(), None);
    assert_eq!(tree.remaining_blocks(), 2);

    // What is left is exactly the range's two blocks.
    let mut visited = VisitedSet::new(&mut buf);
    let left: Vec<_> = tree
        .remaining(&mem, &mut visited)
        .map(|r| r.map(|r| (r.range().start().as_u64(), r.order().get())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        left,
        [(BASE + (128 << 20), 2), (BASE + (128 << 20) + 4 * PAGE, 0)]
    );
}

#[test]
fn a_walk_that_fails_adopts_nothing() {
    let mut mem = HostMem::new(PhysAddr::new(BASE), 64 << 20).unwrap();
    let mut out = RadixTree::new(&mut mem).unwrap();
    out.preserve(&mut mem, phys_pfn(BASE + (8 << 20)), ord(0))
        .unwrap();
    // Point a root slot that no key uses somewhere.
    mem.write_u64(out.root().checked_add(8 * 100).unwrap(), BASE)
        .unwrap();
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    let mut visited = VisitedSet::new(&mut buf);
    let r = IncomingTree::walk(&mem, out.root(), &mut visited, |_, _| {
        ControlFlow::<()>::Continue(())
    });
    assert!(matches!(r, Err(Error::UnusedRootSlot { index: 100, .. })));
}

#[test]
fn visited_set_lists_every_node() {
    let mut mem = HostMem::new(PhysAddr::new(BASE), 512 << 20).unwrap();
    let mut out = RadixTree::new(&mut mem).unwrap();
    for (at, o) in [
        (BASE + (256 << 20), 0u32),
        (BASE + (300 << 20), 1),
        (BASE + (400 << 20), 9),
    ] {
        out.preserve(&mut mem, phys_pfn(at), ord(o)).unwrap();
    }
    let stats = out.node_stats();
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    let mut visited = VisitedSet::new(&mut buf);
    let _ = kho_radix::walk(&mem, out.root(), &mut visited, |_, _| {
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    let nodes: BTreeSet<u64> = visited.nodes().map(|n| n.as_u64()).collect();
    assert_eq!(nodes.len() as u64, stats.tables + stats.leaves);
    assert!(nodes.contains(&out.root().as_u64()));
    for n in &nodes {
        assert!(mem.is_ram(PhysAddr::new(*n), PAGE));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any preserved set: every block is found and taken exactly once, in
    /// any order; foreign blocks are refused; at the end nothing remains.
    #[test]
    fn restores_match_the_model(
        blocks in proptest::collection::btree_set((0u64..1023, 0u32..4), 1..64),
        seed in any::<u64>(),
    ) {
        let mut mem = HostMem::with_ram(&[
            PhysRange::try_new(PhysAddr::new(BASE), 64 << 20).unwrap(),
        ])
        .unwrap();
        let mut out = RadixTree::new(&mut mem).unwrap();
        // Blocks in the upper half; the tree's nodes come from the lower.
        let mut model = BTreeSet::new();
        for (slot, o) in blocks {
            let p = (BASE >> 12) + 8192 + (slot << 3);
            let p = p & !((1 << o) - 1);
            if out.preserve(&mut mem, pfn(p), ord(o)).is_ok() {
                model.insert((p, o));
            }
        }
        let mut buf = vec![0u64; VisitedSet::words_for(256)];
        let (mut tree, seen) = adopt(&mem, out.root(), &mut buf);
        prop_assert_eq!(seen.len(), model.len());
        let mut order: Vec<_> = model.iter().copied().collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (n, &(p, o)) in order.iter().enumerate() {
            prop_assert!(tree.contains(&mem, pfn(p), ord(o)).unwrap());
            tree.take(&mut mem, pfn(p), ord(o)).unwrap();
            prop_assert!(tree.take(&mut mem, pfn(p), ord(o)).is_err());
            prop_assert_eq!(tree.remaining_blocks(), (order.len() - n - 1) as u64);
        }
        let mut visited = VisitedSet::new(&mut buf);
        prop_assert_eq!(tree.remaining(&mem, &mut visited).count(), 0);
    }
}

/// The order-0 leaf word address for `phys` in the tree at `root` (test
/// helper: descends the tree as the spec lays it out).
fn leaf_word(mem: &HostMem, root: PhysAddr, phys: u64) -> (PhysAddr, u64) {
    use kho_abi::radix::{ROOT_LEVEL, encode_key, leaf_bit, table_index};
    let key = encode_key(phys, 0).unwrap();
    let mut node = root.as_u64();
    for level in (1..=ROOT_LEVEL).rev() {
        node = mem
            .read_u64(PhysAddr::new(node + 8 * table_index(key, level) as u64))
            .unwrap();
        assert_ne!(node, 0, "no path for {phys:#x}");
    }
    let bit = leaf_bit(key);
    (PhysAddr::new(node + 8 * (bit / 64) as u64), 1 << (bit % 64))
}

/// Upstream reserves an order-9 block and an order-0 block inside it and
/// restores whichever is asked for; the adopting walk refuses the pair.
#[test]
fn blocks_overlapping_across_orders_are_refused() {
    let mut mem = HostMem::new(PhysAddr::new(BASE), 256 << 20).unwrap();
    let mut out = RadixTree::new(&mut mem).unwrap();
    let folio = BASE + (64 << 20);
    out.preserve(&mut mem, phys_pfn(folio), ord(9)).unwrap();
    // An order-0 block elsewhere in the same 128 MiB gives the leaf.
    out.preserve(&mut mem, phys_pfn(BASE + (100 << 20)), ord(0))
        .unwrap();
    let inside = folio + 5 * PAGE;
    let (word, mask) = leaf_word(&mem, out.root(), inside);
    let w = mem.read_u64(word).unwrap();
    mem.write_u64(word, w | mask).unwrap();
    // The plain walk reports both (it keeps no state)...
    let mut buf = vec![0u64; VisitedSet::words_for(64)];
    let mut n = 0;
    let _ = kho_radix::walk(&mem, out.root(), &mut VisitedSet::new(&mut buf), |_, _| {
        n += 1;
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(n, 3);
    // ...the adopting walk names the pair.
    let r = IncomingTree::walk(&mem, out.root(), &mut VisitedSet::new(&mut buf), |_, _| {
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(
        r.err(),
        Some(Error::Overlap {
            pfn: phys_pfn(inside),
            order: ord(0),
            existing_pfn: phys_pfn(folio),
            existing_order: ord(9),
        })
    );
}
