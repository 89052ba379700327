//! Structured logs and trace export (design section 7).
//!
//! One JSON object per line on stdout, filtered by `RUST_LOG` (default `info`). When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set and not empty, spans are also exported over OTLP
//! (HTTP/protobuf, `<endpoint>/v1/traces`) with the resource attributes `service.name`,
//! `service.version` and `service.instance.id`, and every log line written inside a span
//! carries its `trace_id` and `span_id`. Without it nothing is exported and logs are as they
//! were: [`crate::trace::enabled`] is the switch the hot paths check.
//!
//! The OpenTelemetry layer has its own filter: Herald's spans and events at `info` and above,
//! whatever `RUST_LOG` says, so quieting the logs never breaks a trace.
//!
//! Services call [`init`] at start and [`flush`] on the way out (the standalone server does the
//! latter), which exports the spans still buffered.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// The variable that turns trace export on: the collector's base URL.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The tracer provider of this process, kept so [`flush`] can reach it. The subscriber it
/// feeds is process-wide too, so there is no narrower owner for it.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the process-wide subscriber for `service` (its name is logged once at start-up
/// and is the `service.name` of its spans). Calling it again, e.g. from a second service in
/// the same process, is harmless.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let endpoint = otlp_endpoint(std::env::var(OTLP_ENDPOINT_VAR).ok());
    let mut export_error = None;
    let provider = endpoint
        .as_ref()
        .and_then(|endpoint| match otlp_provider(service, endpoint) {
            Ok(provider) => Some(provider),
            Err(err) => {
                export_error = Some(err);
                None
            }
        });
    let logs = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_target(true)
        .map_event_format(WithTraceIds)
        .with_filter(filter);
    let installed = match &provider {
        Some(provider) => tracing_subscriber::registry()
            .with(logs)
            .with(otel_layer(provider))
            .try_init()
            .is_ok(),
        None => tracing_subscriber::registry().with(logs).try_init().is_ok(),
    };
    if !installed {
        return;
    }
    if let Some(provider) = provider {
        crate::trace::enable();
        let _first = PROVIDER.set(provider);
    }
    tracing::info!(
        service,
        version = env!("CARGO_PKG_VERSION"),
        traces = endpoint.as_deref().unwrap_or("off"),
        "logging initialised"
    );
    if endpoint
        .as_deref()
        .is_some_and(|endpoint| endpoint.ends_with(":4317"))
    {
        tracing::warn!(
            "{OTLP_ENDPOINT_VAR} names port 4317 (OTLP/gRPC); Herald exports OTLP/HTTP, usually on 4318"
        );
    }
    if let Some(err) = export_error {
        tracing::warn!(error = %err, "trace export is off: the OTLP exporter could not be built");
    }
}

/// Exports the spans still buffered (waits at most a few seconds). Services call it on the
/// way out; it does nothing when traces are not exported, and calling it again is harmless.
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(err) = provider.force_flush()
    {
        tracing::debug!(error = %err, "exporting the last spans failed");
    }
}

/// The collector's base URL from `OTEL_EXPORTER_OTLP_ENDPOINT`: `None` (no export) when the
/// variable is unset or blank.
fn otlp_endpoint(value: Option<String>) -> Option<String> {
    value
        .map(|endpoint| endpoint.trim().trim_end_matches('/').to_owned())
        .filter(|endpoint| !endpoint.is_empty())
}

/// The OTLP/HTTP exporter to `<endpoint>/v1/traces` on a batching provider. The other
/// standard variables (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`) apply.
fn otlp_provider(service: &'static str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build())
}

/// `service.name`, `service.version` and `service.instance.id` (host name, process id and a
/// random suffix, unique per start); `OTEL_RESOURCE_ATTRIBUTES` adds to them.
fn resource(service: &'static str) -> Resource {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let instance = format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>(),
    );
    Resource::builder()
        .with_service_name(service)
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance),
        ])
        .build()
}

/// Herald's spans and events at `info` and above: what a trace shows.
fn exported(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("herald") && *metadata.level() <= Level::INFO
}

/// The layer turning `tracing` spans into OpenTelemetry spans of `provider`.
fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("herald"))
        .with_tracked_inactivity(false)
        .with_filter(FilterFn::new(exported))
}

