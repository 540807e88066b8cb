//! `/v1/endpoints`: endpoints and their subscriptions, written to the compacted endpoints
//! topic. A write answers once this replica's registry has applied it (read-your-writes).

use crate::auth::{Access, ManageEndpoints, Read, RotateSecrets, ViewSecrets};
use crate::models::*;
use crate::problem::{visible, ApiJson, ApiQuery, FieldError, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::ops::{EndpointEnabled, OpsEvent};
use hookline_core::signing::{ed25519_secret_from_seed, secret_from_bytes};
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_core::endpoint_rules::{FieldProblem, WritePolicy};
use hookline_runtime::registry::{self, EndpointError};
use hookline_runtime::{endpoint_check, kafka};
use hookline_runtime::time::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;

type AppStateRef = State<Arc<AppState>>;

fn new_secret(signing: Signing) -> String {
    let entropy = rand::random::<[u8; 32]>();
    match signing {
        Signing::Hmac => secret_from_bytes(&entropy),
        Signing::Ed25519 => ed25519_secret_from_seed(&entropy),
    }
}

/// An endpoint with a transformation gets a mask key once (its hashed masks stay the same
/// across secret rotations, so a consumer can join on them); it is sealed like a secret.
fn ensure_mask_key(endpoint: &mut v1::Endpoint) {
    if !endpoint.transform.is_empty() && endpoint.mask_key.is_empty() {
        use base64::Engine as _;
        endpoint.mask_key = format!("whmask_{}", base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()));
    }
}

/// A record the registry refuses, as a 422.
fn endpoint_problem(error: EndpointError) -> Problem {
    match error {
        EndpointError::Rule(rule) => Problem::invalid(vec![FieldProblem::from(rule).into()]),
        other => Problem::field("body", other.to_string()),
    }
}

/// Every rule an endpoint must pass before it is written (`core::endpoint_rules`): the
/// registry's own, then https unless allowed, no reserved headers, and no address the SSRF
/// policy refuses (checked again at send time, since DNS can change).
async fn check_endpoint(state: &AppState, endpoint: &v1::Endpoint) -> Result<(), Problem> {
    let policy = WritePolicy { require_https: state.config.api.require_https, addresses: &state.policy };
    endpoint_check::check(endpoint, &policy)
        .await
        .map(|_| ())
        .map_err(|problems| Problem::invalid(problems.into_iter().map(FieldError::from).collect()))
}

/// Serialises the read-modify-write of one endpoint within this replica, so that a change
/// is never computed from a copy another request is replacing (a PATCH racing a DELETE
/// would otherwise bring the endpoint back). Striped: ids share a lock by hash, so the set
/// stays bounded however many endpoints come and go.
pub struct EndpointLocks(Box<[tokio::sync::Mutex<()>]>);

