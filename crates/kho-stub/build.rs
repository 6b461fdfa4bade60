//! Build script: links bare-metal images with the arch's linker script.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=build.rs");
    if os != "none" {
        return;
    }
    let script = format!("{dir}/src/arch/{arch}/link.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed={dir}/src/arch/{arch}/entry.S");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    // Position-independent: the image runs wherever a loader (our own
    // kexec, or Linux's kexec_file_load) put it, and applies its own
    // R_*_RELATIVE relocations at entry. --apply-dynamic-relocs also writes
    // the link-time values, so the image is right as loaded at its link
    // address before any code ran (the x86_64 PVH path needs that).
    for arg in [
        "-pie",
        "--no-dynamic-linker",
        "-znotext",
        "--apply-dynamic-relocs",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    if arch == "aarch64" {
        // QEMU boots a flat arm64 Image (header at offset 0), not an ELF:
        // rust-lld writes the raw binary directly.
        println!("cargo:rustc-link-arg-bins=--oformat=binary");
    }
}
