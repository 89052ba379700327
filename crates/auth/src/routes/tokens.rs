//! Tokens: `POST /auth/token` (OAuth2 password grant, form or JSON), `POST /auth/refresh`
//! (rotation with reuse detection), `POST /auth/logout` (revocation, announced to gateways).

use actix_web::web::Bytes;
use actix_web::{
    HttpResponse,
    http::header::{CACHE_CONTROL, PRAGMA},
    post, web,
};
use herald_common::{control::ControlMessage, ids::UserId};
use herald_service::error::ErrorBodySchema as ErrorBody;
use herald_service::{ApiError, Authenticated, ClientIp, FormOrJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    domain::{Password, Username},
    error::AuthError,
    state::{AuthState, IssuedTokens},
    store::{self, Replacement, Rotation},
    tokens::RefreshToken,
};

/// Longest username prefix used as a rate-limit key (a longer one cannot be a username).
const MAX_LIMIT_KEY_LEN: usize = 64;

/// Body of `POST /auth/token`: the fields of an OAuth2 password grant
/// (`application/x-www-form-urlencoded`, like FastAPI's `OAuth2PasswordRequestForm`) or the
/// same as JSON. `scope`, `client_id` and `client_secret` are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` when present.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// Account name (any case).
    #[schema(example = "alice")]
    pub username: String,
    /// Password.
    pub password: String,
}

/// Body of `POST /auth/refresh`: `{"refresh_token"}`, or the form
/// `grant_type=refresh_token&refresh_token=...`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// `refresh_token` when present.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// The refresh token from the last token response.
    pub refresh_token: String,
}

/// Body of `POST /auth/logout` (optional): the refresh token of the session to end. Without
/// it, every refresh token of the user is revoked.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// The session's refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `{"access_token","token_type":"bearer","expires_in","refresh_token"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// EdDSA JWT for `Authorization: Bearer` and the WebSocket connect.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Single-use token for `POST /auth/refresh`.
    pub refresh_token: String,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(issued: IssuedTokens) -> Self {
        Self {
            access_token: issued.access_token,
            token_type: "bearer".to_owned(),
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token.expose().to_owned(),
        }
    }
}

/// A token response; never cached (RFC 6749 section 5.1).
fn token_response(issued: IssuedTokens) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(TokenResponse::from(issued))
}

/// Signs in with username and password.
#[utoipa::path(
    tag = "auth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Unsupported grant_type or unreadable body", body = ErrorBody),
        (status = 401, description = "Invalid username or password", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    )
)]
#[post("/token")]
pub async fn token(
    state: web::Data<AuthState>,
    ClientIp(ip): ClientIp,
    body: FormOrJson<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_ip(ip).map_err(AuthError::RateLimited)?;
    let TokenRequest {
        grant_type,
        username,
        password,
    } = body.into_inner();
    if grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(AuthError::UnsupportedGrant.into());
    }
    let limit_key: String = username
        .chars()
        .take(MAX_LIMIT_KEY_LEN)
        .collect::<String>()
        .to_ascii_lowercase();
    state
        .limits
        .check_username(&limit_key)
        .map_err(AuthError::RateLimited)?;

    // Every path below costs one argon2 verification, whether or not the user exists.
    let password = Password::presented(password);
    let credentials = match Username::parse(&username) {
        Ok(name) => state
            .store
            .credentials(&name)
            .await
            .map_err(AuthError::from)?,
        Err(_) => None,
    };
    let verified = match &password {
        Some(password) => {
            let stored = credentials.as_ref().map(|c| &c.password_hash);
            state
                .hasher
                .verify(password, stored)
                .await
                .map_err(AuthError::from)?
        }
        None => false,
    };
    let Some(credentials) = credentials.filter(|_| verified) else {
        metrics::counter!("herald_auth_token_requests_total", "outcome" => "refused").increment(1);
        return Err(AuthError::InvalidCredentials.into());
    };
    let issued = state.issue(&credentials.user, uuid::Uuid::now_v7()).await?;
    tracing::info!(user = %credentials.user.id, %ip, "signed in");
    metrics::counter!("herald_auth_token_requests_total", "outcome" => "issued").increment(1);
    Ok(token_response(issued))
}

