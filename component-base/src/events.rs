//! Events (core/v1) about any object, as client-go's event recorder: written
//! asynchronously so a scheduling loop or a controller's sync never waits on them, and
//! passed first through upstream's event correlator (client-go `tools/record`):
//!
//! - **aggregation**: once ten events about one object share source, type and reason
//!   but not message within ten minutes, the rest become one Event whose message is
//!   `(combined from similar events): <latest message>`;
//! - **deduplication**: a repeat of an Event already written bumps its `count` and
//!   `lastTimestamp` (a patch) instead of creating another;
//! - **spam filter**: a source may write 25 events about one object at once, then one
//!   every five minutes; the rest are dropped.
//!
//! A 1,000-replica ReplicaSet so writes 25 events about itself, not 1,000 (nine
//! `Created pod` events, then the combined one patched), as upstream's does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};

/// How many events may wait to be written; more are dropped (as upstream's broadcaster
/// drops when its queue is full) rather than slowing its caller down.
const QUEUE: usize = 10_000;
/// Writers working at once. Each writes its events one after another, and all events
/// about one object go to the same writer, so an Event's create lands before the
/// patches that count its repeats, in order (upstream writes every event in turn).
const LANES: usize = 16;
/// Entries each of the correlator's caches keeps (upstream's `maxLruCacheEntries`).
const CACHE_ENTRIES: usize = 4096;
/// Distinct messages of similar events before they are combined
/// (`defaultAggregateMaxEvents`).
const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long after the last similar event the count of distinct messages starts over
/// (`defaultAggregateIntervalInSeconds`).
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// Events a source may write about one object at once (`defaultSpamBurst`)...
const SPAM_BURST: f64 = 25.0;
/// ...and the rate its allowance refills at, one every five minutes (`defaultSpamQPS`).
const SPAM_QPS: f64 = 1.0 / 300.0;
/// The message prefix of a combined event (`EventAggregatorByReasonMessageFunc`).
const COMBINED_PREFIX: &str = "(combined from similar events): ";
/// Attempts at writing one event while the apiserver cannot be reached
/// (`maxTriesPerEvent`)...
const WRITE_TRIES: u32 = 12;
/// ...and the pause between them (`defaultSleepDuration`).
const RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Sends events to the writer tasks.
#[derive(Clone)]
pub struct Recorder {
    lanes: std::sync::Arc<Vec<tokio::sync::mpsc::Sender<Write>>>,
    correlator: std::sync::Arc<std::sync::Mutex<Correlator>>,
    host: String,
}

impl Recorder {
    /// Starts the writers on the current runtime, with client-go's event correlator
    /// (aggregation, counting, the spam filter), as a controller's recorder.
    pub fn start(client: kube::Client, host: String) -> Recorder {
        Recorder::with_correlator(client, host, Correlator::default())
    }

    /// Starts the writers with repeats counted but neither combined nor rate-limited,
    /// as upstream's events.k8s.io recorder (the scheduler's) counts a series.
    pub fn start_counting_only(client: kube::Client, host: String) -> Recorder {
        let correlator = Correlator {
            counting_only: true,
            ..Correlator::default()
        };
        Recorder::with_correlator(client, host, correlator)
    }

    fn with_correlator(client: kube::Client, host: String, correlator: Correlator) -> Recorder {
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Write>(QUEUE / LANES);
                let client = client.clone();
                tokio::spawn(async move {
                    while let Some(w) = rx.recv().await {
                        write_with_retries(&client, &w, RETRY_PAUSE).await;
                    }
                });
                tx
            })
            .collect();
        Recorder {
            lanes: std::sync::Arc::new(lanes),
            correlator: std::sync::Arc::new(std::sync::Mutex::new(correlator)),
            host,
        }
    }

    /// Records an event about `object`; `component` is the reporting component (a
    /// scheduler profile's name, a controller's name).
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: &'static str,
        reason: &'static str,
        message: String,
        component: &str,
    ) {
        self.event_about(reference(object), type_, reason, message, component);
    }

    /// Records an event about the object `object` refers to.
    pub fn event_about(
        &self,
        object: ObjectReference,
        type_: &'static str,
        reason: &'static str,
        message: String,
        component: &str,
    ) {
        let lane = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (&object.uid, &object.namespace, &object.name).hash(&mut hasher);
            (hasher.finish() % LANES as u64) as usize
        };
        // a full queue drops the event before the correlator counts it, as upstream's
        // broadcaster drops before correlating
        let Ok(slot) = self.lanes[lane].try_reserve() else {
            return;
        };
        let event = new_event(
            object,
            type_,
            reason,
            message,
            component,
            &self.host,
            jiff::Timestamp::now(),
        );
        let write = self
            .correlator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .correlate(event, Instant::now());
        if let Some(write) = write {
            slot.send(write);
        }
    }
}

