//! Events (core/v1) about any object, as client-go's event recorder: written
//! asynchronously so a scheduling loop or a controller's sync never waits on them, and
//! folded as upstream's event correlator does: a repeat of the same reason and message
//! for the same object bumps `count` and `lastTimestamp` of the existing Event instead
//! of creating another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};

/// How many events may wait to be written; more are dropped (as upstream's broadcaster
/// drops when its queue is full) rather than slowing its caller down.
const QUEUE: usize = 10_000;
/// Events written at once.
const CONCURRENCY: usize = 16;
/// How long a repeat is folded into the earlier Event.
const FOLD_WINDOW: Duration = Duration::from_secs(10 * 60);

struct Request {
    object: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
    component: String,
}

/// Sends events to the writer task.
#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<Request>,
}

type FoldKey = (String, &'static str, String);

impl Recorder {
    /// Starts the writer on the current runtime.
    pub fn start(client: kube::Client, host: String) -> Recorder {
        let (tx, rx) = tokio::sync::mpsc::channel::<Request>(QUEUE);
        let folded: Arc<Mutex<HashMap<FoldKey, (String, i32, Instant)>>> = Default::default();
        tokio::spawn(
            tokio_stream::wrappers::ReceiverStream::new(rx).for_each_concurrent(
                CONCURRENCY,
                move |r| {
                    let client = client.clone();
                    let folded = folded.clone();
                    let host = host.clone();
                    async move { write(client, folded, &host, r).await }
                },
            ),
        );
        Recorder { tx }
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
        // a full queue drops the event, as upstream does
        let _ = self.tx.try_send(Request {
            object,
            type_,
            reason,
            message,
            component: component.to_owned(),
        });
    }
}

async fn write(
    client: kube::Client,
    folded: Arc<Mutex<HashMap<FoldKey, (String, i32, Instant)>>>,
    host: &str,
    r: Request,
) {
    // events of cluster-scoped objects live in `default`, as upstream's
    let namespace = r
        .object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let object_name = r.object.name.clone().unwrap_or_default();
    let uid = r.object.uid.clone().unwrap_or_default();
    let api: kube::Api<Event> = kube::Api::namespaced(client, &namespace);
    let now = Time(jiff::Timestamp::now());
    let key = (uid.clone(), r.reason, r.message.clone());
    let earlier = {
        let mut map = folded.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, _, at)| at.elapsed() < FOLD_WINDOW);
        match map.get_mut(&key) {
            Some((name, count, _)) => {
                *count += 1;
                Some((name.clone(), *count))
            }
            None => None,
        }
    };
    if let Some((name, count)) = earlier {
        let patch = serde_json::json!({"count": count, "lastTimestamp": now});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            Err(e) => tracing::debug!(error = %e, "folding event; creating a new one"),
        }
    }
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let name = format!("{object_name}.{nanos:x}");
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: r.object,
        reason: Some(r.reason.to_owned()),
        message: Some(r.message),
        type_: Some(r.type_.to_owned()),
        source: Some(EventSource {
            component: Some(r.component.clone()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some(r.component.clone()),
        reporting_instance: Some(format!("{}-{host}", r.component)),
        ..Event::default()
    };
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            folded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (name, 1, Instant::now()));
        }
        // the namespace may be going away; events are best effort, as upstream's
        Err(e) => tracing::debug!(error = %e, "writing event"),
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
