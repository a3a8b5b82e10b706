//! The local world (`make up`, tools/pipeline-local/src/resources.rs) and the AWS
//! one (infra/template.yaml) have the same shape: the notification's prefix,
//! suffix and event, the queue and dead-letter queue names, the visibility
//! timeout, the maximum receives, the dead-letter retention, the bucket's
//! versioning and its CORS rule for the dashboard's uploads, and the batch
//! size the function is handed (and the ingest
//! time reserve fits its timeout). Change one side and this test says which
//! value to change on the other.

use aws_sdk_s3::types::Event;
use infracheck::template::{get_att_target, ref_target, sub_template, Template};
use order_pipeline::config::{INCOMING_PREFIX, INCOMING_SUFFIX};
use pipeline_local::forwarder;
use pipeline_local::resources::{self, QueueSettings, ResourceNames};
use pipeline_test_support::{localstack_config, TestBucket};
use serde_json::Value;

fn template() -> Template {
    Template::load_project(env!("CARGO_MANIFEST_DIR")).expect("infra/template.yaml")
}

/// The one resource of `kind`, by logical id.
fn only(template: &Template, kind: &str) -> (String, Value) {
    let resource = template.only_resource_of_kind(kind).unwrap();
    (resource.logical_id.to_owned(), resource.properties.clone())
}

fn number(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"))
}

/// The ingest queue: the one the bucket notifies.
fn notified_queue(template: &Template) -> (String, Value) {
    let (_, bucket) = only(template, "AWS::S3::Bucket");
    let configurations = bucket["NotificationConfiguration"]["QueueConfigurations"]
        .as_array()
        .expect("the bucket notifies a queue");
    assert_eq!(
        configurations.len(),
        1,
        "one queue notification, as locally"
    );
    let (queue_id, _) =
        get_att_target(&configurations[0]["Queue"]).expect("Queue: !GetAtt <queue>.Arn");
    let queue = template
        .resource(queue_id)
        .expect("the notified queue is in the template");
    (queue_id.to_owned(), queue.properties.clone())
}

#[test]
fn the_notification_filter_matches_the_local_one() {
    let template = template();
    let (_, bucket) = only(&template, "AWS::S3::Bucket");
    let notification = &bucket["NotificationConfiguration"]["QueueConfigurations"][0];
    assert_eq!(notification["Event"], Event::S3ObjectCreated.as_str());
    let rules = notification["Filter"]["S3Key"]["Rules"]
        .as_array()
        .expect("S3Key rules");
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r["Name"].as_str().map(str::to_ascii_lowercase).as_deref() == Some(name))
            .map(|r| r["Value"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        rule("prefix").as_deref(),
        Some(INCOMING_PREFIX),
        "the prefix filter"
    );
    assert_eq!(
        rule("suffix").as_deref(),
        Some(INCOMING_SUFFIX),
        "the suffix filter"
    );
}

#[test]
fn queues_are_named_after_the_bucket_as_locally() {
    let template = template();
    let (_, bucket) = only(&template, "AWS::S3::Bucket");
    let bucket_name = sub_template(&bucket["BucketName"]).expect("BucketName: !Sub ...");
    let local = ResourceNames::for_bucket(bucket_name);
    let (_, queue) = notified_queue(&template);
    assert_eq!(
        sub_template(&queue["QueueName"]),
        Some(local.queue.as_str())
    );
    let (dlq_id, _) =
        get_att_target(&queue["RedrivePolicy"]["deadLetterTargetArn"]).expect("a DLQ");
    let dlq = template.resource(dlq_id).unwrap().properties;
    assert_eq!(
        sub_template(&dlq["QueueName"]),
        Some(local.dead_letter_queue.as_str())
    );
}

#[test]
fn queue_settings_match_the_local_ones() {
    let template = template();
    let local = QueueSettings::default();
    let (_, queue) = notified_queue(&template);
    assert_eq!(
        number(&queue["VisibilityTimeout"], "VisibilityTimeout"),
        u64::from(local.visibility_timeout_secs),
        "the visibility timeout (QueueSettings::default in tools/pipeline-local/src/resources.rs)"
    );
    assert_eq!(
        number(
            &queue["RedrivePolicy"]["maxReceiveCount"],
            "maxReceiveCount"
        ),
        u64::from(local.max_receive_count),
        "the maximum receives before dead-lettering"
    );
    let (dlq_id, _) = get_att_target(&queue["RedrivePolicy"]["deadLetterTargetArn"]).unwrap();
    let dlq = template.resource(dlq_id).unwrap().properties;
    assert_eq!(
        number(&dlq["MessageRetentionPeriod"], "MessageRetentionPeriod"),
        u64::from(local.dead_letter_retention_secs),
        "the dead-letter queue's retention"
    );
    assert!(
        number(&queue["MaximumMessageSize"], "MaximumMessageSize") >= 64 * 1024,
        "S3 notifications need messages of at least 64 KB"
    );
}

