//! PodTopologySpread: upstream's `podtopologyspread` plugin (`plugin.go`), which
//! spreads pods matching a selector evenly across topology domains (zones, nodes, any
//! node label).
//!
//! A pod's `spec.topologySpreadConstraints` apply as written: `DoNotSchedule` ones are
//! enforced by Filter ([`filtering`]), `ScheduleAnyway` ones preferred by Score
//! ([`scoring`]). A pod without constraints gets the plugin's default constraints
//! (`PodTopologySpreadArgs`: the system defaults, or an operator-given list), with a
//! selector built from the Services and controller selecting the pod ([`common`]); a
//! pod no workload selects gets none.

mod common;
mod filtering;
mod scoring;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apimachinery::labels::is_qualified_name;
use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use serde::Deserialize;

use self::common::{
    DO_NOT_SCHEDULE, InclusionPolicy, LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, SCHEDULE_ANYWAY,
    SpreadConstraint, default_selector, filter_spread_constraints, node_labels,
    node_labels_match_spread_constraints, pod_labels, pod_labels_match_spread_constraints,
    pod_spread_constraints,
};
use crate::framework::events::EventObject;
use crate::framework::registry::{Handle, WorkloadSelector, decode_args};
use crate::framework::{
    ActionType, ClusterEventWithHint, EventResource, FilterPlugin, Plugin, PodInfo,
    PreFilterPlugin, PreScorePlugin, QueueingHint, ScorePlugin,
};

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";

/// The reason for a node where the pod would break a constraint's skew (upstream's
/// `ErrReasonConstraintsNotMatch`).
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// The reason for a node without a constraint's topology label (upstream's
/// `ErrReasonNodeLabelNotMatch`).
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// `defaultingType: System`: the built-in default constraints.
pub const SYSTEM_DEFAULTING: &str = "System";
/// `defaultingType: List`: the operator's `defaultConstraints`.
pub const LIST_DEFAULTING: &str = "List";

/// The plugin's arguments (upstream's `PodTopologySpreadArgs`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTopologySpreadArgs {
    /// Constraints for pods without any, used with `defaultingType: List`; they must
    /// not have a label selector (it is deduced per pod).
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// `System` (the default) or `List`.
    pub defaulting_type: String,
}

/// The system default constraints (upstream's `systemDefaultConstraints`): spread
/// softly by node (skew 3) and by zone (skew 5).
fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    [(LABEL_HOSTNAME, 3), (LABEL_TOPOLOGY_ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| TopologySpreadConstraint {
            topology_key: key.to_owned(),
            when_unsatisfiable: SCHEDULE_ANYWAY.to_owned(),
            max_skew: skew,
            ..Default::default()
        })
        .collect()
}

/// Upstream's `utilerrors.Aggregate` message: one error alone, several in brackets.
fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

