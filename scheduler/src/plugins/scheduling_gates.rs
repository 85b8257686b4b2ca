//! SchedulingGates: the PreEnqueue plugin that keeps a pod out of the active queue while
//! its `spec.schedulingGates` is non-empty (upstream's `schedulinggates` plugin).
//!
//! Gates are removed by whoever added them (a controller, an operator); the pod is
//! retried when the last one goes, which is the one event this plugin registers.

use std::sync::Arc;

use crate::framework::registry::Handle;
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, EventResource, Plugin, PodInfo, PreEnqueuePlugin,
    Status,
};

/// The plugin's name.
pub const NAME: &str = "SchedulingGates";

/// Rejects pods that still carry scheduling gates.
#[derive(Debug, Default)]
pub struct SchedulingGates;

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Only the pod's own update that removes its last gate can let it in; upstream's
        // hint for this event always answers Queue, which is the same as no hint.
        vec![ClusterEventWithHint::on(
            EventResource::UnscheduledPod,
            ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED,
        )]
    }

    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        let gates: Vec<&str> = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .into_iter()
            .flatten()
            .map(|g| g.name.as_str())
            .collect();
        if gates.is_empty() {
            return Status::success();
        }
        // Upstream formats the names with Go's %v of a []string: `[a b]`.
        Status::new(
            Code::UnschedulableAndUnresolvable,
            format!("waiting for scheduling gates: [{}]", gates.join(" ")),
        )
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(SchedulingGates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> PodInfo {
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
        )
        .unwrap();
        PodInfo::new(p)
    }

    #[test]
    fn pods_without_gates_pass() {
        let pl = SchedulingGates;
        assert!(pl.pre_enqueue(&pod(json!({"containers": []}))).is_success());
        assert!(
            pl.pre_enqueue(&pod(json!({"containers": [], "schedulingGates": []})))
                .is_success()
        );
    }

    #[test]
    fn gated_pods_wait_with_upstreams_message() {
        let pl = SchedulingGates;
        let status = pl.pre_enqueue(&pod(json!({
            "containers": [],
            "schedulingGates": [{"name": "foo"}, {"name": "bar"}]
        })));
        assert_eq!(status.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(status.message(), "waiting for scheduling gates: [foo bar]");
        let one = pl.pre_enqueue(&pod(
            json!({"containers": [], "schedulingGates": [{"name": "foo"}]}),
        ));
        assert_eq!(one.message(), "waiting for scheduling gates: [foo]");
    }

    #[test]
    fn registers_gate_removal_and_pre_enqueue_only() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_pre_enqueue().is_some());
        assert!(pl.as_filter().is_none());
        let events = pl.events_to_register();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.resource, EventResource::UnscheduledPod);
        assert_eq!(
            events[0].event.action,
            ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED
        );
    }
}
