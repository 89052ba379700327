//! The WebSocket layer on the bare socket (`herald_gateway::transport::ws`), driven byte by byte with a
//! raw TCP client: pipelined frames after the handshake, fragmented messages, pings, invalid
//! frames, upgrade requests the application refuses, and server frames that are never masked
//! nor fragmented.

use std::time::Duration;

use herald_common::ids::UserId;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestGateway, WAIT, read_response_head, spawn_gateway, spawn_gateway_with};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The request head of a WebSocket handshake to `path`.
fn handshake(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A masked client frame (`fin`, `opcode`, payload).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
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

fn text(payload: &str) -> Vec<u8> {
    frame(true, 0x1, payload.as_bytes())
}

/// A frame from the server.
#[derive(Debug)]
struct ServerFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl ServerFrame {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap()
    }

    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 0x8, "expected a close frame, got {self:?}");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

struct Raw {
    stream: TcpStream,
}

impl Raw {
    /// Opens a TCP connection and writes `bytes` (a handshake, maybe with frames after it).
    async fn open(gw: &TestGateway, bytes: &[u8]) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        Self { stream }
    }

    /// A connection upgraded on the client protocol endpoint (the `101` read).
    async fn upgraded(gw: &TestGateway) -> Self {
        let mut raw = Self::open(gw, handshake("/connection/websocket").as_bytes()).await;
        assert!(raw.head().await.starts_with("HTTP/1.1 101"));
        raw
    }

    /// Reads the response head.
    async fn head(&mut self) -> String {
        read_response_head(&mut self.stream).await
    }

    /// Everything until the server closes the connection.
    async fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection")
            .unwrap();
        rest
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> ServerFrame {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("a frame in time")
    }

    async fn read_frame(&mut self) -> ServerFrame {
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
            opcode: head[0] & 0x0F,
            payload,
        }
    }

    /// The next protocol message (frames may carry several, one per line).
    async fn reply(&mut self) -> Value {
        let frame = self.next().await;
        assert!(
            frame.fin && frame.opcode == 0x1,
            "a final text frame: {frame:?}"
        );
        serde_json::from_str(frame.text().lines().next().unwrap()).unwrap()
    }
}

fn connect_command(gw: &TestGateway) -> String {
    let token = gw.keys.token(&UserId::new(), "raw", 600);
    json!({"id": 1, "connect": {"token": token, "name": "raw"}}).to_string()
}

#[tokio::test]
async fn frames_sent_together_with_the_handshake_are_not_lost() {
    let gw = spawn_gateway().await;
    let mut bytes = handshake("/connection/websocket").into_bytes();
    bytes.extend(text(&connect_command(&gw)));
    bytes.extend(text(&json!({"id": 2, "ping": {}}).to_string()));
    let mut raw = Raw::open(&gw, &bytes).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let frame = raw.next().await;
        for line in frame.text().lines() {
            let message: Value = serde_json::from_str(line).unwrap();
            ids.push(message["id"].as_u64().unwrap());
        }
    }
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn a_fragmented_message_is_joined_and_a_ping_between_fragments_is_answered() {
    let gw = spawn_gateway().await;
    let mut raw = Raw::upgraded(&gw).await;
    let command = connect_command(&gw);
    let (first, rest) = command.split_at(10);
    let (middle, last) = rest.split_at(rest.len() / 2);
    raw.send(&frame(false, 0x1, first.as_bytes())).await;
    raw.send(&frame(false, 0x0, middle.as_bytes())).await;
    raw.send(&frame(true, 0x9, b"are you there")).await;
    let pong = raw.next().await;
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (0xA, &b"are you there"[..])
    );
    raw.send(&frame(true, 0x0, last.as_bytes())).await;
    let reply = raw.reply().await;
    assert_eq!(reply["id"], 1);
    assert!(reply["connect"]["client"].is_string(), "{reply}");
}

#[tokio::test]
async fn fragments_adding_up_to_more_than_64_kib_close_with_1009() {
    let gw = spawn_gateway().await;
    let mut raw = Raw::upgraded(&gw).await;
    let chunk = vec![b' '; 40 * 1024];
    raw.send(&frame(false, 0x1, &chunk)).await;
    raw.send(&frame(true, 0x0, &chunk)).await;
    assert_eq!(raw.next().await.close_code(), 1009);
}

#[tokio::test]
async fn invalid_utf8_and_unmasked_frames_close_with_3501() {
    let gw = spawn_gateway().await;
    let mut raw = Raw::upgraded(&gw).await;
    raw.send(&frame(true, 0x1, &[0xC3, 0x28])).await;
    assert_eq!(raw.next().await.close_code(), 3501);

    let mut raw = Raw::upgraded(&gw).await;
    raw.send(&[0x81, 0x02, b'{', b'}']).await;
    assert_eq!(raw.next().await.close_code(), 3501);
}

