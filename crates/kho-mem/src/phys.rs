//! The `PhysMem` trait: byte access, page allocation and RAM queries by physical address.

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::{Order, PhysAddr, Result};

/// Physical memory as KHO algorithms see it.
///
/// Implementations decide how a physical address is reached (an identity
/// map in a kernel, a `Vec` in tests, a guest-memory mapping in a VMM). All
/// multi-byte values are little-endian, which is KHO's native byte order on
/// every architecture it supports.
///
/// Every access is bounds-checked by the implementation: touching anything
/// that is not RAM returns [`Error::NotRam`](crate::Error::NotRam), never
/// undefined behaviour, so algorithms can follow addresses that came from an
/// untrusted kernel.
pub trait PhysMem {
    /// Copy `buf.len()` bytes starting at `addr` into `buf`.
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()>;

    /// Copy `data` to physical memory starting at `addr`.
    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()>;

    /// Whether every byte of `[addr, addr + len)` is RAM this implementation
    /// can access (`len == 0` asks about `addr` alone).
    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool;

    /// Allocate a zero-filled, naturally aligned block of `2^order` pages.
    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr>;

    /// Free a block returned by [`PhysMem::alloc_pages`] with the same order.
    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> Result<()>;

    /// Allocate one zero-filled page.
    fn alloc_page(&mut self) -> Result<PhysAddr> {
        self.alloc_pages(Order::ZERO)
    }

    /// Free one page returned by [`PhysMem::alloc_page`].
    fn free_page(&mut self, addr: PhysAddr) -> Result<()> {
        self.free_pages(addr, Order::ZERO)
    }

    /// Read a little-endian `u64`.
    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Write a little-endian `u64`.
    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        self.write(addr, &value.to_le_bytes())
    }

    /// Read consecutive little-endian `u64`s starting at `addr` into `out`.
    ///
    /// Implementations with direct access override this to check bounds once.
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        let mut chunk = [0u8; 512];
        let mut at = addr;
        for words in out.chunks_mut(chunk.len() / 8) {
            let bytes = &mut chunk[..words.len() * 8];
            self.read(at, bytes)?;
            for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                *w = u64::from_le_bytes(le);
            }
            at = at
                .checked_add(bytes.len() as u64)
                .ok_or(crate::Error::Overflow {
                    addr: at.as_u64(),
                    len: bytes.len() as u64,
                })?;
        }
        Ok(())
    }

    /// Set `len` bytes starting at `addr` to `byte`.
    fn fill(&mut self, addr: PhysAddr, len: u64, byte: u8) -> Result<()> {
        let chunk = [byte; 256];
        let mut done = 0u64;
        while done < len {
            let n = core::cmp::min(len - done, chunk.len() as u64);
            let at = addr.checked_add(done).ok_or(crate::Error::Overflow {
                addr: addr.as_u64(),
                len,
            })?;
            self.write(at, &chunk[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    /// Read a plain-old-data value (an ABI struct) stored at `addr`.
    fn read_obj<T: FromBytes + IntoBytes>(&self, addr: PhysAddr) -> Result<T>
    where
        Self: Sized,
    {
        let mut value = T::new_zeroed();
        self.read(addr, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Write a plain-old-data value (an ABI struct) at `addr`.
    fn write_obj<T: IntoBytes + Immutable>(&mut self, addr: PhysAddr, value: &T) -> Result<()>
    where
        Self: Sized,
    {
        self.write(addr, value.as_bytes())
    }
}

impl<M: PhysMem + ?Sized> PhysMem for &mut M {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        (**self).read(addr, buf)
    }
    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> Result<()> {
        (**self).write(addr, data)
    }
    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        (**self).is_ram(addr, len)
    }
    fn alloc_pages(&mut self, order: Order) -> Result<PhysAddr> {
        (**self).alloc_pages(order)
    }
    fn free_pages(&mut self, addr: PhysAddr, order: Order) -> Result<()> {
        (**self).free_pages(addr, order)
    }
    fn read_u64(&self, addr: PhysAddr) -> Result<u64> {
        (**self).read_u64(addr)
    }
    fn write_u64(&mut self, addr: PhysAddr, value: u64) -> Result<()> {
        (**self).write_u64(addr, value)
    }
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> Result<()> {
        (**self).read_u64s(addr, out)
    }
    fn fill(&mut self, addr: PhysAddr, len: u64, byte: u8) -> Result<()> {
        (**self).fill(addr, len, byte)
    }
}
