//! `dump_at = G` / `--dump-at G`: dump guest memory while the stub is paused
//! before generation G's kexec, and check `cargo xtask inspect` against the
//! stub's own account of what it hands over.
//!
//! With `kho_stub.pause_at=G` the stub prints `KHO run` lines (its outgoing
//! tree's coalesced runs, in key order), `KHO preserved` (totals and radix
//! node counts) and `KHO pause` (the handover's addresses), then waits for a
//! byte on its console (docs/HANDOVER.md). Meanwhile the harness asks QEMU,
//! over a QMP socket, for `dump-guest-memory` (an ELF core) and then sends
//! the byte. After the run, [`Dumper::check`] decodes the dump from the
//! arch's handoff (the x86 zero page, the arm64 DTB) and requires the same
//! runs in the same order, the same totals and radix nodes, and no
//! structural problem. A dump that passes is deleted (it is as large as the
//! guest's RAM) unless `KHO_KEEP_DUMPS=1` is set; one that fails is kept
//! and named, with the `inspect` command that reads it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::arch::ArchSpec;
use super::check::{Plan, Wait};
use super::protocol::{self, Verb};
use super::qemu::{Console, WaitResult};
use super::scenario::Scenario;
use crate::inspect::{self, Start};

/// Set to `1` to keep dumps that pass too (docs/DEBUGGING.md).
const KEEP_DUMPS: &str = "KHO_KEEP_DUMPS";

/// How long QEMU may take to write the dump.
const DUMP_TIMEOUT: Duration = Duration::from_secs(300);

/// Apply `--dump-at G` to a scenario (it overrides the file's `dump_at`).
pub(crate) fn apply_override(s: &mut Scenario, dump_at: Option<u32>) -> Result<()> {
    if let Some(g) = dump_at {
        check_generation(s, g).with_context(|| format!("--dump-at {g} for scenario {}", s.name))?;
        s.dump_at = Some(g);
    }
    Ok(())
}

/// A generation that can pause: one that kexecs, without a fault injected.
pub(crate) fn check_generation(s: &Scenario, g: u32) -> Result<()> {
    ensure!(
        g + 1 < s.generations,
        "generation {g} never kexecs (the last generation is {}), so it cannot pause for a dump",
        s.generations - 1
    );
    ensure!(
        s.fault.as_ref().is_none_or(|f| f.generation != g),
        "generation {g} also injects a fault: dump another generation"
    );
    Ok(())
}

/// What the stub said about its outgoing handover before pausing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StubAccount {
    /// `KHO run` lines: (order, addr, blocks), in printed order.
    pub(crate) runs: Vec<(u32, u64, u64)>,
    pub(crate) blocks: u64,
    pub(crate) pages: u64,
    pub(crate) tables: u64,
    pub(crate) leaves: u64,
    pub(crate) fdt: u64,
    /// Scratch array: address, byte length.
    pub(crate) scratch: (u64, u64),
    /// The x86 zero page or the arm64 DTB of the next generation.
    pub(crate) handoff: u64,
}

/// Collect generation `g`'s `run`, `preserved` and `pause` lines.
pub(crate) fn parse_account(lines: &[String], g: u32) -> Result<StubAccount, String> {
    let mut account = StubAccount::default();
    let (mut preserved, mut pause) = (false, false);
    for line in lines
        .iter()
        .filter_map(|l| protocol::parse(l)?.ok())
        .filter(|l| l.generation() == Some(g))
    {
        let field = |key: &str| {
            line.num(key)
                .ok_or_else(|| format!("`KHO {}` has no numeric {key}=", line.verb))
        };
        match line.verb.as_str() {
            "run" => {
                let order = u32::try_from(field("order")?).map_err(|e| e.to_string())?;
                account.runs.push((order, field("addr")?, field("blocks")?));
            }
            "preserved" => {
                preserved = true;
                account.blocks = field("blocks")?;
                account.pages = field("pages")?;
                account.tables = field("radix-tables")?;
                account.leaves = field("radix-leaves")?;
                let runs = field("runs")?;
                if runs != account.runs.len() as u64 {
                    return Err(format!(
                        "`KHO preserved` says runs={runs}, but {} `KHO run` lines came before it",
                        account.runs.len()
                    ));
                }
            }
            "pause" => {
                pause = true;
                account.fdt = field("fdt")?;
                account.handoff = field("handoff")?;
                let scratch = line.get("scratch").unwrap_or_default();
                account.scratch = scratch
                    .split_once('+')
                    .and_then(|(a, l)| Some((protocol::parse_num(a)?, protocol::parse_num(l)?)))
                    .ok_or_else(|| format!("`KHO pause` scratch={scratch:?} is not ADDR+LEN"))?;
            }
            _ => {}
        }
    }
    if !preserved || !pause {
        return Err(format!(
            "generation {g} did not print both `KHO preserved` and `KHO pause`"
        ));
    }
    Ok(account)
}

