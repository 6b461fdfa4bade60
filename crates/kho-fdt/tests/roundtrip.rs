//! Builder -> parse round trips, builder errors, and every parse error on a crafted blob.

mod common;

use common::{Child, DATA, MAP, le, raw_fdt, set_header_word};
use kho_abi::AbiVersion;
use kho_fdt::{Block, Error, KhoFdt, KhoFdtBuilder, Malformed};
use kho_mem::PhysAddr;

fn builder(version: AbiVersion) -> KhoFdtBuilder {
    KhoFdtBuilder::new(version, PhysAddr::new(MAP))
}

/// Adds `client-00`, `client-01`, ... until the page is full; returns the
/// count and the error the next one gave.
fn fill(b: &mut KhoFdtBuilder) -> (usize, Error) {
    for i in 0.. {
        let name = format!("client-{i:02}");
        if let Err(e) = b.add_subtree(&name, PhysAddr::new(0x4200_0000 + i * 0x1000), None) {
            return (i as usize, e);
        }
    }
    unreachable!()
}

// --- round trips ----------------------------------------------------------

#[test]
fn empty_round_trip() {
    let blob = builder(AbiVersion::V2).build().unwrap();
    assert_eq!(blob.len(), 144);
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V2);
    assert_eq!(fdt.memory_map(), PhysAddr::new(MAP));
    assert_eq!(fdt.total_size(), 144);
    assert_eq!(fdt.subtrees().len(), 0);
    assert_eq!(fdt.subtree("memblock"), None);
    assert_eq!(fdt.header().version, 17);
    assert_eq!(fdt.header().last_comp_version, 16);
}

#[test]
fn one_child_round_trip() {
    let mut b = builder(AbiVersion::V2);
    b.add_subtree("memblock", PhysAddr::new(DATA), None)
        .unwrap();
    let blob = b.build().unwrap();
    assert_eq!(blob.len(), b.serialized_size());
    let fdt = KhoFdt::parse(&blob).unwrap();
    let s = fdt.subtree("memblock").unwrap();
    assert_eq!(s.name(), "memblock");
    assert_eq!(s.data(), PhysAddr::new(DATA));
    assert_eq!(s.size(), None);
    // The node follows the root's two properties: 56 + 8 + 20 + 20.
    assert_eq!(s.offset(), 104);
    assert_eq!(&blob[s.offset()..s.offset() + 4], &[0, 0, 0, 1]);
}

#[test]
fn many_children_fill_exactly_one_page() {
    let mut b = builder(AbiVersion::V2);
    let (count, next) = fill(&mut b);
    // Each `client-NN` child costs 40 bytes; the 98th leaves 17 bytes free.
    assert_eq!(count, 98);
    assert_eq!(b.serialized_size(), 4079);
    assert_eq!(
        next,
        Error::TooLarge {
            size: 4119,
            max: 4096
        }
    );
    assert_eq!(b.len(), 98, "a refused add leaves the builder unchanged");

    let blob = b.build().unwrap();
    assert_eq!(blob.len(), 4079);
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.subtrees().len(), 98);
    for (i, s) in fdt.subtrees().enumerate() {
        assert_eq!(s.name(), format!("client-{i:02}"));
        assert_eq!(s.data(), PhysAddr::new(0x4200_0000 + i as u64 * 0x1000));
    }
    // Even the smallest child (32 bytes) no longer fits in the 17 left...
    assert_eq!(
        b.add_subtree("x", PhysAddr::new(DATA), None),
        Err(Error::TooLarge {
            size: 4111,
            max: 4096
        })
    );
    // ...until one is removed, as upstream's in-place edits would allow.
    assert!(b.remove_subtree("client-97"));
    b.add_subtree("x", PhysAddr::new(DATA), None).unwrap();
    assert_eq!(b.build().unwrap().len(), 4079 - 40 + 32);
}

#[test]
fn v3_profile_with_blob_size() {
    let mut b = builder(AbiVersion::V3);
    b.add_subtree("memblock", PhysAddr::new(DATA), Some(4096))
        .unwrap();
    b.add_subtree("kexec-metadata", PhysAddr::new(0x4124_7000), Some(73))
        .unwrap();
    let blob = b.build().unwrap();
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V3);
    let got: Vec<_> = fdt
        .subtrees()
        .map(|s| (s.name(), s.data().as_u64(), s.size()))
        .collect();
    assert_eq!(
        got,
        [
            ("memblock", DATA, Some(4096)),
            ("kexec-metadata", 0x4124_7000, Some(73))
        ]
    );
}

