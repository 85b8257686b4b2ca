//! InterPodAffinity's PreScore, Score and NormalizeScore (upstream's `scoring.go`).
//!
//! PreScore sums weights per topology pair (node label key, value): the incoming
//! pod's preferred affinity (+weight) and anti-affinity (-weight) terms for each
//! existing pod they select, and the existing pods' preferred terms (+/-weight) and
//! required affinity terms (+hardPodAffinityWeight) that select the incoming pod. A
//! node scores the sum over its own topology pairs; scores are then scaled between the
//! lowest and the highest to 0..=100.

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::labels::Labels;
use k8s_openapi::api::core::v1::{Node, Pod};
use rayon::prelude::*;

use super::{
    AffinityTerm, InterPodAffinity, PodTerms, WeightedAffinityTerm, preferred_affinity_terms,
    preferred_anti_affinity_terms,
};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin, Status,
};

/// Where PreScore leaves its sums in the cycle state.
const PRE_SCORE_STATE_KEY: &str = "PreScoreInterPodAffinity";

/// Topology key → value → summed weight (upstream's `scoreMap`).
type ScoreMap = HashMap<String, HashMap<String, i64>>;

/// What PreScore computed for Score and NormalizeScore.
#[derive(Clone, Debug)]
struct PreScoreState {
    topology_score: Arc<ScoreMap>,
}

/// Adds `weight * multiplier` to the pair of the term's key on `node` when `pod`
/// matches the term.
fn process_term(
    m: &mut ScoreMap,
    term: &AffinityTerm,
    weight: i32,
    pod: &Pod,
    ns_labels: &Labels,
    node: &Node,
    multiplier: i32,
) {
    if !term.matches(pod, ns_labels) {
        return;
    }
    let Some(value) = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(&term.topology_key))
    else {
        return;
    };
    *m.entry(term.topology_key.clone())
        .or_default()
        .entry(value.clone())
        .or_default() += i64::from(weight) * i64::from(multiplier);
}

fn process_terms(
    m: &mut ScoreMap,
    terms: &[WeightedAffinityTerm],
    pod: &Pod,
    ns_labels: &Labels,
    node: &Node,
    multiplier: i32,
) {
    for t in terms {
        process_term(m, &t.term, t.weight, pod, ns_labels, node, multiplier);
    }
}

fn merge(mut a: ScoreMap, b: ScoreMap) -> ScoreMap {
    for (key, values) in b {
        let into = a.entry(key).or_default();
        for (v, n) in values {
            *into.entry(v).or_default() += n;
        }
    }
    a
}

impl InterPodAffinity {
    /// Adds what one existing pod on `node` contributes (upstream's
    /// `processExistingPod`). `incoming_terms` have their namespace selectors resolved;
    /// the existing pod's terms are matched with the incoming pod's namespace labels.
    fn process_existing_pod(
        &self,
        m: &mut ScoreMap,
        incoming_terms: &PodTerms,
        incoming: &Pod,
        ns_labels: &Labels,
        existing: &PodInfo,
        node: &Node,
    ) {
        // Terms count only through a node's labels: a node without any adds nothing.
        if node.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return;
        }
        let none = Labels::new();
        process_terms(
            m,
            &incoming_terms.preferred_affinity,
            &existing.pod,
            &none,
            node,
            1,
        );
        process_terms(
            m,
            &incoming_terms.preferred_anti_affinity,
            &existing.pod,
            &none,
            node,
            -1,
        );
        if !existing.has_affinity {
            return;
        }
        // Existing pods' terms that do not parse are left out, as upstream's PodInfo.
        let (theirs, _) = PodTerms::parse(&existing.pod);
        if self.args.hard_pod_affinity_weight > 0 {
            for t in &theirs.required_affinity {
                process_term(
                    m,
                    t,
                    self.args.hard_pod_affinity_weight,
                    incoming,
                    ns_labels,
                    node,
                    1,
                );
            }
        }
        process_terms(m, &theirs.preferred_affinity, incoming, ns_labels, node, 1);
        process_terms(
            m,
            &theirs.preferred_anti_affinity,
            incoming,
            ns_labels,
            node,
            -1,
        );
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>]) -> Status {
        let has_constraints = !preferred_affinity_terms(&pod.pod).is_empty()
            || !preferred_anti_affinity_terms(&pod.pod).is_empty();
        // Optionally leave existing pods' terms out when the pod has none of its own.
        if self.args.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        let mut terms = match PodTerms::parse_strict(&pod.pod) {
            Ok(t) => t,
            // PreFilter rejects such pods first; reaching here means it did not run
            Err(e) => return Status::error(format!("failed to parse pod: {e}")),
        };
        for t in terms
            .preferred_affinity
            .iter_mut()
            .chain(terms.preferred_anti_affinity.iter_mut())
        {
            self.resolve_namespaces(&mut t.term);
        }
        let ns_labels = self.namespace_labels_of(pod.namespace());
        let snapshot = state.snapshot.clone();

        // Without preferred terms of its own, only pods with affinity can contribute.
        let per_node: Vec<ScoreMap> = snapshot
            .nodes
            .par_iter()
            .filter(|n| n.node.is_some() && (has_constraints || !n.pods_with_affinity.is_empty()))
            .map(|n| {
                let pods = if has_constraints {
                    &n.pods
                } else {
                    &n.pods_with_affinity
                };
                let mut m = ScoreMap::new();
                for existing in pods {
                    self.process_existing_pod(
                        &mut m,
                        &terms,
                        &pod.pod,
                        &ns_labels,
                        existing,
                        n.node(),
                    );
                }
                m
            })
            .filter(|m| !m.is_empty())
            .collect();
        if per_node.is_empty() {
            return Status::skip();
        }
        let topology_score = per_node.into_iter().fold(ScoreMap::new(), merge);
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                topology_score: Arc::new(topology_score),
            },
        );
        Status::success()
    }
}

