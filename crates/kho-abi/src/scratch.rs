//! Scratch descriptors: the `{addr, size}` array handed to the next kernel.
//!
//! The array has no header: its entry count is its byte length divided by
//! [`DESCRIPTOR_SIZE`]. Linux orders it as \[0\] lowmem area, \[1\] global area,
//! \[2..\] one area per NUMA node with memory.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::Le64;

/// `struct kho_scratch`: one physically contiguous scratch area.
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
pub struct ScratchDescriptor {
    /// Physical start address.
    pub addr: Le64,
    /// Size in bytes.
    pub size: Le64,
}

/// Size of one descriptor in bytes.
pub const DESCRIPTOR_SIZE: usize = 16;

/// Index of the low-memory area in a Linux-produced array.
pub const LOWMEM_INDEX: usize = 0;
/// Index of the global area in a Linux-produced array.
pub const GLOBAL_INDEX: usize = 1;
/// Index of the first per-node area in a Linux-produced array.
pub const FIRST_NODE_INDEX: usize = 2;

/// Alignment of every scratch area Linux allocates
/// (`CMA_MIN_ALIGNMENT_BYTES`: one 2 MiB pageblock with 4 KiB pages).
pub const AREA_ALIGN: u64 = 2 << 20;

/// Alignment Linux's kexec_file gives the descriptor-array segment.
pub const ARRAY_SEGMENT_ALIGN: u64 = 64 << 10;

const _: () = {
    assert!(size_of::<ScratchDescriptor>() == DESCRIPTOR_SIZE);
    assert!(core::mem::offset_of!(ScratchDescriptor, addr) == 0);
    assert!(core::mem::offset_of!(ScratchDescriptor, size) == 8);
};

impl ScratchDescriptor {
    /// A descriptor for `[addr, addr + size)`.
    pub fn new(addr: u64, size: u64) -> Self {
        ScratchDescriptor {
            addr: Le64::new(addr),
            size: Le64::new(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_view_over_bytes() {
        let mut bytes = [0u8; 32];
        bytes[0..8].copy_from_slice(&0x100_0000u64.to_le_bytes());
        bytes[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        bytes[16..24].copy_from_slice(&0x4000_0000u64.to_le_bytes());
        bytes[24..32].copy_from_slice(&0x400_0000u64.to_le_bytes());
        let array = <[ScratchDescriptor]>::ref_from_bytes(&bytes[..]).unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[1], ScratchDescriptor::new(0x4000_0000, 0x400_0000));
        assert_eq!(array[0].size.get(), 0x20_0000);
    }
}
