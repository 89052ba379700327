//! `PATCH /tasks/{id}`: merge-patch semantics, permissions, preconditions and validation.

use herald_common::ids::TaskId;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, spawn_app, status_and_json};

async fn task_of(app: &TestApp, user: &TestUser, body: Value) -> (String, Value) {
    let task = app.create_task(user, &body).await;
    (task["id"].as_str().unwrap().to_owned(), task)
}

#[tokio::test]
async fn a_patch_changes_only_the_given_fields_and_bumps_the_version() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, before) = task_of(
        &app,
        &alice,
        json!({"title": "Draft", "description": "keep me"}),
    )
    .await;

    let response = app
        .patch_task(&alice, &id, &json!({"status": "in_progress"}), None)
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let after: Value = response.json().await.unwrap();
    assert_eq!(after["status"], "in_progress");
    assert_eq!(after["title"], "Draft");
    assert_eq!(after["description"], "keep me");
    assert_eq!(after["version"], 2);
    assert_eq!(after["created_at"], before["created_at"]);
    assert_ne!(after["updated_at"], before["updated_at"]);
    let stored: Value = app.get_task(&alice, &id).await.json().await.unwrap();
    assert_eq!(stored, after);
}

#[tokio::test]
async fn null_unassigns_and_empties_the_description() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let (id, _) = task_of(
        &app,
        &alice,
        json!({"title": "T", "description": "d", "assignee": bob.id}),
    )
    .await;

    let (status, task) = status_and_json(
        app.patch_task(
            &alice,
            &id,
            &json!({"assignee": null, "description": null}),
            None,
        )
        .await,
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(task["assignee"], Value::Null);
    assert_eq!(task["description"], "");
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_the_version() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, before) = task_of(&app, &alice, json!({"title": "Same"})).await;

    for patch in [json!({}), json!({"title": "Same", "status": "todo"})] {
        let response = app.patch_task(&alice, &id, &patch, Some("\"1\"")).await;
        assert_eq!(response.status(), 200, "{patch}");
        assert_eq!(response.headers()["etag"], "\"1\"");
        let task: Value = response.json().await.unwrap();
        assert_eq!(task, before, "{patch}");
    }
}

#[tokio::test]
async fn the_assignee_may_update_but_nobody_else_may() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let carol = app.user("carol");
    let (id, _) = task_of(&app, &alice, json!({"title": "Shared", "assignee": bob.id})).await;

    let (status, task) = status_and_json(
        app.patch_task(&bob, &id, &json!({"status": "done"}), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(task["status"], "done");

    let (status, error) = status_and_json(
        app.patch_task(&carol, &id, &json!({"status": "todo"}), None)
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error["error"]["code"], "forbidden");
    let stored: Value = app.get_task(&alice, &id).await.json().await.unwrap();
    assert_eq!(stored["status"], "done");
}

#[tokio::test]
async fn a_former_assignee_loses_the_right_to_update() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let carol = app.user("carol");
    let (id, _) = task_of(
        &app,
        &alice,
        json!({"title": "Hand over", "assignee": bob.id}),
    )
    .await;

    assert_eq!(
        app.patch_task(&bob, &id, &json!({"assignee": carol.id}), None)
            .await
            .status(),
        200
    );

    assert_eq!(
        app.patch_task(&bob, &id, &json!({"title": "mine again"}), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.patch_task(&carol, &id, &json!({"status": "done"}), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_matching_if_match_applies_and_a_stale_one_is_a_412() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, _) = task_of(&app, &alice, json!({"title": "v1"})).await;

    let response = app
        .patch_task(&alice, &id, &json!({"title": "v2"}), Some("\"1\""))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");

    let (status, error) = status_and_json(
        app.patch_task(&alice, &id, &json!({"title": "v3"}), Some("\"1\""))
            .await,
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(error["error"]["code"], "precondition_failed");
    let stored: Value = app.get_task(&alice, &id).await.json().await.unwrap();
    assert_eq!(stored["title"], "v2");

    assert_eq!(
        app.patch_task(&alice, &id, &json!({"title": "v3"}), Some("*"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn concurrent_patches_based_on_one_version_let_exactly_one_win() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, _) = task_of(&app, &alice, json!({"title": "contended"})).await;

    let requests: Vec<_> = (0..6)
        .map(|n| {
            let request = app
                .client
                .patch(app.url(&format!("/tasks/{id}")))
                .bearer_auth(&alice.token)
                .header("content-type", "application/merge-patch+json")
                .header("if-match", "\"1\"")
                .body(json!({"title": format!("writer {n}")}).to_string());
            tokio::spawn(request.send())
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap().unwrap().status().as_u16());
    }

    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412]);
    let stored: Value = app.get_task(&alice, &id).await.json().await.unwrap();
    assert_eq!(stored["version"], 2);
}

#[tokio::test]
async fn invalid_patches_are_refused_with_details() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, _) = task_of(&app, &alice, json!({"title": "Valid"})).await;
    let cases = [
        (json!({"title": ""}), json!({"title": "too_short"})),
        (
            json!({"title": "t".repeat(201)}),
            json!({"title": "too_long"}),
        ),
        (json!({"title": null}), json!({"title": "required"})),
        (json!({"status": null}), json!({"status": "required"})),
        (json!({"status": "blocked"}), json!({"status": "invalid"})),
        (
            json!({"description": "d".repeat(10_001)}),
            json!({"description": "too_long"}),
        ),
        (
            json!({"assignee": "someone"}),
            json!({"assignee": "invalid"}),
        ),
    ];
    for (patch, details) in cases {
        let (status, error) =
            status_and_json(app.patch_task(&alice, &id, &patch, None).await).await;
        assert_eq!(status, 422, "{patch}");
        assert_eq!(error["error"]["details"], details, "{patch}");
    }
    for patch in [json!({"title": 1}), json!({"version": 7}), json!("title")] {
        let (status, error) =
            status_and_json(app.patch_task(&alice, &id, &patch, None).await).await;
        assert_eq!(status, 422, "{patch}");
        assert_eq!(error["error"]["code"], "validation_failed");
    }
    let stored: Value = app.get_task(&alice, &id).await.json().await.unwrap();
    assert_eq!(stored["version"], 1);
}

#[tokio::test]
async fn a_patch_with_malformed_json_is_a_400_and_an_oversized_one_a_413() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let (id, _) = task_of(&app, &alice, json!({"title": "Valid"})).await;

    let response = app
        .client
        .patch(app.url(&format!("/tasks/{id}")))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{\"title\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let big = json!({"description": "x".repeat(70_000)});
    let (status, error) = status_and_json(app.patch_task(&alice, &id, &big, None).await).await;
    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn patching_an_unknown_task_is_a_404() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let (status, error) = status_and_json(
        app.patch_task(
            &alice,
            &TaskId::new().to_string(),
            &json!({"title": "x"}),
            None,
        )
        .await,
    )
    .await;

    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");
}
