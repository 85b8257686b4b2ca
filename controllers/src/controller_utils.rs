//! Pod helpers shared by the controllers that own pods (upstream's
//! `pkg/controller/controller_utils.go` and `controller_ref_manager.go`): which pods
//! count (active, ready, available), the pod a controller creates from its template,
//! controller ownerReferences and the claim (adopt/release) decision, the order in
//! which surplus pods are deleted, slow-start batching of creates, and the
//! expectations that keep a controller from acting twice on what it has not yet seen;
//! also the messages of failed requests, the fresh recheck of an owner before it
//! adopts, and the routing of owned objects' events to the owners they concern.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apimachinery::labels::{self, Labels, Selector};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use kube::api::Api;
use serde::de::DeserializeOwned;

use crate::informers::Informer;

/// How long expectations are trusted before a controller acts anyway (upstream's
/// `ExpectationsTimeout`): a watch event that never arrives cannot stall it forever.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The first batch of a slow start (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// The annotation ranking pods for deletion (upstream's `PodDeletionCost`, on by
/// default since 1.22): lower cost goes first.
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Whether `pod` still counts towards its controller: not finished and not being
/// deleted (upstream's `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The `Ready` condition of `pod`, if reported.
fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether `pod`'s `Ready` condition is `True` (upstream's `IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Whether `pod` has been ready for at least `min_ready_seconds` at `now` (upstream's
/// `IsPodAvailable`): with no minimum, ready is enough; otherwise the Ready
/// condition's transition must be known and old enough.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    let Some(ready) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    match &ready.last_transition_time {
        Some(Time(since)) => {
            let min = jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
            since
                .checked_add(min)
                .is_ok_and(|available_at| available_at < now)
        }
        None => false,
    }
}

/// A controller ownerReference to `owner` (upstream's `metav1.NewControllerRef`):
/// `controller` and `blockOwnerDeletion` set, so the garbage collector deletes the
/// pod with its owner and foreground deletion waits for it.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The ownerReference with `controller: true` in `meta`, if any (upstream's
/// `metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The `generateName` of pods created for `controller_name` (upstream's
/// `getPodsPrefix`): `<name>-`, or the bare name when the dash would make it too long
/// to be a valid name prefix.
pub fn pod_name_prefix(controller_name: &str) -> String {
    let prefix = format!("{controller_name}-");
    // as upstream's ValidatePodName(prefix, true): a trailing dash is checked as if it
    // were a letter, since a random suffix follows it
    let masked = format!("{controller_name}a");
    if labels::is_dns1123_subdomain(&masked).is_empty() {
        prefix
    } else {
        controller_name.to_owned()
    }
}

/// The pod a controller creates from its template (upstream's `GetPodFromTemplate`):
/// the template's labels, annotations and finalizers, a name generated from the
/// controller's, `controller_ref` as its only ownerReference and the template's spec.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    controller_name: &str,
    controller_ref: Option<OwnerReference>,
) -> Pod {
    let meta = template.metadata.as_ref();
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            generate_name: Some(pod_name_prefix(controller_name)),
            labels: meta.and_then(|m| m.labels.clone()),
            annotations: meta.and_then(|m| m.annotations.clone()),
            finalizers: meta.and_then(|m| m.finalizers.clone()),
            owner_references: controller_ref.map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Parses an API label selector as upstream's `metav1.LabelSelectorAsSelector`: `None`
/// selects nothing, an empty selector everything.
pub fn label_selector(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Selector, apimachinery::labels::LabelSelectorError> {
    let converted = selector.map(|s| apimachinery::labels::LabelSelector {
        match_labels: s.match_labels.clone(),
        match_expressions: s.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| apimachinery::labels::LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone(),
                })
                .collect()
        }),
    });
    Selector::from_label_selector(converted.as_ref())
}

/// The labels of an object, empty when it has none.
pub fn labels_of(meta: &ObjectMeta) -> Labels {
    meta.labels.clone().unwrap_or_default()
}

/// What a controller does with one pod it lists (upstream's
/// `BaseControllerRefManager.ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and still selected: it counts.
    Keep,
    /// An orphan we select: adopt it (then it counts).
    Adopt,
    /// Ours but no longer selected: let it go (it does not count).
    Release,
    /// Someone else's, or not ours to touch now: it does not count.
    Ignore,
}

