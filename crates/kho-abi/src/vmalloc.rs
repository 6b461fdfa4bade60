//! vmalloc preservation: the 16-byte descriptor and the one-page chunk list.
//!
//! A preserved vmalloc area is described by a [`VmallocDescriptor`] that the
//! client stores inside its own preserved data. `first` points at a chain of
//! [`VmallocChunk`] pages; each holds up to [`CHUNK_ENTRIES`] physical
//! addresses of `2^order`-page blocks in virtual-address order, terminated by
//! the first zero entry (no terminator when all slots are used).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le16, Le32, Le64, PAGE_SIZE};

/// Flag: the area was a plain `VM_ALLOC` mapping (`KHO_VMALLOC_ALLOC`).
pub const FLAG_VM_ALLOC: u16 = 0x0001;
/// Flag: the area allowed huge mappings (`KHO_VMALLOC_HUGE_VMAP`).
pub const FLAG_HUGE_VMAP: u16 = 0x0002;
/// Every flag bit the ABI defines.
pub const FLAGS_KNOWN: u16 = FLAG_VM_ALLOC | FLAG_HUGE_VMAP;

/// `struct kho_vmalloc`: descriptor of a preserved vmalloc area (16 bytes).
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
pub struct VmallocDescriptor {
    /// Phys of the first chunk page.
    pub first: Le64,
    /// Number of PAGE-sized pages in the area.
    pub total_pages: Le32,
    /// `FLAG_*` bits.
    pub flags: Le16,
    /// Page order of every physically contiguous block.
    pub order: Le16,
}

/// Number of address slots in a chunk page after its `next` header.
pub const CHUNK_ENTRIES: usize = (PAGE_SIZE - 8) / 8;

/// `struct kho_vmalloc_chunk`: one page of the chunk chain.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct VmallocChunk {
    /// Phys of the next chunk page, 0 for the last.
    pub next: Le64,
    /// Phys of each block; the first 0 terminates the list.
    pub phys: [Le64; CHUNK_ENTRIES],
}

const _: () = {
    assert!(size_of::<VmallocDescriptor>() == 16);
    assert!(core::mem::offset_of!(VmallocDescriptor, first) == 0);
    assert!(core::mem::offset_of!(VmallocDescriptor, total_pages) == 8);
    assert!(core::mem::offset_of!(VmallocDescriptor, flags) == 12);
    assert!(core::mem::offset_of!(VmallocDescriptor, order) == 14);
    assert!(CHUNK_ENTRIES == 511);
    assert!(size_of::<VmallocChunk>() == PAGE_SIZE);
    assert!(core::mem::offset_of!(VmallocChunk, next) == 0);
    assert!(core::mem::offset_of!(VmallocChunk, phys) == 8);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_field_offsets_from_bytes() {
        let bytes: [u8; 16] = [
            0x00, 0x50, 0x34, 0x12, 0, 0, 0, 0, // first = 0x1234_5000
            0x00, 0x02, 0, 0, // total_pages = 512
            0x03, 0x00, // flags = ALLOC | HUGE
            0x09, 0x00, // order = 9
        ];
        let d = VmallocDescriptor::read_from_bytes(&bytes[..]).unwrap();
        assert_eq!(d.first.get(), 0x1234_5000);
        assert_eq!(d.total_pages.get(), 512);
        assert_eq!(d.flags.get(), FLAG_VM_ALLOC | FLAG_HUGE_VMAP);
        assert_eq!(d.order.get(), 9);
    }

    #[test]
    fn chunk_next_is_first_word() {
        let mut page = [0u8; PAGE_SIZE];
        page[0..8].copy_from_slice(&0xabc000u64.to_le_bytes());
        page[8..16].copy_from_slice(&0x5000u64.to_le_bytes());
        page[PAGE_SIZE - 8..].copy_from_slice(&0x9000u64.to_le_bytes());
        let c = VmallocChunk::ref_from_bytes(&page[..]).unwrap();
        assert_eq!(c.next.get(), 0xabc000);
        assert_eq!(c.phys[0].get(), 0x5000);
        assert_eq!(c.phys[CHUNK_ENTRIES - 1].get(), 0x9000);
    }
}
