//! NodePorts: upstream's `nodeports` plugin. A pod asking for host ports fits only nodes
//! where no other pod holds the same (host IP, protocol, port); `0.0.0.0` collides with
//! every address. PreFilter collects the wanted ports once and skips pods without any.

use std::sync::Arc;

use crate::framework::events::EventObject;
use crate::framework::registry::Handle;
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, HostPorts,
    NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, QueueingHint, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodePorts";

/// The cycle-state key of the wanted ports.
const PRE_FILTER_STATE_KEY: &str = "PreFilterNodePorts";

/// The reason given for a node with a port taken (upstream's `ErrReason`).
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Rejects nodes where a wanted host port is taken.
#[derive(Debug, Default)]
pub struct NodePorts;

/// The wanted host ports, (host IP, protocol, port), as PreFilter computed them.
#[derive(Clone, Debug)]
struct PreFilterState(Vec<(String, String, i32)>);

/// Whether none of `wanted` collides with the ports in use in `used` (upstream's
/// `fitsPorts`).
pub fn fits_ports(wanted: &[(String, String, i32)], used: &HostPorts) -> bool {
    !wanted
        .iter()
        .any(|(ip, protocol, port)| used.conflicts(ip, protocol, *port))
}

/// Whether `pod`'s host ports are all free on `node` (upstream's `Fits`).
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> bool {
    fits_ports(&pod.host_ports, &node.used_ports)
}

