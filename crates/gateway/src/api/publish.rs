//! `/api/publish` and `/api/broadcast`: the server publishes into any channel of the channel
//! table (server-only channels such as `tasks` and `notifications#<user>` included), with
//! the namespace's history, so subscribers recover server publications like any other.
//!
//! An `idempotency_key` makes a repeated call within the broker's window (5 minutes) a no-op
//! that answers the first call's offset and epoch; in a broadcast it applies per channel.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::HttpResponse;
use actix_web::web::{Bytes, Data};
use futures_util::future::join_all;
use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::protocol::{ErrorCode, ProtocolError};
use herald_common::server_api::{
    ApiResponse, BroadcastRequest, BroadcastResult, PublishRequest as ApiPublish, PublishResult,
};
use serde_json::value::RawValue;

use super::{ApiError, Authorized, answer, channel, internal, parse};
use crate::metrics;
use crate::state::Shared;

/// Most channels of one broadcast.
pub const MAX_BROADCAST_CHANNELS: usize = 1000;

/// What one publication carries besides its channel.
struct Content<'a> {
    data: &'a RawValue,
    idempotency_key: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
    skip_history: bool,
}

/// `POST /api/publish`.
pub async fn publish(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: ApiPublish = parse(&body)?;
    let content = Content {
        data: &request.data,
        idempotency_key: request.idempotency_key.as_deref(),
        tags: &request.tags,
        skip_history: request.skip_history,
    };
    Ok(answer(
        publish_one(&shared, &request.channel, &content).await,
    ))
}

/// `POST /api/broadcast`.
pub async fn broadcast(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: BroadcastRequest = parse(&body)?;
    if request.channels.is_empty() || request.channels.len() > MAX_BROADCAST_CHANNELS {
        return Ok(answer::<BroadcastResult>(Err(ProtocolError::with_message(
            ErrorCode::BadRequest,
            format!("a broadcast names 1 to {MAX_BROADCAST_CHANNELS} channels"),
        ))));
    }
    let content = Content {
        data: &request.data,
        idempotency_key: request.idempotency_key.as_deref(),
        tags: &request.tags,
        skip_history: request.skip_history,
    };
    let responses = join_all(
        request
            .channels
            .iter()
            .map(|raw| publish_one(&shared, raw, &content)),
    )
    .await
    .into_iter()
    .map(ApiResponse::from)
    .collect();
    Ok(answer(Ok(BroadcastResult { responses })))
}

async fn publish_one(
    shared: &Shared,
    raw: &str,
    content: &Content<'_>,
) -> Result<PublishResult, ProtocolError> {
    let channel = channel(raw)?;
    let options = shared.policy.options(&channel)?;
    let history = if content.skip_history {
        HistoryPolicy::none()
    } else {
        options.history
    };
    let mut request = PublishRequest::new(content.data.to_owned()).with_history(history);
    if let Some(key) = content.idempotency_key.filter(|key| !key.is_empty()) {
        request = request.with_idempotency_key(key);
    }
    for (key, value) in content.tags {
        request = request.with_tag(key.clone(), value.clone());
    }
    let started = Instant::now();
    let published = shared.broker.publish(&channel, request).await;
    ::metrics::histogram!(metrics::PUBLISH_DURATION).record(started.elapsed().as_secs_f64());
    let published = published.map_err(|err| internal(&err))?;
    Ok(PublishResult {
        offset: published.offset,
        epoch: published.epoch,
    })
}
