//! The outgoing side: what the kernel that preserves owns and hands over.

use alloc::string::ToString;
use core::ops::ControlFlow;

use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC};
use kho_abi::metadata::{self, KexecMetadata};
use kho_abi::v1::BitmapSize;
use kho_abi::vmalloc::VmallocDescriptor;
use kho_abi::{AbiVersion, Le32, PAGE_SIZE};
use kho_bitmaps::Tracker;
use kho_fdt::KhoFdtBuilder;
use kho_mem::{Order, Pfn, PhysAddr, PhysMem, PhysRange};
use kho_memblock::{MemblockBlob, Region};
use kho_radix::{NodeStats, RadixTree};
use kho_scratch::{ScratchArea, ScratchAreas};

use crate::{Error, Handover, Result};

/// The outgoing KHO state: the preserved blocks and the one-page root FDT
/// that names their map and every client blob.
///
/// From kho-v2 on, the blocks are a radix tree and there is no finalize
/// step: every edit rewrites the FDT page at once, so the state can be
/// handed over at any moment ([`KhoOut::finalize`] and [`KhoOut::abort`]
/// do nothing).
///
/// Under kho-v1 ([`KhoOut::new_v1`], or [`KhoOut::new`] with
/// [`AbiVersion::V1`]) the blocks are per-order bitmaps
/// ([`kho_bitmaps::Tracker`]) and the lifecycle is Linux 6.16 – 6.19's:
/// the outgoing FDT exists only after [`KhoOut::finalize`], which
/// serializes the bitmaps into their chunk list and writes the FDT naming
/// it; until then the FDT page is zeros and [`KhoOut::check_handover`]
/// refuses ([`Error::NotFinalized`]). While finalized, preserving,
/// unpreserving and changing subtrees are refused ([`Error::Finalized`]);
/// [`KhoOut::abort`] frees the chunk list, zeroes the FDT page and reopens
/// the state.
///
/// The FDT page is itself preserved as an order-0 block; node, bitmap,
/// chunk and FDT pages come from the [`PhysMem`] the caller passes, which
/// must never hand out scratch memory (scratch must stay free of preserved
/// memory and of the map the next kernel reads before it allocates).
#[derive(Debug)]
pub struct KhoOut {
    tracking: Tracking,
    fdt_page: PhysAddr,
    fdt: KhoFdtBuilder,
    /// Scratch, once known ([`KhoOut::exclude_scratch`]): preserving inside
    /// it is refused at the call.
    scratch: Option<ScratchAreas>,
}

/// How the preserved blocks are tracked.
///
/// The radix tree is about 6 KiB inline, as it was in `KhoOut` before
/// kho-v1 existed; boxing it would add an allocation to every kho-v2+
/// handover to save that much in the rare kho-v1 one.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Tracking {
    /// kho-v2 and later.
    Radix(RadixTree),
    /// kho-v1: the bitmaps, and whether they are serialized (finalized).
    Bitmaps { tracker: Tracker, finalized: bool },
}

impl KhoOut {
    /// Start an empty handover of `version`: allocate the radix root (or,
    /// under kho-v1, a tracker of page-sized bitmaps, as Linux 6.17.9 and
    /// later write: [`KhoOut::new_v1`] picks the size) and the FDT page.
    pub fn new<M: PhysMem>(mem: &mut M, version: AbiVersion) -> Result<KhoOut> {
        if version.uses_chunk_list() {
            return KhoOut::new_v1(mem, BitmapSize::Page);
        }
        let tree = RadixTree::new(mem)?;
        let fdt_page = match mem.alloc_page() {
            Ok(p) => p,
            Err(e) => {
                tree.destroy(mem)?;
                return Err(e.into());
            }
        };
        let fdt = KhoFdtBuilder::new(version, tree.root());
        let mut out = KhoOut {
            tracking: Tracking::Radix(tree),
            fdt_page,
            fdt,
            scratch: None,
        };
        out.preserve_block(mem, Pfn::try_from_phys(fdt_page)?, Order::ZERO)?;
        out.write_fdt(mem)?;
        Ok(out)
    }

