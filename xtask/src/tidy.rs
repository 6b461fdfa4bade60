//! `cargo xtask tidy`: repository conventions no compiler checks.

use anyhow::{Result, bail};

use crate::util::project_root;

/// Every Rust source file must open with a `//!` line saying what it is.
pub(crate) fn run() -> Result<()> {
    let root = project_root();
    let files = crate::util::source_files(|n| n.ends_with(".rs"))?;
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
