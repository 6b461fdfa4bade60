//! A 32 MiB guest with a known KHO handover, and the corruptions the
//! decoder must name, applied in place.
//!
//! Built with the engine a kernel uses ([`kho::KhoOut`] over a
//! [`HostMem`]): folios of four orders, a scattered vmalloc area, a
//! `reserve_mem` region (memblock sub-blob), the stub's own blob and
//! `kexec-metadata`; two scratch areas; and both arch handoffs (an x86 zero
//! page with the `setup_data` KHO entry, an arm64-style DTB with `/chosen`).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kho::Handover;
use kho::KhoOut;
use kho::handoff::dt;
use kho_abi::AbiVersion;
use kho_abi::vmalloc::FLAG_VM_ALLOC;
use kho_abi::x86::{KHO_DATA_SIZE, SETUP_KEXEC_KHO, SetupDataHeader, boot_params as bp};
use kho_abi::{Le32, Le64};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_scratch::ScratchAreas;
use zerocopy::IntoBytes;

use super::{boot_dtb, stub_blob};

/// Where the arena's RAM starts (arm64 `virt`'s RAM base).
pub const BASE: u64 = 0x4000_0000;
/// Bytes of RAM.
pub const SIZE: u64 = 32 << 20;
/// The two scratch areas: the top 8 MiB, split in two.
pub const SCRATCH: [(u64, u64); 2] = [(BASE + (24 << 20), 4 << 20), (BASE + (28 << 20), 4 << 20)];
/// Orders of the folios, as the stub preserves them.
pub const ORDERS: [u32; 4] = [0, 1, 3, 9];
/// Pages of the vmalloc area (every other page, so each is its own run).
pub const VMALLOC_PAGES: usize = 5;
/// The `reserve_mem` region's size.
pub const LOG_SIZE: u64 = 0x10000;

/// The image and everything the tests expect to read back from it.
#[derive(Debug)]
pub struct Fixture {
    /// The guest memory.
    pub mem: HostMem,
    /// Root KHO FDT page.
    pub fdt: u64,
    /// Radix root (`preserved-memory-map`).
    pub root: u64,
    /// Scratch descriptor array: address, byte length.
    pub scratch_array: (u64, u64),
    /// x86 zero page.
    pub boot_params: u64,
    /// Boot DTB with `/chosen` `linux,kho-fdt` / `linux,kho-scratch`.
    pub dtb: u64,
    /// Folios (phys, order), in preservation order.
    pub folios: Vec<(u64, u32)>,
    /// The vmalloc area's pages.
    pub vmalloc: Vec<u64>,
    /// Its first chunk page.
    pub vmalloc_first: u64,
    /// The `kho_log` region.
    pub log: u64,
    /// The `memblock` subtree's blob.
    pub memblock_blob: u64,
    /// The `kho-stub` subtree's blob.
    pub stub_blob: u64,
    /// The `kexec-metadata` subtree's blob.
    pub metadata_blob: u64,
    /// The preserved set as the outgoing tree walks it: (order, addr, blocks).
    pub runs: Vec<(u32, u64, u64)>,
    /// Radix node accounting of the outgoing tree: (tables, leaves).
    pub nodes: (u64, u64),
}

fn addr(a: u64) -> PhysAddr {
    PhysAddr::new(a)
}

fn range(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(addr(a), s).unwrap()
}

/// Build the image (root FDT kho-v2).
pub fn build() -> Fixture {
    build_as(AbiVersion::V2)
}

