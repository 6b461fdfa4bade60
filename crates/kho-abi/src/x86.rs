//! x86_64 handoff: the `setup_data` entry of type 10 carrying `kho_data`.
//!
//! Linux links one [`SetupDataHeader`] (type [`SETUP_KEXEC_KHO`], len 32)
//! followed by a [`KhoData`] payload into `boot_params.hdr.setup_data`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Le32, Le64};

/// `SETUP_KEXEC_KHO`: setup_data type of the KHO entry.
pub const SETUP_KEXEC_KHO: u32 = 10;
/// `SETUP_INDIRECT`: flag bit of indirect setup_data entries.
pub const SETUP_INDIRECT: u32 = 1 << 31;

/// Generic `struct setup_data` header; the payload follows at offset 16.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C)]
pub struct SetupDataHeader {
    /// Phys of the next entry, 0 for the last.
    pub next: Le64,
    /// Entry type (`SETUP_*`).
    pub type_: Le32,
    /// Payload length in bytes.
    pub len: Le32,
}

/// `struct kho_data` (packed, 32 bytes): what `kho_populate` receives.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C)]
pub struct KhoData {
    /// Phys of the root KHO FDT.
    pub fdt_addr: Le64,
    /// Size of the root KHO FDT mapping (one page).
    pub fdt_size: Le64,
    /// Phys of the scratch descriptor array.
    pub scratch_addr: Le64,
    /// Byte length of the scratch descriptor array (16 × count).
    pub scratch_size: Le64,
}

/// Size of [`SetupDataHeader`].
pub const SETUP_DATA_HEADER_SIZE: usize = 16;
/// Size of [`KhoData`], the `len` of a KHO setup_data entry.
pub const KHO_DATA_SIZE: usize = 32;

const _: () = {
    assert!(size_of::<SetupDataHeader>() == SETUP_DATA_HEADER_SIZE);
    assert!(core::mem::offset_of!(SetupDataHeader, next) == 0);
    assert!(core::mem::offset_of!(SetupDataHeader, type_) == 8);
    assert!(core::mem::offset_of!(SetupDataHeader, len) == 12);
    assert!(size_of::<KhoData>() == KHO_DATA_SIZE);
    assert!(core::mem::offset_of!(KhoData, fdt_addr) == 0);
    assert!(core::mem::offset_of!(KhoData, fdt_size) == 8);
    assert!(core::mem::offset_of!(KhoData, scratch_addr) == 16);
    assert!(core::mem::offset_of!(KhoData, scratch_size) == 24);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kho_setup_data_entry_bytes() {
        let hdr = SetupDataHeader {
            next: Le64::new(0),
            type_: Le32::new(SETUP_KEXEC_KHO),
            len: Le32::new(KHO_DATA_SIZE as u32),
        };
        assert_eq!(
            hdr.as_bytes(),
            &[0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 32, 0, 0, 0]
        );
        let data = KhoData {
            fdt_addr: Le64::new(0x0123_4000),
            fdt_size: Le64::new(4096),
            scratch_addr: Le64::new(0x0200_0000),
            scratch_size: Le64::new(48),
        };
        let b = data.as_bytes();
        assert_eq!(&b[0..8], &0x0123_4000u64.to_le_bytes());
        assert_eq!(&b[8..16], &4096u64.to_le_bytes());
        assert_eq!(&b[24..32], &48u64.to_le_bytes());
    }
}
