//! Linux kernel images the last generation can boot: the x86_64 bzImage and the arm64 Image.
//!
//! Both headers come from the payload, so every field is checked before
//! it is used to place anything:
//!
//! - [`BzImage`]: the setup header of Documentation/arch/x86/boot.rst
//!   (boot flag `0xAA55` at 0x1fe, `"HdrS"` at 0x202, protocol 2.12 or
//!   later, `XLF_KERNEL_64`, `setup_sects`, `kernel_alignment`,
//!   `relocatable_kernel`, `pref_address`, `init_size`). The 64-bit boot
//!   protocol loads the protected-mode part (after `(setup_sects + 1) × 512`
//!   bytes) at a `kernel_alignment`-aligned address with `init_size` bytes of
//!   room and enters it at +0x200.
//! - [`Arm64Image`]: the 64-byte header of
//!   Documentation/arch/arm64/booting.rst (`"ARM\x64"` at 56, `text_offset`,
//!   `image_size`, `flags`). The Image goes `text_offset` bytes above a
//!   2 MiB-aligned base with `image_size` bytes of room.

use core::fmt;

/// `boot_flag` value.
const BOOT_FLAG: u16 = 0xaa55;
/// `header` value, "HdrS".
const HDRS: &[u8; 4] = b"HdrS";
/// Oldest boot protocol with the 64-bit entry and `pref_address` (2.12).
pub const MIN_PROTOCOL: u16 = 0x020c;
/// `loadflags` bit: the protected-mode code loads at 1 MiB (a bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit: the kernel has the 64-bit entry at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// Where the setup header starts in the image and in the zero page.
pub const SETUP_HEADER: usize = 0x1f1;
/// The setup header may not run into `edd_mbr_sig_buffer` (0x290).
pub const SETUP_HEADER_LIMIT: usize = 0x290;
/// Offset of the 64-bit entry in the protected-mode part.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub const ENTRY_64: u64 = 0x200;
/// arm64 Image magic at offset 56: "ARM\x64".
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub const ARM64_MAGIC: [u8; 4] = *b"ARM\x64";
/// arm64 Images are placed `text_offset` above a base aligned to this.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub const ARM64_BASE_ALIGN: u64 = 2 << 20;

/// Why a kernel image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
// Each arch's build refuses only its own kind of image.
#[allow(dead_code)]
pub enum ImageError {
    /// Shorter than its header (or, for a bzImage, its setup sectors).
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        len: usize,
    },
    /// bzImage: no `0xAA55` boot flag at 0x1fe.
    NoBootFlag,
    /// bzImage: no `"HdrS"` at 0x202.
    NoHdrS,
    /// bzImage: boot protocol older than 2.12.
    OldProtocol {
        /// The version found.
        version: u16,
    },
    /// bzImage: `LOADED_HIGH` is clear (a zImage).
    NotBzImage,
    /// bzImage: `XLF_KERNEL_64` is clear (no 64-bit entry).
    No64BitEntry,
    /// bzImage: `relocatable_kernel` is 0.
    NotRelocatable,
    /// bzImage: the setup header would run past 0x290 in the zero page.
    SetupHeaderTooLong {
        /// Its end (0x202 + byte at 0x201).
        end: usize,
    },
    /// bzImage: `kernel_alignment` is not a power of two of at least a page.
    BadAlignment {
        /// The value found.
        align: u32,
    },
    /// bzImage: `init_size` is smaller than the protected-mode part.
    InitSizeTooSmall {
        /// `init_size`.
        init_size: u32,
        /// Bytes of the protected-mode part.
        code: usize,
    },
    /// arm64: no `"ARM\x64"` magic at offset 56.
    NoArm64Magic,
    /// arm64: `image_size` is 0 (a pre-3.17 Image: its size is unknown).
    NoImageSize,
    /// arm64: the file is larger than `image_size`.
    LargerThanImageSize {
        /// `image_size`.
        image_size: u64,
        /// File length.
        len: usize,
    },
    /// arm64: a big-endian kernel.
    BigEndian,
    /// arm64: a page size other than 4 KiB (KHO state is handed over in
    /// 4 KiB pages).
    PageSize {
        /// Flags bits 1-2.
        code: u64,
    },
    /// arm64: `text_offset` is not page-aligned, not below 2 MiB, or
    /// `text_offset + image_size` overflows.
    BadTextOffset {
        /// The value found.
        text_offset: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ImageError::Truncated { need, len } => {
                write!(f, "kernel image of {len} bytes is shorter than {need}")
            }
            ImageError::NoBootFlag => f.write_str("bzImage has no 0xAA55 boot flag at 0x1fe"),
            ImageError::NoHdrS => f.write_str("bzImage has no HdrS at 0x202"),
            ImageError::OldProtocol { version } => {
                write!(f, "bzImage boot protocol {version:#06x} is older than 2.12")
            }
            ImageError::NotBzImage => f.write_str("bzImage loadflags lack LOADED_HIGH"),
            ImageError::No64BitEntry => f.write_str("bzImage xloadflags lack XLF_KERNEL_64"),
            ImageError::NotRelocatable => f.write_str("bzImage is not relocatable"),
            ImageError::SetupHeaderTooLong { end } => {
                write!(f, "bzImage setup header ends at {end:#x}, past 0x290")
            }
            ImageError::BadAlignment { align } => {
                write!(
                    f,
                    "bzImage kernel_alignment {align:#x} is not a power of two >= 4096"
                )
            }
            ImageError::InitSizeTooSmall { init_size, code } => write!(
                f,
                "bzImage init_size {init_size:#x} is smaller than its {code:#x}-byte protected-mode part"
            ),
            ImageError::NoArm64Magic => f.write_str("arm64 Image has no ARM\\x64 magic at 56"),
            ImageError::NoImageSize => f.write_str("arm64 Image has image_size 0"),
            ImageError::LargerThanImageSize { image_size, len } => write!(
                f,
                "arm64 Image of {len:#x} bytes is larger than its image_size {image_size:#x}"
            ),
            ImageError::BigEndian => f.write_str("arm64 Image is big-endian"),
            ImageError::PageSize { code } => {
                write!(f, "arm64 Image page size code {code} is not 4K")
            }
            ImageError::BadTextOffset { text_offset } => {
                write!(f, "arm64 Image text_offset {text_offset:#x} is unusable")
            }
        }
    }
}

