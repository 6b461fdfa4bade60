//! `cargo xtask build`, `run` and `test-vm`: the kho-stub image under QEMU.
//!
//! - [`arch`]: the per-arch table (target, QEMU binary, board, exit codes);
//! - [`bzimage`]: the x86_64 stub as a bzImage, for Linux's kexec_file_load;
//! - [`scenario`]: `vm-images/*.toml`, one scenario each;
//! - [`protocol`]: the stub's `KHO …` serial line protocol (docs/HANDOVER.md);
//! - [`check`]: the pure transcript checker and the per-generation waits;
//! - [`qemu`]: the command line and the rexpect-driven console;
//! - [`invariants`] and [`layout`]: the numbers across lines and generations
//!   (NUMA, scratch sizing and inheritance, accounting, knobs);
//! - [`reason`]: expected reasons (`*` patterns, per arch);
//! - [`snapshot`]: every run's FDTs and protocol lines as insta snapshots;
//! - [`dump`]: a guest memory dump mid-run, checked with `inspect`;
//! - [`peer`]: the Linux peer kernel as a guest (`[linux]` in a scenario).

pub(crate) mod arch;
pub(crate) mod bzimage;
pub(crate) mod check;
pub(crate) mod dump;
pub(crate) mod invariants;
pub(crate) mod layout;
pub(crate) mod peer;
pub(crate) mod protocol;
pub(crate) mod qemu;
pub(crate) mod reason;
pub(crate) mod scenario;
pub(crate) mod snapshot;
mod timing;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util::{self, artifacts_dir, project_root};
use arch::ArchSpec;
use check::{Plan, Report, RunEnd, Wait};
use qemu::{Accel, AccelChoice, Console, VmConfig, WaitResult};
use scenario::Scenario;

/// Lines of the serial log shown when a run fails.
const LOG_TAIL: usize = 40;

/// The directory of scenario files.
fn scenario_dir() -> PathBuf {
    project_root().join("vm-images")
}

/// `cargo xtask build --arch A`.
pub(crate) fn build(arch: &'static ArchSpec) -> Result<()> {
    let sh = util::shell()?;
    build_image(&sh, arch).map(|_| ())
}

/// Build the stub for `arch` (release profile) and return its image.
fn build_image(sh: &Shell, arch: &'static ArchSpec) -> Result<PathBuf> {
    if !arch.stub_supported() {
        bail!(
            "kho-stub has no {} support yet (crates/kho-stub/src/arch/{}/ does not exist)",
            arch.name,
            arch.stub_dir
        );
    }
    let triple = arch.triple;
    util::ensure_target(sh, triple)?;
    cmd!(sh, "cargo build -p kho-stub --target {triple} --release")
        .run()
        .with_context(|| format!("building kho-stub for {triple}"))?;
    let image = arch.image_path();
    let size = std::fs::metadata(&image)
        .with_context(|| format!("the build did not produce {}", image.display()))?
        .len();
    println!("image: {} ({size} bytes)", image.display());
    let kexec = arch.kexec_image_path();
    if kexec != image {
        // x86_64: Linux's kexec_file_load takes only a bzImage.
        let elf = std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
        let bz = bzimage::bzimage(&bzimage::flatten(&elf)?)?;
        std::fs::write(&kexec, &bz).with_context(|| format!("writing {}", kexec.display()))?;
        println!("kexec image: {} ({} bytes)", kexec.display(), bz.len());
    }
    Ok(image)
}

