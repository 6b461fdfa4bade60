//! Incoming side: every way a sub-blob can be wrong gives its named error,
//! blobs from dtc (as libfdt would write them) are read, and mutated blobs
//! never panic.

mod common;

use common::*;
use kho_mem::PhysAddr;
use kho_memblock::{Error, MemblockFdt, Token, build_blob, parse_reserve_mem};
use proptest::prelude::*;

fn tok(s: &str) -> Token {
    Token::new(s.as_bytes())
}

/// Renames a node in place (same length), to write what vm-fdt refuses.
fn rename(blob: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut token = vec![0, 0, 0, 1];
    token.extend_from_slice(from.as_bytes());
    token.push(0);
    let at = blob
        .windows(token.len())
        .position(|w| w == token.as_slice())
        .unwrap();
    blob[at + 4..at + 4 + to.len()].copy_from_slice(to.as_bytes());
}

fn parse_err(blob: &[u8]) -> Error {
    MemblockFdt::parse(blob).unwrap_err()
}

const DTC_BLOB: &[u8] = include_bytes!("dtb/memblock-v1-libfdt-like.dtb");

#[test]
fn reads_a_dtc_compiled_blob() {
    let fdt = MemblockFdt::parse(DTC_BLOB).unwrap();
    let got: Vec<_> = fdt
        .regions()
        .map(|r| (r.name(), r.start().as_u64(), r.size()))
        .collect();
    assert_eq!(
        got,
        [
            ("oops", 0x40f0_0000, 0x1_0000),
            ("trace", 0x40e0_0000, 0x10_0000)
        ]
    );
    // A compatible list that contains the string is enough, as libfdt's
    // fdt_node_check_compatible says.
    let trace = fdt
        .revive(&parse_reserve_mem("1M:1M:trace").unwrap())
        .unwrap();
    assert_eq!(trace.start(), PhysAddr::new(0x40e0_0000));
}

#[test]
fn only_totalsize_bytes_are_used() {
    let mut page = DTC_BLOB.to_vec();
    page.resize(4096, 0xa5);
    let fdt = MemblockFdt::parse(&page).unwrap();
    assert_eq!(fdt.as_bytes(), DTC_BLOB);
}

#[test]
fn container_errors_come_from_the_fdt_validator() {
    assert_eq!(
        parse_err(b"not an fdt at all, clearly"),
        Error::Blob(kho_fdt::Error::BadMagic { found: 0x6e6f7420 })
    );
    assert!(matches!(
        parse_err(&DTC_BLOB[..100]),
        Error::Blob(kho_fdt::Error::ExceedsBlob { .. })
    ));
    let e = parse_err(b"").to_string();
    assert!(
        e.starts_with("memblock sub-blob: FDT blob too short"),
        "{e}"
    );
}

#[test]
fn root_compatible() {
    assert_eq!(
        parse_err(&raw(&[], &[])),
        Error::RootNotCompatible { found: None }
    );
    assert_eq!(
        parse_err(&raw(&[Prop::Str("compatible", "memblock-v2")], &[])),
        Error::RootNotCompatible {
            found: Some(tok("memblock-v2"))
        }
    );
    // Not NUL-terminated: not a string list entry.
    assert_eq!(
        parse_err(&raw(&[Prop::Bytes("compatible", b"memblock-v1")], &[])),
        Error::RootNotCompatible {
            found: Some(tok("memblock-v1"))
        }
    );
    let list = raw(&[Prop::Bytes("compatible", b"x,y\0memblock-v1\0")], &[]);
    assert!(MemblockFdt::parse(&list).unwrap().is_empty());
}

#[test]
fn region_compatible() {
    let blob = raw(
        &ROOT,
        &[(
            "a",
            &[Prop::U64("start", 0x4000_0000), Prop::U64("size", 0x1000)],
        )],
    );
    assert_eq!(
        parse_err(&blob),
        Error::RegionNotCompatible {
            name: tok("a"),
            found: None
        }
    );
    let blob = raw(
        &ROOT,
        &[(
            "a",
            &[
                Prop::Str("compatible", "reserve-mem-v2"),
                Prop::U64("start", 0x4000_0000),
                Prop::U64("size", 0x1000),
            ],
        )],
    );
    assert_eq!(
        parse_err(&blob),
        Error::RegionNotCompatible {
            name: tok("a"),
            found: Some(tok("reserve-mem-v2"))
        }
    );
}

