//! `cargo xtask plot`: the scaling picture of docs/BENCHMARKS.md, drawn
//! from the last `cargo bench -p kho-radix` run.
//!
//! Three panels, time per page against the preserved size (both axes
//! logarithmic): preserving pages one call each in address order and in a
//! random order, and walking them back. Each shows kho-rs (`RadixTree`
//! over the direct-map `PhysMem`), the re-implementation of Linux 7.2's
//! algorithm over the same memory, roaring and `BTreeSet`, from criterion's
//! medians (`target/criterion/<group>/<id>/new/`). The output is
//! `docs/benchmarks-scaling.svg`; it is deterministic for given medians.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

use crate::util::{project_root, target_dir};

/// The implementations drawn, as the bench names them, with their legend
/// and colour.
const SERIES: [(&str, &str, RGBColor); 4] = [
    ("radix-direct", "kho-rs", RGBColor(0xd6, 0x27, 0x28)),
    (
        "upstream-direct",
        "Linux 7.2's algorithm",
        RGBColor(0x1f, 0x77, 0xb4),
    ),
    ("roaring", "roaring", RGBColor(0x2c, 0xa0, 0x2c)),
    ("btreeset", "BTreeSet", RGBColor(0x7f, 0x7f, 0x7f)),
];

/// One point: (preserved bytes, ns per page).
type Point = (u64, f64);

/// A panel: its title and the points of an implementation in it.
type Panel<'a> = (&'a str, Box<dyn Fn(&str) -> Vec<Point> + 'a>);

/// A benchmark's id as the bench writes it: `<impl>/<case>`.
#[derive(Debug, PartialEq, Eq)]
struct Id<'a> {
    implementation: &'a str,
    case: &'a str,
}

fn parse_id(function_id: &str) -> Option<Id<'_>> {
    let (implementation, case) = function_id.split_once('/')?;
    Some(Id {
        implementation,
        case,
    })
}

/// The preserved size a case names: `sequential-1GiB` → 1 GiB; the walk's
/// `small` (256 pages) and `dense` (4 Mi pages) by their page counts.
fn case_bytes(case: &str, pages: u64) -> Option<u64> {
    let size = case.rsplit('-').next()?;
    let unit = |suffix: &str, shift: u32| {
        size.strip_suffix(suffix)
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| n.checked_mul(1 << shift))
    };
    unit("MiB", 20)
        .or_else(|| unit("GiB", 30))
        .or_else(|| matches!(case, "small" | "dense").then(|| pages * 4096))
}

