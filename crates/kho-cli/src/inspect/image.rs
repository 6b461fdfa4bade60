//! The dump file as a [`kho_inspect::Image`]: a [`PhysMem`] over positioned
//! reads of the file (`pread`), so a 512 MiB dump costs what the decoder
//! touches. What the image is (ELF core, raw at `--base`) is the crate's;
//! opening the file and the one-line errors that name it are the CLI's.

use std::fs::File;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use kho_inspect::ReadAt;
use kho_inspect::report::ImageInfo;
use kho_mem::{Order, PhysAddr, PhysMem};

use crate::Error;

/// A dump file read with `pread`.
#[derive(Debug)]
pub struct DumpFile {
    file: File,
    len: u64,
}

impl ReadAt for DumpFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> kho_inspect::Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|_| kho_inspect::Error::Read {
                offset,
                len: buf.len() as u64,
            })
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A guest memory image in a file.
#[derive(Debug)]
pub struct Image {
    inner: kho_inspect::Image<DumpFile>,
    path: PathBuf,
}

impl Image {
    /// Open `path`: a raw image at `base` if given, else an ELF core. Only
    /// a regular file is read (a FIFO or a device has no size to bound the
    /// reads by).
    pub fn open(path: &Path, base: Option<u64>) -> Result<Image, Error> {
        let shown = path.display();
        let file = File::open(path).map_err(|e| Error::new(format!("opening {shown}: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::new(format!("reading the size of {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(Error::new(format!(
                "{shown} is not a regular file (a directory, FIFO or device): inspect reads dump files only"
            )));
        }
        let storage = DumpFile {
            file,
            len: meta.len(),
        };
        let inner = match base {
            Some(base) => kho_inspect::Image::raw(storage, base),
            None => kho_inspect::Image::elf(storage),
        };
        let inner = inner.map_err(|e| match e {
            // The CLI's words: its flag, the file named first.
            kho_inspect::Error::Empty => Error::new(format!("{shown} is empty")),
            kho_inspect::Error::RawPastEnd { base, len } => Error::new(format!(
                "{shown} ({len:#x} bytes) at --base {base:#x} runs past the end of the address space"
            )),
            kho_inspect::Error::NotElf => Error::new(format!(
                "{shown} is not an ELF core (QEMU dump-guest-memory); for a raw image give --base ADDR"
            )),
            e => Error::new(format!("{shown}: {e}")),
        })?;
        Ok(Image {
            inner,
            path: path.to_owned(),
        })
    }

    /// The image part of the output.
    pub fn info(&self) -> ImageInfo {
        ImageInfo::new(self.path.display().to_string(), &self.inner)
    }
}

/// Everything else is the crate's image: segments, RAM ranges, `find_in`.
impl Deref for Image {
    type Target = kho_inspect::Image<DumpFile>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// The crate's image, read-only (writes and allocations fail).
impl PhysMem for Image {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        self.inner.read(addr, buf)
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        self.inner.write(addr, data)
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        self.inner.is_ram(addr, len)
    }

    fn alloc_pages(&mut self, order: Order) -> kho_mem::Result<PhysAddr> {
        self.inner.alloc_pages(order)
    }

    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> kho_mem::Result<()> {
        self.inner.free_pages(addr, order)
    }

    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> kho_mem::Result<()> {
        self.inner.read_u64s(addr, out)
    }
}
