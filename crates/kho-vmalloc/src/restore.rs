//! The incoming side: validate a descriptor and its chunk chain, then walk it.

use kho_abi::vmalloc::{CHUNK_ENTRIES, FLAGS_KNOWN, VmallocDescriptor};
use kho_abi::{Le16, Le32, Le64};
use kho_mem::{Order, PAGE_SIZE, PhysAddr, PhysMem};

use crate::{Error, Result};

/// Byte offset of slot 0 in a chunk page (after the `next` header).
const SLOTS_OFFSET: u64 = 8;

/// The descriptor fields, checked on their own (before any chunk is read).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) first: PhysAddr,
    pub(crate) total_pages: u32,
    pub(crate) flags: u16,
    pub(crate) order: Order,
}

impl Header {
    /// Checks flags, order, `total_pages` against the order, and `first`.
    pub(crate) fn check(desc: &VmallocDescriptor) -> Result<Header> {
        let flags = desc.flags.get();
        if flags & !FLAGS_KNOWN != 0 {
            return Err(Error::UnknownFlags { flags });
        }
        let raw_order = desc.order.get();
        let order = Order::try_new(u32::from(raw_order))
            .map_err(|_| Error::OrderTooLarge { order: raw_order })?;
        let total_pages = desc.total_pages.get();
        if u64::from(total_pages) & (order.pages() - 1) != 0 {
            return Err(Error::PagesNotMultiple { total_pages, order });
        }
        let first = desc.first.get();
        if first == 0 {
            return Err(Error::NoChunks);
        }
        Ok(Header {
            first: PhysAddr::new(first),
            total_pages,
            flags,
            order,
        })
    }
}

/// Address of `slot` in the chunk page at `chunk`.
pub(crate) const fn slot_addr(chunk: PhysAddr, slot: usize) -> PhysAddr {
    PhysAddr::new(chunk.as_u64() + SLOTS_OFFSET + 8 * slot as u64)
}

/// Reads the `u64` at `addr`, naming the address on failure.
pub(crate) fn read_word<M: PhysMem + ?Sized>(mem: &M, addr: PhysAddr) -> Result<u64> {
    mem.read_u64(addr)
        .map_err(|source| Error::Access { addr, source })
}

/// One thing a [`Cursor`] found, in chain order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A chunk page, checked.
    Chunk(PhysAddr),
    /// A block, checked.
    Block(PhysAddr),
    /// The chain ended and the page count matched.
    End,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// About to enter the chunk at this address.
    Enter(PhysAddr),
    /// Inside the current chunk, at `slot`.
    Slots,
    /// Finished, successfully or not.
    Done,
}

/// Walks a chunk chain and checks everything on the way (see the crate docs,
/// "Restore validation"). Reads one `u64` at a time, allocates nothing.
///
/// The chain is bounded without any buffer: every chunk before the last one
/// is full, blocks cannot exceed `total_pages`, and a revisited chunk is
/// caught by Brent's cycle detection before it is read again.
#[derive(Debug)]
pub(crate) struct Cursor {
    order: Order,
    total: u64,
    state: State,
    chunk: PhysAddr,
    /// Chunks entered so far (the current one included).
    chunks: usize,
    slot: usize,
    pages: u64,
    blocks: usize,
    /// Brent's cycle detection: the saved chunk, the power of two and the
    /// steps since it was saved.
    tortoise: PhysAddr,
    power: usize,
    steps: usize,
}

impl Cursor {
    pub(crate) fn new(header: &Header) -> Cursor {
        Cursor {
            order: header.order,
            total: u64::from(header.total_pages),
            state: State::Enter(header.first),
            chunk: PhysAddr::ZERO,
            chunks: 0,
            slot: 0,
            pages: 0,
            blocks: 0,
            tortoise: header.first,
            power: 1,
            steps: 0,
        }
    }

    /// Chunks entered so far.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }

