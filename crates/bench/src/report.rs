//! Latency histograms and their one-line summaries.

use hdrhistogram::Histogram;

/// Highest latency recorded, in microseconds (60 s); anything above is clamped.
const MAX_MICROS: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u32> {
    // Constant bounds that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, 3 digits ≤ 5).
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records one latency given in nanoseconds.
pub fn record(histogram: &mut Histogram<u32>, nanos: u64) {
    histogram.saturating_record((nanos / 1000).clamp(1, MAX_MICROS));
}

/// `p50 … p99 … p99.9 … max …` in milliseconds.
pub fn summary(histogram: &Histogram<u32>) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (n = {})",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.max()),
        histogram.len()
    )
}
