//! `POST /tasks`, `GET /tasks`, `GET /tasks/{id}`, `PATCH /tasks/{id}`, `DELETE /tasks/{id}`.
//!
//! Every route needs a bearer token. Request bodies are plain strings until
//! [`NewTask::parse`] / [`TaskPatch::parse`] turn them into domain types; the work is done
//! by the operations in [`crate::tasks`].

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use base64::Engine as _;
use herald_common::events::Actor;
use herald_common::ids::TaskId;
use herald_common::task::Task;
use herald_service::error::ErrorBodySchema as ErrorBody;
use herald_service::{ApiError, Authenticated};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{
    FieldErrors, InvalidField, NewTask, Patch, TaskPatch, parse_status, parse_user,
};
use crate::error::TasksError;
use crate::routes::schema::{TaskPageSchema as TaskPage, TaskSchema};
use crate::state::TasksApi;
use crate::store::ListPosition;
use crate::tasks::{IdempotencyKey, IfMatch, ListFilters};
use crate::trace;

/// Request header making `POST /tasks` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Response header set on the answer to a retried `POST /tasks`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Default page size of `GET /tasks`.
pub const DEFAULT_LIMIT: u32 = 50;

/// Largest page size of `GET /tasks`.
pub const MAX_LIMIT: u32 = 100;

/// Body of `POST /tasks`. Members other than these are refused (422), so a misspelt one
/// never goes unnoticed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// 1–200 characters (surrounding whitespace is trimmed).
    #[schema(example = "Write the release notes")]
    pub title: String,
    /// At most 10 000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `todo` (default), `in_progress` or `done`.
    #[serde(default)]
    #[schema(example = "todo")]
    pub status: Option<String>,
    /// The assignee's user id.
    #[serde(default)]
    #[schema(format = Uuid)]
    pub assignee: Option<String>,
}

/// Body of `PATCH /tasks/{id}`: a JSON merge patch (RFC 7396). An absent member leaves the
/// field unchanged; `"assignee": null` unassigns, `"description": null` empties the
/// description; `title` and `status` cannot be `null`. Other members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskRequest {
    /// New title, 1–200 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub title: Patch<String>,
    /// New description, at most 10 000 characters; `null` empties it.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// New status.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Patch<String>,
    /// New assignee's user id; `null` unassigns.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub assignee: Patch<String>,
}

/// Query of `GET /tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only tasks with this status.
    pub status: Option<String>,
    /// Only tasks assigned to this user id.
    pub assignee: Option<String>,
    /// Only tasks created by this user id.
    pub created_by: Option<String>,
}

/// Body of `GET /tasks`.
#[derive(Debug, Serialize)]
struct PageBody {
    items: Vec<Task>,
    next_cursor: Option<String>,
}

/// Creates a task. With an `Idempotency-Key`, a retry returns the first answer (with
/// `Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key returns the first result")),
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Task created (or, for a retry, the first result)", body = TaskSchema,
         headers(("ETag" = String, description = "\"<version>\""), ("Location" = String))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "Invalid fields, or the key was used for another request", body = ErrorBody),
    )
)]
#[post("")]
pub async fn create(
    api: web::Data<TasksApi>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Json<CreateTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(&auth)?;
    let CreateTaskRequest {
        title,
        description,
        status,
        assignee,
    } = body.into_inner();
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| InvalidField::Invalid)
                .and_then(IdempotencyKey::parse)
                .map_err(|reason| TasksError::Invalid(vec![("idempotency_key", reason)]))?,
        ),
    };
    let new = NewTask::parse(&title, description, status.as_deref(), assignee.as_deref())
        .map_err(TasksError::Invalid)?;
    let created = api
        .create_task(&actor, new, key, trace::from_request(&req))
        .await?;
    let mut response = HttpResponse::Created();
    response
        .insert_header((header::ETAG, etag(&created.task)))
        .insert_header((header::LOCATION, format!("/tasks/{}", created.task.id)));
    if created.replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, HeaderValue::from_static("true")));
    }
    Ok(response.json(&created.task))
}

/// Lists tasks, newest first, a page at a time.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = TaskPage),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "Invalid filter, limit or cursor", body = ErrorBody),
    )
)]
#[get("")]
pub async fn list(
    api: web::Data<TasksApi>,
    _auth: Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut invalid = FieldErrors::new();
    let limit = optional(
        &mut invalid,
        "limit",
        query.limit.map(|limit| {
            if (1..=MAX_LIMIT).contains(&limit) {
                Ok(limit)
            } else {
                Err(InvalidField::Invalid)
            }
        }),
    );
    let cursor = optional(
        &mut invalid,
        "cursor",
        query.cursor.as_deref().map(decode_cursor),
    );
    let filters = ListFilters {
        status: optional(
            &mut invalid,
            "status",
            query.status.as_deref().map(parse_status),
        ),
        assignee: optional(
            &mut invalid,
            "assignee",
            query.assignee.as_deref().map(parse_user),
        ),
        created_by: optional(
            &mut invalid,
            "created_by",
            query.created_by.as_deref().map(parse_user),
        ),
    };
    if !invalid.is_empty() {
        return Err(TasksError::Invalid(invalid).into());
    }
    let page = api
        .list_tasks(filters, cursor, limit.unwrap_or(DEFAULT_LIMIT))
        .await?;
    Ok(HttpResponse::Ok().json(PageBody {
        items: page.items,
        next_cursor: page.next.map(|position| encode_cursor(&position)),
    }))
}

