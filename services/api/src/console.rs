//! The operator console (`/console/`) and the consumer portal (`/portal/`): one single-page
//! application (services/console, built by `scripts/console.sh build`) embedded in the
//! binary, a client of this API like any other. Release builds carry the files; debug builds
//! read them from services/console/dist at run time.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and API calls
//! from this origin only, no inline script, and framing as configured: the console is never
//! framed; the portal may be framed by `api.portal_frame_ancestors`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

#[derive(rust_embed::Embed)]
#[folder = "../console/dist/"]
struct Assets;

/// Which of the two the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Console,
    Portal,
}

/// The Content-Security-Policy of `app`'s pages and assets.
pub fn content_security_policy(app: App, frame_ancestors: &[String]) -> String {
    let ancestors = match app {
        App::Portal if !frame_ancestors.is_empty() => frame_ancestors.join(" "),
        _ => "'none'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

fn asset(app: App, frame_ancestors: &[String], path: &str) -> Response {
    // Unknown paths get the app's page (it routes in the fragment); a missing file with an
    // extension is a real 404.
    let (file, name) = match Assets::get(path) {
        Some(f) => (f, path),
        None if path.contains('.') && path != "index.html" => return StatusCode::NOT_FOUND.into_response(),
        None => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "The console is not built into this binary: run `scripts/console.sh build`, then build hookline.\n",
                )
                    .into_response();
            }
        },
    };
    let mut headers = HeaderMap::new();
    let mime = file.metadata.mimetype();
    if let Ok(v) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(app, frame_ancestors)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if app == App::Console {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    // Hashed asset names can be cached for good; the page itself never.
    let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-store" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    (headers, file.data.into_owned()).into_response()
}

/// The routes: `/console/...` and `/portal/...` (and their bare names, redirected).
pub fn routes<S: Clone + Send + Sync + 'static>(frame_ancestors: Vec<String>) -> axum::Router<S> {
    let ancestors = Arc::new(frame_ancestors);
    let serve = |app: App| {
        let a = Arc::clone(&ancestors);
        let index = move || {
            let a = Arc::clone(&a);
            async move { asset(app, &a, "index.html") }
        };
        let a2 = Arc::clone(&ancestors);
        let file = move |Path(path): Path<String>| {
            let a = Arc::clone(&a2);
            async move { asset(app, &a, &path) }
        };
        (index, file)
    };
    let (console_index, console_file) = serve(App::Console);
    let (portal_index, portal_file) = serve(App::Portal);
    axum::Router::<S>::new()
        .route("/console", axum::routing::get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", axum::routing::get(console_index))
        .route("/console/{*path}", axum::routing::get(console_file))
        .route("/portal", axum::routing::get(|| async { Redirect::permanent("/portal/") }))
        .route("/portal/", axum::routing::get(portal_index))
        .route("/portal/{*path}", axum::routing::get(portal_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_never_framed_and_the_portal_as_configured() {
        let csp = content_security_policy(App::Console, &["https://app.example.com".into()]);
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"));
        let portal = content_security_policy(App::Portal, &["https://app.example.com".into()]);
        assert!(portal.ends_with("frame-ancestors https://app.example.com"));
        assert!(content_security_policy(App::Portal, &[]).ends_with("frame-ancestors 'none'"));
    }
}
