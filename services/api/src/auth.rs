//! Bearer-token authentication with scopes. Tokens are configured as the hex SHA-256 of the
//! token, compared in constant time, and never logged (the token's name is).

use crate::problem::Problem;
use axum::http::{HeaderMap, StatusCode};
use hookline_core::config::TokenConfig;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Admin,
    /// Reads: GET routes.
    Read,
    /// Ingest: POST /v1/events.
    Publish,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::Publish => "publish",
        }
    }
}

struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<String>,
}

/// The configured tokens, or none at all (`hookline dev` without tokens: open, with a warning).
pub struct Auth {
    tokens: Vec<Token>,
    open: bool,
}

/// The hex SHA-256 of a token, as `api.tokens[].sha256` expects.
pub fn token_digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Self {
        let tokens = tokens
            .iter()
            .filter_map(|t| {
                let bytes = hex::decode(&t.sha256).ok()?;
                let digest: [u8; 32] = bytes.try_into().ok()?;
                Some(Token { name: t.name.clone(), digest, scopes: t.scopes.clone() })
            })
            .collect();
        Self { tokens, open: false }
    }

    /// No authentication at all: only for `hookline dev` on a laptop.
    pub fn open() -> Self {
        Self { tokens: Vec::new(), open: true }
    }

    /// Checks the `Authorization` header for a token with `scope` (or admin). 401 without a
    /// valid token, 403 with a valid token lacking the scope.
    pub fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Problem> {
        if self.open {
            return Ok(());
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <token>"))?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare against every token, so timing does not tell which one nearly matched.
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        let token = found.ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token is not valid"))?;
        if token.scopes.iter().any(|s| s == "admin" || s == scope.name()) {
            Ok(())
        } else {
            tracing::info!(token = %token.name, scope = scope.name(), "request refused: missing scope");
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token lacks the {:?} scope", scope.name()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(http::header::AUTHORIZATION, format!("Bearer {t}").parse().expect("header"));
        }
        h
    }

    #[test]
    fn scopes_and_statuses() {
        let auth = Auth::new(&[
            TokenConfig { name: "ops".into(), sha256: token_digest_hex("admin-token"), scopes: vec!["admin".into()] },
            TokenConfig { name: "ci".into(), sha256: token_digest_hex("pub-token"), scopes: vec!["publish".into()] },
        ]);
        assert_eq!(auth.check(&headers(Some("admin-token")), Scope::Read), Ok(()));
        assert_eq!(auth.check(&headers(Some("pub-token")), Scope::Publish), Ok(()));
        assert_eq!(auth.check(&headers(Some("pub-token")), Scope::Read).map_err(|p| p.status), Err(403));
        assert_eq!(auth.check(&headers(Some("nope")), Scope::Read).map_err(|p| p.status), Err(401));
        assert_eq!(auth.check(&headers(None), Scope::Read).map_err(|p| p.status), Err(401));
        assert_eq!(Auth::open().check(&headers(None), Scope::Admin), Ok(()));
    }
}

/// Extractors that authorize a request before its body is read, so an unauthenticated
/// caller gets 401, never a validation error.
macro_rules! scope_extractor {
    ($name:ident, $scope:expr) => {
        pub struct $name;

        impl axum::extract::FromRequestParts<std::sync::Arc<crate::AppState>> for $name {
            type Rejection = Problem;

            async fn from_request_parts(
                parts: &mut http::request::Parts,
                state: &std::sync::Arc<crate::AppState>,
            ) -> Result<Self, Self::Rejection> {
                state.auth.check(&parts.headers, $scope).map(|()| $name)
            }
        }
    };
}

scope_extractor!(Admin, Scope::Admin);
scope_extractor!(Read, Scope::Read);
scope_extractor!(Publish, Scope::Publish);
