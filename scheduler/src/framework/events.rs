//! Cluster events that may make an unschedulable pod schedulable (upstream's
//! `ClusterEvent`, `ActionType` and queueing hints). Plugins register the events their
//! rejections wait on; the queue moves a rejected pod back only on those.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::PodInfo;

/// The kind of object an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResource {
    /// Any pod (upstream's `Pod`: assigned pods for most plugins).
    Pod,
    /// Pods not yet scheduled (upstream's `unschedulablePod`, used for the pod itself).
    UnscheduledPod,
    /// Pods already bound to a node (upstream's `assignedPod`).
    AssignedPod,
    /// Nodes.
    Node,
    /// Namespaces (InterPodAffinity's namespace selectors).
    Namespace,
    /// PersistentVolumes.
    PersistentVolume,
    /// PersistentVolumeClaims.
    PersistentVolumeClaim,
    /// StorageClasses.
    StorageClass,
    /// CSINodes.
    CsiNode,
    /// Every resource (upstream's `WildCard`).
    Wildcard,
}

/// What happened, as bits (upstream's `ActionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActionType(pub u32);

impl ActionType {
    /// Created.
    pub const ADD: ActionType = ActionType(1);
    /// Deleted.
    pub const DELETE: ActionType = ActionType(1 << 1);
    /// A node's allocatable changed.
    pub const UPDATE_NODE_ALLOCATABLE: ActionType = ActionType(1 << 2);
    /// A node's labels changed.
    pub const UPDATE_NODE_LABEL: ActionType = ActionType(1 << 3);
    /// A node's taints (or unschedulable) changed.
    pub const UPDATE_NODE_TAINT: ActionType = ActionType(1 << 4);
    /// A node's conditions changed.
    pub const UPDATE_NODE_CONDITION: ActionType = ActionType(1 << 5);
    /// A node's annotations changed.
    pub const UPDATE_NODE_ANNOTATION: ActionType = ActionType(1 << 6);
    /// A pod's labels changed.
    pub const UPDATE_POD_LABEL: ActionType = ActionType(1 << 7);
    /// A pod's requests went down.
    pub const UPDATE_POD_SCALE_DOWN: ActionType = ActionType(1 << 8);
    /// A pod's tolerations changed.
    pub const UPDATE_POD_TOLERATION: ActionType = ActionType(1 << 9);
    /// A pod's scheduling gates were all removed.
    pub const UPDATE_POD_SCHEDULING_GATES_ELIMINATED: ActionType = ActionType(1 << 10);
    /// Any other update.
    pub const UPDATE_OTHER: ActionType = ActionType(1 << 11);
    /// Any update.
    pub const UPDATE: ActionType = ActionType(((1 << 12) - 1) & !3);
    /// Anything.
    pub const ALL: ActionType = ActionType((1 << 12) - 1);

    /// Both sets of bits.
    pub const fn or(self, other: ActionType) -> ActionType {
        ActionType(self.0 | other.0)
    }

    /// Whether the two share a bit.
    pub const fn intersects(self, other: ActionType) -> bool {
        self.0 & other.0 != 0
    }
}

/// An event: a resource and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    /// The resource.
    pub resource: EventResource,
    /// What happened.
    pub action: ActionType,
    /// A label for logs and metrics (upstream's event label, e.g. `NodeAdd`).
    pub label: &'static str,
}

impl ClusterEvent {
    /// An event without a label (for registrations).
    pub const fn of(resource: EventResource, action: ActionType) -> ClusterEvent {
        ClusterEvent {
            resource,
            action,
            label: "",
        }
    }

    /// Whether this (a registration) covers `event` (an occurrence).
    pub fn covers(&self, event: &ClusterEvent) -> bool {
        let resource = self.resource == EventResource::Wildcard
            || self.resource == event.resource
            || (self.resource == EventResource::Pod
                && matches!(
                    event.resource,
                    EventResource::AssignedPod | EventResource::UnscheduledPod
                ));
        resource && self.action.intersects(event.action)
    }
}

/// The object an event carries, old or new.
#[derive(Clone, Debug)]
pub enum EventObject {
    /// A pod.
    Pod(Arc<Pod>),
    /// A node.
    Node(Arc<Node>),
    /// Anything else: plugins that register such events get no object to look at.
    Other,
}

