//! `pipeline-local upload`: puts local files into the bucket's incoming/ prefix.
//!
//! The bucket is versioned, so every upload is a new version that the
//! pipeline ingests. A file whose content is already the key's current
//! object is not uploaded again: `make up` run twice changes nothing. The
//! content is recognised by a SHA-256 kept in the object's metadata (an
//! ETag is an MD5 only for single-part, unencrypted uploads).

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

const CONTENT_SHA256: &str = "content-sha256";

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    /// A new version of the key.
    NewVersion { version_id: Option<String> },
    /// The key's current object has this content already.
    Unchanged,
}

/// Uploads `path` to `key` unless the key already holds that content.
pub async fn upload_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<Uploaded> {
    let digest = file_sha256(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    if current_sha256(s3, bucket, key).await?.as_deref() == Some(digest.as_str()) {
        return Ok(Uploaded::Unchanged);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .metadata(CONTENT_SHA256, digest)
        .body(body)
        .send()
        .await
        .map_err(crate::sdk_error)
        .with_context(|| format!("uploading {}", path.display()))?;
    Ok(Uploaded::NewVersion {
        version_id: put.version_id,
    })
}

/// The content digest the key's current object was uploaded with, if any.
async fn current_sha256(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<String>> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(head.metadata().and_then(|m| m.get(CONTENT_SHA256)).cloned()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
        Err(err) => {
            Err(crate::sdk_error(err)).with_context(|| format!("reading s3://{bucket}/{key}"))
        }
    }
}

async fn file_sha256(path: &Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}
