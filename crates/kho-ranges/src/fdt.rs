//! A bounded, allocation-free walk of an untrusted FDT: every node at any
//! depth, every property, with byte offsets for errors.
//!
//! The 2024 design puts `mem` in any node, so the reader must visit the
//! whole tree. The walk keeps a position and a depth (at most
//! [`MAX_DEPTH`]) and nothing else; every read is bounds-checked against
//! the structure or strings block, so any byte string ends in a value or
//! a named [`FdtProblem`].

use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC, FDT_VERSION};

use crate::{Error, FdtProblem, Result};

/// Deepest node nesting accepted, the root counting as depth 1 (libfdt's
/// and vm-fdt's limit).
pub const MAX_DEPTH: usize = 64;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// One step of the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event<'a> {
    /// A node opens: offset of its token, its name, its depth (root = 1).
    Begin {
        offset: usize,
        name: &'a [u8],
        depth: usize,
    },
    /// A property of the innermost open node: offset of its value.
    Prop {
        offset: usize,
        name: &'a [u8],
        value: &'a [u8],
        depth: usize,
    },
}

/// An FDT whose header and structure passed the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fdt<'a> {
    blob: &'a [u8],
    structure: (usize, usize),
    strings: (usize, usize),
}

fn be32(blob: &[u8], at: usize) -> Option<u32> {
    let b = blob.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn err(offset: usize, problem: FdtProblem) -> Error {
    Error::Fdt { offset, problem }
}

/// The bytes of `blob[from..end]` up to the first NUL, if there is one.
fn cstr(blob: &[u8], from: usize, end: usize) -> Option<&[u8]> {
    let s = blob.get(from..end)?;
    let n = s.iter().position(|&b| b == 0)?;
    s.get(..n)
}

impl<'a> Fdt<'a> {
    /// Check the header and walk the structure once.
    pub(crate) fn parse(blob: &'a [u8]) -> Result<Fdt<'a>> {
        let word = |i: usize| be32(blob, 4 * i).ok_or(err(4 * i, FdtProblem::Truncated));
        if blob.len() < FDT_HEADER_SIZE {
            return Err(err(0, FdtProblem::Truncated));
        }
        if word(0)? != FDT_MAGIC {
            return Err(err(0, FdtProblem::BadMagic));
        }
        let total = word(1)? as usize;
        if total > blob.len() || total < FDT_HEADER_SIZE {
            return Err(err(4, FdtProblem::Truncated));
        }
        if word(5)? < FDT_VERSION || word(6)? > FDT_VERSION {
            return Err(err(20, FdtProblem::Version));
        }
        let block = |off: usize, size: usize, at: usize| -> Result<(usize, usize)> {
            let start = word(off)? as usize;
            let end = start
                .checked_add(word(size)? as usize)
                .ok_or(err(at, FdtProblem::BlockOutside))?;
            if start < FDT_HEADER_SIZE || end > total {
                return Err(err(at, FdtProblem::BlockOutside));
            }
            Ok((start, end))
        };
        let structure = block(2, 9, 8)?;
        let strings = block(3, 8, 12)?;
        if structure.0 % 4 != 0 {
            return Err(err(8, FdtProblem::BlockOutside));
        }
        let fdt = Fdt {
            blob: blob.get(..total).unwrap_or_default(),
            structure,
            strings,
        };
        fdt.walk(|_| Ok(()))?;
        Ok(fdt)
    }

    /// The blob, cut to `totalsize`.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.blob
    }

    /// Call `f` for every node and property, in blob order.
    pub(crate) fn walk(&self, mut f: impl FnMut(Event<'a>) -> Result<()>) -> Result<()> {
        let blob = self.blob;
        let (start, end) = self.structure;
        let past = |at: usize| err(at, FdtProblem::PastStructure);
        let mut pos = start;
        let mut depth = 0usize;
        let mut root_done = false;
        loop {
            if pos.checked_add(4).is_none_or(|e| e > end) {
                return Err(past(pos));
            }
            let token = be32(blob, pos).ok_or(past(pos))?;
            match token {
                FDT_BEGIN_NODE => {
                    if root_done {
                        return Err(err(pos, FdtProblem::OutsideRoot));
                    }
                    let name = cstr(blob, pos + 4, end).ok_or(past(pos))?;
                    if depth == 0 && !name.is_empty() {
                        return Err(err(pos, FdtProblem::NoRoot));
                    }
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(err(pos, FdtProblem::TooDeep));
                    }
                    f(Event::Begin {
                        offset: pos,
                        name,
                        depth,
                    })?;
                    // name.len() < end - pos - 4, so no overflow.
                    pos = align4(pos + 4 + name.len() + 1).ok_or(past(pos))?;
                }
                FDT_END_NODE => {
                    if depth == 0 {
                        return Err(err(pos, FdtProblem::Unbalanced));
                    }
                    depth -= 1;
                    root_done |= depth == 0;
                    pos += 4;
                }
                FDT_PROP => {
                    if depth == 0 {
                        return Err(err(pos, FdtProblem::OutsideRoot));
                    }
                    let len = be32(blob, pos + 4).ok_or(past(pos))? as usize;
                    let nameoff = be32(blob, pos + 8).ok_or(past(pos))? as usize;
                    let value_at = pos + 12;
                    let value_end = value_at.checked_add(len).ok_or(past(pos))?;
                    if value_end > end {
                        return Err(past(pos));
                    }
                    let value = blob.get(value_at..value_end).ok_or(past(pos))?;
                    let name_at = self
                        .strings
                        .0
                        .checked_add(nameoff)
                        .ok_or(err(pos + 8, FdtProblem::BadName))?;
                    let name = cstr(blob, name_at, self.strings.1)
                        .ok_or(err(pos + 8, FdtProblem::BadName))?;
                    f(Event::Prop {
                        offset: value_at,
                        name,
                        value,
                        depth,
                    })?;
                    pos = align4(value_end).ok_or(past(pos))?;
                }
                FDT_NOP => pos += 4,
                FDT_END => {
                    if depth != 0 {
                        return Err(err(pos, FdtProblem::Unbalanced));
                    }
                    if !root_done {
                        return Err(err(pos, FdtProblem::NoRoot));
                    }
                    return Ok(());
                }
                t => return Err(err(pos, FdtProblem::BadToken(t))),
            }
        }
    }
}

fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}
