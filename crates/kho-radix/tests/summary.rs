//! The outgoing tree's summary (per-order words, level-1 tables and the
//! leaf directory) against a model: the overlap check must find exactly the
//! conflict the spec's rules name, at the edges of the frame space, for the
//! orders that share leaves and words, and after unpreserve frees what the
//! summary remembered.

mod common;

use std::collections::BTreeSet;

use common::*;
use kho_mem::HostMem;
use kho_radix::{Error, RadixTree};
use proptest::prelude::*;

/// One past the last frame: 2^52.
const PFN_END: u64 = 1 << 52;
const MAX: u32 = 51;

type Model = BTreeSet<(u64, u32)>;

fn setup() -> (HostMem, RadixTree) {
    let mut mem = host(0x4000_0000, 64 << 20);
    let tree = RadixTree::new(&mut mem).unwrap();
    (mem, tree)
}

/// A tree in a memory of `pages` pages: the allocator soon hands freed
/// node pages out again, so a stale summary entry would read another node.
fn small(pages: u64) -> (HostMem, RadixTree) {
    let mut mem = host(0x4000_0000, pages * PAGE);
    let tree = RadixTree::new(&mut mem).unwrap();
    (mem, tree)
}

fn overlap(p: u64, o: u32, q: u64, qo: u32) -> Error {
    Error::Overlap {
        pfn: pfn(p),
        order: ord(o),
        existing_pfn: pfn(q),
        existing_order: ord(qo),
    }
}

/// What preserving `(p, o)` must do, with the exact conflict: larger orders
/// first (ascending; the one block that would contain it), then smaller
/// orders (ascending; the lowest address inside it).
fn expect_preserve(model: &Model, p: u64, o: u32) -> Result<(), Error> {
    if !p.is_multiple_of(1 << o) {
        return Err(Error::Misaligned {
            pfn: pfn(p),
            order: ord(o),
        });
    }
    if model.contains(&(p, o)) {
        return Err(Error::AlreadyPreserved {
            pfn: pfn(p),
            order: ord(o),
        });
    }
    for big in o + 1..=MAX {
        let q = p & !((1u64 << big) - 1);
        if model.contains(&(q, big)) {
            return Err(overlap(p, o, q, big));
        }
    }
    let end = p + (1u64 << o);
    for small in 0..o {
        if let Some(&(q, _)) = model.range((p, 0)..(end, 0)).find(|&&(_, qo)| qo == small) {
            return Err(overlap(p, o, q, small));
        }
    }
    Ok(())
}

fn expect_preserve_range(model: &mut Model, start: u64, n: u64) -> Result<(), Error> {
    if start + n > PFN_END {
        return Err(Error::RangeTooLarge {
            start: pfn(start),
            nr_pages: n,
        });
    }
    let mut next = model.clone();
    for (p, o) in spec_blocks(start, n) {
        expect_preserve(&next, p, o)?;
        next.insert((p, o));
    }
    *model = next;
    Ok(())
}

fn expect_unpreserve(model: &mut Model, p: u64, o: u32) -> Result<(), Error> {
    if !p.is_multiple_of(1 << o) {
        return Err(Error::Misaligned {
            pfn: pfn(p),
            order: ord(o),
        });
    }
    if !model.remove(&(p, o)) {
        return Err(Error::NotPreserved {
            pfn: pfn(p),
            order: ord(o),
        });
    }
    Ok(())
}

/// The model's block containing frame `f`.
fn model_find(model: &Model, f: u64) -> Option<(u64, u32)> {
    model
        .range(..=(f, MAX))
        .rev()
        .find(|&&(q, qo)| f < q + (1u64 << qo))
        .copied()
}

fn check_state(tree: &RadixTree, mem: &HostMem, model: &Model) {
    assert_eq!(tree_walk(tree, mem), model_walk(model));
    let (tables, leaves) = min_nodes(model);
    let stats = tree.node_stats();
    assert_eq!((stats.tables, stats.leaves), (tables, leaves));
    assert_eq!(mem.allocated_pages(), tables + leaves);
    assert_eq!(tree.preserved_blocks(), model.len() as u64);
}

