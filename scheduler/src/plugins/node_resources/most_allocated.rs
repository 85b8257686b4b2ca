//! NodeResourcesFit's `MostAllocated` scoring strategy (upstream's
//! `most_allocated.go`): the more of each resource is in use with the pod placed, the
//! higher the node scores, so pods pack onto few nodes.

use super::resource_allocation::{ResourceSpec, ScoreFn, weighted_average_scorer};
use crate::framework::MAX_NODE_SCORE;

/// The strategy over `resources`: per resource the used share on a 0..=100 scale,
/// averaged by weight with integer division as upstream.
pub fn scorer(resources: &[ResourceSpec]) -> ScoreFn {
    weighted_average_scorer(resources, most_requested_score)
}

/// The used share of `capacity` on a 0..=100 scale. Requests beyond capacity (pods
/// without requests count non-zero defaults) count as full.
pub fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    let requested = requested.min(capacity);
    // widened so byte-sized amounts times 100 cannot overflow; the quotient fits
    ((i128::from(requested) * i128::from(MAX_NODE_SCORE)) / i128::from(capacity)) as i64
}

#[cfg(test)]
mod tests {
    use super::super::resource_allocation::default_resources;
    use super::super::testing::{fit_scores, node, pod};
    use super::*;
    use serde_json::json;

    fn run(
        incoming: crate::framework::PodInfo,
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
        existing: Vec<crate::framework::PodInfo>,
        resources: Vec<ResourceSpec>,
    ) -> Vec<i64> {
        let args = json!({"scoringStrategy": {"type": "MostAllocated", "resources": resources}});
        fit_scores(&args, incoming, nodes, existing)
    }

    #[test]
    fn nothing_scheduled_nothing_requested() {
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "4000", "memory": "10000"})),
        ];
        assert_eq!(
            run(pod("p", None, &[]), nodes, vec![], default_resources()),
            [0, 0]
        );
    }

    #[test]
    fn nothing_scheduled_resources_requested_differently_sized_nodes() {
        // node1: cpu 3000*100/4000 = 75, memory 50 → 62; node2: cpu 50, memory 50 → 50
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        let incoming = pod(
            "p",
            None,
            &[
                json!({"cpu": "1000", "memory": "2000"}),
                json!({"cpu": "2000", "memory": "3000"}),
            ],
        );
        assert_eq!(run(incoming, nodes, vec![], default_resources()), [62, 50]);
    }

    #[test]
    fn resources_requested_pods_scheduled_with_resources() {
        // node1: cpu 6000/10000 = 60, memory 5000/20000 = 25 → 42
        // node2: cpu 60, memory 10000/20000 = 50 → 55
        let nodes = vec![
            node("node1", json!({"cpu": "10000", "memory": "20000"})),
            node("node2", json!({"cpu": "10000", "memory": "20000"})),
        ];
        let existing = vec![
            pod("a", Some("node1"), &[json!({"cpu": "3000", "memory": "0"})]),
            pod(
                "b",
                Some("node2"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
        ];
        let incoming = pod(
            "p",
            None,
            &[
                json!({"cpu": "1000", "memory": "2000"}),
                json!({"cpu": "2000", "memory": "3000"}),
            ],
        );
        assert_eq!(
            run(incoming, nodes, existing, default_resources()),
            [42, 55]
        );
    }

    #[test]
    fn requested_resources_beyond_capacity_count_as_full() {
        // node1: cpu min(5000, 4000) → 100, memory 10000/10000 → 100 → 100
        // node2: cpu 5000/10000 = 50, memory 10000/20000 = 50 → 50
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "10000", "memory": "20000"})),
        ];
        let incoming = pod(
            "p",
            None,
            &[
                json!({"cpu": "2000", "memory": "4000"}),
                json!({"cpu": "3000", "memory": "6000"}),
            ],
        );
        assert_eq!(run(incoming, nodes, vec![], default_resources()), [100, 50]);
    }

    #[test]
    fn different_weights_on_cpu_and_memory() {
        // node1: (75*1 + 50*2) / 3 = 58; node2: (50 + 100) / 3 = 50
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        let incoming = pod(
            "p",
            None,
            &[
                json!({"cpu": "1000", "memory": "2000"}),
                json!({"cpu": "2000", "memory": "3000"}),
            ],
        );
        let resources = vec![ResourceSpec::new("memory", 2), ResourceSpec::new("cpu", 1)];
        assert_eq!(run(incoming, nodes, vec![], resources), [58, 50]);
    }

    #[test]
    fn containers_without_requests_count_non_zero_defaults() {
        // node1: cpu 100m/1000m = 10, memory 200Mi/1000Mi = 20 → 15
        let nodes = vec![node("node1", json!({"cpu": "1", "memory": "1000Mi"}))];
        let incoming = pod("p", None, &[json!({})]);
        assert_eq!(run(incoming, nodes, vec![], default_resources()), [15]);
    }

    #[test]
    fn extended_resources() {
        let resources = vec![
            ResourceSpec::new("cpu", 1),
            ResourceSpec::new("memory", 1),
            ResourceSpec::new("extended.resource.dra.io/something", 1),
        ];
        // requested: node1 2/4 = 50; node2 2/10 = 20; cpu 50, memory 50
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
        assert_eq!(run(incoming, nodes, vec![], resources), [50, 40]);
    }

    #[test]
    fn the_score_function_itself() {
        assert_eq!(most_requested_score(1, 0), 0);
        assert_eq!(most_requested_score(5, 4), 100);
        assert_eq!(most_requested_score(2, 3), 66);
        assert_eq!(most_requested_score(i64::MAX, i64::MAX), 100);
    }
}