/// A new Event, named as upstream's recorder names them: the object's name and the
/// time in hex nanoseconds. Events of cluster-scoped objects live in `default`.
fn new_event(
    object: ObjectReference,
    type_: &str,
    reason: &str,
    message: String,
    component: &str,
    host: &str,
    now: jiff::Timestamp,
) -> Event {
    let namespace = object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let name = format!(
        "{}.{:x}",
        object.name.as_deref().unwrap_or_default(),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: object,
        reason: Some(reason.to_owned()),
        message: Some(message),
        type_: Some(type_.to_owned()),
        source: Some(EventSource {
            component: Some(component.to_owned()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(component.to_owned()),
        reporting_instance: Some(format!("{component}-{host}")),
        ..Event::default()
    }
}

/// What the writer does with one correlated event.
#[derive(Debug, PartialEq)]
enum Write {
    /// Creates the Event.
    Create(Event),
    /// Bumps the count of an Event written before: a merge patch of `count`,
    /// `lastTimestamp` and `message`; should the Event be gone, it is created whole.
    Update(Event),
}

/// How often an Event was written, for deduplication (upstream's `eventLog`).
struct Observation {
    name: String,
    count: i32,
    first_timestamp: Option<Time>,
}

/// Similar events seen lately (upstream's `aggregateRecord`).
struct Aggregate {
    messages: HashSet<String>,
    last: Instant,
}

/// A source's allowance of events about one object: a token bucket.
struct Allowance {
    tokens: f64,
    refilled: Instant,
}

/// Upstream's `EventCorrelator`: aggregation, then deduplication, then the spam filter.
struct Correlator {
    aggregates: LruCache<String, Aggregate>,
    observations: LruCache<String, Observation>,
    allowances: LruCache<String, Allowance>,
    /// Deduplication only (the events.k8s.io recorder's series).
    counting_only: bool,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator {
            aggregates: LruCache::new(CACHE_ENTRIES),
            observations: LruCache::new(CACHE_ENTRIES),
            allowances: LruCache::new(CACHE_ENTRIES),
            counting_only: false,
        }
    }
}

/// The source and object of an event: what every key starts with.
fn source_and_object(event: &Event) -> String {
    let source = event.source.as_ref();
    let object = &event.involved_object;
    [
        source.and_then(|s| s.component.as_deref()),
        source.and_then(|s| s.host.as_deref()),
        object.kind.as_deref(),
        object.namespace.as_deref(),
        object.name.as_deref(),
        object.uid.as_deref(),
        object.api_version.as_deref(),
    ]
    .map(Option::unwrap_or_default)
    .join("\u{0}")
}

impl Correlator {
    /// What to write for `event`, or `None` when the spam filter drops it.
    fn correlate(&mut self, event: Event, now: Instant) -> Option<Write> {
        // the combined event keeps the source and object, so one key serves all steps
        let source_and_object = source_and_object(&event);
        let (event, key) = self.aggregate(event, &source_and_object, now);
        let event = self.observe(event, key);
        if !self.counting_only && !self.allow(source_and_object, now) {
            return None;
        }
        Some(if event.count.unwrap_or(1) > 1 {
            Write::Update(event)
        } else {
            Write::Create(event)
        })
    }

    /// Upstream's `EventAggregate`: the event itself and its full key, or, from the
    /// tenth distinct message of similar events on, the combined event and the key of
    /// the similarity.
    fn aggregate(
        &mut self,
        event: Event,
        source_and_object: &str,
        now: Instant,
    ) -> (Event, String) {
        let object = &event.involved_object;
        let field = |v: &Option<String>| v.clone().unwrap_or_default();
        let message = field(&event.message);
        let similar = [
            source_and_object.to_owned(),
            field(&event.type_),
            field(&event.reason),
            field(&event.reporting_component),
            field(&event.reporting_instance),
        ]
        .join("\u{0}");
        let full = [
            source_and_object.to_owned(),
            field(&object.field_path),
            field(&event.type_),
            field(&event.reason),
            message.clone(),
        ]
        .join("\u{0}");
        if self.counting_only {
            return (event, full);
        }
        let recent = self
            .aggregates
            .get(&similar)
            .is_some_and(|r| now.saturating_duration_since(r.last) <= AGGREGATE_INTERVAL);
        if !recent {
            let fresh = Aggregate {
                messages: HashSet::new(),
                last: now,
            };
            self.aggregates.insert(similar.clone(), fresh);
        }
        let Some(record) = self.aggregates.get_mut(&similar) else {
            return (event, full);
        };
        record.messages.insert(message.clone());
        record.last = now;
        if record.messages.len() < AGGREGATE_MAX_EVENTS {
            return (event, full);
        }
        // keep the set at its bound, as upstream's PopAny
        if let Some(any) = record.messages.iter().next().cloned() {
            record.messages.remove(&any);
        }
        let combined = Event {
            metadata: event.metadata.clone(),
            involved_object: event.involved_object.clone(),
            message: Some(format!("{COMBINED_PREFIX}{message}")),
            type_: event.type_.clone(),
            reason: event.reason.clone(),
            source: event.source.clone(),
            first_timestamp: event.first_timestamp.clone(),
            last_timestamp: event.last_timestamp.clone(),
            count: Some(1),
            ..Event::default()
        };
        (combined, similar)
    }

    /// Upstream's `eventObserve`: an event seen before under `key` takes the earlier
    /// Event's name and first timestamp and the next count.
    fn observe(&mut self, mut event: Event, key: String) -> Event {
        if let Some(earlier) = self.observations.get(&key) {
            event.metadata.name = Some(earlier.name.clone());
            event.first_timestamp = earlier.first_timestamp.clone();
            event.count = Some(earlier.count.saturating_add(1));
        }
        self.observations.insert(
            key,
            Observation {
                name: event.metadata.name.clone().unwrap_or_default(),
                count: event.count.unwrap_or(1),
                first_timestamp: event.first_timestamp.clone(),
            },
        );
        event
    }

    /// Upstream's `EventSourceObjectSpamFilter`: whether the source may still write
    /// about the object (`key`, from [`source_and_object`]).
    fn allow(&mut self, key: String, now: Instant) -> bool {
        if self.allowances.get(&key).is_none() {
            self.allowances.insert(
                key.clone(),
                Allowance {
                    tokens: SPAM_BURST,
                    refilled: now,
                },
            );
        }
        let Some(allowance) = self.allowances.get_mut(&key) else {
            return true;
        };
        let elapsed = now.saturating_duration_since(allowance.refilled);
        allowance.tokens = (allowance.tokens + elapsed.as_secs_f64() * SPAM_QPS).min(SPAM_BURST);
        allowance.refilled = now;
        if allowance.tokens >= 1.0 {
            allowance.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Writes an event, trying again while the apiserver cannot be reached, as client-go's
/// `recordToSink`: up to [`WRITE_TRIES`] attempts, [`RETRY_PAUSE`] apart, the first
/// pause a random part of it so that clients that lost the apiserver together do not
/// come back together. An answer from the server, even a refusal, ends it: something
/// about the event is wrong and trying again would not mend it. The lane waits
/// meanwhile, as upstream's writer does ("hold everything while we keep trying").
async fn write_with_retries(client: &kube::Client, write: &Write, pause: Duration) {
    for attempt in 1..=WRITE_TRIES {
        match write_once(client.clone(), write).await {
            Ok(()) => return,
            Err(e) if !unreachable(&e) => {
                // refused (the namespace is terminating, say); events are best effort
                tracing::debug!(error = %e, "the apiserver refused an event; not retrying");
                return;
            }
            Err(e) if attempt == WRITE_TRIES => {
                tracing::error!(error = %e, "unable to write an event (retry limit exceeded)");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, "unable to write an event; retrying");
                let pause = if attempt == 1 {
                    pause.mul_f64(rand::random::<f64>())
                } else {
                    pause
                };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Whether a write failed for want of the server (worth retrying) rather than being
/// answered, unbuildable or answered with something unexpected (upstream's
/// `StatusError`, `RequestConstructionError` and `UnexpectedObjectError`).
fn unreachable(error: &kube::Error) -> bool {
    !matches!(
        error,
        kube::Error::Api(_)
            | kube::Error::BuildRequest(_)
            | kube::Error::HttpError(_)
            | kube::Error::SerdeError(_)
    )
}

/// One attempt: a repeat patches the earlier Event (created anew when it is gone), a
/// first occurrence creates it.
async fn write_once(client: kube::Client, write: &Write) -> Result<(), kube::Error> {
    let (event, update) = match write {
        Write::Create(event) => (event, false),
        Write::Update(event) => (event, true),
    };
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let name = event.metadata.name.clone().unwrap_or_default();
    let api: kube::Api<Event> = kube::Api::namespaced(client, &namespace);
    if update {
        let patch = serde_json::json!({
            "count": event.count,
            "lastTimestamp": event.last_timestamp,
            "message": event.message,
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            // gone (expired, deleted): written anew with its count, as upstream does
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    match api.create(&PostParams::default(), event).await {
        Ok(_) => Ok(()),
        // already written (an earlier attempt landed after all), as upstream's
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A reference to `object` for an Event's `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs_event(message: &str, at: jiff::Timestamp) -> Event {
        let object = ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("web-1".into()),
            namespace: Some("prod".into()),
            uid: Some("u1".into()),
            ..ObjectReference::default()
        };
        new_event(
            object,
            "Normal",
            "SuccessfulCreate",
            message.to_owned(),
            "replicaset-controller",
            "host",
            at,
        )
    }

    fn message(w: &Write) -> (&'static str, String, i32, String) {
        let (kind, e) = match w {
            Write::Create(e) => ("create", e),
            Write::Update(e) => ("update", e),
        };
        (
            kind,
            e.message.clone().unwrap_or_default(),
            e.count.unwrap_or(0),
            e.metadata.name.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn a_thousand_creates_write_nine_events_then_one_combined_until_the_burst_is_spent() {
        let mut c = Correlator::default();
        let start = Instant::now();
        let t0 = jiff::Timestamp::now();
        let writes: Vec<_> = (0..1000)
            .filter_map(|i| {
                let at = t0 + jiff::SignedDuration::from_millis(i);
                c.correlate(rs_event(&format!("Created pod: web-1-{i}"), at), start)
            })
            .collect();
        // the spam filter's burst: 25 writes about the ReplicaSet
        assert_eq!(writes.len(), 25);
        let seen: Vec<_> = writes.iter().map(message).collect();
        for (i, (kind, text, count, _)) in seen.iter().take(9).enumerate() {
            assert_eq!(
                (*kind, text.as_str(), *count),
                ("create", format!("Created pod: web-1-{i}").as_str(), 1)
            );
        }
        // the tenth distinct message starts the combined event...
        assert_eq!(
            (seen[9].0, seen[9].1.as_str(), seen[9].2),
            (
                "create",
                "(combined from similar events): Created pod: web-1-9",
                1
            )
        );
        // ...which the next ones update, under its name, with the latest message
        let combined_name = seen[9].3.clone();
        for (j, (kind, text, count, name)) in seen.iter().enumerate().skip(10) {
            assert_eq!(*kind, "update");
            assert_eq!(*name, combined_name);
            assert_eq!(*count, j as i32 - 8);
            assert_eq!(
                *text,
                format!("(combined from similar events): Created pod: web-1-{j}")
            );
        }
        // five minutes later the source may write one more
        let later = start + Duration::from_secs(301);
        let next = c.correlate(rs_event("Created pod: web-1-x", t0), later);
        assert!(matches!(next, Some(Write::Update(_))), "{next:?}");
        assert!(
            c.correlate(rs_event("Created pod: web-1-y", t0), later)
                .is_none()
        );
    }

    #[test]
    fn counting_only_neither_combines_nor_drops() {
        let mut c = Correlator {
            counting_only: true,
            ..Correlator::default()
        };
        let now = Instant::now();
        let t0 = jiff::Timestamp::now();
        let writes: Vec<_> = (0..40)
            .filter_map(|i| c.correlate(rs_event(&format!("m{}", i % 20), t0), now))
            .map(|w| message(&w))
            .collect();
        assert_eq!(writes.len(), 40);
        assert!(
            writes
                .iter()
                .all(|(_, text, _, _)| !text.starts_with(COMBINED_PREFIX))
        );
        // the second round repeats the first: counted
        assert_eq!((writes[20].0, writes[20].2), ("update", 2));
    }

    #[test]
    fn a_repeated_event_updates_the_first_one_with_its_count() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let t0 = jiff::Timestamp::now();
        let first = c
            .correlate(rs_event("Error creating: quota", t0), now)
            .unwrap();
        let later = t0 + jiff::SignedDuration::from_secs(5);
        let second = c
            .correlate(rs_event("Error creating: quota", later), now)
            .unwrap();
        let (Write::Create(first), Write::Update(second)) = (first, second) else {
            panic!("a create, then an update");
        };
        assert_eq!(second.metadata.name, first.metadata.name);
        assert_eq!(second.count, Some(2));
        assert_eq!(second.first_timestamp, first.first_timestamp);
        assert_eq!(second.last_timestamp, Some(Time(later)));
    }

    #[test]
    fn similar_events_start_over_after_ten_quiet_minutes_and_objects_are_apart() {
        let mut c = Correlator::default();
        let start = Instant::now();
        let t0 = jiff::Timestamp::now();
        for i in 0..9 {
            c.correlate(rs_event(&format!("m{i}"), t0), start);
        }
        let later = start + AGGREGATE_INTERVAL + Duration::from_secs(1);
        let w = c.correlate(rs_event("m9", t0), later).unwrap();
        assert_eq!(
            message(&w).1,
            "m9",
            "the count of distinct messages started over"
        );
        // another object has its own allowance and its own similarity
        let mut object = rs_event("m0", t0).involved_object;
        object.name = Some("web-2".into());
        object.uid = Some("u2".into());
        let other = new_event(
            object,
            "Normal",
            "SuccessfulCreate",
            "m0".into(),
            "replicaset-controller",
            "host",
            t0,
        );
        let w = c.correlate(other, later).unwrap();
        assert_eq!(message(&w).0, "create");
        assert!(message(&w).3.starts_with("web-2."));
    }

    /// A kube client whose every request is answered by `answer(n)` (n counts from 1),
    /// and the count of requests it saw.
    fn scripted_client(
        answer: fn(usize) -> Option<(u16, serde_json::Value)>,
    ) -> (kube::Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let Some((status, body)) = answer(n) else {
                    return Err::<_, tower::BoxError>("connection refused".into());
                };
                let body = kube::client::Body::from(serde_json::to_vec(&body).unwrap());
                Ok(http::Response::builder().status(status).body(body).unwrap())
            }
        });
        (kube::Client::new(service, "default"), calls)
    }

    fn created() -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.1", "namespace": "prod"}, "involvedObject": {}})
    }

    fn calls(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn writes_are_retried_while_the_apiserver_cannot_be_reached() {
        let write = Write::Create(rs_event("Created pod: web-1-a", jiff::Timestamp::now()));
        let pause = Duration::from_millis(1);
        // three transport failures, then the server answers
        let (client, seen) = scripted_client(|n| (n > 3).then(|| (201, created())));
        write_with_retries(&client, &write, pause).await;
        assert_eq!(calls(&seen), 4);
        // never reachable: upstream's twelve attempts, then it gives up
        let (client, seen) = scripted_client(|_| None);
        write_with_retries(&client, &write, pause).await;
        assert_eq!(calls(&seen), WRITE_TRIES as usize);
    }

    #[tokio::test]
    async fn a_refused_write_is_not_retried() {
        let write = Write::Create(rs_event("Created pod: web-1-a", jiff::Timestamp::now()));
        let (client, seen) = scripted_client(|_| {
            let status = serde_json::json!({"apiVersion": "v1", "kind": "Status",
                "status": "Failure", "reason": "Forbidden", "code": 403,
                "message": "events is forbidden: unable to create new content in namespace prod because it is being terminated"});
            Some((403, status))
        });
        write_with_retries(&client, &write, Duration::from_millis(1)).await;
        assert_eq!(calls(&seen), 1);
    }

    #[tokio::test]
    async fn a_repeat_of_a_gone_event_is_created_anew() {
        let mut event = rs_event("Created pod: web-1-a", jiff::Timestamp::now());
        event.count = Some(2);
        // the patch finds nothing (404), the create lands
        let (client, seen) = scripted_client(|n| {
            Some(match n {
                1 => (
                    404,
                    serde_json::json!({"apiVersion": "v1", "kind": "Status",
                    "status": "Failure", "reason": "NotFound", "code": 404, "message": "gone"}),
                ),
                _ => (201, created()),
            })
        });
        write_with_retries(&client, &Write::Update(event), Duration::from_millis(1)).await;
        assert_eq!(calls(&seen), 2);
    }
}
