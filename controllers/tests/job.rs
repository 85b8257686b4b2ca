//! The Job controller against a real apiserver, with pods the fake kubelet runs to
//! an exit code (`fake-kubelet.rkube.io/exit-code`): a Job whose pods succeed
//! completes, one whose pods fail stops at its backoff limit, and an Indexed Job
//! completes every index.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use support::{Cluster, ready_cluster, wait_for};

const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// A Job whose pods exit with `exit_code` after `run_seconds`.
fn job(name: &str, spec: Value, exit_code: i32, run_seconds: u32) -> Job {
    let mut spec = spec;
    spec["template"] = json!({
        "metadata": {"annotations": {
            "fake-kubelet.rkube.io/exit-code": exit_code.to_string(),
            "fake-kubelet.rkube.io/run-seconds": run_seconds.to_string(),
        }},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox"}]}
    });
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn condition(job: &Job, type_: &str) -> Option<k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

async fn pods_of(c: &Cluster, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

async fn event_reasons(c: &Cluster, job: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Job"))
        .filter(|e| e.involved_object.name.as_deref() == Some(job))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_pods_succeed_completes() {
    let c = ready_cluster(&["job"], 1).await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("ok", json!({"completions": 3, "parallelism": 2}), 0, 1),
    )
    .await
    .unwrap();
    let done = wait_for("the Job to complete", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("ok").await.unwrap();
            condition(&j, "Complete").map(|_| j)
        }
    })
    .await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, None);
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let interim = condition(&done, "SuccessCriteriaMet").expect("interim condition kept");
    assert_eq!(interim.reason.as_deref(), Some("CompletionsReached"));
    let complete = condition(&done, "Complete").unwrap();
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    let uncounted = status.uncounted_terminated_pods.unwrap_or_default();
    assert!(uncounted.succeeded.unwrap_or_default().is_empty());

    // every pod ran, was counted and let go of the tracking finalizer
    let pods = wait_for("the finalizers removed", || async {
        let pods = pods_of(&c, "ok").await;
        pods.iter()
            .all(|p| {
                !p.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == TRACKING_FINALIZER)
            })
            .then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 3, "no more pods than completions");
    for pod in &pods {
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded")
        );
        assert!(pod.metadata.name.as_deref().unwrap().starts_with("ok-"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "ok");
        assert_eq!(
            labels["batch.kubernetes.io/controller-uid"],
            done.metadata.uid.clone().unwrap()
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    }
    let reasons = wait_for("the Completed event", || async {
        let reasons = event_reasons(&c, "ok").await;
        reasons
            .iter()
            .any(|(r, m)| r == "Completed" && m == "Job completed")
            .then_some(reasons)
    })
    .await;
    assert!(
        reasons
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: ok-")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_pods_fail_stops_at_the_backoff_limit() {
    let c = ready_cluster(&["job"], 1).await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    // the first failure delays the replacement by 10 s; the second exceeds the limit
    jobs.create(
        &PostParams::default(),
        &job("bad", json!({"completions": 1, "backoffLimit": 1}), 3, 0),
    )
    .await
    .unwrap();
    let failed = wait_for("the Job to fail", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("bad").await.unwrap();
            condition(&j, "Failed").map(|_| j)
        }
    })
    .await;
    let status = failed.status.clone().unwrap();
    assert_eq!(status.failed, Some(2), "backoffLimit 1 allows one retry");
    assert_eq!(status.succeeded, None);
    let cond = condition(&failed, "Failed").unwrap();
    assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        cond.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    let target = condition(&failed, "FailureTarget").expect("interim condition kept");
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(condition(&failed, "Complete").is_none());

    let pods = pods_of(&c, "bad").await;
    assert_eq!(pods.len(), 2, "no pod after the limit");
    for pod in &pods {
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed")
        );
        let finalizers = pod.metadata.finalizers.clone().unwrap_or_default();
        assert!(!finalizers.iter().any(|f| f == TRACKING_FINALIZER));
    }
    wait_for("the BackoffLimitExceeded event", || async {
        event_reasons(&c, "bad")
            .await
            .iter()
            .any(|(r, m)| {
                r == "BackoffLimitExceeded" && m == "Job has reached the specified backoff limit"
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_completes_every_index() {
    let c = ready_cluster(&["job"], 1).await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
            0,
            1,
        ),
    )
    .await
    .unwrap();
    let done = wait_for("the Indexed Job to complete", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("idx").await.unwrap();
            condition(&j, "Complete").map(|_| j)
        }
    })
    .await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    let pods = pods_of(&c, "idx").await;
    let mut indexes: Vec<String> = pods
        .iter()
        .map(|p| {
            let index = p.metadata.annotations.as_ref().unwrap()
                ["batch.kubernetes.io/job-completion-index"]
                .clone();
            let labels = p.metadata.labels.as_ref().unwrap();
            assert_eq!(labels["batch.kubernetes.io/job-completion-index"], index);
            let name = p.metadata.name.as_deref().unwrap();
            assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
            let spec = p.spec.as_ref().unwrap();
            assert_eq!(
                spec.hostname.as_deref(),
                Some(format!("idx-{index}").as_str())
            );
            let env = spec.containers[0].env.clone().unwrap_or_default();
            assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
            index
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, vec!["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_job_has_no_pods_until_resumed() {
    let c = ready_cluster(&["job"], 1).await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("later", json!({"completions": 1, "suspend": true}), 0, 0),
    )
    .await
    .unwrap();
    let suspended = wait_for("the Suspended condition", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("later").await.unwrap();
            condition(&j, "Suspended").map(|_| j)
        }
    })
    .await;
    let cond = condition(&suspended, "Suspended").unwrap();
    assert_eq!(cond.reason.as_deref(), Some("JobSuspended"));
    assert!(suspended.status.unwrap().start_time.is_none());
    assert!(pods_of(&c, "later").await.is_empty());

    jobs.patch(
        "later",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    let done = wait_for("the resumed Job to complete", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("later").await.unwrap();
            condition(&j, "Complete").map(|_| j)
        }
    })
    .await;
    let resumed = done
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Suspended").cloned())
        .unwrap();
    assert_eq!(
        (resumed.status.as_str(), resumed.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    assert!(done.status.unwrap().start_time.is_some());
    let reasons: Vec<String> = event_reasons(&c, "later")
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(reasons.contains(&"Suspended".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"Resumed".to_owned()), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_job_rule_fails_the_job_at_the_first_matching_exit_code() {
    let c = ready_cluster(&["job"], 1).await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "strict",
            json!({"completions": 2, "parallelism": 1, "backoffLimit": 6,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}
            ]}}),
            42,
            0,
        ),
    )
    .await
    .unwrap();
    let failed = wait_for("the Job to fail by its policy", || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("strict").await.unwrap();
            condition(&j, "Failed").map(|_| j)
        }
    })
    .await;
    let cond = condition(&failed, "Failed").unwrap();
    assert_eq!(cond.reason.as_deref(), Some("PodFailurePolicy"));
    let message = cond.message.unwrap();
    assert!(
        message.starts_with("Container main for pod default/strict-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    // the first failure decided: no retry
    assert_eq!(failed.status.unwrap().failed, Some(1));
    assert_eq!(pods_of(&c, "strict").await.len(), 1);
}
