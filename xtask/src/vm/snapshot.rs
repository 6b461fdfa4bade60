//! Snapshots of every VM run for review, asserted with insta in `snapshots/vm/`.
//!
//! Per scenario × arch:
//!
//! - `<scenario>__<arch>__genNN.snap`, one per snapshotted generation: the
//!   incoming and outgoing root FDT rendered by `kho_fdt::render` (a blob
//!   that is not a valid KHO root — a deliberately corrupted one — shows the
//!   parser's error, then the plain FDT rendering if there is one);
//! - `<scenario>__<arch>__protocol.snap`: the run's protocol lines (only
//!   `KHO …` lines, only snapshotted generations), with each `hex=` FDT dump
//!   replaced by its length and FNV-1a digest (the renderings show the
//!   content) and, through an insta filter, every `ticks*=` value redacted:
//!   CPU counters are the only thing that differs between two runs.
//!
//! Under `CI=true` insta writes nothing and a mismatch fails; locally it
//! writes `.snap.new` files for `cargo insta review` (docs/TESTING.md,
//! "Snapshots of VM runs"). Assertions run only for runs that passed the
//! checker, so a broken run never proposes snapshots.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::check::Report;
use super::protocol::{self, Verb};
use super::scenario::{Expect, Scenario};
use crate::util::project_root;

/// Where the VM snapshots live.
pub(crate) fn snapshot_dir() -> PathBuf {
    project_root().join("snapshots").join("vm")
}

/// How a snapshot failure starts ([`is_snapshot_failure`]).
const FAILURE_PREFIX: &str = "snapshot snapshots/vm/";

/// Whether a run's failure is a snapshot mismatch (the run itself passed).
pub(crate) fn is_snapshot_failure(failure: &str) -> bool {
    failure.starts_with(FAILURE_PREFIX)
}

/// The insta filter that redacts CPU counter values (`ticks=`, `ticks-walk=` …).
const TICKS_FILTER: (&str, &str) = (r"\b(ticks[a-z-]*)=[0-9]+", "$1=[ticks]");

/// The insta filter that redacts the heap's high-water mark (`heap=`): it
/// moves with every change to the stub's code; the harness checks it
/// instead (invariants.rs, "heap").
const HEAP_FILTER: (&str, &str) = (r"\bheap=[0-9]+", "heap=[heap]");

fn gen_name(scenario: &str, arch: &str, g: u32) -> String {
    format!("{scenario}__{arch}__gen{g:02}")
}

fn protocol_name(scenario: &str, arch: &str) -> String {
    format!("{scenario}__{arch}__protocol")
}

/// The snapshot names a run of `s` on `arch` asserts.
pub(crate) fn names(s: &Scenario, arch: &str) -> Vec<String> {
    let mut names: Vec<String> = s
        .snapshot_generations
        .iter()
        .map(|g| gen_name(&s.name, arch, *g))
        .collect();
    names.push(protocol_name(&s.name, arch));
    names
}

/// One generation's snapshot text: its incoming and outgoing root FDT.
fn generation_text(s: &Scenario, report: &Report, g: u32) -> String {
    let this = report.generations.iter().find(|r| r.generation == g);
    // The kind only: the expected reason pattern is the scenario's, the
    // snapshot shows what the stub printed.
    let expect = match s.expect.get(g as usize) {
        Some(Expect::Cold) => "cold",
        Some(Expect::Verified) | None => "verified",
        Some(Expect::Failed { .. }) => "failed",
        Some(Expect::Partial { .. }) => "partial",
    };
    let mut out = format!(
        "// {} generation {g} of {}, expected {expect}\n",
        s.name, s.generations
    );
    if let Some(r) = this
        && let Some(result) = &r.revival
    {
        out.push_str(&format!("// revival result={result}"));
        if let Some(reason) = &r.reason {
            out.push_str(&format!(": {reason}"));
        }
        out.push('\n');
    }
    let fault = s.fault.as_ref().filter(|f| f.generation == g);
    let no_fdt_in = match s.expect.get(g as usize) {
        Some(Expect::Failed { .. }) => "(not printed: the handover was rejected)",
        _ => "(none: a cold boot)",
    };
    for (label, fdt, none) in [
        ("fdt-in", this.and_then(|r| r.fdt_in.as_ref()), no_fdt_in),
        (
            "fdt-out",
            this.and_then(|r| r.fdt_out.as_ref()),
            if s.refuse.is_some() && g + 1 == s.generations {
                "(none: the last generation refused to hand over)"
            } else {
                "(none: the last generation hands nothing over)"
            },
        ),
    ] {
        out.push_str(&format!("\n// ==== {label}"));
        if label == "fdt-out"
            && let Some(f) = fault
        {
            out.push_str(&format!(" (fault {} injected)", f.class));
        }
        out.push_str(" ====\n");
        match fdt {
            Some(fdt) => out.push_str(&fdt.dts()),
            None => out.push_str(&format!("{none}\n")),
        }
    }
    out
}

