//! `hookline event-types list|get|put|delete|asyncapi`: the event-type catalog
//! (docs/contracts.md), read from and written to its compacted topic like `hookline
//! endpoint` does for endpoints; the API's `/v1/event-types` writes the same records.

use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::config::Config;
use hookline_proto::v1::{self, SchemaValidation};
use hookline_runtime::catalog::{self, Catalog};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::{kafka, time::now_ms};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum EventTypesCommand {
    /// Every type, as JSON lines.
    List,
    /// One type, as JSON.
    Get { name: String },
    /// Create or replace a type: one version's JSON Schema from a file, its validation.
    Put(PutArgs),
    /// Remove a type from the catalog.
    Delete { name: String },
    /// The AsyncAPI 3.0 document of the events topic with the catalog's types.
    Asyncapi,
}

#[derive(clap::Args)]
pub struct PutArgs {
    /// The type's name, e.g. `order.created`.
    pub name: String,
    /// A JSON Schema file for `--version` (keeps the type's other versions).
    #[arg(long)]
    pub schema: Option<std::path::PathBuf>,
    /// The version the schema is for.
    #[arg(long, default_value_t = 1)]
    pub version: u32,
    /// Example payload files for `--version` (repeatable); each must match the schema.
    #[arg(long = "example")]
    pub examples: Vec<std::path::PathBuf>,
    /// `off`, `warn` or `enforce` (default: the type's current setting, or off).
    #[arg(long, value_parser = ["off", "warn", "enforce"])]
    pub validation: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Mark the type (or, with --version, that version) deprecated.
    #[arg(long)]
    pub deprecated: bool,
}

pub async fn run(config: Config, command: EventTypesCommand) -> anyhow::Result<()> {
    let topic = config.topics().event_types;
    match command {
        EventTypesCommand::List => {
            for t in load(&config).await?.all() {
                println!("{}", view(&t));
            }
        }
        EventTypesCommand::Get { name } => {
            let t = load(&config).await?.get(&name).with_context(|| format!("no event type {name:?}"))?;
            println!("{}", serde_json::to_string_pretty(&view(&t))?);
        }
        EventTypesCommand::Put(args) => {
            let existing = load(&config).await?.get(&args.name);
            let record = updated(existing, args, now_ms())?;
            Catalog::check_record(&record).map_err(|e| anyhow::anyhow!("{e}"))?;
            let producer = kafka::producer(&config.kafka, "hookline-cli")?;
            catalog::put(&producer, &topic, &record).await?;
            println!("{}", view(&record));
        }
        EventTypesCommand::Delete { name } => {
            anyhow::ensure!(load(&config).await?.get(&name).is_some(), "no event type {name:?}");
            let producer = kafka::producer(&config.kafka, "hookline-cli")?;
            catalog::delete(&producer, &topic, &name).await?;
            println!("deleted {name}");
        }
        EventTypesCommand::Asyncapi => {
            let types = load(&config).await?.all();
            println!("{}", serde_json::to_string_pretty(&hookline_api::asyncapi::document(&config.topics().events, &types))?);
        }
    }
    Ok(())
}

/// `existing` (or a new type) with the version, validation and description of `args`.
fn updated(existing: Option<v1::EventType>, args: PutArgs, now: i64) -> anyhow::Result<v1::EventType> {
    let mut t = existing.unwrap_or_else(|| v1::EventType { name: args.name.clone(), created_at_ms: now, ..Default::default() });
    let read_json = |path: &std::path::Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(value.to_string())
    };
    if args.schema.is_some() || !args.examples.is_empty() || (args.deprecated && args.version != 1) {
        let position = t.versions.iter().position(|v| v.version == args.version);
        let mut version = position.map(|i| t.versions[i].clone()).unwrap_or(v1::EventTypeVersion { version: args.version, ..Default::default() });
        if let Some(path) = &args.schema {
            version.schema_json = read_json(path)?;
        }
        if !args.examples.is_empty() {
            version.examples_json = args.examples.iter().map(|p| read_json(p)).collect::<anyhow::Result<_>>()?;
        }
        version.deprecated |= args.deprecated && args.version != 1;
        match position {
            Some(i) => t.versions[i] = version,
            None => t.versions.push(version),
        }
        t.versions.sort_by_key(|v| v.version);
    } else if args.deprecated {
        t.deprecated = true;
    }
    if let Some(v) = args.validation {
        t.validation = match v.as_str() {
            "warn" => SchemaValidation::Warn,
            "enforce" => SchemaValidation::Enforce,
            _ => SchemaValidation::Off,
        } as i32;
    }
    if let Some(d) = args.description {
        t.description = d;
    }
    t.updated_at_ms = now;
    Ok(t)
}

fn view(t: &v1::EventType) -> Value {
    let json = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "name": t.name,
        "description": t.description,
        "validation": match t.validation() { SchemaValidation::Off => "off", SchemaValidation::Warn => "warn", SchemaValidation::Enforce => "enforce" },
        "deprecated": t.deprecated,
        "versions": t.versions.iter().map(|v| json!({
            "version": v.version,
            "schema": json(&v.schema_json),
            "examples": v.examples_json.iter().map(|e| json(e)).collect::<Vec<_>>(),
            "deprecated": v.deprecated,
        })).collect::<Vec<_>>(),
    })
}

/// Reads the catalog topic to its end.
async fn load(config: &Config) -> anyhow::Result<Arc<Catalog>> {
    let catalog = Catalog::new();
    let stop = Shutdown::new();
    let follower = tokio::spawn({
        let (kafka, topic, catalog, stop) = (config.kafka.clone(), config.topics().event_types, Arc::clone(&catalog), stop.clone());
        async move { catalog::follow(&kafka, &topic, "hookline-cli", catalog, stop).await }
    });
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), catalog.position.wait_ready()).await;
    stop.cancel();
    follower.await.context("event-type reader")??;
    ready.context("the event-types topic could not be read within 30s (is Kafka up, and were topics created with `hookline topics create`?)")?;
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> PutArgs {
        PutArgs { name: name.into(), schema: None, version: 1, examples: Vec::new(), validation: None, description: None, deprecated: false }
    }

    #[test]
    fn put_keeps_the_other_versions_and_settings() {
        let dir = std::env::temp_dir().join(format!("hookline-et-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let schema = dir.join("v2.json");
        std::fs::write(&schema, r#"{"type": "object"}"#).expect("write");
        let existing = v1::EventType {
            name: "order.created".into(),
            description: "placed".into(),
            versions: vec![v1::EventTypeVersion { version: 1, schema_json: "{}".into(), ..Default::default() }],
            validation: SchemaValidation::Enforce as i32,
            created_at_ms: 5,
            ..Default::default()
        };
        let put = PutArgs { schema: Some(schema), version: 2, ..args("order.created") };
        let t = updated(Some(existing), put, 9).expect("updated");
        assert_eq!(t.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((t.validation(), t.description.as_str(), t.created_at_ms, t.updated_at_ms), (SchemaValidation::Enforce, "placed", 5, 9));
        let fresh = updated(None, PutArgs { validation: Some("warn".into()), ..args("user.created") }, 1).expect("new");
        assert_eq!((fresh.name.as_str(), fresh.validation(), fresh.versions.len()), ("user.created", SchemaValidation::Warn, 0));
        std::fs::remove_dir_all(&dir).ok();
    }
}
