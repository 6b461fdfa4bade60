//! Fuzz target: everything a kernel reads at a KHO boot, from arbitrary
//! memory: the zero page (read strictly and leniently, and written back by
//! the kexec writer) and its setup_data chain, the scratch array, and
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
        let _ = x86::find_kho(&mem, params.setup_data);
        // The writer a kexec runs: the same memory map and a handover, into
        // a fresh zero page, must read back as written.
        let mut out_mem = common::arena(&[]);
        let h = Handover {
            fdt: PhysAddr::new(common::BASE + 0x2000),
            fdt_size: 4096,
            scratch: PhysAddr::new(common::BASE + 0x3000),
            scratch_len: 48,
        };
        let out = x86::BootParamsOut {
            memory: params.memory(),
            cmdline: params.cmdline.map(|c| (c, 16)),
            kho: Some((PhysAddr::new(common::BASE + 0x1000), h)),
            acpi_rsdp: params.acpi_rsdp,
            ramdisk: params.ramdisk,
            setup_header: None,
        };
        if x86::write_boot_params(&mut out_mem, base, &out).is_ok() {
            let back = x86::read_boot_params(&out_mem, base);
            let Ok(back) = back else {
                panic!("a zero page just written does not read back: {back:?}");
            };
            assert_eq!(back.memory(), params.memory());
            assert_eq!(x86::find_kho(&out_mem, back.setup_data), Ok(Some(h)));
        }
    }
    // What a kernel that must boot anyway reads.
    if let Ok((params, _)) = x86::read_boot_params_lenient(&mem, base) {
        assert!(params.memory().len() <= 128);
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
