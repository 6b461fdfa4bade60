//! The incoming side: validate what the previous kernel handed over, reserve
//! every preserved block, let clients restore their memory.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use kho_abi::metadata::{self, KexecMetadata};
use kho_abi::v1::BitmapSize;
use kho_abi::vmalloc::VmallocDescriptor;
use kho_abi::{AbiVersion, PAGE_SIZE};
use kho_bitmaps::{IncomingMap, ValidatedMap};
use kho_fdt::KhoFdt;
use kho_mem::{Order, PhysAddr, PhysMem, PhysRange};
use kho_memblock::MemblockFdt;
use kho_radix::{IncomingTree, PageBlocks, PreservedRange, VisitedSet};
use kho_scratch::{ReadPolicy, ScratchAreas};
use kho_vmalloc::VmallocArea;

use crate::{Error, Handover, Result};

/// A handover that passed `kho_populate`'s checks.
///
/// Build it with [`KhoIn::populate`]; then call
/// [`KhoIn::reserve_preserved`] before allocating anything outside scratch.
///
/// # Memory
///
/// The incoming side's memory does not depend on what the previous kernel
/// preserved. A `KhoIn` is `size_of::<KhoIn>()` bytes (6,256 on x86_64
/// hosts: the root FDT page it copied, the scratch array, an
/// [`IncomingTree`] of a few hundred bytes and kho-v1's 32-byte map
/// handle). [`populate`](KhoIn::populate)
/// parses that one-page FDT once: the parse's list of children (192 bytes
/// for a typical handover) is freed before it returns, and `KhoIn` keeps
/// 32 bytes per accepted child (at most one child per 32 bytes of the
/// page), so a [`subtree`](KhoIn::subtree) lookup parses nothing. The
/// walk and every restore allocate nothing, for any number of preserved
/// blocks
/// (crates/kho/tests/scale.rs counts it, up to 4 Mi blocks). Which blocks are
/// still waiting to be restored is kept in the incoming tree's own leaves
/// (a restore clears the block's bit, as Linux clears `page->private`),
/// so the caller keeps the tree's node pages intact until it has restored
/// what it wants: [`VisitedSet::nodes`] lists them after the walk.
///
/// The only memory that grows with the tree is the caller's
/// [`VisitedSet`] buffer, `8 * words_for(n)` bytes (about `9.2 * n`) for
/// a cap of `n` nodes: a tree with more nodes fails the walk with
/// [`kho_radix::Error::VisitedSetFull`]. One node covers up to 32768
/// blocks of one order (128 MiB of order-0 pages, 4 TiB of 1 GiB folios),
/// so a dense 16 GiB of 4 KiB pages needs 133 nodes (1.2 KiB), and
/// `nodes <= 5 * blocks + 1` in any tree.
///
/// # kho-v1
///
/// A kho-v1 handover (Linux 6.16 – 6.19, [`KhoIn::version`] says
/// [`AbiVersion::V1`]) is walked with [`KhoIn::reserve_preserved_v1`],
/// told the bitmap size the previous kernel used (nothing in the handover
/// says it). Its memory follows the same rule: the walk validates the
/// whole chunk list first ([`kho_bitmaps::IncomingMap::validate`]: a cycle,
/// a chunk or bitmap outside RAM, a bad order, shared pages, a block
/// outside RAM are named errors before anything is reserved), using about
/// 1.5 KiB of stack and the caller's buffer of one `u64` per chunk or
/// bitmap page (`IncomingMap::words_for(bitmaps)`: a dense 16 GiB of 4 KiB
/// pages is 128 page bitmaps and one chunk, 1.3 KiB with the slack for a
/// partly filled chunk per order); a longer list is refused
/// ([`kho_bitmaps::Error::TooManyPages`]), never a larger allocation.
/// `KhoIn` then keeps 32 bytes ([`ValidatedMap`] and a count), and a
/// restore clears the block's bit in its bitmap in place, so the bitmaps
/// record what is left, as the radix leaves do: keep the map's pages
/// (the buffer lists them after the walk) until the restores are done.
/// A restore reads the chunk list to find the block's bitmap: O(entries),
/// no memory. `kexec-metadata` does not exist in kho-v1
/// ([`KhoIn::kexec_metadata`] is `None`), and a child's size is its FDT's
/// own `totalsize` ([`KhoIn::subtree`] gives `None`).
#[derive(Debug)]
pub struct KhoIn {
    handover: Handover,
    fdt: [u8; PAGE_SIZE],
    fdt_len: usize,
    /// The accepted children of the root, in blob order (at most one per
    /// 32 bytes of the one-page FDT: bounded by the page, not by what was
    /// preserved).
    children: Vec<Child>,
    version: AbiVersion,
    memory_map: PhysAddr,
    areas: ScratchAreas,
    /// The walked tree, whose leaves say what is not restored yet; `None`
    /// until [`KhoIn::reserve_preserved`] succeeded.
    tree: Option<IncomingTree>,
    /// kho-v1: the walked chunk list, whose bitmaps say what is not
    /// restored yet, and how many blocks are left; `None` until
    /// [`KhoIn::reserve_preserved_v1`] succeeded.
    map: Option<(ValidatedMap, u64)>,
}

