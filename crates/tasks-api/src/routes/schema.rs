//! OpenAPI schemas of the wire types that live in herald-common, which stays free of
//! documentation crates. Each mirrors its type field for field; the handlers serialize the
//! real types.

use utoipa::ToSchema;

/// A task (design section 5a). `assignee` is always present, `null` when nobody.
#[derive(Debug, ToSchema)]
#[schema(as = Task)]
pub struct TaskSchema {
    /// Task id (UUIDv7).
    #[schema(format = Uuid, example = "0191e0c4-7d2a-7c3e-9b1a-000000000001")]
    pub id: String,
    /// 1–200 characters.
    #[schema(example = "Write the release notes")]
    pub title: String,
    /// At most 10 000 characters; empty when none.
    pub description: String,
    /// `todo`, `in_progress` or `done`.
    #[schema(example = "todo")]
    pub status: StatusSchema,
    /// The assignee's user id, or `null`.
    #[schema(format = Uuid)]
    pub assignee: Option<String>,
    /// The creator's user id.
    #[schema(format = Uuid)]
    pub created_by: String,
    /// Creation time, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// 1 on creation, +1 per change; the `ETag` is `"<version>"`.
    #[schema(example = 1)]
    pub version: u64,
}

/// Where a task is on the board.
#[derive(Debug, ToSchema)]
#[schema(as = TaskStatus, rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub enum StatusSchema {
    /// Not started (the default).
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
}

/// One page of `GET /tasks`.
#[derive(Debug, ToSchema)]
#[schema(as = TaskPage)]
pub struct TaskPageSchema {
    /// The tasks, newest first.
    pub items: Vec<TaskSchema>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
