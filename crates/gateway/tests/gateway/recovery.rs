//! Recovery: missed publications come back in order, all or nothing; gaps make clients
//! recover (unsubscribe 2500 for client-side subscriptions, close 3010 for server-side ones).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use serde_json::json;
use serde_json::value::RawValue;

use crate::support::{
    TestGateway, TokenMinter, WsClient, publish_held, spawn_gateway, spawn_gateway_on,
};

fn publication(text: &str) -> PublishRequest {
    let data = RawValue::from_string(json!({ "text": text }).to_string()).unwrap();
    PublishRequest::new(data).with_history(HistoryPolicy::new(300, Duration::from_secs(600)))
}

#[tokio::test]
async fn resubscribing_with_recover_returns_the_missed_publications_in_order() {
    let gw = spawn_gateway().await;
    let channel = ChannelName::chat("recover").unwrap();
    gw.broker
        .publish(&channel, publication("before"))
        .await
        .unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let first = alice
        .call("subscribe", json!({"channel": "chat:recover"}))
        .await;
    let epoch = first["subscribe"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(first["subscribe"]["offset"], 1);
    drop(alice);
    for text in ["a", "b", "c"] {
        gw.broker
            .publish(&channel, publication(text))
            .await
            .unwrap();
    }
    let (mut again, _, _) = gw.connected_client("alice").await;
    let reply = again
        .call(
            "subscribe",
            json!({"channel": "chat:recover", "recover": true, "epoch": epoch, "offset": 1}),
        )
        .await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], true, "{reply}");
    assert_eq!(result["was_recovering"], true);
    assert_eq!(result["offset"], 4);
    let texts: Vec<&str> = result["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["a", "b", "c"]);
    // Live publications continue after the recovered ones.
    gw.broker.publish(&channel, publication("d")).await.unwrap();
    assert_eq!(again.next_publication("chat:recover").await["offset"], 5);
}

#[tokio::test]
async fn recovery_from_another_epoch_is_refused_as_a_whole() {
    let gw = spawn_gateway().await;
    let channel = ChannelName::chat("epoch").unwrap();
    gw.broker.publish(&channel, publication("x")).await.unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let reply = alice
        .call(
            "subscribe",
            json!({"channel": "chat:epoch", "recover": true, "epoch": "gone", "offset": 1}),
        )
        .await;
    assert_eq!(reply["subscribe"]["was_recovering"], true);
    assert!(reply["subscribe"].get("recovered").is_none());
    assert!(reply["subscribe"].get("publications").is_none());
    let rejecting = alice
        .call("subscribe", json!({"channel": "chat:other", "recover": true, "epoch": "gone", "offset": 1, "flag": 3}))
        .await;
    assert_eq!(crate::support::error_code(&rejecting), Some(112));
}

#[tokio::test]
async fn the_connect_subs_map_recovers_the_personal_channel() {
    let gw = spawn_gateway().await;
    let user = herald_common::ids::UserId::new();
    let channel = ChannelName::notifications(&user);
    let mut first = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let connect = first.connect(&gw.keys.token(&user, "alice", 600)).await;
    let sub = &connect["connect"]["subs"][channel.as_str()];
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    let offset = sub["offset"].as_u64().unwrap_or(0);
    drop(first);
    gw.broker
        .publish(&channel, publication("missed 1"))
        .await
        .unwrap();
    gw.broker
        .publish(&channel, publication("missed 2"))
        .await
        .unwrap();
    let mut second = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let token = gw.keys.token(&user, "alice", 600);
    let reply = second
        .call(
            "connect",
            json!({"token": token, "subs": {channel.as_str(): {"recover": true, "epoch": epoch, "offset": offset}}}),
        )
        .await;
    let sub = &reply["connect"]["subs"][channel.as_str()];
    assert_eq!(sub["recovered"], true, "{reply}");
    let texts: Vec<&str> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["missed 1", "missed 2"]);
}

#[tokio::test]
async fn a_gap_makes_client_subscriptions_resubscribe_with_2500() {
    let gw = spawn_gateway().await;
    let channel = ChannelName::chat("gap").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    alice
        .call("subscribe", json!({"channel": "chat:gap"}))
        .await;
    gw.broker
        .publish(&channel, publication("one"))
        .await
        .unwrap();
    assert_eq!(alice.next_publication("chat:gap").await["offset"], 1);
    // A lost history means a new epoch: the node cannot vouch for continuity.
    gw.broker.remove_history(&channel).await.unwrap();
    gw.broker
        .publish(&channel, publication("two"))
        .await
        .unwrap();
    let push = alice.next_push().await;
    assert_eq!(push["push"]["channel"], "chat:gap");
    assert_eq!(push["push"]["unsubscribe"]["code"], 2500, "{push}");
    gw.wait_for("the gap counted", |s| s.gaps >= 1).await;
    // The client resubscribes like the SDK does.
    let again = alice
        .call("subscribe", json!({"channel": "chat:gap"}))
        .await;
    assert!(again.get("error").is_none(), "{again}");
    gw.broker
        .publish(&channel, publication("three"))
        .await
        .unwrap();
    assert_eq!(
        alice.next_publication("chat:gap").await["data"]["text"],
        "three"
    );
}

