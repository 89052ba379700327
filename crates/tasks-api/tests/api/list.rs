//! `GET /tasks`: newest first, cursor pagination, filters.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, spawn_app, status_and_json};

async fn page(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, body) = status_and_json(app.list_tasks(user, query).await).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tasks_are_listed_newest_first_with_a_null_cursor_on_the_last_page() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for n in 1..=3 {
        app.create_task(&alice, &json!({"title": format!("task {n}")}))
            .await;
    }

    let body = page(&app, &alice, "").await;

    assert_eq!(titles(&body), ["task 3", "task 2", "task 1"]);
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn following_cursors_visits_every_task_once() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for n in 1..=7 {
        app.create_task(&alice, &json!({"title": format!("task {n}")}))
            .await;
    }

    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    let mut pages = 0;
    loop {
        let body = page(&app, &alice, &query).await;
        pages += 1;
        assert!(titles(&body).len() <= 3);
        seen.extend(titles(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=7).rev().map(|n| format!("task {n}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_page_that_ends_exactly_at_the_last_task_has_no_next_cursor() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for n in 1..=2 {
        app.create_task(&alice, &json!({"title": format!("task {n}")}))
            .await;
    }

    let body = page(&app, &alice, "limit=2").await;

    assert_eq!(titles(&body).len(), 2);
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn filters_select_by_status_assignee_and_creator() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    app.create_task(&alice, &json!({"title": "a-todo"})).await;
    app.create_task(&alice, &json!({"title": "a-done", "status": "done"}))
        .await;
    app.create_task(&alice, &json!({"title": "a-for-bob", "assignee": bob.id}))
        .await;
    app.create_task(
        &bob,
        &json!({"title": "b-done", "status": "done", "assignee": bob.id}),
    )
    .await;

    let set = |page: Value| titles(&page).into_iter().collect::<HashSet<_>>();
    let expect = |titles: &[&str]| {
        titles
            .iter()
            .map(|t| (*t).to_owned())
            .collect::<HashSet<_>>()
    };
    assert_eq!(
        set(page(&app, &alice, "status=done").await),
        expect(&["a-done", "b-done"])
    );
    assert_eq!(
        set(page(&app, &alice, &format!("assignee={}", bob.id)).await),
        expect(&["a-for-bob", "b-done"])
    );
    assert_eq!(
        set(page(&app, &alice, &format!("created_by={}", bob.id)).await),
        expect(&["b-done"])
    );
    assert_eq!(
        set(page(
            &app,
            &alice,
            &format!("created_by={}&status=todo", alice.id)
        )
        .await),
        expect(&["a-todo", "a-for-bob"])
    );
    assert_eq!(
        set(page(&app, &alice, &format!("assignee={}", alice.id)).await),
        expect(&[])
    );
}

#[tokio::test]
async fn filters_and_cursors_combine() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for n in 1..=5 {
        let status = if n % 2 == 0 { "done" } else { "todo" };
        app.create_task(
            &alice,
            &json!({"title": format!("task {n}"), "status": status}),
        )
        .await;
    }

    let first = page(&app, &alice, "status=todo&limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = page(
        &app,
        &alice,
        &format!("status=todo&limit=2&cursor={cursor}"),
    )
    .await;

    assert_eq!(titles(&first), ["task 5", "task 3"]);
    assert_eq!(titles(&second), ["task 1"]);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test]
async fn invalid_list_parameters_are_refused_with_details() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let cases = [
        ("limit=0", json!({"limit": "invalid"})),
        ("limit=101", json!({"limit": "invalid"})),
        ("cursor=garbage", json!({"cursor": "invalid"})),
        ("status=doing", json!({"status": "invalid"})),
        ("assignee=bob", json!({"assignee": "invalid"})),
        ("created_by=1", json!({"created_by": "invalid"})),
        (
            "status=x&assignee=y",
            json!({"status": "invalid", "assignee": "invalid"}),
        ),
    ];
    for (query, details) in cases {
        let (status, error) = status_and_json(app.list_tasks(&alice, query).await).await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(error["error"]["details"], details, "{query}");
    }
    let (status, error) = status_and_json(app.list_tasks(&alice, "limit=many").await).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "validation_failed");
}

#[tokio::test]
async fn the_default_page_holds_50_tasks() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for n in 0..51 {
        app.create_task(&alice, &json!({"title": format!("task {n}")}))
            .await;
    }

    let body = page(&app, &alice, "").await;

    assert_eq!(titles(&body).len(), 50);
    assert!(body["next_cursor"].is_string());
}
