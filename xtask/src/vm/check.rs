//! The transcript checker: serial lines + how QEMU ended → pass/fail, pure and QEMU-free.
//!
//! [`check`] judges a whole run against a [`Plan`] (docs/HANDOVER.md is the
//! contract). [`Wait`] classifies lines while the run is still going, so the
//! driver can stop at the first failure instead of waiting for a timeout.

use std::fmt;
use std::time::Duration;

use super::arch::ArchSpec;
use super::invariants;
use super::protocol::{self, Line, ParseError, Verb};
use super::scenario::{Expect, Leaked, Scenario};

/// What a run must show.
#[derive(Clone, Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) arch: &'static ArchSpec,
    pub(crate) generations: u32,
    /// One entry per generation.
    pub(crate) expect: &'a [Expect],
    /// The generation whose outgoing handover is deliberately corrupted.
    pub(crate) fault: Option<u32>,
    /// The command line passed to generation 0 (`-append`).
    pub(crate) cmdline: &'a str,
    /// The scenario (memory, NUMA, knobs and scratch expectations for
    /// [`invariants`]).
    pub(crate) scenario: &'a Scenario,
    /// The stub image's loaded size (the input of `kho_scratch=N%` sizing);
    /// `None`: percentage sizes are not checked.
    pub(crate) image_bytes: Option<u64>,
    /// The first generation the stub runs: 0, or 1 when Linux is
    /// generation 0 (`linux-to-stub`) and the stub revives its handover.
    pub(crate) first: u32,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(
        scenario: &'a Scenario,
        arch: &'static ArchSpec,
        cmdline: &'a str,
    ) -> Plan<'a> {
        Plan {
            arch,
            generations: scenario.generations,
            expect: &scenario.expect,
            fault: scenario.fault.as_ref().map(|f| f.generation),
            cmdline,
            scenario,
            image_bytes: None,
            first: u32::from(scenario.linux_first()),
        }
    }

    /// The same plan, knowing the stub image's loaded size.
    pub(crate) fn with_image_bytes(mut self, bytes: Option<u64>) -> Plan<'a> {
        self.image_bytes = bytes;
        self
    }

    pub(crate) fn expect(&self, generation: u32) -> &Expect {
        self.expect
            .get(generation as usize)
            .unwrap_or(&Expect::Verified)
    }
}

/// How the QEMU process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// QEMU exited on its own with this status.
    Exited(i32),
    /// QEMU died from a signal the harness did not send.
    Signaled(String),
    /// The harness killed QEMU: a wait ran out of time.
    TimedOut {
        waiting_for: String,
        after: Duration,
    },
    /// The harness killed QEMU for another reason (a failure line, an I/O error).
    Killed { reason: String },
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEnd::Exited(code) => write!(f, "exited with status {code}"),
            RunEnd::Signaled(sig) => write!(f, "killed by {sig}"),
            RunEnd::TimedOut { waiting_for, after } => {
                write!(
                    f,
                    "timed out after {:.1} s waiting for {waiting_for}; QEMU killed",
                    after.as_secs_f64()
                )
            }
            RunEnd::Killed { reason } => write!(f, "stopped by the harness: {reason}"),
        }
    }
}

/// A root FDT the stub printed (`fdt-in` / `fdt-out`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fdt {
    pub(crate) bytes: Vec<u8>,
    /// Why [`kho_fdt::KhoFdt::parse`] rejected it, if it did.
    pub(crate) parse_error: Option<String>,
}

impl Fdt {
    fn decode(line: &Line) -> Result<Fdt, String> {
        let hex = line.get("hex").ok_or("no hex= field")?;
        let bytes = protocol::decode_hex(hex).map_err(|e| format!("hex=: {e}"))?;
        match line.num("bytes") {
            Some(n) if n == bytes.len() as u64 => {}
            Some(n) => return Err(format!("bytes={n} but hex= holds {} bytes", bytes.len())),
            None => return Err("no numeric bytes= field".to_owned()),
        }
        let parse_error = kho_fdt::KhoFdt::parse(&bytes).err().map(|e| e.to_string());
        Ok(Fdt { bytes, parse_error })
    }

    /// The canonical rendering (`kho_fdt::render`); for a blob that is not a
    /// valid KHO root, the plain-FDT rendering under a comment saying why.
    pub(crate) fn dts(&self) -> String {
        match kho_fdt::render(&self.bytes) {
            Ok(text) => text,
            Err(e) => match kho_fdt::render_blob(&self.bytes) {
                Ok(text) => format!("// not a valid KHO root FDT: {e}\n{text}"),
                Err(e) => format!("// not a valid FDT: {e}\n"),
            },
        }
    }
}

/// What one generation reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GenReport {
    pub(crate) generation: u32,
    /// `revival result=` (`ok`, `none`, `failed`).
    pub(crate) revival: Option<String>,
    /// `revival reason=`.
    pub(crate) reason: Option<String>,
    /// `verify bytes=` of a `result=ok` verify.
    pub(crate) verified_bytes: Option<u64>,
    pub(crate) fdt_in: Option<Fdt>,
    pub(crate) fdt_out: Option<Fdt>,
}

/// The verdict on a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    /// Every generation that printed anything, in order.
    pub(crate) generations: Vec<GenReport>,
    /// Whether `KHO done … result=ok` was seen for the last generation.
    pub(crate) done: bool,
    /// Sum of `verify … bytes=` over every generation.
    pub(crate) verified_bytes: u64,
    /// Every problem found; empty means the run passed.
    pub(crate) failures: Vec<String>,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a single console line means the run failed, whatever it was waiting
/// for: `KHO fail`, a panic, a QEMU error, or a `result=failed` that the plan
/// does not expect.
fn fatal_line(
    plan: &Plan<'_>,
    text: &str,
    parsed: Option<&Result<Line, ParseError>>,
) -> Option<String> {
    match parsed {
        Some(Ok(line)) => {
            let g = line.generation();
            let at = g.map(|g| format!("generation {g}: ")).unwrap_or_default();
            match &line.verb {
                // The refusal a `refuse =` scenario expects ends its last
                // generation: news only if its reason is not the one.
                Verb::Fail if g.is_some_and(|g| plan.ending(g) == Ending::Refused) => {
                    let reason = line.get("reason").unwrap_or("(no reason)");
                    return match &plan.scenario.refuse {
                        Some(want) if !want.matches(plan.arch.name, reason) => Some(format!(
                            "{at}refused to hand over as expected, but the reason {reason:?} does not match {}",
                            want.describe(plan.arch.name)
                        )),
                        _ => None,
                    };
                }
                Verb::Fail => {
                    return Some(format!(
                        "{at}KHO fail: {}",
                        line.get("reason").unwrap_or("(no reason)")
                    ));
                }
                Verb::Other(w) if w.eq_ignore_ascii_case("panic") => {
                    return Some(format!("{at}stub panic: {text}"));
                }
                // A restart always ends in a failed revival (restart.rs):
                // news only where the scenario does not expect one.
                Verb::Other(w)
                    if w == "restart"
                        && !g.is_some_and(|g| matches!(plan.expect(g), Expect::Failed { .. })) =>
                {
                    return Some(format!(
                        "{at}unexpected restart: {}",
                        line.get("reason").unwrap_or("(no reason)")
                    ));
                }
                _ => {}
            }
            if line.get("result") == Some("partial")
                && !g.is_some_and(|g| matches!(plan.expect(g), Expect::Partial { .. }))
            {
                let reason = line.get("reason").unwrap_or("(no reason)");
                return Some(format!(
                    "{at}unexpected `{} result=partial`: {reason}",
                    line.verb
                ));
            }
            if line.get("result") == Some("failed") {
                let expected = line.verb == Verb::Revival
                    && g.is_some_and(|g| matches!(plan.expect(g), Expect::Failed { .. }));
                if !expected {
                    let reason = line.get("reason").unwrap_or("(no reason)");
                    return Some(format!(
                        "{at}unexpected `{} result=failed`: {reason}",
                        line.verb
                    ));
                }
            }
            None
        }
        Some(Err(_)) => None,
        None if text.contains("PANIC") || text.contains("panicked at") => {
            Some(format!("panic: {text}"))
        }
        None if text.starts_with("qemu-system-") && !text.contains(": warning:") => {
            Some(format!("QEMU error: {text}"))
        }
        None => None,
    }
}

