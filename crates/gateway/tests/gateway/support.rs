//! Test harness: a real gateway on a free port against real Redis (a fresh key prefix per
//! test, so tests run in parallel), tokens minted by `herald-test-support`'s [`TokenMinter`]
//! (an Ed25519 key published to the broker's key-value the way auth publishes its key set),
//! and a small WebSocket client speaking the JSON protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_broker::{Broker, RedisConfig};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use herald_gateway::{Application, Gateway, Settings};
pub use herald_test_support::{TokenMinter, test_redis_url};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Longest wait for anything a test expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running gateway with its own Redis prefix and signing key.
pub struct TestGateway {
    pub port: u16,
    pub gateway: Gateway,
    pub broker: Broker,
    pub keys: TokenMinter,
    shutdown: CancellationToken,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for tests: loopback, two workers, a fresh prefix, generous timings unless a test
/// shortens them.
pub fn test_settings(prefix: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".to_owned(),
        workers: Some(2),
        redis_url: test_redis_url().into(),
        redis_prefix: prefix.to_owned(),
        web_dir: "/nonexistent".into(),
        ..Settings::default()
    }
}

/// Boots a gateway with the test settings.
pub async fn spawn_gateway() -> TestGateway {
    spawn_gateway_with(|_| {}).await
}

/// Boots a gateway with the test settings changed by `tweak`.
pub async fn spawn_gateway_with(tweak: impl FnOnce(&mut Settings)) -> TestGateway {
    let prefix = format!("test:{}:", UserId::new());
    spawn_gateway_on(&prefix, TokenMinter::new(), tweak).await
}

/// Boots a gateway on the Redis key prefix `prefix` with the signing key `keys`: two calls
/// with the same prefix make two nodes of one Herald.
pub async fn spawn_gateway_on(
    prefix: &str,
    keys: TokenMinter,
    tweak: impl FnOnce(&mut Settings),
) -> TestGateway {
    herald_service::telemetry::init_for_tests();
    let prefix = prefix.to_owned();
    let mut settings = test_settings(&prefix);
    tweak(&mut settings);
    // The Redis the node uses (a test may give it one of its own).
    let url = settings.redis_url.expose().clone();
    let broker = Broker::redis(&RedisConfig::new(url).with_prefix(prefix)).unwrap();
    keys.publish(&broker).await;
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    let gateway = app.service().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestGateway {
        port,
        gateway,
        broker,
        keys,
        shutdown,
    }
}

impl TestGateway {
    /// Stops the node as SIGTERM would.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A protocol client, connected as a new user; returns it with the user and connect result.
    pub async fn connected_client(&self, name: &str) -> (WsClient, UserId, Value) {
        let user = UserId::new();
        let mut client = WsClient::open(&self.ws_url("/connection/websocket")).await;
        let result = client.connect(&self.keys.token(&user, name, 600)).await;
        assert!(result.get("error").is_none(), "connect failed: {result}");
        (client, user, result["connect"].clone())
    }

    /// Waits until `check` holds on the gateway's stats.
    pub async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&herald_gateway::StatsSnapshot) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check(&self.gateway.stats()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.gateway.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The socket ended without a close frame.
    Dropped,
}

/// A WebSocket client speaking the JSON protocol; answers server pings (`{}`) by itself
/// unless told not to.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    inbox: VecDeque<Value>,
    /// Lines of a simple endpoint's frame not read yet (a frame may carry several).
    lines: VecDeque<String>,
    next_id: u32,
    pub answer_pings: bool,
    pub pings_seen: usize,
}

impl WsClient {
    pub async fn open(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self::from_stream(ws)
    }

    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            inbox: VecDeque::new(),
            lines: VecDeque::new(),
            next_id: 0,
            answer_pings: true,
            pings_seen: 0,
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// Sends `{"id":N,"<method>":body}` and returns the reply with that id (pushes that
    /// arrive meanwhile are kept for [`Self::next_push`]).
    pub async fn call(&mut self, method: &str, body: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_text(&json!({"id": id, method: body}).to_string())
            .await;
        self.reply(id).await
    }

    /// Waits for the reply with `id`.
    pub async fn reply(&mut self, id: u32) -> Value {
        loop {
            if let Some(at) = self.inbox.iter().position(|m| m["id"] == id) {
                return self.inbox.remove(at).unwrap();
            }
            self.read_messages().await;
        }
    }

    /// The next reply (a message with an id), in the order the server sent the replies.
    pub async fn next_reply(&mut self) -> Value {
        loop {
            if let Some(at) = self.inbox.iter().position(|m| m.get("id").is_some()) {
                return self.inbox.remove(at).unwrap();
            }
            self.read_messages().await;
        }
    }

    pub async fn connect(&mut self, token: &str) -> Value {
        self.call("connect", json!({"token": token, "name": "test"}))
            .await
    }

    /// The next push (a message without id).
    pub async fn next_push(&mut self) -> Value {
        loop {
            if let Some(at) = self.inbox.iter().position(|m| m.get("id").is_none()) {
                return self.inbox.remove(at).unwrap();
            }
            self.read_messages().await;
        }
    }

    /// The next publication push of `channel`.
    pub async fn next_publication(&mut self, channel: &str) -> Value {
        loop {
            let push = self.next_push().await;
            if push["push"]["channel"] == channel && push["push"].get("pub").is_some() {
                return push["push"]["pub"].clone();
            }
        }
    }