/// `cargo xtask run`: boot one scenario's configuration interactively.
pub(crate) fn run(
    arch: &'static ArchSpec,
    scenario: &str,
    append: Option<&str>,
    accel: AccelChoice,
) -> Result<()> {
    let scenario = scenario::load_file(&scenario_dir().join(format!("{scenario}.toml")))?;
    if !scenario.arches.iter().any(|a| a == arch.name) {
        eprintln!(
            "note: scenario {} does not list {}; running it anyway",
            scenario.name, arch.name
        );
    }
    let sh = util::shell()?;
    let image = build_image(&sh, arch)?;
    util::ensure_tool(&sh, arch.qemu, arch.qemu_package)?;
    let accel = qemu::resolve_accel(accel, arch)?;
    let linux = linux_boot(&scenario, arch, &image, &artifacts_dir("run"))?;
    let mut cmdline = match &linux {
        Some(l) => l.cmdline.clone(),
        None => scenario.compose_cmdline(None),
    };
    if let Some(extra) = append {
        cmdline = format!("{cmdline} {extra}");
    }
    let kernel = linux
        .as_ref()
        .map_or(image.as_path(), |l| l.kernel.as_path());
    let mut cfg = vm_config(&scenario, arch, kernel, accel, &cmdline);
    cfg.initrd = linux.as_ref().map(|l| l.initrd.as_path());
    let qemu = qemu::command(&cfg);
    println!("accel: {} ({})", accel.name(), accel_reason(accel));
    eprintln!("$ {}", qemu.shell_line());
    let status = qemu
        .to_command()
        .status()
        .with_context(|| format!("starting {}", qemu.program))?;
    match status.code() {
        // Linux ends by rebooting (kho-peer-init, or panic=-1 after a
        // panic); under -no-reboot that is status 0.
        Some(0) if linux.is_some() => {
            println!("QEMU exited with 0: Linux rebooted");
            Ok(())
        }
        Some(code) if code == arch.success_code() => {
            println!("QEMU exited with {code}: {}", arch.describe_exit(code));
            Ok(())
        }
        Some(code) => bail!("QEMU exited with {code}: {}", arch.describe_exit(code)),
        None => bail!("QEMU was killed by a signal ({status})"),
    }
}

fn vm_config<'a>(
    s: &Scenario,
    arch: &'static ArchSpec,
    image: &'a Path,
    accel: Accel,
    cmdline: &'a str,
) -> VmConfig<'a> {
    VmConfig {
        arch,
        image,
        memory_mib: s.memory_mib,
        numa_nodes: s.numa_nodes,
        accel,
        cmdline,
        initrd: None,
    }
}

/// What a scenario with a Linux peer boots besides (or instead of) the stub.
#[derive(Debug)]
struct LinuxBoot {
    peer: crate::linux::Peer,
    /// The kernel QEMU boots: the peer's (selftest) or the stub's.
    kernel: PathBuf,
    /// `-initrd`: the selftest initramfs, or the stub's payload.
    initrd: PathBuf,
    /// `-append`.
    cmdline: String,
    /// The stub's own command line (for the checker): `-append` unless
    /// Linux boots first and passes it on.
    stub_cmdline: String,
}

