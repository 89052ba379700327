//! From `POST /tasks` to the publications: the real tasks-api on Postgres, its outbox relay,
//! the notifier, and Redis (the shared one, or one of the test's own that it stops).

use std::collections::HashSet;

use herald_common::channel::ChannelName;
use herald_common::events::TaskEventKind;
use serde_json::json;

use crate::helpers::{
    EVENTUALLY, PrefixGuard, RedisServer, RunningNotifier, TasksService, distinct_event_ids,
    eventually, history, notifier_settings, pending, random_prefix, redis_broker, test_redis_url,
    wait_for_history,
};

#[tokio::test]
async fn a_created_task_appears_in_the_board_history_and_the_assignee_feed() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let tasks = TasksService::start(&url, &prefix).await;
    let _notifier = RunningNotifier::start(
        &notifier_settings(Some(&url), &prefix),
        redis_broker(&url, &prefix),
    );
    let broker = redis_broker(&url, &prefix);
    let alice = tasks.user("alice");
    let bob = tasks.user("bob");

    let (status, task) = tasks
        .post_task(
            &alice,
            &json!({"title": "Ship the release", "assignee": bob.id}),
        )
        .await;
    assert_eq!(status, 201);

    let board = wait_for_history(&broker, &ChannelName::tasks(), 1).await;
    assert_eq!(
        board[0].notification.text,
        "New task created: Ship the release"
    );
    assert_eq!(board[0].notification.kind, TaskEventKind::Created);
    assert_eq!(
        serde_json::to_value(&board[0].notification.task).unwrap(),
        task
    );
    assert_eq!(board[0].notification.actor.id, alice.id);
    assert_eq!(board[0].notification.actor.name, "alice");
    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 1).await;
    assert_eq!(
        feed[0].notification.text,
        "alice assigned you \"Ship the release\""
    );
    assert_eq!(feed[0].notification.kind, TaskEventKind::Assigned);

    // Reassigning notifies the new assignee; other changes only the board.
    let carol = tasks.user("carol");
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        tasks
            .patch_task(&bob, id, &json!({"assignee": carol.id}))
            .await,
        200
    );
    assert_eq!(
        tasks
            .patch_task(&carol, id, &json!({"status": "done"}))
            .await,
        200
    );
    let board = wait_for_history(&broker, &ChannelName::tasks(), 3).await;
    let texts: Vec<&str> = board.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "New task created: Ship the release",
            "Task assigned: Ship the release",
            "Task updated: Ship the release"
        ]
    );
    let feed = wait_for_history(&broker, &ChannelName::notifications(&carol.id), 1).await;
    assert_eq!(
        feed[0].notification.text,
        "bob assigned you \"Ship the release\""
    );
    assert_eq!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn tasks_created_while_redis_is_down_are_all_notified_exactly_once_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let prefix = random_prefix();
    let tasks = TasksService::start(&url, &prefix).await;
    let _notifier = RunningNotifier::start(
        &notifier_settings(Some(&url), &prefix),
        redis_broker(&url, &prefix),
    );
    let broker = redis_broker(&url, &prefix);
    let alice = tasks.user("alice");
    let bob = tasks.user("bob");
    let (status, _) = tasks.post_task(&alice, &json!({"title": "warm-up"})).await;
    assert_eq!(status, 201);
    wait_for_history(&broker, &ChannelName::tasks(), 1).await;

    redis.stop();
    let mut created = HashSet::new();
    for n in 0..50 {
        let (status, task) = tasks
            .post_task(
                &alice,
                &json!({"title": format!("offline {n}"), "assignee": bob.id}),
            )
            .await;
        assert_eq!(status, 201, "task {n} while Redis is down: {task}");
        created.insert(task["id"].as_str().unwrap().to_owned());
    }
    redis.restart().await;

    // The restarted Redis starts empty: its histories hold exactly what came after it.
    let board = wait_for_history(&broker, &ChannelName::tasks(), 50).await;
    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 50).await;
    distinct_event_ids(&board);
    distinct_event_ids(&feed);
    let notified: HashSet<String> = board
        .iter()
        .map(|p| p.notification.task.id.to_string())
        .collect();
    assert_eq!(notified, created);
    assert!(feed.iter().all(|p| {
        p.notification
            .text
            .starts_with("alice assigned you \"offline ")
    }));
    let acked = eventually(EVENTUALLY, || async {
        (pending(&url, &prefix, "notifier").await == 0).then_some(())
    })
    .await;
    assert!(acked.is_some(), "every event is acknowledged");
    assert_eq!(history(&broker, &ChannelName::tasks()).await.len(), 50);
    assert_eq!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .len(),
        50
    );
}
