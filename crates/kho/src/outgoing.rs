//! The outgoing side: what the kernel that preserves owns and hands over.

use kho_abi::metadata::{self, KexecMetadata};
use kho_abi::vmalloc::VmallocDescriptor;
use kho_abi::{AbiVersion, Le32, PAGE_SIZE};
use kho_fdt::KhoFdtBuilder;
use kho_mem::{Order, Pfn, PhysAddr, PhysMem, PhysRange};
use kho_memblock::{MemblockBlob, Region};
use kho_radix::{NodeStats, RadixTree};
use kho_scratch::{ScratchArea, ScratchAreas};

use crate::{Error, Handover, Result};

/// The outgoing KHO state: the radix tree of preserved blocks and the
/// one-page root FDT that names it and every client blob.
///
/// As in kho-v2 there is no finalize step. Every edit rewrites the FDT page
/// at once, so the state can be handed over at any moment. The FDT page is
/// itself preserved as an order-0 block; node pages and the FDT come from
/// the [`PhysMem`] the caller passes, which must never hand out scratch
/// memory (scratch must stay free of preserved memory).
#[derive(Debug)]
pub struct KhoOut {
    tree: RadixTree,
    fdt_page: PhysAddr,
    fdt: KhoFdtBuilder,
    /// Scratch, once known ([`KhoOut::exclude_scratch`]): preserving inside
    /// it is refused at the call.
    scratch: Option<ScratchAreas>,
}

impl KhoOut {
    /// Start an empty handover: allocate the radix root and the FDT page.
    pub fn new<M: PhysMem>(mem: &mut M, version: AbiVersion) -> Result<KhoOut> {
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
            tree,
            fdt_page,
            fdt,
            scratch: None,
        };
        out.tree
            .preserve(mem, Pfn::try_from_phys(fdt_page)?, Order::ZERO)?;
        out.write_fdt(mem)?;
        Ok(out)
    }

    /// The ABI version of the root FDT.
    pub fn version(&self) -> AbiVersion {
        self.fdt.version()
    }

    /// Phys of the root FDT page.
    pub fn fdt(&self) -> PhysAddr {
        self.fdt_page
    }

    /// The radix tree (for statistics and walks of our own state).
    pub fn tree(&self) -> &RadixTree {
        &self.tree
    }

    /// Node accounting of the radix tree.
    pub fn node_stats(&self) -> NodeStats {
        self.tree.node_stats()
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
        let pfn = Pfn::try_from_phys(phys)?;
        let range = PhysRange::try_new(phys, order.bytes())?;
        self.check_preservable(mem, range)?;
        Ok(self.tree.preserve(mem, pfn, order)?)
    }

    /// Undo [`KhoOut::preserve_folio`] for exactly that block. The root
    /// FDT page is not the caller's to drop ([`Error::RootFdtPage`]).
    pub fn unpreserve_folio<M: PhysMem>(
        &mut self,
        mem: &mut M,
        phys: PhysAddr,
        order: Order,
    ) -> Result<()> {
        let range = PhysRange::try_new(phys, order.bytes())?;
        if range.contains(self.fdt_page) {
            return Err(Error::RootFdtPage {
                addr: self.fdt_page,
            });
        }
        Ok(self
            .tree
            .unpreserve(mem, Pfn::try_from_phys(phys)?, order)?)
    }

    /// Preserve a page-aligned range, decomposed into the largest naturally
    /// aligned blocks (all or nothing).
    /// Checked as [`KhoOut::preserve_folio`] checks a block.
    pub fn preserve_pages<M: PhysMem>(&mut self, mem: &mut M, range: PhysRange) -> Result<()> {
        let (start, pages) = page_span(range)?;
        if pages > 0 {
            self.check_preservable(mem, range)?;
        }
        Ok(self.tree.preserve_range(mem, start, pages)?)
    }

    /// Undo [`KhoOut::preserve_pages`] for exactly that range (which may not
    /// include the root FDT page, [`Error::RootFdtPage`]).
    pub fn unpreserve_pages<M: PhysMem>(&mut self, mem: &mut M, range: PhysRange) -> Result<()> {
        if range.contains(self.fdt_page) {
            return Err(Error::RootFdtPage {
                addr: self.fdt_page,
            });
        }
        let (start, pages) = page_span(range)?;
        Ok(self.tree.unpreserve_range(mem, start, pages)?)
    }

    /// Add (or, if `name` exists, replace) the child node `name` naming a
    /// client blob at `data` of `size` bytes (`size` is emitted as
    /// `blob-size`; required under kho-v3 and kho-v4). The blob's pages are
    /// the client's to preserve. On error nothing changes.
    ///
    /// The FDT page is republished before this returns, so each call costs
    /// one serialisation of the FDT: linear in the number of children.
    pub fn add_subtree<M: PhysMem>(
        &mut self,
        mem: &mut M,
        name: &str,
        data: PhysAddr,
        size: Option<u64>,
    ) -> Result<()> {
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

    /// Remove the child node `name`; returns whether it existed.
    pub fn remove_subtree<M: PhysMem>(&mut self, mem: &mut M, name: &str) -> Result<bool> {
        let removed = self.fdt.remove_subtree(name);
        if removed {
            self.write_fdt(mem)?;
        }
        Ok(removed)
    }

    /// Preserve a vmalloc-style area: `blocks` (each `2^order` pages,
    /// naturally aligned, in virtual-address order) and the chunk chain
    /// listing them. The returned 16-byte descriptor is for the caller to
    /// store in its own preserved data. All or nothing.
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
        Ok(kho_vmalloc::preserve_vmalloc(
            mem,
            &mut self.tree,
            blocks,
            order,
            flags,
        )?)
    }

    /// Preserve `reserve_mem` regions: their memory and the `memblock`
    /// sub-blob naming them, registered as the `memblock` subtree (with its
    /// size). All or nothing.
    pub fn preserve_memblock<M: PhysMem>(
        &mut self,
        mem: &mut M,
        regions: &[Region<'_>],
    ) -> Result<MemblockBlob> {
        let blob = kho_memblock::preserve_memblock(mem, &mut self.tree, regions)?;
        if let Err(e) = self.add_subtree(
            mem,
            kho_abi::memblock::SUBTREE_NAME,
            blob.phys,
            Some(blob.size),
        ) {
            kho_memblock::unpreserve_memblock(mem, &mut self.tree, blob)?;
            return Err(e);
        }
        Ok(blob)
    }

    /// Publish the `kexec-metadata` subtree: a preserved page holding the
    /// kexec count (incoming count + 1) and this kernel's release string.
    /// Returns the page, which the caller frees after a failed kexec.
    pub fn add_kexec_metadata<M: PhysMem>(
        &mut self,
        mem: &mut M,
        kexec_count: u32,
        release: &str,
    ) -> Result<PhysAddr> {
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
    /// page overlaps scratch.
    pub fn check_handover<M: PhysMem>(
        &self,
        mem: &M,
        areas: &[ScratchArea],
        boot_ranges: &[PhysRange],
    ) -> Result<()> {
        for r in boot_ranges {
            if !areas.iter().any(|a| a.range.contains_range(*r)) {
                return Err(Error::OutsideScratch {
                    addr: r.start(),
                    len: r.size(),
                });
            }
        }
        let mut walk_error = None;
        let blocks = self.tree.ranges(mem).map_while(|item| match item {
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
