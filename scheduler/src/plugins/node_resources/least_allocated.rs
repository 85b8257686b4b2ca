//! NodeResourcesFit's `LeastAllocated` scoring strategy (upstream's
//! `least_allocated.go`): the more of each resource stays free with the pod placed, the
//! higher the node scores, so pods spread across nodes.

use super::resource_allocation::{ResourceSpec, ScoreFn, weighted_average_scorer};
use crate::framework::MAX_NODE_SCORE;

/// The strategy over `resources`: per resource the free share on a 0..=100 scale,
/// averaged by weight with integer division as upstream.
pub fn scorer(resources: &[ResourceSpec]) -> ScoreFn {
    weighted_average_scorer(resources, least_requested_score)
}

/// The unused share of `capacity` on a 0..=100 scale; 0 when over-committed.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    // widened so byte-sized capacities times 100 cannot overflow; the quotient fits
    ((i128::from(capacity - requested) * i128::from(MAX_NODE_SCORE)) / i128::from(capacity)) as i64
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fit_scores, node, pod};
    use super::*;
    use serde_json::json;

    fn defaults() -> Vec<ResourceSpec> {
        super::super::resource_allocation::default_resources()
    }

    fn run(
        incoming: crate::framework::PodInfo,
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
        existing: Vec<crate::framework::PodInfo>,
        resources: Vec<ResourceSpec>,
    ) -> Vec<i64> {
        let args = json!({"scoringStrategy": {"type": "LeastAllocated", "resources": resources}});
        fit_scores(&args, incoming, nodes, existing)
    }

    // upstream's st.MakePod() has no containers, so it adds no non-zero defaults
    fn empty(name: &str, node: Option<&str>) -> crate::framework::PodInfo {
        pod(name, node, &[])
    }

    fn two_containers() -> crate::framework::PodInfo {
        pod(
            "p",
            None,
            &[
                json!({"cpu": "1000", "memory": "2000"}),
                json!({"cpu": "2000", "memory": "3000"}),
            ],
        )
    }

    #[test]
    fn nothing_scheduled_nothing_requested() {
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "4000", "memory": "10000"})),
        ];
        assert_eq!(run(empty("p", None), nodes, vec![], defaults()), [100, 100]);
    }

    #[test]
    fn nothing_scheduled_resources_requested_differently_sized_nodes() {
        // node1: cpu (4000-3000)*100/4000 = 25, memory (10000-5000)*100/10000 = 50 → 37
        // node2: cpu 50, memory 50 → 50
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        assert_eq!(run(two_containers(), nodes, vec![], defaults()), [37, 50]);
    }

    #[test]
    fn no_resources_requested_pods_scheduled_with_resources() {
        // node1: cpu 40, memory 100 → 70; node2: cpu 40, memory 75 → 57
        let nodes = vec![
            node("node1", json!({"cpu": "10000", "memory": "20000"})),
            node("node2", json!({"cpu": "10000", "memory": "20000"})),
        ];
        let existing = vec![
            pod("a", Some("node1"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod("b", Some("node1"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod("c", Some("node2"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod(
                "d",
                Some("node2"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
        ];
        assert_eq!(run(empty("p", None), nodes, existing, defaults()), [70, 57]);
    }

    #[test]
    fn resources_requested_pods_scheduled_differently_sized_nodes() {
        // node1: cpu 40, memory 75 → 57; node2: cpu 40, memory (50000-10000)/500 = 80 → 60
        let nodes = vec![
            node("node1", json!({"cpu": "10000", "memory": "20000"})),
            node("node2", json!({"cpu": "10000", "memory": "50000"})),
        ];
        let existing = vec![
            pod("a", Some("node1"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod(
                "b",
                Some("node2"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
        ];
        assert_eq!(run(two_containers(), nodes, existing, defaults()), [57, 60]);
    }

    #[test]
    fn requested_resources_exceed_node_capacity() {
        // cpu 6000 > 4000 scores 0; node1 memory 100 → 50; node2 memory 50 → 25
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "4000", "memory": "10000"})),
        ];
        let existing = vec![
            pod("a", Some("node1"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod(
                "b",
                Some("node2"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
        ];
        let incoming = pod("p", None, &[json!({"cpu": "3000", "memory": "0"})]);
        assert_eq!(run(incoming, nodes, existing, defaults()), [50, 25]);
    }

    #[test]
    fn zero_node_resources() {
        let nodes = vec![node("node1", json!({})), node("node2", json!({}))];
        let existing = vec![pod(
            "a",
            Some("node1"),
            &[json!({"cpu": "3000", "memory": "0"})],
        )];
        assert_eq!(run(empty("p", None), nodes, existing, defaults()), [0, 0]);
    }

    #[test]
    fn different_weights_on_cpu_and_memory() {
        // node1: (25*1 + 50*2) / 3 = 41; node2: (50 + 100) / 3 = 50
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        let resources = vec![ResourceSpec::new("memory", 2), ResourceSpec::new("cpu", 1)];
        assert_eq!(run(two_containers(), nodes, vec![], resources), [41, 50]);
    }

    #[test]
    fn extended_resources_count_only_when_requested() {
        let resources = vec![
            ResourceSpec::new("cpu", 1),
            ResourceSpec::new("memory", 1),
            ResourceSpec::new("extended.resource.dra.io/something", 1),
        ];
        let nodes = || {
            vec![
                node("node1", json!({"cpu": "6000", "memory": "10000"})),
                node(
                    "node2",
                    json!({"cpu": "6000", "memory": "10000", "extended.resource.dra.io/something": "4"}),
                ),
            ]
        };
        // not requested: bypassed, (50 + 50) / 2 on both
        assert_eq!(
            run(two_containers(), nodes(), vec![], resources.clone()),
            [50, 50]
        );
        // requested: node1 2/4 free → 50; node2 8/10 free → 80, (50+50+80)/3 = 60
        let nodes = vec![
            node(
                "node1",
                json!({"cpu": "6000", "memory": "10000", "extended.resource.dra.io/something": "4"}),
            ),
            node(
                "node2",
                json!({"cpu": "6000", "memory": "10000", "extended.resource.dra.io/something": "10"}),
            ),
        ];
        let incoming = pod(
            "p",
            None,
            &[json!({"cpu": "3000", "memory": "5000", "extended.resource.dra.io/something": "2"})],
        );
        assert_eq!(run(incoming, nodes, vec![], resources), [50, 60]);
    }

    #[test]
    fn a_resource_the_node_lacks_is_left_out() {
        // the extended resource is not requested, so both score (50 + 60) / 2 = 55
        let nodes = vec![
            node("node1", json!({"cpu": "6000", "memory": "10000"})),
            node(
                "node2",
                json!({"cpu": "6000", "memory": "10000", "extended.resource.dra.io/something": "4"}),
            ),
        ];
        let resources = vec![
            ResourceSpec::new("extended.resource.dra.io/something", 2),
            ResourceSpec::new("cpu", 1),
            ResourceSpec::new("memory", 1),
        ];
        let incoming = pod("p", None, &[json!({"cpu": "3000", "memory": "4000"})]);
        assert_eq!(run(incoming, nodes, vec![], resources), [55, 55]);
    }

    #[test]
    fn the_score_function_itself() {
        assert_eq!(least_requested_score(0, 0), 0);
        assert_eq!(least_requested_score(5, 4), 0);
        assert_eq!(least_requested_score(1, 3), 66);
        assert_eq!(least_requested_score(0, i64::MAX), 100);
    }
}
