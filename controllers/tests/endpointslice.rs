//! The EndpointSlice controller against a real apiserver, with the scheduler and fake
//! nodes whose stand-in kubelet gives pods IPs and readiness: a Service's slice lists
//! its pods with their conditions, follows readiness and deletions, and keeps an empty
//! placeholder when nothing is selected.

mod support;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::{ready_cluster, wait_for};

async fn slices(api: &Api<EndpointSlice>) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items
}

fn addresses(slices: &[EndpointSlice]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_slices_follow_its_pods() {
    let c = ready_cluster(&["endpointslice"], 1).await;
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let slice_api: Api<EndpointSlice> = Api::namespaced(c.admin.clone(), "default");
    // nothing selected yet: one empty placeholder
    let placeholder = wait_for("the placeholder slice", || {
        let api = slice_api.clone();
        async move {
            let s = slices(&api).await;
            (s.len() == 1).then(|| s[0].clone())
        }
    })
    .await;
    assert!(placeholder.endpoints.is_empty());
    let labels = placeholder.metadata.labels.unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["team"], "a");

    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    for i in 0..3 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]
            }
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let ready = wait_for("three ready endpoints", || {
        let api = slice_api.clone();
        async move {
            let s = slices(&api).await;
            let a = addresses(&s);
            (a.len() == 3 && a.iter().all(|(_, r)| *r)).then_some(s)
        }
    })
    .await;
    assert_eq!(
        ready.len(),
        1,
        "the placeholder is replaced, not kept beside"
    );
    let ports = ready[0].ports.clone().unwrap();
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    let endpoint = &ready[0].endpoints[0];
    assert_eq!(endpoint.node_name.as_deref(), Some("node-0"));
    assert_eq!(
        endpoint.target_ref.as_ref().unwrap().kind.as_deref(),
        Some("Pod")
    );

    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("two endpoints after a deletion", || {
        let api = slice_api.clone();
        async move { (addresses(&slices(&api).await).len() == 2).then_some(()) }
    })
    .await;
}
