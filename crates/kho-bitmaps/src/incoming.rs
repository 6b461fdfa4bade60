//! The incoming side: a validated walk of a chunk list another kernel wrote.
//!
//! [`IncomingMap::validate`] reads the whole list before anything is
//! reported, so a caller reserves nothing from a map that turns out to be
//! corrupt. It trusts nothing but the first chunk's address and the
//! [`PhysMem`] it reads through, and keeps what it must remember (one word
//! per chunk or bitmap page) in a buffer the caller provides.

use core::ops::ControlFlow;

use kho_abi::v1::{BitmapSize, CHUNK_ENTRIES, CHUNK_ENTRY_SIZE, CHUNK_HEADER_SIZE, ChunkHeader};
use kho_mem::{Order, PAGE_SHIFT, PAGE_SIZE, PhysAddr, PhysMem, PhysRange};
use kho_radix::PreservedRange;
use zerocopy::FromBytes;

use crate::{EntryAt, Error, Result};

const PAGE: u64 = PAGE_SIZE as u64;
/// Tag of a chunk page in the page records (bitmaps, at least 512-byte
/// aligned, leave bit 0 clear).
const CHUNK_TAG: u64 = 1;
/// Entries read from a chunk at once (512 bytes of stack).
const ENTRY_BATCH: usize = 32;
/// Bitmap words read at once (512 bytes of stack: one 512-byte bitmap, an
/// eighth of a page-sized one).
const WORD_BATCH: usize = 64;
/// Bits of a key record given to the bitmap index; the order sits above.
const KEY_ORDER_SHIFT: u32 = 58;

/// A chunk header that passed its checks.
#[derive(Clone, Copy, Debug)]
struct Header {
    next: u64,
    order: u32,
    num_elms: usize,
}

/// Read and check the header of the chunk at `chunk`, `position`-th in
/// the list.
fn header<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    chunk: u64,
    position: usize,
) -> Result<Header> {
    let addr = PhysAddr::new(chunk);
    if !addr.is_page_aligned() {
        return Err(Error::ChunkMisaligned {
            position,
            chunk: addr,
        });
    }
    if !mem.is_ram(addr, PAGE) {
        return Err(Error::ChunkNotRam {
            position,
            chunk: addr,
        });
    }
    let mut bytes = [0u8; CHUNK_HEADER_SIZE];
    mem.read(addr, &mut bytes)
        .map_err(|source| Error::Read { addr, source })?;
    let raw = ChunkHeader::read_from_bytes(&bytes[..]).unwrap_or_default();
    let (order, num_elms) = (raw.order.get(), raw.num_elms.get());
    if num_elms as usize > CHUNK_ENTRIES {
        return Err(Error::TooManyEntries {
            chunk: addr,
            num_elms,
        });
    }
    if order > size.max_order() {
        return Err(Error::ChunkOrderTooLarge {
            chunk: addr,
            order,
            max: size.max_order(),
        });
    }
    Ok(Header {
        next: raw.next.get(),
        order,
        num_elms: num_elms as usize,
    })
}

/// Stop with `Break` from inside a `Result<ControlFlow<B>>` function.
macro_rules! flow {
    ($e:expr) => {
        if let ControlFlow::Break(b) = $e? {
            return Ok(ControlFlow::Break(b));
        }
    };
}

/// Call `f(position, chunk, header)` for at most `max` chunks of the list
/// from `first`, checking each header.
fn for_each_chunk<M: PhysMem + ?Sized, B>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    max: usize,
    mut f: impl FnMut(usize, u64, Header) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    let mut at = first;
    let mut position = 0;
    while at != 0 && position < max {
        let h = header(mem, size, at, position)?;
        flow!(f(position, at, h));
        at = h.next;
        position += 1;
    }
    Ok(ControlFlow::Continue(()))
}

