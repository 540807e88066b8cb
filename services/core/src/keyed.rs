//! Maps keyed by `String`, reached with a `&str`.

use std::collections::HashMap;

/// The value under `key`, made with `V::default()` if there is none. The key is copied only
/// when it is new: std's `entry` takes an owned key, which would build a `String` on every
/// call of a hot path.
pub fn get_or_default<'a, V: Default>(map: &'a mut HashMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_gets_a_default_and_a_present_one_keeps_its_value() {
        let mut m: HashMap<String, Vec<i32>> = HashMap::new();
        get_or_default(&mut m, "a").push(1);
        get_or_default(&mut m, "a").push(2);
        get_or_default(&mut m, "b");
        assert_eq!(m.get("a"), Some(&vec![1, 2]));
        assert_eq!(m.get("b"), Some(&Vec::new()));
        assert_eq!(m.len(), 2);
    }
}
