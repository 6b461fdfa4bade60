//! Fuzz target: build a real radix tree, then corrupt it the way a broken
//! or hostile kernel could — whole entries redirected at other nodes (cycles,
//! shared nodes), at other RAM, outside RAM or misaligned; leaf words
//! rewritten; single bits flipped — and walk it as untrusted input. The walk
//! must end with blocks or a named error, never a panic or a hang.
#![no_main]

#[path = "common.rs"]
mod common;

use core::ops::ControlFlow;

use kho_mem::{Order, Pfn, PhysAddr, PhysMem};
use kho_radix::{RadixTree, VisitedSet};
use libfuzzer_sys::fuzz_target;

/// Bytes per damage operation.
const DAMAGE: usize = 8;

fuzz_target!(|data: &[u8]| {
    let mut mem = common::arena(&[]);
    let Ok(mut tree) = RadixTree::new(&mut mem) else {
        return;
    };
    // Byte 0: how many 3-byte preserve operations (page, order) follow;
    // the rest is damage, 8 bytes per operation.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (ops, damage) = rest.split_at((usize::from(n) * 3).min(rest.len()));
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
    // The intact tree's node pages, so damage can aim at real nodes.
    let mut buf = [0u64; VisitedSet::words_for(512)];
    let mut nodes = [0u64; 64];
    let mut count = 0;
    {
        let mut visited = VisitedSet::new(&mut buf);
        let _ = kho_radix::walk(&mem, tree.root(), &mut visited, |_, _| {
            ControlFlow::<()>::Continue(())
        });
        for (slot, node) in nodes.iter_mut().zip(visited.nodes()) {
            *slot = node.as_u64();
            count += 1;
        }
    }
    let pages = common::RAM / 4096;
    for d in damage.chunks_exact(DAMAGE) {
        let v = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
        let v64 = u64::from(v);
        // Where: a node of the tree (high bit) or any page of the arena.
        let page = if d[0] & 0x80 != 0 && count > 0 {
            nodes[usize::from(d[0] & 0x7f) % count]
        } else {
            common::BASE + u64::from(d[0]) % pages * 4096
        };
        let at = PhysAddr::new(page + u64::from(u16::from_le_bytes([d[1], d[2]])) % 512 * 8);
        let target = |v: u64| {
            if count > 0 && v & 1 != 0 {
                nodes[(v >> 1) as usize % count]
            } else {
                common::BASE + (v >> 1) % (pages + 4) * 4096
            }
        };
        let value = match d[3] % 8 {
            // Redirect at a node (cycle, shared node) or a page in or just
            // past RAM.
            0 | 1 => target(v64),
            // Misaligned redirection.
            2 => target(v64 >> 12) | (v64 & 0xff8),
            // Into the second, separate RAM region, or far outside RAM.
            3 => 0x8000_0000 + v64 % 8 * 4096,
            4 => v64 << 32 | v64,
            5 => u64::MAX,
            6 => 0,
            _ => mem.read_u64(at).unwrap_or(0) ^ (1 << (v % 64)),
        };
        let _ = mem.write_u64(at, value);
    }
    let _ = kho_radix::walk(&mem, tree.root(), &mut VisitedSet::new(&mut buf), |_, _| {
        ControlFlow::<()>::Continue(())
    });
    for run in kho_radix::ranges(&mem, tree.root(), &mut VisitedSet::new(&mut buf)) {
        if run.is_err() {
            break;
        }
    }
});
