//! The incoming side: a handover another kernel wrote, validated before
//! anything is reported.
//!
//! The next kernel reserves from the mem cache before it can parse the
//! FDT, so the cache is checked first and on its own ([`MemCache`]), then
//! the tree is checked against it ([`Incoming`]). Memory: a fixed stack,
//! the FDT in the caller's buffer, one bit per mem cache entry in the
//! caller's `&mut [u64]`. A reader with the FDT alone checks what it can
//! without the cache with [`Tree`].

use core::ops::ControlFlow;

use kho_abi::Le64;
use kho_abi::rfc2024::{COMPATIBLE, KHO_MEM_SIZE, KhoData, KhoMem, PROP_MEM};
use kho_mem::{PhysAddr, PhysMem, PhysRange};
use zerocopy::FromBytes;

use crate::fdt::{Event, Fdt};
use crate::range::{check_placement, check_scratch_shape};
use crate::{At, Error, MemRange, Result};

/// Entries read from the mem cache at once (512 bytes of stack).
const BATCH: usize = 32;
const ENTRY: u64 = KHO_MEM_SIZE as u64;

/// What crosses the kexec besides memory: where the FDT, the one scratch
/// region and the mem cache are (x86: the 2024 `kho_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handover {
    /// The KHO FDT (`dt_addr`, `dt_size`).
    pub fdt: PhysRange,
    /// The scratch region (`scratch_addr`, `scratch_size`).
    pub scratch: PhysRange,
    /// The mem cache (`mem_cache_addr`, `mem_cache_size`).
    pub mem_cache: PhysRange,
}

impl Handover {
    /// Decode a `kho_data` payload; only wrap-around is refused here, the
    /// rest is checked by [`MemCache::validate`] and [`Incoming::validate`].
    pub fn from_kho_data(data: &KhoData) -> Result<Handover> {
        let pair = |field, addr: Le64, size: Le64| {
            let (addr, size) = (addr.get(), size.get());
            PhysRange::try_new(PhysAddr::new(addr), size).map_err(|_| Error::BadHandover {
                field,
                addr,
                size,
            })
        };
        Ok(Handover {
            fdt: pair("dt", data.dt_addr, data.dt_size)?,
            scratch: pair("scratch", data.scratch_addr, data.scratch_size)?,
            mem_cache: pair("mem_cache", data.mem_cache_addr, data.mem_cache_size)?,
        })
    }

    /// The `kho_data` payload naming this handover.
    pub fn to_kho_data(&self) -> KhoData {
        let le = |r: PhysRange| (Le64::new(r.start().as_u64()), Le64::new(r.size()));
        let ((dt_addr, dt_size), (scratch_addr, scratch_size), (mem_cache_addr, mem_cache_size)) =
            (le(self.fdt), le(self.scratch), le(self.mem_cache));
        KhoData {
            dt_addr,
            dt_size,
            scratch_addr,
            scratch_size,
            mem_cache_addr,
            mem_cache_size,
        }
    }

    /// Copy the FDT into `buf` (it must be RAM and fit) and return it.
    pub fn read_fdt<'b, M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8]> {
        let size = self.fdt.size();
        let n = usize::try_from(size)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or(Error::FdtTooLarge {
                size,
                capacity: buf.len(),
            })?;
        let out = buf.get_mut(..n).unwrap_or_default();
        let addr = self.fdt.start();
        mem.read(addr, out)
            .map_err(|source| Error::Read { addr, source })?;
        Ok(out)
    }
}

/// A mem cache that passed its checks: every entry a page-aligned RAM range
/// outside scratch, sorted by address, no two overlapping. What the next
/// kernel reserves first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemCache {
    cache: PhysRange,
    scratch: PhysRange,
    len: usize,
}