#[test]
fn orders_zero_and_max_at_the_ends_of_the_frame_space() {
    let (mut mem, mut tree) = setup();
    let last = PFN_END - 1;
    let half = 1u64 << MAX;
    // Order 0 at both ends, order 51 over each half.
    tree.preserve(&mut mem, pfn(0), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(last), ord(0)).unwrap();
    assert_eq!(
        tree.preserve(&mut mem, pfn(0), ord(MAX)),
        Err(overlap(0, MAX, 0, 0))
    );
    assert_eq!(
        tree.preserve(&mut mem, pfn(half), ord(MAX)),
        Err(overlap(half, MAX, last, 0))
    );
    // The page at the top of the lower half is free.
    tree.preserve(&mut mem, pfn(half - 1), ord(0)).unwrap();
    assert_eq!(
        tree.find_block(&mem, pfn(last)).unwrap(),
        Some((pfn(last), ord(0)))
    );
    // Clear the upper half; order 51 there now goes in, and contains every
    // page of it.
    tree.unpreserve(&mut mem, pfn(last), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(half), ord(MAX)).unwrap();
    for p in [half, half + 1, last - 1, last] {
        assert_eq!(
            tree.preserve(&mut mem, pfn(p), ord(0)),
            Err(overlap(p, 0, half, MAX)),
            "{p:#x}"
        );
        assert_eq!(
            tree.find_block(&mem, pfn(p)).unwrap(),
            Some((pfn(half), ord(MAX)))
        );
    }
    // Every order in between, at both ends of the upper half.
    for o in 1..MAX {
        let top = PFN_END - (1u64 << o);
        assert_eq!(
            tree.preserve(&mut mem, pfn(top), ord(o)),
            Err(overlap(top, o, half, MAX))
        );
        assert_eq!(
            tree.preserve(&mut mem, pfn(half), ord(o)),
            Err(overlap(half, o, half, MAX))
        );
    }
    assert_eq!(
        tree.preserve(&mut mem, pfn(half), ord(MAX)),
        Err(Error::AlreadyPreserved {
            pfn: pfn(half),
            order: ord(MAX)
        })
    );
    // A range over the whole space conflicts with the page at 0 first.
    assert_eq!(
        tree.preserve_range(&mut mem, pfn(0), PFN_END),
        Err(overlap(0, MAX, 0, 0))
    );
    let model: Model = [(0, 0), (half - 1, 0), (half, MAX)].into();
    check_state(&tree, &mem, &model);
}

#[test]
fn unpreserve_clears_what_the_summary_knew() {
    let (mut mem, mut tree) = setup();
    let folio = 0x4_0200;
    // The order-9 block's leaf and word are in the summary after this.
    tree.preserve(&mut mem, pfn(folio), ord(9)).unwrap();
    tree.preserve(&mut mem, pfn(0x8_0000), ord(0)).unwrap();
    assert_eq!(
        tree.preserve(&mut mem, pfn(folio + 5), ord(0)),
        Err(overlap(folio + 5, 0, folio, 9))
    );
    // Removing it frees its leaf and tables; the page inside is now free.
    let freed = tree.node_stats().freed;
    tree.unpreserve(&mut mem, pfn(folio), ord(9)).unwrap();
    assert!(tree.node_stats().freed > freed);
    tree.preserve(&mut mem, pfn(folio + 5), ord(0)).unwrap();
    // And the folio now conflicts with that page, found in the word the
    // summary last saw for order 0.
    assert_eq!(
        tree.preserve(&mut mem, pfn(folio), ord(9)),
        Err(overlap(folio, 9, folio + 5, 0))
    );
    assert_eq!(
        tree.preserve(&mut mem, pfn(folio + 4), ord(2)),
        Err(overlap(folio + 4, 2, folio + 5, 0))
    );
    // Round trips through freed and re-allocated nodes, for every order
    // pair: the summary must follow each time.
    tree.unpreserve(&mut mem, pfn(folio + 5), ord(0)).unwrap();
    tree.unpreserve(&mut mem, pfn(0x8_0000), ord(0)).unwrap();
    assert!(tree.is_empty());
    for small in [0u32, 1, 8] {
        for big in [9u32, 12, 30] {
            let base = 0x1_0000_0000u64;
            let inner = base + (1u64 << big) - (1u64 << small);
            tree.preserve(&mut mem, pfn(base), ord(big)).unwrap();
            assert_eq!(
                tree.preserve(&mut mem, pfn(inner), ord(small)),
                Err(overlap(inner, small, base, big))
            );
            tree.unpreserve(&mut mem, pfn(base), ord(big)).unwrap();
            tree.preserve(&mut mem, pfn(inner), ord(small)).unwrap();
            assert_eq!(
                tree.preserve(&mut mem, pfn(base), ord(big)),
                Err(overlap(base, big, inner, small))
            );
            assert!(!tree.is_preserved(&mem, pfn(base), ord(big)).unwrap());
            tree.unpreserve(&mut mem, pfn(inner), ord(small)).unwrap();
            assert_eq!(tree.find_block(&mem, pfn(inner)).unwrap(), None);
        }
    }
    assert_eq!(tree.node_stats().tables, 1);
    assert_eq!(tree.node_stats().leaves, 0);
    assert_eq!(mem.allocated_pages(), 1);
}

