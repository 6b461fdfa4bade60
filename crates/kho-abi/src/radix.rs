//! The kho-v2 preserved-memory radix tree: geometry, key encoding, node layouts.
//!
//! One key names one preserved block of `2^order` pages:
//! `key = (1 << (ORDER_0_LOG2 - order)) | (phys >> (PAGE_SHIFT + order))`.
//! The key's high "order bit" encodes the order, the low bits the block's
//! frame number shifted by its order. Keys are looked up like virtual
//! addresses in a page table: [`TREE_MAX_DEPTH`]` - 1` levels of 512-entry
//! tables (root = level `TREE_MAX_DEPTH - 1`), then a level-0 leaf bitmap of
//! 32768 bits. Every node is one page. Ascending key order therefore visits
//! higher orders first and, within one order, ascending physical addresses.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le64, PAGE_SHIFT, PAGE_SIZE};

/// The radix geometry for a given page size, per the upstream formulas.
///
/// kho-rs uses [`Geometry::PAGE_4K`]; the others exist to document (and test)
/// how the ABI scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// log2 of the page size.
    pub page_shift: u32,
}

impl Geometry {
    /// 4 KiB pages (x86_64, arm64-4K): the geometry kho-rs implements.
    pub const PAGE_4K: Geometry = Geometry { page_shift: 12 };
    /// 16 KiB pages (arm64-16K), for reference.
    pub const PAGE_16K: Geometry = Geometry { page_shift: 14 };
    /// 64 KiB pages (arm64-64K), for reference.
    pub const PAGE_64K: Geometry = Geometry { page_shift: 16 };

    /// Bit position of the order bit for order 0 (`KHO_ORDER_0_LOG2`).
    pub const fn order0_log2(self) -> u32 {
        64 - self.page_shift
    }

    /// log2 of the entries in one table node (`KHO_TABLE_SIZE_LOG2`).
    pub const fn table_size_log2(self) -> u32 {
        self.page_shift - 3
    }

    /// log2 of the bits in one leaf bitmap (`KHO_BITMAP_SIZE_LOG2`).
    pub const fn bitmap_size_log2(self) -> u32 {
        self.page_shift + 3
    }

    /// Number of levels including the leaf level (`KHO_TREE_MAX_DEPTH`).
    pub const fn max_depth(self) -> u32 {
        let span = self.order0_log2() - self.bitmap_size_log2();
        span.div_ceil(self.table_size_log2()) + 1
    }
}

/// `KHO_ORDER_0_LOG2` for 4 KiB pages: order 0 sets key bit 52.
pub const ORDER_0_LOG2: u32 = Geometry::PAGE_4K.order0_log2();
/// `KHO_TABLE_SIZE_LOG2` for 4 KiB pages.
pub const TABLE_SIZE_LOG2: u32 = Geometry::PAGE_4K.table_size_log2();
/// `KHO_BITMAP_SIZE_LOG2` for 4 KiB pages.
pub const BITMAP_SIZE_LOG2: u32 = Geometry::PAGE_4K.bitmap_size_log2();
/// `KHO_TREE_MAX_DEPTH` for 4 KiB pages: levels 5 (root) … 1 are tables, 0 is the leaf.
pub const TREE_MAX_DEPTH: u32 = Geometry::PAGE_4K.max_depth();
/// Level of the root table.
pub const ROOT_LEVEL: u32 = TREE_MAX_DEPTH - 1;
/// Entries in one table node.
pub const TABLE_ENTRIES: usize = 1 << TABLE_SIZE_LOG2;
/// Bits in one leaf bitmap.
pub const BITMAP_BITS: usize = 1 << BITMAP_SIZE_LOG2;
/// 64-bit words in one leaf bitmap.
pub const BITMAP_WORDS: usize = BITMAP_BITS / 64;

/// Largest order a key can encode: beyond it the order bit and the shift by
/// `PAGE_SHIFT + order` no longer fit in 64 bits.
pub const MAX_ORDER: u32 = ORDER_0_LOG2 - 1;

