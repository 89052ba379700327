//! `POST /auth/refresh` and `POST /auth/logout`: rotation, reuse detection, revocation.

use std::time::Duration;

use herald_broker::BrokerEvent;
use herald_common::{channel::ChannelName, control::ControlMessage};
use serde_json::json;

use crate::helpers::{
    TestApp, spawn_app, spawn_app_with, spawn_embedded_app, status_and_json, tokens_of,
};

#[tokio::test]
async fn refresh_returns_new_tokens_and_the_presented_one_stops_working() {
    let app = spawn_app().await;
    let user = app.register().await;
    let first = app.sign_in(&user).await;

    let response = app.post_refresh(&first.refresh).await;

    assert_eq!(response.status(), 200);
    let second = tokens_of(response).await;
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(
        app.get_with_token("/auth/me", &second.access)
            .await
            .status(),
        200
    );
    let again = app.post_refresh(&second.refresh).await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn presenting_a_rotated_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let user = app.register().await;
    let first = app.sign_in(&user).await;
    let other_session = app.sign_in(&user).await;
    let second = tokens_of(app.post_refresh(&first.refresh).await).await;

    let replay = app.post_refresh(&first.refresh).await;

    let (status, body) = status_and_json(replay).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    // The legitimate successor is revoked too: whoever holds it must sign in again.
    assert_eq!(app.post_refresh(&second.refresh).await.status(), 401);
    // Another sign-in is another family and keeps working.
    assert_eq!(app.post_refresh(&other_session.refresh).await.status(), 200);
}

#[tokio::test]
async fn refresh_accepts_the_oauth2_refresh_form() {
    let app = spawn_app().await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    let response = app
        .client
        .post(app.url("/auth/refresh"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_or_garbage_refresh_tokens_are_401() {
    let app = spawn_app().await;

    for token in [
        "",
        "nope",
        &"x".repeat(500),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = app.post_refresh(token).await;
        assert_eq!(response.status(), 401, "{token:?}");
    }
}

#[tokio::test]
async fn an_expired_refresh_token_is_401() {
    let app = spawn_app_with(|s| s.jwt.refresh_ttl = Duration::from_secs(1)).await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let response = app.post_refresh(&tokens.refresh).await;

    assert_eq!(response.status(), 401);
}

/// Subscribes to the broker's control messages (through a probe channel subscription, which
/// returns once the pub/sub connection is effective).
async fn control_messages(
    app: &TestApp,
) -> (
    herald_broker::Subscriber,
    tokio::sync::mpsc::Receiver<BrokerEvent>,
) {
    let (subscriber, events) = app.broker.subscriber(64);
    subscriber
        .subscribe(&ChannelName::parse("chat:probe").unwrap())
        .await
        .unwrap();
    (subscriber, events)
}

async fn next_control(events: &mut tokio::sync::mpsc::Receiver<BrokerEvent>) -> ControlMessage {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("a control message")
            .unwrap();
        if let BrokerEvent::Control(payload) = event {
            return ControlMessage::decode(std::str::from_utf8(&payload).unwrap()).unwrap();
        }
    }
}

async fn logout_revokes_the_session_and_tells_the_gateways(app: TestApp) {
    let user = app.register().await;
    let session = app.sign_in(&user).await;
    let other_session = app.sign_in(&user).await;
    let (_subscriber, mut events) = control_messages(&app).await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&session.access)
        .json(&json!({"refresh_token": session.refresh}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(
        next_control(&mut events).await,
        ControlMessage::RevokeUser { user: user.id }
    );
    assert_eq!(app.post_refresh(&session.refresh).await.status(), 401);
    assert_eq!(app.post_refresh(&other_session.refresh).await.status(), 200);
}

#[tokio::test]
async fn logout_revokes_the_session_and_publishes_a_revocation_through_redis() {
    logout_revokes_the_session_and_tells_the_gateways(spawn_app().await).await;
}

#[tokio::test]
async fn logout_revokes_the_session_and_publishes_a_revocation_in_memory() {
    logout_revokes_the_session_and_tells_the_gateways(spawn_embedded_app().await).await;
}

#[tokio::test]
async fn logout_without_a_body_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let user = app.register().await;
    let first = app.sign_in(&user).await;
    let second = app.sign_in(&user).await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&first.access)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(app.post_refresh(&first.refresh).await.status(), 401);
    assert_eq!(app.post_refresh(&second.refresh).await.status(), 401);
}

#[tokio::test]
async fn logout_cannot_revoke_another_users_refresh_token() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let mallory = app.register().await;
    let alice_tokens = app.sign_in(&alice).await;
    let mallory_tokens = app.sign_in(&mallory).await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&mallory_tokens.access)
        .json(&json!({"refresh_token": alice_tokens.refresh}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(app.post_refresh(&alice_tokens.refresh).await.status(), 200);
}

#[tokio::test]
async fn logout_requires_a_bearer_token() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn a_malformed_logout_body_is_400() {
    let app = spawn_app().await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&tokens.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
}
