//! The stub's heap: a bump allocator over a static region in `.bss`.
//!
//! `.bss` is zeroed at every entry, so each generation starts with an empty
//! heap. Freeing the most recent allocation gives its bytes back, and
//! growing it grows it in place (the common case of one `Vec` or `String`
//! being built at a time); anything else freed is simply not reused within
//! the generation. [`high_water`] is the most the heap ever held: the
//! figure every generation reports (`heap=` on its `KHO kexec` / `KHO done`
//! line), which the harness requires not to grow once the preserved set is
//! stable. Running out is recorded ([`exhausted`]) before the allocation
//! fails, so the panic that follows can name it.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

/// Bytes of heap.
pub const HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Heap {
    bytes: UnsafeCell<[u8; HEAP_SIZE]>,
    state: UnsafeCell<State>,
}

#[derive(Clone, Copy)]
struct State {
    /// Offset of the first free byte.
    next: usize,
    /// The largest `next` ever.
    high: usize,
    /// The size of the first request that did not fit (0: none yet).
    failed: usize,
}

// SAFETY: the stub runs on one CPU with interrupts off; the heap is never
// used concurrently.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap {
    bytes: UnsafeCell::new([0; HEAP_SIZE]),
    state: UnsafeCell::new(State {
        next: 0,
        high: 0,
        failed: 0,
    }),
};

impl Heap {
    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    /// # Safety
    /// Single-threaded use only (see `Sync`), and no other reference to the
    /// state may be live.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut State {
        // SAFETY: guaranteed by the caller.
        unsafe { &mut *self.state.get() }
    }
}

// SAFETY: `alloc` returns non-overlapping, suitably aligned blocks inside
// `bytes` or null; `dealloc` only moves `next` back over the block that
// ends at it (the last one handed out), which no live block overlaps;
// `realloc` grows only that last block in place, else allocates and copies.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; no other reference to the state is live.
        let s = unsafe { self.state() };
        let base = self.base();
        let start = (base + s.next).next_multiple_of(layout.align());
        let Some(end) = start.checked_add(layout.size()) else {
            s.failed = s.failed.max(layout.size()).max(1);
            return core::ptr::null_mut();
        };
        if end > base + HEAP_SIZE {
            if s.failed == 0 {
                s.failed = layout.size().max(1);
            }
            return core::ptr::null_mut();
        }
        s.next = end - base;
        s.high = s.high.max(s.next);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: single-threaded; no other reference to the state is live.
        let s = unsafe { self.state() };
        let offset = ptr as usize - self.base();
        if offset + layout.size() == s.next {
            s.next = offset;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: single-threaded; no other reference to the state is live.
        let s = unsafe { self.state() };
        let offset = ptr as usize - self.base();
        if offset + layout.size() == s.next {
            // The last block: grow or shrink it where it is.
            let Some(end) = offset.checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if end > HEAP_SIZE {
                if s.failed == 0 {
                    s.failed = new_size.max(1);
                }
                return core::ptr::null_mut();
            }
            s.next = end;
            s.high = s.high.max(s.next);
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: a valid layout; the old block stays valid until copied.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not
            // overlap (the new one lies above the old one's end).
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// The most bytes the heap held so far in this generation.
pub fn high_water() -> usize {
    // SAFETY: single-threaded; the reference does not outlive this call.
    unsafe { HEAP.state() }.high
}

/// The size of the first allocation that did not fit, if one failed.
pub fn exhausted() -> Option<usize> {
    // SAFETY: single-threaded; the reference does not outlive this call.
    let failed = unsafe { HEAP.state() }.failed;
    (failed != 0).then_some(failed)
}
