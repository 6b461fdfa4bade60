//! x86_64: PVH and Linux 64-bit entry, COM1 console, isa-debug-exit, kexec.
//!
//! Generation 0 is booted by QEMU through the PVH entry (`hvm_start_info`).
//! Later generations are entered at `_start64` with `%rsi` = a boot_params
//! zero page, the way a Linux kernel is entered by kexec; the KHO handover
//! is the zero page's `setup_data` entry of type 10.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kho::handoff::x86::{self as handoff, BootParamsOut, MemoryEntry};
use kho_abi::x86::{SETUP_DATA_HEADER_SIZE, SetupDataHeader};
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use kho_scratch::{LowLimit, MemKind, MemRegion, NodeId, ScratchAllocator};

use crate::config::FaultClass;
use crate::generation::{self, BootInfo};
use crate::kexec::Kexec;
use crate::mem::{RamView, StubMem};

mod acpi;
mod memtypes;

pub use memtypes::MemSetup;

core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));

/// Architecture name in protocol lines.
pub const NAME: &str = "x86_64";
/// End of the boot page tables' identity map (16 GiB, entry.S).
pub const MAPPED_LIMIT: u64 = 16 << 30;
/// Where the kernel pool starts handing out pages: 32 MiB, well above the
/// stub image at 1 MiB, so preserved addresses do not move with its size.
pub const POOL_START: PhysAddr = PhysAddr::new(32 << 20);

const COM1: u16 = 0x3f8;
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Written to isa-debug-exit: QEMU exits with `(code << 1) | 1`.
const EXIT_SUCCESS: u32 = 0x10;
const EXIT_FAILURE: u32 = 0x11;
const PVH_MAGIC: u32 = 0x336e_c578;
const MAX_CMDLINE: usize = 4096;
/// `SETUP_NONE`: a setup_data type Linux skips.
const SETUP_NONE: u32 = 0;

unsafe extern "C" {
    fn _start64() -> !;
    fn restart64(ptr: u64, kind: u64) -> !;
    fn linux_enter64(entry: u64, boot_params: u64) -> !;
    fn kexec_enter(entry: u64, boot_params: u64) -> !;
}

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O to the devices the stub drives (COM1, the PIT's
    // channel 2 and its gate, isa-debug-exit); no memory is touched.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reading COM1's registers or port 0x61 (PIT channel 2 status)
    // has no memory effect.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) }
    v
}

/// The COM1 serial console.
#[derive(Debug)]
pub struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, b);
        }
        Ok(())
    }
}

/// The console protocol lines go to.
pub fn console() -> Serial {
    Serial
}

/// Wait for one byte on the console (COM1 receive buffer).
pub fn read_byte() -> u8 {
    while inb(COM1 + 5) & 0x01 == 0 {}
    inb(COM1)
}

/// Leave QEMU through isa-debug-exit with the success or failure code.
pub fn exit(success: bool) -> ! {
    let code = if success { EXIT_SUCCESS } else { EXIT_FAILURE };
    // SAFETY: isa-debug-exit terminates QEMU; nothing runs after it.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") code, options(nomem, nostack))
    }
    loop {
        // SAFETY: without the exit device, park the CPU with interrupts off.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) }
    }
}

/// The CPU's timestamp counter.
/// The TSC's rate in Hz, measured against the PIT (1.193182 MHz) over
/// about 2 ms: channel 2, gated through port 0x61, counts down once in
/// mode 0 and raises OUT2 (bit 5 of port 0x61) at zero. 0 if the PIT never
/// fires (no PIT: the rate is unknown). Under TCG the TSC is the host's.
pub fn tick_hz() -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const LATCH: u64 = PIT_HZ / 500;
    outb(0x61, (inb(0x61) & !0x02) | 0x01); // gate on, speaker off
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0, binary
    outb(0x42, (LATCH & 0xff) as u8);
    outb(0x42, (LATCH >> 8) as u8);
    let start = ticks();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 {
        spins += 1;
        if spins > 100_000_000 {
            return 0;
        }
    }
    (ticks() - start) * PIT_HZ / LATCH
}

