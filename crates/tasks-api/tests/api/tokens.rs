//! Bearer tokens: every route needs one, verified with the key set auth publishes.

use herald_auth::keys::{SigningKey, unix_now};
use herald_common::claims::Claims;
use herald_common::ids::UserId;
use serde_json::json;

use herald_service::Secret;

use crate::helpers::{Options, spawn_app, spawn_app_with, status_and_json};

#[tokio::test]
async fn every_route_refuses_a_request_without_a_token() {
    let app = spawn_app().await;
    let id = UserId::new();
    for (method, path) in [
        ("POST", "/tasks".to_owned()),
        ("GET", "/tasks".to_owned()),
        ("GET", format!("/tasks/{id}")),
        ("PATCH", format!("/tasks/{id}")),
        ("DELETE", format!("/tasks/{id}")),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .json(&json!({"title": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        let (status, error) = status_and_json(response).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(error["error"]["code"], "unauthorized", "{method} {path}");
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    let app = spawn_app().await;
    let user = UserId::new();
    let token = app.token(&user, "alice", unix_now() - 3600, 900);

    let response = app
        .client
        .get(app.url("/tasks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();

    let (status, error) = status_and_json(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["message"], "token expired");
}

#[tokio::test]
async fn a_token_signed_by_an_unpublished_key_is_refused() {
    let app = spawn_app().await;
    let stranger = SigningKey::generate();
    let claims = Claims::new(
        &UserId::new(),
        "mallory",
        "herald",
        "herald",
        unix_now(),
        900,
    );
    let token = stranger.sign(&claims).unwrap();

    let response = app
        .client
        .get(app.url("/tasks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let app = spawn_app().await;
    for (issuer, audience) in [("herald", "elsewhere"), ("someone-else", "herald")] {
        let claims = Claims::new(&UserId::new(), "alice", issuer, audience, unix_now(), 900);
        let token = app.key.sign(&claims);
        let response = app
            .client
            .get(app.url("/tasks"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{issuer} {audience}");
    }
}

#[tokio::test]
async fn a_garbage_token_is_refused() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/tasks"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
}

/// A token minted by the team's own backend: HS256 with a shared secret, its own issuer.
fn own_backend_token(secret: &str, user: &UserId) -> String {
    let claims = json!({
        "sub": user.to_string(),
        "name": "crm-user",
        "iss": "https://crm.example",
        "aud": "herald",
        "iat": unix_now(),
        "exp": unix_now() + 300,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_from_the_teams_own_backend_are_accepted_only_when_their_secret_is_configured() {
    let secret = "a-shared-secret-of-at-least-32-bytes!!";
    let token = own_backend_token(secret, &UserId::new());
    let trusting = spawn_app_with(Options {
        customize: Box::new(move |settings| {
            settings.jwt.external.hmac_secret = Some(Secret::new(secret.to_owned()));
            settings.jwt.external.issuer = Some("https://crm.example".to_owned());
        }),
        ..Options::default()
    })
    .await;
    let plain = spawn_app().await;

    let accepted = trusting
        .client
        .get(trusting.url("/tasks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let refused = plain
        .client
        .get(plain.url("/tasks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(accepted.status(), 200);
    assert_eq!(refused.status(), 401);
}
