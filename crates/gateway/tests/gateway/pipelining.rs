//! Many commands in flight on one connection: publishes go to Redis in batches while the
//! reader goes on, and replies and publications keep the order of the commands.

use serde_json::{Value, json};

use crate::support::{WsClient, error_code, spawn_gateway_with};

/// Publish commands of one client, `per_frame` to a frame, ids from `first_id`; `channel_of`
/// names each one's channel.
async fn send_publishes(
    client: &mut WsClient,
    first_id: u32,
    count: u32,
    per_frame: u32,
    channel_of: impl Fn(u32) -> &'static str,
) {
    let mut frame = Vec::new();
    for n in 0..count {
        frame.push(
            json!({"id": first_id + n, "publish": {"channel": channel_of(n), "data": {"n": n}}})
                .to_string(),
        );
        if frame.len() == per_frame as usize || n + 1 == count {
            client.send_text(&frame.join("\n")).await;
            frame.clear();
        }
    }
}

/// The next replies, checked to be those to `ids` in that order.
async fn replies_in_order(client: &mut WsClient, ids: impl Iterator<Item = u32>) -> Vec<Value> {
    let mut replies = Vec::new();
    for id in ids {
        let reply = client.next_reply().await;
        assert_eq!(reply["id"], id, "replies out of command order: {reply}");
        replies.push(reply);
    }
    replies
}

#[tokio::test]
async fn pipelined_publishes_are_answered_and_delivered_in_command_order() {
    let gw = spawn_gateway_with(|settings| {
        settings.limits.publish_rate = 10_000.0;
        settings.limits.publish_burst = 10_000;
    })
    .await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    let (mut bob, _, _) = gw.connected_client("bob").await;
    for client in [&mut alice, &mut bob] {
        let reply = client
            .call("subscribe", json!({"channel": "chat:pipe"}))
            .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    // 200 publishes without waiting for any reply; number 100 goes to a channel alice is
    // not subscribed to, so its error must come back in its place.
    send_publishes(&mut alice, 1000, 200, 25, |n| {
        if n == 100 {
            "chat:elsewhere"
        } else {
            "chat:pipe"
        }
    })
    .await;
    let replies = replies_in_order(&mut alice, 1000..1200).await;
    for (n, reply) in replies.iter().enumerate() {
        if n == 100 {
            assert_eq!(error_code(reply), Some(103), "{reply}");
        } else {
            assert_eq!(reply["publish"], json!({}), "reply {n}: {reply}");
        }
    }
    let mut last_offset = 0;
    for n in (0..200).filter(|n| *n != 100) {
        let publication = bob.next_publication("chat:pipe").await;
        assert_eq!(publication["data"], json!({"n": n}));
        let offset = publication["offset"].as_u64().unwrap();
        assert_eq!(offset, last_offset + 1, "offsets follow the command order");
        last_offset = offset;
    }
}

#[tokio::test]
async fn a_command_after_publishes_is_answered_after_them_and_sees_their_effects() {
    let gw = spawn_gateway_with(|settings| {
        settings.limits.publish_rate = 10_000.0;
        settings.limits.publish_burst = 10_000;
    })
    .await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    alice
        .call("subscribe", json!({"channel": "chat:first"}))
        .await;
    // One frame: 50 publishes, a subscribe, a publish into the new subscription (refused
    // with 103 if it overtook the subscribe), and a history read of the first channel.
    let mut lines: Vec<String> = (0..50)
        .map(|n| {
            json!({"id": 2000 + n, "publish": {"channel": "chat:first", "data": {"n": n}}})
                .to_string()
        })
        .collect();
    lines.push(json!({"id": 2050, "subscribe": {"channel": "chat:second"}}).to_string());
    lines.push(
        json!({"id": 2051, "publish": {"channel": "chat:second", "data": {"n": 0}}}).to_string(),
    );
    lines.push(json!({"id": 2052, "history": {"channel": "chat:first", "limit": -1}}).to_string());
    alice.send_text(&lines.join("\n")).await;

    let replies = replies_in_order(&mut alice, 2000..2053).await;
    assert!(
        replies[..50]
            .iter()
            .all(|reply| reply["publish"] == json!({}))
    );
    assert!(replies[50].get("error").is_none(), "{}", replies[50]);
    assert_eq!(replies[51]["publish"], json!({}), "{}", replies[51]);
    let history = replies[52]["history"]["publications"].as_array().unwrap();
    assert_eq!(
        history.len(),
        50,
        "the history read saw every publish before it"
    );
    assert_eq!(history[49]["data"], json!({"n": 49}));
}

#[tokio::test]
async fn the_publishes_of_one_frame_reach_redis_as_one_script_call() {
    // A Redis of this test's own, so its command counts are this test's alone.
    let redis = herald_test_support::redis::RedisServer::start().await;
    let url = redis.url();
    let gw = spawn_gateway_with(|settings| {
        settings.redis_url = url.clone().into();
        settings.limits.publish_rate = 10_000.0;
        settings.limits.publish_burst = 10_000;
    })
    .await;
    let (mut alice, _, _) = gw.connected_client("alice").await;
    alice
        .call("subscribe", json!({"channel": "chat:frames"}))
        .await;
    let script_calls = || async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse::<u64>().unwrap())
    };
    // A first publish loads the script into this new Redis.
    let first = alice
        .call(
            "publish",
            json!({"channel": "chat:frames", "data": {"n": 0}}),
        )
        .await;
    assert_eq!(first["publish"], json!({}), "{first}");
    let before = script_calls().await;
    send_publishes(&mut alice, 3000, 40, 40, |_| "chat:frames").await;
    let replies = replies_in_order(&mut alice, 3000..3040).await;
    assert!(replies.iter().all(|reply| reply["publish"] == json!({})));
    // One script call for the 40, not 40 (the node's own periodic scripts, such as its
    // info announcement, may add one or two meanwhile).
    let calls = script_calls().await - before;
    assert!(
        calls <= 3,
        "{calls} script calls for one frame of 40 publishes"
    );
}
