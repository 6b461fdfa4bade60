//! The outgoing side: per-order sparse bitmaps, serialized into a chunk
//! list at finalize (Linux's `kho_mem_track` and `kho_mem_serialize`).

use alloc::collections::BTreeMap;
use core::ops::ControlFlow;

use kho_abi::v1::{
    BitmapSize, CHUNK_ENTRIES, CHUNK_ENTRY_SIZE, CHUNK_HEADER_SIZE, ChunkEntry, ChunkHeader,
};
use kho_mem::{Order, Pfn, PhysAddr, PhysMem};
use kho_radix::PageBlocks;

use crate::{Error, Result};

/// One bitmap of the tracker: the page holding it, and how many of its
/// bits are set (the page is freed when none is).
#[derive(Clone, Copy, Debug)]
struct Bitmap {
    page: PhysAddr,
    set: u32,
}

/// The chunk list of the last [`Tracker::serialize`].
#[derive(Clone, Copy, Debug)]
struct Serialized {
    first: PhysAddr,
    chunks: usize,
}

/// Orders a tracker can hold: up to [`BitmapSize::max_order`] (≤ 39).
const ORDERS: usize = 40;

/// The preserved memory of the outgoing kernel, tracked as kho-v1 does and
/// serialized into its chunk list.
///
/// Like Linux's `kho_mem_track`, every order has a sparse set of bitmaps of
/// [`BitmapSize::bits`] bits, bit `b` of bitmap `i` standing for the block
/// `(i × bits + b) << order` (in frames). Bitmaps are pages allocated from
/// the [`PhysMem`] and are handed over as they are: [`Tracker::serialize`]
/// only writes the chunk pages that point at them. The index of bitmaps
/// (order, bitmap index → page) is a `BTreeMap` in the tracker, the one
/// thing in this crate that needs `alloc` (about 48 bytes a bitmap).
///
/// Unlike Linux, which sets bits without looking, a block that is already
/// preserved, or that overlaps a preserved block of another order, is
/// rejected ([`Error::AlreadyPreserved`], [`Error::Overlap`]), so every
/// page is described once. A bitmap whose last bit is cleared is freed, so
/// the map never carries empty bitmaps. With [`BitmapSize::Bytes512`]
/// (Linux 6.16.x, 6.17 – 6.17.8) each bitmap still gets a page of its own, of which
/// the map uses the first 512 bytes.
///
/// Every error leaves the tracker as it was.
#[derive(Debug)]
pub struct Tracker {
    size: BitmapSize,
    max_order: Order,
    bitmaps: BTreeMap<(u8, u64), Bitmap>,
    blocks: [u64; ORDERS],
    serialized: Option<Serialized>,
}

impl Tracker {
    /// An empty tracker writing `size` bitmaps, accepting orders up to
    /// [`BitmapSize::max_order`].
    pub fn new(size: BitmapSize) -> Tracker {
        let max = Order::try_new(size.max_order()).unwrap_or(Order::ZERO);
        Tracker {
            size,
            max_order: max,
            bitmaps: BTreeMap::new(),
            blocks: [0; ORDERS],
            serialized: None,
        }
    }

    /// As [`Tracker::new`], with a lower maximum order (the larger of the
    /// two is ignored).
    pub fn with_max_order(size: BitmapSize, max_order: Order) -> Tracker {
        let mut t = Tracker::new(size);
        t.max_order = t.max_order.min(max_order);
        t
    }

    /// The bitmap size this tracker writes.
    pub const fn bitmap_size(&self) -> BitmapSize {
        self.size
    }

    /// The largest order [`preserve`](Tracker::preserve) accepts.
    pub const fn max_order(&self) -> Order {
        self.max_order
    }

