//! The REST error type and the extractor error handlers.
//!
//! [`ApiError`] renders the design's error body (`{"error":{"code","message","details"}}`,
//! [`herald_common::error::ErrorBody`]). A service keeps its own error enum (one per service,
//! each variant documenting its status) and maps it to `ApiError` in one `From` impl; an
//! internal error keeps its cause for the log and shows the client only "internal error".
//!
//! [`json_config`], [`form_config`], [`query_config`] and [`path_config`] make actix-web's
//! extractors answer with the same body: a body over the limit is 413, a wrong content type
//! 415, unparsable JSON 400, JSON of the wrong shape 422. [`FormOrJson`] accepts either an
//! `application/x-www-form-urlencoded` or a JSON body (OAuth2 token endpoints).

use std::{fmt, time::Duration};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError,
    dev::Payload,
    error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError},
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use futures_util::future::LocalBoxFuture;
use herald_common::error::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

/// Default JSON/form body limit of the REST services.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// An error answer of a REST endpoint.
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<Duration>,
    /// The cause of a 5xx, logged once when the response is built; never sent.
    cause: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with the given status, code and client-facing message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
            retry_after: None,
            cause: None,
        }
    }

    /// 422 `validation_failed` with per-field details (`{"username": "too_short"}`).
    pub fn validation<'a>(
        message: impl Into<String>,
        details: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let details: serde_json::Map<_, _> = details
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            message,
        );
        if !details.is_empty() {
            error.body = error.body.with_details(details);
        }
        error
    }

    /// 422 `validation_failed` for fields a service's parsers refused: the message joins
    /// `describe(field, reason)` for every field with `"; "`, and the details map each field
    /// to `code(reason)` (`{"username": "too_short"}`).
    pub fn invalid_fields<R: Copy>(
        fields: &[(&str, R)],
        describe: impl Fn(&str, R) -> String,
        code: impl Fn(R) -> &'static str,
    ) -> Self {
        let message = fields
            .iter()
            .map(|&(field, reason)| describe(field, reason))
            .collect::<Vec<_>>()
            .join("; ");
        Self::validation(
            message,
            fields.iter().map(|&(field, reason)| (field, code(reason))),
        )
    }

    /// 400 `validation_failed`: the request cannot be read at all.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed,
            message,
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// 412 `precondition_failed`.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::PreconditionFailed,
            message,
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 429 `rate_limited` with a `Retry-After` header (whole seconds, at least 1).
    pub fn rate_limited(retry_after: Duration) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests, retry later",
        );
        error.retry_after = Some(retry_after);
        error
    }

    /// 500 `internal`: `cause` is logged with its chain when the response is rendered; the
    /// client sees only "internal error".
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        );
        error.cause = Some(cause.into());
        error
    }

    /// 503 `internal`: a dependency is unavailable; `cause` is logged.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "service temporarily unavailable",
        );
        error.cause = Some(cause.into());
        error
    }

    /// Adds a `Retry-After` header.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body that will be sent.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("code", &self.body.error.code)
            .field("message", &self.body.error.message)
            .field("cause", &self.cause)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.error.code,
            self.body.error.message
        )?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            // `{:#}` prints the whole context chain on one line.
            tracing::error!(
                status = self.status.as_u16(),
                cause = format!("{cause:#}"),
                "request failed"
            );
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(&self.body)
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => Self::payload_too_large(limit),
            JsonPayloadError::ContentType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::ValidationFailed,
                "expected Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(err) if err.is_data() => {
                Self::validation(format!("invalid request body: {err}"), [])
            }
            JsonPayloadError::Deserialize(err) => {
                Self::bad_request(format!("malformed JSON: {err}"))
            }
            other => Self::bad_request(format!("unreadable request body: {other}")),
        }
    }
}

impl From<UrlencodedError> for ApiError {
    fn from(err: UrlencodedError) -> Self {
        match err {
            UrlencodedError::Overflow { limit, .. } => Self::payload_too_large(limit),
            UrlencodedError::ContentType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::ValidationFailed,
                "expected Content-Type: application/x-www-form-urlencoded",
            ),
            UrlencodedError::Parse(err) => {
                Self::validation(format!("invalid form body: {err}"), [])
            }
            other => Self::bad_request(format!("unreadable form body: {other}")),
        }
    }
}

/// Extractor config for JSON bodies: `limit` bytes, errors as [`ApiError`].
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| ApiError::from(err).into())
}