impl MemCache {
    /// Check the mem cache at `cache` against RAM and the `scratch` region,
    /// streaming it once (constant memory).
    pub fn validate<M: PhysMem + ?Sized>(
        mem: &M,
        cache: PhysRange,
        scratch: PhysRange,
    ) -> Result<MemCache> {
        check_scratch_shape(scratch)?;
        if !mem.is_ram(scratch.start(), scratch.size()) {
            return Err(Error::BadScratch { scratch });
        }
        if !cache.size().is_multiple_of(ENTRY) {
            return Err(Error::CacheLength { cache });
        }
        if !cache.is_empty() && !mem.is_ram(cache.start(), cache.size()) {
            return Err(Error::CacheNotRam { cache });
        }
        let len =
            usize::try_from(cache.size() / ENTRY).map_err(|_| Error::CacheLength { cache })?;
        let this = MemCache {
            cache,
            scratch,
            len,
        };
        let mut previous: Option<MemRange> = None;
        // f never breaks: every problem is an error.
        let _ = this.stream(mem, |at, r| {
            check_placement(mem, at, r, scratch)?;
            if let Some(p) = previous {
                if r.start() < p.start() {
                    return Err(Error::CacheUnsorted {
                        at,
                        range: r.range(),
                        previous: p.range(),
                    });
                }
                if r.range().overlaps(p.range()) {
                    return Err(Error::Overlap {
                        at,
                        range: r.range(),
                        other: p.range(),
                    });
                }
            }
            previous = Some(r);
            Ok(ControlFlow::<()>::Continue(()))
        })?;
        Ok(this)
    }

    /// Entries in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is preserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the cache is.
    pub fn range(&self) -> PhysRange {
        self.cache
    }

    /// The scratch region it was checked against.
    pub fn scratch(&self) -> PhysRange {
        self.scratch
    }

    /// Call `f` for every range to reserve, in address order.
    pub fn for_each<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        mut f: impl FnMut(MemRange) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.stream(mem, |_, r| Ok(f(r)))
    }

    fn entry_addr(&self, index: usize) -> PhysAddr {
        // index < len, so inside the cache, which does not wrap.
        PhysAddr::new(self.cache.start().as_u64() + index as u64 * ENTRY)
    }

    /// Read entries in batches and check their shape.
    fn stream<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        mut f: impl FnMut(At, MemRange) -> Result<ControlFlow<B>>,
    ) -> Result<ControlFlow<B>> {
        let mut words = [0u64; 2 * BATCH];
        let mut i = 0;
        while i < self.len {
            let k = (self.len - i).min(BATCH);
            let addr = self.entry_addr(i);
            let batch = words.get_mut(..2 * k).unwrap_or_default();
            mem.read_u64s(addr, batch)
                .map_err(|source| Error::Read { addr, source })?;
            for (j, pair) in batch.chunks_exact(2).enumerate() {
                let index = i + j;
                let at = At::Cache {
                    index,
                    addr: self.entry_addr(index),
                };
                let r = MemRange::from_raw(at, pair[0], pair[1])?;
                if let ControlFlow::Break(b) = f(at, r)? {
                    return Ok(ControlFlow::Break(b));
                }
            }
            i += k;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Read entry `index` (< len) of a validated cache.
    fn read<M: PhysMem + ?Sized>(&self, mem: &M, index: usize) -> Result<KhoMem> {
        let addr = self.entry_addr(index);
        let mut w = [0u64; 2];
        mem.read_u64s(addr, &mut w)
            .map_err(|source| Error::Read { addr, source })?;
        Ok(KhoMem {
            addr: Le64::new(w[0]),
            len: Le64::new(w[1]),
        })
    }

    /// Index of the entry equal to `want` (address, flags and length), by
    /// binary search over the sorted cache.
    fn find<M: PhysMem + ?Sized>(&self, mem: &M, want: KhoMem) -> Result<Option<usize>> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.read(mem, mid)?;
            match e.start().cmp(&want.start()) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Ok((e == want).then_some(mid)),
            }
        }
        Ok(None)
    }
}

/// One `mem` entry of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeRange<'a> {
    /// The name of the node holding it (`""` for the root).
    pub node: &'a str,
    /// The node's depth (the root is 1).
    pub depth: usize,
    /// Byte offset of the entry in the FDT.
    pub offset: usize,
    /// The range.
    pub range: MemRange,
}

/// A handover whose mem cache and tree passed every check and agree: the
/// tree's `mem` entries are exactly the cache's entries.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    fdt: Fdt<'a>,
    cache: MemCache,
}

impl<'a> Incoming<'a> {
    /// Words of buffer [`Incoming::validate`] needs for a mem cache of
    /// `ranges` entries (one bit each).
    pub const fn words_for(ranges: usize) -> usize {
        ranges.div_ceil(64)
    }