/// The dump of one run: where, and what the stub said.
#[derive(Debug)]
pub(crate) struct Dumper {
    generation: u32,
    qmp: PathBuf,
    dump: PathBuf,
    account: Option<StubAccount>,
    taken_in: Duration,
}

impl Dumper {
    /// The dumper for scenario `s` (`None` without `dump_at`); the dump goes
    /// to `log_dir`.
    pub(crate) fn new(s: &Scenario, arch: &ArchSpec, log_dir: &Path) -> Option<Dumper> {
        let generation = s.dump_at?;
        // A short path: a Unix socket's name is limited to 107 bytes.
        let qmp = std::env::temp_dir().join(format!(
            "kho-qmp-{}-{}-{}.sock",
            std::process::id(),
            s.name,
            arch.name
        ));
        Some(Dumper {
            generation,
            qmp,
            dump: log_dir.join(format!("memory-gen{generation}.elf")),
            account: None,
            taken_in: Duration::ZERO,
        })
    }

    /// QEMU arguments for the QMP socket.
    pub(crate) fn qemu_args(&self) -> [String; 2] {
        [
            "-qmp".to_owned(),
            format!("unix:{},server=on,wait=off", self.qmp.display()),
        ]
    }

    /// Called before generation `g`'s wait: for the dump generation, wait
    /// for `KHO pause`, dump memory, and let the stub continue. `Some` is a
    /// wait that failed (the run stops as for any failed wait).
    pub(crate) fn before_wait(
        this: &mut Option<Dumper>,
        console: &mut Console,
        plan: &Plan<'_>,
        g: u32,
        timeout: Duration,
        run_deadline: Instant,
    ) -> Result<Option<WaitResult>> {
        let Some(d) = this.as_mut().filter(|d| d.generation == g) else {
            return Ok(None);
        };
        let wait = Wait {
            generation: g,
            verb: Verb::Other("pause".to_owned()),
            timeout,
        };
        match console.wait(plan, &wait, run_deadline)? {
            WaitResult::Success => {}
            other => return Ok(Some(other)),
        }
        let account = match parse_account(&console.lines, g) {
            Ok(a) => a,
            Err(why) => return Ok(Some(WaitResult::Failure(why))),
        };
        let start = Instant::now();
        if let Err(e) = qmp_dump(&d.qmp, &d.dump) {
            return Ok(Some(WaitResult::Failure(format!(
                "dump-guest-memory at generation {g}: {e:#}"
            ))));
        }
        d.taken_in = start.elapsed();
        d.account = Some(account);
        console.send("\n")?;
        Ok(None)
    }

    /// After the run: decode the dump and compare it with the stub's
    /// account. Returns the failures (none: the dump is deleted).
    pub(crate) fn check(&self, arch: &ArchSpec) -> Vec<String> {
        let _ = std::fs::remove_file(&self.qmp);
        let Some(account) = &self.account else {
            return Vec::new(); // The run failed before the dump; already reported.
        };
        let g = self.generation;
        let start = match arch.name {
            "x86_64" => Start::X86BootParams(account.handoff),
            _ => Start::Dtb(account.handoff),
        };
        let started = Instant::now();
        let failures = match inspect::inspect_file(&self.dump, None, start) {
            Ok(out) => compare(account, &out.report),
            Err(e) => vec![format!("{e:#}")],
        };
        let size = std::fs::metadata(&self.dump).map_or(0, |m| m.len());
        let command = format!(
            "cargo xtask inspect --memory {} --{} {:#x}",
            self.dump.display(),
            if matches!(start, Start::Dtb(_)) {
                "dtb"
            } else {
                "x86-boot-params"
            },
            account.handoff
        );
        if failures.is_empty() {
            println!(
                "    dump of generation {g}: {} MiB ELF core in {:.2} s; inspect agrees: {} runs, \
                 {} blocks, {} + {} radix nodes ({:.2} s)",
                size >> 20,
                self.taken_in.as_secs_f64(),
                account.runs.len(),
                account.blocks,
                account.tables,
                account.leaves,
                started.elapsed().as_secs_f64()
            );
            if std::env::var(KEEP_DUMPS).is_ok_and(|v| v == "1") {
                println!("    dump kept ({KEEP_DUMPS}=1): {command}");
            } else {
                let _ = std::fs::remove_file(&self.dump);
            }
            return Vec::new();
        }
        let mut out: Vec<String> = failures
            .into_iter()
            .map(|f| format!("dump of generation {g}: {f}"))
            .collect();
        out.push(format!(
            "dump of generation {g} kept for inspection: {command}"
        ));
        out
    }
}