    /// Start an empty kho-v1 handover whose bitmaps are `size`:
    /// [`BitmapSize::Page`] for a next kernel of Linux 6.17.9 and later
    /// 6.17.y, 6.18 or 6.19, [`BitmapSize::Bytes512`] for 6.16.x or 6.17
    /// up to 6.17.8 (nothing in the handover says which; the reader must
    /// be told the same). Allocates the FDT page, preserves it and leaves
    /// it zeroed until [`KhoOut::finalize`].
    pub fn new_v1<M: PhysMem>(mem: &mut M, size: BitmapSize) -> Result<KhoOut> {
        let fdt_page = mem.alloc_page()?;
        let mut out = KhoOut {
            tracking: Tracking::Bitmaps {
                tracker: Tracker::new(size),
                finalized: false,
            },
            fdt_page,
            fdt: KhoFdtBuilder::new(AbiVersion::V1, PhysAddr::ZERO),
            scratch: None,
        };
        let started = Pfn::try_from_phys(fdt_page)
            .map_err(Error::from)
            .and_then(|pfn| out.preserve_block(mem, pfn, Order::ZERO))
            .and_then(|()| out.clear_fdt(mem));
        if let Err(e) = started {
            if let Tracking::Bitmaps { tracker, .. } = out.tracking {
                let _ = tracker.destroy(mem);
            }
            let _ = mem.free_page(fdt_page);
            return Err(e);
        }
        Ok(out)
    }

    /// Preserve a checked block in whichever tracker this version uses.
    fn preserve_block<M: PhysMem>(&mut self, mem: &mut M, pfn: Pfn, order: Order) -> Result<()> {
        match &mut self.tracking {
            Tracking::Radix(tree) => Ok(tree.preserve(mem, pfn, order)?),
            Tracking::Bitmaps { tracker, .. } => Ok(tracker.preserve(mem, pfn, order)?),
        }
    }

    /// Refuse changes to a finalized kho-v1 state ([`Error::Finalized`]).
    fn check_open(&self) -> Result<()> {
        match self.tracking {
            Tracking::Bitmaps {
                finalized: true, ..
            } => Err(Error::Finalized),
            _ => Ok(()),
        }
    }

    /// The radix tree, for kho-v1 a refusal naming `what`.
    fn radix_mut(&mut self, what: &'static str) -> Result<&mut RadixTree> {
        match &mut self.tracking {
            Tracking::Radix(tree) => Ok(tree),
            Tracking::Bitmaps { .. } => Err(Error::NotInVersion {
                what,
                version: AbiVersion::V1,
            }),
        }
    }

    /// The ABI version of the root FDT.
    pub fn version(&self) -> AbiVersion {
        self.fdt.version()
    }

    /// Phys of the root FDT page.
    pub fn fdt(&self) -> PhysAddr {
        self.fdt_page
    }

    /// The radix tree (for statistics and walks of our own state); `None`
    /// under kho-v1, which tracks with bitmaps ([`KhoOut::tracker`]).
    pub fn tree(&self) -> Option<&RadixTree> {
        match &self.tracking {
            Tracking::Radix(tree) => Some(tree),
            Tracking::Bitmaps { .. } => None,
        }
    }

    /// kho-v1's bitmap tracker; `None` from kho-v2 on ([`KhoOut::tree`]).
    pub fn tracker(&self) -> Option<&Tracker> {
        match &self.tracking {
            Tracking::Radix(_) => None,
            Tracking::Bitmaps { tracker, .. } => Some(tracker),
        }
    }

    /// Node accounting of the radix tree (all zero under kho-v1: see
    /// [`Tracker::bitmaps`] and [`Tracker::chunks_needed`]).
    pub fn node_stats(&self) -> NodeStats {
        self.tree().map(RadixTree::node_stats).unwrap_or_default()
    }

    /// Whether the outgoing FDT is published: under kho-v1, between
    /// [`KhoOut::finalize`] and [`KhoOut::abort`]; always from kho-v2 on.
    pub fn is_finalized(&self) -> bool {
        !matches!(
            self.tracking,
            Tracking::Bitmaps {
                finalized: false,
                ..
            }
        )
    }

