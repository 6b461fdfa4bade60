//! `cargo xtask`: the kho-rs automation entry point.
//!
//! One module per task; every external command is printed before it runs.
//! See `cargo xtask --help` and docs/TESTING.md.

mod ci;
mod fdt_dump;
mod fixtures;
mod tidy;
mod util;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kho-rs automation: build, check and inspect Kexec HandOver state.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
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
    /// Run every test: host tests with snapshot checks, dtc interop,
    /// bare-metal builds, and the VM handover tests (test-vm).
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
    /// Build the kho-stub boot image (release profile); prints its path and size.
    Build {
        /// The architecture to build for.
        #[arg(long, default_value = "x86_64", value_parser = vm::arch::parse_arch)]
        arch: &'static vm::arch::ArchSpec,
    },
    /// Boot the stub in QEMU with the serial console on this terminal
    /// (prints the QEMU command first).
    Run {
        /// The architecture to boot.
        #[arg(long, default_value = "x86_64", value_parser = vm::arch::parse_arch)]
        arch: &'static vm::arch::ArchSpec,
        /// The scenario in vm-images/ whose memory, NUMA and command line to use.
        #[arg(long, default_value = "basic")]
        scenario: String,
        /// Extra kernel parameters, appended to the scenario's command line.
        #[arg(long)]
        append: Option<String>,
        /// The accelerator.
        #[arg(long, value_enum, default_value_t = vm::qemu::AccelChoice::Auto)]
        accel: vm::qemu::AccelChoice,
    },
    /// Run VM scenarios (vm-images/*.toml) under QEMU and check the handover
    /// protocol of every generation; logs go to target/kho/vm/.
    TestVm {
        /// Only this architecture (repeatable; default: every arch each scenario
        /// lists that the stub supports).
        #[arg(long = "arch", value_parser = vm::arch::parse_arch)]
        arches: Vec<&'static vm::arch::ArchSpec>,
        /// Only this scenario, by file stem (repeatable; default: all).
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// The accelerator: auto picks TCG, the fastest here (docs/TESTING.md).
        #[arg(long, value_enum, default_value_t = vm::qemu::AccelChoice::Auto)]
        accel: vm::qemu::AccelChoice,
        /// Stream the serial console live.
        #[arg(short, long)]
        verbose: bool,
    },
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
        Task::Build { arch } => vm::build(arch),
        Task::Run {
            arch,
            scenario,
            append,
            accel,
        } => vm::run(arch, &scenario, append.as_deref(), accel),
        Task::TestVm {
            arches,
            scenarios,
            accel,
            verbose,
        } => vm::test_vm(&vm::TestVmArgs {
            arches,
            scenarios,
            accel,
            verbose,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
