//! The AWS resources the pipeline needs, created (idempotently) in LocalStack:
//! the bucket, the ingest queue with its dead-letter queue, the bucket
//! notification that feeds the queue, and the CORS rule for the dashboard's
//! uploads; and removed again (benchmarks, chaos). Tests create their own set with the
//! same code, so the local world and the tests cannot drift apart.

use anyhow::{Context, Result};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CorsConfiguration, CorsRule, Event, FilterRule, FilterRuleName,
    NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    VersioningConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use order_pipeline::config::{INCOMING_PREFIX, INCOMING_SUFFIX};

/// Names of one set of pipeline resources.
#[derive(Debug, Clone)]
pub struct ResourceNames {
    pub bucket: String,
    pub queue: String,
    pub dead_letter_queue: String,
}

impl ResourceNames {
    /// The queues are named after the bucket: `<bucket>-ingest` and `<bucket>-ingest-dlq`.
    pub fn for_bucket(bucket: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            queue: format!("{bucket}-ingest"),
            dead_letter_queue: format!("{bucket}-ingest-dlq"),
        }
    }
}

/// Queue behaviour. The defaults are production's (infra/template.yaml; a
/// test keeps them equal): a message is retried until it has been received
/// `max_receive_count` times, then dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Seconds a received message stays hidden before it is retried: 6x the
    /// ingest function's timeout in AWS (300 s), so a message being processed
    /// is never handed out twice.
    pub visibility_timeout_secs: u32,
    pub max_receive_count: u32,
    /// Seconds the dead-letter queue keeps a message (14 days, the maximum).
    pub dead_letter_retention_secs: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 1800,
            max_receive_count: 3,
            dead_letter_retention_secs: 14 * 24 * 3600,
        }
    }
}

/// What was created, with the identifiers the forwarder needs.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub names: ResourceNames,
    pub queue_url: String,
    pub queue_arn: String,
    pub dead_letter_queue_url: String,
    pub dead_letter_queue_arn: String,
}

/// Creates whatever is missing; safe to run any number of times.
pub async fn ensure(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &ResourceNames,
    settings: QueueSettings,
) -> Result<Provisioned> {
    ensure_bucket(s3, &names.bucket).await?;

    let dead_letter_queue_url = create_queue(sqs, &names.dead_letter_queue).await?;
    sqs.set_queue_attributes()
        .queue_url(&dead_letter_queue_url)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.dead_letter_retention_secs.to_string(),
        )
        .send()
        .await
        .map_err(crate::sdk_error)
        .context("configuring the dead-letter queue")?;
    let dead_letter_queue_arn = queue_arn(sqs, &dead_letter_queue_url).await?;

    let queue_url = create_queue(sqs, &names.queue).await?;
    let queue_arn = queue_arn(sqs, &queue_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_letter_queue_arn,
        "maxReceiveCount": settings.max_receive_count.to_string(),
    });
    // Lets the bucket (and only it) send notifications to the queue.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{}", names.bucket)}}
        }]
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(crate::sdk_error)
        .context("configuring the ingest queue")?;

    let filter = S3KeyFilter::builder()
        .filter_rules(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(INCOMING_PREFIX)
                .build(),
        )
        .filter_rules(
            FilterRule::builder()
                .name(FilterRuleName::Suffix)
                .value(INCOMING_SUFFIX)
                .build(),
        )
        .build();
    let queue_notification = QueueConfiguration::builder()
        .id("ingest-incoming-csv")
        .queue_arn(&queue_arn)
        .events(Event::S3ObjectCreated)
        .filter(
            NotificationConfigurationFilter::builder()
                .key(filter)
                .build(),
        )
        .build()
        .context("building the bucket notification")?;
    s3.put_bucket_notification_configuration()
        .bucket(&names.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue_notification)
                .build(),
        )
        .send()
        .await
        .map_err(crate::sdk_error)
        .context("configuring the bucket notification")?;

    Ok(Provisioned {
        names: names.clone(),
        queue_url,
        queue_arn,
        dead_letter_queue_url,
        dead_letter_queue_arn,
    })
}

/// Lets pages from `origins` (the dashboard's) upload to the bucket with
/// presigned PUTs, and read the answer's ETag and version id: the rule of
/// `order_pipeline::uploads`, as the template's bucket has it.
pub async fn allow_uploads_from(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    origins: &[String],
) -> Result<()> {
    use order_pipeline::uploads as rule;
    let mut cors = CorsRule::builder()
        .id("dashboard-uploads")
        .max_age_seconds(rule::CORS_MAX_AGE_SECS);
    for origin in origins {
        cors = cors.allowed_origins(origin);
    }
    for method in rule::CORS_METHODS {
        cors = cors.allowed_methods(method);
    }
    for header in rule::CORS_ALLOWED_HEADERS {
        cors = cors.allowed_headers(header);
    }
    for header in rule::CORS_EXPOSED_HEADERS {
        cors = cors.expose_headers(header);
    }
    let configuration = CorsConfiguration::builder()
        .cors_rules(cors.build().context("building the CORS rule")?)
        .build()
        .context("building the CORS configuration")?;
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(configuration)
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("setting the uploads' CORS rule on bucket {bucket}"))?;
    Ok(())
}

/// The bucket, versioned as the template's is: every upload to a key is a
/// version of its own, which the ingest reads exactly as its event names it.
async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) => {}
        Err(err) => {
            return Err(crate::sdk_error(err)).with_context(|| format!("creating bucket {bucket}"))
        }
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("enabling versioning on bucket {bucket}"))?;
    Ok(())
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("creating queue {name}"))?;
    created
        .queue_url
        .with_context(|| format!("queue {name} has no URL"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("reading the ARN of {queue_url}"))?;
    attributes
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("{queue_url} has no ARN"))
}

/// Looks up an existing queue's URL by name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("queue {name} not found; run `make up` first"))?
        .queue_url
        .with_context(|| format!("queue {name} has no URL"))
}

/// Messages waiting plus messages being processed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(crate::sdk_error)?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

/// Deletes every version and delete marker, then the bucket.
pub async fn delete_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(crate::sdk_error)?;
        let objects = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .set_key(key.map(str::to_owned))
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if objects.is_empty() {
            break;
        }
        s3.delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(objects)).build()?)
            .send()
            .await
            .map_err(crate::sdk_error)?;
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(crate::sdk_error)?;
    Ok(())
}

/// Removes a set [`ensure`] made: the bucket with every version, then both
/// queues. What is already gone is skipped, so it may follow a setup that
/// stopped half way.
pub async fn remove(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &ResourceNames,
) -> Result<()> {
    match s3.head_bucket().bucket(&names.bucket).send().await {
        Ok(_) => delete_bucket(s3, &names.bucket)
            .await
            .with_context(|| format!("deleting bucket {}", names.bucket))?,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {}
        Err(err) => {
            return Err(crate::sdk_error(err))
                .with_context(|| format!("finding bucket {}", names.bucket))
        }
    }
    for queue in [&names.queue, &names.dead_letter_queue] {
        // A queue that does not exist has no URL, and nothing to delete.
        let Ok(found) = sqs.get_queue_url().queue_name(queue).send().await else {
            continue;
        };
        sqs.delete_queue()
            .set_queue_url(found.queue_url)
            .send()
            .await
            .map_err(crate::sdk_error)
            .with_context(|| format!("deleting queue {queue}"))?;
    }
    Ok(())
}
