//! `hookline secrets new-key|reseal`: keys that seal secrets at rest, and the migration
//! that seals every endpoint's secrets with the current key: the move from clear secrets
//! to sealed ones, and the middle step of a key rotation (docs/operations.md#secrets-at-rest).
//!
//! Reseal reads the endpoints topic raw (the registry would show opened secrets, not
//! which key sealed them) and keeps reading it while it writes, so that a change another
//! writer (the API, a sender) made between reseal's read and its write is noticed and
//! written again on top, never lost.

use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::config::Config;
use hookline_core::sealing;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::compacted::{self, Position};
use hookline_runtime::kafka::{self, FutureProducer};
use hookline_runtime::registry::{self, SecretKeys};
use hookline_runtime::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key as `<id>=<base64 key>`, a line of the secrets.keys_file.
    NewKey {
        /// The key's id: lowercase letters, digits, '_' or '-' (e.g. the month it starts).
        #[arg(long)]
        id: String,
    },
    /// Seal with secrets.current_key every endpoint whose secrets are in clear or sealed
    /// with another key. Idempotent; prints each endpoint it rewrote.
    Reseal {
        /// Only print what would be rewritten.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(config: Config, command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::NewKey { id } => {
            anyhow::ensure!(sealing::is_key_id(&id), "--id {id:?}: use lowercase letters, digits, '_' or '-' (at most 64)");
            println!("{id}={}", sealing::key_text(&rand::random()));
            Ok(())
        }
        SecretsCommand::Reseal { dry_run } => reseal(&config, dry_run).await,
    }
}

/// One record: its offset and value (`None`: a tombstone).
type Record = (i64, Option<Vec<u8>>);

/// Every record of the endpoints topic read so far, by key, in offset order. The topic
/// is compacted and small.
#[derive(Default)]
struct Records(Mutex<BTreeMap<String, Vec<Record>>>);

impl Records {
    fn push(&self, key: &[u8], value: Option<&[u8]>, offset: i64) {
        let key = String::from_utf8_lossy(key).into_owned();
        self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().push((offset, value.map(<[u8]>::to_vec)));
    }

    fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    fn latest(&self, id: &str) -> Option<Record> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(id).and_then(|r| r.last().cloned())
    }

    /// The newest record of `id` after `after` that is not `ours`: another writer's change.
    fn other_since(&self, id: &str, after: i64, ours: i64) -> Option<Record> {
        let records = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        records.get(id)?.iter().rev().find(|(offset, _)| *offset > after && *offset != ours).cloned()
    }
}

/// What reseal did with one endpoint.
enum Outcome {
    Resealed { from: String },
    WouldReseal { from: String },
    Current,
    Deleted,
    Skipped(String),
}

struct Resealer<'a> {
    keys: SecretKeys,
    producer: FutureProducer,
    topic: String,
    records: &'a Records,
    position: &'a Position,
    dry_run: bool,
}

/// Which keys hold an endpoint's secrets: `clear`, or the key ids.
fn sealed_with(stored: &v1::Endpoint) -> String {
    let mut ids: Vec<&str> = stored.secrets.iter().map(|s| sealing::key_id(&s.key).unwrap_or("clear")).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(",")
}