/// Call `f(entry, phys_start, bitmap)` for the first `n` (≤ 255) entries
/// of the chunk at `chunk`.
fn for_each_entry<M: PhysMem + ?Sized, B>(
    mem: &M,
    chunk: u64,
    n: usize,
    mut f: impl FnMut(usize, u64, u64) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    let mut buf = [0u64; 2 * ENTRY_BATCH];
    let mut i = 0;
    while i < n.min(CHUNK_ENTRIES) {
        let k = (n - i).min(ENTRY_BATCH);
        // Inside the page: 16 + 16 × 255 = 4096.
        let addr = PhysAddr::new(chunk + (CHUNK_HEADER_SIZE + i * CHUNK_ENTRY_SIZE) as u64);
        let words = buf.get_mut(..2 * k).unwrap_or_default();
        mem.read_u64s(addr, words)
            .map_err(|source| Error::Read { addr, source })?;
        for (j, pair) in words.chunks_exact(2).enumerate() {
            flow!(f(i + j, pair[0], pair[1]));
        }
        i += k;
    }
    Ok(ControlFlow::Continue(()))
}

/// Check one entry of an `order` chunk; returns its bitmap index.
fn check_entry<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    at: EntryAt,
    order: u32,
    phys_start: u64,
    bitmap: u64,
) -> Result<u64> {
    let addr = PhysAddr::new(bitmap);
    if bitmap == 0 {
        return Err(Error::NullBitmap { at });
    }
    if !addr.is_aligned(size.bytes()) {
        return Err(Error::BitmapMisaligned { at, bitmap: addr });
    }
    if !mem.is_ram(addr, size.bytes()) {
        return Err(Error::BitmapNotRam { at, bitmap: addr });
    }
    size.bitmap_index(order, phys_start)
        .ok_or(Error::PhysStartMisaligned {
            at,
            phys_start,
            order,
        })
}

/// A run of consecutive set bits inside one bitmap word.
#[derive(Clone, Copy, Debug)]
struct Run {
    at: EntryAt,
    /// Index of the run's first bit in the bitmap.
    bit: usize,
    /// Address of the run's first block.
    start: u64,
    /// Blocks in the run (1 … 64).
    count: u64,
    order: u32,
}

impl Run {
    fn shift(&self) -> u32 {
        PAGE_SHIFT + self.order
    }

    /// Bytes the run covers (at most one bitmap's span, below 2^64).
    fn len(&self) -> u64 {
        self.count << self.shift()
    }

    /// Address of the run's `i`-th block.
    fn block(&self, i: u64) -> u64 {
        self.start + (i << self.shift())
    }
}

/// Call `f` for every run of set bits of an entry's (checked) bitmap.
fn for_each_run<M: PhysMem + ?Sized, B>(
    mem: &M,
    size: BitmapSize,
    at: EntryAt,
    order: u32,
    phys_start: u64,
    bitmap: u64,
    mut f: impl FnMut(Run) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    let shift = PAGE_SHIFT + order;
    let words = (size.bits() / 64) as usize;
    let mut buf = [0u64; WORD_BATCH];
    let mut w = 0;
    while w < words {
        let k = (words - w).min(WORD_BATCH);
        let addr = PhysAddr::new(bitmap + 8 * w as u64);
        let batch = buf.get_mut(..k).unwrap_or_default();
        mem.read_u64s(addr, batch)
            .map_err(|source| Error::Read { addr, source })?;
        for (j, &word) in batch.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let tz = bits.trailing_zeros();
                let ones = (bits >> tz).trailing_ones();
                bits = if tz + ones >= 64 {
                    0
                } else {
                    bits & !(((1u64 << ones) - 1) << tz)
                };
                let bit = (w + j) * 64 + tz as usize;
                // phys_start is a multiple of the span (2^(bits_log2 +
                // shift) ≤ 2^63), so this stays inside the span and below
                // 2^64; the check only guards against a changed map.
                let start = phys_start.checked_add((bit as u64) << shift).ok_or(
                    Error::PhysStartMisaligned {
                        at,
                        phys_start,
                        order,
                    },
                )?;
                flow!(f(Run {
                    at,
                    bit,
                    start,
                    count: u64::from(ones),
                    order,
                }));
            }
        }
        w += k;
    }
    Ok(ControlFlow::Continue(()))
}

