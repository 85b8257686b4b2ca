//! NodeResourcesBalancedAllocation (upstream's `balanced_allocation.go`): favours
//! nodes whose resources would be used evenly with the pod placed, scoring
//! `(1 - std) * 100` where std is the standard deviation of the per-resource
//! requested/allocatable fractions.

use std::sync::Arc;

use apimachinery::errors::{FieldError, FieldPath, aggregate_message};
use serde::{Deserialize, Serialize};

use super::resource_allocation::{
    ResourceAllocationScorer, ResourceSpec, default_resource_weights, is_best_effort,
};
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// Where PreScore leaves the pod's per-resource requests for Score.
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

/// The plugin's arguments (upstream's `NodeResourcesBalancedAllocationArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeResourcesBalancedAllocationArgs {
    /// The resources balanced; cpu and memory when empty. Weights must be 1 (they do
    /// not enter the standard deviation).
    pub resources: Vec<ResourceSpec>,
}

impl NodeResourcesBalancedAllocationArgs {
    /// Upstream's v1 defaulting: cpu and memory when empty, weight 1 for weight 0.
    pub fn set_defaults(&mut self) {
        default_resource_weights(&mut self.resources);
    }

    /// Upstream's `ValidateNodeResourcesBalancedAllocationArgs`: no resource twice, and
    /// every weight exactly 1.
    pub fn validate(&self) -> Result<(), String> {
        let path = FieldPath::default().child("resources");
        let mut errs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.resources.iter().enumerate() {
            if !seen.insert(r.name.as_str()) {
                errs.push(FieldError::duplicate(path.index(i).child("name"), &r.name));
            }
            if r.weight != 1 {
                errs.push(FieldError::invalid(
                    path.index(i).child("weight"),
                    r.weight,
                    "must be 1",
                ));
            }
        }
        match aggregate_message(&errs) {
            None => Ok(()),
            Some(msg) => Err(msg),
        }
    }
}

/// The plugin.
#[derive(Debug)]
pub struct BalancedAllocation {
    scorer: ResourceAllocationScorer,
}

/// PreScore's state: the pod's request of each balanced resource.
#[derive(Clone, Debug)]
struct PreScoreState {
    pod_requests: Vec<i64>,
}

/// The constructor: decodes, defaults and validates the arguments.
pub fn new(args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let mut args: NodeResourcesBalancedAllocationArgs = decode_args(NAME, args)?;
    args.set_defaults();
    args.validate()?;
    Ok(Arc::new(BalancedAllocation {
        // actual requests, not non-zero ones: a pod without requests does not unbalance
        scorer: ResourceAllocationScorer::new(
            NAME,
            true,
            args.resources,
            Box::new(|requested, allocatable| balanced_resource_score(requested, allocatable)),
        ),
    }))
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>]) -> Status {
        let pod_requests = self.scorer.pod_requests(pod);
        if is_best_effort(&pod_requests) {
            // Best-effort pods would otherwise all land on the node that is already the
            // most balanced (upstream issue 129138): leave them to other scores.
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState { pod_requests });
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => self.scorer.score(node, &s.pod_requests),
            None => {
                // Score without PreScore (as upstream allows): same requests, and a
                // best-effort pod scores 0 everywhere
                let pod_requests = self.scorer.pod_requests(pod);
                if is_best_effort(&pod_requests) {
                    return (0, Status::success());
                }
                self.scorer.score(node, &pod_requests)
            }
        }
    }
}

