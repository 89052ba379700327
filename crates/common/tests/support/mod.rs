//! Helpers shared by the fixture tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use serde_json::Value;
use serde_json::value::RawValue;

/// Asserts that `actual` is the JSON of `expected`, ignoring key order and whitespace.
/// Keys are compared exactly, so a zero field that should have been omitted fails.
#[track_caller]
pub fn assert_json(actual: &str, expected: &str) {
    let actual_value: Value =
        serde_json::from_str(actual).unwrap_or_else(|e| panic!("{actual:?} is not JSON: {e}"));
    let expected_value: Value =
        serde_json::from_str(expected).unwrap_or_else(|e| panic!("bad fixture {expected:?}: {e}"));
    assert_eq!(
        actual_value, expected_value,
        "\n actual: {actual}\nexpected: {expected}"
    );
}

/// Raw JSON for a fixture payload.
pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}
