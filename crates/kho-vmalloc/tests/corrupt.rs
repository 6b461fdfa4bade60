//! Incoming side: every corruption of a descriptor or chain gives its named
//! error, and random corruption never panics.

mod common;

use common::*;
use kho_abi::vmalloc::{CHUNK_ENTRIES, FLAG_VM_ALLOC};
use kho_abi::{Le16, Le32, Le64};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
use kho_radix::RadixTree;
use kho_vmalloc::{
    Error, VmallocDescriptor, preserve_vmalloc, restore_vmalloc, restore_vmalloc_checked,
};
use proptest::prelude::*;

/// A preserved area of `n` blocks of `o`, with its chunk addresses.
fn area(
    mib: u64,
    n: usize,
    o: u32,
) -> (
    HostMem,
    RadixTree,
    VmallocDescriptor,
    Vec<PhysAddr>,
    Vec<PhysAddr>,
) {
    let (mut mem, mut tree) = setup(mib);
    let blocks = scattered(&mut mem, n, order(o));
    let desc = preserve_vmalloc(
        &mut mem,
        &mut tree,
        blocks.iter().copied(),
        order(o),
        FLAG_VM_ALLOC,
    )
    .unwrap();
    let chain = chunks(&mem, &desc);
    (mem, tree, desc, blocks, chain)
}

fn err(mem: &HostMem, desc: &VmallocDescriptor) -> Error {
    restore_vmalloc(mem, desc).unwrap_err()
}

#[test]
fn cycle_to_itself() {
    let (mut mem, _tree, desc, _, chain) = area(16, 1100, 0);
    mem.write_u64(chain[0], chain[0].as_u64()).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::ChainCycle {
            chunk: 1,
            phys: chain[0]
        }
    );
}

#[test]
fn cycle_further_down_the_chain() {
    // c0 -> c1 -> c2 -> c1: found when c1 would be entered a second time.
    let (mut mem, _tree, desc, _, chain) = area(32, 5000, 0);
    assert_eq!(chain.len(), 10);
    mem.write_u64(chain[2], chain[1].as_u64()).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::ChainCycle {
            chunk: 3,
            phys: chain[1]
        }
    );
}

#[test]
fn long_cycle_is_caught_by_brent_or_the_page_count() {
    // c0 -> … -> c8 -> c3: either error is a correct, named refusal.
    let (mut mem, _tree, desc, _, chain) = area(32, 5000, 0);
    mem.write_u64(chain[8], chain[3].as_u64()).unwrap();
    let e = err(&mem, &desc);
    assert!(
        matches!(
            e,
            Error::ChainCycle { .. } | Error::MissingTerminator { .. }
        ),
        "{e}"
    );
}

#[test]
fn chunk_pointer_outside_ram() {
    let (mut mem, _tree, mut desc, _, chain) = area(16, 600, 0);
    mem.write_u64(chain[0], 0x1000_0000).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::ChunkNotRam {
            chunk: 1,
            phys: PhysAddr::new(0x1000_0000)
        }
    );
    // The first chunk, and a chunk straddling the end of RAM.
    desc.first = Le64::new(0xffff_f000);
    assert_eq!(
        err(&mem, &desc),
        Error::ChunkNotRam {
            chunk: 0,
            phys: PhysAddr::new(0xffff_f000)
        }
    );
    let end = BASE + (16 << 20);
    desc.first = Le64::new(end);
    assert!(matches!(
        err(&mem, &desc),
        Error::ChunkNotRam { chunk: 0, .. }
    ));
}

#[test]
fn chunk_pointer_misaligned() {
    let (mut mem, _tree, desc, _, chain) = area(16, 600, 0);
    mem.write_u64(chain[0], chain[1].as_u64() + 8).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::ChunkMisaligned {
            chunk: 1,
            phys: PhysAddr::new(chain[1].as_u64() + 8)
        }
    );
}

#[test]
fn block_pointer_outside_ram_or_misaligned() {
    let (mut mem, _tree, desc, _, chain) = area(16, 600, 1);
    mem.write_u64(slot(chain[1], 2), 0x2000).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::BlockNotRam {
            index: 513,
            phys: PhysAddr::new(0x2000),
            order: order(1)
        }
    );
    mem.write_u64(slot(chain[0], 5), BASE + 0x1000).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::BlockMisaligned {
            index: 5,
            phys: PhysAddr::new(BASE + 0x1000),
            order: order(1)
        }
    );
}

