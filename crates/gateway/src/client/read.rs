//! `presence`, `presence_stats` and `history`: reads of a channel the user may see (the
//! channel table's read rule; 108 when the namespace keeps no presence or history).
//! Anonymous connections read the history of the namespaces open to them; presence is 103
//! for them.
//!
//! History limits: `limit` 0 returns only the stream position, a negative limit everything
//! kept, and any limit is capped at the configured maximum (300). A `since` from another
//! epoch is error 112.

use herald_broker::{BrokerError, HistoryQuery};
use herald_common::channel::ChannelName;
use herald_common::protocol::{
    ErrorCode, HistoryRequest, HistoryResult, PresenceResult, PresenceStatsResult,
};

use super::channels::parse_channel;
use super::session::{Client, Failure, Handled};
use crate::policy::ChannelOptions;

impl Client {
    fn readable(&self, raw: &str) -> Result<(ChannelName, ChannelOptions), Failure> {
        let channel = parse_channel(raw)?;
        let options = self.shared.policy.read(&channel, self.viewer()?)?;
        Ok((channel, options))
    }

    fn presence_readable(&self, raw: &str) -> Result<(ChannelName, ChannelOptions), Failure> {
        let channel = parse_channel(raw)?;
        let options = self.shared.policy.presence(&channel, self.viewer()?)?;
        Ok((channel, options))
    }

    pub(super) async fn presence(&mut self, id: u32, raw: &str) -> Handled {
        let (channel, options) = self.presence_readable(raw)?;
        if !options.presence {
            return Err(ErrorCode::NotAvailable.into());
        }
        let presence = self
            .shared
            .broker
            .presence(&channel)
            .await
            .map_err(internal)?;
        self.reply(id, PresenceResult { presence });
        Ok(())
    }

    pub(super) async fn presence_stats(&mut self, id: u32, raw: &str) -> Handled {
        let (channel, options) = self.presence_readable(raw)?;
        if !options.presence {
            return Err(ErrorCode::NotAvailable.into());
        }
        let stats = self
            .shared
            .broker
            .presence_stats(&channel)
            .await
            .map_err(internal)?;
        self.reply(
            id,
            PresenceStatsResult {
                num_clients: u32::try_from(stats.num_clients).unwrap_or(u32::MAX),
                num_users: u32::try_from(stats.num_users).unwrap_or(u32::MAX),
            },
        );
        Ok(())
    }

    pub(super) async fn history(&mut self, id: u32, request: HistoryRequest) -> Handled {
        let (channel, options) = self.readable(&request.channel)?;
        if !options.history.is_enabled() {
            return Err(ErrorCode::NotAvailable.into());
        }
        let max = self.shared.settings.limits.history_max;
        let limit = match usize::try_from(request.limit) {
            Ok(limit) => limit.min(max),
            Err(_) => max,
        };
        let query = HistoryQuery {
            since: request.since,
            limit: Some(limit),
            reverse: request.reverse,
        };
        let history = match self.shared.broker.history(&channel, query).await {
            Ok(history) => history,
            Err(BrokerError::UnrecoverablePosition) => {
                return Err(ErrorCode::UnrecoverablePosition.into());
            }
            Err(err) => return Err(internal(err)),
        };
        self.reply(
            id,
            HistoryResult {
                publications: history.publications,
                epoch: history.position.epoch,
                offset: history.position.offset,
            },
        );
        Ok(())
    }
}

fn internal(err: BrokerError) -> Failure {
    tracing::warn!(error = %err, "broker read failed");
    Failure::Error(ErrorCode::Internal.into())
}
