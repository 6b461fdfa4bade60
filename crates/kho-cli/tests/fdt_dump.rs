//! `kho fdt-dump` as users run it: exit status, output and one-line errors;
//! `--dts` compiled back by dtc.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kho_abi::AbiVersion;
use kho_fdt::KhoFdtBuilder;
use kho_mem::PhysAddr;
use vm_fdt::FdtWriter;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kho-fdt-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn dump(path: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kho"))
        .arg("fdt-dump")
        .args(extra)
        .arg(path)
        .output()
        .unwrap()
}

fn write_blob(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn valid_blob() -> Vec<u8> {
    let mut b = KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x4100_0000));
    b.add_subtree("memblock", PhysAddr::new(0x4123_4000), None)
        .unwrap();
    b.build().unwrap()
}

/// A property: name and raw value bytes.
type Prop<'a> = (&'a str, Vec<u8>);

/// A child node: name and properties.
type Child<'a> = (&'a str, Vec<Prop<'a>>);

/// A root node with the given properties and children, each child a list of
/// properties; values are raw bytes (KHO u64s are little-endian).
fn hand_built(root: &[Prop<'_>], children: &[Child<'_>]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    for (name, value) in root {
        w.property(name, value).unwrap();
    }
    for (child, props) in children {
        let c = w.begin_node(child).unwrap();
        for (name, value) in props {
            w.property(name, value).unwrap();
        }
        w.end_node(c).unwrap();
    }
    w.end_node(r).unwrap();
    w.finish().unwrap()
}

fn compat(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn le64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Run fdt-dump on a bad blob: exit 1, nothing on stdout, exactly one line on stderr.
fn one_line_error(name: &str, bytes: &[u8]) -> String {
    let out = dump(&write_blob(&format!("{name}.dtb"), bytes), &[]);
    assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "{name}: printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{name}: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{name}: {stderr:?}");
    stderr
}

#[test]
fn renders_a_valid_blob() {
    let out = dump(&write_blob("valid.dtb", &valid_blob()), &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"kho-v2\""), "{text}");
    assert!(text.contains("memblock"), "{text}");
    assert!(text.contains("41234000"), "{text}");
}

#[test]
fn accepts_a_blob_made_by_dtc() {
    let dtc_blob =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kho-fdt/tests/dtb/kho-v2-basic.dtb");
    let out = dump(&dtc_blob, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("\"kho-v2\"")
    );
}

/// kho-v4 as Linux 7.2 writes it: every child's `blob-size` before its
/// `preserved-data`. Both the dtc fixture and a hand-built blob render.
#[test]
fn renders_kho_v4_in_linux_property_order() {
    let dtc_blob =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kho-fdt/tests/dtb/kho-v4-linux-order.dtb");
    let out = dump(&dtc_blob, &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("// KHO root FDT kho-v4:"), "{text}");
    assert!(text.contains("compatible = \"kho-v4\";"), "{text}");
    assert!(
        text.contains("blob-size = le64:0x0000000000000049;"),
        "{text}"
    );

    let blob = hand_built(
        &[
            ("compatible", compat("kho-v4")),
            ("preserved-memory-map", le64(0x4100_0000)),
        ],
        &[(
            "memblock",
            vec![
                ("blob-size", le64(0xca)),
                ("preserved-data", le64(0x4123_4000)),
            ],
        )],
    );
    let out = dump(&write_blob("v4-linux-order.dtb", &blob), &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"kho-v4\""), "{text}");
    assert!(
        text.contains("preserved-data = le64:0x0000000041234000;"),
        "{text}"
    );
    // A kho-v4 child without blob-size is refused, naming the version.
    let no_size = hand_built(
        &[
            ("compatible", compat("kho-v4")),
            ("preserved-memory-map", le64(0x4100_0000)),
        ],
        &[("memblock", vec![("preserved-data", le64(0x4123_4000))])],
    );
    let line = one_line_error("v4-no-blob-size", &no_size);
    assert!(
        line.contains("blob-size") && line.contains("kho-v4"),
        "{line}"
    );
}

