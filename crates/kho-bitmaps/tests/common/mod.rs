//! Helpers shared by the integration tests: typed constructors, a model of
//! the map written from the spec, hand-written chunk lists, and a
//! `PhysMem` that fails chosen accesses.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use kho_bitmaps::{BitmapSize, Error, IncomingMap};
use kho_mem::{HostMem, Order, Pfn, PhysAddr, PhysMem, PhysRange};

pub const PAGE: u64 = 4096;
/// RAM base of the tests (where QEMU's arm64 `virt` puts RAM).
pub const BASE: u64 = 0x4000_0000;

pub fn pfn(p: u64) -> Pfn {
    Pfn::try_new(p).unwrap()
}

pub fn ord(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

pub fn pa(a: u64) -> PhysAddr {
    PhysAddr::new(a)
}

pub fn phys_pfn(phys: u64) -> Pfn {
    Pfn::try_from_phys(PhysAddr::new(phys)).unwrap()
}

/// One RAM region of `size` bytes at [`BASE`].
pub fn ram(size: u64) -> HostMem {
    HostMem::new(PhysAddr::new(BASE), size).unwrap()
}

/// Bits in one bitmap, from spec §12.2 and the 6.16 source, not from
/// kho-abi.
pub fn spec_bits(size: BitmapSize) -> u64 {
    match size {
        BitmapSize::Page => 32768,
        BitmapSize::Bytes512 => 4096,
    }
}

/// `phys_start = (index × PRESERVE_BITS) << (order + PAGE_SHIFT)` (spec
/// §12.2), written out.
pub fn spec_phys_start(size: BitmapSize, order: u32, index: u64) -> u64 {
    (index * spec_bits(size)) << (order + 12)
}

/// The bitmap (order, index) a block of the model lives in.
pub fn spec_bitmap_of(size: BitmapSize, pfn: u64, order: u32) -> (u32, u64) {
    (order, (pfn >> order) / spec_bits(size))
}

/// The model's blocks in the order the map lists them: ascending order,
/// then ascending address (one chunk run per order, bitmaps ascending),
/// as `(phys, order)`.
pub fn model_walk(model: &BTreeSet<(u64, u32)>) -> Vec<(u64, u32)> {
    let mut v: Vec<(u32, u64)> = model.iter().map(|&(p, o)| (o, p)).collect();
    v.sort();
    v.into_iter().map(|(o, p)| (p * PAGE, o)).collect()
}

/// Runs of the model in list order: consecutive blocks of one order that
/// touch in memory, as `(start, size, order)`.
pub fn model_ranges(model: &BTreeSet<(u64, u32)>) -> Vec<(u64, u64, u32)> {
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    for (phys, o) in model_walk(model) {
        let size = PAGE << o;
        match out.last_mut() {
            Some(last) if last.2 == o && last.0 + last.1 == phys => last.1 += size,
            _ => out.push((phys, size, o)),
        }
    }
    out
}

/// The spec's page-range decomposition (§3.8), written independently:
/// `min(ctz(pfn), floor(log2(left)))`, capped at `max`.
pub fn spec_blocks(start: u64, n: u64, max: u32) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let (mut p, end) = (start, start + n);
    while p < end {
        let align = if p == 0 { 63 } else { p.trailing_zeros() };
        let fit = 63 - (end - p).leading_zeros();
        let o = align.min(fit).min(max);
        out.push((p, o));
        p += 1 << o;
    }
    out
}

/// Validate and walk the map at `first`, as the next kernel does.
pub fn walk_all<M: PhysMem>(
    mem: &M,
    first: PhysAddr,
    size: BitmapSize,
) -> Result<Vec<(u64, u32)>, Error> {
    let mut buf = vec![0u64; IncomingMap::words_for(4096)];
    let mut out = Vec::new();
    let flow = kho_bitmaps::walk(mem, first, size, &mut buf, |phys, order| {
        out.push((phys.as_u64(), order.get()));
        ControlFlow::<()>::Continue(())
    })?;
    assert!(flow.is_continue());
    Ok(out)
}

