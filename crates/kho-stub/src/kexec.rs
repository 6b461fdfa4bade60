//! The arch-independent half of kexec: the running image, its staged copy, the jump.
//!
//! Both linker scripts define `__image_start`, `__image_end` (end of the
//! file-backed part a copy needs) and `__bss_end`. The image is
//! position-independent and relocates itself at entry, so the next
//! generation is simply a copy of this image at a new place in scratch,
//! entered where the arch's boot protocol enters it: `arch::enter_stub`
//! jumps there with the arch's handoff register set to the handoff
//! structure (`%rsi` = boot_params on x86_64, `x0` = DTB on arm64), after
//! the arm64 stub cleaned what the copy reads and turned its MMU off.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kho_mem::{PhysAddr, PhysMem, PhysRange};
use kho_scratch::ScratchAllocator;

use crate::arch;
use crate::mem::StubMem;

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __bss_end: u8;
}

/// (the file-backed image that a kexec copies, the whole image with `.bss`
/// and the stack).
pub fn image() -> (PhysRange, PhysRange) {
    let start = (&raw const __image_start) as u64;
    let end = (&raw const __image_end) as u64;
    let bss_end = (&raw const __bss_end) as u64;
    let r =
        |len| PhysRange::try_new(PhysAddr::new(start), len).unwrap_or_else(|_| arch::exit(false));
    (r(end - start), r(bss_end - start))
}

/// Copy the running image into scratch, with room for its `.bss` and
/// stack: the copy is the next generation, and runs where it lies. The
/// returned range is the whole window it uses.
pub fn stage_image(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    handover: &kho::Handover,
) -> Result<PhysRange, String> {
    let (image, whole) = image();
    let staging = alloc_in_one_area(mem, scratch, handover, whole.size(), arch::IMAGE_ALIGN)
        .map_err(|e| format!("image staging: {e}"))?;
    // First fit puts it where the previous generation ran: the code there
    // is the same, and only what differs is written (`copy_changed`).
    mem.copy_changed(image.start(), staging.start(), image.size())
        .map_err(|e| format!("image: {e}"))?;
    Ok(staging)
}

/// Copy `len` bytes of RAM from `src` to `dst` (the ranges must not
/// overlap), a page at a time.
pub fn copy(mem: &mut StubMem, src: PhysAddr, dst: PhysAddr, len: u64) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(4096) as usize;
        let from = src.checked_add(off).ok_or("copy source wraps")?;
        let to = dst.checked_add(off).ok_or("copy destination wraps")?;
        mem.read(from, &mut chunk[..n])
            .map_err(|e| format!("{e}"))?;
        mem.write(to, &chunk[..n]).map_err(|e| format!("{e}"))?;
        off += n as u64;
    }
    Ok(())
}

/// Allocate `size` bytes of scratch aligned to `align` inside one scratch
/// area of `handover` (the array is read back from memory). The
/// allocator's first fit could straddle two adjacent areas, which the next
/// kernel does not see as one range, so the last page before every such
/// boundary is reserved first (a page per boundary is all it costs).
pub fn alloc_in_one_area(
    mem: &StubMem,
    scratch: &mut ScratchAllocator,
    handover: &kho::Handover,
    size: u64,
    align: u64,
) -> Result<PhysRange, String> {
    let areas = kho_scratch::ScratchAreas::read_array(
        mem,
        handover.scratch,
        handover.scratch_len,
        kho_scratch::ReadPolicy::LINUX,
    )
    .map_err(|e| format!("scratch array: {e}"))?;
    for a in areas.ranges() {
        let Some(end) = a.end() else { continue };
        if areas.ranges().any(|b| b.start() == end) {
            let fence = PhysRange::try_new(PhysAddr::new(end.as_u64() - 4096), 4096)
                .map_err(|e| format!("{e}"))?;
            scratch.reserve(fence).map_err(|e| format!("{e}"))?;
        }
    }
    let r = scratch.alloc(size, align).map_err(|e| format!("{e}"))?;
    if !areas.contains_range(r) {
        return Err(format!("scratch {r} straddles two scratch areas"));
    }
    Ok(r)
}

/// Copy `src` into fresh scratch memory aligned to `align`, inside one
/// scratch area of `handover`.
pub fn copy_to_scratch(
    mem: &mut StubMem,
    scratch: &mut ScratchAllocator,
    handover: &kho::Handover,
    src: PhysRange,
    align: u64,
) -> Result<PhysRange, String> {
    let dst = alloc_in_one_area(mem, scratch, handover, src.size(), align)?;
    copy(mem, src.start(), dst.start(), src.size())?;
    PhysRange::try_new(dst.start(), src.size()).map_err(|e| format!("{e}"))
}

