//! Placement on realistic and synthetic memory maps, plus error cases.

use super::*;
use crate::{BootUsage, MemKind, ScratchSpec, check_no_overlap};

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn r(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(a), s).unwrap()
}

/// `[start, end]` inclusive, as e820 dumps print it.
fn e820(start: u64, last: u64, kind: u32, node: u32) -> MemRegion {
    MemRegion::new(
        r(start, last - start + 1),
        MemKind::from_e820(kind),
        NodeId::new(node),
    )
}

/// QEMU q35 with `-m 6G` (BIOS e820): the 640 KiB hole, the BIOS area, the
/// 2 GiB q35 low-RAM split with MMCONFIG and the PCI hole up to 4 GiB, and
/// RAM above 4 GiB. `high_node` is the node of the RAM above 4 GiB.
fn q35_6g(high_node: u32) -> [MemRegion; 10] {
    [
        e820(0x0, 0x9_fbff, 1, 0),
        e820(0x9_fc00, 0x9_ffff, 2, 0),
        e820(0xf_0000, 0xf_ffff, 2, 0),
        e820(0x10_0000, 0x7ffd_bfff, 1, 0),
        e820(0x7ffd_c000, 0x7fff_ffff, 2, 0),
        e820(0xb000_0000, 0xbfff_ffff, 2, 0),
        e820(0xfed1_c000, 0xfed1_ffff, 2, 0),
        e820(0xfeff_c000, 0xfeff_ffff, 2, 0),
        e820(0xfffc_0000, 0xffff_ffff, 2, 0),
        e820(0x1_0000_0000, 0x1_ffff_ffff, 1, high_node),
    ]
}

/// What an x86 kernel has in use when it places scratch: the first MiB
/// (real mode, BIOS), the kernel image at 16 MiB, an initrd high in low RAM.
const X86_IN_USE: [PhysRange; 3] = {
    const fn c(a: u64, s: u64) -> PhysRange {
        match PhysRange::try_new(PhysAddr::new(a), s) {
            Ok(r) => r,
            Err(_) => panic!(),
        }
    }
    [c(0, M), c(16 * M, 32 * M), c(0x7f00_0000, 4 * M)]
};

fn explicit(l: u64, g: u64, p: u64) -> ScratchSizes {
    ScratchSizes::explicit(l, g, p).unwrap()
}

fn ranges(areas: &ScratchAreas) -> std::vec::Vec<(AreaKind, PhysRange)> {
    areas.iter().map(|a| (a.kind, a.range)).collect()
}

fn node(n: u32) -> AreaKind {
    AreaKind::Node(NodeId::new(n))
}

#[test]
fn qemu_x86_one_node() {
    let map = q35_6g(0);
    let areas = place_scratch(
        &map,
        &X86_IN_USE,
        &explicit(16 * M, 512 * M, 256 * M),
        LowLimit::X86_64,
    )
    .unwrap();
    assert_eq!(
        ranges(&areas),
        [
            // Below 4 GiB the top of RAM is 0x7ffd_c000; the initrd at
            // 0x7f00_0000 pushes lowmem one step down.
            (AreaKind::Lowmem, r(0x7e00_0000, 16 * M)),
            (AreaKind::Global, r(0x1_e000_0000, 512 * M)),
            (node(0), r(0x1_d000_0000, 256 * M)),
        ]
    );
}

#[test]
fn qemu_x86_two_nodes() {
    // Node 0 = RAM below 4 GiB, node 1 = RAM above.
    let map = q35_6g(1);
    let areas = place_scratch(
        &map,
        &X86_IN_USE,
        &explicit(16 * M, 512 * M, 256 * M),
        LowLimit::X86_64,
    )
    .unwrap();
    assert_eq!(
        ranges(&areas),
        [
            (AreaKind::Lowmem, r(0x7e00_0000, 16 * M)),
            (AreaKind::Global, r(0x1_e000_0000, 512 * M)),
            // Highest 256 MiB of node 0 below the lowmem area.
            (node(0), r(0x6e00_0000, 256 * M)),
            (node(1), r(0x1_d000_0000, 256 * M)),
        ]
    );
}