/// What [`KhoIn::reserve_preserved`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Preserved blocks.
    pub blocks: u64,
    /// Pages in those blocks.
    pub pages: u64,
    /// Runs of adjacent blocks of one order (as the walk visits them).
    pub ranges: u64,
    /// Radix nodes (tables and leaves) the walk read; under kho-v1, the
    /// chunk and bitmap pages of the map.
    pub nodes: u64,
}

/// One accepted child of the incoming root FDT: where its name is in the
/// FDT copy, and its `preserved-data` and `blob-size`.
#[derive(Clone, Copy, Debug)]
struct Child {
    name_at: u16,
    name_len: u16,
    data: PhysAddr,
    size: Option<u64>,
}

impl Child {
    /// The child of a parsed FDT (whose name lies in the one-page copy, so
    /// its offsets fit `u16`).
    fn of(s: kho_fdt::Subtree<'_>) -> Option<Child> {
        Some(Child {
            // The name follows the FDT_BEGIN_NODE token.
            name_at: u16::try_from(s.offset().checked_add(4)?).ok()?,
            name_len: u16::try_from(s.name().len()).ok()?,
            data: s.data(),
            size: s.size(),
        })
    }
}

impl KhoIn {
    /// Validate a handover in upstream's order: the FDT mapping (one page of
    /// RAM), the FDT header (version 16 and `FDT_NOP` tokens accepted, as
    /// libfdt accepts them), the root `compatible` (a string list naming a
    /// known version), the
    /// `preserved-memory-map` property, then the scratch array (every entry
    /// non-empty, page-aligned, RAM, disjoint). A malformed child does not
    /// fail the handover: it is left out, as Linux's
    /// `kho_retrieve_subtree` fails for that client alone ([`KhoIn::fdt`]
    /// lists it).
    ///
    /// Any error means "no revival": the caller boots cold and treats the
    /// previous kernel's memory as free.
    pub fn populate<M: PhysMem>(mem: &M, handover: Handover) -> Result<KhoIn> {
        let result = Self::populate_checked(mem, handover);
        #[cfg(feature = "tracing")]
        match &result {
            Ok(k) => {
                tracing::debug!(target: "kho",
                    version = %k.version,
                    fdt = %handover.fdt,
                    clients = k.children.len(),
                    scratch_areas = k.areas.as_slice().len(),
                    "handover accepted"
                );
            }
            Err(e) => {
                tracing::warn!(target: "kho", fdt = %handover.fdt, error = %e, "handover refused: no revival");
            }
        }
        result
    }

    fn populate_checked<M: PhysMem>(mem: &M, handover: Handover) -> Result<KhoIn> {
        let size = handover.fdt_size;
        if size == 0 || size > PAGE_SIZE as u64 || !mem.is_ram(handover.fdt, size) {
            return Err(Error::BadFdtMapping {
                addr: handover.fdt,
                size,
            });
        }
        let mut fdt = [0u8; PAGE_SIZE];
        let fdt_len = size as usize;
        mem.read(handover.fdt, &mut fdt[..fdt_len])?;
        // Accept what libfdt accepts: FDT_NOPs and a version 16 header are
        // rewritten away in the copy (the previous kernel's page is not
        // touched).
        kho_fdt::normalize(&mut fdt[..fdt_len], PAGE_SIZE)?;
        let (version, memory_map, children) = {
            let parsed = KhoFdt::parse_lenient(&fdt[..fdt_len])?;
            // Looked up by every client: kept, so no lookup parses again.
            let mut children = Vec::with_capacity(parsed.subtrees().len());
            children.extend(parsed.subtrees().filter_map(Child::of));
            (parsed.version(), parsed.memory_map(), children)
        };
        // Linux 7.2 hands over a zero-size entry when an area came out empty
        // (seen in 256 MiB and 1 GiB single-node guests: lowmem, global of
        // size 0, node 0); it holds no memory, so accepting it loses nothing.
        let areas = ScratchAreas::read_array(
            mem,
            handover.scratch,
            handover.scratch_len,
            ReadPolicy::LINUX,
        )?;
        Ok(KhoIn {
            handover,
            fdt,
            fdt_len,
            children,
            version,
            memory_map,
            areas,
            tree: None,
            map: None,
        })
    }

