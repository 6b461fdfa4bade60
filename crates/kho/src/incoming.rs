//! The incoming side: validate what the previous kernel handed over, reserve
//! every preserved block, let clients restore their memory.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use kho_abi::metadata::{self, KexecMetadata};
use kho_abi::vmalloc::VmallocDescriptor;
use kho_abi::{AbiVersion, PAGE_SIZE};
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
/// preserved. A `KhoIn` is `size_of::<KhoIn>()` bytes (about 4.9 KiB: the
/// root FDT page it copied, the scratch array, and an
/// [`IncomingTree`] of a few hundred bytes). [`populate`](KhoIn::populate)
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
    /// Radix nodes (tables and leaves) the walk read.
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

    /// Phys of the radix root.
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
    pub fn reserve_preserved<M: PhysMem>(
        &mut self,
        mem: &M,
        visited: &mut VisitedSet<'_>,
        mut reserve: impl FnMut(PhysRange, Order) -> Result<()>,
    ) -> Result<WalkStats> {
        let mut stats = WalkStats::default();
        let mut last: Option<(u64, Order)> = None;
        let areas = &self.areas;
        self.tree = None;
        let flow = IncomingTree::walk(mem, self.memory_map, visited, |phys, order| {
            let mut step = || -> Result<()> {
                let range = PhysRange::try_new(phys, order.bytes())?;
                kho_scratch::check_no_overlap(areas, [range])?;
                reserve(range, order)
            };
            if let Err(e) = step() {
                return ControlFlow::Break(e);
            }
            stats.blocks += 1;
            stats.pages += order.pages();
            let adjacent = matches!(last, Some((end, o)) if o == order && end == phys.as_u64());
            if !adjacent {
                stats.ranges += 1;
            }
            last = Some((phys.as_u64().wrapping_add(order.bytes()), order));
            ControlFlow::Continue(())
        })?;
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
        match &result {
            Ok(s) => {
                tracing::debug!(target: "kho",
                    blocks = s.blocks,
                    pages = s.pages,
                    ranges = s.ranges,
                    nodes = s.nodes,
                    "preserved memory reserved"
                );
            }
            Err(e) => {
                tracing::warn!(target: "kho", error = %e, "the walk of the preserved memory failed: no revival");
            }
        }
        result
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
    /// kernel wrote `blob-size`, its size.
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
        let tree = self.tree.as_ref().ok_or(Error::NotWalked)?;
        let area = kho_vmalloc::restore_vmalloc_checked(&*mem, desc, |p, o| {
            kho_mem::Pfn::try_from_phys(p)
                .ok()
                .is_some_and(|pfn| tree.contains(&*mem, pfn, o).unwrap_or(false))
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
        self.tree.as_ref().map_or(0, IncomingTree::remaining_blocks)
    }

    /// The blocks nobody restored, coalesced into runs: the incoming tree
    /// re-walked with every check (`visited` must hold as many nodes as the
    /// first walk). Empty before a successful walk.
    pub fn unrestored<'a, 'b, M: PhysMem>(
        &self,
        mem: &'a M,
        visited: &'a mut VisitedSet<'b>,
    ) -> impl Iterator<Item = Result<PreservedRange>> + use<'a, 'b, M> {
        self.tree
            .as_ref()
            .map(|t| t.remaining(mem, visited))
            .into_iter()
            .flatten()
            .map(|r| r.map_err(Error::from))
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
    pub fn kexec_metadata<M: PhysMem>(&self, mem: &M) -> Result<Option<KexecMetadata>> {
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
