//! Restart a generation cold when its revival runs the heap out.
//!
//! The revival of an incoming handover is bounded by design (the walk's
//! node set and a few KiB whatever was preserved), so this is a safety net:
//! should an allocation fail anyway while the stub is still reviving (from
//! entry to the end of verification, before it has written anything the
//! next kernel reads), the panic handler calls [`cold`]. It prints
//! `KHO restart gen=G reason="..."`, keeps the reason in `.data` (which the
//! entry code does not clear) and enters the image again with the boot
//! arguments it first came with: relocating is idempotent, `.bss` (the heap
//! included) is cleared, and [`take`] makes that second boot ignore the
//! handover and boot cold with the reason, exactly as a refused handover
//! does. The boot structures are still intact: nothing but the heap and
//! the stub's page bitmap changed, and the payload was only copied.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc::string::String;

use crate::arch;

/// Longest reason kept (bytes).
const REASON_MAX: usize = 240;

#[repr(C)]
struct State {
    /// The arch entry's arguments, saved on every entry.
    args: [u64; 2],
    /// Non-zero: the next entry is a restart with `reason`.
    armed: u32,
    len: u32,
    reason: [u8; REASON_MAX],
}

struct Cell(UnsafeCell<State>);

// SAFETY: one CPU, interrupts off: never accessed concurrently.
unsafe impl Sync for Cell {}

/// In `.data`, which survives the re-entry (the entry code clears `.bss`).
#[unsafe(link_section = ".data")]
static STATE: Cell = Cell(UnsafeCell::new(State {
    args: [0; 2],
    armed: 0,
    len: 0,
    reason: [0; REASON_MAX],
}));

/// Set while the revival runs (entry to the end of verification).
static REVIVING: AtomicBool = AtomicBool::new(false);

fn state() -> &'static mut State {
    // SAFETY: single-threaded, and no caller keeps the reference across a
    // call that takes it again.
    unsafe { &mut *STATE.0.get() }
}

/// Record the arch entry's arguments (every entry calls this first).
pub fn entered(args: [u64; 2]) {
    state().args = args;
}

/// The reason of a restart, once: `Some` on the entry after [`cold`].
pub fn take() -> Option<String> {
    let s = state();
    if s.armed == 0 {
        return None;
    }
    s.armed = 0;
    let len = (s.len as usize).min(REASON_MAX);
    Some(String::from_utf8_lossy(&s.reason[..len]).into_owned())
}

/// Mark the start and the end of the revival.
pub fn set_reviving(on: bool) {
    REVIVING.store(on, Ordering::Relaxed);
}

/// Whether the revival is running.
pub fn reviving() -> bool {
    REVIVING.load(Ordering::Relaxed)
}

/// Writes into a fixed buffer, dropping what does not fit.
struct Buf<'a> {
    bytes: &'a mut [u8; REASON_MAX],
    len: usize,
}

impl Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if self.len == REASON_MAX {
                break;
            }
            // One line, no quotes (the protocol's quoted field).
            self.bytes[self.len] = match b {
                b'"' => b'\'',
                b'\n' | b'\r' => b' ',
                b => b,
            };
            self.len += 1;
        }
        Ok(())
    }
}

/// Say why, and enter this generation again as a cold boot. Allocates
/// nothing (the heap is what ran out).
pub fn cold(generation: u32, reason: core::fmt::Arguments<'_>) -> ! {
    let s = state();
    let mut buf = Buf {
        bytes: &mut s.reason,
        len: 0,
    };
    let _ = buf.write_fmt(reason);
    let len = buf.len;
    s.len = len as u32;
    s.armed = 1;
    let text = core::str::from_utf8(&s.reason[..len]).unwrap_or("(not UTF-8)");
    let _ = writeln!(
        arch::console(),
        "KHO restart gen={generation} reason=\"{text}\""
    );
    arch::reenter(s.args)
}
