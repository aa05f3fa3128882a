//! The review page at `/` and its assets under `/assets/…`: the page's HTML,
//! script and style, and the JavaScript client library, compiled into the
//! binary from `clients/js/` (the very source files, no build step), so a
//! bare `cargo run` serves a working page. Every response carries a strict
//! Content-Security-Policy: scripts only from this origin (no inline script),
//! sockets only to this server (`ws:`/`wss:` are named because `'self'` does
//! not cover them in every browser), no frames, no foreign fetches. Videos of
//! feedback items live wherever the product stores them, so `media-src`
//! allows any origin (`*`); they are never scripts.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;

/// The policy of the page and of every asset.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src *; connect-src 'self' ws: wss:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file: its path under `/assets/`, its media type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// An [`Asset`] of `clients/js/<path>`, embedded at compile time.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../clients/js/", $path)),
        }
    };
}

/// Everything under `/assets/`, laid out as in `clients/js/` (`page/…` the
/// page, `src/…` the library), so the page's relative imports
/// (`../src/index.js`) resolve the same in the browser and in the type check.
const ASSETS: &[Asset] = &[
    asset!("page/app.js", JS),
    asset!("page/view.js", JS),
    asset!("page/api.js", JS),
    asset!("page/style.css", "text/css; charset=utf-8"),
    asset!("src/index.js", JS),
    asset!("src/session.js", JS),
    asset!("src/outbox.js", JS),
    asset!("src/backoff.js", JS),
    asset!("src/typing.js", JS),
];

const INDEX_HTML: &str = include_str!("../../clients/js/page/index.html");

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

/// The headers every page response carries.
fn with_headers(mut response: Response, cache: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Assets are not fingerprinted, so browsers revalidate them: `no-cache`
/// keeps a stale page from meeting a newer server after an upgrade.
const CACHE: &str = "no-cache";

async fn index() -> Response {
    with_headers(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            INDEX_HTML,
        )
            .into_response(),
        CACHE,
    )
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => with_headers(
            ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
            CACHE,
        ),
        None => with_headers(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found",
            )
                .into_response(),
            CACHE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_are_unique_and_typed() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "duplicate asset {}", a.path);
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let js = a.path.ends_with(".js");
            assert_eq!(js, a.content_type == JS, "{}", a.path);
        }
    }

    /// Every file of the page and of the library is served: a new module
    /// that is not listed here would fail to load in the browser.
    #[test]
    fn every_page_and_library_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
        for dir in ["page", "src"] {
            let entries =
                std::fs::read_dir(root.join(dir)).expect("clients/js is part of the repository");
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".d.ts") || name == "index.html" {
                    continue;
                }
                let path = format!("{dir}/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{path} is not in ASSETS"
                );
            }
        }
    }

    #[test]
    fn the_policy_forbids_inline_script_and_foreign_scripts() {
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
    }
}
