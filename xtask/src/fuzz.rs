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

/// Run `target` (or every target) for `seconds` each; any crash fails.
pub(crate) fn run(target: Option<&str>, seconds: u64) -> Result<()> {
    let sh = util::shell()?;
    let toolchains = cmd!(sh, "rustup toolchain list")
        .quiet()
        .read()
        .context("rustup toolchain list")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!("fuzzing needs a nightly toolchain: `rustup toolchain install nightly`");
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
    // Memory-image targets read up to 256 KiB of RAM from the input.
    let max_len = "-max_len=262144";
    for t in &chosen {
        let corpus = format!("corpus/{t}");
        let seeds = format!("seeds/{t}");
        sh.create_dir(&corpus)?;
        sh.create_dir(&seeds)?;
        tracing::info!("fuzzing {t} for {seconds} s");
        cmd!(
            sh,
            "cargo +nightly fuzz run -O {t} {corpus} {seeds} -- {time} {max_len}"
        )
        .run()
        .with_context(|| {
            format!("fuzz target {t} failed: the crashing input is in fuzz/artifacts/{t}/")
        })?;
    }
    tracing::info!("no crash in {} target(s), {seconds} s each", chosen.len());
    Ok(())
}