/// Decides the [`Claim`] of `pod` by the controller `controller` (whose uid,
/// namespace and deletion state count) selecting with `selector`. A controller being
/// deleted neither adopts nor releases, and a pod being deleted is not adopted.
pub fn claim<K: Resource>(controller: &K, selector: &Selector, pod: &Pod) -> Claim {
    let owner = controller.meta();
    let owner_deleting = owner.deletion_timestamp.is_some();
    let matches = selector.matches(&labels_of(&pod.metadata));
    if let Some(reference) = controller_of(&pod.metadata) {
        if Some(&reference.uid) != owner.uid.as_ref() {
            return Claim::Ignore;
        }
        return if matches {
            Claim::Keep
        } else if owner_deleting {
            Claim::Ignore
        } else {
            Claim::Release
        };
    }
    if owner_deleting || !matches || pod.metadata.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    let owner_namespace = owner.namespace.as_deref().unwrap_or_default();
    if !owner_namespace.is_empty() && Some(owner_namespace) != pod.metadata.namespace.as_deref() {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// The strategic merge patch adopting `pod` (upstream's `PodControllerRefManager.AdoptPod`):
/// adds the controller reference; the pod's uid makes it fail if the pod was replaced.
pub fn adopt_patch(owner: &OwnerReference, pod_uid: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "uid": pod_uid,
        }
    })
}

/// The strategic merge patch releasing `pod` from the owner `owner_uid` (upstream's
/// `ReleasePod`): deletes that ownerReference by its merge key.
pub fn release_patch(owner_uid: &str, pod_uid: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": pod_uid,
        }
    })
}

/// Runs `count` calls of `call` in batches of 1, 2, 4, ... (upstream's
/// `slowStartBatch`), the calls of a batch concurrently; after a batch with a failure
/// no further batch starts. Returns how many calls succeeded and the first error.
/// A request doomed to fail (a quota, a bad template) is then tried once or twice,
/// not `count` times, and the events it would emit are not multiplied either.
pub async fn slow_start_batch<F, Fut, E>(
    count: usize,
    initial_batch_size: usize,
    call: F,
) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial_batch_size.max(1));
    while batch > 0 {
        let started = std::time::Instant::now();
        let results = futures::future::join_all((0..batch).map(|_| call())).await;
        tracing::trace!(batch, took = ?started.elapsed(), "slow-start batch done");
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => successes += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
        remaining -= batch;
        batch = remaining.min(batch.saturating_mul(2));
    }
    (successes, None)
}

/// The key of a pod in deletion expectations (upstream's `PodKey`).
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

// ---- deletion order (upstream's ActivePodsWithRanks) ----

/// Upstream's `podPhaseToOrdinal`: pending pods go before unknown ones, which go
/// before running ones; any other phase ranks as pending.
fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// The pod-deletion-cost annotation; missing or invalid counts as 0.
fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

/// When the pod became ready (its Ready condition's transition), if it is ready.
fn ready_time(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// The highest restart count of the regular containers, then of the sidecars
/// (restartable init containers), as upstream's `maxContainerRestarts`.
fn max_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
        .max(0);
    let sidecars: HashSet<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
        .max(0);
    (regular, sidecar)
}

/// Upstream's `afterOrZero`: a missing time counts as later than any known one.
fn after_or_zero(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (a, _) => a.is_none(),
    }
}

/// Upstream's `logarithmicRankDiff`: compares how long ago `a` and `b` were on a
/// base-2 logarithmic scale of nanoseconds, so pods of similar age rank alike
/// (`LogarithmicScaleDown`, on by default since 1.22).
fn logarithmic_rank_diff(a: jiff::Timestamp, b: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let rank = |t: jiff::Timestamp| {
        let nanos = now.as_nanosecond() - t.as_nanosecond();
        if nanos > 0 {
            (nanos as f64).log2().floor() as i64
        } else {
            -1
        }
    };
    rank(a) - rank(b)
}

/// Whether `a` and `b`'s times put `a` first: later (or unknown) first, or on the
/// logarithmic scale with the uid breaking ties.
fn time_order(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    uids: (&str, &str),
) -> bool {
    match (a, b) {
        (Some(ta), Some(tb)) => match logarithmic_rank_diff(ta, tb, now) {
            0 => uids.0 < uids.1,
            diff => diff < 0,
        },
        _ => after_or_zero(a, b),
    }
}

