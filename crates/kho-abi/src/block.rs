//! KHO serialization blocks (kho-v4): chains of one-page blocks of fixed-size entries.
//!
//! Linux 7.2 serializes LUO's sessions and each session's files into chains
//! of preserved pages (`include/linux/kho/abi/block.h`,
//! `kernel/liveupdate/kho_block.c`). Every page starts with a
//! [`BlockHeader`]; `count` entries of one fixed size follow it directly,
//! and `next` holds the physical address of the next page (0 ends the chain).
//! The chain's head address is stored by the client (for LUO in its own
//! sub-blob), never in the root KHO FDT. This format is what moved the root
//! `compatible` from `"kho-v3"` to `"kho-v4"`; the root FDT itself did not
//! change.
//!
//! A reader restores a chain as Linux's `kho_block_set_restore` does: at
//! most [`MAX_BLOCKS`] pages, no page visited twice (a cycle), and every
//! page's `count` from 1 to [`entries_per_block`] of the entry size.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le64, PAGE_SIZE};

/// Size of each block (`KHO_BLOCK_SIZE`): one page.
pub const BLOCK_SIZE: usize = PAGE_SIZE;
/// Size of [`BlockHeader`].
pub const HEADER_SIZE: usize = 16;
/// Longest chain a reader follows (`KHO_MAX_BLOCKS` in `kho_block.c`);
/// longer chains are treated as corrupt.
pub const MAX_BLOCKS: usize = 10_000;

/// `struct kho_block_header_ser` (packed, 16 bytes) at the start of a block.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C)]
pub struct BlockHeader {
    /// Physical address of the next block's header; 0 in the last block.
    pub next: Le64,
    /// Number of entries that follow this header in the block.
    pub count: Le64,
}

const _: () = {
    assert!(size_of::<BlockHeader>() == HEADER_SIZE);
    assert!(core::mem::offset_of!(BlockHeader, next) == 0);
    assert!(core::mem::offset_of!(BlockHeader, count) == 8);
};

/// How many entries of `entry_size` bytes fit in one block after its header
/// (`count_per_block`); 0 for a zero entry size.
pub const fn entries_per_block(entry_size: usize) -> usize {
    match (BLOCK_SIZE - HEADER_SIZE).checked_div(entry_size) {
        Some(n) => n,
        None => 0,
    }
}

impl BlockHeader {
    /// Whether `count` is one a reader accepts for entries of `entry_size`
    /// bytes: at least 1 and at most [`entries_per_block`].
    pub fn count_is_valid(&self, entry_size: usize) -> bool {
        let count = self.count.get();
        count != 0 && count <= entries_per_block(entry_size) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values from upstream's header and the comment on
    /// `KHO_MAX_BLOCKS` ("For 32-byte entries ... each block holds up to 127
    /// entries"), not from our own output.
    #[test]
    fn layout_and_capacity_match_upstream() {
        let mut bytes = [0u8; 16];
        bytes[0..8].copy_from_slice(&0x4123_4000u64.to_le_bytes());
        bytes[8..16].copy_from_slice(&127u64.to_le_bytes());
        let h = BlockHeader::read_from_bytes(&bytes[..]).unwrap();
        assert_eq!((h.next.get(), h.count.get()), (0x4123_4000, 127));
        assert_eq!(h.as_bytes(), &bytes[..]);

        assert_eq!(BLOCK_SIZE, 4096);
        assert_eq!(MAX_BLOCKS, 10_000);
        assert_eq!(entries_per_block(32), 127);
        assert_eq!(entries_per_block(8), 510);
        assert_eq!(entries_per_block(4080), 1);
        assert_eq!(entries_per_block(4081), 0);
        assert_eq!(entries_per_block(0), 0);

        assert!(h.count_is_valid(32));
        assert!(!h.count_is_valid(33));
        assert!(!BlockHeader::default().count_is_valid(32));
    }
}
