//! PodTopologySpread's PreScore, Score and NormalizeScore (upstream's
//! `podtopologyspread/scoring.go`): the soft (`ScheduleAnyway`) constraints, or the
//! default constraints for pods without any.
//!
//! PreScore counts matching pods per domain over every node of the cluster, but only
//! for domains that hold a feasible node. A node's raw score sums, per constraint, its
//! domain's count weighted by `ln(domains + 2)` (so constraints over few domains are not
//! drowned by those over many) plus `maxSkew - 1` (to soften small skews). Hostname
//! constraints are counted on the node itself during Score. NormalizeScore inverts:
//! fewer matching pods, higher score.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::PodTopologySpread;
use super::common::{
    LABEL_HOSTNAME, SCHEDULE_ANYWAY, SpreadConstraint, count_pods_match_selector, node_labels,
    node_labels_match_spread_constraints, pod_spread_constraints,
};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin, Status,
};
use crate::plugins::node_affinity::RequiredNodeAffinity;

/// Where PreScore leaves its state (upstream's `"PreScore" + Name`).
pub(super) const PRE_SCORE_STATE_KEY: &str = "PreScorePodTopologySpread";

/// What PreScore computed for Score and NormalizeScore (upstream's `preScoreState`).
#[derive(Clone, Debug, Default)]
pub(super) struct PreScoreState {
    /// The constraints scored.
    pub constraints: Vec<SpreadConstraint>,
    /// Feasible nodes missing a topology key: scored 0.
    pub ignored_nodes: HashSet<String>,
    /// Per constraint, topology value → matching pods (empty for hostname
    /// constraints, counted in Score).
    pub topology_value_to_pod_counts: Vec<BTreeMap<String, i64>>,
    /// Per constraint, the weight of its counts.
    pub topology_normalizing_weight: Vec<f64>,
}

/// The weight of a constraint over `size` domains: `ln(size + 2)`, between about 1.1
/// and 8.5 for clusters up to 5000 nodes.
pub(super) fn topology_normalizing_weight(size: usize) -> f64 {
    ((size + 2) as f64).ln()
}

/// A domain's contribution to a node's raw score.
fn score_for_count(count: i64, max_skew: i32, weight: f64) -> f64 {
    count as f64 * weight + (max_skew - 1) as f64
}

