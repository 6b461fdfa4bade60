//! x86_64 handoff: the boot_params "zero page" and its KHO `setup_data` entry.
//!
//! The outgoing kernel writes a zero page for the next one: an e820 memory
//! map, the command line pointer and a `setup_data` chain holding one entry
//! of type 10 whose payload is `kho_data` (FDT and scratch-array locations).
//! The incoming kernel reads the same structures, all of which are
//! untrusted: the chain is bounded, cycle-checked and every length checked.

use kho_abi::x86::{
    E820Entry, KHO_DATA_SIZE, KhoData, SETUP_DATA_HEADER_SIZE, SETUP_KEXEC_KHO, SetupDataHeader,
    boot_params as bp,
};
use kho_abi::{Le32, Le64};
use kho_mem::{PhysAddr, PhysMem, PhysRange};

use crate::{Error, Handover, Result};

/// Most `setup_data` entries a reader follows before calling the chain a cycle.
pub const MAX_SETUP_DATA_ENTRIES: usize = 64;

/// Zero-page fields of the initrd and of booting a Linux bzImage
/// (Documentation/arch/x86/zero-page.rst and boot.rst) that `kho-abi`'s
/// [`bp`] does not list.
pub mod linux_boot {
    /// `ext_ramdisk_image` (u32): high 32 bits of the initrd address.
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    /// `ext_ramdisk_size` (u32): high 32 bits of the initrd size.
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    /// `hdr.loadflags` (u8).
    pub const LOADFLAGS: usize = 0x211;
    /// `hdr.ramdisk_image` (u32): low 32 bits of the initrd address.
    pub const RAMDISK_IMAGE: usize = 0x218;
    /// `hdr.ramdisk_size` (u32): low 32 bits of the initrd size.
    pub const RAMDISK_SIZE: usize = 0x21c;
    /// `loadflags` bit the kernel sets: a bzImage, loaded high.
    pub const LOADED_HIGH: u8 = 1 << 0;
    /// The setup header a loader copies from the kernel image must end
    /// before `edd_mbr_sig_buffer`.
    pub const SETUP_HEADER_END: usize = 0x290;
}

/// One e820 map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    /// The range.
    pub range: PhysRange,
    /// Its e820 type ([`kho_abi::x86::e820`]).
    pub kind: u32,
}

/// What the next kernel needs from its zero page.
#[derive(Clone, Copy, Debug)]
pub struct BootParamsOut<'a> {
    /// The memory map.
    pub memory: &'a [MemoryEntry],
    /// Phys of the NUL-terminated command line, with its length (no NUL).
    pub cmdline: Option<(PhysAddr, u32)>,
    /// Where to put the KHO setup_data entry (48 bytes), and what it says.
    pub kho: Option<(PhysAddr, Handover)>,
    /// Phys of the ACPI RSDP to pass on (`acpi_rsdp_addr`), if known.
    pub acpi_rsdp: Option<PhysAddr>,
    /// The initrd (`ramdisk_image`/`ramdisk_size` and their `ext_` high
    /// halves), if any.
    pub ramdisk: Option<PhysRange>,
    /// When booting a Linux bzImage: its setup header, bytes 0x1f1 up to
    /// 0x202 + the byte at 0x201 of the image, copied to 0x1f1 first as
    /// boot.rst asks. The fields the kernel owns (`version`,
    /// `cmdline_size`, `kernel_alignment`, `init_size`, …) then keep the
    /// image's values, and `loadflags` keeps only `LOADED_HIGH` (no heap,
    /// not quiet). Without it the zero page is the minimal one kho-rs's
    /// own kernels read.
    pub setup_header: Option<&'a [u8]>,
}