/// Encode the key of the block of `2^order` pages at `phys`.
///
/// Returns `None` if `order` exceeds [`MAX_ORDER`] or `phys` is not aligned to
/// the block size (`PAGE_SIZE << order`), which the ABI requires.
pub const fn encode_key(phys: u64, order: u32) -> Option<u64> {
    if order > MAX_ORDER {
        return None;
    }
    let shift = PAGE_SHIFT + order;
    if phys & ((1u64 << shift) - 1) != 0 {
        return None;
    }
    Some((1u64 << (ORDER_0_LOG2 - order)) | (phys >> shift))
}

/// Decode a key into `(phys, order)`.
///
/// Returns `None` for keys that no block encodes to: zero, or an order bit
/// above [`ORDER_0_LOG2`] or below the bit of [`MAX_ORDER`].
pub const fn decode_key(key: u64) -> Option<(u64, u32)> {
    if key == 0 {
        return None;
    }
    let msb = 63 - key.leading_zeros();
    if msb > ORDER_0_LOG2 || msb < ORDER_0_LOG2 - MAX_ORDER {
        return None;
    }
    let order = ORDER_0_LOG2 - msb;
    // The shift pushes the order bit out of the word: what remains is phys.
    Some((key << (PAGE_SHIFT + order), order))
}

/// Right shift that brings the index of table `level` (1 … ROOT_LEVEL) of a
/// key down to bit 0.
pub const fn level_shift(level: u32) -> u32 {
    (level - 1) * TABLE_SIZE_LOG2 + BITMAP_SIZE_LOG2
}

/// Index into the table at `level` (1 … [`ROOT_LEVEL`]) for `key`.
pub const fn table_index(key: u64, level: u32) -> usize {
    ((key >> level_shift(level)) & (TABLE_ENTRIES as u64 - 1)) as usize
}

/// Bit index inside the level-0 leaf bitmap for `key`.
pub const fn leaf_bit(key: u64) -> usize {
    (key & (BITMAP_BITS as u64 - 1)) as usize
}

/// A table node (levels 1 … [`ROOT_LEVEL`]): physical addresses of child
/// pages, 0 = empty.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RadixTable {
    /// Child page physical addresses.
    pub entries: [Le64; TABLE_ENTRIES],
}

/// A leaf node (level 0): bit `i` is bit `i % 64` of word `i / 64`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RadixLeaf {
    /// The bitmap words.
    pub words: [Le64; BITMAP_WORDS],
}