impl core::error::Error for ImageError {}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// Bytes of an image's start the parsers need: the bzImage setup header
/// and the arm64 Image header both lie inside it.
pub const HEAD: usize = 4096;
/// Longest setup header a zero page takes (0x1f1 up to 0x290).
pub const MAX_SETUP_HEADER: usize = SETUP_HEADER_LIMIT - SETUP_HEADER;

/// A checked x86_64 bzImage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub struct BzImage {
    /// The setup header as a kexec loader copies it into the zero page:
    /// bytes 0x1f1 up to 0x202 + the byte at 0x201 (the first
    /// `setup_header_len` bytes).
    pub setup_header: [u8; MAX_SETUP_HEADER],
    /// Bytes of `setup_header` in use.
    pub setup_header_len: usize,
    /// Offset of the protected-mode part in the image:
    /// `(setup_sects + 1) × 512`.
    pub code_offset: u64,
    /// Bytes of the protected-mode part.
    pub code_len: u64,
    /// Boot protocol version.
    pub version: u16,
    /// `loadflags` as the image has them.
    pub loadflags: u8,
    /// Required alignment of the load address.
    pub kernel_alignment: u64,
    /// Lowest load address the kernel runs at without relocating.
    pub pref_address: u64,
    /// Bytes from the load address the kernel needs before it reads its
    /// memory map.
    pub init_size: u64,
    /// Longest command line, without the NUL.
    pub cmdline_size: u32,
}

