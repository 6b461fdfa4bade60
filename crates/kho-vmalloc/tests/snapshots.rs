//! insta snapshots of the chunk-chain layout, stored in this package's `tests/snapshots/`.
//!
//! How to update: after a deliberate change to the layout, run
//! `cargo insta test -p kho-vmalloc` (or `INSTA_UPDATE=new cargo test -p
//! kho-vmalloc`), then `cargo insta review`; read every accepted file by hand
//! (chunk counts, terminators, the trailing empty chunk) before committing.
//! CI runs with `INSTA_UPDATE=no`, so an unreviewed change fails.
//!
//! The summary is a test-only text form: the descriptor's fields and bytes,
//! then per chunk its slot count, first and last block and `next`. The arena
//! is deterministic, so the addresses are stable.

mod common;

use std::fmt::Write as _;

use common::*;
use kho_abi::vmalloc::{CHUNK_ENTRIES, FLAG_HUGE_VMAP, FLAG_VM_ALLOC};
use kho_mem::{HostMem, PhysAddr, PhysMem};
use kho_vmalloc::{VmallocDescriptor, preserve_vmalloc, restore_vmalloc, write_descriptor};

/// `assert_snapshot!` into `tests/snapshots/<name>.snap` (this package's).
macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

fn summary(mem: &mut HostMem, desc: &VmallocDescriptor) -> String {
    let mut out = String::new();
    let at = mem.alloc_page().unwrap();
    write_descriptor(mem, at, desc).unwrap();
    let mut bytes = [0u8; 16];
    mem.read(at, &mut bytes).unwrap();
    mem.free_page(at).unwrap();
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(
        out,
        "descriptor: first {:#x}, total_pages {}, flags {:#06x}, order {}",
        desc.first.get(),
        desc.total_pages.get(),
        desc.flags.get(),
        desc.order.get()
    )
    .unwrap();
    writeln!(out, "bytes: {}", hex.join(" ")).unwrap();
    for (i, chunk) in chunks(mem, desc).into_iter().enumerate() {
        let slots: Vec<u64> = (0..CHUNK_ENTRIES)
            .map(|s| mem.read_u64(slot(chunk, s)).unwrap())
            .collect();
        let used = slots.iter().take_while(|&&e| e != 0).count();
        let next = mem.read_u64(chunk).unwrap();
        let plural = if used == 1 { "" } else { "s" };
        write!(out, "chunk {i} at {chunk}: {used} block{plural}").unwrap();
        match used {
            0 => {}
            1 => write!(out, " [{:#x}]", slots[0]).unwrap(),
            _ => write!(out, " [{:#x} .. {:#x}]", slots[0], slots[used - 1]).unwrap(),
        }
        if used < CHUNK_ENTRIES {
            write!(out, ", terminator at slot {used}").unwrap();
        }
        writeln!(out, ", next {next:#x}").unwrap();
    }
    let area = restore_vmalloc(mem, desc).unwrap();
    writeln!(
        out,
        "restored: blocks {}, chunks {}, pages {}",
        area.blocks(),
        area.chunks(),
        area.total_pages()
    )
    .unwrap();
    out
}

/// `n` blocks allocated in ascending order (readable first/last addresses).
fn area(n: usize, o: u32, flags: u16) -> String {
    let (mut mem, mut tree) = setup(32);
    let blocks: Vec<PhysAddr> = (0..n).map(|_| mem.alloc_pages(order(o)).unwrap()).collect();
    let desc = preserve_vmalloc(&mut mem, &mut tree, blocks, order(o), flags).unwrap();
    summary(&mut mem, &desc)
}

#[test]
fn chain_one_page() {
    snapshot!("chain_one_page", area(1, 0, FLAG_VM_ALLOC));
}

#[test]
fn chain_511_pages_trailing_empty_chunk() {
    snapshot!("chain_511_pages", area(511, 0, FLAG_VM_ALLOC));
}

#[test]
fn chain_512_pages() {
    snapshot!("chain_512_pages", area(512, 0, FLAG_VM_ALLOC));
}

#[test]
fn chain_huge_order_9() {
    snapshot!("chain_order_9", area(3, 9, FLAG_VM_ALLOC | FLAG_HUGE_VMAP));
}
