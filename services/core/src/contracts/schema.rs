//! JSON Schema per event type and version: compiled once, cached, checked per event.
//!
//! Schemas default to draft 2020-12 (a `$schema` keyword naming another draft that the
//! `jsonschema` crate knows, 4 to 2020-12, is honoured). Compilation is offline: every
//! `$ref` must resolve inside the schema itself (`#/$defs/...`, or an `$id` it declares);
//! a reference to a URL or a file fails to compile with [`SchemaError::ExternalReference`]
//! and nothing is ever fetched, whatever features the `jsonschema` crate is built with.
//! `pattern` and `patternProperties` use the linear-time `regex` engine, so a schema cannot
//! make the router backtrack for ever; a pattern that needs look-around or back-references
//! is refused at compile time. `format` follows the draft: checked up to draft 7, an
//! annotation only (not checked) in 2019-09 and 2020-12.
//!
//! Validation first asks the cheap yes/no question and only collects errors for an invalid
//! payload, at most `max_errors` of them, each a [`Violation`] (instance JSON Pointer, keyword,
//! message). Messages never quote the payload's values (the crate's masked form), so they
//! are safe in logs and dead letters.
//!
//! [`SchemaCache`] holds compiled validators by (event type, version) behind `Arc`s; the
//! lookup borrows the type name and allocates nothing. Identical schemas (by SHA-256 of their
//! JSON text) share one compiled validator.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Weak};

/// Largest schema accepted, as compact JSON text.
pub const MAX_SCHEMA_BYTES: usize = 512 * 1024;
/// Default bound on the errors reported for one payload.
pub const DEFAULT_MAX_ERRORS: usize = 20;
/// Longest message kept in a [`Violation`], in characters.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema: {size} bytes is over the limit of {MAX_SCHEMA_BYTES}")]
    TooLarge { size: usize },
    #[error("schema: {message}: Hookline never fetches a schema from a URL or a file; put the referenced schema under \"$defs\" and refer to it as \"#/$defs/<name>\"")]
    ExternalReference { message: String },
    #[error("schema: not a valid JSON Schema at {path:?}: {message}")]
    Invalid { path: String, message: String },
}

/// One reason a payload does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON Pointer into the payload (`""` is the whole payload).
    pub path: String,
    /// The schema keyword that failed (`type`, `required`, ...), or `json` when the payload
    /// is not JSON at all.
    pub keyword: String,
    pub message: String,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaViolation {
    #[error("payload is not JSON ({message}); this event type has a schema, so its payload must be a JSON document")]
    NotJson { message: String },
    #[error("payload does not match the schema of its event type: {}", summary(.violations, *.truncated))]
    Invalid {
        violations: Vec<Violation>,
        /// More errors were found than were kept.
        truncated: bool,
    },
}

impl SchemaViolation {
    /// The errors, as a 422 or a dead letter lists them (a non-JSON payload is one error at
    /// path `""` with keyword `json`).
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            Self::NotJson { message } => {
                vec![Violation { path: String::new(), keyword: "json".to_owned(), message: format!("not JSON: {message}") }]
            }
            Self::Invalid { violations, .. } => violations.clone(),
        }
    }
}

fn summary(violations: &[Violation], truncated: bool) -> String {
    let mut text = violations
        .iter()
        .take(3)
        .map(|v| format!("{} at {:?}", v.message, v.path))
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > 3 || truncated {
        text.push_str("; ...");
    }
    text
}

fn bounded(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// SHA-256 of a schema's compact JSON text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaHash(pub [u8; 32]);

impl fmt::Display for SchemaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SchemaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaHash({self})")
    }
}

/// A compiled schema. Cheap to share (`Send + Sync`, usually held in an `Arc`).
pub struct CompiledSchema {
    validator: jsonschema::Validator,
    hash: SchemaHash,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSchema").field("hash", &self.hash).finish_non_exhaustive()
    }
}

fn text_of(schema: &serde_json::Value) -> Result<Vec<u8>, SchemaError> {
    // A `Value` always serialises; the error arm only keeps this free of `unwrap`.
    let text = serde_json::to_vec(schema).map_err(|e| SchemaError::Invalid { path: String::new(), message: e.to_string() })?;
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(SchemaError::TooLarge { size: text.len() });
    }
    Ok(text)
}

