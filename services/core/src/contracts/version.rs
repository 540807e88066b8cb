//! Which version of its type an event is, and whether an endpoint pinned to a version takes it.
//!
//! The rule: the type name never changes between versions (`order.created` stays
//! `order.created`); the version travels in the event's `version` attribute as a positive
//! decimal integer without sign or leading zeros (`"1"`, `"2"`, ...). An event without the
//! attribute is version [`DEFAULT_VERSION`], so types that never declared a version keep
//! working and an endpoint pinned to 1 keeps receiving them. An attribute was chosen over a
//! type suffix (`order.created.v2`) because type patterns (`order.*`), attribute filters and
//! the catalog then keep one name per type, and a producer moves to a new version by adding
//! one attribute.
//!
//! An endpoint may pin one version: it then receives only events of that version. Without a
//! pin it receives every version.

use std::collections::{BTreeMap, HashMap};

/// The attribute that carries an event's version.
pub const VERSION_ATTRIBUTE: &str = "version";
/// The version of an event without a `version` attribute.
pub const DEFAULT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("attribute \"version\": {0:?} is not a version; use a positive integer without sign or leading zeros, e.g. \"2\"")]
    NotAVersion(String),
}

/// Parses a version as written in the attribute (or in an endpoint's pin given as text).
pub fn parse(text: &str) -> Result<u32, VersionError> {
    let canonical = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    let bad = || VersionError::NotAVersion(text.chars().take(32).collect());
    if !canonical {
        return Err(bad());
    }
    text.parse::<u32>().map_err(|_| bad())
}

/// Checks an endpoint's pin as the API receives it (a number): versions start at 1.
pub fn check_pin(pin: u32) -> Result<u32, VersionError> {
    if pin == 0 {
        return Err(VersionError::NotAVersion("0".to_owned()));
    }
    Ok(pin)
}

/// The version an event declares: `None` without the attribute.
pub fn of_event(attributes: &HashMap<String, String>) -> Result<Option<u32>, VersionError> {
    attributes.get(VERSION_ATTRIBUTE).map(|v| parse(v)).transpose()
}

/// The version an event counts as: its declared one, or [`DEFAULT_VERSION`].
pub fn effective(event_version: Option<u32>) -> u32 {
    event_version.unwrap_or(DEFAULT_VERSION)
}

/// Whether an endpoint pinned to `pinned` (`None`: no pin) receives an event declaring
/// `event_version` (`None`: no attribute, so [`DEFAULT_VERSION`]).
pub fn accepts(pinned: Option<u32>, event_version: Option<u32>) -> bool {
    pinned.is_none_or(|pin| pin == effective(event_version))
}

/// For the catalog: which endpoints receive each of a type's `versions`, given each
/// endpoint's pin. An unpinned endpoint receives them all; a pin to a version that is not
/// listed is reported under that version too, so a pin to a removed version shows.
pub fn usage<'a>(
    versions: impl IntoIterator<Item = u32>,
    pins: impl IntoIterator<Item = (&'a str, Option<u32>)>,
) -> BTreeMap<u32, Vec<&'a str>> {
    let mut by_version: BTreeMap<u32, Vec<&'a str>> = versions.into_iter().map(|v| (v, Vec::new())).collect();
    let mut unpinned = Vec::new();
    for (endpoint, pin) in pins {
        match pin {
            Some(v) => by_version.entry(v).or_default().push(endpoint),
            None => unpinned.push(endpoint),
        }
    }
    for endpoints in by_version.values_mut() {
        endpoints.extend_from_slice(&unpinned);
        endpoints.sort_unstable();
    }
    by_version
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_positive_canonical_integers_only() {
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("42"), Ok(42));
        assert_eq!(parse("4294967295"), Ok(u32::MAX));
        for bad in ["", "0", "01", "+1", "-1", "1.0", "v2", " 1", "4294967296", "١"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("x").expect_err("fails").to_string().contains("positive integer"));
    }

    #[test]
    fn an_event_without_the_attribute_is_version_one() {
        let mut attributes = HashMap::new();
        assert_eq!(of_event(&attributes), Ok(None));
        assert_eq!(effective(None), 1);
        attributes.insert("version".to_owned(), "3".to_owned());
        assert_eq!(of_event(&attributes), Ok(Some(3)));
        attributes.insert("version".to_owned(), "three".to_owned());
        assert!(of_event(&attributes).is_err());
    }

    #[test]
    fn a_pin_takes_only_its_version() {
        assert!(accepts(None, None));
        assert!(accepts(None, Some(7)));
        assert!(accepts(Some(1), None));
        assert!(accepts(Some(2), Some(2)));
        assert!(!accepts(Some(2), None));
        assert!(!accepts(Some(2), Some(3)));
        assert!(!accepts(Some(1), Some(2)));
    }

    #[test]
    fn a_pin_of_zero_is_refused() {
        assert_eq!(check_pin(3), Ok(3));
        assert!(check_pin(0).is_err());
    }

    #[test]
    fn usage_lists_the_endpoints_of_each_version() {
        let pins = [("ep_a", Some(1)), ("ep_b", None), ("ep_c", Some(2)), ("ep_d", Some(9))];
        let usage = usage([1, 2, 3], pins);
        assert_eq!(usage[&1], vec!["ep_a", "ep_b"]);
        assert_eq!(usage[&2], vec!["ep_b", "ep_c"]);
        assert_eq!(usage[&3], vec!["ep_b"]);
        assert_eq!(usage[&9], vec!["ep_b", "ep_d"], "a pin to an unknown version shows");
        assert!(super::usage([1], []).get(&1).is_some_and(Vec::is_empty));
    }

    proptest! {
        #[test]
        fn parse_round_trips(v in 1u32..) {
            prop_assert_eq!(parse(&v.to_string()), Ok(v));
        }

        #[test]
        fn unpinned_takes_everything_and_a_pin_exactly_one(pin in 1u32..10, v in proptest::option::of(1u32..10)) {
            prop_assert!(accepts(None, v));
            prop_assert_eq!(accepts(Some(pin), v), effective(v) == pin);
        }
    }
}
