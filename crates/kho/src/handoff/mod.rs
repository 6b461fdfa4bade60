//! Per-arch encodings of the handoff, as Linux defines them.

pub mod dt;
pub mod x86;
