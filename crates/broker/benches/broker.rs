//! Publish and fan-out cost per message, for the in-memory broker and Redis.
//!
//! `cargo bench -p herald-broker` (Redis at `HERALD_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; the Redis cases are skipped when it does not answer).
//!
//! - `publish/<impl>`: one publish (history 300) awaited at a time: the latency of a publish.
//! - `publish_x64/<impl>`: 64 publishes in flight at once: the throughput cost per message.
//! - `fanout/<impl>/<nodes>`: one publish awaited until every subscriber node received it.
//! - `fanout_x64/<impl>/<nodes>`: 64 publishes in flight, until every node received all 64.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use herald_broker::{Broker, BrokerEvent, HistoryPolicy, PublishRequest, RedisConfig};
use herald_common::channel::ChannelName;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const BATCH: usize = 64;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn request() -> PublishRequest {
    let data = RawValue::from_string(
        r#"{"text":"a chat message of a typical length, about eighty bytes long"}"#.to_owned(),
    )
    .unwrap();
    PublishRequest::new(data).with_history(HistoryPolicy::new(300, Duration::from_secs(3600)))
}

/// The implementations to measure: memory always, Redis when it answers.
/// A named implementation and how to make another client of it.
type Implementation = (&'static str, Box<dyn Fn() -> Broker>);

fn brokers(rt: &Runtime) -> Vec<Implementation> {
    let mut brokers: Vec<Implementation> = Vec::new();
    let memory = Broker::memory();
    brokers.push(("memory", Box::new(move || memory.clone())));
    let url = std::env::var("HERALD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    let config = RedisConfig::new(url).with_prefix(format!("herald-bench-{suffix}:"));
    let probe = Broker::redis(&config).unwrap();
    if rt.block_on(probe.ping()).is_ok() {
        // Each call is a separate client (its own connections), like a separate process.
        brokers.push(("redis", Box::new(move || Broker::redis(&config).unwrap())));
    } else {
        eprintln!("redis not reachable: redis benchmarks skipped");
    }
    brokers
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let _runtime = rt.enter();
    let channel = ChannelName::parse("chat:bench-publish").unwrap();
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    for (name, make) in brokers(&rt) {
        let broker = make();
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { broker.publish(&channel, request()).await.unwrap() });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("publish_x64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, make) in brokers(&rt) {
        let broker = make();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                join_all((0..BATCH).map(|_| broker.publish(&channel, request()))).await
            });
        });
    }
    group.finish();
}

/// Receives `count` publications on each receiver.
async fn receive_all(receivers: &mut [mpsc::Receiver<BrokerEvent>], count: usize) {
    for events in receivers.iter_mut() {
        let mut received = 0;
        while received < count {
            match events.recv().await {
                Some(BrokerEvent::Publication { .. }) => received += 1,
                Some(BrokerEvent::GapPossible { .. }) => {
                    panic!("events dropped: receiver too small")
                }
                Some(_) => {}
                None => panic!("subscriber stopped"),
            }
        }
    }
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let _runtime = rt.enter();
    let channel = ChannelName::parse("chat:bench-fanout").unwrap();
    for (batch, group_name) in [(1, "fanout"), (BATCH, "fanout_x64")] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(batch as u64));
        for (name, make) in brokers(&rt) {
            for nodes in [1usize, 4] {
                let publisher = make();
                let mut subscribers = Vec::new();
                let mut receivers = Vec::new();
                for _ in 0..nodes {
                    let (subscriber, events) = rt.block_on(async {
                        let (subscriber, events) = make().subscriber(4 * BATCH);
                        subscriber.subscribe(&channel).await.unwrap();
                        (subscriber, events)
                    });
                    subscribers.push(subscriber);
                    receivers.push(events);
                }
                let receivers = Arc::new(tokio::sync::Mutex::new(receivers));
                group.bench_function(BenchmarkId::new(name, format!("{nodes}_nodes")), |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let publisher = publisher.clone();
                        let channel = channel.clone();
                        let receivers = Arc::clone(&receivers);
                        async move {
                            let mut receivers = receivers.lock().await;
                            let started = Instant::now();
                            for _ in 0..iters {
                                join_all(
                                    (0..batch).map(|_| publisher.publish(&channel, request())),
                                )
                                .await;
                                receive_all(&mut receivers, batch).await;
                            }
                            started.elapsed()
                        }
                    });
                });
                drop(subscribers);
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = publish, fanout
}
criterion_main!(benches);
