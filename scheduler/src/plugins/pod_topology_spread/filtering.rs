//! PodTopologySpread's PreFilter and Filter (upstream's
//! `podtopologyspread/filtering.go`): the hard (`DoNotSchedule`) constraints.
//!
//! PreFilter counts, over every node of the cluster, the pods matching each
//! constraint per topology domain, and keeps the two least-loaded domains per
//! constraint (the "critical paths"). Filter then accepts a node when placing the pod
//! there keeps `count + self-match - global minimum <= maxSkew` for every constraint.
//! Preemption's what-ifs adjust the counts through `add_pod`/`remove_pod`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::common::{
    SpreadConstraint, count_pods_match_selector, node_labels, node_labels_match_spread_constraints,
    pod_labels,
};
use super::{ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH, PodTopologySpread};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, PreFilterResult, Status,
};
use crate::plugins::node_affinity::RequiredNodeAffinity;

/// Where PreFilter leaves its state (upstream's `"PreFilter" + Name`).
pub(super) const PRE_FILTER_STATE_KEY: &str = "PreFilterPodTopologySpread";

/// One domain and how many matching pods it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CriticalPath {
    /// The topology value (domain).
    pub topology_value: String,
    /// Matching pods in it.
    pub match_num: i64,
}

/// The two least-loaded domains of one constraint: `[0]` always holds the minimum,
/// `[1]` something no smaller (not necessarily the second minimum). Two suffice because
/// preemption only ever removes pods from one node per what-if, on its own copy of the
/// state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CriticalPaths(pub [CriticalPath; 2]);

impl CriticalPaths {
    /// Both paths empty, with a count larger than any real one.
    fn new() -> CriticalPaths {
        let empty = || CriticalPath {
            topology_value: String::new(),
            match_num: i32::MAX as i64,
        };
        CriticalPaths([empty(), empty()])
    }

    /// Records that `value` now has `num` matching pods.
    fn update(&mut self, value: &str, num: i64) {
        let p = &mut self.0;
        if let Some(i) = p.iter().position(|path| path.topology_value == value) {
            p[i].match_num = num;
            if p[0].match_num > p[1].match_num {
                p.swap(0, 1);
            }
        } else if num < p[0].match_num {
            p[1] = p[0].clone();
            p[0] = CriticalPath {
                topology_value: value.to_owned(),
                match_num: num,
            };
        } else if num < p[1].match_num {
            p[1] = CriticalPath {
                topology_value: value.to_owned(),
                match_num: num,
            };
        }
    }
}

/// What PreFilter computed for Filter (upstream's `preFilterState`). An empty
/// `constraints` is a legitimate state that accepts every node.
#[derive(Clone, Debug, Default)]
pub(super) struct PreFilterState {
    /// The pod's hard constraints (shared between clones: they never change).
    pub constraints: Arc<Vec<SpreadConstraint>>,
    /// Per constraint, its critical paths.
    pub critical_paths: Vec<CriticalPaths>,
    /// Per constraint, topology value → matching pods.
    pub tp_value_to_match_num: Vec<BTreeMap<String, i64>>,
}

impl PreFilterState {
    /// The global minimum for constraint `i`: the least-loaded domain's count, or 0
    /// while fewer than `min_domains` domains exist.
    fn min_match_num(&self, i: usize, min_domains: i32) -> i64 {
        if (self.tp_value_to_match_num[i].len() as i64) < min_domains as i64 {
            0
        } else {
            self.critical_paths[i].0[0].match_num
        }
    }
}

