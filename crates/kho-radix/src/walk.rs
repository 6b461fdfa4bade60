//! The incoming side: a validating walk of a tree built by another kernel.
//!
//! The walk trusts nothing but the root address it is given and the
//! [`PhysMem`] it reads through. Tables are visited depth-first in ascending
//! index order, so blocks come out in ascending key order: highest order
//! first, then ascending physical address, exactly as upstream's walk.

use core::fmt;
use core::ops::ControlFlow;

use kho_abi::radix::{
    BITMAP_SIZE_LOG2, BITMAP_WORDS, ORDER_0_LOG2, ROOT_LEVEL, TABLE_ENTRIES, decode_key,
    level_shift,
};
use kho_mem::{Order, PAGE_SHIFT, PAGE_SIZE, PhysAddr, PhysMem, PhysRange};

use crate::{Error, Result, VisitedSet};

/// Highest root slot a valid key can select. Keys are below `2^53` (the
/// order-0 bit is bit 52), and the root indexes key bits 59:51, so only
/// slots 0 (orders ≥ 2), 1 (order 1), 2 and 3 (order 0, below and above
/// 2^63) can be used.
pub const MAX_ROOT_SLOT: usize =
    (((1u64 << (ORDER_0_LOG2 + 1)) - 1) >> level_shift(ROOT_LEVEL)) as usize;

const PAGE: u64 = PAGE_SIZE as u64;

/// What a walk checks beyond the structure itself.
#[derive(Debug)]
pub(crate) struct Checks<'a, 'b> {
    /// Record every node to catch shared nodes (untrusted trees).
    visited: Option<&'a mut VisitedSet<'b>>,
    /// Require every preserved block to be RAM (untrusted trees; our own
    /// tree may record blocks outside the `PhysMem`'s view).
    blocks_in_ram: bool,
}

impl Checks<'_, 'static> {
    /// The checks for a tree this crate built.
    pub(crate) fn trusted() -> Self {
        Checks {
            visited: None,
            blocks_in_ram: false,
        }
    }
}

impl<'a, 'b> Checks<'a, 'b> {
    fn untrusted(visited: &'a mut VisitedSet<'b>) -> Self {
        Checks {
            visited: Some(visited),
            blocks_in_ram: true,
        }
    }
}

/// Words of a table's live-entry mask (one bit per entry).
const MASK_WORDS: usize = TABLE_ENTRIES / 64;

/// Entries read at once while building a table's live mask.
const SCAN_CHUNK: usize = 64;

/// One table on the walk's current path.
#[derive(Clone, Copy, Debug, Default)]
struct Frame {
    node: u64,
    /// Key bits selected by the entries above this table.
    base: u64,
    /// Next entry to look at.
    next: usize,
    /// Bit `i` set: entry `i` was non-zero when the table was entered. The
    /// walk visits only these, so an empty entry costs one bit, not a read.
    live: [u64; MASK_WORDS],
}

/// 1 if `word` is non-zero, else 0, without a compare (so fuzzing builds,
/// which trace every compare, do not trace 512 of them per table).
#[inline]
fn nonzero(word: u64) -> u64 {
    (word | word.wrapping_neg()) >> 63
}

/// Bits of the non-zero words of `words`, `words.len()` ≤ 64.
///
/// Groups of eight words are OR-ed first (which vectorizes on any x86_64
/// or arm64) and only a non-zero group is looked at word by word: tables
/// and leaves are mostly zero, so most groups cost one test.
#[inline]
fn nonzero_mask(words: &[u64]) -> u64 {
    let mut mask = 0u64;
    for (g, group) in words.chunks(8).enumerate() {
        if group.iter().fold(0, |any, &w| any | w) == 0 {
            continue;
        }
        let bits = group
            .iter()
            .enumerate()
            .fold(0, |bits, (i, &w)| bits | (nonzero(w) << i));
        mask |= bits << (g * 8);
    }
    mask
}

/// Read the table at `node` in bulk and return its live-entry mask.
fn table_mask<M: PhysMem + ?Sized>(mem: &M, node: u64, level: u32) -> Result<[u64; MASK_WORDS]> {
    let mut live = [0u64; MASK_WORDS];
    let mut buf = [0u64; SCAN_CHUNK];
    for (chunk, mask) in live.iter_mut().enumerate() {
        let at = node + (chunk * SCAN_CHUNK * 8) as u64;
        mem.read_u64s(PhysAddr::new(at), &mut buf)
            .map_err(|source| Error::NodeRead {
                level,
                node: PhysAddr::new(node),
                source,
            })?;
        *mask = nonzero_mask(&buf);
    }
    Ok(live)
}

