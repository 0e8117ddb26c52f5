//! Catalog items handed over in batches, with back-pressure.
//!
//! A producer (a JSON array parser on a blocking thread, or an M3U parser fed
//! from the socket) pushes items into a small bounded channel of batches; the
//! catalog store drains it. At most `CHANNEL_BATCHES + 2` batches exist at a
//! time, so memory stays flat whatever the catalog's size, and a slow store
//! slows the download rather than buffering it.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::UpstreamError;

/// Items per batch: big enough for multi-row inserts, small enough to stay cheap.
pub const BATCH_SIZE: usize = 1000;
/// Batches in flight between producer and consumer.
pub const CHANNEL_BATCHES: usize = 4;

/// The receiving end of a streamed catalog list, plus the producer's outcome.
pub struct Batches<T, S> {
    rx: mpsc::Receiver<Vec<T>>,
    task: JoinHandle<Result<S, UpstreamError>>,
}

impl<T: Send + 'static, S: Send + 'static> Batches<T, S> {
    /// Starts `produce` with a [`BatchSender`]; the caller drains with [`Batches::next`].
    pub(crate) fn spawn<F>(produce: F) -> Self
    where
        F: FnOnce(BatchSender<T>) -> JoinHandle<Result<S, UpstreamError>>,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let task = produce(BatchSender { tx, buf: Vec::with_capacity(BATCH_SIZE) });
        Batches { rx, task }
    }

    /// The next batch, or `None` when the producer is done (call [`Batches::finish`]).
    pub async fn next(&mut self) -> Option<Vec<T>> {
        self.rx.recv().await
    }

    /// Waits for the producer and returns its summary or its error.
    pub async fn finish(mut self) -> Result<S, UpstreamError> {
        // Drain anything left so the producer can complete.
        self.rx.close();
        while self.rx.recv().await.is_some() {}
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(UpstreamError::BadBody {
                url: String::new(),
                expected: "a catalog",
                detail: format!("parser task failed: {e}"),
            }),
        }
    }
}

/// The producing end: buffers items into batches.
pub(crate) struct BatchSender<T> {
    tx: mpsc::Sender<Vec<T>>,
    buf: Vec<T>,
}

impl<T> BatchSender<T> {
    /// Adds an item from a blocking thread. Returns false once the consumer is gone.
    pub fn push_blocking(&mut self, item: T) -> bool {
        self.buf.push(item);
        if self.buf.len() >= BATCH_SIZE {
            return self.flush_blocking();
        }
        true
    }

    pub fn flush_blocking(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_SIZE));
        self.tx.blocking_send(batch).is_ok()
    }
}
