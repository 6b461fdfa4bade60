//! `IncomingTree`: the next kernel's handle on a tree that passed a walk.
//!
//! Linux records what its walk found in the `struct page` of every preserved
//! block (`page->private` = order and a magic) and clears it on restore. A
//! kernel without a memory map of its own has no such place, and a map on
//! its early heap would grow with whatever the previous kernel preserved.
//! [`IncomingTree`] keeps that state where it already is: in the incoming
//! tree's own leaves. A restore looks the block's key up (one descent of at
//! most six node reads) and clears its bit, so a second restore fails as in
//! Linux. The handle itself is a few hundred bytes, whatever the tree holds.

use core::ops::ControlFlow;

use kho_abi::radix::{MAX_ORDER, ROOT_LEVEL, encode_key, leaf_bit, table_index};
use kho_mem::{Order, PAGE_SIZE, Pfn, PhysAddr, PhysMem};

use crate::walk::{MAX_ROOT_SLOT, Ranges, walk};
use crate::{Error, Result, VisitedSet};

/// Orders a key can encode (0 ..= [`MAX_ORDER`]).
const NUM_ORDERS: usize = MAX_ORDER as usize + 1;
/// Byte mask of an offset inside a page.
const PAGE_MASK: u64 = PAGE_SIZE as u64 - 1;

/// A validated incoming tree whose leaves record which preserved blocks
/// are still waiting to be restored.
///
/// Build it with [`IncomingTree::walk`], which walks the untrusted tree
/// exactly as [`walk`](crate::walk) does and adopts it only if every check
/// passed. Afterwards:
///
/// - [`contains`](IncomingTree::contains) asks whether a block is preserved
///   and not yet taken;
/// - [`take`](IncomingTree::take) clears its bit (the restore);
/// - [`remaining_blocks`](IncomingTree::remaining_blocks) counts what nobody
///   took, and [`remaining`](IncomingTree::remaining) lists it (re-walking
///   the tree with every check).
///
/// The caller must keep the node pages intact (the walk's
/// [`VisitedSet`] lists them) until it is done restoring: after that they
/// are free memory, as in Linux after `memblock_free_all`.
///
/// # Memory
///
/// `size_of::<IncomingTree>()` bytes (about 450) and no heap, for any tree:
/// one counter per order and the root. The walk itself needs the caller's
/// [`VisitedSet`] buffer, about `9.2 * nodes` bytes; a node covers up to
/// 128 MiB of order-0 pages, so a dense 16 GiB takes 133 nodes.
///
/// ```
/// use core::ops::ControlFlow;
/// use kho_mem::{HostMem, Order, Pfn, PhysAddr};
/// use kho_radix::{IncomingTree, RadixTree, VisitedSet};
///
/// let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 64 << 20)?;
/// let mut out = RadixTree::new(&mut mem)?;
/// let folio = Pfn::try_from_phys(PhysAddr::new(0x4200_0000))?;
/// let order = Order::try_new(9)?;
/// out.preserve(&mut mem, folio, order)?;
///
/// // The next kernel: walk (reserving each block), then restore.
/// let mut buf = [0u64; VisitedSet::words_for(64)];
/// let mut visited = VisitedSet::new(&mut buf);
/// let flow = IncomingTree::walk(&mem, out.root(), &mut visited, |_phys, _order| {
///     ControlFlow::<()>::Continue(())
/// })?;
/// let ControlFlow::Continue(mut tree) = flow else { unreachable!() };
/// assert_eq!(tree.remaining_blocks(), 1);
/// tree.take(&mut mem, folio, order)?;
/// assert!(tree.take(&mut mem, folio, order).is_err()); // restored once only
/// assert_eq!(tree.remaining_blocks(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct IncomingTree {
    root: PhysAddr,
    /// Blocks per order not taken yet.
    blocks: [u64; NUM_ORDERS],
    /// Bit `o` set iff `blocks[o] != 0`.
    present: u64,
    /// Blocks and pages the walk found.
    walked_blocks: u64,
    walked_pages: u64,
}

