//! Accounts: `POST /auth/register`, `GET /auth/me`, `GET /auth/users?prefix=&limit=`.

use actix_web::{HttpResponse, get, post, web};
use herald_common::ids::UserId;
use herald_service::error::ErrorBodySchema as ErrorBody;
use herald_service::{ApiError, Authenticated, FormOrJson};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{InvalidField, Password, User, Username, UsernamePrefix},
    error::AuthError,
    state::AuthState,
    store::{self, NewUser},
};

/// Body of `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 letters, digits, `_`, `.` or `-`; unique ignoring case.
    #[schema(example = "alice")]
    pub username: String,
    /// 8–128 characters.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// An account: `{"id","username","created_at"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    /// User id (UUIDv7), the `sub` of the user's tokens.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// Account name.
    pub username: String,
    /// Creation time, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username.as_str().to_owned(),
            created_at: user.created_at,
        }
    }
}

/// Creates an account.
#[utoipa::path(
    tag = "auth",
    request_body(content(
        (RegisterRequest = "application/json"),
        (RegisterRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 422, description = "Invalid username or password", body = ErrorBody),
    )
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AuthState>,
    body: FormOrJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let RegisterRequest { username, password } = body.into_inner();
    let mut invalid: Vec<(&'static str, InvalidField)> = Vec::new();
    let username = Username::parse(&username)
        .map_err(|e| invalid.push(("username", e)))
        .ok();
    let password = Password::parse(password)
        .map_err(|e| invalid.push(("password", e)))
        .ok();
    let (Some(username), Some(password)) = (username, password) else {
        return Err(AuthError::Invalid(invalid).into());
    };
    let password_hash = state
        .hasher
        .hash(&password)
        .await
        .map_err(AuthError::from)?;
    let user = state
        .store
        .create_user(&NewUser {
            id: UserId::new(),
            username,
            password_hash,
            created_at: store::now(),
        })
        .await
        .map_err(|err| match err {
            store::StoreError::UsernameTaken => AuthError::UsernameTaken,
            other => AuthError::Store(other),
        })?;
    tracing::info!(user = %user.id, "account created");
    metrics::counter!("herald_auth_registrations_total").increment(1);
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}

/// The signed-in user's account.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserResponse),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    )
)]
#[get("/me")]
pub async fn me(
    state: web::Data<AuthState>,
    auth: Authenticated,
) -> Result<web::Json<UserResponse>, ApiError> {
    let id = auth.0.user_id().map_err(|_| AuthError::UnknownUser)?;
    let user = state
        .store
        .user(id)
        .await
        .map_err(AuthError::from)?
        .ok_or(AuthError::UnknownUser)?;
    Ok(web::Json(user.into()))
}

/// Query of `GET /auth/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Usernames starting with this (ignoring case); empty or absent lists everyone.
    pub prefix: Option<String>,
    /// At most this many results, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// One search result: `{"id","username"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    /// User id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// Account name.
    pub username: String,
}

/// `{"items":[...]}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsersPage {
    /// Matching users, by name.
    pub items: Vec<UserSummary>,
}

/// Default and largest page of `GET /auth/users`.
const USERS_DEFAULT_LIMIT: u32 = 20;
const USERS_MAX_LIMIT: u32 = 100;

/// Finds users by name prefix (e.g. to pick a task's assignee). Signed-in users only.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "Matching users", body = UsersPage),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "Invalid prefix or limit", body = ErrorBody),
    )
)]
#[get("/users")]
pub async fn users(
    state: web::Data<AuthState>,
    _auth: Authenticated,
    query: web::Query<UsersQuery>,
) -> Result<web::Json<UsersPage>, ApiError> {
    let UsersQuery { prefix, limit } = query.into_inner();
    let mut invalid = Vec::new();
    let prefix = UsernamePrefix::parse(prefix.as_deref().unwrap_or_default())
        .map_err(|e| invalid.push(("prefix", e)))
        .ok();
    let limit = limit.unwrap_or(USERS_DEFAULT_LIMIT);
    if limit == 0 {
        invalid.push(("limit", InvalidField::TooShort));
    } else if limit > USERS_MAX_LIMIT {
        invalid.push(("limit", InvalidField::TooLong));
    }
    let Some(prefix) = prefix.filter(|_| invalid.is_empty()) else {
        return Err(AuthError::Invalid(invalid).into());
    };
    let found = state
        .store
        .search_users(&prefix, limit)
        .await
        .map_err(AuthError::from)?;
    let items = found
        .into_iter()
        .map(|user| UserSummary {
            id: user.id,
            username: user.username.as_str().to_owned(),
        })
        .collect();
    Ok(web::Json(UsersPage { items }))
}
