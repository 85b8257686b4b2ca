//! The CronJob controller: runs a CronJob's Job at each time its schedule names, as
//! upstream's `cronjob` controller (the v2 one, built on a delaying work queue).
//!
//! A sync looks at the most recent schedule time not yet run (since
//! `status.lastScheduleTime`, or the CronJob's creation, and no earlier than
//! `startingDeadlineSeconds` ago). Unless it is too late, already run, or a Job still
//! runs under `Forbid`, it creates the Job `<cronjob>-<minutes since the epoch>`
//! (`Replace` first deletes the running ones), notes it in `status.active` and
//! `lastScheduleTime`, then waits in the queue until the next schedule time. Finished
//! Jobs leave `status.active` (`SawCompletedJob`), advance `lastSuccessfulTime`, and
//! beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` the oldest are
//! deleted. Schedules are parsed as robfig/cron's standard parser ([`schedule`]) in
//! `spec.timeZone` (the manager's own zone when unset).

pub mod schedule;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::controller_utils::{controller_of, controller_ref};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;
use schedule::{Schedule, load_location};

/// The controller's name (and its service account's).
pub const NAME: &str = "cronjob-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "cronjob-controller";
/// The scheduled time of a Job, RFC 3339 in the CronJob's zone.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's padding after the next schedule time, for clock skew.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed start times than this earn a warning.
const TOO_MANY_MISSED: i64 = 100;

/// Why a CronJob could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A Job to replace could not be deleted.
    #[error("could not replace job {0}")]
    Replace(String),
}

/// How many schedule times went by unrun (upstream's `missedSchedulesType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

/// Upstream's `mostRecentScheduleTime`: the time counted from (the last schedule time
/// or the creation time, moved up to the starting deadline when asked), the most
/// recent schedule time not after `now` (if one passed since), and how many passed.
/// The count is estimated from the gap between the first two times, as upstream.
fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    include_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if let Some(last) = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
    {
        earliest = last.0;
    }
    let deadline = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds);
    if let (true, Some(seconds)) = (include_deadline, deadline) {
        if let Ok(limit) = now.checked_sub(jiff::SignedDuration::from_secs(seconds))
            && limit > earliest
        {
            earliest = limit;
        }
    }
    let t1 = schedule.next(earliest);
    if t1.is_some_and(|t1| now < t1) {
        return Ok((earliest, None, Missed::None));
    }
    let t2 = t1.and_then(|t1| schedule.next(t1));
    if let (Some(t1), Some(t2)) = (t1, t2)
        && now < t2
    {
        return Ok((earliest, Some(t1), Missed::None));
    }
    // an impossible date ("59 23 31 2 *") has no second time
    let between = match (t1, t2) {
        (Some(t1), Some(t2)) => t2.as_second().saturating_sub(t1.as_second()),
        _ => 0,
    };
    let Some(t1) = t1.filter(|_| between >= 1) else {
        return Err("time difference between two schedules is less than 1 second".to_owned());
    };
    let elapsed = now.as_second().saturating_sub(t1.as_second());
    let missed = elapsed / between + 1;
    // start two gaps back, so irregular schedules still find the latest time
    let back = (missed - 2).saturating_mul(between);
    let mut most_recent = None;
    let mut t = t1
        .checked_add(jiff::SignedDuration::from_secs(back))
        .ok()
        .and_then(|p| schedule.next(p));
    while let Some(at) = t.filter(|at| *at <= now) {
        most_recent = Some(at);
        t = schedule.next(at);
    }
    let kind = if missed > TOO_MANY_MISSED {
        Missed::Many
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((earliest, most_recent, kind))
}

/// Upstream's `nextScheduleTimeDuration`: how long until the next schedule time (plus
/// a little), or `None` when the schedule never comes again.
fn next_schedule_duration(cj: &CronJob, now: Timestamp, schedule: &Schedule) -> Option<Duration> {
    let from = match most_recent_schedule_time(cj, now, schedule, false) {
        Err(_) => now,
        Ok((_, Some(recent), _)) => recent,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
    };
    let next = schedule.next(from)?;
    let wait = next.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO) + NEXT_SCHEDULE_DELTA)
}

