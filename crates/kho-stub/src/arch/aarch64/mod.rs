//! aarch64 (QEMU virt): Linux Image entry, PL011 console, semihosting exit, DTB handoff.
//!
//! Every generation is entered the same way, as an arm64 Linux kernel is:
//! at the Image's first instruction, MMU off, `x0` = phys of the DTB. QEMU
//! passes its own DTB to generation 0. Later generations get a copy that the
//! previous generation rewrote: new `bootargs`, and `/chosen`
//! `linux,kho-fdt` / `linux,kho-scratch` naming the handover.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kho::handoff::dt;
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use kho_scratch::{LowLimit, MemRegion, NodeId, ScratchAllocator};

use crate::config::FaultClass;
use crate::generation::{self, BootInfo};
use crate::kexec::Kexec;
use crate::mem::{RamView, StubMem};

core::arch::global_asm!(include_str!("entry.S"));

mod mmu;

pub use mmu::MemSetup;

unsafe extern "C" {
    fn mmu_off_enter(entry: u64, dtb: u64, clean_start: u64, clean_end: u64) -> !;
}

/// Architecture name in protocol lines.
pub const NAME: &str = "aarch64";
/// End of the identity map `mmu.rs` builds (QEMU virt's RAM starts at
/// 1 GiB; the stub uses RAM below 16 GiB, as the x86_64 stub does).
pub const MAPPED_LIMIT: u64 = 16 << 30;
/// Where the kernel pool starts handing out pages: RAM + 32 MiB, well
/// above the Image at RAM + 2 MiB, so preserved addresses do not move with
/// its size.
pub const POOL_START: PhysAddr = PhysAddr::new(0x4000_0000 + (32 << 20));

/// PL011 UART of QEMU's virt machine.
const PL011: usize = 0x0900_0000;
/// Semihosting `SYS_EXIT` exit status QEMU reports for success / failure
/// (the same numbers as the x86_64 isa-debug-exit codes).
const EXIT_SUCCESS: u64 = 33;
const EXIT_FAILURE: u64 = 35;
const MAX_DTB: u64 = 2 << 20;

/// The PL011 serial console.
#[derive(Debug)]
pub struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            // SAFETY: PL011 registers of QEMU virt, identity-addressed with
            // the MMU off: FR at +0x18 (bit 5 = TX FIFO full), DR at +0.
            unsafe {
                while core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 5) != 0 {}
                core::ptr::write_volatile(PL011 as *mut u32, u32::from(b));
            }
        }
        Ok(())
    }
}

/// The console protocol lines go to.
pub fn console() -> Serial {
    Serial
}

/// Wait for one byte on the console (PL011 receive FIFO).
pub fn read_byte() -> u8 {
    // SAFETY: PL011 registers as in `Serial::write_str`: FR bit 4 = RX FIFO
    // empty, DR holds the received byte in bits 7:0.
    unsafe {
        while core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 4) != 0 {}
        core::ptr::read_volatile(PL011 as *const u32) as u8
    }
}

/// Leave QEMU through semihosting `SYS_EXIT` (needs
/// `-semihosting-config enable=on,target=native`), with the success or
/// failure status.
pub fn exit(success: bool) -> ! {
    let block: [u64; 2] = [0x20026, if success { EXIT_SUCCESS } else { EXIT_FAILURE }];
    // SAFETY: semihosting call 0x18 (SYS_EXIT) with x1 pointing at the
    // two-word parameter block; QEMU terminates and nothing runs after it.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack))
    }
    loop {
        // SAFETY: without semihosting, park the CPU.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) }
    }
}

/// The virtual counter.
/// The generic timer's rate in Hz (CNTFRQ_EL0, set by the firmware).
pub fn tick_hz() -> u64 {
    let f: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) }
    f
}

pub fn ticks() -> u64 {
    let t: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) }
    t
}

/// Nothing outside the image needs protecting on virt: the DTB is copied to
/// the heap before anything is allocated.
pub fn boot_in_use() -> Vec<PhysRange> {
    Vec::new()
}

