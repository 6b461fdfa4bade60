//! Expected reasons of a scenario: `*` patterns matched against the whole
//! reason the stub prints, one for every arch or one per arch.
//!
//! A scenario states the exact reason a generation must report (the fault
//! matrix of docs/HANDOVER.md); `*` stands for the parts that are addresses
//! or offsets, and a table (`reason = { x86_64 = "…", aarch64 = "…" }`)
//! covers reasons that differ per arch in more than addresses.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Result, ensure};
use serde::Deserialize;

use super::arch::ArchSpec;

/// `reason` as written in a scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a reason pattern or a table of one pattern per arch"
)]
pub(crate) enum ReasonFile {
    /// The same pattern on every arch.
    One(String),
    /// `{ x86_64 = "…", aarch64 = "…" }`.
    PerArch(BTreeMap<String, String>),
}

/// A validated expected reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// One pattern for every arch.
    One(String),
    /// (arch, pattern), one for every arch of the scenario, in file order.
    PerArch(Vec<(String, String)>),
}

impl Reason {
    /// Validate `file` for a scenario that runs on `arches`.
    pub(crate) fn from_file(file: ReasonFile, arches: &[String]) -> Result<Reason> {
        match file {
            ReasonFile::One(pattern) => {
                check_pattern(&pattern)?;
                Ok(Reason::One(pattern))
            }
            ReasonFile::PerArch(table) => {
                for (arch, pattern) in &table {
                    ensure!(
                        ArchSpec::find(arch).is_some(),
                        "reason for unknown arch `{arch}` (known: {})",
                        ArchSpec::names()
                    );
                    ensure!(
                        arches.contains(arch),
                        "reason for `{arch}`, which the scenario's arches do not list"
                    );
                    check_pattern(pattern).map_err(|e| e.context(format!("reason.{arch}")))?;
                }
                let mut per_arch = Vec::new();
                for arch in arches {
                    let pattern = table.get(arch).ok_or_else(|| {
                        anyhow::anyhow!("the reason table has no pattern for `{arch}`")
                    })?;
                    per_arch.push((arch.clone(), pattern.clone()));
                }
                Ok(Reason::PerArch(per_arch))
            }
        }
    }

    /// The pattern for `arch` (`None`: the scenario does not run there).
    pub(crate) fn pattern(&self, arch: &str) -> Option<&str> {
        match self {
            Reason::One(p) => Some(p),
            Reason::PerArch(table) => table
                .iter()
                .find(|(a, _)| a == arch)
                .map(|(_, p)| p.as_str()),
        }
    }

    /// `the pattern "…"` for `arch`, for messages.
    pub(crate) fn describe(&self, arch: &str) -> String {
        match self.pattern(arch) {
            Some(p) => format!("the pattern {p:?}"),
            None => format!("any pattern (the scenario gives none for {arch})"),
        }
    }

    /// Whether `reason`, as printed on `arch`, is the expected one.
    pub(crate) fn matches(&self, arch: &str, reason: &str) -> bool {
        self.pattern(arch).is_some_and(|p| glob_match(p, reason))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::One(p) => write!(f, "{p:?}"),
            Reason::PerArch(table) => {
                let parts: Vec<String> = table.iter().map(|(a, p)| format!("{a}: {p:?}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

/// A pattern must say something and cannot contain what the stub never prints.
fn check_pattern(pattern: &str) -> Result<()> {
    ensure!(
        pattern.chars().any(|c| c != '*' && !c.is_whitespace()),
        "a reason pattern must contain more than `*` and spaces"
    );
    ensure!(
        !pattern.contains(['"', '\n', '\r']),
        "a reason pattern cannot contain quotes or line breaks (the stub never prints them in reason=\"…\")"
    );
    Ok(())
}

/// Whether `text` matches `pattern` as a whole, where `*` matches any run of
/// characters (also none), `?` any one character, and every other
/// character only itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arches(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn glob_matches_whole_text() {
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("abc", "xabc"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a*c", "ac"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*b*", "abc"));
        assert!(!glob_match("*b*", "ac"));
        assert!(glob_match(
            "level 4 table 0x* entry 2 (0x*) points back",
            "level 4 table 0x580000 entry 2 (0x571000) points back"
        ));
        // The last piece must not reuse text a middle piece consumed.
        assert!(!glob_match("a*bc*c", "abc"));
        assert!(glob_match("a*bc*c", "abcc"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn one_pattern_for_every_arch() {
        let r = Reason::from_file(ReasonFile::One("x *".into()), &arches(&["x86_64"])).unwrap();
        assert!(r.matches("x86_64", "x 1"));
        assert!(r.matches("aarch64", "x 2"));
        assert!(!r.matches("x86_64", "y 1"));
        assert_eq!(r.to_string(), "\"x *\"");
        assert_eq!(r.describe("x86_64"), "the pattern \"x *\"");
    }

    #[test]
    fn per_arch_patterns() {
        let table: BTreeMap<String, String> = [("x86_64", "setup_data*"), ("aarch64", "/chosen*")]
            .iter()
            .map(|(a, p)| ((*a).to_owned(), (*p).to_owned()))
            .collect();
        let both = arches(&["x86_64", "aarch64"]);
        let r = Reason::from_file(ReasonFile::PerArch(table.clone()), &both).unwrap();
        assert!(r.matches("x86_64", "setup_data at 0x1: bad"));
        assert!(!r.matches("aarch64", "setup_data at 0x1: bad"));
        assert!(r.matches("aarch64", "/chosen: bad"));
        assert_eq!(r.describe("aarch64"), "the pattern \"/chosen*\"");
        assert_eq!(
            r.to_string(),
            "{x86_64: \"setup_data*\", aarch64: \"/chosen*\"}"
        );

        let e = Reason::from_file(ReasonFile::PerArch(table.clone()), &arches(&["x86_64"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("scenario's arches do not list"), "{e}");
        let mut short = table.clone();
        short.remove("aarch64");
        let e = Reason::from_file(ReasonFile::PerArch(short), &both)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no pattern for `aarch64`"), "{e}");
        let mut odd = table;
        odd.insert("riscv".into(), "x".into());
        let e = Reason::from_file(ReasonFile::PerArch(odd), &both)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown arch `riscv`"), "{e}");
    }

    #[test]
    fn empty_and_quoted_patterns_are_rejected() {
        let one = arches(&["x86_64"]);
        for bad in ["", "*", " * ", "a\"b"] {
            assert!(
                Reason::from_file(ReasonFile::One(bad.into()), &one).is_err(),
                "{bad:?}"
            );
        }
    }
}