fn read_state(state: &CycleState) -> Result<&PreScoreState, Status> {
    state
        .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
        .ok_or_else(|| {
            Status::error(format!(
                "failed to read {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            ))
        })
}

impl ScorePlugin for InterPodAffinity {
    /// The summed weights of the node's topology pairs: positive for affinity, negative
    /// for anti-affinity.
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let s = match read_state(state) {
            Ok(s) => s,
            Err(e) => return (0, e),
        };
        let Some(labels) = node.node().metadata.labels.as_ref() else {
            return (0, Status::success());
        };
        let score = s
            .topology_score
            .iter()
            .filter_map(|(key, values)| labels.get(key).and_then(|v| values.get(v)))
            .sum();
        (score, Status::success())
    }

    /// Scales scores between the lowest and the highest onto 0..=100 (upstream's
    /// min-max normalization, truncating as its float conversion does); all equal
    /// scores become 0. Without any topology sums the scores stay as they are.
    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let s = match read_state(state) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if s.topology_score.is_empty() {
            return Status::success();
        }
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
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

    /// PreScore, Score and NormalizeScore over every node: `None` when PreScore
    /// skipped.
    fn run(
        pl: &InterPodAffinity,
        incoming: &Pod,
        nodes: &[Node],
        pods: &[Pod],
    ) -> Option<Vec<i64>> {
        let snap = snapshot(nodes, pods);
        let mut st = state(&snap);
        let pi = PodInfo::new(incoming.clone());
        let s = pl.pre_score(&mut st, &pi, &snap.nodes);
        if s.is_skip() {
            return None;
        }
        assert!(s.is_success(), "{s:?}");
        let mut scores: Vec<NodeScore> = snap
            .nodes
            .iter()
            .map(|n| {
                let (score, s) = pl.score(&st, &pi, n);
                assert!(s.is_success());
                NodeScore {
                    name: n.name().to_owned(),
                    score,
                }
            })
            .collect();
        assert!(pl.normalize_score(&st, &pi, &mut scores).is_success());
        Some(scores.into_iter().map(|s| s.score).collect())
    }

    fn weighted(weight: i32, key: &str, op: &str, values: &[&str], topology: &str) -> Value {
        json!({"weight": weight, "podAffinityTerm": term(key, op, values, topology)})
    }

    fn preferred(affinity: Value, anti: Value) -> Value {
        json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": affinity},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": anti}
        })
    }

    /// Upstream's scoring table nodes: machine1 and machine3 in region China,
    /// machine2 in India, machine4/5 in other regions.
    fn nodes() -> Vec<Node> {
        vec![
            node("machine1", json!({"region": "China"})),
            node("machine2", json!({"region": "India"})),
            node("machine3", json!({"region": "China"})),
        ]
    }

    fn s1() -> Value {
        json!({"security": "S1"})
    }
    fn s2() -> Value {
        json!({"security": "S2"})
    }

    #[test]
    fn no_affinity_anywhere_skips() {
        let p = pod("p", "default", json!({}), json!(null), None);
        let pods = [pod("e", "default", s1(), json!(null), Some("machine1"))];
        assert_eq!(run(&plugin(json!({}), &[]), &p, &nodes(), &pods), None);
    }

    #[test]
    fn preferred_affinity_by_region() {
        // upstream: "Affinity: pod that matches topology key & pods in nodes will get
        // high score comparing to others"
        let p = pod(
            "p",
            "default",
            s1(),
            preferred(
                json!([weighted(5, "security", "In", &["S1"], "region")]),
                json!([]),
            ),
            None,
        );
        let pods = [
            pod("a", "default", s1(), json!(null), Some("machine1")),
            pod("b", "default", s2(), json!(null), Some("machine2")),
        ];
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes(), &pods),
            Some(vec![100, 0, 100])
        );
        // pods matching nothing: the sums exist (weight 0) but all are equal
        let p = pod(
            "p",
            "default",
            s1(),
            preferred(
                json!([weighted(5, "security", "In", &["S3"], "region")]),
                json!([]),
            ),
            None,
        );
        assert_eq!(run(&plugin(json!({}), &[]), &p, &nodes(), &pods), None);
    }

    #[test]
    fn preferred_anti_affinity_by_region() {
        // upstream: "Anti Affinity: pod that does not match existing pods in node will
        // get high score"
        let p = pod(
            "p",
            "default",
            s1(),
            preferred(
                json!([]),
                json!([weighted(5, "security", "In", &["S1"], "region")]),
            ),
            None,
        );
        let pods = [
            pod("a", "default", s1(), json!(null), Some("machine1")),
            pod("b", "default", s2(), json!(null), Some("machine2")),
        ];
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes(), &pods),
            Some(vec![0, 100, 0])
        );
    }

    #[test]
    fn affinity_and_anti_affinity_combined() {
        // affinity +5 for S1 in China; anti-affinity -10 for S2 in India
        let p = pod(
            "p",
            "default",
            json!({}),
            preferred(
                json!([weighted(5, "security", "In", &["S1"], "region")]),
                json!([weighted(10, "security", "In", &["S2"], "region")]),
            ),
            None,
        );
        let pods = [
            pod("a", "default", s1(), json!(null), Some("machine1")),
            pod("b", "default", s2(), json!(null), Some("machine2")),
        ];
        // raw: China 5, India -10 → (5+10)/15*100 = 100, 0, 100
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes(), &pods),
            Some(vec![100, 0, 100])
        );
        let mut four = nodes();
        four.push(node("machine4", json!({"region": "Mars"})));
        // Mars has 0: (0 + 10) * 100 / 15 = 66
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &four, &pods),
            Some(vec![100, 0, 100, 66])
        );
    }

    #[test]
    fn existing_pods_required_affinity_uses_hard_weight() {
        // upstream: "Affinity symmetry: considered RequiredDuringScheduling in pod
        // affinity symmetry"
        let existing_affinity = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("security", "In", &["S1"], "region")
        ]}});
        let pods = [
            pod(
                "a",
                "default",
                json!({}),
                existing_affinity.clone(),
                Some("machine1"),
            ),
            pod("b", "default", json!({}), json!(null), Some("machine2")),
        ];
        let p = pod("p", "default", s1(), json!(null), None);
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes(), &pods),
            Some(vec![100, 0, 100])
        );
        // a weight of 0 leaves required terms out entirely
        assert_eq!(
            run(
                &plugin(json!({"hardPodAffinityWeight": 0}), &[]),
                &p,
                &nodes(),
                &pods
            ),
            None
        );
    }

    #[test]
    fn existing_pods_preferred_terms_and_the_ignore_option() {
        // upstream: "Affinity symmetry: considered PreferredDuringScheduling in pod
        // affinity/anti-affinity symmetry"
        let pods = [
            pod(
                "a",
                "default",
                json!({}),
                preferred(
                    json!([weighted(5, "security", "In", &["S1"], "region")]),
                    json!([]),
                ),
                Some("machine1"),
            ),
            pod(
                "b",
                "default",
                json!({}),
                preferred(
                    json!([]),
                    json!([weighted(5, "security", "In", &["S1"], "region")]),
                ),
                Some("machine2"),
            ),
        ];
        let p = pod("p", "default", s1(), json!(null), None);
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &nodes(), &pods),
            Some(vec![100, 0, 100])
        );
        // ignoring existing pods' terms skips pods without preferred terms of their own
        let ignore = plugin(json!({"ignorePreferredTermsOfExistingPods": true}), &[]);
        assert_eq!(run(&ignore, &p, &nodes(), &pods), None);
        // ...but not pods with some: then existing pods' terms still count, as upstream
        let with_own = pod(
            "p",
            "default",
            s1(),
            preferred(
                json!([weighted(1, "security", "In", &["nothing"], "region")]),
                json!([]),
            ),
            None,
        );
        assert_eq!(
            run(&ignore, &with_own, &nodes(), &pods),
            Some(vec![100, 0, 100])
        );
    }

    #[test]
    fn existing_pods_namespace_selector_sees_the_incoming_namespace() {
        let pods = [pod(
            "a",
            "default",
            json!({}),
            preferred(
                json!([{"weight": 5, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"security": "S1"}},
                    "namespaceSelector": {"matchLabels": {"team": "blue"}},
                    "topologyKey": "region"
                }}]),
                json!([]),
            ),
            Some("machine1"),
        )];
        let pl = plugin(
            json!({}),
            &[("blue-ns", json!({"team": "blue"})), ("red-ns", json!({}))],
        );
        let blue = pod("p", "blue-ns", s1(), json!(null), None);
        let red = pod("p", "red-ns", s1(), json!(null), None);
        assert_eq!(run(&pl, &blue, &nodes(), &pods), Some(vec![100, 0, 100]));
        // the term applies to no pod of red-ns: sums exist only if something matched
        assert_eq!(run(&pl, &red, &nodes(), &pods), None);
    }

    #[test]
    fn nodes_without_the_topology_key_score_zero_raw() {
        let p = pod(
            "p",
            "default",
            json!({}),
            preferred(
                json!([]),
                json!([weighted(5, "security", "In", &["S1"], "region")]),
            ),
            None,
        );
        let pods = [pod("a", "default", s1(), json!(null), Some("machine1"))];
        let mut ns = nodes();
        ns.push(node("machine5", json!({"other": "x"})));
        // China -5, India 0, no region 0 → 0, 100, 0, 100
        assert_eq!(
            run(&plugin(json!({}), &[]), &p, &ns, &pods),
            Some(vec![0, 100, 0, 100])
        );
    }

    #[test]
    fn normalize_handles_negative_and_equal_scores() {
        let pl = plugin(json!({}), &[]);
        let snap = snapshot(&[], &[]);
        let mut st = state(&snap);
        let p = PodInfo::new(pod("p", "default", json!({}), json!(null), None));
        let mut map = ScoreMap::new();
        map.insert("zone".into(), HashMap::from([("z".into(), 1)]));
        st.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                topology_score: Arc::new(map),
            },
        );
        let ns = |v: &[i64]| -> Vec<NodeScore> {
            v.iter()
                .enumerate()
                .map(|(i, s)| NodeScore {
                    name: format!("n{i}"),
                    score: *s,
                })
                .collect()
        };
        let mut scores = ns(&[-10, 0, 5, 20]);
        assert!(pl.normalize_score(&st, &p, &mut scores).is_success());
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![0, 33, 50, 100]
        );
        let mut scores = ns(&[7, 7]);
        assert!(pl.normalize_score(&st, &p, &mut scores).is_success());
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![0, 0]
        );

        // an empty sum map keeps the scores as they are
        st.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                topology_score: Arc::new(ScoreMap::new()),
            },
        );
        let mut scores = ns(&[3, 9]);
        assert!(pl.normalize_score(&st, &p, &mut scores).is_success());
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![3, 9]
        );

        // without PreScore the state is missing
        let st = state(&snap);
        assert_eq!(pl.normalize_score(&st, &p, &mut scores).code, Code::Error);
    }
}
