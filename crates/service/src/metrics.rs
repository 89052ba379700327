//! Prometheus metrics (design section 7).
//!
//! Code records with the `metrics` macros (`metrics::counter!("herald_...").increment(1)`)
//! anywhere; [`install`] puts the Prometheus recorder in place once per process (later calls,
//! e.g. from the second service of the embedded binary or from the next test, get the same
//! handle), and `/metrics` renders it ([`render`]). [`http_metrics`] is a middleware that counts
//! requests and measures their latency per route pattern.

use std::{sync::OnceLock, time::Instant};

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::CONTENT_TYPE,
    middleware::Next,
    web,
};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for `*_duration_seconds` histograms: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// Fails only if some other `metrics` recorder was installed first.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    // Two racing first calls: the loser's install fails, but the winner stores its handle.
    let result = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .install_recorder();
    match result {
        Ok(handle) => Ok(HANDLE.get_or_init(|| handle).clone()),
        Err(err) => HANDLE.get().cloned().ok_or(err),
    }
}

/// `GET /metrics`: the Prometheus text exposition of everything recorded in this process.
/// Needs the [`PrometheusHandle`] as `web::Data`.
pub async fn render(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(handle.render())
}

/// Middleware (`App::wrap(actix_web::middleware::from_fn(http_metrics))`) recording
/// `herald_http_requests_total{method,route,status}` and
/// `herald_http_request_duration_seconds{method,route}`. The route is the matched pattern
/// (`/tasks/{id}`), never the raw path, so label cardinality stays bounded.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    metrics::counter!(
        "herald_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("herald_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    result
}
