//! Round trips through the host arena: preserve, restore, unpreserve, and
//! the all-or-nothing rollback of every failed preserve.

mod common;

use common::*;
use kho_abi::vmalloc::{CHUNK_ENTRIES, FLAG_HUGE_VMAP, FLAG_VM_ALLOC};
use kho_mem::{Order, PhysAddr, PhysMem};
use kho_radix::RadixTree;
use kho_vmalloc::{
    Error, preserve_vmalloc, read_descriptor, restore_vmalloc, restore_vmalloc_at,
    restore_vmalloc_checked, unpreserve_vmalloc, write_descriptor,
};

/// Preserve `n` scattered blocks of `order`, check the descriptor, the
/// chain layout and the tree, restore and compare, unpreserve and compare
/// the whole state with the one before.
fn round_trip(mib: u64, n: usize, o: u32) {
    let (mut mem, mut tree) = setup(mib);
    let order = order(o);
    let blocks = scattered(&mut mem, n, order);
    let before = state(&tree, &mem);
    let flags = if o > 0 {
        FLAG_VM_ALLOC | FLAG_HUGE_VMAP
    } else {
        FLAG_VM_ALLOC
    };

    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks.iter().copied(), order, flags).unwrap();
    assert_eq!(desc.total_pages.get() as u64, (n as u64) << o);
    assert_eq!(desc.flags.get(), flags);
    assert_eq!(desc.order.get() as u32, o);

    // Upstream's layout: full chunks, then one that is not full (possibly
    // empty), so n blocks take n / 511 + 1 chunks.
    let chain = chunks(&mem, &desc);
    assert_eq!(chain.len(), n / CHUNK_ENTRIES + 1, "chunks for {n} blocks");
    for &c in &chain {
        assert!(
            preserved(&tree, &mem, c, Order::ZERO),
            "chunk {c} preserved"
        );
    }
    for &b in &blocks {
        assert!(
            preserved(&tree, &mem, b, order),
            "block {b} preserved as one key"
        );
    }
    assert_eq!(tree.preserved_blocks(), (n + chain.len()) as u64);

    // Through the 16 bytes a client would store.
    let at = mem.alloc_page().unwrap();
    write_descriptor(&mut mem, at, &desc).unwrap();
    let read = read_descriptor(&mem, at).unwrap();
    assert_eq!(read, desc);
    let from_at = restore_vmalloc_at(&mem, at).unwrap();
    mem.free_page(at).unwrap();

    let area = restore_vmalloc(&mem, &read).unwrap();
    assert_eq!(area.total_pages() as u64, (n as u64) << o);
    assert_eq!(area.order(), order);
    assert_eq!(area.flags(), flags);
    assert_eq!(area.blocks(), n);
    assert_eq!(area.chunks(), chain.len());
    assert_eq!(area.first(), chain[0]);
    assert_eq!(area.descriptor(), desc);
    assert_eq!(from_at, area);
    let got: Vec<PhysAddr> = area.iter_blocks(&mem).map(Result::unwrap).collect();
    assert_eq!(got, blocks);
    let got_chunks: Vec<PhysAddr> = area.iter_chunks(&mem).map(Result::unwrap).collect();
    assert_eq!(got_chunks, chain);
    let pages: Vec<PhysAddr> = area.iter_pages(&mem).map(Result::unwrap).collect();
    let expected: Vec<PhysAddr> = blocks
        .iter()
        .flat_map(|b| (0..1u64 << o).map(move |i| PhysAddr::new(b.as_u64() + i * PAGE)))
        .collect();
    assert_eq!(pages, expected);
    let mut buf = vec![PhysAddr::ZERO; n];
    assert_eq!(area.copy_blocks(&mem, &mut buf).unwrap(), n);
    assert_eq!(buf, blocks);

    // The checked restore against the tree agrees.
    let checked = restore_vmalloc_checked(&mem, &desc, |phys, ord| {
        tree.is_preserved(&mem, phys.pfn_floor(), ord).unwrap()
    })
    .unwrap();
    assert_eq!(checked, area);

    unpreserve_vmalloc(&mut mem, &mut tree, &desc).unwrap();
    assert_eq!(
        state(&tree, &mem),
        before,
        "unpreserve is the exact inverse"
    );
}

#[test]
fn one_page() {
    round_trip(16, 1, 0);
}

#[test]
fn exactly_one_full_chunk_gets_a_trailing_empty_chunk() {
    round_trip(16, 511, 0);
}

#[test]
fn one_more_than_a_chunk() {
    round_trip(16, 512, 0);
}

#[test]
fn ten_thousand_pages() {
    round_trip(64, 10_000, 0);
}

#[test]
fn several_orders() {
    round_trip(16, 3, 1);
    round_trip(32, 511, 2);
    round_trip(32, 512, 1);
    round_trip(64, 5, 9);
    round_trip(64, 2500, 2);
}

#[test]
fn empty_area_is_one_empty_chunk() {
    round_trip(16, 0, 0);
}

