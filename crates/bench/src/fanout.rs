//! `fanout`: N subscribers of one channel and one or more publishers.
//!
//! Each publisher stamps its publications with its index, a sequence number and the send
//! time; each subscriber records the latency (receive − send, one clock: publishers and
//! subscribers live in this process) and a bitset of the sequence numbers it saw, so
//! losses, duplicates and reorderings are counted exactly. The gateway's CPU time is read
//! from `/proc/<pid>` before the first publication and once every subscriber has received
//! everything (or the drain time ran out).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use herald_broker::{Broker, HistoryPolicy, PublishRequest, RedisConfig};
use herald_common::channel::ChannelName;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenArgs;
use crate::procfs;
use crate::report;
use crate::ws::{PING, Target, Ws, bench_data, parse_bench};

/// Default publications a publisher may have in flight (sent, not yet acknowledged).
const WINDOW: u64 = 512;

/// Default publish commands joined into one frame in a burst.
const BURST_FRAME: u64 = 32;

/// Options of `herald-bench fanout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's client protocol endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/connection/websocket")]
    url: String,
    #[command(flatten)]
    auth: TokenArgs,
    /// Subscribers (connections) of the channel.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// The channel (clients must be allowed to publish into it).
    #[arg(long, default_value = "chat:bench")]
    channel: String,
    /// Publications per second, over all publishers (ignored with `--burst`).
    #[arg(long, default_value_t = 80.0)]
    rate: f64,
    /// Seconds of publishing at `--rate`.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Publish this many messages as fast as the publishers can instead of a fixed rate.
    #[arg(long)]
    burst: Option<u64>,
    /// Size of each publication's data in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Publishing connections (each also subscribes, as the protocol requires).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Publish through the server API (`http://127.0.0.1:8080/api/publish`) instead of
    /// client connections.
    #[arg(long)]
    api_url: Option<String>,
    /// Publish straight into Redis (`redis://127.0.0.1:6379`) with the broker's publish
    /// script, as the server would, so the gateway's CPU time is fan-out only. Each
    /// publisher sends one publication at a time, so its sequence stays in order.
    #[arg(long)]
    redis_url: Option<String>,
    /// The gateway's Redis prefix (`HERALD_REDIS_PREFIX`), with `--redis-url`.
    #[arg(long, default_value = "herald:")]
    redis_prefix: String,
    /// The server API key (`X-API-Key`).
    #[arg(long, env = "HERALD_BENCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The gateway's process id: its CPU time per delivery and per publication is reported.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The redis-server's process id: its CPU time per publication is reported too.
    #[arg(long)]
    redis_pid: Option<u32>,
    /// Publications a client publisher may have in flight (sent, not yet answered).
    #[arg(long, default_value_t = WINDOW)]
    window: u64,
    /// Publish commands a client publisher joins into one frame when more are due.
    #[arg(long, default_value_t = BURST_FRAME)]
    frame: u64,
    /// Longest wait for the last deliveries after publishing ended, seconds.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Handshakes in flight while connecting the subscribers.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
}

/// What one subscriber saw.
#[derive(Debug)]
struct Seen {
    latency: Histogram<u32>,
    received: u64,
    distinct: u64,
    duplicates: u64,
    reordered: u64,
    last_ns: u64,
}

