//! Byte-layout tests: what `serialize` writes, checked word by word against
//! values worked out by hand from spec §12.2, and hand-written lists read
//! back.

// The tracker (feature `alloc`) writes the lists these tests read.
#![cfg(feature = "alloc")]

mod common;

use std::ops::ControlFlow;

use common::*;
use kho_bitmaps::{BitmapSize, IncomingMap, Tracker};
use kho_mem::{PhysAddr, PhysMem};

fn u32_at(mem: &impl PhysMem, at: u64) -> u32 {
    let mut b = [0u8; 4];
    mem.read(pa(at), &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn u64_at(mem: &impl PhysMem, at: u64) -> u64 {
    mem.read_u64(pa(at)).unwrap()
}

/// An order-0 page at 0x4000_5000 and a 2 MiB folio at 0x4020_0000, page
/// bitmaps: two chunks, order 0 first.
#[test]
fn two_orders_two_chunks() {
    let mut mem = ram(64 << 20);
    let mut t = Tracker::new(BitmapSize::Page);
    t.preserve(&mut mem, phys_pfn(0x4000_5000), ord(0)).unwrap();
    t.preserve(&mut mem, phys_pfn(0x4020_0000), ord(9)).unwrap();
    let c0 = t.serialize(&mut mem).unwrap().as_u64();

    // Chunk 0: header {next, order 0, num_elms 1}.
    let c1 = u64_at(&mem, c0);
    assert_ne!(c1, 0);
    assert_eq!(c0 % PAGE, 0);
    assert_eq!(c1 % PAGE, 0);
    assert_eq!(u32_at(&mem, c0 + 8), 0);
    assert_eq!(u32_at(&mem, c0 + 12), 1);
    // pfn 0x40005: bitmap index 0x40005 / 32768 = 8, phys_start
    // (8 × 32768) << 12 = 0x4000_0000, bit 5.
    assert_eq!(u64_at(&mem, c0 + 16), 0x4000_0000);
    let b0 = u64_at(&mem, c0 + 24);
    assert_eq!(b0 % PAGE, 0);
    assert_eq!(u64_at(&mem, b0), 1 << 5);
    // The rest of the chunk is zero.
    for off in (32..PAGE).step_by(8) {
        assert_eq!(u64_at(&mem, c0 + off), 0, "chunk 0 offset {off}");
    }

    // Chunk 1: {next 0, order 9, num_elms 1}; block 0x4020_0000 >> 21 =
    // 513 is bit 513 of bitmap 0 (phys_start 0): word 8, bit 1.
    assert_eq!(u64_at(&mem, c1), 0);
    assert_eq!(u32_at(&mem, c1 + 8), 9);
    assert_eq!(u32_at(&mem, c1 + 12), 1);
    assert_eq!(u64_at(&mem, c1 + 16), 0);
    let b1 = u64_at(&mem, c1 + 24);
    for w in 0..512 {
        let expect = if w == 8 { 1 << 1 } else { 0 };
        assert_eq!(u64_at(&mem, b1 + 8 * w), expect, "word {w}");
    }

    // Read back as the next kernel does.
    assert_eq!(
        walk_all(&mem, pa(c0), BitmapSize::Page).unwrap(),
        [(0x4000_5000, 0), (0x4020_0000, 9)]
    );
}

/// 512-byte bitmaps (Linux 6.16.x, 6.17 – 6.17.8): an order-0 bitmap covers 16 MiB,
/// so 0x4100_3000 is bit 3 of bitmap (0x41003 / 4096 = 0x41), phys_start
/// (0x41 × 4096) << 12 = 0x4100_0000.
#[test]
fn bytes512_phys_start_and_bit() {
    let mut mem = ram(64 << 20);
    let mut t = Tracker::new(BitmapSize::Bytes512);
    t.preserve(&mut mem, phys_pfn(0x4100_3000), ord(0)).unwrap();
    let c0 = t.serialize(&mut mem).unwrap().as_u64();
    assert_eq!(u64_at(&mem, c0), 0);
    assert_eq!((u32_at(&mem, c0 + 8), u32_at(&mem, c0 + 12)), (0, 1));
    assert_eq!(u64_at(&mem, c0 + 16), 0x4100_0000);
    assert_eq!(spec_phys_start(BitmapSize::Bytes512, 0, 0x41), 0x4100_0000);
    let b = u64_at(&mem, c0 + 24);
    assert_eq!(u64_at(&mem, b), 1 << 3);
    assert_eq!(
        walk_all(&mem, pa(c0), BitmapSize::Bytes512).unwrap(),
        [(0x4100_3000, 0)]
    );
}

/// 256 bitmaps of one order fill a chunk (255 entries) and start another
/// of the same order; entries ascend.
#[test]
fn a_full_chunk_links_to_the_next() {
    // 256 × 16 MiB windows of 512-byte order-0 bitmaps: 4 GiB + slack.
    let mut mem = ram((4 << 30) + (64 << 20));
    let mut t = Tracker::new(BitmapSize::Bytes512);
    for i in 0..256u64 {
        t.preserve(&mut mem, phys_pfn(BASE + i * (16 << 20)), ord(0))
            .unwrap();
    }
    assert_eq!((t.bitmaps(), t.chunks_needed()), (256, 2));
    let c0 = t.serialize(&mut mem).unwrap().as_u64();
    let c1 = u64_at(&mem, c0);
    assert_eq!((u32_at(&mem, c0 + 8), u32_at(&mem, c0 + 12)), (0, 255));
    assert_eq!(u64_at(&mem, c1), 0);
    assert_eq!((u32_at(&mem, c1 + 8), u32_at(&mem, c1 + 12)), (0, 1));
    for i in 0..255u64 {
        assert_eq!(u64_at(&mem, c0 + 16 + 16 * i), BASE + i * (16 << 20));
    }
    assert_eq!(u64_at(&mem, c1 + 16), BASE + 255 * (16 << 20));

    let mut buf = vec![0u64; IncomingMap::words_for(256)];
    let map = IncomingMap::validate(&mem, pa(c0), BitmapSize::Bytes512, &mut buf).unwrap();
    assert_eq!((map.chunks(), map.bitmaps(), map.blocks()), (2, 256, 256));
    let meta: Vec<_> = map.metadata().collect();
    assert_eq!(meta.len(), 258);
    assert_eq!(meta.iter().filter(|r| r.size() == PAGE).count(), 2);
    assert_eq!(meta.iter().filter(|r| r.size() == 512).count(), 256);
}

/// A list written by hand, as Linux 6.18 would have: the reader reports
/// exactly the blocks the bits stand for, in list order.
#[test]
fn hand_written_list_reads_back() {
    let mut mem = ram(256 << 20);
    let (c0, c1) = (BASE + 0x10_0000, BASE + 0x20_0000);
    let (b0, b1, b2) = (BASE + 0x30_0000, BASE + 0x30_1000, BASE + 0x30_2000);
    // Order 1 first (Linux writes ascending orders, but the reader does
    // not depend on it): an order-1 bitmap covers 32768 × 8 KiB = 256 MiB,
    // so bitmap 4 starts at 1 GiB; its bits 0 and 1 are 0x4000_0000 and
    // 0x4000_2000.
    write_chunk(&mut mem, c0, c1, 1, &[(0x4000_0000, b0)]);
    set_bits(&mut mem, b0, &[0, 1]);
    // Then order 0: bitmap 8 (phys_start 1 GiB) bits 16 and 17, bitmap 9
    // (phys_start 1 GiB + 128 MiB) bit 0.
    write_chunk(&mut mem, c1, 0, 0, &[(0x4000_0000, b1), (0x4800_0000, b2)]);
    set_bits(&mut mem, b1, &[16, 17]);
    set_bits(&mut mem, b2, &[0]);
    assert_eq!(
        walk_all(&mem, pa(c0), BitmapSize::Page).unwrap(),
        [
            (0x4000_0000, 1),
            (0x4000_2000, 1),
            (0x4001_0000, 0),
            (0x4001_1000, 0),
            (0x4800_0000, 0)
        ]
    );
    assert_eq!(
        ranges_all(&mem, pa(c0), BitmapSize::Page).unwrap(),
        [
            (0x4000_0000, 0x4000, 1),
            (0x4001_0000, 0x2000, 0),
            (0x4800_0000, 0x1000, 0)
        ]
    );
}

/// `preserved-memory-map = 0`: nothing preserved, a valid empty map; a
/// tracker with nothing preserved serializes to 0 and allocates nothing.
#[test]
fn the_empty_map_is_zero() {
    let mut mem = ram(1 << 20);
    let mut t = Tracker::new(BitmapSize::Page);
    assert_eq!(t.serialize(&mut mem).unwrap(), PhysAddr::ZERO);
    assert_eq!(mem.allocated_pages(), 0);
    let mut buf = [0u64; 0];
    let map = IncomingMap::validate(&mem, PhysAddr::ZERO, BitmapSize::Page, &mut buf).unwrap();
    assert_eq!((map.chunks(), map.bitmaps(), map.blocks()), (0, 0, 0));
    let flow = map.walk(&mem, |_, _| ControlFlow::<()>::Break(())).unwrap();
    assert!(flow.is_continue());
    // An empty chunk (num_elms 0) is accepted too.
    write_chunk(&mut mem, BASE, 0, 0, &[]);
    let mut buf = [0u64; 1];
    let map = IncomingMap::validate(&mem, pa(BASE), BitmapSize::Page, &mut buf).unwrap();
    assert_eq!((map.chunks(), map.bitmaps()), (1, 0));
}

/// A full 512-byte bitmap is one 4096-block run; with page bitmaps a full
/// bitmap and the first bits of the next coalesce across the boundary.
#[test]
fn runs_coalesce_across_words_and_bitmaps() {
    let mut mem = ram(512 << 20);
    let (c0, b0, b1) = (BASE + 0x10_0000, BASE + 0x20_0000, BASE + 0x20_1000);
    // Bitmaps 8 and 9 of order 0 (1 GiB and 1 GiB + 128 MiB): all of 8,
    // bits 0..3 of 9.
    write_chunk(&mut mem, c0, 0, 0, &[(0x4000_0000, b0), (0x4800_0000, b1)]);
    mem.fill(pa(b0), PAGE, 0xff).unwrap();
    set_bits(&mut mem, b1, &[0, 1, 2]);
    assert_eq!(
        ranges_all(&mem, pa(c0), BitmapSize::Page).unwrap(),
        [(0x4000_0000, (128 << 20) + 0x3000, 0)]
    );
    // Stopping early returns the caller's value.
    let mut buf = vec![0u64; 8];
    let map = IncomingMap::validate(&mem, pa(c0), BitmapSize::Page, &mut buf).unwrap();
    assert_eq!(map.blocks(), 32768 + 3);
    let mut n = 0;
    let flow = map
        .walk(&mem, |_, _| {
            n += 1;
            if n == 70 {
                ControlFlow::Break(n)
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(flow, ControlFlow::Break(70));
}
