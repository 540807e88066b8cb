//! An endpoint's payload transformation: ordered operations on the JSON payload by JSON
//! Pointer (RFC 6901), then an envelope, applied by the sender before signing.
//!
//! Configuration (what the API takes, e.g.
//! `{"envelope":"standard","ops":[{"op":"mask","pointer":"/card/number","with":"hash"}]}`):
//!
//! - `include {pointers}`: keep only these members; everything else goes. Pointers pass
//!   through objects only: one that would step into an array before its last token fails
//!   the delivery (keep the whole array instead). Ancestors are kept as objects holding only
//!   the included members; a pointer that is absent from the payload is skipped, so an
//!   include of absent members only yields `{}`. The payload must be an object.
//! - `exclude {pointers}`: remove these members or array elements, one after the other (an
//!   array shifts after a removal). Absent ones are skipped.
//! - `mask {pointer, with: "marker" | "hash", marker?, encoding?}`: replace the value (of
//!   any type, a whole object included) with a fixed string (`marker`, default
//!   [`DEFAULT_MARKER`]) or with `hmac:` followed by the HMAC-SHA256 of the value, keyed
//!   with the endpoint's [`MaskKey`], in `hex` (default) or unpadded `base64url`. A string is
//!   hashed as its UTF-8 bytes, any other value as its compact JSON text (object keys in
//!   sorted order), so equal values give equal hashes and a consumer can still join on
//!   them, without learning them. An absent pointer is skipped.
//! - `rename {from, to}`: move a value; missing objects on the way to `to` are created. An
//!   absent `from` is skipped; a `to` that already exists, or whose parent is not an
//!   object, fails the delivery (nothing is silently overwritten).
//!
//! Operations run in order, each on the result of the previous one: a mask applies to
//! what is at its pointer when its turn comes. So that a mask cannot be side-stepped by
//! an earlier rename, a mask under the `from` of an earlier rename is refused at
//! configuration time.
//!
//! Envelope: `raw` sends the (transformed) payload; `standard` sends
//! `{"type", "id", "timestamp", "data"}` as the Standard Webhooks payload structure
//! recommends, `timestamp` being when the event occurred in RFC 3339 (UTC, milliseconds).
//!
//! [`Transform::compile`] checks a configuration once, at write time: pointers well formed,
//! the whole payload (`""`) never a target, at most [`MAX_OPS`] operations, renames that
//! neither collide nor move a value into itself. What it cannot know is the payload: at
//! delivery, a payload that is not JSON with any transformation other than the identity
//! (`raw`, no operations) fails with [`TransformError::NotJson`] (dead letter reason
//! `transform_error`); with the identity it passes through untouched. A payload that is
//! transformed is re-serialised as compact JSON with object keys sorted and numbers in
//! `serde_json`'s form (`1.50` becomes `1.5`, an integer beyond 64 bits becomes a float);
//! the identity and a `standard` envelope without operations keep the payload's bytes as
//! published.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::borrow::Cow;
use std::collections::HashSet;

type HmacSha256 = Hmac<Sha256>;

/// Most operations in one transformation.
pub const MAX_OPS: usize = 64;
/// Most pointers in one `include` or `exclude`.
pub const MAX_POINTERS_PER_OP: usize = 256;
/// Longest pointer, in bytes.
pub const MAX_POINTER_BYTES: usize = 1024;
/// Longest marker, in bytes.
pub const MAX_MARKER_BYTES: usize = 256;
/// What a `marker` mask writes when the configuration names no marker.
pub const DEFAULT_MARKER: &str = "[masked]";
/// Prefix of a hashed mask.
pub const HASH_PREFIX: &str = "hmac:";
/// Dead-letter reason of a delivery whose transformation failed.
pub const DEAD_LETTER_REASON: &str = "transform_error";