    /// kho-v1's finalize: serialize the bitmaps into their chunk list and
    /// write the root FDT naming it and every subtree; from then on the
    /// state is frozen ([`Error::Finalized`]) until [`KhoOut::abort`].
    /// Finalizing twice is [`Error::Finalized`]. On error nothing changes
    /// (the chunk pages written are freed).
    ///
    /// From kho-v2 on the FDT is always published: this does nothing.
    pub fn finalize<M: PhysMem>(&mut self, mem: &mut M) -> Result<()> {
        let Tracking::Bitmaps { tracker, finalized } = &mut self.tracking else {
            return Ok(());
        };
        if *finalized {
            return Err(Error::Finalized);
        }
        let map = tracker.serialize(mem)?;
        self.fdt.set_memory_map(map);
        if let Err(e) = self.write_fdt(mem) {
            self.fdt.set_memory_map(PhysAddr::ZERO);
            if let Tracking::Bitmaps { tracker, .. } = &mut self.tracking {
                let _ = tracker.abort(mem);
            }
            let _ = self.clear_fdt(mem);
            return Err(e);
        }
        if let Tracking::Bitmaps { finalized, .. } = &mut self.tracking {
            *finalized = true;
        }
        Ok(())
    }

    /// kho-v1's abort: undo [`KhoOut::finalize`]. The chunk list is freed,
    /// the FDT page zeroed (no stale FDT names freed chunks), and the state
    /// can change again. Aborting an unfinalized state is
    /// [`Error::NotFinalized`].
    ///
    /// From kho-v2 on there is nothing to undo: this does nothing.
    pub fn abort<M: PhysMem>(&mut self, mem: &mut M) -> Result<()> {
        let Tracking::Bitmaps { tracker, finalized } = &mut self.tracking else {
            return Ok(());
        };
        if !*finalized {
            return Err(Error::NotFinalized);
        }
        tracker.abort(mem)?;
        *finalized = false;
        self.fdt.set_memory_map(PhysAddr::ZERO);
        self.clear_fdt(mem)
    }

    /// From now on, refuse to preserve anything inside these scratch
    /// areas (the next kernel allocates from them before it reserves
    /// anything, so a block there would be refused by its walk and the
    /// whole handover lost). Blocks already preserved are not re-checked:
    /// [`KhoOut::check_handover`] checks everything at the end.
    pub fn exclude_scratch(&mut self, areas: &ScratchAreas) {
        self.scratch = Some(*areas);
    }

    /// What the next kernel would refuse, refused now: `range` must be RAM
    /// and outside the scratch areas given to [`KhoOut::exclude_scratch`].
    fn check_preservable<M: PhysMem>(&self, mem: &M, range: PhysRange) -> Result<()> {
        if !mem.is_ram(range.start(), range.size()) {
            return Err(Error::PreserveNotRam {
                addr: range.start(),
                size: range.size(),
            });
        }
        if let Some(areas) = &self.scratch {
            kho_scratch::check_no_overlap(areas.as_slice(), [range])?;
        }
        Ok(())
    }

    /// Preserve the naturally aligned block of `2^order` pages at `phys`.
    ///
    /// Besides the tree's own checks (alignment, duplicates, overlaps across
    /// orders), the block must be RAM ([`Error::PreserveNotRam`]: a block of
    /// an order larger than RAM can hold is not) and outside scratch once
    /// [`KhoOut::exclude_scratch`] was called: the next kernel's walk would
    /// refuse either, and with it every client's memory.
    pub fn preserve_folio<M: PhysMem>(
        &mut self,
        mem: &mut M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        self.check_open()?;
        let pfn = Pfn::try_from_phys(phys)?;
        let range = PhysRange::try_new(phys, order.bytes())?;
        self.check_preservable(mem, range)?;
        self.preserve_block(mem, pfn, order)
    }

