//! A Linux Kexec HandOver (KHO) handover inspector: what a kernel was about
//! to hand over, read from outside in a memory image.
//!
//! Given guest physical memory (an ELF core from QEMU's
//! `dump-guest-memory`, a kdump vmcore, a raw file, or any
//! [`PhysMem`](kho_mem::PhysMem)) and where the handover starts, the
//! decoder ([`inspect`]) reads the handover with the crates a kernel uses:
//! the arch handoff (`kho`), the root FDT (`kho-fdt`), the scratch array
//! (`kho-scratch`), the preserved-memory radix tree (`kho-radix`) and the
//! clients' blobs (`kho-memblock`, `kho-vmalloc`, `kexec-metadata`, the
//! stub's blob, lib/test_kho.c's `kho_test`); a handover of the 2024
//! design (`kho-2024`: `mem` ranges in any node, the mem cache, one scratch
//! region) with `kho-ranges` ([`Report::rfc2024`]). A kernel stops at the first
//! failure; the decoder goes on wherever the rest can still be read, so a
//! [`Report`] lists everything it could decode and every structural
//! [`Problem`](report::Problem), each with a stable code and its location.
//! Without an address, [`find`] scans the image for root KHO FDTs and the
//! boot structures naming them, then decodes the best candidates.
//!
//! - [`Image`]: an ELF core or raw image over positioned reads
//!   ([`ReadAt`]: a byte slice, a file), read where the decoder looks;
//! - [`inspect`] / [`inspect_with`]: the decoder, from a [`Start`];
//! - [`find::find`] / [`find::find_in`]: the scan for the handover;
//! - [`report`]: the results as data (`serde::Serialize`);
//! - [`text`]: their human-readable rendering; [`json`] (feature `json`):
//!   the same as pretty JSON;
//! - [`fdt_dump`]: the canonical rendering of a KHO FDT blob.
//!
//! The image is untrusted: nothing in it can make the inspector panic, and
//! its work and memory follow the real handover and stop at a budget
//! ([`Limits`]), past which the report says which bound stopped what.
//!
//! The crate is `no_std` with `alloc` and has no `unsafe`. Features, all
//! off by default:
//!
//! - `json`: [`json::render`] (serde_json, no std);
//! - `test-util`: `test_util`, images with a known handover for tests (ELF
//!   cores written byte by byte, a guest with every client the decoder
//!   knows and the corruptions it names). Test support: its builders panic.
//!
//! # Example
//!
//! ```
//! use kho::KhoOut;
//! use kho_abi::AbiVersion;
//! use kho_inspect::{Image, Limits, Start};
//! use kho_mem::{HostMem, Order, PhysMem};
//!
//! // The old kernel: a handover in 16 MiB of RAM at 1 GiB.
//! let base = HostMem::DEFAULT_BASE;
//! let mut mem = HostMem::new(base, 16 << 20)?;
//! let mut out = KhoOut::new(&mut mem, AbiVersion::V4)?;
//! let order = Order::try_new(9)?;
//! let folio = mem.alloc_pages(order)?;
//! out.preserve_folio(&mut mem, folio, order)?;
//! out.add_kexec_metadata(&mut mem, 1, "6.19")?;
//!
//! // Read back from outside, from the root FDT's address.
//! let start = Start::Fdt(out.fdt().as_u64());
//! let report = kho_inspect::inspect(&mem, start);
//! assert_eq!(report.problems, []);
//! assert_eq!(report.abi_version.as_deref(), Some("kho-v4"));
//! let runs = &report.preserved.as_ref().unwrap().runs;
//! assert!(runs.iter().any(|r| (r.order, r.addr) == (9, folio.as_u64())));
//! let text = kho_inspect::text::render_report(&report);
//! assert!(text.contains("kexec-metadata v1, previous release \"6.19\""));
//!
//! // With no address: the same memory as a raw image, scanned.
//! let mut bytes = vec![0u8; 16 << 20];
//! mem.read(base, &mut bytes)?;
//! let image = Image::raw(&bytes[..], base.as_u64())?;
//! let found = kho_inspect::find::find_in(&image, Limits::default());
//! assert_eq!(found.decoded.len(), 1);
//! assert_eq!(found.decoded[0].report.preserved, report.preserved);
//!
//! // A budget too small for the tree stops the walk, and says which.
//! let tight = Limits { runs: 1, ..Limits::default() };
//! let cut = kho_inspect::inspect_with(&mem, start, tight);
//! assert_eq!(cut.problems[0].code, "budget-exceeded");
//! assert!(cut.problems[0].message.contains("the `runs` limit"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod budget;
mod decode;
mod error;
pub mod fdt_dump;
pub mod find;
mod image;
#[cfg(feature = "json")]
pub mod json;
mod limits;
pub mod report;
mod runs;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
pub mod text;

/// The stub's blob layout (docs/HANDOVER.md documents it).
use kho_abi::stub as stub_blob;

pub use decode::{inspect, inspect_with};
pub use error::{Error, Result};
pub use image::{Fill, Format, Image, MAX_PROGRAM_HEADERS, ReadAt, Segment};
pub use limits::Limits;
pub use report::{Report, Start};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
