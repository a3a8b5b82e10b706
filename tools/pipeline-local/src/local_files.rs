//! An [`ObjectStore`] over local files, so the ingest code runs on files on a
//! laptop with no S3 at all (`pipeline-local process`). Inputs are registered under
//! the keys the pipeline expects (`incoming/<name>`); outputs land in a
//! directory: `processed_orders.csv` and `reports/…`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use indicatif::ProgressBar;
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::storage::{
    ComposeSource, NewObject, ObjectRef, ObjectStore, OpenedObject, Operation, StorageError,
};
use tokio::io::{AsyncRead, ReadBuf};

pub struct LocalFiles {
    inputs: HashMap<String, PathBuf>,
    out_dir: PathBuf,
    progress: Option<ProgressBar>,
}

impl LocalFiles {
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            inputs: HashMap::new(),
            out_dir: out_dir.into(),
            progress: None,
        }
    }

    /// Makes `path` readable as `key`.
    pub fn add_input(&mut self, key: &str, path: &Path) {
        self.inputs.insert(key.to_owned(), path.to_owned());
    }

    /// Shows reading progress (bytes) on this bar.
    pub fn set_progress(&mut self, bar: Option<ProgressBar>) {
        self.progress = bar;
    }

    /// Where an output key is written.
    pub fn output_path(&self, key: &str) -> PathBuf {
        if key == PROCESSED_ORDERS_KEY {
            self.out_dir.join("processed_orders.csv")
        } else {
            self.out_dir.join(key)
        }
    }

    /// The output path for `key`, with its directory created.
    async fn prepare_output(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
        let target = self.output_path(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                StorageError::new(bucket, key, Operation::WriteLocalFile(parent.to_owned()), e)
            })?;
        }
        Ok(target)
    }
}

impl ObjectStore for LocalFiles {
    /// Local files have one version each: the file as it is now.
    async fn open(&self, object: &ObjectRef) -> Result<OpenedObject, StorageError> {
        let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
        let path = self
            .inputs
            .get(key)
            .ok_or_else(|| StorageError::missing(bucket, key))?;
        let open_failed = |e: std::io::Error| {
            StorageError::new(bucket, key, Operation::OpenLocalFile(path.clone()), e)
        };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| open_failed(e).not_found())?;
        let meta = file.metadata().await.map_err(open_failed)?;
        if let Some(bar) = &self.progress {
            bar.set_length(meta.len());
            bar.set_position(0);
        }
        Ok(OpenedObject {
            etag: Some(local_etag(&meta)),
            version_id: None,
            size: Some(meta.len() as i64),
            last_modified: meta.modified().ok(),
            reader: Box::pin(Progress {
                inner: file,
                bar: self.progress.clone(),
            }),
        })
    }

    async fn put_file(
        &self,
        to: NewObject<'_>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        let target = self.prepare_output(to.bucket, to.key).await?;
        tokio::fs::copy(path, &target).await.map_err(|e| {
            StorageError::new(to.bucket, to.key, Operation::WriteLocalFile(target), e)
        })?;
        self.etag(to.bucket, to.key).await
    }

    async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, StorageError> {
        match tokio::fs::metadata(self.output_path(key)).await {
            Ok(meta) => Ok(Some(local_etag(&meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::new(bucket, key, Operation::Head, e)),
        }
    }

    async fn put(&self, to: NewObject<'_>, body: Vec<u8>) -> Result<(), StorageError> {
        let target = self.prepare_output(to.bucket, to.key).await?;
        tokio::fs::write(&target, body)
            .await
            .map_err(|e| StorageError::new(to.bucket, to.key, Operation::WriteLocalFile(target), e))
    }

    /// The output files of `sources`, one after the other, streamed into
    /// a file beside `to`'s that then replaces it, as S3 replaces an object
    /// whole: a missing or changed source leaves `to` as it was.
    async fn compose(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError> {
        let target = self.prepare_output(to.bucket, to.key).await?;
        let assembling = target.with_extension("csv.assembling");
        let written = |path: &Path| {
            let path = path.to_owned();
            move |e| StorageError::new(to.bucket, to.key, Operation::WriteLocalFile(path), e)
        };
        let mut file = tokio::fs::File::create(&assembling)
            .await
            .map_err(written(&assembling))?;
        for source in sources {
            let source_failed = |e: std::io::Error| {
                let not_found = e.kind() == std::io::ErrorKind::NotFound;
                StorageError {
                    not_found,
                    ..StorageError::new(
                        to.bucket,
                        to.key,
                        Operation::Compose(source.key.to_owned()),
                        e,
                    )
                }
            };
            let mut part = tokio::fs::File::open(self.output_path(source.key))
                .await
                .map_err(source_failed)?;
            let meta = part.metadata().await.map_err(source_failed)?;
            if source.etag.is_some_and(|etag| etag != local_etag(&meta)) {
                return Err(StorageError {
                    superseded: true,
                    ..source_failed(std::io::Error::other(
                        "the file changed since it was written",
                    ))
                });
            }
            tokio::io::copy(&mut part, &mut file)
                .await
                .map_err(written(&assembling))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(written(&assembling))?;
        tokio::fs::rename(&assembling, &target)
            .await
            .map_err(written(&target))?;
        self.etag(to.bucket, to.key).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        let path = self.output_path(key);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::new(
                bucket,
                key,
                Operation::WriteLocalFile(path),
                e,
            )),
            _ => Ok(()),
        }
    }
}

/// A local file's version: its size and modification time.
fn local_etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("local-{}-{modified}", meta.len())
}

/// Counts bytes read into a progress bar.
struct Progress<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Progress<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(bar)) = (&polled, &self.bar) {
            bar.inc((buf.filled().len() - before) as u64);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_composed_output_is_its_sources_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFiles::new(dir.path());
        let to = |key| NewObject {
            bucket: "local",
            key,
            content_type: "text/csv",
        };
        store
            .put(to("segments/1.csv"), b"header\n1\n".to_vec())
            .await
            .unwrap();
        store
            .put(to("segments/2.csv"), b"2\n".to_vec())
            .await
            .unwrap();
        let etag = store
            .compose(
                to(PROCESSED_ORDERS_KEY),
                &[
                    ComposeSource::any("segments/1.csv"),
                    ComposeSource::any("segments/2.csv"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("processed_orders.csv")).unwrap(),
            b"header\n1\n2\n"
        );
        assert_eq!(
            etag,
            store.etag("local", PROCESSED_ORDERS_KEY).await.unwrap()
        );
        let missing = store
            .compose(
                to(PROCESSED_ORDERS_KEY),
                &[ComposeSource::any("segments/none.csv")],
            )
            .await
            .unwrap_err();
        assert!(
            missing.not_found && missing.to_string().contains("segments/none.csv"),
            "{missing}"
        );
        let changed = store
            .compose(
                to(PROCESSED_ORDERS_KEY),
                &[ComposeSource {
                    key: "segments/2.csv",
                    etag: Some("local-1-0"),
                }],
            )
            .await
            .unwrap_err();
        assert!(changed.superseded, "{changed}");
        assert_eq!(
            std::fs::read(dir.path().join("processed_orders.csv")).unwrap(),
            b"header\n1\n2\n",
            "a failed compose leaves the file as it was"
        );
    }
}
