//! `cargo xtask test`, `lint` and `ci`: every check CI runs, in order.

use anyhow::{Context, Result, bail, ensure};
use xshell::{Shell, cmd};

use crate::util::{self, project_root};
use crate::{fixtures, tidy, vm};

/// Seconds each fuzz target runs in `cargo xtask test`: a smoke test that
/// every target builds (with overflow checks) and its seeds and first
/// mutations pass; long runs are `cargo xtask fuzz --all --seconds N`.
const FUZZ_SMOKE_SECONDS: u64 = 10;

/// The bare-metal targets every library crate must build for.
pub(crate) const BARE_TARGETS: [&str; 2] = ["x86_64-unknown-none", "aarch64-unknown-none"];

/// Crates under `crates/` that are not `no_std` libraries (they are built
/// by their own tasks, not by the bare-metal library check).
const NON_LIBRARY_CRATES: [&str; 3] = ["kho-stub", "kho-bench", "kho-cli"];
/// Publishable crates that are not `no_std` libraries: packaged, not
/// built for bare metal.
const PUBLISHED_TOOLS: [&str; 1] = ["kho-cli"];

/// The `no_std` library crates: every directory under `crates/` with a
/// Cargo.toml, except [`NON_LIBRARY_CRATES`].
pub(crate) fn library_crates() -> Result<Vec<String>> {
    let dir = project_root().join("crates");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join("Cargo.toml").is_file() && !NON_LIBRARY_CRATES.contains(&name.as_str())
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn package_args(crates: &[String]) -> Vec<String> {
    crates
        .iter()
        .flat_map(|c| ["-p".to_owned(), c.clone()])
        .collect()
}

/// Every test: host tests (with snapshot checks), dtc interop, bare-metal
/// builds, the VM handover tests of every scenario on both arches, then a
/// short run of every fuzz target.
pub(crate) fn test() -> Result<()> {
    let sh = util::shell()?;
    util::ensure_tool(&sh, "dtc", "device-tree-compiler")?;

    tracing::info!(
        "step: host tests (snapshots must match; review changes with `cargo insta review`)"
    );
    // Under CI=true insta never writes .snap.new files and fails on any
    // mismatch; locally it writes them for `cargo insta review`.
    cmd!(sh, "cargo test --workspace --all-features --locked")
        .run()
        .context("host tests failed")?;
    pending_snapshots()?;
    tracing::info!("step: cargo insta finds a changed VM snapshot and a changed crate snapshot");
    insta_finds_pending_snapshots(&sh)?;

    tracing::info!("step: dtc interop (fixtures and builder output)");
    fixtures::run(true)?;

    let libs = library_crates()?;
    let pkgs = package_args(&libs);
    for target in BARE_TARGETS {
        util::ensure_target(&sh, target)?;
        tracing::info!("step: build {} for {target}", libs.join(", "));
        let pkgs = &pkgs;
        cmd!(sh, "cargo build --locked --target {target} {pkgs...}")
            .run()
            .with_context(|| format!("library crates do not build for {target}"))?;
    }
    // Every publishable crate must build from its .crate alone: no path
    // outside the package, no missing file, every dependency versioned.
    let mut published = libs.clone();
    published.extend(PUBLISHED_TOOLS.iter().map(|s| (*s).to_owned()));
    let published = package_args(&published);
    tracing::info!("step: cargo package (each publishable crate builds from its .crate)");
    package(&sh, &published)?;
    tracing::info!("step: each library crate used from its README alone (cargo xtask downstream)");
    crate::downstream::run(&libs)?;
    tracing::info!("step: VM handover tests (every scenario in vm-images/, both arches)");
    vm::test_vm(&vm::TestVmArgs {
        arches: Vec::new(),
        scenarios: Vec::new(),
        accel: vm::qemu::AccelChoice::Auto,
        verbose: false,
        dump_at: None,
        generations: None,
    })?;
    tracing::info!("step: fuzz smoke (every target in fuzz/, {FUZZ_SMOKE_SECONDS} s each)");
    crate::fuzz::run(None, FUZZ_SMOKE_SECONDS, None)?;
    tracing::info!("all tests passed");
    Ok(())
}

/// `cargo package` (and its verification build) of `published` (`-p`
/// arguments) in a target directory of its own.
///
/// cargo verifies crates packaged together through a local registry under
/// the target directory and extracts their sources into
/// `$CARGO_HOME/registry/src/-<hash of that path>`, which it never
/// refreshes while the version (0.1.0) stays the same: a second run would
/// verify the first run's sources. A fresh target directory per run gives a
/// fresh path; the registry entries the run created are removed after it.
fn package(sh: &Shell, published: &[String]) -> Result<()> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let registry: Vec<std::path::PathBuf> = ["src", "cache", "index"]
        .iter()
        .map(|d| home.join("registry").join(d))
        .collect();
    let list = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|e| e.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let before: Vec<std::path::PathBuf> = registry.iter().flat_map(|d| list(d)).collect();
    let target = util::artifacts_dir("package").join(std::process::id().to_string());
    let result = {
        let _env = sh.push_env("CARGO_TARGET_DIR", &target);
        cmd!(sh, "cargo package --locked --allow-dirty {published...}").run()
    };
    let _ = std::fs::remove_dir_all(&target);
    for dir in &registry {
        for path in list(dir) {
            // The local registries are named "-<hash>"; crates.io's are not.
            let local = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('-'));
            if local && !before.contains(&path) {
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    result.context("a publishable crate does not package or does not build from its .crate")
}

/// The cargo-insta release the review workflow is checked with.
const CARGO_INSTA_VERSION: &str = "1.49.0";

/// `cargo insta review` must offer every kind of snapshot: in a copy of the
/// committed tree (the working tree is not touched), a changed VM snapshot
/// and a changed crate snapshot must both be listed by `cargo insta
/// pending-snapshots`. Installs cargo-insta when it is missing.
fn insta_finds_pending_snapshots(sh: &Shell) -> Result<()> {
    if !util::have("cargo-insta") {
        tracing::info!("installing cargo-insta {CARGO_INSTA_VERSION}");
        cmd!(
            sh,
            "cargo install cargo-insta --locked --version {CARGO_INSTA_VERSION}"
        )
        .run()
        .context("installing cargo-insta (`cargo install cargo-insta`)")?;
    }
    let copy = std::env::temp_dir().join(format!("kho-insta-check-{}", std::process::id()));
    let result = (|| -> Result<()> {
        if copy.exists() {
            std::fs::remove_dir_all(&copy)?;
        }
        std::fs::create_dir_all(&copy)?;
        let tree = cmd!(sh, "git archive --format=tar HEAD")
            .quiet()
            .output()
            .context("`git archive HEAD` (the check needs the repository's history)")?
            .stdout;
        cmd!(sh, "tar -x -C {copy}")
            .stdin(tree)
            .quiet()
            .run()
            .context("unpacking the copy")?;
        let changed = [
            "snapshots/vm/basic__x86_64__gen00.snap",
            "crates/kho-fdt/tests/snapshots/render_empty.snap",
        ];
        for snap in changed {
            let path = copy.join(snap);
            let mut text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            text.push_str("a change to review\n");
            std::fs::write(path.with_extension("snap.new"), text)?;
        }
        let copy_sh = sh.clone();
        copy_sh.change_dir(&copy);
        let listed = cmd!(copy_sh, "cargo insta pending-snapshots --as-json")
            .quiet()
            .read()
            .context("cargo insta pending-snapshots")?;
        let missing: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|snap| !listed.lines().any(|l| l.contains(snap)))
            .collect();
        ensure!(
            missing.is_empty(),
            "cargo insta pending-snapshots does not list {} (it printed: {listed})",
            missing.join(", ")
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&copy);
    result
}

/// Fail if insta left snapshots waiting for review.
fn pending_snapshots() -> Result<()> {
    let pending = util::source_files(|n| n.ends_with(".snap.new") || n.ends_with(".pending-snap"))?;
    if !pending.is_empty() {
        bail!(
            "snapshots pending review (run `cargo insta review`): {}",
            pending
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// rustfmt, clippy (host and bare-metal), rustdoc with warnings denied, tidy.
pub(crate) fn lint() -> Result<()> {
    let sh = util::shell()?;
    tracing::info!("step: rustfmt");
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("code is not formatted: run `cargo fmt --all`")?;

    tracing::info!("step: clippy (host, all targets and features)");
    // kho-bench's build script compiles its C harness against libfdt.
    util::ensure_file(&sh, "/usr/include/libfdt.h", "libfdt-dev")?;
    cmd!(
        sh,
        "cargo clippy --locked --workspace --all-targets --all-features -- -D warnings"
    )
    .run()
    .context("clippy found problems")?;

    let libs = library_crates()?;
    let pkgs = package_args(&libs);
    for target in BARE_TARGETS {
        util::ensure_target(&sh, target)?;
        tracing::info!("step: clippy for {target}");
        let pkgs = &pkgs;
        cmd!(
            sh,
            "cargo clippy --locked --target {target} {pkgs...} -- -D warnings"
        )
        .run()
        .with_context(|| format!("clippy found problems for {target}"))?;
    }

    for target in BARE_TARGETS {
        tracing::info!("step: clippy for the boot stub on {target}");
        cmd!(
            sh,
            "cargo clippy --locked --release -p kho-stub --target {target} -- -D warnings"
        )
        .run()
        .with_context(|| format!("clippy found problems in kho-stub for {target}"))?;
    }

    tracing::info!("step: rustdoc");
    {
        let _flags = sh.push_env("RUSTDOCFLAGS", "-D warnings");
        cmd!(
            sh,
            "cargo doc --locked --workspace --no-deps --all-features"
        )
        .run()
        .context("rustdoc found problems")?;
    }

    tracing::info!("step: tidy");
    tidy::run()
}
