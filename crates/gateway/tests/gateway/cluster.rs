//! Many gateways, nothing lost: real `herald-gateway` processes on one Redis.
//!
//! - A gateway killed with SIGKILL: its clients reconnect through nginx to the other one
//!   and recover every publication made meanwhile (each number exactly once).
//! - Redis killed and started again (empty) under traffic: every client ends with every
//!   publication or was told it could not recover (2500 → resubscribe → `recovered: false`,
//!   or 3010 → reconnect → `recovered: false`); none silently misses one.
//!
//! Publications are numbered; every client's log is checked with
//! [`follower::silent_misses`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_broker::{Broker, RedisConfig};
use herald_common::ids::UserId;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::follower::{self, Follow, Log, silent_misses};
use crate::processes::{GatewayProcess, NginxProcess, RedisProcess, Scratch};
use crate::support::{TokenMinter, test_redis_url};

const KEY: &str = "cluster-test-key";

/// Longest wait for the clients to catch up at the end of a scenario.
const CATCH_UP: Duration = Duration::from_secs(20);

fn gateway_env() -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_API_KEY", KEY.to_owned()),
        ("HERALD_DRAIN_WINDOW", "1".to_owned()),
        ("HERALD_LIMITS__PUBLISH_RATE", "1000".to_owned()),
    ]
}

/// POSTs to the server API; `None` when the call failed (HTTP or protocol error).
async fn api(http: &reqwest::Client, url: &str, body: &Value) -> Option<Value> {
    let response = http
        .post(url)
        .header("X-API-Key", KEY)
        .body(body.to_string())
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let answer: Value = response.json().await.ok()?;
    answer.get("result").cloned()
}

