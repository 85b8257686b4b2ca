//! The DaemonSet controller (upstream's `pkg/controller/daemon`): one pod of each
//! DaemonSet on every node that should run it.
//!
//! A node should run a DaemonSet's pod when the pod template's node name, node
//! selector and required node affinity admit it and the node has no NoSchedule or
//! NoExecute taint the pod does not tolerate; daemon pods get upstream's extra
//! tolerations (not-ready and unreachable NoExecute forever, the pressure and
//! unschedulable NoSchedule taints, network-unavailable for host-network pods). Each
//! pod is created unbound with a required node affinity `metadata.name In [node]`, so
//! the scheduler places it, and carries the `controller-revision-hash` of the
//! ControllerRevision recording its template. Failed pods are deleted (with a
//! per-node backoff) and made again; the RollingUpdate strategy replaces outdated pods
//! within maxUnavailable, or surges new ones within maxSurge; OnDelete waits for the
//! user. Creates and deletes are recorded as expectations, and a sync waits for the
//! informers to show them before acting again.

mod update;
mod util;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apimachinery::labels::Selector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::Context;
use crate::controller_utils::{
    self, Claim, EXPECTATIONS_TIMEOUT, NAMESPACE_TERMINATING_CAUSE, OwnerLookup,
    SLOW_START_INITIAL_BATCH_SIZE, controller_of, controller_ref, has_status_cause,
    is_pod_available, is_pod_ready, label_selector, message_of, recheck_owner,
    requeue_when_available, status_code,
};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

use util::{
    Backoff, FAILED_POD_BACKOFF_INITIAL, FAILED_POD_BACKOFF_MAX, REVISION_HASH_LABEL,
    ROLLING_UPDATE,
};

/// The controller's name (its events' component).
pub const NAME: &str = "daemonset-controller";
/// Its service account in kube-system (`system:controller:daemon-set-controller`).
pub const SERVICE_ACCOUNT: &str = "daemon-set-controller";
/// At most this many pods are created or deleted by one sync (upstream's
/// `BurstReplicas`).
const BURST_REPLICAS: usize = 250;
/// How often the failed-pod backoff forgets quiet nodes (upstream's
/// `BackoffGCInterval`).
const BACKOFF_GC_INTERVAL: Duration = Duration::from_secs(60);

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("{context}: {message}")]
    Request {
        /// What was being done.
        context: String,
        /// The apiserver's message.
        message: String,
    },
    /// Several operations failed (upstream's error aggregate).
    #[error("[{}]", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<Error>),
    /// The DaemonSet cannot be acted on as it is.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    fn request(context: impl Into<String>, e: &kube::Error) -> Error {
        Error::Request {
            context: context.into(),
            message: message_of(e),
        }
    }
}

/// One error, several as an aggregate, or none.
fn aggregate(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Aggregate(errors)),
    }
}

// ---- expectations (upstream's ControllerExpectations: counts, not pod keys) ----

#[derive(Debug)]
struct Expected {
    add: i64,
    del: i64,
    at: Instant,
}

/// How many pod creations and deletions each DaemonSet still expects to see.
#[derive(Default)]
struct Expectations {
    counts: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expected>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the DaemonSet may act: nothing expected, or expected too long ago.
    fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            Some(e) => (e.add <= 0 && e.del <= 0) || e.at.elapsed() > EXPECTATIONS_TIMEOUT,
            None => true,
        }
    }

    fn set(&self, key: &str, add: usize, del: usize) {
        self.lock().insert(
            key.to_owned(),
            Expected {
                add: i64::try_from(add).unwrap_or(i64::MAX),
                del: i64::try_from(del).unwrap_or(i64::MAX),
                at: Instant::now(),
            },
        );
    }

    fn lower(&self, key: &str, add: usize, del: usize) {
        if let Some(e) = self.lock().get_mut(key) {
            e.add = e.add.saturating_sub(i64::try_from(add).unwrap_or(i64::MAX));
            e.del = e.del.saturating_sub(i64::try_from(del).unwrap_or(i64::MAX));
        }
    }

    fn creation_observed(&self, key: &str) {
        self.lower(key, 1, 0);
    }

    fn deletion_observed(&self, key: &str) {
        self.lower(key, 0, 1);
    }

    fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