/// Where `inspect`'s reading of the dump differs from the stub's account.
pub(crate) fn compare(stub: &StubAccount, r: &inspect::Report) -> Vec<String> {
    let mut f = Vec::new();
    for p in &r.problems {
        f.push(format!(
            "inspect found a problem: {} at {}: {}",
            p.code, p.location, p.message
        ));
    }
    match &r.handover {
        Some(h) if (h.fdt, h.scratch, h.scratch_len) == (stub.fdt, stub.scratch.0, stub.scratch.1) => {}
        Some(h) => f.push(format!(
            "handover fdt={:#x} scratch={:#x}+{:#x}, the stub paused with fdt={:#x} scratch={:#x}+{:#x}",
            h.fdt, h.scratch, h.scratch_len, stub.fdt, stub.scratch.0, stub.scratch.1
        )),
        None => f.push("inspect found no handover".to_owned()),
    }
    let Some(p) = &r.preserved else {
        f.push("inspect could not walk the preserved set".to_owned());
        return f;
    };
    let runs: Vec<(u32, u64, u64)> = p.runs.iter().map(|r| (r.order, r.addr, r.blocks)).collect();
    if runs != stub.runs {
        f.push(format!(
            "inspect reads {} runs, the stub printed {}",
            runs.len(),
            stub.runs.len()
        ));
        let show = |r: Option<&(u32, u64, u64)>| {
            r.map_or("nothing".to_owned(), |(o, a, b)| {
                format!("order {o} addr {a:#x} blocks {b}")
            })
        };
        let differ = (0..runs.len().max(stub.runs.len()))
            .filter(|&i| runs.get(i) != stub.runs.get(i))
            .take(5);
        for i in differ {
            f.push(format!(
                "run {i}: stub {}, inspect {}",
                show(stub.runs.get(i)),
                show(runs.get(i))
            ));
        }
    }
    if (p.blocks, p.pages) != (stub.blocks, stub.pages) {
        f.push(format!(
            "inspect counts {} blocks / {} pages, the stub {} / {}",
            p.blocks, p.pages, stub.blocks, stub.pages
        ));
    }
    match &p.radix {
        Some(n) if (n.tables, n.leaves) == (stub.tables, stub.leaves) => {}
        Some(n) => f.push(format!(
            "inspect counts {} radix tables + {} leaves, the stub {} + {}",
            n.tables, n.leaves, stub.tables, stub.leaves
        )),
        None => f.push("inspect has no radix node count".to_owned()),
    }
    f
}

/// A dump of Linux's memory with the next kernel loaded (`[linux] dump`):
/// kho-peer-init pauses after kexec_file_load, QEMU writes an ELF core, and
/// `inspect --find` must decode Linux's handover from it with no address
/// given: kho-v4, its subtrees, every kho_test folio with its order.
#[derive(Debug)]
pub(crate) struct LinuxDump {
    qmp: PathBuf,
    dump: PathBuf,
}

impl LinuxDump {
    pub(crate) fn new(s: &Scenario, arch: &ArchSpec, log_dir: &Path) -> LinuxDump {
        LinuxDump {
            qmp: std::env::temp_dir().join(format!(
                "kho-qmp-{}-{}-{}-linux.sock",
                std::process::id(),
                s.name,
                arch.name
            )),
            dump: log_dir.join("memory-linux.elf"),
        }
    }

    /// QEMU arguments for the QMP socket.
    pub(crate) fn qemu_args(&self) -> [String; 2] {
        [
            "-qmp".to_owned(),
            format!("unix:{},server=on,wait=off", self.qmp.display()),
        ]
    }

