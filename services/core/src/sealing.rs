//! Secrets sealed at rest: authenticated encryption of the secret fields of state records
//! (endpoint signing secrets today; mTLS keys or OAuth2 client secrets would use the same
//! sealing), so that reading a topic is not enough to forge webhooks.
//!
//! A sealed value is text, `hlenc:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`, so it
//! fits the string field that held the clear value and a reader tells the two apart by
//! its prefix. The cipher is XChaCha20-Poly1305: its 24-byte nonces can be drawn at
//! random for every seal without a counter to keep. The key id in every value lets a
//! [`KeyRing`] hold the current key (which seals) and older ones (which still open), so a
//! key is rotated without downtime: add a key as current, reseal, drop the old key.
//!
//! The associated data is the value's header and a `context` naming where the value
//! belongs (record and field, e.g. `hookline.v1.Endpoint/ep_1/secrets`): a sealed value
//! copied onto another record, or into another field, does not open.
//!
//! This module draws no randomness: [`KeyRing::seal`] takes the nonce, and the caller
//! passes fresh random bytes each time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::BTreeMap;

/// What every sealed value starts with (a clear value never does).
pub const SEALED_PREFIX: &str = "hlenc:";
/// The format this module writes: `hlenc:v1:`.
const FORMAT: &str = "v1";
/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce; pass fresh random bytes to every [`KeyRing::seal`].
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;

/// Why a sealed value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("is not a sealed value (it does not start with \"{SEALED_PREFIX}\")")]
    NotSealed,
    #[error("is sealed in format {0:?}; this version reads only \"{FORMAT}\"")]
    UnknownFormat(String),
    #[error("is a malformed sealed value: {0}")]
    Malformed(&'static str),
    #[error("is sealed with key {key_id:?}, which is not configured")]
    UnknownKey { key_id: String },
    #[error(
        "does not open with key {key_id:?}: the configured key {key_id:?} is not the one that sealed it, \
         or the value was altered or copied from another record"
    )]
    DoesNotOpen { key_id: String },
    #[error("opens to bytes that are not UTF-8")]
    NotUtf8,
}

impl SealError {
    /// The key id named by a value that was well formed but did not open here: the
    /// process lacks that key (or has other bytes under its id).
    pub fn missing_key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key_id } | Self::DoesNotOpen { key_id } => Some(key_id),
            _ => None,
        }
    }
}

/// A key ring that cannot be built, naming the key (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id {0:?} must be 1-{MAX_KEY_ID_LEN} chars of lowercase letters, digits, '_' or '-'")]
    BadId(String),
    #[error("key {id:?} is not valid base64")]
    NotBase64 { id: String },
    #[error("key {id:?} decodes to {len} bytes; a key is {KEY_LEN} random bytes (`hookline secrets new-key` makes one)")]
    BadLength { id: String, len: usize },
    #[error("key {0:?} is given twice with different bytes")]
    Conflicting(String),
    #[error("the current key {0:?} is not one of the configured keys")]
    CurrentMissing(String),
    #[error("line {0}: expected `<key id>=<base64 key>`")]
    BadLine(usize),
}

/// Whether `value` is sealed (as opposed to a clear value).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// The id of the key that sealed `value`, if it is a sealed value of a known format.
pub fn key_id(value: &str) -> Option<&str> {
    split(value).ok().map(|(id, _)| id)
}

/// `hlenc:v1:<id>:<body>` into the key id and the base64 body.
fn split(value: &str) -> Result<(&str, &str), SealError> {
    let rest = value.strip_prefix(SEALED_PREFIX).ok_or(SealError::NotSealed)?;
    let (format, rest) = rest.split_once(':').ok_or(SealError::Malformed("no format"))?;
    if format != FORMAT {
        return Err(SealError::UnknownFormat(format.to_owned()));
    }
    let (id, body) = rest.split_once(':').ok_or(SealError::Malformed("no key id"))?;
    if !is_key_id(id) {
        return Err(SealError::Malformed("bad key id"));
    }
    Ok((id, body))
}

