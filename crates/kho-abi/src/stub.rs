//! The kho-rs test stub's client blob (`kho-stub`): what it preserved and the
//! checksums, as the stub writes it and the next generation and the
//! inspector read it. Not an upstream layout: the client a kho-rs kernel
//! runs to prove every handover.
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
//! | 48 | records: u64 phys, u64 checksum, u32 order, u32 generation that filled it, u32 block id, u16 count, u16 spacing |
//!
//! A record is one block, or (guest memory, `guest.rs`) an extent of `count`
//! blocks `2^spacing` blocks apart with consecutive block ids; 0 counts as 1.

use crate::vmalloc::VmallocDescriptor;
use zerocopy::little_endian::{U16, U32, U64};
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
    /// Block id the content is derived from (of the first block).
    pub block: U32,
    /// Blocks in the extent (0 or 1: one block).
    pub count: U16,
    /// log2 of the distance between the extent's blocks, in blocks.
    pub spacing: U16,
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
#[non_exhaustive]
pub enum BlobError {
    /// Shorter than its header or its records.
    Truncated,
    /// Wrong magic.
    BadMagic,
    /// `count` does not match the blob size.
    CountMismatch,
    /// More records than [`MAX_RECORDS`].
    TooManyRecords,
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BlobError::Truncated => "kho-stub blob truncated",
            BlobError::BadMagic => "kho-stub blob has a bad magic",
            BlobError::CountMismatch => "kho-stub blob record count does not match its size",
            BlobError::TooManyRecords => "kho-stub blob has more than 4096 records",
        })
    }
}

impl core::error::Error for BlobError {}

/// Most records a blob may hold: far more than the stub ever keeps
/// (4 folios per generation for 3 generations, plus guest-memory extents),
/// and a bound on what an incoming blob can make the stub keep on its heap.
pub const MAX_RECORDS: u32 = 4096;

/// Check a blob's header against its `blob-size`: the magic, and exactly
/// `count` records (at most [`MAX_RECORDS`]) after the header.
pub fn check(header: &Header, size: u64) -> Result<(), BlobError> {
    if size < size_of::<Header>() as u64 {
        return Err(BlobError::Truncated);
    }
    if header.magic != MAGIC {
        return Err(BlobError::BadMagic);
    }
    let count = header.count.get();
    if count > MAX_RECORDS {
        return Err(BlobError::TooManyRecords);
    }
    if size != blob_size(count as usize) as u64 {
        return Err(BlobError::CountMismatch);
    }
    Ok(())
}

/// Validate `bytes` (exactly the blob, as long as its `blob-size`) and
/// split it into the header and its records: for readers that copied the
/// blob (the inspector); the stub reads records in place.
pub fn parse(bytes: &[u8]) -> Result<(&Header, &[Record]), BlobError> {
    let (header, rest) = Header::ref_from_prefix(bytes).map_err(|_| BlobError::Truncated)?;
    check(header, bytes.len() as u64)?;
    let records = <[Record]>::ref_from_bytes(rest).map_err(|_| BlobError::Truncated)?;
    Ok((header, records))
}

/// Where record `index` of the blob at physical address `blob` is; `None`
/// on overflow.
pub fn record_at(blob: u64, index: u32) -> Option<u64> {
    let offset = size_of::<Header>() as u64 + u64::from(index) * size_of::<Record>() as u64;
    blob.checked_add(offset)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

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
                count: U16::new(0),
                spacing: U16::new(0),
            };
            v.extend_from_slice(r.as_bytes());
        }
        v
    }

    fn header(b: &[u8]) -> Header {
        Header::read_from_prefix(b).unwrap().0
    }

    #[test]
    fn round_trip_and_errors() {
        let b = sample(3);
        let size = b.len() as u64;
        assert_eq!(b.len(), blob_size(3));
        let h = header(&b);
        assert_eq!(check(&h, size), Ok(()));
        let at = record_at(0x1000, 2).unwrap();
        let off = (at - 0x1000) as usize;
        let r = Record::read_from_prefix(&b[off..]).unwrap().0;
        assert_eq!((h.generation.get(), r.order.get()), (4, 2));
        assert_eq!(check(&h, 40), Err(BlobError::Truncated));
        assert_eq!(check(&h, size - 1), Err(BlobError::CountMismatch));
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(check(&header(&bad), size), Err(BlobError::BadMagic));
        let mut lying = b.clone();
        lying[12] = 200;
        assert_eq!(check(&header(&lying), size), Err(BlobError::CountMismatch));
        let mut huge = b.clone();
        huge[12..16].copy_from_slice(&(MAX_RECORDS + 1).to_le_bytes());
        let huge_size = blob_size(MAX_RECORDS as usize + 1) as u64;
        assert_eq!(
            check(&header(&huge), huge_size),
            Err(BlobError::TooManyRecords)
        );
        assert_eq!(record_at(u64::MAX - 8, 0), None);
        let (h2, records) = parse(&b).unwrap();
        assert_eq!((h2.count.get(), records.len()), (3, 3));
        assert_eq!(parse(&b[..40]), Err(BlobError::Truncated));
    }
}
