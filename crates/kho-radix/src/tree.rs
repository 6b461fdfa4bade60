//! The outgoing side: `RadixTree`, the tracker a preserving kernel builds.

use core::ops::ControlFlow;

use kho_abi::radix::{
    BITMAP_SIZE_LOG2, BITMAP_WORDS, MAX_ORDER, ORDER_0_LOG2, ROOT_LEVEL, TABLE_ENTRIES, leaf_bit,
    level_shift, table_index,
};
use kho_mem::{Order, PAGE_SIZE, Pfn, PhysAddr, PhysMem};

use crate::walk::{Checks, Ranges, walk_with};
use crate::{Error, PageBlocks, Result};

/// Orders a key can encode (0 ..= [`MAX_ORDER`]).
const NUM_ORDERS: usize = MAX_ORDER as usize + 1;
/// The lowest order whose keys are all below `2^BITMAP_SIZE_LOG2`: this
/// order and every larger one share the leaf under the all-zero prefix
/// (and some of its words), so they share one [`OrderView`].
const SHARED_LEAF_ORDER: u32 = ORDER_0_LOG2 + 1 - BITMAP_SIZE_LOG2;
/// [`OrderView`]s: one per order below [`SHARED_LEAF_ORDER`], one shared.
const VIEWS: usize = SHARED_LEAF_ORDER as usize + 1;
/// log2 of the leaf directory's slots.
const DIR_LOG2: u32 = 8;
/// Slots of the leaf directory.
const DIR_SLOTS: usize = 1 << DIR_LOG2;
/// A tag no key has (keys are below `2^53`): marks a cache entry empty.
const NONE: u64 = u64::MAX;
/// Byte mask of an offset inside a page.
const PAGE_MASK: u64 = PAGE_SIZE as u64 - 1;
/// Table entries (or leaf words) read at once by the range scans.
const SCAN_CHUNK: usize = 64;

/// How many radix nodes a tree uses.
///
/// Nodes are whole pages with no allocator headers, so
/// `bytes == (tables + leaves) * PAGE_SIZE`. For a [`RadixTree`] the counts
/// are always the minimum the kho-v2 layout needs for the preserved set: the
/// root, one table per distinct key prefix at each lower table level, one
/// leaf per distinct leaf prefix (empty nodes are freed on unpreserve).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Table nodes, the root included.
    pub tables: u64,
    /// Leaf (bitmap) nodes.
    pub leaves: u64,
    /// Bytes of node pages: `(tables + leaves) * PAGE_SIZE`.
    pub bytes: u64,
    /// Nodes freed so far because an unpreserve (or the rollback of a failed
    /// range preserve) left them empty; upstream never frees them.
    pub freed: u64,
}

/// What the tree last saw of one order (or of the orders sharing the
/// all-zero leaf): the part of the per-order summary that follows the
/// caller's position.
///
/// Every entry is exact, not a hint: the tree is the only writer of its
/// nodes and updates or drops an entry whenever it changes what the entry
/// describes.
#[derive(Clone, Copy, Debug)]
struct OrderView {
    /// `key >> level_shift(2)` of the keys whose level-1 table is `l1`
    /// ([`NONE`]: nothing known).
    l1_tag: u64,
    /// That level-1 table; 0 when the tree has none for `l1_tag`.
    l1: u64,
    /// `key >> 6` of the keys whose leaf word is `word` ([`NONE`]: nothing
    /// known).
    word_tag: u64,
    /// The word's address; 0 when its leaf did not exist when the word was
    /// read (`word` is then 0, and an insert looks the leaf up again).
    word_addr: u64,
    /// The word's value, as in memory.
    word: u64,
}

impl OrderView {
    const EMPTY: OrderView = OrderView {
        l1_tag: NONE,
        l1: 0,
        word_tag: NONE,
        word_addr: 0,
        word: 0,
    };
}

/// One slot of the leaf directory: the leaf of the keys with
/// `key >> BITMAP_SIZE_LOG2 == tag`, or 0 when the tree has no such leaf.
#[derive(Clone, Copy, Debug)]
struct DirEntry {
    /// [`NONE`]: empty slot.
    tag: u64,
    leaf: u64,
}

impl DirEntry {
    const EMPTY: DirEntry = DirEntry { tag: NONE, leaf: 0 };
}

