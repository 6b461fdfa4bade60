//! Helpers shared by the integration tests: raw FDTs the builder would refuse.

#![allow(dead_code)]

/// Realistic addresses used throughout the tests.
pub const MAP: u64 = 0x4123_4000;
/// Data address of the first client blob.
pub const DATA: u64 = 0x4124_5000;

/// A property: name and raw value.
pub type Prop<'a> = (&'a str, &'a [u8]);

/// A child node: name and properties.
pub type Child<'a> = (&'a str, &'a [Prop<'a>]);

/// A KHO-shaped FDT written directly with vm-fdt, so tests can produce
/// anything (wrong lengths, missing properties, duplicates).
pub fn raw_fdt(root_props: &[Prop<'_>], children: &[Child<'_>]) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    for (name, value) in root_props {
        w.property(name, value).unwrap();
    }
    for (child, props) in children {
        let node = w.begin_node(child).unwrap();
        for (name, value) in *props {
            w.property(name, value).unwrap();
        }
        w.end_node(node).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// Little-endian bytes of a KHO u64.
pub fn le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Overwrites the big-endian header word at `offset`.
pub fn set_header_word(blob: &mut [u8], offset: usize, value: u32) {
    blob[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
}
