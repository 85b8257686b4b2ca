//! What Filter and Score share (upstream's `podtopologyspread/common.go` and the
//! `helper.DefaultSelector` it uses): a pod's spread constraints parsed once, with
//! `matchLabelKeys` merged into the selector and the node inclusion policies resolved;
//! the default constraints built from the workloads selecting the pod; and counting the
//! matching pods on a node.
//!
//! The feature gates upstream checks here (MinDomains, NodeInclusionPolicy,
//! MatchLabelKeys) are all on in v1.33, so their code paths are the only ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::labels::{LabelSelectorError, Labels, Selector};
use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;

use crate::framework::PodInfo;
use crate::framework::registry::WorkloadSelector;
use crate::plugins::node_affinity::RequiredNodeAffinity;
use crate::plugins::taint_toleration::{find_untolerated_taint, is_do_not_schedule_taint};

/// The well-known hostname label: constraints on it get per-node counting in Score.
pub(super) const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known zone label (the second system default constraint).
pub(super) const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// `whenUnsatisfiable` of hard constraints (Filter).
pub(super) const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
/// `whenUnsatisfiable` of soft constraints (Score).
pub(super) const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";

/// Whether a node inclusion policy makes the plugin look at the node's affinity or
/// taints (`nodeAffinityPolicy`, `nodeTaintsPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InclusionPolicy {
    /// Only nodes the pod could land on count as domains.
    Honor,
    /// Every node counts.
    Ignore,
}

impl InclusionPolicy {
    /// The API value, or `default` when unset. Upstream compares against `Honor` only,
    /// so any other value behaves as `Ignore`.
    fn parse(value: Option<&str>, default: InclusionPolicy) -> InclusionPolicy {
        match value {
            None => default,
            Some("Honor") => InclusionPolicy::Honor,
            Some(_) => InclusionPolicy::Ignore,
        }
    }
}

/// One spread constraint with its selector parsed (upstream's internal
/// `topologySpreadConstraint`).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SpreadConstraint {
    /// The largest allowed difference between a domain and the global minimum.
    pub max_skew: i32,
    /// The node label whose values are the domains.
    pub topology_key: String,
    /// Which pods count (the label selector ANDed with `matchLabelKeys`).
    pub selector: Selector,
    /// Below this many domains the global minimum is taken as 0 (1 when unset).
    pub min_domains: i32,
    /// Whether the pod's node selector and required affinity limit the domains.
    pub node_affinity_policy: InclusionPolicy,
    /// Whether nodes with untolerated taints are left out.
    pub node_taints_policy: InclusionPolicy,
}

impl SpreadConstraint {
    /// Whether `node` counts for this constraint under its inclusion policies
    /// (upstream's `matchNodeInclusionPolicies`).
    pub fn includes_node(&self, pod: &Pod, node: &Node, required: &RequiredNodeAffinity) -> bool {
        // parse errors in the pod's affinity count as no match, as upstream ignores them
        if self.node_affinity_policy == InclusionPolicy::Honor && !required.matches(node) {
            return false;
        }
        if self.node_taints_policy == InclusionPolicy::Honor {
            let taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_deref())
                .unwrap_or(&[]);
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or(&[]);
            if find_untolerated_taint(taints, tolerations, is_do_not_schedule_taint).is_some() {
                return false;
            }
        }
        true
    }
}