/// Every run of the list, in list order: chunks in order, entries in
/// order, bits ascending. Checks every header and entry again, so the
/// arithmetic is safe whatever the memory holds.
fn for_each_map_run<M: PhysMem + ?Sized, B>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    max_chunks: usize,
    mut f: impl FnMut(Run) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    for_each_chunk(mem, size, first, max_chunks, |_, chunk, h| {
        for_each_entry(mem, chunk, h.num_elms, |entry, phys_start, bitmap| {
            let at = EntryAt {
                chunk: PhysAddr::new(chunk),
                entry,
            };
            check_entry(mem, size, at, h.order, phys_start, bitmap)?;
            for_each_run(mem, size, at, h.order, phys_start, bitmap, &mut f)
        })
    })
}

/// The first two entries (in list order) for which `pred(order, phys_start,
/// bitmap)` holds; only used to name the entries of an error.
fn find_two<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    max_chunks: usize,
    pred: impl Fn(u32, u64, u64) -> bool,
) -> Result<(EntryAt, EntryAt)> {
    let mut found: [Option<EntryAt>; 2] = [None, None];
    let _ = for_each_chunk(mem, size, first, max_chunks, |_, chunk, h| {
        for_each_entry(mem, chunk, h.num_elms, |entry, phys_start, bitmap| {
            if pred(h.order, phys_start, bitmap) {
                let at = EntryAt {
                    chunk: PhysAddr::new(chunk),
                    entry,
                };
                if found[0].is_none() {
                    found[0] = Some(at);
                } else {
                    found[1] = Some(at);
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    })?;
    let none = EntryAt {
        chunk: PhysAddr::ZERO,
        entry: 0,
    };
    Ok((found[0].unwrap_or(none), found[1].unwrap_or(none)))
}

/// The cycle of the list from `first`, if Brent's algorithm closes one
/// within about `4 × limit` steps, named by its first chunk reached twice:
/// `first` = the length of the lead-in (μ), `again` = μ + the cycle's
/// length (λ). Phase 1 finds λ, then two pointers λ apart meet at the
/// cycle's start; constant memory, O(μ + λ) header reads.
fn find_cycle<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    limit: usize,
) -> Option<Error> {
    let next = |at: u64| header(mem, size, at, 0).map(|h| h.next).unwrap_or(0);
    let limit = limit.saturating_mul(4).saturating_add(4);
    // Phase 1: λ.
    let (mut power, mut lam) = (1usize, 1usize);
    let mut tortoise = first;
    let mut hare = next(first);
    let mut steps = 0usize;
    while tortoise != hare {
        if hare == 0 || steps > limit {
            return None;
        }
        if power == lam {
            tortoise = hare;
            power = power.saturating_mul(2);
            lam = 0;
        }
        hare = next(hare);
        lam += 1;
        steps += 1;
    }
    // Phase 2: μ, where a pointer λ ahead meets one from the start.
    let (mut t, mut h) = (first, first);
    for _ in 0..lam {
        h = next(h);
    }
    let mut mu = 0usize;
    while t != h {
        if t == 0 || mu > limit {
            return None;
        }
        t = next(t);
        h = next(h);
        mu += 1;
    }
    Some(Error::ChunkCycle {
        chunk: PhysAddr::new(t),
        first: mu,
        again: mu + lam,
    })
}

/// A kho-v1 preserved-memory map that passed every check, ready to be
/// walked.
///
/// Made by [`IncomingMap::validate`], which reads the whole list first:
///
/// - every chunk address (the map, each `next`) is page-aligned RAM, the
///   list ends (a cycle is [`Error::ChunkCycle`]), every `num_elms` is at
///   most 255 and every `order` at most
///   [`BitmapSize::max_order`](kho_abi::v1::BitmapSize::max_order);
/// - every entry's bitmap is non-zero, aligned to its size and RAM, and
///   its `phys_start` is a multiple of what a bitmap of its order covers;
/// - no two entries describe the same order and `phys_start`, no two
///   share a bitmap, no bitmap lies inside a chunk page;
/// - every set bit stands for a block that is entirely RAM.
///
/// The arithmetic is overflow-checked throughout. Memory: about 1.5 KiB
/// of stack, plus the caller's buffer of one `u64` per chunk or bitmap
/// page ([`IncomingMap::words_for`]); nothing else, whatever the previous
/// kernel preserved. A list with more pages than the buffer holds fails
/// with [`Error::TooManyPages`]. Work: each chunk page is read about five
/// times, each bitmap twice (validate, then walk), plus a sort of the
/// buffer.
///
/// After validation the buffer holds the map's own pages
/// ([`IncomingMap::metadata`]), which are not preserved: the caller keeps
/// them intact until it has walked the map and may free them afterwards,
/// as Linux does.
#[derive(Clone, Copy, Debug)]
pub struct IncomingMap<'b> {
    first: PhysAddr,
    size: BitmapSize,
    chunks: usize,
    bitmaps: usize,
    blocks: u64,
    /// Page records, ascending: `chunk | 1` or `bitmap`.
    pages: &'b [u64],
}

impl<'b> IncomingMap<'b> {
    /// Buffer words for a map of `bitmaps` bitmaps written as Linux writes
    /// it (one chunk per 255 bitmaps of one order, at most one partly
    /// filled chunk per order).
    pub const fn words_for(bitmaps: usize) -> usize {
        bitmaps + bitmaps / CHUNK_ENTRIES + BitmapSize::Bytes512.max_order() as usize + 1
    }

    /// Validate the list at `first` (the `preserved-memory-map` value; 0
    /// means nothing is preserved), read with `size` bitmaps, using
    /// `buf` (its contents are ignored) to remember its pages.
    pub fn validate<M: PhysMem + ?Sized>(
        mem: &M,
        first: PhysAddr,
        size: BitmapSize,
        buf: &'b mut [u64],
    ) -> Result<IncomingMap<'b>> {
        let start = first.as_u64();
        let capacity = buf.len();
        let chunks = record_chunks(mem, size, start, buf)?;
        let bitmaps = record_keys(mem, size, start, chunks, buf)?;
        let used = chunks + bitmaps;
        record_pages(mem, size, start, chunks, buf)?;
        let pages = buf
            .get_mut(..used)
            .ok_or(Error::TooManyPages { capacity })?;
        check_pages(mem, size, start, chunks, pages)?;
        let blocks = check_blocks(mem, size, start, chunks)?;
        Ok(IncomingMap {
            first,
            size,
            chunks,
            bitmaps,
            blocks,
            pages,
        })
    }

    /// The first chunk's address (0 for an empty map).
    pub const fn first(&self) -> PhysAddr {
        self.first
    }

    /// The bitmap size the map was read with.
    pub const fn bitmap_size(&self) -> BitmapSize {
        self.size
    }

    /// Chunk pages in the list.
    pub const fn chunks(&self) -> usize {
        self.chunks
    }

    /// Entries (bitmaps) in the list.
    pub const fn bitmaps(&self) -> usize {
        self.bitmaps
    }

    /// Preserved blocks (set bits) in the map.
    pub const fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The map's own memory, ascending: every chunk page and every bitmap.
    /// None of it is preserved; it must stay intact until the map has been
    /// walked.
    pub fn metadata(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let size = self.size;
        self.pages.iter().filter_map(move |&r| {
            let len = if r & CHUNK_TAG != 0 {
                PAGE
            } else {
                size.bytes()
            };
            PhysRange::try_new(PhysAddr::new(r & !CHUNK_TAG), len).ok()
        })
    }

    /// What is needed to walk the validated map again, or to take blocks
    /// out of it, without the buffer ([`ValidatedMap`]).
    pub const fn validated(&self) -> ValidatedMap {
        ValidatedMap {
            first: self.first,
            size: self.size,
            chunks: self.chunks,
        }
    }

    /// Call `f(phys, order)` for every preserved block, in list order (as
    /// Linux's `kho_mem_deserialize` reserves them): chunk by chunk, entry
    /// by entry, ascending bits. `f` returns [`ControlFlow::Break`] to stop
    /// early; the walk then returns it.
    ///
    /// The map's pages must not have changed since validation; if they
    /// have, the walk still never panics or overflows, but its blocks are
    /// only as good as the memory.
    pub fn walk<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.validated().walk(mem, f)
    }

    /// Call `f` for every maximal run of blocks of one order that are
    /// adjacent both in memory and in list order (so coalesced runs come
    /// in list order too). Stops early as [`IncomingMap::walk`] does.
    pub fn for_each_range<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        f: impl FnMut(PreservedRange) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.validated().for_each_range(mem, f)
    }
}