/// arm64's low limit: the end of 32-bit-addressable RAM (kho-scratch's
/// `LowLimit::arm64` over the RAM span).
pub fn low_limit(memory: &[MemRegion]) -> LowLimit {
    let usable = memory.iter().filter(|r| r.is_usable_ram());
    let start = usable
        .clone()
        .map(|r| r.range.start().as_u64())
        .min()
        .unwrap_or(0);
    let end = usable
        .filter_map(|r| r.range.end())
        .map(|e| e.as_u64())
        .max()
        .unwrap_or(start);
    match PhysRange::try_new(PhysAddr::new(start), end - start) {
        Ok(span) => LowLimit::arm64(span),
        Err(_) => LowLimit::NONE,
    }
}

/// What the next generation needs besides the KHO state: the boot DTB.
#[derive(Debug)]
pub struct ArchBoot {
    dtb: Vec<u8>,
}

fn boot_from_dtb(at: u64) -> BootInfo {
    let probe = RamView::new(
        [PhysRange::try_new(PhysAddr::new(1), MAPPED_LIMIT - 1).unwrap_or_else(|_| exit(false))],
        MAPPED_LIMIT,
    );
    let mut header = [0u8; 8];
    if probe.read(PhysAddr::new(at), &mut header).is_err() {
        generation::fail(0, &alloc::format!("no DTB at {at:#x}"));
    }
    let total = u64::from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]))
    .min(MAX_DTB);
    let mut blob = alloc::vec![0u8; total as usize];
    if probe.read(PhysAddr::new(at), &mut blob).is_err() {
        generation::fail(0, &alloc::format!("DTB at {at:#x} is not readable"));
    }
    // A DTB written by Linux's kexec_file_load holds FDT_NOPs where libfdt
    // deleted /chosen properties in place: drop them once, here.
    let blob = match kho_fdt::dtb::without_nops(&blob) {
        Ok(Some(clean)) => clean,
        Ok(None) => blob,
        // Refused for a defect elsewhere: boot cold on what can be read.
        Err(e) => return boot_from_salvage(&blob, e),
    };
    let dtb = match kho_fdt::dtb::Dtb::parse(&blob) {
        Ok(d) => d,
        Err(e) => return boot_from_salvage(&blob, e),
    };
    // RAM with NUMA nodes from the memory nodes' numa-node-id (node 0
    // without one).
    let memory = dtb
        .memory_regions()
        .into_iter()
        .filter_map(|m| {
            let range = PhysRange::try_new(PhysAddr::new(m.address), m.size).ok()?;
            Some(MemRegion::ram(range, NodeId::new(m.numa_node.unwrap_or(0))))
        })
        .collect::<Vec<_>>();
    let mut memory = memory;
    memory.sort_by_key(|r| r.range.start());
    let cmdline = dtb
        .property("/chosen", "bootargs")
        .map(|v| {
            String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
        })
        .unwrap_or_default();
    let handover = dt::read_chosen(&blob).map_err(|e| alloc::format!("{e}"));
    let payload = dt::read_initrd(&blob).map_err(|e| alloc::format!("{e}"));
    BootInfo {
        memory,
        cmdline,
        handover,
        payload,
        arch: ArchBoot { dtb: blob },
    }
}

/// A boot DTB the strict parser refuses (a defect in a node the boot does
/// not need): its memory map and command line are salvaged (as Linux,
/// which checks only the header before reading them, would boot on it),
/// its handover is not trusted, and the next generation gets a fresh
/// minimal DTB (memory nodes and `/chosen`) instead of a copy of it.
fn boot_from_salvage(blob: &[u8], why: kho_fdt::Error) -> BootInfo {
    let saved = match kho_fdt::dtb::salvage(blob) {
        Ok(s) if !s.memory.is_empty() => s,
        Ok(_) => generation::fail(0, &alloc::format!("boot DTB: {why}; no memory node")),
        Err(e) => generation::fail(0, &alloc::format!("boot DTB: {why}; unreadable: {e}")),
    };
    let cmdline =
        String::from_utf8_lossy(saved.bootargs.as_deref().unwrap_or_default()).into_owned();
    let mut memory: Vec<MemRegion> = saved
        .memory
        .iter()
        .filter_map(|m| {
            let range = PhysRange::try_new(PhysAddr::new(m.address), m.size).ok()?;
            Some(MemRegion::ram(range, NodeId::new(m.numa_node.unwrap_or(0))))
        })
        .collect();
    memory.sort_by_key(|r| r.range.start());
    let dtb = minimal_dtb(&saved).unwrap_or_else(|e| {
        generation::fail(0, &alloc::format!("boot DTB: {why}; rebuilding it: {e:?}"))
    });
    let reason = alloc::format!(
        "boot DTB: {why}: only its memory map and command line were read, its handover is not trusted"
    );
    BootInfo {
        memory,
        cmdline,
        handover: Err(reason.clone()),
        payload: Err(reason),
        arch: ArchBoot { dtb },
    }
}

