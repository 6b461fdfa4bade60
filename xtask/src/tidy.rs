//! `cargo xtask tidy`: repository conventions no compiler checks.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::util::project_root;

/// Every Rust source file must open with a `//!` line saying what it is.
pub(crate) fn run() -> Result<()> {
    let root = project_root();
    let mut files = Vec::new();
    collect_rs(&root, &mut files)?;
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            bad.push(
                file.strip_prefix(&root)
                    .unwrap_or(file)
                    .display()
                    .to_string(),
            );
        }
    }
    if !bad.is_empty() {
        bail!(
            "files that do not open with a `//!` line: {}",
            bad.join(", ")
        );
    }
    tracing::info!("tidy: {} Rust files open with a //! line", files.len());
    Ok(())
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rs(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}