/// A node's labels (empty when it has none).
pub(super) fn node_labels(node: &Node) -> &Labels {
    static EMPTY: Labels = Labels::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// A pod's labels (empty when it has none).
pub(super) fn pod_labels(pod: &Pod) -> &Labels {
    static EMPTY: Labels = Labels::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// The pod's own `spec.topologySpreadConstraints`.
pub(super) fn pod_spread_constraints(pod: &Pod) -> &[TopologySpreadConstraint] {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[])
}

/// Whether the node has every constraint's topology key (upstream's
/// `nodeLabelsMatchSpreadConstraints`).
pub(super) fn node_labels_match_spread_constraints(
    labels: &Labels,
    constraints: &[SpreadConstraint],
) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Whether any constraint's selector matches `labels` (upstream's
/// `podLabelsMatchSpreadConstraints`).
pub(super) fn pod_labels_match_spread_constraints(
    constraints: &[SpreadConstraint],
    labels: &Labels,
) -> bool {
    constraints.iter().any(|c| c.selector.matches(labels))
}

/// Converts the API's label selector into a selector: `None` selects nothing, as
/// upstream's `LabelSelectorAsSelector`.
pub(super) fn selector_of(
    selector: Option<&ApiLabelSelector>,
) -> Result<Selector, LabelSelectorError> {
    crate::framework::types::label_selector(selector)
}

/// The constraints with `whenUnsatisfiable == action`, parsed (upstream's
/// `filterTopologySpreadConstraints`). `matchLabelKeys` become `key=value`
/// requirements taken from the pod's own labels; keys the pod lacks are ignored.
pub(super) fn filter_spread_constraints(
    constraints: &[TopologySpreadConstraint],
    pod_labels: &Labels,
    action: &str,
) -> Result<Vec<SpreadConstraint>, LabelSelectorError> {
    let mut result = Vec::new();
    for c in constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
    {
        let mut selector = selector_of(c.label_selector.as_ref())?;
        let match_labels: Labels = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod_labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if !match_labels.is_empty() {
            selector = merge_label_set_with_selector(&match_labels, &selector);
        }
        result.push(SpreadConstraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.unwrap_or(1),
            node_affinity_policy: InclusionPolicy::parse(
                c.node_affinity_policy.as_deref(),
                InclusionPolicy::Honor,
            ),
            node_taints_policy: InclusionPolicy::parse(
                c.node_taints_policy.as_deref(),
                InclusionPolicy::Ignore,
            ),
        });
    }
    Ok(result)
}

/// `key=value` for every label, plus the requirements of `selector`. A selector that
/// selects nothing contributes no requirements, so the labels alone decide (as
/// upstream's `mergeLabelSetWithSelector`).
fn merge_label_set_with_selector(labels: &Labels, selector: &Selector) -> Selector {
    let mut merged = Selector::from_set(labels);
    for r in selector.requirements().into_iter().flatten() {
        merged = merged.add_requirement(r.clone());
    }
    merged
}

/// How many of `pods` are in namespace `ns`, not terminating, and match `selector`
/// (upstream's `countPodsMatchSelector`).
pub(super) fn count_pods_match_selector(
    pods: &[Arc<PodInfo>],
    selector: &Selector,
    ns: &str,
) -> i64 {
    pods.iter()
        .filter(|p| {
            // terminating pods are about to free their domain (upstream #87621)
            p.pod.metadata.deletion_timestamp.is_none()
                && p.namespace() == ns
                && selector.matches(pod_labels(&p.pod))
        })
        .count() as i64
}

