//! KHO scratch areas: sizing, placement per NUMA node, the descriptor array,
//! scratch-only early allocation and reuse across handovers.
//!
//! Scratch areas are physically contiguous ranges that never hold preserved
//! memory. The kernel after a kexec allocates only from them until it has
//! reserved every preserved block, and hands the same areas on, so
//! handovers can repeat forever (spec section 7). This crate is `no_std`,
//! allocation-free and `forbid(unsafe_code)`: it works on caller-provided
//! slices and small fixed-capacity lists ([`MAX_NUMA_NODES`],
//! [`MAX_AREAS`], [`MAX_MEMMAP_ENTRIES`], the allocator's `N`), so a boot
//! stub can use it before it has a heap.
//!
//! # A cold boot, then a KHO boot
//!
//! ```
//! use kho_mem::{HostMem, PhysAddr, PhysRange};
//! use kho_scratch::*;
//!
//! const M: u64 = 1 << 20;
//! let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
//!
//! // Cold boot: 256 MiB of RAM at 1 GiB, the kernel image at its start.
//! let ram = r(0x4000_0000, 256 * M);
//! let map = [MemRegion::ram(ram, NodeId::ZERO)];
//! let kernel = r(0x4000_0000, 16 * M);
//! let cmdline = parse_cmdline("console=ttyAMA0 kho=on kho_scratch=16M,32M,8M");
//! assert_eq!(cmdline.enable, Some(true));
//! let sizes = ScratchSizes::compute(cmdline.scratch_or_default(), &BootUsage::default())?;
//! let areas = place_scratch(&map, &[kernel], &sizes, LowLimit::arm64(ram))?;
//! assert_eq!(areas.len(), 3); // lowmem, global, node 0
//!
//! // Hand the areas over: write the descriptor array into physical memory.
//! let mut mem = HostMem::new(ram.start(), ram.size())?;
//! let array = areas.write_array(&mut mem, PhysAddr::new(0x4100_0000))?;
//!
//! // KHO boot: take the incoming array as the areas (kho_scratch= is ignored).
//! let incoming = ScratchAreas::read_array(&mem, array.start(), array.size(), ReadPolicy::STRICT)?;
//! assert_eq!(incoming.as_slice().len(), 3);
//! assert!(incoming.ranges().eq(areas.ranges()));
//!
//! // Allocate only from scratch until the preserved blocks are reserved.
//! let mut early: ScratchAllocator = ScratchAllocator::new(&incoming);
//! early.reserve(array)?;
//! let page = early.alloc(4096, 4096)?;
//! assert!(incoming.contains_range(page));
//!
//! // Preserved memory must stay out of scratch.
//! check_no_overlap(&incoming, [kernel])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Upstream behaviour followed, and choices made
//!
//! - **`kho_scratch=`** ([`parse_kho_scratch`]): exactly what upstream
//!   accepts — `N%` (≤ 10 characters, `kstrtouint` base 10) or three
//!   [`memparse`] sizes `L,G,P` (`simple_strtoull` base 0: `0x` hex, leading
//!   `0` octal; one case-insensitive `K/M/G/T/P/E` suffix). Every rejection
//!   is a named [`Error`] quoting the bad token. Only divergence: a size
//!   that overflows 64 bits is an error instead of wrapping.
//! - **`kho=`** ([`parse_kho`]): kstrtobool of current kernels (first one or
//!   two characters: `y/t/e/1`, `n/f/d/0`, `on`, `off`).
//! - **Whole command line** ([`parse_cmdline`]): kernel `next_arg` splitting
//!   with quotes, `-`/`_` equivalence, stop at `--`; the last *valid*
//!   occurrence wins (a malformed one leaves the setting alone, as the
//!   early_param handler's failure does) and the first error is kept.
//! - **Sizing** ([`ScratchSizes`]): CORE-MM formulas (newest upstream),
//!   rounded up to [`AREA_ALIGN`](kho_abi::scratch::AREA_ALIGN) (2 MiB); every
//!   area is at least 2 MiB, where upstream can produce a zero-size area.
//! - **Low limit** ([`LowLimit`]): x86_64 `4 GiB − 1`; arm64
//!   `min(4 GiB, end of RAM) − 1` when RAM starts below 4 GiB (the DMA zone
//!   without firmware restrictions), else end of RAM − 1. The area ends at
//!   or below the limit, as memblock treats it.
//! - **Placement** ([`place_scratch`]): memblock's default top-down search,
//!   2 MiB aligned, first page excluded; lowmem below the limit, global
//!   anywhere, one per node inside that node (exact node, no fallback);
//!   areas never straddle nodes; output in kho-abi array order.
//! - **Reuse** ([`ScratchAreas::read_array`]): every incoming entry is
//!   validated (length, RAM, wrap, empty, page alignment, overlap) with
//!   named errors carrying the entry index; 2 MiB alignment is reported
//!   ([`ScratchAreas::all_area_aligned`]), not required, as upstream does
//!   not require it. [`ReadPolicy::LINUX`] accepts the zero-size entries a
//!   Linux kernel may write.
//! - **Early allocator** ([`ScratchAllocator`]): first fit by ascending
//!   address, page-granular, scratch only until
//!   [`ScratchAllocator::end_scratch_only`], never reserved memory.
//!
//! # Features
//!
//! None: the crate has no optional features and needs neither `std` nor
//! `alloc`.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod area;
mod array;
mod cmdline;
mod early;
mod error;
mod memmap;
mod place;
mod sizing;

pub use area::{AreaKind, ScratchArea, ScratchAreas, check_no_overlap};
pub use array::{ReadPolicy, array_byte_len};
pub use cmdline::{
    DEFAULT_SCALE_PERCENT, KhoCmdline, ScratchSpec, memparse, parse_cmdline, parse_cmdline_bytes,
    parse_kho, parse_kho_bytes, parse_kho_scratch, parse_kho_scratch_bytes,
};
pub use early::{DEFAULT_RESERVED_CAPACITY, ScratchAllocator};
pub use error::{Error, Param, Result, TOKEN_CAPACITY, Token};
pub use memmap::{LowLimit, MemKind, MemRegion, NodeId};
pub use place::place_scratch;
pub use sizing::{BootUsage, ScratchSizes};

use kho_abi::scratch::FIRST_NODE_INDEX;

/// The most NUMA nodes with memory this crate handles (Linux x86_64's
/// default `NODES_SHIFT` of 6).
pub const MAX_NUMA_NODES: usize = 64;

/// The most scratch areas: lowmem, global and one per node.
pub const MAX_AREAS: usize = FIRST_NODE_INDEX + MAX_NUMA_NODES;

/// The most usable memory-map entries [`ScratchAllocator::end_scratch_only`]
/// keeps (x86's zero page holds 128 e820 entries).
pub const MAX_MEMMAP_ENTRIES: usize = 128;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
