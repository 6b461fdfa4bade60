//! kho-stub: a bare-metal kernel that performs KHO handovers under QEMU.
//!
//! Built for `x86_64-unknown-none` it is a bootable image: each run is one
//! generation that revives the previous generation's handover, verifies every
//! preserved byte, changes the preserved set and kexecs into the next (see
//! docs/HANDOVER.md). Built for the host it is an ordinary program whose only
//! job is to run the unit tests of the arch-independent code.

#![cfg_attr(target_os = "none", no_std, no_main)]
// On the host only the unit tests use the arch-independent modules.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

mod config;
mod content;
mod csum;
mod guest;
mod kho_test;
mod linux;
mod memtype;
mod payload;
mod why;
mod wrapper;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod carry;
#[cfg(target_os = "none")]
mod fault;
#[cfg(target_os = "none")]
mod generation;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod kexec;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod restart;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("kho-stub is a bare-metal image: build it with `cargo xtask build --arch x86_64`");
    std::process::exit(2);
}