/// The selector of the workloads the pod belongs to (upstream's
/// `helper.DefaultSelector`): the selectors of the Services selecting it merged as one
/// label set, with its controller's selector (ReplicationController, ReplicaSet or
/// StatefulSet, found by the controller owner reference) added. Empty when nothing
/// selects the pod.
pub(super) fn default_selector(pod: &PodInfo, workloads: &[WorkloadSelector]) -> Selector {
    let labels = pod_labels(&pod.pod);
    // Services and ReplicationControllers have map selectors: merged key by key, the
    // later one winning, as `labels.Merge`.
    let mut label_set: BTreeMap<String, apimachinery::labels::Requirement> = BTreeMap::new();
    for w in workloads
        .iter()
        .filter(|w| w.kind == "Service" && w.selector.matches(labels))
    {
        for r in w.selector.requirements().into_iter().flatten() {
            label_set.insert(r.key().to_owned(), r.clone());
        }
    }
    let from_set = |set: &BTreeMap<String, apimachinery::labels::Requirement>| {
        set.values()
            .fold(Selector::everything(), |s, r| s.add_requirement(r.clone()))
    };
    let mut selector = from_set(&label_set);

    let owner = pod
        .pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let Some(owner) = owner else {
        return selector;
    };
    // upstream compares the full group/version/kind: only core/v1 RCs and apps/v1
    // ReplicaSets and StatefulSets count
    let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("v1", "ReplicationController") => "ReplicationController",
        ("apps/v1", "ReplicaSet") => "ReplicaSet",
        ("apps/v1", "StatefulSet") => "StatefulSet",
        _ => return selector,
    };
    let Some(workload) = workloads
        .iter()
        .find(|w| w.kind == kind && w.name == owner.name)
    else {
        return selector;
    };
    if kind == "ReplicationController" {
        for r in workload.selector.requirements().into_iter().flatten() {
            label_set.insert(r.key().to_owned(), r.clone());
        }
        selector = from_set(&label_set);
    } else {
        for r in workload.selector.requirements().into_iter().flatten() {
            selector = selector.add_requirement(r.clone());
        }
    }
    selector
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::pod_topology_spread::testing::*;
    use serde_json::json;

    #[test]
    fn match_label_keys_are_anded_with_the_selector_from_the_pods_labels() {
        let p = pod(json!({
            "metadata": {"name": "p", "labels": {"foo": "", "baz": "1"}},
            "spec": {"containers": [], "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                 "labelSelector": foo_selector(), "matchLabelKeys": ["baz", "missing"]},
                {"maxSkew": 1, "topologyKey": "node", "whenUnsatisfiable": "ScheduleAnyway",
                 "matchLabelKeys": ["baz"]}
            ]}
        }));
        let labels = pod_labels(&p);
        let hard =
            filter_spread_constraints(pod_spread_constraints(&p), labels, DO_NOT_SCHEDULE).unwrap();
        assert_eq!(hard.len(), 1);
        assert_eq!(hard[0].selector.to_string(), "baz=1,foo");
        assert_eq!(hard[0].min_domains, 1);
        assert_eq!(hard[0].node_affinity_policy, InclusionPolicy::Honor);
        assert_eq!(hard[0].node_taints_policy, InclusionPolicy::Ignore);
        // a nil selector with matchLabelKeys selects the pods with those labels
        let soft =
            filter_spread_constraints(pod_spread_constraints(&p), labels, SCHEDULE_ANYWAY).unwrap();
        assert_eq!(soft[0].selector.to_string(), "baz=1");
        assert!(soft[0].selector.matches(labels));
    }

    #[test]
    fn default_selector_merges_services_and_the_controller() {
        let p = PodInfo::new(pod(json!({
            "metadata": {"name": "p", "labels": {"foo": "bar", "baz": "sup"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "u", "controller": true}]},
            "spec": {"containers": []}
        })));
        let parse = |s: &str| Selector::parse(s).unwrap();
        let workloads = vec![
            WorkloadSelector {
                kind: "Service",
                name: "s1".into(),
                selector: parse("foo=bar"),
            },
            WorkloadSelector {
                kind: "Service",
                name: "s2".into(),
                selector: parse("foo=other"),
            },
            WorkloadSelector {
                kind: "ReplicaSet",
                name: "rs1".into(),
                selector: parse("baz"),
            },
            WorkloadSelector {
                kind: "ReplicaSet",
                name: "rs2".into(),
                selector: parse("tar"),
            },
        ];
        assert_eq!(default_selector(&p, &workloads).to_string(), "baz,foo=bar");
        // nothing selects the pod: empty
        assert!(default_selector(&p, &workloads[1..2]).is_empty());
        // the controller's selector alone
        assert_eq!(default_selector(&p, &workloads[2..]).to_string(), "baz");
    }
}
