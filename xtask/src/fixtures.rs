//! `cargo xtask fixtures`: dtc interop in both directions.
//!
//! 1. Every `crates/kho-fdt/tests/dts/*.dts` is compiled by `dtc` into
//!    `tests/dtb/*.dtb` (the committed fixtures the parser tests read);
//!    `--check` fails if a committed blob differs from what dtc makes now.
//! 2. Blobs made by our own builder must be accepted by
//!    `dtc -I dtb -O dts` without a single warning.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kho_abi::AbiVersion;
use kho_fdt::KhoFdtBuilder;
use kho_mem::PhysAddr;
use xshell::{Shell, cmd};

use crate::util::{self, artifacts_dir, project_root};

/// Compile (or check) the dtc fixtures, then check builder output with dtc.
pub(crate) fn run(check: bool) -> Result<()> {
    let sh = util::shell()?;
    util::ensure_tool(&sh, "dtc", "device-tree-compiler")?;
    let out_dir = artifacts_dir("fixtures");
    sh.create_dir(&out_dir)?;
    compile_fixtures(&sh, check, &out_dir)?;
    builder_output_accepted_by_dtc(&sh, &out_dir)
}

fn compile_fixtures(sh: &Shell, check: bool, out_dir: &Path) -> Result<()> {
    let fdt_tests = project_root().join("crates/kho-fdt/tests");
    let dts_dir = fdt_tests.join("dts");
    let dtb_dir = fdt_tests.join("dtb");
    let mut sources: Vec<_> = std::fs::read_dir(&dts_dir)
        .with_context(|| format!("reading {}", dts_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dts"))
        .collect();
    sources.sort();
    if sources.is_empty() {
        bail!("no .dts fixtures in {}", dts_dir.display());
    }
    let mut stale = Vec::new();
    for dts in &sources {
        let stem = dts
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fresh = out_dir.join(format!("{stem}.dtb"));
        dtc_quiet(sh, &["-I", "dts", "-O", "dtb"], dts, &fresh)?;
        let committed = dtb_dir.join(format!("{stem}.dtb"));
        if check {
            let same = std::fs::read(&committed).ok() == Some(std::fs::read(&fresh)?);
            if !same {
                stale.push(committed.display().to_string());
            }
        } else {
            sh.copy_file(&fresh, &committed)?;
            tracing::info!("wrote {}", committed.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "fixtures differ from what dtc makes (run `cargo xtask fixtures`): {}",
            stale.join(", ")
        );
    }
    tracing::info!(
        "{} dtc fixtures {}",
        sources.len(),
        if check { "up to date" } else { "written" }
    );
    Ok(())
}

/// Run dtc on `input`, writing `output`; any warning or failure is an error.
fn dtc_quiet(sh: &Shell, format_args: &[&str], input: &Path, output: &Path) -> Result<()> {
    let out = cmd!(sh, "dtc {format_args...} -o {output} {input}")
        .ignore_status()
        .output()
        .context("running dtc")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!(
            "dtc on {} ({}): {}",
            input.display(),
            out.status,
            stderr.trim()
        );
    }
    Ok(())
}

/// One subtree of a sample handover: (name, preserved-data, blob-size).
type SampleChild = (String, u64, Option<u64>);

/// The handovers the dtc check builds: (name, version, children).
fn sample_handovers() -> Vec<(&'static str, AbiVersion, Vec<SampleChild>)> {
    let many = (0..40u64)
        .map(|i| (format!("client-{i:02}"), 0x4200_0000 + i * 0x1000, None))
        .collect();
    vec![
        (
            "v1",
            AbiVersion::V1,
            vec![
                ("memblock".to_owned(), 0x4123_0000, None),
                ("kho_test".to_owned(), 0x4125_0000, None),
            ],
        ),
        ("empty", AbiVersion::V2, vec![]),
        (
            "one-child",
            AbiVersion::V2,
            vec![("memblock".to_owned(), 0x4123_4000, None)],
        ),
        ("many-children", AbiVersion::V2, many),
        (
            "v3",
            AbiVersion::V3,
            vec![
                ("kexec-metadata".to_owned(), 0x4124_0000, Some(73)),
                ("kho_test".to_owned(), 0x4125_0000, Some(0x1000)),
            ],
        ),
        (
            "v4",
            AbiVersion::V4,
            vec![
                ("memblock".to_owned(), 0x4123_0000, Some(0xca)),
                ("kho_test".to_owned(), 0x4125_0000, Some(0x100)),
                ("kexec-metadata".to_owned(), 0x4124_0000, Some(73)),
            ],
        ),
    ]
}

fn builder_output_accepted_by_dtc(sh: &Shell, out_dir: &Path) -> Result<()> {
    for (name, version, children) in sample_handovers() {
        let mut builder = KhoFdtBuilder::new(version, PhysAddr::new(0x4100_0000));
        for (child, data, size) in &children {
            builder
                .add_subtree(child, PhysAddr::new(*data), *size)
                .with_context(|| format!("building {name}: {child}"))?;
        }
        let blob = builder
            .build()
            .with_context(|| format!("building {name}"))?;
        let path = out_dir.join(format!("builder-{name}.dtb"));
        std::fs::write(&path, &blob)?;
        dtc_quiet(
            sh,
            &["-I", "dtb", "-O", "dts"],
            &path,
            &out_dir.join(format!("builder-{name}.dts")),
        )?;
        // And our own reader agrees with what we wrote.
        let parsed = kho_fdt::KhoFdt::parse(&blob).with_context(|| format!("re-parsing {name}"))?;
        if parsed.subtrees().count() != children.len() {
            bail!(
                "{name}: wrote {} children, read back {}",
                children.len(),
                parsed.subtrees().count()
            );
        }
    }
    tracing::info!("dtc accepts every builder sample without warnings");
    Ok(())
}