/// kho-v4 (Linux 7.2) reads and writes like kho-v3; only the string differs.
#[test]
fn v4_round_trip_and_relabel() {
    let mut b = builder(AbiVersion::V4);
    assert_eq!(
        b.add_subtree("memblock", PhysAddr::new(DATA), None),
        Err(Error::BlobSizeRequired {
            name: "memblock".into(),
            version: AbiVersion::V4
        })
    );
    b.add_subtree("memblock", PhysAddr::new(DATA), Some(0xca))
        .unwrap();
    b.add_subtree("kexec-metadata", PhysAddr::new(0x4124_7000), Some(73))
        .unwrap();
    let blob = b.build().unwrap();
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V4);
    assert_eq!(fdt.subtree("memblock").unwrap().size(), Some(0xca));
    // The kho-v3 builder with the same children differs in one byte only.
    let mut v3 = builder(AbiVersion::V3);
    v3.add_subtree("memblock", PhysAddr::new(DATA), Some(0xca))
        .unwrap();
    v3.add_subtree("kexec-metadata", PhysAddr::new(0x4124_7000), Some(73))
        .unwrap();
    let v3 = v3.build().unwrap();
    assert_eq!(v3.len(), blob.len());
    let diff: Vec<_> = (0..blob.len()).filter(|&i| blob[i] != v3[i]).collect();
    let at = blob.windows(7).position(|w| w == b"kho-v4\0").unwrap();
    assert_eq!(diff, [at + 5]);
}

#[test]
fn v2_blob_size_revision() {
    let mut b = builder(AbiVersion::V2);
    b.add_subtree("memblock", PhysAddr::new(DATA), Some(4096))
        .unwrap();
    b.add_subtree("kho_test", PhysAddr::new(0x4124_6000), None)
        .unwrap();
    let blob = b.build().unwrap();
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V2);
    assert_eq!(fdt.subtree("memblock").unwrap().size(), Some(4096));
    assert_eq!(fdt.subtree("kho_test").unwrap().size(), None);
    // The same blob re-labelled kho-v3 is refused: kho_test lacks blob-size.
    let mut v3 = blob.clone();
    let at = v3.windows(7).position(|w| w == b"kho-v2\0").unwrap();
    v3[at + 5] = b'3';
    assert!(matches!(
        KhoFdt::parse(&v3),
        Err(Error::MissingBlobSize { ref node, version: AbiVersion::V3, .. }) if node == "kho_test"
    ));
    // And so is it re-labelled kho-v4.
    v3[at + 5] = b'4';
    assert!(matches!(
        KhoFdt::parse(&v3),
        Err(Error::MissingBlobSize { ref node, version: AbiVersion::V4, .. }) if node == "kho_test"
    ));
}

#[test]
fn parse_accepts_a_longer_slice() {
    let blob = builder(AbiVersion::V2).build().unwrap();
    let mut page = blob.clone();
    page.resize(4096, 0xaa);
    let fdt = KhoFdt::parse(&page).unwrap();
    assert_eq!(fdt.total_size(), blob.len());
    assert_eq!(fdt.as_bytes(), &blob[..]);
}

#[test]
fn remove_and_rebuild() {
    let mut b = builder(AbiVersion::V2);
    b.add_subtree("a", PhysAddr::new(0x1000), None).unwrap();
    b.add_subtree("b", PhysAddr::new(0x2000), None).unwrap();
    b.add_subtree("c", PhysAddr::new(0x2000), None).unwrap();
    assert!(b.remove_subtree_by_data(PhysAddr::new(0x2000)));
    assert!(
        !b.remove_subtree("b"),
        "the first child with that data went"
    );
    assert!(b.remove_subtree("a"));
    assert!(!b.remove_subtree_by_data(PhysAddr::new(0x3000)));
    let blob = b.build().unwrap();
    let names: Vec<_> = KhoFdt::parse(&blob)
        .unwrap()
        .subtrees()
        .map(|s| s.name().to_string())
        .collect();
    assert_eq!(names, ["c"]);
    // A removed name can be added again.
    b.add_subtree("a", PhysAddr::new(0x1000), None).unwrap();
    assert_eq!(b.len(), 2);
}

