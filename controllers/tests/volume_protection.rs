//! The PVC and PV protection controllers against a real apiserver: a claim gets its
//! finalizer, and once deleted stays until the pod using it is gone; a volume keeps its
//! finalizer while Bound.

mod support;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, ready_cluster, wait_for};

fn has(finalizers: &Option<Vec<String>>, f: &str) -> bool {
    finalizers.iter().flatten().any(|x| x == f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_in_use_keeps_its_finalizer_until_the_pod_goes() {
    let c = ready_cluster(&["pvc-protection"], 1).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    wait_for("the pvc-protection finalizer", || {
        let api = claims.clone();
        async move {
            let c = api.get("data").await.unwrap();
            has(&c.metadata.finalizers, "kubernetes.io/pvc-protection").then_some(())
        }
    })
    .await;
    // a pod using the claim, bound directly to the node (no scheduler needed for
    // volume binding)
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "user"},
        "spec": {
            "nodeName": "node-0",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    // still there while the pod runs: the controller has seen the deletion (the claim
    // is terminating) and keeps the finalizer; check a few times over a while
    for _ in 0..20 {
        let c = claims.get("data").await.unwrap();
        assert!(c.metadata.deletion_timestamp.is_some());
        assert!(has(&c.metadata.finalizers, "kubernetes.io/pvc-protection"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pods.delete("user", &DeleteParams::default()).await.unwrap();
    wait_for("the claim gone once its pod is", || {
        let api = claims.clone();
        async move { api.get_opt("data").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_keeps_its_finalizer_while_bound() {
    let mut spec = Spec::new(&["pv-protection"]);
    spec.scheduler = false;
    let c = cluster(spec).await;
    let volumes: Api<PersistentVolume> = Api::all(c.admin.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/pv1"}}
    }))
    .unwrap();
    volumes.create(&PostParams::default(), &pv).await.unwrap();
    wait_for("the pv-protection finalizer", || {
        let api = volumes.clone();
        async move {
            let v = api.get("pv1").await.unwrap();
            has(&v.metadata.finalizers, "kubernetes.io/pv-protection").then_some(())
        }
    })
    .await;
    volumes
        .patch_status(
            "pv1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
    volumes
        .delete("pv1", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..20 {
        let v = volumes.get("pv1").await.unwrap();
        assert!(has(&v.metadata.finalizers, "kubernetes.io/pv-protection"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    volumes
        .patch_status(
            "pv1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Released"}})),
        )
        .await
        .unwrap();
    wait_for("the volume gone once released", || {
        let api = volumes.clone();
        async move { api.get_opt("pv1").await.unwrap().is_none().then_some(()) }
    })
    .await;
}
