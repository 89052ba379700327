//! Publication payloads: the `data` (and `conn_info`) Herald puts into publications, and
//! the lines of the simple text endpoints (design section 5a).
//!
//! ```text
//! tasks:                   {"type":"task.created","task":{…},"actor":{"id","name"},"text":"New task created: <title>"}
//! notifications#<user id>: {"type":"task.assigned","task":{…},"actor":{"id","name"},"text":"<actor name> assigned you \"<title>\""}
//! chat:<room>:             {"text":"hello"}  with conn_info {"name":"<username>"}
//! ```
//! `/ws/chat/{room}` writes `<username>: <text>` lines; `/ws/notifications/{channel}` writes
//! the publication's `text` when it has one, else its JSON.

#![warn(missing_docs)]

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::channel::ChannelName;
use crate::events::{Actor, DomainEvent, TaskEventKind};
use crate::ids::UserId;
use crate::protocol::{ClientInfo, Publication};
use crate::task::Task;

/// A task notification: the `data` of publications in `tasks` and `notifications#<user>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNotification {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: TaskEventKind,
    /// The task snapshot of the event.
    pub task: Task,
    /// Who did it.
    pub actor: Actor,
    /// One human sentence, shown in feeds and on the simple endpoint.
    pub text: String,
}

impl TaskNotification {
    /// The notification published to the `tasks` channel for `event`, with
    /// [`board_text`] as its text.
    pub fn for_board(event: &DomainEvent) -> Self {
        Self {
            kind: event.kind,
            task: event.task.clone(),
            actor: event.actor.clone(),
            text: board_text(event.kind, &event.task.title),
        }
    }

    /// The notification for the assignee's own feed, when `event` gives the task to
    /// someone: a `task.assigned` event, or a `task.created` one with an assignee. The
    /// result is always of type `task.assigned`, with [`assigned_text`] as its text, and
    /// goes to [`ChannelName::notifications`] of the returned user. Whether to notify
    /// users who assign themselves is the caller's choice.
    pub fn for_assignee(event: &DomainEvent) -> Option<(UserId, Self)> {
        if !matches!(event.kind, TaskEventKind::Assigned | TaskEventKind::Created) {
            return None;
        }
        let assignee = event.task.assignee?;
        let notification = Self {
            kind: TaskEventKind::Assigned,
            task: event.task.clone(),
            actor: event.actor.clone(),
            text: assigned_text(&event.actor.name, &event.task.title),
        };
        Some((assignee, notification))
    }
}

/// The text of a board notification: `New task created: <title>`,
/// `Task updated: <title>`, `Task assigned: <title>`, `Task deleted: <title>`.
pub fn board_text(kind: TaskEventKind, title: &str) -> String {
    match kind {
        TaskEventKind::Created => format!("New task created: {title}"),
        TaskEventKind::Updated => format!("Task updated: {title}"),
        TaskEventKind::Assigned => format!("Task assigned: {title}"),
        TaskEventKind::Deleted => format!("Task deleted: {title}"),
    }
}

/// The text of an assignee's notification: `<actor name> assigned you "<title>"`.
pub fn assigned_text(actor_name: &str, title: &str) -> String {
    format!("{actor_name} assigned you \"{title}\"")
}

/// A chat message: the `data` of publications in `chat:<room>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// What was said.
    pub text: String,
}

/// Connection info of a Herald client: the `conn_info` of publication info, joins,
/// leaves and presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// The user's display name (the JWT `name`).
    pub name: String,
}

impl ConnInfo {
    /// The info encoded once as raw JSON, ready for [`crate::protocol::ClientInfo`].
    pub fn to_raw(&self) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::value::to_raw_value(self)
    }
}

/// Only the parts of a payload the simple endpoints read; everything else is skipped.
#[derive(Deserialize)]
struct TextOnly<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// The `text` of a payload, when it is an object with a string `text` field.
pub fn payload_text(data: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<TextOnly<'_>>(data.get())
        .ok()
        .and_then(|payload| payload.text)
}

/// A line of `/ws/notifications/{channel}`: the publication's `text` when it has one,
/// else its JSON.
pub fn notification_line(publication: &Publication) -> Cow<'_, str> {
    payload_text(&publication.data).unwrap_or(Cow::Borrowed(publication.data.get()))
}

/// A line of `/ws/chat/{room}`: `<username>: <text>`. The name comes from the publisher's
/// `conn_info` (empty when the server published); a payload without `text` is written as
/// its JSON.
pub fn chat_line(publication: &Publication) -> String {
    let name = display_name(publication.info.as_ref());
    let text = notification_line(publication);
    format!("{name}: {text}")
}

/// The line of `/ws/chat/{room}` announcing that someone entered (`* alice joined`) or
/// left (`* alice left`) the room. Server lines start with `* `, chat lines with a name.
pub fn join_leave_line(info: &ClientInfo, joined: bool) -> String {
    let name = display_name(Some(info));
    let name = if name.is_empty() {
        Cow::Borrowed(info.user.as_str())
    } else {
        name
    };
    let verb = if joined { "joined" } else { "left" };
    format!("* {name} {verb}")
}

/// The display name in a client's `conn_info` (empty when there is none).
fn display_name(info: Option<&ClientInfo>) -> Cow<'_, str> {
    info.and_then(|info| info.conn_info.as_deref())
        .and_then(|raw| serde_json::from_str::<NameOnly<'_>>(raw.get()).ok())
        .and_then(|info| info.name)
        .unwrap_or_default()
}

