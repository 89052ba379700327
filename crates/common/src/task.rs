//! The task snapshot: what tasks-api returns, what domain events carry and what the
//! notifier publishes (design section 5a).
//!
//! ```json
//! {"id":"…","title":"Write docs","description":"","status":"todo","assignee":null,
//!  "created_by":"…","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z",
//!  "version":1}
//! ```
//! `assignee` is always written (`null` when unassigned); times are RFC 3339.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{TaskId, UserId};

/// Where a task is on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// `todo` (the default for a new task).
    #[default]
    Todo,
    /// `in_progress`.
    InProgress,
    /// `done`.
    Done,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [TaskStatus; 3] = [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Done];

    /// The wire word: `todo`, `in_progress` or `done` (also the query-string filter).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not one of `todo`, `in_progress`, `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status must be one of todo, in_progress, done")]
pub struct TaskStatusError;

impl FromStr for TaskStatus {
    type Err = TaskStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(TaskStatusError)
    }
}

/// A task as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// The title (tasks-api keeps it to 1-200 characters).
    pub title: String,
    /// Free text; empty when none was given.
    #[serde(default)]
    pub description: String,
    /// Board column.
    pub status: TaskStatus,
    /// Who the task is assigned to; written as `null` when nobody.
    pub assignee: Option<UserId>,
    /// Who created it.
    pub created_by: UserId,
    /// Creation time, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Optimistic-concurrency version: 1 on creation, +1 per change; the `ETag`.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;

    const FIXTURE: &str = r#"{
        "id": "0191e0c4-7d2a-7c3e-9b1a-000000000001",
        "title": "Write docs",
        "description": "",
        "status": "in_progress",
        "assignee": null,
        "created_by": "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c",
        "created_at": "2026-11-22T10:00:00Z",
        "updated_at": "2026-11-22T10:05:30.5Z",
        "version": 2
    }"#;

    #[test]
    fn a_task_round_trips_through_the_design_shape() {
        let task: Task = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(task.status, TaskStatus::InProgress);
        assert_eq!(task.assignee, None);
        assert_eq!(task.created_at, datetime!(2026-11-22 10:00:00 UTC));
        assert_eq!(task.updated_at, datetime!(2026-11-22 10:05:30.5 UTC));
        let encoded = serde_json::to_value(&task).unwrap();
        let expected: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(encoded, expected);
        assert!(encoded.as_object().unwrap().contains_key("assignee"));
    }

    #[test]
    fn statuses_use_their_snake_case_words() {
        for status in TaskStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(status));
        }
        assert_eq!("doing".parse::<TaskStatus>(), Err(TaskStatusError));
        assert!(serde_json::from_str::<TaskStatus>("\"Done\"").is_err());
    }
}
