//! One trace from `POST /tasks` to the WebSocket frame (design section 7), and one from a
//! client's chat publish to every gateway that delivers it.
//!
//! The services are composed as the embedded mode composes them: tasks-api (SQLite), the
//! notifier and gateway nodes in this process over one in-memory broker, each behind its
//! real HTTP server. Spans go to the SDK's in-memory exporter, so the test sees what a
//! collector would receive. This is a test binary of its own: the exporting subscriber is
//! process-wide. Under `cargo test` both tests share it (and the process), so each reads
//! only the spans of its own trace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use herald_broker::Broker;
use herald_service::{Context, Secret};
use herald_test_support::{SqliteFile, TokenMinter};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Longest wait for anything the test expects.
const WAIT: Duration = Duration::from_secs(20);

/// A trace context the test's own "client" sends, as an instrumented caller would.
const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_created_task_is_one_trace_from_the_request_to_the_delivery() {
    let spans = herald_service::telemetry::init_for_tests_with_spans();
    let herald = Herald::start(1).await;
    let alice = herald.keys.user("alice", "herald", "herald");
    let mut subscriber = WsClient::connect(herald.gateways[0].port, &alice.token).await;
    subscriber.subscribe("tasks").await;

    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/tasks", herald.tasks_port))
        .bearer_auth(&alice.token)
        .header(
            "traceparent",
            format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"),
        )
        .json(&json!({"title": "Trace me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let frame = subscriber.next_publication("tasks").await;
    assert_eq!(frame["data"]["text"], "New task created: Trace me");

    let names = [
        "POST /tasks",
        "outbox.insert",
        "outbox.relay",
        "notifier.handle",
        "notifier.publish",
        "gateway.deliver",
    ];
    let trace_id = TraceId::from_hex(CLIENT_TRACE_ID).unwrap();
    // Only this request's trace: under `cargo test` the other test shares the exporter.
    let finished = in_trace(wait_for_spans(&spans, &names).await, trace_id);
    for name in names {
        let span = find(&finished, name);
        assert_eq!(span.span_context.trace_id(), trace_id, "trace of {name}");
    }
    let request = find(&finished, "POST /tasks");
    let insert = find(&finished, "outbox.insert");
    let relay = find(&finished, "outbox.relay");
    let handle = find(&finished, "notifier.handle");
    let publish = find(&finished, "notifier.publish");
    let deliver = find(&finished, "gateway.deliver");
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(CLIENT_SPAN_ID).unwrap()
    );
    assert_eq!(request.span_kind, SpanKind::Server);
    assert_parent(insert, request);
    assert_parent(relay, insert);
    assert_parent(handle, insert);
    assert_parent(publish, handle);
    assert_parent(deliver, publish);
    assert_eq!(attribute(deliver, "recipients"), Some("1".to_owned()));
    assert_eq!(
        attribute(publish, "messaging.destination.name"),
        Some("tasks".to_owned())
    );
    // What reaches the client names the same trace.
    let traceparent = frame["tags"]["traceparent"].as_str().unwrap();
    assert!(traceparent.contains(CLIENT_TRACE_ID), "{traceparent}");
    herald.stop();
}

#[tokio::test]
async fn a_chat_message_is_one_trace_from_the_publishing_gateway_to_every_delivering_one() {
    let spans = herald_service::telemetry::init_for_tests_with_spans();
    let herald = Herald::start(2).await;
    let alice = herald.keys.user("alice", "herald", "herald");
    let bob = herald.keys.user("bob", "herald", "herald");
    let mut publisher = WsClient::connect(herald.gateways[0].port, &alice.token).await;
    let mut listener = WsClient::connect(herald.gateways[1].port, &bob.token).await;
    publisher.subscribe("chat:lobby").await;
    listener.subscribe("chat:lobby").await;

    let reply = publisher
        .call(
            "publish",
            json!({"channel": "chat:lobby", "data": {"text": "hello"}}),
        )
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(
        listener.next_publication("chat:lobby").await["data"]["text"],
        "hello"
    );
    assert_eq!(
        publisher.next_publication("chat:lobby").await["data"]["text"],
        "hello"
    );

    // The chat message's own trace: under `cargo test` the other test's spans (the task's
    // trace, started by its client) share the exporter.
    let chat_trace = |spans: &[SpanData]| {
        let publishes = named(spans, "gateway.publish");
        let [publish] = publishes.as_slice() else {
            return None;
        };
        let trace = in_trace(spans.to_vec(), publish.span_context.trace_id());
        (named(&trace, "gateway.deliver").len() == 2).then_some(trace)
    };
    let finished = chat_trace(&wait_for(&spans, |spans| chat_trace(spans).is_some()).await)
        .expect("the awaited condition holds");
    let publish = find(&finished, "gateway.publish");
    assert_eq!(publish.parent_span_id, SpanId::INVALID, "a new root");
    assert_eq!(publish.span_kind, SpanKind::Producer);
    for deliver in named(&finished, "gateway.deliver") {
        assert_parent(deliver, publish);
        assert_eq!(attribute(deliver, "recipients"), Some("1".to_owned()));
    }
    herald.stop();
}

/// Asserts that `child` is a child of `parent` in the same trace.
fn assert_parent(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id(),
        "{} and {} are in one trace",
        child.name,
        parent.name
    );
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{} is a child of {}",
        child.name,
        parent.name
    );
}

/// The attribute `key` of `span`, as text.
fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Waits until a span of every name in `names` has finished; returns the finished spans.
async fn wait_for_spans(exporter: &InMemorySpanExporter, names: &[&str]) -> Vec<SpanData> {
    wait_for(exporter, |spans| {
        names.iter().all(|name| !named(spans, name).is_empty())
    })
    .await
}