/// The order of a run's blocks (checked against the chunk's maximum
/// already, so this only fails on a changed map).
fn order_of(run: Run) -> Result<Order> {
    Order::try_new(run.order).map_err(|_| Error::BlockNotRam {
        at: run.at,
        bit: run.bit,
        phys: PhysAddr::new(run.start),
        order: Order::MAX,
    })
}

/// A coalesced run as the [`PreservedRange`] it is.
fn preserved_range(run: Run, len: u64) -> Result<PreservedRange> {
    let order = order_of(run)?;
    let range =
        PhysRange::try_new(PhysAddr::new(run.start), len).map_err(|_| Error::BlockNotRam {
            at: run.at,
            bit: run.bit,
            phys: PhysAddr::new(run.start),
            order,
        })?;
    Ok(PreservedRange::new(range, order))
}

/// Pass 1: follow the list, checking every header, and record the chunks
/// in list order at the front of `buf`; returns how many there are.
///
/// Brent's cycle finding runs alongside (constant memory); when the buffer
/// fills first, the search is finished without recording (a few times the
/// buffer's length in `next` reads) before the list is called too long.
fn record_chunks<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    buf: &mut [u64],
) -> Result<usize> {
    let capacity = buf.len();
    let mut at = first;
    let mut n = 0;
    let (mut tortoise, mut power, mut lam) = (first, 1usize, 0usize);
    while at != 0 {
        let Some(slot) = buf.get_mut(n) else {
            // Full: a list that long is either refused for its length or
            // a cycle Brent's search has not closed yet; finish the search.
            return Err(find_cycle(mem, size, first, n).unwrap_or(Error::TooManyPages { capacity }));
        };
        let h = header(mem, size, at, n)?;
        *slot = at | CHUNK_TAG;
        n += 1;
        at = h.next;
        if at != 0 && at == tortoise {
            return Err(find_cycle(mem, size, first, n).unwrap_or(Error::TooManyPages { capacity }));
        }
        lam += 1;
        if lam == power {
            tortoise = at;
            power = power.saturating_mul(2);
            lam = 0;
        }
    }
    Ok(n)
}