/// What a key id may be: it is written into every sealed value, used as a TOML key and, in
/// `HOOKLINE_SECRETS__KEYS__<ID>`, lowercased by the environment loader.
pub fn is_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks one key as configured (`id`, base64 text) and returns its bytes.
pub fn parse_key(id: &str, base64_key: &str) -> Result<[u8; KEY_LEN], KeyError> {
    if !is_key_id(id) {
        return Err(KeyError::BadId(id.to_owned()));
    }
    let bytes = BASE64.decode(base64_key.trim()).map_err(|_| KeyError::NotBase64 { id: id.to_owned() })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::BadLength { id: id.to_owned(), len })
}

/// The text of a key: what `hookline secrets new-key` prints for `bytes`.
pub fn key_text(bytes: &[u8; KEY_LEN]) -> String {
    BASE64.encode(bytes)
}

/// Reads a key file: one `<key id>=<base64 key>` per line; blank lines and lines starting
/// with `#` are skipped (a Kubernetes Secret mounted as a file).
pub fn parse_key_file(text: &str) -> Result<Vec<(String, String)>, KeyError> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            let (id, key) = line.split_once('=').ok_or(KeyError::BadLine(n))?;
            Ok((id.trim().to_owned(), key.trim().to_owned()))
        })
        .collect()
}

/// The keys of one process: the current one seals, every one opens.
#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, ([u8; KEY_LEN], XChaCha20Poly1305)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("current", &self.current).field("ids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeyRing {
    /// A ring of `keys` (id, base64 text) sealing with `current`. The same id may come
    /// twice (inline and from a file) only with the same bytes.
    pub fn new<I, S>(current: &str, keys: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = (S, S)>,
        S: AsRef<str>,
    {
        let mut ring = BTreeMap::new();
        for (id, text) in keys {
            let (id, bytes) = (id.as_ref(), parse_key(id.as_ref(), text.as_ref())?);
            match ring.get(id) {
                Some((known, _)) if *known != bytes => return Err(KeyError::Conflicting(id.to_owned())),
                Some(_) => {}
                None => {
                    let cipher = XChaCha20Poly1305::new(&bytes.into());
                    ring.insert(id.to_owned(), (bytes, cipher));
                }
            }
        }
        if !ring.contains_key(current) {
            return Err(KeyError::CurrentMissing(current.to_owned()));
        }
        Ok(Self { current: current.to_owned(), keys: ring })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Every key id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `plaintext` for `context` (where the value belongs) with the current key.
    /// `nonce` must be fresh random bytes: a nonce used twice with one key exposes both
    /// plaintexts.
    pub fn seal(&self, plaintext: &str, context: &str, nonce: [u8; NONCE_LEN]) -> String {
        let (_, cipher) = &self.keys[&self.current];
        let header = header(&self.current);
        let aad = associated_data(&header, context);
        let payload = Payload { msg: plaintext.as_bytes(), aad: aad.as_bytes() };
        // Encryption fails only past the cipher's length limit (256 GiB), far beyond a field.
        let sealed = cipher.encrypt(&XNonce::from(nonce), payload).unwrap_or_else(|_| unreachable!());
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!("{header}{}", BASE64.encode(body))
    }

    /// Opens a value sealed for `context` with any key of the ring.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let (key_id, body) = split(sealed)?;
        let body = BASE64.decode(body).map_err(|_| SealError::Malformed("body is not base64"))?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        let (_, cipher) = self.keys.get(key_id).ok_or_else(|| SealError::UnknownKey { key_id: key_id.to_owned() })?;
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let aad = associated_data(&header(key_id), context);
        let clear = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
            .map_err(|_| SealError::DoesNotOpen { key_id: key_id.to_owned() })?;
        String::from_utf8(clear).map_err(|_| SealError::NotUtf8)
    }

    /// Whether `value` should be sealed again: it is clear, or sealed with another key
    /// than the current one.
    pub fn needs_reseal(&self, value: &str) -> bool {
        key_id(value) != Some(self.current.as_str())
    }
}

/// Opens `value` if it is sealed (with `ring`; none configured: a sealed value cannot be
/// opened) and returns a clear value as it is.
pub fn open_if_sealed(ring: Option<&KeyRing>, value: &str, context: &str) -> Result<String, SealError> {
    if !is_sealed(value) {
        return Ok(value.to_owned());
    }
    match ring {
        Some(ring) => ring.open(value, context),
        None => {
            let (key_id, _) = split(value)?;
            Err(SealError::UnknownKey { key_id: key_id.to_owned() })
        }
    }
}

fn header(key_id: &str) -> String {
    format!("{SEALED_PREFIX}{FORMAT}:{key_id}:")
}

