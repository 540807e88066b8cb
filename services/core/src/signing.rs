//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
//! `v1,<base64 HMAC-SHA256>` keyed with the bytes of a `whsec_<base64>` secret. Several
//! signatures (one per active secret, during a rotation) are joined by spaces.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";
/// Receivers reject timestamps further than this from their clock (the spec's default).
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with \"{SECRET_PREFIX}\"")]
    MissingPrefix,
    #[error("the part after \"{SECRET_PREFIX}\" is not valid base64")]
    NotBase64,
    #[error("decodes to {0} bytes; use {MIN_KEY_BYTES} to {MAX_KEY_BYTES}")]
    BadLength(usize),
}

/// A parsed signing secret with its HMAC key schedule computed once.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self::from_key_bytes(&key))
    }

    pub fn from_key_bytes(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64>` for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    fn verify_one(&self, msg_id: &str, timestamp: i64, body: &[u8], b64: &str) -> bool {
        let Ok(tag) = BASE64.decode(b64) else { return false };
        // `verify_slice` compares in constant time.
        self.mac(msg_id, timestamp, body).verify_slice(&tag).is_ok()
    }
}

/// Makes a new random-looking secret from caller-supplied entropy (kept out of here so this
/// module does no IO): `whsec_` + base64 of 32 bytes.
pub fn secret_from_bytes(key: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The `webhook-signature` header value: one `v1,` signature per key, space-separated.
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

/// Verifies a request as a receiver would: any `v1,` signature made with any of `keys`, and
/// a timestamp within `tolerance_secs` of `now_secs`.
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
    let candidates = signature_header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"));
    for candidate in candidates {
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