#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
impl BzImage {
    /// Check the setup header of an image of `len` bytes whose first bytes
    /// are `head` (at least [`HEAD`], or the whole image).
    pub fn parse(head: &[u8], len: u64) -> Result<BzImage, ImageError> {
        let need = 0x268;
        let have = (head.len() as u64).min(len) as usize;
        if have < need {
            return Err(ImageError::Truncated { need, len: have });
        }
        let image = &head[..have];
        if u16_at(image, 0x1fe) != BOOT_FLAG {
            return Err(ImageError::NoBootFlag);
        }
        if &image[0x202..0x206] != HDRS {
            return Err(ImageError::NoHdrS);
        }
        let version = u16_at(image, 0x206);
        if version < MIN_PROTOCOL {
            return Err(ImageError::OldProtocol { version });
        }
        let loadflags = image[0x211];
        if loadflags & LOADED_HIGH == 0 {
            return Err(ImageError::NotBzImage);
        }
        if u16_at(image, 0x236) & XLF_KERNEL_64 == 0 {
            return Err(ImageError::No64BitEntry);
        }
        if image[0x234] == 0 {
            return Err(ImageError::NotRelocatable);
        }
        let end = 0x202 + usize::from(image[0x201]);
        if end > SETUP_HEADER_LIMIT || end > have {
            return Err(ImageError::SetupHeaderTooLong { end });
        }
        let align = u32_at(image, 0x230);
        if !align.is_power_of_two() || align < 4096 {
            return Err(ImageError::BadAlignment { align });
        }
        let setup_sects = match image[0x1f1] {
            0 => 4,
            n => u64::from(n),
        };
        let code_offset = (setup_sects + 1) * 512;
        if len <= code_offset {
            return Err(ImageError::Truncated {
                need: code_offset as usize + 1,
                len: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        let code_len = len - code_offset;
        let init_size = u32_at(image, 0x260);
        if u64::from(init_size) < code_len {
            return Err(ImageError::InitSizeTooSmall {
                init_size,
                code: usize::try_from(code_len).unwrap_or(usize::MAX),
            });
        }
        let mut setup_header = [0u8; MAX_SETUP_HEADER];
        setup_header[..end - SETUP_HEADER].copy_from_slice(&image[SETUP_HEADER..end]);
        Ok(BzImage {
            setup_header,
            setup_header_len: end - SETUP_HEADER,
            code_offset,
            code_len,
            version,
            loadflags,
            kernel_alignment: u64::from(align),
            pref_address: u64_at(image, 0x258),
            init_size: u64::from(init_size),
            cmdline_size: u32_at(image, 0x238),
        })
    }

    /// The setup header bytes to copy into the zero page at 0x1f1.
    pub fn setup_header(&self) -> &[u8] {
        &self.setup_header[..self.setup_header_len]
    }

    /// The lowest address the protected-mode part may be loaded at: the
    /// preferred address (at least 1 MiB), as Linux's kexec uses it.
    pub fn min_load_address(&self) -> u64 {
        self.pref_address.max(1 << 20)
    }
}

/// A checked arm64 Image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub struct Arm64Image {
    /// File length.
    pub len: u64,
    /// Offset of the Image above its 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes from the Image's start the kernel may use.
    pub image_size: u64,
    /// The header's flags.
    pub flags: u64,
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
impl Arm64Image {
    /// Check the header of an Image of `len` bytes whose first bytes are
    /// `head` (at least 64).
    pub fn parse(head: &[u8], len: u64) -> Result<Arm64Image, ImageError> {
        let have = (head.len() as u64).min(len) as usize;
        if have < 64 {
            return Err(ImageError::Truncated {
                need: 64,
                len: have,
            });
        }
        let image = &head[..have];
        if image[56..60] != ARM64_MAGIC {
            return Err(ImageError::NoArm64Magic);
        }
        let text_offset = u64_at(image, 8);
        let image_size = u64_at(image, 16);
        let flags = u64_at(image, 24);
        if image_size == 0 {
            return Err(ImageError::NoImageSize);
        }
        if len > image_size {
            return Err(ImageError::LargerThanImageSize {
                image_size,
                len: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        if flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        let page = (flags >> 1) & 3;
        if page > 1 {
            return Err(ImageError::PageSize { code: page });
        }
        if !text_offset.is_multiple_of(4096)
            || text_offset >= ARM64_BASE_ALIGN
            || text_offset.checked_add(image_size).is_none()
        {
            return Err(ImageError::BadTextOffset { text_offset });
        }
        Ok(Arm64Image {
            len,
            text_offset,
            image_size,
            flags,
        })
    }

    /// Bytes to reserve from the 2 MiB-aligned base.
    pub fn footprint(&self) -> u64 {
        self.text_offset + self.image_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn parse(b: &[u8]) -> Result<BzImage, ImageError> {
        BzImage::parse(b, b.len() as u64)
    }

    /// A bzImage-shaped buffer: 4 setup sectors (+ the boot sector), then
    /// `code` bytes of protected-mode code.
    fn bzimage(code: usize) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512 + code];
        b[0x1f1] = 4;
        b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        b[0x200] = 0xeb;
        b[0x201] = 0x66;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        b[0x211] = LOADED_HIGH | 0x80;
        b[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        b[0x234] = 1;
        b[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
        b[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        b[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[0x260..0x264].copy_from_slice(&0x300_0000u32.to_le_bytes());
        for (i, x) in b[5 * 512..].iter_mut().enumerate() {
            *x = i as u8;
        }
        b
    }

    #[test]
    fn a_bzimage_header_is_read_at_the_boot_rst_offsets() {
        let b = bzimage(1000);
        let z = parse(&b).unwrap();
        assert_eq!(z.setup_header().len(), 0x268 - 0x1f1);
        assert_eq!(z.setup_header(), &b[0x1f1..0x268]);
        assert_eq!((z.code_offset, z.code_len), (5 * 512, 1000));
        assert_eq!(
            (z.version, z.kernel_alignment, z.pref_address, z.init_size),
            (0x020f, 0x20_0000, 0x100_0000, 0x300_0000)
        );
        assert_eq!((z.loadflags, z.cmdline_size), (0x81, 2047));
        assert_eq!(z.min_load_address(), 0x100_0000);
        // setup_sects 0 means 4.
        let mut b0 = b.clone();
        b0[0x1f1] = 0;
        assert_eq!(parse(&b0).unwrap().code_len, 1000);
        // 7 sectors: the code starts at 0x1000.
        let mut b7 = bzimage(2000);
        b7[0x1f1] = 7;
        assert_eq!(parse(&b7).unwrap().code_offset, 0x1000);
        // Only the head is needed: a long image parses from its first page.
        let long = bzimage(64 << 10);
        assert_eq!(
            BzImage::parse(&long[..HEAD], long.len() as u64),
            parse(&long)
        );
    }

    #[test]
    fn bzimage_errors_are_named() {
        let good = bzimage(100);
        let broken = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            parse(&b).unwrap_err()
        };
        assert_eq!(
            parse(&good[..0x267]).unwrap_err(),
            ImageError::Truncated {
                need: 0x268,
                len: 0x267
            }
        );
        assert_eq!(broken(&|b| b[0x1fe] = 0), ImageError::NoBootFlag);
        assert_eq!(broken(&|b| b[0x205] = b'T'), ImageError::NoHdrS);
        assert_eq!(
            broken(&|b| b[0x206] = 0x0b),
            ImageError::OldProtocol { version: 0x020b }
        );
        assert_eq!(broken(&|b| b[0x211] = 0x80), ImageError::NotBzImage);
        assert_eq!(broken(&|b| b[0x236] = 0x7e), ImageError::No64BitEntry);
        assert_eq!(broken(&|b| b[0x234] = 0), ImageError::NotRelocatable);
        assert_eq!(
            broken(&|b| b[0x201] = 0x8f),
            ImageError::SetupHeaderTooLong { end: 0x291 }
        );
        for align in [0u32, 0x300, 0x1800] {
            assert_eq!(
                broken(&|b| b[0x230..0x234].copy_from_slice(&align.to_le_bytes())),
                ImageError::BadAlignment { align }
            );
        }
        assert_eq!(
            broken(&|b| b[0x260..0x264].copy_from_slice(&50u32.to_le_bytes())),
            ImageError::InitSizeTooSmall {
                init_size: 50,
                code: 100
            }
        );
        // The setup sectors claim more than the file holds.
        assert_eq!(
            broken(&|b| b[0x1f1] = 200),
            ImageError::Truncated {
                need: 201 * 512 + 1,
                len: 5 * 512 + 100
            }
        );
    }

    fn arm64(len: usize, text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[8..16].copy_from_slice(&text_offset.to_le_bytes());
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[24..32].copy_from_slice(&flags.to_le_bytes());
        b[56..60].copy_from_slice(b"ARM\x64");
        b
    }

    #[test]
    fn an_arm64_header_is_read_at_the_booting_rst_offsets() {
        let b = arm64(4096, 0, 0x20_0000, 0xa);
        let i = Arm64Image::parse(&b, 4096).unwrap();
        assert_eq!((i.text_offset, i.image_size, i.flags), (0, 0x20_0000, 0xa));
        assert_eq!(i.footprint(), 0x20_0000);
        let b = arm64(4096, 0x8_0000, 0x10_0000, 0x2);
        assert_eq!(Arm64Image::parse(&b, 4096).unwrap().footprint(), 0x18_0000);
        // The length counts, not the head: a 3 MiB file with a 2 MiB
        // image_size is refused from its header alone.
        let b = arm64(64, 0, 0x20_0000, 0xa);
        assert!(Arm64Image::parse(&b, 0x30_0000).is_err());
    }

    #[test]
    fn arm64_errors_are_named() {
        assert_eq!(
            Arm64Image::parse(&[0; 63], 63).unwrap_err(),
            ImageError::Truncated { need: 64, len: 63 }
        );
        let mut b = arm64(4096, 0, 0x20_0000, 0xa);
        b[59] = 0x65;
        assert_eq!(
            Arm64Image::parse(&b, 4096).unwrap_err(),
            ImageError::NoArm64Magic
        );
        let e = |b: Vec<u8>| Arm64Image::parse(&b, b.len() as u64).unwrap_err();
        assert_eq!(e(arm64(4096, 0, 0, 0xa)), ImageError::NoImageSize);
        assert_eq!(
            e(arm64(4096, 0, 4000, 0xa)),
            ImageError::LargerThanImageSize {
                image_size: 4000,
                len: 4096
            }
        );
        assert_eq!(e(arm64(4096, 0, 8192, 0xb)), ImageError::BigEndian);
        assert_eq!(
            e(arm64(4096, 0, 8192, 0x6)),
            ImageError::PageSize { code: 3 }
        );
        for t in [0x800, 0x20_0000] {
            assert_eq!(
                e(arm64(4096, t, 8192, 0xa)),
                ImageError::BadTextOffset { text_offset: t }
            );
        }
        // text_offset + image_size overflows.
        assert_eq!(
            e(arm64(4096, 0x1000, u64::MAX, 0xa)),
            ImageError::BadTextOffset {
                text_offset: 0x1000
            }
        );
    }
}
