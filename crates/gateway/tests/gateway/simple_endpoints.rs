//! `/ws/chat/{room}` (and `/ws/chat`, the lobby) and `/ws/notifications/{channel}`: text lines for websocat and curl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{WsClient, refused_handshake, spawn_gateway};

fn publication(json: &str) -> PublishRequest {
    PublishRequest::new(RawValue::from_string(json.to_owned()).unwrap())
        .with_history(HistoryPolicy::new(10, Duration::from_secs(60)))
}

#[tokio::test]
async fn chat_lines_flow_both_ways_with_a_query_token() {
    let gw = spawn_gateway().await;
    let alice = gw.keys.token(&UserId::new(), "alice", 600);
    let bob = gw.keys.token(&UserId::new(), "bob", 600);
    let mut a = WsClient::open(&gw.ws_url(&format!("/ws/chat/lobby?token={alice}"))).await;
    let mut b = WsClient::open(&gw.ws_url(&format!("/ws/chat/lobby?token={bob}"))).await;
    gw.wait_for("both subscribed", |s| s.subscriptions >= 2)
        .await;
    a.send_text("hello there\n").await;
    assert_eq!(b.next_line().await, "alice: hello there");
    assert_eq!(a.next_line().await, "alice: hello there");
    b.send_text("hi").await;
    assert_eq!(a.next_line().await, "bob: hi");
}

#[tokio::test]
async fn chat_without_a_room_is_the_lobby() {
    let gw = spawn_gateway().await;
    let alice = gw.keys.token(&UserId::new(), "alice", 600);
    let bob = gw.keys.token(&UserId::new(), "bob", 600);
    let mut a = WsClient::open(&gw.ws_url(&format!("/ws/chat?token={alice}"))).await;
    let mut b = WsClient::open(&gw.ws_url(&format!("/ws/chat/lobby?token={bob}"))).await;
    gw.wait_for("both subscribed", |s| s.subscriptions >= 2)
        .await;
    a.send_text("anyone here?").await;
    assert_eq!(b.next_line().await, "alice: anyone here?");
}

