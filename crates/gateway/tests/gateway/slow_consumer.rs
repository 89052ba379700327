//! A client that never reads is closed with 3008 and the gateway's memory stays bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use herald_broker::{HistoryPolicy, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::ids::UserId;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;

use crate::support::{Ending, WsClient, spawn_gateway_with};

const QUEUE_LIMIT: usize = 256 * 1024;
const BATCH: usize = 4;

#[tokio::test]
async fn a_client_that_never_reads_is_closed_with_3008_and_its_queue_stays_bounded() {
    let gw = spawn_gateway_with(|s| {
        s.limits.send_queue_size = QUEUE_LIMIT;
        s.channels.chat.history_size = 5;
    })
    .await;
    // A socket with a tiny receive buffer, so the kernel cannot absorb the flood for us.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        gw.ws_url("/connection/websocket"),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut sleeper = WsClient::from_stream(ws);
    let user = UserId::new();
    sleeper.connect(&gw.keys.token(&user, "sleeper", 600)).await;
    let reply = sleeper
        .call("subscribe", json!({"channel": "chat:firehose"}))
        .await;
    assert!(reply.get("error").is_none());
    // An attentive subscriber in the same room keeps up the whole time.
    let (mut reader, _, _) = gw.connected_client("reader").await;
    reader
        .call("subscribe", json!({"channel": "chat:firehose"}))
        .await;

    // From here on the sleeper reads nothing. Publish far more than every buffer on the way.
    let channel = ChannelName::chat("firehose").unwrap();
    let body = json!({ "text": "z".repeat(16 * 1024) }).to_string();
    let history = HistoryPolicy::new(5, Duration::from_secs(60));
    let mut published = 0u64;
    while gw.gateway.stats().slow_closes == 0 {
        assert!(
            published < 8000,
            "no slow close after {published} publications: {:?}",
            gw.gateway.stats()
        );
        // Small batches, read in full: the attentive reader never has much queued.
        for _ in 0..BATCH {
            let request = PublishRequest::new(RawValue::from_string(body.clone()).unwrap())
                .with_history(history);
            gw.broker.publish(&channel, request).await.unwrap();
            published += 1;
        }
        for _ in 0..BATCH {
            let publication = reader.next_publication("chat:firehose").await;
            assert_eq!(
                publication["data"]["text"].as_str().unwrap().len(),
                16 * 1024
            );
        }
    }
    let stats = gw.gateway.stats();
    assert_eq!(stats.slow_closes, 1);
    assert!(
        stats.peak_outbox_bytes > QUEUE_LIMIT / 2 && stats.peak_outbox_bytes <= QUEUE_LIMIT,
        "one connection's queue must stay under its limit: {stats:?}"
    );
    // Once the sleeper reads again, what was in flight drains and the close frame follows.
    match sleeper.ending().await {
        Ending::Closed(code) => assert_eq!(code, 3008),
        Ending::Dropped => panic!("expected a close frame with 3008"),
    }
    gw.wait_for("the sleeper's connection released", |s| s.connections == 1)
        .await;
    // The attentive subscriber was never affected.
    reader.call("ping", json!({})).await;
}
