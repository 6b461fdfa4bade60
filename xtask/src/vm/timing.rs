//! Where a generation's time goes: the stub's own counters against the
//! host's clock, one row per generation (`target/kho/vm/<run>/timing.tsv`).
//!
//! The stub reports, on its `kexec`/`done` line, the ticks of its boot
//! (entry to the walk: memory map, memory types, `populate`, scratch), walk,
//! verification, build, handoff preparation (build to the jump: the
//! outgoing FDT's dump, scratch array, staging the next image) and whole run
//! from entry (`ticks-total`), plus the ticks spent writing protocol lines
//! wherever they were written (`ticks-console`), at the `ticks-hz` of its
//! `boot` line. The host notes when it read each console
//! line. A generation's host time runs from its `KHO boot` line to the
//! next one (to the last line for the last generation); what the stub's
//! total does not cover is the time outside it: the kexec jump, the next
//! image's entry code (relocation, `.bss`), firmware for generation 0, and
//! the serial console carrying the lines out.

use std::fmt::Write as _;
use std::time::Duration;

use super::protocol::{self, Verb};

/// One generation's figures, in milliseconds.
#[derive(Debug, PartialEq)]
struct Row {
    generation: u64,
    host: f64,
    stub_total: f64,
    walk: f64,
    verify: f64,
    build: f64,
    /// Entry to the walk, handoff preparation, console writes (stubs from
    /// before these counters do not report them).
    boot: Option<f64>,
    prep: Option<f64>,
    console: Option<f64>,
}

/// The table for a run's `lines` and the host times they were read at;
/// empty when the run has no complete generation.
pub(crate) fn table(lines: &[String], times: &[Duration]) -> String {
    let rows = rows(lines, times);
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "gen\thost_ms\tstub_total_ms\twalk_ms\tverify_ms\tbuild_ms\toutside_stub_ms\tboot_ms\tprep_ms\tconsole_ms\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(|| String::from("-"), |v| format!("{v:.1}"));
    for r in &rows {
        let _ = writeln!(
            out,
            "{}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}\t{}\t{}",
            r.generation,
            r.host,
            r.stub_total,
            r.walk,
            r.verify,
            r.build,
            r.host - r.stub_total,
            opt(r.boot),
            opt(r.prep),
            opt(r.console),
        );
    }
    out
}

fn rows(lines: &[String], times: &[Duration]) -> Vec<Row> {
    // (generation, host time of its boot line, ticks-hz)
    let mut boots: Vec<(u64, Duration, u64)> = Vec::new();
    // (generation, [walk, verify, build, total], [boot, prep, console]) in ticks
    type End = (u64, [u64; 4], [Option<u64>; 3]);
    let mut ends: Vec<End> = Vec::new();
    for (line, &at) in lines.iter().zip(times) {
        let Some(Ok(l)) = protocol::parse(line) else {
            continue;
        };
        let Some(g) = l.num("gen") else { continue };
        match l.verb {
            Verb::Boot => {
                if let Some(hz) = l.num("ticks-hz") {
                    boots.push((g, at, hz));
                }
            }
            Verb::Kexec | Verb::Done => {
                if let (Some(w), Some(v), Some(b), Some(t)) = (
                    l.num("ticks-walk"),
                    l.num("ticks-verify"),
                    l.num("ticks-build"),
                    l.num("ticks-total"),
                ) {
                    let optional = ["ticks-boot", "ticks-prep", "ticks-console"].map(|k| l.num(k));
                    ends.push((g, [w, v, b, t], optional));
                }
            }
            _ => {}
        }
    }
    let last = times.last().copied().unwrap_or_default();
    let mut out = Vec::new();
    for (i, &(g, at, hz)) in boots.iter().enumerate() {
        // A restarted generation boots twice: its last boot line counts.
        if boots.get(i + 1).is_some_and(|n| n.0 == g) || hz == 0 {
            continue;
        }
        let Some(&(_, [w, v, b, t], [boot, prep, console])) = ends.iter().find(|e| e.0 == g) else {
            continue;
        };
        let next = boots.get(i + 1).map_or(last, |n| n.1);
        let ms = |ticks: u64| ticks as f64 * 1000.0 / hz as f64;
        out.push(Row {
            generation: g,
            host: next.saturating_sub(at).as_secs_f64() * 1000.0,
            stub_total: ms(t),
            walk: ms(w),
            verify: ms(v),
            build: ms(b),
            boot: boot.map(ms),
            prep: prep.map(ms),
            console: console.map(ms),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_time_runs_from_boot_to_boot() {
        let lines: Vec<String> = [
            "KHO boot gen=0 arch=x86_64 mode=cold ticks-hz=1000 cmdline=\"x\"",
            "KHO kexec gen=0 next=1 heap=1 ticks-walk=0 ticks-verify=5 ticks-build=10 ticks-total=40",
            "KHO boot gen=1 arch=x86_64 mode=kho ticks-hz=1000 cmdline=\"x\"",
            "free-form firmware line",
            "KHO done gen=1 generations=2 heap=1 ticks-boot=7 ticks-walk=2 ticks-verify=6 ticks-build=0 ticks-prep=9 ticks-console=4 ticks-total=30 result=ok",
        ]
        .map(String::from)
        .to_vec();
        let times = [0, 45, 60, 61, 100].map(Duration::from_millis).to_vec();
        let rows = rows(&lines, &times);
        assert_eq!(
            rows,
            [
                Row {
                    generation: 0,
                    host: 60.0,
                    stub_total: 40.0,
                    walk: 0.0,
                    verify: 5.0,
                    build: 10.0,
                    boot: None,
                    prep: None,
                    console: None,
                },
                Row {
                    generation: 1,
                    host: 40.0,
                    stub_total: 30.0,
                    walk: 2.0,
                    verify: 6.0,
                    build: 0.0,
                    boot: Some(7.0),
                    prep: Some(9.0),
                    console: Some(4.0),
                },
            ]
        );
        let t = table(&lines, &times);
        assert!(t.starts_with("gen\thost_ms\t"));
        assert!(
            t.contains("\n0\t60.0\t40.0\t0.0\t5.0\t10.0\t20.0\t-\t-\t-\n"),
            "{t}"
        );
        assert!(
            t.contains("\n1\t40.0\t30.0\t2.0\t6.0\t0.0\t10.0\t7.0\t9.0\t4.0\n"),
            "{t}"
        );
        assert!(table(&[], &[]).is_empty());
    }
}
