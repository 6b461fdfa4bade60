//! Reading a root KHO FDT: [`KhoFdt::parse`] and the typed view it returns.

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ops::ControlFlow;

use kho_abi::AbiVersion;
use kho_abi::fdt::{
    MAX_FDT_SIZE, PROP_BLOB_SIZE, PROP_COMPATIBLE, PROP_PRESERVED_MEMORY_MAP, U64_PROP_LEN,
};
use kho_mem::PhysAddr;

use crate::blob::{Event, FdtBlob, FdtHeader, Nops, ValidFdt};
use crate::error::{Error, Result};

/// A validated root KHO FDT.
///
/// Borrowed from the blob it was parsed from; everything the KHO ABI defines
/// has been checked (see [`KhoFdt::parse`]). Properties the ABI does not
/// define, and nodes below the root's children, are accepted and ignored
/// (they still appear in [`KhoFdt::render`]).
#[derive(Clone, Debug)]
pub struct KhoFdt<'a> {
    /// The blob, its structure walked to the end without error.
    blob: FdtBlob<'a>,
    version: AbiVersion,
    memory_map: PhysAddr,
    subtrees: Vec<Subtree<'a>>,
    /// Children [`KhoFdt::parse_lenient`] left out, with why (shared so
    /// that the view stays `Clone`).
    rejected: Vec<(&'a str, Rc<Error>)>,
}

/// Two views are equal when they were parsed from the same bytes (everything
/// else is derived from them).
impl PartialEq for KhoFdt<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.blob.as_bytes() == other.blob.as_bytes()
    }
}

impl Eq for KhoFdt<'_> {}

/// One child of the root: a client blob handed over by physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subtree<'a> {
    name: &'a str,
    data: PhysAddr,
    size: Option<u64>,
    offset: usize,
}

impl<'a> Subtree<'a> {
    /// The node name the client registered the blob under.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// `preserved-data` (kho-v1: `fdt`): physical address of the blob
    /// (never zero).
    pub fn data(&self) -> PhysAddr {
        self.data
    }