#[test]
fn qemu_x86_small_vm_everything_below_4g() {
    // -m 2G: no RAM above 4 GiB, so every area shares low RAM.
    let map = &q35_6g(0)[..9];
    let areas = place_scratch(
        map,
        &X86_IN_USE,
        &explicit(16 * M, 512 * M, 256 * M),
        LowLimit::X86_64,
    )
    .unwrap();
    assert_eq!(
        ranges(&areas),
        [
            (AreaKind::Lowmem, r(0x7e00_0000, 16 * M)),
            (AreaKind::Global, r(0x5e00_0000, 512 * M)),
            (node(0), r(0x4e00_0000, 256 * M)),
        ]
    );
}

/// QEMU arm64 `virt`, RAM at 1 GiB, four 1 GiB NUMA nodes back to back.
fn virt_4_nodes() -> [MemRegion; 4] {
    [0, 1, 2, 3].map(|n| MemRegion::ram(r((1 + u64::from(n)) * G, G), NodeId::new(n)))
}

#[test]
fn qemu_arm64_four_nodes_default_sizing() {
    let map = virt_4_nodes();
    // The DTB at the start of RAM, the kernel Image at 2 MiB.
    let in_use = [r(0x4000_0000, M), r(0x4020_0000, 32 * M)];
    let usage = BootUsage::new(48 * M, 64 * M)
        .with_node(NodeId::new(0), 40 * M)
        .and_then(|u| u.with_node(NodeId::new(1), 8 * M))
        .and_then(|u| u.with_node(NodeId::new(3), 16 * M))
        .unwrap();
    let sizes = ScratchSizes::compute(ScratchSpec::default(), &usage).unwrap();
    let low = LowLimit::arm64(r(G, 4 * G));
    assert_eq!(low.get(), PhysAddr::new(0xffff_ffff));
    let areas = place_scratch(&map, &in_use, &sizes, low).unwrap();
    assert_eq!(
        ranges(&areas),
        [
            (AreaKind::Lowmem, r(0xf9e0_0000, 96 * M)),
            (AreaKind::Global, r(0x1_3e00_0000, 32 * M)),
            (node(0), r(0x7b00_0000, 80 * M)),
            (node(1), r(0xbf00_0000, 16 * M)),
            // Node 2's allocation was zero: the 2 MiB minimum, in the
            // pageblock the lowmem area could not use (limit = 4 GiB - 1).
            (node(2), r(0xffe0_0000, 2 * M)),
            (node(3), r(0x1_3c00_0000, 32 * M)),
        ]
    );
}

#[test]
fn qemu_arm64_one_node_small_ram() {
    let ram = r(0x4000_0000, 512 * M);
    let map = [MemRegion::ram(ram, NodeId::ZERO)];
    let low = LowLimit::arm64(ram);
    assert_eq!(low.get(), PhysAddr::new(0x5fff_ffff));
    let areas = place_scratch(&map, &[], &explicit(2 * M, 2 * M, 2 * M), low).unwrap();
    assert_eq!(
        ranges(&areas),
        [
            (AreaKind::Lowmem, r(0x5fc0_0000, 2 * M)),
            (AreaKind::Global, r(0x5fe0_0000, 2 * M)),
            (node(0), r(0x5fa0_0000, 2 * M)),
        ]
    );
}

#[test]
fn areas_never_straddle_nodes() {
    // Two adjacent 64 MiB nodes: 96 MiB is contiguous RAM but spans both.
    let map = [
        MemRegion::ram(r(G, 64 * M), NodeId::new(0)),
        MemRegion::ram(r(G + 64 * M, 64 * M), NodeId::new(1)),
    ];
    let err = place_scratch(&map, &[], &explicit(2 * M, 96 * M, 2 * M), LowLimit::X86_64);
    assert_eq!(
        err,
        Err(Error::DoesNotFit {
            area: AreaKind::Global,
            size: 96 * M,
            searched: r(0x1000, u64::MAX - 0xfff),
        })
    );
    // Split into adjacent entries of the *same* node, it fits.
    let map = [
        MemRegion::ram(r(G, 64 * M), NodeId::new(0)),
        MemRegion::ram(r(G + 64 * M, 64 * M), NodeId::new(0)),
    ];
    let areas =
        place_scratch(&map, &[], &explicit(2 * M, 96 * M, 2 * M), LowLimit::X86_64).unwrap();
    assert_eq!(areas[1].range, r(G + 30 * M, 96 * M));
}

