//! The disruption controller against a real apiserver: a PodDisruptionBudget's status
//! counts the ready pods of a ReplicaSet, and the eviction API then lets exactly the
//! allowed number of pods go.

mod support;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{ready_cluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_counts_healthy_pods_and_limits_evictions() {
    let c = ready_cluster(&["replicaset", "disruption"], 1).await;
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(c.admin.clone(), "default");
    for (name, spec) in [
        (
            "min-two",
            json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
        ),
        (
            "max-one",
            json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        ),
    ] {
        let b: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        budgets.create(&PostParams::default(), &b).await.unwrap();
    }
    for name in ["min-two", "max-one"] {
        let status = wait_for("the budget's counts", || {
            let budgets = budgets.clone();
            async move {
                let s = budgets.get(name).await.unwrap().status?;
                (s.current_healthy == 3).then_some(s)
            }
        })
        .await;
        assert_eq!(status.expected_pods, 3, "{name}");
        assert_eq!(status.desired_healthy, 2, "{name}");
        assert_eq!(status.disruptions_allowed, 1, "{name}");
        let condition = &status.conditions.unwrap()[0];
        assert_eq!(condition.type_, "DisruptionAllowed");
        assert_eq!(condition.reason, "SufficientPods");
    }

    // the eviction API refuses pods with two budgets, as upstream's: keep one
    budgets
        .delete("max-one", &Default::default())
        .await
        .unwrap();
    // an eviction is allowed while the budget allows one
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    pods.evict(&names[0], &EvictParams::default())
        .await
        .unwrap();
    // with every pod needed, the budget allows none and the eviction API refuses
    budgets
        .patch(
            "min-two",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minAvailable": 3}})),
        )
        .await
        .unwrap();
    wait_for("no disruption allowed", || {
        let budgets = budgets.clone();
        async move {
            let s = budgets.get("min-two").await.unwrap().status?;
            (s.desired_healthy == 3 && s.disruptions_allowed == 0).then_some(())
        }
    })
    .await;
    match pods.evict(&names[1], &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 429, "{s:?}");
            assert!(
                s.message
                    .contains("Cannot evict pod as it would violate the pod's disruption budget."),
                "{s:?}"
            );
        }
        other => panic!("eviction past the budget: {other:?}"),
    }
}
