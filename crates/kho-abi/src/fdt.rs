//! Names in the root KHO FDT: compatible strings, property names, limits.

/// Root `compatible` of the radix-tree format (`KHO_FDT_COMPATIBLE`).
pub const COMPATIBLE_V2: &str = "kho-v2";
/// Root `compatible` of the revision where every child carries `blob-size`.
pub const COMPATIBLE_V3: &str = "kho-v3";
/// Root `compatible` Linux 7.2 writes (`KHO_FDT_COMPATIBLE` in
/// `include/linux/kho/abi/kexec_handover.h`, whose doc comment still says
/// "kho-v3"): the root FDT as in kho-v3, bumped for LUO's serialization
/// blocks ([`crate::block`]).
pub const COMPATIBLE_V4: &str = "kho-v4";
/// Root `compatible` of the serialized-bitmap format of Linux 6.16 – 6.19
/// (`KHO_FDT_COMPATIBLE` in `kernel/kexec_handover.c` of 6.16).
pub const COMPATIBLE_V1: &str = "kho-v1";

/// Root property: native u64 phys of the radix-tree root page
/// (`KHO_FDT_MEMORY_MAP_PROP_NAME`).
pub const PROP_PRESERVED_MEMORY_MAP: &str = "preserved-memory-map";
/// Child property: native u64 phys of the client blob
/// (`KHO_FDT_SUB_TREE_PROP_NAME`).
pub const PROP_PRESERVED_DATA: &str = "preserved-data";
/// Child property (blob-size revision, kho-v3, kho-v4): native u64 blob
/// length (`KHO_SUB_TREE_SIZE_PROP_NAME`). Linux 7.2 writes it *before*
/// `preserved-data` (libfdt inserts each new property first), so readers
/// must not depend on property order.
pub const PROP_BLOB_SIZE: &str = "blob-size";
/// The kho-v1 child property that `preserved-data` replaced: native u64
/// phys of a client sub-FDT (`PROP_SUB_FDT`), whose size is its own
/// header's `totalsize`.
pub const PROP_V1_FDT: &str = "fdt";
/// The standard `compatible` property name.
pub const PROP_COMPATIBLE: &str = "compatible";

/// Length in bytes of every KHO u64 property value.
pub const U64_PROP_LEN: usize = 8;

/// The root KHO FDT lives in exactly one preserved page and must fit in it.
pub const MAX_FDT_SIZE: usize = crate::PAGE_SIZE;

/// FDT header magic (big-endian in the blob, as in every DTB).
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Header version libfdt's sequential writer emits.
pub const FDT_VERSION: u32 = 17;
/// Oldest version a version-17 blob is backwards compatible with.
pub const FDT_LAST_COMP_VERSION: u32 = 16;
/// Size of the version-17 FDT header.
pub const FDT_HEADER_SIZE: usize = 40;
