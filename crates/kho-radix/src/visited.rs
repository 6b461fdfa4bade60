//! `VisitedSet`: the walk's record of nodes seen, in a caller-provided buffer.

use crate::{Error, Result};

/// The set of node pages a walk has reached, kept in a buffer the caller
/// provides (no allocation).
///
/// A walk of an untrusted tree inserts every node it reaches; reaching one
/// twice means two entries share it (or one points back up the tree), which
/// is reported as [`Error::SharedNode`] (or [`Error::Cycle`]). Because every
/// node is inserted once, the set's capacity also bounds the work a walk
/// can do: a tree with more distinct nodes fails with
/// [`Error::VisitedSetFull`] instead of being walked.
///
/// It is an open-addressing hash set of `u64` slots, filled to at most 7/8;
/// [`VisitedSet::words_for`] sizes the buffer for a number of nodes. A dense
/// 16 GiB of order-0 pages takes 133 nodes (about 1.2 KiB of buffer); the
/// worst case is five nodes per isolated preserved page plus the root.
/// The walk clears the buffer when it starts, so one buffer serves any
/// number of walks.
///
/// ```
/// use kho_radix::VisitedSet;
///
/// let mut buf = [0u64; VisitedSet::words_for(1000)];
/// let visited = VisitedSet::new(&mut buf);
/// assert!(visited.capacity() >= 1000);
/// ```
#[derive(Debug)]
pub struct VisitedSet<'b> {
    slots: &'b mut [u64],
    len: usize,
}

impl<'b> VisitedSet<'b> {
    /// A set over `buf` (its contents are ignored).
    pub fn new(buf: &'b mut [u64]) -> VisitedSet<'b> {
        VisitedSet { slots: buf, len: 0 }
    }

    /// Buffer words needed to hold `nodes` nodes.
    pub const fn words_for(nodes: usize) -> usize {
        nodes + nodes / 7 + 2
    }

    /// The number of nodes the set can hold: 7/8 of the words, less one so
    /// that an empty slot always remains.
    pub const fn capacity(&self) -> usize {
        let n = self.slots.len();
        if n == 0 { 0 } else { n - 1 - n / 8 }
    }

    /// Nodes recorded by the last walk (its whole tree if it succeeded).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no node is recorded.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The node pages recorded by the last walk (its whole tree if it
    /// succeeded), in no particular order: what the caller must keep intact
    /// while it restores from an [`IncomingTree`](crate::IncomingTree), and
    /// may free afterwards.
    pub fn nodes(&self) -> impl Iterator<Item = kho_mem::PhysAddr> + '_ {
        self.slots
            .iter()
            .filter(|&&t| t != 0)
            .map(|&t| kho_mem::PhysAddr::new(t & !1))
    }

    /// Forget every node.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
    }

    /// Record page-aligned `node`; `Ok(false)` if it was already there.
    pub(crate) fn insert(&mut self, node: u64) -> Result<bool> {
        // Slots hold `node | 1` so that 0 means empty even for page 0.
        let tag = node | 1;
        let n = self.slots.len();
        let full = Error::VisitedSetFull {
            capacity: self.capacity(),
        };
        if n == 0 {
            return Err(full);
        }
        let hash = (node >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // Multiply-shift maps the hash onto 0 .. n without a division.
        let mut index = ((u128::from(hash) * n as u128) >> 64) as usize;
        // At most `capacity() < n` slots are used: an empty one is always found.
        loop {
            match self.slots.get(index).copied() {
                Some(0) => break,
                Some(t) if t == tag => return Ok(false),
                Some(_) => index += 1,
                None => index = 0,
            }
        }
        if self.len >= self.capacity() {
            return Err(full);
        }
        if let Some(s) = self.slots.get_mut(index) {
            *s = tag;
            self.len += 1;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_detect_repeats_and_respect_capacity() {
        let mut buf = [0xdead_u64; VisitedSet::words_for(20)];
        let mut set = VisitedSet::new(&mut buf);
        set.clear();
        let cap = set.capacity();
        assert!(cap >= 20);
        for i in 0..cap as u64 {
            assert_eq!(set.insert(i << 12), Ok(true));
        }
        assert_eq!(set.insert(0), Ok(false));
        assert_eq!(set.insert(5 << 12), Ok(false));
        assert_eq!(
            set.insert(1 << 40),
            Err(Error::VisitedSetFull { capacity: cap })
        );
        assert_eq!(set.len(), cap);
        let mut nodes: std::vec::Vec<u64> = set.nodes().map(|n| n.as_u64()).collect();
        nodes.sort_unstable();
        assert_eq!(
            nodes,
            (0..cap as u64)
                .map(|i| i << 12)
                .collect::<std::vec::Vec<_>>()
        );
        set.clear();
        assert!(set.is_empty());
        assert_eq!(set.nodes().count(), 0);
        assert_eq!(set.insert(5 << 12), Ok(true));
    }

    #[test]
    fn sizes() {
        for n in 0..200 {
            let mut buf = std::vec![0u64; VisitedSet::words_for(n)];
            assert!(VisitedSet::new(&mut buf).capacity() >= n, "{n}");
        }
        let mut empty: [u64; 0] = [];
        let mut set = VisitedSet::new(&mut empty);
        assert_eq!(
            set.insert(0x1000),
            Err(Error::VisitedSetFull { capacity: 0 })
        );
    }
}