/// Extractor config for `application/x-www-form-urlencoded` bodies.
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(|err, _req| ApiError::from(err).into())
}

/// Extractor config for query strings: a bad query is 422.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let QueryPayloadError::Deserialize(err) = err else {
            return ApiError::bad_request("invalid query string").into();
        };
        ApiError::validation(format!("invalid query string: {err}"), []).into()
    })
}

/// Extractor config for path segments: a bad segment (e.g. not a UUID) is 404, because no
/// resource has that name.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::not_found(format!("no such resource: {err}")).into()
    })
}

/// Registers all four extractor configs with a `limit`-byte body limit.
pub fn configure_extractors(cfg: &mut web::ServiceConfig, limit: usize) {
    cfg.app_data(json_config(limit))
        .app_data(form_config(limit))
        .app_data(query_config())
        .app_data(path_config());
}

/// The causes of `err`, joined with `": "` (empty when it has none). Some libraries (sqlx
/// among them) keep the useful message in the source chain, not in `err` itself.
pub fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = err.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Default service answering unknown routes with a JSON 404.
pub async fn not_found() -> HttpResponse {
    ApiError::not_found("no such route").error_response()
}

/// OpenAPI schema of the error body ([`ErrorBody`]), for `responses(... body = ...)` in
/// `#[utoipa::path]` (the wire type in herald-common stays free of documentation crates).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub struct ErrorBodySchema {
    /// The error.
    pub error: ErrorDetailSchema,
}

/// OpenAPI schema of the inside of [`ErrorBody`].
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct ErrorDetailSchema {
    /// Stable code: `validation_failed`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `precondition_failed`, `rate_limited`, `payload_too_large` or `internal`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Human-readable explanation.
    #[schema(example = "username must be 3-32 characters")]
    pub message: String,
    /// Per-field details, e.g. `{"username": "too_short"}`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// A request body accepted either as `application/x-www-form-urlencoded` or as JSON, chosen by
/// the `Content-Type` header (anything that is not a form is read as JSON). Errors go through
/// the registered [`form_config`] / [`json_config`].
#[derive(Debug, Clone)]
pub struct FormOrJson<T>(pub T);

impl<T> FormOrJson<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for FormOrJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if is_form {
            let fut = web::Form::<T>::from_request(req, payload);
            Box::pin(async move { fut.await.map(|form| Self(form.into_inner())) })
        } else {
            let fut = web::Json::<T>::from_request(req, payload);
            Box::pin(async move { fut.await.map(|json| Self(json.into_inner())) })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use actix_web::{App, body::to_bytes, test, web};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Login {
        username: String,
    }

    async fn echo(body: FormOrJson<Login>) -> HttpResponse {
        HttpResponse::Ok().body(body.0.username)
    }

    async fn call(req: test::TestRequest) -> (StatusCode, serde_json::Value) {
        let app = test::init_service(
            App::new()
                .configure(|cfg| configure_extractors(cfg, 64))
                .route("/", web::post().to(echo)),
        )
        .await;
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status();
        let bytes = to_bytes(res.into_body()).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        (status, value)
    }

    #[actix_web::test]
    async fn a_form_and_a_json_body_are_both_accepted() {
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/")
                .set_form([("username", "alice")]),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!("alice")));
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/")
                .set_json(serde_json::json!({"username": "bob"})),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!("bob")));
    }

    #[actix_web::test]
    async fn malformed_json_is_400_with_the_error_body() {
        let req = test::TestRequest::post()
            .uri("/")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{\"username\":");
        let (status, body) = call(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "validation_failed");
    }

    #[actix_web::test]
    async fn json_of_the_wrong_shape_is_422() {
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/")
                .set_json(serde_json::json!({"user": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "validation_failed");
    }

    #[actix_web::test]
    async fn an_oversized_body_is_413() {
        let big = "x".repeat(200);
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/")
                .set_json(serde_json::json!({"username": big})),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
        let (status, _) = call(
            test::TestRequest::post()
                .uri("/")
                .set_form([("username", big)]),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[actix_web::test]
    async fn rate_limited_answers_carry_retry_after_in_whole_seconds() {
        let res = ApiError::rate_limited(Duration::from_millis(1500)).error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[actix_web::test]
    async fn internal_errors_hide_their_cause() {
        let res = ApiError::internal(anyhow::anyhow!("password=hunter2 leaked")).error_response();
        let bytes = to_bytes(res.into_body()).await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("hunter2"));
        assert!(text.contains("\"internal\""));
    }
}
