//! The Job controller (upstream's `pkg/controller/job`): runs a Job's pods to
//! completion. It keeps up to `parallelism` pods active until `completions` pods
//! succeeded (or, without `completions`, one did), replacing failed pods after an
//! exponential delay (10 s doubling, capped at 10 min) until more than `backoffLimit`
//! failed; Indexed Jobs give each pod a completion index. A Job also fails past
//! `activeDeadlineSeconds` or by its pod failure policy, and succeeds early by its
//! success policy; a suspended Job has no pods.
//!
//! Pods are counted with the `batch.kubernetes.io/job-tracking` finalizer
//! ([`tracking`]); a finishing Job first gets the interim `SuccessCriteriaMet` or
//! `FailureTarget` condition, its remaining pods are deleted, and only once they are
//! all gone and counted does it get `Complete` or `Failed`, as upstream v1.33 with
//! JobManagedBy and JobPodReplacementPolicy on. Jobs whose `spec.managedBy` names
//! another controller are left alone.

mod indexed;
mod policy;
mod tracking;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::events::Recorder;
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::controller_utils::{
    self, Claim, Expectations, NAMESPACE_TERMINATING_CAUSE, OwnerLookup, controller_of,
    controller_ref, has_status_cause, is_pod_active, is_pod_ready, label_selector, message_of,
    pod_key, recheck_owner, status_code,
};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

use indexed::{Intervals, has_backoff_limit_per_index, is_indexed};
use policy::{
    BackoffRecord, BackoffStore, DEFAULT_POD_FAILURE_BACKOFF, FAILURE_TARGET,
    MAX_POD_FAILURE_BACKOFF, SUCCESS_CRITERIA_MET, SUSPENDED, ensure_condition, is_finished,
    new_condition, true_condition,
};
use tracking::{
    JOB_TRACKING_FINALIZER, UidExpectations, Uncounted, has_tracking_finalizer, is_pod_failed,
    is_terminating, nonzero, only_replace_failed_pods, remove_finalizer_patch,
};

/// The controller's name.
pub const NAME: &str = "job-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "job-controller";
/// The value of `spec.managedBy` meaning this controller.
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// Pod events are batched: a Job syncs at most about once per this period for them
/// (upstream's `syncJobBatchPeriod`).
const SYNC_BATCH_PERIOD: Duration = Duration::from_secs(1);
/// At most this many pods are created or deleted by one sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about the Job failed.
    #[error("job {job}: {context}: {source}")]
    Request {
        /// The Job's key.
        job: String,
        /// What was being done.
        context: &'static str,
        /// The cause.
        source: kube::Error,
    },
    /// Pods could not be created, deleted, adopted or released.
    #[error("job {job}: {message}")]
    Pods {
        /// The Job's key.
        job: String,
        /// The apiserver's message.
        message: String,
    },
}

/// Starts the Job controller.
pub fn start(cx: Context) -> BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_job_syncs;
    let controller = Arc::new(Controller {
        name: cx.name,
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        jobs: cx.informers.informer::<Job>(),
        pods: cx.informers.informer::<Pod>(),
        queue: WorkQueue::new(),
        orphans: WorkQueue::new(),
        expectations: Expectations::default(),
        finalizers: UidExpectations::default(),
        backoff: BackoffStore::default(),
    });
    let handler = controller.clone();
    controller
        .jobs
        .add_handler(move |change: &Change<'_, Job>| handler.job_changed(change));
    let handler = controller.clone();
    controller
        .pods
        .add_handler(move |change: &Change<'_, Pod>| handler.pod_changed(change));
    Box::pin(async move {
        controller.jobs.wait_synced().await;
        controller.pods.wait_synced().await;
        tracing::info!(
            controller = controller.name,
            "caches synced; starting workers"
        );
        let jobs = {
            let controller = controller.clone();
            controller
                .queue
                .clone()
                .run(worker_count, None, controller.name, move |key: String| {
                    let controller = controller.clone();
                    async move { controller.sync(&key).await }
                })
        };
        let orphans = {
            let controller = controller.clone();
            controller
                .orphans
                .clone()
                .run(1, None, "job-orphan-pod", move |key: String| {
                    let controller = controller.clone();
                    async move { controller.sync_orphan_pod(&key).await }
                })
        };
        futures::future::join(jobs, orphans).await;
    })
}

/// The state of one sync of one Job (upstream's `syncJobCtx`).
pub(crate) struct SyncCtx {
    /// The Job, with the status being computed.
    job: Job,
    /// Every pod the Job controls (active and finished).
    pods: Vec<Arc<Pod>>,
    /// Those active.
    active_pods: Vec<Arc<Pod>>,
    /// The condition the Job is finishing with, if any.
    finished: Option<JobCondition>,
    /// Succeeded pods, counted or not.
    succeeded: i64,
    /// Completed indexes in status before this sync.
    prev_succeeded_indexes: Intervals,
    /// Completed indexes now.
    succeeded_indexes: Intervals,
    /// Failed indexes (with backoffLimitPerIndex).
    failed_indexes: Option<Intervals>,
    /// The backoff record including this sync's finished pods.
    new_backoff: BackoffRecord,
    /// Pods whose finalizer removal is awaited.
    expected_rm_finalizers: HashSet<String>,
    /// `status.uncountedTerminatedPods` as read.
    uncounted: Uncounted,
    /// Per index, the failed pod kept until its replacement exists.
    delayed_deletion: HashMap<i64, Arc<Pod>>,
    /// Pods being deleted that have not finished.
    terminating: i32,
    /// Ready active pods.
    ready: i32,
}

pub(crate) struct Controller {
    name: &'static str,
    client: kube::Client,
    recorder: Recorder,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue<String>>,
    /// Pods with the tracking finalizer no Job will count.
    orphans: Arc<WorkQueue<String>>,
    expectations: Expectations,
    finalizers: UidExpectations,
    backoff: BackoffStore,
}

fn spec_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn managed_externally(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != MANAGED_BY)
}

