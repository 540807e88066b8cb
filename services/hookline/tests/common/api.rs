//! The management API called in-process (no socket), with one token per scope.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use hookline_api::auth::{Auth, Scope};
use hookline_core::config::{Config, TokenConfig, TokenDigest};
use hookline_runtime::registry::EndpointRegistry;
use hookline_runtime::shutdown::Shutdown;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

pub const ADMIN: &str = "hl_test_admin";
pub const READ: &str = "hl_test_read";
pub const PUBLISH: &str = "hl_test_publish";

pub struct TestApi {
    app: axum::Router,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

impl TestApi {
    pub fn new(mut config: Config, registry: Arc<EndpointRegistry>, shutdown: &Shutdown) -> Self {
        config.api.tokens = [(Scope::Admin, ADMIN), (Scope::Read, READ), (Scope::Publish, PUBLISH)]
            .iter()
            .map(|&(scope, token)| TokenConfig { name: scope.name().into(), sha256: TokenDigest::of(token), scopes: vec![scope] })
            .collect();
        let auth = Auth::new(&config.api.tokens, hookline_api::portal::SessionKey::from_config(&config.api));
        let state = hookline_api::state(config, registry, auth, shutdown).expect("api state");
        Self { app: hookline_api::app(state) }
    }

    /// Sends a request with `token` (if any) and a JSON body (if any).
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Reply {
        let raw = body.map(|b| b.to_string());
        self.call_raw(method, path, token, raw.as_deref(), &[]).await
    }

    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).expect("request");
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())) };
        Reply { status, headers, json }
    }
}