/// What the publishers did.
#[derive(Debug, Default)]
struct Published {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// Runs the scenario and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.subscribers == 0 || args.publishers == 0 || args.window == 0 || args.frame == 0 {
        bail!("--subscribers, --publishers, --window and --frame must be at least 1");
    }
    let http = reqwest::Client::new();
    let target = Target::resolve(&args.url).await?;
    let token = args.auth.token(&http).await?;
    let via_api = args.api_url.is_some();
    let via_redis = args.redis_url.is_some();
    let publisher_subs = if via_api || via_redis {
        0
    } else {
        args.publishers
    };
    let total = match args.burst {
        Some(count) => count,
        None => (args.rate * args.duration).round() as u64,
    };
    if total == 0 {
        bail!("nothing to publish: raise --rate/--duration or --burst");
    }

    eprintln!(
        "connecting {} subscribers to {} …",
        args.subscribers, args.url
    );
    let clients = target
        .clients(
            args.subscribers,
            args.connect_concurrency,
            &token,
            Some(&args.channel),
        )
        .await?;
    let start = Instant::now();
    let stop = CancellationToken::new();
    let progress = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::with_capacity(clients.len());
    for ws in clients {
        subscribers.push(tokio::spawn(subscriber(
            ws,
            start,
            args.publishers,
            Arc::clone(&progress),
            stop.clone(),
        )));
    }

    // Let the subscriptions settle (presence writes, joins) before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published = Arc::new(Published::default());
    let per_publisher = split(total, args.publishers);
    let rate = args
        .burst
        .is_none()
        .then_some(args.rate / args.publishers as f64);
    let mut publisher_tasks = Vec::new();
    let mut publisher_conns = Vec::new();
    let mut broker = None;
    if let Some(url) = &args.redis_url {
        let config = RedisConfig::new(url.clone()).with_prefix(args.redis_prefix.clone());
        broker = Some(Broker::redis(&config).context("redis configuration")?);
    }
    if publisher_subs > 0 {
        publisher_conns = target
            .clients(
                args.publishers,
                args.publishers,
                &token,
                Some(&args.channel),
            )
            .await?;
    }
    let load_before = procfs::load_average();
    let cpu_before = args.gateway_pid.map(procfs::cpu_micros).transpose()?;
    let redis_before = args.redis_pid.map(procfs::cpu_micros).transpose()?;
    let self_before = procfs::cpu_micros(std::process::id()).ok();
    let began = start.elapsed();
    if let Some(broker) = &broker {
        let channel = ChannelName::parse(args.channel.clone()).context("channel name")?;
        for (index, count) in per_publisher.iter().enumerate() {
            publisher_tasks.push(tokio::spawn(redis_publisher(
                broker.clone(),
                channel.clone(),
                Plan {
                    index,
                    count: *count,
                    rate,
                    size: args.size,
                    start,
                },
                Arc::clone(&published),
            )));
        }
    } else if let Some(api_url) = &args.api_url {
        for (index, count) in per_publisher.iter().enumerate() {
            publisher_tasks.push(tokio::spawn(api_publisher(
                http.clone(),
                api_url.clone(),
                args.api_key.clone().unwrap_or_default(),
                args.channel.clone(),
                Plan {
                    index,
                    count: *count,
                    rate,
                    size: args.size,
                    start,
                },
                Arc::clone(&published),
            )));
        }
    } else {
        for (index, (ws, count)) in publisher_conns.into_iter().zip(&per_publisher).enumerate() {
            publisher_tasks.push(tokio::spawn(ws_publisher(
                ws,
                args.channel.clone(),
                (args.window, args.frame),
                Plan {
                    index,
                    count: *count,
                    rate,
                    size: args.size,
                    start,
                },
                Arc::clone(&published),
            )));
        }
    }
    for task in publisher_tasks {
        task.await??;
    }
    let publishing = start.elapsed() - began;
    // Acknowledgements may still arrive while draining (a server that is behind).
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain);
    let expected_now = || published.accepted.load(Ordering::Relaxed) * args.subscribers as u64;
    while progress.load(Ordering::Relaxed) < expected_now() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let accepted = published.accepted.load(Ordering::Relaxed);
    let expected = accepted * args.subscribers as u64;
    let cpu_after = args.gateway_pid.map(procfs::cpu_micros).transpose()?;
    let redis_after = args.redis_pid.map(procfs::cpu_micros).transpose()?;
    let self_after = procfs::cpu_micros(std::process::id()).ok();
    let load_after = procfs::load_average();
    stop.cancel();

    let mut latency = report::histogram();
    let (mut received, mut distinct, mut duplicates, mut reordered, mut last_ns) = (0, 0, 0, 0, 0);
    let mut failed = 0usize;
    for task in subscribers {
        match task.await? {
            Ok(seen) => {
                latency.add(&seen.latency).context("merging histograms")?;
                received += seen.received;
                distinct += seen.distinct;
                duplicates += seen.duplicates;
                reordered += seen.reordered;
                last_ns = last_ns.max(seen.last_ns);
            }
            Err(err) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("subscriber failed: {err:#}");
                }
            }
        }
    }
    let window = Duration::from_nanos(last_ns)
        .saturating_sub(began)
        .max(publishing);
    let lost = expected.saturating_sub(distinct);
    let gateway_deliveries = accepted * (args.subscribers + publisher_subs) as u64;

    println!(
        "fanout: {} subscribers, {} publisher(s) via {}, {} B data, {}",
        args.subscribers,
        args.publishers,
        if via_api {
            "server API"
        } else if via_redis {
            "Redis"
        } else {
            "client publish"
        },
        args.size,
        match args.burst {
            Some(count) => format!("burst of {count}"),
            None => format!("{} msg/s for {} s", args.rate, args.duration),
        }
    );
    println!("  load average (1 min) before/after: {load_before} / {load_after}");
    println!(
        "  published: {} sent, {} accepted, {} refused, in {:.3} s ({:.0} msg/s)",
        published.sent.load(Ordering::Relaxed),
        accepted,
        published.refused.load(Ordering::Relaxed),
        publishing.as_secs_f64(),
        accepted as f64 / publishing.as_secs_f64()
    );
    println!(
        "  delivered: {distinct} of {expected} in {:.3} s = {:.0} deliveries/s",
        window.as_secs_f64(),
        distinct as f64 / window.as_secs_f64()
    );
    println!(
        "  lost {lost}, duplicated {duplicates}, out of order {reordered}, failed subscribers {failed} (lines received {received})"
    );
    println!("  latency: {}", report::summary(&latency));
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after.saturating_sub(before);
        println!(
            "  gateway CPU: {:.3} s = {:.3} µs per delivery ({} deliveries incl. {} publisher subscription(s)); {:.0}% of one core",
            cpu as f64 / 1e6,
            cpu as f64 / gateway_deliveries.max(1) as f64,
            gateway_deliveries,
            publisher_subs,
            cpu as f64 / 1e6 / window.as_secs_f64() * 100.0
        );
    }
    let gateway_cpu = cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b));
    let redis_cpu = redis_before
        .zip(redis_after)
        .map(|(b, a)| a.saturating_sub(b));
    if gateway_cpu.is_some() || redis_cpu.is_some() {
        let per = |cpu: Option<u64>| cpu.map(|cpu| cpu as f64 / accepted.max(1) as f64);
        let (gateway, redis) = (per(gateway_cpu), per(redis_cpu));
        let show = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "  server CPU per publication: {} µs = gateway {} + redis-server {} ({:.0} publications/s)",
            show(Some(gateway.unwrap_or(0.0) + redis.unwrap_or(0.0))),
            show(gateway),
            show(redis),
            accepted as f64 / publishing.as_secs_f64()
        );
    }
    if let (Some(before), Some(after)) = (self_before, self_after) {
        println!(
            "  bench CPU: {:.3} s ({:.3} µs per delivery)",
            after.saturating_sub(before) as f64 / 1e6,
            after.saturating_sub(before) as f64 / distinct.max(1) as f64
        );
    }
    Ok(())
}