/// A DTB with only what a kho-rs generation reads: the memory nodes and
/// `/chosen` `bootargs`, two address and size cells.
fn minimal_dtb(saved: &kho_fdt::dtb::Salvaged) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut w = vm_fdt::FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32(kho_abi::chosen::PROP_ADDRESS_CELLS, 2)?;
    w.property_u32(kho_abi::chosen::PROP_SIZE_CELLS, 2)?;
    for m in &saved.memory {
        let node = w.begin_node(&alloc::format!("memory@{:x}", m.address))?;
        w.property_string("device_type", "memory")?;
        w.property_array_u64("reg", &[m.address, m.size])?;
        if let Some(id) = m.numa_node {
            w.property_u32("numa-node-id", id)?;
        }
        w.end_node(node)?;
    }
    let chosen = w.begin_node("chosen")?;
    if let Some(args) = &saved.bootargs {
        w.property("bootargs", &[args.as_slice(), &[0]].concat())?;
    }
    w.end_node(chosen)?;
    w.end_node(root)?;
    w.finish()
}

#[unsafe(no_mangle)]
extern "C" fn rust_entry(dtb: u64) -> ! {
    crate::restart::entered([dtb, 0]);
    generation::run(boot_from_dtb(dtb))
}

unsafe extern "C" {
    fn restart_entry(dtb: u64) -> !;
}

/// Enter this image again as its entry was entered (`restart.rs`).
pub fn reenter(args: [u64; 2]) -> ! {
    let (_, whole) = crate::kexec::image();
    let end = whole.end().map_or(u64::MAX, |e| e.as_u64());
    // SAFETY: mmu_off_enter cleans the whole image (text, .data with the
    // restart state, .bss, the stack) to the PoC using registers only,
    // turns the MMU off and branches to restart_entry, entry.S's entry: it
    // relocates the image in place (idempotent), clears .bss, resets the
    // stack and calls rust_entry(dtb) with the MMU off, as at first entry;
    // nothing of the current stack is used again.
    unsafe {
        mmu_off_enter(
            restart_entry as *const () as u64,
            args[0],
            whole.start().as_u64(),
            end,
        )
    }
}

#[unsafe(no_mangle)]
extern "C" fn rust_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    let _ = writeln!(
        Serial,
        "KHO panic msg=\"exception {kind} esr={esr:#x} elr={elr:#x} far={far:#x}\""
    );
    exit(false)
}

fn err(what: &str, e: &dyn core::fmt::Display) -> String {
    alloc::format!("{what}: {e}")
}

/// The next DTB (bootargs, the `/chosen` KHO properties and the initrd
/// replaced) written into scratch.
fn write_dtb(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    boot: &BootInfo,
    cmdline: &str,
    initrd: Option<PhysRange>,
    handover: &kho::Handover,
) -> Result<PhysRange, String> {
    let edit = match initrd {
        Some(r) => dt::InitrdEdit::Set(r),
        None => dt::InitrdEdit::Remove,
    };
    let next = dt::write_chosen_initrd(&boot.arch.dtb, Some(handover), Some(cmdline), edit)
        .map_err(|e| err("next DTB", &e))?;
    let dtb = scratch
        .alloc(next.len() as u64, 4096)
        .map_err(|e| err("next DTB", &e))?;
    mem.write(dtb.start(), &next)
        .map_err(|e| err("next DTB", &e))?;
    PhysRange::try_new(dtb.start(), next.len() as u64).map_err(|e| err("next DTB", &e))
}

/// Write the next DTB (bootargs, `/chosen` KHO properties, the payload as
/// the initrd) and stage a copy of this image, all inside scratch.
pub fn prepare_kexec(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    boot: &BootInfo,
    cmdline: &str,
    payload: Option<PhysRange>,
    handover: kho::Handover,
) -> Result<Kexec, String> {
    let initrd = payload
        .map(|p| crate::kexec::copy_to_scratch(mem, scratch, &handover, p, 4096))
        .transpose()
        .map_err(|e| err("payload", &e))?;
    let handoff = write_dtb(mem, scratch, boot, cmdline, initrd, &handover)?;
    let staging = crate::kexec::stage_image(mem, scratch, &handover)?;
    let other: Vec<PhysRange> = initrd.into_iter().collect();
    Ok(Kexec::new(staging, handoff, &other, handover))
}