/// `(1 - std) * MAX_NODE_SCORE`, truncated, over the fractions requested/allocatable
/// (capped at 1) of the resources the node has. Two fractions use `|f1 - f2| / 2`,
/// more the population standard deviation, fewer a deviation of 0.
pub fn balanced_resource_score(requested: &[i64], allocatable: &[i64]) -> i64 {
    let fractions: Vec<f64> = requested
        .iter()
        .zip(allocatable)
        .filter(|(_, a)| **a != 0)
        .map(|(r, a)| (*r as f64 / *a as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            let sum: f64 = fractions.iter().map(|f| (f - mean) * (f - mean)).sum();
            (sum / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::super::testing::{node, node_info, plugin_scores, pod};
    use super::*;
    use crate::framework::Code;
    use serde_json::json;

    fn plugin(args: serde_json::Value) -> Arc<dyn Plugin> {
        new(Some(&args), &Handle::default()).unwrap()
    }

    fn scores(
        args: serde_json::Value,
        incoming: PodInfo,
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
        existing: Vec<PodInfo>,
    ) -> Vec<i64> {
        plugin_scores(plugin(args).as_ref(), incoming, nodes, existing)
            .into_iter()
            .map(|(score, status)| {
                assert!(status.is_success(), "{status:?}");
                score
            })
            .collect()
    }

    fn cpu_and_memory(name: &str, node: Option<&str>) -> PodInfo {
        pod(
            name,
            node,
            &[
                json!({"cpu": "1000m", "memory": "2000"}),
                json!({"cpu": "2000m", "memory": "3000"}),
            ],
        )
    }

    fn cpu_only(name: &str, node: Option<&str>) -> PodInfo {
        pod(
            name,
            node,
            &[
                json!({"cpu": "1000m", "memory": "0"}),
                json!({"cpu": "2000m", "memory": "0"}),
            ],
        )
    }

    fn machine(name: &str, millicpu: i64, memory: i64) -> k8s_openapi::api::core::v1::Node {
        node(
            name,
            json!({"cpu": format!("{millicpu}m"), "memory": memory.to_string()}),
        )
    }

    #[test]
    fn best_effort_pods_are_skipped() {
        let p = plugin(json!({}));
        let infos = vec![Arc::new(node_info(
            machine("machine1", 4000, 10000),
            vec![],
        ))];
        let mut state = CycleState::default();
        // no containers, and containers without requests: both best effort
        for incoming in [pod("p", None, &[]), pod("p", None, &[json!({})])] {
            let status = p
                .as_pre_score()
                .unwrap()
                .pre_score(&mut state, &incoming, &infos);
            assert_eq!(status.code, Code::Skip);
            // Score without PreScore state gives 0
            let (score, status) =
                p.as_score()
                    .unwrap()
                    .score(&CycleState::default(), &incoming, &infos[0]);
            assert_eq!((score, status.code), (0, Code::Success));
        }
        // requesting only a resource that is not balanced is best effort too
        let storage = pod("p", None, &[json!({"ephemeral-storage": "1Gi"})]);
        assert!(
            p.as_pre_score()
                .unwrap()
                .pre_score(&mut state, &storage, &infos)
                .is_skip()
        );
    }

    #[test]
    fn nothing_scheduled_resources_requested_differently_sized_machines() {
        // machine1: cpu 3000/4000 = .75, memory 5000/10000 = .5 → (1 - .125) * 100 = 87
        // machine2: .5 and .5 → 100
        let nodes = vec![
            machine("machine1", 4000, 10000),
            machine("machine2", 6000, 10000),
        ];
        assert_eq!(
            scores(json!({}), cpu_and_memory("p", None), nodes, vec![]),
            [87, 100]
        );
    }

    #[test]
    fn resources_requested_pods_scheduled_with_resources() {
        // machine1: cpu 6000/10000 = .6, memory 5000/20000 = .25 → 82
        // machine2: cpu .6, memory 10000/20000 = .5 → 95
        let nodes = vec![
            machine("machine1", 10000, 20000),
            machine("machine2", 10000, 20000),
        ];
        let existing = vec![
            cpu_only("a", Some("machine1")),
            cpu_and_memory("b", Some("machine2")),
        ];
        assert_eq!(
            scores(json!({}), cpu_and_memory("p", None), nodes, existing),
            [82, 95]
        );
    }

    #[test]
    fn resources_requested_pods_scheduled_with_resources_differently_sized_machines() {
        // machine2: cpu .6, memory 10000/50000 = .2 → 80
        let nodes = vec![
            machine("machine1", 10000, 20000),
            machine("machine2", 10000, 50000),
        ];
        let existing = vec![
            cpu_only("a", Some("machine1")),
            cpu_and_memory("b", Some("machine2")),
        ];
        assert_eq!(
            scores(json!({}), cpu_and_memory("p", None), nodes, existing),
            [82, 80]
        );
    }

    #[test]
    fn requested_resources_exceed_node_capacity() {
        // cpu 6000/4000 is capped at 1: machine1 memory 0 → 50; machine2 memory .5 → 75
        let nodes = vec![
            machine("machine1", 4000, 10000),
            machine("machine2", 4000, 10000),
        ];
        let existing = vec![
            cpu_only("a", Some("machine1")),
            cpu_and_memory("b", Some("machine2")),
        ];
        assert_eq!(
            scores(json!({}), cpu_only("p", None), nodes, existing),
            [50, 75]
        );
    }

    #[test]
    fn pods_without_requests_do_not_count() {
        // unlike Fit's scoring, no 100m / 200Mi defaults: machine1 stays at .75 / .5
        let nodes = vec![machine("machine1", 4000, 10000)];
        let existing = vec![pod("a", Some("machine1"), &[json!({})])];
        assert_eq!(
            scores(json!({}), cpu_and_memory("p", None), nodes, existing),
            [87]
        );
    }

    #[test]
    fn zero_node_resources_leave_nothing_to_unbalance() {
        let nodes = vec![node("machine1", json!({})), node("machine2", json!({}))];
        assert_eq!(
            scores(json!({}), cpu_and_memory("p", None), nodes, vec![]),
            [100, 100]
        );
    }

    #[test]
    fn a_scalar_resource_is_balanced_when_configured_and_requested() {
        let args = json!({"resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}, {"name": "nvidia.com/gpu", "weight": 1}]});
        let nodes = || {
            vec![
                node(
                    "machine1",
                    json!({"cpu": "10000m", "memory": "20000", "nvidia.com/gpu": "4"}),
                ),
                node(
                    "machine2",
                    json!({"cpu": "10000m", "memory": "20000", "nvidia.com/gpu": "4"}),
                ),
            ]
        };
        let incoming = pod(
            "p",
            None,
            &[json!({"cpu": "3000m", "memory": "5000", "nvidia.com/gpu": "1"})],
        );
        // machine1: .3, .25, .25 → population std .02357 → 97
        // machine2 (cpu 3000m, memory 5000 and 2 gpus already there): .6, .5, .75 → 89
        let existing = vec![pod(
            "a",
            Some("machine2"),
            &[json!({"cpu": "3000m", "memory": "5000", "nvidia.com/gpu": "2"})],
        )];
        assert_eq!(scores(args.clone(), incoming, nodes(), existing), [97, 89]);
        // not requested: the gpu is left out, only cpu and memory count
        assert_eq!(
            scores(args, cpu_and_memory("p", None), nodes(), vec![]),
            [97, 97]
        );
    }

    #[test]
    fn the_score_function_itself() {
        assert_eq!(balanced_resource_score(&[], &[]), 100);
        assert_eq!(balanced_resource_score(&[5], &[10]), 100);
        assert_eq!(balanced_resource_score(&[0, 10], &[10, 10]), 50);
        assert_eq!(balanced_resource_score(&[0, 10], &[0, 10]), 100);
        assert_eq!(balanced_resource_score(&[0, 5, 10], &[10, 10, 10]), 59);
    }

    #[test]
    fn arguments_are_defaulted_and_validated() {
        assert!(new(None, &Handle::default()).is_ok());
        // weight 0 means 1
        assert!(new(Some(&json!({"resources": [{"name": "cpu"}, {"name": "example.com/foo", "weight": 0}]})), &Handle::default()).is_ok());
        let err = new(
            Some(
                &json!({"resources": [{"name": "cpu", "weight": 1}, {"name": "cpu", "weight": 2}]}),
            ),
            &Handle::default(),
        )
        .err()
        .unwrap();
        assert_eq!(
            err,
            r#"[resources[1].name: Duplicate value: "cpu", resources[1].weight: Invalid value: 2: must be 1]"#
        );
    }
}
