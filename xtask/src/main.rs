//! `cargo xtask`: the kho-rs automation entry point.
//!
//! One module per task; every external command is printed before it runs.
//! See `cargo xtask --help` and docs/TESTING.md.

mod ci;
mod downstream;
mod fixtures;
mod fuzz;
mod inspect;
mod linux;
mod plot;
mod tidy;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kho-rs automation: build, check and inspect Kexec HandOver state.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    /// Without one, the list of tasks is printed (and the exit is 0: asking
    /// what there is is not an error).
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Print a KHO FDT blob (exit 1 on bad input): `kho fdt-dump`
    /// (crates/kho-cli).
    FdtDump(kho_cli::fdt_dump::Args),
    /// Decode the KHO handover in a guest memory dump and name every
    /// structural problem (exit 1 if there is one): `kho inspect`
    /// (crates/kho-cli, docs/DEBUGGING.md).
    Inspect(kho_cli::inspect::Args),
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
    /// Draw docs/benchmarks-scaling.svg (time per page against preserved
    /// size: kho-rs, Linux 7.2's algorithm, roaring, BTreeSet) from the last
    /// `cargo bench -p kho-radix`.
    Plot,
    /// Build and run each library crate's README as a project of its own:
    /// the README's `[dependencies]` block and example, nothing else.
    Downstream,
    /// Fuzz the parsers of untrusted input (fuzz/, needs nightly; installs cargo-fuzz).
    Fuzz {
        /// One target (default: every target in fuzz/fuzz_targets).
        #[arg(conflicts_with = "all")]
        target: Option<String>,
        /// Every target, one after another (the default without TARGET).
        #[arg(long)]
        all: bool,
        /// Seconds per target (with --runs: the most each may take).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Stop each target after N executions instead (libFuzzer's -runs),
        /// e.g. 10000000 for the figures in docs/TESTING.md.
        #[arg(long, value_name = "N")]
        runs: Option<u64>,
    },
    /// Build (once) and cache the Linux peer kernel from Debian's
    /// linux-source-7.2 with KHO and its selftest, plus its initramfs images;
    /// prints where the cache entry is.
    Linux {
        /// Only this architecture (repeatable; default: every arch).
        #[arg(long = "arch", value_parser = vm::arch::parse_arch)]
        arches: Vec<&'static vm::arch::ArchSpec>,
        /// Parallel make jobs (default: CPUs + 1).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
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
        /// Pause generation G before its kexec, dump guest memory through
        /// QEMU's QMP socket and check `inspect` agrees with the stub
        /// (overrides a scenario's `dump_at`).
        #[arg(long, value_name = "G")]
        dump_at: Option<u32>,
        /// Run N generations instead of each scenario's count: a soak run,
        /// checked generation by generation but not snapshotted.
        #[arg(long, value_name = "N")]
        generations: Option<u32>,
    },
}

fn main() -> ExitCode {
    util::init_tracing();
    let cli = Cli::parse();
    let Some(task) = cli.task else {
        let mut help = <Cli as clap::CommandFactory>::command();
        return match help.print_help() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    };
    let result = match task {
        Task::FdtDump(args) => return kho_cli::fdt_dump::run(&args),
        Task::Inspect(args) => return kho_cli::inspect::run(&args),
        Task::Test => ci::test(),
        Task::Lint => ci::lint(),
        Task::Ci => ci::lint().and_then(|()| ci::test()),
        Task::Fixtures { check } => fixtures::run(check),
        Task::Tidy => tidy::run(),
        Task::Plot => plot::run(),
        Task::Downstream => ci::library_crates().and_then(|c| downstream::run(&c)),
        Task::Fuzz {
            target,
            all: _,
            seconds,
            runs,
        } => fuzz::run(target.as_deref(), seconds, runs),
        Task::Linux { arches, jobs } => linux::run(&arches, jobs),
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
            dump_at,
            generations,
        } => vm::test_vm(&vm::TestVmArgs {
            arches,
            scenarios,
            accel,
            verbose,
            dump_at,
            generations,
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
