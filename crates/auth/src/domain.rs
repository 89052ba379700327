//! Domain types parsed once at the edge (style rule 4): a [`Username`] or [`Password`] that
//! exists is valid; request bodies hold plain strings only until `parse`.

use std::fmt;

use herald_common::ids::UserId;
use serde::Serialize;
use time::OffsetDateTime;

/// Shortest and longest allowed username, in characters.
pub const USERNAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=32;

/// Shortest and longest allowed password, in characters.
pub const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=128;

/// Why a username or password was refused; the `&str` form is the `details` value of the
/// 422 answer (`{"username": "too_short"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    /// Fewer characters than allowed.
    #[error("too short")]
    TooShort,
    /// More characters than allowed.
    #[error("too long")]
    TooLong,
    /// A character outside the allowed set.
    #[error("invalid characters")]
    InvalidCharacters,
}

impl InvalidField {
    /// The stable word used in error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidCharacters => "invalid_characters",
        }
    }
}

/// A valid account name: 3–32 ASCII letters, digits, `_`, `.` or `-`. Its case is kept for
/// display; uniqueness and sign-in ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let length = raw.chars().count();
        if length < *USERNAME_LENGTH.start() {
            return Err(InvalidField::TooShort);
        }
        if length > *USERNAME_LENGTH.end() {
            return Err(InvalidField::TooLong);
        }
        if !raw.chars().all(is_username_char) {
            return Err(InvalidField::InvalidCharacters);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A username read back from the store, which only ever holds parsed ones.
    pub(crate) fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The name as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form used for uniqueness, sign-in and rate-limit keys.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may appear in a username.
pub fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A prefix for `GET /auth/users`: up to 32 username characters (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernamePrefix(String);

impl UsernamePrefix {
    /// Parses a prefix.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.chars().count() > *USERNAME_LENGTH.end() {
            return Err(InvalidField::TooLong);
        }
        if !raw.chars().all(is_username_char) {
            return Err(InvalidField::InvalidCharacters);
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The case-folded prefix.
    pub fn folded(&self) -> &str {
        &self.0
    }

    /// The prefix as a `LIKE` pattern with `\` as escape character (`_` is a wildcard in SQL).
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        for c in self.0.chars() {
            if matches!(c, '_' | '%' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// A password of acceptable length (8–128 characters). Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length of a new password.
    pub fn parse(raw: String) -> Result<Self, InvalidField> {
        let length = raw.chars().count();
        if length < *PASSWORD_LENGTH.start() {
            return Err(InvalidField::TooShort);
        }
        if length > *PASSWORD_LENGTH.end() {
            return Err(InvalidField::TooLong);
        }
        Ok(Self(raw))
    }

    /// A password presented at sign-in. Only its length is capped (hashing an unbounded
    /// input is a denial-of-service vector); a too-short one simply will not match.
    pub fn presented(raw: String) -> Option<Self> {
        (raw.chars().count() <= *PASSWORD_LENGTH.end()).then_some(Self(raw))
    }

    /// The bytes to hash.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id (the JWT `sub`).
    pub id: UserId,
    /// The account name.
    pub username: Username,
    /// When the account was created (UTC, microsecond precision).
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_rules() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b-c_9").is_ok());
        assert_eq!(Username::parse("al"), Err(InvalidField::TooShort));
        assert_eq!(Username::parse(&"a".repeat(33)), Err(InvalidField::TooLong));
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        for bad in ["ali ce", "alice!", "élise", "al/ice", "al%ce"] {
            assert_eq!(
                Username::parse(bad),
                Err(InvalidField::InvalidCharacters),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_must_be_8_to_128_characters() {
        assert_eq!(
            Password::parse("short".into()).err(),
            Some(InvalidField::TooShort)
        );
        assert_eq!(
            Password::parse("x".repeat(129)).err(),
            Some(InvalidField::TooLong)
        );
        assert!(Password::parse("correct horse".into()).is_ok());
        assert!(Password::presented("x".repeat(129)).is_none());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn prefixes_escape_like_wildcards() {
        assert_eq!(
            UsernamePrefix::parse("Al_").unwrap().like_pattern(),
            "al\\_%"
        );
        assert_eq!(UsernamePrefix::parse("").unwrap().like_pattern(), "%");
        assert!(UsernamePrefix::parse("a%").is_err());
    }
}
