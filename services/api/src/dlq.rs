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
    responses((status = 200, description = "Newest first", body = DeadLetterList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<Arc<AppState>>, _: Read, ApiQuery(q): ApiQuery<DlqQuery>) -> Result<Json<DeadLetterList>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::field("limit", "must be between 1 and 1000"));
    }
    let reason = q.reason.as_deref().map(|r| parse_reason("reason", r)).transpose()?;
    let filter = DeadLetterFilter { endpoint_id: q.endpoint_id, event_type: q.event_type, reason, from_ms: q.from, to_ms: q.to, limit };
    Ok(Json(DeadLetterList { data: s.history.dead_letters(&filter).iter().map(DeadLetterView::from).collect() }))
}

/// A reason as the API names it (`exhausted`, `endpoint_gone` ...).
pub fn parse_reason(field: &str, text: &str) -> Result<DeadLetterReason, Problem> {
    let wanted = format!("DEAD_LETTER_REASON_{}", text.to_ascii_uppercase());
    DeadLetterReason::from_str_name(&wanted).filter(|r| *r != DeadLetterReason::Unspecified).ok_or_else(|| {
        let known: Vec<&str> = DeadLetterReason::all().map(DeadLetterReason::label).collect();
        Problem::field(field, format!("{text:?} is not one of {}", known.join(", ")))
    })
}
