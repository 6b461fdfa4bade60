//! `kho fdt-dump --dts`: an FDT blob as DTS source that dtc compiles back
//! to it (`dtc -I dts -O dtb`).
//!
//! The canonical rendering (`kho_fdt::render`, the default) is for review:
//! children sorted by name, known properties first, little-endian values as
//! `le64:0x…`, which dtc cannot compile. This one keeps what the blob holds:
//!
//! - nodes and properties in the blob's own order;
//! - the `/memreserve/` entries;
//! - values as dtc writes them (`dtc -O dts`): NUL-terminated printable
//!   strings as `"a", "b"`, whole 4-byte cells as `<0x…>` (big-endian, as
//!   DTS cells are), anything else as bytes `[00 11]`; except the KHO
//!   properties that hold a little-endian u64 (`preserved-memory-map`,
//!   `preserved-data`, `blob-size`, memblock's `start` and `size`), which
//!   are bytes with their value in a comment (`// le64:0x…`).
//!
//! A blob dtc itself laid out (no padding) comes back byte for byte; one
//! written by another tool comes back with the same tree, node for node and
//! property for property (its strings table and padding may differ). The
//! blob is first checked exactly as the canonical rendering checks it (the
//! KHO root checks unless `--raw`), and names dtc's lexer cannot read, or
//! a name twice in one node (which dtc refuses), are one-line errors.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kho_abi::fdt::{PROP_BLOB_SIZE, PROP_PRESERVED_DATA, PROP_PRESERVED_MEMORY_MAP};
use kho_abi::memblock::{PROP_SIZE, PROP_START};

use crate::Error;

/// Properties that hold a little-endian u64 when 8 bytes long.
const LE64_PROPS: [&str; 5] = [
    PROP_PRESERVED_MEMORY_MAP,
    PROP_PRESERVED_DATA,
    PROP_BLOB_SIZE,
    PROP_START,
    PROP_SIZE,
];

/// Size of an FDT header; offsets of the fields read here.
const HEADER: usize = 40;
const OFF_TOTALSIZE: usize = 4;
const OFF_MEM_RSVMAP: usize = 16;
const OFF_BOOT_CPUID: usize = 28;

/// `blob` as DTS source: checked as a KHO root FDT (or with `raw` as any
/// FDT), then written in its own order.
pub fn render(blob: &[u8], raw: bool) -> Result<String, Error> {
    // The canonical rendering's checks, and its summary line.
    let canonical =
        kho_inspect::fdt_dump::render(blob, raw).map_err(|e| Error::new(e.to_string()))?;
    let totalsize = be32(blob, OFF_TOTALSIZE).unwrap_or(0) as usize;
    let bytes = blob.get(..totalsize).unwrap_or(blob);
    // Validated above, so the reader's walks cannot fail on it.
    let fdt = fdt::Fdt::new(bytes).map_err(|e| Error::new(format!("{e:?}")))?;
    let root = fdt
        .find_node("/")
        .ok_or_else(|| Error::new("the device tree has no root node"))?;

    let mut out = String::new();
    if let Some(summary) = canonical.lines().next() {
        out.push_str(summary);
        out.push('\n');
    }
    out.push_str("// kho fdt-dump --dts: `dtc -I dts -O dtb` compiles this back to the blob\n");
    if let Some(cpu) = be32(bytes, OFF_BOOT_CPUID).filter(|&c| c != 0) {
        let _ = writeln!(out, "// boot CPU {cpu:#x}: give dtc `-b {cpu:#x}`");
    }
    out.push_str("/dts-v1/;\n");
    for (addr, size) in mem_reservations(bytes) {
        let _ = writeln!(out, "/memreserve/ {addr:#018x} {size:#018x};");
    }
    out.push('\n');
    node(&mut out, root, 0, "/")?;
    Ok(out)
}

/// The memory reservation map's entries (address, size), terminator
/// excluded, within the blob.
fn mem_reservations(bytes: &[u8]) -> Vec<(u64, u64)> {
    let start = be32(bytes, OFF_MEM_RSVMAP).map_or(HEADER, |o| o as usize);
    bytes
        .get(start..)
        .unwrap_or_default()
        .chunks_exact(16)
        .map(|e| (be64(e, 0), be64(e, 8)))
        .take_while(|&(a, s)| a != 0 || s != 0)
        .collect()
}

