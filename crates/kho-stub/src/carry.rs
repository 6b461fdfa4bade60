//! The payload at run time: carried from generation to generation, opened by the one that boots Linux.
//!
//! A generation finds the payload where its initrd is (QEMU's on a cold
//! boot, a scratch copy on a KHO boot). The allocator keeps away from it
//! until the radix walk has reserved every preserved block; then
//! [`carry`] copies it into ordinary kernel-pool memory, out of the way of
//! the handoff's scratch allocations. At the handoff it is copied into
//! scratch again: as the next generation's initrd, or (the last generation
//! with `kho_stub.next=linux`) opened with [`LinuxPayload::read`] and its
//! parts placed for Linux.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kho_mem::{Order, PhysAddr, PhysMem, PhysRange};

use crate::mem::StubMem;
use crate::payload::{self, Layout, Span};

/// Copy the incoming payload into fresh kernel-pool memory (one naturally
/// aligned block); the copy is ordinary memory to the next kernel.
pub fn carry(mem: &mut StubMem, incoming: PhysRange) -> Result<PhysRange, String> {
    let pages = incoming
        .size()
        .div_ceil(kho_mem::PAGE_SIZE as u64)
        .max(1)
        .next_power_of_two();
    let order = Order::try_new(pages.trailing_zeros()).map_err(|e| format!("payload: {e}"))?;
    let at = mem
        .alloc_pages(order)
        .map_err(|e| format!("payload copy of {:#x} bytes: {e}", incoming.size()))?;
    crate::kexec::copy(mem, incoming.start(), at, incoming.size())
        .map_err(|e| format!("payload at {}: {e}", incoming.start()))?;
    PhysRange::try_new(at, incoming.size()).map_err(|e| format!("payload: {e}"))
}

/// An opened payload in memory: where each part is, the command line, and
/// the first bytes of the kernel image (for its header).
#[derive(Debug)]
pub struct LinuxPayload {
    base: PhysAddr,
    layout: Layout,
    /// The Linux command line the payload carries.
    pub cmdline: String,
    /// The kernel image's first [`crate::linux::HEAD`] bytes (fewer if it
    /// is shorter).
    pub kernel_head: Vec<u8>,
}

impl LinuxPayload {
    /// Validate the payload at `at` (header, entries, command line).
    pub fn read(mem: &StubMem, at: PhysRange) -> Result<LinuxPayload, String> {
        let err = |e: &dyn core::fmt::Display| format!("payload: {e}");
        let mut head = vec![0u8; (at.size() as usize).min(payload::MAX_HEAD)];
        mem.read(at.start(), &mut head).map_err(|e| err(&e))?;
        let layout = Layout::parse(&head, at.size()).map_err(|e| err(&e))?;
        let cmdline = match layout.cmdline {
            Some(span) => {
                let mut bytes = vec![0u8; span.size as usize];
                mem.read(Self::at(at.start(), span)?, &mut bytes)
                    .map_err(|e| err(&e))?;
                String::from(payload::cmdline_text(&bytes).map_err(|e| err(&e))?)
            }
            None => String::new(),
        };
        let mut kernel_head = vec![0u8; (layout.kernel.size as usize).min(crate::linux::HEAD)];
        mem.read(Self::at(at.start(), layout.kernel)?, &mut kernel_head)
            .map_err(|e| err(&e))?;
        Ok(LinuxPayload {
            base: at.start(),
            layout,
            cmdline,
            kernel_head,
        })
    }

    fn at(base: PhysAddr, span: Span) -> Result<PhysAddr, String> {
        base.checked_add(span.offset)
            .ok_or_else(|| String::from("payload entry wraps"))
    }

    fn range(&self, span: Span) -> Result<PhysRange, String> {
        PhysRange::try_new(Self::at(self.base, span)?, span.size).map_err(|e| format!("{e}"))
    }

    /// Where the kernel image is.
    pub fn kernel(&self) -> Result<PhysRange, String> {
        self.range(self.layout.kernel)
    }

    /// Where the initramfs is, if there is one.
    pub fn initramfs(&self) -> Result<Option<PhysRange>, String> {
        self.layout.initramfs.map(|s| self.range(s)).transpose()
    }

    /// The command line Linux gets: the payload's, plus `kho=on` when it
    /// does not set `kho=` itself (without it Linux revives the handover
    /// but its clients, test_kho among them, stay idle).
    pub fn linux_cmdline(&self) -> String {
        let mut line = String::from(self.cmdline.trim());
        if !line.split_ascii_whitespace().any(|w| w.starts_with("kho=")) {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str("kho=on");
        }
        line
    }
}