/// A same-order block rules a larger order out only where that larger
/// block would also cover it: a neighbour just outside a larger block, in
/// the same leaf word, must not hide the block.
#[test]
fn neighbours_outside_a_larger_block_hide_nothing() {
    for o in [0u32, 3, 40, 46, 47] {
        for span in 1..=7u32 {
            if o + span > 50 {
                continue;
            }
            let (mut mem, mut tree) = setup();
            let big = o + span;
            let base = 1u64 << 50;
            let size = 1u64 << big;
            // Same-order blocks right below and right above the big one
            // (in its leaf word when it covers less than a word).
            for p in [base - (1 << o), base + size] {
                tree.preserve(&mut mem, pfn(p), ord(o)).unwrap();
            }
            tree.preserve(&mut mem, pfn(base), ord(big)).unwrap();
            for p in [base, base + size - (1 << o)] {
                assert_eq!(
                    tree.preserve(&mut mem, pfn(p), ord(o)),
                    Err(overlap(p, o, base, big)),
                    "order {o} in order {big}"
                );
            }
        }
    }
}

#[test]
fn ranges_conflict_at_their_first_and_last_page_only() {
    let (mut mem, mut tree) = setup();
    let (start, n) = (0x10_0003u64, 0x2_0000u64);
    let end = start + n;
    // Blocks just outside both ends, of several orders.
    tree.preserve(&mut mem, pfn(start - 1), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(end), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(0x10_0000), ord(1)).unwrap();
    tree.preserve(&mut mem, pfn(end + 1), ord(0)).unwrap();
    tree.preserve(&mut mem, pfn(0x20_0000), ord(21)).unwrap();
    let outside: Model = [
        (start - 1, 0),
        (end, 0),
        (0x10_0000, 1),
        (end + 1, 0),
        (0x20_0000, 21),
    ]
    .into();
    for (p, o, name) in [(start, 0u32, "first page"), (end - 1, 0, "last page")] {
        tree.preserve(&mut mem, pfn(p), ord(o)).unwrap();
        let mut model = outside.clone();
        model.insert((p, o));
        let want = expect_preserve_range(&mut model.clone(), start, n);
        assert!(want.is_err(), "{name}");
        assert_eq!(tree.preserve_range(&mut mem, pfn(start), n), want, "{name}");
        check_state(&tree, &mem, &model);
        tree.unpreserve(&mut mem, pfn(p), ord(o)).unwrap();
    }
    // Nothing inside: the whole range goes in and comes out again.
    tree.preserve_range(&mut mem, pfn(start), n).unwrap();
    let mut model = outside.clone();
    expect_preserve_range(&mut model, start, n).unwrap();
    check_state(&tree, &mem, &model);
    tree.unpreserve_range(&mut mem, pfn(start), n).unwrap();
    check_state(&tree, &mem, &outside);
    // A range up to the last frame, and one past it.
    tree.preserve_range(&mut mem, pfn(PFN_END - 0x123), 0x123)
        .unwrap();
    assert_eq!(
        tree.preserve_range(&mut mem, pfn(PFN_END - 0x123), 0x124),
        Err(Error::RangeTooLarge {
            start: pfn(PFN_END - 0x123),
            nr_pages: 0x124
        })
    );
    // Its blocks are orders 0, 1, 5 and 8 (the last 256 frames).
    assert_eq!(
        tree.preserve(&mut mem, pfn(PFN_END - 1), ord(0)),
        Err(overlap(PFN_END - 1, 0, PFN_END - 0x100, 8))
    );
}

