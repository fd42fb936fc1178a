//! The web console at `/ui`: a page of plain ES modules and one stylesheet, kept in
//! `host/console/` and compiled into the binary, so it works with no network and no build step.
//! The page loads without a token; everything it shows comes from the API with the token the
//! user signs in with. A strict Content-Security-Policy allows nothing but these files.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Only our own scripts, styles and API; no inline code, no frames, no other origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Every file of the console: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/ui.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
];

/// `/ui` (the page) and `/ui/{file}` (its scripts and stylesheet).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { asset("index.html") }))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_FRAME_OPTIONS, "DENY"),
                // Assets change with the binary: always revalidate, never serve a stale console.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_that_are_served_and_has_no_inline_code() {
        let page = ASSETS[0].2;
        for (file, _, body) in ASSETS {
            if *file != "index.html" {
                assert!(
                    page.contains(&format!("/ui/{file}"))
                        || ASSETS
                            .iter()
                            .any(|(_, _, b)| b.contains(&format!("./{file}"))),
                    "{file} is served but nothing loads it"
                );
            }
            // A strict CSP refuses inline scripts, styles and handlers: none may be written.
            assert!(!body.contains("style=\""), "{file} has an inline style");
            assert!(
                !body.contains(" onclick=\""),
                "{file} has an inline handler"
            );
            assert!(!body.contains("innerHTML"), "{file} parses strings as HTML");
        }
        assert!(
            !page.contains("<script>"),
            "index.html has an inline script"
        );
        assert!(!page.contains("<style"), "index.html has an inline style");
    }
}