    /// Validate a handover: the mem cache ([`MemCache::validate`]), the
    /// FDT's container and root `compatible`, every `mem` entry (length a
    /// multiple of 16, shape, RAM, outside scratch), and that the tree's
    /// entries are exactly the cache's. `buf` needs
    /// [`Incoming::words_for`]`(cache entries)` words.
    pub fn validate<M: PhysMem + ?Sized>(
        mem: &M,
        fdt: &'a [u8],
        handover: &Handover,
        buf: &mut [u64],
    ) -> Result<Incoming<'a>> {
        let cache = MemCache::validate(mem, handover.mem_cache, handover.scratch)?;
        let capacity = buf.len().saturating_mul(64);
        if cache.len() > capacity {
            return Err(Error::TooManyRanges {
                ranges: cache.len(),
                capacity,
            });
        }
        let seen = buf
            .get_mut(..Incoming::words_for(cache.len()))
            .unwrap_or_default();
        seen.fill(0);
        let fdt = Fdt::parse(fdt)?;
        check_compatible(&fdt)?;
        let this = Incoming { fdt, cache };
        let scratch = handover.scratch;
        // f never breaks: every problem is an error.
        let _ = this.walk_mem(|t| {
            let at = At::Fdt { offset: t.offset };
            check_placement(mem, at, t.range, scratch)?;
            let range = t.range.range();
            let index = cache
                .find(mem, t.range.to_kho_mem())?
                .ok_or(Error::NotInCache { at, range })?;
            let (word, bit) = (index / 64, 1u64 << (index % 64));
            let w = seen.get_mut(word).ok_or(Error::NotInCache { at, range })?;
            if *w & bit != 0 {
                return Err(Error::Overlap {
                    at,
                    range,
                    other: range,
                });
            }
            *w |= bit;
            Ok(ControlFlow::<()>::Continue(()))
        })?;
        if let Some(index) = first_clear(seen, cache.len()) {
            let e = cache.read(mem, index)?;
            let at = At::Cache {
                index,
                addr: cache.entry_addr(index),
            };
            let r = MemRange::from_raw(at, e.addr.get(), e.len.get())?;
            return Err(Error::NotInTree {
                at,
                range: r.range(),
            });
        }
        Ok(this)
    }

    /// The validated mem cache.
    pub fn mem_cache(&self) -> &MemCache {
        &self.cache
    }

    /// The FDT (cut to its `totalsize`).
    pub fn fdt(&self) -> &'a [u8] {
        self.fdt.bytes()
    }

    /// Entries to reserve.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing is preserved.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Call `f` for every range to reserve, in address order (from the
    /// mem cache).
    pub fn for_each_range<M: PhysMem + ?Sized, B>(
        &self,
        mem: &M,
        f: impl FnMut(MemRange) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.cache.for_each(mem, f)
    }

    /// Call `f` for every `mem` entry of the tree, in FDT order, with the
    /// node that holds it (how a client finds the memory it handed over).
    pub fn for_each_tree_range<B>(
        &self,
        mut f: impl FnMut(TreeRange<'a>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        self.walk_mem(|t| Ok(f(t)))
    }

    /// Walk the tree's `mem` properties: check lengths, one per node, and
    /// the shape of each entry, then call `f`.
    fn walk_mem<B>(
        &self,
        mut f: impl FnMut(TreeRange<'a>) -> Result<ControlFlow<B>>,
    ) -> Result<ControlFlow<B>> {
        walk_items(&self.fdt, |item| match item {
            TreeItem::Range(t) => f(t),
            TreeItem::Node { .. } => Ok(ControlFlow::Continue(())),
        })
    }
}

/// One step of [`Tree::walk`], in FDT order: a node opens, or one `mem`
/// entry of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeItem<'a> {
    /// A node opens. A well-formed FDT lists a node's properties, so its
    /// `mem` entries, before its subnodes.
    Node {
        /// Its name (`""` for the root; `"?"` if it is not UTF-8).
        name: &'a str,
        /// Its depth (the root is 1).
        depth: usize,
        /// Byte offset of its token in the FDT.
        offset: usize,
    },
    /// One `mem` entry of the node open at `depth`.
    Range(TreeRange<'a>),
}

/// The tree of a 2024-design handover checked on its own, without the mem
/// cache: for a reader that has only the FDT (an inspector given its
/// address, a tool reading a dump). What can be checked without the cache
/// is: the container, the root `compatible`, each `mem` property (a whole
/// number of entries, one per node), each entry (flags, alignment, no
/// wrap-around, RAM, outside the scratch region when it is known) and that
/// no two entries overlap, in one node or across nodes.
///
/// It allocates nothing: the overlap check sorts a copy of the entries in
/// a caller buffer of one [`KhoMem`] per entry ([`Tree::ranges`] says how
/// many).
#[derive(Clone, Copy, Debug)]
pub struct Tree<'a> {
    fdt: Fdt<'a>,
}