/// Trades a refresh token for new tokens. The presented token stops working; presenting it
/// again revokes every token descended from the same sign-in.
#[utoipa::path(
    tag = "auth",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    )
)]
#[post("/refresh")]
pub async fn refresh(
    state: web::Data<AuthState>,
    ClientIp(ip): ClientIp,
    body: FormOrJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_ip(ip).map_err(AuthError::RateLimited)?;
    let RefreshRequest {
        grant_type,
        refresh_token,
    } = body.into_inner();
    if grant_type.as_deref().is_some_and(|g| g != "refresh_token") {
        return Err(AuthError::UnsupportedGrant.into());
    }
    let presented = RefreshToken::presented(refresh_token).ok_or(AuthError::InvalidRefreshToken)?;
    let replacement_token = RefreshToken::generate();
    let now = store::now();
    let replacement = Replacement {
        id: uuid::Uuid::now_v7(),
        token_hash: replacement_token.hash(),
        created_at: now,
        expires_at: now + state.tokens.refresh_ttl,
    };
    match state
        .store
        .rotate_refresh_token(&presented.hash(), &replacement)
        .await
        .map_err(AuthError::from)?
    {
        Rotation::Rotated(user) => {
            let (access_token, expires_in) =
                state.sign_access_token(user.id, user.username.as_str())?;
            metrics::counter!("herald_auth_refreshes_total", "outcome" => "rotated").increment(1);
            Ok(token_response(IssuedTokens {
                access_token,
                expires_in,
                refresh_token: replacement_token,
            }))
        }
        Rotation::Reused { user_id } => {
            tracing::warn!(user = %user_id, %ip, "refresh token reused; its family is revoked");
            metrics::counter!("herald_auth_refreshes_total", "outcome" => "reused").increment(1);
            // Best effort: the tokens are revoked already; live sessions end if this gets out.
            if let Err(err) = announce_revocation(&state, user_id).await {
                tracing::warn!(error = %err, user = %user_id, "revocation not announced");
            }
            Err(AuthError::InvalidRefreshToken.into())
        }
        Rotation::Invalid => {
            metrics::counter!("herald_auth_refreshes_total", "outcome" => "invalid").increment(1);
            Err(AuthError::InvalidRefreshToken.into())
        }
    }
}

/// Signs out: revokes the given refresh token's family (or, without one, all of the user's
/// refresh tokens) and tells every gateway to end the user's sessions.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body(content((LogoutRequest = "application/json")), description = "Optional"),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "The revocation could not be announced; retry", body = ErrorBody),
    )
)]
#[post("/logout")]
pub async fn logout(
    state: web::Data<AuthState>,
    auth: Authenticated,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let user = auth.0.user_id().map_err(|_| AuthError::UnknownUser)?;
    let request = parse_optional_body(&body, state.body_limit)?;
    let now = store::now();
    let revoked = match request.refresh_token.and_then(RefreshToken::presented) {
        Some(presented) => {
            state
                .store
                .revoke_family(&presented.hash(), user, now)
                .await
        }
        None => state.store.revoke_all(user, now).await,
    }
    .map_err(AuthError::from)?;
    announce_revocation(&state, user).await?;
    tracing::info!(user = %user, revoked, "signed out");
    Ok(HttpResponse::NoContent().finish())
}

/// Publishes `revoke_user` on the broker's control channel: every gateway node closes the
/// user's sessions.
async fn announce_revocation(state: &AuthState, user: UserId) -> Result<(), AuthError> {
    let message = ControlMessage::RevokeUser { user };
    let payload = message
        .encode()
        .map_err(|e| AuthError::Internal(e.into()))?;
    state.broker.publish_control(Bytes::from(payload)).await?;
    Ok(())
}

/// The logout body: empty, or JSON.
fn parse_optional_body(body: &Bytes, limit: usize) -> Result<LogoutRequest, ApiError> {
    if body.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(LogoutRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::from(actix_web::error::JsonPayloadError::Deserialize(err)))
}