    /// Blocks found so far.
    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }

    /// The next chunk or block; [`Step::End`] forever once the chain ended.
    /// After an error the cursor is finished too (it returns `End`).
    pub(crate) fn step<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        is_preserved: &mut impl FnMut(PhysAddr, Order) -> bool,
    ) -> Result<Step> {
        let step = self.step_inner(mem, is_preserved);
        if step.is_err() {
            self.state = State::Done;
        }
        step
    }

    fn step_inner<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        is_preserved: &mut impl FnMut(PhysAddr, Order) -> bool,
    ) -> Result<Step> {
        match self.state {
            State::Done => Ok(Step::End),
            State::Enter(phys) => self.enter(mem, phys, is_preserved),
            State::Slots => self.slot(mem, is_preserved),
        }
    }

    fn enter<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        phys: PhysAddr,
        is_preserved: &mut impl FnMut(PhysAddr, Order) -> bool,
    ) -> Result<Step> {
        let chunk = self.chunks;
        if chunk > 0 {
            if phys == self.tortoise {
                return Err(Error::ChainCycle { chunk, phys });
            }
            self.steps += 1;
            if self.steps == self.power {
                self.tortoise = phys;
                self.power = self.power.saturating_mul(2);
                self.steps = 0;
            }
        }
        if !phys.is_page_aligned() {
            return Err(Error::ChunkMisaligned { chunk, phys });
        }
        if !mem.is_ram(phys, PAGE_SIZE as u64) {
            return Err(Error::ChunkNotRam { chunk, phys });
        }
        if !is_preserved(phys, Order::ZERO) {
            return Err(Error::ChunkNotPreserved { chunk, phys });
        }
        self.chunk = phys;
        self.chunks += 1;
        self.slot = 0;
        self.state = State::Slots;
        Ok(Step::Chunk(phys))
    }

    fn slot<M: PhysMem + ?Sized>(
        &mut self,
        mem: &M,
        is_preserved: &mut impl FnMut(PhysAddr, Order) -> bool,
    ) -> Result<Step> {
        let chunk = self.chunks - 1;
        if self.slot == CHUNK_ENTRIES {
            // A full chunk: no terminator, the chain may go on.
            let next = read_word(mem, self.chunk)?;
            if next == 0 {
                return self.finish();
            }
            return self.enter(mem, PhysAddr::new(next), is_preserved);
        }
        let entry = read_word(mem, slot_addr(self.chunk, self.slot))?;
        if entry == 0 {
            for slot in self.slot + 1..CHUNK_ENTRIES {
                let entry = read_word(mem, slot_addr(self.chunk, slot))?;
                if entry != 0 {
                    return Err(Error::EntryAfterTerminator { chunk, slot, entry });
                }
            }
            let next = read_word(mem, self.chunk)?;
            if next != 0 {
                return Err(Error::NextAfterTerminator { chunk, next });
            }
            return self.finish();
        }
        if self.pages >= self.total {
            return Err(Error::MissingTerminator {
                chunk,
                slot: self.slot,
                entry,
            });
        }
        let index = self.blocks;
        let phys = PhysAddr::new(entry);
        let order = self.order;
        if !phys.is_aligned(order.bytes()) {
            return Err(Error::BlockMisaligned { index, phys, order });
        }
        if !mem.is_ram(phys, order.bytes()) {
            return Err(Error::BlockNotRam { index, phys, order });
        }
        if !is_preserved(phys, order) {
            return Err(Error::BlockNotPreserved { index, phys, order });
        }
        // `total` is a multiple of the block size and `pages < total`, so
        // this never passes `total`.
        self.pages += order.pages();
        self.blocks += 1;
        self.slot += 1;
        Ok(Step::Block(phys))
    }

    fn finish(&mut self) -> Result<Step> {
        self.state = State::Done;
        if self.pages != self.total {
            return Err(Error::CountMismatch {
                total_pages: self.total as u32,
                found: self.pages,
            });
        }
        Ok(Step::End)
    }
}

/// A preserved vmalloc area whose descriptor and chunk chain passed every
/// check of [`restore_vmalloc`]; walk it with [`VmallocArea::iter_blocks`]
/// and friends.
///
/// Walking re-reads the chain (nothing was copied) and repeats every check,
/// so it stays safe even if the memory changed since validation: any
/// difference comes back as an error item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmallocArea {
    header_first: PhysAddr,
    total_pages: u32,
    flags: u16,
    order: Order,
    chunks: usize,
    blocks: usize,
}

impl VmallocArea {
    pub(crate) fn header(&self) -> Header {
        Header {
            first: self.header_first,
            total_pages: self.total_pages,
            flags: self.flags,
            order: self.order,
        }
    }

    /// Physical address of the first chunk page.
    pub fn first(&self) -> PhysAddr {
        self.header_first
    }

    /// Number of pages in the area.
    pub fn total_pages(&self) -> u32 {
        self.total_pages
    }

    /// The descriptor's `FLAG_*` bits.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// Order of every block.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Chunk pages in the chain (the trailing empty one included).
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Blocks of `2^order` pages (`total_pages >> order`).
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// The descriptor this area was restored from.
    pub fn descriptor(&self) -> VmallocDescriptor {
        descriptor(self.header_first, self.total_pages, self.flags, self.order)
    }

