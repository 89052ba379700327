//! Public feeds for anonymous readers: with `HERALD_CHANNELS__PUBLIC__ANONYMOUS=true`, a
//! connection without a token reads `public:*` (subscribe, history) through the protocol
//! and `/ws/notifications/{channel}`; it never publishes, never sees presence, reaches no
//! other namespace, and counts against its address's own connection limit.

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{
    TestGateway, WsClient, error_code, refused_handshake, spawn_gateway, spawn_gateway_with,
};

async fn public_gateway() -> TestGateway {
    spawn_gateway_with(|s| s.channels.public.anonymous = true).await
}

/// A server publication into `channel`, kept as the public namespace keeps its history.
async fn publish(gw: &TestGateway, channel: &str, json: &str) {
    let request = PublishRequest::new(RawValue::from_string(json.to_owned()).unwrap())
        .with_history(HistoryPolicy::new(100, Duration::from_secs(3600)));
    gw.broker
        .publish(&ChannelName::parse(channel).unwrap(), request)
        .await
        .unwrap();
}

/// A protocol client connected without a token.
async fn anonymous_client(gw: &TestGateway) -> (WsClient, Value) {
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let reply = client.call("connect", json!({})).await;
    assert!(reply.get("error").is_none(), "anonymous connect: {reply}");
    (client, reply["connect"].clone())
}

