//! `kho inspect --find` as users run it: the candidates and the
//! decoded handover as text and JSON, exit status, the one-line reason
//! when nothing is found, and the start-point options it excludes.

use std::path::PathBuf;
use std::process::{Command, Output};

use kho_inspect::test_util::fixture::{self, BASE};
use serde_json::Value;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-find-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kho"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn find_names_the_candidates_and_decodes_the_named_fdt() {
    let f = fixture::build();
    let dir = scratch_dir("found");
    let path = dir.join("guest.raw");
    std::fs::write(&path, f.ram()).unwrap();
    let (memory, base) = (path.display().to_string(), format!("{BASE:#x}"));
    let entry = f.setup_data_entry();

    let out = inspect(&["--memory", &memory, "--base", &base, "--find"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "verdict: sound: 1 handover found and decoded, no problem\nproblems of the scan: none\n"
        ),
        "{text}"
    );
    for want in [
        format!("root KHO FDT at {:#x}: kho-v2", f.fdt),
        format!("x86 setup_data KHO entry at {entry:#x}"),
        format!("boot DTB at {:#x}", f.dtb),
        format!(
            "=== decoded: the root FDT at {:#x}, named by the x86 setup_data KHO entry at {entry:#x} (and 1 more) ===",
            f.fdt
        ),
        format!("start: x86 setup_data KHO entry at {entry:#x} (found by --find)"),
        "scratch areas (2):".to_owned(),
        "problems of the scan: none".to_owned(),
        "\nproblems: none\n".to_owned(),
    ] {
        assert!(text.contains(&want), "{want:?} in\n{text}");
    }

    let out = inspect(&["--memory", &memory, "--base", &base, "--find", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "kho-inspect/1");
    let kinds: Vec<&str> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["root-fdt", "x86-setup-data", "dtb"]);
    assert_eq!(v["candidates"][0]["abi_version"], "kho-v2");
    assert_eq!(v["candidates"][0]["addr"], f.fdt);
    assert_eq!(v["candidates"][1]["handover"]["scratch"], f.scratch_array.0);
    assert_eq!(v["scan"]["bytes"], fixture::SIZE);
    let decoded = v["decoded"].as_array().unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0]["start"]["kind"], "x86-setup-data");
    assert_eq!(decoded[0]["start"]["addr"], entry);
    assert_eq!(decoded[0]["abi_version"], "kho-v2");
    assert_eq!(decoded[0]["problems"], Value::Array(vec![]));
    assert_eq!(
        decoded[0]["preserved"]["runs"].as_array().unwrap().len(),
        f.runs.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_problem_in_the_found_handover_is_exit_1() {
    let mut f = fixture::build();
    f.corrupt_cycle();
    let dir = scratch_dir("problem");
    let path = dir.join("guest.raw");
    std::fs::write(&path, f.ram()).unwrap();
    let (memory, base) = (path.display().to_string(), format!("{BASE:#x}"));
    let out = inspect(&["--memory", &memory, "--base", &base, "--find"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("\n  radix-cycle at "),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).starts_with("verdict: "), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .lines()
            .next()
            .unwrap()
            .contains("; first cause: radix-cycle at radix level 4 table"),
        "{}",
        stdout(&out)
    );
    assert!(out.stderr.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_found_is_one_line_and_exit_1() {
    let dir = scratch_dir("nothing");
    let raw = dir.join("zero.raw");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let raw = raw.display().to_string();
    for json in [false, true] {
        let mut args = vec!["--memory", raw.as_str(), "--base", "0x40000000", "--find"];
        if json {
            args.push("--json");
        }
        let out = inspect(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains("no KHO handover found in 0x100000 bytes of RAM (1 range)"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }

    // Unusable input is the same one line as without --find.
    let out = inspect(&["--memory", &raw, "--find"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give --base ADDR"));

    // --find is a start point: exactly one of them.
    let out = inspect(&["--memory", &raw, "--base", "0", "--find", "--fdt", "0x1000"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
