//! The server API (`/api/*`): every method, the key, the answers' shapes, and two nodes on
//! one Redis answering as one system.

use std::time::Duration;

use herald_common::ids::UserId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    TestGateway, TokenMinter, WAIT, WsClient, spawn_gateway_on, spawn_gateway_with,
};

const KEY: &str = "test-api-key";

const METHODS: [&str; 8] = [
    "publish",
    "broadcast",
    "presence",
    "presence_stats",
    "history",
    "disconnect",
    "channels",
    "info",
];

async fn gateway_with_key() -> TestGateway {
    spawn_gateway_with(|s| s.api_key = Some(KEY.into())).await
}

/// Two nodes of one Herald (same prefix, same signing key), announcing every 200 ms.
async fn two_nodes() -> (TestGateway, TestGateway) {
    let prefix = format!("test:{}:", UserId::new());
    let keys = TokenMinter::new();
    let tweak = |s: &mut herald_gateway::Settings| {
        s.api_key = Some(KEY.into());
        s.node_info_interval = Duration::from_millis(200);
    };
    let first = spawn_gateway_on(&prefix, keys.clone(), tweak).await;
    let second = spawn_gateway_on(&prefix, keys, tweak).await;
    (first, second)
}

/// POSTs `body` to `/api/<method>` with `key`; returns the status and the JSON answer.
async fn call_with(
    gw: &TestGateway,
    method: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(gw.http_url(&format!("/api/{method}")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json)
}

/// A successful call's `result`.
async fn api(gw: &TestGateway, method: &str, body: Value) -> Value {
    let (status, answer) = call_with(gw, method, Some(KEY), &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.get("error").is_none(), "{method} {body}: {answer}");
    answer["result"].clone()
}

/// A failed call's protocol error code (HTTP 200).
async fn api_error(gw: &TestGateway, method: &str, body: Value) -> u64 {
    let (status, answer) = call_with(gw, method, Some(KEY), &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("{method} {body}: expected an error, got {answer}"))
}

async fn subscribed(gw: &TestGateway, name: &str, channel: &str) -> (WsClient, UserId, String) {
    let (mut client, user, connect) = gw.connected_client(name).await;
    let reply = client
        .call("subscribe", json!({ "channel": channel }))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let client_id = connect["client"].as_str().unwrap().to_owned();
    (client, user, client_id)
}

/// Polls `check` on the result of `method` until it holds.
async fn eventually(
    gw: &TestGateway,
    method: &str,
    body: Value,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let result = api(gw, method, body.clone()).await;
        if check(&result) {
            return result;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{method}: last answer {result}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_method_refuses_a_missing_or_wrong_key_with_401() {
    let gw = gateway_with_key().await;
    for method in METHODS {
        for key in [None, Some("wrong"), Some(""), Some("test-api-keyX")] {
            let (status, answer) = call_with(&gw, method, key, "{}").await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} with {key:?}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");
        }
    }
    // Centrifugo's other header form works too.
    let response = reqwest::Client::new()
        .post(gw.http_url("/api/info"))
        .header("Authorization", format!("apikey {KEY}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_configured_key_the_api_is_disabled_with_404() {
    let gw = spawn_gateway_with(|_| {}).await;
    for method in METHODS {
        let (status, answer) = call_with(&gw, method, Some("anything"), "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HERALD_API_KEY")
        );
    }
}

#[tokio::test]
async fn publish_reaches_subscribers_and_answers_offset_and_epoch() {
    let gw = gateway_with_key().await;
    let (mut alice, _, _) = subscribed(&gw, "alice", "chat:api-publish").await;
    let first = api(
        &gw,
        "publish",
        json!({"channel": "chat:api-publish", "data": {"text": "one"}}),
    )
    .await;
    assert_eq!(first["offset"], 1, "{first}");
    let epoch = first["epoch"].as_str().unwrap();
    assert!(!epoch.is_empty());
    let publication = alice.next_publication("chat:api-publish").await;
    assert_eq!(publication["data"], json!({"text": "one"}));
    assert_eq!(publication["offset"], 1);
    assert!(
        publication.get("info").is_none(),
        "server publications have no author: {publication}"
    );
    // Server-only channels are the server's to publish into.
    let tasks = api(
        &gw,
        "publish",
        json!({"channel": "tasks", "data": {"type": "x"}}),
    )
    .await;
    assert_eq!(tasks["offset"], 1);
}

#[tokio::test]
async fn publish_failures_are_protocol_errors_with_http_200() {
    let gw = gateway_with_key().await;
    assert_eq!(
        api_error(&gw, "publish", json!({"channel": "news", "data": {}})).await,
        102
    );
    assert_eq!(
        api_error(
            &gw,
            "publish",
            json!({"channel": "chat:bad name", "data": {}})
        )
        .await,
        107
    );
    let (status, answer) = call_with(&gw, "publish", Some(KEY), r#"{"channel":"tasks"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], 107, "{answer}");
    let (status, _) = call_with(&gw, "publish", Some(KEY), "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_repeated_idempotency_key_publishes_once() {
    let gw = gateway_with_key().await;
    let (mut alice, _, _) = subscribed(&gw, "alice", "chat:api-idem").await;
    let body = json!({"channel": "chat:api-idem", "data": {"n": 1}, "idempotency_key": "order-17"});
    let first = api(&gw, "publish", body.clone()).await;
    let again = api(&gw, "publish", body).await;
    assert_eq!(first, again);
    let next = api(
        &gw,
        "publish",
        json!({"channel": "chat:api-idem", "data": {"n": 2}}),
    )
    .await;
    assert_eq!(next["offset"], 2);
    assert_eq!(
        alice.next_publication("chat:api-idem").await["data"]["n"],
        1
    );
    assert_eq!(
        alice.next_publication("chat:api-idem").await["data"]["n"],
        2
    );
}

#[tokio::test]
async fn broadcast_answers_each_channel_in_order() {
    let gw = gateway_with_key().await;
    let (mut alice, _, _) = subscribed(&gw, "alice", "chat:api-b1").await;
    let result = api(
        &gw,
        "broadcast",
        json!({"channels": ["chat:api-b1", "news", "chat:api-b2"], "data": {"text": "all"}}),
    )
    .await;
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0]["result"]["offset"], 1);
    assert_eq!(responses[1]["error"]["code"], 102);
    assert_eq!(responses[2]["result"]["offset"], 1);
    assert_eq!(
        alice.next_publication("chat:api-b1").await["data"]["text"],
        "all"
    );
    assert_eq!(
        api_error(&gw, "broadcast", json!({"channels": [], "data": {}})).await,
        107
    );
}

#[tokio::test]
async fn presence_and_presence_stats_list_the_subscribers() {
    let gw = gateway_with_key().await;
    let (_alice, alice, alice_client) = subscribed(&gw, "alice", "chat:api-presence").await;
    let (_bob, _, _) = subscribed(&gw, "bob", "chat:api-presence").await;
    let presence = api(&gw, "presence", json!({"channel": "chat:api-presence"})).await;
    let entries = presence["presence"].as_object().unwrap();
    assert_eq!(entries.len(), 2, "{presence}");
    assert_eq!(entries[&alice_client]["user"], alice.to_string());
    let stats = api(
        &gw,
        "presence_stats",
        json!({"channel": "chat:api-presence"}),
    )
    .await;
    assert_eq!(stats, json!({"num_clients": 2, "num_users": 2}));
    assert_eq!(
        api_error(&gw, "presence", json!({"channel": "tasks"})).await,
        108
    );
    assert_eq!(
        api_error(&gw, "presence_stats", json!({"channel": "news"})).await,
        102
    );
}

#[tokio::test]
async fn history_pages_by_limit_since_and_reverse() {
    let gw = gateway_with_key().await;
    for n in 1..=5 {
        api(
            &gw,
            "publish",
            json!({"channel": "chat:api-history", "data": {"n": n}}),
        )
        .await;
    }
    let numbers = |result: &Value| -> Vec<u64> {
        result["publications"]
            .as_array()
            .map(|p| p.iter().map(|p| p["data"]["n"].as_u64().unwrap()).collect())
            .unwrap_or_default()
    };
    let position = api(&gw, "history", json!({"channel": "chat:api-history"})).await;
    assert_eq!(position["offset"], 5);
    assert!(
        numbers(&position).is_empty(),
        "limit 0 is the position only"
    );
    let epoch = position["epoch"].clone();
    let latest = api(
        &gw,
        "history",
        json!({"channel": "chat:api-history", "limit": 2, "reverse": true}),
    )
    .await;
    assert_eq!(numbers(&latest), [5, 4]);
    let since = api(
        &gw,
        "history",
        json!({"channel": "chat:api-history", "limit": -1, "since": {"offset": 3, "epoch": epoch}}),
    )
    .await;
    assert_eq!(numbers(&since), [4, 5]);
    let stale = json!({"channel": "chat:api-history", "limit": 10, "since": {"offset": 1, "epoch": "other"}});
    assert_eq!(api_error(&gw, "history", stale).await, 112);
}

#[tokio::test]
async fn disconnect_closes_a_users_connections_with_the_given_code() {
    let gw = gateway_with_key().await;
    let (mut first, user, first_id) = subscribed(&gw, "alice", "chat:api-dc").await;
    let mut second = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let connect = second.connect(&gw.keys.token(&user, "alice", 600)).await;
    let second_id = connect["connect"]["client"].as_str().unwrap().to_owned();
    // Spare the first one: only the second goes, with the custom code.
    api(
        &gw,
        "disconnect",
        json!({"user": user.to_string(), "whitelist": [first_id], "disconnect": {"code": 4001, "reason": "moved"}}),
    )
    .await;
    assert_eq!(second.close_code().await, 4001);
    let reply = first
        .call("presence_stats", json!({"channel": "chat:api-dc"}))
        .await;
    assert!(
        reply.get("error").is_none(),
        "the spared connection still works: {reply}"
    );
    // Without a code: 3503 force disconnect (terminal).
    api(
        &gw,
        "disconnect",
        json!({"user": user.to_string(), "client": first_id}),
    )
    .await;
    assert_eq!(first.close_code().await, 3503);
    assert_ne!(first_id, second_id);
    assert_eq!(
        api_error(&gw, "disconnect", json!({"user": "nobody"})).await,
        107
    );
}

#[tokio::test]
async fn two_nodes_answer_as_one_system() {
    let (one, two) = two_nodes().await;
    // A client on each node, in one room.
    let (mut alice, _, _) = subscribed(&one, "alice", "chat:api-cluster").await;
    let (mut bob, bob_user, _) = subscribed(&two, "bob", "chat:api-cluster").await;
    let (_carol, _, _) = subscribed(&two, "carol", "chat:api-cluster-2").await;

    // Info from either node lists both, with their own counts.
    let clients = |info: &Value| -> u64 {
        info["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| n["num_clients"].as_u64()).sum())
            .unwrap_or(0)
    };
    let info = eventually(&one, "info", json!({}), |r| clients(r) == 3).await;
    assert_eq!(info["nodes"].as_array().unwrap().len(), 2, "{info}");
    let node = &info["nodes"][0];
    for field in [
        "uid",
        "name",
        "version",
        "num_clients",
        "num_users",
        "num_channels",
        "uptime",
    ] {
        assert!(node.get(field).is_some(), "{field} missing: {node}");
    }

    // Channels add up across nodes; the pattern filters. Each node reports its counts on
    // its own schedule, so wait until both channels are reported.
    eventually(
        &two,
        "channels",
        json!({"pattern": "chat:api-cluster*"}),
        |r| {
            r["channels"]["chat:api-cluster"]["num_clients"] == 2
                && r["channels"]["chat:api-cluster-2"]["num_clients"] == 1
        },
    )
    .await;
    // Node one knows node two's channels once node two's announcement reached it.
    let only = eventually(
        &one,
        "channels",
        json!({"pattern": "chat:api-cluster-?"}),
        |r| r["channels"]["chat:api-cluster-2"]["num_clients"] == 1,
    )
    .await;
    assert_eq!(only["channels"].as_object().unwrap().len(), 1, "{only}");

    // A publication through node one reaches node two's client; presence and history agree.
    api(
        &one,
        "publish",
        json!({"channel": "chat:api-cluster", "data": {"text": "hi"}}),
    )
    .await;
    assert_eq!(
        bob.next_publication("chat:api-cluster").await["data"]["text"],
        "hi"
    );
    assert_eq!(
        alice.next_publication("chat:api-cluster").await["data"]["text"],
        "hi"
    );
    let stats_one = api(
        &one,
        "presence_stats",
        json!({"channel": "chat:api-cluster"}),
    )
    .await;
    let stats_two = api(
        &two,
        "presence_stats",
        json!({"channel": "chat:api-cluster"}),
    )
    .await;
    assert_eq!(stats_one, stats_two);
    assert_eq!(stats_one["num_clients"], 2);
    let history = api(
        &two,
        "history",
        json!({"channel": "chat:api-cluster", "limit": 10}),
    )
    .await;
    assert_eq!(history["publications"].as_array().unwrap().len(), 1);

    // A disconnect through node one closes bob's connection on node two.
    api(&one, "disconnect", json!({"user": bob_user.to_string()})).await;
    assert_eq!(bob.close_code().await, 3503);
}

#[tokio::test]
async fn the_api_works_in_embedded_mode_on_the_in_memory_broker() {
    use herald_broker::Broker;
    use herald_service::Context;

    herald_service::telemetry::init_for_tests();
    let broker = Broker::memory();
    let mut settings = crate::support::test_settings("unused:");
    settings.api_key = Some(KEY.into());
    let app = herald_gateway::Application::build_with(settings, Context::new(broker))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let post = |method: &str, body: Value| {
        reqwest::Client::new()
            .post(format!("{base}/api/{method}"))
            .header("X-API-Key", KEY)
            .body(body.to_string())
            .send()
    };
    let published: Value = post("publish", json!({"channel": "tasks", "data": {"n": 1}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["result"]["offset"], 1, "{published}");
    let history: Value = post("history", json!({"channel": "tasks", "limit": 5}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["result"]["publications"][0]["data"]["n"], 1,
        "{history}"
    );
    let info: Value = post("info", json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(
        info["result"]["nodes"].as_array().unwrap().len(),
        1,
        "{info}"
    );
    shutdown.cancel();
}
