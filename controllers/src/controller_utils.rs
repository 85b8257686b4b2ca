//! Pod helpers shared by the controllers that own pods (upstream's
//! `pkg/controller/controller_utils.go` and `controller_ref_manager.go`): which pods
//! count (active, ready, available), the pod a controller creates from its template,
//! controller ownerReferences and the claim (adopt/release) decision, the order in
//! which surplus pods are deleted, slow-start batching of creates, and the
//! expectations that keep a controller from acting twice on what it has not yet seen.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apimachinery::labels::{self, Labels, Selector};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;

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
        let results = futures::future::join_all((0..batch).map(|_| call())).await;
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
}
