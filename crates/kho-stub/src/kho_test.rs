//! lib/test_kho.c's `kho_test` subtree, published and verified exactly as that module does.
//!
//! With `kho_stub.kho_test=1` every generation publishes what Linux's
//! test_kho writes on a first boot, so that a Linux kernel booted next (or
//! the next stub generation) can check it the way test_kho's second boot
//! does:
//!
//! - folios of orders 0..=10 (a deterministic mix from the seed, about
//!   [`MAX_MEM`] bytes in total), each filled with content and preserved
//!   with its order;
//! - a vmalloc'ed array of one `u64` per folio, `phys | order`, preserved
//!   with `kho_preserve_vmalloc` (flag `VM_ALLOC`);
//! - a sub-FDT in its own preserved folio (order of `nr_folios × 8 +
//!   PAGE_SIZE` bytes, as test_kho allocates it): root `compatible` =
//!   "kho-test-v1", `magic` = native u32 0x4b484f21, node `data` with
//!   `nr_folios` (native u32), `folios_info` (the 16-byte `kho_vmalloc`
//!   descriptor) and `csum` (native `__wsum`: `csum_partial` accumulated
//!   over the folios in array order, as the arch's Linux computes it);
//! - the root child `kho_test` naming it, with `blob-size` = its totalsize.
//!
//! [`verify`] is test_kho's `kho_test_restore`: compatible, magic, the three
//! properties with exact lengths (4, 16, 4), the vmalloc array restored,
//! every folio restored with its recorded order and checksummed, the sum
//! compared. Everything it restores is freed again.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kho::{KhoIn, KhoOut};
use kho_abi::vmalloc::{FLAG_VM_ALLOC, VmallocDescriptor};
use kho_fdt::dtb::Dtb;
use kho_mem::{Order, PhysAddr, PhysMem};
use zerocopy::{FromBytes, IntoBytes};

use crate::content;
use crate::csum::Csum64;
use crate::why::Why;

/// Root child name (`KHO_TEST_FDT`).
pub const SUBTREE_NAME: &str = "kho_test";
/// Root `compatible` of the sub-FDT (`KHO_TEST_COMPAT`).
pub const COMPATIBLE: &str = "kho-test-v1";
/// `magic` (`KHO_TEST_MAGIC`, "KHO!").
pub const MAGIC: u32 = 0x4b48_4f21;
/// Bytes of folios per generation (test_kho's `max_mem` is 8 MiB; half
/// keeps TCG runs short and still reaches order 10).
pub const MAX_MEM: u64 = 4 << 20;
/// test_kho picks orders up to `MAX_PAGE_ORDER` (10 with 4 KiB pages).
pub const MAX_ORDER: u32 = 10;
/// Block ids of kho_test folio content start here.
pub const BLOCK_BASE: u32 = 1 << 18;
/// Largest sub-FDT read back: one page. test_kho's FDT holds a
/// `compatible`, a `magic` and three properties (about 200 bytes); its
/// `blob-size` is that totalsize, whatever the folio's size.
const MAX_FDT: u64 = 4096;
const PAGE: u64 = kho_mem::PAGE_SIZE as u64;

fn text<E: core::fmt::Display>(e: E) -> String {
    format!("{e}")
}

/// Smallest order whose block holds `bytes` (`get_order`).
fn get_order(bytes: u64) -> Result<Order, String> {
    let pages = bytes.div_ceil(PAGE).max(1);
    Order::try_new(pages.next_power_of_two().trailing_zeros()).map_err(text)
}

/// The orders of one generation's folios: test_kho's loop with a
/// deterministic "random" order, clamped so the total stays at `MAX_MEM`.
pub fn folio_orders(seed: u64, generation: u32) -> Vec<u32> {
    let mut orders = Vec::new();
    let mut total = 0u64;
    let mut i = 0u64;
    while total < MAX_MEM {
        let pick = content::mix(seed ^ (u64::from(generation) << 32) ^ content::mix(i));
        let mut order = (pick % u64::from(MAX_ORDER + 1)) as u32;
        if total + (PAGE << order) > MAX_MEM {
            // As test_kho: the order of what is left, minus one (get_order
            // rounds up), never below 0.
            let left = (MAX_MEM - total).div_ceil(PAGE).next_power_of_two();
            order = left.trailing_zeros().saturating_sub(1);
        }
        orders.push(order);
        total += PAGE << order;
        i += 1;
    }
    orders
}

