//! One preserved range: a page-aligned [`PhysRange`] and its flags, and the
//! checks every range passes on both sides of the kexec.

use kho_abi::rfc2024::{KhoMem, MEM_FLAGS_MASK, MEM_NOINIT};
use kho_mem::{PAGE_SIZE, PhysAddr, PhysMem, PhysRange};

use crate::{At, Error, Result};

const PAGE: u64 = PAGE_SIZE as u64;

/// The flag bits of a range (the low bits of `kho_mem.addr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemFlags(u64);

impl MemFlags {
    /// No flag: the next kernel reserves the range and initialises its
    /// page metadata.
    pub const NONE: MemFlags = MemFlags(0);
    /// `MEM_NOINIT`: reserve, but leave the page metadata uninitialised.
    pub const NOINIT: MemFlags = MemFlags(MEM_NOINIT);

    /// The bits as stored in `addr`.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether [`MemFlags::NOINIT`] is set.
    pub const fn noinit(self) -> bool {
        self.0 & MEM_NOINIT != 0
    }
}

/// A range the next kernel must reserve: page-aligned, non-empty, with its
/// flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemRange {
    range: PhysRange,
    flags: MemFlags,
}

impl MemRange {
    /// The physical range.
    pub const fn range(self) -> PhysRange {
        self.range
    }

    /// First byte.
    pub const fn start(self) -> PhysAddr {
        self.range.start()
    }

    /// Length in bytes.
    pub const fn len(self) -> u64 {
        self.range.size()
    }

    /// Always false: a range has at least one page.
    pub const fn is_empty(self) -> bool {
        self.range.is_empty()
    }

    /// The flags.
    pub const fn flags(self) -> MemFlags {
        self.flags
    }

    /// The wire entry (`addr | flags`, `len`).
    pub fn to_kho_mem(self) -> KhoMem {
        KhoMem::new(self.range.start().as_u64(), self.range.size(), self.flags.0)
    }

    /// Check the shape of a wire entry (flags, length, alignment, no
    /// wrap-around); `at` says where it came from.
    pub(crate) fn from_raw(at: At, raw_addr: u64, len: u64) -> Result<MemRange> {
        let flags = raw_addr & MEM_FLAGS_MASK;
        if flags & !MEM_NOINIT != 0 {
            return Err(Error::ReservedFlags { at, raw: raw_addr });
        }
        let addr = PhysAddr::new(raw_addr & !MEM_FLAGS_MASK);
        if len == 0 {
            return Err(Error::EmptyRange { at, addr });
        }
        if !len.is_multiple_of(PAGE) {
            return Err(Error::Misaligned { at, addr, len });
        }
        let range =
            PhysRange::try_new(addr, len).map_err(|_| Error::RangeOverflow { at, addr, len })?;
        Ok(MemRange {
            range,
            flags: MemFlags(flags),
        })
    }

    /// Check a range a caller preserves.
    #[cfg(feature = "alloc")]
    pub(crate) fn new(range: PhysRange, flags: MemFlags) -> Result<MemRange> {
        let at = At::Preserve;
        if !range.start().is_page_aligned() {
            return Err(Error::ReservedFlags {
                at,
                raw: range.start().as_u64() | flags.0,
            });
        }
        MemRange::from_raw(at, range.start().as_u64() | flags.0, range.size())
    }

    /// One past the last byte (2^64 saturates to `u64::MAX`, which no
    /// page-aligned range can otherwise end at).
    #[cfg(feature = "alloc")]
    pub(crate) fn end(self) -> u64 {
        self.range.end().map_or(u64::MAX, PhysAddr::as_u64)
    }
}

/// Check that a range the previous kernel handed over is RAM and outside
/// the scratch region.
pub(crate) fn check_placement<M: PhysMem + ?Sized>(
    mem: &M,
    at: At,
    r: MemRange,
    scratch: PhysRange,
) -> Result<()> {
    let range = r.range();
    if !mem.is_ram(range.start(), range.size()) {
        return Err(Error::NotRam { at, range });
    }
    check_scratch(at, r, scratch)
}

/// Check that a range stays out of the scratch region.
pub(crate) fn check_scratch(at: At, r: MemRange, scratch: PhysRange) -> Result<()> {
    let range = r.range();
    if range.overlaps(scratch) {
        return Err(Error::InScratch { at, range, scratch });
    }
    Ok(())
}

/// Check a scratch region's shape: non-empty and page-aligned.
pub(crate) fn check_scratch_shape(scratch: PhysRange) -> Result<()> {
    if scratch.is_empty()
        || !scratch.start().is_page_aligned()
        || !scratch.size().is_multiple_of(PAGE)
    {
        return Err(Error::BadScratch { scratch });
    }
    Ok(())
}
