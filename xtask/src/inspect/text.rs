//! The human-readable form of an inspection: stable order, hex addresses.

use std::fmt::Write as _;

use super::Output;
use super::report::{Content, Report, Start, Vmalloc};

/// The whole report as text.
pub(crate) fn render(out: &Output) -> String {
    let mut s = String::new();
    let image = &out.image;
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
    let _ = writeln!(s, "start: {}", describe_start(out.start));
    report(&mut s, &out.report);
    s
}

fn describe_start(start: Start) -> String {
    match start {
        Start::Fdt(a) => format!("root KHO FDT at {a:#x} (--fdt)"),
        Start::X86BootParams(a) => format!("x86 boot_params at {a:#x} (--x86-boot-params)"),
        Start::Dtb(a) => format!("boot DTB at {a:#x} (--dtb)"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn report(s: &mut String, r: &Report) {
    if let Some(h) = &r.handover {
        let _ = writeln!(
            s,
            "handover: fdt={:#x} ({:#x} bytes) scratch={:#x}+{:#x}",
            h.fdt, h.fdt_size, h.scratch, h.scratch_len
        );
    }
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
            None => s.push_str("  (not a device tree)\n"),
        }
    }

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
        for run in &p.runs {
            let _ = writeln!(
                s,
                "  {:>5}  {:<#18x}  {:<#12x}  {:>6}",
                run.order, run.addr, run.size, run.blocks
            );
        }
        if let Some(n) = &p.radix {
            let _ = writeln!(
                s,
                "radix tree: root {:#x}, {} tables + {} leaves = {} nodes, {:#x} bytes",
                n.root,
                n.tables,
                n.leaves,
                n.tables + n.leaves,
                n.bytes
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
        subtree_content(s, &t.content);
    }

    if r.problems.is_empty() {
        s.push_str("\nproblems: none\n");
    } else {
        let _ = writeln!(s, "\nproblems ({}):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(s, "  {} at {}: {}", p.code, p.location, p.message);
        }
    }
}

fn subtree_content(s: &mut String, c: &Content) {
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
            for r in records {
                let _ = writeln!(
                    s,
                    "    folio {:#x} order {} filled by generation {} (block {}, checksum {:#018x})",
                    r.phys, r.order, r.generation, r.block, r.checksum
                );
            }
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
        Content::Unknown => s.push_str("format unknown to inspect\n"),
        Content::Invalid => s.push_str("invalid (see problems)\n"),
    }
}
