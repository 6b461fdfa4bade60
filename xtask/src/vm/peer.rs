//! The Linux peer as a guest of the harness: a scenario's `[linux]` part, its waits and verdict.
//!
//! Two flows (docs/TESTING.md, "The Linux peer"):
//! - `selftest`: Linux → Linux with upstream's own selftest init, exactly as
//!   `tools/testing/selftests/kho/vmtest.sh` runs it. It proves the peer
//!   works before kho-rs is judged against it.
//! - `stub-to-linux`: kho-stub generations, then the last one boots the
//!   peer kernel through the arch's boot protocol (`kho_stub.next=linux`);
//!   Linux's test_kho verifies the stub's `kho_test` subtree and kho-rs's
//!   `kho-peer-init` lists what Linux found in debugfs `kho/in`.
//!
//! The Linux part of a console is judged line by line as it arrives
//! ([`Watch`]): every line the scenario expects must appear, no line may
//! match a failure pattern, and the run must end as the flow ends it.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde::Deserialize;

use super::check::{Event, RunEnd};

/// Default seconds the Linux part may take (two kernels boot under TCG).
const DEFAULT_TIMEOUT: u64 = 180;

/// Lines that mean Linux found a problem, wherever they appear. Each is
/// (a text the line contains, a second text it must also contain or "").
const FAILURE_PATTERNS: &[(&str, &str)] = &[
    ("KHO restore failed", ""),
    ("KHO: ", "fail"),
    ("KHO: ", "Fail"),
    ("KHO: ", "invalid"),
    ("KHO: ", "incompatible"),
    ("KHO: ", "broken"),
    ("KHO: ", "disabling"),
    ("KHO: ", "not supported"),
    ("KHO: ", "too small"),
    ("KHO reserve-mem", "wrong"),
    ("from KHO: ", ""),
    ("is incompatible with", ""),
    ("has no child", ""),
    ("test_kho: ", "fail"),
    ("WARNING:", ""),
    ("BUG:", ""),
    ("Oops", ""),
    ("Unable to handle kernel", ""),
    ("general protection fault", ""),
    ("Call Trace:", ""),
    ("KHO-PEER ", "error="),
];

/// The panic that ends a kernel with no init (the selftest's second kernel).
const PANIC: &str = "Kernel panic - not syncing";
/// kho-peer-init's line when it waits for the harness's dump.
pub(crate) const PEER_PAUSE: &str = "KHO-PEER pause";
/// What Linux prints just before it jumps to the kexec'd kernel.
const KEXEC_START: &str = "kexec_core: Starting new kernel";
/// kho-peer-init's last line before it reboots (QEMU exits under -no-reboot).
const PEER_DONE: &str = "KHO-PEER done";
/// kho-peer-init's report of one incoming subtree.
const PEER_SUBTREE: &str = "KHO-PEER in subtree name=";

/// How a scenario uses the peer.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Flow {
    /// Linux → Linux with upstream's selftest init.
    Selftest,
    /// kho-stub generations, then Linux.
    StubToLinux,
    /// Linux first (generation 0), which kexec_file_loads the stub; the
    /// stub revives Linux's handover and runs the other generations.
    LinuxToStub,
    /// Linux, then stub generations, then Linux again: the stub carries
    /// Linux's data through and the last generation boots the peer, whose
    /// test_kho restores the first Linux's data.
    LinuxRoundtrip,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flow::Selftest => "selftest",
            Flow::StubToLinux => "stub-to-linux",
            Flow::LinuxToStub => "linux-to-stub",
            Flow::LinuxRoundtrip => "linux-roundtrip",
        })
    }
}

/// `[linux]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinuxFile {
    flow: Flow,
    #[serde(default)]
    cmdline: String,
    expect: Vec<String>,
    subtrees: Option<Vec<String>>,
    timeout: Option<u64>,
    #[serde(default)]
    dump: bool,
}

