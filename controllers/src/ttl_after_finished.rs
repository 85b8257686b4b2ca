//! The TTL-after-finished controller: deletes a finished Job
//! `spec.ttlSecondsAfterFinished` seconds after its `Complete` or `Failed` condition
//! became true, as upstream's `ttlafterfinished` controller.
//!
//! A finished Job with a TTL is queued; until it expires it is queued again for the
//! moment it does. Before deleting, the Job is read afresh from the apiserver (the TTL
//! may have changed), then deleted with foreground propagation and a uid
//! precondition, so its pods go first and a new Job of the same name is spared.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name (and its service account's).
pub const NAME: &str = "ttl-after-finished-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "ttl-after-finished-controller";

/// Why a Job could not be cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A finished Job's condition has no transition time.
    #[error("unable to find the time when the Job {0} finished")]
    NoFinishTime(String),
}

/// Whether the Job has finished and has a TTL (upstream's `needsCleanup`).
fn needs_cleanup(job: &Job) -> bool {
    job.spec
        .as_ref()
        .is_some_and(|s| s.ttl_seconds_after_finished.is_some())
        && finish_condition(job).is_some()
}

fn finish_condition(job: &Job) -> Option<&k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// When a finished Job with a TTL expires (upstream's `getFinishAndExpireTime`).
fn expire_at(job: &Job) -> Result<Option<Timestamp>, Error> {
    let ttl = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished);
    let (Some(ttl), Some(condition)) = (ttl, finish_condition(job)) else {
        return Ok(None);
    };
    let key = format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or_default(),
        job.metadata.name.as_deref().unwrap_or_default()
    );
    let finished = condition
        .last_transition_time
        .as_ref()
        .ok_or(Error::NoFinishTime(key))?;
    Ok(Some(
        finished
            .0
            .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
            .unwrap_or(Timestamp::MAX),
    ))
}

/// How long until `expires` (zero or less: it has expired).
fn time_left(expires: Timestamp, now: Timestamp) -> Option<Duration> {
    Duration::try_from(expires.duration_since(now))
        .ok()
        .filter(|d| !d.is_zero())
}

struct Controller {
    cx: Context,
    jobs: Informer<Job>,
    queue: Arc<WorkQueue<String>>,
}

impl Controller {
    /// Upstream's `processTTL`: whether the Job has expired; if it will later, it is
    /// queued for then.
    fn expired(&self, job: &Job, now: Timestamp) -> Result<bool, Error> {
        if job.metadata.deletion_timestamp.is_some() || !needs_cleanup(job) {
            return Ok(false);
        }
        let Some(expires) = expire_at(job)? else {
            return Ok(false);
        };
        match time_left(expires, now) {
            None => Ok(true),
            Some(wait) => {
                self.queue.add_after(key_of(job), wait);
                Ok(false)
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(job) = self.jobs.get(namespace, name) else {
            return Ok(());
        };
        if !self.expired(&job, Timestamp::now())? {
            return Ok(());
        }
        // the cache may be stale: decide on the Job as it is now
        let api: Api<Job> = Api::namespaced(self.cx.client.clone(), namespace);
        let Some(fresh) = api.get_opt(name).await? else {
            return Ok(());
        };
        if !self.expired(&fresh, Timestamp::now())? {
            return Ok(());
        }
        tracing::debug!(job = %key, "cleaning up job");
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_ttl_after_finished_syncs;
    let controller = Arc::new(Controller {
        jobs: cx.informers.informer::<Job>(),
        queue: WorkQueue::<String>::new(),
        cx,
    });
    let queue = controller.queue.clone();
    controller.jobs.add_handler(move |change| {
        let job = match change {
            Change::Added(j) | Change::Updated { new: j, .. } => j,
            Change::Deleted(_) => return,
        };
        if job.metadata.deletion_timestamp.is_none() && needs_cleanup(job) {
            queue.add(key_of(&***job));
        }
    });
    Box::pin(async move {
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

    fn job(ttl: Option<i32>, condition: Option<(&str, &str, &str)>) -> Job {
        let mut j = json!({"metadata": {"name": "j", "namespace": "ns"}, "spec": {"template": {}}});
        if let Some(ttl) = ttl {
            j["spec"]["ttlSecondsAfterFinished"] = json!(ttl);
        }
        if let Some((type_, status, at)) = condition {
            j["status"] = json!({"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2024-05-01T09:00:00Z"},
                {"type": type_, "status": status, "lastTransitionTime": at}
            ]});
        }
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn only_finished_jobs_with_a_ttl_need_cleanup() {
        assert!(!needs_cleanup(&job(
            None,
            Some(("Complete", "True", "2024-05-01T10:00:00Z"))
        )));
        assert!(!needs_cleanup(&job(Some(5), None)));
        assert!(!needs_cleanup(&job(
            Some(5),
            Some(("Complete", "False", "2024-05-01T10:00:00Z"))
        )));
        assert!(needs_cleanup(&job(
            Some(5),
            Some(("Complete", "True", "2024-05-01T10:00:00Z"))
        )));
        assert!(needs_cleanup(&job(
            Some(0),
            Some(("Failed", "True", "2024-05-01T10:00:00Z"))
        )));
    }

    #[test]
    fn a_job_expires_its_ttl_after_the_finish_condition() {
        let j = job(Some(30), Some(("Complete", "True", "2024-05-01T10:00:00Z")));
        let expires = expire_at(&j).unwrap().unwrap();
        assert_eq!(
            expires,
            "2024-05-01T10:00:30Z".parse::<Timestamp>().unwrap()
        );
        let now: Timestamp = "2024-05-01T10:00:20Z".parse().unwrap();
        assert_eq!(time_left(expires, now), Some(Duration::from_secs(10)));
        let later: Timestamp = "2024-05-01T10:00:30Z".parse().unwrap();
        assert_eq!(time_left(expires, later), None);
        // a huge TTL saturates rather than overflowing
        let j = job(
            Some(i32::MAX),
            Some(("Failed", "True", "2024-05-01T10:00:00Z")),
        );
        assert!(expire_at(&j).unwrap().unwrap() > now);
    }
}