/// What one generation published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Folios.
    pub folios: u32,
    /// Bytes in them.
    pub bytes: u64,
    /// The `csum` property.
    pub csum: u32,
    /// Phys of the sub-FDT.
    pub fdt: PhysAddr,
}

/// Fill a folio with content and return the checksum with it added.
fn fill<M: PhysMem>(
    mem: &mut M,
    seed: u64,
    generation: u32,
    block: u32,
    phys: PhysAddr,
    order: Order,
    csum: u32,
) -> Result<u32, String> {
    let mut sum = Csum64::new();
    let word = |i| content::word(seed, generation, block, i);
    content::fill(mem, phys, order, word, |page| {
        sum.add(zerocopy::IntoBytes::as_bytes(page))
    })
    .map_err(|e| format!("folio {e}"))?;
    Ok(sum.finish(csum))
}

/// `csum_partial` of a folio in memory, added to `csum`.
fn checksum<M: PhysMem>(mem: &M, phys: PhysAddr, order: Order, csum: u32) -> Result<u32, String> {
    let mut sum = Csum64::new();
    let mut page = [0u8; kho_mem::PAGE_SIZE];
    for p in 0..order.pages() {
        let at = phys.checked_add(p * PAGE).ok_or("folio wraps")?;
        mem.read(at, &mut page)
            .map_err(|e| format!("folio {phys}: {e}"))?;
        sum.add(&page);
    }
    Ok(sum.finish(csum))
}

/// The sub-FDT test_kho writes.
pub fn build_fdt(
    nr_folios: u32,
    folios_info: &VmallocDescriptor,
    csum: u32,
) -> Result<Vec<u8>, String> {
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = vm_fdt::FdtWriter::new()?;
        let root = w.begin_node("")?;
        // fdt_property with sizeof(compatible): the string and its NUL.
        let mut compatible = Vec::from(COMPATIBLE.as_bytes());
        compatible.push(0);
        w.property("compatible", &compatible)?;
        w.property("magic", &MAGIC.to_le_bytes())?;
        let data = w.begin_node("data")?;
        w.property("nr_folios", &nr_folios.to_le_bytes())?;
        w.property("folios_info", folios_info.as_bytes())?;
        w.property("csum", &csum.to_le_bytes())?;
        w.end_node(data)?;
        w.end_node(root)?;
        w.finish()
    };
    build().map_err(|e| format!("kho_test FDT: {e}"))
}

/// Allocate, fill and preserve this generation's folios, the vmalloc'ed
/// array and the sub-FDT, and register the `kho_test` subtree.
pub fn publish<M: PhysMem>(
    mem: &mut M,
    out: &mut KhoOut,
    seed: u64,
    generation: u32,
) -> Result<Published, String> {
    fn err(what: &'static str) -> impl Fn(kho_mem::Error) -> String {
        move |e| format!("kho_test {what}: {e}")
    }
    // kho_test_generate_data: folios filled, checksummed in order.
    let mut folios: Vec<(PhysAddr, Order)> = Vec::new();
    let mut csum = 0u32;
    let mut bytes = 0u64;
    for (i, o) in folio_orders(seed, generation).into_iter().enumerate() {
        let order = Order::try_new(o).map_err(text)?;
        let phys = mem.alloc_pages(order).map_err(err("folio"))?;
        csum = fill(
            mem,
            seed,
            generation,
            BLOCK_BASE + i as u32,
            phys,
            order,
            csum,
        )?;
        folios.push((phys, order));
        bytes += order.bytes();
    }
    let nr = u32::try_from(folios.len()).map_err(text)?;

    // kho_test_preserve: the FDT folio first.
    let fdt_room = u64::from(nr) * 8 + PAGE;
    let fdt_order = get_order(fdt_room)?;
    let fdt_at = mem.alloc_pages(fdt_order).map_err(err("FDT folio"))?;
    out.preserve_folio(mem, fdt_at, fdt_order).map_err(text)?;

    // kho_test_preserve_data: the array (phys | order), vmalloc'ed, then
    // every folio.
    let mut entries = Vec::with_capacity(folios.len() * 8);
    for &(phys, order) in &folios {
        entries.extend_from_slice(&(phys.as_u64() | u64::from(order.get())).to_le_bytes());
    }
    let mut pages = Vec::new();
    for chunk in entries.chunks(kho_mem::PAGE_SIZE) {
        let page = mem.alloc_page().map_err(err("array page"))?;
        mem.write(page, chunk).map_err(text)?;
        pages.push(page);
    }
    let folios_info = out
        .preserve_vmalloc(mem, pages.iter().copied(), Order::ZERO, FLAG_VM_ALLOC)
        .map_err(text)?;
    for &(phys, order) in &folios {
        out.preserve_folio(mem, phys, order).map_err(text)?;
    }

    // kho_test_prepare_fdt, then kho_add_subtree with its totalsize.
    let fdt = build_fdt(nr, &folios_info, csum)?;
    if fdt.len() as u64 > fdt_room {
        return Err(format!(
            "kho_test FDT of {} bytes does not fit {fdt_room}",
            fdt.len()
        ));
    }
    mem.write(fdt_at, &fdt).map_err(text)?;
    out.add_subtree(mem, SUBTREE_NAME, fdt_at, Some(fdt.len() as u64))
        .map_err(text)?;
    Ok(Published {
        folios: nr,
        bytes,
        csum,
        fdt: fdt_at,
    })
}