// --- builder errors -------------------------------------------------------

#[test]
fn builder_errors() {
    let mut b = builder(AbiVersion::V3);
    let data = PhysAddr::new(DATA);
    assert_eq!(
        b.add_subtree("bad@1", data, Some(1)),
        Err(Error::InvalidNodeName {
            name: "bad@1".into()
        })
    );
    assert_eq!(
        b.add_subtree("", data, Some(1)),
        Err(Error::InvalidNodeName { name: "".into() })
    );
    assert_eq!(
        b.add_subtree("memblock", data, None),
        Err(Error::BlobSizeRequired {
            name: "memblock".into(),
            version: AbiVersion::V3
        })
    );
    assert_eq!(
        b.add_subtree("memblock", PhysAddr::ZERO, Some(1)),
        Err(Error::ZeroSubtreeData {
            name: "memblock".into()
        })
    );
    b.add_subtree("memblock", data, Some(1)).unwrap();
    assert_eq!(
        b.add_subtree("memblock", data, Some(1)),
        Err(Error::DuplicateSubtree {
            name: "memblock".into(),
            offset: None
        })
    );
    assert_eq!(b.len(), 1);

    for addr in [0, 0x4123_4008] {
        assert_eq!(
            KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(addr)).build(),
            Err(Error::InvalidMemoryMap {
                addr: PhysAddr::new(addr)
            })
        );
    }
}

// --- parse errors ---------------------------------------------------------

const V2: &[u8] = b"kho-v2\0";
const V3: &[u8] = b"kho-v3\0";

fn kho_v2(children: &[Child<'_>]) -> Vec<u8> {
    raw_fdt(
        &[("compatible", V2), ("preserved-memory-map", &le(MAP))],
        children,
    )
}

#[test]
fn truncated_blob() {
    let blob = builder(AbiVersion::V2).build().unwrap();
    assert_eq!(
        KhoFdt::parse(&[]),
        Err(Error::Truncated { len: 0, needed: 4 })
    );
    assert_eq!(
        KhoFdt::parse(&blob[..20]),
        Err(Error::Truncated {
            len: 20,
            needed: 40
        })
    );
    assert_eq!(
        KhoFdt::parse(&blob[..blob.len() - 1]),
        Err(Error::ExceedsBlob {
            totalsize: 144,
            len: 143
        })
    );
}

#[test]
fn bad_magic() {
    let mut blob = builder(AbiVersion::V2).build().unwrap();
    blob[0] = 0xde;
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::BadMagic { found: 0xde0d_feed })
    );
}

#[test]
fn wrong_compatible() {
    let blob = raw_fdt(
        &[
            ("compatible", b"kho-v9\0"),
            ("preserved-memory-map", &le(MAP)),
        ],
        &[],
    );
    // compatible's value follows the root token (56), its name (60) and the
    // property header (64..76).
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::UnknownCompatible {
            compatible: "kho-v9".into(),
            offset: 76
        })
    );
    let blob = raw_fdt(&[("compatible", b"linux,dummy-virt\0")], &[]);
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::UnknownCompatible { ref compatible, .. }) if compatible == "linux,dummy-virt"
    ));
}

const V1: &[u8] = b"kho-v1\0";

