//! The walked runs as an index, for "is this block / this range
//! preserved?" questions: binary searches over two sorted vectors, about
//! 40 bytes per run.

use alloc::vec::Vec;

use kho_mem::PhysRange;

use crate::report::Run;

const PAGE: u64 = kho_abi::PAGE_SIZE as u64;

/// The preserved set as the walk found it.
#[derive(Debug)]
pub(crate) struct RunSet {
    /// (order, start, end) of every run, sorted.
    runs: Vec<(u32, u64, u64)>,
    /// The union of the runs of every order: disjoint, not adjacent,
    /// sorted (start, end).
    covered: Vec<(u64, u64)>,
}

impl RunSet {
    pub(crate) fn new(runs: &[Run]) -> RunSet {
        let mut by_order: Vec<(u32, u64, u64)> = runs
            .iter()
            .map(|r| (r.order, r.addr, r.addr.saturating_add(r.size)))
            .collect();
        by_order.sort_unstable();
        let mut spans: Vec<(u64, u64)> = by_order.iter().map(|&(_, s, e)| (s, e)).collect();
        spans.sort_unstable();
        let mut covered: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match covered.last_mut() {
                Some((_, last_end)) if start <= *last_end => *last_end = (*last_end).max(end),
                _ => covered.push((start, end)),
            }
        }
        RunSet {
            runs: by_order,
            covered,
        }
    }

    /// The run of `order` blocks holding `phys`: (start, end).
    fn run_at(&self, order: u32, phys: u64) -> Option<(u64, u64)> {
        let i = self
            .runs
            .partition_point(|&(o, s, _)| (o, s) <= (order, phys));
        let &(o, start, end) = self.runs.get(i.checked_sub(1)?)?;
        (o == order && phys < end).then_some((start, end))
    }

    /// Whether `phys` is a preserved block of exactly `order`.
    pub(crate) fn has_block(&self, phys: u64, order: u32) -> bool {
        let block = PAGE.checked_shl(order).unwrap_or(0);
        block != 0
            && self
                .run_at(order, phys)
                .is_some_and(|(start, _)| (phys - start).is_multiple_of(block))
    }

    /// The first page of `range` no preserved block covers.
    pub(crate) fn first_uncovered(&self, range: PhysRange) -> Option<u64> {
        let at = range.start().as_u64() & !(PAGE - 1);
        let end = range.end().map_or(u64::MAX, |e| e.as_u64());
        if at >= end {
            return None;
        }
        // The covered span holding `at`, if any: uncovered from its end.
        let i = self.covered.partition_point(|&(s, _)| s <= at);
        let reach = i
            .checked_sub(1)
            .and_then(|i| self.covered.get(i))
            .filter(|&&(_, e)| at < e)
            .map(|&(_, e)| e);
        match reach {
            None => Some(at),
            Some(e) if e < end => Some(e),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kho_mem::PhysAddr;

    fn run(order: u32, addr: u64, blocks: u64) -> Run {
        Run {
            order,
            addr,
            size: blocks * (PAGE << order),
            blocks,
        }
    }

    #[test]
    fn run_set_answers_block_and_coverage_questions() {
        let set = RunSet::new(&[
            run(9, 0x4020_0000, 1),
            run(0, 0x4000_0000, 3),
            run(0, 0x4000_5000, 1),
            run(1, 0x4000_8000, 2),
        ]);
        assert!(set.has_block(0x4020_0000, 9));
        assert!(!set.has_block(0x4020_1000, 9));
        assert!(!set.has_block(0x4020_0000, 0));
        assert!(set.has_block(0x4000_2000, 0));
        assert!(!set.has_block(0x4000_3000, 0));
        assert!(set.has_block(0x4000_a000, 1));
        assert!(!set.has_block(0x4000_9000, 1));
        let r = |a: u64, s: u64| PhysRange::try_new(PhysAddr::new(a), s).unwrap();
        assert_eq!(set.first_uncovered(r(0x4000_0000, 0x3000)), None);
        assert_eq!(
            set.first_uncovered(r(0x4000_1000, 0x4000)),
            Some(0x4000_3000)
        );
        assert_eq!(set.first_uncovered(r(0x4000_8000, 0x4000)), None);
        assert_eq!(set.first_uncovered(r(0x4021_0000, 0x1000)), None);
        assert_eq!(
            set.first_uncovered(r(0x4040_0000, 0x1000)),
            Some(0x4040_0000)
        );
    }
}
