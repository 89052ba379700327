//! HTTP routes of auth (design section 5a), mounted under `/auth`, and the OpenAPI document
//! served at `/openapi/auth.json`.
//!
//! - [`accounts`]: register, me, users search;
//! - [`tokens`]: token (password grant, form or JSON), refresh (rotation), logout;
//! - [`keys`]: the public JWKS.
//!
//! Routes are declared once, with `utoipa-actix-web`, and the same declaration feeds both
//! the actix-web service and the OpenAPI document.

pub mod accounts;
pub mod keys;
pub mod tokens;

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use herald_service::error::{form_config, json_config, query_config};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme},
};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AuthState;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi/auth.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald auth",
        description = "Accounts and tokens. Access tokens are EdDSA JWTs (15 minutes by default) \
                       verified by every Herald service with the keys at /auth/jwks.json; refresh \
                       tokens rotate on every use.",
    ),
    modifiers(&BearerSecurity),
    tags((name = "auth", description = "Accounts and tokens"))
)]
struct ApiDoc;

/// Declares the bearer (OAuth2 password flow) security scheme the protected routes use.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/auth/token",
                Scopes::new(),
            ))])),
        );
    }
}

/// Registers the `/auth` scope (with its state when serving) on a utoipa-aware config.
fn mount(cfg: &mut ServiceConfig<'_>, state: Option<&AuthState>) {
    let mut scope = utoipa_actix_web::scope("/auth");
    if let Some(state) = state {
        scope = scope
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(state.verifier.clone()))
            .app_data(web::Data::new(state.trusted_proxies.clone()))
            .app_data(json_config(state.body_limit))
            .app_data(form_config(state.body_limit))
            .app_data(query_config());
    }
    cfg.service(
        scope
            .service(accounts::register)
            .service(accounts::me)
            .service(accounts::users)
            .service(tokens::token)
            .service(tokens::refresh)
            .service(tokens::logout)
            .service(keys::jwks),
    );
}

/// Mounts auth's routes (`/auth/...` and `/openapi/auth.json`) on any actix-web app: its own
/// server, or the shared app of the embedded binary. State, extractor limits and error
/// handlers are scoped to `/auth`, so they cannot clash with other services' on one app.
pub fn configure(cfg: &mut web::ServiceConfig, state: &AuthState) {
    mount(&mut ServiceConfig::new(cfg), Some(state));
    cfg.route(OPENAPI_PATH, web::get().to(openapi_json));
}

/// The OpenAPI 3 document of auth.
pub fn openapi() -> utoipa::openapi::OpenApi {
    herald_service::openapi::document(ApiDoc::openapi(), |cfg| mount(cfg, None))
}

/// `GET /openapi/auth.json`. The document is a constant of the code, rendered once.
async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    herald_service::openapi::serve_json(&DOCUMENT, openapi)
}
