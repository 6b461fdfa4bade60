//! Cross-line invariants of a transcript: what the numbers of one generation
//! must agree with — the scenario's memory layout, `kho_scratch=`, the
//! previous generation's scratch areas and preserved set, and the knobs.
//!
//! [`check`] runs once the transcript's shape is right (every line present
//! and in order, see `check.rs`). Per generation it asserts:
//!
//! - **memory** (`KHO memory`): every range lies inside its node's span as
//!   QEMU configures it (`layout::node_spans`), every node has its span
//!   (less at most 1 MiB of firmware holes), and the map is the same in
//!   every generation;
//! - **scratch** (`KHO scratch`): one `lowmem`, one `global` and one
//!   `nodeN` area per configured node, each inside one RAM range (a node's
//!   inside that node's RAM and span), pairwise disjoint; and, per the
//!   scenario's scratch expectation, freshly sized from `kho_scratch=`
//!   (`layout::fresh_sizes`) or identical to the previous generation's; a
//!   revived generation's scratch array lies in the previous one's scratch;
//! - **accounting**: a revived generation verifies what the previous one
//!   preserved (`folios`, `bytes`, `vmalloc-pages`, `log-lines`,
//!   `subtrees`; a partial one all but the failed client's), and counts one
//!   more kexec; a cold or failed one verifies nothing;
//! - **knobs**: `vmalloc_pages` and `subtrees` show in every `preserve`;
//!   with `subtrees = "max"` the outgoing root FDT has that many `client-`
//!   subtrees and no room for one more in its page.

use super::check::Plan;
use super::layout::{self, FreshSizes, MIB, Span};
use super::protocol::{self, Line, Verb};
use super::scenario::{Expect, ScratchExpect, Subtrees};

/// The root FDT is one page.
const ROOT_FDT_PAGE: u64 = 4096;

/// Structure-block bytes of one more `client-NNN` subtree: begin-node tag
/// (4), its name padded (`client-NNN\0`, 12), two 8-byte properties (12 +
/// 8 each), end-node tag (4). Property names are already in the strings block.
const CLIENT_NODE_BYTES: u64 = 4 + 12 + 2 * (12 + 8) + 4;

/// Firmware may keep this much of a node's span (x86: below 1 MiB and a few
/// pages at the top of RAM).
const FIRMWARE_SLACK: u64 = MIB;

/// Fields a revived generation's `verify` must share with the previous `preserve`.
const CARRIED: [&str; 5] = ["folios", "bytes", "vmalloc-pages", "log-lines", "subtrees"];

/// A scratch area as printed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Area {
    kind: String,
    span: Span,
}

