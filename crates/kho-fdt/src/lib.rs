//! Build, parse and render the root FDT of Linux Kexec HandOver (KHO).
//!
//! The outgoing kernel publishes one page holding a flattened device tree:
//!
//! ```text
//! / {
//!     compatible = "kho-v2";                    // or "kho-v3", "kho-v4"
//!     preserved-memory-map = <le64 phys of the radix-tree root page>;
//!     <client-name> {
//!         preserved-data = <le64 phys of the client blob>;
//!         blob-size = <le64 bytes>;             // blob-size revision, kho-v3, kho-v4
//!     };
//! };
//! ```
//!
//! kho-v1 (Linux 6.16 – 6.19) has the same shape with three differences:
//! `preserved-memory-map` names the first chunk of its serialized bitmaps
//! (0 when nothing is preserved), each child names a client FDT with `fdt`
//! instead of `preserved-data`, and there is no `blob-size` (the sub-FDT's
//! own header gives its size). Both are read and written here.
//!
//! This crate writes it ([`KhoFdtBuilder`], directly, in vm-fdt's layout), validates
//! and reads it ([`KhoFdt::parse`], panic-free on any input, with a named
//! [`Error`] carrying the byte offset of what is wrong), and renders it, or
//! any FDT sub-blob such as memblock's, as canonical DTS-like text for
//! review and snapshot tests ([`render`], [`render_blob`]).
//!
//! KHO values are native-endian u64s (little-endian on every architecture
//! KHO supports), not big-endian device-tree cells; see `kho_abi`. The
//! rendering therefore prints them as `le64:0x…`, never as `<…>` cells.
//!
//! # Example
//!
//! ```
//! use kho_abi::AbiVersion;
//! use kho_fdt::{KhoFdt, KhoFdtBuilder};
//! use kho_mem::PhysAddr;
//!
//! let mut builder = KhoFdtBuilder::new(AbiVersion::V3, PhysAddr::new(0x4123_4000));
//! builder.add_subtree("memblock", PhysAddr::new(0x4124_5000), Some(4096))?;
//! builder.add_subtree("kexec-metadata", PhysAddr::new(0x4124_6000), Some(73))?;
//! let blob = builder.build()?;
//! assert!(blob.len() <= 4096);
//!
//! let fdt = KhoFdt::parse(&blob)?;
//! assert_eq!(fdt.version(), AbiVersion::V3);
//! assert_eq!(fdt.memory_map(), PhysAddr::new(0x4123_4000));
//! assert_eq!(fdt.total_size(), blob.len());
//! let memblock = fdt.subtree("memblock").expect("memblock subtree");
//! assert_eq!(memblock.data(), PhysAddr::new(0x4124_5000));
//! assert_eq!(memblock.size(), Some(4096));
//! let names: Vec<_> = fdt.subtrees().map(|s| s.name()).collect();
//! assert_eq!(names, ["memblock", "kexec-metadata"]);
//!
//! // Anything a reader would refuse comes back as a named error.
//! assert_eq!(
//!     KhoFdt::parse(&blob[..blob.len() - 1]).unwrap_err().to_string(),
//!     format!("FDT totalsize {} (offset 0x4) exceeds the {}-byte blob", blob.len(), blob.len() - 1),
//! );
//! # Ok::<(), kho_fdt::Error>(())
//! ```
//!
//! # Robustness
//!
//! The incoming FDT comes from another kernel and is untrusted. Every reader
//! here starts with one bounds-checked, allocation-free token walk of the
//! whole structure block, [`FdtBlob::walk`], which is public so that other
//! readers of untrusted FDTs (kho-ranges' 2024 `mem` properties) share it:
//! it reports each node and property as an [`Event`] with its byte offset.
//! [`KhoFdt::parse`] reads everything it checks (the root's properties,
//! every child's name, offset and properties) during that one walk. The
//! renderer and [`dtb`] then use the `fdt` crate, and only its `Fdt::new`,
//! `find_node`, `children` and `properties`, on blobs where the walk has
//! proven they cannot panic (`fdt` 0.1.5's `chosen()`, `memory()`, `root()`
//! and `cpus()` panic on a KHO FDT and are never called; `all_nodes` is not
//! used either, as its fixed 64-entry parent stack overflows at the depth
//! limit and it only stops at `FDT_END` by accident, knowing the token as 5
//! instead of 9). The walker refuses `FDT_NOP` tokens, which no KHO writer or
//! dtc emits but which `fdt` 0.1.5 mishandles. The library denies
//! `unwrap`, `expect` and `panic!`, and property tests feed it mutated,
//! truncated and random blobs.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

mod blob;
mod build;
pub mod dtb;
mod error;
mod parse;
mod render;

pub use blob::{Event, FdtBlob, FdtHeader, MAX_DEPTH, Nops, Normalized, normalize};
pub use build::{KhoFdtBuilder, MAX_NAME_LEN};
pub use error::{Block, Error, Malformed, Result};
pub use parse::{KhoFdt, Subtree};
pub use render::{render, render_blob};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
