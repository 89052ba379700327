//! Structured logs (design section 7).
//!
//! One JSON object per line on stdout, filtered by `RUST_LOG` (default `info`). OTLP trace
//! export plugs in here later, so services keep calling only [`init`].

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// Installs the process-wide JSON log subscriber for `service` (its name is logged once at
/// start-up). Calling it again, e.g. from a second service in the same process, is harmless.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_target(true),
        )
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "logging initialised"
        );
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