/// The one function consuming the ingest queue, and its SQS event.
fn ingest_queue_consumer(template: &Template) -> (infracheck::template::Resource<'_>, Value) {
    let (queue_id, _) = notified_queue(template);
    let consumers: Vec<_> = template
        .resources_of_kind("AWS::Serverless::Function")
        .filter_map(|function| {
            let events = function.properties["Events"].as_object()?;
            let event = events.values().find(|e| {
                e["Type"] == "SQS"
                    && get_att_target(&e["Properties"]["Queue"]).map(|(id, _)| id)
                        == Some(queue_id.as_str())
            })?;
            Some((function, event.clone()))
        })
        .collect();
    assert_eq!(
        consumers.len(),
        1,
        "exactly one function consumes {queue_id}"
    );
    consumers.into_iter().next().unwrap()
}

#[test]
fn the_ingest_function_consumes_that_queue_within_its_visibility_timeout() {
    let template = template();
    let (_, queue) = notified_queue(&template);
    let (function, event) = &ingest_queue_consumer(&template);
    let timeout = number(
        template
            .function_property(function, "Timeout")
            .expect("a Timeout"),
        "Timeout",
    );
    let visibility = number(&queue["VisibilityTimeout"], "VisibilityTimeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility timeout {visibility} s must be at least 6x the function's {timeout} s"
    );
    assert_eq!(
        event["Properties"]["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"]),
        "the handler answers batchItemFailures, as the local forwarder expects"
    );
}

#[test]
fn the_local_forwarder_takes_batches_of_the_templates_size() {
    let template = template();
    let (_, event) = ingest_queue_consumer(&template);
    let batch_size = &event["Properties"]["BatchSize"];
    // A number, or a parameter whose default is the deployed size.
    let batch_size = match ref_target(batch_size) {
        Some(parameter) => &template.root["Parameters"][parameter]["Default"],
        None => batch_size,
    };
    assert_eq!(
        number(batch_size, "BatchSize"),
        forwarder::BATCH_SIZE as u64,
        "the ingest queue's BatchSize (forwarder::BATCH_SIZE in tools/pipeline-local/src/forwarder.rs)"
    );
}

#[test]
fn the_ingest_time_reserve_leaves_room_in_the_function_timeout() {
    let template = template();
    let (function, _) = ingest_queue_consumer(&template);
    let timeout = number(
        template
            .function_property(&function, "Timeout")
            .expect("a Timeout"),
        "Timeout",
    );
    let reserve = ingest::budget::DEFAULT_RESERVE.as_secs();
    assert!(
        reserve < timeout,
        "the ingest time reserve ({reserve} s, ingest::budget::DEFAULT_RESERVE) must be below \
         the function's {timeout} s timeout, or no file but the first of a batch ever starts"
    );
}

/// A route pattern's segments: `{name}` matches one segment, `{*rest}` (axum)
/// and `{name+}` (API Gateway) one or more.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

