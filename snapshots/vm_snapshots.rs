//! Host test of `snapshots/vm/` (an xtask test target, see xtask/Cargo.toml):
//! every VM snapshot belongs to a scenario that exists, on an arch and a
//! generation it runs, and has the header insta and the review tools read.
//!
//! `cargo xtask test-vm` asserts these snapshots under QEMU and, after a
//! full run, names the ones no run produced; this test catches a renamed or
//! shrunk scenario that left snapshots behind in every `cargo test`, without
//! QEMU. It lives in this directory for a second reason: cargo-insta looks
//! for pending `.snap.new` files only in the directories of a package's
//! manifest and targets, so this target makes `cargo insta review` (and
//! `pending-snapshots`, `accept`) find the VM snapshots.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a snapshot's name may claim of its scenario.
struct Scenario {
    arches: Vec<String>,
    /// `None`: a Linux-only flow, no stub generation to snapshot.
    generations: Option<i64>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn scenarios() -> BTreeMap<String, Scenario> {
    let dir = root().join("vm-images");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&dir).expect("vm-images/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap();
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: not TOML: {e}", path.display()));
        let arches = table
            .get("arches")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let generations = table.get("generations").and_then(|g| g.as_integer());
        out.insert(
            name,
            Scenario {
                arches,
                generations,
            },
        );
    }
    out
}

/// The header's `key: value` lines, between the two `---` lines.
fn header(text: &str) -> Option<BTreeMap<&str, &str>> {
    let mut lines = text.lines();
    if lines.next()? != "---" {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in lines {
        if line == "---" {
            return Some(out);
        }
        let (key, value) = line.split_once(": ")?;
        out.insert(key, value);
    }
    None
}

/// Why snapshot `file` (its name and text) does not belong, if it does not.
fn check(file: &str, text: &str, scenarios: &BTreeMap<String, Scenario>) -> Option<String> {
    let stem = file.strip_suffix(".snap")?;
    let mut parts = stem.split("__");
    let (Some(name), Some(arch), Some(what), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some("not named <scenario>__<arch>__<genNN|protocol>.snap".into());
    };
    let Some(s) = scenarios.get(name) else {
        return Some(format!("no scenario vm-images/{name}.toml"));
    };
    if !s.arches.iter().any(|a| a == arch) {
        return Some(format!("{name} does not run on {arch}"));
    }
    if what != "protocol" {
        let g: i64 = match what.strip_prefix("gen").map(str::parse) {
            Some(Ok(g)) => g,
            _ => return Some(format!("`{what}` is neither genNN nor protocol")),
        };
        match s.generations {
            Some(n) if g < n => {}
            Some(n) => return Some(format!("{name} runs {n} generations, not {}", g + 1)),
            None => return Some(format!("{name} runs no stub generation")),
        }
    }
    let Some(h) = header(text) else {
        return Some("no insta header (--- … ---)".into());
    };
    let want = format!("vm-images/{name}.toml");
    if h.get("input_file") != Some(&want.as_str()) {
        return Some(format!("input_file is not {want}"));
    }
    if h.get("source") != Some(&"xtask/src/vm/snapshot.rs") {
        return Some("source is not xtask/src/vm/snapshot.rs".into());
    }
    None
}

#[test]
fn every_vm_snapshot_belongs_to_a_scenario() {
    let scenarios = scenarios();
    assert!(scenarios.contains_key("basic"), "vm-images/basic.toml");
    let dir = root().join("snapshots").join("vm");
    let mut checked = 0;
    let mut problems = Vec::new();
    for entry in fs::read_dir(&dir).expect("snapshots/vm/ is readable") {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".snap") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        checked += 1;
        if let Some(why) = check(&file, &text, &scenarios) {
            problems.push(format!("snapshots/vm/{file}: {why}"));
        }
    }
    assert!(checked > 100, "only {checked} VM snapshots found");
    assert!(
        problems.is_empty(),
        "stale or malformed VM snapshots (delete or regenerate them with `cargo xtask test-vm`):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_names_each_defect() {
    let mut scenarios = BTreeMap::new();
    scenarios.insert(
        "s".to_owned(),
        Scenario {
            arches: vec!["x86_64".into()],
            generations: Some(3),
        },
    );
    scenarios.insert(
        "linux".to_owned(),
        Scenario {
            arches: vec!["x86_64".into()],
            generations: None,
        },
    );
    let head = |input: &str| {
        format!("---\nsource: xtask/src/vm/snapshot.rs\ninput_file: {input}\n---\nbody\n")
    };
    let ok = head("vm-images/s.toml");
    let why = |file: &str, text: &str| check(file, text, &scenarios);
    assert_eq!(why("s__x86_64__gen02.snap", &ok), None);
    assert_eq!(why("s__x86_64__protocol.snap", &ok), None);
    let cases = [
        ("s__x86_64__gen03.snap", ok.clone(), "runs 3 generations"),
        ("t__x86_64__gen00.snap", ok.clone(), "no scenario"),
        (
            "s__aarch64__gen00.snap",
            ok.clone(),
            "does not run on aarch64",
        ),
        ("s__x86_64__genXX.snap", ok.clone(), "neither genNN"),
        ("s__x86_64.snap", ok.clone(), "not named"),
        (
            "linux__x86_64__gen00.snap",
            ok.clone(),
            "no stub generation",
        ),
        ("s__x86_64__gen00.snap", "body\n".into(), "no insta header"),
        (
            "s__x86_64__gen00.snap",
            head("vm-images/t.toml"),
            "input_file",
        ),
    ];
    for (file, text, want) in cases {
        let got = why(file, &text).unwrap_or_default();
        assert!(got.contains(want), "{file}: `{got}` lacks `{want}`");
    }
}