    /// The handover this state came from.
    pub fn handover(&self) -> Handover {
        self.handover
    }

    /// The ABI version the previous kernel wrote.
    pub fn version(&self) -> AbiVersion {
        self.version
    }

    /// Phys of the radix root (kho-v1: of the first chunk, 0 when nothing
    /// was preserved).
    pub fn memory_map(&self) -> PhysAddr {
        self.memory_map
    }

    /// The incoming root FDT, exactly its `totalsize` bytes.
    pub fn fdt_bytes(&self) -> &[u8] {
        let total = KhoFdt::parse_lenient(&self.fdt[..self.fdt_len])
            .map(|f| f.total_size())
            .unwrap_or(self.fdt_len);
        &self.fdt[..total.min(self.fdt_len)]
    }

    /// The inherited scratch areas, to be reused as they are.
    pub fn scratch_areas(&self) -> &ScratchAreas {
        &self.areas
    }

    /// Walk the untrusted radix tree and call `reserve` for every preserved
    /// block, in key order (highest order first). A block overlapping
    /// scratch is an error: scratch was handed out before the walk, so that
    /// block may already be overwritten.
    ///
    /// On error the blocks already reported stay reserved (as in Linux) and
    /// the caller must treat the boot as a failed revival.
    ///
    /// A kho-v1 handover has no radix tree: [`Error::NotInVersion`] (walk
    /// it with [`KhoIn::reserve_preserved_v1`]).
    pub fn reserve_preserved<M: PhysMem>(
        &mut self,
        mem: &M,
        visited: &mut VisitedSet<'_>,
        mut reserve: impl FnMut(PhysRange, Order) -> Result<()>,
    ) -> Result<WalkStats> {
        if self.version.uses_chunk_list() {
            return Err(Error::NotInVersion {
                what: "a radix tree (reserve_preserved; use reserve_preserved_v1)",
                version: self.version,
            });
        }
        let mut tally = Tally::default();
        let areas = &self.areas;
        self.tree = None;
        let flow =
            IncomingTree::walk(
                mem,
                self.memory_map,
                visited,
                |phys, order| match reserve_block(areas, phys, order, &mut reserve) {
                    Ok(_) => {
                        tally.add(phys, order);
                        ControlFlow::Continue(())
                    }
                    Err(e) => ControlFlow::Break(e),
                },
            )?;
        let mut stats = tally.stats;
        let result = match flow {
            ControlFlow::Break(e) => Err(e),
            ControlFlow::Continue(tree) => {
                // The tree's own pages must lie outside scratch too.
                for node in visited.nodes() {
                    let page = PhysRange::try_new(node, PAGE_SIZE as u64)?;
                    if let Err(kho_scratch::Error::PreservedInScratch { index, area, .. }) =
                        kho_scratch::check_no_overlap(areas, [page])
                    {
                        return Err(Error::NodeInScratch { node, index, area });
                    }
                }
                // The FDT page must be preserved (in any block): clients
                // read it after the walk.
                let fdt = self.handover.fdt;
                if !matches!(tree.find_block(mem, fdt.pfn_floor()), Ok(Some(_))) {
                    return Err(Error::FdtNotPreserved { fdt });
                }
                stats.nodes = visited.len() as u64;
                self.tree = Some(tree);
                Ok(stats)
            }
        };
        #[cfg(feature = "tracing")]
        trace_walk(&result, "radix tree");
        result
    }

