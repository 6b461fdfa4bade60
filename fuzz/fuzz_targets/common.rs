//! Shared by the memory-image fuzz targets: fuzz bytes become RAM.

// Each target includes this file; not every target uses every helper.
#![allow(dead_code)]

use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};

/// Physical base of the fuzzed RAM.
pub const BASE: u64 = 0x4000_0000;
/// Size of the fuzzed RAM: 64 pages.
pub const RAM: u64 = 64 * 4096;

/// An arena whose RAM starts with `bytes` (the rest zero), plus a second
/// small region elsewhere so pointers can also leave and re-enter RAM.
pub fn arena(bytes: &[u8]) -> HostMem {
    let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s);
    let (Ok(a), Ok(b)) = (r(BASE, RAM), r(0x8000_0000, 4 * 4096)) else {
        unreachable!("constant ranges are valid")
    };
    let Ok(mut mem) = HostMem::with_ram(&[a, b]) else {
        unreachable!("disjoint aligned ranges")
    };
    let n = bytes.len().min(RAM as usize);
    let _ = mem.write(PhysAddr::new(BASE), &bytes[..n]);
    mem
}

/// A little-endian u64 from the front of `bytes`, or 0.
pub fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = bytes.get(at..at + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// The `preserved-memory-map` of the root FDT at `fdt` (for kho-v1, the
/// first chunk of the serialized bitmaps, which only the FDT names).
pub fn memory_map(mem: &HostMem, fdt: PhysAddr) -> Option<u64> {
    let mut page = [0u8; 4096];
    mem.read(fdt, &mut page).ok()?;
    let parsed = kho_fdt::KhoFdt::parse(&page).ok()?;
    Some(parsed.memory_map().as_u64())
}
