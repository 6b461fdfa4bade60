//! Canonical DTS-like text of an FDT, for review, `fdt-dump` and snapshots.
//!
//! The output depends only on the tree, never on the blob's layout:
//!
//! - a comment line summarising the header, then `/dts-v1/;`, then any
//!   `/memreserve/` entries;
//! - children sorted by name (byte order); one tab of indent per level, a
//!   blank line before each child node, as `dtc -O dts` prints;
//! - properties: `compatible` first, then the known KHO properties in this
//!   fixed order: `preserved-memory-map`, `preserved-data`, `fdt` (kho-v1's
//!   `preserved-data`), `blob-size`,
//!   then the memblock sub-blob's `start`, `size`; then all others by name;
//! - values: those known properties, when exactly 8 bytes, as
//!   `le64:0x0000000041234000` (a little-endian u64, 16 hex digits). This
//!   is deliberately not DTS cell syntax: `<0x0 0x41234000>` would claim
//!   big-endian cells, which KHO's native-endian values are not.
//!   NUL-terminated printable strings as `"a", "b"` (`"` and `\` escaped);
//!   empty values as a bare `name;`; anything else, including a known u64
//!   property of the wrong length, as hex bytes `[00 11]`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use kho_abi::AbiVersion;
use kho_abi::fdt::{
    PROP_BLOB_SIZE, PROP_COMPATIBLE, PROP_PRESERVED_DATA, PROP_PRESERVED_MEMORY_MAP, PROP_V1_FDT,
};
use kho_abi::memblock::{PROP_SIZE, PROP_START};

use crate::blob::{ValidFdt, validate};
use crate::error::Result;
use crate::parse::{KhoFdt, escape, le64};

/// Properties printed right after `compatible`, in this order, and decoded as
/// little-endian u64 when exactly 8 bytes long.
const LE64_PROPS: [&str; 6] = [
    PROP_PRESERVED_MEMORY_MAP,
    PROP_PRESERVED_DATA,
    PROP_V1_FDT,
    PROP_BLOB_SIZE,
    PROP_START,
    PROP_SIZE,
];

/// Parses `blob` as a root KHO FDT ([`KhoFdt::parse`], with all its checks)
/// and renders it canonically. Never panics.
///
/// ```
/// # use kho_abi::AbiVersion; use kho_mem::PhysAddr;
/// # let mut b = kho_fdt::KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x4123_4000));
/// # b.add_subtree("memblock", PhysAddr::new(0x4124_5000), None)?;
/// # let blob = b.build()?;
/// assert_eq!(kho_fdt::render(&blob)?, "\
/// // KHO root FDT kho-v2: totalsize 199 (0xc7) bytes, dt version 17 (last compatible 16)
/// /dts-v1/;
///
/// / {
/// \tcompatible = \"kho-v2\";
/// \tpreserved-memory-map = le64:0x0000000041234000;
///
/// \tmemblock {
/// \t\tpreserved-data = le64:0x0000000041245000;
/// \t};
/// };
/// ");
/// # Ok::<(), kho_fdt::Error>(())
/// ```
pub fn render(blob: &[u8]) -> Result<String> {
    Ok(KhoFdt::parse(blob)?.render())
}

/// Renders any valid FDT canonically, without the KHO root checks (for
/// client sub-blobs such as memblock's `memblock-v1`). Never panics.
///
/// Only the container is validated (header, blocks, structure walk, see
/// [`KhoFdt::parse`] steps 1 and 2); no size limit applies beyond the slice.
pub fn render_blob(blob: &[u8]) -> Result<String> {
    let valid = validate(blob, usize::MAX)?;
    Ok(render_valid(&valid, None))
}

/// Renders a validated blob; `kho` names the version when it is a KHO root.
pub(crate) fn render_valid(v: &ValidFdt<'_>, kho: Option<AbiVersion>) -> String {
    let mut out = String::new();
    let h = &v.header;
    let root = v.root().ok();
    match kho {
        Some(version) => {
            let _ = write!(out, "// KHO root FDT {version}");
        }
        None => match root.and_then(|r| r.property(PROP_COMPATIBLE)) {
            Some(p) => {
                let _ = write!(out, "// FDT {}", value(p.name, p.value));
            }
            None => out.push_str("// FDT without root compatible"),
        },
    }
    let _ = write!(
        out,
        ": totalsize {} ({:#x}) bytes, dt version {} (last compatible {})",
        h.totalsize, h.totalsize, h.version, h.last_comp_version
    );
    if h.boot_cpuid_phys != 0 {
        let _ = write!(out, ", boot cpu {:#x}", h.boot_cpuid_phys);
    }
    out.push_str("\n/dts-v1/;\n");
    for (addr, size) in v.mem_reservations() {
        let _ = writeln!(out, "/memreserve/ {addr:#018x} {size:#018x};");
    }
    out.push('\n');
    if let Some(root) = root {
        node(&mut out, root, 0);
    }
    out
}

