//! Protocol codes: reply errors, unsubscribe pushes and disconnects, with the meaning the
//! SDKs give them (Centrifugo's "client protocol codes"; design sections 3 and 6).
//!
//! - [`ErrorCode`] (100-112) goes in a reply's `error`; `temporary` errors may be retried.
//! - [`UnsubscribeCode`]: codes ≥ 2500 make the SDK resubscribe (and recover), codes below
//!   are final.
//! - [`DisconnectCode`]: the WebSocket close code and reason. 3000-3499 and 4000-4499 (and
//!   ≥ 5000) reconnect; 3500-3999 and 4500-4999 are terminal. 1009 (message too big) is
//!   the WebSocket layer's own code, which the SDK treats as terminal.
//!
//! The bodies that carry an unsubscribe or disconnect code, [`Unsubscribe`] and
//! [`Disconnect`], are defined here with their codes (the push module sends them); this
//! module uses no other protocol module.

#![warn(missing_docs)]

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest close reason a WebSocket close frame can carry: 125 payload bytes minus the
/// 2-byte code.
pub const MAX_CLOSE_REASON_LEN: usize = 123;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// `Unsubscribe` push: the server ended a subscription. See
/// [`UnsubscribeCode`] for the codes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// The code: ≥ 2500 makes the SDK resubscribe.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    /// Human-readable reason.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub reason: Cow<'static, str>,
}

/// `Disconnect` push and close advice: code, reason and whether to reconnect. Built from a
/// [`DisconnectCode`] or with [`Disconnect::custom`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Disconnect {
    /// Close code.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub code: u32,
    /// Close reason (at most 123 bytes fit a close frame; see [`Disconnect::close_reason`]).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub reason: Cow<'static, str>,
    /// Whether the client should reconnect.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reconnect: bool,
}

/// A client-protocol error code with its documented message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// 100 `internal server error` (temporary): our fault, not the client's.
    Internal = 100,
    /// 101 `unauthorized`.
    Unauthorized = 101,
    /// 102 `unknown channel`: no such namespace.
    UnknownChannel = 102,
    /// 103 `permission denied`.
    PermissionDenied = 103,
    /// 104 `method not found`.
    MethodNotFound = 104,
    /// 105 `already subscribed` (also: a client subscribe to a server-side subscription).
    AlreadySubscribed = 105,
    /// 106 `limit exceeded` (e.g. 128 channels per connection).
    LimitExceeded = 106,
    /// 107 `bad request`: malformed data, such as a bad channel name.
    BadRequest = 107,
    /// 108 `not available`: e.g. history or presence in a channel without them.
    NotAvailable = 108,
    /// 109 `token expired`: the SDK fetches a new token and retries.
    TokenExpired = 109,
    /// 110 `expired`: the connection expired (no token involved).
    Expired = 110,
    /// 111 `too many requests` (temporary): rate limited.
    TooManyRequests = 111,
    /// 112 `unrecoverable position`: the stream no longer holds the requested range.
    UnrecoverablePosition = 112,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownChannel,
        ErrorCode::PermissionDenied,
        ErrorCode::MethodNotFound,
        ErrorCode::AlreadySubscribed,
        ErrorCode::LimitExceeded,
        ErrorCode::BadRequest,
        ErrorCode::NotAvailable,
        ErrorCode::TokenExpired,
        ErrorCode::Expired,
        ErrorCode::TooManyRequests,
        ErrorCode::UnrecoverablePosition,
    ];

    /// The numeric code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The documented message.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal server error",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownChannel => "unknown channel",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::AlreadySubscribed => "already subscribed",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::NotAvailable => "not available",
            ErrorCode::TokenExpired => "token expired",
            ErrorCode::Expired => "expired",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::UnrecoverablePosition => "unrecoverable position",
        }
    }

    /// Whether the error is temporary, i.e. worth retrying (internal, too many requests).
    pub const fn is_temporary(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::TooManyRequests)
    }

    /// The code for a number, if it is one of these.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The wire error with the documented message.
    pub fn to_error(self) -> ProtocolError {
        ProtocolError::from(self)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// The `error` of a reply (`Error` in `client.proto`), also the `error` of the server API's
/// responses: `{"code":102,"message":"unknown channel"}`. `temporary` is written only when
/// true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ProtocolError {
    /// The numeric code; see [`ErrorCode`].
    #[serde(default)]
    pub code: u32,
    /// Human-readable message.
    #[serde(default)]
    pub message: Cow<'static, str>,
    /// Whether retrying may succeed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub temporary: bool,
}

