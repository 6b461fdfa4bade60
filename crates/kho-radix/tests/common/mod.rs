//! Helpers shared by the integration tests: typed constructors, a model of
//! the preserved set written from the spec, and walk collectors.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use kho_mem::{HostMem, Order, Pfn, PhysAddr, PhysMem};
use kho_radix::{Error, RadixTree, VisitedSet};

pub const PAGE: u64 = 4096;

pub fn pfn(p: u64) -> Pfn {
    Pfn::try_new(p).unwrap()
}

pub fn ord(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

pub fn phys_pfn(phys: u64) -> Pfn {
    Pfn::try_from_phys(PhysAddr::new(phys)).unwrap()
}

/// The spec's key (§3.3), written out rather than taken from kho-abi:
/// the order bit at 52 - order, then the frame number shifted by the order.
pub fn spec_key(pfn: u64, order: u32) -> u64 {
    (1u64 << (52 - order)) | (pfn >> order)
}

/// Minimum nodes for a set (spec §3.4 split: L5 = 59:51, L4 = 50:42,
/// L3 = 41:33, L2 = 32:24, L1 = 23:15, leaf bit = 14:0): the root, one
/// table per distinct prefix above each lower table level, one leaf per
/// distinct prefix above the leaf bits.
pub fn min_nodes(model: &BTreeSet<(u64, u32)>) -> (u64, u64) {
    let keys: Vec<u64> = model.iter().map(|&(p, o)| spec_key(p, o)).collect();
    let distinct = |shift: u32| {
        keys.iter()
            .map(|k| k >> shift)
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    // A level-4 table is selected by bits 59:51, level 3 by 59:42, ...
    let tables = 1 + distinct(51) + distinct(42) + distinct(33) + distinct(24);
    let leaves = distinct(15);
    (tables, leaves)
}

/// Blocks of the model in walk order: ascending key.
pub fn model_walk(model: &BTreeSet<(u64, u32)>) -> Vec<(u64, u32)> {
    let mut by_key: Vec<(u64, u64, u32)> = model
        .iter()
        .map(|&(p, o)| (spec_key(p, o), p * PAGE, o))
        .collect();
    by_key.sort();
    by_key.into_iter().map(|(_, phys, o)| (phys, o)).collect()
}

/// Runs of the model: consecutive blocks (in walk order) of one order that
/// touch in memory, as `(start, size, order)`.
pub fn model_ranges(model: &BTreeSet<(u64, u32)>) -> Vec<(u64, u64, u32)> {
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    for (phys, o) in model_walk(model) {
        let size = PAGE << o;
        match out.last_mut() {
            Some(last) if last.2 == o && last.0 + last.1 == phys => last.1 += size,
            _ => out.push((phys, size, o)),
        }
    }
    out
}

/// The spec's page-range decomposition (§3.8), written independently.
pub fn spec_blocks(start: u64, n: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let (mut p, end) = (start, start + n);
    while p < end {
        let align = if p == 0 { 63 } else { p.trailing_zeros() };
        let fit = 63 - (end - p).leading_zeros();
        let o = align.min(fit).min(51);
        out.push((p, o));
        p += 1 << o;
    }
    out
}

/// Untrusted walk, as the next kernel does it.
pub fn walk_all<M: PhysMem>(mem: &M, root: PhysAddr) -> Result<Vec<(u64, u32)>, Error> {
    let mut buf = vec![0u64; VisitedSet::words_for(4096)];
    let mut visited = VisitedSet::new(&mut buf);
    let mut out = Vec::new();
    let flow = kho_radix::walk(mem, root, &mut visited, |phys, order| {
        out.push((phys.as_u64(), order.get()));
        ControlFlow::<()>::Continue(())
    })?;
    assert!(flow.is_continue());
    Ok(out)
}

/// Untrusted range iterator, collected.
pub fn ranges_all<M: PhysMem>(mem: &M, root: PhysAddr) -> Result<Vec<(u64, u64, u32)>, Error> {
    let mut buf = vec![0u64; VisitedSet::words_for(4096)];
    let mut visited = VisitedSet::new(&mut buf);
    kho_radix::ranges(mem, root, &mut visited)
        .map(|r| {
            r.map(|r| {
                (
                    r.range().start().as_u64(),
                    r.range().size(),
                    r.order().get(),
                )
            })
        })
        .collect()
}

/// The tree's own (trusted) walk.
pub fn tree_walk<M: PhysMem>(tree: &RadixTree, mem: &M) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let _ = tree
        .walk(mem, |phys, order| {
            out.push((phys.as_u64(), order.get()));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    out
}

/// All non-zero u64s of the given pages, by address.
pub fn nonzero_words<M: PhysMem>(mem: &M, pages: &[u64]) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for &page in pages {
        let mut words = [0u64; 512];
        mem.read_u64s(PhysAddr::new(page), &mut words).unwrap();
        for (i, &w) in words.iter().enumerate() {
            if w != 0 {
                out.insert(page + 8 * i as u64, w);
            }
        }
    }
    out
}

/// Follow the spec's indices from the root down to `level` (0 = leaf) for
/// `key`, reading raw entries; returns the node address.
pub fn node_on_path<M: PhysMem>(mem: &M, root: u64, key: u64, level: u32) -> u64 {
    let shifts = [(5, 51), (4, 42), (3, 33), (2, 24), (1, 15)];
    let mut node = root;
    for (l, shift) in shifts {
        if l == level {
            return node;
        }
        let index = (key >> shift) & 511;
        node = mem.read_u64(PhysAddr::new(node + 8 * index)).unwrap();
        assert_ne!(node, 0, "no level-{} node on the path", l - 1);
    }
    node
}

pub fn host(base: u64, size: u64) -> HostMem {
    HostMem::new(PhysAddr::new(base), size).unwrap()
}