/// Write a zero page at `at` (4096 bytes, zeroed first).
pub fn write_boot_params<M: PhysMem>(
    mem: &mut M,
    at: PhysAddr,
    params: &BootParamsOut<'_>,
) -> Result<()> {
    if params.memory.len() > bp::E820_MAX_ENTRIES {
        return Err(Error::TooManyMemoryEntries {
            count: params.memory.len(),
            max: bp::E820_MAX_ENTRIES,
        });
    }
    let field = |off: usize| {
        at.checked_add(off as u64)
            .ok_or(Error::Mem(kho_mem::Error::Overflow {
                addr: at.as_u64(),
                len: bp::SIZE as u64,
            }))
    };
    mem.fill(at, bp::SIZE as u64, 0)?;
    if let Some(hdr) = params.setup_header {
        let max = linux_boot::SETUP_HEADER_END - bp::SETUP_HEADER;
        if hdr.len() > max {
            return Err(Error::SetupHeaderTooLong {
                len: hdr.len(),
                max,
            });
        }
        mem.write(field(bp::SETUP_HEADER)?, hdr)?;
        let loadflags = hdr
            .get(linux_boot::LOADFLAGS - bp::SETUP_HEADER)
            .copied()
            .unwrap_or(0);
        mem.write(
            field(linux_boot::LOADFLAGS)?,
            &[loadflags & linux_boot::LOADED_HIGH],
        )?;
    }
    mem.write(field(bp::BOOT_FLAG)?, &bp::BOOT_FLAG_MAGIC.to_le_bytes())?;
    mem.write(field(bp::HEADER)?, &bp::HEADER_MAGIC.to_le_bytes())?;
    if params.setup_header.is_none() {
        mem.write(field(bp::VERSION)?, &bp::PROTOCOL_VERSION.to_le_bytes())?;
    }
    mem.write(field(bp::TYPE_OF_LOADER)?, &[bp::LOADER_UNDEFINED])?;
    mem.write(field(bp::E820_ENTRIES)?, &[params.memory.len() as u8])?;
    for (i, e) in params.memory.iter().enumerate() {
        let entry = E820Entry {
            addr: Le64::new(e.range.start().as_u64()),
            size: Le64::new(e.range.size()),
            type_: Le32::new(e.kind),
        };
        mem.write_obj(field(bp::E820_TABLE + i * size_of::<E820Entry>())?, &entry)?;
    }
    if let Some((cmdline, len)) = params.cmdline {
        let addr = cmdline.as_u64();
        mem.write(field(bp::CMD_LINE_PTR)?, &(addr as u32).to_le_bytes())?;
        mem.write(
            field(bp::EXT_CMD_LINE_PTR)?,
            &((addr >> 32) as u32).to_le_bytes(),
        )?;
        // A kernel's own setup header states its maximum; keep it.
        if params.setup_header.is_none() {
            mem.write(field(bp::CMDLINE_SIZE)?, &len.to_le_bytes())?;
        }
    }
    if let Some(rd) = params.ramdisk {
        let (addr, size) = (rd.start().as_u64(), rd.size());
        mem.write(
            field(linux_boot::RAMDISK_IMAGE)?,
            &(addr as u32).to_le_bytes(),
        )?;
        mem.write(
            field(linux_boot::RAMDISK_SIZE)?,
            &(size as u32).to_le_bytes(),
        )?;
        mem.write(
            field(linux_boot::EXT_RAMDISK_IMAGE)?,
            &((addr >> 32) as u32).to_le_bytes(),
        )?;
        mem.write(
            field(linux_boot::EXT_RAMDISK_SIZE)?,
            &((size >> 32) as u32).to_le_bytes(),
        )?;
    }
    if let Some(rsdp) = params.acpi_rsdp {
        mem.write_u64(field(bp::ACPI_RSDP_ADDR)?, rsdp.as_u64())?;
    }
    if let Some((entry, handover)) = params.kho {
        let header = SetupDataHeader {
            next: Le64::new(0),
            type_: Le32::new(SETUP_KEXEC_KHO),
            len: Le32::new(KHO_DATA_SIZE as u32),
        };
        mem.write_obj(entry, &header)?;
        let payload = entry
            .checked_add(SETUP_DATA_HEADER_SIZE as u64)
            .ok_or(Error::Mem(kho_mem::Error::Overflow {
                addr: entry.as_u64(),
                len: 48,
            }))?;
        mem.write_obj(payload, &handover.to_kho_data())?;
        mem.write_u64(field(bp::SETUP_DATA)?, entry.as_u64())?;
    }
    Ok(())
}