/// The key record of an entry: its order above its bitmap index.
fn key(order: u32, index: u64) -> u64 {
    (u64::from(order) << KEY_ORDER_SHIFT) | index
}

/// Pass 2: check every entry and record its key after the chunks; sort the
/// keys to find duplicate entries. Returns the number of entries.
fn record_keys<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    chunks: usize,
    buf: &mut [u64],
) -> Result<usize> {
    let capacity = buf.len();
    let mut m = 0;
    let _: ControlFlow<()> = for_each_chunk(mem, size, first, chunks, |_, chunk, h| {
        for_each_entry(mem, chunk, h.num_elms, |entry, phys_start, bitmap| {
            let at = EntryAt {
                chunk: PhysAddr::new(chunk),
                entry,
            };
            // index < 2^(64 - span_log2) ≤ 2^40: below the order's bits.
            let index = check_entry(mem, size, at, h.order, phys_start, bitmap)?;
            let slot = buf
                .get_mut(chunks + m)
                .ok_or(Error::TooManyPages { capacity })?;
            *slot = key(h.order, index);
            m += 1;
            Ok(ControlFlow::Continue(()))
        })
    })?;
    let keys = buf.get_mut(chunks..chunks + m).unwrap_or_default();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        let dup = w[0];
        let order = (dup >> KEY_ORDER_SHIFT) as u32;
        let phys_start = size
            .phys_start(order, dup & ((1 << KEY_ORDER_SHIFT) - 1))
            .unwrap_or(0);
        let (a, b) = find_two(mem, size, first, chunks, |o, p, _| {
            o == order && p == phys_start
        })?;
        return Err(Error::DuplicateEntry {
            first: a,
            second: b,
            order,
            phys_start,
        });
    }
    Ok(m)
}

