//! The resource-allocation scorer that NodeResourcesFit's scoring strategies and
//! NodeResourcesBalancedAllocation share (upstream's `resource_allocation.go`): per
//! configured resource, the node's allocatable amount and what would be requested with
//! the pod on it, handed to a strategy that turns the two lists into a 0..=100 score.

use std::fmt;

use apimachinery::errors::{FieldError, FieldPath};
use serde::{Deserialize, Serialize};

use crate::framework::types::is_scalar_resource_name;
use crate::framework::{NodeInfo, PodInfo, Status};

/// A resource and its weight in a score (upstream's `config.ResourceSpec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ResourceSpec {
    /// The resource name, e.g. `cpu` or `example.com/gpu`.
    pub name: String,
    /// Its weight; 0 (unset) is defaulted to 1.
    pub weight: i64,
}

impl ResourceSpec {
    /// A resource with a weight.
    pub fn new(name: &str, weight: i64) -> ResourceSpec {
        ResourceSpec {
            name: name.to_owned(),
            weight,
        }
    }
}

/// The resources scored when none are configured: cpu and memory, weight 1 each
/// (upstream's `defaultResourceSpec`).
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec::new("cpu", 1), ResourceSpec::new("memory", 1)]
}

/// Upstream's v1 defaulting of a resource list: none means cpu and memory, and a
/// weight left at 0 means 1.
pub fn default_resource_weights(resources: &mut Vec<ResourceSpec>) {
    if resources.is_empty() {
        *resources = default_resources();
    }
    for r in resources.iter_mut() {
        if r.weight == 0 {
            r.weight = 1;
        }
    }
}

/// Upstream's `validateResources`: every weight in (0, 100].
pub fn validate_resources(resources: &[ResourceSpec], path: &FieldPath) -> Vec<FieldError> {
    resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.weight <= 0 || r.weight > 100)
        .map(|(i, r)| {
            FieldError::invalid(
                path.index(i).child("weight"),
                r.weight,
                format!("resource weight of {} not in valid range (0, 100]", r.name),
            )
        })
        .collect()
}

/// A strategy: the requested and allocatable amounts (same order as the configured
/// resources; allocatable 0 marks a resource left out) to a score.
pub type ScoreFn = Box<dyn Fn(&[i64], &[i64]) -> i64 + Send + Sync>;

/// A strategy that scores each resource alone and averages by weight, with integer
/// division as upstream (LeastAllocated, MostAllocated); resources the node has none of
/// are left out.
pub fn weighted_average_scorer(
    resources: &[ResourceSpec],
    per_resource: fn(i64, i64) -> i64,
) -> ScoreFn {
    let weights: Vec<i64> = resources.iter().map(|r| r.weight).collect();
    Box::new(move |requested, allocatable| {
        let (mut node_score, mut weight_sum) = (0i64, 0i64);
        for (i, weight) in weights.iter().enumerate() {
            if allocatable[i] == 0 {
                continue;
            }
            node_score += per_resource(requested[i], allocatable[i]) * weight;
            weight_sum += weight;
        }
        if weight_sum == 0 {
            0
        } else {
            node_score / weight_sum
        }
    })
}

/// Scores a node by how its resources would be allocated with the pod on it.
pub struct ResourceAllocationScorer {
    /// The strategy's name, for logs.
    pub name: &'static str,
    /// Whether cpu and memory count actual requests (BalancedAllocation) rather than
    /// non-zero requests, where containers without a request count 100m / 200Mi (Fit).
    pub use_requested: bool,
    /// The resources scored, with their weights.
    pub resources: Vec<ResourceSpec>,
    scorer: ScoreFn,
}

impl fmt::Debug for ResourceAllocationScorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceAllocationScorer")
            .field("name", &self.name)
            .field("use_requested", &self.use_requested)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl ResourceAllocationScorer {
    /// A scorer over `resources` with the strategy `scorer`.
    pub fn new(
        name: &'static str,
        use_requested: bool,
        resources: Vec<ResourceSpec>,
        scorer: ScoreFn,
    ) -> ResourceAllocationScorer {
        ResourceAllocationScorer {
            name,
            use_requested,
            resources,
            scorer,
        }
    }

    /// The pod's request of each configured resource (upstream's
    /// `calculatePodResourceRequestList`): non-zero requests unless `use_requested`.
    pub fn pod_requests(&self, pod: &PodInfo) -> Vec<i64> {
        let requests = if self.use_requested {
            &pod.requests
        } else {
            &pod.non_zero_requests
        };
        self.resources
            .iter()
            .map(|r| requests.get(&r.name))
            .collect()
    }

    /// The node's score with the pod's per-resource requests added.
    pub fn score(&self, node: &NodeInfo, pod_requests: &[i64]) -> (i64, Status) {
        if self.resources.is_empty() {
            return (0, Status::error("resources not found"));
        }
        let mut requested = vec![0; self.resources.len()];
        let mut allocatable = vec![0; self.resources.len()];
        for (i, r) in self.resources.iter().enumerate() {
            let pod_request = pod_requests.get(i).copied().unwrap_or(0);
            let (alloc, req) = self.allocatable_and_requested(node, &r.name, pod_request);
            // a resource the node does not have stays at 0/0 and strategies skip it
            if alloc != 0 {
                allocatable[i] = alloc;
                requested[i] = req;
            }
        }
        let score = (self.scorer)(&requested, &allocatable);
        tracing::trace!(
            scorer = self.name,
            node = node.name(),
            ?allocatable,
            ?requested,
            score,
            "resource allocation score"
        );
        (score, Status::success())
    }

    /// Upstream's `calculateResourceAllocatableRequest`: the node's allocatable amount
    /// of `name` and what would be requested with the pod. Extended resources the pod
    /// does not ask for, and resources the node does not list, give (0, 0) so they are
    /// left out of the score.
    fn allocatable_and_requested(
        &self,
        node: &NodeInfo,
        name: &str,
        pod_request: i64,
    ) -> (i64, i64) {
        let requested = if self.use_requested {
            &node.requested
        } else {
            &node.non_zero_requested
        };
        if pod_request == 0 && is_scalar_resource_name(name) {
            return (0, 0);
        }
        let alloc = &node.allocatable;
        match name {
            "cpu" => (alloc.milli_cpu, requested.milli_cpu + pod_request),
            "memory" => (alloc.memory, requested.memory + pod_request),
            // ephemeral storage and scalars have no non-zero defaults: actual requests
            "ephemeral-storage" => (
                alloc.ephemeral_storage,
                node.requested.ephemeral_storage + pod_request,
            ),
            _ => match alloc.scalar.get(name) {
                Some(a) => (
                    *a,
                    node.requested.scalar.get(name).copied().unwrap_or(0) + pod_request,
                ),
                None => (0, 0),
            },
        }
    }
}

