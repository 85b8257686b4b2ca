//! The ReplicaSet controller, and the ReplicationController controller over the same
//! logic (upstream's `pkg/controller/replicaset`, which serves ReplicationControllers
//! through a conversion adapter): each owner keeps `spec.replicas` active pods made
//! from its template, adopting matching orphans and releasing pods it no longer
//! selects, and reports how many exist, carry its labels, are ready and available.
//!
//! Creates and deletes are recorded as expectations and a sync waits for the pod
//! informer to show them before acting again, so a stale cache never makes it create
//! or delete twice.

mod kind;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::Selector;
use component_base::events::Recorder;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

pub use kind::{ReplicaCondition, ReplicaKind, ReplicaStatus};

use crate::Context;
use crate::controller_utils::{
    self, Claim, Expectations, OwnerLookup, SLOW_START_INITIAL_BATCH_SIZE, controller_of,
    controller_ref, is_pod_active, labels_of, message_of, pod_key, recheck_owner,
    requeue_when_available, status_code,
};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// At most this many pods are created or deleted by one sync (upstream's
/// `BurstReplicas`); the rest wait for the next.
pub const BURST_REPLICAS: usize = 500;

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about the owner failed.
    #[error("{kind} {key}: {source}")]
    Owner {
        /// The owner's kind.
        kind: String,
        /// Its key.
        key: String,
        /// The cause.
        source: kube::Error,
    },
    /// Adopting or releasing a pod failed.
    #[error("{action} Pod {pod}: {message}")]
    Claim {
        /// `adopt` or `release`.
        action: &'static str,
        /// The pod's key.
        pod: String,
        /// The cause.
        message: String,
    },
    /// Several claims failed.
    #[error("[{}]", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))]
    Claims(Vec<Error>),
    /// A pod could not be created; the message is the apiserver's, as upstream's
    /// condition and event show it.
    #[error("{0}")]
    Create(String),
    /// A pod could not be deleted.
    #[error("unable to delete pods: {0}")]
    Delete(String),
}

/// Starts the ReplicaSet controller (`replicaset-controller`).
pub fn start_replicaset(cx: Context) -> BoxFuture<'static, ()> {
    let workers = cx.settings.concurrent_replicaset_syncs;
    start::<ReplicaSet>(cx, workers)
}

/// Starts the ReplicationController controller (`replicationcontroller-controller`).
pub fn start_replication_controller(cx: Context) -> BoxFuture<'static, ()> {
    let workers = cx.settings.concurrent_rc_syncs;
    start::<ReplicationController>(cx, workers)
}