impl IncomingTree {
    /// Walk the untrusted tree at `root` with every check of
    /// [`walk`](crate::walk), calling `f(phys, order)` for each block in key
    /// order; if the walk completes, adopt the tree.
    ///
    /// `f` returning [`ControlFlow::Break`] stops the walk and returns that
    /// value (nothing is adopted).
    ///
    /// Beyond [`walk`](crate::walk)'s checks, blocks may not overlap across
    /// orders ([`Error::Overlap`], naming both): keys come highest order
    /// first, so each block is looked up in the larger orders seen before
    /// it (one descent per larger order present). Upstream reserves both
    /// and restores whichever a client asks for; one of them is corrupt.
    pub fn walk<M: PhysMem + ?Sized, B>(
        mem: &M,
        root: PhysAddr,
        visited: &mut VisitedSet<'_>,
        mut f: impl FnMut(PhysAddr, Order) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B, IncomingTree>> {
        let mut tree = IncomingTree {
            root,
            blocks: [0; NUM_ORDERS],
            present: 0,
            walked_blocks: 0,
            walked_pages: 0,
        };
        let flow = walk(mem, root, visited, |phys, order| {
            let o = order.get() as usize;
            // Larger orders present so far: every one of them is complete.
            if tree.present >> (o + 1) != 0
                && let Err(e) = tree.check_no_larger(mem, phys, order)
            {
                return ControlFlow::Break(Err(e));
            }
            if let Some(n) = tree.blocks.get_mut(o) {
                *n += 1;
            }
            tree.present |= 1 << o;
            tree.walked_blocks += 1;
            // Every block is RAM and at most 2^51 pages: a sum of them
            // saturates long before it could wrap.
            tree.walked_pages = tree.walked_pages.saturating_add(order.pages());
            f(phys, order).map_break(Ok)
        })?;
        match flow {
            ControlFlow::Break(Ok(b)) => Ok(ControlFlow::Break(b)),
            ControlFlow::Break(Err(e)) => Err(e),
            ControlFlow::Continue(()) => Ok(ControlFlow::Continue(tree)),
        }
    }

    /// Physical address of the root table.
    pub const fn root(&self) -> PhysAddr {
        self.root
    }

    /// [`Error::Overlap`] if a block of a larger order, walked before,
    /// contains the block at `phys`.
    fn check_no_larger<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        let pfn = phys.pfn_floor();
        let mut larger = self.present >> (order.get() + 1) << (order.get() + 1);
        while larger != 0 {
            let big = larger.trailing_zeros();
            larger &= larger - 1;
            let Ok(big_order) = Order::try_new(big) else {
                continue;
            };
            let Ok(start) = Pfn::try_new(pfn.as_u64() & !((1u64 << big) - 1)) else {
                continue;
            };
            if self.contains(mem, start, big_order)? {
                return Err(Error::Overlap {
                    pfn,
                    order,
                    existing_pfn: start,
                    existing_order: big_order,
                });
            }
        }
        Ok(())
    }

    /// Blocks the walk found.
    pub const fn walked_blocks(&self) -> u64 {
        self.walked_blocks
    }

    /// Pages in the blocks the walk found (saturating).
    pub const fn walked_pages(&self) -> u64 {
        self.walked_pages
    }

    /// Blocks not taken yet.
    pub fn remaining_blocks(&self) -> u64 {
        self.blocks.iter().sum()
    }

