//! Shared test helpers: RAM, placing a handover in it, reading it back,
//! and hand-built (hostile) trees and caches the Tracker would refuse.
#![allow(dead_code)]

use core::ops::ControlFlow;

use kho_abi::rfc2024::COMPATIBLE;
use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
use kho_ranges::{Handover, Incoming, MemRange, Result, Serialized};

/// RAM: 64 MiB at 1 GiB.
pub const BASE: u64 = 0x4000_0000;
pub const RAM: u64 = 64 << 20;
/// Scratch: the first 16 MiB of RAM; the FDT and the cache live in it.
pub const SCRATCH_SIZE: u64 = 16 << 20;
pub const FDT_AT: u64 = BASE;
pub const CACHE_AT: u64 = BASE + (1 << 20);
/// First address outside scratch.
pub const FREE: u64 = BASE + SCRATCH_SIZE;

pub fn r(addr: u64, size: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(addr), size).unwrap()
}

pub fn scratch() -> PhysRange {
    r(BASE, SCRATCH_SIZE)
}

pub fn mem() -> HostMem {
    HostMem::new(PhysAddr::new(BASE), RAM).unwrap()
}

/// Write the FDT and the cache into scratch; the handover naming them.
pub fn place(mem: &mut HostMem, fdt: &[u8], cache: &[u8]) -> Handover {
    mem.write(PhysAddr::new(FDT_AT), fdt).unwrap();
    mem.write(PhysAddr::new(CACHE_AT), cache).unwrap();
    Handover {
        fdt: r(FDT_AT, fdt.len() as u64),
        scratch: scratch(),
        mem_cache: r(CACHE_AT, cache.len() as u64),
    }
}

pub fn place_serialized(mem: &mut HostMem, s: &Serialized) -> Handover {
    place(mem, s.fdt(), s.mem_cache())
}

/// Validate as the next kernel does and return the ranges to reserve.
pub fn read(mem: &HostMem, h: &Handover) -> Result<Vec<MemRange>> {
    let mut fdt = vec![0u8; 1 << 16];
    let fdt = h.read_fdt(mem, &mut fdt)?;
    let mut bits = vec![0u64; Incoming::words_for(4096)];
    let incoming = Incoming::validate(mem, fdt, h, &mut bits)?;
    let mut out = Vec::new();
    let _ = incoming.for_each_range(mem, |m| {
        out.push(m);
        ControlFlow::<()>::Continue(())
    })?;
    assert_eq!(out.len(), incoming.len());
    Ok(out)
}

/// Entries as raw `(addr | flags, len)` pairs, little-endian.
pub fn entries(e: &[(u64, u64)]) -> Vec<u8> {
    e.iter()
        .flat_map(|&(a, l)| a.to_le_bytes().into_iter().chain(l.to_le_bytes()))
        .collect()
}

/// A tree with the 2024 compatible: `(node, mem entries)` per root child
/// (`""` puts the entries on the root); an entry list of `None` writes a
/// raw property value instead.
pub fn tree(nodes: &[(&str, &[(u64, u64)])]) -> Vec<u8> {
    tree_with(COMPATIBLE, nodes, |_, _| {})
}

pub fn tree_with(
    compatible: &str,
    nodes: &[(&str, &[(u64, u64)])],
    mut extra: impl FnMut(&str, &mut vm_fdt::FdtWriter),
) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    if !compatible.is_empty() {
        w.property_string("compatible", compatible).unwrap();
    }
    for (name, e) in nodes.iter().filter(|(n, _)| n.is_empty()) {
        w.property("mem", &entries(e)).unwrap();
        extra(name, &mut w);
    }
    for (name, e) in nodes.iter().filter(|(n, _)| !n.is_empty()) {
        let n = w.begin_node(name).unwrap();
        if !e.is_empty() {
            w.property("mem", &entries(e)).unwrap();
        }
        extra(name, &mut w);
        w.end_node(n).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// Offset of the first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}
