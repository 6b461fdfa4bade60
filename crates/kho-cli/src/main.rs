//! `kho`: Linux Kexec HandOver (KHO) from the outside. `kho inspect` decodes
//! the handover in a guest memory dump or vmcore and names every structural
//! problem; `kho fdt-dump` prints a KHO FDT blob for review or for dtc;
//! `kho decode-key`/`encode-key` translate radix keys.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Linux Kexec HandOver (KHO) from the outside: decode a handover in a
/// memory dump, print KHO FDT blobs.
#[derive(Debug, Parser)]
#[command(name = "kho", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode the KHO handover in a guest memory dump: a verdict, every
    /// structural problem with its location (causes first), then the ABI
    /// version, root FDT, scratch areas, preserved ranges, radix nodes and
    /// subtrees (exit 1 if there is a problem). With --find, locate the
    /// handover first.
    Inspect(kho_cli::inspect::Args),
    /// Print a KHO FDT blob: kho-rs's canonical review rendering, or with
    /// --dts source dtc compiles back to the blob (exit 1 on bad input).
    FdtDump(kho_cli::fdt_dump::Args),
    /// Decode radix-tree keys (kho-v2 and later): the block each stands for
    /// and its table index at every level and leaf bit.
    DecodeKey(kho_cli::key::DecodeArgs),
    /// Encode the radix-tree key of the block of 2^ORDER pages at PHYS.
    EncodeKey(kho_cli::key::EncodeArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Inspect(args) => kho_cli::inspect::run(&args),
        Command::FdtDump(args) => kho_cli::fdt_dump::run(&args),
        Command::DecodeKey(args) => kho_cli::key::run_decode(&args),
        Command::EncodeKey(args) => kho_cli::key::run_encode(&args),
    }
}
