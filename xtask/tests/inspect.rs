//! `cargo xtask inspect` and `cargo xtask fdt-dump` delegate to kho-cli:
//! the same output and exit status as `kho inspect` and `kho fdt-dump`
//! (whose own tests, in crates/kho-cli/tests, cover the commands).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kho_inspect::Start;
use kho_inspect::test_util::{RAM_BASE, RAM_SIZE, handover};
use kho_mem::{PhysAddr, PhysMem};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-xtask-delegation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn inspect_prints_what_kho_inspect_prints() {
    let h = handover();
    let mut ram = vec![0u8; RAM_SIZE as usize];
    h.mem.read(PhysAddr::new(RAM_BASE), &mut ram).unwrap();
    let dir = scratch_dir();
    let raw = dir.join("guest.raw");
    std::fs::write(&raw, &ram).unwrap();
    let (memory, base, dtb) = (
        raw.display().to_string(),
        format!("{RAM_BASE:#x}"),
        format!("{:#x}", h.dtb),
    );

    let out = xtask(&[
        "inspect", "--memory", &memory, "--base", &base, "--dtb", &dtb,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let decoded = kho_cli::inspect::inspect_file(&raw, Some(RAM_BASE), Start::Dtb(h.dtb)).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        kho_inspect::text::render_with(&decoded, kho_inspect::text::Lists::SHORT)
    );

    // A problem is exit 1, unusable input one `error:` line.
    let out = xtask(&[
        "inspect", "--memory", &memory, "--base", &base, "--fdt", "0x1000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = xtask(&["inspect", "--memory", &memory, "--fdt", "0x1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("give --base ADDR"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fdt_dump_prints_what_kho_fdt_dump_prints() {
    let blob = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/kho-fdt/tests/dtb/kho-v4-linux-order.dtb");
    let out = xtask(&["fdt-dump", &blob.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bytes = std::fs::read(&blob).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        kho_inspect::fdt_dump::render(&bytes, false).unwrap()
    );
    let out = xtask(&["fdt-dump", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}