impl ProtocolError {
    /// The typed code, when it is a known one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// A known code with a more specific message than the documented one.
    pub fn with_message(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            temporary: code.is_temporary(),
        }
    }
}

impl From<ErrorCode> for ProtocolError {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code(),
            message: Cow::Borrowed(code.message()),
            temporary: code.is_temporary(),
        }
    }
}

/// Whether a client reconnects after a close with `code`: terminal for 3500-3999,
/// 4500-4999 and 1009 (message too big), reconnect for everything else (3000-3499,
/// 4000-4499, ≥ 5000 and the transport's own codes below 3000).
pub const fn should_reconnect(code: u32) -> bool {
    !matches!(code, 1009 | 3500..=3999 | 4500..=4999)
}

/// Whether a client resubscribes after an unsubscribe push with `code`: yes for ≥ 2500.
pub const fn should_resubscribe(code: u32) -> bool {
    code >= 2500
}

/// A disconnect code with its documented reason: the WebSocket close frame the gateway
/// sends (and the `disconnect` push of unidirectional transports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum DisconnectCode {
    /// 1009 `message too big`: an inbound message above the size limit (WebSocket layer;
    /// terminal for the SDK).
    MessageTooBig = 1009,
    /// 3000 `connection closed`: closed without advice (never sent, used for metrics).
    ConnectionClosed = 3000,
    /// 3001 `shutdown`: the node is stopping; reconnect (elsewhere).
    Shutdown = 3001,
    /// 3004 `internal server error`.
    ServerError = 3004,
    /// 3005 `connection expired`.
    Expired = 3005,
    /// 3006 `subscription expired`.
    SubExpired = 3006,
    /// 3008 `slow`: the client does not read fast enough (send queue full).
    Slow = 3008,
    /// 3009 `write error`.
    WriteError = 3009,
    /// 3010 `insufficient state`: a gap in a stream; reconnect and recover.
    InsufficientState = 3010,
    /// 3011 `force reconnect`.
    ForceReconnect = 3011,
    /// 3012 `no pong`.
    NoPong = 3012,
    /// 3013 `too many requests`.
    TooManyRequests = 3013,
    /// 3014 `state invalidated`: reconnect with a fresh token and state.
    StateInvalidated = 3014,
    /// 3500 `invalid token` (terminal).
    InvalidToken = 3500,
    /// 3501 `bad request` (terminal): malformed protocol frames.
    BadRequest = 3501,
    /// 3502 `stale` (terminal): no connect command within the connect timeout.
    Stale = 3502,
    /// 3503 `force disconnect` (terminal).
    ForceNoReconnect = 3503,
    /// 3504 `connection limit` (terminal): per-node or per-user connection limit.
    ConnectionLimit = 3504,
    /// 3505 `channel limit` (terminal).
    ChannelLimit = 3505,
    /// 3506 `inappropriate protocol` (terminal).
    InappropriateProtocol = 3506,
    /// 3507 `permission denied` (terminal).
    PermissionDenied = 3507,
    /// 3508 `not available` (terminal).
    NotAvailable = 3508,
    /// 3509 `too many errors` (terminal).
    TooManyErrors = 3509,
}

