//! The garbage collector (upstream's `garbage-collector-controller`): deletes objects
//! whose owners are gone and carries out foreground and orphaning deletions.
//!
//! Every resource that supports delete, list and watch is watched for metadata only
//! ([`monitors`]); the changes build the graph of owners and dependents ([`graph`]).
//! Two work queues of object uids act on it, as upstream's:
//!
//! - attemptToDelete: an object whose owners may be absent is checked against live
//!   GETs of its owners and deleted when none remains (Background, or Foreground when
//!   an owner waits for it and it has dependents of its own), or has its dangling
//!   references removed when some remain; an owner deleting in the foreground loses
//!   its `foregroundDeletion` finalizer once no blocking dependent is left;
//! - attemptToOrphan: an owner deleted with the `orphan` finalizer has its
//!   references removed from every dependent, then loses that finalizer.
//!
//! Decisions are taken on live reads (the graph may lag) and writes carry uid and
//! resourceVersion preconditions, so a stale graph never deletes the wrong object.
//! The workers start once every watch has delivered its first list into the graph
//! (or after a timeout), so an owner is not orphaned before its dependents are known.

pub mod graph;
pub mod monitors;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::workqueue::WorkQueue;
use graph::{
    Change, ChangeKind, DependentView, FOREGROUND, Graph, Identity, NodeView, ORPHAN, ObjectState,
    OwnerRef,
};
use monitors::{Discovered, Message, Monitors, Resource};

/// The controller's name.
pub const NAME: &str = "garbage-collector-controller";
/// The service account it acts as.
pub const SERVICE_ACCOUNT: &str = "generic-garbage-collector";
/// How often the watched resources are discovered again (upstream's resync period of
/// its monitors).
const RESYNC: Duration = Duration::from_secs(30);
/// How many absent owners are remembered (upstream's absentOwnerCache size).
const ABSENT_CACHE_SIZE: usize = 500;
/// How many dependents are orphaned at once.
const ORPHAN_CONCURRENCY: usize = 20;
/// How long the workers wait for the first lists of all watches before they start
/// anyway (a resource that cannot be listed must not stop the collector).
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an attempt did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// An apiVersion and kind no served resource has (yet).
    #[error("unable to get REST mapping for {api_version}/{kind}")]
    Unmapped {
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
    },
    /// The object does not exist: a virtual deletion was sent to the graph.
    #[error("enqueued virtual delete event")]
    VirtualDeleteEnqueued,
    /// A cluster-scoped object names a namespaced owner, which cannot be.
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScoped,
    /// A virtual node that exists; it is looked at again until a watch shows it.
    #[error("{0} has not been observed by a watch yet")]
    NotObserved(String),
    /// The object kept changing while a finalizer was being removed.
    #[error("conflicts removing finalizer {finalizer} from {item}")]
    Conflicts {
        /// The object.
        item: String,
        /// The finalizer.
        finalizer: String,
    },
    /// Some dependents could not be orphaned.
    #[error("failed to orphan dependents of owner {owner}: {errors}")]
    Orphan {
        /// The owner.
        owner: String,
        /// What failed.
        errors: String,
    },
}

/// An ownerReference sorted by the state of the owner it names (upstream's
/// `classifyReferences`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    /// Owners that exist and are not deleting in the foreground.
    pub solid: Vec<OwnerRef>,
    /// Owners that do not exist.
    pub dangling: Vec<OwnerRef>,
    /// Owners that exist, being deleted in the foreground (waiting for dependents).
    pub waiting: Vec<OwnerRef>,
}

/// What to do with a dependent, given its owners (upstream's `attemptToDeleteItem`
/// decision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it as it is.
    Keep,
    /// Keep it but remove the references to these owner uids (dangling ones, and those
    /// to owners waiting for it, which would otherwise wait forever).
    DropReferences(Vec<String>),
    /// Delete it with this propagation policy; `unblock_first`: first turn off
    /// blockOwnerDeletion in its references (a possible cycle of foreground deletions).
    Delete {
        /// The propagation policy of the delete.
        policy: Policy,
        /// Whether its references are made non-blocking first.
        unblock_first: bool,
    },
}

