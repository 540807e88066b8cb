//! The event-type catalog (docs/contracts.md): `<prefix>.event-types`, compacted, one record
//! per type (key = its name), followed like the endpoints topic. Each version's JSON Schema
//! is compiled once, when its record is applied; the router and the HTTP ingest look a
//! validator up per event without allocating.

use crate::compacted::Position;
use crate::kafka::FutureProducer;
use crate::shutdown::Shutdown;
use hookline_core::config::KafkaConfig;
use hookline_core::contracts::schema::{CompiledSchema, SchemaViolation, Violation, DEFAULT_MAX_ERRORS};
use hookline_core::contracts::version;
use hookline_proto::v1::{self, SchemaValidation};
use hookline_proto::Message as _;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// One type as the hot path needs it.
struct Entry {
    record: v1::EventType,
    validation: SchemaValidation,
    schemas: HashMap<u32, Arc<CompiledSchema>>,
}

/// Why a catalog record is refused (at write time by the API; skipped when read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct CatalogError {
    pub field: String,
    pub problem: String,
}

/// What validating one payload found.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// No schema for this type and version, or validation off.
    Unchecked,
    Valid,
    /// Invalid, under the type's validation mode (`warn` or `enforce`).
    Invalid(SchemaValidation, Vec<Violation>),
}

#[derive(Default)]
pub struct Catalog {
    types: RwLock<HashMap<String, Arc<Entry>>>,
    pub position: Position,
}

/// Checks a record and compiles its schemas.
fn compile(record: &v1::EventType) -> Result<HashMap<u32, Arc<CompiledSchema>>, CatalogError> {
    let fail = |field: String, problem: String| CatalogError { field, problem };
    hookline_core::event::validate("x", &record.name).map_err(|e| fail("name".into(), e.to_string().trim_start_matches("type: ").to_owned()))?;
    let mut schemas = HashMap::new();
    for (i, v) in record.versions.iter().enumerate() {
        version::check_pin(v.version).map_err(|e| fail(format!("versions[{i}].version"), e.to_string()))?;
        if schemas.contains_key(&v.version) {
            return Err(fail(format!("versions[{i}].version"), format!("version {} is listed twice", v.version)));
        }
        if v.schema_json.trim().is_empty() {
            continue;
        }
        let schema: serde_json::Value =
            serde_json::from_str(&v.schema_json).map_err(|e| fail(format!("versions[{i}].schema"), format!("not JSON: {e}")))?;
        let compiled = CompiledSchema::compile(&schema).map_err(|e| fail(format!("versions[{i}].schema"), e.to_string()))?;
        for (j, example) in v.examples_json.iter().enumerate() {
            let field = format!("versions[{i}].examples[{j}]");
            if let Err(violation) = compiled.validate_payload(example.as_bytes(), DEFAULT_MAX_ERRORS) {
                return Err(fail(field, format!("does not match the schema: {}", describe(&violation.violations()))));
            }
        }
        schemas.insert(v.version, Arc::new(compiled));
    }
    Ok(schemas)
}

/// The violations in one line, for a dead letter's detail or a log.
pub fn describe(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("{} ({}): {}", if v.path.is_empty() { "/" } else { &v.path }, v.keyword, v.message)).collect::<Vec<_>>().join("; ")
}