impl Default for EndpointLocks {
    fn default() -> Self {
        Self((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl EndpointLocks {
    pub async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        id.hash(&mut hasher);
        let stripe = (hasher.finish() % self.0.len() as u64) as usize;
        self.0[stripe].lock().await
    }
}

/// Writes the endpoint and waits until this replica's registry has applied the write.
async fn write_visible(state: &AppState, endpoint: &v1::Endpoint) -> Result<(), Problem> {
    let offset = registry::put_endpoint(&state.producer, &state.topics.endpoints, state.registry.secret_keys(), endpoint)
        .await
        .map_err(|e| Problem::unavailable(format!("writing the endpoint: {e:#}")))?;
    visible(&state.registry.position, offset).await
}

/// The endpoint `id` as `access` may see it: another tenant's endpoint is not found for a
/// portal session, exactly like a missing one.
pub(crate) fn current(state: &AppState, access: &Access, id: &str) -> Result<v1::Endpoint, Problem> {
    state
        .registry
        .get(id)
        .map(|e| e.endpoint.clone())
        .filter(|e| access.sees(&e.tenant))
        .ok_or_else(|| Problem::not_found("endpoint", id))
}

fn limits(rate: Option<&RateLimit>, max_in_flight: u32, timeout_ms: u32) -> v1::Limits {
    v1::Limits {
        max_in_flight,
        timeout_ms,
        rate_per_second: rate.map_or(0, |r| r.per_second),
        burst: rate.and_then(|r| r.burst).unwrap_or(0),
    }
}

#[utoipa::path(post, operation_id = "create_endpoint", path = "/v1/endpoints", tag = "endpoints",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "Created; the only response that shows the secret besides GET .../secret", body = CreatedEndpoint),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn create(State(s): AppStateRef, ManageEndpoints(access): ManageEndpoints, ApiJson(body): ApiJson<CreateEndpoint>) -> Result<(StatusCode, Json<CreatedEndpoint>), Problem> {
    if body.rate_limit.as_ref().is_some_and(|r| r.per_second == 0) {
        return Err(Problem::field("rate_limit.per_second", "must be at least 1 (leave rate_limit out for none)"));
    }
    let now = now_ms();
    if let (Some(secret), Some(signing)) = (&body.secret, body.signing) {
        if Signing::of(secret) != signing {
            return Err(Problem::field("signing", "does not match the kind of secret given (whsec_: hmac, whsk_: ed25519)"));
        }
    }
    // A portal session creates endpoints of its own tenant only.
    let tenant = access.tenant_filter(Some(body.tenant.clone()).filter(|t| !t.is_empty()))?.unwrap_or_default();
    let secret = body.secret.clone().unwrap_or_else(|| new_secret(body.signing.unwrap_or(Signing::Hmac)));
    let given_secret = body.secret.clone();
    let endpoint = new_endpoint(body, tenant, secret.clone(), now);
    check_endpoint(&s, &endpoint).await.map_err(|p| rename_secret_field(p, &given_secret))?;
    write_visible(&s, &endpoint).await?;
    tracing::info!(endpoint_id = %endpoint.id, "endpoint created");
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint: EndpointView::from(&endpoint), secret })))
}

/// The endpoint a create request describes (not yet checked), with a new id.
fn new_endpoint(body: CreateEndpoint, tenant: String, secret: String, now: i64) -> v1::Endpoint {
    let mut endpoint = v1::Endpoint {
        id: format!("ep_{}", uuid::Uuid::now_v7().simple()),
        tenant,
        url: body.url,
        event_types: body.event_types,
        secrets: vec![v1::Secret { key: secret, ..Default::default() }],
        headers: body.headers.into_iter().collect(),
        auth: body.auth.map(AuthInput::proto),
        client_certificate: body.client_certificate.map(ClientCertificateInput::proto),
        limits: Some(limits(body.rate_limit.as_ref(), body.max_in_flight, body.timeout_ms)),
        disabled: !body.enabled,
        description: body.description,
        filter_attributes: body.filter_attributes.into_iter().collect(),
        created_at_ms: now,
        updated_at_ms: now,
        retry_schedule: body.retry_schedule,
        permanent_statuses: body.permanent_statuses,
        failing_since_ms: 0,
        ordering: body.ordering.proto() as i32,
        lane_max_block_ms: body.lane_max_block_ms,
        on_lane_blocked: body.on_lane_blocked.proto() as i32,
        failover_url: body.failover_url.unwrap_or_default(),
        failover_after: body.failover_after.unwrap_or(0),
        filter: body.filter.unwrap_or_default(),
        transform: body.transform.map(|t| t.to_string()).unwrap_or_default(),
        version: body.version.unwrap_or(0),
        ..Default::default()
    };
    ensure_mask_key(&mut endpoint);
    endpoint
}

/// The registry names the secret `secrets[0]`; the request calls it `secret`.
fn rename_secret_field(mut p: Problem, given: &Option<String>) -> Problem {
    if given.is_some() {
        for e in &mut p.errors {
            if e.field == "secrets[0]" {
                e.field = "secret".into();
            }
        }
    }
    p
}

