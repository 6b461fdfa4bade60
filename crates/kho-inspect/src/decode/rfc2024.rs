//! The 2024 design (docs/ABI.md, "The 2024 design"): one FDT whose nodes
//! carry `mem` ranges, the mem cache and one scratch region, named on x86
//! by a 48-byte `kho_data` in the type-10 `setup_data` entry.
//!
//! Everything is checked by kho-ranges, the crate that reads the design
//! for a kernel: the mem cache alone (`MemCache::validate`), the tree alone
//! (`Tree`: every node's ranges), then the two against each other
//! (`Incoming::validate`). A kernel stops at the first failure; the
//! decoder runs each check it can, so that a bad cache does not hide what
//! the tree holds. Its memory follows the [`Limits`](crate::Limits): the
//! FDT is read whole up to `fdt_bytes`, and the entries listed and checked
//! (tree and cache) are bounded by `runs`.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC};
use kho_abi::rfc2024::{COMPATIBLE, KHO_DATA_SIZE, KHO_MEM_SIZE, KhoData, KhoMem};
use kho_abi::x86::SETUP_DATA_HEADER_SIZE;
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use kho_ranges::{At, Incoming, MemCache, Tree, TreeItem};

use super::{Decoder, PAGE};
use crate::report::{
    FdtInfo, Location, MemCacheInfo, MemRangeInfo, NodeRanges, RangeTree, Rfc2024, Rfc2024Handover,
};

/// The `len` of the 2024 design's `setup_data` KHO entry (kho-v2 and
/// later write 32).
pub(crate) const SETUP_DATA_LEN: u32 = KHO_DATA_SIZE as u32;
/// The largest tree rendered as text: past it the ranges by node are the
/// readable form (a `mem` property renders as hex bytes).
const MAX_RENDERED: u64 = 64 << 10;
const ENTRY: u64 = KHO_MEM_SIZE as u64;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

/// Whether the FDT whose first bytes are `prefix` (a page, say) has the
/// 2024 design's root `compatible`, read from the header and the root's
/// first properties only. A property whose name lies past `prefix` (the
/// strings block comes last, so a tree larger than the prefix has it out
/// of reach) counts when its value is exactly `"kho-2024"`. Never reads
/// past `prefix`; `false` when it cannot tell.
pub(crate) fn looks_rfc2024(prefix: &[u8]) -> bool {
    let be32 = |at: usize| -> Option<u32> {
        let b = prefix.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(<[u8; 4]>::try_from(b).ok()?))
    };
    let at = |at: usize| be32(at).map(|v| v as usize);
    let compatible = |v: &[u8]| {
        let want = COMPATIBLE.as_bytes();
        v.len() == want.len() + 1 && v.starts_with(want) && v.last() == Some(&0)
    };
    let walk = || -> Option<bool> {
        if be32(0)? != FDT_MAGIC {
            return None;
        }
        let (structure, strings, strings_len) = (at(8)?, at(12)?, at(32)?);
        let mut pos = structure;
        while be32(pos)? == FDT_NOP {
            pos = pos.checked_add(4)?;
        }
        // The root node: its token, then an empty name padded to 4 bytes.
        if be32(pos)? != FDT_BEGIN_NODE || *prefix.get(pos.checked_add(4)?)? != 0 {
            return None;
        }
        pos = pos.checked_add(8)?;
        loop {
            match be32(pos)? {
                FDT_NOP => pos = pos.checked_add(4)?,
                FDT_PROP => {
                    let (len, name_off) = (at(pos.checked_add(4)?)?, at(pos.checked_add(8)?)?);
                    let value_at = pos.checked_add(12)?;
                    let value = prefix.get(value_at..value_at.checked_add(len)?)?;
                    let name = strings
                        .checked_add(name_off)
                        .filter(|_| name_off < strings_len)
                        .and_then(|n| prefix.get(n..))
                        .and_then(|s| s.split(|&b| b == 0).next().filter(|_| s.contains(&0)));
                    match name {
                        Some(b"compatible") => return Some(compatible(value)),
                        None if compatible(value) => return Some(true),
                        _ => {}
                    }
                    pos = value_at.checked_add(len)?.checked_next_multiple_of(4)?;
                }
                _ => return Some(false),
            }
        }
    };
    walk().unwrap_or(false)
}

