//! `kho inspect` as users run it: exit status, JSON and text
//! output, named problems, one-line errors on unusable input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kho_inspect::test_util::fixture::{self, BASE, Fixture};
use serde_json::Value;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-inspect-cli-{}-{name}", std::process::id()));
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

/// Write `f` as a raw image and inspect it from `start` (`--x86-boot-params`, …).
fn inspect_raw(f: &Fixture, dir: &Path, start: &str, addr: u64, json: bool) -> Output {
    let path = dir.join("guest.raw");
    std::fs::write(&path, f.ram()).unwrap();
    let (memory, base, addr) = (
        path.display().to_string(),
        format!("{BASE:#x}"),
        format!("{addr:#x}"),
    );
    let mut args = vec!["--memory", &memory, "--base", &base, start, &addr];
    if json {
        args.push("--json");
    }
    inspect(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codes(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_sound_raw_image_exits_0_and_its_json_is_the_preserved_set() {
    let f = fixture::build();
    let dir = scratch_dir("sound");
    let out = inspect_raw(&f, &dir, "--x86-boot-params", f.boot_params, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["schema"], "kho-inspect/1");
    assert_eq!(v["abi_version"], "kho-v2");
    assert_eq!(v["start"]["kind"], "x86-boot-params");
    assert_eq!(v["image"]["format"], "raw");
    assert_eq!(codes(&v), Vec::<String>::new());
    let runs: Vec<(u32, u64, u64)> = v["preserved"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (n("order") as u32, n("addr"), n("blocks"))
        })
        .collect();
    assert_eq!(runs, f.runs);
    assert_eq!(v["preserved"]["radix"]["tables"], f.nodes.0);
    assert_eq!(v["preserved"]["radix"]["leaves"], f.nodes.1);
    assert_eq!(v["subtrees"][1]["content"]["format"], "kho-stub");
    assert_eq!(v["subtrees"][1]["content"]["vmalloc"]["total_pages"], 5);
    assert_eq!(v["subtrees"][2]["content"]["kexec_count"], 2);

    let out = inspect_raw(&f, &dir, "--dtb", f.dtb, false);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    // The verdict first.
    assert!(
        text.starts_with(&format!(
            "verdict: sound: kho-v2 handover, {} runs",
            f.runs.len()
        )),
        "{text}"
    );
    for want in [
        "ABI version: kho-v2",
        "scratch areas (2):",
        "problems: none",
        "reserve_mem \"kho_log\"",
        "kexec-metadata v1, previous release \"fixture-6.19\", kexec count 2",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    let out = inspect_raw(&f, &dir, "--fdt", f.fdt, false);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("scratch: unknown (give --x86-boot-params or --dtb)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A corruption: its name, how to apply it, the problem code it must produce.
type Case = (&'static str, fn(&mut Fixture), &'static str);

#[test]
fn each_corruption_is_its_named_error_and_exit_1() {
    let cases: [Case; 5] = [
        ("cycle", Fixture::corrupt_cycle, "radix-cycle"),
        (
            "outside",
            Fixture::corrupt_entry_outside_image,
            "radix-entry-outside-image",
        ),
        (
            "misaligned",
            Fixture::corrupt_misaligned_entry,
            "radix-misaligned-entry",
        ),
        ("compatible", Fixture::corrupt_compatible, "fdt-compatible"),
        (
            "scratch",
            Fixture::corrupt_scratch_over_preserved,
            "preserved-in-scratch",
        ),
    ];
    for (name, corrupt, code) in cases {
        let mut f = fixture::build();
        corrupt(&mut f);
        let dir = scratch_dir(name);
        let out = inspect_raw(&f, &dir, "--x86-boot-params", f.boot_params, true);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let v = json(&out);
        assert!(
            codes(&v).iter().any(|c| c == code),
            "{name}: {:?}",
            codes(&v)
        );
        // Every location is an object with its kind; `follows` is the
        // index of an earlier cause, or null.
        let problems = v["problems"].as_array().unwrap();
        for (i, p) in problems.iter().enumerate() {
            assert!(p["location"]["kind"].is_string(), "{name}: {p}");
            match &p["follows"] {
                Value::Null => {}
                Value::Number(n) => {
                    let cause = n.as_u64().unwrap() as usize;
                    assert!(cause < i, "{name}: {p}");
                    assert!(problems[cause]["follows"].is_null(), "{name}: {p}");
                }
                other => panic!("{name}: follows {other}"),
            }
        }
        // The cause first.
        assert!(problems[0]["follows"].is_null());
        if code.starts_with("radix-") {
            assert_eq!(problems[0]["code"], code, "{name}");
            assert_eq!(problems[0]["location"]["kind"], "radix-entry", "{name}");
            assert_eq!(problems[0]["location"]["level"], 4, "{name}");
        }

        let out = inspect_raw(&f, &dir, "--x86-boot-params", f.boot_params, false);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let text = stdout(&out);
        // The verdict names the first cause; everything decodable is
        // printed after the problems with their places.
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with("verdict: "), "{name}: {text}");
        assert!(first.contains(&format!(" {code} at ")), "{name}: {first}");
        assert!(
            text.contains("ABI version") || code == "fdt-compatible",
            "{text}"
        );
        assert!(text.contains(&format!("\n  {code} at ")), "{name}: {text}");
        assert!(out.stderr.is_empty(), "{name}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn unusable_input_is_one_line_and_exit_1() {
    let dir = scratch_dir("unusable");
    let missing = dir.join("missing.elf").display().to_string();
    let out = inspect(&["--memory", &missing, "--fdt", "0x1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: opening "), "{err}");

    let raw = dir.join("raw.bin");
    std::fs::write(&raw, [0u8; 4096]).unwrap();
    let raw = raw.display().to_string();
    let out = inspect(&["--memory", &raw, "--fdt", "0x1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("give --base ADDR"), "{err}");
    assert!(out.stdout.is_empty());

    // A start point outside the image is a structural problem, reported.
    let out = inspect(&["--memory", &raw, "--base", "0", "--fdt", "0x100000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("fdt-outside-image at root FDT at 0x100000"));

    // Exactly one start point; addresses are checked by the parser.
    let out = inspect(&["--memory", &raw, "--fdt", "0x1000", "--dtb", "0x2000"]);
    assert_eq!(out.status.code(), Some(2));
    let out = inspect(&["--memory", &raw]);
    assert_eq!(out.status.code(), Some(2));
    let out = inspect(&["--memory", &raw, "--fdt", "0xzz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an address"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The budget flags reach the decoder: a bound the handover exceeds is a
/// `budget-exceeded` problem (exit 1) naming it, and a bad count is a
/// usage error.
#[test]
fn the_budget_flags_bound_the_decoder() {
    let f = fixture::build();
    let dir = scratch_dir("budget");
    let path = dir.join("guest.raw");
    std::fs::write(&path, f.ram()).unwrap();
    let (memory, base, fdt) = (
        path.display().to_string(),
        format!("{BASE:#x}"),
        format!("{:#x}", f.fdt),
    );
    let args = ["--memory", &memory, "--base", &base, "--fdt", &fdt];
    let out = inspect(&[&args[..], &["--max-runs", "2", "--json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(codes(&v), ["budget-exceeded"]);
    assert_eq!(v["preserved"]["runs"].as_array().unwrap().len(), 2);
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("more than 2 runs (the `runs` limit)")
    );

    let out = inspect(&[&args[..], &["--max-bytes", "4K"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("budget-exceeded at the image: "));

    let out = inspect(&[&args[..], &["--max-nodes", "lots"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a count"));

    // `--max-fdt-bytes` bounds only a 2024-design tree (kho-inspect's
    // tests/rfc2024.rs exceeds it): a kho-v2 handover decodes as before.
    let out = inspect(&[&args[..], &["--max-fdt-bytes", "4K"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = inspect(&[&args[..], &["--max-fdt-bytes", "lots"]].concat());
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A preserved set of thousands of runs: the text lists the first 16 and
/// counts the rest, `--verbose` lists every one, `--json` always does.
#[test]
fn long_lists_are_cut_unless_verbose() {
    let dir = scratch_dir("long");
    let path = dir.join("bomb.elf");
    std::fs::write(&path, kho_inspect::test_util::bomb(1)).unwrap();
    let memory = path.display().to_string();
    let args = ["--memory", memory.as_str(), "--fdt", "0x1000"];
    let run_lines = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("      0  0x"))
            .count()
    };
    let out = inspect(&args);
    let text = stdout(&out);
    assert_eq!(run_lines(&text), 16, "{text}");
    assert!(
        text.contains("\n  … and 16368 more runs (--verbose lists them all)\n"),
        "{text}"
    );
    let out = inspect(&[&args[..], &["--verbose"]].concat());
    assert_eq!(run_lines(&stdout(&out)), 16384);
    let out = inspect(&[&args[..], &["--json"]].concat());
    assert_eq!(
        json(&out)["preserved"]["runs"].as_array().unwrap().len(),
        16384
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
