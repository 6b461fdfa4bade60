//! Fuzz target: the kho-stub's own client blob (`kho_abi::stub`),
//! as the next generation and the inspector read it: the header check
//! against any `blob-size`, the in-place record addressing, and the copying
//! parser. Every answer is a value or a named error, and the two readers
//! agree.
#![no_main]

use kho_abi::stub as blob;
use libfuzzer_sys::fuzz_target;
use zerocopy::FromBytes;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes are the blob-size the FDT claims; the rest is the
    // blob's memory.
    let (size, bytes) = data.split_at(data.len().min(8));
    let mut claimed = [0u8; 8];
    claimed[..size.len()].copy_from_slice(size);
    let claimed = u64::from_le_bytes(claimed);
    let parsed = blob::parse(bytes);
    if let Ok((header, _)) = blob::Header::read_from_prefix(bytes) {
        let checked = blob::check(&header, claimed);
        // In place: every record the header admits is addressable.
        if checked.is_ok() {
            for index in 0..header.count.get() {
                let at = blob::record_at(u64::MAX - claimed, index);
                assert!(at.is_some(), "record {index} of a checked blob wraps");
            }
        }
        // The copying parser reads exactly the bytes: it accepts them iff
        // the in-place check accepts their length.
        assert_eq!(parsed.is_ok(), blob::check(&header, bytes.len() as u64).is_ok());
        if let Ok((h, records)) = parsed {
            assert_eq!(records.len(), h.count.get() as usize);
        }
    } else {
        assert!(parsed.is_err());
    }
});