impl<'a> Tree<'a> {
    /// Check the FDT's container and its root `compatible` (`"kho-2024"`).
    pub fn parse(fdt: &'a [u8]) -> Result<Tree<'a>> {
        let fdt = Fdt::parse(fdt)?;
        check_compatible(&fdt)?;
        Ok(Tree { fdt })
    }

    /// The FDT (cut to its `totalsize`).
    pub fn fdt(&self) -> &'a [u8] {
        self.fdt.bytes()
    }

    /// Call `f` for every node and every `mem` entry, in FDT order. Each
    /// `mem` property is checked (a multiple of 16 bytes, at most one per
    /// node) and each entry's shape (flags, alignment, non-empty, no
    /// wrap-around) before it is passed on; the walk stops at the first
    /// problem, after the items before it.
    pub fn walk<B>(
        &self,
        mut f: impl FnMut(TreeItem<'a>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>> {
        walk_items(&self.fdt, |item| Ok(f(item)))
    }

    /// Entries in all `mem` properties (the walk's checks included).
    pub fn ranges(&self) -> Result<usize> {
        let mut n = 0usize;
        let _ = self.walk(|item| {
            if let TreeItem::Range(_) = item {
                n = n.saturating_add(1);
            }
            ControlFlow::<()>::Continue(())
        })?;
        Ok(n)
    }

    /// Check every entry as [`Incoming::validate`] does, without the
    /// cache: the walk's checks ([`Tree::walk`]), RAM, outside `scratch`
    /// when it is known, and no two entries overlapping (the same range
    /// twice included: [`Error::Overlap`] names the later entry in FDT
    /// order). `buf` needs one entry per `mem` entry ([`Tree::ranges`]),
    /// else [`Error::TooManyRanges`]; on success its first `n` entries are
    /// the ranges sorted by address, and `n` is returned.
    pub fn check<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        scratch: Option<PhysRange>,
        buf: &mut [KhoMem],
    ) -> Result<usize> {
        let mut n = 0usize;
        let mut short = false;
        // f never breaks: every problem is an error.
        let _ = walk_items(&self.fdt, |item| {
            let TreeItem::Range(t) = item else {
                return Ok(ControlFlow::<()>::Continue(()));
            };
            let at = At::Fdt { offset: t.offset };
            match scratch {
                Some(scratch) => check_placement(mem, at, t.range, scratch)?,
                None => {
                    let range = t.range.range();
                    if !mem.is_ram(range.start(), range.size()) {
                        return Err(Error::NotRam { at, range });
                    }
                }
            }
            match buf.get_mut(n) {
                Some(slot) => *slot = t.range.to_kho_mem(),
                None => short = true,
            }
            n = n.saturating_add(1);
            Ok(ControlFlow::Continue(()))
        })?;
        if short {
            return Err(Error::TooManyRanges {
                ranges: n,
                capacity: buf.len(),
            });
        }
        let sorted = buf.get_mut(..n).unwrap_or_default();
        sorted.sort_unstable_by_key(|m| (m.start(), m.len.get(), m.flags()));
        let overlap = sorted.windows(2).find_map(|pair| match pair {
            [a, b] if overlaps(a, b) => Some((*a, *b)),
            _ => None,
        });
        if let Some((a, b)) = overlap {
            return Err(self.overlap_error(a, b));
        }
        Ok(n)
    }