fn kho_v1(map: u64, children: &[Child<'_>]) -> Vec<u8> {
    raw_fdt(
        &[("compatible", V1), ("preserved-memory-map", &le(map))],
        children,
    )
}

/// kho-v1 (Linux 6.16 - 6.19): children carry `fdt`, the map may be 0
/// (nothing preserved), and a child's `blob-size` or `preserved-data`
/// (later versions' properties) mean nothing.
#[test]
fn kho_v1_round_trip() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V1, PhysAddr::ZERO);
    b.add_subtree("memblock", PhysAddr::new(DATA), None)
        .unwrap();
    b.add_subtree("kho_test", PhysAddr::new(DATA + 0x1000), None)
        .unwrap();
    let blob = b.build().unwrap();
    assert_eq!(blob.len(), b.serialized_size());
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V1);
    assert_eq!(fdt.memory_map(), PhysAddr::ZERO);
    let got: Vec<_> = fdt
        .subtrees()
        .map(|s| (s.name(), s.data(), s.size()))
        .collect();
    assert_eq!(
        got,
        [
            ("memblock", PhysAddr::new(DATA), None),
            ("kho_test", PhysAddr::new(DATA + 0x1000), None)
        ]
    );
    // The bytes say `fdt`, never `preserved-data`.
    let text = fdt.render();
    assert!(
        text.contains("\t\tfdt = le64:0x0000000041245000;"),
        "{text}"
    );
    assert!(!text.contains("preserved-data"), "{text}");
    // Set at finalize in the engine: the map of a written chunk list.
    b.set_memory_map(PhysAddr::new(MAP));
    let blob = b.build().unwrap();
    assert_eq!(
        KhoFdt::parse(&blob).unwrap().memory_map(),
        PhysAddr::new(MAP)
    );

    // Hand-built as Linux 6.16 lays it out; only `fdt` counts.
    let blob = kho_v1(
        MAP,
        &[(
            "memblock",
            &[
                ("blob-size", &[1, 2, 3]),
                ("preserved-data", &le(0)),
                ("fdt", &le(DATA)),
            ],
        )],
    );
    let fdt = KhoFdt::parse(&blob).unwrap();
    let s = fdt.subtree("memblock").unwrap();
    assert_eq!((s.data(), s.size()), (PhysAddr::new(DATA), None));
    // A string list naming kho-v1 is kho-v1.
    let blob = raw_fdt(
        &[
            ("compatible", b"vendor,kho\0kho-v1\0"),
            ("preserved-memory-map", &le(0)),
        ],
        &[],
    );
    assert_eq!(KhoFdt::parse(&blob).unwrap().version(), AbiVersion::V1);
}

/// Every kho-v1 child defect is a named error, and the lenient parse
/// drops only that child.
#[test]
fn kho_v1_child_errors() {
    let good: Child<'_> = ("kho_test", &[("fdt", &le(DATA + 0x1000))]);
    // The child follows the root's properties at 104; "memblock" takes 12
    // bytes, so its first property value is at 104 + 4 + 12 + 12.
    let want = |i: usize| match i {
        0 => Error::MissingV1Fdt {
            node: "memblock".into(),
            offset: 104,
        },
        1 => Error::BadV1FdtLength {
            node: "memblock".into(),
            len: 4,
            offset: 132,
        },
        2 => Error::ZeroV1Fdt {
            node: "memblock".into(),
            offset: 132,
        },
        3 => Error::DuplicateSubtree {
            name: "memblock".into(),
            offset: Some(144),
        },
        _ => Error::MisalignedMemoryMap {
            addr: PhysAddr::new(MAP + 8),
            offset: 96,
        },
    };
    let blobs = [
        kho_v1(MAP, &[("memblock", &[("preserved-data", &le(DATA))]), good]),
        kho_v1(
            MAP,
            &[("memblock", &[("fdt", &[0, 0x50, 0x24, 0x41])]), good],
        ),
        kho_v1(MAP, &[("memblock", &[("fdt", &le(0))]), good]),
        kho_v1(
            MAP,
            &[
                ("memblock", &[("fdt", &le(DATA))]),
                ("memblock", &[("fdt", &le(DATA + 0x2000))]),
                good,
            ],
        ),
        kho_v1(MAP + 8, &[good]),
    ];
    for (i, blob) in blobs.iter().enumerate() {
        assert_eq!(KhoFdt::parse(blob), Err(want(i)), "case {i}");
        if i == 4 {
            // A root defect refuses the whole FDT, lenient or not.
            assert_eq!(KhoFdt::parse_lenient(blob), Err(want(i)));
            continue;
        }
        let fdt = KhoFdt::parse_lenient(blob).unwrap();
        let kept: Vec<_> = fdt.subtrees().map(|s| s.name()).collect();
        let want_kept: &[&str] = if i == 3 {
            &["memblock", "kho_test"]
        } else {
            &["kho_test"]
        };
        assert_eq!(kept, want_kept, "case {i}");
        let rejected: Vec<_> = fdt.rejected().collect();
        assert_eq!(rejected, [("memblock", &want(i))], "case {i}");
    }
    let blob = kho_v1(MAP, &[("memblock", &[("fdt", &le(0))])]);
    assert_eq!(
        KhoFdt::parse(&blob).unwrap_err().to_string(),
        "fdt of kho-v1 KHO subtree \"memblock\" at offset 0x84 is zero"
    );
}

