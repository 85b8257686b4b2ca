//! InterPodAffinity's PreFilter and Filter (upstream's `filtering.go`): required
//! affinity and anti-affinity, both the incoming pod's and the existing pods'.
//!
//! PreFilter counts, per topology pair (node label key, value), how many existing pods
//! match the incoming pod's affinity terms (a pod counts only when it matches all of
//! them), how many match its anti-affinity terms, and how many existing pods have an
//! anti-affinity term the incoming pod matches. Filter then only looks up the node's
//! own topology pairs. AddPod/RemovePod adjust the counts for preemption's what-ifs.

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::labels::Labels;
use k8s_openapi::api::core::v1::{Node, Pod};
use rayon::prelude::*;

use super::{
    AffinityTerm, InterPodAffinity, PodTerms, parse_terms, pod_matches_all_terms,
    required_anti_affinity_terms,
};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, PreFilterResult, Status,
};

/// Where PreFilter leaves its counts in the cycle state.
const PRE_FILTER_STATE_KEY: &str = "PreFilterInterPodAffinity";

/// The reason for a node where an existing pod's required anti-affinity forbids the
/// pod (upstream's `ErrReasonExistingAntiAffinityRulesNotMatch`).
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// The reason for a node outside the domains the pod's required affinity wants
/// (upstream's `ErrReasonAffinityRulesNotMatch`).
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// The reason for a node in a domain the pod's required anti-affinity forbids
/// (upstream's `ErrReasonAntiAffinityRulesNotMatch`).
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";

/// Matching pods per topology pair (node label key, value); pairs at zero are removed.
type TopologyCounts = HashMap<(String, String), i64>;

