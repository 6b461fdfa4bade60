//! kho-stub: a bare-metal kernel that performs KHO handovers under QEMU.
//!
//! Built for `x86_64-unknown-none` (and later `aarch64-unknown-none`) it is a
//! bootable image; built for the host it is an ordinary program whose only
//! job is to run the unit tests of the arch-independent code.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("kho-stub is a bare-metal image: build it with `cargo xtask build --arch x86_64`");
    std::process::exit(2);
}