impl DisconnectCode {
    /// Every code, in numeric order.
    pub const ALL: [DisconnectCode; 23] = [
        DisconnectCode::MessageTooBig,
        DisconnectCode::ConnectionClosed,
        DisconnectCode::Shutdown,
        DisconnectCode::ServerError,
        DisconnectCode::Expired,
        DisconnectCode::SubExpired,
        DisconnectCode::Slow,
        DisconnectCode::WriteError,
        DisconnectCode::InsufficientState,
        DisconnectCode::ForceReconnect,
        DisconnectCode::NoPong,
        DisconnectCode::TooManyRequests,
        DisconnectCode::StateInvalidated,
        DisconnectCode::InvalidToken,
        DisconnectCode::BadRequest,
        DisconnectCode::Stale,
        DisconnectCode::ForceNoReconnect,
        DisconnectCode::ConnectionLimit,
        DisconnectCode::ChannelLimit,
        DisconnectCode::InappropriateProtocol,
        DisconnectCode::PermissionDenied,
        DisconnectCode::NotAvailable,
        DisconnectCode::TooManyErrors,
    ];

    /// The close code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The documented reason (always well under [`MAX_CLOSE_REASON_LEN`] bytes).
    pub const fn reason(self) -> &'static str {
        match self {
            DisconnectCode::MessageTooBig => "message too big",
            DisconnectCode::ConnectionClosed => "connection closed",
            DisconnectCode::Shutdown => "shutdown",
            DisconnectCode::ServerError => "internal server error",
            DisconnectCode::Expired => "connection expired",
            DisconnectCode::SubExpired => "subscription expired",
            DisconnectCode::Slow => "slow",
            DisconnectCode::WriteError => "write error",
            DisconnectCode::InsufficientState => "insufficient state",
            DisconnectCode::ForceReconnect => "force reconnect",
            DisconnectCode::NoPong => "no pong",
            DisconnectCode::TooManyRequests => "too many requests",
            DisconnectCode::StateInvalidated => "state invalidated",
            DisconnectCode::InvalidToken => "invalid token",
            DisconnectCode::BadRequest => "bad request",
            DisconnectCode::Stale => "stale",
            DisconnectCode::ForceNoReconnect => "force disconnect",
            DisconnectCode::ConnectionLimit => "connection limit",
            DisconnectCode::ChannelLimit => "channel limit",
            DisconnectCode::InappropriateProtocol => "inappropriate protocol",
            DisconnectCode::PermissionDenied => "permission denied",
            DisconnectCode::NotAvailable => "not available",
            DisconnectCode::TooManyErrors => "too many errors",
        }
    }

    /// Whether the client reconnects after this code; see [`should_reconnect`].
    pub const fn reconnect(self) -> bool {
        should_reconnect(self.code() as u32)
    }

    /// The code for a number, if it is one of these.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The disconnect advice (`{"code","reason","reconnect"}`) for this code.
    pub fn to_disconnect(self) -> Disconnect {
        Disconnect::from(self)
    }
}

impl fmt::Display for DisconnectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

impl Serialize for DisconnectCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for DisconnectCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(deserializer)?;
        Self::from_code(code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown disconnect code {code}")))
    }
}

impl From<DisconnectCode> for Disconnect {
    fn from(code: DisconnectCode) -> Self {
        Self {
            code: u32::from(code.code()),
            reason: Cow::Borrowed(code.reason()),
            reconnect: code.reconnect(),
        }
    }
}

/// Why [`Disconnect::custom`] refused a code or reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectError {
    /// Application disconnect codes are 4000-4999.
    #[error("custom disconnect codes must be in 4000..=4999")]
    CodeOutOfRange,
    /// The reason does not fit a close frame.
    #[error("disconnect reason is longer than 123 bytes")]
    ReasonTooLong,
}

impl Disconnect {
    /// An application-defined disconnect (server API `/api/disconnect`): code 4000-4499
    /// reconnects, 4500-4999 is terminal; the reason must fit a close frame.
    pub fn custom(code: u32, reason: impl Into<String>) -> Result<Self, DisconnectError> {
        if !(4000..=4999).contains(&code) {
            return Err(DisconnectError::CodeOutOfRange);
        }
        let reason = reason.into();
        if reason.len() > MAX_CLOSE_REASON_LEN {
            return Err(DisconnectError::ReasonTooLong);
        }
        Ok(Self {
            code,
            reason: Cow::Owned(reason),
            reconnect: should_reconnect(code),
        })
    }

    /// The close code for the WebSocket close frame (codes that do not fit become 3000).
    pub fn close_code(&self) -> u16 {
        u16::try_from(self.code).unwrap_or(DisconnectCode::ConnectionClosed.code())
    }

