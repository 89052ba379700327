//! Domain events: what tasks-api writes to its outbox and the relay moves to the Redis
//! stream `herald:events:tasks`, and what the notifier consumes (design sections 4, 5, 5a).
//!
//! ```json
//! {"id":"…","type":"task.created","at":"2026-11-22T10:00:00Z",
//!  "actor":{"id":"…","name":"alice"},"task":{…},
//!  "trace":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
//! ```
//! The event id doubles as the publication idempotency key, so a redelivered event never
//! produces a second notification. The trace context carries the W3C trace headers across
//! the outbox and the stream, so one trace spans REST call → notifier → gateway.

#![warn(missing_docs)]

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{EventId, UserId};
use crate::task::Task;

/// Name of the domain-event stream of tasks, as given to the broker: stored under the Redis
/// prefix, so with the default prefix it is the key `herald:events:tasks`. tasks-api's
/// outbox relay appends to it; the notifier reads it through a consumer group.
pub const TASK_EVENTS_STREAM: &str = "events:tasks";

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskEventKind {
    /// `task.created`.
    #[serde(rename = "task.created")]
    Created,
    /// `task.updated`: any change other than the assignee.
    #[serde(rename = "task.updated")]
    Updated,
    /// `task.assigned`: the assignee changed (to someone).
    #[serde(rename = "task.assigned")]
    Assigned,
    /// `task.deleted`: the snapshot is the task as it was when deleted.
    #[serde(rename = "task.deleted")]
    Deleted,
}

impl TaskEventKind {
    /// The wire word (`task.created`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskEventKind::Created => "task.created",
            TaskEventKind::Updated => "task.updated",
            TaskEventKind::Assigned => "task.assigned",
            TaskEventKind::Deleted => "task.deleted",
        }
    }
}

impl fmt::Display for TaskEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event: `{"id","name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's id.
    pub id: UserId,
    /// The user's display name (username).
    pub name: String,
}

/// W3C trace context carried inside events (and as publication tags), so the notifier and
/// the gateway continue the trace of the REST call that caused them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The `traceparent` header value; absent when the request was not traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` header value, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Publication tag (and header) name of the trace parent.
    pub const TRACEPARENT: &'static str = "traceparent";
    /// Publication tag (and header) name of the trace state.
    pub const TRACESTATE: &'static str = "tracestate";

    /// A context with just a `traceparent`.
    pub fn from_traceparent(traceparent: impl Into<String>) -> Self {
        Self {
            traceparent: Some(traceparent.into()),
            tracestate: None,
        }
    }

    /// Whether there is nothing to propagate.
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.tracestate.is_none()
    }

    /// The context as `(name, value)` pairs, for publication tags or headers.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (Self::TRACEPARENT, self.traceparent.as_deref()),
            (Self::TRACESTATE, self.tracestate.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
    }
}

/// One domain event about a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Unique id; the publication idempotency key.
    pub id: EventId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: TaskEventKind,
    /// When it happened, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it.
    pub actor: Actor,
    /// The task after the change (before it, for a deletion).
    pub task: Task,
    /// Trace context of the request that caused it; `{}` when untraced.
    #[serde(default)]
    pub trace: TraceContext,
}

impl DomainEvent {
    /// A new event with a fresh id, happening now.
    pub fn new(kind: TaskEventKind, actor: Actor, task: Task, trace: TraceContext) -> Self {
        Self {
            id: EventId::new(),
            kind,
            at: OffsetDateTime::now_utc(),
            actor,
            task,
            trace,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::task::TaskStatus;

    const FIXTURE: &str = r#"{
        "id": "0191e0c4-7d2a-7c3e-9b1a-0000000000e1",
        "type": "task.assigned",
        "at": "2026-11-22T10:01:00Z",
        "actor": {"id": "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c", "name": "alice"},
        "task": {
            "id": "0191e0c4-7d2a-7c3e-9b1a-000000000001",
            "title": "Write docs",
            "description": "the README",
            "status": "todo",
            "assignee": "0191e0c4-7d2a-7c3e-9b1a-00000000b0b0",
            "created_by": "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c",
            "created_at": "2026-11-22T10:00:00Z",
            "updated_at": "2026-11-22T10:01:00Z",
            "version": 2
        },
        "trace": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    }"#;

    #[test]
    fn an_event_round_trips_through_the_design_shape() {
        let event: DomainEvent = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(event.kind, TaskEventKind::Assigned);
        assert_eq!(event.at, datetime!(2026-11-22 10:01:00 UTC));
        assert_eq!(event.actor.name, "alice");
        assert_eq!(event.task.status, TaskStatus::Todo);
        assert_eq!(
            event.trace.traceparent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let expected: Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), expected);
    }

    #[test]
    fn every_kind_uses_its_dotted_word() {
        for (kind, word) in [
            (TaskEventKind::Created, "task.created"),
            (TaskEventKind::Updated, "task.updated"),
            (TaskEventKind::Assigned, "task.assigned"),
            (TaskEventKind::Deleted, "task.deleted"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(word));
            assert_eq!(kind.to_string(), word);
            assert_eq!(
                serde_json::from_value::<TaskEventKind>(json!(word)).unwrap(),
                kind
            );
        }
        assert!(serde_json::from_value::<TaskEventKind>(json!("task.moved")).is_err());
    }

    #[test]
    fn an_untraced_event_writes_an_empty_trace_and_accepts_a_missing_one() {
        let mut value: Value = serde_json::from_str(FIXTURE).unwrap();
        value.as_object_mut().unwrap().remove("trace");
        let event: DomainEvent = serde_json::from_value(value).unwrap();
        assert!(event.trace.is_empty());
        assert_eq!(serde_json::to_value(&event).unwrap()["trace"], json!({}));
    }

    #[test]
    fn trace_pairs_list_only_present_headers() {
        let trace = TraceContext::from_traceparent("00-a-b-01");
        assert_eq!(
            trace.pairs().collect::<Vec<_>>(),
            [("traceparent", "00-a-b-01")]
        );
        assert_eq!(TraceContext::default().pairs().count(), 0);
    }
}