    /// `blob-size`: the blob's length, if the node carries one (always
    /// `Some` under [`AbiVersion::V3`] and [`AbiVersion::V4`], always
    /// `None` under [`AbiVersion::V1`], whose blob is an FDT sized by its
    /// own header's `totalsize`).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Byte offset of the node (its `FDT_BEGIN_NODE` token) in the blob.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> KhoFdt<'a> {
    /// Validates `blob` as a root KHO FDT. Never panics, whatever the bytes.
    ///
    /// `blob` may be longer than the FDT (for example the whole page it was
    /// handed over in); only the header's `totalsize` bytes are used. The
    /// checks run in the order upstream's `kho_populate` performs them, plus
    /// the ones it leaves to `kho_retrieve_subtree`, and the first failure is
    /// returned:
    ///
    /// 1. header: magic, version 17 (`last_comp_version` <= 17), `totalsize`
    ///    within the slice and within one page
    ///    ([`kho_abi::fdt::MAX_FDT_SIZE`]), every block inside `totalsize`
    ///    and aligned;
    /// 2. structure block well-formed (a bounds-checked token walk, nesting
    ///    at most [`crate::MAX_DEPTH`] deep, `FDT_END` present);
    /// 3. root `compatible` names `"kho-v1"`, `"kho-v2"`, `"kho-v3"` or
    ///    `"kho-v4"` (a string list may, as libfdt's
    ///    `fdt_node_check_compatible` reads it: the first known entry wins);
    /// 4. root `preserved-memory-map`: present, 8 bytes, page-aligned, and
    ///    non-zero except under kho-v1 (where 0 means nothing is preserved,
    ///    as Linux 6.16's `kho_mem_deserialize` reads it);
    /// 5. every child of the root, in blob order: unique name,
    ///    `preserved-data` (kho-v1: `fdt`) present, 8 bytes, non-zero;
    ///    `blob-size` 8 bytes when present, and present under kho-v3 and
    ///    kho-v4. A kho-v1 child's `blob-size`, a property kho-v1 does not
    ///    define, is ignored like any other (its size is the sub-FDT's
    ///    own).
    ///
    /// Any valid DTB layout is accepted (spec §2.1): block order, string
    /// sharing, child order and property order are not checked (Linux 7.2
    /// writes each child's `blob-size` before its `preserved-data`).
    ///
    /// Cost: one walk of the structure block ([`crate::FdtBlob::walk`]),
    /// which checks it and collects what checks 3–5 read, then O(n log n)
    /// time for n children (duplicate names are found by sorting, not by
    /// comparing every pair; a second walk runs only when some child is
    /// refused, to list the refusals in blob order). The only memory allocated is
    /// the view's list of children, 48 bytes each: a one-page FDT holds
    /// fewer than 128 children with a `preserved-data` (32 bytes of
    /// structure each), so at most 6 KiB. [`KhoFdt::parse_lenient`] also
    /// keeps an entry and an error per child it leaves out (at most 341, the
    /// 12-byte children a page can hold).
    pub fn parse(blob: &'a [u8]) -> Result<KhoFdt<'a>> {
        KhoFdt::parse_with(blob, false)
    }

    /// [`KhoFdt::parse`] as Linux reads a handover: checks 1–4 (the header,
    /// the structure, the root) still refuse the whole FDT, but a child
    /// that fails check 5 only loses itself, as upstream's
    /// `kho_retrieve_subtree` fails for that client alone. The children
    /// left out are listed by [`KhoFdt::rejected`] with their named error;
    /// of two children with one name the first is kept (libfdt's
    /// `fdt_subnode_offset` finds the first).
    pub fn parse_lenient(blob: &'a [u8]) -> Result<KhoFdt<'a>> {
        KhoFdt::parse_with(blob, true)
    }

    fn parse_with(blob: &'a [u8], lenient: bool) -> Result<KhoFdt<'a>> {
        let fdt = FdtBlob::new(blob, MAX_FDT_SIZE)?;

        // Checks 2 to 5 from one walk of the structure block: it validates
        // every token (check 2) while it collects the root's properties and
        // each child's (checks 3 and 4 come after it, so that a structure
        // error is reported first whatever precedes it).
        //
        // A child is accepted if it passes check 5 and no child of its
        // name was accepted before it, that is, if it is the first child of
        // its name to pass. Found in O(n log n) without any memory but
        // `subtrees`: collect the children that pass, sort them by name
        // (then offset) and keep the first of each name.
        let mut subtrees: Vec<Subtree<'a>> = Vec::new();
        let mut children = 0usize;
        let (root, _) = scan(&fdt, |child, version| {
            children += 1;
            if let Ok(subtree) = check_child(child, version) {
                subtrees.push(subtree);
            }
            ControlFlow::<()>::Continue(())
        })?;

        let compatible = root.compatible.ok_or(Error::MissingCompatible {
            offset: root.offset,
        })?;
        let version = version_of(compatible.value, compatible.offset)?;

        let map = root.memory_map.ok_or(Error::MissingMemoryMap {
            offset: root.offset,
        })?;
        let map_addr = le64(map.value).ok_or(Error::BadMemoryMapLength {
            len: map.value.len(),
            offset: map.offset,
        })?;
        let memory_map = PhysAddr::new(map_addr);
        if map_addr == 0 && !version.allows_empty_memory_map() {
            return Err(Error::ZeroMemoryMap { offset: map.offset });
        }
        if !memory_map.is_page_aligned() {
            return Err(Error::MisalignedMemoryMap {
                addr: memory_map,
                offset: map.offset,
            });
        }

        subtrees.sort_unstable_by(|a, b| (a.name, a.offset).cmp(&(b.name, b.offset)));
        subtrees.dedup_by(|later, first| later.name == first.name);

        // Only if some child was refused: which, and why, in blob order (a
        // duplicate is reported as one even if it fails check 5 too). A
        // second walk, of a blob now known to be valid, on this cold path
        // only.
        let mut rejected: Vec<(&'a str, Rc<Error>)> = Vec::new();
        if subtrees.len() != children {
            let (_, refused) = scan(&fdt, |child, version| {
                let first = subtrees
                    .binary_search_by(|s| s.name.cmp(child.name))
                    .ok()
                    .and_then(|i| subtrees.get(i))
                    .map(|s| s.offset);
                let e = match first {
                    Some(first) if first == child.offset => return ControlFlow::Continue(()),
                    Some(first) if first < child.offset => Error::DuplicateSubtree {
                        name: child.name.to_string(),
                        offset: Some(child.offset),
                    },
                    // The first of its name to pass check 5 comes later,
                    // or none does: this one fails it.
                    _ => match check_child(child, version) {
                        Err(e) => e,
                        Ok(_) => return ControlFlow::Continue(()),
                    },
                };
                if !lenient {
                    return ControlFlow::Break(e);
                }
                rejected.push((child.name, Rc::new(e)));
                ControlFlow::Continue(())
            })?;
            if let ControlFlow::Break(e) = refused {
                return Err(e);
            }
        }
        subtrees.sort_unstable_by_key(|s| s.offset);

        Ok(KhoFdt {
            blob: fdt,
            version,
            memory_map,
            subtrees,
            rejected,
        })
    }

    /// The ABI version named by the root `compatible`.
    pub fn version(&self) -> AbiVersion {
        self.version
    }

    /// `preserved-memory-map`: physical address of the radix-tree root page
    /// (non-zero, page-aligned), or under kho-v1 of the first chunk of the
    /// serialized bitmaps (page-aligned, 0 when nothing is preserved).
    pub fn memory_map(&self) -> PhysAddr {
        self.memory_map
    }

    /// The header's `totalsize`: bytes the FDT occupies (at most one page).
    pub fn total_size(&self) -> usize {
        self.blob.header().totalsize as usize
    }

    /// The decoded FDT header.
    pub fn header(&self) -> &FdtHeader {
        self.blob.header()
    }

    /// The FDT's bytes (the parsed slice cut to `totalsize`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob.as_bytes()
    }

    /// The root's children in blob order.
    pub fn subtrees(
        &self,
    ) -> impl ExactSizeIterator<Item = Subtree<'a>> + DoubleEndedIterator + '_ {
        self.subtrees.iter().copied()
    }

    /// The child named exactly `name` (no unit-address matching), as
    /// upstream's `kho_retrieve_subtree` looks it up.
    pub fn subtree(&self, name: &str) -> Option<Subtree<'a>> {
        self.subtrees.iter().find(|s| s.name == name).copied()
    }

    /// Children [`KhoFdt::parse_lenient`] left out, each with the error
    /// [`KhoFdt::parse`] would have refused the whole FDT with (empty after
    /// a strict parse).
    pub fn rejected(&self) -> impl ExactSizeIterator<Item = (&'a str, &Error)> + '_ {
        self.rejected.iter().map(|(name, e)| (*name, &**e))
    }

    /// The canonical text rendering (see [`crate::render`]).
    pub fn render(&self) -> String {
        // The `fdt` lookups the renderer uses are set up here, not while
        // parsing; they cannot fail on a blob parse accepted.
        match ValidFdt::from_walked(self.blob) {
            Ok(valid) => crate::render::render_valid(&valid, Some(self.version)),
            Err(_) => String::new(),
        }
    }
}

/// A property value and its byte offset in the blob.
#[derive(Clone, Copy)]
struct Prop<'a> {
    value: &'a [u8],
    offset: usize,
}

/// What [`scan`] collects of the root node: the first of each property
/// (as libfdt's `fdt_getprop` finds it).
struct Root<'a> {
    /// Offset of its `FDT_BEGIN_NODE` token.
    offset: usize,
    compatible: Option<Prop<'a>>,
    memory_map: Option<Prop<'a>>,
}

/// What [`scan`] collects of one child of the root: what check 5 reads.
struct Child<'a> {
    name: &'a str,
    /// Offset of its `FDT_BEGIN_NODE` token.
    offset: usize,
    /// The first `preserved-data` (kho-v1: `fdt`).
    data: Option<Prop<'a>>,
    /// The first `blob-size`, unless the version defines none (kho-v1,
    /// where it is ignored like any property the ABI does not define).
    blob_size: Option<Prop<'a>>,
}