#[test]
fn each_bad_input_has_its_own_one_line_error() {
    let good = valid_blob();
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 0xff;
    let pmm = |len: usize| vec![0x10u8; len];
    let names: Vec<String> = (0..200).map(|i| format!("client-{i:03}")).collect();
    let children: Vec<Child<'_>> = names
        .iter()
        .map(|n| (n.as_str(), vec![("preserved-data", le64(0x4200_0000))]))
        .collect();
    let over_page = hand_built(
        &[
            ("compatible", compat("kho-v2")),
            ("preserved-memory-map", le64(0x4100_0000)),
        ],
        &children,
    );
    assert!(over_page.len() > 4096);

    // (case, blob, what the message must name)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "exceeds"),
        ("bad-magic", bad_magic, "magic"),
        (
            "wrong-compatible",
            hand_built(
                &[
                    ("compatible", compat("kho-v9")),
                    ("preserved-memory-map", le64(0x4100_0000)),
                ],
                &[],
            ),
            "\"kho-v9\"",
        ),
        (
            "memory-map-4-bytes",
            hand_built(
                &[
                    ("compatible", compat("kho-v2")),
                    ("preserved-memory-map", pmm(4)),
                ],
                &[],
            ),
            "4 bytes",
        ),
        (
            "child-without-preserved-data",
            hand_built(
                &[
                    ("compatible", compat("kho-v2")),
                    ("preserved-memory-map", le64(0x4100_0000)),
                ],
                &[("memblock", vec![("blob-size", le64(0x1000))])],
            ),
            "preserved-data",
        ),
        ("over-one-page", over_page, "4096"),
    ];
    let mut messages = Vec::new();
    for (name, bytes, names) in &cases {
        let line = one_line_error(name, bytes);
        assert!(
            line.contains(names),
            "{name}: {line:?} does not mention {names:?}"
        );
        // The message names the file, then says what is wrong.
        let what = line
            .rsplit_once(".dtb: ")
            .map(|(_, w)| w.to_owned())
            .unwrap_or_default();
        assert!(!what.is_empty(), "{name}: {line:?}");
        messages.push(what);
    }
    let mut unique = messages.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        messages.len(),
        "messages are not distinct: {messages:#?}"
    );
}

#[test]
fn missing_file_is_a_one_line_error() {
    let out = dump(Path::new("/nonexistent/kho.dtb"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
}

#[test]
fn no_arguments_prints_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_kho")).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fdt-dump") && text.contains("Usage"),
        "{text}"
    );
}

