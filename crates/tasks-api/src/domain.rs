//! Domain types parsed once at the edge (style rule 4): a [`TaskTitle`] that exists is
//! valid, a [`NewTask`] or [`TaskPatch`] holds only parsed fields, and request bodies keep
//! plain strings only until they are converted here.
//!
//! A patch is a JSON merge patch (RFC 7396): a member that is absent leaves the field
//! unchanged, `null` removes it (`"assignee": null` unassigns, `"description": null` empties
//! the description) and a value replaces it. `title` and `status` cannot be removed.

use std::fmt;
use std::ops::RangeInclusive;

use herald_common::events::TaskEventKind;
use herald_common::ids::UserId;
use herald_common::task::{Task, TaskStatus};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

/// Allowed length of a title, in characters (after trimming surrounding whitespace).
pub const TITLE_LENGTH: RangeInclusive<usize> = 1..=200;

/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 10_000;

/// Why a field was refused; [`InvalidField::as_str`] is the `details` value of the 422
/// answer (`{"title": "too_long"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    /// Empty (or only whitespace) where text is required.
    #[error("too short")]
    TooShort,
    /// More characters than allowed.
    #[error("too long")]
    TooLong,
    /// Not one of the accepted values or forms.
    #[error("invalid")]
    Invalid,
    /// `null` for a field that cannot be removed.
    #[error("required")]
    Required,
}

impl InvalidField {
    /// The stable word used in error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::Invalid => "invalid",
            Self::Required => "required",
        }
    }
}

/// Fields that failed validation, in request order: `(field, reason)`.
pub type FieldErrors = Vec<(&'static str, InvalidField)>;

/// A valid title: 1–200 characters once surrounding whitespace is trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        if length < *TITLE_LENGTH.start() {
            return Err(InvalidField::TooShort);
        }
        if length > *TITLE_LENGTH.end() {
            return Err(InvalidField::TooLong);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The title as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TaskTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid description: at most 10 000 characters, kept as written (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    /// Checks `raw`.
    pub fn parse(raw: String) -> Result<Self, InvalidField> {
        if raw.chars().count() > DESCRIPTION_MAX {
            return Err(InvalidField::TooLong);
        }
        Ok(Self(raw))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Parses a status word (`todo`, `in_progress`, `done`).
pub fn parse_status(raw: &str) -> Result<TaskStatus, InvalidField> {
    raw.parse().map_err(|_| InvalidField::Invalid)
}

/// Parses a user id (a hyphenated UUID).
pub fn parse_user(raw: &str) -> Result<UserId, InvalidField> {
    UserId::parse(raw).map_err(|_| InvalidField::Invalid)
}

/// A task about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Title.
    pub title: TaskTitle,
    /// Description (empty when none was given).
    pub description: TaskDescription,
    /// Initial status (`todo` when none was given).
    pub status: TaskStatus,
    /// Initial assignee.
    pub assignee: Option<UserId>,
}

impl NewTask {
    /// Parses the fields of a create request, collecting every invalid one.
    pub fn parse(
        title: &str,
        description: Option<String>,
        status: Option<&str>,
        assignee: Option<&str>,
    ) -> Result<Self, FieldErrors> {
        let mut invalid = FieldErrors::new();
        let title = TaskTitle::parse(title)
            .map_err(|e| invalid.push(("title", e)))
            .ok();
        let description = TaskDescription::parse(description.unwrap_or_default())
            .map_err(|e| invalid.push(("description", e)))
            .ok();
        let status = status
            .map(parse_status)
            .transpose()
            .map_err(|e| invalid.push(("status", e)))
            .ok();
        let assignee = assignee
            .map(parse_user)
            .transpose()
            .map_err(|e| invalid.push(("assignee", e)))
            .ok();
        match (title, description, status, assignee) {
            (Some(title), Some(description), Some(status), Some(assignee))
                if invalid.is_empty() =>
            {
                Ok(Self {
                    title,
                    description,
                    status: status.unwrap_or_default(),
                    assignee,
                })
            }
            _ => Err(invalid),
        }
    }

    /// The task this creates: version 1, created and updated `now` by `creator`.
    pub fn into_task(self, creator: UserId, now: OffsetDateTime) -> Task {
        Task {
            id: herald_common::ids::TaskId::new(),
            title: self.title.into_string(),
            description: self.description.into_string(),
            status: self.status,
            assignee: self.assignee,
            created_by: creator,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// One member of a JSON merge patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// The member is absent: leave the field alone.
    #[default]
    Absent,
    /// The member is `null`: remove the field.
    Null,
    /// The member has a value: replace the field.
    Value(T),
}

impl<T> Patch<T> {
    /// Converts the value, keeping absence and `null`.
    pub fn map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Self::Absent => Patch::Absent,
            Self::Null => Patch::Null,
            Self::Value(value) => Patch::Value(f(value)?),
        })
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    /// Only called for a member that is present (absent members take the default), so
    /// `None` here means `null`. Use with `#[serde(default)]`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Self::Value(value),
            None => Self::Null,
        })
    }
}

