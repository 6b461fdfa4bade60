//! Fuzz target: walk a radix tree made of arbitrary bytes; it must end
//! with blocks or a named error, never a panic or a hang.
#![no_main]

#[path = "common.rs"]
mod common;

use core::ops::ControlFlow;

use kho_mem::PhysAddr;
use kho_radix::VisitedSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mem = common::arena(data);
    // The root is one of the arena's pages, chosen by the first byte.
    let root =
        PhysAddr::new(common::BASE + u64::from(data.first().copied().unwrap_or(0) % 64) * 4096);
    let mut buf = [0u64; VisitedSet::words_for(512)];
    let _ = kho_radix::walk(&mem, root, &mut VisitedSet::new(&mut buf), |_, _| {
        ControlFlow::<()>::Continue(())
    });
    for run in kho_radix::ranges(&mem, root, &mut VisitedSet::new(&mut buf)) {
        if run.is_err() {
            break;
        }
    }
});