/// Whether `a` (with `rank_a` related pods on its node) should be deleted before `b`
/// (upstream's `ActivePodsWithRanks.Less`): unassigned before assigned; pending before
/// unknown before running; not ready before ready; lower deletion cost first; more
/// co-located pods first; ready for less time first; more restarts first; newer first.
pub fn delete_before(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: jiff::Timestamp) -> bool {
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    let (ready_a, ready_b) = (is_pod_ready(a), is_pod_ready(b));
    if ready_a != ready_b {
        return !ready_a;
    }
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    let uids = (
        a.metadata.uid.as_deref().unwrap_or_default(),
        b.metadata.uid.as_deref().unwrap_or_default(),
    );
    if ready_a && ready_b {
        let (since_a, since_b) = (ready_time(a), ready_time(b));
        if since_a != since_b {
            return time_order(since_a, since_b, now, uids);
        }
    }
    let (restarts_a, restarts_b) = (max_restarts(a), max_restarts(b));
    if restarts_a.0 != restarts_b.0 {
        return restarts_a.0 > restarts_b.0;
    }
    if restarts_a.1 != restarts_b.1 {
        return restarts_a.1 > restarts_b.1;
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if created(a) != created(b) {
        return time_order(created(a), created(b), now, uids);
    }
    false
}

/// Sorts `pods` (each with its rank: how many related active pods share its node) so
/// that those to delete first come first, by [`delete_before`].
pub fn sort_for_deletion<P: Borrow<Pod>>(pods: &mut [(P, usize)], now: jiff::Timestamp) {
    // upstream's order compares ready and creation times in log-scale buckets, so it
    // is not always transitive; Rust's `sort_by` may panic on such an order, so a
    // plain insertion sort (stable, never panics, as tolerant as Go's sort) is used
    for i in 1..pods.len() {
        let mut j = i;
        while j > 0 {
            let (before, after) = pods.split_at_mut(j);
            let (a, ra) = &after[0];
            let (b, rb) = &before[j - 1];
            if !delete_before(a.borrow(), *ra, b.borrow(), *rb, now) {
                break;
            }
            pods.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The rank of each of `pods`: how many active pods of `related` run on its node
/// (upstream's `getPodsRankedByRelatedPodsOnSameNode`).
pub fn ranks_by_colocation<P: Borrow<Pod>, R: Borrow<Pod>>(
    pods: &[P],
    related: &[R],
) -> Vec<usize> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related
        .iter()
        .map(Borrow::borrow)
        .filter(|p| is_pod_active(p))
    {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    pods.iter()
        .map(|p| on_node.get(node_name(p.borrow())).copied().unwrap_or(0))
        .collect()
}

// ---- expectations (upstream's UIDTrackingControllerExpectations) ----

#[derive(Debug)]
struct Expected {
    add: i64,
    del: i64,
    at: Instant,
}

#[derive(Default)]
struct ExpectationsState {
    counts: HashMap<String, Expected>,
    /// The keys of the pods each controller expects to see deleted.
    deletions: HashMap<String, HashSet<String>>,
}

/// What each controller (by key) expects the informers to show next: how many pods
/// created, and which pods deleted. Until they are seen (or [`EXPECTATIONS_TIMEOUT`]
/// passes), the controller does not create or delete again, since its cache does not
/// yet show the effect of its last sync.
pub struct Expectations {
    state: Mutex<ExpectationsState>,
    ttl: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            state: Mutex::default(),
            ttl: EXPECTATIONS_TIMEOUT,
        }
    }
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, ExpectationsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the controller `key` may act: it expects nothing more, its
    /// expectations expired, or it never had any.
    pub fn satisfied(&self, key: &str) -> bool {
        self.satisfied_at(key, Instant::now())
    }

    fn satisfied_at(&self, key: &str, now: Instant) -> bool {
        match self.lock().counts.get(key) {
            Some(e) => (e.add <= 0 && e.del <= 0) || now.saturating_duration_since(e.at) > self.ttl,
            None => true,
        }
    }

    /// Expects `count` pods created by `key` (replacing what it expected).
    pub fn expect_creations(&self, key: &str, count: usize) {
        self.lock().counts.insert(
            key.to_owned(),
            Expected {
                add: i64::try_from(count).unwrap_or(i64::MAX),
                del: 0,
                at: Instant::now(),
            },
        );
    }

    /// Expects the pods `pod_keys` deleted by `key` (replacing what it expected).
    pub fn expect_deletions(&self, key: &str, pod_keys: Vec<String>) {
        let keys: HashSet<String> = pod_keys.into_iter().collect();
        let mut state = self.lock();
        state.counts.insert(
            key.to_owned(),
            Expected {
                add: 0,
                del: i64::try_from(keys.len()).unwrap_or(i64::MAX),
                at: Instant::now(),
            },
        );
        state.deletions.insert(key.to_owned(), keys);
    }

    /// One pod created by `key` was seen (or will never be: its create was skipped).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().counts.get_mut(key) {
            e.add -= 1;
        }
    }

    /// The pod `pod_key` of `key` was seen going away; counted once per expected pod.
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        let mut state = self.lock();
        let expected = state
            .deletions
            .get_mut(key)
            .is_some_and(|keys| keys.remove(pod_key));
        if expected {
            if let Some(e) = state.counts.get_mut(key) {
                e.del -= 1;
            }
        }
    }

    /// Forgets `key` (its controller was deleted).
    pub fn delete(&self, key: &str) {
        let mut state = self.lock();
        state.counts.remove(key);
        state.deletions.remove(key);
    }
}

/// The cause a create fails with while its namespace is being deleted
/// (`v1.NamespaceTerminatingCause`): every later create fails too, so controllers stay
/// quiet about it.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Whether an API error carries `cause` among its Status causes (upstream's
/// `errors.HasStatusCause`).
pub fn has_status_cause(e: &kube::Error, cause: &str) -> bool {
    match e {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == cause)),
        _ => false,
    }
}

