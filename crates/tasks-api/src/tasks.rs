//! The operations on tasks, between the HTTP handlers and the store: permissions,
//! preconditions, optimistic concurrency, idempotency and the domain event of each change.
//!
//! Every change goes the same way: read the task, check who may change it and the
//! `If-Match` precondition, compute the new state, then write it conditionally on the
//! version that was read, together with its outbox event. If another writer got there
//! first the whole step is repeated on the new state (a stale `If-Match` then gives 412).
//!
//! The write runs in an `outbox.insert` span; when traces are exported, the event carries
//! that span's context, so everything the event causes joins the request's trace.

use herald_common::events::{Actor, DomainEvent, TaskEventKind, TraceContext};
use herald_common::ids::{EventId, TaskId, UserId};
use herald_common::task::{Task, TaskStatus};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::domain::{InvalidField, NewTask, TaskPatch, may_delete, may_update};
use crate::error::TasksError;
use crate::state::TasksApi;
use crate::store::{
    self, CreateOutcome, IdempotencyRecord, ListPosition, OutboxEvent, TaskQuery, WriteOutcome,
};

/// How many times a change is recomputed when concurrent writers keep winning.
const MAX_WRITE_ATTEMPTS: usize = 5;

/// Longest `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A valid `Idempotency-Key`: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty()
            || raw.len() > MAX_IDEMPOTENCY_KEY_LEN
            || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidField::Invalid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `If-Match` precondition of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// One of these versions (the ETags `"<version>"`); an empty list matches nothing.
    Versions(Vec<u64>),
}

impl IfMatch {
    /// Parses a header value: `*`, or a comma-separated list of entity tags. Weak tags
    /// (`W/"3"`) never match (RFC 9110 uses the strong comparison for `If-Match`), and
    /// neither do tags that are not versions.
    pub fn parse(raw: &str) -> Self {
        if raw.trim() == "*" {
            return Self::Any;
        }
        let versions = raw
            .split(',')
            .map(str::trim)
            .filter_map(|tag| tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
            .collect();
        Self::Versions(versions)
    }

    /// Whether a task at `version` satisfies the precondition.
    pub fn matches(&self, version: u64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The task as created (for a replay: as the first request created it).
    pub task: Task,
    /// Whether this answers a retry: nothing new was created.
    pub replayed: bool,
}

/// Filters of a list request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilters {
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this user.
    pub assignee: Option<UserId>,
    /// Only tasks created by this user.
    pub created_by: Option<UserId>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The tasks, newest first.
    pub items: Vec<Task>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ListPosition>,
}

/// What an idempotent create remembers of its request: the parsed fields, so that
/// formatting differences (member order, whitespace) are still the same request.
#[derive(Serialize)]
struct Fingerprint<'a> {
    title: &'a str,
    description: &'a str,
    status: TaskStatus,
    assignee: Option<UserId>,
}

impl TasksApi {
    /// Creates a task for `actor`. With an idempotency key already used by this user, the
    /// first result comes back and nothing is created ([`TasksError::IdempotencyKeyReused`]
    /// when the first request was a different one).
    pub async fn create_task(
        &self,
        actor: &Actor,
        new: NewTask,
        key: Option<IdempotencyKey>,
        trace: TraceContext,
    ) -> Result<Created, TasksError> {
        let request_hash: [u8; 32] = Sha256::digest(
            serde_json::to_vec(&Fingerprint {
                title: new.title.as_str(),
                description: new.description.as_str(),
                status: new.status,
                assignee: new.assignee,
            })
            .map_err(anyhow::Error::from)?,
        )
        .into();
        let now = store::now();
        let task = new.into_task(actor.id, now);
        let span = insert_span(TaskEventKind::Created, &task);
        let event = outbox_event(TaskEventKind::Created, actor, &task, traced(&span, trace))?;
        let record = key
            .map(|key| {
                anyhow::Ok(IdempotencyRecord {
                    user_id: actor.id,
                    key: key.0,
                    request_hash,
                    response: serde_json::to_string(&task)?,
                })
            })
            .transpose()?;
        match self
            .store
            .create_task(&task, &event, record.as_ref())
            .instrument(span)
            .await?
        {
            CreateOutcome::Created => {
                self.written(TaskEventKind::Created);
                tracing::info!(task = %task.id, user = %actor.id, "task created");
                Ok(Created {
                    task,
                    replayed: false,
                })
            }
            CreateOutcome::Replayed {
                request_hash: first,
                response,
            } => {
                if first.as_slice() != request_hash.as_slice() {
                    return Err(TasksError::IdempotencyKeyReused);
                }
                let task = serde_json::from_str(&response).map_err(|err| {
                    anyhow::Error::from(err).context("stored idempotent response")
                })?;
                metrics::counter!("herald_tasks_idempotent_replays_total").increment(1);
                Ok(Created {
                    task,
                    replayed: true,
                })
            }
        }
    }

    /// The task with this id.
    pub async fn task(&self, id: TaskId) -> Result<Task, TasksError> {
        self.store.task(id).await?.ok_or(TasksError::NotFound)
    }

