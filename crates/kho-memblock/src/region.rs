//! `Region`: a named range of physical memory, and the checks on a list of them.

use kho_mem::{PhysAddr, PhysRange};

use crate::cmdline::check_node_name;
use crate::error::token;
use crate::{Error, Result};

/// A named `reserve_mem` region: `size` bytes at `start`.
///
/// [`Region::new`] checks what the outgoing side needs (a writable name,
/// a non-empty range that does not wrap). Regions read back from a
/// sub-blob ([`MemblockFdt`](crate::MemblockFdt)) carry the name found
/// there, which upstream may have written with characters
/// [`Region::new`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region<'a> {
    name: &'a str,
    range: PhysRange,
}

impl<'a> Region<'a> {
    /// A region to preserve.
    ///
    /// Errors: the name rules of [`parse_reserve_mem`](crate::parse_reserve_mem)
    /// ([`Error::EmptyName`], [`Error::NameTooLong`], [`Error::BlankName`])
    /// and [`Error::InvalidName`] for a name the FDT writer cannot emit;
    /// [`Error::EmptyRegion`], [`Error::RegionWraps`].
    pub fn new(name: &'a str, start: PhysAddr, size: u64) -> Result<Region<'a>> {
        check_node_name(name)?;
        Region::checked(name, start, size)
    }

    /// A region whose name was already checked (or comes from a blob).
    pub(crate) fn checked(name: &'a str, start: PhysAddr, size: u64) -> Result<Region<'a>> {
        if size == 0 {
            return Err(Error::EmptyRegion { name: token(name) });
        }
        // One past the end must be addressable: a region ending at 2^64 is
        // refused too (upstream's `start + size` would be 0).
        let wraps = Error::RegionWraps {
            name: token(name),
            start,
            size,
        };
        if start.checked_add(size).is_none() {
            return Err(wraps);
        }
        let range = PhysRange::try_new(start, size).map_err(|_| wraps)?;
        Ok(Region { name, range })
    }

    /// The region's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its first byte.
    pub fn start(&self) -> PhysAddr {
        self.range.start()
    }

    /// Its size in bytes (never zero).
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// `[start, start + size)`.
    pub fn range(&self) -> PhysRange {
        self.range
    }
}

/// The checks a region list must pass, given one region at a time: names
/// unique, ranges disjoint. `earlier` are the regions before `r`.
pub(crate) fn check_against<'a>(
    r: &Region<'a>,
    earlier: impl Iterator<Item = Region<'a>>,
) -> Result<()> {
    for e in earlier {
        if e.name == r.name {
            return Err(Error::DuplicateName {
                name: token(r.name),
            });
        }
        if e.range.overlaps(r.range) {
            return Err(Error::RegionsOverlap {
                first: token(e.name),
                second: token(r.name),
            });
        }
    }
    Ok(())
}
