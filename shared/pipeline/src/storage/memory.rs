//! [`ObjectStore`] in memory, behaving as S3 does for what the pipeline
//! uses: every put makes a new version (a version id in a versioned bucket,
//! else it replaces the content), ETags follow the content, and `open`
//! pins the version or ETag it is asked for. Rule tests run on it with only
//! PostgreSQL.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{
    ComposeSource, NewObject, ObjectRef, ObjectStore, OpenedObject, Operation, StorageError,
    MIN_PART_SIZE,
};

/// Buckets of objects in memory; clones share them.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<Objects>>,
    versioned: bool,
    /// As S3's 5 MiB, unless a test sets it smaller (see
    /// [`MemoryStore::with_min_part_size`]).
    min_part_size: Option<u64>,
}

#[derive(Default)]
struct Objects {
    /// Every version of each (bucket, key), oldest first; `None` is a delete
    /// marker.
    versions: HashMap<(String, String), Vec<Option<Stored>>>,
    next_version: u64,
}

#[derive(Clone)]
struct Stored {
    version_id: Option<String>,
    etag: String,
    body: Vec<u8>,
}

impl MemoryStore {
    /// A versioned store, like the template's bucket.
    pub fn versioned() -> Self {
        Self {
            versioned: true,
            ..Self::default()
        }
    }

    /// A store without versioning: a new put replaces the old content.
    pub fn unversioned() -> Self {
        Self::default()
    }

    /// Lets [`ObjectStore::compose`] take sources (but the last) of at
    /// least `bytes`, instead of S3's [`MIN_PART_SIZE`]: tests of
    /// composed outputs then need not write megabytes.
    pub fn with_min_part_size(mut self, bytes: u64) -> Self {
        self.min_part_size = Some(bytes);
        self
    }

    /// Writes `body` at `key`; returns its ETag and version id.
    pub fn insert(&self, bucket: &str, key: &str, body: Vec<u8>) -> (String, Option<String>) {
        let mut objects = self.objects.lock().expect("memory store");
        objects.next_version += 1;
        let stored = Stored {
            version_id: self.versioned.then(|| format!("v{}", objects.next_version)),
            etag: content_etag(&body),
            body,
        };
        let answer = (stored.etag.clone(), stored.version_id.clone());
        let versions = objects
            .versions
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        if !self.versioned {
            versions.clear();
        }
        versions.push(Some(stored));
        answer
    }

    /// Deletes `key` (in a versioned store, older versions stay readable).
    pub fn delete(&self, bucket: &str, key: &str) {
        let mut objects = self.objects.lock().expect("memory store");
        let versions = objects
            .versions
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        if self.versioned {
            versions.push(None);
        } else {
            versions.clear();
        }
    }

    /// The latest content at `key`, or `None` when there is none.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.latest(bucket, key).map(|stored| stored.body)
    }

    /// The keys under `prefix` that hold an object now, in order.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let objects = self.objects.lock().expect("memory store");
        let mut keys: Vec<String> = objects
            .versions
            .iter()
            .filter(|((b, key), versions)| {
                b == bucket && key.starts_with(prefix) && matches!(versions.last(), Some(Some(_)))
            })
            .map(|((_, key), _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    fn latest(&self, bucket: &str, key: &str) -> Option<Stored> {
        let objects = self.objects.lock().expect("memory store");
        let versions = objects.versions.get(&(bucket.to_owned(), key.to_owned()))?;
        versions.last().cloned().flatten()
    }

    fn version(&self, bucket: &str, key: &str, version_id: &str) -> Option<Stored> {
        let objects = self.objects.lock().expect("memory store");
        let versions = objects.versions.get(&(bucket.to_owned(), key.to_owned()))?;
        versions
            .iter()
            .flatten()
            .find(|stored| stored.version_id.as_deref() == Some(version_id))
            .cloned()
    }
}

/// An ETag that follows the content, as S3's (the MD5 of a single-part
/// upload) does; only equality matters to the pipeline.
fn content_etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl ObjectStore for MemoryStore {
    async fn open(&self, object: &ObjectRef) -> Result<OpenedObject, StorageError> {
        let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
        let stored = match (&object.version_id, &object.etag) {
            (Some(version_id), _) => self.version(bucket, key, version_id),
            (None, etag) => match (self.latest(bucket, key), etag) {
                // If-Match: other content at the key means the version is gone.
                (Some(latest), Some(etag)) if latest.etag != *etag => {
                    return Err(StorageError {
                        superseded: true,
                        ..StorageError::new(
                            bucket,
                            key,
                            Operation::Open,
                            std::io::Error::other("PreconditionFailed: the ETag does not match"),
                        )
                    });
                }
                (latest, _) => latest,
            },
        };
        let stored = stored.ok_or_else(|| StorageError::missing(bucket, key))?;
        Ok(OpenedObject {
            size: Some(stored.body.len() as i64),
            etag: Some(stored.etag),
            version_id: stored.version_id,
            // The in-memory store keeps no times: no ingest lag.
            last_modified: None,
            reader: Box::pin(std::io::Cursor::new(stored.body)),
        })
    }

    async fn put_file(
        &self,
        to: NewObject<'_>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        let body = tokio::fs::read(path)
            .await
            .map_err(|e| StorageError::local_file(to.bucket, to.key, path, e))?;
        Ok(Some(self.insert(to.bucket, to.key, body).0))
    }

    async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.latest(bucket, key).map(|stored| stored.etag))
    }

    async fn put(&self, to: NewObject<'_>, body: Vec<u8>) -> Result<(), StorageError> {
        self.insert(to.bucket, to.key, body);
        Ok(())
    }

    async fn compose(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError> {
        let mut body = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let stored = self
                .latest(to.bucket, source.key)
                .ok_or_else(|| StorageError::missing(to.bucket, source.key))?;
            if source.etag.is_some_and(|etag| etag != stored.etag) {
                return Err(StorageError {
                    superseded: true,
                    ..StorageError::new(
                        to.bucket,
                        to.key,
                        Operation::Compose(source.key.to_owned()),
                        std::io::Error::other("PreconditionFailed: the ETag does not match"),
                    )
                });
            }
            // As S3 answers EntityTooSmall when the upload completes.
            if i + 1 < sources.len() && (stored.body.len() as u64) < self.min_part_size() {
                return Err(StorageError::new(
                    to.bucket,
                    to.key,
                    Operation::Compose(source.key.to_owned()),
                    std::io::Error::other(format!(
                        "EntityTooSmall: {} bytes, a part but the last needs {}",
                        stored.body.len(),
                        self.min_part_size()
                    )),
                ));
            }
            body.extend_from_slice(&stored.body);
        }
        Ok(Some(self.insert(to.bucket, to.key, body).0))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        MemoryStore::delete(self, bucket, key);
        Ok(())
    }

    fn min_part_size(&self) -> u64 {
        self.min_part_size.unwrap_or(MIN_PART_SIZE)
    }
}

#[cfg(test)]
mod tests;
