//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`. Symmetric: the signature
//! is `v1,<base64 HMAC-SHA256>` keyed with the bytes of a `whsec_<base64>` secret.
//! Asymmetric: `v1a,<base64 ed25519 signature>` made with a `whsk_<base64>` secret key and
//! verified with its `whpk_<base64>` public key. Several signatures (one per active secret,
//! during a rotation) are joined by spaces.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";
/// An ed25519 secret key: the 32-byte seed, or the 64-byte seed and public key.
pub const ED25519_SECRET_PREFIX: &str = "whsk_";
/// An ed25519 public key (32 bytes): verifies, cannot sign.
pub const ED25519_PUBLIC_PREFIX: &str = "whpk_";
/// Receivers reject timestamps further than this from their clock (the spec's default).
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with \"{SECRET_PREFIX}\" (HMAC) or \"{ED25519_SECRET_PREFIX}\" (ed25519)")]
    MissingPrefix,
    #[error("the part after the prefix is not valid base64")]
    NotBase64,
    #[error("decodes to {0} bytes; use {MIN_KEY_BYTES} to {MAX_KEY_BYTES}")]
    BadLength(usize),
    #[error("an ed25519 secret key decodes to {0} bytes; it must be 32 (seed) or 64 (seed and public key)")]
    BadEd25519Length(usize),
    #[error("the public half of this ed25519 key pair does not belong to its seed")]
    MismatchedKeyPair,
    #[error("is not an ed25519 public key")]
    BadPublicKey,
}

#[derive(Clone)]
enum Key {
    Hmac(HmacSha256),
    Ed25519(Box<ed25519_dalek::SigningKey>),
    /// Verifies only.
    Ed25519Public(ed25519_dalek::VerifyingKey),
}

/// A parsed signing secret (or, for receivers, an ed25519 public key), with its key
/// schedule computed once.
#[derive(Clone)]
pub struct SigningKey {
    key: Key,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn decode(encoded: &str) -> Result<Vec<u8>, SecretError> {
    BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)
}

impl SigningKey {
    /// Parses a secret that can sign: `whsec_<base64>` or `whsk_<base64>`.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        if let Some(encoded) = secret.strip_prefix(ED25519_SECRET_PREFIX) {
            let bytes = decode(encoded)?;
            let seed: [u8; 32] = bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or(SecretError::BadEd25519Length(bytes.len()))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            match bytes.len() {
                32 => {}
                64 if bytes[32..] == key.verifying_key().to_bytes() => {}
                64 => return Err(SecretError::MismatchedKeyPair),
                n => return Err(SecretError::BadEd25519Length(n)),
            }
            return Ok(Self { key: Key::Ed25519(Box::new(key)) });
        }
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = decode(encoded)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self::from_key_bytes(&key))
    }

    /// Parses what a receiver verifies with: a secret, or a `whpk_<base64>` public key.
    pub fn for_verifying(secret: &str) -> Result<Self, SecretError> {
        let Some(encoded) = secret.strip_prefix(ED25519_PUBLIC_PREFIX) else {
            return Self::from_secret(secret);
        };
        let bytes: [u8; 32] = decode(encoded)?.try_into().map_err(|_| SecretError::BadPublicKey)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| SecretError::BadPublicKey)?;
        Ok(Self { key: Key::Ed25519Public(key) })
    }

    pub fn from_key_bytes(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { key: Key::Hmac(mac) }
    }

    /// `whpk_<base64>` for an ed25519 key; `None` for HMAC (its secret is shared).
    pub fn public_key(&self) -> Option<String> {
        let public = match &self.key {
            Key::Hmac(_) => return None,
            Key::Ed25519(k) => k.verifying_key(),
            Key::Ed25519Public(k) => *k,
        };
        Some(format!("{ED25519_PUBLIC_PREFIX}{}", BASE64.encode(public.to_bytes())))
    }

    fn mac(mac: &HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    fn content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let ts = timestamp.to_string();
        let mut content = Vec::with_capacity(msg_id.len() + ts.len() + body.len() + 2);
        content.extend_from_slice(msg_id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(ts.as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        content
    }

    /// `v1,<base64>` (HMAC) or `v1a,<base64>` (ed25519) for one message; empty for a
    /// public key, which cannot sign (the registry never gives the sender one).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match &self.key {
            Key::Hmac(mac) => {
                let tag = Self::mac(mac, msg_id, timestamp, body).finalize().into_bytes();
                format!("v1,{}", BASE64.encode(tag))
            }
            Key::Ed25519(key) => {
                let signature = key.sign(&Self::content(msg_id, timestamp, body));
                format!("v1a,{}", BASE64.encode(signature.to_bytes()))
            }
            Key::Ed25519Public(_) => String::new(),
        }
    }

    /// Whether this key verifies one signature of the header (`v1,...` or `v1a,...`).
    fn verify_one(&self, msg_id: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
        let (public, b64) = match (&self.key, signature.split_once(',')) {
            (Key::Hmac(mac), Some(("v1", b64))) => {
                let Ok(tag) = BASE64.decode(b64) else { return false };
                // `verify_slice` compares in constant time.
                return Self::mac(mac, msg_id, timestamp, body).verify_slice(&tag).is_ok();
            }
            (Key::Ed25519(k), Some(("v1a", b64))) => (k.verifying_key(), b64),
            (Key::Ed25519Public(k), Some(("v1a", b64))) => (*k, b64),
            _ => return false,
        };
        let Ok(bytes) = BASE64.decode(b64) else { return false };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else { return false };
        public.verify(&Self::content(msg_id, timestamp, body), &signature).is_ok()
    }
}

