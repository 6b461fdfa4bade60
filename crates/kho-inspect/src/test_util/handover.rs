//! A small handover with every client the decoder knows, and the sparse ELF
//! core a dump tool that leaves out zeros would write of it.

use alloc::vec;
use alloc::vec::Vec;

use kho::KhoOut;
use kho::handoff::{dt, x86};
use kho_abi::AbiVersion;
use kho_abi::x86::e820;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_scratch::ScratchAreas;

use super::{Load, PAGE, boot_dtb, elf_core, stub_blob};

/// A whole handover in 256 KiB of RAM at 1 GiB, as the engine
/// writes it, with both arch handoffs: what [`handover`] built and where.
#[derive(Debug)]
pub struct Handover {
    /// The guest memory.
    pub mem: HostMem,
    /// The root KHO FDT.
    pub fdt: u64,
    /// The x86 zero page.
    pub boot_params: u64,
    /// Its `setup_data` KHO entry.
    pub setup_data: u64,
    /// The boot DTB with `/chosen` `linux,kho-fdt` and `linux,kho-scratch`.
    pub dtb: u64,
}

/// RAM of [`handover`]: 64 pages at 1 GiB.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Bytes of RAM of [`handover`].
pub const RAM_SIZE: u64 = 64 * 4096;

/// A small handover with every client the decoder knows: folios of orders
/// 0 and 3, a vmalloc area, a `reserve_mem` region, kexec-metadata, the
/// stub's blob (folio records, the vmalloc area) and
/// lib/test_kho.c's `kho_test` (a sub-FDT and its folio array); the scratch
/// array, an x86 zero page with its `setup_data` entry and a boot DTB, all
/// in the last 8 pages (scratch). Folio contents are left zero, so most
/// pages are (a small ELF core).
pub fn handover() -> Handover {
    let at = PhysAddr::new;
    let mut mem = HostMem::new(at(RAM_BASE), RAM_SIZE).unwrap();
    let scratch_at = RAM_BASE + RAM_SIZE - 8 * 4096;
    let scratch = PhysRange::try_new(at(scratch_at), 8 * 4096).unwrap();
    mem.reserve(scratch).unwrap();
    let areas = ScratchAreas::from_ranges(&[scratch]).unwrap();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    out.exclude_scratch(&areas);

    let mut folios = Vec::new();
    for o in [0, 3, 0] {
        let order = Order::try_new(o).unwrap();
        let p = mem.alloc_pages(order).unwrap();
        out.preserve_folio(&mut mem, p, order).unwrap();
        folios.push((p, order));
    }
    let pages: Vec<PhysAddr> = (0..2).map(|_| mem.alloc_page().unwrap()).collect();
    let desc = out
        .preserve_vmalloc(&mut mem, pages.iter().copied(), Order::ZERO, 1)
        .unwrap();
    let log = mem.alloc_page().unwrap();
    let region = kho_memblock::Region::new("kho_log", log, 4096).unwrap();
    out.preserve_memblock(&mut mem, &[region]).unwrap();
    out.add_kexec_metadata(&mut mem, 3, "seed").unwrap();

    // The stub's blob: records of the first two folios, the vmalloc area.
    let records: Vec<(u64, u32)> = folios
        .iter()
        .take(2)
        .map(|&(p, order)| (p.as_u64(), order.get()))
        .collect();
    let blob = stub_blob(2, 0x5eed, desc, &records);
    let stub = mem.alloc_page().unwrap();
    mem.write(stub, &blob).unwrap();
    out.preserve_folio(&mut mem, stub, Order::ZERO).unwrap();
    out.add_subtree(&mut mem, "kho-stub", stub, Some(blob.len() as u64))
        .unwrap();

    // lib/test_kho.c: a vmalloc'ed array of `phys | order`, and its sub-FDT.
    let array = mem.alloc_page().unwrap();
    for (i, &(p, order)) in folios.iter().enumerate() {
        mem.write_u64(
            at(array.as_u64() + 8 * i as u64),
            p.as_u64() | u64::from(order.get()),
        )
        .unwrap();
    }
    let array_desc = out
        .preserve_vmalloc(&mut mem, [array], Order::ZERO, 1)
        .unwrap();
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("compatible", "kho-test-v1").unwrap();
    w.property("magic", &0x4b48_4f21u32.to_le_bytes()).unwrap();
    let data = w.begin_node("data").unwrap();
    w.property("nr_folios", &(folios.len() as u32).to_le_bytes())
        .unwrap();
    w.property("folios_info", zerocopy::IntoBytes::as_bytes(&array_desc))
        .unwrap();
    w.property("csum", &0x1234u32.to_le_bytes()).unwrap();
    w.end_node(data).unwrap();
    w.end_node(root).unwrap();
    let test_fdt = w.finish().unwrap();
    let test_at = mem.alloc_page().unwrap();
    mem.write(test_at, &test_fdt).unwrap();
    out.preserve_folio(&mut mem, test_at, Order::ZERO).unwrap();
    out.add_subtree(&mut mem, "kho_test", test_at, Some(test_fdt.len() as u64))
        .unwrap();

    // The handoffs, in scratch.
    let array_range = areas.write_array(&mut mem, scratch.start()).unwrap();
    let handover = out.handover(array_range);
    let (boot_params, setup_data, dtb) = (
        scratch_at + 0x1000,
        scratch_at + 0x2000,
        scratch_at + 0x3000,
    );
    let memory = [x86::MemoryEntry {
        range: PhysRange::try_new(at(RAM_BASE), RAM_SIZE).unwrap(),
        kind: e820::RAM,
    }];
    let params = x86::BootParamsOut {
        memory: &memory,
        cmdline: None,
        kho: Some((at(setup_data), handover)),
        acpi_rsdp: None,
        ramdisk: None,
        setup_header: None,
    };
    x86::write_boot_params(&mut mem, at(boot_params), &params).unwrap();
    let boot_dtb =
        dt::write_chosen(&boot_dtb(RAM_BASE, RAM_SIZE, None), Some(&handover), None).unwrap();
    mem.write(at(dtb), &boot_dtb).unwrap();

    Handover {
        fdt: out.fdt().as_u64(),
        mem,
        boot_params,
        setup_data,
        dtb,
    }
}

/// `mem`'s RAM (that of [`handover`]) as an ELF core the way a dump tool
/// that leaves out zeros writes it: one `PT_LOAD` per page, its file bytes
/// only up to the page's last non-zero byte (the rest is the zero fill).
pub fn sparse_core(mem: &HostMem) -> Vec<u8> {
    let mut ram = vec![0u8; RAM_SIZE as usize];
    mem.read(PhysAddr::new(RAM_BASE), &mut ram).unwrap();
    let loads: Vec<Load<'_>> = ram
        .chunks(PAGE)
        .enumerate()
        .map(|(i, page)| {
            let used = page.iter().rposition(|&b| b != 0).map_or(0, |n| n + 1);
            Load {
                paddr: RAM_BASE + (i * PAGE) as u64,
                memsz: PAGE as u64,
                data: &page[..used.next_multiple_of(8)],
            }
        })
        .collect();
    elf_core(&loads)
}