// ---- status ----

/// The counts of a DaemonSet's status (upstream's `updateDaemonSetStatus`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    desired: i32,
    current: i32,
    misscheduled: i32,
    ready: i32,
    updated: i32,
    available: i32,
    unavailable: i32,
}

/// Counts, over `nodes`, those that should run the pod (desired), those of them with
/// a pod (current), whose oldest pod is ready, available and of the current revision,
/// and the nodes with a pod that should not run one (misscheduled).
fn count_status(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    node_to_pods: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    now: jiff::Timestamp,
) -> Counts {
    let min_ready = min_ready_seconds(ds);
    let mut c = Counts::default();
    for node in nodes {
        let (should_run, _) = util::node_should_run(node, ds);
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let mut pods: Vec<&Arc<Pod>> = node_to_pods.get(name).into_iter().flatten().collect();
        if !should_run {
            if !pods.is_empty() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        if pods.is_empty() {
            continue;
        }
        c.current += 1;
        pods.sort_by(|a, b| util::pod_order(a, b));
        let pod = pods[0];
        if is_pod_ready(pod) {
            c.ready += 1;
            if is_pod_available(pod, min_ready, now) {
                c.available += 1;
            }
        }
        if util::is_pod_updated(pod, hash) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Whether `status` already says `c` for `generation` (upstream's early return in
/// `storeDaemonSetStatus`).
fn status_says(status: &DaemonSetStatus, c: &Counts, generation: i64) -> bool {
    status.desired_number_scheduled == c.desired
        && status.current_number_scheduled == c.current
        && status.number_misscheduled == c.misscheduled
        && status.number_ready == c.ready
        && status.updated_number_scheduled.unwrap_or(0) == c.updated
        && status.number_available.unwrap_or(0) == c.available
        && status.number_unavailable.unwrap_or(0) == c.unavailable
        && status.observed_generation.unwrap_or(0) >= generation
}

// ---- the controller ----

struct Controller {
    cx: Context,
    daemon_sets: Informer<DaemonSet>,
    revisions: Informer<ControllerRevision>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    queue: Arc<WorkQueue<String>>,
    expectations: Expectations,
    failed_pods_backoff: Mutex<Backoff>,
}

/// Starts the controller.
pub fn start(cx: Context) -> BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_daemonset_syncs;
    let controller = Arc::new(Controller {
        daemon_sets: cx.informers.informer::<DaemonSet>(),
        revisions: cx.informers.informer::<ControllerRevision>(),
        pods: cx.informers.informer::<Pod>(),
        nodes: cx.informers.informer::<Node>(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        failed_pods_backoff: Mutex::new(Backoff::new(
            FAILED_POD_BACKOFF_INITIAL,
            FAILED_POD_BACKOFF_MAX,
        )),
        cx,
    });
    let c = controller.clone();
    controller
        .daemon_sets
        .add_handler(move |change| c.daemon_set_changed(change));
    let c = controller.clone();
    controller
        .revisions
        .add_handler(move |change| c.revision_changed(change));
    let c = controller.clone();
    controller
        .pods
        .add_handler(move |change| c.pod_changed(change));
    let c = controller.clone();
    controller
        .nodes
        .add_handler(move |change| c.node_changed(change));
    Box::pin(async move {
        controller.pods.wait_synced().await;
        controller.nodes.wait_synced().await;
        controller.revisions.wait_synced().await;
        controller.daemon_sets.wait_synced().await;
        tracing::info!(controller = NAME, "caches synced; starting workers");
        let gc = {
            let controller = controller.clone();
            async move {
                loop {
                    tokio::time::sleep(BACKOFF_GC_INTERVAL).await;
                    controller.backoff().gc(Instant::now());
                }
            }
        };
        let queue = controller.queue.clone();
        let work = queue.run(worker_count, None, NAME, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync(&key).await }
        });
        tokio::select! {
            () = work => {}
            () = gc => {}
        }
    })
}

impl Controller {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.failed_pods_backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, ds: &DaemonSet) {
        self.queue.add(key_of(ds));
    }

    fn enqueue_after(&self, ds: &DaemonSet, delay: Duration) {
        self.queue.add_after(key_of(ds), delay);
    }

    // ---- handlers: quick, they only note expectations and enqueue keys ----

    fn daemon_set_changed(&self, change: &Change<'_, DaemonSet>) {
        match change {
            Change::Added(ds) => self.enqueue(ds),
            Change::Updated { old, new } => {
                // a delete and re-create seen as one update
                if old.metadata.uid != new.metadata.uid {
                    self.expectations.delete(&key_of(old.as_ref()));
                }
                self.enqueue(new);
            }
            Change::Deleted(ds) => {
                let key = key_of(ds.as_ref());
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }

    /// The DaemonSets as owners of pods and ControllerRevisions.
    fn lookup(&self) -> OwnerLookup<'_, DaemonSet> {
        OwnerLookup {
            owners: &self.daemon_sets,
            selector: |ds| selector_of(ds).ok(),
        }
    }

    fn revision_changed(&self, change: &Change<'_, ControllerRevision>) {
        let concerned = match change {
            Change::Added(rev) if rev.metadata.deletion_timestamp.is_none() => {
                // one with an owner needs nothing; an orphan may be adopted
                if controller_of(&rev.metadata).is_some() {
                    return;
                }
                self.lookup().added(&rev.metadata)
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                self.lookup().updated(&old.metadata, &new.metadata)
            }
            Change::Added(rev) | Change::Deleted(rev) => {
                if let Some(ds) = self.lookup().controller(&rev.metadata) {
                    self.enqueue(&ds);
                }
                return;
            }
        };
        for ds in concerned.all() {
            self.enqueue(ds);
        }
    }

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // seen already being deleted (after a restart): not a creation
                    self.pod_deleted(pod);
                    return;
                }
                let concerned = self.lookup().added(&pod.metadata);
                if let Some(ds) = concerned.controller {
                    self.expectations.creation_observed(&key_of(ds.as_ref()));
                    self.enqueue(&ds);
                }
                for ds in concerned.adopters {
                    self.enqueue(&ds);
                }
            }
            Change::Updated { old, new } => self.pod_updated(old, new),
            Change::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        if new.metadata.deletion_timestamp.is_some() {
            // graceful deletion started: replace the pod now rather than when the
            // kubelet finishes with it
            self.pod_deleted(new);
            return;
        }
        let concerned = self.lookup().updated(&old.metadata, &new.metadata);
        if let Some(ds) = &concerned.controller
            && let Some(delay) = requeue_when_available(min_ready_seconds(ds), old, new)
        {
            self.enqueue_after(ds, delay);
        }
        for ds in concerned.all() {
            self.enqueue(ds);
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(ds) = self.lookup().controller(&pod.metadata) {
            self.expectations.deletion_observed(&key_of(ds.as_ref()));
            self.enqueue(&ds);
        }
    }

    fn node_changed(&self, change: &Change<'_, Node>) {
        match change {
            Change::Added(node) => {
                for ds in self.daemon_sets.list() {
                    if util::node_should_run(node, &ds).0 {
                        self.enqueue(&ds);
                    }
                }
            }
            Change::Updated { old, new } => {
                if util::node_update_ignorable(old, new) {
                    return;
                }
                for ds in self.daemon_sets.list() {
                    if util::node_should_run(old, &ds) != util::node_should_run(new, &ds) {
                        self.enqueue(&ds);
                    }
                }
            }
            // the pod garbage collector deletes the pods of a deleted node
            Change::Deleted(_) => {}
        }
    }

    // ---- the sync of one DaemonSet ----

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(ds) = self.daemon_sets.get(namespace, name) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let mut nodes = self.nodes.list();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let selector = ds.spec.as_ref().map(|s| &s.selector);
        let selects_all = selector.is_none_or(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        });
        if selects_all {
            self.cx.recorder.event(
                ds.as_ref(),
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required."
                    .to_owned(),
                NAME,
            );
            return Ok(());
        }
        // a DaemonSet being deleted may have lost its revisions already: its status
        // cannot be worked out, and its pods go with it
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let (current, old) = self.construct_history(&ds).await.map_err(|e| {
            Error::Invalid(format!("failed to construct revisions of DaemonSet: {e}"))
        })?;
        let hash = current
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .cloned()
            .unwrap_or_default();
        if !self.expectations.satisfied(key) {
            // only the status: this generation was not acted on
            return self.update_status(&ds, &nodes, &hash, false).await;
        }
        let result = self.update_daemon_set(&ds, &nodes, &hash, key, &old).await;
        let status = self.update_status(&ds, &nodes, &hash, true).await;
        match (result, status) {
            (Err(e), Err(status_error)) => {
                tracing::warn!(daemonset = %key, error = %status_error, "failed to update status");
                Err(e)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    async fn update_daemon_set(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        key: &str,
        old: &[ControllerRevision],
    ) -> Result<(), Error> {
        self.manage(ds, nodes, hash).await?;
        if self.expectations.satisfied(key) {
            let strategy = ds
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|s| s.type_.as_deref())
                .unwrap_or(ROLLING_UPDATE);
            if strategy == ROLLING_UPDATE {
                self.rolling_update(ds, nodes, hash).await?;
            }
        }
        self.cleanup_history(ds, old)
            .await
            .map_err(|e| Error::Invalid(format!("failed to clean up revisions of DaemonSet: {e}")))
    }

    /// The DaemonSet's pods: those it controls and selects, plus the orphans it adopts
    /// (upstream's `getDaemonPods` with `PodControllerRefManager.ClaimPods`).
    async fn daemon_pods(&self, ds: &Arc<DaemonSet>) -> Result<Vec<Arc<Pod>>, Error> {
        let selector = selector_of(ds)?;
        let namespace = ds.namespace().unwrap_or_default();
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        let mut can_adopt: Option<Result<(), String>> = None;
        for pod in self.pods.list_namespace(&namespace) {
            match controller_utils::claim(ds.as_ref(), &selector, &pod) {
                Claim::Keep => claimed.push(pod),
                Claim::Ignore => {}
                Claim::Release => {
                    let patch = controller_utils::release_patch(
                        ds.metadata.uid.as_deref().unwrap_or_default(),
                        pod.metadata.uid.as_deref().unwrap_or_default(),
                    );
                    match self.patch_pod(&pod, patch).await {
                        Ok(_) => {}
                        Err(e) if matches!(status_code(&e), Some(404 | 422)) => {}
                        Err(e) => errors.push(Error::request(
                            format!("release Pod {}", controller_utils::pod_key(&pod)),
                            &e,
                        )),
                    }
                }
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_not_deleted(ds).await);
                    }
                    if let Some(Err(message)) = &can_adopt {
                        errors.push(Error::Request {
                            context: format!("can't adopt Pod {}", controller_utils::pod_key(&pod)),
                            message: message.clone(),
                        });
                        continue;
                    }
                    let patch = controller_utils::adopt_patch(
                        &controller_ref(ds.as_ref()),
                        pod.metadata.uid.as_deref().unwrap_or_default(),
                    );
                    match self.patch_pod(&pod, patch).await {
                        Ok(adopted) => claimed.push(Arc::new(adopted)),
                        Err(e) if status_code(&e) == Some(404) => {}
                        Err(e) => errors.push(Error::request(
                            format!("adopt Pod {}", controller_utils::pod_key(&pod)),
                            &e,
                        )),
                    }
                }
            }
        }
        aggregate(errors).map(|()| claimed)
    }

    async fn patch_pod(&self, pod: &Pod, patch: serde_json::Value) -> Result<Pod, kube::Error> {
        let api: Api<Pod> =
            Api::namespaced(self.cx.client.clone(), &pod.namespace().unwrap_or_default());
        api.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    }

    /// Whether the DaemonSet may adopt: a fresh read must show it is still the same
    /// object and not being deleted (upstream's `RecheckDeletionTimestamp`).
    async fn recheck_not_deleted(&self, ds: &DaemonSet) -> Result<(), String> {
        let api: Api<DaemonSet> =
            Api::namespaced(self.cx.client.clone(), &ds.namespace().unwrap_or_default());
        let uid = ds.metadata.uid.as_deref();
        recheck_owner(&api, &ds.name_any(), uid)
            .await
            .map_err(|e| e.to_string())
    }

    /// The DaemonSet's pods by the node they are for (upstream's
    /// `getNodesToDaemonPods`); pods both finished and being deleted count only when
    /// asked for.
    async fn nodes_to_daemon_pods(
        &self,
        ds: &Arc<DaemonSet>,
        include_deleted_terminal: bool,
    ) -> Result<BTreeMap<String, Vec<Arc<Pod>>>, Error> {
        let pods = self.daemon_pods(ds).await?;
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for pod in pods {
            let terminal = matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Failed" | "Succeeded")
            );
            if !include_deleted_terminal && terminal && pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match util::target_node_name(&pod) {
                Some(node) => by_node.entry(node).or_default().push(pod),
                None => {
                    tracing::debug!(pod = %controller_utils::pod_key(&pod), "failed to get target node name of pod in DaemonSet");
                }
            }
        }
        Ok(by_node)
    }

    /// What should change on one node (upstream's `podsShouldBeOnNode`): whether it
    /// needs a pod, and which of its pods to delete: failed ones (within the node's
    /// backoff), succeeded ones, extra ones, and all of them on a node that should not
    /// keep running the pod.
    fn pods_should_be_on_node(
        &self,
        node: &Node,
        node_to_pods: &BTreeMap<String, Vec<Arc<Pod>>>,
        ds: &Arc<DaemonSet>,
        hash: &str,
    ) -> (bool, Vec<String>) {
        let (should_run, should_continue) = util::node_should_run(node, ds);
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let pods = node_to_pods.get(node_name);
        let mut to_delete = Vec::new();
        if should_run && pods.is_none() {
            return (true, to_delete);
        }
        let Some(pods) = pods else {
            return (false, to_delete);
        };
        if !should_continue {
            to_delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            );
            return (false, to_delete);
        }
        let mut running: Vec<&Arc<Pod>> = Vec::new();
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let namespace = pod.namespace().unwrap_or_default();
            match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Failed") => {
                    // the kubelet may keep rejecting the pod: do not hot-loop on it
                    let key = format!(
                        "{}/{}/{node_name}",
                        ds.metadata.uid.as_deref().unwrap_or_default(),
                        ds.status
                            .as_ref()
                            .and_then(|s| s.observed_generation)
                            .unwrap_or(0)
                    );
                    let now = Instant::now();
                    let mut backoff = self.backoff();
                    if backoff.in_backoff_since_update(&key, now) {
                        let delay = backoff.get(&key);
                        drop(backoff);
                        tracing::debug!(pod = %pod.name_any(), node = node_name, ?delay, "deleting failed pod on node has been limited by backoff");
                        self.enqueue_after(ds, delay);
                        continue;
                    }
                    backoff.next(&key, now);
                    drop(backoff);
                    self.cx.recorder.event(
                        ds.as_ref(),
                        "Warning",
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {namespace}/{} on node {node_name}, will try to kill it",
                            pod.name_any()
                        ),
                        NAME,
                    );
                    to_delete.push(pod.name_any());
                }
                Some("Succeeded") => {
                    self.cx.recorder.event(
                        ds.as_ref(),
                        "Normal",
                        "SucceededDaemonPod",
                        format!(
                            "Found succeeded daemon pod {namespace}/{} on node {node_name}, will try to delete it",
                            pod.name_any()
                        ),
                        NAME,
                    );
                    to_delete.push(pod.name_any());
                }
                _ => running.push(pod),
            }
        }
        running.sort_by(|a, b| util::pod_order(a, b));
        if !util::allows_surge(ds) {
            // one pod per node: all but the oldest go
            to_delete.extend(running.iter().skip(1).map(|p| p.name_any()));
            return (false, to_delete);
        }
        if running.len() <= 1 {
            // surging needs at least one pod not being deleted on the node
            return (running.is_empty() && should_run, to_delete);
        }
        // with surge, an old and a new pod may share a node while the new one becomes
        // available; any others go
        let mut oldest_new: Option<&Arc<Pod>> = None;
        let mut oldest_old: Option<&Arc<Pod>> = None;
        for pod in running {
            let slot = if pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                .is_some_and(|h| h == hash)
            {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                to_delete.push(pod.name_any());
            }
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
            if !is_pod_ready(old)
                || is_pod_available(new, min_ready_seconds(ds), jiff::Timestamp::now())
            {
                to_delete.push(old.name_any());
            }
        }
        (false, to_delete)
    }

    /// Creates and deletes pods so each node runs what it should (upstream's `manage`).
    async fn manage(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
    ) -> Result<(), Error> {
        let node_to_pods = self.nodes_to_daemon_pods(ds, false).await.map_err(|e| {
            Error::Invalid(format!(
                "couldn't get node to daemon pod mapping for daemon set {:?}: {e}",
                ds.name_any()
            ))
        })?;
        let mut needing = Vec::new();
        let mut to_delete = Vec::new();
        for node in nodes {
            let (needs, delete) = self.pods_should_be_on_node(node, &node_to_pods, ds, hash);
            if needs {
                needing.push(node.metadata.name.clone().unwrap_or_default());
            }
            to_delete.extend(delete);
        }
        // unbound pods for nodes that no longer exist: the pod garbage collector only
        // deletes pods of missing nodes once bound (upstream's
        // getUnscheduledPodsWithoutNode)
        let node_names: std::collections::HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        for (node, pods) in &node_to_pods {
            if node_names.contains(node.as_str()) {
                continue;
            }
            to_delete.extend(
                pods.iter()
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_none_or(str::is_empty)
                    })
                    .map(|p| p.name_any()),
            );
        }
        self.sync_nodes(ds, &to_delete, &needing, hash).await
    }

    /// Deletes `to_delete` and creates a pod for each of `needing` (upstream's
    /// `syncNodes`), at most [`BURST_REPLICAS`] of each, creations in slow-start
    /// batches; expectations are set first and lowered for what did not happen.
    async fn sync_nodes(
        &self,
        ds: &Arc<DaemonSet>,
        to_delete: &[String],
        needing: &[String],
        hash: &str,
    ) -> Result<(), Error> {
        let key = key_of(ds.as_ref());
        let create_diff = needing.len().min(BURST_REPLICAS);
        let delete_diff = to_delete.len().min(BURST_REPLICAS);
        self.expectations.set(&key, create_diff, delete_diff);
        let mut errors = Vec::new();

        if create_diff > 0 {
            tracing::debug!(daemonset = %key, nodes = ?&needing[..create_diff], "creating daemon pods");
            let template = util::pod_template(ds, hash);
            let next = AtomicUsize::new(0);
            let (created, error) = controller_utils::slow_start_batch(
                create_diff,
                SLOW_START_INITIAL_BATCH_SIZE,
                || {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let node = needing.get(i).cloned().unwrap_or_default();
                    self.create_pod(ds, &template, node)
                },
            )
            .await;
            // failed and skipped creations will not be seen
            self.expectations
                .lower(&key, create_diff.saturating_sub(created), 0);
            if let Some(e) = error {
                errors.push(e);
            }
        }

        if delete_diff > 0 {
            tracing::debug!(daemonset = %key, pods = ?&to_delete[..delete_diff], "deleting daemon pods");
            let results = futures::future::join_all(
                to_delete[..delete_diff]
                    .iter()
                    .map(|name| self.delete_pod(ds, &key, name)),
            )
            .await;
            errors.extend(results.into_iter().filter_map(Result::err));
        }
        aggregate(errors)
    }

    /// Creates the daemon pod for `node` (upstream's `RealPodControl.CreatePods`), with
    /// its event; a namespace being deleted is not an error.
    async fn create_pod(
        &self,
        ds: &Arc<DaemonSet>,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
        node: String,
    ) -> Result<(), Error> {
        let namespace = ds.namespace().unwrap_or_default();
        let mut pod = controller_utils::pod_from_template(
            template,
            &namespace,
            &ds.name_any(),
            Some(controller_ref(ds.as_ref())),
        );
        if let Some(spec) = pod.spec.as_mut() {
            spec.affinity = Some(util::bind_to_node(spec.affinity.take(), &node));
        }
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), &namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.cx.recorder.event(
                    ds.as_ref(),
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.name_any()),
                    NAME,
                );
                Ok(())
            }
            Err(e) if has_status_cause(&e, NAMESPACE_TERMINATING_CAUSE) => Ok(()),
            Err(e) => {
                let message = message_of(&e);
                self.cx.recorder.event(
                    ds.as_ref(),
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {message}"),
                    NAME,
                );
                Err(Error::Request {
                    context: "unable to create pods".to_owned(),
                    message,
                })
            }
        }
    }

    /// Deletes one pod (upstream's `RealPodControl.DeletePod`), with its event; a
    /// failed delete will not be seen, so it is no longer expected.
    async fn delete_pod(&self, ds: &Arc<DaemonSet>, key: &str, name: &str) -> Result<(), Error> {
        let api: Api<Pod> =
            Api::namespaced(self.cx.client.clone(), &ds.namespace().unwrap_or_default());
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.cx.recorder.event(
                    ds.as_ref(),
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                    NAME,
                );
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(key);
                if status_code(&e) == Some(404) {
                    return Ok(());
                }
                let message = message_of(&e);
                self.cx.recorder.event(
                    ds.as_ref(),
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {message}"),
                    NAME,
                );
                Err(Error::Request {
                    context: "unable to delete pods".to_owned(),
                    message,
                })
            }
        }
    }

    /// Counts the DaemonSet's pods into its status and writes it when it changed,
    /// retrying once on a fresh copy (upstream's `updateDaemonSetStatus` and
    /// `storeDaemonSetStatus`).
    async fn update_status(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        update_observed_generation: bool,
    ) -> Result<(), Error> {
        let node_to_pods = self.nodes_to_daemon_pods(ds, false).await.map_err(|e| {
            Error::Invalid(format!(
                "couldn't get node to daemon pod mapping for daemon set {:?}: {e}",
                ds.name_any()
            ))
        })?;
        let counts = count_status(ds, nodes, &node_to_pods, hash, jiff::Timestamp::now());
        let generation = ds.metadata.generation.unwrap_or(0);
        let current = ds.status.clone().unwrap_or_default();
        if !status_says(&current, &counts, generation) {
            self.store_status(ds, &counts, update_observed_generation)
                .await?;
        }
        let min_ready = min_ready_seconds(ds);
        if min_ready > 0 && counts.ready != counts.available {
            // a last look once pods may have become available, against clock skew
            self.enqueue_after(
                ds,
                Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
            );
        }
        Ok(())
    }

    async fn store_status(
        &self,
        ds: &DaemonSet,
        c: &Counts,
        update_observed_generation: bool,
    ) -> Result<(), Error> {
        let namespace = ds.namespace().unwrap_or_default();
        let name = ds.name_any();
        let api: Api<DaemonSet> = Api::namespaced(self.cx.client.clone(), &namespace);
        let fail = |e: &kube::Error| {
            Error::request(
                format!("error storing status for daemon set {namespace}/{name}"),
                e,
            )
        };
        let mut to_update = ds.clone();
        let mut retried = false;
        loop {
            let status = to_update
                .status
                .get_or_insert_with(DaemonSetStatus::default);
            if update_observed_generation {
                status.observed_generation = ds.metadata.generation;
            }
            status.desired_number_scheduled = c.desired;
            status.current_number_scheduled = c.current;
            status.number_misscheduled = c.misscheduled;
            status.number_ready = c.ready;
            status.updated_number_scheduled = Some(c.updated);
            status.number_available = Some(c.available);
            status.number_unavailable = Some(c.unavailable);
            match api
                .replace_status(&name, &PostParams::default(), &to_update)
                .await
            {
                Ok(_) => return Ok(()),
                // gone: nothing to report on
                Err(e) if status_code(&e) == Some(404) => return Ok(()),
                Err(e) if retried => return Err(fail(&e)),
                Err(_) => {
                    retried = true;
                    to_update = api.get(&name).await.map_err(|e| fail(&e))?;
                }
            }
        }
    }
}

