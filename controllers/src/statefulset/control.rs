//! The ordered update of one StatefulSet (upstream's `stateful_set_control.go` and
//! `stateful_pod_control.go`): find or record the current and update revisions, lay
//! the pods out by ordinal (those in range are replicas, the rest condemned), create,
//! repair or replace the replicas, delete the condemned highest first, then roll pods
//! at or above the partition to the update revision, highest first, one at a time.
//! With `OrderedReady` every step stops at the first pod that is not yet Running,
//! Ready and available; with `Parallel` the steps go in slow-start batches.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apimachinery::labels::Selector;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};

use super::identity::{
    self, Strategy, identity_matches, is_created, is_finished, is_pending, is_running_and_ready,
    is_terminating, is_unavailable, ordinal, revision_of, storage_matches,
};
use super::{Controller, Error, history, is_already_exists, pvc, status};
use crate::controller_utils::{SLOW_START_INITIAL_BATCH_SIZE, slow_start_batch};
use crate::controller_utils::{message_of, status_code};

/// How many missing ordinals past the highest existing pod one pass lays out.
const MAX_NEW_ORDINALS_PER_PASS: usize = 500;

/// How many names a revision create tries before giving up on collisions.
const MAX_COLLISIONS: usize = 100;

/// Runs `step` for each index: in order, stopping at the first that asks to stop or
/// fails (monotonic), or in slow-start batches (upstream's `runForAll`). Returns
/// whether to stop and the error, if any.
async fn run_for_all<F, Fut>(count: usize, monotonic: bool, step: F) -> (bool, Option<Error>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<bool, Error>>,
{
    if monotonic {
        for i in 0..count {
            match step(i).await {
                Ok(false) => {}
                Ok(true) => return (true, None),
                Err(e) => return (true, Some(e)),
            }
        }
        return (false, None);
    }
    let next = AtomicUsize::new(0);
    let (_, error) = slow_start_batch(count, SLOW_START_INITIAL_BATCH_SIZE, || {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let fut = step(i);
        async move { fut.await.map(|_| ()) }
    })
    .await;
    match error {
        Some(e) => (true, Some(e)),
        None => (false, None),
    }
}

/// The verb of a pod or claim event.
#[derive(Clone, Copy)]
enum Verb {
    Create,
    Update,
    Delete,
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }

    fn reasons(self) -> (&'static str, &'static str) {
        match self {
            Verb::Create => ("SuccessfulCreate", "FailedCreate"),
            Verb::Update => ("SuccessfulUpdate", "FailedUpdate"),
            Verb::Delete => ("SuccessfulDelete", "FailedDelete"),
        }
    }
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The recorded revisions and pod layout of one sync.
struct Plan<'a> {
    set: &'a StatefulSet,
    update_set: StatefulSet,
    current: ControllerRevision,
    update: ControllerRevision,
    min_ready: i32,
}

impl Plan<'_> {
    fn current_name(&self) -> &str {
        self.current.metadata.name.as_deref().unwrap_or_default()
    }

    fn update_name(&self) -> &str {
        self.update.metadata.name.as_deref().unwrap_or_default()
    }

    fn recount<'p>(&self, status: &mut StatefulSetStatus, pods: impl IntoIterator<Item = &'p Pod>) {
        let counts = status::count(
            pods,
            self.min_ready,
            self.current_name(),
            self.update_name(),
            jiff::Timestamp::now(),
        );
        status::apply(status, counts);
    }
}

