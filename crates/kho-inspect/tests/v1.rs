//! A kho-v1 handover (Linux 6.16 – 6.19) written by the engine: the
//! inspector reads its FDT and subtrees, says that it does not decode the
//! chunk list yet, and never panics, with any budget.

use kho::KhoOut;
use kho_abi::v1::BitmapSize;
use kho_inspect::{Limits, Start};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};

fn v1_image() -> (HostMem, u64) {
    let mut mem = HostMem::new(PhysAddr::new(0x4000_0000), 16 << 20).unwrap();
    let mut out = KhoOut::new_v1(&mut mem, BitmapSize::Bytes512).unwrap();
    for o in [0, 3, 9] {
        let order = Order::try_new(o).unwrap();
        let p = mem.alloc_pages(order).unwrap();
        out.preserve_folio(&mut mem, p, order).unwrap();
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
    out.finalize(&mut mem).unwrap();
    let fdt = out.fdt().as_u64();
    (mem, fdt)
}

#[test]
fn a_kho_v1_handover_is_read_without_its_map() {
    let (mem, fdt) = v1_image();
    let r = kho_inspect::inspect(&mem, Start::Fdt(fdt));
    assert_eq!(r.abi_version.as_deref(), Some("kho-v1"));
    let rendered = r.fdt.as_ref().and_then(|f| f.rendered.clone()).unwrap();
    assert!(rendered.contains("compatible = \"kho-v1\""), "{rendered}");
    assert!(rendered.contains("\t\tfdt = le64:"), "{rendered}");
    let names: Vec<&str> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["client"]);
    let codes: Vec<&str> = r.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["v1-map-not-decoded"]);
    assert!(r.preserved.is_none());
    let report = kho_inspect::text::render_report(&r);
    assert!(report.contains("v1-map-not-decoded"), "{report}");
    // Any budget, however small, and every rendering: no panic.
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
