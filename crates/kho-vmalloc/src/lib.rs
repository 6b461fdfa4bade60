//! Preserve a vmalloc-style area of scattered physical blocks across a kexec
//! with Linux Kexec HandOver (KHO), and restore it from an untrusted
//! descriptor.
//!
//! A virtually contiguous area is made of `2^order`-page blocks anywhere in
//! physical memory. Upstream hands it over as a 16-byte
//! [`VmallocDescriptor`] (stored by the client inside its own preserved
//! data) that points at a chain of one-page chunks, each holding the `next`
//! chunk's address and up to 511 block addresses terminated by a zero:
//!
//! ```text
//! descriptor { first, total_pages: u32, flags: u16, order: u16 }
//!     |
//!     v
//! chunk 0 [next | blk 0 | blk 1 | ... | blk 510]  -> chunk 1 [next=0 | blk 511 | 0 | ...]
//! ```
//!
//! - Outgoing: [`preserve_vmalloc`] writes the chain, preserves the chunk
//!   pages (order 0) and every block in a [`kho_radix::RadixTree`], and
//!   returns the descriptor; [`unpreserve_vmalloc`] is its exact inverse.
//!   Both are all or nothing.
//! - Incoming: [`restore_vmalloc`] (or [`restore_vmalloc_at`], from the
//!   descriptor's address, or [`restore_vmalloc_checked`], which also asks
//!   whether each page is preserved) validates the descriptor and
//!   the whole chain and returns a [`VmallocArea`], whose iterators give the
//!   block, page and chunk addresses in order.
//!
//! The crate is `no_std`, allocates nothing (feature `alloc` adds
//! `Vec`-returning conveniences), has no `unsafe` and never panics on input.
//!
//! # Example
//!
//! ```
//! use kho_abi::vmalloc::FLAG_VM_ALLOC;
//! use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
//! use kho_radix::RadixTree;
//!
//! let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 16 << 20)?;
//! let mut tree = RadixTree::new(&mut mem)?;
//!
//! // Old kernel: an area of three pages scattered in memory.
//! let blocks = [0x4080_3000, 0x4080_1000, 0x40a0_0000].map(PhysAddr::new);
//! let desc = kho_vmalloc::preserve_vmalloc(&mut mem, &mut tree, blocks, Order::ZERO, FLAG_VM_ALLOC)?;
//! assert_eq!(desc.total_pages.get(), 3);
//!
//! // The client keeps the 16 bytes in its own preserved data.
//! let at = mem.alloc_page()?;
//! kho_vmalloc::write_descriptor(&mut mem, at, &desc)?;
//!
//! // New kernel: from the descriptor's address, validate the chain, walk it.
//! let area = kho_vmalloc::restore_vmalloc_at(&mem, at)?;
//! assert_eq!((area.total_pages(), area.chunks()), (3, 1));
//! let pages: Vec<PhysAddr> = area.iter_pages(&mem).collect::<Result<_, _>>()?;
//! assert_eq!(pages, blocks);
//!
//! // A corrupted chain is a named error, never a panic.
//! mem.write_u64(area.first().checked_add(8 * 4).unwrap(), 0x4090_0000)?;
//! assert_eq!(
//!     kho_vmalloc::restore_vmalloc(&mem, &desc).unwrap_err().to_string(),
//!     "vmalloc chunk 0 slot 3 holds 0x40900000 where the terminator must be: total_pages is already reached",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Restore validation
//!
//! [`restore_vmalloc`] accepts exactly the chains upstream writes and
//! returns the first failure as a named [`Error`]:
//!
//! 1. descriptor: `flags` within [`FLAGS_KNOWN`](kho_abi::vmalloc::FLAGS_KNOWN),
//!    `order` at most [`Order::MAX`](kho_mem::Order::MAX), `total_pages` a
//!    multiple of `2^order`, `first` non-zero;
//! 2. every chunk: page-aligned, RAM, not already in the chain (Brent's
//!    cycle detection, no buffer), preserved (checked variant);
//! 3. every block entry: aligned to `2^order` pages, RAM, preserved
//!    (checked variant), and never beyond `total_pages` — a non-zero entry
//!    once the pages add up is [`Error::MissingTerminator`];
//! 4. after a chunk's first zero entry every slot is zero
//!    ([`Error::EntryAfterTerminator`]) and `next` is zero
//!    ([`Error::NextAfterTerminator`]): only the last chunk may be partly
//!    filled, as upstream's writer guarantees. A full chunk may end the chain
//!    (upstream's reader accepts it, though its writer always adds an empty
//!    chunk);
//! 5. at the end of the chain the pages add up to `total_pages`
//!    ([`Error::CountMismatch`]).
//!
//! Rules 3 and 4 bound the chain to `blocks / 511 + 1` chunks, so a walk
//! always ends. Not detected: a block listed twice or overlapping a chunk
//! page (upstream's restore fails on the second claim of a page; a caller
//! claiming pages one by one sees the same).
//!
//! # Choices where upstream is silent
//!
//! - Blocks must be naturally aligned to their order (upstream's huge vmap
//!   blocks always are); each is preserved through
//!   [`RadixTree::preserve_range`](kho_radix::RadixTree::preserve_range),
//!   upstream's `kho_preserve_pages`, which makes it one key of `order`.
//! - An empty area (no blocks) is allowed: one empty chunk, `total_pages`
//!   0, as upstream would write for an area with no pages.
//! - Errors upstream ignores are reported: a failed chunk allocation after
//!   the first (upstream returns 0 there), and a rollback that uses the
//!   area's order (upstream's uses order 0 before the descriptor is filled).

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
mod preserve;
mod restore;

pub use error::{Error, Result};
pub use kho_abi::vmalloc::VmallocDescriptor;
pub use preserve::{preserve_vmalloc, read_descriptor, unpreserve_vmalloc, write_descriptor};
pub use restore::{
    Blocks, Chunks, Pages, Piece, VmallocArea, restore_vmalloc, restore_vmalloc_at,
    restore_vmalloc_checked,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
