//! The `herald` binary carries its web client: started from any working directory, it serves
//! `/` without `HERALD_WEB_DIR` pointing at the checkout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for the process to start.
const WAIT: Duration = Duration::from_secs(30);

/// `web/dist` of this checkout, the folder the binary embeds.
fn built_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist")
}

/// Starts `herald` on a free port in `dir` (its working directory, holding its SQLite file);
/// returns the process and its URL.
async fn start_in(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .current_dir(dir)
        .env_remove("HERALD_WEB_DIR")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Herald is running at ") {
                return rest.trim().to_owned();
            }
        }
        panic!("herald exited before it printed its address");
    })
    .await
    .expect("herald started in time");
    // Keep reading: a closed pipe would fail the process's next write to stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn herald_started_outside_the_checkout_serves_its_web_client() {
    let dir = std::env::temp_dir().join(format!("herald-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, url) = start_in(&dir).await;

    let response = reqwest::get(format!("{url}/")).await.unwrap();
    let status = response.status();
    let etag = response.headers().get("etag").cloned();
    let body = response.text().await.unwrap();
    match std::fs::read_to_string(built_client().join("index.html")) {
        Ok(index) => {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, index);
            let again = reqwest::Client::new()
                .get(format!("{url}/"))
                .header("if-none-match", etag.expect("an ETag"))
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 304, "revalidated by its ETag");
        }
        // A checkout whose client was never built (`make web`): nothing to embed, and `/`
        // says so with a 404 rather than a page from somewhere else.
        Err(_) => assert_eq!(status, 404),
    }

    child.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn herald_serves_every_services_routes_and_one_readyz_with_a_check_per_service() {
    let dir = std::env::temp_dir().join(format!("herald-composed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, url) = start_in(&dir).await;
    let status = |path: &'static str| {
        let url = format!("{url}{path}");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };

    // auth, tasks-api and the gateway each answer their own paths on the one port.
    assert_eq!(status("/auth/jwks.json").await, 200);
    assert_eq!(status("/openapi/auth.json").await, 200);
    assert_eq!(status("/openapi/tasks.json").await, 200);
    assert_eq!(status("/tasks").await, 401, "tasks-api asks for a token");
    assert_eq!(status("/docs/").await, 200);
    assert_eq!(
        status("/connection/websocket").await,
        400,
        "the gateway refuses a GET that is no WebSocket handshake"
    );

    let readyz = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 200);
    let report: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(
        report["checks"],
        serde_json::json!({"auth": "ok", "tasks_api": "ok", "notifier": "ok", "gateway": "ok"}),
        "{report}"
    );

    child.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
