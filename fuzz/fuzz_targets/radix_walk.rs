//! Fuzz target: build a real radix tree, corrupt bytes of memory anywhere
//! (node pages included), then walk it as untrusted input. The walk must
//! end with blocks or a named error, never a panic or a hang.
#![no_main]

#[path = "common.rs"]
mod common;

use core::ops::ControlFlow;

use kho_mem::{Order, Pfn, PhysAddr, PhysMem};
use kho_radix::{RadixTree, VisitedSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut mem = common::arena(&[]);
    let Ok(mut tree) = RadixTree::new(&mut mem) else {
        return;
    };
    // First half: preserve operations, 3 bytes each (page index, order).
    let (ops, damage) = data.split_at(data.len() / 2);
    for op in ops.chunks_exact(3) {
        let page = u64::from(u16::from_le_bytes([op[0], op[1]])) % (common::RAM / 4096);
        let Ok(order) = Order::try_new(u32::from(op[2] % 5)) else {
            continue;
        };
        let pfn = (common::BASE / 4096 + page) & !(order.pages() - 1);
        if let Ok(pfn) = Pfn::try_new(pfn) {
            let _ = tree.preserve(&mut mem, pfn, order);
        }
    }
    // Second half: byte writes anywhere in RAM, 3 bytes each (offset, value).
    for hit in damage.chunks_exact(3) {
        let off = u64::from(u16::from_le_bytes([hit[0], hit[1]])) * 4 % common::RAM;
        let _ = mem.write(PhysAddr::new(common::BASE + off), &[hit[2]]);
    }
    let mut buf = [0u64; VisitedSet::words_for(512)];
    let _ = kho_radix::walk(&mem, tree.root(), &mut VisitedSet::new(&mut buf), |_, _| {
        ControlFlow::<()>::Continue(())
    });
    for run in kho_radix::ranges(&mem, tree.root(), &mut VisitedSet::new(&mut buf)) {
        if run.is_err() {
            break;
        }
    }
});