#[test]
fn missing_terminator() {
    let (mut mem, _tree, desc, blocks, chain) = area(16, 3, 0);
    mem.write_u64(slot(chain[0], 3), blocks[0].as_u64())
        .unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::MissingTerminator {
            chunk: 0,
            slot: 3,
            entry: blocks[0].as_u64()
        }
    );
}

#[test]
fn missing_terminator_in_the_trailing_chunk() {
    let (mut mem, _tree, desc, blocks, chain) = area(16, CHUNK_ENTRIES, 0);
    assert_eq!(chain.len(), 2);
    mem.write_u64(slot(chain[1], 0), blocks[0].as_u64())
        .unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::MissingTerminator {
            chunk: 1,
            slot: 0,
            entry: blocks[0].as_u64()
        }
    );
}

#[test]
fn total_pages_too_small_is_a_missing_terminator() {
    let (mem, _tree, mut desc, blocks, _) = area(16, 10, 0);
    desc.total_pages = Le32::new(9);
    assert_eq!(
        err(&mem, &desc),
        Error::MissingTerminator {
            chunk: 0,
            slot: 9,
            entry: blocks[9].as_u64()
        }
    );
}

#[test]
fn count_mismatch() {
    let (mem, _tree, mut desc, _, _) = area(16, 10, 0);
    desc.total_pages = Le32::new(11);
    assert_eq!(
        err(&mem, &desc),
        Error::CountMismatch {
            total_pages: 11,
            found: 10
        }
    );
    // A chain cut after a full chunk.
    let (mut mem, _tree, desc, _, chain) = area(16, 600, 0);
    mem.write_u64(chain[0], 0).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::CountMismatch {
            total_pages: 600,
            found: 511
        }
    );
}

#[test]
fn entry_after_terminator() {
    let (mut mem, _tree, desc, blocks, chain) = area(16, 10, 0);
    mem.write_u64(slot(chain[0], 4), 0).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::EntryAfterTerminator {
            chunk: 0,
            slot: 5,
            entry: blocks[5].as_u64()
        }
    );
    // Garbage far after the terminator of the last chunk.
    let (mut mem, _tree, desc, _, chain) = area(16, 10, 0);
    mem.write_u64(slot(chain[0], 510), 0x4000_0000).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::EntryAfterTerminator {
            chunk: 0,
            slot: 510,
            entry: 0x4000_0000
        }
    );
}

#[test]
fn next_after_terminator() {
    let (mut mem, _tree, desc, _, chain) = area(16, 600, 0);
    // The partly filled last chunk links back to the first.
    mem.write_u64(chain[1], chain[0].as_u64()).unwrap();
    assert_eq!(
        err(&mem, &desc),
        Error::NextAfterTerminator {
            chunk: 1,
            next: chain[0].as_u64()
        }
    );
}

#[test]
fn descriptor_fields() {
    let (mem, _tree, desc, _, _) = area(16, 4, 1);
    let mut d = desc;
    d.flags = Le16::new(0x8001);
    assert_eq!(err(&mem, &d), Error::UnknownFlags { flags: 0x8001 });
    let mut d = desc;
    d.order = Le16::new(52);
    assert_eq!(err(&mem, &d), Error::OrderTooLarge { order: 52 });
    let mut d = desc;
    d.total_pages = Le32::new(7);
    assert_eq!(
        err(&mem, &d),
        Error::PagesNotMultiple {
            total_pages: 7,
            order: order(1)
        }
    );
    let mut d = desc;
    d.first = Le64::new(0);
    assert_eq!(err(&mem, &d), Error::NoChunks);
    // An order-0 reading of an order-1 chain: the pages do not add up.
    let mut d = desc;
    d.order = Le16::new(0);
    assert_eq!(
        err(&mem, &d),
        Error::CountMismatch {
            total_pages: 8,
            found: 4
        }
    );
}

#[test]
fn checked_restore_names_what_is_not_preserved() {
    let (mut mem, mut tree, desc, blocks, chain) = area(16, 600, 0);
    let ask = |tree: &RadixTree, mem: &HostMem| {
        restore_vmalloc_checked(mem, &desc, |phys, o| {
            tree.is_preserved(mem, phys.pfn_floor(), o).unwrap()
        })
    };
    assert!(ask(&tree, &mem).is_ok());
    tree.unpreserve(&mut mem, blocks[550].pfn_floor(), Order::ZERO)
        .unwrap();
    assert_eq!(
        ask(&tree, &mem).unwrap_err(),
        Error::BlockNotPreserved {
            index: 550,
            phys: blocks[550],
            order: Order::ZERO
        }
    );
    tree.unpreserve(&mut mem, chain[1].pfn_floor(), Order::ZERO)
        .unwrap();
    assert_eq!(
        ask(&tree, &mem).unwrap_err(),
        Error::ChunkNotPreserved {
            chunk: 1,
            phys: chain[1]
        }
    );
}

