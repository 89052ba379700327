//! permessage-deflate (RFC 7692) on real sockets, with a raw client that compresses and
//! inflates with flate2 itself: the negotiation's answers, compressed and plain subscribers
//! of one channel, one compression per publication, the minimum size, compressed commands
//! and fragments, and the decompressed-size limit (1009, no zip bombs).

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use herald_gateway::Settings;
use herald_gateway::transport::deflate::compressions;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestGateway, WAIT, read_response_head, spawn_gateway, spawn_gateway_with};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// What Chromium offers on every connection.
const CHROMIUM: &str = "permessage-deflate; client_max_window_bits";

/// The answer to an accepted offer without a window limit.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The request head of a WebSocket handshake to `path` with `extensions` offered (if any).
fn handshake(path: &str, extensions: Option<&str>) -> String {
    let offer = extensions
        .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
}

/// A masked client frame with the given first byte (FIN, RSV bits, opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x01, 0xc3, 0x7e];
    let mut out = vec![first];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Raw deflate of `data`, sync-flushed, without the `00 00 ff ff` tail (RFC 7692 7.2.1).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    compress
        .compress_vec(data, &mut out, FlushCompress::Sync)
        .unwrap();
    assert_eq!(compress.total_in() as usize, data.len());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Inflates a compressed message's payload (the tail appended again).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let before = decompress.total_in() as usize;
        decompress
            .decompress_vec(&input[before..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if decompress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// A compressed text frame (RSV1) of `text`.
fn compressed_text(text: &str) -> Vec<u8> {
    frame(0xC1, &deflate(text.as_bytes()))
}

#[derive(Debug)]
struct ServerFrame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl ServerFrame {
    /// The message's bytes, inflated when the frame is compressed.
    fn message(&self) -> Vec<u8> {
        if self.rsv1 {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        }
    }

    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 0x8, "expected a close frame, got {self:?}");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

struct Raw {
    stream: TcpStream,
    head: String,
}

impl Raw {
    /// Opens a connection to `path` offering `extensions` and reads the `101`.
    async fn open(gw: &TestGateway, path: &str, extensions: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        stream
            .write_all(handshake(path, extensions).as_bytes())
            .await
            .unwrap();
        let mut raw = Self {
            stream,
            head: String::new(),
        };
        raw.head = raw.read_head().await;
        assert!(raw.head.starts_with("HTTP/1.1 101"), "{}", raw.head);
        raw
    }

    async fn read_head(&mut self) -> String {
        read_response_head(&mut self.stream).await
    }

    /// The `Sec-WebSocket-Extensions` answer, if any.
    fn extensions(&self) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        })
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> ServerFrame {
        tokio::time::timeout(WAIT, async {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.unwrap();
            assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
            let len = match head[1] & 0x7F {
                126 => u64::from(self.stream.read_u16().await.unwrap()),
                127 => self.stream.read_u64().await.unwrap(),
                len => u64::from(len),
            };
            let mut payload = vec![0u8; usize::try_from(len).unwrap()];
            self.stream.read_exact(&mut payload).await.unwrap();
            ServerFrame {
                fin: head[0] & 0x80 != 0,
                rsv1: head[0] & 0x40 != 0,
                opcode: head[0] & 0x0F,
                payload,
            }
        })
        .await
        .expect("a frame in time")
    }

    /// The next protocol messages of a text frame (one per line).
    async fn messages(&mut self) -> (bool, Vec<Value>) {
        let frame = self.next().await;
        assert!(frame.fin && frame.opcode == 0x1, "{frame:?}");
        let text = String::from_utf8(frame.message()).unwrap();
        let values = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (frame.rsv1, values)
    }

    /// Sends a protocol command (compressed or not) and waits for its reply.
    async fn call(&mut self, command: Value, compressed: bool) -> Value {
        let text = command.to_string();
        let bytes = if compressed {
            compressed_text(&text)
        } else {
            frame(0x81, text.as_bytes())
        };
        self.send(&bytes).await;
        loop {
            let (_, messages) = self.messages().await;
            if let Some(reply) = messages.into_iter().find(|m| m["id"] == command["id"]) {
                return reply;
            }
        }
    }
}

/// A gateway with permessage-deflate switched on (it is off by default), then `tweak`.
async fn spawn_compressing(tweak: impl FnOnce(&mut Settings)) -> TestGateway {
    spawn_gateway_with(|s| {
        s.websocket.compression = true;
        tweak(s);
    })
    .await
}

