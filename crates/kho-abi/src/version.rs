//! ABI versions of the root KHO FDT and how to recognise them.

use crate::fdt;

/// A revision of the KHO handover format, named by its root `compatible`.
///
/// | variant | compatible | per-child `blob-size` |
/// |---|---|---|
/// | [`AbiVersion::V2`] | `"kho-v2"` | optional (absent in the original kho-v2, present in the later blob-size revision that kept the string) |
/// | [`AbiVersion::V3`] | `"kho-v3"` | required |
/// | [`AbiVersion::V4`] | `"kho-v4"` | required (Linux 7.2 writes it before `preserved-data`) |
///
/// kho-v4 changed nothing in the root FDT, the radix tree, vmalloc, scratch
/// or the sub-blobs this crate describes: upstream bumped the string because
/// it added the LUO serialization-block format ([`crate::block`]), which
/// its ABI contract ties to the root compatible. [`AbiVersion::NEWEST`] (also
/// the [`Default`]) is the version current Linux writes.
///
/// `"kho-v1"` (the serialized-bitmap format of Linux 6.16–6.19) is
/// recognised by [`AbiVersion::is_known_legacy`] so that the engine can say
/// precisely why it refuses it; its memory map is read and written by the
/// `kho-bitmaps` crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum AbiVersion {
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
    pub const ALL: [AbiVersion; 3] = [AbiVersion::V2, AbiVersion::V3, AbiVersion::V4];

    /// The newest version this crate describes: the one Linux 7.2 writes.
    pub const NEWEST: AbiVersion = AbiVersion::V4;

    /// The root `compatible` string of this version (without the NUL).
    pub const fn compatible(self) -> &'static str {
        match self {
            AbiVersion::V2 => fdt::COMPATIBLE_V2,
            AbiVersion::V3 => fdt::COMPATIBLE_V3,
            AbiVersion::V4 => fdt::COMPATIBLE_V4,
        }
    }

    /// Whether each child node must carry `blob-size`.
    pub const fn requires_blob_size(self) -> bool {
        matches!(self, AbiVersion::V3 | AbiVersion::V4)
    }

    /// The version named by a root `compatible` string, if it is one we read.
    pub fn from_compatible(compatible: &str) -> Option<AbiVersion> {
        AbiVersion::ALL
            .into_iter()
            .find(|v| v.compatible() == compatible)
    }

    /// Whether `compatible` names an older KHO format that kho-rs recognises
    /// but whose handover the engine does not revive: `"kho-v1"`, Linux
    /// 6.16–6.19's serialized per-order bitmaps (its memory map is read and
    /// written by the `kho-bitmaps` crate; the engine does not use it yet).
    pub fn is_known_legacy(compatible: &str) -> bool {
        compatible == fdt::COMPATIBLE_V1
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
        assert_eq!(AbiVersion::V2.compatible(), "kho-v2");
        assert_eq!(AbiVersion::V3.compatible(), "kho-v3");
        assert_eq!(AbiVersion::V4.compatible(), "kho-v4");
        assert_eq!(AbiVersion::from_compatible("kho-v2"), Some(AbiVersion::V2));
        assert_eq!(AbiVersion::from_compatible("kho-v3"), Some(AbiVersion::V3));
        assert_eq!(AbiVersion::from_compatible("kho-v4"), Some(AbiVersion::V4));
        assert_eq!(AbiVersion::from_compatible("kho-v1"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v5"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v2\0"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v4\0"), None);
        assert!(AbiVersion::is_known_legacy("kho-v1"));
        assert!(!AbiVersion::is_known_legacy("kho-v4"));
        assert!(!AbiVersion::V2.requires_blob_size());
        assert!(AbiVersion::V3.requires_blob_size());
        assert!(AbiVersion::V4.requires_blob_size());
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