/// The kho-v2 preserved-memory radix tree of the kernel that preserves.
///
/// Every node is one page obtained from the [`PhysMem`] passed to each call;
/// the tree owns those pages and assumes nothing else writes them. The
/// struct itself holds the root address, node and block counters and a
/// summary of the tree (below), about 6 KiB and no heap.
///
/// Guarantees beyond upstream:
///
/// - duplicates and overlaps are rejected (upstream silently ignores a
///   duplicate and does not look for overlaps across orders);
/// - every operation is all-or-nothing: on any error the preserved set and
///   the node pages are as before the call (node allocation failures
///   included, and range operations roll back);
/// - empty leaves and tables are freed on unpreserve, so
///   [`node_stats`](RadixTree::node_stats) is always the minimum.
///
/// # Cost
///
/// The tree keeps a per-order summary beside the nodes, exact at all
/// times: for each order, the leaf word it last read or wrote (value and
/// address) and the level-1 table above it, and a direct-mapped directory
/// of leaves (256 slots, any order) that also remembers where no leaf
/// exists. "Is any block of order `o'` in this range" is then answered
/// from the summary when the range is in the remembered word, with one
/// leaf read when the directory knows the leaf, and with a descent only
/// otherwise.
///
/// - Preserving or unpreserving one block costs one leaf-word write when
///   the word is the one last used for its order, one read more when the
///   directory knows its leaf, and at most one six-level descent otherwise.
/// - The tree also keeps the envelope of the preserved frames (lowest
///   start, highest end). A block wholly above or below it cannot overlap
///   anything, so blocks preserved in address order, ascending or
///   descending, skip the overlap check whatever their orders. When the
///   block's leaf word is the one last used for its order, the whole call
///   is then a bit test and one store, inlined into the caller.
/// - Otherwise, with blocks of other orders preserved, the overlap check asks, for
///   each other order `o'` present, about the one block of order `o'` that
///   could contain this one (`o' > order`), or about the `2^(order - o')`
///   keys this block covers (`o' < order`): a bit test in the summary when
///   the word is remembered, else a word (or, past 64 keys, a run of words
///   or table entries) read. A larger order is skipped without a look when
///   the block's own leaf word (read anyway) holds a preserved block of
///   the same order that a block of order `o'` here would also cover:
///   blocks never overlap, so there is none. In a set of interleaved folio
///   sizes this skips most of them.
/// - [`preserve_range`](RadixTree::preserve_range) asks once, per order
///   present, whether anything overlaps the whole range; if nothing does,
///   its blocks go in without per-block overlap checks.
#[derive(Debug)]
pub struct RadixTree {
    root: PhysAddr,
    max_order: Order,
    tables: u64,
    leaves: u64,
    freed: u64,
    /// Preserved blocks per order.
    blocks: [u64; NUM_ORDERS],
    /// Bit `o` set iff `blocks[o] != 0`.
    present: u64,
    /// Every preserved block lies in the frames `lo .. hi` (an envelope,
    /// not necessarily tight after an unpreserve; `lo > hi` when empty). A
    /// block wholly outside it overlaps nothing: blocks preserved in
    /// address order (either direction) skip the overlap check.
    lo: u64,
    hi: u64,
    /// Per order, what the tree last saw (see [`OrderView`]).
    views: [OrderView; VIEWS],
    /// Leaves by `key >> BITMAP_SIZE_LOG2`, direct-mapped.
    dir: [DirEntry; DIR_SLOTS],
    /// Page 0 was handed out as a node: it cannot be one (a table entry of
    /// 0 means "empty"), so the tree keeps it allocated and unused.
    zero_page_held: bool,
}

/// `addr + 8 * index`: the address of entry or word `index` of a node page.
#[inline(always)]
const fn slot(node: u64, index: usize) -> u64 {
    node + 8 * index as u64
}

/// The [`OrderView`] of `order`.
#[inline(always)]
const fn view_of(order: u32) -> usize {
    if order < SHARED_LEAF_ORDER {
        order as usize
    } else {
        SHARED_LEAF_ORDER as usize
    }
}

/// The directory slot of leaf tag `tag` (multiplicative hashing).
#[inline(always)]
const fn dir_index(tag: u64) -> usize {
    (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - DIR_LOG2)) as usize
}

/// Bits `lo ..= hi` (`lo <= hi < 64`) of a word.
#[inline(always)]
const fn bit_range(lo: u64, hi: u64) -> u64 {
    (u64::MAX << lo) & (u64::MAX >> (63 - hi))
}

#[inline(always)]
fn read<M: PhysMem + ?Sized>(mem: &M, addr: u64) -> Result<u64> {
    mem.read_u64(PhysAddr::new(addr))
        .map_err(|source| Error::NodeAccess {
            node: PhysAddr::new(addr & !PAGE_MASK),
            source,
        })
}

/// Read `out.len()` consecutive words of one node page.
fn read_words<M: PhysMem + ?Sized>(mem: &M, addr: u64, out: &mut [u64]) -> Result<()> {
    mem.read_u64s(PhysAddr::new(addr), out)
        .map_err(|source| Error::NodeAccess {
            node: PhysAddr::new(addr & !PAGE_MASK),
            source,
        })
}

#[inline(always)]
fn write<M: PhysMem + ?Sized>(mem: &mut M, addr: u64, value: u64) -> Result<()> {
    mem.write_u64(PhysAddr::new(addr), value)
        .map_err(|source| Error::NodeAccess {
            node: PhysAddr::new(addr & !PAGE_MASK),
            source,
        })
}

