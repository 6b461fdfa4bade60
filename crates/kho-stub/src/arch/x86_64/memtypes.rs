//! x86_64 memory types: the PAT the boot page tables rely on, the MTRR
//! default type, caches on, and each 2 MiB page of the identity map typed
//! by the memory map (docs/HANDOVER.md, "Memory types").
//!
//! The stub used to inherit whatever the previous kernel or the firmware
//! left in `IA32_PAT`, `IA32_MTRR_DEF_TYPE` and `CR0.CD`, and mapped all
//! 16 GiB with PAT index 0. Now, as a kernel does right after entry:
//!
//! - `IA32_PAT` holds the architectural reset value: index 0 write-back,
//!   index 3 uncached (the two the stub's entries use);
//! - if the MTRRs are disabled (every access uncached) they are enabled
//!   with write-back as the default type; MTRRs firmware enabled are kept
//!   (they know where MMIO is);
//! - `CR0.CD`/`CR0.NW` are cleared;
//! - every 2 MiB page with no RAM in it (the PCI hole, the BIOS ROM) gets
//!   PAT index 3, uncached; RAM pages keep index 0, write-back.
//!
//! Changing PAT or the MTRRs follows the SDM's sequence (vol. 3A, 12.11.8):
//! caches off and flushed, TLB flushed, the change, flushed again, caches
//! on. It runs only when something has to change.

use core::fmt;

use kho_scratch::MemRegion;

use crate::memtype::{BlockType, block_type};

/// `IA32_PAT`'s architectural reset value: WB, WT, UC-, UC, WB, WT, UC-, UC.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
const MSR_PAT: u32 = 0x277;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// `IA32_MTRR_DEF_TYPE`: MTRRs enabled, and the default-type field.
const MTRR_ENABLE: u64 = 1 << 11;
const MTRR_TYPE_MASK: u64 = 0xff;
const MTRR_TYPE_WB: u64 = 6;
const CR0_CD: u64 = 1 << 30;
const CR0_NW: u64 = 1 << 29;
/// PD entry: present, writable, 2 MiB page.
const PDE_BASE: u64 = 0x83;
/// PD entry PWT | PCD: PAT index 3, uncached.
const PDE_UC: u64 = 0x18;
const MIB2: u64 = 2 << 20;
const PD_ENTRIES: usize = 8192;

unsafe extern "C" {
    /// entry.S's 2 MiB entries of the identity map (16 GiB).
    static mut boot_pd: [u64; PD_ENTRIES];
}

/// What `setup` found and did, for the `KHO memtypes` line.
#[derive(Clone, Copy, Debug)]
pub struct MemSetup {
    /// `IA32_PAT` before (`None`: no PAT).
    pat_before: Option<u64>,
    /// `IA32_MTRR_DEF_TYPE` before (`None`: no MTRRs).
    mtrr_before: Option<u64>,
    /// `CR0.CD`/`CR0.NW` were set.
    cache_was_off: bool,
    /// 2 MiB pages mapped write-back and uncached.
    write_back: usize,
    uncached: usize,
}

impl fmt::Display for MemSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pat_before {
            Some(PAT_RESET) => write!(f, "pat=kept")?,
            Some(old) => write!(f, "pat=set was={old:#x}")?,
            None => write!(f, "pat=absent")?,
        }
        match self.mtrr_before {
            Some(m) if m & MTRR_ENABLE != 0 => {
                write!(f, " mtrr=firmware default={}", m & MTRR_TYPE_MASK)?
            }
            Some(_) => write!(f, " mtrr=enabled default={MTRR_TYPE_WB}")?,
            None => write!(f, " mtrr=absent")?,
        }
        let cache = if self.cache_was_off { "enabled" } else { "on" };
        write!(
            f,
            " cache={cache} wb-2m={} uc-2m={}",
            self.write_back, self.uncached
        )
    }
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only called for MSRs CPUID says exist (PAT, MTRR).
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: only called for PAT and MTRR_DEF_TYPE with valid values,
    // inside `with_caches_flushed`, as the SDM's sequence asks.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_cr0(v: u64) {
    // SAFETY: only CD/NW change (the caller keeps PG, PE, WP as they are).
    unsafe { core::arch::asm!("mov cr0, {}", in(reg) v, options(nostack)) };
}

fn flush_tlb() {
    // SAFETY: reloading CR3 with its own value flushes the non-global TLB
    // entries (the stub maps nothing global) and changes no mapping.
    unsafe { core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack)) };
}

fn wbinvd() {
    // SAFETY: writes back and invalidates the caches; no memory changes.
    unsafe { core::arch::asm!("wbinvd", options(nostack)) };
}

/// The SDM's sequence around a PAT or MTRR change: caches off, flushed,
/// TLB flushed; `change`; flushed again; caches on.
fn with_caches_flushed(change: impl FnOnce()) {
    let cr0 = cr0();
    set_cr0((cr0 | CR0_CD) & !CR0_NW);
    wbinvd();
    flush_tlb();
    change();
    wbinvd();
    flush_tlb();
    set_cr0(cr0 & !(CR0_CD | CR0_NW));
}

/// Set up the memory types (see the module docs) for `memory`.
pub fn setup(memory: &[MemRegion]) -> MemSetup {
    // CPUID leaf 1 exists on every x86_64 CPU.
    let features = core::arch::x86_64::__cpuid(1).edx;
    let (has_mtrr, has_pat) = (features & (1 << 12) != 0, features & (1 << 16) != 0);
    let pat_before = has_pat.then(|| rdmsr(MSR_PAT));
    let mtrr_before = has_mtrr.then(|| rdmsr(MSR_MTRR_DEF_TYPE));
    let cache_was_off = cr0() & (CR0_CD | CR0_NW) != 0;
    let set_pat = pat_before.is_some_and(|p| p != PAT_RESET);
    let set_mtrr = mtrr_before.is_some_and(|m| m & MTRR_ENABLE == 0);
    if set_pat || set_mtrr || cache_was_off {
        with_caches_flushed(|| {
            if set_pat {
                wrmsr(MSR_PAT, PAT_RESET);
            }
            if let Some(m) = mtrr_before.filter(|_| set_mtrr) {
                wrmsr(
                    MSR_MTRR_DEF_TYPE,
                    (m & !MTRR_TYPE_MASK) | MTRR_ENABLE | MTRR_TYPE_WB,
                );
            }
        });
    }
    let (mut write_back, mut uncached) = (0, 0);
    // SAFETY: boot_pd is entry.S's page directory, live in CR3's tables;
    // each entry keeps its frame and stays present and writable, only the
    // PWT/PCD bits (the memory type) change, and the TLB is flushed below.
    // Nothing else refers to the table while this runs (one CPU).
    let pd = unsafe { &mut *core::ptr::addr_of_mut!(boot_pd) };
    for (i, e) in pd.iter_mut().enumerate() {
        let at = i as u64 * MIB2;
        // Nothing above the RAM is unmapped: the stub's early readers use
        // the whole 16 GiB (uncached where it is not RAM).
        *e = match block_type(memory, at, MIB2, u64::MAX) {
            BlockType::WriteBack => {
                write_back += 1;
                at | PDE_BASE
            }
            BlockType::Device | BlockType::Unmapped => {
                uncached += 1;
                at | PDE_BASE | PDE_UC
            }
        };
    }
    flush_tlb();
    MemSetup {
        pat_before,
        mtrr_before,
        cache_was_off,
        write_back,
        uncached,
    }
}
