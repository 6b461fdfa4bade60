//! Corrupted-tree tests: one per incoming error, each asserting the exact
//! variant with its level, entry and node; plus never-panic, always-ends
//! checks of the walk on randomly damaged trees.

mod common;

use std::ops::ControlFlow;

use common::*;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
use kho_radix::{Error, MAX_ROOT_SLOT, RadixTree, VisitedSet};
use proptest::prelude::*;

const BASE: u64 = 0x4000_0000;
/// Preserved pages live here, inside RAM, away from the node pages.
const DATA: u64 = BASE + (32 << 20);

/// A tree with order-0 pages in two leaves and an order-9 folio, all in RAM.
fn sample() -> (HostMem, RadixTree) {
    let mut mem = host(BASE, 512 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    for i in 0..40 {
        tree.preserve(&mut mem, phys_pfn(DATA + i * 3 * PAGE), ord(0))
            .unwrap();
    }
    // 128 MiB further: the next order-0 leaf.
    for i in 0..70 {
        tree.preserve(&mut mem, phys_pfn(DATA + (128 << 20) + i * PAGE), ord(0))
            .unwrap();
    }
    tree.preserve(&mut mem, phys_pfn(DATA + (64 << 20)), ord(9))
        .unwrap();
    assert!(walk_all(&mem, tree.root()).is_ok());
    (mem, tree)
}

fn key0(phys: u64) -> u64 {
    spec_key(phys / PAGE, 0)
}

/// Both walk APIs must report `want`.
fn assert_walk_error(mem: &HostMem, root: u64, want: Error) {
    assert_eq!(walk_all(mem, PhysAddr::new(root)), Err(want));
    assert_eq!(ranges_all(mem, PhysAddr::new(root)), Err(want));
}

fn poke(mem: &mut HostMem, addr: u64, value: u64) {
    mem.write_u64(PhysAddr::new(addr), value).unwrap();
}

#[test]
fn root_misaligned() {
    let (mem, tree) = sample();
    let root = tree.root().as_u64() + 8;
    assert_walk_error(
        &mem,
        root,
        Error::RootMisaligned {
            root: PhysAddr::new(root),
        },
    );
}

#[test]
fn root_not_ram() {
    let (mem, _) = sample();
    assert_walk_error(
        &mem,
        0x1000,
        Error::RootNotRam {
            root: PhysAddr::new(0x1000),
        },
    );
}

#[test]
fn unused_root_slots() {
    assert_eq!(MAX_ROOT_SLOT, 3);
    for index in [4usize, 5, 511] {
        let (mut mem, tree) = sample();
        let root = tree.root().as_u64();
        let page = mem.alloc_page().unwrap().as_u64();
        poke(&mut mem, root + 8 * index as u64, page);
        assert_walk_error(
            &mem,
            root,
            Error::UnusedRootSlot {
                node: tree.root(),
                index,
                entry: page,
            },
        );
    }
}

#[test]
fn entry_misaligned() {
    let (mut mem, tree) = sample();
    let root = tree.root().as_u64();
    let l4 = node_on_path(&mem, root, key0(DATA), 4);
    let l3 = node_on_path(&mem, root, key0(DATA), 3);
    poke(&mut mem, l4, l3 + 0x10); // L4 index 0 for these keys
    assert_walk_error(
        &mem,
        root,
        Error::EntryMisaligned {
            level: 4,
            index: 0,
            node: PhysAddr::new(l4),
            entry: l3 + 0x10,
        },
    );
}

#[test]
fn entry_not_ram() {
    let (mut mem, tree) = sample();
    let root = tree.root().as_u64();
    let key = key0(DATA);
    let l2 = node_on_path(&mem, root, key, 2);
    let index = ((key >> 24) & 511) as usize;
    poke(&mut mem, l2 + 8 * index as u64, 0x7000_0000_0000);
    assert_walk_error(
        &mem,
        root,
        Error::EntryNotRam {
            level: 2,
            index,
            node: PhysAddr::new(l2),
            entry: 0x7000_0000_0000,
        },
    );
    // One page past the end of RAM.
    let end = BASE + (512 << 20);
    poke(&mut mem, l2 + 8 * index as u64, end);
    assert!(
        matches!(walk_all(&mem, PhysAddr::new(root)), Err(Error::EntryNotRam { entry, .. }) if entry == end)
    );
}

#[test]
fn cycles_to_an_ancestor_or_self() {
    let (mut mem, tree) = sample();
    let root = tree.root().as_u64();
    let key = key0(DATA);
    let l1 = node_on_path(&mem, root, key, 1);
    // An unused L1 slot pointing back at the root.
    poke(&mut mem, l1 + 8 * 300, root);
    assert_walk_error(
        &mem,
        root,
        Error::Cycle {
            level: 1,
            index: 300,
            node: PhysAddr::new(l1),
            entry: root,
        },
    );
    // A table pointing at itself.
    let (mut mem, tree) = sample();
    let l3 = node_on_path(&mem, tree.root().as_u64(), key, 3);
    poke(&mut mem, l3 + 8 * 7, l3);
    assert_walk_error(
        &mem,
        tree.root().as_u64(),
        Error::Cycle {
            level: 3,
            index: 7,
            node: PhysAddr::new(l3),
            entry: l3,
        },
    );
}

#[test]
fn shared_leaf_and_shared_table() {
    let (mut mem, tree) = sample();
    let root = tree.root().as_u64();
    let key = key0(DATA);
    let l1 = node_on_path(&mem, root, key, 1);
    let leaf = node_on_path(&mem, root, key, 0);
    let index = ((key >> 15) & 511) as usize;
    // The leaf appears again two slots later.
    poke(&mut mem, l1 + 8 * (index as u64 + 2), leaf);
    assert_walk_error(
        &mem,
        root,
        Error::SharedNode {
            level: 1,
            index: index + 2,
            node: PhysAddr::new(l1),
            entry: leaf,
        },
    );
    // The order-0 level-4 table also hangs from root slot 3.
    let (mut mem, tree) = sample();
    let l4 = node_on_path(&mem, tree.root().as_u64(), key, 4);
    poke(&mut mem, tree.root().as_u64() + 8 * 3, l4);
    assert_walk_error(
        &mem,
        root,
        Error::SharedNode {
            level: 5,
            index: 3,
            node: tree.root(),
            entry: l4,
        },
    );
}

#[test]
fn exponential_dag_is_cut_short() {
    // Every entry of every table points to the same child: without the
    // visited set this would be 2 * 512^4 leaf visits. RAM starts at 0 so
    // the order-0 leaf under root slot 2, L4..L1 index 0 (pages 0 ..) is RAM.
    let mut mem = host(0, 1 << 20);
    mem.reserve(kho_mem::PhysRange::try_new(PhysAddr::ZERO, PAGE).unwrap())
        .unwrap();
    let nodes: Vec<u64> = (0..6).map(|_| mem.alloc_page().unwrap().as_u64()).collect();
    for slot in [2, 3] {
        poke(&mut mem, nodes[0] + 8 * slot, nodes[1]);
    }
    for level in 1..5 {
        for i in 0..512 {
            poke(&mut mem, nodes[level] + 8 * i, nodes[level + 1]);
        }
    }
    poke(&mut mem, nodes[5], u64::MAX);
    let mut calls = 0u64;
    let mut buf = [0u64; VisitedSet::words_for(64)];
    let mut visited = VisitedSet::new(&mut buf);
    let got = kho_radix::walk(&mem, PhysAddr::new(nodes[0]), &mut visited, |_, _| {
        calls += 1;
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(
        got,
        Err(Error::SharedNode {
            level: 1,
            index: 1,
            node: PhysAddr::new(nodes[4]),
            entry: nodes[5],
        })
    );
    assert_eq!(calls, 64, "only the first leaf was reported");
}

/// A hand-built path root[0] -> L4[0] -> L3[0] -> L2[0] -> L1[0] -> leaf:
/// the leaf under the all-zero key prefix (orders 38 … 51 and keys 0, 1).
fn zero_prefix_tree() -> (HostMem, u64, u64) {
    let mut mem = host(BASE, 1 << 20);
    let nodes: Vec<u64> = (0..6).map(|_| mem.alloc_page().unwrap().as_u64()).collect();
    for level in 0..5 {
        poke(&mut mem, nodes[level], nodes[level + 1]);
    }
    (mem, nodes[0], nodes[5])
}

#[test]
fn invalid_keys_in_the_zero_prefix_leaf() {
    for bit in [0u64, 1] {
        let (mut mem, root, leaf) = zero_prefix_tree();
        poke(&mut mem, leaf, 1 << bit);
        assert_walk_error(
            &mem,
            root,
            Error::InvalidKey {
                node: PhysAddr::new(leaf),
                index: bit as usize,
                key: bit,
            },
        );
    }
}

#[test]
fn zero_prefix_leaf_blocks_must_be_ram() {
    // Bit 2 = key 2 = order 51 at phys 0: 2^63 bytes, never RAM here.
    let (mut mem, root, leaf) = zero_prefix_tree();
    poke(&mut mem, leaf, 1 << 2);
    assert_walk_error(
        &mem,
        root,
        Error::BlockNotRam {
            node: PhysAddr::new(leaf),
            index: 2,
            phys: PhysAddr::ZERO,
            order: Order::MAX,
        },
    );
}

#[test]
fn block_outside_ram() {
    // The outgoing side records numbers; the incoming side checks them.
    let (mut mem, mut tree) = sample();
    let outside = BASE + (512 << 20); // first page past RAM
    tree.preserve(&mut mem, phys_pfn(outside), ord(0)).unwrap();
    let root = tree.root().as_u64();
    let key = key0(outside);
    let leaf = node_on_path(&mem, root, key, 0);
    assert_walk_error(
        &mem,
        root,
        Error::BlockNotRam {
            node: PhysAddr::new(leaf),
            index: (key & 0x7fff) as usize,
            phys: PhysAddr::new(outside),
            order: ord(0),
        },
    );
    // An order-9 block that starts in RAM and ends past it.
    let mut mem = host(BASE, 3 << 20);
    let mut tree = RadixTree::new(&mut mem).unwrap();
    let straddle = BASE + (2 << 20);
    tree.preserve(&mut mem, phys_pfn(straddle), ord(9)).unwrap();
    let err = walk_all(&mem, tree.root()).unwrap_err();
    assert!(
        matches!(err, Error::BlockNotRam { phys, order, .. } if phys.as_u64() == straddle && order.get() == 9),
        "{err:?}"
    );
}

#[test]
fn visited_set_too_small() {
    let (mem, tree) = sample();
    // The sample has 9 tables and 3 leaves.
    let mut buf = [0u64; VisitedSet::words_for(3)];
    let mut visited = VisitedSet::new(&mut buf);
    let capacity = visited.capacity();
    let got = kho_radix::walk(&mem, tree.root(), &mut visited, |_, _| {
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(got, Err(Error::VisitedSetFull { capacity }));
    let mut visited = VisitedSet::new(&mut buf);
    let got: Result<Vec<_>, _> = kho_radix::ranges(&mem, tree.root(), &mut visited).collect();
    assert_eq!(got, Err(Error::VisitedSetFull { capacity }));
}

/// A PhysMem that claims a page is RAM but fails to read it.
struct Flaky<'a> {
    inner: &'a HostMem,
    bad: u64,
}

impl PhysMem for Flaky<'_> {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        if addr.as_u64() & !0xfff == self.bad {
            return Err(kho_mem::Error::NotRam {
                addr: addr.as_u64(),
                len: buf.len() as u64,
            });
        }
        self.inner.read(addr, buf)
    }
    fn write(&mut self, _: PhysAddr, _: &[u8]) -> kho_mem::Result<()> {
        unreachable!("walks never write")
    }
    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        self.inner.is_ram(addr, len)
    }
    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        Err(kho_mem::Error::OutOfMemory { order: order.get() })
    }
    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> kho_mem::Result<()> {
        Err(kho_mem::Error::NotAllocated {
            addr: addr.as_u64(),
            order: order.get(),
        })
    }
}

