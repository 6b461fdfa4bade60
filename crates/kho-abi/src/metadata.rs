//! The `kexec-metadata` sub-blob: kexec count and previous kernel release.
//!
//! A packed 73-byte struct that later upstream kernels (blob-size revision)
//! publish at every boot under the root child [`SUBTREE_NAME`]; its
//! `kexec_count` is the incoming count plus one.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::Le32;

/// Root child name of the metadata blob.
pub const SUBTREE_NAME: &str = "kexec-metadata";
/// The only version defined.
pub const VERSION: u32 = 1;
/// Length of the `previous_release` field (`__NEW_UTS_LEN + 1`).
pub const RELEASE_LEN: usize = 65;
/// Smallest blob a reader accepts before looking at `version`.
pub const MIN_SIZE_FOR_VERSION: usize = 4;

/// `struct kho_kexec_metadata` (packed, 73 bytes).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct KexecMetadata {
    /// Format version, [`VERSION`].
    pub version: Le32,
    /// NUL-padded `uname -r` of the kernel that wrote the blob.
    pub previous_release: [u8; RELEASE_LEN],
    /// Number of kexecs since the last cold boot, counting this one.
    pub kexec_count: Le32,
}

const _: () = {
    assert!(size_of::<KexecMetadata>() == 73);
    assert!(core::mem::offset_of!(KexecMetadata, version) == 0);
    assert!(core::mem::offset_of!(KexecMetadata, previous_release) == 4);
    assert!(core::mem::offset_of!(KexecMetadata, kexec_count) == 69);
};

impl KexecMetadata {
    /// The release string up to its first NUL (lossless bytes).
    pub fn release_bytes(&self) -> &[u8] {
        let end = self
            .previous_release
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(RELEASE_LEN);
        &self.previous_release[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_upstream_offsets() {
        let mut bytes = [0u8; 73];
        bytes[0..4].copy_from_slice(&1u32.to_le_bytes());
        bytes[4..10].copy_from_slice(b"6.19.0");
        bytes[69..73].copy_from_slice(&7u32.to_le_bytes());
        let m = KexecMetadata::read_from_bytes(&bytes[..]).unwrap();
        assert_eq!(m.version.get(), VERSION);
        assert_eq!(m.kexec_count.get(), 7);
        assert_eq!(m.release_bytes(), b"6.19.0");
        assert_eq!(m.as_bytes(), &bytes[..]);
    }
}