impl Resealer<'_> {
    /// Rewrites `id` under the current key if it needs it, then checks that no other
    /// writer's change landed between the version read and the one written (it would be
    /// lost under ours); if one did, writes that change again on top.
    async fn endpoint(&self, id: &str) -> anyhow::Result<Outcome> {
        let mut source = self.records.latest(id).context("no record")?;
        let mut restore = false;
        let mut resealed_from = None;
        // A few rounds at most: each one only follows another writer's change.
        for _ in 0..5 {
            let (at, value) = source;
            let Some(value) = value else {
                if restore {
                    // Our write brought back an endpoint deleted meanwhile: delete it again.
                    let ours = registry::delete_endpoint(&self.producer, &self.topic, id).await?;
                    self.applied(ours).await?;
                }
                return Ok(Outcome::Deleted);
            };
            let stored = match v1::Endpoint::decode(value.as_slice()) {
                Ok(e) if e.id == id => e,
                Ok(e) => return Ok(Outcome::Skipped(format!("record key differs from the endpoint id {:?}", e.id))),
                Err(e) => return Ok(Outcome::Skipped(format!("not a hookline.v1.Endpoint: {e}"))),
            };
            if !restore && !self.keys.needs_reseal(&stored) {
                return Ok(resealed_from.map_or(Outcome::Current, |from| Outcome::Resealed { from }));
            }
            let from = sealed_with(&stored);
            if self.dry_run {
                return Ok(Outcome::WouldReseal { from });
            }
            let ours = registry::put_endpoint(&self.producer, &self.topic, &self.keys, &stored).await?;
            self.applied(ours).await?;
            resealed_from.get_or_insert(from);
            match self.records.other_since(id, at, ours) {
                None => return Ok(Outcome::Resealed { from: resealed_from.unwrap_or_default() }),
                Some(other) => {
                    // Before ours: our write hid it, so it is written again whatever its keys.
                    restore = other.0 < ours;
                    source = other;
                }
            }
        }
        anyhow::bail!("it kept changing while being resealed; run reseal again")
    }

    async fn applied(&self, offset: i64) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(30), self.position.wait_applied(offset))
            .await
            .with_context(|| format!("the endpoints topic was not read back to offset {offset} within 30 s"))
    }
}

async fn reseal(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let keys = SecretKeys::load(&config.secrets)?;
    let current = keys
        .ring()
        .map(|r| r.current_id().to_owned())
        .context("secrets.current_key is not set: reseal seals with the current key (docs/operations.md#secrets-at-rest)")?;
    let topic = config.topics().endpoints;
    let (records, position, stop) = (Arc::new(Records::default()), Arc::new(Position::default()), Shutdown::new());
    let reader = tokio::spawn({
        let (kafka, topic, records, position, stop) =
            (config.kafka.clone(), topic.clone(), Arc::clone(&records), Arc::clone(&position), stop.clone());
        async move {
            let apply = |key: &[u8], value: Option<&[u8]>, offset: i64| {
                records.push(key, value, offset);
                position.mark_applied(offset + 1);
            };
            compacted::follow(&kafka, &topic, "hookline-reseal", stop, apply, || position.mark_ready()).await
        }
    });
    let outcome = async {
        tokio::time::timeout(Duration::from_secs(30), position.wait_ready())
            .await
            .context("the endpoints topic could not be read within 30s (is Kafka up and are topics created?)")?;
        let producer = kafka::producer(&config.kafka, "hookline-reseal")?;
        let resealer = Resealer { keys, producer, topic, records: &records, position: &position, dry_run };
        let (mut resealed, mut current_already, mut failed) = (0, 0, 0);
        for id in records.ids() {
            match resealer.endpoint(&id).await {
                Ok(Outcome::Resealed { from }) => {
                    resealed += 1;
                    println!("resealed      {id}: {from} -> {current}");
                }
                Ok(Outcome::WouldReseal { from }) => {
                    resealed += 1;
                    println!("would reseal  {id}: {from} -> {current}");
                }
                Ok(Outcome::Current) => current_already += 1,
                Ok(Outcome::Deleted) => {}
                Ok(Outcome::Skipped(why)) => println!("skipped       {id}: {why} (roles skip this record too)"),
                Err(error) => {
                    failed += 1;
                    println!("failed        {id}: {error:#}");
                }
            }
        }
        let verb = if dry_run { "to reseal" } else { "resealed" };
        println!("{verb}: {resealed}, already under key {current:?}: {current_already}, failed: {failed}");
        anyhow::ensure!(failed == 0, "{failed} endpoints could not be resealed (listed above)");
        Ok(())
    }
    .await;
    stop.cancel();
    reader.await.context("endpoints reader")??;
    outcome
}
