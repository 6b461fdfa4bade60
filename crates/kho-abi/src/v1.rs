//! kho-v1 (Linux 6.16 – 6.19): the serialized preserved-memory map.
//!
//! Under `compatible = "kho-v1"`, `preserved-memory-map` holds the physical
//! address of the first [`Chunk`] of a singly linked list (0: nothing is
//! preserved). A chunk is one page: a [`ChunkHeader`] (`next` chunk, the
//! `order` of every entry, `num_elms` entries used) and up to
//! [`CHUNK_ENTRIES`] [`ChunkEntry`]s. An entry names one bitmap of
//! `PRESERVE_BITS` bits: bit `b` set means the block of `2^order` pages at
//! `phys_start + b × (PAGE_SIZE << order)` is preserved, and
//! `phys_start = (index × PRESERVE_BITS) << (order + PAGE_SHIFT)` for the
//! bitmap's index in its order. Chunk and bitmap pages are ordinary
//! (unpreserved) memory of the old kernel; the new kernel must read them
//! before it allocates outside scratch.
//!
//! The size of a bitmap changed under the same compatible string, as a
//! fix that went to stable kernels, so a reader has to be told which one
//! it reads ([`BitmapSize`]):
//!
//! | Linux | `PRESERVE_BITS` | bitmap | allocated with |
//! |---|---|---|---|
//! | 6.16.x, 6.17 – 6.17.8 | `512 * 8` = 4096 | 512 bytes, 512-byte aligned | `kzalloc(512)` |
//! | 6.17.9 and later 6.17.y, 6.18, 6.19 | `PAGE_SIZE * 8` = 32768 | one page, page-aligned | a page |
//!
//! The change is upstream commit a2fff99f92da "kho: increase metadata
//! bitmap size to PAGE_SIZE" (Pasha Tatashin; `Fixes:` the commit that
//! added KHO, Cc stable), merged during the 6.18 release candidates and
//! backported to 6.17.9; 6.16.y had reached its end of life. Chunks stayed
//! one page (`kzalloc(PAGE_SIZE)`, later `get_zeroed_page()`), and the
//! header and entry layouts never changed.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le32, Le64, PAGE_SHIFT, PAGE_SIZE};

/// Size of [`ChunkHeader`] (`struct khoser_mem_chunk_hdr`).
pub const CHUNK_HEADER_SIZE: usize = 16;
/// Size of [`ChunkEntry`] (`struct khoser_mem_bitmap_ptr`).
pub const CHUNK_ENTRY_SIZE: usize = 16;
/// Entries in one chunk page after its header (`KHOSER_BITMAP_SIZE`).
pub const CHUNK_ENTRIES: usize = (PAGE_SIZE - CHUNK_HEADER_SIZE) / CHUNK_ENTRY_SIZE;

/// Bits in one bitmap from Linux 6.17.9 and 6.18 on
/// (`PRESERVE_BITS = PAGE_SIZE * 8`).
pub const PRESERVE_BITS: usize = PAGE_SIZE * 8;
/// Bits in one bitmap in Linux 6.16.x and 6.17 – 6.17.8
/// (`PRESERVE_BITS = 512 * 8`).
pub const PRESERVE_BITS_6_16: usize = 512 * 8;

/// `struct khoser_mem_chunk_hdr`: the first 16 bytes of a chunk page.
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
pub struct ChunkHeader {
    /// Physical address of the next chunk page; 0 in the last chunk.
    pub next: Le64,
    /// Order of the blocks every entry of this chunk describes.
    pub order: Le32,
    /// Entries used, from the first (at most [`CHUNK_ENTRIES`]).
    pub num_elms: Le32,
}

/// `struct khoser_mem_bitmap_ptr`: one bitmap of a chunk.
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
pub struct ChunkEntry {
    /// Physical address of the block bit 0 stands for.
    pub phys_start: Le64,
    /// Physical address of the bitmap (never 0: Linux reads 0 as NULL).
    pub bitmap: Le64,
}

/// `struct khoser_mem_chunk`: one page of the chunk list.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Chunk {
    /// The header.
    pub header: ChunkHeader,
    /// The entries; only the first `header.num_elms` are meaningful.
    pub entries: [ChunkEntry; CHUNK_ENTRIES],
}

