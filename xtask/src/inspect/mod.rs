//! `cargo xtask inspect`: what a guest was about to hand over, read from
//! outside in a memory dump (docs/DEBUGGING.md).
//!
//! - [`image`]: the dump as a read-only `PhysMem` (ELF core or raw file);
//! - [`decode`]: the handover decoded through the workspace's crates, every
//!   structural problem listed with its location;
//! - [`report`]: the result as data (`--json` serializes it);
//! - [`text`]: the result as text;
//! - [`find`]: `--find`, which scans the whole image for the handover
//!   when no address is known.
//!
//! Exit status: 0 when the handover is sound, 1 when it has a structural
//! problem (after printing everything that could be decoded), 1 with one
//! line on unusable input (no such file, not ELF and no `--base`, …).

pub(crate) mod decode;
pub(crate) mod find;
pub(crate) mod image;
pub(crate) mod report;
mod text;

/// The stub's blob layout, written once in the stub crate (its file has no
/// dependency beyond kho-abi and zerocopy); docs/HANDOVER.md documents it.
#[allow(dead_code)]
#[path = "../../../crates/kho-stub/src/blob.rs"]
pub(crate) mod stub_blob;

#[cfg(test)]
mod find_tests;
#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

pub(crate) use decode::inspect;
pub(crate) use image::Image;
pub(crate) use report::{Report, Start};

/// The image part of the output.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ImageInfo {
    pub(crate) file: String,
    pub(crate) format: image::Format,
    pub(crate) segments: Vec<image::Segment>,
}

/// Everything `inspect` prints.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Output {
    pub(crate) image: ImageInfo,
    pub(crate) start: Start,
    #[serde(flatten)]
    pub(crate) report: Report,
}

/// Open the image and decode the handover from `start`.
pub(crate) fn inspect_file(memory: &Path, base: Option<u64>, start: Start) -> Result<Output> {
    let image = Image::open(memory, base)?;
    let report = inspect(&image, start);
    Ok(Output {
        image: ImageInfo {
            file: image.path().display().to_string(),
            format: image.format(),
            segments: image.segments().to_vec(),
        },
        start,
        report,
    })
}

/// Everything `inspect --find` prints.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FindOutput {
    pub(crate) image: ImageInfo,
    #[serde(flatten)]
    pub(crate) found: find::Found,
}

/// Open the image, scan all of its RAM for the handover, decode the best
/// candidates.
pub(crate) fn find_file(memory: &Path, base: Option<u64>) -> Result<FindOutput> {
    let image = Image::open(memory, base)?;
    let found = find::find(&image, &image.ram_ranges(), find::Limits::default());
    Ok(FindOutput {
        image: ImageInfo {
            file: image.path().display().to_string(),
            format: image.format(),
            segments: image.segments().to_vec(),
        },
        found,
    })
}

/// `cargo xtask inspect`.
pub(crate) fn run(memory: &Path, base: Option<u64>, start: Start, json: bool) -> ExitCode {
    let out = match inspect_file(memory, base, start) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let sound = out.report.problems.is_empty();
    print(&out, json, text::render, sound)
}

/// `cargo xtask inspect --find`: exit 1 with one line when nothing is
/// found, else the candidates and the decoded handovers (exit 0 when the
/// scan and every decoded handover are free of problems).
pub(crate) fn run_find(memory: &Path, base: Option<u64>, json: bool) -> ExitCode {
    let out = match find_file(memory, base) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(why) = out.found.nothing_found() {
        eprintln!("error: {}: {why}", out.image.file);
        return ExitCode::FAILURE;
    }
    let sound = out.found.is_sound();
    print(&out, json, text::render_find, sound)
}

/// Print `out` as JSON or text; exit 0 if `sound`.
fn print<T: Serialize>(out: &T, json: bool, render: fn(&T) -> String, sound: bool) -> ExitCode {
    let text = if json {
        match serde_json::to_string_pretty(out) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("error: serializing the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        render(out)
    };
    // `println!` panics on a closed pipe (`inspect … | head`); a reader
    // that stops early is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A physical address on the command line: `0x` hex or decimal.
pub(crate) fn parse_addr(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("`{text}` is not an address (0x-hex or decimal)"))
}
