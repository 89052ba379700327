//! What one domain event publishes (design section 5a), as plain data: no I/O here.
//!
//! - Every event goes to the board channel `tasks` as
//!   `{"type","task","actor","text"}`, the text naming the change
//!   (`New task created: <title>`, `Task updated: <title>`, ...).
//! - An event that gives the task to someone (`task.assigned`, or `task.created` with an
//!   assignee) also goes to `notifications#<assignee id>` as a `task.assigned` notification
//!   with the text `<actor> assigned you "<title>"`. Following the design literally, this
//!   includes users who assign a task to themselves, unless
//!   [`crate::settings::ConsumerSettings::notify_self_assignment`] is off.
//!
//! Each publication carries the event id as its idempotency key (scoped to its channel by
//! the broker, so the two publications of one event dedupe independently), and the trace
//! context and event id as tags.

use std::time::Duration;

use herald_broker::PublishRequest;
use herald_common::channel::ChannelName;
use herald_common::events::DomainEvent;
use herald_common::payload::TaskNotification;
use serde_json::value::RawValue;

use crate::settings::Settings;

/// Publication tag naming the event a notification comes from.
pub const EVENT_ID_TAG: &str = "event_id";

/// One publication to make.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where.
    pub channel: ChannelName,
    /// What.
    pub request: PublishRequest,
}

/// The publications of `event`, board first.
pub fn publications(
    event: &DomainEvent,
    settings: &Settings,
) -> Result<Vec<Outgoing>, serde_json::Error> {
    let window = settings.notifier.idempotency_window;
    let mut outgoing = vec![Outgoing {
        channel: ChannelName::tasks(),
        request: request(
            event,
            &TaskNotification::for_board(event),
            settings.channels.tasks.policy(),
            window,
        )?,
    }];
    if let Some((assignee, notification)) = TaskNotification::for_assignee(event)
        && (settings.notifier.notify_self_assignment || assignee != event.actor.id)
    {
        outgoing.push(Outgoing {
            channel: ChannelName::notifications(&assignee),
            request: request(
                event,
                &notification,
                settings.channels.notifications.policy(),
                window,
            )?,
        });
    }
    Ok(outgoing)
}

fn request(
    event: &DomainEvent,
    notification: &TaskNotification,
    history: herald_broker::HistoryPolicy,
    window: Duration,
) -> Result<PublishRequest, serde_json::Error> {
    let data: Box<RawValue> = serde_json::value::to_raw_value(notification)?;
    let mut request = PublishRequest::new(data)
        .with_history(history)
        .with_idempotency_key(event.id.to_string())
        .with_idempotency_window(window)
        .with_tag(EVENT_ID_TAG, event.id.to_string());
    for (name, value) in event.trace.pairs() {
        request = request.with_tag(name, value);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use herald_common::events::{Actor, TaskEventKind, TraceContext};
    use herald_common::ids::{EventId, TaskId, UserId};
    use herald_common::task::{Task, TaskStatus};
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;

    fn event(kind: TaskEventKind, actor: UserId, assignee: Option<UserId>) -> DomainEvent {
        DomainEvent {
            id: EventId::new(),
            kind,
            at: datetime!(2026-11-22 10:00 UTC),
            actor: Actor {
                id: actor,
                name: "alice".to_owned(),
            },
            task: Task {
                id: TaskId::new(),
                title: "Ship it".to_owned(),
                description: String::new(),
                status: TaskStatus::Todo,
                assignee,
                created_by: actor,
                created_at: datetime!(2026-11-22 10:00 UTC),
                updated_at: datetime!(2026-11-22 10:00 UTC),
                version: 1,
            },
            trace: TraceContext::from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        }
    }

    fn data(outgoing: &Outgoing) -> Value {
        serde_json::from_str(outgoing.request.data.get()).unwrap()
    }

    #[test]
    fn a_new_unassigned_task_goes_to_the_board_only() {
        let event = event(TaskEventKind::Created, UserId::new(), None);
        let out = publications(&event, &Settings::default()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, ChannelName::tasks());
        assert_eq!(data(&out[0])["text"], json!("New task created: Ship it"));
        assert_eq!(data(&out[0])["type"], json!("task.created"));
        let request = &out[0].request;
        assert_eq!(
            request.idempotency_key.as_deref(),
            Some(event.id.to_string().as_str())
        );
        assert_eq!(request.history.size, 300);
        assert_eq!(request.tags[EVENT_ID_TAG], event.id.to_string());
        assert_eq!(
            request.tags["traceparent"],
            event.trace.traceparent.clone().unwrap()
        );
    }

    #[test]
    fn an_assignment_also_goes_to_the_assignee_with_a_week_of_history() {
        let bob = UserId::new();
        let event = event(TaskEventKind::Assigned, UserId::new(), Some(bob));
        let out = publications(&event, &Settings::default()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(data(&out[0])["text"], json!("Task assigned: Ship it"));
        assert_eq!(out[1].channel, ChannelName::notifications(&bob));
        assert_eq!(
            data(&out[1])["text"],
            json!("alice assigned you \"Ship it\"")
        );
        assert_eq!(data(&out[1])["type"], json!("task.assigned"));
        assert_eq!(
            out[1].request.history.ttl,
            Duration::from_secs(7 * 24 * 60 * 60)
        );
        assert_eq!(
            out[1].request.idempotency_key,
            out[0].request.idempotency_key
        );
    }

    #[test]
    fn updates_and_deletions_of_assigned_tasks_go_to_the_board_only() {
        for kind in [TaskEventKind::Updated, TaskEventKind::Deleted] {
            let event = event(kind, UserId::new(), Some(UserId::new()));
            assert_eq!(
                publications(&event, &Settings::default()).unwrap().len(),
                1,
                "{kind}"
            );
        }
    }

    #[test]
    fn self_assignment_notifies_unless_turned_off() {
        let alice = UserId::new();
        let event = event(TaskEventKind::Created, alice, Some(alice));
        assert_eq!(publications(&event, &Settings::default()).unwrap().len(), 2);
        let mut settings = Settings::default();
        settings.notifier.notify_self_assignment = false;
        assert_eq!(publications(&event, &settings).unwrap().len(), 1);
    }
}
