//! NodeUnschedulable: upstream's `nodeunschedulable` Filter plugin. A cordoned node
//! (`spec.unschedulable`) takes no new pods, except pods that tolerate the taint
//! `node.kubernetes.io/unschedulable:NoSchedule` that the node lifecycle controller
//! puts on such nodes (DaemonSet pods carry that toleration).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::taint_toleration::{EFFECT_NO_SCHEDULE, tolerations_tolerate_taint};
use crate::framework::events::EventObject;
use crate::framework::registry::Handle;
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, NodeInfo,
    Plugin, PodInfo, QueueingHint, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";

/// The taint key a cordoned node is marked with (upstream's `TaintNodeUnschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The reason given for a cordoned node (upstream's `ErrReasonUnschedulable`).
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

/// Rejects cordoned nodes for pods that do not tolerate them.
#[derive(Debug, Default)]
pub struct NodeUnschedulable;

/// Whether the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`, and so
/// `spec.unschedulable` as well.
pub fn tolerates_unschedulable(pod: &Pod) -> bool {
    let taint = Taint {
        key: TAINT_NODE_UNSCHEDULABLE.to_owned(),
        effect: EFFECT_NO_SCHEDULE.to_owned(),
        ..Taint::default()
    };
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    tolerations_tolerate_taint(tolerations, &taint)
}

fn is_unschedulable(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// Requeues after a node was uncordoned, or added schedulable (upstream's
/// `isSchedulableAfterNodeChange`).
fn schedulable_after_node_change(
    _pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Node(modified)) = new else {
        return QueueingHint::Queue;
    };
    let queue = match old {
        Some(EventObject::Node(original)) => {
            is_unschedulable(original) && !is_unschedulable(modified)
        }
        _ => !is_unschedulable(modified),
    };
    if queue {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

/// Requeues when the rejected pod itself now tolerates the unschedulable taint
/// (upstream's `isSchedulableAfterPodTolerationChange`).
fn schedulable_after_pod_toleration_change(
    pod: &PodInfo,
    _old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Pod(modified)) = new else {
        return QueueingHint::Queue;
    };
    // Tolerations can only be added, so there is no need to compare with the old pod.
    if modified.metadata.uid.as_deref().unwrap_or("") == pod.uid()
        && tolerates_unschedulable(modified)
    {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registrations with queueing hints enabled.
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT),
                schedulable_after_node_change,
            ),
            ClusterEventWithHint::with_hint(
                EventResource::UnscheduledPod,
                ActionType::UPDATE_POD_TOLERATION,
                schedulable_after_pod_toleration_change,
            ),
        ]
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !is_unschedulable(node.node()) || tolerates_unschedulable(&pod.pod) {
            return Status::success();
        }
        Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_UNSCHEDULABLE)
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeUnschedulable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn pod(tolerations: serde_json::Value) -> PodInfo {
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "uid": "uid-p"},
                "spec": {"containers": [], "tolerations": tolerations}
            }))
            .unwrap(),
        )
    }

    fn node_obj(unschedulable: Option<bool>) -> Node {
        let mut spec = json!({});
        if let Some(u) = unschedulable {
            spec["unschedulable"] = json!(u);
        }
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec})).unwrap()
    }

    fn filter(p: &PodInfo, unschedulable: Option<bool>) -> Status {
        NodeUnschedulable.filter(
            &CycleState::default(),
            p,
            &NodeInfo::new(node_obj(unschedulable)),
        )
    }

    #[test]
    fn filter_cases_from_upstream() {
        let none = pod(json!([]));
        let s = filter(&none, Some(true));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "node(s) were unschedulable");
        assert!(filter(&none, Some(false)).is_success());
        assert!(filter(&none, None).is_success());
        // the pod tolerates the unschedulable taint
        let tolerant =
            pod(json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]));
        assert!(filter(&tolerant, Some(true)).is_success());
        let exists =
            pod(json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]));
        assert!(filter(&exists, Some(true)).is_success());
        let everything = pod(json!([{"operator": "Exists"}]));
        assert!(filter(&everything, Some(true)).is_success());
        // a NoExecute-only toleration does not cover the NoSchedule taint
        let wrong = pod(
            json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}]),
        );
        assert!(!filter(&wrong, Some(true)).is_success());
    }

    #[test]
    fn node_hint_queues_on_uncordon_or_schedulable_add() {
        let p = pod(json!([]));
        let cordoned = EventObject::Node(Arc::new(node_obj(Some(true))));
        let open = EventObject::Node(Arc::new(node_obj(None)));
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&open)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&cordoned)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&cordoned), Some(&open)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&open), Some(&open)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&open), Some(&cordoned)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn toleration_hint_queues_when_the_pod_now_tolerates() {
        let p = pod(json!([]));
        let updated =
            pod(json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]));
        let new = EventObject::Pod(updated.pod.clone());
        assert_eq!(
            schedulable_after_pod_toleration_change(&p, None, Some(&new)),
            QueueingHint::Queue
        );
        let unrelated =
            EventObject::Pod(pod(json!([{"key": "x", "operator": "Exists"}])).pod.clone());
        assert_eq!(
            schedulable_after_pod_toleration_change(&p, None, Some(&unrelated)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn constructor_and_registrations() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_filter().is_some());
        let events = pl.events_to_register();
        assert_eq!(events[0].event.resource, EventResource::Node);
        assert_eq!(
            events[0].event.action,
            ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT)
        );
    }
}
