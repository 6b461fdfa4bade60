//! The stub's heap: a bump allocator over a static region in `.bss`.
//!
//! `.bss` is zeroed at every entry, so each generation starts with an empty
//! heap; nothing is ever freed within a generation (the stub allocates a few
//! hundred KiB at most: FDT buffers, the incoming block map, the kernel-pool
//! bitmap).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

const HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Heap {
    bytes: UnsafeCell<[u8; HEAP_SIZE]>,
    next: UnsafeCell<usize>,
}

// SAFETY: the stub runs on one CPU with interrupts off; the heap is never
// used concurrently.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap {
    bytes: UnsafeCell::new([0; HEAP_SIZE]),
    next: UnsafeCell::new(0),
};

// SAFETY: `alloc` returns non-overlapping, suitably aligned blocks inside
// `bytes` or null; `dealloc` never touches memory.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded (see `Sync`), so no other reference to
        // `next` exists while we update it.
        let next = unsafe { &mut *self.next.get() };
        let base = self.bytes.get() as usize;
        let start = (base + *next).next_multiple_of(layout.align());
        let end = start + layout.size();
        if end > base + HEAP_SIZE {
            return core::ptr::null_mut();
        }
        *next = end - base;
        start as *mut u8
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
