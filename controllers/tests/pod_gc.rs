//! The pod garbage collector against a real apiserver: terminated pods beyond the
//! threshold, pods bound to a node that does not exist, and terminating pods that were
//! never scheduled.

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

/// The orphan check waits out upstream's 40 s quarantine after a 20 s collection
/// period, so it gets a longer deadline than [`support::DEADLINE`].
async fn wait_long<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pod(name: &str, node: Option<&str>, finalizer: bool) -> Pod {
    let mut p = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    if let Some(node) = node {
        p["spec"]["nodeName"] = json!(node);
    }
    if finalizer {
        p["metadata"]["finalizers"] = json!(["example.com/hold"]);
    }
    serde_json::from_value(p).unwrap()
}

fn condition(pod: &Pod, type_: &str) -> Option<(String, String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_pods_beyond_the_threshold_go_oldest_first() {
    let mut spec = Spec {
        scheduler: false,
        ..Spec::new(&["podgc"])
    };
    spec.settings.terminated_pod_gc_threshold = 2;
    let c = cluster(spec).await;
    c.wait_default_account("default").await;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    // created in name order, so the oldest are the first names (ties go by name too)
    for name in ["done-0", "done-1", "done-2", "done-3", "waiting"] {
        pods.create(&PostParams::default(), &pod(name, None, false))
            .await
            .unwrap();
    }
    for name in ["done-0", "done-1", "done-2", "done-3"] {
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
    }
    wait_for("two terminated pods to remain", || {
        let pods = pods.clone();
        async move {
            let mut names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            names.sort();
            (names == ["done-2", "done-3", "waiting"]).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_missing_node_and_unscheduled_terminating_pods_are_failed_and_deleted() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["podgc"])
    })
    .await;
    let nodes = c.add_nodes("node", 1).await;
    c.wait_default_account("default").await;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    // finalizers keep the pods readable after the collector deletes them
    for (name, node) in [
        ("orphan", Some("vanished-node")),
        ("healthy", Some(nodes[0].as_str())),
        ("unscheduled", None),
    ] {
        pods.create(&PostParams::default(), &pod(name, node, true))
            .await
            .unwrap();
    }
    // a deleted pod that was never bound: only its finalizer keeps it
    pods.delete("unscheduled", &Default::default())
        .await
        .unwrap();
    wait_for("the unscheduled terminating pod to be failed", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("unscheduled").await.unwrap();
            (phase(&p) == "Failed").then_some(())
        }
    })
    .await;

    let orphan = wait_long("the orphaned pod to be failed and deleted", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("orphan").await.unwrap();
            (p.metadata.deletion_timestamp.is_some()).then_some(p)
        }
    })
    .await;
    assert_eq!(phase(&orphan), "Failed");
    assert_eq!(
        condition(&orphan, "DisruptionTarget"),
        Some((
            "True".to_owned(),
            "DeletionByPodGC".to_owned(),
            "PodGC: node no longer exists".to_owned()
        ))
    );
    // the pod on a node that exists is left alone
    let healthy = pods.get("healthy").await.unwrap();
    assert!(healthy.metadata.deletion_timestamp.is_none());
    assert!(condition(&healthy, "DisruptionTarget").is_none());

    // with the finalizers gone, the deletions complete
    for name in ["orphan", "unscheduled", "healthy"] {
        pods.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    }
    for name in ["orphan", "unscheduled"] {
        wait_for("the pod to be gone", || {
            let pods = pods.clone();
            async move { pods.get_opt(name).await.unwrap().is_none().then_some(()) }
        })
        .await;
    }
}