/// Makes a new random-looking secret from caller-supplied entropy (kept out of here so this
/// module does no IO): `whsec_` + base64 of 32 bytes.
pub fn secret_from_bytes(key: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// An ed25519 secret key from a caller-supplied 32-byte seed: `whsk_` + base64 of the seed
/// and the public key (64 bytes, the usual key-pair encoding).
pub fn ed25519_secret_from_seed(seed: &[u8; 32]) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    format!("{ED25519_SECRET_PREFIX}{}", BASE64.encode(key.to_keypair_bytes()))
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a SigningKey>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for key in keys {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&key.sign(msg_id, timestamp, body));
    }
    header
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp {0} is not an integer")]
    BadTimestamp(String),
    #[error("webhook-timestamp is {0}s away from now; the tolerance is {1}s")]
    OutsideTolerance(i64, i64),
    #[error("no signature in webhook-signature matches any secret")]
    NoMatch,
}

/// Verifies a request as a receiver would: any `v1,` or `v1a,` signature made with any of
/// `keys`, and a timestamp within `tolerance_secs` of `now_secs`.
pub fn verify(
    keys: &[SigningKey],
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    let skew = (now_secs - ts).abs();
    if skew > tolerance_secs {
        return Err(VerifyError::OutsideTolerance(skew, tolerance_secs));
    }
    for candidate in signature_header.split_whitespace() {
        if keys.iter().any(|k| k.verify_one(msg_id, ts, body, candidate)) {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Known-answer vector from the Standard Webhooks reference test suite.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn known_answer_vector() {
        let key = SigningKey::from_secret(SECRET).expect("valid secret");
        assert_eq!(key.sign(MSG_ID, TIMESTAMP, BODY), EXPECTED);
    }

    #[test]
    fn standardwebhooks_crate_verifies_our_signatures() {
        let key = SigningKey::from_secret(SECRET).expect("valid secret");
        let other = SigningKey::from_key_bytes(&[7u8; 32]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after epoch")
            .as_secs() as i64;
        let header = signature_header([&other, &key], MSG_ID, now, BODY);
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", MSG_ID.parse().expect("header"));
        headers.insert("webhook-timestamp", now.to_string().parse().expect("header"));
        headers.insert("webhook-signature", header.parse().expect("header"));
        let verifier = standardwebhooks::Webhook::new(SECRET).expect("secret");
        verifier.verify(BODY, &headers).expect("standardwebhooks accepts the signature");

        let tampered = br#"{"test": 2432232315}"#;
        assert!(verifier.verify(tampered, &headers).is_err());
    }

    #[test]
    fn verify_accepts_any_matching_key_and_rejects_the_rest() {
        let old = SigningKey::from_key_bytes(&[1u8; 32]);
        let new = SigningKey::from_key_bytes(&[2u8; 32]);
        let stranger = SigningKey::from_key_bytes(&[3u8; 32]);
        let header = signature_header([&old, &new], "evt_1", 1000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for key in [&old, &new] {
            assert_eq!(verify(std::slice::from_ref(key), "evt_1", "1000", &header, b"{}", 1000, 300), Ok(()));
        }
        assert_eq!(
            verify(&[stranger], "evt_1", "1000", &header, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(std::slice::from_ref(&old), "evt_1", "1000", &header, b"{}", 1301, 300),
            Err(VerifyError::OutsideTolerance(301, 300))
        );
        assert!(matches!(
            verify(&[old], "evt_1", "soon", &header, b"{}", 1000, 300),
            Err(VerifyError::BadTimestamp(_))
        ));
    }

    #[test]
    fn secret_parsing_errors_are_specific() {
        assert_eq!(SigningKey::from_secret("MfKQ9r8").map(|_| ()), Err(SecretError::MissingPrefix));
        assert_eq!(SigningKey::from_secret("whsec_!!!").map(|_| ()), Err(SecretError::NotBase64));
        assert_eq!(SigningKey::from_secret("whsec_AAAA").map(|_| ()), Err(SecretError::BadLength(3)));
        let made = secret_from_bytes(&[9u8; 32]);
        assert!(SigningKey::from_secret(&made).is_ok());
    }

    // RFC 8032, section 7.1, test 1: the seed and the public key it derives.
    const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn ed25519_keys_follow_rfc_8032_and_the_whsk_whpk_formats() {
        let seed: [u8; 32] = unhex(RFC_SEED).try_into().expect("32 bytes");
        let secret = ed25519_secret_from_seed(&seed);
        assert!(secret.starts_with("whsk_"));
        let key = SigningKey::from_secret(&secret).expect("64-byte key pair");
        let public = format!("whpk_{}", BASE64.encode(unhex(RFC_PUBLIC)));
        assert_eq!(key.public_key(), Some(public.clone()));
        // The 32-byte seed alone is the same key.
        let seed_only = SigningKey::from_secret(&format!("whsk_{}", BASE64.encode(seed))).expect("seed");
        assert_eq!(seed_only.public_key(), Some(public));
        assert_eq!(SigningKey::from_secret(SECRET).expect("hmac").public_key(), None);
    }

    #[test]
    fn ed25519_signatures_verify_with_the_public_key_only_for_the_signed_content() {
        let signer = SigningKey::from_secret(&ed25519_secret_from_seed(&[5u8; 32])).expect("key");
        let public = SigningKey::for_verifying(&signer.public_key().expect("public")).expect("whpk_");
        let hmac = SigningKey::from_key_bytes(&[1u8; 32]);
        let header = signature_header([&hmac, &signer], "evt_1", 1000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert!(parts[0].starts_with("v1,") && parts[1].starts_with("v1a,"), "{header}");
        assert_eq!(BASE64.decode(&parts[1][4..]).expect("base64").len(), 64);
        for key in [&public, &signer, &hmac] {
            assert_eq!(verify(std::slice::from_ref(key), "evt_1", "1000", &header, b"{}", 1000, 300), Ok(()));
        }
        let only_v1a = signer.sign("evt_1", 1000, b"{}");
        assert_eq!(verify(std::slice::from_ref(&hmac), "evt_1", "1000", &only_v1a, b"{}", 1000, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify(std::slice::from_ref(&public), "evt_1", "1000", &only_v1a, b"{!", 1000, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify(std::slice::from_ref(&public), "evt_2", "1000", &only_v1a, b"{}", 1000, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify(std::slice::from_ref(&public), "evt_1", "1001", &only_v1a, b"{}", 1000, 300), Err(VerifyError::NoMatch));
        let stranger = SigningKey::from_secret(&ed25519_secret_from_seed(&[6u8; 32])).expect("key");
        assert_eq!(verify(&[stranger], "evt_1", "1000", &only_v1a, b"{}", 1000, 300), Err(VerifyError::NoMatch));
        assert_eq!(public.sign("evt_1", 1000, b"{}"), "", "a public key cannot sign");
    }

    #[test]
    fn ed25519_key_parsing_errors_are_specific() {
        assert_eq!(SigningKey::from_secret("whsk_AAAA").map(|_| ()), Err(SecretError::BadEd25519Length(3)));
        let mut pair = BASE64.decode(&ed25519_secret_from_seed(&[5u8; 32])[5..]).expect("b64");
        pair[40] ^= 1;
        assert_eq!(SigningKey::from_secret(&format!("whsk_{}", BASE64.encode(&pair))).map(|_| ()), Err(SecretError::MismatchedKeyPair));
        assert_eq!(SigningKey::from_secret("whpk_AAAA").map(|_| ()), Err(SecretError::MissingPrefix), "a public key cannot sign");
        assert_eq!(SigningKey::for_verifying("whpk_AAAA").map(|_| ()), Err(SecretError::BadPublicKey));
    }

    proptest! {
        #[test]
        fn sign_then_verify_roundtrips(
            key in prop::array::uniform32(any::<u8>()),
            id in "[a-zA-Z0-9_]{1,40}",
            ts in 0i64..4_000_000_000,
            body in prop::collection::vec(any::<u8>(), 0..512),
            flip in any::<prop::sample::Index>(),
        ) {
            let k = SigningKey::from_key_bytes(&key);
            let header = k.sign(&id, ts, &body);
            let ts_text = ts.to_string();
            prop_assert_eq!(verify(std::slice::from_ref(&k), &id, &ts_text, &header, &body, ts, 300), Ok(()));
            if !body.is_empty() {
                let mut bad = body.clone();
                let i = flip.index(bad.len());
                bad[i] ^= 0x01;
                prop_assert_eq!(verify(&[k], &id, &ts_text, &header, &bad, ts, 300), Err(VerifyError::NoMatch));
            }
        }
    }
}
