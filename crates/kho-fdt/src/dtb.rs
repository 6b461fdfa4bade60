//! Boot device trees (not KHO blobs): validated lookups and property edits.
//!
//! The arm64 handoff lives in the ordinary boot DTB: `/chosen` carries
//! `linux,kho-fdt` and `linux,kho-scratch`, and the next kernel's DTB is the
//! current one with those properties (and `bootargs`) replaced. [`Dtb`]
//! gives panic-free access to any DTB after the same structure validation
//! as the KHO root FDT, and [`Dtb::rewrite`] re-serialises it with edits.

use alloc::string::String;
use alloc::vec::Vec;

use vm_fdt::{FdtReserveEntry, FdtWriter};

use crate::blob::{self, ValidFdt};
use crate::{Error, Result};

/// Largest boot DTB accepted (QEMU pads its DTB to 1 MiB).
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// A validated boot device tree.
#[derive(Clone, Copy, Debug)]
pub struct Dtb<'a> {
    valid: ValidFdt<'a>,
}

/// One range of RAM from a `memory` node ([`Dtb::memory_regions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Start address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// The node's `numa-node-id`, if it has one.
    pub numa_node: Option<u32>,
}

/// One change [`Dtb::rewrite`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit<'e> {
    /// Set property `name` of the node at `path` to `value`, replacing any
    /// old value; the node is created under the root if it is missing
    /// (`path` must then be `/name`).
    Set {
        /// Absolute node path, e.g. `/chosen`.
        path: &'e str,
        /// Property name.
        name: &'e str,
        /// New value.
        value: &'e [u8],
    },
    /// Remove property `name` of the node at `path`, if present.
    Delete {
        /// Absolute node path.
        path: &'e str,
        /// Property name.
        name: &'e str,
    },
}

/// `blob` normalized by [`crate::normalize`] (every `FDT_NOP` token
/// removed, a version 16 header brought to 17), or `None` if it needed no
/// change; parse the result with [`Dtb::parse`]. A DTB from another kernel
/// may hold NOPs where libfdt deleted a property in place (`fdt_delprop`):
/// Linux's arm64 `kexec_file_load` edits `/chosen` of the next kernel's DTB
/// that way. [`Dtb::parse`] itself refuses them
/// ([`crate::error::Malformed::Nop`]).
pub fn without_nops(blob: &[u8]) -> Result<Option<Vec<u8>>> {
    blob::without_nops(blob, MAX_DTB_SIZE)
}

/// What [`salvage`] could still read from a boot DTB the strict parser
/// refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Salvaged {
    /// The RAM its `memory` nodes describe (as [`Dtb::memory_regions`]).
    pub memory: Vec<MemoryRegion>,
    /// `/chosen` `bootargs`, without its NUL, if present.
    pub bootargs: Option<Vec<u8>>,
}

/// Read the memory map and the command line from a boot DTB that
/// [`Dtb::parse`] refuses for a defect elsewhere (a bad node name, an
/// unknown token late in the block, …): what a kernel needs to boot cold.
/// Linux itself only checks the header before it reads these. The header
/// and blocks must still be sound (otherwise the error is returned); the
/// walk stops at the first token it cannot read and keeps what came
/// before. Nothing else in such a DTB should be trusted, a KHO handover
/// least of all.
pub fn salvage(blob: &[u8]) -> Result<Salvaged> {
    let mut cells = (
        kho_abi::chosen::DEFAULT_ADDRESS_CELLS,
        kho_abi::chosen::DEFAULT_SIZE_CELLS,
    );
    let mut regs: Vec<(&[u8], &[u8])> = Vec::new();
    let mut numa: Vec<(&[u8], u32)> = Vec::new();
    let mut out = Salvaged::default();
    let cell = |v: &[u8]| v.try_into().ok().map(u32::from_be_bytes);
    blob::salvage(blob, MAX_DTB_SIZE, |p| {
        let memory = |n: &[u8]| n == b"memory" || n.starts_with(b"memory@");
        match (p.node, p.name) {
            (None, b"#address-cells") => cells.0 = cell(p.value).unwrap_or(u32::MAX),
            (None, b"#size-cells") => cells.1 = cell(p.value).unwrap_or(u32::MAX),
            (Some(b"chosen"), b"bootargs") => {
                let args = p.value.split(|&b| b == 0).next().unwrap_or_default();
                out.bootargs = Some(args.to_vec());
            }
            (Some(n), b"reg") if memory(n) => regs.push((n, p.value)),
            (Some(n), b"numa-node-id") if memory(n) => {
                if let Some(id) = cell(p.value) {
                    numa.push((n, id));
                }
            }
            _ => {}
        }
    })?;
    let (ac, sc) = cells;
    for (node, reg) in regs {
        // A node's numa-node-id may come before or after its reg.
        let numa_node = numa.iter().find(|(m, _)| *m == node).map(|(_, id)| *id);
        out.memory.extend(
            decode_pairs(reg, ac, sc).map(|(address, size)| MemoryRegion {
                address,
                size,
                numa_node,
            }),
        );
    }
    Ok(out)
}

