//! kho-v1 wrapper of the stub's blob: kho-v1 children must be FDTs.
//!
//! Under kho-v1 a root child names a client FDT (`fdt`), sized by its own
//! header's `totalsize`; there is no `blob-size` and no `kexec-metadata`.
//! So in a kho-v1 generation the stub registers, as `kho-stub`, a small
//! sub-FDT: root `compatible = "kho-stub-blob"`, `kexec-count` (u32, big
//! endian as FDT cells: the count the next kernel continues from, which
//! kho-v2 and later carry in `kexec-metadata`) and `blob` (the blob's bytes,
//! unchanged: `kho_abi::stub`). From kho-v2 on the blob is registered bare,
//! as before.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kho_abi::stub as blob;
use kho_fdt::dtb::Dtb;
use kho_mem::{PhysAddr, PhysMem};

/// Root `compatible` of the wrapper.
pub const COMPATIBLE: &str = "kho-stub-blob";
/// Largest wrapper read back: the largest blob and a page of FDT around it.
pub const MAX_WRAPPER: u64 = blob::blob_size(blob::MAX_RECORDS as usize) as u64 + 4096;

/// A wrapper, read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Unwrapped {
    /// The blob's first byte (its header), inside the wrapper.
    pub data: PhysAddr,
    /// The blob's bytes.
    pub size: u64,
    /// The wrapper's `totalsize`: its folio is the smallest block holding it.
    pub total: u64,
    /// The `kexec-count` property.
    pub kexec_count: u32,
}

/// The wrapper around `blob`, as [`unwrap`] reads it.
pub fn wrap(blob: &[u8], kexec_count: u32) -> Result<Vec<u8>, String> {
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = vm_fdt::FdtWriter::new()?;
        let root = w.begin_node("")?;
        w.property_string("compatible", COMPATIBLE)?;
        w.property_u32("kexec-count", kexec_count)?;
        w.property("blob", blob)?;
        w.end_node(root)?;
        w.finish()
    };
    build().map_err(|e| format!("kho-stub blob wrapper: {e}"))
}

/// Read the wrapper at `at` (a sub-FDT whose size is its own `totalsize`,
/// at most [`MAX_WRAPPER`]): where its `blob` lies and the `kexec-count`.
/// Every malformation is a named error; the copy read is bounded by
/// [`MAX_WRAPPER`], whatever the header says.
pub fn unwrap<M: PhysMem>(mem: &M, at: PhysAddr) -> Result<Unwrapped, String> {
    let mut head = [0u8; 8];
    mem.read(at, &mut head)
        .map_err(|e| format!("kho-stub wrapper: {e}"))?;
    let total = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
    if !(40..=MAX_WRAPPER).contains(&total) {
        return Err(format!(
            "kho-stub wrapper totalsize {total:#x} is not 0x28..={MAX_WRAPPER:#x}"
        ));
    }
    let mut bytes = vec![0u8; total as usize];
    mem.read(at, &mut bytes)
        .map_err(|e| format!("kho-stub wrapper: {e}"))?;
    let fdt = Dtb::parse(&bytes).map_err(|e| format!("kho-stub wrapper: {e}"))?;
    let compatible = fdt
        .property("/", "compatible")
        .ok_or("kho-stub wrapper has no compatible")?;
    if compatible.strip_suffix(&[0]) != Some(COMPATIBLE.as_bytes()) {
        return Err(format!(
            "kho-stub wrapper is not {COMPATIBLE}: {:?}",
            String::from_utf8_lossy(compatible)
        ));
    }
    let count = fdt
        .property("/", "kexec-count")
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .ok_or("kho-stub wrapper has no 4-byte kexec-count")?;
    let data = fdt
        .property("/", "blob")
        .ok_or("kho-stub wrapper has no blob")?;
    // The property's offset in the copy is its offset in memory.
    let offset = (data.as_ptr() as usize)
        .checked_sub(bytes.as_ptr() as usize)
        .ok_or("kho-stub wrapper blob outside the wrapper")?;
    Ok(Unwrapped {
        data: at
            .checked_add(offset as u64)
            .ok_or("kho-stub wrapper wraps")?,
        size: data.len() as u64,
        total,
        kexec_count: u32::from_be_bytes(count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::HostMem;

    fn host_with(bytes: &[u8]) -> (HostMem, PhysAddr) {
        let base = HostMem::DEFAULT_BASE;
        let mut mem = HostMem::new(base, 1 << 20).unwrap();
        mem.write(base, bytes).unwrap();
        (mem, base)
    }

    #[test]
    fn the_wrapper_round_trips_the_blob_and_the_count() {
        let blob: Vec<u8> = (0..=255u8).cycle().take(48 + 32 * 3).collect();
        let wrapper = wrap(&blob, 7).unwrap();
        let (mem, at) = host_with(&wrapper);
        let u = unwrap(&mem, at).unwrap();
        assert_eq!((u.kexec_count, u.size), (7, blob.len() as u64));
        assert_eq!(u.total, wrapper.len() as u64);
        let mut back = vec![0u8; blob.len()];
        mem.read(u.data, &mut back).unwrap();
        assert_eq!(back, blob);
    }

    #[test]
    fn a_malformed_wrapper_is_a_named_error() {
        let (mem, at) = host_with(&[0u8; 64]);
        let e = unwrap(&mem, at).unwrap_err();
        assert!(e.contains("totalsize 0x0 "), "{e}");
        let mut huge = wrap(&[1, 2, 3], 1).unwrap();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let (mem, at) = host_with(&huge);
        let e = unwrap(&mem, at).unwrap_err();
        assert!(e.contains("totalsize 0xffffffff "), "{e}");
        let mut other = wrap(&[1, 2, 3], 1).unwrap();
        let i = other.windows(4).position(|w| w == b"kho-").unwrap();
        other[i] = b'x';
        let (mem, at) = host_with(&other);
        let e = unwrap(&mem, at).unwrap_err();
        assert!(e.contains("is not kho-stub-blob"), "{e}");
        let mut bad_magic = wrap(&[1, 2, 3], 1).unwrap();
        bad_magic[0] = 0;
        let (mem, at) = host_with(&bad_magic);
        let e = unwrap(&mem, at).unwrap_err();
        assert!(e.starts_with("kho-stub wrapper: "), "{e}");
    }
}
