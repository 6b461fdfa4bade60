//! Per-arch encodings of the handoff, as Linux defines them.

pub mod x86;
