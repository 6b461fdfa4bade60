//! The x86_64 stub as a bzImage, the only format Linux's `kexec_file_load` takes on x86.
//!
//! QEMU boots the stub's ELF through PVH; a Linux kernel that kexecs it
//! needs a bzImage instead (Linux's `arch/x86/kernel/kexec-bzimage64.c`):
//! a real-mode part of `(setup_sects + 1) * 512` bytes whose setup header
//! (Documentation/arch/x86/boot.rst) says how to load the rest, then the
//! protected-mode image, which the loader copies to an address aligned to
//! `kernel_alignment` with `init_size` bytes of room and enters in 64-bit
//! mode at offset 0x200 with `%rsi` = the zero page. The stub is
//! position-independent, so any such address works.
//!
//! The real-mode part here is only a setup header: the stub has no 16-bit
//! entry, and nothing but the 64-bit entry is advertised.

use anyhow::{Context, Result, ensure};
use object::{Object, ObjectSegment, ObjectSymbol};

/// Sectors of "setup" after the boot sector: one holds the whole header.
const SETUP_SECTS: u8 = 1;
/// Boot protocol 2.15.
const VERSION: u16 = 0x020f;
/// `loadflags`: the protected-mode part is loaded at 1 MiB or above.
const LOADED_HIGH: u8 = 0x01;
/// `xloadflags`: a 64-bit entry at +0x200; loadable above 4 GiB (the
/// loader demands both).
const XLF_KERNEL_64: u16 = 1 << 0;
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Where the 64-bit entry is in the protected-mode image.
pub(crate) const ENTRY64_OFFSET: u64 = 0x200;
/// The stub runs at any 4 KiB-aligned address.
const ALIGNMENT: u32 = 0x1000;
/// The longest command line the stub reads (its `MAX_CMDLINE` less the NUL).
const CMDLINE_SIZE: u32 = 4095;

/// The protected-mode image of an ELF stub, with what its header needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Flat {
    /// The file-backed bytes from `__image_start` to `__image_end`.
    pub(crate) bytes: Vec<u8>,
    /// `__bss_end - __image_start`: the memory the image needs when running.
    pub(crate) init_size: u64,
    /// The link address (`__image_start`), the preferred load address.
    pub(crate) link_address: u64,
}

/// Lay out the stub ELF's loadable segments as the flat image a loader
/// copies, checking the 64-bit entry sits at [`ENTRY64_OFFSET`].
pub(crate) fn flatten(elf: &[u8]) -> Result<Flat> {
    let file = object::File::parse(elf).context("the stub image is not an ELF file")?;
    let symbol = |name: &str| -> Result<u64> {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .with_context(|| format!("the stub ELF has no symbol {name}"))
    };
    let start = symbol("__image_start")?;
    let end = symbol("__image_end")?;
    let bss_end = symbol("__bss_end")?;
    let entry = symbol("_start64")?;
    ensure!(
        start < end && end <= bss_end,
        "the stub's image symbols are out of order ({start:#x}, {end:#x}, {bss_end:#x})"
    );
    ensure!(
        entry.checked_sub(start) == Some(ENTRY64_OFFSET),
        "_start64 is at image offset {:#x}; the bzImage 64-bit entry must be at {ENTRY64_OFFSET:#x}",
        entry.wrapping_sub(start)
    );
    let len = usize::try_from(end - start).context("the stub image is too large")?;
    let mut bytes = vec![0u8; len];
    for segment in file.segments() {
        let data = segment
            .data()
            .context("reading a segment of the stub ELF")?;
        if data.is_empty() {
            continue;
        }
        let at = segment.address();
        let seg_end = at
            .checked_add(data.len() as u64)
            .context("a stub segment wraps")?;
        ensure!(
            at >= start && seg_end <= end,
            "stub segment {at:#x}..{seg_end:#x} lies outside the image {start:#x}..{end:#x}"
        );
        let off = (at - start) as usize;
        bytes[off..off + data.len()].copy_from_slice(data);
    }
    Ok(Flat {
        bytes,
        init_size: (bss_end - start).next_multiple_of(4096),
        link_address: start,
    })
}

/// The bzImage: a boot sector and one setup sector holding the header,
/// then `flat`.
pub(crate) fn bzimage(flat: &Flat) -> Result<Vec<u8>> {
    let setup = (usize::from(SETUP_SECTS) + 1) * 512;
    let init_size = u32::try_from(flat.init_size).context("init_size does not fit 32 bits")?;
    let syssize = u32::try_from(flat.bytes.len().div_ceil(16)).context("the image is too large")?;
    let mut out = vec![0u8; setup];
    let mut put = |off: usize, bytes: &[u8]| out[off..off + bytes.len()].copy_from_slice(bytes);
    put(0x1f1, &[SETUP_SECTS]);
    put(0x1f4, &syssize.to_le_bytes());
    put(0x1fe, &0xaa55u16.to_le_bytes());
    // A short jump over the header; its displacement tells loaders where
    // the header ends (0x202 + 0x66 = 0x268, the end of protocol 2.15's).
    put(0x200, &[0xeb, 0x66]);
    put(0x202, b"HdrS");
    put(0x206, &VERSION.to_le_bytes());
    put(0x211, &[LOADED_HIGH]);
    put(0x214, &(flat.link_address as u32).to_le_bytes());
    put(0x22c, &0x7fff_ffffu32.to_le_bytes());
    put(0x230, &ALIGNMENT.to_le_bytes());
    put(0x234, &[1, ALIGNMENT.trailing_zeros() as u8]);
    put(
        0x236,
        &(XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G).to_le_bytes(),
    );
    put(0x238, &CMDLINE_SIZE.to_le_bytes());
    put(0x258, &flat.link_address.to_le_bytes());
    put(0x260, &init_size.to_le_bytes());
    out.extend_from_slice(&flat.bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// The checks of Linux's bzImage64_probe and bzImage64_load, written
    /// from kexec-bzimage64.c: the header Linux accepts.
    #[test]
    fn linux_accepts_the_header() {
        let flat = Flat {
            bytes: vec![0x90; 0x5000],
            init_size: 0x47_0000,
            link_address: 0x10_0000,
        };
        let b = bzimage(&flat).unwrap();
        assert!(b.len() >= 2 * 512);
        assert_eq!(&b[0x202..0x206], b"HdrS");
        assert_eq!(u16_at(&b, 0x1fe), 0xaa55);
        assert!(u16_at(&b, 0x206) >= 0x020c);
        assert_ne!(b[0x211] & LOADED_HIGH, 0);
        let xlf = u16_at(&b, 0x236);
        assert_ne!(xlf & XLF_KERNEL_64, 0);
        assert_ne!(xlf & XLF_CAN_BE_LOADED_ABOVE_4G, 0);
        // The protected-mode part starts after (setup_sects + 1) sectors.
        let kern16 = (usize::from(b[0x1f1]) + 1) * 512;
        assert_eq!(&b[kern16..], &flat.bytes[..]);
        // Setup header length from the jump: 0x202 + b[0x201].
        assert_eq!(0x202 + usize::from(b[0x201]), 0x268);
        assert!(u32_at(&b, 0x230).is_power_of_two());
        assert_eq!(u32_at(&b, 0x260), 0x47_0000);
        assert!(u32_at(&b, 0x238) >= 2048);
        assert_eq!(b[0x234], 1, "relocatable");
    }

    #[test]
    fn a_non_elf_is_refused() {
        let e = flatten(b"not an elf").unwrap_err().to_string();
        assert!(e.contains("not an ELF"), "{e}");
    }
}
