//! Event-type patterns and the subscription index the router consults for every event.
//!
//! A type is dot-separated segments of `[A-Za-z0-9_-]`, e.g. `order.created`. A pattern is
//! the same with `*` allowed as a whole segment: in the last position it matches one or more
//! remaining segments (`order.*` matches `order.created` and `order.item.added`), elsewhere
//! exactly one (`*.created` matches `order.created`, not `order.item.created`). The
//! pattern `*` matches every type.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Longest accepted event type or pattern, in bytes.
pub const MAX_TYPE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} bytes long; the limit is {MAX_TYPE_LEN}")]
    TooLong(usize),
    #[error("has an empty segment (check for a leading, trailing or doubled '.')")]
    EmptySegment,
    #[error("segment {0:?} may only contain letters, digits, '_' and '-'{1}")]
    BadSegment(String, &'static str),
}

fn check_segments(text: &str, allow_wildcard: bool) -> Result<(), PatternError> {
    if text.is_empty() {
        return Err(PatternError::Empty);
    }
    if text.len() > MAX_TYPE_LEN {
        return Err(PatternError::TooLong(text.len()));
    }
    for segment in text.split('.') {
        if segment.is_empty() {
            return Err(PatternError::EmptySegment);
        }
        if allow_wildcard && segment == "*" {
            continue;
        }
        let valid = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let hint = if allow_wildcard { " (or be '*')" } else { "" };
            return Err(PatternError::BadSegment(segment.to_owned(), hint));
        }
    }
    Ok(())
}

/// Checks that `event_type` is a valid concrete event type (no wildcards).
pub fn validate_event_type(event_type: &str) -> Result<(), PatternError> {
    check_segments(event_type, false)
}

/// A parsed event-type pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTypePattern {
    text: String,
    has_wildcard: bool,
}

