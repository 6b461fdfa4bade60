//! `ValidatedMap`: restoring blocks one by one from a validated map, in
//! place, and walking what is left.

use core::ops::ControlFlow;

use kho_bitmaps::{BitmapSize, IncomingMap, Tracker};
use kho_mem::{HostMem, Order, PhysAddr, PhysMem};

fn order(o: u32) -> Order {
    Order::try_new(o).unwrap()
}

#[test]
fn take_clears_each_block_once_for_both_sizes() {
    for size in [BitmapSize::Page, BitmapSize::Bytes512] {
        let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 256 << 20).unwrap();
        let mut t = Tracker::new(size);
        let blocks = [
            (0x4800_0000u64, 0u32),
            (0x4800_1000, 0),
            (0x4900_0000, 9),
            (0x4a00_0000, 10),
            // Another bitmap of order 0 (16 MiB on with 512-byte bitmaps).
            (0x4c00_0000, 0),
        ];
        for &(p, o) in &blocks {
            t.preserve(&mut mem, PhysAddr::new(p).pfn_floor(), order(o))
                .unwrap();
        }
        let first = t.serialize(&mut mem).unwrap();
        let mut buf = [0u64; IncomingMap::words_for(16)];
        let map = IncomingMap::validate(&mem, first, size, &mut buf)
            .unwrap()
            .validated();
        assert_eq!(map.first(), first);
        assert_eq!(map.bitmap_size(), size);

        // Wrong order, misaligned, never preserved: not there.
        let p = PhysAddr::new(0x4900_0000);
        assert!(!map.contains(&mem, p, order(0)).unwrap());
        assert!(!map.take(&mut mem, p, order(8)).unwrap());
        assert!(
            !map.take(&mut mem, PhysAddr::new(0x4900_1000), order(9))
                .unwrap()
        );
        assert!(
            !map.take(&mut mem, PhysAddr::new(0x5000_0000), order(0))
                .unwrap()
        );
        assert_eq!(map.find(&mem, p).unwrap(), Some(order(9)));
        assert_eq!(map.find(&mem, PhysAddr::new(0x4900_1000)).unwrap(), None);

        // Each block is taken once.
        assert!(map.take(&mut mem, p, order(9)).unwrap());
        assert!(!map.take(&mut mem, p, order(9)).unwrap());
        assert_eq!(map.find(&mem, p).unwrap(), None);
        assert!(
            map.take(&mut mem, PhysAddr::new(0x4800_1000), order(0))
                .unwrap()
        );

        // What is left is what was not taken.
        let mut left = Vec::new();
        let flow = map
            .walk(&mem, |p, o| {
                left.push((p.as_u64(), o.get()));
                ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert!(flow.is_continue());
        assert_eq!(
            left,
            [(0x4800_0000, 0), (0x4c00_0000, 0), (0x4a00_0000, 10)]
        );
        let mut runs = 0;
        let _ = map
            .for_each_range(&mem, |_| {
                runs += 1;
                ControlFlow::<()>::Continue(())
            })
            .unwrap();
        assert_eq!(runs, 3);
        // The map's pages are still the tracker's: nothing was freed.
        assert!(mem.read_u64(first).is_ok());
    }
}
