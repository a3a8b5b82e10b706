//! The dashboard's files as the orders function serves them: the page and
//! everything it loads, from the API's own origin, within the weight budget,
//! revalidated with ETags. (What the page does is tested in Chromium: `cargo
//! xtask dashboard`, part of `make test`.)

use std::io::Write;

use axum::http::StatusCode;
use pipeline_api::http::dashboard::{FILES, PAGE};
use pipeline_api::state::ApiState;
use pipeline_test_support::{get, send, test_authenticator, TestDatabase};

/// The budget for the page and what it loads, compressed.
const PAGE_WEIGHT_BUDGET: usize = 200 * 1024;

async fn router() -> (TestDatabase, axum::Router) {
    let db = TestDatabase::create().await;
    let router = pipeline_api::orders::router(ApiState::new(db.store(), test_authenticator()));
    (db, router)
}

fn gzipped_len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap().len()
}

#[tokio::test]
async fn the_page_and_what_it_loads_come_from_the_api_within_the_budget() {
    let (_db, app) = router().await;
    let page = send(&app, get("/dashboard", None)).await;
    page.expect_status(StatusCode::OK);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let policy = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    // Everything the page loads is named relative to it (so it works under a
    // stage prefix) and served here.
    let mut weight = gzipped_len(&page.body);
    let mut loaded = 0;
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            // In-page links, and the empty icon (no request for /favicon.ico).
            if target.starts_with('#') || target == "data:," {
                continue;
            }
            assert!(
                target.starts_with("dashboard/"),
                "{target} is not one of the dashboard's files"
            );
            let file = send(&app, get(&format!("/{target}"), None)).await;
            file.expect_status(StatusCode::OK);
            assert!(file.header("etag").is_some(), "{target}");
            weight += gzipped_len(&file.body);
            loaded += 1;
        }
    }
    assert_eq!(
        loaded,
        FILES.len(),
        "the page loads every file the dashboard has"
    );
    assert!(weight <= PAGE_WEIGHT_BUDGET, "{weight} bytes compressed");
    // Nothing from elsewhere: no absolute URL anywhere but the SVG namespace.
    for asset in std::iter::once(&PAGE).chain(FILES.iter()) {
        let elsewhere: Vec<&str> = asset
            .body
            .match_indices("http")
            .map(|(at, _)| &asset.body[at..(at + 40).min(asset.body.len())])
            .filter(|url| !url.starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(elsewhere.is_empty(), "{} names {elsewhere:?}", asset.name);
    }
}

#[tokio::test]
async fn files_are_revalidated_with_their_etag() {
    let (_db, app) = router().await;
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/style.css"] {
        let first = send(&app, get(path, None)).await;
        first.expect_status(StatusCode::OK);
        assert_eq!(first.header("cache-control"), Some("no-cache"), "{path}");
        let tag = first.header("etag").unwrap().to_owned();
        let request = axum::http::Request::get(path)
            .header("if-none-match", &tag)
            .body(axum::body::Body::empty())
            .unwrap();
        let again = send(&app, request).await;
        again.expect_status(StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(tag.as_str()));
    }
    let js = send(&app, get("/dashboard/app.js", None)).await;
    assert_eq!(js.content_type(), "text/javascript; charset=utf-8");
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn an_unknown_file_is_a_problem_pointing_at_the_page() {
    let (_db, app) = router().await;
    let missing = send(&app, get("/dashboard/secrets.txt", None)).await;
    missing.expect_status(StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/problem+json");
    assert!(missing.json()["detail"]
        .as_str()
        .unwrap()
        .contains("/dashboard"));
}
