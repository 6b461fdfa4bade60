//! A whole handover (every client the decoder knows, both arch handoffs),
//! read from a sparse ELF core the way a dump tool writes one: every start
//! point decodes it soundly and alike, `find_in` finds it, and the
//! renderings hold it. The same image seeds the `inspect_elf` fuzz target.

mod common;

use common::{handover, sparse_core};
use kho_inspect::report::{Content, Vmalloc};
use kho_inspect::{Image, Limits, Start};

#[test]
fn a_sparse_core_decodes_from_every_start_point() {
    let h = handover();
    let core = sparse_core(&h.mem);
    let image = Image::elf(&core[..]).unwrap();
    let from_memory = kho_inspect::inspect(&h.mem, Start::X86BootParams(h.boot_params));
    assert_eq!(from_memory.problems, []);
    for start in [
        Start::X86BootParams(h.boot_params),
        Start::X86SetupData(h.setup_data),
        Start::Dtb(h.dtb),
        Start::Fdt(h.fdt),
    ] {
        let r = kho_inspect::inspect(&image, start);
        assert_eq!(r.problems, [], "{start:?}");
        assert_eq!(r.preserved, from_memory.preserved);
        let names: Vec<&str> = r.subtrees.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["memblock", "kexec-metadata", "kho-stub", "kho_test"],
            "{start:?}"
        );
    }
    let r = from_memory;
    match &r.subtrees[2].content {
        Content::KhoStub {
            records, vmalloc, ..
        } => {
            assert_eq!(records.len(), 2);
            assert!(matches!(vmalloc, Vmalloc::Area(v) if v.total_pages == 2));
        }
        other => panic!("{other:?}"),
    }
    match &r.subtrees[3].content {
        Content::KhoTest {
            nr_folios, folios, ..
        } => assert_eq!((*nr_folios, folios.len()), (3, 3)),
        other => panic!("{other:?}"),
    }

    let found = kho_inspect::find::find_in(&image, Limits::default());
    assert!(found.is_sound(), "{:#?}", found.problems);
    assert_eq!(found.decoded.len(), 1);
    assert_eq!(found.decoded[0].report.preserved, r.preserved);
}

/// Writes the fuzz seeds of `inspect_elf` when `KHO_INSPECT_SEEDS` names a
/// directory (`fuzz/seeds/inspect_elf`): this handover as a sparse core,
/// and issue 15's image with two leaves. A no-op otherwise.
#[test]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("KHO_INSPECT_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("handover.elf"), sparse_core(&handover().mem)).unwrap();
    std::fs::write(dir.join("pmemsz-2-50.elf"), common::bomb(2)).unwrap();
}