/// Place the payload's arm64 Image as booting.rst asks, all inside scratch:
/// `text_offset` above a 2 MiB-aligned base with `image_size` bytes of
/// room, the initramfs, and the next DTB (`bootargs` = the payload's
/// command line, the KHO properties, `linux,initrd-start`/`-end`).
pub fn prepare_linux(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    boot: &BootInfo,
    payload: PhysRange,
    handover: kho::Handover,
) -> Result<Kexec, String> {
    use crate::carry::LinuxPayload;
    use crate::linux::{ARM64_BASE_ALIGN, Arm64Image};

    let p = LinuxPayload::read(mem, payload)?;
    let kernel = p.kernel()?;
    let image = Arm64Image::parse(&p.kernel_head, kernel.size()).map_err(|e| err("Image", &e))?;
    let base = crate::kexec::alloc_in_one_area(
        mem,
        scratch,
        &handover,
        image.footprint(),
        ARM64_BASE_ALIGN,
    )
    .map_err(|e| err("Image window", &e))?;
    let load = base
        .start()
        .checked_add(image.text_offset)
        .ok_or("Image wraps")?;
    crate::kexec::copy(mem, kernel.start(), load, kernel.size()).map_err(|e| err("Image", &e))?;
    let window =
        PhysRange::try_new(base.start(), image.footprint()).map_err(|e| err("Image", &e))?;
    let initrd = p
        .initramfs()?
        .map(|i| crate::kexec::copy_to_scratch(mem, scratch, &handover, i, 4096))
        .transpose()
        .map_err(|e| err("initramfs", &e))?;
    let cmdline = p.linux_cmdline();
    let handoff = write_dtb(mem, scratch, boot, &cmdline, initrd, &handover)?;
    let target = crate::kexec::LinuxTarget {
        kernel: window,
        entry: load.as_u64(),
        initrd,
        cmdline,
    };
    Ok(Kexec::linux(target, handoff, &[], handover))
}

/// Smallest data cache line (CTR_EL0.DminLine, in bytes).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) }
    4 << ((ctr >> 16) & 0xf)
}

/// Enter Linux as booting.rst asks: every range it reads (kernel, DTB,
/// initrd) cleaned and invalidated to the PoC, then (entry.S's
/// `mmu_off_enter`) the MMU and data cache off, the instruction cache and
/// TLB invalidated, DAIF masked, `x0` = the DTB, `x1`–`x3` = 0.
pub fn enter_linux(entry: u64, dtb: u64, ranges: &[PhysRange]) -> ! {
    enter(entry, dtb, ranges)
}

/// Enter the next stub generation (a relocatable copy of this image in
/// scratch) exactly as Linux is entered.
pub fn enter_stub(entry: u64, dtb: u64, ranges: &[PhysRange]) -> ! {
    enter(entry, dtb, ranges)
}

fn enter(entry: u64, dtb: u64, ranges: &[PhysRange]) -> ! {
    for r in ranges {
        clean_to_poc(*r);
    }
    // SAFETY: `entry` is the first instruction of an arm64 Image (Linux,
    // or a copy of this image) placed in scratch with `image_size` bytes
    // of room, and `dtb` a complete DTB in scratch, all cleaned to the PoC
    // above and not written since; mmu_off_enter runs from the identity
    // map, turns the MMU off, completes the maintenance and branches there
    // with x0 = dtb, x1..x3 = 0.
    unsafe { mmu_off_enter(entry, dtb, 0, 0) }
}

/// Set up the memory types: the MMU on with the identity map (`mmu.rs`).
pub fn setup_memory(memory: &[MemRegion]) -> MemSetup {
    mmu::setup(memory, crate::kexec::image().1)
}

