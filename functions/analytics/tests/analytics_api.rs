//! The analytics routes against PostgreSQL holding the sample data, loaded
//! through the real ingest path (LocalStack S3 -> ingest -> PostgreSQL).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use pipeline_api::analytics::AnalyticsState;
use pipeline_test_support::{get, send, test_authenticator, test_token, TestPipeline};
use serde_json::{json, Value};

fn router(pipeline: &TestPipeline) -> Router {
    pipeline_api::analytics::router(AnalyticsState::new(
        pipeline.db.store(),
        test_authenticator(),
        pipeline.bucket.client.clone(),
        pipeline.bucket.name.clone(),
    ))
}

fn token() -> String {
    test_token("analytics:read")
}

#[tokio::test]
async fn top_customers_match_the_sample_data() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    // data/: customer 11 and 12 hold 4 tickets each (tie: lower id first),
    // 10 holds 3 and 13 holds 1; duplicates and unsold barcodes do not count.
    let response = send(&app, get("/analytics/top-customers", Some(&token()))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!([
            {"customer_id": 11, "tickets": 4},
            {"customer_id": 12, "tickets": 4},
            {"customer_id": 10, "tickets": 3},
            {"customer_id": 13, "tickets": 1}
        ])
    );
    let response = send(
        &app,
        get("/analytics/top-customers?limit=2", Some(&token())),
    )
    .await;
    assert_eq!(response.json().as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bad_limit_is_a_problem_naming_the_parameter() {
    let pipeline = TestPipeline::create().await;
    let app = router(&pipeline);
    for uri in [
        "/analytics/top-customers",
        "/analytics/unused-barcodes",
        "/ingestions",
    ] {
        // limit=0 asks /analytics/unused-barcodes for the count alone.
        let zero_ok = uri == "/analytics/unused-barcodes";
        for bad in ["0", "1001", "ten", "-1"]
            .into_iter()
            .filter(|b| !(zero_ok && *b == "0"))
        {
            let response = send(&app, get(&format!("{uri}?limit={bad}"), Some(&token()))).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{uri} {bad}");
            assert_eq!(response.content_type(), "application/problem+json");
            assert!(
                response.json()["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("limit:"),
                "{}",
                response.json()
            );
        }
    }
    let response = send(&app, get("/ingestions?status=done", Some(&token()))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("status:"));
    let response = send(&app, get("/ingestions/abc", Some(&token()))).await;
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("id:"));
    let response = send(&app, get("/ingestions/424242", Some(&token()))).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_summary_comes_from_the_aggregates() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let response = send(&app, get("/analytics/summary", Some(&token()))).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    // data/: 8 orders; customers 10-13 hold tickets (14 and 15 none: their
    // barcodes are duplicates or missing); 12 tickets; 3 unused barcodes.
    assert_eq!(body["orders"], 8);
    assert_eq!(body["customers"], 4);
    assert_eq!(body["tickets"], 12);
    assert_eq!(body["unused_barcodes"], 3);
    assert_eq!(
        body["barcodes"],
        pipeline.scalar("SELECT count(*) FROM barcodes").await
    );
    assert_eq!(body["rejected_rows"], pipeline.stat("rejected_rows").await);
    assert_eq!(body["last_ingestion"]["key"], "incoming/barcodes.csv");
    assert_eq!(body["last_ingestion"]["status"], "loaded");
    assert!(body["last_ingestion"]["finished_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}

#[tokio::test]
async fn unused_barcodes_page_through_every_code_once() {
    let pipeline = TestPipeline::with_sample_data(25).await;
    let app = router(&pipeline);
    let mut seen = Vec::new();
    let mut uri = "/analytics/unused-barcodes?limit=10".to_owned();
    loop {
        let body = send(&app, get(&uri, Some(&token()))).await.json();
        assert_eq!(body["count"], 28);
        seen.extend(
            body["barcodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/analytics/unused-barcodes?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 28);
    let count_only = send(
        &app,
        get("/analytics/unused-barcodes?limit=0", Some(&token())),
    )
    .await
    .json();
    assert_eq!(
        count_only,
        json!({"count": 28, "barcodes": [], "next_cursor": null})
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in code order, no repeats");
    assert_eq!(seen[..3], ["77777777777", "77777777784", "77777777791"]);
}

#[tokio::test]
async fn an_unchanged_etag_gets_304_until_the_data_changes() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    for uri in [
        "/analytics/summary",
        "/analytics/top-customers",
        "/analytics/unused-barcodes",
    ] {
        let first = send(&app, get(uri, Some(&token()))).await;
        assert_eq!(first.status, StatusCode::OK);
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert_eq!(first.header("cache-control"), Some("private, no-cache"));
        let conditional = |etag: &str| {
            Request::get(uri)
                .header("authorization", format!("Bearer {}", token()))
                .header("if-none-match", etag)
                .body(Body::empty())
                .unwrap()
        };
        let again = send(&app, conditional(&etag)).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let other = send(&app, conditional("\"data-999999\"")).await;
        assert_eq!(other.status, StatusCode::OK);
    }
    // A committed ingest moves the data version: the old tag no longer matches.
    let before = send(&app, get("/analytics/summary", Some(&token()))).await;
    pipeline
        .bucket
        .put("incoming/o2.csv", "order_id,customer_id\n50,77\n")
        .await;
    pipeline.ingest_key("incoming/o2.csv").await;
    let response = send(
        &app,
        Request::get("/analytics/summary")
            .header("authorization", format!("Bearer {}", token()))
            .header("if-none-match", before.header("etag").unwrap())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_ne!(response.header("etag"), before.header("etag"));
    assert_eq!(response.json()["orders"], 9);
}

async fn download(url: &str) -> (u16, String) {
    assert!(
        url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"),
        "{url}"
    );
    let response = reqwest::get(url).await.expect("download");
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_ledger_links_to_each_report_and_rejects_file() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let body = send(&app, get("/ingestions", Some(&token()))).await.json();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    // Newest first.
    assert_eq!(items[0]["key"], "incoming/barcodes.csv");
    assert_eq!(items[1]["key"], "incoming/orders.csv");
    let barcodes = &items[0];
    assert_eq!(barcodes["status"], "loaded");
    let (status, report) = download(barcodes["report_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&report).expect("the report is JSON");
    assert!(report.is_object());
    let (status, rejects) = download(
        barcodes["rejects_url"]
            .as_str()
            .expect("data/barcodes.csv has rejected rows"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(rejects.contains("22222222222"), "{rejects}");

    // Paging and filtering.
    let first = send(&app, get("/ingestions?limit=1", Some(&token())))
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = send(
        &app,
        get(
            &format!("/ingestions?limit=1&cursor={cursor}"),
            Some(&token()),
        ),
    )
    .await
    .json();
    assert_eq!(second["items"][0]["key"], "incoming/orders.csv");
    assert_eq!(second["next_cursor"], Value::Null);
    let rejected = send(&app, get("/ingestions?status=rejected", Some(&token())))
        .await
        .json();
    assert_eq!(rejected["items"], json!([]));

    let id = barcodes["id"].as_i64().unwrap();
    let one = send(&app, get(&format!("/ingestions/{id}"), Some(&token())))
        .await
        .json();
    assert_eq!(one["key"], "incoming/barcodes.csv");
    assert!(one["report_url"].is_string());
}

#[tokio::test]
async fn an_ingestions_report_is_served_as_the_ingest_wrote_it() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let ledger = send(&app, get("/ingestions", Some(&token()))).await.json();
    let barcodes = &ledger["items"][0];
    let id = barcodes["id"].as_i64().unwrap();
    let response = send(
        &app,
        get(&format!("/ingestions/{id}/report"), Some(&token())),
    )
    .await;
    response.expect_status(StatusCode::OK);
    assert_eq!(response.content_type(), "application/json");
    let served = response.json();
    let (_, stored) = download(barcodes["report_url"].as_str().unwrap()).await;
    assert_eq!(served, serde_json::from_str::<Value>(&stored).unwrap());
    assert_eq!(served["key"], "incoming/barcodes.csv");
    let problem = &served["problems"][0];
    for field in ["line", "field", "value", "reason"] {
        assert!(!problem[field].is_null(), "{field} in {problem}");
    }

    let missing = send(&app, get("/ingestions/424242/report", Some(&token()))).await;
    missing.expect_status(StatusCode::NOT_FOUND);
    // The ledger row stays; the file is gone from the bucket.
    let key = barcodes["report_key"].as_str().unwrap().to_owned();
    pipeline
        .bucket
        .client
        .delete_object()
        .bucket(&pipeline.bucket.name)
        .key(&key)
        .send()
        .await
        .unwrap();
    let gone = send(
        &app,
        get(&format!("/ingestions/{id}/report"), Some(&token())),
    )
    .await;
    gone.expect_status(StatusCode::NOT_FOUND);
    assert!(gone.json()["detail"].as_str().unwrap().contains(&key));
}

#[tokio::test]
async fn the_export_redirects_to_the_current_processed_orders() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let app = router(&pipeline);
    let response = send(&app, get("/exports/processed-orders.csv", Some(&token()))).await;
    assert_eq!(response.status, StatusCode::FOUND);
    let etag = response.header("etag").unwrap().to_owned();
    let (status, csv) = download(response.header("location").unwrap()).await;
    assert_eq!(status, 200);
    assert!(csv.lines().any(|l| l.starts_with("10,1,")), "{csv}");

    let unchanged = send(
        &app,
        Request::get("/exports/processed-orders.csv")
            .header("authorization", format!("Bearer {}", token()))
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn health_checks_the_database() {
    let pipeline = TestPipeline::create().await;
    let app = router(&pipeline);
    let response = send(&app, get("/health", None)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["database"], "ok");

    pipeline.db.pool.close();
    let response = send(&app, get("/health", None)).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.content_type(), "application/problem+json");
}

/// The analytics function connects as its own database role
/// (migrations/V4__roles.sql), which may read and record what it published
/// but change no schema: every route works under it, including the
/// republish of an export a sale (made as the orders role) left stale.
#[tokio::test]
async fn the_analytics_routes_work_as_the_analytics_role() {
    use order_pipeline::postgres::roles::DatabaseRole;
    let pipeline = TestPipeline::with_sample_data(3).await;
    let sales =
        order_pipeline::postgres::PgStore::new(pipeline.db.pool_as(DatabaseRole::Orders).await);
    let sold = sales
        .sell(13, 1, None)
        .await
        .expect("a sale as the orders role");
    let order_id = match sold {
        order_pipeline::postgres::sales::SaleOutcome::Sold(order) => order.order_id,
        other => panic!("not sold: {other:?}"),
    };
    let app = pipeline_api::analytics::router(AnalyticsState::new(
        pipeline.db.store_as(DatabaseRole::Analytics).await,
        test_authenticator(),
        pipeline.bucket.client.clone(),
        pipeline.bucket.name.clone(),
    ));
    for path in [
        "/health",
        "/analytics/top-customers?limit=5",
        "/analytics/summary",
        "/analytics/unused-barcodes?limit=10",
        "/ingestions",
        "/ingestions/1",
    ] {
        let response = send(&app, get(path, Some(&token()))).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {:?}",
            response.body
        );
    }
    let export = send(&app, get("/exports/processed-orders.csv", Some(&token()))).await;
    assert_eq!(export.status, StatusCode::FOUND);
    let (status, csv) = download(export.header("location").unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("13,{order_id},"))),
        "the republished export shows the sale: {csv}"
    );
    assert_eq!(
        pipeline
            .scalar("SELECT data_version FROM published_outputs")
            .await,
        pipeline.stat("output_version").await
    );
}

fn post_json(uri: &str, token: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn an_upload_is_a_presigned_put_of_that_size_to_incoming() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token("files:write");
    let csv = "order_id,customer_id\n901,9\n";
    let response = send(
        &app,
        post_json(
            "/uploads",
            &token,
            json!({"name": "late-orders.csv", "size": csv.len()}),
        ),
    )
    .await;
    response.expect_status(StatusCode::CREATED);
    let upload = response.json();
    assert_eq!(upload["key"], "incoming/late-orders.csv");
    assert_eq!(upload["method"], "PUT");
    let url = upload["url"].as_str().unwrap();
    // The size is signed: S3 refuses a body of another length.
    let signed = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
        .expect("a SigV4 presigned URL");
    assert!(
        signed.contains("content-length") && signed.contains("content-type"),
        "{signed}"
    );
    let mut put = reqwest::Client::new().put(url).body(csv);
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let answer = put.send().await.unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    assert!(answer.headers().contains_key("x-amz-version-id"));
    let stored = pipeline
        .bucket
        .client
        .get_object()
        .bucket(&pipeline.bucket.name)
        .key("incoming/late-orders.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.content_type(), Some("text/csv"));
    let body = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], csv.as_bytes());
}

#[tokio::test]
async fn an_upload_is_refused_for_names_and_sizes_the_pipeline_would_not_take() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token("files:write");
    for (body, field) in [
        (json!({"name": "../orders.csv", "size": 10}), "name"),
        (json!({"name": "orders.txt", "size": 10}), "name"),
        (json!({"name": "reports/x.csv", "size": 10}), "name"),
        (json!({"name": "orders.csv", "size": 0}), "size"),
        (json!({"name": "orders.csv", "size": -1}), "size"),
        (
            json!({"name": "orders.csv", "size": (1_i64 << 30) + 1}),
            "size",
        ),
    ] {
        let response = send(&app, post_json("/uploads", &token, body.clone())).await;
        response.expect_status(StatusCode::BAD_REQUEST);
        let detail = response.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(field), "{body}: {detail}");
    }
}

#[tokio::test]
async fn the_ledger_lists_the_versions_of_one_key() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let page = send(
        &app,
        get("/ingestions?key=incoming/orders.csv", Some(&token())),
    )
    .await
    .json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["key"], "incoming/orders.csv");
    assert!(items[0]["version_id"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    let none = send(
        &app,
        get("/ingestions?key=incoming/other.csv", Some(&token())),
    )
    .await
    .json();
    assert_eq!(none["items"], json!([]));
    // At most S3's 1024, as the document declares.
    let longest = "k".repeat(1024);
    send(
        &app,
        get(&format!("/ingestions?key={longest}"), Some(&token())),
    )
    .await
    .expect_status(StatusCode::OK);
    let too_long = send(
        &app,
        get(&format!("/ingestions?key={longest}k"), Some(&token())),
    )
    .await;
    too_long.expect_status(StatusCode::BAD_REQUEST);
    assert!(too_long.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("key"));
}

#[tokio::test]
async fn the_problems_are_listed_with_where_each_copy_and_winner_is() {
    let pipeline = TestPipeline::with_every_problem(0).await;
    let app = router(&pipeline);
    let list = |path: &str| {
        let app = app.clone();
        let path = path.to_owned();
        async move {
            let response = send(&app, get(&path, Some(&token()))).await;
            response.expect_status(StatusCode::OK);
            response.json()
        }
    };

    // Order 7's one barcode is a rejected copy; order 8 has none.
    let no_barcodes = list("/problems/orders-without-barcodes").await;
    assert_eq!(no_barcodes["count"], 3);
    let ids: Vec<&Value> = no_barcodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["order_id"])
        .collect();
    assert_eq!(ids, [&json!(7), &json!(8), &json!(600)]);
    assert_eq!(
        no_barcodes["items"][2]["source"]["file"],
        "incoming/conflicts.csv"
    );
    assert_eq!(no_barcodes["items"][2]["source"]["line"], 4);

    let waiting = list("/problems/waiting-barcodes").await;
    assert_eq!(waiting["count"], 2);
    assert_eq!(waiting["items"][0]["barcode"], "88888888801");
    assert_eq!(waiting["items"][0]["order_id"], 500);
    assert_eq!(
        waiting["items"][0]["source"]["file"],
        "incoming/waiting.csv"
    );
    assert_eq!(waiting["items"][0]["source"]["line"], 2);

    // data/barcodes.csv repeats 11111111111 (line 13, first on line 2) and
    // 22222222222 (line 15, first on line 4).
    let rejected = list("/problems/rejected-barcodes").await;
    assert_eq!(rejected["count"], 2);
    let first = &rejected["items"][0];
    assert_eq!(first["barcode"], "11111111111");
    assert_eq!(first["kind"], "repeated_barcode");
    assert_eq!(
        first["copy"],
        json!({"file": "incoming/barcodes.csv", "line": 13})
    );
    assert_eq!(
        first["winner"],
        json!({"file": "incoming/barcodes.csv", "line": 2})
    );
    assert!(
        first["reason"].as_str().unwrap().contains("line 2"),
        "{first}"
    );

    // incoming/conflicts.csv gives orders 1 and 2 (data/orders.csv lines 2
    // and 3, customers 10 and 11) to customers 99 and 98.
    let conflicts = list("/problems/order-conflicts").await;
    assert_eq!(conflicts["count"], 2);
    let first = &conflicts["items"][0];
    assert_eq!(first["order_id"], 1);
    assert_eq!(first["customer_id"], "99");
    assert_eq!(first["winner_customer_id"], 10);
    assert_eq!(first["kind"], "order_owned");
    assert_eq!(
        first["copy"],
        json!({"file": "incoming/conflicts.csv", "line": 2})
    );
    assert_eq!(
        first["winner"],
        json!({"file": "incoming/orders.csv", "line": 2})
    );

    // Paged, and the count alone with limit=0.
    let page = list("/problems/rejected-barcodes?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = list(&format!(
        "/problems/rejected-barcodes?limit=1&cursor={next}"
    ))
    .await;
    assert_eq!(rest["items"][0]["barcode"], "22222222222");
    assert_eq!(rest["next_cursor"], Value::Null);
    let count = list("/problems/waiting-barcodes?limit=0").await;
    assert_eq!(
        (count["count"].clone(), count["items"].clone()),
        (json!(2), json!([]))
    );
}

#[tokio::test]
async fn waiting_barcodes_and_orders_without_barcodes_resolve_when_the_rest_arrives() {
    let pipeline = TestPipeline::with_every_problem(0).await;
    let app = router(&pipeline);
    let count = |path: &'static str| {
        let app = app.clone();
        async move { send(&app, get(path, Some(&token()))).await.json()["count"].clone() }
    };
    let before = send(&app, get("/problems/waiting-barcodes", Some(&token()))).await;
    let tag = before.header("etag").unwrap().to_owned();
    pipeline
        .bucket
        .put("incoming/late.csv", "order_id,customer_id\n500,30\n")
        .await;
    pipeline.ingest_key("incoming/late.csv").await;
    pipeline
        .bucket
        .put(
            "incoming/late-barcodes.csv",
            "barcode,order_id\n88888888803,600\n",
        )
        .await;
    pipeline.ingest_key("incoming/late-barcodes.csv").await;
    assert_eq!(count("/problems/waiting-barcodes").await, 1);
    assert_eq!(count("/problems/orders-without-barcodes").await, 2);
    let after = send(&app, get("/problems/waiting-barcodes", Some(&token()))).await;
    assert_ne!(after.header("etag"), Some(tag.as_str()));
}
