//! The server API for the user's own backend (design sections 2 and 5a): `POST /api/<method>`
//! with a JSON body and the `X-API-Key` header, in Centrifugo's HTTP API shapes.
//!
//! | method | body | result |
//! |---|---|---|
//! | `publish` | `{channel, data, idempotency_key?, tags?, skip_history?}` | `{offset, epoch}` |
//! | `broadcast` | `{channels: [..], data, idempotency_key?, ...}` | `{responses: [{result}\|{error}]}` |
//! | `presence` | `{channel}` | `{presence: {client: info}}` |
//! | `presence_stats` | `{channel}` | `{num_clients, num_users}` |
//! | `history` | `{channel, limit?, since?, reverse?}` | `{publications, offset, epoch}` |
//! | `disconnect` | `{user, client?, whitelist?, disconnect?: {code, reason}}` | `{}` |
//! | `channels` | `{pattern?}` | `{channels: {name: {num_clients}}}` |
//! | `info` | `{}` | `{nodes: [{uid, name, version, num_clients, num_users, num_channels, uptime}]}` |
//!
//! Answers, in one place ([`ApiError`] and [`answer`]):
//! - HTTP 200 `{"result":{…}}`, or HTTP 200 `{"error":{"code":102,"message":"unknown channel"}}`
//!   for a failure of the method (the client protocol's error codes);
//! - HTTP 401 for a missing or wrong key, HTTP 404 when the API is disabled (no
//!   `HERALD_API_KEY`), HTTP 413 for a body over 1 MiB: Herald's REST error body;
//! - HTTP 400 `{"error":{"code":107,…}}` for a body that is not the method's JSON.
//!
//! The key is compared in constant time. Layout: this module (routing, key, answers);
//! [`publish`] (`publish`, `broadcast`); [`read`] (`presence`, `presence_stats`, `history`,
//! `channels`, `info`); [`disconnect`].

mod disconnect;
mod publish;
mod read;

use std::future::{Ready, ready};

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use herald_broker::BrokerError;
use herald_common::channel::ChannelName;
use herald_common::error::{ErrorBody, ErrorCode as RestCode};
use herald_common::protocol::{ErrorCode, ProtocolError};
use herald_common::server_api::ApiResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::Shared;

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The header carrying the key (`Authorization: apikey <key>` works too, as in Centrifugo).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Mounts `/api/*`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/publish", web::post().to(publish::publish))
            .route("/broadcast", web::post().to(publish::broadcast))
            .route("/presence", web::post().to(read::presence))
            .route("/presence_stats", web::post().to(read::presence_stats))
            .route("/history", web::post().to(read::history))
            .route("/disconnect", web::post().to(disconnect::disconnect))
            .route("/channels", web::post().to(read::channels))
            .route("/info", web::post().to(read::info)),
    );
}

/// Why a request was not answered by its method.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no `HERALD_API_KEY` is configured, so the API is off.
    #[error("the server API is disabled: set HERALD_API_KEY to enable it")]
    Disabled,
    /// 401: the key is missing or wrong.
    #[error("missing or wrong API key (X-API-Key header)")]
    Unauthorized,
    /// 400: the body is not the method's JSON (answered with error 107).
    #[error("bad request: {0}")]
    BadBody(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Disabled => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Disabled => {
                response.json(ErrorBody::new(RestCode::NotFound, self.to_string()))
            }
            ApiError::Unauthorized => {
                response.json(ErrorBody::new(RestCode::Unauthorized, self.to_string()))
            }
            ApiError::BadBody(_) => response.json(ApiResponse::<()>::Error(
                ProtocolError::with_message(ErrorCode::BadRequest, self.to_string()),
            )),
        }
    }
}

/// Proof that the request carried the right key: the first extractor of every method.
#[derive(Debug, Clone, Copy)]
pub struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Authorized, ApiError> {
    let Some(shared) = req.app_data::<web::Data<Shared>>() else {
        // `Gateway::configure` registers the state with the routes.
        return Err(ApiError::Disabled);
    };
    let Some(expected) = shared.settings.api_key.as_ref() else {
        return Err(ApiError::Disabled);
    };
    let given = req
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            req.headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("apikey "))
        })
        .ok_or(ApiError::Unauthorized)?;
    if expected.expose().is_empty()
        || !constant_time_eq(given.as_bytes(), expected.expose().as_bytes())
    {
        return Err(ApiError::Unauthorized);
    }
    Ok(Authorized)
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Parses the body as the method's request.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        // An empty body is an empty object (`/api/info`, `/api/channels`).
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|err| ApiError::BadBody(err.to_string()))
}

/// The HTTP 200 answer of a method.
pub(crate) fn answer<T: Serialize>(result: Result<T, ProtocolError>) -> HttpResponse {
    HttpResponse::Ok().json(ApiResponse::from(result))
}

/// A channel name from a request (107 when it is not one).
pub(crate) fn channel(raw: &str) -> Result<ChannelName, ProtocolError> {
    ChannelName::parse(raw).map_err(|_| ErrorCode::BadRequest.into())
}

/// A broker failure as the method's answer: 100 internal (temporary); the cause is logged.
pub(crate) fn internal(err: &BrokerError) -> ProtocolError {
    tracing::warn!(error = %err, "server API call failed in the broker");
    ErrorCode::Internal.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn keys_compare_by_content_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn an_empty_body_reads_as_an_empty_object() {
        let value: serde_json::Value = parse(&Bytes::from_static(b" \n")).unwrap();
        assert_eq!(value, serde_json::json!({}));
        assert!(matches!(
            parse::<serde_json::Value>(&Bytes::from_static(b"{nope")),
            Err(ApiError::BadBody(_))
        ));
    }
}