/// What a kho-ranges error is told against.
#[derive(Clone, Copy, Debug)]
struct Ctx<'t> {
    /// The FDT's physical address.
    fdt: u64,
    /// The mem cache, when known.
    cache: Option<PhysRange>,
    /// The parsed tree, to name the node of a `mem` entry.
    tree: Option<&'t Tree<'t>>,
}

/// The path of the node at `depth` in `stack` (names by depth, the root
/// first): `/` for the root.
fn path_of(stack: &[(&str, usize)], depth: usize) -> String {
    let names = stack.get(1..depth.min(stack.len())).unwrap_or_default();
    if names.is_empty() {
        return "/".to_owned();
    }
    names.iter().fold(String::new(), |mut path, (name, _)| {
        path.push('/');
        path.push_str(name);
        path
    })
}

/// The path of the node whose `mem` entry is at byte `offset` of the tree
/// (the node open when the walk got there).
fn node_at(tree: &Tree<'_>, offset: usize) -> Option<String> {
    let mut stack: Vec<(&str, usize)> = Vec::new();
    let mut found = None;
    let _ = tree.walk(|item| match item {
        TreeItem::Node {
            name,
            depth,
            offset: at,
        } => {
            if at > offset {
                return ControlFlow::Break(());
            }
            stack.truncate(depth.saturating_sub(1));
            stack.push((name, at));
            ControlFlow::Continue(())
        }
        TreeItem::Range(t) if t.offset == offset => {
            found = Some(path_of(&stack, t.depth));
            ControlFlow::Break(())
        }
        TreeItem::Range(_) => ControlFlow::Continue(()),
    });
    found.or_else(|| (!stack.is_empty()).then(|| path_of(&stack, stack.len())))
}

/// The problem code and location of a kho-ranges error.
fn classify(e: &kho_ranges::Error, ctx: Ctx<'_>) -> (&'static str, Location) {
    use kho_ranges::Error as E;
    let root = |offset: Option<usize>| Location::RootFdt {
        addr: ctx.fdt,
        offset: offset.map(|o| o as u64),
    };
    let cache = || match ctx.cache {
        Some(c) => Location::MemCache {
            addr: c.start().as_u64(),
            len: c.size(),
        },
        None => root(None),
    };
    let at = |at: At| match at {
        At::Cache { index, addr } => Location::MemCacheEntry {
            index,
            addr: addr.as_u64(),
            cache: ctx.cache.map_or(0, |c| c.start().as_u64()),
            cache_len: ctx.cache.map_or(0, PhysRange::size),
        },
        At::Fdt { offset } => Location::MemEntry {
            fdt: ctx.fdt,
            offset: offset as u64,
            node: ctx.tree.and_then(|t| node_at(t, offset)),
        },
        _ => root(None),
    };
    let range_code = |a: At| match a {
        At::Cache { .. } => "rfc2024-cache",
        _ => "rfc2024-range",
    };
    match *e {
        E::BadScratch { scratch } => (
            "rfc2024-scratch",
            Location::ScratchRegion {
                addr: scratch.start().as_u64(),
                size: scratch.size(),
            },
        ),
        E::NotInCache { at: a, .. } => ("rfc2024-not-in-cache", at(a)),
        E::NotInTree { at: a, .. } => ("rfc2024-not-in-tree", at(a)),
        E::CacheLength { .. } | E::CacheNotRam { .. } | E::TooManyRanges { .. } => {
            ("rfc2024-cache", cache())
        }
        E::CacheUnsorted { at: a, .. } => ("rfc2024-cache", at(a)),
        E::EmptyRange { at: a, .. }
        | E::Misaligned { at: a, .. }
        | E::ReservedFlags { at: a, .. }
        | E::RangeOverflow { at: a, .. }
        | E::NotRam { at: a, .. }
        | E::InScratch { at: a, .. }
        | E::Overlap { at: a, .. } => (range_code(a), at(a)),
        E::Fdt { offset, .. }
        | E::Compatible { offset }
        | E::MemLength { offset, .. }
        | E::DuplicateMem { offset } => ("rfc2024-tree", root(Some(offset))),
        E::Read { addr, .. } if ctx.cache.is_some_and(|c| c.contains(addr)) => {
            ("rfc2024-cache", cache())
        }
        _ => ("rfc2024-tree", root(None)),
    }
}