/// The normalized protocol summary of the snapshotted generations.
pub(crate) fn protocol_text(s: &Scenario, lines: &[String]) -> String {
    let mut out = String::new();
    let mut skipped: Option<(u32, u32, usize)> = None;
    let flush = |out: &mut String, skipped: &mut Option<(u32, u32, usize)>| {
        if let Some((from, to, count)) = skipped.take() {
            out.push_str(&format!(
                "… generations {from}–{to} not snapshotted ({count} protocol lines) …\n"
            ));
        }
    };
    for raw in lines {
        let text = protocol::clean(raw);
        let Some(Ok(line)) = protocol::parse(text) else {
            continue;
        };
        let g = line.generation();
        if let Some(g) = g
            && !s.snapshot_generations.contains(&g)
        {
            skipped = Some(match skipped {
                Some((from, _, count)) => (from, g, count + 1),
                None => (g, g, 1),
            });
            continue;
        }
        flush(&mut out, &mut skipped);
        if matches!(line.verb, Verb::FdtIn | Verb::FdtOut)
            && let Some(hex) = line.get("hex")
        {
            let digest = protocol::decode_hex(hex)
                .map(|b| format!("[{} bytes, fnv1a64 {:016x}]", b.len(), fnv1a64(&b)))
                .unwrap_or_else(|e| format!("[undecodable: {e}]"));
            out.push_str(&text.replacen(hex, &digest, 1));
        } else {
            out.push_str(text);
        }
        out.push('\n');
    }
    flush(&mut out, &mut skipped);
    out
}

/// FNV-1a, 64 bits: a short, stable digest of an FDT dump.
fn fnv1a64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

/// Assert every snapshot of a passed run of `s` on `arch`; also write the
/// texts to `out_dir` (`protocol.txt`, `snapshot-genNN.txt`) for reading
/// without insta. Returns one failure per mismatching snapshot.
pub(crate) fn assert_run(
    s: &Scenario,
    arch: &str,
    report: &Report,
    lines: &[String],
    out_dir: &Path,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut texts: Vec<(String, String, String)> = s
        .snapshot_generations
        .iter()
        .map(|g| {
            (
                gen_name(&s.name, arch, *g),
                format!("snapshot-gen{g:02}.txt"),
                generation_text(s, report, *g),
            )
        })
        .collect();
    texts.push((
        protocol_name(&s.name, arch),
        "protocol.txt".to_owned(),
        protocol_text(s, lines),
    ));

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(
        project_root()
            .join("vm-images")
            .join(format!("{}.toml", s.name)),
    );
    settings.add_filter(TICKS_FILTER.0, TICKS_FILTER.1);
    settings.add_filter(HEAP_FILTER.0, HEAP_FILTER.1);
    if let Some((pattern, replacement)) = image_size_filter(lines) {
        settings.add_filter(&pattern, replacement);
        // Where a generation runs follows from where the previous one ran
        // and how big the image is: as volatile as the size.
        settings.add_filter(IMAGE_ADDR_FILTER.0, IMAGE_ADDR_FILTER.1);
        settings.add_filter(STAGED_ADDR_FILTER.0, STAGED_ADDR_FILTER.1);
    }

    for (name, file, text) in &texts {
        let path = out_dir.join(file);
        if let Err(e) = std::fs::write(&path, text) {
            failures.push(format!("writing {}: {e}", path.display()));
        }
        settings.set_description(format!(
            "{} on {arch}: {}",
            s.name,
            if file == "protocol.txt" {
                "protocol lines (ticks redacted, FDT dumps as digests)"
            } else {
                "incoming and outgoing root FDT"
            }
        ));
        if let Err(msg) = settings.bind(|| assert_quietly(name, text)) {
            failures.push(format!(
                "{FAILURE_PREFIX}{name}.snap is new or differs ({msg}; insta printed it above); review with `cargo insta review`"
            ));
        }
    }
    failures
}

/// Redacts `KHO image … addr=` (after the size filter ran).
const IMAGE_ADDR_FILTER: (&str, &str) = (
    r"(KHO image gen=[0-9]+) addr=0x[0-9a-f]+",
    "$1 addr=[image-addr]",
);
/// Redacts the staged image's address in `KHO segments` (after the size filter).
const STAGED_ADDR_FILTER: (&str, &str) = (r"0x[0-9a-f]+\+\[image\]", "[image-addr]+[image]");

/// The insta filter that redacts the stub's image size (`KHO image … size=`
/// and the staged image's range in `KHO segments`): it changes with every
/// change to the stub's code, which is no news to a reviewer of handovers.
fn image_size_filter(lines: &[String]) -> Option<(String, &'static str)> {
    let size = lines.iter().find_map(|l| {
        let rest = protocol::clean(l).strip_prefix("KHO image ")?;
        rest.split_whitespace()
            .find_map(|f| f.strip_prefix("size="))
            .filter(|v| v.starts_with("0x") && v[2..].chars().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_owned)
    })?;
    Some((format!(r"(size=|\+){size}\b"), "${1}[image]"))
}