    /// One page of tasks matching `filters`, newest first, after `cursor`.
    pub async fn list_tasks(
        &self,
        filters: ListFilters,
        cursor: Option<ListPosition>,
        limit: u32,
    ) -> Result<Page, TasksError> {
        // One more than asked tells whether there is a next page without counting.
        let mut items = self
            .store
            .list_tasks(&TaskQuery {
                status: filters.status,
                assignee: filters.assignee,
                created_by: filters.created_by,
                before: cursor,
                limit: limit.saturating_add(1),
            })
            .await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|task| ListPosition {
                created_at: task.created_at,
                id: task.id,
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Applies `patch` to the task for `actor` (its creator or assignee). A patch that
    /// changes nothing returns the task as it is, without a new version or event.
    pub async fn update_task(
        &self,
        actor: &Actor,
        id: TaskId,
        patch: &TaskPatch,
        if_match: Option<&IfMatch>,
        trace: TraceContext,
    ) -> Result<Task, TasksError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.task(id).await?;
            if !may_update(&current, &actor.id) {
                return Err(TasksError::Forbidden(
                    "only the task's creator or assignee may change it",
                ));
            }
            check_precondition(if_match, &current)?;
            let Some((next, kind)) = patch.apply(&current, store::now()) else {
                return Ok(current);
            };
            let span = insert_span(kind, &next);
            let event = outbox_event(kind, actor, &next, traced(&span, trace.clone()))?;
            match self
                .store
                .update_task(&next, current.version, &event)
                .instrument(span)
                .await?
            {
                WriteOutcome::Done => {
                    self.written(kind);
                    tracing::info!(task = %id, user = %actor.id, version = next.version, event = %kind, "task updated");
                    return Ok(next);
                }
                WriteOutcome::VersionChanged => continue,
            }
        }
        Err(TasksError::Contended)
    }

    /// Deletes the task for `actor` (its creator only).
    pub async fn delete_task(
        &self,
        actor: &Actor,
        id: TaskId,
        if_match: Option<&IfMatch>,
        trace: TraceContext,
    ) -> Result<(), TasksError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.task(id).await?;
            if !may_delete(&current, &actor.id) {
                return Err(TasksError::Forbidden(
                    "only the task's creator may delete it",
                ));
            }
            check_precondition(if_match, &current)?;
            let span = insert_span(TaskEventKind::Deleted, &current);
            let event = outbox_event(
                TaskEventKind::Deleted,
                actor,
                &current,
                traced(&span, trace.clone()),
            )?;
            match self
                .store
                .delete_task(id, current.version, &event)
                .instrument(span)
                .await?
            {
                WriteOutcome::Done => {
                    self.written(TaskEventKind::Deleted);
                    tracing::info!(task = %id, user = %actor.id, "task deleted");
                    return Ok(());
                }
                WriteOutcome::VersionChanged => continue,
            }
        }
        Err(TasksError::Contended)
    }

    /// After a committed change: wake the relay and count the event.
    fn written(&self, kind: TaskEventKind) {
        self.relay_wake.notify_one();
        metrics::counter!("herald_tasks_events_total", "type" => kind.as_str()).increment(1);
    }
}

fn check_precondition(if_match: Option<&IfMatch>, current: &Task) -> Result<(), TasksError> {
    match if_match {
        Some(condition) if !condition.matches(current.version) => {
            Err(TasksError::PreconditionFailed {
                current: current.version,
            })
        }
        _ => Ok(()),
    }
}

/// The span of one change's transaction: the task and its event written to the outbox.
fn insert_span(kind: TaskEventKind, task: &Task) -> tracing::Span {
    tracing::info_span!(
        "outbox.insert",
        "event.type" = kind.as_str(),
        task.id = %task.id,
    )
}

/// The trace context the event carries: the insert span's when traces are exported (so the
/// relay's and the notifier's spans hang below it), else the request's.
fn traced(span: &tracing::Span, request: TraceContext) -> TraceContext {
    herald_service::trace::context_of(span).unwrap_or(request)
}

/// The domain event of a change, ready for the outbox. It happens at the task's
/// `updated_at` (for a deletion: now).
fn outbox_event(
    kind: TaskEventKind,
    actor: &Actor,
    task: &Task,
    trace: TraceContext,
) -> Result<OutboxEvent, TasksError> {
    let at = match kind {
        TaskEventKind::Deleted => store::now(),
        _ => task.updated_at,
    };
    let event = DomainEvent {
        id: EventId::new(),
        kind,
        at,
        actor: actor.clone(),
        task: task.clone(),
        trace,
    };
    Ok(OutboxEvent {
        event_id: *event.id.as_uuid(),
        payload: serde_json::to_string(&event).map_err(anyhow::Error::from)?,
        created_at: at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn if_match_compares_strong_version_tags() {
        assert!(IfMatch::parse("\"3\"").matches(3));
        assert!(IfMatch::parse("\"1\", \"3\"").matches(3));
        assert!(IfMatch::parse("*").matches(7));
        assert!(!IfMatch::parse("\"2\"").matches(3));
        assert!(!IfMatch::parse("W/\"3\"").matches(3));
        assert!(!IfMatch::parse("3").matches(3));
        assert!(!IfMatch::parse("\"abc\"").matches(3));
    }

    #[test]
    fn idempotency_keys_are_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a1b2-c3").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "with space", "ünïcode"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidField::Invalid),
                "{bad}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
