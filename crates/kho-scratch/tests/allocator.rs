//! `ScratchAllocator` against a page-bitmap model: in scratch-only mode it
//! never hands out memory outside scratch, it never hands out reserved or
//! already allocated pages, and it is first fit.

use kho_mem::{PhysAddr, PhysRange};
use kho_scratch::{Error, MemKind, MemRegion, NodeId, ScratchAllocator, ScratchAreas};
use proptest::prelude::*;

const PAGE: u64 = 4096;
const BASE_PAGE: u64 = 0x4000_0000 / PAGE;
const PAGES: usize = 512;

fn r(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(a), s).unwrap()
}

/// A byte range `[page + off, page + off + len)` relative to the base,
/// clipped to the model's window.
fn bytes((page, off, len): (u64, u64, u64)) -> PhysRange {
    let start = (BASE_PAGE + page) * PAGE + off;
    let window_end = (BASE_PAGE + PAGES as u64) * PAGE;
    r(start, len.min(window_end - start))
}

#[derive(Debug, Clone)]
enum Op {
    Reserve((u64, u64, u64)),
    Alloc { size: u64, align_log2: u32 },
    End(Vec<((u64, u64, u64), bool)>),
}

fn byte_range(max_len: u64) -> impl Strategy<Value = (u64, u64, u64)> {
    (
        0..PAGES as u64,
        prop::sample::select(&[0u64, 1, 0x800, 0xfff][..]),
        1..max_len,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => byte_range(16 * PAGE).prop_map(Op::Reserve),
        6 => (1u64..24 * PAGE, 0u32..20).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        1 => prop::collection::vec((byte_range(256 * PAGE), prop::bool::weighted(0.8)), 0..4)
            .prop_map(Op::End),
    ]
}

/// Pages fully inside `range`, as indices into the model.
fn inner_pages(range: PhysRange) -> impl Iterator<Item = usize> {
    let start = range.start().as_u64().div_ceil(PAGE);
    let end = (range.start().as_u64() + range.size()) / PAGE;
    (start..end.max(start))
        .filter_map(|p| p.checked_sub(BASE_PAGE))
        .map(|p| p as usize)
}

/// Pages touching `range`.
fn outer_pages(range: PhysRange) -> impl Iterator<Item = usize> {
    let start = range.start().as_u64() / PAGE;
    let end = (range.start().as_u64() + range.size()).div_ceil(PAGE);
    (start..end)
        .filter_map(|p| p.checked_sub(BASE_PAGE))
        .map(|p| p as usize)
}

struct Model {
    scratch: Vec<bool>,
    ram: Vec<bool>,
    used: Vec<bool>,
    scratch_only: bool,
}

impl Model {
    fn in_pool(&self, p: usize) -> bool {
        p < PAGES && (self.scratch[p] || (!self.scratch_only && self.ram[p]))
    }

    /// First fit by brute force (page index).
    fn first_fit(&self, pages: usize, align_pages: usize) -> Option<usize> {
        (0..PAGES)
            .filter(|c| (BASE_PAGE as usize + c).is_multiple_of(align_pages))
            .find(|&c| (c..c + pages).all(|p| self.in_pool(p) && !self.used[p]))
    }
}

fn run(areas: Vec<(u64, u64, u64)>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ranges: Vec<PhysRange> = areas.into_iter().map(bytes).collect();
    let scratch_areas = ScratchAreas::from_ranges(&ranges).unwrap();
    let mut alloc: ScratchAllocator<1024> = ScratchAllocator::new(&scratch_areas);
    let mut model = Model {
        scratch: vec![false; PAGES],
        ram: vec![false; PAGES],
        used: vec![false; PAGES],
        scratch_only: true,
    };
    for &range in &ranges {
        for p in inner_pages(range).filter(|&p| p < PAGES) {
            model.scratch[p] = true;
        }
    }

    for op in ops {
        match op {
            Op::Reserve(b) => {
                let range = bytes(b);
                alloc.reserve(range).unwrap();
                for p in outer_pages(range).filter(|&p| p < PAGES) {
                    model.used[p] = true;
                }
            }
            Op::End(regions) => {
                let map: Vec<MemRegion> = regions
                    .iter()
                    .map(|&(b, usable)| {
                        let kind = if usable {
                            MemKind::Usable
                        } else {
                            MemKind::Reserved
                        };
                        MemRegion::new(bytes(b), kind, NodeId::ZERO)
                    })
                    .collect();
                alloc.end_scratch_only(&map).unwrap();
                model.ram = vec![false; PAGES];
                for m in map.iter().filter(|m| m.kind.is_usable()) {
                    for p in inner_pages(m.range).filter(|&p| p < PAGES) {
                        model.ram[p] = true;
                    }
                }
                model.scratch_only = false;
            }
            Op::Alloc { size, align_log2 } => {
                let align = 1u64 << align_log2;
                let pages = size.div_ceil(PAGE) as usize;
                let align_pages = (align / PAGE).max(1) as usize;
                let want = model.first_fit(pages, align_pages);
                match alloc.alloc(size, align) {
                    Ok(got) => {
                        let first = (got.start().as_u64() / PAGE - BASE_PAGE) as usize;
                        prop_assert_eq!(Some(first), want, "first fit");
                        prop_assert_eq!(got.size(), pages as u64 * PAGE);
                        prop_assert!(got.start().is_aligned(align.max(PAGE)));
                        for p in first..first + pages {
                            prop_assert!(p < PAGES && model.in_pool(p) && !model.used[p]);
                            if model.scratch_only {
                                prop_assert!(
                                    model.scratch[p],
                                    "outside scratch in scratch-only mode"
                                );
                            }
                            model.used[p] = true;
                        }
                    }
                    Err(Error::OutOfMemory { scratch_only, .. }) => {
                        prop_assert_eq!(want, None);
                        prop_assert_eq!(scratch_only, model.scratch_only);
                    }
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
            }
        }
        prop_assert_eq!(alloc.is_scratch_only(), model.scratch_only);
    }
    // The reservation list is exactly the used pages, merged.
    let mut expect = Vec::new();
    let mut p = 0;
    while p < PAGES {
        if model.used[p] {
            let s = p;
            while p < PAGES && model.used[p] {
                p += 1;
            }
            expect.push(r((BASE_PAGE + s as u64) * PAGE, (p - s) as u64 * PAGE));
        } else {
            p += 1;
        }
    }
    prop_assert_eq!(alloc.reserved().collect::<Vec<_>>(), expect);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_model(
        areas in prop::collection::vec(byte_range(96 * PAGE), 0..5),
        ops in prop::collection::vec(op(), 1..48),
    ) {
        run(areas, ops)?;
    }
}

#[test]
fn overlapping_and_touching_areas_form_one_pool() {
    // Two touching areas and one overlapping both: a 3-page block fits
    // across them.
    let p = |n: u64| (BASE_PAGE + n) * PAGE;
    let areas =
        ScratchAreas::from_ranges(&[r(p(0), 2 * PAGE), r(p(2), 2 * PAGE), r(p(1), 2 * PAGE)])
            .unwrap();
    let mut alloc: ScratchAllocator = ScratchAllocator::new(&areas);
    assert_eq!(alloc.alloc(4 * PAGE, PAGE), Ok(r(p(0), 4 * PAGE)));
    assert!(alloc.alloc(1, 1).is_err());
}