#[test]
fn trailing_empty_chunk_for_1022_blocks() {
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, 2 * CHUNK_ENTRIES, Order::ZERO);
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks, Order::ZERO, FLAG_VM_ALLOC).unwrap();
    let chain = chunks(&mem, &desc);
    assert_eq!(chain.len(), 3);
    assert_eq!(mem.read_u64(slot(chain[2], 0)).unwrap(), 0);
    assert_eq!(mem.read_u64(chain[2]).unwrap(), 0);
    // Full chunks carry no terminator: their last slot is a block.
    assert_ne!(mem.read_u64(slot(chain[1], CHUNK_ENTRIES - 1)).unwrap(), 0);
}

#[test]
fn a_full_last_chunk_without_trailing_chunk_is_accepted() {
    // Upstream's reader accepts it even though its writer never produces it.
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, CHUNK_ENTRIES, Order::ZERO);
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks.clone(), Order::ZERO, 0).unwrap();
    let chain = chunks(&mem, &desc);
    mem.write_u64(chain[0], 0).unwrap();
    let area = restore_vmalloc(&mem, &desc).unwrap();
    assert_eq!((area.blocks(), area.chunks()), (CHUNK_ENTRIES, 1));
}

#[test]
fn two_areas_share_a_tree_and_unpreserve_independently() {
    let (mut mem, mut tree) = setup(16);
    let a = scattered(&mut mem, 700, Order::ZERO);
    let b = scattered(&mut mem, 40, order(3));
    let before = state(&tree, &mem);
    let da = preserve_vmalloc(&mut mem, &mut tree, a, Order::ZERO, FLAG_VM_ALLOC).unwrap();
    let mid = state(&tree, &mem);
    let db = preserve_vmalloc(&mut mem, &mut tree, b, order(3), FLAG_HUGE_VMAP).unwrap();
    unpreserve_vmalloc(&mut mem, &mut tree, &db).unwrap();
    assert_eq!(state(&tree, &mem), mid);
    unpreserve_vmalloc(&mut mem, &mut tree, &da).unwrap();
    assert_eq!(state(&tree, &mem), before);
}

#[test]
fn unpreserve_refuses_an_area_not_in_the_tree_and_changes_nothing() {
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, 20, Order::ZERO);
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks.clone(), Order::ZERO, 0).unwrap();
    // Someone else removed block 7 behind our back.
    tree.unpreserve(&mut mem, blocks[7].pfn_floor(), Order::ZERO)
        .unwrap();
    let now = state(&tree, &mem);
    assert_eq!(
        unpreserve_vmalloc(&mut mem, &mut tree, &desc),
        Err(Error::BlockNotPreserved {
            index: 7,
            phys: blocks[7],
            order: Order::ZERO
        })
    );
    assert_eq!(state(&tree, &mem), now);
}

/// Every allocation failure point of a three-chunk preserve leaves the
/// tree and the arena exactly as before, and the error names the chunk
/// allocation or the radix node allocation.
#[test]
fn rollback_on_every_allocation_failure() {
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, 1100, Order::ZERO);
    let before = state(&tree, &mem);
    let mut failures = 0;
    for n in 0.. {
        mem.fail_allocations_after(Some(n));
        let r = preserve_vmalloc(&mut mem, &mut tree, blocks.iter().copied(), Order::ZERO, 0);
        mem.fail_allocations_after(None);
        match r {
            Ok(desc) => {
                assert_eq!(chunks(&mem, &desc).len(), 3);
                unpreserve_vmalloc(&mut mem, &mut tree, &desc).unwrap();
                assert_eq!(state(&tree, &mem), before);
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(
                    matches!(e, Error::ChunkAlloc { .. } | Error::Preserve { .. }),
                    "{e}"
                );
                assert_eq!(
                    state(&tree, &mem),
                    before,
                    "after failure at allocation {n}: {e}"
                );
            }
        }
    }
    assert!(failures >= 3, "each chunk allocation was a failure point");
}

#[test]
fn preserve_errors_roll_back() {
    let (mut mem, mut tree) = setup(16);
    let mut blocks = scattered(&mut mem, 600, Order::ZERO);
    let before = state(&tree, &mem);

    // A block listed twice: the radix tree refuses the second one.
    let dup = blocks[3];
    blocks.push(dup);
    let e =
        preserve_vmalloc(&mut mem, &mut tree, blocks.iter().copied(), Order::ZERO, 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Preserve {
                phys,
                pages: 1,
                source: kho_radix::Error::AlreadyPreserved { .. }
            } if phys == dup
        ),
        "{e}"
    );
    assert_eq!(state(&tree, &mem), before);

    // A block outside RAM, after a full chunk.
    blocks[599] = PhysAddr::new(0x1000_0000);
    let e =
        preserve_vmalloc(&mut mem, &mut tree, blocks.iter().copied(), Order::ZERO, 0).unwrap_err();
    assert_eq!(
        e,
        Error::BlockNotRam {
            index: 599,
            phys: PhysAddr::new(0x1000_0000),
            order: Order::ZERO
        }
    );
    assert_eq!(state(&tree, &mem), before);

    // Address zero, misalignment, unknown flags.
    let e = preserve_vmalloc(
        &mut mem,
        &mut tree,
        [blocks[0], PhysAddr::ZERO],
        Order::ZERO,
        0,
    )
    .unwrap_err();
    assert_eq!(e, Error::BlockAtZero { index: 1 });
    let odd = PhysAddr::new(blocks[0].as_u64() + 8);
    let e = preserve_vmalloc(&mut mem, &mut tree, [odd], Order::ZERO, 0).unwrap_err();
    assert_eq!(
        e,
        Error::BlockMisaligned {
            index: 0,
            phys: odd,
            order: Order::ZERO
        }
    );
    let e = preserve_vmalloc(
        &mut mem,
        &mut tree,
        [PhysAddr::new(BASE + 0x1000 * 3)],
        order(1),
        0,
    )
    .unwrap_err();
    assert!(matches!(e, Error::BlockMisaligned { index: 0, .. }), "{e}");
    let e = preserve_vmalloc(&mut mem, &mut tree, [blocks[0]], Order::ZERO, 0x0004).unwrap_err();
    assert_eq!(e, Error::UnknownFlags { flags: 0x0004 });
    assert_eq!(state(&tree, &mem), before);
}

