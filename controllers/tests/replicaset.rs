//! The ReplicaSet and ReplicationController controllers against a real in-process
//! apiserver, scheduler and fake kubelet: pods are created with controller
//! references and events, replaced when deleted, deleted when scaled down, orphans
//! are adopted and relabelled pods released, and status follows the kubelet.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use support::{controlled_by, controller_uid, create, events_about, ready_cluster, wait_for};

fn replica_set(name: &str, replicas: i32, app: &str) -> ReplicaSet {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

/// The active pods controlled by the object with `uid`.
async fn owned_pods(pods: &Api<Pod>, uid: &str) -> Vec<Pod> {
    controlled_by(pods, uid)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Waits until exactly `count` active pods are controlled by `uid`.
async fn wait_owned(pods: &Api<Pod>, uid: &str, count: usize, what: &str) -> Vec<Pod> {
    wait_for(what, || async move {
        let owned = owned_pods(pods, uid).await;
        (owned.len() == count).then_some(owned)
    })
    .await
}

/// Waits until the controller's pod cache holds every pod created so far: a probe
/// ReplicaSet's status counts its pod, created after them, only once the cache has it
/// (the pods' watch delivers in order).
async fn wait_pod_cache_caught_up(sets: &Api<ReplicaSet>) {
    sets.create(&PostParams::default(), &replica_set("probe", 1, "probe"))
        .await
        .unwrap();
    wait_for("the controller's pod cache caught up", || async {
        let probe = sets.get("probe").await.unwrap();
        (probe.status?.replicas == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_creates_replaces_and_scales_down_its_pods() {
    let c = ready_cluster(&["replicaset"], 1).await;
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let rs = sets
        .create(&PostParams::default(), &replica_set("web", 3, "web"))
        .await
        .unwrap();
    let uid = rs.uid().unwrap();

    let created = wait_owned(&pods, &uid, 3, "three pods owned by the ReplicaSet").await;
    for pod in &created {
        assert!(pod.name_any().starts_with("web-"), "{}", pod.name_any());
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
        let reference = &pod.owner_references()[0];
        assert_eq!(
            (
                reference.kind.as_str(),
                reference.api_version.as_str(),
                reference.name.as_str()
            ),
            ("ReplicaSet", "apps/v1", "web")
        );
        assert_eq!(reference.block_owner_deletion, Some(true));
    }
    let names: BTreeSet<String> = created.iter().map(|p| p.name_any()).collect();
    let messages = wait_for("three SuccessfulCreate events", || {
        let (admin, uid) = (c.admin.clone(), uid.clone());
        async move {
            let found = events_about(&admin, &uid, "SuccessfulCreate").await;
            (found.len() >= 3).then_some(found)
        }
    })
    .await;
    for event in &messages {
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert_eq!(
            event.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("replicaset-controller")
        );
    }
    let reported: BTreeSet<String> = messages
        .iter()
        .filter_map(|e| e.message.as_deref()?.strip_prefix("Created pod: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(reported, names);

    // the fake kubelet runs them: ready and (no minReadySeconds) available
    wait_for("status with 3 ready and available replicas", || {
        let sets = sets.clone();
        async move {
            let rs = sets.get("web").await.unwrap();
            let s = rs.status?;
            (s.replicas == 3
                && s.fully_labeled_replicas == Some(3)
                && s.ready_replicas == Some(3)
                && s.available_replicas == Some(3)
                && s.observed_generation == rs.metadata.generation)
                .then_some(())
        }
    })
    .await;

    // a deleted pod is replaced
    let victim = created[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("a replacement for the deleted pod", || {
        let (pods, uid, victim) = (pods.clone(), uid.clone(), victim.clone());
        async move {
            let owned = owned_pods(&pods, &uid).await;
            (owned.len() == 3 && owned.iter().all(|p| p.name_any() != victim)).then_some(())
        }
    })
    .await;

    // scaling down to 1 deletes 2
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_owned(&pods, &uid, 1, "one pod left after scaling down").await;
    let deleted = wait_for("two SuccessfulDelete events", || {
        let (admin, uid) = (c.admin.clone(), uid.clone());
        async move {
            let found = events_about(&admin, &uid, "SuccessfulDelete").await;
            (found.len() >= 2).then_some(found)
        }
    })
    .await;
    assert!(deleted.iter().all(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.starts_with("Deleted pod: web-"))
    }));
    wait_for("status with 1 replica", || {
        let sets = sets.clone();
        async move {
            let s = sets.get("web").await.unwrap().status?;
            (s.replicas == 1 && s.ready_replicas == Some(1)).then_some(())
        }
    })
    .await;
    // and no more than asked are ever made: the count stays at 1
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(owned_pods(&pods, &uid).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_and_relabelled_pods_released() {
    let c = ready_cluster(&["replicaset"], 1).await;
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let orphan: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "orphan", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    // a ReplicaSet synced before the orphan reaches the cache would make two pods
    wait_pod_cache_caught_up(&sets).await;
    let rs = sets
        .create(&PostParams::default(), &replica_set("api", 2, "api"))
        .await
        .unwrap();
    let uid = rs.uid().unwrap();

    let owned = wait_owned(&pods, &uid, 2, "the orphan adopted and one pod created").await;
    assert!(owned.iter().any(|p| p.name_any() == "orphan"));
    let adopted = pods.get("orphan").await.unwrap();
    let reference = &adopted.owner_references()[0];
    assert_eq!(reference.controller, Some(true));
    assert_eq!(reference.block_owner_deletion, Some(true));
    // only one pod was created: the orphan counted
    let created = events_about(&c.admin, &uid, "SuccessfulCreate").await;
    assert!(created.len() <= 1, "{created:?}");

    // a pod relabelled out of the selector is released and replaced
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "elsewhere"}}})),
    )
    .await
    .unwrap();
    wait_for("the relabelled pod released", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("orphan").await.unwrap();
            controller_uid(&pod).is_none().then_some(())
        }
    })
    .await;
    let owned = wait_owned(&pods, &uid, 2, "a replacement for the released pod").await;
    assert!(owned.iter().all(|p| p.name_any() != "orphan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_keeps_its_pods_and_waits_min_ready_seconds() {
    let c = ready_cluster(&["replicationcontroller"], 1).await;
    let rcs: Api<ReplicationController> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": 2,
            "minReadySeconds": 3,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let uid = rc.uid().unwrap();

    let owned = wait_owned(
        &pods,
        &uid,
        2,
        "two pods owned by the ReplicationController",
    )
    .await;
    let reference = &owned[0].owner_references()[0];
    assert_eq!(
        (reference.kind.as_str(), reference.api_version.as_str()),
        ("ReplicationController", "v1")
    );
    let created = wait_for("SuccessfulCreate events", || {
        let (admin, uid) = (c.admin.clone(), uid.clone());
        async move {
            let found = events_about(&admin, &uid, "SuccessfulCreate").await;
            (found.len() >= 2).then_some(found)
        }
    })
    .await;
    assert_eq!(
        created[0]
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("replication-controller")
    );

    // ready first, available only after minReadySeconds
    let ready = wait_for("2 ready replicas", || {
        let rcs = rcs.clone();
        async move {
            let s = rcs.get("legacy").await.unwrap().status?;
            (s.ready_replicas == Some(2)).then_some(s)
        }
    })
    .await;
    assert!(ready.available_replicas.unwrap_or(0) < 2, "{ready:?}");
    wait_for("2 available replicas", || {
        let rcs = rcs.clone();
        async move {
            let s = rcs.get("legacy").await.unwrap().status?;
            (s.available_replicas == Some(2)).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creates_are_reported_until_they_succeed() {
    let c = ready_cluster(&["replicaset"], 1).await;
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let mut rs = replica_set("needs-sa", 2, "needs-sa");
    // the ServiceAccount admission plugin refuses pods of an account that is missing
    rs.spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
        .unwrap()
        .service_account_name = Some("robot".into());
    let rs = sets.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.uid().unwrap();

    let failed = wait_for("a FailedCreate event", || {
        let (admin, uid) = (c.admin.clone(), uid.clone());
        async move {
            events_about(&admin, &uid, "FailedCreate")
                .await
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let message = failed.message.unwrap_or_default();
    assert!(
        message.starts_with("Error creating: ") && message.contains("robot"),
        "{message}"
    );
    let condition = wait_for("a ReplicaFailure condition", || {
        let sets = sets.clone();
        async move {
            let status = sets.get("needs-sa").await.unwrap().status?;
            status
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "ReplicaFailure")
        }
    })
    .await;
    assert_eq!(condition.status, "True");
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert!(condition.message.unwrap_or_default().contains("robot"));
    assert!(owned_pods(&pods, &uid).await.is_empty());

    // once the account exists the pods are created and the condition goes away
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "default");
    create(
        &accounts,
        serde_json::json!({"metadata": {"name": "robot"}}),
    )
    .await;
    wait_owned(&pods, &uid, 2, "pods created once the account exists").await;
    wait_for("the ReplicaFailure condition removed", || {
        let sets = sets.clone();
        async move {
            let status = sets.get("needs-sa").await.unwrap().status?;
            let failing = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "ReplicaFailure");
            (!failing && status.replicas == 2).then_some(())
        }
    })
    .await;
}
