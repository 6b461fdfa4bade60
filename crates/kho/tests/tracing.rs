//! The `tracing` feature: the revival's decisions arrive as events a
//! subscriber sees (target `kho`), refusals with the named error.
#![cfg(feature = "tracing")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use kho::{Handover, KhoIn, KhoOut};
use kho_abi::AbiVersion;
use kho_mem::{HostMem, Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, ScratchArea, ScratchAreas};

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `f` under a subscriber that records `kho` events at debug and above.
fn captured(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("kho=debug"))
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_refused_handover_is_a_warning_naming_the_error() {
    let mem = HostMem::new(PhysAddr::new(0x4000_0000), 1 << 20).unwrap();
    let bad = Handover {
        fdt: PhysAddr::new(0x10_0000_0000),
        fdt_size: 4096,
        scratch: PhysAddr::new(0x4000_0000),
        scratch_len: 16,
    };
    let log = captured(|| assert!(KhoIn::populate(&mem, bad).is_err()));
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("handover refused: no revival"), "{log}");
    assert!(log.contains("error="), "{log}");
}

#[test]
fn an_accepted_handover_and_its_walk_are_debug_events() {
    let base = 0x4000_0000;
    let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
    let mut mem = HostMem::new(PhysAddr::new(base), 64 << 20).unwrap();
    let mut areas = ScratchAreas::new();
    areas
        .push(ScratchArea {
            kind: AreaKind::Global,
            range: r(base + (48 << 20), 16 << 20),
        })
        .unwrap();
    mem.reserve(areas.as_slice()[0].range).unwrap();
    let mut out = KhoOut::new(&mut mem, AbiVersion::V4).unwrap();
    let folio = mem.alloc_pages(Order::try_new(3).unwrap()).unwrap();
    out.preserve_folio(&mut mem, folio, Order::try_new(3).unwrap())
        .unwrap();
    let array = areas
        .write_array(&mut mem, areas.as_slice()[0].range.start())
        .unwrap();
    let handover = out.handover(array);
    let log = captured(|| {
        let mut kin = KhoIn::populate(&mem, handover).unwrap();
        let mut buf = vec![0u64; VisitedSet::words_for(64)];
        kin.reserve_preserved(&mem, &mut VisitedSet::new(&mut buf), |_, _| Ok(()))
            .unwrap();
    });
    assert!(log.contains("handover accepted"), "{log}");
    assert!(log.contains("version=kho-v4"), "{log}");
    assert!(log.contains("preserved memory reserved"), "{log}");
    assert!(log.contains("blocks=2"), "{log}");
}
