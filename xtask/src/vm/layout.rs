//! What a scenario's memory must look like, derived independently of the
//! stub: each NUMA node's span of guest-physical RAM (from QEMU's `-m` and
//! `-numa` split), the scratch sizes `kho_scratch=` asks for, and the
//! loaded size of the stub image (the input of percentage sizing).
//!
//! The checker compares these with what the stub reports (`KHO memory`,
//! `KHO scratch`); see docs/TESTING.md, "What a run must show".

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// One MiB.
pub(crate) const MIB: u64 = 1 << 20;
/// Scratch areas are whole 2 MiB pageblocks (kho-abi `scratch::AREA_ALIGN`).
pub(crate) const AREA_ALIGN: u64 = 2 * MIB;
/// Upstream's default scale when `kho_scratch=` is absent.
pub(crate) const DEFAULT_SCALE_PERCENT: u64 = kho_scratch::DEFAULT_SCALE_PERCENT as u64;

/// A half-open guest-physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Span {
    /// `[addr, addr + size)`, or `None` if it wraps.
    pub(crate) fn at(addr: u64, size: u64) -> Option<Span> {
        Some(Span {
            start: addr,
            end: addr.checked_add(size)?,
        })
    }

    pub(crate) fn contains(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub(crate) fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub(crate) fn size(&self) -> u64 {
        self.end - self.start
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

/// The board's RAM model: where `-m` RAM starts, and how much of it the
/// flat model covers (RAM is one contiguous run from the base up to this).
fn ram_model(arch: &str) -> Option<(u64, u64)> {
    match arch {
        // `pc` (i440fx): RAM from 0, contiguous while it stays below the
        // 32-bit PCI hole (QEMU splits it around 4 GiB from 3.5 GiB up).
        "x86_64" => Some((0, 0xe000_0000)),
        // `virt`: RAM from 1 GiB, contiguous.
        "aarch64" => Some((0x4000_0000, 255 << 30)),
        _ => None,
    }
}

/// x86_64 `pc` with more RAM than the flat model: QEMU keeps 3 GiB below
/// the 32-bit PCI hole and puts the rest at 4 GiB (`gigabyte_align`).
const X86_LOW_SPLIT: u64 = 0xc000_0000;
const X86_HIGH_START: u64 = 4 << 30;

/// Each NUMA node's span of guest-physical RAM: QEMU gives node `i` the
/// `i`-th `memory / nodes` bytes of RAM (one memdev each, in `-numa` order);
/// without NUMA, node 0 is all of it. The firmware's holes (x86: below
/// 1 MiB, a few pages at the top) are inside these spans, and so is the
/// x86 PCI hole of a guest with more than 3.5 GiB ([`node_holes`]).
pub(crate) fn node_spans(arch: &str, memory_mib: u64, numa_nodes: u32) -> Result<Vec<Span>> {
    let Some((base, limit)) = ram_model(arch) else {
        bail!("no RAM model for arch {arch} (xtask/src/vm/layout.rs)");
    };
    let bytes = memory_mib
        .checked_mul(MIB)
        .context("memory size overflows")?;
    if arch == "x86_64" && bytes > limit {
        ensure!(
            numa_nodes <= 1,
            "{memory_mib} MiB on x86_64 splits around the PCI hole: one NUMA node only (xtask/src/vm/layout.rs)"
        );
        return Ok(vec![Span {
            start: 0,
            end: X86_HIGH_START + (bytes - X86_LOW_SPLIT),
        }]);
    }
    ensure!(
        bytes <= limit,
        "{memory_mib} MiB on {arch} is past the flat RAM model ({} MiB; xtask/src/vm/layout.rs)",
        limit / MIB
    );
    let nodes = u64::from(numa_nodes.max(1));
    let per = bytes / nodes;
    Ok((0..nodes)
        .map(|i| Span {
            start: base + i * per,
            end: base + (i + 1) * per,
        })
        .collect())
}

/// Bytes of each node's span ([`node_spans`]) that are not RAM by the
/// board's design: the x86 PCI hole between 3 and 4 GiB of a guest too big
/// for the flat model, else nothing.
pub(crate) fn node_holes(arch: &str, memory_mib: u64, numa_nodes: u32) -> Vec<u64> {
    let nodes = numa_nodes.max(1) as usize;
    let big = ram_model(arch).is_some_and(|(_, limit)| memory_mib.saturating_mul(MIB) > limit);
    let mut holes = vec![0; nodes];
    if arch == "x86_64" && big {
        holes[0] = X86_HIGH_START - X86_LOW_SPLIT;
    }
    holes
}

/// `kho_scratch=` as the harness reads it (Linux's `kho_parse_scratch_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScratchSpec {
    /// `L,G,P`: lowmem, global, per-node sizes in bytes.
    Explicit { lowmem: u64, global: u64, node: u64 },
    /// `N%` (or absent: 200 %) of the kernel's boot allocations.
    Scale { percent: u64 },
}

impl std::fmt::Display for ScratchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScratchSpec::Explicit {
                lowmem,
                global,
                node,
            } => write!(f, "kho_scratch={lowmem:#x},{global:#x},{node:#x}"),
            ScratchSpec::Scale { percent } => write!(f, "kho_scratch={percent}%"),
        }
    }
}

