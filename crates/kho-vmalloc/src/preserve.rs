//! The outgoing side: build the chunk chain, preserve it and the area's
//! blocks, and the exact inverse.

use kho_abi::vmalloc::{CHUNK_ENTRIES, FLAGS_KNOWN, VmallocDescriptor};
use kho_mem::{Order, PhysAddr, PhysMem};
use kho_radix::{PageBlocks, RadixTree};

use crate::restore::{descriptor, read_word, restore_vmalloc_checked, slot_addr};
use crate::{Error, Result};

/// Preserves a vmalloc area made of `2^order`-page blocks scattered in
/// physical memory, as upstream's `kho_preserve_vmalloc` does, and returns
/// its 16-byte descriptor.
///
/// `blocks` lists the physical address of each block in virtual-address
/// order. Each must be non-zero, aligned to `2^order` pages and RAM. The
/// function allocates a zeroed chunk page, preserves it as an order-0 page
/// and points the descriptor's `first` at it; then for each block it
/// preserves the block in `tree` and appends its address to the current
/// chunk. As soon as a chunk's 511 slots are full, a new chunk is allocated,
/// preserved and linked, so a whole number of full chunks is followed by an
/// empty one (511 blocks take 2 chunks, exactly like upstream).
///
/// A block is preserved with [`RadixTree::preserve_range`] over its
/// `2^order` pages, upstream's `kho_preserve_pages`. An aligned block
/// decomposes to exactly one radix key of `order`, unless the tree's
/// [`max_order`](RadixTree::max_order) is lower (then it becomes
/// `2^(order - max)` keys, as upstream would never need).
///
/// The caller stores the descriptor where the next kernel will find it,
/// usually inside its own preserved data ([`write_descriptor`] writes it at
/// a physical address).
///
/// All or nothing: on any error every block and chunk page this call
/// preserved is unpreserved, every chunk page it allocated is freed, and
/// the error is returned; `tree` is as before.
pub fn preserve_vmalloc<M, I>(
    mem: &mut M,
    tree: &mut RadixTree,
    blocks: I,
    order: Order,
    flags: u16,
) -> Result<VmallocDescriptor>
where
    M: PhysMem + ?Sized,
    I: IntoIterator<Item = PhysAddr>,
{
    if flags & !FLAGS_KNOWN != 0 {
        return Err(Error::UnknownFlags { flags });
    }
    let first = new_chunk(mem, tree, None)?;
    let mut chain = Chain {
        chunk: first,
        chunks: 1,
        slot: 0,
        blocks: 0,
    };
    for phys in blocks {
        if let Err(err) = chain.push(mem, tree, phys, order) {
            release_chain(mem, tree, first, order, chain.chunks);
            return Err(err);
        }
    }
    // `push` checked that the page count fits 32 bits.
    let total_pages = (chain.blocks << order.get()) as u32;
    Ok(descriptor(first, total_pages, flags, order))
}

/// The chain being built by [`preserve_vmalloc`].
struct Chain {
    /// The chunk being filled.
    chunk: PhysAddr,
    /// Chunks allocated so far.
    chunks: usize,
    /// Next free slot of `chunk`.
    slot: usize,
    /// Blocks recorded so far.
    blocks: u64,
}

impl Chain {
    fn push<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        tree: &mut RadixTree,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        let index = self.blocks as usize;
        if phys == PhysAddr::ZERO {
            return Err(Error::BlockAtZero { index });
        }
        if !phys.is_aligned(order.bytes()) {
            return Err(Error::BlockMisaligned { index, phys, order });
        }
        if !mem.is_ram(phys, order.bytes()) {
            return Err(Error::BlockNotRam { index, phys, order });
        }
        let blocks = self.blocks + 1;
        if blocks > u64::from(u32::MAX) >> order.get() {
            return Err(Error::TooManyPages { blocks, order });
        }
        let pages = order.pages();
        tree.preserve_range(mem, phys.pfn_floor(), pages)
            .map_err(|source| Error::Preserve {
                phys,
                pages,
                source,
            })?;
        let at = slot_addr(self.chunk, self.slot);
        if let Err(source) = mem.write_u64(at, phys.as_u64()) {
            let _ = tree.unpreserve_range(mem, phys.pfn_floor(), pages);
            return Err(Error::Access { addr: at, source });
        }
        self.blocks = blocks;
        self.slot += 1;
        if self.slot == CHUNK_ENTRIES {
            // Upstream links the next chunk as soon as one fills up, so a
            // full last chunk is always followed by an empty one.
            self.chunk = new_chunk(mem, tree, Some(self.chunk))?;
            self.chunks += 1;
            self.slot = 0;
        }
        Ok(())
    }
}

/// Allocates a zeroed chunk page, preserves it as an order-0 page and links
/// it from `prev`; on error nothing is left behind.
fn new_chunk<M: PhysMem + ?Sized>(
    mem: &mut M,
    tree: &mut RadixTree,
    prev: Option<PhysAddr>,
) -> Result<PhysAddr> {
    let page = alloc_nonzero_page(mem)?;
    let pfn = page.pfn_floor();
    if let Err(source) = tree.preserve(mem, pfn, Order::ZERO) {
        let _ = mem.free_page(page);
        return Err(Error::Preserve {
            phys: page,
            pages: 1,
            source,
        });
    }
    if let Some(prev) = prev
        && let Err(source) = mem.write_u64(prev, page.as_u64())
    {
        let _ = tree.unpreserve(mem, pfn, Order::ZERO);
        let _ = mem.free_page(page);
        return Err(Error::Access { addr: prev, source });
    }
    Ok(page)
}

