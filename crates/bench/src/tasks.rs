//! `e2e-tasks`: `POST /tasks` at a fixed rate while one client subscribed to `tasks`
//! measures the time from the start of each POST to the frame carrying its notification
//! (tasks-api → outbox → events stream → notifier → publication → gateway → client).
//!
//! Each task's title carries its sequence number and the POST's start time, so the
//! subscriber needs no shared state with the senders.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenArgs;
use crate::procfs;
use crate::report;
use crate::ws::{PING, Target, Ws};

/// Requests in flight at most.
const IN_FLIGHT: usize = 256;

/// Options of `herald-bench e2e-tasks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of tasks-api (the embedded server serves it too).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    tasks_url: String,
    /// The gateway's client protocol endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/connection/websocket")]
    ws_url: String,
    #[command(flatten)]
    auth: TokenArgs,
    /// Tasks created per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of creating tasks.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Longest wait for the last notifications, seconds.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
}

/// Runs the scenario and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let token = args.auth.token(&http).await?;
    let target = Target::resolve(&args.ws_url).await?;
    let ws = target.client(&token, Some("tasks")).await?;
    let start = Instant::now();
    let stop = CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let listener = tokio::spawn(listen(ws, start, Arc::clone(&received), stop.clone()));

    let total = (args.rate * args.duration).round() as u64;
    let url = format!("{}/tasks", args.tasks_url.trim_end_matches('/'));
    let post_latency = Arc::new(Mutex::new(report::histogram()));
    let created = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let load_before = procfs::load_average();
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut requests = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while sent < total {
        let due = ((began.elapsed().as_secs_f64() * args.rate) as u64 + 1).min(total);
        if due <= sent {
            tick.tick().await;
            continue;
        }
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let sent_ns = start.elapsed().as_nanos() as u64;
        let request = http
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": format!("bench {sent} {sent_ns}")}));
        let (post_latency, created, failed) = (
            Arc::clone(&post_latency),
            Arc::clone(&created),
            Arc::clone(&failed),
        );
        requests.spawn(async move {
            let posted = Instant::now();
            let ok = matches!(request.send().await, Ok(response) if response.status().is_success());
            if ok {
                created.fetch_add(1, Ordering::Relaxed);
                report::record(
                    &mut *post_latency.lock().await,
                    posted.elapsed().as_nanos() as u64,
                );
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        sent += 1;
    }
    while requests.join_next().await.is_some() {}
    let elapsed = began.elapsed();
    let created = created.load(Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs_f64(args.drain);
    while received.load(Ordering::Relaxed) < created && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    let latency = listener.await??;
    let got = received.load(Ordering::Relaxed);
    if created == 0 {
        bail!(
            "no task was created ({} failed)",
            failed.load(Ordering::Relaxed)
        );
    }

    println!("e2e-tasks: {} tasks/s for {} s", args.rate, args.duration);
    println!(
        "  load average (1 min) before/after: {load_before} / {}",
        procfs::load_average()
    );
    println!(
        "  created {created} ({:.0}/s), failed {}, notified {got}, missing {}",
        created as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        created.saturating_sub(got)
    );
    println!(
        "  POST response: {}",
        report::summary(&*post_latency.lock().await)
    );
    println!("  POST start → client frame: {}", report::summary(&latency));
    Ok(())
}

/// Reads `tasks` pushes until `stop`, recording POST start → frame for bench tasks.
async fn listen(
    mut ws: Ws,
    start: Instant,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) -> anyhow::Result<Histogram<u32>> {
    let mut latency = report::histogram();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection ended"),
        };
        let now_ns = start.elapsed().as_nanos() as u64;
        for line in text.as_str().split('\n') {
            if line == PING {
                ws.send(Message::text(PING)).await?;
                continue;
            }
            let Some(sent_ns) = bench_task_sent(line) else {
                continue;
            };
            report::record(&mut latency, now_ns.saturating_sub(sent_ns));
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(latency)
}

/// The POST start time of a `task.created` push for a bench task.
fn bench_task_sent(line: &str) -> Option<u64> {
    let push: Value = serde_json::from_str(line).ok()?;
    let data = push.pointer("/push/pub/data")?;
    if data.get("type")?.as_str()? != "task.created" {
        return None;
    }
    let title = data.pointer("/task/title")?.as_str()?;
    let mut words = title.strip_prefix("bench ")?.split(' ');
    let _seq = words.next()?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_task_push_gives_its_post_time() {
        let line = r#"{"push":{"channel":"tasks","pub":{"data":{"type":"task.created","task":{"title":"bench 7 123456"},"text":"x"},"offset":3}}}"#;
        assert_eq!(bench_task_sent(line), Some(123_456));
        assert_eq!(bench_task_sent(r#"{"id":2,"subscribe":{}}"#), None);
    }
}