impl PodTopologySpread {
    /// Counts the matching pods per domain over `all_nodes` for the pod's hard
    /// constraints (upstream's `calPreFilterState`).
    pub(super) fn cal_pre_filter_state<'a>(
        &self,
        pod: &'a PodInfo,
        all_nodes: &'a [Arc<NodeInfo>],
    ) -> Result<PreFilterState, String> {
        let constraints = self
            .get_constraints(pod, super::common::DO_NOT_SCHEDULE)
            .map_err(|e| format!("get constraints from pod: {e}"))?;
        if constraints.is_empty() {
            return Ok(PreFilterState::default());
        }
        let required = RequiredNodeAffinity::of(&pod.pod);
        // every node is looked at for every pod: counted in parallel, keyed by the
        // nodes' own label values (no copies), merged, then owned once per domain
        let namespace = pod.namespace();
        let per_node = |mut acc: Vec<HashMap<&'a str, i64>>, node_info: &'a Arc<NodeInfo>| {
            let node = node_info.node();
            let labels = node_labels(node);
            // a node without every topology key is no domain of any constraint
            if !node_labels_match_spread_constraints(labels, &constraints) {
                return acc;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes_node(&pod.pod, node, &required) {
                    continue;
                }
                let value = labels[&c.topology_key].as_str();
                let count = count_pods_match_selector(&node_info.pods, &c.selector, namespace);
                *acc[i].entry(value).or_default() += count;
            }
            acc
        };
        let empty = || vec![HashMap::<&str, i64>::new(); constraints.len()];
        let merged = all_nodes
            .par_iter()
            .with_min_len(256)
            .fold(empty, per_node)
            .reduce(empty, |mut a, b| {
                for (into, from) in a.iter_mut().zip(b) {
                    for (value, n) in from {
                        *into.entry(value).or_default() += n;
                    }
                }
                a
            });
        let counts: Vec<BTreeMap<String, i64>> = merged
            .into_iter()
            .map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            .collect();
        let critical_paths = counts
            .iter()
            .map(|domains| {
                let mut paths = CriticalPaths::new();
                for (value, num) in domains {
                    paths.update(value, *num);
                }
                paths
            })
            .collect();
        Ok(PreFilterState {
            constraints: Arc::new(constraints),
            critical_paths,
            tp_value_to_match_num: counts,
        })
    }

    /// Adds `delta` for `updated` on `node` to the counts (upstream's `updateWithPod`).
    fn update_with_pod(
        s: &mut PreFilterState,
        updated: &Pod,
        preemptor: &PodInfo,
        node: Option<&Node>,
        delta: i64,
    ) {
        let Some(node) = node else {
            return;
        };
        if updated.metadata.namespace.as_deref().unwrap_or("default") != preemptor.namespace() {
            return;
        }
        let labels = node_labels(node);
        if !node_labels_match_spread_constraints(labels, &s.constraints) {
            return;
        }
        let required = RequiredNodeAffinity::of(&preemptor.pod);
        let constraints = s.constraints.clone();
        for (i, c) in constraints.iter().enumerate() {
            if !c.selector.matches(pod_labels(updated)) {
                continue;
            }
            if !c.includes_node(&preemptor.pod, node, &required) {
                continue;
            }
            let value = &labels[&c.topology_key];
            let num = s.tp_value_to_match_num[i].entry(value.clone()).or_default();
            *num += delta;
            let num = *num;
            s.critical_paths[i].update(value, num);
        }
    }
}

