//! `POST /tasks`: the design shape, validation, body limits and idempotency.

use serde_json::{Value, json};

use crate::helpers::{spawn_app, status_and_json};

#[tokio::test]
async fn a_new_task_is_created_with_the_design_shape_and_an_etag() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");

    let response = app
        .post_task(
            &alice,
            &json!({"title": "Write docs", "description": "the README", "assignee": bob.id}),
        )
        .await;

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let task: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/tasks/{}", task["id"].as_str().unwrap()));
    assert_eq!(task["title"], "Write docs");
    assert_eq!(task["description"], "the README");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["assignee"], json!(bob.id));
    assert_eq!(task["created_by"], json!(alice.id));
    assert_eq!(task["version"], 1);
    assert_eq!(task["created_at"], task["updated_at"]);
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
}

#[tokio::test]
async fn optional_fields_default_to_an_empty_description_todo_and_nobody() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let task = app
        .create_task(
            &alice,
            &json!({"title": "  Trimmed  ", "status": "in_progress"}),
        )
        .await;

    assert_eq!(task["title"], "Trimmed");
    assert_eq!(task["description"], "");
    assert_eq!(task["status"], "in_progress");
    assert_eq!(task["assignee"], Value::Null);
}

#[tokio::test]
async fn invalid_fields_are_refused_with_details_for_each_one() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let cases = [
        (json!({"title": ""}), json!({"title": "too_short"})),
        (json!({"title": "   "}), json!({"title": "too_short"})),
        (
            json!({"title": "x".repeat(201)}),
            json!({"title": "too_long"}),
        ),
        (
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            json!({"description": "too_long"}),
        ),
        (
            json!({"title": "ok", "status": "doing"}),
            json!({"status": "invalid"}),
        ),
        (
            json!({"title": "ok", "assignee": "bob"}),
            json!({"assignee": "invalid"}),
        ),
        (
            json!({"title": "", "status": "later", "assignee": "nobody"}),
            json!({"title": "too_short", "status": "invalid", "assignee": "invalid"}),
        ),
    ];
    for (body, details) in cases {
        let (status, error) = status_and_json(app.post_task(&alice, &body).await).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["error"]["code"], "validation_failed", "{body}");
        assert_eq!(error["error"]["details"], details, "{body}");
        assert!(error["error"]["message"].as_str().unwrap().len() > 5);
    }
    assert_eq!(app.stream_events().await.len(), 0);
}

#[tokio::test]
async fn the_longest_title_and_description_are_accepted() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let task = app
        .create_task(
            &alice,
            &json!({"title": "é".repeat(200), "description": "ü".repeat(10_000)}),
        )
        .await;

    assert_eq!(task["title"].as_str().unwrap().chars().count(), 200);
    assert_eq!(
        task["description"].as_str().unwrap().chars().count(),
        10_000
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_with_the_error_body() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let response = app
        .client
        .post(app.url("/tasks"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();

    let (status, error) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "validation_failed");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("JSON"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_types_missing_titles_and_unknown_members_are_a_422() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for body in [
        json!({"title": 5}),
        json!({"title": "ok", "status": 1}),
        json!({"title": "ok", "assignee": ["x"]}),
        json!({"description": "no title"}),
        json!({"title": "ok", "priority": "high"}),
        json!(["not", "an", "object"]),
    ] {
        let (status, error) = status_and_json(app.post_task(&alice, &body).await).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["error"]["code"], "validation_failed", "{body}");
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_with_the_error_body() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let body = json!({"title": "big", "description": "x".repeat(64 * 1024)});
    let (status, error) = status_and_json(app.post_task(&alice, &body).await).await;

    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let response = app
        .client
        .post(app.url("/tasks"))
        .bearer_auth(&alice.token)
        .header("content-type", "text/plain")
        .body("title=x")
        .send()
        .await
        .unwrap();

    let (status, error) = status_and_json(response).await;
    assert_eq!(status, 415);
    assert_eq!(error["error"]["code"], "validation_failed");
}

async fn post_with_key(
    app: &crate::helpers::TestApp,
    user: &crate::helpers::TestUser,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url("/tasks"))
        .bearer_auth(&user.token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_create_returns_the_first_result_and_creates_nothing_new() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let body = json!({"title": "Once only"});

    let first = post_with_key(&app, &alice, "retry-1", &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retry = post_with_key(
        &app,
        &alice,
        "retry-1",
        &json!({"title": "Once only", "description": null}),
    )
    .await;

    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["etag"], "\"1\"");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    let (_, page) = status_and_json(app.list_tasks(&alice, "").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let events = app.wait_for_events(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.stream_events().await.len(), events.len());
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_task() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let requests: Vec<_> = (0..8)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/tasks"))
                .bearer_auth(&alice.token)
                .header("idempotency-key", "race")
                .json(&json!({"title": "Raced"}));
            tokio::spawn(request.send())
        })
        .collect();

    let mut ids = Vec::new();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 201);
        let task: Value = response.json().await.unwrap();
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, page) = status_and_json(app.list_tasks(&alice, "").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_reused_for_a_different_request_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    assert_eq!(
        post_with_key(&app, &alice, "k", &json!({"title": "First"}))
            .await
            .status(),
        201
    );
    let (status, error) =
        status_and_json(post_with_key(&app, &alice, "k", &json!({"title": "Second"})).await).await;

    assert_eq!(status, 422);
    assert_eq!(
        error["error"]["details"],
        json!({"idempotency_key": "reused"})
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_user() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let body = json!({"title": "Same key"});

    let first: Value = post_with_key(&app, &alice, "shared", &body)
        .await
        .json()
        .await
        .unwrap();
    let second = post_with_key(&app, &bob, "shared", &body).await;

    assert_eq!(second.status(), 201);
    assert!(second.headers().get("idempotent-replayed").is_none());
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["created_by"], json!(bob.id));
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let (status, error) = status_and_json(
        post_with_key(&app, &alice, &"k".repeat(256), &json!({"title": "x"})).await,
    )
    .await;

    assert_eq!(status, 422);
    assert_eq!(
        error["error"]["details"],
        json!({"idempotency_key": "invalid"})
    );
}