/// Prepare the peer part of `s` on `arch` (building the peer on first use);
/// `None` for a stub-only scenario. The stub's payload is written to `dir`.
fn linux_boot(
    s: &Scenario,
    arch: &'static ArchSpec,
    stub_image: &Path,
    dir: &Path,
) -> Result<Option<LinuxBoot>> {
    let Some(phase) = &s.linux else {
        return Ok(None);
    };
    let peer = crate::linux::ensure(arch, None)?;
    let console = crate::linux::PeerArch::of(arch)?.console;
    let linux_cmdline = phase.kernel_cmdline(console);
    Ok(Some(if s.linux_only() {
        LinuxBoot {
            kernel: peer.kernel.clone(),
            initrd: peer.selftest_initramfs.clone(),
            cmdline: linux_cmdline,
            stub_cmdline: String::new(),
            peer,
        }
    } else if s.linux_first() {
        // Linux boots with kho-peer-init, which kexec_file_loads the stub
        // (/next/kernel) with the stub's first command line (/next/cmdline).
        let stub_cmdline = s.compose_cmdline(None);
        std::fs::create_dir_all(dir)?;
        let next_cmdline = dir.join("next-cmdline");
        std::fs::write(&next_cmdline, format!("{stub_cmdline} kho_stub.gen=1"))?;
        let kexec_image = arch.kexec_image_path();
        let initrd = dir.join("initramfs.cpio");
        let mut list = format!(
            "dir /dev 0755 0 0\ndir /proc 0755 0 0\ndir /debugfs 0755 0 0\ndir /next 0755 0 0\n\
             nod /dev/console 0600 0 0 c 5 1\nfile /init {} 0755 0 0\n\
             file /next/kernel {} 0644 0 0\nfile /next/cmdline {} 0644 0 0\n",
            peer.dir.join("kho-peer-init").display(),
            kexec_image.display(),
            next_cmdline.display()
        );
        if phase.dump {
            // kho-peer-init waits for the harness's dump after loading.
            let pause = dir.join("next-pause");
            std::fs::write(&pause, "")?;
            list.push_str(&format!("file /next/pause {} 0644 0 0\n", pause.display()));
        }
        if s.hands_to_linux() {
            // linux-roundtrip: the stub's initrd is the payload it boots
            // Linux from in the end (the peer kernel, kho-peer-init without
            // /next, Linux's command line).
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let payload = dir.join("payload.bin");
            std::fs::write(
                &payload,
                peer::payload(
                    &read(&peer.kernel)?,
                    Some(&read(&peer.peer_initramfs)?),
                    &linux_cmdline,
                ),
            )?;
            list.push_str(&format!(
                "file /next/initrd {} 0644 0 0\n",
                payload.display()
            ));
        }
        let sh = util::shell()?;
        crate::linux::write_cpio(&sh, &peer.dir.join("gen_init_cpio"), &list, &initrd)?;
        LinuxBoot {
            kernel: peer.kernel.clone(),
            initrd,
            cmdline: linux_cmdline,
            stub_cmdline,
            peer,
        }
    } else {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let payload = peer::payload(
            &read(&peer.kernel)?,
            Some(&read(&peer.peer_initramfs)?),
            &linux_cmdline,
        );
        std::fs::create_dir_all(dir)?;
        let path = dir.join("payload.bin");
        std::fs::write(&path, payload).with_context(|| format!("writing {}", path.display()))?;
        LinuxBoot {
            kernel: stub_image.to_owned(),
            initrd: path,
            cmdline: s.compose_cmdline(None),
            stub_cmdline: s.compose_cmdline(None),
            peer,
        }
    }))
}

fn accel_reason(accel: Accel) -> &'static str {
    match accel {
        Accel::Tcg => "TCG: faster than this machine's nested KVM for short boots",
        Accel::Kvm => "KVM, default CPU model",
    }
}

/// `cargo xtask test-vm` options.
#[derive(Debug)]
pub(crate) struct TestVmArgs {
    /// Only these arches (empty: every arch a scenario lists that the stub supports).
    pub(crate) arches: Vec<&'static ArchSpec>,
    /// Only these scenarios (empty: all of `vm-images/`).
    pub(crate) scenarios: Vec<String>,
    pub(crate) accel: AccelChoice,
    /// Stream the serial console live.
    pub(crate) verbose: bool,
    /// Dump memory before this generation's kexec in every selected scenario.
    pub(crate) dump_at: Option<u32>,
    /// Run this many generations instead of each scenario's count (a soak:
    /// no snapshots).
    pub(crate) generations: Option<u32>,
}

/// One finished run.
#[derive(Debug)]
struct Outcome {
    scenario: String,
    arch: &'static str,
    accel: Accel,
    generations: u32,
    report: Report,
    wall: Duration,
    /// The run's log directory (serial log, command, renderings).
    log_dir: PathBuf,
    /// How the run involves the Linux peer.
    linux: Option<peer::Flow>,
}