#[test]
fn node_read_failures() {
    let (mem, tree) = sample();
    let root = tree.root().as_u64();
    let key = key0(DATA);
    for level in [5u32, 2, 0] {
        let node = node_on_path(&mem, root, key, level);
        let flaky = Flaky {
            inner: &mem,
            bad: node,
        };
        let got = walk_all(&flaky, PhysAddr::new(root));
        assert!(
            matches!(got, Err(Error::NodeRead { level: l, node: n, .. }) if l == level && n.as_u64() == node),
            "level {level}: {got:?}"
        );
    }
}

#[test]
fn errors_name_where_they_are() {
    let err = Error::EntryNotRam {
        level: 2,
        index: 17,
        node: PhysAddr::new(0x4000_3000),
        entry: 0x7000_0000_0000,
    };
    assert_eq!(
        err.to_string(),
        "level 2 table 0x40003000 entry 17 (0x700000000000) is not RAM"
    );
    let err = Error::NodeRead {
        level: 0,
        node: PhysAddr::new(0x4000_5000),
        source: kho_mem::Error::NotRam {
            addr: 0x4000_5000,
            len: 4096,
        },
    };
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn ranges_yield_completed_runs_before_the_error() {
    // The order-9 run and the first order-0 leaf come before the damaged
    // second leaf.
    let (mut mem, tree) = sample();
    let root = tree.root().as_u64();
    let key = key0(DATA + (128 << 20));
    let l1 = node_on_path(&mem, root, key, 1);
    poke(&mut mem, l1 + 8 * ((key >> 15) & 511), 0x10);
    let mut buf = [0u64; VisitedSet::words_for(64)];
    let mut visited = VisitedSet::new(&mut buf);
    let items: Vec<_> = kho_radix::ranges(&mem, tree.root(), &mut visited).collect();
    assert_eq!(items.iter().filter(|r| r.is_ok()).count(), 41);
    assert!(matches!(
        items.last(),
        Some(Err(Error::EntryMisaligned {
            level: 1,
            entry: 0x10,
            ..
        }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random damage to any node: the walk returns (Ok or a named error),
    /// never panics, and reports a bounded number of blocks.
    #[test]
    fn damaged_trees_never_panic(damage in proptest::collection::vec((0usize..64, 0usize..512, 0u8..6, any::<u64>()), 1..12)) {
        let (mut mem, tree) = sample();
        let root = tree.root().as_u64();
        // Every node page of the sample, from the allocator's bottom up.
        let nodes: Vec<u64> = (0..mem.allocated_pages()).map(|i| BASE + i * PAGE).collect();
        for (node, slot, kind, value) in damage {
            let node = nodes[node % nodes.len()];
            let target = nodes[(value as usize) % nodes.len()];
            let v = match kind {
                0 => value,
                1 => target,
                2 => target + (value % 4096),
                3 => 0,
                4 => u64::MAX,
                _ => BASE + (value % (1 << 30)) / PAGE * PAGE,
            };
            poke(&mut mem, node + 8 * slot as u64, v);
        }
        let mut buf = [0u64; VisitedSet::words_for(256)];
        let mut visited = VisitedSet::new(&mut buf);
        let cap = visited.capacity() as u64;
        let mut calls = 0u64;
        let _ = kho_radix::walk(&mem, PhysAddr::new(root), &mut visited, |_, _| {
            calls += 1;
            ControlFlow::<()>::Continue(())
        });
        prop_assert!(calls <= cap * 32768);
        let mut visited = VisitedSet::new(&mut buf);
        let items = kho_radix::ranges(&mem, PhysAddr::new(root), &mut visited).take(1 << 20).count();
        prop_assert!(items < 1 << 20);
    }
}