#[test]
fn holes_and_unaligned_regions() {
    let map = [
        MemRegion::ram(r(0x1000, 64 * M - 0x1000), NodeId::ZERO),
        MemRegion::ram(r(128 * M, 2 * M), NodeId::ZERO),
        // Unaligned small region: no aligned 4 MiB block fits.
        MemRegion::ram(r(256 * M + 0x1000, 3 * M), NodeId::ZERO),
    ];
    let areas = place_scratch(&map, &[], &explicit(4 * M, 2 * M, 2 * M), LowLimit::X86_64).unwrap();
    assert_eq!(
        ranges(&areas),
        [
            (AreaKind::Lowmem, r(60 * M, 4 * M)),
            // [256M + 4K, 259M + 4K) holds no aligned 2 MiB block, so the
            // 2 MiB region below it is the highest fit.
            (AreaKind::Global, r(128 * M, 2 * M)),
            (node(0), r(58 * M, 2 * M)),
        ]
    );
}

#[test]
fn first_page_and_reserved_entries_are_avoided() {
    // Only [0, 2M) is RAM: memblock never returns address 0.
    let map = [MemRegion::ram(r(0, 4 * M), NodeId::ZERO)];
    let err = place_scratch(
        &map,
        &[r(2 * M, 2 * M)],
        &explicit(2 * M, 2 * M, 2 * M),
        LowLimit::X86_64,
    );
    assert!(matches!(
        err,
        Err(Error::DoesNotFit {
            area: AreaKind::Lowmem,
            ..
        })
    ));
    // A reserved map entry overlapping RAM wins over the RAM.
    let map = [
        MemRegion::ram(r(0, 16 * M), NodeId::ZERO),
        MemRegion::new(r(14 * M, 2 * M), MemKind::AcpiNvs, NodeId::ZERO),
    ];
    let areas = place_scratch(&map, &[], &explicit(2 * M, 2 * M, 2 * M), LowLimit::X86_64).unwrap();
    assert_eq!(areas[0].range, r(12 * M, 2 * M));
}

#[test]
fn does_not_fit_names_area_size_and_window() {
    // All RAM above 4 GiB: no lowmem area possible on x86.
    let map = [MemRegion::ram(r(8 * G, G), NodeId::ZERO)];
    assert_eq!(
        place_scratch(&map, &[], &explicit(2 * M, 2 * M, 2 * M), LowLimit::X86_64),
        Err(Error::DoesNotFit {
            area: AreaKind::Lowmem,
            size: 2 * M,
            searched: r(0x1000, 0xffff_ffff - 0x1000),
        })
    );
    // A node too small for its area.
    let map = [
        MemRegion::ram(r(G, G), NodeId::new(0)),
        MemRegion::ram(r(4 * G, 8 * M), NodeId::new(5)),
    ];
    let usage = BootUsage::new(0, 0)
        .with_node(NodeId::new(5), 8 * M)
        .unwrap();
    let sizes = ScratchSizes::compute(ScratchSpec::Scale { percent: 200 }, &usage).unwrap();
    let err = place_scratch(&map, &[], &sizes, LowLimit::X86_64).unwrap_err();
    assert_eq!(
        err,
        Error::DoesNotFit {
            area: node(5),
            size: 16 * M,
            searched: r(4 * G, 8 * M),
        }
    );
    assert_eq!(
        std::string::ToString::to_string(&err),
        "node 5 scratch area of 0x1000000 bytes does not fit in free RAM within [0x100000000, +0x800000)"
    );
}

#[test]
fn map_errors() {
    let map = [
        MemRegion::ram(r(G, G), NodeId::ZERO),
        MemRegion::ram(r(G + G / 2, G), NodeId::ZERO),
    ];
    assert_eq!(
        place_scratch(&map, &[], &explicit(2 * M, 2 * M, 2 * M), LowLimit::X86_64),
        Err(Error::MemoryMapOverlap {
            first: r(G, G),
            second: r(G + G / 2, G)
        })
    );
    let many: std::vec::Vec<MemRegion> = (0..=MAX_NUMA_NODES as u64)
        .map(|i| MemRegion::ram(r(G + i * 16 * M, 16 * M), NodeId::new(i as u32)))
        .collect();
    assert_eq!(
        place_scratch(&many, &[], &explicit(2 * M, 2 * M, 2 * M), LowLimit::X86_64),
        Err(Error::TooManyNodes {
            max: MAX_NUMA_NODES
        })
    );
    // Empty and non-usable entries do not make nodes.
    let map = [
        MemRegion::ram(r(G, G), NodeId::new(0)),
        MemRegion::ram(r(3 * G, 0), NodeId::new(1)),
        MemRegion::new(r(4 * G, G), MemKind::Persistent, NodeId::new(2)),
    ];
    let areas = place_scratch(&map, &[], &explicit(2 * M, 2 * M, 2 * M), LowLimit::X86_64).unwrap();
    assert_eq!(areas.len(), 3);
}

