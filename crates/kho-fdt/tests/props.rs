//! Property tests: parsing and rendering never panic; builder -> parse round trips.

mod common;

use common::{DATA, MAP, le, raw_fdt};
use kho_abi::AbiVersion;
use kho_fdt::{Error, KhoFdt, KhoFdtBuilder};
use kho_mem::PhysAddr;
use proptest::prelude::*;
use proptest::sample::select;

/// Runs every entry point on `bytes`; the test fails if any panics.
fn exercise(bytes: &[u8]) {
    if let Ok(fdt) = KhoFdt::parse(bytes) {
        let text = fdt.render();
        assert_eq!(kho_fdt::render(bytes).as_ref(), Ok(&text));
        let _ = fdt.subtrees().count();
    } else {
        let _ = kho_fdt::render(bytes).map(|_| panic!("render accepted what parse refused"));
    }
    let _ = kho_fdt::render_blob(bytes).map(|t| t.len());
    if let Err(e) = KhoFdt::parse(bytes) {
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
    }
}

/// Valid seeds to mutate: the builder's output and hand-made variants.
fn seeds() -> Vec<Vec<u8>> {
    let mut b = KhoFdtBuilder::new(AbiVersion::V3, PhysAddr::new(MAP));
    b.add_subtree("memblock", PhysAddr::new(DATA), Some(4096))
        .unwrap();
    b.add_subtree("kexec-metadata", PhysAddr::new(DATA + 0x1000), Some(73))
        .unwrap();
    let mut seeds = vec![
        b.build().unwrap(),
        KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(MAP))
            .build()
            .unwrap(),
        raw_fdt(
            &[("compatible", b"memblock-v1\0")],
            &[(
                "kho_log",
                &[
                    ("compatible", b"reserve-mem-v1\0"),
                    ("start", &le(0x7f00_0000)),
                    ("size", &le(0x10_0000)),
                ],
            )],
        ),
    ];
    seeds.push(include_bytes!("dtb/kho-v2-basic.dtb").to_vec());
    seeds.push(include_bytes!("dtb/kho-v4-linux-order.dtb").to_vec());
    seeds
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        select(seeds()),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut blob, edits, cut, truncate)| {
            for (at, byte) in edits {
                let i = at.index(blob.len());
                blob[i] = byte;
            }
            if truncate {
                blob.truncate(cut.index(blob.len() + 1));
            }
            blob
        })
}

/// Mutations of header words to small or boundary values, which random bytes
/// rarely produce.
fn header_mutated() -> impl Strategy<Value = Vec<u8>> {
    let values = select(vec![
        0u32,
        1,
        2,
        3,
        4,
        8,
        9,
        16,
        17,
        18,
        39,
        40,
        56,
        100,
        144,
        4095,
        4096,
        4097,
        0x7fff_ffff,
        u32::MAX,
    ]);
    (select(seeds()), 1usize..10, values).prop_map(|(mut blob, word, v)| {
        blob[word * 4..word * 4 + 4].copy_from_slice(&v.to_be_bytes());
        blob
    })
}

/// Token-level damage: overwrite an aligned structure word with a token or
/// length-like value.
fn token_mutated() -> impl Strategy<Value = Vec<u8>> {
    let values = select(vec![0u32, 1, 2, 3, 4, 5, 9, 0xff, 0x1000, u32::MAX]);
    (select(seeds()), any::<prop::sample::Index>(), values).prop_map(|(mut blob, at, v)| {
        let words = (blob.len() - 56) / 4;
        let i = 56 + at.index(words) * 4;
        blob[i..i + 4].copy_from_slice(&v.to_be_bytes());
        blob
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_with_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = 0xd00d_feedu32.to_be_bytes().to_vec();
        bytes.extend(tail);
        exercise(&bytes);
    }

    #[test]
    fn mutations_never_panic(blob in mutated()) {
        exercise(&blob);
    }

    #[test]
    fn header_mutations_never_panic(blob in header_mutated()) {
        exercise(&blob);
    }

    #[test]
    fn token_mutations_never_panic(blob in token_mutated()) {
        exercise(&blob);
    }
}

#[derive(Clone, Debug)]
struct Child {
    name: String,
    data: u64,
    size: Option<u64>,
}

fn children() -> impl Strategy<Value = Vec<Child>> {
    prop::collection::vec(
        (
            "[a-zA-Z][a-zA-Z0-9,._+-]{0,30}",
            1u64..,
            prop::option::of(any::<u64>()),
        )
            .prop_map(|(name, data, size)| Child { name, data, size }),
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn builder_parse_round_trip(
        version in prop::sample::select(AbiVersion::ALL.to_vec()),
        map_pfn in 1u64..(1 << 40),
        children in children(),
    ) {
        let map = PhysAddr::new(map_pfn << 12);
        let mut b = KhoFdtBuilder::new(version, map);
        let mut added: Vec<Child> = Vec::new();
        for c in children {
            let before = b.clone();
            let result = b.add_subtree(&c.name, PhysAddr::new(c.data), c.size);
            if result.is_err() {
                prop_assert_eq!(&b, &before, "a refused add changed the builder");
            }
            match result {
                Ok(()) => added.push(c),
                Err(Error::DuplicateSubtree { .. }) => {
                    prop_assert!(added.iter().any(|a| a.name == c.name));
                }
                Err(Error::BlobSizeRequired { .. }) => {
                    prop_assert!(version.requires_blob_size() && c.size.is_none());
                }
                Err(Error::BlobSizeNotInVersion { .. }) => {
                    prop_assert!(!version.allows_blob_size() && c.size.is_some());
                }
                Err(Error::TooLarge { size, max }) => {
                    prop_assert!(size > max);
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
        let blob = b.build().unwrap();
        prop_assert_eq!(blob.len(), b.serialized_size());
        prop_assert!(blob.len() <= 4096);
        let fdt = KhoFdt::parse(&blob).unwrap();
        prop_assert_eq!(fdt.version(), version);
        prop_assert_eq!(fdt.memory_map(), map);
        let got: Vec<_> = fdt
            .subtrees()
            .map(|s| (s.name().to_string(), s.data().as_u64(), s.size()))
            .collect();
        let want: Vec<_> = added.iter().map(|c| (c.name.clone(), c.data, c.size)).collect();
        prop_assert_eq!(got, want);
        // Rendering is deterministic and lists every child once, sorted.
        let text = fdt.render();
        prop_assert_eq!(&text, &kho_fdt::render(&blob).unwrap());
        let mut names: Vec<_> = added.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        let rendered: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with('\t') && !l.starts_with("\t\t") && l.ends_with(" {"))
            .map(|l| l.trim().trim_end_matches(" {"))
            .collect();
        prop_assert_eq!(rendered, names);
    }
}
