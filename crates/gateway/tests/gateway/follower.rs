//! A client that behaves like the SDKs when things break, and remembers everything it saw:
//! it reconnects after a close or a dropped socket (recovering its server-side channels
//! through the connect `subs` map), resubscribes after an unsubscribe push with a code
//! ≥ 2500 (recovering from its last position), and retries a subscribe that failed.
//!
//! Publications carry `{"n": <number>}`. Per channel the follower logs each number in the
//! order it arrived and a [`Seen::Unrecovered`] marker whenever the server said it could not
//! recover (`was_recovering` without `recovered`). [`silent_misses`] then checks the one
//! rule of the failover scenarios: every published number was seen, or the client was told.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// One entry of a channel's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A publication with this number.
    Pub(u64),
    /// The server said the channel could not be recovered.
    Unrecovered,
}

/// What a follower saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Channel → what arrived, in order.
    pub channels: HashMap<String, Vec<Seen>>,
    /// Close codes received.
    pub closes: Vec<u16>,
    /// Unsubscribe push codes received.
    pub unsubscribes: Vec<u64>,
    /// Successful connects.
    pub connects: usize,
    /// Recoveries that returned `recovered: true`.
    pub recovered: usize,
    /// Whether the client-side subscription is currently live.
    pub subscribed: bool,
}

