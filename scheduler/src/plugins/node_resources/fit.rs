//! NodeResourcesFit (upstream's `noderesources/fit.go`): filters out nodes whose
//! allocatable resources cannot take the pod next to the pods already there, and scores
//! the rest with a configurable strategy (LeastAllocated, MostAllocated or
//! RequestedToCapacityRatio) over weighted resources.

use std::collections::HashSet;
use std::sync::Arc;

use apimachinery::errors::{FieldError, FieldPath, aggregate_message};
use apimachinery::labels::is_qualified_name;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};

use super::resource_allocation::{
    ResourceAllocationScorer, ResourceSpec, default_resource_weights, default_resources,
    validate_resources,
};
use super::{least_allocated, most_allocated, requested_to_capacity_ratio};
use crate::framework::events::{
    ActionType, ClusterEventWithHint, EventObject, EventResource, QueueingHint,
};
use crate::framework::registry::{Handle, decode_args};
use crate::framework::types::is_scalar_resource_name;
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreFilterResult,
    PreScorePlugin, Resource, ScorePlugin, Status,
};

pub use super::requested_to_capacity_ratio::{
    RequestedToCapacityRatioParam, UtilizationShapePoint,
};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesFit";

/// Where PreFilter leaves the pod's requests for Filter.
const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeResourcesFit";
/// Where PreScore leaves the pod's per-resource requests for Score.
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesFit";

/// Favours nodes with more free resources (the default).
pub const LEAST_ALLOCATED: &str = "LeastAllocated";
/// Favours nodes with more resources in use.
pub const MOST_ALLOCATED: &str = "MostAllocated";
/// Scores through a user-given utilization → score shape.
pub const REQUESTED_TO_CAPACITY_RATIO: &str = "RequestedToCapacityRatio";
const SUPPORTED_STRATEGIES: [&str; 3] =
    [LEAST_ALLOCATED, MOST_ALLOCATED, REQUESTED_TO_CAPACITY_RATIO];

/// How nodes are scored (upstream's `ScoringStrategy`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ScoringStrategy {
    /// `LeastAllocated`, `MostAllocated` or `RequestedToCapacityRatio`. Kept as text so
    /// an unknown type is reported by validation with upstream's message.
    #[serde(rename = "type")]
    pub strategy_type: String,
    /// The resources scored and their weights; cpu and memory when empty.
    pub resources: Vec<ResourceSpec>,
    /// The shape, for `RequestedToCapacityRatio`.
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

/// The plugin's arguments (upstream's `NodeResourcesFitArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeResourcesFitArgs {
    /// Extended resources Filter does not check.
    pub ignored_resources: Vec<String>,
    /// Extended-resource groups (the part before `/`) Filter does not check.
    pub ignored_resource_groups: Vec<String>,
    /// The scoring strategy; LeastAllocated over cpu and memory when unset.
    pub scoring_strategy: Option<ScoringStrategy>,
}

impl NodeResourcesFitArgs {
    /// Upstream's v1 defaulting: LeastAllocated over cpu and memory when no strategy is
    /// given; the default resources when the strategy lists none; weight 1 for weight 0.
    pub fn set_defaults(&mut self) {
        let strategy = self
            .scoring_strategy
            .get_or_insert_with(|| ScoringStrategy {
                strategy_type: LEAST_ALLOCATED.to_owned(),
                resources: default_resources(),
                requested_to_capacity_ratio: None,
            });
        default_resource_weights(&mut strategy.resources);
    }

    /// Upstream's `ValidateNodeResourcesFitArgs`, with its messages.
    pub fn validate(&self) -> Result<(), String> {
        let root = FieldPath::default();
        let mut errs: Vec<FieldError> = Vec::new();
        let res_path = root.child("ignoredResources");
        for (i, res) in self.ignored_resources.iter().enumerate() {
            errs.extend(label_name_errors(res, &res_path.index(i)));
        }
        let group_path = root.child("ignoredResourceGroups");
        for (i, group) in self.ignored_resource_groups.iter().enumerate() {
            let path = group_path.index(i);
            if group.contains('/') {
                errs.push(FieldError::invalid(
                    &path,
                    group,
                    "resource group name can't contain '/'",
                ));
            }
            errs.extend(label_name_errors(group, &path));
        }
        if let Some(strategy) = &self.scoring_strategy {
            let strategy_path = root.child("scoringStrategy");
            if !SUPPORTED_STRATEGIES.contains(&strategy.strategy_type.as_str()) {
                errs.push(FieldError::not_supported(
                    strategy_path.child("type"),
                    &strategy.strategy_type,
                    &SUPPORTED_STRATEGIES,
                ));
            }
            errs.extend(validate_resources(
                &strategy.resources,
                &strategy_path.child("resources"),
            ));
            if let Some(ratio) = &strategy.requested_to_capacity_ratio {
                errs.extend(validate_shape(&ratio.shape, &strategy_path.child("shape")));
            } else if strategy.strategy_type == REQUESTED_TO_CAPACITY_RATIO {
                // upstream dereferences the missing parameter and panics; a configuration
                // error is the useful equivalent
                errs.push(FieldError::required(
                    strategy_path.child("requestedToCapacityRatio"),
                    "required for the RequestedToCapacityRatio strategy",
                ));
            }
        }
        match aggregate_message(&errs) {
            None => Ok(()),
            Some(msg) => Err(msg),
        }
    }
}

