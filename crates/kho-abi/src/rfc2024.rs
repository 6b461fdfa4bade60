//! The 2024 KHO design (Alexander Graf's RFC and v1–v3 series): `mem`
//! ranges in any FDT node, the flattened mem cache, one scratch region.
//!
//! Before kho-v1, the handover was one FDT in which *any* node could carry
//! a `mem` property: an array of [`KhoMem`] `{addr, len}` ranges the next
//! kernel must reserve. Because the next kernel cannot parse an FDT before
//! its early allocator works, the old kernel also handed over the *mem
//! cache*: the same ranges as one [`KhoMem`] array, its own kexec segment.
//! Scratch was a single physically contiguous region, and x86 passed the
//! three (address, size) pairs in a 48-byte [`KhoData`] setup_data payload
//! (type [`SETUP_KEXEC_KHO`](crate::x86::SETUP_KEXEC_KHO), as later
//! versions).
//!
//! The series left several details open; the choices kho-rs made (and why)
//! are in `docs/ABI.md`, "The 2024 design":
//!
//! - values are little-endian (the series said "native"; every KHO
//!   architecture is little-endian), the FDT header big-endian as always;
//! - the root `compatible` is [`COMPATIBLE`], a kho-rs label;
//! - bit 0 of `addr` is [`MEM_NOINIT`], bits 1–11 are reserved (zero), so
//!   the address is `addr & !`[`MEM_FLAGS_MASK`]; address and length are
//!   page-aligned and the length is non-zero;
//! - no two ranges overlap, in one node or across nodes (adjacent is fine);
//! - the mem cache holds exactly the tree's ranges, one entry per `mem`
//!   entry (flags included), sorted by address, nothing merged.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le64, PAGE_SIZE};

/// Root `compatible` kho-rs writes and requires for the 2024 design (a
/// kho-rs label: see the module docs and `docs/ABI.md`).
pub const COMPATIBLE: &str = "kho-2024";

/// Property name, in any node including the root: an array of [`KhoMem`].
pub const PROP_MEM: &str = "mem";

/// Bit 0 of [`KhoMem::addr`]: the next kernel reserves the range but does
/// not initialise its page metadata (the later NOINIT patch of the series).
pub const MEM_NOINIT: u64 = 1;

/// The low bits of [`KhoMem::addr`] that carry flags rather than address
/// (a page-aligned address leaves them clear). Only [`MEM_NOINIT`] is
/// defined; the others must be zero.
pub const MEM_FLAGS_MASK: u64 = PAGE_SIZE as u64 - 1;

/// Size of one [`KhoMem`] entry, in a `mem` property and in the mem cache.
pub const KHO_MEM_SIZE: usize = 16;

/// `struct kho_mem`: one physical range the next kernel must reserve.
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
pub struct KhoMem {
    /// Physical start address; flags in the bits below the page size.
    pub addr: Le64,
    /// Length in bytes.
    pub len: Le64,
}

impl KhoMem {
    /// An entry for `[addr, addr + len)` with `flags` or-ed into `addr`.
    pub fn new(addr: u64, len: u64, flags: u64) -> Self {
        KhoMem {
            addr: Le64::new(addr | flags),
            len: Le64::new(len),
        }
    }

    /// The address without the flag bits.
    pub fn start(&self) -> u64 {
        self.addr.get() & !MEM_FLAGS_MASK
    }

    /// The flag bits of `addr`.
    pub fn flags(&self) -> u64 {
        self.addr.get() & MEM_FLAGS_MASK
    }
}

/// `struct kho_data` of the 2024 series (packed, 48 bytes): the x86
/// setup_data payload naming the FDT, the scratch region and the mem cache.
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
pub struct KhoData {
    /// Physical address of the KHO FDT.
    pub dt_addr: Le64,
    /// Its size in bytes (the FDT's `totalsize`, not a fixed page).
    pub dt_size: Le64,
    /// Physical start of the one scratch region.
    pub scratch_addr: Le64,
    /// Size of the scratch region in bytes.
    pub scratch_size: Le64,
    /// Physical address of the mem cache ([`KhoMem`] array).
    pub mem_cache_addr: Le64,
    /// Byte length of the mem cache (16 × entries; 0 when nothing is
    /// preserved).
    pub mem_cache_size: Le64,
}

/// Size of [`KhoData`], the `len` of its setup_data entry.
pub const KHO_DATA_SIZE: usize = 48;

const _: () = {
    assert!(size_of::<KhoMem>() == KHO_MEM_SIZE);
    assert!(core::mem::offset_of!(KhoMem, addr) == 0);
    assert!(core::mem::offset_of!(KhoMem, len) == 8);
    assert!(size_of::<KhoData>() == KHO_DATA_SIZE);
    assert!(core::mem::offset_of!(KhoData, dt_addr) == 0);
    assert!(core::mem::offset_of!(KhoData, dt_size) == 8);
    assert!(core::mem::offset_of!(KhoData, scratch_addr) == 16);
    assert!(core::mem::offset_of!(KhoData, scratch_size) == 24);
    assert!(core::mem::offset_of!(KhoData, mem_cache_addr) == 32);
    assert!(core::mem::offset_of!(KhoData, mem_cache_size) == 40);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes worked out by hand: two little-endian u64s, the flag
    /// in the lowest byte of `addr`.
    #[test]
    fn kho_mem_bytes() {
        let m = KhoMem::new(0x4020_3000, 0x2000, MEM_NOINIT);
        assert_eq!(
            m.as_bytes(),
            &[
                0x01, 0x30, 0x20, 0x40, 0, 0, 0, 0, // addr | NOINIT
                0x00, 0x20, 0, 0, 0, 0, 0, 0, // len
            ]
        );
        assert_eq!(m.start(), 0x4020_3000);
        assert_eq!(m.flags(), MEM_NOINIT);
        let back = KhoMem::read_from_bytes(m.as_bytes()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn kho_data_bytes() {
        let d = KhoData {
            dt_addr: Le64::new(0x0123_4000),
            dt_size: Le64::new(0x1a0),
            scratch_addr: Le64::new(0x4000_0000),
            scratch_size: Le64::new(0x0200_0000),
            mem_cache_addr: Le64::new(0x0123_5000),
            mem_cache_size: Le64::new(48),
        };
        let mut golden = [0u8; KHO_DATA_SIZE];
        for (i, v) in [
            0x0123_4000u64,
            0x1a0,
            0x4000_0000,
            0x0200_0000,
            0x0123_5000,
            48,
        ]
        .iter()
        .enumerate()
        {
            golden[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(d.as_bytes(), &golden);
        assert_eq!(&d.as_bytes()[32..34], &[0x00, 0x50]);
    }

    #[test]
    fn names() {
        assert_eq!(COMPATIBLE, "kho-2024");
        assert_eq!(PROP_MEM, "mem");
        assert_eq!(MEM_FLAGS_MASK, 0xfff);
    }
}