/// `insta::assert_snapshot!` without unwinding into the caller: a mismatch
/// becomes `Err` (insta has printed the diff and, outside CI, written
/// `.snap.new`), so the other runs and the table still happen.
fn assert_quietly(name: &str, text: &str) -> Result<(), String> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        insta::assert_snapshot!(name, text);
    }));
    panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "insta panicked".to_owned())
    })
}

/// `.snap` files in `snapshots/vm/` that no scenario × arch produces any
/// more (a removed scenario, fewer generations): stale once a full run passes.
pub(crate) fn stale(expected: &[String]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(snapshot_dir()) else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "snap")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|stem| !expected.iter().any(|n| n == stem))
        })
        .collect();
    stale.sort();
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::scenario;

    fn scenario(text: &str) -> Scenario {
        scenario::parse(
            "t",
            &format!(
                "description = \"t\"\narches = [\"x86_64\"]\nmemory = \"512M\"\ngenerations = 4\nseed = 1\n{text}"
            ),
        )
        .unwrap()
    }

    #[test]
    fn names_follow_scenario_arch_and_generation() {
        let s = scenario("snapshot_generations = [0, 3]\n");
        assert_eq!(
            names(&s, "aarch64"),
            [
                "t__aarch64__gen00",
                "t__aarch64__gen03",
                "t__aarch64__protocol"
            ]
        );
        assert_eq!(names(&scenario(""), "x86_64").len(), 5);
    }

    #[test]
    fn protocol_text_keeps_protocol_lines_and_digests_fdts() {
        let s = scenario("snapshot_generations = [0, 3]\n");
        let lines: Vec<String> = [
            "SeaBIOS (version 1.16)",
            "KHO boot gen=0 arch=x86_64 mode=cold cmdline=\"kho=on\"\r",
            "KHO fdt-out gen=0 bytes=2 hex=d00d",
            "KHO kexec gen=0 next=1 ticks-walk=12 ticks-total=99",
            "KHO boot gen=1 arch=x86_64 mode=kho cmdline=\"kho=on\"",
            "KHO walk gen=1 blocks=1 ticks=5",
            "KHO boot gen=2 arch=x86_64 mode=kho cmdline=\"kho=on\"",
            "KHO boot gen=3 arch=x86_64 mode=kho cmdline=\"kho=on\"",
            "KHO done gen=3 generations=4 result=ok",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let text = protocol_text(&s, &lines);
        assert_eq!(
            text,
            "KHO boot gen=0 arch=x86_64 mode=cold cmdline=\"kho=on\"\n\
             KHO fdt-out gen=0 bytes=2 hex=[2 bytes, fnv1a64 0af55b07b743eb26]\n\
             KHO kexec gen=0 next=1 ticks-walk=12 ticks-total=99\n\
             … generations 1–2 not snapshotted (3 protocol lines) …\n\
             KHO boot gen=3 arch=x86_64 mode=kho cmdline=\"kho=on\"\n\
             KHO done gen=3 generations=4 result=ok\n"
        );
    }

    #[test]
    fn image_size_filter_redacts_the_image_and_its_staged_copy() {
        let lines: Vec<String> = [
            "KHO boot gen=0 arch=x86_64 mode=cold cmdline=\"kho=on\"",
            "KHO image gen=0 addr=0x100000 size=0x47a000",
            "KHO segments gen=0 count=2 ranges=0x18e00000+0x30,0x18e04000+0x47a000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let (pattern, replacement) = image_size_filter(&lines).unwrap();
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&pattern, replacement);
        settings.add_filter(IMAGE_ADDR_FILTER.0, IMAGE_ADDR_FILTER.1);
        settings.add_filter(STAGED_ADDR_FILTER.0, STAGED_ADDR_FILTER.1);
        settings.bind(|| {
            insta::assert_snapshot!(lines.join("\n"), @r#"
            KHO boot gen=0 arch=x86_64 mode=cold cmdline="kho=on"
            KHO image gen=0 addr=[image-addr] size=[image]
            KHO segments gen=0 count=2 ranges=0x18e00000+0x30,[image-addr]+[image]
            "#);
        });
        assert_eq!(image_size_filter(&lines[..1]), None);
    }

    #[test]
    fn ticks_filter_redacts_every_counter() {
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(TICKS_FILTER.0, TICKS_FILTER.1);
        settings.add_filter(HEAP_FILTER.0, HEAP_FILTER.1);
        settings.bind(|| {
            insta::assert_snapshot!(
                "KHO walk gen=1 blocks=5 ticks=123\nKHO kexec gen=0 next=1 heap=4096 ticks-walk=12 ticks-total=99 noticks=1",
                @r"
            KHO walk gen=1 blocks=5 ticks=[ticks]
            KHO kexec gen=0 next=1 heap=[heap] ticks-walk=[ticks] ticks-total=[ticks] noticks=1
            "
            );
        });
    }

    #[test]
    fn fnv_digest() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
