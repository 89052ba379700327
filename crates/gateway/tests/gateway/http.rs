//! The per-process endpoints and the documentation page.

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
