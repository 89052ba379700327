//! The client protocol: connect, subscribe, publish, presence, history, joins and leaves,
//! the personal notifications channel, pings, token refresh and revocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::control::ControlMessage;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::{WsClient, error_code, spawn_gateway, spawn_gateway_with};

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

#[tokio::test]
async fn connect_replies_with_the_client_id_ping_expiry_and_the_personal_subscription() {
    let gw = spawn_gateway().await;
    let (_client, user, connect) = gw.connected_client("alice").await;
    assert!(connect["client"].as_str().is_some_and(|c| c.len() == 36));
    assert_eq!(connect["ping"], 25);
    assert_eq!(connect["pong"], true);
    assert_eq!(connect["expires"], true);
    assert!(
        connect["ttl"]
            .as_u64()
            .is_some_and(|ttl| ttl > 500 && ttl <= 600)
    );
    let personal = &connect["subs"][format!("notifications#{user}")];
    assert_eq!(personal["recoverable"], true);
    assert!(personal["epoch"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn a_chat_publication_reaches_every_subscriber_with_the_author_info() {
    let gw = spawn_gateway().await;
    let (mut alice, alice_id, alice_connect) = gw.connected_client("alice").await;
    let (mut bob, _, _) = gw.connected_client("bob").await;
    for client in [&mut alice, &mut bob] {
        let reply = client
            .call("subscribe", json!({"channel": "chat:lobby"}))
            .await;
        assert_eq!(reply["subscribe"]["recoverable"], true, "{reply}");
    }
    let reply = alice
        .call(
            "publish",
            json!({"channel": "chat:lobby", "data": {"text": "hello"}}),
        )
        .await;
    assert_eq!(reply["publish"], json!({}));
    for client in [&mut bob, &mut alice] {
        let publication = client.next_publication("chat:lobby").await;
        assert_eq!(publication["data"], json!({"text": "hello"}));
        assert_eq!(publication["offset"], 1);
        assert_eq!(publication["info"]["user"], alice_id.to_string());
        assert_eq!(publication["info"]["client"], alice_connect["client"]);
        assert_eq!(publication["info"]["conn_info"], json!({"name": "alice"}));
    }
}

#[tokio::test]
async fn publishing_needs_a_subscription_and_server_only_channels_refuse_with_103() {
    let gw = spawn_gateway().await;
    let (mut alice, alice_id, _) = gw.connected_client("alice").await;
    let not_subscribed = alice
        .call(
            "publish",
            json!({"channel": "chat:lobby", "data": {"text": "x"}}),
        )
        .await;
    assert_eq!(error_code(&not_subscribed), Some(103));
    alice.call("subscribe", json!({"channel": "tasks"})).await;
    let tasks = alice
        .call(
            "publish",
            json!({"channel": "tasks", "data": {"text": "x"}}),
        )
        .await;
    assert_eq!(error_code(&tasks), Some(103));
    let own = alice
        .call(
            "publish",
            json!({"channel": format!("notifications#{alice_id}"), "data": {"text": "x"}}),
        )
        .await;
    assert_eq!(error_code(&own), Some(103));
    alice
        .call("subscribe", json!({"channel": "chat:lobby"}))
        .await;
    let no_data = alice
        .call("publish", json!({"channel": "chat:lobby"}))
        .await;
    assert_eq!(error_code(&no_data), Some(107));
}

#[tokio::test]
async fn notification_channels_are_server_side_own_gets_105_and_another_users_103() {
    let gw = spawn_gateway().await;
    let (mut alice, alice_id, _) = gw.connected_client("alice").await;
    let (_bob, bob_id, _) = gw.connected_client("bob").await;
    let own = alice
        .call(
            "subscribe",
            json!({"channel": format!("notifications#{alice_id}")}),
        )
        .await;
    assert_eq!(error_code(&own), Some(105));
    let other = alice
        .call(
            "subscribe",
            json!({"channel": format!("notifications#{bob_id}")}),
        )
        .await;
    assert_eq!(error_code(&other), Some(103));
    let history = alice
        .call(
            "history",
            json!({"channel": format!("notifications#{bob_id}"), "limit": 10}),
        )
        .await;
    assert_eq!(error_code(&history), Some(103));
    let unknown = alice.call("subscribe", json!({"channel": "news"})).await;
    assert_eq!(error_code(&unknown), Some(102));
    let twice = alice.call("subscribe", json!({"channel": "tasks"})).await;
    assert!(twice.get("error").is_none());
    let again = alice.call("subscribe", json!({"channel": "tasks"})).await;
    assert_eq!(error_code(&again), Some(105));
}

#[tokio::test]
async fn the_personal_notifications_channel_delivers_without_a_client_subscribe() {
    let gw = spawn_gateway().await;
    let (mut alice, alice_id, _) = gw.connected_client("alice").await;
    let channel = ChannelName::notifications(&alice_id);
    let request = PublishRequest::new(raw(
        r#"{"type":"task.assigned","text":"bob assigned you \"x\""}"#,
    ))
    .with_history(HistoryPolicy::new(300, Duration::from_secs(60)));
    gw.broker.publish(&channel, request).await.unwrap();
    let publication = alice.next_publication(channel.as_str()).await;
    assert_eq!(publication["data"]["type"], "task.assigned");
    assert_eq!(publication["offset"], 1);
}

#[tokio::test]
async fn presence_and_presence_stats_list_the_subscribers() {
    let gw = spawn_gateway().await;
    let (mut alice, alice_id, alice_connect) = gw.connected_client("alice").await;
    let (mut bob, _, _) = gw.connected_client("bob").await;
    alice
        .call("subscribe", json!({"channel": "chat:room"}))
        .await;
    bob.call("subscribe", json!({"channel": "chat:room"})).await;
    let presence = alice
        .call("presence", json!({"channel": "chat:room"}))
        .await;
    let clients = presence["presence"]["presence"].as_object().unwrap();
    assert_eq!(clients.len(), 2);
    let me = &clients[alice_connect["client"].as_str().unwrap()];
    assert_eq!(me["user"], alice_id.to_string());
    assert_eq!(me["conn_info"], json!({"name": "alice"}));
    let stats = alice
        .call("presence_stats", json!({"channel": "chat:room"}))
        .await;
    assert_eq!(
        stats["presence_stats"],
        json!({"num_clients": 2, "num_users": 2})
    );
    bob.call("unsubscribe", json!({"channel": "chat:room"}))
        .await;
    let stats = alice
        .call("presence_stats", json!({"channel": "chat:room"}))
        .await;
    assert_eq!(
        stats["presence_stats"],
        json!({"num_clients": 1, "num_users": 1})
    );
    let tasks = alice.call("presence", json!({"channel": "tasks"})).await;
    assert_eq!(error_code(&tasks), Some(108));
}

#[tokio::test]
async fn joins_and_leaves_are_pushed_to_subscribers_that_asked_for_them() {
    let gw = spawn_gateway().await;
    let (mut watcher, _, _) = gw.connected_client("watcher").await;
    let (mut quiet, _, _) = gw.connected_client("quiet").await;
    watcher
        .call(
            "subscribe",
            json!({"channel": "chat:room", "join_leave": true}),
        )
        .await;
    quiet
        .call("subscribe", json!({"channel": "chat:room"}))
        .await;
    // Both joins arrive (the watcher's own included), in whichever order they were announced.
    let mut joined = Vec::new();
    for _ in 0..2 {
        let push = watcher.next_push().await;
        joined.push(
            push["push"]["join"]["info"]["conn_info"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    joined.sort();
    assert_eq!(joined, ["quiet", "watcher"]);
    let (mut carol, carol_id, _) = gw.connected_client("carol").await;
    carol
        .call("subscribe", json!({"channel": "chat:room"}))
        .await;
    let join = watcher.next_push().await;
    assert_eq!(join["push"]["channel"], "chat:room");
    assert_eq!(join["push"]["join"]["info"]["user"], carol_id.to_string());
    carol
        .call("unsubscribe", json!({"channel": "chat:room"}))
        .await;
    let leave = watcher.next_push().await;
    assert_eq!(leave["push"]["leave"]["info"]["user"], carol_id.to_string());
    assert!(
        quiet.nothing_within(Duration::from_millis(300)).await,
        "no join/leave without join_leave"
    );
}

#[tokio::test]
async fn history_returns_publications_and_the_stream_position() {
    let gw = spawn_gateway().await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    alice.call("subscribe", json!({"channel": "chat:h"})).await;
    for n in 1..=5 {
        alice
            .call(
                "publish",
                json!({"channel": "chat:h", "data": {"text": format!("m{n}")}}),
            )
            .await;
    }
    let history = alice
        .call("history", json!({"channel": "chat:h", "limit": 3}))
        .await;
    let result = &history["history"];
    let offsets: Vec<u64> = result["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    assert_eq!(result["offset"], 5);
    let newest = alice
        .call(
            "history",
            json!({"channel": "chat:h", "limit": 2, "reverse": true}),
        )
        .await;
    let texts: Vec<&str> = newest["history"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m5", "m4"]);
    let epoch = result["epoch"].as_str().unwrap();
    let since = alice
        .call(
            "history",
            json!({"channel": "chat:h", "limit": -1, "since": {"offset": 3, "epoch": epoch}}),
        )
        .await;
    assert_eq!(
        since["history"]["publications"].as_array().unwrap().len(),
        2
    );
    let wrong_epoch = alice
        .call(
            "history",
            json!({"channel": "chat:h", "limit": 10, "since": {"offset": 3, "epoch": "nope"}}),
        )
        .await;
    assert_eq!(error_code(&wrong_epoch), Some(112));
}

#[tokio::test]
async fn commands_batched_in_one_frame_are_answered_in_order() {
    let gw = spawn_gateway().await;
    let user = herald_common::ids::UserId::new();
    let token = gw.keys.token(&user, "alice", 600);
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let frame = [
        json!({"id": 1, "connect": {"token": token}}),
        json!({"id": 2, "subscribe": {"channel": "chat:a", "flag": 1, "unknown_field": true}}),
        json!({"id": 3, "subscribe": {"channel": "tasks"}}),
        json!({"id": 4, "ping": {}}),
    ]
    .map(|m| m.to_string())
    .join("\n");
    client.send_text(&frame).await;
    let mut replies = Vec::new();
    for id in 1..=4 {
        let reply = client.reply(id).await;
        assert!(reply.get("error").is_none(), "{reply}");
        replies.push(reply);
    }
    assert!(
        replies[1]["subscribe"].get("id").is_none(),
        "no channel compaction id"
    );
}

#[tokio::test]
async fn the_server_pings_and_a_client_that_never_pongs_is_closed_with_3012() {
    let gw = spawn_gateway_with(|s| {
        s.ping_interval = Duration::from_millis(300);
        s.pong_timeout = Duration::from_millis(900);
    })
    .await;
    let (mut answering, _, connect) = gw.connected_client("alice").await;
    assert_eq!(connect["ping"], 1);
    let (mut silent, _, _) = gw.connected_client("bob").await;
    silent.answer_pings = false;
    // The answering client is still there after several pings...
    for _ in 0..12 {
        let reply = answering.call("ping", json!({})).await;
        assert_eq!(reply["ping"], json!({}));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answering.pings_seen >= 2);
    // ...while the silent one was closed.
    assert_eq!(silent.close_code().await, 3012);
}

#[tokio::test]
async fn a_token_that_is_not_refreshed_ends_the_connection_with_3005() {
    let gw =
        spawn_gateway_with(|s| s.limits.expired_close_delay = Duration::from_millis(200)).await;
    let user = herald_common::ids::UserId::new();
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let connect = client.connect(&gw.keys.token(&user, "alice", 1)).await;
    assert!(
        connect["connect"]["ttl"]
            .as_u64()
            .is_some_and(|ttl| ttl <= 1),
        "{connect}"
    );
    assert_eq!(client.close_code().await, 3005);
}

#[tokio::test]
async fn a_refresh_with_a_new_token_keeps_the_connection_open() {
    let gw =
        spawn_gateway_with(|s| s.limits.expired_close_delay = Duration::from_millis(200)).await;
    let user = herald_common::ids::UserId::new();
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client.connect(&gw.keys.token(&user, "alice", 1)).await;
    let refreshed = client
        .call(
            "refresh",
            json!({"token": gw.keys.token(&user, "alice", 600)}),
        )
        .await;
    assert_eq!(refreshed["refresh"]["expires"], true);
    assert!(refreshed["refresh"]["ttl"].as_u64().unwrap() > 500);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let reply = client.call("ping", json!({})).await;
    assert_eq!(reply["ping"], json!({}));
}

#[tokio::test]
async fn a_revocation_closes_every_connection_of_that_user_and_no_other() {
    let gw = spawn_gateway().await;
    let user = herald_common::ids::UserId::new();
    let mut first = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    first.connect(&gw.keys.token(&user, "alice", 600)).await;
    let mut second = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    second.connect(&gw.keys.token(&user, "alice", 600)).await;
    let (mut bob, _, _) = gw.connected_client("bob").await;
    let revoke = ControlMessage::RevokeUser { user }.encode().unwrap();
    gw.broker
        .publish_control(Bytes::from(revoke))
        .await
        .unwrap();
    assert_eq!(first.close_code().await, 3500);
    assert_eq!(second.close_code().await, 3500);
    let reply = bob.call("ping", json!({})).await;
    assert_eq!(reply["ping"], json!({}));
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_send_gets_no_reply() {
    let gw = spawn_gateway().await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    alice.send_text(r#"{"send":{"data":{"x":1}}}"#).await;
    let reply: Value = alice
        .call(
            "presence_stats",
            json!({"channel": "chat:z", "extra": [1, 2]}),
        )
        .await;
    assert_eq!(
        reply["presence_stats"],
        json!({"num_clients": 0, "num_users": 0})
    );
}

#[tokio::test]
async fn stopping_the_node_closes_connections_with_3001_so_clients_reconnect() {
    let gw = spawn_gateway().await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let token = gw
        .keys
        .token(&herald_common::ids::UserId::new(), "bob", 600);
    let mut line = WsClient::open(&gw.ws_url(&format!("/ws/chat/lobby?token={token}"))).await;
    gw.wait_for("both connected", |s| s.connections == 2).await;
    gw.stop();
    assert_eq!(alice.close_code().await, 3001);
    assert_eq!(line.close_code().await, 3001);
}
