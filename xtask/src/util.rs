//! Shared helpers of the xtask: project root, shells, tool installation, logging.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A shell whose working directory is the workspace root.
pub(crate) fn shell() -> Result<Shell> {
    let sh = Shell::new().context("creating a shell")?;
    sh.change_dir(project_root());
    Ok(sh)
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Where xtask writes its artifacts (never into the source tree).
pub(crate) fn artifacts_dir(sub: &str) -> PathBuf {
    target_dir().join("kho").join(sub)
}

/// Log to stderr; `RUST_LOG` overrides the default `info` level.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal, and never with NO_COLOR set (no-color.org):
    // logs and CI output stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Whether `program` is on PATH.
pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Make sure `program` is installed: install `package` with apt-get when we
/// are root on a Debian-like system, otherwise fail naming the package.
pub(crate) fn ensure_tool(sh: &Shell, program: &str, package: &str) -> Result<()> {
    if have(program) {
        return Ok(());
    }
    install_package(sh, package, &format!("`{program}` is not installed"))?;
    if !have(program) {
        bail!("installed {package} but `{program}` is still not on PATH");
    }
    Ok(())
}

/// Make sure `path` (a header or library a build script needs) exists:
/// install `package` as [`ensure_tool`] does.
pub(crate) fn ensure_file(sh: &Shell, path: &str, package: &str) -> Result<()> {
    if std::path::Path::new(path).exists() {
        return Ok(());
    }
    install_package(sh, package, &format!("{path} is missing"))?;
    if !std::path::Path::new(path).exists() {
        bail!("installed {package} but {path} is still missing");
    }
    Ok(())
}

/// Install the Debian package `package` (root with apt-get), or fail with
/// `why` and the package to install.
pub(crate) fn install_package(sh: &Shell, package: &str, why: &str) -> Result<()> {
    let root = cmd!(sh, "id -u")
        .quiet()
        .read()
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    if !root || !have("apt-get") {
        bail!("{why}: install the Debian package `{package}` (or your distribution's equivalent)");
    }
    tracing::info!("installing {package} ({why})");
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -qq")
        .run()
        .context("apt-get update")?;
    cmd!(
        sh,
        "apt-get install -y -qq --no-install-recommends {package}"
    )
    .run()
    .with_context(|| format!("installing {package}"))?;
    Ok(())
}

/// Make sure the active toolchain (rust-toolchain.toml's) has the
/// standard library for `target`: rustup installs a toolchain file's targets
/// only with the toolchain itself, not into a toolchain that is already
/// there, and `RUSTUP_AUTO_INSTALL=0` turns off installing on first use.
pub(crate) fn ensure_target(sh: &Shell, target: &str) -> Result<()> {
    if !have("rustup") {
        // Not a rustup toolchain: cargo will say what is missing.
        return Ok(());
    }
    let installed = cmd!(sh, "rustup target list --installed")
        .quiet()
        .read()
        .context("running `rustup target list --installed`")?;
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    tracing::info!("installing the Rust target {target} (rustup target add)");
    cmd!(sh, "rustup target add {target}")
        .run()
        .with_context(|| {
            format!("installing the Rust target {target}: run `rustup target add {target}`")
        })
}

/// Files under the workspace root (skipping `target/` and hidden
/// directories) whose name satisfies `wanted`, in no particular order.
pub(crate) fn source_files(wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let root = project_root();
    let walk = walkdir::WalkDir::new(&root).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0 || !(e.file_type().is_dir() && (name == "target" || name.starts_with('.')))
    });
    let mut found = Vec::new();
    for entry in walk {
        let entry = entry.with_context(|| format!("walking {}", root.display()))?;
        if entry.file_type().is_file() && wanted(&entry.file_name().to_string_lossy()) {
            found.push(entry.into_path());
        }
    }
    Ok(found)
}