/// The hash a schema is cached under.
pub fn hash(schema: &serde_json::Value) -> Result<SchemaHash, SchemaError> {
    Ok(SchemaHash(Sha256::digest(text_of(schema)?).into()))
}

impl CompiledSchema {
    /// Compiles `schema` (checked against its draft's meta-schema), offline.
    pub fn compile(schema: &serde_json::Value) -> Result<Self, SchemaError> {
        let hash = SchemaHash(Sha256::digest(text_of(schema)?).into());
        // The default draft is 2020-12; a `$schema` naming a known draft picks it. A custom
        // meta-schema would have to be fetched, so it is refused here, before the crate looks.
        if jsonschema::Draft::default().detect(schema) == jsonschema::Draft::Unknown {
            let named = schema.get("$schema").map(ToString::to_string).unwrap_or_default();
            return Err(SchemaError::ExternalReference {
                message: bounded(format!("\"$schema\" {named} is not a JSON Schema draft Hookline knows (4, 6, 7, 2019-09, 2020-12)")),
            });
        }
        let validator = jsonschema::options()
            .offline()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(schema)
            .map_err(|e| compile_error(&e))?;
        Ok(Self { validator, hash })
    }

    pub fn hash(&self) -> SchemaHash {
        self.hash
    }

    pub fn is_valid(&self, instance: &serde_json::Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Checks a parsed payload; on failure keeps at most `max_errors` (at least one) errors.
    pub fn validate(&self, instance: &serde_json::Value, max_errors: usize) -> Result<(), SchemaViolation> {
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        let mut errors = self.validator.iter_errors(instance);
        let violations: Vec<Violation> = errors
            .by_ref()
            .take(max_errors.max(1))
            .map(|e| Violation {
                path: e.instance_path().as_str().to_owned(),
                keyword: e.kind().keyword().to_owned(),
                message: bounded(e.masked().to_string()),
            })
            .collect();
        let truncated = errors.next().is_some();
        Err(SchemaViolation::Invalid { violations, truncated })
    }

    /// Parses the payload bytes as JSON and checks them; returns the parsed document so the
    /// caller (a filter, a transformation) need not parse it again.
    pub fn validate_payload(&self, payload: &[u8], max_errors: usize) -> Result<serde_json::Value, SchemaViolation> {
        let instance = parse_payload(payload)?;
        self.validate(&instance, max_errors)?;
        Ok(instance)
    }
}

/// Parses a payload as JSON, with the error a schema check reports for one that is not.
pub fn parse_payload(payload: &[u8]) -> Result<serde_json::Value, SchemaViolation> {
    serde_json::from_slice(payload).map_err(|e| SchemaViolation::NotJson { message: e.to_string() })
}

fn compile_error(error: &jsonschema::ValidationError<'_>) -> SchemaError {
    let message = bounded(error.to_string());
    match error.kind() {
        jsonschema::error::ValidationErrorKind::Referencing(
            jsonschema::ReferencingError::Unretrievable { .. } | jsonschema::ReferencingError::UnknownSpecification { .. },
        ) => SchemaError::ExternalReference { message },
        _ => SchemaError::Invalid { path: error.schema_path().as_str().to_owned(), message },
    }
}

/// Compiled schemas by event type and version, as the router and the ingest consult them.
///
/// Fed from the catalog (`insert` on a new or changed version, `remove` when one goes).
/// Lookups cost one hash of the type name and one small ordered-map step.
#[derive(Debug, Default, Clone)]
pub struct SchemaCache {
    by_type: HashMap<String, BTreeMap<u32, Arc<CompiledSchema>>>,
    by_hash: HashMap<SchemaHash, Weak<CompiledSchema>>,
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles (or reuses an identical compiled) schema and files it under
    /// (`event_type`, `version`), replacing what was there.
    pub fn insert(&mut self, event_type: &str, version: u32, schema: &serde_json::Value) -> Result<Arc<CompiledSchema>, SchemaError> {
        let hash = hash(schema)?;
        let compiled = match self.by_hash.get(&hash).and_then(Weak::upgrade) {
            Some(existing) => existing,
            None => {
                let compiled = Arc::new(CompiledSchema::compile(schema)?);
                self.by_hash.insert(hash, Arc::downgrade(&compiled));
                compiled
            }
        };
        self.by_type.entry(event_type.to_owned()).or_default().insert(version, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Files an already compiled schema (e.g. one the API compiled when it was written).
    pub fn insert_compiled(&mut self, event_type: &str, version: u32, compiled: Arc<CompiledSchema>) {
        self.by_hash.insert(compiled.hash, Arc::downgrade(&compiled));
        self.by_type.entry(event_type.to_owned()).or_default().insert(version, compiled);
    }

    pub fn get(&self, event_type: &str, version: u32) -> Option<&Arc<CompiledSchema>> {
        self.by_type.get(event_type)?.get(&version)
    }

    pub fn remove(&mut self, event_type: &str, version: u32) -> Option<Arc<CompiledSchema>> {
        let versions = self.by_type.get_mut(event_type)?;
        let removed = versions.remove(&version);
        if versions.is_empty() {
            self.by_type.remove(event_type);
        }
        self.prune();
        removed
    }

    /// Removes every version of a type.
    pub fn remove_type(&mut self, event_type: &str) {
        self.by_type.remove(event_type);
        self.prune();
    }

    /// Number of (type, version) entries.
    pub fn len(&self) -> usize {
        self.by_type.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    fn prune(&mut self) {
        self.by_hash.retain(|_, weak| weak.strong_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn order_schema() -> serde_json::Value {
        json!({
            "type": "object",
            "required": ["id", "amount"],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "amount": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": {"$ref": "#/$defs/item"}}
            },
            "$defs": {"item": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}
        })
    }

    fn compiled() -> CompiledSchema {
        CompiledSchema::compile(&order_schema()).expect("the order schema compiles")
    }

    #[test]
    fn a_matching_payload_passes_and_is_returned_parsed() {
        let parsed = compiled().validate_payload(br#"{"id":"o1","amount":5,"items":[{"sku":"a"}]}"#, 10);
        assert_eq!(parsed, Ok(json!({"id":"o1","amount":5,"items":[{"sku":"a"}]})));
    }

    #[test]
    fn errors_name_the_instance_path_the_keyword_and_the_problem() {
        let err = compiled().validate(&json!({"id": "", "amount": -1, "items": [{"sku": 3}]}), 10).expect_err("fails");
        let SchemaViolation::Invalid { violations, truncated } = &err else { panic!("{err:?}") };
        assert!(!truncated);
        let found: Vec<(&str, &str)> = violations.iter().map(|v| (v.path.as_str(), v.keyword.as_str())).collect();
        assert!(found.contains(&("/id", "minLength")), "{found:?}");
        assert!(found.contains(&("/amount", "minimum")), "{found:?}");
        assert!(found.contains(&("/items/0/sku", "type")), "{found:?}");
        assert!(violations.iter().all(|v| !v.message.is_empty()));
        assert!(err.to_string().starts_with("payload does not match the schema"));
    }

    #[test]
    fn a_missing_property_is_reported_with_the_required_keyword() {
        let err = compiled().validate(&json!({"id": "o1"}), 10).expect_err("fails");
        let v = &err.violations()[0];
        assert_eq!((v.path.as_str(), v.keyword.as_str()), ("", "required"));
        assert!(v.message.contains("amount"), "{}", v.message);
    }

    #[test]
    fn messages_do_not_quote_the_payload() {
        let err = compiled().validate(&json!({"id": 12345678987654321u64, "amount": 1}), 10).expect_err("fails");
        assert!(!err.violations()[0].message.contains("12345678987654321"), "{err:?}");
    }

    #[test]
    fn errors_are_bounded() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        let s = CompiledSchema::compile(&schema).expect("compiles");
        let err = s.validate(&json!((0..100).collect::<Vec<_>>()), 5).expect_err("fails");
        let SchemaViolation::Invalid { violations, truncated } = err else { panic!() };
        assert_eq!(violations.len(), 5);
        assert!(truncated);
        // Zero still reports the first error.
        assert_eq!(s.validate(&json!([1]), 0).expect_err("fails").violations().len(), 1);
    }

    #[test]
    fn a_payload_that_is_not_json_is_refused_with_a_clear_message() {
        let err = compiled().validate_payload(b"<xml/>", 10).expect_err("fails");
        assert!(matches!(err, SchemaViolation::NotJson { .. }));
        assert!(err.to_string().contains("payload is not JSON"), "{err}");
        let v = err.violations();
        assert_eq!((v.len(), v[0].path.as_str(), v[0].keyword.as_str()), (1, "", "json"));
        assert!(compiled().validate_payload(b"", 10).is_err());
        assert!(compiled().validate_payload(b"{\"id\":\"a\",\"amount\":1} trailing", 10).is_err());
    }

    #[test]
    fn a_remote_reference_does_not_compile_and_is_not_fetched() {
        // The host does not resolve: a fetch attempt would fail differently (and slowly).
        for target in ["https://example.com/x.json", "http://hookline-test.invalid/schema.json", "https://example.com/x.json#/$defs/a"] {
            let err = CompiledSchema::compile(&json!({"$ref": target})).expect_err("is refused");
            assert!(matches!(err, SchemaError::ExternalReference { .. }), "{target}: {err:?}");
            let text = err.to_string();
            assert!(text.contains("never fetches"), "{text}");
            assert!(text.contains("$defs"), "{text}");
        }
    }

    #[test]
    fn a_file_reference_does_not_compile() {
        for target in ["file:///etc/passwd", "file:///tmp/schema.json", "other.json"] {
            let err = CompiledSchema::compile(&json!({"properties": {"a": {"$ref": target}}})).expect_err("is refused");
            assert!(matches!(err, SchemaError::ExternalReference { .. }), "{target}: {err:?}");
        }
    }

    #[test]
    fn an_unknown_meta_schema_is_not_fetched() {
        let err = CompiledSchema::compile(&json!({"$schema": "https://example.com/my-meta", "type": "object"})).expect_err("is refused");
        assert!(matches!(err, SchemaError::ExternalReference { .. }), "{err:?}");
        assert!(err.to_string().contains("https://example.com/my-meta"), "{err}");
        for known in ["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema", "http://json-schema.org/draft-04/schema#"] {
            assert!(CompiledSchema::compile(&json!({"$schema": known, "type": "object"})).is_ok(), "{known}");
        }
    }

    #[test]
    fn references_inside_the_schema_resolve() {
        let schema = json!({
            "$id": "https://schemas.example.com/order.json",
            "type": "object",
            "properties": {"a": {"$ref": "https://schemas.example.com/order.json#/$defs/pos"}, "b": {"$ref": "#/$defs/pos"}},
            "$defs": {"pos": {"type": "integer", "minimum": 1}}
        });
        let s = CompiledSchema::compile(&schema).expect("compiles");
        assert!(s.is_valid(&json!({"a": 1, "b": 2})));
        assert!(!s.is_valid(&json!({"a": 0})));
        assert!(!s.is_valid(&json!({"b": 0})));
    }

    #[test]
    fn drafts_default_to_2020_12_and_honour_schema() {
        // prefixItems exists in 2020-12 only.
        let s = CompiledSchema::compile(&json!({"prefixItems": [{"type": "string"}]})).expect("compiles");
        assert!(!s.is_valid(&json!([1])));
        let s = CompiledSchema::compile(&json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]})).expect("compiles");
        assert!(!s.is_valid(&json!([1])));
        assert!(s.is_valid(&json!(["a", 1])));
    }

    #[test]
    fn an_invalid_schema_is_refused_with_its_location() {
        let err = CompiledSchema::compile(&json!({"type": "objekt"})).expect_err("is refused");
        assert!(matches!(err, SchemaError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().starts_with("schema: not a valid JSON Schema"), "{err}");
        let err = CompiledSchema::compile(&json!({"properties": {"a": {"minimum": "zero"}}})).expect_err("is refused");
        assert!(matches!(err, SchemaError::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn backtracking_patterns_are_refused_and_linear_ones_work() {
        assert!(CompiledSchema::compile(&json!({"type": "string", "pattern": "^(?=a)a+$"})).is_err());
        let s = CompiledSchema::compile(&json!({"type": "string", "pattern": "^(a+)+$"})).expect("compiles");
        let evil = format!("{}!", "a".repeat(10_000));
        assert!(!s.is_valid(&json!(evil)));
        assert!(s.is_valid(&json!("aaaa")));
    }

    #[test]
    fn an_oversized_schema_is_refused() {
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(matches!(CompiledSchema::compile(&big), Err(SchemaError::TooLarge { .. })));
    }

    #[test]
    fn the_cache_looks_up_by_type_and_version_and_shares_identical_schemas() {
        let mut cache = SchemaCache::new();
        let a = cache.insert("order.created", 1, &order_schema()).expect("succeeds");
        let b = cache.insert("order.updated", 1, &order_schema()).expect("succeeds");
        assert!(Arc::ptr_eq(&a, &b), "identical schemas compile once");
        cache.insert("order.created", 2, &json!({"type": "object"})).expect("succeeds");
        assert_eq!(cache.len(), 3);
        assert!(Arc::ptr_eq(cache.get("order.created", 1).expect("succeeds"), &a));
        assert!(cache.get("order.created", 3).is_none());
        assert!(cache.get("order.deleted", 1).is_none());
        assert!(cache.get("order.created", 2).expect("succeeds").is_valid(&json!({})));
        // Replacing a version takes effect.
        cache.insert("order.created", 2, &json!({"type": "array"})).expect("succeeds");
        assert!(!cache.get("order.created", 2).expect("succeeds").is_valid(&json!({})));
        assert!(cache.remove("order.created", 2).is_some());
        assert!(cache.get("order.created", 2).is_none());
        cache.remove_type("order.created");
        assert!(cache.get("order.created", 1).is_none());
        assert_eq!(cache.len(), 1);
        drop((a, b));
        cache.remove_type("order.updated");
        assert!(cache.is_empty());
        assert!(cache.by_hash.is_empty(), "dropped schemas are forgotten");
    }

    #[test]
    fn a_failed_insert_leaves_the_cache_unchanged() {
        let mut cache = SchemaCache::new();
        cache.insert("a", 1, &json!({"type": "string"})).expect("succeeds");
        assert!(cache.insert("a", 1, &json!({"$ref": "https://example.com/x"})).is_err());
        assert!(cache.get("a", 1).expect("succeeds").is_valid(&json!("s")));
    }

    #[test]
    fn compiled_schemas_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledSchema>();
        assert_send_sync::<SchemaCache>();
    }

    /// The router's per-event work at volume: lookup plus check, for valid and invalid
    /// events. No timing assertion (shared CI machines), only that it completes and agrees.
    #[test]
    fn many_validations_through_the_cache() {
        let mut cache = SchemaCache::new();
        for i in 0..50 {
            cache.insert(&format!("type.{i}"), 1, &order_schema()).expect("succeeds");
        }
        let valid = json!({"id": "o1", "amount": 5, "items": [{"sku": "a"}, {"sku": "b"}]});
        let invalid = json!({"id": "o1", "amount": "5"});
        let mut passed = 0;
        for i in 0..20_000 {
            let schema = cache.get(&format!("type.{}", i % 50), 1).expect("succeeds");
            if schema.validate(if i % 10 == 0 { &invalid } else { &valid }, DEFAULT_MAX_ERRORS).is_ok() {
                passed += 1;
            }
        }
        assert_eq!(passed, 18_000);
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            "[a-z0-9 ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// `validate` agrees with `is_valid`, reports a bounded, non-empty list when invalid,
        /// and every reported path points into the payload.
        #[test]
        fn validate_agrees_with_is_valid(instance in arb_json(), max in 1usize..5) {
            let s = compiled();
            match s.validate(&instance, max) {
                Ok(()) => prop_assert!(s.is_valid(&instance)),
                Err(SchemaViolation::Invalid { violations, .. }) => {
                    prop_assert!(!s.is_valid(&instance));
                    prop_assert!(!violations.is_empty() && violations.len() <= max);
                    for v in violations {
                        prop_assert!(instance.pointer(&v.path).is_some(), "{} not in {}", v.path, instance);
                    }
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }

        /// Any JSON text is parsed; the same bytes with a byte of garbage in front are not.
        #[test]
        fn payload_parsing_matches_serde(instance in arb_json()) {
            let text = serde_json::to_vec(&instance).expect("succeeds");
            prop_assert_eq!(parse_payload(&text).ok(), Some(instance));
            let mut bad = b"}".to_vec();
            bad.extend_from_slice(&text);
            prop_assert!(parse_payload(&bad).is_err());
        }
    }
}
