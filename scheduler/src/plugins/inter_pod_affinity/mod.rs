//! InterPodAffinity: upstream's `interpodaffinity` plugin (`plugin.go`), which places
//! pods relative to other pods by topology: near the pods their affinity terms select,
//! away from those their anti-affinity terms select, and never where an existing pod's
//! required anti-affinity forbids them.
//!
//! This module holds the plugin value, its arguments, the queueing hints and the parsed
//! form of `PodAffinityTerm` shared by [`filtering`] (PreFilter/Filter, required terms)
//! and [`scoring`] (PreScore/Score, preferred terms and existing pods' terms).
//!
//! A parsed term is upstream's `framework.AffinityTerm`: the namespaces it names (the
//! owning pod's own namespace when it names none and has no namespace selector), a
//! namespace selector, the pod label selector and the topology key. The incoming pod's
//! namespace selectors are resolved into namespace names once per cycle (upstream's
//! `mergeAffinityTermNamespacesIfNotEmpty`); existing pods' terms are matched against
//! the incoming pod's namespace labels instead.

pub mod filtering;
pub mod scoring;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use apimachinery::labels::{LabelSelectorRequirement as ApiRequirement, Labels, Selector};
use k8s_openapi::api::core::v1::{Affinity, Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use serde::Deserialize;

use crate::framework::events::EventObject;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ActionType, ClusterEventWithHint, EventResource, FilterPlugin, Plugin, PodInfo,
    PreFilterPlugin, PreScorePlugin, QueueingHint, ScorePlugin,
};

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";

/// The default of `hardPodAffinityWeight` (upstream's `DefaultHardPodAffinityWeight`).
pub const DEFAULT_HARD_POD_AFFINITY_WEIGHT: i32 = 1;
/// The highest `hardPodAffinityWeight` validation accepts.
pub const MAX_HARD_POD_AFFINITY_WEIGHT: i32 = 100;

/// The plugin's arguments (upstream's `InterPodAffinityArgs`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InterPodAffinityArgs {
    /// The score weight of an existing pod's required affinity term that the incoming
    /// pod matches (0..=100).
    pub hard_pod_affinity_weight: i32,
    /// Skips scoring entirely for pods without preferred inter-pod terms of their own,
    /// instead of scoring them by existing pods' terms.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: DEFAULT_HARD_POD_AFFINITY_WEIGHT,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

impl InterPodAffinityArgs {
    /// Upstream's `ValidateInterPodAffinityArgs`.
    pub fn validate(&self) -> Result<(), String> {
        let w = self.hard_pod_affinity_weight;
        if !(0..=MAX_HARD_POD_AFFINITY_WEIGHT).contains(&w) {
            return Err(format!(
                "hardPodAffinityWeight: Invalid value: {w}: not in valid range [0-{MAX_HARD_POD_AFFINITY_WEIGHT}]"
            ));
        }
        Ok(())
    }
}

/// Places pods by the pods around them.
pub struct InterPodAffinity {
    args: InterPodAffinityArgs,
    /// Namespace name → labels, kept current by the informers (upstream's nsLister).
    namespace_labels: Arc<RwLock<HashMap<String, BTreeMap<String, String>>>>,
}

impl std::fmt::Debug for InterPodAffinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterPodAffinity")
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl InterPodAffinity {
    /// A plugin with `args` reading namespaces from `handle`.
    pub fn with_args(args: InterPodAffinityArgs, handle: &Handle) -> InterPodAffinity {
        InterPodAffinity {
            args,
            namespace_labels: handle.namespace_labels.clone(),
        }
    }

    /// The labels of namespace `ns`; empty when it is unknown (upstream's
    /// `GetNamespaceLabelsSnapshot`).
    fn namespace_labels_of(&self, ns: &str) -> Labels {
        let map = self
            .namespace_labels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(ns).cloned().unwrap_or_default()
    }

    /// Resolves a term's non-empty namespace selector into namespace names, so that
    /// matching the incoming pod's terms needs no namespace lookups (upstream's
    /// `mergeAffinityTermNamespacesIfNotEmpty`). An empty selector (all namespaces)
    /// stays as it is.
    fn resolve_namespaces(&self, term: &mut AffinityTerm) {
        if term.namespace_selector.is_empty() {
            return;
        }
        let map = self
            .namespace_labels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (name, labels) in map.iter() {
            if term.namespace_selector.matches(labels) {
                term.namespaces.insert(name.clone());
            }
        }
        term.namespace_selector = Selector::nothing();
    }
}

