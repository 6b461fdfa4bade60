//! A corrupted list for every incoming error: each test writes (or damages)
//! a chunk list by hand and checks the exact error, with where it is.

mod common;

use common::*;
use kho_bitmaps::{BitmapSize, EntryAt, Error, IncomingMap};
use kho_mem::{HostMem, PhysMem};

/// Chunks at 1 MiB steps, bitmaps at 4 KiB steps from 16 MiB into RAM.
const C0: u64 = BASE + 0x10_0000;
const C1: u64 = BASE + 0x20_0000;
const C2: u64 = BASE + 0x30_0000;
const B0: u64 = BASE + 0x100_0000;
const B1: u64 = BASE + 0x100_1000;
/// phys_start of the order-0 page bitmap covering RAM's first 128 MiB.
const S0: u64 = BASE;

fn mem() -> HostMem {
    ram(256 << 20)
}

fn validate(mem: &impl PhysMem, first: u64, size: BitmapSize) -> Result<(usize, usize), Error> {
    let mut buf = vec![0u64; 64];
    IncomingMap::validate(mem, pa(first), size, &mut buf).map(|m| (m.chunks(), m.bitmaps()))
}

fn at(chunk: u64, entry: usize) -> EntryAt {
    EntryAt {
        chunk: pa(chunk),
        entry,
    }
}

/// The list every test starts from: two chunks of order 0, three
/// entries, one block each.
fn good(mem: &mut HostMem) {
    write_chunk(mem, C0, C1, 0, &[(S0, B0)]);
    write_chunk(mem, C1, 0, 0, &[(S0 + (128 << 20), B1)]);
    set_bits(mem, B0, &[5]);
    set_bits(mem, B1, &[7]);
}

#[test]
fn the_starting_list_is_valid() {
    let mut m = mem();
    good(&mut m);
    assert_eq!(validate(&m, C0, BitmapSize::Page), Ok((2, 2)));
    assert_eq!(
        walk_all(&m, pa(C0), BitmapSize::Page).unwrap(),
        [(BASE + 0x5000, 0), (BASE + (128 << 20) + 0x7000, 0)]
    );
}

#[test]
fn chunk_misaligned() {
    let m = mem();
    assert_eq!(
        validate(&m, C0 + 8, BitmapSize::Page),
        Err(Error::ChunkMisaligned {
            position: 0,
            chunk: pa(C0 + 8)
        })
    );
    let mut m = mem();
    good(&mut m);
    m.write_u64(pa(C0), C1 + 0x800).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkMisaligned {
            position: 1,
            chunk: pa(C1 + 0x800)
        })
    );
}

#[test]
fn chunk_not_ram() {
    let mut m = mem();
    good(&mut m);
    assert_eq!(
        validate(&m, 0x1000, BitmapSize::Page),
        Err(Error::ChunkNotRam {
            position: 0,
            chunk: pa(0x1000)
        })
    );
    // A `next` just past the end of RAM.
    m.write_u64(pa(C1), BASE + (256 << 20)).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkNotRam {
            position: 2,
            chunk: pa(BASE + (256 << 20))
        })
    );
}

#[test]
fn chunk_cycle() {
    // A chunk pointing at itself.
    let mut m = mem();
    write_chunk(&mut m, C0, C0, 0, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkCycle {
            chunk: pa(C0),
            first: 0,
            again: 1
        })
    );
    // C0 -> C1 -> C2 -> C0, found by Brent's algorithm with room to spare
    // and by sorting a buffer that fills first: the same error.
    let mut m = mem();
    write_chunk(&mut m, C0, C1, 0, &[]);
    write_chunk(&mut m, C1, C2, 0, &[]);
    write_chunk(&mut m, C2, C0, 0, &[]);
    let cycle = Error::ChunkCycle {
        chunk: pa(C0),
        first: 0,
        again: 3,
    };
    assert_eq!(validate(&m, C0, BitmapSize::Page), Err(cycle));
    let mut four = [0u64; 4];
    assert_eq!(
        IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut four).map(|m| m.chunks()),
        Err(cycle)
    );
    // Into a cycle that does not include the first chunk: C0 -> C1 -> C2
    // -> C1.
    m.write_u64(pa(C2), C1).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkCycle {
            chunk: pa(C1),
            first: 1,
            again: 3
        })
    );
}

/// The cycle is named by the first chunk reached twice, however it was
/// found: Brent's algorithm meets inside the cycle, not at its start.
#[test]
fn chunk_cycle_names_its_start() {
    let mut m = mem();
    write_chunk(&mut m, C0, C1, 0, &[]);
    write_chunk(&mut m, C1, C0, 0, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkCycle {
            chunk: pa(C0),
            first: 0,
            again: 2
        })
    );
    // c0 -> c1 -> c2 -> c3 -> c4 -> c2: lead-in 2, cycle 3.
    let mut m = mem();
    let c = |i: u64| C0 + i * PAGE;
    for i in 0..5 {
        let next = if i == 4 { c(2) } else { c(i + 1) };
        write_chunk(&mut m, c(i), next, 0, &[]);
    }
    let cycle = Err(Error::ChunkCycle {
        chunk: pa(c(2)),
        first: 2,
        again: 5,
    });
    for words in [5, 6, 64] {
        let mut buf = vec![0u64; words];
        let got = IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut buf).map(|m| m.chunks());
        assert_eq!(got, cycle, "{words} words");
    }
}

