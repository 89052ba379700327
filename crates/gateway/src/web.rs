//! The pages the gateway serves besides WebSockets: `/docs`, one interactive page over the
//! OpenAPI documents of auth and tasks-api (bundled, so it works offline; the documents are
//! fetched from `/openapi/auth.json` and `/openapi/tasks.json`, served by those services
//! on the same host in embedded mode and through the ingress in distributed mode), and the
//! web client's files at `/`.

use std::path::Path;

use actix_files::Files;
use actix_web::{HttpResponse, http::header, web};
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

/// The OpenAPI documents shown on `/docs`.
pub const OPENAPI_DOCUMENTS: [(&str, &str); 2] = [
    ("auth", "/openapi/auth.json"),
    ("tasks", "/openapi/tasks.json"),
];

/// Mounts `/docs`.
pub fn configure_docs(cfg: &mut web::ServiceConfig) {
    let urls = OPENAPI_DOCUMENTS.map(|(name, url)| Url::new(name, url));
    cfg.route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/docs/"))
                .finish()
        }),
    )
    .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(urls)));
}

/// Mounts the web client's folder at `/` (with `index.html` for `/`), when it exists. It
/// matches every path, so it must be mounted after every other route of the app.
pub fn configure_web_client(cfg: &mut web::ServiceConfig, folder: &Path) {
    if folder.is_dir() {
        cfg.service(Files::new("/", folder).index_file("index.html"));
    } else {
        tracing::info!(folder = %folder.display(), "no web client folder; / is not served");
    }
}
