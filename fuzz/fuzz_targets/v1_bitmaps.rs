//! Fuzz target: build a real kho-v1 preserved-memory map (a tracker's
//! bitmaps serialized into a chunk list), then corrupt it the way a broken
//! or hostile kernel could — whole words redirected at other chunks
//! (cycles) or bitmaps (shared), at other RAM, outside RAM or misaligned;
//! header orders and counts rewritten; single bits flipped — and read it as
//! untrusted input with both bitmap sizes. The reader must end with blocks
//! or a named error, never a panic or a hang, and whatever it accepts must
//! be RAM.
#![no_main]

use core::ops::ControlFlow;

use kho_bitmaps::{BitmapSize, IncomingMap, Tracker};
use kho_mem::{HostMem, Order, Pfn, PhysAddr, PhysMem, PhysRange};
use libfuzzer_sys::fuzz_target;

/// Physical base of the fuzzed RAM.
const BASE: u64 = 0x4000_0000;
/// Its size: 512 pages, room for blocks, bitmaps and chunks.
const RAM: u64 = 512 * 4096;
/// A second, small RAM region elsewhere, so pointers can leave and
/// re-enter RAM.
const OTHER: u64 = 0x8000_0000;
/// Bytes per preserve operation and per damage operation.
const OP: usize = 4;
const DAMAGE: usize = 8;
/// Map pages (chunks and bitmaps) the damage can aim at.
const MAX_NODES: usize = 64;

fn arena() -> Option<HostMem> {
    let a = PhysRange::try_new(PhysAddr::new(BASE), RAM).ok()?;
    let b = PhysRange::try_new(PhysAddr::new(OTHER), 4 * 4096).ok()?;
    HostMem::with_ram(&[a, b]).ok()
}

/// The map's own pages, read back from the intact list (the tracker wrote
/// it): chunks first, then bitmaps.
fn map_pages(mem: &HostMem, first: u64) -> ([u64; MAX_NODES], usize, usize) {
    let mut nodes = [0u64; MAX_NODES];
    let (mut n, mut chunks) = (0, 0);
    let mut at = first;
    while at != 0 && n < MAX_NODES {
        nodes[n] = at;
        n += 1;
        chunks += 1;
        at = mem.read_u64(PhysAddr::new(at)).unwrap_or(0);
    }
    for c in 0..chunks {
        let chunk = nodes[c];
        let mut count = [0u8; 4];
        let _ = mem.read(PhysAddr::new(chunk + 12), &mut count);
        for e in 0..u32::from_le_bytes(count).min(255) as u64 {
            if n == MAX_NODES {
                break;
            }
            nodes[n] = mem
                .read_u64(PhysAddr::new(chunk + 16 + 16 * e + 8))
                .unwrap_or(0);
            n += 1;
        }
    }
    (nodes, n, chunks)
}

