-- herald-tasks-api: tasks, idempotency keys and the outbox, SQLite flavour of ../postgres
-- (embedded mode). Same tables and meaning; the differences are types: UUIDs are 16-byte
-- blobs and times are INTEGER microseconds since the Unix epoch (so comparisons are
-- numeric). There is no LISTEN/NOTIFY here: the relay runs in the same process as the
-- writers, which wake it directly, and polls briefly besides.

CREATE TABLE tasks (
    id          BLOB    PRIMARY KEY NOT NULL,
    title       TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status      TEXT    NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    assignee    BLOB,
    created_by  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1)
);

CREATE INDEX tasks_newest_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_newest_idx ON tasks (status, created_at DESC, id DESC);
CREATE INDEX tasks_assignee_newest_idx ON tasks (assignee, created_at DESC, id DESC);
CREATE INDEX tasks_created_by_newest_idx ON tasks (created_by, created_at DESC, id DESC);

CREATE TABLE task_idempotency_keys (
    user_id      BLOB    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    task_id      BLOB    NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX task_idempotency_keys_created_idx ON task_idempotency_keys (created_at);

-- AUTOINCREMENT: ids are never reused, so relay order is insertion order even after the
-- newest rows were swept.
CREATE TABLE task_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   BLOB    NOT NULL UNIQUE,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER
);

CREATE INDEX task_outbox_unsent_idx ON task_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX task_outbox_sent_idx ON task_outbox (sent_at) WHERE sent_at IS NOT NULL;
