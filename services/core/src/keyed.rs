//! Maps keyed by `String`, reached with a `&str`, on the hot paths (a map lookup or two per
//! delivery): hashbrown's map, whose `entry_ref` copies a key only when it is new (std's
//! `entry` takes an owned key, which would build a `String` on every call), with its
//! default hasher, foldhash, several times cheaper than std's SipHash for short keys
//! (docs/performance.md). Its seed is random per process; the keys (topics, endpoint ids,
//! tenants, event types and ids) come from Hookline's own records and its operators.

/// foldhash with a random seed: for the other hot maps (`DashMap`s, byte keys).
pub type FastHasher = hashbrown::DefaultHashBuilder;

/// A map from `String` keys, hashed with foldhash.
pub type KeyedMap<V> = hashbrown::HashMap<String, V>;

/// The value under `key`, made with `V::default()` if there is none: one lookup, and the key
/// is copied only when it is new.
pub fn get_or_default<'a, V: Default>(map: &'a mut KeyedMap<V>, key: &str) -> &'a mut V {
    map.entry_ref(key).or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_gets_a_default_and_a_present_one_keeps_its_value() {
        let mut m: KeyedMap<Vec<i32>> = KeyedMap::default();
        get_or_default(&mut m, "a").push(1);
        get_or_default(&mut m, "a").push(2);
        get_or_default(&mut m, "b");
        assert_eq!(m.get("a"), Some(&vec![1, 2]));
        assert_eq!(m.get("b"), Some(&Vec::new()));
        assert_eq!(m.len(), 2);
    }
}
