//! The position check of positioned subscriptions: a publication that reaches the channel's
//! history but never this node (here, written to Redis without the pub/sub message) is
//! caught at the next checks, and the subscribers recover (unsubscribe 2500 for client-side
//! subscriptions, close 3010 for server-side ones).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use serde_json::json;
use serde_json::value::RawValue;

use crate::support::{TestGateway, TokenMint, WsClient, redis_url, spawn_gateway_on};

/// The check interval of these tests.
const INTERVAL: Duration = Duration::from_millis(200);

/// Longest wait for the check to notice (two checks plus slack).
const NOTICE_WITHIN: Duration = Duration::from_secs(5);

async fn spawn(prefix: &str, interval: Duration) -> TestGateway {
    spawn_gateway_on(prefix, TokenMint::new(), |s| {
        s.position_check_interval = interval;
    })
    .await
}

fn prefix() -> String {
    format!("test:{}:", UserId::new())
}

fn publication(text: &str) -> PublishRequest {
    let data = RawValue::from_string(json!({ "text": text }).to_string()).unwrap();
    PublishRequest::new(data).with_history(HistoryPolicy::new(300, Duration::from_secs(600)))
}

/// Appends a publication to `channel`'s history the way the broker's publish does (the
/// key layout of the Redis broker), but without the pub/sub message: for the gateway it is
/// lost in transit. Returns its offset.
async fn publish_lost(prefix: &str, channel: &ChannelName, text: &str) -> u64 {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let tag = format!("{prefix}{{{}}}", channel.as_str());
    let offset: u64 = redis::cmd("HINCRBY")
        .arg(format!("{tag}:meta"))
        .arg("o")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{tag}:stream"))
        .arg(format!("{offset}-0"))
        .arg("d")
        .arg(json!({"data": {"text": text}}).to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    offset
}

/// Subscribes `client` to `channel` with `positioned` and returns the reply's result.
async fn subscribe_positioned(client: &mut WsClient, channel: &str) -> serde_json::Value {
    let reply = client
        .call(
            "subscribe",
            json!({"channel": channel, "positioned": true, "recoverable": true}),
        )
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["subscribe"]["positioned"], true, "{reply}");
    reply["subscribe"].clone()
}

#[tokio::test]
async fn a_lost_last_publication_makes_positioned_subscriptions_recover_with_2500() {
    let prefix = prefix();
    let gw = spawn(&prefix, INTERVAL).await;
    let channel = ChannelName::chat("lost-last").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let first = subscribe_positioned(&mut alice, "chat:lost-last").await;
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    // A delivered publication first: the node's position comes from a delivery.
    gw.broker
        .publish(&channel, publication("seen"))
        .await
        .unwrap();
    assert_eq!(alice.next_publication("chat:lost-last").await["offset"], 1);
    // Then the last one never arrives, and nothing comes after it.
    assert_eq!(publish_lost(&prefix, &channel, "lost").await, 2);
    let push = tokio::time::timeout(NOTICE_WITHIN, alice.next_push())
        .await
        .expect("the lost publication was not noticed");
    assert_eq!(push["push"]["channel"], "chat:lost-last", "{push}");
    assert_eq!(push["push"]["unsubscribe"]["code"], 2500, "{push}");
    gw.wait_for("the gap counted", |s| s.gaps >= 1).await;
    // The client resubscribes and recovers it, like the SDK does.
    let again = alice
        .call(
            "subscribe",
            json!({"channel": "chat:lost-last", "positioned": true, "recover": true, "epoch": epoch, "offset": 1}),
        )
        .await;
    let result = &again["subscribe"];
    assert_eq!(result["recovered"], true, "{again}");
    assert_eq!(result["publications"][0]["data"]["text"], "lost", "{again}");
    assert_eq!(result["offset"], 2);
    // Caught up: the next checks find nothing more.
    assert!(alice.nothing_within(INTERVAL * 4).await);
    assert_eq!(gw.gateway.stats().gaps, 1);
}

#[tokio::test]
async fn a_lost_publication_right_after_subscribing_is_caught_too() {
    let prefix = prefix();
    let gw = spawn(&prefix, INTERVAL).await;
    let channel = ChannelName::chat("lost-first").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let first = subscribe_positioned(&mut alice, "chat:lost-first").await;
    assert_eq!(first["offset"].as_u64().unwrap_or(0), 0);
    // Nothing was ever delivered: the subscription's start is the node's position.
    publish_lost(&prefix, &channel, "lost").await;
    let push = tokio::time::timeout(NOTICE_WITHIN, alice.next_push())
        .await
        .expect("the lost publication was not noticed");
    assert_eq!(push["push"]["unsubscribe"]["code"], 2500, "{push}");
}

#[tokio::test]
async fn subscriptions_that_are_up_to_date_or_not_positioned_are_left_alone() {
    let prefix = prefix();
    let gw = spawn(&prefix, INTERVAL).await;
    let channel = ChannelName::chat("calm").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    subscribe_positioned(&mut alice, "chat:calm").await;
    let (mut bob, _, _) = gw.connected_client("bob").await;
    let plain = bob
        .call("subscribe", json!({"channel": "chat:other"}))
        .await;
    assert_eq!(plain["subscribe"].get("positioned"), None, "{plain}");
    gw.broker
        .publish(&channel, publication("seen"))
        .await
        .unwrap();
    alice.next_publication("chat:calm").await;
    // Lost on a channel whose only subscriber did not ask for positioning: not checked.
    publish_lost(&prefix, &ChannelName::chat("other").unwrap(), "lost").await;
    assert!(alice.nothing_within(INTERVAL * 5).await);
    assert!(bob.nothing_within(INTERVAL).await);
    assert_eq!(gw.gateway.stats().gaps, 0);
}

#[tokio::test]
async fn a_lost_last_notification_closes_the_connection_with_3010() {
    let prefix = prefix();
    let gw = spawn(&prefix, INTERVAL).await;
    let (mut alice, user, connect) = gw.connected_client("alice").await;
    let channel = ChannelName::notifications(&user);
    assert_eq!(
        connect["subs"][channel.as_str()]["positioned"],
        true,
        "{connect}"
    );
    gw.broker
        .publish(&channel, publication("seen"))
        .await
        .unwrap();
    alice.next_publication(channel.as_str()).await;
    publish_lost(&prefix, &channel, "lost").await;
    let code = tokio::time::timeout(NOTICE_WITHIN, alice.close_code())
        .await
        .expect("the lost notification was not noticed");
    assert_eq!(code, 3010);
}

#[tokio::test]
async fn without_the_check_a_lost_last_publication_goes_unnoticed() {
    let prefix = prefix();
    let gw = spawn(&prefix, Duration::ZERO).await;
    let channel = ChannelName::chat("unchecked").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    subscribe_positioned(&mut alice, "chat:unchecked").await;
    publish_lost(&prefix, &channel, "lost").await;
    assert!(alice.nothing_within(INTERVAL * 5).await);
    assert_eq!(gw.gateway.stats().gaps, 0);
}
