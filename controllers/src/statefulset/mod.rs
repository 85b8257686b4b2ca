//! The StatefulSet controller (upstream's `pkg/controller/statefulset`): each set
//! keeps pods with stable names `<set>-<ordinal>`, each with its own claims made from
//! the volumeClaimTemplates. With `OrderedReady` pods are created one at a time in
//! ordinal order, each waiting for its predecessors to be Running, Ready and
//! available, and removed highest ordinal first, one at a time; `Parallel` drops the
//! ordering. Templates are recorded as ControllerRevisions; a rolling update replaces
//! pods highest ordinal first down to the partition, `OnDelete` only replaces what
//! the user deletes. The claims' ownerReferences follow the retention policy.
//!
//! Unlike the ReplicaSet controller there are no expectations: pod names are fixed,
//! so a create the cache has not shown yet fails with AlreadyExists and is retried.

mod control;
mod history;
mod identity;
mod pvc;
mod status;

use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::Selector;
use component_base::events::Recorder;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

pub use identity::{POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL};

use crate::Context;
use crate::controller_utils::{
    self, Claim, OwnerLookup, controller_of, controller_ref, label_selector, labels_of, message_of,
    pod_key, recheck_owner, requeue_when_available, status_code,
};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name (its service account is `statefulset-controller`).
pub const NAME: &str = "statefulset-controller";
/// The service account it acts as.
pub const SERVICE_ACCOUNT: &str = "statefulset-controller";
/// How often every set is looked at again (upstream's `statefulSetResyncPeriod`).
const RESYNC: Duration = Duration::from_secs(30);

/// Why a sync failed; the set is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed; the message says which.
    #[error("{0}")]
    Request(String),
    /// A ControllerRevision could not be used.
    #[error("{0}")]
    Revision(String),
    /// Several things failed.
    #[error("[{}]", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<Error>),
}

impl Error {
    /// Combines errors into one (none when `errors` is empty).
    fn aggregate(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Aggregate(errors)),
        }
    }
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Starts the controller.
pub fn start(cx: Context) -> BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_statefulset_syncs;
    let controller = Arc::new(Controller {
        sets: cx.informers.informer::<StatefulSet>(),
        pods: cx.informers.informer::<Pod>(),
        claims: cx.informers.informer::<PersistentVolumeClaim>(),
        revisions: cx.informers.informer::<ControllerRevision>(),
        queue: WorkQueue::new(),
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        component: cx.name,
    });
    let queue = controller.queue.clone();
    controller.sets.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        queue.add(key_of(s.as_ref()));
    });
    let handler = controller.clone();
    controller
        .pods
        .add_handler(move |change: &Change<'_, Pod>| handler.pod_changed(change));
    let name = cx.name;
    Box::pin(async move {
        controller.sets.wait_synced().await;
        controller.pods.wait_synced().await;
        controller.claims.wait_synced().await;
        controller.revisions.wait_synced().await;
        tracing::info!(controller = name, "caches synced; starting workers");
        let resync = {
            let (queue, sets) = (controller.queue.clone(), controller.sets.clone());
            async move {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for set in sets.list() {
                        queue.add(key_of(set.as_ref()));
                    }
                }
            }
        };
        let queue = controller.queue.clone();
        let work = queue.run(worker_count, None, name, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync(&key).await }
        });
        tokio::select! {
            () = work => {}
            () = resync => {}
        }
    })
}

struct Controller {
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    claims: Informer<PersistentVolumeClaim>,
    revisions: Informer<ControllerRevision>,
    queue: Arc<WorkQueue<String>>,
    client: kube::Client,
    recorder: Recorder,
    component: &'static str,
}