#[test]
fn iterators_stop_at_the_first_error() {
    let (mut mem, _tree, desc, blocks, chain) = area(16, 600, 0);
    let area = restore_vmalloc(&mem, &desc).unwrap();
    // Corrupt after validation: the walk repeats the checks.
    mem.write_u64(slot(chain[1], 3), 0x10).unwrap();
    let got: Vec<_> = area.iter_blocks(&mem).collect();
    assert_eq!(got.len(), 515);
    assert_eq!(got[513], Ok(blocks[513]));
    assert_eq!(
        got[514],
        Err(Error::BlockMisaligned {
            index: 514,
            phys: PhysAddr::new(0x10),
            order: Order::ZERO
        })
    );
    let mut buf = vec![PhysAddr::ZERO; 600];
    assert!(area.copy_blocks(&mem, &mut buf).is_err());
    // Both chunks, then the error found in the second one's slots.
    let walked: Vec<_> = area.iter_chunks(&mem).collect();
    assert_eq!(walked[..2], [Ok(chain[0]), Ok(chain[1])]);
    assert!(matches!(
        walked[2],
        Err(Error::BlockMisaligned { index: 514, .. })
    ));
    assert_eq!(walked.len(), 3);
    assert!(area.iter_pages(&mem).any(|p| p.is_err()));
}

#[test]
fn messages_are_one_line() {
    let (mem, _tree, desc, _, _) = area(16, 3, 0);
    let mut d = desc;
    d.first = Le64::new(0x1000);
    let msg = err(&mem, &d).to_string();
    assert_eq!(msg, "vmalloc chunk 0 at 0x1000 is not RAM");
    for e in [
        Error::NoChunks,
        Error::CountMismatch {
            total_pages: 4,
            found: 3,
        },
        Error::ChainCycle {
            chunk: 2,
            phys: PhysAddr::new(0x4000_1000),
        },
        Error::TooManyPages {
            blocks: 256,
            order: order(24),
        },
    ] {
        let s = e.to_string();
        assert!(!s.contains('\n') && !s.is_empty(), "{s}");
    }
    assert_eq!(
        Error::ChainCycle {
            chunk: 2,
            phys: PhysAddr::new(0x4000_1000)
        }
        .to_string(),
        "vmalloc chunk chain loops: chunk 2 would be 0x40001000, already in the chain"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Overwrite a few words of the chunk pages or the descriptor with
    /// values that matter (zero, chunk and block addresses, off-by-a-bit
    /// values, random): restore never panics, and when it succeeds the
    /// walk yields exactly `total_pages` pages.
    #[test]
    fn random_corruption_never_panics(
        edits in proptest::collection::vec((0usize..3, 0usize..512, 0usize..6, any::<u64>()), 1..6),
        desc_edit in proptest::option::of((0usize..4, any::<u64>())),
    ) {
        let (mut mem, _tree, mut desc, blocks, chain) = area(16, 700, 0);
        for (c, word, kind, rnd) in edits {
            let chunk = chain[c % chain.len()];
            let value = match kind {
                0 => 0,
                1 => chain[rnd as usize % chain.len()].as_u64(),
                2 => blocks[rnd as usize % blocks.len()].as_u64(),
                3 => blocks[rnd as usize % blocks.len()].as_u64() ^ (1 << (rnd % 64)),
                4 => BASE + (rnd % (16 << 20)),
                _ => rnd,
            };
            mem.write_u64(PhysAddr::new(chunk.as_u64() + 8 * word as u64), value).unwrap();
        }
        if let Some((field, v)) = desc_edit {
            match field {
                0 => desc.first = Le64::new(v),
                1 => desc.total_pages = Le32::new(v as u32),
                2 => desc.flags = Le16::new(v as u16),
                _ => desc.order = Le16::new(v as u16 % 64),
            }
        }
        if let Ok(area) = restore_vmalloc(&mem, &desc) {
            let pages: Result<Vec<_>, _> = area.iter_pages(&mem).collect();
            let pages = pages.unwrap();
            prop_assert_eq!(pages.len() as u64, u64::from(area.total_pages()));
            prop_assert!(area.chunks() <= area.blocks() / CHUNK_ENTRIES + 1);
        }
    }
}
