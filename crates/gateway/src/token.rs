//! Access tokens at the edge: where a WebSocket request carries one, how it is checked, and
//! how request lines are logged without it.
//!
//! Tokens are verified by the shared [`TokenVerifier`] (keys come from the broker, so the
//! gateway never calls auth). Browsers cannot set headers on a WebSocket, so the simple
//! endpoints also take `?token=`; such URLs are only ever logged through [`redacted_uri`].

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use herald_common::auth::VerifyError;
use herald_common::ids::UserId;
use herald_service::TokenVerifier;
use herald_service::tokens::bearer_token;

/// Query parameter that may carry the token on the simple endpoints.
pub const TOKEN_PARAM: &str = "token";

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The user (`sub`).
    pub user: UserId,
    /// The user's display name (`name`; becomes `conn_info.name`).
    pub name: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

impl Grant {
    /// Seconds until the token expires (0 once it has).
    pub fn ttl(&self) -> u64 {
        self.expires_at.saturating_sub(unix_now())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token was presented.
    #[error("no token")]
    Missing,
    /// The token expired: the client should get a new one (protocol error 109).
    #[error("token expired")]
    Expired,
    /// Anything else: forged, wrong key, wrong audience, `alg: none`, ... (close 3500).
    #[error("invalid token: {0}")]
    Invalid(VerifyError),
}

/// Verifies `token`.
pub async fn verify(verifier: &TokenVerifier, token: &str) -> Result<Grant, Refusal> {
    if token.is_empty() {
        return Err(Refusal::Missing);
    }
    let claims = match verifier.verify(token).await {
        Ok(claims) => claims,
        Err(VerifyError::Expired) => return Err(Refusal::Expired),
        Err(err) => return Err(Refusal::Invalid(err)),
    };
    let user = claims.user_id().map_err(|_| {
        Refusal::Invalid(VerifyError::InvalidClaims(
            "sub is not a user id".to_owned(),
        ))
    })?;
    let name = if claims.name.is_empty() {
        claims.sub.clone()
    } else {
        claims.name
    };
    Ok(Grant {
        user,
        name,
        expires_at: claims.exp,
    })
}

/// The token of a request: the `Authorization: Bearer` header, else the `token` query
/// parameter.
pub fn request_token(req: &HttpRequest) -> Option<String> {
    if let Some(token) = bearer_token(req) {
        return Some(token.to_owned());
    }
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(key, _)| key == TOKEN_PARAM)
        .map(|(_, value)| value.into_owned())
        .filter(|token| !token.is_empty())
}

/// The request's path and query with any token replaced by `[redacted]`: the only form in
/// which a request URI is logged.
pub fn redacted_uri(req: &HttpRequest) -> String {
    let path = req.path();
    let query = req.query_string();
    if query.is_empty() {
        return path.to_owned();
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            // Each pair is decoded on its own, so an encoded key (`%74oken`) is caught too.
            let is_token = form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_some_and(|(key, _)| key == TOKEN_PARAM);
            if is_token {
                let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                format!("{key}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_header_wins_over_the_query() {
        let req = TestRequest::with_uri("/ws/chat/lobby?token=from-query")
            .insert_header(("Authorization", "Bearer from-header"))
            .to_http_request();
        assert_eq!(request_token(&req).as_deref(), Some("from-header"));
        let req = TestRequest::with_uri("/ws/chat/lobby?x=1&token=a%2Eb.c").to_http_request();
        assert_eq!(request_token(&req).as_deref(), Some("a.b.c"));
        let req = TestRequest::with_uri("/ws/chat/lobby?token=").to_http_request();
        assert_eq!(request_token(&req), None);
    }

    #[test]
    fn query_tokens_never_reach_a_logged_uri() {
        let req = TestRequest::with_uri("/ws/notifications/tasks?token=secret.jwt.value&x=1")
            .to_http_request();
        let logged = redacted_uri(&req);
        assert_eq!(logged, "/ws/notifications/tasks?token=[redacted]&x=1");
        assert!(!logged.contains("secret"));
        let req = TestRequest::with_uri("/ws/chat/a?%74oken=secret").to_http_request();
        assert!(!redacted_uri(&req).contains("secret"));
    }

    #[test]
    fn query_tokens_are_form_decoded_and_invalid_escapes_kept() {
        let token = |uri: &str| request_token(&TestRequest::with_uri(uri).to_http_request());
        assert_eq!(token("/ws/chat/a?token=a%23b").as_deref(), Some("a#b"));
        assert_eq!(token("/ws/chat/a?token=100%").as_deref(), Some("100%"));
        assert_eq!(token("/ws/chat/a?token=%zz+x").as_deref(), Some("%zz x"));
        let req = TestRequest::with_uri("/ws/chat/a?token").to_http_request();
        assert_eq!(redacted_uri(&req), "/ws/chat/a?token=[redacted]");
    }
}
