//! The work queue every controller drains (client-go's rate-limiting work queue): a
//! key is queued at most once however often it is added, is never handed to two
//! workers at once (one added while being processed is queued again when its worker
//! is done), and failures come back after a per-key exponential delay (5 ms doubling
//! to 1000 s) that an overall token bucket (10 per second, bursts of 100) also bounds,
//! as upstream's `DefaultControllerRateLimiter`. Once [`WorkQueue::run`] names it, the
//! queue reports client-go's workqueue metrics under that name ([`crate::metrics`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::METRICS;

/// The first retry delay of a failing key.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay of a failing key.
const MAX_DELAY: Duration = Duration::from_secs(1000);
/// The overall retry rate (per second) and burst.
const BUCKET_QPS: f64 = 10.0;
const BUCKET_BURST: f64 = 100.0;
/// Delayed adds of a key due within this of the one waiting do not replace it.
const SAME_DUE_TIME: Duration = Duration::from_millis(10);

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    /// Keys waiting out an `add_after`, with when they are due (the earliest asked).
    delayed: HashMap<T, tokio::time::Instant>,
    tokens: f64,
    last_refill: Instant,
    shutting_down: bool,
}

/// A deduplicating, rate-limited queue of keys.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: tokio::sync::Notify,
    /// The controller's name, for the metrics.
    name: std::sync::OnceLock<&'static str>,
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                delayed: HashMap::new(),
                tokens: BUCKET_BURST,
                last_refill: Instant::now(),
                shutting_down: false,
            }),
            ready: tokio::sync::Notify::new(),
            name: std::sync::OnceLock::new(),
        }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: T) {
        let mut state = self.lock();
        if state.shutting_down || !state.dirty.insert(key.clone()) {
            return;
        }
        if state.processing.contains(&key) {
            // queued again by `done`
            return;
        }
        state.queue.push_back(key);
        let depth = state.queue.len();
        drop(state);
        if let Some(name) = self.name.get() {
            METRICS.adds.with_label_values(&[name]).inc();
            METRICS.depth.with_label_values(&[name]).set(depth as i64);
        }
        self.ready.notify_one();
    }

    /// Queues `key` after `delay`. As client-go's delaying queue, a key waits once: a
    /// later call for a key already due sooner changes nothing, an earlier one
    /// brings it forward (so controllers requeueing at a user's far-off deadline on
    /// every sync do not pile up timers).
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let now = tokio::time::Instant::now();
        // a delay too long to be an instant is as good as never
        let Some(due) = now.checked_add(delay) else {
            return;
        };
        {
            let mut state = self.lock();
            // (a due time a hair earlier, as a deadline recomputed on each sync gives,
            // is the same one)
            if state.shutting_down
                || state
                    .delayed
                    .get(&key)
                    .is_some_and(|d| *d <= due + SAME_DUE_TIME)
            {
                return;
            }
            state.delayed.insert(key.clone(), due);
        }
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let Some(queue) = queue.upgrade() else {
                return;
            };
            let mine = {
                let mut state = queue.lock();
                // an earlier call may have brought the key forward and already added it
                if state.delayed.get(&key) == Some(&due) {
                    state.delayed.remove(&key);
                    true
                } else {
                    false
                }
            };
            if mine {
                queue.add(key);
            }
        });
    }

    /// Queues `key` again after its failure delay.
    pub fn add_rate_limited(self: &Arc<Self>, key: T) {
        if let Some(name) = self.name.get() {
            METRICS.retries.with_label_values(&[name]).inc();
        }
        let delay = self.next_delay(&key);
        self.add_after(key, delay);
    }

    /// The delay before the next retry of `key`, counting this failure.
    fn next_delay(&self, key: &T) -> Duration {
        let mut state = self.lock();
        let failures = state.failures.entry(key.clone()).or_insert(0);
        let exponent = (*failures).min(30);
        *failures = failures.saturating_add(1);
        let item = BASE_DELAY
            .checked_mul(1u32 << exponent)
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY);
        // the token bucket: each retry takes a token; without one, it waits its turn
        let now = Instant::now();
        let elapsed = now.duration_since(state.last_refill).as_secs_f64();
        state.tokens = (state.tokens + elapsed * BUCKET_QPS).min(BUCKET_BURST);
        state.last_refill = now;
        state.tokens -= 1.0;
        let bucket = if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / BUCKET_QPS)
        };
        item.max(bucket)
    }

    /// Forgets `key`'s failures (after a successful sync).
    pub fn forget(&self, key: &T) {
        self.lock().failures.remove(key);
    }

    /// How often `key` has failed since it was last forgotten.
    pub fn requeues(&self, key: &T) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, waiting for one; `None` once shut down.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    if let Some(name) = self.name.get() {
                        METRICS
                            .depth
                            .with_label_values(&[name])
                            .set(state.queue.len() as i64);
                    }
                    return Some(key);
                }
                if state.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &T) {
        let mut state = self.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            drop(state);
            self.ready.notify_one();
        }
    }

    /// How many keys wait (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; workers waiting in [`WorkQueue::get`] return `None`.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.ready.notify_waiters();
    }

    /// Runs `workers` concurrent loops calling `sync` for each key; a failed key is
    /// retried with its failure delay, up to `max_retries` times when given (then
    /// dropped, as upstream's deployment controller does), a successful one forgotten.
    /// Returns when the queue shuts down.
    pub async fn run<F, Fut, E>(
        self: Arc<Self>,
        workers: usize,
        max_retries: Option<u32>,
        controller: &'static str,
        sync: F,
    ) where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
        T: std::fmt::Display + Sync,
    {
        if self.name.set(controller).is_ok() {
            // what the handlers queued before the workers started
            let depth = self.len();
            METRICS
                .adds
                .with_label_values(&[controller])
                .inc_by(depth as u64);
            METRICS
                .depth
                .with_label_values(&[controller])
                .set(depth as i64);
        }
        let sync = Arc::new(sync);
        let loops = (0..workers.max(1)).map(|_| {
            let queue = self.clone();
            let sync = sync.clone();
            async move {
                while let Some(key) = queue.get().await {
                    let started = std::time::Instant::now();
                    let result = sync(key.clone()).await;
                    METRICS
                        .work_duration
                        .with_label_values(&[controller])
                        .observe(started.elapsed().as_secs_f64());
                    match result {
                        Ok(()) => queue.forget(&key),
                        Err(e) => {
                            if max_retries.is_some_and(|max| queue.requeues(&key) >= max) {
                                tracing::info!(%controller, %key, error = %e, "dropping key out of the queue");
                                queue.forget(&key);
                            } else {
                                tracing::debug!(%controller, %key, error = %e, "sync failed; retrying");
                                queue.add_rate_limited(key.clone());
                            }
                        }
                    }
                    queue.done(&key);
                }
            }
        });
        futures::future::join_all(loops).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_once_and_never_goes_to_two_workers() {
        let q = WorkQueue::<String>::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        let first = q.get().await.unwrap();
        assert_eq!(first, "a");
        // added while processing: not handed out until done
        q.add("a".into());
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done(&"a".to_string());
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_until_forgotten() {
        let q = WorkQueue::<String>::new();
        let key = "k".to_string();
        assert_eq!(q.next_delay(&key), Duration::from_millis(5));
        assert_eq!(q.next_delay(&key), Duration::from_millis(10));
        assert_eq!(q.next_delay(&key), Duration::from_millis(20));
        assert_eq!(q.requeues(&key), 3);
        q.forget(&key);
        assert_eq!(q.requeues(&key), 0);
        assert_eq!(q.next_delay(&key), Duration::from_millis(5));
        for _ in 0..40 {
            q.next_delay(&key);
        }
        assert!(q.next_delay(&key) <= MAX_DELAY.max(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn the_bucket_spaces_out_a_storm_of_retries() {
        let q = WorkQueue::<u32>::new();
        let delays: Vec<Duration> = (0..110).map(|k| q.next_delay(&k)).collect();
        assert!(delays[..100].iter().all(|d| *d == BASE_DELAY));
        assert!(
            delays[105] > Duration::from_millis(400),
            "{:?}",
            delays[105]
        );
    }

    #[tokio::test]
    async fn a_delayed_key_waits_once_at_its_earliest_time() {
        let q = WorkQueue::<u32>::new();
        q.add_after(1, Duration::from_secs(3600));
        q.add_after(1, Duration::from_secs(3600));
        q.add_after(1, Duration::from_secs(7200));
        assert_eq!(q.lock().delayed.len(), 1);
        // brought forward
        q.add_after(1, Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(q.len(), 1);
        assert!(q.lock().delayed.is_empty());
        assert_eq!(q.get().await, Some(1));
        q.done(&1);
        // the hour's timer no longer owns the key: a new delay is taken
        q.add_after(1, Duration::from_millis(50));
        assert_eq!(q.lock().delayed.len(), 1);
    }

    #[tokio::test]
    async fn shutting_down_releases_waiting_workers() {
        let q = WorkQueue::<u32>::new();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
        q.add(1);
        assert!(q.is_empty());
    }
}