fn node(out: &mut String, n: fdt::node::FdtNode<'_, '_>, depth: usize) {
    indent(out, depth);
    out.push_str(if depth == 0 { "/" } else { n.name });
    out.push_str(" {\n");

    let mut props: Vec<_> = n.properties().collect();
    props.sort_by(|a, b| (rank(a.name), a.name).cmp(&(rank(b.name), b.name)));
    for p in props {
        indent(out, depth + 1);
        out.push_str(p.name);
        if !p.value.is_empty() {
            out.push_str(" = ");
            out.push_str(&value(p.name, p.value));
        }
        out.push_str(";\n");
    }

    let mut children: Vec<_> = n.children().collect();
    children.sort_by(|a, b| a.name.cmp(b.name));
    for c in children {
        out.push('\n');
        node(out, c, depth + 1);
    }

    indent(out, depth);
    out.push_str("};\n");
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push('\t');
    }
}

fn rank(name: &str) -> usize {
    if name == PROP_COMPATIBLE {
        return 0;
    }
    match LE64_PROPS.iter().position(|&p| p == name) {
        Some(i) => 1 + i,
        None => 1 + LE64_PROPS.len(),
    }
}

fn value(name: &str, v: &[u8]) -> String {
    let known_u64 = LE64_PROPS.contains(&name);
    if known_u64 && let Some(x) = le64(v) {
        let mut s = String::new();
        let _ = write!(s, "le64:{x:#018x}");
        return s;
    }
    // A known u64 of the wrong length is shown as bytes even if they happen
    // to look like a string (a big-endian cell 0x41234000 reads "A#@").
    if let Some(strings) = string_list(v).filter(|_| !known_u64) {
        let mut s = String::new();
        for (i, part) in strings.into_iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push('"');
            s.push_str(&escape(part));
            s.push('"');
        }
        return s;
    }
    let mut s = String::from("[");
    for (i, b) in v.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s.push(']');
    s
}

/// `Some` if `v` is one or more non-empty printable-ASCII strings, each
/// NUL-terminated.
fn string_list(v: &[u8]) -> Option<Vec<&[u8]>> {
    let body = v.strip_suffix(&[0])?;
    let parts: Vec<&[u8]> = body.split(|&b| b == 0).collect();
    let printable = |p: &&[u8]| !p.is_empty() && p.iter().all(|&b| (0x20..=0x7e).contains(&b));
    parts.iter().all(printable).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value("compatible", b"kho-v2\0"), "\"kho-v2\"");
        assert_eq!(value("x", b"a\0b\"c\0"), "\"a\", \"b\\\"c\"");
        assert_eq!(
            value("preserved-data", &0x4123_4000u64.to_le_bytes()),
            "le64:0x0000000041234000"
        );
        assert_eq!(
            value("size", &0x10_0000u64.to_le_bytes()),
            "le64:0x0000000000100000"
        );
        // Other 8-byte values, and known ones of another length, stay bytes.
        assert_eq!(
            value("other", &1u64.to_le_bytes()),
            "[01 00 00 00 00 00 00 00]"
        );
        assert_eq!(value("start", &[0, 0x40, 0, 0]), "[00 40 00 00]");
        assert_eq!(value("preserved-memory-map", b"A#@\0"), "[41 23 40 00]");
        assert_eq!(value("x", b"\0"), "[00]");
        assert_eq!(value("x", b"a\0\0"), "[61 00 00]");
        assert_eq!(value("x", b"\xff\0"), "[ff 00]");
    }

    #[test]
    fn property_order() {
        let mut names = [
            "zeta",
            "size",
            "blob-size",
            "alpha",
            "compatible",
            "preserved-data",
            "start",
            "preserved-memory-map",
        ];
        names.sort_by_key(|n| (rank(n), *n));
        assert_eq!(
            names,
            [
                "compatible",
                "preserved-memory-map",
                "preserved-data",
                "blob-size",
                "start",
                "size",
                "alpha",
                "zeta"
            ]
        );
    }
}
