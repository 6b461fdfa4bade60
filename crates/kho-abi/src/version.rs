//! ABI versions of the root KHO FDT and how to recognise them.

use crate::fdt;

/// A revision of the KHO handover format, named by its root `compatible`.
///
/// | variant | compatible | per-child `blob-size` |
/// |---|---|---|
/// | [`AbiVersion::V2`] | `"kho-v2"` | optional (absent in the original kho-v2, present in the later blob-size revision that kept the string) |
/// | [`AbiVersion::V3`] | `"kho-v3"` | required |
///
/// `"kho-v1"` (the serialized-bitmap format of Linux 6.16) is recognised by
/// [`AbiVersion::is_known_legacy`] only so that readers can say precisely why
/// they refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum AbiVersion {
    /// `kho-v2`: radix-tree preserved-memory map, children with `preserved-data`.
    #[default]
    V2,
    /// `kho-v3`: as kho-v2, and every child must carry an 8-byte `blob-size`.
    V3,
}

impl AbiVersion {
    /// Every version this crate describes, oldest first.
    pub const ALL: [AbiVersion; 2] = [AbiVersion::V2, AbiVersion::V3];

    /// The root `compatible` string of this version (without the NUL).
    pub const fn compatible(self) -> &'static str {
        match self {
            AbiVersion::V2 => fdt::COMPATIBLE_V2,
            AbiVersion::V3 => fdt::COMPATIBLE_V3,
        }
    }

    /// Whether each child node must carry `blob-size`.
    pub const fn requires_blob_size(self) -> bool {
        matches!(self, AbiVersion::V3)
    }

    /// The version named by a root `compatible` string, if it is one we read.
    pub fn from_compatible(compatible: &str) -> Option<AbiVersion> {
        AbiVersion::ALL
            .into_iter()
            .find(|v| v.compatible() == compatible)
    }

    /// Whether `compatible` names an older KHO format that kho-rs recognises
    /// but does not read (the 2024 RFC's `"kho-v1"`-era blobs).
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
        assert_eq!(AbiVersion::from_compatible("kho-v2"), Some(AbiVersion::V2));
        assert_eq!(AbiVersion::from_compatible("kho-v3"), Some(AbiVersion::V3));
        assert_eq!(AbiVersion::from_compatible("kho-v1"), None);
        assert_eq!(AbiVersion::from_compatible("kho-v2\0"), None);
        assert!(AbiVersion::is_known_legacy("kho-v1"));
        assert_eq!(AbiVersion::default(), AbiVersion::V2);
        assert!(!AbiVersion::V2.requires_blob_size());
        assert!(AbiVersion::V3.requires_blob_size());
    }
}