/// A deletion propagation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Orphan its dependents.
    Orphan,
    /// Delete it, its dependents afterwards.
    Background,
    /// Delete its dependents first.
    Foreground,
}

impl Policy {
    fn to_kube(self) -> PropagationPolicy {
        match self {
            Policy::Orphan => PropagationPolicy::Orphan,
            Policy::Background => PropagationPolicy::Background,
            Policy::Foreground => PropagationPolicy::Foreground,
        }
    }
}

/// Decides about an object that has ownerReferences, from their owners' states, its
/// own dependents in the graph and its finalizers.
pub fn decide(
    classified: &Classified,
    dependents: &[DependentView],
    finalizers: &[String],
) -> Verdict {
    if !classified.solid.is_empty() {
        if classified.dangling.is_empty() && classified.waiting.is_empty() {
            return Verdict::Keep;
        }
        let uids = classified
            .dangling
            .iter()
            .chain(&classified.waiting)
            .map(|r| r.uid.clone())
            .collect();
        return Verdict::DropReferences(uids);
    }
    if !classified.waiting.is_empty() && !dependents.is_empty() {
        // an owner waits for this object, and this object has dependents: delete it in
        // the foreground so that the owner waits for them too
        return Verdict::Delete {
            policy: Policy::Foreground,
            unblock_first: dependents.iter().any(|d| d.deleting_dependents),
        };
    }
    let has = |f: &str| finalizers.iter().any(|have| have == f);
    let policy = if has(ORPHAN) {
        Policy::Orphan
    } else if has(FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    Verdict::Delete {
        policy,
        unblock_first: false,
    }
}

/// Owners known not to exist, bounded (upstream's `ReferenceCache`): saves GETs when
/// many dependents share a deleted owner.
#[derive(Default)]
struct AbsentOwners {
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
}

impl AbsentOwners {
    fn add(&mut self, identity: Identity) {
        if self.set.insert(identity.clone()) {
            self.order.push_back(identity);
            while self.order.len() > ABSENT_CACHE_SIZE {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, identity: &Identity) -> bool {
        self.set.contains(identity)
    }
}

/// The collector's shared state.
struct Collector {
    /// The controller's client: live reads and all writes.
    client: kube::Client,
    graph: Mutex<Graph>,
    discovery: RwLock<Discovered>,
    absent: Mutex<AbsentOwners>,
    changes: UnboundedSender<Message>,
    /// Watches that delivered their first list into the graph.
    synced: AtomicUsize,
    /// Watches started by the first discovery (`usize::MAX` before it).
    initial: AtomicUsize,
    synced_changed: tokio::sync::Notify,
    attempt_to_delete: Arc<WorkQueue<String>>,
    attempt_to_orphan: Arc<WorkQueue<String>>,
}

/// Starts the garbage collector.
pub fn start(cx: crate::Context) -> BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_gc_syncs;
    Box::pin(run(cx.monitor_reader, cx.client, worker_count))
}

/// Runs the garbage collector: watches read as `reader` (the manager), live reads and
/// writes go as `client` (the controller's service account), with `worker_count`
/// workers per queue (`--concurrent-gc-syncs`).
pub async fn run(reader: kube::Client, client: kube::Client, worker_count: usize) {
    let (changes, received) = tokio::sync::mpsc::unbounded_channel();
    let gc = Arc::new(Collector {
        client,
        graph: Mutex::new(Graph::default()),
        discovery: RwLock::new(Discovered::default()),
        absent: Mutex::new(AbsentOwners::default()),
        changes: changes.clone(),
        synced: AtomicUsize::new(0),
        initial: AtomicUsize::new(usize::MAX),
        synced_changed: tokio::sync::Notify::new(),
        attempt_to_delete: WorkQueue::new(),
        attempt_to_orphan: WorkQueue::new(),
    });
    let rediscover = Arc::new(tokio::sync::Notify::new());
    let workers = {
        let gc = gc.clone();
        async move {
            // as upstream, the workers start once the graph holds every object: an
            // owner orphaned before its dependents are known would orphan none
            gc.wait_for_initial_sync().await;
            let deleter = {
                let gc = gc.clone();
                gc.attempt_to_delete
                    .clone()
                    .run(worker_count, None, NAME, move |uid: String| {
                        let gc = gc.clone();
                        async move { gc.attempt_to_delete_worker(&uid).await }
                    })
            };
            let orphaner = {
                let gc = gc.clone();
                gc.attempt_to_orphan
                    .clone()
                    .run(worker_count, None, NAME, move |uid: String| {
                        let gc = gc.clone();
                        async move { gc.attempt_to_orphan_worker(&uid).await }
                    })
            };
            tokio::join!(deleter, orphaner);
        }
    };
    tokio::join!(
        process_changes(gc.clone(), received, rediscover.clone()),
        resync(gc.clone(), reader, changes, rediscover),
        workers,
    );
}

/// Applies the watches' (and workers' virtual) changes to the graph, one at a time,
/// and queues what they call for.
async fn process_changes(
    gc: Arc<Collector>,
    mut received: UnboundedReceiver<Message>,
    rediscover: Arc<tokio::sync::Notify>,
) {
    while let Some(message) = received.recv().await {
        let change = match message {
            Message::Change(change) => *change,
            Message::Synced => {
                gc.synced.fetch_add(1, Ordering::SeqCst);
                gc.synced_changed.notify_waiters();
                continue;
            }
        };
        if change.identity.kind == "CustomResourceDefinition"
            && change
                .identity
                .api_version
                .starts_with("apiextensions.k8s.io/")
        {
            // a new or changed custom resource: watch it without waiting for the resync
            rediscover.notify_one();
        }
        let effects = gc.lock_graph().process(&change);
        if !effects.absent.is_empty() {
            let mut absent = gc.absent.lock().unwrap_or_else(|e| e.into_inner());
            for identity in effects.absent {
                absent.add(identity);
            }
        }
        for uid in effects.attempt_to_delete {
            gc.attempt_to_delete.add(uid);
        }
        for uid in effects.attempt_to_delete_later {
            gc.attempt_to_delete.add_rate_limited(uid);
        }
        for uid in effects.attempt_to_orphan {
            gc.attempt_to_orphan.add(uid);
        }
    }
}

/// Discovers the collectable resources now and every [`RESYNC`] (sooner after a
/// CustomResourceDefinition changes) and keeps one watch per resource.
async fn resync(
    gc: Arc<Collector>,
    reader: kube::Client,
    changes: UnboundedSender<Message>,
    rediscover: Arc<tokio::sync::Notify>,
) {
    let mut monitors = Monitors::default();
    loop {
        match monitors::discover(&reader).await {
            Ok(mut found) => {
                found.keep_failed_from(&gc.discovery.read().unwrap_or_else(|e| e.into_inner()));
                monitors.sync(&reader, &found.watched, &changes);
                tracing::debug!(
                    resources = monitors.len(),
                    "garbage collector resynced monitors"
                );
                *gc.discovery.write().unwrap_or_else(|e| e.into_inner()) = found;
                if gc.initial.load(Ordering::SeqCst) == usize::MAX {
                    gc.initial.store(monitors.len(), Ordering::SeqCst);
                    gc.synced_changed.notify_waiters();
                }
            }
            Err(e) => tracing::info!(error = %e, "garbage collector failed to discover resources"),
        }
        tokio::select! {
            () = tokio::time::sleep(RESYNC) => {}
            () = rediscover.notified() => {
                // a CRD is served once established: give it a moment
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl Collector {
    fn lock_graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every watch of the first discovery has delivered its first list
    /// into the graph, or [`INITIAL_SYNC_TIMEOUT`].
    async fn wait_for_initial_sync(&self) {
        let deadline = tokio::time::Instant::now() + INITIAL_SYNC_TIMEOUT;
        loop {
            let changed = self.synced_changed.notified();
            let initial = self.initial.load(Ordering::SeqCst);
            if initial != usize::MAX && self.synced.load(Ordering::SeqCst) >= initial {
                tracing::info!("garbage collector synced");
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::info!(
                    "timed out waiting for the garbage collector's watches; starting anyway"
                );
                return;
            }
        }
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Result<Resource, Error> {
        let discovery = self.discovery.read().unwrap_or_else(|e| e.into_inner());
        discovery
            .resolve(api_version, kind)
            .cloned()
            .ok_or_else(|| Error::Unmapped {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// The API of `identity`'s resource in its namespace (none when cluster-scoped).
    fn api(&self, identity: &Identity) -> Result<Api<DynamicObject>, Error> {
        let resource = self.resolve(&identity.api_version, &identity.kind)?;
        Ok(api_for(&self.client, &resource, &identity.namespace))
    }

    /// A live read of `identity`'s object (metadata only); `None` when absent.
    async fn get(
        &self,
        identity: &Identity,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>, Error> {
        Ok(self.api(identity)?.get_metadata_opt(&identity.name).await?)
    }

    fn virtual_delete(&self, identity: &Identity) -> Error {
        let _ = self.changes.send(Message::Change(Box::new(Change {
            kind: ChangeKind::Deleted,
            is_virtual: true,
            identity: identity.clone(),
            object: ObjectState::default(),
            old: None,
        })));
        Error::VirtualDeleteEnqueued
    }

    /// One attemptToDelete key (upstream's `attemptToDeleteWorker`): an error
    /// requeues it with backoff.
    async fn attempt_to_delete_worker(&self, uid: &str) -> Result<(), Error> {
        let Some(view) = self.lock_graph().view(uid) else {
            return Ok(());
        };
        match self.attempt_to_delete_item(&view).await {
            Ok(()) if view.node.is_virtual => {
                Err(Error::NotObserved(view.node.identity.to_string()))
            }
            Ok(()) | Err(Error::VirtualDeleteEnqueued | Error::NamespacedOwnerOfClusterScoped) => {
                Ok(())
            }
            Err(e) => {
                tracing::debug!(item = %view.node.identity, error = %e, "error syncing item");
                Err(e)
            }
        }
    }

    async fn attempt_to_delete_item(&self, view: &NodeView) -> Result<(), Error> {
        let node = &view.node;
        tracing::debug!(item = %node.identity, is_virtual = node.is_virtual, "processing item");
        // a deletion is a one-way trip: its dependents are handled once it is gone
        if node.being_deleted && !node.deleting_dependents {
            return Ok(());
        }
        let Some(latest) = self.get(&node.identity).await? else {
            return Err(self.virtual_delete(&node.identity));
        };
        if latest.metadata.uid.as_deref() != Some(node.identity.uid.as_str()) {
            return Err(self.virtual_delete(&node.identity));
        }
        if node.deleting_dependents {
            return self.process_deleting_dependents(view).await;
        }
        let refs = OwnerRef::from_meta(
            latest
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default(),
        );
        if refs.is_empty() {
            return Ok(());
        }
        let classified = self.classify(&node.identity, &refs).await?;
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        match decide(&classified, &view.dependents, &finalizers) {
            Verdict::Keep => Ok(()),
            Verdict::DropReferences(uids) => {
                tracing::info!(item = %node.identity, owners = ?uids, "removing dangling and waiting owner references");
                self.edit_owner_references(&node.identity, |refs| {
                    let kept: Vec<OwnerReference> = refs
                        .iter()
                        .filter(|r| !uids.contains(&r.uid))
                        .cloned()
                        .collect();
                    (kept.len() != refs.len()).then_some(kept)
                })
                .await
            }
            Verdict::Delete {
                policy,
                unblock_first,
            } => {
                if unblock_first {
                    self.edit_owner_references(&node.identity, |refs| {
                        let blocking = refs.iter().any(|r| r.block_owner_deletion == Some(true));
                        blocking.then(|| {
                            refs.iter()
                                .cloned()
                                .map(|mut r| {
                                    if r.block_owner_deletion == Some(true) {
                                        r.block_owner_deletion = Some(false);
                                    }
                                    r
                                })
                                .collect()
                        })
                    })
                    .await?;
                }
                tracing::info!(item = %node.identity, ?policy, "deleting item");
                self.delete(&node.identity, &latest, policy).await
            }
        }
    }

    /// An owner deleting in the foreground: done when no blocking dependent is left,
    /// otherwise its dependents are looked at.
    async fn process_deleting_dependents(&self, view: &NodeView) -> Result<(), Error> {
        let mut blocking = view.blocking_dependents().peekable();
        if blocking.peek().is_none() {
            tracing::info!(item = %view.node.identity, "removing the foregroundDeletion finalizer");
            return self.remove_finalizer(&view.node.identity, FOREGROUND).await;
        }
        for dep in blocking.filter(|d| !d.deleting_dependents) {
            self.attempt_to_delete.add(dep.identity.uid.clone());
        }
        Ok(())
    }

    /// Sorts `item`'s references by their owners' live states.
    async fn classify(&self, item: &Identity, refs: &[OwnerRef]) -> Result<Classified, Error> {
        let mut classified = Classified::default();
        for r in refs {
            match self.owner_state(item, r).await? {
                None => classified.dangling.push(r.clone()),
                Some(owner) if owner.being_deleted && owner.has_finalizer(FOREGROUND) => {
                    classified.waiting.push(r.clone())
                }
                Some(_) => classified.solid.push(r.clone()),
            }
        }
        Ok(classified)
    }

    /// The live state of the owner `reference` names, seen from `item`; `None` when
    /// absent (upstream's `isDangling`). A namespaced owner is looked for in the
    /// item's namespace only, so an owner in another namespace is absent.
    async fn owner_state(
        &self,
        item: &Identity,
        reference: &OwnerRef,
    ) -> Result<Option<ObjectState>, Error> {
        let mut key = reference.identity("");
        {
            let absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
            if absent.contains(&key) {
                return Ok(None);
            }
            key.namespace = item.namespace.clone();
            if absent.contains(&key) {
                return Ok(None);
            }
        }
        let resource = self.resolve(&reference.api_version, &reference.kind)?;
        if !resource.namespaced {
            key.namespace.clear();
        }
        if item.namespace.is_empty() && resource.namespaced {
            tracing::info!(item = %item, owner = %reference.name, "item is cluster-scoped, but refers to a namespaced owner");
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        let api = api_for(&self.client, &resource, &item.namespace);
        let owner = api.get_metadata_opt(&reference.name).await?;
        match owner {
            Some(owner) if owner.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                Ok(Some(ObjectState::from_meta(&owner.metadata)))
            }
            _ => {
                self.absent
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(key);
                Ok(None)
            }
        }
    }

    /// Deletes `identity`'s object as it was read in `latest` (uid and resourceVersion
    /// preconditions); when only its resourceVersion moved and its owners did not,
    /// tries again at the new version (upstream's `deleteObject`).
    async fn delete(
        &self,
        identity: &Identity,
        latest: &PartialObjectMeta<DynamicObject>,
        policy: Policy,
    ) -> Result<(), Error> {
        let api = self.api(identity)?;
        let params = |resource_version: Option<String>| DeleteParams {
            propagation_policy: Some(policy.to_kube()),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version,
            }),
            ..DeleteParams::default()
        };
        let result = match api
            .delete(
                &identity.name,
                &params(latest.metadata.resource_version.clone()),
            )
            .await
        {
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                match api.get_metadata_opt(&identity.name).await? {
                    None => return Err(self.virtual_delete(identity)),
                    Some(live)
                        if live.metadata.uid == latest.metadata.uid
                            && live.metadata.resource_version
                                != latest.metadata.resource_version
                            && live.metadata.owner_references
                                == latest.metadata.owner_references =>
                    {
                        api.delete(
                            &identity.name,
                            &params(live.metadata.resource_version.clone()),
                        )
                        .await
                    }
                    Some(_) => return Err(Error::Kube(kube::Error::Api(status))),
                }
            }
            other => other,
        };
        match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                Err(self.virtual_delete(identity))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites `identity`'s ownerReferences with `edit` (`None`: nothing to change),
    /// as a merge patch guarded by the object's uid and resourceVersion.
    async fn edit_owner_references<F>(&self, identity: &Identity, edit: F) -> Result<(), Error>
    where
        F: Fn(&[OwnerReference]) -> Option<Vec<OwnerReference>>,
    {
        let api = self.api(identity)?;
        let Some(live) = api.get_metadata_opt(&identity.name).await? else {
            return Err(self.virtual_delete(identity));
        };
        if live.metadata.uid.as_deref() != Some(identity.uid.as_str()) {
            return Err(self.virtual_delete(identity));
        }
        let Some(refs) = edit(
            live.metadata
                .owner_references
                .as_deref()
                .unwrap_or_default(),
        ) else {
            return Ok(());
        };
        let refs = if refs.is_empty() {
            json!(null)
        } else {
            json!(refs)
        };
        let patch = json!({"metadata": {
            "uid": identity.uid,
            "resourceVersion": live.metadata.resource_version,
            "ownerReferences": refs,
        }});
        api.patch_metadata(
            &identity.name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        Ok(())
    }

    /// Removes `finalizer` from `identity`'s object (gone already: nothing to do).
    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> Result<(), Error> {
        let api = self.api(identity)?;
        for _ in 0..5 {
            let Some(live) = api.get_metadata_opt(&identity.name).await? else {
                return Ok(());
            };
            if live.metadata.uid.as_deref() != Some(identity.uid.as_str()) {
                return Ok(());
            }
            let finalizers = live.metadata.finalizers.clone().unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let kept = if kept.is_empty() {
                json!(null)
            } else {
                json!(kept)
            };
            let patch = json!({"metadata": {
                "uid": identity.uid,
                "resourceVersion": live.metadata.resource_version,
                "finalizers": kept,
            }});
            match api
                .patch_metadata(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.is_conflict() => continue,
                Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflicts {
            item: identity.to_string(),
            finalizer: finalizer.to_owned(),
        })
    }

    /// One attemptToOrphan key: the owner's references are removed from all its
    /// dependents, then its `orphan` finalizer.
    async fn attempt_to_orphan_worker(&self, uid: &str) -> Result<(), Error> {
        let Some(view) = self.lock_graph().view(uid) else {
            return Ok(());
        };
        let owner = view.node.identity.clone();
        // a few at a time: an owner may have thousands of dependents (boxed, so the
        // stream's item type names no closure lifetimes)
        use futures::StreamExt;
        let orphanings: Vec<futures::future::BoxFuture<'_, Result<(), String>>> = view
            .dependents
            .iter()
            .map(|dep| {
                let owner_uid = owner.uid.clone();
                Box::pin(async move {
                    let result = self
                        .edit_owner_references(&dep.identity, |refs| {
                            let kept: Vec<OwnerReference> = refs
                                .iter()
                                .filter(|r| r.uid != owner_uid)
                                .cloned()
                                .collect();
                            (kept.len() != refs.len()).then_some(kept)
                        })
                        .await;
                    match result {
                        // a dependent gone needs no orphaning
                        Ok(()) | Err(Error::VirtualDeleteEnqueued) => Ok(()),
                        Err(e) => Err(format!("orphaning {} failed, {e}", dep.identity)),
                    }
                }) as futures::future::BoxFuture<'_, _>
            })
            .collect();
        let results: Vec<Result<(), String>> = futures::stream::iter(orphanings)
            .buffer_unordered(ORPHAN_CONCURRENCY)
            .collect()
            .await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(Error::Orphan {
                owner: owner.to_string(),
                errors: errors.join("; "),
            });
        }
        tracing::info!(owner = %owner, "dependents orphaned; removing the orphan finalizer");
        self.remove_finalizer(&owner, ORPHAN).await
    }
}

/// The API of `resource` in `namespace` when namespaced, cluster-wide otherwise.
fn api_for(client: &kube::Client, resource: &Resource, namespace: &str) -> Api<DynamicObject> {
    let ar = resource.api_resource();
    if resource.namespaced {
        Api::namespaced_with(client.clone(), namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("owner-{uid}"),
            uid: uid.into(),
            block_owner_deletion: true,
        }
    }

    fn dep(deleting_dependents: bool) -> DependentView {
        DependentView {
            identity: Identity::default(),
            blocking: true,
            deleting_dependents,
        }
    }

    fn background() -> Verdict {
        Verdict::Delete {
            policy: Policy::Background,
            unblock_first: false,
        }
    }

    #[test]
    fn an_object_with_a_live_owner_is_kept() {
        let c = Classified {
            solid: vec![r("a")],
            ..Classified::default()
        };
        assert_eq!(decide(&c, &[], &[]), Verdict::Keep);
    }

    #[test]
    fn an_object_with_only_absent_owners_is_deleted_in_the_background() {
        let c = Classified {
            dangling: vec![r("a"), r("b")],
            ..Classified::default()
        };
        assert_eq!(decide(&c, &[], &[]), background());
        // even with dependents of its own: nobody waits for them
        assert_eq!(decide(&c, &[dep(false)], &[]), background());
    }

    #[test]
    fn a_live_owner_keeps_the_object_but_dangling_and_waiting_references_go() {
        let c = Classified {
            solid: vec![r("a")],
            dangling: vec![r("b")],
            waiting: vec![r("c")],
        };
        assert_eq!(
            decide(&c, &[], &[]),
            Verdict::DropReferences(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn an_owner_waiting_in_the_foreground_deletes_a_dependent_with_dependents_in_the_foreground() {
        let c = Classified {
            waiting: vec![r("a")],
            ..Classified::default()
        };
        assert_eq!(
            decide(&c, &[dep(false)], &[]),
            Verdict::Delete {
                policy: Policy::Foreground,
                unblock_first: false
            }
        );
        // a dependent itself deleting its dependents may be a cycle: unblock first
        assert_eq!(
            decide(&c, &[dep(false), dep(true)], &[]),
            Verdict::Delete {
                policy: Policy::Foreground,
                unblock_first: true
            }
        );
        // without dependents of its own it simply goes
        assert_eq!(decide(&c, &[], &[]), background());
    }

    #[test]
    fn the_objects_own_gc_finalizer_sets_the_policy() {
        let c = Classified {
            dangling: vec![r("a")],
            ..Classified::default()
        };
        assert_eq!(
            decide(&c, &[], &[ORPHAN.to_owned()]),
            Verdict::Delete {
                policy: Policy::Orphan,
                unblock_first: false
            }
        );
        assert_eq!(
            decide(&c, &[], &["other".to_owned(), FOREGROUND.to_owned()]),
            Verdict::Delete {
                policy: Policy::Foreground,
                unblock_first: false
            }
        );
    }

    #[test]
    fn blocking_dependents_count_only_blocking_references() {
        let mut g = Graph::default();
        let owner = Identity {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
            name: "owner".into(),
            uid: "o".into(),
        };
        let add = |g: &mut Graph, name: &str, owners: Vec<OwnerRef>| {
            g.process(&Change {
                kind: ChangeKind::Added,
                is_virtual: false,
                identity: Identity {
                    kind: "Secret".into(),
                    name: name.into(),
                    uid: name.into(),
                    ..owner.clone()
                },
                object: ObjectState {
                    owners,
                    ..ObjectState::default()
                },
                old: None,
            })
        };
        let mut blocking = OwnerRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: "o".into(),
            block_owner_deletion: true,
        };
        g.process(&Change {
            kind: ChangeKind::Added,
            is_virtual: false,
            identity: owner.clone(),
            object: ObjectState::default(),
            old: None,
        });
        add(&mut g, "a", vec![blocking.clone()]);
        blocking.block_owner_deletion = false;
        add(&mut g, "b", vec![blocking]);
        let view = g.view("o").unwrap();
        assert_eq!(view.dependents.len(), 2);
        let names: Vec<_> = view
            .blocking_dependents()
            .map(|d| d.identity.name.clone())
            .collect();
        assert_eq!(names, vec!["a".to_string()]);
    }

    #[test]
    fn the_absent_owner_cache_is_bounded() {
        let mut cache = AbsentOwners::default();
        for i in 0..(ABSENT_CACHE_SIZE + 10) {
            cache.add(Identity {
                uid: i.to_string(),
                ..Identity::default()
            });
        }
        assert_eq!(cache.set.len(), ABSENT_CACHE_SIZE);
        assert!(!cache.contains(&Identity {
            uid: "0".into(),
            ..Identity::default()
        }));
        assert!(cache.contains(&Identity {
            uid: (ABSENT_CACHE_SIZE + 9).to_string(),
            ..Identity::default()
        }));
    }
}
