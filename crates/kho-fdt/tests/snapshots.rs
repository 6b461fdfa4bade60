//! insta snapshots of the canonical rendering, stored in this package's `tests/snapshots/`.
//!
//! How to update: after a deliberate change to the rendering or to a fixture,
//! run `cargo insta test -p kho-fdt` (or `INSTA_UPDATE=new cargo test -p
//! kho-fdt`), then `cargo insta review` to inspect each `.snap.new` diff and
//! accept or reject it; read every accepted file by hand (addresses, order,
//! formatting) before committing. CI runs with `INSTA_UPDATE=no` (or
//! `cargo insta test --check`), so an unreviewed change fails. They live in
//! the package, so its tests run from a published copy too and `cargo insta
//! review` finds them (it searches package directories).

mod common;

use common::{le, raw_fdt};
use kho_abi::AbiVersion;
use kho_fdt::{KhoFdt, KhoFdtBuilder, render, render_blob};
use kho_mem::PhysAddr;

/// `assert_snapshot!` into `tests/snapshots/<name>.snap` (this package's).
macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

const MAP: PhysAddr = PhysAddr::new(0x4123_4000);

#[test]
fn render_empty() {
    let blob = KhoFdtBuilder::new(AbiVersion::V2, MAP).build().unwrap();
    snapshot!("render_empty", render(&blob).unwrap());
}

/// kho-v1 as the engine writes it after finalize: children with `fdt`.
#[test]
fn render_v1_profile() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V1, MAP);
    b.add_subtree("memblock", PhysAddr::new(0x4124_5000), None)
        .unwrap();
    b.add_subtree("kho_test", PhysAddr::new(0x4124_6000), None)
        .unwrap();
    snapshot!("render_v1_profile", render(&b.build().unwrap()).unwrap());
}

#[test]
fn render_one_child() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V2, MAP);
    b.add_subtree("memblock", PhysAddr::new(0x4124_5000), None)
        .unwrap();
    snapshot!("render_one_child", render(&b.build().unwrap()).unwrap());
}

/// As many children as fit in the page, added in reverse name order so the
/// snapshot also shows the sorting.
#[test]
fn render_many_children() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V2, MAP);
    for i in (0..98u64).rev() {
        let data = PhysAddr::new(0x4200_0000 + i * 0x1000);
        b.add_subtree(&format!("client-{i:02}"), data, None)
            .unwrap();
    }
    assert!(
        b.add_subtree("client-98", PhysAddr::new(0x4206_2000), None)
            .is_err()
    );
    snapshot!("render_many_children", render(&b.build().unwrap()).unwrap());
}

/// kho-v3: every child with blob-size; children added out of order.
#[test]
fn render_v3_profile() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V3, MAP);
    b.add_subtree("memblock", PhysAddr::new(0x4124_5000), Some(0x1000))
        .unwrap();
    b.add_subtree("kexec-metadata", PhysAddr::new(0x4124_7000), Some(73))
        .unwrap();
    b.add_subtree("LUO", PhysAddr::new(0x4130_0000), Some(0x4000))
        .unwrap();
    let blob = b.build().unwrap();
    let fdt = KhoFdt::parse(&blob).unwrap();
    snapshot!("render_v3_profile", fdt.render());
}

/// kho-v2 of the blob-size revision: blob-size on some children only.
#[test]
fn render_v2_blob_size() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V2, MAP);
    b.add_subtree("memblock", PhysAddr::new(0x4124_5000), Some(0x1000))
        .unwrap();
    b.add_subtree("kho_test", PhysAddr::new(0x4124_6000), None)
        .unwrap();
    snapshot!("render_v2_blob_size", render(&b.build().unwrap()).unwrap());
}

#[test]
fn render_dtc_fixture_kho_v2_basic() {
    let blob = include_bytes!("dtb/kho-v2-basic.dtb");
    snapshot!("render_dtc_kho_v2_basic", render(blob).unwrap());
}

#[test]
fn render_dtc_fixture_kho_v3_blob_size() {
    let blob = include_bytes!("dtb/kho-v3-blob-size.dtb");
    snapshot!("render_dtc_kho_v3_blob_size", render(blob).unwrap());
}

/// kho-v4 as Linux 7.2 lays it out (blob-size before preserved-data): the
/// rendering is canonical, so it shows the usual property order.
#[test]
fn render_dtc_fixture_kho_v4_linux_order() {
    let blob = include_bytes!("dtb/kho-v4-linux-order.dtb");
    snapshot!("render_dtc_kho_v4_linux_order", render(blob).unwrap());
}

/// A client sub-blob rendered without the KHO root checks.
#[test]
fn render_blob_dtc_fixture_memblock() {
    let blob = include_bytes!("dtb/memblock-v1.dtb");
    snapshot!("render_blob_dtc_memblock_v1", render_blob(blob).unwrap());
}

/// The invalid fixture as a plain FDT: the wrong-length map shows as bytes.
#[test]
fn render_blob_dtc_fixture_cell_map() {
    let blob = include_bytes!("dtb/kho-v2-cell-map.dtb");
    snapshot!(
        "render_blob_dtc_kho_v2_cell_map",
        render_blob(blob).unwrap()
    );
}

/// One line per refused blob: the message the xtask prints for each.
#[test]
fn error_messages() {
    let good = KhoFdtBuilder::new(AbiVersion::V2, MAP).build().unwrap();
    let patch = |at: usize, v: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        b
    };
    let mut unknown = good.clone();
    unknown[0x4c..0x52].copy_from_slice(b"kho-v9");
    let mut big = patch(4, 8192);
    big.resize(8192, 0);
    let v2 = ("compatible", &b"kho-v2\0"[..]);
    let map = le(MAP.as_u64());
    let map = ("preserved-memory-map", &map[..]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header", good[..20].to_vec()),
        ("totalsize larger than the slice", good[..100].to_vec()),
        ("bad magic", patch(0, 0xfeed_d00d)),
        ("old header version", patch(0x14, 16)),
        ("totalsize over a page", big),
        ("struct block out of range", patch(8, 0x1000)),
        ("unknown token", patch(0x40, 7)),
        ("missing compatible", raw_fdt(&[map], &[])),
        ("unknown compatible", unknown),
        ("missing memory map", raw_fdt(&[v2], &[])),
        (
            "4-byte memory map",
            raw_fdt(&[v2, ("preserved-memory-map", &[0x41, 0x23, 0x40, 0])], &[]),
        ),
        ("zero memory map", patch(0x60, 0)),
        (
            "child without preserved-data",
            raw_fdt(&[v2, map], &[("memblock", &[])]),
        ),
        (
            "kho-v1 child without fdt",
            raw_fdt(
                &[("compatible", b"kho-v1\0"), map],
                &[("memblock", &[("preserved-data", &le(0x4124_5000))])],
            ),
        ),
        (
            "kho-v3 child without blob-size",
            raw_fdt(
                &[("compatible", b"kho-v3\0"), map],
                &[("memblock", &[("preserved-data", &le(0x4124_5000))])],
            ),
        ),
        (
            "kho-v4 child without blob-size",
            raw_fdt(
                &[("compatible", b"kho-v4\0"), map],
                &[("kho_test", &[("preserved-data", &le(0x4124_6000))])],
            ),
        ),
    ];
    let mut text = String::new();
    for (what, blob) in &cases {
        let err = KhoFdt::parse(blob).unwrap_err();
        text.push_str(&format!("{what}: {err}\n"));
    }
    snapshot!("error_messages", text);
}