/// Fault injection at hand-off time, on `/chosen` of the next DTB.
pub fn corrupt_handoff(mem: &mut StubMem, k: &Kexec, class: FaultClass) -> Result<(), String> {
    use kho_abi::chosen::{PROP_KHO_FDT, PROP_KHO_SCRATCH};
    use kho_fdt::dtb::{Dtb, Edit, decode_pairs, encode_pair};
    let err = |e: &dyn core::fmt::Display| alloc::format!("corrupting the next DTB: {e}");
    let dtb_at = k.handoff();
    let mut blob = alloc::vec![0u8; dtb_at.size() as usize];
    mem.read(dtb_at.start(), &mut blob).map_err(|e| err(&e))?;
    if class == FaultClass::DtbInvalid {
        // The `cpus` node's name gets a '/': libfdt-style validation
        // refuses the DTB, the memory nodes and /chosen stay readable.
        let node = b"\0\0\0\x01cpus\0";
        let at = blob
            .windows(node.len())
            .position(|w| w == node)
            .ok_or("the next DTB has no cpus node")?;
        return mem
            .write(
                dtb_at
                    .start()
                    .checked_add(at as u64 + 4)
                    .ok_or("DTB wraps")?,
                b"/",
            )
            .map_err(|e| err(&e));
    }
    let dtb = Dtb::parse(&blob).map_err(|e| err(&e))?;
    let (ac, sc) = dtb.root_cells().ok_or("root cells out of range")?;
    let prop = |name: &str| {
        dtb.property("/chosen", name)
            .ok_or(alloc::format!("no {name}"))
    };
    let (name, value) = match class {
        // linux,kho-scratch one cell short (12 bytes of 16).
        FaultClass::HandoffLength => {
            let short = prop(PROP_KHO_SCRATCH)?
                .get(..12)
                .ok_or("linux,kho-scratch shorter than 12 bytes")?
                .to_vec();
            (PROP_KHO_SCRATCH, Some(short))
        }
        // The scratch array's size loses 8 bytes.
        FaultClass::ScratchLength => {
            let (addr, size) = decode_pairs(prop(PROP_KHO_SCRATCH)?, ac, sc)
                .next()
                .ok_or("linux,kho-scratch is not a pair")?;
            let short = size
                .checked_sub(8)
                .ok_or("scratch array shorter than 8 bytes")?;
            (PROP_KHO_SCRATCH, Some(encode_pair(addr, short, ac, sc)))
        }
        // linux,kho-fdt written with one address and one size cell while
        // the root says two of each (a writer that ignored the root's cells).
        FaultClass::ChosenCells => {
            let (addr, size) = decode_pairs(prop(PROP_KHO_FDT)?, ac, sc)
                .next()
                .ok_or("linux,kho-fdt is not a pair")?;
            if (ac, sc) == (1, 1) {
                return Err(String::from("the root already has one cell each"));
            }
            (PROP_KHO_FDT, Some(encode_pair(addr, size, 1, 1)))
        }
        // Only linux,kho-fdt is left.
        FaultClass::ChosenOneProperty => (PROP_KHO_SCRATCH, None),
        _ => {
            return Err(alloc::format!(
                "fault class {class:?} does not apply to aarch64"
            ));
        }
    };
    let edit = match &value {
        Some(value) => Edit::Set {
            path: "/chosen",
            name,
            value,
        },
        None => Edit::Delete {
            path: "/chosen",
            name,
        },
    };
    let out = dtb.rewrite(&[edit]).map_err(|e| err(&e))?;
    if out.len() as u64 > dtb_at.size() {
        return Err(String::from("corrupted DTB is larger than its allocation"));
    }
    mem.write(dtb_at.start(), &out).map_err(|e| err(&e))
}

/// Where the next generation is entered: the staged copy's first
/// instruction, the Image header's branch (`x0` = the next DTB).
pub fn next_entry() -> u64 {
    crate::kexec::image().0.start().as_u64()
}

/// The image runs at any 4 KiB-aligned address (`adrp` is page-relative).
pub const IMAGE_ALIGN: u64 = 4096;

/// The address of every data-cache line `r` touches (CTR_EL0's smallest
/// line), for maintenance by VA (= PA, the identity map).
fn dcache_lines(r: PhysRange) -> impl Iterator<Item = u64> {
    let line = dcache_line();
    let end = r.end().map_or(u64::MAX, |e| e.as_u64());
    (r.start().as_u64() & !(line - 1)..end).step_by(line as usize)
}

/// Clean and invalidate `r` to the point of coherency, by VA (= PA).
fn clean_to_poc(r: PhysRange) {
    for at in dcache_lines(r) {
        // SAFETY: cache maintenance by VA (= PA, the identity map) of RAM
        // the stub wrote; DC CIVAC changes no memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) at, options(nostack)) }
    }
}
