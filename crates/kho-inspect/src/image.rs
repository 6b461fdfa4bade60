//! A guest physical-memory image as a read-only [`PhysMem`]: the ELF core
//! QEMU's `dump-guest-memory` writes, or a raw file whose byte 0 is at a
//! given physical address.
//!
//! The storage is anything with positioned reads ([`ReadAt`]: a byte slice
//! here, a file in a host tool). Nothing is read up front but the ELF
//! header and program headers: every access is one positioned read, so a
//! 512 MiB dump costs what the decoder touches. RAM is what the image
//! holds: an address is RAM when a loaded segment covers it (adjacent
//! segments join). A segment whose `p_filesz` is below its `p_memsz` reads
//! as zeros past its file bytes, as an ELF loader would fill it; that fill
//! is never read from the storage, and `--find` skips it
//! ([`Image::fill_at`]). Allocation fails: the image is evidence, not a
//! machine.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use kho_mem::{Order, PhysAddr, PhysMem};
use object::Endianness;
use object::elf::{self, FileHeader64, PN_XNUM, ProgramHeader64, SectionHeader64};
use object::read::elf::{FileHeader as _, ProgramHeader as _, SectionHeader as _};
use serde::Serialize;

use crate::{Error, Result};

/// Positioned reads of the storage an image lives in: all a [`Image`]
/// needs, so a large vmcore is read where the decoder looks and never
/// whole.
pub trait ReadAt {
    /// Fill `buf` with the bytes from `offset` on; an error when any of
    /// them is missing or unreadable ([`Error::Read`]).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The storage's length in bytes.
    fn len(&self) -> u64;

    /// Whether it holds no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?));
        match bytes {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(Error::Read {
                offset,
                len: buf.len() as u64,
            }),
        }
    }

    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl<R: ReadAt + ?Sized> ReadAt for &R {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        (**self).len()
    }
}

/// How the image is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An ELF core: `PT_LOAD` segments at their `p_paddr`.
    ElfCore,
    /// A raw file: byte 0 at the base address.
    Raw,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::ElfCore => "ELF core",
            Format::Raw => "raw",
        })
    }
}

/// One loaded range of physical memory and where its bytes are in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// First physical address.
    pub paddr: u64,
    /// Bytes of physical memory the segment covers.
    pub memsz: u64,
    /// File offset of its first byte.
    pub offset: u64,
    /// Bytes present in the file (the rest reads as zeros).
    pub filesz: u64,
}

impl Segment {
    /// One past the last physical address (checked when the image is
    /// built: `paddr + memsz` does not overflow).
    fn end(&self) -> u64 {
        self.paddr.saturating_add(self.memsz)
    }

    /// One past the last physical address backed by file bytes.
    fn file_end(&self) -> u64 {
        self.paddr.saturating_add(self.filesz)
    }
}

/// What [`Image::fill_at`] says about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Bytes from the file, up to (not including) the address given.
    File(u64),
    /// Zeros past a segment's `p_filesz`, up to the address given: never
    /// read from the storage.
    Zero(u64),
}

/// The most program headers read (56 bytes each): far more than any dump
/// (QEMU writes one per RAM block, kdump one per memory range), and a bound
/// on what a corrupt header can make the reader allocate.
pub const MAX_PROGRAM_HEADERS: u32 = 1 << 20;

/// A read-only guest memory image over storage `R`.
#[derive(Debug)]
pub struct Image<R> {
    storage: R,
    format: Format,
    /// Sorted by `paddr`, disjoint, none empty.
    segments: Vec<Segment>,
}

/// The ELF magic, to tell an ELF core from a raw file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// An ELF64 file header's size.
const EHDR_SIZE: usize = size_of::<FileHeader64<Endianness>>();

impl<R: ReadAt> Image<R> {
    /// A raw image: the storage's byte 0 is at physical `base`.
    pub fn raw(storage: R, base: u64) -> Result<Image<R>> {
        let len = storage.len();
        if len == 0 {
            return Err(Error::Empty);
        }
        if base.checked_add(len).is_none() {
            return Err(Error::RawPastEnd { base, len });
        }
        Ok(Image {
            storage,
            format: Format::Raw,
            segments: vec![Segment {
                paddr: base,
                memsz: len,
                offset: 0,
                filesz: len,
            }],
        })
    }

