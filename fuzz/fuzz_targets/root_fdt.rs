//! Fuzz target: the root KHO FDT, any DTB, and the arm64 `/chosen` handoff.
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
    let _ = kho::handoff::dt::read_chosen(data);
});
