//! The scheduling framework's plugin API, as upstream's `framework/interface.go`: one
//! trait per extension point, results as a [`Status`] with upstream's codes, per-cycle
//! data in a typed [`CycleState`], and the cluster events a plugin's rejections wait on.
//!
//! A plugin is one value implementing [`Plugin`] plus the extension-point traits it
//! needs; `Plugin::as_filter()` and friends expose them (Go's interface assertions).
//! [`runtime::Framework`] runs a profile's plugins in upstream's order.

pub mod cycle_state;
pub mod events;
pub mod nominator;
pub mod registry;
pub mod runtime;
pub mod types;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use cycle_state::CycleState;
pub use events::{
    ActionType, ClusterEvent, ClusterEventWithHint, EventObject, EventResource, QueueingHint,
};
pub use types::{HostPorts, NodeInfo, PodInfo, QueuedPodInfo, Resource, Snapshot};

/// The highest score a Score plugin may give after normalization (upstream's
/// `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;
/// The lowest score (upstream's `MinNodeScore`).
pub const MIN_NODE_SCORE: i64 = 0;

/// A plugin's verdict, as upstream's `framework.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin ran and the pod may go on.
    Success,
    /// An internal error: the pod goes back to the backoff queue.
    Error,
    /// The pod does not fit, but preemption might make it fit.
    Unschedulable,
    /// The pod does not fit and preemption cannot help on this node.
    UnschedulableAndUnresolvable,
    /// A Permit plugin asks the pod to wait.
    Wait,
    /// The plugin has nothing to do for this pod; its later extension points are skipped.
    Skip,
    /// The pod waits for something outside the scheduler (not a failure of the pod).
    Pending,
}

/// A plugin's result: a code, the reasons shown to users (in FailedScheduling events),
/// and the plugin that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The verdict.
    pub code: Code,
    /// Human-readable reasons, e.g. `Insufficient cpu`.
    pub reasons: Vec<String>,
    /// The plugin that returned this status (set by the runtime).
    pub plugin: &'static str,
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}

impl Status {
    /// Success, with no reasons.
    pub const fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// A status with `code` and one reason.
    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// `Unschedulable` with reasons.
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    /// `UnschedulableAndUnresolvable` with a reason.
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// `Error` with a message.
    pub fn error(message: impl Into<String>) -> Status {
        Status::new(Code::Error, message)
    }

    /// `Skip`.
    pub const fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// The same status, attributed to `plugin`.
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }

    /// Whether the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the code is Skip.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Whether the pod was rejected (Unschedulable or UnschedulableAndUnresolvable).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }

    /// The reasons joined as upstream's `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// What PreFilter narrowed the candidate nodes to (upstream's `PreFilterResult`):
/// `None` means every node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    /// The only nodes worth filtering, or `None` for all.
    pub node_names: Option<BTreeSet<String>>,
}

impl PreFilterResult {
    /// Whether every node stays a candidate.
    pub fn all_nodes(&self) -> bool {
        self.node_names.is_none()
    }

    /// The intersection of two results (upstream's `Merge`).
    pub fn merge(self, other: PreFilterResult) -> PreFilterResult {
        match (self.node_names, other.node_names) {
            (None, n) | (n, None) => PreFilterResult { node_names: n },
            (Some(a), Some(b)) => PreFilterResult {
                node_names: Some(a.intersection(&b).cloned().collect()),
            },
        }
    }
}

/// A node's score from one plugin, or the weighted sum of all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScore {
    /// The node.
    pub name: String,
    /// Its score.
    pub score: i64,
}

/// Why each node was rejected in a cycle, for FailedScheduling messages and for
/// preemption (upstream's `NodeToStatus`).
#[derive(Clone, Debug, Default)]
pub struct NodeToStatus {
    /// Statuses of the nodes that were filtered and rejected.
    pub statuses: std::collections::HashMap<String, Status>,
    /// The status of every node not in `statuses` (when PreFilter narrowed the nodes or
    /// rejected the pod outright): UnschedulableAndUnresolvable by default.
    pub absent: Status,
}

impl NodeToStatus {
    /// An empty map whose absent nodes are UnschedulableAndUnresolvable.
    pub fn new() -> NodeToStatus {
        NodeToStatus {
            statuses: Default::default(),
            absent: Status {
                code: Code::UnschedulableAndUnresolvable,
                reasons: Vec::new(),
                plugin: "",
            },
        }
    }