/// Whether every `u64` of the node page is zero, knowing that slot `hint`
/// is. Scans outward from `hint`, where a neighbour is most likely set when
/// blocks are removed in address order (either direction).
#[inline(never)]
fn node_is_empty<M: PhysMem + ?Sized>(mem: &M, node: u64, hint: usize) -> Result<bool> {
    for d in 1..TABLE_ENTRIES {
        if let Some(below) = hint.checked_sub(d)
            && read(mem, slot(node, below))? != 0
        {
            return Ok(false);
        }
        let above = hint + d;
        if above < TABLE_ENTRIES && read(mem, slot(node, above))? != 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The key of the block at `pfn` of `order` (spec §3.3, as
/// [`encode_key`](kho_abi::radix::encode_key) computes it); the caller has
/// checked the alignment, the order and the frame number.
#[inline(always)]
const fn key_of(pfn: u64, order: u32) -> u64 {
    (1u64 << (ORDER_0_LOG2 - order)) | (pfn >> order)
}

/// `(pfn, order)` of a key found in our own tree.
fn block_of(key: u64) -> (Pfn, Order) {
    match kho_abi::radix::decode_key(key) {
        Some((phys, order)) => (
            PhysAddr::new(phys).pfn_floor(),
            Order::try_new(order).unwrap_or(Order::ZERO),
        ),
        None => (Pfn::default(), Order::ZERO),
    }
}

/// The overlap error for the block `(pfn, order)` and the preserved `key`.
fn overlap(pfn: Pfn, order: Order, key: u64) -> Error {
    let (existing_pfn, existing_order) = block_of(key);
    Error::Overlap {
        pfn,
        order,
        existing_pfn,
        existing_order,
    }
}

impl RadixTree {
    /// An empty tree: allocates its root table, accepting every order up to
    /// [`Order::MAX`] (the key-encoding limit).
    pub fn new<M: PhysMem + ?Sized>(mem: &mut M) -> Result<RadixTree> {
        RadixTree::with_max_order(mem, Order::MAX)
    }

    /// An empty tree that rejects blocks above `max_order` with
    /// [`Error::OrderTooLarge`] and caps the blocks of range operations at
    /// `max_order` (e.g. a kernel's largest folio order).
    pub fn with_max_order<M: PhysMem + ?Sized>(mem: &mut M, max_order: Order) -> Result<RadixTree> {
        let mut tree = RadixTree {
            root: PhysAddr::ZERO,
            max_order,
            tables: 0,
            leaves: 0,
            freed: 0,
            blocks: [0; NUM_ORDERS],
            present: 0,
            lo: u64::MAX,
            hi: 0,
            views: [OrderView::EMPTY; VIEWS],
            dir: [DirEntry::EMPTY; DIR_SLOTS],
            zero_page_held: false,
        };
        tree.root = PhysAddr::new(tree.alloc_node(mem, ROOT_LEVEL)?);
        tree.tables = 1;
        Ok(tree)
    }

    /// Physical address of the root table: the `preserved-memory-map` value
    /// of the KHO FDT.
    pub const fn root(&self) -> PhysAddr {
        self.root
    }

    /// The largest order this tree accepts.
    pub const fn max_order(&self) -> Order {
        self.max_order
    }

    /// Node counts and bytes (see [`NodeStats`]).
    pub const fn node_stats(&self) -> NodeStats {
        NodeStats {
            tables: self.tables,
            leaves: self.leaves,
            bytes: (self.tables + self.leaves) * PAGE_SIZE as u64,
            freed: self.freed,
        }
    }

    /// Number of preserved blocks.
    pub fn preserved_blocks(&self) -> u64 {
        self.blocks.iter().sum()
    }

    /// Number of preserved pages (blocks weighted by their size).
    pub fn preserved_pages(&self) -> u64 {
        // Blocks never overlap, so the sum is at most 2^52.
        self.blocks.iter().enumerate().map(|(o, &n)| n << o).sum()
    }

    /// Whether no block is preserved.
    pub const fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Record the block of `2^order` pages at `pfn` as preserved.
    ///
    /// Errors: [`Error::Misaligned`], [`Error::OrderTooLarge`],
    /// [`Error::AlreadyPreserved`] (same block), [`Error::Overlap`] (a
    /// preserved block of another order shares a page), [`Error::NodeAlloc`]
    /// (nothing was inserted and every page allocated by this call was
    /// freed), [`Error::NodeAccess`].
    #[inline(always)]
    pub fn preserve<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        // The common case, small enough to inline into the caller's loop:
        // a valid block of the only order present whose leaf word the
        // summary holds, bit clear. One store to the node page and three to
        // the summary; everything else takes the out-of-line path.
        let o = order.get();
        let p = pfn.as_u64();
        let key = key_of(p, o);
        let v = view_of(o);
        let view = &self.views[v];
        let mask = 1u64 << (key % 64);
        // `p + 2^o` cannot wrap: a `Pfn` is below 2^52, `o` at most 51.
        let end = p + (1u64 << o);
        if order <= self.max_order
            && p & ((1u64 << o) - 1) == 0
            && (self.present & !(1u64 << o) == 0 || p >= self.hi || end <= self.lo)
            && view.word_tag == key >> 6
            && view.word_addr != 0
            && view.word & mask == 0
        {
            let (addr, value) = (view.word_addr, view.word | mask);
            if write(mem, addr, value).is_ok() {
                self.views[v].word = value;
                if let Some(n) = self.blocks.get_mut(o as usize) {
                    *n += 1;
                }
                self.present |= 1u64 << o;
                self.lo = self.lo.min(p);
                self.hi = self.hi.max(end);
                return Ok(());
            }
        }
        self.preserve_slow(mem, pfn, order)
    }

    /// [`preserve`](Self::preserve) for every case but the common one.
    #[inline(never)]
    fn preserve_slow<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        let o = self.check_block(pfn, order)?;
        let (p, end) = (pfn.as_u64(), pfn.as_u64() + (1u64 << o));
        if self.present & !(1u64 << o) != 0 && p < self.hi && end > self.lo {
            // The block's own leaf word (read anyway) shows which larger
            // orders cannot hold it.
            let key = key_of(pfn.as_u64(), o);
            let word = self.word_of(mem, key, view_of(o))?;
            if word & (1u64 << (key % 64)) != 0 {
                return Err(Error::AlreadyPreserved { pfn, order });
            }
            self.check_overlap(mem, pfn, order, word)?;
        }
        self.insert(mem, pfn, order)
    }

    /// Set the bit of a checked block that overlaps no block of another
    /// order; [`Error::AlreadyPreserved`] if it is set.
    #[inline(always)]
    fn insert<M: PhysMem + ?Sized>(&mut self, mem: &mut M, pfn: Pfn, order: Order) -> Result<()> {
        let o = order.get();
        let key = key_of(pfn.as_u64(), o);
        let v = view_of(o);
        let word = self.word_of(mem, key, v)?;
        let mask = 1u64 << (key % 64);
        if word & mask != 0 {
            return Err(Error::AlreadyPreserved { pfn, order });
        }
        let mut addr = self.views[v].word_addr;
        if addr == 0 {
            let leaf = self.leaf_for_insert(mem, key, v)?;
            addr = slot(leaf, leaf_bit(key) / 64);
        }
        self.write_word(mem, key, v, addr, word | mask)?;
        if let Some(n) = self.blocks.get_mut(o as usize) {
            *n += 1;
        }
        self.present |= 1u64 << o;
        let p = pfn.as_u64();
        self.lo = self.lo.min(p);
        self.hi = self.hi.max(p + (1u64 << o));
        Ok(())
    }

    /// The leaf for `key`, created if missing (the slow path of
    /// [`insert`](Self::insert), kept out of line).
    #[inline(never)]
    fn leaf_for_insert<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        key: u64,
        v: usize,
    ) -> Result<u64> {
        let leaf = self.leaf_of(mem, key, v)?;
        if leaf != 0 {
            return Ok(leaf);
        }
        self.create_path(mem, key, v)
    }

    /// Remove the block of `2^order` pages at `pfn`, which must have been
    /// preserved with exactly this order; frees the leaf and tables it leaves
    /// empty.
    ///
    /// Errors: [`Error::Misaligned`], [`Error::OrderTooLarge`],
    /// [`Error::NotPreserved`], [`Error::NodeAccess`].
    #[inline]
    pub fn unpreserve<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        let o = self.check_block(pfn, order)?;
        let not_preserved = Error::NotPreserved { pfn, order };
        if self.present & (1u64 << o) == 0 {
            return Err(not_preserved);
        }
        let key = key_of(pfn.as_u64(), o);
        let v = view_of(o);
        let word = self.word_of(mem, key, v)?;
        let mask = 1u64 << (key % 64);
        let addr = self.views[v].word_addr;
        if word & mask == 0 || addr == 0 {
            return Err(not_preserved);
        }
        let word = word & !mask;
        self.write_word(mem, key, v, addr, word)?;
        if let Some(n) = self.blocks.get_mut(o as usize) {
            *n -= 1;
            if *n == 0 {
                self.present &= !(1u64 << o);
                if self.present == 0 {
                    (self.lo, self.hi) = (u64::MAX, 0);
                }
            }
        }
        if word == 0 && node_is_empty(mem, addr & !PAGE_MASK, leaf_bit(key) / 64)? {
            self.prune(mem, key)?;
        }
        Ok(())
    }

    /// Preserve the pages `[start, start + nr_pages)` as the naturally
    /// aligned blocks [`PageBlocks`] yields (capped at
    /// [`max_order`](RadixTree::max_order)), all or nothing: on error every
    /// block this call inserted is removed again. `nr_pages == 0` is a no-op.
    ///
    /// The range is checked against every order present once; when nothing
    /// overlaps it, its blocks are inserted without per-block checks.
    pub fn preserve_range<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        start: Pfn,
        nr_pages: u64,
    ) -> Result<()> {
        let blocks = PageBlocks::with_max_order(start, nr_pages, self.max_order)?;
        let free = nr_pages == 0 || self.range_is_free(mem, start.as_u64(), nr_pages)?;
        for (done, (pfn, order)) in blocks.clone().enumerate() {
            let inserted = if free {
                self.insert(mem, pfn, order)
            } else {
                self.preserve(mem, pfn, order)
            };
            if let Err(err) = inserted {
                for (pfn, order) in blocks.take(done) {
                    // Cannot fail for blocks just inserted unless the
                    // PhysMem stopped backing our nodes; the first error is
                    // the one worth reporting.
                    let _ = self.unpreserve(mem, pfn, order);
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Remove the pages `[start, start + nr_pages)`, decomposed exactly as
    /// [`preserve_range`](RadixTree::preserve_range) does, all or nothing:
    /// every block is checked to be preserved before any is removed.
    pub fn unpreserve_range<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        start: Pfn,
        nr_pages: u64,
    ) -> Result<()> {
        let blocks = PageBlocks::with_max_order(start, nr_pages, self.max_order)?;
        for (pfn, order) in blocks.clone() {
            let o = order.get();
            let key = key_of(pfn.as_u64(), o);
            if self.present & (1u64 << o) == 0
                || self.word_of(mem, key, view_of(o))? & (1u64 << (key % 64)) == 0
            {
                return Err(Error::NotPreserved { pfn, order });
            }
        }
        for (pfn, order) in blocks {
            self.unpreserve(mem, pfn, order)?;
        }
        Ok(())
    }

    /// Whether exactly the block of `2^order` pages at `pfn` is preserved.
    pub fn is_preserved<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        pfn: Pfn,
        order: Order,
    ) -> Result<bool> {
        let o = self.check_block(pfn, order)?;
        if self.present & (1u64 << o) == 0 {
            return Ok(false);
        }
        self.test_key(mem, key_of(pfn.as_u64(), o), o)
    }

    /// The preserved block containing page `pfn`, if any.
    pub fn find_block<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        pfn: Pfn,
    ) -> Result<Option<(Pfn, Order)>> {
        let mut orders = self.present;
        while orders != 0 {
            let o = orders.trailing_zeros();
            orders &= orders - 1;
            let key = key_of(pfn.as_u64() & !((1u64 << o) - 1), o);
            if self.test_key(mem, key, o)? {
                return Ok(Some(block_of(key)));
            }
        }
        Ok(None)
    }

    /// Visit every preserved block in key order (highest order first, then
    /// ascending address), as the next kernel's walk will.
    ///
    /// This is the trusted walk of our own tree; a kernel reading a tree it
    /// did not build uses [`walk`](crate::walk) instead.
    pub fn walk<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        walk_with(mem, self.root, Checks::trusted(), f)
    }

    /// The preserved blocks coalesced into runs, as [`ranges`](crate::ranges)
    /// yields them, for our own tree.
    pub fn ranges<'a, M: PhysMem + ?Sized>(&self, mem: &'a M) -> Ranges<'a, 'static, M> {
        Ranges::new(mem, self.root, Checks::trusted())
    }

    /// Free every node page, the root included. Use it when the tree will
    /// not be handed over after all.
    pub fn destroy<M: PhysMem + ?Sized>(self, mem: &mut M) -> Result<()> {
        free_subtree(mem, self.root.as_u64(), ROOT_LEVEL)?;
        if self.zero_page_held {
            mem.free_page(PhysAddr::ZERO)
                .map_err(|source| Error::NodeAccess {
                    node: PhysAddr::ZERO,
                    source,
                })?;
        }
        Ok(())
    }

    /// Validate a block's alignment and order; returns the order as `u32`.
    #[inline(always)]
    fn check_block(&self, pfn: Pfn, order: Order) -> Result<u32> {
        if order > self.max_order {
            return Err(Error::OrderTooLarge {
                order,
                max: self.max_order,
            });
        }
        if !pfn.is_aligned(order) {
            return Err(Error::Misaligned { pfn, order });
        }
        Ok(order.get())
    }

    /// Reject the block if a preserved block of another order shares a page
    /// with it. Orders are checked larger ones first (ascending), then
    /// smaller ones (ascending); the error names the first conflict found,
    /// the lowest address within an order.
    ///
    /// `word` is the block's own leaf word. Blocks never overlap, so a
    /// preserved block of the same order among the `2^(big - order)` that a
    /// block of order `big` would cover rules that block out without a look
    /// at its order.
    #[inline(always)]
    fn check_overlap<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        pfn: Pfn,
        order: Order,
        word: u64,
    ) -> Result<()> {
        let o = order.get();
        let p = pfn.as_u64();
        let others = self.present & !(1u64 << o);
        let bit = (p >> o) % 64;
        // Same-order neighbours in the word; meaningless where the word
        // holds keys of several orders (orders above 46, whose order bit is
        // among the word's 6 index bits).
        let siblings = if o + 6 <= ORDER_0_LOG2 { word } else { 0 };
        // Larger orders a same-order neighbour rules out: `o + s` (s < 6)
        // when the 2^s-aligned group of our bit holds one, every order from
        // `o + 6` (a block covering the whole word) when the word does.
        let mut ruled_out = 0u64;
        if siblings != 0 {
            // `o <= 46` here: the shifts stay below 64.
            ruled_out = u64::MAX << (o + 6);
            for s in 1..6u32 {
                let n = 1u64 << s;
                let group = ((1u64 << n) - 1) << (bit & !(n - 1));
                ruled_out |= u64::from(siblings & group != 0) << (o + s);
            }
        }
        // Larger orders: only the one block of each that would contain us.
        let mut larger = others & !((2u64 << o) - 1) & !ruled_out;
        while larger != 0 {
            let big = larger.trailing_zeros();
            larger &= larger - 1;
            let key = key_of(p & !((1u64 << big) - 1), big);
            if self.word_of(mem, key, view_of(big))? & (1u64 << (key % 64)) != 0 {
                return Err(overlap(pfn, order, key));
            }
        }
        // Smaller orders: any of the 2^(o - small) keys we cover.
        let mut smaller = others & ((1u64 << o) - 1);
        while smaller != 0 {
            let small = smaller.trailing_zeros();
            smaller &= smaller - 1;
            let span = o - small;
            let first = key_of(p, small);
            let found = if span < 6 {
                // Inside one word (`first` is aligned to 2^span).
                let keys = ((1u64 << (1u64 << span)) - 1) << (first % 64);
                let hits = self.word_of(mem, first, view_of(small))? & keys;
                (hits != 0).then(|| (first & !63) | u64::from(hits.trailing_zeros()))
            } else {
                let last = first + ((1u64 << span) - 1);
                self.first_key_between(mem, first, last, view_of(small))?
            };
            if let Some(key) = found {
                return Err(overlap(pfn, order, key));
            }
        }
        Ok(())
    }

    /// Whether no preserved block shares a page with
    /// `[start, start + nr_pages)` (`nr_pages > 0`, the range checked by
    /// [`PageBlocks`]).
    fn range_is_free<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        start: u64,
        nr_pages: u64,
    ) -> Result<bool> {
        let last = start + (nr_pages - 1);
        if last < self.lo || start >= self.hi {
            return Ok(true);
        }
        let mut orders = self.present;
        while orders != 0 {
            let o = orders.trailing_zeros();
            orders &= orders - 1;
            let align = !((1u64 << o) - 1);
            let lo = key_of(start & align, o);
            let hi = key_of(last & align, o);
            if self.first_key_between(mem, lo, hi, view_of(o))?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The smallest preserved key in `lo ..= hi`, all keys of one order
    /// (whose view is `v`).
    fn first_key_between<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        lo: u64,
        hi: u64,
        v: usize,
    ) -> Result<Option<u64>> {
        if lo >> 6 == hi >> 6 {
            // Inside one word: the summary may hold it.
            let hits = self.word_of(mem, lo, v)? & bit_range(lo % 64, hi % 64);
            return Ok((hits != 0).then(|| (lo & !63) | u64::from(hits.trailing_zeros())));
        }
        if lo >> BITMAP_SIZE_LOG2 == hi >> BITMAP_SIZE_LOG2 {
            // Inside one leaf.
            let leaf = self.leaf_of(mem, lo, v)?;
            if leaf == 0 {
                return Ok(None);
            }
            return leaf_first(mem, leaf, lo, hi);
        }
        tree_first(mem, self.root.as_u64(), ROOT_LEVEL, 0, lo, hi)
    }

    /// Whether `key` (of `order`) is set, without touching the summary.
    fn test_key<M: PhysMem + ?Sized>(&self, mem: &M, key: u64, order: u32) -> Result<bool> {
        let v = view_of(order);
        let view = &self.views[v];
        let word = if view.word_tag == key >> 6 {
            view.word
        } else {
            let leaf = self.peek_leaf(mem, key, v)?;
            if leaf == 0 {
                return Ok(false);
            }
            read(mem, slot(leaf, leaf_bit(key) / 64))?
        };
        Ok(word & (1u64 << (key % 64)) != 0)
    }

    /// The leaf of `key` (0 if absent), using but not updating the summary.
    fn peek_leaf<M: PhysMem + ?Sized>(&self, mem: &M, key: u64, v: usize) -> Result<u64> {
        let tag = key >> BITMAP_SIZE_LOG2;
        let entry = self.dir[dir_index(tag)];
        if entry.tag == tag {
            return Ok(entry.leaf);
        }
        let view = &self.views[v];
        let l1 = if view.l1_tag == key >> level_shift(2) {
            view.l1
        } else {
            find_node(mem, self.root.as_u64(), key, 1)?
        };
        if l1 == 0 {
            return Ok(0);
        }
        read(mem, slot(l1, table_index(key, 1)))
    }

    /// The leaf word holding `key`'s bit (0 if its leaf does not exist);
    /// the view `v` of `key`'s order remembers it afterwards.
    #[inline(always)]
    fn word_of<M: PhysMem + ?Sized>(&mut self, mem: &M, key: u64, v: usize) -> Result<u64> {
        let view = &self.views[v];
        if view.word_tag == key >> 6 {
            return Ok(view.word);
        }
        self.load_word(mem, key, v)
    }

    /// [`word_of`](Self::word_of) when the view holds another word.
    #[inline(never)]
    fn load_word<M: PhysMem + ?Sized>(&mut self, mem: &M, key: u64, v: usize) -> Result<u64> {
        let leaf = self.leaf_of(mem, key, v)?;
        let (addr, word) = if leaf == 0 {
            (0, 0)
        } else {
            let addr = slot(leaf, leaf_bit(key) / 64);
            (addr, read(mem, addr)?)
        };
        let view = &mut self.views[v];
        view.word_tag = key >> 6;
        view.word_addr = addr;
        view.word = word;
        Ok(word)
    }

    /// The leaf of `key` (0 if absent), from the directory or the tree;
    /// the directory remembers it afterwards, absent or not.
    #[inline(always)]
    fn leaf_of<M: PhysMem + ?Sized>(&mut self, mem: &M, key: u64, v: usize) -> Result<u64> {
        let tag = key >> BITMAP_SIZE_LOG2;
        let entry = self.dir[dir_index(tag)];
        if entry.tag == tag {
            return Ok(entry.leaf);
        }
        let leaf = self.find_leaf(mem, key, v)?;
        self.dir[dir_index(tag)] = DirEntry { tag, leaf };
        Ok(leaf)
    }

    /// Look the leaf of `key` up in the tree, through the level-1 table the
    /// view `v` remembers (and remembering the one found).
    fn find_leaf<M: PhysMem + ?Sized>(&mut self, mem: &M, key: u64, v: usize) -> Result<u64> {
        let l1_tag = key >> level_shift(2);
        let view = &self.views[v];
        let l1 = if view.l1_tag == l1_tag {
            view.l1
        } else {
            let l1 = find_node(mem, self.root.as_u64(), key, 1)?;
            let view = &mut self.views[v];
            view.l1_tag = l1_tag;
            view.l1 = l1;
            l1
        };
        if l1 == 0 {
            return Ok(0);
        }
        read(mem, slot(l1, table_index(key, 1)))
    }

    /// Write a leaf word of the view `v` (at `addr`, holding `key`'s bit),
    /// keeping the view's copy equal to memory.
    #[inline(always)]
    fn write_word<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        key: u64,
        v: usize,
        addr: u64,
        value: u64,
    ) -> Result<()> {
        let view = &mut self.views[v];
        if let Err(err) = write(mem, addr, value) {
            // Memory is the truth: forget the copy.
            view.word_tag = NONE;
            return Err(err);
        }
        view.word_tag = key >> 6;
        view.word_addr = addr;
        view.word = value;
        Ok(())
    }

    /// Allocate one zeroed node page for `level` (for the error only).
    fn alloc_node<M: PhysMem + ?Sized>(&mut self, mem: &mut M, level: u32) -> Result<u64> {
        let alloc = |mem: &mut M| {
            mem.alloc_page()
                .map(PhysAddr::as_u64)
                .map_err(|source| Error::NodeAlloc { level, source })
        };
        let page = alloc(mem)?;
        if page != 0 {
            return Ok(page);
        }
        // Page 0 cannot be a node (0 is "no child"): keep it, ask again.
        self.zero_page_held = true;
        alloc(mem)
    }

    /// Allocate and link the missing nodes of `key`'s path; returns the new
    /// leaf. Every node is allocated before any is linked, and the existing
    /// tree is touched by a single write (the anchor entry), last.
    fn create_path<M: PhysMem + ?Sized>(&mut self, mem: &mut M, key: u64, v: usize) -> Result<u64> {
        let mut node = self.root.as_u64();
        let mut level = ROOT_LEVEL;
        loop {
            let child = read(mem, slot(node, table_index(key, level)))?;
            if child == 0 {
                break;
            }
            if level == 1 {
                self.learn_leaf(key, v, node, child);
                return Ok(child);
            }
            node = child;
            level -= 1;
        }
        // `node` (at `level`) lacks the child: nodes for levels level-1 ..= 0.
        let count = level as usize;
        let mut new = [0u64; ROOT_LEVEL as usize];
        for i in 0..count {
            match self.alloc_node(mem, level - 1 - i as u32) {
                Ok(page) => new[i] = page,
                Err(err) => {
                    for &page in &new[..i] {
                        // Freshly allocated pages: freeing them cannot
                        // reasonably fail, and the allocation error is the
                        // one to report.
                        let _ = mem.free_page(PhysAddr::new(page));
                    }
                    return Err(err);
                }
            }
        }
        // new[i] is the table at level (level - 1 - i); link bottom-up.
        for i in (0..count - 1).rev() {
            let at = level - 1 - i as u32;
            write(mem, slot(new[i], table_index(key, at)), new[i + 1])?;
        }
        write(mem, slot(node, table_index(key, level)), new[0])?;
        self.tables += count as u64 - 1;
        self.leaves += 1;
        let leaf = new[count - 1];
        let l1 = if count >= 2 { new[count - 2] } else { node };
        self.learn_leaf(key, v, l1, leaf);
        Ok(leaf)
    }

    /// Record in the summary that `key`'s level-1 table is `l1` and its
    /// leaf is `leaf` (both exist now).
    fn learn_leaf(&mut self, key: u64, v: usize, l1: u64, leaf: u64) {
        let tag = key >> BITMAP_SIZE_LOG2;
        self.dir[dir_index(tag)] = DirEntry { tag, leaf };
        let l1_tag = key >> level_shift(2);
        // Orders above 28 share level-1 tables: every view may know this one.
        for view in &mut self.views {
            if view.l1_tag == l1_tag {
                view.l1 = l1;
            }
        }
        let view = &mut self.views[v];
        if view.l1_tag == NONE {
            view.l1_tag = l1_tag;
            view.l1 = l1;
        }
    }

    /// Free the (empty) leaf of `key` and every table the removal empties;
    /// the root stays.
    #[inline(never)]
    fn prune<M: PhysMem + ?Sized>(&mut self, mem: &mut M, key: u64) -> Result<()> {
        // path[l] = the node at level l on key's path (path[0] = leaf).
        let mut path = [0u64; ROOT_LEVEL as usize + 1];
        path[ROOT_LEVEL as usize] = self.root.as_u64();
        for level in (1..=ROOT_LEVEL).rev() {
            let child = read(mem, slot(path[level as usize], table_index(key, level)))?;
            if child == 0 {
                return Ok(());
            }
            path[level as usize - 1] = child;
        }
        for level in 1..=ROOT_LEVEL {
            let parent = path[level as usize];
            let child = path[level as usize - 1];
            let index = table_index(key, level);
            write(mem, slot(parent, index), 0)?;
            self.forget(key, level - 1, child);
            mem.free_page(PhysAddr::new(child))
                .map_err(|source| Error::NodeAccess {
                    node: PhysAddr::new(child),
                    source,
                })?;
            self.freed += 1;
            if level == 1 {
                self.leaves -= 1;
            } else {
                self.tables -= 1;
            }
            if level == ROOT_LEVEL || !node_is_empty(mem, parent, index)? {
                break;
            }
        }
        Ok(())
    }

    /// Update the summary for `node`, the node at `level` on `key`'s path,
    /// which is being unlinked (it is empty, so is everything it covered).
    fn forget(&mut self, key: u64, level: u32, node: u64) {
        if level == 0 {
            let tag = key >> BITMAP_SIZE_LOG2;
            let entry = &mut self.dir[dir_index(tag)];
            if entry.tag == tag {
                entry.leaf = 0;
            }
        }
        for view in &mut self.views {
            // The tags stay valid: there is no such node any more.
            if view.l1 == node {
                view.l1 = 0;
            }
            if view.word_addr != 0 && view.word_addr & !PAGE_MASK == node {
                view.word_addr = 0;
            }
        }
    }
}

