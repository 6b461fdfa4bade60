//! The outgoing side: `RadixTree`, the tracker a preserving kernel builds.

use core::ops::ControlFlow;

use kho_abi::radix::{
    BITMAP_SIZE_LOG2, BITMAP_WORDS, MAX_ORDER, ROOT_LEVEL, TABLE_ENTRIES, TABLE_SIZE_LOG2,
    encode_key, leaf_bit, level_shift, table_index,
};
use kho_mem::{Order, PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr, PhysMem};

use crate::walk::{Checks, Ranges, walk_with};
use crate::{Error, PageBlocks, Result};

/// Orders a key can encode (0 ..= [`MAX_ORDER`]).
const NUM_ORDERS: usize = MAX_ORDER as usize + 1;
/// Slots of the per-order path cache (order `o` uses slot `o % CACHE_SLOTS`).
const CACHE_SLOTS: usize = 16;
/// Marks the word cache empty: never the address of an aligned `u64`.
const NO_WORD: u64 = u64::MAX;
/// Byte mask of an offset inside a page.
const PAGE_MASK: u64 = PAGE_SIZE as u64 - 1;

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

/// Where the last lookup of one order found its level-1 table and its leaf.
///
/// `l1` is valid when non-zero and names the table for keys with
/// `key >> level_shift(2) == l1_tag`; `leaf` likewise for
/// `key >> BITMAP_SIZE_LOG2 == leaf_tag`. A valid `leaf` implies a valid
/// `l1` on its path.
#[derive(Clone, Copy, Debug, Default)]
struct PathCache {
    l1_tag: u64,
    l1: u64,
    leaf_tag: u64,
    leaf: u64,
}

/// The kho-v2 preserved-memory radix tree of the kernel that preserves.
///
/// Every node is one page obtained from the [`PhysMem`] passed to each call;
/// the tree owns those pages and assumes nothing else writes them. The
/// struct itself holds the root address, node and block counters and a
/// small lookup cache (about 1 KiB, no heap).
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
/// Preserving or unpreserving one block costs one leaf-word write when the
/// block's leaf was the last one used for its order (a per-order cache keeps
/// the path), and at most one six-level descent otherwise. When blocks of
/// other orders are preserved, the overlap check adds, for each such order
/// `o'`: a bit test if `o' > order` (the one block of order `o'` that could
/// contain this one), or a scan of the `2^(order - o')` keys the block covers
/// if `o' < order`, done on the tree structure: at most one node's 512
/// entries or words, because an existing subtree is never empty.
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
    cache: [PathCache; CACHE_SLOTS],
    /// Write-through copy of the last leaf word read or written.
    word_addr: u64,
    word: u64,
    /// Page 0 was handed out as a node: it cannot be one (a table entry of
    /// 0 means "empty"), so the tree keeps it allocated and unused.
    zero_page_held: bool,
}

/// `addr + 8 * index`: the address of entry or word `index` of a node page.
#[inline(always)]
const fn slot(node: u64, index: usize) -> u64 {
    node + 8 * index as u64
}

