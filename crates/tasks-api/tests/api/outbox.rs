//! The transactional outbox: every change becomes one domain event on the events stream,
//! in order, with the event id, the task snapshot, the actor and the trace context; and
//! changes made while Redis is down reach the stream once it is back.

use std::collections::HashSet;

use herald_common::events::TaskEventKind;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, EVENTUALLY, Options, RedisServer, eventually, spawn_app, spawn_app_with,
    status_and_json,
};

#[tokio::test]
async fn every_change_writes_one_event_with_the_snapshot_and_the_actor() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let task = app
        .create_task(&alice, &json!({"title": "Evented", "assignee": bob.id}))
        .await;
    let id = task["id"].as_str().unwrap();
    app.patch_task(&bob, id, &json!({"status": "in_progress"}), None)
        .await;
    app.patch_task(&alice, id, &json!({"assignee": alice.id}), None)
        .await;
    app.patch_task(&alice, id, &json!({"assignee": null}), None)
        .await;
    let last: Value = app.get_task(&alice, id).await.json().await.unwrap();
    assert_eq!(app.delete_task(&alice, id).await.status(), 204);

    let events = app.wait_for_events(5).await;

    let kinds: Vec<TaskEventKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            TaskEventKind::Created,
            TaskEventKind::Updated,
            TaskEventKind::Assigned,
            TaskEventKind::Updated,
            TaskEventKind::Deleted
        ]
    );
    let versions: Vec<u64> = events.iter().map(|event| event.task.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 4]);
    assert_eq!(serde_json::to_value(&events[0].task).unwrap(), task);
    assert_eq!(serde_json::to_value(&events[4].task).unwrap(), last);
    assert_eq!(events[0].actor.id, alice.id);
    assert_eq!(events[0].actor.name, "alice");
    assert_eq!(events[1].actor.name, "bob");
    assert_eq!(events[2].task.assignee, Some(alice.id));
    let ids: HashSet<_> = events.iter().map(|event| event.id).collect();
    assert_eq!(ids.len(), 5);
    assert!(events.iter().all(|event| event.trace.traceparent.is_some()));

    let stats = eventually(EVENTUALLY, || async {
        let stats = app.api.store().outbox_stats().await.unwrap();
        (stats.unsent == 0).then_some(stats)
    })
    .await;
    assert!(stats.is_some(), "the relay marks appended rows sent");
}

#[tokio::test]
async fn an_incoming_traceparent_is_carried_into_the_event() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let response = app
        .client
        .post(app.url("/tasks"))
        .bearer_auth(&alice.token)
        .header("traceparent", traceparent)
        .header("tracestate", "herald=1")
        .json(&json!({"title": "Traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let events = app.wait_for_events(1).await;
    assert_eq!(events[0].trace.traceparent.as_deref(), Some(traceparent));
    assert_eq!(events[0].trace.tracestate.as_deref(), Some("herald=1"));
}

#[tokio::test]
async fn a_change_that_fails_validation_or_permission_writes_no_event() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let carol = app.user("carol");
    let task = app.create_task(&alice, &json!({"title": "Guarded"})).await;
    let id = task["id"].as_str().unwrap();

    assert_eq!(
        app.patch_task(&carol, id, &json!({"title": "mine"}), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.patch_task(&alice, id, &json!({"title": ""}), None)
            .await
            .status(),
        422
    );
    assert_eq!(
        app.patch_task(&alice, id, &json!({"title": "x"}), Some("\"9\""))
            .await
            .status(),
        412
    );
    assert_eq!(app.delete_task(&carol, id).await.status(), 403);
    assert_eq!(
        app.patch_task(&alice, id, &json!({}), None).await.status(),
        200
    );
    app.create_task(&alice, &json!({"title": "Marker"})).await;

    let events = app.wait_for_events(2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].task.title, "Marker");
}

#[tokio::test]
async fn tasks_created_while_redis_is_down_reach_the_stream_once_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(Options {
        redis_url: redis.url(),
        ..Options::default()
    })
    .await;
    let alice = app.user("alice");
    app.create_task(&alice, &json!({"title": "before the outage"}))
        .await;
    app.wait_for_events(1).await;

    redis.stop();
    for n in 0..50 {
        let (status, body) = status_and_json(
            app.post_task(&alice, &json!({"title": format!("offline {n}")}))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "readiness depends on the database only"
    );
    let backlog = app.api.store().outbox_stats().await.unwrap();
    assert_eq!(backlog.unsent, 50);

    redis.restart().await;
    let events = app.wait_for_events(50).await;

    // The restarted Redis kept nothing, so the stream holds exactly the offline tasks.
    let titles: Vec<&str> = events
        .iter()
        .map(|event| event.task.title.as_str())
        .collect();
    let expected: Vec<String> = (0..50).map(|n| format!("offline {n}")).collect();
    assert_eq!(titles, expected);
    let drained = eventually(EVENTUALLY, || async {
        (app.api.store().outbox_stats().await.unwrap().unsent == 0).then_some(())
    })
    .await;
    assert!(drained.is_some());
}

#[tokio::test]
async fn the_embedded_sqlite_store_relays_its_events_too() {
    let app = spawn_app_with(Options {
        backend: Backend::Sqlite,
        ..Options::default()
    })
    .await;
    let alice = app.user("alice");
    let task = app
        .create_task(&alice, &json!({"title": "On SQLite"}))
        .await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        app.patch_task(&alice, id, &json!({"status": "done"}), Some("\"1\""))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete_task(&alice, id).await.status(), 204);

    let events = app.wait_for_events(3).await;

    let kinds: Vec<TaskEventKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            TaskEventKind::Created,
            TaskEventKind::Updated,
            TaskEventKind::Deleted
        ]
    );
    assert_eq!(app.get_task(&alice, id).await.status(), 404);
}

#[tokio::test]
async fn two_replicas_relaying_one_outbox_append_each_event_once() {
    let app = spawn_app().await;
    let mut settings = app.settings.clone();
    settings.auto_migrate = false;
    let redis_url = settings.redis_url.as_ref().unwrap().expose().clone();
    let second = herald_tasks_api::Application::build_with(
        settings.clone(),
        herald_service::Context::new(crate::helpers::broker_for(
            &redis_url,
            &settings.redis_prefix,
        )),
    )
    .await
    .unwrap();
    let second_address = format!("http://127.0.0.1:{}", second.port());
    let second_shutdown = second.shutdown_token();
    tokio::spawn(second.run_until_stopped());
    let alice = app.user("alice");

    for n in 0..40 {
        let address = if n % 2 == 0 {
            app.address.as_str()
        } else {
            second_address.as_str()
        };
        let response = app
            .client
            .post(format!("{address}/tasks"))
            .bearer_auth(&alice.token)
            .json(&json!({"title": format!("replicated {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    app.wait_for_events(40).await;
    let drained = eventually(EVENTUALLY, || async {
        (app.api.store().outbox_stats().await.unwrap().unsent == 0).then_some(())
    })
    .await;
    assert!(drained.is_some());
    let events = app.stream_events().await;
    let ids: HashSet<_> = events.iter().map(|event| event.id).collect();
    assert_eq!(events.len(), 40);
    assert_eq!(ids.len(), 40);
    second_shutdown.cancel();
}
