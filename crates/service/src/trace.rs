//! The W3C trace context between processes (design section 7): how a span takes its parent
//! from a `traceparent` (an HTTP header, a domain event's `trace`, a publication's tags) and
//! how a span's own context is written back into one, so that one trace runs from the REST
//! call through the outbox, the events stream, the notifier and Redis to every gateway that
//! delivers the publication.
//!
//! Everything here is a no-op unless [`crate::telemetry::init`] turned trace export on:
//! [`enabled`] is one relaxed atomic load, cheap enough for the fan-out path to check before
//! it builds a span at all.
//!
//! [`http_trace`] is the server span of every request (`POST /tasks`, ...), its parent taken
//! from the request's `traceparent` header. Herald reads the header itself rather than through
//! an actix tracing middleware, whose OpenTelemetry support lags the version used here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use herald_common::events::TraceContext;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Whether spans are exported; set once by the telemetry initialisation.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Per-process endpoints: probes and scrapes would drown the traces that matter.
const UNTRACED_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Whether spans are exported. Hot paths check it before building a span.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns [`enabled`] on (telemetry initialisation only).
pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The two W3C fields, as the propagator reads and writes them.
#[derive(Default)]
struct Carrier<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
    written: TraceContext,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TraceContext::TRACEPARENT => self.traceparent,
            TraceContext::TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TraceContext::TRACEPARENT, TraceContext::TRACESTATE]
    }
}

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TraceContext::TRACEPARENT => self.written.traceparent = Some(value),
            TraceContext::TRACESTATE if !value.is_empty() => self.written.tracestate = Some(value),
            _ => {}
        }
    }
}

/// Makes the remote context `traceparent` (with `tracestate`) the parent of `span`. Nothing
/// happens when export is off, the value is not a valid `traceparent`, or `span` already
/// started (a span's parent is set before its first use).
pub fn set_parent_from(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !enabled() || traceparent.is_none() {
        return;
    }
    let carrier = Carrier {
        traceparent,
        tracestate,
        ..Carrier::default()
    };
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only for a disabled span or one already started: it then keeps its parent.
        let _kept = span.set_parent(parent);
    }
}

/// [`set_parent_from`] a domain event's trace context.
pub fn set_parent(span: &Span, trace: &TraceContext) {
    set_parent_from(
        span,
        trace.traceparent.as_deref(),
        trace.tracestate.as_deref(),
    );
}

/// [`set_parent_from`] a publication's tags (`traceparent`, `tracestate`).
pub fn set_parent_from_tags(span: &Span, tags: &BTreeMap<String, String>) {
    set_parent_from(
        span,
        tags.get(TraceContext::TRACEPARENT).map(String::as_str),
        tags.get(TraceContext::TRACESTATE).map(String::as_str),
    );
}

/// The W3C context of `span`, to carry in an event or a publication: `None` when export is
/// off or the span is not exported.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier
        .written
        .traceparent
        .is_some()
        .then_some(carrier.written)
}

/// Middleware (`App::wrap(actix_web::middleware::from_fn(http_trace))`): the server span of
/// each request, named `<METHOD> <route>` (`POST /tasks`; the matched pattern, never the raw
/// path), child of the request's `traceparent` when it sent one. Without trace export, and
/// for the per-process endpoints, requests pass straight through.
pub async fn http_trace(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if !enabled() {
        return next.call(req).await;
    }
    let route = req.match_pattern();
    if route
        .as_deref()
        .is_some_and(|route| UNTRACED_ROUTES.contains(&route))
    {
        return next.call(req).await;
    }
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.server",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = req.path(),
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    set_parent_from(
        &span,
        header(TraceContext::TRACEPARENT),
        header(TraceContext::TRACESTATE),
    );
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    result
}
