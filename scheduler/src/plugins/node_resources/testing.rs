//! Builders shared by this directory's tests: nodes with allocatable resources, pods
//! with per-container requests, and a run of a score plugin over a few nodes (what
//! upstream's tests get from `st.MakeNode`, `st.MakePod` and a snapshot).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::framework::registry::Handle;
use crate::framework::{CycleState, NodeInfo, PodInfo, Status};

/// A node whose capacity and allocatable are `allocatable` (a resource → quantity map).
pub(crate) fn node(name: &str, allocatable: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"capacity": allocatable, "allocatable": allocatable},
    }))
    .unwrap()
}

/// A pod with one container per entry of `containers` (each a requests map), bound
/// to `node_name` when given. No containers at all means no non-zero defaults either.
pub(crate) fn pod(
    name: &str,
    node_name: Option<&str>,
    containers: &[serde_json::Value],
) -> PodInfo {
    pod_with(name, node_name, containers, &[], None)
}

/// As [`pod`], with init containers and overhead too.
pub(crate) fn pod_with(
    name: &str,
    node_name: Option<&str>,
    containers: &[serde_json::Value],
    init_containers: &[serde_json::Value],
    overhead: Option<serde_json::Value>,
) -> PodInfo {
    let container = |(i, requests): (usize, &serde_json::Value)| json!({"name": format!("c{i}"), "image": "x", "resources": {"requests": requests}});
    let mut spec = json!({
        "containers": containers.iter().enumerate().map(container).collect::<Vec<_>>(),
    });
    if !init_containers.is_empty() {
        spec["initContainers"] = json!(
            init_containers
                .iter()
                .enumerate()
                .map(container)
                .collect::<Vec<_>>()
        );
    }
    if let Some(node_name) = node_name {
        spec["nodeName"] = json!(node_name);
    }
    if let Some(overhead) = overhead {
        spec["overhead"] = overhead;
    }
    PodInfo::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": spec,
        }))
        .unwrap(),
    )
}

/// A node with `pods` on it.
pub(crate) fn node_info(node: Node, pods: Vec<PodInfo>) -> NodeInfo {
    let mut info = NodeInfo::new(node);
    for p in pods {
        info.add_pod(Arc::new(p));
    }
    info
}

/// Each node with the existing pods bound to it.
pub(crate) fn node_infos(nodes: Vec<Node>, existing: &[PodInfo]) -> Vec<Arc<NodeInfo>> {
    nodes
        .into_iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let pods = existing
                .iter()
                .filter(|p| p.node_name() == Some(name.as_str()))
                .cloned()
                .collect();
            Arc::new(node_info(n, pods))
        })
        .collect()
}

/// PreScore then Score of NodeResourcesFit built from `args`, for each node in order.
pub(crate) fn fit_scores(
    args: &serde_json::Value,
    incoming: PodInfo,
    nodes: Vec<Node>,
    existing: Vec<PodInfo>,
) -> Vec<i64> {
    let plugin = super::fit::new(Some(args), &Handle::default()).unwrap();
    plugin_scores(plugin.as_ref(), incoming, nodes, existing)
        .into_iter()
        .map(|(score, status)| {
            assert!(status.is_success(), "{status:?}");
            score
        })
        .collect()
}

/// PreScore (its status asserted successful) then Score of `plugin` on each node.
pub(crate) fn plugin_scores(
    plugin: &dyn crate::framework::Plugin,
    incoming: PodInfo,
    nodes: Vec<Node>,
    existing: Vec<PodInfo>,
) -> Vec<(i64, Status)> {
    let infos = node_infos(nodes, &existing);
    let mut state = CycleState::default();
    let status = plugin
        .as_pre_score()
        .unwrap()
        .pre_score(&mut state, &incoming, &infos);
    assert!(status.is_success(), "PreScore: {status:?}");
    infos
        .iter()
        .map(|n| plugin.as_score().unwrap().score(&state, &incoming, n))
        .collect()
}