/// One generation's lines, by verb.
#[derive(Debug, Default)]
struct Gen<'l> {
    memory: Vec<(usize, Span, u32)>,
    areas: Vec<(usize, Area)>,
    revival: Option<(usize, &'l Line)>,
    verify: Option<(usize, &'l Line)>,
    preserve: Option<(usize, &'l Line)>,
    fdt_out: Option<(usize, &'l Line)>,
    /// `KHO scratch` lines seen, empty areas included.
    scratch_lines: u64,
    /// Kinds of the empty areas a Linux handover had (not in `areas`).
    empty_kinds: Vec<String>,
    /// `KHO image`: where this generation runs.
    image: Option<(usize, Span)>,
    /// `KHO segments`: every range the next kernel reads at boot.
    segments: Option<(usize, Vec<Span>)>,
    kexec: Option<usize>,
    /// `heap=` of the `KHO kexec` or `KHO done` line: the heap's high-water
    /// mark over the generation.
    heap: Option<(usize, Option<u64>)>,
}

/// Every invariant problem in the transcript (`lines` as collected by
/// `check::check`: line number and parsed line, generations in order).
pub(crate) fn check(plan: &Plan<'_>, lines: &[(usize, Line)]) -> Vec<String> {
    let mut failures = Vec::new();
    let gens = collect(plan, lines, &mut failures);
    let s = plan.scenario;
    let spans = match layout::node_spans(plan.arch.name, s.memory_mib, s.numa_nodes) {
        Ok(spans) => spans,
        Err(e) => {
            failures.push(format!("memory layout: {e:#}"));
            return failures;
        }
    };
    let fresh = layout::scratch_spec(plan.cmdline)
        .map(|spec| (spec, layout::fresh_sizes(spec, plan.image_bytes)));
    let holes = layout::node_holes(plan.arch.name, s.memory_mib, s.numa_nodes);
    let mut first_memory: Option<Vec<(Span, u32)>> = None;
    for (g, cur) in gens.iter().enumerate() {
        let g = g as u32;
        // Generations before the stub's first are another kernel's (Linux).
        if g < plan.first {
            continue;
        }
        let prev = g
            .checked_sub(1)
            .filter(|&p| p >= plan.first)
            .and_then(|p| gens.get(p as usize));
        check_memory(g, cur, &spans, &holes, &mut first_memory, &mut failures);
        check_areas(g, cur, &spans, &mut failures);
        let expect = plan.expect(g);
        let scratch = if g == plan.first && g > 0 {
            // Inherited from Linux: nothing of ours to compare with.
            ScratchExpect::Any
        } else {
            s.scratch
                .get(g as usize)
                .copied()
                .unwrap_or_else(|| expect.default_scratch())
        };
        match &fresh {
            Ok((spec, sizes)) => {
                check_scratch_expectation(g, cur, prev, scratch, *spec, *sizes, &mut failures)
            }
            Err(e) if g == 0 => failures.push(format!("kho_scratch=: {e:#}")),
            Err(_) => {}
        }
        if expect.revives()
            && let Some(prev) = prev
        {
            check_array_in_scratch(g, cur, prev, &mut failures);
            check_image_in_scratch(g, cur, prev, &mut failures);
        }
        check_segments_in_scratch(g, cur, &mut failures);
        let after_fault = plan.fault.is_some_and(|f| f + 1 == g);
        check_accounting(g, expect, after_fault, cur, prev, &mut failures);
        check_knobs(plan, g, cur, &mut failures);
    }
    check_heap(plan.first, &gens, &mut failures);
    failures
}

/// What a generation did, for comparing heap use: the `preserve` line's
/// fields (but the log, which gains a line per generation in the same
/// region) and how the revival went.
#[derive(Debug, PartialEq, Eq)]
struct Workload {
    preserved: Vec<(String, String)>,
    revival: Option<String>,
}

fn workload(cur: &Gen<'_>) -> Option<Workload> {
    let (_, preserve) = cur.preserve?;
    let fields = preserve
        .fields
        .iter()
        .filter(|(k, _)| k != "gen" && k != "log-lines")
        .cloned()
        .collect();
    let revival = cur
        .revival
        .and_then(|(_, r)| r.get("result").map(str::to_owned));
    Some(Workload {
        preserved: fields,
        revival,
    })
}

/// Bytes a stable stretch's heap mark may exceed its first generation's:
/// the generation number is in a few strings alive at the peak (the next
/// command line, the log line), and each extra decimal digit can move a
/// block boundary by 8 bytes. A real leak passes this within a few
/// generations; a 1000-generation soak adds three digits.
pub(crate) const HEAP_SLACK: u64 = 64;

/// **heap**: every generation reports its heap high-water mark (`heap=` on
/// `KHO kexec` / `KHO done`). Once the preserved set is stable — the same
/// `preserve` line three generations running, so generation `g` revives
/// and builds exactly what `g - 1` did, with the same revival result — the
/// mark may not grow past the stretch's first mark plus [`HEAP_SLACK`]:
/// the stub's memory does not drift, however long the stretch.
fn check_heap(first: u32, gens: &[Gen<'_>], failures: &mut Vec<String>) {
    // (generation, mark) where the current stable stretch began.
    let mut base: Option<(u32, u64)> = None;
    for (g, cur) in gens.iter().enumerate().skip(first as usize) {
        let g = g as u32;
        let heap = match cur.heap {
            Some((n, None)) => {
                failures.push(format!(
                    "line {n}: generation {g}: no numeric heap= (the heap's high-water mark)"
                ));
                base = None;
                continue;
            }
            Some((n, Some(heap))) => (n, heap),
            None => {
                base = None;
                continue;
            }
        };
        let stable = g >= first + 2
            && match (
                gens.get(g as usize - 2).and_then(workload),
                gens.get(g as usize - 1).and_then(workload),
                workload(cur),
            ) {
                (Some(a), Some(b), Some(c)) => a.preserved == b.preserved && b == c,
                _ => false,
            };
        if !stable {
            base = None;
            continue;
        }
        let (n, heap) = heap;
        match base {
            None => {
                // The stretch starts at the previous generation, which did
                // exactly this generation's work.
                base = match gens[g as usize - 1].heap {
                    Some((_, Some(before))) => Some((g - 1, before)),
                    _ => Some((g, heap)),
                };
                if let Some((bg, before)) = base
                    && heap > before + HEAP_SLACK
                {
                    failures.push(format!(
                        "line {n}: generation {g}: heap high-water mark grew from {before} (generation {bg}) to {heap} bytes with the same preserved set"
                    ));
                }
            }
            Some((bg, before)) if heap > before + HEAP_SLACK => failures.push(format!(
                "line {n}: generation {g}: heap high-water mark grew from {before} (generation {bg}) to {heap} bytes with the same preserved set"
            )),
            Some(_) => {}
        }
    }
}

fn collect<'l>(
    plan: &Plan<'_>,
    lines: &'l [(usize, Line)],
    failures: &mut Vec<String>,
) -> Vec<Gen<'l>> {
    let mut gens: Vec<Gen<'l>> = (0..plan.generations).map(|_| Gen::default()).collect();
    for (n, line) in lines {
        let Some((g, cur)) = line
            .generation()
            .and_then(|g| Some((g, gens.get_mut(g as usize)?)))
        else {
            continue;
        };
        let n = *n;
        match &line.verb {
            Verb::Other(w) if w == "memory" => {
                match (
                    line.num("addr"),
                    line.num("size"),
                    line.num("node").and_then(|x| u32::try_from(x).ok()),
                ) {
                    (Some(addr), Some(size), Some(node)) if size > 0 => {
                        match Span::at(addr, size) {
                            Some(span) => cur.memory.push((n, span, node)),
                            None => failures.push(format!("line {n}: memory range wraps")),
                        }
                    }
                    _ => failures.push(format!(
                        "line {n}: `KHO memory` needs numeric addr=, size= (non-zero) and node="
                    )),
                }
            }
            Verb::Scratch => match (
                line.num("index"),
                line.get("kind"),
                line.num("addr"),
                line.num("size"),
            ) {
                (Some(index), Some(kind), Some(addr), Some(size)) => {
                    if index != cur.scratch_lines {
                        failures.push(format!(
                            "line {n}: scratch index={index}, expected {} (areas are printed in array order)",
                            cur.scratch_lines
                        ));
                    }
                    cur.scratch_lines += 1;
                    match Span::at(addr, size) {
                        // Linux hands over zero-size entries (docs/ABI.md);
                        // kho-rs never makes one, but passes on what it
                        // inherited (after the scratch-zero-size fault).
                        Some(_)
                            if size == 0
                                && (plan.first > 0 || plan.fault.is_some_and(|f| f < g)) =>
                        {
                            cur.empty_kinds.push(kind.to_owned())
                        }
                        Some(span) if size > 0 => cur.areas.push((
                            n,
                            Area {
                                kind: kind.to_owned(),
                                span,
                            },
                        )),
                        _ => failures.push(format!("line {n}: scratch area is empty or wraps")),
                    }
                }
                _ => failures.push(format!(
                    "line {n}: `KHO scratch` needs numeric index=, addr=, size= and a kind="
                )),
            },
            Verb::Other(w) if w == "image" => match (line.num("addr"), line.num("size")) {
                (Some(addr), Some(size)) if size > 0 => match Span::at(addr, size) {
                    Some(span) => cur.image = Some((n, span)),
                    None => failures.push(format!("line {n}: image range wraps")),
                },
                _ => failures.push(format!(
                    "line {n}: `KHO image` needs numeric addr= and size= (non-zero)"
                )),
            },
            Verb::Other(w) if w == "segments" => match parse_ranges(line) {
                Ok(spans) => cur.segments = Some((n, spans)),
                Err(e) => failures.push(format!("line {n}: `KHO segments`: {e}")),
            },
            Verb::Kexec => {
                cur.kexec = Some(n);
                cur.heap = Some((n, line.num("heap")));
            }
            Verb::Done => cur.heap = Some((n, line.num("heap"))),
            Verb::Revival => cur.revival = Some((n, line)),
            Verb::Verify => cur.verify = Some((n, line)),
            Verb::Preserve => cur.preserve = Some((n, line)),
            Verb::FdtOut => cur.fdt_out = Some((n, line)),
            _ => {}
        }
    }
    gens
}

fn check_memory(
    g: u32,
    cur: &Gen<'_>,
    spans: &[Span],
    holes: &[u64],
    first: &mut Option<Vec<(Span, u32)>>,
    failures: &mut Vec<String>,
) {
    if cur.memory.is_empty() {
        failures.push(format!("generation {g}: no `KHO memory` line"));
        return;
    }
    for (n, span, node) in &cur.memory {
        match spans.get(*node as usize) {
            None => failures.push(format!(
                "line {n}: generation {g}: memory {span} is on node {node}, but the scenario has {} node(s)",
                spans.len()
            )),
            Some(home) if !home.contains(span) => failures.push(format!(
                "line {n}: generation {g}: memory {span} node={node} is outside node {node}'s memory {home} (QEMU gives node i the i-th memory/nodes bytes)"
            )),
            Some(_) => {}
        }
    }
    for (i, home) in spans.iter().enumerate() {
        let seen: u64 = cur
            .memory
            .iter()
            .filter(|(_, _, node)| *node as usize == i)
            .map(|(_, span, _)| span.size())
            .sum();
        let hole = holes.get(i).copied().unwrap_or(0);
        if seen + FIRMWARE_SLACK + hole < home.size() {
            failures.push(format!(
                "generation {g}: the stub sees {seen:#x} bytes of node {i}'s memory {home} ({:#x} bytes)",
                home.size()
            ));
        }
    }
    let map: Vec<(Span, u32)> = cur.memory.iter().map(|(_, s, n)| (*s, *n)).collect();
    match first {
        None => *first = Some(map),
        Some(first) if *first != map => failures.push(format!(
            "generation {g}: the memory map differs from generation 0's (same machine, same map)"
        )),
        Some(_) => {}
    }
}

/// One area per kind, each in RAM (a node's on its node), pairwise disjoint.
fn check_areas(g: u32, cur: &Gen<'_>, spans: &[Span], failures: &mut Vec<String>) {
    if cur.areas.is_empty() {
        failures.push(format!("generation {g}: no `KHO scratch` line"));
        return;
    }
    let mut wanted: Vec<String> = vec!["lowmem".into(), "global".into()];
    wanted.extend((0..spans.len()).map(|i| format!("node{i}")));
    for kind in &wanted {
        let count = cur.areas.iter().filter(|(_, a)| &a.kind == kind).count()
            + cur.empty_kinds.iter().filter(|k| *k == kind).count();
        if count != 1 {
            failures.push(format!(
                "generation {g}: {count} scratch areas of kind {kind} (want exactly one)"
            ));
        }
    }
    for (i, (n, area)) in cur.areas.iter().enumerate() {
        if !wanted.contains(&area.kind) {
            failures.push(format!(
                "line {n}: generation {g}: scratch kind={} is not one of {}",
                area.kind,
                wanted.join(", ")
            ));
        }
        let node = area
            .kind
            .strip_prefix("node")
            .and_then(|x| x.parse::<u32>().ok());
        let in_ram = cur.memory.iter().any(|(_, span, mem_node)| {
            span.contains(&area.span) && node.is_none_or(|x| x == *mem_node)
        });
        if !in_ram {
            let what = node.map_or("one RAM range".to_owned(), |x| {
                format!("one RAM range of node {x}")
            });
            failures.push(format!(
                "line {n}: generation {g}: scratch {} {} is not inside {what} (KHO memory lines)",
                area.kind, area.span
            ));
        }
        if let Some(x) = node
            && let Some(home) = spans.get(x as usize)
            && !home.contains(&area.span)
        {
            failures.push(format!(
                "line {n}: generation {g}: scratch {} {} is outside node {x}'s memory {home}",
                area.kind, area.span
            ));
        }
        for (m, other) in &cur.areas[..i] {
            if other.span.overlaps(&area.span) {
                failures.push(format!(
                    "line {n}: generation {g}: scratch {} {} overlaps {} {} (line {m})",
                    area.kind, area.span, other.kind, other.span
                ));
            }
        }
    }
}

fn check_scratch_expectation(
    g: u32,
    cur: &Gen<'_>,
    prev: Option<&Gen<'_>>,
    expect: ScratchExpect,
    spec: layout::ScratchSpec,
    sizes: Option<FreshSizes>,
    failures: &mut Vec<String>,
) {
    let areas: Vec<&Area> = cur.areas.iter().map(|(_, a)| a).collect();
    let prev_areas: Option<Vec<&Area>> = prev.map(|p| p.areas.iter().map(|(_, a)| a).collect());
    let inherited = || prev_areas.as_ref().is_some_and(|p| *p == areas);
    let fresh_problems = || -> Vec<String> {
        let Some(sizes) = sizes else {
            return Vec::new();
        };
        areas
            .iter()
            .filter_map(|a| {
                let want = match a.kind.as_str() {
                    "lowmem" => sizes.lowmem,
                    "global" => sizes.global,
                    _ => sizes.node,
                };
                (a.span.size() != want).then(|| {
                    format!(
                        "{} is {:#x} bytes, {spec} gives {want:#x}",
                        a.kind,
                        a.span.size()
                    )
                })
            })
            .collect()
    };
    let describe_prev = || {
        prev_areas.as_ref().map_or("none".to_owned(), |p| {
            p.iter()
                .map(|a| format!("{} {}", a.kind, a.span))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    match expect {
        ScratchExpect::Any => {}
        ScratchExpect::Fresh => {
            for p in fresh_problems() {
                failures.push(format!("generation {g}: fresh scratch: {p}"));
            }
        }
        ScratchExpect::Inherited => {
            if prev_areas.is_some() && !inherited() {
                failures.push(format!(
                    "generation {g}: scratch areas are not the previous generation's ({})",
                    describe_prev()
                ));
            }
        }
        ScratchExpect::FreshOrInherited => {
            let problems = fresh_problems();
            if !problems.is_empty() && !inherited() {
                failures.push(format!(
                    "generation {g}: scratch areas are neither the previous generation's nor freshly sized ({})",
                    problems.join("; ")
                ));
            }
        }
    }
}

/// `revival … scratch=ADDR+LEN`: the handed-over array lies in the scratch
/// the previous generation used (everything a kexec passes is in scratch).
fn check_array_in_scratch(g: u32, cur: &Gen<'_>, prev: &Gen<'_>, failures: &mut Vec<String>) {
    let Some((n, revival)) = cur.revival else {
        return;
    };
    let Some(field) = revival.get("scratch") else {
        failures.push(format!(
            "line {n}: generation {g}: revival result=ok without scratch=ADDR+LEN"
        ));
        return;
    };
    let array = field
        .split_once('+')
        .and_then(|(a, l)| Span::at(protocol::parse_num(a)?, protocol::parse_num(l)?));
    match array {
        None => failures.push(format!(
            "line {n}: generation {g}: revival scratch={field} is not ADDR+LEN"
        )),
        Some(array) => {
            if !prev.areas.iter().any(|(_, a)| a.span.contains(&array)) {
                failures.push(format!(
                    "line {n}: generation {g}: the scratch array {array} is not inside a scratch area of generation {}",
                    g - 1
                ));
            }
        }
    }
}

/// `ranges=A+S,A+S,…` with `count=N`.
fn parse_ranges(line: &Line) -> Result<Vec<Span>, String> {
    let field = line.get("ranges").ok_or("no ranges= field")?;
    let spans: Vec<Span> = field
        .split(',')
        .map(|r| {
            r.split_once('+')
                .and_then(|(a, l)| Span::at(protocol::parse_num(a)?, protocol::parse_num(l)?))
                .filter(|s| s.end > s.start)
                .ok_or_else(|| format!("{r} is not a non-empty ADDR+LEN"))
        })
        .collect::<Result<_, _>>()?;
    match line.num("count") {
        Some(c) if c == spans.len() as u64 => Ok(spans),
        Some(c) => Err(format!("count={c} but ranges= lists {}", spans.len())),
        None => Err("no numeric count= field".to_owned()),
    }
}

/// A generation entered by a kexec runs where the previous one placed it:
/// inside that generation's scratch (a kexec segment like any other).
fn check_image_in_scratch(g: u32, cur: &Gen<'_>, prev: &Gen<'_>, failures: &mut Vec<String>) {
    match cur.image {
        None => failures.push(format!("generation {g}: no `KHO image` line")),
        Some((n, image)) => {
            if !prev.areas.iter().any(|(_, a)| a.span.contains(&image)) {
                failures.push(format!(
                    "line {n}: generation {g}: the running image {image} is not inside a scratch area of generation {}",
                    g - 1
                ));
            }
        }
    }
}

/// The scratch rule: every kexec segment (kernel, zero page or DTB,
/// command line, initrd, scratch array) lies inside one scratch area.
fn check_segments_in_scratch(g: u32, cur: &Gen<'_>, failures: &mut Vec<String>) {
    match (&cur.segments, cur.kexec) {
        (None, Some(n)) => failures.push(format!(
            "line {n}: generation {g} kexecs without a `KHO segments` line"
        )),
        (None, None) => {}
        (Some((n, spans)), _) => {
            for span in spans {
                if !cur.areas.iter().any(|(_, a)| a.span.contains(span)) {
                    failures.push(format!(
                        "line {n}: generation {g}: kexec segment {span} is not inside one scratch area"
                    ));
                }
            }
        }
    }
}

/// `after_fault`: the previous generation's handover was corrupted on
/// purpose, so its kexec count may be anything (a fault class sets it).
fn check_accounting(
    g: u32,
    expect: &Expect,
    after_fault: bool,
    cur: &Gen<'_>,
    prev: Option<&Gen<'_>>,
    failures: &mut Vec<String>,
) {
    let Some((n, verify)) = cur.verify else {
        return;
    };
    let count = |line: &Line| line.num("kexec-count");
    match expect {
        Expect::Verified | Expect::Partial { .. } => {
            let Some((pn, preserve)) = prev.and_then(|p| p.preserve) else {
                return;
            };
            // A partial revival restores at most what was preserved: the
            // failed client's folios, bytes, pages, log or subtree are
            // missing.
            let partial = matches!(expect, Expect::Partial { .. });
            for field in CARRIED {
                match (verify.num(field), preserve.num(field)) {
                    (Some(got), Some(want)) if got != want && !(partial && got < want) => failures.push(format!(
                        "line {n}: generation {g}: verify {field}={got}, but generation {} preserved {field}={want} (line {pn})",
                        g - 1
                    )),
                    (None, Some(_)) if matches!(field, "folios" | "bytes") => failures.push(format!(
                        "line {n}: generation {g}: verify has no numeric {field}="
                    )),
                    _ => {}
                }
            }
            let prev_count = prev.and_then(|p| p.verify).and_then(|(_, v)| count(v));
            // The count is a u32 that wraps, as Linux's does; a partial
            // revival that lost kexec-metadata starts again at 0, as Linux
            // does.
            if let (Some(got), Some(before)) = (count(verify), prev_count)
                && got != (before + 1) % (1 << 32)
                && !(partial && got == 0)
                && !after_fault
            {
                failures.push(format!(
                    "line {n}: generation {g}: kexec-count={got}, want {} (one more than generation {}'s)",
                    (before + 1) % (1 << 32),
                    g - 1
                ));
            }
        }
        Expect::Cold | Expect::Failed { .. } => {
            for field in ["folios", "bytes", "kexec-count"] {
                if let Some(v) = verify.num(field)
                    && v != 0
                {
                    failures.push(format!(
                        "line {n}: generation {g}: verify {field}={v} on a cold boot (nothing was revived)"
                    ));
                }
            }
        }
    }
}

fn check_knobs(plan: &Plan<'_>, g: u32, cur: &Gen<'_>, failures: &mut Vec<String>) {
    let s = plan.scenario;
    let Some((n, preserve)) = cur.preserve else {
        return;
    };
    if let Some(pages) = s.vmalloc_pages
        && preserve.num("vmalloc-pages") != Some(u64::from(pages))
    {
        failures.push(format!(
            "line {n}: generation {g}: preserve vmalloc-pages={}, but the scenario sets vmalloc_pages = {pages}",
            preserve.get("vmalloc-pages").unwrap_or("(missing)")
        ));
    }
    let subtrees = preserve.num("subtrees");
    match s.subtrees {
        None | Some(Subtrees::Count(_)) => {
            let want = match s.subtrees {
                Some(Subtrees::Count(k)) => u64::from(k),
                _ => 0,
            };
            if subtrees.unwrap_or(0) != want {
                failures.push(format!(
                    "line {n}: generation {g}: preserve subtrees={}, want {want}",
                    subtrees.unwrap_or(0)
                ));
            }
        }
        Some(Subtrees::Max) => {
            let Some(count) = subtrees.filter(|k| *k > 0) else {
                failures.push(format!(
                    "line {n}: generation {g}: subtrees = \"max\" but preserve subtrees={}",
                    preserve.get("subtrees").unwrap_or("(missing)")
                ));
                return;
            };
            if plan.fault != Some(g) {
                check_full_page(g, cur, count, failures);
            }
        }
    }
}

/// With `subtrees = "max"`: the outgoing root FDT holds `count` client
/// subtrees and has no room for one more in its page.
fn check_full_page(g: u32, cur: &Gen<'_>, count: u64, failures: &mut Vec<String>) {
    let Some((n, line)) = cur.fdt_out else {
        return;
    };
    let Some(bytes) = line.get("hex").and_then(|h| protocol::decode_hex(h).ok()) else {
        return;
    };
    let Ok(fdt) = kho_fdt::KhoFdt::parse(&bytes) else {
        return;
    };
    let clients = fdt
        .subtrees()
        .filter(|t| t.name().starts_with("client-"))
        .count() as u64;
    if clients != count {
        failures.push(format!(
            "line {n}: generation {g}: fdt-out has {clients} client- subtrees, preserve says {count}"
        ));
    }
    let size = fdt.total_size() as u64;
    if size > ROOT_FDT_PAGE || ROOT_FDT_PAGE - size >= CLIENT_NODE_BYTES {
        failures.push(format!(
            "line {n}: generation {g}: subtrees = \"max\", but the root FDT is {size} bytes: one more client subtree ({CLIENT_NODE_BYTES} bytes) {} in its {ROOT_FDT_PAGE}-byte page",
            if size > ROOT_FDT_PAGE { "already overflows" } else { "would still fit" }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::arch::ArchSpec;
    use crate::vm::scenario::{self, Scenario};

    fn scenario(extra: &str) -> Scenario {
        scenario::parse(
            "t",
            &format!("description = \"t\"\narches = [\"x86_64\", \"aarch64\"]\nseed = 1\n{extra}"),
        )
        .unwrap()
    }

    /// Run the invariants over `text` (one protocol line per line).
    fn failures(s: &Scenario, arch: &str, text: &str, image: Option<u64>) -> Vec<String> {
        let cmdline = s.compose_cmdline(None);
        let arch = ArchSpec::find(arch).unwrap();
        let plan = Plan::new(s, arch, &cmdline).with_image_bytes(image);
        let lines: Vec<(usize, Line)> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| (i + 1, protocol::parse(l).unwrap().unwrap()))
            .collect();
        check(&plan, &lines)
    }

    fn assert_has(failures: &[String], want: &str) {
        assert!(
            failures.iter().any(|f| f.contains(want)),
            "no failure contains {want:?}: {failures:#?}"
        );
    }

    /// Only the heap invariant over `text`.
    fn heap_failures(s: &Scenario, text: &str) -> Vec<String> {
        let cmdline = s.compose_cmdline(None);
        let plan = Plan::new(s, ArchSpec::find("x86_64").unwrap(), &cmdline);
        let lines: Vec<(usize, Line)> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| (i + 1, protocol::parse(l).unwrap().unwrap()))
            .collect();
        let mut ignored = Vec::new();
        let gens = collect(&plan, &lines, &mut ignored);
        let mut failures = Vec::new();
        check_heap(plan.first, &gens, &mut failures);
        failures
    }

    #[test]
    fn the_heap_may_not_grow_once_the_preserved_set_is_stable() {
        let s = scenario("memory = \"512M\"\ngenerations = 9\n");
        let generation = |g: u32, folios: u32, heap: &str| {
            format!(
                "KHO revival gen={g} result=ok\nKHO preserve gen={g} folios={folios} bytes=1 log-lines={g}\nKHO kexec gen={g} next={} {heap}\n",
                g + 1
            )
        };
        // Growing with the preserved set is fine. Generations 2 and 3 do the
        // same work (each revives and builds 8 folios), so the stretch's base
        // is generation 2's 200 bytes.
        let mut text = generation(0, 4, "heap=100") + &generation(1, 8, "heap=300");
        text += &generation(2, 8, "heap=200");
        text += &generation(3, 8, "heap=208");
        assert_eq!(heap_failures(&s, &text), Vec::<String>::new());
        // A digit more in a live string is within the slack...
        text += &generation(4, 8, &format!("heap={}", 200 + HEAP_SLACK));
        assert_eq!(heap_failures(&s, &text), Vec::<String>::new());
        // ...a creeping leak is not, however slowly it creeps.
        text += &generation(5, 8, &format!("heap={}", 201 + HEAP_SLACK));
        let f = heap_failures(&s, &text);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_has(
            &f,
            "generation 5: heap high-water mark grew from 200 (generation 2) to 265 bytes",
        );
        // A different revival result starts a new stretch.
        let cold = text.replace(
            "KHO revival gen=5 result=ok",
            "KHO revival gen=5 result=failed",
        );
        assert_eq!(heap_failures(&s, &cold), Vec::<String>::new());
        text += &generation(6, 8, "");
        assert_has(&heap_failures(&s, &text), "generation 6: no numeric heap=");
    }

    /// numa2 on x86_64 as the stub prints it (1 GiB, two 512 MiB nodes).
    const NUMA2_X86: &str = "
        KHO image gen=0 addr=0x100000 size=0x474000
        KHO memory gen=0 addr=0x0 size=0x9fc00 node=0
        KHO memory gen=0 addr=0x100000 size=0x1ff00000 node=0
        KHO memory gen=0 addr=0x20000000 size=0x1ffe0000 node=1
        KHO revival gen=0 result=none reason=\"no handover\"
        KHO scratch gen=0 index=0 kind=lowmem addr=0x3ee00000 size=0x1000000
        KHO scratch gen=0 index=1 kind=global addr=0x3ae00000 size=0x4000000
        KHO scratch gen=0 index=2 kind=node0 addr=0x1e000000 size=0x2000000
        KHO scratch gen=0 index=3 kind=node1 addr=0x38e00000 size=0x2000000
        KHO verify gen=0 folios=0 bytes=0 vmalloc-pages=0 log-lines=0 subtrees=0 kexec-count=0 result=ok
        KHO preserve gen=0 folios=4 bytes=4599808 unpreserved=1 vmalloc-pages=600 log-lines=1 subtrees=0
        KHO image gen=1 addr=0x1e001000 size=0x474000
        KHO memory gen=1 addr=0x0 size=0x9fc00 node=0
        KHO memory gen=1 addr=0x100000 size=0x1ff00000 node=0
        KHO memory gen=1 addr=0x20000000 size=0x1ffe0000 node=1
        KHO revival gen=1 result=ok fdt=0x572000 scratch=0x1e000000+0x40
        KHO scratch gen=1 index=0 kind=lowmem addr=0x3ee00000 size=0x1000000
        KHO scratch gen=1 index=1 kind=global addr=0x3ae00000 size=0x4000000
        KHO scratch gen=1 index=2 kind=node0 addr=0x1e000000 size=0x2000000
        KHO scratch gen=1 index=3 kind=node1 addr=0x38e00000 size=0x2000000
        KHO verify gen=1 folios=4 bytes=4599808 vmalloc-pages=600 log-lines=1 subtrees=0 kexec-count=1 result=ok
    ";

    fn numa2() -> Scenario {
        scenario(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\n",
        )
    }

    #[test]
    fn a_real_numa_transcript_passes() {
        assert_eq!(
            failures(&numa2(), "x86_64", NUMA2_X86, None),
            Vec::<String>::new()
        );
    }

    #[test]
    fn numa_areas_must_sit_on_their_own_node() {
        let s = numa2();
        // node1's area moved into node 0's memory.
        let moved = NUMA2_X86.replace("kind=node1 addr=0x38e00000", "kind=node1 addr=0x1c000000");
        let f = failures(&s, "x86_64", &moved, None);
        assert_has(
            &f,
            "scratch node1 [0x1c000000, 0x1e000000) is not inside one RAM range of node 1",
        );
        assert_has(&f, "is outside node 1's memory [0x20000000, 0x40000000)");
        // One node's area missing, another duplicated.
        let dup = NUMA2_X86.replace("kind=node1 addr=0x38e00000", "kind=node0 addr=0x38e00000");
        let f = failures(&s, "x86_64", &dup, None);
        assert_has(&f, "2 scratch areas of kind node0");
        assert_has(&f, "0 scratch areas of kind node1");
        // The stub's NUMA discovery disagrees with QEMU's split.
        let wrong = NUMA2_X86.replace(
            "addr=0x100000 size=0x1ff00000 node=0",
            "addr=0x100000 size=0x1ff00000 node=1",
        );
        let f = failures(&s, "x86_64", &wrong, None);
        assert_has(
            &f,
            "memory [0x100000, 0x20000000) node=1 is outside node 1's memory",
        );
        assert_has(&f, "the stub sees 0x9fc00 bytes of node 0's memory");
        // A node the scenario does not have.
        let extra = NUMA2_X86.replace("size=0x1ffe0000 node=1", "size=0x1ffe0000 node=2");
        assert_has(
            &failures(&s, "x86_64", &extra, None),
            "is on node 2, but the scenario has 2 node(s)",
        );
    }

    #[test]
    fn arm64_ram_starts_at_one_gib() {
        let s = numa2();
        let arm = NUMA2_X86
            .replace("KHO memory gen=0 addr=0x0 size=0x9fc00 node=0\n", "")
            .replace("KHO memory gen=1 addr=0x0 size=0x9fc00 node=0\n", "");
        // x86 addresses are below arm64's RAM: every range is off its node.
        assert_has(
            &failures(&s, "aarch64", &arm, None),
            "is outside node 0's memory [0x40000000, 0x60000000)",
        );
    }

    #[test]
    fn scratch_sizes_follow_kho_scratch() {
        let s = scenario(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,60M,32M\"\ngenerations = 2\n",
        );
        assert_has(
            &failures(&s, "x86_64", NUMA2_X86, None),
            "generation 0: fresh scratch: global is 0x4000000 bytes, kho_scratch=0x1000000,0x3c00000,0x2000000 gives 0x3c00000",
        );
        // 50 % of a 0x471000-byte image: lowmem 4 MiB, the rest 2 MiB.
        let s = scenario(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=50%\"\ngenerations = 2\n",
        );
        let pct = NUMA2_X86
            .replace("size=0x1000000", "size=0x400000")
            .replace("size=0x4000000", "size=0x200000")
            .replace(
                "kind=node0 addr=0x1e000000 size=0x2000000",
                "kind=node0 addr=0x1e000000 size=0x200000",
            )
            .replace(
                "kind=node1 addr=0x38e00000 size=0x2000000",
                "kind=node1 addr=0x38e00000 size=0x200000",
            )
            // A smaller image, in what is now the only area it fits.
            .replace(
                "KHO image gen=1 addr=0x1e001000 size=0x474000",
                "KHO image gen=1 addr=0x3ee00000 size=0x300000",
            );
        assert_eq!(
            failures(&s, "x86_64", &pct, Some(0x47_1000)),
            Vec::<String>::new()
        );
        assert_has(
            &failures(&s, "x86_64", &pct, Some(0x90_0000)),
            "lowmem is 0x400000 bytes, kho_scratch=50% gives 0x600000",
        );
    }

    #[test]
    fn revived_generations_inherit_scratch_and_the_array_lies_in_it() {
        let s = numa2();
        let moved = NUMA2_X86.replace(
            "gen=1 index=1 kind=global addr=0x3ae00000",
            "gen=1 index=1 kind=global addr=0x34e00000",
        );
        assert_has(
            &failures(&s, "x86_64", &moved, None),
            "generation 1: scratch areas are not the previous generation's",
        );
        let array = NUMA2_X86.replace("scratch=0x1e000000+0x40", "scratch=0x1000+0x40");
        assert_has(
            &failures(&s, "x86_64", &array, None),
            "the scratch array [0x1000, 0x1040) is not inside a scratch area of generation 0",
        );
    }

    #[test]
    fn kexec_segments_and_the_running_image_lie_in_scratch() {
        let s = numa2();
        let outside = NUMA2_X86.replace(
            "KHO image gen=1 addr=0x1e001000",
            "KHO image gen=1 addr=0x100000",
        );
        assert_has(
            &failures(&s, "x86_64", &outside, None),
            "the running image [0x100000, 0x574000) is not inside a scratch area of generation 0",
        );
        let missing = NUMA2_X86.replace("KHO image gen=1 addr=0x1e001000 size=0x474000", "");
        assert_has(
            &failures(&s, "x86_64", &missing, None),
            "generation 1: no `KHO image` line",
        );
        let segments = format!(
            "{NUMA2_X86}\nKHO segments gen=0 count=2 ranges=0x1e000000+0x40,0x3ae00000+0x1000\nKHO kexec gen=0 next=1 heap=4096"
        );
        assert_eq!(
            failures(&s, "x86_64", &segments, None),
            Vec::<String>::new()
        );
        let straddles = segments.replace("0x3ae00000+0x1000", "0x3edff000+0x2000");
        assert_has(
            &failures(&s, "x86_64", &straddles, None),
            "kexec segment [0x3edff000, 0x3ee01000) is not inside one scratch area",
        );
        let miscounted = segments.replace("count=2", "count=3");
        assert_has(
            &failures(&s, "x86_64", &miscounted, None),
            "count=3 but ranges= lists 2",
        );
        let none = format!("{NUMA2_X86}\nKHO kexec gen=0 next=1 heap=4096");
        assert_has(
            &failures(&s, "x86_64", &none, None),
            "generation 0 kexecs without a `KHO segments` line",
        );
    }

    #[test]
    fn failed_revivals_keep_or_replace_scratch() {
        let text = NUMA2_X86
            .replace(
                "gen=1 result=ok fdt=0x572000 scratch=0x1e000000+0x40",
                "gen=1 result=failed reason=\"scratch: preserved block\"",
            )
            .replace(
                "log-lines=1 subtrees=0 kexec-count=1",
                "log-lines=0 subtrees=0 kexec-count=0",
            )
            .replace("gen=1 folios=4 bytes=4599808", "gen=1 folios=0 bytes=0");
        let expect = "[[expect]]\ngeneration = 1\nresult = \"failed\"\nreason = \"scratch: *\"\n";
        let s = scenario(&format!(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\n{expect}"
        ));
        assert_eq!(failures(&s, "x86_64", &text, None), Vec::<String>::new());
        // Moved but freshly sized: fine. Resized and moved: neither.
        let moved = text.replace(
            "gen=1 index=1 kind=global addr=0x3ae00000",
            "gen=1 index=1 kind=global addr=0x34e00000",
        );
        assert_eq!(failures(&s, "x86_64", &moved, None), Vec::<String>::new());
        let odd = text.replace(
            "gen=1 index=1 kind=global addr=0x3ae00000 size=0x4000000",
            "gen=1 index=1 kind=global addr=0x600000 size=0x400000",
        );
        assert_has(
            &failures(&s, "x86_64", &odd, None),
            "neither the previous generation's nor freshly sized",
        );
        let any = scenario(&format!(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\n{expect}scratch = \"any\"\n"
        ));
        assert_eq!(failures(&any, "x86_64", &odd, None), Vec::<String>::new());
        // A failed revival verifies nothing.
        let verified = text.replace("gen=1 folios=0 bytes=0", "gen=1 folios=4 bytes=0");
        assert_has(
            &failures(&s, "x86_64", &verified, None),
            "verify folios=4 on a cold boot",
        );
    }

    #[test]
    fn a_revival_verifies_what_was_preserved() {
        let s = numa2();
        let short = NUMA2_X86.replace(
            "gen=1 folios=4 bytes=4599808",
            "gen=1 folios=4 bytes=4599807",
        );
        assert_has(
            &failures(&s, "x86_64", &short, None),
            "verify bytes=4599807, but generation 0 preserved bytes=4599808",
        );
        let count = NUMA2_X86.replace("kexec-count=1", "kexec-count=2");
        assert_has(
            &failures(&s, "x86_64", &count, None),
            "kexec-count=2, want 1",
        );
    }

    #[test]
    fn knobs_show_in_every_preserve() {
        let s = scenario(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\nvmalloc_pages = 5000\nsubtrees = 3\n",
        );
        let f = failures(&s, "x86_64", NUMA2_X86, None);
        assert_has(
            &f,
            "preserve vmalloc-pages=600, but the scenario sets vmalloc_pages = 5000",
        );
        assert_has(&f, "preserve subtrees=0, want 3");
    }

    /// A root FDT with `clients` client subtrees, as hex.
    fn fdt_with_clients(clients: usize) -> String {
        use kho_abi::AbiVersion;
        use kho_mem::PhysAddr;
        let mut b = kho_fdt::KhoFdtBuilder::new(AbiVersion::V2, PhysAddr::new(0x1000));
        for i in 0..clients {
            b.add_subtree(&format!("client-{i:03}"), PhysAddr::new(0x2000), Some(8))
                .unwrap();
        }
        let blob = b.build().unwrap();
        blob.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn subtrees_max_fills_the_root_page() {
        let s = scenario(
            "memory = \"1G\"\nnuma_nodes = 2\ncmdline = \"kho_scratch=16M,64M,32M\"\ngenerations = 2\nsubtrees = \"max\"\n",
        );
        let with = |clients: usize, said: usize| {
            let text = NUMA2_X86.replace(
                "gen=0 folios=4 bytes=4599808 unpreserved=1 vmalloc-pages=600 log-lines=1 subtrees=0",
                &format!(
                    "gen=0 folios=4 bytes=4599808 unpreserved=1 vmalloc-pages=600 log-lines=1 subtrees={said}\nKHO fdt-out gen=0 bytes=0 hex={}",
                    fdt_with_clients(clients)
                ),
            ).replace("subtrees=0 kexec-count=1", &format!("subtrees={said} kexec-count=1"));
            failures(&s, "x86_64", &text, None)
        };
        // How many fit: the empty root plus 60 bytes per client must stay within the page.
        let base = fdt_with_clients(0).len() as u64 / 2;
        let max = ((ROOT_FDT_PAGE - base) / CLIENT_NODE_BYTES) as usize;
        assert_eq!(with(max, max), Vec::<String>::new());
        assert_has(&with(max - 1, max - 1), "would still fit");
        assert_has(&with(max, max - 1), "fdt-out has");
        assert_has(&with(0, 0), "subtrees = \"max\" but preserve subtrees=0");
    }
}