fn connect_command(gw: &TestGateway) -> Value {
    let token = gw.keys.token(&UserId::new(), "raw", 600);
    json!({"id": 1, "connect": {"token": token, "name": "raw"}})
}

/// A protocol connection, connected and subscribed to `tasks`.
async fn subscriber(gw: &TestGateway, extensions: Option<&str>) -> Raw {
    let mut raw = Raw::open(gw, "/connection/websocket", extensions).await;
    let reply = raw.call(connect_command(gw), false).await;
    assert!(reply.get("connect").is_some(), "{reply}");
    let reply = raw
        .call(json!({"id": 2, "subscribe": {"channel": "tasks"}}), false)
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    raw
}

fn task_event(text: &str) -> PublishRequest {
    let data =
        RawValue::from_string(json!({"type": "task.updated", "text": text}).to_string()).unwrap();
    PublishRequest::new(data).with_history(HistoryPolicy::new(100, Duration::from_secs(60)))
}

#[tokio::test]
async fn offers_are_accepted_declined_or_ignored_as_configured() {
    let gw = spawn_compressing(|_| {}).await;
    for path in ["/connection/websocket", "/ws/echo"] {
        let chromium = Raw::open(&gw, path, Some(CHROMIUM)).await;
        assert_eq!(chromium.extensions().as_deref(), Some(ANSWER), "{path}");
        let plain = Raw::open(&gw, path, None).await;
        assert_eq!(plain.extensions(), None, "{path}");
    }
    let windowed = Raw::open(
        &gw,
        "/ws/echo",
        Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits"),
    )
    .await;
    assert_eq!(
        windowed.extensions().unwrap(),
        format!("{ANSWER}; server_max_window_bits=10")
    );
    // An offer with a parameter the server does not know is declined; the next one is taken.
    let unknown = Raw::open(&gw, "/ws/echo", Some("permessage-deflate; x_mystery=1")).await;
    assert_eq!(unknown.extensions(), None);
    let invalid = Raw::open(
        &gw,
        "/ws/echo",
        Some("permessage-deflate; server_max_window_bits=16, permessage-deflate"),
    )
    .await;
    assert_eq!(invalid.extensions().as_deref(), Some(ANSWER));

    // Off by default.
    let off = spawn_gateway().await;
    let refused = Raw::open(&off, "/ws/echo", Some(CHROMIUM)).await;
    assert_eq!(refused.extensions(), None);
    let token = off.keys.token(&UserId::new(), "raw", 600);
    let simple = Raw::open(
        &off,
        &format!("/ws/notifications/tasks?token={token}"),
        Some(CHROMIUM),
    )
    .await;
    assert_eq!(simple.extensions(), None);
    let token = gw.keys.token(&UserId::new(), "raw", 600);
    let simple = Raw::open(
        &gw,
        &format!("/ws/notifications/tasks?token={token}"),
        Some(CHROMIUM),
    )
    .await;
    assert_eq!(simple.extensions().as_deref(), Some(ANSWER));
}

#[tokio::test]
async fn a_publication_is_compressed_once_for_every_compressing_subscriber() {
    let gw = spawn_compressing(|_| {}).await;
    let mut first = subscriber(&gw, Some(CHROMIUM)).await;
    let mut second = subscriber(&gw, Some(CHROMIUM)).await;
    let mut plain = subscriber(&gw, None).await;
    let channel = ChannelName::parse("tasks").unwrap();
    let text = "the task board moved a card to done, with its whole description ".repeat(8);
    let before = compressions();
    gw.broker
        .publish(&channel, task_event(&text))
        .await
        .unwrap();
    let mut received = Vec::new();
    for (raw, compressed) in [(&mut first, true), (&mut second, true), (&mut plain, false)] {
        let (rsv1, messages) = raw.messages().await;
        assert_eq!(rsv1, compressed);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["push"]["pub"]["data"]["text"], text.as_str());
        received.push(messages[0].clone());
    }
    assert_eq!(
        received[0], received[2],
        "the same message, compressed or not"
    );
    assert_eq!(received[1], received[2]);
    assert_eq!(
        compressions() - before,
        1,
        "one compression for both compressing subscribers"
    );
}