impl Controller {
    // ---- handlers: quick, they only enqueue keys ----

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => self.pod_added(pod),
            Change::Updated { old, new } => self.pod_updated(old, new),
            Change::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    /// The sets as owners of pods.
    fn lookup(&self) -> OwnerLookup<'_, StatefulSet> {
        OwnerLookup {
            owners: &self.sets,
            selector: |s| label_selector(s.spec.as_ref().map(|spec| &spec.selector)).ok(),
        }
    }

    fn pod_added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            self.pod_deleted(pod);
            return;
        }
        for set in self.lookup().added(&pod.metadata).all() {
            self.queue.add(key_of(set.as_ref()));
        }
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        let concerned = self.lookup().updated(&old.metadata, &new.metadata);
        if let Some(set) = &concerned.controller {
            let min_ready = identity::min_ready_seconds(set);
            if let Some(delay) = requeue_when_available(min_ready, old, new) {
                self.queue.add_after(key_of(set.as_ref()), delay);
            }
        }
        for set in concerned.all() {
            self.queue.add(key_of(set.as_ref()));
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(set) = self.lookup().controller(&pod.metadata) {
            self.queue.add(key_of(set.as_ref()));
        }
    }

    // ---- the sync of one set ----

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(set) = self.sets.get(namespace, name) else {
            tracing::debug!(%key, "StatefulSet has been deleted");
            return Ok(());
        };
        let selector = match label_selector(set.spec.as_ref().map(|s| &s.selector)) {
            Ok(selector) => selector,
            Err(e) => {
                // not transient: the apiserver validates selectors
                tracing::warn!(%key, error = %e, "error converting StatefulSet selector");
                return Ok(());
            }
        };
        self.adopt_orphan_revisions(&set, &selector).await?;
        let pods = self.claim_pods(&set, &selector).await?;
        let status = self.update_stateful_set(&set, &selector, &pods).await?;
        let wanted = identity::replicas(&set);
        let min_ready = identity::min_ready_seconds(&set);
        if min_ready > 0 && status.available_replicas.unwrap_or(0) != wanted {
            let delay = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
            self.queue.add_after(key.to_owned(), delay);
        }
        Ok(())
    }

    /// The ControllerRevisions of `set`: those its selector matches that it controls
    /// or that have no controller (upstream's `ListControllerRevisions`).
    fn list_revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> Vec<Arc<ControllerRevision>> {
        let uid = set.metadata.uid.as_deref().unwrap_or_default();
        self.revisions
            .list_namespace(set.metadata.namespace.as_deref().unwrap_or_default())
            .into_iter()
            .filter(|r| selector.matches(&labels_of(&r.metadata)))
            .filter(|r| controller_of(&r.metadata).is_none_or(|c| c.uid == uid))
            .collect()
    }

    /// Adopts the orphaned revisions the set selects (upstream's
    /// `adoptOrphanRevisions`), after checking the set is still there.
    async fn adopt_orphan_revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> Result<(), Error> {
        let orphans: Vec<Arc<ControllerRevision>> = self
            .list_revisions(set, selector)
            .into_iter()
            .filter(|r| controller_of(&r.metadata).is_none())
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        self.recheck_not_deleted(set)
            .await
            .map_err(|e| Error::Request(format!("can't adopt ControllerRevisions: {e}")))?;
        let namespace = set.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &namespace);
        for revision in orphans {
            let patch = controller_utils::adopt_patch(
                &controller_ref(set),
                revision.metadata.uid.as_deref().unwrap_or_default(),
            );
            api.patch(
                &revision.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(|e| {
                Error::Request(format!(
                    "adopt ControllerRevision {}: {}",
                    revision.name_any(),
                    message_of(&e)
                ))
            })?;
        }
        Ok(())
    }

    /// Upstream's `RecheckDeletionTimestamp`: a fresh read must show the same set, not
    /// being deleted, before anything is adopted.
    async fn recheck_not_deleted(&self, set: &StatefulSet) -> Result<(), String> {
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let uid = set.metadata.uid.as_deref();
        recheck_owner(&api, &set.name_any(), uid)
            .await
            .map_err(|e| e.to_string())
    }

    /// The set's pods: those it controls that it still selects and whose names make
    /// them members, plus orphans of that kind it adopts; others it controls are
    /// released (upstream's `getPodsForStatefulSet`). Pods of every phase count.
    async fn claim_pods(
        &self,
        set: &Arc<StatefulSet>,
        selector: &Selector,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let namespace = set.namespace().unwrap_or_default();
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        let mut can_adopt: Option<Result<(), String>> = None;
        for pod in self.pods.list_namespace(&namespace) {
            let decision = match controller_utils::claim(set.as_ref(), selector, &pod) {
                // upstream's claim filter: only members by name are kept or adopted
                Claim::Keep | Claim::Adopt if !identity::is_member(set, &pod) => {
                    if controller_of(&pod.metadata).is_some() {
                        if set.metadata.deletion_timestamp.is_some() {
                            Claim::Ignore
                        } else {
                            Claim::Release
                        }
                    } else {
                        Claim::Ignore
                    }
                }
                other => other,
            };
            match decision {
                Claim::Keep => claimed.push(pod),
                Claim::Ignore => {}
                Claim::Release => {
                    if let Err(e) = self.patch_pod_owner(set, &pod, false).await {
                        errors.push(e);
                    }
                }
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_not_deleted(set).await);
                    }
                    if let Some(Err(message)) = &can_adopt {
                        errors.push(Error::Request(format!(
                            "can't adopt Pod {}: {message}",
                            pod_key(&pod)
                        )));
                        continue;
                    }
                    match self.patch_pod_owner(set, &pod, true).await {
                        Ok(true) => claimed.push(pod),
                        Ok(false) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
        match Error::aggregate(errors) {
            None => Ok(claimed),
            Some(e) => Err(e),
        }
    }

    /// Adopts (or releases) `pod`; false when it is gone.
    async fn patch_pod_owner(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        adopt: bool,
    ) -> Result<bool, Error> {
        let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let patch = if adopt {
            controller_utils::adopt_patch(&controller_ref(set), pod_uid)
        } else {
            controller_utils::release_patch(
                set.metadata.uid.as_deref().unwrap_or_default(),
                pod_uid,
            )
        };
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
            // released meanwhile, or no longer ours
            Err(e) if !adopt && status_code(&e) == Some(422) => Ok(false),
            Err(e) => Err(Error::Request(format!(
                "{} Pod {}: {}",
                if adopt { "adopt" } else { "release" },
                pod_key(pod),
                message_of(&e)
            ))),
        }
    }
}
