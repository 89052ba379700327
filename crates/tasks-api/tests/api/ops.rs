//! The per-process endpoints and the OpenAPI document.

use serde_json::{Value, json};

use crate::helpers::{Options, spawn_app, spawn_app_with, status_and_json};

#[tokio::test]
async fn health_and_readiness_answer_when_the_database_is_up() {
    let app = spawn_app().await;

    let (status, body) =
        status_and_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) =
        status_and_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"], json!({"database": "ok"}));
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_unreachable() {
    let app = spawn_app_with(Options {
        customize: Box::new(|settings| {
            settings.database_url = "postgres://postgres@127.0.0.1:1/nowhere".into();
            settings.auto_migrate = false;
        }),
        ..Options::default()
    })
    .await;

    let (status, body) =
        status_and_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;

    assert_eq!(status, 503);
    assert_eq!(body["status"], "unready");
    let (status, _) =
        status_and_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_count_requests_and_show_the_outbox_backlog() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    app.create_task(&alice, &json!({"title": "Counted"})).await;
    app.wait_for_events(1).await;

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(text.contains("herald_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/tasks\""), "{text}");
    assert!(
        text.contains("herald_http_request_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("herald_tasks_outbox_backlog"), "{text}");
    assert!(
        text.contains("herald_tasks_outbox_oldest_age_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;

    let (status, document) = status_and_json(
        app.client
            .get(app.url("/openapi/tasks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &document["paths"];
    for method in ["get", "post"] {
        assert!(paths["/tasks"][method].is_object(), "{method} /tasks");
    }
    for method in ["get", "patch", "delete"] {
        assert!(
            paths["/tasks/{id}"][method].is_object(),
            "{method} /tasks/{{id}}"
        );
    }
    assert!(document["components"]["schemas"]["Task"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;

    let (status, body): (u16, Value) = status_and_json(
        app.client
            .get(app.url("/nothing-here"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

/// The Postgres pool opens its connections at start, so no request waits for one to be
/// opened (a TLS connection takes tens of milliseconds to set up).
#[tokio::test]
async fn the_database_pool_opens_its_connections_at_start() {
    use sqlx::Connection as _;

    let app = spawn_app().await;
    let url = app.settings.database_url.expose().clone();
    let database = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(&herald_test_support::with_database(
        &herald_test_support::test_database_url(),
        "postgres",
    ))
    .await
    .unwrap();

    let wanted = i64::from(herald_service::db::POSTGRES_POOL_SIZE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut open = 0;
    while std::time::Instant::now() < deadline {
        open = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if open >= wanted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(open >= wanted, "{open} connections open, {wanted} wanted");
}
