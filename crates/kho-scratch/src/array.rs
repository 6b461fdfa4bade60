//! The scratch descriptor array in physical memory: writing ours, and
//! reading and validating the one another kernel handed over.
//!
//! The layout is kho-abi's [`ScratchDescriptor`]: 16-byte `{addr, size}`
//! little-endian entries, no header, count = byte length / 16.
//!
//! The incoming array is untrusted. [`ScratchAreas::read_array`] checks, in
//! this order: the byte length (non-zero, a multiple of 16, at most
//! [`MAX_AREAS`] entries), that the array itself is RAM, then for every
//! entry in index order: no wrap past 2^64, non-empty, start and size
//! page-aligned, inside RAM ([`PhysMem::is_ram`]); finally that no two
//! entries overlap. Upstream checks none of this (it trusts the previous
//! kernel) and in particular does not require the 2 MiB alignment its own
//! areas have, so neither does this reader: page alignment is required and
//! [`ScratchAreas::all_area_aligned`] reports whether the areas are also
//! pageblock-aligned.
//!
//! Empty entries: Linux itself can hand over a zero-size entry (see
//! [`ScratchSizes`](crate::ScratchSizes) — e.g. the global area on a machine whose
//! boot allocations all sit below 4 GiB). [`ReadPolicy::STRICT`] rejects
//! them; [`ReadPolicy::LINUX`] keeps them (unchecked, they contain no
//! memory) so such a handover can still be revived.

use kho_abi::scratch::{DESCRIPTOR_SIZE, ScratchDescriptor};
use kho_mem::{PAGE_SIZE, PhysAddr, PhysMem, PhysRange};

use crate::{AreaKind, Error, MAX_AREAS, Result, ScratchArea, ScratchAreas};

/// How strictly [`ScratchAreas::read_array`] treats incoming entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ReadPolicy {
    /// Accept zero-size entries (kept as empty areas) instead of failing
    /// with [`Error::EntryEmpty`].
    pub allow_empty: bool,
}

impl ReadPolicy {
    /// Every entry must be non-empty (the default; what kho-rs writes).
    pub const STRICT: ReadPolicy = ReadPolicy { allow_empty: false };
    /// Also accept the zero-size entries a Linux kernel may write.
    pub const LINUX: ReadPolicy = ReadPolicy { allow_empty: true };
}

/// Byte length of an array of `count` descriptors.
pub const fn array_byte_len(count: usize) -> u64 {
    (count * DESCRIPTOR_SIZE) as u64
}

impl ScratchAreas {
    /// Byte length of this set's descriptor array.
    pub fn array_byte_len(&self) -> u64 {
        array_byte_len(self.len())
    }

    /// Write the descriptor array at `at`; returns the range written
    /// (what the handoff records as scratch address and length).
    pub fn write_array<M: PhysMem>(&self, mem: &mut M, at: PhysAddr) -> Result<PhysRange> {
        let written = PhysRange::try_new(at, self.array_byte_len())?;
        for (i, area) in self.iter().enumerate() {
            let desc = ScratchDescriptor::new(area.range.start().as_u64(), area.range.size());
            let offset = array_byte_len(i);
            let addr = at.checked_add(offset).ok_or(kho_mem::Error::Overflow {
                addr: at.as_u64(),
                len: offset,
            })?;
            mem.write_obj(addr, &desc)?;
        }
        Ok(written)
    }

    /// Read and validate an incoming descriptor array of `byte_len` bytes
    /// at `at` (see the module docs for the checks and their order).
    ///
    /// Kinds follow the array order: [`AreaKind::from_index`].
    pub fn read_array<M: PhysMem>(
        mem: &M,
        at: PhysAddr,
        byte_len: u64,
        policy: ReadPolicy,
    ) -> Result<ScratchAreas> {
        let entry = DESCRIPTOR_SIZE as u64;
        if byte_len == 0 || !byte_len.is_multiple_of(entry) {
            return Err(Error::ArrayLength { byte_len });
        }
        let count = byte_len / entry;
        if count > MAX_AREAS as u64 {
            return Err(Error::TooManyEntries {
                count,
                max: MAX_AREAS,
            });
        }
        if PhysRange::try_new(at, byte_len).is_err() || !mem.is_ram(at, byte_len) {
            return Err(Error::ArrayNotRam {
                addr: at,
                len: byte_len,
            });
        }

        let page = PAGE_SIZE as u64;
        let mut areas = ScratchAreas::new();
        for index in 0..count as usize {
            let desc: ScratchDescriptor = mem.read_obj(PhysAddr::new(
                at.as_u64() + array_byte_len(index), // inside the checked range
            ))?;
            let addr = PhysAddr::new(desc.addr.get());
            let size = desc.size.get();
            let range = PhysRange::try_new(addr, size).map_err(|_| Error::EntryWraps {
                index,
                addr,
                size,
            })?;
            let kind = AreaKind::from_index(index);
            if size == 0 {
                if !policy.allow_empty {
                    return Err(Error::EntryEmpty { index });
                }
                areas.push(ScratchArea { kind, range })?;
                continue;
            }
            if !addr.is_page_aligned() || !size.is_multiple_of(page) {
                return Err(Error::EntryMisaligned { index, addr, size });
            }
            if !mem.is_ram(addr, size) {
                return Err(Error::EntryNotRam { index, range });
            }
            areas.push(ScratchArea { kind, range })?;
        }

        for (first, a) in areas.iter().enumerate() {
            if let Some(second) = areas
                .iter()
                .skip(first + 1)
                .position(|b| a.range.overlaps(b.range))
            {
                return Err(Error::EntriesOverlap {
                    first,
                    second: first + 1 + second,
                });
            }
        }
        Ok(areas)
    }
}
