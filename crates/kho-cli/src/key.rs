//! `kho decode-key` / `kho encode-key`: the radix tree's key of a preserved
//! block, both ways, with where it lives in the tree.
//!
//! A key is `1 << (52 - order) | pfn >> order` (kho-v2 and later, 4 KiB
//! pages; docs/ABI.md). Someone reading a raw leaf bitmap or table entry in
//! a dump, or a key in a kernel log, wants the block it stands for and the
//! table index at every level plus the leaf bit that hold it; this prints
//! them (text, or JSON with `--json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use kho_abi::radix::{self, ROOT_LEVEL};
use serde::Serialize;

use crate::inspect::parse_addr;

/// `kho decode-key KEY…`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Radix keys, `0x` hex or decimal.
    #[arg(required = true, value_parser = parse_addr)]
    pub keys: Vec<u64>,
    /// Print JSON: one object per key.
    #[arg(long)]
    pub json: bool,
}

/// `kho encode-key PHYS ORDER`.
#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// The block's physical address (`0x` hex or decimal), aligned to its size.
    #[arg(value_parser = parse_addr)]
    pub phys: u64,
    /// The block's order: it spans 2^ORDER pages.
    pub order: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One key, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decoded {
    /// The key.
    pub key: u64,
    /// The block's order (2^order pages).
    pub order: u32,
    /// The block's first byte.
    pub phys: u64,
    /// The block's size in bytes.
    pub size: u64,
    /// Table index at each level, root (level `ROOT_LEVEL`) first.
    pub table_indices: Vec<usize>,
    /// Bit in the level-0 leaf bitmap.
    pub leaf_bit: usize,
}

/// Decode `key`, or say why no block encodes to it.
pub fn decode(key: u64) -> Result<Decoded, String> {
    let (phys, order) = radix::decode_key(key).ok_or_else(|| {
        format!(
            "{key:#x} is not a radix key: its highest set bit must lie between bit {} (order {}) and bit 52 (order 0)",
            52 - radix::MAX_ORDER,
            radix::MAX_ORDER
        )
    })?;
    let size = (kho_abi::PAGE_SIZE as u64)
        .checked_shl(order)
        .ok_or_else(|| format!("order {order} is too large"))?;
    Ok(Decoded {
        key,
        order,
        phys,
        size,
        table_indices: (1..=ROOT_LEVEL)
            .rev()
            .map(|l| radix::table_index(key, l))
            .collect(),
        leaf_bit: radix::leaf_bit(key),
    })
}

/// Encode the key of the block of 2^`order` pages at `phys`.
pub fn encode(phys: u64, order: u32) -> Result<Decoded, String> {
    let key = radix::encode_key(phys, order).ok_or_else(|| {
        if order > radix::MAX_ORDER {
            format!(
                "order {order} is larger than a key can hold ({})",
                radix::MAX_ORDER
            )
        } else {
            format!("{phys:#x} is not aligned to an order-{order} block")
        }
    })?;
    decode(key)
}

fn text(d: &Decoded) -> String {
    let mut out = String::new();
    let end = d.phys.saturating_add(d.size - 1);
    let _ = writeln!(
        out,
        "key {:#x}: order {} block {:#x}..={end:#x} ({} {})",
        d.key,
        d.order,
        d.phys,
        d.size / kho_abi::PAGE_SIZE as u64,
        if d.order == 0 { "page" } else { "pages" }
    );
    let levels: Vec<String> = (1..=ROOT_LEVEL)
        .rev()
        .zip(&d.table_indices)
        .map(|(l, i)| format!("L{l}[{i}]"))
        .collect();
    let _ = writeln!(
        out,
        "  in the tree: {} leaf bit {} (word {}, bit {})",
        levels.join(" "),
        d.leaf_bit,
        d.leaf_bit / 64,
        d.leaf_bit % 64
    );
    out
}

fn output(decoded: &[Decoded], json: bool) -> ExitCode {
    let rendered = if json {
        match serde_json::to_string_pretty(decoded) {
            Ok(s) => s + "\n",
            Err(e) => return crate::fail(e),
        }
    } else {
        decoded.iter().map(text).collect()
    };
    match crate::print(&rendered) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::fail(e),
    }
}

/// Run `kho decode-key`.
pub fn run_decode(args: &DecodeArgs) -> ExitCode {
    let mut decoded = Vec::with_capacity(args.keys.len());
    for &key in &args.keys {
        match decode(key) {
            Ok(d) => decoded.push(d),
            Err(e) => return crate::fail(e),
        }
    }
    output(&decoded, args.json)
}

/// Run `kho encode-key`.
pub fn run_encode(args: &EncodeArgs) -> ExitCode {
    match encode(args.phys, args.order) {
        Ok(d) => output(&[d], args.json),
        Err(e) => crate::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from the key formula: order 9 at 0x4200_0000 is
    /// 1 << 43 | 0x42000 >> 9 = 0x80000000210.
    #[test]
    fn an_order_9_block() {
        let d = encode(0x4200_0000, 9).unwrap();
        assert_eq!(d.key, (1 << 43) | 0x210);
        assert_eq!(decode(d.key).unwrap(), d);
        assert_eq!(d.size, 2 << 20);
        assert_eq!(d.leaf_bit, 0x210);
        assert_eq!(d.table_indices.len(), ROOT_LEVEL as usize);
        let t = text(&d);
        assert!(
            t.starts_with("key 0x80000000210: order 9 block 0x42000000..=0x421fffff (512 pages)\n"),
            "{t}"
        );
        assert!(t.contains("leaf bit 528 (word 8, bit 16)"), "{t}");
    }

    #[test]
    fn order_0_and_bad_input() {
        let d = encode(0x1000, 0).unwrap();
        assert_eq!(d.key, (1 << 52) | 1);
        assert!(decode(0).unwrap_err().contains("is not a radix key"));
        assert!(decode(1 << 53).unwrap_err().contains("is not a radix key"));
        assert!(
            encode(0x1000, 1)
                .unwrap_err()
                .contains("not aligned to an order-1 block")
        );
        assert!(
            encode(0, 60)
                .unwrap_err()
                .contains("larger than a key can hold")
        );
    }
}