fn start<K: ReplicaKind>(cx: Context, workers: usize) -> BoxFuture<'static, ()> {
    let controller = Arc::new(Controller::<K> {
        owners: cx.informers.informer::<K>(),
        pods: cx.informers.informer::<Pod>(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        burst: BURST_REPLICAS,
    });
    let handler = controller.clone();
    controller
        .owners
        .add_handler(move |change: &Change<'_, K>| handler.owner_changed(change));
    let handler = controller.clone();
    controller
        .pods
        .add_handler(move |change: &Change<'_, Pod>| handler.pod_changed(change));
    let name = cx.name;
    Box::pin(async move {
        controller.owners.wait_synced().await;
        controller.pods.wait_synced().await;
        tracing::info!(controller = name, "caches synced; starting workers");
        let queue = controller.queue.clone();
        queue
            .run(workers, None, name, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

struct Controller<K> {
    owners: Informer<K>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue<String>>,
    expectations: Expectations,
    client: kube::Client,
    recorder: Recorder,
    burst: usize,
}

impl<K: ReplicaKind> Controller<K> {
    // ---- handlers: quick, they only note expectations and enqueue keys ----

    fn owner_changed(&self, change: &Change<'_, K>) {
        match change {
            Change::Added(owner) => self.queue.add(key_of(owner.as_ref())),
            Change::Updated { old, new } => {
                // a delete and re-create seen as one update: the old one's
                // expectations must not hold back the new one
                if old.meta().uid != new.meta().uid {
                    self.expectations.delete(&key_of(old.as_ref()));
                }
                self.queue.add(key_of(new.as_ref()));
            }
            Change::Deleted(owner) => {
                let key = key_of(owner.as_ref());
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => self.pod_added(pod),
            Change::Updated { old, new } => self.pod_updated(old, new),
            Change::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    /// The owners as owners of pods.
    fn lookup(&self) -> OwnerLookup<'_, K> {
        OwnerLookup {
            owners: &self.owners,
            selector: |o| o.selector().ok(),
        }
    }

    fn pod_added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            // seen already being deleted (e.g. after a restart): not a creation
            self.pod_deleted(pod);
            return;
        }
        let concerned = self.lookup().added(&pod.metadata);
        if let Some(owner) = concerned.controller {
            let key = key_of(owner.as_ref());
            self.expectations.creation_observed(&key);
            self.queue.add(key);
        }
        // an orphan: whoever selects it may adopt it (no creation was expected)
        for owner in concerned.adopters {
            self.queue.add(key_of(owner.as_ref()));
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
            if old.metadata.labels != new.metadata.labels {
                self.pod_deleted(old);
            }
            return;
        }
        let concerned = self.lookup().updated(&old.metadata, &new.metadata);
        if let Some(owner) = &concerned.controller
            && let Some(delay) = requeue_when_available(owner.min_ready_seconds(), old, new)
        {
            self.queue.add_after(key_of(owner.as_ref()), delay);
        }
        for owner in concerned.all() {
            self.queue.add(key_of(owner.as_ref()));
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(owner) = self.lookup().controller(&pod.metadata) {
            let key = key_of(owner.as_ref());
            self.expectations.deletion_observed(&key, &pod_key(pod));
            self.queue.add(key);
        }
    }

    // ---- the sync of one owner ----

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(owner) = self.owners.get(namespace, name) else {
            self.expectations.delete(key);
            return Ok(());
        };
        // read before listing pods, so what the list shows includes what was expected
        let needs_sync = self.expectations.satisfied(key);
        let selector = match owner.selector() {
            Ok(selector) => selector,
            Err(e) => {
                // the apiserver validates selectors, so only a broken object gets here;
                // retrying would not help
                tracing::warn!(kind = %K::kind(&()), %key, error = %e, "invalid pod selector");
                return Ok(());
            }
        };
        let active: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(namespace)
            .into_iter()
            .filter(|p| is_pod_active(p))
            .collect();
        let pods = self.claim_pods(&owner, &selector, active).await?;

        let manage_error = if needs_sync && owner.meta().deletion_timestamp.is_none() {
            self.manage_replicas(&owner, key, &pods).await.err()
        } else {
            None
        };

        let template_labels = owner
            .template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let new_status = status::calculate(
            &status::Owner {
                status: owner.replica_status(),
                desired: owner.desired_replicas(),
                min_ready_seconds: owner.min_ready_seconds(),
                template_labels: &template_labels,
            },
            &pods,
            manage_error.as_ref().map(|e| e.to_string()).as_deref(),
            jiff::Timestamp::now(),
        );
        let updated = self.update_status(&owner, key, new_status).await?;

        // a last look once pods may have become available, against clock skew
        let min_ready = updated.min_ready_seconds();
        let desired = updated.desired_replicas();
        let current = updated.replica_status();
        if manage_error.is_none()
            && min_ready > 0
            && current.ready_replicas == desired
            && current.available_replicas != desired
        {
            let delay = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
            self.queue.add_after(key.to_owned(), delay);
        }
        match manage_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The owner's pods among `active`: those it controls and still selects, plus the
    /// orphans it adopts (upstream's `PodControllerRefManager.ClaimPods`).
    async fn claim_pods(
        &self,
        owner: &Arc<K>,
        selector: &Selector,
        active: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        // whether the owner may adopt, checked once against the apiserver
        let mut can_adopt: Option<Result<(), String>> = None;
        for pod in active {
            match controller_utils::claim(owner.as_ref(), selector, &pod) {
                Claim::Keep => claimed.push(pod),
                Claim::Ignore => {}
                Claim::Release => {
                    if let Err(e) = self.release(owner, &pod).await {
                        errors.push(e);
                    }
                }
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_not_deleted(owner).await);
                    }
                    if let Some(Err(message)) = &can_adopt {
                        errors.push(Error::Claim {
                            action: "can't adopt",
                            pod: pod_key(&pod),
                            message: message.clone(),
                        });
                        continue;
                    }
                    match self.adopt(owner, &pod).await {
                        Ok(true) => claimed.push(pod),
                        Ok(false) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
        match errors.len() {
            0 => Ok(claimed),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Claims(errors)),
        }
    }

    /// Upstream's `RecheckDeletionTimestamp`: before adopting, a fresh read of the
    /// owner (not the cache) must show it still exists, is the same object and is not
    /// being deleted, or the garbage collector could miss the adopted pods.
    async fn recheck_not_deleted(&self, owner: &K) -> Result<(), String> {
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
        let uid = owner.meta().uid.as_deref();
        recheck_owner(&api, &owner.name_any(), uid)
            .await
            .map_err(|e| e.to_string())
    }

    /// Adopts `pod`; false when it is gone.
    async fn adopt(&self, owner: &K, pod: &Pod) -> Result<bool, Error> {
        let patch = controller_utils::adopt_patch(
            &controller_ref(owner),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(Error::Claim {
                action: "adopt",
                pod: pod_key(pod),
                message: message_of(&e),
            }),
        }
    }

    /// Releases `pod`; a pod gone or already changed (404, 422) needs nothing more.
    async fn release(&self, owner: &K, pod: &Pod) -> Result<(), Error> {
        tracing::debug!(kind = %K::kind(&()), pod = %pod_key(pod), "releasing pod that no longer matches");
        let patch = controller_utils::release_patch(
            owner.meta().uid.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(status_code(&e), Some(404 | 422)) => Ok(()),
            Err(e) => Err(Error::Claim {
                action: "release",
                pod: pod_key(pod),
                message: message_of(&e),
            }),
        }
    }

    /// Creates or deletes pods so that `pods` (the owner's active pods) reach
    /// `spec.replicas` (upstream's `manageReplicas`).
    async fn manage_replicas(
        &self,
        owner: &Arc<K>,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let desired = usize::try_from(owner.desired_replicas()).unwrap_or(0);
        if pods.len() < desired {
            let diff = (desired - pods.len()).min(self.burst);
            self.expectations.expect_creations(key, diff);
            tracing::debug!(kind = %K::kind(&()), %key, need = desired, creating = diff, "too few replicas");
            let (created, error) =
                controller_utils::slow_start_batch(diff, SLOW_START_INITIAL_BATCH_SIZE, || {
                    self.create_pod(owner)
                })
                .await;
            // creates never attempted will not be seen: stop expecting them
            for _ in created..diff {
                self.expectations.creation_observed(key);
            }
            return error.map_or(Ok(()), Err);
        }
        if pods.len() > desired {
            let diff = (pods.len() - desired).min(self.burst);
            tracing::debug!(kind = %K::kind(&()), %key, need = desired, deleting = diff, "too many replicas");
            let victims = self.pods_to_delete(owner, pods, diff);
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| pod_key(p)).collect());
            let results = futures::future::join_all(
                victims.iter().map(|pod| self.delete_pod(owner, key, pod)),
            )
            .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The `count` pods to delete, earliest in their life first, preferring pods on
    /// nodes crowded with pods of the same (Deployment) family (upstream's
    /// `getPodsToDelete`).
    fn pods_to_delete(&self, owner: &K, pods: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
        if count >= pods.len() {
            return pods.to_vec();
        }
        let related = self.related_pods(owner);
        let ranks = controller_utils::ranks_by_colocation(pods, &related);
        let mut ranked: Vec<(Arc<Pod>, usize)> = pods.iter().cloned().zip(ranks).collect();
        controller_utils::sort_for_deletion(&mut ranked, jiff::Timestamp::now());
        ranked.into_iter().take(count).map(|(p, _)| p).collect()
    }

    /// The pods of every owner sharing this owner's controller (upstream's
    /// `getIndirectlyRelatedPods`): the ReplicaSets of one Deployment count together.
    fn related_pods(&self, owner: &K) -> Vec<Arc<Pod>> {
        let Some(parent) = controller_of(owner.meta()) else {
            return Vec::new();
        };
        let namespace = owner.namespace().unwrap_or_default();
        let pods = self.pods.list_namespace(&namespace);
        let mut seen = HashSet::new();
        let mut related = Vec::new();
        for sibling in self.owners.list_namespace(&namespace) {
            if controller_of(sibling.meta()).map(|r| &r.uid) != Some(&parent.uid) {
                continue;
            }
            let Ok(selector) = sibling.selector() else {
                continue;
            };
            for pod in &pods {
                if selector.matches(&labels_of(&pod.metadata))
                    && seen.insert(pod.metadata.uid.clone().unwrap_or_default())
                {
                    related.push(pod.clone());
                }
            }
        }
        related
    }

    /// Creates one pod from the owner's template (upstream's `RealPodControl.CreatePods`),
    /// with its event.
    async fn create_pod(&self, owner: &Arc<K>) -> Result<(), Error> {
        let namespace = owner.namespace().unwrap_or_default();
        let template = owner.template().cloned().unwrap_or_default();
        let pod = controller_utils::pod_from_template(
            &template,
            &namespace,
            &owner.name_any(),
            Some(controller_ref(owner.as_ref())),
        );
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Err(Error::Create("unable to create pods, no labels".to_owned()));
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.recorder.event(
                    owner.as_ref(),
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.name_any()),
                    K::EVENT_SOURCE,
                );
                Ok(())
            }
            // the namespace is going away: every create would fail, nothing to report
            Err(e)
                if controller_utils::has_status_cause(
                    &e,
                    controller_utils::NAMESPACE_TERMINATING_CAUSE,
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                let message = message_of(&e);
                self.recorder.event(
                    owner.as_ref(),
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {message}"),
                    K::EVENT_SOURCE,
                );
                Err(Error::Create(message))
            }
        }
    }

    /// Deletes `pod` (upstream's `RealPodControl.DeletePod`), with its event; a failed
    /// delete will not be observed, so it is no longer expected.
    async fn delete_pod(&self, owner: &Arc<K>, key: &str, pod: &Pod) -> Result<(), Error> {
        let name = pod.name_any();
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.event(
                    owner.as_ref(),
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                    K::EVENT_SOURCE,
                );
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(key, &pod_key(pod));
                if status_code(&e) == Some(404) {
                    return Ok(());
                }
                let message = message_of(&e);
                self.recorder.event(
                    owner.as_ref(),
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {message}"),
                    K::EVENT_SOURCE,
                );
                Err(Error::Delete(message))
            }
        }
    }

    /// Writes `new` through the status subresource unless nothing changed, retrying
    /// once on a fresh copy (upstream's `updateReplicaSetStatus`); returns the owner
    /// as it now is.
    async fn update_status(
        &self,
        owner: &Arc<K>,
        key: &str,
        mut new: ReplicaStatus,
    ) -> Result<Arc<K>, Error> {
        let generation = owner.meta().generation.unwrap_or(0);
        if !status::needs_update(&owner.replica_status(), &new, generation) {
            return Ok(owner.clone());
        }
        new.observed_generation = generation;
        let namespace = owner.namespace().unwrap_or_default();
        let name = owner.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let fail = |source| Error::Owner {
            kind: K::kind(&()).into_owned(),
            key: key.to_owned(),
            source,
        };
        let mut current = owner.as_ref().clone();
        let mut retried = false;
        loop {
            current.set_replica_status(new.clone());
            match api
                .replace_status(&name, &PostParams::default(), &current)
                .await
            {
                Ok(updated) => return Ok(Arc::new(updated)),
                Err(e) if retried => return Err(fail(e)),
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), %key, error = %e, "status update failed; retrying on a fresh copy");
                    retried = true;
                    current = api.get(&name).await.map_err(fail)?;
                }
            }
        }
    }
}
