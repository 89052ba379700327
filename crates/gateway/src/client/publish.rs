//! `publish`: a client publishes into a channel it is subscribed to.
//!
//! Checks, in order: the channel name (107), the connection's rate limit (111, temporary),
//! the channel table (102; 103 for server-only channels such as `tasks`, the notification
//! and public feeds, and for anonymous connections everywhere), being subscribed (103), a
//! payload (107). The publication's `info`
//! names the author: `{user, client, conn_info: {"name": <username>}}`.

use std::time::Instant;

use herald_broker::PublishRequest;
use herald_common::protocol::PublishRequest as PublishCommand;
use herald_common::protocol::{ErrorCode, PublishResult};
use tracing::Instrument as _;

use super::channels::parse_channel;
use super::session::{Client, Failure, Handled};
use crate::metrics;

impl Client {
    pub(super) async fn publish(&mut self, id: u32, request: PublishCommand) -> Handled {
        let channel = parse_channel(&request.channel)?;
        if !self.publish_bucket.try_take() {
            return Err(ErrorCode::TooManyRequests.into());
        }
        let options = self.shared.policy.publish(&channel, self.viewer()?)?;
        if !self.subs.contains_key(&channel) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let Some(data) = request.data else {
            return Err(ErrorCode::BadRequest.into());
        };
        let info = self
            .identity
            .as_ref()
            .map(|identity| identity.info.clone())
            .ok_or(Failure::Close(
                herald_common::protocol::DisconnectCode::BadRequest,
            ))?;
        let publication = PublishRequest::new(data)
            .with_info(info)
            .with_history(options.history);
        let (publication, span) = crate::trace::publish_span(&channel, publication);
        let started = Instant::now();
        let published = self
            .shared
            .broker
            .publish(&channel, publication)
            .instrument(span)
            .await;
        ::metrics::histogram!(metrics::PUBLISH_DURATION).record(started.elapsed().as_secs_f64());
        match published {
            Ok(_) => {
                self.reply(id, PublishResult {});
                Ok(())
            }
            Err(err) => {
                tracing::warn!(%channel, error = %err, "publish failed");
                Err(ErrorCode::Internal.into())
            }
        }
    }
}