impl<'a> Dtb<'a> {
    /// Validate `blob` (header, blocks, structure) as any FDT up to
    /// [`MAX_DTB_SIZE`].
    pub fn parse(blob: &'a [u8]) -> Result<Dtb<'a>> {
        Ok(Dtb {
            valid: blob::validate(blob, MAX_DTB_SIZE)?,
        })
    }

    /// The blob cut to its `totalsize`.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.valid.bytes
    }

    /// The value of property `name` of the node at absolute `path`.
    pub fn property(&self, path: &str, name: &str) -> Option<&'a [u8]> {
        let node = self.valid.fdt.find_node(path)?;
        node.properties().find(|p| p.name == name).map(|p| p.value)
    }

    /// The root's `#address-cells` and `#size-cells` (device-tree defaults 2
    /// and 1 when absent; `None` if present but not one 4-byte cell, or
    /// above 2: a 64-bit physical address or size never needs more cells,
    /// and a larger count from an untrusted DTB must not drive arithmetic).
    pub fn root_cells(&self) -> Option<(u32, u32)> {
        let cell = |name, default| match self.property("/", name) {
            None => Some(default),
            Some(v) => Some(u32::from_be_bytes(v.try_into().ok()?)).filter(|&c| c <= 2),
        };
        Some((
            cell(
                kho_abi::chosen::PROP_ADDRESS_CELLS,
                kho_abi::chosen::DEFAULT_ADDRESS_CELLS,
            )?,
            cell(
                kho_abi::chosen::PROP_SIZE_CELLS,
                kho_abi::chosen::DEFAULT_SIZE_CELLS,
            )?,
        ))
    }

    /// The RAM the DTB describes: every `(address, size)` of the `reg` of
    /// each root child named `memory` or `memory@…`, with that node's
    /// `numa-node-id` (one big-endian cell) when it has a valid one.
    pub fn memory_regions(&self) -> Vec<MemoryRegion> {
        let mut out = Vec::new();
        let (Some((ac, sc)), Ok(root)) = (self.root_cells(), self.valid.root()) else {
            return out;
        };
        for child in root.children() {
            let named = child.name == "memory" || child.name.starts_with("memory@");
            if !named {
                continue;
            }
            let numa_node = child
                .properties()
                .find(|p| p.name == "numa-node-id")
                .and_then(|p| p.value.try_into().ok().map(u32::from_be_bytes));
            let Some(reg) = child.properties().find(|p| p.name == "reg") else {
                continue;
            };
            out.extend(
                decode_pairs(reg.value, ac, sc).map(|(address, size)| MemoryRegion {
                    address,
                    size,
                    numa_node,
                }),
            );
        }
        out
    }

    /// Re-serialise the tree with `edits` applied: every node, property and
    /// memory reservation is copied in order, edited properties are replaced
    /// in place (deleted ones dropped, new ones appended after the node's
    /// existing properties).
    pub fn rewrite(&self, edits: &[Edit<'_>]) -> Result<Vec<u8>> {
        let reservations = self
            .valid
            .mem_reservations()
            .map(|(a, s)| FdtReserveEntry::new(a, s))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(Error::Writer)?;
        let mut w = FdtWriter::new_with_mem_reserv(&reservations).map_err(Error::Writer)?;
        w.set_boot_cpuid_phys(self.valid.header.boot_cpuid_phys);
        let root = self.valid.root()?;
        // Edit the node readers find at each path: `/name` is the first
        // root child called `name` or `name@unit`, as libfdt's
        // fdt_path_offset (and Dtb::property) resolve it. Writing into an
        // exact `name` node while a `name@unit` node comes first would
        // leave the edit where no reader looks.
        let resolved: Vec<String> = edits
            .iter()
            .map(|e| {
                let (Edit::Set { path, .. } | Edit::Delete { path, .. }) = *e;
                resolve_top(&root, path)
            })
            .collect();
        let edits: Vec<Edit<'_>> = edits
            .iter()
            .zip(&resolved)
            .map(|(e, p)| match *e {
                Edit::Set { name, value, .. } => Edit::Set {
                    path: p.as_str(),
                    name,
                    value,
                },
                Edit::Delete { name, .. } => Edit::Delete {
                    path: p.as_str(),
                    name,
                },
            })
            .collect();
        copy_node(&mut w, root, String::from("/"), &edits, 0)?;
        w.finish().map_err(Error::Writer)
    }
}

