//! x86_64 handoff: the `setup_data` entry of type 10 carrying `kho_data`.
//!
//! Linux links one [`SetupDataHeader`] (type [`SETUP_KEXEC_KHO`], len 32)
//! followed by a [`KhoData`] payload into `boot_params.hdr.setup_data`.
//! [`boot_params`] has the offsets of the "zero page" fields a kexec loader
//! fills for the next kernel (Documentation/arch/x86/zero-page.rst and
//! boot.rst).

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

/// Offsets and constants of `struct boot_params` (the 4 KiB "zero page").
pub mod boot_params {
    /// Size of the zero page.
    pub const SIZE: usize = 4096;
    /// `acpi_rsdp_addr` (u64): phys of the ACPI RSDP, passed on by kexec.
    pub const ACPI_RSDP_ADDR: usize = 0x070;
    /// `ext_cmd_line_ptr`: high 32 bits of the command line address (u32).
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    /// `e820_entries`: number of valid entries in the e820 table (u8).
    pub const E820_ENTRIES: usize = 0x1e8;
    /// Start of `struct setup_header` (`hdr`).
    pub const SETUP_HEADER: usize = 0x1f1;
    /// `hdr.boot_flag` (u16), must be [`BOOT_FLAG_MAGIC`].
    pub const BOOT_FLAG: usize = 0x1fe;
    /// `hdr.header` (u32), must be [`HEADER_MAGIC`].
    pub const HEADER: usize = 0x202;
    /// `hdr.version` (u16): boot protocol version.
    pub const VERSION: usize = 0x206;
    /// `hdr.type_of_loader` (u8).
    pub const TYPE_OF_LOADER: usize = 0x210;
    /// `hdr.cmd_line_ptr` (u32): low 32 bits of the command line address.
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `hdr.cmdline_size` (u32): maximum command line length without the NUL.
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `hdr.setup_data` (u64): phys of the first `setup_data` entry.
    pub const SETUP_DATA: usize = 0x250;
    /// `e820_table`: [`E820_MAX_ENTRIES`] packed [`E820Entry`](super::E820Entry)s.
    pub const E820_TABLE: usize = 0x2d0;
    /// Capacity of the zero page's e820 table (`E820_MAX_ENTRIES_ZEROPAGE`).
    pub const E820_MAX_ENTRIES: usize = 128;
    /// `hdr.boot_flag` value.
    pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
    /// `hdr.header` value: "HdrS".
    pub const HEADER_MAGIC: u32 = 0x5372_6448;
    /// Boot protocol version kho-rs writes (2.15, the one with setup_data
    /// and 64-bit entry support).
    pub const PROTOCOL_VERSION: u16 = 0x020f;
    /// `type_of_loader` for an unregistered loader ("undefined", 0xff).
    pub const LOADER_UNDEFINED: u8 = 0xff;
}

/// e820 memory types.
pub mod e820 {
    /// Usable RAM.
    pub const RAM: u32 = 1;
    /// Reserved.
    pub const RESERVED: u32 = 2;
    /// ACPI reclaimable.
    pub const ACPI: u32 = 3;
    /// ACPI NVS.
    pub const NVS: u32 = 4;
    /// Unusable.
    pub const UNUSABLE: u32 = 5;
}

/// One packed e820 entry (20 bytes), as in the zero page's `e820_table`.
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
pub struct E820Entry {
    /// Start address.
    pub addr: Le64,
    /// Size in bytes.
    pub size: Le64,
    /// Memory type ([`e820`]).
    pub type_: Le32,
}

const _: () = {
    assert!(size_of::<E820Entry>() == 20);
    assert!(boot_params::E820_TABLE + boot_params::E820_MAX_ENTRIES * 20 <= 0xd00);
    assert!(boot_params::SETUP_HEADER + 0x5f == boot_params::SETUP_DATA);
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
