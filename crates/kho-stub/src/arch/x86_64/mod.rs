//! x86_64: PVH and Linux 64-bit entry, COM1 console, isa-debug-exit.

use core::fmt::Write;

core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));

const COM1: u16 = 0x3f8;
const DEBUG_EXIT_PORT: u16 = 0xf4;

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O to COM1 and isa-debug-exit only; no memory is touched.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reading the COM1 line status register has no side effect on memory.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) }
    v
}

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, b);
        }
        Ok(())
    }
}

fn exit(code: u32) -> ! {
    // SAFETY: isa-debug-exit terminates QEMU; nothing runs after it.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") code, options(nomem, nostack))
    }
    loop {
        // SAFETY: halting with interrupts off parks the CPU if QEMU has no exit device.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) }
    }
}

#[unsafe(no_mangle)]
extern "C" fn rust_entry(ptr: u64, kind: u64) -> ! {
    let _ = writeln!(Serial, "kho-stub: hello kind={kind} ptr={ptr:#x}");
    if kind == 0 {
        // SAFETY: QEMU's PVH boot put a valid hvm_start_info at `ptr`, identity mapped.
        let (magic, entries, memmap) = unsafe {
            let p = ptr as *const u8;
            (
                core::ptr::read_unaligned(p as *const u32),
                core::ptr::read_unaligned(p.add(48) as *const u32),
                core::ptr::read_unaligned(p.add(40) as *const u64),
            )
        };
        let _ = writeln!(
            Serial,
            "kho-stub: start_info magic={magic:#x} memmap entries={entries}"
        );
        for i in 0..entries as usize {
            // SAFETY: the PVH memmap holds `entries` 24-byte entries at `memmap`.
            let (a, s, t) = unsafe {
                let e = (memmap as *const u8).add(i * 24);
                (
                    core::ptr::read_unaligned(e as *const u64),
                    core::ptr::read_unaligned(e.add(8) as *const u64),
                    core::ptr::read_unaligned(e.add(16) as *const u32),
                )
            };
            let _ = writeln!(Serial, "kho-stub: mem {a:#x} +{s:#x} type {t}");
        }
    }
    if kind == 0 {
        kexec_self(0x200_0000, 0x300_0000);
    }
    // SAFETY: test handoff: the previous generation wrote a u64 marker at ptr.
    let marker = unsafe { core::ptr::read_volatile(ptr as *const u64) };
    let _ = writeln!(
        Serial,
        "kho-stub: reentered via boot_params, marker={marker:#x}"
    );
    exit(0x10)
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    fn kexec_trampoline(src: u64, dst: u64, len: u64, entry: u64, boot_params: u64) -> !;
    fn _start64() -> !;
}

fn kexec_self(staging: u64, params: u64) -> ! {
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    let len = end - start;
    // SAFETY: staging and params are free RAM below 4 GiB (identity mapped).
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, staging as *mut u8, len as usize);
        core::ptr::write_volatile(params as *mut u64, 0x1234_5678);
    }
    let tramp = staging + (kexec_trampoline as *const () as u64 - start);
    let _ = writeln!(Serial, "kho-stub: kexec {len} bytes via {tramp:#x}");
    // SAFETY: the staged copy is a byte-identical image; its trampoline is PIC.
    let f: extern "C" fn(u64, u64, u64, u64, u64) -> ! = unsafe { core::mem::transmute(tramp) };
    f(staging, start, len, _start64 as *const () as u64, params)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Serial, "kho-stub: PANIC {info}");
    exit(0x11)
}
