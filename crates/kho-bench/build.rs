//! Compiles the libfdt harness (`csrc/libfdt_harness.c`) against the
//! system's libfdt (Debian: `libfdt-dev`) and links libfdt statically.

use std::process::exit;

const HARNESS: &str = "csrc/libfdt_harness.c";

fn main() {
    println!("cargo:rerun-if-changed={HARNESS}");
    let mut build = cc::Build::new();
    build.file(HARNESS).opt_level(2).warnings(true);
    // Preprocess first, quietly: the one include that can be missing is
    // libfdt.h, and a missing package deserves one line, not a compiler dump.
    let mut probe = build.clone();
    probe
        .cargo_metadata(false)
        .cargo_warnings(false)
        .cargo_output(false);
    if probe.try_expand().is_err() {
        eprintln!(
            "kho-bench: cannot compile {HARNESS} against <libfdt.h>: install the Debian package libfdt-dev (apt-get install libfdt-dev)"
        );
        exit(1);
    }
    build.compile("kho_libfdt_harness");
    println!("cargo:rustc-link-lib=static=fdt");
}