/// An endpoint's transformation, as the API takes it and the endpoints topic stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    #[serde(default)]
    pub envelope: Envelope,
    #[serde(default)]
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The payload as published (after the operations).
    #[default]
    Raw,
    /// `{"type", "id", "timestamp", "data"}`.
    Standard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    Include {
        pointers: Vec<String>,
    },
    Exclude {
        pointers: Vec<String>,
    },
    Mask {
        pointer: String,
        #[serde(default)]
        with: MaskWith,
        /// Only with `"with": "marker"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        marker: Option<String>,
        /// Only with `"with": "hash"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<HashEncoding>,
    },
    Rename {
        from: String,
        to: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskWith {
    #[default]
    Marker,
    Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashEncoding {
    #[default]
    Hex,
    Base64url,
}

/// A configuration refused at write time: `field` names it (`ops[2].pointer`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("transform.{field}: {problem}")]
pub struct TransformConfigError {
    pub field: String,
    pub problem: String,
}

fn config_error(field: impl Into<String>, problem: impl Into<String>) -> TransformConfigError {
    TransformConfigError { field: field.into(), problem: problem.into() }
}

/// Why a delivery's transformation failed (dead letter reason [`DEAD_LETTER_REASON`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("the payload is not JSON ({message}), and the endpoint transforms payloads; publish JSON or remove the endpoint's transformation")]
    NotJson { message: String },
    #[error("include {pointer:?}: the payload has an array or a value that is not an object on the way; include the whole array instead")]
    IncludeThroughArray { pointer: String },
    #[error("rename to {to:?}: the payload already has a value there")]
    RenameTargetExists { to: String },
    #[error("rename to {to:?}: a value on the way there is not an object")]
    RenameTargetParent { to: String },
    #[error("mask with hash: no masking key was given for this endpoint")]
    MissingKey,
    #[error("the event's time ({occurred_at_ms} ms) is outside the years 0 to 9999")]
    BadTimestamp { occurred_at_ms: i64 },
}

/// The per-endpoint key of hashed masks. Keep it stable: a new key changes every hash.
#[derive(Clone)]
pub struct MaskKey {
    mac: HmacSha256,
}

impl MaskKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    fn hash(&self, value: &Value, encoding: HashEncoding) -> String {
        let mut mac = self.mac.clone();
        match value {
            Value::String(s) => mac.update(s.as_bytes()),
            other => mac.update(other.to_string().as_bytes()),
        }
        let digest = mac.finalize().into_bytes();
        let encoded = match encoding {
            HashEncoding::Hex => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                digest.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).map(char::from).collect()
            }
            HashEncoding::Base64url => BASE64URL.encode(digest),
        };
        format!("{HASH_PREFIX}{encoded}")
    }
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

/// The event fields an envelope needs.
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub occurred_at_ms: i64,
}