/// Wraps the JSON event format: when the event happens inside an exported span, the line
/// starts with `"trace_id"` and `"span_id"` (W3C hex) so logs and traces join up.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // Entering an exported span makes its OpenTelemetry context current (context
        // activation); without trace export there never is one, and this is a thread-local read.
        let ids = opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let span_context = span.span_context();
            span_context
                .is_valid()
                .then(|| (span_context.trace_id(), span_context.span_id()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

/// Log subscriber for tests: silent unless `TEST_LOG` is set, then human-readable on the test
/// writer (captured per test by the harness). Safe to call from every test.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_none() {
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
    let _already_installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_test_writer())
        .try_init();
}

/// For tests that check the spans a flow produces (feature `testing`): installs the
/// subscriber with spans going to an in-memory exporter, finished spans available at once,
/// and turns [`crate::trace::enabled`] on. Returns the exporter; later calls in the same
/// process return the same one. Logs as in [`init_for_tests`].
#[cfg(feature = "testing")]
pub fn init_for_tests_with_spans() -> opentelemetry_sdk::trace::InMemorySpanExporter {
    static EXPORTER: OnceLock<opentelemetry_sdk::trace::InMemorySpanExporter> = OnceLock::new();
    EXPORTER
        .get_or_init(|| {
            let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .with_resource(resource("herald-test"))
                .build();
            let logs = std::env::var_os("TEST_LOG").map(|_| {
                fmt::layer().with_test_writer().with_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug")),
                )
            });
            let installed = tracing_subscriber::registry()
                .with(logs)
                .with(otel_layer(&provider))
                .try_init()
                .is_ok();
            if installed {
                crate::trace::enable();
                let _first = PROVIDER.set(provider);
            }
            exporter
        })
        .clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use opentelemetry::trace::Tracer as _;

    use serde_json::Value;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        }
    }

    #[test]
    fn traces_are_exported_only_when_the_endpoint_is_set_and_not_blank() {
        assert_eq!(otlp_endpoint(None), None);
        assert_eq!(otlp_endpoint(Some(String::new())), None);
        assert_eq!(otlp_endpoint(Some("  ".to_owned())), None);
        assert_eq!(
            otlp_endpoint(Some("http://collector:4318/".to_owned())).as_deref(),
            Some("http://collector:4318")
        );
    }

    /// Answers one HTTP request with 200 and hands over its request line, headers and body.
    fn one_request_receiver() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            sender.send((head, body)).unwrap();
        });
        (address, received)
    }

    #[test]
    fn spans_are_posted_to_the_collector_with_the_service_attributes() {
        let (endpoint, received) = one_request_receiver();
        let provider = otlp_provider("herald-exporter-test", &endpoint).unwrap();
        provider.tracer("test").in_span("outbox.insert", |_| {});
        provider.force_flush().unwrap();

        let (head, body) = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(head.starts_with("POST /v1/traces "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-protobuf"),
            "{head}"
        );
        // Protobuf keeps strings as they are: the resource and the span are in the body.
        let contains = |needle: &str| {
            body.windows(needle.len())
                .any(|window| window == needle.as_bytes())
        };
        for needle in [
            "service.name",
            "herald-exporter-test",
            "service.version",
            env!("CARGO_PKG_VERSION"),
            "service.instance.id",
            "outbox.insert",
        ] {
            assert!(contains(needle), "{needle} missing from the export");
        }
    }

    #[test]
    fn log_lines_inside_an_exported_span_carry_its_trace_and_span_ids() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let writer = captured.clone();
        let logs = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .map_event_format(WithTraceIds);
        let subscriber = tracing_subscriber::registry()
            .with(logs)
            .with(otel_layer(&provider));

        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            let span = tracing::info_span!("herald.test");
            let context = span.context();
            let ids = context.span().span_context().clone();
            span.in_scope(|| tracing::info!("inside"));
            (ids.trace_id().to_string(), ids.span_id().to_string())
        });

        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "before");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["trace_id"], trace_id.as_str());
        assert_eq!(lines[1]["span_id"], span_id.as_str());
        assert_eq!(lines[1]["span"]["name"], "herald.test");
        assert_eq!(trace_id.len(), 32);
    }
}