/// The alphabet of upstream's `rand.SafeEncodeString` (no vowels, no look-alikes).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `value` as JSON with every object's keys sorted, whatever the serde_json features
/// of the build, so the same data always gives the same bytes (what the controllers'
/// template hashes read).
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<&String, &serde_json::Value> =
                    map.iter().collect();
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// FNV-32a, as Go's `hash/fnv` `New32a`, continuing from `hash`.
pub fn fnv32a(data: &[u8], mut hash: u32) -> u32 {
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped into [`SAFE_ALPHABET`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The hash of a pod template (upstream's `controller.ComputeHash`, behind the
/// Deployment's `pod-template-hash` and the DaemonSet's `controller-revision-hash`):
/// FNV-32a over the template's canonical JSON, then the collision count's
/// little-endian bytes, the decimal sum safe-encoded. Not upstream's bits (Go hashes
/// its own dump of the struct), but stable for a template and changed by any edit or
/// collision.
pub fn compute_hash(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    collision_count: Option<i32>,
) -> String {
    let value = serde_json::to_value(template).unwrap_or(serde_json::Value::Null);
    let mut hash = fnv32a(canonical_json(&value).as_bytes(), 0x811c_9dc5);
    if let Some(count) = collision_count {
        hash = fnv32a(&count.to_le_bytes(), hash);
    }
    safe_encode(&hash.to_string())
}

// ---- errors of API requests ----

/// The apiserver's message of a failed request (what Go's `StatusError` prints), or
/// the client's error.
pub fn message_of(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The HTTP status code of an apiserver's error, none for a client-side one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

// ---- rechecking an owner before adopting ----

/// Why an owner may not adopt: a fresh read failed, or showed another object or one
/// being deleted.
#[derive(Debug, thiserror::Error)]
pub enum RecheckError {
    /// The fresh read failed (a 404 says the owner is gone).
    #[error("{}", message_of(.0))]
    Get(kube::Error),
    /// The name now belongs to another object.
    #[error("original {kind} {namespace}/{name} is gone: got uid {got}, wanted {wanted}")]
    Replaced {
        /// The owner's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The uid the fresh read showed.
        got: String,
        /// The uid expected.
        wanted: String,
    },
    /// The owner is being deleted.
    #[error("{namespace}/{name} has just been deleted at {at}")]
    Deleting {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its deletionTimestamp.
        at: jiff::Timestamp,
    },
}

/// Upstream's `RecheckDeletionTimestamp`: before adopting, a fresh read of the owner
/// (not the cache) must show it still exists, is the object with `uid` and is not
/// being deleted, or the garbage collector could miss what it adopts.
pub async fn recheck_owner<K>(
    api: &Api<K>,
    name: &str,
    uid: Option<&str>,
) -> Result<(), RecheckError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let fresh = api.get(name).await.map_err(RecheckError::Get)?;
    let namespace = api.namespace().unwrap_or_default().to_owned();
    if fresh.meta().uid.as_deref() != uid {
        return Err(RecheckError::Replaced {
            kind: K::kind(&()).into_owned(),
            namespace,
            name: name.to_owned(),
            got: fresh.meta().uid.clone().unwrap_or_default(),
            wanted: uid.unwrap_or_default().to_owned(),
        });
    }
    if let Some(Time(at)) = &fresh.meta().deletion_timestamp {
        return Err(RecheckError::Deleting {
            namespace,
            name: name.to_owned(),
            at: *at,
        });
    }
    Ok(())
}

// ---- routing events of owned objects to their owners ----

/// A controller's owners in its informer cache, for routing the events of objects it
/// owns (pods, ControllerRevisions, ReplicaSets) to the owners they concern: their
/// controller, or for an orphan the owners that may adopt it.
pub struct OwnerLookup<'a, K> {
    /// The owners' cache.
    pub owners: &'a dyn OwnerCache<K>,
    /// An owner's selector; none (or an empty one) selects no orphans.
    pub selector: fn(&K) -> Option<Selector>,
}

/// Where an [`OwnerLookup`] reads the owners: an informer's cache.
pub trait OwnerCache<K> {
    /// The cached owner `namespace/name`.
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>>;
    /// The cached owners of one namespace.
    fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>>;
}

impl<K> OwnerCache<K> for Informer<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        Informer::get(self, namespace, name)
    }

    fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        Informer::list_namespace(self, namespace)
    }
}

/// The owners an added or updated object concerns.
pub struct Concerned<K> {
    /// On an update that changed the controller reference: the former controller.
    pub former: Option<Arc<K>>,
    /// The object's controller, when it is one of these owners.
    pub controller: Option<Arc<K>>,
    /// For an orphan that is new, or whose labels or controller changed: the owners
    /// selecting it, who may adopt it.
    pub adopters: Vec<Arc<K>>,
}

