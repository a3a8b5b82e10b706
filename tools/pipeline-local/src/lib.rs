//! Local stand-ins for the AWS pieces that LocalStack's community edition
//! cannot run: provisioning the bucket, queues and notification, and the SQS
//! event source mapping that feeds the ingest function.

pub mod forwarder;
pub mod local_files;
pub mod resources;
pub mod upload;

use aws_sdk_s3::config::Credentials;

/// An AWS SDK error with its whole context (the SDK's own `Display` says
/// only "service error").
pub fn sdk_error(err: impl std::error::Error + 'static) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(err))
}

/// SDK configuration for LocalStack: the given endpoint, a default region,
/// and LocalStack's dummy credentials unless real ones are in the environment.
pub async fn sdk_config(endpoint_url: &str) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint_url);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader =
            loader.credentials_provider(Credentials::new("test", "test", None, None, "localstack"));
    }
    loader.load().await
}

/// Moves every message from the dead-letter queue back to the ingest queue
/// (after the cause of the failures is fixed). Returns how many moved.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dead_letter_queue_url: &str,
    queue_url: &str,
) -> anyhow::Result<usize> {
    use anyhow::Context;
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dead_letter_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(crate::sdk_error)
            .context("reading the dead-letter queue")?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        for message in messages {
            sqs.send_message()
                .queue_url(queue_url)
                .set_message_body(message.body)
                .send()
                .await
                .map_err(crate::sdk_error)
                .context("sending back to the ingest queue")?;
            sqs.delete_message()
                .queue_url(dead_letter_queue_url)
                .set_receipt_handle(message.receipt_handle)
                .send()
                .await
                .map_err(crate::sdk_error)
                .context("removing from the dead-letter queue")?;
            moved += 1;
        }
    }
}