/// The channel an assignee notification goes to: shorthand for
/// [`ChannelName::notifications`].
pub fn assignee_channel(user: &UserId) -> ChannelName {
    ChannelName::notifications(user)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::events::TraceContext;
    use crate::ids::{ClientId, EventId, TaskId};
    use crate::task::TaskStatus;

    fn alice() -> Actor {
        Actor {
            id: UserId::parse("0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c").unwrap(),
            name: "alice".to_owned(),
        }
    }

    fn event(kind: TaskEventKind, assignee: Option<UserId>) -> DomainEvent {
        DomainEvent {
            id: EventId::new(),
            kind,
            at: datetime!(2026-11-22 10:00:00 UTC),
            actor: alice(),
            task: Task {
                id: TaskId::parse("0191e0c4-7d2a-7c3e-9b1a-000000000001").unwrap(),
                title: "Write docs".to_owned(),
                description: String::new(),
                status: TaskStatus::Todo,
                assignee,
                created_by: alice().id,
                created_at: datetime!(2026-11-22 10:00:00 UTC),
                updated_at: datetime!(2026-11-22 10:00:00 UTC),
                version: 1,
            },
            trace: TraceContext::default(),
        }
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn board_notification_has_the_design_shape() {
        let notification = TaskNotification::for_board(&event(TaskEventKind::Created, None));
        let value = serde_json::to_value(&notification).unwrap();
        assert_eq!(value["type"], json!("task.created"));
        assert_eq!(value["text"], json!("New task created: Write docs"));
        assert_eq!(
            value["actor"],
            json!({"id": "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c", "name": "alice"})
        );
        assert_eq!(value["task"]["title"], json!("Write docs"));
        assert_eq!(value.as_object().unwrap().len(), 4);
        let back: TaskNotification = serde_json::from_value(value).unwrap();
        assert_eq!(back, notification);
    }

    #[test]
    fn board_texts_name_the_change() {
        assert_eq!(board_text(TaskEventKind::Updated, "x"), "Task updated: x");
        assert_eq!(board_text(TaskEventKind::Assigned, "x"), "Task assigned: x");
        assert_eq!(board_text(TaskEventKind::Deleted, "x"), "Task deleted: x");
    }

    #[test]
    fn an_assignment_notifies_the_assignee_in_their_feed() {
        let bob = UserId::new();
        let (user, notification) =
            TaskNotification::for_assignee(&event(TaskEventKind::Assigned, Some(bob))).unwrap();
        assert_eq!(user, bob);
        assert_eq!(assignee_channel(&user), ChannelName::notifications(&bob));
        let value = serde_json::to_value(&notification).unwrap();
        assert_eq!(value["type"], json!("task.assigned"));
        assert_eq!(value["text"], json!("alice assigned you \"Write docs\""));

        let created = TaskNotification::for_assignee(&event(TaskEventKind::Created, Some(bob)));
        assert_eq!(created.unwrap().1.kind, TaskEventKind::Assigned);
        assert!(TaskNotification::for_assignee(&event(TaskEventKind::Assigned, None)).is_none());
        assert!(
            TaskNotification::for_assignee(&event(TaskEventKind::Updated, Some(bob))).is_none()
        );
        assert!(
            TaskNotification::for_assignee(&event(TaskEventKind::Deleted, Some(bob))).is_none()
        );
    }

    #[test]
    fn chat_message_and_conn_info_have_the_design_shape() {
        let message: ChatMessage = serde_json::from_str(r#"{"text":"hello","extra":1}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"text":"hello"}"#
        );
        let info = ConnInfo {
            name: "alice".to_owned(),
        }
        .to_raw()
        .unwrap();
        assert_eq!(info.get(), r#"{"name":"alice"}"#);
    }

    fn publication(data: &str, conn_info: Option<&str>) -> Publication {
        Publication {
            offset: 1,
            data: raw(data),
            info: conn_info.map(|conn_info| ClientInfo {
                user: "u".to_owned(),
                client: ClientId::new().to_string(),
                conn_info: Some(raw(conn_info)),
                chan_info: None,
            }),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn join_and_leave_lines_name_the_user() {
        let mut info = ClientInfo {
            user: "u-1".to_owned(),
            client: ClientId::new().to_string(),
            conn_info: Some(raw(r#"{"name":"alice"}"#)),
            chan_info: None,
        };
        assert_eq!(join_leave_line(&info, true), "* alice joined");
        assert_eq!(join_leave_line(&info, false), "* alice left");
        info.conn_info = None;
        assert_eq!(join_leave_line(&info, true), "* u-1 joined");
    }

    #[test]
    fn simple_endpoint_lines_use_the_text_when_there_is_one() {
        let chat = publication(r#"{"text":"hi \"there\""}"#, Some(r#"{"name":"alice"}"#));
        assert_eq!(chat_line(&chat), "alice: hi \"there\"");
        let server = publication(r#"{"text":"maintenance"}"#, None);
        assert_eq!(chat_line(&server), ": maintenance");

        let no_text = publication(r#"{"n":1}"#, None);
        assert_eq!(notification_line(&no_text), r#"{"n":1}"#);
        let not_a_string = publication(r#"{"text":5}"#, None);
        assert_eq!(notification_line(&not_a_string), r#"{"text":5}"#);
        let array = publication("[1,2]", None);
        assert_eq!(notification_line(&array), "[1,2]");
        let task = serde_json::to_string(&TaskNotification::for_board(&event(
            TaskEventKind::Created,
            None,
        )))
        .unwrap();
        assert_eq!(
            notification_line(&publication(&task, None)),
            "New task created: Write docs"
        );
        let value: Value = serde_json::from_str(&task).unwrap();
        assert_eq!(value["text"], json!("New task created: Write docs"));
    }
}