/// Waits until `done` holds for every log, or fails with the logs.
async fn until_all(logs: &[Arc<Mutex<Log>>], what: &str, done: impl Fn(&Log) -> bool) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        if logs.iter().all(|log| done(&log.lock().unwrap())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            logs.iter()
                .map(|l| format!("{:?}", l.lock().unwrap()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_gateway_recover_everything_through_the_other_one() {
    let scratch = Scratch::new("failover");
    let prefix = format!("test:{}:", UserId::new());
    let keys = TokenMinter::new();
    let broker =
        Broker::redis(&RedisConfig::new(test_redis_url()).with_prefix(prefix.clone())).unwrap();
    keys.publish(&broker).await;
    let env = gateway_env();
    let mut first =
        GatewayProcess::start(&scratch, "gateway-1", &test_redis_url(), &prefix, &env).await;
    let second =
        GatewayProcess::start(&scratch, "gateway-2", &test_redis_url(), &prefix, &env).await;
    // Everything goes to gateway-1 while it lives, then to gateway-2.
    let nginx = NginxProcess::start(&scratch, first.port, &[second.port]).await;

    let channel = "chat:failover";
    let stop = CancellationToken::new();
    let logs: Vec<_> = (0..4)
        .map(|_| {
            follower::spawn(
                Follow {
                    url: nginx.ws_url(),
                    token: keys.token(&UserId::new(), "follower", 600),
                    channel: Some(channel.to_owned()),
                },
                stop.clone(),
            )
        })
        .collect();
    until_all(&logs, "the followers to subscribe", |log| log.subscribed).await;

    // A steady numbered stream through nginx; a call that fails is retried with the same
    // idempotency key, so each number is in the channel exactly once.
    let http = reqwest::Client::new();
    let publish_url = nginx.http_url("/api/publish");
    let total = 60u64;
    let kill_at = 20u64;
    for n in 1..=total {
        if n == kill_at {
            first.process.kill9().await;
        }
        let body =
            json!({"channel": channel, "data": {"n": n}, "idempotency_key": format!("n{n}")});
        let deadline = Instant::now() + Duration::from_secs(10);
        while api(&http, &publish_url, &body).await.is_none() {
            assert!(Instant::now() < deadline, "publishing {n} keeps failing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    until_all(&logs, "every follower to see the last number", |log| {
        log.saw(channel, total)
    })
    .await;
    stop.cancel();
    let published: BTreeSet<u64> = (1..=total).collect();
    for log in &logs {
        let log = log.lock().unwrap();
        let numbers = log.numbers(channel);
        assert_eq!(
            numbers,
            published.iter().copied().collect::<Vec<_>>(),
            "each number exactly once, in order: {log:?}"
        );
        assert!(silent_misses(&log.channels[channel], &published).is_empty());
        assert!(
            !log.told_unrecovered(channel),
            "history survives a gateway: {log:?}"
        );
        assert!(
            log.connects >= 2,
            "the follower moved to the other gateway: {log:?}"
        );
        assert!(
            log.recovered >= 1,
            "it recovered on the other gateway: {log:?}"
        );
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_traffic_leaves_no_client_silently_behind() {
    let scratch = Scratch::new("redis-restart");
    let mut redis = RedisProcess::start(&scratch).await;
    let prefix = "herald:";
    let keys = TokenMinter::new();
    let broker = Broker::redis(&RedisConfig::new(redis.url()).with_prefix(prefix)).unwrap();
    keys.publish(&broker).await;
    let env = gateway_env();
    let gateways = [
        GatewayProcess::start(&scratch, "gateway-1", &redis.url(), prefix, &env).await,
        GatewayProcess::start(&scratch, "gateway-2", &redis.url(), prefix, &env).await,
    ];

    // Four followers, two per gateway: a client-side chat subscription and the server-side
    // notifications feed of their user.
    let chat = "chat:restart";
    let stop = CancellationToken::new();
    let mut followers = Vec::new();
    for i in 0..4 {
        let user = UserId::new();
        let log = follower::spawn(
            Follow {
                url: gateways[i % 2].ws_url(),
                token: keys.token(&user, "follower", 600),
                channel: Some(chat.to_owned()),
            },
            stop.clone(),
        );
        followers.push((format!("notifications#{user}"), log));
    }
    let logs: Vec<_> = followers.iter().map(|(_, log)| Arc::clone(log)).collect();
    until_all(&logs, "the followers to subscribe", |log| log.subscribed).await;

    // Publish each number to the chat room and to every feed, alternating gateways; a call
    // that fails (Redis down) is not retried: only successes count as published.
    let mut channels = vec![chat.to_owned()];
    channels.extend(followers.iter().map(|(feed, _)| feed.clone()));
    let mut published: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); channels.len()];
    let http = reqwest::Client::new();
    let total = 90u64;
    let mut restarted_at = None;
    for n in 1..=total {
        if n == 25 {
            redis.kill9().await;
            restarted_at = Some(n + 15);
        }
        if restarted_at == Some(n) {
            redis.restart(&scratch).await;
        }
        let url = gateways[(n % 2) as usize].http_url("/api/broadcast");
        let body = json!({"channels": channels, "data": {"n": n}});
        if let Some(result) = api(&http, &url, &body).await {
            for (i, response) in result["responses"].as_array().unwrap().iter().enumerate() {
                if response.get("result").is_some() {
                    published[i].insert(n);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // The restarted Redis is empty: auth would publish its keys again; so does the test
    // (the gateways keep the key set they saw, so connections are not refused meanwhile).
    let set = herald_common::auth::KeySet {
        keys: vec![keys.jwk()],
    };
    let set = serde_json::to_string(&set).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker
        .kv_set(herald_service::tokens::KEY_SET_KV_KEY, &set, None)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the restarted Redis does not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        published[0].contains(&total),
        "publishing works again after the restart"
    );

    let deadline = Instant::now() + CATCH_UP;
    for (feed, log) in &followers {
        while !{
            let log = log.lock().unwrap();
            log.saw(chat, total) && log.saw(feed, total)
        } {
            assert!(
                Instant::now() < deadline,
                "{feed} never caught up: {:?}",
                log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.cancel();
    for (feed, log) in &followers {
        let log = log.lock().unwrap();
        let feed_index = channels.iter().position(|c| c == feed).unwrap();
        for (channel, published) in [
            (chat, &published[0]),
            (feed.as_str(), &published[feed_index]),
        ] {
            let seen = log.channels.get(channel).cloned().unwrap_or_default();
            let misses = silent_misses(&seen, published);
            assert!(
                misses.is_empty(),
                "{channel}: silently missed {misses:?}\n{log:?}"
            );
            // History did not survive the restart, so recovering was impossible: the client
            // must have been told.
            assert!(
                log.told_unrecovered(channel),
                "{channel}: never told: {log:?}"
            );
        }
    }
}