/// The tree's ranges by node, at most `max` of them; `Err` is where the
/// walk stopped at a problem, `Ok(false)` where it stopped at `max`.
fn list_ranges(tree: &Tree<'_>, max: usize) -> (RangeTree, kho_ranges::Result<bool>) {
    let mut listing = RangeTree::default();
    let mut stack: Vec<(&str, usize)> = Vec::new();
    // The node the last range listed belongs to (its token's offset).
    let mut last = None;
    let walked = tree.walk(|item| {
        match item {
            TreeItem::Node {
                name,
                depth,
                offset,
            } => {
                stack.truncate(depth.saturating_sub(1));
                stack.push((name, offset));
            }
            TreeItem::Range(t) => {
                if listing.ranges >= max as u64 {
                    return ControlFlow::Break(());
                }
                let node = stack.get(t.depth.saturating_sub(1)).map(|&(_, at)| at);
                if last != Some(node) {
                    listing.nodes.push(NodeRanges {
                        path: path_of(&stack, t.depth),
                        ranges: Vec::new(),
                        pages: 0,
                        noinit: 0,
                    });
                    last = Some(node);
                }
                let (size, noinit) = (t.range.len(), t.range.flags().noinit());
                let pages = size / PAGE;
                if let Some(n) = listing.nodes.last_mut() {
                    n.ranges.push(MemRangeInfo {
                        addr: t.range.start().as_u64(),
                        size,
                        noinit,
                    });
                    n.pages = n.pages.saturating_add(pages);
                    n.noinit += u64::from(noinit);
                }
                listing.ranges += 1;
                listing.pages = listing.pages.saturating_add(pages);
                listing.bytes = listing.bytes.saturating_add(size);
                listing.noinit += u64::from(noinit);
            }
        }
        ControlFlow::Continue(())
    });
    let end = walked.map(|flow| flow.is_continue());
    listing.complete = end == Ok(true);
    (listing, end)
}

