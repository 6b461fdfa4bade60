//! ABI versions of the root KHO FDT and how to recognise them.

use crate::fdt;

/// A revision of the KHO handover format, named by its root `compatible`.
///
/// | variant | compatible | `preserved-memory-map` | child blob | per-child `blob-size` |
/// |---|---|---|---|---|
/// | [`AbiVersion::V1`] | `"kho-v1"` | first chunk of the serialized bitmaps ([`crate::v1`]), 0 when empty | `fdt`: a sub-FDT, sized by its own header | none |
/// | [`AbiVersion::V2`] | `"kho-v2"` | radix root ([`crate::radix`]) | `preserved-data` | optional (absent in the original kho-v2, present in the later blob-size revision that kept the string) |
/// | [`AbiVersion::V3`] | `"kho-v3"` | radix root | `preserved-data` | required |
/// | [`AbiVersion::V4`] | `"kho-v4"` | radix root | `preserved-data` | required (Linux 7.2 writes it before `preserved-data`) |
///
/// kho-v4 changed nothing in the root FDT, the radix tree, vmalloc, scratch
/// or the sub-blobs this crate describes: upstream bumped the string because
/// it added the LUO serialization-block format ([`crate::block`]), which
/// its ABI contract ties to the root compatible. [`AbiVersion::NEWEST`] (also
/// the [`Default`]) is the version current Linux writes.
///
/// kho-v1 (Linux 6.16–6.19) differs from every later version in more than
/// the string: its memory map is a list of serialized bitmaps written at
/// *finalize* ([`AbiVersion::has_finalize`]), its children name client
/// FDTs with `fdt` ([`AbiVersion::subtree_data_property`]) and carry no
/// `blob-size` ([`AbiVersion::allows_blob_size`]), so the blob-size
/// revision's `kexec-metadata` subtree (a packed struct, not an FDT) and
/// kho-v4's LUO serialization blocks do not exist in it
/// ([`AbiVersion::has_kexec_metadata`], [`AbiVersion::has_blocks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum AbiVersion {
    /// `kho-v1` (Linux 6.16 – 6.19): serialized per-order bitmaps
    /// ([`crate::v1`]) published at finalize, children with `fdt`.
    V1,
    /// `kho-v2`: radix-tree preserved-memory map, children with `preserved-data`.
    V2,
    /// `kho-v3`: as kho-v2, and every child must carry an 8-byte `blob-size`.
    V3,
    /// `kho-v4` (Linux 7.2): the root FDT as in kho-v3; the version also
    /// covers LUO's serialization blocks ([`crate::block`]).
    #[default]
    V4,
}

impl AbiVersion {
    /// Every version this crate describes, oldest first.
    pub const ALL: [AbiVersion; 4] = [
        AbiVersion::V1,
        AbiVersion::V2,
        AbiVersion::V3,
        AbiVersion::V4,
    ];

    /// The newest version this crate describes: the one Linux 7.2 writes.
    pub const NEWEST: AbiVersion = AbiVersion::V4;

    /// The root `compatible` string of this version (without the NUL).
    pub const fn compatible(self) -> &'static str {
        match self {
            AbiVersion::V1 => fdt::COMPATIBLE_V1,
            AbiVersion::V2 => fdt::COMPATIBLE_V2,
            AbiVersion::V3 => fdt::COMPATIBLE_V3,
            AbiVersion::V4 => fdt::COMPATIBLE_V4,
        }
    }

    /// Whether each child node must carry `blob-size`.
    pub const fn requires_blob_size(self) -> bool {
        matches!(self, AbiVersion::V3 | AbiVersion::V4)
    }

    /// Whether a child node may carry `blob-size` at all: not in kho-v1,
    /// whose children are FDTs sized by their own header's `totalsize`.
    pub const fn allows_blob_size(self) -> bool {
        !matches!(self, AbiVersion::V1)
    }

    /// The child property holding the blob's physical address: `fdt` in
    /// kho-v1 ([`fdt::PROP_V1_FDT`]), `preserved-data` since kho-v2
    /// ([`fdt::PROP_PRESERVED_DATA`], renamed because blobs need not be
    /// FDTs any more).
    pub const fn subtree_data_property(self) -> &'static str {
        match self {
            AbiVersion::V1 => fdt::PROP_V1_FDT,
            AbiVersion::V2 | AbiVersion::V3 | AbiVersion::V4 => fdt::PROP_PRESERVED_DATA,
        }
    }

    /// Whether `preserved-memory-map` names the first chunk of kho-v1's
    /// serialized bitmaps ([`crate::v1`]) rather than a radix root
    /// ([`crate::radix`]).
    pub const fn uses_chunk_list(self) -> bool {
        matches!(self, AbiVersion::V1)
    }

    /// Whether the outgoing state is published by an explicit *finalize*
    /// (serialize the bitmaps, write the FDT) that can be aborted, and is
    /// frozen in between: kho-v1 only. kho-v2 removed finalize ("kho:
    /// remove finalize state and clients"): its FDT and tree are valid at
    /// all times.
    pub const fn has_finalize(self) -> bool {
        matches!(self, AbiVersion::V1)
    }

    /// Whether `preserved-memory-map` may be 0: in kho-v1 it is 0 when
    /// nothing is preserved (and before finalize); every later version
    /// always has a radix root.
    pub const fn allows_empty_memory_map(self) -> bool {
        matches!(self, AbiVersion::V1)
    }

    /// Whether the `kexec-metadata` subtree (a packed 73-byte struct found
    /// by its `blob-size`, [`crate::metadata`]) can be handed over: not in
    /// kho-v1, whose children are FDTs without `blob-size`.
    pub const fn has_kexec_metadata(self) -> bool {
        self.allows_blob_size()
    }

    /// Whether the version covers LUO's serialization blocks
    /// ([`crate::block`]): kho-v4 only.
    pub const fn has_blocks(self) -> bool {
        matches!(self, AbiVersion::V4)
    }

    /// The version named by a root `compatible` string, if it is one we read.
    pub fn from_compatible(compatible: &str) -> Option<AbiVersion> {
        AbiVersion::ALL
            .into_iter()
            .find(|v| v.compatible() == compatible)
    }
}

