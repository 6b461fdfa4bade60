//! Fuzz target: build a real 2024-design handover (a kho-ranges Tracker's
//! FDT and mem cache, placed in scratch), then damage it the way a broken
//! or hostile kernel could — words of the FDT or the cache overwritten,
//! bits flipped, the sizes in kho_data changed — and read it as untrusted
//! input. The reader must end with ranges or a named error, never a panic
//! or a hang, and whatever it accepts must be RAM outside scratch, sorted,
//! disjoint, and the tree and the cache must agree.
#![no_main]

use core::ops::ControlFlow;

use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
use kho_ranges::{Incoming, MemFlags, Tracker};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x4000_0000;
const RAM: u64 = 8 << 20;
const SCRATCH: u64 = 1 << 20;
const FDT_AT: u64 = BASE;
const CACHE_AT: u64 = BASE + (512 << 10);
const NODES: [&str; 4] = ["", "a", "a/b", "c@1"];
const OP: usize = 4;
const DAMAGE: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(ram) = PhysRange::try_new(PhysAddr::new(BASE), RAM) else {
        return;
    };
    let Ok(mut mem) = HostMem::with_ram(&[ram]) else {
        return;
    };
    let Ok(scratch) = PhysRange::try_new(PhysAddr::new(BASE), SCRATCH) else {
        return;
    };
    // Byte 0: how many 4-byte preserve operations follow; byte 1: bit 0 a
    // buffer too small for most caches. The rest is damage, 8 bytes each.
    let [n, flags, rest @ ..] = data else {
        return;
    };
    let (ops, damage) = rest.split_at((usize::from(*n) * OP).min(rest.len()));
    let Ok(mut tracker) = Tracker::new(scratch) else {
        return;
    };
    let pages = (RAM - SCRATCH) / 4096;
    for op in ops.chunks_exact(OP) {
        let page = u64::from(u16::from_le_bytes([op[1], op[2]])) % (pages + 16);
        let len = (u64::from(op[3] & 0x7) + 1) * 4096;
        let flags = if op[3] & 0x80 != 0 { MemFlags::NOINIT } else { MemFlags::NONE };
        let Ok(range) = PhysRange::try_new(PhysAddr::new(BASE + SCRATCH + page * 4096), len) else {
            continue;
        };
        let _ = tracker.preserve(NODES[usize::from(op[0]) % NODES.len()], range, flags);
    }
    let Ok(out) = tracker.serialize() else {
        return;
    };
    let (fdt, cache) = (out.fdt().to_vec(), out.mem_cache().to_vec());
    if mem.write(PhysAddr::new(FDT_AT), &fdt).is_err()
        || mem.write(PhysAddr::new(CACHE_AT), &cache).is_err()
    {
        return;
    }
    let Ok(mut handover) = out.handover(scratch, PhysAddr::new(FDT_AT), PhysAddr::new(CACHE_AT))
    else {
        return;
    };
    for d in damage.chunks_exact(DAMAGE) {
        let v = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
        let in_cache = d[0] & 1 != 0;
        let (base, len) = if in_cache {
            (CACHE_AT, cache.len().max(16) as u64)
        } else {
            (FDT_AT, fdt.len() as u64)
        };
        let at = PhysAddr::new(base + u64::from(u16::from_le_bytes([d[1], d[2]])) % len);
        let _ = match d[3] % 6 {
            0 => mem.write(at, &v.to_be_bytes()),
            1 => mem.write(at, &u64::from(v).to_le_bytes()),
            2 => {
                let mut b = [0u8; 1];
                let _ = mem.read(at, &mut b);
                mem.write(at, &[b[0] ^ (1 << (v % 8))])
            }
            // A cache word: an address in or near RAM, flags and all.
            3 => mem.write(at, &(BASE + u64::from(v) % (RAM + 8192)).to_le_bytes()),
            4 => {
                let size = u64::from(v) % (len + 64);
                if let Ok(r) = PhysRange::try_new(PhysAddr::new(base), size) {
                    if in_cache {
                        handover.mem_cache = r;
                    } else {
                        handover.fdt = r;
                    }
                }
                Ok(())
            }
            _ => {
                if let Ok(r) = PhysRange::try_new(
                    PhysAddr::new(BASE + u64::from(v & 0xfff) * 4096),
                    u64::from(d[0] >> 1) * 4096,
                ) {
                    handover.scratch = r;
                }
                Ok(())
            }
        };
    }

    let mut fdt_buf = [0u8; 16 << 10];
    let Ok(fdt) = handover.read_fdt(&mem, &mut fdt_buf) else {
        return;
    };
    let mut big = [0u64; 64];
    let mut small = [0u64; 1];
    let bits: &mut [u64] = if flags & 1 != 0 { &mut small } else { &mut big };
    let Ok(incoming) = Incoming::validate(&mem, fdt, &handover, bits) else {
        return;
    };
    let scratch = handover.scratch;
    let mut prev_end = 0u64;
    let mut n = 0usize;
    let flow = incoming.for_each_range(&mem, |m| {
        let r = m.range();
        assert!(mem.is_ram(r.start(), r.size()), "{m:?}");
        assert!(!r.overlaps(scratch), "{m:?}");
        assert!(r.start().as_u64() >= prev_end, "{m:?}");
        prev_end = r.end().map_or(u64::MAX, PhysAddr::as_u64);
        n += 1;
        ControlFlow::<()>::Continue(())
    });
    assert!(flow.is_ok(), "{flow:?}");
    assert_eq!(n, incoming.len());
    let mut t = 0usize;
    let flow = incoming.for_each_tree_range(|_| {
        t += 1;
        ControlFlow::<()>::Continue(())
    });
    assert!(flow.is_ok(), "{flow:?}");
    assert_eq!(t, n);
});
