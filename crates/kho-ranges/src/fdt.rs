//! The untrusted FDT, read through kho-fdt's shared walk: every node at any
//! depth, every property, with byte offsets for errors.
//!
//! The 2024 design puts `mem` in any node, so the reader must visit the
//! whole tree. kho-fdt's [`FdtBlob::walk`] does it without allocating,
//! keeping a position and a depth (at most [`MAX_DEPTH`](crate::MAX_DEPTH))
//! and checking every read against the structure or strings block; this
//! module only maps its [`kho_fdt::Error`] to this crate's named
//! [`FdtProblem`]s, so any byte string ends in a value or in
//! [`Error::Fdt`] with the offset of the problem.

use core::ops::ControlFlow;

use kho_fdt::{Block, FdtBlob, Malformed, Nops};

use crate::{Error, FdtProblem, Result};

pub(crate) use kho_fdt::Event;

/// An FDT whose header and structure passed the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fdt<'a> {
    blob: FdtBlob<'a>,
}

impl<'a> Fdt<'a> {
    /// Check the header and walk the structure once. `FDT_NOP` tokens are
    /// skipped, as libfdt does; no size limit applies beyond the slice.
    pub(crate) fn parse(blob: &'a [u8]) -> Result<Fdt<'a>> {
        let fdt = Fdt {
            blob: FdtBlob::new(blob, usize::MAX).map_err(from_kho_fdt)?,
        };
        fdt.walk(|_| Ok(()))?;
        Ok(fdt)
    }

    /// The blob, cut to `totalsize`.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.blob.as_bytes()
    }

    /// Call `f` for every node opening, property and node closing, in blob
    /// order; the first error, the walk's or `f`'s, ends it.
    pub(crate) fn walk(&self, mut f: impl FnMut(Event<'a>) -> Result<()>) -> Result<()> {
        let flow = self
            .blob
            .walk(Nops::Skip, |e| match f(e) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            })
            .map_err(from_kho_fdt)?;
        match flow {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(e) => Err(e),
        }
    }
}

/// kho-fdt's container and structure errors as [`Error::Fdt`]: the offset
/// of the header field for header and block problems, of the token for
/// structure problems (of the `nameoff` field for a property name).
fn from_kho_fdt(e: kho_fdt::Error) -> Error {
    use kho_fdt::Error as E;
    let (offset, problem) = match e {
        E::Truncated { .. } => (0, FdtProblem::Truncated),
        E::BadMagic { .. } => (0, FdtProblem::BadMagic),
        E::ExceedsBlob { .. } | E::TotalSizeTooSmall { .. } | E::TotalSizeTooLarge { .. } => {
            (4, FdtProblem::Truncated)
        }
        E::UnsupportedHeaderVersion { .. } => (0x14, FdtProblem::Version),
        E::BlockOutOfBounds { block, .. } | E::MisalignedBlock { block, .. } => {
            (block_field(block), FdtProblem::BlockOutside)
        }
        E::UnterminatedMemReserveMap { offset } => (offset, FdtProblem::ReserveMap),
        E::MalformedStructure { offset, reason } => structure(offset, reason),
        // FdtBlob returns only the variants above; kho-fdt's enum is
        // non-exhaustive.
        _ => (0, FdtProblem::Other),
    };
    Error::Fdt { offset, problem }
}

/// Header offset of the field that places `block`.
fn block_field(block: Block) -> usize {
    match block {
        Block::MemReserveMap => 0x10,
        Block::Structure => 0x8,
        Block::Strings => 0xc,
        _ => 0,
    }
}

fn structure(offset: usize, reason: Malformed) -> (usize, FdtProblem) {
    use Malformed as M;
    const FDT_END_NODE: u32 = 2;
    const FDT_PROP: u32 = 3;
    const FDT_NOP: u32 = 4;
    const FDT_END: u32 = 9;
    let problem = match reason {
        M::TruncatedToken
        | M::UnterminatedNodeName
        | M::PropertyValueOutOfBounds { .. }
        | M::MissingEnd => FdtProblem::PastStructure,
        M::UnknownToken(t) => FdtProblem::BadToken(t),
        // A known token before the root: no root; an unknown one is named.
        M::NoRootNode(FDT_END_NODE | FDT_PROP | FDT_NOP | FDT_END) | M::RootNameNotEmpty => {
            FdtProblem::NoRoot
        }
        M::NoRootNode(t) => FdtProblem::BadToken(t),
        M::BadNodeName => FdtProblem::BadNodeName,
        M::NameOffsetOutOfBounds { .. }
        | M::UnterminatedPropertyName { .. }
        | M::BadPropertyName { .. } => {
            // kho-fdt names the FDT_PROP token; the problem is its
            // `nameoff` field, 8 bytes on (inside the block, so no
            // overflow; checked anyway).
            return (offset.checked_add(8).unwrap_or(offset), FdtProblem::BadName);
        }
        M::PropertyAfterChild => FdtProblem::PropertyAfterChild,
        M::TooDeep => FdtProblem::TooDeep,
        // Skipped, so never reported; named as the token it is.
        M::Nop => FdtProblem::BadToken(FDT_NOP),
        M::UnbalancedEnd => FdtProblem::Unbalanced,
        M::AfterRoot(_) => FdtProblem::OutsideRoot,
        _ => FdtProblem::Other,
    };
    (offset, problem)
}