    /// An ELF core: its `PT_LOAD` segments at their `p_paddr`.
    pub fn elf(storage: R) -> Result<Image<R>> {
        let len = storage.len();
        let mut magic = [0u8; 4];
        if storage.read_at(0, &mut magic).is_err() || &magic != ELF_MAGIC {
            return Err(Error::NotElf);
        }
        let mut head = [0u8; EHDR_SIZE];
        let have = len.min(EHDR_SIZE as u64) as usize;
        let head = head.get_mut(..have).unwrap_or_default();
        storage.read_at(0, head)?;
        let header = FileHeader64::<Endianness>::parse(&*head).map_err(|e| Error::ElfHeader {
            reason: e.to_string(),
        })?;
        let endian = header.endian().map_err(|e| Error::ElfByteOrder {
            reason: e.to_string(),
        })?;
        let table = program_headers(&storage, header, endian)?;
        let headers = object::ReadRef::read_slice_at::<ProgramHeader64<Endianness>>(
            table.as_slice(),
            0,
            table.len() / PHDR_SIZE,
        )
        .map_err(|_| bad_headers("Invalid ELF program header size or alignment"))?;
        let mut segments = Vec::new();
        for (index, ph) in headers.iter().enumerate() {
            if ph.p_type(endian) != elf::PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let seg = Segment {
                paddr: ph.p_paddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
            };
            let paddr = seg.paddr;
            if seg.filesz > seg.memsz {
                return Err(Error::FileSizeAboveMemSize { index, paddr });
            }
            if seg.paddr.checked_add(seg.memsz).is_none() {
                return Err(Error::SegmentPastEnd { index, paddr });
            }
            if seg
                .offset
                .checked_add(seg.filesz)
                .is_none_or(|end| end > len)
            {
                return Err(Error::SegmentPastFile {
                    index,
                    paddr,
                    filesz: seg.filesz,
                    offset: seg.offset,
                    file_len: len,
                });
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            return Err(Error::NoLoadSegment);
        }
        segments.sort_by_key(|s| s.paddr);
        for pair in segments.windows(2) {
            if let [a, b] = pair
                && a.end() > b.paddr
            {
                return Err(Error::SegmentsOverlap {
                    first: a.paddr,
                    second: b.paddr,
                });
            }
        }
        Ok(Image {
            storage,
            format: Format::ElfCore,
            segments,
        })
    }

    /// The storage this image reads.
    pub fn storage(&self) -> &R {
        &self.storage
    }

    /// ELF core or raw.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The loaded ranges, by address.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The RAM the image holds as (start, length) ranges, by address, with
    /// adjacent segments joined (what `--find` scans).
    pub fn ram_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seg in &self.segments {
            match ranges.last_mut() {
                // Sorted and disjoint: `start + len` cannot overflow (each
                // segment's end was checked when it was built).
                Some((start, len)) if start.saturating_add(*len) == seg.paddr => {
                    *len = len.saturating_add(seg.memsz);
                }
                _ => ranges.push((seg.paddr, seg.memsz)),
            }
        }
        ranges
    }

    /// Where the bytes at `addr` come from and how far that goes (`None`:
    /// not in the image): the scan of `--find` skips the zero fill past a
    /// segment's `p_filesz` instead of reading it, so its cost follows the
    /// file, not `p_memsz`.
    pub fn fill_at(&self, addr: u64) -> Option<Fill> {
        let seg = self.segment(addr)?;
        let file_end = seg.file_end();
        Some(if addr < file_end {
            Fill::File(file_end)
        } else {
            Fill::Zero(seg.end())
        })
    }

    /// The segment holding `addr`.
    fn segment(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.paddr <= addr);
        self.segments
            .get(i.checked_sub(1)?)
            .filter(|s| addr < s.end())
    }

    /// Call `f(segment, address, length)` for each piece of `[addr, addr +
    /// len)`, one per segment, in order; `false` (having stopped) as soon as
    /// a byte of it is not in the image or `f` fails.
    fn for_each_piece(
        &self,
        addr: u64,
        len: u64,
        mut f: impl FnMut(&Segment, u64, u64) -> bool,
    ) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let mut at = addr;
        while at < end {
            let Some(seg) = self.segment(at) else {
                return false;
            };
            // `at` is inside the segment: below its end.
            let n = (seg.end() - at).min(end - at);
            if !f(seg, at, n) {
                return false;
            }
            at += n;
        }
        true
    }
}

/// An ELF64 program header's size.
const PHDR_SIZE: usize = size_of::<ProgramHeader64<Endianness>>();

fn bad_headers(reason: &str) -> Error {
    Error::ProgramHeaders {
        reason: reason.into(),
    }
}

