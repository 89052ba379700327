//! The position check of positioned subscriptions: a publication that reaches the channel's
//! history but never this node (here, written to Redis without the pub/sub message) is
//! caught at the next checks, and the subscribers recover (unsubscribe 2500 for client-side
//! subscriptions, close 3010 for server-side ones).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use herald_common::protocol::ClientInfo;
use serde_json::json;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::support::{TestGateway, TokenMinter, WsClient, publish_lost, spawn_gateway_on};

/// The check interval of these tests.
const INTERVAL: Duration = Duration::from_millis(200);

/// Longest wait for the check to notice (two checks plus slack).
const NOTICE_WITHIN: Duration = Duration::from_secs(5);

async fn spawn(prefix: &str, interval: Duration) -> TestGateway {
    spawn_gateway_on(prefix, TokenMinter::new(), |s| {
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

/// The gap the position check finds reaches the fan-out in order with the channel's events:
/// while join pushes of the channel stream in, the 2500 is the last thing of the channel the
/// client gets (no join, no publication after it) until it resubscribes, and then it
/// recovers everything exactly once.
#[tokio::test]
async fn nothing_of_the_channel_follows_the_2500_until_the_client_resubscribes() {
    let prefix = prefix();
    let gw = spawn(&prefix, INTERVAL).await;
    let channel = ChannelName::chat("ordered").unwrap();
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let first = alice
        .call(
            "subscribe",
            json!({"channel": "chat:ordered", "positioned": true, "recoverable": true, "join_leave": true}),
        )
        .await;
    let epoch = first["subscribe"]["epoch"].as_str().unwrap().to_owned();
    let marker = alice
        .call("subscribe", json!({"channel": "chat:marker"}))
        .await;
    assert!(marker.get("error").is_none(), "{marker}");
    gw.broker
        .publish(&channel, publication("seen"))
        .await
        .unwrap();
    assert_eq!(alice.next_publication("chat:ordered").await["offset"], 1);

    // Joins of the channel keep coming while the check finds the lost last publication.
    let stop = CancellationToken::new();
    let joins = tokio::spawn({
        let broker = gw.broker.clone();
        let channel = channel.clone();
        let stop = stop.clone();
        async move {
            let info = ClientInfo {
                user: "carol".to_owned(),
                client: "carol-1".to_owned(),
                conn_info: None,
                chan_info: None,
            };
            let mut sent = 0u64;
            while !stop.is_cancelled() && sent < 1_000_000 {
                broker.publish_join(&channel, &info).await.unwrap();
                sent += 1;
            }
            sent
        }
    });
    assert_eq!(publish_lost(&prefix, &channel, "lost").await, 2);
    loop {
        let push = tokio::time::timeout(NOTICE_WITHIN, alice.next_push())
            .await
            .expect("the lost publication was not noticed");
        let push = &push["push"];
        assert_eq!(push["channel"], "chat:ordered", "{push}");
        if push.get("unsubscribe").is_some() {
            assert_eq!(push["unsubscribe"]["code"], 2500, "{push}");
            break;
        }
        assert!(push.get("join").is_some(), "{push}");
    }
    // A publication after the gap, the end of the joins, then a marker on another channel:
    // the fan-out handles them in this order, so whatever it sent of chat:ordered comes
    // before the marker.
    gw.broker
        .publish(&channel, publication("after"))
        .await
        .unwrap();
    stop.cancel();
    assert!(joins.await.unwrap() > 0);
    gw.broker
        .publish(&ChannelName::chat("marker").unwrap(), publication("marker"))
        .await
        .unwrap();
    loop {
        let push = alice.next_push().await;
        let push = &push["push"];
        assert_ne!(push["channel"], "chat:ordered", "after the 2500: {push}");
        if push["channel"] == "chat:marker" && push.get("pub").is_some() {
            break;
        }
    }
    // The client resubscribes, as the SDK does, and recovers what it missed, once.
    let again = alice
        .call(
            "subscribe",
            json!({"channel": "chat:ordered", "positioned": true, "recover": true, "epoch": epoch, "offset": 1}),
        )
        .await;
    let result = &again["subscribe"];
    assert_eq!(result["recovered"], true, "{again}");
    let texts: Vec<_> = result["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("lost"), json!("after")], "{again}");
    assert_eq!(result["offset"], 3, "{again}");
    gw.broker
        .publish(&channel, publication("live"))
        .await
        .unwrap();
    let live = alice.next_publication("chat:ordered").await;
    assert_eq!(live["offset"], 4, "{live}");
    assert_eq!(live["data"]["text"], "live", "{live}");
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