#[utoipa::path(get, operation_id = "list_endpoints", path = "/v1/endpoints", tag = "endpoints", params(EndpointPageQuery),
    responses((status = 200, body = EndpointPage), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): AppStateRef, Read(access): Read, ApiQuery(q): ApiQuery<EndpointPageQuery>) -> Result<Json<EndpointPage>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::field("limit", "must be between 1 and 500"));
    }
    let after = q.after.unwrap_or_default();
    let tenant = access.tenant_filter(q.tenant)?;
    let mut page: Vec<EndpointView> = s
        .registry
        .all()
        .iter()
        .filter(|e| e.endpoint.id > after && tenant.as_deref().is_none_or(|t| e.endpoint.tenant == t))
        .take(limit + 1)
        .map(|e| EndpointView::from(&e.endpoint))
        .collect();
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|e| e.id.clone()).unwrap_or_default()
    });
    // The page's health at a glance in the same answer (the console's list).
    let stats = match q.stats_window_ms {
        Some(window_ms) => {
            check_window(window_ms, "stats_window_ms")?;
            Some(page.iter().map(|e| (e.id.clone(), stats_view(&s, e.id.clone(), window_ms))).collect())
        }
        None => None,
    };
    Ok(Json(EndpointPage { data: page, next, stats }))
}

#[utoipa::path(get, operation_id = "get_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(State(s): AppStateRef, Read(access): Read, Path(id): Path<String>) -> Result<Json<EndpointView>, Problem> {
    Ok(Json(EndpointView::from(&current(&s, &access, &id)?)))
}

#[utoipa::path(patch, operation_id = "update_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    request_body = UpdateEndpoint,
    responses((status = 200, body = EndpointView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): AppStateRef,
    ManageEndpoints(access): ManageEndpoints,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateEndpoint>,
) -> Result<Json<EndpointView>, Problem> {
    let _writing = s.endpoint_locks.lock(&id).await;
    let mut e = current(&s, &access, &id)?;
    let mut l = e.limits.unwrap_or_default();
    if let Some(v) = body.url { e.url = v; }
    if let Some(v) = body.event_types { e.event_types = v; }
    if let Some(v) = body.tenant {
        // A portal session cannot move an endpoint to another tenant.
        e.tenant = access.tenant_filter(Some(v))?.unwrap_or_default();
    }
    if let Some(v) = body.description { e.description = v; }
    if let Some(v) = body.headers { e.headers = v.into_iter().collect(); }
    if let Some(v) = body.auth { e.auth = v.map(AuthInput::proto); }
    if let Some(v) = body.client_certificate { e.client_certificate = v.map(ClientCertificateInput::proto); }
    if let Some(v) = body.filter_attributes { e.filter_attributes = v.into_iter().collect(); }
    let enabling = body.enabled == Some(true) && e.disabled;
    if let Some(enabled) = body.enabled {
        if enabled && e.disabled {
            // Re-enabled by a person: its failing period starts over.
            e.failing_since_ms = 0;
        }
        if e.disabled == enabled {
            // A person changed it: the sender's reason, if any, no longer applies.
            e.disabled_reason.clear();
        }
        e.disabled = !enabled;
    }
    if let Some(rate) = body.rate_limit {
        if rate.as_ref().is_some_and(|r| r.per_second == 0) {
            return Err(Problem::field("rate_limit.per_second", "must be at least 1 (set rate_limit to null for none)"));
        }
        let fresh = limits(rate.as_ref(), 0, 0);
        l.rate_per_second = fresh.rate_per_second;
        l.burst = fresh.burst;
    }
    if let Some(v) = body.max_in_flight { l.max_in_flight = v; }
    if let Some(v) = body.timeout_ms { l.timeout_ms = v; }
    if let Some(v) = body.retry_schedule { e.retry_schedule = v; }
    if let Some(v) = body.permanent_statuses { e.permanent_statuses = v; }
    if let Some(v) = body.ordering { e.ordering = v.proto() as i32; }
    if let Some(v) = body.lane_max_block_ms { e.lane_max_block_ms = v; }
    if let Some(v) = body.on_lane_blocked { e.on_lane_blocked = v.proto() as i32; }
    if let Some(v) = body.failover_url { e.failover_url = v; }
    if let Some(v) = body.failover_after { e.failover_after = v; }
    if let Some(v) = body.filter { e.filter = v; }
    if let Some(v) = body.transform { e.transform = v.map(|t| t.to_string()).unwrap_or_default(); }
    if let Some(v) = body.version { e.version = v; }
    ensure_mask_key(&mut e);
    e.limits = Some(l);
    e.updated_at_ms = now_ms();
    check_endpoint(&s, &e).await?;
    write_visible(&s, &e).await?;
    if enabling {
        let enabled = OpsEvent::Enabled(EndpointEnabled { endpoint_id: e.id.clone(), url: e.url.clone(), enabled_at_ms: e.updated_at_ms });
        // The endpoint is enabled either way; a failure is logged by `publish`.
        let _ = hookline_runtime::ops::publish(&s.producer, &s.topics.events, &e.tenant, "hookline-api", e.updated_at_ms, &enabled).await;
    }
    Ok(Json(EndpointView::from(&e)))
}