impl<K> Concerned<K> {
    /// Every owner concerned: the former controller, the controller, the adopters.
    pub fn all(&self) -> impl Iterator<Item = &Arc<K>> {
        self.former
            .iter()
            .chain(self.controller.iter())
            .chain(self.adopters.iter())
    }
}

impl<K: Resource<DynamicType = ()>> OwnerLookup<'_, K> {
    /// The owner `reference` names, if it is of this kind and the cached object is
    /// still the same one (upstream's `resolveControllerRef`).
    pub fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<K>> {
        if reference.kind != K::kind(&()) {
            return None;
        }
        let owner = self.owners.get(namespace, &reference.name)?;
        (owner.meta().uid.as_deref() == Some(reference.uid.as_str())).then_some(owner)
    }

    /// The object's controller, if it is one of these owners.
    pub fn controller(&self, meta: &ObjectMeta) -> Option<Arc<K>> {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        controller_of(meta).and_then(|r| self.resolve(namespace, r))
    }

    /// The owners in the object's namespace whose selector matches its labels
    /// (upstream's `GetPodReplicaSets`, `getPodJobs`, ...); an object without labels
    /// matches none.
    pub fn selecting(&self, meta: &ObjectMeta) -> Vec<Arc<K>> {
        let labels = labels_of(meta);
        if labels.is_empty() {
            return Vec::new();
        }
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let owners: Vec<Arc<K>> = self
            .owners
            .list_namespace(namespace)
            .into_iter()
            .filter(|o| (self.selector)(o).is_some_and(|s| !s.is_empty() && s.matches(&labels)))
            .collect();
        if owners.len() > 1 {
            tracing::warn!(
                kind = %K::kind(&()),
                object = %format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()),
                "user error: more than one {} is selecting objects with these labels",
                K::kind(&())
            );
        }
        owners
    }

    /// Who an added object concerns: its controller, or as an orphan who selects it.
    pub fn added(&self, meta: &ObjectMeta) -> Concerned<K> {
        let (controller, adopters) = match controller_of(meta) {
            Some(_) => (self.controller(meta), Vec::new()),
            None => (None, self.selecting(meta)),
        };
        Concerned {
            former: None,
            controller,
            adopters,
        }
    }

    /// Who an update concerns: the former controller if the controller reference
    /// changed, the controller now, and for an orphan whose labels or controller
    /// changed, who selects it (upstream's `updatePod` of the workload controllers).
    pub fn updated(&self, old: &ObjectMeta, new: &ObjectMeta) -> Concerned<K> {
        let namespace = new.namespace.as_deref().unwrap_or_default();
        let (old_ref, new_ref) = (controller_of(old), controller_of(new));
        let ref_changed = old_ref != new_ref;
        let former = if ref_changed {
            old_ref.and_then(|r| self.resolve(namespace, r))
        } else {
            None
        };
        let (controller, adopters) = match new_ref {
            Some(r) => (self.resolve(namespace, r), Vec::new()),
            None if ref_changed || old.labels != new.labels => (None, self.selecting(new)),
            None => (None, Vec::new()),
        };
        Concerned {
            former,
            controller,
            adopters,
        }
    }
}