/// The Job name for a schedule time: `<cronjob>-<minutes since the epoch>`.
fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 (`Z` for a zero offset).
fn rfc3339(at: Timestamp, tz: TimeZone) -> String {
    let z = at.to_zoned(tz);
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Upstream's `getJobFromTemplate2`: the template's labels, annotations (plus the
/// scheduled time) and spec, owned by the CronJob.
fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Result<Job, String> {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let labels = template_meta.labels.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = template_meta.annotations.unwrap_or_default();
    let zone = cj
        .spec
        .as_ref()
        .and_then(|s| s.time_zone.clone())
        .unwrap_or_default();
    let tz = load_location(&zone)?;
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.to_owned(),
        rfc3339(scheduled, tz),
    );
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or_default(),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// The type of a Job's true `Complete` or `Failed` condition (upstream's
/// `getFinishedStatus`).
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn succeeded(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

fn uid_of(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == Some(uid))
}

fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(list) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        list.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// Oldest start first, unstarted last, names breaking ties (upstream's
/// `byJobStartTime`).
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.clone());
    let name = |j: &Job| j.metadata.name.clone().unwrap_or_default();
    match (start(a), start(b)) {
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) if x != y => x.0.cmp(&y.0),
        _ => name(a).cmp(&name(b)),
    }
}

/// What an error says, as Go's `%v` of an API error.
fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

struct Controller {
    cx: Context,
    cron_jobs: Informer<CronJob>,
    jobs: Informer<Job>,
    queue: Arc<WorkQueue<String>>,
}

impl Controller {
    fn event(&self, cj: &CronJob, type_: &'static str, reason: &'static str, message: String) {
        self.cx
            .recorder
            .event(cj, type_, reason, message, self.cx.name);
    }