fn node(
    out: &mut String,
    n: fdt::node::FdtNode<'_, '_>,
    depth: usize,
    path: &str,
) -> Result<(), Error> {
    indent(out, depth);
    if depth == 0 {
        out.push('/');
    } else {
        check_name(n.name, true, path)?;
        out.push_str(n.name);
    }
    out.push_str(" {\n");

    let mut seen = BTreeSet::new();
    for p in n.properties() {
        check_name(p.name, false, path)?;
        if !seen.insert(p.name) {
            return Err(Error::new(format!(
                "property {:?} appears twice in node {path}: dtc refuses that",
                p.name
            )));
        }
        indent(out, depth + 1);
        out.push_str(p.name);
        if !p.value.is_empty() {
            out.push_str(" = ");
            value(out, p.name, p.value);
        }
        out.push(';');
        if let Some(v) = le64(p.name, p.value) {
            let _ = write!(out, " // le64:{v:#018x}");
        }
        out.push('\n');
    }

    let mut children = BTreeSet::new();
    for c in n.children() {
        let child = if depth == 0 {
            format!("/{}", c.name)
        } else {
            format!("{path}/{}", c.name)
        };
        if !children.insert(c.name) {
            return Err(Error::new(format!(
                "node {child} appears twice: dtc refuses two nodes of one name"
            )));
        }
        out.push('\n');
        node(out, c, depth + 1, &child)?;
    }

    indent(out, depth);
    out.push_str("};\n");
    Ok(())
}

/// A node or property name dtc's lexer reads as one name: characters of
/// `[a-zA-Z0-9,._+*#?@-]` (dtc's `PROPNODECHAR`).
fn check_name(name: &str, is_node: bool, path: &str) -> Result<(), Error> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ",._+*#?@-".contains(c);
    if !name.is_empty() && name.chars().all(ok) {
        return Ok(());
    }
    let what = if is_node { "node" } else { "property" };
    Err(Error::new(format!(
        "{what} name {name:?} in {path} cannot be written as DTS (dtc reads names of \
         [a-zA-Z0-9,._+*#?@-] only)"
    )))
}

/// The value of a KHO little-endian u64 property.
fn le64(name: &str, v: &[u8]) -> Option<u64> {
    if !LE64_PROPS.contains(&name) {
        return None;
    }
    <[u8; 8]>::try_from(v).ok().map(u64::from_le_bytes)
}

fn value(out: &mut String, name: &str, v: &[u8]) {
    // A KHO u64 property is never shown as a string, even if its bytes
    // look like one (a big-endian cell 0x41234000 reads "A#@").
    let known = LE64_PROPS.contains(&name);
    if le64(name, v).is_none() {
        if let Some(strings) = string_list(v).filter(|_| !known) {
            for (i, part) in strings.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('"');
                for &b in *part {
                    if b == b'"' || b == b'\\' {
                        out.push('\\');
                    }
                    out.push(char::from(b));
                }
                out.push('"');
            }
            return;
        }
        if v.len().is_multiple_of(4) {
            out.push('<');
            for (i, cell) in v.chunks_exact(4).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{:#x}", be32(cell, 0).unwrap_or(0));
            }
            out.push('>');
            return;
        }
    }
    out.push('[');
    for (i, b) in v.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out.push(']');
}

/// `Some` if `v` is one or more non-empty printable-ASCII strings, each
/// NUL-terminated (dtc compiles `"a", "b"` back to exactly those bytes).
fn string_list(v: &[u8]) -> Option<Vec<&[u8]>> {
    let body = v.strip_suffix(&[0])?;
    let parts: Vec<&[u8]> = body.split(|&b| b == 0).collect();
    let printable = |p: &&[u8]| !p.is_empty() && p.iter().all(|&b| (0x20..=0x7e).contains(&b));
    parts.iter().all(printable).then_some(parts)
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push('\t');
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let w = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(<[u8; 4]>::try_from(w).ok()?))
}

fn be64(bytes: &[u8], at: usize) -> u64 {
    at.checked_add(8)
        .and_then(|end| bytes.get(at..end))
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, v: &[u8]) -> String {
        let mut s = String::new();
        value(&mut s, name, v);
        s
    }

    #[test]
    fn values_as_dtc_writes_them() {
        assert_eq!(text("compatible", b"kho-v4\0"), "\"kho-v4\"");
        assert_eq!(text("x", b"a\0b\"c\0"), "\"a\", \"b\\\"c\"");
        assert_eq!(
            text("reg", &[0, 0, 0, 1, 0x40, 0, 0, 0]),
            "<0x1 0x40000000>"
        );
        assert_eq!(text("x", &[1, 2, 3]), "[01 02 03]");
        // KHO's little-endian u64s are bytes; the comment has the value.
        let v = 0x4123_4000u64.to_le_bytes();
        assert_eq!(text("preserved-data", &v), "[00 40 23 41 00 00 00 00]");
        assert_eq!(le64("preserved-data", &v), Some(0x4123_4000));
        assert_eq!(le64("preserved-data", &v[..4]), None);
        assert_eq!(text("preserved-memory-map", b"A#@\0"), "<0x41234000>");
        assert_eq!(le64("other", &v), None);
    }

    #[test]
    fn names_dtc_cannot_read_are_refused() {
        assert!(check_name("memory@40000000", true, "/").is_ok());
        assert!(check_name("#address-cells", false, "/").is_ok());
        assert!(check_name("a{b", false, "/").is_err());
        let e = check_name("a b", true, "/x").unwrap_err().to_string();
        assert!(e.contains("\"a b\" in /x cannot be written as DTS"), "{e}");
        assert!(check_name("", false, "/").is_err());
    }
}
