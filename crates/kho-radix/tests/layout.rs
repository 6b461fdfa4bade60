//! Byte-layout tests: for a few small sets, the exact table entries and
//! bitmap words at known physical addresses.
//!
//! Expected values are worked out by hand from the spec (§3.3 key encoding,
//! §3.4 split: L5 = key bits 59:51, L4 = 50:42, L3 = 41:33, L2 = 32:24,
//! L1 = 23:15, leaf bit = 14:0; bit i of a leaf is bit i%64 of LE word i/64),
//! not from this crate's output. HostMem hands out pages in ascending order
//! from its base, and the tree allocates the root first, then a missing path
//! top-down (level 4, 3, 2, 1, leaf), so node addresses are known too.

mod common;

use std::collections::BTreeMap;

use common::*;
use kho_radix::RadixTree;

const BASE: u64 = 0x4000_0000;

fn page(n: u64) -> u64 {
    BASE + n * PAGE
}

#[test]
fn one_order0_page_spec_example() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    assert_eq!(tree.root().as_u64(), page(0));
    // Spec §3.3: phys 0x1000_0000 order 0 -> key 0x0010_0000_0001_0000:
    // L5 = 2, L4 = L3 = L2 = 0, L1 = 0x10000 >> 15 = 2, leaf bit 0.
    tree.preserve(&mut mem, phys_pfn(0x1000_0000), ord(0))
        .unwrap();
    let want = BTreeMap::from([
        (page(0) + 2 * 8, page(1)), // root[2] -> level 4
        (page(1), page(2)),         // L4[0] -> level 3
        (page(2), page(3)),         // L3[0] -> level 2
        (page(3), page(4)),         // L2[0] -> level 1
        (page(4) + 2 * 8, page(5)), // L1[2] -> leaf
        (page(5), 1),               // leaf word 0 = bit 0
    ]);
    assert_eq!(
        nonzero_words(
            &mem,
            &[page(0), page(1), page(2), page(3), page(4), page(5)]
        ),
        want
    );
    assert_eq!(mem.allocated_pages(), 6);
    let s = tree.node_stats();
    assert_eq!((s.tables, s.leaves, s.bytes), (5, 1, 6 * 4096));
}

#[test]
fn neighbours_share_a_leaf_and_words() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    // Keys 0x0010_0000_0001_0000, ..._0001_0001 and ..._0001_0040:
    // leaf bits 0, 1 (word 0) and 0x40 = 64 (word 1, bit 0).
    for phys in [0x1000_0000, 0x1000_1000, 0x1004_0000] {
        tree.preserve(&mut mem, phys_pfn(phys), ord(0)).unwrap();
    }
    let leaf = nonzero_words(&mem, &[page(5)]);
    assert_eq!(leaf, BTreeMap::from([(page(5), 0b11), (page(5) + 8, 1)]));
    assert_eq!(mem.allocated_pages(), 6);
}

#[test]
fn three_orders_take_three_root_slots() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    // Order 0 at 0x1000_0000: pages 1..=5 as above.
    tree.preserve(&mut mem, phys_pfn(0x1000_0000), ord(0))
        .unwrap();
    // Order 9 at 0x4020_0000: key = 1<<43 | 0x4020_0000>>21 = 1<<43 | 0x201.
    // L5 = key>>51 = 0, L4 = (key>>42)&511 = 2, L3 = L2 = L1 = 0,
    // leaf bit 0x201 = 513: word 8, bit 1.
    tree.preserve(&mut mem, phys_pfn(0x4020_0000), ord(9))
        .unwrap();
    // Order 1 at 0x8000_0000: key = 1<<51 | 0x8000_0000>>13 = 1<<51 | 0x4_0000.
    // L5 = 1, L4 = (1<<9)&511 = 0, L3 = L2 = 0, L1 = 0x4_0000>>15 = 8,
    // leaf bit 0: word 0, bit 0.
    tree.preserve(&mut mem, phys_pfn(0x8000_0000), ord(1))
        .unwrap();
    let want = BTreeMap::from([
        (page(0), page(6)),         // root[0] -> order >= 2 subtree
        (page(0) + 8, page(11)),    // root[1] -> order 1 subtree
        (page(0) + 2 * 8, page(1)), // root[2] -> order 0 subtree
        (page(1), page(2)),
        (page(2), page(3)),
        (page(3), page(4)),
        (page(4) + 2 * 8, page(5)),
        (page(5), 1),
        (page(6) + 2 * 8, page(7)), // L4[2]
        (page(7), page(8)),
        (page(8), page(9)),
        (page(9), page(10)),        // L1[0] -> leaf
        (page(10) + 8 * 8, 1 << 1), // word 8, bit 1
        (page(11), page(12)),
        (page(12), page(13)),
        (page(13), page(14)),
        (page(14) + 8 * 8, page(15)), // L1[8] -> leaf
        (page(15), 1),
    ]);
    let pages: Vec<u64> = (0..16).map(page).collect();
    assert_eq!(nonzero_words(&mem, &pages), want);
    // Walk order = key order: order 9 (key ~2^43), order 1 (~2^51), order 0 (~2^52).
    assert_eq!(
        tree_walk(&tree, &mem),
        [(0x4020_0000, 9), (0x8000_0000, 1), (0x1000_0000, 0)]
    );
}