// ---- parsed terms (upstream's framework.AffinityTerm) ----

/// A parsed `PodAffinityTerm`.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces named by the term (or the owner's own).
    pub namespaces: BTreeSet<String>,
    /// The pod label selector, with matchLabelKeys/mismatchLabelKeys merged in.
    pub selector: Selector,
    /// The node label whose values define the topology domains.
    pub topology_key: String,
    /// Selects namespaces by their labels; `nothing()` when unset.
    pub namespace_selector: Selector,
}

/// A parsed `WeightedPodAffinityTerm`.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    /// The term.
    pub term: AffinityTerm,
    /// Its weight.
    pub weight: i32,
}

/// The namespace a pod lives in, as the framework's [`PodInfo::namespace`] has it.
fn namespace_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn labels_of(pod: &Pod) -> &Labels {
    static EMPTY: Labels = Labels::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

impl AffinityTerm {
    /// Whether `pod` is in the term's namespaces (or in a namespace whose labels,
    /// `ns_labels`, the namespace selector matches) and its labels match the selector
    /// (upstream's `AffinityTerm.Matches`).
    pub fn matches(&self, pod: &Pod, ns_labels: &Labels) -> bool {
        (self.namespaces.contains(namespace_of(pod)) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(labels_of(pod))
    }
}

/// Parses one term of `owner`. The label selector gets `key in (owner's value)` for
/// each matchLabelKeys key and `key notin (owner's value)` for each mismatchLabelKeys
/// key the owner has a label for (MatchLabelKeysInPodAffinity, on in 1.33). Upstream
/// merges these in the API server when the pod is created; doing it here as well
/// covers pods that did not pass through such an API server, and merging twice adds
/// the same requirement twice, which selects the same pods.
fn parse_term(owner: &Pod, term: &PodAffinityTerm) -> Result<AffinityTerm, String> {
    let mut selector = term
        .label_selector
        .as_ref()
        .map(crate::framework::types::api_label_selector);
    if let Some(sel) = selector.as_mut() {
        let owner_labels = labels_of(owner);
        let keys = [
            (term.match_label_keys.as_deref(), "In"),
            (term.mismatch_label_keys.as_deref(), "NotIn"),
        ];
        for (keys, operator) in keys {
            for key in keys.into_iter().flatten() {
                if let Some(value) = owner_labels.get(key) {
                    sel.match_expressions
                        .get_or_insert_with(Vec::new)
                        .push(ApiRequirement {
                            key: key.clone(),
                            operator: operator.to_owned(),
                            values: Some(vec![value.clone()]),
                        });
                }
            }
        }
    }
    let selector = Selector::from_label_selector(selector.as_ref()).map_err(|e| e.to_string())?;
    let namespace_selector = Selector::from_label_selector(
        term.namespace_selector
            .as_ref()
            .map(crate::framework::types::api_label_selector)
            .as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let named = term.namespaces.as_deref().unwrap_or_default();
    let namespaces = if named.is_empty() && term.namespace_selector.is_none() {
        BTreeSet::from([namespace_of(owner).to_owned()])
    } else {
        named.iter().cloned().collect()
    };
    Ok(AffinityTerm {
        namespaces,
        selector,
        topology_key: term.topology_key.clone(),
        namespace_selector,
    })
}

fn parse_terms(owner: &Pod, terms: &[PodAffinityTerm]) -> Result<Vec<AffinityTerm>, String> {
    terms.iter().map(|t| parse_term(owner, t)).collect()
}

fn parse_weighted_terms(
    owner: &Pod,
    terms: &[WeightedPodAffinityTerm],
) -> Result<Vec<WeightedAffinityTerm>, String> {
    terms
        .iter()
        .map(|t| {
            Ok(WeightedAffinityTerm {
                term: parse_term(owner, &t.pod_affinity_term)?,
                weight: t.weight,
            })
        })
        .collect()
}

/// A pod's inter-pod terms, parsed (the term lists of upstream's `PodInfo`).
#[derive(Clone, Debug, Default)]
pub struct PodTerms {
    /// Required affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred affinity terms.
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    /// Preferred anti-affinity terms.
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

fn affinity_of(pod: &Pod) -> Option<&Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()
}

/// The pod's required affinity terms as written.
fn required_affinity_terms(pod: &Pod) -> &[PodAffinityTerm] {
    affinity_of(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The pod's required anti-affinity terms as written.
fn required_anti_affinity_terms(pod: &Pod) -> &[PodAffinityTerm] {
    affinity_of(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The pod's preferred affinity terms as written.
fn preferred_affinity_terms(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity_of(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The pod's preferred anti-affinity terms as written.
fn preferred_anti_affinity_terms(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity_of(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The parsed list, or an empty one with its error recorded.
fn kept<T>(errs: &mut Vec<String>, what: &str, parsed: Result<Vec<T>, String>) -> Vec<T> {
    parsed.unwrap_or_else(|e| {
        errs.push(format!("{what}: {e}"));
        Vec::new()
    })
}

impl PodTerms {
    /// Parses every list of `pod`. A list with a selector that does not parse is left
    /// empty and its error returned beside (upstream's `NewPodInfo`, which keeps the
    /// other lists and reports the errors aggregated).
    pub fn parse(pod: &Pod) -> (PodTerms, Vec<String>) {
        let mut errs = Vec::new();
        let terms = PodTerms {
            required_affinity: kept(
                &mut errs,
                "requiredAffinityTerms",
                parse_terms(pod, required_affinity_terms(pod)),
            ),
            required_anti_affinity: kept(
                &mut errs,
                "requiredAntiAffinityTerms",
                parse_terms(pod, required_anti_affinity_terms(pod)),
            ),
            preferred_affinity: kept(
                &mut errs,
                "preferredAffinityTerms",
                parse_weighted_terms(pod, preferred_affinity_terms(pod)),
            ),
            preferred_anti_affinity: kept(
                &mut errs,
                "preferredAntiAffinityTerms",
                parse_weighted_terms(pod, preferred_anti_affinity_terms(pod)),
            ),
        };
        (terms, errs)
    }

    /// Parses `pod`, failing on the first list that does not parse (for the incoming
    /// pod, whose broken terms make it unschedulable).
    pub fn parse_strict(pod: &Pod) -> Result<PodTerms, String> {
        let (terms, errs) = PodTerms::parse(pod);
        match errs.len() {
            0 => Ok(terms),
            1 => Err(errs[0].clone()),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }
}

/// Whether `pod` matches every one of `terms` (and there is at least one), ignoring
/// topology (upstream's `podMatchesAllAffinityTerms`). Terms are the incoming pod's,
/// with namespace selectors already resolved, so no namespace labels are needed.
fn pod_matches_all_terms(terms: &[AffinityTerm], pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, &Labels::new()))
}

// ---- queueing hints ----

/// Requeues after an assigned pod was added that matches all of the pod's affinity
/// terms, updated to start matching them or to stop matching its anti-affinity terms,
/// or deleted while matching its anti-affinity terms (upstream's
/// `isSchedulableAfterPodChange`). Unassigned pods never help.
///
/// One addition to upstream: a deleted pod whose own required anti-affinity selects
/// the pod requeues it too, since the pod may have been rejected by that very rule
/// ("didn't satisfy existing pods anti-affinity rules") and would otherwise wait for
/// the periodic flush of unschedulable pods.
fn schedulable_after_pod_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let as_pod = |o: Option<&EventObject>| match o {
        Some(EventObject::Pod(p)) => Some(p.clone()),
        _ => None,
    };
    let (original, modified) = (as_pod(old), as_pod(new));
    if original.is_none() && modified.is_none() {
        return QueueingHint::Queue;
    }
    let unassigned = |p: &Option<Arc<Pod>>| {
        p.as_ref().is_some_and(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)
        })
    };
    if unassigned(&original) || unassigned(&modified) {
        return QueueingHint::Skip;
    }
    // As upstream's framework.GetAffinityTerms: namespace selectors are not resolved,
    // so only an empty one ("all namespaces") matches here.
    let Ok(terms) = parse_terms(&pod.pod, required_affinity_terms(&pod.pod)) else {
        return QueueingHint::Queue;
    };
    let Ok(anti_terms) = parse_terms(&pod.pod, required_anti_affinity_terms(&pod.pod)) else {
        return QueueingHint::Queue;
    };
    match (original, modified) {
        (Some(original), Some(modified)) => {
            let newly_affine = !pod_matches_all_terms(&terms, &original)
                && pod_matches_all_terms(&terms, &modified);
            let no_longer_anti = pod_matches_all_terms(&anti_terms, &original)
                && !pod_matches_all_terms(&anti_terms, &modified);
            if newly_affine || no_longer_anti {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        (None, Some(added)) => {
            if pod_matches_all_terms(&terms, &added) {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        (Some(deleted), None) => {
            if pod_matches_all_terms(&anti_terms, &deleted) {
                return QueueingHint::Queue;
            }
            // the addition described above: the deleted pod's own anti-affinity
            let (deleted_terms, _) = PodTerms::parse(&deleted);
            let selects_pod = deleted_terms
                .required_anti_affinity
                .iter()
                .any(|t| t.matches(&pod.pod, &Labels::new()));
            if selects_pod {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        (None, None) => QueueingHint::Queue,
    }
}

/// Requeues after a node was added or relabeled that carries the topology key of one
/// of the pod's required affinity or anti-affinity terms (upstream's
/// `isSchedulableAfterNodeChange`).
fn schedulable_after_node_change(
    pod: &PodInfo,
    _old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Node(node)) = new else {
        return QueueingHint::Queue;
    };
    let labels = node.metadata.labels.as_ref();
    let has_key = |key: &str| labels.is_some_and(|l| l.contains_key(key));
    let keyed = required_affinity_terms(&pod.pod)
        .iter()
        .chain(required_anti_affinity_terms(&pod.pod))
        .any(|t| has_key(&t.topology_key));
    if keyed {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registration with queueing hints on (no preCheck, so no
        // UpdateNodeTaint workaround): assigned pods appearing, changing labels or
        // going away, and nodes appearing or changing labels (topology domains).
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::ADD
                    .or(ActionType::UPDATE_POD_LABEL)
                    .or(ActionType::DELETE),
                schedulable_after_pod_change,
            ),
            ClusterEventWithHint::with_hint(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
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

/// The constructor: decodes and validates `InterPodAffinityArgs`.
pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let args: InterPodAffinityArgs = decode_args(NAME, args)?;
    args.validate()?;
    Ok(Arc::new(InterPodAffinity::with_args(args, handle)))
}

/// Helpers shared by the tests of this plugin's modules.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    use super::*;
    use crate::framework::{CycleState, NodeInfo, Snapshot};

    /// A pod named `name` in `ns` with `labels` and `affinity` (JSON), bound to `node`
    /// when given.
    pub fn pod(name: &str, ns: &str, labels: Value, affinity: Value, node: Option<&str>) -> Pod {
        let mut spec = json!({"containers": []});
        if !affinity.is_null() {
            spec["affinity"] = affinity;
        }
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}"), "labels": labels},
            "spec": spec
        }))
        .unwrap()
    }

    /// A node named `name` with `labels`.
    pub fn node(name: &str, labels: Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    /// A snapshot of `nodes` with the `pods` bound to them by `spec.nodeName`.
    pub fn snapshot(nodes: &[Node], pods: &[Pod]) -> Arc<Snapshot> {
        let infos = nodes
            .iter()
            .map(|n| {
                let mut info = NodeInfo::new(n.clone());
                let name = n.metadata.name.clone().unwrap_or_default();
                for p in pods {
                    if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()) {
                        info.add_pod(Arc::new(PodInfo::new(p.clone())));
                    }
                }
                info
            })
            .collect();
        Arc::new(Snapshot::from_nodes(infos))
    }

    /// A cycle state over `snapshot`.
    pub fn state(snapshot: &Arc<Snapshot>) -> CycleState {
        CycleState::new(snapshot.clone())
    }

    /// A plugin with `args` and namespaces `namespaces` (name → labels).
    pub fn plugin(args: Value, namespaces: &[(&str, Value)]) -> InterPodAffinity {
        let handle = Handle::default();
        {
            let mut map = handle.namespace_labels.write().unwrap();
            for (name, labels) in namespaces {
                map.insert(
                    (*name).to_owned(),
                    serde_json::from_value(labels.clone()).unwrap(),
                );
            }
        }
        let args: InterPodAffinityArgs = decode_args(NAME, Some(&args)).unwrap();
        args.validate().unwrap();
        InterPodAffinity::with_args(args, &handle)
    }

    /// A required term selecting `key` `op` `values` over `topology`.
    pub fn term(key: &str, op: &str, values: &[&str], topology: &str) -> Value {
        json!({
            "labelSelector": {"matchExpressions": [{"key": key, "operator": op, "values": values}]},
            "topologyKey": topology
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::*;
    use super::*;

    #[test]
    fn args_default_and_validate() {
        let a: InterPodAffinityArgs = decode_args(NAME, None).unwrap();
        assert_eq!(a.hard_pod_affinity_weight, 1);
        assert!(!a.ignore_preferred_terms_of_existing_pods);
        let a: InterPodAffinityArgs =
            decode_args(NAME, Some(&json!({"hardPodAffinityWeight": 0}))).unwrap();
        assert_eq!(a.hard_pod_affinity_weight, 0);
        assert!(a.validate().is_ok());
        let h = Handle::default();
        let err = new(Some(&json!({"hardPodAffinityWeight": 101})), &h)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "hardPodAffinityWeight: Invalid value: 101: not in valid range [0-100]"
        );
        assert!(new(Some(&json!({"hardPodAffinityWeight": -1})), &h).is_err());
        assert!(new(None, &h).is_ok());
    }

    #[test]
    fn term_namespaces_default_to_the_owner_and_selectors_resolve() {
        let owner = pod("p", "ns1", json!({}), json!(null), None);
        let t =
            |v: serde_json::Value| parse_term(&owner, &serde_json::from_value(v).unwrap()).unwrap();
        let own = t(json!({"labelSelector": {}, "topologyKey": "zone"}));
        assert_eq!(own.namespaces, BTreeSet::from(["ns1".to_owned()]));
        assert!(own.namespace_selector.matches_nothing());
        let listed =
            t(json!({"labelSelector": {}, "namespaces": ["a", "b"], "topologyKey": "zone"}));
        assert_eq!(listed.namespaces.len(), 2);
        // an empty namespace selector means every namespace, and names none
        let all = t(json!({"labelSelector": {}, "namespaceSelector": {}, "topologyKey": "zone"}));
        assert!(all.namespaces.is_empty());
        let elsewhere = pod("q", "other", json!({}), json!(null), None);
        assert!(all.matches(&elsewhere, &Labels::new()));
        // a nil label selector selects nothing, an empty one everything
        let none = t(json!({"topologyKey": "zone"}));
        assert!(!none.matches(&owner, &Labels::new()));
        assert!(own.matches(&owner, &Labels::new()));

        let pl = plugin(
            json!({}),
            &[
                ("team-a", json!({"team": "a"})),
                ("team-b", json!({"team": "b"})),
            ],
        );
        let mut sel = t(
            json!({"labelSelector": {}, "namespaceSelector": {"matchLabels": {"team": "a"}}, "topologyKey": "zone"}),
        );
        pl.resolve_namespaces(&mut sel);
        assert_eq!(sel.namespaces, BTreeSet::from(["team-a".to_owned()]));
        assert!(sel.namespace_selector.matches_nothing());
        let mut all = all.clone();
        pl.resolve_namespaces(&mut all);
        assert!(all.namespace_selector.is_empty(), "an empty selector stays");
    }

    #[test]
    fn match_label_keys_merge_the_owners_values() {
        let owner = pod(
            "p",
            "ns",
            json!({"app": "web", "rev": "1"}),
            json!(null),
            None,
        );
        let term: PodAffinityTerm = serde_json::from_value(json!({
            "labelSelector": {"matchLabels": {"app": "web"}},
            "matchLabelKeys": ["rev", "absent"],
            "mismatchLabelKeys": [],
            "topologyKey": "zone"
        }))
        .unwrap();
        let t = parse_term(&owner, &term).unwrap();
        let same_rev = pod(
            "a",
            "ns",
            json!({"app": "web", "rev": "1"}),
            json!(null),
            None,
        );
        let other_rev = pod(
            "b",
            "ns",
            json!({"app": "web", "rev": "2"}),
            json!(null),
            None,
        );
        assert!(t.matches(&same_rev, &Labels::new()));
        assert!(!t.matches(&other_rev, &Labels::new()));

        let term: PodAffinityTerm = serde_json::from_value(json!({
            "labelSelector": {"matchLabels": {"app": "web"}},
            "mismatchLabelKeys": ["rev"],
            "topologyKey": "zone"
        }))
        .unwrap();
        let t = parse_term(&owner, &term).unwrap();
        assert!(!t.matches(&same_rev, &Labels::new()));
        assert!(t.matches(&other_rev, &Labels::new()));

        // a nil selector stays "nothing"
        let term: PodAffinityTerm =
            serde_json::from_value(json!({"matchLabelKeys": ["rev"], "topologyKey": "zone"}))
                .unwrap();
        assert!(
            !parse_term(&owner, &term)
                .unwrap()
                .matches(&same_rev, &Labels::new())
        );
    }

    #[test]
    fn bad_selectors_fail_only_their_list() {
        let p = pod(
            "p",
            "ns",
            json!({}),
            json!({"podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term("foo", "Bogus", &["x"], "zone")],
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": term("foo", "In", &["x"], "zone")}]
            }}),
            None,
        );
        let (terms, errs) = PodTerms::parse(&p);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("requiredAffinityTerms: "), "{errs:?}");
        assert!(terms.required_affinity.is_empty());
        assert_eq!(terms.preferred_affinity.len(), 1);
        assert!(PodTerms::parse_strict(&p).is_err());
    }

    #[test]
    fn pod_hint_follows_upstream() {
        let target = PodInfo::new(pod(
            "t",
            "ns",
            json!({}),
            json!({
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("app", "In", &["db"], "zone")]},
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("app", "In", &["noisy"], "zone")]}
            }),
            None,
        ));
        let ev = |labels: serde_json::Value, node: Option<&str>| {
            EventObject::Pod(Arc::new(pod("x", "ns", labels, json!(null), node)))
        };
        let hint = |old: Option<&EventObject>, new: Option<&EventObject>| {
            schedulable_after_pod_change(&target, old, new)
        };
        let db = ev(json!({"app": "db"}), Some("n1"));
        let noisy = ev(json!({"app": "noisy"}), Some("n1"));
        let web = ev(json!({"app": "web"}), Some("n1"));
        assert_eq!(hint(None, Some(&db)), QueueingHint::Queue, "added match");
        assert_eq!(
            hint(None, Some(&web)),
            QueueingHint::Skip,
            "added non-match"
        );
        assert_eq!(
            hint(None, Some(&ev(json!({"app": "db"}), None))),
            QueueingHint::Skip,
            "unassigned"
        );
        assert_eq!(
            hint(Some(&web), Some(&db)),
            QueueingHint::Queue,
            "now matches"
        );
        assert_eq!(
            hint(Some(&noisy), Some(&web)),
            QueueingHint::Queue,
            "no longer anti"
        );
        assert_eq!(hint(Some(&db), Some(&noisy)), QueueingHint::Skip);
        assert_eq!(
            hint(Some(&noisy), None),
            QueueingHint::Queue,
            "anti-matching deleted"
        );
        assert_eq!(hint(Some(&web), None), QueueingHint::Skip);
        // a deleted pod whose own anti-affinity selected the target
        let plain = PodInfo::new(pod("t2", "ns", json!({"app": "web"}), json!(null), None));
        let guard = EventObject::Pod(Arc::new(pod(
            "g",
            "ns",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("app", "In", &["web"], "zone")]}}),
            Some("n1"),
        )));
        assert_eq!(
            schedulable_after_pod_change(&plain, Some(&guard), None),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_pod_change(&plain, Some(&web), None),
            QueueingHint::Skip
        );
    }

    #[test]
    fn node_hint_wants_a_topology_key() {
        let target = PodInfo::new(pod(
            "t",
            "ns",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("app", "In", &["db"], "zone")]}}),
            None,
        ));
        let with = EventObject::Node(Arc::new(node("n", json!({"zone": "z1"}))));
        let without = EventObject::Node(Arc::new(node("n", json!({"region": "r1"}))));
        assert_eq!(
            schedulable_after_node_change(&target, None, Some(&with)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&target, None, Some(&without)),
            QueueingHint::Skip
        );
    }
}
