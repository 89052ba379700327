-- herald-tasks-api: tasks, the idempotency keys of POST /tasks, and the transactional outbox
-- (design sections 5 and 5a). This history is kept in `_herald_tasks_migrations`, apart from
-- other services' tables, so `herald-auth migrate` and `herald-tasks-api migrate` work
-- independently on one database.

-- One row per task. `id` is a UUIDv7; `assignee` and `created_by` are user ids (JWT `sub`s).
-- There is no foreign key to `users`: accounts belong to auth, which may live in another
-- database. `version` starts at 1 and grows by one per change; it is the ETag, and every
-- write is conditional on it (optimistic concurrency, no row locks held across requests).
-- The CHECKs repeat the API's validation so that no code path can store a task the API
-- would refuse.
CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    title       text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    status      text        NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    assignee    uuid,
    created_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL CHECK (version >= 1)
);

-- `GET /tasks` lists newest first with a keyset cursor on (created_at, id), alone or with
-- one filter; each index serves one of those orders.
CREATE INDEX tasks_newest_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_newest_idx ON tasks (status, created_at DESC, id DESC);
CREATE INDEX tasks_assignee_newest_idx ON tasks (assignee, created_at DESC, id DESC)
    WHERE assignee IS NOT NULL;
CREATE INDEX tasks_created_by_newest_idx ON tasks (created_by, created_at DESC, id DESC);

-- `Idempotency-Key` of POST /tasks, per user: the first request with a key stores its
-- answer here in the same transaction as the task, and a retry with the same key gets that
-- answer back instead of creating another task. `request_hash` (SHA-256 of the parsed body)
-- tells a retry from a different request reusing the key. Rows are swept after a day.
CREATE TABLE task_idempotency_keys (
    user_id      uuid        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    task_id      uuid        NOT NULL,
    response     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX task_idempotency_keys_created_idx ON task_idempotency_keys (created_at);

-- The transactional outbox: every change of `tasks` inserts its domain event here in the
-- same transaction. The relay appends unsent rows, in `id` order, to the Redis stream
-- `<prefix>events:tasks` and then sets `sent_at`; sent rows are swept after a retention
-- period. `payload` is the event's JSON exactly as it goes on the stream.
CREATE TABLE task_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid        NOT NULL UNIQUE,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL,
    sent_at    timestamptz
);

-- The relay's scan and the backlog metric read only unsent rows.
CREATE INDEX task_outbox_unsent_idx ON task_outbox (id) WHERE sent_at IS NULL;
-- The sweep deletes old sent rows.
CREATE INDEX task_outbox_sent_idx ON task_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Wakes the relays: every transaction that adds outbox rows sends one notification on
-- `herald_task_outbox` when it commits (Postgres folds repeats within a transaction), and
-- relays LISTEN on it instead of polling hard.
CREATE FUNCTION task_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_task_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER task_outbox_notify
    AFTER INSERT ON task_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION task_outbox_notify();
