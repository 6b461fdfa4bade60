//! Device-tree handoff (arm64): `/chosen` `linux,kho-fdt` and `linux,kho-scratch`.
//!
//! Each property is one (address, size) pair of big-endian cells sized by the
//! root's `#address-cells` / `#size-cells` (Linux fixed the size-cell count
//! in c85da64ce2c3; before it, address cells were used for both).

use alloc::vec::Vec;

use kho_abi::chosen::{CHOSEN_PATH, PROP_KHO_FDT, PROP_KHO_SCRATCH};
use kho_fdt::dtb::{Dtb, Edit, decode_pairs, encode_pair};
use kho_mem::{PhysAddr, PhysRange};

use crate::{Error, Handover, Result};

/// Read the handover named in `/chosen`.
///
/// `Ok(None)`: neither property is present (a cold boot). A DTB that is not
/// a valid FDT is [`Error::Fdt`]. When only one property is present or a
/// length is not `(address-cells + size-cells) × 4`, Linux silently boots
/// without KHO; this reader returns [`Error::BadChosen`] so the caller can
/// say why before it boots cold.
pub fn read_chosen(dtb: &[u8]) -> Result<Option<Handover>> {
    // A DTB from Linux may hold FDT_NOPs where libfdt deleted properties.
    let clean = kho_fdt::dtb::without_nops(dtb)?;
    let dtb = Dtb::parse(clean.as_deref().unwrap_or(dtb))?;
    let fdt = dtb.property(CHOSEN_PATH, PROP_KHO_FDT);
    let scratch = dtb.property(CHOSEN_PATH, PROP_KHO_SCRATCH);
    let (fdt, scratch) = match (fdt, scratch) {
        (None, None) => return Ok(None),
        (Some(f), Some(s)) => (f, s),
        (Some(_), None) => {
            return Err(Error::BadChosen {
                reason: "linux,kho-fdt without linux,kho-scratch",
            });
        }
        (None, Some(_)) => {
            return Err(Error::BadChosen {
                reason: "linux,kho-scratch without linux,kho-fdt",
            });
        }
    };
    let (ac, sc) = dtb.root_cells().ok_or(Error::BadChosen {
        reason: "bad #address-cells or #size-cells",
    })?;
    let want = ((ac + sc) * 4) as usize;
    let one_pair = |v: &[u8], what| {
        if v.len() != want {
            return Err(Error::BadChosen { reason: what });
        }
        decode_pairs(v, ac, sc)
            .next()
            .ok_or(Error::BadChosen { reason: what })
    };
    let (fdt_addr, fdt_size) = one_pair(fdt, "linux,kho-fdt is not one (address, size) pair")?;
    let (scratch_addr, scratch_len) =
        one_pair(scratch, "linux,kho-scratch is not one (address, size) pair")?;
    Ok(Some(Handover {
        fdt: PhysAddr::new(fdt_addr),
        fdt_size,
        scratch: PhysAddr::new(scratch_addr),
        scratch_len,
    }))
}

/// `/chosen` property naming the initrd's first byte.
pub const PROP_INITRD_START: &str = "linux,initrd-start";
/// `/chosen` property naming the address just past the initrd.
pub const PROP_INITRD_END: &str = "linux,initrd-end";

/// Read the initrd `/chosen` names (`linux,initrd-start` and
/// `linux,initrd-end`, each one or two big-endian cells, as Linux's
/// `early_init_dt_check_for_initrd` reads them).
///
/// `Ok(None)`: neither property, or an empty initrd. Where Linux silently
/// ignores the initrd (one property without the other, an end before the
/// start) or would misread it (a length other than 4 or 8 bytes), this
/// returns an error naming why.
pub fn read_initrd(dtb: &[u8]) -> Result<Option<PhysRange>> {
    // A DTB from Linux may hold FDT_NOPs where libfdt deleted properties.
    let clean = kho_fdt::dtb::without_nops(dtb)?;
    let dtb = Dtb::parse(clean.as_deref().unwrap_or(dtb))?;
    let start = dtb.property(CHOSEN_PATH, PROP_INITRD_START);
    let end = dtb.property(CHOSEN_PATH, PROP_INITRD_END);
    let cells = |v: &[u8], what| match v.len() {
        4 => Ok(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
        8 => Ok(u64::from_be_bytes([
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
        ])),
        _ => Err(Error::BadChosen { reason: what }),
    };
    let (start, end) = match (start, end) {
        (None, None) => return Ok(None),
        (Some(s), Some(e)) => (
            cells(s, "linux,initrd-start is not one or two cells")?,
            cells(e, "linux,initrd-end is not one or two cells")?,
        ),
        (Some(_), None) => {
            return Err(Error::BadChosen {
                reason: "linux,initrd-start without linux,initrd-end",
            });
        }
        (None, Some(_)) => {
            return Err(Error::BadChosen {
                reason: "linux,initrd-end without linux,initrd-start",
            });
        }
    };
    if end < start {
        return Err(Error::BadInitrd {
            addr: start,
            size: end,
        });
    }
    if end == start {
        return Ok(None);
    }
    Ok(Some(PhysRange::try_new(PhysAddr::new(start), end - start)?))
}

/// What the next DTB's `/chosen` says about an initrd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitrdEdit {
    /// Leave `linux,initrd-start` / `linux,initrd-end` as they are.
    Keep,
    /// Remove both (no initrd).
    Remove,
    /// Name this range, as Linux's kexec writes it (two 64-bit cells each).
    Set(PhysRange),
}

