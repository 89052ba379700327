//! `GET /auth/me` and `GET /auth/users`.

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_embedded_app, status_and_json};

#[tokio::test]
async fn me_returns_the_signed_in_user() {
    let app = spawn_app().await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    let response = app.get_with_token("/auth/me", &tokens.access).await;

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], user.id.to_string());
    assert_eq!(body["username"], user.username);
    assert!(body["created_at"].is_string());
}

#[tokio::test]
async fn me_rejects_a_missing_or_garbage_token_with_401() {
    let app = spawn_app().await;

    let missing = app.client.get(app.url("/auth/me")).send().await.unwrap();
    let garbage = app.get_with_token("/auth/me", "not.a.token").await;
    let basic = app
        .client
        .get(app.url("/auth/me"))
        .header("authorization", "Basic YWxpY2U6eA==")
        .send()
        .await
        .unwrap();

    for response in [missing, garbage, basic] {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

async fn usernames(app: &crate::helpers::TestApp, token: &str, query: &str) -> Vec<String> {
    let response = app
        .get_with_token(&format!("/auth/users{query}"), token)
        .await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item.as_object().unwrap().len(), 2, "{item}");
            assert!(item["id"].is_string());
            item["username"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn users_finds_users_by_prefix_ignoring_case_in_name_order() {
    let app = spawn_app().await;
    let me = app.register_named("zed").await;
    for name in ["alice", "Alfred", "bob", "al_x"] {
        app.register_named(name).await;
    }
    let token = app.sign_in(&me).await.access;

    assert_eq!(
        usernames(&app, &token, "?prefix=AL").await,
        ["al_x", "Alfred", "alice"]
    );
    assert_eq!(usernames(&app, &token, "?prefix=ali").await, ["alice"]);
    assert_eq!(
        usernames(&app, &token, "?prefix=nobody").await,
        Vec::<String>::new()
    );
    assert_eq!(
        usernames(&app, &token, "?prefix=al&limit=2").await,
        ["al_x", "Alfred"]
    );
    assert_eq!(usernames(&app, &token, "").await.len(), 5);
}

#[tokio::test]
async fn an_underscore_in_the_prefix_is_not_a_wildcard() {
    let app = spawn_app().await;
    let me = app.register_named("a_bc").await;
    app.register_named("axbc").await;
    let token = app.sign_in(&me).await.access;

    assert_eq!(usernames(&app, &token, "?prefix=a_").await, ["a_bc"]);
}

#[tokio::test]
async fn users_requires_sign_in() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/auth/users?prefix=a"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn bad_limits_and_prefixes_are_422() {
    let app = spawn_app().await;
    let user = app.register().await;
    let token = app.sign_in(&user).await.access;

    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?prefix=a%25",
        &format!("?prefix={}", "a".repeat(33)),
    ] {
        let response = app
            .get_with_token(&format!("/auth/users{query}"), &token)
            .await;
        let (status, body): (u16, Value) = status_and_json(response).await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
}

#[tokio::test]
async fn the_embedded_configuration_serves_the_same_accounts_api() {
    let app = spawn_embedded_app().await;
    let user = app.register_named("Embedded").await;
    let duplicate = app
        .post_register(&json!({"username": "embedded", "password": "whatever123"}))
        .await;
    let tokens = app.sign_in(&user).await;

    let me = app.get_with_token("/auth/me", &tokens.access).await;
    let refreshed = app.post_refresh(&tokens.refresh).await;

    assert_eq!(duplicate.status(), 409);
    assert_eq!(me.status(), 200);
    assert_eq!(refreshed.status(), 200);
    assert_eq!(
        usernames(&app, &tokens.access, "?prefix=emb").await,
        ["Embedded"]
    );
}
