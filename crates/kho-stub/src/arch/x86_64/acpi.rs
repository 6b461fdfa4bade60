//! Just enough ACPI to learn the NUMA layout: RSDP → XSDT/RSDT → SRAT memory affinity.
//!
//! Every table is length- and checksum-checked before it is used and read
//! through the bounds-checked `RamView`, so a bad pointer is an error, not
//! a fault.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kho_mem::{PhysAddr, PhysMem, PhysRange};

use crate::mem::RamView;

/// A memory range and its proximity domain (SRAT memory affinity, enabled).
#[derive(Clone, Copy, Debug)]
pub struct Affinity {
    /// The memory.
    pub range: PhysRange,
    /// Its proximity domain.
    pub domain: u32,
}

const MAX_TABLE: u32 = 1 << 20;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

fn read(mem: &RamView, at: PhysAddr, len: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; len];
    mem.read(at, &mut v)
        .map_err(|e| format!("ACPI at {at}: {e}"))?;
    Ok(v)
}

fn le32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | (u64::from(le32(b, o + 4)) << 32)
}

/// A whole ACPI table at `at`, checked: its length is sane and its bytes sum to 0.
fn table(mem: &RamView, at: PhysAddr) -> Result<Vec<u8>, String> {
    let header = read(mem, at, 36)?;
    let len = le32(&header, 4);
    if !(36..=MAX_TABLE).contains(&len) {
        return Err(format!("ACPI table at {at} has length {len}"));
    }
    let t = read(mem, at, len as usize)?;
    if sum(&t) != 0 {
        return Err(format!(
            "ACPI table {} at {at} has a bad checksum",
            String::from_utf8_lossy(&t[..4])
        ));
    }
    Ok(t)
}

/// The enabled memory-affinity entries of the SRAT reached from `rsdp`
/// (empty when there is no SRAT: a machine without NUMA).
pub fn memory_affinity(mem: &RamView, rsdp: PhysAddr) -> Result<Vec<Affinity>, String> {
    let r = read(mem, rsdp, 36)?;
    if &r[..8] != b"RSD PTR " || sum(&r[..20]) != 0 {
        return Err(format!("no valid RSDP at {rsdp}"));
    }
    let (root, entry_size) = if r[15] >= 2 && le64(&r, 24) != 0 {
        (PhysAddr::new(le64(&r, 24)), 8)
    } else {
        (PhysAddr::new(u64::from(le32(&r, 16))), 4)
    };
    let root = table(mem, root)?;
    let mut out = Vec::new();
    for i in 0..(root.len() - 36) / entry_size {
        let o = 36 + i * entry_size;
        let at = if entry_size == 8 {
            le64(&root, o)
        } else {
            u64::from(le32(&root, o))
        };
        let t = table(mem, PhysAddr::new(at))?;
        if &t[..4] != b"SRAT" {
            continue;
        }
        let mut o = 48;
        while o + 2 <= t.len() {
            let (kind, len) = (t[o], usize::from(t[o + 1]));
            if len < 2 || o + len > t.len() {
                return Err(format!("SRAT entry at byte {o} has length {len}"));
            }
            if kind == 1 && len >= 40 && le32(&t, o + 28) & 1 != 0 {
                let base = le64(&t, o + 8);
                let size = le64(&t, o + 16);
                if let Ok(range) = PhysRange::try_new(PhysAddr::new(base), size) {
                    out.push(Affinity {
                        range,
                        domain: le32(&t, o + 2),
                    });
                }
            }
            o += len;
        }
    }
    Ok(out)
}