fn segments(pattern: &str) -> Vec<Segment> {
    pattern
        .trim_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.starts_with('*') || name.ends_with('+') => Segment::Rest,
                Some(_) => Segment::One,
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

/// Whether some path matches both patterns.
fn overlap(a: &[Segment], b: &[Segment]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (Some(Segment::Rest), Some(_)) | (Some(_), Some(Segment::Rest)) => true,
        (None, _) | (_, None) => false,
        (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => false,
        _ => overlap(&a[1..], &b[1..]),
    }
}

#[test]
fn http_routes_go_to_the_same_function_as_locally() {
    let template = template();
    let routes: Vec<(String, String)> = template
        .resources_of_kind("AWS::Serverless::Function")
        .flat_map(|function| {
            let binary = template.root["Resources"][function.logical_id]["Metadata"]
                ["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no BuildProperties.Binary", function.logical_id))
                .to_owned();
            function.properties["Events"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, e)| e["Type"] == "HttpApi")
                .map(|(_, e)| {
                    (
                        e["Properties"]["Path"].as_str().unwrap().to_owned(),
                        binary.clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
            .expect("the workspace Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("Cargo.toml parses");
    let local = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router]");
    assert!(!local.is_empty());
    for (local_path, local_function) in local {
        let local_function = local_function.as_str().unwrap();
        let matching: Vec<_> = routes
            .iter()
            .filter(|(path, _)| overlap(&segments(local_path), &segments(path)))
            .collect();
        assert!(
            !matching.is_empty(),
            "{local_path} is served locally by {local_function} but has no route in infra/template.yaml"
        );
        for (path, function) in matching {
            assert_eq!(
                function, local_function,
                "{path} goes to {function} in AWS but {local_path} to {local_function} locally"
            );
        }
    }
}

#[test]
fn route_patterns_overlap_as_routers_match_them() {
    let s = segments;
    assert!(overlap(&s("/analytics/{*rest}"), &s("/analytics/{proxy+}")));
    assert!(overlap(&s("/ingestions/{*rest}"), &s("/ingestions/{id}")));
    assert!(overlap(&s("/orders"), &s("/orders")));
    assert!(!overlap(&s("/orders"), &s("/orders/{order_id}")));
    assert!(!overlap(&s("/orders/{*rest}"), &s("/orders")));
    assert!(!overlap(&s("/health"), &s("/analytics/{proxy+}")));
    assert!(!overlap(
        &s("/customers/{id}"),
        &s("/customers/{id}/orders")
    ));
}

#[tokio::test]
async fn the_local_bucket_is_versioned_as_the_templates_is() {
    let template = template();
    let (_, bucket) = only(&template, "AWS::S3::Bucket");
    let expected = bucket["VersioningConfiguration"]["Status"]
        .as_str()
        .expect("the template's bucket states its versioning");
    // A bucket left unversioned by an earlier `make up` is versioned too.
    let local = TestBucket::create_unversioned().await;
    let config = localstack_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let provisioned = resources::ensure(
        &local.client,
        &sqs,
        &ResourceNames::for_bucket(&local.name),
        QueueSettings::default(),
    )
    .await
    .expect("provision LocalStack resources");
    let versioning = local
        .client
        .get_bucket_versioning()
        .bucket(&local.name)
        .send()
        .await
        .unwrap();
    for url in [provisioned.queue_url, provisioned.dead_letter_queue_url] {
        let _ = sqs.delete_queue().queue_url(url).send().await;
    }
    assert_eq!(
        versioning.status().map(|s| s.as_str()),
        Some(expected),
        "VersioningConfiguration.Status of the template's bucket vs the local bucket (resources::ensure)"
    );
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{what}: {v}"))
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_uploads_cors_rule_is_the_templates() {
    use order_pipeline::uploads as rule;
    let template = template();
    let (_, bucket) = only(&template, "AWS::S3::Bucket");
    let rules = bucket["CorsConfiguration"]["CorsRules"]
        .as_array()
        .expect("the template's bucket has CORS rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let cors = &rules[0];
    let expected = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        strings(&cors["AllowedMethods"], "AllowedMethods"),
        expected(&rule::CORS_METHODS)
    );
    assert_eq!(
        strings(&cors["AllowedHeaders"], "AllowedHeaders"),
        expected(&rule::CORS_ALLOWED_HEADERS)
    );
    assert_eq!(
        strings(&cors["ExposedHeaders"], "ExposedHeaders"),
        expected(&rule::CORS_EXPOSED_HEADERS)
    );
    assert_eq!(
        number(&cors["MaxAge"], "MaxAge"),
        rule::CORS_MAX_AGE_SECS as u64
    );
    // The dashboard's origin: the HTTP API's own endpoint unless a custom one is given.
    let origins = cors["AllowedOrigins"].to_string();
    assert!(
        origins.contains("DashboardOrigin") && origins.contains("${HttpApi}.execute-api"),
        "{origins}"
    );

    // The local bootstrap sets the same rule.
    let local = TestBucket::create().await;
    let origin = "http://127.0.0.1:9000".to_owned();
    resources::allow_uploads_from(&local.client, &local.name, std::slice::from_ref(&origin))
        .await
        .expect("the CORS rule");
    let stored = local
        .client
        .get_bucket_cors()
        .bucket(&local.name)
        .send()
        .await
        .expect("the bucket's CORS");
    let [stored] = stored.cors_rules() else {
        panic!("one rule: {stored:?}")
    };
    assert_eq!(stored.allowed_origins(), [origin]);
    assert_eq!(stored.allowed_methods(), expected(&rule::CORS_METHODS));
    assert_eq!(
        stored.allowed_headers(),
        expected(&rule::CORS_ALLOWED_HEADERS)
    );
    assert_eq!(
        stored.expose_headers(),
        expected(&rule::CORS_EXPOSED_HEADERS)
    );
    assert_eq!(stored.max_age_seconds(), Some(rule::CORS_MAX_AGE_SECS));
}
