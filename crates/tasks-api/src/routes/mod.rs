//! HTTP routes of tasks-api (design section 5a), mounted under `/tasks`, and the OpenAPI
//! document served at `/openapi/tasks.json`.
//!
//! Routes are declared once, with `utoipa-actix-web`, and the same declaration feeds both
//! the actix-web service and the OpenAPI document.

pub mod schema;
pub mod tasks;

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use herald_service::error::{json_config, path_config, query_config};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::TasksApi;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi/tasks.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald tasks",
        description = "The task board. Every change is published as a domain event (task.created, \
                       task.updated, task.assigned, task.deleted) through a transactional outbox; \
                       the notifier turns them into publications in the `tasks` channel and in \
                       the assignee's `notifications#<user id>` channel. Tokens come from \
                       /auth/token.",
    ),
    modifiers(&BearerSecurity),
    tags((name = "tasks", description = "Create, list, read, change and delete tasks"))
)]
struct ApiDoc;

/// Declares the bearer (JWT) security scheme every route uses.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Registers the `/tasks` scope (with its state when serving) on a utoipa-aware config.
fn mount(cfg: &mut ServiceConfig<'_>, api: Option<&TasksApi>) {
    let mut scope = utoipa_actix_web::scope("/tasks");
    if let Some(api) = api {
        scope = scope
            .app_data(web::Data::new(api.clone()))
            .app_data(web::Data::new(api.verifier.clone()))
            .app_data(json_config(api.settings.body_limit))
            .app_data(query_config())
            .app_data(path_config());
    }
    cfg.service(
        scope
            .service(tasks::create)
            .service(tasks::list)
            .service(tasks::get)
            .service(tasks::update)
            .service(tasks::delete),
    );
}

/// Mounts tasks-api's routes (`/tasks`, `/tasks/{id}` and `/openapi/tasks.json`) on any
/// actix-web app: its own server, or the shared app of the embedded binary. State,
/// extractor limits and error handlers are scoped to `/tasks`, so they cannot clash with
/// other services' on one app.
pub fn configure(cfg: &mut web::ServiceConfig, api: &TasksApi) {
    mount(&mut ServiceConfig::new(cfg), Some(api));
    cfg.route(OPENAPI_PATH, web::get().to(openapi_json));
}

/// The OpenAPI 3 document of tasks-api.
pub fn openapi() -> utoipa::openapi::OpenApi {
    herald_service::openapi::document(ApiDoc::openapi(), |cfg| mount(cfg, None))
}

/// `GET /openapi/tasks.json`. The document is a constant of the code, rendered once.
async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    herald_service::openapi::serve_json(&DOCUMENT, openapi)
}
