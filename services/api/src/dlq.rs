//! `GET /v1/dlq`: browse dead letters.

use crate::auth::Read;
use crate::history::DeadLetterFilter;
use crate::models::{DeadLetterList, DeadLetterView, DlqQuery};
use crate::problem::{ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use hookline_proto::v1::DeadLetterReason;
use std::sync::Arc;

#[utoipa::path(get, operation_id = "list_dead_letters", path = "/v1/dlq", tag = "dlq", params(DlqQuery),
    responses((status = 200, description = "Newest first, a page at a time", body = DeadLetterList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<Arc<AppState>>, Read(access): Read, ApiQuery(q): ApiQuery<DlqQuery>) -> Result<Json<DeadLetterList>, Problem> {
    let limit = Problem::limit(q.limit, 50, 1000)?;
    let reason = q.reason.as_deref().map(|r| parse_reason("reason", r)).transpose()?;
    let filter = DeadLetterFilter {
        endpoint_id: q.endpoint_id,
        event_type: q.event_type,
        tenant: access.tenant_filter(q.tenant)?,
        event_id: q.event_id,
        reason,
        from_ms: q.from,
        to_ms: q.to,
        before: Problem::cursor(q.after.as_deref())?,
        limit,
    };
    let (page, next) = s.history.dead_letters(&filter);
    Ok(Json(DeadLetterList { data: page.iter().map(DeadLetterView::from).collect(), next: next.map(|n| n.to_string()) }))
}

/// A reason as the API names it (`exhausted`, `endpoint_gone` ...).
pub fn parse_reason(field: &str, text: &str) -> Result<DeadLetterReason, Problem> {
    // The one spelling of a reason (metrics, logs, the API): `DeadLetterReason::label`.
    DeadLetterReason::all().find(|r| r.label().eq_ignore_ascii_case(text)).ok_or_else(|| {
        let known: Vec<&str> = DeadLetterReason::all().map(DeadLetterReason::label).collect();
        Problem::field(field, format!("{text:?} is not one of {}", known.join(", ")))
    })
}