/// How a generation ends: it kexecs the next generation, it is the last
/// and finishes (`KHO done`), or it is the last and kexecs the Linux peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Next,
    Done,
    Linux,
    /// The last generation refuses to hand over (`refuse =`): `KHO fail`.
    Refused,
}

impl Plan<'_> {
    fn ending(&self, g: u32) -> Ending {
        if g + 1 < self.generations {
            Ending::Next
        } else if self.scenario.refuse.is_some() {
            Ending::Refused
        } else if self.scenario.hands_to_linux() {
            Ending::Linux
        } else {
            Ending::Done
        }
    }
}

/// The verbs a generation prints, in protocol order, with whether each is
/// required under `expect` for a generation that ends as `ending` says.
fn required(expect: &Expect, ending: Ending, verb: &Verb) -> bool {
    match verb {
        Verb::Boot | Verb::Revival => true,
        Verb::FdtIn | Verb::Verify => expect.revives(),
        Verb::Preserve | Verb::FdtOut | Verb::Kexec => {
            matches!(ending, Ending::Next | Ending::Linux)
        }
        Verb::Done => ending == Ending::Done,
        _ => false,
    }
}

const ORDER: [Verb; 8] = [
    Verb::Boot,
    Verb::Revival,
    Verb::FdtIn,
    Verb::Verify,
    Verb::Preserve,
    Verb::FdtOut,
    Verb::Kexec,
    Verb::Done,
];