/// Every benchmark of `group`: (implementation, case) → (pages, median ns).
fn read_group(group: &str) -> Result<BTreeMap<(String, String), (u64, f64)>> {
    let dir = target_dir().join("criterion").join(group);
    let entries = fs::read_dir(&dir).with_context(|| {
        format!(
            "no benchmark results in {} (run `cargo bench -p kho-radix` first)",
            dir.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let new = entry?.path().join("new");
        if !new.join("estimates.json").is_file() {
            continue;
        }
        let bench: serde_json::Value = read_json(&new.join("benchmark.json"))?;
        let estimates: serde_json::Value = read_json(&new.join("estimates.json"))?;
        let (Some(id), Some(pages), Some(median)) = (
            bench["function_id"].as_str(),
            bench["throughput"]["Elements"].as_u64(),
            estimates["median"]["point_estimate"].as_f64(),
        ) else {
            continue;
        };
        if let Some(id) = parse_id(id) {
            out.insert(
                (id.implementation.to_owned(), id.case.to_owned()),
                (pages, median),
            );
        }
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The points of `implementation` among `results` whose case `wanted`
/// accepts, sorted by size.
fn points(
    results: &BTreeMap<(String, String), (u64, f64)>,
    implementation: &str,
    wanted: impl Fn(&str) -> bool,
) -> Vec<Point> {
    let mut out: Vec<Point> = results
        .iter()
        .filter(|((i, case), _)| i == implementation && wanted(case))
        .filter_map(|((_, case), &(pages, ns))| {
            let bytes = case_bytes(case, pages)?;
            (pages > 0).then(|| (bytes, ns / pages as f64))
        })
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// Draw the picture from the last bench run into docs/benchmarks-scaling.svg.
pub(crate) fn run() -> Result<()> {
    let insert = read_group("insert")?;
    let walk = read_group("walk_blocks")?;
    let panels: [Panel<'_>; 3] = [
        (
            "preserve, address order",
            Box::new(|i: &str| points(&insert, i, |c| c.starts_with("sequential-"))),
        ),
        (
            "preserve, random order",
            Box::new(|i: &str| points(&insert, i, |c| c.starts_with("random-"))),
        ),
        (
            "walk (every page preserved)",
            Box::new(|i: &str| points(&walk, i, |c| c == "small" || c == "dense")),
        ),
    ];
    let all: Vec<Point> = panels
        .iter()
        .flat_map(|(_, f)| SERIES.iter().flat_map(|(i, _, _)| f(i)))
        .collect();
    if all.is_empty() {
        bail!("the bench results hold none of the series drawn (run `cargo bench -p kho-radix`)");
    }
    let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) / 2.0;
    // Room above the data for the legend.
    let y_max = all.iter().map(|p| p.1).fold(0.0, f64::max) * 12.0;
    let out = project_root().join("docs").join("benchmarks-scaling.svg");
    let root = SVGBackend::new(&out, (1500, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        "kho-radix: time per page against the preserved size (criterion medians, cargo bench -p kho-radix)",
        ("sans-serif", 18),
    )?;
    for (area, (name, series)) in body.split_evenly((1, 3)).iter().zip(&panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(*name, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0.5f64..32768.0).log_scale(), (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("preserved memory")
            .y_desc("ns per page")
            .x_label_formatter(&|mib| human((*mib * 1048576.0) as u64))
            .draw()?;
        for (implementation, legend, colour) in SERIES {
            // x in MiB: the log axis then ticks at 1, 10, 100 … MiB.
            let pts: Vec<(f64, f64)> = series(implementation)
                .into_iter()
                .map(|(bytes, ns)| (bytes as f64 / 1048576.0, ns))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
                .label(legend)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    println!("wrote {}", out.display());
    Ok(())
}

/// `1073741824` → `1 GiB`; sizes that are not whole GiB stay in MiB
/// (`10000 MiB`), so a decimal tick never reads as a rounded binary size.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sizes() {
        assert_eq!(
            parse_id("radix-direct/sequential-1GiB"),
            Some(Id {
                implementation: "radix-direct",
                case: "sequential-1GiB"
            })
        );
        assert_eq!(parse_id("nothing"), None);
        assert_eq!(case_bytes("sequential-1GiB", 0), Some(1 << 30));
        assert_eq!(case_bytes("random-16GiB", 0), Some(16 << 30));
        assert_eq!(case_bytes("sequential-1MiB", 0), Some(1 << 20));
        assert_eq!(case_bytes("small", 256), Some(1 << 20));
        assert_eq!(case_bytes("dense", 4 << 20), Some(16 << 30));
        assert_eq!(case_bytes("sparse", 10), None);
        assert_eq!(human(16 << 30), "16 GiB");
        assert_eq!(human(10_000 << 20), "10000 MiB");
        assert_eq!(human(512 << 10), "512 KiB");
    }

    #[test]
    fn points_are_per_page_and_sorted() {
        let mut r = BTreeMap::new();
        r.insert(
            ("a".to_owned(), "sequential-1GiB".to_owned()),
            (262_144, 2_621_440.0),
        );
        r.insert(
            ("a".to_owned(), "sequential-1MiB".to_owned()),
            (256, 2_560.0),
        );
        r.insert(("a".to_owned(), "random-1MiB".to_owned()), (256, 9_999.0));
        r.insert(("b".to_owned(), "sequential-1MiB".to_owned()), (256, 1.0));
        let p = points(&r, "a", |c| c.starts_with("sequential-"));
        assert_eq!(p, [(1 << 20, 10.0), (1 << 30, 10.0)]);
    }
}