#[test]
fn total_pages_must_fit_32_bits() {
    // 256 blocks of 2^24 pages are 2^32 pages: one too many. Addresses need
    // not be backed: AllRam says everything is RAM.
    let mut mem = AllRam(kho_mem::HostMem::new(PhysAddr::new(BASE), 16 << 20).unwrap());
    let mut tree = RadixTree::new(&mut mem).unwrap();
    let o = order(24);
    let blocks = (1..=256u64).map(|k| PhysAddr::new(k << (24 + 12)));
    let e = preserve_vmalloc(&mut mem, &mut tree, blocks, o, FLAG_HUGE_VMAP).unwrap_err();
    assert_eq!(
        e,
        Error::TooManyPages {
            blocks: 256,
            order: o
        }
    );
    assert!(tree.is_empty());
    // 255 such blocks fit.
    let blocks = (1..=255u64).map(|k| PhysAddr::new(k << (24 + 12)));
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks, o, FLAG_HUGE_VMAP).unwrap();
    assert_eq!(desc.total_pages.get(), 255 << 24);
    let area = restore_vmalloc(&mem, &desc).unwrap();
    assert_eq!(area.blocks(), 255);
}

#[test]
fn copy_blocks_needs_room() {
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, 5, Order::ZERO);
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks, Order::ZERO, 0).unwrap();
    let area = restore_vmalloc(&mem, &desc).unwrap();
    let mut small = [PhysAddr::ZERO; 4];
    assert_eq!(
        area.copy_blocks(&mem, &mut small),
        Err(Error::BufferTooSmall { needed: 5, len: 4 })
    );
}

#[cfg(feature = "alloc")]
#[test]
fn vec_conveniences() {
    let (mut mem, mut tree) = setup(16);
    let blocks = scattered(&mut mem, 7, order(1));
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks.clone(), order(1), 0).unwrap();
    let area = restore_vmalloc(&mem, &desc).unwrap();
    assert_eq!(area.to_block_vec(&mem).unwrap(), blocks);
    let pages = area.to_page_vec(&mem).unwrap();
    assert_eq!(pages.len(), 14);
    assert_eq!(pages[1].as_u64(), blocks[0].as_u64() + PAGE);
}

/// `for_each_mut` meets the chain in order (each chunk, then its blocks),
/// lets the visitor write memory between steps, and passes errors through.
#[test]
fn for_each_mut_claims_in_chain_order() {
    let (mut mem, mut tree) = setup(64);
    let order = order(0);
    let blocks = scattered(&mut mem, 1200, order);
    let desc = preserve_vmalloc(
        &mut mem,
        &mut tree,
        blocks.iter().copied(),
        order,
        FLAG_VM_ALLOC,
    )
    .unwrap();
    let area = restore_vmalloc(&mem, &desc).unwrap();
    let chain = chunks(&mem, &desc);
    let mut seen_blocks = Vec::new();
    let mut seen_chunks = Vec::new();
    area.for_each_mut(&mut mem, |mem, piece| -> Result<(), Error> {
        match piece {
            kho_vmalloc::Piece::Block(b) => {
                // Writing the block itself does not disturb the chain.
                mem.write_u64(b, 0x1234).unwrap();
                seen_blocks.push(b);
            }
            kho_vmalloc::Piece::Chunk(c) => seen_chunks.push(c),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen_blocks, blocks);
    assert_eq!(seen_chunks, chain);

    // The visitor's error stops the visit.
    let mut visits = 0;
    let r = area.for_each_mut(&mut mem, |_, _| {
        visits += 1;
        if visits == 3 {
            Err(Error::NoChunks)
        } else {
            Ok(())
        }
    });
    assert_eq!(r, Err(Error::NoChunks));
    assert_eq!(visits, 3);

    // A chain broken after validation comes back as the chain's error.
    mem.write_u64(chain[0], 0x10).unwrap();
    let r = area.for_each_mut(&mut mem, |_, _| -> Result<(), Error> { Ok(()) });
    assert!(r.is_err(), "{r:?}");
}
