//! `kho inspect`: what a guest was about to hand over, read from outside in
//! a memory dump (docs/DEBUGGING.md). The command-line front end of the
//! `kho-inspect` crate, which does everything but the I/O:
//!
//! - [`image`]: the dump file as a `kho_inspect::Image` (`pread`), and the
//!   one-line errors that name the file;
//! - this module: the flags ([`Args`]: start point, `--json`, the budget),
//!   printing, the exit status.
//!
//! Exit status: 0 when the handover is sound, 1 when it has a structural
//! problem (after printing everything that could be decoded), 1 with one
//! line on unusable input (no such file, not ELF and no `--base`, …), 2 on
//! a usage error (clap's).

pub mod image;

#[cfg(test)]
mod find_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use image::Image;
use kho_inspect::report::{FindOutput, Output};
use kho_inspect::text::Lists;
use kho_inspect::{Limits, Start, find};

use crate::Error;

/// `kho inspect`'s flags.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("start").required(true)))]
pub struct Args {
    /// The guest memory image: an ELF core from QEMU's dump-guest-memory,
    /// or a raw file with --base.
    #[arg(long, value_name = "FILE")]
    pub memory: PathBuf,
    /// Read FILE as raw memory whose byte 0 is at this physical address.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub base: Option<u64>,
    /// Start at the root KHO FDT at this physical address (scratch unknown).
    #[arg(long, value_name = "ADDR", group = "start", value_parser = parse_addr)]
    pub fdt: Option<u64>,
    /// Start at an x86 zero page and follow setup_data to the KHO entry.
    #[arg(long, value_name = "ADDR", group = "start", value_parser = parse_addr)]
    pub x86_boot_params: Option<u64>,
    /// Start at a boot DTB and read /chosen linux,kho-fdt and linux,kho-scratch.
    #[arg(long, value_name = "ADDR", group = "start", value_parser = parse_addr)]
    pub dtb: Option<u64>,
    /// No address known: scan all RAM for root KHO FDTs and the x86
    /// setup_data entries and boot DTBs that name them, then decode the best.
    #[arg(long, group = "start")]
    pub find: bool,
    /// Print the report as JSON (schema "kho-inspect/1", docs/DEBUGGING.md).
    #[arg(long)]
    pub json: bool,
    /// List every run, folio record and folio (default: the first 16 of
    /// each list, then a count of the rest; --json always lists all).
    #[arg(long, short)]
    pub verbose: bool,
    /// The decoder's budget (defaults in docs/DEBUGGING.md, "Budget").
    #[command(flatten)]
    pub budget: Budget,
}

impl Args {
    /// How much of each long list the text shows.
    pub fn lists(&self) -> Lists {
        if self.verbose {
            Lists::All
        } else {
            Lists::SHORT
        }
    }

    /// Where the decoder starts (`None`: `--find`).
    pub fn start(&self) -> Option<Start> {
        match (self.fdt, self.x86_boot_params, self.dtb) {
            (Some(a), _, _) => Some(Start::Fdt(a)),
            (_, Some(a), _) => Some(Start::X86BootParams(a)),
            (_, _, Some(a)) => Some(Start::Dtb(a)),
            (None, None, None) => None,
        }
    }
}

/// The decoder's budget on the command line: each flag overrides one
/// default of `kho_inspect::Limits` (docs/DEBUGGING.md, "Budget").
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct Budget {
    /// Most radix nodes the walk of the preserved-memory tree visits.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_nodes: Option<u64>,
    /// Most runs of the preserved set listed (the walk stops after them).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_runs: Option<u64>,
    /// Most blocks checked one by one against the preserved set (the
    /// stub's records, kho_test's folios).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_blocks: Option<u64>,
    /// Most bytes read from the image to decode one handover (K/M/G/T
    /// suffixes: 8G).
    #[arg(long, value_name = "BYTES", value_parser = parse_count)]
    pub max_bytes: Option<u64>,
    /// Most problems listed per handover (the rest are counted).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_problems: Option<u64>,
    /// Most bytes of a 2024-design FDT read whole (K/M/G/T suffixes:
    /// 256M); its tree grows with what is preserved.
    #[arg(long, value_name = "BYTES", value_parser = parse_count)]
    pub max_fdt_bytes: Option<u64>,
    /// `--find`: most bytes of the image the scan reads (K/M/G/T
    /// suffixes: 256G); zero fill past an ELF segment's file bytes is free.
    #[arg(long, value_name = "BYTES", value_parser = parse_count)]
    pub max_scan_bytes: Option<u64>,
}

