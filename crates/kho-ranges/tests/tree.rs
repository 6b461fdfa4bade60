//! `Tree`: the FDT of a 2024-design handover checked without its mem
//! cache — the walk of nodes and entries, and what can be checked from the
//! tree alone (shape, RAM, scratch, overlap).

mod common;

use core::ops::ControlFlow;

use common::*;
use kho_abi::rfc2024::{KhoMem, MEM_NOINIT};
use kho_mem::PhysAddr;
use kho_ranges::{At, Error, FdtProblem, MemFlags, Tracker, Tree, TreeItem};

const P: u64 = 0x1000;
const A: (u64, u64) = (FREE, 2 * P);
const B: (u64, u64) = (FREE + 0x10_0000, P);

fn at_fdt(fdt: &[u8], e: (u64, u64)) -> At {
    At::Fdt {
        offset: find(fdt, &entries(&[e])),
    }
}

/// Check `fdt` alone against the RAM of `mem()` and the scratch region.
fn check(fdt: &[u8]) -> Result<usize, Error> {
    let tree = Tree::parse(fdt)?;
    let mut buf = vec![KhoMem::default(); tree.ranges()?];
    tree.check(&mem(), Some(scratch()), &mut buf)
}

#[test]
fn a_tracker_tree_walks_as_written_and_checks() {
    let mut t = Tracker::new(scratch()).unwrap();
    t.preserve("", r(FREE + 0x40_0000, P), MemFlags::NONE)
        .unwrap();
    t.preserve("ftrace/cpu0", r(FREE + 0x10_0000, 2 * P), MemFlags::NONE)
        .unwrap();
    t.preserve("ftrace/cpu0", r(FREE, P), MemFlags::NOINIT)
        .unwrap();
    t.preserve("guest", r(FREE + 0x20_0000, 4 * P), MemFlags::NOINIT)
        .unwrap();
    let out = t.serialize().unwrap();
    let tree = Tree::parse(out.fdt()).unwrap();
    assert_eq!(tree.fdt(), out.fdt());
    let mut items = Vec::new();
    let flow = tree.walk(|item| {
        items.push(match item {
            TreeItem::Node { name, depth, .. } => format!("{depth} {name}"),
            TreeItem::Range(t) => format!(
                "  {} {:#x}+{:#x}{}",
                t.node,
                t.range.start().as_u64(),
                t.range.len(),
                if t.range.flags().noinit() {
                    " noinit"
                } else {
                    ""
                }
            ),
        });
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(flow, Ok(ControlFlow::Continue(())));
    assert_eq!(
        items,
        [
            "1 ".to_owned(),
            format!("   {:#x}+0x1000", FREE + 0x40_0000),
            "2 ftrace".to_owned(),
            "3 cpu0".to_owned(),
            format!("  cpu0 {FREE:#x}+0x1000 noinit"),
            format!("  cpu0 {:#x}+0x2000", FREE + 0x10_0000),
            "2 guest".to_owned(),
            format!("  guest {:#x}+0x4000 noinit", FREE + 0x20_0000),
        ]
    );
    assert_eq!(tree.ranges(), Ok(4));
    // The check sorts the entries by address, flags kept.
    let mut buf = vec![KhoMem::default(); 6];
    assert_eq!(tree.check(&mem(), Some(scratch()), &mut buf), Ok(4));
    assert_eq!(buf[0], KhoMem::new(FREE, P, MEM_NOINIT));
    assert_eq!(buf[3], KhoMem::new(FREE + 0x40_0000, P, 0));
    // Without the scratch region only RAM is checked.
    assert_eq!(tree.check(&mem(), None, &mut buf), Ok(4));
    // A break stops the walk.
    let mut n = 0;
    let flow = tree.walk(|_| {
        n += 1;
        if n == 3 {
            ControlFlow::Break(n)
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(flow, Ok(ControlFlow::Break(3)));
}

#[test]
fn overlap_across_two_nodes_is_named_at_the_later_entry() {
    let inside = (A.0 + P, P);
    let fdt = tree(&[("a", &[A]), ("b", &[B, inside])]);
    assert_eq!(
        check(&fdt),
        Err(Error::Overlap {
            at: at_fdt(&fdt, inside),
            range: r(inside.0, inside.1),
            other: r(A.0, A.1),
        })
    );
    // The same range in two nodes: the second one.
    let fdt = tree(&[("a", &[A]), ("b", &[A])]);
    let second = fdt.len()
        - fdt
            .windows(16)
            .rev()
            .position(|w| w == entries(&[A]))
            .unwrap()
        - 16;
    assert_eq!(
        check(&fdt),
        Err(Error::Overlap {
            at: At::Fdt { offset: second },
            range: r(A.0, A.1),
            other: r(A.0, A.1),
        })
    );
    // Adjacent ranges do not overlap.
    let next = (A.0 + A.1, P);
    assert_eq!(check(&tree(&[("a", &[A]), ("b", &[next])])), Ok(2));
}

#[test]
fn placement_and_shape_are_checked_without_a_cache() {
    let outside = (BASE + RAM, P);
    let fdt = tree(&[("a", &[A, outside])]);
    assert_eq!(
        check(&fdt),
        Err(Error::NotRam {
            at: at_fdt(&fdt, outside),
            range: r(outside.0, outside.1),
        })
    );
    let tree_alone = Tree::parse(&fdt).unwrap();
    let mut buf = [KhoMem::default(); 2];
    assert!(matches!(
        tree_alone.check(&mem(), None, &mut buf),
        Err(Error::NotRam { .. })
    ));
    let in_scratch = (BASE + 0x20_0000, P);
    let fdt = tree(&[("a", &[in_scratch])]);
    assert!(matches!(check(&fdt), Err(Error::InScratch { .. })));
    // Without the scratch region that one is fine.
    let t = Tree::parse(&fdt).unwrap();
    assert_eq!(t.check(&mem(), None, &mut buf), Ok(1));
    let bad = (FREE + 0x20_0000, P + 8);
    let fdt = tree(&[("a", &[A, bad])]);
    assert_eq!(
        check(&fdt),
        Err(Error::Misaligned {
            at: at_fdt(&fdt, bad),
            addr: PhysAddr::new(bad.0),
            len: P + 8
        })
    );
    // The walk delivers what comes before the problem.
    let t = Tree::parse(&fdt).unwrap();
    let mut seen = 0;
    let walked = t.walk(|item| {
        if let TreeItem::Range(_) = item {
            seen += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    assert!(matches!(walked, Err(Error::Misaligned { .. })));
    assert_eq!(seen, 1);
}

#[test]
fn a_buffer_too_small_is_named() {
    let fdt = tree(&[("a", &[A]), ("b", &[B])]);
    let t = Tree::parse(&fdt).unwrap();
    let mut buf = [KhoMem::default(); 1];
    assert_eq!(
        t.check(&mem(), Some(scratch()), &mut buf),
        Err(Error::TooManyRanges {
            ranges: 2,
            capacity: 1
        })
    );
}

#[test]
fn container_and_compatible_are_checked_by_parse() {
    let fdt = tree_with("kho-v1", &[("a", &[A])], |_, _| {});
    assert!(matches!(Tree::parse(&fdt), Err(Error::Compatible { .. })));
    let mut fdt = tree(&[("a", &[A])]);
    fdt[0] = 0;
    assert_eq!(
        Tree::parse(&fdt).err(),
        Some(Error::Fdt {
            offset: 0,
            problem: FdtProblem::BadMagic
        })
    );
    // The FDT is cut to its totalsize.
    let mut fdt = tree(&[("a", &[A])]);
    let n = fdt.len();
    fdt.extend_from_slice(&[0xff; 64]);
    assert_eq!(Tree::parse(&fdt).unwrap().fdt().len(), n);
}
