//! The human-readable form of an inspection, cause first: a verdict line
//! (sound, or how many problems and the first cause), then the problems,
//! each consequence under the problem it follows from
//! ([`follows_from`]), then what was decoded
//! (image, start, handover, root FDT, scratch areas, preserved set,
//! subtrees). Stable order, hex addresses.
//!
//! The preserved set of a real handover has hundreds of runs: with
//! [`Lists::First`] each long list (runs, the stub's folio records,
//! `kho_test`'s folios) shows its first items and counts the rest;
//! [`Lists::All`] shows every one (`render`, `render_report` and
//! `render_find` do).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::find::{Candidate, Found};
use crate::report::{
    Content, FindOutput, HandoverInfo, ImageInfo, Output, Problem, Report, Rfc2024,
    Rfc2024Handover, Start, Vmalloc, follows_from,
};

/// How much of each long list (runs, folio records, folios) the text
/// shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lists {
    /// Every item.
    All,
    /// The first `n` items of each list, then one line counting the rest.
    First(usize),
}

impl Lists {
    /// What `kho inspect` prints without `--verbose`: the first 16 items of
    /// each list.
    pub const SHORT: Lists = Lists::First(16);
}

/// The whole report as text, every list in full.
pub fn render(out: &Output) -> String {
    render_with(out, Lists::All)
}

/// The whole report as text, its long lists cut to `lists`.
pub fn render_with(out: &Output, lists: Lists) -> String {
    let mut s = String::new();
    verdict(&mut s, &out.report);
    problems(&mut s, "problems", &out.report.problems);
    s.push('\n');
    image_line(&mut s, &out.image);
    let _ = writeln!(s, "start: {}", describe_start(out.start));
    details(&mut s, &out.report, lists);
    s
}

/// A report alone (no image line, no start line), every list in full: what
/// a library caller that decoded memory of its own prints.
pub fn render_report(r: &Report) -> String {
    render_report_with(r, Lists::All)
}

/// A report alone, its long lists cut to `lists`.
pub fn render_report_with(r: &Report, lists: Lists) -> String {
    let mut s = String::new();
    verdict(&mut s, r);
    problems(&mut s, "problems", &r.problems);
    s.push('\n');
    details(&mut s, r, lists);
    s
}

/// The verdict line of one report: sound, with what it holds, or how many
/// problems and the first cause.
fn verdict(s: &mut String, r: &Report) {
    if r.problems.is_empty()
        && let Some(x) = &r.rfc2024
    {
        let mut what = Vec::new();
        if let Some(v) = &r.abi_version {
            what.push(format!("{v} handover"));
        }
        if let Some(t) = &x.tree {
            what.push(format!(
                "{} range{} ({} page{}) preserved in {} node{}",
                t.ranges,
                plural(t.ranges as usize),
                t.pages,
                plural(t.pages as usize),
                t.nodes.len(),
                plural(t.nodes.len())
            ));
        }
        let _ = writeln!(s, "verdict: sound: {}", what.join(", "));
        return;
    }
    if r.problems.is_empty() {
        let mut what = Vec::new();
        if let Some(v) = &r.abi_version {
            what.push(format!("{v} handover"));
        }
        if let Some(p) = &r.preserved {
            what.push(format!(
                "{} run{} ({} page{}) preserved",
                p.runs.len(),
                plural(p.runs.len()),
                p.pages,
                plural(p.pages as usize)
            ));
        }
        what.push(format!(
            "{} subtree{}",
            r.subtrees.len(),
            plural(r.subtrees.len())
        ));
        let _ = writeln!(s, "verdict: sound: {}", what.join(", "));
        return;
    }
    problems_verdict(s, &r.problems);
}

/// The first problem of `list` that follows from none.
fn first_cause(list: &[Problem]) -> Option<&Problem> {
    list.iter()
        .zip(follows_from(list))
        .find_map(|(p, f)| f.is_none().then_some(p))
}