/// The next kernel's DTB: `dtb` with both KHO properties removed and, when
/// `handover` is given, written again (as Linux's `kho_add_chosen` does),
/// and `/chosen` `bootargs` replaced when `bootargs` is given.
pub fn write_chosen(
    dtb: &[u8],
    handover: Option<&Handover>,
    bootargs: Option<&str>,
) -> Result<Vec<u8>> {
    write_chosen_initrd(dtb, handover, bootargs, InitrdEdit::Keep)
}

/// [`write_chosen`], and the initrd properties edited as `initrd` says.
///
/// Memory reservations are copied as they are: Linux reserves the initrd
/// `/chosen` names itself, so none is added for it.
pub fn write_chosen_initrd(
    dtb: &[u8],
    handover: Option<&Handover>,
    bootargs: Option<&str>,
    initrd: InitrdEdit,
) -> Result<Vec<u8>> {
    // A DTB from Linux may hold FDT_NOPs where libfdt deleted properties.
    let clean = kho_fdt::dtb::without_nops(dtb)?;
    let dtb = Dtb::parse(clean.as_deref().unwrap_or(dtb))?;
    let (ac, sc) = dtb.root_cells().ok_or(Error::BadChosen {
        reason: "bad #address-cells or #size-cells",
    })?;
    let mut args = Vec::new();
    // As libfdt's fdt_appendprop_addrrange: a value the cells cannot hold
    // is refused, never truncated (the next kernel would read another
    // address).
    let fits = |value: u64, cells: u32| cells >= 2 || value >> (32 * cells) == 0;
    let (fdt, scratch) = match handover {
        Some(h) => {
            if !(fits(h.fdt.as_u64(), ac)
                && fits(h.scratch.as_u64(), ac)
                && fits(h.fdt_size, sc)
                && fits(h.scratch_len, sc))
            {
                return Err(Error::BadChosen {
                    reason: "the handover does not fit #address-cells/#size-cells",
                });
            }
            (
                encode_pair(h.fdt.as_u64(), h.fdt_size, ac, sc),
                encode_pair(h.scratch.as_u64(), h.scratch_len, ac, sc),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut edits = Vec::new();
    if handover.is_some() {
        edits.push(Edit::Set {
            path: CHOSEN_PATH,
            name: PROP_KHO_FDT,
            value: &fdt,
        });
        edits.push(Edit::Set {
            path: CHOSEN_PATH,
            name: PROP_KHO_SCRATCH,
            value: &scratch,
        });
    } else {
        edits.push(Edit::Delete {
            path: CHOSEN_PATH,
            name: PROP_KHO_FDT,
        });
        edits.push(Edit::Delete {
            path: CHOSEN_PATH,
            name: PROP_KHO_SCRATCH,
        });
    }
    if let Some(b) = bootargs {
        args.extend_from_slice(b.as_bytes());
        args.push(0);
        edits.push(Edit::Set {
            path: CHOSEN_PATH,
            name: "bootargs",
            value: &args,
        });
    }
    let (start, end) = match initrd {
        InitrdEdit::Set(r) => {
            let end = r.end().ok_or(Error::BadInitrd {
                addr: r.start().as_u64(),
                size: r.size(),
            })?;
            (r.start().as_u64().to_be_bytes(), end.as_u64().to_be_bytes())
        }
        _ => ([0; 8], [0; 8]),
    };
    match initrd {
        InitrdEdit::Keep => {}
        InitrdEdit::Remove => edits.extend([
            Edit::Delete {
                path: CHOSEN_PATH,
                name: PROP_INITRD_START,
            },
            Edit::Delete {
                path: CHOSEN_PATH,
                name: PROP_INITRD_END,
            },
        ]),
        InitrdEdit::Set(_) => edits.extend([
            Edit::Set {
                path: CHOSEN_PATH,
                name: PROP_INITRD_START,
                value: &start,
            },
            Edit::Set {
                path: CHOSEN_PATH,
                name: PROP_INITRD_END,
                value: &end,
            },
        ]),
    }
    Ok(dtb.rewrite(&edits)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn dtb(cells: (u32, u32), chosen: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", cells.0).unwrap();
        w.property_u32("#size-cells", cells.1).unwrap();
        let c = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        for (n, v) in chosen {
            w.property(n, v).unwrap();
        }
        w.end_node(c).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn handover() -> Handover {
        Handover {
            fdt: PhysAddr::new(0x4123_4000),
            fdt_size: 4096,
            scratch: PhysAddr::new(0x4400_0000),
            scratch_len: 48,
        }
    }

    #[test]
    fn a_dtb_with_libfdt_nops_is_read() {
        // What Linux's arm64 kexec_file_load hands over: /chosen edited in
        // place, a deleted property left as FDT_NOP tokens.
        let mut blob = write_chosen(&dtb((2, 2), &[]), Some(&handover()), None).unwrap();
        let value = b"console=ttyAMA0\0";
        let at = blob.windows(value.len()).position(|w| w == value).unwrap();
        for word in blob[at - 12..(at + value.len()).next_multiple_of(4)].chunks_exact_mut(4) {
            word.copy_from_slice(&4u32.to_be_bytes());
        }
        assert_eq!(read_chosen(&blob).unwrap(), Some(handover()));
        assert_eq!(read_initrd(&blob).unwrap(), None);
    }

    /// Regression (fuzz, issue 15): with a `chosen@…` node before `chosen`,
    /// the writer edited `chosen` while the reader (as libfdt) found
    /// `chosen@…` first; both now use the first match.
    #[test]
    fn the_writer_edits_the_chosen_node_readers_find() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let first = w.begin_node("chosen@40000000").unwrap();
        w.end_node(first).unwrap();
        let second = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.end_node(second).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let out = write_chosen(&blob, Some(&handover()), Some("kho=on")).unwrap();
        assert_eq!(read_chosen(&out).unwrap(), Some(handover()));
    }

    /// A handover the root's cells cannot hold is refused, not truncated.
    #[test]
    fn a_handover_that_does_not_fit_the_cells_is_refused() {
        for cells in [(0, 1), (1, 0), (1, 1)] {
            let big = Handover {
                fdt: PhysAddr::new(0x1_4123_4000),
                ..handover()
            };
            let small_ok = write_chosen(&dtb(cells, &[]), Some(&handover()), None);
            let want_small = cells.0 >= 1 && cells.1 >= 1;
            assert_eq!(small_ok.is_ok(), want_small, "{cells:?}");
            assert_eq!(
                write_chosen(&dtb(cells, &[]), Some(&big), None),
                Err(Error::BadChosen {
                    reason: "the handover does not fit #address-cells/#size-cells"
                }),
                "{cells:?}"
            );
        }
        let out = write_chosen(&dtb((1, 1), &[]), Some(&handover()), None).unwrap();
        assert_eq!(read_chosen(&out).unwrap(), Some(handover()));
    }

    /// Regression (fuzz, issue 15): cell counts near u32::MAX made
    /// `(ac + sc) * 4` overflow. Counts above 2 are a named error now.
    #[test]
    fn absurd_cell_counts_are_refused_not_overflowed() {
        let pair = alloc::vec![0u8; 16];
        for cells in [
            (u32::MAX, 1),
            (2, u32::MAX),
            (0x4000_0000, 0x4000_0000),
            (3, 2),
        ] {
            let blob = dtb(
                cells,
                &[
                    ("linux,kho-fdt", pair.clone()),
                    ("linux,kho-scratch", pair.clone()),
                ],
            );
            assert_eq!(
                read_chosen(&blob),
                Err(Error::BadChosen {
                    reason: "bad #address-cells or #size-cells"
                }),
                "{cells:?}"
            );
            assert!(read_initrd(&blob).is_err() || read_initrd(&blob) == Ok(None));
            assert!(write_chosen(&blob, Some(&handover()), None).is_err());
        }
    }

    #[test]
    fn round_trip_and_bytes() {
        let out = write_chosen(&dtb((2, 2), &[]), Some(&handover()), Some("kho=on")).unwrap();
        assert_eq!(read_chosen(&out).unwrap(), Some(handover()));
        let d = Dtb::parse(&out).unwrap();
        assert_eq!(
            d.property("/chosen", "linux,kho-fdt").unwrap(),
            &[0, 0, 0, 0, 0x41, 0x23, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]
        );
        assert_eq!(d.property("/chosen", "bootargs").unwrap(), b"kho=on\0");
        // Stale values are replaced, and removing the handover removes both.
        let again = write_chosen(
            &out,
            Some(&Handover {
                scratch_len: 64,
                ..handover()
            }),
            None,
        )
        .unwrap();
        assert_eq!(read_chosen(&again).unwrap().unwrap().scratch_len, 64);
        let none = write_chosen(&again, None, None).unwrap();
        assert_eq!(read_chosen(&none).unwrap(), None);
    }

    #[test]
    fn size_cells_come_from_size_cells() {
        // #address-cells 2, #size-cells 1: 12-byte pairs (the c85da64ce2c3 fix).
        let out = write_chosen(&dtb((2, 1), &[]), Some(&handover()), None).unwrap();
        assert_eq!(
            Dtb::parse(&out)
                .unwrap()
                .property("/chosen", "linux,kho-scratch")
                .unwrap()
                .len(),
            12
        );
        assert_eq!(read_chosen(&out).unwrap(), Some(handover()));
    }

    #[test]
    fn initrd_round_trip_and_removal() {
        let rd = PhysRange::try_new(PhysAddr::new(0x4800_0000), 0x1_2345).unwrap();
        let out = write_chosen_initrd(
            &dtb((2, 2), &[]),
            Some(&handover()),
            None,
            InitrdEdit::Set(rd),
        )
        .unwrap();
        let d = Dtb::parse(&out).unwrap();
        assert_eq!(
            d.property("/chosen", "linux,initrd-start").unwrap(),
            &0x4800_0000u64.to_be_bytes()
        );
        assert_eq!(
            d.property("/chosen", "linux,initrd-end").unwrap(),
            &0x4801_2345u64.to_be_bytes()
        );
        assert_eq!(read_initrd(&out).unwrap(), Some(rd));
        assert_eq!(read_chosen(&out).unwrap(), Some(handover()));
        // write_chosen keeps it; Remove drops both properties.
        let kept = write_chosen(&out, None, Some("x")).unwrap();
        assert_eq!(read_initrd(&kept).unwrap(), Some(rd));
        let gone = write_chosen_initrd(&out, None, None, InitrdEdit::Remove).unwrap();
        assert_eq!(read_initrd(&gone).unwrap(), None);
        assert_eq!(read_initrd(&dtb((2, 2), &[])).unwrap(), None);
    }

    #[test]
    fn qemu_style_one_cell_initrd_and_bad_ones() {
        let cell = |v: u32| v.to_be_bytes().to_vec();
        let q = dtb(
            (2, 2),
            &[
                ("linux,initrd-start", cell(0x4800_0000)),
                ("linux,initrd-end", cell(0x4800_1000)),
            ],
        );
        assert_eq!(
            read_initrd(&q).unwrap(),
            Some(PhysRange::try_new(PhysAddr::new(0x4800_0000), 0x1000).unwrap())
        );
        let empty = dtb(
            (2, 2),
            &[
                ("linux,initrd-start", cell(0x4800_0000)),
                ("linux,initrd-end", cell(0x4800_0000)),
            ],
        );
        assert_eq!(read_initrd(&empty).unwrap(), None);
        let backwards = dtb(
            (2, 2),
            &[
                ("linux,initrd-start", cell(0x4800_1000)),
                ("linux,initrd-end", cell(0x4800_0000)),
            ],
        );
        assert!(matches!(
            read_initrd(&backwards),
            Err(Error::BadInitrd { .. })
        ));
        let odd = dtb(
            (2, 2),
            &[
                ("linux,initrd-start", alloc::vec![0; 12]),
                ("linux,initrd-end", cell(0x4800_0000)),
            ],
        );
        assert_eq!(
            read_initrd(&odd),
            Err(Error::BadChosen {
                reason: "linux,initrd-start is not one or two cells"
            })
        );
        let half = dtb((2, 2), &[("linux,initrd-end", cell(0x4800_0000))]);
        assert!(matches!(read_initrd(&half), Err(Error::BadChosen { .. })));
    }

    #[test]
    fn malformed_chosen_is_named() {
        let pair = encode_pair(0x4123_4000, 4096, 2, 2);
        let only_fdt = dtb((2, 2), &[("linux,kho-fdt", pair.clone())]);
        assert!(matches!(
            read_chosen(&only_fdt),
            Err(Error::BadChosen { .. })
        ));
        let short = dtb(
            (2, 2),
            &[
                ("linux,kho-fdt", pair[..12].to_vec()),
                ("linux,kho-scratch", pair.clone()),
            ],
        );
        assert_eq!(
            read_chosen(&short),
            Err(Error::BadChosen {
                reason: "linux,kho-fdt is not one (address, size) pair"
            })
        );
        assert!(matches!(read_chosen(&[0u8; 16]), Err(Error::Fdt(_))));
    }
}
