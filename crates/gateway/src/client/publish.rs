//! `publish`: a client publishes into a channel it is subscribed to.
//!
//! Checks, in order: the channel name (107), the connection's rate limit (111, temporary),
//! the channel table (102; 103 for server-only channels such as `tasks`, the notification
//! and public feeds, and for anonymous connections everywhere), being subscribed (103), a
//! payload (107). The publication's `info`
//! names the author: `{user, client, conn_info: {"name": <username>}}`.
//!
//! Pipelining: a connection may have many publishes outstanding without waiting one round
//! trip to Redis for each. A checked publish waits in the connection's [`Publishes`] queue;
//! whenever no batch is in flight, everything waiting goes to the broker as one batch
//! ([`herald_broker::Broker::publish_many`], which makes the publications in the order given),
//! while the reader goes on reading. Replies, errors included, are queued in command order
//! when the batch lands. At most [`MAX_WAITING`] publishes wait and one batch flies; beyond
//! that the reader waits for the batch. Every other command first waits until every publish
//! before it was answered ([`Client::drain_publishes`]), so it sees their effects and its
//! reply comes after theirs.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use herald_broker::{BrokerResult, PublishRequest, PublishResult};
use herald_common::channel::ChannelName;
use herald_common::protocol::PublishRequest as PublishCommand;
use herald_common::protocol::{DisconnectCode, ErrorCode, ProtocolError, PublishResult as Reply};
use tracing::Span;

use super::channels::parse_channel;
use super::session::{Client, Failure, Handled};
use crate::metrics;

/// Most publishes of one connection waiting for the batch in flight to land.
pub(super) const MAX_WAITING: usize = 64;

/// The broker's answer to one batch, one result per publication sent.
type Landing = Vec<BrokerResult<PublishResult>>;

/// A connection's publishes between their command and their reply.
#[derive(Default)]
pub(super) struct Publishes {
    /// Checked, not sent yet, in command order.
    waiting: Vec<Entry>,
    /// The batch at the broker.
    flight: Option<Flight>,
}

/// One publish command.
struct Entry {
    id: u32,
    started: Instant,
    what: What,
}

enum What {
    /// Goes to the broker; its `gateway.publish` span lasts until the reply.
    Send {
        channel: ChannelName,
        request: Box<PublishRequest>,
        span: Span,
    },
    /// Refused by a check: the error reply waits for the replies of earlier publishes.
    Refused(ProtocolError),
}

struct Flight {
    /// The batch's entries in command order.
    entries: Vec<Flying>,
    landing: Pin<Box<dyn Future<Output = Landing> + Send>>,
}

/// One entry of the batch in flight.
struct Flying {
    id: u32,
    started: Instant,
    /// What was sent (`None`: a refused publish, answered with `refused`).
    sent: Option<(ChannelName, Span)>,
    refused: Option<ProtocolError>,
}

impl Publishes {
    /// Whether nothing waits and nothing flies.
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.flight.is_none()
    }

    /// Whether a batch is at the broker.
    pub(super) fn is_flying(&self) -> bool {
        self.flight.is_some()
    }

    /// The results of the batch in flight (pending forever when there is none).
    pub(super) async fn landed(&mut self) -> Landing {
        match &mut self.flight {
            Some(flight) => flight.landing.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

impl Client {
    pub(super) async fn publish(&mut self, id: u32, request: PublishCommand) -> Handled {
        match self.check_publish(request) {
            Ok((channel, request)) => {
                let (request, span) = crate::trace::publish_span(&channel, request);
                self.publishes.waiting.push(Entry {
                    id,
                    started: Instant::now(),
                    what: What::Send {
                        channel,
                        request: Box::new(request),
                        span,
                    },
                });
            }
            Err(Failure::Error(error)) if !self.publishes.is_idle() => {
                self.publishes.waiting.push(Entry {
                    id,
                    started: Instant::now(),
                    what: What::Refused(error),
                });
            }
            Err(Failure::Error(error)) => return Err(Failure::Error(error)),
            Err(close) => {
                self.drain_publishes().await;
                return Err(close);
            }
        }
        if self.publishes.waiting.len() >= MAX_WAITING {
            // Full: wait for the batch in flight, then send what waits.
            if self.publishes.is_flying() {
                let landing = self.publishes.landed().await;
                self.publishes_landed(landing);
            }
            self.send_publishes();
        }
        Ok(())
    }

    fn check_publish(
        &mut self,
        request: PublishCommand,
    ) -> Result<(ChannelName, PublishRequest), Failure> {
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
            .ok_or(Failure::Close(DisconnectCode::BadRequest))?;
        let publication = PublishRequest::new(data)
            .with_info(info)
            .with_history(options.history);
        Ok((channel, publication))
    }

    /// Sends what waits as one batch, unless a batch is in flight (then it goes when that
    /// one lands). Refused publishes with nothing before them are answered at once.
    pub(super) fn send_publishes(&mut self) {
        if self.publishes.is_flying() || self.publishes.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.publishes.waiting);
        let mut requests = Vec::with_capacity(waiting.len());
        let mut entries = Vec::with_capacity(waiting.len());
        for entry in waiting {
            match entry.what {
                What::Send {
                    channel,
                    request,
                    span,
                } => {
                    requests.push((channel.clone(), *request));
                    entries.push(Flying {
                        id: entry.id,
                        started: entry.started,
                        sent: Some((channel, span)),
                        refused: None,
                    });
                }
                What::Refused(error) => entries.push(Flying {
                    id: entry.id,
                    started: entry.started,
                    sent: None,
                    refused: Some(error),
                }),
            }
        }
        if requests.is_empty() {
            for entry in entries {
                if let Some(error) = entry.refused {
                    self.reply(entry.id, error);
                }
            }
            return;
        }
        let broker = self.shared.broker.clone();
        self.publishes.flight = Some(Flight {
            entries,
            landing: Box::pin(async move { broker.publish_many(requests).await }),
        });
    }

    /// Answers the batch that landed, in command order, and sends what waited meanwhile.
    pub(super) fn publishes_landed(&mut self, landing: Landing) {
        let Some(flight) = self.publishes.flight.take() else {
            return;
        };
        let mut results = landing.into_iter();
        for Flying {
            id,
            started,
            sent,
            refused,
        } in flight.entries
        {
            if let Some(error) = refused {
                self.reply(id, error);
                continue;
            }
            let result = results.next();
            ::metrics::histogram!(metrics::PUBLISH_DURATION)
                .record(started.elapsed().as_secs_f64());
            match result {
                Some(Ok(_)) => self.reply(id, Reply {}),
                Some(Err(err)) => {
                    let channel = sent.as_ref().map(|(channel, _)| channel.as_str());
                    tracing::warn!(channel, error = %err, "publish failed");
                    self.reply(id, ProtocolError::from(ErrorCode::Internal));
                }
                None => {
                    tracing::error!("publish batch answered fewer publications than sent");
                    self.reply(id, ProtocolError::from(ErrorCode::Internal));
                }
            }
        }
        self.send_publishes();
    }

    /// Waits until every publish received so far was answered.
    pub(super) async fn drain_publishes(&mut self) {
        while !self.publishes.is_idle() {
            self.send_publishes();
            if self.publishes.is_flying() {
                let landing = self.publishes.landed().await;
                self.publishes_landed(landing);
            }
        }
    }
}