#[test]
fn too_many_entries() {
    let mut m = mem();
    write_chunk_raw(&mut m, C0, 0, 0, 256, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::TooManyEntries {
            chunk: pa(C0),
            num_elms: 256
        })
    );
    // 255 zero entries are a full chunk with null bitmaps, not too many.
    write_chunk_raw(&mut m, C0, 0, 0, 255, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::NullBitmap { at: at(C0, 0) })
    );
}

#[test]
fn chunk_order_too_large() {
    let mut m = mem();
    write_chunk(&mut m, C0, 0, 37, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::ChunkOrderTooLarge {
            chunk: pa(C0),
            order: 37,
            max: 36
        })
    );
    // 512-byte bitmaps span 8 times less: order 39 is still fine, 40 not.
    write_chunk(&mut m, C0, 0, 39, &[]);
    assert_eq!(validate(&m, C0, BitmapSize::Bytes512), Ok((1, 0)));
    write_chunk(&mut m, C0, 0, u32::MAX, &[]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::ChunkOrderTooLarge {
            chunk: pa(C0),
            order: u32::MAX,
            max: 39
        })
    );
}

#[test]
fn null_bitmap() {
    let mut m = mem();
    good(&mut m);
    m.write_u64(pa(C1 + 24), 0).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::NullBitmap { at: at(C1, 0) })
    );
}

#[test]
fn bitmap_misaligned() {
    let mut m = mem();
    good(&mut m);
    // 512-byte aligned is enough for a 6.16 bitmap, not for a page one.
    m.write_u64(pa(C0 + 24), B0 + 512).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BitmapMisaligned {
            at: at(C0, 0),
            bitmap: pa(B0 + 512)
        })
    );
    m.write_u64(pa(C0 + 24), B0 + 8).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::BitmapMisaligned {
            at: at(C0, 0),
            bitmap: pa(B0 + 8)
        })
    );
}

#[test]
fn bitmap_not_ram() {
    let mut m = mem();
    good(&mut m);
    m.write_u64(pa(C1 + 24), 0x1000).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BitmapNotRam {
            at: at(C1, 0),
            bitmap: pa(0x1000)
        })
    );
    // The last 512 bytes of RAM hold a 6.16 bitmap, but not a page one
    // starting 512 bytes before the end.
    let end = BASE + (256 << 20);
    m.write_u64(pa(C1 + 24), end - 512).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BitmapMisaligned {
            at: at(C1, 0),
            bitmap: pa(end - 512)
        })
    );
    m.write_u64(pa(C1 + 24), end).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::BitmapNotRam {
            at: at(C1, 0),
            bitmap: pa(end)
        })
    );
}

#[test]
fn phys_start_misaligned() {
    let mut m = mem();
    good(&mut m);
    // An order-0 page bitmap spans 128 MiB; 16 MiB is a 6.16 span only.
    m.write_u64(pa(C1 + 16), S0 + (16 << 20)).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::PhysStartMisaligned {
            at: at(C1, 0),
            phys_start: S0 + (16 << 20),
            order: 0
        })
    );
    let mut m = mem();
    write_chunk(&mut m, C0, 0, 3, &[(S0 + PAGE, B0)]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::PhysStartMisaligned {
            at: at(C0, 0),
            phys_start: S0 + PAGE,
            order: 3
        })
    );
}

#[test]
fn duplicate_entry() {
    let mut m = mem();
    good(&mut m);
    // The second chunk's entry claims the first chunk's window.
    m.write_u64(pa(C1 + 16), S0).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::DuplicateEntry {
            first: at(C0, 0),
            second: at(C1, 0),
            order: 0,
            phys_start: S0
        })
    );
    // The same window in another order is not a duplicate.
    m.write(pa(C1 + 8), &1u32.to_le_bytes()).unwrap();
    assert!(validate(&m, C0, BitmapSize::Page).is_ok());
}

#[test]
fn shared_bitmap() {
    let mut m = mem();
    good(&mut m);
    m.write_u64(pa(C1 + 24), B0).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::SharedBitmap {
            bitmap: pa(B0),
            first: at(C0, 0),
            second: at(C1, 0)
        })
    );
    // Two 512-byte bitmaps in one page are fine; the same one twice not.
    let mut m = mem();
    write_chunk(&mut m, C0, 0, 0, &[(S0, B0), (S0 + (16 << 20), B0 + 512)]);
    assert_eq!(validate(&m, C0, BitmapSize::Bytes512), Ok((1, 2)));
    write_chunk(
        &mut m,
        C0,
        0,
        0,
        &[(S0, B0 + 512), (S0 + (16 << 20), B0 + 512)],
    );
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::SharedBitmap {
            bitmap: pa(B0 + 512),
            first: at(C0, 0),
            second: at(C0, 1)
        })
    );
}