/// Pass 3: record every bitmap address after the chunks (over the keys).
fn record_pages<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    chunks: usize,
    buf: &mut [u64],
) -> Result<()> {
    let capacity = buf.len();
    let mut m = 0;
    let _: ControlFlow<()> = for_each_chunk(mem, size, first, chunks, |_, chunk, h| {
        for_each_entry(mem, chunk, h.num_elms, |_, _, bitmap| {
            let slot = buf
                .get_mut(chunks + m)
                .ok_or(Error::TooManyPages { capacity })?;
            *slot = bitmap;
            m += 1;
            Ok(ControlFlow::Continue(()))
        })
    })?;
    Ok(())
}

/// Sort the page records and find any two pages that overlap: a bitmap
/// shared by two entries, or a bitmap inside a chunk page.
fn check_pages<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    chunks: usize,
    pages: &mut [u64],
) -> Result<()> {
    pages.sort_unstable();
    let len = |r: u64| {
        if r & CHUNK_TAG != 0 {
            PAGE
        } else {
            size.bytes()
        }
    };
    // Sorted by start, any overlap shows between neighbours.
    let Some(w) = pages.windows(2).find(|w| {
        let a = w[0] & !CHUNK_TAG;
        a.saturating_add(len(w[0])) > w[1] & !CHUNK_TAG
    }) else {
        return Ok(());
    };
    let (a, b) = (w[0], w[1]);
    match (a & CHUNK_TAG != 0, b & CHUNK_TAG != 0) {
        (false, false) => {
            let (x, y) = find_two(mem, size, first, chunks, |_, _, bm| bm == a)?;
            Err(Error::SharedBitmap {
                bitmap: PhysAddr::new(a),
                first: x,
                second: y,
            })
        }
        (chunk_first, _) => {
            let (chunk, bitmap) = if chunk_first { (a, b) } else { (b, a) };
            let chunk = chunk & !CHUNK_TAG;
            if bitmap & CHUNK_TAG != 0 {
                // Two chunk records at one address: a list that came back
                // to a chunk (pass 1 stops those; kept for completeness).
                return Err(
                    find_cycle(mem, size, first, chunks).unwrap_or(Error::ChunkCycle {
                        chunk: PhysAddr::new(chunk),
                        first: 0,
                        again: 0,
                    }),
                );
            }
            let (at, _) = find_two(mem, size, first, chunks, |_, _, bm| bm == bitmap)?;
            Err(Error::BitmapInChunk {
                at,
                bitmap: PhysAddr::new(bitmap),
                chunk: PhysAddr::new(chunk),
            })
        }
    }
}

