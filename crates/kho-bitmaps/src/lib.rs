//! The kho-v1 preserved-memory map (Linux 6.16 – 6.19): per-order bitmaps,
//! serialized into a list of chunk pages at finalize.
//!
//! Before the kho-v2 radix tree ([`kho_radix`]), a kernel doing a Kexec
//! HandOver (KHO) tracked preserved memory in sparse bitmaps, one set per
//! order, and at finalize wrote a linked list of one-page chunks pointing
//! at them; `preserved-memory-map` in the `"kho-v1"` FDT holds the first
//! chunk's address (0: nothing preserved). The layouts are in
//! [`kho_abi::v1`]. This crate writes that map byte for byte as Linux did
//! and reads one written by any kernel, trusting nothing in it.
//!
//! - Outgoing: [`Tracker`] (feature `alloc`, on by default) —
//!   [`preserve`](Tracker::preserve) / [`unpreserve`](Tracker::unpreserve)
//!   a block, [`preserve_range`](Tracker::preserve_range) /
//!   [`unpreserve_range`](Tracker::unpreserve_range) a page range (split
//!   by [`kho_radix::PageBlocks`] as upstream splits it), duplicates and
//!   overlaps across orders rejected; [`serialize`](Tracker::serialize)
//!   writes the chunk list into pages of the [`PhysMem`](kho_mem::PhysMem)
//!   (Linux's finalize) and [`abort`](Tracker::abort) frees it.
//! - Incoming: [`IncomingMap::validate`] checks the whole list before
//!   anything is reported, then [`IncomingMap::walk`] calls back per block
//!   `(phys, order)` and [`IncomingMap::for_each_range`] per coalesced run
//!   ([`PreservedRange`]); [`walk`] and [`for_each_range`] do both steps.
//!   Every problem is a named [`Error`] that says where it is.
//!   [`IncomingMap::validated`] keeps what a restore needs without the
//!   buffer ([`ValidatedMap`]: `take` clears a restored block's bit in
//!   place, so the bitmaps say what is left, in constant memory).
//!
//! # Which bitmap size
//!
//! Linux 6.16.x and 6.17 – 6.17.8 used 512-byte bitmaps (4096 bits);
//! upstream commit a2fff99f92da made them a page (32768 bits) as a fix,
//! in 6.18 and backported to 6.17.9. Both write `"kho-v1"` and nothing in
//! the map tells them apart, so every call takes a [`BitmapSize`]. A page
//! bitmap's bit stands for a block at `phys_start + bit × (PAGE_SIZE <<
//! order)` with `phys_start = (index × 32768) << (order + 12)`: an order-0
//! bitmap covers 128 MiB (16 MiB with 512-byte bitmaps).
//!
//! # Bounds
//!
//! - **Memory of the walk**: about 1.5 KiB of stack plus the caller's
//!   buffer, one `u64` per chunk or bitmap page of the map
//!   ([`IncomingMap::words_for`]). It does not grow with what the previous
//!   kernel preserved: a map with more pages than the buffer holds is
//!   refused ([`Error::TooManyPages`]). 16 GiB of order-0 pages preserved
//!   densely is 128 page bitmaps and one chunk: 129 words, about 1 KiB.
//! - **Cycles**: Brent's algorithm (constant memory) runs as the chunk
//!   list is followed; if the buffer fills first, the search is finished
//!   (at most about four times the buffer's length in `next` reads) before
//!   the list is refused as too long. A cycle is [`Error::ChunkCycle`],
//!   named by its first chunk reached twice and both positions.
//! - **Shared pages**: the buffer holds every chunk and bitmap address;
//!   sorted, any two that overlap are neighbours ([`Error::SharedBitmap`],
//!   [`Error::BitmapInChunk`]). The same sort over `(order, index)` keys
//!   finds two entries for one bitmap index ([`Error::DuplicateEntry`]).
//! - **Maximum order**: [`BitmapSize::max_order`], 36 for page bitmaps
//!   (39 for 512-byte ones), the largest whose bitmap spans at most 2^63
//!   bytes, so that no address computation can overflow. Every other
//!   computation is checked too.
//!
//! The crate is `no_std`, has no `unsafe`, and allocates only in the
//! [`Tracker`]'s index.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use core::ops::ControlFlow;
//! use kho_bitmaps::{BitmapSize, IncomingMap, Tracker};
//! use kho_mem::{HostMem, Order, Pfn, PhysAddr};
//!
//! // 64 MiB of RAM at 1 GiB; bitmaps and chunks are allocated from it.
//! let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 64 << 20)?;
//! let mut tracker = Tracker::new(BitmapSize::Page);
//!
//! // Old kernel: preserve a 2 MiB folio and 3 loose pages, then finalize.
//! let folio = Pfn::try_from_phys(PhysAddr::new(0x4200_0000))?;
//! tracker.preserve(&mut mem, folio, Order::try_new(9)?)?;
//! tracker.preserve_range(&mut mem, Pfn::try_from_phys(PhysAddr::new(0x4300_0000))?, 3)?;
//! let map = tracker.serialize(&mut mem)?; // preserved-memory-map
//! assert_eq!((tracker.bitmaps(), tracker.chunks_needed()), (3, 3));
//!
//! // New kernel: only the map's address crosses the kexec.
//! let mut buf = [0u64; IncomingMap::words_for(16)];
//! let incoming = IncomingMap::validate(&mem, map, BitmapSize::Page, &mut buf)?;
//! let mut blocks = Vec::new();
//! let flow = incoming.walk(&mem, |phys, order| {
//!     blocks.push((phys.as_u64(), order.get()));
//!     ControlFlow::<()>::Continue(())
//! })?;
//! assert!(flow.is_continue()); // f never stopped the walk
//! // One chunk per order, ascending: 3 pages became order 1 + order 0.
//! assert_eq!(blocks, [(0x4300_2000, 0), (0x4300_0000, 1), (0x4200_0000, 9)]);
//! // The map's own pages: not preserved, free once walked.
//! assert_eq!(incoming.metadata().count(), 6);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod error;
mod incoming;
#[cfg(feature = "alloc")]
mod tracker;

pub use error::{EntryAt, Error, Result};
pub use incoming::{IncomingMap, ValidatedMap, for_each_range, walk};
pub use kho_abi::v1::BitmapSize;
pub use kho_radix::PreservedRange;
#[cfg(feature = "alloc")]
pub use tracker::Tracker;

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "alloc"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
