//! `fdt-dump`: the canonical rendering of one FDT blob for review, with the
//! size bounds the CLI applies before it reads a file.
//!
//! A KHO root FDT is one page ([`MAX_ROOT`]); `raw` renders any FDT blob (a
//! client's sub-FDT, a boot DTB) up to Linux's arm64 `MAX_FDT_SIZE`
//! ([`MAX_RAW`]), without the KHO root checks.

use alloc::string::String;

/// Largest KHO root FDT: one page.
pub const MAX_ROOT: u64 = 4096;
/// Largest blob rendered with `raw`: 2 MiB.
pub const MAX_RAW: u64 = 2 << 20;

/// The largest blob `render` takes for `raw`.
pub const fn max_len(raw: bool) -> u64 {
    if raw { MAX_RAW } else { MAX_ROOT }
}

/// The canonical rendering of `blob`: as a KHO root FDT (kho-fdt's checks
/// first), or with `raw` as any valid FDT; a malformed blob is kho-fdt's
/// named error.
pub fn render(blob: &[u8], raw: bool) -> Result<String, kho_fdt::Error> {
    if raw {
        kho_fdt::render_blob(blob)
    } else {
        kho_fdt::render(blob)
    }
}
