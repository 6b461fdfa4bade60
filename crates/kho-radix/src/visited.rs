//! `VisitedSet`: the walk's record of nodes seen, in a caller-provided buffer.

use crate::{Error, Result};

/// Slots per line: a line is the unit the set initializes on first use.
const LINE_SLOTS: usize = 8;
/// Lines one word of the line map covers.
const MAP_BITS: usize = 64;
/// Slot words per line-map word.
const SLOTS_PER_MAP_WORD: usize = LINE_SLOTS * MAP_BITS;

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
/// It is an open-addressing hash set of `u64` slots, filled to at most 7/8
/// of the buffer, plus one bit per line of 8 slots saying whether the line
/// holds anything from the current walk (the first `1/513` of the buffer),
/// plus one 64-bit word in the struct saying which 64ths of those bits do.
/// A line
/// is zeroed when the walk first writes to it, so starting a walk (and
/// [`new`](VisitedSet::new)) clears one word whatever the buffer's size,
/// and [`nodes`](VisitedSet::nodes) reads only the lines the walk used.
/// The buffer's contents are never trusted: anything left in it, by a
/// previous walk or otherwise, is ignored.
///
/// [`VisitedSet::words_for`] sizes the buffer for a number of nodes, about
/// 9.2 bytes each. A dense 16 GiB of order-0 pages takes 133 nodes (about
/// 1.2 KiB of buffer); the worst case is five nodes per isolated preserved
/// page plus the root. The buffer, not the tree, bounds the memory: a tree
/// with more nodes than it holds fails the walk.
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
    /// Bit `l` set: line `l` of `slots` holds entries of the current walk
    /// (only meaningful where its `chunks` bit is set).
    map: &'b mut [u64],
    /// The hash table; a slot holds `node | 1`, or 0 when empty.
    slots: &'b mut [u64],
    /// Bit `c` set: words `c << chunk_shift ..` of `map` are valid.
    chunks: u64,
    chunk_shift: u32,
    len: usize,
}

impl<'b> VisitedSet<'b> {
    /// A set over `buf` (its contents are ignored).
    pub fn new(buf: &'b mut [u64]) -> VisitedSet<'b> {
        let n = buf.len();
        // ceil(n / 513) map words cover the n - that slot words' lines.
        let (map, slots) = buf.split_at_mut(n.div_ceil(SLOTS_PER_MAP_WORD + 1));
        // Smallest chunk (a power of two) such that 64 chunks cover the map.
        let per_chunk = map.len().div_ceil(64).max(1);
        VisitedSet {
            map,
            slots,
            chunks: 0,
            chunk_shift: per_chunk.next_power_of_two().trailing_zeros(),
            len: 0,
        }
    }

    /// Buffer words needed to hold `nodes` nodes.
    pub const fn words_for(nodes: usize) -> usize {
        nodes + nodes / 7 + 2
    }

    /// The number of nodes the set can hold: 7/8 of the buffer's words,
    /// less one, and always fewer than its slots, so that an empty slot
    /// always remains (the slots are then at most 0.88 full).
    pub const fn capacity(&self) -> usize {
        let words = self.map.len() + self.slots.len();
        let slots = self.slots.len();
        if slots == 0 {
            return 0;
        }
        let by_words = words - 1 - words / 8;
        if by_words < slots - 1 {
            by_words
        } else {
            slots - 1
        }
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
    /// may free afterwards. Reads only the parts of the buffer the walk
    /// used.
    pub fn nodes(&self) -> impl Iterator<Item = kho_mem::PhysAddr> + '_ {
        let lines = self.live_lines();
        lines
            .flat_map(move |line| {
                let from = line * LINE_SLOTS;
                self.slots
                    .get(from..(from + LINE_SLOTS).min(self.slots.len()))
                    .unwrap_or(&[])
            })
            .filter(|&&t| t != 0)
            .map(|&t| kho_mem::PhysAddr::new(t & !1))
    }

    /// Indices of the lines that hold entries of the current walk.
    fn live_lines(&self) -> impl Iterator<Item = usize> + '_ {
        let per_chunk = 1usize << self.chunk_shift;
        Bits(self.chunks)
            .flat_map(move |c| {
                let from = c << self.chunk_shift;
                let to = (from + per_chunk).min(self.map.len());
                self.map
                    .get(from..to)
                    .unwrap_or(&[])
                    .iter()
                    .enumerate()
                    .map(move |(i, &w)| (from + i, w))
            })
            .flat_map(|(w, bits)| Bits(bits).map(move |b| w * MAP_BITS + b))
    }

    /// Forget every node: one word, whatever the buffer's size.
    pub(crate) fn clear(&mut self) {
        self.chunks = 0;
        self.len = 0;
    }

    /// Whether line `line` holds entries of the current walk.
    #[inline]
    fn line_live(&self, line: usize) -> bool {
        let word = line / MAP_BITS;
        self.chunks >> (word >> self.chunk_shift) & 1 != 0
            && self
                .map
                .get(word)
                .is_some_and(|&w| w >> (line % MAP_BITS) & 1 != 0)
    }