#[test]
fn bitmap_in_chunk() {
    let mut m = mem();
    good(&mut m);
    m.write_u64(pa(C1 + 24), C0).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BitmapInChunk {
            at: at(C1, 0),
            bitmap: pa(C0),
            chunk: pa(C0)
        })
    );
    // A 512-byte bitmap in the middle of a chunk page.
    m.write_u64(pa(C1 + 24), C1 + 1024).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::BitmapInChunk {
            at: at(C1, 0),
            bitmap: pa(C1 + 1024),
            chunk: pa(C1)
        })
    );
}

#[test]
fn block_not_ram() {
    let mut m = mem();
    good(&mut m);
    // RAM is 256 MiB: the second bitmap (128 MiB .. 256 MiB) is all RAM,
    // its window's successor is not.
    m.write_u64(pa(C1 + 16), S0 + (256 << 20)).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BlockNotRam {
            at: at(C1, 0),
            bit: 7,
            phys: pa(BASE + (256 << 20) + 0x7000),
            order: ord(0)
        })
    );
    // Order 1, bitmap 0 covers [0, 256 MiB): entirely below RAM.
    let mut m = mem();
    write_chunk(&mut m, C0, 0, 1, &[(0, B0)]);
    set_bits(&mut m, B0, &[3]);
    assert_eq!(
        validate(&m, C0, BitmapSize::Page),
        Err(Error::BlockNotRam {
            at: at(C0, 0),
            bit: 3,
            phys: pa(3 << 13),
            order: ord(1)
        })
    );
}

#[test]
fn block_not_ram_inside_a_run() {
    let mut m = mem();
    // 512-byte bitmaps, order 0: the window [BASE + 240 MiB, + 16 MiB)
    // ends exactly at the end of RAM; bits 4094, 4095 are its last pages.
    let window = BASE + (240 << 20);
    write_chunk(&mut m, C0, 0, 0, &[(window, B0)]);
    set_bits(&mut m, B0, &[4093, 4094, 4095]);
    assert_eq!(validate(&m, C0, BitmapSize::Bytes512), Ok((1, 1)));
    // The next window: its bits are past RAM; a run of 3 from bit 0.
    m.write_u64(pa(C0 + 16), window + (16 << 20)).unwrap();
    assert_eq!(
        validate(&m, C0, BitmapSize::Bytes512),
        Err(Error::BlockNotRam {
            at: at(C0, 0),
            bit: 4093,
            phys: pa(window + (16 << 20) + 4093 * PAGE),
            order: ord(0)
        })
    );
}

#[test]
fn too_many_pages() {
    let mut m = mem();
    good(&mut m);
    // Two chunks and two bitmaps: four words needed.
    for (words, ok) in [(0, false), (1, false), (3, false), (4, true)] {
        let mut buf = vec![0u64; words];
        let got = IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut buf).map(|m| m.chunks());
        if ok {
            assert_eq!(got, Ok(2));
        } else {
            assert_eq!(got, Err(Error::TooManyPages { capacity: words }));
        }
    }
    // A long list without a cycle and a buffer too small for it.
    let mut m = mem();
    for i in 0..10u64 {
        let next = if i == 9 { 0 } else { C0 + (i + 1) * PAGE };
        write_chunk(&mut m, C0 + i * PAGE, next, 0, &[]);
    }
    let mut buf = [0u64; 9];
    assert_eq!(
        IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut buf).map(|m| m.chunks()),
        Err(Error::TooManyPages { capacity: 9 })
    );
    let mut buf = [0u64; 10];
    assert_eq!(
        IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut buf).map(|m| m.chunks()),
        Ok(10)
    );
}

#[test]
fn read_failures_are_named() {
    // A chunk page, then a bitmap, that is RAM but cannot be read.
    for page in [C1, B1] {
        let mut copy = mem();
        good(&mut copy);
        let m = Faulty {
            inner: copy,
            faults: Faults {
                read_page: Some(page),
                ..Faults::default()
            },
        };
        let mut buf = vec![0u64; 16];
        let err = IncomingMap::validate(&m, pa(C0), BitmapSize::Page, &mut buf).unwrap_err();
        assert!(
            matches!(err, Error::Read { addr: a, .. } if a == pa(page)),
            "{err:?}"
        );
        assert!(core::error::Error::source(&err).is_some());
    }
}

/// Every error displays as one line that names where it is.
#[test]
fn errors_display_their_location() {
    let e = Error::SharedBitmap {
        bitmap: pa(B0),
        first: at(C0, 0),
        second: at(C1, 3),
    };
    assert_eq!(
        e.to_string(),
        "chunk 0x40100000 entry 0 and chunk 0x40200000 entry 3 share the bitmap 0x41000000"
    );
    let e = Error::ChunkCycle {
        chunk: pa(C0),
        first: 0,
        again: 3,
    };
    assert_eq!(
        e.to_string(),
        "chunk 3 is chunk 0 again (0x40100000): the list is a cycle"
    );
}