/// `fdt-dump --raw X | head -1`: the reader closes the pipe early;
/// fdt-dump ends quietly instead of panicking ("failed printing to
/// stdout"). The pipe is closed before fdt-dump writes anything, so its
/// write meets the closed pipe whatever the output's size.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let path = write_blob("pipe.dtb", &valid_blob());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kho"))
        .args(["fdt-dump", "--raw"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// Anything but a small regular file is refused before it is read.
#[test]
fn refuses_devices_directories_and_oversized_files() {
    let out = dump(Path::new("/dev/zero"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file"), "{err}");
    let big = write_blob("big.bin", &vec![0u8; 8192]);
    let out = dump(&big, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("8192 bytes: larger than"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

// --- `--dts`: source dtc compiles back to the blob ------------------------

/// `dtc` from PATH. Its absence fails the test with the package to install
/// (`cargo xtask test` installs it): a skipped interop test proves nothing.
fn dtc() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("dtc"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "dtc is not on PATH: install the Debian package device-tree-compiler \
             (`cargo xtask test` installs it when it is missing)"
        )
    })
}

/// `kho fdt-dump --dts [--raw] FILE`, then `dtc -I dts -O dtb` of its
/// output: the compiled blob (dtc must accept the source without a word).
fn dts_round_trip(name: &str, blob: &[u8], raw: bool) -> (String, Vec<u8>) {
    let path = write_blob(&format!("{name}.dtb"), blob);
    let args: &[&str] = if raw { &["--dts", "--raw"] } else { &["--dts"] };
    let out = dump(&path, args);
    assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
    let dts = String::from_utf8(out.stdout).unwrap();
    let source = scratch_dir().join(format!("{name}.dts"));
    std::fs::write(&source, &dts).unwrap();
    let compiled = scratch_dir().join(format!("{name}.compiled.dtb"));
    let dtc = Command::new(dtc())
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&compiled)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        dtc.status.success() && dtc.stderr.is_empty(),
        "{name}: dtc refused or warned:\n{}\n{dts}",
        String::from_utf8_lossy(&dtc.stderr)
    );
    (dts, std::fs::read(&compiled).unwrap())
}

/// The tree of a blob, node by node and property by property in blob
/// order, and its memory reservations: what `--dts` must keep.
fn tree(blob: &[u8]) -> Vec<String> {
    fn walk(n: fdt::node::FdtNode<'_, '_>, path: &str, out: &mut Vec<String>) {
        out.push(format!("node {path}"));
        for p in n.properties() {
            out.push(format!("{path}:{} = {:02x?}", p.name, p.value));
        }
        for c in n.children() {
            walk(
                c,
                &format!("{}/{}", path.trim_end_matches('/'), c.name),
                out,
            );
        }
    }
    let fdt = fdt::Fdt::new(blob).unwrap();
    let mut out: Vec<String> = fdt
        .memory_reservations()
        .map(|r| format!("memreserve {:p}+{:#x}", r.address(), r.size()))
        .collect();
    walk(fdt.find_node("/").unwrap(), "/", &mut out);
    out
}

/// Every blob dtc made (the fixtures of kho-fdt and kho-memblock) comes
/// back byte for byte.
#[test]
fn dts_of_a_dtc_made_blob_compiles_back_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = [
        ("kho-fdt/tests/dtb/kho-v2-basic.dtb", false),
        ("kho-fdt/tests/dtb/kho-v3-blob-size.dtb", false),
        ("kho-fdt/tests/dtb/kho-v4-linux-order.dtb", false),
        // Refused as a KHO root (4-byte memory map), any FDT with --raw.
        ("kho-fdt/tests/dtb/kho-v2-cell-map.dtb", true),
        ("kho-fdt/tests/dtb/memblock-v1.dtb", true),
        ("kho-memblock/tests/dtb/memblock-v1-libfdt-like.dtb", true),
    ];
    for (file, raw) in fixtures {
        let blob = std::fs::read(root.join(file)).unwrap();
        let name = file.replace('/', "-");
        let (dts, compiled) = dts_round_trip(&name, &blob, raw);
        assert!(
            compiled == blob,
            "{file}: dtc made a different blob of\n{dts}"
        );
    }
}

/// Blobs kho-rs and vm-fdt write come back with the same tree, node for
/// node and property for property, and here byte for byte.
#[test]
fn dts_of_a_written_blob_compiles_back_to_the_same_tree() {
    let mut blobs = Vec::new();
    for version in AbiVersion::ALL {
        let mut b = KhoFdtBuilder::new(version, PhysAddr::new(0x4100_0000));
        // kho-v1 children carry no blob-size.
        let size = |s| version.allows_blob_size().then_some(s);
        b.add_subtree("memblock", PhysAddr::new(0x4123_4000), size(0xca))
            .unwrap();
        b.add_subtree("kexec-metadata", PhysAddr::new(0x4123_5000), size(0x49))
            .unwrap();
        blobs.push((format!("builder-{version}"), b.build().unwrap(), false));
    }
    blobs.push((
        "v4-linux-order-hand-built".to_owned(),
        hand_built(
            &[
                ("compatible", compat("kho-v4")),
                ("preserved-memory-map", le64(0x4100_0000)),
            ],
            &[
                (
                    "memblock",
                    vec![
                        ("blob-size", le64(0xca)),
                        ("preserved-data", le64(0x4123_4000)),
                    ],
                ),
                (
                    "kexec-metadata",
                    vec![
                        ("blob-size", le64(0x49)),
                        ("preserved-data", le64(0x4123_5000)),
                    ],
                ),
            ],
        ),
        false,
    ));
    // A boot DTB: cells, strings, an empty property, memory reservations.
    let reserved = [
        vm_fdt::FdtReserveEntry::new(0x4800_0000, 0x1000).unwrap(),
        vm_fdt::FdtReserveEntry::new(0x4900_0000, 0x20_0000).unwrap(),
    ];
    let mut w = FdtWriter::new_with_mem_reserv(&reserved).unwrap();
    let r = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string_list("compatible", vec!["linux,dummy-virt".into(), "virt".into()])
        .unwrap();
    let m = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x2000_0000])
        .unwrap();
    w.end_node(m).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "kho=on \"quoted\" back\\slash")
        .unwrap();
    w.property_null("linux,initrd-none").unwrap();
    w.property("odd", &[1, 2, 3]).unwrap();
    w.end_node(c).unwrap();
    w.end_node(r).unwrap();
    blobs.push(("boot-dtb".to_owned(), w.finish().unwrap(), true));

    for (name, blob, raw) in blobs {
        let (dts, compiled) = dts_round_trip(&name, &blob, raw);
        assert_eq!(tree(&compiled), tree(&blob), "{name}:\n{dts}");
        // These writers lay a blob out as dtc does (header, reservations,
        // structure, strings in first-use order, no padding): the bytes
        // agree too. A strings table dtc would share differently (dtc
        // reuses the tail of a longer name) would differ here only.
        assert!(compiled == blob, "{name}: same tree, other bytes:\n{dts}");
    }
}

