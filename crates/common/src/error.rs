//! The REST error body of auth and tasks-api (design section 5a), for any 4xx or 5xx:
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "title must be 1-200 characters", "details": {"title": "too_long"}}}
//! ```
//! `code` is a stable snake_case word clients may branch on; `message` is for people;
//! `details` (omitted when empty) maps a field to what is wrong with it. Each service maps
//! its own error enum to an [`ErrorCode`] in one place, with the status code from
//! [`ErrorCode::status`].

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stable word naming what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `validation_failed` (422): the request is malformed or a field is invalid.
    ValidationFailed,
    /// `unauthorized` (401): no valid credentials.
    Unauthorized,
    /// `forbidden` (403): valid credentials, not allowed.
    Forbidden,
    /// `not_found` (404).
    NotFound,
    /// `conflict` (409): e.g. the username is taken.
    Conflict,
    /// `precondition_failed` (412): `If-Match` does not match the current version.
    PreconditionFailed,
    /// `rate_limited` (429).
    RateLimited,
    /// `payload_too_large` (413).
    PayloadTooLarge,
    /// `internal` (500): our fault; the message says nothing more.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::ValidationFailed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::PreconditionFailed,
        ErrorCode::RateLimited,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Internal,
    ];

    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status code that goes with it.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::ValidationFailed => 422,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PreconditionFailed => 412,
            ErrorCode::RateLimited => 429,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
        }
    }

    /// A generic message, for when there is nothing more specific to say (always for
    /// `internal`, whose cause is logged, never sent).
    pub const fn default_message(self) -> &'static str {
        match self {
            ErrorCode::ValidationFailed => "the request is invalid",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::NotFound => "not found",
            ErrorCode::Conflict => "conflict with the current state",
            ErrorCode::PreconditionFailed => "the resource has changed",
            ErrorCode::RateLimited => "too many requests",
            ErrorCode::PayloadTooLarge => "request body too large",
            ErrorCode::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a REST error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// Field → problem (such as `{"title":"too_long"}`); omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
}

/// A REST error body: `{"error":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

impl ErrorBody {
    /// An error with a specific message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorObject {
                code,
                message: message.into(),
                details: BTreeMap::new(),
            },
        }
    }

    /// An error with the code's generic message.
    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Adds details (`field` → `problem`), such as a `serde_json::Map`.
    #[must_use]
    pub fn with_details(mut self, details: impl IntoIterator<Item = (String, Value)>) -> Self {
        self.error.details.extend(details);
        self
    }

    /// Adds a detail (`field` → `problem`).
    #[must_use]
    pub fn with_detail(mut self, field: impl Into<String>, problem: impl Into<Value>) -> Self {
        self.error.details.insert(field.into(), problem.into());
        self
    }

    /// The HTTP status code to send it with.
    pub fn status(&self) -> u16 {
        self.error.code.status()
    }
}

impl From<ErrorCode> for ErrorBody {
    fn from(code: ErrorCode) -> Self {
        Self::from_code(code)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_design_example_round_trips() {
        let fixture = r#"{"error": {"code": "validation_failed", "message": "title must be 1-200 characters", "details": {"title": "too_long"}}}"#;
        let body: ErrorBody = serde_json::from_str(fixture).unwrap();
        let built = ErrorBody::new(
            ErrorCode::ValidationFailed,
            "title must be 1-200 characters",
        )
        .with_detail("title", "too_long");
        assert_eq!(body, built);
        let mut details = serde_json::Map::new();
        details.insert("title".to_owned(), json!("too_long"));
        let from_map = ErrorBody::new(
            ErrorCode::ValidationFailed,
            "title must be 1-200 characters",
        )
        .with_details(details);
        assert_eq!(from_map, built);
        let expected: Value = serde_json::from_str(fixture).unwrap();
        assert_eq!(serde_json::to_value(&built).unwrap(), expected);
        assert_eq!(built.status(), 422);
    }

    #[test]
    fn empty_details_are_omitted() {
        let body = ErrorBody::from_code(ErrorCode::NotFound);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"error": {"code": "not_found", "message": "not found"}})
        );
    }

    #[test]
    fn codes_are_snake_case_words_with_their_statuses() {
        let table = [
            ("validation_failed", 422),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("not_found", 404),
            ("conflict", 409),
            ("precondition_failed", 412),
            ("rate_limited", 429),
            ("payload_too_large", 413),
            ("internal", 500),
        ];
        for (code, (word, status)) in ErrorCode::ALL.into_iter().zip(table) {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(word));
            assert_eq!(code.to_string(), word);
            assert_eq!(code.status(), status);
        }
    }
}
