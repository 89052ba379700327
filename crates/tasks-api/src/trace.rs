//! The trace context a change carries into its domain event (design section 7): the
//! request's W3C `traceparent` (and `tracestate`) when it sent a valid one, else a new root
//! context, so the REST call, the outbox relay, the notifier and the gateway can always be
//! correlated by one trace id.

use actix_web::HttpRequest;
use herald_common::events::TraceContext;

/// Longest `tracestate` carried along (W3C allows 32 members of up to 256 bytes, 512 is
/// what implementations must propagate at least).
const MAX_TRACESTATE_LEN: usize = 512;

/// The trace context of `req`, or a new one.
pub fn from_request(req: &HttpRequest) -> TraceContext {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    match header(TraceContext::TRACEPARENT).filter(|value| is_valid_traceparent(value)) {
        Some(traceparent) => TraceContext {
            traceparent: Some(traceparent.to_ascii_lowercase()),
            tracestate: header(TraceContext::TRACESTATE)
                .filter(|state| !state.is_empty() && state.len() <= MAX_TRACESTATE_LEN)
                .map(str::to_owned),
        },
        None => TraceContext::from_traceparent(new_traceparent()),
    }
}

/// A new sampled root context: `00-<32 hex trace id>-<16 hex span id>-01`.
pub fn new_traceparent() -> String {
    // Zero ids are invalid; `| 1` keeps them non-zero without biasing anything that matters.
    let trace_id: u128 = rand::random::<u128>() | 1;
    let span_id: u64 = rand::random::<u64>() | 1;
    format!("00-{trace_id:032x}-{span_id:016x}-01")
}

/// Whether `value` is a version-00 `traceparent` with non-zero ids.
pub fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return false;
    };
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    let non_zero = |part: &str| part.bytes().any(|b| b != b'0');
    *version == "00"
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && non_zero(trace_id)
        && non_zero(span_id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use actix_web::test::TestRequest;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_incoming_context_is_kept() {
        let req = TestRequest::default()
            .insert_header(("traceparent", VALID))
            .insert_header(("tracestate", "vendor=1"))
            .to_http_request();
        let trace = from_request(&req);
        assert_eq!(trace.traceparent.as_deref(), Some(VALID));
        assert_eq!(trace.tracestate.as_deref(), Some("vendor=1"));
    }

    #[test]
    fn a_missing_or_malformed_context_is_replaced_by_a_new_root() {
        for header in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let mut req = TestRequest::default();
            if let Some(value) = header {
                req = req.insert_header(("traceparent", value));
            }
            let trace = from_request(&req.to_http_request());
            let traceparent = trace.traceparent.unwrap();
            assert!(is_valid_traceparent(&traceparent), "{traceparent}");
            assert_ne!(Some(traceparent.as_str()), header);
            assert_eq!(trace.tracestate, None);
        }
    }
}