    /// The block addresses, in virtual-address order.
    pub fn iter_blocks<'m, M: PhysMem + ?Sized>(&self, mem: &'m M) -> Blocks<'m, M> {
        Blocks {
            mem,
            cursor: Cursor::new(&self.header()),
        }
    }

    /// The chunk page addresses, in chain order. Once the area's blocks are
    /// claimed, these pages are no longer needed (upstream frees them).
    pub fn iter_chunks<'m, M: PhysMem + ?Sized>(&self, mem: &'m M) -> Chunks<'m, M> {
        Chunks {
            mem,
            cursor: Cursor::new(&self.header()),
        }
    }

    /// Every page address of the area, in virtual-address order
    /// (`total_pages` items: each block expanded to its `2^order` pages).
    pub fn iter_pages<'m, M: PhysMem + ?Sized>(&self, mem: &'m M) -> Pages<'m, M> {
        Pages {
            blocks: self.iter_blocks(mem),
            block: PhysAddr::ZERO,
            left: 0,
        }
    }

    /// Copies the block addresses into `out[..self.blocks()]` and returns
    /// that count; [`Error::BufferTooSmall`] if `out` is shorter.
    pub fn copy_blocks<M: PhysMem + ?Sized>(&self, mem: &M, out: &mut [PhysAddr]) -> Result<usize> {
        if out.len() < self.blocks {
            return Err(Error::BufferTooSmall {
                needed: self.blocks,
                len: out.len(),
            });
        }
        let mut n = 0;
        for (slot, phys) in out.iter_mut().zip(self.iter_blocks(mem)) {
            *slot = phys?;
            n += 1;
        }
        Ok(n)
    }

    /// The block addresses as a vector (feature `alloc`).
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    pub fn to_block_vec<M: PhysMem + ?Sized>(&self, mem: &M) -> Result<alloc::vec::Vec<PhysAddr>> {
        let mut v = alloc::vec::Vec::with_capacity(self.blocks);
        for phys in self.iter_blocks(mem) {
            v.push(phys?);
        }
        Ok(v)
    }

    /// Every page address as a vector, `total_pages` long (feature `alloc`).
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    pub fn to_page_vec<M: PhysMem + ?Sized>(&self, mem: &M) -> Result<alloc::vec::Vec<PhysAddr>> {
        let mut v = alloc::vec::Vec::with_capacity(self.total_pages as usize);
        for phys in self.iter_pages(mem) {
            v.push(phys?);
        }
        Ok(v)
    }
}

/// One piece of a restored area, as [`VmallocArea::for_each_mut`] meets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A chunk page of the chain (order 0).
    Chunk(PhysAddr),
    /// A block of the area's order.
    Block(PhysAddr),
}

impl VmallocArea {
    /// Visit every chunk page and block in chain order, giving `f` mutable
    /// access to the memory between steps: the way to claim an area
    /// (restore each block, free each chunk) without copying its block list
    /// anywhere. The chain is re-read and re-checked as it goes, exactly as
    /// the iterators do; a chain error stops the visit and is returned
    /// through `E: From<Error>`.
    pub fn for_each_mut<M, E>(
        &self,
        mem: &mut M,
        mut f: impl FnMut(&mut M, Piece) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E>
    where
        M: PhysMem + ?Sized,
        E: From<Error>,
    {
        let mut cursor = Cursor::new(&self.header());
        loop {
            match cursor.step(&*mem, &mut |_, _| true)? {
                Step::Chunk(phys) => f(mem, Piece::Chunk(phys))?,
                Step::Block(phys) => f(mem, Piece::Block(phys))?,
                Step::End => return Ok(()),
            }
        }
    }
}

/// Builds a descriptor from its fields.
pub(crate) fn descriptor(
    first: PhysAddr,
    total_pages: u32,
    flags: u16,
    order: Order,
) -> VmallocDescriptor {
    VmallocDescriptor {
        first: Le64::new(first.as_u64()),
        total_pages: Le32::new(total_pages),
        flags: Le16::new(flags),
        // `Order::MAX` is 51: always fits.
        order: Le16::new(order.get() as u16),
    }
}

/// Iterator over an area's block addresses ([`VmallocArea::iter_blocks`]).
#[derive(Debug)]
pub struct Blocks<'m, M: ?Sized> {
    mem: &'m M,
    cursor: Cursor,
}