    /// Whether exactly the block of `2^order` pages at `pfn` is preserved and
    /// not taken yet.
    pub fn contains<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn, order: Order) -> Result<bool> {
        Ok(self
            .locate(mem, pfn, order)?
            .is_some_and(|(_, word, mask)| word & mask != 0))
    }

    /// The block not taken yet that contains page `pfn`, if any.
    pub fn find_block<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        pfn: Pfn,
    ) -> Result<Option<(Pfn, Order)>> {
        let mut orders = self.present;
        while orders != 0 {
            let o = orders.trailing_zeros();
            orders &= orders - 1;
            // `present` only ever holds orders the walk decoded.
            let Ok(order) = Order::try_new(o) else {
                continue;
            };
            let Ok(start) = Pfn::try_new(pfn.as_u64() & !((1u64 << o) - 1)) else {
                continue;
            };
            if self.contains(mem, start, order)? {
                return Ok(Some((start, order)));
            }
        }
        Ok(None)
    }

    /// Restore: clear the bit of exactly the block of `2^order` pages at
    /// `pfn`, which must be preserved and not taken before.
    ///
    /// Errors: [`Error::Misaligned`], [`Error::NotPreserved`] (never
    /// preserved with this order, or taken already), [`Error::NodeAccess`]
    /// (a node page no longer reads back: the caller let it be reused).
    pub fn take<M: PhysMem + ?Sized>(&mut self, mem: &mut M, pfn: Pfn, order: Order) -> Result<()> {
        let not_preserved = Error::NotPreserved { pfn, order };
        let Some((addr, word, mask)) = self.locate(mem, pfn, order)? else {
            return Err(not_preserved);
        };
        if word & mask == 0 {
            return Err(not_preserved);
        }
        mem.write_u64(PhysAddr::new(addr), word & !mask)
            .map_err(|source| Error::NodeAccess {
                node: PhysAddr::new(addr & !PAGE_MASK),
                source,
            })?;
        let o = order.get() as usize;
        if let Some(n) = self.blocks.get_mut(o) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.present &= !(1 << o);
            }
        }
        Ok(())
    }

    /// The blocks nobody took, coalesced into runs, re-walked with every
    /// check of [`ranges`](crate::ranges) (so `visited` must hold as many
    /// nodes as the first walk needed).
    pub fn remaining<'a, 'b, M: PhysMem + ?Sized>(
        &self,
        mem: &'a M,
        visited: &'a mut VisitedSet<'b>,
    ) -> Ranges<'a, 'b, M> {
        crate::ranges(mem, self.root, visited)
    }

    /// The leaf word holding the block's bit: `(address, word, mask)`, or
    /// `None` when no leaf exists for its key (or its order has no blocks).
    fn locate<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        pfn: Pfn,
        order: Order,
    ) -> Result<Option<(u64, u64, u64)>> {
        let o = order.get();
        if !pfn.is_aligned(order) {
            return Err(Error::Misaligned { pfn, order });
        }
        if o > MAX_ORDER || self.present & (1 << o) == 0 {
            return Ok(None);
        }
        let Some(phys) = pfn.as_u64().checked_mul(PAGE_SIZE as u64) else {
            return Ok(None);
        };
        let Some(key) = encode_key(phys, o) else {
            return Ok(None);
        };
        // The walk validated every node on this path; the checks below
        // only keep a tree that changed since from turning into a panic.
        if table_index(key, ROOT_LEVEL) > MAX_ROOT_SLOT {
            return Ok(None);
        }
        let mut node = self.root.as_u64();
        for level in (1..=ROOT_LEVEL).rev() {
            let index = table_index(key, level);
            let entry = read(mem, node, index)?;
            if entry == 0 {
                return Ok(None);
            }
            if entry & PAGE_MASK != 0 {
                return Err(Error::EntryMisaligned {
                    level,
                    index,
                    node: PhysAddr::new(node),
                    entry,
                });
            }
            node = entry;
        }
        let bit = leaf_bit(key);
        let word = read(mem, node, bit / 64)?;
        let addr = node + 8 * (bit / 64) as u64;
        Ok(Some((addr, word, 1u64 << (bit % 64))))
    }
}

/// Entry `index` of the node page at `node` (page-aligned, so no overflow).
fn read<M: PhysMem + ?Sized>(mem: &M, node: u64, index: usize) -> Result<u64> {
    mem.read_u64(PhysAddr::new(node + 8 * index as u64))
        .map_err(|source| Error::NodeAccess {
            node: PhysAddr::new(node),
            source,
        })
}
