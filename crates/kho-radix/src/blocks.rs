//! Page-range decomposition into naturally aligned blocks (spec §3.8).

use kho_mem::{Order, Pfn};

use crate::{Error, Result};

/// One past the last frame a 64-bit physical address can name (`2^52`).
const PFN_END: u64 = Pfn::MAX.as_u64() + 1;

/// The blocks a page range `[start, start + nr_pages)` is preserved as.
///
/// Upstream's decomposition: from the current frame take the largest order
/// that both the frame's alignment and the pages left allow
/// (`min(ctz(pfn), floor(log2(left)))`), yield that block, advance. Here the
/// order is also capped at a maximum (upstream has no cap; the default,
/// [`Order::MAX`], never binds for a valid range). A range of `n` pages
/// yields at most about `2 · log2(n)` blocks, ascending.
///
/// ```
/// use kho_mem::{Order, Pfn};
/// use kho_radix::PageBlocks;
///
/// // Pages 3 .. 13: 3 (order 0), 4..8 (order 2), 8..12 (order 2), 12 (order 0).
/// let blocks: Vec<_> = PageBlocks::new(Pfn::try_new(3)?, 10)?
///     .map(|(pfn, order)| (pfn.as_u64(), order.get()))
///     .collect();
/// assert_eq!(blocks, [(3, 0), (4, 2), (8, 2), (12, 0)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PageBlocks {
    next: u64,
    end: u64,
    max_order: u32,
}

impl PageBlocks {
    /// The blocks of `nr_pages` pages from `start`, with no order cap.
    ///
    /// Fails with [`Error::RangeTooLarge`] if the range ends past the last
    /// frame (`2^52`).
    pub fn new(start: Pfn, nr_pages: u64) -> Result<PageBlocks> {
        PageBlocks::with_max_order(start, nr_pages, Order::MAX)
    }

    /// As [`PageBlocks::new`], but no block is larger than `max_order`.
    pub fn with_max_order(start: Pfn, nr_pages: u64, max_order: Order) -> Result<PageBlocks> {
        let too_large = Error::RangeTooLarge { start, nr_pages };
        let end = start.as_u64().checked_add(nr_pages).ok_or(too_large)?;
        if end > PFN_END {
            return Err(too_large);
        }
        Ok(PageBlocks {
            next: start.as_u64(),
            end,
            max_order: max_order.get(),
        })
    }
}

impl Iterator for PageBlocks {
    type Item = (Pfn, Order);

    fn next(&mut self) -> Option<(Pfn, Order)> {
        let left = self.end.checked_sub(self.next).filter(|&n| n != 0)?;
        let align = self.next.trailing_zeros(); // 64 for frame 0
        let fit = 63 - left.leading_zeros();
        let order = align.min(fit).min(self.max_order);
        let block = (Pfn::try_new(self.next).ok()?, Order::try_new(order).ok()?);
        self.next += 1u64 << order;
        Some(block)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next);
        let lower = usize::from(left != 0);
        // Each order appears at most twice: once rising, once falling.
        (lower, Some(2 * 64))
    }
}

impl core::iter::FusedIterator for PageBlocks {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn blocks(start: u64, n: u64) -> Vec<(u64, u32)> {
        PageBlocks::new(Pfn::try_new(start).unwrap(), n)
            .unwrap()
            .map(|(p, o)| (p.as_u64(), o.get()))
            .collect()
    }

    #[test]
    fn aligned_range_is_one_block() {
        assert_eq!(blocks(0x400, 0x400), [(0x400, 10)]);
        assert_eq!(blocks(0, 1 << 20), [(0, 20)]);
    }

    #[test]
    fn unaligned_range_rises_then_falls() {
        assert_eq!(
            blocks(1, 14),
            [(1, 0), (2, 1), (4, 2), (8, 2), (12, 1), (14, 0)]
        );
        assert!(blocks(5, 0).is_empty());
    }

    #[test]
    fn blocks_tile_the_range_exactly() {
        for (start, n) in [
            (0x3_fff1, 0x1_2345),
            (7, 1),
            (0x8_0000, 0x40_0000),
            (1, 1 << 40),
        ] {
            let mut at = start;
            for (p, o) in blocks(start, n) {
                assert_eq!(p, at);
                assert_eq!(p % (1 << o), 0, "misaligned block");
                at += 1 << o;
            }
            assert_eq!(at, start + n);
        }
    }

    #[test]
    fn the_cap_limits_orders() {
        let capped: Vec<_> =
            PageBlocks::with_max_order(Pfn::try_new(0).unwrap(), 2048, Order::try_new(9).unwrap())
                .unwrap()
                .map(|(p, o)| (p.as_u64(), o.get()))
                .collect();
        assert_eq!(capped, [(0, 9), (512, 9), (1024, 9), (1536, 9)]);
    }

    #[test]
    fn ranges_past_the_last_frame_are_rejected() {
        let last = Pfn::MAX;
        assert!(PageBlocks::new(last, 1).is_ok());
        assert_eq!(
            PageBlocks::new(last, 2).unwrap_err(),
            Error::RangeTooLarge {
                start: last,
                nr_pages: 2
            }
        );
        assert!(PageBlocks::new(Pfn::try_new(1).unwrap(), u64::MAX).is_err());
        // The whole frame space from 0 is two order-51 blocks.
        assert_eq!(blocks(0, 1 << 52), [(0, 51), (1 << 51, 51)]);
    }
}
