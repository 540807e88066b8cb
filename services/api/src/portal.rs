//! Consumer-portal sessions: short-lived, signed, tenant-scoped bearer tokens that an admin
//! makes (`POST /v1/portal/sessions`) and hands to a tenant as a portal URL.
//!
//! A session token is `hlps_<claims>.<mac>`: the claims (tenant, permissions, expiry, id) as
//! base64url JSON, and their HMAC-SHA256 under `api.portal_session_key`, both base64url. The
//! server keeps no session state: any API replica with the same key checks a token, and a
//! token cannot outlive its `expires_at`. Tokens cannot be revoked one by one before they
//! expire; changing the key revokes them all. Pure: no IO, the time is passed in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "hlps_";

/// What a portal session may do, besides seeing its tenant's data (`view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the tenant's endpoints, events, attempts and dead letters.
    View,
    /// Create, edit, enable, disable and delete the tenant's endpoints; send test events.
    ManageEndpoints,
    /// Reveal a signing secret.
    ViewSecrets,
    /// Rotate a signing secret.
    RotateSecrets,
    /// Replay the tenant's dead letters.
    Replay,
}

/// The claims of a valid session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "sid")]
    pub id: String,
    #[serde(rename = "ten")]
    pub tenant: String,
    #[serde(rename = "per")]
    pub permissions: Vec<Permission>,
    /// Expiry, ms since the epoch.
    #[serde(rename = "exp")]
    pub expires_at_ms: i64,
}

impl Session {
    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("not a portal session token")]
    Malformed,
    #[error("the portal session's signature is not valid")]
    BadSignature,
    #[error("the portal session has expired")]
    Expired,
}

/// The key sessions are signed with.
pub struct SessionKey(Vec<u8>);

impl SessionKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// `api.portal_session_key`, or a random key when it is empty (sessions then end with
    /// the process, and work only on the replica that made them: said once, at start).
    pub fn from_config(api: &hookline_core::config::ApiConfig) -> Self {
        if api.portal_session_key.is_empty() {
            tracing::info!("api.portal_session_key is not set: portal sessions use a random key and end with this process");
            Self::new(rand::random::<[u8; 32]>().to_vec())
        } else {
            Self::new(api.portal_session_key.as_bytes().to_vec())
        }
    }

    fn mac(&self, claims: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(claims);
        mac
    }

    /// The token of `session`.
    pub fn issue(&self, session: &Session) -> String {
        let claims = serde_json::to_vec(session).expect("a session serializes");
        let tag = self.mac(&claims).finalize().into_bytes();
        format!("{PREFIX}{}.{}", B64.encode(&claims), B64.encode(tag))
    }

    /// Whether `token` looks like a portal session (so that the caller reports its errors,
    /// rather than "unknown token").
    pub fn is_session(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// The session of `token` if its signature holds (checked in constant time) and it has
    /// not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Session, SessionError> {
        let body = token.strip_prefix(PREFIX).ok_or(SessionError::Malformed)?;
        let (claims, tag) = body.split_once('.').ok_or(SessionError::Malformed)?;
        let claims = B64.decode(claims).map_err(|_| SessionError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| SessionError::Malformed)?;
        self.mac(&claims).verify_slice(&tag).map_err(|_| SessionError::BadSignature)?;
        let session: Session = serde_json::from_slice(&claims).map_err(|_| SessionError::Malformed)?;
        if now_ms >= session.expires_at_ms {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session() -> Session {
        Session { id: "s1".into(), tenant: "acme".into(), permissions: vec![Permission::View], expires_at_ms: 1_000 }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let key = SessionKey::new(b"k".to_vec());
        let token = key.issue(&session());
        assert!(SessionKey::is_session(&token));
        assert_eq!(key.verify(&token, 999), Ok(session()));
        assert_eq!(key.verify(&token, 1_000), Err(SessionError::Expired));
    }

    #[test]
    fn another_key_or_edited_claims_are_refused() {
        let key = SessionKey::new(b"k".to_vec());
        let token = key.issue(&session());
        assert_eq!(SessionKey::new(b"other".to_vec()).verify(&token, 0), Err(SessionError::BadSignature));
        // A tenant swapped in the claims, the tag kept.
        let (_, tag) = token.split_once('.').expect("two parts");
        let forged = Session { tenant: "globex".into(), ..session() };
        let forged_claims = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(key.verify(&format!("hlps_{forged_claims}.{tag}"), 0), Err(SessionError::BadSignature));
        assert_eq!(key.verify("hlps_nodot", 0), Err(SessionError::Malformed));
        assert_eq!(key.verify("Bearer x", 0), Err(SessionError::Malformed));
    }

    proptest! {
        /// Whatever a caller sends, verifying never panics, and nothing but an issued token passes.
        #[test]
        fn arbitrary_tokens_never_pass(text in "hlps_[A-Za-z0-9_.-]{0,120}") {
            let key = SessionKey::new(b"k".to_vec());
            prop_assert!(key.verify(&text, 0).is_err());
        }
    }
}