/// A validated `[linux]` part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinuxPhase {
    pub(crate) flow: Flow,
    /// Linux parameters besides the console, `kho=on` and `panic=-1`.
    pub(crate) cmdline: String,
    /// Text Linux must print, each on some line; `{release}` is the peer's
    /// kernel release.
    pub(crate) expect: Vec<String>,
    /// The `kho/in` subtrees kho-peer-init must list, exactly (stub-to-linux).
    pub(crate) subtrees: Option<Vec<String>>,
    pub(crate) timeout: Duration,
    /// Dump the first Linux's memory after its kexec_file_load and check
    /// `inspect --find` on it (`linux-to-stub`, `linux-roundtrip`).
    pub(crate) dump: bool,
}

impl LinuxPhase {
    /// Validate `[linux]`.
    pub(crate) fn from_file(f: LinuxFile) -> Result<LinuxPhase> {
        ensure!(
            !f.cmdline.contains(['"', '\n', '\r']),
            "[linux] cmdline must not contain quotes or line breaks"
        );
        for token in f.cmdline.split_whitespace() {
            ensure!(
                !(token.starts_with("console=")
                    || token.starts_with("kho=")
                    || token.starts_with("panic=")),
                "[linux] cmdline sets `{token}`, which the harness sets itself"
            );
        }
        ensure!(
            !f.expect.is_empty(),
            "[linux] expect is empty: name at least one line Linux must print"
        );
        for e in &f.expect {
            ensure!(!e.trim().is_empty(), "[linux] expect has an empty entry");
        }
        match (&f.subtrees, f.flow) {
            (Some(_), Flow::LinuxToStub) => {
                ensure!(
                    false,
                    "[linux] subtrees needs flow = \"stub-to-linux\" (in linux-to-stub Linux runs first)"
                )
            }
            (Some(_), Flow::Selftest) => {
                ensure!(
                    false,
                    "[linux] subtrees needs flow = \"stub-to-linux\" (the selftest init lists nothing)"
                )
            }
            (None, Flow::StubToLinux | Flow::LinuxRoundtrip) => ensure!(
                false,
                "[linux] flow = \"{}\" needs subtrees: the kho/in subtrees Linux must find",
                f.flow
            ),
            _ => {}
        }
        ensure!(
            !f.dump || matches!(f.flow, Flow::LinuxToStub | Flow::LinuxRoundtrip),
            "[linux] dump needs a flow where Linux kexecs the stub (linux-to-stub, linux-roundtrip)"
        );
        let timeout = f.timeout.unwrap_or(DEFAULT_TIMEOUT);
        ensure!(timeout > 0, "[linux] timeout must be at least 1 second");
        Ok(LinuxPhase {
            flow: f.flow,
            cmdline: f.cmdline,
            expect: f.expect,
            subtrees: f.subtrees,
            timeout: Duration::from_secs(timeout),
            dump: f.dump,
        })
    }

    /// Linux's whole command line on a machine whose console is `console`.
    pub(crate) fn kernel_cmdline(&self, console: &str) -> String {
        let mut parts = vec![
            format!("console={console}"),
            "kho=on".to_owned(),
            "panic=-1".to_owned(),
        ];
        parts.extend(self.cmdline.split_whitespace().map(str::to_owned));
        parts.join(" ")
    }

    /// The expected lines with `{release}` filled in.
    pub(crate) fn required(&self, release: &str) -> Vec<String> {
        self.expect
            .iter()
            .map(|e| e.replace("{release}", release))
            .collect()
    }
}

/// Follows the Linux part of a console.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    flow: Flow,
    required: Vec<String>,
    seen: Vec<bool>,
}

