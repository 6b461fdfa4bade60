//! QEMU: the accelerator choice, the command line, and a console driven through rexpect.
//!
//! QEMU runs in a PTY (rexpect forks it as the leader of a new session with
//! the PTY as its controlling terminal). [`Console`] kills it with SIGKILL
//! when a wait fails or times out and on drop, so QEMU never outlives its
//! test; if the xtask itself dies, closing the PTY master hangs up that
//! session, which ends QEMU too.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rexpect::error::Error as ExpectError;
use rexpect::process::{Signal, WaitStatus};
use rexpect::session::PtySession;

use super::arch::ArchSpec;
use super::check::{Event, Plan, RunEnd, Wait};
use super::protocol;

/// `--accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AccelChoice {
    /// The fastest reliable one: TCG (see docs/TESTING.md, "VM tests").
    Auto,
    /// KVM; fails unless /dev/kvm is usable and the guest arch is the host's.
    Kvm,
    /// QEMU's software emulator.
    Tcg,
}

/// The accelerator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Pick the accelerator for `arch`. `auto` is TCG: these boots are tiny and
/// port-I/O heavy, and under this machine's nested KVM every exit is costly
/// (measured: ~0.15 s per boot with TCG, ~3.4 s with KVM).
pub(crate) fn resolve_accel(choice: AccelChoice, arch: &ArchSpec) -> Result<Accel> {
    match choice {
        AccelChoice::Auto | AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Kvm => {
            if std::env::consts::ARCH != arch.kvm_host {
                bail!(
                    "--accel kvm: KVM runs {} guests only on an {} host, and this host is {}",
                    arch.name,
                    arch.kvm_host,
                    std::env::consts::ARCH
                );
            }
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .context("--accel kvm: /dev/kvm is not usable (use --accel tcg)")?;
            Ok(Accel::Kvm)
        }
    }
}

/// What one VM looks like.
#[derive(Clone, Debug)]
pub(crate) struct VmConfig<'a> {
    pub(crate) arch: &'static ArchSpec,
    pub(crate) image: &'a Path,
    pub(crate) memory_mib: u64,
    pub(crate) numa_nodes: u32,
    pub(crate) accel: Accel,
    pub(crate) cmdline: &'a str,
    /// `-initrd`: the stub's payload (the next kernel) or Linux's initramfs.
    pub(crate) initrd: Option<&'a Path>,
}

/// A QEMU command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QemuCommand {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
}

/// The QEMU command for `cfg`.
///
/// NUMA: QEMU 7.2 rejects `-numa node,mem=` on current machine types ("use
/// -numa node,memdev instead") and no longer splits `-m` over memdev-less
/// nodes ("total memory for NUMA nodes (0x0) should equal RAM size"), on
/// both `pc` and `virt`. So each node gets its own RAM backend:
/// `-smp N -object memory-backend-ram,id=ramI,size=S -numa node,nodeid=I,cpus=I,memdev=ramI`.
pub(crate) fn command(cfg: &VmConfig<'_>) -> QemuCommand {
    let mut args: Vec<String> = vec!["-kernel".into(), cfg.image.display().to_string()];
    args.extend(cfg.arch.machine_args.iter().map(|s| (*s).to_owned()));
    let cpu = match cfg.accel {
        Accel::Tcg => cfg.arch.tcg_cpu_args,
        Accel::Kvm => cfg.arch.kvm_cpu_args,
    };
    args.extend(cpu.iter().map(|s| (*s).to_owned()));
    args.extend(["-accel".into(), cfg.accel.name().into()]);
    args.extend(["-m".into(), format!("{}M", cfg.memory_mib)]);
    if cfg.numa_nodes > 0 {
        let per_node = cfg.memory_mib / u64::from(cfg.numa_nodes);
        args.extend(["-smp".into(), cfg.numa_nodes.to_string()]);
        for i in 0..cfg.numa_nodes {
            args.extend([
                "-object".into(),
                format!("memory-backend-ram,id=ram{i},size={per_node}M"),
            ]);
            args.extend([
                "-numa".into(),
                format!("node,nodeid={i},cpus={i},memdev=ram{i}"),
            ]);
        }
    }
    for a in [
        "-serial",
        "stdio",
        "-display",
        "none",
        "-nodefaults",
        "-nic",
        "none",
        "-no-reboot",
    ] {
        args.push(a.into());
    }
    if let Some(initrd) = cfg.initrd {
        args.extend(["-initrd".into(), initrd.display().to_string()]);
    }
    args.extend(["-append".into(), cfg.cmdline.to_owned()]);
    QemuCommand {
        program: cfg.arch.qemu.to_owned(),
        args,
    }
}

