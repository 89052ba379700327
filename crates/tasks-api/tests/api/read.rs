//! `GET /tasks/{id}` and `DELETE /tasks/{id}`.

use herald_common::ids::TaskId;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, status_and_json};

#[tokio::test]
async fn any_signed_in_user_reads_a_task_with_its_etag() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let created = app.create_task(&alice, &json!({"title": "Read me"})).await;

    let response = app.get_task(&bob, created["id"].as_str().unwrap()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let task: Value = response.json().await.unwrap();
    assert_eq!(task, created);
}

#[tokio::test]
async fn an_unknown_task_is_a_404() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    for id in [TaskId::new().to_string(), "not-a-uuid".to_owned()] {
        let (status, error) = status_and_json(app.get_task(&alice, &id).await).await;
        assert_eq!(status, 404, "{id}");
        assert_eq!(error["error"]["code"], "not_found", "{id}");
    }
}

#[tokio::test]
async fn the_creator_deletes_a_task_and_it_is_gone() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let task = app
        .create_task(&alice, &json!({"title": "Short-lived"}))
        .await;
    let id = task["id"].as_str().unwrap();

    let response = app.delete_task(&alice, id).await;

    assert_eq!(response.status(), 204);
    let (status, error) = status_and_json(app.get_task(&alice, id).await).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");
    let (status, _) = status_and_json(app.delete_task(&alice, id).await).await;
    assert_eq!(status, 404);
    let (status, _) = status_and_json(
        app.patch_task(&alice, id, &json!({"title": "x"}), None)
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let (_, page) = status_and_json(app.list_tasks(&alice, "").await).await;
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn only_the_creator_may_delete_even_the_assignee_may_not() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let carol = app.user("carol");
    let task = app
        .create_task(&alice, &json!({"title": "Mine", "assignee": bob.id}))
        .await;
    let id = task["id"].as_str().unwrap();

    for user in [&bob, &carol] {
        let (status, error) = status_and_json(app.delete_task(user, id).await).await;
        assert_eq!(status, 403, "{}", user.name);
        assert_eq!(error["error"]["code"], "forbidden");
    }
    assert_eq!(app.get_task(&alice, id).await.status(), 200);
}

#[tokio::test]
async fn deleting_an_unknown_task_is_a_404() {
    let app = spawn_app().await;
    let alice = app.user("alice");

    let (status, error) =
        status_and_json(app.delete_task(&alice, &TaskId::new().to_string()).await).await;

    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_delete_with_a_stale_if_match_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let task = app.create_task(&alice, &json!({"title": "v1"})).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        app.patch_task(&alice, id, &json!({"title": "v2"}), None)
            .await
            .status(),
        200
    );

    let response = app
        .client
        .delete(app.url(&format!("/tasks/{id}")))
        .bearer_auth(&alice.token)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();

    let (status, error) = status_and_json(response).await;
    assert_eq!(status, 412);
    assert_eq!(error["error"]["code"], "precondition_failed");
    assert_eq!(app.get_task(&alice, id).await.status(), 200);
}