#[tokio::test]
async fn a_gap_in_the_personal_channel_closes_the_connection_with_3010() {
    let gw = spawn_gateway().await;
    let (mut alice, user, _) = gw.connected_client("alice").await;
    let channel = ChannelName::notifications(&user);
    gw.broker
        .publish(&channel, publication("one"))
        .await
        .unwrap();
    alice.next_publication(channel.as_str()).await;
    gw.broker.remove_history(&channel).await.unwrap();
    gw.broker
        .publish(&channel, publication("two"))
        .await
        .unwrap();
    assert_eq!(alice.close_code().await, 3010);
}

/// A gateway whose position check stays out of the way, on its own prefix.
async fn spawn_unchecked() -> (TestGateway, String) {
    let prefix = format!("test:{}:", UserId::new());
    let gw = spawn_gateway_on(&prefix, TokenMinter::new(), |s| {
        s.position_check_interval = Duration::ZERO;
    })
    .await;
    (gw, prefix)
}

/// The race of a recovering subscribe: the recovery read sees publication 2 in the stream
/// before its pub/sub message reaches the node. The reply carries it; when the live message
/// arrives after the reply, the recovering client does not get it again, while the client
/// that did not have it does.
#[tokio::test]
async fn a_publication_recovered_before_its_live_message_arrives_is_delivered_once() {
    let (gw, prefix) = spawn_unchecked().await;
    let channel = ChannelName::chat("late").unwrap();
    // Alice keeps the node subscribed to the channel throughout.
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let first = alice
        .call("subscribe", json!({"channel": "chat:late"}))
        .await;
    let epoch = first["subscribe"]["epoch"].as_str().unwrap().to_owned();
    gw.broker
        .publish(&channel, publication("one"))
        .await
        .unwrap();
    assert_eq!(alice.next_publication("chat:late").await["offset"], 1);

    let held = publish_held(&prefix, &channel, "two").await;
    assert_eq!(held.offset, 2);
    let (mut bob, _, _) = gw.connected_client("bob").await;
    let reply = bob
        .call(
            "subscribe",
            json!({"channel": "chat:late", "recover": true, "epoch": epoch, "offset": 1}),
        )
        .await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], true, "{reply}");
    assert_eq!(result["offset"], 2, "{reply}");
    assert_eq!(result["publications"][0]["data"]["text"], "two", "{reply}");
    assert_eq!(result["publications"][0]["offset"], 2, "{reply}");

    // Now the live message of 2 arrives, then 3.
    held.release().await;
    gw.broker
        .publish(&channel, publication("three"))
        .await
        .unwrap();
    assert_eq!(alice.next_publication("chat:late").await["offset"], 2);
    assert_eq!(alice.next_publication("chat:late").await["offset"], 3);
    let next = bob.next_publication("chat:late").await;
    assert_eq!(next["offset"], 3, "publication 2 delivered again: {next}");
    assert_eq!(next["data"]["text"], "three");
}

/// The same race on the connect path: the server-side subscription recovered through the
/// connect `subs` map skips a publication the connect reply carried.
#[tokio::test]
async fn a_notification_recovered_on_connect_before_its_live_message_arrives_is_delivered_once() {
    let (gw, prefix) = spawn_unchecked().await;
    let user = UserId::new();
    let channel = ChannelName::notifications(&user);
    // The user's first connection keeps the node subscribed to the channel.
    let mut first = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let connect = first.connect(&gw.keys.token(&user, "alice", 600)).await;
    let epoch = connect["connect"]["subs"][channel.as_str()]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    gw.broker
        .publish(&channel, publication("one"))
        .await
        .unwrap();
    assert_eq!(first.next_publication(channel.as_str()).await["offset"], 1);

    let held = publish_held(&prefix, &channel, "two").await;
    let mut second = WsClient::open(&gw.ws_url("/connection/websocket")).await;
    let token = gw.keys.token(&user, "alice", 600);
    let reply = second
        .call(
            "connect",
            json!({"token": token, "subs": {channel.as_str(): {"recover": true, "epoch": epoch, "offset": 1}}}),
        )
        .await;
    let sub = &reply["connect"]["subs"][channel.as_str()];
    assert_eq!(sub["recovered"], true, "{reply}");
    assert_eq!(sub["offset"], 2, "{reply}");
    assert_eq!(sub["publications"][0]["data"]["text"], "two", "{reply}");

    held.release().await;
    gw.broker
        .publish(&channel, publication("three"))
        .await
        .unwrap();
    assert_eq!(first.next_publication(channel.as_str()).await["offset"], 2);
    assert_eq!(first.next_publication(channel.as_str()).await["offset"], 3);
    let next = second.next_publication(channel.as_str()).await;
    assert_eq!(next["offset"], 3, "publication 2 delivered again: {next}");
    assert_eq!(next["data"]["text"], "three");
}