/// The table at `level` on `key`'s path from `root` (0 if absent).
fn find_node<M: PhysMem + ?Sized>(mem: &M, root: u64, key: u64, level: u32) -> Result<u64> {
    let mut node = root;
    let mut at = ROOT_LEVEL;
    while at > level {
        node = read(mem, slot(node, table_index(key, at)))?;
        if node == 0 {
            return Ok(0);
        }
        at -= 1;
    }
    Ok(node)
}

/// The smallest key set in `leaf` within `lo ..= hi` (both keys of this
/// leaf).
fn leaf_first<M: PhysMem + ?Sized>(mem: &M, leaf: u64, lo: u64, hi: u64) -> Result<Option<u64>> {
    let base = lo & !((1u64 << BITMAP_SIZE_LOG2) - 1);
    let first = leaf_bit(lo) / 64;
    let last = leaf_bit(hi) / 64;
    let mut buf = [0u64; SCAN_CHUNK];
    let mut w = first;
    while w <= last {
        let n = (last + 1 - w).min(SCAN_CHUNK);
        let words = &mut buf[..n];
        read_words(mem, slot(leaf, w), words)?;
        for (i, &word) in words.iter().enumerate() {
            let at = w + i;
            let mut bits = word;
            if at == first {
                bits &= u64::MAX << (lo % 64);
            }
            if at == last {
                bits &= u64::MAX >> (63 - hi % 64);
            }
            if bits != 0 {
                return Ok(Some(
                    base | (at as u64 * 64 + u64::from(bits.trailing_zeros())),
                ));
            }
        }
        w += n;
    }
    Ok(None)
}

