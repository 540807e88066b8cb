//! The contiguous completed low-water mark of one partition.
//!
//! Records are taken in offset order but finish in any order (produces are acknowledged,
//! and webhooks answered, out of order). Only the prefix of offsets that are all finished
//! may be committed, so a crash re-reads (never skips) whatever was still in flight.

use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkError {
    #[error("offset {offset} was not begun (or already committed)")]
    Unknown { offset: i64 },
}

/// Tracks in-flight offsets of one partition.
#[derive(Debug, Default, Clone)]
pub struct CommitWatermark {
    /// Begun offsets in increasing order, with whether each has finished.
    window: VecDeque<(i64, bool)>,
    /// The last offset handed out by `complete` as committable (exclusive end).
    committed_to: Option<i64>,
}

impl CommitWatermark {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offsets begun and not yet below the watermark.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    pub fn is_idle(&self) -> bool {
        self.window.is_empty()
    }

    /// The next offset to consume that may be committed (exclusive end of the finished
    /// prefix), if anything was ever committable.
    pub fn committed_to(&self) -> Option<i64> {
        self.committed_to
    }

    /// Registers `offset` as taken. Offsets arrive in increasing order; an offset at or
    /// below the last one begun means the partition was rewound (reassigned or seeked), so
    /// the old window is dropped and tracking starts again from here.
    pub fn begin(&mut self, offset: i64) {
        if self.window.back().is_some_and(|&(last, _)| offset <= last)
            || self.committed_to.is_some_and(|c| offset < c)
        {
            self.window.clear();
            self.committed_to = None;
        }
        self.window.push_back((offset, false));
    }

    /// Marks `offset` finished. Returns the new commit position (the next offset to consume)
    /// when the finished prefix grew, `None` when it did not.
    pub fn complete(&mut self, offset: i64) -> Result<Option<i64>, WatermarkError> {
        let index = self
            .window
            .binary_search_by_key(&offset, |&(o, _)| o)
            .map_err(|_| WatermarkError::Unknown { offset })?;
        self.window[index].1 = true;
        let mut advanced = None;
        while let Some(&(o, true)) = self.window.front() {
            self.window.pop_front();
            advanced = Some(o + 1);
        }
        if advanced.is_some() {
            self.committed_to = advanced;
        }
        Ok(advanced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_completion_commits_only_the_prefix() {
        let mut w = CommitWatermark::new();
        for o in [10, 11, 12, 14] {
            w.begin(o);
        }
        assert_eq!(w.complete(12), Ok(None));
        assert_eq!(w.complete(11), Ok(None));
        assert_eq!(w.complete(10), Ok(Some(13)));
        assert_eq!(w.in_flight(), 1);
        assert_eq!(w.complete(14), Ok(Some(15)));
        assert!(w.is_idle());
        assert_eq!(w.complete(14), Err(WatermarkError::Unknown { offset: 14 }));
    }

    #[test]
    fn rewind_starts_a_fresh_window() {
        let mut w = CommitWatermark::new();
        w.begin(5);
        w.begin(6);
        assert_eq!(w.complete(5), Ok(Some(6)));
        w.begin(3);
        assert_eq!(w.in_flight(), 1);
        assert_eq!(w.committed_to(), None);
        assert_eq!(w.complete(3), Ok(Some(4)));
    }

    proptest! {
        /// Whatever the completion order, the watermark never passes an unfinished offset
        /// and ends at the last offset + 1 once everything finished.
        #[test]
        fn never_passes_an_unfinished_offset(
            gaps in prop::collection::vec(1i64..4, 1..60),
            seed in any::<u64>(),
        ) {
            let mut offsets = Vec::new();
            let mut o = 0;
            for g in gaps { o += g; offsets.push(o); }
            let mut w = CommitWatermark::new();
            for &o in &offsets { w.begin(o); }
            // Deterministic shuffle from the seed.
            let mut shuffled = offsets.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut done = std::collections::BTreeSet::new();
            let mut last = None;
            for off in shuffled {
                done.insert(off);
                if let Some(next) = w.complete(off).expect("begun") {
                    prop_assert!(last.is_none_or(|l| next > l));
                    // Every begun offset below `next` is finished.
                    prop_assert!(offsets.iter().filter(|&&x| x < next).all(|x| done.contains(x)));
                    last = Some(next);
                }
            }
            prop_assert_eq!(last, offsets.last().map(|l| l + 1));
            prop_assert!(w.is_idle());
        }
    }
}