/// Upstream's `ValidateLabelName`: a qualified name, one error per reason.
fn label_name_errors(name: &str, path: &FieldPath) -> Vec<FieldError> {
    is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect()
}

/// Upstream's `validateFunctionShape`: at least one point, utilization strictly
/// increasing within 0..=100, scores within 0..=10.
fn validate_shape(shape: &[UtilizationShapePoint], path: &FieldPath) -> Vec<FieldError> {
    if shape.is_empty() {
        return vec![FieldError::required(
            path,
            "at least one point must be specified",
        )];
    }
    let mut errs = Vec::new();
    if let Some(i) = (1..shape.len()).find(|&i| shape[i - 1].utilization >= shape[i].utilization) {
        errs.push(FieldError::invalid(
            path.index(i).child("utilization"),
            shape[i].utilization,
            "values must be sorted in increasing order",
        ));
    }
    let max_score = requested_to_capacity_ratio::MAX_CUSTOM_PRIORITY_SCORE;
    for (i, point) in shape.iter().enumerate() {
        if !(0..=100).contains(&point.utilization) {
            errs.push(FieldError::invalid(
                path.index(i).child("utilization"),
                point.utilization,
                "not in valid range [0, 100]",
            ));
        }
        if !(0..=max_score).contains(&i64::from(point.score)) {
            errs.push(FieldError::invalid(
                path.index(i).child("score"),
                point.score,
                format!("not in valid range [0, {max_score}]"),
            ));
        }
    }
    errs
}

/// The plugin.
#[derive(Debug)]
pub struct Fit {
    ignored_resources: HashSet<String>,
    ignored_resource_groups: HashSet<String>,
    scorer: ResourceAllocationScorer,
}

/// PreFilter's state: the pod's requests.
#[derive(Clone, Debug)]
struct PreFilterState(Resource);

/// PreScore's state: the pod's request of each scored resource.
#[derive(Clone, Debug)]
struct PreScoreState {
    pod_requests: Vec<i64>,
}

/// The constructor: decodes, defaults and validates the arguments.
pub fn new(args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let mut args: NodeResourcesFitArgs = decode_args(NAME, args)?;
    args.set_defaults();
    Ok(Arc::new(Fit::from_args(args)?))
}

impl Fit {
    /// The plugin from defaulted arguments, validating them.
    pub fn from_args(args: NodeResourcesFitArgs) -> Result<Fit, String> {
        args.validate()?;
        let Some(strategy) = args.scoring_strategy else {
            return Err("scoring strategy not specified".to_owned());
        };
        let resources = strategy.resources;
        let scorer = match strategy.strategy_type.as_str() {
            LEAST_ALLOCATED => ResourceAllocationScorer::new(
                LEAST_ALLOCATED,
                false,
                resources.clone(),
                least_allocated::scorer(&resources),
            ),
            MOST_ALLOCATED => ResourceAllocationScorer::new(
                MOST_ALLOCATED,
                false,
                resources.clone(),
                most_allocated::scorer(&resources),
            ),
            REQUESTED_TO_CAPACITY_RATIO => {
                let shape = strategy
                    .requested_to_capacity_ratio
                    .map(|r| r.shape)
                    .unwrap_or_default();
                ResourceAllocationScorer::new(
                    REQUESTED_TO_CAPACITY_RATIO,
                    false,
                    resources.clone(),
                    requested_to_capacity_ratio::scorer(&resources, &shape),
                )
            }
            other => return Err(format!("scoring strategy {other} is not supported")),
        };
        Ok(Fit {
            ignored_resources: args.ignored_resources.into_iter().collect(),
            ignored_resource_groups: args.ignored_resource_groups.into_iter().collect(),
            scorer,
        })
    }
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // In-place pod resize is on in 1.33, so a pod scaling down may free room; with
        // queueing hints on, node updates other than allocatable cannot help.
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::DELETE.or(ActionType::UPDATE_POD_SCALE_DOWN),
                is_schedulable_after_pod_event,
            ),
            ClusterEventWithHint::with_hint(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_ALLOCATABLE),
                is_schedulable_after_node_change,
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

impl PreFilterPlugin for Fit {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        state.write(PRE_FILTER_STATE_KEY, PreFilterState(pod.requests.clone()));
        (None, Status::success())
    }
}

impl FilterPlugin for Fit {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(PreFilterState(request)) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY)
        else {
            return Status::error(format!(
                "error reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let insufficient = fits_request(
            request,
            node,
            &self.ignored_resources,
            &self.ignored_resource_groups,
        );
        if insufficient.is_empty() {
            return Status::success();
        }
        // every reason is kept; in 1.33 all are Unschedulable, as preemption may help
        Status {
            reasons: insufficient.into_iter().map(|r| r.reason).collect(),
            ..Status::unschedulable("")
        }
    }
}

impl PreScorePlugin for Fit {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>]) -> Status {
        let pod_requests = self.scorer.pod_requests(pod);
        state.write(PRE_SCORE_STATE_KEY, PreScoreState { pod_requests });
        Status::success()
    }
}