impl EventTypePattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        check_segments(text, true)?;
        Ok(Self {
            text: text.to_owned(),
            has_wildcard: text.split('.').any(|s| s == "*"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern names exactly one type.
    pub fn is_exact(&self) -> bool {
        !self.has_wildcard
    }

    pub fn matches(&self, event_type: &str) -> bool {
        if !self.has_wildcard {
            return self.text == event_type;
        }
        // Operational events (`hookline.*`) are opt-in: only a pattern that names the
        // namespace takes them, so a catch-all `*` endpoint is not sent notices about itself.
        if crate::ops::is_operational(event_type) && !self.text.starts_with(crate::ops::NAMESPACE) {
            return false;
        }
        let mut pattern = self.text.split('.').peekable();
        let mut segments = event_type.split('.');
        while let Some(p) = pattern.next() {
            let is_last = pattern.peek().is_none();
            match segments.next() {
                None => return false,
                Some(_) if p == "*" && is_last => return true,
                Some(s) if p == "*" || p == s => {}
                Some(_) => return false,
            }
        }
        segments.next().is_none()
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What the index needs to know about one endpoint's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint_id: String,
    /// Empty: every tenant.
    pub tenant: String,
    pub patterns: Vec<EventTypePattern>,
    /// Exact-match attribute filters; all must match.
    pub filter_attributes: BTreeMap<String, String>,
}

/// The event fields that matching looks at.
#[derive(Debug, Clone, Copy)]
pub struct EventKey<'a> {
    pub tenant: &'a str,
    pub event_type: &'a str,
    pub attributes: &'a HashMap<String, String>,
}

/// In-memory index from event type to subscribed endpoints.
///
/// Exact patterns are found by hash lookup; wildcard patterns are scanned. The common case
/// (many endpoints, each with a few exact types) therefore costs one hash lookup per event.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionIndex {
    subscriptions: HashMap<String, Subscription>,
    exact: HashMap<String, Vec<String>>,
    wildcard: Vec<(EventTypePattern, String)>,
}

impl SubscriptionIndex {
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    pub fn get(&self, endpoint_id: &str) -> Option<&Subscription> {
        self.subscriptions.get(endpoint_id)
    }

    /// Adds or replaces the subscription of `sub.endpoint_id`.
    pub fn upsert(&mut self, sub: Subscription) {
        self.remove(&sub.endpoint_id);
        for pattern in &sub.patterns {
            if pattern.is_exact() {
                let ids = self.exact.entry(pattern.as_str().to_owned()).or_default();
                if !ids.contains(&sub.endpoint_id) {
                    ids.push(sub.endpoint_id.clone());
                }
            } else {
                self.wildcard.push((pattern.clone(), sub.endpoint_id.clone()));
            }
        }
        self.subscriptions.insert(sub.endpoint_id.clone(), sub);
    }

    pub fn remove(&mut self, endpoint_id: &str) -> Option<Subscription> {
        let old = self.subscriptions.remove(endpoint_id)?;
        for pattern in old.patterns.iter().filter(|p| p.is_exact()) {
            if let Some(ids) = self.exact.get_mut(pattern.as_str()) {
                ids.retain(|id| id != endpoint_id);
                if ids.is_empty() {
                    self.exact.remove(pattern.as_str());
                }
            }
        }
        self.wildcard.retain(|(_, id)| id != endpoint_id);
        Some(old)
    }

    /// Endpoint ids subscribed to `event`, each once, in a stable (sorted) order.
    pub fn matches(&self, event: EventKey<'_>) -> Vec<String> {
        let exact = self.exact.get(event.event_type).into_iter().flatten();
        let wildcard = self
            .wildcard
            .iter()
            .filter(|(pattern, _)| pattern.matches(event.event_type))
            .map(|(_, id)| id);
        let mut ids: Vec<String> = exact
            .chain(wildcard)
            .filter(|id| {
                self.subscriptions
                    .get(id.as_str())
                    .is_some_and(|sub| accepts(sub, &event))
            })
            .cloned()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl Subscription {
    /// Whether this subscription alone takes `event` (type, tenant and attributes).
    pub fn matches(&self, event: EventKey<'_>) -> bool {
        self.patterns.iter().any(|p| p.matches(event.event_type)) && accepts(self, &event)
    }
}

fn accepts(sub: &Subscription, event: &EventKey<'_>) -> bool {
    (sub.tenant.is_empty() || sub.tenant == event.tenant)
        && sub
            .filter_attributes
            .iter()
            .all(|(k, v)| event.attributes.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(text: &str) -> EventTypePattern {
        EventTypePattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn pattern_semantics() {
        let cases = [
            ("order.created", "order.created", true),
            ("order.created", "order.updated", false),
            ("order.created", "order.created.v2", false),
            ("order.*", "order.created", true),
            ("order.*", "order.item.added", true),
            ("order.*", "order", false),
            ("order.*", "orders.created", false),
            ("*", "anything", true),
            ("*", "a.b.c", true),
            ("*.created", "order.created", true),
            ("*.created", "order.item.created", false),
            ("order.*.added", "order.item.added", true),
            ("order.*.added", "order.item.removed", false),
            ("order.*.added", "order.added", false),
        ];
        for (p, t, expected) in cases {
            assert_eq!(pattern(p).matches(t), expected, "{p} vs {t}");
        }
    }

    #[test]
    fn operational_events_are_matched_only_by_patterns_naming_their_namespace() {
        for p in ["*", "*.endpoint.*", "*.*.failing"] {
            assert!(!pattern(p).matches("hookline.endpoint.failing"), "{p}");
        }
        for p in ["hookline.*", "hookline.endpoint.*", "hookline.*.failing", "hookline.endpoint.failing"] {
            assert!(pattern(p).matches("hookline.endpoint.failing"), "{p}");
        }
        assert!(pattern("*").matches("order.hookline"));
    }

    #[test]
    fn rejects_bad_patterns_and_types() {
        assert_eq!(EventTypePattern::parse(""), Err(PatternError::Empty));
        assert_eq!(EventTypePattern::parse("order..created"), Err(PatternError::EmptySegment));
        assert_eq!(EventTypePattern::parse(".order"), Err(PatternError::EmptySegment));
        assert!(matches!(EventTypePattern::parse("order.cre*ted"), Err(PatternError::BadSegment(..))));
        assert!(matches!(EventTypePattern::parse("order created"), Err(PatternError::BadSegment(..))));
        assert!(matches!(
            EventTypePattern::parse(&"a".repeat(MAX_TYPE_LEN + 1)),
            Err(PatternError::TooLong(_))
        ));
        assert!(validate_event_type("order.created").is_ok());
        assert!(validate_event_type("order.*").is_err());
    }

    fn sub(id: &str, tenant: &str, patterns: &[&str]) -> Subscription {
        Subscription {
            endpoint_id: id.into(),
            tenant: tenant.into(),
            patterns: patterns.iter().map(|p| pattern(p)).collect(),
            filter_attributes: BTreeMap::new(),
        }
    }

    fn key<'a>(tenant: &'a str, t: &'a str, attrs: &'a HashMap<String, String>) -> EventKey<'a> {
        EventKey { tenant, event_type: t, attributes: attrs }
    }

    #[test]
    fn index_matches_by_type_tenant_and_attributes() {
        let none = HashMap::new();
        let mut index = SubscriptionIndex::default();
        index.upsert(sub("a", "", &["order.created"]));
        index.upsert(sub("b", "", &["order.*", "order.created"]));
        index.upsert(sub("c", "acme", &["*"]));
        let mut d = sub("d", "", &["order.created"]);
        d.filter_attributes.insert("region".into(), "eu".into());
        index.upsert(d);

        assert_eq!(index.matches(key("", "order.created", &none)), ["a", "b"]);
        assert_eq!(index.matches(key("acme", "order.created", &none)), ["a", "b", "c"]);
        assert_eq!(index.matches(key("other", "user.deleted", &none)), Vec::<String>::new());
        let eu = HashMap::from([("region".to_owned(), "eu".to_owned())]);
        assert_eq!(index.matches(key("", "order.created", &eu)), ["a", "b", "d"]);

        index.upsert(sub("a", "", &["user.*"]));
        assert_eq!(index.matches(key("", "order.created", &none)), ["b"]);
        assert_eq!(index.matches(key("", "user.deleted", &none)), ["a"]);
        index.remove("b");
        assert!(index.matches(key("", "order.created", &none)).is_empty());
        assert_eq!(index.len(), 3);
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned())]
    }

    fn event_type() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..4).prop_map(|s| s.join("."))
    }

    fn pattern_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![segment(), Just("*".to_owned())], 1..4)
            .prop_map(|s| s.join("."))
    }

    /// Reference semantics, written independently of `matches`.
    fn reference(p: &str, t: &str) -> bool {
        let p: Vec<&str> = p.split('.').collect();
        let t: Vec<&str> = t.split('.').collect();
        let fixed = p.len() - 1;
        let prefix_ok = |n: usize| (0..n).all(|i| p[i] == "*" || p[i] == t[i]);
        if p[fixed] == "*" {
            t.len() > fixed && prefix_ok(fixed)
        } else {
            t.len() == p.len() && prefix_ok(p.len())
        }
    }

    proptest! {
        #[test]
        fn matches_agrees_with_reference(p in pattern_text(), t in event_type()) {
            prop_assert_eq!(pattern(&p).matches(&t), reference(&p, &t));
        }

        #[test]
        fn index_agrees_with_linear_scan(
            subs in prop::collection::vec((pattern_text(), prop_oneof![Just(""), Just("x")]), 0..12),
            t in event_type(),
            tenant in prop_oneof![Just(""), Just("x"), Just("y")],
        ) {
            let none = HashMap::new();
            let mut index = SubscriptionIndex::default();
            let mut expected = Vec::new();
            for (i, (p, sub_tenant)) in subs.iter().enumerate() {
                let id = format!("ep{i:02}");
                index.upsert(sub(&id, sub_tenant, &[p]));
                if reference(p, &t) && (sub_tenant.is_empty() || *sub_tenant == tenant) {
                    expected.push(id);
                }
            }
            prop_assert_eq!(index.matches(key(tenant, &t, &none)), expected);
        }
    }

    proptest! {
        /// One subscription on its own (replay backfill) decides exactly as the index does.
        #[test]
        fn a_subscription_alone_agrees_with_the_index(
            patterns in prop::collection::vec(pattern_text(), 1..3),
            t in event_type(),
            sub_tenant in prop_oneof![Just(""), Just("acme")],
            tenant in prop_oneof![Just(""), Just("acme"), Just("other")],
            filtered in any::<bool>(),
            eu in any::<bool>(),
        ) {
            let texts: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let mut s = sub("x", sub_tenant, &texts);
            if filtered {
                s.filter_attributes.insert("region".into(), "eu".into());
            }
            let attrs = if eu { HashMap::from([("region".to_owned(), "eu".to_owned())]) } else { HashMap::new() };
            let mut index = SubscriptionIndex::default();
            index.upsert(s.clone());
            let event = key(tenant, &t, &attrs);
            prop_assert_eq!(s.matches(event), index.matches(event) == ["x"]);
        }
    }
}