#[utoipa::path(delete, operation_id = "delete_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(State(s): AppStateRef, ManageEndpoints(access): ManageEndpoints, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    let _writing = s.endpoint_locks.lock(&id).await;
    current(&s, &access, &id)?;
    let offset = registry::delete_endpoint(&s.producer, &s.topics.endpoints, &id)
        .await
        .map_err(|e| Problem::unavailable(format!("deleting the endpoint: {e:#}")))?;
    visible(&s.registry.position, offset).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "get_endpoint_secret", path = "/v1/endpoints/{id}/secret", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = SecretView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn secret(State(s): AppStateRef, ViewSecrets(access): ViewSecrets, Path(id): Path<String>) -> Result<Json<SecretView>, Problem> {
    let e = current(&s, &access, &id)?;
    let now = now_ms();
    let newest = e.secrets.last().map(|x| x.key.clone()).unwrap_or_default();
    let previous = e.secrets.iter().rev().skip(1).find(|x| x.expires_at_ms > now).map(|x| x.expires_at_ms);
    Ok(Json(SecretView { public_key: Signing::public_key(&newest), secret: newest, previous_expires_at: previous }))
}

#[utoipa::path(post, operation_id = "rotate_endpoint_secret", path = "/v1/endpoints/{id}/secret/rotate", tag = "endpoints",
    params(("id" = String, Path), RotateQuery),
    responses((status = 200, body = SecretView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(s): AppStateRef,
    RotateSecrets(access): RotateSecrets,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RotateQuery>,
) -> Result<Json<SecretView>, Problem> {
    let _writing = s.endpoint_locks.lock(&id).await;
    let mut e = current(&s, &access, &id)?;
    let now = now_ms();
    let grace = q.grace_period_ms.map_or(s.config.api.rotation_grace_ms, |g| i64::try_from(g).unwrap_or(i64::MAX));
    if grace > 30 * 24 * 60 * 60 * 1000 {
        return Err(Problem::field("grace_period_ms", "must be at most 30 days"));
    }
    let until = now.saturating_add(grace);
    // Expired secrets go; every other one keeps signing until the end of the window.
    e.secrets.retain(|x| x.expires_at_ms == 0 || x.expires_at_ms > now);
    for old in &mut e.secrets {
        if old.expires_at_ms == 0 || old.expires_at_ms > until {
            old.expires_at_ms = until;
        }
    }
    // The new secret is of the same scheme as the one it replaces.
    let signing = e.secrets.last().map_or(Signing::Hmac, |x| Signing::of(&x.key));
    let secret = new_secret(signing);
    e.secrets.push(v1::Secret { key: secret.clone(), not_before_ms: 0, expires_at_ms: 0 });
    e.updated_at_ms = now;
    write_visible(&s, &e).await?;
    tracing::info!(endpoint_id = %id, grace_ms = grace, "secret rotated");
    Ok(Json(SecretView { public_key: Signing::public_key(&secret), secret, previous_expires_at: (grace > 0).then_some(until) }))
}

#[utoipa::path(post, operation_id = "send_test_event", path = "/v1/endpoints/{id}/test", tag = "endpoints", params(("id" = String, Path)),
    request_body(content = TestEvent, description = "Optional type and body of the test event"),
    responses((status = 202, description = "Queued for delivery to this endpoint only", body = Accepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn send_test(
    State(s): AppStateRef,
    ManageEndpoints(access): ManageEndpoints,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), Problem> {
    let endpoint = current(&s, &access, &id)?;
    // The body is optional: an empty POST sends the default test event.
    let body: TestEvent = if body.iter().all(u8::is_ascii_whitespace) {
        TestEvent::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::field("body", e.to_string()))?
    };
    let event_type = body.event_type.unwrap_or_else(|| "hookline.test".into());
    hookline_core::event::validate("x", &event_type).map_err(|e| Problem::field("type", e.to_string().trim_start_matches("type: ")))?;
    let now = now_ms();
    let payload = body.data.map_or_else(
        || format!(r#"{{"type":"{event_type}","message":"test event from hookline","at":{now}}}"#),
        |d| d.get().to_owned(),
    );
    let event = v1::Event {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        r#type: event_type,
        source: "hookline-api".into(),
        tenant: endpoint.tenant,
        occurred_at_ms: now,
        content_type: "application/json".into(),
        payload: payload.into_bytes().into(),
        ..Default::default()
    };
    // Straight to the deliveries topic: a test goes to this endpoint whatever it subscribes to.
    let delivery = v1::Delivery { event: Some(event.clone()), endpoint_id: id.clone(), attempt: 1, created_at_ms: now, ..Default::default() };
    let ack = kafka::enqueue(&s.producer, &s.topics.deliveries, &id, &delivery.encode_to_vec(), None)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    kafka::acked(ack).await.map_err(|e| Problem::unavailable(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { id: event.id })))
}

#[utoipa::path(get, operation_id = "list_endpoint_attempts", path = "/v1/endpoints/{id}/attempts", tag = "history", params(("id" = String, Path), LimitQuery),
    responses((status = 200, description = "Most recent first, a page at a time", body = AttemptList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn attempts(
    State(s): AppStateRef,
    Read(access): Read,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<AttemptList>, Problem> {
    current(&s, &access, &id)?;
    let limit = Problem::limit(q.limit, 50, 500)?;
    let (page, next) = s.history.endpoint_attempts(&id, Problem::cursor(q.after.as_deref())?, limit);
    Ok(Json(AttemptList { data: page.iter().map(AttemptView::from).collect(), next: next.map(|n| n.to_string()) }))
}

#[utoipa::path(get, operation_id = "get_endpoint_stats", path = "/v1/endpoints/{id}/stats", tag = "history", params(("id" = String, Path), StatsQuery),
    responses((status = 200, body = StatsView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(s): AppStateRef,
    Read(access): Read,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<StatsView>, Problem> {
    current(&s, &access, &id)?;
    let window_ms = q.window_ms.unwrap_or(15 * 60 * 1000);
    check_window(window_ms, "window_ms")?;
    Ok(Json(stats_view(&s, id, window_ms)))
}

fn check_window(window_ms: i64, field: &str) -> Result<(), Problem> {
    if (1..=24 * 60 * 60 * 1000).contains(&window_ms) { Ok(()) } else { Err(Problem::field(field, "must be between 1 and 86400000")) }
}

/// Success rate and latency of the endpoint's attempts in the last `window_ms`.
fn stats_view(s: &AppState, endpoint_id: String, window_ms: i64) -> StatsView {
    let st = s.history.stats(&endpoint_id, now_ms() - window_ms);
    let p = |i: usize| st.latency_ms.map(|l| l[i]);
    StatsView {
        endpoint_id,
        window_ms,
        attempts: st.attempts,
        successes: st.successes,
        success_rate: (st.attempts > 0).then(|| st.successes as f64 / st.attempts as f64),
        latency_p50_ms: p(0),
        latency_p95_ms: p(1),
        latency_p99_ms: p(2),
    }
}

#[utoipa::path(get, operation_id = "get_endpoint_series", path = "/v1/endpoints/{id}/series", tag = "history", params(("id" = String, Path), SeriesQuery),
    responses((status = 200, description = "Attempts and latency minute by minute, oldest first", body = SeriesView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn series(
    State(s): AppStateRef,
    Read(access): Read,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> Result<Json<SeriesView>, Problem> {
    current(&s, &access, &id)?;
    let minutes = crate::stats::minutes(q.minutes)?;
    Ok(Json(SeriesView::of(&s.history.endpoint_series(&id, now_ms(), minutes))))
}

#[utoipa::path(post, operation_id = "preview_delivery", path = "/v1/endpoints/{id}/preview", tag = "endpoints", params(("id" = String, Path)),
    request_body = IngestEvent,
    responses((status = 200, description = "Whether the endpoint would get this event, and the exact request it would be sent", body = PreviewView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn preview(
    State(s): AppStateRef,
    Read(access): Read,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IngestEvent>,
) -> Result<Json<PreviewView>, Problem> {
    let endpoint = current(&s, &access, &id)?;
    preview_of(&s, endpoint, body)
}

#[utoipa::path(post, operation_id = "preview_draft_delivery", path = "/v1/endpoints/preview", tag = "endpoints",
    request_body = PreviewDraft,
    responses((status = 200, description = "What a draft endpoint would get (nothing is written)", body = PreviewView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn preview_draft(State(s): AppStateRef, Read(access): Read, ApiJson(body): ApiJson<PreviewDraft>) -> Result<Json<PreviewView>, Problem> {
    let draft = body.endpoint;
    let tenant = access.tenant_filter(Some(draft.tenant.clone()).filter(|t| !t.is_empty()))?.unwrap_or_default();
    let secret = draft.secret.clone().unwrap_or_else(|| new_secret(draft.signing.unwrap_or(Signing::Hmac)));
    let endpoint = new_endpoint(draft, tenant, secret, now_ms());
    preview_of(&s, endpoint, body.event)
}

/// The dry run of one event to one endpoint: its subscription, then its contract (version,
/// filter), then the transformation and the signed headers, as the router and sender do.
fn preview_of(s: &AppState, endpoint: v1::Endpoint, event: IngestEvent) -> Result<Json<PreviewView>, Problem> {
    let (entry, subscription) = registry::EndpointEntry::new(endpoint).map_err(endpoint_problem)?;
    let event = crate::events::to_event(&s.catalog, event, None, None)?;
    let version = hookline_core::contracts::version::of_event(&event.attributes).map_err(|e| Problem::field("attributes.version", e.to_string()))?;
    let key = hookline_core::matching::EventKey { tenant: &event.tenant, event_type: &event.r#type, attributes: &event.attributes };
    let refused = |reason: String| Ok(Json(PreviewView { matches: false, reason: Some(reason), body: None, headers: BTreeMap::new() }));
    if entry.endpoint.disabled {
        return refused("the endpoint is disabled".into());
    }
    if !subscription.matches(key) {
        return refused("its subscription (event types, tenant, attributes) does not take this event".into());
    }
    match entry.admits(&event, version, &mut None) {
        registry::Admission::Admitted => {}
        registry::Admission::OtherVersion => return refused(format!("it receives version {} only", entry.endpoint.version)),
        registry::Admission::Filtered => return refused("its filter is false for this event".into()),
        registry::Admission::FilterFailed(e) => return refused(format!("its filter failed on this event ({e}), which counts as no match")),
    }
    let sent = match entry.transformed(&event) {
        Ok(t) => t.unwrap_or(event),
        Err(e) => return refused(format!("its transformation fails on this event ({e}): the delivery would be dead-lettered as transform_error")),
    };
    let user_agent = http::HeaderValue::from_static(hookline_sender::attempt::USER_AGENT_VALUE);
    let mut headers: BTreeMap<String, String> = hookline_sender::attempt::signed_headers(&entry, &sent, now_ms(), &user_agent, None, &[])
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    if entry.endpoint.auth.is_some() {
        headers.insert("authorization".into(), "[set by the endpoint's auth when sent]".into());
    }
    Ok(Json(PreviewView { matches: true, reason: None, body: Some(String::from_utf8_lossy(&sent.payload).into_owned()), headers }))
}