    /// The status of `node`.
    pub fn get(&self, node: &str) -> &Status {
        self.statuses.get(node).unwrap_or(&self.absent)
    }
}

/// What a PostFilter plugin (preemption) achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostFilterResult {
    /// The node the pod is nominated to once its victims are gone.
    pub nominated_node_name: Option<String>,
}

/// A plugin: a name, the cluster events its rejections wait on, and the extension
/// points it implements.
pub trait Plugin: Send + Sync {
    /// Upstream's plugin name, e.g. `NodeResourcesFit`.
    fn name(&self) -> &'static str;

    /// The cluster events after which a pod this plugin rejected may fit (upstream's
    /// `EnqueueExtensions`); none means any event may help.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        Vec::new()
    }

    /// The PreEnqueue extension point, when implemented.
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    /// The QueueSort extension point, when implemented.
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    /// The PreFilter extension point, when implemented.
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    /// The Filter extension point, when implemented.
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    /// The PostFilter extension point, when implemented.
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    /// The PreScore extension point, when implemented.
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    /// The Score extension point, when implemented.
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    /// The Reserve extension point, when implemented.
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    /// The Permit extension point, when implemented.
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    /// The PreBind extension point, when implemented.
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    /// The Bind extension point, when implemented.
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    /// The PostBind extension point, when implemented.
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }
}

/// Decides whether a pod may enter the active queue at all (scheduling gates).
pub trait PreEnqueuePlugin: Send + Sync {
    /// Success lets the pod in; anything else keeps it gated.
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
}

/// Orders the active queue.
pub trait QueueSortPlugin: Send + Sync {
    /// Whether `a` is scheduled before `b`.
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
}

/// Runs once per cycle before filtering: computes state, may narrow the nodes or reject
/// the pod outright.
pub trait PreFilterPlugin: Send + Sync {
    /// `nodes` are all nodes of the snapshot.
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status);

    /// Updates this plugin's state as if `added` ran on `node` (preemption's
    /// what-if evaluation; upstream's `PreFilterExtensions.AddPod`).
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _added: &Arc<PodInfo>,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }

    /// Updates this plugin's state as if `removed` no longer ran on `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }
}

/// Whether the pod can run on one node. Called in parallel across nodes.
pub trait FilterPlugin: Send + Sync {
    /// Success, or why not.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs when no node passed filtering (preemption).
pub trait PostFilterPlugin: Send + Sync {
    /// Tries to make room; Success with a nominated node when it did. `fw` is the
    /// profile running it, for what-if filtering (upstream's framework handle).
    fn post_filter(
        &self,
        fw: &runtime::Framework,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status);
}

/// Runs once per cycle before scoring, over the feasible nodes.
pub trait PreScorePlugin: Send + Sync {
    /// Computes scoring state; Skip leaves this plugin's Score out for the pod.
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status;
}

/// Ranks feasible nodes. Called in parallel across nodes.
pub trait ScorePlugin: Send + Sync {
    /// The node's raw score.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status);

    /// Maps raw scores into 0..=[`MAX_NODE_SCORE`] (upstream's `ScoreExtensions`); the
    /// default keeps them as they are.
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }
}

/// Holds resources for a pod on its chosen node before binding.
pub trait ReservePlugin: Send + Sync {
    /// Reserves; failure aborts the cycle.
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    /// Releases what `reserve` held (idempotent).
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Approves, denies or delays binding.
pub trait PermitPlugin: Send + Sync {
    /// Success, a rejection, or Wait with the longest wait.
    fn permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> (Status, Duration);
}

/// Work before binding (volumes).
#[async_trait::async_trait]
pub trait PreBindPlugin: Send + Sync {
    /// Success lets binding go on.
    async fn pre_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status;
}

/// Binds the pod to the node.
#[async_trait::async_trait]
pub trait BindPlugin: Send + Sync {
    /// Success when bound; Skip passes to the next Bind plugin.
    async fn bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status;
}

/// Informational, after a successful bind.
pub trait PostBindPlugin: Send + Sync {
    /// Called once the pod is bound.
    fn post_bind(&self, state: &CycleState, pod: &PodInfo, node: &str);
}