#[test]
fn start_and_size_properties() {
    let compat = Prop::Str("compatible", "reserve-mem-v1");
    let blob = raw(&ROOT, &[("a", &[compat, Prop::U64("size", 0x1000)])]);
    assert_eq!(
        parse_err(&blob),
        Error::MissingProperty {
            name: tok("a"),
            property: "start"
        }
    );
    let compat = Prop::Str("compatible", "reserve-mem-v1");
    let blob = raw(&ROOT, &[("a", &[compat, Prop::U64("start", 0x4000_0000)])]);
    assert_eq!(
        parse_err(&blob),
        Error::MissingProperty {
            name: tok("a"),
            property: "size"
        }
    );
    // A big-endian 32-bit cell is not a native u64.
    let compat = Prop::Str("compatible", "reserve-mem-v1");
    let blob = raw(
        &ROOT,
        &[(
            "a",
            &[
                compat,
                Prop::Bytes("start", &0x4000_0000u32.to_be_bytes()),
                Prop::U64("size", 0x1000),
            ],
        )],
    );
    assert_eq!(
        parse_err(&blob),
        Error::BadPropertyLength {
            name: tok("a"),
            property: "start",
            len: 4
        }
    );
    let compat = Prop::Str("compatible", "reserve-mem-v1");
    let blob = raw(
        &ROOT,
        &[(
            "a",
            &[
                compat,
                Prop::U64("start", 0x4000_0000),
                Prop::Bytes("size", &[0; 16]),
            ],
        )],
    );
    assert_eq!(
        parse_err(&blob),
        Error::BadPropertyLength {
            name: tok("a"),
            property: "size",
            len: 16
        }
    );
}

#[test]
fn region_ranges_and_names() {
    assert_eq!(
        parse_err(&raw(&ROOT, &[("a", &region(0x4000_0000, 0))])),
        Error::EmptyRegion { name: tok("a") }
    );
    assert_eq!(
        parse_err(&raw(&ROOT, &[("a", &region(u64::MAX - 0xfff, 0x1000))])),
        Error::RegionWraps {
            name: tok("a"),
            start: PhysAddr::new(u64::MAX - 0xfff),
            size: 0x1000
        }
    );
    // vm-fdt refuses duplicate siblings: write "c", then rename it "a".
    let mut blob = raw(
        &ROOT,
        &[
            ("a", &region(0x4000_0000, 0x1000)),
            ("b", &region(0x4000_2000, 0x1000)),
            ("c", &region(0x4000_4000, 0x1000)),
        ],
    );
    rename(&mut blob, "c", "a");
    assert_eq!(parse_err(&blob), Error::DuplicateName { name: tok("a") });
    assert_eq!(
        parse_err(&raw(
            &ROOT,
            &[
                ("a", &region(0x4000_0000, 0x1000)),
                ("b", &region(0x4000_0fff, 0x1000)),
            ]
        )),
        Error::RegionsOverlap {
            first: tok("a"),
            second: tok("b")
        }
    );
    assert_eq!(
        parse_err(&raw(
            &ROOT,
            &[("sixteen_chars_xx", &region(0x4000_0000, 1))]
        )),
        Error::NameTooLong {
            name: tok("sixteen_chars_xx"),
            len: 16
        }
    );
    // Names this crate would not write, but upstream may: accepted.
    let mut blob = raw(&ROOT, &[("xst-log", &region(0x4000_0000, 1))]);
    rename(&mut blob, "xst-log", "1st@log");
    let fdt = MemblockFdt::parse(&blob).unwrap();
    assert_eq!(fdt.find("1st@log").unwrap().size(), 1);
}

#[test]
fn built_blobs_parse_back() {
    use kho_memblock::Region;
    let regions = [
        Region::new("b", PhysAddr::new(0x5000_0000), 0x10).unwrap(),
        Region::new("a", PhysAddr::new(0x4000_0000), 0x1000).unwrap(),
    ];
    let blob = build_blob(&regions).unwrap();
    let fdt = MemblockFdt::parse(&blob).unwrap();
    assert_eq!(fdt.regions().collect::<Vec<_>>(), regions);
    assert!(format!("{fdt:?}").starts_with("MemblockFdt"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Flipping, overwriting or truncating bytes of a real blob never
    /// panics; whatever parses has regions that are consistent.
    #[test]
    fn mutated_blobs_never_panic(
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
        cut in 0usize..400,
    ) {
        let mut blob = DTC_BLOB.to_vec();
        for (at, byte) in edits {
            let len = blob.len();
            blob[at % len] = byte;
        }
        blob.truncate(cut.max(1));
        if let Ok(fdt) = MemblockFdt::parse(&blob) {
            let n = fdt.regions().count();
            prop_assert_eq!(n, fdt.len());
            for r in fdt.regions() {
                prop_assert!(r.size() > 0);
                prop_assert_eq!(fdt.find(r.name()).map(|f| f.start()), Ok(r.start()));
            }
        }
    }

    /// Any string is either a valid reserve_mem= value or a named error.
    #[test]
    fn reserve_mem_values_never_panic(value in "[0-9a-zA-Z:x ,@._-]{0,24}") {
        if let Ok(r) = parse_reserve_mem(&value) {
            prop_assert!(r.size > 0);
            prop_assert!(r.align.is_power_of_two() && r.align >= 64);
            prop_assert!(!r.name.is_empty() && r.name.len() <= 15);
        }
    }
}
