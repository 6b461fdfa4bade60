//! The 2024 Kexec HandOver (KHO) design: `mem` ranges in any FDT node, the
//! flattened mem cache, one scratch region, and the active phase.
//!
//! Before kho-v1, Alexander Graf's 2024 series (RFC, v1–v3) handed over
//! one FDT in which *any* node could carry `mem`, an array of 16-byte
//! `kho_mem {addr, len}` ranges the next kernel must reserve. The next
//! kernel cannot parse an FDT before its early allocator runs, so the old
//! kernel also handed over the *mem cache*: the same ranges as one sorted
//! array, its own kexec segment. It booted from one scratch region, and
//! the FDT existed only in the *active phase* (serialized on request,
//! dropped when the phase is left). Layouts are in [`kho_abi::rfc2024`];
//! the details the series left open, and kho-rs's choices, are in
//! `docs/ABI.md`, "The 2024 design".
//!
//! - Outgoing: [`Tracker`] (feature `alloc`, on by default) —
//!   [`preserve`](Tracker::preserve) / [`unpreserve`](Tracker::unpreserve)
//!   ranges per node path and [`set_property`](Tracker::set_property);
//!   [`serialize`](Tracker::serialize) enters the active phase and writes
//!   the FDT and the mem cache ([`Serialized`]);
//!   [`leave_active`](Tracker::leave_active) drops them. Misuse is a named
//!   error ([`Error::Active`], [`Error::AlreadyActive`],
//!   [`Error::NotActive`]).
//! - Incoming: [`Handover`] (the 2024 `kho_data`), [`MemCache::validate`]
//!   (what the next kernel reserves first), [`Incoming::validate`] (the
//!   cache, the FDT, and that they agree exactly), then
//!   [`Incoming::for_each_range`] and [`Incoming::for_each_tree_range`].
//!   With the FDT alone, [`Tree`] walks its nodes and ranges
//!   ([`TreeItem`]) and checks what it can without the cache.
//!
//! # Rules a handover must follow
//!
//! Every range, in the tree and in the cache: bit 0 of `addr` is the
//! NOINIT flag and bits 1–11 are zero ([`Error::ReservedFlags`]); the
//! length is a non-zero ([`Error::EmptyRange`]) multiple of 4 KiB
//! ([`Error::Misaligned`]); the range does not wrap
//! ([`Error::RangeOverflow`]), is RAM ([`Error::NotRam`]) and stays out of
//! the scratch region ([`Error::InScratch`]); no two ranges overlap
//! ([`Error::Overlap`]). A `mem` property is a whole number of entries
//! ([`Error::MemLength`]), at most one per node ([`Error::DuplicateMem`]).
//! The cache is sorted by address ([`Error::CacheUnsorted`]) and holds
//! exactly the tree's entries, flags included: an entry only in the tree is
//! [`Error::NotInCache`], one only in the cache [`Error::NotInTree`].
//!
//! # Bounds
//!
//! The incoming side allocates nothing. It uses about 1 KiB of stack (a
//! 512-byte batch of cache entries and the walk's state), the FDT in a
//! buffer the caller provides ([`Handover::read_fdt`]; [`Error::FdtTooLarge`]
//! beyond it), and **one bit per mem cache entry** in a second caller
//! buffer: [`Incoming::words_for`]`(n)` = ⌈n / 64⌉ words; a cache with more
//! entries than the buffer tracks is [`Error::TooManyRanges`]. A million
//! ranges is 15 625 words, 122 KiB. Work: the cache is read twice in order
//! and each tree entry costs a binary search of it (16-byte reads), so
//! O(n log n) reads; the FDT walk is linear and its depth is capped at
//! [`MAX_DEPTH`].
//!
//! The crate is `no_std`, has no `unsafe`, and allocates only in the
//! [`Tracker`]. The tree is walked by kho-fdt's allocation-free validating
//! walk ([`kho_fdt::FdtBlob::walk`]), the workspace's one FDT structure
//! walker; kho-fdt links the `alloc` crate, so a final binary needs a
//! global allocator even without the `alloc` feature.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use core::ops::ControlFlow;
//! use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
//! use kho_ranges::{Incoming, MemFlags, Tracker};
//!
//! let range = |a, s| PhysRange::try_new(PhysAddr::new(a), s);
//! // 64 MiB of RAM at 1 GiB; the first 16 MiB are the scratch region.
//! let mut mem = HostMem::new(PhysAddr::new(0x4000_0000), 64 << 20)?;
//! let scratch = range(0x4000_0000, 16 << 20)?;
//! let mut tracker = Tracker::new(scratch)?;
//!
//! // Old kernel: preserve a trace buffer and a NOINIT guest region.
//! tracker.preserve("ftrace/cpu0", range(0x4200_0000, 0x4000)?, MemFlags::NONE)?;
//! tracker.preserve("guest", range(0x4300_0000, 1 << 20)?, MemFlags::NOINIT)?;
//! let out = tracker.serialize()?; // the active phase
//! // The kexec loader places both segments inside scratch.
//! let (fdt_at, cache_at) = (PhysAddr::new(0x4000_0000), PhysAddr::new(0x4000_8000));
//! mem.write(fdt_at, out.fdt())?;
//! mem.write(cache_at, out.mem_cache())?;
//! let handover = out.handover(scratch, fdt_at, cache_at)?;
//! let kho_data = handover.to_kho_data(); // x86 setup_data payload
//!
//! // New kernel: read and check everything, reserve, find client memory.
//! let handover = kho_ranges::Handover::from_kho_data(&kho_data)?;
//! let mut fdt = [0u8; 4096];
//! let fdt = handover.read_fdt(&mem, &mut fdt)?;
//! let mut bits = [0u64; Incoming::words_for(64)];
//! let incoming = Incoming::validate(&mem, fdt, &handover, &mut bits)?;
//! let mut reserve = Vec::new();
//! let _ = incoming.for_each_range(&mem, |r| {
//!     reserve.push((r.start().as_u64(), r.len(), r.flags().noinit()));
//!     ControlFlow::<()>::Continue(())
//! })?;
//! assert_eq!(reserve, [(0x4200_0000, 0x4000, false), (0x4300_0000, 1 << 20, true)]);
//! let mut nodes = Vec::new();
//! let _ = incoming.for_each_tree_range(|t| {
//!     nodes.push(t.node);
//!     ControlFlow::<()>::Continue(())
//! })?;
//! assert_eq!(nodes, ["cpu0", "guest"]);
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
mod fdt;
mod incoming;
mod range;
#[cfg(feature = "alloc")]
mod tracker;

pub use error::{At, Error, FdtProblem, Result};
pub use incoming::{Handover, Incoming, MemCache, Tree, TreeItem, TreeRange};
pub use kho_fdt::MAX_DEPTH;
pub use range::{MemFlags, MemRange};
#[cfg(feature = "alloc")]
pub use tracker::{MAX_NAME_LEN, Serialized, Tracker};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "alloc"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