/// The `kho_scratch=` of a command line (the last one wins, as in Linux);
/// none means the default scale.
pub(crate) fn scratch_spec(cmdline: &str) -> Result<ScratchSpec> {
    let Some(value) = cmdline
        .split_whitespace()
        .rev()
        .find_map(|t| t.strip_prefix("kho_scratch="))
    else {
        return Ok(ScratchSpec::Scale {
            percent: DEFAULT_SCALE_PERCENT,
        });
    };
    // The stub's own parser (Linux's kho_parse_scratch_size and memparse):
    // the harness predicts what the stub computes from the same text.
    match kho_scratch::parse_kho_scratch(value)
        .with_context(|| format!("kho_scratch={value}: want N% or three sizes L,G,P"))?
    {
        kho_scratch::ScratchSpec::Scale { percent } => Ok(ScratchSpec::Scale {
            percent: u64::from(percent),
        }),
        kho_scratch::ScratchSpec::Explicit {
            lowmem,
            global,
            per_node,
        } => Ok(ScratchSpec::Explicit {
            lowmem,
            global,
            node: per_node,
        }),
    }
}

/// The sizes of freshly placed scratch areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FreshSizes {
    pub(crate) lowmem: u64,
    pub(crate) global: u64,
    /// Every node's area.
    pub(crate) node: u64,
}

/// Rounded up to a pageblock, at least one (kho-scratch's minimum).
fn area(bytes: u64) -> u64 {
    bytes.div_ceil(AREA_ALIGN).max(1) * AREA_ALIGN
}

/// The sizes a cold boot must place for `spec`.
///
/// Explicit sizes are rounded up to 2 MiB. A scale applies to the kernel's
/// boot allocations, which for the stub are its own loaded image
/// (`image_bytes`, `.bss` and stack included), all below the low-memory
/// limit and on no node: so lowmem = round_up(image × N / 100, 2 MiB),
/// global = round_up(total − lowmem = 0) and each node = 0, both raised to
/// the 2 MiB minimum. `None` if a scale needs the image size and it is unknown.
pub(crate) fn fresh_sizes(spec: ScratchSpec, image_bytes: Option<u64>) -> Option<FreshSizes> {
    match spec {
        ScratchSpec::Explicit {
            lowmem,
            global,
            node,
        } => Some(FreshSizes {
            lowmem: area(lowmem),
            global: area(global),
            node: area(node),
        }),
        ScratchSpec::Scale { percent } => {
            let scaled = u128::from(image_bytes?) * u128::from(percent) / 100;
            Some(FreshSizes {
                lowmem: area(u64::try_from(scaled).ok()?),
                global: AREA_ALIGN,
                node: AREA_ALIGN,
            })
        }
    }
}

/// The bytes the stub image occupies once loaded, `.bss` and stack
/// included: for an ELF (x86_64), the extent of its `PT_LOAD` segments; for
/// an arm64 `Image`, the header's `image_size`.
pub(crate) fn loaded_image_bytes(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    image_bytes_of(&data).with_context(|| format!("{}: loaded size", path.display()))
}

