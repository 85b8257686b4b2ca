//! The watch cache, as upstream's cacher (k8s.io/apiserver/pkg/storage/cacher): one
//! watch on the store for everything under `/registry/`, an in-memory copy of every
//! object and a window of recent events.
//!
//! Lists without an exact resourceVersion and every watch are served from memory, so
//! a thousand watchers cost the store one watch, and a LIST of ten thousand pods reads
//! no disk. A consistent list (resourceVersion "") first asks the store for its current
//! revision and waits until the cache has seen it, as upstream's ConsistentListFromCache.
//!
//! Each event is an [`Arc<CachedEvent>`] shared by every watcher; what a watcher sends
//! is computed once per event and media type (see [`CachedEvent::memo`]). The feed
//! hands an event only to the watchers whose prefix holds its key, as upstream's
//! per-resource cachers do: a pod event wakes the pod watchers, not the controller
//! manager's forty other informers. A watcher that falls more than
//! [`WATCHER_BACKLOG`] events behind is cut off (its stream ends, the client re-watches
//! from its last resourceVersion) instead of slowing the others.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use super::{KeyValue, Revision, Storage, StorageError, WatchEvent, WatchOptions, prefix_end};

/// Everything the API server stores lives under this prefix.
const ROOT: &str = "/registry/";
/// Recent events kept for watches that start from an older resourceVersion.
const WINDOW: usize = 10_000;
/// Events a watcher may fall behind before it is cut off.
const WATCHER_BACKLOG: usize = 4_096;
/// How often the cache asks the store for progress when nothing happens, so that its
/// revision catches up with writes it does not hold (keys outside `/registry/`).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a consistent read waits for the cache before reading the store instead.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// One event as cached and shared by all watchers.
pub struct CachedEvent {
    /// The event; `Modified.prev_value` is always set (the cache knows the old state).
    pub event: WatchEvent,
    /// A bookmark that ends the initial events of a `sendInitialEvents` watch (sent
    /// with upstream's `k8s.io/initial-events-end` annotation).
    pub initial_events_end: bool,
    /// Per-consumer memos (e.g. the decoded object, the JSON line), computed once.
    memos: Mutex<Vec<(&'static str, Arc<dyn std::any::Any + Send + Sync>)>>,
}

impl CachedEvent {
    /// Wraps an event.
    pub fn new(event: WatchEvent) -> Arc<Self> {
        Arc::new(CachedEvent {
            event,
            initial_events_end: false,
            memos: Mutex::new(Vec::new()),
        })
    }

    /// The bookmark at `revision` that ends a watch's initial events.
    pub fn initial_events_end(revision: Revision) -> Arc<Self> {
        Arc::new(CachedEvent {
            event: WatchEvent::Bookmark(revision),
            initial_events_end: true,
            memos: Mutex::new(Vec::new()),
        })
    }

    /// The value `compute` produces for this event under `name`, computed by the first
    /// watcher that asks and shared with the rest.
    pub fn memo<T: Clone + Send + Sync + 'static>(
        &self,
        name: &'static str,
        compute: impl FnOnce(&WatchEvent) -> T,
    ) -> T {
        let found = {
            let memos = self.memos.lock().unwrap_or_else(|p| p.into_inner());
            memos
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.clone().downcast::<T>().ok())
        };
        if let Some(value) = found {
            return (*value).clone();
        }
        let value = compute(&self.event);
        let mut memos = self.memos.lock().unwrap_or_else(|p| p.into_inner());
        if !memos.iter().any(|(n, _)| *n == name) {
            memos.push((name, Arc::new(value.clone())));
        }
        value
    }
}

/// A stream of shared events; it ends after an error or when the watcher is cut off.
pub type CachedWatchStream =
    Pin<Box<dyn Stream<Item = Result<Arc<CachedEvent>, StorageError>> + Send>>;

/// The cached state: every object, and the recent events.
#[derive(Default)]
struct State {
    objects: BTreeMap<String, KeyValue>,
    window: VecDeque<Arc<CachedEvent>>,
    /// The cache reflects the store up to this revision.
    revision: Revision,
    /// Every event after this revision is in the window.
    window_start: Revision,
    /// False until the first list arrived (and while re-listing after an error).
    ready: bool,
    /// The live watchers; emptied on re-list, which ends their watches.
    subscribers: Vec<Subscriber>,
}

/// A live watcher as the feed sees it: the keys it wants and where their events go.
struct Subscriber {
    prefix: String,
    events: mpsc::Sender<Arc<CachedEvent>>,
}

