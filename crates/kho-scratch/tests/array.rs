//! The descriptor array through `HostMem`: round trips, and one corrupted
//! array per validation error.

use kho_abi::scratch::{DESCRIPTOR_SIZE, ScratchDescriptor};
use kho_mem::{HostMem, PhysAddr, PhysMem, PhysRange};
use kho_scratch::{
    AreaKind, Error, LowLimit, MAX_AREAS, MemRegion, NodeId, ReadPolicy, ScratchAreas,
    ScratchSizes, array_byte_len, place_scratch,
};
use proptest::prelude::*;

const M: u64 = 1 << 20;
const BASE: u64 = 0x4000_0000;
const ARRAY: u64 = BASE + 0x1000;

fn r(a: u64, s: u64) -> PhysRange {
    PhysRange::try_new(PhysAddr::new(a), s).unwrap()
}

/// 64 MiB of RAM at 1 GiB plus 16 MiB at 2 GiB (a hole in between).
fn mem() -> HostMem {
    HostMem::with_ram(&[r(BASE, 64 * M), r(0x8000_0000, 16 * M)]).unwrap()
}

/// Write raw `(addr, size)` entries at `ARRAY`; returns the byte length.
fn write_raw(mem: &mut HostMem, entries: &[(u64, u64)]) -> u64 {
    for (i, &(a, s)) in entries.iter().enumerate() {
        let at = PhysAddr::new(ARRAY + (i * DESCRIPTOR_SIZE) as u64);
        mem.write_obj(at, &ScratchDescriptor::new(a, s)).unwrap();
    }
    array_byte_len(entries.len())
}

fn read(mem: &HostMem, len: u64) -> Result<ScratchAreas, Error> {
    ScratchAreas::read_array(mem, PhysAddr::new(ARRAY), len, ReadPolicy::STRICT)
}

#[test]
fn placed_areas_round_trip_byte_exact() {
    let map = [MemRegion::ram(r(BASE, 64 * M), NodeId::ZERO)];
    let sizes = ScratchSizes::explicit(2 * M, 4 * M, 2 * M).unwrap();
    let areas = place_scratch(&map, &[r(BASE, 16 * M)], &sizes, LowLimit::X86_64).unwrap();
    let mut mem = mem();
    let written = areas.write_array(&mut mem, PhysAddr::new(ARRAY)).unwrap();
    assert_eq!(written, r(ARRAY, 48));

    // The bytes are kho-abi's layout: little-endian {addr, size} pairs.
    let mut bytes = [0u8; 48];
    mem.read(PhysAddr::new(ARRAY), &mut bytes).unwrap();
    for (i, a) in areas.iter().enumerate() {
        let e = &bytes[i * 16..i * 16 + 16];
        assert_eq!(e[..8], a.range.start().as_u64().to_le_bytes());
        assert_eq!(e[8..], a.range.size().to_le_bytes());
    }

    let back = read(&mem, written.size()).unwrap();
    assert_eq!(back.len(), 3);
    assert!(back.ranges().eq(areas.ranges()));
    assert_eq!(
        back.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [
            AreaKind::Lowmem,
            AreaKind::Global,
            AreaKind::Node(NodeId::ZERO)
        ]
    );
    assert!(back.all_area_aligned());
}

#[test]
fn page_aligned_areas_are_accepted_and_reported() {
    let mut mem = mem();
    let len = write_raw(
        &mut mem,
        &[(BASE + 0x1_0000, 0x3000), (0x8000_0000, 16 * M)],
    );
    let areas = read(&mem, len).unwrap();
    assert_eq!(areas.len(), 2);
    assert!(!areas.all_area_aligned());
    // Entries may be in any order and on any RAM region.
    let len = write_raw(&mut mem, &[(0x8000_0000, 2 * M), (BASE + 32 * M, 2 * M)]);
    assert!(read(&mem, len).unwrap().all_area_aligned());
}

#[test]
fn linux_zero_size_entries() {
    // A Linux kernel whose boot allocations all sat below 4 GiB hands over
    // a zero-size global area.
    let mut mem = mem();
    let len = write_raw(
        &mut mem,
        &[
            (BASE + 62 * M, 2 * M),
            (BASE + 64 * M, 0),
            (BASE + 60 * M, 2 * M),
        ],
    );
    assert_eq!(read(&mem, len), Err(Error::EntryEmpty { index: 1 }));
    let areas =
        ScratchAreas::read_array(&mem, PhysAddr::new(ARRAY), len, ReadPolicy::LINUX).unwrap();
    assert_eq!(areas.len(), 3);
    assert!(areas[1].range.is_empty());
    assert_eq!(areas.total_size(), 4 * M);
}

