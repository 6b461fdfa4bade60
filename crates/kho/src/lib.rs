//! The KHO engine a kernel embeds: handover state in both directions.
//!
//! This crate ties the KHO building blocks together the way a kernel needs
//! them:
//!
//! - [`KhoOut`]: the outgoing state, a radix tree of preserved blocks and
//!   the one-page root FDT naming it and every client blob (plus the
//!   `kexec-metadata` subtree), and the check that everything the next
//!   kernel needs at boot lies inside scratch;
//! - [`KhoIn`]: the incoming state, validated in upstream's order (FDT
//!   mapping, header, compatible, memory map, scratch array). It reserves
//!   every preserved block by walking the untrusted tree, and lets clients
//!   restore a block only with the order it was preserved with;
//! - kho-v1 (Linux 6.16 – 6.19) in both directions: [`KhoOut::new_v1`]
//!   tracks with per-order bitmaps and publishes at [`KhoOut::finalize`]
//!   (undone by [`KhoOut::abort`]); [`KhoIn::reserve_preserved_v1`] walks
//!   the validated chunk list. [`KhoIn::version`] says which version
//!   arrived;
//! - [`handoff`]: Linux's per-arch encodings of where that state is, x86_64's
//!   zero page with a `setup_data` entry of type 10, and the boot DTB's
//!   `/chosen` `linux,kho-fdt` / `linux,kho-scratch` of arm64.
//!
//! It is `no_std` with `alloc`, and knows nothing about QEMU.
//!
//! # Example
//!
//! ```
//! use kho::Handover;
//! use kho_mem::PhysAddr;
//!
//! let h = Handover {
//!     fdt: PhysAddr::new(0x4100_0000),
//!     fdt_size: 4096,
//!     scratch: PhysAddr::new(0x4200_0000),
//!     scratch_len: 48,
//! };
//! assert_eq!(Handover::from_kho_data(&h.to_kho_data()), h);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

pub mod handoff;

mod error;
mod incoming;
mod outgoing;

pub use error::{Error, Result};
pub use incoming::{KhoIn, WalkStats};
pub use outgoing::KhoOut;

use kho_abi::Le64;
use kho_abi::x86::KhoData;
use kho_mem::PhysAddr;

/// Where the next kernel finds the KHO state: what `kho_populate` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    /// Phys of the root KHO FDT.
    pub fdt: PhysAddr,
    /// Bytes mapped for the FDT (one page).
    pub fdt_size: u64,
    /// Phys of the scratch descriptor array.
    pub scratch: PhysAddr,
    /// Byte length of the scratch descriptor array.
    pub scratch_len: u64,
}

impl Handover {
    /// The x86 `kho_data` payload for this handover.
    pub fn to_kho_data(&self) -> KhoData {
        KhoData {
            fdt_addr: Le64::new(self.fdt.as_u64()),
            fdt_size: Le64::new(self.fdt_size),
            scratch_addr: Le64::new(self.scratch.as_u64()),
            scratch_size: Le64::new(self.scratch_len),
        }
    }

    /// The handover an x86 `kho_data` payload names.
    pub fn from_kho_data(data: &KhoData) -> Handover {
        Handover {
            fdt: PhysAddr::new(data.fdt_addr.get()),
            fdt_size: data.fdt_size.get(),
            scratch: PhysAddr::new(data.scratch_addr.get()),
            scratch_len: data.scratch_size.get(),
        }
    }
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