    /// Undo [`KhoOut::preserve_folio`] for exactly that block. The root
    /// FDT page is not the caller's to drop ([`Error::RootFdtPage`]).
    pub fn unpreserve_folio<M: PhysMem>(
        &mut self,
        mem: &mut M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        self.check_open()?;
        let range = PhysRange::try_new(phys, order.bytes())?;
        if range.contains(self.fdt_page) {
            return Err(Error::RootFdtPage {
                addr: self.fdt_page,
            });
        }
        let pfn = Pfn::try_from_phys(phys)?;
        match &mut self.tracking {
            Tracking::Radix(tree) => Ok(tree.unpreserve(mem, pfn, order)?),
            Tracking::Bitmaps { tracker, .. } => Ok(tracker.unpreserve(mem, pfn, order)?),
        }
    }

    /// Preserve a page-aligned range, decomposed into the largest naturally
    /// aligned blocks (all or nothing).
    /// Checked as [`KhoOut::preserve_folio`] checks a block.
    pub fn preserve_pages<M: PhysMem>(&mut self, mem: &mut M, range: PhysRange) -> Result<()> {
        self.check_open()?;
        let (start, pages) = page_span(range)?;
        if pages > 0 {
            self.check_preservable(mem, range)?;
        }
        match &mut self.tracking {
            Tracking::Radix(tree) => Ok(tree.preserve_range(mem, start, pages)?),
            Tracking::Bitmaps { tracker, .. } => Ok(tracker.preserve_range(mem, start, pages)?),
        }
    }

    /// Undo [`KhoOut::preserve_pages`] for exactly that range (which may not
    /// include the root FDT page, [`Error::RootFdtPage`]).
    pub fn unpreserve_pages<M: PhysMem>(&mut self, mem: &mut M, range: PhysRange) -> Result<()> {
        self.check_open()?;
        if range.contains(self.fdt_page) {
            return Err(Error::RootFdtPage {
                addr: self.fdt_page,
            });
        }
        let (start, pages) = page_span(range)?;
        match &mut self.tracking {
            Tracking::Radix(tree) => Ok(tree.unpreserve_range(mem, start, pages)?),
            Tracking::Bitmaps { tracker, .. } => Ok(tracker.unpreserve_range(mem, start, pages)?),
        }
    }

