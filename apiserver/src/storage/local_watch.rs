//! Watches for the in-process backends (embedded and memory).
//!
//! A writer publishes each committed batch of events on a broadcast channel after it
//! commits. A watcher subscribes first, then replays the backend's history from its
//! start revision, then follows the channel, dropping events it has already sent: so
//! nothing committed is ever missed or sent twice. A watcher that falls behind the
//! channel (lag) catches up from history again instead of skipping events.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::{Result, Revision, StorageError, WatchEvent, WatchOptions, WatchStream};

/// Events committed together, in revision order; `revision` is the last of them.
#[derive(Debug)]
pub(super) struct CommittedBatch {
    pub events: Vec<WatchEvent>,
    pub revision: Revision,
}

/// The broadcast side: one per store.
#[derive(Clone)]
pub(super) struct WatchHub {
    sender: broadcast::Sender<Arc<CommittedBatch>>,
}

/// One page of history read by a watcher catching up.
pub(super) struct HistoryPage {
    /// Events under the prefix with revisions in `(after, scanned_to]`.
    pub events: Vec<WatchEvent>,
    /// How far this page read.
    pub scanned_to: Revision,
    /// The store's revision when the page was read: caught up once `scanned_to` reaches it.
    pub current: Revision,
}

/// What a backend provides so watchers can replay what they missed.
pub(super) trait History: Send + Sync + 'static {
    /// Events for keys in `[start, end)` after `after`, at most about `max` of them;
    /// [`StorageError::Compacted`] when `after` is older than the kept history.
    fn events_after(
        &self,
        start: &str,
        end: &str,
        after: Revision,
        max: usize,
    ) -> Result<HistoryPage>;
}

/// Events a catching-up watcher reads from history at once.
const HISTORY_PAGE: usize = 1000;
/// Events buffered between the watch task and a slow consumer.
const STREAM_BUFFER: usize = 1024;

impl WatchHub {
    /// A hub that keeps `capacity` batches for slow watchers before they must catch up.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        WatchHub { sender }
    }

    /// Publishes a committed batch; watchers that are gone are simply not reached.
    pub fn publish(&self, batch: CommittedBatch) {
        let _ = self.sender.send(Arc::new(batch));
    }

    /// Starts a watch of keys in `[start, end)` after revision `after`.
    pub fn watch<H: History>(
        &self,
        history: Arc<H>,
        start: String,
        end: String,
        after: Revision,
        options: WatchOptions,
    ) -> WatchStream {
        let receiver = self.sender.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let watcher = Watcher {
                history,
                start,
                end,
                last: after,
                tx,
            };
            // A send error means the consumer went away: nothing left to do.
            let _ = watcher.run(receiver, options).await;
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

struct Watcher<H> {
    history: Arc<H>,
    start: String,
    end: String,
    /// Every event up to this revision has been sent or was not ours.
    last: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

/// The consumer is gone.
struct Closed;

impl<H: History> Watcher<H> {
    async fn run(
        mut self,
        mut receiver: broadcast::Receiver<Arc<CommittedBatch>>,
        options: WatchOptions,
    ) -> std::result::Result<(), Closed> {
        self.catch_up().await?;
        let period = options
            .progress_notify
            .unwrap_or(std::time::Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut sent_since_tick = false;
        loop {
            tokio::select! {
                batch = receiver.recv() => match batch {
                    Ok(batch) => {
                        if batch.revision <= self.last {
                            continue;
                        }
                        for event in &batch.events {
                            if event.revision() > self.last && self.matches(event) {
                                self.send(Ok(event.clone())).await?;
                                sent_since_tick = true;
                            }
                        }
                        self.last = batch.revision;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = ticker.tick(), if options.progress_notify.is_some() => {
                    if !sent_since_tick {
                        self.send(Ok(WatchEvent::Bookmark(self.last))).await?;
                    }
                    sent_since_tick = false;
                }
            }
        }
    }

    fn matches(&self, event: &WatchEvent) -> bool {
        event
            .key()
            .is_some_and(|k| k >= self.start.as_str() && k < self.end.as_str())
    }

    /// Replays history from `last` until the store's current revision.
    async fn catch_up(&mut self) -> std::result::Result<(), Closed> {
        loop {
            let history = self.history.clone();
            let (start, end, after) = (self.start.clone(), self.end.clone(), self.last);
            let page = tokio::task::spawn_blocking(move || {
                history.events_after(&start, &end, after, HISTORY_PAGE)
            })
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::Internal(format!(
                    "history reader failed: {e}"
                )))
            });
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    self.send(Err(e)).await?;
                    return Err(Closed);
                }
            };
            for event in page.events {
                self.send(Ok(event)).await?;
            }
            self.last = self.last.max(page.scanned_to);
            if page.scanned_to >= page.current {
                return Ok(());
            }
        }
    }

    async fn send(&self, item: Result<WatchEvent>) -> std::result::Result<(), Closed> {
        self.tx.send(item).await.map_err(|_| Closed)
    }
}