    /// kho-v1's walk: validate the chunk list read with `size` bitmaps
    /// (the previous kernel's: [`BitmapSize::Page`] from Linux 6.17.9 on,
    /// [`BitmapSize::Bytes512`] before), then call `reserve` for every
    /// preserved block in list order (orders ascending, as Linux's
    /// `kho_mem_deserialize` reserves them).
    ///
    /// Nothing is reported unless the whole list is valid (errors:
    /// [`Error::Bitmaps`] naming what and where, a cycle or a chunk outside
    /// RAM included), every chunk and bitmap page lies outside scratch
    /// ([`Error::MapPageInScratch`]), and then as in
    /// [`KhoIn::reserve_preserved`]: a block overlapping scratch is an
    /// error, and the root FDT page must be preserved
    /// ([`Error::FdtNotPreserved`]). `buf` holds one `u64` per chunk or
    /// bitmap page ([`IncomingMap::words_for`]); after the walk it lists
    /// them (see [`KhoIn`], "kho-v1"). A handover of another version is
    /// [`Error::NotInVersion`].
    pub fn reserve_preserved_v1<M: PhysMem>(
        &mut self,
        mem: &M,
        size: BitmapSize,
        buf: &mut [u64],
        mut reserve: impl FnMut(PhysRange, Order) -> Result<()>,
    ) -> Result<WalkStats> {
        if !self.version.uses_chunk_list() {
            return Err(Error::NotInVersion {
                what: "a kho-v1 chunk list (reserve_preserved_v1)",
                version: self.version,
            });
        }
        self.map = None;
        let result = self.walk_v1(mem, size, buf, &mut reserve);
        #[cfg(feature = "tracing")]
        trace_walk(&result, "kho-v1 chunk list");
        result
    }

    fn walk_v1<M: PhysMem>(
        &mut self,
        mem: &M,
        size: BitmapSize,
        buf: &mut [u64],
        reserve: &mut impl FnMut(PhysRange, Order) -> Result<()>,
    ) -> Result<WalkStats> {
        let map = IncomingMap::validate(mem, self.memory_map, size, buf)?;
        for page in map.metadata() {
            if let Err(kho_scratch::Error::PreservedInScratch { index, area, .. }) =
                kho_scratch::check_no_overlap(&self.areas, [page])
            {
                return Err(Error::MapPageInScratch { page, index, area });
            }
        }
        let mut tally = Tally::default();
        let fdt = self.handover.fdt;
        let mut fdt_preserved = false;
        let areas = &self.areas;
        let flow = map.walk(mem, |phys, order| {
            match reserve_block(areas, phys, order, reserve) {
                Ok(range) => {
                    fdt_preserved |= range.contains(fdt);
                    tally.add(phys, order);
                    ControlFlow::Continue(())
                }
                Err(e) => ControlFlow::Break(e),
            }
        })?;
        let mut stats = tally.stats;
        if let ControlFlow::Break(e) = flow {
            return Err(e);
        }
        if !fdt_preserved {
            return Err(Error::FdtNotPreserved { fdt });
        }
        stats.nodes = (map.chunks() + map.bitmaps()) as u64;
        self.map = Some((map.validated(), stats.blocks));
        Ok(stats)
    }