    /// Preserved blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks.iter().sum()
    }

    /// Preserved pages (each block counts `2^order`).
    pub fn pages(&self) -> u64 {
        self.blocks.iter().enumerate().map(|(o, &n)| n << o).sum()
    }

    /// Whether nothing is preserved.
    pub fn is_empty(&self) -> bool {
        self.bitmaps.is_empty()
    }

    /// Bitmap pages held.
    pub fn bitmaps(&self) -> usize {
        self.bitmaps.len()
    }

    /// Chunk pages [`serialize`](Tracker::serialize) writes for the
    /// current set: one per 255 bitmaps of each order.
    pub fn chunks_needed(&self) -> usize {
        let mut chunks = 0;
        let mut run: Option<(u8, usize)> = None;
        for &(order, _) in self.bitmaps.keys() {
            run = match run {
                Some((o, n)) if o == order && n < CHUNK_ENTRIES => Some((o, n + 1)),
                _ => {
                    chunks += 1;
                    Some((order, 1))
                }
            };
        }
        chunks
    }

    /// Whether the tracker is serialized (finalized).
    pub const fn is_serialized(&self) -> bool {
        self.serialized.is_some()
    }

    fn check_open(&self) -> Result<()> {
        match self.serialized {
            Some(_) => Err(Error::Finalized),
            None => Ok(()),
        }
    }

    fn check_block(&self, pfn: Pfn, order: Order) -> Result<()> {
        if order > self.max_order {
            return Err(Error::OrderTooLarge {
                order,
                max: self.max_order,
            });
        }
        if !pfn.is_aligned(order) {
            return Err(Error::Misaligned { pfn, order });
        }
        Ok(())
    }

    /// The bitmap key and bit of frame `pfn` in `order`.
    fn locate(&self, pfn: u64, order: u32) -> ((u8, u64), u64) {
        let index = pfn >> order;
        let bits = self.size.bits_log2();
        ((order as u8, index >> bits), index & (self.size.bits() - 1))
    }

    fn read_word<M: PhysMem + ?Sized>(mem: &M, addr: PhysAddr) -> Result<u64> {
        mem.read_u64(addr)
            .map_err(|source| Error::Access { addr, source })
    }

    /// Whether the bit of the block at frame `pfn` of `order` is set.
    fn test<M: PhysMem + ?Sized>(&self, mem: &M, pfn: u64, order: u32) -> Result<bool> {
        let (key, bit) = self.locate(pfn, order);
        let Some(bm) = self.bitmaps.get(&key) else {
            return Ok(false);
        };
        let word = Self::read_word(mem, word_addr(bm.page, bit))?;
        Ok(word >> (bit % 64) & 1 != 0)
    }

    /// The first set bit at or after `from` and before `to` in the bitmap
    /// at `page`.
    fn first_set<M: PhysMem + ?Sized>(
        mem: &M,
        page: PhysAddr,
        from: u64,
        to: u64,
    ) -> Result<Option<u64>> {
        let mut bit = from;
        while bit < to {
            let word = Self::read_word(mem, word_addr(page, bit))?;
            let within = (bit % 64) as u32;
            let end_in_word = (to - (bit - u64::from(within))).min(64);
            let mask = (u64::MAX << within)
                & if end_in_word >= 64 {
                    u64::MAX
                } else {
                    (1u64 << end_in_word) - 1
                };
            if word & mask != 0 {
                return Ok(Some(
                    bit - u64::from(within) + u64::from((word & mask).trailing_zeros()),
                ));
            }
            bit = bit - u64::from(within) + 64;
        }
        Ok(None)
    }

    /// A preserved block of another order that shares a page with the
    /// block at `pfn` of `order`: the one containing it (larger orders) or
    /// the lowest one inside it (smaller orders).
    fn overlap<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        pfn: u64,
        order: u32,
    ) -> Result<Option<(u64, u32)>> {
        for o in (order + 1)..=self.max_order.get() {
            if self.blocks.get(o as usize).copied().unwrap_or(0) == 0 {
                continue;
            }
            let base = pfn & !((1u64 << o) - 1);
            if self.test(mem, base, o)? {
                return Ok(Some((base, o)));
            }
        }
        let mut lowest: Option<(u64, u32)> = None;
        let end = pfn + (1u64 << order);
        let bits_log2 = self.size.bits_log2();
        for o in 0..order {
            if self.blocks.get(o as usize).copied().unwrap_or(0) == 0 {
                continue;
            }
            // Block indices [lo, hi) of order o inside the new block.
            let (lo, hi) = (pfn >> o, end >> o);
            let first_key = (o as u8, lo >> bits_log2);
            let last_key = (o as u8, (hi - 1) >> bits_log2);
            for (&(_, i), bm) in self.bitmaps.range(first_key..=last_key) {
                let base = i << bits_log2;
                let from = lo.max(base) - base;
                let to = hi.min(base + self.size.bits()) - base;
                if let Some(bit) = Self::first_set(mem, bm.page, from, to)? {
                    let found = (base + bit) << o;
                    if lowest.is_none_or(|(p, _)| found < p) {
                        lowest = Some((found, o));
                    }
                    break;
                }
            }
        }
        Ok(lowest)
    }

    /// Record the block of `2^order` pages at `pfn` as preserved
    /// (`kho_preserve_folio`, `__kho_preserve_order`).
    ///
    /// Errors: [`Error::Finalized`], [`Error::OrderTooLarge`],
    /// [`Error::Misaligned`], [`Error::AlreadyPreserved`],
    /// [`Error::Overlap`], [`Error::Alloc`] (a new bitmap page),
    /// [`Error::Access`].
    pub fn preserve<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        self.check_open()?;
        self.check_block(pfn, order)?;
        let (p, o) = (pfn.as_u64(), order.get());
        if self.test(mem, p, o)? {
            return Err(Error::AlreadyPreserved { pfn, order });
        }
        if let Some((q, qo)) = self.overlap(mem, p, o)? {
            return Err(Error::Overlap {
                pfn,
                order,
                existing_pfn: pfn_of(q),
                existing_order: order_of(qo),
            });
        }
        self.set(mem, p, o)
    }

    /// Set the (clear) bit of a checked block, allocating its bitmap.
    fn set<M: PhysMem + ?Sized>(&mut self, mem: &mut M, pfn: u64, order: u32) -> Result<()> {
        let (key, bit) = self.locate(pfn, order);
        let (bm, fresh) = match self.bitmaps.get(&key) {
            Some(&bm) => (bm, false),
            None => {
                let page = mem.alloc_page().map_err(|source| Error::Alloc { source })?;
                (Bitmap { page, set: 0 }, true)
            }
        };
        let addr = word_addr(bm.page, bit);
        let written = Self::read_word(mem, addr).and_then(|word| {
            mem.write_u64(addr, word | 1 << (bit % 64))
                .map_err(|source| Error::Access { addr, source })
        });
        if let Err(err) = written {
            if fresh {
                let _ = mem.free_page(bm.page);
            }
            return Err(err);
        }
        self.bitmaps.insert(
            key,
            Bitmap {
                page: bm.page,
                set: bm.set + 1,
            },
        );
        if let Some(n) = self.blocks.get_mut(order as usize) {
            *n += 1;
        }
        Ok(())
    }

    /// Remove the block of `2^order` pages at `pfn`, which must have been
    /// preserved with exactly this order; frees its bitmap if it empties.
    ///
    /// Errors: [`Error::Finalized`], [`Error::OrderTooLarge`],
    /// [`Error::Misaligned`], [`Error::NotPreserved`], [`Error::Access`].
    pub fn unpreserve<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pfn: Pfn,
        order: Order,
    ) -> Result<()> {
        self.check_open()?;
        self.check_block(pfn, order)?;
        let (p, o) = (pfn.as_u64(), order.get());
        if !self.test(mem, p, o)? {
            return Err(Error::NotPreserved { pfn, order });
        }
        self.clear(mem, p, o)
    }

    /// Clear the (set) bit of a checked block.
    fn clear<M: PhysMem + ?Sized>(&mut self, mem: &mut M, pfn: u64, order: u32) -> Result<()> {
        let (key, bit) = self.locate(pfn, order);
        let Some(&bm) = self.bitmaps.get(&key) else {
            return Err(Error::NotPreserved {
                pfn: pfn_of(pfn),
                order: order_of(order),
            });
        };
        let addr = word_addr(bm.page, bit);
        let word = Self::read_word(mem, addr)?;
        if bm.set <= 1 {
            mem.free_page(bm.page).map_err(|source| Error::Access {
                addr: bm.page,
                source,
            })?;
            self.bitmaps.remove(&key);
        } else {
            mem.write_u64(addr, word & !(1 << (bit % 64)))
                .map_err(|source| Error::Access { addr, source })?;
            self.bitmaps.insert(
                key,
                Bitmap {
                    page: bm.page,
                    set: bm.set - 1,
                },
            );
        }
        if let Some(n) = self.blocks.get_mut(order as usize) {
            *n -= 1;
        }
        Ok(())
    }

    /// Preserve the pages `[start, start + nr_pages)` as the naturally
    /// aligned blocks [`PageBlocks`] yields (capped at the maximum order),
    /// as Linux's `kho_preserve_phys`/`kho_preserve_pages` split them; all
    /// or nothing. `nr_pages == 0` is a no-op.
    pub fn preserve_range<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        start: Pfn,
        nr_pages: u64,
    ) -> Result<()> {
        self.check_open()?;
        let blocks = blocks_of(start, nr_pages, self.max_order)?;
        for (done, (pfn, order)) in blocks.clone().enumerate() {
            if let Err(err) = self.preserve(mem, pfn, order) {
                for (pfn, order) in blocks.take(done) {
                    // Cannot fail for blocks just set unless the PhysMem
                    // stopped backing our pages; the first error is the
                    // one worth reporting.
                    let _ = self.unpreserve(mem, pfn, order);
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Remove the pages `[start, start + nr_pages)`, decomposed as
    /// [`preserve_range`](Tracker::preserve_range) does; all or nothing:
    /// every block is checked to be preserved before any is removed.
    pub fn unpreserve_range<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        start: Pfn,
        nr_pages: u64,
    ) -> Result<()> {
        self.check_open()?;
        let blocks = blocks_of(start, nr_pages, self.max_order)?;
        for (pfn, order) in blocks.clone() {
            if !self.test(mem, pfn.as_u64(), order.get())? {
                return Err(Error::NotPreserved { pfn, order });
            }
        }
        for (pfn, order) in blocks {
            self.clear(mem, pfn.as_u64(), order.get())?;
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
        self.check_block(pfn, order)?;
        self.test(mem, pfn.as_u64(), order.get())
    }

    /// Visit every preserved block in the order the serialized map lists
    /// them: ascending order, then ascending address.
    pub fn walk<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        mut f: impl FnMut(Pfn, Order) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        let bits_log2 = self.size.bits_log2();
        let words = self.size.bits() / 64;
        for (&(o, i), bm) in &self.bitmaps {
            for w in 0..words {
                let mut word = Self::read_word(mem, word_addr(bm.page, w * 64))?;
                while word != 0 {
                    let bit = w * 64 + u64::from(word.trailing_zeros());
                    word &= word - 1;
                    let pfn = ((i << bits_log2) | bit) << o;
                    if let ControlFlow::Break(b) = f(pfn_of(pfn), order_of(u32::from(o))) {
                        return Ok(ControlFlow::Break(b));
                    }
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Write the chunk list for the current set into pages allocated from
    /// `mem` and return the address of its first chunk, the value of
    /// `preserved-memory-map` (`kho_mem_serialize`, run at finalize).
    /// 0 when nothing is preserved.
    ///
    /// Chunks come in ascending order, each holding the bitmaps of one
    /// order in ascending index, at most 255; the tracker is then
    /// finalized (no preserve or unpreserve) until
    /// [`abort`](Tracker::abort). Serializing again replaces the previous
    /// list (whose pages are freed), as Linux's finalize does. On error
    /// every chunk page of this call is freed and the tracker is not
    /// finalized.
    pub fn serialize<M: PhysMem + ?Sized>(&mut self, mem: &mut M) -> Result<PhysAddr> {
        self.abort(mem)?;
        let mut written = Serialized {
            first: PhysAddr::ZERO,
            chunks: 0,
        };
        if let Err(err) = self.write_chunks(mem, &mut written) {
            let _ = free_chunks(mem, written);
            return Err(err);
        }
        self.serialized = Some(written);
        Ok(written.first)
    }

    /// Allocate and fill the chunk pages, recording them in `out` as they
    /// are linked (so that a failure can free them).
    fn write_chunks<M: PhysMem + ?Sized>(&self, mem: &mut M, out: &mut Serialized) -> Result<()> {
        // The chunk being filled: address, order, entries used.
        let mut cur: Option<(PhysAddr, u32, usize)> = None;
        for (&(o, i), bm) in &self.bitmaps {
            let order = u32::from(o);
            let full = cur.is_none_or(|(_, co, n)| co != order || n == CHUNK_ENTRIES);
            if full {
                let chunk = mem.alloc_page().map_err(|source| Error::Alloc { source })?;
                match cur {
                    Some((prev, po, n)) => {
                        if let Err(err) = write_header(mem, prev, chunk, po, n) {
                            let _ = mem.free_page(chunk);
                            return Err(err);
                        }
                    }
                    None => out.first = chunk,
                }
                // Counted once linked, so a failure frees exactly the list.
                out.chunks += 1;
                cur = Some((chunk, order, 0));
            }
            let Some((chunk, _, n)) = cur.as_mut() else {
                continue;
            };
            let phys_start = self.size.phys_start(order, i).unwrap_or(0);
            let entry = ChunkEntry {
                phys_start: phys_start.into(),
                bitmap: bm.page.as_u64().into(),
            };
            let addr =
                PhysAddr::new(chunk.as_u64() + (CHUNK_HEADER_SIZE + *n * CHUNK_ENTRY_SIZE) as u64);
            mem.write(addr, zerocopy::IntoBytes::as_bytes(&entry))
                .map_err(|source| Error::Access { addr, source })?;
            *n += 1;
        }
        if let Some((last, o, n)) = cur {
            write_header(mem, last, PhysAddr::ZERO, o, n)?;
        }
        Ok(())
    }

    /// Free the chunk pages of the last [`serialize`](Tracker::serialize)
    /// (finalize aborted); the bitmaps stay, and the tracker can change
    /// again. Nothing to do when it is not serialized.
    pub fn abort<M: PhysMem + ?Sized>(&mut self, mem: &mut M) -> Result<()> {
        if let Some(s) = self.serialized.take() {
            free_chunks(mem, s)?;
        }
        Ok(())
    }

    /// Free every page the tracker holds: the chunk list, if serialized,
    /// and every bitmap. Use it when the memory will not be handed over.
    pub fn destroy<M: PhysMem + ?Sized>(mut self, mem: &mut M) -> Result<()> {
        let mut result = self.abort(mem);
        for bm in self.bitmaps.values() {
            if let Err(source) = mem.free_page(bm.page) {
                result = result.and(Err(Error::Access {
                    addr: bm.page,
                    source,
                }));
            }
        }
        result
    }
}

/// Address of the word holding `bit` of the bitmap at `page`.
fn word_addr(page: PhysAddr, bit: u64) -> PhysAddr {
    // bit < 32768: the word lies inside the page.
    PhysAddr::new(page.as_u64() + bit / 64 * 8)
}

/// A frame number the tracker computed from a checked one.
fn pfn_of(pfn: u64) -> Pfn {
    Pfn::try_new(pfn).unwrap_or(Pfn::MAX)
}

/// An order the tracker holds (at most 39).
fn order_of(order: u32) -> Order {
    Order::try_new(order).unwrap_or(Order::MAX)
}

/// The blocks of a page range, as the radix tracker splits them.
fn blocks_of(start: Pfn, nr_pages: u64, max: Order) -> Result<PageBlocks> {
    PageBlocks::with_max_order(start, nr_pages, max)
        .map_err(|_| Error::RangeTooLarge { start, nr_pages })
}

/// Write a chunk's header: its `next`, `order` and `num_elms`.
fn write_header<M: PhysMem + ?Sized>(
    mem: &mut M,
    chunk: PhysAddr,
    next: PhysAddr,
    order: u32,
    n: usize,
) -> Result<()> {
    let header = ChunkHeader {
        next: next.as_u64().into(),
        order: order.into(),
        num_elms: (n as u32).into(),
    };
    mem.write(chunk, zerocopy::IntoBytes::as_bytes(&header))
        .map_err(|source| Error::Access {
            addr: chunk,
            source,
        })
}

/// Free the chunk pages of a list the tracker wrote, following `next`.
fn free_chunks<M: PhysMem + ?Sized>(mem: &mut M, s: Serialized) -> Result<()> {
    let mut at = s.first;
    for _ in 0..s.chunks {
        let next = mem
            .read_u64(at)
            .map_err(|source| Error::Access { addr: at, source })?;
        mem.free_page(at)
            .map_err(|source| Error::Access { addr: at, source })?;
        at = PhysAddr::new(next);
    }
    Ok(())
}