/// The sub-FDT's fields after test_kho's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestFdt {
    /// `nr_folios`.
    pub nr_folios: u32,
    /// `folios_info`.
    pub folios_info: VmallocDescriptor,
    /// `csum`.
    pub csum: u32,
}

/// Check a kho_test sub-FDT as test_kho does: compatible, magic, and the
/// `data` properties with their exact lengths.
pub fn parse_fdt(blob: &[u8]) -> Result<TestFdt, String> {
    let fdt = Dtb::parse(blob).map_err(|e| format!("kho_test FDT: {e}"))?;
    let compatible = fdt
        .property("/", "compatible")
        .ok_or("kho_test FDT has no compatible")?;
    if !compatible
        .split(|&b| b == 0)
        .any(|s| s == COMPATIBLE.as_bytes())
    {
        return Err(format!(
            "kho_test FDT is not compatible with {COMPATIBLE}: {:?}",
            String::from_utf8_lossy(compatible)
        ));
    }
    let exact = |path: &str, name: &str, len: usize| -> Result<&[u8], String> {
        let v = fdt
            .property(path, name)
            .ok_or_else(|| format!("kho_test FDT has no {path} {name}"))?;
        if v.len() != len {
            return Err(format!(
                "kho_test FDT {path} {name} is {} bytes, expected {len}",
                v.len()
            ));
        }
        Ok(v)
    };
    let u32_of = |v: &[u8]| u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    let magic = u32_of(exact("/", "magic", 4)?);
    if magic != MAGIC {
        return Err(format!(
            "kho_test FDT magic {magic:#x}, expected {MAGIC:#x}"
        ));
    }
    let nr_folios = u32_of(exact("/data", "nr_folios", 4)?);
    let csum = u32_of(exact("/data", "csum", 4)?);
    let folios_info = VmallocDescriptor::read_from_bytes(exact("/data", "folios_info", 16)?)
        .map_err(|_| "kho_test FDT folios_info is not a kho_vmalloc")?;
    Ok(TestFdt {
        nr_folios,
        folios_info,
        csum,
    })
}

/// What [`verify`] restored: counts, and where the subtree is, so that
/// [`carry`] can hand the same data on unchanged. Nothing here grows with
/// the subtree: carry re-reads the (validated, still intact) vmalloc chain
/// and folio array in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Folios.
    pub folios: u32,
    /// Bytes in them.
    pub bytes: u64,
    /// The folio array's vmalloc descriptor (`folios_info`).
    pub folios_info: VmallocDescriptor,
    /// The sub-FDT's folio, its order and the blob size.
    pub fdt: (PhysAddr, Order, u64),
}