/// A queueing hint's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueingHint {
    /// The event cannot make the pod schedulable.
    Skip,
    /// The event may make it schedulable: retry.
    Queue,
}

/// Decides, for one rejected pod, whether an event may help it (`old`, `new`: the
/// object before and after; `None` for adds and deletes respectively).
pub type QueueingHintFn =
    fn(pod: &PodInfo, old: Option<&EventObject>, new: Option<&EventObject>) -> QueueingHint;

/// A registration: an event and, optionally, a hint to filter it per pod.
#[derive(Clone, Copy, Debug)]
pub struct ClusterEventWithHint {
    /// The event.
    pub event: ClusterEvent,
    /// The hint; without one every such event requeues.
    pub hint: Option<QueueingHintFn>,
}

impl ClusterEventWithHint {
    /// A registration without a hint.
    pub const fn on(resource: EventResource, action: ActionType) -> ClusterEventWithHint {
        ClusterEventWithHint {
            event: ClusterEvent::of(resource, action),
            hint: None,
        }
    }

    /// A registration with a hint.
    pub const fn with_hint(
        resource: EventResource,
        action: ActionType,
        hint: QueueingHintFn,
    ) -> ClusterEventWithHint {
        ClusterEventWithHint {
            event: ClusterEvent::of(resource, action),
            hint: Some(hint),
        }
    }
}

/// The node-update actions between two versions of a node (upstream's
/// `NodeSchedulingPropertiesChange`).
pub fn node_update_actions(old: &Node, new: &Node) -> ActionType {
    let mut actions = ActionType(0);
    let (os, ns) = (old.spec.as_ref(), new.spec.as_ref());
    let (ost, nst) = (old.status.as_ref(), new.status.as_ref());
    if os.and_then(|s| s.unschedulable) != ns.and_then(|s| s.unschedulable)
        || os.and_then(|s| s.taints.as_ref()) != ns.and_then(|s| s.taints.as_ref())
    {
        actions = actions.or(ActionType::UPDATE_NODE_TAINT);
    }
    if ost.and_then(|s| s.allocatable.as_ref()) != nst.and_then(|s| s.allocatable.as_ref()) {
        actions = actions.or(ActionType::UPDATE_NODE_ALLOCATABLE);
    }
    if old.metadata.labels != new.metadata.labels {
        actions = actions.or(ActionType::UPDATE_NODE_LABEL);
    }
    if old.metadata.annotations != new.metadata.annotations {
        actions = actions.or(ActionType::UPDATE_NODE_ANNOTATION);
    }
    let ready = |n: Option<&k8s_openapi::api::core::v1::NodeStatus>| {
        n.and_then(|s| s.conditions.as_ref()).map(|cs| {
            cs.iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect::<Vec<_>>()
        })
    };
    if ready(ost) != ready(nst) {
        actions = actions.or(ActionType::UPDATE_NODE_CONDITION);
    }
    actions
}

/// The pod-update actions between two versions of a pod (upstream's
/// `PodSchedulingPropertiesChange`).
pub fn pod_update_actions(old: &Pod, new: &Pod) -> ActionType {
    let mut actions = ActionType(0);
    if old.metadata.labels != new.metadata.labels {
        actions = actions.or(ActionType::UPDATE_POD_LABEL);
    }
    let (os, ns) = (old.spec.as_ref(), new.spec.as_ref());
    if os.and_then(|s| s.tolerations.as_ref()) != ns.and_then(|s| s.tolerations.as_ref()) {
        actions = actions.or(ActionType::UPDATE_POD_TOLERATION);
    }
    let gates = |s: Option<&k8s_openapi::api::core::v1::PodSpec>| {
        s.and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty())
    };
    if gates(os) && !gates(ns) {
        actions = actions.or(ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED);
    }
    let old_requests = PodInfo::requests_of(old);
    let new_requests = PodInfo::requests_of(new);
    if new_requests.less_in_any(&old_requests) {
        actions = actions.or(ActionType::UPDATE_POD_SCALE_DOWN);
    }
    if actions.0 == 0 {
        actions = ActionType::UPDATE_OTHER;
    }
    actions
}
