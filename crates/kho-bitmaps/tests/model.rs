//! Model-based property tests: random preserve/unpreserve sequences of mixed
//! orders and ranges (some with allocation failing) against a `BTreeSet`
//! model, for both bitmap sizes; then serialize, validate and walk back as
//! the next kernel does. The walk must return exactly the model, in list
//! order, and the tracker's bitmaps and chunks must be the minimum the
//! model needs.

#![cfg(feature = "alloc")]

mod common;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use common::*;
use kho_bitmaps::{BitmapSize, Error, IncomingMap, Tracker};
use kho_mem::{HostMem, PhysAddr, PhysRange};
use proptest::prelude::*;

/// Two RAM regions 64 GiB apart.
const LOW: u64 = 0x4000_0000;
const HIGH: u64 = 0x10_4000_0000;
const REGION: u64 = 256 << 20;

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

/// A frame near one of a few hot spots 16 MiB apart (a 512-byte order-0
/// bitmap's span), in either region, leaving room for the largest block
/// or range generated.
fn frame() -> impl Strategy<Value = u64> {
    (any::<bool>(), 0u64..6, 0u64..12_000).prop_map(|(high, spot, off)| {
        let base = if high { HIGH } else { LOW } / PAGE;
        base + spot * 4096 + off
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

/// An operation, and whether every allocation fails while it runs.
fn step() -> impl Strategy<Value = (Op, bool)> {
    (op(), 0u32..8).prop_map(|(op, f)| (op, f == 0))
}

/// The model: the preserved blocks as `(pfn, order)`.
type Model = BTreeSet<(u64, u32)>;

/// The bitmaps (order, index) a model needs, from the spec's geometry.
fn bitmaps(model: &Model, size: BitmapSize) -> BTreeSet<(u32, u64)> {
    model
        .iter()
        .map(|&(p, o)| spec_bitmap_of(size, p, o))
        .collect()
}

/// Chunks a model needs: one per 255 bitmaps of each order.
fn chunks(model: &Model, size: BitmapSize) -> usize {
    let per_order = bitmaps(model, size).into_iter().fold(
        std::collections::BTreeMap::<u32, usize>::new(),
        |mut m, (o, _)| {
            *m.entry(o).or_default() += 1;
            m
        },
    );
    per_order.values().map(|n| n.div_ceil(255)).sum()
}

fn alloc_failed() -> Error {
    Error::Alloc {
        source: kho_mem::Error::OutOfMemory { order: 0 },
    }
}

/// What the model says one block preserve does.
fn model_preserve(
    model: &Model,
    size: BitmapSize,
    p: u64,
    o: u32,
    alloc: bool,
) -> Result<(), Error> {
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
    if !alloc && !bitmaps(model, size).contains(&spec_bitmap_of(size, p, o)) {
        return Err(alloc_failed());
    }
    Ok(())
}

/// Apply `op` to the model; returns the error the tracker must report.
fn model_apply(model: &mut Model, size: BitmapSize, op: &Op, alloc: bool) -> Result<(), Error> {
    let max = size.max_order();
    match *op {
        Op::Preserve(p, o) => {
            model_preserve(model, size, p, o, alloc)?;
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
            for (p, o) in spec_blocks(start, n, max) {
                model_preserve(&next, size, p, o, alloc)?;
                next.insert((p, o));
            }
            *model = next;
        }
        Op::UnpreserveRange(start, n) => {
            let blocks = spec_blocks(start, n, max);
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

fn tracker_apply(t: &mut Tracker, mem: &mut HostMem, op: &Op) -> Result<(), Error> {
    match *op {
        Op::Preserve(p, o) => t.preserve(mem, pfn(p), ord(o)),
        Op::Unpreserve(p, o) => t.unpreserve(mem, pfn(p), ord(o)),
        Op::PreserveRange(p, n) => t.preserve_range(mem, pfn(p), n),
        Op::UnpreserveRange(p, n) => t.unpreserve_range(mem, pfn(p), n),
    }
}

fn round_trip(size: BitmapSize, steps: &[(Op, bool)]) -> Result<(), TestCaseError> {
    let mut mem = two_regions();
    let mut t = Tracker::new(size);
    let mut model = Model::new();
    for (i, (op, fail)) in steps.iter().enumerate() {
        let expect = model_apply(&mut model, size, op, !fail);
        mem.fail_allocations_after(fail.then_some(0));
        let got = tracker_apply(&mut t, &mut mem, op);
        mem.fail_allocations_after(None);
        prop_assert_eq!(got, expect, "step {}: {:?}", i, op);
        prop_assert_eq!(t.blocks(), model.len() as u64);
    }
    // The minimum: one bitmap page per (order, index) in use, nothing else.
    let want_bitmaps = bitmaps(&model, size).len();
    prop_assert_eq!(t.bitmaps(), want_bitmaps);
    prop_assert_eq!(mem.allocated_pages(), want_bitmaps as u64);
    prop_assert_eq!(t.chunks_needed(), chunks(&model, size));
    prop_assert_eq!(
        t.pages(),
        model.iter().map(|&(_, o)| 1u64 << o).sum::<u64>()
    );

    // Finalize, then read back as the next kernel.
    let first = t.serialize(&mut mem).unwrap();
    prop_assert_eq!(
        mem.allocated_pages(),
        (want_bitmaps + chunks(&model, size)) as u64
    );
    let mut buf = vec![0u64; IncomingMap::words_for(want_bitmaps)];
    let map = IncomingMap::validate(&mem, first, size, &mut buf).unwrap();
    prop_assert_eq!(map.chunks(), chunks(&model, size));
    prop_assert_eq!(map.bitmaps(), want_bitmaps);
    prop_assert_eq!(map.blocks(), model.len() as u64);
    let mut walked = Vec::new();
    let _ = map
        .walk(&mem, |phys, order| {
            walked.push((phys.as_u64(), order.get()));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    prop_assert_eq!(walked, model_walk(&model));
    prop_assert_eq!(ranges_all(&mem, first, size).unwrap(), model_ranges(&model));
    // Read with the other bitmap size, the map is wrong or refused, never
    // a panic.
    let other = match size {
        BitmapSize::Page => BitmapSize::Bytes512,
        BitmapSize::Bytes512 => BitmapSize::Page,
    };
    let _ = walk_all(&mem, first, other);

    // Abort gives the chunks back, destroy everything.
    t.abort(&mut mem).unwrap();
    prop_assert_eq!(mem.allocated_pages(), want_bitmaps as u64);
    t.destroy(&mut mem).unwrap();
    prop_assert_eq!(mem.allocated_pages(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn page_bitmaps_round_trip(steps in prop::collection::vec(step(), 1..60)) {
        round_trip(BitmapSize::Page, &steps)?;
    }

    #[test]
    fn bytes512_bitmaps_round_trip(steps in prop::collection::vec(step(), 1..60)) {
        round_trip(BitmapSize::Bytes512, &steps)?;
    }
}