/// The folio-array entries of a vmalloc'ed array, in order: `f(mem, i,
/// phys, order)` for entry `i < nr`, read from each data block in place.
fn for_each_entry<M: PhysMem>(
    mem: &mut M,
    area: &kho_vmalloc::VmallocArea,
    nr: u64,
    mut f: impl FnMut(&mut M, u64, PhysAddr, Order) -> Result<(), Why>,
) -> Result<(), Why> {
    let block_bytes = area.order().bytes();
    let mut i = 0u64;
    area.for_each_mut(mem, |mem, piece| {
        let kho_vmalloc::Piece::Block(b) = piece else {
            return Ok(());
        };
        let mut offset = 0;
        while offset < block_bytes && i < nr {
            let entry = b.checked_add(offset).ok_or("kho_test array wraps")?;
            let value = mem.read_u64(entry).map_err(text)?;
            let phys = PhysAddr::new(value & !(PAGE - 1));
            let order = Order::try_new((value & (PAGE - 1)) as u32)
                .map_err(|e| format!("kho_test folio {i}: {e}"))?;
            f(mem, i, phys, order)?;
            i += 1;
            offset += 8;
        }
        Ok(())
    })
}

/// Restore and check the incoming `kho_test` subtree, as test_kho's second
/// boot does, and say where it is (see [`carry`]); `None` if there is none.
/// The memory it restores stays allocated, to be carried on.
pub fn verify<M: PhysMem>(k: &mut KhoIn, mem: &mut M) -> Result<Option<Restored>, String> {
    let Some((at, size)) = k.subtree(SUBTREE_NAME) else {
        return Ok(None);
    };
    let mut header = [0u8; 8];
    mem.read(at, &mut header)
        .map_err(|e| format!("kho_test FDT: {e}"))?;
    let total = u64::from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let len = size.unwrap_or(total);
    if len != total || !(8..=MAX_FDT).contains(&len) {
        return Err(format!(
            "kho_test FDT totalsize {total:#x}, blob-size {size:?}"
        ));
    }
    let mut page = [0u8; MAX_FDT as usize];
    let blob = &mut page[..len as usize];
    mem.read(at, blob)
        .map_err(|e| format!("kho_test FDT: {e}"))?;
    let t = parse_fdt(blob)?;

    let area = k
        .restore_vmalloc(mem, &t.folios_info)
        .map_err(|e| format!("kho_test folios_info: {e}"))?;
    let nr = u64::from(t.nr_folios);
    if nr * 8 > u64::from(area.total_pages()) * PAGE {
        return Err(format!(
            "kho_test lists {nr} folios, its array has {} pages",
            area.total_pages()
        ));
    }
    let mut csum = 0u32;
    let mut restored = Restored {
        folios_info: t.folios_info,
        ..Restored::default()
    };
    for_each_entry(mem, &area, nr, |mem, i, phys, order| {
        k.restore_folio(mem, phys, order)
            .map_err(|e| format!("kho_test folio {i}: {e}"))?;
        csum = checksum(mem, phys, order, csum)?;
        restored.folios += 1;
        restored.bytes += order.bytes();
        Ok(())
    })?;
    if csum != t.csum {
        return Err(format!(
            "kho_test checksum {csum:#010x}, the FDT says {:#010x}",
            t.csum
        ));
    }
    // test_kho leaves its FDT folio alone; every block must be restored
    // here, so take it back with the order test_kho allocates it with.
    let fdt_order = get_order(nr * 8 + PAGE)?;
    k.restore_folio(mem, at, fdt_order)
        .map_err(|e| format!("kho_test FDT folio: {e}"))?;
    restored.fdt = (at, fdt_order, len);
    Ok(Some(restored))
}

