//! The pages the gateway serves besides WebSockets: `/docs`, one interactive page over the
//! OpenAPI documents of auth and tasks-api (bundled, so it works offline; the documents are
//! fetched from `/openapi/auth.json` and `/openapi/tasks.json`, served by those services
//! on the same host in embedded mode and through the ingress in distributed mode), and the
//! web client's files at `/`.
//!
//! The web client (`web/dist`, built by `make web`) is compiled into the binary, so `herald`
//! serves it from any working directory; `HERALD_WEB_DIR`, when it names an existing folder,
//! serves that folder instead (development). A build made before the client was built carries
//! none, and `/` is then not served.

use std::path::Path;

use actix_files::Files;
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use rust_embed::Embed;
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

/// The web client's files as built when this binary was compiled (release builds embed them;
/// debug builds read the same folder from disk).
#[derive(Embed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct EmbeddedClient;

/// Whether the web client can be served: `folder` exists, or the binary carries the client.
pub fn has_web_client(folder: &Path) -> bool {
    folder.join("index.html").is_file() || EmbeddedClient::get("index.html").is_some()
}

/// Mounts the web client at `/` (with `index.html` for `/`): the folder `folder` when it
/// exists, else the client compiled into the binary. It matches every path, so it must be
/// mounted after every other route of the app.
pub fn configure_web_client(cfg: &mut web::ServiceConfig, folder: &Path) {
    if folder.is_dir() {
        cfg.service(Files::new("/", folder).index_file("index.html"));
    } else if EmbeddedClient::get("index.html").is_some() {
        cfg.route("/{path:.*}", web::get().to(embedded_file));
    } else {
        tracing::info!(folder = %folder.display(), "no web client (not built, no folder); / is not served");
    }
}

/// One file of the embedded client, revalidated by its content hash.
async fn embedded_file(request: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = match path.as_str() {
        "" => "index.html",
        path => path,
    };
    let Some(file) = EmbeddedClient::get(path) else {
        return HttpResponse::NotFound().finish();
    };
    let hash: String = file
        .metadata
        .sha256_hash()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let etag = format!("\"{hash}\"");
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes());
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if unchanged {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, file.metadata.mimetype()))
        .body(file.data.into_owned())
}