/// `total` split as evenly as possible in `parts`.
fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts_u64 = parts as u64;
    (0..parts_u64)
        .map(|index| total / parts_u64 + u64::from(index < total % parts_u64))
        .collect()
}

/// What one publisher sends.
#[derive(Debug, Clone, Copy)]
struct Plan {
    index: usize,
    count: u64,
    /// Publications per second; `None` for a burst.
    rate: Option<f64>,
    size: usize,
    start: Instant,
}

impl Plan {
    /// How many should have been sent `elapsed` after the start of publishing.
    fn due(&self, elapsed: Duration) -> u64 {
        match self.rate {
            Some(rate) => ((elapsed.as_secs_f64() * rate) as u64 + 1).min(self.count),
            None => self.count,
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// Publishes through a client connection (`publish` commands) and counts the replies.
async fn ws_publisher(
    ws: Ws,
    channel: String,
    (window, frame_len): (u64, u64),
    plan: Plan,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let acked = Arc::new(AtomicU64::new(0));
    let ack_wake = Arc::new(Notify::new());
    let done = CancellationToken::new();
    let reader = {
        let acked = Arc::clone(&acked);
        let ack_wake = Arc::clone(&ack_wake);
        let published = Arc::clone(&published);
        let done = done.clone();
        tokio::spawn(async move {
            let mut pongs = 0u64;
            loop {
                let message = tokio::select! {
                    () = done.cancelled() => break,
                    message = stream.next() => message,
                };
                let Some(Ok(Message::Text(text))) = message else {
                    if matches!(message, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                        break;
                    }
                    continue;
                };
                let mut acks = 0;
                for line in text.as_str().split('\n') {
                    if line.starts_with(r#"{"id":"#) {
                        acks += 1;
                        if line.contains(r#""error":"#) {
                            published.refused.fetch_add(1, Ordering::Relaxed);
                        } else {
                            published.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if line == PING {
                        pongs += 1;
                    }
                }
                if acks > 0 {
                    acked.fetch_add(acks, Ordering::Release);
                    ack_wake.notify_one();
                }
            }
            pongs
        })
    };

    let began = Instant::now();
    let deadline = began + Duration::from_secs(600);
    let mut sent = 0u64;
    let mut id = 3u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < plan.count && Instant::now() < deadline {
        let in_flight = sent - acked.load(Ordering::Acquire);
        let room = window.saturating_sub(in_flight);
        let due = plan.due(began.elapsed()).saturating_sub(sent);
        let batch = due.min(room).min(frame_len);
        if batch == 0 {
            if plan.rate.is_some() && room > 0 {
                tick.tick().await;
            } else {
                // Window full: wait for acknowledgements (bounded, in case they never come).
                let _ = tokio::time::timeout(Duration::from_millis(50), ack_wake.notified()).await;
            }
            continue;
        }
        let sent_ns = plan.now_ns();
        let mut frame = String::with_capacity(batch as usize * (plan.size + 64));
        for offset in 0..batch {
            if offset > 0 {
                frame.push('\n');
            }
            let data = bench_data(plan.index, sent + offset, sent_ns, plan.size);
            frame.push_str(&format!(
                r#"{{"id":{id},"publish":{{"channel":{},"data":{data}}}}}"#,
                serde_json::Value::from(channel.as_str())
            ));
            id += 1;
        }
        sink.send(Message::text(frame)).await?;
        sent += batch;
        published.sent.fetch_add(batch, Ordering::Relaxed);
    }
    // Wait for the last acknowledgements (bounded).
    let until = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Acquire) < sent && Instant::now() < until {
        let _ = tokio::time::timeout(Duration::from_millis(50), ack_wake.notified()).await;
    }
    done.cancel();
    let _ = reader.await;
    let _ = sink.close().await;
    Ok(())
}

/// Publishes into Redis with the broker's publish script, one publication at a time.
async fn redis_publisher(
    broker: Broker,
    channel: ChannelName,
    plan: Plan,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < plan.count {
        if plan.due(began.elapsed()) <= sent {
            tick.tick().await;
            continue;
        }
        let data = RawValue::from_string(bench_data(plan.index, sent, plan.now_ns(), plan.size))?;
        let request = PublishRequest::new(data).with_history(HistoryPolicy {
            size: 300,
            ttl: Duration::from_secs(24 * 3600),
        });
        let counter = match broker.publish(&channel, request).await {
            Ok(_) => &published.accepted,
            Err(_) => &published.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        sent += 1;
        published.sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Publishes through the server API, `WINDOW` requests in flight at most.
async fn api_publisher(
    http: reqwest::Client,
    url: String,
    key: String,
    channel: String,
    plan: Plan,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(WINDOW as usize));
    let began = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut requests = tokio::task::JoinSet::new();
    while sent < plan.count {
        if plan.due(began.elapsed()) <= sent {
            tick.tick().await;
            continue;
        }
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let data = bench_data(plan.index, sent, plan.now_ns(), plan.size);
        let body = format!(
            r#"{{"channel":{},"data":{data}}}"#,
            serde_json::Value::from(channel.as_str())
        );
        let request = http
            .post(&url)
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .body(body);
        let counters = Arc::clone(&published);
        requests.spawn(async move {
            let ok = match request.send().await {
                Ok(response) if response.status().is_success() => !response
                    .text()
                    .await
                    .unwrap_or_default()
                    .contains(r#""error""#),
                _ => false,
            };
            let counter = if ok {
                &counters.accepted
            } else {
                &counters.refused
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        sent += 1;
        published.sent.fetch_add(1, Ordering::Relaxed);
    }
    while requests.join_next().await.is_some() {}
    Ok(())
}

/// Reads one subscriber's pushes until `stop`, answering pings.
async fn subscriber(
    mut ws: Ws,
    start: Instant,
    publishers: usize,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> anyhow::Result<Seen> {
    let mut seen = Seen {
        latency: report::histogram(),
        received: 0,
        distinct: 0,
        duplicates: 0,
        reordered: 0,
        last_ns: 0,
    };
    // Per publisher: the sequence numbers seen (a bitset) and the highest one.
    let mut bits: Vec<Vec<u64>> = vec![Vec::new(); publishers];
    let mut highest: Vec<Option<u64>> = vec![None; publishers];
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => bail!("closed by the server: {close:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection ended"),
        };
        let now_ns = start.elapsed().as_nanos() as u64;
        let mut fresh = 0;
        for line in text.as_str().split('\n') {
            if line == PING {
                ws.send(Message::text(PING)).await?;
                continue;
            }
            let Some(message) = parse_bench(line) else {
                continue;
            };
            seen.received += 1;
            let Some(words) = bits.get_mut(message.publisher) else {
                continue;
            };
            let word = (message.seq / 64) as usize;
            let bit = 1u64 << (message.seq % 64);
            if word >= words.len() {
                words.resize(word + 1, 0);
            }
            if words[word] & bit != 0 {
                seen.duplicates += 1;
                continue;
            }
            words[word] |= bit;
            fresh += 1;
            let top = &mut highest[message.publisher];
            if top.is_some_and(|top| message.seq < top) {
                seen.reordered += 1;
            } else {
                *top = Some(message.seq);
            }
            report::record(&mut seen.latency, now_ns.saturating_sub(message.sent_ns));
        }
        if fresh > 0 {
            seen.distinct += fresh;
            seen.last_ns = now_ns;
            progress.fetch_add(fresh, Ordering::Relaxed);
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_is_split_evenly() {
        assert_eq!(split(10, 3), [4, 3, 3]);
        assert_eq!(split(2, 4), [1, 1, 0, 0]);
    }

    #[test]
    fn a_rate_plan_is_due_linearly_and_a_burst_at_once() {
        let plan = Plan {
            index: 0,
            count: 100,
            rate: Some(10.0),
            size: 64,
            start: Instant::now(),
        };
        assert_eq!(plan.due(Duration::ZERO), 1);
        assert_eq!(plan.due(Duration::from_millis(1050)), 11);
        assert_eq!(plan.due(Duration::from_secs(100)), 100);
        let burst = Plan { rate: None, ..plan };
        assert_eq!(burst.due(Duration::ZERO), 100);
    }
}