/// Validates the arguments with upstream's messages (`ValidatePodTopologySpreadArgs`,
/// which repeats the API's constraint checks and forbids selectors).
pub fn validate_args(args: &PodTopologySpreadArgs) -> Result<(), String> {
    let mut errs = Vec::new();
    let defaulting = args.defaulting_type.as_str();
    if defaulting != SYSTEM_DEFAULTING && defaulting != LIST_DEFAULTING {
        errs.push(format!(
            "defaultingType: Unsupported value: {defaulting:?}: supported values: \"System\", \"List\""
        ));
    } else if defaulting == SYSTEM_DEFAULTING && !args.default_constraints.is_empty() {
        errs.push(format!(
            "defaultingType: Invalid value: {defaulting:?}: when .defaultConstraints are not empty"
        ));
    }
    for (i, c) in args.default_constraints.iter().enumerate() {
        let path = format!("defaultConstraints[{i}]");
        if c.max_skew <= 0 {
            errs.push(format!(
                "{path}.maxSkew: Invalid value: {}: not in valid range (0, inf)",
                c.max_skew
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(format!(
                "{path}.topologyKey: Required value: can not be empty"
            ));
        } else {
            for msg in is_qualified_name(&c.topology_key) {
                errs.push(format!(
                    "{path}.topologyKey: Invalid value: {:?}: {msg}",
                    c.topology_key
                ));
            }
        }
        match c.when_unsatisfiable.as_str() {
            "" => errs.push(format!(
                "{path}.whenUnsatisfiable: Required value: can not be empty"
            )),
            DO_NOT_SCHEDULE | SCHEDULE_ANYWAY => {}
            other => errs.push(format!(
                "{path}.whenUnsatisfiable: Unsupported value: {other:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
            )),
        }
        if c.label_selector.is_some() {
            errs.push(format!(
                "{path}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
            ));
        }
        let repeated = args.default_constraints[..i].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        });
        if repeated {
            errs.push(format!(
                "{path}: Duplicate value: \"{{{}, {}}}\"",
                c.topology_key, c.when_unsatisfiable
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(aggregate(&errs))
    }
}

/// Spreads matching pods across topology domains.
pub struct PodTopologySpread {
    /// The constraints for pods without their own.
    default_constraints: Vec<TopologySpreadConstraint>,
    /// Whether those are the system defaults (nodes lacking a zone label still count
    /// for hostname spreading then).
    system_defaulted: bool,
    /// Per namespace, the selectors of Services, RCs, RSs and StatefulSets.
    workload_selectors: Arc<RwLock<HashMap<String, Vec<WorkloadSelector>>>>,
}

impl PodTopologySpread {
    /// Decodes, defaults and validates the arguments and builds the plugin.
    pub fn from_args(
        args: Option<&serde_json::Value>,
        handle: &Handle,
    ) -> Result<PodTopologySpread, String> {
        let mut args: PodTopologySpreadArgs = decode_args(NAME, args)?;
        // upstream's SetDefaults_PodTopologySpreadArgs
        if args.defaulting_type.is_empty() {
            args.defaulting_type = SYSTEM_DEFAULTING.to_owned();
        }
        validate_args(&args)?;
        let system_defaulted = args.defaulting_type == SYSTEM_DEFAULTING;
        let default_constraints = if system_defaulted {
            system_default_constraints()
        } else {
            args.default_constraints
        };
        Ok(PodTopologySpread {
            default_constraints,
            system_defaulted,
            workload_selectors: handle.workload_selectors.clone(),
        })
    }

    /// The pod's constraints for `action` (`DoNotSchedule` or `ScheduleAnyway`): its
    /// own, or the defaults (upstream's `getConstraints` and `initPreScoreState`).
    fn get_constraints(
        &self,
        pod: &PodInfo,
        action: &str,
    ) -> Result<Vec<SpreadConstraint>, String> {
        let kind = if action == DO_NOT_SCHEDULE {
            "hard"
        } else {
            "soft"
        };
        let own = pod_spread_constraints(&pod.pod);
        if !own.is_empty() {
            return filter_spread_constraints(own, pod_labels(&pod.pod), action)
                .map_err(|e| format!("obtaining pod's {kind} topology spread constraints: {e}"));
        }
        self.build_default_constraints(pod, action)
            .map_err(|e| format!("setting default {kind} topology spread constraints: {e}"))
    }

    /// The default constraints for `action` with the selector of the workloads
    /// selecting the pod; none when no workload does (upstream's
    /// `buildDefaultConstraints`).
    fn build_default_constraints(
        &self,
        pod: &PodInfo,
        action: &str,
    ) -> Result<Vec<SpreadConstraint>, apimachinery::labels::LabelSelectorError> {
        let mut constraints =
            filter_spread_constraints(&self.default_constraints, pod_labels(&pod.pod), action)?;
        if constraints.is_empty() {
            return Ok(constraints);
        }
        let selector = {
            let workloads = self
                .workload_selectors
                .read()
                .unwrap_or_else(|e| e.into_inner());
            default_selector(
                pod,
                workloads.get(pod.namespace()).map_or(&[], Vec::as_slice),
            )
        };
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        for c in &mut constraints {
            c.selector = selector.clone();
        }
        Ok(constraints)
    }
}

/// The hard constraints a queueing hint can know of: the pod's own. Hints are plain
/// functions without the plugin's defaults, so `None` (meaning "requeue to be safe")
/// for a pod relying on default constraints or with constraints that do not parse.
fn hint_constraints(pod: &Pod) -> Option<Vec<SpreadConstraint>> {
    let own = pod_spread_constraints(pod);
    if own.is_empty() {
        return None;
    }
    filter_spread_constraints(own, pod_labels(pod), DO_NOT_SCHEDULE).ok()
}

/// Whether `incoming` takes part in `pod`'s spreading: it is the pod itself, or an
/// assigned pod of the same namespace (upstream's `involvedInTopologySpreading`).
fn involved_in_topology_spreading(incoming: &Pod, pod: &PodInfo) -> bool {
    incoming.metadata.uid.as_deref().unwrap_or("") == pod.uid()
        || (incoming
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
            && incoming.metadata.namespace.as_deref().unwrap_or("default") == pod.namespace())
}

/// Requeues after a pod was added, changed or deleted only when the change can move
/// a count the pod was rejected on (upstream's `isSchedulableAfterPodChange`).
fn schedulable_after_pod_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let as_pod = |o: Option<&EventObject>| match o {
        None => Ok(None),
        Some(EventObject::Pod(p)) => Ok(Some(p.clone())),
        Some(_) => Err(()),
    };
    let (Ok(original), Ok(modified)) = (as_pod(old), as_pod(new)) else {
        // not a pod: upstream answers Queue on a type error
        return QueueingHint::Queue;
    };
    let uninvolved = |p: &Option<Arc<Pod>>| {
        p.as_ref()
            .is_some_and(|p| !involved_in_topology_spreading(p, pod))
    };
    if uninvolved(&modified) || uninvolved(&original) {
        return QueueingHint::Skip;
    }
    let Some(constraints) = hint_constraints(&pod.pod) else {
        return QueueingHint::Queue;
    };
    let queue_if = |b: bool| {
        if b {
            QueueingHint::Queue
        } else {
            QueueingHint::Skip
        }
    };
    match (original, modified) {
        (Some(original), Some(modified)) => {
            let tolerations = |p: &Pod| p.spec.as_ref().and_then(|s| s.tolerations.clone());
            if modified.metadata.uid.as_deref().unwrap_or("") == pod.uid()
                && tolerations(&modified) != tolerations(&original)
                && constraints
                    .iter()
                    .any(|c| c.node_taints_policy == InclusionPolicy::Honor)
            {
                // a new toleration may admit tainted nodes as domains
                return QueueingHint::Queue;
            }
            let (before, after) = (pod_labels(&original), pod_labels(&modified));
            if before == after {
                return QueueingHint::Skip;
            }
            queue_if(
                constraints
                    .iter()
                    .any(|c| c.selector.matches(before) != c.selector.matches(after)),
            )
        }
        (None, Some(added)) => queue_if(pod_labels_match_spread_constraints(
            &constraints,
            pod_labels(&added),
        )),
        (Some(deleted), None) => queue_if(pod_labels_match_spread_constraints(
            &constraints,
            pod_labels(&deleted),
        )),
        (None, None) => QueueingHint::Queue,
    }
}

/// Requeues after a node change only when it can change the domains (upstream's
/// `isSchedulableAfterNodeChange`): a node with every topology key added or deleted,
/// one gaining or losing a key, or a matching node whose topology values or taints
/// changed.
fn schedulable_after_node_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let as_node = |o: Option<&EventObject>| match o {
        None => Ok(None),
        Some(EventObject::Node(n)) => Ok(Some(n.clone())),
        Some(_) => Err(()),
    };
    let (Ok(original), Ok(modified)) = (as_node(old), as_node(new)) else {
        return QueueingHint::Queue;
    };
    let Some(constraints) = hint_constraints(&pod.pod) else {
        return QueueingHint::Queue;
    };
    let matching = |n: &Option<Arc<k8s_openapi::api::core::v1::Node>>| {
        n.as_ref()
            .is_some_and(|n| node_labels_match_spread_constraints(node_labels(n), &constraints))
    };
    let (was, is) = (matching(&original), matching(&modified));
    match (original, modified) {
        (Some(original), Some(modified)) => {
            if was != is {
                return QueueingHint::Queue;
            }
            let (before, after) = (node_labels(&original), node_labels(&modified));
            let values_changed = constraints
                .iter()
                .any(|c| before.get(&c.topology_key) != after.get(&c.topology_key));
            let taints = |n: &k8s_openapi::api::core::v1::Node| {
                n.spec.as_ref().and_then(|s| s.taints.clone())
            };
            if is && (values_changed || taints(&original) != taints(&modified)) {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        (None, Some(_)) if is => QueueingHint::Queue,
        (Some(_), None) if was => QueueingHint::Queue,
        _ => QueueingHint::Skip,
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registrations with queueing hints on (the v1.33 default): assigned
        // pods added, relabeled or deleted change the counts, the pod's own new
        // tolerations may admit tainted domains; nodes added, deleted, relabeled or
        // retainted change the domains.
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::ADD
                    .or(ActionType::UPDATE_POD_LABEL)
                    .or(ActionType::UPDATE_POD_TOLERATION)
                    .or(ActionType::DELETE),
                schedulable_after_pod_change,
            ),
            ClusterEventWithHint::with_hint(
                EventResource::Node,
                ActionType::ADD
                    .or(ActionType::DELETE)
                    .or(ActionType::UPDATE_NODE_LABEL)
                    .or(ActionType::UPDATE_NODE_TAINT),
                schedulable_after_node_change,
            ),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The constructor.
pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(PodTopologySpread::from_args(args, handle)?))
}

/// Builders shared by the tests of this plugin's files.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{Value, json};

    use super::PodTopologySpread;
    use crate::framework::registry::Handle;
    use crate::framework::{NodeInfo, PodInfo, Snapshot};

    /// The plugin from JSON arguments, with no workloads known.
    pub fn plugin(args: Value) -> PodTopologySpread {
        PodTopologySpread::from_args(Some(&args), &Handle::default()).unwrap()
    }

    /// A pod from JSON.
    pub fn pod(v: Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(v).unwrap()
    }

    fn labels_of(labels: &[(&str, &str)]) -> Value {
        Value::Object(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        )
    }

    /// A node with labels, as JSON.
    pub fn node(name: &str, labels: &[(&str, &str)]) -> Value {
        json!({"metadata": {"name": name, "labels": labels_of(labels)}})
    }

    /// An assigned pod in the default namespace, as JSON.
    pub fn placed(name: &str, node: &str, labels: &[(&str, &str)]) -> Value {
        placed_in("default", name, node, labels)
    }

    /// An assigned pod in namespace `ns`, as JSON.
    pub fn placed_in(ns: &str, name: &str, node: &str, labels: &[(&str, &str)]) -> Value {
        json!({
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}/{name}"), "labels": labels_of(labels)},
            "spec": {"nodeName": node, "containers": []}
        })
    }

    /// The pod to schedule, named `p`, with labels and constraints.
    pub fn spread_pod(labels: &[(&str, &str)], constraints: Value) -> Value {
        json!({
            "metadata": {"name": "p", "uid": "p", "labels": labels_of(labels)},
            "spec": {"containers": [], "topologySpreadConstraints": constraints}
        })
    }

    /// A label selector `key` exists.
    pub fn exists(key: &str) -> Value {
        json!({"matchExpressions": [{"key": key, "operator": "Exists"}]})
    }

    /// Upstream's `fooSelector`.
    pub fn foo_selector() -> Value {
        exists("foo")
    }

    /// A `DoNotSchedule` constraint.
    pub fn hard(max_skew: i32, key: &str, selector: Value) -> Value {
        json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector})
    }

    /// A `ScheduleAnyway` constraint.
    pub fn soft(max_skew: i32, key: &str, selector: Value) -> Value {
        json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector})
    }

    /// A required node affinity `key In values`.
    pub fn node_affinity_in(key: &str, values: &[&str]) -> Value {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": values}]}]
        }}})
    }

    /// A snapshot of `nodes` with `pods` placed by `spec.nodeName`, in order.
    pub fn snapshot(nodes: &[Value], pods: &[Value]) -> Snapshot {
        let infos = nodes
            .iter()
            .map(|n| {
                let node: k8s_openapi::api::core::v1::Node =
                    serde_json::from_value(n.clone()).unwrap();
                let name = node.metadata.name.clone().unwrap();
                let mut info = NodeInfo::new(node);
                for p in pods.iter().filter(|p| p["spec"]["nodeName"] == json!(name)) {
                    info.add_pod(std::sync::Arc::new(PodInfo::new(pod(p.clone()))));
                }
                info
            })
            .collect();
        Snapshot::from_nodes(infos)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn args_default_to_the_system_constraints() {
        let p = plugin(json!({}));
        assert!(p.system_defaulted);
        assert_eq!(p.default_constraints, system_default_constraints());
        let p = plugin(json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
        ]}));
        assert!(!p.system_defaulted);
        assert_eq!(p.default_constraints.len(), 1);
        assert!(new(None, &Handle::default()).is_ok());
    }

    #[test]
    fn args_validation_messages_match_upstream() {
        let err = |args: serde_json::Value| {
            PodTopologySpread::from_args(Some(&args), &Handle::default())
                .err()
                .unwrap()
        };
        assert_eq!(
            err(json!({"defaultingType": "Bogus"})),
            r#"defaultingType: Unsupported value: "Bogus": supported values: "System", "List""#
        );
        assert_eq!(
            err(json!({"defaultingType": "System", "defaultConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
            ]})),
            r#"defaultingType: Invalid value: "System": when .defaultConstraints are not empty"#
        );
        let e = err(json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 0, "topologyKey": "", "whenUnsatisfiable": "Sometimes"},
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"a": "b"}}},
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 1, "topologyKey": "bad key", "whenUnsatisfiable": ""}
        ]}));
        for want in [
            "defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)",
            "defaultConstraints[0].topologyKey: Required value: can not be empty",
            r#"defaultConstraints[0].whenUnsatisfiable: Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway""#,
            "defaultConstraints[1].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod",
            r#"defaultConstraints[2]: Duplicate value: "{zone, DoNotSchedule}""#,
            r#"defaultConstraints[3].topologyKey: Invalid value: "bad key": "#,
            "defaultConstraints[3].whenUnsatisfiable: Required value: can not be empty",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        assert!(e.starts_with('[') && e.ends_with(']'), "{e}");
    }

    #[test]
    fn registers_pod_and_node_events() {
        let events = plugin(json!({})).events_to_register();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.resource, EventResource::Pod);
        assert!(
            events[0]
                .event
                .action
                .intersects(ActionType::UPDATE_POD_LABEL)
        );
        assert!(events[0].event.action.intersects(ActionType::DELETE));
        assert_eq!(events[1].event.resource, EventResource::Node);
        assert!(
            events[1]
                .event
                .action
                .intersects(ActionType::UPDATE_NODE_TAINT)
        );
        assert!(
            !events[1]
                .event
                .action
                .intersects(ActionType::UPDATE_NODE_ALLOCATABLE)
        );
    }

    fn obj_pod(v: serde_json::Value) -> EventObject {
        EventObject::Pod(Arc::new(pod(v)))
    }

    fn obj_node(name: &str, labels: &[(&str, &str)]) -> EventObject {
        EventObject::Node(Arc::new(
            serde_json::from_value(node(name, labels)).unwrap(),
        ))
    }

    #[test]
    fn pod_hint_requeues_only_for_matching_assigned_pods() {
        let p = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([hard(1, "zone", foo_selector())]),
        )));
        let matching = obj_pod(placed("q", "node-a", &[("foo", "")]));
        let unmatched = obj_pod(placed("q", "node-a", &[("bar", "")]));
        let other_ns = obj_pod(placed_in("other", "q", "node-a", &[("foo", "")]));
        let unassigned = obj_pod(
            json!({"metadata": {"name": "q", "namespace": "default", "labels": {"foo": ""}}, "spec": {"containers": []}}),
        );
        let hint = schedulable_after_pod_change;
        assert_eq!(hint(&p, None, Some(&matching)), QueueingHint::Queue);
        assert_eq!(hint(&p, None, Some(&unmatched)), QueueingHint::Skip);
        assert_eq!(hint(&p, None, Some(&other_ns)), QueueingHint::Skip);
        assert_eq!(hint(&p, None, Some(&unassigned)), QueueingHint::Skip);
        assert_eq!(hint(&p, Some(&matching), None), QueueingHint::Queue);
        // a label change that flips the match
        assert_eq!(
            hint(&p, Some(&unmatched), Some(&matching)),
            QueueingHint::Queue
        );
        let also_matching = obj_pod(placed("q", "node-a", &[("foo", ""), ("x", "y")]));
        assert_eq!(
            hint(&p, Some(&matching), Some(&also_matching)),
            QueueingHint::Skip
        );
        // a pod relying on default constraints: requeue to be safe
        let bare = PodInfo::new(pod(
            json!({"metadata": {"name": "p", "labels": {"foo": ""}}, "spec": {"containers": []}}),
        ));
        assert_eq!(hint(&bare, None, Some(&unmatched)), QueueingHint::Queue);
    }

    #[test]
    fn pod_hint_requeues_on_own_toleration_change_with_taints_policy_honor() {
        let mut c = hard(1, "zone", foo_selector());
        c["nodeTaintsPolicy"] = json!("Honor");
        let spec = spread_pod(&[("foo", "")], json!([c]));
        let p = PodInfo::new(pod(spec.clone()));
        let mut tolerating = spec.clone();
        tolerating["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        let (old, new) = (obj_pod(spec), obj_pod(tolerating));
        assert_eq!(
            schedulable_after_pod_change(&p, Some(&old), Some(&new)),
            QueueingHint::Queue
        );
    }

    #[test]
    fn node_hint_requeues_when_domains_change() {
        let p = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([hard(1, "zone", foo_selector())]),
        )));
        let hint = schedulable_after_node_change;
        let zoned = obj_node("n", &[("zone", "z1")]);
        let rezoned = obj_node("n", &[("zone", "z2")]);
        let bare = obj_node("n", &[]);
        let relabeled = obj_node("n", &[("zone", "z1"), ("x", "y")]);
        assert_eq!(hint(&p, None, Some(&zoned)), QueueingHint::Queue);
        assert_eq!(hint(&p, None, Some(&bare)), QueueingHint::Skip);
        assert_eq!(hint(&p, Some(&zoned), None), QueueingHint::Queue);
        assert_eq!(hint(&p, Some(&bare), Some(&zoned)), QueueingHint::Queue);
        assert_eq!(hint(&p, Some(&zoned), Some(&rezoned)), QueueingHint::Queue);
        assert_eq!(hint(&p, Some(&zoned), Some(&relabeled)), QueueingHint::Skip);
    }
}
