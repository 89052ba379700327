//! Traces at the edge (design section 7), when `herald_service::telemetry` exports them.
//!
//! - `gateway.publish`: a client's publish, the root of a new trace. Its W3C context goes into
//!   the publication's tags (`traceparent`, `tracestate`), so it travels through Redis to
//!   every node.
//! - `gateway.deliver`: one publication delivered to this node's subscribers, child of the
//!   context in the publication's tags (the notifier's `notifier.publish`, or a client's
//!   `gateway.publish` on any node), with `recipients`: the local subscriptions of the channel.
//!
//! The fan-out is the hot path: when export is off, or a publication carries no trace
//! context, [`deliver_span`] is one atomic load and builds nothing.

use herald_broker::PublishRequest;
use herald_common::channel::ChannelName;
use herald_common::events::TraceContext;
use herald_common::protocol::Publication;
use herald_service::trace;
use tracing::Span;
use tracing::span::EnteredSpan;

use crate::fanout::hub::Hub;

/// The entered `gateway.deliver` span of `publication`, or `None` (nothing built) when traces
/// are off or the publication carries no trace context. Drop it when the delivery is done.
pub(crate) fn deliver_span(
    hub: &Hub,
    channel: &ChannelName,
    publication: &Publication,
) -> Option<EnteredSpan> {
    if !trace::enabled() || !publication.tags.contains_key(TraceContext::TRACEPARENT) {
        return None;
    }
    let recipients = hub
        .with_channel(channel.as_str(), |entry| entry.members.len())
        .unwrap_or(0);
    let span = tracing::info_span!(
        "gateway.deliver",
        otel.kind = "consumer",
        messaging.destination.name = %channel,
        recipients,
    );
    trace::set_parent_from_tags(&span, &publication.tags);
    Some(span.entered())
}

/// The `gateway.publish` span of a client's publish to `channel`, and the publication with
/// the span's context in its tags. Without trace export: a disabled span and the publication
/// as it was.
pub(crate) fn publish_span(
    channel: &ChannelName,
    mut publication: PublishRequest,
) -> (PublishRequest, Span) {
    if !trace::enabled() {
        return (publication, Span::none());
    }
    // A new root: a client's frame carries no trace context.
    let span = tracing::info_span!(
        parent: None,
        "gateway.publish",
        otel.kind = "producer",
        messaging.destination.name = %channel,
    );
    if let Some(context) = trace::context_of(&span) {
        for (name, value) in context.pairs() {
            publication = publication.with_tag(name, value);
        }
    }
    (publication, span)
}