impl ScorePlugin for Fit {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => self.scorer.score(node, &s.pod_requests),
            // Score without PreScore (as upstream allows) computes the requests itself
            None => self.scorer.score(node, &self.scorer.pod_requests(pod)),
        }
    }
}

/// One resource the node lacks for the pod (upstream's `InsufficientResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsufficientResource {
    /// The resource, e.g. `cpu` or `pods`.
    pub resource_name: String,
    /// The message, e.g. `Insufficient cpu`.
    pub reason: String,
    /// What the pod asks for.
    pub requested: i64,
    /// What the node's pods already request.
    pub used: i64,
    /// The node's allocatable amount.
    pub capacity: i64,
}

/// The resources `node` lacks for `pod`, ignoring none (upstream's `Fits`, used by
/// callers outside the plugin such as admission-style checks and queueing hints).
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Vec<InsufficientResource> {
    fits_request(&pod.requests, node, &HashSet::new(), &HashSet::new())
}

/// Whether a resource name is an extended resource (upstream's
/// `IsExtendedResourceName`): namespaced, not in `kubernetes.io/`, not a quota
/// `requests.` name.
fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Upstream's `fitsRequest`: the pod count first, then cpu, memory, ephemeral
/// storage and each scalar resource the pod requests, in that order.
fn fits_request(
    request: &Resource,
    node: &NodeInfo,
    ignored_resources: &HashSet<String>,
    ignored_resource_groups: &HashSet<String>,
) -> Vec<InsufficientResource> {
    let mut out = Vec::new();
    let allocatable = &node.allocatable;
    let requested = &node.requested;
    let pods = node.pods.len() as i64;
    if pods + 1 > allocatable.allowed_pod_number {
        out.push(InsufficientResource {
            resource_name: "pods".to_owned(),
            reason: "Too many pods".to_owned(),
            requested: 1,
            used: pods,
            capacity: allocatable.allowed_pod_number,
        });
    }
    if request.milli_cpu == 0
        && request.memory == 0
        && request.ephemeral_storage == 0
        && request.scalar.is_empty()
    {
        return out;
    }
    let mut check = |name: &str, want: i64, used: i64, capacity: i64| {
        if want > 0 && want > capacity - used {
            out.push(InsufficientResource {
                resource_name: name.to_owned(),
                reason: format!("Insufficient {name}"),
                requested: want,
                used,
                capacity,
            });
        }
    };
    check(
        "cpu",
        request.milli_cpu,
        requested.milli_cpu,
        allocatable.milli_cpu,
    );
    check(
        "memory",
        request.memory,
        requested.memory,
        allocatable.memory,
    );
    check(
        "ephemeral-storage",
        request.ephemeral_storage,
        requested.ephemeral_storage,
        allocatable.ephemeral_storage,
    );
    for (name, want) in &request.scalar {
        if *want == 0 {
            continue;
        }
        if is_extended_resource_name(name) {
            let group = name.split('/').next().unwrap_or_default();
            if ignored_resources.contains(name) || ignored_resource_groups.contains(group) {
                continue;
            }
        }
        // a scalar the node does not list has allocatable 0
        let used = requested.scalar.get(name).copied().unwrap_or(0);
        let capacity = allocatable.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, used, capacity);
    }
    out
}

