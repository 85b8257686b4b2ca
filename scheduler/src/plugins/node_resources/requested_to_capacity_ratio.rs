//! NodeResourcesFit's `RequestedToCapacityRatio` scoring strategy (upstream's
//! `requested_to_capacity_ratio.go` and the broken-linear helper): a user-given shape
//! maps each resource's utilization (0..=100) to a score, which lets a profile bin-pack
//! or spread on any resource, extended ones included.

use serde::{Deserialize, Serialize};

use super::resource_allocation::{ResourceSpec, ScoreFn};
use crate::framework::MAX_NODE_SCORE;

/// The highest score a shape point may give (upstream's `MaxCustomPriorityScore`);
/// shape scores are scaled by `MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE`.
pub const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;

/// Utilization is a percentage of allocatable.
const MAX_UTILIZATION: i64 = 100;

/// One point of the shape (upstream's `UtilizationShapePoint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct UtilizationShapePoint {
    /// Utilization, 0..=100.
    pub utilization: i32,
    /// Score at that utilization, 0..=10.
    pub score: i32,
}

/// The strategy's parameters (upstream's `RequestedToCapacityRatioParam`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RequestedToCapacityRatioParam {
    /// The points of the piecewise-linear function, utilization increasing.
    pub shape: Vec<UtilizationShapePoint>,
}

/// A piecewise-linear function through `(utilization, score)` points, flat before the
/// first and after the last (upstream's `helper.BuildBrokenLinearFunction`). Integer
/// arithmetic truncating toward zero, as Go's.
pub fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, &(utilization, score)) in shape.iter().enumerate() {
        if p <= utilization {
            if i == 0 {
                return score;
            }
            let (prev_utilization, prev_score) = shape[i - 1];
            return prev_score
                + (score - prev_score) * (p - prev_utilization) / (utilization - prev_utilization);
        }
    }
    shape.last().map_or(0, |&(_, score)| score)
}

