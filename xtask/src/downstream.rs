//! `cargo xtask downstream`: every library crate used from its README alone.
//!
//! A README's doctest compiles with the crate's own dev-dependencies, so it
//! cannot catch a `[dependencies]` block that forgets a crate or a feature
//! the example needs. This check does what a new user does: for each
//! library crate, a fresh project outside the workspace whose
//! `Cargo.toml` is the README's `toml` block verbatim and whose `main.rs`
//! is the README's `rust` example (wrapped as rustdoc wraps it), built and
//! run. The workspace's crates stand in for the unpublished crates.io ones
//! through `[patch.crates-io]`; the workspace's `Cargo.lock` pins every
//! other version.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use xshell::cmd;

use crate::util::{self, project_root};

/// The README's fenced blocks of `lang` (the text between the fences).
fn blocks<'a>(readme: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find(&open) {
        let body = &rest[at + open.len()..];
        let Some(end) = body.find("```") else { break };
        out.push(&body[..end]);
        rest = &body[end..];
    }
    out
}

/// A rustdoc example as a program: hidden `# ` lines shown, and, unless it
/// has its own `fn main`, the body wrapped in one (returning the example's
/// `Ok::<(), E>(())` when it ends with one, as rustdoc does).
fn program(example: &str) -> String {
    let code: Vec<&str> = example
        .lines()
        .map(|l| {
            if l == "#" {
                ""
            } else {
                l.strip_prefix("# ").unwrap_or(l)
            }
        })
        .collect();
    let code = code.join("\n");
    if code.contains("fn main") {
        return code;
    }
    let returns = code
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with("Ok::<"));
    if returns {
        format!(
            "fn main() {{\n    let result = (|| {{\n{code}\n    }})();\n    if let Err(e) = result {{\n        panic!(\"the README example failed: {{e}}\");\n    }}\n}}\n"
        )
    } else {
        format!("fn main() {{\n{code}\n}}\n")
    }
}

/// The downstream project of `krate` in `dir`.
fn write_project(dir: &Path, krate: &str, readme: &str, patches: &[String]) -> Result<()> {
    let tomls = blocks(readme, "toml");
    let [deps] = tomls.as_slice() else {
        bail!(
            "crates/{krate}/README.md must have exactly one ```toml block (the [dependencies] a user copies), it has {}",
            tomls.len()
        );
    };
    ensure!(
        deps.contains("[dependencies]"),
        "crates/{krate}/README.md: its ```toml block has no [dependencies]"
    );
    let examples = blocks(readme, "rust");
    let Some(example) = examples.first() else {
        bail!("crates/{krate}/README.md has no ```rust example");
    };
    let root = project_root();
    let mut manifest = format!(
        "[package]\nname = \"downstream-of-{krate}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n{deps}\n[patch.crates-io]\n"
    );
    for p in patches {
        manifest.push_str(&format!(
            "{p} = {{ path = \"{}\" }}\n",
            root.join("crates").join(p).display()
        ));
    }
    // Not part of any enclosing workspace.
    manifest.push_str("\n[workspace]\n");
    fs::create_dir_all(dir.join("src"))?;
    fs::write(dir.join("Cargo.toml"), manifest)?;
    fs::write(dir.join("src").join("main.rs"), program(example))?;
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    Ok(())
}

/// Build and run each library crate's README as a downstream project; every
/// crate is tried, and the failures are listed together.
pub(crate) fn run(crates: &[String]) -> Result<()> {
    let sh = util::shell()?;
    let base: PathBuf = util::artifacts_dir("downstream");
    let target = base.join("target");
    let _env = sh.push_env("CARGO_TARGET_DIR", &target);
    // A warning in a README example (an unused result, say) is a defect a
    // user would copy.
    let _flags = sh.push_env("RUSTFLAGS", "-D warnings");
    let mut failed = Vec::new();
    for krate in crates {
        let readme_path = project_root().join("crates").join(krate).join("README.md");
        let readme = fs::read_to_string(&readme_path)
            .with_context(|| format!("reading {}", readme_path.display()))?;
        let dir = base.join(krate);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        if let Err(e) = write_project(&dir, krate, &readme, crates) {
            failed.push(format!("{e:#}"));
            continue;
        }
        tracing::info!("downstream: {krate} from its README");
        let manifest = dir.join("Cargo.toml");
        if cmd!(sh, "cargo run --quiet --manifest-path {manifest}")
            .run()
            .is_err()
        {
            failed.push(format!(
                "a project made from crates/{krate}/README.md alone does not build or its example fails ({}; the errors are above)",
                dir.display()
            ));
        }
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_programs() {
        let readme = "x\n```toml\n[dependencies]\na = \"1\"\n```\n```rust\nuse a::B;\nlet b = B;\n# Ok::<(), Box<dyn std::error::Error>>(())\n```\n```rust\nfn main() {}\n```\n";
        assert_eq!(blocks(readme, "toml"), ["[dependencies]\na = \"1\"\n"]);
        let rust = blocks(readme, "rust");
        assert_eq!(rust.len(), 2);
        let p = program(rust[0]);
        assert!(p.starts_with("fn main() {\n    let result = (|| {\nuse a::B;"));
        assert!(p.contains("\nOk::<(), Box<dyn std::error::Error>>(())\n"));
        assert_eq!(program(rust[1]), "fn main() {}");
        assert_eq!(
            program("let x = 1;\n#\nassert_eq!(x, 1);"),
            "fn main() {\nlet x = 1;\n\nassert_eq!(x, 1);\n}\n"
        );
    }
}
