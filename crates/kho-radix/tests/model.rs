//! Model-based property tests: random preserve/unpreserve sequences of mixed
//! orders and ranges (with injected allocation failures) against a
//! `BTreeSet` model; the walk must return exactly the model and the node
//! accounting must equal the recomputed minimum.

mod common;

use std::collections::BTreeSet;

use common::*;
use kho_mem::{HostMem, PhysAddr, PhysRange};
use kho_radix::{Error, RadixTree};
use proptest::prelude::*;

/// Two RAM regions 64 GiB apart, so order-0 keys use two level-1 tables.
const LOW: u64 = 0x4000_0000;
const HIGH: u64 = 0x10_4000_0000;
const REGION: u64 = 512 << 20;

fn two_regions() -> HostMem {
    HostMem::with_ram(&[
        PhysRange::try_new(PhysAddr::new(LOW), REGION).unwrap(),
        PhysRange::try_new(PhysAddr::new(HIGH), REGION).unwrap(),
    ])
    .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Preserve(u64, u32),
    Unpreserve(u64, u32),
    PreserveRange(u64, u64),
    UnpreserveRange(u64, u64),
}

/// A frame near one of a few hot spots (so operations collide), in either
/// region, leaving room for the largest block or range generated.
fn frame() -> impl Strategy<Value = u64> {
    (any::<bool>(), 0u64..6, 0u64..40_000).prop_map(|(high, spot, off)| {
        let base = if high { HIGH } else { LOW } / PAGE;
        // Spots 16 MiB apart; a leaf of order 0 covers 128 MiB.
        base + spot * 4096 + (off % 12_000)
    })
}

fn order() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(0u32), 2 => 1u32..4, 1 => 4u32..13]
}