const _: () = {
    assert!(size_of::<ChunkHeader>() == CHUNK_HEADER_SIZE);
    assert!(core::mem::offset_of!(ChunkHeader, next) == 0);
    assert!(core::mem::offset_of!(ChunkHeader, order) == 8);
    assert!(core::mem::offset_of!(ChunkHeader, num_elms) == 12);
    assert!(size_of::<ChunkEntry>() == CHUNK_ENTRY_SIZE);
    assert!(core::mem::offset_of!(ChunkEntry, phys_start) == 0);
    assert!(core::mem::offset_of!(ChunkEntry, bitmap) == 8);
    assert!(size_of::<Chunk>() == PAGE_SIZE);
    assert!(core::mem::offset_of!(Chunk, entries) == CHUNK_HEADER_SIZE);
    assert!(CHUNK_ENTRIES == 255);
    assert!(PRESERVE_BITS == 32768);
    assert!(PRESERVE_BITS_6_16 == 4096);
};

/// Which bitmap size a kho-v1 map uses (see the module docs): nothing in
/// the map says it, the writer's kernel version does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BitmapSize {
    /// One page, 32768 bits, page-aligned: Linux 6.17.9 and later 6.17.y,
    /// 6.18, 6.19.
    #[default]
    Page,
    /// 512 bytes, 4096 bits, 512-byte aligned: Linux 6.16.x, 6.17 – 6.17.8.
    Bytes512,
}

impl BitmapSize {
    /// log2 of the bits in one bitmap.
    pub const fn bits_log2(self) -> u32 {
        match self {
            BitmapSize::Page => PRESERVE_BITS.trailing_zeros(),
            BitmapSize::Bytes512 => PRESERVE_BITS_6_16.trailing_zeros(),
        }
    }

    /// Bits in one bitmap (`PRESERVE_BITS` of that kernel).
    pub const fn bits(self) -> u64 {
        1 << self.bits_log2()
    }

    /// Bytes in one bitmap, which is also its alignment.
    pub const fn bytes(self) -> u64 {
        self.bits() / 8
    }

    /// The largest order whose bitmaps span at most 2^63 bytes, so that
    /// every `phys_start` and block address fits in 64 bits: 36 for
    /// [`BitmapSize::Page`], 39 for [`BitmapSize::Bytes512`]. Linux has no
    /// explicit limit but overflows its `phys_start` arithmetic beyond it;
    /// an order-36 block is 256 TiB.
    pub const fn max_order(self) -> u32 {
        63 - PAGE_SHIFT - self.bits_log2()
    }

    /// log2 of the bytes one bitmap of `order` covers, `None` above
    /// [`BitmapSize::max_order`].
    pub const fn span_log2(self, order: u32) -> Option<u32> {
        if order > self.max_order() {
            return None;
        }
        Some(self.bits_log2() + PAGE_SHIFT + order)
    }

    /// `phys_start` of the bitmap with `index` in `order`:
    /// `(index × bits) << (order + PAGE_SHIFT)`; `None` if the order is too
    /// large or the address does not fit in 64 bits.
    pub const fn phys_start(self, order: u32, index: u64) -> Option<u64> {
        let Some(shift) = self.span_log2(order) else {
            return None;
        };
        if index > (u64::MAX >> shift) {
            return None;
        }
        Some(index << shift)
    }

