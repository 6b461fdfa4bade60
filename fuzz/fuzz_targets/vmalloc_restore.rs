//! Fuzz target: restore a vmalloc area whose descriptor and chunk chain are
//! arbitrary bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use kho_mem::PhysAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mem = common::arena(data);
    // The descriptor is the input's first 16 bytes (the start of RAM).
    let Ok(desc) = kho_vmalloc::read_descriptor(&mem, PhysAddr::new(common::BASE)) else {
        return;
    };
    if let Ok(area) = kho_vmalloc::restore_vmalloc(&mem, &desc) {
        for b in area.iter_blocks(&mem) {
            if b.is_err() {
                break;
            }
        }
        for p in area.iter_pages(&mem).take(1 << 16) {
            if p.is_err() {
                break;
            }
        }
    }
    let _ = kho_vmalloc::restore_vmalloc_checked(&mem, &desc, |_, _| true);
});