/// One task.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskSchema, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such task (never created, or deleted)", body = ErrorBody),
    )
)]
#[get("/{id}")]
pub async fn get(
    api: web::Data<TasksApi>,
    _auth: Authenticated,
    id: web::Path<TaskId>,
) -> Result<HttpResponse, ApiError> {
    let task = api.task(id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(&task)))
        .json(&task))
}

/// Changes a task (its creator or assignee only) with a JSON merge patch. With `If-Match`,
/// the change is made only if the task still has that version.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag (\"<version>\") the change is based on"),
    ),
    request_body(content = PatchTaskRequest, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The task after the change", body = TaskSchema, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Neither the creator nor the assignee", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 412, description = "If-Match does not name the current version", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    )
)]
#[patch("/{id}")]
pub async fn update(
    api: web::Data<TasksApi>,
    auth: Authenticated,
    req: HttpRequest,
    id: web::Path<TaskId>,
    body: web::Json<PatchTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(&auth)?;
    let PatchTaskRequest {
        title,
        description,
        status,
        assignee,
    } = body.into_inner();
    let patch =
        TaskPatch::parse(title, description, status, assignee).map_err(TasksError::Invalid)?;
    let if_match = if_match(&req);
    let task = api
        .update_task(
            &actor,
            id.into_inner(),
            &patch,
            if_match.as_ref(),
            trace::from_request(&req),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(&task)))
        .json(&task))
}

/// Deletes a task (its creator only). With `If-Match`, only if it still has that version.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag (\"<version>\") the deletion is based on"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the creator", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 412, description = "If-Match does not name the current version", body = ErrorBody),
    )
)]
#[delete("/{id}")]
pub async fn delete(
    api: web::Data<TasksApi>,
    auth: Authenticated,
    req: HttpRequest,
    id: web::Path<TaskId>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(&auth)?;
    let if_match = if_match(&req);
    api.delete_task(
        &actor,
        id.into_inner(),
        if_match.as_ref(),
        trace::from_request(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The value of an optional parameter, or `None` with its error recorded in `invalid`.
fn optional<T>(
    invalid: &mut FieldErrors,
    name: &'static str,
    parsed: Option<Result<T, InvalidField>>,
) -> Option<T> {
    match parsed? {
        Ok(value) => Some(value),
        Err(reason) => {
            invalid.push((name, reason));
            None
        }
    }
}

/// The signed-in user as the actor of a change.
fn actor(auth: &Authenticated) -> Result<Actor, TasksError> {
    Ok(Actor {
        id: auth.0.user_id().map_err(|_| TasksError::BadSubject)?,
        name: auth.0.name.clone(),
    })
}

/// The `ETag` of a task: its version, quoted.
fn etag(task: &Task) -> String {
    format!("\"{}\"", task.version)
}

/// The request's `If-Match`, if any (all of its header lines joined).
fn if_match(req: &HttpRequest) -> Option<IfMatch> {
    let values: Vec<&str> = req
        .headers()
        .get_all(header::IF_MATCH)
        .map(|value| value.to_str().unwrap_or(""))
        .collect();
    (!values.is_empty()).then(|| IfMatch::parse(&values.join(",")))
}

/// The opaque cursor of a list position: base64url of `<created_at µs>_<id>`.
fn encode_cursor(position: &ListPosition) -> String {
    let micros = position.created_at.unix_timestamp_nanos() / 1_000;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{micros}_{}", position.id))
}

fn decode_cursor(raw: &str) -> Result<ListPosition, InvalidField> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| InvalidField::Invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| InvalidField::Invalid)?;
    let (micros, id) = text.split_once('_').ok_or(InvalidField::Invalid)?;
    let micros: i128 = micros.parse().map_err(|_| InvalidField::Invalid)?;
    let created_at = time::OffsetDateTime::from_unix_timestamp_nanos(micros.saturating_mul(1_000))
        .map_err(|_| InvalidField::Invalid)?;
    let id = TaskId::parse(id).map_err(|_| InvalidField::Invalid)?;
    Ok(ListPosition { created_at, id })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let position = ListPosition {
            created_at: datetime!(2026-11-22 10:00:00.123456 UTC),
            id: TaskId::new(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&position)), Ok(position));
        for bad in ["", "!!", "bm9wZQ", "MTIzX25vdC1hLXV1aWQ"] {
            assert_eq!(decode_cursor(bad), Err(InvalidField::Invalid), "{bad}");
        }
    }
}