    /// Add (or, if `name` exists, replace) the child node `name` naming a
    /// client blob at `data` of `size` bytes (`size` is emitted as
    /// `blob-size`; required under kho-v3 and kho-v4). The blob's pages are
    /// the client's to preserve. On error nothing changes.
    ///
    /// The FDT page is republished before this returns, so each call costs
    /// one serialisation of the FDT: linear in the number of children.
    ///
    /// Under kho-v1 the child carries `fdt` and no `blob-size`: the blob
    /// must be an FDT ([`Error::SubtreeNotFdt`] unless it starts with the
    /// FDT magic and a `totalsize` of at least a header), whose `totalsize`
    /// is its size (`size`, if given, must equal it:
    /// [`Error::SubtreeSizeMismatch`]). The FDT is written at
    /// [`KhoOut::finalize`]; a finalized state refuses
    /// ([`Error::Finalized`]).
    pub fn add_subtree<M: PhysMem>(
        &mut self,
        mem: &mut M,
        name: &str,
        data: PhysAddr,
        size: Option<u64>,
    ) -> Result<()> {
        self.check_open()?;
        if self.version() == AbiVersion::V1 {
            let totalsize = sub_fdt_size(mem, name, data)?;
            if let Some(size) = size.filter(|&s| s != totalsize) {
                return Err(Error::SubtreeSizeMismatch {
                    name: name.to_string(),
                    size,
                    totalsize,
                });
            }
            let previous = self.fdt.clone();
            self.fdt.remove_subtree(name);
            if let Err(e) = self.fdt.add_subtree(name, data, None) {
                self.fdt = previous;
                return Err(e.into());
            }
            return Ok(());
        }
        let previous = self.fdt.clone();
        self.fdt.remove_subtree(name);
        if let Err(e) = self.fdt.add_subtree(name, data, size) {
            self.fdt = previous;
            return Err(e.into());
        }
        if let Err(e) = self.write_fdt(mem) {
            self.fdt = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Remove the child node `name`; returns whether it existed. A
    /// finalized kho-v1 state refuses ([`Error::Finalized`]).
    pub fn remove_subtree<M: PhysMem>(&mut self, mem: &mut M, name: &str) -> Result<bool> {
        self.check_open()?;
        let removed = self.fdt.remove_subtree(name);
        if removed && !self.version().has_finalize() {
            self.write_fdt(mem)?;
        }
        Ok(removed)
    }

    /// Preserve a vmalloc-style area: `blocks` (each `2^order` pages,
    /// naturally aligned, in virtual-address order) and the chunk chain
    /// listing them. The returned 16-byte descriptor is for the caller to
    /// store in its own preserved data. All or nothing.
    ///
    /// Not under kho-v1 yet ([`Error::NotInVersion`]): the chain writer
    /// preserves through the radix tree.
    pub fn preserve_vmalloc<M, I>(
        &mut self,
        mem: &mut M,
        blocks: I,
        order: Order,
        flags: u16,
    ) -> Result<VmallocDescriptor>
    where
        M: PhysMem,
        I: IntoIterator<Item = PhysAddr>,
    {
        let tree = self.radix_mut("vmalloc preservation")?;
        Ok(kho_vmalloc::preserve_vmalloc(
            mem, tree, blocks, order, flags,
        )?)
    }

    /// Preserve `reserve_mem` regions: their memory and the `memblock`
    /// sub-blob naming them, registered as the `memblock` subtree (with its
    /// size). All or nothing.
    ///
    /// Not under kho-v1 yet ([`Error::NotInVersion`]): the region writer
    /// preserves through the radix tree.
    pub fn preserve_memblock<M: PhysMem>(
        &mut self,
        mem: &mut M,
        regions: &[Region<'_>],
    ) -> Result<MemblockBlob> {
        let tree = self.radix_mut("memblock preservation")?;
        let blob = kho_memblock::preserve_memblock(mem, tree, regions)?;
        if let Err(e) = self.add_subtree(
            mem,
            kho_abi::memblock::SUBTREE_NAME,
            blob.phys,
            Some(blob.size),
        ) {
            let tree = self.radix_mut("memblock preservation")?;
            kho_memblock::unpreserve_memblock(mem, tree, blob)?;
            return Err(e);
        }
        Ok(blob)
    }

    /// Publish the `kexec-metadata` subtree: a preserved page holding the
    /// kexec count (incoming count + 1) and this kernel's release string.
    /// Returns the page, which the caller frees after a failed kexec.
    ///
    /// kho-v1 has no `kexec-metadata` (its children are FDTs without
    /// `blob-size`): [`Error::NotInVersion`].
    pub fn add_kexec_metadata<M: PhysMem>(
        &mut self,
        mem: &mut M,
        kexec_count: u32,
        release: &str,
    ) -> Result<PhysAddr> {
        let version = self.version();
        if !version.has_kexec_metadata() {
            return Err(Error::NotInVersion {
                what: "kexec-metadata",
                version,
            });
        }
        let mut blob = KexecMetadata {
            version: Le32::new(metadata::VERSION),
            previous_release: [0; metadata::RELEASE_LEN],
            kexec_count: Le32::new(kexec_count),
        };
        let n = release.len().min(metadata::RELEASE_LEN - 1);
        blob.previous_release[..n].copy_from_slice(&release.as_bytes()[..n]);
        let page = mem.alloc_page()?;
        mem.write_obj(page, &blob)?;
        self.preserve_folio(mem, page, Order::ZERO)?;
        let size = size_of::<KexecMetadata>() as u64;
        if let Err(e) = self.add_subtree(mem, metadata::SUBTREE_NAME, page, Some(size)) {
            self.unpreserve_folio(mem, page, Order::ZERO)?;
            mem.free_page(page)?;
            return Err(e);
        }
        Ok(page)
    }

    /// The handoff for the next kernel, given where the scratch descriptor
    /// array was written.
    pub fn handover(&self, scratch_array: PhysRange) -> Handover {
        Handover {
            fdt: self.fdt_page,
            fdt_size: PAGE_SIZE as u64,
            scratch: scratch_array.start(),
            scratch_len: scratch_array.size(),
        }
    }

    /// Check what the next kernel relies on: every range in `boot_ranges`
    /// (next image, boot parameters, command line, the scratch array) lies
    /// inside a scratch area, and no preserved block, radix node or the FDT
    /// page overlaps scratch. A kho-v1 state must be finalized
    /// ([`Error::NotFinalized`]).
    pub fn check_handover<M: PhysMem>(
        &self,
        mem: &M,
        areas: &[ScratchArea],
        boot_ranges: &[PhysRange],
    ) -> Result<()> {
        if !self.is_finalized() {
            return Err(Error::NotFinalized);
        }
        for r in boot_ranges {
            if !areas.iter().any(|a| a.range.contains_range(*r)) {
                return Err(Error::OutsideScratch {
                    addr: r.start(),
                    len: r.size(),
                });
            }
        }
        let tree = match &self.tracking {
            Tracking::Radix(tree) => tree,
            Tracking::Bitmaps { tracker, .. } => {
                let mut overlap = Ok(());
                let _ = tracker.walk(mem, |pfn, order| {
                    let range = PhysRange::try_new(pfn.phys(), order.bytes());
                    overlap = range
                        .map_err(Error::from)
                        .and_then(|r| Ok(kho_scratch::check_no_overlap(areas, [r])?));
                    match overlap {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    }
                })?;
                return overlap;
            }
        };
        let mut walk_error = None;
        let blocks = tree.ranges(mem).map_while(|item| match item {
            Ok(run) => Some(run.range()),
            Err(e) => {
                walk_error = Some(e);
                None
            }
        });
        kho_scratch::check_no_overlap(areas, blocks)?;
        if let Some(e) = walk_error {
            return Err(e.into());
        }
        Ok(())
    }

    /// Publish the FDT: the whole page in one write, the FDT then zeros (so
    /// a shorter FDT leaves nothing of a longer one behind). Linear in the
    /// number of children: the builder serialises in one pass, and the
    /// page is one copy instead of a write plus a chunked fill.
    fn write_fdt<M: PhysMem>(&mut self, mem: &mut M) -> Result<()> {
        let mut page = self.fdt.build()?;
        // `build` refuses anything larger than one page.
        page.resize(PAGE_SIZE, 0);
        mem.write(self.fdt_page, &page)?;
        Ok(())
    }

    /// Zero the FDT page (kho-v1 before finalize and after abort: no FDT).
    fn clear_fdt<M: PhysMem>(&mut self, mem: &mut M) -> Result<()> {
        mem.write(self.fdt_page, &[0u8; PAGE_SIZE])?;
        Ok(())
    }
}

/// The `totalsize` of the FDT a kho-v1 subtree names, read from its
/// header ([`Error::SubtreeNotFdt`] unless it has the magic and a size of
/// at least a header).
fn sub_fdt_size<M: PhysMem>(mem: &M, name: &str, data: PhysAddr) -> Result<u64> {
    let mut head = [0u8; 8];
    let not_fdt = || Error::SubtreeNotFdt {
        name: name.to_string(),
        addr: data,
    };
    if !mem.is_ram(data, head.len() as u64) {
        return Err(not_fdt());
    }
    mem.read(data, &mut head)?;
    let [m0, m1, m2, m3, t0, t1, t2, t3] = head;
    let totalsize = u32::from_be_bytes([t0, t1, t2, t3]);
    if u32::from_be_bytes([m0, m1, m2, m3]) != FDT_MAGIC || (totalsize as usize) < FDT_HEADER_SIZE {
        return Err(not_fdt());
    }
    Ok(u64::from(totalsize))
}

/// A page-aligned range as (first frame, pages); shared by
/// `preserve_pages` and `KhoIn::restore_pages`, which must agree.
pub(crate) fn page_span(range: PhysRange) -> Result<(Pfn, u64)> {
    let start = Pfn::try_from_phys(range.start())?;
    if !range.size().is_multiple_of(PAGE_SIZE as u64) {
        return Err(Error::Mem(kho_mem::Error::Misaligned {
            addr: range.size(),
            align: PAGE_SIZE as u64,
        }));
    }
    Ok((start, range.size() / PAGE_SIZE as u64))
}