/// "N problems (…); first cause: …" for `list`.
fn problems_verdict(s: &mut String, list: &[Problem]) {
    let first = first_cause(list);
    let n = list.len();
    let consequences = follows_from(list).iter().filter(|f| f.is_some()).count();
    let causes = n - consequences;
    let _ = write!(s, "verdict: {n} problem{}", plural(n));
    if consequences > 0 {
        let _ = write!(
            s,
            " ({causes} cause{}, {consequences} consequence{}); first cause",
            plural(causes),
            plural(consequences)
        );
    } else if n > 1 {
        s.push_str("; first");
    }
    match first {
        Some(p) => {
            let _ = writeln!(s, ": {} at {}", p.code, p.location);
        }
        None => s.push('\n'),
    }
}

fn image_line(s: &mut String, image: &ImageInfo) {
    let segments: Vec<String> = image
        .segments
        .iter()
        .map(|seg| format!("{:#x}+{:#x}", seg.paddr, seg.memsz))
        .collect();
    let _ = writeln!(
        s,
        "image: {} ({}, {} segment{}: {})",
        image.file,
        image.format,
        segments.len(),
        plural(segments.len()),
        segments.join(", ")
    );
}

/// `--find`: the verdict over the scan and every decoded handover, the
/// problems of the scan, what the scan saw, the candidates, then each
/// decoded handover (its own verdict, problems and details), every list in
/// full.
pub fn render_find(out: &FindOutput) -> String {
    render_find_with(out, Lists::All)
}

/// `--find`'s text, its long lists cut to `lists`.
pub fn render_find_with(out: &FindOutput, lists: Lists) -> String {
    let mut s = String::new();
    let f: &Found = &out.found;
    find_verdict(&mut s, f);
    problems(&mut s, "problems of the scan", &f.problems);
    s.push('\n');
    image_line(&mut s, &out.image);
    let scan = &f.scan;
    let _ = writeln!(
        s,
        "scan: {:#x} bytes of RAM in {} range{}, {} page{} not all zero: {} FDT magic{} at \
         8-byte boundaries, {} setup_data header{} of type 10, {} device tree{} read",
        scan.bytes,
        scan.ranges.len(),
        plural(scan.ranges.len()),
        scan.nonzero_pages,
        plural(scan.nonzero_pages as usize),
        scan.fdt_magics,
        plural(scan.fdt_magics as usize),
        scan.setup_data_headers,
        plural(scan.setup_data_headers as usize),
        scan.dtbs_read,
        plural(scan.dtbs_read as usize),
    );

    let _ = writeln!(s, "\ncandidates ({}):", f.candidates.len());
    let decoded: Vec<u64> = f
        .decoded
        .iter()
        .filter_map(|d| {
            let r = &d.report;
            r.handover
                .map(|h| h.fdt)
                .or(r.fdt.as_ref().map(|fdt| fdt.addr))
                .or(r.rfc2024.as_ref().and_then(|x| x.kho_data).map(|k| k.fdt))
        })
        .collect();
    for c in &f.candidates {
        candidate(&mut s, c, &decoded);
    }
    if f.skipped_total > 0 {
        let _ = writeln!(s, "skipped ({}):", f.skipped_total);
        for k in &f.skipped {
            let _ = writeln!(s, "  {:#x}: {}", k.addr, k.reason);
        }
        let listed = f.skipped.len() as u64;
        if f.skipped_total > listed {
            let _ = writeln!(s, "  … and {} more", f.skipped_total - listed);
        }
    }

    for (i, d) in f.decoded.iter().enumerate() {
        let count = if f.decoded.len() > 1 {
            format!(" {} of {}", i + 1, f.decoded.len())
        } else {
            String::new()
        };
        let _ = writeln!(s, "\n=== decoded{count}: {} ===", d.why);
        let _ = writeln!(s, "start: {}", describe_start(d.start));
        for note in &d.notes {
            let _ = writeln!(s, "note: {note}");
        }
        verdict(&mut s, &d.report);
        problems(&mut s, "problems", &d.report.problems);
        s.push('\n');
        details(&mut s, &d.report, lists);
    }
    s
}