/// The first set bit of `live` at or after `from`, if any.
fn next_live(live: &[u64; MASK_WORDS], from: usize) -> Option<usize> {
    let mut w = from / 64;
    let mut bits = live.get(w)? & (u64::MAX << (from % 64));
    loop {
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        w += 1;
        bits = *live.get(w)?;
    }
}

/// A leaf the cursor reached: its address and the key of its bit 0.
#[derive(Clone, Copy, Debug)]
struct Leaf {
    node: u64,
    base: u64,
}

/// Depth-first traversal of the tables, yielding leaves in key order and
/// validating every entry on the way.
#[derive(Debug)]
struct Cursor<'a, 'b> {
    checks: Checks<'a, 'b>,
    /// frames[0] is the root (level 5), frames[depth - 1] the current table.
    frames: [Frame; ROOT_LEVEL as usize],
    depth: usize,
}

impl<'a, 'b> Cursor<'a, 'b> {
    fn new<M: PhysMem + ?Sized>(
        mem: &M,
        root: PhysAddr,
        mut checks: Checks<'a, 'b>,
    ) -> Result<Self> {
        if !root.is_page_aligned() {
            return Err(Error::RootMisaligned { root });
        }
        if !mem.is_ram(root, PAGE) {
            return Err(Error::RootNotRam { root });
        }
        if let Some(visited) = checks.visited.as_deref_mut() {
            visited.clear();
            visited.insert(root.as_u64())?;
        }
        let mut frames = [Frame::default(); ROOT_LEVEL as usize];
        frames[0].node = root.as_u64();
        frames[0].live = table_mask(mem, root.as_u64(), ROOT_LEVEL)?;
        Ok(Cursor {
            checks,
            frames,
            depth: 1,
        })
    }

    /// The next leaf in key order; after an error, `None` forever.
    fn next_leaf<M: PhysMem + ?Sized>(&mut self, mem: &M) -> Result<Option<Leaf>> {
        let next = self.advance(mem);
        if next.is_err() {
            self.depth = 0;
        }
        next
    }

    fn advance<M: PhysMem + ?Sized>(&mut self, mem: &M) -> Result<Option<Leaf>> {
        while let Some(top) = self.depth.checked_sub(1) {
            let Some(frame) = self.frames.get_mut(top) else {
                break;
            };
            let Some(index) = next_live(&frame.live, frame.next) else {
                self.depth = top;
                continue;
            };
            frame.next = index + 1;
            let Frame { node, base, .. } = *frame;
            let level = ROOT_LEVEL - top as u32;
            let table = PhysAddr::new(node);
            let entry = mem
                .read_u64(PhysAddr::new(node + 8 * index as u64))
                .map_err(|source| Error::NodeRead {
                    level,
                    node: table,
                    source,
                })?;
            if entry == 0 {
                continue;
            }
            if level == ROOT_LEVEL && index > MAX_ROOT_SLOT {
                return Err(Error::UnusedRootSlot {
                    node: table,
                    index,
                    entry,
                });
            }
            if entry % PAGE != 0 {
                return Err(Error::EntryMisaligned {
                    level,
                    index,
                    node: table,
                    entry,
                });
            }
            if !mem.is_ram(PhysAddr::new(entry), PAGE) {
                return Err(Error::EntryNotRam {
                    level,
                    index,
                    node: table,
                    entry,
                });
            }
            if self.frames[..=top].iter().any(|f| f.node == entry) {
                return Err(Error::Cycle {
                    level,
                    index,
                    node: table,
                    entry,
                });
            }
            if let Some(visited) = self.checks.visited.as_deref_mut()
                && !visited.insert(entry)?
            {
                return Err(Error::SharedNode {
                    level,
                    index,
                    node: table,
                    entry,
                });
            }
            let base = base | ((index as u64) << level_shift(level));
            if level == 1 {
                return Ok(Some(Leaf { node: entry, base }));
            }
            let live = table_mask(mem, entry, level - 1)?;
            if let Some(child) = self.frames.get_mut(top + 1) {
                *child = Frame {
                    node: entry,
                    base,
                    next: 0,
                    live,
                };
                self.depth = top + 2;
            }
        }
        Ok(None)
    }
}

