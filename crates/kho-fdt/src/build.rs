//! Writing a root KHO FDT: [`KhoFdtBuilder`], a small model serialised with vm-fdt.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kho_abi::AbiVersion;
use kho_abi::fdt::{
    FDT_HEADER_SIZE, MAX_FDT_SIZE, PROP_BLOB_SIZE, PROP_COMPATIBLE, PROP_PRESERVED_DATA,
    PROP_PRESERVED_MEMORY_MAP, U64_PROP_LEN,
};
use kho_mem::PhysAddr;

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
/// number of times. The bytes differ from libfdt's (string order, child
/// and property order: libfdt inserts each new child and each new property
/// before the existing ones, so Linux's children carry `blob-size` first)
/// but readers accept any valid DTB layout (spec §2.1), and the tree is the
/// same.
///
/// Layout written: version 17 header, empty memory reservation map, root node
/// named `""` with `compatible` then `preserved-memory-map` before any child,
/// each child with `preserved-data` and, when a size was given, `blob-size`.
/// Every u64 is 8 bytes little-endian (KHO's native endianness, see
/// `kho_abi`). The result never exceeds one page: [`add_subtree`] refuses a
/// child that would not fit, as upstream's `kho_add_subtree` does.
///
/// [`add_subtree`]: KhoFdtBuilder::add_subtree
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KhoFdtBuilder {
    version: AbiVersion,
    memory_map: PhysAddr,
    subtrees: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    data: PhysAddr,
    size: Option<u64>,
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

    /// Number of children.
    pub fn len(&self) -> usize {
        self.subtrees.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.subtrees.is_empty()
    }

    /// Adds child `name` with `preserved-data = data` and, if `size` is
    /// `Some`, `blob-size = size` (under [`AbiVersion::V2`] that is the later
    /// "blob-size revision", which kept the `kho-v2` string).
    ///
    /// On error the builder is unchanged. Errors, checked in this order:
    /// [`Error::InvalidNodeName`] unless `name` is 1-31 characters of
    /// `[A-Za-z0-9,._+-]` starting with a letter (no unit address: a node
    /// with `@` and no `reg` makes dtc warn); [`Error::DuplicateSubtree`];
    /// [`Error::ZeroSubtreeData`]; [`Error::BlobSizeRequired`] for `None`
    /// under [`AbiVersion::V3`] and [`AbiVersion::V4`]; [`Error::TooLarge`]
    /// if the FDT would no longer fit in one page.
    pub fn add_subtree(&mut self, name: &str, data: PhysAddr, size: Option<u64>) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::InvalidNodeName {
                name: name.to_string(),
            });
        }
        if self.subtrees.iter().any(|e| e.name == name) {
            return Err(Error::DuplicateSubtree {
                name: name.to_string(),
                offset: None,
            });
        }
        if data == PhysAddr::ZERO {
            return Err(Error::ZeroSubtreeData {
                name: name.to_string(),
            });
        }
        if size.is_none() && self.version.requires_blob_size() {
            return Err(Error::BlobSizeRequired {
                name: name.to_string(),
                version: self.version,
            });
        }
        self.subtrees.push(Entry {
            name: name.to_string(),
            data,
            size,
        });
        let size = self.serialized_size();
        if size > MAX_FDT_SIZE {
            self.subtrees.pop();
            return Err(Error::TooLarge {
                size,
                max: MAX_FDT_SIZE,
            });
        }
        Ok(())
    }

    /// Removes the child named `name`; returns whether there was one.
    pub fn remove_subtree(&mut self, name: &str) -> bool {
        self.remove_first(|e| e.name == name)
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
                self.subtrees.remove(i);
                true
            }
            None => false,
        }
    }

    /// Exact size in bytes of what [`build`](KhoFdtBuilder::build) returns,
    /// computed without serialising.
    pub fn serialized_size(&self) -> usize {
        const TOKEN: usize = 4;
        const PROP_HEADER: usize = 12;
        const U64_PROP: usize = PROP_HEADER + U64_PROP_LEN;
        let node = |name_len: usize| TOKEN + align4(name_len + 1) + TOKEN;
        let compatible = PROP_HEADER + align4(self.version.compatible().len() + 1);

        let mut structure = node(0) + compatible + U64_PROP + TOKEN; // + FDT_END
        let mut strings = str_len(PROP_COMPATIBLE) + str_len(PROP_PRESERVED_MEMORY_MAP);
        for e in &self.subtrees {
            structure += node(e.name.len()) + U64_PROP;
            if e.size.is_some() {
                structure += U64_PROP;
            }
        }
        if !self.subtrees.is_empty() {
            strings += str_len(PROP_PRESERVED_DATA);
        }
        if self.subtrees.iter().any(|e| e.size.is_some()) {
            strings += str_len(PROP_BLOB_SIZE);
        }
        // Header, then (8-aligned) a reservation map holding only its
        // terminator, then structure and strings.
        const RSVMAP: usize = 16;
        FDT_HEADER_SIZE.next_multiple_of(8) + RSVMAP + structure + strings
    }

    /// Serialises the FDT.
    ///
    /// Errors: [`Error::InvalidMemoryMap`] if the memory map is zero or not
    /// page-aligned (readers would refuse it), [`Error::TooLarge`] if it does
    /// not fit in one page, [`Error::Writer`] if vm-fdt refuses an operation.
    pub fn build(&self) -> Result<Vec<u8>> {
        if self.memory_map == PhysAddr::ZERO || !self.memory_map.is_page_aligned() {
            return Err(Error::InvalidMemoryMap {
                addr: self.memory_map,
            });
        }
        let mut w = vm_fdt::FdtWriter::new()?;
        let root = w.begin_node("")?;
        w.property_string(PROP_COMPATIBLE, self.version.compatible())?;
        w.property(PROP_PRESERVED_MEMORY_MAP, &le64(self.memory_map.as_u64()))?;
        for e in &self.subtrees {
            let node = w.begin_node(&e.name)?;
            w.property(PROP_PRESERVED_DATA, &le64(e.data.as_u64()))?;
            if let Some(size) = e.size {
                w.property(PROP_BLOB_SIZE, &le64(size))?;
            }
            w.end_node(node)?;
        }
        w.end_node(root)?;
        let bytes = w.finish()?;
        if bytes.len() > MAX_FDT_SIZE {
            return Err(Error::TooLarge {
                size: bytes.len(),
                max: MAX_FDT_SIZE,
            });
        }
        debug_assert_eq!(bytes.len(), self.serialized_size());
        Ok(bytes)
    }
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