/// Build the image with the root FDT written as `version`.
pub fn build_as(version: AbiVersion) -> Fixture {
    let mut mem = HostMem::new(addr(BASE), SIZE).unwrap();
    for (a, s) in SCRATCH {
        mem.reserve(range(a, s)).unwrap();
    }
    let mut out = KhoOut::new(&mut mem, version).unwrap();

    let mut folios = Vec::new();
    for o in ORDERS {
        let order = Order::try_new(o).unwrap();
        let p = mem.alloc_pages(order).unwrap();
        mem.fill(p, order.bytes(), 0x5a).unwrap();
        out.preserve_folio(&mut mem, p, order).unwrap();
        folios.push((p.as_u64(), o));
    }

    let mut pages = Vec::new();
    let mut gaps = Vec::new();
    for _ in 0..VMALLOC_PAGES {
        pages.push(mem.alloc_page().unwrap());
        gaps.push(mem.alloc_page().unwrap());
    }
    for g in gaps {
        mem.free_page(g).unwrap();
    }
    let desc = out
        .preserve_vmalloc(&mut mem, pages.iter().copied(), Order::ZERO, FLAG_VM_ALLOC)
        .unwrap();

    let log = mem.alloc_pages(Order::try_new(4).unwrap()).unwrap();
    let region = kho_memblock::Region::new("kho_log", log, LOG_SIZE).unwrap();
    let memblock = out.preserve_memblock(&mut mem, &[region]).unwrap();

    // The stub's blob: header, then one record per folio.
    let blob = stub_blob(1, 0x5eed, desc, &folios);
    let stub_blob = mem.alloc_page().unwrap();
    mem.write(stub_blob, &blob).unwrap();
    out.preserve_folio(&mut mem, stub_blob, Order::ZERO)
        .unwrap();
    out.add_subtree(&mut mem, "kho-stub", stub_blob, Some(blob.len() as u64))
        .unwrap();
    let metadata_blob = out.add_kexec_metadata(&mut mem, 2, "fixture-6.19").unwrap();

    // The handoff, inside scratch: the array (64 KiB aligned), a zero page
    // with its setup_data entry, a DTB.
    let areas = ScratchAreas::from_ranges(&SCRATCH.map(|(a, s)| range(a, s))).unwrap();
    let array = areas.write_array(&mut mem, addr(SCRATCH[0].0)).unwrap();
    let handover = out.handover(array);
    let boot_params = SCRATCH[0].0 + 0x1_0000;
    write_boot_params(&mut mem, boot_params, boot_params + 0x1000, &handover);
    let dtb = SCRATCH[0].0 + 0x2_0000;
    let blob =
        dt::write_chosen(&boot_dtb(BASE, SIZE, Some("kho=on")), Some(&handover), None).unwrap();
    mem.write(addr(dtb), &blob).unwrap();

    let tree = out.tree().expect("a kho-v2+ fixture has a radix tree");
    let runs = tree
        .ranges(&mem)
        .map(|r| {
            let r = r.unwrap();
            (r.order().get(), r.range().start().as_u64(), r.blocks())
        })
        .collect();
    let stats = out.node_stats();
    let area = kho_vmalloc::restore_vmalloc(&mem, &desc).unwrap();
    Fixture {
        fdt: out.fdt().as_u64(),
        root: tree.root().as_u64(),
        scratch_array: (array.start().as_u64(), array.size()),
        boot_params,
        dtb,
        folios,
        vmalloc: pages.iter().map(|p| p.as_u64()).collect(),
        vmalloc_first: area.first().as_u64(),
        log: log.as_u64(),
        memblock_blob: memblock.phys.as_u64(),
        stub_blob: stub_blob.as_u64(),
        metadata_blob: metadata_blob.as_u64(),
        runs,
        nodes: (stats.tables, stats.leaves),
        mem,
    }
}

/// A zero page at `at` as a boot loader writes it (magics, one e820 RAM
/// entry) whose `setup_data` chain is one KHO entry at `entry`.
fn write_boot_params(mem: &mut HostMem, at: u64, entry: u64, handover: &Handover) {
    let page = vec![0u8; bp::SIZE];
    mem.write(addr(at), &page).unwrap();
    let field = |off: usize| addr(at + off as u64);
    mem.write(field(bp::BOOT_FLAG), &bp::BOOT_FLAG_MAGIC.to_le_bytes())
        .unwrap();
    mem.write(field(bp::HEADER), &bp::HEADER_MAGIC.to_le_bytes())
        .unwrap();
    mem.write(field(bp::E820_ENTRIES), &[1]).unwrap();
    let e820 = field(bp::E820_TABLE);
    mem.write_u64(e820, BASE).unwrap();
    mem.write_u64(addr(e820.as_u64() + 8), SIZE).unwrap();
    mem.write(addr(e820.as_u64() + 16), &1u32.to_le_bytes())
        .unwrap();
    mem.write_u64(field(bp::SETUP_DATA), entry).unwrap();
    let header = SetupDataHeader {
        next: Le64::new(0),
        type_: Le32::new(SETUP_KEXEC_KHO),
        len: Le32::new(KHO_DATA_SIZE as u32),
    };
    mem.write(addr(entry), header.as_bytes()).unwrap();
    mem.write(addr(entry + 16), handover.to_kho_data().as_bytes())
        .unwrap();
}

