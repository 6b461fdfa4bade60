//! The stub's own sub-blob (`kho-stub`): what was preserved and its checksums.
//!
//! Layout (little-endian), registered as root child `kho-stub` with
//! `blob-size` = 48 + 32 × count:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `"KHOSTUB1"` |
//! | 8 | u32 generation that wrote the blob |
//! | 12 | u32 record count |
//! | 16 | u64 seed |
//! | 24 | the 16-byte `kho_vmalloc` descriptor of the stub's vmalloc area (all zero: none) |
//! | 40 | u64 the generation that wrote the `kho_log` region's first line (0 without a log) |
//! | 48 | records: u64 phys, u64 checksum, u32 order, u32 generation that filled it, u32 block id, u32 reserved |

use kho_abi::vmalloc::VmallocDescriptor;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Root child name of the stub's blob.
pub const SUBTREE_NAME: &str = "kho-stub";
/// Magic at offset 0.
pub const MAGIC: [u8; 8] = *b"KHOSTUB1";

/// The blob header.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Generation that wrote the blob.
    pub generation: U32,
    /// Number of [`Record`]s after the header.
    pub count: U32,
    /// Seed of the content.
    pub seed: U64,
    /// The vmalloc area's descriptor (`total_pages` 0: none).
    pub vmalloc: VmallocDescriptor,
    /// The generation that wrote the first line of the `kho_log` region
    /// (0 without a log): the log holds one line per generation since.
    pub log_start: U64,
}

/// One preserved folio.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Record {
    /// Physical address.
    pub phys: U64,
    /// Checksum of its content.
    pub checksum: U64,
    /// Page order.
    pub order: U32,
    /// Generation that filled it.
    pub generation: U32,
    /// Block id the content is derived from.
    pub block: U32,
    /// Reserved, 0.
    pub reserved: U32,
}

const _: () = {
    assert!(size_of::<Header>() == 48);
    assert!(size_of::<Record>() == 32);
};

/// Bytes of a blob with `count` records.
pub const fn blob_size(count: usize) -> usize {
    size_of::<Header>() + count * size_of::<Record>()
}

/// Why a blob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// Shorter than its header or its records.
    Truncated,
    /// Wrong magic.
    BadMagic,
    /// `count` does not match the blob size.
    CountMismatch,
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BlobError::Truncated => "kho-stub blob truncated",
            BlobError::BadMagic => "kho-stub blob has a bad magic",
            BlobError::CountMismatch => "kho-stub blob record count does not match its size",
        })
    }
}

/// Validate `bytes` (exactly the blob, as long as its `blob-size`).
pub fn parse(bytes: &[u8]) -> Result<(&Header, &[Record]), BlobError> {
    let (header, rest) = Header::ref_from_prefix(bytes).map_err(|_| BlobError::Truncated)?;
    if header.magic != MAGIC {
        return Err(BlobError::BadMagic);
    }
    let count = header.count.get() as usize;
    if rest.len()
        != count
            .checked_mul(size_of::<Record>())
            .ok_or(BlobError::CountMismatch)?
    {
        return Err(BlobError::CountMismatch);
    }
    let records = <[Record]>::ref_from_bytes(rest).map_err(|_| BlobError::Truncated)?;
    Ok((header, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sample(count: u32) -> Vec<u8> {
        let h = Header {
            magic: MAGIC,
            generation: U32::new(4),
            count: U32::new(count),
            seed: U64::new(7),
            vmalloc: VmallocDescriptor::default(),
            log_start: U64::new(0),
        };
        let mut v = h.as_bytes().to_vec();
        for i in 0..count {
            let r = Record {
                phys: U64::new(0x100_0000 + u64::from(i) * 0x1000),
                checksum: U64::new(u64::from(i)),
                order: U32::new(i),
                generation: U32::new(4),
                block: U32::new(i),
                reserved: U32::new(0),
            };
            v.extend_from_slice(r.as_bytes());
        }
        v
    }

    #[test]
    fn round_trip_and_errors() {
        let b = sample(3);
        assert_eq!(b.len(), blob_size(3));
        let (h, r) = parse(&b).unwrap();
        assert_eq!((h.generation.get(), r.len(), r[2].order.get()), (4, 3, 2));
        assert_eq!(parse(&b[..40]), Err(BlobError::Truncated));
        assert_eq!(parse(&b[..b.len() - 1]), Err(BlobError::CountMismatch));
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(parse(&bad), Err(BlobError::BadMagic));
        let mut lying = b;
        lying[12] = 200;
        assert_eq!(parse(&lying), Err(BlobError::CountMismatch));
    }
}