/// The queueing hint for pod events: a bound pod's deletion may free room; an
/// update helps only when it is the pod itself scaling down or a bound pod scaling
/// down a resource this pod requests.
fn is_schedulable_after_pod_event(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let as_pod = |o: Option<&EventObject>| match o {
        Some(EventObject::Pod(p)) => Some(p.clone()),
        _ => None,
    };
    match (as_pod(old), as_pod(new)) {
        (Some(deleted), None) => {
            let bound = deleted
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if bound {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        (Some(original), Some(modified)) => {
            if is_schedulable_after_pod_scale_down(pod, &original, &modified) {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        // objects of another kind: requeue rather than risk a lost wake-up
        _ => QueueingHint::Queue,
    }
}

/// Upstream's `isSchedulableAfterPodScaleDown`.
fn is_schedulable_after_pod_scale_down(target: &PodInfo, original: &Pod, modified: &Pod) -> bool {
    if modified.metadata.uid.as_deref() == Some(target.uid()) {
        return true;
    }
    let bound = modified
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !bound {
        return false;
    }
    let before = PodInfo::requests_of(original);
    let after = PodInfo::requests_of(modified);
    let want = &target.requests;
    (want.milli_cpu != 0 && before.milli_cpu > after.milli_cpu)
        || (want.memory != 0 && before.memory > after.memory)
        || (want.ephemeral_storage != 0 && before.ephemeral_storage > after.ephemeral_storage)
        || want.scalar.iter().any(|(name, v)| {
            *v != 0
                && is_scalar_resource_name(name)
                && before.scalar.get(name).copied().unwrap_or(0)
                    > after.scalar.get(name).copied().unwrap_or(0)
        })
}

/// The queueing hint for node events: a node that could not take the pod even empty
/// cannot help; a new node that could, can; an updated one only if allocatable of
/// something the pod requests (or the pod count) went up.
fn is_schedulable_after_node_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let as_node = |o: Option<&EventObject>| match o {
        Some(EventObject::Node(n)) => Some(n.clone()),
        _ => None,
    };
    let Some(modified) = as_node(new) else {
        return QueueingHint::Skip;
    };
    if !is_fit(pod, &modified) {
        return QueueingHint::Skip;
    }
    match as_node(old) {
        None => QueueingHint::Queue,
        Some(original) if have_any_requested_resources_increased(pod, &original, &modified) => {
            QueueingHint::Queue
        }
        Some(_) => QueueingHint::Skip,
    }
}

/// Whether the pod fits the node with nothing else on it.
fn is_fit(pod: &PodInfo, node: &Node) -> bool {
    fits(pod, &NodeInfo::new(node.clone())).is_empty()
}

fn allocatable_of(node: &Node) -> Resource {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(Resource::from_list)
        .unwrap_or_default()
}

/// Upstream's `haveAnyRequestedResourcesIncreased`.
fn have_any_requested_resources_increased(pod: &PodInfo, original: &Node, modified: &Node) -> bool {
    let (before, after) = (allocatable_of(original), allocatable_of(modified));
    if after.allowed_pod_number > before.allowed_pod_number {
        return true;
    }
    let want = &pod.requests;
    if want.milli_cpu == 0
        && want.memory == 0
        && want.ephemeral_storage == 0
        && want.scalar.is_empty()
    {
        return false;
    }
    (want.milli_cpu > 0 && after.milli_cpu > before.milli_cpu)
        || (want.memory > 0 && after.memory > before.memory)
        || (want.ephemeral_storage > 0 && after.ephemeral_storage > before.ephemeral_storage)
        || want.scalar.iter().any(|(name, v)| {
            *v != 0
                && after.scalar.get(name).copied().unwrap_or(0)
                    > before.scalar.get(name).copied().unwrap_or(0)
        })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fit_scores, node, node_info, pod, pod_with};
    use super::*;
    use crate::framework::Code;
    use serde_json::json;

    const EXT_A: &str = "example.com/aaa";
    const EXT_B: &str = "example.com/bbb";
    const K8S_IO_A: &str = "kubernetes.io/something";
    const K8S_IO_B: &str = "subdomain.kubernetes.io/something";
    const HUGE_PAGE_A: &str = "hugepages-2Mi";

    /// Upstream's makeAllocatableResources(10, 20, 32, 5, 20, 5).
    fn test_node(pods: &str) -> Node {
        node(
            "n",
            json!({
                "cpu": "10m", "memory": "20", "pods": pods, EXT_A: "5",
                "ephemeral-storage": "20", HUGE_PAGE_A: "5",
            }),
        )
    }

    /// One container requesting `millicpu` and `memory` plus `extra` resources.
    fn req(millicpu: i64, memory: i64, extra: &[(&str, i64)]) -> serde_json::Value {
        let mut r = json!({"cpu": format!("{millicpu}m"), "memory": memory.to_string()});
        for (k, v) in extra {
            r[*k] = json!(v.to_string());
        }
        r
    }

    fn plugin(args: serde_json::Value) -> Arc<dyn Plugin> {
        new(Some(&args), &Handle::default()).unwrap()
    }

    fn filter_with(p: &dyn Plugin, incoming: &PodInfo, info: &NodeInfo) -> Status {
        let mut state = CycleState::default();
        let (_, status) = p
            .as_pre_filter()
            .unwrap()
            .pre_filter(&mut state, incoming, &[]);
        assert!(status.is_success());
        p.as_filter().unwrap().filter(&state, incoming, info)
    }

    fn unschedulable(reasons: &[&str]) -> Status {
        Status {
            code: Code::Unschedulable,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            plugin: "",
        }
    }

    struct Case {
        name: &'static str,
        pod: PodInfo,
        existing: serde_json::Value,
        ignored: serde_json::Value,
        want: Status,
        want_insufficient: Vec<(&'static str, i64, i64, i64)>,
    }

    fn case(
        name: &'static str,
        pod: PodInfo,
        existing: serde_json::Value,
        want: &[&str],
        want_insufficient: Vec<(&'static str, i64, i64, i64)>,
    ) -> Case {
        Case {
            name,
            pod,
            existing,
            ignored: json!({}),
            want: if want.is_empty() {
                Status::success()
            } else {
                unschedulable(want)
            },
            want_insufficient,
        }
    }

    fn containers(reqs: &[serde_json::Value]) -> PodInfo {
        pod("p", None, reqs)
    }

    fn with_init(reqs: &[serde_json::Value], init: &[serde_json::Value]) -> PodInfo {
        pod_with("p", None, reqs, init, None)
    }

    #[test]
    fn enough_requests() {
        let cpu = "Insufficient cpu";
        let mem = "Insufficient memory";
        let cases = vec![
            case(
                "no resources requested always fits",
                pod("p", None, &[]),
                req(10, 20, &[]),
                &[],
                vec![],
            ),
            case(
                "too many resources fails",
                containers(&[req(1, 1, &[])]),
                req(10, 20, &[]),
                &[cpu, mem],
                vec![("cpu", 1, 10, 10), ("memory", 1, 20, 20)],
            ),
            case(
                "too many resources fails due to init container cpu",
                with_init(&[req(1, 1, &[])], &[req(3, 1, &[])]),
                req(8, 19, &[]),
                &[cpu],
                vec![("cpu", 3, 8, 10)],
            ),
            case(
                "too many resources fails due to highest init container cpu",
                with_init(&[req(1, 1, &[])], &[req(3, 1, &[]), req(2, 1, &[])]),
                req(8, 19, &[]),
                &[cpu],
                vec![("cpu", 3, 8, 10)],
            ),
            case(
                "too many resources fails due to init container memory",
                with_init(&[req(1, 1, &[])], &[req(1, 3, &[])]),
                req(9, 19, &[]),
                &[mem],
                vec![("memory", 3, 19, 20)],
            ),
            case(
                "init container fits because it's the max, not sum, of containers and init containers",
                with_init(&[req(1, 1, &[])], &[req(1, 1, &[]), req(1, 1, &[])]),
                req(9, 19, &[]),
                &[],
                vec![],
            ),
            case(
                "both resources fit",
                containers(&[req(1, 1, &[])]),
                req(5, 5, &[]),
                &[],
                vec![],
            ),
            case(
                "one resource memory fits",
                containers(&[req(2, 1, &[])]),
                req(9, 5, &[]),
                &[cpu],
                vec![("cpu", 2, 9, 10)],
            ),
            case(
                "one resource cpu fits",
                containers(&[req(1, 2, &[])]),
                req(5, 19, &[]),
                &[mem],
                vec![("memory", 2, 19, 20)],
            ),
            case(
                "equal edge case",
                containers(&[req(5, 1, &[])]),
                req(5, 19, &[]),
                &[],
                vec![],
            ),
            case(
                "equal edge case for init container",
                with_init(&[req(4, 1, &[])], &[req(5, 1, &[])]),
                req(5, 19, &[]),
                &[],
                vec![],
            ),
            case(
                "extended resource fits",
                containers(&[json!({EXT_A: "1"})]),
                json!({}),
                &[],
                vec![],
            ),
            case(
                "extended resource capacity enforced",
                containers(&[req(1, 1, &[(EXT_A, 10)])]),
                req(0, 0, &[(EXT_A, 0)]),
                &["Insufficient example.com/aaa"],
                vec![(EXT_A, 10, 0, 5)],
            ),
            case(
                "extended resource capacity enforced for init container",
                with_init(&[], &[req(1, 1, &[(EXT_A, 10)])]),
                req(0, 0, &[(EXT_A, 0)]),
                &["Insufficient example.com/aaa"],
                vec![(EXT_A, 10, 0, 5)],
            ),
            case(
                "extended resource allocatable enforced",
                containers(&[req(1, 1, &[(EXT_A, 1)])]),
                req(0, 0, &[(EXT_A, 5)]),
                &["Insufficient example.com/aaa"],
                vec![(EXT_A, 1, 5, 5)],
            ),
            case(
                "extended resource allocatable enforced for multiple containers",
                containers(&[req(1, 1, &[(EXT_A, 3)]), req(1, 1, &[(EXT_A, 3)])]),
                req(0, 0, &[(EXT_A, 2)]),
                &["Insufficient example.com/aaa"],
                vec![(EXT_A, 6, 2, 5)],
            ),
            case(
                "extended resource allocatable admits multiple init containers",
                with_init(&[], &[req(1, 1, &[(EXT_A, 3)]), req(1, 1, &[(EXT_A, 3)])]),
                req(0, 0, &[(EXT_A, 2)]),
                &[],
                vec![],
            ),
            case(
                "extended resource allocatable enforced for multiple init containers",
                with_init(&[], &[req(1, 1, &[(EXT_A, 6)]), req(1, 1, &[(EXT_A, 3)])]),
                req(0, 0, &[(EXT_A, 2)]),
                &["Insufficient example.com/aaa"],
                vec![(EXT_A, 6, 2, 5)],
            ),
            case(
                "extended resource allocatable enforced for unknown resource",
                containers(&[req(1, 1, &[(EXT_B, 1)])]),
                req(0, 0, &[]),
                &["Insufficient example.com/bbb"],
                vec![(EXT_B, 1, 0, 0)],
            ),
            case(
                "kubernetes.io resource capacity enforced",
                containers(&[req(1, 1, &[(K8S_IO_A, 10)])]),
                req(0, 0, &[]),
                &["Insufficient kubernetes.io/something"],
                vec![(K8S_IO_A, 10, 0, 0)],
            ),
            case(
                "kubernetes.io resource capacity enforced for init container",
                with_init(&[], &[req(1, 1, &[(K8S_IO_B, 10)])]),
                req(0, 0, &[]),
                &["Insufficient subdomain.kubernetes.io/something"],
                vec![(K8S_IO_B, 10, 0, 0)],
            ),
            case(
                "hugepages resource capacity enforced",
                containers(&[req(1, 1, &[(HUGE_PAGE_A, 10)])]),
                req(0, 0, &[(HUGE_PAGE_A, 0)]),
                &["Insufficient hugepages-2Mi"],
                vec![(HUGE_PAGE_A, 10, 0, 5)],
            ),
            case(
                "hugepages resource allocatable enforced for multiple containers",
                containers(&[
                    req(1, 1, &[(HUGE_PAGE_A, 3)]),
                    req(1, 1, &[(HUGE_PAGE_A, 3)]),
                ]),
                req(0, 0, &[(HUGE_PAGE_A, 2)]),
                &["Insufficient hugepages-2Mi"],
                vec![(HUGE_PAGE_A, 6, 2, 5)],
            ),
            Case {
                ignored: json!({"ignoredResources": [EXT_B]}),
                ..case(
                    "skip checking ignored extended resource",
                    containers(&[req(1, 1, &[(EXT_B, 1)])]),
                    req(0, 0, &[]),
                    &[],
                    vec![(EXT_B, 1, 0, 0)],
                )
            },
            case(
                "resources + pod overhead fits",
                pod_with(
                    "p",
                    None,
                    &[req(1, 1, &[])],
                    &[],
                    Some(json!({"cpu": "3m", "memory": "13"})),
                ),
                req(5, 5, &[]),
                &[],
                vec![],
            ),
            case(
                "requests + overhead does not fit for memory",
                pod_with(
                    "p",
                    None,
                    &[req(1, 1, &[])],
                    &[],
                    Some(json!({"cpu": "1m", "memory": "15"})),
                ),
                req(5, 5, &[]),
                &[mem],
                vec![("memory", 16, 5, 20)],
            ),
            Case {
                ignored: json!({"ignoredResourceGroups": ["example.com"]}),
                ..case(
                    "skip checking ignored extended resource via resource groups",
                    containers(&[req(1, 1, &[(EXT_B, 1)])]),
                    req(0, 0, &[]),
                    &[],
                    vec![(EXT_B, 1, 0, 0)],
                )
            },
            case(
                "extended resources requested at zero are not checked",
                containers(&[req(1, 1, &[(EXT_B, 0)])]),
                req(0, 0, &[]),
                &[],
                vec![],
            ),
            case(
                "every reason is kept, in upstream's order",
                containers(&[req(
                    20,
                    30,
                    &[("ephemeral-storage", 30), (EXT_A, 6), (HUGE_PAGE_A, 6)],
                )]),
                json!({}),
                &[
                    cpu,
                    mem,
                    "Insufficient ephemeral-storage",
                    "Insufficient example.com/aaa",
                    "Insufficient hugepages-2Mi",
                ],
                vec![
                    ("cpu", 20, 0, 10),
                    ("memory", 30, 0, 20),
                    ("ephemeral-storage", 30, 0, 20),
                    (EXT_A, 6, 0, 5),
                    (HUGE_PAGE_A, 6, 0, 5),
                ],
            ),
        ];
        for c in cases {
            let info = node_info(
                test_node("32"),
                vec![pod("e", Some("n"), &[c.existing.clone()])],
            );
            let p = plugin(c.ignored.clone());
            assert_eq!(filter_with(p.as_ref(), &c.pod, &info), c.want, "{}", c.name);
            // upstream's Fits ignores nothing
            let got: Vec<(String, i64, i64, i64)> = fits(&c.pod, &info)
                .into_iter()
                .map(|r| (r.resource_name, r.requested, r.used, r.capacity))
                .collect();
            let want: Vec<(String, i64, i64, i64)> = c
                .want_insufficient
                .iter()
                .map(|(n, r, u, cap)| (n.to_string(), *r, *u, *cap))
                .collect();
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn filter_without_pre_filter_is_an_error() {
        let p = plugin(json!({}));
        let info = node_info(test_node("32"), vec![]);
        let status =
            p.as_filter()
                .unwrap()
                .filter(&CycleState::default(), &pod("p", None, &[]), &info);
        assert_eq!(
            status,
            Status::error(
                r#"error reading "PreFilterNodeResourcesFit" from cycleState: not found"#
            )
        );
    }

    #[test]
    fn not_enough_pods() {
        // allocatable pods 1 and one pod already there: always "Too many pods"
        let cases = [
            (
                "even without specified resources",
                pod("p", None, &[]),
                req(10, 20, &[]),
            ),
            (
                "even if both resources fit",
                containers(&[req(1, 1, &[])]),
                req(5, 5, &[]),
            ),
            (
                "even for equal edge case",
                containers(&[req(5, 1, &[])]),
                req(5, 19, &[]),
            ),
            (
                "even for equal edge case due to init container",
                with_init(&[req(5, 1, &[])], &[req(5, 1, &[])]),
                req(5, 19, &[]),
            ),
        ];
        for (name, incoming, existing) in cases {
            let n = node("n", json!({"cpu": "10m", "memory": "20", "pods": "1"}));
            let info = node_info(n, vec![pod("e", Some("n"), &[existing])]);
            assert_eq!(
                filter_with(plugin(json!({})).as_ref(), &incoming, &info),
                unschedulable(&["Too many pods"]),
                "{name}"
            );
        }
        // reasons add up
        let n = node("n", json!({"cpu": "10m", "memory": "20", "pods": "1"}));
        let info = node_info(n, vec![pod("e", Some("n"), &[req(10, 20, &[])])]);
        assert_eq!(
            filter_with(
                plugin(json!({})).as_ref(),
                &containers(&[req(1, 1, &[])]),
                &info
            ),
            unschedulable(&["Too many pods", "Insufficient cpu", "Insufficient memory"])
        );
    }

    #[test]
    fn storage_requests() {
        let cases = [
            (
                "due to container scratch disk",
                containers(&[req(1, 1, &[])]),
                req(10, 10, &[]),
                Some("Insufficient cpu"),
            ),
            (
                "pod fit",
                containers(&[req(1, 1, &[])]),
                req(2, 10, &[]),
                None,
            ),
            (
                "ephemeral local storage request exceeds allocatable",
                containers(&[json!({"ephemeral-storage": "25"})]),
                req(2, 2, &[]),
                Some("Insufficient ephemeral-storage"),
            ),
            (
                "pod fits",
                containers(&[json!({"ephemeral-storage": "10"})]),
                req(2, 2, &[]),
                None,
            ),
        ];
        for (name, incoming, existing, want) in cases {
            let info = node_info(test_node("32"), vec![pod("e", Some("n"), &[existing])]);
            let want = want.map_or_else(Status::success, |r| unschedulable(&[r]));
            assert_eq!(
                filter_with(plugin(json!({})).as_ref(), &incoming, &info),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn requests_beyond_allocatable_are_still_only_unschedulable_in_1_33() {
        let info = node_info(test_node("32"), vec![]);
        let status = filter_with(
            plugin(json!({})).as_ref(),
            &containers(&[req(11, 1, &[])]),
            &info,
        );
        assert_eq!(status.code, Code::Unschedulable);
    }

    #[test]
    fn arguments_are_defaulted() {
        let mut args: NodeResourcesFitArgs = decode_args(NAME, None).unwrap();
        args.set_defaults();
        let strategy = args.scoring_strategy.unwrap();
        assert_eq!(strategy.strategy_type, LEAST_ALLOCATED);
        assert_eq!(strategy.resources, default_resources());

        let mut args: NodeResourcesFitArgs = decode_args(
            NAME,
            Some(&json!({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "NodeResourcesFitArgs",
                "scoringStrategy": {"type": "MostAllocated", "resources": [{"name": "cpu"}, {"name": "memory", "weight": 3}]}})),
        )
        .unwrap();
        args.set_defaults();
        let strategy = args.scoring_strategy.unwrap();
        assert_eq!(strategy.strategy_type, MOST_ALLOCATED);
        assert_eq!(
            strategy.resources,
            vec![ResourceSpec::new("cpu", 1), ResourceSpec::new("memory", 3)]
        );
    }

    #[test]
    fn arguments_are_validated_as_upstream() {
        let err = |args: serde_json::Value| new(Some(&args), &Handle::default()).err().unwrap();
        assert_eq!(
            err(
                json!({"scoringStrategy": {"type": "LeastAllocated", "resources": [{"name": "memory", "weight": -1}, {"name": "cpu", "weight": 1}]}})
            ),
            "scoringStrategy.resources[0].weight: Invalid value: -1: resource weight of memory not in valid range (0, 100]"
        );
        assert_eq!(
            err(
                json!({"scoringStrategy": {"type": "LeastAllocated", "resources": [{"name": "memory", "weight": 1}, {"name": "cpu", "weight": 101}]}})
            ),
            "scoringStrategy.resources[1].weight: Invalid value: 101: resource weight of cpu not in valid range (0, 100]"
        );
        assert_eq!(
            err(json!({"scoringStrategy": {"type": "Invalid"}})),
            r#"scoringStrategy.type: Unsupported value: "Invalid": supported values: "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio""#
        );
        assert_eq!(
            err(json!({"ignoredResourceGroups": ["example.com/aa"]})),
            r#"ignoredResourceGroups[0]: Invalid value: "example.com/aa": resource group name can't contain '/'"#
        );
        assert!(
            err(json!({"ignoredResources": ["-not-a-name"]}))
                .starts_with("ignoredResources[0]: Invalid value: \"-not-a-name\"")
        );
        let shape = |points: serde_json::Value| {
            err(
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": points}}}),
            )
        };
        assert_eq!(
            shape(json!([])),
            "scoringStrategy.shape: Required value: at least one point must be specified"
        );
        assert_eq!(
            shape(json!([{"utilization": 10, "score": 1}, {"utilization": 10, "score": 2}])),
            "scoringStrategy.shape[1].utilization: Invalid value: 10: values must be sorted in increasing order"
        );
        assert_eq!(
            shape(json!([{"utilization": -10, "score": 1}, {"utilization": 101, "score": 11}])),
            "[scoringStrategy.shape[0].utilization: Invalid value: -10: not in valid range [0, 100], \
             scoringStrategy.shape[1].utilization: Invalid value: 101: not in valid range [0, 100], \
             scoringStrategy.shape[1].score: Invalid value: 11: not in valid range [0, 10]]"
        );
        assert!(
            err(json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}))
                .contains("requestedToCapacityRatio")
        );
        assert!(err(json!({"unknownField": 1})).contains("unknown field"));
        // a well-formed configuration builds
        assert!(new(Some(&json!({"ignoredResources": ["example.com/foo"], "ignoredResourceGroups": ["example.com"]})), &Handle::default()).is_ok());
    }

    #[test]
    fn score_without_pre_score_computes_the_requests() {
        let p = plugin(json!({}));
        let info = node_info(node("n", json!({"cpu": "4000", "memory": "10000"})), vec![]);
        let incoming = containers(&[
            json!({"cpu": "1000", "memory": "2000"}),
            json!({"cpu": "2000", "memory": "3000"}),
        ]);
        assert_eq!(
            p.as_score()
                .unwrap()
                .score(&CycleState::default(), &incoming, &info),
            (37, Status::success())
        );
    }

    #[test]
    fn default_strategy_is_least_allocated() {
        let nodes = vec![
            node("node1", json!({"cpu": "4000", "memory": "10000"})),
            node("node2", json!({"cpu": "6000", "memory": "10000"})),
        ];
        let incoming = containers(&[
            json!({"cpu": "1000", "memory": "2000"}),
            json!({"cpu": "2000", "memory": "3000"}),
        ]);
        assert_eq!(fit_scores(&json!({}), incoming, nodes, vec![]), [37, 50]);
    }

    #[test]
    fn events_are_pod_deletes_and_scale_downs_and_node_adds_and_allocatable_changes() {
        let events = plugin(json!({})).events_to_register();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.resource, EventResource::Pod);
        assert_eq!(
            events[0].event.action,
            ActionType::DELETE.or(ActionType::UPDATE_POD_SCALE_DOWN)
        );
        assert_eq!(events[1].event.resource, EventResource::Node);
        assert_eq!(
            events[1].event.action,
            ActionType::ADD.or(ActionType::UPDATE_NODE_ALLOCATABLE)
        );
        assert!(events.iter().all(|e| e.hint.is_some()));
    }

    fn pod_obj(p: &PodInfo) -> EventObject {
        EventObject::Pod(p.pod.clone())
    }

    #[test]
    fn pod_event_hints() {
        let target = containers(&[json!({"cpu": "1", "memory": "1Gi"})]);
        // deletions: only of bound pods
        let unbound = pod("other", None, &[json!({"cpu": "1"})]);
        let bound = pod("other", Some("n"), &[json!({"cpu": "1"})]);
        assert_eq!(
            is_schedulable_after_pod_event(&target, Some(&pod_obj(&unbound)), None),
            QueueingHint::Skip
        );
        assert_eq!(
            is_schedulable_after_pod_event(&target, Some(&pod_obj(&bound)), None),
            QueueingHint::Queue
        );
        // the target itself scaling down
        let smaller_self = containers(&[json!({"cpu": "500m", "memory": "1Gi"})]);
        assert_eq!(
            is_schedulable_after_pod_event(
                &target,
                Some(&pod_obj(&target)),
                Some(&pod_obj(&smaller_self))
            ),
            QueueingHint::Queue
        );
        // a bound pod scaling down something the target requests
        let smaller = pod("other", Some("n"), &[json!({"cpu": "500m"})]);
        assert_eq!(
            is_schedulable_after_pod_event(
                &target,
                Some(&pod_obj(&bound)),
                Some(&pod_obj(&smaller))
            ),
            QueueingHint::Queue
        );
        // ... or something it does not request
        let gpu = pod(
            "other",
            Some("n"),
            &[json!({"cpu": "1", "example.com/gpu": "2"})],
        );
        let fewer_gpus = pod(
            "other",
            Some("n"),
            &[json!({"cpu": "1", "example.com/gpu": "1"})],
        );
        assert_eq!(
            is_schedulable_after_pod_event(
                &target,
                Some(&pod_obj(&gpu)),
                Some(&pod_obj(&fewer_gpus))
            ),
            QueueingHint::Skip
        );
        // an unbound pod scaling down
        let smaller_unbound = pod("other", None, &[json!({"cpu": "500m"})]);
        assert_eq!(
            is_schedulable_after_pod_event(
                &target,
                Some(&pod_obj(&unbound)),
                Some(&pod_obj(&smaller_unbound))
            ),
            QueueingHint::Skip
        );
    }

    #[test]
    fn node_event_hints() {
        let target = containers(&[json!({"cpu": "2", "memory": "1Gi"})]);
        let obj = |alloc: serde_json::Value| EventObject::Node(Arc::new(node("n", alloc)));
        let small = obj(json!({"cpu": "1", "memory": "4Gi", "pods": "10"}));
        let big = obj(json!({"cpu": "4", "memory": "4Gi", "pods": "10"}));
        let bigger = obj(json!({"cpu": "8", "memory": "4Gi", "pods": "10"}));
        let more_pods = obj(json!({"cpu": "4", "memory": "4Gi", "pods": "20"}));
        let more_storage =
            obj(json!({"cpu": "4", "memory": "4Gi", "pods": "10", "ephemeral-storage": "1Gi"}));
        assert_eq!(
            is_schedulable_after_node_change(&target, None, Some(&small)),
            QueueingHint::Skip
        );
        assert_eq!(
            is_schedulable_after_node_change(&target, None, Some(&big)),
            QueueingHint::Queue
        );
        assert_eq!(
            is_schedulable_after_node_change(&target, Some(&small), Some(&big)),
            QueueingHint::Queue
        );
        assert_eq!(
            is_schedulable_after_node_change(&target, Some(&big), Some(&bigger)),
            QueueingHint::Queue
        );
        assert_eq!(
            is_schedulable_after_node_change(&target, Some(&big), Some(&more_pods)),
            QueueingHint::Queue
        );
        // more of something the pod does not request
        assert_eq!(
            is_schedulable_after_node_change(&target, Some(&big), Some(&more_storage)),
            QueueingHint::Skip
        );
        assert_eq!(
            is_schedulable_after_node_change(&target, Some(&bigger), Some(&big)),
            QueueingHint::Skip
        );
    }
}
