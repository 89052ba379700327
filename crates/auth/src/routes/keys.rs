//! `GET /auth/jwks.json`: the public keys that verify Herald's access tokens.

use actix_web::{HttpResponse, get, http::header::CACHE_CONTROL, web};

use crate::state::AuthState;

/// The key set (JWKS, RFC 7517): the signing key and keys retired recently enough that
/// tokens they signed may still be valid. Each key has `kid`, `kty: OKP`, `crv: Ed25519`,
/// `x`, `alg: EdDSA`, `use: sig`, and Herald's `herald_retire_at` lease (Unix seconds).
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "JWKS", content_type = "application/json", body = Object))
)]
#[get("/jwks.json")]
pub async fn jwks(state: web::Data<AuthState>) -> HttpResponse {
    // Short caching: after a rotation verifiers refetch on the unknown kid anyway.
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "public, max-age=60"))
        .json(&*state.keys.published())
}