/// `spec.backoffLimit`, defaulted as upstream (6, or unlimited with
/// backoffLimitPerIndex).
fn backoff_limit(job: &Job) -> i32 {
    let spec = job.spec.as_ref();
    match spec.and_then(|s| s.backoff_limit) {
        Some(limit) => limit,
        None if has_backoff_limit_per_index(job) => i32::MAX,
        None => 6,
    }
}

/// How long until `activeDeadlineSeconds` passes (zero when it has), if the Job has
/// a deadline and is running.
fn deadline_remaining(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    if spec_suspended(job) {
        return None;
    }
    let allowed = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    let elapsed: Duration = now
        .duration_since(start)
        .try_into()
        .unwrap_or(Duration::ZERO);
    Some(allowed.saturating_sub(elapsed))
}

/// A `&'static str` reason for events (the recorder takes static reasons).
fn event_reason(reason: &str) -> &'static str {
    match reason {
        "BackoffLimitExceeded" => "BackoffLimitExceeded",
        "DeadlineExceeded" => "DeadlineExceeded",
        "PodFailurePolicy" => "PodFailurePolicy",
        "MaxFailedIndexesExceeded" => "MaxFailedIndexesExceeded",
        "FailedIndexes" => "FailedIndexes",
        _ => "Failed",
    }
}

impl Controller {
    // ---- handlers: quick, they only note expectations and enqueue keys ----

    fn job_changed(&self, change: &Change<'_, Job>) {
        match change {
            Change::Added(job) => self.queue.add(key_of(job.as_ref())),
            Change::Updated { old, new } => self.job_updated(old, new),
            Change::Deleted(job) => {
                self.queue.add(key_of(job.as_ref()));
                self.cleanup_pod_finalizers(job);
            }
        }
    }

    fn job_updated(&self, old: &Job, new: &Job) {
        let key = key_of(new);
        if old.metadata.uid != new.metadata.uid {
            self.expectations.delete(&key);
            self.finalizers.delete(&key);
        }
        if old.metadata.generation == new.metadata.generation {
            // status updates (often our own) are batched like pod events
            self.queue.add_after(key.clone(), SYNC_BATCH_PERIOD);
        } else {
            self.queue.add(key.clone());
        }
        if is_finished(new) {
            // a backup: a finished Job's pods must lose their finalizers
            self.cleanup_pod_finalizers(new);
        }
        let deadline = |j: &Job| j.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        if deadline(new).is_some()
            && deadline(new) != deadline(old)
            && let Some(remaining) = deadline_remaining(new, jiff::Timestamp::now())
        {
            self.queue.add_after(key, remaining);
        }
    }

    /// Queues the pods `job` controls that still have the finalizer for cleanup.
    fn cleanup_pod_finalizers(&self, job: &Job) {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        for pod in self.pods.list_namespace(namespace) {
            let ours = controller_of(&pod.metadata)
                .is_some_and(|r| Some(&r.uid) == job.metadata.uid.as_ref());
            if ours && has_tracking_finalizer(&pod) {
                self.orphans.add(pod_key(&pod));
            }
        }
    }