#[test]
fn preserved_blocks_in_use_are_avoided() {
    let map = virt_4_nodes();
    let preserved = [r(2 * G - 4096, 4096), r(3 * G - 64 * M, 2 * M)];
    let areas = place_scratch(
        &map,
        &preserved,
        &explicit(8 * M, 8 * M, 8 * M),
        LowLimit::NONE,
    )
    .unwrap();
    check_no_overlap(&areas, preserved).unwrap();
    assert_eq!(areas.len(), 6);
}

mod props {
    //! Placement against a brute-force oracle on 1 MiB cells.

    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const CELLS: usize = 512; // 512 MiB of address space
    const CELL: u64 = M;

    #[derive(Debug, Clone)]
    struct Case {
        /// Node of each usable 1 MiB cell.
        cells: Vec<Option<u32>>,
        /// Splits of usable runs into separate map entries.
        split_every: usize,
        reserved_entries: Vec<(usize, usize)>,
        in_use: Vec<(usize, usize)>,
        preserved: Vec<(usize, usize)>,
        low_cells: usize,
        low_minus_one: bool,
        usage: (u64, u64, Vec<u64>),
        scale: u32,
    }

    fn case() -> impl Strategy<Value = Case> {
        let runs = prop::collection::vec((1usize..64, prop::option::weighted(0.7, 0u32..4)), 1..24);
        let ranges = || prop::collection::vec((0usize..CELLS, 1usize..32), 0..6);
        (
            runs,
            1usize..8,
            ranges(),
            ranges(),
            ranges(),
            32usize..=CELLS,
            any::<bool>(),
            (0u64..16, 0u64..32, prop::collection::vec(0u64..16, 4)),
            prop::sample::select(&[50u32, 100, 200, 300][..]),
        )
            .prop_map(
                |(
                    runs,
                    split_every,
                    reserved_entries,
                    in_use,
                    preserved,
                    low_cells,
                    low_minus_one,
                    usage,
                    scale,
                )| {
                    let mut cells = Vec::with_capacity(CELLS);
                    for (len, node) in runs {
                        for _ in 0..len {
                            if cells.len() < CELLS {
                                cells.push(node);
                            }
                        }
                    }
                    cells.resize(CELLS, None);
                    Case {
                        cells,
                        split_every,
                        reserved_entries,
                        in_use,
                        preserved,
                        low_cells,
                        low_minus_one,
                        usage: (
                            usage.0 * M,
                            usage.1 * M,
                            usage.2.into_iter().map(|b| b * M).collect(),
                        ),
                        scale,
                    }
                },
            )
    }

    fn cell_range((start, len): (usize, usize)) -> PhysRange {
        let end = (start + len).min(CELLS);
        r(start as u64 * CELL, (end - start) as u64 * CELL)
    }

    impl Case {
        fn map(&self) -> Vec<MemRegion> {
            let mut map = Vec::new();
            let mut i = 0;
            while i < CELLS {
                let Some(n) = self.cells[i] else {
                    i += 1;
                    continue;
                };
                let mut j = i;
                while j < CELLS && self.cells[j] == Some(n) && j - i < self.split_every {
                    j += 1;
                }
                map.push(MemRegion::ram(
                    r(i as u64 * CELL, (j - i) as u64 * CELL),
                    NodeId::new(n),
                ));
                i = j;
            }
            for &e in &self.reserved_entries {
                map.push(MemRegion::new(
                    cell_range(e),
                    MemKind::Reserved,
                    NodeId::ZERO,
                ));
            }
            // Entries in an order that is not sorted.
            map.reverse();
            map
        }