    /// The reason cut (on a character boundary) to fit a close frame.
    pub fn close_reason(&self) -> &str {
        truncate_to(&self.reason, MAX_CLOSE_REASON_LEN)
    }
}

fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An unsubscribe code with its documented reason, for the `unsubscribe` push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum UnsubscribeCode {
    /// 2000 `server unsubscribe`: final (server API unsubscribe).
    Server = 2000,
    /// 2500 `insufficient state`: a gap in the stream; resubscribe and recover.
    InsufficientState = 2500,
    /// 2501 `subscription expired`: resubscribe with a fresh token.
    Expired = 2501,
    /// 2502 `state invalidated`: resubscribe with a fresh token and state.
    StateInvalidated = 2502,
}

impl UnsubscribeCode {
    /// Every code, in numeric order.
    pub const ALL: [UnsubscribeCode; 4] = [
        UnsubscribeCode::Server,
        UnsubscribeCode::InsufficientState,
        UnsubscribeCode::Expired,
        UnsubscribeCode::StateInvalidated,
    ];

    /// The numeric code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The documented reason.
    pub const fn reason(self) -> &'static str {
        match self {
            UnsubscribeCode::Server => "server unsubscribe",
            UnsubscribeCode::InsufficientState => "insufficient state",
            UnsubscribeCode::Expired => "subscription expired",
            UnsubscribeCode::StateInvalidated => "state invalidated",
        }
    }

    /// Whether the SDK resubscribes; see [`should_resubscribe`].
    pub const fn resubscribe(self) -> bool {
        should_resubscribe(self.code())
    }

    /// The code for a number, if it is one of these.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for UnsubscribeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

