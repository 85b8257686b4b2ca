//! The CronJob and TTL-after-finished controllers against a real apiserver (no Job
//! controller runs: Jobs are finished by hand through their status).

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, controlled_by, create, wait_for, wait_for_within};

const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn job_template() -> serde_json::Value {
    json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}]}}}})
}

/// Waits for an event about `name` with `reason` and `message` in `namespace`.
async fn wait_for_event(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    let events: Api<Event> = Api::namespaced(admin.clone(), namespace);
    let what = format!("event {reason} {message:?} about {name}");
    wait_for(&what, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason)
                        && e.message.as_deref() == Some(message)
                })
                .map(|_| ())
        }
    })
    .await;
}

/// The Jobs in `default` controlled by the object with `uid`, by name.
async fn jobs_of(jobs: &Api<Job>, uid: &str) -> Vec<Job> {
    let mut owned = controlled_by(jobs, uid).await;
    owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    owned
}

/// Marks a Job finished (`Complete` or `Failed`) at `at`, started a minute before.
async fn finish(jobs: &Api<Job>, name: &str, condition: &str, at: jiff::Timestamp) {
    let started = at - jiff::SignedDuration::from_secs(60);
    let mut status = json!({
        "startTime": started.to_string(),
        "conditions": [{"type": condition, "status": "True", "lastTransitionTime": at.to_string()}],
    });
    if condition == "Complete" {
        status["completionTime"] = json!(at.to_string());
        status["succeeded"] = json!(1);
    } else {
        status["failed"] = json!(1);
    }
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_schedule_time_runs_a_job_at_once() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["cronjob"])
    })
    .await;
    let cron_jobs: Api<CronJob> = Api::namespaced(c.admin.clone(), "default");
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "every-minute"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {
            "metadata": {"labels": {"app": "cron"}, "annotations": {"note": "kept"}},
            "spec": job_template()["spec"]}}
    }))
    .unwrap();
    let cj = cron_jobs.create(&PostParams::default(), &cj).await.unwrap();
    let uid = cj.metadata.uid.clone().unwrap();
    // as if the last run was three minutes ago: the current minute is due now, without
    // waiting for the next minute to come (upstream counts from lastScheduleTime)
    let now = jiff::Timestamp::now();
    let three_ago =
        jiff::Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60) - 180)
            .unwrap();
    cron_jobs
        .patch_status(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": three_ago.to_string()}})),
        )
        .await
        .unwrap();

    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    let job = wait_for("the cronjob's job", || {
        let jobs = jobs.clone();
        let uid = uid.clone();
        async move { jobs_of(&jobs, &uid).await.into_iter().next() }
    })
    .await;
    let name = job.metadata.name.clone().unwrap();
    let annotations = job.metadata.annotations.clone().unwrap();
    // no timeZone: the scheduled time is written in UTC, RFC 3339
    let scheduled = &annotations[SCHEDULED];
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    let at: jiff::Timestamp = scheduled.parse().unwrap();
    assert!(
        at > three_ago && at <= jiff::Timestamp::now(),
        "{scheduled}"
    );
    // the name carries the scheduled time in minutes since the epoch
    assert_eq!(name, format!("every-minute-{}", at.as_second() / 60));
    assert_eq!(annotations["note"], "kept");
    assert_eq!(job.metadata.labels.unwrap()["app"], "cron");
    let owner = &job.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.api_version.as_str()),
        ("CronJob", "batch/v1")
    );
    assert_eq!(owner.block_owner_deletion, Some(true));

    // the status lists it as active, at its schedule time
    let status = wait_for("the cronjob's status", || {
        let cron_jobs = cron_jobs.clone();
        let name = name.clone();
        async move {
            let s = cron_jobs.get("every-minute").await.unwrap().status?;
            s.active
                .iter()
                .flatten()
                .any(|r| r.name.as_deref() == Some(name.as_str()))
                .then_some(s)
        }
    })
    .await;
    let last = status.last_schedule_time.unwrap().0;
    assert!(last >= at, "{last} before {at}");
    wait_for_event(
        &c.admin,
        "default",
        "every-minute",
        "SuccessfulCreate",
        &format!("Created job {name}"),
    )
    .await;

    // once the Job finishes it leaves the active list and counts as the last success
    let done_at = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
    finish(&jobs, &name, "Complete", done_at).await;
    wait_for("the finished job to leave the active list", || {
        let cron_jobs = cron_jobs.clone();
        let name = name.clone();
        async move {
            let s = cron_jobs.get("every-minute").await.unwrap().status?;
            let gone = !s
                .active
                .iter()
                .flatten()
                .any(|r| r.name.as_deref() == Some(name.as_str()));
            (gone && s.last_successful_time.is_some_and(|t| t.0 == done_at)).then_some(())
        }
    })
    .await;
    wait_for_event(
        &c.admin,
        "default",
        "every-minute",
        "SawCompletedJob",
        &format!("Saw completed job: {name}, condition: Complete"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limits_delete_the_oldest_finished_jobs() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["cronjob"])
    })
    .await;
    let cron_jobs: Api<CronJob> = Api::namespaced(c.admin.clone(), "default");
    // suspended: it runs nothing itself, but still keeps its history in check
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "history"},
        "spec": {"schedule": "@hourly", "suspend": true,
            "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1,
            "jobTemplate": job_template()}
    }))
    .unwrap();
    let cj = cron_jobs.create(&PostParams::default(), &cj).await.unwrap();
    let uid = cj.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    let base = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 3600).unwrap();
    let runs = [
        ("ok-1", Some("Complete"), 0),
        ("ok-2", Some("Complete"), 60),
        ("ok-3", Some("Complete"), 120),
        ("bad-1", Some("Failed"), 30),
        ("bad-2", Some("Failed"), 90),
        ("running", None, 0),
    ];
    for (name, _, _) in &runs {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": "history",
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": job_template()["spec"],
        }))
        .unwrap();
        jobs.create(&PostParams::default(), &job).await.unwrap();
    }
    for (name, condition, offset) in &runs {
        if let Some(condition) = condition {
            let at = base + jiff::SignedDuration::from_secs(*offset);
            finish(&jobs, name, condition, at).await;
        }
    }
    wait_for("only the newest finished jobs to remain", || {
        let jobs = jobs.clone();
        let uid = uid.clone();
        async move {
            let names: Vec<String> = jobs_of(&jobs, &uid)
                .await
                .into_iter()
                .filter_map(|j| j.metadata.name)
                .collect();
            (names == ["bad-2", "ok-3", "running"]).then_some(())
        }
    })
    .await;
    for name in ["ok-1", "ok-2", "bad-1"] {
        wait_for_event(
            &c.admin,
            "default",
            "history",
            "SuccessfulDelete",
            &format!("Deleted job {name}"),
        )
        .await;
    }
    // the latest completion is the last success, though that Job was never active
    let newest = base + jiff::SignedDuration::from_secs(120);
    wait_for("lastSuccessfulTime", || {
        let cron_jobs = cron_jobs.clone();
        async move {
            let s = cron_jobs.get("history").await.unwrap().status?;
            s.last_successful_time
                .is_some_and(|t| t.0 == newest)
                .then_some(())
        }
    })
    .await;
    // a Job it did not create and does not list as active is reported
    wait_for_event(
        &c.admin,
        "default",
        "history",
        "UnexpectedJob",
        "Saw a job that the controller did not create or forgot: running",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_once_its_ttl_expires() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["ttl-after-finished", "garbagecollector"])
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    for (name, ttl) in [("short", 1), ("long", 3600), ("unfinished", 0)] {
        let mut spec = job_template()["spec"].clone();
        spec["ttlSecondsAfterFinished"] = json!(ttl);
        let job: Job =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        jobs.create(&PostParams::default(), &job).await.unwrap();
    }
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
    finish(&jobs, "short", "Complete", now).await;
    finish(&jobs, "long", "Failed", now).await;
    wait_for("the expired job to be deleted", || {
        let jobs = jobs.clone();
        async move { jobs.get_opt("short").await.unwrap().is_none().then_some(()) }
    })
    .await;
    // the others keep: one's TTL is an hour away, the other has not finished
    for name in ["long", "unfinished"] {
        let job = jobs.get(name).await.unwrap();
        assert!(job.metadata.deletion_timestamp.is_none(), "{name} deleted");
    }
}

