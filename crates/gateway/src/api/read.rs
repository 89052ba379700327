//! `/api/presence`, `/api/presence_stats`, `/api/history` (any channel of the channel table;
//! 108 where the namespace keeps no presence or history), `/api/channels` and `/api/info`
//! (every node, see [`crate::node`]).
//!
//! History limits are the client protocol's: `limit` 0 (or absent) returns only the stream
//! position, a negative limit everything kept, any limit is capped at the configured maximum
//! (300); a `since` from another epoch is 112.

use actix_web::HttpResponse;
use actix_web::web::{Bytes, Data};
use herald_broker::{BrokerError, HistoryQuery};
use herald_common::channel::ChannelName;
use herald_common::protocol::{ErrorCode, ProtocolError};
use herald_common::server_api::{
    ChannelsRequest, ChannelsResult, HistoryRequest, HistoryResult, InfoResult, PresenceRequest,
    PresenceResult, PresenceStatsRequest, PresenceStatsResult,
};

use super::{ApiError, Authorized, answer, channel, internal, parse};
use crate::node;
use crate::policy::ChannelOptions;
use crate::state::Shared;

fn known(shared: &Shared, raw: &str) -> Result<(ChannelName, ChannelOptions), ProtocolError> {
    let channel = channel(raw)?;
    let options = shared.policy.options(&channel)?;
    Ok((channel, options))
}

fn with_presence(shared: &Shared, raw: &str) -> Result<ChannelName, ProtocolError> {
    let (channel, options) = known(shared, raw)?;
    if options.presence {
        Ok(channel)
    } else {
        Err(ErrorCode::NotAvailable.into())
    }
}

/// `POST /api/presence`.
pub async fn presence(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: PresenceRequest = parse(&body)?;
    let result = async {
        let channel = with_presence(&shared, &request.channel)?;
        let presence = shared
            .broker
            .presence(&channel)
            .await
            .map_err(|err| internal(&err))?;
        Ok(PresenceResult { presence })
    };
    Ok(answer(result.await))
}

/// `POST /api/presence_stats`.
pub async fn presence_stats(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: PresenceStatsRequest = parse(&body)?;
    let result = async {
        let channel = with_presence(&shared, &request.channel)?;
        let stats = shared
            .broker
            .presence_stats(&channel)
            .await
            .map_err(|err| internal(&err))?;
        Ok(PresenceStatsResult {
            num_clients: u32::try_from(stats.num_clients).unwrap_or(u32::MAX),
            num_users: u32::try_from(stats.num_users).unwrap_or(u32::MAX),
        })
    };
    Ok(answer(result.await))
}

/// `POST /api/history`.
pub async fn history(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: HistoryRequest = parse(&body)?;
    let result = async {
        let (channel, options) = known(&shared, &request.channel)?;
        if !options.history.is_enabled() {
            return Err(ErrorCode::NotAvailable.into());
        }
        let max = shared.settings.limits.history_max;
        let limit = usize::try_from(request.limit).map_or(max, |limit| limit.min(max));
        let query = HistoryQuery {
            since: request.since,
            limit: Some(limit),
            reverse: request.reverse,
        };
        match shared.broker.history(&channel, query).await {
            Ok(history) => Ok(HistoryResult {
                publications: history.publications,
                epoch: history.position.epoch,
                offset: history.position.offset,
            }),
            Err(BrokerError::UnrecoverablePosition) => Err(ErrorCode::UnrecoverablePosition.into()),
            Err(err) => Err(internal(&err)),
        }
    };
    Ok(answer(result.await))
}

/// `POST /api/channels`.
pub async fn channels(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: ChannelsRequest = parse(&body)?;
    let result = node::cluster_channels(&shared, &request.pattern)
        .await
        .map(|channels| ChannelsResult { channels })
        .map_err(|err| internal(&err));
    Ok(answer(result))
}

/// `POST /api/info`.
pub async fn info(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let _: herald_common::server_api::InfoRequest = parse(&body)?;
    let result = node::cluster_info(&shared)
        .await
        .map(|nodes| InfoResult { nodes })
        .map_err(|err| internal(&err));
    Ok(answer(result))
}
