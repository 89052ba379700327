//! Bad input and limits: every one closes or answers with its documented code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{WsClient, error_code, spawn_gateway, spawn_gateway_with};

#[tokio::test]
async fn malformed_json_closes_with_3501() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    client.send_text("{not json").await;
    assert_eq!(client.close_code().await, 3501);
}

#[tokio::test]
async fn malformed_json_before_connect_closes_with_3501() {
    let gw = spawn_gateway().await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client.send_text("[1,2,3]").await;
    assert_eq!(client.close_code().await, 3501);
}

#[tokio::test]
async fn a_binary_frame_on_the_json_protocol_closes_with_3501() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    client.send_binary(vec![0x0a, 0x01, 0x02]).await;
    assert_eq!(client.close_code().await, 3501);
}

#[tokio::test]
async fn a_command_before_connect_closes_with_3501() {
    let gw = spawn_gateway().await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client
        .send_text(&json!({"id": 1, "subscribe": {"channel": "tasks"}}).to_string())
        .await;
    assert_eq!(client.close_code().await, 3501);
}

#[tokio::test]
async fn a_command_without_an_id_closes_with_3501() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    client
        .send_text(&json!({"subscribe": {"channel": "tasks"}}).to_string())
        .await;
    assert_eq!(client.close_code().await, 3501);
}

#[tokio::test]
async fn an_unknown_method_is_answered_with_104_and_the_connection_stays() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    let unknown = client.call("frobnicate", json!({"x": 1})).await;
    assert_eq!(error_code(&unknown), Some(104));
    let rpc = client.call("rpc", json!({"method": "x"})).await;
    assert_eq!(error_code(&rpc), Some(104));
    assert_eq!(client.call("ping", json!({})).await["ping"], json!({}));
}

#[tokio::test]
async fn a_message_over_64_kib_closes_with_1009() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    client
        .call("subscribe", json!({"channel": "chat:big"}))
        .await;
    let text = "x".repeat(64 * 1024);
    client
        .send_text(
            &json!({"id": 9, "publish": {"channel": "chat:big", "data": {"text": text}}})
                .to_string(),
        )
        .await;
    assert_eq!(client.close_code().await, 1009);
}

#[tokio::test]
async fn bad_channel_names_are_refused_with_107() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    let too_long = format!("chat:{}", "a".repeat(251));
    for bad in ["", "chat room", "chat:é", "chat/x", too_long.as_str()] {
        for method in ["subscribe", "publish", "history", "presence"] {
            let reply = client
                .call(method, json!({"channel": bad, "data": {}}))
                .await;
            assert_eq!(error_code(&reply), Some(107), "{method} {bad:?}: {reply}");
        }
    }
}

#[tokio::test]
async fn more_channels_than_the_limit_are_refused_with_106() {
    let gw = spawn_gateway_with(|s| s.limits.max_channels = 3).await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    // The personal channel counts: two more fit.
    for room in ["a", "b"] {
        let reply = client
            .call("subscribe", json!({"channel": format!("chat:{room}")}))
            .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    let over = client.call("subscribe", json!({"channel": "chat:c"})).await;
    assert_eq!(error_code(&over), Some(106));
    client
        .call("unsubscribe", json!({"channel": "chat:a"}))
        .await;
    let fits = client.call("subscribe", json!({"channel": "chat:c"})).await;
    assert!(fits.get("error").is_none(), "{fits}");
}

#[tokio::test]
async fn a_publish_flood_is_refused_with_111() {
    let gw = spawn_gateway_with(|s| {
        // One token per 100 s: the burst is all there is during the test.
        s.limits.publish_rate = 0.01;
        s.limits.publish_burst = 3;
    })
    .await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    client
        .call("subscribe", json!({"channel": "chat:flood"}))
        .await;
    let mut refused = 0;
    for n in 0..10 {
        let reply = client
            .call(
                "publish",
                json!({"channel": "chat:flood", "data": {"n": n}}),
            )
            .await;
        if error_code(&reply) == Some(111) {
            assert_eq!(reply["error"]["temporary"], true);
            refused += 1;
        }
    }
    assert_eq!(refused, 7);
}

#[tokio::test]
async fn the_per_user_connection_limit_closes_the_next_one_with_3504() {
    let gw = spawn_gateway_with(|s| s.limits.max_connections_per_user = 2).await;
    let user = herald_common::ids::UserId::new();
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
        let reply = client.connect(&gw.keys.token(&user, "alice", 600)).await;
        assert!(reply.get("error").is_none());
        kept.push(client);
    }
    let mut third = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    third
        .send_text(
            &json!({"id": 1, "connect": {"token": gw.keys.token(&user, "alice", 600)}}).to_string(),
        )
        .await;
    assert_eq!(third.close_code().await, 3504);
    let (_other_user, _, _) = gw.connected_client("bob").await;
}

#[tokio::test]
async fn the_per_node_connection_limit_closes_the_next_one_with_3504() {
    let gw = spawn_gateway_with(|s| s.limits.max_connections = 2).await;
    let (_a, _, _) = gw.connected_client("alice").await;
    let (_b, _, _) = gw.connected_client("bob").await;
    let mut third = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    assert_eq!(third.close_code().await, 3504);
}

#[tokio::test]
async fn no_connect_within_the_connect_timeout_closes_with_3502() {
    let gw = spawn_gateway_with(|s| s.connect_timeout = Duration::from_millis(300)).await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    assert_eq!(client.close_code().await, 3502);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let gw = spawn_gateway().await;
    let mut request = gw
        .ws_url("/connection/websocket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static("https://evil.example"));
    let err = crate::support::refused_handshake(request).await;
    assert!(err.contains("403"), "{err}");

    let mut same_host = gw
        .ws_url("/connection/websocket")
        .into_client_request()
        .unwrap();
    let origin = format!("http://127.0.0.1:{}", gw.port);
    same_host
        .headers_mut()
        .insert("Origin", HeaderValue::from_str(&origin).unwrap());
    assert!(tokio_tungstenite::connect_async(same_host).await.is_ok());
}

#[tokio::test]
async fn listed_origins_are_allowed() {
    let gw =
        spawn_gateway_with(|s| s.allowed_origins = vec!["https://app.example".to_owned()]).await;
    let mut request = gw
        .ws_url("/connection/websocket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static("https://app.example"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}
