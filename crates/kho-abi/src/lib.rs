//! Wire format of Linux Kexec HandOver (KHO): constants, names and layouts.
//!
//! This crate is the single source of truth for every byte that crosses a
//! kexec in kho-rs. It holds nothing but the format: no allocation, no
//! algorithms, no platform code. The layouts mirror upstream Linux's
//! `include/linux/kho/abi/` headers (see `docs/ABI.md` for the exact commits);
//! they are re-implemented from the specification, no kernel code is copied.
//!
//! # ABI
//!
//! The root KHO FDT handed to the next kernel looks like this (kho-v2; kho-v3
//! and kho-v4, which Linux 7.2 writes, differ only in the string and in
//! requiring `blob-size`):
//!
//! ```text
//! / {
//!     compatible = "kho-v2";
//!     preserved-memory-map = <native u64: phys of the radix root page>;
//!     <client-name> {
//!         preserved-data = <native u64: phys of the client blob>;
//!         blob-size = <native u64: bytes>;   // blob-size revision, kho-v3, kho-v4
//!     };
//! };
//! ```
//!
//! KHO values are *native-endian*, not big-endian device-tree cells. Both
//! architectures KHO supports (x86_64 and little-endian arm64) are
//! little-endian, so this crate spells every field as an explicit
//! little-endian type: the layouts then read the same on any host, which is
//! what a tool inspecting a guest memory dump needs.
//!
//! Changing anything here changes the ABI: it needs a new [`AbiVersion`] (a
//! new compatible string) and an entry in `docs/ABI.md`.
//!
//! # Example
//!
//! ```
//! use kho_abi::radix;
//!
//! // An order-0 page at 0x1000_0000 is tracked under this key...
//! let key = radix::encode_key(0x1000_0000, 0).unwrap();
//! assert_eq!(key, 0x0010_0000_0001_0000);
//! // ...which lives in root slot 2 (all order-0 keys do) and decodes back.
//! assert_eq!(radix::table_index(key, radix::TREE_MAX_DEPTH - 1), 2);
//! assert_eq!(radix::decode_key(key), Some((0x1000_0000, 0)));
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod block;
pub mod chosen;
pub mod fdt;
pub mod memblock;
pub mod metadata;
pub mod radix;
pub mod rfc2024;
pub mod scratch;
pub mod stub;
pub mod v1;
pub mod vmalloc;
pub mod x86;

mod version;

pub use version::AbiVersion;

/// Little-endian `u16` as KHO stores it (see the crate docs on endianness).
pub type Le16 = zerocopy::little_endian::U16;
/// Little-endian `u32` as KHO stores it (see the crate docs on endianness).
pub type Le32 = zerocopy::little_endian::U32;
/// Little-endian `u64` as KHO stores it (see the crate docs on endianness).
pub type Le64 = zerocopy::little_endian::U64;

/// log2 of the page size this ABI is built for (4 KiB pages).
///
/// KHO's radix geometry depends on the page size; kho-rs supports the 4 KiB
/// configuration of x86_64 and arm64. [`radix::Geometry`] computes the other
/// columns of the upstream table for reference.
pub const PAGE_SHIFT: u32 = 12;
/// The page size in bytes.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Magic stamped into a restored block's head page metadata by Linux
/// (`KHO_PAGE_MAGIC`, "KHOP"). Kernel-internal, kept for tools that
/// cross-check a kernel's state.
pub const KHO_PAGE_MAGIC: u32 = 0x4b48_4f50;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