impl<M: PhysMem> Decoder<'_, M> {
    fn rfc2024_problem(&mut self, e: &kho_ranges::Error, ctx: Ctx<'_>) {
        let (code, location) = classify(e, ctx);
        self.problem(code, location, e);
    }

    /// A 2024-design handover from the x86 `setup_data` entry at `entry`
    /// (its `len` is 48): the `kho_data`, the scratch region, the mem
    /// cache, the tree, and the two compared.
    pub(super) fn rfc2024_entry(&mut self, entry: u64, boot_params: Option<u64>) {
        self.report.abi_version = Some(COMPATIBLE.to_owned());
        let mut info = Rfc2024::default();
        self.rfc2024_entry_into(entry, boot_params, &mut info);
        self.report.rfc2024 = Some(info);
    }

    fn rfc2024_entry_into(&mut self, entry: u64, boot_params: Option<u64>, info: &mut Rfc2024) {
        let at = Location::SetupData {
            addr: entry,
            boot_params,
        };
        let data = PhysAddr::new(entry)
            .checked_add(SETUP_DATA_HEADER_SIZE as u64)
            .ok_or(kho_mem::Error::Overflow {
                addr: entry,
                len: (SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE) as u64,
            })
            .and_then(|payload| self.mem.read_obj::<KhoData>(payload));
        let data = match data {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    "setup-data",
                    at,
                    format_args!("cannot read the 2024 design's 48-byte kho_data: {e}"),
                );
                return;
            }
        };
        info.kho_data = Some(Rfc2024Handover {
            fdt: data.dt_addr.get(),
            fdt_size: data.dt_size.get(),
            scratch: data.scratch_addr.get(),
            scratch_size: data.scratch_size.get(),
            mem_cache: data.mem_cache_addr.get(),
            mem_cache_size: data.mem_cache_size.get(),
        });
        let h = match kho_ranges::Handover::from_kho_data(&data) {
            Ok(h) => h,
            Err(e) => {
                self.problem("rfc2024-handover", at, e);
                return;
            }
        };
        let fdt = h.fdt.start().as_u64();
        let ctx = Ctx {
            fdt,
            cache: Some(h.mem_cache),
            tree: None,
        };

        // The mem cache alone: what the next kernel reserves first.
        let entries = h.mem_cache.size() / ENTRY;
        let mut cache = MemCacheInfo {
            addr: h.mem_cache.start().as_u64(),
            size: h.mem_cache.size(),
            entries,
            valid: None,
        };
        let max = self.limits.runs;
        if entries > max as u64 {
            self.exceeded(
                "runs",
                Location::MemCache {
                    addr: cache.addr,
                    len: cache.size,
                },
                format!(
                    "the mem cache has {entries} entries, more than {max} (the `runs` limit); \
                     it is not checked, nor is the tree compared with it"
                ),
            );
        } else {
            match MemCache::validate(&self.mem, h.mem_cache, h.scratch) {
                Ok(_) => cache.valid = Some(true),
                Err(e) => {
                    cache.valid = Some(false);
                    self.rfc2024_problem(&e, ctx);
                }
            }
        }
        info.mem_cache = Some(cache);

        // The tree alone, then against the cache.
        let Some(blob) = self.rfc2024_read(h.fdt.start(), h.fdt.size(), "its dt_size") else {
            return;
        };
        let Some(tree) = self.rfc2024_tree(fdt, &blob, Some(h.scratch), Some(h.mem_cache), info)
        else {
            return;
        };
        if cache.valid != Some(true) {
            return;
        }
        // At most `runs` entries: one bit each.
        let mut bits = vec![0u64; Incoming::words_for(entries as usize)];
        match Incoming::validate(&self.mem, tree.fdt(), &h, &mut bits) {
            Ok(_) => info.agree = Some(true),
            Err(e) => {
                let mismatch = matches!(
                    e,
                    kho_ranges::Error::NotInCache { .. } | kho_ranges::Error::NotInTree { .. }
                );
                info.agree = mismatch.then_some(false);
                let ctx = Ctx {
                    tree: Some(&tree),
                    ..ctx
                };
                self.rfc2024_problem(&e, ctx);
            }
        }
    }

    /// A 2024-design tree from its FDT alone, at `addr`, whose first page
    /// (read by the `--fdt` path) is `page`: the tree's own checks; the
    /// scratch region and the mem cache are unknown.
    pub(super) fn rfc2024_fdt_alone(&mut self, addr: PhysAddr, page: &[u8]) {
        self.report.abi_version = Some(COMPATIBLE.to_owned());
        let mut info = Rfc2024::default();
        let total = page
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_be_bytes(b)));
        if let Some(blob) = self.rfc2024_read(addr, total, "its header's totalsize") {
            let _ = self.rfc2024_tree(addr.as_u64(), &blob, None, None, &mut info);
        }
        self.report.rfc2024 = Some(info);
    }

    /// The FDT at `addr`, `size` bytes (`what` says where the size comes
    /// from), read whole within the `fdt_bytes` limit.
    fn rfc2024_read(&mut self, addr: PhysAddr, size: u64, what: &str) -> Option<Vec<u8>> {
        let at = Location::RootFdt {
            addr: addr.as_u64(),
            offset: None,
        };
        self.report.fdt = Some(FdtInfo {
            addr: addr.as_u64(),
            total_size: self.header_total(addr).unwrap_or(0),
            memory_map: None,
            rendered: None,
        });
        let max = self.limits.fdt_bytes;
        let n = usize::try_from(size).ok().filter(|_| size <= max);
        let mut blob = Vec::new();
        let Some(n) = n.filter(|&n| blob.try_reserve_exact(n).is_ok()) else {
            self.exceeded(
                "fdt-bytes",
                at,
                format!(
                    "the FDT is {size:#x} bytes ({what}), more than the {max:#x} bytes read whole \
                     (the `fdt_bytes` limit, --max-fdt-bytes); the tree is not decoded"
                ),
            );
            return None;
        };
        blob.resize(n, 0);
        if let Err(e) = self.mem.read(addr, &mut blob) {
            self.problem(
                "rfc2024-tree",
                at,
                format_args!("cannot read the {size:#x}-byte FDT ({what}): {e}"),
            );
            return None;
        }
        Some(blob)
    }

    /// The header's `totalsize` of the FDT at `addr`, if readable and the
    /// magic is right.
    fn header_total(&self, addr: PhysAddr) -> Option<u64> {
        let mut head = [0u8; 8];
        self.mem.read(addr, &mut head).ok()?;
        let word = |i: usize| {
            let b = head.get(i..i + 4)?;
            Some(u32::from_be_bytes(<[u8; 4]>::try_from(b).ok()?))
        };
        (word(0)? == FDT_MAGIC).then_some(())?;
        let total = word(4)?;
        (total as usize >= FDT_HEADER_SIZE).then_some(u64::from(total))
    }

    /// The tree in `blob` (the FDT at `fdt`): rendered, its ranges listed
    /// by node, and checked alone (against `scratch` when known). The
    /// parsed tree when every check passed, for the comparison with the
    /// cache.
    fn rfc2024_tree<'b>(
        &mut self,
        fdt: u64,
        blob: &'b [u8],
        scratch: Option<PhysRange>,
        cache: Option<PhysRange>,
        info: &mut Rfc2024,
    ) -> Option<Tree<'b>> {
        let parsed = Tree::parse(blob);
        let bytes = parsed.as_ref().map_or(blob, Tree::fdt);
        if let Some(f) = self.report.fdt.as_mut()
            && (bytes.len() as u64) <= MAX_RENDERED
        {
            f.rendered = kho_fdt::render_blob(bytes).ok();
        }
        let ctx = Ctx {
            fdt,
            cache,
            tree: None,
        };
        let tree = match parsed {
            Ok(t) => t,
            Err(e) => {
                self.rfc2024_problem(&e, ctx);
                return None;
            }
        };
        let ctx = Ctx {
            tree: Some(&tree),
            ..ctx
        };
        let max = self.limits.runs;
        let (listing, end) = list_ranges(&tree, max);
        let count = listing.ranges;
        info.tree = Some(listing);
        match end {
            Ok(true) => {}
            Ok(false) => {
                self.exceeded(
                    "runs",
                    Location::RootFdt {
                        addr: fdt,
                        offset: None,
                    },
                    format!(
                        "the tree has more than {max} mem entries (the `runs` limit); the first \
                         {max} are listed, the rest are not, and the tree is not checked for \
                         overlaps nor compared with the mem cache"
                    ),
                );
                return None;
            }
            Err(e) => {
                self.rfc2024_problem(&e, ctx);
                return None;
            }
        }
        // `count` ≤ `runs`: one entry each for the overlap check.
        let mut buf = vec![KhoMem::default(); count as usize];
        if let Err(e) = tree.check(&self.mem, scratch, &mut buf) {
            self.rfc2024_problem(&e, ctx);
            return None;
        }
        Some(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fdt(compatible: &str) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("compatible", compatible).unwrap();
        let n = w.begin_node("a").unwrap();
        w.property("mem", &[0u8; 16 * 300]).unwrap();
        w.end_node(n).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn the_root_compatible_is_read_from_a_prefix() {
        let blob = fdt("kho-2024");
        assert!(blob.len() > 4096);
        assert!(looks_rfc2024(&blob));
        // The strings block is past the first page: told by the value.
        assert!(looks_rfc2024(&blob[..4096]));
        assert!(!looks_rfc2024(&fdt("kho-v4")[..4096]));
        assert!(!looks_rfc2024(&fdt("kho-2024x")));
        assert!(!looks_rfc2024(&blob[..64]));
        assert!(!looks_rfc2024(&[]));
        let mut bad = blob.clone();
        bad[0] = 0;
        assert!(!looks_rfc2024(&bad));
    }

    #[test]
    fn paths_name_the_root_and_nested_nodes() {
        let stack = [("", 0), ("ftrace", 8), ("cpu0", 16)];
        assert_eq!(path_of(&stack, 1), "/");
        assert_eq!(path_of(&stack, 3), "/ftrace/cpu0");
        assert_eq!(path_of(&stack, 9), "/ftrace/cpu0");
        assert_eq!(path_of(&[], 0), "/");
    }
}