impl State {
    /// The cached objects whose keys start with `prefix`, in key order.
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KeyValue> + 'a {
        let end = prefix_end(prefix);
        self.objects
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Excluded(end.as_str()),
            ))
            .map(|(_, kv)| kv)
    }
}

/// The watch cache over one store.
pub struct WatchCache {
    inner: Arc<dyn Storage>,
    state: Arc<RwLock<State>>,
    revision: watch::Receiver<Revision>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read(state: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    state.read().unwrap_or_else(|p| p.into_inner())
}

fn write(state: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    state.write().unwrap_or_else(|p| p.into_inner())
}

impl WatchCache {
    /// Starts filling the cache from `inner` on the current tokio runtime.
    pub fn start(inner: Arc<dyn Storage>) -> Arc<Self> {
        let state = Arc::new(RwLock::new(State::default()));
        let (revision_tx, revision) = watch::channel(0);
        let task = tokio::spawn(feed(inner.clone(), state.clone(), revision_tx));
        Arc::new(WatchCache {
            inner,
            state,
            revision,
            task,
        })
    }

    /// Waits until the cache is filled, at most `timeout`; false when it is not.
    pub async fn wait_until_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !read(&self.state).ready {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Waits until the cache has seen `revision`; false when it did not in time.
    async fn wait_for(&self, revision: Revision) -> bool {
        let mut seen = self.revision.clone();
        let reached = seen.wait_for(|r| *r >= revision);
        matches!(
            tokio::time::timeout(FRESHNESS_WAIT, reached).await,
            Ok(Ok(_))
        )
    }

    /// The objects under `prefix` and the revision they are current at, or `None`
    /// when the cache cannot answer (not filled yet, or behind) and the store must.
    /// `min_revision`: `None` for a consistent read (the store's current revision),
    /// `Some(n)` for "not older than n" (0: any).
    pub async fn list(
        &self,
        prefix: &str,
        min_revision: Option<Revision>,
    ) -> Option<(Revision, Vec<KeyValue>)> {
        if !prefix.starts_with(ROOT) || !read(&self.state).ready {
            return None;
        }
        let wanted = match min_revision {
            Some(r) => r,
            None => self.inner.current_revision().await.ok()?,
        };
        if !self.wait_for(wanted).await {
            return None;
        }
        let state = read(&self.state);
        if !state.ready {
            return None;
        }
        let items = state.under(prefix).cloned().collect();
        Some((state.revision, items))
    }

    /// The cached object at `key` as the cache last saw it, which may be a little
    /// behind the store (what an informer would answer); `None` when the cache does not
    /// hold it or is not filled yet.
    pub fn get_stale(&self, key: &str) -> Option<KeyValue> {
        let state = read(&self.state);
        if !state.ready {
            return None;
        }
        state.objects.get(key).cloned()
    }

    /// Watches keys under `prefix` after revision `after` (0: the current objects as
    /// ADDED events first). A revision older than the window is watched on the store.
    pub async fn watch(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<CachedWatchStream, StorageError> {
        let prefix = prefix.to_owned();
        let servable = |state: &State| {
            state.ready && prefix.starts_with(ROOT) && (after == 0 || after >= state.window_start)
        };
        // Subscribe first (a short write lock), then copy the initial events under a
        // read lock: an event applied in between is both in the copy and in the
        // subscription, and `forward` drops the second by its revision.
        let receiver = {
            let mut state = write(&self.state);
            servable(&state).then(|| subscribe(&mut state, &prefix))
        };
        let served = receiver.and_then(|receiver| {
            let state = read(&self.state);
            // the window may have moved on (or the cache re-listed) meanwhile
            servable(&state).then(|| {
                let (initial, from) = initial_events(&state, &prefix, after);
                (initial, from, receiver)
            })
        });
        let Some((initial, from, receiver)) = served else {
            return self.watch_store(&prefix, after, options).await;
        };
        let (tx, rx) = mpsc::channel(1024);
        let revision = self.revision.clone();
        tokio::spawn(forward(
            initial,
            from,
            receiver,
            revision,
            options.progress_notify,
            tx,
        ));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// A watch the cache cannot serve, straight from the store, with events wrapped.
    async fn watch_store(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<CachedWatchStream, StorageError> {
        let stream = self.inner.watch(prefix, after, options).await?;
        Ok(Box::pin(stream.map(|e| e.map(CachedEvent::new))))
    }
}

/// A watcher's subscription to live events under `prefix`: every event the feed
/// applies from now on.
fn subscribe(state: &mut State, prefix: &str) -> mpsc::Receiver<Arc<CachedEvent>> {
    let (events, receiver) = mpsc::channel(WATCHER_BACKLOG);
    state.subscribers.push(Subscriber {
        prefix: prefix.to_owned(),
        events,
    });
    receiver
}

/// The events a watch from `after` starts with (the objects under `prefix` as ADDED
/// when `after` is 0, else the window's events after it) and the revision they bring
/// the watcher to.
fn initial_events(
    state: &State,
    prefix: &str,
    after: Revision,
) -> (Vec<Arc<CachedEvent>>, Revision) {
    let initial: Vec<Arc<CachedEvent>> = if after == 0 {
        state
            .under(prefix)
            .map(|kv| CachedEvent::new(WatchEvent::Added(kv.clone())))
            .collect()
    } else {
        state
            .window
            .iter()
            .filter(|e| {
                e.event.revision() > after && e.event.key().is_some_and(|k| k.starts_with(prefix))
            })
            .cloned()
            .collect()
    };
    (initial, state.revision.max(after))
}

/// One watcher: the initial events, then live ones under `prefix` after `from`, with
/// bookmarks when asked; ends when the watcher is dropped or cut off.
async fn forward(
    initial: Vec<Arc<CachedEvent>>,
    mut from: Revision,
    mut receiver: mpsc::Receiver<Arc<CachedEvent>>,
    revision: watch::Receiver<Revision>,
    bookmarks: Option<Duration>,
    tx: mpsc::Sender<Result<Arc<CachedEvent>, StorageError>>,
) {
    for event in initial {
        from = from.max(event.event.revision());
        if tx.send(Ok(event)).await.is_err() {
            return;
        }
    }
    let mut ticker = tokio::time::interval(bookmarks.unwrap_or(Duration::from_secs(3600)));
    ticker.tick().await;
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                // only events under the prefix arrive (the feed picks them)
                Some(event) => {
                    let revision = event.event.revision();
                    if revision <= from {
                        continue;
                    }
                    from = revision;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                // Cut off for falling behind, or the cache re-listed. Either way the
                // client re-watches from the last resourceVersion it saw.
                None => return,
            },
            _ = ticker.tick(), if bookmarks.is_some() => {
                // The feed hands events out before it advances the revision: every
                // event up to `current` is queued here. Send them first, or the
                // bookmark would claim them sent and the client skip them.
                let current = *revision.borrow();
                loop {
                    match receiver.try_recv() {
                        Ok(event) => {
                            let revision = event.event.revision();
                            if revision <= from {
                                continue;
                            }
                            from = revision;
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        // cut off: no bookmark past the events it missed
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                from = from.max(current);
                let bookmark = CachedEvent::new(WatchEvent::Bookmark(from));
                if tx.send(Ok(bookmark)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

/// Fills and follows the cache: list everything, then watch from the list's revision;
/// on any error start over (ending the current watchers).
async fn feed(
    inner: Arc<dyn Storage>,
    state: Arc<RwLock<State>>,
    revision_tx: watch::Sender<Revision>,
) {
    let end = prefix_end(ROOT);
    let mut backoff = Duration::from_millis(100);
    loop {
        let listed = inner.range(ROOT, &end, None, 0).await;
        let page = match listed {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: listing the store failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let options = WatchOptions {
            progress_notify: Some(PROGRESS_INTERVAL),
        };
        let mut stream = match inner.watch_after(ROOT, page.revision, options).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: watching the store failed; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        {
            let mut state = write(&state);
            *state = State {
                objects: page
                    .items
                    .into_iter()
                    .map(|kv| (kv.key.clone(), kv))
                    .collect(),
                window: VecDeque::new(),
                revision: page.revision,
                window_start: page.revision,
                ready: true,
                subscribers: Vec::new(),
            };
        }
        revision_tx.send_replace(page.revision);
        backoff = Duration::from_millis(100);

        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let revision = apply(&state, event);
                    revision_tx.send_if_modified(|r| {
                        let newer = revision > *r;
                        *r = (*r).max(revision);
                        newer
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: the store's watch ended; re-listing");
                    break;
                }
            }
        }
        let mut state = write(&state);
        state.ready = false;
        state.subscribers.clear();
    }
}

/// Applies one store event to the cache and publishes it; returns the cache's revision.
fn apply(state: &RwLock<State>, event: WatchEvent) -> Revision {
    let mut state = write(state);
    let event = match event {
        WatchEvent::Bookmark(revision) => {
            state.revision = state.revision.max(revision);
            return state.revision;
        }
        WatchEvent::Added(kv) | WatchEvent::Modified { kv, .. } => {
            match state.objects.insert(kv.key.clone(), kv.clone()) {
                Some(previous) => WatchEvent::Modified {
                    kv,
                    prev_value: Some(previous.value),
                },
                None => WatchEvent::Added(kv),
            }
        }
        WatchEvent::Deleted(kv) => {
            state.objects.remove(&kv.key);
            WatchEvent::Deleted(kv)
        }
    };
    state.revision = state.revision.max(event.revision());
    let shared = CachedEvent::new(event);
    if state.window.len() == WINDOW
        && let Some(oldest) = state.window.pop_front()
    {
        state.window_start = oldest.event.revision();
    }
    state.window.push_back(shared.clone());
    if let Some(key) = shared.event.key() {
        state.subscribers.retain(|s| {
            if !key.starts_with(&s.prefix) {
                return !s.events.is_closed();
            }
            // full: the watcher fell WATCHER_BACKLOG events behind and is cut off
            s.events.try_send(shared.clone()).is_ok()
        });
    }
    state.revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    async fn ready_cache(store: Arc<dyn Storage>) -> Arc<WatchCache> {
        let cache = WatchCache::start(store);
        assert!(cache.wait_until_ready(Duration::from_secs(5)).await);
        cache
    }

    use bytes::Bytes;

    /// A watch of everything under `prefix`, from the current objects on.
    async fn watch_all(cache: &WatchCache, prefix: &str) -> CachedWatchStream {
        cache
            .watch(prefix, 0, WatchOptions::default())
            .await
            .unwrap()
    }

    fn value(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    #[tokio::test]
    async fn consistent_lists_see_every_acknowledged_write() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        store
            .create("/registry/pods/a/one", value("1"))
            .await
            .unwrap();
        let cache = ready_cache(store.clone()).await;
        for i in 0..50 {
            store
                .create(&format!("/registry/pods/b/p{i:02}"), value("x"))
                .await
                .unwrap();
            let (revision, items) = cache.list("/registry/pods/b/", None).await.unwrap();
            assert_eq!(items.len(), i + 1, "the write just acknowledged is listed");
            assert_eq!(revision, store.current_revision().await.unwrap());
        }
        let (_, all) = cache.list("/registry/pods/", Some(0)).await.unwrap();
        assert_eq!(all.len(), 51);
        assert!(cache.list("/elsewhere/", Some(0)).await.is_none());
    }

    #[tokio::test]
    async fn watches_replay_the_window_and_follow_live_events() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let cache = ready_cache(store.clone()).await;
        let first = store.create("/registry/cm/a", value("1")).await.unwrap();
        let second = store.create("/registry/cm/b", value("2")).await.unwrap();
        cache.wait_for(second.mod_revision).await;

        // From the first write's revision: the second write from the window.
        let mut watch = cache
            .watch("/registry/cm/", first.mod_revision, WatchOptions::default())
            .await
            .unwrap();
        let replayed = watch.next().await.unwrap().unwrap();
        assert_eq!(replayed.event.key(), Some("/registry/cm/b"));

        // Live: an update arrives as MODIFIED with the previous value, a delete as DELETED.
        store
            .guaranteed_update("/registry/cm/a", &Default::default(), false, &|_| {
                Ok(value("1b"))
            })
            .await
            .unwrap();
        match &watch.next().await.unwrap().unwrap().event {
            WatchEvent::Modified { kv, prev_value } => {
                assert_eq!(kv.value, value("1b"));
                assert_eq!(prev_value.as_ref(), Some(&value("1")));
            }
            other => panic!("expected MODIFIED, got {other:?}"),
        }
        store
            .delete("/registry/cm/b", &Default::default())
            .await
            .unwrap();
        assert!(matches!(
            watch.next().await.unwrap().unwrap().event,
            WatchEvent::Deleted(_)
        ));

        // From 0: the current objects as ADDED.
        let mut fresh = watch_all(&cache, "/registry/cm/").await;
        match &fresh.next().await.unwrap().unwrap().event {
            WatchEvent::Added(kv) => assert_eq!(kv.value, value("1b")),
            other => panic!("expected ADDED, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_are_shared_between_watchers_and_memos_computed_once() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let cache = ready_cache(store.clone()).await;
        let mut one = watch_all(&cache, "/registry/cm/").await;
        let mut two = watch_all(&cache, "/registry/cm/").await;
        store.create("/registry/cm/x", value("v")).await.unwrap();
        let a = one.next().await.unwrap().unwrap();
        let b = two.next().await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one event object for both watchers");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        for event in [&a, &b] {
            let line: Bytes = event.memo("line", |_| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                value("encoded")
            });
            assert_eq!(line, value("encoded"));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_cut_off_without_slowing_others() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let cache = ready_cache(store.clone()).await;
        let mut slow = watch_all(&cache, "/registry/cm/").await;
        let mut fast = watch_all(&cache, "/registry/cm/").await;
        let total = WATCHER_BACKLOG + 2_000;
        let reader = tokio::spawn(async move {
            let mut seen = 0;
            while seen < total {
                fast.next().await.unwrap().unwrap();
                seen += 1;
            }
            seen
        });
        for i in 0..total {
            store
                .create(&format!("/registry/cm/k{i:05}"), value("v"))
                .await
                .unwrap();
        }
        assert_eq!(
            reader.await.unwrap(),
            total,
            "the fast watcher saw everything"
        );
        // The slow one drains what was buffered, then its stream ends.
        let mut drained = 0;
        while let Some(event) = slow.next().await {
            event.unwrap();
            drained += 1;
        }
        assert!(
            drained < total,
            "the slow watcher was cut off after {drained}"
        );
    }

    #[tokio::test]
    async fn a_bookmark_never_passes_events_not_yet_sent() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let cache = ready_cache(store.clone()).await;
        let options = WatchOptions {
            progress_notify: Some(Duration::from_millis(1)),
        };
        let mut watch = cache.watch("/registry/cm/", 0, options).await.unwrap();
        let total = 2_000;
        for i in 0..total {
            store
                .create(&format!("/registry/cm/k{i:05}"), value("v"))
                .await
                .unwrap();
        }
        // with bookmarks passing queued events, those events are dropped and this
        // never ends (bookmarks keep coming): a deadline makes that a failure
        let all_arrive = tokio::time::timeout(Duration::from_secs(20), async {
            let (mut seen, mut bookmarked) = (0, 0);
            while seen < total {
                let event = watch.next().await.unwrap().unwrap();
                match &event.event {
                    WatchEvent::Bookmark(revision) => bookmarked = *revision,
                    other => {
                        assert!(other.revision() > bookmarked, "an event behind a bookmark");
                        seen += 1;
                    }
                }
            }
        })
        .await;
        assert!(all_arrive.is_ok(), "every event arrives");
    }

    #[tokio::test]
    async fn events_reach_only_the_watchers_under_their_prefix() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let cache = ready_cache(store.clone()).await;
        let mut configmaps = watch_all(&cache, "/registry/cm/").await;
        let mut pods = watch_all(&cache, "/registry/pods/").await;
        let gone = watch_all(&cache, "/registry/pods/").await;
        drop(gone);
        store.create("/registry/pods/a", value("1")).await.unwrap();
        store.create("/registry/cm/b", value("2")).await.unwrap();
        let key = |e: Arc<CachedEvent>| e.event.key().map(str::to_owned);
        assert_eq!(
            key(pods.next().await.unwrap().unwrap()).as_deref(),
            Some("/registry/pods/a")
        );
        // the pod event never reached the configmap watcher
        assert_eq!(
            key(configmaps.next().await.unwrap().unwrap()).as_deref(),
            Some("/registry/cm/b")
        );
        // a dropped watcher's subscription goes with the next event after it ended
        let mut subscribers = usize::MAX;
        for i in 0..100 {
            store
                .create(&format!("/registry/other/{i}"), value("x"))
                .await
                .unwrap();
            subscribers = read(&cache.state).subscribers.len();
            if subscribers == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(subscribers, 2);
    }

    #[tokio::test]
    async fn watches_older_than_the_window_go_to_the_store() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let early = store.create("/registry/cm/a", value("1")).await.unwrap();
        store.create("/registry/cm/b", value("2")).await.unwrap();
        // The cache starts after both writes: its window begins after them.
        let cache = ready_cache(store.clone()).await;
        let mut watch = cache
            .watch("/registry/cm/", early.mod_revision, WatchOptions::default())
            .await
            .unwrap();
        assert_eq!(
            watch.next().await.unwrap().unwrap().event.key(),
            Some("/registry/cm/b"),
            "served from the store's history"
        );
    }
}
