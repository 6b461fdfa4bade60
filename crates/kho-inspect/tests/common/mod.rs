//! Shared by the integration tests: ELF cores built byte by byte, and the
//! image of issue 15 (a small file claiming an enormous memory).

#![allow(dead_code)]

use kho_abi::AbiVersion;
use kho_fdt::KhoFdtBuilder;
use kho_mem::PhysAddr;

/// A `PT_LOAD` segment: physical address, `p_memsz`, file bytes.
pub struct Load<'a> {
    pub paddr: u64,
    pub memsz: u64,
    pub data: &'a [u8],
}

/// An ELF64 core like QEMU's: a `PT_NOTE`, then the `PT_LOAD` segments,
/// their bytes after the headers in order.
pub fn elf_core(loads: &[Load<'_>]) -> Vec<u8> {
    let phnum = 1 + loads.len();
    let mut data_at = 64 + 56 * phnum as u64;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01");
    out.resize(16, 0);
    for v in [4u16, 62] {
        out.extend_from_slice(&v.to_le_bytes()); // e_type ET_CORE, e_machine x86-64
    }
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    for v in [0u64, 64, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // e_entry, e_phoff, e_shoff
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, phnum as u16, 64, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    let mut phdr = |ty: u32, offset: u64, paddr: u64, filesz: u64, memsz: u64| {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for v in [offset, paddr, paddr, filesz, memsz, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(4, data_at, 0, 0, 0);
    for l in loads {
        phdr(1, data_at, l.paddr, l.data.len() as u64, l.memsz);
        data_at += l.data.len() as u64;
    }
    for l in loads {
        out.extend_from_slice(l.data);
    }
    out
}

const PAGE: usize = 4096;
/// Where issue 15's image has its root FDT and its radix root.
pub const BOMB_FDT: u64 = 0x1000;
pub const BOMB_ROOT: u64 = 0x2000;
/// Its level-1 table and its first leaf (the leaves follow page by page).
const BOMB_L1: u64 = 0x6000;
const BOMB_LEAF0: u64 = 0x7000;

/// Issue 15's image: an ELF core whose one segment claims 2^50 bytes of
/// memory at address 0 and holds a kho-v4 root FDT and a radix tree whose
/// `leaves` order-0 leaves have every other bit set (pages 1, 3, 5, …:
/// 16,384 runs of one page per leaf). 480 leaves are a 2 MB file and 7.8
/// million runs.
pub fn bomb(leaves: usize) -> Vec<u8> {
    let ram_len = BOMB_LEAF0 as usize + leaves * PAGE;
    let mut ram = vec![0u8; ram_len];
    let mut put = |at: u64, bytes: &[u8]| {
        ram[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    };
    let fdt = KhoFdtBuilder::new(AbiVersion::V4, PhysAddr::new(BOMB_ROOT))
        .build()
        .unwrap();
    put(BOMB_FDT, &fdt);
    // Order-0 keys are 1 << 52 | pfn: root slot 2, then slot 0 down to the
    // level-1 table, whose slot j is the leaf of pfns j << 15 ….
    let entry = |table: u64, slot: usize, to: u64| (table + 8 * slot as u64, to.to_le_bytes());
    let mut writes = vec![
        entry(BOMB_ROOT, 2, 0x3000),
        entry(0x3000, 0, 0x4000),
        entry(0x4000, 0, 0x5000),
        entry(0x5000, 0, BOMB_L1),
    ];
    for j in 0..leaves {
        writes.push(entry(BOMB_L1, j, BOMB_LEAF0 + (j * PAGE) as u64));
    }
    for (at, bytes) in writes {
        put(at, &bytes);
    }
    let leaf = [0xaau8; PAGE];
    for j in 0..leaves {
        put(BOMB_LEAF0 + (j * PAGE) as u64, &leaf);
    }
    elf_core(&[Load {
        paddr: 0,
        memsz: 1 << 50,
        data: &ram,
    }])
}

/// A whole handover in 256 KiB of RAM at 1 GiB, as the engine
/// writes it, with both arch handoffs: what `handover()` built and where.
pub struct Handover {
    pub mem: kho_mem::HostMem,
    pub fdt: u64,
    pub boot_params: u64,
    pub setup_data: u64,
    pub dtb: u64,
}

/// RAM of [`handover`]: 64 pages at 1 GiB.
pub const RAM_BASE: u64 = 0x4000_0000;
pub const RAM_SIZE: u64 = 64 * 4096;

/// A small handover with every client the decoder knows: folios of orders
/// 0 and 3, a vmalloc area, a `reserve_mem` region, kexec-metadata, the
/// stub's blob (folio records, the vmalloc area) and
/// lib/test_kho.c's `kho_test` (a sub-FDT and its folio array); the scratch
/// array, an x86 zero page with its `setup_data` entry and a boot DTB, all
/// in the last 8 pages (scratch). Folio contents are left zero, so most
/// pages are (a small ELF core).
pub fn handover() -> Handover {
    use kho::KhoOut;
    use kho::handoff::{dt, x86};
    use kho_abi::x86::e820;
    use kho_mem::{HostMem, Order, PhysMem, PhysRange};
    use kho_scratch::ScratchAreas;

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
    let mut blob = Vec::new();
    blob.extend_from_slice(b"KHOSTUB1");
    for v in [2u32, 2] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&0x5eedu64.to_le_bytes());
    blob.extend_from_slice(zerocopy::IntoBytes::as_bytes(&desc));
    blob.extend_from_slice(&0u64.to_le_bytes());
    for (i, &(p, order)) in folios.iter().take(2).enumerate() {
        for v in [p.as_u64(), 0xc0de_0000 + i as u64] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        for v in [order.get(), 1, i as u32] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        blob.extend_from_slice(&[0; 4]);
    }
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
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let memory = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[RAM_BASE, RAM_SIZE]).unwrap();
    w.end_node(memory).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    let boot_dtb = dt::write_chosen(&w.finish().unwrap(), Some(&handover), None).unwrap();
    mem.write(at(dtb), &boot_dtb).unwrap();

    Handover {
        fdt: out.fdt().as_u64(),
        mem,
        boot_params,
        setup_data,
        dtb,
    }
}

/// `mem`'s RAM as an ELF core the way a dump tool that leaves out zeros
/// writes it: one `PT_LOAD` per page, its file bytes only up to the page's
/// last non-zero byte (the rest is the zero fill).
pub fn sparse_core(mem: &kho_mem::HostMem) -> Vec<u8> {
    use kho_mem::PhysMem;

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
