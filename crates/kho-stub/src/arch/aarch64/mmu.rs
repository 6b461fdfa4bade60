//! arm64 memory setup: the MMU on with an identity map, RAM normal
//! write-back, MMIO device memory (docs/HANDOVER.md, "Memory types").
//!
//! With the MMU off every data access is Device-nGnRnE: uncached. That is
//! how the stub used to run its whole generation (TCG ignores memory types,
//! real hardware and KVM do not). Now, as a kernel does right after entry,
//! once the memory map is known:
//!
//! - an identity map of `[0, MAPPED_LIMIT)` with a 4 KiB granule and a
//!   48-bit input range: 1 GiB blocks where a GiB is all RAM or all
//!   device, a level-2 table of 2 MiB blocks where it is mixed (types from
//!   [`crate::memtype`]); RAM is Normal write-back (read/write-allocate,
//!   inner shareable), everything below 4 GiB that is not RAM is
//!   Device-nGnRnE and never executable, the rest unmapped;
//! - `MAIR_EL1`, `TCR_EL1`, `TTBR0_EL1`; TTBR1 walks off (`EPD1`);
//! - before the MMU goes on, the image's whole footprint (text, data,
//!   `.bss`, stack) is invalidated to the PoC: it was written with the MMU
//!   off (relocations, the zeroed `.bss`, the stack, these tables), so a
//!   stale line from the previous kernel must not shadow it (what Linux's
//!   `head.S` does for what it writes before its MMU is on);
//! - `SCTLR_EL1.{M,C,I}` on, alignment checks and `WXN` off.
//!
//! Leaving: `mmu_off_enter` (entry.S) cleans the ranges the next kernel
//! reads with its MMU off to the PoC, turns the MMU and data cache off and
//! enters it, as booting.rst requires. The tables live in `.bss`: every
//! re-entry (the next generation, a restart in place) first turns the MMU
//! off, so `.bss` is never cleared under a live map.
//!
//! Only at EL1, where the stub runs on QEMU virt and under Linux's kexec.
//! Entered at EL2 the stub says so on the `KHO memtypes` line and keeps
//! the MMU off (correct, uncached).

use core::fmt;

use kho_mem::PhysRange;
use kho_scratch::MemRegion;

use crate::memtype::{BlockType, block_type};

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
/// GiBs mapped: `MAPPED_LIMIT` (16 GiB).
const GIBS: usize = (super::MAPPED_LIMIT / GIB) as usize;
/// Non-RAM below this is device memory (the 32-bit MMIO window: virt's
/// UART, GIC, flash, PCIe ECAM all lie below 1 GiB).
const DEVICE_END: u64 = 4 << 30;

/// Descriptor bits (VMSAv8-64, stage 1, 4 KiB granule).
const DESC_TABLE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
/// MAIR_EL1: Attr0 Device-nGnRnE (0x00), Attr1 Normal inner/outer
/// write-back non-transient read/write-allocate (0xff).
const MAIR: u64 = 0xff << 8;
/// TCR_EL1: T0SZ = 16 (48-bit), IRGN0/ORGN0 write-back write-allocate,
/// SH0 inner shareable, TG0 4 KiB, T1SZ = 16, EPD1 (no TTBR1 walks); IPS
/// is added from ID_AA64MMFR0_EL1.
const TCR: u64 = 16 | (1 << 8) | (1 << 10) | (0b11 << 12) | (16 << 16) | (1 << 23);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
const SCTLR_WXN: u64 = 1 << 19;

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Level 0, level 1, one level-2 table per GiB that needs one.
#[repr(C)]
struct Tables {
    l0: Table,
    l1: Table,
    l2: [Table; GIBS],
}

/// In `.bss`: zeroed at every entry, written before the MMU goes on.
static mut TABLES: Tables = Tables {
    l0: Table([0; 512]),
    l1: Table([0; 512]),
    l2: [const { Table([0; 512]) }; GIBS],
};

/// What `setup` did, for the `KHO memtypes` line.
#[derive(Clone, Copy, Debug)]
pub enum MemSetup {
    /// The MMU is on with the identity map.
    On {
        /// 1 GiB blocks: RAM, device.
        gib_ram: usize,
        gib_device: usize,
        /// Level-2 tables and their 2 MiB blocks: RAM, device.
        l2_tables: usize,
        mib2_ram: usize,
        mib2_device: usize,
    },
    /// Not at EL1: the MMU stays off.
    Off { el: u64 },
}

