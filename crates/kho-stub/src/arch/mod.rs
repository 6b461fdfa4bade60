//! The architecture layer: entry, console, exit, memory discovery, handoff glue.
//!
//! Each arch module provides the same items (`NAME`, `MAPPED_LIMIT`, `POOL_START`,
//! `console`, `read_byte`, `exit`, `ticks`, `boot_in_use`, `low_limit`, `ArchBoot`,
//! `setup_memory` and its `MemSetup`, `prepare_kexec`, `prepare_linux`,
//! `enter_linux`, `enter_stub`, `corrupt_handoff`, `next_entry`, `reenter`)
//! and nothing else: entry, memory types, console,
//! exit, memory discovery and handoff glue. The generation logic
//! (`generation.rs`) and the arch-independent half of kexec (`kexec.rs`) are
//! written once against them.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