/// Judge a finished run: `lines` is the whole serial transcript (with or
/// without `\r`), `end` how QEMU ended.
pub(crate) fn check(plan: &Plan<'_>, lines: &[String], end: &RunEnd) -> Report {
    let mut report = Report::default();
    let fail = |report: &mut Report, msg: String| report.failures.push(msg);

    // Pass 1: every line on its own.
    let mut protocol_lines: Vec<(usize, Line)> = Vec::new();
    let mut last_gen = 0u32;
    let mut order_broken = false;
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let text = protocol::clean(raw);
        let parsed = protocol::parse(text);
        if let Some(msg) = fatal_line(plan, text, parsed.as_ref()) {
            fail(&mut report, format!("line {n}: {msg}"));
        }
        match parsed {
            None => {}
            Some(Err(e)) => fail(
                &mut report,
                format!("line {n}: malformed protocol line ({e}): {text}"),
            ),
            Some(Ok(line)) => match line.generation() {
                None => fail(
                    &mut report,
                    format!("line {n}: `KHO {}` has no numeric gen= field", line.verb),
                ),
                Some(g) if g >= plan.generations => fail(
                    &mut report,
                    format!(
                        "line {n}: generation {g} is past the last generation {}",
                        plan.generations - 1
                    ),
                ),
                Some(g) => {
                    if g < last_gen && !order_broken {
                        order_broken = true;
                        fail(
                            &mut report,
                            format!(
                                "line {n}: generation {g} output after generation {last_gen}'s"
                            ),
                        );
                    }
                    last_gen = last_gen.max(g);
                    if line.verb == Verb::Other("restart".to_owned()) {
                        // The generation starts over (restart.rs): what it
                        // printed before belongs to the abandoned attempt.
                        protocol_lines.retain(|(_, l)| l.generation() != Some(g));
                    }
                    protocol_lines.push((n, line));
                }
            },
        }
    }

    // Pass 2: each generation's lines against its expectation.
    let mut prev_out: Option<Fdt> = None;
    for g in plan.first..plan.generations {
        let mine: Vec<&(usize, Line)> = protocol_lines
            .iter()
            .filter(|(_, l)| l.generation() == Some(g))
            .collect();
        if mine.is_empty() {
            let after = if g == 0 {
                "no generation printed a protocol line".to_owned()
            } else {
                format!("the transcript has nothing after generation {}", g - 1)
            };
            fail(&mut report, format!("generation {g}: missing ({after})"));
            break;
        }
        let expect = plan.expect(g);
        let last = g + 1 == plan.generations;
        let ending = plan.ending(g);
        // After `KHO fail` (already reported) the missing lines are no news.
        let failed = mine.iter().any(|(_, l)| l.verb == Verb::Fail);
        let mut this = GenReport {
            generation: g,
            ..GenReport::default()
        };
        let find = |verb: &Verb| {
            mine.iter()
                .find(|(_, l)| &l.verb == verb)
                .map(|(n, l)| (*n, l))
        };

        // Presence, uniqueness and order of the fixed lines.
        let mut prev_pos: Option<(usize, &Verb)> = None;
        // Required lines that are missing, each with whether a later fixed line is present.
        let mut missing: Vec<(&Verb, bool)> = Vec::new();
        for verb in &ORDER {
            let count = mine.iter().filter(|(_, l)| &l.verb == verb).count();
            if count > 1 {
                fail(
                    &mut report,
                    format!("generation {g}: `KHO {verb}` appears {count} times"),
                );
            }
            match find(verb) {
                None if required(expect, ending, verb) && !failed => missing.push((verb, false)),
                None => {}
                Some((n, _))
                    if !required(expect, ending, verb)
                        && matches!(verb, Verb::Kexec | Verb::Done) =>
                {
                    let why = match ending {
                        Ending::Done => "the last generation must finish with `KHO done`",
                        Ending::Linux => "the last generation must kexec the Linux peer",
                        Ending::Next => "only the last generation prints `KHO done`",
                        Ending::Refused => {
                            "the last generation must refuse to hand over (`KHO fail`)"
                        }
                    };
                    fail(
                        &mut report,
                        format!("line {n}: generation {g}: unexpected `KHO {verb}` ({why})"),
                    );
                }
                Some((n, _)) => {
                    missing.iter_mut().for_each(|(_, later)| *later = true);
                    if let Some((pn, pv)) = prev_pos
                        && n < pn
                    {
                        fail(
                            &mut report,
                            format!(
                                "line {n}: generation {g}: `KHO {verb}` before `KHO {pv}` (line {pn})"
                            ),
                        );
                    }
                    prev_pos = Some((n, verb));
                }
            }
        }

        let truncated =
            g == last_gen && !missing.is_empty() && missing.iter().all(|(_, later)| !later);
        if truncated {
            // The transcript stops inside this generation: one failure, not one per line.
            let (n, l) = mine
                .last()
                .map(|(n, l)| (*n, l.verb.as_str()))
                .unwrap_or((0, "?"));
            let names: Vec<&str> = missing.iter().map(|(v, _)| v.as_str()).collect();
            fail(
                &mut report,
                format!(
                    "generation {g} ({expect}): the transcript stops after `KHO {l}` (line {n}); missing {}",
                    names.join(", ")
                ),
            );
        } else {
            for (verb, _) in &missing {
                fail(
                    &mut report,
                    format!("generation {g} ({expect}): no `KHO {verb}` line"),
                );
            }
        }

        if let Some((n, boot)) = find(&Verb::Boot) {
            check_boot(plan, g, expect, n, boot, &mut report.failures);
        }
        if let Some((n, rev)) = find(&Verb::Revival) {
            let result = rev.get("result").unwrap_or("");
            this.revival = Some(result.to_owned());
            this.reason = rev.get("reason").map(str::to_owned);
            let reason = rev.get("reason").unwrap_or("");
            match (expect, result) {
                (Expect::Cold, "none") | (Expect::Verified | Expect::Partial { .. }, "ok") => {}
                (Expect::Failed { reason: want }, "failed") => {
                    if !want.matches(plan.arch.name, reason) {
                        fail(
                            &mut report,
                            format!(
                                "line {n}: generation {g}: revival failed as expected, but the reason {reason:?} does not match {}",
                                want.describe(plan.arch.name)
                            ),
                        );
                    }
                }
                // An unexpected result=failed was already reported by fatal_line.
                (_, "failed") => {}
                _ => fail(
                    &mut report,
                    format!(
                        "line {n}: generation {g}: expected {expect}, got `revival result={result}`"
                    ),
                ),
            }
        }
        if let Some((n, line)) = find(&Verb::FdtIn) {
            match Fdt::decode(line) {
                Err(e) => fail(
                    &mut report,
                    format!("line {n}: generation {g}: fdt-in: {e}"),
                ),
                Ok(fdt) => {
                    if expect.revives() {
                        // A child-level fault revives partially from an FDT
                        // the strict parse refuses (the lenient one reads
                        // it); it is the injected fault's own output.
                        let injected = g.checked_sub(1).is_some_and(|p| plan.fault == Some(p));
                        if let (Some(e), false) = (&fdt.parse_error, injected) {
                            fail(
                                &mut report,
                                format!("line {n}: generation {g}: fdt-in does not parse: {e}"),
                            );
                        }
                        if let Some(prev) = &prev_out
                            && prev.bytes != fdt.bytes
                        {
                            fail(
                                &mut report,
                                format!(
                                    "line {n}: generation {g}: fdt-in differs from generation {}'s fdt-out ({} vs {} bytes{})",
                                    g - 1,
                                    fdt.bytes.len(),
                                    prev.bytes.len(),
                                    first_difference(&prev.bytes, &fdt.bytes)
                                ),
                            );
                        }
                    } else if *expect == Expect::Cold {
                        fail(
                            &mut report,
                            format!(
                                "line {n}: generation {g}: fdt-in on a cold boot (revival result=none)"
                            ),
                        );
                    }
                    this.fdt_in = Some(fdt);
                }
            }
        }
        for (n, verify) in mine.iter().filter(|(_, l)| l.verb == Verb::Verify) {
            match (verify.get("result"), verify.num("bytes")) {
                (Some("ok"), Some(bytes)) => {
                    this.verified_bytes = Some(this.verified_bytes.unwrap_or(0) + bytes);
                    report.verified_bytes += bytes;
                }
                (Some("partial"), Some(bytes)) => {
                    // Unexpected ones were reported by fatal_line.
                    if let Expect::Partial {
                        reason: want,
                        leaked,
                    } = expect
                    {
                        check_partial(plan, g, *n, verify, want, *leaked, &mut report.failures);
                    }
                    this.verified_bytes = Some(this.verified_bytes.unwrap_or(0) + bytes);
                    report.verified_bytes += bytes;
                }
                (Some("ok" | "partial"), None) => fail(
                    &mut report,
                    format!("line {n}: generation {g}: verify without numeric bytes="),
                ),
                // result=failed was reported by fatal_line.
                (Some("failed"), _) => {}
                (other, _) => fail(
                    &mut report,
                    format!(
                        "line {n}: generation {g}: verify result={}",
                        other.unwrap_or("(missing)")
                    ),
                ),
            }
        }
        if let (Expect::Partial { .. }, Some((n, verify))) = (expect, find(&Verb::Verify))
            && verify.get("result") == Some("ok")
        {
            fail(
                &mut report,
                format!(
                    "line {n}: generation {g}: verify result=ok, but the generation is expected {expect}"
                ),
            );
        }
        if let Some((n, line)) = find(&Verb::FdtOut) {
            match Fdt::decode(line) {
                Err(e) => fail(
                    &mut report,
                    format!("line {n}: generation {g}: fdt-out: {e}"),
                ),
                Ok(fdt) => {
                    if let (Some(e), false) = (&fdt.parse_error, plan.fault == Some(g)) {
                        fail(
                            &mut report,
                            format!("line {n}: generation {g}: fdt-out does not parse: {e}"),
                        );
                    }
                    this.fdt_out = Some(fdt);
                }
            }
        }
        prev_out = this.fdt_out.clone();
        if let Some((n, kexec)) = find(&Verb::Kexec) {
            let want = match ending {
                Ending::Linux => "linux".to_owned(),
                _ => (g + 1).to_string(),
            };
            if kexec.get("next") != Some(want.as_str()) {
                fail(
                    &mut report,
                    format!(
                        "line {n}: generation {g}: kexec next={} (want {want})",
                        kexec.get("next").unwrap_or("?"),
                    ),
                );
            } else if ending == Ending::Linux {
                report.done = true;
            }
        }
        if ending == Ending::Refused {
            // The reason was checked line by line (fatal_line).
            if find(&Verb::Fail).is_some() {
                report.done = true;
            } else {
                fail(
                    &mut report,
                    format!(
                        "generation {g}: no `KHO fail` line: it must refuse to hand over ({})",
                        plan.scenario
                            .refuse
                            .as_ref()
                            .map_or_else(String::new, |r| r.describe(plan.arch.name))
                    ),
                );
            }
        }
        if let Some((n, done)) = find(&Verb::Done)
            && last
        {
            let generations_ok = done.num("generations") == Some(u64::from(plan.generations));
            let result_ok = done.get("result") == Some("ok");
            if generations_ok && result_ok {
                report.done = true;
            } else {
                fail(
                    &mut report,
                    format!(
                        "line {n}: generation {g}: want `KHO done gen={g} generations={} result=ok`",
                        plan.generations
                    ),
                );
            }
        }
        report.generations.push(this);
    }

    // The numbers across lines and generations, once every line is where it belongs.
    if report.failures.is_empty() {
        report
            .failures
            .extend(invariants::check(plan, &protocol_lines));
    }

    // How QEMU ended; a harness stop is the headline, it explains the rest.
    // After a kexec into Linux, the Linux part's checker judges the end.
    let success = if plan.scenario.refuse.is_some() {
        plan.arch.stub_failure_code()
    } else {
        plan.arch.success_code()
    };
    match end {
        _ if plan.scenario.hands_to_linux() && report.done => {}
        RunEnd::Exited(code) if *code == success => {}
        RunEnd::Exited(code) => fail(
            &mut report,
            format!(
                "QEMU exited with status {code} ({}); success is {success}",
                plan.arch.describe_exit(*code)
            ),
        ),
        other => report.failures.insert(0, format!("QEMU {other}")),
    }
    report
}

