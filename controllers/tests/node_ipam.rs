//! The node IPAM controller against a real apiserver: nodes get distinct pod CIDRs out
//! of `--cluster-cidr`, a node's existing CIDR is kept and never handed out again, a
//! full range gives `CIDRNotAvailable` until a deleted node's CIDR is free again.

mod support;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

fn settings(mask_ipv4: i32) -> controllers::Settings {
    controllers::Settings {
        allocate_node_cidrs: true,
        cluster_cidr: "10.244.0.0/16".to_owned(),
        node_cidr_mask_size_ipv4: mask_ipv4,
        ..controllers::Settings::default()
    }
}

/// Waits until `name` has pod CIDRs; returns `spec.podCIDRs` after checking
/// `spec.podCIDR` is the first.
async fn pod_cidrs(nodes: &Api<Node>, name: &str) -> Vec<String> {
    let spec = wait_for(&format!("pod CIDRs of {name}"), || {
        let nodes = nodes.clone();
        async move {
            let spec = nodes.get(name).await.ok()?.spec?;
            spec.pod_cidrs.as_ref().filter(|c| !c.is_empty())?;
            Some(spec)
        }
    })
    .await;
    let cidrs = spec.pod_cidrs.unwrap_or_default();
    assert_eq!(spec.pod_cidr.as_ref(), cidrs.first(), "{name}");
    cidrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_distinct_cidrs_and_existing_ones_are_kept() {
    let mut spec = Spec::new(&[]);
    spec.scheduler = false;
    let c = cluster(spec).await;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    // a node with a CIDR before the controller starts: the CIDR is marked used
    let preset: Node = serde_json::from_value(json!({
        "metadata": {"name": "preset"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &preset).await.unwrap();
    let _manager = c.start_manager(vec!["nodeipam".to_owned()], settings(0), None);

    let names = c.add_nodes("node", 2).await;
    let mut got = Vec::new();
    for name in &names {
        let cidrs = pod_cidrs(&nodes, name).await;
        assert_eq!(cidrs.len(), 1, "{name}: {cidrs:?}");
        got.push(cidrs[0].clone());
    }
    assert_ne!(got[0], got[1], "two nodes share a CIDR");
    got.sort();
    // block 0 is the preset node's; the next ones are handed out in order
    assert_eq!(got, ["10.244.1.0/24", "10.244.2.0/24"]);
    let kept = nodes.get("preset").await.unwrap().spec.unwrap();
    assert_eq!(kept.pod_cidrs, Some(vec!["10.244.0.0/24".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_range_waits_for_a_deleted_nodes_cidr() {
    let mut spec = Spec::new(&["node-ipam-controller"]);
    spec.scheduler = false;
    // /17 blocks: the /16 holds two
    spec.settings = settings(17);
    let c = cluster(spec).await;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    let names = c.add_nodes("node", 2).await;
    let first = pod_cidrs(&nodes, &names[0]).await;
    let second = pod_cidrs(&nodes, &names[1]).await;
    let mut both = vec![first[0].clone(), second[0].clone()];
    both.sort();
    assert_eq!(both, ["10.244.0.0/17", "10.244.128.0/17"]);

    // a third node finds the range full
    let extra = c.add_nodes("extra", 1).await.remove(0);
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    let message = format!("Node {extra} status is now: CIDRNotAvailable");
    let event = wait_for("the CIDRNotAvailable event", || {
        let (events, extra, message) = (events.clone(), extra.clone(), message.clone());
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(extra.as_str())
                        && e.reason.as_deref() == Some("CIDRNotAvailable")
                        && e.message.as_deref() == Some(message.as_str())
                })
        }
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Node"));
    let spec = nodes.get(&extra).await.unwrap().spec.unwrap_or_default();
    assert!(spec.pod_cidrs.unwrap_or_default().is_empty());

    // the deleted node's CIDR goes to the waiting one
    nodes
        .delete(&names[0], &DeleteParams::default())
        .await
        .unwrap();
    let reused = pod_cidrs(&nodes, &extra).await;
    assert_eq!(reused, first);
    // the other node keeps its own
    assert_eq!(pod_cidrs(&nodes, &names[1]).await, second);
}