#[test]
fn orders_sharing_the_zero_prefix_leaf() {
    // Orders 38 and up all live in the leaf under key prefix 0, and orders
    // 47 and up share its word 0.
    let (mut mem, mut tree) = setup();
    let mut model = Model::new();
    let blocks = [
        (0u64, 47u32),
        (1 << 48, 47),
        (3 << 47, 47),
        (1 << 50, 49),
        (3 << 49, 48),
        (1 << 46, 46),
        (1 << 38, 38),
        (0xf << 38, 38),
        (1 << 51, 51),
    ];
    for (p, o) in blocks {
        assert_eq!(
            tree.preserve(&mut mem, pfn(p), ord(o)),
            expect_preserve(&model, p, o),
            "{p:#x} order {o}"
        );
        if expect_preserve(&model, p, o).is_ok() {
            model.insert((p, o));
        }
    }
    check_state(&tree, &mem, &model);
    // Every order from 36 to 51 at a few frames, against the model.
    for o in 36..=MAX {
        for p in [0u64, 1 << 47, 1 << 49, 1 << 50, (1 << 51) - (1 << o)] {
            let p = p & !((1u64 << o) - 1);
            let want = expect_preserve(&model, p, o);
            assert_eq!(
                tree.preserve(&mut mem, pfn(p), ord(o)),
                want,
                "{p:#x} order {o}"
            );
            if want.is_ok() {
                model.insert((p, o));
            }
        }
    }
    check_state(&tree, &mem, &model);
    for &(p, o) in model.clone().iter().rev() {
        tree.unpreserve(&mut mem, pfn(p), ord(o)).unwrap();
        model.remove(&(p, o));
        check_state(&tree, &mem, &model);
    }
}

#[test]
fn freed_nodes_handed_out_again_are_not_mistaken_for_old_ones() {
    // 24 pages: every page freed is soon a node again, for another path.
    let (mut mem, mut tree) = small(24);
    let mut model = Model::new();
    let spots = [0x4_0000u64, 0x4_8000, 0x1_0000_0000, 0x1_0000_8000, 1 << 40];
    for round in 0..20u64 {
        for (i, &spot) in spots.iter().enumerate() {
            let o = ((round + i as u64) % 4) as u32 * 3;
            let p = spot + (round << 12);
            let want = expect_preserve(&model, p, o);
            match tree.preserve(&mut mem, pfn(p), ord(o)) {
                Err(Error::NodeAlloc { .. }) => {}
                got => {
                    assert_eq!(got, want, "round {round} spot {i}");
                    if want.is_ok() {
                        model.insert((p, o));
                    }
                }
            }
            // Queries through the summary of every order present.
            for &(q, qo) in &model {
                assert!(tree.is_preserved(&mem, pfn(q), ord(qo)).unwrap());
                let inner = q + (1u64 << qo) - 1;
                assert_eq!(
                    tree.preserve(&mut mem, pfn(inner), ord(0)),
                    expect_preserve(&model, inner, 0)
                );
            }
        }
        check_state(&tree, &mem, &model);
        // Remove every other block: leaves and tables are freed.
        let drop: Vec<_> = model.iter().copied().step_by(2).collect();
        for (p, o) in drop {
            tree.unpreserve(&mut mem, pfn(p), ord(o)).unwrap();
            model.remove(&(p, o));
        }
        check_state(&tree, &mem, &model);
    }
    assert!(tree.node_stats().freed > 20);
}

#[derive(Clone, Debug)]
enum Op {
    Preserve(u64, u32),
    Unpreserve(u64, u32),
    PreserveRange(u64, u64),
    UnpreserveRange(u64, u64),
    Query(u64, u32),
}

/// Frames around a few spots spread over the whole frame space, both ends
/// included.
fn frame() -> impl Strategy<Value = u64> {
    let spots = [
        0u64,
        1 << 32,
        (1 << 51) - (1 << 18),
        1 << 51,
        PFN_END - (1 << 18),
    ];
    (0usize..spots.len(), 0u64..(1 << 18)).prop_map(move |(s, off)| spots[s] + off)
}

fn order() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..3,
        4 => 3u32..10,
        2 => 10u32..19,
        1 => 19u32..=MAX,
    ]
}

