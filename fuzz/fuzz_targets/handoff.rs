//! Fuzz target: everything a kernel reads at a KHO boot, from arbitrary
//! memory: the zero page and its setup_data chain, the scratch array, and
//! `KhoIn::populate` plus the reserving walk.
#![no_main]

#[path = "common.rs"]
mod common;

use kho::handoff::x86;
use kho::{Handover, KhoIn};
use kho_mem::PhysAddr;
use kho_radix::VisitedSet;
use kho_scratch::{ReadPolicy, ScratchAreas};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mem = common::arena(data);
    let base = PhysAddr::new(common::BASE);
    if let Ok(params) = x86::read_boot_params(&mem, base) {
        let _ = params.memory();
        let _ = x86::find_kho(&mem, params.setup_data);
    }
    let _ = x86::find_kho(&mem, common::word(data, 0));
    // A handover whose four words come from the input.
    let h = Handover {
        fdt: PhysAddr::new(common::word(data, 0)),
        fdt_size: common::word(data, 8),
        scratch: PhysAddr::new(common::word(data, 16)),
        scratch_len: common::word(data, 24),
    };
    let _ = ScratchAreas::read_array(&mem, h.scratch, h.scratch_len, ReadPolicy::LINUX);
    if let Ok(mut kin) = KhoIn::populate(&mem, h) {
        let mut buf = [0u64; VisitedSet::words_for(512)];
        let _ = kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()));
        let _ = kin.kexec_count(&mem);
        let mut page = [0u8; 4096];
        let _ = kin.memblock(&mem, &mut page);
    }
});
