//! A bounded memory of the (event, endpoint) pairs a sender delivered recently.
//!
//! A router that restarts routes again every event after its committed offset, so each of
//! those events reaches the deliveries topic a second time. The sender that delivered the
//! first copy recognises the second and does not send it: the memory holds a 64-bit hash
//! per pair, the oldest forgotten first. Only what the router produces is suppressed this
//! way (first attempts, not replays, which mean to deliver again); a miss (forgotten, or a
//! sender that restarted too) only means the duplicate is sent, as before.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// The key of an (event, endpoint) pair.
pub fn pair_key(event_id: &str, endpoint_id: &str) -> u64 {
    // SipHash with fixed keys: stable within a process, which is all the memory needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (event_id, endpoint_id).hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Default)]
pub struct RecentDeliveries {
    capacity: usize,
    order: VecDeque<u64>,
    /// Keys are SipHash values already: hashed again with foldhash, not SipHash.
    set: hashbrown::HashSet<u64>,
}

impl RecentDeliveries {
    /// Remembers at most `capacity` pairs (0: nothing).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, order: VecDeque::new(), set: hashbrown::HashSet::default() }
    }

    pub fn insert(&mut self, key: u64) {
        if self.capacity == 0 || !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub fn contains(&self, key: u64) -> bool {
        self.set.contains(&key)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pair_is_remembered_until_capacity_newer_pairs_push_it_out() {
        let mut r = RecentDeliveries::new(2);
        let (a, b, c) = (pair_key("e1", "ep"), pair_key("e2", "ep"), pair_key("e1", "other"));
        assert_ne!(a, c, "the endpoint is part of the key");
        r.insert(a);
        r.insert(a);
        r.insert(b);
        assert!(r.contains(a) && r.contains(b) && r.len() == 2);
        r.insert(c);
        assert!(!r.contains(a) && r.contains(b) && r.contains(c));
        let mut off = RecentDeliveries::new(0);
        off.insert(a);
        assert!(!off.contains(a) && off.is_empty());
    }

    proptest! {
        /// Matches a plain model: first in, first forgotten; never more than the capacity.
        #[test]
        fn holds_exactly_the_newest_pairs(capacity in 0usize..50, keys in prop::collection::vec(0u64..80, 0..300)) {
            let mut r = RecentDeliveries::new(capacity);
            let mut model: VecDeque<u64> = VecDeque::new();
            for &k in &keys {
                r.insert(k);
                if capacity > 0 && !model.contains(&k) {
                    model.push_back(k);
                    if model.len() > capacity {
                        model.pop_front();
                    }
                }
                prop_assert_eq!(r.len(), model.len());
                for k in 0u64..80 {
                    prop_assert_eq!(r.contains(k), model.contains(&k));
                }
            }
        }
    }
}