    /// Upstream's `formatSchedule` and `cron.ParseStandard`: a `TZ=` in the schedule
    /// wins (with a warning when `warn`), else `spec.timeZone`, else the local zone.
    fn parse_schedule(&self, cj: &CronJob, warn: bool) -> Result<Schedule, String> {
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.schedule.contains("TZ") {
            if warn {
                self.event(
                    cj,
                    "Warning",
                    "UnsupportedSchedule",
                    format!(
                        "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                        spec.schedule
                    ),
                );
            }
            return Schedule::parse(&spec.schedule, TimeZone::system());
        }
        let tz = spec
            .time_zone
            .as_deref()
            .and_then(|name| load_location(name).ok())
            .unwrap_or_else(TimeZone::system);
        Schedule::parse(&spec.schedule, tz)
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(cached) = self.cron_jobs.get(namespace, name) else {
            return Ok(());
        };
        // every Job naming it as controller, whatever its labels now
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(namespace)
            .into_iter()
            .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.name == name))
            .collect();
        let mut cj = (*cached).clone();
        let cleaned = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let mut updated = false;
        let result = self.sync_cron_job(&mut cj, &jobs, &mut updated).await;
        if let Err(e) = &result {
            tracing::debug!(cronjob = %key, error = %e, "error reconciling cronjob");
        }
        if cleaned || updated {
            let api: Api<CronJob> = Api::namespaced(self.cx.client.clone(), namespace);
            match api.replace_status(name, &PostParams::default(), &cj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        match result {
            Ok(Some(wait)) => {
                self.queue.add_after(key.to_owned(), wait);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Upstream's `syncCronJob`: reconciles `status.active` with the Jobs and runs the
    /// Job due, if any; returns when to look again.
    async fn sync_cron_job(
        &self,
        cj: &mut CronJob,
        jobs: &[Arc<Job>],
        updated: &mut bool,
    ) -> Result<Option<Duration>, Error> {
        let now = Timestamp::now();
        let namespace = cj.metadata.namespace.clone().unwrap_or_default();
        let name = cj.metadata.name.clone().unwrap_or_default();
        let cron_jobs: Api<CronJob> = Api::namespaced(self.cx.client.clone(), &namespace);
        let mut children = HashSet::new();
        for job in jobs {
            let uid = uid_of(&job.metadata);
            let job_name = job.metadata.name.clone().unwrap_or_default();
            children.insert(uid.to_owned());
            let found = in_active_list(cj, uid);
            match finished(job) {
                None if !found => {
                    // the cache may be behind our own status update
                    let fresh = cron_jobs.get(&name).await?;
                    if in_active_list(&fresh, uid) {
                        *cj = fresh;
                        continue;
                    }
                    self.event(
                        cj,
                        "Warning",
                        "UnexpectedJob",
                        format!(
                            "Saw a job that the controller did not create or forgot: {job_name}"
                        ),
                    );
                }
                None => {}
                Some(condition) => {
                    if found {
                        delete_from_active_list(cj, uid);
                        self.event(
                            cj,
                            "Normal",
                            "SawCompletedJob",
                            format!("Saw completed job: {job_name}, condition: {condition}"),
                        );
                        *updated = true;
                    }
                    if succeeded(job) {
                        let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
                        let status = cj.status.get_or_insert_with(Default::default);
                        match (&status.last_successful_time, &completed) {
                            (None, _) => {
                                status.last_successful_time = completed;
                                *updated = true;
                            }
                            (Some(last), Some(at)) if at.0 > last.0 => {
                                status.last_successful_time = completed;
                                *updated = true;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }

        // Jobs gone from the cache are looked up before they leave the active list
        for reference in active(cj).to_vec() {
            let uid = reference.uid.clone().unwrap_or_default();
            if children.contains(&uid) {
                continue;
            }
            let job_namespace = reference.namespace.clone().unwrap_or_default();
            let job_name = reference.name.clone().unwrap_or_default();
            let api: Api<Job> = Api::namespaced(self.cx.client.clone(), &job_namespace);
            if api.get_opt(&job_name).await?.is_none() {
                self.event(
                    cj,
                    "Normal",
                    "MissingJob",
                    format!("Active job went missing: {job_name}"),
                );
                delete_from_active_list(cj, &uid);
                *updated = true;
            }
        }

        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if let Some(zone) = &spec.time_zone
            && let Err(e) = load_location(zone)
        {
            self.event(
                cj,
                "Warning",
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: {e}"),
            );
            return Ok(None);
        }
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let schedule = match self.parse_schedule(cj, true) {
            Ok(s) => s,
            Err(e) => {
                self.event(
                    cj,
                    "Warning",
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        let scheduled = match most_recent_schedule_time(cj, now, &schedule, true) {
            Err(e) => {
                self.event(
                    cj,
                    "Warning",
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return Ok(None);
            }
            // nothing due: the queue is early (or just restarted)
            Ok((_, None, _)) => return Ok(next_schedule_duration(cj, now, &schedule)),
            Ok((_, Some(at), missed)) => {
                if missed == Missed::Many {
                    self.event(
                        cj,
                        "Warning",
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".to_owned(),
                    );
                }
                at
            }
        };
        let next = next_schedule_duration(cj, now, &schedule);

        let too_late = spec.starting_deadline_seconds.is_some_and(|seconds| {
            scheduled
                .checked_add(jiff::SignedDuration::from_secs(seconds))
                .is_ok_and(|deadline| deadline < now)
        });
        if too_late {
            self.event(
                cj,
                "Warning",
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled
                        .to_zoned(TimeZone::UTC)
                        .strftime("%a, %d %b %Y %H:%M:%S %z")
                ),
            );
            return Ok(next);
        }
        let wanted = job_name(&name, scheduled);
        let already = active(cj).iter().any(|r| {
            r.name.as_deref() == Some(wanted.as_str())
                && r.namespace.as_deref() == Some(namespace.as_str())
        }) || cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .is_some_and(|t| t.0 == scheduled);
        if already {
            return Ok(next);
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !active(cj).is_empty() {
            self.event(
                cj,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".to_owned(),
            );
            return Ok(next);
        }
        if policy == "Replace" {
            for reference in active(cj).to_vec() {
                let job_namespace = reference.namespace.clone().unwrap_or_default();
                let job_name = reference.name.clone().unwrap_or_default();
                let api: Api<Job> = Api::namespaced(self.cx.client.clone(), &job_namespace);
                let job = match api.get(&job_name).await {
                    Ok(job) => job,
                    Err(e) => {
                        self.event(
                            cj,
                            "Warning",
                            "FailedGet",
                            format!("Get job: {}", message(&e)),
                        );
                        return Err(e.into());
                    }
                };
                if !self.delete_job(cj, &job).await {
                    return Err(Error::Replace(format!("{job_namespace}/{job_name}")));
                }
                *updated = true;
            }
        }

        let request = match job_from_template(cj, scheduled) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(cronjob = %name, error = %e, "unable to make a job from the template");
                return Ok(None);
            }
        };
        let jobs_api: Api<Job> = Api::namespaced(self.cx.client.clone(), &namespace);
        let created = match jobs_api.create(&PostParams::default(), &request).await {
            Ok(job) => {
                self.event(
                    cj,
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created job {wanted}"),
                );
                job
            }
            Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => {
                // made before a status update that failed: note it in the active list
                let job = jobs_api.get(&wanted).await?;
                let ours = controller_of(&job.metadata)
                    .is_some_and(|r| Some(r.uid.as_str()) == cj.metadata.uid.as_deref());
                if !ours || in_active_list(cj, uid_of(&job.metadata)) {
                    return Ok(next);
                }
                tracing::info!(cronjob = %name, job = %wanted, "job already exists");
                job
            }
            Err(kube::Error::Api(s))
                if s.details.as_ref().is_some_and(|d| {
                    d.causes.iter().any(|c| c.reason == "NamespaceTerminating")
                }) =>
            {
                return Err(kube::Error::Api(s).into());
            }
            Err(e) => {
                self.event(
                    cj,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating job: {}", message(&e)),
                );
                return Err(e.into());
            }
        };
        let status = cj.status.get_or_insert_with(Default::default);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(component_base::events::reference(&created));
        status.last_schedule_time = Some(Time(scheduled));
        *updated = true;
        Ok(next_schedule_duration(cj, now, &schedule))
    }

    /// Upstream's `cleanupFinishedJobs`: beyond the history limits, the finished Jobs
    /// that started first are deleted. Returns whether the status changed.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none()
        {
            return false;
        }
        let mut successful: Vec<&Job> = Vec::new();
        let mut failed: Vec<&Job> = Vec::new();
        for job in jobs {
            match finished(job) {
                Some("Complete") => successful.push(job),
                Some("Failed") => failed.push(job),
                _ => {}
            }
        }
        let mut updated = false;
        for (mut list, limit) in [
            (successful, spec.successful_jobs_history_limit),
            (failed, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let excess = list
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            if excess == 0 {
                continue;
            }
            list.sort_by(|a, b| by_start_time(a, b));
            for job in &list[..excess] {
                if self.delete_job(cj, job).await {
                    updated = true;
                }
            }
        }
        updated
    }

    /// Upstream's `deleteJob`: deletes the Job (its pods in the background) and its
    /// entry in the active list.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.cx.client.clone(), namespace);
        if let Err(e) = api.delete(name, &DeleteParams::background()).await {
            self.event(
                cj,
                "Warning",
                "FailedDelete",
                format!("Deleted job: {}", message(&e)),
            );
            tracing::error!(job = %name, error = %e, "error deleting job from cronjob");
            return false;
        }
        delete_from_active_list(cj, uid_of(&job.metadata));
        self.event(
            cj,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted job {name}"),
        );
        true
    }

    /// The CronJob controlling `job` in the cache (kind, name and uid matching).
    fn resolve(&self, namespace: &str, job: &Job) -> Option<String> {
        let owner = controller_of(&job.metadata)?;
        if owner.kind != "CronJob" {
            return None;
        }
        let cj = self.cron_jobs.get(namespace, &owner.name)?;
        (cj.metadata.uid.as_deref() == Some(owner.uid.as_str())).then(|| key_of(&*cj))
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_cron_job_syncs;
    let controller = Arc::new(Controller {
        cron_jobs: cx.informers.informer::<CronJob>(),
        jobs: cx.informers.informer::<Job>(),
        queue: WorkQueue::<String>::new(),
        cx,
    });
    let c = controller.clone();
    controller
        .cron_jobs
        .add_handler(move |change| match change {
            Change::Added(cj) | Change::Deleted(cj) => c.queue.add(key_of(&***cj)),
            Change::Updated { old, new } => {
                let (old_spec, new_spec) = (
                    old.spec.clone().unwrap_or_default(),
                    new.spec.clone().unwrap_or_default(),
                );
                if old_spec.schedule == new_spec.schedule
                    && old_spec.time_zone == new_spec.time_zone
                {
                    c.queue.add(key_of(&***new));
                    return;
                }
                // a new schedule: look again at its next time
                match c.parse_schedule(new, false) {
                    Ok(schedule) => {
                        let wait = next_schedule_duration(new, Timestamp::now(), &schedule);
                        c.queue
                            .add_after(key_of(&***new), wait.unwrap_or(Duration::ZERO));
                    }
                    Err(_) => c.event(
                        new,
                        "Warning",
                        "UnParseableCronJobSchedule",
                        format!("unparseable schedule for cronjob: {}", new_spec.schedule),
                    ),
                }
            }
        });
    let c = controller.clone();
    controller.jobs.add_handler(move |change| {
        let (old, new) = match change {
            Change::Added(j) | Change::Deleted(j) => (None, j),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                (Some(old), new)
            }
        };
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        if let Some(old) = old
            && controller_of(&old.metadata) != controller_of(&new.metadata)
            && let Some(key) = c.resolve(&namespace, old)
        {
            c.queue.add(key);
        }
        if let Some(key) = c.resolve(&namespace, new) {
            c.queue.add(key);
        }
    });
    Box::pin(async move {
        controller.cron_jobs.wait_synced().await;
        controller.jobs.wait_synced().await;
        let queue = controller.queue.clone();
        queue
            .run(worker_count, None, NAME, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cron_job(created: &str, last: Option<&str>, deadline: Option<i64>) -> CronJob {
        let mut spec = json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {}}}});
        if let Some(d) = deadline {
            spec["startingDeadlineSeconds"] = json!(d);
        }
        let mut cj = json!({
            "metadata": {"name": "cj", "namespace": "ns", "uid": "u1", "creationTimestamp": created},
            "spec": spec,
        });
        if let Some(last) = last {
            cj["status"] = json!({"lastScheduleTime": last});
        }
        serde_json::from_value(cj).unwrap()
    }

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *", TimeZone::UTC).unwrap()
    }

    #[test]
    fn nothing_is_due_before_the_first_time() {
        let cj = cron_job("2024-05-01T10:00:30Z", None, None);
        let (earliest, recent, missed) =
            most_recent_schedule_time(&cj, ts("2024-05-01T10:00:50Z"), &every_minute(), true)
                .unwrap();
        assert_eq!(earliest, ts("2024-05-01T10:00:30Z"));
        assert_eq!((recent, missed), (None, Missed::None));
        // the next look is at the next minute, plus upstream's padding
        let wait = next_schedule_duration(&cj, ts("2024-05-01T10:00:50Z"), &every_minute());
        assert_eq!(wait, Some(Duration::from_millis(10_100)));
    }

    #[test]
    fn one_due_time_is_found_from_the_creation_time() {
        let cj = cron_job("2024-05-01T10:00:30Z", None, None);
        let (_, recent, missed) =
            most_recent_schedule_time(&cj, ts("2024-05-01T10:01:10Z"), &every_minute(), true)
                .unwrap();
        assert_eq!(recent, Some(ts("2024-05-01T10:01:00Z")));
        assert_eq!(missed, Missed::None);
    }

    #[test]
    fn several_missed_times_give_the_latest() {
        let cj = cron_job("2024-05-01T09:00:00Z", Some("2024-05-01T10:00:00Z"), None);
        let (earliest, recent, missed) =
            most_recent_schedule_time(&cj, ts("2024-05-01T10:05:30Z"), &every_minute(), true)
                .unwrap();
        assert_eq!(earliest, ts("2024-05-01T10:00:00Z"));
        assert_eq!(recent, Some(ts("2024-05-01T10:05:00Z")));
        assert_eq!(missed, Missed::Few);
        // an irregular schedule still finds its latest time
        let weekdays = Schedule::parse("30 6-16/4 * * 1-5", TimeZone::UTC).unwrap();
        // last run Friday 2024-05-03 14:30; now Monday 2024-05-06 12:00
        let cj = cron_job("2024-05-01T00:00:00Z", Some("2024-05-03T14:30:00Z"), None);
        let (_, recent, _) =
            most_recent_schedule_time(&cj, ts("2024-05-06T12:00:00Z"), &weekdays, true).unwrap();
        assert_eq!(recent, Some(ts("2024-05-06T10:30:00Z")));
    }

    #[test]
    fn more_than_a_hundred_missed_times_are_many() {
        let cj = cron_job("2024-05-01T00:00:00Z", None, None);
        let (_, recent, missed) =
            most_recent_schedule_time(&cj, ts("2024-05-01T03:00:30Z"), &every_minute(), true)
                .unwrap();
        assert_eq!(recent, Some(ts("2024-05-01T03:00:00Z")));
        assert_eq!(missed, Missed::Many);
    }

    #[test]
    fn the_starting_deadline_bounds_the_look_back() {
        // created hours ago, but only the last 200 s count: a few missed, not many
        let cj = cron_job("2024-05-01T00:00:00Z", None, Some(200));
        let now = ts("2024-05-01T03:00:30Z");
        let (earliest, recent, missed) =
            most_recent_schedule_time(&cj, now, &every_minute(), true).unwrap();
        assert_eq!(earliest, ts("2024-05-01T02:57:10Z"));
        assert_eq!(recent, Some(ts("2024-05-01T03:00:00Z")));
        assert_eq!(missed, Missed::Few);
        // without the deadline (when requeueing) the creation time counts
        let (earliest, _, missed) =
            most_recent_schedule_time(&cj, now, &every_minute(), false).unwrap();
        assert_eq!(earliest, ts("2024-05-01T00:00:00Z"));
        assert_eq!(missed, Missed::Many);
    }

    #[test]
    fn an_impossible_date_is_an_invalid_schedule() {
        let feb31 = Schedule::parse("59 23 31 2 *", TimeZone::UTC).unwrap();
        let cj = cron_job("2024-05-01T00:00:00Z", None, None);
        let err =
            most_recent_schedule_time(&cj, ts("2024-05-01T03:00:00Z"), &feb31, true).unwrap_err();
        assert_eq!(
            err,
            "time difference between two schedules is less than 1 second"
        );
        assert_eq!(
            next_schedule_duration(&cj, ts("2024-05-01T03:00:00Z"), &feb31),
            None
        );
    }

    #[test]
    fn jobs_are_named_by_minute_and_annotated_in_the_zone() {
        let mut cj = cron_job("2024-05-01T00:00:00Z", None, None);
        let at = ts("2024-05-01T10:01:00Z");
        assert_eq!(job_name("cj", at), format!("cj-{}", at.as_second() / 60));
        let job = job_from_template(&cj, at).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("cj-28575961"));
        let annotations = job.metadata.annotations.unwrap();
        assert_eq!(
            annotations[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2024-05-01T10:01:00Z"
        );
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", "u1"));
        assert_eq!(owner.controller, Some(true));
        cj.spec.as_mut().unwrap().time_zone = Some("Asia/Kolkata".into());
        let job = job_from_template(&cj, at).unwrap();
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2024-05-01T15:31:00+05:30"
        );
    }

    #[test]
    fn the_oldest_started_jobs_go_first() {
        let job = |name: &str, start: Option<&str>| -> Job {
            let mut j = json!({"metadata": {"name": name}, "status": {}});
            if let Some(s) = start {
                j["status"]["startTime"] = json!(s);
            }
            serde_json::from_value(j).unwrap()
        };
        let mut jobs = [
            job("c", None),
            job("b", Some("2024-05-01T10:00:00Z")),
            job("a", Some("2024-05-01T10:00:00Z")),
            job("d", Some("2024-05-01T09:00:00Z")),
        ];
        jobs.sort_by(by_start_time);
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
    }
}
