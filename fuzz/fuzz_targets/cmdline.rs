//! Fuzz target: the command-line parsers (`kho=`, `kho_scratch=`,
//! `reserve_mem=`) and the memblock sub-blob reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kho_scratch::parse_cmdline_bytes(data);
    let _ = kho_scratch::parse_kho_scratch_bytes(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = kho_memblock::parse_reserve_mem(text);
    }
    if let Ok(fdt) = kho_memblock::MemblockFdt::parse(data) {
        for r in fdt.regions() {
            let _ = (r.name(), r.range());
        }
    }
});
