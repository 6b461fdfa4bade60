//! Fuzz target: adopt a (possibly corrupted) tree with `IncomingTree`, then
//! restore from it while memory keeps changing underneath. Every answer
//! must be a value or a named error, never a panic or a hang, and a block
//! can be taken at most once.
#![no_main]

#[path = "common.rs"]
mod common;

use core::ops::ControlFlow;

use kho_mem::{Order, Pfn, PhysAddr, PhysMem};
use kho_radix::{IncomingTree, RadixTree, VisitedSet};
use libfuzzer_sys::fuzz_target;

/// A block from 3 fuzz bytes: a page of the arena and an order below 5.
fn block(op: &[u8]) -> Option<(Pfn, Order)> {
    let page = u64::from(u16::from_le_bytes([op[0], op[1]])) % (common::RAM / 4096);
    let order = Order::try_new(u32::from(op[2] % 5)).ok()?;
    let pfn = (common::BASE / 4096 + page) & !(order.pages() - 1);
    Some((Pfn::try_new(pfn).ok()?, order))
}

fuzz_target!(|data: &[u8]| {
    let mut mem = common::arena(&[]);
    let Ok(mut tree) = RadixTree::new(&mut mem) else {
        return;
    };
    // Thirds: preserve operations, damage before the walk, then restore
    // operations (4 bytes: a block, and a kind: take, ask, or damage).
    let (ops, rest) = data.split_at(data.len() / 3);
    let (damage, restores) = rest.split_at(rest.len() / 2);
    for op in ops.chunks_exact(3) {
        if let Some((pfn, order)) = block(op) {
            let _ = tree.preserve(&mut mem, pfn, order);
        }
    }
    for hit in damage.chunks_exact(3) {
        let off = u64::from(u16::from_le_bytes([hit[0], hit[1]])) * 4 % common::RAM;
        let _ = mem.write(PhysAddr::new(common::BASE + off), &[hit[2]]);
    }
    let mut buf = [0u64; VisitedSet::words_for(512)];
    let Ok(ControlFlow::Continue(mut incoming)) =
        IncomingTree::walk(&mem, tree.root(), &mut VisitedSet::new(&mut buf), |_, _| {
            ControlFlow::<()>::Continue(())
        })
    else {
        return;
    };
    let walked = incoming.remaining_blocks();
    for op in restores.chunks_exact(4) {
        let Some((pfn, order)) = block(op) else {
            continue;
        };
        match op[3] % 4 {
            0 | 1 => {
                if incoming.take(&mut mem, pfn, order).is_ok() {
                    // Taken once: never again.
                    assert!(incoming.take(&mut mem, pfn, order).is_err());
                }
            }
            2 => {
                let _ = incoming.contains(&mem, pfn, order);
                let _ = incoming.find_block(&mem, pfn);
            }
            _ => {
                // Memory changes after the walk (a node page reused too early).
                let at = PhysAddr::new(pfn.as_u64() * 4096 + u64::from(op[2]) * 8);
                let _ = mem.write_u64(at, u64::from_le_bytes([op[0]; 8]));
            }
        }
    }
    // Counts only go down (memory damage may set bits the walk never saw).
    assert!(incoming.remaining_blocks() <= walked);
    for run in incoming.remaining(&mem, &mut VisitedSet::new(&mut buf)) {
        if run.is_err() {
            break;
        }
    }
});
