//! The architecture layer: entry, console, exit, memory discovery, handoff glue.

#[cfg(target_arch = "x86_64")]
mod x86_64;
