//! Counting finished pods with finalizers (upstream's `tracking_utils.go` and
//! `trackJobStatusAndRemoveFinalizers`): every pod of a Job carries the
//! `batch.kubernetes.io/job-tracking` finalizer, so it cannot vanish before it is
//! counted. A finished pod's uid is first written to
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves from
//! that list into `status.succeeded` / `status.failed`; a crash between any two steps
//! neither loses nor double-counts a pod. Only once nothing is uncounted and no pod
//! is terminating does the interim `SuccessCriteriaMet` / `FailureTarget` condition
//! become `Complete` / `Failed`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

use super::indexed::{self, completion_index, is_indexed, valid_index};
use super::policy::{
    COMPLETE, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, ensure_condition,
    match_pod_failure_policy, new_condition, true_condition,
};
use super::{Controller, Error, SyncCtx};
use crate::controller_utils::{message_of, status_code};

/// The finalizer on every pod a Job controls until the pod is counted.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// At most this many uids wait in `uncountedTerminatedPods` (upstream's
/// `MaxUncountedPods`, keeping the status under ~20 KB).
const MAX_UNCOUNTED_PODS: usize = 500;

/// Whether `pod` carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == JOB_TRACKING_FINALIZER))
}

/// The strategic merge patch removing the tracking finalizer, if the pod has it.
pub fn remove_finalizer_patch(pod: &Pod) -> Option<serde_json::Value> {
    has_tracking_finalizer(pod).then(|| {
        serde_json::json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}
        })
    })
}

/// Whether the pod only is replaced once it failed: `podReplacementPolicy: Failed`,
/// implied by a pod failure policy (upstream's `onlyReplaceFailedPods`).
pub fn only_replace_failed_pods(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|s| {
        s.pod_replacement_policy.as_deref() == Some("Failed") || s.pod_failure_policy.is_some()
    })
}

/// Whether `pod` counts as failed (upstream's `isPodFailed`): phase Failed, or, unless
/// only failed pods are replaced, being deleted before it succeeded.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some("Failed") {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase != Some("Succeeded")
}