/// The verdict over the scan and every handover it decoded.
fn find_verdict(s: &mut String, f: &Found) {
    let decoded = f.decoded.len();
    let in_decoded: usize = f.decoded.iter().map(|d| d.report.problems.len()).sum();
    let total = f.problems.len() + in_decoded;
    if total == 0 {
        if decoded == 0 {
            s.push_str("verdict: no KHO handover found\n");
        } else {
            let _ = writeln!(
                s,
                "verdict: sound: {decoded} handover{} found and decoded, no problem",
                plural(decoded)
            );
        }
        return;
    }
    // The scan's causes first, then each decoded handover's.
    let first = first_cause(&f.problems).or_else(|| {
        f.decoded
            .iter()
            .find_map(|d| first_cause(&d.report.problems))
    });
    let p = first.map_or_else(String::new, |p| format!(": {} at {}", p.code, p.location));
    let mut parts = Vec::new();
    if !f.problems.is_empty() {
        parts.push(format!("{} of the scan", f.problems.len()));
    }
    if in_decoded > 0 {
        parts.push(format!(
            "{in_decoded} in {decoded} decoded handover{}",
            plural(decoded)
        ));
    }
    let _ = writeln!(
        s,
        "verdict: {total} problem{} ({}); first cause{p}",
        plural(total),
        parts.join(", ")
    );
}

/// One candidate line; `decoded`: the root FDTs decoded below.
fn candidate(s: &mut String, c: &Candidate, decoded: &[u64]) {
    let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "version unknown".to_owned());
    let handover = |h: &HandoverInfo| {
        format!(
            "fdt={:#x} ({:#x} bytes) scratch={:#x}+{:#x}",
            h.fdt, h.fdt_size, h.scratch, h.scratch_len
        )
    };
    let names = |found: bool, v: &Option<String>| {
        if found {
            format!("names the root FDT found there ({})", version(v))
        } else {
            "names no root KHO FDT the scan found".to_owned()
        }
    };
    match c {
        Candidate::RootFdt {
            addr,
            total_size,
            compatible,
            abi_version,
            error,
            named_by,
        } => {
            let what = match abi_version {
                Some(v) => v.clone(),
                None => format!("{compatible:?}, a version kho-rs does not read"),
            };
            let _ = write!(
                s,
                "  root KHO FDT at {addr:#x}: {what}, {total_size} bytes, at a page start"
            );
            if named_by.is_empty() {
                s.push_str("; named by no boot structure");
            } else {
                let by: Vec<String> = named_by.iter().map(|a| format!("{a:#x}")).collect();
                let _ = write!(
                    s,
                    "; named by the boot structure{} at {}",
                    plural(by.len()),
                    by.join(", ")
                );
            }
            if !decoded.contains(addr) {
                let _ = write!(s, "; not decoded below (--fdt {addr:#x} decodes it)");
            }
            s.push('\n');
            if let Some(e) = error {
                let _ = writeln!(s, "    refused by the reader: {e}");
            }
        }
        Candidate::X86SetupData {
            addr,
            handover: h,
            abi_version,
            names_root_fdt,
        } => {
            let _ = writeln!(
                s,
                "  x86 setup_data KHO entry at {addr:#x} (type 10 at an 8-byte boundary): {}; {}",
                handover(h),
                names(*names_root_fdt, abi_version)
            );
        }
        Candidate::X86SetupData2024 {
            addr,
            kho_data,
            abi_version,
            names_root_fdt,
        } => {
            let _ = writeln!(
                s,
                "  x86 setup_data KHO entry at {addr:#x} (type 10, len 48: the 2024 design, at an \
                 8-byte boundary): {}; {}",
                rfc2024_handover(kho_data),
                names(*names_root_fdt, abi_version)
            );
        }
        Candidate::Dtb {
            addr,
            total_size,
            handover: h,
            abi_version,
            names_root_fdt,
        } => {
            let _ = writeln!(
                s,
                "  boot DTB at {addr:#x} ({total_size} bytes, /chosen linux,kho-fdt): {}; {}",
                handover(h),
                names(*names_root_fdt, abi_version)
            );
        }
    }
}

