//! The arch-independent half of kexec: the running image, its staged copy, the jump.
//!
//! Both linker scripts define `__image_start`, `__image_end` (end of the
//! file-backed part a copy needs) and `__bss_end`, and both entry files
//! provide `kexec_trampoline(src, dst, len, entry, handoff)`: a
//! position-independent routine that copies `len` bytes from `src` over
//! `dst` and enters `entry` with the arch's handoff register set to
//! `handoff` (`%rsi` = boot_params on x86_64, `x0` = DTB on arm64).

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
    fn kexec_trampoline(src: u64, dst: u64, len: u64, entry: u64, handoff: u64) -> !;
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

/// Copy the running image into scratch; the copy is the next generation.
pub fn stage_image(mem: &mut StubMem, scratch: &mut ScratchAllocator) -> Result<PhysRange, String> {
    let (image, _) = image();
    let staging = scratch
        .alloc(image.size(), 4096)
        .map_err(|e| format!("image staging: {e}"))?;
    let mut chunk = [0u8; 4096];
    let mut off = 0;
    while off < image.size() {
        let n = (image.size() - off).min(4096) as usize;
        let src = image.start().checked_add(off).ok_or("image wraps")?;
        let dst = staging.start().checked_add(off).ok_or("staging wraps")?;
        mem.read(src, &mut chunk[..n])
            .map_err(|e| format!("image: {e}"))?;
        mem.write(dst, &chunk[..n])
            .map_err(|e| format!("image staging: {e}"))?;
        off += n as u64;
    }
    Ok(staging)
}

/// Enter the next generation: the trampoline inside the staged copy copies
/// it over this image and enters `entry` with `handoff` in the arch's
/// handoff register.
pub fn jump(staging: PhysRange, entry: u64, handoff: u64) -> ! {
    let (image, _) = image();
    let tramp =
        staging.start().as_u64() + (kexec_trampoline as *const () as u64 - image.start().as_u64());
    // SAFETY: the staged copy is byte-identical to this image, so at `tramp`
    // lies its position-independent trampoline. It copies the staged image
    // over [image.start, +len), which is never scratch (the kernel pool and
    // placement both exclude the image), so it never overwrites itself, and
    // enters the fresh copy as the arch's boot protocol enters Linux.
    let f: extern "C" fn(u64, u64, u64, u64, u64) -> ! = unsafe { core::mem::transmute(tramp) };
    f(
        staging.start().as_u64(),
        image.start().as_u64(),
        image.size(),
        entry,
        handoff,
    )
}

/// A prepared kexec: the staged image, the arch's handoff structure (the
/// zero page on x86_64, the next DTB on arm64) and anything else the next
/// generation reads at boot, all in scratch.
#[derive(Debug)]
pub struct Kexec {
    staging: PhysRange,
    handoff: PhysRange,
    ranges: Vec<PhysRange>,
    handover: kho::Handover,
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
            staging,
            handoff,
            ranges,
            handover,
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

/// Enter the next generation at the arch's entry point of the staged copy,
/// with the handoff structure's address in the arch's handoff register.
pub fn kexec(k: &Kexec) -> ! {
    jump(k.staging, arch::next_entry(), k.handoff.start().as_u64())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let _ = writeln!(arch::console(), "KHO panic msg=\"{info}\"");
    arch::exit(false)
}
