//! The Endpoints and EndpointSlice mirroring controllers against a real apiserver, with
//! the scheduler and a fake node whose stand-in kubelet makes pods Running and Ready: a
//! Service's Endpoints follow its pods' readiness and go with the Service, and a
//! selector-less Service's hand-written Endpoints are mirrored into an EndpointSlice.

mod support;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

/// (ready, not ready) addresses of an Endpoints object, sorted.
fn addresses(endpoints: &Endpoints) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        ready.extend(subset.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| a.ip.clone()),
        );
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_endpoints_follow_pod_readiness() {
    let c = cluster(Spec::new(&["endpoint"])).await;
    c.add_ready_nodes("node", 1).await;
    c.wait_default_account("default").await;
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
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    for i in 0..2 {
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
    let endpoints_api: Api<Endpoints> = Api::namespaced(c.admin.clone(), "default");
    let ready = wait_for("two ready addresses", || {
        let api = endpoints_api.clone();
        async move {
            let e = api.get_opt("web").await.unwrap()?;
            let (ready, not_ready) = addresses(&e);
            (ready.len() == 2 && not_ready.is_empty()).then_some(e)
        }
    })
    .await;
    let labels = ready.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "a");
    assert!(!labels.contains_key("service.kubernetes.io/headless"));
    assert!(
        ready
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time")
    );
    let subsets = ready.subsets.clone().unwrap();
    assert_eq!(subsets.len(), 1, "one subset for one port set");
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    let address = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(address.node_name.as_deref(), Some("node-0"));
    assert_eq!(
        address.target_ref.as_ref().unwrap().kind.as_deref(),
        Some("Pod")
    );

    // web-1 turns unready: its address moves to notReadyAddresses
    let web1 = pods.get("web-1").await.unwrap();
    let ip = web1.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let conditions: Vec<serde_json::Value> = web1
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap();
            if c.type_ == "Ready" {
                v["status"] = json!("False");
            }
            v
        })
        .collect();
    pods.patch_status(
        "web-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await
    .unwrap();
    wait_for("web-1 among the not-ready addresses", || {
        let api = endpoints_api.clone();
        let ip = ip.clone();
        async move {
            let e = api.get_opt("web").await.unwrap()?;
            let (ready, not_ready) = addresses(&e);
            (ready.len() == 1 && not_ready == [ip]).then_some(())
        }
    })
    .await;

    // the Service goes: so do its Endpoints
    services.delete("web", &Default::default()).await.unwrap();
    wait_for("the Endpoints deleted with the Service", || {
        let api = endpoints_api.clone();
        async move { api.get_opt("web").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selectorless_services_endpoints_are_mirrored_into_a_slice() {
    let c = cluster(Spec::new(&["endpoint", "endpointslicemirroring"])).await;
    c.wait_default_account("default").await;
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "external"},
        "spec": {"ports": [{"name": "db", "port": 5432}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let endpoints_api: Api<Endpoints> = Api::namespaced(c.admin.clone(), "default");
    let endpoints: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "external", "labels": {"team": "db"}},
        "subsets": [{
            "addresses": [{"ip": "192.0.2.10"}],
            "notReadyAddresses": [{"ip": "192.0.2.11"}],
            "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]
        }]
    }))
    .unwrap();
    endpoints_api
        .create(&PostParams::default(), &endpoints)
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(c.admin.clone(), "default");
    let slice = wait_for("the mirrored slice", || {
        let api = slices.clone();
        async move {
            let list = api
                .list(&ListParams::default().labels("kubernetes.io/service-name=external"))
                .await
                .unwrap()
                .items;
            (list.len() == 1 && list[0].endpoints.len() == 2).then(|| list[0].clone())
        }
    })
    .await;
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    assert_eq!(labels["team"], "db");
    assert_eq!(slice.address_type, "IPv4");
    let mut endpoints: Vec<(String, Option<bool>)> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().unwrap().ready))
        .collect();
    endpoints.sort();
    assert_eq!(
        endpoints,
        [
            ("192.0.2.10".to_owned(), Some(true)),
            ("192.0.2.11".to_owned(), Some(false))
        ]
    );
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(5432));
    // the endpoints controller leaves hand-written Endpoints alone
    let kept = endpoints_api.get("external").await.unwrap();
    assert_eq!(
        kept.subsets.unwrap()[0].addresses.as_ref().unwrap().len(),
        1
    );

    // marked skip-mirror: the mirrored slice goes
    endpoints_api
        .patch(
            "external",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}}),
            ),
        )
        .await
        .unwrap();
    wait_for("the mirrored slice deleted", || {
        let api = slices.clone();
        async move {
            api.list(&ListParams::default().labels("kubernetes.io/service-name=external"))
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
}
