//! `/v1/stats/...`, `/v1/me` and `/v1/portal/sessions`: what the console and the portal need
//! besides the resources themselves.

use crate::auth::{Admin, Caller, Read, ReadAll, Scope};
use crate::models::{CreatePortalSession, EventTypeSeen, EventTypesSeen, MeView, PortalSessionView, SeriesQuery, SeriesView};
use crate::portal::{Permission, Session};
use crate::problem::{ApiJson, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookline_runtime::time::now_ms;
use std::sync::Arc;

type AppStateRef = State<Arc<AppState>>;

/// A chart's span in minutes: 1 to 60, 60 by default.
pub fn minutes(asked: Option<usize>) -> Result<usize, Problem> {
    let minutes = asked.unwrap_or(crate::series::MINUTES);
    if (1..=crate::series::MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(Problem::field("minutes", format!("must be between 1 and {}", crate::series::MINUTES)))
    }
}

#[utoipa::path(get, operation_id = "get_throughput", path = "/v1/stats/throughput", tag = "history", params(SeriesQuery),
    responses((status = 200, description = "Every endpoint's attempts, minute by minute, oldest first", body = SeriesView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn throughput(State(s): AppStateRef, _: ReadAll, ApiQuery(q): ApiQuery<SeriesQuery>) -> Result<Json<SeriesView>, Problem> {
    Ok(Json(SeriesView::of(&s.history.pipeline_series(now_ms(), minutes(q.minutes)?))))
}

#[utoipa::path(get, operation_id = "list_event_types_seen", path = "/v1/stats/event-types", tag = "history",
    responses((status = 200, description = "Event types seen in attempts (of the session's tenant for a portal), most recent first", body = EventTypesSeen),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn event_types(State(s): AppStateRef, Read(access): Read) -> Json<EventTypesSeen> {
    let data = s
        .history
        .types_seen(access.tenant())
        .into_iter()
        .map(|t| EventTypeSeen { event_type: t.event_type, tenant: t.tenant, attempts: t.attempts, last_seen: t.last_seen_ms })
        .collect();
    Json(EventTypesSeen { data })
}

#[utoipa::path(get, operation_id = "get_me", path = "/v1/me", tag = "portal",
    responses((status = 200, body = MeView), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn me(Read(access): Read) -> Json<MeView> {
    Json(match access.caller {
        Caller::Open => MeView {
            kind: "open".into(),
            name: "dev".into(),
            scopes: vec![Scope::Admin.name().into()],
            tenant: None,
            permissions: Vec::new(),
            expires_at: None,
        },
        Caller::Token { name, scopes } => MeView {
            kind: "token".into(),
            name,
            scopes: scopes.iter().map(|s| s.name().into()).collect(),
            tenant: None,
            permissions: Vec::new(),
            expires_at: None,
        },
        Caller::Portal(session) => MeView {
            kind: "portal".into(),
            name: session.id,
            scopes: Vec::new(),
            tenant: Some(session.tenant),
            permissions: session.permissions,
            expires_at: Some(session.expires_at_ms),
        },
    })
}

#[utoipa::path(post, operation_id = "create_portal_session", path = "/v1/portal/sessions", tag = "portal",
    request_body = CreatePortalSession,
    responses((status = 201, description = "A signed session for one tenant, and the portal URL that carries it", body = PortalSessionView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_session(
    State(s): AppStateRef,
    _: Admin,
    ApiJson(body): ApiJson<CreatePortalSession>,
) -> Result<(StatusCode, Json<PortalSessionView>), Problem> {
    if body.tenant.is_empty() || body.tenant.len() > 200 {
        return Err(Problem::field("tenant", "must be 1 to 200 characters"));
    }
    let ttl = body.ttl_seconds.unwrap_or(3_600);
    if !(60..=86_400).contains(&ttl) {
        return Err(Problem::field("ttl_seconds", "must be between 60 and 86400"));
    }
    let mut permissions = vec![Permission::View];
    for p in body.permissions {
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    let session = Session {
        id: format!("ps_{}", uuid::Uuid::now_v7().simple()),
        tenant: body.tenant,
        permissions,
        expires_at_ms: now_ms() + i64::from(ttl) * 1_000,
    };
    let token = s.auth.sessions().issue(&session);
    let base = s.config.api.public_url.trim_end_matches('/');
    tracing::info!(session_id = %session.id, tenant = %session.tenant, ttl_seconds = ttl, "portal session made");
    Ok((
        StatusCode::CREATED,
        Json(PortalSessionView {
            url: format!("{base}/portal/#session={token}"),
            token,
            tenant: session.tenant,
            permissions: session.permissions,
            expires_at: session.expires_at_ms,
        }),
    ))
}