const _: () = {
    assert!(size_of::<RadixTable>() == PAGE_SIZE);
    assert!(size_of::<RadixLeaf>() == PAGE_SIZE);
    assert!(ORDER_0_LOG2 == 52);
    assert!(TABLE_SIZE_LOG2 == 9);
    assert!(BITMAP_SIZE_LOG2 == 15);
    assert!(TREE_MAX_DEPTH == 6);
    assert!(TABLE_ENTRIES == 512);
    assert!(BITMAP_BITS == 32768);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits `hi..=lo` of `x`, written from the spec's split table rather than
    /// from [`level_shift`].
    fn bits(x: u64, hi: u32, lo: u32) -> u64 {
        (x >> lo) & ((1u64 << (hi - lo + 1)) - 1)
    }

    #[test]
    fn geometry_matches_the_spec_table() {
        let rows = [
            (Geometry::PAGE_4K, 52, 9, 15, 6),
            (Geometry::PAGE_16K, 50, 11, 17, 4),
            (Geometry::PAGE_64K, 48, 13, 19, 4),
        ];
        for (g, order0, table, bitmap, depth) in rows {
            assert_eq!(g.order0_log2(), order0, "{g:?}");
            assert_eq!(g.table_size_log2(), table, "{g:?}");
            assert_eq!(g.bitmap_size_log2(), bitmap, "{g:?}");
            assert_eq!(g.max_depth(), depth, "{g:?}");
        }
    }

    #[test]
    fn order_zero_sets_bit_52() {
        assert_eq!(encode_key(0, 0), Some(1 << 52));
        assert_eq!(encode_key(0, 1), Some(1 << 51));
        assert_eq!(encode_key(0, 9), Some(1 << 43));
    }

    #[test]
    fn spec_example_key() {
        // Spec §3.3: phys 0x1000_0000 order 0 -> key 0x0010_0000_0001_0000.
        assert_eq!(encode_key(0x1000_0000, 0), Some(0x0010_0000_0001_0000));
        assert_eq!(decode_key(0x0010_0000_0001_0000), Some((0x1000_0000, 0)));
    }

    #[test]
    fn encode_decode_round_trip_orders_0_and_3() {
        let k0 = encode_key(0x1234_5000, 0).unwrap();
        assert_eq!(k0, (1 << 52) | 0x12345);
        assert_eq!(decode_key(k0), Some((0x1234_5000, 0)));

        // Order 3 needs 32 KiB alignment: 0x1234_5000 is not, 0x1234_0000 is.
        assert_eq!(encode_key(0x1234_5000, 3), None);
        let k3 = encode_key(0x1234_0000, 3).unwrap();
        assert_eq!(k3, (1 << 49) | (0x1234_0000 >> 15));
        assert_eq!(decode_key(k3), Some((0x1234_0000, 3)));
    }

    #[test]
    fn level_indices_of_a_known_key() {
        // 4K split (spec §3.4): L5 = 59:51, L4 = 50:42, L3 = 41:33,
        // L2 = 32:24, L1 = 23:15, leaf = 14:0.
        let key = encode_key(0x0000_7fff_ffff_f000, 0).unwrap();
        let split = [
            (5, 59, 51),
            (4, 50, 42),
            (3, 41, 33),
            (2, 32, 24),
            (1, 23, 15),
        ];
        for (level, hi, lo) in split {
            assert_eq!(
                table_index(key, level) as u64,
                bits(key, hi, lo),
                "L{level}"
            );
        }
        assert_eq!(leaf_bit(key) as u64, bits(key, 14, 0));
        assert_eq!(table_index(key, 5), 2);
        assert_eq!(table_index(key, 1), 511);
        assert_eq!(leaf_bit(key), 0x7fff);
        assert_eq!(bits(key, 63, 60), 0);
    }

    #[test]
    fn root_slot_by_order() {
        // Spec §3.4: root index 2 holds order 0, 1 holds order 1, 0 orders >= 2.
        let root = |phys, order| table_index(encode_key(phys, order).unwrap(), ROOT_LEVEL);
        assert_eq!(root(0x4000_0000, 0), 2);
        assert_eq!(root(0x4000_0000, 1), 1);
        assert_eq!(root(0x4000_0000, 2), 0);
        assert_eq!(root(0x4000_0000, 9), 0);
        assert_eq!(root(0x4000_0000, 18), 0);
    }

    #[test]
    fn ascending_keys_visit_high_orders_first() {
        let big = encode_key(0x4000_0000, 9).unwrap();
        let small_low = encode_key(0x1000, 0).unwrap();
        let small_high = encode_key(0x8000_0000, 0).unwrap();
        assert!(big < small_low && small_low < small_high);
    }

    #[test]
    fn invalid_keys_do_not_decode() {
        assert_eq!(decode_key(0), None);
        assert_eq!(decode_key(1 << 53), None);
        assert_eq!(decode_key(u64::MAX), None);
        assert_eq!(decode_key(1), None); // would be order 52
        assert_eq!(encode_key(0, MAX_ORDER + 1), None);
        assert_eq!(
            decode_key(encode_key(0, MAX_ORDER).unwrap()),
            Some((0, MAX_ORDER))
        );
    }

    #[test]
    fn leaf_bit_layout_is_little_endian_words() {
        let mut page = [0u8; PAGE_SIZE];
        page[8] = 0b0000_0100; // word 1, bit 2 => bitmap bit 66
        let leaf = RadixLeaf::ref_from_bytes(&page[..]).unwrap();
        assert_eq!(leaf.words[1].get(), 1 << 2);
        let key = encode_key(66 << 12, 0).unwrap();
        assert_eq!(leaf_bit(key), 66);
    }
}
