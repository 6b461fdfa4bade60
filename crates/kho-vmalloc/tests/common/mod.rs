//! Helpers shared by the integration tests: arenas, scattered areas, and an
//! observable snapshot of everything a preserve/unpreserve may change.

#![allow(dead_code)]

use core::ops::ControlFlow;

use kho_abi::vmalloc::CHUNK_ENTRIES;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
use kho_radix::{NodeStats, RadixTree};
use kho_vmalloc::VmallocDescriptor;

pub const BASE: u64 = 0x4000_0000;
pub const PAGE: u64 = 4096;

/// An arena of `mib` MiB at [`BASE`] and an empty tree in it.
pub fn setup(mib: u64) -> (HostMem, RadixTree) {
    let mut mem = HostMem::new(PhysAddr::new(BASE), mib << 20).unwrap();
    let tree = RadixTree::new(&mut mem).unwrap();
    (mem, tree)
}

/// `n` blocks of `order` allocated from `mem`, in a scrambled (but
/// deterministic) order so the area is really scattered.
pub fn scattered(mem: &mut HostMem, n: usize, order: Order) -> Vec<PhysAddr> {
    let mut blocks: Vec<PhysAddr> = (0..n).map(|_| mem.alloc_pages(order).unwrap()).collect();
    // Fisher-Yates with a fixed LCG.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..blocks.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (x >> 33) as usize % (i + 1);
        blocks.swap(i, j);
    }
    blocks
}

/// Address of slot `slot` in the chunk at `chunk`.
pub fn slot(chunk: PhysAddr, slot: usize) -> PhysAddr {
    assert!(slot < CHUNK_ENTRIES);
    PhysAddr::new(chunk.as_u64() + 8 + 8 * slot as u64)
}

/// The chunk addresses of a chain, following `next` naively (test data only).
pub fn chunks(mem: &HostMem, desc: &VmallocDescriptor) -> Vec<PhysAddr> {
    let mut out = Vec::new();
    let mut at = desc.first.get();
    while at != 0 {
        out.push(PhysAddr::new(at));
        at = mem.read_u64(PhysAddr::new(at)).unwrap();
        assert!(out.len() < 1000, "runaway chain");
    }
    out
}

/// Everything a preserve/unpreserve may change: the tree's blocks in walk
/// order, its node counts (without the cumulative `freed`) and the pages the
/// arena has handed out.
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

/// Whether `tree` holds exactly the block `(phys, order)`.
pub fn preserved(tree: &RadixTree, mem: &HostMem, phys: PhysAddr, order: Order) -> bool {
    tree.is_preserved(mem, phys.pfn_floor(), order).unwrap()
}

/// An order from a number.
pub fn order(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

/// A `PhysMem` that claims every address is RAM (nodes and chunks still come
/// from the arena): lets a test reach limits that need terabytes of blocks.
pub struct AllRam(pub HostMem);

impl PhysMem for AllRam {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        self.0.read(addr, buf)
    }
    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        self.0.write(addr, data)
    }
    fn is_ram(&self, _addr: PhysAddr, _len: u64) -> bool {
        true
    }
    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        self.0.alloc_pages(order)
    }
    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> kho_mem::Result<()> {
        self.0.free_pages(addr, order)
    }
}