    /// The [`Error::Overlap`] of entries `a` and `b`, told at the one that
    /// comes later in FDT order.
    fn overlap_error(&self, a: KhoMem, b: KhoMem) -> Error {
        let mut later: Option<(usize, KhoMem)> = None;
        let _ = self.walk(|item| {
            if let TreeItem::Range(t) = item {
                let m = t.range.to_kho_mem();
                if m == a || m == b {
                    later = Some((t.offset, m));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let (offset, range) = later.unwrap_or((0, b));
        let other = if range == a { b } else { a };
        let at = At::Fdt { offset };
        // Both passed the walk's shape checks, so neither conversion fails.
        let phys = |m: KhoMem| MemRange::from_raw(at, m.addr.get(), m.len.get()).map(|r| r.range());
        match (phys(range), phys(other)) {
            (Ok(range), Ok(other)) => Error::Overlap { at, range, other },
            (Err(e), _) | (_, Err(e)) => e,
        }
    }
}

/// Whether two checked entries overlap (both non-empty; an end may be
/// 2^64, hence the wider arithmetic).
fn overlaps(a: &KhoMem, b: &KhoMem) -> bool {
    let span = |m: &KhoMem| {
        let start = u128::from(m.start());
        (start, start + u128::from(m.len.get()))
    };
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    a0 < b1 && b0 < a1
}

/// Walk the tree: every node, and every `mem` entry after checking its
/// property's length, one `mem` per node, and the entry's shape.
fn walk_items<'a, B>(
    fdt: &Fdt<'a>,
    mut f: impl FnMut(TreeItem<'a>) -> Result<ControlFlow<B>>,
) -> Result<ControlFlow<B>> {
    let mut node: &'a [u8] = &[];
    // Bit d - 1: the open node at depth d has a `mem` property.
    let mut has_mem = 0u64;
    let mut stop = None;
    let walked = fdt.walk(|e| {
        if stop.is_some() {
            return Ok(());
        }
        match e {
            Event::Begin {
                offset,
                name,
                depth,
            } => {
                node = name;
                has_mem &= !(1u64 << (depth - 1));
                let item = TreeItem::Node {
                    name: core::str::from_utf8(name).unwrap_or("?"),
                    depth,
                    offset,
                };
                if let ControlFlow::Break(b) = f(item)? {
                    stop = Some(b);
                }
            }
            Event::Prop {
                offset,
                name,
                value,
                depth,
            } if name == PROP_MEM.as_bytes() => {
                let bit = 1u64 << (depth - 1);
                if has_mem & bit != 0 {
                    return Err(Error::DuplicateMem { offset });
                }
                has_mem |= bit;
                if !value.len().is_multiple_of(KHO_MEM_SIZE) {
                    return Err(Error::MemLength {
                        offset,
                        len: value.len(),
                    });
                }
                let name = core::str::from_utf8(node).unwrap_or("?");
                for (i, entry) in value.chunks_exact(KHO_MEM_SIZE).enumerate() {
                    let m = KhoMem::read_from_bytes(entry).unwrap_or_default();
                    let offset = offset + i * KHO_MEM_SIZE;
                    let range = MemRange::from_raw(At::Fdt { offset }, m.addr.get(), m.len.get())?;
                    let t = TreeRange {
                        node: name,
                        depth,
                        offset,
                        range,
                    };
                    if let ControlFlow::Break(b) = f(TreeItem::Range(t))? {
                        stop = Some(b);
                        break;
                    }
                }
            }
            Event::Prop { .. } | Event::End { .. } => {}
        }
        Ok(())
    });
    walked?;
    Ok(stop.map_or(ControlFlow::Continue(()), ControlFlow::Break))
}

/// The root must have `compatible = "kho-2024"` (exactly one string).
fn check_compatible(fdt: &Fdt<'_>) -> Result<()> {
    let mut found = None;
    let mut root = 0;
    fdt.walk(|e| {
        match e {
            Event::Begin {
                offset, depth: 1, ..
            } => root = offset,
            Event::Prop {
                offset,
                name,
                value,
                depth: 1,
            } if name == b"compatible" && found.is_none() => found = Some((offset, value)),
            _ => {}
        }
        Ok(())
    })?;
    match found {
        Some((offset, value)) => {
            let want = COMPATIBLE.as_bytes();
            if value.len() == want.len() + 1 && value.starts_with(want) && value.last() == Some(&0)
            {
                Ok(())
            } else {
                Err(Error::Compatible { offset })
            }
        }
        None => Err(Error::Compatible { offset: root }),
    }
}

/// Index of the first clear bit below `len`.
fn first_clear(bits: &[u64], len: usize) -> Option<usize> {
    bits.iter().enumerate().find_map(|(w, &word)| {
        let i = w * 64 + (!word).trailing_zeros() as usize;
        (word != u64::MAX && i < len).then_some(i)
    })
}