    /// Dump now (Linux is paused), decode, and let Linux go on. The
    /// failures (none: the dump is deleted unless KHO_KEEP_DUMPS=1).
    pub(crate) fn take(&self, console: &mut Console) -> Result<Vec<String>> {
        let started = Instant::now();
        let mut failures = Vec::new();
        match qmp_dump(&self.qmp, &self.dump) {
            Err(e) => failures.push(format!("dump-guest-memory of Linux: {e:#}")),
            Ok(()) => match inspect::find_file(&self.dump, None) {
                Err(e) => failures.push(format!("inspect --find on Linux's dump: {e:#}")),
                Ok(out) => failures.extend(check_linux_report(&out.found)),
            },
        }
        console.send("\n")?;
        let _ = std::fs::remove_file(&self.qmp);
        let command = format!(
            "cargo xtask inspect --memory {} --find",
            self.dump.display()
        );
        if failures.is_empty() {
            println!(
                "    dump of Linux after kexec_file_load: inspect --find agrees ({:.2} s)",
                started.elapsed().as_secs_f64()
            );
            if std::env::var(KEEP_DUMPS).is_ok_and(|v| v == "1") {
                println!("    dump kept ({KEEP_DUMPS}=1): {command}");
            } else {
                let _ = std::fs::remove_file(&self.dump);
            }
        } else {
            failures.push(format!("Linux's dump kept for inspection: {command}"));
        }
        Ok(failures)
    }
}

/// What `inspect --find` must say of a Linux 7.2 dump taken after
/// kexec_file_load: one decoded handover, kho-v4, no problem, the three
/// subtrees Linux writes, and test_kho's folios all listed.
pub(crate) fn check_linux_report(found: &inspect::find::Found) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(why) = found.nothing_found() {
        return vec![format!("inspect --find: {why}")];
    }
    for p in &found.problems {
        f.push(format!(
            "inspect --find: {} at {}: {}",
            p.code, p.location, p.message
        ));
    }
    let Some(best) = found.decoded.first() else {
        return f;
    };
    let r = &best.report;
    if r.abi_version.as_deref() != Some("kho-v4") {
        f.push(format!(
            "inspect: ABI version {:?}, want kho-v4",
            r.abi_version
        ));
    }
    for p in &r.problems {
        f.push(format!(
            "inspect: {} at {}: {}",
            p.code, p.location, p.message
        ));
    }
    for want in ["kho_test", "kexec-metadata", "memblock"] {
        if !r.subtrees.iter().any(|s| s.name == want) {
            f.push(format!("inspect lists no {want} subtree"));
        }
    }
    match r
        .subtrees
        .iter()
        .find(|s| s.name == "kho_test")
        .map(|s| &s.content)
    {
        Some(inspect::report::Content::KhoTest {
            nr_folios, folios, ..
        }) if folios.len() == *nr_folios as usize && !folios.is_empty() => {}
        Some(other) => f.push(format!("inspect did not list kho_test's folios: {other:?}")),
        None => {}
    }
    f
}