/// What a kernel learns from the zero page it was booted with.
#[derive(Clone, Debug)]
pub struct BootParamsIn {
    entries: [MemoryEntry; bp::E820_MAX_ENTRIES],
    count: usize,
    /// Phys of the command line, if any.
    pub cmdline: Option<PhysAddr>,
    /// Phys of the ACPI RSDP (`acpi_rsdp_addr`), if set.
    pub acpi_rsdp: Option<PhysAddr>,
    /// The initrd (`ramdisk_image`/`ramdisk_size` with their `ext_` high
    /// halves), if its size is not 0. Untrusted: read it over RAM only.
    pub ramdisk: Option<PhysRange>,
    /// Phys of the first `setup_data` entry (0: none). Follow it with
    /// [`find_kho`] over a [`PhysMem`] bounded by the memory map just read,
    /// so an untrusted chain cannot point the reader at MMIO.
    pub setup_data: u64,
}

impl BootParamsIn {
    /// The e820 entries, in table order.
    pub fn memory(&self) -> &[MemoryEntry] {
        &self.entries[..self.count]
    }
}

/// Read and validate the zero page at `at`: header magic, memory map,
/// command line pointer and the head of the `setup_data` chain.
pub fn read_boot_params<M: PhysMem>(mem: &M, at: PhysAddr) -> Result<BootParamsIn> {
    match read_boot_params_lenient(mem, at)? {
        (_, Some(defect)) => Err(defect),
        (params, None) => Ok(params),
    }
}