/// `cargo xtask test-vm`.
pub(crate) fn test_vm(args: &TestVmArgs) -> Result<()> {
    let mut runs = select(&scenario::load_dir(&scenario_dir())?, args)?;
    for (s, _) in &mut runs {
        if let Some(n) = args.generations {
            s.override_generations(n)?;
        }
        dump::apply_override(s, args.dump_at)?;
    }
    let sh = util::shell()?;
    let mut images: Vec<(&'static str, PathBuf, Accel)> = Vec::new();
    for (_, arch) in &runs {
        if !images.iter().any(|(name, _, _)| *name == arch.name) {
            // Runs of Linux alone need no stub image.
            let needs_stub = runs
                .iter()
                .any(|(s, a)| a.name == arch.name && !s.linux_only());
            let image = if needs_stub {
                build_image(&sh, arch)?
            } else {
                arch.image_path()
            };
            util::ensure_tool(&sh, arch.qemu, arch.qemu_package)?;
            let accel = qemu::resolve_accel(args.accel, arch)?;
            images.push((arch.name, image, accel));
        }
    }
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (scenario, arch) in &runs {
        let Some((_, image, accel)) = images.iter().find(|(name, _, _)| *name == arch.name) else {
            bail!("internal error: no image for {}", arch.name);
        };
        outcomes.push(run_scenario(scenario, arch, image, *accel, args.verbose)?);
    }
    print_table(&outcomes);
    println!(
        "{} runs in {:.1} s; logs under {}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        artifacts_dir("vm").display()
    );
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.report.passed())
        .map(|o| {
            format!(
                "{} on {} (logs: {})",
                o.scenario,
                o.arch,
                o.log_dir.display()
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!("VM tests failed: {}", failed.join(", "));
    }
    if args.scenarios.is_empty() && args.arches.is_empty() && args.generations.is_none() {
        let expected: Vec<String> = runs
            .iter()
            .flat_map(|(s, arch)| snapshot::names(s, arch.name))
            .collect();
        let stale = snapshot::stale(&expected);
        if !stale.is_empty() {
            bail!(
                "snapshots no scenario produces any more (delete them): {}",
                stale
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// The (scenario, arch) pairs to run, in file and arch-table order.
fn select(all: &[Scenario], args: &TestVmArgs) -> Result<Vec<(Scenario, &'static ArchSpec)>> {
    for name in &args.scenarios {
        if !all.iter().any(|s| &s.name == name) {
            let known: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "no scenario `{name}` in vm-images/ (known: {})",
                known.join(", ")
            );
        }
    }
    for arch in &args.arches {
        if !arch.stub_supported() {
            bail!(
                "--arch {}: kho-stub has no {} support yet",
                arch.name,
                arch.name
            );
        }
    }
    let mut runs = Vec::new();
    for s in all
        .iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.contains(&s.name))
    {
        for arch in arch::ARCHES
            .iter()
            .filter(|a| s.arches.iter().any(|n| n == a.name))
        {
            if !args.arches.is_empty() && !args.arches.iter().any(|a| a.name == arch.name) {
                continue;
            }
            if !arch.stub_supported() {
                println!(
                    "SKIP {} on {}: kho-stub has no {} support yet",
                    s.name, arch.name, arch.name
                );
                continue;
            }
            runs.push((s.clone(), arch));
        }
    }
    if runs.is_empty() {
        bail!("nothing to run: no selected scenario lists a selected arch the stub supports");
    }
    Ok(runs)
}

/// Boot `s` on `arch`, drive every generation, check the transcript, write the logs.
fn run_scenario(
    s: &Scenario,
    arch: &'static ArchSpec,
    image: &Path,
    accel: Accel,
    verbose: bool,
) -> Result<Outcome> {
    // Every event of this run carries its scenario and arch
    // (`RUST_LOG=xtask=debug`: QEMU's command and exit, each wait;
    // `RUST_LOG=xtask::console=trace`: every console line).
    let _run = tracing::info_span!("run", scenario = %s.name, arch = arch.name).entered();
    let log_dir = artifacts_dir("vm").join(format!("{}-{}", s.name, arch.name));
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let linux = linux_boot(s, arch, image, &log_dir)?;
    let cmdline = match &linux {
        Some(l) => l.cmdline.clone(),
        None => s.compose_cmdline(None),
    };
    let kernel = linux.as_ref().map_or(image, |l| l.kernel.as_path());
    let mut cfg = vm_config(s, arch, kernel, accel, &cmdline);
    cfg.initrd = linux.as_ref().map(|l| l.initrd.as_path());
    let mut qemu = qemu::command(&cfg);
    let mut dumper = dump::Dumper::new(s, arch, &log_dir);
    if let Some(d) = &dumper {
        qemu.args.extend(d.qemu_args());
    }
    let linux_dump = s
        .linux
        .as_ref()
        .filter(|l| l.dump)
        .map(|_| dump::LinuxDump::new(s, arch, &log_dir));
    if let Some(d) = &linux_dump {
        qemu.args.extend(d.qemu_args());
    }
    let mut dump_failures = Vec::new();
    let command_line = qemu.shell_line();
    std::fs::write(log_dir.join("command.txt"), format!("{command_line}\n"))?;
    let numa = if s.numa_nodes > 0 {
        format!(", {} NUMA nodes", s.numa_nodes)
    } else {
        String::new()
    };
    let kernels = match &linux {
        Some(l) if s.linux_only() => format!("Linux {} → Linux", l.peer.release),
        Some(l) => format!("{} generations → Linux {}", s.generations, l.peer.release),
        None => format!("{} generations", s.generations),
    };
    println!(
        "==> {} on {}: {} ({kernels}, {}{numa}, accel {})",
        s.name,
        arch.name,
        s.description,
        s.memory,
        accel.name()
    );
    eprintln!("$ {command_line}");

    let image_bytes = if s.linux_only() {
        0
    } else {
        layout::loaded_image_bytes(image)?
    };
    let stub_cmdline = linux
        .as_ref()
        .map_or(cmdline.as_str(), |l| l.stub_cmdline.as_str());
    let plan = Plan::new(s, arch, stub_cmdline).with_image_bytes(Some(image_bytes));
    let start = Instant::now();
    let run_deadline = start + s.run_timeout;
    let log_path = log_dir.join("serial.log");
    let mut console = Console::spawn(&qemu, &log_path, verbose)?;
    let mut end = None;
    // linux-to-stub: Linux is generation 0 and kexecs the stub.
    if s.linux_first()
        && let (Some(phase), Some(l)) = (&s.linux, &linux)
    {
        // A roundtrip's first Linux only has to reach its kexec; the
        // scenario's expected lines are the last Linux's.
        let mut watch = if s.hands_to_linux() {
            peer::Watch::until_kexec()
        } else {
            peer::Watch::new(phase, &l.peer.release)
        };
        if let Some(d) = &linux_dump {
            // Up to kho-peer-init's pause: dump, decode, let Linux go on.
            let result = console.wait_for(phase.timeout, run_deadline, |line| {
                if line.contains(peer::PEER_PAUSE) {
                    Some(check::Event::Success)
                } else {
                    watch.classify(line)
                }
            })?;
            match result {
                WaitResult::Success => dump_failures = d.take(&mut console)?,
                WaitResult::Failure(why) => end = Some(console.stop_after_failure(&why)?),
                WaitResult::TimedOut { after } => {
                    console.kill();
                    end = Some(RunEnd::TimedOut {
                        waiting_for: format!("`{}`", peer::PEER_PAUSE),
                        after,
                    });
                }
                WaitResult::Eof => {
                    end = Some(console.finish(Duration::from_secs(5), "QEMU to exit")?)
                }
            }
        }
        if end.is_none() {
            end = wait_linux(&mut console, s, arch, phase, watch, run_deadline, start)?;
        }
    }
    let stub_from = if s.linux_first() {
        console.lines.len()
    } else {
        0
    };
    let first = if end.is_none() {
        plan.first
    } else {
        s.generations
    };
    for g in first..s.generations {
        let _gen = tracing::debug_span!("generation", g).entered();
        let wait = Wait::for_generation(&plan, g, s.generation_timeout);
        let gen_start = Instant::now();
        let first_line = console.lines.len();
        let paused = dump::Dumper::before_wait(
            &mut dumper,
            &mut console,
            &plan,
            g,
            s.generation_timeout,
            run_deadline,
        )?;
        let result = match paused {
            Some(failed) => failed,
            None => console.wait(&plan, &wait, run_deadline)?,
        };
        let summary = check::summarize(&console.lines[first_line..], g);
        let elapsed = gen_start.elapsed().as_secs_f64();
        let last = s.generations - 1;
        match result {
            WaitResult::Success => println!(
                "    {} {} gen {g}/{last}: {summary} ({elapsed:.2} s)",
                s.name, arch.name
            ),
            WaitResult::Failure(why) => {
                println!("    {} {} gen {g}/{last}: FAILED: {why}", s.name, arch.name);
                end = Some(console.stop_after_failure(&why)?);
                break;
            }
            WaitResult::TimedOut { after } => {
                println!(
                    "    {} {} gen {g}/{last}: TIMEOUT waiting for {}",
                    s.name,
                    arch.name,
                    wait.describe()
                );
                console.kill();
                let mut waiting_for = wait.describe();
                if Instant::now() >= run_deadline {
                    waiting_for.push_str(&format!(" (run timeout {} s)", s.run_timeout.as_secs()));
                }
                end = Some(RunEnd::TimedOut { waiting_for, after });
                break;
            }
            WaitResult::Eof => {
                println!(
                    "    {} {} gen {g}/{last}: QEMU exited before {}",
                    s.name,
                    arch.name,
                    wait.describe()
                );
                end = Some(console.finish(Duration::from_secs(5), "QEMU to exit")?);
                break;
            }
        }
    }
    // Where the stub's output ends (Linux's starts, after a kexec into it).
    let linux_from = console.lines.len();
    let end = match (end, &s.linux, &linux) {
        (Some(end), _, _) => end,
        (None, Some(phase), Some(l)) if !s.linux_first() || s.hands_to_linux() => {
            let watch = peer::Watch::new(phase, &l.peer.release);
            match wait_linux(&mut console, s, arch, phase, watch, run_deadline, start)? {
                Some(end) => end,
                None => {
                    console.finish(Duration::from_secs(30), "QEMU to exit after Linux's end")?
                }
            }
        }
        (None, _, _) => {
            let left = run_deadline.saturating_duration_since(Instant::now());
            let after = if s.refuse.is_some() {
                "QEMU to exit after the expected `KHO fail`"
            } else {
                "QEMU to exit after `KHO done`"
            };
            console.finish(s.generation_timeout.min(left), after)?
        }
    };
    let lines = std::mem::take(&mut console.lines);
    let times = std::mem::take(&mut console.times);
    drop(console);
    let wall = start.elapsed();
    // What each generation cost, by the stub's counters and by the host's
    // clock (docs/BENCHMARKS.md, "Where a generation's time goes").
    let timing = timing::table(&lines, &times);
    if !timing.is_empty() {
        std::fs::write(log_dir.join("timing.tsv"), timing)
            .with_context(|| format!("writing {}", log_dir.join("timing.tsv").display()))?;
    }

    // The stub's lines, and Linux's (before them, or after them).
    let (stub_lines, linux_lines) = match (s.linux_first(), s.hands_to_linux()) {
        // linux-roundtrip: Linux, the stub, Linux; the first Linux is
        // judged on its own below.
        (true, true) => (&lines[stub_from..linux_from], &lines[linux_from..]),
        (true, false) => (&lines[stub_from..], &lines[..stub_from]),
        (false, _) => (&lines[..linux_from], &lines[linux_from..]),
    };
    let mut report = if s.linux_only() {
        check::Report::default()
    } else {
        check::check(&plan, stub_lines, &end)
    };
    if s.linux_first() && s.hands_to_linux() {
        report
            .failures
            .extend(peer::check_handoff(&lines[..stub_from]));
    }
    report.failures.extend(dump_failures);
    if accel == Accel::Kvm && matches!(end, RunEnd::TimedOut { .. }) {
        report.failures.push(String::from(
            "hint: this run used KVM, which under a nested hypervisor can be far slower than TCG (docs/TESTING.md, \"VM tests\"); try `--accel tcg`",
        ));
    }
    if let (Some(phase), Some(l)) = (&s.linux, &linux)
        && (s.linux_only() || (s.linux_first() && !s.hands_to_linux()) || report.done)
    {
        // What the last generation handed over, to compare with what Linux found.
        let sent = match report.generations.last().and_then(|g| g.fdt_out.as_ref()) {
            Some(fdt) if s.hands_to_linux() => match peer::Sent::from_fdt(&fdt.bytes) {
                Ok(sent) => Some(sent),
                Err(e) => {
                    report
                        .failures
                        .push(format!("the last fdt-out does not parse: {e}"));
                    None
                }
            },
            _ => None,
        };
        report.failures.extend(peer::check(
            phase,
            &l.peer.release,
            linux_lines,
            &end,
            sent.as_ref(),
        ));
    }
    if let Some(d) = &dumper {
        report.failures.extend(d.check(arch));
    }
    for g in &report.generations {
        for (fdt, dir) in [(&g.fdt_in, "in"), (&g.fdt_out, "out")] {
            if let Some(fdt) = fdt {
                let path = log_dir.join(format!("fdt-gen{}-{dir}.dts", g.generation));
                std::fs::write(&path, fdt.dts())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    // Snapshots are deterministic text: a run that starts with Linux has
    // Linux's random layout (test_kho's random folios, its allocations) in
    // every address after it, so only stub-first runs are snapshotted.
    if report.passed() && !s.linux_only() && !s.linux_first() && !s.soak {
        report.failures.extend(snapshot::assert_run(
            s, arch.name, &report, &lines, &log_dir,
        ));
    }
    if report.passed() {
        println!(
            "    {} on {}: ok ({:.2} s, QEMU {end})",
            s.name,
            arch.name,
            wall.as_secs_f64()
        );
    } else {
        print_failure(s, arch, &report, &lines, &log_path, &command_line);
    }
    Ok(Outcome {
        scenario: s.name.clone(),
        arch: arch.name,
        accel,
        generations: s.generations,
        report,
        wall,
        log_dir,
        linux: s.linux.as_ref().map(|l| l.flow),
    })
}

/// Follow Linux on the console until its part of the run ends: `None`
/// when it ended as the flow ends it (every expected line seen), else how
/// the run ended (a failure line, a timeout, QEMU's exit).
fn wait_linux(
    console: &mut Console,
    s: &Scenario,
    arch: &ArchSpec,
    phase: &peer::LinuxPhase,
    mut watch: peer::Watch,
    run_deadline: Instant,
    start: Instant,
) -> Result<Option<RunEnd>> {
    let result = console.wait_for(phase.timeout, run_deadline, |line| watch.classify(line))?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(match result {
        WaitResult::Success => {
            println!("    {} {} linux: done ({elapsed:.2} s)", s.name, arch.name);
            None
        }
        WaitResult::Failure(why) => {
            println!("    {} {} linux: FAILED: {why}", s.name, arch.name);
            Some(console.stop_after_failure(&why)?)
        }
        WaitResult::TimedOut { after } => {
            println!(
                "    {} {} linux: TIMEOUT waiting for {}",
                s.name,
                arch.name,
                watch.describe()
            );
            console.kill();
            Some(RunEnd::TimedOut {
                waiting_for: watch.describe(),
                after,
            })
        }
        WaitResult::Eof => {
            println!(
                "    {} {} linux: QEMU exited before {}",
                s.name,
                arch.name,
                watch.describe()
            );
            Some(console.finish(Duration::from_secs(5), "QEMU to exit")?)
        }
    })
}

fn print_failure(
    s: &Scenario,
    arch: &ArchSpec,
    report: &Report,
    lines: &[String],
    log: &Path,
    command: &str,
) {
    println!("---- {} on {} FAILED ----", s.name, arch.name);
    for f in &report.failures {
        println!("  - {f}");
    }
    for line in expectations_cited(s, &report.failures) {
        println!("  {line}");
    }
    if report
        .failures
        .iter()
        .all(|f| snapshot::is_snapshot_failure(f))
    {
        // The run itself passed: its log tail is no news.
        println!("serial log: {}", log.display());
        println!("---- end of {} on {} ----", s.name, arch.name);
        return;
    }
    let tail = lines.len().saturating_sub(LOG_TAIL);
    println!(
        "serial log, last {} of {} lines ({}):",
        lines.len() - tail,
        lines.len(),
        log.display()
    );
    for line in &lines[tail..] {
        println!("  | {}", shorten_hex(line));
    }
    println!("QEMU command: {command}");
    println!("(snapshots are asserted only for runs that pass the checker)");
    println!("---- end of {} on {} ----", s.name, arch.name);
}

/// Where the expectations of the generations `failures` name come from:
/// `vm-images/<scenario>.toml:<line>` for an `[[expect]]` entry, or the
/// default (generation 0 cold, every later one verified).
fn expectations_cited(s: &Scenario, failures: &[String]) -> Vec<String> {
    let mut gens: Vec<u32> = failures
        .iter()
        .filter_map(|f| {
            let rest = &f[f.find("generation ")? + "generation ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .filter(|g| (*g as usize) < s.expect.len())
        .collect();
    gens.sort_unstable();
    gens.dedup();
    gens.into_iter()
        .map(|g| {
            let want = &s.expect[g as usize];
            match s.expect_lines.get(g as usize).copied().flatten() {
                Some(line) => format!(
                    "expected: generation {g} {want} (vm-images/{}.toml:{line})",
                    s.name
                ),
                None => format!(
                    "expected: generation {g} {want} (the default; vm-images/{}.toml has no [[expect]] for it)",
                    s.name
                ),
            }
        })
        .collect()
}

/// A console line with its `hex=` dump (up to 8 KiB of FDT) cut to its
/// first 32 digits: the tail is for reading, the whole line is in the log.
fn shorten_hex(line: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 32;
    match line.find(" hex=") {
        Some(at) if line.len() > at + 5 + KEEP => {
            let digits = line.len() - at - 5;
            format!("{}… ({digits} hex digits)", &line[..at + 5 + KEEP]).into()
        }
        _ => line.into(),
    }
}

fn print_table(outcomes: &[Outcome]) {
    let width = outcomes
        .iter()
        .map(|o| o.scenario.len())
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    println!();
    println!(
        "{:<width$}  {:<8}  {:>11}  {:>14}  {:<8}  {:>8}  accel",
        "scenario", "arch", "generations", "verified bytes", "result", "time"
    );
    for o in outcomes {
        let gens = match o.linux {
            Some(peer::Flow::Selftest) => "linux→linux".to_owned(),
            Some(peer::Flow::LinuxToStub) => {
                format!("linux+{}/{}", o.report.generations.len(), o.generations - 1)
            }
            Some(peer::Flow::LinuxRoundtrip) => format!(
                "linux+{}/{}+linux",
                o.report.generations.len(),
                o.generations - 1
            ),
            Some(peer::Flow::StubToLinux) => {
                format!("{}/{}+linux", o.report.generations.len(), o.generations)
            }
            None => format!("{}/{}", o.report.generations.len(), o.generations),
        };
        let result = if o.report.passed() {
            "ok"
        } else if o
            .report
            .failures
            .iter()
            .all(|f| snapshot::is_snapshot_failure(f))
        {
            "SNAPSHOT"
        } else {
            "FAIL"
        };
        println!(
            "{:<width$}  {:<8}  {gens:>11}  {:>14}  {result:<8}  {:>6.2} s  {}",
            o.scenario,
            o.arch,
            o.report.verified_bytes,
            o.wall.as_secs_f64(),
            o.accel.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cite_the_expectation_and_its_line() {
        let text = "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ngenerations = 4\nseed = 1\nfault = \"vmalloc-cycle@1\"\n\n[[expect]]\ngeneration = 2\nresult = \"partial\"\nreason = \"vmalloc: *\"\n";
        let s = scenario::parse("t", text).unwrap();
        assert_eq!(s.expect_lines, [None, None, Some(9), None]);
        let cited = expectations_cited(
            &s,
            &[
                "line 40: generation 2: verify result=ok, expected partial".into(),
                "line 52: generation 3: no kexec line".into(),
                "line 52: generation 2: again".into(),
                "QEMU exited with 1".into(),
            ],
        );
        assert_eq!(
            cited,
            [
                "expected: generation 2 partial (reason \"vmalloc: *\") (vm-images/t.toml:9)",
                "expected: generation 3 verified (the default; vm-images/t.toml has no [[expect]] for it)",
            ]
        );
    }

    #[test]
    fn hex_dumps_are_cut_in_the_console_tail() {
        let long = format!("KHO fdt-out gen=1 bytes=353 hex={}", "ab".repeat(353));
        assert_eq!(
            shorten_hex(&long),
            format!(
                "KHO fdt-out gen=1 bytes=353 hex={}… (706 hex digits)",
                "ab".repeat(16)
            )
        );
        let short = "KHO fdt-out gen=1 bytes=4 hex=d00dfeed";
        assert_eq!(shorten_hex(short), short);
        assert_eq!(
            shorten_hex("KHO walk gen=1 blocks=3"),
            "KHO walk gen=1 blocks=3"
        );
    }
}
