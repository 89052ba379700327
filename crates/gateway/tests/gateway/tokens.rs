//! Tokens on connect and refresh: expired ones get 109 (the SDK fetches a new one), every
//! other refusal is the terminal 3500.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use herald_common::ids::UserId;
use serde_json::json;

use crate::support::{WsClient, error_code, spawn_gateway};

#[tokio::test]
async fn an_expired_token_is_answered_with_109_and_the_connection_stays_open() {
    let gw = spawn_gateway().await;
    let user = UserId::new();
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let reply = client.connect(&gw.keys.expired(&user, "alice")).await;
    assert_eq!(error_code(&reply), Some(109), "{reply}");
    let retry = client.connect(&gw.keys.token(&user, "alice", 600)).await;
    assert!(retry.get("error").is_none(), "{retry}");
}

#[tokio::test]
async fn a_forged_token_closes_with_3500() {
    let gw = spawn_gateway().await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client
        .send_text(
            &json!({"id": 1, "connect": {"token": gw.keys.forged(&UserId::new(), "mallory")}})
                .to_string(),
        )
        .await;
    assert_eq!(client.close_code().await, 3500);
}

#[tokio::test]
async fn a_none_algorithm_token_closes_with_3500() {
    let gw = spawn_gateway().await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client
        .send_text(
            &json!({"id": 1, "connect": {"token": gw.keys.unsigned(&UserId::new(), "mallory")}})
                .to_string(),
        )
        .await;
    assert_eq!(client.close_code().await, 3500);
}

#[tokio::test]
async fn a_missing_or_garbage_token_closes_with_3500() {
    let gw = spawn_gateway().await;
    for token in ["", "not-a-jwt", "a.b.c"] {
        let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
        client
            .send_text(&json!({"id": 1, "connect": {"token": token}}).to_string())
            .await;
        assert_eq!(client.close_code().await, 3500, "{token:?}");
    }
}

#[tokio::test]
async fn a_refresh_with_another_users_token_closes_with_3500() {
    let gw = spawn_gateway().await;
    let (mut client, _, _) = gw.connected_client("alice").await;
    let other = gw.keys.token(&UserId::new(), "mallory", 600);
    client
        .send_text(&json!({"id": 7, "refresh": {"token": other}}).to_string())
        .await;
    assert_eq!(client.close_code().await, 3500);
}

#[tokio::test]
async fn a_refresh_with_an_expired_token_is_answered_with_109() {
    let gw = spawn_gateway().await;
    let (mut client, user, _) = gw.connected_client("alice").await;
    let reply = client
        .call("refresh", json!({"token": gw.keys.expired(&user, "alice")}))
        .await;
    assert_eq!(error_code(&reply), Some(109));
}