/// The builder refuses what a kho-v1 FDT cannot say.
#[test]
fn kho_v1_builder_errors() {
    let mut b = KhoFdtBuilder::new(AbiVersion::V1, PhysAddr::new(MAP));
    assert_eq!(
        b.add_subtree("memblock", PhysAddr::new(DATA), Some(4096)),
        Err(Error::BlobSizeNotInVersion {
            name: "memblock".into(),
            version: AbiVersion::V1
        })
    );
    assert!(b.is_empty());
    assert_eq!(
        b.add_subtree("memblock", PhysAddr::ZERO, None),
        Err(Error::ZeroSubtreeData {
            name: "memblock".into()
        })
    );
    let b = KhoFdtBuilder::new(AbiVersion::V1, PhysAddr::new(MAP + 8));
    assert_eq!(
        b.build(),
        Err(Error::InvalidMemoryMap {
            addr: PhysAddr::new(MAP + 8)
        })
    );
    // A zero map stays an error after kho-v1.
    let b = KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::ZERO);
    assert_eq!(
        b.build(),
        Err(Error::InvalidMemoryMap {
            addr: PhysAddr::ZERO
        })
    );
    // Filling the page: `fdt` is 11 bytes shorter than `preserved-data` in
    // the strings block only, so kho-v1 holds as many 40-byte children.
    let mut b = KhoFdtBuilder::new(AbiVersion::V1, PhysAddr::new(MAP));
    let (count, next) = fill(&mut b);
    assert_eq!(count, 98);
    assert!(matches!(next, Error::TooLarge { .. }));
    assert_eq!(b.build().unwrap().len(), b.serialized_size());
}

#[test]
fn missing_compatible() {
    let blob = raw_fdt(&[("preserved-memory-map", &le(MAP))], &[]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MissingCompatible { offset: 56 })
    );
}

#[test]
fn memory_map_errors() {
    let blob = raw_fdt(
        &[
            ("compatible", V2),
            ("preserved-memory-map", &0x4123_4000u32.to_be_bytes()),
        ],
        &[],
    );
    // Value after compatible (76..84) and the map's property header (84..96).
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::BadMemoryMapLength { len: 4, offset: 96 })
    );

    let blob = raw_fdt(&[("compatible", V2)], &[]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MissingMemoryMap { offset: 56 })
    );

    let blob = raw_fdt(&[("compatible", V2), ("preserved-memory-map", &le(0))], &[]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::ZeroMemoryMap { offset: 96 })
    );

    let blob = raw_fdt(
        &[("compatible", V2), ("preserved-memory-map", &le(MAP + 8))],
        &[],
    );
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MisalignedMemoryMap {
            addr: PhysAddr::new(MAP + 8),
            offset: 96
        })
    );
}

#[test]
fn child_errors() {
    // The child node follows the root's properties at 104; its name "memblock"
    // takes 12 bytes, so its first property value is at 104 + 4 + 12 + 12.
    let blob = kho_v2(&[("memblock", &[])]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MissingPreservedData {
            node: "memblock".into(),
            offset: 104
        })
    );
    let blob = kho_v2(&[("memblock", &[("blob-size", &le(4096))])]);
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::MissingPreservedData { .. })
    ));

    let blob = kho_v2(&[("memblock", &[("preserved-data", &[0, 0x50, 0x24, 0x41])])]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::BadPreservedDataLength {
            node: "memblock".into(),
            len: 4,
            offset: 132
        })
    );
    let blob = kho_v2(&[("memblock", &[("preserved-data", &le(0))])]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::ZeroPreservedData {
            node: "memblock".into(),
            offset: 132
        })
    );
    let blob = kho_v2(&[(
        "memblock",
        &[("preserved-data", &le(DATA)), ("blob-size", &[1, 0, 0, 0])],
    )]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::BadBlobSizeLength {
            node: "memblock".into(),
            len: 4,
            offset: 152
        })
    );
    let blob = kho_v2(&[
        ("memblock", &[("preserved-data", &le(DATA))]),
        ("memblock", &[("preserved-data", &le(DATA + 0x1000))]),
    ]);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::DuplicateSubtree {
            name: "memblock".into(),
            offset: Some(144)
        })
    );
}

