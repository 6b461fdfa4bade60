//! The outgoing side: ranges to preserve, per FDT node, and the active
//! phase in which they are serialized.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use kho_abi::rfc2024::{COMPATIBLE, KHO_MEM_SIZE, PROP_MEM};
use kho_mem::{PhysAddr, PhysRange};
use zerocopy::IntoBytes;

use crate::range::{check_scratch, check_scratch_shape};
use crate::{At, Error, Handover, MAX_DEPTH, MemFlags, MemRange, Result};

/// Longest node or property name accepted (the device-tree limit).
pub const MAX_NAME_LEN: usize = 31;

/// One node of the outgoing tree.
#[derive(Clone, Debug, Default)]
struct Node {
    name: String,
    /// Client properties, in the order first set.
    props: Vec<(String, Vec<u8>)>,
    /// Ranges, kept sorted by address.
    mem: Vec<MemRange>,
    /// Subnodes, in the order first used.
    children: Vec<Node>,
}

/// What the active phase holds: the FDT and the mem cache, ready to be
/// placed as kexec segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serialized {
    fdt: Vec<u8>,
    mem_cache: Vec<u8>,
    ranges: usize,
}

impl Serialized {
    /// The KHO FDT.
    pub fn fdt(&self) -> &[u8] {
        &self.fdt
    }

    /// The mem cache: every range as a 16-byte `kho_mem`, sorted by
    /// address.
    pub fn mem_cache(&self) -> &[u8] {
        &self.mem_cache
    }

    /// Ranges preserved (entries of the mem cache).
    pub fn ranges(&self) -> usize {
        self.ranges
    }

    /// The handover once the FDT is placed at `fdt_at` and the mem cache
    /// at `cache_at`.
    pub fn handover(
        &self,
        scratch: PhysRange,
        fdt_at: PhysAddr,
        cache_at: PhysAddr,
    ) -> Result<Handover> {
        let range = |field, at: PhysAddr, len: usize| {
            let size = len as u64;
            PhysRange::try_new(at, size).map_err(|_| Error::BadHandover {
                field,
                addr: at.as_u64(),
                size,
            })
        };
        Ok(Handover {
            fdt: range("dt", fdt_at, self.fdt.len())?,
            scratch,
            mem_cache: range("mem_cache", cache_at, self.mem_cache.len())?,
        })
    }
}

/// Ranges to hand over, per node, and the active-phase lifecycle.
///
/// Outside the active phase, [`preserve`](Tracker::preserve),
/// [`unpreserve`](Tracker::unpreserve) and
/// [`set_property`](Tracker::set_property) change the tree;
/// [`serialize`](Tracker::serialize) enters the active phase and writes the
/// FDT and the mem cache; until [`leave_active`](Tracker::leave_active)
/// drops them, the tree is immutable ([`Error::Active`]).
#[derive(Clone, Debug)]
pub struct Tracker {
    scratch: PhysRange,
    root: Node,
    /// Every range by start address, for the overlap check and the cache.
    index: BTreeMap<u64, MemRange>,
    active: Option<Serialized>,
}

impl Tracker {
    /// A tracker handing over the one `scratch` region (non-empty,
    /// page-aligned); no range may overlap it.
    pub fn new(scratch: PhysRange) -> Result<Tracker> {
        check_scratch_shape(scratch)?;
        Ok(Tracker {
            scratch,
            root: Node::default(),
            index: BTreeMap::new(),
            active: None,
        })
    }

    /// The scratch region.
    pub fn scratch(&self) -> PhysRange {
        self.scratch
    }

    /// Ranges preserved.
    pub fn ranges(&self) -> usize {
        self.index.len()
    }

    /// Whether the tracker is in the active phase.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The serialized handover, in the active phase.
    pub fn serialized(&self) -> Result<&Serialized> {
        self.active.as_ref().ok_or(Error::NotActive)
    }

    /// Preserve `range` in the node at `path` (`"a/b"`, `""` for the root;
    /// nodes are created as needed). The range must be non-empty,
    /// page-aligned, outside scratch and overlap no preserved range.
    pub fn preserve(&mut self, path: &str, range: PhysRange, flags: MemFlags) -> Result<()> {
        if self.active.is_some() {
            return Err(Error::Active);
        }
        let r = MemRange::new(range, flags)?;
        check_path(path)?;
        check_scratch(At::Preserve, r, self.scratch)?;
        let (start, end) = (r.start().as_u64(), r.end());
        let before = self.index.range(..end).next_back().map(|(_, &o)| o);
        if let Some(other) = before.filter(|o| o.end() > start) {
            return Err(Error::Overlap {
                at: At::Preserve,
                range,
                other: other.range(),
            });
        }
        let node = self.root.node_mut(path)?;
        let at = node.mem.partition_point(|m| m.start() < r.start());
        node.mem.insert(at, r);
        self.index.insert(start, r);
        Ok(())
    }

    /// Stop preserving `range`, which the node at `path` holds exactly.
    pub fn unpreserve(&mut self, path: &str, range: PhysRange) -> Result<()> {
        if self.active.is_some() {
            return Err(Error::Active);
        }
        let node = self
            .root
            .find_mut(path)
            .ok_or(Error::NotPreserved { range })?;
        let at = node
            .mem
            .iter()
            .position(|m| m.range() == range)
            .ok_or(Error::NotPreserved { range })?;
        node.mem.remove(at);
        self.index.remove(&range.start().as_u64());
        Ok(())
    }

