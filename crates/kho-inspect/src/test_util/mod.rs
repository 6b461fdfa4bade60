//! Test support (feature `test-util`, off by default): memory images with a
//! known handover, for this crate's tests and for tools built on it (the
//! `kho` command line's tests). One copy of each builder:
//!
//! - [`elf_core`]: an ELF64 core like QEMU's `dump-guest-memory`, byte by
//!   byte, from [`Load`] segments;
//! - [`bomb`]: issue 15's image, a small file claiming an enormous memory;
//! - [`handover`] and [`sparse_core`]: every client the decoder knows in
//!   256 KiB of RAM, as a sparse core;
//! - [`fixture`]: a 32 MiB guest with a handover and every corruption the
//!   decoder names, applied in place;
//! - [`boot_dtb`]: the arm64-style boot DTB both handovers use.
//!
//! Builders panic on failure: they build known-good images from constants,
//! so a failure is a bug in the test, never input to handle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod fixture;
mod handover;

use alloc::vec;
use alloc::vec::Vec;

use kho_abi::AbiVersion;
use kho_abi::stub::{Header, MAGIC, Record};
use kho_abi::vmalloc::VmallocDescriptor;
use kho_fdt::KhoFdtBuilder;
use kho_mem::PhysAddr;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

pub use handover::{Handover, RAM_BASE, RAM_SIZE, handover, sparse_core};

const PAGE: usize = 4096;

/// A `PT_LOAD` segment: physical address, `p_memsz`, file bytes
/// (`p_filesz` is their length; the rest of `p_memsz` is zero fill).
#[derive(Clone, Copy, Debug)]
pub struct Load<'a> {
    /// Physical (and virtual) address of the segment.
    pub paddr: u64,
    /// Bytes of memory the segment claims.
    pub memsz: u64,
    /// Its bytes in the file.
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

/// Where issue 15's image has its root FDT.
pub const BOMB_FDT: u64 = 0x1000;
/// Where issue 15's image has its radix root.
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

/// A minimal arm64-style boot DTB: 2+2 cells, a `memory@…` node for
/// `[base, base + size)`, and `/chosen` (with `bootargs` if given), for
/// `kho::handoff::dt::write_chosen` to add the handover to.
pub fn boot_dtb(base: u64, size: u64, bootargs: Option<&str>) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let memory = w.begin_node(&alloc::format!("memory@{base:x}")).unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[base, size]).unwrap();
    w.end_node(memory).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    if let Some(args) = bootargs {
        w.property_string("bootargs", args).unwrap();
    }
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// The stub's blob (`kho_abi::stub`): written by `generation` from `seed`,
/// its vmalloc area `vmalloc`, one folio record per `(phys, order)`
/// (checksum `0xc0de_0000 + i`, block `i`, filled by generation 1).
pub fn stub_blob(
    generation: u32,
    seed: u64,
    vmalloc: VmallocDescriptor,
    folios: &[(u64, u32)],
) -> Vec<u8> {
    let header = Header {
        magic: MAGIC,
        generation: U32::new(generation),
        count: U32::new(folios.len() as u32),
        seed: U64::new(seed),
        vmalloc,
        log_start: U64::new(0),
    };
    let mut blob = header.as_bytes().to_vec();
    for (i, &(phys, order)) in folios.iter().enumerate() {
        let record = Record {
            phys: U64::new(phys),
            checksum: U64::new(0xc0de_0000 + i as u64),
            order: U32::new(order),
            generation: U32::new(1),
            block: U32::new(i as u32),
            count: U16::new(1),
            spacing: U16::new(0),
        };
        blob.extend_from_slice(record.as_bytes());
    }
    blob
}
