//! A guest physical-memory image as a read-only [`PhysMem`]: the ELF core
//! QEMU's `dump-guest-memory` writes, or a raw file whose byte 0 is at a
//! given physical address.
//!
//! Nothing is read up front but the ELF program headers: every access is a
//! positioned read of the file (`pread`), so a 512 MiB dump costs what the
//! decoder touches. RAM is what the image holds: an address is RAM when a
//! loaded segment covers it (adjacent segments join). A segment whose
//! `p_filesz` is below its `p_memsz` reads as zeros past its file bytes, as
//! an ELF loader would fill it. Allocation fails: the image is evidence,
//! not a machine.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kho_mem::{Order, PhysAddr, PhysMem};
use object::elf;
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader};
use serde::Serialize;

/// How the image file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Format {
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
pub(crate) struct Segment {
    /// First physical address.
    pub(crate) paddr: u64,
    /// Bytes of physical memory the segment covers.
    pub(crate) memsz: u64,
    /// File offset of its first byte.
    pub(crate) offset: u64,
    /// Bytes present in the file (the rest reads as zeros).
    pub(crate) filesz: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        // Checked when the segment is built.
        self.paddr + self.memsz
    }
}

/// A read-only guest memory image.
#[derive(Debug)]
pub(crate) struct Image {
    file: File,
    path: PathBuf,
    format: Format,
    /// Sorted by `paddr`, disjoint, none empty.
    segments: Vec<Segment>,
}

/// The ELF magic, to tell an ELF core from a raw file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

impl Image {
    /// Open `path`: a raw image at `base` if given, else an ELF core.
    pub(crate) fn open(path: &Path, base: Option<u64>) -> Result<Image> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        match base {
            Some(base) => Image::raw(file, path, base, len),
            None => Image::elf(file, path, len),
        }
    }

    fn raw(file: File, path: &Path, base: u64, len: u64) -> Result<Image> {
        if len == 0 {
            bail!("{} is empty", path.display());
        }
        if base.checked_add(len).is_none() {
            bail!(
                "{} ({len:#x} bytes) at --base {base:#x} runs past the end of the address space",
                path.display()
            );
        }
        Ok(Image {
            file,
            path: path.to_owned(),
            format: Format::Raw,
            segments: vec![Segment {
                paddr: base,
                memsz: len,
                offset: 0,
                filesz: len,
            }],
        })
    }

    fn elf(file: File, path: &Path, len: u64) -> Result<Image> {
        let mut magic = [0u8; 4];
        if file.read_exact_at(&mut magic, 0).is_err() || &magic != ELF_MAGIC {
            bail!(
                "{} is not an ELF core (QEMU dump-guest-memory); for a raw image give --base ADDR",
                path.display()
            );
        }
        let cache = ReadCache::new(&file);
        let header = elf::FileHeader64::<object::Endianness>::parse(&cache).with_context(|| {
            format!(
                "{}: not a 64-bit ELF file QEMU's dump-guest-memory writes",
                path.display()
            )
        })?;
        let endian = header
            .endian()
            .with_context(|| format!("{}: bad ELF byte order", path.display()))?;
        let headers = header
            .program_headers(endian, &cache)
            .with_context(|| format!("{}: bad ELF program headers", path.display()))?;
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
            let where_ = || {
                format!(
                    "{}: ELF program header {index} (PT_LOAD at physical {:#x})",
                    path.display(),
                    seg.paddr
                )
            };
            if seg.filesz > seg.memsz {
                bail!("{}: p_filesz is larger than p_memsz", where_());
            }
            if seg.paddr.checked_add(seg.memsz).is_none() {
                bail!("{}: runs past the end of the address space", where_());
            }
            if seg
                .offset
                .checked_add(seg.filesz)
                .is_none_or(|end| end > len)
            {
                bail!(
                    "{}: its {:#x} file bytes at offset {:#x} run past the end of the \
                     {len:#x}-byte file (a truncated dump?)",
                    where_(),
                    seg.filesz,
                    seg.offset
                );
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            bail!(
                "{}: the ELF file has no PT_LOAD segment, so no guest memory",
                path.display()
            );
        }
        segments.sort_by_key(|s| s.paddr);
        for pair in segments.windows(2) {
            if pair[0].end() > pair[1].paddr {
                bail!(
                    "{}: PT_LOAD segments at physical {:#x} and {:#x} overlap",
                    path.display(),
                    pair[0].paddr,
                    pair[1].paddr
                );
            }
        }
        Ok(Image {
            file,
            path: path.to_owned(),
            format: Format::ElfCore,
            segments,
        })
    }

    /// The file this image reads.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// ELF core or raw.
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// The loaded ranges, by address.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The RAM the image holds as (start, length) ranges, by address, with
    /// adjacent segments joined (what `inspect --find` scans).
    pub(crate) fn ram_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seg in &self.segments {
            match ranges.last_mut() {
                // Sorted and disjoint: `start + len` cannot overflow (each
                // segment's end was checked when it was built).
                Some((start, len)) if *start + *len == seg.paddr => *len += seg.memsz,
                _ => ranges.push((seg.paddr, seg.memsz)),
            }
        }
        ranges
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
            let n = (seg.end() - at).min(end - at);
            if !f(seg, at, n) {
                return false;
            }
            at += n;
        }
        true
    }
}

impl PhysMem for Image {
    /// Reads what the image holds; an I/O error reads as "not RAM" (the
    /// trait's only way to refuse), so a failing disk never panics a walk.
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        let not_ram = kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len: buf.len() as u64,
        };
        let mut done = 0usize;
        let complete = self.for_each_piece(addr.as_u64(), buf.len() as u64, |seg, at, n| {
            let out = &mut buf[done..done + n as usize];
            done += n as usize;
            let rel = at - seg.paddr;
            // File bytes first, then the zero tail past p_filesz.
            let in_file = seg.filesz.saturating_sub(rel).min(n) as usize;
            let (file_part, zero_part) = out.split_at_mut(in_file);
            zero_part.fill(0);
            file_part.is_empty() || self.file.read_exact_at(file_part, seg.offset + rel).is_ok()
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
    /// a time), so a radix leaf is one `pread`.
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> kho_mem::Result<()> {
        let mut bytes = vec![0u8; out.len() * 8];
        self.read(addr, &mut bytes)?;
        for (w, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
        Ok(())
    }
}