/// The order of every key in the leaf whose bit 0 has key `base`, or `None`
/// when keys of the leaf must be decoded one by one (the leaf under the
/// all-zero prefix holds orders 38 … 51 and the invalid keys 0 and 1).
fn uniform_order(base: u64) -> Option<u32> {
    if base >> BITMAP_SIZE_LOG2 == 0 {
        return None;
    }
    ORDER_0_LOG2.checked_sub(63 - base.leading_zeros())
}

/// What [`load_leaf`] learnt about a leaf in the buffer.
#[derive(Clone, Copy, Debug)]
struct LeafInfo {
    /// `Some(order)` if every key of the leaf has that order.
    order: Option<u32>,
    /// First and one past the last non-zero word (equal if none).
    first: usize,
    end: usize,
}

/// First and one past the last non-zero word of `buf` (equal if none),
/// found by mask rather than by a compare per word.
fn nonzero_span(buf: &[u64; BITMAP_WORDS]) -> (usize, usize) {
    let mut first = None;
    let mut last = 0;
    for (c, chunk) in buf.chunks(64).enumerate() {
        let mask = nonzero_mask(chunk);
        if mask != 0 {
            first.get_or_insert(c * 64 + mask.trailing_zeros() as usize);
            last = c * 64 + 63 - mask.leading_zeros() as usize;
        }
    }
    first.map_or((BITMAP_WORDS, BITMAP_WORDS), |first| (first, last + 1))
}

/// Read a leaf into `buf` and validate it: every set bit must decode to a
/// block and, if `blocks_in_ram`, every block must be RAM.
fn load_leaf<M: PhysMem + ?Sized>(
    mem: &M,
    leaf: Leaf,
    buf: &mut [u64; BITMAP_WORDS],
    blocks_in_ram: bool,
) -> Result<LeafInfo> {
    let node = PhysAddr::new(leaf.node);
    mem.read_u64s(node, buf).map_err(|source| Error::NodeRead {
        level: 0,
        node,
        source,
    })?;
    let (first, end) = nonzero_span(buf);
    let order = uniform_order(leaf.base);
    let info = LeafInfo { order, first, end };
    if first == end {
        return Ok(info);
    }
    match order {
        Some(order) if blocks_in_ram => check_uniform(mem, leaf, buf, order, first, end)?,
        Some(_) => {}
        None => {
            for (w, &word) in buf.iter().enumerate().take(end).skip(first) {
                let mut bits = word;
                while bits != 0 {
                    let index = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    check_key(mem, leaf, index, blocks_in_ram)?;
                }
            }
        }
    }
    Ok(info)
}

/// Validate one bit of a leaf decoded key by key.
fn check_key<M: PhysMem + ?Sized>(
    mem: &M,
    leaf: Leaf,
    index: usize,
    blocks_in_ram: bool,
) -> Result<(PhysAddr, Order)> {
    let node = PhysAddr::new(leaf.node);
    let key = leaf.base | index as u64;
    let invalid = Error::InvalidKey { node, index, key };
    let (phys, order) = decode_key(key).ok_or(invalid)?;
    let (phys, order) = (
        PhysAddr::new(phys),
        Order::try_new(order).map_err(|_| invalid)?,
    );
    if blocks_in_ram && !mem.is_ram(phys, order.bytes()) {
        return Err(Error::BlockNotRam {
            node,
            index,
            phys,
            order,
        });
    }
    Ok((phys, order))
}

/// Check that the blocks of bits `lo ..= hi` (all of `order`) span RAM.
fn span_is_ram<M: PhysMem + ?Sized>(mem: &M, base: u64, order: u32, lo: usize, hi: usize) -> bool {
    let shift = PAGE_SHIFT + order;
    let start = (base | lo as u64) << shift;
    let len = (((hi - lo) as u128) << shift) + (u128::from(PAGE) << order);
    u64::try_from(len).is_ok_and(|len| mem.is_ram(PhysAddr::new(start), len))
}

