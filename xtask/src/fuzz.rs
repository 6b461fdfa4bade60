//! `cargo xtask fuzz`: run the cargo-fuzz targets in `fuzz/` for a while each.
//!
//! The fuzz workspace needs a nightly toolchain and cargo-fuzz; the task
//! installs cargo-fuzz from crates.io when it is missing and names what is
//! missing otherwise. The growing corpus lives in `fuzz/corpus/<target>`
//! (not committed); the committed seeds in `fuzz/seeds/<target>` are read too.

use anyhow::{Context, Result, bail};
use xshell::cmd;

use crate::util::{self, project_root};

/// The fuzz targets: every `fuzz/fuzz_targets/*.rs` except shared modules.
fn targets() -> Result<Vec<String>> {
    let dir = project_root().join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(String::from)
        })
        .filter(|n| n != "common")
        .collect();
    names.sort();
    Ok(names)
}

/// Largest input libFuzzer may try for `target`: targets that take their
/// input as a RAM image read up to 256 KiB of it (the arena in
/// `fuzz_targets/common.rs`); `inspect_elf` takes a whole ELF core, whose
/// seeds (a handover, issue 15's image) are up to 37 KiB; the others need a
/// page or two of DTB or a few thousand operations, and longer inputs would
/// only slow them down.
fn max_len(target: &str) -> usize {
    match target {
        "handoff" | "vmalloc_restore" => 256 * 1024,
        "inspect_elf" => 64 * 1024,
        _ => 16 * 1024,
    }
}

/// How one target's run went.
#[derive(Debug, PartialEq, Eq)]
struct Runs {
    runs: u64,
    seconds: u64,
}

/// libFuzzer's last word: `Done N runs in S second(s)`.
fn parse_done(stderr: &str) -> Option<Runs> {
    let line = stderr.lines().rev().find(|l| l.starts_with("Done "))?;
    let mut words = line.split_whitespace();
    let runs = words.nth(1)?.parse().ok()?;
    let seconds = words.nth(2)?.parse().ok()?;
    Some(Runs { runs, seconds })
}

/// Run `target` (or every target) for `seconds` each; any crash fails.
/// Installs the nightly toolchain (minimal profile) and cargo-fuzz when
/// they are missing, and ends with a table of executions per target.
pub(crate) fn run(target: Option<&str>, seconds: u64, runs: Option<u64>) -> Result<()> {
    let sh = util::shell()?;
    let toolchains = cmd!(sh, "rustup toolchain list")
        .quiet()
        .read()
        .context("rustup toolchain list")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        tracing::info!("installing the nightly toolchain (fuzzing needs it)");
        cmd!(sh, "rustup toolchain install nightly --profile minimal")
            .run()
            .context("fuzzing needs a nightly toolchain: `rustup toolchain install nightly`")?;
    }
    if !util::have("cargo-fuzz") {
        tracing::info!("installing cargo-fuzz");
        cmd!(sh, "cargo +nightly install cargo-fuzz --locked")
            .run()
            .context("installing cargo-fuzz")?;
    }
    let all = targets()?;
    let chosen: Vec<String> = match target {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target `{t}` (targets: {})", all.join(", ")),
        None => all,
    };
    sh.change_dir(project_root().join("fuzz"));
    let time = format!("-max_total_time={seconds}");
    // libFuzzer's -runs=-1 means "no limit".
    let runs_flag = format!(
        "-runs={}",
        runs.map_or(-1, |r| r.min(i64::MAX as u64) as i64)
    );
    let mut table = Vec::new();
    for t in &chosen {
        let corpus = format!("corpus/{t}");
        let seeds = format!("seeds/{t}");
        sh.create_dir(&corpus)?;
        sh.create_dir(&seeds)?;
        tracing::info!("fuzzing {t} for {seconds} s");
        let max_len = format!("-max_len={}", max_len(t));
        // -O: optimized, with the release profile's overflow checks and
        // debug assertions (fuzz/Cargo.toml). `-s none`: every fuzzed crate
        // is `forbid(unsafe_code)`, so AddressSanitizer could only find
        // what Rust's own bounds checks already report, at a third of the
        // speed (measured on radix_walk: 900 vs 2,900 runs/s).
        let out = cmd!(
            sh,
            "cargo +nightly fuzz run -O -s none {t} {corpus} {seeds} -- {time} {runs_flag} {max_len}"
        )
        .ignore_status()
        .output()
        .with_context(|| format!("running cargo fuzz for {t}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            bail!(
                "fuzz target {t} failed (the lines above say whether it did not build or crashed; a crashing input is saved in fuzz/artifacts/{t}/)"
            );
        }
        let done = parse_done(&stderr)
            .with_context(|| format!("fuzz target {t}: no `Done N runs` line from libFuzzer"))?;
        table.push((t.clone(), done));
    }
    println!(
        "{:<16} {:>12} {:>8} {:>10}",
        "target", "runs", "seconds", "runs/s"
    );
    for (t, d) in &table {
        println!(
            "{t:<16} {:>12} {:>8} {:>10}",
            d.runs,
            d.seconds,
            d.runs / d.seconds.max(1)
        );
    }
    match runs {
        Some(r) => tracing::info!(
            "no crash in {} target(s), up to {r} runs or {seconds} s each",
            chosen.len()
        ),
        None => tracing::info!("no crash in {} target(s), {seconds} s each", chosen.len()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_summaries_parse() {
        let text = "#123 DONE cov: 4\nDone 124936 runs in 121 second(s)\n";
        assert_eq!(
            parse_done(text),
            Some(Runs {
                runs: 124936,
                seconds: 121
            })
        );
        assert_eq!(parse_done("INFO: nothing"), None);
    }
}
