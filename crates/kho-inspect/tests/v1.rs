//! A kho-v1 handover (Linux 6.16 – 6.19) written by the engine: the
//! inspector reads its FDT, subtrees and chunk list (either bitmap size),
//! names a corrupted list, and never panics, with any budget.

use kho::KhoOut;
use kho_abi::v1::BitmapSize;
use kho_inspect::{Limits, Start};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};

/// The image, its FDT's address and the folios preserved (address, order);
/// `far` adds a page 20 MiB in, past the 4096 bits a 512-byte bitmap has.
fn v1_image(size: BitmapSize, far: bool) -> (HostMem, u64, Vec<(u64, u32)>) {
    let mut mem = HostMem::new(PhysAddr::new(0x4000_0000), 32 << 20).unwrap();
    let mut out = KhoOut::new_v1(&mut mem, size).unwrap();
    let mut folios = Vec::new();
    if far {
        let p = PhysAddr::new(0x4000_0000 + (20 << 20));
        out.preserve_folio(&mut mem, p, Order::ZERO).unwrap();
        folios.push((p.as_u64(), 0));
    }
    for o in [0, 3, 9] {
        let order = Order::try_new(o).unwrap();
        let p = mem.alloc_pages(order).unwrap();
        out.preserve_folio(&mut mem, p, order).unwrap();
        folios.push((p.as_u64(), o));
    }
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("compatible", "kho-test-v1").unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let page = mem.alloc_page().unwrap();
    mem.write(page, &blob).unwrap();
    out.preserve_folio(&mut mem, page, Order::ZERO).unwrap();
    out.add_subtree(&mut mem, "client", page, None).unwrap();
    folios.push((page.as_u64(), 0));
    out.finalize(&mut mem).unwrap();
    let fdt = out.fdt().as_u64();
    // The root FDT page is preserved too.
    folios.push((fdt, 0));
    (mem, fdt, folios)
}

/// Written with either bitmap size, the map is decoded to exactly the
/// folios preserved. Here every bitmap's bytes past 512 are zero, so both
/// readings validate with the same set and the size is not claimed; with
/// a block past bit 4095 only the page-sized reading has it, and the
/// inspector says it chose that one.
#[test]
fn a_kho_v1_handover_is_decoded_with_either_bitmap_size() {
    for (size, far, bytes) in [
        (BitmapSize::Page, false, None),
        (BitmapSize::Bytes512, false, None),
        (BitmapSize::Page, true, Some(4096)),
    ] {
        let (mem, fdt, folios) = v1_image(size, far);
        let r = kho_inspect::inspect(&mem, Start::Fdt(fdt));
        assert_eq!(r.abi_version.as_deref(), Some("kho-v1"));
        let rendered = r.fdt.as_ref().and_then(|f| f.rendered.clone()).unwrap();
        assert!(rendered.contains("compatible = \"kho-v1\""), "{rendered}");
        assert!(rendered.contains("\t\tfdt = le64:"), "{rendered}");
        let names: Vec<&str> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["client"]);
        let codes: Vec<&str> = r.problems.iter().map(|p| p.code).collect();
        let expected: &[&str] = if far { &["v1-bitmap-size"] } else { &[] };
        assert_eq!(codes, expected);
        let p = r.preserved.as_ref().unwrap();
        assert!(p.complete && p.radix.is_none());
        let map = p.v1_map.unwrap();
        assert_eq!(map.bitmap_bytes, bytes);
        assert!(map.chunks >= 1 && map.bitmaps >= 3, "{map:?}");
        // Every folio, and nothing else.
        let mut got: Vec<(u64, u32)> = p
            .runs
            .iter()
            .flat_map(|run| {
                (0..run.blocks).map(move |i| (run.addr + (i << (12 + run.order)), run.order))
            })
            .collect();
        got.sort();
        let mut want = folios.clone();
        want.sort();
        assert_eq!(got, want, "{size:?}, far {far}");
        assert_eq!(p.blocks, folios.len() as u64);
        let report = kho_inspect::text::render_report(&r);
        assert!(
            report.contains("kho-v1 chunk list: first chunk"),
            "{report}"
        );
        #[cfg(feature = "json")]
        {
            let out = kho_inspect::report::Output {
                image: kho_inspect::report::ImageInfo {
                    file: "test".into(),
                    format: kho_inspect::Format::Raw,
                    segments: Vec::new(),
                },
                start: Start::Fdt(fdt),
                report: r,
            };
            let json = kho_inspect::json::render(&out).unwrap();
            assert!(json.contains("\"v1_map\""), "{json}");
            let field = match bytes {
                Some(b) => format!("\"bitmap_bytes\": {b}"),
                None => "\"bitmap_bytes\": null".to_owned(),
            };
            assert!(json.contains(&field), "{json}");
        }
    }
}

/// A chunk whose `next` names itself: neither bitmap size validates, and
/// the problem says why for both; the FDT and subtrees are still read.
#[test]
fn a_chunk_list_cycle_is_named() {
    let (mut mem, fdt, _) = v1_image(BitmapSize::Page, false);
    let r = kho_inspect::inspect(&mem, Start::Fdt(fdt));
    let first = r.fdt.as_ref().and_then(|f| f.memory_map).unwrap();
    mem.write_u64(PhysAddr::new(first), first).unwrap();
    let r = kho_inspect::inspect(&mem, Start::Fdt(fdt));
    let codes: Vec<&str> = r.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["v1-map"]);
    let message = r.problems[0].message.clone();
    assert!(message.contains("512-byte"), "{message}");
    assert!(r.preserved.is_none());
    assert_eq!(r.subtrees.len(), 1);
}

#[test]
fn any_budget_never_panics() {
    let (mem, fdt, _) = v1_image(BitmapSize::Page, false);
    for n in [0, 1, 2, 8] {
        let limits = Limits {
            nodes: n,
            runs: n,
            blocks: n as u64,
            problems: n,
            ..Limits::default()
        };
        let r = kho_inspect::inspect_with(&mem, Start::Fdt(fdt), limits);
        let _ = kho_inspect::text::render_report(&r);
    }
}