impl QemuCommand {
    pub(crate) fn to_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// The command as one line a shell runs unchanged.
    pub(crate) fn shell_line(&self) -> String {
        let mut out = shell_quote(&self.program);
        for arg in &self.args {
            let _ = write!(out, " {}", shell_quote(arg));
        }
        out
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=,:+@%-".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// How a wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    Success,
    Failure(String),
    TimedOut {
        after: Duration,
    },
    /// QEMU closed the console (exited) first.
    Eof,
}

enum Next {
    Line(String),
    Eof,
    Timeout,
}

/// How often a blocked read comes back to check the deadlines.
const TICK_MS: u64 = 200;

/// QEMU's serial console: every line is kept, logged, and (verbose) echoed.
pub(crate) struct Console {
    session: PtySession,
    log: File,
    verbose: bool,
    /// Every line so far, without line ends.
    pub(crate) lines: Vec<String>,
    /// When the host read each line, from QEMU's start (timing.tsv).
    pub(crate) times: Vec<Duration>,
    started: Instant,
    eof: bool,
    /// The process has been waited for (its status is gone).
    reaped: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("lines", &self.lines.len())
            .field("eof", &self.eof)
            .finish()
    }
}

impl Console {
    /// Start `qemu` with its console on a PTY, logging to `log_path`.
    pub(crate) fn spawn(qemu: &QemuCommand, log_path: &Path, verbose: bool) -> Result<Console> {
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        tracing::debug!(command = %qemu.shell_line(), log = %log_path.display(), "starting QEMU");
        let session = rexpect::session::spawn_command(qemu.to_command(), Some(TICK_MS))
            .with_context(|| format!("starting {}", qemu.program))?;
        Ok(Console {
            session,
            log,
            verbose,
            lines: Vec::new(),
            times: Vec::new(),
            started: Instant::now(),
            eof: false,
            reaped: false,
        })
    }

    fn next_line(&mut self, deadline: Instant) -> Result<Next> {
        if self.eof {
            return Ok(Next::Eof);
        }
        loop {
            match self.session.read_line() {
                Ok(line) => return Ok(Next::Line(self.record(&line))),
                Err(ExpectError::Timeout { .. }) if Instant::now() < deadline => {}
                Err(ExpectError::Timeout { .. }) => return Ok(Next::Timeout),
                Err(ExpectError::EOF { got, .. }) => {
                    self.eof = true;
                    // The last line may lack its newline.
                    return Ok(if got.is_empty() {
                        Next::Eof
                    } else {
                        Next::Line(self.record(&got))
                    });
                }
                Err(e) => return Err(e).context("reading QEMU's console"),
            }
        }
    }

    fn record(&mut self, raw: &str) -> String {
        let line = protocol::clean(raw).to_owned();
        // The log is for people; losing a line of it must not fail the run.
        let _ = writeln!(self.log, "{line}");
        tracing::trace!(target: "xtask::console", "{line}");
        if self.verbose {
            println!("{line}");
        }
        self.lines.push(line.clone());
        self.times.push(self.started.elapsed());
        line
    }

    /// Read lines until `wait` succeeds, a failure pattern appears, QEMU
    /// exits, or the wait's timeout (capped by `run_deadline`) passes.
    pub(crate) fn wait(
        &mut self,
        plan: &Plan<'_>,
        wait: &Wait,
        run_deadline: Instant,
    ) -> Result<WaitResult> {
        tracing::debug!(
            success = %format_args!("KHO {} gen={}", wait.verb, wait.generation),
            timeout = ?wait.timeout,
            "waiting"
        );
        let result = self.wait_for(wait.timeout, run_deadline, |line| wait.classify(plan, line));
        tracing::debug!(result = ?result.as_ref().ok(), "wait over");
        result
    }

    /// Read lines until `classify` calls one a success or a failure, QEMU
    /// exits, or `timeout` (capped by `run_deadline`) passes.
    pub(crate) fn wait_for(
        &mut self,
        timeout: Duration,
        run_deadline: Instant,
        mut classify: impl FnMut(&str) -> Option<Event>,
    ) -> Result<WaitResult> {
        let start = Instant::now();
        let deadline = (start + timeout).min(run_deadline);
        loop {
            match self.next_line(deadline)? {
                Next::Line(line) => match classify(&line) {
                    Some(Event::Success) => return Ok(WaitResult::Success),
                    Some(Event::Failure(why)) => return Ok(WaitResult::Failure(why)),
                    // A console that never stops talking must time out too.
                    None if Instant::now() >= deadline => {
                        return Ok(WaitResult::TimedOut {
                            after: start.elapsed(),
                        });
                    }
                    None => {}
                },
                Next::Eof => return Ok(WaitResult::Eof),
                Next::Timeout => {
                    return Ok(WaitResult::TimedOut {
                        after: start.elapsed(),
                    });
                }
            }
        }
    }