impl PodTopologySpread {
    /// Builds the state from the feasible nodes: the constraints, the ignored nodes,
    /// the domains seen and the weights (upstream's `initPreScoreState`); counts stay 0.
    fn init_pre_score_state(
        &self,
        pod: &PodInfo,
        filtered: &[Arc<NodeInfo>],
        require_all_topologies: bool,
    ) -> Result<PreScoreState, String> {
        let constraints = self.get_constraints(pod, SCHEDULE_ANYWAY)?;
        let mut s = PreScoreState {
            constraints,
            ..PreScoreState::default()
        };
        if s.constraints.is_empty() {
            return Ok(s);
        }
        s.topology_value_to_pod_counts = vec![BTreeMap::new(); s.constraints.len()];
        for node_info in filtered {
            let node = node_info.node();
            let labels = node_labels(node);
            if require_all_topologies
                && !node_labels_match_spread_constraints(labels, &s.constraints)
            {
                s.ignored_nodes.insert(node_info.name().to_owned());
                continue;
            }
            for (i, c) in s.constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                // without all topologies required (system defaults), a node lacking the
                // zone label falls into the "" domain
                let value = labels
                    .get(&c.topology_key)
                    .map(String::as_str)
                    .unwrap_or("");
                s.topology_value_to_pod_counts[i]
                    .entry(value.to_owned())
                    .or_insert(0);
            }
        }
        s.topology_normalizing_weight = s
            .constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    filtered.len() - s.ignored_nodes.len()
                } else {
                    s.topology_value_to_pod_counts[i].len()
                };
                topology_normalizing_weight(size)
            })
            .collect();
        Ok(s)
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status {
        let all_nodes = state.snapshot.nodes.clone();
        if all_nodes.is_empty() {
            return Status::skip();
        }
        // Only the pod's own constraints (or operator-given defaults) require every
        // topology key; the system defaults still spread by hostname on nodes without a
        // zone label.
        let require_all = !pod_spread_constraints(&pod.pod).is_empty() || !self.system_defaulted;
        let mut s = match self.init_pre_score_state(pod, nodes, require_all) {
            Ok(s) => s,
            Err(e) => return Status::error(format!("calculating preScoreState: {e}")),
        };
        if s.constraints.is_empty() {
            return Status::skip();
        }
        let required = RequiredNodeAffinity::of(&pod.pod);
        for node_info in all_nodes.iter() {
            let node = node_info.node();
            let labels = node_labels(node);
            if require_all && !node_labels_match_spread_constraints(labels, &s.constraints) {
                continue;
            }
            for (i, c) in s.constraints.iter().enumerate() {
                if !c.includes_node(&pod.pod, node, &required) {
                    continue;
                }
                let value = labels
                    .get(&c.topology_key)
                    .map(String::as_str)
                    .unwrap_or("");
                // only domains holding a feasible node are counted; hostname domains are
                // counted per node in Score
                let Some(count) = s.topology_value_to_pod_counts[i].get_mut(value) else {
                    continue;
                };
                *count += count_pods_match_selector(&node_info.pods, &c.selector, pod.namespace());
            }
        }
        state.write(PRE_SCORE_STATE_KEY, s);
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node_info: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return (
                0,
                Status::error(format!(
                    "error reading {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
                )),
            );
        };
        if s.ignored_nodes.contains(node_info.name()) {
            return (0, Status::success());
        }
        let labels = node_labels(node_info.node());
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                count_pods_match_selector(&node_info.pods, &c.selector, pod.namespace())
            } else {
                s.topology_value_to_pod_counts[i]
                    .get(value)
                    .copied()
                    .unwrap_or(0)
            };
            score += score_for_count(count, c.max_skew, s.topology_normalizing_weight[i]);
        }
        (score.round() as i64, Status::success())
    }

    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Status::error(format!(
                "error reading {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let counted = |n: &NodeScore| !s.ignored_nodes.contains(&n.name);
        let min = scores
            .iter()
            .filter(|n| counted(n))
            .map(|n| n.score)
            .min()
            .unwrap_or(i64::MAX);
        let max = scores
            .iter()
            .filter(|n| counted(n))
            .map(|n| n.score)
            .max()
            .unwrap_or(0)
            .max(0);
        for n in scores.iter_mut() {
            n.score = if !counted(n) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                // the fewest matching pods score highest; the most score min/max of 100
                MAX_NODE_SCORE * (max + min - n.score) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::registry::{Handle, WorkloadSelector};
    use crate::plugins::pod_topology_spread::testing::*;
    use serde_json::{Value, json};

    /// Runs PreScore over `feasible` (all nodes: `feasible` + `failed`), Score on each
    /// feasible node and NormalizeScore, with the plugin built from `args`.
    fn scores_with(
        plugin: &PodTopologySpread,
        p: &Value,
        feasible: &[Value],
        failed: &[Value],
        existing: &[Value],
    ) -> Vec<(String, i64)> {
        let all: Vec<Value> = feasible.iter().chain(failed).cloned().collect();
        let snap = snapshot(&all, existing);
        let mut state = CycleState::new(Arc::new(snap.clone()));
        let pod = PodInfo::new(pod(p.clone()));
        let feasible_infos: Vec<Arc<NodeInfo>> = snap.nodes[..feasible.len()].to_vec();
        let s = plugin.pre_score(&mut state, &pod, &feasible_infos);
        assert!(s.is_success(), "{s:?}");
        let mut list: Vec<NodeScore> = feasible_infos
            .iter()
            .map(|n| {
                let (score, s) = plugin.score(&state, &pod, n);
                assert!(s.is_success());
                NodeScore {
                    name: n.name().to_owned(),
                    score,
                }
            })
            .collect();
        assert!(plugin.normalize_score(&state, &pod, &mut list).is_success());
        list.into_iter().map(|n| (n.name, n.score)).collect()
    }

    fn scores(
        p: &Value,
        feasible: &[Value],
        failed: &[Value],
        existing: &[Value],
    ) -> Vec<(String, i64)> {
        scores_with(&plugin(json!({})), p, feasible, failed, existing)
    }

    fn want(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
        expected.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    fn hosts(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| node(n, &[(LABEL_HOSTNAME, n)]))
            .collect()
    }

    fn foo_pods(placement: &[(&str, &str)]) -> Vec<Value> {
        placement
            .iter()
            .map(|(name, node)| placed(name, node, &[("foo", "")]))
            .collect()
    }

    fn on_host(skew: i32) -> Value {
        spread_pod(
            &[("foo", "")],
            json!([soft(skew, LABEL_HOSTNAME, foo_selector())]),
        )
    }

    /// 4/3/2/1 matching pods on node-a..node-d.
    fn spread_4321() -> Vec<Value> {
        foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-a3", "node-a"),
            ("p-a4", "node-a"),
            ("p-b1", "node-b"),
            ("p-b2", "node-b"),
            ("p-b3", "node-b"),
            ("p-c1", "node-c"),
            ("p-c2", "node-c"),
            ("p-d1", "node-d"),
        ])
    }

    #[test]
    fn one_constraint_on_hostname() {
        let four = hosts(&["node-a", "node-b", "node-c", "node-d"]);
        // no existing pods
        assert_eq!(
            scores(&on_host(1), &four[..2], &[], &[]),
            want(&[("node-a", 100), ("node-b", 100)])
        );
        // only one candidate node
        let existing = foo_pods(&[("p-a1", "node-a"), ("p-a2", "node-a"), ("p-b1", "node-b")]);
        assert_eq!(
            scores(&on_host(1), &four[..1], &four[1..2], &existing),
            want(&[("node-a", 100)])
        );
        // same number of matching pods everywhere
        assert_eq!(
            scores(
                &on_host(1),
                &four[..2],
                &[],
                &foo_pods(&[("p-a1", "node-a"), ("p-b1", "node-b")])
            ),
            want(&[("node-a", 100), ("node-b", 100)])
        );
        // matching pods spread as 2/1/0/3
        let spread_2103 = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-d1", "node-d"),
            ("p-d2", "node-d"),
            ("p-d3", "node-d"),
        ]);
        assert_eq!(
            scores(&on_host(1), &four, &[], &spread_2103),
            want(&[
                ("node-a", 20),
                ("node-b", 60),
                ("node-c", 100),
                ("node-d", 0)
            ])
        );
        // null selector
        let null_sel = spread_pod(
            &[("foo", "")],
            json!([{"maxSkew": 1, "topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"}]),
        );
        assert_eq!(
            scores(&null_sel, &four, &[], &spread_2103),
            want(&[
                ("node-a", 100),
                ("node-b", 100),
                ("node-c", 100),
                ("node-d", 100)
            ])
        );
        // maxSkew 2 waters differences down
        assert_eq!(
            scores(&on_host(2), &four, &[], &spread_2103),
            want(&[
                ("node-a", 33),
                ("node-b", 66),
                ("node-c", 100),
                ("node-d", 16)
            ])
        );
        // maxSkew 3, 4/3/2/1
        assert_eq!(
            scores(&on_host(3), &four, &[], &spread_4321()),
            want(&[
                ("node-a", 44),
                ("node-b", 66),
                ("node-c", 77),
                ("node-d", 100)
            ])
        );
    }

    #[test]
    fn system_defaults_spread_the_pods_of_a_service() {
        let four = hosts(&["node-a", "node-b", "node-c", "node-d"]);
        let handle = Handle::default();
        handle.workload_selectors.write().unwrap().insert(
            "default".to_owned(),
            vec![WorkloadSelector {
                kind: "Service",
                name: "svc".into(),
                selector: apimachinery::labels::Selector::from_set(&BTreeMap::from([(
                    "foo".to_owned(),
                    String::new(),
                )])),
            }],
        );
        let plugin = PodTopologySpread::from_args(None, &handle).unwrap();
        let p =
            json!({"metadata": {"name": "p", "labels": {"foo": ""}}, "spec": {"containers": []}});
        // the same scores as one hostname constraint with maxSkew 3: nodes without a
        // zone label are not ignored under system defaulting
        assert_eq!(
            scores_with(&plugin, &p, &four, &[], &spread_4321()),
            want(&[
                ("node-a", 44),
                ("node-b", 66),
                ("node-c", 77),
                ("node-d", 100)
            ])
        );
        // no Service selects the pod: Skip
        let lonely =
            json!({"metadata": {"name": "p", "labels": {"bar": ""}}, "spec": {"containers": []}});
        let snap = snapshot(&four, &[]);
        let mut state = CycleState::new(Arc::new(snap.clone()));
        assert!(
            plugin
                .pre_score(&mut state, &PodInfo::new(pod(lonely)), &snap.nodes)
                .is_skip()
        );
    }

    #[test]
    fn pre_score_state_with_system_defaults_and_a_replicaset() {
        // upstream TestPreScoreStateEmptyNodes "system default constraints and a replicaset"
        let handle = Handle::default();
        handle.workload_selectors.write().unwrap().insert(
            "default".to_owned(),
            vec![WorkloadSelector {
                kind: "ReplicaSet",
                name: "rs1".into(),
                selector: apimachinery::labels::Selector::parse("foo").unwrap(),
            }],
        );
        let plugin = PodTopologySpread::from_args(None, &handle).unwrap();
        let p = json!({"metadata": {"name": "p", "namespace": "default", "labels": {"foo": "tar", "baz": "sup"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "u", "controller": true}]},
            "spec": {"containers": []}});
        let nodes = vec![
            node(
                "node-a",
                &[
                    (LABEL_HOSTNAME, "node-a"),
                    ("topology.kubernetes.io/zone", "mars"),
                ],
            ),
            node(
                "node-b",
                &[
                    (LABEL_HOSTNAME, "node-b"),
                    ("topology.kubernetes.io/zone", "mars"),
                ],
            ),
            node("node-c", &[(LABEL_HOSTNAME, "node-c")]),
            node("node-d", &[(LABEL_HOSTNAME, "node-d")]),
        ];
        let snap = snapshot(&nodes, &[]);
        let mut state = CycleState::new(Arc::new(snap.clone()));
        assert!(
            plugin
                .pre_score(&mut state, &PodInfo::new(pod(p)), &snap.nodes)
                .is_success()
        );
        let s = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY).unwrap();
        assert_eq!(s.constraints.len(), 2);
        assert_eq!(
            (
                s.constraints[0].max_skew,
                s.constraints[0].topology_key.as_str()
            ),
            (3, LABEL_HOSTNAME)
        );
        assert_eq!(
            (
                s.constraints[1].max_skew,
                s.constraints[1].topology_key.as_str()
            ),
            (5, "topology.kubernetes.io/zone")
        );
        assert_eq!(s.constraints[0].selector.to_string(), "foo");
        assert!(s.ignored_nodes.is_empty());
        assert!(s.topology_value_to_pod_counts[0].is_empty());
        assert_eq!(
            s.topology_value_to_pod_counts[1],
            BTreeMap::from([("".to_owned(), 0), ("mars".to_owned(), 0)])
        );
        assert_eq!(
            s.topology_normalizing_weight,
            vec![
                topology_normalizing_weight(4),
                topology_normalizing_weight(2)
            ]
        );
    }

    #[test]
    fn pre_score_skips_without_soft_constraints() {
        let nodes = hosts(&["node-a", "node-b"]);
        let snap = snapshot(&nodes, &[]);
        let mut state = CycleState::new(Arc::new(snap.clone()));
        let p = PodInfo::new(pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}}),
        ));
        assert!(
            plugin(json!({"defaultingType": "List"}))
                .pre_score(&mut state, &p, &snap.nodes)
                .is_skip()
        );
        let hard_only = PodInfo::new(pod(spread_pod(
            &[("foo", "")],
            json!([hard(1, "zone", foo_selector())]),
        )));
        assert!(
            plugin(json!({}))
                .pre_score(&mut state, &hard_only, &snap.nodes)
                .is_skip()
        );
    }

    #[test]
    fn candidates_and_nodes_missing_the_key() {
        let four = hosts(&["node-a", "node-b", "node-x", "node-y"]);
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-a3", "node-a"),
            ("p-a4", "node-a"),
            ("p-b1", "node-b"),
            ("p-b2", "node-b"),
            ("p-x1", "node-x"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
        ]);
        // 4/2/1/~3~: node-y is not a candidate
        assert_eq!(
            scores(&on_host(1), &four[..3], &four[3..], &existing),
            want(&[("node-a", 33), ("node-b", 83), ("node-x", 100)])
        );
        // 4/?2?/1/~3~: node-b lacks the hostname label
        let feasible = vec![
            four[0].clone(),
            node("node-b", &[("n", "node-b")]),
            four[2].clone(),
        ];
        assert_eq!(
            scores(&on_host(1), &feasible, &four[3..], &existing),
            want(&[("node-a", 16), ("node-b", 0), ("node-x", 100)])
        );
        // one constraint on zone, 4/2/1/~3~
        let zoned = |n: &str, z: &str| node(n, &[("zone", z), (LABEL_HOSTNAME, n)]);
        let on_zone = spread_pod(&[("foo", "")], json!([soft(1, "zone", foo_selector())]));
        assert_eq!(
            scores(
                &on_zone,
                &[
                    zoned("node-a", "zone1"),
                    zoned("node-b", "zone1"),
                    zoned("node-x", "zone2")
                ],
                &[zoned("node-y", "zone2")],
                &existing
            ),
            want(&[("node-a", 75), ("node-b", 75), ("node-x", 100)])
        );
    }

    fn zoned_nodes() -> Vec<Value> {
        [
            ("node-a", "zone1"),
            ("node-b", "zone1"),
            ("node-x", "zone2"),
            ("node-y", "zone2"),
        ]
        .iter()
        .map(|(n, z)| node(n, &[("zone", z), (LABEL_HOSTNAME, n)]))
        .collect()
    }

    #[test]
    fn two_constraints() {
        let nodes = zoned_nodes();
        // zone and node, 2/~1~/2/~4~
        let p = spread_pod(
            &[("foo", "")],
            json!([
                soft(1, "zone", foo_selector()),
                soft(1, LABEL_HOSTNAME, foo_selector())
            ]),
        );
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-x1", "node-x"),
            ("p-x2", "node-x"),
            ("p-y1", "node-y"),
            ("p-y2", "node-y"),
            ("p-y3", "node-y"),
            ("p-y4", "node-y"),
        ]);
        let feasible = vec![nodes[0].clone(), nodes[2].clone()];
        let failed = vec![nodes[1].clone(), nodes[3].clone()];
        assert_eq!(
            scores(&p, &feasible, &failed, &existing),
            want(&[("node-a", 100), ("node-x", 63)])
        );

        // different selectors: zone 2/2/1/1, node 0/1/0/1
        let labels = [("foo", ""), ("bar", "")];
        let p = spread_pod(
            &labels,
            json!([
                soft(1, "zone", foo_selector()),
                soft(1, LABEL_HOSTNAME, exists("bar"))
            ]),
        );
        let existing = vec![
            placed("p-a1", "node-a", &[("foo", "")]),
            placed("p-b1", "node-b", &[("foo", ""), ("bar", "")]),
            placed("p-y1", "node-y", &[("foo", "")]),
            placed("p-y2", "node-y", &[("bar", "")]),
        ];
        assert_eq!(
            scores(&p, &nodes, &[], &existing),
            want(&[
                ("node-a", 60),
                ("node-b", 20),
                ("node-x", 100),
                ("node-y", 60)
            ])
        );
        // ... 3 out of 4 nodes candidates
        assert_eq!(
            scores(&p, &nodes[..3], &nodes[3..], &existing),
            want(&[("node-a", 50), ("node-b", 25), ("node-x", 100)])
        );
        // ... some nodes with 0 pods: zone 0/0/2/2, node 0/1/0/1
        let existing = vec![
            placed("p-b1", "node-b", &[("bar", "")]),
            placed("p-x1", "node-x", &[("foo", "")]),
            placed("p-y1", "node-y", &[("foo", ""), ("bar", "")]),
        ];
        assert_eq!(
            scores(&p, &nodes, &[], &existing),
            want(&[
                ("node-a", 100),
                ("node-b", 60),
                ("node-x", 40),
                ("node-y", 0)
            ])
        );
    }

    #[test]
    fn namespaces_terminating_pods_and_min_domains() {
        let two = hosts(&["node-a", "node-b"]);
        let mut existing = vec![placed_in("ns1", "p-a1", "node-a", &[("foo", "")])];
        existing.extend(foo_pods(&[
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-b2", "node-b"),
        ]));
        assert_eq!(
            scores(&on_host(1), &two, &[], &existing),
            want(&[("node-a", 100), ("node-b", 33)])
        );

        let mut existing = foo_pods(&[("p-a", "node-a"), ("p-b", "node-b")]);
        existing[0]["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(
            scores(&on_host(1), &two, &[], &existing),
            want(&[("node-a", 100), ("node-b", 0)])
        );

        // minDomains has no effect on soft constraints
        let nodes: Vec<Value> = ["node-a", "node-b", "node-c"]
            .iter()
            .map(|n| node(n, &[("node", n)]))
            .collect();
        let mut c = soft(2, "node", foo_selector());
        c["minDomains"] = json!(10);
        let p = spread_pod(&[("foo", "")], json!([c]));
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-b2", "node-b"),
            ("p-c1", "node-c"),
        ]);
        assert_eq!(
            scores(&p, &nodes, &[], &existing),
            want(&[("node-a", 75), ("node-b", 75), ("node-c", 100)])
        );
    }

    #[test]
    fn node_inclusion_policies() {
        let nodes = vec![
            node("node-a", &[("node", "node-a"), ("foo", "")]),
            node("node-b", &[("node", "node-b"), ("foo", "")]),
            node("node-c", &[("node", "node-c")]),
        ];
        let existing = foo_pods(&[
            ("p-a1", "node-a"),
            ("p-a2", "node-a"),
            ("p-b1", "node-b"),
            ("p-c1", "node-c"),
        ]);
        let with = |field: &str, policy: Option<&str>, node_selector: bool| {
            let mut c = soft(1, "node", foo_selector());
            if let Some(policy) = policy {
                c[field] = json!(policy);
            }
            let mut p = spread_pod(&[("foo", "")], json!([c]));
            if node_selector {
                p["spec"]["nodeSelector"] = json!({"foo": ""});
            }
            p
        };
        // nodeAffinityPolicy Honor (default): node-c's pods do not count
        assert_eq!(
            scores(
                &with("nodeAffinityPolicy", None, true),
                &nodes,
                &[],
                &existing
            ),
            want(&[("node-a", 0), ("node-b", 33), ("node-c", 100)])
        );
        assert_eq!(
            scores(
                &with("nodeAffinityPolicy", Some("Ignore"), true),
                &nodes,
                &[],
                &existing
            ),
            want(&[("node-a", 66), ("node-b", 100), ("node-c", 100)])
        );
        // nodeTaintsPolicy
        let mut tainted = nodes.clone();
        tainted[2]["spec"] = json!({"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]});
        assert_eq!(
            scores(
                &with("nodeTaintsPolicy", Some("Honor"), false),
                &tainted,
                &[],
                &existing
            ),
            want(&[("node-a", 0), ("node-b", 33), ("node-c", 100)])
        );
        assert_eq!(
            scores(
                &with("nodeTaintsPolicy", None, false),
                &tainted,
                &[],
                &existing
            ),
            want(&[("node-a", 66), ("node-b", 100), ("node-c", 100)])
        );
    }

    #[test]
    fn match_label_keys_narrow_the_counted_pods() {
        let nodes: Vec<Value> = [
            ("node-a", "zone1"),
            ("node-b", "zone1"),
            ("node-c", "zone2"),
            ("node-d", "zone2"),
        ]
        .iter()
        .map(|(n, z)| node(n, &[("zone", z), (LABEL_HOSTNAME, n)]))
        .collect();
        // empty selectors ANDed with matchLabelKeys
        let mut c1 = soft(1, "zone", json!({}));
        c1["matchLabelKeys"] = json!(["foo"]);
        let mut c2 = soft(1, LABEL_HOSTNAME, json!({}));
        c2["matchLabelKeys"] = json!(["bar"]);
        let p = spread_pod(&[("foo", ""), ("bar", "")], json!([c1, c2]));
        let existing = vec![
            placed("p-a1", "node-a", &[("foo", "")]),
            placed("p-b1", "node-b", &[("foo", ""), ("bar", "")]),
            placed("p-y1", "node-c", &[("foo", "")]),
            placed("p-y2", "node-c", &[("bar", "")]),
        ];
        assert_eq!(
            scores(&p, &nodes, &[], &existing),
            want(&[
                ("node-a", 60),
                ("node-b", 20),
                ("node-c", 60),
                ("node-d", 100)
            ])
        );
        // non-empty selector ANDed with matchLabelKeys
        let mut c2 = soft(1, LABEL_HOSTNAME, exists("bar"));
        c2["matchLabelKeys"] = json!(["baz"]);
        let p = spread_pod(
            &[("foo", ""), ("bar", ""), ("baz", "")],
            json!([soft(1, "zone", foo_selector()), c2]),
        );
        let existing = vec![
            placed("p-a1", "node-a", &[("foo", "")]),
            placed("p-b1", "node-b", &[("foo", ""), ("bar", ""), ("baz", "")]),
            placed("p-c1", "node-c", &[("foo", "")]),
            placed("p-c2", "node-c", &[("bar", "")]),
            placed("p-d3", "node-c", &[("bar", ""), ("baz", "")]),
        ];
        assert_eq!(
            scores(&p, &nodes, &[], &existing),
            want(&[
                ("node-a", 60),
                ("node-b", 20),
                ("node-c", 60),
                ("node-d", 100)
            ])
        );
    }
}