/// One zeroed page whose address is not 0 (0 means "no chunk"). If the
/// allocator hands out page 0, it is held while another page is taken, then
/// given back.
fn alloc_nonzero_page<M: PhysMem + ?Sized>(mem: &mut M) -> Result<PhysAddr> {
    let page = mem
        .alloc_page()
        .map_err(|source| Error::ChunkAlloc { source })?;
    if page != PhysAddr::ZERO {
        return Ok(page);
    }
    let other = mem.alloc_page();
    let _ = mem.free_page(PhysAddr::ZERO);
    other.map_err(|source| Error::ChunkAlloc { source })
}

/// Best-effort teardown of a chain this crate built: unpreserve every block
/// listed, unpreserve and free every chunk page, reading at most `chunks`
/// chunks. Used for rollback, where every step is known to succeed.
fn release_chain<M: PhysMem + ?Sized>(
    mem: &mut M,
    tree: &mut RadixTree,
    first: PhysAddr,
    order: Order,
    chunks: usize,
) {
    let mut chunk = first;
    for _ in 0..chunks {
        for slot in 0..CHUNK_ENTRIES {
            match read_word(mem, slot_addr(chunk, slot)) {
                Ok(0) | Err(_) => break,
                Ok(phys) => {
                    let _ =
                        tree.unpreserve_range(mem, PhysAddr::new(phys).pfn_floor(), order.pages());
                }
            }
        }
        let next = read_word(mem, chunk).unwrap_or(0);
        let _ = tree.unpreserve(mem, chunk.pfn_floor(), Order::ZERO);
        let _ = mem.free_page(chunk);
        if next == 0 {
            break;
        }
        chunk = PhysAddr::new(next);
    }
}

/// Whether every radix key `preserve_range` makes for `2^order` pages at
/// `phys` is in `tree`.
fn block_preserved<M: PhysMem + ?Sized>(
    tree: &RadixTree,
    mem: &M,
    phys: PhysAddr,
    order: Order,
) -> bool {
    let Ok(blocks) = PageBlocks::with_max_order(phys.pfn_floor(), order.pages(), tree.max_order())
    else {
        return false;
    };
    blocks
        .into_iter()
        .all(|(pfn, o)| tree.is_preserved(mem, pfn, o).unwrap_or(false))
}

/// Undoes [`preserve_vmalloc`] exactly: unpreserves every block and chunk
/// page of the area in `tree` and frees the chunk pages.
///
/// All or nothing: the whole chain is first validated as
/// [`restore_vmalloc_checked`] does, with every block and chunk page
/// required to be preserved in `tree`; any failure is returned with `tree`
/// and memory untouched. `desc` must come from [`preserve_vmalloc`] on this
/// `tree` (a crafted descriptor listing one block twice passes validation
/// and fails halfway with [`Error::Unpreserve`]).
pub fn unpreserve_vmalloc<M: PhysMem + ?Sized>(
    mem: &mut M,
    tree: &mut RadixTree,
    desc: &VmallocDescriptor,
) -> Result<()> {
    let area = restore_vmalloc_checked(&*mem, desc, |phys, order| {
        block_preserved(tree, &*mem, phys, order)
    })?;
    let order = area.order();
    let pages = order.pages();
    let mut chunk = area.first();
    for _ in 0..area.chunks() {
        for slot in 0..CHUNK_ENTRIES {
            let phys = read_word(mem, slot_addr(chunk, slot))?;
            if phys == 0 {
                break;
            }
            let phys = PhysAddr::new(phys);
            tree.unpreserve_range(mem, phys.pfn_floor(), pages)
                .map_err(|source| Error::Unpreserve {
                    phys,
                    pages,
                    source,
                })?;
        }
        let next = read_word(mem, chunk)?;
        tree.unpreserve(mem, chunk.pfn_floor(), Order::ZERO)
            .map_err(|source| Error::Unpreserve {
                phys: chunk,
                pages: 1,
                source,
            })?;
        mem.free_page(chunk).map_err(|source| Error::Access {
            addr: chunk,
            source,
        })?;
        if next == 0 {
            break;
        }
        chunk = PhysAddr::new(next);
    }
    Ok(())
}

/// Writes the 16-byte descriptor at `at` (little-endian, upstream's
/// `struct kho_vmalloc` layout).
pub fn write_descriptor<M: PhysMem + ?Sized>(
    mem: &mut M,
    at: PhysAddr,
    desc: &VmallocDescriptor,
) -> Result<()> {
    let mut bytes = [0u8; 16];
    bytes[0..8].copy_from_slice(&desc.first.get().to_le_bytes());
    bytes[8..12].copy_from_slice(&desc.total_pages.get().to_le_bytes());
    bytes[12..14].copy_from_slice(&desc.flags.get().to_le_bytes());
    bytes[14..16].copy_from_slice(&desc.order.get().to_le_bytes());
    mem.write(at, &bytes)
        .map_err(|source| Error::Access { addr: at, source })
}

/// Reads a 16-byte descriptor stored at `at`. Only the bytes are read; the
/// contents are checked by [`restore_vmalloc`](crate::restore_vmalloc).
pub fn read_descriptor<M: PhysMem + ?Sized>(mem: &M, at: PhysAddr) -> Result<VmallocDescriptor> {
    let mut b = [0u8; 16];
    mem.read(at, &mut b)
        .map_err(|source| Error::Access { addr: at, source })?;
    let first = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let total_pages = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    let flags = u16::from_le_bytes([b[12], b[13]]);
    let order = u16::from_le_bytes([b[14], b[15]]);
    Ok(VmallocDescriptor {
        first: kho_abi::Le64::new(first),
        total_pages: kho_abi::Le32::new(total_pages),
        flags: kho_abi::Le16::new(flags),
        order: kho_abi::Le16::new(order),
    })
}