    /// Wait (at most `timeout`) for QEMU to close the console and exit; kill
    /// it if it does not. Lines read meanwhile are kept.
    pub(crate) fn finish(&mut self, timeout: Duration, waiting_for: &str) -> Result<RunEnd> {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            match self.next_line(deadline)? {
                Next::Line(_) if Instant::now() < deadline => {}
                Next::Eof => break,
                Next::Line(_) | Next::Timeout => {
                    self.kill();
                    return Ok(RunEnd::TimedOut {
                        waiting_for: waiting_for.to_owned(),
                        after: start.elapsed(),
                    });
                }
            }
        }
        // The console closes as QEMU exits; its status follows at once.
        let status_deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.session.process().status() {
                Some(WaitStatus::StillAlive) if Instant::now() < status_deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Some(WaitStatus::StillAlive) => {
                    self.kill();
                    return Ok(RunEnd::Killed {
                        reason: "QEMU closed its console but did not exit".into(),
                    });
                }
                Some(WaitStatus::Exited(_, code)) => {
                    tracing::debug!(code, "QEMU exited");
                    self.reaped = true;
                    return Ok(RunEnd::Exited(code));
                }
                Some(WaitStatus::Signaled(_, sig, _)) => {
                    self.reaped = true;
                    return Ok(RunEnd::Signaled(format!("{sig:?}")));
                }
                // Stopped/continued/traced: not an end; keep polling.
                Some(_) if Instant::now() < status_deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                other => {
                    self.kill();
                    return Ok(RunEnd::Killed {
                        reason: format!("cannot get QEMU's exit status ({other:?})"),
                    });
                }
            }
        }
    }

    /// After a failure line: keep reading briefly for context (QEMU usually
    /// exits by itself after `KHO fail`), then kill it.
    pub(crate) fn stop_after_failure(&mut self, why: &str) -> Result<RunEnd> {
        match self.finish(Duration::from_secs(2), "QEMU to exit after a failure line")? {
            RunEnd::TimedOut { .. } => Ok(RunEnd::Killed {
                reason: why.to_owned(),
            }),
            end => Ok(end),
        }
    }

    /// Type `text` on the guest's serial console (QEMU's stdin).
    pub(crate) fn send(&mut self, text: &str) -> Result<()> {
        self.session
            .send(text)
            .and_then(|_| self.session.flush())
            .context("writing to QEMU's console")
    }

    /// SIGKILL QEMU and reap it (idempotent).
    pub(crate) fn kill(&mut self) {
        if self.reaped {
            return;
        }
        tracing::debug!("killing QEMU");
        let process = self.session.process_mut();
        // ESRCH (already exited) is fine: wait() below reaps it either way.
        let _ = process.signal(Signal::SIGKILL);
        let _ = process.wait();
        self.reaped = true;
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(numa_nodes: u32, memory_mib: u64) -> QemuCommand {
        let arch = ArchSpec::find("x86_64").unwrap();
        command(&VmConfig {
            arch,
            image: Path::new("/t/kho-stub"),
            memory_mib,
            numa_nodes,
            accel: Accel::Tcg,
            cmdline: "kho=on kho_stub.seed=0x1",
            initrd: None,
        })
    }

    #[test]
    fn x86_command_line() {
        let c = cfg(0, 512);
        assert_eq!(
            c.shell_line(),
            "qemu-system-x86_64 -kernel /t/kho-stub -machine pc -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -accel tcg -m 512M -serial stdio -display none -nodefaults -nic none -no-reboot \
             -append 'kho=on kho_stub.seed=0x1'"
        );
        assert_eq!(
            c.args.last().map(String::as_str),
            Some("kho=on kho_stub.seed=0x1")
        );
    }

    #[test]
    fn numa_nodes_get_one_ram_backend_each() {
        let c = cfg(2, 512).shell_line();
        assert!(
            c.contains(
                "-m 512M -smp 2 -object memory-backend-ram,id=ram0,size=256M -numa node,nodeid=0,cpus=0,memdev=ram0 \
                 -object memory-backend-ram,id=ram1,size=256M -numa node,nodeid=1,cpus=1,memdev=ram1 -serial"
            ),
            "{c}"
        );
    }

    #[test]
    fn kvm_uses_the_default_cpu_model_on_x86() {
        let arch = ArchSpec::find("x86_64").unwrap();
        let c = command(&VmConfig {
            arch,
            image: Path::new("/k"),
            memory_mib: 256,
            numa_nodes: 0,
            accel: Accel::Kvm,
            cmdline: "",
            initrd: Some(Path::new("/i")),
        });
        assert!(c.args.windows(2).any(|w| w == ["-initrd", "/i"]));
        assert!(c.args.windows(2).any(|w| w == ["-accel", "kvm"]));
        assert!(!c.args.iter().any(|a| a == "-cpu"), "{:?}", c.args);
        assert!(c.shell_line().ends_with("-append ''"));
        assert_eq!(resolve_accel(AccelChoice::Auto, arch).unwrap(), Accel::Tcg);
        let arm = ArchSpec::find("aarch64").unwrap();
        if std::env::consts::ARCH != "aarch64" {
            let e = resolve_accel(AccelChoice::Kvm, arm)
                .unwrap_err()
                .to_string();
            assert!(e.contains("only on an aarch64 host"), "{e}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("kho_scratch=16M,64M"), "kho_scratch=16M,64M");
        assert_eq!(shell_quote(""), "''");
    }
}