/// The DaemonSet's pod selector.
fn selector_of(ds: &DaemonSet) -> Result<Selector, Error> {
    label_selector(ds.spec.as_ref().map(|s| &s.selector))
        .map_err(|e| Error::Invalid(format!("invalid label selector: {e}")))
}

#[cfg(test)]
mod tests {
    use super::util::tests::ds;
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool, created: i64) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {REVISION_HASH_LABEL: hash},
                    "creationTimestamp": jiff::Timestamp::from_second(created).unwrap().to_string()},
                "spec": {"containers": [], "nodeName": node},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" },
                     "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn status_counts_desired_current_ready_updated_and_misscheduled() {
        let d = ds(json!({"template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "x"}], "nodeSelector": {"role": "worker"}}}}));
        let nodes = vec![
            node("a", json!({"role": "worker"})),
            node("b", json!({"role": "worker"})),
            node("c", json!({"role": "worker"})),
            node("m", json!({"role": "master"})),
        ];
        let mut by_node = BTreeMap::new();
        // a: a ready new pod, plus a younger old one that does not count
        by_node.insert(
            "a".to_owned(),
            vec![
                pod("a-new", "a", "h2", true, 10),
                pod("a-old", "a", "h1", true, 20),
            ],
        );
        // b: an old pod not ready yet
        by_node.insert("b".to_owned(), vec![pod("b-old", "b", "h1", false, 10)]);
        // c: nothing; m: a pod where none should be
        by_node.insert("m".to_owned(), vec![pod("m", "m", "h2", true, 10)]);
        let c = count_status(&d, &nodes, &by_node, "h2", jiff::Timestamp::now());
        assert_eq!(
            c,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 1,
                ready: 1,
                updated: 1,
                available: 1,
                unavailable: 2,
            }
        );
        let status = DaemonSetStatus {
            desired_number_scheduled: 3,
            current_number_scheduled: 2,
            number_misscheduled: 1,
            number_ready: 1,
            updated_number_scheduled: Some(1),
            number_available: Some(1),
            number_unavailable: Some(2),
            observed_generation: Some(4),
            ..DaemonSetStatus::default()
        };
        assert!(status_says(&status, &c, 4));
        assert!(
            !status_says(&status, &c, 5),
            "a newer generation is written"
        );
    }

    #[test]
    fn expectations_count_creations_and_deletions() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/d"));
        e.set("ns/d", 2, 1);
        e.creation_observed("ns/d");
        e.deletion_observed("ns/d");
        assert!(!e.satisfied("ns/d"));
        e.lower("ns/d", 1, 0);
        assert!(e.satisfied("ns/d"));
        e.set("ns/d", 1, 0);
        e.delete("ns/d");
        assert!(e.satisfied("ns/d"));
    }
}