    fn pod_changed(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => self.pod_added(pod),
            Change::Updated { old, new } => self.pod_updated(old, new),
            Change::Deleted(pod) => self.pod_deleted(pod, true),
        }
    }

    /// The Jobs as owners of pods.
    fn lookup(&self) -> OwnerLookup<'_, Job> {
        OwnerLookup {
            owners: &self.jobs,
            selector: |j| label_selector(j.spec.as_ref().and_then(|s| s.selector.as_ref())).ok(),
        }
    }

    fn enqueue_batched(&self, job: &Job) {
        self.queue.add_after(key_of(job), SYNC_BATCH_PERIOD);
    }

    fn pod_added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            // seen already being deleted (after a restart): not a creation
            self.pod_deleted(pod, false);
            return;
        }
        let concerned = self.lookup().added(&pod.metadata);
        if let Some(job) = concerned.controller {
            self.expectations.creation_observed(&key_of(job.as_ref()));
            self.enqueue_batched(&job);
        }
        if controller_of(&pod.metadata).is_none() && has_tracking_finalizer(pod) {
            self.orphans.add(pod_key(pod));
        }
        for job in concerned.adopters {
            self.enqueue_batched(&job);
        }
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        if new.metadata.deletion_timestamp.is_some() {
            // replace the pod as soon as its deletion starts
            self.pod_deleted(new, false);
            return;
        }
        let finalizer_removed = !has_tracking_finalizer(new);
        let uid = new.metadata.uid.as_deref().unwrap_or_default();
        let concerned = self.lookup().updated(&old.metadata, &new.metadata);
        for job in concerned.former.iter().chain(concerned.controller.iter()) {
            if finalizer_removed {
                self.finalizers.observed(&key_of(job.as_ref()), uid);
            }
            self.enqueue_batched(job);
        }
        if controller_of(&new.metadata).is_none() && has_tracking_finalizer(new) {
            self.orphans.add(pod_key(new));
        }
        for job in concerned.adopters {
            self.enqueue_batched(&job);
        }
    }

    /// A pod went away (`last`) or began its deletion.
    fn pod_deleted(&self, pod: &Pod, last: bool) {
        let has_finalizer = has_tracking_finalizer(pod);
        if controller_of(&pod.metadata).is_none() {
            // an orphan (perhaps the garbage collector took the reference away)
            if has_finalizer {
                self.orphans.add(pod_key(pod));
            }
            return;
        }
        let job = self.lookup().controller(&pod.metadata);
        let Some(job) = job.filter(|j| !is_finished(j)) else {
            if has_finalizer {
                self.orphans.add(pod_key(pod));
            }
            return;
        };
        let key = key_of(job.as_ref());
        self.expectations.deletion_observed(&key, &pod_key(pod));
        if last || !has_finalizer {
            self.finalizers
                .observed(&key, pod.metadata.uid.as_deref().unwrap_or_default());
        }
        self.enqueue_batched(&job);
    }

    // ---- orphan pods ----

    /// Removes the tracking finalizer from a pod no running Job will count (upstream's
    /// `syncOrphanPod`).
    async fn sync_orphan_pod(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(pod) = self.pods.get(namespace, name) else {
            return Ok(());
        };
        if let Some(reference) = controller_of(&pod.metadata) {
            if reference.kind != "Job" || reference.api_version != "batch/v1" {
                // someone else's pod: not our finalizer to touch
                return Ok(());
            }
            if let Some(job) = self.lookup().resolve(namespace, reference) {
                if managed_externally(&job) || !is_finished(&job) {
                    // adopted, or counted by another controller
                    return Ok(());
                }
            }
        }
        let Some(patch) = remove_finalizer_patch(&pod) else {
            return Ok(());
        };
        match self.patch_pod(&pod, patch).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(Error::Pods {
                job: key.to_owned(),
                message: format!("removing tracking finalizer: {}", message_of(&e)),
            }),
        }
    }

    // ---- the sync of one Job ----

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(shared) = self.jobs.get(namespace, name) else {
            self.expectations.delete(key);
            self.finalizers.delete(key);
            self.backoff.remove(key);
            return Ok(());
        };
        if managed_externally(&shared) {
            return Ok(());
        }
        if is_finished(&shared) {
            self.backoff.remove(key);
            return Ok(());
        }
        let mode = shared
            .spec
            .as_ref()
            .and_then(|s| s.completion_mode.as_deref());
        if !matches!(mode, None | Some("NonIndexed" | "Indexed")) {
            self.recorder.event(
                shared.as_ref(),
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown".to_owned(),
                self.name,
            );
            return Ok(());
        }
        let mut job = (*shared).clone();
        job.status
            .get_or_insert_with(JobStatus::default)
            .uncounted_terminated_pods
            .get_or_insert_with(Default::default);
        // read before listing pods, so what the list shows includes what was expected
        let satisfied = self.expectations.satisfied(key);
        let pods = self.pods_for_job(&job, key).await?;
        let now = jiff::Timestamp::now();
        let active_pods: Vec<Arc<Pod>> =
            pods.iter().filter(|p| is_pod_active(p)).cloned().collect();
        let uncounted = Uncounted::of(job.status.as_ref());
        let expected_rm = self.finalizers.expected(key);
        let indexed = is_indexed(&job);
        let completions = indexed::completions(&job);
        let is_countable =
            |p: &Pod, uncounted: &HashSet<String>| countable(&job, &expected_rm, uncounted, p);
        let new_succeeded: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| is_countable(p, &uncounted.succeeded))
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .collect();
        let new_failed: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| is_countable(p, &uncounted.failed))
            .filter(|p| is_pod_failed(p, &job))
            .collect();
        let policy = job.spec.as_ref().and_then(|s| s.pod_failure_policy.clone());
        let counted_failures = new_failed
            .iter()
            .filter(|p| {
                policy
                    .as_ref()
                    .is_none_or(|pol| policy::match_pod_failure_policy(pol, p).count_failed)
            })
            .count();
        let status = job.status.clone().unwrap_or_default();
        let succeeded = i64::from(status.succeeded.unwrap_or(0))
            + new_succeeded.len() as i64
            + uncounted.succeeded.len() as i64;
        let failed = i64::from(status.failed.unwrap_or(0))
            + counted_failures as i64
            + uncounted.failed.len() as i64;
        if status.start_time.is_none() && !spec_suspended(&job) {
            job.status.get_or_insert_with(JobStatus::default).start_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        }
        let new_backoff = self.backoff.new_record(key, &new_succeeded, &new_failed);
        let ready = active_pods.iter().filter(|p| is_pod_ready(p)).count();
        let terminating = pods.iter().filter(|p| is_terminating(p)).count();
        let mut ctx = SyncCtx {
            active_pods,
            finished: true_condition(&job, SUCCESS_CRITERIA_MET).cloned(),
            succeeded,
            prev_succeeded_indexes: Intervals::default(),
            succeeded_indexes: Intervals::default(),
            failed_indexes: None,
            new_backoff,
            expected_rm_finalizers: expected_rm.clone(),
            uncounted,
            delayed_deletion: HashMap::new(),
            terminating: i32::try_from(terminating).unwrap_or(i32::MAX),
            ready: i32::try_from(ready).unwrap_or(i32::MAX),
            pods,
            job,
        };
        let failure = |reason: &str, message: &str| {
            Some(new_condition(FAILURE_TARGET, "True", reason, message, now))
        };
        // with SuccessCriteriaMet already set, the outcome is decided
        if ctx.finished.is_none() {
            if let Some(target) = true_condition(&ctx.job, FAILURE_TARGET) {
                ctx.finished = Some(new_condition(
                    policy::FAILED,
                    "True",
                    target.reason.as_deref().unwrap_or_default(),
                    target.message.as_deref().unwrap_or_default(),
                    now,
                ));
            } else if let Some(message) = fail_job_message(&ctx.job, &ctx.pods) {
                ctx.finished = failure("PodFailurePolicy", &message);
            }
        }
        if ctx.finished.is_none() {
            if failed > i64::from(backoff_limit(&ctx.job))
                || policy::past_backoff_limit_on_failure(
                    &ctx.job,
                    backoff_limit(&ctx.job),
                    &ctx.pods,
                )
            {
                ctx.finished = failure(
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
            } else if let Some(remaining) = deadline_remaining(&ctx.job, now) {
                if remaining.is_zero() {
                    ctx.finished = failure(
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    );
                } else {
                    self.queue.add_after(key.to_owned(), remaining);
                }
            }
        }
        if indexed {
            let (previous, now_succeeded) = indexed::succeeded_indexes(&ctx.job, &ctx.pods);
            ctx.succeeded = now_succeeded.total();
            ctx.prev_succeeded_indexes = previous;
            ctx.succeeded_indexes = now_succeeded;
            if has_backoff_limit_per_index(&ctx.job) {
                let failed_indexes = indexed::failed_indexes(&ctx.job, &ctx.pods);
                if ctx.finished.is_none() {
                    let max = ctx.job.spec.as_ref().and_then(|s| s.max_failed_indexes);
                    if max.is_some_and(|m| failed_indexes.total() > i64::from(m)) {
                        ctx.finished = failure(
                            "MaxFailedIndexesExceeded",
                            "Job has exceeded the specified maximal number of failed indexes",
                        );
                    } else if failed_indexes.total() > 0
                        && failed_indexes.total() + ctx.succeeded_indexes.total() >= completions
                    {
                        ctx.finished = failure("FailedIndexes", "Job has failed indexes");
                    }
                }
                let countable_pods: Vec<Arc<Pod>> = ctx
                    .pods
                    .iter()
                    .filter(|p| countable(&ctx.job, &expected_rm, &HashSet::new(), p))
                    .cloned()
                    .collect();
                ctx.delayed_deletion = indexed::pods_with_delayed_deletion(
                    &ctx.job,
                    &countable_pods,
                    &ctx.active_pods,
                    &ctx.succeeded_indexes,
                    Some(&failed_indexes),
                );
                ctx.failed_indexes = Some(failed_indexes);
            }
            if ctx.finished.is_none()
                && let Some(message) = policy::match_success_policy(
                    ctx.job
                        .spec
                        .as_ref()
                        .and_then(|s| s.success_policy.as_ref()),
                    completions,
                    &ctx.succeeded_indexes,
                )
            {
                ctx.finished = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "SuccessPolicy",
                    &message,
                    now,
                ));
            }
        }

        let mut active = i32::try_from(ctx.active_pods.len()).unwrap_or(i32::MAX);
        let mut suspend_changed = false;
        let manage_error;
        if ctx.finished.is_some() {
            let (deleted_ready, deleted, error) = self.delete_active_pods(&ctx).await;
            if deleted != active || !satisfied {
                // pods may remain, or the cache may not show them all yet
                ctx.finished = None;
            }
            active -= deleted;
            ctx.terminating = ctx.terminating.saturating_add(deleted);
            ctx.ready -= deleted_ready;
            manage_error = error;
        } else {
            let mut managed = false;
            let mut error = None;
            if satisfied && ctx.job.metadata.deletion_timestamp.is_none() {
                (active, error) = self.manage_job(&mut ctx, key).await;
                managed = true;
            }
            manage_error = error;
            let done = match ctx.job.spec.as_ref().and_then(|s| s.completions) {
                // any success ends a Job without completions, once nothing runs
                None => ctx.succeeded > 0 && active == 0,
                Some(completions) => ctx.succeeded >= i64::from(completions) && active == 0,
            };
            if done {
                ctx.finished = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if managed {
                let suspended = spec_suspended(&ctx.job);
                let status = ctx.job.status.get_or_insert_with(JobStatus::default);
                let conditions = status.conditions.get_or_insert_with(Vec::new);
                if suspended {
                    if ensure_condition(
                        conditions,
                        SUSPENDED,
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        now,
                    ) {
                        suspend_changed = true;
                        self.event(&ctx.job, "Normal", "Suspended", "Job suspended");
                    }
                } else if ensure_condition(
                    conditions,
                    SUSPENDED,
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    suspend_changed = true;
                    // the deadline counts from the resume, as for a Job created
                    // suspended
                    status.start_time =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
                    self.event(&ctx.job, "Normal", "Resumed", "Job resumed");
                }
            }
        }
        let status = ctx.job.status.get_or_insert_with(JobStatus::default);
        let needs_update = suspend_changed
            || status.active.unwrap_or(0) != active
            || status.ready != Some(ctx.ready)
            || status.terminating != Some(ctx.terminating);
        status.active = nonzero(active);
        status.ready = Some(ctx.ready);
        status.terminating = Some(ctx.terminating);
        self.track_status_and_remove_finalizers(&mut ctx, key, needs_update)
            .await?;
        match manage_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn event(&self, job: &Job, type_: &'static str, reason: &'static str, message: &str) {
        self.recorder
            .event(job, type_, reason, message.to_owned(), self.name);
    }

    /// The events of a finished Job.
    fn record_finished(&self, job: &Job, condition: &JobCondition) {
        if condition.type_ == policy::COMPLETE {
            let completions = job.spec.as_ref().and_then(|s| s.completions);
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions.is_some_and(|c| succeeded > c) {
                self.event(
                    job,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                );
            }
            self.event(job, "Normal", "Completed", "Job completed");
        } else {
            let reason = condition.reason.as_deref().unwrap_or_default();
            self.event(
                job,
                "Warning",
                event_reason(reason),
                condition.message.as_deref().unwrap_or_default(),
            );
        }
    }

    /// Writes the Job's status; returns the Job as stored.
    async fn update_status(&self, job: &Job) -> Result<Job, Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        api.replace_status(&job.name_any(), &PostParams::default(), job)
            .await
            .map_err(|source| Error::Request {
                job: key_of(job),
                context: "updating status",
                source,
            })
    }

    /// Every pod of the namespace the Job controls, adopting matching orphans (with
    /// the tracking finalizer) and releasing pods it no longer selects (upstream's
    /// `getPodsForJob`).
    async fn pods_for_job(&self, job: &Job, key: &str) -> Result<Vec<Arc<Pod>>, Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let selector = match label_selector(job.spec.as_ref().and_then(|s| s.selector.as_ref())) {
            Ok(s) => s,
            Err(e) => {
                return Err(Error::Pods {
                    job: key.to_owned(),
                    message: format!("couldn't convert Job selector: {e}"),
                });
            }
        };
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        let mut can_adopt: Option<Result<(), String>> = None;
        for pod in self.pods.list_namespace(namespace) {
            match controller_utils::claim(job, &selector, &pod) {
                Claim::Keep => claimed.push(pod),
                Claim::Ignore => {}
                Claim::Release => {
                    let patch = controller_utils::release_patch(
                        job.metadata.uid.as_deref().unwrap_or_default(),
                        pod.metadata.uid.as_deref().unwrap_or_default(),
                    );
                    match self.patch_pod(&pod, patch).await {
                        Ok(()) => {}
                        Err(e) if matches!(status_code(&e), Some(404 | 422)) => {}
                        Err(e) => errors.push(format!(
                            "release Pod {}: {}",
                            pod_key(&pod),
                            message_of(&e)
                        )),
                    }
                }
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_not_deleted(job).await);
                    }
                    if let Some(Err(message)) = &can_adopt {
                        errors.push(format!("can't adopt Pod {}: {message}", pod_key(&pod)));
                        continue;
                    }
                    let mut patch = controller_utils::adopt_patch(
                        &controller_ref(job),
                        pod.metadata.uid.as_deref().unwrap_or_default(),
                    );
                    if let Some(meta) = patch.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                        meta.insert(
                            "finalizers".to_owned(),
                            serde_json::json!([JOB_TRACKING_FINALIZER]),
                        );
                    }
                    match self.patch_pod(&pod, patch).await {
                        Ok(()) => {
                            // count it as the adopted pod will look
                            let mut adopted = (*pod).clone();
                            let finalizers =
                                adopted.metadata.finalizers.get_or_insert_with(Vec::new);
                            if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
                                finalizers.push(JOB_TRACKING_FINALIZER.to_owned());
                            }
                            adopted.metadata.owner_references = Some(vec![controller_ref(job)]);
                            claimed.push(Arc::new(adopted));
                        }
                        Err(e) if status_code(&e) == Some(404) => {}
                        Err(e) => {
                            errors.push(format!("adopt Pod {}: {}", pod_key(&pod), message_of(&e)))
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(claimed)
        } else {
            Err(Error::Pods {
                job: key.to_owned(),
                message: errors.join(", "),
            })
        }
    }

    /// Before adopting, a fresh read must show the Job still exists, unchanged and not
    /// being deleted (upstream's `RecheckDeletionTimestamp`).
    async fn recheck_not_deleted(&self, job: &Job) -> Result<(), String> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let uid = job.metadata.uid.as_deref();
        recheck_owner(&api, &job.name_any(), uid)
            .await
            .map_err(|e| e.to_string())
    }

    /// Deletes the active pods of a finishing Job, keeping their finalizers (the
    /// tracking removes them once counted); returns ready and all deleted, and the
    /// first error.
    async fn delete_active_pods(&self, ctx: &SyncCtx) -> (i32, i32, Option<Error>) {
        let key = key_of(&ctx.job);
        let results = futures::future::join_all(
            ctx.active_pods
                .iter()
                .map(|pod| self.delete_pod(&ctx.job, pod)),
        )
        .await;
        let mut deleted = 0i32;
        let mut ready = 0i32;
        let mut first_error = None;
        for (pod, result) in ctx.active_pods.iter().zip(results) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) if status_code(&e) == Some(404) => deleted += 1,
                Err(e) => {
                    first_error.get_or_insert(Error::Pods {
                        job: key.clone(),
                        message: message_of(&e),
                    });
                }
            }
            if is_pod_ready(pod) {
                ready += 1;
            }
        }
        (ready, deleted, first_error)
    }

    /// Deletes surplus pods of a running Job: their finalizer goes first, as they will
    /// not count (upstream's `deleteJobPods`).
    async fn delete_job_pods(
        &self,
        ctx: &SyncCtx,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> (i32, i32, Option<Error>) {
        self.expectations
            .expect_deletions(key, pods.iter().map(|p| pod_key(p)).collect());
        let results = futures::future::join_all(pods.iter().map(|pod| async move {
            if let Some(patch) = remove_finalizer_patch(pod) {
                self.patch_pod(pod, patch).await?;
            }
            self.delete_pod(&ctx.job, pod).await
        }))
        .await;
        let mut deleted = 0i32;
        let mut ready = 0i32;
        let mut first_error = None;
        for (pod, result) in pods.iter().zip(results) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) => {
                    // the informer will not show this deletion
                    self.expectations.deletion_observed(key, &pod_key(pod));
                    if status_code(&e) == Some(404) {
                        deleted += 1;
                    } else {
                        first_error.get_or_insert(Error::Pods {
                            job: key.to_owned(),
                            message: message_of(&e),
                        });
                    }
                }
            }
            if is_pod_ready(pod) {
                ready += 1;
            }
        }
        (ready, deleted, first_error)
    }

    /// Deletes one pod with its event (upstream's `RealPodControl.DeletePod`).
    async fn delete_pod(&self, job: &Job, pod: &Pod) -> Result<(), kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.event(
                    job,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                if status_code(&e) != Some(404) {
                    self.event(
                        job,
                        "Warning",
                        "FailedDelete",
                        &format!("Error deleting: {}", message_of(&e)),
                    );
                }
                Err(e)
            }
        }
    }

    /// The active pods to delete: at least `at_least`, plus for Indexed Jobs every
    /// duplicate or invalid index, earliest in their life first (upstream's
    /// `activePodsForRemoval`).
    fn pods_for_removal(job: &Job, pods: &[Arc<Pod>], at_least: usize) -> Vec<Arc<Pod>> {
        let now = jiff::Timestamp::now();
        let order = |pods: &mut Vec<Arc<Pod>>| {
            let mut ranked: Vec<(Arc<Pod>, usize)> = pods.drain(..).map(|p| (p, 0)).collect();
            controller_utils::sort_for_deletion(&mut ranked, now);
            pods.extend(ranked.into_iter().map(|(p, _)| p));
        };
        let (mut remove, mut left) = if is_indexed(job) {
            indexed::duplicated_index_pods(pods, indexed::completions(job), order)
        } else {
            (Vec::new(), pods.to_vec())
        };
        if remove.len() < at_least {
            order(&mut left);
            let more = (at_least - remove.len()).min(left.len());
            remove.extend(left.into_iter().take(more));
        }
        remove
    }

    /// Creates or deletes pods so that the right number runs (upstream's
    /// `manageJob`); returns the active count and the first error.
    async fn manage_job(&self, ctx: &mut SyncCtx, key: &str) -> (i32, Option<Error>) {
        let mut active = i32::try_from(ctx.active_pods.len()).unwrap_or(i32::MAX);
        let spec = ctx.job.spec.clone().unwrap_or_default();
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        if spec_suspended(&ctx.job) {
            let victims = Self::pods_for_removal(&ctx.job, &ctx.active_pods, ctx.active_pods.len());
            let (ready, removed, error) = self.delete_job_pods(ctx, key, &victims).await;
            active -= removed;
            ctx.terminating = ctx.terminating.saturating_add(removed);
            ctx.ready -= ready;
            return (active, error);
        }
        let want_active: i64 = match spec.completions {
            None if ctx.succeeded > 0 => i64::from(active),
            None => i64::from(parallelism),
            Some(completions) => {
                (i64::from(completions) - ctx.succeeded).clamp(0, i64::from(parallelism))
            }
        };
        let surplus = usize::try_from(i64::from(active) - want_active).unwrap_or(0);
        let mut victims = Self::pods_for_removal(&ctx.job, &ctx.active_pods, surplus);
        victims.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !victims.is_empty() {
            tracing::debug!(job = %key, deleting = victims.len(), want_active, "too many pods running");
            let (ready, removed, error) = self.delete_job_pods(ctx, key, &victims).await;
            active -= removed;
            ctx.terminating = ctx.terminating.saturating_add(removed);
            ctx.ready -= ready;
            // deletions first; creations wait for the next sync
            return (active, error);
        }
        let terminating = if only_replace_failed_pods(&ctx.job) {
            i64::from(ctx.terminating)
        } else {
            0
        };
        let diff = want_active - terminating - i64::from(active);
        if diff <= 0 {
            return (active, None);
        }
        let now = jiff::Timestamp::now();
        if !has_backoff_limit_per_index(&ctx.job) {
            let remaining = ctx.new_backoff.remaining(
                now,
                DEFAULT_POD_FAILURE_BACKOFF,
                MAX_POD_FAILURE_BACKOFF,
            );
            if !remaining.is_zero() {
                self.queue
                    .add_after(key.to_owned(), remaining.max(SYNC_BATCH_PERIOD));
                return (active, None);
            }
        }
        let mut diff = usize::try_from(diff)
            .unwrap_or(0)
            .min(MAX_POD_CREATE_DELETE_PER_SYNC);
        let mut indexes: Vec<Option<i64>> = vec![None; diff];
        if is_indexed(&ctx.job) {
            let terminating_pods: Vec<Arc<Pod>> = if only_replace_failed_pods(&ctx.job) {
                ctx.pods
                    .iter()
                    .filter(|p| is_terminating(p))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let mut pending = indexed::first_pending_indexes(
                &ctx.active_pods,
                &terminating_pods,
                &ctx.succeeded_indexes,
                ctx.failed_indexes.as_ref(),
                diff,
                indexed::completions(&ctx.job),
            );
            if has_backoff_limit_per_index(&ctx.job) {
                // each index waits for its own backoff
                let mut soonest: Option<Duration> = None;
                pending.retain(|index| {
                    let Some(last) = ctx.delayed_deletion.get(index) else {
                        return true;
                    };
                    let remaining = policy::remaining_for_failures(
                        indexed::index_absolute_failure_count(last).saturating_add(1),
                        Some(policy::finished_time(last)),
                        now,
                        DEFAULT_POD_FAILURE_BACKOFF,
                        MAX_POD_FAILURE_BACKOFF,
                    );
                    if remaining.is_zero() {
                        return true;
                    }
                    soonest = Some(soonest.map_or(remaining, |s| s.min(remaining)));
                    false
                });
                if pending.is_empty() {
                    if let Some(delay) = soonest {
                        self.queue
                            .add_after(key.to_owned(), delay.max(SYNC_BATCH_PERIOD));
                    }
                    return (active, None);
                }
            }
            diff = pending.len();
            indexes = pending.into_iter().map(Some).collect();
        }
        if diff == 0 {
            return (active, None);
        }
        tracing::debug!(job = %key, creating = diff, want_active, "too few pods running");
        self.expectations.expect_creations(key, diff);
        let next = Mutex::new(indexes.into_iter());
        let job = &ctx.job;
        let delayed = &ctx.delayed_deletion;
        let (created, error) = controller_utils::slow_start_batch(
            diff,
            controller_utils::SLOW_START_INITIAL_BATCH_SIZE,
            || {
                let index = next
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .next()
                    .flatten();
                self.create_pod(job, key, index, delayed)
            },
        )
        .await;
        // creates that failed or never ran will not be seen
        for _ in created..diff {
            self.expectations.creation_observed(key);
        }
        active = active.saturating_add(i32::try_from(created).unwrap_or(i32::MAX));
        (active, error)
    }

    /// Creates one pod of the Job (of `index` for Indexed Jobs), with its event.
    async fn create_pod(
        &self,
        job: &Job,
        key: &str,
        index: Option<i64>,
        delayed: &HashMap<i64, Arc<Pod>>,
    ) -> Result<(), Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let job_name = job.name_any();
        let mut template = job
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let meta = template.metadata.get_or_insert_with(Default::default);
        let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
            finalizers.push(JOB_TRACKING_FINALIZER.to_owned());
        }
        if let Some(index) = index {
            let value = index.to_string();
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert(
                    indexed::COMPLETION_INDEX_ANNOTATION.to_owned(),
                    value.clone(),
                );
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(indexed::COMPLETION_INDEX_ANNOTATION.to_owned(), value);
            if has_backoff_limit_per_index(job) {
                let (counted, ignored) =
                    indexed::new_index_failure_counts(job, delayed.get(&index).map(AsRef::as_ref));
                let annotations = meta.annotations.get_or_insert_with(Default::default);
                annotations.insert(
                    indexed::INDEX_FAILURE_COUNT_ANNOTATION.to_owned(),
                    counted.to_string(),
                );
                if ignored > 0 {
                    annotations.insert(
                        indexed::INDEX_IGNORED_FAILURE_COUNT_ANNOTATION.to_owned(),
                        ignored.to_string(),
                    );
                }
            }
            if let Some(spec) = template.spec.as_mut() {
                spec.hostname = Some(format!("{job_name}-{index}"));
            }
        }
        if is_indexed(job)
            && let Some(spec) = template.spec.as_mut()
        {
            for container in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                let env = container.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == indexed::COMPLETION_INDEX_ENV) {
                    env.push(EnvVar {
                        name: indexed::COMPLETION_INDEX_ENV.to_owned(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!(
                                    "metadata.labels['{}']",
                                    indexed::COMPLETION_INDEX_ANNOTATION
                                ),
                            }),
                            ..Default::default()
                        }),
                    });
                }
            }
        }
        let mut pod = controller_utils::pod_from_template(
            &template,
            namespace,
            &job_name,
            Some(controller_ref(job)),
        );
        if let Some(index) = index {
            pod.metadata.generate_name = Some(indexed::generate_name_with_index(&job_name, index));
        }
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Err(Error::Pods {
                job: key.to_owned(),
                message: "unable to create pods, no labels".to_owned(),
            });
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.event(
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", created.name_any()),
                );
                Ok(())
            }
            // the namespace is going away: every create would fail
            Err(e) if has_status_cause(&e, NAMESPACE_TERMINATING_CAUSE) => Ok(()),
            Err(e) => {
                let message = message_of(&e);
                self.event(
                    job,
                    "Warning",
                    "FailedCreate",
                    &format!("Error creating: {message}"),
                );
                Err(Error::Pods {
                    job: key.to_owned(),
                    message,
                })
            }
        }
    }
}