/// RAM check of a leaf whose keys all have `order`: one query for the span
/// of its set bits, then per word, then per bit where that fails.
fn check_uniform<M: PhysMem + ?Sized>(
    mem: &M,
    leaf: Leaf,
    buf: &[u64; BITMAP_WORDS],
    order: u32,
    first: usize,
    end: usize,
) -> Result<()> {
    let low_bit = |w: usize, word: u64| w * 64 + word.trailing_zeros() as usize;
    let high_bit = |w: usize, word: u64| w * 64 + 63 - word.leading_zeros() as usize;
    let last = end - 1;
    if span_is_ram(
        mem,
        leaf.base,
        order,
        low_bit(first, buf[first]),
        high_bit(last, buf[last]),
    ) {
        return Ok(());
    }
    for (w, &word) in buf.iter().enumerate().take(end).skip(first) {
        if word == 0 || span_is_ram(mem, leaf.base, order, low_bit(w, word), high_bit(w, word)) {
            continue;
        }
        let mut bits = word;
        while bits != 0 {
            let index = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            check_key(mem, leaf, index, true)?;
        }
    }
    Ok(())
}

/// Call `f` for every block of a validated leaf, in key order.
#[inline(always)]
fn emit_blocks<B>(
    buf: &[u64; BITMAP_WORDS],
    leaf: Leaf,
    info: LeafInfo,
    f: &mut impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let Some(order) = info.order.and_then(|o| Order::try_new(o).ok()) else {
        for (w, &word) in buf.iter().enumerate().take(info.end).skip(info.first) {
            let mut bits = word;
            while bits != 0 {
                let key = leaf.base | (w as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
                let block = decode_key(key).and_then(|(phys, order)| {
                    Order::try_new(order).ok().map(|o| (PhysAddr::new(phys), o))
                });
                if let Some((phys, order)) = block {
                    f(phys, order)?;
                }
            }
        }
        return ControlFlow::Continue(());
    };
    let shift = PAGE_SHIFT + order.get();
    let leaf_phys = leaf.base << shift;
    // Decode set bits into a batch of bit indices, eight at a time without a
    // data-dependent branch per bit (the loop runs popcount/8 times), then
    // call `f` for the batch: one unpredictable branch per word at most,
    // instead of one per set bit.
    let mut batch = [0u16; BATCH + 64];
    let mut n = 0usize;
    for (w, &word) in buf.iter().enumerate().take(info.end).skip(info.first) {
        if word == 0 {
            continue;
        }
        let first = (w * 64) as u16;
        let Some(out) = batch.get_mut(n..n + 64) else {
            break;
        };
        if word == u64::MAX {
            for (j, slot) in out.iter_mut().enumerate() {
                *slot = first + j as u16;
            }
            n += 64;
        } else {
            // Eight slots unconditionally (a sparse word rarely has more),
            // then eight at a time while bits remain. Past the last set bit
            // a slot gets first + 64 and the count does not advance: the
            // slot is overwritten or unused.
            let mut bits = word;
            let mut k = 0usize;
            for octet in out.chunks_exact_mut(8) {
                for slot in octet {
                    *slot = first + bits.trailing_zeros() as u16;
                    k += usize::from(bits != 0);
                    bits &= bits.wrapping_sub(1);
                }
                if bits == 0 {
                    break;
                }
            }
            n += k;
        }
        if n >= BATCH {
            for &bit in batch.iter().take(n) {
                f(
                    PhysAddr::new(leaf_phys.wrapping_add(u64::from(bit) << shift)),
                    order,
                )?;
            }
            n = 0;
        }
    }
    for &bit in batch.iter().take(n) {
        f(
            PhysAddr::new(leaf_phys.wrapping_add(u64::from(bit) << shift)),
            order,
        )?;
    }
    ControlFlow::Continue(())
}

/// Bit indices decoded before the callbacks run (see [`emit_blocks`]).
const BATCH: usize = 256;

/// The shared walk: per-block callbacks over validated leaves.
pub(crate) fn walk_with<M: PhysMem + ?Sized, B>(
    mem: &M,
    root: PhysAddr,
    checks: Checks<'_, '_>,
    mut f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
) -> Result<ControlFlow<B>> {
    let mut cursor = Cursor::new(mem, root, checks)?;
    let mut buf = [0u64; BITMAP_WORDS];
    while let Some(leaf) = cursor.next_leaf(mem)? {
        let info = load_leaf(mem, leaf, &mut buf, cursor.checks.blocks_in_ram)?;
        if let ControlFlow::Break(b) = emit_blocks(&buf, leaf, info, &mut f) {
            return Ok(ControlFlow::Break(b));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Walk an untrusted tree: call `f(phys, order)` for every preserved block
/// in key order (highest order first, then ascending address), the order
/// the next kernel reserves them in.
///
/// `root` is the `preserved-memory-map` value of the KHO FDT. Everything is
/// checked before it is used: the root and every table entry must be
/// page-aligned RAM, root slots above [`MAX_ROOT_SLOT`] must be empty, no
/// node may be reached twice (recorded in `visited`), every leaf bit must
/// decode to a block inside RAM. The depth is fixed (five table levels, then
/// a leaf), so with `visited` bounding the nodes, a walk always ends. On the
/// first problem the walk stops with an [`Error`] naming the level, entry
/// and node; `f` may already have seen earlier blocks.
///
/// `f` returns [`ControlFlow::Break`] to stop early; the walk then returns
/// it. Uses about 4.2 KiB of stack (one leaf buffer, the path).
pub fn walk<M: PhysMem + ?Sized, B>(
    mem: &M,
    root: PhysAddr,
    visited: &mut VisitedSet<'_>,
    f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
) -> Result<ControlFlow<B>> {
    walk_with(mem, root, Checks::untrusted(visited), f)
}

/// Iterate over an untrusted tree's preserved blocks coalesced into runs;
/// checks as [`walk`].
///
/// Each item is a maximal run of blocks of one order that are adjacent both
/// in memory and in key order, so the runs come in key order too (highest
/// order first, then ascending address). After an error the iterator ends.
pub fn ranges<'a, 'b, M: PhysMem + ?Sized>(
    mem: &'a M,
    root: PhysAddr,
    visited: &'a mut VisitedSet<'b>,
) -> Ranges<'a, 'b, M> {
    Ranges::new(mem, root, Checks::untrusted(visited))
}

/// A run of preserved blocks of one order, adjacent in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PreservedRange {
    range: PhysRange,
    order: Order,
}

impl PreservedRange {
    /// A run covering `range` made of blocks of `order`.
    pub const fn new(range: PhysRange, order: Order) -> PreservedRange {
        PreservedRange { range, order }
    }

    /// The memory the run covers.
    pub const fn range(&self) -> PhysRange {
        self.range
    }

    /// The order of every block in the run.
    pub const fn order(&self) -> Order {
        self.order
    }

    /// The number of blocks in the run.
    pub const fn blocks(&self) -> u64 {
        self.range.size() >> (PAGE_SHIFT + self.order.get())
    }
}

/// A run being built: `size` bytes of `order` blocks from `start`.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    size: u64,
    order: u32,
}

impl Run {
    fn finish(self) -> Result<PreservedRange> {
        let range = PhysRange::try_new(PhysAddr::new(self.start), self.size);
        let order = Order::try_new(self.order);
        match (range, order) {
            (Ok(range), Ok(order)) => Ok(PreservedRange { range, order }),
            // A run is made of validated blocks, which never wrap.
            _ => Err(Error::InvalidKey {
                node: PhysAddr::ZERO,
                index: 0,
                key: self.start,
            }),
        }
    }
}

/// Where the iterator is inside the current leaf.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    base: u64,
    /// `Some(order)` for a leaf of one order, `None` to decode bit by bit.
    order: Option<u32>,
    word: usize,
    end: usize,
    /// Bits of `buf[word]` not consumed yet.
    bits: u64,
}

/// Iterator over coalesced runs of preserved blocks; see [`ranges`] and
/// [`RadixTree::ranges`](crate::RadixTree::ranges).
pub struct Ranges<'a, 'b, M: PhysMem + ?Sized> {
    mem: &'a M,
    cursor: Option<Cursor<'a, 'b>>,
    error: Option<Error>,
    buf: [u64; BITMAP_WORDS],
    scan: Scan,
    pending: Option<Run>,
}

impl<M: PhysMem + ?Sized> fmt::Debug for Ranges<'_, '_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranges")
            .field("cursor", &self.cursor)
            .field("error", &self.error)
            .field("scan", &self.scan)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<'a, 'b, M: PhysMem + ?Sized> Ranges<'a, 'b, M> {
    pub(crate) fn new(mem: &'a M, root: PhysAddr, checks: Checks<'a, 'b>) -> Self {
        let (cursor, error) = match Cursor::new(mem, root, checks) {
            Ok(cursor) => (Some(cursor), None),
            Err(err) => (None, Some(err)),
        };
        Ranges {
            mem,
            cursor,
            error,
            buf: [0; BITMAP_WORDS],
            scan: Scan::default(),
            pending: None,
        }
    }

    /// Add a run; returns the pending run it could not be merged with.
    #[inline(always)]
    fn push(&mut self, run: Run) -> Option<Run> {
        if let Some(p) = self.pending.as_mut()
            && p.order == run.order
            && p.start.checked_add(p.size) == Some(run.start)
            && let Some(size) = p.size.checked_add(run.size)
        {
            p.size = size;
            return None;
        }
        self.pending.replace(run)
    }

    /// Continue through the current leaf; returns a finished run as soon as
    /// one is complete, `None` when the leaf is exhausted.
    #[inline]
    fn scan_leaf(&mut self) -> Option<Run> {
        let mut s = self.scan;
        let mut out = None;
        while s.word < s.end {
            if s.bits == 0 {
                s.word += 1;
                s.bits = self.buf.get(s.word).copied().unwrap_or(0);
                continue;
            }
            let run = match s.order {
                Some(order) => {
                    let shift = PAGE_SHIFT + order;
                    let (first, count) = if s.bits == u64::MAX {
                        s.bits = 0;
                        (s.word * 64, 64u64)
                    } else {
                        let tz = s.bits.trailing_zeros();
                        let ones = (s.bits >> tz).trailing_ones();
                        s.bits = if tz + ones >= 64 {
                            0
                        } else {
                            s.bits & !(((1u64 << ones) - 1) << tz)
                        };
                        (s.word * 64 + tz as usize, u64::from(ones))
                    };
                    Run {
                        start: (s.base | first as u64) << shift,
                        size: count << shift,
                        order,
                    }
                }
                None => {
                    let index = s.word * 64 + s.bits.trailing_zeros() as usize;
                    s.bits &= s.bits - 1;
                    // Validated by load_leaf: every set bit decodes.
                    let Some((phys, order)) = decode_key(s.base | index as u64) else {
                        continue;
                    };
                    Run {
                        start: phys,
                        size: PAGE << order,
                        order,
                    }
                }
            };
            if let Some(done) = self.push(run) {
                out = Some(done);
                break;
            }
        }
        self.scan = s;
        out
    }

    /// Move to the next leaf; returns a finished run if loading a full leaf
    /// completed one.
    #[inline(never)]
    fn load_next(&mut self) -> Result<Option<Run>> {
        self.scan = Scan::default();
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(None);
        };
        let Some(leaf) = cursor.next_leaf(self.mem)? else {
            self.cursor = None;
            return Ok(None);
        };
        let info = load_leaf(self.mem, leaf, &mut self.buf, cursor.checks.blocks_in_ram)?;
        if let Some(order) = info.order {
            let shift = PAGE_SHIFT + order;
            let full = self.buf.iter().fold(u64::MAX, |acc, &w| acc & w) == u64::MAX;
            if full && shift + (BITMAP_SIZE_LOG2) < 64 {
                // Fast path: one run for the whole leaf.
                return Ok(self.push(Run {
                    start: leaf.base << shift,
                    size: 1u64 << (BITMAP_SIZE_LOG2 + shift),
                    order,
                }));
            }
        }
        self.scan = Scan {
            base: leaf.base,
            order: info.order,
            word: info.first,
            end: info.end,
            bits: self.buf.get(info.first).copied().unwrap_or(0),
        };
        Ok(None)
    }
}

impl<M: PhysMem + ?Sized> Iterator for Ranges<'_, '_, M> {
    type Item = Result<PreservedRange>;

    #[inline]
    fn next(&mut self) -> Option<Result<PreservedRange>> {
        loop {
            if self.error.is_some() {
                // Runs completed before the problem come first.
                if let Some(run) = self.pending.take() {
                    return Some(run.finish());
                }
                self.cursor = None;
                self.scan = Scan::default();
                return self.error.take().map(Err);
            }
            if let Some(run) = self.scan_leaf() {
                return Some(run.finish());
            }
            if self.cursor.is_none() {
                return self.pending.take().map(Run::finish);
            }
            match self.load_next() {
                Ok(Some(run)) => return Some(run.finish()),
                Ok(None) => {}
                Err(err) => {
                    self.cursor = None;
                    self.error = Some(err);
                }
            }
        }
    }
}

impl<M: PhysMem + ?Sized> core::iter::FusedIterator for Ranges<'_, '_, M> {}