impl Watch {
    /// The first Linux of a `linux-roundtrip`: it only has to reach its
    /// kexec into the stub without a failure line (what the last Linux
    /// prints is the scenario's `expect`).
    pub(crate) fn until_kexec() -> Watch {
        Watch {
            flow: Flow::LinuxToStub,
            required: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub(crate) fn new(phase: &LinuxPhase, release: &str) -> Watch {
        let required = phase.required(release);
        Watch {
            flow: phase.flow,
            seen: vec![false; required.len()],
            required,
        }
    }

    /// The lines still awaited, for messages.
    pub(crate) fn missing(&self) -> Vec<&str> {
        self.required
            .iter()
            .zip(&self.seen)
            .filter(|(_, seen)| !**seen)
            .map(|(r, _)| r.as_str())
            .collect()
    }

    /// What the wait is for, for messages.
    pub(crate) fn describe(&self) -> String {
        let missing = self.missing();
        if missing.is_empty() {
            format!("the end of the {} run", self.flow)
        } else {
            format!("Linux to print {}", quote_list(&missing))
        }
    }

    /// One console line: `Success` at the flow's end once every expected
    /// line was seen, `Failure` on a failure pattern or an early end.
    pub(crate) fn classify(&mut self, text: &str) -> Option<Event> {
        for (r, seen) in self.required.iter().zip(self.seen.iter_mut()) {
            if text.contains(r.as_str()) {
                *seen = true;
            }
        }
        if let Some(why) = failure(text) {
            return Some(Event::Failure(why));
        }
        let end = match self.flow {
            Flow::Selftest => text.contains(PANIC),
            Flow::StubToLinux | Flow::LinuxRoundtrip => {
                text.contains(PEER_DONE) || text.contains(PANIC)
            }
            // Linux hands over to the stub: its part ends at the jump.
            Flow::LinuxToStub => text.contains(KEXEC_START) || text.contains(PANIC),
        };
        if !end {
            return None;
        }
        let missing = self.missing();
        if missing.is_empty() {
            Some(Event::Success)
        } else {
            Some(Event::Failure(format!(
                "Linux ended (`{}`) without printing {}",
                text.trim(),
                quote_list(&missing)
            )))
        }
    }
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a Linux console line is a failure, if it is one.
fn failure(text: &str) -> Option<String> {
    FAILURE_PATTERNS
        .iter()
        .find(|(a, b)| text.contains(a) && (b.is_empty() || text.contains(b)))
        .map(|_| format!("Linux reported a problem: {}", text.trim()))
}

/// Payload entry kinds (docs/HANDOVER.md, "The payload").
const PAYLOAD_KERNEL: u32 = 1;
const PAYLOAD_INITRAMFS: u32 = 2;
const PAYLOAD_CMDLINE: u32 = 3;
/// Each entry's data starts on a page boundary.
const PAYLOAD_ALIGN: usize = 4096;

/// The stub's initrd for `stub-to-linux`: "kho-stub payload v1" holding the
/// next kernel, its initramfs and its command line. Layout (little-endian):
/// `b"KHOPAYLD"`, version u32 = 1, count u32, then `count` entries of
/// {kind u32, reserved u32, offset u64, size u64}; data page-aligned.
pub(crate) fn payload(kernel: &[u8], initramfs: Option<&[u8]>, cmdline: &str) -> Vec<u8> {
    let mut parts: Vec<(u32, &[u8])> = vec![(PAYLOAD_KERNEL, kernel)];
    if let Some(i) = initramfs {
        parts.push((PAYLOAD_INITRAMFS, i));
    }
    parts.push((PAYLOAD_CMDLINE, cmdline.as_bytes()));
    let header = 16 + 24 * parts.len();
    let mut out = Vec::new();
    out.extend_from_slice(b"KHOPAYLD");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    let mut offset = header.next_multiple_of(PAYLOAD_ALIGN);
    for (kind, data) in &parts {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        offset = (offset + data.len()).next_multiple_of(PAYLOAD_ALIGN);
    }
    for (_, data) in &parts {
        out.resize(out.len().next_multiple_of(PAYLOAD_ALIGN), 0);
        out.extend_from_slice(data);
    }
    out
}

/// kho-peer-init's report of the root FDT.
const PEER_FDT: &str = "KHO-PEER in fdt bytes=";

/// The subtrees kho-peer-init listed, in its order.
pub(crate) fn listed_subtrees(lines: &[String]) -> Vec<String> {
    listed(lines).into_iter().map(|(name, _)| name).collect()
}

/// (name, bytes) of every subtree kho-peer-init listed.
fn listed(lines: &[String]) -> Vec<(String, Option<u64>)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(PEER_SUBTREE).map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let name = words.next()?.to_owned();
            let bytes = words
                .find_map(|w| w.strip_prefix("bytes="))
                .and_then(|b| b.parse().ok());
            Some((name, bytes))
        })
        .collect()
}

/// What the stub's last generation handed to Linux: its root FDT's size
/// and every subtree's `blob-size`, to compare with what Linux found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) fdt_bytes: u64,
    pub(crate) subtrees: Vec<(String, u64)>,
}