    /// Set a client property of the node at `path` (created as needed);
    /// `mem` and the root's `compatible` belong to the tracker.
    pub fn set_property(&mut self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        if self.active.is_some() {
            return Err(Error::Active);
        }
        check_path(path)?;
        check_name(name, 0, true)?;
        if name == PROP_MEM || (name == "compatible" && path.trim_start_matches('/').is_empty()) {
            return Err(Error::ReservedProperty);
        }
        let node = self.root.node_mut(path)?;
        match node.props.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => node.props.push((name.into(), value.to_vec())),
        }
        Ok(())
    }

    /// Enter the active phase: write the FDT (every node's properties and
    /// `mem`) and the mem cache, and freeze the tree.
    pub fn serialize(&mut self) -> Result<&Serialized> {
        if self.active.is_some() {
            return Err(Error::AlreadyActive);
        }
        let mut w = vm_fdt::FdtWriter::new().map_err(writer)?;
        write_node(&mut w, &self.root, true).map_err(writer)?;
        let fdt = w.finish().map_err(writer)?;
        let mut mem_cache = Vec::with_capacity(self.index.len() * KHO_MEM_SIZE);
        for r in self.index.values() {
            mem_cache.extend_from_slice(r.to_kho_mem().as_bytes());
        }
        Ok(self.active.insert(Serialized {
            fdt,
            mem_cache,
            ranges: self.index.len(),
        }))
    }

    /// Leave the active phase: drop the serialized tree; the tracker can
    /// change again.
    pub fn leave_active(&mut self) -> Result<()> {
        self.active.take().map(drop).ok_or(Error::NotActive)
    }
}

impl Node {
    /// The node at `path` (checked), created with its parents as needed.
    fn node_mut(&mut self, path: &str) -> Result<&mut Node> {
        let mut node = self;
        for c in components(path) {
            let i = match node.children.iter().position(|n| n.name == c) {
                Some(i) => i,
                None => {
                    node.children.push(Node {
                        name: c.into(),
                        ..Node::default()
                    });
                    node.children.len() - 1
                }
            };
            node = node
                .children
                .get_mut(i)
                .ok_or(Error::InvalidName { offset: 0 })?;
        }
        Ok(node)
    }

    /// The node at `path`, if it exists.
    fn find_mut(&mut self, path: &str) -> Option<&mut Node> {
        let mut node = self;
        for c in components(path) {
            node = node.children.iter_mut().find(|n| n.name == c)?;
        }
        Some(node)
    }
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    p.split('/').filter(|c| !c.is_empty())
}

/// A path: `""`/`"/"` or components of valid node names, at most
/// [`MAX_DEPTH`] − 1 deep.
fn check_path(path: &str) -> Result<()> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let base = path.len() - p.len();
    if p.is_empty() {
        return Ok(());
    }
    let mut offset = base;
    for (depth, c) in p.split('/').enumerate() {
        if depth + 2 > MAX_DEPTH {
            return Err(Error::InvalidName { offset });
        }
        check_name(c, offset, false)?;
        offset += c.len() + 1;
    }
    Ok(())
}

/// A node name (a letter, then `[0-9a-zA-Z,._+-]`, optionally one `@unit`
/// of the same characters) or a property name (`[0-9a-zA-Z,._+?#-]`), 1 to
/// [`MAX_NAME_LEN`] bytes: what vm-fdt and the device-tree spec accept.
fn check_name(name: &str, offset: usize, property: bool) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName { offset });
    }
    let mut at_seen = false;
    for (i, b) in name.bytes().enumerate() {
        let ok = if property {
            b.is_ascii_alphanumeric() || b",._+?#-".contains(&b)
        } else if i == 0 {
            b.is_ascii_alphabetic()
        } else if b == b'@' && !at_seen {
            at_seen = true;
            true
        } else {
            b.is_ascii_alphanumeric() || b",._+-".contains(&b)
        };
        if !ok {
            return Err(Error::InvalidName { offset: offset + i });
        }
    }
    Ok(())
}

fn write_node(w: &mut vm_fdt::FdtWriter, node: &Node, root: bool) -> Result<(), vm_fdt::Error> {
    let token = w.begin_node(&node.name)?;
    if root {
        w.property_string("compatible", COMPATIBLE)?;
    }
    for (name, value) in &node.props {
        w.property(name, value)?;
    }
    if !node.mem.is_empty() {
        let mut bytes = Vec::with_capacity(node.mem.len() * KHO_MEM_SIZE);
        for r in &node.mem {
            bytes.extend_from_slice(r.to_kho_mem().as_bytes());
        }
        w.property(PROP_MEM, &bytes)?;
    }
    for child in &node.children {
        write_node(w, child, false)?;
    }
    w.end_node(token)
}

fn writer(e: vm_fdt::Error) -> Error {
    use vm_fdt::Error as E;
    let reason = match e {
        E::PropertyBeforeBeginNode => "property before beginning a node",
        E::PropertyAfterEndNode => "property after a node ended",
        E::PropertyValueTooLarge => "property value too large",
        E::TotalSizeTooLarge => "total size too large",
        E::InvalidString => "string contains NUL",
        E::OutOfOrderEndNode => "node ended out of order",
        E::UnclosedNode => "unclosed node",
        E::InvalidNodeName => "invalid node name",
        E::InvalidPropertyName => "invalid property name",
        E::NodeDepthTooLarge => "nodes nest too deep",
        _ => "writer error",
    };
    Error::FdtWriter { reason }
}