/// [`loaded_image_bytes`] of the file's contents.
pub(crate) fn image_bytes_of(data: &[u8]) -> Result<u64> {
    const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";
    if data.starts_with(&elf::ELFMAG) {
        let header = elf::FileHeader64::<object::Endianness>::parse(data)
            .ok()
            .context("not a 64-bit ELF file")?;
        let endian = header.endian().ok().context("bad ELF byte order")?;
        let headers = header
            .program_headers(endian, data)
            .ok()
            .context("bad ELF program headers")?;
        let mut extent: Option<(u64, u64)> = None;
        for ph in headers {
            if ph.p_type(endian) != elf::PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let start = ph.p_paddr(endian);
            let end = start
                .checked_add(ph.p_memsz(endian))
                .context("a PT_LOAD segment wraps")?;
            extent = Some(extent.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
        }
        let (start, end) = extent.context("no PT_LOAD segment")?;
        Ok(end - start)
    } else if data.get(56..60) == Some(ARM64_MAGIC) {
        let field: [u8; 8] = data
            .get(16..24)
            .and_then(|b| b.try_into().ok())
            .context("arm64 Image header too short")?;
        let size = u64::from_le_bytes(field);
        ensure!(size > 0, "arm64 Image header: image_size is 0");
        Ok(size)
    } else {
        bail!("neither an ELF file nor an arm64 Image")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_ram_above_the_pci_hole() {
        assert_eq!(
            node_spans("x86_64", 5 * 1024, 1).unwrap(),
            [Span {
                start: 0,
                end: 6 << 30
            }]
        );
        assert_eq!(node_holes("x86_64", 5 * 1024, 1), [1 << 30]);
        assert_eq!(node_holes("x86_64", 512, 1), [0]);
        assert_eq!(node_holes("aarch64", 5 * 1024, 1), [0]);
        assert!(node_spans("x86_64", 5 * 1024, 2).is_err());
    }

    #[test]
    fn node_spans_follow_the_memdev_split() {
        assert_eq!(
            node_spans("x86_64", 512, 0).unwrap(),
            [Span {
                start: 0,
                end: 0x2000_0000
            }]
        );
        let arm = node_spans("aarch64", 2048, 4).unwrap();
        assert_eq!(arm.len(), 4);
        assert_eq!(
            arm[0],
            Span {
                start: 0x4000_0000,
                end: 0x6000_0000
            }
        );
        assert_eq!(
            arm[3],
            Span {
                start: 0xa000_0000,
                end: 0xc000_0000
            }
        );
        let e = node_spans("x86_64", 4096, 2).unwrap_err().to_string();
        assert!(e.contains("one NUMA node only"), "{e}");
        let e = node_spans("aarch64", 256 * 1024, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the flat RAM model"), "{e}");
        assert!(node_spans("riscv64", 512, 0).is_err());
    }

    #[test]
    fn spans() {
        let a = Span::at(0x1000, 0x1000).unwrap();
        assert!(a.contains(&Span::at(0x1800, 0x800).unwrap()));
        assert!(!a.contains(&Span::at(0x1800, 0x801).unwrap()));
        assert!(a.overlaps(&Span::at(0x1fff, 1).unwrap()));
        assert!(!a.overlaps(&Span::at(0x2000, 1).unwrap()));
        assert_eq!(Span::at(u64::MAX, 2), None);
        assert_eq!(a.to_string(), "[0x1000, 0x2000)");
        assert_eq!(a.size(), 0x1000);
    }

    #[test]
    fn kho_scratch_forms() {
        assert_eq!(
            scratch_spec("reserve_mem=64K:4K:kho_log").unwrap(),
            ScratchSpec::Scale { percent: 200 }
        );
        assert_eq!(
            scratch_spec("kho_scratch=50% x=1").unwrap(),
            ScratchSpec::Scale { percent: 50 }
        );
        assert_eq!(
            scratch_spec("kho_scratch=1% kho_scratch=7M,33m,0x500000").unwrap(),
            ScratchSpec::Explicit {
                lowmem: 7 * MIB,
                global: 33 * MIB,
                node: 0x50_0000
            }
        );
        assert_eq!(
            scratch_spec("kho_scratch=1G,2048K,1").unwrap(),
            ScratchSpec::Explicit {
                lowmem: 1 << 30,
                global: 2 * MIB,
                node: 1
            }
        );
        for bad in [
            "kho_scratch=x%",
            "kho_scratch=1M,2M",
            "kho_scratch=1M,2Q,3M",
        ] {
            assert!(scratch_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_sizes_round_up_with_a_minimum() {
        let explicit = ScratchSpec::Explicit {
            lowmem: 7 * MIB,
            global: 33 * MIB,
            node: 0,
        };
        assert_eq!(
            fresh_sizes(explicit, None),
            Some(FreshSizes {
                lowmem: 8 * MIB,
                global: 34 * MIB,
                node: 2 * MIB
            })
        );
        // The x86_64 stub of this writing: 0x471000 bytes loaded.
        let half = ScratchSpec::Scale { percent: 50 };
        assert_eq!(
            fresh_sizes(half, Some(0x47_1000)),
            Some(FreshSizes {
                lowmem: 4 * MIB,
                global: 2 * MIB,
                node: 2 * MIB
            })
        );
        assert_eq!(
            fresh_sizes(ScratchSpec::Scale { percent: 200 }, Some(0x47_1000)).map(|s| s.lowmem),
            Some(10 * MIB)
        );
        assert_eq!(fresh_sizes(half, None), None);
    }

    #[test]
    fn image_sizes() {
        let mut arm = vec![0u8; 64];
        arm[16..24].copy_from_slice(&0x46_2000u64.to_le_bytes());
        arm[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(image_bytes_of(&arm).unwrap(), 0x46_2000);
        arm[16..24].fill(0);
        assert!(image_bytes_of(&arm).is_err());
        assert!(image_bytes_of(b"not an image").is_err());
        assert!(image_bytes_of(b"\x7fELF").is_err());
    }

    #[test]
    fn elf_image_size_is_the_extent_of_its_load_segments() {
        // A minimal ELF64 header with two PT_LOAD program headers.
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[6] = 1; // version
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86_64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        for (i, (paddr, memsz)) in [(0x10_0000u64, 0x1000u64), (0x14_9000, 0x42_8000)]
            .iter()
            .enumerate()
        {
            let ph = &mut elf[64 + i * 56..64 + (i + 1) * 56];
            ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        }
        assert_eq!(image_bytes_of(&elf).unwrap(), 0x47_1000);
    }
}