#[tokio::test]
async fn the_room_is_told_who_joined_and_who_left() {
    let gw = spawn_gateway().await;
    let alice = gw.keys.token(&UserId::new(), "alice", 600);
    let bob = gw.keys.token(&UserId::new(), "bob", 600);
    let mut a = WsClient::open(&gw.ws_url(&format!("/ws/chat/party?token={alice}"))).await;
    assert_eq!(a.next_any_line().await, "* alice joined");
    let mut b = WsClient::open(&gw.ws_url(&format!("/ws/chat/party?token={bob}"))).await;
    assert_eq!(a.next_any_line().await, "* bob joined");
    assert_eq!(b.next_any_line().await, "* bob joined");
    b.send_text("bye").await;
    assert_eq!(a.next_any_line().await, "bob: bye");
    drop(b);
    assert_eq!(a.next_any_line().await, "* bob left");

    // A protocol client in the room gets the same events as join/leave pushes.
    let (mut sdk, _, _) = gw.connected_client("carol").await;
    sdk.call(
        "subscribe",
        json!({"channel": "chat:party", "join_leave": true}),
    )
    .await;
    let mut c = WsClient::open(&gw.ws_url(&format!("/ws/chat/party?token={bob}"))).await;
    assert_eq!(c.next_any_line().await, "* bob joined");
    // Its own join and bob's, in whichever order they were announced.
    let mut joined = Vec::new();
    for _ in 0..2 {
        let push = sdk.next_push().await;
        assert_eq!(push["push"]["channel"], "chat:party", "{push}");
        joined.push(push["push"]["join"]["info"]["conn_info"]["name"].to_string());
    }
    joined.sort();
    assert_eq!(joined, [r#""bob""#, r#""carol""#]);
}

#[tokio::test]
async fn notification_feeds_announce_no_joins() {
    let gw = spawn_gateway().await;
    let user = UserId::new();
    let token = gw.keys.token(&user, "alice", 600);
    let feed = format!("/ws/notifications/notifications%23{user}?token={token}");
    let mut first = WsClient::open(&gw.ws_url(&feed)).await;
    let _second = WsClient::open(&gw.ws_url(&feed)).await;
    gw.wait_for("both subscribed", |s| s.subscriptions >= 2)
        .await;
    assert!(first.nothing_within(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn protocol_clients_and_line_clients_share_a_room() {
    let gw = spawn_gateway().await;
    let token = gw.keys.token(&UserId::new(), "carol", 600);
    let mut request = gw.ws_url("/ws/chat/mixed").into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut line_client = WsClient::from_stream(ws);
    let (mut sdk, _, _) = gw.connected_client("dave").await;
    sdk.call("subscribe", json!({"channel": "chat:mixed"}))
        .await;
    gw.wait_for("both subscribed", |s| s.subscriptions >= 3)
        .await;
    sdk.call(
        "publish",
        json!({"channel": "chat:mixed", "data": {"text": "from the sdk"}}),
    )
    .await;
    assert_eq!(line_client.next_line().await, "dave: from the sdk");
    assert_eq!(
        sdk.next_publication("chat:mixed").await["data"]["text"],
        "from the sdk"
    );
    line_client.send_text("from websocat").await;
    let publication = sdk.next_publication("chat:mixed").await;
    assert_eq!(publication["data"], json!({"text": "from websocat"}));
    assert_eq!(publication["info"]["conn_info"]["name"], "carol");
}

#[tokio::test]
async fn simple_endpoints_refuse_a_missing_or_bad_token_with_401() {
    let gw = spawn_gateway().await;
    for path in [
        "/ws/chat/lobby",
        "/ws/notifications/tasks",
        "/ws/chat/lobby?token=garbage",
    ] {
        let err = refused_handshake(gw.ws_url(path)).await;
        assert!(err.contains("401"), "{path}: {err}");
    }
    let expired = gw.keys.expired(&UserId::new(), "alice");
    let err = refused_handshake(gw.ws_url(&format!("/ws/chat/lobby?token={expired}"))).await;
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn the_notifications_endpoint_writes_the_text_or_the_json_and_ignores_input() {
    let gw = spawn_gateway().await;
    let token = gw.keys.token(&UserId::new(), "alice", 600);
    let mut feed =
        WsClient::open(&gw.ws_url(&format!("/ws/notifications/tasks?token={token}"))).await;
    gw.wait_for("subscribed", |s| s.subscriptions >= 1).await;
    feed.send_text("ignored").await;
    let tasks = ChannelName::tasks();
    gw.broker
        .publish(
            &tasks,
            publication(r#"{"type":"task.created","text":"New task created: Write docs"}"#),
        )
        .await
        .unwrap();
    assert_eq!(feed.next_line().await, "New task created: Write docs");
    gw.broker
        .publish(&tasks, publication(r#"{"n":1}"#))
        .await
        .unwrap();
    assert_eq!(feed.next_line().await, r#"{"n":1}"#);
}

#[tokio::test]
async fn the_personal_feed_is_reached_with_percent_23_and_refused_to_others() {
    let gw = spawn_gateway().await;
    let alice = UserId::new();
    let token = gw.keys.token(&alice, "alice", 600);
    let path = format!("/ws/notifications/notifications%23{alice}?token={token}");
    let mut feed = WsClient::open(&gw.ws_url(&path)).await;
    gw.wait_for("subscribed", |s| s.subscriptions >= 1).await;
    gw.broker
        .publish(
            &ChannelName::notifications(&alice),
            publication(r#"{"text":"bob assigned you \"x\""}"#),
        )
        .await
        .unwrap();
    assert_eq!(feed.next_line().await, "bob assigned you \"x\"");

    let mallory = gw.keys.token(&UserId::new(), "mallory", 600);
    let path = format!("/ws/notifications/notifications%23{alice}?token={mallory}");
    let err = refused_handshake(gw.ws_url(&path)).await;
    assert!(err.contains("403"), "{err}");
    let path = format!("/ws/notifications/news?token={mallory}");
    let err = refused_handshake(gw.ws_url(&path)).await;
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn a_chat_line_flood_is_answered_with_a_notice() {
    let gw = crate::support::spawn_gateway_with(|s| {
        s.limits.publish_rate = 0.5;
        s.limits.publish_burst = 1;
    })
    .await;
    let token = gw.keys.token(&UserId::new(), "alice", 600);
    let mut a = WsClient::open(&gw.ws_url(&format!("/ws/chat/flood?token={token}"))).await;
    gw.wait_for("subscribed", |s| s.subscriptions >= 1).await;
    a.send_text("one").await;
    assert_eq!(a.next_line().await, "alice: one");
    a.send_text("two").await;
    assert!(a.next_line().await.starts_with("* too many messages"));
}