    /// Reads the next frame with protocol messages into the inbox, in the order they came
    /// (splitting batched frames), answering pings.
    async fn read_messages(&mut self) {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection ended")
                .expect("websocket error");
            let text = match frame {
                Message::Text(text) => text.to_string(),
                Message::Close(close) => panic!("connection closed: {close:?}"),
                _ => continue,
            };
            let mut messages: VecDeque<Value> = text
                .split('\n')
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let mut any = false;
            while let Some(message) = messages.pop_front() {
                if message.as_object().is_some_and(serde_json::Map::is_empty) {
                    self.pings_seen += 1;
                    if self.answer_pings {
                        self.send_text("{}").await;
                    }
                    continue;
                }
                self.inbox.push_back(message);
                any = true;
            }
            if any {
                return;
            }
        }
    }

    /// Reads until the connection ends and says how.
    pub async fn ending(&mut self) -> Ending {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for the end");
            match next {
                None | Some(Err(_)) => return Ending::Dropped,
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ending::Closed(u16::from(frame.code));
                }
                Some(Ok(Message::Close(None))) => {
                    return Ending::Closed(u16::from(CloseCode::Status));
                }
                Some(Ok(Message::Text(text))) => {
                    if text.split('\n').any(|l| l.trim() == "{}") && self.answer_pings {
                        let _ = self.ws.send(Message::text("{}")).await;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the connection ends and returns the close code (panics without one).
    pub async fn close_code(&mut self) -> u16 {
        match self.ending().await {
            Ending::Closed(code) => code,
            Ending::Dropped => panic!("connection dropped without a close frame"),
        }
    }

    /// The raw next text frame (simple endpoints).
    /// The next line of a simple endpoint, skipping the room's `* … joined` / `* … left`
    /// announcements (see [`Self::next_any_line`]).
    pub async fn next_line(&mut self) -> String {
        loop {
            let line = self.next_any_line().await;
            let announcement =
                line.starts_with("* ") && (line.ends_with(" joined") || line.ends_with(" left"));
            if !announcement {
                return line;
            }
        }
    }

    /// The next line of a simple endpoint, whatever it is.
    pub async fn next_any_line(&mut self) -> String {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return line;
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a line")
                .expect("connection ended")
                .expect("websocket error");
            match frame {
                // The gateway joins queued lines into one frame with `\n`.
                Message::Text(text) => self.lines.extend(text.split('\n').map(str::to_owned)),
                Message::Close(close) => panic!("connection closed: {close:?}"),
                _ => {}
            }
        }
    }

    /// Whether a text frame arrives within `wait`.
    pub async fn nothing_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(text)))) => panic!("unexpected message: {text}"),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("unexpected: {other:?}"),
            }
        }
    }
}

/// A publication written to a channel's history the way the Redis broker's publish script
/// writes it (its key layout), but whose pub/sub message has not been sent: for the gateway
/// it is in flight until [`HeldPublication::release`], or lost if never released.
pub struct HeldPublication {
    /// Its offset in the channel.
    pub offset: u64,
    pubsub: String,
    message: String,
}

/// Writes a publication with `{"text": text}` to `channel`'s history (prefix `prefix`)
/// without its pub/sub message.
pub async fn publish_held(prefix: &str, channel: &ChannelName, text: &str) -> HeldPublication {
    let client = redis::Client::open(test_redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let tag = format!("{prefix}{{{}}}", channel.as_str());
    let offset: u64 = redis::cmd("HINCRBY")
        .arg(format!("{tag}:meta"))
        .arg("o")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let epoch: String = redis::cmd("HGET")
        .arg(format!("{tag}:meta"))
        .arg("e")
        .query_async(&mut conn)
        .await
        .unwrap();
    let json = json!({"data": {"text": text}}).to_string();
    let _: String = redis::cmd("XADD")
        .arg(format!("{tag}:stream"))
        .arg(format!("{offset}-0"))
        .arg("d")
        .arg(&json)
        .query_async(&mut conn)
        .await
        .unwrap();
    HeldPublication {
        offset,
        message: format!("p{offset}:{epoch}:{json}"),
        pubsub: tag,
    }
}

/// Like [`publish_held`], never released: the publication is lost in transit. Returns its
/// offset.
pub async fn publish_lost(prefix: &str, channel: &ChannelName, text: &str) -> u64 {
    publish_held(prefix, channel, text).await.offset
}

impl HeldPublication {
    /// Sends the pub/sub message the publish script would have sent.
    pub async fn release(&self) {
        let client = redis::Client::open(test_redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(&self.pubsub)
            .arg(&self.message)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(receivers > 0, "no node subscribed to {}", self.pubsub);
    }
}

/// The error of a handshake that must fail (its text names the HTTP status).
pub async fn refused_handshake<R>(request: R) -> String
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => panic!("the handshake was accepted"),
        Err(err) => err.to_string(),
    }
}

/// Error code of a reply, if it is an error.
pub fn error_code(reply: &Value) -> Option<u64> {
    reply.get("error").and_then(|e| e["code"].as_u64())
}

/// Reads an HTTP response head (through the blank line) from a raw socket, byte by byte so
/// that nothing after it (the first WebSocket frames) is consumed.
pub async fn read_response_head(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed in the response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