impl Catalog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Checks `record` as the API does before writing it.
    pub fn check_record(record: &v1::EventType) -> Result<(), CatalogError> {
        compile(record).map(|_| ())
    }

    /// Applies one record: a value upserts its type, a tombstone removes it.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), CatalogError> {
        let name = String::from_utf8_lossy(key).into_owned();
        let Some(value) = value else {
            self.types.write().remove(&name);
            return Ok(());
        };
        let record = v1::EventType::decode(value).map_err(|e| CatalogError { field: "record".into(), problem: e.to_string() })?;
        let schemas = compile(&record)?;
        let entry = Entry { validation: record.validation(), record, schemas };
        self.types.write().insert(name, Arc::new(entry));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<v1::EventType> {
        self.types.read().get(name).map(|e| e.record.clone())
    }

    /// Every type, by name.
    pub fn all(&self) -> Vec<v1::EventType> {
        let mut all: Vec<v1::EventType> = self.types.read().values().map(|e| e.record.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Validates `payload` against the schema of `event_type` at `event_version` (none: 1).
    pub fn validate(&self, event_type: &str, event_version: Option<u32>, payload: &[u8]) -> Checked {
        let entry = match self.types.read().get(event_type) {
            Some(e) if e.validation != SchemaValidation::Off => Arc::clone(e),
            _ => return Checked::Unchecked,
        };
        let Some(schema) = entry.schemas.get(&version::effective(event_version)) else { return Checked::Unchecked };
        match schema.validate_payload(payload, DEFAULT_MAX_ERRORS) {
            Ok(_) => Checked::Valid,
            Err(violation) => {
                let mode = if entry.validation == SchemaValidation::Enforce { "enforce" } else { "warn" };
                crate::metric_catalog::SCHEMA_VIOLATIONS.with([mode]).increment(1);
                Checked::Invalid(entry.validation, violations_of(&violation))
            }
        }
    }

    /// The router's check: `Err(detail)` when the event must be dead-lettered (its type
    /// enforces a schema it breaks); `warn` types pass, counted.
    pub fn check(&self, event_type: &str, event_version: Option<u32>, payload: &[u8]) -> Result<(), String> {
        match self.validate(event_type, event_version, payload) {
            Checked::Invalid(SchemaValidation::Enforce, violations) => Err(describe(&violations)),
            _ => Ok(()),
        }
    }
}

fn violations_of(violation: &SchemaViolation) -> Vec<Violation> {
    violation.violations()
}

/// Reads the catalog topic into `catalog` until `shutdown`; ready once loaded.
pub async fn follow(cfg: &KafkaConfig, topic: &str, client_id: &str, catalog: Arc<Catalog>, shutdown: Shutdown) -> anyhow::Result<()> {
    let loaded = Arc::clone(&catalog);
    let apply = |key: &[u8], value: Option<&[u8]>, offset: i64| {
        if let Err(error) = catalog.apply(key, value) {
            tracing::warn!(%error, event_type = %String::from_utf8_lossy(key), offset, "event-type record skipped");
        }
        catalog.position.mark_applied(offset + 1);
    };
    let caught_up = || loaded.position.mark_ready();
    crate::compacted::follow(cfg, topic, client_id, shutdown, apply, caught_up).await
}

/// Writes `record` (checked first); returns its offset.
pub async fn put(producer: &FutureProducer, topic: &str, record: &v1::EventType) -> anyhow::Result<i64> {
    Catalog::check_record(record)?;
    crate::compacted::put(producer, topic, &record.name, Some(&record.encode_to_vec())).await
}

/// Removes the type `name`; returns the tombstone's offset.
pub async fn delete(producer: &FutureProducer, topic: &str, name: &str) -> anyhow::Result<i64> {
    crate::compacted::put(producer, topic, name, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(validation: SchemaValidation) -> v1::EventType {
        v1::EventType {
            name: "order.created".into(),
            versions: vec![v1::EventTypeVersion {
                version: 1,
                schema_json: r#"{"type":"object","required":["amount"],"properties":{"amount":{"type":"integer"}}}"#.into(),
                examples_json: vec![r#"{"amount": 3}"#.into()],
                deprecated: false,
            }],
            validation: validation as i32,
            ..Default::default()
        }
    }

    #[test]
    fn enforced_types_refuse_invalid_payloads_and_warn_types_pass_them() {
        let c = Catalog::default();
        c.apply(b"order.created", Some(&order(SchemaValidation::Enforce).encode_to_vec())).expect("valid record");
        assert_eq!(c.check("order.created", None, br#"{"amount": 5}"#), Ok(()));
        let refused = c.check("order.created", None, br#"{"amount": "5"}"#).expect_err("wrong type");
        assert!(refused.contains("/amount (type)"), "{refused}");
        assert!(c.check("order.created", None, b"not json").is_err());
        assert_eq!(c.check("order.created", Some(2), br#"{}"#), Ok(()), "no schema for version 2");
        assert_eq!(c.check("user.created", None, br#"{}"#), Ok(()), "not in the catalog");
        c.apply(b"order.created", Some(&order(SchemaValidation::Warn).encode_to_vec())).expect("valid record");
        assert_eq!(c.check("order.created", None, br#"{}"#), Ok(()));
        assert!(matches!(c.validate("order.created", None, br#"{}"#), Checked::Invalid(SchemaValidation::Warn, _)));
        c.apply(b"order.created", None).expect("tombstone");
        assert!(c.get("order.created").is_none());
    }

    #[test]
    fn bad_records_name_the_field() {
        let mut bad = order(SchemaValidation::Enforce);
        bad.versions[0].examples_json = vec![r#"{"amount": "x"}"#.into()];
        assert_eq!(Catalog::check_record(&bad).map_err(|e| e.field), Err("versions[0].examples[0]".into()));
        let mut remote = order(SchemaValidation::Enforce);
        remote.versions[0].schema_json = r#"{"$ref": "https://example.com/s.json"}"#.into();
        assert_eq!(Catalog::check_record(&remote).map_err(|e| e.field), Err("versions[0].schema".into()));
        let mut twice = order(SchemaValidation::Off);
        twice.versions.push(twice.versions[0].clone());
        assert_eq!(Catalog::check_record(&twice).map_err(|e| e.field), Err("versions[1].version".into()));
    }
}