#[inline(always)]
fn read<M: PhysMem + ?Sized>(mem: &M, addr: u64) -> Result<u64> {
    mem.read_u64(PhysAddr::new(addr))
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

/// The key of the block at `pfn` of `order`; the caller has checked the
/// alignment and the order.
#[inline(always)]
fn key_of(pfn: u64, order: u32) -> u64 {
    // `None` is unreachable for checked input; key 0 is never set.
    encode_key(pfn << PAGE_SHIFT, order).unwrap_or_default()
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
            cache: [PathCache::default(); CACHE_SLOTS],
            word_addr: NO_WORD,
            word: 0,
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
    #[inline]
    pub fn preserve<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        let o = self.check_block(pfn, order)?;
        let key = key_of(pfn.as_u64(), o);
        if self.present & !(1u64 << o) != 0 {
            self.check_overlap(mem, pfn, order)?;
        }
        let leaf = match self.cached_leaf(key, o) {
            Some(leaf) => leaf,
            None => self.leaf_for_insert(mem, key, o)?,
        };
        let bit = leaf_bit(key);
        let addr = slot(leaf, bit / 64);
        let mask = 1u64 << (bit % 64);
        let word = self.read_word_cached(mem, addr)?;
        if word & mask != 0 {
            return Err(Error::AlreadyPreserved { pfn, order });
        }
        self.write_word(mem, addr, word | mask)?;
        if let Some(n) = self.blocks.get_mut(o as usize) {
            *n += 1;
        }
        self.present |= 1u64 << o;
        Ok(())
    }

    /// The leaf for `key` if the cache knows it.
    #[inline(always)]
    fn cached_leaf(&self, key: u64, order: u32) -> Option<u64> {
        let c = &self.cache[order as usize % CACHE_SLOTS];
        (c.leaf != 0 && c.leaf_tag == key >> BITMAP_SIZE_LOG2).then_some(c.leaf)
    }

    /// The leaf for `key`, looked up in the tree and created if missing
    /// (the slow path of [`preserve`](Self::preserve), kept out of line).
    #[inline(never)]
    fn leaf_for_insert<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        key: u64,
        order: u32,
    ) -> Result<u64> {
        let leaf = self.find_leaf_cached(mem, key, order)?;
        if leaf != 0 {
            return Ok(leaf);
        }
        self.create_path(mem, key, order)
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
        let leaf = match self.cached_leaf(key, o) {
            Some(leaf) => leaf,
            None => self.find_leaf_cached(mem, key, o)?,
        };
        if leaf == 0 {
            return Err(not_preserved);
        }
        let bit = leaf_bit(key);
        let addr = slot(leaf, bit / 64);
        let mask = 1u64 << (bit % 64);
        let word = self.read_word_cached(mem, addr)?;
        if word & mask == 0 {
            return Err(not_preserved);
        }
        let word = word & !mask;
        self.write_word(mem, addr, word)?;
        if let Some(n) = self.blocks.get_mut(o as usize) {
            *n -= 1;
            if *n == 0 {
                self.present &= !(1u64 << o);
            }
        }
        if word == 0 && node_is_empty(mem, leaf, bit / 64)? {
            self.prune(mem, key)?;
        }
        Ok(())
    }

    /// Preserve the pages `[start, start + nr_pages)` as the naturally
    /// aligned blocks [`PageBlocks`] yields (capped at
    /// [`max_order`](RadixTree::max_order)), all or nothing: on error every
    /// block this call inserted is removed again. `nr_pages == 0` is a no-op.
    pub fn preserve_range<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        start: Pfn,
        nr_pages: u64,
    ) -> Result<()> {
        let blocks = PageBlocks::with_max_order(start, nr_pages, self.max_order)?;
        for (done, (pfn, order)) in blocks.clone().enumerate() {
            if let Err(err) = self.preserve(mem, pfn, order) {
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
            if !self.is_preserved(mem, pfn, order)? {
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
            let start = pfn.as_u64() & !((1u64 << o) - 1);
            if self.test_key(mem, key_of(start, o), o)? {
                return Ok(Some(block_of(key_of(start, o))));
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
    /// with it.
    #[inline(never)]
    fn check_overlap<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        let o = order.get();
        let others = self.present & !(1u64 << o);
        // Larger orders: only the one block of each that would contain us.
        let mut larger = others & !((2u64 << o) - 1);
        while larger != 0 {
            let big = larger.trailing_zeros();
            larger &= larger - 1;
            let start = pfn.as_u64() & !((1u64 << big) - 1);
            let key = key_of(start, big);
            let leaf = self.find_leaf_cached(mem, key, big)?;
            if leaf != 0 && self.test_bit(mem, leaf, key)? {
                let (existing_pfn, existing_order) = block_of(key);
                return Err(Error::Overlap {
                    pfn,
                    order,
                    existing_pfn,
                    existing_order,
                });
            }
        }
        // Smaller orders: any of the 2^(o - small) keys we cover.
        let mut smaller = others & ((1u64 << o) - 1);
        while smaller != 0 {
            let small = smaller.trailing_zeros();
            smaller &= smaller - 1;
            let first = key_of(pfn.as_u64(), small);
            if let Some(key) = self.first_key_in(mem, first, o - small, small)? {
                let (existing_pfn, existing_order) = block_of(key);
                return Err(Error::Overlap {
                    pfn,
                    order,
                    existing_pfn,
                    existing_order,
                });
            }
        }
        Ok(())
    }

    /// The smallest preserved key in `[first, first + 2^span_log2)`;
    /// `first` is aligned to `2^span_log2` and all keys have order `order`.
    fn first_key_in<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        first: u64,
        span_log2: u32,
        order: u32,
    ) -> Result<Option<u64>> {
        if span_log2 <= BITMAP_SIZE_LOG2 {
            // Inside one leaf.
            let leaf = self.find_leaf_cached(mem, first, order)?;
            if leaf == 0 {
                return Ok(None);
            }
            let bit = leaf_bit(first);
            if span_log2 < 6 {
                let word = self.read_word(mem, slot(leaf, bit / 64))?;
                let hits = word & (((1u64 << (1u32 << span_log2)) - 1) << (bit % 64));
                return Ok((hits != 0).then(|| (first & !63) | u64::from(hits.trailing_zeros())));
            }
            let words = 1usize << (span_log2 - 6);
            for w in bit / 64..bit / 64 + words {
                let word = self.read_word(mem, slot(leaf, w))?;
                if word != 0 {
                    let base = (first >> BITMAP_SIZE_LOG2) << BITMAP_SIZE_LOG2;
                    return Ok(Some(
                        base | (w as u64 * 64 + u64::from(word.trailing_zeros())),
                    ));
                }
            }
            return Ok(None);
        }
        // Whole children of one table at `level`: each child covers
        // 2^child_log2 keys, the table 2^(child_log2 + 9).
        let level = 1 + (span_log2 - BITMAP_SIZE_LOG2 - 1) / TABLE_SIZE_LOG2;
        let child_log2 = level_shift(level);
        let node = find_node(mem, self.root.as_u64(), first, level)?;
        if node == 0 {
            return Ok(None);
        }
        let node_base = (first >> (child_log2 + TABLE_SIZE_LOG2)) << (child_log2 + TABLE_SIZE_LOG2);
        let from = table_index(first, level);
        for index in from..from + (1usize << (span_log2 - child_log2)) {
            let child = read(mem, slot(node, index))?;
            if child == 0 {
                continue;
            }
            let base = node_base | ((index as u64) << child_log2);
            if let Some(key) = leftmost_key(mem, child, level - 1, base)? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Whether `key` is set, without touching the caches.
    fn test_key<M: PhysMem + ?Sized>(&self, mem: &M, key: u64, order: u32) -> Result<bool> {
        let leaf = self.find_leaf(mem, key, order)?.1;
        if leaf == 0 {
            return Ok(false);
        }
        self.test_bit(mem, leaf, key)
    }

    #[inline(always)]
    fn test_bit<M: PhysMem + ?Sized>(&self, mem: &M, leaf: u64, key: u64) -> Result<bool> {
        let bit = leaf_bit(key);
        Ok(self.read_word(mem, slot(leaf, bit / 64))? & (1u64 << (bit % 64)) != 0)
    }

    /// The level-1 table and the leaf on `key`'s path (0 where absent),
    /// using but not updating the cache.
    #[inline(always)]
    fn find_leaf<M: PhysMem + ?Sized>(&self, mem: &M, key: u64, order: u32) -> Result<(u64, u64)> {
        let c = &self.cache[order as usize % CACHE_SLOTS];
        if c.leaf != 0 && c.leaf_tag == key >> BITMAP_SIZE_LOG2 {
            return Ok((c.l1, c.leaf));
        }
        let l1 = if c.l1 != 0 && c.l1_tag == key >> level_shift(2) {
            c.l1
        } else {
            find_node(mem, self.root.as_u64(), key, 1)?
        };
        if l1 == 0 {
            return Ok((0, 0));
        }
        Ok((l1, read(mem, slot(l1, table_index(key, 1)))?))
    }

    /// As [`find_leaf`](Self::find_leaf), remembering what it found; returns
    /// the leaf (0 if absent).
    #[inline(never)]
    fn find_leaf_cached<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        key: u64,
        order: u32,
    ) -> Result<u64> {
        let c = &self.cache[order as usize % CACHE_SLOTS];
        if c.leaf != 0 && c.leaf_tag == key >> BITMAP_SIZE_LOG2 {
            return Ok(c.leaf);
        }
        let (l1, leaf) = self.find_leaf(mem, key, order)?;
        if l1 != 0 {
            self.remember_path(key, order, l1, leaf);
        }
        Ok(leaf)
    }

    /// Cache the level-1 table and leaf that `key` of `order` reaches.
    fn remember_path(&mut self, key: u64, order: u32, l1: u64, leaf: u64) {
        self.cache[order as usize % CACHE_SLOTS] = PathCache {
            l1_tag: key >> level_shift(2),
            l1,
            leaf_tag: key >> BITMAP_SIZE_LOG2,
            leaf,
        };
    }

    #[inline(always)]
    fn read_word<M: PhysMem + ?Sized>(&self, mem: &M, addr: u64) -> Result<u64> {
        if addr == self.word_addr {
            return Ok(self.word);
        }
        read(mem, addr)
    }

    #[inline(always)]
    fn read_word_cached<M: PhysMem + ?Sized>(&mut self, mem: &M, addr: u64) -> Result<u64> {
        if addr != self.word_addr {
            self.word = read(mem, addr)?;
            self.word_addr = addr;
        }
        Ok(self.word)
    }

    #[inline(always)]
    fn write_word<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        addr: u64,
        value: u64,
    ) -> Result<()> {
        if let Err(err) = write(mem, addr, value) {
            // Memory is the truth: forget the copy.
            self.word_addr = NO_WORD;
            return Err(err);
        }
        self.word_addr = addr;
        self.word = value;
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
    fn create_path<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        key: u64,
        order: u32,
    ) -> Result<u64> {
        let mut node = self.root.as_u64();
        let mut level = ROOT_LEVEL;
        loop {
            let child = read(mem, slot(node, table_index(key, level)))?;
            if child == 0 {
                break;
            }
            if level == 1 {
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
        self.remember_path(key, order, l1, leaf);
        Ok(leaf)
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
            self.forget(child);
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

    /// Drop every cached reference to a node about to be freed.
    fn forget(&mut self, node: u64) {
        for c in &mut self.cache {
            if c.l1 == node {
                *c = PathCache::default();
            } else if c.leaf == node {
                c.leaf = 0;
            }
        }
        if self.word_addr & !PAGE_MASK == node {
            self.word_addr = NO_WORD;
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
