//! `/v1/event-types`: the event-type catalog (docs/contracts.md), written to its compacted
//! topic like the endpoints. Each version's JSON Schema is compiled and its examples checked
//! before the write; the view says which endpoints receive which version.

use crate::auth::{Access, Admin, Read};
use crate::problem::{visible, ApiJson, FieldError, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::contracts::version;
use hookline_core::matching::EventTypePattern;
use hookline_proto::v1::{self, SchemaValidation};
use hookline_runtime::catalog::{self, Catalog};
use hookline_runtime::time::now_ms;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

type AppStateRef = State<Arc<AppState>>;

/// How an event type's payloads are checked against its schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Not checked (default).
    #[default]
    Off,
    /// Checked and counted (`hookline_schema_violations_total`); still delivered.
    Warn,
    /// The HTTP ingest answers 422; the router dead-letters an invalid event from Kafka
    /// (reason `schema_violation`).
    Enforce,
}

impl Validation {
    fn proto(self) -> SchemaValidation {
        match self {
            Validation::Off => SchemaValidation::Off,
            Validation::Warn => SchemaValidation::Warn,
            Validation::Enforce => SchemaValidation::Enforce,
        }
    }

    fn of(v: SchemaValidation) -> Self {
        match v {
            SchemaValidation::Off => Validation::Off,
            SchemaValidation::Warn => Validation::Warn,
            SchemaValidation::Enforce => Validation::Enforce,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionInput {
    /// 1, 2 ... (an event names its version in its `version` attribute; none is 1).
    #[schema(minimum = 1)]
    pub version: u32,
    /// The payload's JSON Schema (draft 2020-12 unless `$schema` says otherwise). Remote
    /// `$ref`s are refused: a schema never makes the server fetch a URL.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// Example payloads; each must match the schema.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub examples: Vec<serde_json::Value>,
    #[serde(default)]
    pub deprecated: bool,
}

/// An event type to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeInput {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub versions: Vec<VersionInput>,
    #[serde(default)]
    pub validation: Validation,
    #[serde(default)]
    pub deprecated: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub examples: Vec<serde_json::Value>,
    pub deprecated: bool,
    /// The endpoints that receive this version (subscribed to the type, pinned to this
    /// version or to none): when none is left, producers can stop publishing it.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    pub versions: Vec<VersionView>,
    pub validation: Validation,
    pub deprecated: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypeList {
    /// By name.
    pub data: Vec<EventTypeView>,
}

fn view(s: &AppState, access: &Access, t: &v1::EventType) -> EventTypeView {
    // The endpoints subscribed to this type that the caller may see, with their pins.
    let subscribed: Vec<(String, Option<u32>)> = s
        .registry
        .all()
        .iter()
        .filter(|e| access.sees(&e.endpoint.tenant))
        .filter(|e| e.endpoint.event_types.iter().any(|p| EventTypePattern::parse(p).is_ok_and(|p| p.matches(&t.name))))
        .map(|e| (e.endpoint.id.clone(), (e.endpoint.version != 0).then_some(e.endpoint.version)))
        .collect();
    let usage = version::usage(t.versions.iter().map(|v| v.version), subscribed.iter().map(|(id, pin)| (id.as_str(), *pin)));
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    EventTypeView {
        name: t.name.clone(),
        description: t.description.clone(),
        versions: t
            .versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                schema: json(&v.schema_json),
                examples: v.examples_json.iter().filter_map(|e| json(e)).collect(),
                deprecated: v.deprecated,
                endpoints: usage.get(&v.version).map(|ids| ids.iter().map(|id| (*id).to_owned()).collect()).unwrap_or_default(),
            })
            .collect(),
        validation: Validation::of(t.validation()),
        deprecated: t.deprecated,
        created_at: t.created_at_ms,
        updated_at: t.updated_at_ms,
    }
}

#[utoipa::path(get, operation_id = "list_event_types", path = "/v1/event-types", tag = "event-types",
    responses((status = 200, body = EventTypeList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): AppStateRef, Read(access): Read) -> Json<EventTypeList> {
    Json(EventTypeList { data: s.catalog.all().iter().map(|t| view(&s, &access, t)).collect() })
}

#[utoipa::path(get, operation_id = "get_event_type", path = "/v1/event-types/{name}", tag = "event-types", params(("name" = String, Path)),
    responses((status = 200, body = EventTypeView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(State(s): AppStateRef, Read(access): Read, Path(name): Path<String>) -> Result<Json<EventTypeView>, Problem> {
    let t = s.catalog.get(&name).ok_or_else(|| Problem::not_found("event type", &name))?;
    Ok(Json(view(&s, &access, &t)))
}

#[utoipa::path(put, operation_id = "put_event_type", path = "/v1/event-types/{name}", tag = "event-types", params(("name" = String, Path)),
    request_body = EventTypeInput,
    responses((status = 200, description = "Created or replaced", body = EventTypeView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn put(
    State(s): AppStateRef,
    Admin(access): Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<EventTypeInput>,
) -> Result<(StatusCode, Json<EventTypeView>), Problem> {
    let now = now_ms();
    let created_at = s.catalog.get(&name).map_or(now, |t| t.created_at_ms);
    let record = v1::EventType {
        name: name.clone(),
        description: body.description,
        versions: body
            .versions
            .into_iter()
            .map(|v| v1::EventTypeVersion {
                version: v.version,
                schema_json: v.schema.map(|x| x.to_string()).unwrap_or_default(),
                examples_json: v.examples.iter().map(ToString::to_string).collect(),
                deprecated: v.deprecated,
            })
            .collect(),
        validation: body.validation.proto() as i32,
        deprecated: body.deprecated,
        created_at_ms: created_at,
        updated_at_ms: now,
    };
    if let Err(e) = Catalog::check_record(&record) {
        return Err(Problem::invalid(vec![FieldError { field: e.field, problem: e.problem }]));
    }
    let offset = catalog::put(&s.producer, &s.topics.event_types, &record)
        .await
        .map_err(|e| Problem::unavailable(format!("writing the event type: {e:#}")))?;
    visible(&s.catalog.position, offset).await?;
    tracing::info!(event_type = %name, "event type written");
    Ok((StatusCode::OK, Json(view(&s, &access, &record))))
}

#[utoipa::path(delete, operation_id = "delete_event_type", path = "/v1/event-types/{name}", tag = "event-types", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(State(s): AppStateRef, _: Admin, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    s.catalog.get(&name).ok_or_else(|| Problem::not_found("event type", &name))?;
    let offset = catalog::delete(&s.producer, &s.topics.event_types, &name)
        .await
        .map_err(|e| Problem::unavailable(format!("deleting the event type: {e:#}")))?;
    visible(&s.catalog.position, offset).await?;
    Ok(StatusCode::NO_CONTENT)
}
