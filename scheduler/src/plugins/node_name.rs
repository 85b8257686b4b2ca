//! NodeName: upstream's `nodename` Filter plugin. A pod that names its node in
//! `spec.nodeName` fits only that node. In v1.33 it has no PreFilter (upstream tried
//! one in v1.27 and took it out again), so every node is filtered.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::registry::Handle;
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, NodeInfo,
    Plugin, PodInfo, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodeName";

/// The reason given for other nodes (upstream's `ErrReason`).
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// Keeps a pod that names its node off every other node.
#[derive(Debug, Default)]
pub struct NodeName;

/// Whether `pod` may go to the node named `node_name` (upstream's `Fits`): always when
/// the pod names no node.
pub fn fits(pod: &Pod, node_name: &str) -> bool {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None | Some("") => true,
        Some(wanted) => wanted == node_name,
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Only the named node appearing can help; updates never change the verdict.
        // Upstream registers no hint: every such event retries (with backoff).
        vec![ClusterEventWithHint::on(
            EventResource::Node,
            ActionType::ADD,
        )]
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if fits(&pod.pod, node.name()) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON)
        }
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeName))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node_name: Option<&str>) -> PodInfo {
        let mut spec = json!({"containers": []});
        if let Some(n) = node_name {
            spec["nodeName"] = json!(n);
        }
        PodInfo::new(
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap(),
        )
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo::new(serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
    }

    fn filter(p: &PodInfo, n: &NodeInfo) -> Status {
        NodeName.filter(&CycleState::default(), p, n)
    }

    #[test]
    fn filter_cases_from_upstream() {
        assert!(
            filter(&pod(None), &node("foo")).is_success(),
            "no host specified"
        );
        assert!(
            filter(&pod(Some("")), &node("foo")).is_success(),
            "empty host"
        );
        assert!(
            filter(&pod(Some("foo")), &node("foo")).is_success(),
            "host matches"
        );
        let s = filter(&pod(Some("bar")), &node("foo"));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "node(s) didn't match the requested node name");
    }

    #[test]
    fn constructor_and_registrations() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_filter().is_some());
        assert!(
            pl.as_pre_filter().is_none(),
            "v1.33 has no NodeName PreFilter"
        );
        let events = pl.events_to_register();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.resource, EventResource::Node);
        assert_eq!(events[0].event.action, ActionType::ADD);
        assert!(events[0].hint.is_none());
    }
}
