//! Memory types of the stub's identity map: which blocks are cacheable RAM,
//! which are device memory, which stay unmapped (docs/HANDOVER.md, "Memory
//! types").
//!
//! A kernel maps RAM as normal write-back memory right after entry and
//! everything else as uncached device memory; the stub does the same on
//! both arches (arm64: the MMU's attributes; x86_64: PAT indices in the
//! boot page tables). This module is the arch-independent half: given the
//! memory map, the type of each block of the map's granule. Host-tested.

use kho_scratch::{MemKind, MemRegion};

/// The type a block of the identity map gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// Some of the block is RAM: normal memory, write-back cacheable.
    WriteBack,
    /// No RAM in the block, inside the device window: uncached device
    /// memory (MMIO may live there).
    Device,
    /// No RAM, outside the device window: not mapped at all.
    Unmapped,
}

/// Whether memory of `kind` is cached write-back (RAM-backed: usable RAM,
/// ACPI tables and NVS, defective RAM nobody touches, persistent memory).
/// Firmware-reserved ranges and unknown types may be MMIO.
pub const fn is_ram_backed(kind: MemKind) -> bool {
    matches!(
        kind,
        MemKind::Usable
            | MemKind::AcpiReclaimable
            | MemKind::AcpiNvs
            | MemKind::Unusable
            | MemKind::Persistent
    )
}

/// The type of the block `[start, start + len)`: write-back if any
/// RAM-backed region overlaps it (a block shared between RAM and a hole or
/// a reserved range is RAM: the stub must reach its RAM part, and it never
/// touches the rest); device if it is below `device_end`; unmapped
/// otherwise.
pub fn block_type(memory: &[MemRegion], start: u64, len: u64, device_end: u64) -> BlockType {
    let end = start.saturating_add(len);
    let ram = memory.iter().any(|r| {
        let (s, e) = (
            r.range.start().as_u64(),
            r.range.end().map_or(u64::MAX, |e| e.as_u64()),
        );
        is_ram_backed(r.kind) && s < end && start < e
    });
    if ram {
        BlockType::WriteBack
    } else if start < device_end {
        BlockType::Device
    } else {
        BlockType::Unmapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::{PhysAddr, PhysRange};
    use kho_scratch::NodeId;

    const MIB2: u64 = 2 << 20;

    fn region(start: u64, len: u64, kind: MemKind) -> MemRegion {
        MemRegion::new(
            PhysRange::try_new(PhysAddr::new(start), len).unwrap(),
            kind,
            NodeId::ZERO,
        )
    }

    /// QEMU's x86 e820 (SeaBIOS, 2 GiB): RAM with the legacy hole and a
    /// reserved top, the 32-bit PCI hole, the BIOS ROM.
    #[test]
    fn x86_e820_blocks() {
        let map = [
            region(0, 0x9fc00, MemKind::Usable),
            region(0x9fc00, 0x400, MemKind::Reserved),
            region(0xf0000, 0x10000, MemKind::Reserved),
            region(0x10_0000, 0x7fee_0000, MemKind::Usable),
            region(0x7ffe_0000, 0x2_0000, MemKind::Reserved),
            region(0xfffc_0000, 0x4_0000, MemKind::Reserved),
        ];
        let ty = |a| block_type(&map, a, MIB2, 4 << 30);
        // The first 2 MiB: RAM and the legacy hole share it.
        assert_eq!(ty(0), BlockType::WriteBack);
        // The last 2 MiB below 2 GiB: RAM up to 0x7ffe0000, then reserved.
        assert_eq!(ty(0x7fe0_0000), BlockType::WriteBack);
        // The PCI hole and the BIOS ROM: device.
        assert_eq!(ty(0x8000_0000), BlockType::Device);
        assert_eq!(ty(0xffe0_0000), BlockType::Device);
        // Nothing above 4 GiB: unmapped.
        assert_eq!(ty(4 << 30), BlockType::Unmapped);
    }

    /// QEMU virt (arm64): MMIO below 1 GiB, RAM from 1 GiB, 1.5 GiB of it.
    #[test]
    fn arm64_virt_blocks() {
        let map = [region(0x4000_0000, 0x6000_0000, MemKind::Usable)];
        let gib = 1u64 << 30;
        let ty = |a, l| block_type(&map, a, l, 4 << 30);
        assert_eq!(ty(0, gib), BlockType::Device);
        assert_eq!(ty(gib, gib), BlockType::WriteBack);
        // The second GiB of RAM is half RAM: write-back as a whole …
        assert_eq!(ty(2 * gib, gib), BlockType::WriteBack);
        // … and block by block only where RAM is.
        assert_eq!(ty(0x9fe0_0000, MIB2), BlockType::WriteBack);
        assert_eq!(ty(0xa000_0000, MIB2), BlockType::Device);
        assert_eq!(ty(5 * gib, gib), BlockType::Unmapped);
    }

    #[test]
    fn reserved_ram_kinds() {
        assert!(is_ram_backed(MemKind::AcpiNvs));
        assert!(is_ram_backed(MemKind::Persistent));
        assert!(!is_ram_backed(MemKind::Reserved));
        assert!(!is_ram_backed(MemKind::Other(12)));
        // A block ending exactly where RAM starts is not RAM.
        let map = [region(MIB2, MIB2, MemKind::Usable)];
        assert_eq!(block_type(&map, 0, MIB2, 0), BlockType::Unmapped);
        assert_eq!(block_type(&map, u64::MAX - 1, 8, 0), BlockType::Unmapped);
    }
}
