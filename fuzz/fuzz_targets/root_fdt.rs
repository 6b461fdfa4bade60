//! Fuzz target: the root KHO FDT, any DTB (strict, normalized and salvaged),
//! and the arm64 `/chosen` handoff (reader and writer).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fdt) = kho_fdt::KhoFdt::parse(data) {
        let _ = fdt.render();
        for s in fdt.subtrees() {
            let _ = (s.name(), s.data(), s.size());
        }
    }
    let _ = kho_fdt::render(data);
    let _ = kho_fdt::render_blob(data);
    if let Ok(dtb) = kho_fdt::dtb::Dtb::parse(data) {
        let _ = dtb.memory_regions();
        let _ = dtb.root_cells();
        let _ = dtb.rewrite(&[]);
    }
    // What libfdt accepts and the strict parser does not: normalizing
    // (NOPs out, v16 up) must leave a blob the strict parser accepts, and
    // salvaging reads whatever comes before the first unreadable token.
    let mut copy = data.to_vec();
    let max = copy.len();
    if kho_fdt::normalize(&mut copy, max).is_ok() {
        let parsed = kho_fdt::dtb::Dtb::parse(&copy);
        assert!(parsed.is_ok(), "normalized but refused: {parsed:?}");
    }
    let _ = kho_fdt::dtb::salvage(data);
    let _ = kho::handoff::dt::read_chosen(data);
    let _ = kho::handoff::dt::read_initrd(data);
    // The writer a kexec runs on the boot DTB: rewrite /chosen with a
    // handover, a command line and each initrd edit, and read it back.
    let h = kho::Handover {
        fdt: kho_mem::PhysAddr::new(0x4123_4000),
        fdt_size: 4096,
        scratch: kho_mem::PhysAddr::new(0x4400_0000),
        scratch_len: 48,
    };
    let Ok(initrd) = kho_mem::PhysRange::try_new(kho_mem::PhysAddr::new(0x4800_0000), 0x1000)
    else {
        return;
    };
    for edit in [
        kho::handoff::dt::InitrdEdit::Keep,
        kho::handoff::dt::InitrdEdit::Remove,
        kho::handoff::dt::InitrdEdit::Set(initrd),
    ] {
        if let Ok(out) =
            kho::handoff::dt::write_chosen_initrd(data, Some(&h), Some("kho=on"), edit)
        {
            assert_eq!(kho::handoff::dt::read_chosen(&out), Ok(Some(h)));
        }
    }
});