fn check_boot(
    plan: &Plan<'_>,
    g: u32,
    expect: &Expect,
    n: usize,
    boot: &Line,
    failures: &mut Vec<String>,
) {
    if boot.get("arch") != Some(plan.arch.name) {
        failures.push(format!(
            "line {n}: generation {g}: boot arch={} (want {})",
            boot.get("arch").unwrap_or("?"),
            plan.arch.name
        ));
    }
    let mode = boot.get("mode").unwrap_or("?");
    let mode_ok = match expect {
        Expect::Cold => mode == "cold",
        Expect::Verified | Expect::Partial { .. } => mode == "kho",
        Expect::Failed { .. } => mode == "kho" || mode == "cold",
    };
    if !mode_ok {
        failures.push(format!(
            "line {n}: generation {g}: boot mode={mode} but the generation is expected {expect}"
        ));
    }
    let Some(cmdline) = boot.get("cmdline") else {
        failures.push(format!(
            "line {n}: generation {g}: boot without cmdline=\"…\""
        ));
        return;
    };
    let tokens: Vec<&str> = cmdline.split_whitespace().collect();
    let gen_tokens: Vec<&&str> = tokens
        .iter()
        .filter(|t| t.starts_with("kho_stub.gen="))
        .collect();
    let gen_ok = match gen_tokens.as_slice() {
        [] => g == 0,
        [t] => {
            t.strip_prefix("kho_stub.gen=")
                .and_then(protocol::parse_num)
                == Some(u64::from(g))
        }
        _ => false,
    };
    if !gen_ok {
        failures.push(format!(
            "line {n}: generation {g}: cmdline does not carry kho_stub.gen={g}: {cmdline:?}"
        ));
    }
    let missing: Vec<&str> = plan
        .cmdline
        .split_whitespace()
        .filter(|t| !tokens.contains(t))
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "line {n}: generation {g}: cmdline lost {}: {cmdline:?}",
            missing.join(" ")
        ));
    }
}

/// `verify … result=partial leaked=N reason="…"`: the reason is the expected
/// one and `leaked` is as expected (N > 0 unless the scenario says `none`).
fn check_partial(
    plan: &Plan<'_>,
    g: u32,
    n: usize,
    verify: &Line,
    want: &super::reason::Reason,
    leaked: Leaked,
    failures: &mut Vec<String>,
) {
    let reason = verify.get("reason").unwrap_or("");
    if !want.matches(plan.arch.name, reason) {
        failures.push(format!(
            "line {n}: generation {g}: verify result=partial as expected, but the reason {reason:?} does not match {}",
            want.describe(plan.arch.name)
        ));
    }
    match (verify.num("leaked"), leaked) {
        (Some(1..), Leaked::Some) | (Some(0), Leaked::None) => {}
        (_, Leaked::Some) => failures.push(format!(
            "line {n}: generation {g}: verify result=partial without a positive leaked= (the failed client's blocks stay reserved)"
        )),
        (_, Leaked::None) => failures.push(format!(
            "line {n}: generation {g}: verify result=partial should leave nothing reserved (leaked=0, the scenario says leaked = \"none\")"
        )),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(", first difference at byte {i:#x}"),
        None => String::new(),
    }
}