/// Decode big-endian (address, size) pairs of `ac` and `sc` cells each.
///
/// Yields nothing unless `ac` and `sc` are at most 2 (not both 0) and the
/// value is a whole number of pairs.
pub fn decode_pairs(value: &[u8], ac: u32, sc: u32) -> impl Iterator<Item = (u64, u64)> + '_ {
    let small = ac <= 2 && sc <= 2;
    let cells = if small { (ac + sc) as usize } else { 0 };
    let ok = small && cells > 0 && value.len().is_multiple_of(cells * 4);
    let pair_len = if ok { cells * 4 } else { 1 };
    value
        .chunks_exact(pair_len)
        .filter(move |_| ok)
        .map(move |pair| {
            let (a, s) = pair.split_at(ac as usize * 4);
            (be_cells(a), be_cells(s))
        })
}

/// Encode one (address, size) pair in `ac` + `sc` big-endian cells.
///
/// Cell counts above 2 are treated as 2 (a 64-bit value never needs more).
pub fn encode_pair(address: u64, size: u64, ac: u32, sc: u32) -> Vec<u8> {
    let (ac, sc) = (ac.min(2), sc.min(2));
    let mut out = Vec::with_capacity(((ac + sc) * 4) as usize);
    for (value, cells) in [(address, ac), (size, sc)] {
        for i in (0..cells).rev() {
            let shift = 32 * i;
            let word = if shift >= 64 {
                0
            } else {
                (value >> shift) as u32
            };
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
    out
}

fn be_cells(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(4).fold(0u64, |acc, c| {
        (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    })
}

/// The path of the root child a reader finds for `path` when it is one
/// component without a unit address (`/chosen` → `/chosen@0` if that comes
/// first); any other path as it is.
fn resolve_top(root: &fdt::node::FdtNode<'_, '_>, path: &str) -> String {
    let Some(want) = path
        .strip_prefix('/')
        .filter(|w| !w.is_empty() && !w.contains(['/', '@']))
    else {
        return String::from(path);
    };
    root.children()
        .find(|c| {
            c.name == want
                || c.name
                    .strip_prefix(want)
                    .is_some_and(|rest| rest.starts_with('@'))
        })
        .map_or_else(|| String::from(path), |c| alloc::format!("/{}", c.name))
}

fn copy_node(
    w: &mut FdtWriter,
    node: fdt::node::FdtNode<'_, '_>,
    path: String,
    edits: &[Edit<'_>],
    depth: usize,
) -> Result<()> {
    let name = if depth == 0 { "" } else { node.name };
    let handle = w.begin_node(name).map_err(Error::Writer)?;
    let edited = |prop: &str| {
        edits.iter().any(|e| match *e {
            Edit::Set { path: p, name, .. } | Edit::Delete { path: p, name } => {
                p == path && name == prop
            }
        })
    };
    let mut set_here = Vec::new();
    for e in edits {
        if let Edit::Set {
            path: p,
            name,
            value,
        } = *e
            && p == path
        {
            set_here.push((name, value));
        }
    }
    for prop in node.properties() {
        if let Some(&(n, v)) = set_here.iter().find(|(n, _)| *n == prop.name) {
            w.property(n, v).map_err(Error::Writer)?;
        } else if !edited(prop.name) {
            w.property(prop.name, prop.value).map_err(Error::Writer)?;
        }
    }
    for &(n, v) in &set_here {
        if node.properties().all(|p| p.name != n) {
            w.property(n, v).map_err(Error::Writer)?;
        }
    }
    let mut children = Vec::new();
    for child in node.children() {
        let child_path = if depth == 0 {
            alloc::format!("/{}", child.name)
        } else {
            alloc::format!("{path}/{}", child.name)
        };
        children.push(child_path.clone());
        copy_node(w, child, child_path, edits, depth + 1)?;
    }
    if depth == 0 {
        // Create missing direct children of the root that edits set
        // properties in (e.g. `/chosen` in a DTB without one).
        let mut created: Vec<&str> = Vec::new();
        for e in edits {
            if let Edit::Set { path: p, .. } = *e {
                let top_level = p.len() > 1 && p[1..].find('/').is_none();
                if top_level && !children.iter().any(|c| c == p) && !created.contains(&p) {
                    created.push(p);
                    let node = w.begin_node(&p[1..]).map_err(Error::Writer)?;
                    for e2 in edits {
                        if let Edit::Set {
                            path: p2,
                            name,
                            value,
                        } = *e2
                            && p2 == p
                        {
                            w.property(name, value).map_err(Error::Writer)?;
                        }
                    }
                    w.end_node(node).map_err(Error::Writer)?;
                }
            }
        }
    }
    w.end_node(handle).map_err(Error::Writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sample()` with `/chosen/bootargs` turned into NOP tokens in place,
    /// as libfdt's `fdt_delprop` (`fdt_nop_property`) leaves it.
    fn sample_with_nops() -> Vec<u8> {
        let mut blob = sample();
        let value = b"console=ttyAMA0\0";
        let at = blob.windows(value.len()).position(|w| w == value).unwrap();
        let start = at - 12;
        let end = (at + value.len()).next_multiple_of(4);
        for word in blob[start..end].chunks_exact_mut(4) {
            word.copy_from_slice(&4u32.to_be_bytes());
        }
        blob
    }

    #[test]
    fn nops_left_by_libfdt_are_removed_before_parsing() {
        let blob = sample_with_nops();
        assert!(Dtb::parse(&blob).is_err(), "parse still refuses NOPs");
        let clean = without_nops(&blob).unwrap().unwrap();
        let dtb = Dtb::parse(&clean).unwrap();
        assert_eq!(dtb.property("/chosen", "bootargs"), None);
        assert!(dtb.property("/chosen", "linux,kho-fdt").is_some());
        assert_eq!(
            dtb.memory_regions(),
            Dtb::parse(&sample()).unwrap().memory_regions()
        );
        // Nothing to do without NOPs; damage is still refused.
        assert_eq!(without_nops(&sample()).unwrap(), None);
        assert!(without_nops(&blob[..blob.len() / 2]).is_err());
    }

    #[test]
    fn cell_counts_above_two_are_refused() {
        for (ac, sc) in [(3u32, 2u32), (2, 3), (u32::MAX, 1), (1, u32::MAX)] {
            let mut w = FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            w.property_u32("#address-cells", ac).unwrap();
            w.property_u32("#size-cells", sc).unwrap();
            let mem = w.begin_node("memory@40000000").unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", &[0x4000_0000, 0x2000_0000])
                .unwrap();
            w.end_node(mem).unwrap();
            w.end_node(root).unwrap();
            let blob = w.finish().unwrap();
            let dtb = Dtb::parse(&blob).unwrap();
            assert_eq!(dtb.root_cells(), None, "{ac} {sc}");
            assert!(dtb.memory_regions().is_empty());
            assert_eq!(decode_pairs(&[0; 16], ac, sc).count(), 0);
            let want = (ac.min(2) + sc.min(2)) as usize * 4;
            assert_eq!(encode_pair(1, 2, ac, sc).len(), want);
        }
    }

    fn sample() -> Vec<u8> {
        let mut w =
            FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0x4800_0000, 0x1000).unwrap()])
                .unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("model", "linux,dummy-virt").unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x2000_0000])
            .unwrap();
        w.end_node(mem).unwrap();
        let mem = w.begin_node("memory@60000000").unwrap();
        w.property_u32("numa-node-id", 1).unwrap();
        w.property_array_u64("reg", &[0x6000_0000, 0x1000_0000])
            .unwrap();
        w.end_node(mem).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.property("linux,kho-fdt", &encode_pair(0x1, 0x2, 2, 2))
            .unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// A DTB the strict parser refuses for a defect in a node the boot
    /// does not need still gives its memory map and command line.
    #[test]
    fn salvage_reads_memory_and_bootargs_past_other_defects() {
        let good = sample();
        let want = Salvaged {
            memory: dtb_regions(&good),
            bootargs: Some(b"console=ttyAMA0".to_vec()),
        };
        assert_eq!(salvage(&good).unwrap(), want);
        // A node name with a '/' inside (the first child after the root's
        // properties): refused by Dtb::parse, read past by salvage.
        let mut bad = good.clone();
        let at = bad
            .windows(15)
            .position(|w| w == b"memory@40000000")
            .unwrap();
        bad[at + 6] = b'/';
        assert!(Dtb::parse(&bad).is_err());
        let mut got = salvage(&bad).unwrap();
        assert_eq!(got.bootargs, want.bootargs);
        // That node is no longer named memory: only the second one counts.
        assert_eq!(got.memory, want.memory[1..]);
        // An unknown token after the memory nodes: the walk stops there
        // and keeps what it read.
        let mut cut = good.clone();
        let chosen = cut.windows(7).position(|w| w == b"chosen\0").unwrap();
        cut[chosen - 4..chosen].copy_from_slice(&7u32.to_be_bytes());
        assert!(Dtb::parse(&cut).is_err());
        got = salvage(&cut).unwrap();
        assert_eq!(got.memory, want.memory);
        assert_eq!(got.bootargs, None);
        // A broken header is still an error.
        let mut header = good.clone();
        header[0] = 0;
        assert!(salvage(&header).is_err());
        assert!(salvage(&good[..good.len() / 2]).is_err());
    }

    fn dtb_regions(blob: &[u8]) -> Vec<MemoryRegion> {
        Dtb::parse(blob).unwrap().memory_regions()
    }

    #[test]
    fn lookups_and_regs() {
        let blob = sample();
        let dtb = Dtb::parse(&blob).unwrap();
        assert_eq!(dtb.root_cells(), Some((2, 2)));
        assert_eq!(
            dtb.property("/chosen", "bootargs"),
            Some(&b"console=ttyAMA0\0"[..])
        );
        assert_eq!(
            dtb.memory_regions(),
            [
                MemoryRegion {
                    address: 0x4000_0000,
                    size: 0x2000_0000,
                    numa_node: None
                },
                MemoryRegion {
                    address: 0x6000_0000,
                    size: 0x1000_0000,
                    numa_node: Some(1)
                },
            ]
        );
        assert_eq!(dtb.property("/nope", "x"), None);
    }

    #[test]
    fn pairs_round_trip_with_any_cell_sizes() {
        for (ac, sc) in [(2, 2), (2, 1), (1, 1), (1, 2)] {
            let bytes = encode_pair(0x4321_0000, 0x1000, ac, sc);
            assert_eq!(bytes.len(), ((ac + sc) * 4) as usize);
            assert_eq!(
                decode_pairs(&bytes, ac, sc).collect::<Vec<_>>(),
                [(0x4321_0000, 0x1000)]
            );
        }
        assert_eq!(
            encode_pair(0x1_2345_6789, 0x10, 2, 1),
            [0, 0, 0, 1, 0x23, 0x45, 0x67, 0x89, 0, 0, 0, 0x10]
        );
        assert_eq!(decode_pairs(&[0; 12], 2, 2).count(), 0);
    }

    #[test]
    fn rewrite_replaces_deletes_and_creates() {
        let blob = sample();
        let dtb = Dtb::parse(&blob).unwrap();
        let fdt = encode_pair(0x4100_0000, 0x1000, 2, 2);
        let out = dtb
            .rewrite(&[
                Edit::Set {
                    path: "/chosen",
                    name: "linux,kho-fdt",
                    value: &fdt,
                },
                Edit::Set {
                    path: "/chosen",
                    name: "bootargs",
                    value: b"kho=on\0",
                },
                Edit::Delete {
                    path: "/",
                    name: "model",
                },
                Edit::Set {
                    path: "/extra",
                    name: "x",
                    value: &[1],
                },
            ])
            .unwrap();
        let again = Dtb::parse(&out).unwrap();
        assert_eq!(again.property("/chosen", "linux,kho-fdt"), Some(&fdt[..]));
        assert_eq!(
            again.property("/chosen", "bootargs"),
            Some(&b"kho=on\0"[..])
        );
        assert_eq!(again.property("/", "model"), None);
        assert_eq!(again.property("/extra", "x"), Some(&[1u8][..]));
        assert_eq!(again.memory_regions(), dtb_regions(&blob));
        assert_eq!(again.memory_regions()[1].numa_node, Some(1));
        assert_eq!(
            again.valid.mem_reservations().collect::<Vec<_>>(),
            [(0x4800_0000, 0x1000)]
        );
        // Without edits the tree is unchanged.
        let same = Dtb::parse(&blob).unwrap().rewrite(&[]).unwrap();
        assert_eq!(same, blob);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Dtb::parse(&[0u8; 64]).is_err());
        assert!(without_nops(&[0u8; 64]).is_err());
        let blob = sample();
        for cut in [10, 40, blob.len() / 2] {
            assert!(Dtb::parse(&blob[..cut]).is_err());
        }
    }
}