    /// The incoming root FDT's view, read as Linux reads it: a malformed
    /// child (missing, zero or wrong-length `preserved-data`, bad
    /// `blob-size`, a second child of one name) is left out and listed by
    /// [`KhoFdt::rejected`] with its named error, and every other client
    /// proceeds. `None` only if the copy no longer parses (it did in
    /// [`KhoIn::populate`]).
    pub fn fdt(&self) -> Option<KhoFdt<'_>> {
        KhoFdt::parse_lenient(&self.fdt[..self.fdt_len]).ok()
    }

    /// The client blob registered as `name`: its phys and, when the previous
    /// kernel wrote `blob-size`, its size (never under kho-v1, whose blobs
    /// are FDTs sized by their own header).
    pub fn subtree(&self, name: &str) -> Option<(PhysAddr, Option<u64>)> {
        self.children
            .iter()
            .find(|c| self.name_of(c) == Some(name))
            .map(|c| (c.data, c.size))
    }

    /// Names of every child of the incoming root FDT, in blob order.
    pub fn subtree_names(&self) -> Vec<&str> {
        self.children
            .iter()
            .filter_map(|c| self.name_of(c))
            .collect()
    }

    /// A kept child's name, from the FDT copy it was parsed from.
    fn name_of(&self, child: &Child) -> Option<&str> {
        let start = usize::from(child.name_at);
        let bytes = self.fdt.get(start..start + usize::from(child.name_len))?;
        core::str::from_utf8(bytes).ok()
    }

    /// Take ownership of a preserved block back: it must have been preserved
    /// as exactly this block and not restored before. Clears the block's
    /// bit in the incoming tree (which must still be intact, see
    /// [`KhoIn`]).
    pub fn restore_folio<M: PhysMem>(
        &mut self,
        mem: &mut M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        if let Some((map, left)) = self.map.as_mut() {
            if map.take(mem, phys, order)? {
                *left = left.saturating_sub(1);
                return Ok(());
            }
            return Err(Error::NotRestorable {
                addr: phys,
                order,
                preserved: map.find(&*mem, phys)?,
            });
        }
        let tree = self.tree.as_mut().ok_or(Error::NotWalked)?;
        let pfn = kho_mem::Pfn::try_from_phys(phys)?;
        match tree.take(mem, pfn, order) {
            Ok(()) => Ok(()),
            Err(kho_radix::Error::NotPreserved { .. } | kho_radix::Error::Misaligned { .. }) => {
                Err(Error::NotRestorable {
                    addr: phys,
                    order,
                    preserved: tree
                        .find_block(mem, pfn)?
                        .filter(|(start, _)| *start == pfn)
                        .map(|(_, o)| o),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Restore a page range preserved with `preserve_pages`: the same
    /// decomposition into blocks, each restored in turn (blocks restored
    /// before a failure stay restored, as in Linux). The range must be
    /// whole pages, as `preserve_pages` requires (a `reserve_mem` region is
    /// restored through [`kho_memblock::covering_pages`]).
    pub fn restore_pages<M: PhysMem>(&mut self, mem: &mut M, range: PhysRange) -> Result<()> {
        let (start, pages) = crate::outgoing::page_span(range)?;
        for (pfn, order) in PageBlocks::new(start, pages)? {
            self.restore_folio(mem, pfn.phys(), order)?;
        }
        Ok(())
    }

    /// Restore a vmalloc area from its descriptor: the chain is validated
    /// (every chunk and block must also be a block the walk reported with
    /// that order and not restored yet), then every block and chunk page is
    /// restored. Nothing is copied: the chain is walked in place.
    pub fn restore_vmalloc<M: PhysMem>(
        &mut self,
        mem: &mut M,
        desc: &VmallocDescriptor,
    ) -> Result<VmallocArea> {
        let (tree, map) = (self.tree.as_ref(), self.map.map(|(m, _)| m));
        if tree.is_none() && map.is_none() {
            return Err(Error::NotWalked);
        }
        let area = kho_vmalloc::restore_vmalloc_checked(&*mem, desc, |p, o| match (tree, map) {
            (Some(tree), _) => kho_mem::Pfn::try_from_phys(p)
                .ok()
                .is_some_and(|pfn| tree.contains(&*mem, pfn, o).unwrap_or(false)),
            (None, Some(map)) => map.contains(&*mem, p, o).unwrap_or(false),
            (None, None) => false,
        })?;
        let order = area.order();
        area.for_each_mut(mem, |mem, piece| match piece {
            kho_vmalloc::Piece::Block(b) => self.restore_folio(mem, b, order),
            kho_vmalloc::Piece::Chunk(c) => self.restore_folio(mem, c, Order::ZERO),
        })?;
        Ok(area)
    }

    /// The `memblock` (`reserve_mem`) sub-blob, read into `buf` and
    /// validated (compatibles, sizes, regions in RAM); `None` if the
    /// previous kernel published none. Its page stays preserved: restore it
    /// with [`KhoIn::restore_folio`] when done.
    pub fn memblock<'b, M: PhysMem>(
        &self,
        mem: &M,
        buf: &'b mut [u8; PAGE_SIZE],
    ) -> Result<Option<MemblockFdt<'b>>> {
        let Some((phys, size)) = self.subtree(kho_abi::memblock::SUBTREE_NAME) else {
            return Ok(None);
        };
        Ok(Some(kho_memblock::retrieve(mem, phys, size, buf)?))
    }

    /// How many preserved blocks nobody restored (yet): they stay reserved.
    /// Zero before a successful walk.
    pub fn unrestored_blocks(&self) -> u64 {
        match self.map {
            Some((_, left)) => left,
            None => self.tree.as_ref().map_or(0, IncomingTree::remaining_blocks),
        }
    }

    /// The blocks nobody restored, coalesced into runs: the incoming tree
    /// re-walked with every check (`visited` must hold as many nodes as the
    /// first walk). Empty before a successful walk. Under kho-v1 it yields
    /// one [`Error::NotInVersion`]: use [`KhoIn::for_each_unrestored_v1`].
    pub fn unrestored<'a, 'b, M: PhysMem>(
        &self,
        mem: &'a M,
        visited: &'a mut VisitedSet<'b>,
    ) -> impl Iterator<Item = Result<PreservedRange>> + use<'a, 'b, M> {
        let v1 = self
            .version
            .uses_chunk_list()
            .then_some(Err(Error::NotInVersion {
                what: "a radix tree (unrestored; use for_each_unrestored_v1)",
                version: self.version,
            }));
        self.tree
            .as_ref()
            .map(|t| t.remaining(mem, visited))
            .into_iter()
            .flatten()
            .map(|r| r.map_err(Error::from))
            .chain(v1)
    }

    /// kho-v1: call `f` for every run of blocks nobody restored (the
    /// chunk list walked again, bits restores cleared left out), in list
    /// order; no memory. Nothing before a successful
    /// [`KhoIn::reserve_preserved_v1`].
    pub fn for_each_unrestored_v1<M: PhysMem, B>(
        &self,
        mem: &M,
        f: impl FnMut(PreservedRange) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        match self.map {
            Some((map, _)) => Ok(map.for_each_range(mem, f)?),
            None => Ok(ControlFlow::Continue(())),
        }
    }

    /// The kexec count from the `kexec-metadata` subtree, `None` if the
    /// previous kernel did not publish one.
    pub fn kexec_count<M: PhysMem>(&self, mem: &M) -> Result<Option<u32>> {
        Ok(self.kexec_metadata(mem)?.map(|m| m.kexec_count.get()))
    }

    /// The whole validated `kexec-metadata` blob (the previous kernel's
    /// release and the kexec count), `None` if none was published. Checked
    /// as Linux checks it: `blob-size` present and at least the version
    /// field, version 1, then at least the 73 bytes of version 1.
    ///
    /// kho-v1 has no `kexec-metadata` (its children are FDTs without
    /// `blob-size`): always `None`, whatever its children are called.
    pub fn kexec_metadata<M: PhysMem>(&self, mem: &M) -> Result<Option<KexecMetadata>> {
        if !self.version.has_kexec_metadata() {
            return Ok(None);
        }
        let Some((data, size)) = self.subtree(metadata::SUBTREE_NAME) else {
            return Ok(None);
        };
        let size = size.ok_or(Error::BadMetadata {
            reason: "no blob-size",
        })?;
        if size < metadata::MIN_SIZE_FOR_VERSION as u64 {
            return Err(Error::BadMetadata {
                reason: "blob smaller than its version field",
            });
        }
        let version = mem.read_obj::<kho_abi::Le32>(data)?.get();
        if version != metadata::VERSION {
            return Err(Error::BadMetadata {
                reason: "unknown version",
            });
        }
        if size < size_of::<KexecMetadata>() as u64 {
            return Err(Error::BadMetadata {
                reason: "blob shorter than version 1",
            });
        }
        Ok(Some(mem.read_obj::<KexecMetadata>(data)?))
    }
}

/// The walk's outcome as a tracing event (`map`: what was walked; `nodes`
/// counts its pages: radix nodes, or kho-v1's chunk and bitmap pages).
#[cfg(feature = "tracing")]
fn trace_walk(result: &Result<WalkStats>, map: &str) {
    match result {
        Ok(s) => {
            tracing::debug!(target: "kho",
                map,
                blocks = s.blocks,
                pages = s.pages,
                ranges = s.ranges,
                nodes = s.nodes,
                "preserved memory reserved"
            );
        }
        Err(e) => {
            tracing::warn!(target: "kho", map, error = %e, "the walk of the preserved memory failed: no revival");
        }
    }
}

/// One block of either walk: refused if it overlaps scratch, else handed
/// to the caller's `reserve`; returns its range.
fn reserve_block(
    areas: &ScratchAreas,
    phys: PhysAddr,
    order: Order,
    reserve: &mut impl FnMut(PhysRange, Order) -> Result<()>,
) -> Result<PhysRange> {
    let range = PhysRange::try_new(phys, order.bytes())?;
    kho_scratch::check_no_overlap(areas, [range])?;
    reserve(range, order)?;
    Ok(range)
}

/// [`WalkStats`] counted as the blocks arrive: a run is a block of the
/// previous block's order that starts where it ended.
#[derive(Default)]
struct Tally {
    stats: WalkStats,
    /// (end, order) of the previous block.
    last: Option<(u64, Order)>,
}

impl Tally {
    fn add(&mut self, phys: PhysAddr, order: Order) {
        self.stats.blocks += 1;
        self.stats.pages += order.pages();
        let adjacent = matches!(self.last, Some((end, o)) if o == order && end == phys.as_u64());
        if !adjacent {
            self.stats.ranges += 1;
        }
        self.last = Some((phys.as_u64().wrapping_add(order.bytes()), order));
    }
}