    /// The bitmap index a `phys_start` stands for in `order`; `None` if the
    /// order is too large or `phys_start` is not a multiple of the span.
    pub const fn bitmap_index(self, order: u32, phys_start: u64) -> Option<u64> {
        let Some(shift) = self.span_log2(order) else {
            return None;
        };
        if phys_start & ((1u64 << shift) - 1) != 0 {
            return None;
        }
        Some(phys_start >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes written from spec §12.2 (header {next u64 @0, order
    /// u32 @8, num_elms u32 @12}, entries {phys_start u64, bitmap u64}
    /// right after it), not from our own output.
    #[test]
    fn chunk_layout_from_the_spec() {
        let mut page = [0u8; PAGE_SIZE];
        page[0..8].copy_from_slice(&0x4567_8000u64.to_le_bytes()); // next
        page[8..12].copy_from_slice(&9u32.to_le_bytes()); // order
        page[12..16].copy_from_slice(&2u32.to_le_bytes()); // num_elms
        page[16..24].copy_from_slice(&0x40_0000_0000u64.to_le_bytes()); // [0].phys_start
        page[24..32].copy_from_slice(&0x4123_4000u64.to_le_bytes()); // [0].bitmap
        page[4080..4088].copy_from_slice(&0x1234u64.to_le_bytes()); // [254].phys_start
        page[4088..4096].copy_from_slice(&0x5678u64.to_le_bytes()); // [254].bitmap
        let chunk = Chunk::ref_from_bytes(&page[..]).unwrap();
        assert_eq!(chunk.header.next.get(), 0x4567_8000);
        assert_eq!(chunk.header.order.get(), 9);
        assert_eq!(chunk.header.num_elms.get(), 2);
        assert_eq!(chunk.entries[0].phys_start.get(), 0x40_0000_0000);
        assert_eq!(chunk.entries[0].bitmap.get(), 0x4123_4000);
        assert_eq!(chunk.entries[254].phys_start.get(), 0x1234);
        assert_eq!(chunk.entries[254].bitmap.get(), 0x5678);
        assert_eq!(chunk.as_bytes(), &page[..]);

        let header = ChunkHeader::read_from_bytes(&page[..16]).unwrap();
        assert_eq!(header, chunk.header);
        assert_eq!(CHUNK_ENTRIES, 255, "(4096 - 16) / 16");
    }

    /// Spec §12.2: PRESERVE_BITS = PAGE × 8 = 32768, "order-0 bitmap covers
    /// 128 MiB"; the 6.16 source's comment: 512-byte bitmaps, "for order 0
    /// allocations each bitmap will cover 16M".
    #[test]
    fn bitmap_sizes_and_spans() {
        assert_eq!(PRESERVE_BITS, 32768);
        assert_eq!(BitmapSize::Page.bits(), 32768);
        assert_eq!(BitmapSize::Page.bytes(), 4096);
        assert_eq!(BitmapSize::Bytes512.bits(), 4096);
        assert_eq!(BitmapSize::Bytes512.bytes(), 512);
        assert_eq!(BitmapSize::default(), BitmapSize::Page);
        assert_eq!(1u64 << BitmapSize::Page.span_log2(0).unwrap(), 128 << 20);
        assert_eq!(1u64 << BitmapSize::Bytes512.span_log2(0).unwrap(), 16 << 20);
        // Order 18 (1 GiB blocks): 32768 GiB per page bitmap.
        assert_eq!(BitmapSize::Page.span_log2(18), Some(45));
        assert_eq!(BitmapSize::Page.max_order(), 36);
        assert_eq!(BitmapSize::Bytes512.max_order(), 39);
        assert_eq!(BitmapSize::Page.span_log2(36), Some(63));
        assert_eq!(BitmapSize::Page.span_log2(37), None);
        assert_eq!(BitmapSize::Bytes512.span_log2(39), Some(63));
        assert_eq!(BitmapSize::Bytes512.span_log2(40), None);
    }

    /// `phys_start = (index × PRESERVE_BITS) << (order + PAGE_SHIFT)`,
    /// worked by hand: index 3, order 9 → 3 × 32768 × 2 MiB = 192 GiB.
    #[test]
    fn phys_start_formula() {
        assert_eq!(BitmapSize::Page.phys_start(9, 3), Some(0x30_0000_0000));
        assert_eq!(BitmapSize::Page.bitmap_index(9, 0x30_0000_0000), Some(3));
        assert_eq!(BitmapSize::Page.phys_start(0, 1), Some(0x800_0000));
        assert_eq!(BitmapSize::Bytes512.phys_start(0, 1), Some(0x100_0000));
        assert_eq!(BitmapSize::Bytes512.phys_start(9, 3), Some(0x6_0000_0000));
        assert_eq!(BitmapSize::Page.bitmap_index(0, 0x800_1000), None);
        assert_eq!(BitmapSize::Page.bitmap_index(37, 0), None);
        assert_eq!(BitmapSize::Page.phys_start(36, 1), Some(1 << 63));
        assert_eq!(BitmapSize::Page.phys_start(36, 2), None);
        assert_eq!(BitmapSize::Page.phys_start(0, u64::MAX), None);
    }
}