        fn in_use(&self) -> Vec<PhysRange> {
            self.in_use
                .iter()
                .chain(&self.preserved)
                .map(|&e| cell_range(e))
                .collect()
        }

        fn low(&self) -> LowLimit {
            let v = self.low_cells as u64 * CELL;
            LowLimit::new(PhysAddr::new(if self.low_minus_one { v - 1 } else { v }))
        }

        fn sizes(&self) -> ScratchSizes {
            let (below, total, ref nodes) = self.usage;
            let mut usage = BootUsage::new(below, total);
            for (n, &b) in nodes.iter().enumerate() {
                usage = usage.with_node(NodeId::new(n as u32), b).unwrap();
            }
            ScratchSizes::compute(
                ScratchSpec::Scale {
                    percent: self.scale,
                },
                &usage,
            )
            .unwrap()
        }

        /// Top-down brute force over 2 MiB-aligned candidates.
        fn oracle(&self) -> Result<Vec<(AreaKind, PhysRange)>, AreaKind> {
            let sizes = self.sizes();
            let mut blocked = [false; CELLS];
            for e in self
                .reserved_entries
                .iter()
                .chain(&self.in_use)
                .chain(&self.preserved)
            {
                let rr = cell_range(*e);
                for c in rr.start().as_u64() / CELL..(rr.start().as_u64() + rr.size()) / CELL {
                    blocked[c as usize] = true;
                }
            }
            let mut nodes: Vec<u32> = self.cells.iter().flatten().copied().collect();
            nodes.sort_unstable();
            nodes.dedup();
            let kinds = [AreaKind::Lowmem, AreaKind::Global]
                .into_iter()
                .chain(nodes.iter().map(|&n| AreaKind::Node(NodeId::new(n))));
            let mut out = Vec::new();
            for kind in kinds {
                let size = sizes.of(kind);
                let hi = match kind {
                    AreaKind::Lowmem => u128::from(self.low().get().as_u64()),
                    _ => 1 << 64,
                };
                let want = match kind {
                    AreaKind::Node(n) => Some(n.get()),
                    _ => None,
                };
                let cells_per = (size / CELL) as usize;
                let mut found = None;
                let mut c = (CELLS as u64 * CELL / AREA_ALIGN) * AREA_ALIGN;
                while c >= AREA_ALIGN {
                    c -= AREA_ALIGN;
                    if c < PAGE_SIZE as u64 || u128::from(c + size) > hi {
                        continue;
                    }
                    let first = (c / CELL) as usize;
                    if first + cells_per > CELLS {
                        continue;
                    }
                    let span = first..first + cells_per;
                    let node0 = self.cells[first];
                    let ok = node0.is_some()
                        && want.is_none_or(|w| node0 == Some(w))
                        && span.clone().all(|i| self.cells[i] == node0 && !blocked[i]);
                    if ok {
                        found = Some(c);
                        break;
                    }
                }
                let Some(c) = found else { return Err(kind) };
                blocked[(c / CELL) as usize..][..cells_per].fill(true);
                out.push((kind, r(c, size)));
            }
            Ok(out)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn placement_matches_oracle_and_never_overlaps(case in case()) {
            let map = case.map();
            let in_use = case.in_use();
            let got = place_scratch(&map, &in_use, &case.sizes(), case.low());
            match (case.oracle(), got) {
                (Ok(want), Ok(areas)) => {
                    prop_assert_eq!(ranges(&areas), want);
                    for (i, a) in areas.iter().enumerate() {
                        prop_assert!(a.range.start().is_aligned(AREA_ALIGN));
                        prop_assert_eq!(a.range.size() % AREA_ALIGN, 0);
                        for b in &areas[i + 1..] {
                            prop_assert!(!a.range.overlaps(b.range));
                        }
                        for u in &in_use {
                            prop_assert!(!a.range.overlaps(*u));
                        }
                    }
                    let preserved = case.preserved.iter().map(|&e| cell_range(e));
                    prop_assert!(check_no_overlap(&areas, preserved).is_ok());
                }
                (Err(kind), Err(Error::DoesNotFit { area, .. })) => prop_assert_eq!(kind, area),
                (want, got) => prop_assert!(false, "oracle {:?} vs {:?}", want, got),
            }
        }
    }
}
