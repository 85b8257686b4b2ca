//! The controller manager as a whole against a real in-process apiserver: controllers
//! act as their own service accounts, one replica leads at a time, and the fake
//! kubelet the other tests rely on does what they expect of it.

mod support;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use support::{Spec, cluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_namespace_gets_its_default_service_account() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["serviceaccount"])
    })
    .await;
    c.namespace("team-a").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "team-a");
    wait_for("the default service account", || {
        let accounts = accounts.clone();
        async move { accounts.get_opt("default").await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_kubelet_runs_pods_bound_to_its_nodes() {
    let c = cluster(Spec::new(&[])).await;
    let nodes = c.add_nodes("node", 1).await;
    c.untaint(&nodes[0]).await;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    wait_for("the default service account", || {
        let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "default");
        async move { accounts.get_opt("default").await.unwrap() }
    })
    .await;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = wait_for("the pod running and ready", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("web").await.unwrap();
            let status = pod.status.clone()?;
            let ready = status
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (status.phase.as_deref() == Some("Running") && ready).then_some(pod)
        }
    })
    .await;
    assert_eq!(running.spec.unwrap().node_name.as_deref(), Some("node-0"));
    assert!(running.status.unwrap().pod_ip.is_some());
    assert_eq!(c.kubelet.pods_started(), 1);
}