impl From<UnsubscribeCode> for Unsubscribe {
    fn from(code: UnsubscribeCode) -> Self {
        Self {
            code: code.code(),
            reason: Cow::Borrowed(code.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn error_codes_match_the_documented_table() {
        let table = [
            (100, "internal server error", true),
            (101, "unauthorized", false),
            (102, "unknown channel", false),
            (103, "permission denied", false),
            (104, "method not found", false),
            (105, "already subscribed", false),
            (106, "limit exceeded", false),
            (107, "bad request", false),
            (108, "not available", false),
            (109, "token expired", false),
            (110, "expired", false),
            (111, "too many requests", true),
            (112, "unrecoverable position", false),
        ];
        assert_eq!(table.len(), ErrorCode::ALL.len());
        for (code, message, temporary) in table {
            let typed = ErrorCode::from_code(code).unwrap();
            assert_eq!(typed.code(), code);
            assert_eq!(typed.message(), message);
            assert_eq!(typed.is_temporary(), temporary, "{code}");
        }
        assert_eq!(ErrorCode::from_code(99), None);
        assert_eq!(ErrorCode::from_code(113), None);
    }

    #[test]
    fn protocol_errors_omit_a_false_temporary() {
        let not_found = serde_json::to_value(ErrorCode::UnknownChannel.to_error()).unwrap();
        assert_eq!(
            not_found,
            json!({"code": 102, "message": "unknown channel"})
        );
        let internal = serde_json::to_value(ErrorCode::Internal.to_error()).unwrap();
        assert_eq!(
            internal,
            json!({"code": 100, "message": "internal server error", "temporary": true})
        );
        let custom = ProtocolError::with_message(ErrorCode::BadRequest, "bad channel name");
        assert_eq!(custom.to_string(), "bad channel name (107)");
        let back: ProtocolError =
            serde_json::from_str(r#"{"code":109,"message":"token expired","x":1}"#).unwrap();
        assert_eq!(back.error_code(), Some(ErrorCode::TokenExpired));
        assert!(!back.temporary);
    }

    #[test]
    fn disconnect_codes_match_the_documented_table() {
        let table = [
            (1009, "message too big", false),
            (3000, "connection closed", true),
            (3001, "shutdown", true),
            (3004, "internal server error", true),
            (3005, "connection expired", true),
            (3006, "subscription expired", true),
            (3008, "slow", true),
            (3009, "write error", true),
            (3010, "insufficient state", true),
            (3011, "force reconnect", true),
            (3012, "no pong", true),
            (3013, "too many requests", true),
            (3014, "state invalidated", true),
            (3500, "invalid token", false),
            (3501, "bad request", false),
            (3502, "stale", false),
            (3503, "force disconnect", false),
            (3504, "connection limit", false),
            (3505, "channel limit", false),
            (3506, "inappropriate protocol", false),
            (3507, "permission denied", false),
            (3508, "not available", false),
            (3509, "too many errors", false),
        ];
        assert_eq!(table.len(), DisconnectCode::ALL.len());
        for (code, reason, reconnect) in table {
            let typed = DisconnectCode::from_code(code).unwrap();
            assert_eq!(typed.code(), code);
            assert_eq!(typed.reason(), reason);
            assert_eq!(typed.reconnect(), reconnect, "{code}");
            assert!(typed.reason().len() < MAX_CLOSE_REASON_LEN);
            let advice = typed.to_disconnect();
            assert_eq!(advice.close_code(), code);
            assert_eq!(advice.close_reason(), reason);
            assert_eq!(advice.reconnect, reconnect);
        }
    }

    #[test]
    fn reconnect_follows_the_documented_ranges() {
        for code in [3000, 3499, 4000, 4499, 5000, 1000, 1001, 1006, 1011] {
            assert!(should_reconnect(code), "{code}");
        }
        for code in [3500, 3999, 4500, 4999, 1009] {
            assert!(!should_reconnect(code), "{code}");
        }
    }

    #[test]
    fn custom_disconnects_stay_in_the_application_range_and_fit_a_close_frame() {
        let soft = Disconnect::custom(4001, "moved").unwrap();
        assert!(soft.reconnect);
        let hard = Disconnect::custom(4500, "banned").unwrap();
        assert!(!hard.reconnect);
        assert_eq!(
            Disconnect::custom(3999, "x"),
            Err(DisconnectError::CodeOutOfRange)
        );
        assert_eq!(
            Disconnect::custom(5000, "x"),
            Err(DisconnectError::CodeOutOfRange)
        );
        assert!(Disconnect::custom(4000, "r".repeat(MAX_CLOSE_REASON_LEN)).is_ok());
        assert_eq!(
            Disconnect::custom(4000, "r".repeat(MAX_CLOSE_REASON_LEN + 1)),
            Err(DisconnectError::ReasonTooLong)
        );
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let long = Disconnect {
            code: 4000,
            reason: Cow::Owned("é".repeat(100)),
            reconnect: true,
        };
        let reason = long.close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON_LEN);
        assert_eq!(reason.len(), 122);
        let overflowing = Disconnect {
            code: 70_000,
            reason: Cow::Borrowed("x"),
            reconnect: true,
        };
        assert_eq!(overflowing.close_code(), 3000);
    }

    #[test]
    fn unsubscribe_codes_resubscribe_from_2500() {
        let table = [
            (2000, "server unsubscribe", false),
            (2500, "insufficient state", true),
            (2501, "subscription expired", true),
            (2502, "state invalidated", true),
        ];
        for (code, reason, resubscribe) in table {
            let typed = UnsubscribeCode::from_code(code).unwrap();
            assert_eq!(typed.reason(), reason);
            assert_eq!(typed.resubscribe(), resubscribe);
            let push = Unsubscribe::from(typed);
            assert_eq!(
                serde_json::to_value(&push).unwrap(),
                json!({"code": code, "reason": reason})
            );
        }
        assert!(!should_resubscribe(2499));
        assert!(should_resubscribe(2599));
    }

    #[test]
    fn disconnect_code_serializes_as_its_number() {
        assert_eq!(
            serde_json::to_value(DisconnectCode::Slow).unwrap(),
            json!(3008)
        );
        assert_eq!(
            serde_json::from_value::<DisconnectCode>(json!(3500)).unwrap(),
            DisconnectCode::InvalidToken
        );
        assert!(serde_json::from_value::<DisconnectCode>(json!(3002)).is_err());
    }
}