#[tokio::test]
async fn an_anonymous_reader_follows_a_public_feed_and_reads_its_history() {
    let gw = public_gateway().await;
    publish(&gw, "public:scores", r#"{"home":0,"away":0}"#).await;

    let (mut fan, connected) = anonymous_client(&gw).await;
    assert!(connected["client"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(connected.get("expires").is_none(), "{connected}");
    assert!(
        connected.get("subs").is_none(),
        "no server-side subscription: {connected}"
    );

    let subscribed = fan
        .call("subscribe", json!({"channel": "public:scores"}))
        .await;
    assert!(subscribed.get("error").is_none(), "{subscribed}");
    assert_eq!(subscribed["subscribe"]["recoverable"], true);

    publish(&gw, "public:scores", r#"{"home":1,"away":0}"#).await;
    let publication = fan.next_publication("public:scores").await;
    assert_eq!(publication["data"], json!({"home": 1, "away": 0}));

    let history = fan
        .call("history", json!({"channel": "public:scores", "limit": -1}))
        .await;
    let publications = history["history"]["publications"].as_array().unwrap();
    assert_eq!(publications.len(), 2, "{history}");
    assert_eq!(publications[0]["data"], json!({"home": 0, "away": 0}));

    // A second anonymous reader is its own client.
    let (_, other) = anonymous_client(&gw).await;
    assert_ne!(other["client"], connected["client"]);
}

#[tokio::test]
async fn an_anonymous_reader_never_publishes_sees_presence_or_reaches_other_channels() {
    let gw = spawn_gateway_with(|s| {
        s.channels.public.anonymous = true;
        // Even where presence is kept, anonymous readers do not see it.
        s.channels.public.presence = true;
    })
    .await;
    let (mut fan, _) = anonymous_client(&gw).await;
    fan.call("subscribe", json!({"channel": "public:scores"}))
        .await;

    let publish = fan
        .call(
            "publish",
            json!({"channel": "public:scores", "data": {"home": 9}}),
        )
        .await;
    assert_eq!(error_code(&publish), Some(103), "{publish}");
    for method in ["presence", "presence_stats"] {
        let reply = fan.call(method, json!({"channel": "public:scores"})).await;
        assert_eq!(error_code(&reply), Some(103), "{method}: {reply}");
    }
    let user = UserId::new();
    for channel in [
        "chat:lobby".to_owned(),
        "tasks".to_owned(),
        format!("notifications#{user}"),
    ] {
        let reply = fan.call("subscribe", json!({"channel": channel})).await;
        assert_eq!(error_code(&reply), Some(103), "{channel}: {reply}");
        let reply = fan.call("history", json!({"channel": channel})).await;
        assert_eq!(error_code(&reply), Some(103), "{channel}: {reply}");
    }
    let reply = fan.call("subscribe", json!({"channel": "news"})).await;
    assert_eq!(error_code(&reply), Some(102), "{reply}");

    // Nothing to refresh: a refresh is a bad request.
    fan.send_text(&json!({"id": 99, "refresh": {"token": "x"}}).to_string())
        .await;
    assert_eq!(fan.close_code().await, 3501);
}

#[tokio::test]
async fn without_anonymous_readers_a_connect_without_a_token_still_closes_with_3500() {
    let gw = spawn_gateway().await;
    let mut client = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    client
        .send_text(&json!({"id": 1, "connect": {}}).to_string())
        .await;
    assert_eq!(client.close_code().await, 3500);
    let err = refused_handshake(gw.ws_url("/ws/notifications/public:scores")).await;
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn signed_in_users_follow_public_feeds_but_never_publish_there() {
    let gw = spawn_gateway().await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let subscribed = alice
        .call("subscribe", json!({"channel": "public:scores"}))
        .await;
    assert!(subscribed.get("error").is_none(), "{subscribed}");
    publish(&gw, "public:scores", r#"{"home":2}"#).await;
    assert_eq!(
        alice.next_publication("public:scores").await["data"],
        json!({"home": 2})
    );
    let publish = alice
        .call(
            "publish",
            json!({"channel": "public:scores", "data": {"home": 9}}),
        )
        .await;
    assert_eq!(error_code(&publish), Some(103), "{publish}");
    let presence = alice
        .call("presence", json!({"channel": "public:scores"}))
        .await;
    assert_eq!(error_code(&presence), Some(108), "{presence}");
}

#[tokio::test]
async fn anonymous_connections_are_limited_per_address() {
    let gw = spawn_gateway_with(|s| {
        s.channels.public.anonymous = true;
        s.limits.max_anonymous_connections_per_ip = 1;
    })
    .await;
    let (_first, _) = anonymous_client(&gw).await;

    let mut second = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    second
        .send_text(&json!({"id": 1, "connect": {}}).to_string())
        .await;
    assert_eq!(second.close_code().await, 3504);
    let err = refused_handshake(gw.ws_url("/ws/notifications/public:scores")).await;
    assert!(err.contains("429"), "{err}");

    // Signed-in users from the same address are not affected.
    let (_alice, _, _) = gw.connected_client("alice").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_the_forwarded_address() {
    let gw = spawn_gateway_with(|s| {
        s.channels.public.anonymous = true;
        s.limits.max_anonymous_connections_per_ip = 1;
        s.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let from = |ip: &'static str| {
        let mut request = gw
            .ws_url("/ws/notifications/public:scores")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static(ip));
        request
    };
    let (first, _) = tokio_tungstenite::connect_async(from("203.0.113.1"))
        .await
        .unwrap();
    let (second, _) = tokio_tungstenite::connect_async(from("203.0.113.2"))
        .await
        .unwrap();
    let err = refused_handshake(from("203.0.113.1")).await;
    assert!(err.contains("429"), "{err}");
    drop((first, second));
}

#[tokio::test]
async fn the_notifications_endpoint_serves_a_public_feed_without_a_token() {
    let gw = public_gateway().await;
    let mut feed = WsClient::open(&gw.ws_url("/ws/notifications/public:scores")).await;
    gw.wait_for("subscribed", |s| s.subscriptions >= 1).await;
    publish(&gw, "public:scores", r#"{"text":"GOAL! 1-0"}"#).await;
    assert_eq!(feed.next_line().await, "GOAL! 1-0");

    // Other feeds and the chat rooms still need a token.
    for path in ["/ws/notifications/tasks", "/ws/chat/lobby", "/ws/chat"] {
        let err = refused_handshake(gw.ws_url(path)).await;
        assert!(err.contains("401"), "{path}: {err}");
    }
}
