//! The dtc-compiled fixtures in `tests/dtb` (sources and recipe in `tests/dts`).

use kho_abi::AbiVersion;
use kho_fdt::{Error, KhoFdt};
use kho_mem::PhysAddr;

const KHO_V1_LINUX: &[u8] = include_bytes!("dtb/kho-v1-linux-6.16.dtb");
const KHO_V2_BASIC: &[u8] = include_bytes!("dtb/kho-v2-basic.dtb");
const KHO_V3_BLOB_SIZE: &[u8] = include_bytes!("dtb/kho-v3-blob-size.dtb");
const KHO_V4_LINUX_ORDER: &[u8] = include_bytes!("dtb/kho-v4-linux-order.dtb");
const KHO_V2_CELL_MAP: &[u8] = include_bytes!("dtb/kho-v2-cell-map.dtb");
const MEMBLOCK_V1: &[u8] = include_bytes!("dtb/memblock-v1.dtb");

fn subtrees<'a>(fdt: &KhoFdt<'a>) -> Vec<(&'a str, u64, Option<u64>)> {
    fdt.subtrees()
        .map(|s| (s.name(), s.data().as_u64(), s.size()))
        .collect()
}

#[test]
fn kho_v1_linux() {
    let fdt = KhoFdt::parse(KHO_V1_LINUX).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V1);
    assert_eq!(fdt.memory_map(), PhysAddr::new(0x4123_4000));
    assert_eq!(fdt.total_size(), KHO_V1_LINUX.len());
    assert_eq!(
        subtrees(&fdt),
        [
            ("memblock", 0x4124_5000, None),
            ("kho_test", 0x4124_6000, None)
        ]
    );
}

#[test]
fn kho_v2_basic() {
    let fdt = KhoFdt::parse(KHO_V2_BASIC).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V2);
    assert_eq!(fdt.memory_map(), PhysAddr::new(0x4123_4000));
    assert_eq!(fdt.total_size(), KHO_V2_BASIC.len());
    assert_eq!(
        subtrees(&fdt),
        [
            ("memblock", 0x4124_5000, None),
            ("kho_test", 0x4124_6000, None)
        ]
    );
}

#[test]
fn kho_v3_blob_size() {
    let fdt = KhoFdt::parse(KHO_V3_BLOB_SIZE).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V3);
    assert_eq!(fdt.memory_map(), PhysAddr::new(0x4123_4000));
    assert_eq!(
        subtrees(&fdt),
        [
            ("kexec-metadata", 0x4124_7000, Some(73)),
            ("memblock", 0x4124_5000, Some(4096))
        ]
    );
}

/// Linux 7.2 writes `blob-size` before `preserved-data` in every child; the
/// reader must not care.
#[test]
fn kho_v4_in_linux_property_order() {
    let fdt = KhoFdt::parse(KHO_V4_LINUX_ORDER).unwrap();
    assert_eq!(fdt.version(), AbiVersion::V4);
    assert_eq!(fdt.memory_map(), PhysAddr::new(0x4123_4000));
    assert_eq!(fdt.total_size(), KHO_V4_LINUX_ORDER.len());
    assert_eq!(
        subtrees(&fdt),
        [
            ("memblock", 0x4124_5000, Some(0xca)),
            ("kho_test", 0x4124_6000, Some(0x100)),
            ("kexec-metadata", 0x4124_7000, Some(73))
        ]
    );
    // The fixture really has the Linux order: blob-size's value comes first.
    let memblock = fdt.subtree("memblock").unwrap().offset();
    let body = &KHO_V4_LINUX_ORDER[memblock..];
    let at = |v: &[u8]| body.windows(v.len()).position(|w| w == v).unwrap();
    assert!(at(&0xcau64.to_le_bytes()) < at(&0x4124_5000u64.to_le_bytes()));
    // Renders the same as our own builder's layout of the same tree.
    let mut b = kho_fdt::KhoFdtBuilder::new(AbiVersion::V4, PhysAddr::new(0x4123_4000));
    for (name, data, size) in subtrees(&fdt) {
        b.add_subtree(name, PhysAddr::new(data), size).unwrap();
    }
    let body = |t: String| t.split_once("/dts-v1/;").unwrap().1.to_string();
    assert_eq!(
        body(kho_fdt::render(&b.build().unwrap()).unwrap()),
        body(kho_fdt::render(KHO_V4_LINUX_ORDER).unwrap())
    );
}

/// Without `blob-size` a kho-v4 child is refused, as Linux's
/// `kho_retrieve_subtree` refuses it.
#[test]
fn kho_v4_child_without_blob_size_is_refused() {
    let mut blob = KHO_V4_LINUX_ORDER.to_vec();
    // Rename the first `blob-size` property's name offset to a string that
    // is not `blob-size` ("preserved-data" is already taken, so use the
    // root's "compatible": the child then has an unknown property).
    let fdt = KhoFdt::parse(KHO_V4_LINUX_ORDER).unwrap();
    let node = fdt.subtree("memblock").unwrap().offset();
    // FDT_BEGIN_NODE, "memblock\0" padded to 12, then FDT_PROP, len, nameoff.
    let nameoff = node + 4 + 12 + 8;
    blob[nameoff..nameoff + 4].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        KhoFdt::parse(&blob),
        Err(Error::MissingBlobSize { ref node, version: AbiVersion::V4, .. }) if node == "memblock"
    ));
}

#[test]
fn kho_v2_cell_map_is_refused() {
    let err = KhoFdt::parse(KHO_V2_CELL_MAP).unwrap_err();
    assert!(
        matches!(err, Error::BadMemoryMapLength { len: 4, .. }),
        "{err:?}"
    );
    // The offset points at the 4-byte value, which holds the big-endian cell.
    let Error::BadMemoryMapLength { offset, .. } = err else {
        unreachable!()
    };
    assert_eq!(
        &KHO_V2_CELL_MAP[offset..offset + 4],
        &0x4123_4000u32.to_be_bytes()
    );
    assert!(kho_fdt::render(KHO_V2_CELL_MAP).is_err());
    // As a plain FDT it is fine, and renders as bytes.
    let text = kho_fdt::render_blob(KHO_V2_CELL_MAP).unwrap();
    assert!(
        text.contains("preserved-memory-map = [41 23 40 00];"),
        "{text}"
    );
}

#[test]
fn memblock_sub_blob_is_not_a_kho_root() {
    assert!(matches!(
        KhoFdt::parse(MEMBLOCK_V1),
        Err(Error::UnknownCompatible { ref compatible, .. }) if compatible == "memblock-v1"
    ));
    let text = kho_fdt::render_blob(MEMBLOCK_V1).unwrap();
    assert!(text.contains("start = le64:0x000000007f000000;"), "{text}");
    assert!(text.contains("size = le64:0x0000000000100000;"), "{text}");
}

/// The builder and dtc agree on the tree: both render the same.
#[test]
fn builder_matches_dtc_fixture() {
    let mut b = kho_fdt::KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x4123_4000));
    b.add_subtree("memblock", PhysAddr::new(0x4124_5000), None)
        .unwrap();
    b.add_subtree("kho_test", PhysAddr::new(0x4124_6000), None)
        .unwrap();
    let ours = b.build().unwrap();
    let body = |t: String| t.split_once("/dts-v1/;").unwrap().1.to_string();
    assert_eq!(
        body(kho_fdt::render(&ours).unwrap()),
        body(kho_fdt::render(KHO_V2_BASIC).unwrap())
    );
}