impl core::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.compatible())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_strings_round_trip() {
        assert_eq!(AbiVersion::V1.compatible(), "kho-v1");
        assert_eq!(AbiVersion::V2.compatible(), "kho-v2");
        assert_eq!(AbiVersion::V3.compatible(), "kho-v3");
        assert_eq!(AbiVersion::V4.compatible(), "kho-v4");
        assert_eq!(AbiVersion::from_compatible("kho-v2"), Some(AbiVersion::V2));
        assert_eq!(AbiVersion::from_compatible("kho-v3"), Some(AbiVersion::V3));
        assert_eq!(AbiVersion::from_compatible("kho-v4"), Some(AbiVersion::V4));
        assert_eq!(AbiVersion::from_compatible("kho-v1"), Some(AbiVersion::V1));
        assert_eq!(AbiVersion::from_compatible("kho-v0"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v5"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v2\0"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v4\0"), None);
        assert!(!AbiVersion::V2.requires_blob_size());
        assert!(AbiVersion::V3.requires_blob_size());
        assert!(AbiVersion::V4.requires_blob_size());
        assert!(!AbiVersion::V1.requires_blob_size());
    }

    /// What distinguishes kho-v1, from spec §12.2/§12.3: `fdt` renamed to
    /// `preserved-data` by the kho-v2 bump, the chunk list replaced by the
    /// radix tree, finalize removed; `blob-size` and `kexec-metadata` came
    /// after kho-v2, LUO blocks with kho-v4.
    #[test]
    fn what_sets_kho_v1_apart() {
        for v in AbiVersion::ALL {
            let v1 = v == AbiVersion::V1;
            assert_eq!(v.uses_chunk_list(), v1);
            assert_eq!(v.has_finalize(), v1);
            assert_eq!(v.allows_empty_memory_map(), v1);
            assert_eq!(v.allows_blob_size(), !v1);
            assert_eq!(v.has_kexec_metadata(), !v1);
            assert_eq!(v.has_blocks(), v == AbiVersion::V4);
            let prop = if v1 { "fdt" } else { "preserved-data" };
            assert_eq!(v.subtree_data_property(), prop);
        }
        assert_eq!(AbiVersion::ALL.first(), Some(&AbiVersion::V1));
    }

    /// Golden values from Linux 7.2.13's `KHO_FDT_COMPATIBLE`
    /// (include/linux/kho/abi/kexec_handover.h), not from our own output.
    #[test]
    fn newest_is_what_linux_7_2_writes() {
        assert_eq!(AbiVersion::NEWEST, AbiVersion::V4);
        assert_eq!(AbiVersion::default(), AbiVersion::NEWEST);
        assert_eq!(AbiVersion::NEWEST.compatible().as_bytes(), b"kho-v4");
        // Same length as "kho-v2": an FDT changes only in the string's bytes.
        assert_eq!(
            AbiVersion::V4.compatible().len(),
            AbiVersion::V2.compatible().len()
        );
        // Oldest first, newest last, and every compatible distinct.
        assert_eq!(AbiVersion::ALL.last(), Some(&AbiVersion::NEWEST));
        assert!(AbiVersion::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}
