//! Stores that fail, or hold a write, on cue.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;

use order_pipeline::storage::{
    ComposeSource, NewObject, ObjectReader, ObjectRef, ObjectStore, OpenedObject, Operation,
    StorageError,
};

/// An [`ObjectStore`] that fails on cue, as S3
/// cannot be made to: the next `failing_reads` opened objects fail
/// mid-stream after `fail_after` bytes, as a reset connection does, and the
/// next `failing_writes` writes under `write_prefix` are refused, and
/// writes of a held key wait at a [`WriteGate`].
pub struct FaultyStore<S> {
    inner: S,
    fail_after: usize,
    failing_reads: std::sync::atomic::AtomicUsize,
    write_prefix: String,
    failing_writes: std::sync::atomic::AtomicUsize,
    held: Option<(String, Arc<WriteGate>)>,
}

/// Where writes of a held key wait until the test lets them through, so a
/// test can act while a writer is in the middle of its write.
pub struct WriteGate {
    arrived: Semaphore,
    through: Semaphore,
    writes: std::sync::atomic::AtomicUsize,
}

impl WriteGate {
    /// A closed gate.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            arrived: Semaphore::new(0),
            through: Semaphore::new(0),
            writes: 0.into(),
        })
    }

    /// Waits until a writer arrives at the gate.
    pub async fn arrival(&self) {
        self.arrived
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }

    /// Lets `writes` more writes through.
    pub fn let_through(&self, writes: usize) {
        self.through.add_permits(writes);
    }

    /// Writes of the held key that went through so far.
    pub fn writes(&self) -> usize {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn pass(&self) {
        self.arrived.add_permits(1);
        self.through
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<S> FaultyStore<S> {
    /// A store that passes everything through until told to fail.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fail_after: 0,
            failing_reads: 0.into(),
            write_prefix: String::new(),
            failing_writes: 0.into(),
            held: None,
        }
    }

    /// Every write of `key` waits at `gate` until let through.
    pub fn holding_writes(mut self, key: &str, gate: Arc<WriteGate>) -> Self {
        self.held = Some((key.to_owned(), gate));
        self
    }

    /// The next `reads` opened objects fail after `fail_after` bytes.
    pub fn failing_reads(mut self, reads: usize, fail_after: usize) -> Self {
        self.failing_reads = reads.into();
        self.fail_after = fail_after;
        self
    }

    /// The next `writes` writes of keys under `prefix` are refused.
    pub fn failing_writes(mut self, writes: usize, prefix: &str) -> Self {
        self.failing_writes = writes.into();
        self.write_prefix = prefix.to_owned();
        self
    }

    async fn write_allowed(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        if let Some((_, gate)) = self.held.as_ref().filter(|(held, _)| held == key) {
            gate.pass().await;
        }
        if key.starts_with(&self.write_prefix) && take_one(&self.failing_writes) {
            return Err(StorageError::new(
                bucket,
                key,
                Operation::Write,
                std::io::Error::other("injected: service unavailable"),
            ));
        }
        Ok(())
    }
}

/// Counts one fault down; false once none are left.
fn take_one(faults: &std::sync::atomic::AtomicUsize) -> bool {
    use std::sync::atomic::Ordering;
    faults
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn open(&self, object: &ObjectRef) -> Result<OpenedObject, StorageError> {
        let mut opened = self.inner.open(object).await?;
        if take_one(&self.failing_reads) {
            opened.reader = Box::pin(FailAfter {
                inner: opened.reader,
                remaining: self.fail_after,
            });
        }
        Ok(opened)
    }

    async fn put_file(
        &self,
        to: NewObject<'_>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        self.write_allowed(to.bucket, to.key).await?;
        self.inner.put_file(to, path).await
    }

    async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, StorageError> {
        self.inner.etag(bucket, key).await
    }

    async fn put(&self, to: NewObject<'_>, body: Vec<u8>) -> Result<(), StorageError> {
        self.write_allowed(to.bucket, to.key).await?;
        self.inner.put(to, body).await
    }

    async fn compose(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError> {
        self.write_allowed(to.bucket, to.key).await?;
        self.inner.compose(to, sources).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.inner.delete(bucket, key).await
    }

    fn min_part_size(&self) -> u64 {
        self.inner.min_part_size()
    }
}

/// Passes `remaining` bytes through, then fails every read.
struct FailAfter {
    inner: ObjectReader,
    remaining: usize,
}

impl tokio::io::AsyncRead for FailAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer (injected by the test)",
            )));
        }
        let mut chunk = [0u8; 8192];
        let limit = self.remaining.min(buf.remaining()).min(chunk.len());
        let mut limited = tokio::io::ReadBuf::new(&mut chunk[..limit]);
        std::task::ready!(self.inner.as_mut().poll_read(cx, &mut limited))?;
        let read = limited.filled();
        buf.put_slice(read);
        self.remaining -= read.len();
        std::task::Poll::Ready(Ok(()))
    }
}
