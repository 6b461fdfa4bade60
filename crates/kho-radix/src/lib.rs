//! The kho-v2 preserved-memory radix tree: which pages the next kernel must
//! not touch.
//!
//! A kernel that hands memory over a kexec with Linux Kexec HandOver (KHO)
//! records every preserved block of `2^order` pages in a radix tree of
//! page-sized nodes and publishes the root's physical address
//! (`preserved-memory-map` in the KHO FDT). The next kernel walks the tree
//! before it allocates anything outside scratch and reserves every block.
//! This crate builds that tree byte for byte as upstream's kho-v2 does (the
//! geometry and key encoding come from [`kho_abi::radix`]), and walks one
//! built by any kernel, trusting nothing in it.
//!
//! - Outgoing: [`RadixTree`] — [`preserve`](RadixTree::preserve) /
//!   [`unpreserve`](RadixTree::unpreserve) a block,
//!   [`preserve_range`](RadixTree::preserve_range) /
//!   [`unpreserve_range`](RadixTree::unpreserve_range) a page range
//!   (decomposed by [`PageBlocks`] as upstream does), with duplicates and
//!   overlaps rejected, all-or-nothing errors, empty nodes freed and
//!   [`node_stats`](RadixTree::node_stats) always the minimum.
//! - Incoming: [`walk`] (a callback per block) and [`ranges`] (an iterator
//!   of coalesced [`PreservedRange`]s), both in key order (highest order
//!   first, as upstream), both validating every entry and reporting
//!   corruption as a named [`Error`] with level, entry and node. A
//!   caller-provided [`VisitedSet`] detects shared nodes and bounds the
//!   work; starting a walk clears it in constant time, whatever its size.
//!   [`IncomingTree`] adopts a tree that passed the walk and answers the
//!   restore side (is this block preserved, take it) from the tree's own
//!   leaves: no per-block state, whatever the previous kernel preserved.
//!
//! The crate is `no_std`, allocates nothing (nodes come from the
//! [`PhysMem`](kho_mem::PhysMem) passed to each call) and has no `unsafe`.
//!
//! # Example
//!
//! ```
//! use core::ops::ControlFlow;
//! use kho_mem::{HostMem, Order, Pfn, PhysAddr};
//! use kho_radix::{RadixTree, VisitedSet};
//!
//! // 64 MiB of RAM at 1 GiB; the tree's nodes are allocated from it.
//! let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 64 << 20)?;
//! let mut tree = RadixTree::new(&mut mem)?;
//!
//! // Old kernel: preserve a 2 MiB folio and 3 loose pages.
//! let folio = Pfn::try_from_phys(PhysAddr::new(0x4200_0000))?;
//! tree.preserve(&mut mem, folio, Order::try_new(9)?)?;
//! tree.preserve_range(&mut mem, Pfn::try_from_phys(PhysAddr::new(0x4300_0000))?, 3)?;
//! // Three orders, three paths: root + 4 tables and a leaf per order.
//! let stats = tree.node_stats();
//! assert_eq!((stats.tables, stats.leaves, stats.bytes), (13, 3, 16 * 4096));
//!
//! // New kernel: only the root address crosses the kexec.
//! let root = tree.root();
//! let mut buf = [0u64; VisitedSet::words_for(64)];
//! let mut visited = VisitedSet::new(&mut buf);
//! let mut blocks = Vec::new();
//! kho_radix::walk(&mem, root, &mut visited, |phys, order| {
//!     blocks.push((phys.as_u64(), order.get()));
//!     ControlFlow::<()>::Continue(())
//! })?;
//! // Highest order first; 3 pages became an order-1 and an order-0 block.
//! assert_eq!(blocks, [(0x4200_0000, 9), (0x4300_0000, 1), (0x4300_2000, 0)]);
//!
//! let runs: Vec<_> = kho_radix::ranges(&mem, root, &mut visited)
//!     .map(|r| r.map(|r| (r.range().start().as_u64(), r.range().size(), r.order().get())))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(runs, [(0x4200_0000, 2 << 20, 9), (0x4300_0000, 0x2000, 1), (0x4300_2000, 0x1000, 0)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//!
//! - **Overlap detection** uses the tree itself plus a small summary in the
//!   [`RadixTree`] struct (about 6 KiB, exact at all times): a count of
//!   blocks per order, so a block is checked only against orders that
//!   have blocks; per order, the leaf word and level-1 table last used; a
//!   directory of leaves that also remembers where none exists. A block's
//!   own leaf word rules out most larger orders (a preserved neighbour of
//!   the same order cannot be inside a larger block), and a page range is
//!   checked once as a whole (see [`RadixTree`] for the cost).
//! - **Shared nodes and cycles** on the incoming side: a table entry equal
//!   to a node on the current path is a [`Error::Cycle`]; any other node
//!   reached twice is a [`Error::SharedNode`], found with a hash set in the
//!   caller's buffer ([`VisitedSet`]), whose capacity also bounds how many
//!   nodes a walk reads. With the fixed depth, every walk ends.
//! - **Maximum order**: [`Order::MAX`](kho_mem::Order::MAX) (51, the key
//!   encoding's limit) by default, as upstream's range decomposition can
//!   produce large orders; [`RadixTree::with_max_order`] lowers it.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod blocks;
mod error;
mod incoming;
mod tree;
mod visited;
mod walk;

pub use blocks::PageBlocks;
pub use error::{Error, Result};
pub use incoming::IncomingTree;
pub use tree::{NodeStats, RadixTree};
pub use visited::VisitedSet;
pub use walk::{MAX_ROOT_SLOT, PreservedRange, Ranges, ranges, walk};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