fn node_labels(node: &Node) -> &Labels {
    static EMPTY: Labels = Labels::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// Adds `value` to the pair of `key` on `node`, if the node has that label.
fn update(counts: &mut TopologyCounts, node: &Node, key: &str, value: i64) {
    let Some(v) = node_labels(node).get(key) else {
        return;
    };
    let pair = (key.to_owned(), v.clone());
    let count = counts.entry(pair.clone()).or_default();
    *count += value;
    // removals may bring a pair back to zero: a zero entry would still count as a
    // matching pod existing somewhere for the "first pod" rule
    if *count == 0 {
        counts.remove(&pair);
    }
}

/// Counts `pod` on `node` for every term when it matches all of `terms` (affinity
/// needs one pod meeting every term).
fn update_with_affinity_terms(
    counts: &mut TopologyCounts,
    terms: &[AffinityTerm],
    pod: &Pod,
    node: &Node,
    value: i64,
) {
    if pod_matches_all_terms(terms, pod) {
        for t in terms {
            update(counts, node, &t.topology_key, value);
        }
    }
}

/// Counts `pod` on `node` for each of `terms` it matches (anti-affinity terms stand
/// alone).
fn update_with_anti_affinity_terms(
    counts: &mut TopologyCounts,
    terms: &[AffinityTerm],
    pod: &Pod,
    ns_labels: &Labels,
    node: &Node,
    value: i64,
) {
    for t in terms {
        if t.matches(pod, ns_labels) {
            update(counts, node, &t.topology_key, value);
        }
    }
}

fn merge(mut a: TopologyCounts, b: TopologyCounts) -> TopologyCounts {
    for (pair, n) in b {
        *a.entry(pair).or_default() += n;
    }
    a
}

/// What PreFilter computed for Filter (upstream's `preFilterState`).
#[derive(Clone, Debug)]
struct PreFilterState {
    /// Existing pods whose required anti-affinity terms match the incoming pod.
    existing_anti_affinity_counts: TopologyCounts,
    /// Existing pods matching all of the incoming pod's required affinity terms.
    affinity_counts: TopologyCounts,
    /// Existing pods matching the incoming pod's required anti-affinity terms.
    anti_affinity_counts: TopologyCounts,
    /// The incoming pod's terms, namespace selectors resolved.
    terms: Arc<PodTerms>,
    /// The incoming pod's namespace labels (for existing pods' namespace selectors).
    namespace_labels: Arc<Labels>,
}

impl PreFilterState {
    /// Counts `other` on `node` as added (`multiplier` 1) or removed (-1) (upstream's
    /// `updateWithPod`).
    fn update_with_pod(&mut self, pod: &Pod, other: &Pod, node: &Node, multiplier: i64) {
        let others_anti =
            parse_terms(other, required_anti_affinity_terms(other)).unwrap_or_default();
        update_with_anti_affinity_terms(
            &mut self.existing_anti_affinity_counts,
            &others_anti,
            pod,
            &self.namespace_labels,
            node,
            multiplier,
        );
        update_with_affinity_terms(
            &mut self.affinity_counts,
            &self.terms.required_affinity,
            other,
            node,
            multiplier,
        );
        update_with_anti_affinity_terms(
            &mut self.anti_affinity_counts,
            &self.terms.required_anti_affinity,
            other,
            &Labels::new(),
            node,
            multiplier,
        );
    }
}

/// Whether every topology key of the pod's affinity terms is on the node and a
/// matching pod runs in each of the node's domains, or the pod is the first of a group
/// with affinity to itself.
fn satisfies_pod_affinity(s: &PreFilterState, pod: &Pod, node: &Node) -> bool {
    let labels = node_labels(node);
    let mut pods_exist = true;
    for term in &s.terms.required_affinity {
        let Some(v) = labels.get(&term.topology_key) else {
            // every topology key must be on the node
            return false;
        };
        if s.affinity_counts
            .get(&(term.topology_key.clone(), v.clone()))
            .copied()
            .unwrap_or(0)
            <= 0
        {
            pods_exist = false;
        }
    }
    // The first pod of a group whose pods have affinity to each other would wait
    // forever: when no pod anywhere matches the terms and the pod matches them itself,
    // any node carrying the topology keys will do.
    pods_exist
        || (s.affinity_counts.is_empty() && pod_matches_all_terms(&s.terms.required_affinity, pod))
}

/// Whether no pod the incoming pod's anti-affinity terms select runs in the node's
/// domains.
fn satisfies_pod_anti_affinity(s: &PreFilterState, node: &Node) -> bool {
    if s.anti_affinity_counts.is_empty() {
        return true;
    }
    let labels = node_labels(node);
    !s.terms.required_anti_affinity.iter().any(|term| {
        labels.get(&term.topology_key).is_some_and(|v| {
            s.anti_affinity_counts
                .get(&(term.topology_key.clone(), v.clone()))
                .is_some_and(|n| *n > 0)
        })
    })
}

/// Whether no existing pod's anti-affinity forbids the pod in any of the node's
/// domains.
fn satisfies_existing_pods_anti_affinity(s: &PreFilterState, node: &Node) -> bool {
    if s.existing_anti_affinity_counts.is_empty() {
        return true;
    }
    !node_labels(node).iter().any(|(k, v)| {
        s.existing_anti_affinity_counts
            .get(&(k.clone(), v.clone()))
            .is_some_and(|n| *n > 0)
    })
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let mut terms = match PodTerms::parse_strict(&pod.pod) {
            Ok(t) => t,
            Err(e) => return (None, Status::unresolvable(format!("parsing pod: {e}"))),
        };
        for t in terms
            .required_affinity
            .iter_mut()
            .chain(terms.required_anti_affinity.iter_mut())
        {
            self.resolve_namespaces(t);
        }
        let namespace_labels = self.namespace_labels_of(pod.namespace());
        let snapshot = state.snapshot.clone();
        let incoming = &pod.pod;

        // Existing pods' required anti-affinity against the incoming pod, counted in the
        // domains of the nodes they run on.
        let existing_anti_affinity_counts = snapshot
            .nodes
            .par_iter()
            .filter(|n| n.node.is_some() && !n.pods_with_required_anti_affinity.is_empty())
            .map(|n| {
                let mut counts = TopologyCounts::new();
                for existing in &n.pods_with_required_anti_affinity {
                    let p = &existing.pod;
                    let anti = parse_terms(p, required_anti_affinity_terms(p)).unwrap_or_default();
                    update_with_anti_affinity_terms(
                        &mut counts,
                        &anti,
                        incoming,
                        &namespace_labels,
                        n.node(),
                        1,
                    );
                }
                counts
            })
            .reduce(TopologyCounts::new, merge);

        // Existing pods the incoming pod's own terms select.
        let (affinity_counts, anti_affinity_counts) =
            if terms.required_affinity.is_empty() && terms.required_anti_affinity.is_empty() {
                (TopologyCounts::new(), TopologyCounts::new())
            } else {
                snapshot
                    .nodes
                    .par_iter()
                    .filter(|n| n.node.is_some())
                    .map(|n| {
                        let mut affinity = TopologyCounts::new();
                        let mut anti = TopologyCounts::new();
                        for existing in &n.pods {
                            update_with_affinity_terms(
                                &mut affinity,
                                &terms.required_affinity,
                                &existing.pod,
                                n.node(),
                                1,
                            );
                            // the incoming pod's namespace selectors are resolved already
                            update_with_anti_affinity_terms(
                                &mut anti,
                                &terms.required_anti_affinity,
                                &existing.pod,
                                &Labels::new(),
                                n.node(),
                                1,
                            );
                        }
                        (affinity, anti)
                    })
                    .reduce(
                        || (TopologyCounts::new(), TopologyCounts::new()),
                        |(a1, b1), (a2, b2)| (merge(a1, a2), merge(b1, b2)),
                    )
            };

        if existing_anti_affinity_counts.is_empty()
            && terms.required_affinity.is_empty()
            && terms.required_anti_affinity.is_empty()
        {
            return (None, Status::skip());
        }
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState {
                existing_anti_affinity_counts,
                affinity_counts,
                anti_affinity_counts,
                terms: Arc::new(terms),
                namespace_labels: Arc::new(namespace_labels),
            },
        );
        (None, Status::success())
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &Arc<PodInfo>,
        node: &NodeInfo,
    ) -> Status {
        // No state means PreFilter skipped the plugin for this pod: its Filter does not
        // run, so there is nothing to keep current.
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            s.update_with_pod(&pod.pod, &added.pod, node.node(), 1);
        }
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            s.update_with_pod(&pod.pod, &removed.pod, node.node(), -1);
        }
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "error reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let node = node.node();
        // Affinity is unresolvable by preemption (removing pods cannot add a matching
        // one); anti-affinity may be resolved by evicting the pods it points at.
        if !satisfies_pod_affinity(s, &pod.pod, node) {
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfies_pod_anti_affinity(s, node) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfies_existing_pods_anti_affinity(s, node) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::testing::*;
    use super::*;
    use crate::framework::Code;

    /// Runs PreFilter then Filter on every node, as the framework does: a Skip lets
    /// every node through. Returns each node's status in snapshot order.
    fn run(pl: &InterPodAffinity, incoming: &Pod, nodes: &[Node], pods: &[Pod]) -> Vec<Status> {
        let snap = snapshot(nodes, pods);
        let mut st = state(&snap);
        let pi = PodInfo::new(incoming.clone());
        let (_, s) = pl.pre_filter(&mut st, &pi, &snap.nodes);
        if s.is_skip() {
            return snap.nodes.iter().map(|_| Status::success()).collect();
        }
        if !s.is_success() {
            return snap.nodes.iter().map(|_| s.clone()).collect();
        }
        snap.nodes.iter().map(|n| pl.filter(&st, &pi, n)).collect()
    }

    fn ok() -> Status {
        Status::success()
    }
    fn affinity_fail() -> Status {
        Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH)
    }
    fn anti_fail() -> Status {
        Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
    }
    fn existing_fail() -> Status {
        Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
    }

    fn affinity(required: Value) -> Value {
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}})
    }
    fn anti(required: Value) -> Value {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}})
    }

    /// The single node of upstream's single-node table: `machine1`, region r1,
    /// zone z11, hostname h1.
    fn node1() -> Node {
        node(
            "machine1",
            json!({"region": "r1", "zone": "z11", "kubernetes.io/hostname": "h1"}),
        )
    }

    fn single(incoming: &Pod, pods: &[Pod]) -> Status {
        run(&plugin(json!({}), &[]), incoming, &[node1()], pods)
            .pop()
            .unwrap()
    }

    #[test]
    fn no_affinity_anywhere_skips() {
        let pl = plugin(json!({}), &[]);
        let snap = snapshot(&[node1()], &[]);
        let mut st = state(&snap);
        let p = PodInfo::new(pod("p", "default", json!({}), json!(null), None));
        assert!(pl.pre_filter(&mut st, &p, &snap.nodes).1.is_skip());
    }

    #[test]
    fn pod_affinity_single_node_cases() {
        let existing = pod(
            "e",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
            Some("machine1"),
        );
        // In operator matches the existing pod
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term(
                "service",
                "In",
                &["securityscan", "value2"],
                "region"
            )])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), ok());
        // NotIn
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term(
                "service",
                "NotIn",
                &["securityscan3", "value3"],
                "region"
            )])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), ok());
        // the existing pod is in another namespace than the term names
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([{
                "labelSelector": {"matchExpressions": [{"key": "service", "operator": "In", "values": ["securityscan"]}]},
                "namespaces": ["DiffNameSpace"],
                "topologyKey": "region"
            }])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), affinity_fail());
        // no pod matches the selector
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term(
                "service",
                "In",
                &["antivirusscan", "value2"],
                "region"
            )])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), affinity_fail());
        // the node lacks the topology key
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term("service", "In", &["securityscan"], "rack")])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), affinity_fail());
        // several terms: one existing pod must match all of them
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([
                term("service", "Exists", &[], "region"),
                term("wrongkey", "DoesNotExist", &[], "region"),
                term("service", "In", &["securityscan"], "region"),
                term("service", "NotIn", &["WrongValue"], "region")
            ])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), ok());
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([
                term("service", "Exists", &[], "region"),
                term("wrongkey", "In", &["x"], "region")
            ])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), affinity_fail());
    }

    #[test]
    fn first_pod_of_a_self_affine_group() {
        // no pod matches anywhere and the pod matches its own terms: it may go
        let p = pod(
            "p",
            "default",
            json!({"service": "securityscan"}),
            affinity(json!([term("service", "In", &["securityscan"], "region")])),
            None,
        );
        assert_eq!(single(&p, &[]), ok());
        // but the node still needs the topology key
        let p = pod(
            "p",
            "default",
            json!({"service": "securityscan"}),
            affinity(json!([term("service", "In", &["securityscan"], "rack")])),
            None,
        );
        assert_eq!(single(&p, &[]), affinity_fail());
        // a pod that does not match its own terms is not the first of any group
        let p = pod(
            "p",
            "default",
            json!({"service": "other"}),
            affinity(json!([term("service", "In", &["securityscan"], "region")])),
            None,
        );
        assert_eq!(single(&p, &[]), affinity_fail());
        // once a matching pod exists somewhere, only its domain will do
        let nodes = [
            node("n1", json!({"zone": "z1"})),
            node("n2", json!({"zone": "z2"})),
        ];
        let existing = pod(
            "e",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
            Some("n2"),
        );
        let p = pod(
            "p",
            "default",
            json!({"service": "securityscan"}),
            affinity(json!([term("service", "In", &["securityscan"], "zone")])),
            None,
        );
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes, &[existing]),
            vec![affinity_fail(), ok()]
        );
    }

    #[test]
    fn pod_anti_affinity_single_node_cases() {
        let existing = pod(
            "e",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
            Some("machine1"),
        );
        let p = pod(
            "p",
            "default",
            json!({}),
            anti(json!([term("service", "In", &["securityscan"], "zone")])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), anti_fail());
        let p = pod(
            "p",
            "default",
            json!({}),
            anti(json!([term("service", "In", &["antivirusscan"], "zone")])),
            None,
        );
        assert_eq!(single(&p, &[existing.clone()]), ok());
        // the node lacks the topology key: the term cannot be violated there
        let p = pod(
            "p",
            "default",
            json!({}),
            anti(json!([term("service", "In", &["securityscan"], "rack")])),
            None,
        );
        assert_eq!(single(&p, &[existing]), ok());
    }

    #[test]
    fn existing_pods_anti_affinity() {
        let nodes = [
            node("n1", json!({"zone": "z1", "kubernetes.io/hostname": "n1"})),
            node("n2", json!({"zone": "z1", "kubernetes.io/hostname": "n2"})),
            node("n3", json!({"zone": "z2", "kubernetes.io/hostname": "n3"})),
        ];
        let guard = pod(
            "g",
            "default",
            json!({}),
            anti(json!([term("service", "In", &["securityscan"], "zone")])),
            Some("n1"),
        );
        let p = pod(
            "p",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
            None,
        );
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes, &[guard.clone()]),
            vec![existing_fail(), existing_fail(), ok()]
        );
        // a pod the term does not select goes anywhere
        let other = pod("p", "default", json!({"service": "web"}), json!(null), None);
        assert_eq!(
            run(&plugin(json!({}), &[]), &other, &nodes, &[guard.clone()]),
            vec![ok(), ok(), ok()]
        );
        // the existing pod's term names its own namespace only
        let elsewhere = pod(
            "p",
            "other",
            json!({"service": "securityscan"}),
            json!(null),
            None,
        );
        assert_eq!(
            run(&plugin(json!({}), &[]), &elsewhere, &nodes, &[guard]),
            vec![ok(), ok(), ok()]
        );
    }

    #[test]
    fn existing_pods_namespace_selector_uses_the_incoming_pods_namespace_labels() {
        let nodes = [node("n1", json!({"zone": "z1"}))];
        let guard = pod(
            "g",
            "default",
            json!({}),
            anti(json!([{
                "labelSelector": {"matchLabels": {"service": "securityscan"}},
                "namespaceSelector": {"matchLabels": {"team": "blue"}},
                "topologyKey": "zone"
            }])),
            Some("n1"),
        );
        let pl = plugin(
            json!({}),
            &[
                ("blue-ns", json!({"team": "blue"})),
                ("red-ns", json!({"team": "red"})),
            ],
        );
        let blue = pod(
            "p",
            "blue-ns",
            json!({"service": "securityscan"}),
            json!(null),
            None,
        );
        let red = pod(
            "p",
            "red-ns",
            json!({"service": "securityscan"}),
            json!(null),
            None,
        );
        assert_eq!(
            run(&pl, &blue, &nodes, &[guard.clone()]),
            vec![existing_fail()]
        );
        assert_eq!(run(&pl, &red, &nodes, &[guard]), vec![ok()]);
    }

    #[test]
    fn incoming_namespace_selector_resolves_namespaces() {
        let nodes = [
            node("n1", json!({"zone": "z1"})),
            node("n2", json!({"zone": "z2"})),
        ];
        let pods = [
            pod(
                "a",
                "blue-ns",
                json!({"app": "db"}),
                json!(null),
                Some("n1"),
            ),
            pod("b", "red-ns", json!({"app": "db"}), json!(null), Some("n2")),
        ];
        let pl = plugin(
            json!({}),
            &[
                ("blue-ns", json!({"team": "blue"})),
                ("red-ns", json!({"team": "red"})),
            ],
        );
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([{
                "labelSelector": {"matchLabels": {"app": "db"}},
                "namespaceSelector": {"matchLabels": {"team": "red"}},
                "topologyKey": "zone"
            }])),
            None,
        );
        assert_eq!(run(&pl, &p, &nodes, &pods), vec![affinity_fail(), ok()]);
        // an empty namespace selector means all namespaces
        let p = pod(
            "p",
            "default",
            json!({}),
            anti(json!([{
                "labelSelector": {"matchLabels": {"app": "db"}},
                "namespaceSelector": {},
                "topologyKey": "zone"
            }])),
            None,
        );
        assert_eq!(run(&pl, &p, &nodes, &pods), vec![anti_fail(), anti_fail()]);
    }

    #[test]
    fn multiple_nodes_by_zone() {
        // upstream's "A pod can be scheduled onto all the nodes that have the same
        // topology key & label value with one of them has an existing pod that matches
        // the affinity rules"
        let nodes = [
            node("nodeA", json!({"zone": "az1", "hostname": "h1"})),
            node("nodeB", json!({"zone": "az2", "hostname": "h2"})),
            node("nodeC", json!({"zone": "az1", "hostname": "h3"})),
        ];
        let existing = pod(
            "e",
            "default",
            json!({"foo": "bar"}),
            json!(null),
            Some("nodeA"),
        );
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term("foo", "In", &["bar"], "zone")])),
            None,
        );
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes, &[existing.clone()]),
            vec![ok(), affinity_fail(), ok()]
        );
        // and anti-affinity in the same shape rejects the zone
        let p = pod(
            "p",
            "default",
            json!({}),
            anti(json!([term("foo", "In", &["bar"], "zone")])),
            None,
        );
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes, &[existing]),
            vec![anti_fail(), ok(), anti_fail()]
        );
    }

    #[test]
    fn bad_selector_is_unresolvable() {
        let p = pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term("foo", "Bogus", &["bar"], "zone")])),
            None,
        );
        let s = single(&p, &[]);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert!(s.message().starts_with("parsing pod: "), "{}", s.message());
    }

    #[test]
    fn add_and_remove_pod_update_the_counts() {
        let nodes = [
            node("n1", json!({"zone": "z1"})),
            node("n2", json!({"zone": "z2"})),
        ];
        let victim = pod(
            "v",
            "default",
            json!({"app": "db"}),
            json!(null),
            Some("n1"),
        );
        let snap = snapshot(&nodes, &[victim.clone()]);
        let pl = plugin(json!({}), &[]);

        // anti-affinity: removing the pod the term selects clears the zone
        let p = PodInfo::new(pod(
            "p",
            "default",
            json!({}),
            anti(json!([term("app", "In", &["db"], "zone")])),
            None,
        ));
        let mut st = state(&snap);
        assert!(pl.pre_filter(&mut st, &p, &snap.nodes).1.is_success());
        let n1 = snap.nodes[0].clone();
        assert_eq!(pl.filter(&st, &p, &n1), anti_fail());
        let v = PodInfo::new(victim.clone());
        assert!(pl.remove_pod(&mut st, &p, &v, &n1).is_success());
        assert_eq!(pl.filter(&st, &p, &n1), ok());
        assert!(pl.add_pod(&mut st, &p, &Arc::new(v), &n1).is_success());
        assert_eq!(pl.filter(&st, &p, &n1), anti_fail());

        // existing anti-affinity: adding a guard forbids its zone
        let plain = PodInfo::new(pod(
            "q",
            "default",
            json!({"app": "web"}),
            json!(null),
            None,
        ));
        let mut st = state(&snap);
        let guard = Arc::new(PodInfo::new(pod(
            "g",
            "default",
            json!({}),
            anti(json!([term("app", "In", &["web"], "zone")])),
            Some("n2"),
        )));
        // nothing forbids it yet, so PreFilter skips and there is no state to update
        assert!(pl.pre_filter(&mut st, &plain, &snap.nodes).1.is_skip());
        assert!(
            pl.add_pod(&mut st, &plain, &guard, &snap.nodes[1])
                .is_success()
        );

        // with a guard already there, removing it lifts the rule
        let snap = snapshot(
            &nodes,
            &[
                victim,
                pod(
                    "g",
                    "default",
                    json!({}),
                    anti(json!([term("app", "In", &["web"], "zone")])),
                    Some("n2"),
                ),
            ],
        );
        let mut st = state(&snap);
        assert!(pl.pre_filter(&mut st, &plain, &snap.nodes).1.is_success());
        let n2 = snap.nodes[1].clone();
        assert_eq!(pl.filter(&st, &plain, &n2), existing_fail());
        assert!(pl.remove_pod(&mut st, &plain, &guard, &n2).is_success());
        assert_eq!(pl.filter(&st, &plain, &n2), ok());

        // affinity: removing the only matching pod leaves no pod anywhere, and a pod
        // not matching its own terms then fits nowhere
        let p = PodInfo::new(pod(
            "p",
            "default",
            json!({}),
            affinity(json!([term("app", "In", &["db"], "zone")])),
            None,
        ));
        let mut st = state(&snap);
        assert!(pl.pre_filter(&mut st, &p, &snap.nodes).1.is_success());
        assert_eq!(pl.filter(&st, &p, &n1), ok());
        let v = PodInfo::new(pod(
            "v",
            "default",
            json!({"app": "db"}),
            json!(null),
            Some("n1"),
        ));
        assert!(pl.remove_pod(&mut st, &p, &v, &n1).is_success());
        assert_eq!(pl.filter(&st, &p, &n1), affinity_fail());
    }

    #[test]
    fn filter_without_pre_filter_is_an_error() {
        let pl = plugin(json!({}), &[]);
        let snap = snapshot(&[node1()], &[]);
        let st = state(&snap);
        let p = PodInfo::new(pod("p", "default", json!({}), json!(null), None));
        assert_eq!(pl.filter(&st, &p, &snap.nodes[0]).code, Code::Error);
    }
}