/// When a pod just became ready and its owner counts it available only after
/// `min_ready_seconds`: how long until it should look again (plus a second against
/// clock skew, as upstream).
pub fn requeue_when_available(min_ready_seconds: i32, old: &Pod, new: &Pod) -> Option<Duration> {
    (min_ready_seconds > 0 && !is_pod_ready(old) && is_pod_ready(new)).then(|| {
        let secs = u64::try_from(min_ready_seconds)
            .unwrap_or(0)
            .saturating_add(1);
        Duration::from_secs(secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{
        Container, ContainerStatus, PodCondition, PodSpec, PodStatus,
    };
    use std::collections::BTreeMap;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    struct P(Pod);

    impl P {
        fn new(name: &str) -> P {
            P(Pod {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("ns".into()),
                    uid: Some(format!("uid-{name}")),
                    creation_timestamp: Some(Time(ts(1_000))),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some("node-a".into()),
                    containers: vec![Container {
                        name: "c".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    ..Default::default()
                }),
            })
        }
        fn node(mut self, node: &str) -> P {
            self.0.spec.as_mut().unwrap().node_name = Some(node.into());
            self
        }
        fn phase(mut self, phase: &str) -> P {
            self.0.status.as_mut().unwrap().phase = Some(phase.into());
            self
        }
        fn ready_since(mut self, secs: i64) -> P {
            self.0.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(secs))),
                ..Default::default()
            }]);
            self
        }
        fn restarts(mut self, n: i32) -> P {
            self.0.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: n,
                ..Default::default()
            }]);
            self
        }
        fn created(mut self, secs: i64) -> P {
            self.0.metadata.creation_timestamp = Some(Time(ts(secs)));
            self
        }
        fn cost(mut self, cost: &str) -> P {
            self.0.metadata.annotations = Some(BTreeMap::from([(
                POD_DELETION_COST_ANNOTATION.to_owned(),
                cost.to_owned(),
            )]));
            self
        }
    }

    /// Sorts pods (all with rank 0 unless given) and returns their names in order.
    fn order(pods: Vec<(P, usize)>, now: i64) -> Vec<String> {
        let mut pods: Vec<(Pod, usize)> = pods.into_iter().map(|(p, r)| (p.0, r)).collect();
        sort_for_deletion(&mut pods, ts(now));
        pods.into_iter()
            .map(|(p, _)| p.metadata.name.unwrap())
            .collect()
    }

    #[test]
    fn deletion_prefers_pods_earlier_in_their_life() {
        // upstream controller_utils_test.go TestSortingActivePodsWithRanks, in spirit
        let now = 1_000_000;
        let pods = vec![
            (P::new("ready-old").ready_since(1_000), 0),
            (P::new("unassigned").node("").phase("Pending"), 0),
            (P::new("running-not-ready"), 0),
            (P::new("pending").phase("Pending"), 0),
            (P::new("unknown").phase("Unknown"), 0),
            (P::new("ready-new").ready_since(now - 10), 0),
        ];
        assert_eq!(
            order(pods, now),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn deletion_ranks_cost_then_colocation_then_restarts_then_age() {
        let now = 1_000_000;
        let pods = vec![
            (P::new("plain").ready_since(1_000), 0),
            (P::new("expensive").ready_since(1_000).cost("100"), 5),
            (P::new("cheap").ready_since(1_000).cost("-5"), 0),
            (P::new("doubled-up").ready_since(1_000), 3),
            (P::new("restarting").ready_since(1_000).restarts(4), 0),
            // an invalid cost counts as 0; being newer puts it before "plain"
            (
                P::new("bad-cost")
                    .ready_since(1_000)
                    .cost("x")
                    .created(now - 10),
                0,
            ),
        ];
        assert_eq!(
            order(pods, now),
            [
                "cheap",
                "doubled-up",
                "restarting",
                "bad-cost",
                "plain",
                "expensive"
            ]
        );
    }

    #[test]
    fn deletion_compares_ages_on_a_logarithmic_scale() {
        let now = 1_000_000;
        // created 100 s and 101 s ago: the same power of two, so the uid decides
        let alike = vec![
            (P::new("b").created(now - 100), 0),
            (P::new("a").created(now - 101), 0),
        ];
        assert_eq!(order(alike, now), ["a", "b"]);
        // 10 s against 1000 s ago: the newer goes first
        let apart = vec![
            (P::new("old").created(now - 1000), 0),
            (P::new("new").created(now - 10), 0),
        ];
        assert_eq!(order(apart, now), ["new", "old"]);
        // an unknown creation time counts as newest
        let mut unknown = P::new("unknown");
        unknown.0.metadata.creation_timestamp = None;
        assert_eq!(
            order(vec![(P::new("known"), 0), (unknown, 0)], now),
            ["unknown", "known"]
        );
    }

    #[test]
    fn colocation_ranks_count_active_related_pods_per_node() {
        let a1 = P::new("a1").node("a").0;
        let a2 = P::new("a2").node("a").0;
        let b1 = P::new("b1").node("b").0;
        let done = P::new("done").node("b").phase("Succeeded").0;
        let related = [a1.clone(), a2.clone(), b1.clone(), done];
        assert_eq!(ranks_by_colocation(&[a1, b1], &related), [2, 1]);
    }

    #[test]
    fn activity_readiness_and_availability() {
        let now = ts(10_000);
        assert!(is_pod_active(&P::new("p").0));
        assert!(!is_pod_active(&P::new("p").phase("Failed").0));
        assert!(!is_pod_active(&P::new("p").phase("Succeeded").0));
        let mut deleting = P::new("p").0;
        deleting.metadata.deletion_timestamp = Some(Time(now));
        assert!(!is_pod_active(&deleting));

        let ready = P::new("p").ready_since(9_990).0;
        assert!(is_pod_ready(&ready));
        assert!(!is_pod_ready(&P::new("p").0));
        assert!(is_pod_available(&ready, 0, now));
        assert!(is_pod_available(&ready, 5, now));
        assert!(!is_pod_available(&ready, 10, now));
        assert!(!is_pod_available(&ready, 30, now));
        assert!(!is_pod_available(&P::new("p").0, 0, now));
    }

    fn rs(uid: &str, deleting: bool) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("rs".into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                deletion_timestamp: deleting.then(|| Time(ts(1))),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn labelled(name: &str, app: &str, owner: Option<&str>) -> Pod {
        let mut pod = P::new(name).0;
        pod.metadata.labels = Some(BTreeMap::from([("app".to_owned(), app.to_owned())]));
        if let Some(uid) = owner {
            let mut reference = controller_ref(&rs(uid, false));
            reference.uid = uid.into();
            pod.metadata.owner_references = Some(vec![reference]);
        }
        pod
    }

    #[test]
    fn claims_keep_adopt_release_or_ignore_like_upstream() {
        let selector = Selector::parse("app=web").unwrap();
        let owner = rs("me", false);
        let deleting = rs("me", true);
        let ours = labelled("p", "web", Some("me"));
        let ours_relabelled = labelled("p", "db", Some("me"));
        let theirs = labelled("p", "web", Some("other"));
        let orphan = labelled("p", "web", None);
        let unselected_orphan = labelled("p", "db", None);
        let mut dying_orphan = orphan.clone();
        dying_orphan.metadata.deletion_timestamp = Some(Time(ts(1)));
        let mut elsewhere = orphan.clone();
        elsewhere.metadata.namespace = Some("other".into());

        assert_eq!(claim(&owner, &selector, &ours), Claim::Keep);
        assert_eq!(claim(&owner, &selector, &ours_relabelled), Claim::Release);
        assert_eq!(claim(&deleting, &selector, &ours_relabelled), Claim::Ignore);
        assert_eq!(claim(&deleting, &selector, &ours), Claim::Keep);
        assert_eq!(claim(&owner, &selector, &theirs), Claim::Ignore);
        assert_eq!(claim(&owner, &selector, &orphan), Claim::Adopt);
        assert_eq!(claim(&deleting, &selector, &orphan), Claim::Ignore);
        assert_eq!(claim(&owner, &selector, &unselected_orphan), Claim::Ignore);
        assert_eq!(claim(&owner, &selector, &dying_orphan), Claim::Ignore);
        assert_eq!(claim(&owner, &selector, &elsewhere), Claim::Ignore);
    }

    #[test]
    fn pods_from_templates_carry_the_template_and_a_controller_ref() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
                finalizers: Some(vec!["example.com/f".into()]),
                name: Some("ignored".into()),
                ..Default::default()
            }),
            spec: P::new("x").0.spec,
        };
        let mut owner = rs("me", false);
        owner.metadata.name = Some("web".into());
        let pod = pod_from_template(&template, "ns", "web", Some(controller_ref(&owner)));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            pod.metadata.labels,
            template.metadata.as_ref().unwrap().labels
        );
        assert_eq!(
            pod.metadata.annotations,
            template.metadata.as_ref().unwrap().annotations
        );
        assert_eq!(pod.metadata.finalizers, Some(vec!["example.com/f".into()]));
        assert_eq!(pod.spec, template.spec);
        let reference = controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (
                reference.api_version.as_str(),
                reference.kind.as_str(),
                reference.name.as_str(),
                reference.uid.as_str()
            ),
            ("apps/v1", "ReplicaSet", "web", "me")
        );
        assert_eq!(reference.block_owner_deletion, Some(true));
        // a name too long for a dash
        let long = "a".repeat(253);
        assert_eq!(pod_name_prefix(&long), long);
    }

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_after_a_failed_one() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(10, 1, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        })
        .await;
        assert_eq!((ok, err, calls.load(Ordering::SeqCst)), (10, None, 10));

        // batches 1, 2, 4: the 5th call fails, the 4-batch finishes, no 8-batch follows
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(20, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 4 {
                    Err(format!("boom {n}"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert_eq!(ok, 6);
        assert_eq!(err.as_deref(), Some("boom 4"));

        let (ok, err) = slow_start_batch(0, 1, || async { Err::<(), _>("never") }).await;
        assert_eq!((ok, err), (0, None));
    }

    #[test]
    fn expectations_hold_until_observed_or_expired() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"), "a new controller may act");
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));

        e.expect_deletions("ns/rs", vec!["ns/a".into(), "ns/b".into()]);
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/a");
        // a pod not expected, or seen twice, does not count
        e.deletion_observed("ns/rs", "ns/zzz");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"));
        assert!(e.satisfied_at(
            "ns/rs",
            Instant::now() + EXPECTATIONS_TIMEOUT + Duration::from_secs(1)
        ));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));

        e.expect_creations("ns/rs", 1);
        e.delete("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }

    // ---- request errors, owner recheck, event routing ----

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "NotFound")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn request_errors_give_the_apiservers_message_and_code() {
        let e = api_error(404, "pods \"p\" not found");
        assert_eq!(message_of(&e), "pods \"p\" not found");
        assert_eq!(status_code(&e), Some(404));
        // an empty message falls back to the client's rendering
        let empty = api_error(500, "");
        assert!(!message_of(&empty).is_empty());
        let client_side = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(status_code(&client_side), None);
        assert_eq!(message_of(&client_side), client_side.to_string());
    }

    #[test]
    fn recheck_errors_read_as_upstreams() {
        let replaced = RecheckError::Replaced {
            kind: "ReplicaSet".into(),
            namespace: "ns".into(),
            name: "rs".into(),
            got: "b".into(),
            wanted: "a".into(),
        };
        assert_eq!(
            replaced.to_string(),
            "original ReplicaSet ns/rs is gone: got uid b, wanted a"
        );
        let deleting = RecheckError::Deleting {
            namespace: "ns".into(),
            name: "rs".into(),
            at: ts(0),
        };
        assert_eq!(
            deleting.to_string(),
            "ns/rs has just been deleted at 1970-01-01T00:00:00Z"
        );
        let get = RecheckError::Get(api_error(404, "replicasets \"rs\" not found"));
        assert_eq!(get.to_string(), "replicasets \"rs\" not found");
    }

    #[test]
    fn a_pod_becoming_ready_requeues_after_min_ready_seconds() {
        let not_ready = P::new("p").0;
        let ready = P::new("p").ready_since(1_000).0;
        assert_eq!(
            requeue_when_available(10, &not_ready, &ready),
            Some(Duration::from_secs(11))
        );
        assert_eq!(requeue_when_available(0, &not_ready, &ready), None);
        assert_eq!(requeue_when_available(10, &ready, &ready), None);
        assert_eq!(requeue_when_available(-5, &not_ready, &ready), None);
    }

    struct Cache(Vec<Arc<ReplicaSet>>);

    impl OwnerCache<ReplicaSet> for Cache {
        fn get(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
            self.0
                .iter()
                .find(|r| {
                    r.metadata.namespace.as_deref() == Some(namespace)
                        && r.metadata.name.as_deref() == Some(name)
                })
                .cloned()
        }
        fn list_namespace(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
            self.0
                .iter()
                .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
                .cloned()
                .collect()
        }
    }

    fn replica_set(name: &str, app: &str) -> Arc<ReplicaSet> {
        Arc::new(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), app.into())])),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: None,
        })
    }

    fn names(owners: &[Arc<ReplicaSet>]) -> Vec<String> {
        owners
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn pod_meta(app: Option<&str>, controller: Option<&ReplicaSet>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            labels: app.map(|a| BTreeMap::from([("app".into(), a.into())])),
            owner_references: controller.map(|c| vec![controller_ref(c)]),
            ..Default::default()
        }
    }

    #[test]
    fn owned_object_events_reach_their_controller_or_possible_adopters() {
        let (a, b) = (replica_set("a", "web"), replica_set("b", "db"));
        let cache = Cache(vec![a.clone(), b.clone()]);
        let lookup = OwnerLookup {
            owners: &cache,
            selector: |rs: &ReplicaSet| label_selector(rs.spec.as_ref().map(|s| &s.selector)).ok(),
        };
        // a controlled pod concerns only its controller, whatever its labels
        let owned = pod_meta(Some("db"), Some(&a));
        let added = lookup.added(&owned);
        assert_eq!(
            added.controller.and_then(|c| c.metadata.name.clone()),
            Some("a".into())
        );
        assert!(added.adopters.is_empty());
        // an orphan concerns whoever selects it; one without labels nobody
        assert_eq!(
            names(&lookup.added(&pod_meta(Some("db"), None)).adopters),
            ["b"]
        );
        assert!(lookup.added(&pod_meta(None, None)).all().next().is_none());
        // a reference to a replaced owner (other uid) resolves to nothing
        let mut stale = (*a).clone();
        stale.metadata.uid = Some("old".into());
        assert!(
            lookup
                .controller(&pod_meta(Some("web"), Some(&stale)))
                .is_none()
        );

        // released: the former controller and the new selectors both hear of it
        let released = lookup.updated(&owned, &pod_meta(Some("db"), None));
        assert_eq!(
            released.former.and_then(|c| c.metadata.name.clone()),
            Some("a".into())
        );
        assert!(released.controller.is_none());
        assert_eq!(names(&released.adopters), ["b"]);
        // an orphan whose labels did not change needs no adopter pass
        let orphan = pod_meta(Some("web"), None);
        assert!(lookup.updated(&orphan, &orphan).all().next().is_none());
        // relabelled orphan: the new selector
        assert_eq!(
            names(
                &lookup
                    .updated(&orphan, &pod_meta(Some("db"), None))
                    .adopters
            ),
            ["b"]
        );
        // still controlled by the same owner: only it, no former
        let same = lookup.updated(&owned, &owned);
        assert!(same.former.is_none());
        assert_eq!(names(&same.all().cloned().collect::<Vec<_>>()), ["a"]);
    }
}