#[tokio::test]
async fn batched_replies_and_a_60_kib_publication_arrive_in_final_unmasked_frames() {
    let gw = spawn_gateway().await;
    let mut raw = Raw::upgraded(&gw).await;
    raw.send(&text(&connect_command(&gw))).await;
    raw.reply().await;
    // One frame with many commands: their replies are queued together and written as
    // newline-joined frames.
    let big = "y".repeat(60 * 1024);
    let mut frame_text = String::new();
    for id in 2..=3 {
        frame_text.push_str(
            &json!({"id": id, "subscribe": {"channel": format!("chat:r{id}")}}).to_string(),
        );
        frame_text.push('\n');
    }
    frame_text.push_str(&json!({"id": 4, "ping": {}}).to_string());
    raw.send(&text(&frame_text)).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let frame = raw.next().await;
        assert!(frame.fin && frame.opcode == 0x1);
        for line in frame.text().lines() {
            let message: Value = serde_json::from_str(line).unwrap();
            seen.push(message["id"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, [2, 3, 4]);
    // A publication of about 60 KiB arrives whole.
    let publish = json!({"id": 5, "publish": {"channel": "chat:r2", "data": {"text": big}}});
    raw.send(&text(&publish.to_string())).await;
    let mut got_push = false;
    while !got_push {
        let frame = raw.next().await;
        assert!(frame.fin && frame.opcode == 0x1);
        for line in frame.text().lines() {
            let message: Value = serde_json::from_str(line).unwrap();
            if message["push"]["pub"]["data"]["text"]
                .as_str()
                .map(str::len)
                == Some(60 * 1024)
            {
                got_push = true;
            }
        }
    }
}

#[tokio::test]
async fn an_upgrade_request_the_application_refuses_gets_its_http_answer_and_a_close() {
    let gw = spawn_gateway().await;
    // A route that is not a WebSocket.
    let mut raw = Raw::open(&gw, handshake("/healthz").as_bytes()).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let body = raw.rest().await;
    assert!(!body.is_empty(), "the body is written");
    // A simple endpoint without a token: the JSON error body, then the connection closes.
    let mut raw = Raw::open(&gw, handshake("/ws/chat/lobby").as_bytes()).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let body: Value = serde_json::from_slice(&raw.rest().await).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // A malformed handshake (no key) is a 400.
    let bad = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
               Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut raw = Raw::open(&gw, bad.as_bytes()).await;
    assert!(raw.head().await.starts_with("HTTP/1.1 400"));
    tokio::time::timeout(Duration::from_secs(5), raw.rest())
        .await
        .unwrap();
}

/// A connection upgraded on `/ws/echo` (the `101` read).
async fn echo_upgraded(gw: &TestGateway) -> Raw {
    let mut raw = Raw::open(gw, handshake("/ws/echo").as_bytes()).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    raw
}

#[tokio::test]
async fn echo_returns_text_and_binary_messages_unchanged_and_answers_pings() {
    let gw = spawn_gateway().await;
    let mut raw = echo_upgraded(&gw).await;
    raw.send(&text("héllo")).await;
    let back = raw.next().await;
    assert_eq!((back.fin, back.opcode, back.text()), (true, 0x1, "héllo"));
    // Binary, in three fragments with a ping between them: one whole binary message back.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let mut frames = frame(false, 0x2, &bytes[..100]);
    frames.extend(frame(true, 0x9, b"ping!"));
    frames.extend(frame(false, 0x0, &bytes[100..200]));
    frames.extend(frame(true, 0x0, &bytes[200..]));
    raw.send(&frames).await;
    let pong = raw.next().await;
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"ping!"[..]));
    let back = raw.next().await;
    assert_eq!((back.fin, back.opcode), (true, 0x2));
    assert_eq!(back.payload, bytes);
    // The client's close is answered with its code.
    raw.send(&frame(true, 0x8, &4321u16.to_be_bytes())).await;
    assert_eq!(raw.next().await.close_code(), 4321);
}

#[tokio::test]
async fn echo_closes_with_rfc_codes_on_bad_input() {
    let gw = spawn_gateway_with(|s| s.limits.max_message_size = 1000).await;
    // Invalid UTF-8 text: 1007.
    let mut raw = echo_upgraded(&gw).await;
    raw.send(&frame(true, 0x1, &[0x66, 0xFF, 0x66])).await;
    assert_eq!(raw.next().await.close_code(), 1007);
    // A close code no peer may send: 1002.
    let mut raw = echo_upgraded(&gw).await;
    raw.send(&frame(true, 0x8, &1005u16.to_be_bytes())).await;
    assert_eq!(raw.next().await.close_code(), 1002);
    // Over the message size limit, even in fragments: 1009.
    let mut raw = echo_upgraded(&gw).await;
    let mut frames = frame(false, 0x2, &[0u8; 600]);
    frames.extend(frame(true, 0x0, &[0u8; 600]));
    raw.send(&frames).await;
    assert_eq!(raw.next().await.close_code(), 1009);
}

#[tokio::test]
async fn echo_can_be_switched_off() {
    let gw = spawn_gateway_with(|s| s.websocket.echo = false).await;
    let mut raw = Raw::open(&gw, handshake("/ws/echo").as_bytes()).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[tokio::test]
async fn echo_obeys_the_node_connection_limit() {
    let gw = spawn_gateway_with(|s| s.limits.max_connections = 1).await;
    let _first = echo_upgraded(&gw).await;
    let mut raw = Raw::open(&gw, handshake("/ws/echo").as_bytes()).await;
    let head = raw.head().await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
}
