//! `/v1/replays`: replay jobs. The API writes a job's request to the replays topic; the
//! replay worker runs it and writes its progress there (see docs/replay.md).

use crate::auth::{Access, Read, Replay};
use crate::dlq::parse_reason;
use crate::models::{CreateReplay, PageQuery, ReplayList, ReplaySourceName, ReplayView};
use crate::problem::{visible, ApiJson, ApiQuery, FieldError, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_proto::v1;
use hookline_replay::{jobs, plan};
use hookline_runtime::time::now_ms;
use std::sync::Arc;

type AppStateRef = State<Arc<AppState>>;

/// Writes `request` and waits until this replica's job store has applied it.
async fn write_visible(s: &AppState, request: &v1::ReplayRequest) -> Result<(), Problem> {
    let offset = jobs::put_request(&s.producer, &s.topics.replays, request)
        .await
        .map_err(|e| Problem::unavailable(format!("writing the replay job: {e:#}")))?;
    visible(&s.replays.position, offset).await
}

/// A portal session sees the jobs of its tenant only (every job it makes carries it).
fn visible_job(access: &Access, job: &jobs::Job) -> bool {
    access.tenant().is_none_or(|t| job.request.tenant == t)
}

fn view(s: &AppState, access: &Access, id: &str) -> Result<ReplayView, Problem> {
    s.replays.get(id).filter(|j| visible_job(access, j)).map(|j| ReplayView::from(&j)).ok_or_else(|| Problem::not_found("replay", id))
}

#[utoipa::path(post, operation_id = "create_replay", path = "/v1/replays", tag = "replays",
    request_body = CreateReplay,
    responses(
        (status = 202, description = "Accepted; the replay worker runs jobs one at a time, oldest first", body = ReplayView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn create(State(s): AppStateRef, Replay(access): Replay, ApiJson(body): ApiJson<CreateReplay>) -> Result<(StatusCode, Json<ReplayView>), Problem> {
    let now = now_ms();
    let mut reasons = Vec::new();
    for (i, text) in body.reasons.iter().enumerate() {
        reasons.push(parse_reason(&format!("reasons[{i}]"), text)? as i32);
    }
    let request = v1::ReplayRequest {
        id: format!("rp_{}", uuid::Uuid::now_v7().simple()),
        source: match body.source {
            ReplaySourceName::Dlq => v1::ReplaySource::Dlq,
            ReplaySourceName::Events => v1::ReplaySource::Events,
        } as i32,
        endpoint_id: body.endpoint_id.unwrap_or_default(),
        event_types: body.event_types,
        reasons,
        from_ms: body.from,
        to_ms: body.to.unwrap_or(now),
        rate_per_second: body.rate_per_second.unwrap_or(s.config.replay.default_rate_per_second),
        created_at_ms: now,
        tenant: access.tenant_filter(body.tenant)?.unwrap_or_default(),
        event_ids: body.event_ids,
        ..Default::default()
    };
    let mut errors: Vec<FieldError> = match plan::validate(&request, s.config.replay.max_rate_per_second) {
        Ok(()) => Vec::new(),
        Err(invalid) => invalid.into_iter().map(|e| FieldError { field: e.field.into(), problem: e.problem }).collect(),
    };
    if !request.endpoint_id.is_empty() && crate::endpoints::current(&s, &access, &request.endpoint_id).is_err() {
        errors.push(FieldError { field: "endpoint_id".into(), problem: format!("no endpoint with id {:?}", request.endpoint_id) });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    write_visible(&s, &request).await?;
    tracing::info!(replay_id = %request.id, source = ?body.source, endpoint_id = %request.endpoint_id, "replay requested");
    Ok((StatusCode::ACCEPTED, Json(view(&s, &access, &request.id)?)))
}

#[utoipa::path(get, operation_id = "list_replays", path = "/v1/replays", tag = "replays", params(PageQuery),
    responses((status = 200, body = ReplayList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): AppStateRef, Read(access): Read, ApiQuery(q): ApiQuery<PageQuery>) -> Result<Json<ReplayList>, Problem> {
    let limit = Problem::limit(q.limit, 50, 500)?;
    let tenant = access.tenant_filter(q.tenant)?;
    // Ids are time-ordered (UUIDv7): newest first is by id, descending.
    let mut jobs: Vec<ReplayView> = s
        .replays
        .all()
        .iter()
        .filter(|j| visible_job(&access, j) && tenant.as_deref().is_none_or(|t| j.request.tenant == t))
        .filter(|j| q.after.as_deref().is_none_or(|after| j.request.id.as_str() < after))
        .map(ReplayView::from)
        .collect();
    jobs.sort_by(|a, b| b.id.cmp(&a.id));
    jobs.truncate(limit + 1);
    let next = (jobs.len() > limit).then(|| {
        jobs.truncate(limit);
        jobs.last().map(|j| j.id.clone()).unwrap_or_default()
    });
    Ok(Json(ReplayList { data: jobs, next }))
}

#[utoipa::path(get, operation_id = "get_replay", path = "/v1/replays/{id}", tag = "replays", params(("id" = String, Path)),
    responses((status = 200, body = ReplayView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(State(s): AppStateRef, Read(access): Read, Path(id): Path<String>) -> Result<Json<ReplayView>, Problem> {
    Ok(Json(view(&s, &access, &id)?))
}

#[utoipa::path(delete, operation_id = "cancel_replay", path = "/v1/replays/{id}", tag = "replays", params(("id" = String, Path)),
    responses(
        (status = 202, description = "Cancellation requested; the worker stops at its next step and marks the job cancelled", body = ReplayView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The job has already ended", body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn cancel(State(s): AppStateRef, Replay(access): Replay, Path(id): Path<String>) -> Result<(StatusCode, Json<ReplayView>), Problem> {
    let job = s.replays.get(&id).filter(|j| visible_job(&access, j)).ok_or_else(|| Problem::not_found("replay", &id))?;
    if plan::is_terminal(job.state()) {
        let state = plan::state_name(job.state());
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", format!("replay {id} has already ended ({state})")));
    }
    if !job.request.cancel_requested {
        let request = v1::ReplayRequest { cancel_requested: true, ..job.request };
        write_visible(&s, &request).await?;
        tracing::info!(replay_id = %id, "replay cancellation requested");
    }
    Ok((StatusCode::ACCEPTED, Json(view(&s, &access, &id)?)))
}
