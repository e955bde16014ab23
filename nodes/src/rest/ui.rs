//! The web UI: a single page of plain HTML, CSS and ES modules (no build step, no framework),
//! embedded in the binary and served beside the API on the same port.
//!
//! `/` is the page; `/web/<file>` its assets. The page talks only to the public REST API, so
//! whatever it shows a script can read too. Routing inside the page is by URL hash
//! (`#/jobs/<id>`), which never reaches the server and so cannot collide with an API path.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The assets under `/web/`: name, content type, text.
const ASSETS: [(&str, &str, &str); 8] = [
    ("app.js", JAVASCRIPT, include_str!("ui/app.js")),
    ("pages.js", JAVASCRIPT, include_str!("ui/pages.js")),
    ("job.js", JAVASCRIPT, include_str!("ui/job.js")),
    ("html.js", JAVASCRIPT, include_str!("ui/html.js")),
    ("graph.js", JAVASCRIPT, include_str!("ui/graph.js")),
    ("format.js", JAVASCRIPT, include_str!("ui/format.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("ui/style.css")),
    ("favicon.svg", "image/svg+xml", include_str!("ui/favicon.svg")),
];
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const INDEX: &str = include_str!("ui/index.html");

/// Whether `path` is the UI's (the page or one of its files), which needs no token: the
/// files hold no cluster data, and the page must load to ask for the token.
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path.starts_with("/web/")
}

/// `/` and `/web/{file}`; generic over the API router's state so it merges into it.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/web/{file}", get(asset))
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => page(content_type, text),
        None => {
            let body = serde_json::json!({ "errors": [format!("Not found: /web/{file}")] });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

/// The UI changes with the binary, so the browser revalidates rather than keeping an old copy.
fn page(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn fetch(uri: &str) -> (StatusCode, String, String) {
        let request = Request::builder().uri(uri).body(Body::empty()).expect("request");
        let response = router::<()>().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.expect("body");
        (status, content_type, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn the_page_and_every_asset_are_served_with_their_content_type() {
        let (status, content_type, body) = fetch("/").await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/html; charset=utf-8"));
        // Every asset the page names exists under /web/.
        for (name, expected_type, _) in ASSETS {
            if name.ends_with(".css") || name == "app.js" || name == "favicon.svg" {
                assert!(body.contains(&format!("/web/{name}")), "index.html does not load {name}");
            }
            let (status, content_type, text) = fetch(&format!("/web/{name}")).await;
            assert_eq!((status, content_type.as_str()), (StatusCode::OK, expected_type), "{name}");
            assert!(!text.is_empty(), "{name}");
        }
    }

    #[test]
    fn every_module_a_script_imports_is_served() {
        for (name, _, text) in ASSETS.iter().filter(|(name, _, _)| name.ends_with(".js")) {
            for import in text.split("from './").skip(1) {
                let module = import.split('\'').next().unwrap_or("");
                assert!(ASSETS.iter().any(|(served, _, _)| *served == module), "{name} imports {module}, not served");
            }
        }
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_404_in_flinks_error_shape() {
        let (status, content_type, body) = fetch("/web/nothing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(content_type.starts_with("application/json"), "{content_type}");
        assert!(body.contains("Not found: /web/nothing.js"), "{body}");
    }
}