/// One validating walk of a root KHO FDT ([`FdtBlob::walk`], no `FDT_NOP`):
/// collects the root's `compatible` and `preserved-memory-map`, and calls
/// `done` as each child of the root closes, with what check 5 reads of it
/// and the version the root's `compatible` names. Properties come before
/// children (the walk checks it), so the version is known at the first
/// child; if the `compatible` names none, `done` is not called (the parse
/// fails at check 3). Deeper nodes are walked and ignored.
fn scan<'a, B>(
    fdt: &FdtBlob<'a>,
    mut done: impl FnMut(&Child<'a>, AbiVersion) -> ControlFlow<B>,
) -> Result<(Root<'a>, ControlFlow<B>)> {
    let mut root = Root {
        offset: fdt.header().off_dt_struct as usize,
        compatible: None,
        memory_map: None,
    };
    // Decided at the first child: `None` before it.
    let mut version: Option<Option<AbiVersion>> = None;
    let mut child: Option<Child<'a>> = None;
    let flow = fdt.walk(Nops::Refuse, |e| {
        match e {
            Event::Begin {
                offset, depth: 1, ..
            } => root.offset = offset,
            Event::Prop {
                offset,
                name,
                value,
                depth: 1,
            } => {
                let p = Some(Prop { value, offset });
                if name == PROP_COMPATIBLE.as_bytes() {
                    root.compatible = root.compatible.or(p);
                } else if name == PROP_PRESERVED_MEMORY_MAP.as_bytes() {
                    root.memory_map = root.memory_map.or(p);
                }
            }
            Event::Begin {
                offset,
                name,
                depth: 2,
            } => {
                let known = *version
                    .get_or_insert_with(|| root.compatible.and_then(|c| known_version(c.value)));
                if known.is_some() {
                    child = Some(Child {
                        // Printable ASCII (the walk checked it).
                        name: core::str::from_utf8(name).unwrap_or_default(),
                        offset,
                        data: None,
                        blob_size: None,
                    });
                }
            }
            Event::Prop {
                offset,
                name,
                value,
                depth: 2,
            } => {
                if let (Some(c), Some(Some(v))) = (child.as_mut(), version) {
                    let p = Some(Prop { value, offset });
                    if name == v.subtree_data_property().as_bytes() {
                        c.data = c.data.or(p);
                    } else if name == PROP_BLOB_SIZE.as_bytes() && v.allows_blob_size() {
                        c.blob_size = c.blob_size.or(p);
                    }
                }
            }
            Event::End { depth: 2, .. } => {
                if let (Some(c), Some(Some(v))) = (child.take(), version) {
                    return done(&c, v);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    Ok((root, flow))
}

/// Check 5 of [`KhoFdt::parse`] for one child of the root, but for the
/// name's uniqueness (which needs the other children). kho-v1 defines no
/// `blob-size` ([`scan`] leaves it out there).
fn check_child<'a>(child: &Child<'a>, version: AbiVersion) -> Result<Subtree<'a>> {
    let name = child.name;
    let node_offset = child.offset;
    let v1 = version == AbiVersion::V1;
    let node = || name.to_string();
    let data = child.data.ok_or_else(|| match v1 {
        true => Error::MissingV1Fdt {
            node: node(),
            offset: node_offset,
        },
        false => Error::MissingPreservedData {
            node: node(),
            offset: node_offset,
        },
    })?;
    let data_offset = data.offset;
    let len = data.value.len();
    let data_addr = le64(data.value).ok_or_else(|| match v1 {
        true => Error::BadV1FdtLength {
            node: node(),
            len,
            offset: data_offset,
        },
        false => Error::BadPreservedDataLength {
            node: node(),
            len,
            offset: data_offset,
        },
    })?;
    if data_addr == 0 {
        return Err(match v1 {
            true => Error::ZeroV1Fdt {
                node: node(),
                offset: data_offset,
            },
            false => Error::ZeroPreservedData {
                node: node(),
                offset: data_offset,
            },
        });
    }
    let size = match child.blob_size {
        Some(p) => Some(le64(p.value).ok_or_else(|| Error::BadBlobSizeLength {
            node: name.to_string(),
            len: p.value.len(),
            offset: p.offset,
        })?),
        None if version.requires_blob_size() => {
            return Err(Error::MissingBlobSize {
                node: name.to_string(),
                version,
                offset: node_offset,
            });
        }
        None => None,
    };
    Ok(Subtree {
        name,
        data: PhysAddr::new(data_addr),
        size,
        offset: node_offset,
    })
}

/// A KHO native u64: exactly 8 bytes, little-endian (see `kho_abi`).
pub(crate) fn le64(value: &[u8]) -> Option<u64> {
    let bytes: [u8; U64_PROP_LEN] = value.try_into().ok()?;
    Some(kho_abi::Le64::from_bytes(bytes).get())
}

/// The version the root `compatible` value names ([`known_version`]), or
/// the named error with the value quoted.
fn version_of(value: &[u8], offset: usize) -> Result<AbiVersion> {
    if let Some(v) = known_version(value) {
        return Ok(v);
    }
    Err(Error::UnknownCompatible {
        compatible: escape(value.strip_suffix(&[0]).unwrap_or(value)),
        offset,
    })
}

/// The version a root `compatible` value names, if any (allocation-free,
/// for [`scan`]).
///
/// A string list, as libfdt's `fdt_node_check_compatible` (Linux's check)
/// reads it: any entry may match. The first entry naming a known version
/// wins (a list goes from most to least specific).
fn known_version(value: &[u8]) -> Option<AbiVersion> {
    let named = |v: &[u8]| {
        AbiVersion::ALL
            .into_iter()
            .find(|k| k.compatible().as_bytes() == v)
    };
    value
        .strip_suffix(&[0])
        .into_iter()
        .flat_map(|list| list.split(|&b| b == 0))
        .find_map(named)
}

/// Printable ASCII as is; `"` and `\` backslash-escaped; NUL as `\0`; other
/// bytes as `\xNN`. One line, whatever the input.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(char::from(b));
            }
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_abi::fdt::PROP_PRESERVED_DATA;

    /// What each child of [`duplicates_match_a_pairwise_model`]'s blobs
    /// carries.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Good,
        Zero,
        Missing,
    }

    /// The duplicate check (sorting by hash and name) decides as the
    /// pairwise definition does: a child is a duplicate exactly when a child
    /// of the same name was accepted before it, a duplicate is reported as
    /// such even if it is malformed too, and a rejected child does not make
    /// a later one of its name a duplicate. Strict and lenient parses, on
    /// blobs with few names (many repeats) from a fixed pseudo-random
    /// sequence.
    #[test]
    fn duplicates_match_a_pairwise_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..400 {
            let count = next(24) as usize;
            let children: Vec<(String, Kind)> = (0..count)
                .map(|_| {
                    let name = alloc::format!("n{}", next(5));
                    let kind =
                        [Kind::Good, Kind::Good, Kind::Zero, Kind::Missing][next(4) as usize];
                    (name, kind)
                })
                .collect();
            let mut w = vm_fdt::FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            w.property_string(PROP_COMPATIBLE, "kho-v2").unwrap();
            w.property(PROP_PRESERVED_MEMORY_MAP, &0x4100_0000u64.to_le_bytes())
                .unwrap();
            for (i, (name, kind)) in children.iter().enumerate() {
                let node = w.begin_node(name).unwrap();
                let data = 0x4200_0000 + i as u64 * 0x1000;
                match kind {
                    Kind::Good => w.property(PROP_PRESERVED_DATA, &data.to_le_bytes()),
                    Kind::Zero => w.property(PROP_PRESERVED_DATA, &[0; 8]),
                    Kind::Missing => Ok(()),
                }
                .unwrap();
                w.end_node(node).unwrap();
            }
            w.end_node(root).unwrap();
            let blob = w.finish().unwrap();

            // The model: scan the children accepted so far.
            let mut kept: Vec<(&str, u64)> = Vec::new();
            let mut rejected: Vec<(&str, &str)> = Vec::new();
            for (i, (name, kind)) in children.iter().enumerate() {
                let verdict = if kept.iter().any(|k| k.0 == name) {
                    Err("duplicate")
                } else {
                    match kind {
                        Kind::Good => Ok(0x4200_0000 + i as u64 * 0x1000),
                        Kind::Zero => Err("zero"),
                        Kind::Missing => Err("missing"),
                    }
                };
                match verdict {
                    Ok(data) => kept.push((name, data)),
                    Err(why) => rejected.push((name, why)),
                }
            }
            let why = |e: &Error| match e {
                Error::DuplicateSubtree { .. } => "duplicate",
                Error::ZeroPreservedData { .. } => "zero",
                Error::MissingPreservedData { .. } => "missing",
                other => panic!("{other}"),
            };

            let fdt = KhoFdt::parse_lenient(&blob).unwrap();
            let got: Vec<_> = fdt
                .subtrees()
                .map(|s| (s.name(), s.data().as_u64()))
                .collect();
            assert_eq!(got, kept, "{children:?}");
            let got: Vec<_> = fdt.rejected().map(|(n, e)| (n, why(e))).collect();
            assert_eq!(got, rejected, "{children:?}");
            match KhoFdt::parse(&blob) {
                Ok(fdt) => assert!(rejected.is_empty() && fdt.subtrees().len() == count),
                Err(e) => assert_eq!(Some(why(&e)), rejected.first().map(|r| r.1)),
            }
        }
    }

    /// The per-child memory [`KhoFdt::parse`]'s documentation states.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn subtree_is_48_bytes() {
        assert_eq!(size_of::<Subtree<'_>>(), 48);
    }

    #[test]
    fn version_strings() {
        assert_eq!(version_of(b"kho-v2\0", 0), Ok(AbiVersion::V2));
        assert_eq!(version_of(b"kho-v3\0", 0), Ok(AbiVersion::V3));
        assert_eq!(version_of(b"kho-v4\0", 0), Ok(AbiVersion::V4));
        assert_eq!(version_of(b"kho-v1\0", 7), Ok(AbiVersion::V1));
        // A string list matches on any entry, as libfdt's
        // fdt_node_check_compatible reads it; the first known one wins.
        assert_eq!(version_of(b"kho-v2\0kho-v3\0", 0), Ok(AbiVersion::V2));
        assert_eq!(version_of(b"kho-v4\0kho-v3\0", 0), Ok(AbiVersion::V4));
        assert_eq!(version_of(b"vendor,kho\0kho-v4\0", 0), Ok(AbiVersion::V4));
        assert_eq!(version_of(b"kho-v2\0\0", 0), Ok(AbiVersion::V2));
        assert_eq!(version_of(b"kho-v1\0kho-v3\0", 0), Ok(AbiVersion::V1));
        assert_eq!(version_of(b"vendor,kho\0kho-v1\0", 3), Ok(AbiVersion::V1));
        // Unterminated, unknown, and no entry at all.
        for (value, quoted) in [
            (&b"kho-v2"[..], "kho-v2"),
            (b"kho-v5\0", "kho-v5"),
            (b"kho-v5\0kho-v6\0", "kho-v5\\0kho-v6"),
            (b"\0", ""),
            (b"", ""),
            (b"\xff\"x\0", "\\xff\\\"x"),
        ] {
            assert_eq!(
                version_of(value, 1),
                Err(Error::UnknownCompatible {
                    compatible: quoted.into(),
                    offset: 1
                })
            );
        }
    }

    #[test]
    fn le64_is_exactly_eight_bytes() {
        assert_eq!(le64(&[0, 0x40, 0x23, 0x41, 0, 0, 0, 0]), Some(0x4123_4000));
        assert_eq!(le64(&[0; 4]), None);
        assert_eq!(le64(&[0; 9]), None);
    }
}
