//! The store suite: the same tests against Postgres (a fresh database per test) and SQLite
//! (a fresh file per test), so the embedded mode behaves exactly like the distributed one.

use std::time::Duration;

use herald_common::ids::{TaskId, UserId};
use herald_common::task::{Task, TaskStatus};
use herald_tasks_api::store::{
    self, CreateOutcome, IdempotencyRecord, ListPosition, OutboxEvent, Store, TaskQuery,
    WriteOutcome,
};
use time::OffsetDateTime;
use uuid::Uuid;

use herald_test_support::{Backend, TestDb};

/// A migrated store and the database that keeps it alive.
pub struct Fixture {
    pub store: Store,
    _database: TestDb,
}

async fn fixture(backend: Backend) -> Fixture {
    let database = TestDb::create(backend).await;
    let store = Store::connect(&database.url(), Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store,
        _database: database,
    }
}

pub async fn postgres() -> Fixture {
    fixture(Backend::Postgres).await
}

pub async fn sqlite() -> Fixture {
    fixture(Backend::Sqlite).await
}

/// Runs one scenario against both backends.
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::postgres().await.store).await;
                }
            )*
        }
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::sqlite().await.store).await;
                }
            )*
        }
    };
}

both_backends!(
    a_created_task_reads_back_identically,
    migrating_twice_is_harmless,
    lists_are_newest_first_and_continue_after_a_position,
    list_filters_select_status_assignee_and_creator,
    an_update_applies_only_on_the_expected_version,
    a_delete_applies_only_on_the_expected_version,
    an_idempotency_key_replays_the_first_answer_and_stores_nothing_new,
    every_write_adds_its_event_to_the_outbox_in_order,
    sent_outbox_rows_and_old_keys_are_swept,
);