/// The strategy over `resources` with `shape` (already validated): per resource the
/// shape at its utilization; resources scoring 0 are left out of the weighted average,
/// which is rounded (half away from zero) as upstream's `math.Round`.
pub fn scorer(resources: &[ResourceSpec], shape: &[UtilizationShapePoint]) -> ScoreFn {
    let weights: Vec<i64> = resources.iter().map(|r| r.weight).collect();
    let points: Vec<(i64, i64)> = shape
        .iter()
        .map(|p| {
            (
                i64::from(p.utilization),
                i64::from(p.score) * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
            )
        })
        .collect();
    Box::new(move |requested, allocatable| {
        let resource_score = |requested: i64, capacity: i64| {
            if capacity == 0 || requested > capacity {
                return broken_linear(&points, MAX_UTILIZATION);
            }
            // widened so byte-sized amounts times 100 cannot overflow
            let utilization =
                (i128::from(requested) * i128::from(MAX_UTILIZATION) / i128::from(capacity)) as i64;
            broken_linear(&points, utilization)
        };
        let (mut node_score, mut weight_sum) = (0i64, 0i64);
        for (i, weight) in weights.iter().enumerate() {
            if allocatable[i] == 0 {
                continue;
            }
            let score = resource_score(requested[i], allocatable[i]);
            if score > 0 {
                node_score += score * weight;
                weight_sum += weight;
            }
        }
        if weight_sum == 0 {
            0
        } else {
            (node_score as f64 / weight_sum as f64).round() as i64
        }
    })
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
        shape: serde_json::Value,
    ) -> Vec<i64> {
        let args = json!({"scoringStrategy": {
            "type": "RequestedToCapacityRatio",
            "resources": resources,
            "requestedToCapacityRatio": {"shape": shape},
        }});
        fit_scores(&args, incoming, nodes, existing)
    }

    fn least_shape() -> serde_json::Value {
        json!([{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}])
    }

    #[test]
    fn nothing_requested_favours_empty_nodes() {
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "4000", "memory": "10000"})),
        ];
        let existing = vec![pod("a", Some("node1"), &[]), pod("b", Some("node1"), &[])];
        assert_eq!(
            run(
                pod("p", None, &[]),
                nodes,
                existing,
                default_resources(),
                least_shape()
            ),
            [100, 100]
        );
    }

    #[test]
    fn resources_requested_differently_sized_nodes() {
        // node1: cpu 75% → 25, memory 50% → 50, round(37.5) = 38; node2: 50, 50 → 50
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
        let existing = vec![pod("a", Some("node1"), &[]), pod("b", Some("node1"), &[])];
        assert_eq!(
            run(
                incoming,
                nodes,
                existing,
                default_resources(),
                least_shape()
            ),
            [38, 50]
        );
    }

    #[test]
    fn pods_scheduled_with_resources() {
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        let existing = vec![
            pod(
                "a",
                Some("node1"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
            pod(
                "b",
                Some("node2"),
                &[json!({"cpu": "3000", "memory": "5000"})],
            ),
        ];
        assert_eq!(
            run(
                pod("p", None, &[]),
                nodes,
                existing,
                default_resources(),
                least_shape()
            ),
            [38, 50]
        );
    }

    fn bin_packing_shape() -> serde_json::Value {
        json!([{"utilization": 0, "score": 0}, {"utilization": 100, "score": 1}])
    }

    fn gpu_node(name: &str, foo: &str, bar: Option<&str>) -> k8s_openapi::api::core::v1::Node {
        let mut alloc = json!({"cpu": "4", "memory": "10000Mi", "intel.com/foo": foo});
        if let Some(bar) = bar {
            alloc["intel.com/bar"] = json!(bar);
        }
        node(name, alloc)
    }

    #[test]
    fn bin_packing_on_one_extended_resource() {
        let resources = vec![ResourceSpec::new("intel.com/foo", 1)];
        let nodes = || vec![gpu_node("node1", "8", None), gpu_node("node2", "4", None)];
        // not requested: the resource is left out, nothing scores
        assert_eq!(
            run(
                pod("p", None, &[]),
                nodes(),
                vec![],
                resources.clone(),
                bin_packing_shape()
            ),
            [0, 0]
        );
        // 2 of 8 → 25% → 2; 2 of 4 → 50% → 5
        let two = || pod("p", None, &[json!({"intel.com/foo": "2"})]);
        assert_eq!(
            run(
                two(),
                nodes(),
                vec![pod("a", None, &[])],
                resources.clone(),
                bin_packing_shape()
            ),
            [2, 5]
        );
        // node2 already has 2 of its 4 in use: 4 of 4 → 10
        let existing = vec![pod("a", Some("node2"), &[json!({"intel.com/foo": "2"})])];
        assert_eq!(
            run(
                two(),
                nodes(),
                existing,
                resources.clone(),
                bin_packing_shape()
            ),
            [2, 10]
        );
        // 4 of 8 → 5; 4 of 4 → 10
        let four = pod("p", None, &[json!({"intel.com/foo": "4"})]);
        assert_eq!(
            run(four, nodes(), vec![], resources, bin_packing_shape()),
            [5, 10]
        );
    }

    #[test]
    fn bin_packing_on_several_extended_resources() {
        // weights foo 3, bar 5; node1 has foo 8, bar 4; node2 foo 4, bar 8
        let resources = vec![
            ResourceSpec::new("intel.com/foo", 3),
            ResourceSpec::new("intel.com/bar", 5),
        ];
        let nodes = || {
            vec![
                gpu_node("node1", "8", Some("4")),
                gpu_node("node2", "4", Some("8")),
            ]
        };
        assert_eq!(
            run(
                pod("p", None, &[]),
                nodes(),
                vec![],
                resources.clone(),
                bin_packing_shape()
            ),
            [0, 0]
        );
        // node1: foo 2/8 → 2, bar 2/4 → 5: round((6 + 25) / 8) = 4
        // node2: foo 2/4 → 5, bar 2/8 → 2: round((15 + 10) / 8) = 3
        let incoming = pod(
            "p",
            None,
            &[json!({"intel.com/foo": "2", "intel.com/bar": "2"})],
        );
        assert_eq!(
            run(
                incoming,
                nodes(),
                vec![],
                resources.clone(),
                bin_packing_shape()
            ),
            [4, 3]
        );
        // node1: foo 4/8 → 5, bar 2/4 → 5 → 5; node2: foo 4/4 → 10, bar 2/8 → 2:
        // round((30 + 10) / 8) = 5
        let incoming = pod(
            "p",
            None,
            &[json!({"intel.com/foo": "4", "intel.com/bar": "2"})],
        );
        assert_eq!(
            run(incoming, nodes(), vec![], resources, bin_packing_shape()),
            [5, 5]
        );
    }

    #[test]
    fn the_broken_linear_function() {
        let cases: [(&[(i64, i64)], &[(i64, i64)]); 3] = [
            (
                &[(10, 1), (90, 9)],
                &[
                    (-10, 1),
                    (0, 1),
                    (9, 1),
                    (10, 1),
                    (15, 1),
                    (19, 1),
                    (20, 2),
                    (89, 8),
                    (90, 9),
                    (99, 9),
                    (100, 9),
                    (110, 9),
                ],
            ),
            (
                &[(0, 2), (40, 10), (100, 0)],
                &[
                    (-10, 2),
                    (0, 2),
                    (20, 6),
                    (30, 8),
                    (40, 10),
                    (70, 5),
                    (100, 0),
                    (110, 0),
                ],
            ),
            (
                &[(0, 2), (40, 2), (100, 2)],
                &[
                    (-10, 2),
                    (0, 2),
                    (20, 2),
                    (30, 2),
                    (40, 2),
                    (70, 2),
                    (100, 2),
                    (110, 2),
                ],
            ),
        ];
        for (shape, assertions) in cases {
            for &(p, want) in assertions {
                assert_eq!(broken_linear(shape, p), want, "shape {shape:?} at {p}");
            }
        }
    }
}