/// A parsed merge patch of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    /// New title.
    pub title: Option<TaskTitle>,
    /// New description (`null` in the patch gives the empty one).
    pub description: Option<TaskDescription>,
    /// New status.
    pub status: Option<TaskStatus>,
    /// New assignee: `Some(None)` unassigns.
    pub assignee: Option<Option<UserId>>,
}

impl TaskPatch {
    /// Parses the members of a patch request, collecting every invalid one.
    pub fn parse(
        title: Patch<String>,
        description: Patch<String>,
        status: Patch<String>,
        assignee: Patch<String>,
    ) -> Result<Self, FieldErrors> {
        let mut invalid = FieldErrors::new();
        let mut patch = Self::default();
        match title.map(|raw| TaskTitle::parse(&raw)) {
            Ok(Patch::Absent) => {}
            Ok(Patch::Null) => invalid.push(("title", InvalidField::Required)),
            Ok(Patch::Value(title)) => patch.title = Some(title),
            Err(e) => invalid.push(("title", e)),
        }
        match description.map(TaskDescription::parse) {
            Ok(Patch::Absent) => {}
            Ok(Patch::Null) => patch.description = Some(TaskDescription::default()),
            Ok(Patch::Value(description)) => patch.description = Some(description),
            Err(e) => invalid.push(("description", e)),
        }
        match status.map(|raw| parse_status(&raw)) {
            Ok(Patch::Absent) => {}
            Ok(Patch::Null) => invalid.push(("status", InvalidField::Required)),
            Ok(Patch::Value(status)) => patch.status = Some(status),
            Err(e) => invalid.push(("status", e)),
        }
        match assignee.map(|raw| parse_user(&raw)) {
            Ok(Patch::Absent) => {}
            Ok(Patch::Null) => patch.assignee = Some(None),
            Ok(Patch::Value(user)) => patch.assignee = Some(Some(user)),
            Err(e) => invalid.push(("assignee", e)),
        }
        if invalid.is_empty() {
            Ok(patch)
        } else {
            Err(invalid)
        }
    }

    /// The task after the patch, with its next version and `now` as `updated_at`, and the
    /// kind of event the change is; `None` when the patch changes nothing (then nothing is
    /// written, the version stays and no event is sent).
    ///
    /// A change that gives the task to someone (a new, non-null assignee) is
    /// `task.assigned`, whatever else changed with it; every other change, unassigning
    /// included, is `task.updated`.
    pub fn apply(&self, task: &Task, now: OffsetDateTime) -> Option<(Task, TaskEventKind)> {
        let mut next = task.clone();
        if let Some(title) = &self.title {
            next.title = title.as_str().to_owned();
        }
        if let Some(description) = &self.description {
            next.description = description.as_str().to_owned();
        }
        if let Some(status) = self.status {
            next.status = status;
        }
        if let Some(assignee) = self.assignee {
            next.assignee = assignee;
        }
        if next == *task {
            return None;
        }
        let kind = match next.assignee {
            Some(assignee) if task.assignee != Some(assignee) => TaskEventKind::Assigned,
            _ => TaskEventKind::Updated,
        };
        next.updated_at = now;
        next.version = task.version + 1;
        Some((next, kind))
    }
}

/// Who may do what to a task (design: only the creator or the assignee may update, only the
/// creator may delete).
pub fn may_update(task: &Task, user: &UserId) -> bool {
    task.created_by == *user || task.assignee.as_ref() == Some(user)
}