pub fn ticks() -> u64 {
    // SAFETY: rdtsc only reads the timestamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Memory the stub never allocates or places scratch in: the first MiB
/// (real-mode structures, BIOS, the PVH start_info).
pub fn boot_in_use() -> Vec<PhysRange> {
    alloc::vec![PhysRange::try_new(PhysAddr::ZERO, 1 << 20).unwrap_or_else(|_| exit(false))]
}

/// Linux's `ARCH_LOW_ADDRESS_LIMIT` on x86_64.
pub fn low_limit(_memory: &[MemRegion]) -> LowLimit {
    LowLimit::X86_64
}

/// What the next generation needs besides the KHO state: the raw e820 map.
#[derive(Debug)]
pub struct ArchBoot {
    e820: Vec<MemoryEntry>,
    rsdp: Option<PhysAddr>,
}

/// The memory map with NUMA nodes: every e820 entry split along the SRAT's
/// memory-affinity ranges; proximity domains become node ids in ascending
/// order. Memory no affinity covers (or every byte, without an SRAT) is
/// node 0.
fn regions(e820: &[MemoryEntry], rsdp: Option<PhysAddr>) -> Vec<MemRegion> {
    let affinity = match rsdp {
        Some(rsdp) => {
            acpi::memory_affinity(&probe(), rsdp).unwrap_or_else(|e| generation::fail(0, &e))
        }
        None => Vec::new(),
    };
    let mut domains: Vec<u32> = affinity.iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    let node_of =
        |domain: u32| NodeId::new(domains.iter().position(|&d| d == domain).unwrap_or(0) as u32);
    let mut out = Vec::new();
    for e in e820 {
        let kind = MemKind::from_e820(e.kind);
        let (start, end) = (
            e.range.start().as_u64(),
            e.range.end().map_or(u64::MAX, |x| x.as_u64()),
        );
        let mut cuts: Vec<(u64, u64, NodeId)> = affinity
            .iter()
            .filter_map(|a| {
                let s = start.max(a.range.start().as_u64());
                let t = end.min(a.range.end().map_or(u64::MAX, |x| x.as_u64()));
                (s < t).then_some((s, t, node_of(a.domain)))
            })
            .collect();
        cuts.sort_unstable_by_key(|c| c.0);
        let mut at = start;
        for (s, t, node) in cuts {
            if s > at {
                out.extend(
                    PhysRange::try_new(PhysAddr::new(at), s - at)
                        .ok()
                        .map(|r| MemRegion::new(r, kind, NodeId::ZERO)),
                );
            }
            let from = s.max(at);
            if t > from {
                out.extend(
                    PhysRange::try_new(PhysAddr::new(from), t - from)
                        .ok()
                        .map(|r| MemRegion::new(r, kind, node)),
                );
            }
            at = at.max(t);
        }
        if end > at {
            out.extend(
                PhysRange::try_new(PhysAddr::new(at), end - at)
                    .ok()
                    .map(|r| MemRegion::new(r, kind, NodeId::ZERO)),
            );
        }
    }
    out
}

/// A reader for boot structures before the memory map is known: the whole
/// identity map except address 0.
fn probe() -> RamView {
    let all =
        PhysRange::try_new(PhysAddr::new(1), MAPPED_LIMIT - 1).unwrap_or_else(|_| exit(false));
    RamView::new([all], MAPPED_LIMIT)
}

fn read_cstr(mem: &RamView, at: PhysAddr, max: usize) -> String {
    let mut bytes = Vec::new();
    let mut b = [0u8; 1];
    for i in 0..max as u64 {
        let Some(a) = at.checked_add(i) else { break };
        if mem.read(a, &mut b).is_err() || b[0] == 0 {
            break;
        }
        bytes.push(b[0]);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn boot_from_pvh(start_info: u64) -> BootInfo {
    let mem = probe();
    let at = PhysAddr::new(start_info);
    let field = |off: u64, len: usize| -> u64 {
        let mut b = [0u8; 8];
        let ok = at
            .checked_add(off)
            .map(|a| mem.read(a, &mut b[..len]).is_ok())
            .unwrap_or(false);
        if !ok {
            generation::fail(0, &"hvm_start_info is not readable");
        }
        u64::from_le_bytes(b)
    };
    if field(0, 4) as u32 != PVH_MAGIC {
        generation::fail(0, &"bad hvm_start_info magic");
    }
    // The first module (QEMU's -initrd) is the payload: nr_modules at 12,
    // modlist_paddr at 16; an entry is {paddr, size, cmdline_paddr, reserved}.
    let payload = match (field(12, 4), field(16, 8)) {
        (0, _) | (_, 0) => Ok(None),
        (_, list) => {
            let mut entry = [0u8; 16];
            match mem.read(PhysAddr::new(list), &mut entry) {
                Err(e) => Err(alloc::format!("PVH module list at {list:#x}: {e}")),
                Ok(()) => {
                    let word = |o: usize| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&entry[o..o + 8]);
                        u64::from_le_bytes(b)
                    };
                    match word(8) {
                        0 => Ok(None),
                        size => PhysRange::try_new(PhysAddr::new(word(0)), size)
                            .map(Some)
                            .map_err(|e| alloc::format!("PVH module 0: {e}")),
                    }
                }
            }
        }
    };
    let cmdline_at = field(24, 8);
    let rsdp = field(32, 8);
    let memmap = field(40, 8);
    let entries = field(48, 4);
    let mut e820 = Vec::new();
    for i in 0..entries.min(128) {
        let e = PhysAddr::new(memmap + i * 24);
        let mut raw = [0u8; 24];
        if mem.read(e, &mut raw).is_err() {
            generation::fail(
                0,
                &alloc::format!("PVH memory map entry at {e} is not readable"),
            );
        }
        let word = |o: usize| {
            u64::from_le_bytes([
                raw[o],
                raw[o + 1],
                raw[o + 2],
                raw[o + 3],
                raw[o + 4],
                raw[o + 5],
                raw[o + 6],
                raw[o + 7],
            ])
        };
        let size = word(8);
        if size == 0 {
            continue;
        }
        if let Ok(range) = PhysRange::try_new(PhysAddr::new(word(0)), size) {
            e820.push(MemoryEntry {
                range,
                kind: u32::from_le_bytes([raw[16], raw[17], raw[18], raw[19]]),
            });
        }
    }
    e820.sort_by_key(|e| e.range.start());
    let cmdline = if cmdline_at == 0 {
        String::new()
    } else {
        read_cstr(&mem, PhysAddr::new(cmdline_at), MAX_CMDLINE)
    };
    let rsdp = (rsdp != 0).then_some(PhysAddr::new(rsdp));
    BootInfo {
        memory: regions(&e820, rsdp),
        cmdline,
        handover: Ok(None),
        payload,
        arch: ArchBoot { e820, rsdp },
    }
}

fn boot_from_boot_params(at: u64) -> BootInfo {
    // A zero page with a bad magic or too many e820 entries still gives a
    // memory map to boot cold on; nothing else on it is trusted.
    let (params, defect) = match handoff::read_boot_params_lenient(&probe(), PhysAddr::new(at)) {
        Ok(p) => p,
        Err(e) => generation::fail(0, &e),
    };
    let e820: Vec<MemoryEntry> = params.memory().to_vec();
    let memory = regions(&e820, params.acpi_rsdp);
    // Follow the untrusted setup_data chain over RAM only.
    let ram = RamView::new(
        memory.iter().filter(|r| r.is_usable_ram()).map(|r| r.range),
        MAPPED_LIMIT,
    );
    let cmdline = params
        .cmdline
        .map(|c| read_cstr(&ram, c, MAX_CMDLINE))
        .unwrap_or_default();
    let handover = match defect {
        Some(e) => Err(alloc::format!(
            "zero page at {at:#x}: {e}: its setup_data is not trusted"
        )),
        None => handoff::find_kho(&ram, params.setup_data).map_err(|e| alloc::format!("{e}")),
    };
    BootInfo {
        memory,
        cmdline,
        handover,
        payload: Ok(params.ramdisk),
        arch: ArchBoot {
            e820,
            rsdp: params.acpi_rsdp,
        },
    }
}

#[unsafe(no_mangle)]
extern "C" fn rust_entry(ptr: u64, kind: u64) -> ! {
    crate::restart::entered([ptr, kind]);
    let boot = if kind == 0 {
        boot_from_pvh(ptr)
    } else {
        boot_from_boot_params(ptr)
    };
    generation::run(boot)
}

fn err(what: &str, e: &dyn core::fmt::Display) -> String {
    alloc::format!("{what}: {e}")
}

/// Write a NUL-terminated command line into scratch.
fn write_cmdline(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    cmdline: &str,
) -> Result<PhysRange, String> {
    let cmd = scratch
        .alloc(cmdline.len() as u64 + 1, 16)
        .map_err(|e| err("command line", &e))?;
    mem.write(cmd.start(), cmdline.as_bytes())
        .map_err(|e| err("command line", &e))?;
    let nul = cmd
        .start()
        .checked_add(cmdline.len() as u64)
        .ok_or("command line wraps")?;
    mem.write(nul, &[0]).map_err(|e| err("command line", &e))?;
    PhysRange::try_new(cmd.start(), cmdline.len() as u64 + 1).map_err(|e| err("command line", &e))
}

/// Room for the zero page in scratch (with `extra` bytes after its KHO
/// setup_data entry, from +4096 + 64), and where that entry goes (right
/// after the zero page, at +4096).
fn alloc_zero_page(
    scratch: &mut ScratchAllocator,
    extra: u64,
) -> Result<(PhysRange, PhysAddr), String> {
    let bp = scratch
        .alloc(4096 + 64 + extra, 4096)
        .map_err(|e| err("boot_params", &e))?;
    let setup_data = bp.start().checked_add(4096).ok_or("boot_params wraps")?;
    Ok((bp, setup_data))
}

/// Write the zero page (e820, command line, KHO setup_data, the payload as
/// the initrd) and stage a copy of this image, all inside scratch.
pub fn prepare_kexec(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    boot: &BootInfo,
    cmdline: &str,
    payload: Option<PhysRange>,
    handover: kho::Handover,
) -> Result<Kexec, String> {
    let cmd = write_cmdline(mem, scratch, cmdline)?;
    let initrd = payload
        .map(|p| crate::kexec::copy_to_scratch(mem, scratch, &handover, p, 4096))
        .transpose()
        .map_err(|e| err("payload", &e))?;
    let mut other = alloc::vec![cmd];
    other.extend(initrd);
    let (bp, setup_data) = alloc_zero_page(scratch, 0)?;
    let out = BootParamsOut {
        memory: &boot.arch.e820,
        cmdline: Some((cmd.start(), cmdline.len() as u32)),
        kho: Some((setup_data, handover)),
        acpi_rsdp: boot.arch.rsdp,
        ramdisk: initrd,
        setup_header: None,
    };
    handoff::write_boot_params(mem, bp.start(), &out).map_err(|e| err("boot_params", &e))?;
    let staging = crate::kexec::stage_image(mem, scratch, &handover)?;
    Ok(Kexec::new(staging, bp, &other, handover))
}

/// Place the payload's bzImage for the 64-bit boot protocol, all inside
/// scratch: the protected-mode part at a `kernel_alignment`-aligned address
/// at or above `pref_address` with `init_size` bytes of room, the initramfs,
/// the command line, and a zero page built from the image's setup header
/// (e820, command line, initrd, RSDP, KHO setup_data).
pub fn prepare_linux(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    boot: &BootInfo,
    payload: PhysRange,
    handover: kho::Handover,
) -> Result<Kexec, String> {
    use crate::carry::LinuxPayload;
    use crate::linux::{BzImage, ENTRY_64};

    let p = LinuxPayload::read(mem, payload)?;
    let kernel = p.kernel()?;
    let bz = BzImage::parse(&p.kernel_head, kernel.size()).map_err(|e| err("bzImage", &e))?;
    let cmdline = p.linux_cmdline();
    if cmdline.len() > bz.cmdline_size as usize {
        return Err(alloc::format!(
            "Linux command line of {} bytes is longer than the kernel's {}",
            cmdline.len(),
            bz.cmdline_size
        ));
    }
    // Nothing below pref_address: keep the allocator above it.
    let low = PhysRange::try_new(PhysAddr::ZERO, bz.min_load_address())
        .map_err(|e| err("bzImage", &e))?;
    scratch.reserve(low).map_err(|e| err("bzImage", &e))?;
    let window = crate::kexec::alloc_in_one_area(
        mem,
        scratch,
        &handover,
        bz.init_size.next_multiple_of(4096),
        bz.kernel_alignment,
    )
    .map_err(|e| err("bzImage init_size window", &e))?;
    let code = kernel
        .start()
        .checked_add(bz.code_offset)
        .ok_or("bzImage wraps")?;
    crate::kexec::copy(mem, code, window.start(), bz.code_len).map_err(|e| err("bzImage", &e))?;
    let initrd = p
        .initramfs()?
        .map(|i| crate::kexec::copy_to_scratch(mem, scratch, &handover, i, 4096))
        .transpose()
        .map_err(|e| err("initramfs", &e))?;
    let cmd = write_cmdline(mem, scratch, &cmdline)?;
    // The decompressor's KASLR (arch/x86/boot/compressed/kaslr.c) may put
    // the kernel anywhere in scratch above min(load address, 512 MiB),
    // avoiding the zero page, command line, initrd and every setup_data
    // entry, but not the scratch array the KHO entry points to. So the
    // array handed over is a copy inside a setup_data entry of type
    // SETUP_NONE (which Linux skips), chained after the KHO entry.
    let (bp, setup_data) = alloc_zero_page(
        scratch,
        SETUP_DATA_HEADER_SIZE as u64 + handover.scratch_len,
    )?;
    let wrapper = setup_data.checked_add(64).ok_or("boot_params wraps")?;
    let array = wrapper
        .checked_add(SETUP_DATA_HEADER_SIZE as u64)
        .ok_or("boot_params wraps")?;
    let array_len = u32::try_from(handover.scratch_len).map_err(|e| err("scratch array", &e))?;
    crate::kexec::copy(mem, handover.scratch, array, handover.scratch_len)
        .map_err(|e| err("scratch array", &e))?;
    let handover = kho::Handover {
        scratch: array,
        ..handover
    };
    let out = BootParamsOut {
        memory: &boot.arch.e820,
        cmdline: Some((cmd.start(), cmdline.len() as u32)),
        kho: Some((setup_data, handover)),
        acpi_rsdp: boot.arch.rsdp,
        ramdisk: initrd,
        setup_header: Some(bz.setup_header()),
    };
    handoff::write_boot_params(mem, bp.start(), &out).map_err(|e| err("boot_params", &e))?;
    let none = SetupDataHeader {
        next: kho_abi::Le64::new(0),
        type_: kho_abi::Le32::new(SETUP_NONE),
        len: kho_abi::Le32::new(array_len),
    };
    mem.write_obj(wrapper, &none)
        .map_err(|e| err("boot_params", &e))?;
    // The KHO entry's `next` (offset 0) links the wrapper.
    mem.write_u64(setup_data, wrapper.as_u64())
        .map_err(|e| err("boot_params", &e))?;
    let target = crate::kexec::LinuxTarget {
        kernel: window,
        entry: window.start().as_u64() + ENTRY_64,
        initrd,
        cmdline,
    };
    Ok(Kexec::linux(target, bp, &[cmd], handover))
}

/// Enter Linux through the 64-bit boot protocol: a GDT with `__BOOT_CS`
/// (0x10) and `__BOOT_DS` (0x18), interrupts off, the identity map of
/// 0–4 GiB, `%rsi` = the zero page.
pub fn enter_linux(entry: u64, zero_page: u64, _ranges: &[PhysRange]) -> ! {
    // SAFETY: `entry` is the 64-bit entry of a bzImage whose protected-mode
    // part was copied to its load address inside scratch, with `init_size`
    // bytes of room; `zero_page` is a complete boot_params in scratch. The
    // identity map stays valid until the kernel installs its own tables:
    // the stub's image, which holds them, was reserved before anything was
    // placed in scratch, so nothing lies over it.
    unsafe { linux_enter64(entry, zero_page) }
}

/// Fault injection at hand-off time, on the zero page and its KHO
/// `setup_data` entry (at +4096: `next`, `type`, `len`, then `kho_data`).
pub fn corrupt_handoff(mem: &mut StubMem, k: &Kexec, class: FaultClass) -> Result<(), String> {
    let e = |e: kho_mem::Error| alloc::format!("corrupting the zero page: {e}");
    let zero_page = k.handoff().start().as_u64();
    let entry = zero_page + 4096;
    // A type no kernel knows: the reader must follow `next`.
    let untyped = |mem: &mut StubMem, at: u64, next: u64| -> Result<(), String> {
        mem.write_u64(PhysAddr::new(at), next).map_err(e)?;
        mem.write(PhysAddr::new(at + 8), &0x7fff_0000u32.to_le_bytes())
            .map_err(e)?;
        mem.write(PhysAddr::new(at + 12), &0u32.to_le_bytes())
            .map_err(e)
    };
    match class {
        // `len` := 16.
        FaultClass::HandoffLength => mem
            .write(PhysAddr::new(entry + 12), &16u32.to_le_bytes())
            .map_err(e),
        // `kho_data.scratch_size` (payload +24) loses 8 bytes.
        FaultClass::ScratchLength => {
            let at = PhysAddr::new(entry + 16 + 24);
            let size = mem.read_u64(at).map_err(e)?;
            let short = size
                .checked_sub(8)
                .ok_or("scratch array shorter than 8 bytes")?;
            mem.write_u64(at, short).map_err(e)
        }
        FaultClass::SetupDataSelfLoop => untyped(mem, entry, entry),
        FaultClass::SetupDataLoop => {
            // The second entry sits inside the first one's old payload.
            untyped(mem, entry, entry + 24)?;
            untyped(mem, entry + 24, entry)
        }
        FaultClass::SetupDataLongChain => {
            // 70 entries in the unused tail of the zero page's e820 table
            // (0x2d0 + 20 × 128; the stub writes a handful of entries).
            let base = zero_page + 0x600;
            untyped(mem, entry, base)?;
            for i in 0..70u64 {
                let next = if i == 69 { 0 } else { base + (i + 1) * 16 };
                untyped(mem, base + i * 16, next)?;
            }
            Ok(())
        }
        FaultClass::SetupDataOutsideRam => untyped(mem, entry, crate::fault::OUTSIDE_RAM),
        // boot_flag (0x1fe) := 0.
        FaultClass::ZeroPageMagic => mem
            .write(PhysAddr::new(zero_page + 0x1fe), &[0, 0])
            .map_err(e),
        // e820_entries (0x1e8) := 200, more than the table's 128 slots.
        FaultClass::E820TooMany => mem
            .write(PhysAddr::new(zero_page + 0x1e8), &[200])
            .map_err(e),
        _ => Err(alloc::format!(
            "fault class {class:?} does not apply to x86_64"
        )),
    }
}

/// Enter this image again as its entry was entered (`restart.rs`).
pub fn reenter(args: [u64; 2]) -> ! {
    // SAFETY: restart64 is common64 of entry.S: it relocates the image in
    // place (idempotent), reloads the GDT and page tables, clears .bss,
    // resets the stack and calls rust_entry(ptr, kind); nothing of the
    // current stack is used again.
    unsafe { restart64(args[0], args[1]) }
}

/// Where the next generation is entered: the Linux 64-bit entry of the
/// staged copy (`%rsi` = the zero page).
pub fn next_entry() -> u64 {
    _start64 as *const () as u64
}

/// The image runs at any 4 KiB-aligned address (its bzImage says so too).
pub const IMAGE_ALIGN: u64 = 4096;

/// Enter the next stub generation, a relocatable copy of this image in
/// scratch, at its 64-bit entry with `%rsi` = the zero page. Nothing to
/// flush: x86 keeps instruction fetch coherent with stores, and the next
/// generation maps memory with the same types.
pub fn enter_stub(entry: u64, zero_page: u64, _ranges: &[PhysRange]) -> ! {
    // SAFETY: `entry` is `_start64` of a byte-identical copy of this image
    // in scratch with room for its .bss and stack, which relocates itself;
    // `zero_page` is a complete boot_params in scratch.
    unsafe { kexec_enter(entry, zero_page) }
}

/// Set up the memory types: PAT, MTRR default, caches, the identity map's
/// 2 MiB pages typed by the memory map (`memtypes.rs`).
pub fn setup_memory(memory: &[MemRegion]) -> MemSetup {
    memtypes::setup(memory)
}
