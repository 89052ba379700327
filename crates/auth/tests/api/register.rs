//! `POST /auth/register`.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, status_and_json};

#[tokio::test]
async fn register_returns_201_with_the_new_user() {
    let app = spawn_app().await;

    let response = app
        .post_register(&json!({"username": "alice", "password": "correct horse"}))
        .await;

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201);
    assert_eq!(body["username"], "alice");
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    let created_at = body["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert!(created_at.ends_with('Z'), "{created_at}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

#[tokio::test]
async fn register_accepts_a_form_body_too() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/auth/register"))
        .form(&[("username", "formuser"), ("password", "correct horse")])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_duplicate_username_is_409_whatever_its_case() {
    let app = spawn_app().await;
    app.register_named("alice").await;

    for name in ["alice", "ALICE", "Alice"] {
        let response = app
            .post_register(&json!({"username": name, "password": "another password"}))
            .await;

        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 409, "{name}");
        assert_eq!(body["error"]["code"], "conflict");
    }
}

#[tokio::test]
async fn invalid_usernames_and_passwords_are_422_with_details() {
    let app = spawn_app().await;
    let long_name = "a".repeat(33);
    let long_password = "p".repeat(129);
    let cases = [
        ("al", "correct horse", "username", "too_short"),
        (long_name.as_str(), "correct horse", "username", "too_long"),
        ("ali ce", "correct horse", "username", "invalid_characters"),
        ("al!ce", "correct horse", "username", "invalid_characters"),
        ("élise", "correct horse", "username", "invalid_characters"),
        ("alice", "short", "password", "too_short"),
        ("alice", long_password.as_str(), "password", "too_long"),
    ];

    for (username, password, field, reason) in cases {
        let response = app
            .post_register(&json!({"username": username, "password": password}))
            .await;

        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 422, "{username}/{field}");
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["details"][field], reason, "{body}");
    }
}

#[tokio::test]
async fn both_fields_are_reported_when_both_are_invalid() {
    let app = spawn_app().await;

    let response = app
        .post_register(&json!({"username": "x", "password": "y"}))
        .await;

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["details"],
        json!({"username": "too_short", "password": "too_short"})
    );
}

#[tokio::test]
async fn the_edges_of_the_allowed_lengths_are_accepted() {
    let app = spawn_app().await;

    let shortest = app
        .post_register(&json!({"username": "a.b", "password": "12345678"}))
        .await;
    let longest = app
        .post_register(
            &json!({"username": format!("{}_-", "z".repeat(30)), "password": "p".repeat(128)}),
        )
        .await;

    assert_eq!(shortest.status(), 201);
    assert_eq!(longest.status(), 201);
}

#[tokio::test]
async fn malformed_json_is_400_and_json_of_the_wrong_shape_is_422() {
    let app = spawn_app().await;

    let malformed = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{\"username\": \"alice\",")
        .send()
        .await
        .unwrap();
    let wrong_shape = app
        .post_register(&json!({"username": 42, "password": ["x"]}))
        .await;
    let missing_field = app.post_register(&json!({"username": "alice"})).await;

    let (status, body) = status_and_json(malformed).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let (status, body) = status_and_json(wrong_shape).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, _) = status_and_json(missing_field).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app_with(|s| s.body_limit = 1024).await;

    let response = app
        .post_register(&json!({"username": "alice", "password": "x".repeat(4096)}))
        .await;

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_neither_json_nor_a_form_is_415() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "text/plain")
        .body("username=alice")
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 415);
    assert_eq!(body["error"]["code"], "validation_failed");
}

#[tokio::test]
async fn passwords_are_stored_only_as_argon2id_hashes() {
    let app = spawn_app().await;
    let user = app.register().await;

    let username = herald_auth::domain::Username::parse(&user.username).unwrap();
    let stored = app
        .state
        .store()
        .credentials(&username)
        .await
        .unwrap()
        .unwrap();

    let hash = stored.password_hash.as_str();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(&user.password));
}
