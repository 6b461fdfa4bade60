//! KHO scratch areas: sizing, placement per NUMA node, the descriptor array,
//! scratch-only early allocation and reuse across handovers.
//!
//! This first part holds the command-line syntax (`kho=`, `kho_scratch=`),
//! the memory-map types, the sizing and the placement of the areas.
//!
//! ```
//! use kho_scratch::{parse_kho_scratch, BootUsage, ScratchSizes};
//!
//! let spec = parse_kho_scratch("16M,512M,256M")?;
//! let sizes = ScratchSizes::compute(spec, &BootUsage::default())?;
//! assert_eq!(sizes.global(), 512 << 20);
//! # Ok::<(), kho_scratch::Error>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod area;
mod cmdline;
mod error;
mod memmap;
mod place;
mod sizing;

pub use area::{AreaKind, ScratchArea, ScratchAreas, check_no_overlap};
pub use cmdline::{
    DEFAULT_SCALE_PERCENT, KhoCmdline, ScratchSpec, memparse, parse_cmdline, parse_cmdline_bytes,
    parse_kho, parse_kho_bytes, parse_kho_scratch, parse_kho_scratch_bytes,
};
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

/// The most usable memory-map entries the early allocator
/// keeps (x86's zero page holds 128 e820 entries).
pub const MAX_MEMMAP_ENTRIES: usize = 128;