/// The smallest key set under the table `node` at `level` (whose keys
/// share the bits of `base` above the level) within `lo ..= hi`.
fn tree_first<M: PhysMem + ?Sized>(
    mem: &M,
    node: u64,
    level: u32,
    base: u64,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>> {
    let shift = level_shift(level);
    let span = (1u64 << shift) - 1;
    let first = table_index(lo, level);
    let last = table_index(hi, level);
    let mut buf = [0u64; SCAN_CHUNK];
    let mut index = first;
    while index <= last {
        let n = (last + 1 - index).min(SCAN_CHUNK);
        let entries = &mut buf[..n];
        read_words(mem, slot(node, index), entries)?;
        for (i, &child) in entries.iter().enumerate() {
            if child == 0 {
                continue;
            }
            let child_base = base | (((index + i) as u64) << shift);
            let (from, to) = (lo.max(child_base), hi.min(child_base | span));
            let found = if level == 1 {
                leaf_first(mem, child, from, to)?
            } else if from == child_base && to == child_base | span {
                // A whole subtree: never empty in our tree.
                leftmost_key(mem, child, level - 1, child_base)?
            } else {
                tree_first(mem, child, level - 1, child_base, from, to)?
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        index += n;
    }
    Ok(None)
}

/// The smallest key set under `node` (at `level`, 0 = leaf) whose keys
/// start at `base`.
fn leftmost_key<M: PhysMem + ?Sized>(
    mem: &M,
    node: u64,
    level: u32,
    base: u64,
) -> Result<Option<u64>> {
    if level == 0 {
        for w in 0..BITMAP_WORDS {
            let word = read(mem, slot(node, w))?;
            if word != 0 {
                return Ok(Some(
                    base | (w as u64 * 64 + u64::from(word.trailing_zeros())),
                ));
            }
        }
        return Ok(None);
    }
    for index in 0..TABLE_ENTRIES {
        let child = read(mem, slot(node, index))?;
        if child != 0 {
            let child_base = base | ((index as u64) << level_shift(level));
            if let Some(key) = leftmost_key(mem, child, level - 1, child_base)? {
                return Ok(Some(key));
            }
        }
    }
    Ok(None)
}

/// Free `node` (at `level`) and everything below it.
fn free_subtree<M: PhysMem + ?Sized>(mem: &mut M, node: u64, level: u32) -> Result<()> {
    if level > 0 {
        for index in 0..TABLE_ENTRIES {
            let child = read(mem, slot(node, index))?;
            if child != 0 {
                free_subtree(mem, child, level - 1)?;
            }
        }
    }
    mem.free_page(PhysAddr::new(node))
        .map_err(|source| Error::NodeAccess {
            node: PhysAddr::new(node),
            source,
        })
}