/// The program header table's bytes, read as `object` would read them from
/// the whole file (its checks and messages), but with one positioned read.
fn program_headers<R: ReadAt>(
    storage: &R,
    header: &FileHeader64<Endianness>,
    endian: Endianness,
) -> Result<Vec<u8>> {
    let phoff = header.e_phoff(endian);
    if phoff == 0 {
        return Ok(Vec::new());
    }
    let phnum = match header.e_phnum(endian) {
        n if n < PN_XNUM => u32::from(n),
        // The real count is in section header 0's sh_info.
        _ => {
            let shoff = header.e_shoff(endian);
            if shoff == 0 {
                return Err(bad_headers(
                    "Missing ELF section headers for e_phnum overflow",
                ));
            }
            if usize::from(header.e_shentsize(endian)) != size_of::<SectionHeader64<Endianness>>() {
                return Err(bad_headers("Invalid ELF section header entry size"));
            }
            let mut bytes = [0u8; size_of::<SectionHeader64<Endianness>>()];
            storage
                .read_at(shoff, &mut bytes)
                .map_err(|_| bad_headers("Invalid ELF section header offset or size"))?;
            let section_0 =
                object::ReadRef::read_at::<SectionHeader64<Endianness>>(bytes.as_slice(), 0)
                    .map_err(|_| bad_headers("Invalid ELF section header offset or size"))?;
            section_0.sh_info(endian)
        }
    };
    if phnum == 0 {
        return Ok(Vec::new());
    }
    if usize::from(header.e_phentsize(endian)) != PHDR_SIZE {
        return Err(bad_headers("Invalid ELF program header entry size"));
    }
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(Error::ProgramHeaders {
            reason: alloc::format!("{phnum} program headers, more than {MAX_PROGRAM_HEADERS}"),
        });
    }
    // At most MAX_PROGRAM_HEADERS × 56 bytes, and only if the file holds them.
    let size = phnum as usize * PHDR_SIZE;
    if phoff
        .checked_add(size as u64)
        .is_none_or(|end| end > storage.len())
    {
        return Err(bad_headers("Invalid ELF program header size or alignment"));
    }
    let mut table = vec![0u8; size];
    storage
        .read_at(phoff, &mut table)
        .map_err(|_| bad_headers("Invalid ELF program header size or alignment"))?;
    Ok(table)
}

impl<R: ReadAt> PhysMem for Image<R> {
    /// Reads what the image holds; a storage error reads as "not RAM" (the
    /// trait's only way to refuse), so a failing disk never panics a walk.
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        let not_ram = kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len: buf.len() as u64,
        };
        let mut done = 0usize;
        let complete = self.for_each_piece(addr.as_u64(), buf.len() as u64, |seg, at, n| {
            // `n` is at most what is left of `buf`.
            let Some(out) = buf.get_mut(done..done.saturating_add(n as usize)) else {
                return false;
            };
            done += out.len();
            let rel = at - seg.paddr;
            // File bytes first, then the zero tail past p_filesz.
            let in_file = seg.filesz.saturating_sub(rel).min(n) as usize;
            let (file_part, zero_part) = out.split_at_mut(in_file);
            zero_part.fill(0);
            // `rel < filesz` when there are file bytes: within the checked
            // `offset + filesz`.
            file_part.is_empty()
                || self
                    .storage
                    .read_at(seg.offset.saturating_add(rel), file_part)
                    .is_ok()
        });
        if complete { Ok(()) } else { Err(not_ram) }
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        // A read-only image: no byte of it can be written.
        Err(kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len: data.len() as u64,
        })
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        if len == 0 {
            return self.segment(addr.as_u64()).is_some();
        }
        self.for_each_piece(addr.as_u64(), len, |_, _, _| true)
    }

    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        Err(kho_mem::Error::OutOfMemory { order: order.get() })
    }

    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> kho_mem::Result<()> {
        Err(kho_mem::Error::NotAllocated {
            addr: addr.as_u64(),
            order: order.get(),
        })
    }

    /// One read for the whole run of words (the default reads 512 bytes at
    /// a time), so a radix leaf is one positioned read.
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> kho_mem::Result<()> {
        let mut bytes = vec![0u8; out.len().saturating_mul(8)];
        self.read(addr, &mut bytes)?;
        for (w, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_what_they_hold_and_refuse_the_rest() {
        let bytes: &[u8] = &[1, 2, 3, 4];
        let mut two = [0u8; 2];
        assert_eq!(bytes.read_at(2, &mut two), Ok(()));
        assert_eq!(two, [3, 4]);
        assert_eq!(
            bytes.read_at(3, &mut two),
            Err(Error::Read { offset: 3, len: 2 })
        );
        assert!(bytes.read_at(u64::MAX, &mut two).is_err());
        assert_eq!(ReadAt::len(&bytes), 4);
        assert!(!ReadAt::is_empty(&bytes));
    }
}
