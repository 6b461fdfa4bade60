//! `Image` over byte slices: ELF cores and raw images read like the guest
//! memory they hold, the zero fill past `p_filesz`, and a named error for
//! every unusable file.

mod common;

use common::{Load, elf_core};
use kho_inspect::{Error, Fill, Format, Image};
use kho_mem::{PhysAddr, PhysMem};

const BASE: u64 = 0x4000_0000;

fn ram() -> Vec<u8> {
    (0..0x4000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn elf_and_raw_images_read_like_the_memory() {
    let ram = ram();
    // Two segments, the upper one listed first and short of file bytes.
    let elf = elf_core(&[
        Load {
            paddr: BASE + 0x2000,
            memsz: 0x3000,
            data: &ram[0x2000..0x3000],
        },
        Load {
            paddr: BASE,
            memsz: 0x2000,
            data: &ram[..0x2000],
        },
    ]);
    let image = Image::elf(&elf[..]).unwrap();
    assert_eq!(image.format(), Format::ElfCore);
    assert_eq!(image.segments().len(), 2);
    assert_eq!(image.ram_ranges(), [(BASE, 0x5000)]);
    let mut got = vec![0u8; 0x5000];
    image.read(PhysAddr::new(BASE), &mut got).unwrap();
    assert_eq!(got[..0x3000], ram[..0x3000]);
    assert!(got[0x3000..].iter().all(|&b| b == 0), "the zero fill");
    assert!(
        image.is_ram(PhysAddr::new(BASE + 0x1ff8), 16),
        "across segments"
    );
    assert!(!image.is_ram(PhysAddr::new(BASE + 0x4ff8), 16));
    assert!(!image.is_ram(PhysAddr::new(BASE - 1), 1));
    let mut word = [0u8; 8];
    assert_eq!(
        image.read(PhysAddr::new(BASE + 0x5000), &mut word),
        Err(kho_mem::Error::NotRam {
            addr: BASE + 0x5000,
            len: 8
        })
    );
    assert_eq!(image.fill_at(BASE), Some(Fill::File(BASE + 0x2000)));
    assert_eq!(
        image.fill_at(BASE + 0x3000),
        Some(Fill::Zero(BASE + 0x5000))
    );
    assert_eq!(image.fill_at(BASE + 0x5000), None);

    let raw = Image::raw(&ram[..], BASE).unwrap();
    assert_eq!(raw.format(), Format::Raw);
    let mut words = [0u64; 2];
    raw.read_u64s(PhysAddr::new(BASE + 8), &mut words).unwrap();
    assert_eq!(words[0].to_le_bytes(), ram[8..16]);
}

#[test]
fn every_unusable_image_is_a_named_error() {
    let ram = ram();
    let empty: &[u8] = &[];
    assert_eq!(Image::raw(empty, 0).unwrap_err(), Error::Empty);
    assert_eq!(
        Image::raw(&ram[..], u64::MAX - 4).unwrap_err(),
        Error::RawPastEnd {
            base: u64::MAX - 4,
            len: 0x4000
        }
    );
    assert_eq!(Image::elf(&ram[..]).unwrap_err(), Error::NotElf);
    assert_eq!(Image::elf(empty).unwrap_err(), Error::NotElf);
    let e = Image::elf(&b"\x7fELF\x01\x01\x01"[..]).unwrap_err();
    assert!(matches!(e, Error::ElfHeader { .. }), "{e}");
    assert!(e.to_string().starts_with("not a 64-bit ELF file"), "{e}");

    let one = |paddr, memsz, data| elf_core(&[Load { paddr, memsz, data }]);
    let mut truncated = one(0x1000, 0x2000, &ram[..0x2000]);
    truncated.pop();
    let e = Image::elf(&truncated[..]).unwrap_err();
    assert!(matches!(e, Error::SegmentPastFile { index: 1, .. }), "{e}");
    assert!(e.to_string().ends_with("(a truncated dump?)"), "{e}");
    assert_eq!(
        Image::elf(&elf_core(&[])[..]).unwrap_err(),
        Error::NoLoadSegment
    );
    let past_end = one(u64::MAX - 0xfff, 0x2000, &[]);
    assert_eq!(
        Image::elf(&past_end[..]).unwrap_err(),
        Error::SegmentPastEnd {
            index: 1,
            paddr: u64::MAX - 0xfff
        }
    );
    let more_file = one(0x1000, 0x10, &ram[..0x20]);
    assert!(matches!(
        Image::elf(&more_file[..]).unwrap_err(),
        Error::FileSizeAboveMemSize { index: 1, .. }
    ));
    let overlap = elf_core(&[
        Load {
            paddr: 0x1000,
            memsz: 0x1000,
            data: &[],
        },
        Load {
            paddr: 0x1800,
            memsz: 0x1000,
            data: &[],
        },
    ]);
    assert_eq!(
        Image::elf(&overlap[..]).unwrap_err(),
        Error::SegmentsOverlap {
            first: 0x1000,
            second: 0x1800
        }
    );
}

/// More than 65534 program headers: `e_phnum` is `PN_XNUM` and the count
/// is in section header 0's `sh_info`, as QEMU writes it for many RAM
/// blocks.
#[test]
fn an_extended_program_header_count_is_read_from_section_0() {
    let ram = ram();
    let mut elf = elf_core(&[Load {
        paddr: BASE,
        memsz: 0x1000,
        data: &ram[..0x1000],
    }]);
    let shoff = elf.len() as u64;
    elf[40..48].copy_from_slice(&shoff.to_le_bytes()); // e_shoff
    elf[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // e_phnum = PN_XNUM
    let mut section_0 = [0u8; 64];
    section_0[44..48].copy_from_slice(&2u32.to_le_bytes()); // sh_info: 2 headers
    elf.extend_from_slice(&section_0);
    let image = Image::elf(&elf[..]).unwrap();
    assert_eq!(image.ram_ranges(), [(BASE, 0x1000)]);

    // Without section headers the count is unknown.
    elf[40..48].copy_from_slice(&0u64.to_le_bytes());
    let e = Image::elf(&elf[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad ELF program headers: Missing ELF section headers for e_phnum overflow"
    );
    // A count past MAX_PROGRAM_HEADERS is refused before anything is read.
    elf[40..48].copy_from_slice(&shoff.to_le_bytes());
    let at = shoff as usize + 44;
    elf[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = Image::elf(&elf[..]).unwrap_err();
    assert!(e.to_string().contains("more than 1048576"), "{e}");
}