#[test]
fn top_of_the_address_space() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    // Order 0 at 2^63: key = 1<<52 | 1<<51, root slot 3; all lower indices 0.
    tree.preserve(&mut mem, phys_pfn(1 << 63), ord(0)).unwrap();
    // Order 51 at 2^63: key = 1<<1 | 1 = 3: root slot 0, all indices 0, leaf
    // bit 3. It overlaps the page above, so preserve it after removing that.
    assert!(tree.preserve(&mut mem, phys_pfn(1 << 63), ord(51)).is_err());
    tree.unpreserve(&mut mem, phys_pfn(1 << 63), ord(0))
        .unwrap();
    tree.preserve(&mut mem, phys_pfn(1 << 63), ord(51)).unwrap();
    // Order 38 at 2^62: key = 1<<14 | 2^50>>38 = 0x4000 | 0x1000 = 0x5000:
    // the same all-zero-prefix leaf, bit 0x5000 = 20480: word 320, bit 0.
    tree.preserve(&mut mem, phys_pfn(1 << 62), ord(38)).unwrap();
    // The order-0 path (pages 1..=5) was freed and zeroed; HostMem's
    // next-fit allocator put the new path at pages 6..=10.
    let want = BTreeMap::from([
        (page(0), page(6)),
        (page(6), page(7)),
        (page(7), page(8)),
        (page(8), page(9)),
        (page(9), page(10)),
        (page(10), 1 << 3),
        (page(10) + 320 * 8, 1),
    ]);
    let pages: Vec<u64> = (0..12).map(page).collect();
    assert_eq!(nonzero_words(&mem, &pages), want);
    assert_eq!(tree_walk(&tree, &mem), [(1 << 63, 51), (1 << 62, 38)]);
    // The range iterator decodes this mixed-order leaf bit by bit too.
    let runs: Vec<_> = tree
        .ranges(&mem)
        .map(|r| {
            let r = r.unwrap();
            (
                r.range().start().as_u64(),
                r.range().size(),
                r.order().get(),
                r.blocks(),
            )
        })
        .collect();
    assert_eq!(runs, [(1 << 63, 1 << 63, 51, 1), (1 << 62, 1 << 50, 38, 1)]);
}

#[test]
fn slot_three_holds_order0_above_2_pow_63() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    tree.preserve(&mut mem, phys_pfn(1 << 63), ord(0)).unwrap();
    let want = BTreeMap::from([
        (page(0) + 3 * 8, page(1)),
        (page(1), page(2)),
        (page(2), page(3)),
        (page(3), page(4)),
        (page(4), page(5)),
        (page(5), 1),
    ]);
    let pages: Vec<u64> = (0..6).map(page).collect();
    assert_eq!(nonzero_words(&mem, &pages), want);
}

#[test]
fn unpreserve_clears_every_byte_and_frees_the_path() {
    let mut mem = host(BASE, 16 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    tree.preserve(&mut mem, phys_pfn(0x1000_0000), ord(0))
        .unwrap();
    tree.preserve(&mut mem, phys_pfn(0x4020_0000), ord(9))
        .unwrap();
    tree.unpreserve(&mut mem, phys_pfn(0x1000_0000), ord(0))
        .unwrap();
    // Only the order-9 path remains: root[0] and its five nodes.
    let pages: Vec<u64> = (0..12).map(page).collect();
    let words = nonzero_words(&mem, &pages);
    assert_eq!(words.get(&page(0)), Some(&page(6)));
    assert_eq!(words.get(&(page(0) + 16)), None);
    assert_eq!(mem.allocated_pages(), 6);
    let s = tree.node_stats();
    assert_eq!((s.tables, s.leaves, s.freed), (5, 1, 5));
    tree.unpreserve(&mut mem, phys_pfn(0x4020_0000), ord(9))
        .unwrap();
    assert!(nonzero_words(&mem, &[page(0)]).is_empty());
    assert_eq!(mem.allocated_pages(), 1);
}