fn task(title: &str, creator: UserId, created_at: OffsetDateTime) -> Task {
    Task {
        id: TaskId::new(),
        title: title.to_owned(),
        description: "some words".to_owned(),
        status: TaskStatus::Todo,
        assignee: None,
        created_by: creator,
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

fn event(payload: &str, at: OffsetDateTime) -> OutboxEvent {
    OutboxEvent {
        event_id: Uuid::now_v7(),
        payload: payload.to_owned(),
        created_at: at,
    }
}

fn at(seconds: i64) -> OffsetDateTime {
    store::truncate_to_micros(
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_800_000_000 + seconds),
    ) + time::Duration::microseconds(123)
}

async fn a_created_task_reads_back_identically(store: Store) {
    let mut task = task("Read back", UserId::new(), store::now());
    task.assignee = Some(UserId::new());
    task.status = TaskStatus::InProgress;

    let outcome = store
        .create_task(&task, &event("{}", task.created_at), None)
        .await
        .unwrap();

    assert_eq!(outcome, CreateOutcome::Created);
    assert_eq!(store.task(task.id).await.unwrap(), Some(task));
    assert_eq!(store.task(TaskId::new()).await.unwrap(), None);
}

async fn migrating_twice_is_harmless(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn lists_are_newest_first_and_continue_after_a_position(store: Store) {
    let creator = UserId::new();
    let tasks: Vec<Task> = (0..5)
        .map(|n| task(&format!("t{n}"), creator, at(n)))
        .collect();
    for task in &tasks {
        store
            .create_task(task, &event("{}", task.created_at), None)
            .await
            .unwrap();
    }
    // Two tasks created in the same microsecond still have one order: by id.
    let twin = task("t4-twin", creator, at(4));
    store
        .create_task(&twin, &event("{}", twin.created_at), None)
        .await
        .unwrap();

    let all = store
        .list_tasks(&TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    let titles: Vec<&str> = all.iter().map(|task| task.title.as_str()).collect();
    assert_eq!(titles, ["t4-twin", "t4", "t3", "t2", "t1", "t0"]);

    let first = store
        .list_tasks(&TaskQuery {
            limit: 2,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    let last = first.last().unwrap();
    let rest = store
        .list_tasks(&TaskQuery {
            limit: 10,
            before: Some(ListPosition {
                created_at: last.created_at,
                id: last.id,
            }),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    let titles: Vec<&str> = rest.iter().map(|task| task.title.as_str()).collect();
    assert_eq!(titles, ["t3", "t2", "t1", "t0"]);
}

async fn list_filters_select_status_assignee_and_creator(store: Store) {
    let alice = UserId::new();
    let bob = UserId::new();
    let mut done = task("done", alice, at(1));
    done.status = TaskStatus::Done;
    let mut assigned = task("assigned", alice, at(2));
    assigned.assignee = Some(bob);
    let by_bob = task("by bob", bob, at(3));
    for task in [&done, &assigned, &by_bob] {
        store
            .create_task(task, &event("{}", task.created_at), None)
            .await
            .unwrap();
    }
    let titles = |tasks: Vec<Task>| tasks.into_iter().map(|task| task.title).collect::<Vec<_>>();
    let query = |status, assignee, created_by| TaskQuery {
        status,
        assignee,
        created_by,
        before: None,
        limit: 10,
    };

    assert_eq!(
        titles(
            store
                .list_tasks(&query(Some(TaskStatus::Done), None, None))
                .await
                .unwrap()
        ),
        ["done"]
    );
    assert_eq!(
        titles(
            store
                .list_tasks(&query(None, Some(bob), None))
                .await
                .unwrap()
        ),
        ["assigned"]
    );
    assert_eq!(
        titles(
            store
                .list_tasks(&query(None, None, Some(bob)))
                .await
                .unwrap()
        ),
        ["by bob"]
    );
    assert_eq!(
        titles(
            store
                .list_tasks(&query(Some(TaskStatus::Todo), None, Some(alice)))
                .await
                .unwrap()
        ),
        ["assigned"]
    );
}

async fn an_update_applies_only_on_the_expected_version(store: Store) {
    let original = task("v1", UserId::new(), store::now());
    store
        .create_task(&original, &event("{}", original.created_at), None)
        .await
        .unwrap();
    let mut next = original.clone();
    next.title = "v2".to_owned();
    next.assignee = Some(UserId::new());
    next.version = 2;
    next.updated_at = store::now();

    assert_eq!(
        store
            .update_task(&next, 1, &event("{}", next.updated_at))
            .await
            .unwrap(),
        WriteOutcome::Done
    );
    let mut stale = original.clone();
    stale.title = "lost update".to_owned();
    stale.version = 2;
    assert_eq!(
        store
            .update_task(&stale, 1, &event("{}", next.updated_at))
            .await
            .unwrap(),
        WriteOutcome::VersionChanged
    );
    assert_eq!(store.task(original.id).await.unwrap(), Some(next));
}

async fn a_delete_applies_only_on_the_expected_version(store: Store) {
    let task = task("doomed", UserId::new(), store::now());
    store
        .create_task(&task, &event("{}", task.created_at), None)
        .await
        .unwrap();

    assert_eq!(
        store
            .delete_task(task.id, 2, &event("{}", task.created_at))
            .await
            .unwrap(),
        WriteOutcome::VersionChanged
    );
    assert!(store.task(task.id).await.unwrap().is_some());
    assert_eq!(
        store
            .delete_task(task.id, 1, &event("{}", task.created_at))
            .await
            .unwrap(),
        WriteOutcome::Done
    );
    assert_eq!(store.task(task.id).await.unwrap(), None);
    assert_eq!(
        store
            .delete_task(task.id, 1, &event("{}", task.created_at))
            .await
            .unwrap(),
        WriteOutcome::VersionChanged
    );
}

async fn an_idempotency_key_replays_the_first_answer_and_stores_nothing_new(store: Store) {
    let user = UserId::new();
    let record = IdempotencyRecord {
        user_id: user,
        key: "key-1".to_owned(),
        request_hash: [7; 32],
        response: "{\"first\":true}".to_owned(),
    };
    let first = task("first", user, store::now());
    let second = task("second", user, store::now());

    assert_eq!(
        store
            .create_task(&first, &event("{}", first.created_at), Some(&record))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let replay = IdempotencyRecord {
        response: "{\"second\":true}".to_owned(),
        request_hash: [8; 32],
        ..record.clone()
    };
    let outcome = store
        .create_task(&second, &event("{}", second.created_at), Some(&replay))
        .await
        .unwrap();

    assert_eq!(
        outcome,
        CreateOutcome::Replayed {
            request_hash: vec![7; 32],
            response: "{\"first\":true}".to_owned(),
        }
    );
    assert_eq!(store.task(second.id).await.unwrap(), None);
    assert_eq!(store.outbox_stats().await.unwrap().unsent, 1);
    let other_user = IdempotencyRecord {
        user_id: UserId::new(),
        ..record
    };
    assert_eq!(
        store
            .create_task(&second, &event("{}", second.created_at), Some(&other_user))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

async fn every_write_adds_its_event_to_the_outbox_in_order(store: Store) {
    let mut task = task("outboxed", UserId::new(), at(0));
    store
        .create_task(&task, &event("created", at(0)), None)
        .await
        .unwrap();
    task.version = 2;
    store
        .update_task(&task, 1, &event("updated", at(1)))
        .await
        .unwrap();
    store
        .delete_task(task.id, 2, &event("deleted", at(2)))
        .await
        .unwrap();

    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.unsent, 3);
    assert_eq!(stats.oldest_unsent, Some(at(0)));

    let batch = store.claim_outbox(2).await.unwrap().unwrap();
    let payloads: Vec<&str> = batch
        .rows()
        .iter()
        .map(|row| row.payload.as_str())
        .collect();
    assert_eq!(payloads, ["created", "updated"]);
    let first_id = batch.rows()[0].id;
    batch.finish(&[first_id], store::now()).await.unwrap();

    let batch = store.claim_outbox(10).await.unwrap().unwrap();
    let payloads: Vec<&str> = batch
        .rows()
        .iter()
        .map(|row| row.payload.as_str())
        .collect();
    assert_eq!(payloads, ["updated", "deleted"]);
    let ids: Vec<i64> = batch.rows().iter().map(|row| row.id).collect();
    batch.finish(&ids, store::now()).await.unwrap();

    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.unsent, 0);
    assert_eq!(stats.oldest_unsent, None);
    assert!(
        store
            .claim_outbox(10)
            .await
            .unwrap()
            .unwrap()
            .rows()
            .is_empty()
    );
}

async fn sent_outbox_rows_and_old_keys_are_swept(store: Store) {
    let user = UserId::new();
    let old = task("old", user, at(0));
    let record = IdempotencyRecord {
        user_id: user,
        key: "old-key".to_owned(),
        request_hash: [1; 32],
        response: "{}".to_owned(),
    };
    store
        .create_task(&old, &event("old", at(0)), Some(&record))
        .await
        .unwrap();
    let fresh = task("fresh", user, at(100));
    store
        .create_task(&fresh, &event("fresh", at(100)), None)
        .await
        .unwrap();
    let batch = store.claim_outbox(1).await.unwrap().unwrap();
    let id = batch.rows()[0].id;
    batch.finish(&[id], at(10)).await.unwrap();

    let swept = store.sweep(at(50), at(50)).await.unwrap();

    assert_eq!(swept.outbox_rows, 1);
    assert_eq!(swept.idempotency_keys, 1);
    assert_eq!(store.outbox_stats().await.unwrap().unsent, 1);
    // The key is forgotten: the same key creates again.
    let again = task("again", user, at(200));
    assert_eq!(
        store
            .create_task(&again, &event("again", at(200)), Some(&record))
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}
