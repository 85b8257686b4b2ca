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
    c.add_ready_nodes("node", 1).await;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    c.wait_default_account("default").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_manager_takes_over_without_duplicating_pods() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{ListParams, Patch, PatchParams};
    use std::time::Duration;

    let c = cluster(Spec::new(&[])).await;
    c.add_ready_nodes("node", 1).await;
    let lease = |identity: &str| component_base::leader_election::Config {
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        ..controllers::lease_config(String::new())
    };
    let wanted = vec!["replicaset".to_owned()];
    let first = c.start_manager(
        wanted.clone(),
        controllers::Settings::default(),
        Some(lease("manager-a")),
    );
    let leases: Api<Lease> = Api::namespaced(c.admin.clone(), "kube-system");
    wait_for("manager-a to lead", || {
        let leases = leases.clone();
        async move {
            let l = leases.get_opt("kube-controller-manager").await.unwrap()?;
            (l.spec?.holder_identity.as_deref() == Some("manager-a")).then_some(())
        }
    })
    .await;
    let second = c.start_manager(
        wanted,
        controllers::Settings::default(),
        Some(lease("manager-b")),
    );

    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap();
    c.wait_default_account("default").await;
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let count = |pods: Api<Pod>| async move {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len()
    };
    wait_for("5 pods", || {
        let pods = pods.clone();
        async move { (count(pods).await == 5).then_some(()) }
    })
    .await;

    // kill the leader (no lease release) and scale up meanwhile
    first.abort();
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 8}})),
    )
    .await
    .unwrap();
    wait_for("8 pods from the new leader", || {
        let pods = pods.clone();
        async move { (count(pods).await == 8).then_some(()) }
    })
    .await;
    let lease = leases.get("kube-controller-manager").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("manager-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    // no duplicates once things settle
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(pods.clone()).await, 8);
    second.abort();
}