/// Pass 4: every set bit's block must be RAM; returns the number of blocks.
fn check_blocks<M: PhysMem + ?Sized>(
    mem: &M,
    size: BitmapSize,
    first: u64,
    chunks: usize,
) -> Result<u64> {
    let mut blocks = 0u64;
    let _: ControlFlow<()> = for_each_map_run(mem, size, first, chunks, |run| {
        if !mem.is_ram(PhysAddr::new(run.start), run.len()) {
            // The run as a whole is not one stretch of RAM: find the block
            // that is not RAM (if every block is, the run merely spans two
            // adjacent RAM regions).
            let block = 1u64 << run.shift();
            for i in 0..run.count {
                let phys = PhysAddr::new(run.block(i));
                if !mem.is_ram(phys, block) {
                    return Err(Error::BlockNotRam {
                        at: run.at,
                        bit: run.bit + i as usize,
                        phys,
                        order: order_of(run)?,
                    });
                }
            }
        }
        blocks += run.count;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(blocks)
}

/// A map [`IncomingMap::validate`] accepted, without the buffer: its first
/// chunk, bitmap size and chunk count (24 bytes, `Copy`). An incoming
/// kernel keeps it after the walk to restore blocks one by one.
///
/// [`ValidatedMap::take`] clears a block's bit in its bitmap, in place, as
/// Linux clears a restored page's `private` field: the bitmaps then say
/// what is still waiting to be restored, and a block is restored once.
/// The map's pages (`IncomingMap::metadata`) must stay intact meanwhile.
/// Every read re-checks the headers and entries it uses and no loop goes
/// past the validated chunk count, so a map changed since validation
/// gives wrong answers or errors, never a panic or an endless walk.
///
/// Work: [`take`](ValidatedMap::take) and [`find`](ValidatedMap::find)
/// read the chunk list (every chunk header, the entries of chunks of a
/// matching order) and one bitmap word per candidate entry: O(entries);
/// no memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidatedMap {
    first: PhysAddr,
    size: BitmapSize,
    chunks: usize,
}

impl ValidatedMap {
    /// The first chunk's address (0 for an empty map).
    pub const fn first(&self) -> PhysAddr {
        self.first
    }

    /// The bitmap size the map was read with.
    pub const fn bitmap_size(&self) -> BitmapSize {
        self.size
    }

    /// Chunk pages in the list.
    pub const fn chunks(&self) -> usize {
        self.chunks
    }

    /// As [`IncomingMap::walk`]: every block whose bit is (still) set.
    pub fn walk<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        mut f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        for_each_map_run(mem, self.size, self.first.as_u64(), self.chunks, |run| {
            let order = order_of(run)?;
            for i in 0..run.count {
                if let ControlFlow::Break(b) = f(PhysAddr::new(run.block(i)), order) {
                    return Ok(ControlFlow::Break(b));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// As [`IncomingMap::for_each_range`]: coalesced runs of the blocks
    /// whose bit is (still) set.
    pub fn for_each_range<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        mut f: impl FnMut(PreservedRange) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        let mut pending: Option<(Run, u64)> = None;
        let flow = for_each_map_run(mem, self.size, self.first.as_u64(), self.chunks, |run| {
            if let Some((p, len)) = pending.as_mut()
                && p.order == run.order
                && p.start.checked_add(*len) == Some(run.start)
                && let Some(grown) = len.checked_add(run.len())
            {
                *len = grown;
                return Ok(ControlFlow::Continue(()));
            }
            if let Some((p, len)) = pending.replace((run, run.len())) {
                return Ok(f(preserved_range(p, len)?));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let ControlFlow::Break(b) = flow {
            return Ok(ControlFlow::Break(b));
        }
        match pending {
            Some((p, len)) => Ok(f(preserved_range(p, len)?)),
            None => Ok(ControlFlow::Continue(())),
        }
    }

    /// The address of the word holding the bit of the block of `order` at
    /// `phys` in the first entry of the list describing it, with the bit's
    /// mask; `None` if no entry does (or `phys` is not aligned to the
    /// order).
    fn locate<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        phys: u64,
        order: u32,
    ) -> Result<Option<(PhysAddr, u64)>> {
        let Some(span_log2) = self.size.span_log2(order) else {
            return Ok(None);
        };
        let shift = PAGE_SHIFT + order;
        if phys & ((1u64 << shift) - 1) != 0 {
            return Ok(None);
        }
        let base = phys & !((1u64 << span_log2) - 1);
        let bit = (phys - base) >> shift; // < bits()
        let mut found = None;
        let size = self.size;
        let _ = for_each_chunk(
            mem,
            size,
            self.first.as_u64(),
            self.chunks,
            |_, chunk, h| {
                if h.order != order {
                    return Ok(ControlFlow::Continue(()));
                }
                for_each_entry(mem, chunk, h.num_elms, |entry, phys_start, bitmap| {
                    if phys_start != base {
                        return Ok(ControlFlow::Continue(()));
                    }
                    let at = EntryAt {
                        chunk: PhysAddr::new(chunk),
                        entry,
                    };
                    check_entry(mem, size, at, order, phys_start, bitmap)?;
                    // Inside the (aligned, RAM) bitmap: bit < bits().
                    found = Some((PhysAddr::new(bitmap + bit / 64 * 8), 1u64 << (bit % 64)));
                    Ok(ControlFlow::Break(()))
                })
            },
        )?;
        Ok(found)
    }

    /// Whether the block of `2^order` pages at `phys` is in the map (its
    /// bit set, not [taken](ValidatedMap::take)).
    pub fn contains<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<bool> {
        let Some((word, mask)) = self.locate(mem, phys.as_u64(), order.get())? else {
            return Ok(false);
        };
        let value = mem
            .read_u64(word)
            .map_err(|source| Error::Read { addr: word, source })?;
        Ok(value & mask != 0)
    }

    /// Take the block of `2^order` pages at `phys` out of the map: clear
    /// its bit in place. Returns whether it was there; a block that is not
    /// (never preserved with this order, or taken already) is left alone.
    pub fn take<M: PhysMem + ?Sized>(
        &self,
        mem: &mut M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<bool> {
        let Some((word, mask)) = self.locate(&*mem, phys.as_u64(), order.get())? else {
            return Ok(false);
        };
        let value = mem
            .read_u64(word)
            .map_err(|source| Error::Read { addr: word, source })?;
        if value & mask == 0 {
            return Ok(false);
        }
        mem.write_u64(word, value & !mask)
            .map_err(|source| Error::Access { addr: word, source })?;
        Ok(true)
    }

    /// The order of a block in the map that starts exactly at `phys`, the
    /// lowest such order if blocks of several orders start there (Linux's
    /// writer can produce that; `Tracker` cannot); `None` if there is none.
    pub fn find<M: PhysMem + ?Sized>(&self, mem: &M, phys: PhysAddr) -> Result<Option<Order>> {
        let max = self.size.max_order();
        for o in 0..=max {
            let Ok(order) = Order::try_new(o) else {
                break;
            };
            if !phys.is_aligned(order.bytes()) {
                break;
            }
            if self.contains(mem, phys, order)? {
                return Ok(Some(order));
            }
        }
        Ok(None)
    }
}

/// Validate the map at `first` (see [`IncomingMap::validate`]), then call
/// `f(phys, order)` for every preserved block in list order (see
/// [`IncomingMap::walk`]). Nothing is reported unless the whole map is
/// valid.
pub fn walk<M: PhysMem + ?Sized, B>(
    mem: &M,
    first: PhysAddr,
    size: BitmapSize,
    buf: &mut [u64],
    f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
) -> Result<ControlFlow<B>> {
    IncomingMap::validate(mem, first, size, buf)?.walk(mem, f)
}

/// Validate the map at `first`, then call `f` for every coalesced run of
/// preserved blocks (see [`IncomingMap::for_each_range`]).
pub fn for_each_range<M: PhysMem + ?Sized, B>(
    mem: &M,
    first: PhysAddr,
    size: BitmapSize,
    buf: &mut [u64],
    f: impl FnMut(PreservedRange) -> ControlFlow<B>,
) -> Result<ControlFlow<B>> {
    IncomingMap::validate(mem, first, size, buf)?.for_each_range(mem, f)
}