/// Whether `pod` is not yet accounted for (upstream's `getValidPodsWithFilter`): it
/// has the finalizer, is not in `uncounted`, is not awaiting its finalizer removal
/// and, for Indexed Jobs, has a valid index.
fn countable(
    job: &Job,
    expected_rm: &HashSet<String>,
    uncounted: &HashSet<String>,
    pod: &Pod,
) -> bool {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    has_tracking_finalizer(pod)
        && !uncounted.contains(uid)
        && !expected_rm.contains(uid)
        && (!is_indexed(job) || indexed::valid_index(job, pod).is_some())
}

/// The message of the first failed pod a FailJob rule matches (upstream's
/// `getFailJobMessage`).
fn fail_job_message(job: &Job, pods: &[Arc<Pod>]) -> Option<String> {
    let policy = job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    pods.iter()
        .filter(|p| is_pod_failed(p, job))
        .find_map(|p| policy::match_pod_failure_policy(policy, p).fail_job_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(spec: JobSpec) -> Job {
        Job {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_limit_defaults_as_upstream() {
        assert_eq!(backoff_limit(&job(JobSpec::default())), 6);
        assert_eq!(
            backoff_limit(&job(JobSpec {
                backoff_limit_per_index: Some(1),
                ..Default::default()
            })),
            i32::MAX
        );
        assert_eq!(
            backoff_limit(&job(JobSpec {
                backoff_limit: Some(2),
                ..Default::default()
            })),
            2
        );
    }

    #[test]
    fn the_deadline_counts_from_the_start_and_not_while_suspended() {
        let start = jiff::Timestamp::from_second(1_000).unwrap();
        let mut j = job(JobSpec {
            active_deadline_seconds: Some(30),
            ..Default::default()
        });
        assert_eq!(deadline_remaining(&j, start), None);
        j.status = Some(JobStatus {
            start_time: Some(Time(start)),
            ..Default::default()
        });
        let later = jiff::Timestamp::from_second(1_010).unwrap();
        assert_eq!(deadline_remaining(&j, later), Some(Duration::from_secs(20)));
        let past = jiff::Timestamp::from_second(2_000).unwrap();
        assert_eq!(deadline_remaining(&j, past), Some(Duration::ZERO));
        j.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(deadline_remaining(&j, past), None);
    }

    #[test]
    fn only_jobs_managed_by_others_are_skipped() {
        let mut j = job(JobSpec::default());
        assert!(!managed_externally(&j));
        j.spec.as_mut().unwrap().managed_by = Some(MANAGED_BY.into());
        assert!(!managed_externally(&j));
        j.spec.as_mut().unwrap().managed_by = Some("example.com/mine".into());
        assert!(managed_externally(&j));
    }
}