/// `--dts` keeps the blob's order where the canonical rendering sorts, and
/// says nothing dtc cannot read.
#[test]
fn dts_keeps_the_blob_order_and_the_canonical_rendering_sorts() {
    let blob =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kho-fdt/tests/dtb/kho-v4-linux-order.dtb");
    let dts = String::from_utf8(dump(&blob, &["--dts"]).stdout).unwrap();
    let canonical = String::from_utf8(dump(&blob, &[]).stdout).unwrap();
    let order = |text: &str| {
        ["memblock {", "kho_test {", "kexec-metadata {"].map(|n| text.find(n).unwrap())
    };
    let [m, t, k] = order(&dts);
    assert!(m < t && t < k, "{dts}");
    let [m, t, k] = order(&canonical);
    assert!(k < t && t < m, "{canonical}");
    assert!(!dts.contains("le64:0x00000000000000ca;"), "{dts}");
    assert!(
        dts.contains("\t\tblob-size = [ca 00 00 00 00 00 00 00]; // le64:0x00000000000000ca\n"),
        "{dts}"
    );
    assert!(canonical.contains("blob-size = le64:0x00000000000000ca;"));
}

/// Bad input is the same one-line error with `--dts`.
#[test]
fn dts_of_bad_input_is_a_one_line_error() {
    let no_size = hand_built(
        &[
            ("compatible", compat("kho-v4")),
            ("preserved-memory-map", le64(0x4100_0000)),
        ],
        &[("memblock", vec![("preserved-data", le64(0x4123_4000))])],
    );
    let path = write_blob("dts-no-blob-size.dtb", &no_size);
    let out = dump(&path, &["--dts"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("blob-size") && err.contains("kho-v4"), "{err}");
    let out = dump(Path::new("/dev/zero"), &["--dts"]);
    assert_eq!(out.status.code(), Some(1));
}
