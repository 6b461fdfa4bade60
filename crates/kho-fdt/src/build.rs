//! Writing a root KHO FDT: [`KhoFdtBuilder`], a small model serialised in one pass.

use alloc::collections::BTreeSet;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;

use kho_abi::AbiVersion;
use kho_abi::fdt::{
    FDT_HEADER_SIZE, FDT_LAST_COMP_VERSION, FDT_MAGIC, FDT_VERSION, MAX_FDT_SIZE, PROP_BLOB_SIZE,
    PROP_COMPATIBLE, PROP_PRESERVED_MEMORY_MAP, U64_PROP_LEN,
};
use kho_mem::PhysAddr;

use crate::blob::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_PROP};
use crate::error::{Error, Result};

/// Longest subtree name the builder accepts (the device-tree limit for a
/// node name, which vm-fdt enforces too).
pub const MAX_NAME_LEN: usize = 31;

/// Builds the root KHO FDT.
///
/// Upstream Linux edits its one-page FDT in place (`fdt_open_into`, edit,
/// `fdt_pack`) each time a client adds or removes a subtree. This builder
/// keeps the same information as a small model instead (version, memory map,
/// children in insertion order) and serialises all of it on every
/// [`build`](KhoFdtBuilder::build), so it can be edited and rebuilt any
/// number of times.
///
/// Costs, for `n` children: [`add_subtree`] is O(log n) (a name index
/// finds duplicates, and the serialized size is kept up to date instead of
/// recomputed); [`remove_subtree`] and [`remove_subtree_by_data`] are O(n);
/// [`serialized_size`] is O(1); [`build`] is O(n), allocates the blob once
/// at its exact size and writes it front to back. Names are stored
/// inline, so adding a child allocates nothing but the occasional growth of
/// two collections. The bytes differ from libfdt's (string order, child
/// and property order: libfdt inserts each new child and each new property
/// before the existing ones, so Linux's children carry `blob-size` first)
/// but readers accept any valid DTB layout (spec §2.1), and the tree is the
/// same.
///
/// Layout written: version 17 header, empty memory reservation map, root node
/// named `""` with `compatible` then `preserved-memory-map` before any child,
/// each child with `preserved-data` (kho-v1: `fdt`) and, when a size was
/// given, `blob-size`.
/// Every u64 is 8 bytes little-endian (KHO's native endianness, see
/// `kho_abi`). The bytes are exactly what vm-fdt (the workspace's general
/// DTB writer, used for boot DTBs) writes for the same nodes in the same
/// order, which a test checks; the KHO FDT's shape is fixed, so writing it
/// directly skips vm-fdt's per-property string lookups and bookkeeping. The result never exceeds one page: [`add_subtree`] refuses a
/// child that would not fit, as upstream's `kho_add_subtree` does.
///
/// [`add_subtree`]: KhoFdtBuilder::add_subtree
/// [`remove_subtree`]: KhoFdtBuilder::remove_subtree
/// [`remove_subtree_by_data`]: KhoFdtBuilder::remove_subtree_by_data
/// [`serialized_size`]: KhoFdtBuilder::serialized_size
/// [`build`]: KhoFdtBuilder::build
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KhoFdtBuilder {
    version: AbiVersion,
    memory_map: PhysAddr,
    /// The children in insertion order, the order they are written in.
    subtrees: Vec<Entry>,
    /// The same children's names, for the duplicate check.
    names: BTreeSet<NameKey>,
    /// Bytes the children take in the structure block.
    children_bytes: usize,
    /// How many children carry a `blob-size`.
    sized: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    name: Name,
    data: PhysAddr,
    size: Option<u64>,
}

impl Entry {
    /// Bytes this child takes in the structure block: `FDT_BEGIN_NODE`, the
    /// padded name, `preserved-data`, `blob-size` if any, `FDT_END_NODE`.
    fn structure_bytes(&self) -> usize {
        node_bytes(self.name.len()) + U64_PROP * (1 + usize::from(self.size.is_some()))
    }
}

/// A node name the builder accepted ([`valid_name`]: ASCII, 1 to
/// [`MAX_NAME_LEN`] bytes, no NUL), stored inline: the bytes zero-padded,
/// then the length.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Name([u8; MAX_NAME_LEN + 1]);

