//! The per-process endpoints and the documentation page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::spawn_gateway;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let gw = spawn_gateway().await;
    let (_client, _, _) = gw.connected_client("alice").await;
    let http = reqwest::Client::new();
    let health = http.get(gw.http_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(gw.http_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("redis"));
    let metrics = http
        .get(gw.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("herald_gateway_connections"), "{metrics}");
    assert!(
        metrics.contains("herald_gateway_subscriptions"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_docs_page_is_served_offline_and_points_at_both_documents() {
    let gw = spawn_gateway().await;
    let http = reqwest::Client::new();
    let page = http.get(gw.http_url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
    let init = http
        .get(gw.http_url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        init.contains("/openapi/auth.json") && init.contains("/openapi/tasks.json"),
        "{init}"
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = redirect.get(gw.http_url("/docs")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
}

#[tokio::test]
async fn the_web_client_folder_is_served_at_the_root() {
    let folder =
        std::env::temp_dir().join(format!("herald-web-{}", herald_common::ids::UserId::new()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("index.html"),
        "<!doctype html><title>Herald</title>",
    )
    .unwrap();
    std::fs::write(folder.join("app.js"), "console.log('herald')").unwrap();
    let web_dir = folder.clone();
    let gw = crate::support::spawn_gateway_with(move |s| s.web_dir = web_dir).await;
    let http = reqwest::Client::new();
    let index = http.get(gw.http_url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(
        index
            .text()
            .await
            .unwrap()
            .contains("<title>Herald</title>")
    );
    let script = http.get(gw.http_url("/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    // The WebSocket routes still win over the catch-all folder.
    let (_client, _, _) = gw.connected_client("alice").await;
    std::fs::remove_dir_all(folder).unwrap();
}

#[tokio::test]
async fn a_stop_closes_idle_keep_alive_connections_and_open_websockets_with_3001() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let gw = spawn_gateway().await;
    let (mut ws, _, _) = gw.connected_client("alice").await;
    let mut http = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = http.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    // The HTTP connection is now idle under keep-alive (5 s).
    gw.stop();
    assert_eq!(ws.close_code().await, 3001);
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        let mut rest = Vec::new();
        http.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await;
    assert!(
        matches!(closed, Ok(Ok(ref rest)) if rest.is_empty()),
        "the idle keep-alive connection is closed at once, not after its keep-alive: {closed:?}"
    );
}