/// Whether the pod requests none of the scored resources (upstream's
/// `isBestEffortPod` over the request list).
pub fn is_best_effort(pod_requests: &[i64]) -> bool {
    pod_requests.iter().all(|r| *r == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::node_resources::testing::{node, node_info, pod};
    use serde_json::json;

    fn sum_scorer(use_requested: bool, resources: Vec<ResourceSpec>) -> ResourceAllocationScorer {
        // a strategy that reports requested/allocatable so the inputs can be checked
        ResourceAllocationScorer::new(
            "test",
            use_requested,
            resources,
            Box::new(|req, alloc| {
                req.iter().sum::<i64>() * 1000 + alloc.iter().filter(|a| **a != 0).count() as i64
            }),
        )
    }

    #[test]
    fn defaults_fill_an_empty_list_and_zero_weights() {
        let mut none = Vec::new();
        default_resource_weights(&mut none);
        assert_eq!(none, default_resources());
        let mut some = vec![
            ResourceSpec::new("example.com/gpu", 0),
            ResourceSpec::new("cpu", 3),
        ];
        default_resource_weights(&mut some);
        assert_eq!(
            some,
            vec![
                ResourceSpec::new("example.com/gpu", 1),
                ResourceSpec::new("cpu", 3)
            ]
        );
    }

    #[test]
    fn weights_outside_1_to_100_are_invalid() {
        let errs = validate_resources(
            &[
                ResourceSpec::new("memory", -1),
                ResourceSpec::new("cpu", 1),
                ResourceSpec::new("x/y", 101),
            ],
            &FieldPath::default().child("resources"),
        );
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "resources[0].weight: Invalid value: -1: resource weight of memory not in valid range (0, 100]",
                "resources[2].weight: Invalid value: 101: resource weight of x/y not in valid range (0, 100]",
            ]
        );
    }

    #[test]
    fn fit_counts_non_zero_requests_for_cpu_and_memory_only() {
        let n = node(
            "n",
            json!({"cpu": "4", "memory": "8Gi", "ephemeral-storage": "10Gi"}),
        );
        // an existing pod without requests counts 100m / 200Mi for cpu and memory
        let info = node_info(n, vec![pod("a", Some("n"), &[json!({})])]);
        let incoming = pod("p", None, &[json!({"ephemeral-storage": "1Gi"})]);
        let resources = vec![
            ResourceSpec::new("cpu", 1),
            ResourceSpec::new("memory", 1),
            ResourceSpec::new("ephemeral-storage", 1),
        ];
        let s = sum_scorer(false, resources.clone());
        let reqs = s.pod_requests(&incoming);
        assert_eq!(reqs, vec![100, 200 * 1024 * 1024, 1 << 30]);
        let (score, status) = s.score(&info, &reqs);
        assert!(status.is_success());
        assert_eq!(score, (200 + 400 * 1024 * 1024 + (1 << 30)) * 1000 + 3);

        // BalancedAllocation counts actual requests: nothing for cpu and memory
        let b = sum_scorer(true, resources);
        let reqs = b.pod_requests(&incoming);
        assert_eq!(reqs, vec![0, 0, 1 << 30]);
        assert_eq!(b.score(&info, &reqs).0, (1 << 30) * 1000 + 3);
    }

    #[test]
    fn extended_resources_the_pod_does_not_request_or_the_node_lacks_are_left_out() {
        let n = node(
            "n",
            json!({"cpu": "4", "memory": "8Gi", "example.com/foo": "4"}),
        );
        let info = node_info(n, vec![]);
        let s = sum_scorer(
            true,
            vec![
                ResourceSpec::new("example.com/foo", 1),
                ResourceSpec::new("example.com/bar", 1),
            ],
        );
        assert_eq!(s.score(&info, &[0, 0]).0, 0);
        // requested but absent from the node: still left out
        assert_eq!(s.score(&info, &[2, 3]).0, 2000 + 1);
    }

    #[test]
    fn no_resources_is_an_error() {
        let info = node_info(node("n", json!({"cpu": "1"})), vec![]);
        let (_, status) = sum_scorer(false, vec![]).score(&info, &[]);
        assert_eq!(status, Status::error("resources not found"));
    }
}