/// A block, aligned to its order except one time in eight.
fn block() -> impl Strategy<Value = (u64, u32)> {
    (frame(), order(), 0u32..8).prop_map(|(f, o, mis)| {
        let p = if mis == 0 { f } else { f & !((1u64 << o) - 1) };
        (p, o)
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => block().prop_map(|(p, o)| Op::Preserve(p, o)),
        3 => block().prop_map(|(p, o)| Op::Unpreserve(p, o)),
        2 => (frame(), 1u64..3000).prop_map(|(p, n)| Op::PreserveRange(p, n)),
        1 => (frame(), 1u64..3000).prop_map(|(p, n)| Op::UnpreserveRange(p, n)),
    ]
}

/// What the model says one block preserve does.
fn model_preserve(model: &BTreeSet<(u64, u32)>, p: u64, o: u32) -> Result<(), Error> {
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
    if let Some(&(q, qo)) = model
        .iter()
        .find(|&&(q, qo)| q < p + (1 << o) && p < q + (1 << qo))
    {
        return Err(Error::Overlap {
            pfn: pfn(p),
            order: ord(o),
            existing_pfn: pfn(q),
            existing_order: ord(qo),
        });
    }
    Ok(())
}

/// Apply `op` to the model; returns the error the tree must report.
fn model_apply(model: &mut BTreeSet<(u64, u32)>, op: &Op) -> Result<(), Error> {
    match *op {
        Op::Preserve(p, o) => {
            model_preserve(model, p, o)?;
            model.insert((p, o));
        }
        Op::Unpreserve(p, o) => {
            if p % (1 << o) != 0 {
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
        }
        Op::PreserveRange(start, n) => {
            let mut next = model.clone();
            for (p, o) in spec_blocks(start, n) {
                model_preserve(&next, p, o)?;
                next.insert((p, o));
            }
            *model = next;
        }
        Op::UnpreserveRange(start, n) => {
            let blocks = spec_blocks(start, n);
            if let Some(&(p, o)) = blocks.iter().find(|b| !model.contains(b)) {
                return Err(Error::NotPreserved {
                    pfn: pfn(p),
                    order: ord(o),
                });
            }
            for b in blocks {
                model.remove(&b);
            }
        }
    }
    Ok(())
}

fn tree_apply(tree: &mut RadixTree, mem: &mut HostMem, op: &Op) -> Result<(), Error> {
    match *op {
        Op::Preserve(p, o) => tree.preserve(mem, pfn(p), ord(o)),
        Op::Unpreserve(p, o) => tree.unpreserve(mem, pfn(p), ord(o)),
        Op::PreserveRange(p, n) => tree.preserve_range(mem, pfn(p), n),
        Op::UnpreserveRange(p, n) => tree.unpreserve_range(mem, pfn(p), n),
    }
}

/// Overlap errors may name any overlapping block; everything else exactly.
fn same_outcome(
    got: &Result<(), Error>,
    want: &Result<(), Error>,
    model: &BTreeSet<(u64, u32)>,
) -> bool {
    match (got, want) {
        (
            Err(Error::Overlap {
                pfn: p,
                order: o,
                existing_pfn,
                existing_order,
            }),
            Err(Error::Overlap {
                pfn: wp, order: wo, ..
            }),
        ) => {
            let (q, qo) = (existing_pfn.as_u64(), existing_order.get());
            let (p, o) = (p.as_u64(), o.get());
            model.contains(&(q, qo))
                && q < p + (1 << o)
                && p < q + (1 << qo)
                && (p, o) == (wp.as_u64(), wo.get())
        }
        _ => got == want,
    }
}

fn check_accounting(
    tree: &RadixTree,
    mem: &HostMem,
    model: &BTreeSet<(u64, u32)>,
) -> Result<(), TestCaseError> {
    let (tables, leaves) = min_nodes(model);
    let stats = tree.node_stats();
    prop_assert_eq!((stats.tables, stats.leaves), (tables, leaves));
    prop_assert_eq!(stats.bytes, (tables + leaves) * PAGE);
    prop_assert_eq!(mem.allocated_pages(), tables + leaves);
    prop_assert_eq!(tree.preserved_blocks(), model.len() as u64);
    prop_assert_eq!(
        tree.preserved_pages(),
        model.iter().map(|&(_, o)| 1u64 << o).sum::<u64>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_model(
        ops in proptest::collection::vec((op(), prop_oneof![6 => Just(None), 1 => (0u64..5).prop_map(Some)]), 1..70),
        drain_seed in any::<u64>(),
    ) {
        let mut mem = two_regions();
        let mut tree = RadixTree::new(&mut mem).unwrap();
        let mut model = BTreeSet::new();
        for (i, (op, fail_after)) in ops.iter().enumerate() {
            let before = model.clone();
            let want = model_apply(&mut model, op);
            mem.fail_allocations_after(*fail_after);
            let got = tree_apply(&mut tree, &mut mem, op);
            mem.fail_allocations_after(None);
            if matches!(got, Err(Error::NodeAlloc { .. })) {
                // Allocation failure (possibly before a later block of a
                // range would have failed otherwise): the tree is unchanged.
                prop_assert!(fail_after.is_some(), "op {}: unexpected {:?}", i, got);
                model = before;
            } else {
                prop_assert!(same_outcome(&got, &want, &before), "op {} {:?}: got {:?}, model says {:?}", i, op, got, want);
            }
            check_accounting(&tree, &mem, &model)?;
            if i % 16 == 15 {
                prop_assert_eq!(walk_all(&mem, tree.root()).unwrap(), model_walk(&model));
            }
        }
        prop_assert_eq!(walk_all(&mem, tree.root()).unwrap(), model_walk(&model));
        prop_assert_eq!(tree_walk(&tree, &mem), model_walk(&model));
        prop_assert_eq!(ranges_all(&mem, tree.root()).unwrap(), model_ranges(&model));
        for &(p, o) in &model {
            prop_assert!(tree.is_preserved(&mem, pfn(p), ord(o)).unwrap());
            let inside = p + drain_seed % (1 << o);
            prop_assert_eq!(tree.find_block(&mem, pfn(inside)).unwrap(), Some((pfn(p), ord(o))));
        }

        // Drain in a scrambled order: every node but the root is freed.
        let mut rest: Vec<_> = model.iter().copied().collect();
        let mut seed = drain_seed | 1;
        while !rest.is_empty() {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            let (p, o) = rest.swap_remove((seed % rest.len() as u64) as usize);
            tree.unpreserve(&mut mem, pfn(p), ord(o)).unwrap();
            model.remove(&(p, o));
            check_accounting(&tree, &mem, &model)?;
        }
        prop_assert!(tree.is_empty());
        let root = tree.root().as_u64();
        prop_assert_eq!(nonzero_words(&mem, &[root]).len(), 0);
        tree.destroy(&mut mem).unwrap();
        prop_assert_eq!(mem.allocated_pages(), 0);
    }
}