/// Enter the next generation: the staged copy of this image, at the arch's
/// entry point, with `handoff` in the arch's handoff register; `ranges`
/// (the staged copy among them) are what it reads at boot.
fn jump(staging: PhysRange, entry: u64, handoff: u64, ranges: &[PhysRange]) -> ! {
    let (image, _) = image();
    let target = staging.start().as_u64() + (entry - image.start().as_u64());
    arch::enter_stub(target, handoff, ranges)
}

/// A prepared kexec: the next kernel (a staged copy of this image, or a
/// Linux kernel at its final address), the arch's handoff structure (the
/// zero page on x86_64, the next DTB on arm64) and anything else the next
/// kernel reads at boot, all in scratch.
#[derive(Debug)]
pub struct Kexec {
    target: Target,
    handoff: PhysRange,
    ranges: Vec<PhysRange>,
    handover: kho::Handover,
}

/// What a [`Kexec`] enters.
#[derive(Debug)]
enum Target {
    /// The next stub generation, staged where it will run.
    Stub { staging: PhysRange },
    /// A Linux kernel, already where it runs.
    Linux(LinuxTarget),
}

/// A Linux kernel placed for its boot protocol.
#[derive(Clone, Debug)]
pub struct LinuxTarget {
    /// The memory the kernel may use from its load address (x86_64:
    /// `init_size`, arm64: `text_offset + image_size` from the 2 MiB base).
    pub kernel: PhysRange,
    /// Where it is entered (x86_64: load address + 0x200; arm64: the
    /// Image's first byte).
    pub entry: u64,
    /// The initramfs copy, if any.
    pub initrd: Option<PhysRange>,
    /// Its command line.
    pub cmdline: String,
}

impl Kexec {
    /// A kexec of the image staged at `staging`, handing over `handover`
    /// through the arch structure at `handoff`; `other` lists further
    /// ranges the next generation reads at boot (e.g. the command line).
    pub fn new(
        staging: PhysRange,
        handoff: PhysRange,
        other: &[PhysRange],
        handover: kho::Handover,
    ) -> Kexec {
        let mut ranges = Vec::from(other);
        ranges.extend([handoff, staging]);
        Kexec {
            target: Target::Stub { staging },
            handoff,
            ranges,
            handover,
        }
    }

    /// A boot of the Linux kernel `linux`, handing over `handover` through
    /// the arch structure at `handoff`; `other` lists further ranges it
    /// reads at boot (e.g. the command line). The kernel's whole window and
    /// its initrd are checked with them.
    pub fn linux(
        linux: LinuxTarget,
        handoff: PhysRange,
        other: &[PhysRange],
        handover: kho::Handover,
    ) -> Kexec {
        let mut ranges = Vec::from(other);
        ranges.extend([handoff, linux.kernel]);
        ranges.extend(linux.initrd);
        Kexec {
            target: Target::Linux(linux),
            handoff,
            ranges,
            handover,
        }
    }

    /// The Linux kernel this kexec boots, if it boots one.
    pub fn linux_target(&self) -> Option<&LinuxTarget> {
        match &self.target {
            Target::Linux(l) => Some(l),
            Target::Stub { .. } => None,
        }
    }

    /// Every scratch range the next generation reads at boot.
    pub fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    /// The KHO handover the next generation receives.
    pub fn handover(&self) -> kho::Handover {
        self.handover
    }

    /// Where the arch handoff structure is, and its length.
    pub fn handoff(&self) -> PhysRange {
        self.handoff
    }
}

/// Enter the next kernel: the next generation at the arch's entry point of
/// the staged copy, or Linux at its entry point, with the handoff
/// structure's address in the arch's handoff register.
pub fn kexec(k: &Kexec) -> ! {
    match &k.target {
        Target::Stub { staging } => jump(
            *staging,
            arch::next_entry(),
            k.handoff.start().as_u64(),
            &k.ranges,
        ),
        Target::Linux(l) => arch::enter_linux(l.entry, k.handoff.start().as_u64(), &k.ranges),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    if let Some(size) = crate::heap::exhausted() {
        if crate::restart::reviving() {
            // Nothing for the next kernel is written yet: boot cold instead.
            crate::restart::cold(
                crate::generation::current(),
                format_args!(
                    "heap exhausted during revival: {size} bytes requested with {} of {} bytes in use",
                    crate::heap::high_water(),
                    crate::heap::HEAP_SIZE
                ),
            )
        }
        // The one failure the stub cannot turn into an error value: name it.
        let _ = writeln!(
            arch::console(),
            "KHO fail gen={} reason=\"heap exhausted: {size} bytes requested with {} of {} bytes in use\"",
            crate::generation::current(),
            crate::heap::high_water(),
            crate::heap::HEAP_SIZE
        );
        arch::exit(false)
    }
    let _ = writeln!(arch::console(), "KHO panic msg=\"{info}\"");
    arch::exit(false)
}
