//! `cargo xtask fdt-dump FILE`: render a KHO FDT blob for review.

use std::path::Path;
use std::process::ExitCode;

/// Print the rendering of `file`; on any error print one line and exit 1.
pub(crate) fn run(file: &Path, raw: bool) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let rendered = if raw {
        kho_fdt::render_blob(&bytes)
    } else {
        kho_fdt::render(&bytes)
    };
    match rendered {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
