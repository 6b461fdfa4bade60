//! Model-based round trips: random preserve/unpreserve sequences over a
//! few nodes, checked against a `BTreeMap` model, serialized (the active
//! phase), read back as untrusted input, and left again.

mod common;

use std::collections::BTreeMap;

use common::*;
use kho_ranges::{Error, MemFlags, Tracker};
use proptest::prelude::*;

const NODES: [&str; 4] = ["", "a", "a/b", "c@1"];

#[derive(Clone, Debug)]
enum Op {
    /// Preserve pages [page, page + pages) in node, NOINIT or not.
    Preserve(usize, u64, u64, bool),
    /// Unpreserve the i-th (mod count) model range.
    Unpreserve(usize),
    /// Serialize, read back, leave the active phase.
    RoundTrip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..NODES.len(), 0u64..512, 1u64..8, any::<bool>())
            .prop_map(|(n, p, l, f)| Op::Preserve(n, p, l, f)),
        2 => any::<usize>().prop_map(Op::Unpreserve),
        1 => Just(Op::RoundTrip),
    ]
}

/// The model: start → (len, flags, node).
type Model = BTreeMap<u64, (u64, MemFlags, usize)>;

fn round_trip(t: &mut Tracker, model: &Model) {
    let out = t.serialize().unwrap().clone();
    let mut mem = mem();
    let h = place_serialized(&mut mem, &out);
    let got: Vec<_> = read(&mem, &h)
        .unwrap()
        .iter()
        .map(|m| (m.start().as_u64(), m.len(), m.flags()))
        .collect();
    let want: Vec<_> = model.iter().map(|(&s, &(l, f, _))| (s, l, f)).collect();
    assert_eq!(got, want);
    t.leave_active().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn tracker_matches_model(ops in proptest::collection::vec(op(), 1..64)) {
        let mut t = Tracker::new(scratch()).unwrap();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Preserve(node, page, pages, noinit) => {
                    let (start, len) = (FREE + page * 0x1000, pages * 0x1000);
                    let flags = if noinit { MemFlags::NOINIT } else { MemFlags::NONE };
                    let overlaps = model
                        .iter()
                        .any(|(&s, &(l, _, _))| s < start + len && start < s + l);
                    let res = t.preserve(NODES[node], r(start, len), flags);
                    if overlaps {
                        prop_assert!(matches!(res, Err(Error::Overlap { .. })), "{res:?}");
                    } else {
                        prop_assert_eq!(res, Ok(()));
                        model.insert(start, (len, flags, node));
                    }
                }
                Op::Unpreserve(i) if !model.is_empty() => {
                    let (&start, &(len, _, node)) = model.iter().nth(i % model.len()).unwrap();
                    // The wrong node first: refused, nothing changes.
                    let other = NODES[(node + 1) % NODES.len()];
                    prop_assert_eq!(
                        t.unpreserve(other, r(start, len)),
                        Err(Error::NotPreserved { range: r(start, len) })
                    );
                    prop_assert_eq!(t.unpreserve(NODES[node], r(start, len)), Ok(()));
                    model.remove(&start);
                }
                Op::Unpreserve(_) => {}
                Op::RoundTrip => round_trip(&mut t, &model),
            }
            prop_assert_eq!(t.ranges(), model.len());
        }
        round_trip(&mut t, &model);
    }
}