/// The problems, each cause followed by the problems that follow from it
/// (indented, `consequence:`).
fn problems(s: &mut String, title: &str, list: &[Problem]) {
    if list.is_empty() {
        let _ = writeln!(s, "{title}: none");
        return;
    }
    let follows = follows_from(list);
    let consequences = follows.iter().filter(|f| f.is_some()).count();
    if consequences == 0 {
        let _ = writeln!(s, "{title} ({}):", list.len());
    } else {
        let causes = list.len() - consequences;
        let _ = writeln!(
            s,
            "{title} ({}: {causes} cause{}, {consequences} consequence{}):",
            list.len(),
            plural(causes),
            plural(consequences)
        );
    }
    let line = |s: &mut String, p: &Problem| {
        let _ = writeln!(s, "{} at {}: {}", p.code, p.location, p.message);
    };
    for (i, (p, follows_one)) in list.iter().zip(&follows).enumerate() {
        if follows_one.is_some() {
            continue;
        }
        s.push_str("  ");
        line(s, p);
        for (q, _) in list.iter().zip(&follows).filter(|(_, f)| **f == Some(i)) {
            s.push_str("    consequence: ");
            line(s, q);
        }
    }
}

fn describe_start(start: Start) -> String {
    match start {
        Start::Fdt(a) => format!("root KHO FDT at {a:#x} (--fdt)"),
        Start::X86BootParams(a) => format!("x86 boot_params at {a:#x} (--x86-boot-params)"),
        Start::Dtb(a) => format!("boot DTB at {a:#x} (--dtb)"),
        Start::X86SetupData(a) => format!("x86 setup_data KHO entry at {a:#x} (found by --find)"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The 2024 design's `kho_data`, in one line.
fn rfc2024_handover(k: &Rfc2024Handover) -> String {
    format!(
        "fdt={:#x} ({:#x} bytes) scratch region={:#x}+{:#x} mem cache={:#x}+{:#x}",
        k.fdt, k.fdt_size, k.scratch, k.scratch_size, k.mem_cache, k.mem_cache_size
    )
}

/// What a 2024-design report decoded: the handover, the tree rendered,
/// the scratch region, the mem cache, whether tree and cache agree, and the
/// ranges by node.
fn rfc2024_details(s: &mut String, r: &Report, x: &Rfc2024, lists: Lists) {
    if let Some(k) = &x.kho_data {
        let _ = writeln!(s, "handover (2024 design): {}", rfc2024_handover(k));
    }
    let unrendered = if x.tree.is_some() {
        "(not rendered: larger than 64 KiB; its ranges are listed below)"
    } else {
        "(not read, or not a device tree: see problems)"
    };
    version_and_fdt(s, r, unrendered);

    s.push('\n');
    let unknown = "unknown (only the x86 setup_data entry names it: give --x86-boot-params)";
    match &x.kho_data {
        Some(k) => {
            let _ = writeln!(s, "scratch region: {:#x}+{:#x}", k.scratch, k.scratch_size);
        }
        None => {
            let _ = writeln!(s, "scratch region: {unknown}");
        }
    }
    match &x.mem_cache {
        Some(c) => {
            let state = match c.valid {
                Some(true) => "sound (sorted, disjoint, RAM outside scratch)",
                Some(false) => "refused (see problems)",
                None => "not checked (see problems)",
            };
            let _ = writeln!(
                s,
                "mem cache at {:#x}+{:#x}: {} entr{}, {state}",
                c.addr,
                c.size,
                c.entries,
                if c.entries == 1 { "y" } else { "ies" }
            );
        }
        None => {
            let _ = writeln!(s, "mem cache: {unknown}");
        }
    }
    let agree = match x.agree {
        Some(true) => "agree (every mem entry is in the cache, every cache entry in a node)",
        Some(false) => "disagree (see problems)",
        None if x.mem_cache.is_none() => "not compared (the mem cache is unknown)",
        None => "not compared (one of them has a problem of its own, see problems)",
    };
    let _ = writeln!(s, "tree and mem cache: {agree}");

    let Some(t) = &x.tree else {
        s.push_str("\npreserved ranges: unknown (see problems)\n");
        return;
    };
    let partial = if t.complete {
        ""
    } else {
        " (incomplete: the walk stopped at a problem or a limit)"
    };
    let _ = writeln!(
        s,
        "\npreserved ranges{partial}: {} range{} in {} node{}, {} page{}, {:#x} bytes, {} NOINIT",
        t.ranges,
        plural(t.ranges as usize),
        t.nodes.len(),
        plural(t.nodes.len()),
        t.pages,
        plural(t.pages as usize),
        t.bytes,
        t.noinit
    );
    for n in &t.nodes {
        let _ = writeln!(
            s,
            "  {}: {} range{}, {} page{}, {} NOINIT",
            n.path,
            n.ranges.len(),
            plural(n.ranges.len()),
            n.pages,
            plural(n.pages as usize),
            n.noinit
        );
        list(s, &n.ranges, lists, "ranges", |s, m| {
            let _ = writeln!(
                s,
                "    {:#012x}+{:#x}{}",
                m.addr,
                m.size,
                if m.noinit { " noinit" } else { "" }
            );
        });
    }
}

/// What the report decoded, in the handover's order.
/// The ABI version line and the root FDT, rendered (`unrendered` when it
/// is not).
fn version_and_fdt(s: &mut String, r: &Report, unrendered: &str) {
    if let Some(v) = &r.abi_version {
        let _ = writeln!(s, "ABI version: {v}");
    }
    if let Some(fdt) = &r.fdt {
        let _ = writeln!(
            s,
            "\nroot FDT at {:#x} ({} bytes):",
            fdt.addr, fdt.total_size
        );
        match &fdt.rendered {
            Some(text) => {
                for line in text.lines() {
                    let _ = writeln!(s, "  {line}");
                }
            }
            None => {
                let _ = writeln!(s, "  {unrendered}");
            }
        }
    }
}

fn details(s: &mut String, r: &Report, lists: Lists) {
    if let Some(x) = &r.rfc2024 {
        rfc2024_details(s, r, x, lists);
        return;
    }
    if let Some(h) = &r.handover {
        let _ = writeln!(
            s,
            "handover: fdt={:#x} ({:#x} bytes) scratch={:#x}+{:#x}",
            h.fdt, h.fdt_size, h.scratch, h.scratch_len
        );
    }
    version_and_fdt(s, r, "(not a device tree)");

    s.push('\n');
    match &r.scratch {
        Some(areas) => {
            let _ = writeln!(s, "scratch areas ({}):", areas.len());
            for a in areas {
                let _ = writeln!(
                    s,
                    "  {:>2}  {:<8} {:#012x}+{:#x}",
                    a.index, a.kind, a.addr, a.size
                );
            }
        }
        None if r.handover.is_none() => {
            s.push_str("scratch: unknown (give --x86-boot-params or --dtb)\n");
        }
        None => s.push_str("scratch: unreadable (see problems)\n"),
    }

    if let Some(p) = &r.preserved {
        let partial = if p.complete {
            ""
        } else {
            " (incomplete: the walk stopped at a problem)"
        };
        let _ = writeln!(
            s,
            "\npreserved memory{partial}: {} run{}, {} blocks, {} pages, {:#x} bytes",
            p.runs.len(),
            plural(p.runs.len()),
            p.blocks,
            p.pages,
            p.bytes
        );
        let _ = writeln!(
            s,
            "  {:>5}  {:<18}  {:<12}  {:>6}",
            "order", "address", "size", "blocks"
        );
        list(s, &p.runs, lists, "runs", |s, run| {
            let _ = writeln!(
                s,
                "  {:>5}  {:<#18x}  {:<#12x}  {:>6}",
                run.order, run.addr, run.size, run.blocks
            );
        });
        if let Some(n) = &p.radix {
            let _ = writeln!(
                s,
                "radix tree: root {:#x}, {} tables + {} leaves = {} nodes, {:#x} bytes",
                n.root,
                n.tables,
                n.leaves,
                n.tables.saturating_add(n.leaves),
                n.bytes
            );
        }
        if let Some(m) = &p.v1_map {
            let bytes = m.bitmap_bytes.map_or_else(
                || "4096 or 512 bytes (both give this set)".to_owned(),
                |b| format!("{b} bytes"),
            );
            let _ = writeln!(
                s,
                "kho-v1 chunk list: first chunk {:#x}, {} chunks, {} bitmaps of {bytes}",
                m.first, m.chunks, m.bitmaps
            );
        }
    }

    if !r.subtrees.is_empty() {
        let _ = writeln!(s, "\nsubtrees ({}):", r.subtrees.len());
    }
    for t in &r.subtrees {
        let size = t
            .size
            .map_or_else(|| "no blob-size".to_owned(), |n| format!("{n:#x} bytes"));
        let _ = write!(s, "  {} at {:#x} ({size}): ", t.name, t.addr);
        subtree_content(s, &t.content, lists);
    }
}

/// `items`, one `line` each, cut to `lists` with a count of the rest.
fn list<T>(s: &mut String, items: &[T], lists: Lists, what: &str, line: impl Fn(&mut String, &T)) {
    let shown = match lists {
        Lists::All => items.len(),
        Lists::First(n) => n.min(items.len()),
    };
    for item in items.iter().take(shown) {
        line(s, item);
    }
    if shown < items.len() {
        let _ = writeln!(
            s,
            "  … and {} more {what} (--verbose lists them all)",
            items.len() - shown
        );
    }
}

fn subtree_content(s: &mut String, c: &Content, lists: Lists) {
    match c {
        Content::Memblock { regions } => {
            let _ = writeln!(
                s,
                "memblock-v1, {} region{}",
                regions.len(),
                plural(regions.len())
            );
            for r in regions {
                let _ = writeln!(
                    s,
                    "    reserve_mem {:?} at {:#x}+{:#x}",
                    r.name, r.start, r.size
                );
            }
        }
        Content::KexecMetadata {
            version,
            release,
            kexec_count,
        } => {
            let _ = writeln!(
                s,
                "kexec-metadata v{version}, previous release {release:?}, kexec count {kexec_count}"
            );
        }
        Content::KhoStub {
            generation,
            seed,
            records,
            vmalloc,
        } => {
            let _ = writeln!(
                s,
                "kho-stub blob of generation {generation}, seed {seed:#x}, {} folio{}",
                records.len(),
                plural(records.len())
            );
            list(s, records, lists, "records", |s, r| {
                if r.count > 1 {
                    let _ = writeln!(
                        s,
                        "    extent {:#x}: {} blocks of order {}, stride {} blocks, filled by generation {} (blocks {}.., checksum {:#018x})",
                        r.phys,
                        r.count,
                        r.order,
                        1u64 << r.spacing.min(63),
                        r.generation,
                        r.block,
                        r.checksum
                    );
                    return;
                }
                let _ = writeln!(
                    s,
                    "    folio {:#x} order {} filled by generation {} (block {}, checksum {:#018x})",
                    r.phys, r.order, r.generation, r.block, r.checksum
                );
            });
            match vmalloc {
                Vmalloc::Area(v) => {
                    let _ = writeln!(
                        s,
                        "    vmalloc area: {} pages in {} block{} of order {}, {} chunk{} from {:#x}, flags {:#x}",
                        v.total_pages,
                        v.blocks,
                        plural(v.blocks),
                        v.order,
                        v.chunks,
                        plural(v.chunks),
                        v.first,
                        v.flags
                    );
                }
                Vmalloc::None => s.push_str("    vmalloc area: none\n"),
                Vmalloc::Invalid => s.push_str("    vmalloc area: invalid (see problems)\n"),
            }
        }
        Content::KhoTest {
            nr_folios,
            csum,
            folios,
            vmalloc,
        } => {
            let _ = writeln!(
                s,
                "lib/test_kho.c data: {nr_folios} folio{}, csum {csum:#010x}",
                plural(*nr_folios as usize)
            );
            list(s, folios, lists, "folios", |s, f| {
                let _ = writeln!(s, "    folio {:#x} order {}", f.phys, f.order);
            });
            if let Vmalloc::Area(v) = vmalloc {
                let _ = writeln!(
                    s,
                    "    array: vmalloc area of {} page{}, {} chunk{} from {:#x}",
                    v.total_pages,
                    plural(v.total_pages as usize),
                    v.chunks,
                    plural(v.chunks),
                    v.first
                );
            }
        }
        Content::Unknown => s.push_str("format unknown to inspect\n"),
        Content::Invalid => s.push_str("invalid (see problems)\n"),
    }
}