/// Hand the `kho_test` data [`verify`] restored on to the next kernel
/// unchanged: every folio with its order, the vmalloc'ed array (its data
/// pages and its chunk chain, so the descriptor in the sub-FDT stays
/// valid) and the sub-FDT folio, registered again as `kho_test` with the
/// same blob size. The kernel that wrote it (Linux's test_kho, or an
/// earlier stub) thus finds its own data after any number of generations.
pub fn carry<M: PhysMem>(mem: &mut M, out: &mut KhoOut, r: &Restored) -> Result<(), String> {
    let (fdt, fdt_order, size) = r.fdt;
    out.preserve_folio(mem, fdt, fdt_order).map_err(text)?;
    let area = kho_vmalloc::restore_vmalloc(&*mem, &r.folios_info).map_err(text)?;
    let order = area.order();
    area.for_each_mut(mem, |mem, piece| -> Result<(), Why> {
        match piece {
            kho_vmalloc::Piece::Chunk(c) => out.preserve_folio(mem, c, Order::ZERO),
            kho_vmalloc::Piece::Block(b) => out.preserve_folio(mem, b, order),
        }
        .map_err(text)?;
        Ok(())
    })?;
    for_each_entry(mem, &area, u64::from(r.folios), |mem, _, phys, order| {
        out.preserve_folio(mem, phys, order).map_err(text)?;
        Ok(())
    })?;
    out.add_subtree(mem, SUBTREE_NAME, fdt, Some(size))
        .map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_abi::AbiVersion;
    use kho_mem::{HostMem, PhysRange};
    use kho_radix::VisitedSet;
    use kho_scratch::ScratchAreas;

    #[test]
    fn orders_cover_0_to_10_and_add_up_to_max_mem() {
        let mut seen = [false; 11];
        for generation in 0..8 {
            let orders = folio_orders(0x5eed, generation);
            let total: u64 = orders.iter().map(|&o| PAGE << o).sum();
            assert_eq!(total, MAX_MEM, "generation {generation}");
            for o in orders {
                seen[o as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        // Deterministic, and different per generation.
        assert_eq!(folio_orders(1, 2), folio_orders(1, 2));
        assert_ne!(folio_orders(1, 2), folio_orders(1, 3));
    }

    #[test]
    fn the_sub_fdt_is_test_kho_s() {
        let desc = VmallocDescriptor::read_from_bytes(&[
            0x00, 0x50, 0x34, 0x12, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
        ])
        .unwrap();
        let blob = build_fdt(7, &desc, 0xdead_beef).unwrap();
        let d = Dtb::parse(&blob).unwrap();
        assert_eq!(d.property("/", "compatible").unwrap(), b"kho-test-v1\0");
        assert_eq!(d.property("/", "magic").unwrap(), &[0x21, 0x4f, 0x48, 0x4b]);
        assert_eq!(d.property("/data", "nr_folios").unwrap(), &[7, 0, 0, 0]);
        assert_eq!(
            d.property("/data", "csum").unwrap(),
            &0xdead_beefu32.to_le_bytes()
        );
        assert_eq!(d.property("/data", "folios_info").unwrap(), desc.as_bytes());
        assert_eq!(
            parse_fdt(&blob).unwrap(),
            TestFdt {
                nr_folios: 7,
                folios_info: desc,
                csum: 0xdead_beef
            }
        );
    }

    #[test]
    fn sub_fdt_checks_follow_test_kho() {
        let desc = VmallocDescriptor::default();
        let fdt = |f: &dyn Fn(&mut vm_fdt::FdtWriter)| {
            let mut w = vm_fdt::FdtWriter::new().unwrap();
            let r = w.begin_node("").unwrap();
            f(&mut w);
            w.end_node(r).unwrap();
            w.finish().unwrap()
        };
        let wrong_compatible = fdt(&|w| {
            w.property_string("compatible", "kho-test-v2").unwrap();
        });
        assert!(
            parse_fdt(&wrong_compatible)
                .unwrap_err()
                .contains("not compatible")
        );
        // A string list that contains the compatible is accepted.
        let list = fdt(&|w| {
            w.property("compatible", b"x\0kho-test-v1\0").unwrap();
            w.property("magic", &MAGIC.to_le_bytes()).unwrap();
            let d = w.begin_node("data").unwrap();
            w.property("nr_folios", &[0; 4]).unwrap();
            w.property("folios_info", desc.as_bytes()).unwrap();
            w.property("csum", &[0; 4]).unwrap();
            w.end_node(d).unwrap();
        });
        assert!(parse_fdt(&list).is_ok());
        let big_endian_magic = fdt(&|w| {
            w.property_string("compatible", COMPATIBLE).unwrap();
            w.property_u32("magic", MAGIC).unwrap();
        });
        assert!(parse_fdt(&big_endian_magic).unwrap_err().contains("magic"));
        let short = fdt(&|w| {
            w.property_string("compatible", COMPATIBLE).unwrap();
            w.property("magic", &MAGIC.to_le_bytes()).unwrap();
            let d = w.begin_node("data").unwrap();
            w.property("nr_folios", &[0; 8]).unwrap();
            w.end_node(d).unwrap();
        });
        assert_eq!(
            parse_fdt(&short).unwrap_err(),
            "kho_test FDT /data nr_folios is 8 bytes, expected 4"
        );
        let no_data = fdt(&|w| {
            w.property_string("compatible", COMPATIBLE).unwrap();
            w.property("magic", &MAGIC.to_le_bytes()).unwrap();
        });
        assert_eq!(
            parse_fdt(&no_data).unwrap_err(),
            "kho_test FDT has no /data nr_folios"
        );
    }

    /// A change made to memory between publishing and reviving.
    type Corrupt<'a> = &'a dyn Fn(&mut HostMem, Published);

    /// One handover on the host: publish, hand over, revive, verify.
    fn hand_over(corrupt: Option<Corrupt<'_>>) -> Result<Restored, String> {
        let base = HostMem::DEFAULT_BASE;
        let mut mem = HostMem::new(base, 64 << 20).unwrap();
        let scratch = PhysRange::try_new(base.checked_add(60 << 20).unwrap(), 4 << 20).unwrap();
        mem.reserve(scratch).unwrap();
        let mut out = KhoOut::new(&mut mem, AbiVersion::NEWEST).unwrap();
        let p = publish(&mut mem, &mut out, 0x5eed, 3).unwrap();
        assert_eq!(p.bytes, MAX_MEM);
        if let Some(f) = corrupt {
            f(&mut mem, p);
        }
        let areas = ScratchAreas::from_ranges(&[scratch]).unwrap();
        let array = areas.write_array(&mut mem, scratch.start()).unwrap();
        let mut k = KhoIn::populate(&mem, out.handover(array)).unwrap();
        let mut buf = alloc::vec![0u64; VisitedSet::words_for(4096)];
        k.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
            .unwrap();
        let r = verify(&mut k, &mut mem)?.ok_or("no kho_test")?;
        // Every kho_test block was restored: only the root FDT page is left.
        let mut visited = VisitedSet::new(&mut buf);
        let left: Vec<_> = k
            .unrestored(&mem, &mut visited)
            .map(|r| r.map(|r| (r.range().start(), r.order(), r.blocks())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, [(out.fdt(), Order::ZERO, 1)]);
        Ok(r)
    }

    #[test]
    fn a_published_subtree_verifies() {
        let r = hand_over(None).unwrap();
        assert_eq!(r.bytes, MAX_MEM);
        assert_eq!(r.folios as usize, folio_orders(0x5eed, 3).len());
    }

    #[test]
    fn changed_content_fails_the_checksum() {
        let e = hand_over(Some(&|mem, _| {
            // The first folio's first byte.
            let p = mem_first_folio(mem);
            mem.write(p, &[0x5a]).unwrap();
        }))
        .unwrap_err();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn a_wrong_recorded_order_fails_the_restore() {
        let e = hand_over(Some(&|mem, _| {
            let entry = array_entry(mem);
            let v = mem.read_u64(entry).unwrap();
            mem.write_u64(entry, v ^ 1).unwrap();
        }))
        .unwrap_err();
        assert!(e.contains("kho_test folio 0"), "{e}");
    }

    /// The first entry of the kho_test array (found through the FDT).
    fn array_entry(mem: &HostMem) -> PhysAddr {
        let fdt = find_fdt(mem);
        let t = parse_fdt(&fdt).unwrap();
        let area = kho_vmalloc::restore_vmalloc(mem, &t.folios_info).unwrap();
        area.iter_pages(mem).next().unwrap().unwrap()
    }

    fn mem_first_folio(mem: &HostMem) -> PhysAddr {
        PhysAddr::new(mem.read_u64(array_entry(mem)).unwrap() & !(PAGE - 1))
    }

    /// The kho_test sub-FDT: the only blob in RAM starting with the FDT
    /// magic and containing "kho-test-v1".
    fn find_fdt(mem: &HostMem) -> Vec<u8> {
        let base = HostMem::DEFAULT_BASE.as_u64();
        for page in 0..(64 << 20) / PAGE {
            let at = PhysAddr::new(base + page * PAGE);
            let mut head = [0u8; 8];
            mem.read(at, &mut head).unwrap();
            if head[..4] != [0xd0, 0x0d, 0xfe, 0xed] {
                continue;
            }
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let mut blob = alloc::vec![0u8; len];
            mem.read(at, &mut blob).unwrap();
            if parse_fdt(&blob).is_ok() {
                return blob;
            }
        }
        panic!("no kho_test FDT");
    }
}
