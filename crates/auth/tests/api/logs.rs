//! The `herald-auth` binary: configuration from `HERALD_*`, port 0 printed at start, JSON
//! logs that never contain passwords or tokens.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{KeyFile, TestDatabase, eventually, test_redis_url};

#[tokio::test]
async fn the_binary_logs_json_without_passwords_or_tokens() {
    let database = TestDatabase::create().await;
    let key_file = KeyFile::new();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-auth"))
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATABASE_URL", &database.url)
        .env("HERALD_REDIS_URL", test_redis_url())
        .env(
            "HERALD_REDIS_PREFIX",
            format!("herald-test-{}:", uuid::Uuid::new_v4().simple()),
        )
        .env("HERALD_JWT_PRIVATE_KEY_FILE", &key_file.path)
        .env("HERALD_AUTO_MIGRATE", "true")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let port = eventually(Duration::from_secs(20), || async {
        lines.lock().unwrap().iter().find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            (value["message"] == "herald-auth listening").then(|| value["port"].as_u64())?
        })
    })
    .await
    .expect("the service prints its port");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let password = "Sup3r-Secret-Passw0rd";

    let registered = client
        .post(format!("{base}/auth/register"))
        .json(&json!({"username": "logcheck", "password": password}))
        .send()
        .await
        .unwrap();
    let wrong = client
        .post(format!("{base}/auth/token"))
        .form(&[
            ("username", "logcheck"),
            ("password", "Wr0ng-Passw0rd-Here"),
        ])
        .send()
        .await
        .unwrap();
    let tokens: Value = client
        .post(format!("{base}/auth/token"))
        .form(&[("username", "logcheck"), ("password", password)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed: Value = client
        .post(format!("{base}/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay = client
        .post(format!("{base}/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    let logout = client
        .post(format!("{base}/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();

    let statuses = [
        registered.status(),
        wrong.status(),
        replay.status(),
        logout.status(),
    ]
    .map(|s| s.as_u16());
    assert_eq!(statuses, [201, 401, 401, 204]);
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("signed in")),
        "expected the sign-in to be logged"
    );
    let secrets = [
        password.to_owned(),
        "Wr0ng-Passw0rd-Here".to_owned(),
        access.clone(),
        access.split('.').nth(2).unwrap().to_owned(),
        refresh.clone(),
        refreshed["refresh_token"].as_str().unwrap().to_owned(),
        refreshed["access_token"].as_str().unwrap().to_owned(),
        database.url.clone(),
    ];
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "secret in log line: {line}"
            );
        }
    }
}

#[tokio::test]
async fn the_binary_documents_itself_and_migrates() {
    let database = TestDatabase::create().await;

    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-auth"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let migrate = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-auth"))
        .arg("migrate")
        .env("HERALD_DATABASE_URL", &database.url)
        .output()
        .await
        .unwrap();
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-auth"))
        .arg("migrate")
        .env("HERALD_DATABASE_URL", &database.url)
        .output()
        .await
        .unwrap();

    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("migrate") && help.contains("HERALD_JWT_PRIVATE_KEY_FILE"),
        "{help}"
    );
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stdout)
    );
    assert!(again.status.success(), "migrations are idempotent");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url)
        .await
        .unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let tables: Vec<String> = tables.into_iter().map(|(t,)| t).collect();
    assert_eq!(
        tables,
        ["_herald_auth_migrations", "refresh_tokens", "users"]
    );
}
