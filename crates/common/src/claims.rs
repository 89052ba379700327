//! The claims of Herald's access tokens (design section 5).
//!
//! auth signs them (EdDSA, with a `kid` header); the gateway and tasks-api verify them
//! with [`crate::auth`] without calling auth. Times are Unix seconds, as in RFC 7519.

#![warn(missing_docs)]

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

use crate::ids::{IdError, UserId};

/// Default `iss` and `aud` of Herald's tokens (`HERALD_JWT__ISSUER`, `HERALD_JWT__AUDIENCE`).
pub const DEFAULT_ISSUER: &str = "herald";

/// Default `aud` of Herald's tokens.
pub const DEFAULT_AUDIENCE: &str = "herald";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user's id, canonical UUID text (see [`Claims::user_id`]).
    pub sub: String,
    /// The user's display name (their username); becomes `conn_info.name` on the gateway.
    #[serde(default)]
    pub name: String,
    /// Issuer.
    pub iss: String,
    /// Audience. Herald writes one string; a token from another issuer may carry an
    /// array, of which the first entry is kept (verification checks them all first).
    #[serde(deserialize_with = "one_audience")]
    pub aud: String,
    /// Expiry, Unix seconds (a fractional NumericDate is truncated).
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Issued at, Unix seconds; 0 when the token does not say.
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: u64,
}

/// `aud`: a string, or an array of strings of which the first is kept.
fn one_audience<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let first: Option<String> = seq.next_element()?;
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            first.ok_or_else(|| de::Error::invalid_length(0, &self))
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// A NumericDate: non-negative seconds, integer or not.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("negative NumericDate"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if v.is_finite() && v >= 0.0 {
                // Truncation (and saturation at u64::MAX) is the intent.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u64)
            } else {
                Err(E::custom("invalid NumericDate"))
            }
        }
    }
    deserializer.deserialize_any(Visitor)
}

impl Claims {
    /// Claims for `user` issued at `issued_at` (Unix seconds), valid for `ttl_secs`.
    pub fn new(
        user: &UserId,
        name: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        issued_at: u64,
        ttl_secs: u64,
    ) -> Self {
        Self {
            sub: user.to_string(),
            name: name.into(),
            iss: issuer.into(),
            aud: audience.into(),
            exp: issued_at.saturating_add(ttl_secs),
            iat: issued_at,
        }
    }

    /// The subject as a user id. A token whose `sub` is not one is not a Herald token.
    pub fn user_id(&self) -> Result<UserId, IdError> {
        UserId::parse(&self.sub)
    }

    /// Seconds the token stays valid after `now` (Unix seconds); 0 once it has expired.
    /// The gateway reports it as the connect reply's `ttl`.
    pub fn ttl_at(&self, now: u64) -> u64 {
        self.exp.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn claims_have_the_design_shape() {
        let user = UserId::parse("0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c").unwrap();
        let claims = Claims::new(&user, "alice", "herald", "herald", 1_700_000_000, 900);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "sub": "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c",
                "name": "alice",
                "iss": "herald",
                "aud": "herald",
                "exp": 1_700_000_900u64,
                "iat": 1_700_000_000u64,
            })
        );
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.user_id().unwrap(), user);
        assert_eq!(back.ttl_at(1_700_000_100), 800);
        assert_eq!(back.ttl_at(1_800_000_000), 0);
    }

    #[test]
    fn unknown_claims_are_ignored_and_a_bad_subject_is_reported() {
        let claims: Claims = serde_json::from_str(
            r#"{"sub":"42","iss":"herald","aud":"herald","exp":2,"iat":1,"jti":"x"}"#,
        )
        .unwrap();
        assert_eq!(claims.name, "");
        assert!(claims.user_id().is_err());
    }

    #[test]
    fn tokens_of_other_issuers_may_use_an_audience_array_and_fractional_dates() {
        let claims: Claims = serde_json::from_str(
            r#"{"sub":"s","iss":"idp","aud":["herald","other"],"exp":1700000900.75}"#,
        )
        .unwrap();
        assert_eq!(claims.aud, "herald");
        assert_eq!(claims.exp, 1_700_000_900);
        assert_eq!(claims.iat, 0);
        for bad in [
            r#"{"sub":"s","iss":"i","aud":[],"exp":1}"#,
            r#"{"sub":"s","iss":"i","aud":"a","exp":-1}"#,
            r#"{"sub":"s","iss":"i","aud":"a","exp":"soon"}"#,
            r#"{"sub":"s","iss":"i","aud":"a"}"#,
        ] {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }
}