impl<M: PhysMem + ?Sized> Iterator for Blocks<'_, M> {
    type Item = Result<PhysAddr>;

    fn next(&mut self) -> Option<Result<PhysAddr>> {
        loop {
            match self.cursor.step(self.mem, &mut |_, _| true) {
                Ok(Step::Block(phys)) => return Some(Ok(phys)),
                Ok(Step::Chunk(_)) => {}
                Ok(Step::End) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<M: PhysMem + ?Sized> core::iter::FusedIterator for Blocks<'_, M> {}

/// Iterator over an area's chunk page addresses ([`VmallocArea::iter_chunks`]).
#[derive(Debug)]
pub struct Chunks<'m, M: ?Sized> {
    mem: &'m M,
    cursor: Cursor,
}

impl<M: PhysMem + ?Sized> Iterator for Chunks<'_, M> {
    type Item = Result<PhysAddr>;

    fn next(&mut self) -> Option<Result<PhysAddr>> {
        loop {
            match self.cursor.step(self.mem, &mut |_, _| true) {
                Ok(Step::Chunk(phys)) => return Some(Ok(phys)),
                Ok(Step::Block(_)) => {}
                Ok(Step::End) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<M: PhysMem + ?Sized> core::iter::FusedIterator for Chunks<'_, M> {}

/// Iterator over an area's page addresses ([`VmallocArea::iter_pages`]).
#[derive(Debug)]
pub struct Pages<'m, M: ?Sized> {
    blocks: Blocks<'m, M>,
    /// Next page of the current block.
    block: PhysAddr,
    /// Pages of the current block not yet yielded.
    left: u64,
}

impl<M: PhysMem + ?Sized> Iterator for Pages<'_, M> {
    type Item = Result<PhysAddr>;

    fn next(&mut self) -> Option<Result<PhysAddr>> {
        if self.left == 0 {
            match self.blocks.next()? {
                Ok(phys) => {
                    self.block = phys;
                    self.left = self.blocks.cursor.order.pages();
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let page = self.block;
        self.left -= 1;
        // A block checked to be RAM cannot end past 2^64.
        self.block = PhysAddr::new(page.as_u64().wrapping_add(PAGE_SIZE as u64));
        Some(Ok(page))
    }
}

impl<M: PhysMem + ?Sized> core::iter::FusedIterator for Pages<'_, M> {}

/// Validates a descriptor and its whole chunk chain and returns the area.
///
/// Nothing is claimed or freed: the caller walks the returned
/// [`VmallocArea`] to take its blocks (and release its chunk pages), knowing
/// the whole chain is valid before it touches the first block. Every check
/// is listed in the crate docs ("Restore validation"); the first failure is
/// returned as a named [`Error`]. Never panics, reads each chain word at
/// most once plus the terminator scan, allocates nothing.
pub fn restore_vmalloc<M: PhysMem + ?Sized>(
    mem: &M,
    desc: &VmallocDescriptor,
) -> Result<VmallocArea> {
    restore_vmalloc_checked(mem, desc, |_, _| true)
}

/// [`restore_vmalloc`] of the descriptor stored at `at` (the 16 bytes a
/// client kept in its preserved data), read with
/// [`read_descriptor`](crate::read_descriptor).
pub fn restore_vmalloc_at<M: PhysMem + ?Sized>(mem: &M, at: PhysAddr) -> Result<VmallocArea> {
    let desc = crate::read_descriptor(mem, at)?;
    restore_vmalloc(mem, &desc)
}

/// [`restore_vmalloc`], also asking `is_preserved(phys, order)` about every
/// chunk page (order 0) and every block (the area's order), for example
/// against the blocks the incoming radix walk reported.
///
/// A `false` answer is [`Error::ChunkNotPreserved`] or
/// [`Error::BlockNotPreserved`].
pub fn restore_vmalloc_checked<M, P>(
    mem: &M,
    desc: &VmallocDescriptor,
    mut is_preserved: P,
) -> Result<VmallocArea>
where
    M: PhysMem + ?Sized,
    P: FnMut(PhysAddr, Order) -> bool,
{
    let header = Header::check(desc)?;
    let mut cursor = Cursor::new(&header);
    while cursor.step(mem, &mut is_preserved)? != Step::End {}
    Ok(VmallocArea {
        header_first: header.first,
        total_pages: header.total_pages,
        flags: header.flags,
        order: header.order,
        chunks: cursor.chunks(),
        blocks: cursor.blocks(),
    })
}