/// Ask QEMU over QMP to write an ELF core of guest memory to `path`.
fn qmp_dump(socket: &Path, path: &Path) -> Result<()> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to QMP at {}", socket.display()))?;
    stream.set_read_timeout(Some(DUMP_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(&mut reader)?;
    ensure!(
        greeting.get("QMP").is_some(),
        "no QMP greeting (got {greeting})"
    );
    command(
        &mut reader,
        &mut writer,
        &json!({"execute": "qmp_capabilities"}),
    )?;
    let _ = std::fs::remove_file(path);
    let protocol = format!("file:{}", path.display());
    command(
        &mut reader,
        &mut writer,
        &json!({
            "execute": "dump-guest-memory",
            "arguments": {"paging": false, "protocol": protocol}
        }),
    )?;
    ensure!(
        path.exists(),
        "QEMU reported success but {} is missing",
        path.display()
    );
    Ok(())
}

/// Send one QMP command and wait for its `return` (events are skipped).
fn command(reader: &mut impl BufRead, writer: &mut impl Write, cmd: &Value) -> Result<()> {
    writeln!(writer, "{cmd}")?;
    writer.flush()?;
    loop {
        let reply = read_message(reader)?;
        if reply.get("return").is_some() {
            return Ok(());
        }
        if let Some(err) = reply.get("error") {
            bail!("QMP {} failed: {err}", cmd["execute"]);
        }
    }
}

fn read_message(reader: &mut impl BufRead) -> Result<Value> {
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .context("reading from the QMP socket")?;
    ensure!(n > 0, "QEMU closed the QMP socket");
    serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::report::{HandoverInfo, Preserved, RadixNodes, Report, Run};

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    const PAUSED: &str = "\
KHO preserve gen=2 folios=12 bytes=1 unpreserved=1 vmalloc-pages=600 log-lines=3
KHO run gen=2 order=9 addr=0x600000 blocks=2
KHO run gen=2 order=0 addr=0x56b000 blocks=1
KHO preserved gen=2 blocks=3 pages=1025 runs=2 radix-tables=9 radix-leaves=2
KHO pause gen=2 fdt=0x56b000 scratch=0x1f000000+0x30 handoff=0x1f002000
";

    fn account() -> StubAccount {
        StubAccount {
            runs: vec![(9, 0x60_0000, 2), (0, 0x56_b000, 1)],
            blocks: 3,
            pages: 1025,
            tables: 9,
            leaves: 2,
            fdt: 0x56_b000,
            scratch: (0x1f00_0000, 0x30),
            handoff: 0x1f00_2000,
        }
    }

    #[test]
    fn the_stub_account_is_read_from_its_lines() {
        assert_eq!(parse_account(&lines(PAUSED), 2), Ok(account()));
        let e = parse_account(&lines(PAUSED), 1).unwrap_err();
        assert!(e.contains("did not print"), "{e}");
        let lying = PAUSED.replace("runs=2", "runs=3");
        let e = parse_account(&lines(&lying), 2).unwrap_err();
        assert!(e.contains("runs=3"), "{e}");
        let bad = PAUSED.replace("scratch=0x1f000000+0x30", "scratch=0x1f000000");
        assert!(parse_account(&lines(&bad), 2).is_err());
    }

    fn report() -> Report {
        let run = |order: u32, addr: u64, blocks: u64| Run {
            order,
            addr,
            size: blocks << (12 + order),
            blocks,
        };
        Report {
            handover: Some(HandoverInfo {
                fdt: 0x56_b000,
                fdt_size: 4096,
                scratch: 0x1f00_0000,
                scratch_len: 0x30,
            }),
            preserved: Some(Preserved {
                complete: true,
                runs: vec![run(9, 0x60_0000, 2), run(0, 0x56_b000, 1)],
                blocks: 3,
                pages: 1025,
                bytes: 1025 * 4096,
                radix: Some(RadixNodes {
                    root: 0x56_a000,
                    tables: 9,
                    leaves: 2,
                    bytes: 11 * 4096,
                }),
                v1_map: None,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn agreement_and_each_disagreement() {
        assert_eq!(compare(&account(), &report()), Vec::<String>::new());

        let mut stub = account();
        stub.runs[1].2 = 2;
        stub.leaves = 3;
        let f = compare(&stub, &report());
        assert!(
            f.iter().any(|m| m.contains(
                "run 1: stub order 0 addr 0x56b000 blocks 2, inspect order 0 addr 0x56b000 blocks 1"
            )),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|m| m.contains("9 radix tables + 2 leaves, the stub 9 + 3")),
            "{f:?}"
        );

        let mut r = report();
        r.problems.push(inspect::report::Problem {
            code: "radix-cycle",
            location: "radix level 3 table 0x1000, entry 2 (at 0x1010)".into(),
            message: "cycle".into(),
        });
        r.handover = None;
        let f = compare(&account(), &r);
        assert!(f[0].contains("radix-cycle at radix level 3"), "{f:?}");
        assert!(f.iter().any(|m| m == "inspect found no handover"), "{f:?}");
    }

    #[test]
    fn only_generations_that_kexec_can_pause() {
        let text = "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ngenerations = 4\nseed = 1\nfault = \"compatible@1\"\n[[expect]]\ngeneration = 2\nresult = \"failed\"\nreason = \"kho-v9\"\n";
        let mut s = super::super::scenario::parse("t", text).unwrap();
        assert!(apply_override(&mut s, Some(2)).is_ok());
        assert_eq!(s.dump_at, Some(2));
        assert!(s.compose_cmdline(None).contains("kho_stub.pause_at=2"));
        let e = format!("{:#}", apply_override(&mut s, Some(3)).unwrap_err());
        assert!(e.contains("never kexecs"), "{e}");
        let e = format!("{:#}", apply_override(&mut s, Some(1)).unwrap_err());
        assert!(e.contains("injects a fault"), "{e}");
    }
}