/// Validate the map at `first` and collect its coalesced runs.
pub fn ranges_all<M: PhysMem>(
    mem: &M,
    first: PhysAddr,
    size: BitmapSize,
) -> Result<Vec<(u64, u64, u32)>, Error> {
    let mut buf = vec![0u64; IncomingMap::words_for(4096)];
    let mut out = Vec::new();
    let flow = kho_bitmaps::for_each_range(mem, first, size, &mut buf, |r| {
        out.push((
            r.range().start().as_u64(),
            r.range().size(),
            r.order().get(),
        ));
        ControlFlow::<()>::Continue(())
    })?;
    assert!(flow.is_continue());
    Ok(out)
}

/// Write a chunk page by hand at `at`, field by field from spec §12.2:
/// next u64 @0, order u32 @8, num_elms u32 @12, entries {phys_start u64,
/// bitmap u64} from @16.
pub fn write_chunk(mem: &mut HostMem, at: u64, next: u64, order: u32, entries: &[(u64, u64)]) {
    write_chunk_raw(mem, at, next, order, entries.len() as u32, entries);
}

/// [`write_chunk`] with an arbitrary `num_elms`.
pub fn write_chunk_raw(
    mem: &mut HostMem,
    at: u64,
    next: u64,
    order: u32,
    num_elms: u32,
    entries: &[(u64, u64)],
) {
    mem.write_u64(pa(at), next).unwrap();
    mem.write(pa(at + 8), &order.to_le_bytes()).unwrap();
    mem.write(pa(at + 12), &num_elms.to_le_bytes()).unwrap();
    for (i, &(phys_start, bitmap)) in entries.iter().enumerate() {
        let e = at + 16 + 16 * i as u64;
        mem.write_u64(pa(e), phys_start).unwrap();
        mem.write_u64(pa(e + 8), bitmap).unwrap();
    }
}

/// Set bits of a bitmap by hand: bit `b` is bit `b % 64` of little-endian
/// word `b / 64`.
pub fn set_bits(mem: &mut HostMem, bitmap: u64, bits: &[u64]) {
    for &b in bits {
        let w = pa(bitmap + b / 64 * 8);
        let v = mem.read_u64(w).unwrap();
        mem.write_u64(w, v | 1 << (b % 64)).unwrap();
    }
}

/// Which accesses a [`Faulty`] memory refuses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Reads touching this page fail (while `is_ram` still says yes).
    pub read_page: Option<u64>,
    /// Every write fails.
    pub writes: bool,
    /// Every free fails.
    pub frees: bool,
}

/// A [`HostMem`] whose chosen accesses fail: what a `PhysMem` that stopped
/// backing memory looks like.
#[derive(Debug)]
pub struct Faulty {
    pub inner: HostMem,
    pub faults: Faults,
}

impl Faulty {
    fn refused(addr: PhysAddr, len: usize) -> kho_mem::Error {
        kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len: len as u64,
        }
    }
}

impl PhysMem for Faulty {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        if let Some(page) = self.faults.read_page {
            let r = PhysRange::try_new(addr, buf.len() as u64).unwrap();
            if r.overlaps(PhysRange::try_new(pa(page), PAGE).unwrap()) {
                return Err(Self::refused(addr, buf.len()));
            }
        }
        self.inner.read(addr, buf)
    }
    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        if self.faults.writes {
            return Err(Self::refused(addr, data.len()));
        }
        self.inner.write(addr, data)
    }
    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        self.inner.is_ram(addr, len)
    }
    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        self.inner.alloc_pages(order)
    }
    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> kho_mem::Result<()> {
        if self.faults.frees {
            return Err(Self::refused(addr, PAGE as usize));
        }
        self.inner.free_pages(addr, order)
    }
}