/// Whether `pod` is being deleted and has not finished (upstream's `IsPodTerminating`).
pub fn is_terminating(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The uids the controller waits to see without the tracking finalizer, by Job key
/// (upstream's `uidTrackingExpectations`).
#[derive(Default)]
pub struct UidExpectations(Mutex<HashMap<String, HashSet<String>>>);

impl UidExpectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The uids expected for `key`.
    pub fn expected(&self, key: &str) -> HashSet<String> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Expects the finalizers of `uids` removed.
    pub fn expect(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        self.lock().entry(key.to_owned()).or_default().extend(uids);
    }

    /// The finalizer of `uid` was seen removed (or will never be).
    pub fn observed(&self, key: &str, uid: &str) {
        let mut map = self.lock();
        if let Some(set) = map.get_mut(key) {
            set.remove(uid);
            if set.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Forgets `key`.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// The uids in `status.uncountedTerminatedPods`, as sets.
#[derive(Clone, Debug, Default)]
pub struct Uncounted {
    /// Succeeded pods not yet in `status.succeeded`.
    pub succeeded: HashSet<String>,
    /// Failed pods not yet in `status.failed`.
    pub failed: HashSet<String>,
}

impl Uncounted {
    /// The sets of `status`.
    pub fn of(status: Option<&JobStatus>) -> Uncounted {
        let lists = status.and_then(|s| s.uncounted_terminated_pods.as_ref());
        let set = |l: Option<&Vec<String>>| l.into_iter().flatten().cloned().collect();
        Uncounted {
            succeeded: set(lists.and_then(|u| u.succeeded.as_ref())),
            failed: set(lists.and_then(|u| u.failed.as_ref())),
        }
    }
}

/// Moves the uncounted uids whose pods no longer have the finalizer into the counters
/// (upstream's `cleanUncountedPodsWithoutFinalizers`); whether anything changed.
pub fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let mut changed = false;
    let mut counted = |list: &mut Option<Vec<String>>| -> i32 {
        let Some(uids) = list.as_mut() else { return 0 };
        let before = uids.len();
        uids.retain(|uid| with_finalizer.contains(uid));
        let moved = before - uids.len();
        if uids.is_empty() {
            *list = None;
        }
        if moved > 0 {
            changed = true;
        }
        i32::try_from(moved).unwrap_or(i32::MAX)
    };
    let succeeded = counted(&mut uncounted.succeeded);
    let failed = counted(&mut uncounted.failed);
    if succeeded > 0 {
        status.succeeded = nonzero(status.succeeded.unwrap_or(0).saturating_add(succeeded));
    }
    if failed > 0 {
        status.failed = nonzero(status.failed.unwrap_or(0).saturating_add(failed));
    }
    changed
}

/// An `omitempty` counter: 0 is left out, as upstream's JSON.
pub fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Whether the finalizer of `pod` may go now (upstream's `canRemoveFinalizer`): the
/// Job is being deleted or finishing, the pod succeeded, or it failed (unless it must
/// stay until its index's replacement inherits its failure count).
fn can_remove_finalizer(ctx: &SyncCtx, pod: &Pod, failed: bool) -> bool {
    let succeeded = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    if ctx.job.metadata.deletion_timestamp.is_some() || ctx.finished.is_some() || succeeded {
        return true;
    }
    if !failed {
        return false;
    }
    if indexed::has_backoff_limit_per_index(&ctx.job)
        && let Some(index) = completion_index(pod)
        && let Some(kept) = ctx.delayed_deletion.get(&index)
        && kept.metadata.uid == pod.metadata.uid
    {
        return false;
    }
    true
}

impl Controller {
    /// Records finished pods in `uncountedTerminatedPods`, removes their finalizers,
    /// moves them into the counters and, when everything is counted, sets the final
    /// condition (upstream's `trackJobStatusAndRemoveFinalizers`).
    pub(super) async fn track_status_and_remove_finalizers(
        &self,
        ctx: &mut SyncCtx,
        key: &str,
        mut needs_flush: bool,
    ) -> Result<(), Error> {
        let indexed = is_indexed(&ctx.job);
        if indexed {
            ctx.pods.sort_by_key(|p| completion_index(p).unwrap_or(-1));
        }
        let mut with_finalizer: HashSet<String> = ctx
            .pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| p.metadata.uid.clone())
            .filter(|uid| !ctx.expected_rm_finalizers.contains(uid))
            .collect();
        let status = ctx.job.status.get_or_insert_with(JobStatus::default);
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        let policy = ctx
            .job
            .spec
            .as_ref()
            .and_then(|s| s.pod_failure_policy.clone());
        let finishing_as_failure = ctx
            .finished
            .as_ref()
            .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
        let mut to_remove: Vec<Arc<Pod>> = Vec::new();
        let mut new_succeeded_indexes: Vec<i64> = Vec::new();
        let mut new_succeeded: Vec<String> = Vec::new();
        let mut new_failed: Vec<String> = Vec::new();
        let mut reached_max = false;
        for pod in &ctx.pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if !has_tracking_finalizer(pod) || ctx.expected_rm_finalizers.contains(&uid) {
                // counted in an earlier sync
                continue;
            }
            let failed = is_pod_failed(pod, &ctx.job);
            if !can_remove_finalizer(ctx, pod, failed) {
                continue;
            }
            to_remove.push(pod.clone());
            let succeeded =
                pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
            if succeeded && !ctx.uncounted.failed.contains(&uid) {
                if indexed {
                    // the index is enough to never count a success twice
                    if let Some(ix) = valid_index(&ctx.job, pod)
                        && !ctx.prev_succeeded_indexes.has(ix)
                    {
                        new_succeeded_indexes.push(ix);
                        needs_flush = true;
                    }
                } else if !ctx.uncounted.succeeded.contains(&uid) {
                    new_succeeded.push(uid);
                    needs_flush = true;
                }
            } else if failed || finishing_as_failure {
                // once the Job is failing, every unfinished pod counts as failed
                let valid = !indexed || valid_index(&ctx.job, pod).is_some();
                if !ctx.uncounted.failed.contains(&uid) && valid {
                    let counts = policy
                        .as_ref()
                        .is_none_or(|p| match_pod_failure_policy(p, pod).count_failed);
                    if counts {
                        new_failed.push(uid);
                        needs_flush = true;
                    }
                }
            }
            let status = ctx.job.status.as_ref();
            let waiting = Uncounted::of(status);
            if new_succeeded_indexes.len()
                + waiting.succeeded.len()
                + new_succeeded.len()
                + waiting.failed.len()
                + new_failed.len()
                >= MAX_UNCOUNTED_PODS
            {
                // the rest waits for the next sync, which the status update brings
                reached_max = true;
                break;
            }
        }
        let status = ctx.job.status.get_or_insert_with(JobStatus::default);
        let uncounted = status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        if !new_succeeded.is_empty() {
            uncounted
                .succeeded
                .get_or_insert_with(Vec::new)
                .extend(new_succeeded);
        }
        if !new_failed.is_empty() {
            uncounted
                .failed
                .get_or_insert_with(Vec::new)
                .extend(new_failed);
        }
        if indexed {
            ctx.succeeded_indexes = ctx.succeeded_indexes.with_indexes(new_succeeded_indexes);
            let completed = ctx.succeeded_indexes.to_string();
            if status.completed_indexes.as_deref().unwrap_or_default() != completed {
                needs_flush = true;
            }
            status.succeeded =
                nonzero(i32::try_from(ctx.succeeded_indexes.total()).unwrap_or(i32::MAX));
            status.completed_indexes = (!completed.is_empty()).then_some(completed);
            let failed = ctx.failed_indexes.as_ref().map(ToString::to_string);
            if status.failed_indexes != failed {
                status.failed_indexes = failed;
                needs_flush = true;
            }
        }
        let now = jiff::Timestamp::now();
        if let Some(target) = ctx.finished.clone() {
            let reason = target.reason.clone().unwrap_or_default();
            let message = target.message.clone().unwrap_or_default();
            if target.type_ == FAILURE_TARGET {
                // the interim condition is written before any finalizer goes, so the
                // reason survives a restart
                status.conditions.get_or_insert_with(Vec::new).push(target);
                needs_flush = true;
                ctx.finished = Some(new_condition(FAILED, "True", &reason, &message, now));
            } else if target.type_ == SUCCESS_CRITERIA_MET {
                if true_condition(&ctx.job, SUCCESS_CRITERIA_MET).is_none() {
                    let status = ctx.job.status.get_or_insert_with(JobStatus::default);
                    status.conditions.get_or_insert_with(Vec::new).push(target);
                    needs_flush = true;
                }
                ctx.finished = Some(new_condition(COMPLETE, "True", &reason, &message, now));
            }
        }
        needs_flush = self
            .flush_and_remove_finalizers(ctx, key, to_remove, &mut with_finalizer, needs_flush)
            .await?;
        let finished = !reached_max && enact_finished(ctx);
        if finished || needs_flush {
            ctx.job = self.update_status(&ctx.job).await?;
            if finished && let Some(condition) = ctx.finished.clone() {
                self.record_finished(&ctx.job, &condition);
            }
        }
        Ok(())
    }

    /// Writes the status (with the new uncounted uids and interim conditions), then
    /// removes the finalizers, then counts the pods whose finalizer went (upstream's
    /// `flushUncountedAndRemoveFinalizers`). Returns whether the status still needs
    /// writing.
    async fn flush_and_remove_finalizers(
        &self,
        ctx: &mut SyncCtx,
        key: &str,
        to_remove: Vec<Arc<Pod>>,
        with_finalizer: &mut HashSet<String>,
        mut needs_flush: bool,
    ) -> Result<bool, Error> {
        if needs_flush {
            ctx.job = self.update_status(&ctx.job).await?;
            self.backoff.update(key, ctx.new_backoff.clone());
            needs_flush = false;
        }
        let mut remove_error = None;
        if !to_remove.is_empty() {
            let (removed, error) = self.remove_tracking_finalizers(key, &to_remove).await;
            for (pod, ok) in to_remove.iter().zip(removed) {
                if ok && let Some(uid) = &pod.metadata.uid {
                    with_finalizer.remove(uid);
                }
            }
            remove_error = error;
        }
        let status = ctx.job.status.get_or_insert_with(JobStatus::default);
        if clean_uncounted(status, with_finalizer) {
            needs_flush = true;
        }
        if let Some(e) = remove_error {
            if needs_flush {
                // keep the partial progress
                self.update_status(&ctx.job).await?;
            }
            return Err(e);
        }
        Ok(needs_flush)
    }

    /// Removes the tracking finalizer from `pods` concurrently; for each, whether it
    /// is gone (a pod already deleted counts), and the first error.
    pub(super) async fn remove_tracking_finalizers(
        &self,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> (Vec<bool>, Option<Error>) {
        self.finalizers
            .expect(key, pods.iter().filter_map(|p| p.metadata.uid.clone()));
        let results = futures::future::join_all(pods.iter().map(|pod| async move {
            let Some(patch) = remove_finalizer_patch(pod) else {
                return Ok(());
            };
            self.patch_pod(pod, patch).await
        }))
        .await;
        let mut removed = Vec::with_capacity(pods.len());
        let mut first_error = None;
        for (pod, result) in pods.iter().zip(results) {
            match result {
                Ok(()) => removed.push(true),
                Err(e) => {
                    // no update will show the finalizer gone
                    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                    self.finalizers.observed(key, uid);
                    if status_code(&e) == Some(404) {
                        removed.push(true);
                    } else {
                        removed.push(false);
                        first_error.get_or_insert(Error::Pods {
                            job: key.to_owned(),
                            message: format!("removing tracking finalizer: {}", message_of(&e)),
                        });
                    }
                }
            }
        }
        (removed, first_error)
    }

    /// Patches a pod with a strategic merge patch.
    pub(super) async fn patch_pod(
        &self,
        pod: &Pod,
        patch: serde_json::Value,
    ) -> Result<(), kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map(|_| ())
    }
}

/// Sets the final condition once no pod is uncounted or terminating (upstream's
/// `enactJobFinished`); whether the Job is now finished.
fn enact_finished(ctx: &mut SyncCtx) -> bool {
    let Some(condition) = ctx.finished.clone() else {
        return false;
    };
    let waiting = Uncounted::of(ctx.job.status.as_ref());
    if !waiting.succeeded.is_empty() || !waiting.failed.is_empty() {
        return false;
    }
    if ctx.terminating > 0 {
        return false;
    }
    let now = jiff::Timestamp::now();
    let status = ctx.job.status.get_or_insert_with(JobStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    ensure_condition(
        conditions,
        &condition.type_,
        &condition.status,
        condition.reason.as_deref().unwrap_or_default(),
        condition.message.as_deref().unwrap_or_default(),
        now,
    );
    if condition.type_ == COMPLETE {
        status.completion_time = condition.last_transition_time.clone();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    #[test]
    fn uncounted_pods_without_finalizer_move_into_the_counters() {
        let mut status = JobStatus {
            succeeded: Some(2),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let with: HashSet<String> = ["b".to_owned()].into();
        assert!(clean_uncounted(&mut status, &with));
        assert_eq!(status.succeeded, Some(3));
        assert_eq!(status.failed, Some(1));
        let u = status.uncounted_terminated_pods.as_ref().unwrap();
        assert_eq!(u.succeeded.as_deref(), Some(&["b".to_owned()][..]));
        assert_eq!(u.failed, None);
        assert!(!clean_uncounted(&mut status, &with));
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                deletion_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            ..Default::default()
        };
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let mut job = Job::default();
        job.spec = Some(Default::default());
        assert!(is_pod_failed(&pod, &job));
        assert!(is_terminating(&pod));
        job.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
        assert!(!is_pod_failed(&pod, &job));
    }

    #[test]
    fn finalizer_expectations_clear_per_uid() {
        let e = UidExpectations::default();
        e.expect("ns/j", ["a".to_owned(), "b".to_owned()]);
        e.observed("ns/j", "a");
        assert_eq!(e.expected("ns/j"), ["b".to_owned()].into());
        e.delete("ns/j");
        assert!(e.expected("ns/j").is_empty());
    }

    #[test]
    fn the_removal_patch_deletes_only_our_finalizer() {
        let mut pod = Pod::default();
        assert!(remove_finalizer_patch(&pod).is_none());
        pod.metadata.finalizers = Some(vec!["x".into(), JOB_TRACKING_FINALIZER.into()]);
        assert_eq!(
            remove_finalizer_patch(&pod).unwrap(),
            serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}})
        );
    }
}
