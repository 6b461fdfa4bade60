//! Helpers shared by the integration tests: an arena, raw sub-blobs written
//! with vm-fdt (to build what this crate's writer would refuse), and an
//! observable snapshot of the tree and the arena.

#![allow(dead_code)]

use core::ops::ControlFlow;

use kho_mem::{HostMem, PhysAddr};
use kho_radix::{NodeStats, RadixTree};
use vm_fdt::FdtWriter;

pub const BASE: u64 = 0x4000_0000;
pub const PAGE: u64 = 4096;

/// An arena of 32 MiB at [`BASE`] and an empty tree in it.
pub fn setup() -> (HostMem, RadixTree) {
    let mut mem = HostMem::new(PhysAddr::new(BASE), 32 << 20).unwrap();
    let tree = RadixTree::new(&mut mem).unwrap();
    (mem, tree)
}

/// The tree's blocks in walk order, its node counts (without the cumulative
/// `freed`) and the pages the arena has handed out.
pub type State = (Vec<(u64, u32)>, NodeStats, u64);

pub fn state(tree: &RadixTree, mem: &HostMem) -> State {
    let mut blocks = Vec::new();
    let flow = tree
        .walk(mem, |phys, order| {
            blocks.push((phys.as_u64(), order.get()));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert!(flow.is_continue());
    let stats = NodeStats {
        freed: 0,
        ..tree.node_stats()
    };
    (blocks, stats, mem.allocated_pages())
}

/// One property of a raw node.
pub enum Prop<'a> {
    Str(&'a str, &'a str),
    Bytes(&'a str, &'a [u8]),
    U64(&'a str, u64),
}

/// A raw sub-blob: root properties, then children `(name, props)`.
pub fn raw(root: &[Prop<'_>], children: &[(&str, &[Prop<'_>])]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    props(&mut w, root);
    for (name, p) in children {
        let n = w.begin_node(name).unwrap();
        props(&mut w, p);
        w.end_node(n).unwrap();
    }
    w.end_node(r).unwrap();
    w.finish().unwrap()
}

fn props(w: &mut FdtWriter, ps: &[Prop<'_>]) {
    for p in ps {
        match p {
            Prop::Str(n, v) => w.property_string(n, v).unwrap(),
            Prop::Bytes(n, v) => w.property(n, v).unwrap(),
            Prop::U64(n, v) => w.property(n, &v.to_le_bytes()).unwrap(),
        }
    }
}

/// The properties of a valid region node.
pub fn region(start: u64, size: u64) -> [Prop<'static>; 3] {
    [
        Prop::Str("compatible", "reserve-mem-v1"),
        Prop::U64("start", start),
        Prop::U64("size", size),
    ]
}

/// The root properties of a valid sub-blob.
pub const ROOT: [Prop<'static>; 1] = [Prop::Str("compatible", "memblock-v1")];