/// A new CronJob runs nothing until its schedule's next time after its creation; at
/// that real minute boundary it makes `<name>-<minutes since the epoch>` and records
/// the minute as `status.lastScheduleTime` (upstream's `getJobName` and
/// `mostRecentScheduleTime` from the creation timestamp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cron_job_fires_at_the_next_minute_boundary() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["cronjob"])
    })
    .await;
    let cron_jobs: Api<CronJob> = Api::namespaced(c.admin.clone(), "default");
    let cj: CronJob = create(
        &cron_jobs,
        json!({
            "metadata": {"name": "on-the-minute"},
            "spec": {"schedule": "* * * * *", "jobTemplate": job_template()}
        }),
    )
    .await;
    let uid = cj.metadata.uid.clone().unwrap();
    let created = cj
        .metadata
        .creation_timestamp
        .clone()
        .unwrap()
        .0
        .as_second();
    // the first minute boundary strictly after the creation
    let minute = (created.div_euclid(60) + 1) * 60;
    let expected_name = format!("on-the-minute-{}", minute / 60);

    // up to a minute until the boundary, plus slack for a loaded machine
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    let job = wait_for_within(
        "the job of the next minute",
        Duration::from_secs(120),
        || {
            let jobs = jobs.clone();
            let uid = uid.clone();
            async move { jobs_of(&jobs, &uid).await.into_iter().next() }
        },
    )
    .await;
    assert_eq!(job.metadata.name.as_deref(), Some(expected_name.as_str()));
    // made at the boundary, not before it
    let job_created = job
        .metadata
        .creation_timestamp
        .clone()
        .unwrap()
        .0
        .as_second();
    assert!(
        job_created >= minute,
        "made at {job_created}, due at {minute}"
    );
    assert_eq!(
        job.metadata.annotations.unwrap()[SCHEDULED],
        jiff::Timestamp::from_second(minute).unwrap().to_string()
    );

    let last = wait_for("lastScheduleTime", || {
        let cron_jobs = cron_jobs.clone();
        async move {
            let status = cron_jobs.get("on-the-minute").await.unwrap().status?;
            status.last_schedule_time.map(|t| t.0)
        }
    })
    .await;
    assert_eq!(last.as_second(), minute);
    // only the one Job: the next minute has not come yet, or makes the next name
    let all = jobs_of(&jobs, &uid).await;
    assert!(
        all.iter().all(|j| {
            let name = j.metadata.name.clone().unwrap_or_default();
            name == expected_name || name == format!("on-the-minute-{}", minute / 60 + 1)
        }),
        "{:?}",
        all.iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}