/// One progress phrase for generation `g`, from the lines seen so far.
pub(crate) fn summarize(lines: &[String], g: u32) -> String {
    let mut parts = Vec::new();
    for line in lines
        .iter()
        .filter_map(|l| protocol::parse(l)?.ok())
        .filter(|l| l.generation() == Some(g))
    {
        match (&line.verb, line.get("result")) {
            (Verb::Revival, Some("none")) => parts.push("cold boot".to_owned()),
            (Verb::Revival, Some("failed")) => {
                parts.push(format!(
                    "revival failed: {}",
                    line.get("reason").unwrap_or("(no reason)")
                ));
            }
            (Verb::Revival, Some(result)) => parts.push(format!("revival {result}")),
            (Verb::Verify, Some("ok")) => {
                parts.push(format!(
                    "verified {} bytes",
                    line.get("bytes").unwrap_or("?")
                ));
            }
            (Verb::Verify, Some("partial")) => {
                parts.push(format!(
                    "verified {} bytes, partial (leaked {}): {}",
                    line.get("bytes").unwrap_or("?"),
                    line.get("leaked").unwrap_or("?"),
                    line.get("reason").unwrap_or("(no reason)")
                ));
            }
            (Verb::Done, _) => parts.push("done".to_owned()),
            _ => {}
        }
    }
    if parts.is_empty() {
        "no revival line".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One wait on the console: a success pattern, the failure patterns and a timeout.
#[derive(Clone, Debug)]
pub(crate) struct Wait {
    /// The generation this wait is for.
    pub(crate) generation: u32,
    /// The line that ends it successfully: `KHO kexec gen=G`, or `KHO done gen=G` for the last.
    pub(crate) verb: Verb,
    pub(crate) timeout: Duration,
}

/// What a line means to a [`Wait`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The success pattern.
    Success,
    /// A failure pattern, with the reason.
    Failure(String),
}

impl Wait {
    /// The wait for generation `g` of `plan`.
    pub(crate) fn for_generation(plan: &Plan<'_>, g: u32, timeout: Duration) -> Wait {
        let verb = match plan.ending(g) {
            Ending::Done => Verb::Done,
            Ending::Next | Ending::Linux => Verb::Kexec,
            Ending::Refused => Verb::Fail,
        };
        Wait {
            generation: g,
            verb,
            timeout,
        }
    }

    /// The success pattern, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("`KHO {} gen={}`", self.verb, self.generation)
    }

    /// Classify one console line (free of `\r`).
    pub(crate) fn classify(&self, plan: &Plan<'_>, text: &str) -> Option<Event> {
        let parsed = protocol::parse(text);
        if let Some(msg) = fatal_line(plan, text, parsed.as_ref()) {
            return Some(Event::Failure(msg));
        }
        let line = parsed?.ok()?;
        let g = line.generation()?;
        if line.verb == self.verb && g == self.generation {
            return Some(Event::Success);
        }
        if line.verb == Verb::Done {
            return Some(Event::Failure(format!(
                "`KHO done` at generation {g}, but the run has {} generations",
                plan.generations
            )));
        }
        if g > self.generation {
            return Some(Event::Failure(format!(
                "generation {g} started before {} was seen",
                self.describe()
            )));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::scenario;
    use kho_abi::AbiVersion;
    use kho_fdt::KhoFdtBuilder;
    use kho_mem::PhysAddr;

    fn scenario(generations: u32, fault: bool) -> Scenario {
        let mut text = format!(
            "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = {generations}\nseed = 1\n"
        );
        if fault {
            text.push_str("fault = \"compatible@1\"\n[[expect]]\ngeneration = 2\nresult = \"failed\"\nreason = \"*kho-v9*\"\n");
        }
        scenario::parse("t", &text).unwrap()
    }

    fn x86() -> &'static ArchSpec {
        ArchSpec::find("x86_64").unwrap()
    }

    fn fdt_hex(memory_map: u64, compatible_v9: bool) -> (usize, String) {
        let mut b = KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(memory_map));
        b.add_subtree("memblock", PhysAddr::new(memory_map + 0x1000), None)
            .unwrap();
        let mut blob = b.build().unwrap();
        if compatible_v9 {
            // "kho-v2" -> "kho-v9" in place, as the stub's `compatible` fault does.
            let at = blob.windows(6).position(|w| w == b"kho-v2").unwrap();
            blob[at + 5] = b'9';
        }
        (
            blob.len(),
            blob.iter().map(|b| format!("{b:02x}")).collect(),
        )
    }

    /// A transcript as the stub would print it through a PTY (`\r\n`).
    fn transcript(s: &Scenario) -> Vec<String> {
        let cmdline = s.compose_cmdline(None);
        let mut out = vec![
            "SeaBIOS (version 1.16.2-debian-1.16.2-1)\r".to_owned(),
            "kho-stub: hello\r".to_owned(),
        ];
        let mut push = |l: String| out.push(format!("{l}\r"));
        for g in 0..s.generations {
            let (mode, gen_param) = if g == 0 {
                ("cold", String::new())
            } else {
                ("kho", format!(" kho_stub.gen={g}"))
            };
            push(format!(
                "KHO boot gen={g} arch=x86_64 mode={mode} cmdline=\"{cmdline}{gen_param}\""
            ));
            // Generation 0 where QEMU put it, later ones in the global area.
            let image = if g == 0 { 0x10_0000 } else { 0x1ae0_1000 };
            push(format!("KHO image gen={g} addr={image:#x} size=0x474000"));
            // QEMU pc with 512 MiB: the low hole, then RAM up to the firmware's top pages.
            push(format!("KHO memory gen={g} addr=0x0 size=0x9fc00 node=0"));
            push(format!(
                "KHO memory gen={g} addr=0x100000 size=0x1fee0000 node=0"
            ));
            let scratch = |push: &mut dyn FnMut(String)| {
                // kho_scratch=16M,64M,32M, placed top-down.
                for (i, kind, addr, size) in [
                    (0, "lowmem", 0x1ee0_0000u64, 0x100_0000u64),
                    (1, "global", 0x1ae0_0000, 0x400_0000),
                    (2, "node0", 0x18e0_0000, 0x200_0000),
                ] {
                    push(format!(
                        "KHO scratch gen={g} index={i} kind={kind} addr={addr:#x} size={size:#x}"
                    ));
                }
            };
            match &s.expect[g as usize] {
                Expect::Cold => {
                    push(format!(
                        "KHO revival gen={g} result=none reason=\"cold boot\""
                    ));
                    scratch(&mut push);
                }
                Expect::Verified | Expect::Partial { .. } => {
                    push(format!(
                        "KHO revival gen={g} result=ok fdt=0x7fe000 scratch=0x18e00000+0x30"
                    ));
                    let (in_len, in_hex) = fdt_hex(0x100_0000 * u64::from(g), false);
                    push(format!("KHO fdt-in gen={g} bytes={in_len} hex={in_hex}"));
                    scratch(&mut push);
                    push(format!(
                        "KHO walk gen={g} blocks=3 pages=40 ranges=2 ticks=1234"
                    ));
                    if matches!(s.expect[g as usize], Expect::Partial { .. }) {
                        push(format!(
                            "KHO verify gen={g} folios=10 bytes=992 vmalloc-pages=0 log-lines={g} result=partial leaked=4 reason=\"vmalloc: vmalloc chunk chain loops: chunk 1 would be 0xec1000, already in the chain\""
                        ));
                    } else {
                        push(format!(
                            "KHO verify gen={g} folios=10 bytes=1000 vmalloc-pages=2 log-lines={g} result=ok"
                        ));
                    }
                }
                Expect::Failed { .. } => {
                    push(format!(
                        "KHO revival gen={g} result=failed reason=\"unknown KHO root compatible \"kho-v9\" at /\""
                    ));
                    scratch(&mut push);
                }
            }
            if g + 1 < s.generations || s.hands_to_linux() {
                push(format!(
                    "KHO preserve gen={g} folios=10 bytes=1000 unpreserved=0 vmalloc-pages=2 log-lines={}",
                    g + 1
                ));
                let bad_compatible = s.faulty_generation(g)
                    && s.fault.as_ref().is_some_and(|f| f.class == "compatible");
                let (len, hex) = fdt_hex(0x100_0000 * u64::from(g + 1), bad_compatible);
                push(format!("KHO fdt-out gen={g} bytes={len} hex={hex}"));
                push(format!(
                    "KHO segments gen={g} count=3 ranges=0x18e00000+0x30,0x18e01000+0x1040,0x1ae01000+0x474000"
                ));
                let next = if g + 1 < s.generations {
                    (g + 1).to_string()
                } else {
                    push(format!(
                        "KHO linux gen={g} kernel=0x2000000+0x443000 initrd=0x2500000+0x3000 handoff=0x2400000 cmdline=\"console=ttyS0\""
                    ));
                    "linux".to_owned()
                };
                push(format!(
                    "KHO kexec gen={g} next={next} heap=4096 ticks-walk=1 ticks-verify=2 ticks-build=3 ticks-total=6"
                ));
            } else {
                push(format!(
                    "KHO done gen={g} generations={} heap=4096 result=ok",
                    s.generations
                ));
            }
        }
        out
    }

    #[test]
    fn the_last_generation_can_be_expected_to_refuse() {
        let text = "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\nseed = 1\nrefuse = \"*not available in a kho-v1 handover\"\n";
        let s = scenario::parse("t", text).unwrap();
        let mut lines = transcript(&s);
        // The transcript ends generation 1 with `KHO done`: a refusal
        // instead, as the stub prints it.
        let last = lines.len() - 1;
        lines[last] =
            "KHO fail gen=1 reason=\"reserve_mem regions is not available in a kho-v1 handover\"\r"
                .to_owned();
        let plan = Plan::new(&s, x86(), "");
        let wait = Wait::for_generation(&plan, 1, Duration::from_secs(1));
        assert_eq!(wait.describe(), "`KHO fail gen=1`");
        assert_eq!(
            wait.classify(&plan, protocol::clean(&lines[last])),
            Some(Event::Success)
        );
        let r = run(&s, &lines, RunEnd::Exited(35));
        assert!(r.passed(), "{:?}", r.failures);
        assert!(r.done);
        // QEMU's success code means the stub did not refuse as it exited.
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "QEMU exited with status 33",
        );
        // Another reason is a failure, at the line and in the wait.
        let mut other = lines.clone();
        other[last] = "KHO fail gen=1 reason=\"out of memory\"\r".to_owned();
        assert_fails(
            &run(&s, &other, RunEnd::Exited(35)),
            "but the reason \"out of memory\" does not match",
        );
        assert!(matches!(
            wait.classify(&plan, protocol::clean(&other[last])),
            Some(Event::Failure(_))
        ));
        // Handing over instead of refusing is a failure.
        let mut handed = lines.clone();
        handed[last] = "KHO done gen=1 generations=2 heap=4096 result=ok".to_owned();
        let r = run(&s, &handed, RunEnd::Exited(35));
        assert_fails(&r, "unexpected `KHO done`");
        assert_fails(&r, "no `KHO fail` line");
        // A refusal scenario cannot be soaked, nor end in Linux.
        let mut soak = s.clone();
        assert!(soak.override_generations(10).is_err());
        let linux = format!(
            "{text}[linux]\nflow = \"stub-to-linux\"\nexpect = [\"x\"]\nsubtrees = [\"kho_test\"]\n"
        );
        assert!(scenario::parse("t", &linux).is_err());
    }

    #[test]
    fn the_last_generation_can_hand_over_to_linux() {
        let text = "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 3\nseed = 1\n[linux]\nflow = \"stub-to-linux\"\nexpect = [\"KHO restore succeeded\"]\nsubtrees = [\"kho_test\"]\n";
        let s = scenario::parse("t", text).unwrap();
        assert!(
            s.compose_cmdline(None)
                .contains("kho_stub.next=linux kho_stub.kho_test=1")
        );
        let lines = transcript(&s);
        // Linux decides how QEMU ends; the stub part does not.
        let r = run(&s, &lines, RunEnd::Exited(0));
        assert!(r.passed(), "{:?}", r.failures);
        assert!(r.done);
        // `KHO done` instead of the kexec into Linux is a failure.
        let mut done = lines.clone();
        let last = done.len() - 1;
        done[last] = "KHO done gen=2 generations=3 result=ok".to_owned();
        done.remove(last - 1);
        let r = run(&s, &done, RunEnd::Exited(33));
        assert_fails(&r, "the last generation must kexec the Linux peer");
        // A kexec to generation 3 instead of Linux.
        let mut wrong = lines.clone();
        wrong[last] = wrong[last].replace("next=linux", "next=3");
        assert_fails(
            &run(&s, &wrong, RunEnd::Exited(0)),
            "kexec next=3 (want linux)",
        );
        let plan = Plan::new(&s, x86(), "");
        assert_eq!(
            Wait::for_generation(&plan, 2, Duration::from_secs(1)).describe(),
            "`KHO kexec gen=2`"
        );
    }

    fn run(s: &Scenario, lines: &[String], end: RunEnd) -> Report {
        let cmdline = s.compose_cmdline(None);
        check(&Plan::new(s, x86(), &cmdline), lines, &end)
    }

    fn assert_fails(report: &Report, want: &str) {
        assert!(!report.passed(), "expected a failure containing {want:?}");
        assert!(
            report.failures.iter().any(|f| f.contains(want)),
            "no failure contains {want:?}: {:#?}",
            report.failures
        );
    }

    #[test]
    fn passing_three_generation_transcript() {
        let s = scenario(3, false);
        let lines = transcript(&s);
        let r = run(&s, &lines, RunEnd::Exited(33));
        assert!(r.passed(), "{:#?}", r.failures);
        assert!(r.done);
        assert_eq!(r.generations.len(), 3);
        assert_eq!(r.verified_bytes, 2000);
        assert_eq!(r.generations[0].revival.as_deref(), Some("none"));
        assert_eq!(r.generations[2].verified_bytes, Some(1000));
        // Every generation's FDT renderings are available for review and snapshots.
        assert!(
            r.generations[0]
                .fdt_out
                .as_ref()
                .unwrap()
                .dts()
                .contains("compatible = \"kho-v2\";")
        );
        assert!(
            r.generations[1]
                .fdt_in
                .as_ref()
                .unwrap()
                .dts()
                .contains("memblock {")
        );
        assert!(r.generations[2].fdt_out.is_none());
    }

    #[test]
    fn fault_transcript_passes_when_the_reason_matches() {
        let s = scenario(4, true);
        let lines = transcript(&s);
        let r = run(&s, &lines, RunEnd::Exited(33));
        assert!(r.passed(), "{:#?}", r.failures);
        assert_eq!(r.generations[2].revival.as_deref(), Some("failed"));
        assert!(
            r.generations[1]
                .fdt_out
                .as_ref()
                .unwrap()
                .parse_error
                .is_some()
        );
        assert!(
            r.generations[1]
                .fdt_out
                .as_ref()
                .unwrap()
                .dts()
                .starts_with("// not a valid KHO root FDT")
        );
        assert_eq!(r.verified_bytes, 2000, "generations 1 and 3 verified");
    }

    /// `KHO restart` (restart.rs): the abandoned attempt's lines are
    /// dropped, the second attempt is judged; only where a failed revival
    /// is expected.
    #[test]
    fn a_restart_starts_the_generation_over() {
        let s = scenario(4, true);
        let mut lines = transcript(&s);
        let boot2 = lines
            .iter()
            .position(|l| l.starts_with("KHO boot gen=2"))
            .unwrap();
        let attempt = [
            lines[boot2].clone(),
            "KHO revival gen=2 result=ok fdt=0x7fe000 scratch=0x18e00000+0x30\r".to_owned(),
            "KHO walk gen=2 blocks=3 pages=40 ranges=2 ticks=1234\r".to_owned(),
            "KHO restart gen=2 reason=\"heap exhausted during revival: 99 bytes requested\"\r"
                .to_owned(),
        ];
        lines.splice(boot2..boot2, attempt.clone());
        let r = run(&s, &lines, RunEnd::Exited(33));
        assert!(r.passed(), "{:#?}", r.failures);
        assert_eq!(r.generations[2].revival.as_deref(), Some("failed"));

        // In a generation expected to verify, a restart is a failure.
        let mut lines = transcript(&s);
        let boot3 = lines
            .iter()
            .position(|l| l.starts_with("KHO boot gen=3"))
            .unwrap();
        let restart3 = attempt[3].replace("gen=2", "gen=3");
        lines.splice(boot3..boot3, [lines[boot3].clone(), restart3]);
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "generation 3: unexpected restart: heap exhausted during revival",
        );
    }

    #[test]
    fn fault_transcript_with_the_wrong_reason_fails() {
        let s = scenario(4, true);
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| l.replace("kho-v9", "kho-v7"))
            .collect();
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "does not match the pattern \"*kho-v9*\"",
        );
    }

    #[test]
    fn missing_generation_fails() {
        let s = scenario(3, false);
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .filter(|l| !l.contains("gen=2"))
            .collect();
        let r = run(&s, &lines, RunEnd::Exited(33));
        assert_fails(
            &r,
            "generation 2: missing (the transcript has nothing after generation 1)",
        );
        assert!(!r.done);
    }

    #[test]
    fn unexpected_result_failed_fails() {
        let s = scenario(3, false);
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| {
                if l.starts_with("KHO verify gen=2") {
                    "KHO verify gen=2 folios=10 bytes=1000 vmalloc-pages=2 log-lines=2 result=failed reason=\"folio 3 byte 7\"".into()
                } else {
                    l
                }
            })
            .collect();
        let r = run(&s, &lines, RunEnd::Exited(35));
        assert_fails(
            &r,
            "generation 2: unexpected `verify result=failed`: folio 3 byte 7",
        );
        assert_fails(&r, "QEMU exited with status 35");
    }

    #[test]
    fn fdt_in_differing_from_previous_fdt_out_fails() {
        let s = scenario(3, false);
        let (len, hex) = fdt_hex(0x4000_0000, false);
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| {
                if l.starts_with("KHO fdt-in gen=2") {
                    format!("KHO fdt-in gen=2 bytes={len} hex={hex}\r")
                } else {
                    l
                }
            })
            .collect();
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "generation 2: fdt-in differs from generation 1's fdt-out",
        );
    }

    #[test]
    fn wrong_exit_codes_fail() {
        let s = scenario(3, false);
        let lines = transcript(&s);
        let r = run(&s, &lines, RunEnd::Exited(0));
        assert_fails(
            &r,
            "QEMU exited with status 0 (triple fault under -no-reboot",
        );
        assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
        assert_fails(
            &run(&s, &lines, RunEnd::Signaled("SIGSEGV".into())),
            "killed by SIGSEGV",
        );
    }

    #[test]
    fn timeout_fails() {
        let s = scenario(3, false);
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .take_while(|l| !l.starts_with("KHO kexec gen=1"))
            .collect();
        let end = RunEnd::TimedOut {
            waiting_for: "`KHO kexec gen=1`".into(),
            after: Duration::from_secs(30),
        };
        let r = run(&s, &lines, end);
        assert_eq!(
            r.failures,
            [
                "QEMU timed out after 30.0 s waiting for `KHO kexec gen=1`; QEMU killed",
                "generation 1 (verified): the transcript stops after `KHO segments` (line 28); missing kexec",
                "generation 2: missing (the transcript has nothing after generation 1)",
            ]
        );
        // A line missing in the middle is named on its own.
        let lines: Vec<String> = transcript(&s)
            .into_iter()
            .filter(|l| !l.starts_with("KHO preserve gen=1"))
            .collect();
        assert_eq!(
            run(&s, &lines, RunEnd::Exited(33)).failures,
            ["generation 1 (verified): no `KHO preserve` line"]
        );
    }

    #[test]
    fn kho_fail_panic_and_qemu_errors_fail() {
        let s = scenario(3, false);
        let mut lines = transcript(&s);
        lines.insert(3, "KHO fail gen=0 reason=\"out of scratch\"\r".into());
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "line 4: generation 0: KHO fail: out of scratch",
        );
        let lines = vec!["KHO fail gen=0 reason=\"bad parameter\"".to_owned()];
        let r = run(&s, &lines, RunEnd::Exited(35));
        assert_eq!(
            r.failures,
            [
                "line 1: generation 0: KHO fail: bad parameter",
                "generation 1: missing (the transcript has nothing after generation 0)",
                "QEMU exited with status 35 (the stub wrote 0x11 to isa-debug-exit (KHO fail)); success is 33",
            ]
        );
        let mut lines = transcript(&s);
        lines.push("kho-stub: PANIC at src/main.rs:9".into());
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "panic: kho-stub: PANIC",
        );
        let lines = vec!["qemu-system-x86_64: -numa node: bad".to_owned()];
        let r = run(&s, &lines, RunEnd::Exited(1));
        assert_fails(&r, "QEMU error: qemu-system-x86_64: -numa node: bad");
        assert_fails(
            &r,
            "generation 0: missing (no generation printed a protocol line)",
        );
        assert_fails(&r, "QEMU itself failed");
        let mut lines = transcript(&s);
        lines.insert(
            0,
            "qemu-system-x86_64: warning: host doesn't support requested feature".into(),
        );
        assert!(run(&s, &lines, RunEnd::Exited(33)).passed());
    }

    #[test]
    fn protocol_shape_errors_fail() {
        let s = scenario(3, false);
        let base = transcript(&s);
        let edit = |from: &str, to: &str| -> Vec<String> {
            base.iter().map(|l| l.replacen(from, to, 1)).collect()
        };
        let cases = [
            (
                edit("arch=x86_64 mode=kho", "arch=aarch64 mode=kho"),
                "boot arch=aarch64",
            ),
            (
                edit("gen=1 arch=x86_64 mode=kho", "gen=1 arch=x86_64 mode=cold"),
                "boot mode=cold but the generation is expected verified",
            ),
            (
                edit(" kho_stub.gen=2", ""),
                "cmdline does not carry kho_stub.gen=2",
            ),
            (
                edit("kho_scratch=16M,64M,32M kho_stub.gen=1", "kho_stub.gen=1"),
                "cmdline lost kho_scratch=16M,64M,32M",
            ),
            (
                edit("gen=1 result=ok", "gen=1 result=none"),
                "expected verified, got `revival result=none`",
            ),
            (edit("next=2", "next=3"), "kexec next=3 (want 2)"),
            (
                edit("generations=3 heap=4096", "generations=4 heap=4096"),
                "want `KHO done gen=2 generations=3 result=ok`",
            ),
            (
                edit("KHO walk gen=1", "KHO walk gen=x"),
                "has no numeric gen= field",
            ),
            (
                edit("KHO walk gen=1 blocks=3", "KHO walk gen=1 blocks"),
                "malformed protocol line",
            ),
        ];
        for (lines, want) in cases {
            assert_fails(&run(&s, &lines, RunEnd::Exited(33)), want);
        }
        let mut lines = base.clone();
        let fdt_in = lines
            .iter()
            .position(|l| l.starts_with("KHO fdt-in gen=1"))
            .unwrap();
        lines[fdt_in] = lines[fdt_in].replacen("bytes=", "bytes=1", 1);
        assert_fails(&run(&s, &lines, RunEnd::Exited(33)), "fdt-in: bytes=1");
        let mut lines = base.clone();
        let verify = lines
            .iter()
            .position(|l| l.starts_with("KHO verify gen=1"))
            .unwrap();
        let v = lines.remove(verify);
        lines.insert(fdt_in, v);
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "`KHO verify` before `KHO fdt-in`",
        );
        let mut lines = base.clone();
        lines.push("KHO boot gen=0 arch=x86_64 mode=cold cmdline=\"\"".into());
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "generation 0 output after generation 2's",
        );
        let mut lines = base.clone();
        lines.push("KHO boot gen=3 arch=x86_64 mode=kho cmdline=\"\"".into());
        assert_fails(
            &run(&s, &lines, RunEnd::Exited(33)),
            "generation 3 is past the last generation 2",
        );
    }

    fn partial_scenario(reason: &str) -> Scenario {
        let text = format!(
            "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 4\nseed = 1\nfault = \"vmalloc-cycle@1\"\n[[expect]]\ngeneration = 2\nresult = \"partial\"\nreason = {reason}\n"
        );
        scenario::parse("t", &text).unwrap()
    }

    #[test]
    fn partial_revival_passes_with_its_reason_and_a_leak() {
        let s = partial_scenario(
            "\"vmalloc: vmalloc chunk chain loops: chunk 1 would be 0x*, already in the chain\"",
        );
        let lines = transcript(&s);
        let r = run(&s, &lines, RunEnd::Exited(33));
        assert!(r.passed(), "{:#?}", r.failures);
        assert_eq!(r.generations[2].revival.as_deref(), Some("ok"));
        assert_eq!(r.verified_bytes, 1000 + 992 + 1000);
        assert!(
            summarize(&lines, 2).contains("partial (leaked 4): vmalloc: vmalloc chunk chain loops")
        );

        // Per-arch reasons: the x86_64 one applies.
        let s = partial_scenario("{ x86_64 = \"vmalloc: *\" }");
        assert!(run(&s, &transcript(&s), RunEnd::Exited(33)).passed());
        let s = partial_scenario("{ x86_64 = \"radix: *\" }");
        assert_fails(
            &run(&s, &transcript(&s), RunEnd::Exited(33)),
            "verify result=partial as expected, but the reason",
        );

        let s = partial_scenario("\"vmalloc: *\"");
        let no_leak: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| l.replace("leaked=4", "leaked=0"))
            .collect();
        assert_fails(
            &run(&s, &no_leak, RunEnd::Exited(33)),
            "without a positive leaked=",
        );
        // `leaked = "none"` turns it around: leaked=0 passes, a leak fails.
        let none = partial_scenario("\"vmalloc: *\"\nleaked = \"none\"");
        let r = run(&none, &no_leak, RunEnd::Exited(33));
        assert!(r.passed(), "{:#?}", r.failures);
        assert_fails(
            &run(&none, &transcript(&none), RunEnd::Exited(33)),
            "should leave nothing reserved (leaked=0",
        );
        let ok: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| {
                if l.starts_with("KHO verify gen=2") {
                    "KHO verify gen=2 folios=10 bytes=1000 vmalloc-pages=2 log-lines=2 result=ok"
                        .into()
                } else {
                    l
                }
            })
            .collect();
        assert_fails(
            &run(&s, &ok, RunEnd::Exited(33)),
            "generation 2: verify result=ok, but the generation is expected partial",
        );
        let failed: Vec<String> = transcript(&s)
            .into_iter()
            .map(|l| {
                l.replace(
                    "gen=2 result=ok fdt=0x7fe000 scratch=0x18e00000+0x30",
                    "gen=2 result=failed reason=\"x\"",
                )
            })
            .collect();
        assert_fails(
            &run(&s, &failed, RunEnd::Exited(33)),
            "generation 2: unexpected `revival result=failed`",
        );
    }

    #[test]
    fn unexpected_partial_fails_at_once() {
        let s = scenario(3, false);
        let cmdline = s.compose_cmdline(None);
        let plan = Plan::new(&s, x86(), &cmdline);
        let w = Wait::for_generation(&plan, 1, Duration::from_secs(5));
        assert!(matches!(
            w.classify(&plan, "KHO verify gen=1 folios=1 bytes=1 result=partial leaked=3 reason=\"vmalloc: loop\""),
            Some(Event::Failure(m)) if m.contains("unexpected `verify result=partial`: vmalloc: loop")
        ));
    }

    #[test]
    fn progress_summaries() {
        let s = scenario(4, true);
        let lines = transcript(&s);
        assert_eq!(summarize(&lines, 0), "cold boot");
        assert_eq!(summarize(&lines, 1), "revival ok, verified 1000 bytes");
        assert_eq!(
            summarize(&lines, 2),
            "revival failed: unknown KHO root compatible \"kho-v9\" at /"
        );
        assert_eq!(
            summarize(&lines, 3),
            "revival ok, verified 1000 bytes, done"
        );
        assert_eq!(summarize(&lines, 9), "no revival line");
    }

    #[test]
    fn waits_classify_lines() {
        let s = scenario(3, false);
        let cmdline = s.compose_cmdline(None);
        let plan = Plan::new(&s, x86(), &cmdline);
        let w1 = Wait::for_generation(&plan, 1, Duration::from_secs(5));
        assert_eq!(w1.describe(), "`KHO kexec gen=1`");
        assert_eq!(
            w1.classify(&plan, "KHO kexec gen=1 next=2 ticks-total=3"),
            Some(Event::Success)
        );
        assert_eq!(w1.classify(&plan, "KHO kexec gen=0 next=1"), None);
        assert_eq!(w1.classify(&plan, "free-form text"), None);
        assert!(
            matches!(w1.classify(&plan, "KHO fail gen=1 reason=\"x\""), Some(Event::Failure(m)) if m.contains("KHO fail: x"))
        );
        assert!(
            matches!(w1.classify(&plan, "KHO boot gen=2 arch=x86_64"), Some(Event::Failure(m)) if m.contains("generation 2 started"))
        );
        assert!(
            matches!(w1.classify(&plan, "KHO done gen=1 generations=2 result=ok"), Some(Event::Failure(m)) if m.contains("`KHO done` at generation 1"))
        );
        assert!(matches!(
            w1.classify(&plan, "qemu-system-x86_64: terminating on signal 15"),
            Some(Event::Failure(_))
        ));
        let w2 = Wait::for_generation(&plan, 2, Duration::from_secs(5));
        assert_eq!(w2.describe(), "`KHO done gen=2`");
        assert_eq!(
            w2.classify(&plan, "KHO done gen=2 generations=3 result=ok"),
            Some(Event::Success)
        );

        let f = scenario(4, true);
        let fc = f.compose_cmdline(None);
        let fplan = Plan::new(&f, x86(), &fc);
        let w = Wait::for_generation(&fplan, 2, Duration::from_secs(5));
        assert_eq!(
            w.classify(&fplan, "KHO revival gen=2 result=failed reason=\"kho-v9\""),
            None,
            "expected failure"
        );
        assert!(matches!(
            w.classify(&fplan, "KHO revival gen=3 result=failed reason=\"x\""),
            Some(Event::Failure(_))
        ));
    }
}
