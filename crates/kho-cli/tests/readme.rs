//! The README's examples are commands that run: every `console` block in
//! crates/kho-cli/README.md is run line by line (`$ ` lines, by `sh -c`,
//! with this build's `kho` first on PATH) in a directory holding the files
//! it names, and must print exactly what the README shows.
//!
//! - `guest.raw`: a raw dump (RAM at 0x40000000) of kho-inspect's test
//!   fixture with one radix entry corrupted (misaligned);
//! - `kho-v4.dtb`: kho-fdt's dtc-made fixture of a kho-v4 root FDT in
//!   Linux's layout.
//!
//! The `dtc` the README pipes into must be on PATH (device-tree-compiler).

use std::path::{Path, PathBuf};
use std::process::Command;

use kho_inspect::test_util::fixture;

/// The README's console blocks as (command, expected stdout) pairs.
fn examples(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        if line.starts_with("```console") {
            in_block = true;
        } else if line.starts_with("```") {
            in_block = false;
        } else if in_block {
            match line.strip_prefix("$ ") {
                Some(command) => out.push((command.to_owned(), String::new())),
                None => {
                    let (_, expected) = out
                        .last_mut()
                        .unwrap_or_else(|| panic!("output before a command: {line}"));
                    expected.push_str(line);
                    expected.push('\n');
                }
            }
        }
    }
    out
}

fn setup() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = fixture::build();
    f.corrupt_misaligned_entry();
    std::fs::write(dir.join("guest.raw"), f.ram()).unwrap();
    let fdt =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kho-fdt/tests/dtb/kho-v4-linux-order.dtb");
    std::fs::copy(fdt, dir.join("kho-v4.dtb")).unwrap();
    dir
}

#[test]
fn the_readme_examples_print_what_the_readme_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let examples = examples(&readme);
    assert!(examples.len() >= 3, "{examples:?}");
    let dir = setup();
    let kho = Path::new(env!("CARGO_BIN_EXE_kho"));
    let path = std::env::join_paths(std::iter::once(kho.parent().unwrap().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    for (command, expected) in examples {
        let out = Command::new("sh")
            .args(["-c", &command])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got == expected,
            "`{command}` printed\n{got}\nthe README shows\n{expected}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