/// Whether `user` may delete `task`: only its creator.
pub fn may_delete(task: &Task, user: &UserId) -> bool {
    task.created_by == *user
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;

    fn task() -> Task {
        NewTask::parse("Write docs", None, None, None)
            .unwrap()
            .into_task(UserId::new(), datetime!(2026-11-22 10:00 UTC))
    }

    #[test]
    fn titles_are_trimmed_and_must_have_1_to_200_characters() {
        assert_eq!(TaskTitle::parse("  hi  ").unwrap().as_str(), "hi");
        assert_eq!(TaskTitle::parse("   "), Err(InvalidField::TooShort));
        assert_eq!(TaskTitle::parse(""), Err(InvalidField::TooShort));
        assert!(TaskTitle::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            TaskTitle::parse(&"é".repeat(201)),
            Err(InvalidField::TooLong)
        );
    }

    #[test]
    fn descriptions_may_have_at_most_10_000_characters() {
        assert!(TaskDescription::parse("ü".repeat(10_000)).is_ok());
        assert_eq!(
            TaskDescription::parse("ü".repeat(10_001)),
            Err(InvalidField::TooLong)
        );
    }

    #[test]
    fn a_new_task_reports_every_invalid_field() {
        let err =
            NewTask::parse("", Some("x".repeat(10_001)), Some("doing"), Some("bob")).unwrap_err();
        assert_eq!(
            err,
            [
                ("title", InvalidField::TooShort),
                ("description", InvalidField::TooLong),
                ("status", InvalidField::Invalid),
                ("assignee", InvalidField::Invalid),
            ]
        );
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        let task = task();
        assert_eq!(
            TaskPatch::default().apply(&task, datetime!(2026-11-22 11:00 UTC)),
            None
        );
        let same = TaskPatch {
            title: Some(TaskTitle::parse("Write docs").unwrap()),
            ..TaskPatch::default()
        };
        assert_eq!(same.apply(&task, datetime!(2026-11-22 11:00 UTC)), None);
    }

    #[test]
    fn giving_the_task_to_someone_is_an_assignment_and_unassigning_an_update() {
        let task = task();
        let bob = UserId::new();
        let assign = TaskPatch {
            assignee: Some(Some(bob)),
            status: Some(TaskStatus::Done),
            ..TaskPatch::default()
        };
        let (assigned, kind) = assign
            .apply(&task, datetime!(2026-11-22 11:00 UTC))
            .unwrap();
        assert_eq!(kind, TaskEventKind::Assigned);
        assert_eq!(assigned.assignee, Some(bob));
        assert_eq!(assigned.status, TaskStatus::Done);
        assert_eq!(assigned.version, 2);
        assert_eq!(assigned.updated_at, datetime!(2026-11-22 11:00 UTC));

        let unassign = TaskPatch {
            assignee: Some(None),
            ..TaskPatch::default()
        };
        let (unassigned, kind) = unassign
            .apply(&assigned, datetime!(2026-11-22 12:00 UTC))
            .unwrap();
        assert_eq!(kind, TaskEventKind::Updated);
        assert_eq!(unassigned.assignee, None);
        assert_eq!(unassigned.version, 3);
    }

    #[test]
    fn null_removes_optional_fields_and_is_refused_for_required_ones() {
        let patch =
            TaskPatch::parse(Patch::Absent, Patch::Null, Patch::Absent, Patch::Null).unwrap();
        assert_eq!(patch.description, Some(TaskDescription::default()));
        assert_eq!(patch.assignee, Some(None));
        let err =
            TaskPatch::parse(Patch::Null, Patch::Absent, Patch::Null, Patch::Absent).unwrap_err();
        assert_eq!(
            err,
            [
                ("title", InvalidField::Required),
                ("status", InvalidField::Required)
            ]
        );
    }

    #[test]
    fn the_creator_and_the_assignee_may_update_but_only_the_creator_may_delete() {
        let mut task = task();
        let bob = UserId::new();
        task.assignee = Some(bob);
        assert!(may_update(&task, &task.created_by));
        assert!(may_update(&task, &bob));
        assert!(!may_update(&task, &UserId::new()));
        assert!(may_delete(&task, &task.created_by));
        assert!(!may_delete(&task, &bob));
    }
}