/// An aligned block (misaligned one time in sixteen).
fn block() -> impl Strategy<Value = (u64, u32)> {
    (frame(), order(), 0u32..16).prop_map(|(f, o, mis)| {
        if mis == 0 {
            (f | 1, o.max(1))
        } else {
            (f & !((1u64 << o) - 1), o)
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => block().prop_map(|(p, o)| Op::Preserve(p, o)),
        3 => block().prop_map(|(p, o)| Op::Unpreserve(p, o)),
        2 => (frame(), 1u64..5000).prop_map(|(p, n)| Op::PreserveRange(p, n)),
        1 => (frame(), 1u64..5000).prop_map(|(p, n)| Op::UnpreserveRange(p, n)),
        2 => block().prop_map(|(p, o)| Op::Query(p, o)),
    ]
}

/// The tree ran out of node pages: nothing may have changed.
fn out_of_nodes(tree: &RadixTree, mem: &HostMem, model: &Model, got: &Result<(), Error>) -> bool {
    let oom = matches!(got, Err(Error::NodeAlloc { .. }));
    if oom {
        check_state(tree, mem, model);
    }
    oom
}

fn apply(tree: &mut RadixTree, mem: &mut HostMem, model: &mut Model, op: &Op) {
    match *op {
        Op::Preserve(p, o) => {
            let got = tree.preserve(mem, pfn(p), ord(o));
            if out_of_nodes(tree, mem, model, &got) {
                return;
            }
            let want = expect_preserve(model, p, o);
            assert_eq!(got, want, "{op:?}");
            if want.is_ok() {
                model.insert((p, o));
            }
        }
        Op::Unpreserve(p, o) => {
            let want = expect_unpreserve(model, p, o);
            assert_eq!(tree.unpreserve(mem, pfn(p), ord(o)), want, "{op:?}");
        }
        Op::PreserveRange(p, n) => {
            let got = tree.preserve_range(mem, pfn(p), n);
            if out_of_nodes(tree, mem, model, &got) {
                return;
            }
            let want = expect_preserve_range(model, p, n);
            assert_eq!(got, want, "{op:?}");
        }
        Op::UnpreserveRange(p, n) => {
            let got = tree.unpreserve_range(mem, pfn(p), n);
            if p + n > PFN_END {
                assert!(matches!(got, Err(Error::RangeTooLarge { .. })), "{op:?}");
                return;
            }
            let blocks = spec_blocks(p, n);
            match blocks.iter().find(|b| !model.contains(b)) {
                Some(&(q, qo)) => assert_eq!(
                    got,
                    Err(Error::NotPreserved {
                        pfn: pfn(q),
                        order: ord(qo)
                    }),
                    "{op:?}"
                ),
                None => {
                    assert_eq!(got, Ok(()), "{op:?}");
                    for b in blocks {
                        model.remove(&b);
                    }
                }
            }
        }
        Op::Query(p, o) => {
            let aligned = p & !((1u64 << o) - 1);
            assert_eq!(
                tree.is_preserved(mem, pfn(aligned), ord(o)).unwrap(),
                model.contains(&(aligned, o))
            );
            assert_eq!(
                tree.find_block(mem, pfn(p)).unwrap(),
                model_find(model, p).map(|(q, qo)| (pfn(q), ord(qo))),
                "find {p:#x}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random operations over the whole frame space, every error exact,
    /// in a memory small enough that freed node pages are soon reused (and
    /// allocations fail at times: nothing may change then); then
    /// everything is removed and the same operations run again on the same
    /// tree, whose nodes (and summary) were all freed meanwhile.
    #[test]
    fn summary_matches_the_model(
        ops in proptest::collection::vec(op(), 1..120),
        pages in 40u64..200,
        seed in any::<u64>(),
    ) {
        let (mut mem, mut tree) = small(pages);
        for round in 0..2 {
            let mut model = Model::new();
            for (i, op) in ops.iter().enumerate() {
                apply(&mut tree, &mut mem, &mut model, op);
                if i % 8 == 7 {
                    check_state(&tree, &mem, &model);
                }
            }
            check_state(&tree, &mem, &model);
            // Drain in a scrambled order.
            let mut rest: Vec<_> = model.iter().copied().collect();
            let mut s = seed | 1;
            while !rest.is_empty() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                let (p, o) = rest.swap_remove((s % rest.len() as u64) as usize);
                tree.unpreserve(&mut mem, pfn(p), ord(o)).unwrap();
                model.remove(&(p, o));
            }
            check_state(&tree, &mem, &model);
            prop_assert!(tree.is_empty(), "round {}", round);
        }
    }
}