/// The state PreFilter wrote, or upstream's error when PreFilter did not run.
fn missing_state() -> Status {
    Status::error(format!(
        "reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
    ))
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        match self.cal_pre_filter_state(pod, nodes) {
            Err(e) => (None, Status::error(e)),
            // no hard constraints: Filter has nothing to check
            Ok(s) if s.constraints.is_empty() => (None, Status::skip()),
            Ok(s) => {
                state.write(PRE_FILTER_STATE_KEY, s);
                (None, Status::success())
            }
        }
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &Arc<PodInfo>,
        node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return missing_state();
        };
        Self::update_with_pod(s, &added.pod, pod, node.node.as_deref(), 1);
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return missing_state();
        };
        Self::update_with_pod(s, &removed.pod, pod, node.node.as_deref(), -1);
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return missing_state();
        };
        let labels = node_labels(node.node());
        let own = pod_labels(&pod.pod);
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                // no label, no domain: no other plugin's change can make this node fit
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let min_match = s.min_match_num(i, c.min_domains);
            let self_match = i64::from(c.selector.matches(own));
            let match_num = s.tp_value_to_match_num[i].get(value).copied().unwrap_or(0);
            if match_num + self_match - min_match > c.max_skew as i64 {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::pod_topology_spread::testing::*;
    use serde_json::{Value, json};

    /// Runs PreFilter over all nodes and Filter on each; the codes by node name.
    fn filter_codes(p: &Value, nodes: &[Value], existing: &[Value]) -> Vec<(String, Code)> {
        let plugin = plugin(json!({"defaultingType": "List"}));
        let snapshot = snapshot(nodes, existing);
        let mut state = CycleState::new(Arc::new(snapshot.clone()));
        let pod = PodInfo::new(pod(p.clone()));
        let (_, s) = plugin.pre_filter(&mut state, &pod, &snapshot.nodes);
        assert!(s.is_success(), "{s:?}");
        snapshot
            .nodes
            .iter()
            .map(|n| {
                let status = plugin.filter(&state, &pod, n);
                if status.code == Code::Unschedulable {
                    assert_eq!(status.reasons, vec![ERR_REASON_CONSTRAINTS_NOT_MATCH]);
                }
                if status.code == Code::UnschedulableAndUnresolvable {
                    assert_eq!(status.reasons, vec![ERR_REASON_NODE_LABEL_NOT_MATCH]);
                }
                (n.name().to_owned(), status.code)
            })
            .collect()
    }

    fn zone_nodes() -> Vec<Value> {
        vec![
            node("node-a", &[("zone", "zone1"), ("node", "node-a")]),
            node("node-b", &[("zone", "zone1"), ("node", "node-b")]),
            node("node-x", &[("zone", "zone2"), ("node", "node-x")]),
            node("node-y", &[("zone", "zone2"), ("node", "node-y")]),
        ]
    }

    fn foo_pods(placement: &[(&str, &str)]) -> Vec<Value> {
        placement
            .iter()
            .map(|(name, node)| placed(name, node, &[("foo", "")]))
            .collect()
    }

    fn codes(expected: &[(&str, Code)]) -> Vec<(String, Code)> {
        expected.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    use Code::{Success as S, Unschedulable as U, UnschedulableAndUnresolvable as UU};

    #[test]
    fn pre_filter_counts_domains_and_critical_paths() {
        // upstream "normal case with two spreadConstraints"
        let plugin = plugin(json!({"defaultingType": "List"}));
        let snap = snapshot(
            &zone_nodes(),
            &foo_pods(&[
                ("p-a1", "node-a"),
                ("p-a2", "node-a"),
                ("p-b1", "node-b"),
                ("p-y1", "node-y"),
                ("p-y2", "node-y"),
                ("p-y3", "node-y"),
                ("p-y4", "node-y"),
            ]),
        );
        let p = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([
                hard(1, "zone", foo_selector()),
                hard(1, "node", foo_selector())
            ]),
        )));
        let s = plugin.cal_pre_filter_state(&p, &snap.nodes).unwrap();
        assert_eq!(s.constraints.len(), 2);
        let m = |pairs: &[(&str, i64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(s.tp_value_to_match_num[0], m(&[("zone1", 3), ("zone2", 4)]));
        assert_eq!(
            s.tp_value_to_match_num[1],
            m(&[("node-a", 2), ("node-b", 1), ("node-x", 0), ("node-y", 4)])
        );
        assert_eq!(
            s.critical_paths[0].0[0],
            CriticalPath {
                topology_value: "zone1".into(),
                match_num: 3
            }
        );
        assert_eq!(s.critical_paths[0].0[1].match_num, 4);
        assert_eq!(
            s.critical_paths[1].0[0],
            CriticalPath {
                topology_value: "node-x".into(),
                match_num: 0
            }
        );
        assert_eq!(
            s.critical_paths[1].0[1],
            CriticalPath {
                topology_value: "node-b".into(),
                match_num: 1
            }
        );
    }

    #[test]
    fn pre_filter_skips_without_hard_constraints() {
        let plugin = plugin(json!({"defaultingType": "List"}));
        let snap = snapshot(&zone_nodes(), &[]);
        let mut state = CycleState::new(Arc::new(snap.clone()));
        let p = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([soft(1, "zone", foo_selector())]),
        )));
        let (_, s) = plugin.pre_filter(&mut state, &p, &snap.nodes);
        assert!(s.is_skip());
        // Filter without PreFilter state is an error, as upstream
        assert_eq!(plugin.filter(&state, &p, &snap.nodes[0]).code, Code::Error);
    }

    #[test]
    fn single_constraint_cases() {
        let zone = |skew| spread_pod(&[("foo", "")], json!([hard(skew, "zone", foo_selector())]));
        let by_node =
            |skew| spread_pod(&[("foo", "")], json!([hard(skew, "node", foo_selector())]));
        let spread_2103 = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
        ]);

        // no existing pods
        assert_eq!(
            filter_codes(&zone(1), &zone_nodes(), &[]),
            codes(&[("node-a", S), ("node-b", S), ("node-x", S), ("node-y", S)])
        );
        // existing pods in a different namespace do not count
        let mut existing = vec![
            placed_in("ns1", "p-a1", "node-a", &[("foo", "")]),
            placed_in("ns2", "p-b1", "node-a", &[("foo", "")]),
        ];
        existing.extend(foo_pods(&[("p-x1", "node-x"), ("p-y1", "node-y")]));
        assert_eq!(
            filter_codes(&zone(1), &zone_nodes(), &existing),
            codes(&[("node-a", S), ("node-b", S), ("node-x", U), ("node-y", U)])
        );
        // existing pods do not match a null selector
        let null_sel = spread_pod(
            &[("foo", "")],
            json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]),
        );
        assert_eq!(
            filter_codes(
                &null_sel,
                &zone_nodes(),
                &foo_pods(&[("p-x1", "node-x"), ("p-y1", "node-y")])
            ),
            codes(&[("node-a", S), ("node-b", S), ("node-x", S), ("node-y", S)])
        );
        // pods spread across zones as 3/3, all nodes fit
        assert_eq!(
            filter_codes(&zone(1), &zone_nodes(), &spread_2103),
            codes(&[("node-a", S), ("node-b", S), ("node-x", S), ("node-y", S)])
        );
        // pods spread across zones as 1/2 due to absence of label 'zone' on node-b
        let nodes = vec![
            node("node-a", &[("zone", "zone1"), ("node", "node-a")]),
            node("node-b", &[("zon", "zone1"), ("node", "node-b")]),
            node("node-x", &[("zone", "zone2"), ("node", "node-x")]),
            node("node-y", &[("zone", "zone2"), ("node", "node-y")]),
        ];
        assert_eq!(
            filter_codes(
                &zone(1),
                &nodes,
                &foo_pods(&[
                    ("p-a1", "node-a"),
                    ("p-b1", "node-b"),
                    ("p-x1", "node-x"),
                    ("p-y1", "node-y")
                ])
            ),
            codes(&[("node-a", S), ("node-b", UU), ("node-x", U), ("node-y", U)])
        );
        // no node has label 'rack'
        let rack = spread_pod(&[("foo", "")], json!([hard(1, "rack", foo_selector())]));
        assert_eq!(
            filter_codes(&rack, &zone_nodes()[..1], &[]),
            codes(&[("node-a", UU)])
        );
        // pods spread across nodes as 2/1/0/3, only node-x fits
        assert_eq!(
            filter_codes(&by_node(1), &zone_nodes(), &spread_2103),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", U)])
        );
        // maxSkew is 2: node-b and node-x fit
        assert_eq!(
            filter_codes(&by_node(2), &zone_nodes(), &spread_2103),
            codes(&[("node-a", U), ("node-b", S), ("node-x", S), ("node-y", U)])
        );
        // the pod doesn't match itself
        let not_self = spread_pod(&[("bar", "")], json!([hard(1, "node", foo_selector())]));
        assert_eq!(
            filter_codes(&not_self, &zone_nodes(), &spread_2103),
            codes(&[("node-a", U), ("node-b", S), ("node-x", S), ("node-y", U)])
        );
    }

    #[test]
    fn node_affinity_narrows_the_domains() {
        // incoming pod has nodeAffinity, pods spread as 2/~1~/~0~/3, hence node-a fits
        let mut p = spread_pod(&[("foo", "")], json!([hard(1, "node", foo_selector())]));
        p["spec"]["affinity"] = node_affinity_in("node", &["node-a", "node-y"]);
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
        ]);
        assert_eq!(
            filter_codes(&p, &zone_nodes(), &existing),
            codes(&[("node-a", S), ("node-b", S), ("node-x", S), ("node-y", U)])
        );
        // nodeAffinityPolicy Honor with a nodeSelector: pods spread as 1/1/0/~1~
        let nodes = vec![
            node("node-a", &[("node", "node-a"), ("foo", "")]),
            node("node-b", &[("node", "node-b"), ("foo", "")]),
            node("node-x", &[("node", "node-x"), ("foo", "")]),
            node("node-y", &[("node", "node-y")]),
        ];
        let existing = foo_pods(&[("p-b1", "node-a"), ("p-b2", "node-b"), ("p-y1", "node-y")]);
        let mut honored = spread_pod(&[("foo", "")], json!([hard(1, "node", foo_selector())]));
        honored["spec"]["nodeSelector"] = json!({"foo": ""});
        assert_eq!(
            filter_codes(&honored, &nodes, &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", S)])
        );
        // ... and Ignore: node-y's pod counts
        let mut ignored = spread_pod(
            &[("foo", "")],
            json!([{
                "maxSkew": 1, "topologyKey": "node", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": foo_selector(), "nodeAffinityPolicy": "Ignore"
            }]),
        );
        ignored["spec"]["nodeSelector"] = json!({"foo": ""});
        assert_eq!(
            filter_codes(&ignored, &nodes, &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", U)])
        );
    }

    #[test]
    fn node_taints_policy_honor_leaves_tainted_nodes_out() {
        let mut nodes = vec![
            node("node-a", &[("node", "node-a"), ("foo", "")]),
            node("node-b", &[("node", "node-b"), ("foo", "")]),
            node("node-x", &[("node", "node-x"), ("foo", "")]),
            node("node-y", &[("node", "node-y")]),
        ];
        nodes[3]["spec"] = json!({"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]});
        let existing = foo_pods(&[("p-b1", "node-a"), ("p-b2", "node-b"), ("p-y1", "node-y")]);
        let constraint = |policy: Option<&str>| {
            let mut c = hard(1, "node", foo_selector());
            if let Some(p) = policy {
                c["nodeTaintsPolicy"] = json!(p);
            }
            spread_pod(&[("foo", "")], json!([c]))
        };
        // pods spread as 1/1/0/~0~
        assert_eq!(
            filter_codes(&constraint(Some("Honor")), &nodes, &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", S)])
        );
        // Ignore (the default): node-y's pod counts, 1/1/0/1
        assert_eq!(
            filter_codes(&constraint(None), &nodes, &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", U)])
        );
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let nodes = vec![
            node("node-a", &[("node", "node-a")]),
            node("node-b", &[("node", "node-b")]),
        ];
        let mut existing = foo_pods(&[("p-a", "node-a"), ("p-b", "node-b")]);
        existing[0]["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        let p = spread_pod(&[("foo", "")], json!([hard(1, "node", foo_selector())]));
        assert_eq!(
            filter_codes(&p, &nodes, &existing),
            codes(&[("node-a", S), ("node-b", U)])
        );
    }

    #[test]
    fn min_domains_treats_the_global_minimum_as_zero() {
        let nodes = vec![
            node("node-a", &[("node", "node-a")]),
            node("node-b", &[("node", "node-b")]),
            node("node-c", &[("node", "node-c")]),
        ];
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-b2", "node-b"),
            ("p-c1", "node-c"),
        ]);
        let with_min = |min: i32| {
            let mut c = hard(2, "node", foo_selector());
            c["minDomains"] = json!(min);
            spread_pod(&[("foo", "")], json!([c]))
        };
        // 3 domains < minDomains 4: only node-c fits
        assert_eq!(
            filter_codes(&with_min(4), &nodes, &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-c", S)])
        );
        // 3 domains > minDomains 2: all fit
        assert_eq!(
            filter_codes(&with_min(2), &nodes, &existing),
            codes(&[("node-a", S), ("node-b", S), ("node-c", S)])
        );
    }

    #[test]
    fn multiple_constraints_must_all_hold() {
        // upstream TestMultipleConstraints "two Constraints on zone and node, spreads = [3/3, 2/1/0/3]"
        let p = spread_pod(
            &[("foo", "")],
            json!([
                hard(1, "zone", foo_selector()),
                hard(1, "node", foo_selector())
            ]),
        );
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
        ]);
        assert_eq!(
            filter_codes(&p, &zone_nodes(), &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", S), ("node-y", U)])
        );
        // spreads = [3/4, 2/1/0/4]: zone2 is one over zone1's count + 1, node-x loses on zone
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
            ("p-y4", "node-y"),
        ]);
        assert_eq!(
            filter_codes(&p, &zone_nodes(), &existing),
            codes(&[("node-a", U), ("node-b", U), ("node-x", U), ("node-y", U)])
        );
    }

    #[test]
    fn add_and_remove_pod_update_counts_and_paths() {
        let plugin = plugin(json!({"defaultingType": "List"}));
        let nodes = vec![
            node("node-a", &[("zone", "zone1"), ("node", "node-a")]),
            node("node-b", &[("zone", "zone1"), ("node", "node-b")]),
            node("node-x", &[("zone", "zone2"), ("node", "node-x")]),
        ];
        let snap = snapshot(
            &nodes,
            &foo_pods(&[("p-a1", "node-a"), ("p-x1", "node-x"), ("p-x2", "node-x")]),
        );
        let mut state = CycleState::new(Arc::new(snap.clone()));
        let p = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([hard(1, "zone", foo_selector())]),
        )));
        let (_, s) = plugin.pre_filter(&mut state, &p, &snap.nodes);
        assert!(s.is_success());
        let read = |state: &CycleState| {
            let s = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY).unwrap();
            (
                s.tp_value_to_match_num[0].clone(),
                s.critical_paths[0].0[0].clone(),
            )
        };
        assert_eq!(
            read(&state).1,
            CriticalPath {
                topology_value: "zone1".into(),
                match_num: 1
            }
        );
        // node-x: 2 pods, zone1: 1 → node-x is rejected (2 + 1 - 1 > 1)
        assert_eq!(
            plugin.filter(&state, &p, &snap.nodes[2]).code,
            Code::Unschedulable
        );
        // preemption removes one pod from node-x: zone2 now 1, fits
        let victim = PodInfo::new(pod(placed("p-x1", "node-x", &[("foo", "")])));
        assert!(
            plugin
                .remove_pod(&mut state, &p, &victim, &snap.nodes[2])
                .is_success()
        );
        assert_eq!(read(&state).0["zone2"], 1);
        assert_eq!(
            plugin.filter(&state, &p, &snap.nodes[2]).code,
            Code::Success
        );
        // adding two to zone1 moves the minimum to zone2
        let added = Arc::new(PodInfo::new(pod(placed("p-b1", "node-b", &[("foo", "")]))));
        plugin.add_pod(&mut state, &p, &added, &snap.nodes[1]);
        plugin.add_pod(&mut state, &p, &added, &snap.nodes[1]);
        assert_eq!(
            read(&state).1,
            CriticalPath {
                topology_value: "zone2".into(),
                match_num: 1
            }
        );
        // pods of another namespace or not matching change nothing
        let other_ns = Arc::new(PodInfo::new(pod(placed_in(
            "ns1",
            "q",
            "node-b",
            &[("foo", "")],
        ))));
        let unmatched = Arc::new(PodInfo::new(pod(placed("r", "node-b", &[("bar", "")]))));
        plugin.add_pod(&mut state, &p, &other_ns, &snap.nodes[1]);
        plugin.add_pod(&mut state, &p, &unmatched, &snap.nodes[1]);
        assert_eq!(read(&state).0["zone1"], 3);
    }

    #[test]
    fn critical_paths_keep_the_minimum_first() {
        let mut p = CriticalPaths::new();
        p.update("a", 3);
        p.update("b", 1);
        p.update("c", 2);
        assert_eq!((p.0[0].topology_value.as_str(), p.0[0].match_num), ("b", 1));
        assert_eq!((p.0[1].topology_value.as_str(), p.0[1].match_num), ("c", 2));
        // an existing path growing past the other swaps them
        p.update("b", 5);
        assert_eq!((p.0[0].topology_value.as_str(), p.0[0].match_num), ("c", 2));
    }
}
