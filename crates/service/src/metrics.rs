//! Prometheus metrics (design section 7).
//!
//! Code records with the `metrics` macros (`metrics::counter!("herald_...").increment(1)`)
//! anywhere; [`install`] puts the Prometheus recorder in place exactly once per process (every
//! call, concurrent ones included, e.g. from the other services of the embedded binary or from
//! other tests, gets the same handle), and `/metrics` renders it ([`render`]). [`http_metrics`] is a middleware that counts
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
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for `*_duration_seconds` histograms: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The outcome of the one installation of this process, shared by every caller.
static INSTALLED: OnceLock<Result<PrometheusHandle, InstallError>> = OnceLock::new();

/// The Prometheus recorder could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The recorder's configuration was refused (e.g. empty latency buckets).
    #[error("building the Prometheus recorder failed: {0}")]
    Build(String),
    /// Some other `metrics` recorder was installed first, by code other than [`install`].
    #[error("another metrics recorder is installed in this process")]
    OtherRecorder,
}

/// Installs the process-wide Prometheus recorder and returns its handle.
///
/// The recorder is built and installed exactly once per process: every call, including calls
/// racing from several threads (the services of the embedded binary, or tests running as
/// threads of one process under `cargo test`), waits for that one installation and gets a
/// clone of the same handle, which sees every metric recorded in the process. If the
/// installation failed, every call gets the same error.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    INSTALLED.get_or_init(install_once).clone()
}

/// Builds the recorder and makes it the global one; run once, under [`INSTALLED`]'s lock.
fn install_once() -> Result<PrometheusHandle, InstallError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
            LATENCY_BUCKETS,
        )
        .map_err(|err| InstallError::Build(err.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::OtherRecorder)?;
    Ok(handle)
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