impl Controller {
    /// Brings the set's pods one step closer to its spec and writes its status
    /// (upstream's `UpdateStatefulSet`), then trims its revision history.
    pub(super) async fn update_stateful_set(
        &self,
        set: &StatefulSet,
        selector: &Selector,
        pods: &[Arc<Pod>],
    ) -> Result<StatefulSetStatus, Error> {
        let mut revisions = self.list_revisions(set, selector);
        history::sort(&mut revisions);
        let (current, update, result) = match self.revisions_for(set, &revisions).await {
            Ok((current, update, collisions)) => {
                let result = self
                    .perform_update(set, &current, &update, collisions, pods)
                    .await;
                (Some(current), Some(update), result)
            }
            Err(e) => (None, None, Err(e)),
        };
        let truncated = self
            .truncate_history(set, pods, &revisions, current.as_ref(), update.as_ref())
            .await;
        match (result, truncated) {
            (Ok(status), Ok(())) => Ok(status),
            (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(Error::Aggregate(vec![a, b])),
        }
    }

    /// The current and update revisions and the collision count (upstream's
    /// `getStatefulSetRevisions`): the update revision is the latest if it holds the
    /// set's template, an older equal one renumbered to come last (a rollback), or a
    /// new one; the current revision is the one the status names, else the update
    /// revision.
    async fn revisions_for(
        &self,
        set: &StatefulSet,
        sorted: &[Arc<ControllerRevision>],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
        let mut collisions = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let candidate = history::new_revision(set, history::next_revision(sorted), collisions);
        let last_equal = sorted.iter().rev().find(|r| history::equal(r, &candidate));
        let update = match (last_equal, sorted.last()) {
            (Some(equal), Some(last)) if history::equal(last, equal) => (**last).clone(),
            (Some(equal), _) => self.renumber_revision(equal, candidate.revision).await?,
            (None, _) => {
                self.create_revision(set, candidate, &mut collisions)
                    .await?
            }
        };
        let wanted = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            .unwrap_or_default();
        let current = sorted
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(wanted))
            .map(|r| (**r).clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collisions))
    }

    /// Creates `revision`, renaming it with a higher collision count while another
    /// revision holds its name (upstream's `CreateControllerRevision`).
    async fn create_revision(
        &self,
        set: &StatefulSet,
        mut revision: ControllerRevision,
        collisions: &mut i32,
    ) -> Result<ControllerRevision, Error> {
        let namespace = set.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &namespace);
        let data = revision
            .data
            .as_ref()
            .map(|d| d.0.clone())
            .unwrap_or_default();
        for _ in 0..MAX_COLLISIONS {
            let hash = history::hash(&data, Some(*collisions));
            let name = history::revision_name(&set.name_any(), &hash);
            revision.metadata.name = Some(name.clone());
            match api.create(&PostParams::default(), &revision).await {
                Ok(created) => return Ok(created),
                Err(e) if is_already_exists(&e) => {
                    let existing = api.get(&name).await.map_err(|e| {
                        Error::Request(format!("get ControllerRevision {name}: {}", message_of(&e)))
                    })?;
                    if history::equal(&existing, &revision) {
                        return Ok(existing);
                    }
                    *collisions = collisions
                        .checked_add(1)
                        .ok_or_else(|| Error::Revision("collision count overflowed".to_owned()))?;
                }
                Err(e) => {
                    return Err(Error::Request(format!(
                        "create ControllerRevision {name}: {}",
                        message_of(&e)
                    )));
                }
            }
        }
        Err(Error::Revision(format!(
            "no free ControllerRevision name for StatefulSet {} after {MAX_COLLISIONS} collisions",
            set.name_any()
        )))
    }

    /// Gives `revision` the number `number` (upstream's `UpdateControllerRevision`).
    async fn renumber_revision(
        &self,
        revision: &ControllerRevision,
        number: i64,
    ) -> Result<ControllerRevision, Error> {
        if revision.revision == number {
            return Ok(revision.clone());
        }
        let api: Api<ControllerRevision> = Api::namespaced(
            self.client.clone(),
            &revision.namespace().unwrap_or_default(),
        );
        api.patch(
            &revision.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"revision": number})),
        )
        .await
        .map_err(|e| {
            Error::Request(format!(
                "update ControllerRevision {}: {}",
                revision.name_any(),
                message_of(&e)
            ))
        })
    }

    /// Deletes the oldest revisions no longer live beyond `revisionHistoryLimit`.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        sorted: &[Arc<ControllerRevision>],
        current: Option<&ControllerRevision>,
        update: Option<&ControllerRevision>,
    ) -> Result<(), Error> {
        let mut live: HashSet<&str> = pods.iter().map(|p| revision_of(p)).collect();
        for revision in [current, update].into_iter().flatten() {
            live.insert(revision.metadata.name.as_deref().unwrap_or_default());
        }
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        for revision in history::to_truncate(sorted, &live, limit) {
            let api: Api<ControllerRevision> = Api::namespaced(
                self.client.clone(),
                &revision.namespace().unwrap_or_default(),
            );
            match api
                .delete(&revision.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => {
                    return Err(Error::Request(format!(
                        "delete ControllerRevision {}: {}",
                        revision.name_any(),
                        message_of(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Acts on the pods, then writes the status even when acting failed (upstream's
    /// `performUpdate`).
    async fn perform_update(
        &self,
        set: &StatefulSet,
        current: &ControllerRevision,
        update: &ControllerRevision,
        collisions: i32,
        pods: &[Arc<Pod>],
    ) -> Result<StatefulSetStatus, Error> {
        let (mut new_status, acted) = self
            .update_pods(set, current, update, collisions, pods)
            .await?;
        status::complete_rolling_update(set, &mut new_status);
        let written = if status::inconsistent(set, &new_status) {
            self.write_status(set, &new_status).await
        } else {
            Ok(())
        };
        match (acted, written) {
            (None, Ok(())) => Ok(new_status),
            (Some(e), Ok(())) => Err(e),
            (None, Err(e)) => Err(e),
            (Some(e), Err(status_error)) => {
                tracing::warn!(set = %set.name_any(), error = %status_error, "could not update status");
                Err(e)
            }
        }
    }

    /// Writes `new_status`, retrying on a fresh copy after a conflict (upstream's
    /// `UpdateStatefulSetStatus`).
    async fn write_status(
        &self,
        set: &StatefulSet,
        new_status: &StatefulSetStatus,
    ) -> Result<(), Error> {
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let name = set.name_any();
        let mut copy = set.clone();
        for attempt in 0..3 {
            copy.status = Some(new_status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &copy)
                .await
            {
                Ok(_) => return Ok(()),
                // gone: nothing to report
                Err(e) if status_code(&e) == Some(404) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) && attempt < 2 => {
                    copy = api.get(&name).await.map_err(|e| {
                        Error::Request(format!("get StatefulSet {name}: {}", message_of(&e)))
                    })?;
                }
                Err(e) => {
                    return Err(Error::Request(format!(
                        "update status of StatefulSet {name}: {}",
                        message_of(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The pod work of one sync (upstream's `updateStatefulSet`); returns the status
    /// to write and the error that stopped it, if any.
    async fn update_pods(
        &self,
        set: &StatefulSet,
        current: &ControllerRevision,
        update: &ControllerRevision,
        collisions: i32,
        pods: &[Arc<Pod>],
    ) -> Result<(StatefulSetStatus, Option<Error>), Error> {
        let current_set = history::apply_revision(set, current).map_err(Error::Revision)?;
        let update_set = history::apply_revision(set, update).map_err(Error::Revision)?;
        let plan = Plan {
            set,
            update_set,
            current: current.clone(),
            update: update.clone(),
            min_ready: identity::min_ready_seconds(set),
        };
        let mut new_status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            current_revision: Some(plan.current_name().to_owned()).filter(|n| !n.is_empty()),
            update_revision: Some(plan.update_name().to_owned()).filter(|n| !n.is_empty()),
            collision_count: Some(collisions),
            ..StatefulSetStatus::default()
        };
        plan.recount(&mut new_status, pods.iter().map(|p| p.as_ref()));

        // lay the pods out: replicas by ordinal, the rest condemned
        let start = identity::start_ordinal(set);
        // Only the ordinals up to a burst past the highest existing one are laid out
        // this pass (the next pass, on their pods' events, goes on): a set of 2^31
        // replicas must not allocate a slot, let alone a pod, per ordinal up front.
        let highest = pods
            .iter()
            .filter_map(|p| ordinal(p))
            .filter(|o| identity::in_range(set, *o))
            .map(|o| usize::try_from(i64::from(o) - i64::from(start)).unwrap_or(0) + 1)
            .max()
            .unwrap_or(0);
        let count = usize::try_from(identity::replicas(set))
            .unwrap_or(0)
            .min(highest.saturating_add(MAX_NEW_ORDINALS_PER_PASS));
        let mut slots: Vec<Option<Pod>> = vec![None; count];
        let mut condemned: Vec<Pod> = Vec::new();
        for pod in pods {
            let Some(o) = ordinal(pod) else { continue };
            if identity::in_range(set, o) {
                let index = usize::try_from(i64::from(o) - i64::from(start)).unwrap_or(0);
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some((**pod).clone());
                }
            } else {
                condemned.push((**pod).clone());
            }
        }
        let replicas: Vec<Pod> = slots
            .into_iter()
            .enumerate()
            .map(|(index, slot)| {
                slot.unwrap_or_else(|| {
                    let o = i32::try_from(i64::from(start) + index as i64).unwrap_or(i32::MAX);
                    identity::versioned_pod(
                        &current_set,
                        &plan.update_set,
                        plan.current_name(),
                        plan.update_name(),
                        o,
                    )
                })
            })
            .collect();
        condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));

        let now = jiff::Timestamp::now();
        let first_unavailable: Option<String> = replicas
            .iter()
            .find(|p| is_unavailable(p, plan.min_ready, now))
            .or_else(|| {
                condemned
                    .iter()
                    .rev()
                    .find(|p| is_unavailable(p, plan.min_ready, now))
            })
            .map(|p| name_of(p).to_owned());

        if set.metadata.deletion_timestamp.is_some() {
            return Ok((new_status, None));
        }
        let monotonic = !identity::is_parallel(set);
        let all = || replicas.iter().chain(condemned.iter());

        let (plan_ref, replicas_ref, condemned_ref) = (&plan, &replicas, &condemned);
        let (stop, error) = run_for_all(replicas.len(), monotonic, move |i| {
            self.process_replica(plan_ref, monotonic, &replicas_ref[i])
        })
        .await;
        if stop || error.is_some() {
            plan.recount(&mut new_status, all());
            return Ok((new_status, error));
        }

        let (stop, error) = run_for_all(condemned.len(), monotonic, move |i| {
            self.fix_condemned_claims(plan_ref, &condemned_ref[i])
        })
        .await;
        if stop || error.is_some() {
            plan.recount(&mut new_status, all());
            return Ok((new_status, error));
        }

        let first = first_unavailable.as_deref();
        let (stop, error) = run_for_all(condemned.len(), monotonic, move |i| {
            self.process_condemned(plan_ref, first, monotonic, &condemned_ref[i])
        })
        .await;
        if stop || error.is_some() {
            plan.recount(&mut new_status, all());
            return Ok((new_status, error));
        }
        plan.recount(&mut new_status, all());

        let Strategy::RollingUpdate { partition } = identity::strategy(set) else {
            // OnDelete: pods are replaced when the user deletes them
            return Ok((new_status, None));
        };
        let partition = usize::try_from(partition).unwrap_or(0);
        for target in (partition..replicas.len()).rev() {
            let pod = &replicas[target];
            if revision_of(pod) != plan.update_name() && !is_terminating(pod) {
                tracing::info!(set = %set.name_any(), pod = %name_of(pod), "terminating pod for update");
                let result = self.delete_pod(set, pod).await;
                new_status.current_replicas = new_status
                    .current_replicas
                    .map(|n| n.saturating_sub(1))
                    .filter(|n| *n != 0);
                return Ok((new_status, result.err()));
            }
            if is_unavailable(pod, plan.min_ready, now) {
                tracing::debug!(set = %set.name_any(), pod = %name_of(pod), "waiting for pod to update");
                return Ok((new_status, None));
            }
        }
        Ok((new_status, None))
    }

    /// One replica (upstream's `processReplica`): replace it if it finished, create
    /// it if missing, then (in order) wait for it, and repair its identity, storage
    /// and claims' owners. True stops a monotonic pass.
    async fn process_replica(
        &self,
        plan: &Plan<'_>,
        monotonic: bool,
        pod: &Pod,
    ) -> Result<bool, Error> {
        let set = plan.set;
        if is_finished(pod) {
            // evicted or otherwise stopped pods are restarted whatever their exit code
            if !is_terminating(pod) {
                self.delete_pod(set, pod).await?;
            }
            return Ok(true);
        }
        if !is_created(pod) {
            if self.claims_are_stale(set, pod) {
                return Ok(true);
            }
            self.create_pod(set, pod).await?;
            return Ok(true);
        }
        if is_pending(pod) {
            self.create_missing_claims(set, pod).await?;
        }
        if monotonic && is_terminating(pod) {
            tracing::debug!(set = %set.name_any(), pod = %name_of(pod), "waiting for pod to terminate");
            return Ok(true);
        }
        if monotonic && !is_running_and_ready(pod) {
            tracing::debug!(set = %set.name_any(), pod = %name_of(pod), "waiting for pod to be Running and Ready");
            return Ok(true);
        }
        if monotonic && is_unavailable(pod, plan.min_ready, jiff::Timestamp::now()) {
            tracing::debug!(set = %set.name_any(), pod = %name_of(pod), "waiting for pod to be available");
            return Ok(true);
        }
        let retention_matches = self.claims_match_retention(&plan.update_set, pod);
        if identity_matches(set, pod) && storage_matches(set, pod) && retention_matches {
            return Ok(false);
        }
        self.update_pod(&plan.update_set, pod.clone()).await?;
        Ok(false)
    }

    /// Sets the claims' owners of a condemned pod before it goes, so that
    /// `whenScaled: Delete` removes them with it.
    async fn fix_condemned_claims(&self, plan: &Plan<'_>, pod: &Pod) -> Result<bool, Error> {
        if !self.claims_match_retention(&plan.update_set, pod) {
            self.update_claims_for_retention(&plan.update_set, pod)
                .await?;
        }
        Ok(false)
    }

    /// One condemned pod (upstream's `processCondemned`): in order, wait for it to
    /// terminate, and delete it only once every other pod is healthy.
    async fn process_condemned(
        &self,
        plan: &Plan<'_>,
        first_unavailable: Option<&str>,
        monotonic: bool,
        pod: &Pod,
    ) -> Result<bool, Error> {
        let set = plan.set;
        if is_terminating(pod) {
            return Ok(monotonic);
        }
        let is_first = first_unavailable == Some(name_of(pod));
        if monotonic && !is_first && !is_running_and_ready(pod) {
            return Ok(true);
        }
        if monotonic && !is_first && is_unavailable(pod, plan.min_ready, jiff::Timestamp::now()) {
            return Ok(true);
        }
        tracing::info!(set = %set.name_any(), pod = %name_of(pod), "terminating pod for scale down");
        self.delete_pod(set, pod).await?;
        Ok(true)
    }

    // ---- pod and claim operations (upstream's StatefulPodControl) ----

    fn record_pod_event(&self, verb: Verb, set: &StatefulSet, pod: &Pod, error: Option<&Error>) {
        let (ok, failed) = verb.reasons();
        let (pod_name, set_name) = (name_of(pod), set.name_any());
        match error {
            None => self.recorder.event(
                set,
                "Normal",
                ok,
                format!(
                    "{} Pod {pod_name} in StatefulSet {set_name} successful",
                    verb.word()
                ),
                self.component,
            ),
            Some(e) => self.recorder.event(
                set,
                "Warning",
                failed,
                format!(
                    "{} Pod {pod_name} in StatefulSet {set_name} failed error: {e}",
                    verb.word()
                ),
                self.component,
            ),
        }
    }

    fn record_claim_event(&self, set: &StatefulSet, pod: &Pod, claim: &str, error: Option<&str>) {
        let (pod_name, set_name) = (name_of(pod), set.name_any());
        match error {
            None => self.recorder.event(
                set,
                "Normal",
                "SuccessfulCreate",
                format!("create Claim {claim} Pod {pod_name} in StatefulSet {set_name} success"),
                self.component,
            ),
            Some(e) => self.recorder.event(
                set,
                "Warning",
                "FailedCreate",
                format!(
                    "create Claim {claim} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                ),
                self.component,
            ),
        }
    }

    /// Creates the pod's claims, then the pod, then sets the claims' owners
    /// (upstream's `CreateStatefulPod`).
    async fn create_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        if let Err(e) = self.create_claims(set, pod).await {
            self.record_pod_event(Verb::Create, set, pod, Some(&e));
            return Err(e);
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => {
                if let Err(e) = self.update_claims_for_retention(set, &created).await {
                    self.record_pod_event(Verb::Update, set, pod, Some(&e));
                    return Err(e);
                }
                self.record_pod_event(Verb::Create, set, pod, None);
                Ok(())
            }
            // the cache has not shown it yet: no event, try again
            Err(e) if is_already_exists(&e) => Err(Error::Request(message_of(&e))),
            Err(e) => {
                let e = Error::Request(message_of(&e));
                self.record_pod_event(Verb::Create, set, pod, Some(&e));
                Err(e)
            }
        }
    }

    /// Deletes the pod (its uid as precondition, so a successor of the same name is
    /// never hit), with its event; a pod already gone is no error.
    async fn delete_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let params = DeleteParams {
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name_of(pod), &params).await {
            Ok(_) => {
                self.record_pod_event(Verb::Delete, set, pod, None);
                Ok(())
            }
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => {
                let e = Error::Request(message_of(&e));
                self.record_pod_event(Verb::Delete, set, pod, Some(&e));
                Err(e)
            }
        }
    }

    /// Repairs the pod's identity, storage and claims' owners and writes it
    /// (upstream's `UpdateStatefulPod`).
    async fn update_pod(&self, set: &StatefulSet, mut pod: Pod) -> Result<(), Error> {
        let mut consistent = true;
        if !identity_matches(set, &pod) {
            identity::update_identity(set, &mut pod);
            consistent = false;
        }
        if !storage_matches(set, &pod) {
            identity::update_storage(set, &mut pod);
            consistent = false;
            if let Err(e) = self.create_claims(set, &pod).await {
                self.record_pod_event(Verb::Update, set, &pod, Some(&e));
                return Err(e);
            }
        }
        if !self.claims_match_retention(set, &pod) {
            if let Err(e) = self.update_claims_for_retention(set, &pod).await {
                self.record_pod_event(Verb::Update, set, &pod, Some(&e));
                return Err(e);
            }
            consistent = false;
        }
        if consistent {
            return Ok(());
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let result = api
            .replace(name_of(&pod), &PostParams::default(), &pod)
            .await
            .map(|_| ())
            .map_err(|e| Error::Request(message_of(&e)));
        self.record_pod_event(Verb::Update, set, &pod, result.as_ref().err());
        result
    }

    /// The cached claim named `name` in the set's namespace.
    fn cached_claim(&self, set: &StatefulSet, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&set.namespace().unwrap_or_default(), name)
    }

    /// Creates the pod's missing claims (upstream's `createPersistentVolumeClaims`);
    /// a claim being deleted is an error, as the pod would lose its data.
    async fn create_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let Some(o) = ordinal(pod) else {
            return Ok(());
        };
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let mut errors = Vec::new();
        for (_, claim) in identity::claims_for(set, o) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let existing = match self.cached_claim(set, &name) {
                Some(existing) => Some((*existing).clone()),
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {
                        self.record_claim_event(set, pod, &name, None);
                        None
                    }
                    // made before the cache saw it: look at the live one
                    Err(e) if is_already_exists(&e) => match api.get(&name).await {
                        Ok(live) => Some(live),
                        Err(e) => {
                            errors.push(Error::Request(format!(
                                "failed to retrieve PVC {name}: {}",
                                message_of(&e)
                            )));
                            None
                        }
                    },
                    Err(e) => {
                        let message = message_of(&e);
                        self.record_claim_event(set, pod, &name, Some(&message));
                        errors.push(Error::Request(format!(
                            "failed to create PVC {name}: {message}"
                        )));
                        None
                    }
                },
            };
            if existing.is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
                errors.push(Error::Request(format!("pvc {name} is being deleted")));
            }
        }
        match Error::aggregate(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Creates the claims of a pending pod that lacks some, then sets their owners.
    async fn create_missing_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        self.create_claims(set, pod).await?;
        if let Err(e) = self.update_claims_for_retention(set, pod).await {
            self.record_pod_event(Verb::Update, set, pod, Some(&e));
            return Err(e);
        }
        Ok(())
    }

    /// Whether each existing claim of the pod has the owners the policy wants
    /// (upstream's `ClaimsMatchRetentionPolicy`); missing claims are picked up later.
    fn claims_match_retention(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let Some(o) = ordinal(pod) else {
            return true;
        };
        identity::claims_for(set, o).iter().all(|(_, claim)| {
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            self.cached_claim(set, name)
                .is_none_or(|c| pvc::claim_owner_up_to_date(&c, set, pod))
        })
    }

    /// Rewrites the owners of the pod's claims as the policy wants (upstream's
    /// `UpdatePodClaimForRetentionPolicy`).
    async fn update_claims_for_retention(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let Some(o) = ordinal(pod) else {
            return Ok(());
        };
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        for (_, template) in identity::claims_for(set, o) {
            let name = template.metadata.name.clone().unwrap_or_default();
            let Some(cached) = self.cached_claim(set, &name) else {
                continue;
            };
            if pvc::has_unexpected_controller(&cached, set, pod) {
                self.recorder.event(
                    set,
                    "Warning",
                    "ConflictingController",
                    format!(
                        "PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim"
                    ),
                    self.component,
                );
            }
            if pvc::claim_owner_up_to_date(&cached, set, pod) {
                continue;
            }
            let mut claim = (*cached).clone();
            pvc::update_claim_owner_refs(&mut claim, set, pod);
            api.replace(&name, &PostParams::default(), &claim)
                .await
                .map_err(|e| {
                    Error::Request(format!(
                        "could not update claim {name} for delete policy ownerRefs: {}",
                        message_of(&e)
                    ))
                })?;
        }
        Ok(())
    }

    /// Whether a claim of a pod about to be created still belongs to an earlier pod
    /// of its name (upstream's `PodClaimIsStale`).
    fn claims_are_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let Some(o) = ordinal(pod) else {
            return false;
        };
        identity::claims_for(set, o).iter().any(|(_, claim)| {
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            self.cached_claim(set, name)
                .is_some_and(|c| pvc::claim_is_stale(&c, set, pod))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn monotonic_passes_stop_at_the_first_pod_asking_to() {
        let seen = Mutex::new(Vec::new());
        let (stop, error) = run_for_all(5, true, |i| {
            seen.lock().unwrap().push(i);
            async move { Ok(i == 2) }
        })
        .await;
        assert!(stop && error.is_none());
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);

        let seen = Mutex::new(Vec::new());
        let (stop, error) = run_for_all(3, true, |i| {
            seen.lock().unwrap().push(i);
            async move {
                if i == 1 {
                    Err(Error::Request("boom".into()))
                } else {
                    Ok(false)
                }
            }
        })
        .await;
        assert!(stop);
        assert_eq!(error.map(|e| e.to_string()).as_deref(), Some("boom"));
        assert_eq!(*seen.lock().unwrap(), [0, 1]);
    }

    #[tokio::test]
    async fn parallel_passes_visit_every_pod_and_ignore_stop_requests() {
        let seen = Mutex::new(Vec::new());
        let (stop, error) = run_for_all(6, false, |i| {
            seen.lock().unwrap().push(i);
            async move { Ok(true) }
        })
        .await;
        assert!(!stop && error.is_none());
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    }
}