/// Requeues after a pod was deleted only when it held a port the rejected pod wants
/// (upstream's `isSchedulableAfterPodDeleted`).
fn schedulable_after_pod_deleted(
    pod: &PodInfo,
    old: Option<&EventObject>,
    _new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Pod(deleted)) = old else {
        return QueueingHint::Queue;
    };
    // A pod that was neither bound nor nominated held no ports anywhere.
    let bound = deleted
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let nominated = deleted
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !bound && !nominated {
        return QueueingHint::Skip;
    }
    let deleted = PodInfo::from_arc(deleted.clone());
    if deleted.host_ports.is_empty() {
        return QueueingHint::Skip;
    }
    // As if on a node holding only the deleted pod's ports: if the pod fits there, the
    // two share no port and the deletion cannot help.
    let mut used = HostPorts::default();
    for (ip, protocol, port) in &deleted.host_ports {
        used.add(ip, protocol, *port);
    }
    if fits_ports(&pod.host_ports, &used) {
        QueueingHint::Skip
    } else {
        QueueingHint::Queue
    }
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registrations with queueing hints enabled. Container ports are
        // immutable, so pod updates never free a port; node updates never do either.
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::DELETE,
                schedulable_after_pod_deleted,
            ),
            ClusterEventWithHint::on(EventResource::Node, ActionType::ADD),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        if pod.host_ports.is_empty() {
            // Nothing can collide: Filter is skipped for this pod.
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, PreFilterState(pod.host_ports.clone()));
        (None, Status::success())
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(wanted) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        if fits_ports(&wanted.0, &node.used_ports) {
            Status::success()
        } else {
            Status::new(Code::Unschedulable, ERR_REASON)
        }
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodePorts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    /// A pod with one container per (ip, protocol, port); ip "" and protocol "" are left
    /// unset.
    fn pod_with(name: &str, ports: &[(&str, &str, i32)], extra: serde_json::Value) -> Pod {
        let ports: Vec<serde_json::Value> = ports
            .iter()
            .map(|(ip, protocol, port)| {
                let mut p = json!({"containerPort": 80, "hostPort": port});
                if !ip.is_empty() {
                    p["hostIP"] = json!(ip);
                }
                if !protocol.is_empty() {
                    p["protocol"] = json!(protocol);
                }
                p
            })
            .collect();
        let mut spec = json!({"containers": [{"name": "c", "ports": ports}]});
        if let Some(obj) = extra.as_object() {
            for (k, v) in obj {
                spec[k] = v.clone();
            }
        }
        serde_json::from_value(json!({"metadata": {"name": name, "uid": name}, "spec": spec}))
            .unwrap()
    }

    fn pod(ports: &[(&str, &str, i32)]) -> PodInfo {
        PodInfo::new(pod_with("p", ports, json!({})))
    }

    fn node_with(ports: &[(&str, &str, i32)]) -> NodeInfo {
        let mut n =
            NodeInfo::new(serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap());
        n.add_pod(Arc::new(PodInfo::new(pod_with(
            "existing",
            ports,
            json!({"nodeName": "n"}),
        ))));
        n
    }

    /// Runs PreFilter then Filter, as the framework does.
    fn run(p: &PodInfo, n: &NodeInfo) -> Status {
        let mut state = CycleState::default();
        let (result, status) = NodePorts.pre_filter(&mut state, p, &[]);
        assert!(result.is_none());
        if status.is_skip() {
            return status;
        }
        assert!(status.is_success());
        NodePorts.filter(&state, p, n)
    }

    #[test]
    fn pods_without_host_ports_skip() {
        assert!(run(&pod(&[]), &node_with(&[("", "", 8080)])).is_skip());
        // container ports without hostPort ask for nothing on the node
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}})).unwrap();
        assert!(run(&PodInfo::new(p), &node_with(&[])).is_skip());
    }

    #[test]
    fn filter_cases_from_upstream() {
        let conflict = |s: Status| {
            assert_eq!(s.code, Code::Unschedulable);
            assert_eq!(s.message(), ERR_REASON);
        };
        // other port
        assert!(run(&pod(&[("", "UDP", 8080)]), &node_with(&[("", "UDP", 9090)])).is_success());
        // same udp port
        conflict(run(
            &pod(&[("", "UDP", 8080)]),
            &node_with(&[("", "UDP", 8080)]),
        ));
        // same tcp port
        conflict(run(
            &pod(&[("", "TCP", 8080)]),
            &node_with(&[("", "TCP", 8080)]),
        ));
        // different host ip
        assert!(
            run(
                &pod(&[("127.0.0.1", "TCP", 8080)]),
                &node_with(&[("127.0.0.2", "TCP", 8080)])
            )
            .is_success()
        );
        // different protocol
        assert!(run(&pod(&[("", "UDP", 8080)]), &node_with(&[("", "TCP", 8080)])).is_success());
        // second of two ports conflicts
        conflict(run(
            &pod(&[("", "TCP", 8000), ("", "UDP", 8080)]),
            &node_with(&[("", "UDP", 8080)]),
        ));
        // first of two ports conflicts
        conflict(run(
            &pod(&[("", "TCP", 8000), ("", "UDP", 8080)]),
            &node_with(&[("", "TCP", 8001), ("", "UDP", 8080)]),
        ));
        // 0.0.0.0 wanted against a specific ip in use
        conflict(run(
            &pod(&[("0.0.0.0", "TCP", 8001)]),
            &node_with(&[("10.0.10.10", "TCP", 8001), ("", "TCP", 8001)]),
        ));
        conflict(run(
            &pod(&[("10.0.10.10", "TCP", 8001), ("", "TCP", 8001)]),
            &node_with(&[("0.0.0.0", "TCP", 8001)]),
        ));
        conflict(run(
            &pod(&[("10.0.10.10", "TCP", 8001)]),
            &node_with(&[("0.0.0.0", "TCP", 8001)]),
        ));
        conflict(run(
            &pod(&[("0.0.0.0", "TCP", 8001)]),
            &node_with(&[("10.0.10.10", "TCP", 8001)]),
        ));
        // 0.0.0.0 with a different protocol
        assert!(
            run(
                &pod(&[("0.0.0.0", "TCP", 8001)]),
                &node_with(&[("10.0.10.10", "UDP", 8001)])
            )
            .is_success()
        );
        // the protocol defaults to TCP
        conflict(run(
            &pod(&[("", "", 8080)]),
            &node_with(&[("", "TCP", 8080)]),
        ));
    }

    #[test]
    fn sidecar_ports_count() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c"}],
            "initContainers": [{"name": "s", "restartPolicy": "Always", "ports": [{"containerPort": 80, "hostPort": 9000}]}]
        }})).unwrap();
        let s = run(&PodInfo::new(p), &node_with(&[("", "TCP", 9000)]));
        assert_eq!(s.code, Code::Unschedulable);
    }

    #[test]
    fn filter_without_pre_filter_is_an_error() {
        let s = NodePorts.filter(
            &CycleState::default(),
            &pod(&[("", "TCP", 1)]),
            &node_with(&[]),
        );
        assert_eq!(s.code, Code::Error);
    }

    #[test]
    fn pod_deleted_hint() {
        let target = pod(&[("", "TCP", 8080)]);
        let ev = |p: Pod| EventObject::Pod(Arc::new(p));
        // a bound pod holding the wanted port
        let holder = ev(pod_with(
            "d",
            &[("", "TCP", 8080)],
            json!({"nodeName": "n"}),
        ));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&holder), None),
            QueueingHint::Queue
        );
        // a bound pod holding another port
        let other = ev(pod_with(
            "d",
            &[("", "TCP", 9090)],
            json!({"nodeName": "n"}),
        ));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&other), None),
            QueueingHint::Skip
        );
        // an unscheduled pod with the port
        let pending = ev(pod_with("d", &[("", "TCP", 8080)], json!({})));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&pending), None),
            QueueingHint::Skip
        );
        // a bound pod without host ports
        let portless = ev(pod_with("d", &[], json!({"nodeName": "n"})));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&portless), None),
            QueueingHint::Skip
        );
        // a nominated pod holding the port
        let mut nominated = pod_with("d", &[("", "TCP", 8080)], json!({}));
        nominated.status = Some(serde_json::from_value(json!({"nominatedNodeName": "n"})).unwrap());
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&ev(nominated)), None),
            QueueingHint::Queue
        );
    }

    #[test]
    fn constructor_and_registrations() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_pre_filter().is_some() && pl.as_filter().is_some());
        let events = pl.events_to_register();
        assert_eq!(events[0].event.resource, EventResource::Pod);
        assert_eq!(events[0].event.action, ActionType::DELETE);
        assert_eq!(events[1].event.resource, EventResource::Node);
        assert_eq!(events[1].event.action, ActionType::ADD);
    }
}
