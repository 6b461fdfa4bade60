//! Typed physical addresses and the `PhysMem` trait every KHO algorithm uses.
//!
//! KHO's algorithms (the radix tracker, scratch placement, vmalloc chains)
//! never dereference raw pointers: they read and write physical memory
//! through [`PhysMem`]. A kernel implements it over its identity map, tests
//! use `HostMem` (feature `host`), a VMM could implement it over guest
//! memory. Addresses are typed: [`PhysAddr`] (a byte address), [`Pfn`] (a page
//! frame number), [`Order`] (log2 of a block's page count), [`PhysRange`].
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "host")] {
//! use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
//!
//! let mut mem = HostMem::new(PhysAddr::new(0x4000_0000), 16 << 20)?;
//! let page = mem.alloc_pages(Order::try_new(0)?)?;
//! mem.write_u64(page, 0xdead_beef)?;
//! assert_eq!(mem.read_u64(page)?, 0xdead_beef);
//! assert!(mem.is_ram(page, 4096));
//! assert!(!mem.is_ram(PhysAddr::new(0x1000), 8));
//! # }
//! # Ok::<(), kho_mem::Error>(())
//! ```
//!
//! # Features
//!
//! - `host`: `HostMem`, a [`PhysMem`] over host memory with a page
//!   allocator, reservations and allocation-failure injection (needs `alloc`).

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "host")]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod addr;
mod error;
#[cfg(feature = "host")]
mod host;
mod phys;

pub use addr::{Order, Pfn, PhysAddr, PhysRange};
pub use error::{Error, Result};
#[cfg(feature = "host")]
pub use host::HostMem;
pub use phys::PhysMem;

pub use kho_abi::{PAGE_SHIFT, PAGE_SIZE};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "host"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
