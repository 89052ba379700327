//! The Origin allow-list (`HERALD_ALLOWED_ORIGINS`), against cross-site WebSocket hijacking.
//!
//! Browsers attach cookies and the page's `Origin` to WebSocket handshakes, and the
//! same-origin policy does not apply to them, so a page on another site could open a socket
//! as the visitor. A handshake is accepted when it has no `Origin` (non-browser clients such
//! as SDKs in Node, `websocat`, `curl`), when its origin is listed (or the list holds `*`),
//! or, with an empty list, when the origin names the host the request was sent to.

use actix_web::HttpRequest;
use actix_web::http::header;

/// Which origins may open WebSockets.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    allowed: Vec<String>,
}

impl Origins {
    /// The policy for the configured list (`scheme://host[:port]` entries, or `*`).
    pub fn new(allowed: &[String]) -> Self {
        let any = allowed.iter().any(|origin| origin.trim() == "*");
        let allowed = allowed
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|origin| !origin.is_empty() && origin != "*")
            .collect();
        Self { any, allowed }
    }

    /// Whether the handshake `req` may proceed.
    pub fn allows(&self, req: &HttpRequest) -> bool {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        if !self.allowed.is_empty() {
            return false;
        }
        let Some((_, host)) = origin.split_once("://") else {
            return false;
        };
        let info = req.connection_info();
        host == info.host().to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use actix_web::test::TestRequest;

    use super::*;

    fn request(origin: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().insert_header(("Host", "chat.example:8080"));
        if let Some(origin) = origin {
            req = req.insert_header(("Origin", origin));
        }
        req.to_http_request()
    }

    #[test]
    fn without_a_list_only_the_same_host_and_non_browsers_pass() {
        let origins = Origins::new(&[]);
        assert!(origins.allows(&request(None)));
        assert!(origins.allows(&request(Some("http://chat.example:8080"))));
        assert!(origins.allows(&request(Some("https://CHAT.example:8080"))));
        assert!(!origins.allows(&request(Some("https://evil.example"))));
        assert!(!origins.allows(&request(Some("null"))));
    }

    #[test]
    fn a_list_replaces_the_same_host_rule_and_a_star_allows_all() {
        let origins = Origins::new(&["https://app.example/".to_owned()]);
        assert!(origins.allows(&request(Some("https://app.example"))));
        assert!(!origins.allows(&request(Some("http://chat.example:8080"))));
        let any = Origins::new(&["*".to_owned()]);
        assert!(any.allows(&request(Some("https://evil.example"))));
    }
}