fuzz_target!(|data: &[u8]| {
    let Some(mut mem) = arena() else {
        return;
    };
    // Byte 0: bit 0 picks the bitmap size written, bit 1 the size read,
    // bit 2 a buffer too small for most maps. Byte 1: how many 4-byte
    // preserve operations follow; the rest is damage, 8 bytes each.
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let size = |bit: u8| {
        if flags & bit != 0 {
            BitmapSize::Bytes512
        } else {
            BitmapSize::Page
        }
    };
    let (written, read) = (size(1), size(2));
    let (ops, damage) = rest.split_at((usize::from(n) * OP).min(rest.len()));

    let mut tracker = Tracker::new(written);
    let pages = RAM / 4096;
    for op in ops.chunks_exact(OP) {
        let page = u64::from(u16::from_le_bytes([op[0], op[1]])) % pages;
        let Ok(order) = Order::try_new(u32::from(op[2] & 0x0f) % 10) else {
            continue;
        };
        // Spread: a block in another bitmap window (outside RAM), so maps
        // get several bitmaps per order and chunks with many entries.
        let window = written.bits() << order.get();
        let frame = (BASE / 4096 + page + u64::from(op[3]) * window) & !(order.pages() - 1);
        let Ok(pfn) = Pfn::try_new(frame) else {
            continue;
        };
        let _ = if op[2] & 0x80 != 0 {
            tracker.unpreserve(&mut mem, pfn, order)
        } else {
            tracker.preserve(&mut mem, pfn, order)
        };
    }
    let Ok(first) = tracker.serialize(&mut mem) else {
        return;
    };
    let (nodes, count, chunks) = map_pages(&mem, first.as_u64());

    for d in damage.chunks_exact(DAMAGE) {
        let v = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
        let v64 = u64::from(v);
        // Where: a page of the map (high bit; chunks come first) or any
        // page of RAM; then a word in it.
        let page = if d[0] & 0x80 != 0 && count > 0 {
            nodes[usize::from(d[0] & 0x7f) % count]
        } else {
            BASE + u64::from(d[0]) % pages * 4096
        };
        let word = u64::from(u16::from_le_bytes([d[1], d[2]])) % 512;
        let at = PhysAddr::new(page + word * 8);
        let target = |v: u64| {
            if count > 0 && v & 1 != 0 {
                // A chunk (a cycle) or a bitmap (shared) of the map.
                nodes[(v >> 1) as usize % count]
            } else {
                BASE + (v >> 1) % (pages + 4) * 4096
            }
        };
        match d[3] % 10 {
            // Redirect at a map page or a page in or just past RAM.
            0 | 1 => {
                let _ = mem.write_u64(at, target(v64));
            }
            // Misaligned, by a word or by half a page (aligned enough for
            // a 512-byte bitmap, not for a page one).
            2 => {
                let _ = mem.write_u64(at, target(v64 >> 12) | (v64 & 0xff8));
            }
            // Into the second RAM region, or far outside RAM.
            3 => {
                let _ = mem.write_u64(at, OTHER + v64 % 8 * 4096);
            }
            4 => {
                let _ = mem.write_u64(at, v64 << 32 | v64);
            }
            5 => {
                let _ = mem.write_u64(at, u64::MAX);
            }
            6 => {
                let _ = mem.write_u64(at, 0);
            }
            // A chunk header's order or num_elms: small and large values.
            7 if chunks > 0 => {
                let chunk = nodes[usize::from(d[1]) % chunks];
                let field = if d[2] & 1 != 0 { 12 } else { 8 };
                let value = if d[2] & 2 != 0 { v } else { v % 300 };
                let _ = mem.write(PhysAddr::new(chunk + field), &value.to_le_bytes());
            }
            // A phys_start moved by whole or partial bitmap spans.
            8 if chunks > 0 => {
                let chunk = nodes[usize::from(d[1]) % chunks];
                let e = PhysAddr::new(chunk + 16 + 16 * (u64::from(d[2]) % 255));
                let old = mem.read_u64(e).unwrap_or(0);
                let _ = mem.write_u64(e, old.wrapping_add(v64 << (v % 48)));
            }
            _ => {
                let old = mem.read_u64(at).unwrap_or(0);
                let _ = mem.write_u64(at, old ^ (1 << (v % 64)));
            }
        }
    }

    let mut big = [0u64; IncomingMap::words_for(512)];
    let mut small = [0u64; 3];
    let buf: &mut [u64] = if flags & 4 != 0 { &mut small } else { &mut big };
    let Ok(map) = IncomingMap::validate(&mem, first, read, buf) else {
        return;
    };
    // Whatever was accepted is RAM, and the walk agrees with the count.
    let mut blocks = 0u64;
    let walked = map.walk(&mem, |phys, order| {
        assert!(mem.is_ram(phys, order.bytes()), "{phys} order {order}");
        blocks += 1;
        ControlFlow::<()>::Continue(())
    });
    assert!(walked.is_ok(), "{walked:?}");
    assert_eq!(blocks, map.blocks());
    let mut covered = 0u64;
    let ranged = map.for_each_range(&mem, |r| {
        // The two RAM regions are far apart: a run lies inside one.
        assert!(mem.is_ram(r.range().start(), r.range().size()), "{r:?}");
        covered += r.blocks();
        ControlFlow::<()>::Continue(())
    });
    assert!(ranged.is_ok(), "{ranged:?}");
    assert_eq!(covered, blocks);
    for page in map.metadata() {
        assert!(mem.is_ram(page.start(), page.size()));
    }
});