#[tokio::test]
async fn messages_under_the_minimum_size_go_uncompressed() {
    let gw = spawn_compressing(|s| s.websocket.compression_min_size = 100).await;
    let mut raw = Raw::open(&gw, "/ws/echo", Some(CHROMIUM)).await;
    let short = "x".repeat(99);
    raw.send(&frame(0x81, short.as_bytes())).await;
    let back = raw.next().await;
    assert!(!back.rsv1, "{back:?}");
    assert_eq!(back.payload, short.as_bytes());
    let long = "x".repeat(100);
    raw.send(&frame(0x81, long.as_bytes())).await;
    let back = raw.next().await;
    assert!(back.rsv1 && back.payload.len() < 100, "{back:?}");
    assert_eq!(back.message(), long.as_bytes());
}

#[tokio::test]
async fn compressed_commands_and_fragmented_compressed_messages_are_inflated() {
    let gw = spawn_compressing(|_| {}).await;
    let mut client = Raw::open(&gw, "/connection/websocket", Some(CHROMIUM)).await;
    let reply = client.call(connect_command(&gw), true).await;
    assert!(reply.get("connect").is_some(), "{reply}");
    let reply = client
        .call(json!({"id": 2, "subscribe": {"channel": "tasks"}}), true)
        .await;
    assert!(reply.get("subscribe").is_some(), "{reply}");

    // On /ws/echo: RSV1 on the first frame only, the compressed payload cut in three.
    let mut echo = Raw::open(&gw, "/ws/echo", Some(CHROMIUM)).await;
    let text = "fragmented and compressed, ".repeat(30);
    let payload = deflate(text.as_bytes());
    let third = payload.len() / 3;
    let mut frames = frame(0x41, &payload[..third]);
    frames.extend(frame(0x00, &payload[third..2 * third]));
    frames.extend(frame(0x80, &payload[2 * third..]));
    echo.send(&frames).await;
    let back = echo.next().await;
    assert!(back.fin && back.rsv1 && back.opcode == 0x1, "{back:?}");
    assert_eq!(back.message(), text.as_bytes());
    // Binary, compressed.
    let bytes: Vec<u8> = (0..2000u32).map(|i| (i % 7) as u8).collect();
    echo.send(&frame(0xC2, &deflate(&bytes))).await;
    let back = echo.next().await;
    assert_eq!((back.opcode, back.message()), (0x2, bytes));
}

#[tokio::test]
async fn rsv1_where_it_does_not_belong_is_a_protocol_error() {
    let gw = spawn_compressing(|_| {}).await;
    // Not negotiated.
    let mut raw = Raw::open(&gw, "/ws/echo", None).await;
    raw.send(&compressed_text(&"y".repeat(200))).await;
    assert_eq!(raw.next().await.close_code(), 1002);
    // On a continuation frame.
    let mut raw = Raw::open(&gw, "/ws/echo", Some(CHROMIUM)).await;
    let mut frames = frame(0x01, b"plain start");
    frames.extend(frame(0xC0, &deflate(b" compressed end")));
    raw.send(&frames).await;
    assert_eq!(raw.next().await.close_code(), 1002);
    // On a ping.
    let mut raw = Raw::open(&gw, "/ws/echo", Some(CHROMIUM)).await;
    raw.send(&frame(0xC9, b"")).await;
    assert_eq!(raw.next().await.close_code(), 1002);
}

#[tokio::test]
async fn a_zip_bomb_is_refused_with_1009() {
    let gw = spawn_compressing(|s| s.limits.max_message_size = 64 * 1024).await;
    // 16 MiB of one byte: about 70 KiB compressed would exceed the limit itself, so use
    // 4 MiB (a few KiB compressed).
    let bomb = deflate(&vec![b'a'; 4 << 20]);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let mut echo = Raw::open(&gw, "/ws/echo", Some(CHROMIUM)).await;
    echo.send(&frame(0xC1, &bomb)).await;
    assert_eq!(echo.next().await.close_code(), 1009);

    let mut client = Raw::open(&gw, "/connection/websocket", Some(CHROMIUM)).await;
    let reply = client.call(connect_command(&gw), true).await;
    assert!(reply.get("connect").is_some(), "{reply}");
    client.send(&frame(0xC1, &bomb)).await;
    let close = loop {
        let frame = client.next().await;
        if frame.opcode == 0x8 {
            break frame;
        }
    };
    assert_eq!(close.close_code(), 1009);
}