#[test]
fn v3_child_without_blob_size() {
    let blob = raw_fdt(
        &[("compatible", V3), ("preserved-memory-map", &le(MAP))],
        &[("memblock", &[("preserved-data", &le(DATA))])],
    );
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MissingBlobSize {
            node: "memblock".into(),
            version: AbiVersion::V3,
            offset: 104
        })
    );
}

#[test]
fn unknown_properties_and_grandchildren_are_ignored() {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property("compatible", V2).unwrap();
    w.property("preserved-memory-map", &le(MAP)).unwrap();
    w.property("vendor,extra", b"x\0").unwrap();
    let child = w.begin_node("memblock").unwrap();
    w.property("preserved-data", &le(DATA)).unwrap();
    let grandchild = w.begin_node("nested").unwrap();
    w.end_node(grandchild).unwrap();
    w.end_node(child).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let fdt = KhoFdt::parse(&blob).unwrap();
    assert_eq!(
        fdt.subtrees().map(|s| s.name()).collect::<Vec<_>>(),
        ["memblock"]
    );
}

#[test]
fn over_one_page() {
    let children: Vec<(String, [u8; 8])> = (0..100)
        .map(|i| (format!("client-{i:02}"), le(DATA + i * 0x1000)))
        .collect();
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property("compatible", V2).unwrap();
    w.property("preserved-memory-map", &le(MAP)).unwrap();
    for (name, data) in &children {
        let n = w.begin_node(name).unwrap();
        w.property("preserved-data", data).unwrap();
        w.end_node(n).unwrap();
    }
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    assert_eq!(blob.len(), 4159);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::TotalSizeTooLarge {
            totalsize: 4159,
            max: 4096
        })
    );
    // render_blob has no page limit.
    assert!(kho_fdt::render_blob(&blob).is_ok());
}

#[test]
fn totalsize_larger_than_slice() {
    let mut blob = builder(AbiVersion::V2).build().unwrap();
    set_header_word(&mut blob, 4, 4096);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::ExceedsBlob {
            totalsize: 4096,
            len: 144
        })
    );
}

#[test]
fn block_offsets_out_of_range() {
    let good = builder(AbiVersion::V2).build().unwrap();
    let mut blob = good.clone();
    set_header_word(&mut blob, 8, 0x1_0000); // off_dt_struct
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::BlockOutOfBounds {
            block: Block::Structure,
            offset: 0x1_0000,
            size: 56,
            totalsize: 144
        })
    );
    let mut blob = good.clone();
    set_header_word(&mut blob, 0x24, u32::MAX); // size_dt_struct
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::BlockOutOfBounds {
            block: Block::Structure,
            size: u32::MAX,
            ..
        })
    ));
    let mut blob = good.clone();
    set_header_word(&mut blob, 8, 8); // struct block inside the header
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::BlockOutOfBounds {
            block: Block::Structure,
            offset: 8,
            ..
        })
    ));
    let mut blob = good.clone();
    set_header_word(&mut blob, 8, 58); // misaligned
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MisalignedBlock {
            block: Block::Structure,
            offset: 58,
            align: 4
        })
    );
    let mut blob = good.clone();
    set_header_word(&mut blob, 0xc, 140); // strings block past totalsize
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::BlockOutOfBounds {
            block: Block::Strings,
            offset: 140,
            size: 32,
            totalsize: 144
        })
    ));
    let mut blob = good.clone();
    set_header_word(&mut blob, 0x14, 16);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::UnsupportedHeaderVersion {
            version: 16,
            last_comp_version: 16
        })
    );
}

#[test]
fn malformed_structure() {
    let good = builder(AbiVersion::V2).build().unwrap();
    // An unknown token where the root's first property starts.
    let mut blob = good.clone();
    set_header_word(&mut blob, 64, 7);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MalformedStructure {
            offset: 64,
            reason: Malformed::UnknownToken(7)
        })
    );
    // FDT_END_NODE in place of FDT_END: the root closes twice.
    let mut blob = good.clone();
    set_header_word(&mut blob, 108, 2);
    assert_eq!(
        KhoFdt::parse(&blob),
        Err(Error::MalformedStructure {
            offset: 108,
            reason: Malformed::AfterRoot(2)
        })
    );
}