/// A [`Name`]'s 32 bytes as two words, so that the duplicate index
/// compares two integers instead of calling `memcmp`. Equal names and only
/// equal names have equal keys.
type NameKey = (u128, u128);

impl Name {
    /// `name` if [`valid_name`] accepts it.
    fn new(name: &str) -> Option<Name> {
        if !valid_name(name) {
            return None;
        }
        let mut a = [0u8; MAX_NAME_LEN + 1];
        a[..name.len()].copy_from_slice(name.as_bytes());
        a[MAX_NAME_LEN] = name.len() as u8;
        Some(Name(a))
    }

    fn len(&self) -> usize {
        usize::from(self.0[MAX_NAME_LEN])
    }

    fn as_str(&self) -> &str {
        // Only `new` builds a Name, from a valid (ASCII) name.
        core::str::from_utf8(&self.0[..self.len()]).unwrap_or_default()
    }

    fn key(&self) -> NameKey {
        let (hi, lo) = self.0.split_at(16);
        let word = |b: &[u8]| u128::from_ne_bytes(b.try_into().unwrap_or_default());
        (word(hi), word(lo))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl KhoFdtBuilder {
    /// An FDT of `version` with no children whose `preserved-memory-map` is
    /// `memory_map` (the radix-tree root page; checked by
    /// [`build`](KhoFdtBuilder::build) to be non-zero and page-aligned).
    pub fn new(version: AbiVersion, memory_map: PhysAddr) -> KhoFdtBuilder {
        KhoFdtBuilder {
            version,
            memory_map,
            subtrees: Vec::new(),
            names: BTreeSet::new(),
            children_bytes: 0,
            sized: 0,
        }
    }

    /// The version the FDT is written as.
    pub fn version(&self) -> AbiVersion {
        self.version
    }

    /// The `preserved-memory-map` address.
    pub fn memory_map(&self) -> PhysAddr {
        self.memory_map
    }

    /// Replaces the `preserved-memory-map` address (kho-v1 learns it only
    /// at finalize, when the chunk list is written).
    pub fn set_memory_map(&mut self, memory_map: PhysAddr) {
        self.memory_map = memory_map;
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.subtrees.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.subtrees.is_empty()
    }

    /// Adds child `name` with `preserved-data = data` (kho-v1: `fdt =
    /// data`, the address of the client's FDT) and, if `size` is
    /// `Some`, `blob-size = size` (under [`AbiVersion::V2`] that is the later
    /// "blob-size revision", which kept the `kho-v2` string).
    ///
    /// On error the builder is unchanged. Errors, checked in this order:
    /// [`Error::InvalidNodeName`] unless `name` is 1-31 characters of
    /// `[A-Za-z0-9,._+-]` starting with a letter (no unit address: a node
    /// with `@` and no `reg` makes dtc warn); [`Error::DuplicateSubtree`];
    /// [`Error::ZeroSubtreeData`]; [`Error::BlobSizeNotInVersion`] for
    /// `Some` under [`AbiVersion::V1`]; [`Error::BlobSizeRequired`] for `None`
    /// under [`AbiVersion::V3`] and [`AbiVersion::V4`]; [`Error::TooLarge`]
    /// if the FDT would no longer fit in one page.
    pub fn add_subtree(&mut self, name: &str, data: PhysAddr, size: Option<u64>) -> Result<()> {
        let Some(name) = Name::new(name) else {
            return Err(Error::InvalidNodeName {
                name: name.to_string(),
            });
        };
        // One walk of the index both checks and (tentatively) inserts.
        if !self.names.insert(name.key()) {
            return Err(Error::DuplicateSubtree {
                name: name.as_str().to_string(),
                offset: None,
            });
        }
        let entry = Entry { name, data, size };
        if let Err(e) = self.check_new(&entry) {
            self.names.remove(&name.key());
            return Err(e);
        }
        self.children_bytes += entry.structure_bytes();
        self.sized += usize::from(size.is_some());
        self.subtrees.push(entry);
        Ok(())
    }

    /// The checks of [`add_subtree`](KhoFdtBuilder::add_subtree) after the
    /// name's.
    fn check_new(&self, entry: &Entry) -> Result<()> {
        let (name, data, size) = (entry.name.as_str(), entry.data, entry.size);
        if data == PhysAddr::ZERO {
            return Err(Error::ZeroSubtreeData {
                name: name.to_string(),
            });
        }
        if size.is_some() && !self.version.allows_blob_size() {
            return Err(Error::BlobSizeNotInVersion {
                name: name.to_string(),
                version: self.version,
            });
        }
        if size.is_none() && self.version.requires_blob_size() {
            return Err(Error::BlobSizeRequired {
                name: name.to_string(),
                version: self.version,
            });
        }
        let total = self.size_with(
            self.subtrees.len() + 1,
            self.children_bytes + entry.structure_bytes(),
            self.sized + usize::from(size.is_some()),
        );
        if total > MAX_FDT_SIZE {
            return Err(Error::TooLarge {
                size: total,
                max: MAX_FDT_SIZE,
            });
        }
        Ok(())
    }

    /// Removes the child named `name`; returns whether there was one.
    pub fn remove_subtree(&mut self, name: &str) -> bool {
        match Name::new(name) {
            // A name the index lacks needs no scan.
            Some(name) if self.names.contains(&name.key()) => self.remove_first(|e| e.name == name),
            _ => false,
        }
    }

    /// Removes the first child whose `preserved-data` is `data` (upstream's
    /// `kho_remove_subtree` identifies the blob by its address); returns
    /// whether there was one.
    pub fn remove_subtree_by_data(&mut self, data: PhysAddr) -> bool {
        self.remove_first(|e| e.data == data)
    }

    fn remove_first(&mut self, pred: impl Fn(&Entry) -> bool) -> bool {
        match self.subtrees.iter().position(pred) {
            Some(i) => {
                let e = self.subtrees.remove(i);
                self.names.remove(&e.name.key());
                self.children_bytes -= e.structure_bytes();
                self.sized -= usize::from(e.size.is_some());
                true
            }
            None => false,
        }
    }

    /// Exact size in bytes of what [`build`](KhoFdtBuilder::build) returns,
    /// computed without serialising (in constant time).
    pub fn serialized_size(&self) -> usize {
        self.size_with(self.subtrees.len(), self.children_bytes, self.sized)
    }

    /// The serialized size of this FDT's root with `children` children
    /// taking `children_bytes` of structure, `sized` of them with a
    /// `blob-size`.
    fn size_with(&self, children: usize, children_bytes: usize, sized: usize) -> usize {
        let compatible = PROP_HEADER + align4(self.version.compatible().len() + 1);
        let structure = node_bytes(0) + compatible + U64_PROP + children_bytes + TOKEN; // + FDT_END
        let strings = self.strings_with(children, sized);
        // Header, then (8-aligned) a reservation map holding only its
        // terminator, then structure and strings.
        FDT_HEADER_SIZE.next_multiple_of(8) + RSVMAP + structure + strings
    }

    /// Serialises the FDT.
    ///
    /// Errors: [`Error::InvalidMemoryMap`] if the memory map is not
    /// page-aligned or, after kho-v1, zero (readers would refuse it),
    /// [`Error::TooLarge`] if it does not fit in one page.
    pub fn build(&self) -> Result<Vec<u8>> {
        let zero = self.memory_map == PhysAddr::ZERO;
        if (zero && !self.version.allows_empty_memory_map()) || !self.memory_map.is_page_aligned() {
            return Err(Error::InvalidMemoryMap {
                addr: self.memory_map,
            });
        }
        let total = self.serialized_size();
        if total > MAX_FDT_SIZE {
            return Err(Error::TooLarge {
                size: total,
                max: MAX_FDT_SIZE,
            });
        }
        // Offsets and sizes below are bounded by MAX_FDT_SIZE (one page):
        // the u32 conversions and sums cannot overflow.
        let strings = self.strings_with(self.subtrees.len(), self.sized);
        let off_struct = FDT_HEADER_SIZE.next_multiple_of(8) + RSVMAP;
        let size_struct = total - off_struct - strings;
        let mut b = Vec::with_capacity(total);
        for field in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            (off_struct + size_struct) as u32,
            FDT_HEADER_SIZE.next_multiple_of(8) as u32,
            FDT_VERSION,
            FDT_LAST_COMP_VERSION,
            0, // boot_cpuid_phys
            strings as u32,
            size_struct as u32,
        ] {
            b.extend_from_slice(&field.to_be_bytes());
        }
        b.resize(off_struct, 0); // header padding, then the empty rsvmap
        begin_node(&mut b, "");
        let compatible = self.version.compatible();
        prop_header(&mut b, compatible.len() + 1, 0);
        b.extend_from_slice(compatible.as_bytes());
        pad_nul(&mut b);
        u64_prop(&mut b, OFF_PRESERVED_MEMORY_MAP, self.memory_map.as_u64());
        let data_prop = self.version.subtree_data_property();
        let off_blob_size = OFF_SUBTREE_DATA + data_prop.len() as u32 + 1;
        for e in &self.subtrees {
            begin_node(&mut b, e.name.as_str());
            u64_prop(&mut b, OFF_SUBTREE_DATA, e.data.as_u64());
            if let Some(size) = e.size {
                u64_prop(&mut b, off_blob_size, size);
            }
            b.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        }
        b.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        b.extend_from_slice(&FDT_END.to_be_bytes());
        // Strings in first-use order, NUL-terminated.
        let used = [
            (PROP_COMPATIBLE, true),
            (PROP_PRESERVED_MEMORY_MAP, true),
            (data_prop, !self.subtrees.is_empty()),
            (PROP_BLOB_SIZE, self.sized > 0),
        ];
        for (name, _) in used.iter().filter(|(_, used)| *used) {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
        }
        debug_assert_eq!(b.len(), total);
        Ok(b)
    }

    /// Bytes of the strings block with `children` children, `sized` of them
    /// with a `blob-size`: the property names in use.
    fn strings_with(&self, children: usize, sized: usize) -> usize {
        let mut strings = str_len(PROP_COMPATIBLE) + str_len(PROP_PRESERVED_MEMORY_MAP);
        if children > 0 {
            strings += str_len(self.version.subtree_data_property());
        }
        if sized > 0 {
            strings += str_len(PROP_BLOB_SIZE);
        }
        strings
    }
}

/// `FDT_BEGIN_NODE` and the node's NUL-terminated name, padded to 4.
fn begin_node(b: &mut Vec<u8>, name: &str) {
    b.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    pad_nul(b);
}

/// A NUL, then zeros up to the next multiple of 4.
fn pad_nul(b: &mut Vec<u8>) {
    b.resize(align4(b.len() + 1), 0);
}

/// `FDT_PROP`, the value length, the name's offset in the strings block.
fn prop_header(b: &mut Vec<u8>, len: usize, name_off: u32) {
    b.extend_from_slice(&FDT_PROP.to_be_bytes());
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(&name_off.to_be_bytes());
}

/// A property holding one KHO native u64.
fn u64_prop(b: &mut Vec<u8>, name_off: u32, value: u64) {
    prop_header(b, U64_PROP_LEN, name_off);
    b.extend_from_slice(&le64(value));
}

/// The strings block's offsets: names in first-use order (every FDT has
/// `compatible` and `preserved-memory-map`; the child's data property,
/// `preserved-data` or kho-v1's `fdt`, comes with the first child, and
/// `blob-size`, after it, with the first sized one).
const OFF_PRESERVED_MEMORY_MAP: u32 = PROP_COMPATIBLE.len() as u32 + 1;
const OFF_SUBTREE_DATA: u32 = OFF_PRESERVED_MEMORY_MAP + PROP_PRESERVED_MEMORY_MAP.len() as u32 + 1;
/// The memory reservation map: its terminator only.
const RSVMAP: usize = 16;

/// An FDT token (`FDT_BEGIN_NODE`, `FDT_END_NODE`, `FDT_END`, ...).
const TOKEN: usize = 4;
/// `FDT_PROP`, value length, name offset.
const PROP_HEADER: usize = 12;
/// A property holding one KHO u64.
const U64_PROP: usize = PROP_HEADER + U64_PROP_LEN;

/// Structure bytes of a node without properties or children: its
/// `FDT_BEGIN_NODE`, its NUL-terminated name padded to 4, `FDT_END_NODE`.
fn node_bytes(name_len: usize) -> usize {
    TOKEN + align4(name_len + 1) + TOKEN
}

/// A KHO native u64 value: 8 bytes little-endian.
fn le64(v: u64) -> [u8; U64_PROP_LEN] {
    kho_abi::Le64::new(v).to_bytes()
}

fn str_len(s: &str) -> usize {
    s.len() + 1
}

fn align4(x: usize) -> usize {
    x.next_multiple_of(4)
}

/// A device-tree node name without unit address, as the builder accepts.
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic())
        && b.len() <= MAX_NAME_LEN
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b',' | b'.' | b'_' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "memblock",
            "kexec-metadata",
            "LUO",
            "kho_test",
            "a",
            "a.b,c+d",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-x",
            "a@1",
            "a/b",
            "a b",
            "ä",
            "abcdefghijklmnopqrstuvwxyz012345",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("abcdefghijklmnopqrstuvwxyz01234"));
    }

    /// The size and the name index kept up to date by every edit agree
    /// with a from-scratch recount and with the serialized blob, through
    /// adds, refusals and both kinds of removal.
    #[test]
    fn incremental_state_matches_a_recount() {
        fn recount(b: &KhoFdtBuilder) -> usize {
            let bytes: usize = b.subtrees.iter().map(Entry::structure_bytes).sum();
            let sized = b.subtrees.iter().filter(|e| e.size.is_some()).count();
            b.size_with(b.subtrees.len(), bytes, sized)
        }
        fn check(b: &KhoFdtBuilder) {
            assert_eq!(b.serialized_size(), recount(b));
            assert_eq!(b.build().unwrap().len(), b.serialized_size());
            let mut names: Vec<NameKey> = b.subtrees.iter().map(|e| e.name.key()).collect();
            names.sort();
            assert!(names.iter().eq(b.names.iter()), "index out of step");
        }
        let mut b = KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x4123_4000));
        check(&b);
        // Names of every padded length (1-31), half of them with a size.
        let name = |i: usize| {
            let mut s = alloc::format!("n{i}");
            while s.len() < 1 + i % MAX_NAME_LEN {
                s.push('x');
            }
            s
        };
        let mut i = 0;
        loop {
            let size = (i % 2 == 0).then_some(i as u64 + 1);
            let data = PhysAddr::new(0x5000_0000 + i as u64 * 0x1000);
            let before = b.clone();
            match b.add_subtree(&name(i), data, size) {
                Ok(()) => check(&b),
                Err(Error::TooLarge { size, max }) => {
                    assert_eq!(b, before);
                    assert!(size > max && b.serialized_size() <= max);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
            assert!(matches!(
                b.add_subtree(&name(i), data, size),
                Err(Error::DuplicateSubtree { .. })
            ));
            i += 1;
        }
        assert!(!b.remove_subtree("absent") && !b.remove_subtree("a@b"));
        for j in (0..i).step_by(3) {
            assert!(b.remove_subtree(&name(j)));
            check(&b);
            assert!(!b.remove_subtree(&name(j)));
        }
        for j in (1..i).step_by(3) {
            assert!(b.remove_subtree_by_data(PhysAddr::new(0x5000_0000 + j as u64 * 0x1000)));
            check(&b);
        }
        // A removed name can be added again, at the end.
        b.add_subtree(&name(0), PhysAddr::new(0x6000_0000), None)
            .unwrap();
        check(&b);
        assert_eq!(b.subtrees.last().map(|e| e.name.as_str()), Some("n0"));
        while let Some(e) = b.subtrees.first().copied() {
            assert!(b.remove_subtree(e.name.as_str()));
            check(&b);
        }
        assert_eq!((b.children_bytes, b.sized), (0, 0));
    }

    /// What vm-fdt writes for the same nodes in the same order: the
    /// builder's bytes must be exactly these.
    fn with_vm_fdt(b: &KhoFdtBuilder) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string(PROP_COMPATIBLE, b.version.compatible())
            .unwrap();
        w.property(PROP_PRESERVED_MEMORY_MAP, &le64(b.memory_map.as_u64()))
            .unwrap();
        for e in &b.subtrees {
            let node = w.begin_node(e.name.as_str()).unwrap();
            w.property(b.version.subtree_data_property(), &le64(e.data.as_u64()))
                .unwrap();
            if let Some(size) = e.size {
                w.property(PROP_BLOB_SIZE, &le64(size)).unwrap();
            }
            w.end_node(node).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// Every version, 0 to a page's worth of children, names of every
    /// padded length, sized and unsized children interleaved (the first
    /// sized one at varying positions): byte-identical to vm-fdt.
    #[test]
    fn bytes_match_vm_fdt() {
        for version in AbiVersion::ALL {
            for first_sized in [0, 1, 5] {
                let mut b = KhoFdtBuilder::new(version, PhysAddr::new(0x4123_4000));
                assert_eq!(b.build().unwrap(), with_vm_fdt(&b));
                for i in 0.. {
                    let mut name = alloc::format!("c{i}");
                    while name.len() < 1 + (i * 7) % MAX_NAME_LEN {
                        name.push('_');
                    }
                    let sized = i >= first_sized && (i % 3 != 1 || version.requires_blob_size());
                    let size = ((sized || version.requires_blob_size())
                        && version.allows_blob_size())
                    .then_some(i as u64 * 77);
                    let data = PhysAddr::new(0x5000_0000 + i as u64 * 0x1000);
                    match b.add_subtree(&name, data, size) {
                        Ok(()) => {}
                        Err(Error::TooLarge { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                    assert_eq!(b.build().unwrap(), with_vm_fdt(&b), "{version:?} {i}");
                }
                // The page filled up.
                assert!(b.serialized_size() > MAX_FDT_SIZE - 128 && b.len() > 32);
            }
        }
    }

    #[test]
    fn empty_layout_is_byte_exact() {
        let b = KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x4123_4000))
            .build()
            .unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            // header
            0xd0, 0x0d, 0xfe, 0xed, // 0000: magic
            0x00, 0x00, 0x00, 0x90, // 0004: totalsize (144)
            0x00, 0x00, 0x00, 0x38, // 0008: off_dt_struct (56)
            0x00, 0x00, 0x00, 0x70, // 000c: off_dt_strings (112)
            0x00, 0x00, 0x00, 0x28, // 0010: off_mem_rsvmap (40)
            0x00, 0x00, 0x00, 0x11, // 0014: version (17)
            0x00, 0x00, 0x00, 0x10, // 0018: last_comp_version (16)
            0x00, 0x00, 0x00, 0x00, // 001c: boot_cpuid_phys
            0x00, 0x00, 0x00, 0x20, // 0020: size_dt_strings (32)
            0x00, 0x00, 0x00, 0x38, // 0024: size_dt_struct (56)
            // memory reservation map: terminator only
            0, 0, 0, 0, 0, 0, 0, 0, // 0028: address
            0, 0, 0, 0, 0, 0, 0, 0, // 0030: size
            // structure block
            0x00, 0x00, 0x00, 0x01, // 0038: FDT_BEGIN_NODE
            0x00, 0x00, 0x00, 0x00, // 003c: "" + padding
            0x00, 0x00, 0x00, 0x03, // 0040: FDT_PROP
            0x00, 0x00, 0x00, 0x07, // 0044: len 7
            0x00, 0x00, 0x00, 0x00, // 0048: nameoff 0 ("compatible")
            b'k', b'h', b'o', b'-', // 004c: "kho-v2\0" + padding
            b'v', b'2', 0x00, 0x00,
            0x00, 0x00, 0x00, 0x03, // 0054: FDT_PROP
            0x00, 0x00, 0x00, 0x08, // 0058: len 8
            0x00, 0x00, 0x00, 0x0b, // 005c: nameoff 11 ("preserved-memory-map")
            0x00, 0x40, 0x23, 0x41, // 0060: 0x41234000 little-endian
            0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x02, // 0068: FDT_END_NODE
            0x00, 0x00, 0x00, 0x09, // 006c: FDT_END
            // strings block
            b'c', b'o', b'm', b'p', b'a', b't', b'i', b'b', b'l', b'e', 0, // 0070
            b'p', b'r', b'e', b's', b'e', b'r', b'v', b'e', b'd', b'-',    // 007b
            b'm', b'e', b'm', b'o', b'r', b'y', b'-', b'm', b'a', b'p', 0,
        ];
        assert_eq!(b, expected);
    }
}