#[test]
fn corrupted_arrays() {
    let ok = (BASE + 32 * M, 2 * M);
    // (entries, byte length override, expected error)
    type Case = (Vec<(u64, u64)>, Option<u64>, Error);
    let cases: Vec<Case> = vec![
        (vec![], Some(0), Error::ArrayLength { byte_len: 0 }),
        (vec![ok, ok], Some(24), Error::ArrayLength { byte_len: 24 }),
        (
            vec![ok],
            Some(array_byte_len(MAX_AREAS + 1)),
            Error::TooManyEntries {
                count: MAX_AREAS as u64 + 1,
                max: MAX_AREAS,
            },
        ),
        (
            vec![ok, (u64::MAX - 0xfff, 0x2000)],
            None,
            Error::EntryWraps {
                index: 1,
                addr: PhysAddr::new(u64::MAX - 0xfff),
                size: 0x2000,
            },
        ),
        (
            vec![ok, ok, (BASE, 0)],
            None,
            Error::EntryEmpty { index: 2 },
        ),
        (
            vec![(BASE + 0x800, 0x1000)],
            None,
            Error::EntryMisaligned {
                index: 0,
                addr: PhysAddr::new(BASE + 0x800),
                size: 0x1000,
            },
        ),
        (
            vec![ok, (BASE, 0x1800)],
            None,
            Error::EntryMisaligned {
                index: 1,
                addr: PhysAddr::new(BASE),
                size: 0x1800,
            },
        ),
        (
            vec![(0x1000_0000, 2 * M)],
            None,
            Error::EntryNotRam {
                index: 0,
                range: r(0x1000_0000, 2 * M),
            },
        ),
        // Spans the hole between the two RAM regions.
        (
            vec![ok, (BASE + 62 * M, 4 * M)],
            None,
            Error::EntryNotRam {
                index: 1,
                range: r(BASE + 62 * M, 4 * M),
            },
        ),
        (
            vec![(BASE + 8 * M, 4 * M), ok, (BASE + 10 * M, 2 * M)],
            None,
            Error::EntriesOverlap {
                first: 0,
                second: 2,
            },
        ),
        (
            vec![ok, ok],
            None,
            Error::EntriesOverlap {
                first: 0,
                second: 1,
            },
        ),
    ];
    for (entries, len, want) in cases {
        let mut mem = mem();
        let written = write_raw(&mut mem, &entries);
        let got = read(&mem, len.unwrap_or(written));
        assert_eq!(got, Err(want), "entries {entries:x?}");
    }
    // The array itself outside RAM, partly...
    let mem = mem();
    let end = BASE + 64 * M;
    assert_eq!(
        ScratchAreas::read_array(&mem, PhysAddr::new(end - 16), 32, ReadPolicy::STRICT),
        Err(Error::ArrayNotRam {
            addr: PhysAddr::new(end - 16),
            len: 32
        })
    );
    // ...entirely...
    assert_eq!(
        ScratchAreas::read_array(&mem, PhysAddr::new(0x1000), 16, ReadPolicy::STRICT),
        Err(Error::ArrayNotRam {
            addr: PhysAddr::new(0x1000),
            len: 16
        })
    );
    // ...or wrapping the address space.
    assert_eq!(
        ScratchAreas::read_array(&mem, PhysAddr::new(u64::MAX - 7), 16, ReadPolicy::STRICT),
        Err(Error::ArrayNotRam {
            addr: PhysAddr::new(u64::MAX - 7),
            len: 16
        })
    );
}

#[test]
fn write_outside_ram_fails() {
    let areas = ScratchAreas::from_ranges(&[r(BASE, 2 * M)]).unwrap();
    let mut mem = mem();
    assert!(matches!(
        areas.write_array(&mut mem, PhysAddr::new(0x1000)),
        Err(Error::Mem(kho_mem::Error::NotRam { .. }))
    ));
}

proptest! {
    #[test]
    fn random_areas_round_trip(pages in prop::collection::vec((0u64..16384, 1u64..64), 1..MAX_AREAS)) {
        // Disjoint page-aligned areas inside the first RAM region.
        let mut ranges: Vec<PhysRange> = Vec::new();
        for (start, len) in pages {
            let cand = r(BASE + start * 4096, (len * 4096).min(64 * M - start * 4096));
            if !cand.is_empty() && !ranges.iter().any(|x| x.overlaps(cand)) {
                ranges.push(cand);
            }
        }
        let areas = ScratchAreas::from_ranges(&ranges).unwrap();
        let mut mem = mem();
        let at = PhysAddr::new(0x8000_0000);
        let written = areas.write_array(&mut mem, at).unwrap();
        let back = ScratchAreas::read_array(&mem, at, written.size(), ReadPolicy::STRICT).unwrap();
        prop_assert_eq!(back, areas);
    }
}