#[test]
fn too_deep() {
    // Hand-written: vm-fdt refuses to nest deeper than the limit itself.
    let depth = kho_fdt::MAX_DEPTH + 1;
    let mut s = Vec::new();
    for i in 0..depth {
        s.extend_from_slice(&1u32.to_be_bytes());
        s.extend_from_slice(if i == 0 { &[0, 0, 0, 0] } else { b"n\0\0\0" });
    }
    for _ in 0..depth {
        s.extend_from_slice(&2u32.to_be_bytes());
    }
    s.extend_from_slice(&9u32.to_be_bytes());
    let mut blob = vec![0u8; 56];
    blob.extend_from_slice(&s);
    blob.push(0); // a one-byte strings block
    for (at, v) in [
        (0, 0xd00d_feed),
        (4, blob.len() as u32),
        (8, 56),
        (12, 56 + s.len() as u32),
        (16, 40),
        (20, 17),
        (24, 16),
        (32, 1),
        (36, s.len() as u32),
    ] {
        set_header_word(&mut blob, at, v);
    }
    let deepest = 56 + (depth - 1) * 8;
    assert_eq!(
        kho_fdt::render_blob(&blob),
        Err(Error::MalformedStructure {
            offset: deepest,
            reason: Malformed::TooDeep
        })
    );
}

/// `parse_lenient` reads a handover as Linux does: a malformed child only
/// loses itself (listed with the error the strict parse would give), a
/// duplicate name keeps the first child, and root-level defects still
/// refuse the whole FDT.
#[test]
fn lenient_parse_drops_malformed_children_only() {
    use kho_fdt::Error;
    let le = |v: u64| v.to_le_bytes().to_vec();
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    w.property_string("compatible", "kho-v2").unwrap();
    w.property("preserved-memory-map", &le(0x4100_0000))
        .unwrap();
    for (name, data, size) in [
        ("good", Some(le(0x4123_4000)), None),
        ("zero", Some(le(0)), None),
        ("short", Some(vec![1, 2, 3, 4]), None),
        ("missing", None, None),
        ("badsize", Some(le(0x4200_0000)), Some(vec![1u8; 3])),
        ("good", Some(le(0x4300_0000)), None),
    ] {
        let c = w.begin_node(name).unwrap();
        if let Some(d) = data {
            w.property("preserved-data", &d).unwrap();
        }
        if let Some(s) = size {
            w.property("blob-size", &s).unwrap();
        }
        w.end_node(c).unwrap();
    }
    w.end_node(r).unwrap();
    let blob = w.finish().unwrap();

    let strict = KhoFdt::parse(&blob).unwrap_err();
    assert!(
        matches!(strict, Error::ZeroPreservedData { .. }),
        "{strict}"
    );
    let fdt = KhoFdt::parse_lenient(&blob).unwrap();
    let kept: Vec<_> = fdt
        .subtrees()
        .map(|s| (s.name(), s.data().as_u64()))
        .collect();
    assert_eq!(kept, [("good", 0x4123_4000)]);
    let rejected: Vec<_> = fdt.rejected().map(|(n, _)| n).collect();
    assert_eq!(rejected, ["zero", "short", "missing", "badsize", "good"]);
    let kinds: Vec<bool> = fdt
        .rejected()
        .map(|(_, e)| {
            matches!(
                e,
                Error::ZeroPreservedData { .. }
                    | Error::BadPreservedDataLength { .. }
                    | Error::MissingPreservedData { .. }
                    | Error::BadBlobSizeLength { .. }
                    | Error::DuplicateSubtree { .. }
            )
        })
        .collect();
    assert!(kinds.iter().all(|&k| k), "{kinds:?}");
    // A strict parse of a clean FDT rejects nothing.
    let clean = valid_blob_for_lenient();
    assert_eq!(KhoFdt::parse(&clean).unwrap().rejected().len(), 0);
    // Root-level defects refuse the whole FDT either way.
    assert!(KhoFdt::parse_lenient(&blob[..40]).is_err());
}

fn valid_blob_for_lenient() -> Vec<u8> {
    let mut b =
        kho_fdt::KhoFdtBuilder::new(kho_abi::AbiVersion::V2, kho_mem::PhysAddr::new(0x4100_0000));
    b.add_subtree("memblock", kho_mem::PhysAddr::new(0x4123_4000), None)
        .unwrap();
    b.build().unwrap()
}