    /// Mark line `line` live, zeroing it (and its chunk of the line map,
    /// if that is not live yet).
    fn open_line(&mut self, line: usize) {
        let word = line / MAP_BITS;
        let chunk = word >> self.chunk_shift;
        if self.chunks >> chunk & 1 == 0 {
            let from = chunk << self.chunk_shift;
            let to = (from + (1 << self.chunk_shift)).min(self.map.len());
            if let Some(words) = self.map.get_mut(from..to) {
                words.fill(0);
            }
            self.chunks |= 1 << chunk;
        }
        if let Some(w) = self.map.get_mut(word) {
            *w |= 1 << (line % MAP_BITS);
        }
        let from = line * LINE_SLOTS;
        let to = (from + LINE_SLOTS).min(self.slots.len());
        if let Some(slots) = self.slots.get_mut(from..to) {
            slots.fill(0);
        }
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
        // At most `capacity() < n` slots are used: an empty one is always
        // found (a line not live is empty).
        loop {
            if index >= n {
                index = 0;
            }
            if !self.line_live(index / LINE_SLOTS) {
                if self.len >= self.capacity() {
                    return Err(full);
                }
                self.open_line(index / LINE_SLOTS);
                break;
            }
            match self.slots.get(index).copied() {
                Some(0) => {
                    if self.len >= self.capacity() {
                        return Err(full);
                    }
                    break;
                }
                Some(t) if t == tag => return Ok(false),
                _ => index += 1,
            }
        }
        if let Some(s) = self.slots.get_mut(index) {
            *s = tag;
            self.len += 1;
        }
        Ok(true)
    }
}

/// The indices of the set bits of a word, ascending.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(b)
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
            let set = VisitedSet::new(&mut buf);
            assert!(set.capacity() >= n, "{n}");
            assert!(set.capacity() < set.slots.len(), "{n}");
        }
        for n in (200..40_000).step_by(97).chain([1 << 20, 5 << 20]) {
            let words = VisitedSet::words_for(n);
            let mut buf = std::vec![0u64; words];
            let set = VisitedSet::new(&mut buf);
            assert!(set.capacity() >= n, "{n}");
            // An empty slot always remains.
            assert!(set.capacity() < set.slots.len(), "{n}");
            // About 9.2 bytes a node, as documented.
            assert!(words * 8 <= n * 92 / 10 + 16, "{n}: {words} words");
        }
        // The sizes callers rely on (kho's 16 GiB tier: 134 nodes).
        assert_eq!(VisitedSet::words_for(134), 155);
        let mut empty: [u64; 0] = [];
        let mut set = VisitedSet::new(&mut empty);
        assert_eq!(
            set.insert(0x1000),
            Err(Error::VisitedSetFull { capacity: 0 })
        );
        for len in 1..4 {
            let mut tiny = std::vec![u64::MAX; len];
            let mut set = VisitedSet::new(&mut tiny);
            let cap = set.capacity();
            for i in 0..cap as u64 {
                assert_eq!(set.insert(i << 12), Ok(true));
            }
            assert_eq!(
                set.insert(1 << 40),
                Err(Error::VisitedSetFull { capacity: cap })
            );
        }
    }

    /// Whatever the buffer held (all ones, stale tags of pages the walk
    /// will insert, a previous walk's set), a new set or a cleared one is
    /// empty and behaves as a fresh one.
    #[test]
    fn garbage_and_stale_entries_are_ignored() {
        let words = VisitedSet::words_for(300);
        let nodes: std::vec::Vec<u64> = (0..300u64).map(|i| (0x4000_0000 + i * 7) << 12).collect();
        for fill in [0, u64::MAX, 0x4000_0001 << 12 | 1] {
            let mut buf = std::vec![fill; words];
            // Stale tags of exactly the nodes about to be inserted.
            for (slot, &n) in buf.iter_mut().rev().zip(&nodes) {
                *slot = n | 1;
            }
            let mut set = VisitedSet::new(&mut buf);
            assert!(set.is_empty());
            assert_eq!(set.nodes().count(), 0);
            for round in 0..3 {
                set.clear();
                assert_eq!(set.nodes().count(), 0, "round {round}");
                for &n in &nodes {
                    assert_eq!(set.insert(n), Ok(true), "{fill:#x} round {round}");
                }
                for &n in &nodes {
                    assert_eq!(set.insert(n), Ok(false));
                }
                let mut got: std::vec::Vec<u64> = set.nodes().map(|n| n.as_u64()).collect();
                got.sort_unstable();
                let mut want = nodes.clone();
                want.sort_unstable();
                assert_eq!(got, want);
                assert_eq!(set.len(), nodes.len());
            }
        }
    }

    /// Clearing touches only the struct, and a walk only the lines it
    /// uses: a large buffer with a few nodes leaves the rest untouched.
    #[test]
    fn clear_and_insert_touch_only_what_is_used() {
        const CANARY: u64 = 0x5a5a_5a5a_5a5a_5a5a;
        let mut buf = std::vec![CANARY; VisitedSet::words_for(16 * 1024)];
        let total = buf.len();
        {
            let mut set = VisitedSet::new(&mut buf);
            for walk in 0..5u64 {
                set.clear();
                for i in 0..6u64 {
                    assert_eq!(set.insert((walk * 100 + i) << 12), Ok(true));
                }
                assert_eq!(set.nodes().count(), 6);
            }
        }
        let touched = buf.iter().filter(|&&w| w != CANARY).count();
        // At most one map chunk per line and the lines themselves.
        assert!(
            touched <= 30 * (8 + 1),
            "{touched} of {total} words touched"
        );
    }
}
