//! `cargo xtask`: the kho-rs automation entry point.
//!
//! One module per task; every external command is printed before it runs.
//! See `cargo xtask --help` and docs/TESTING.md.

mod ci;
mod fdt_dump;
mod fixtures;
mod fuzz;
mod inspect;
mod linux;
mod tidy;
mod util;
mod vm;

use std::path::PathBuf;
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
    /// Print the canonical rendering of a KHO FDT blob (exit 1 on bad input).
    FdtDump {
        /// The blob to render (a root KHO FDT, or any FDT with --raw).
        file: PathBuf,
        /// Render any valid FDT (e.g. a client sub-blob) without the KHO root checks.
        #[arg(long)]
        raw: bool,
    },
    /// Decode the KHO handover in a guest memory dump: ABI version, root FDT,
    /// scratch areas, preserved ranges, radix nodes, subtrees, and every
    /// structural problem with its location (exit 1 if there is one).
    /// With --find, locate the handover first.
    #[command(group(clap::ArgGroup::new("start").required(true)))]
    Inspect {
        /// The guest memory image: an ELF core from QEMU's dump-guest-memory,
        /// or a raw file with --base.
        #[arg(long, value_name = "FILE")]
        memory: PathBuf,
        /// Read FILE as raw memory whose byte 0 is at this physical address.
        #[arg(long, value_name = "ADDR", value_parser = inspect::parse_addr)]
        base: Option<u64>,
        /// Start at the root KHO FDT at this physical address (scratch unknown).
        #[arg(long, value_name = "ADDR", group = "start", value_parser = inspect::parse_addr)]
        fdt: Option<u64>,
        /// Start at an x86 zero page and follow setup_data to the KHO entry.
        #[arg(long, value_name = "ADDR", group = "start", value_parser = inspect::parse_addr)]
        x86_boot_params: Option<u64>,
        /// Start at a boot DTB and read /chosen linux,kho-fdt and linux,kho-scratch.
        #[arg(long, value_name = "ADDR", group = "start", value_parser = inspect::parse_addr)]
        dtb: Option<u64>,
        /// No address known: scan all RAM for root KHO FDTs and the x86
        /// setup_data entries and boot DTBs that name them, then decode the best.
        #[arg(long, group = "start")]
        find: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The decoder's budget (defaults in docs/DEBUGGING.md, "Budget").
        #[command(flatten)]
        budget: inspect::Budget,
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
        Task::FdtDump { file, raw } => return fdt_dump::run(&file, raw),
        Task::Inspect {
            memory,
            base,
            fdt,
            x86_boot_params,
            dtb,
            find,
            json,
            budget,
        } => {
            let limits = budget.limits();
            if find {
                return inspect::run_find(&memory, base, json, limits);
            }
            let start = match (fdt, x86_boot_params, dtb) {
                (Some(a), _, _) => inspect::Start::Fdt(a),
                (_, Some(a), _) => inspect::Start::X86BootParams(a),
                (_, _, Some(a)) => inspect::Start::Dtb(a),
                // clap's required group guarantees one of them.
                (None, None, None) => return ExitCode::FAILURE,
            };
            return inspect::run(&memory, base, start, json, limits);
        }
        Task::Test => ci::test(),
        Task::Lint => ci::lint(),
        Task::Ci => ci::lint().and_then(|()| ci::test()),
        Task::Fixtures { check } => fixtures::run(check),
        Task::Tidy => tidy::run(),
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