/// The header (so format and key id cannot be swapped) and where the value belongs.
fn associated_data(header: &str, context: &str) -> String {
    format!("{header}{context}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    const CONTEXT: &str = "hookline.v1.Endpoint/ep_1/secrets";

    fn ring(current: &str) -> KeyRing {
        KeyRing::new(current, [("k1", K1), ("k2", K2)]).expect("valid ring")
    }

    #[test]
    fn a_sealed_value_names_its_key_and_opens_to_the_plaintext() {
        let r = ring("k1");
        let sealed = r.seal("whsec_abc", CONTEXT, [7; NONCE_LEN]);
        assert!(sealed.starts_with("hlenc:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("whsec_abc"));
        assert!(is_sealed(&sealed) && !is_sealed("whsec_abc"));
        assert_eq!(key_id(&sealed), Some("k1"));
        assert_eq!(r.open(&sealed, CONTEXT).as_deref(), Ok("whsec_abc"));
    }

    #[test]
    fn fresh_nonces_make_different_values_of_one_plaintext() {
        let r = ring("k1");
        assert_ne!(r.seal("s", CONTEXT, [1; NONCE_LEN]), r.seal("s", CONTEXT, [2; NONCE_LEN]));
    }

    #[test]
    fn an_old_key_still_opens_after_rotation_and_asks_for_a_reseal() {
        let sealed = ring("k1").seal("whsec_old", CONTEXT, [3; NONCE_LEN]);
        let rotated = ring("k2");
        assert_eq!(rotated.open(&sealed, CONTEXT).as_deref(), Ok("whsec_old"));
        assert!(rotated.needs_reseal(&sealed));
        assert!(rotated.needs_reseal("whsec_clear"));
        assert!(!rotated.needs_reseal(&rotated.seal("x", CONTEXT, [4; NONCE_LEN])));
    }

    #[test]
    fn a_value_copied_to_another_record_does_not_open() {
        let r = ring("k1");
        let sealed = r.seal("whsec_abc", CONTEXT, [5; NONCE_LEN]);
        assert_eq!(
            r.open(&sealed, "hookline.v1.Endpoint/ep_2/secrets"),
            Err(SealError::DoesNotOpen { key_id: "k1".into() })
        );
    }

    #[test]
    fn a_changed_key_id_or_body_does_not_open() {
        let r = ring("k1");
        let sealed = r.seal("whsec_abc", CONTEXT, [6; NONCE_LEN]);
        // Same body, other key id: the header is authenticated.
        let relabelled = sealed.replacen(":k1:", ":k2:", 1);
        assert_eq!(r.open(&relabelled, CONTEXT), Err(SealError::DoesNotOpen { key_id: "k2".into() }));
        let mut body = BASE64.decode(sealed.trim_start_matches("hlenc:v1:k1:")).expect("base64");
        let last = body.len() - 1;
        body[last] ^= 1;
        let flipped = format!("hlenc:v1:k1:{}", BASE64.encode(body));
        assert_eq!(r.open(&flipped, CONTEXT), Err(SealError::DoesNotOpen { key_id: "k1".into() }));
    }

    #[test]
    fn a_key_not_in_the_ring_is_named() {
        let sealed = ring("k2").seal("whsec_abc", CONTEXT, [8; NONCE_LEN]);
        let only_k1 = KeyRing::new("k1", [("k1", K1)]).expect("ring");
        let error = only_k1.open(&sealed, CONTEXT).expect_err("k2 missing");
        assert_eq!(error, SealError::UnknownKey { key_id: "k2".into() });
        assert_eq!(error.missing_key(), Some("k2"));
        assert_eq!(error.to_string(), "is sealed with key \"k2\", which is not configured");
        assert_eq!(open_if_sealed(None, &sealed, CONTEXT), Err(SealError::UnknownKey { key_id: "k2".into() }));
        assert_eq!(open_if_sealed(None, "whsec_clear", CONTEXT).as_deref(), Ok("whsec_clear"));
    }

    #[test]
    fn malformed_values_are_refused_without_a_key_to_blame() {
        let r = ring("k1");
        for (value, error) in [
            ("whsec_abc", SealError::NotSealed),
            ("hlenc:v9:k1:AAAA", SealError::UnknownFormat("v9".into())),
            ("hlenc:v1", SealError::Malformed("no format")),
            ("hlenc:v1:k1", SealError::Malformed("no key id")),
            ("hlenc:v1:K 1:AAAA", SealError::Malformed("bad key id")),
            ("hlenc:v1:k1:!!!", SealError::Malformed("body is not base64")),
            ("hlenc:v1:k1:AAAA", SealError::Malformed("too short")),
        ] {
            let got = r.open(value, CONTEXT).expect_err(value);
            assert_eq!(got, error, "{value}");
            assert_eq!(got.missing_key(), None);
        }
    }

    #[test]
    fn bad_keys_are_named_without_their_bytes() {
        assert_eq!(KeyRing::new("k1", [("K1", K1)]).err(), Some(KeyError::BadId("K1".into())));
        assert_eq!(KeyRing::new("k1", [("k1", "not base64!")]).err(), Some(KeyError::NotBase64 { id: "k1".into() }));
        let short = KeyRing::new("k1", [("k1", "AAAA")]).expect_err("3 bytes");
        assert_eq!(short, KeyError::BadLength { id: "k1".into(), len: 3 });
        assert!(short.to_string().contains("32 random bytes"));
        assert_eq!(KeyRing::new("k3", [("k1", K1)]).err(), Some(KeyError::CurrentMissing("k3".into())));
        assert_eq!(KeyRing::new("k1", [("k1", K1), ("k1", K2)]).err(), Some(KeyError::Conflicting("k1".into())));
        assert!(KeyRing::new("k1", [("k1", K1), ("k1", K1)]).is_ok(), "the same key twice is one key");
        let debug = format!("{:?}", ring("k1"));
        assert!(!debug.contains(K1) && debug.contains("k2"), "{debug}");
    }

    #[test]
    fn key_files_are_lines_of_id_and_key() {
        let text = format!("# rotated 2025-01\n\nk1 = {K1}\nk2={K2}\n");
        let keys = parse_key_file(&text).expect("valid");
        assert_eq!(keys, [("k1".to_owned(), K1.to_owned()), ("k2".to_owned(), K2.to_owned())]);
        assert!(KeyRing::new("k2", keys).is_ok());
        assert_eq!(parse_key_file("k1\n"), Err(KeyError::BadLine(1)));
        assert_eq!(key_text(&[1; KEY_LEN]), K1);
    }

    #[test]
    fn the_secrets_section_is_checked_by_field() {
        use crate::config::Config;
        let mut c = Config::default();
        assert!(!c.secrets.is_configured(), "no key by default: clear, as before");
        c.secrets.current_key = "k2".into();
        c.secrets.keys.insert("k1".into(), K1.into());
        c.secrets.keys.insert("bad".into(), "AAAA".into());
        let errors = c.validate().expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "secrets.current_key: \"k2\" is not one of secrets.keys (and no secrets.keys_file is set)",
                "secrets.keys.bad: key \"bad\" decodes to 3 bytes; a key is 32 random bytes (`hookline secrets new-key` makes one)",
            ]
        );
        c.secrets.keys.remove("bad");
        c.secrets.keys_file = "/etc/hookline/keys/keys".into();
        assert_eq!(c.validate(), Ok(()), "the current key may come from the file");
        c.secrets.current_key = String::new();
        assert_eq!(c.validate().expect_err("no current key")[0].field, "secrets.current_key");
        assert!(!format!("{:?}", c.secrets).contains(K1), "Debug never shows a key");
    }

    proptest! {
        #[test]
        fn every_plaintext_round_trips_and_only_for_its_context(
            plaintext in ".{0,200}",
            nonce in proptest::array::uniform24(any::<u8>()),
            id in "[a-z0-9_-]{1,16}",
            other in "[a-z]{1,8}",
        ) {
            let r = KeyRing::new(&id, [(id.as_str(), K1)]).expect("ring");
            let sealed = r.seal(&plaintext, CONTEXT, nonce);
            prop_assert!(is_sealed(&sealed));
            prop_assert_eq!(key_id(&sealed), Some(id.as_str()));
            prop_assert_eq!(r.open(&sealed, CONTEXT), Ok(plaintext.clone()));
            let elsewhere = format!("{CONTEXT}/{other}");
            prop_assert_eq!(r.open(&sealed, &elsewhere), Err(SealError::DoesNotOpen { key_id: id.clone() }));
        }
    }
}