/// A parsed JSON Pointer (never the whole document).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    fn parse(text: &str, field: &str) -> Result<Self, TransformConfigError> {
        if text.is_empty() {
            return Err(config_error(field, "\"\" is the whole payload, which no operation can target; name a member, e.g. \"/card/number\""));
        }
        if text.len() > MAX_POINTER_BYTES {
            return Err(config_error(field, format!("is {} bytes long; the limit is {MAX_POINTER_BYTES}", text.len())));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(config_error(field, format!("{text:?} is not a JSON Pointer: it must start with '/', e.g. \"/card/number\"")));
        };
        let tokens = rest.split('/').map(unescape).collect::<Option<Vec<_>>>().ok_or_else(|| {
            config_error(field, format!("{text:?}: '~' must be followed by 0 (for '~') or 1 (for '/')"))
        })?;
        Ok(Self { text: text.to_owned(), tokens })
    }

    /// Whether `self` is `other` or inside it.
    fn is_within(&self, other: &Pointer) -> bool {
        self.tokens.starts_with(&other.tokens)
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[derive(Debug, Clone)]
enum Masking {
    Marker(String),
    Hash(HashEncoding),
}

#[derive(Debug, Clone)]
enum Step {
    Include(Vec<Pointer>),
    Exclude(Vec<Pointer>),
    Mask { pointer: Pointer, masking: Masking },
    Rename { from: Pointer, to: Pointer },
}

/// A checked transformation, ready to apply to every delivery of its endpoint.
#[derive(Debug, Clone)]
pub struct Transform {
    envelope: Envelope,
    steps: Vec<Step>,
}

fn pointers(list: &[String], field: String) -> Result<Vec<Pointer>, TransformConfigError> {
    if list.is_empty() {
        return Err(config_error(field, "must name at least one pointer"));
    }
    if list.len() > MAX_POINTERS_PER_OP {
        return Err(config_error(field, format!("{} pointers; the limit is {MAX_POINTERS_PER_OP}", list.len())));
    }
    list.iter().enumerate().map(|(j, p)| Pointer::parse(p, &format!("{field}[{j}]"))).collect()
}

impl Transform {
    /// Checks a configuration. Its errors name the field and the fix (for a 422).
    pub fn compile(config: &TransformConfig) -> Result<Self, TransformConfigError> {
        if config.ops.len() > MAX_OPS {
            return Err(config_error("ops", format!("{} operations; the limit is {MAX_OPS}", config.ops.len())));
        }
        let mut steps = Vec::with_capacity(config.ops.len());
        let mut renamed_from: Vec<Pointer> = Vec::new();
        let mut rename_targets: HashSet<String> = HashSet::new();
        for (i, op) in config.ops.iter().enumerate() {
            let field = |name: &str| format!("ops[{i}].{name}");
            let step = match op {
                Op::Include { pointers: list } => Step::Include(pointers(list, field("pointers"))?),
                Op::Exclude { pointers: list } => Step::Exclude(pointers(list, field("pointers"))?),
                Op::Mask { pointer, with, marker, encoding } => {
                    let pointer = Pointer::parse(pointer, &field("pointer"))?;
                    if let Some(earlier) = renamed_from.iter().find(|from| pointer.is_within(from)) {
                        return Err(config_error(field("pointer"), format!(
                            "{:?} was moved away by an earlier rename of {:?}, so this mask would hide nothing; put the mask first, or mask the new location",
                            pointer.text, earlier.text
                        )));
                    }
                    let masking = match (with, marker, encoding) {
                        (MaskWith::Marker, _, Some(_)) => {
                            return Err(config_error(field("encoding"), "applies to \"with\": \"hash\" only"))
                        }
                        (MaskWith::Hash, Some(_), _) => {
                            return Err(config_error(field("marker"), "applies to \"with\": \"marker\" only"))
                        }
                        (MaskWith::Marker, Some(m), None) if m.len() > MAX_MARKER_BYTES => {
                            return Err(config_error(field("marker"), format!("is {} bytes long; the limit is {MAX_MARKER_BYTES}", m.len())))
                        }
                        (MaskWith::Marker, marker, None) => {
                            Masking::Marker(marker.clone().unwrap_or_else(|| DEFAULT_MARKER.to_owned()))
                        }
                        (MaskWith::Hash, None, encoding) => Masking::Hash(encoding.unwrap_or_default()),
                    };
                    Step::Mask { pointer, masking }
                }
                Op::Rename { from, to } => {
                    let from = Pointer::parse(from, &field("from"))?;
                    let to = Pointer::parse(to, &field("to"))?;
                    if to.is_within(&from) {
                        return Err(config_error(field("to"), format!("{:?} is {:?} itself or inside it; a value cannot move into itself", to.text, from.text)));
                    }
                    if from.is_within(&to) {
                        return Err(config_error(field("to"), format!("{:?} contains {:?}, so it always exists; rename to a new member", to.text, from.text)));
                    }
                    if !rename_targets.insert(to.text.clone()) {
                        return Err(config_error(field("to"), format!("{:?} is already the target of an earlier rename", to.text)));
                    }
                    renamed_from.push(from.clone());
                    Step::Rename { from, to }
                }
            };
            steps.push(step);
        }
        Ok(Self { envelope: config.envelope, steps })
    }

    /// True when deliveries carry the payload as published.
    pub fn is_identity(&self) -> bool {
        self.envelope == Envelope::Raw && self.steps.is_empty()
    }

    /// True when a [`MaskKey`] must be given to [`Transform::apply`].
    pub fn needs_key(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Mask { masking: Masking::Hash(_), .. }))
    }

    /// The body to sign and send. Borrows the payload when it is sent as published.
    pub fn apply<'p>(&self, event: &EventMeta<'_>, payload: &'p [u8], key: Option<&MaskKey>) -> Result<Cow<'p, [u8]>, TransformError> {
        if self.is_identity() {
            return Ok(Cow::Borrowed(payload));
        }
        if self.steps.is_empty() {
            // A standard envelope around the bytes as published: checked to be JSON, not re-encoded.
            serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| TransformError::NotJson { message: e.to_string() })?;
            let mut body = envelope_head(event)?.into_bytes();
            body.extend_from_slice(payload);
            body.push(b'}');
            return Ok(Cow::Owned(body));
        }
        let document: Value = serde_json::from_slice(payload).map_err(|e| TransformError::NotJson { message: e.to_string() })?;
        let document = self.apply_steps(document, key)?;
        let body = match self.envelope {
            Envelope::Raw => document.to_string().into_bytes(),
            Envelope::Standard => {
                let mut body = envelope_head(event)?.into_bytes();
                body.extend_from_slice(document.to_string().as_bytes());
                body.push(b'}');
                body
            }
        };
        Ok(Cow::Owned(body))
    }

    /// The operations alone, on a parsed payload (no envelope).
    pub fn apply_steps(&self, mut document: Value, key: Option<&MaskKey>) -> Result<Value, TransformError> {
        for step in &self.steps {
            match step {
                Step::Include(pointers) => document = include(&document, pointers)?,
                Step::Exclude(pointers) => {
                    for pointer in pointers {
                        remove(&mut document, &pointer.tokens);
                    }
                }
                Step::Mask { pointer, masking } => {
                    if let Some(target) = document.pointer_mut(&pointer.text) {
                        *target = match masking {
                            Masking::Marker(marker) => Value::String(marker.clone()),
                            Masking::Hash(encoding) => Value::String(key.ok_or(TransformError::MissingKey)?.hash(target, *encoding)),
                        };
                    }
                }
                Step::Rename { from, to } => {
                    if let Some(value) = remove(&mut document, &from.tokens) {
                        insert_new(&mut document, to, value)?;
                    }
                }
            }
        }
        Ok(document)
    }
}

