//! The decoder's view of the image: a [`PhysMem`] that counts the bytes
//! read and refuses reads past [`Limits::bytes`](crate::Limits::bytes).
//!
//! The decoder reads only through it, so the byte budget holds whatever a
//! crate it calls reads. A refused read fails like memory that is not RAM
//! (the trait's only refusal); the meter remembers that it refused, and the
//! decoder reports the budget instead of the misleading "not RAM".

use core::cell::Cell;

use kho_mem::{Order, PhysAddr, PhysMem};

/// `mem`, read-only, with at most `limit` bytes read.
#[derive(Debug)]
pub(crate) struct Metered<'m, M> {
    mem: &'m M,
    limit: u64,
    used: Cell<u64>,
    refused: Cell<bool>,
}

impl<'m, M: PhysMem> Metered<'m, M> {
    pub(crate) fn new(mem: &'m M, limit: u64) -> Metered<'m, M> {
        Metered {
            mem,
            limit,
            used: Cell::new(0),
            refused: Cell::new(false),
        }
    }

    /// Whether a read was refused for the budget.
    pub(crate) fn refused(&self) -> bool {
        self.refused.get()
    }

    /// Count `len` bytes; `false` (and remembered) past the limit.
    fn take(&self, len: u64) -> bool {
        match self.used.get().checked_add(len) {
            Some(used) if used <= self.limit && !self.refused.get() => {
                self.used.set(used);
                true
            }
            _ => {
                self.refused.set(true);
                false
            }
        }
    }

    fn refuse(addr: PhysAddr, len: u64) -> kho_mem::Error {
        kho_mem::Error::NotRam {
            addr: addr.as_u64(),
            len,
        }
    }
}

impl<M: PhysMem> PhysMem for Metered<'_, M> {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> kho_mem::Result<()> {
        if !self.take(buf.len() as u64) {
            return Err(Self::refuse(addr, buf.len() as u64));
        }
        self.mem.read(addr, buf)
    }

    fn write(&mut self, addr: PhysAddr, data: &[u8]) -> kho_mem::Result<()> {
        // The decoder never writes: the image is evidence.
        Err(Self::refuse(addr, data.len() as u64))
    }

    fn is_ram(&self, addr: PhysAddr, len: u64) -> bool {
        self.mem.is_ram(addr, len)
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

    /// Counted as one read, then the image's own bulk read (one positioned
    /// read per radix node).
    fn read_u64s(&self, addr: PhysAddr, out: &mut [u64]) -> kho_mem::Result<()> {
        let len = (out.len() as u64).saturating_mul(8);
        if !self.take(len) {
            return Err(Self::refuse(addr, len));
        }
        self.mem.read_u64s(addr, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::HostMem;

    #[test]
    fn reads_past_the_limit_are_refused_and_remembered() {
        let mem = HostMem::new(HostMem::DEFAULT_BASE, 1 << 16).unwrap();
        let base = HostMem::DEFAULT_BASE;
        let m = Metered::new(&mem, 24);
        let mut word = [0u8; 8];
        assert_eq!(m.read(base, &mut word), Ok(()));
        let mut two = [0u64; 2];
        assert_eq!(m.read_u64s(base, &mut two), Ok(()));
        assert!(!m.refused());
        assert!(m.read(base, &mut word).is_err());
        assert!(m.refused());
        // Once refused, always refused: what follows is not decoded.
        let mut none = [0u8; 0];
        assert!(m.read(base, &mut none).is_err());
        assert!(m.is_ram(base, 8));
    }
}
