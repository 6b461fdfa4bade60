//! insta snapshots of the rendered sub-blob, stored in this package's
//! `tests/snapshots/`.
//!
//! How to update: after a deliberate change to the blob or the messages, run
//! `cargo insta test -p kho-memblock` (or `INSTA_UPDATE=new cargo test -p
//! kho-memblock`), then `cargo insta review`; read every accepted file by
//! hand (compatibles, property names, little-endian values, sizes) before
//! committing. CI runs with `INSTA_UPDATE=no`, so an unreviewed change fails.
//!
//! The rendering is `kho_fdt::render_blob`: children sorted by name,
//! `start`/`size` decoded as little-endian u64 (`le64:0x…`).

mod common;

use std::fmt::Write as _;

use common::*;
use kho_mem::{PAGE_SIZE, PhysAddr};
use kho_memblock::{
    MemblockFdt, Region, build_blob, parse_reserve_mem, preserve_memblock, retrieve,
};

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

fn render(regions: &[Region<'_>]) -> String {
    let blob = build_blob(regions).unwrap();
    // What is rendered is what the reader accepts.
    let fdt = MemblockFdt::parse(&blob).unwrap();
    assert_eq!(fdt.regions().collect::<Vec<_>>(), regions);
    kho_fdt::render_blob(&blob).unwrap()
}

#[test]
fn one_region() {
    let log = Region::new("kho_log", PhysAddr::new(0x7f00_0000), 1 << 20).unwrap();
    snapshot!("render_one_region", render(&[log]));
}

#[test]
fn three_regions() {
    // Written in this order; rendered sorted by name.
    let regions = [
        Region::new("trace", PhysAddr::new(0x4_4000_0000), 16 << 20).unwrap(),
        Region::new("oops", PhysAddr::new(0x4100_0000), 64 << 10).unwrap(),
        Region::new("kho_log", PhysAddr::new(0x4101_0040), 0x1fc0).unwrap(),
    ];
    snapshot!("render_three_regions", render(&regions));
}

#[test]
fn no_regions() {
    snapshot!("render_no_regions", render(&[]));
}

#[test]
fn preserved_blob_read_back_from_memory() {
    let (mut mem, mut tree) = setup();
    let oops = Region::new("oops", PhysAddr::new(0x40f0_0000), 64 << 10).unwrap();
    let blob = preserve_memblock(&mut mem, &mut tree, &[oops]).unwrap();
    let mut buf = [0u8; PAGE_SIZE];
    let fdt = retrieve(&mem, blob.phys, Some(blob.size), &mut buf).unwrap();
    snapshot!(
        "render_preserved_oops",
        kho_fdt::render_blob(fdt.as_bytes()).unwrap()
    );
}

#[test]
fn dtc_fixture() {
    let blob = include_bytes!("dtb/memblock-v1-libfdt-like.dtb");
    snapshot!(
        "render_dtc_libfdt_like",
        kho_fdt::render_blob(blob).unwrap()
    );
}

/// One line per refusal, as a user would read it.
#[test]
fn error_messages() {
    let mut out = String::new();
    let mut line = |what: &str, e: kho_memblock::Error| {
        writeln!(out, "{what}: {e}").unwrap();
    };
    for v in [
        "",
        "0:4K:a",
        "1M,4K:a",
        "1M:4K",
        "1M:100:a",
        "1M:17E:a",
        "1M:4K:",
        "1M:4K:sixteen_chars_xx",
        "1M:4K:  ",
    ] {
        line(
            &format!("reserve_mem={v:?}"),
            parse_reserve_mem(v).unwrap_err(),
        );
    }
    let at = PhysAddr::new(0x4000_0000);
    line(
        "Region::new(\"1log\")",
        Region::new("1log", at, 1).unwrap_err(),
    );
    line("Region::new(size 0)", Region::new("a", at, 0).unwrap_err());
    let a = Region::new("a", at, 0x2000).unwrap();
    let b = Region::new("b", PhysAddr::new(0x4000_1000), 0x10).unwrap();
    line("build_blob(a, a)", build_blob(&[a, a]).unwrap_err());
    line("build_blob(a, b)", build_blob(&[a, b]).unwrap_err());
    line(
        "parse(no root compatible)",
        MemblockFdt::parse(&raw(&[], &[])).unwrap_err(),
    );
    line(
        "parse(bad start)",
        MemblockFdt::parse(&raw(
            &ROOT,
            &[(
                "a",
                &[
                    Prop::Str("compatible", "reserve-mem-v1"),
                    Prop::Bytes("start", &[0x40, 0, 0, 0]),
                    Prop::U64("size", 1),
                ],
            )],
        ))
        .unwrap_err(),
    );
    let fdt_blob = raw(&ROOT, &[("log", &region(0x4000_3000, 0x3000))]);
    let fdt = MemblockFdt::parse(&fdt_blob).unwrap();
    for v in ["0x3000:8K:log", "0x4000:4K:log", "0x3000:4K:oops"] {
        line(
            &format!("revive({v})"),
            fdt.revive(&parse_reserve_mem(v).unwrap()).unwrap_err(),
        );
    }
    snapshot!("error_messages", out);
}