/// The envelope up to `"data":`: `data` comes last so that the payload can follow as is.
fn envelope_head(event: &EventMeta<'_>) -> Result<String, TransformError> {
    let timestamp = rfc3339_millis(event.occurred_at_ms).ok_or(TransformError::BadTimestamp { occurred_at_ms: event.occurred_at_ms })?;
    Ok(format!(
        "{{\"id\":{},\"timestamp\":{},\"type\":{},\"data\":",
        Value::from(event.id),
        Value::from(timestamp),
        Value::from(event.event_type)
    ))
}

fn child_mut<'v>(value: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match value {
        Value::Object(members) => members.get_mut(token),
        Value::Array(items) => items.get_mut(array_index(token)?),
        _ => None,
    }
}

/// RFC 6901 array index: `0` or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let canonical = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
    canonical.then(|| token.parse().ok()).flatten()
}

/// Takes the value at `tokens` out of the document, if it is there.
fn remove(document: &mut Value, tokens: &[String]) -> Option<Value> {
    let (last, parents) = tokens.split_last()?;
    let mut parent = document;
    for token in parents {
        parent = child_mut(parent, token)?;
    }
    match parent {
        Value::Object(members) => members.remove(last),
        Value::Array(items) => {
            let index = array_index(last).filter(|i| *i < items.len())?;
            Some(items.remove(index))
        }
        _ => None,
    }
}

/// Puts `value` at `to`, creating missing objects on the way; never overwrites.
fn insert_new(document: &mut Value, to: &Pointer, value: Value) -> Result<(), TransformError> {
    let Some((last, parents)) = to.tokens.split_last() else {
        return Err(TransformError::RenameTargetExists { to: to.text.clone() });
    };
    let mut parent = document;
    for token in parents {
        let Value::Object(members) = parent else {
            return Err(TransformError::RenameTargetParent { to: to.text.clone() });
        };
        parent = members.entry(token.clone()).or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    let Value::Object(members) = parent else {
        return Err(TransformError::RenameTargetParent { to: to.text.clone() });
    };
    if members.contains_key(last) {
        return Err(TransformError::RenameTargetExists { to: to.text.clone() });
    }
    members.insert(last.clone(), value);
    Ok(())
}

fn include(document: &Value, pointers: &[Pointer]) -> Result<Value, TransformError> {
    let mut kept = Value::Object(serde_json::Map::new());
    for pointer in pointers {
        let through_array = || TransformError::IncludeThroughArray { pointer: pointer.text.clone() };
        let mut source = document;
        let mut found = true;
        for token in &pointer.tokens {
            match source {
                Value::Object(members) => match members.get(token) {
                    Some(next) => source = next,
                    None => {
                        found = false;
                        break;
                    }
                },
                Value::Array(_) => return Err(through_array()),
                // A scalar on the way: the member cannot exist.
                _ if std::ptr::eq(source, document) => return Err(through_array()),
                _ => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let Some((last, parents)) = pointer.tokens.split_last() else { continue };
        let mut target = &mut kept;
        for token in parents {
            let Value::Object(members) = target else { break };
            target = members.entry(token.clone()).or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
        // Every ancestor was an object in the source, so it is one here too.
        if let Value::Object(members) = target {
            members.insert(last.clone(), source.clone());
        }
    }
    Ok(kept)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time in ms since the Unix epoch (years 0 to 9999).
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    ))
}

#[cfg(test)]
mod tests;
