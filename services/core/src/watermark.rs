//! The contiguous completed low-water mark of one partition.
//!
//! Records are taken in offset order but finish in any order (produces are acknowledged,
//! and webhooks answered, out of order). Only the prefix of offsets that are all finished
//! may be committed, so a crash re-reads (never skips) whatever was still in flight.
//!
//! What finished beyond that prefix is not lost either: [`encode_done`] writes those offsets
//! into the commit's metadata (Kafka keeps up to 4 KB with each committed offset, the way
//! Confluent's parallel consumer does), and the partition's next owner reads them back with
//! [`decode_done`] and skips that work instead of doing it again.

use base64::Engine as _;
use std::collections::{BTreeSet, VecDeque};

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

    /// Offsets begun and not finished.
    pub fn unfinished(&self) -> usize {
        self.window.iter().filter(|&&(_, done)| !done).count()
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

    /// The first unfinished offset begun, if any: where a commit made now resumes.
    pub fn head(&self) -> Option<i64> {
        self.window.front().map(|&(o, _)| o)
    }

    /// Offsets finished beyond the watermark (behind an unfinished one), in order.
    pub fn done_beyond(&self) -> impl Iterator<Item = i64> + '_ {
        self.window.iter().filter(|&&(_, done)| done).map(|&(o, _)| o)
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

/// Marks commit metadata written by [`encode_done`].
const DONE_PREFIX: &str = "hl1:";
/// Commit metadata kept under this many bytes: brokers refuse a commit whose metadata is over
/// `offset.metadata.max.bytes` (4096 by default).
pub const DONE_MAX_BYTES: usize = 3000;

/// Commit metadata for the offsets `done` (increasing, all above `next`, the committed
/// offset): their gaps as varints, base64url. Offsets that do not fit in `max_bytes` are left
/// out (their work is then done again, as without metadata). Empty when nothing is done.
pub fn encode_done(next: i64, done: impl IntoIterator<Item = i64>, max_bytes: usize) -> String {
    let budget = (max_bytes.saturating_sub(DONE_PREFIX.len())) / 4 * 3;
    let mut raw = Vec::new();
    let mut prev = next;
    for offset in done {
        let Ok(mut gap) = u64::try_from(offset - prev) else { continue };
        let mut bytes = [0u8; 10];
        let mut n = 0;
        loop {
            bytes[n] = (gap as u8 & 0x7f) | if gap >= 0x80 { 0x80 } else { 0 };
            n += 1;
            gap >>= 7;
            if gap == 0 {
                break;
            }
        }
        if raw.len() + n > budget {
            break;
        }
        raw.extend_from_slice(&bytes[..n]);
        prev = offset;
    }
    if raw.is_empty() {
        return String::new();
    }
    format!("{DONE_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// The offsets that [`encode_done`] wrote for a commit at `next`. Metadata written by
/// anything else (or damaged) yields nothing: the work is then done again.
pub fn decode_done(next: i64, metadata: &str) -> BTreeSet<i64> {
    let Some(raw) = metadata
        .strip_prefix(DONE_PREFIX)
        .and_then(|b64| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok())
    else {
        return BTreeSet::new();
    };
    let mut done = BTreeSet::new();
    let (mut prev, mut gap, mut shift) = (next, 0u64, 0u32);
    for b in raw {
        if shift > 63 {
            return BTreeSet::new();
        }
        gap |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            let Some(offset) = i64::try_from(gap).ok().and_then(|g| prev.checked_add(g)) else {
                return BTreeSet::new();
            };
            done.insert(offset);
            (prev, gap, shift) = (offset, 0, 0);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unfinished_counts_what_was_begun_and_not_finished_whatever_the_order() {
        let mut w = CommitWatermark::new();
        for o in 0..5 {
            w.begin(o);
        }
        assert_eq!(w.unfinished(), 5);
        w.complete(3).expect("begun");
        assert_eq!((w.unfinished(), w.in_flight()), (4, 5), "finished beyond the head is not unfinished");
        w.complete(0).expect("begun");
        assert_eq!((w.unfinished(), w.in_flight()), (3, 4));
        for o in [1, 2, 4] {
            w.complete(o).expect("begun");
        }
        assert_eq!((w.unfinished(), w.in_flight()), (0, 0));
    }

    #[test]
    fn work_finished_beyond_the_watermark_travels_in_the_commit_metadata() {
        let mut w = CommitWatermark::new();
        for o in [10, 11, 12, 14, 300] {
            w.begin(o);
        }
        for o in [12, 14, 300] {
            w.complete(o).expect("begun");
        }
        assert_eq!(w.done_beyond().collect::<Vec<_>>(), [12, 14, 300]);
        let metadata = encode_done(10, w.done_beyond(), DONE_MAX_BYTES);
        assert!(metadata.starts_with("hl1:"), "{metadata}");
        assert_eq!(decode_done(10, &metadata), BTreeSet::from([12, 14, 300]));
        assert_eq!(encode_done(10, [], DONE_MAX_BYTES), "");
        assert!(decode_done(10, "").is_empty());
        assert!(decode_done(10, "someone else's metadata").is_empty());
        assert!(decode_done(10, "hl1:!!!").is_empty());
    }

    #[test]
    fn metadata_that_would_not_fit_keeps_the_lowest_offsets() {
        let done: Vec<i64> = (1..=100_000).map(|i| i * 3).collect();
        let metadata = encode_done(0, done.iter().copied(), DONE_MAX_BYTES);
        assert!(metadata.len() <= DONE_MAX_BYTES, "{}", metadata.len());
        let back = decode_done(0, &metadata);
        assert!(back.len() > 2000, "{} offsets kept", back.len());
        assert!(back.iter().copied().eq(done.iter().copied().take(back.len())), "a prefix of the offsets");
    }

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

        /// The metadata round-trips whatever the offsets, and never names an offset that was
        /// not done (which would skip work nobody did).
        #[test]
        fn done_offsets_round_trip(next in 0i64..1_000_000_000, gaps in prop::collection::vec(1i64..100_000, 0..400), max in 0usize..4000) {
            let mut done = Vec::new();
            let mut o = next;
            for g in gaps { o += g; done.push(o); }
            let metadata = encode_done(next, done.iter().copied(), max);
            prop_assert!(metadata.len() <= max);
            let back = decode_done(next, &metadata);
            prop_assert!(back.iter().copied().eq(done.iter().copied().take(back.len())));
        }
    }
}