/// Waits until the finished spans satisfy `done`; returns them.
async fn wait_for(
    exporter: &InMemorySpanExporter,
    done: impl Fn(&[SpanData]) -> bool,
) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        if done(&spans) {
            return spans;
        }
        if tokio::time::Instant::now() > deadline {
            let names: Vec<_> = spans.iter().map(|span| span.name.to_string()).collect();
            panic!("timed out waiting for spans; finished: {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The spans of one trace.
fn in_trace(spans: Vec<SpanData>, trace_id: TraceId) -> Vec<SpanData> {
    spans
        .into_iter()
        .filter(|span| span.span_context.trace_id() == trace_id)
        .collect()
}

/// The finished spans called `name`.
fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// The one finished span called `name`.
fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one span called {name}");
    found[0]
}

/// tasks-api, the notifier and `nodes` gateway nodes on one in-memory broker.
struct Herald {
    keys: TokenMinter,
    tasks_port: u16,
    gateways: Vec<GatewayNode>,
    shutdowns: Vec<CancellationToken>,
    _database: SqliteFile,
}

struct GatewayNode {
    port: u16,
}

impl Herald {
    async fn start(nodes: usize) -> Self {
        let broker = Broker::memory();
        let keys = TokenMinter::new();
        keys.publish(&broker).await;
        let database = SqliteFile::new();
        let mut shutdowns = Vec::new();

        let mut tasks_settings = herald_tasks_api::Settings {
            listen: "127.0.0.1:0".to_owned(),
            database_url: Secret::new(database.url()),
            auto_migrate: true,
            ..herald_tasks_api::Settings::default()
        };
        tasks_settings.outbox.poll_interval = Duration::from_millis(100);
        let tasks =
            herald_tasks_api::Application::build_with(tasks_settings, Context::new(broker.clone()))
                .await
                .expect("start tasks-api");
        let tasks_port = tasks.port();
        shutdowns.push(tasks.shutdown_token());
        tokio::spawn(tasks.run_until_stopped());

        let mut notifier_settings = herald_notifier::Settings {
            listen: "127.0.0.1:0".to_owned(),
            ..herald_notifier::Settings::default()
        };
        notifier_settings.notifier.block = Duration::from_millis(100);
        let notifier = herald_notifier::Application::build_with(
            notifier_settings,
            Context::new(broker.clone()),
        )
        .await
        .expect("start the notifier");
        shutdowns.push(notifier.shutdown_token());
        tokio::spawn(notifier.run_until_stopped());

        let mut gateways = Vec::new();
        for _ in 0..nodes {
            let settings = herald_gateway::Settings {
                listen: "127.0.0.1:0".to_owned(),
                workers: Some(1),
                web_dir: "/nonexistent".into(),
                ..herald_gateway::Settings::default()
            };
            let gateway =
                herald_gateway::Application::build_with(settings, Context::new(broker.clone()))
                    .await
                    .expect("start a gateway");
            gateways.push(GatewayNode {
                port: gateway.port(),
            });
            shutdowns.push(gateway.shutdown_token());
            tokio::spawn(gateway.run_until_stopped());
        }
        Self {
            keys,
            tasks_port,
            gateways,
            shutdowns,
            _database: database,
        }
    }

    fn stop(&self) {
        for shutdown in &self.shutdowns {
            shutdown.cancel();
        }
    }
}

/// A protocol client: connect, subscribe, publish, and read publication pushes.
struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    inbox: VecDeque<Value>,
    next_id: u32,
}

impl WsClient {
    async fn connect(port: u16, token: &str) -> Self {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/connection/websocket"))
                .await
                .unwrap();
        let mut client = Self {
            ws,
            inbox: VecDeque::new(),
            next_id: 0,
        };
        let reply = client.call("connect", json!({"token": token})).await;
        assert!(reply.get("error").is_none(), "connect: {reply}");
        client
    }

    async fn subscribe(&mut self, channel: &str) {
        let reply = self.call("subscribe", json!({"channel": channel})).await;
        assert!(reply.get("error").is_none(), "subscribe {channel}: {reply}");
    }

    /// Sends `{"id":N,"<method>":body}` and returns the reply with that id.
    async fn call(&mut self, method: &str, body: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, method: body}).to_string();
        self.ws.send(Message::text(command)).await.unwrap();
        self.take(|message| message["id"] == id).await
    }

    /// The next publication pushed in `channel`.
    async fn next_publication(&mut self, channel: &str) -> Value {
        self.take(|message| {
            message["push"]["channel"] == channel && message["push"].get("pub").is_some()
        })
        .await["push"]["pub"]
            .clone()
    }

    /// The first message (received or arriving) that `wanted` accepts.
    async fn take(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(at) = self.inbox.iter().position(&wanted) {
                return self.inbox.remove(at).unwrap();
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection ended")
                .expect("websocket error");
            match frame {
                // A frame may hold several messages, one per line; `{}` is a ping.
                Message::Text(text) => {
                    for line in text.lines().filter(|line| !line.trim().is_empty()) {
                        let message: Value = serde_json::from_str(line).unwrap();
                        if message == json!({}) {
                            self.ws.send(Message::text("{}")).await.unwrap();
                        } else {
                            self.inbox.push_back(message);
                        }
                    }
                }
                Message::Close(close) => panic!("connection closed: {close:?}"),
                _ => {}
            }
        }
    }
}
