//! OpenAPI documents of the REST services (design section 2: `/openapi/<service>.json`).
//!
//! Routes are declared once, with `utoipa-actix-web`; [`document`] collects the same
//! declarations into the document, and [`serve_json`] answers its `GET` from a copy
//! rendered once (the document is a constant of the code).

use std::sync::OnceLock;

use actix_web::{App, HttpResponse};
use utoipa::openapi::OpenApi;
use utoipa_actix_web::{AppExt as _, service_config::ServiceConfig};

/// `base` (info, tags, security schemes) completed with every path `mount` registers.
pub fn document(base: OpenApi, mount: impl FnOnce(&mut ServiceConfig<'_>)) -> OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(base)
        .configure(mount)
        .split_for_parts();
    api
}

/// The answer to `GET /openapi/<service>.json`: `render()` as JSON, rendered on the first
/// request and kept in `cache` (give each document a `static` of its own).
pub fn serve_json(cache: &'static OnceLock<String>, render: fn() -> OpenApi) -> HttpResponse {
    let json = cache.get_or_init(|| render().to_json().unwrap_or_else(|_| "{}".to_owned()));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json.clone())
}