impl Sent {
    /// From the root FDT the stub printed as its last `fdt-out`.
    pub(crate) fn from_fdt(bytes: &[u8]) -> Result<Sent, String> {
        let fdt = kho_fdt::KhoFdt::parse(bytes).map_err(|e| e.to_string())?;
        let subtrees = fdt
            .subtrees()
            .map(|s| (s.name().to_owned(), s.size().unwrap_or(0)))
            .collect();
        Ok(Sent {
            fdt_bytes: bytes.len() as u64,
            subtrees,
        })
    }
}

/// Compare what Linux found in `kho/in` with what the stub sent.
fn compare_sent(sent: &Sent, lines: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    let fdt = lines.iter().find_map(|l| {
        l.split_once(PEER_FDT)
            .map(|(_, n)| n.trim().parse::<u64>().ok())
    });
    match fdt {
        Some(Some(n)) if n == sent.fdt_bytes => {}
        Some(got) => failures.push(format!(
            "Linux's kho/in/fdt has {} bytes, the stub handed over {}",
            got.map_or("?".to_owned(), |n| n.to_string()),
            sent.fdt_bytes
        )),
        None => failures.push("kho-peer-init did not report kho/in/fdt".to_owned()),
    }
    for (name, bytes) in listed(lines) {
        match sent.subtrees.iter().find(|(n, _)| *n == name) {
            Some((_, want)) if bytes == Some(*want) => {}
            Some((_, want)) => failures.push(format!(
                "Linux's kho/in subtree {name} has {} bytes, the stub's blob-size is {want}",
                bytes.map_or("?".to_owned(), |n| n.to_string())
            )),
            None => failures.push(format!("Linux lists a subtree {name} the stub never sent")),
        }
    }
    failures
}

/// Judge the first Linux of a `linux-roundtrip` (`lines` up to the stub's
/// first line): no failure line, and it reached its kexec.
pub(crate) fn check_handoff(lines: &[String]) -> Vec<String> {
    let mut watch = Watch::until_kexec();
    let mut failures = Vec::new();
    for line in lines {
        match watch.classify(line) {
            Some(Event::Failure(why)) => failures.push(why),
            Some(Event::Success) => return failures,
            None => {}
        }
    }
    failures.push(format!("the first Linux never printed `{KEXEC_START}`"));
    failures
}

