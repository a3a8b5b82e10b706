//! `pipeline-local`: the order pipeline on this machine. `make up` drives it;
//! run `pipeline-local --help` for the commands.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use order_pipeline::config::{DatabaseSettings, INCOMING_PREFIX, PROCESSED_ORDERS_KEY};
use pipeline_local::forwarder::{self, InProcess, LambdaInvokeApi, Source};
use pipeline_local::resources::{self, QueueSettings, ResourceNames};
use pipeline_local::upload::Uploaded;

mod process;
mod token;

#[derive(Parser)]
#[command(
    version,
    about = "The order pipeline on this machine: local files, or its AWS world on LocalStack"
)]
struct Cli {
    /// LocalStack's endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:4566",
        global = true
    )]
    endpoint_url: String,
    /// The pipeline's bucket; the queues are named after it.
    #[arg(long, env = "BUCKET", default_value = "orders", global = true)]
    bucket: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies the database migrations (DATABASE_URL).
    Migrate,
    /// Creates the bucket, the ingest queue and its dead-letter queue, and the
    /// incoming/*.csv notification. Idempotent.
    Bootstrap {
        #[arg(long, default_value_t = QueueSettings::default().visibility_timeout_secs)]
        visibility_timeout: u32,
        #[arg(long, default_value_t = QueueSettings::default().max_receive_count)]
        max_receives: u32,
        /// The origin of the dashboard that may upload to the bucket (the
        /// bucket's CORS rule); repeat for more.
        #[arg(long = "dashboard-origin", default_value = "http://127.0.0.1:9000")]
        dashboard_origins: Vec<String>,
    },
    /// Feeds the ingest queue to the function through the Lambda Invoke API,
    /// as the SQS event source mapping does in AWS. Runs until Ctrl-C.
    Forward {
        /// Where `cargo lambda watch` serves the Invoke API.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        invoke_url: String,
        #[arg(long, default_value = "ingest")]
        function: String,
        /// Messages per invocation (1 to 10); the template's IngestBatchSize
        /// default unless trying others.
        #[arg(long, default_value_t = forwarder::BATCH_SIZE,
              value_parser = clap::value_parser!(i32).range(1..=10))]
        batch_size: i32,
        /// Run the ingest function's handler in this process (configured
        /// from the environment as the function is: DATABASE_URL, ...)
        /// instead of invoking it at --invoke-url.
        #[arg(long)]
        in_process: bool,
    },
    /// Uploads files into the bucket's incoming/ prefix (each upload is a new
    /// version, ingested; a file the key already holds is not sent again).
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Then wait until they are ingested and print processed_orders.csv.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Sends dead-lettered messages back to the ingest queue.
    Redrive,
    /// Processes local orders and barcodes files into the database
    /// (DATABASE_URL) without S3: writes processed_orders.csv (and its
    /// segments, processed/segments/) and reports/ to --out-dir and prints a
    /// summary. Ctrl-C stops cleanly: the file being
    /// loaded is rolled back whole.
    Process {
        /// CSV files, orders or barcodes (told apart by their header), in the
        /// order to load them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// How many top customers to print.
        #[arg(long, default_value_t = 5)]
        top: i64,
    },
    /// Ingests objects already in the bucket, in this process, with the same
    /// code the ingest function runs (DATABASE_URL); prints one JSON report
    /// per object. For benchmarks and debugging.
    Ingest {
        /// Object keys, e.g. incoming/orders.csv.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Prints a development bearer token for the HTTP API, signed with the
    /// JWT_SECRET (and JWT_ISSUER/JWT_AUDIENCE) of --env-file, the file the
    /// local functions read (`make up` writes it).
    Token {
        #[arg(long, default_value = ".local/functions.env")]
        env_file: PathBuf,
        /// Space-separated scopes; every scope by default.
        #[arg(long)]
        scopes: Option<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Long-running services log their work; one-shot commands print results.
    let level = match cli.command {
        Command::Forward { .. } => "info",
        _ => "warn",
    };
    order_pipeline::telemetry::init_for_cli(level);
    let names = ResourceNames::for_bucket(&cli.bucket);
    let sdk_config = pipeline_local::sdk_config(&cli.endpoint_url).await;
    let s3 = order_pipeline::storage::s3_client(&sdk_config);
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    match cli.command {
        Command::Migrate => {
            let settings = DatabaseSettings::from_env()?;
            let pool = order_pipeline::postgres::pool::connect_pool(&settings)?;
            let applied = order_pipeline::postgres::migrations::migrate_exclusively(&pool)
                .await
                .context(
                    "applying migrations/ (a local database made by an older checkout whose \
                 migrations changed can be deleted with `make reset`)",
                )?;
            println!("migrations: {applied} applied");
        }
        Command::Bootstrap {
            visibility_timeout,
            max_receives,
            dashboard_origins,
        } => {
            let settings = QueueSettings {
                visibility_timeout_secs: visibility_timeout,
                max_receive_count: max_receives,
                ..QueueSettings::default()
            };
            let provisioned = resources::ensure(&s3, &sqs, &names, settings).await?;
            resources::allow_uploads_from(&s3, &names.bucket, &dashboard_origins).await?;
            println!(
                "bucket s3://{} -> queue {} (dead letters after {} receives: {})",
                provisioned.names.bucket,
                provisioned.queue_url,
                settings.max_receive_count,
                provisioned.dead_letter_queue_url
            );
        }
        Command::Forward {
            invoke_url,
            function,
            batch_size,
            in_process,
        } => {
            let queue_url = resources::queue_url(&sqs, &names.queue).await?;
            let queue_arn = format!(
                "arn:aws:sqs:{}:000000000000:{}",
                sdk_config.region().map_or("us-east-1", |r| r.as_ref()),
                names.queue
            );
            let source = Source {
                queue_url,
                queue_arn,
                region: sdk_config
                    .region()
                    .map_or("us-east-1".into(), |r| r.to_string()),
                batch_size,
            };
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            if in_process {
                let ingestor = ingest::ingestor_from_env()
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("configuring the ingest handler from the environment")?;
                // As the function writes them, every few seconds here.
                let _ = order_pipeline::metrics::init("ingest");
                tracing::info!(queue = %source.queue_url, "forwarding to the handler in this process");
                forwarder::run(&sqs, &source, &InProcess { ingestor }, stop).await;
            } else {
                let invoker = LambdaInvokeApi::new(&invoke_url, &function);
                tracing::info!(queue = %source.queue_url, %invoke_url, %function, "forwarding");
                forwarder::run(&sqs, &source, &invoker, stop).await;
            }
        }
        Command::Upload {
            files,
            wait,
            timeout_secs,
        } => {
            for file in files {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{} has no file name", file.display()))?;
                let key = format!("{INCOMING_PREFIX}{name}");
                match pipeline_local::upload::upload_file(&s3, &names.bucket, &key, &file).await? {
                    Uploaded::NewVersion { .. } => {
                        println!("uploaded {} -> s3://{}/{key}", file.display(), names.bucket)
                    }
                    Uploaded::Unchanged => println!(
                        "unchanged {} = s3://{}/{key} (already uploaded; not sent again)",
                        file.display(),
                        names.bucket
                    ),
                }
            }
            if wait {
                wait_for_processed(&s3, &sqs, &names, Duration::from_secs(timeout_secs)).await?;
            }
        }
        Command::Process {
            files,
            out_dir,
            top,
        } => process::run(files, out_dir, top).await?,
        Command::Token {
            env_file,
            scopes,
            hours,
        } => println!("{}", token::issue(&env_file, scopes.as_deref(), hours)?),
        Command::Ingest { keys } => {
            let settings = DatabaseSettings::from_env()?;
            let pool = order_pipeline::postgres::pool::connect_pool(&settings)?;
            let ingestor = order_pipeline::ingest::Ingestor::new(
                order_pipeline::storage::S3Store::new(s3.clone()),
                order_pipeline::postgres::PgStore::new(pool),
            );
            for key in keys {
                let object = order_pipeline::storage::ObjectRef::new(&names.bucket, key);
                let report = ingestor.ingest(&object).await?;
                println!("{}", serde_json::to_string(&report)?);
            }
        }
        Command::Redrive => {
            let queue_url = resources::queue_url(&sqs, &names.queue).await?;
            let dlq_url = resources::queue_url(&sqs, &names.dead_letter_queue).await?;
            let moved = pipeline_local::redrive(&sqs, &dlq_url, &queue_url).await?;
            println!(
                "{moved} message(s) sent back from {} to {}",
                names.dead_letter_queue, names.queue
            );
        }
    }
    Ok(())
}

/// Waits until the ingest queue has stayed drained for a moment (every
/// message handled: ingested, skipped as already ingested, or failed) and
/// processed_orders.csv exists, then prints it.
async fn wait_for_processed(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &ResourceNames,
    timeout: Duration,
) -> Result<()> {
    let queue_url = resources::queue_url(sqs, &names.queue).await?;
    let deadline = Instant::now() + timeout;
    eprintln!(
        "waiting for the ingest function (first call builds it; see .local/logs/watch.log)..."
    );
    let mut idle_polls = 0;
    loop {
        let depth = resources::queue_depth(sqs, &queue_url).await?;
        idle_polls = if depth == 0 { idle_polls + 1 } else { 0 };
        if idle_polls >= 3 {
            let processed = s3
                .get_object()
                .bucket(&names.bucket)
                .key(PROCESSED_ORDERS_KEY)
                .send()
                .await;
            if let Ok(object) = processed {
                let bytes = object.body.collect().await?.into_bytes();
                println!("s3://{}/{PROCESSED_ORDERS_KEY}:", names.bucket);
                print!("{}", String::from_utf8_lossy(&bytes));
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let waiting_for = if depth == 0 {
                format!(
                    "the queue is drained but s3://{}/{PROCESSED_ORDERS_KEY} has not appeared",
                    names.bucket
                )
            } else {
                format!("{depth} message(s) still queued")
            };
            anyhow::bail!(
                "timed out after {} s: {waiting_for}; the ingest function logs to .local/logs/watch.log",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
