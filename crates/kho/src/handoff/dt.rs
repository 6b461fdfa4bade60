//! Device-tree handoff (arm64): `/chosen` `linux,kho-fdt` and `linux,kho-scratch`.
//!
//! Each property is one (address, size) pair of big-endian cells sized by the
//! root's `#address-cells` / `#size-cells` (Linux fixed the size-cell count
//! in c85da64ce2c3; before it, address cells were used for both).

use alloc::vec::Vec;

use kho_abi::chosen::{CHOSEN_PATH, PROP_KHO_FDT, PROP_KHO_SCRATCH};
use kho_fdt::dtb::{Dtb, Edit, decode_pairs, encode_pair};
use kho_mem::PhysAddr;

use crate::{Error, Handover, Result};

/// Read the handover named in `/chosen`.
///
/// `Ok(None)`: neither property is present (a cold boot). A DTB that is not
/// a valid FDT is [`Error::Fdt`]. When only one property is present or a
/// length is not `(address-cells + size-cells) × 4`, Linux silently boots
/// without KHO; this reader returns [`Error::BadChosen`] so the caller can
/// say why before it boots cold.
pub fn read_chosen(dtb: &[u8]) -> Result<Option<Handover>> {
    let dtb = Dtb::parse(dtb)?;
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

/// The next kernel's DTB: `dtb` with both KHO properties removed and, when
/// `handover` is given, written again (as Linux's `kho_add_chosen` does),
/// and `/chosen` `bootargs` replaced when `bootargs` is given.
pub fn write_chosen(
    dtb: &[u8],
    handover: Option<&Handover>,
    bootargs: Option<&str>,
) -> Result<Vec<u8>> {
    let dtb = Dtb::parse(dtb)?;
    let (ac, sc) = dtb.root_cells().ok_or(Error::BadChosen {
        reason: "bad #address-cells or #size-cells",
    })?;
    let mut args = Vec::new();
    let (fdt, scratch) = match handover {
        Some(h) => (
            encode_pair(h.fdt.as_u64(), h.fdt_size, ac, sc),
            encode_pair(h.scratch.as_u64(), h.scratch_len, ac, sc),
        ),
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