/// Judge the Linux part of a finished run: `lines` from the first line
/// Linux printed, `end` how QEMU ended.
pub(crate) fn check(
    phase: &LinuxPhase,
    release: &str,
    lines: &[String],
    end: &RunEnd,
    sent: Option<&Sent>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut watch = Watch::new(phase, release);
    let mut finished = false;
    // Lines after the end (the panic's own backtrace, the reboot) are
    // not judged.
    for line in lines {
        match watch.classify(line) {
            Some(Event::Failure(why)) => failures.push(why),
            Some(Event::Success) => {
                finished = true;
                break;
            }
            None => {}
        }
    }
    let missing = watch.missing();
    if !missing.is_empty() {
        failures.push(format!("Linux never printed {}", quote_list(&missing)));
    } else if !finished {
        failures.push(format!("the {} run did not reach its end", phase.flow));
    }
    if let Some(want) = &phase.subtrees {
        let mut got = listed_subtrees(lines);
        got.sort();
        let mut want = want.clone();
        want.sort();
        if got != want {
            failures.push(format!(
                "Linux's kho/in lists subtrees [{}], the scenario expects [{}]",
                got.join(", "),
                want.join(", ")
            ));
        }
    }
    if let Some(sent) = sent {
        failures.extend(compare_sent(sent, lines));
    }
    // kho-peer-init reboots, and Linux reboots after a panic (panic=-1); with
    // -no-reboot QEMU exits 0 either way.
    match end {
        // The stub, not Linux, ends a linux-to-stub run.
        _ if phase.flow == Flow::LinuxToStub => {}
        RunEnd::Exited(0) => {}
        other => failures.push(format!(
            "QEMU {other} (Linux's reboot under -no-reboot exits 0)"
        )),
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(flow: &str, subtrees: bool) -> LinuxPhase {
        let text = format!(
            "flow = \"{flow}\"\ncmdline = \"reserve_mem=64K:4K:kho_log\"\nexpect = [\"KHO restore succeeded\", \"exec from: {{release}} (count 1)\"]\n{}",
            if subtrees {
                "subtrees = [\"kho_test\", \"memblock\"]\n"
            } else {
                ""
            }
        );
        LinuxPhase::from_file(toml::from_str(&text).unwrap()).unwrap()
    }

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selftest_passes_on_the_expected_lines_then_the_panic() {
        let p = phase("selftest", false);
        assert_eq!(
            p.kernel_cmdline("ttyS0"),
            "console=ttyS0 kho=on panic=-1 reserve_mem=64K:4K:kho_log"
        );
        let l = lines(&[
            "[    0.1] KHO: found kexec handover data.",
            "[    0.2] KHO: exec from: 7.2.13 (count 1)",
            "[    1.0] test_kho: KHO restore succeeded",
            "[    1.1] Kernel panic - not syncing: No working init found.",
            "Call Trace:",
        ]);
        assert_eq!(
            check(&p, "7.2.13", &l, &RunEnd::Exited(0), None),
            Vec::<String>::new()
        );
        // The release is filled in: another release's line does not count.
        let f = check(&p, "7.3.1", &l, &RunEnd::Exited(0), None);
        assert!(f.iter().any(|f| f.contains("exec from: 7.3.1")), "{f:?}");
        // QEMU must end by itself with 0.
        let f = check(&p, "7.2.13", &l, &RunEnd::Exited(1), None);
        assert!(
            f.iter().any(|f| f.contains("exited with status 1")),
            "{f:?}"
        );
    }

    #[test]
    fn an_early_panic_or_a_failure_line_fails() {
        let p = phase("selftest", false);
        let mut w = Watch::new(&p, "7.2.13");
        assert!(matches!(
            w.classify("Kernel panic - not syncing: Attempted to kill init!"),
            Some(Event::Failure(m)) if m.contains("without printing")
        ));
        let mut w = Watch::new(&p, "7.2.13");
        for bad in [
            "test_kho: KHO restore failed",
            "KHO: setup: handover FDT (0x1000) is incompatible with 'kho-v4': -22",
            "KHO: disabling KHO revival",
            "KHO reserve-mem 'kho_log' has wrong size (0x1 != 0x2)",
            "WARNING: CPU: 0 PID: 1 at kernel/liveupdate/kexec_handover.c:869",
            "KHO-PEER in error=no sub_fdts directory",
        ] {
            assert!(matches!(w.classify(bad), Some(Event::Failure(_))), "{bad}");
        }
        assert_eq!(w.classify("KHO: found kexec handover data."), None);
        assert_eq!(
            w.classify("Revived memory reservation 'kho_log' from KHO"),
            None
        );
    }

    #[test]
    fn stub_to_linux_needs_the_subtrees() {
        let p = phase("stub-to-linux", true);
        let ok = lines(&[
            "test_kho: KHO restore succeeded",
            "KHO: exec from: 7.2.13 (count 1)",
            "KHO-PEER start",
            "KHO-PEER in fdt bytes=512",
            "KHO-PEER in subtree name=memblock bytes=200",
            "KHO-PEER in subtree name=kho_test bytes=300",
            "KHO-PEER done",
        ]);
        assert_eq!(
            check(&p, "7.2.13", &ok, &RunEnd::Exited(0), None),
            Vec::<String>::new()
        );
        assert_eq!(listed_subtrees(&ok), ["memblock", "kho_test"]);
        let mut short = ok.clone();
        short.remove(4);
        let f = check(&p, "7.2.13", &short, &RunEnd::Exited(0), None);
        assert!(
            f.iter().any(|f| f.contains("lists subtrees [kho_test]")),
            "{f:?}"
        );
    }

    #[test]
    fn linux_must_find_what_the_stub_sent() {
        let p = phase("stub-to-linux", true);
        let sent = Sent {
            fdt_bytes: 413,
            subtrees: vec![("kho_test".into(), 232), ("memblock".into(), 202)],
        };
        let mut l = lines(&[
            "test_kho: KHO restore succeeded",
            "KHO: exec from: 7.2.13 (count 1)",
            "KHO-PEER in fdt bytes=413",
            "KHO-PEER in subtree name=kho_test bytes=232",
            "KHO-PEER in subtree name=memblock bytes=202",
            "KHO-PEER done",
        ]);
        assert_eq!(
            check(&p, "7.2.13", &l, &RunEnd::Exited(0), Some(&sent)),
            Vec::<String>::new()
        );
        l[2] = "KHO-PEER in fdt bytes=0".into();
        l[4] = "KHO-PEER in subtree name=memblock bytes=200".into();
        let f = check(&p, "7.2.13", &l, &RunEnd::Exited(0), Some(&sent));
        assert!(
            f.iter()
                .any(|f| f.contains("kho/in/fdt has 0 bytes, the stub handed over 413")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.contains("memblock has 200 bytes, the stub's blob-size is 202")),
            "{f:?}"
        );
    }

    #[test]
    fn a_roundtrip_s_first_linux_only_has_to_reach_its_kexec() {
        let ok = lines(&[
            "KHO-PEER start",
            "KHO-PEER kexec loaded",
            "kexec_core: Starting new kernel",
            "KHO boot gen=1",
        ]);
        assert_eq!(check_handoff(&ok), Vec::<String>::new());
        let bad = lines(&[
            "test_kho: KHO restore failed",
            "kexec_core: Starting new kernel",
        ]);
        assert!(check_handoff(&bad)[0].contains("KHO restore failed"));
        let f = check_handoff(&lines(&["KHO-PEER kexec error=kexec_file_load failed"]));
        assert!(
            f.iter()
                .any(|f| f.contains("never printed `kexec_core: Starting new kernel`")),
            "{f:?}"
        );
        // The roundtrip's last Linux must list the subtrees, like stub-to-linux.
        let p = phase("linux-roundtrip", true);
        assert_eq!(p.flow, Flow::LinuxRoundtrip);
        let parse = |t: &str| {
            toml::from_str::<LinuxFile>(t)
                .map_err(anyhow::Error::from)
                .and_then(LinuxPhase::from_file)
        };
        assert!(parse("flow = \"linux-roundtrip\"\nexpect = [\"x\"]").is_err());
        assert!(parse("flow = \"linux-to-stub\"\nexpect = [\"x\"]\nsubtrees = [\"a\"]").is_err());
    }

    #[test]
    fn payload_layout() {
        let p = payload(&[1; 5000], Some(&[2; 10]), "console=ttyS0");
        assert_eq!(&p[..8], b"KHOPAYLD");
        assert_eq!(u32::from_le_bytes(p[8..12].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(p[12..16].try_into().unwrap()), 3);
        let entry = |i: usize| {
            let e = &p[16 + 24 * i..16 + 24 * (i + 1)];
            (
                u32::from_le_bytes(e[0..4].try_into().unwrap()),
                u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize,
                u64::from_le_bytes(e[16..24].try_into().unwrap()) as usize,
            )
        };
        assert_eq!(entry(0), (1, 4096, 5000));
        assert_eq!(entry(1), (2, 12288, 10));
        assert_eq!(entry(2), (3, 16384, 13));
        assert_eq!(&p[16384..], b"console=ttyS0");
        assert!(p[4096..9096].iter().all(|&b| b == 1));
        assert!(p[12288..12298].iter().all(|&b| b == 2));
    }

    #[test]
    fn bad_linux_parts_are_refused() {
        let parse = |t: &str| {
            toml::from_str::<LinuxFile>(t)
                .map_err(anyhow::Error::from)
                .and_then(LinuxPhase::from_file)
        };
        assert!(parse("flow = \"selftest\"\nexpect = []").is_err());
        assert!(parse("flow = \"other\"\nexpect = [\"x\"]").is_err());
        assert!(parse("flow = \"selftest\"\nexpect = [\"x\"]\ncmdline = \"panic=0\"").is_err());
        assert!(parse("flow = \"stub-to-linux\"\nexpect = [\"x\"]").is_err());
        assert!(parse("flow = \"selftest\"\nexpect = [\"x\"]\nsubtrees = []").is_err());
        assert!(parse("flow = \"selftest\"\nexpect = [\"x\"]\nextra = 1").is_err());
    }
}