impl Log {
    /// Whether `channel` delivered the number `n`.
    pub fn saw(&self, channel: &str, n: u64) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|seen| seen.contains(&Seen::Pub(n)))
    }

    /// The numbers of `channel` in arrival order.
    pub fn numbers(&self, channel: &str) -> Vec<u64> {
        self.channels
            .get(channel)
            .map(|seen| {
                seen.iter()
                    .filter_map(|s| match s {
                        Seen::Pub(n) => Some(*n),
                        Seen::Unrecovered => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `channel` was ever reported unrecoverable.
    pub fn told_unrecovered(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|seen| seen.contains(&Seen::Unrecovered))
    }
}

/// Published numbers the log neither shows nor covers with an [`Seen::Unrecovered`] marker,
/// and numbers that arrived twice (or out of order) without a marker in between. The client
/// was subscribed before the first number was published.
pub fn silent_misses(log: &[Seen], published: &BTreeSet<u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last = 0u64;
    let mut told = false;
    for seen in log {
        match *seen {
            Seen::Unrecovered => told = true,
            Seen::Pub(n) => {
                if !told {
                    if n <= last {
                        problems.push(format!("{n} arrived again or out of order after {last}"));
                    }
                    problems.extend(
                        published
                            .range(last + 1..n.max(last + 1))
                            .map(|p| format!("{p} missing before {n}")),
                    );
                }
                last = last.max(n);
                told = false;
            }
        }
    }
    if !told {
        problems.extend(
            published
                .range(last + 1..)
                .map(|p| format!("{p} missing at the end")),
        );
    }
    problems
}

/// Where a follower connects and what it follows.
#[derive(Clone)]
pub struct Follow {
    /// WebSocket URL (a gateway, or nginx in front of several).
    pub url: String,
    /// A valid access token.
    pub token: String,
    /// The client-side subscription, if any (server-side ones come with the connection).
    pub channel: Option<String>,
}

/// A stream position.
#[derive(Debug, Clone)]
struct Position {
    epoch: String,
    offset: u64,
}

/// Starts a follower; it runs until `stop` fires.
pub fn spawn(follow: Follow, stop: CancellationToken) -> Arc<Mutex<Log>> {
    let log = Arc::new(Mutex::new(Log::default()));
    let shared = Arc::clone(&log);
    tokio::spawn(async move {
        let mut positions: HashMap<String, Position> = HashMap::new();
        while !stop.is_cancelled() {
            session(&follow, &shared, &mut positions, &stop).await;
            shared.lock().unwrap().subscribed = false;
            tokio::select! {
                () = stop.cancelled() => {}
                () = sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    log
}

fn number(publication: &Value) -> u64 {
    publication["data"]["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a numbered publication: {publication}"))
}

/// Applies a subscribe result (client-side reply or a connect `subs` entry).
fn started(
    log: &Mutex<Log>,
    positions: &mut HashMap<String, Position>,
    channel: &str,
    result: &Value,
) {
    let mut log = log.lock().unwrap();
    let recovering = result["was_recovering"] == true;
    let recovered = result["recovered"] == true;
    let entries = log.channels.entry(channel.to_owned()).or_default();
    if recovering && !recovered {
        entries.push(Seen::Unrecovered);
    }
    if recovered {
        for publication in result["publications"].as_array().into_iter().flatten() {
            entries.push(Seen::Pub(number(publication)));
        }
    }
    if recovering && recovered {
        log.recovered += 1;
    }
    positions.insert(
        channel.to_owned(),
        Position {
            epoch: result["epoch"].as_str().unwrap_or_default().to_owned(),
            offset: result["offset"].as_u64().unwrap_or(0),
        },
    );
}

fn subscribe_command(id: u64, channel: &str, positions: &HashMap<String, Position>) -> String {
    let mut body = json!({ "channel": channel });
    if let Some(position) = positions.get(channel) {
        body["recover"] = json!(true);
        body["epoch"] = json!(position.epoch);
        body["offset"] = json!(position.offset);
    }
    json!({ "id": id, "subscribe": body }).to_string()
}

/// One connection, from connect to its end.
async fn session(
    follow: &Follow,
    log: &Mutex<Log>,
    positions: &mut HashMap<String, Position>,
    stop: &CancellationToken,
) {
    let Ok(Ok((ws, _))) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(follow.url.as_str()),
    )
    .await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let mut subs = Map::new();
    for (channel, position) in positions.iter() {
        if Some(channel) != follow.channel.as_ref() {
            subs.insert(
                channel.clone(),
                json!({"recover": true, "epoch": position.epoch, "offset": position.offset}),
            );
        }
    }
    let connect =
        json!({"id": 1, "connect": {"token": follow.token, "name": "follower", "subs": subs}});
    if sink.send(Message::text(connect.to_string())).await.is_err() {
        return;
    }
    let mut next_id = 2u64;
    let mut pending: Option<u64> = None;
    let never = Instant::now() + Duration::from_secs(86_400);
    let mut subscribe_at = never;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            () = sleep_until(subscribe_at) => {
                subscribe_at = never;
                if let Some(channel) = &follow.channel {
                    pending = Some(next_id);
                    let command = subscribe_command(next_id, channel, positions);
                    next_id += 1;
                    if sink.send(Message::text(command)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                log.lock().unwrap().closes.push(code);
                return;
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return,
        };
        for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
            let Ok(reply) = serde_json::from_str::<Value>(line) else {
                panic!("not JSON: {line}");
            };
            if reply.as_object().is_some_and(Map::is_empty) {
                if sink.send(Message::text("{}")).await.is_err() {
                    return;
                }
                continue;
            }
            let id = reply["id"].as_u64().unwrap_or(0);
            if id == 1 {
                if reply.get("error").is_some() {
                    return;
                }
                log.lock().unwrap().connects += 1;
                for (channel, result) in reply["connect"]["subs"].as_object().into_iter().flatten()
                {
                    started(log, positions, channel, result);
                }
                subscribe_at = Instant::now();
            } else if id != 0 && Some(id) == pending {
                pending = None;
                if reply.get("error").is_some() {
                    // Temporary (Redis unreachable): try again shortly, like the SDK.
                    subscribe_at = Instant::now() + Duration::from_millis(200);
                } else if let Some(channel) = &follow.channel {
                    started(log, positions, channel, &reply["subscribe"]);
                    log.lock().unwrap().subscribed = true;
                }
            } else if let Some(push) = reply.get("push") {
                let channel = push["channel"].as_str().unwrap_or_default().to_owned();
                if let Some(publication) = push.get("pub") {
                    let n = number(publication);
                    log.lock()
                        .unwrap()
                        .channels
                        .entry(channel.clone())
                        .or_default()
                        .push(Seen::Pub(n));
                    if let Some(position) = positions.get_mut(&channel) {
                        position.offset = publication["offset"].as_u64().unwrap_or(position.offset);
                    }
                } else if let Some(unsubscribe) = push.get("unsubscribe") {
                    let code = unsubscribe["code"].as_u64().unwrap_or(0);
                    let mut log = log.lock().unwrap();
                    log.unsubscribes.push(code);
                    log.subscribed = false;
                    if code >= 2500 && Some(&channel) == follow.channel.as_ref() {
                        subscribe_at = Instant::now();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_are_found_unless_the_client_was_told() {
        let published: BTreeSet<u64> = (1..=6).collect();
        let all: Vec<Seen> = (1..=6).map(Seen::Pub).collect();
        assert!(silent_misses(&all, &published).is_empty());
        let gap = [Seen::Pub(1), Seen::Pub(2), Seen::Pub(5), Seen::Pub(6)];
        assert_eq!(
            silent_misses(&gap, &published),
            ["3 missing before 5", "4 missing before 5"]
        );
        let told = [
            Seen::Pub(1),
            Seen::Pub(2),
            Seen::Unrecovered,
            Seen::Pub(5),
            Seen::Pub(6),
        ];
        assert!(silent_misses(&told, &published).is_empty());
        let twice = [
            Seen::Pub(1),
            Seen::Pub(2),
            Seen::Pub(2),
            Seen::Pub(3),
            Seen::Pub(4),
            Seen::Pub(5),
            Seen::Pub(6),
        ];
        assert_eq!(silent_misses(&twice, &published).len(), 1);
        let short = [Seen::Pub(1), Seen::Pub(2)];
        assert_eq!(silent_misses(&short, &published).len(), 4);
        let told_at_end = [Seen::Pub(1), Seen::Pub(2), Seen::Unrecovered];
        assert!(silent_misses(&told_at_end, &published).is_empty());
    }
}