/// [`read_boot_params`] for a kernel that must boot whatever it is given:
/// a wrong header magic or an `e820_entries` count above the table's 128
/// slots (read as 128) is returned as the second value instead of failing.
/// The memory map is then still good enough for a cold boot (Linux's own
/// 64-bit entry checks neither), but nothing else on the page should be
/// trusted: not the `setup_data` chain, so not a KHO handover.
pub fn read_boot_params_lenient<M: PhysMem>(
    mem: &M,
    at: PhysAddr,
) -> Result<(BootParamsIn, Option<Error>)> {
    let mut page = [0u8; bp::SIZE];
    mem.read(at, &mut page)?;
    let u16_at = |o: usize| u16::from_le_bytes([page[o], page[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([page[o], page[o + 1], page[o + 2], page[o + 3]]);
    let bad_magic =
        u16_at(bp::BOOT_FLAG) != bp::BOOT_FLAG_MAGIC || u32_at(bp::HEADER) != bp::HEADER_MAGIC;
    // A page that fails further checks too is not a zero page at all.
    let or_magic = |e: Error| {
        if bad_magic {
            Error::BadBootParams { at }
        } else {
            e
        }
    };
    let mut defect = bad_magic.then_some(Error::BadBootParams { at });
    let mut count = usize::from(page[bp::E820_ENTRIES]);
    if count > bp::E820_MAX_ENTRIES {
        defect.get_or_insert(Error::TooManyMemoryEntries {
            count,
            max: bp::E820_MAX_ENTRIES,
        });
        count = bp::E820_MAX_ENTRIES;
    }
    let empty = MemoryEntry {
        range: PhysRange::try_new(PhysAddr::ZERO, 0)?,
        kind: 0,
    };
    let mut entries = [empty; bp::E820_MAX_ENTRIES];
    for (i, slot) in entries.iter_mut().take(count).enumerate() {
        let o = bp::E820_TABLE + i * size_of::<E820Entry>();
        let addr = u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let size = u64::from(u32_at(o + 8)) | (u64::from(u32_at(o + 12)) << 32);
        let range = PhysRange::try_new(PhysAddr::new(addr), size)
            .map_err(|_| or_magic(Error::BadMemoryEntry { index: i }))?;
        *slot = MemoryEntry {
            range,
            kind: u32_at(o + 16),
        };
    }
    let cmd = u64::from(u32_at(bp::CMD_LINE_PTR)) | (u64::from(u32_at(bp::EXT_CMD_LINE_PTR)) << 32);
    let setup_data =
        u64::from(u32_at(bp::SETUP_DATA)) | (u64::from(u32_at(bp::SETUP_DATA + 4)) << 32);
    let rsdp =
        u64::from(u32_at(bp::ACPI_RSDP_ADDR)) | (u64::from(u32_at(bp::ACPI_RSDP_ADDR + 4)) << 32);
    let rd_addr = u64::from(u32_at(linux_boot::RAMDISK_IMAGE))
        | (u64::from(u32_at(linux_boot::EXT_RAMDISK_IMAGE)) << 32);
    let rd_size = u64::from(u32_at(linux_boot::RAMDISK_SIZE))
        | (u64::from(u32_at(linux_boot::EXT_RAMDISK_SIZE)) << 32);
    let ramdisk = match rd_size {
        0 => None,
        size => Some(
            PhysRange::try_new(PhysAddr::new(rd_addr), size).map_err(|_| {
                or_magic(Error::BadInitrd {
                    addr: rd_addr,
                    size,
                })
            })?,
        ),
    };
    let params = BootParamsIn {
        entries,
        count,
        cmdline: (cmd != 0).then_some(PhysAddr::new(cmd)),
        acpi_rsdp: (rsdp != 0).then_some(PhysAddr::new(rsdp)),
        ramdisk,
        setup_data,
    };
    Ok((params, defect))
}

/// The first KHO entry (type 10) of a `setup_data` chain: where it is and
/// the payload length its header claims.
///
/// The length tells the layouts apart: 32 (or more) is the `kho_data` of
/// kho-v2 and later ([`KhoEntry::read_handover`]); 48 is also the length
/// of the 2024 design's `kho_data` (`kho_abi::rfc2024::KhoData`), which a
/// reader of that design reads at [`KhoEntry::payload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KhoEntry {
    /// Physical address of the entry (its header).
    pub at: PhysAddr,
    /// The header's `len`: bytes of payload after the 16-byte header.
    pub len: u32,
}

impl KhoEntry {
    /// Physical address of the payload, right after the header.
    pub fn payload(&self) -> Result<PhysAddr> {
        self.at
            .checked_add(SETUP_DATA_HEADER_SIZE as u64)
            .ok_or(Error::BadSetupData {
                at: self.at,
                reason: "setup_data entry wraps",
            })
    }

    /// Read the payload as kho-v2's `kho_data`, as [`find_kho`] does: `len`
    /// must be at least 32, and only the first 32 bytes are read.
    pub fn read_handover<M: PhysMem>(&self, mem: &M) -> Result<Handover> {
        let at = self.at;
        // Linux reads the first 32 bytes of a longer payload (a newer
        // kernel may append fields); a shorter one would make it read
        // past the entry, so it is refused here.
        if (self.len as usize) < KHO_DATA_SIZE {
            return Err(Error::BadSetupData {
                at,
                reason: "KHO setup_data shorter than 32 bytes",
            });
        }
        let payload = self.payload()?;
        let data: KhoData = mem.read_obj(payload).map_err(|_| Error::BadSetupData {
            at,
            reason: "kho_data outside RAM",
        })?;
        Ok(Handover::from_kho_data(&data))
    }
}

/// Follow a `setup_data` chain from `head` to its first KHO entry (type
/// 10), without reading the payload.
///
/// A malformed chain is [`Error::BadSetupData`]: a cycle, an entry outside
/// RAM, or more than [`MAX_SETUP_DATA_ENTRIES`] entries before the KHO
/// one. `Ok(None)`: the chain has no KHO entry.
pub fn find_kho_entry<M: PhysMem>(mem: &M, head: u64) -> Result<Option<KhoEntry>> {
    let mut next = head;
    let mut seen = [0u64; MAX_SETUP_DATA_ENTRIES];
    for index in 0..MAX_SETUP_DATA_ENTRIES {
        if next == 0 {
            return Ok(None);
        }
        if seen[..index].contains(&next) {
            return Err(Error::BadSetupData {
                at: PhysAddr::new(next),
                reason: "setup_data chain has a cycle",
            });
        }
        seen[index] = next;
        let at = PhysAddr::new(next);
        let header: SetupDataHeader = mem.read_obj(at).map_err(|_| Error::BadSetupData {
            at,
            reason: "setup_data entry outside RAM",
        })?;
        if header.type_.get() == SETUP_KEXEC_KHO {
            return Ok(Some(KhoEntry {
                at,
                len: header.len.get(),
            }));
        }
        next = header.next.get();
    }
    Err(Error::BadSetupData {
        at: PhysAddr::new(next),
        reason: "setup_data chain longer than 64 entries",
    })
}

/// Follow a `setup_data` chain from `head` and return the KHO entry's payload.
///
/// A malformed chain or KHO entry is [`Error::BadSetupData`]: the caller
/// reports it and boots cold.
///
/// Entries must be RAM; the walk stops after [`MAX_SETUP_DATA_ENTRIES`]
/// (a longer chain is refused as too long); a type-10 entry must have
/// `len >= 32` (only the first 32 bytes are read). The first KHO entry wins.
/// It is [`find_kho_entry`] then [`KhoEntry::read_handover`].
pub fn find_kho<M: PhysMem>(mem: &M, head: u64) -> Result<Option<Handover>> {
    find_kho_entry(mem, head)?
        .map(|entry| entry.read_handover(mem))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::HostMem;

    fn range(a: u64, s: u64) -> PhysRange {
        PhysRange::try_new(PhysAddr::new(a), s).unwrap()
    }

    fn mem() -> HostMem {
        HostMem::with_ram(&[range(0, 0x9f000), range(0x10_0000, 0x3f0_0000)]).unwrap()
    }

    fn handover() -> Handover {
        Handover {
            fdt: PhysAddr::new(0x20_0000),
            fdt_size: 4096,
            scratch: PhysAddr::new(0x21_0000),
            scratch_len: 48,
        }
    }

    #[test]
    fn zero_page_round_trip() {
        let mut m = mem();
        let memory = [
            MemoryEntry {
                range: range(0, 0x9fc00),
                kind: 1,
            },
            MemoryEntry {
                range: range(0x10_0000, 0x3f0_0000),
                kind: 1,
            },
        ];
        let params = BootParamsOut {
            memory: &memory,
            cmdline: Some((PhysAddr::new(0x8000), 20)),
            kho: Some((PhysAddr::new(0x9000), handover())),
            acpi_rsdp: Some(PhysAddr::new(0xf_5a40)),
            ramdisk: None,
            setup_header: None,
        };
        write_boot_params(&mut m, PhysAddr::new(0x7000), &params).unwrap();
        let back = read_boot_params(&m, PhysAddr::new(0x7000)).unwrap();
        assert_eq!(back.memory(), &memory);
        assert_eq!(back.cmdline, Some(PhysAddr::new(0x8000)));
        assert_eq!(back.setup_data, 0x9000);
        assert_eq!(back.acpi_rsdp, Some(PhysAddr::new(0xf_5a40)));
        assert_eq!(back.ramdisk, None);
        assert_eq!(find_kho(&m, back.setup_data).unwrap(), Some(handover()));
    }

    #[test]
    fn zero_page_bytes_at_linux_offsets() {
        let mut m = mem();
        let memory = [MemoryEntry {
            range: range(0x10_0000, 0x100_0000),
            kind: 1,
        }];
        let params = BootParamsOut {
            memory: &memory,
            cmdline: Some((PhysAddr::new(0x1_2345_6000), 10)),
            kho: Some((PhysAddr::new(0x9000), handover())),
            acpi_rsdp: None,
            ramdisk: None,
            setup_header: None,
        };
        write_boot_params(&mut m, PhysAddr::new(0x7000), &params).unwrap();
        let mut p = [0u8; 4096];
        m.read(PhysAddr::new(0x7000), &mut p).unwrap();
        assert_eq!(&p[0x1fe..0x200], &[0x55, 0xaa]);
        assert_eq!(&p[0x202..0x206], b"HdrS");
        assert_eq!(p[0x1e8], 1);
        assert_eq!(&p[0x228..0x22c], &0x2345_6000u32.to_le_bytes());
        assert_eq!(&p[0x0c8..0x0cc], &1u32.to_le_bytes());
        assert_eq!(&p[0x250..0x258], &0x9000u64.to_le_bytes());
        assert_eq!(&p[0x2d0..0x2d8], &0x10_0000u64.to_le_bytes());
        assert_eq!(&p[0x2e0..0x2e4], &1u32.to_le_bytes());
        let mut sd = [0u8; 48];
        m.read(PhysAddr::new(0x9000), &mut sd).unwrap();
        assert_eq!(&sd[8..16], &[10, 0, 0, 0, 32, 0, 0, 0]);
        assert_eq!(&sd[16..24], &0x20_0000u64.to_le_bytes());
        assert_eq!(&sd[40..48], &48u64.to_le_bytes());
    }

    #[test]
    fn ramdisk_round_trip_at_zero_page_rst_offsets() {
        let mut m = mem();
        let rd = range(0x1_2345_6000, 0x1_0000_0010);
        let params = BootParamsOut {
            memory: &[],
            cmdline: None,
            kho: None,
            acpi_rsdp: None,
            ramdisk: Some(rd),
            setup_header: None,
        };
        write_boot_params(&mut m, PhysAddr::new(0x7000), &params).unwrap();
        let mut p = [0u8; 4096];
        m.read(PhysAddr::new(0x7000), &mut p).unwrap();
        assert_eq!(&p[0x218..0x21c], &0x2345_6000u32.to_le_bytes());
        assert_eq!(&p[0x21c..0x220], &0x10u32.to_le_bytes());
        assert_eq!(&p[0x0c0..0x0c4], &1u32.to_le_bytes());
        assert_eq!(&p[0x0c4..0x0c8], &1u32.to_le_bytes());
        let back = read_boot_params(&m, PhysAddr::new(0x7000)).unwrap();
        assert_eq!(back.ramdisk, Some(rd));
        // A ramdisk that wraps the address space is a named error.
        m.write(PhysAddr::new(0x7000 + 0x0c0), &u32::MAX.to_le_bytes())
            .unwrap();
        m.write(PhysAddr::new(0x7000 + 0x0c4), &u32::MAX.to_le_bytes())
            .unwrap();
        assert!(matches!(
            read_boot_params(&m, PhysAddr::new(0x7000)),
            Err(Error::BadInitrd { .. })
        ));
    }

    #[test]
    fn a_linux_setup_header_is_copied_and_its_fields_kept() {
        let mut m = mem();
        // A setup header as in a bzImage: 0x1f1 .. 0x268.
        let mut hdr = [0u8; 0x268 - 0x1f1];
        let at = |off: usize| off - 0x1f1;
        hdr[at(0x1f1)] = 0x1b;
        hdr[at(0x1fe)..at(0x200)].copy_from_slice(&0xaa55u16.to_le_bytes());
        hdr[at(0x202)..at(0x206)].copy_from_slice(b"HdrS");
        hdr[at(0x206)..at(0x208)].copy_from_slice(&0x0210u16.to_le_bytes());
        hdr[at(0x211)] = 0x81; // LOADED_HIGH | CAN_USE_HEAP
        hdr[at(0x230)..at(0x234)].copy_from_slice(&0x20_0000u32.to_le_bytes());
        hdr[at(0x238)..at(0x23c)].copy_from_slice(&2047u32.to_le_bytes());
        hdr[at(0x260)..at(0x264)].copy_from_slice(&0x400_0000u32.to_le_bytes());
        let params = BootParamsOut {
            memory: &[],
            cmdline: Some((PhysAddr::new(0x8000), 20)),
            kho: Some((PhysAddr::new(0x9000), handover())),
            acpi_rsdp: None,
            ramdisk: None,
            setup_header: Some(&hdr),
        };
        write_boot_params(&mut m, PhysAddr::new(0x7000), &params).unwrap();
        let mut p = [0u8; 4096];
        m.read(PhysAddr::new(0x7000), &mut p).unwrap();
        assert_eq!(p[0x1f1], 0x1b);
        assert_eq!(&p[0x206..0x208], &0x0210u16.to_le_bytes());
        assert_eq!(p[0x210], 0xff);
        assert_eq!(p[0x211], 0x01);
        assert_eq!(&p[0x230..0x234], &0x20_0000u32.to_le_bytes());
        assert_eq!(&p[0x238..0x23c], &2047u32.to_le_bytes());
        assert_eq!(&p[0x260..0x264], &0x400_0000u32.to_le_bytes());
        assert_eq!(&p[0x228..0x22c], &0x8000u32.to_le_bytes());
        assert_eq!(&p[0x250..0x258], &0x9000u64.to_le_bytes());
        let back = read_boot_params(&m, PhysAddr::new(0x7000)).unwrap();
        assert_eq!(find_kho(&m, back.setup_data).unwrap(), Some(handover()));
        // Past 0x290 it would clobber edd_mbr_sig_buffer.
        let long = [0u8; 0x290 - 0x1f1 + 1];
        let params = BootParamsOut {
            setup_header: Some(&long),
            ..params
        };
        assert_eq!(
            write_boot_params(&mut m, PhysAddr::new(0x7000), &params),
            Err(Error::SetupHeaderTooLong {
                len: 0xa0,
                max: 0x9f
            })
        );
    }

    fn setup_entry(m: &mut HostMem, at: u64, next: u64, type_: u32, len: u32) {
        let h = SetupDataHeader {
            next: Le64::new(next),
            type_: Le32::new(type_),
            len: Le32::new(len),
        };
        m.write_obj(PhysAddr::new(at), &h).unwrap();
    }

    #[test]
    fn kho_entry_found_after_other_entries() {
        let mut m = mem();
        setup_entry(&mut m, 0x5000, 0x6000, 1, 0);
        setup_entry(&mut m, 0x6000, 0, SETUP_KEXEC_KHO, 32);
        m.write_obj(PhysAddr::new(0x6010), &handover().to_kho_data())
            .unwrap();
        assert_eq!(find_kho(&m, 0x5000).unwrap(), Some(handover()));
        assert_eq!(find_kho(&m, 0).unwrap(), None);
        // A longer payload (fields a newer kernel appended) is read as its
        // first 32 bytes, as Linux reads it.
        setup_entry(&mut m, 0x6000, 0, SETUP_KEXEC_KHO, 48);
        assert_eq!(find_kho(&m, 0x5000).unwrap(), Some(handover()));
    }

    #[test]
    fn malformed_chains_are_named_errors() {
        let mut m = mem();
        setup_entry(&mut m, 0x5000, 0x6000, 1, 0);
        setup_entry(&mut m, 0x6000, 0x5000, 1, 0);
        assert!(
            matches!(find_kho(&m, 0x5000), Err(Error::BadSetupData { reason, .. }) if reason.contains("cycle"))
        );
        setup_entry(&mut m, 0x6000, 0, SETUP_KEXEC_KHO, 16);
        assert!(
            matches!(find_kho(&m, 0x5000), Err(Error::BadSetupData { reason, .. }) if reason.contains("shorter than 32"))
        );
        setup_entry(&mut m, 0x6000, 0xa0000, 1, 0);
        assert!(
            matches!(find_kho(&m, 0x5000), Err(Error::BadSetupData { reason, .. }) if reason.contains("outside RAM"))
        );
        // A long acyclic chain is cut off too.
        for i in 0..70u64 {
            setup_entry(&mut m, 0x10_0000 + i * 16, 0x10_0000 + (i + 1) * 16, 1, 0);
        }
        assert!(
            matches!(find_kho(&m, 0x10_0000), Err(Error::BadSetupData { reason, .. }) if reason.contains("longer"))
        );
    }

    #[test]
    fn find_kho_entry_names_the_first_kho_entry_and_its_len() {
        let mut m = mem();
        setup_entry(&mut m, 0x5000, 0x6000, 1, 0);
        setup_entry(&mut m, 0x6000, 0x7000, SETUP_KEXEC_KHO, 48);
        setup_entry(&mut m, 0x7000, 0, SETUP_KEXEC_KHO, 32);
        let entry = find_kho_entry(&m, 0x5000).unwrap().unwrap();
        assert_eq!(
            entry,
            KhoEntry {
                at: PhysAddr::new(0x6000),
                len: 48
            }
        );
        assert_eq!(entry.payload().unwrap(), PhysAddr::new(0x6010));
        assert_eq!(find_kho_entry(&m, 0).unwrap(), None);
        // Not a KHO entry anywhere: none; the payload is never read, so a
        // short entry is found as it is.
        setup_entry(&mut m, 0x6000, 0, 1, 0);
        assert_eq!(find_kho_entry(&m, 0x5000).unwrap(), None);
        setup_entry(&mut m, 0x6000, 0, SETUP_KEXEC_KHO, 16);
        let short = find_kho_entry(&m, 0x5000).unwrap().unwrap();
        assert_eq!(short.len, 16);
        assert!(matches!(
            short.read_handover(&m),
            Err(Error::BadSetupData { reason, .. }) if reason.contains("shorter than 32")
        ));
        // The same chain errors as find_kho.
        setup_entry(&mut m, 0x6000, 0x5000, 1, 0);
        assert!(matches!(
            find_kho_entry(&m, 0x5000),
            Err(Error::BadSetupData { reason, .. }) if reason.contains("cycle")
        ));
        setup_entry(&mut m, 0x6000, 0xa0000, 1, 0);
        assert!(matches!(
            find_kho_entry(&m, 0x5000),
            Err(Error::BadSetupData { reason, .. }) if reason.contains("outside RAM")
        ));
        // An entry at the very top of the address space wraps.
        let top = KhoEntry {
            at: PhysAddr::new(u64::MAX - 7),
            len: 48,
        };
        assert!(matches!(
            top.payload(),
            Err(Error::BadSetupData { reason, .. }) if reason.contains("wraps")
        ));
    }

    #[test]
    fn find_kho_reads_the_payload_of_the_entry_find_kho_entry_names() {
        let mut m = mem();
        setup_entry(&mut m, 0x6000, 0, SETUP_KEXEC_KHO, 32);
        m.write_obj(PhysAddr::new(0x6010), &handover().to_kho_data())
            .unwrap();
        let entry = find_kho_entry(&m, 0x6000).unwrap().unwrap();
        assert_eq!(entry.read_handover(&m).unwrap(), handover());
        assert_eq!(find_kho(&m, 0x6000).unwrap(), Some(handover()));
        // A payload outside RAM.
        setup_entry(&mut m, 0x9_e000 + 0xff0, 0, SETUP_KEXEC_KHO, 32);
        assert!(matches!(
            find_kho(&m, 0x9_eff0),
            Err(Error::BadSetupData { reason, .. }) if reason.contains("kho_data outside RAM")
        ));
    }

    #[test]
    fn bad_zero_page_header() {
        let m = mem();
        assert!(matches!(
            read_boot_params(&m, PhysAddr::new(0x7000)),
            Err(Error::BadBootParams { .. })
        ));
        // The lenient reader still gives the (empty) memory map, and says
        // why nothing else on the page is to be trusted.
        let (params, defect) = read_boot_params_lenient(&m, PhysAddr::new(0x7000)).unwrap();
        assert_eq!(params.memory().len(), 0);
        assert!(matches!(defect, Some(Error::BadBootParams { .. })));
    }

    #[test]
    fn too_many_e820_entries_read_as_the_table_holds() {
        let mut m = mem();
        let at = PhysAddr::new(0x7000);
        let ram = [MemoryEntry {
            range: PhysRange::try_new(PhysAddr::new(0x10_0000), 0x100_0000).unwrap(),
            kind: 1,
        }];
        let out = BootParamsOut {
            memory: &ram,
            cmdline: None,
            kho: None,
            acpi_rsdp: None,
            ramdisk: None,
            setup_header: None,
        };
        write_boot_params(&mut m, at, &out).unwrap();
        m.write(at.checked_add(bp::E820_ENTRIES as u64).unwrap(), &[200])
            .unwrap();
        assert_eq!(
            read_boot_params(&m, at).unwrap_err(),
            Error::TooManyMemoryEntries {
                count: 200,
                max: 128
            }
        );
        let (params, defect) = read_boot_params_lenient(&m, at).unwrap();
        assert_eq!(params.memory().len(), 128);
        assert_eq!(params.memory()[0], ram[0]);
        assert_eq!(
            defect,
            Some(Error::TooManyMemoryEntries {
                count: 200,
                max: 128
            })
        );
    }
}
