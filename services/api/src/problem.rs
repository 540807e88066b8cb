//! Errors as `application/problem+json` (RFC 9457), naming the field and the problem, and a
//! JSON extractor whose every rejection (bad JSON, unknown field, wrong type, too large)
//! becomes one.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One broken rule of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `event_types[1]`.
    pub field: String,
    pub problem: String,
}

impl From<hookline_core::endpoint_rules::FieldProblem> for FieldError {
    fn from(p: hookline_core::endpoint_rules::FieldProblem) -> Self {
        Self { field: p.field, problem: p.problem }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// How a payload breaks its event type's JSON Schema (`type: schema_violation`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<SchemaViolationView>,
}

/// One way a payload breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SchemaViolationView {
    /// JSON Pointer into the event's `data` (`""`: the whole payload).
    pub path: String,
    /// The schema keyword that failed (`type`, `required` ...; `json` for a payload that is not JSON).
    pub keyword: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://hookline.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// 422: the payload breaks its type's schema, which the type enforces. `field` names the
    /// payload in the request (`data`, `events[3].data`).
    pub fn schema_violation(field: &str, violations: &[hookline_core::contracts::schema::Violation]) -> Self {
        let detail = format!("{field} does not match its event type's schema: {}", hookline_runtime::catalog::describe(violations));
        let violations =
            violations.iter().map(|v| SchemaViolationView { path: v.path.clone(), keyword: v.keyword.clone(), message: v.message.clone() }).collect();
        Self { violations, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "schema_violation", detail) }
    }

    /// 422 naming each broken field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.problem)).collect::<Vec<_>>().join("; ");
        Self { errors, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail) }
    }

    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError { field: field.into(), problem: problem.into() }])
    }

    /// The cursor a paginated route was given as `after` (the `next` of a previous page).
    pub fn cursor(after: Option<&str>) -> Result<Option<u64>, Problem> {
        after
            .map(|a| a.parse::<u64>().map_err(|_| Problem::field("after", "is not a cursor this API returned as `next`")))
            .transpose()
    }

    /// A page's limit: `limit` or `default`, within 1..=`max`.
    pub fn limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, Problem> {
        let limit = limit.unwrap_or(default);
        if (1..=max).contains(&limit) { Ok(limit) } else { Err(Problem::field("limit", format!("must be between 1 and {max}"))) }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("no {what} with id {id:?}"))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `Json<T>` whose rejections are problems.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(from_rejection(rejection)),
        }
    }
}

fn from_rejection(rejection: JsonRejection) -> Problem {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // serde says e.g. "unknown field `urll`, expected one of ..." at "urll": name it.
            let field = text
                .split('`')
                .nth(1)
                .filter(|_| text.contains("unknown field") || text.contains("missing field"))
                .unwrap_or("body")
                .to_owned();
            let problem = text.split_once(": ").map_or(text.as_str(), |(_, p)| p).to_owned();
            Problem::field(field, problem)
        }
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "send content-type: application/json")
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(status, "too-large", text),
        _ => Problem::new(StatusCode::BAD_REQUEST, "bad-json", text),
    }
}

/// `Query<T>` whose rejections are problems.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let field = text.split('`').nth(1).unwrap_or("query").to_owned();
                let problem = text.rsplit_once(": ").map_or(text.as_str(), |(_, p)| p).to_owned();
                Err(Problem::field(field, problem))
            }
        }
    }
}

/// How long a write waits to become visible in this replica's view of its state topic.
const VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until this replica has applied the record at `offset` of a state topic
/// (read-your-writes); 503 if that takes longer than 10 s.
pub async fn visible(position: &hookline_runtime::compacted::Position, offset: i64) -> Result<(), Problem> {
    tokio::time::timeout(VISIBLE_WITHIN, position.wait_applied(offset))
        .await
        .map_err(|_| Problem::unavailable("written, but not yet visible here; read it again shortly"))
}