impl Budget {
    /// The default limits with these overrides.
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        let size = |v: Option<u64>, default: usize| {
            v.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        Limits {
            nodes: size(self.max_nodes, d.nodes),
            runs: size(self.max_runs, d.runs),
            blocks: self.max_blocks.unwrap_or(d.blocks),
            bytes: self.max_bytes.unwrap_or(d.bytes),
            problems: size(self.max_problems, d.problems),
            fdt_bytes: self.max_fdt_bytes.unwrap_or(d.fdt_bytes),
            scan_bytes: self.max_scan_bytes.unwrap_or(d.scan_bytes),
            ..d
        }
    }
}

/// Open the image and decode the handover from `start` (default limits).
pub fn inspect_file(memory: &Path, base: Option<u64>, start: Start) -> Result<Output, Error> {
    inspect_file_with(memory, base, start, Limits::default())
}

/// Open the image and decode the handover from `start` within `limits`.
pub fn inspect_file_with(
    memory: &Path,
    base: Option<u64>,
    start: Start,
    limits: Limits,
) -> Result<Output, Error> {
    let image = Image::open(memory, base)?;
    let report = kho_inspect::inspect_with(&image, start, limits);
    Ok(Output {
        image: image.info(),
        start,
        report,
    })
}

/// Open the image, scan all of its RAM for the handover, decode the best
/// candidates (default limits).
pub fn find_file(memory: &Path, base: Option<u64>) -> Result<FindOutput, Error> {
    find_file_with(memory, base, Limits::default())
}

/// [`find_file`] within `limits`.
pub fn find_file_with(
    memory: &Path,
    base: Option<u64>,
    limits: Limits,
) -> Result<FindOutput, Error> {
    let image = Image::open(memory, base)?;
    let found = find::find_in(&image, limits);
    Ok(FindOutput {
        image: image.info(),
        found,
    })
}

/// `kho inspect`: decode, print, and say by the exit status whether the
/// handover is sound.
pub fn run(args: &Args) -> ExitCode {
    let limits = args.budget.limits();
    let (text, sound) = match args.start() {
        None => {
            let out = match find_file_with(&args.memory, args.base, limits) {
                Ok(out) => out,
                Err(e) => return crate::fail(e),
            };
            // Nothing found is one line, with or without --json.
            if let Some(why) = out.found.nothing_found() {
                return crate::fail(format_args!("{}: {why}", out.image.file));
            }
            let text = if args.json {
                kho_inspect::json::render(&out).map_err(|e| e.to_string())
            } else {
                Ok(kho_inspect::text::render_find_with(&out, args.lists()))
            };
            (text, out.found.is_sound())
        }
        Some(start) => {
            let out = match inspect_file_with(&args.memory, args.base, start, limits) {
                Ok(out) => out,
                Err(e) => return crate::fail(e),
            };
            let text = if args.json {
                kho_inspect::json::render(&out).map_err(|e| e.to_string())
            } else {
                Ok(kho_inspect::text::render_with(&out, args.lists()))
            };
            (text, out.report.problems.is_empty())
        }
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => return crate::fail(format_args!("serializing the report: {e}")),
    };
    if let Err(e) = crate::print(&text) {
        return crate::fail(e);
    }
    if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A physical address on the command line: `0x` hex or decimal.
pub fn parse_addr(text: &str) -> Result<u64, String> {
    parse_number(text).ok_or_else(|| format!("`{text}` is not an address (0x-hex or decimal)"))
}

/// A count or size on the command line: `0x` hex or decimal, with an
/// optional binary suffix `K`, `M`, `G` or `T` (`8G`).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    parse_number(digits)
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{text}` is not a count (0x-hex or decimal, optional K/M/G/T)"))
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    #[test]
    fn counts_take_hex_decimal_and_binary_suffixes() {
        assert_eq!(parse_count("4096"), Ok(4096));
        assert_eq!(parse_count("0x1_000"), Ok(4096));
        assert_eq!(parse_count("8G"), Ok(8 << 30));
        assert_eq!(parse_count("1k"), Ok(1024));
        assert!(parse_count("16E").is_err());
        assert!(parse_count("99999999999T").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("G").is_err());
    }

    #[test]
    fn the_budget_flags_override_only_their_limit() {
        let d = Limits::default();
        assert_eq!(Budget::default().limits(), d);
        let b = Budget {
            max_runs: Some(10),
            max_bytes: Some(1 << 20),
            ..Budget::default()
        };
        let l = b.limits();
        assert_eq!((l.runs, l.bytes), (10, 1 << 20));
        assert_eq!(
            (l.nodes, l.blocks, l.problems),
            (d.nodes, d.blocks, d.problems)
        );
    }
}
