//! Per-process endpoints and documents: `/healthz`, `/readyz`, `/metrics`,
//! `/openapi/auth.json`, unknown routes.

use crate::helpers::{spawn_app, spawn_app_with, status_and_json};

#[tokio::test]
async fn healthz_is_200() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn readyz_is_200_when_the_database_answers() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    let app = spawn_app_with(|s| {
        s.database_url = "postgres://postgres@127.0.0.1:1/nothing".to_owned().into();
        s.auto_migrate = false;
    })
    .await;

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let healthz = app.client.get(app.url("/healthz")).send().await.unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unready");
    assert_ne!(body["checks"]["database"], "ok");
    assert_eq!(healthz.status(), 200);
}

#[tokio::test]
async fn a_database_outage_is_a_json_error_not_a_hang() {
    let app = spawn_app_with(|s| {
        s.database_url = "postgres://postgres@127.0.0.1:1/nothing".to_owned().into();
        s.auto_migrate = false;
    })
    .await;

    let response = app
        .post_register(&serde_json::json!({"username": "alice", "password": "correct horse"}))
        .await;

    let (status, body) = status_and_json(response).await;
    assert!(status == 500 || status == 503, "{status}");
    assert_eq!(body["error"]["code"], "internal");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_text() {
    let app = spawn_app().await;
    app.register().await;

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("herald_http_requests_total"), "{text}");
    assert!(text.contains(r#"route="/auth/register""#), "{text}");
    assert!(text.contains("herald_auth_registrations_total"), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_auth_route() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/openapi/auth.json"))
        .send()
        .await
        .unwrap();

    let (status, doc) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/auth/register", "post"),
        ("/auth/token", "post"),
        ("/auth/refresh", "post"),
        ("/auth/logout", "post"),
        ("/auth/me", "get"),
        ("/auth/users", "get"),
        ("/auth/jwks.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let token_body = &paths["/auth/token"]["post"]["requestBody"]["content"];
    assert!(
        token_body
            .get("application/x-www-form-urlencoded")
            .is_some()
    );
    assert!(token_body.get("application/json").is_some());
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/auth/nothing-here"))
        .send()
        .await
        .unwrap();
    let outside = app.client.get(app.url("/nothing")).send().await.unwrap();

    for response in [response, outside] {
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
    }
}