impl fmt::Display for MemSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemSetup::On {
                gib_ram,
                gib_device,
                l2_tables,
                mib2_ram,
                mib2_device,
            } => write!(
                f,
                "mmu=on normal-1g={gib_ram} device-1g={gib_device} l2-tables={l2_tables} normal-2m={mib2_ram} device-2m={mib2_device}"
            ),
            MemSetup::Off { el } => write!(
                f,
                "mmu=off reason=\"entered at EL{el}, the stub sets up EL1 only\""
            ),
        }
    }
}

fn current_el() -> u64 {
    let el: u64;
    // SAFETY: reading CurrentEL has no side effect.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
    (el >> 2) & 3
}

fn block(at: u64, ty: BlockType) -> u64 {
    match ty {
        BlockType::WriteBack => at | DESC_BLOCK | ATTR_NORMAL | SH_INNER | AF,
        BlockType::Device => at | DESC_BLOCK | ATTR_DEVICE | AF | PXN | UXN,
        BlockType::Unmapped => 0,
    }
}

/// Build the identity map for `memory` and turn the MMU on; `footprint`
/// is the running image with its `.bss` and stack.
pub fn setup(memory: &[MemRegion], footprint: PhysRange) -> MemSetup {
    let el = current_el();
    if el != 1 {
        return MemSetup::Off { el };
    }
    // SAFETY: the MMU is off (every entry arrives with it off, and only
    // this function turns it on), so nothing translates through TABLES
    // while they are written; one CPU.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(TABLES) };
    let (mut gib_ram, mut gib_device, mut l2_tables, mut mib2_ram, mut mib2_device) =
        (0, 0, 0, 0, 0);
    for g in 0..GIBS {
        let base = g as u64 * GIB;
        let types: [BlockType; 512] =
            core::array::from_fn(|i| block_type(memory, base + i as u64 * MIB2, MIB2, DEVICE_END));
        let entry = if types.iter().all(|&ty| ty == types[0]) {
            match types[0] {
                BlockType::WriteBack => gib_ram += 1,
                BlockType::Device => gib_device += 1,
                BlockType::Unmapped => {}
            }
            block(base, types[0])
        } else {
            let l2 = &mut t.l2[g];
            for (i, &ty) in types.iter().enumerate() {
                match ty {
                    BlockType::WriteBack => mib2_ram += 1,
                    BlockType::Device => mib2_device += 1,
                    BlockType::Unmapped => {}
                }
                l2.0[i] = block(base + i as u64 * MIB2, ty);
            }
            l2_tables += 1;
            (&raw const l2.0) as u64 | DESC_TABLE
        };
        t.l1.0[g] = entry;
    }
    t.l0.0[0] = (&raw const t.l1.0) as u64 | DESC_TABLE;
    let ttbr0 = (&raw const t.l0.0) as u64;

    invalidate_to_poc(footprint);
    let mmfr0: u64;
    // SAFETY: reading ID_AA64MMFR0_EL1 has no side effect.
    unsafe {
        core::arch::asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack))
    };
    // IPS: the CPU's physical range, at most 48 bits (52 needs FEAT_LPA2).
    let ips = (mmfr0 & 0xf).min(5);
    let tcr = TCR | (ips << 32);
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effect.
    unsafe { core::arch::asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    let sctlr = (sctlr | SCTLR_M | SCTLR_C | SCTLR_I) & !(SCTLR_A | SCTLR_WXN);
    // SAFETY: TABLES map every address the stub uses (its image, stack,
    // heap and all RAM it reaches are RAM; the UART is device memory) to
    // itself, so turning the MMU on changes no address the code or the
    // stack use; the footprint was invalidated above, and the barriers
    // order the register writes before the MMU takes them.
    unsafe {
        core::arch::asm!(
            "dsb sy",
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            "tlbi vmalle1",
            "ic iallu",
            "dsb sy",
            "isb",
            "msr sctlr_el1, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr0 = in(reg) ttbr0,
            sctlr = in(reg) sctlr,
            options(nostack),
        )
    };
    MemSetup::On {
        gib_ram,
        gib_device,
        l2_tables,
        mib2_ram,
        mib2_device,
    }
}

/// Invalidate `r` to the PoC by VA (= PA): stale lines are dropped, memory
/// keeps what was written with the MMU off.
fn invalidate_to_poc(r: PhysRange) {
    for at in super::dcache_lines(r) {
        // SAFETY: cache maintenance by VA of the stub's own footprint; the
        // previous kernel cleaned it before entering (booting.rst), so no
        // dirty line is lost.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) at, options(nostack)) }
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}
