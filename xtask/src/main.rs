//! `cargo xtask`: the kho-rs automation entry point.
//!
//! One module per task; every external command is printed before it runs.
//! See `cargo xtask --help` and docs/TESTING.md.

mod ci;
mod fdt_dump;
mod fixtures;
mod tidy;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kho-rs automation: build, check and inspect Kexec HandOver state.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Print the canonical rendering of a KHO FDT blob (exit 1 on bad input).
    FdtDump {
        /// The blob to render (a root KHO FDT, or any FDT with --raw).
        file: PathBuf,
        /// Render any valid FDT (e.g. a client sub-blob) without the KHO root checks.
        #[arg(long)]
        raw: bool,
    },
    /// Run every test: host tests with snapshot checks, dtc interop, bare-metal builds.
    Test,
    /// Run the linters: rustfmt, clippy (host and bare-metal), rustdoc, tidy.
    Lint,
    /// Everything CI runs, in order: lint, then test.
    Ci,
    /// Recompile the dtc-made test fixtures (`--check`: fail if they differ).
    Fixtures {
        /// Compare instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Check repository conventions (every .rs file opens with a `//!` line).
    Tidy,
}

fn main() -> ExitCode {
    util::init_tracing();
    let cli = Cli::parse();
    let result = match cli.task {
        Task::FdtDump { file, raw } => return fdt_dump::run(&file, raw),
        Task::Test => ci::test(),
        Task::Lint => ci::lint(),
        Task::Ci => ci::lint().and_then(|()| ci::test()),
        Task::Fixtures { check } => fixtures::run(check),
        Task::Tidy => tidy::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