impl Fixture {
    /// The whole RAM, byte 0 at [`BASE`].
    pub fn ram(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; SIZE as usize];
        self.mem.read(addr(BASE), &mut bytes).unwrap();
        bytes
    }

    /// The little-endian word at `at`.
    pub fn read_u64(&self, at: u64) -> u64 {
        self.mem.read_u64(addr(at)).unwrap()
    }

    /// Overwrite the word at `at`.
    pub fn write_u64(&mut self, at: u64, value: u64) {
        self.mem.write_u64(addr(at), value).unwrap();
    }

    /// The first non-zero entry of the table at `table`: (its address, value).
    pub fn first_entry(&self, table: u64) -> (u64, u64) {
        (0..512)
            .map(|i| table + 8 * i)
            .map(|at| (at, self.read_u64(at)))
            .find(|&(_, v)| v != 0)
            .unwrap()
    }

    /// The root's first child (a level-4 table) and its first entry.
    fn level4_entry(&self) -> (u64, u64) {
        let (_, level4) = self.first_entry(self.root);
        self.first_entry(level4)
    }

    /// A level-4 table entry pointing back at the root.
    pub fn corrupt_cycle(&mut self) {
        let (at, _) = self.level4_entry();
        self.write_u64(at, self.root);
    }

    /// A level-4 table entry pointing past the end of the image.
    pub fn corrupt_entry_outside_image(&mut self) {
        let (at, _) = self.level4_entry();
        self.write_u64(at, BASE + SIZE + (1 << 30));
    }

    /// A level-4 table entry that is not page-aligned.
    pub fn corrupt_misaligned_entry(&mut self) {
        let (at, value) = self.level4_entry();
        self.write_u64(at, value + 8);
    }

    /// The root FDT's compatible becomes `"kho-v9"`.
    pub fn corrupt_compatible(&mut self) {
        let mut page = vec![0u8; 4096];
        self.mem.read(addr(self.fdt), &mut page).unwrap();
        let at = page.windows(6).position(|w| w == b"kho-v2").unwrap();
        self.mem
            .write(addr(self.fdt + at as u64), b"kho-v9")
            .unwrap();
    }

    /// Rewrite the root FDT with the same tree in Linux 7.2's layout: each
    /// child's `blob-size` before its `preserved-data`, the children in
    /// reverse order (libfdt inserts new properties and nodes first).
    pub fn relayout_fdt_like_linux(&mut self) {
        let mut page = vec![0u8; 4096];
        self.mem.read(addr(self.fdt), &mut page).unwrap();
        let fdt = kho_fdt::KhoFdt::parse(&page).unwrap();
        let compatible = fdt.version().compatible();
        let map = fdt.memory_map().as_u64();
        let children: Vec<(String, u64, u64)> = fdt
            .subtrees()
            .map(|s| (s.name().to_owned(), s.data().as_u64(), s.size().unwrap()))
            .collect();
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string("compatible", compatible).unwrap();
        w.property("preserved-memory-map", &map.to_le_bytes())
            .unwrap();
        for (name, data, size) in children.iter().rev() {
            let c = w.begin_node(name).unwrap();
            w.property("blob-size", &size.to_le_bytes()).unwrap();
            w.property("preserved-data", &data.to_le_bytes()).unwrap();
            w.end_node(c).unwrap();
        }
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let mut fresh = vec![0u8; 4096];
        fresh[..blob.len()].copy_from_slice(&blob);
        self.mem.write(addr(self.fdt), &fresh).unwrap();
    }

    /// The x86 `setup_data` KHO entry the zero page links.
    pub fn setup_data_entry(&self) -> u64 {
        self.read_u64(self.boot_params + bp::SETUP_DATA as u64)
    }

    /// Zero the x86 handoff: the zero page and its `setup_data` entry.
    pub fn remove_x86_handoff(&mut self) {
        let entry = self.setup_data_entry();
        let zero = vec![0u8; bp::SIZE];
        self.mem.write(addr(entry), &zero[..48]).unwrap();
        self.mem.write(addr(self.boot_params), &zero).unwrap();
    }

    /// Zero the boot DTB.
    pub fn remove_dtb(&mut self) {
        let mut head = [0u8; 8];
        self.mem.read(addr(self.dtb), &mut head).unwrap();
        let total = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let zero = vec![0u8; total as usize];
        self.mem.write(addr(self.dtb), &zero).unwrap();
    }

    /// Copy the root FDT's page to a fresh page; returns its address.
    pub fn copy_fdt(&mut self) -> u64 {
        let mut page = vec![0u8; 4096];
        self.mem.read(addr(self.fdt), &mut page).unwrap();
        let copy = self.mem.alloc_page().unwrap();
        self.mem.write(copy, &page).unwrap();
        copy.as_u64()
    }

    /// Scratch entry 1 now covers the order-9 folio.
    pub fn corrupt_scratch_over_preserved(&mut self) {
        let (folio, _) = self.folios[3];
        let entry = self.scratch_array.0 + 16;
        self.write_u64(entry, folio);
        self.write_u64(entry + 8, 2 << 20);
    }
}
