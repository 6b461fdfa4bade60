//! Preserve named `reserve_mem` regions across a kexec with Linux Kexec
//! HandOver (KHO), byte-compatible with upstream memblock's `memblock-v1`
//! sub-blob, and find them again on the next boot.
//!
//! Linux's `reserve_mem=size:align:name` sets memory aside early and names
//! it (a log, a trace buffer, ramoops). With KHO the old kernel preserves
//! each region's pages and describes the regions in a one-page FDT that the
//! root KHO FDT lists as child `memblock`; the next kernel, parsing the
//! same `reserve_mem=`, takes the region back at the same address instead
//! of allocating a new one ("Revived memory reservation … from KHO"):
//!
//! ```text
//! / {
//!     compatible = "memblock-v1";
//!     oops {                               // the reserve_mem= name
//!         compatible = "reserve-mem-v1";
//!         start = <8 bytes, little-endian>;
//!         size = <8 bytes, little-endian>;
//!     };
//! };
//! ```
//!
//! - Outgoing: [`preserve_memblock`] builds the blob ([`build_blob`]),
//!   preserves its page and every region's pages in a
//!   [`kho_radix::RadixTree`], and returns the [`MemblockBlob`] to register;
//!   [`unpreserve_memblock`] is its exact inverse. Both are all or nothing.
//! - Incoming: [`retrieve`] (= [`read_blob`] + [`MemblockFdt::parse`] +
//!   [`MemblockFdt::check_ram`]) validates the blob; then
//!   [`MemblockFdt::find`] or, with the parsed `reserve_mem=`,
//!   [`MemblockFdt::revive`] (upstream's alignment and size checks).
//! - Command line: [`parse_reserve_mem`] reads `size:align:name` as
//!   upstream does.
//!
//! Every refusal is a named [`Error`]. The crate is `no_std` (with `alloc`,
//! which the FDT writer needs), has no `unsafe` and never panics on input.
//!
//! # Example
//!
//! ```
//! use kho_memblock::{parse_reserve_mem, preserve_memblock, retrieve, Region};
//! use kho_mem::{HostMem, PhysAddr, PAGE_SIZE};
//! use kho_radix::RadixTree;
//!
//! let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 16 << 20)?;
//! let mut tree = RadixTree::new(&mut mem)?;
//!
//! // Old kernel: `reserve_mem=64K:4K:oops` was placed at 0x40f00000.
//! let req = parse_reserve_mem("64K:4K:oops")?;
//! let oops = Region::new(req.name, PhysAddr::new(0x40f0_0000), req.size)?;
//! let blob = preserve_memblock(&mut mem, &mut tree, &[oops])?;
//! // ... register child "memblock" with preserved-data = blob.phys ...
//!
//! // New kernel: same command line, the region comes back where it was.
//! let mut buf = [0u8; PAGE_SIZE];
//! let fdt = retrieve(&mem, blob.phys, Some(blob.size), &mut buf)?;
//! let revived = fdt.revive(&parse_reserve_mem("64K:4K:oops")?)?;
//! assert_eq!(revived.start(), PhysAddr::new(0x40f0_0000));
//!
//! // A different size on the new command line is a named mismatch.
//! assert_eq!(
//!     fdt.revive(&parse_reserve_mem("128K:4K:oops")?).unwrap_err().to_string(),
//!     "memblock region \"oops\" has size 0x10000, reserve_mem asks for 0x20000",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Choices where upstream is silent or lax
//!
//! - **Unaligned regions.** Upstream preserves `size >> PAGE_SHIFT` pages
//!   from the page holding `start`, which misses the tail of a region that
//!   is not page-aligned (and preserves nothing for one under a page). Here
//!   every page a region's bytes touch is preserved, and a page shared by
//!   two regions is preserved once, by the first.
//! - **Names** are checked as upstream's parser does (1–15 bytes, not only
//!   whitespace). For writing, [`Region::new`] also requires what the FDT
//!   writer accepts as a node name (a letter first, `[A-Za-z0-9,._+-]`, no
//!   `@`); libfdt writes any name. The reader accepts any name the FDT
//!   validator does (printable ASCII without `/` or spaces).
//! - **Alignment** must be a power of two once raised to
//!   [`SMP_CACHE_BYTES`]; upstream accepts any value and misaligns.
//! - **The reader is strict**: every child must be a valid region, names
//!   unique, ranges disjoint and RAM. Upstream only looks at the child it
//!   is asked for.
//! - The FDT is written by `vm-fdt`: the same tree as libfdt's, with the
//!   strings block in first-use order (libfdt's sequential writer stores
//!   them in reverse); readers never depend on that order.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod blob;
mod cmdline;
mod error;
mod preserve;
mod region;

pub use blob::{MemblockFdt, build_blob, read_blob, retrieve};
pub use cmdline::{
    MAX_NAME_LEN, RESERVE_MEM_MAX_ENTRIES, RESERVE_MEM_NAME_SIZE, ReserveMem, SMP_CACHE_BYTES,
    parse_reserve_mem,
};
pub use error::{Error, Result};
pub use kho_abi::memblock::SUBTREE_NAME;
pub use kho_scratch::Token;
pub use preserve::{MemblockBlob, covering_pages, preserve_memblock, unpreserve_memblock};
pub use region::Region;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
