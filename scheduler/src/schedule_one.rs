//! One pod's trip through the framework (upstream's `schedule_one.go`). The
//! *scheduling cycle* runs on the scheduler's own thread, one pod at a time: snapshot,
//! PreFilter, Filter over just enough nodes (`percentageOfNodesToScore`) in parallel,
//! PostFilter when none fit, PreScore and Score, the best node (ties broken at random),
//! then assume, Reserve and Permit. The *binding cycle* runs asynchronously: PreBind,
//! Bind, PostBind, the `Scheduled` event. Failures go back to the queue with a
//! `FailedScheduling` event and the PodScheduled condition False, in upstream's words.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;
use rayon::prelude::*;

use crate::cache::Cache;
use crate::framework::runtime::Framework;
use crate::framework::{Code, CycleState, NodeInfo, NodeToStatus, PodInfo, QueuedPodInfo, Status};
use crate::metrics::Metrics;
use crate::queue::SchedulingQueue;
use component_base::events::Recorder;

/// Below this many nodes every node is filtered (upstream's `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (upstream's
/// `minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// Upstream's error when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Why no node fits, as collected over a cycle (upstream's `Diagnosis`).
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// Each rejected node's status.
    pub node_to_status: NodeToStatus,
    /// The plugins that rejected the pod somewhere.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// PreFilter's rejection, when it rejected the pod outright.
    pub pre_filter_msg: String,
    /// PostFilter's (preemption's) message.
    pub post_filter_msg: String,
}

/// Upstream's `FitError.Error()`: `0/3 nodes are available: 1 Insufficient cpu, 2
/// node(s) had untolerated taint {...}.` with reasons counted per node, sorted, and
/// the PreFilter and PostFilter messages (`... preemption: 0/3 nodes are available: 3
/// Preemption is not helpful for scheduling.`).
pub fn fit_error_message(num_all_nodes: usize, d: &Diagnosis) -> String {
    let mut message = format!("0/{num_all_nodes} nodes are available:");
    if !d.pre_filter_msg.is_empty() {
        message.push_str(&format!(" {}.", d.pre_filter_msg));
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for status in d.node_to_status.statuses.values() {
            for reason in &status.reasons {
                *counts.entry(reason).or_default() += 1;
            }
        }
        let explicit = d.node_to_status.statuses.len();
        if explicit < num_all_nodes {
            for reason in &d.node_to_status.absent.reasons {
                *counts.entry(reason).or_default() += num_all_nodes - explicit;
            }
        }
        let mut reasons: Vec<String> = counts
            .into_iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        reasons.sort();
        if !reasons.is_empty() {
            message.push_str(&format!(" {}.", reasons.join(", ")));
        }
    }
    if !d.post_filter_msg.is_empty() {
        // PostFilter's message is itself a sentence (upstream: `" %v"`)
        message.push_str(&format!(" {}", d.post_filter_msg));
    }
    message
}

/// How many feasible nodes to find before scoring (upstream's
/// `numFeasibleNodesToFind`): all below 100 nodes; else the percentage, adaptive when
/// 0 (50% minus 1% per 125 nodes, at least 5%), never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = i64::from(percentage);
    if percentage == 0 {
        percentage = 50 - num_all_nodes as i64 / 125;
        if percentage < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND {
            percentage = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND;
        }
    }
    let n = (num_all_nodes as i64 * percentage / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// What a successful cycle chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The node.
    pub host: String,
    /// How many nodes were evaluated.
    pub evaluated: usize,
    /// How many were feasible.
    pub feasible: usize,
}

/// Why a cycle found no node.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// No node fits.
    Fit {
        /// Nodes in the snapshot.
        num_all_nodes: usize,
        /// Why.
        diagnosis: Diagnosis,
    },
    /// The cluster has no nodes, or a plugin failed.
    Error(String),
}

/// What the binding side needs, shared with the async tasks.
pub struct Shared {
    /// Nodes and pods.
    pub cache: Arc<Mutex<Cache>>,
    /// Pending pods.
    pub queue: Arc<SchedulingQueue>,
    /// For status updates; `None` in unit tests.
    pub client: Option<kube::Client>,
    /// Events; `None` in unit tests.
    pub recorder: Option<Recorder>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where async work (binding, status updates) runs; the scheduling cycle's own
    /// thread is outside the runtime.
    pub runtime: tokio::runtime::Handle,
}

impl Shared {
    /// The cache, locked (a panic elsewhere while holding it leaves the data usable).
    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The scheduling loop's state.
pub struct Scheduler {
    /// What it shares with binding tasks.
    pub shared: Arc<Shared>,
    /// Profiles by scheduler name.
    pub profiles: HashMap<String, Arc<Framework>>,
    /// The global `percentageOfNodesToScore` (0: adaptive).
    pub percentage_of_nodes_to_score: i32,
    next_start_node_index: usize,
}

impl Scheduler {
    /// A scheduler over `shared`.
    pub fn new(
        shared: Arc<Shared>,
        profiles: HashMap<String, Arc<Framework>>,
        percentage_of_nodes_to_score: i32,
    ) -> Scheduler {
        Scheduler {
            shared,
            profiles,
            percentage_of_nodes_to_score,
            next_start_node_index: 0,
        }
    }

    /// Schedules pods until the queue closes.
    pub fn run(mut self) {
        while let Some(qpi) = self.shared.queue.pop() {
            self.schedule_one(qpi);
        }
    }

    /// One pod: the scheduling cycle here, the binding cycle spawned.
    pub fn schedule_one(&mut self, qpi: QueuedPodInfo) {
        let start = Instant::now();
        let cycle = self.shared.queue.scheduling_cycle();
        let pod = qpi.pod_info.clone();
        let uid = pod.uid().to_owned();
        let Some(fw) = profile_of(&self.profiles, &pod.pod).cloned() else {
            self.shared.queue.done(&uid);
            return;
        };
        // upstream's skipPodSchedule: deleted meanwhile, or already assumed
        if pod.pod.metadata.deletion_timestamp.is_some() || self.shared.cache().is_assumed(&uid) {
            self.shared.queue.done(&uid);
            return;
        }
        let snapshot = self.shared.cache().update_snapshot();
        let mut state = CycleState::new(snapshot);
        let result = self.schedule_pod(&fw, &mut state, &pod);
        let host = match result {
            Ok(r) => r.host,
            Err(ScheduleError::Fit {
                num_all_nodes,
                mut diagnosis,
            }) => {
                // Some(Some(node)): nominate; Some(None): clear a stale nomination
                let mut nominated: Option<Option<String>> = None;
                if fw.has_post_filter() {
                    let (r, s) = fw.run_post_filter(&state, &pod, &diagnosis.node_to_status);
                    if !s.is_success() && s.code != Code::Error {
                        diagnosis.post_filter_msg = s.message();
                    }
                    match r
                        .and_then(|r| r.nominated_node_name)
                        .filter(|_| s.is_success())
                    {
                        Some(node) => {
                            // room is kept for it at once, before the status update lands
                            fw.nominator().add(pod.clone(), Some(&node));
                            nominated = Some(Some(node));
                        }
                        None => {
                            // preemption cannot help: the pod no longer holds room
                            // anywhere (upstream clears the nomination)
                            fw.nominator().delete(&uid);
                            let has_status = pod
                                .pod
                                .status
                                .as_ref()
                                .and_then(|s| s.nominated_node_name.as_deref())
                                .is_some_and(|n| !n.is_empty());
                            if has_status {
                                nominated = Some(None);
                            }
                        }
                    }
                }
                let message = fit_error_message(num_all_nodes, &diagnosis);
                let mut qpi = qpi;
                qpi.unschedulable_plugins = diagnosis.unschedulable_plugins.clone();
                self.shared.metrics.attempt(
                    "unschedulable",
                    &fw.profile_name,
                    start.elapsed().as_secs_f64(),
                );
                failure(&self.shared, &fw, qpi, cycle, true, message, nominated);
                return;
            }
            Err(ScheduleError::Error(message)) => {
                self.shared.metrics.attempt(
                    "error",
                    &fw.profile_name,
                    start.elapsed().as_secs_f64(),
                );
                failure(&self.shared, &fw, qpi, cycle, false, message, None);
                return;
            }
        };

        // assume: the next cycle counts the pod on its node before the binding lands
        let mut assumed_pod = (*pod.pod).clone();
        assumed_pod
            .spec
            .get_or_insert_with(Default::default)
            .node_name = Some(host.clone());
        let assumed = Arc::new(PodInfo::from_arc(Arc::new(assumed_pod)));
        let assumed_result = self.shared.cache().assume_pod(assumed.clone());
        if let Err(e) = assumed_result {
            self.shared
                .metrics
                .attempt("error", &fw.profile_name, start.elapsed().as_secs_f64());
            failure(&self.shared, &fw, qpi, cycle, false, e.to_string(), None);
            return;
        }
        let s = fw.run_reserve(&mut state, &assumed, &host);
        if !s.is_success() {
            // Reserve unreserved its plugins itself
            let _ = self.shared.cache().forget_pod(&uid);
            self.rejected_after_assume(&fw, qpi, cycle, start, "Reserve", &s);
            return;
        }
        let (s, _wait) = fw.run_permit(&mut state, &assumed, &host);
        if !s.is_success() && s.code != Code::Wait {
            fw.run_unreserve(&mut state, &assumed, &host);
            let _ = self.shared.cache().forget_pod(&uid);
            self.rejected_after_assume(&fw, qpi, cycle, start, "Permit", &s);
            return;
        }
        // the binding cycle: no Permit plugin of the default profile waits, so a Wait
        // is treated as approval after its timeout is not modelled yet
        let shared = self.shared.clone();
        self.shared.runtime.spawn(async move {
            bind_cycle(shared, fw, state, qpi, assumed, host, cycle, start).await;
        });
    }

    /// A Reserve or Permit plugin refused the assumed pod (already forgotten): the
    /// failure as upstream reports it, with the plugin as the one to wait on.
    fn rejected_after_assume(
        &self,
        fw: &Framework,
        mut qpi: QueuedPodInfo,
        cycle: u64,
        start: Instant,
        point: &str,
        s: &Status,
    ) {
        let unschedulable = s.is_rejected();
        if unschedulable {
            qpi.unschedulable_plugins = [s.plugin].into();
        }
        let result = if unschedulable {
            "unschedulable"
        } else {
            "error"
        };
        self.shared
            .metrics
            .attempt(result, &fw.profile_name, start.elapsed().as_secs_f64());
        let message = format!("running {point} plugin {:?}: {}", s.plugin, s.message());
        failure(&self.shared, fw, qpi, cycle, unschedulable, message, None);
    }

    /// Upstream's `schedulePod`: the feasible nodes, their scores and the best one.
    pub fn schedule_pod(
        &mut self,
        fw: &Framework,
        state: &mut CycleState,
        pod: &PodInfo,
    ) -> Result<ScheduleResult, ScheduleError> {
        let num_all_nodes = state.snapshot.len();
        if num_all_nodes == 0 {
            return Err(ScheduleError::Error(NO_NODES_AVAILABLE.to_owned()));
        }
        let (feasible, diagnosis) = self.find_nodes_that_fit_pod(fw, state, pod)?;
        if feasible.is_empty() {
            return Err(ScheduleError::Fit {
                num_all_nodes,
                diagnosis,
            });
        }
        let evaluated = feasible.len() + diagnosis.node_to_status.statuses.len();
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                host: feasible[0].name().to_owned(),
                evaluated,
                feasible: 1,
            });
        }
        let s = fw.run_pre_score(state, pod, &feasible);
        if !s.is_success() {
            return Err(ScheduleError::Error(format!(
                "running PreScore plugin {:?}: {}",
                s.plugin,
                s.message()
            )));
        }
        let scores = fw.run_score(state, pod, &feasible).map_err(|s| {
            ScheduleError::Error(format!(
                "running Score plugin {:?}: {}",
                s.plugin,
                s.message()
            ))
        })?;
        Ok(ScheduleResult {
            host: select_host(&scores),
            evaluated,
            feasible: feasible.len(),
        })
    }

    fn find_nodes_that_fit_pod(
        &mut self,
        fw: &Framework,
        state: &mut CycleState,
        pod: &PodInfo,
    ) -> Result<(Vec<Arc<NodeInfo>>, Diagnosis), ScheduleError> {
        let mut diagnosis = Diagnosis {
            node_to_status: NodeToStatus::new(),
            ..Diagnosis::default()
        };
        let (pre_result, s, narrowed_by) = fw.run_pre_filter(state, pod);
        if !s.is_success() {
            if !s.is_rejected() {
                return Err(ScheduleError::Error(format!(
                    "running PreFilter plugin {:?}: {}",
                    s.plugin,
                    s.message()
                )));
            }
            // every node gets PreFilter's status, so preemption sees it
            diagnosis.pre_filter_msg = s.message();
            diagnosis.unschedulable_plugins.insert(s.plugin);
            diagnosis.node_to_status.absent = s;
            return Ok((Vec::new(), diagnosis));
        }
        let snapshot = state.snapshot.clone();
        // upstream tries the nominated node first (after preemption made room)
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            if let Some(node) = snapshot.get(nominated) {
                if fw
                    .run_filter_with_nominated_pods(state, pod, node)
                    .is_success()
                {
                    return Ok((vec![node.clone()], diagnosis));
                }
            }
        }
        let nodes: Vec<Arc<NodeInfo>> = match &pre_result.node_names {
            None => snapshot.nodes.as_ref().clone(),
            Some(names) => {
                // nodes PreFilter ruled out count as unresolvable, naming the plugins
                let mut plugins = narrowed_by.clone();
                plugins.sort_unstable();
                diagnosis.node_to_status.absent = Status::unresolvable(format!(
                    "node(s) didn't satisfy plugin(s) [{}]",
                    plugins.join(" ")
                ));
                names
                    .iter()
                    .filter_map(|n| snapshot.get(n).cloned())
                    .collect()
            }
        };
        let feasible = self.find_nodes_that_pass_filters(fw, state, pod, &mut diagnosis, &nodes);
        // the next cycle starts after the nodes this one looked at (upstream)
        let processed = feasible.len() + diagnosis.node_to_status.statuses.len();
        self.next_start_node_index = (self.next_start_node_index + processed) % snapshot.len();
        Ok((feasible, diagnosis))
    }

    /// Filters nodes in parallel, starting where the last cycle stopped, until enough
    /// feasible ones are found.
    fn find_nodes_that_pass_filters(
        &mut self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        diagnosis: &mut Diagnosis,
        nodes: &[Arc<NodeInfo>],
    ) -> Vec<Arc<NodeInfo>> {
        let n = nodes.len();
        if n == 0 {
            return Vec::new();
        }
        let percentage = fw
            .percentage_of_nodes_to_score
            .unwrap_or(self.percentage_of_nodes_to_score);
        let to_find = num_feasible_nodes_to_find(percentage, n);
        let start = self.next_start_node_index % n;
        // upstream's parallelizer stops once enough nodes fit; here the nodes are
        // filtered in batches (in parallel within one), so a cycle that needs 10% of
        // the nodes looks at little more than that
        let batch = to_find.max(256);
        let mut feasible = Vec::with_capacity(to_find);
        let mut offset = 0;
        while offset < n && feasible.len() < to_find {
            let end = (offset + batch).min(n);
            let statuses: Vec<Status> = (offset..end)
                .into_par_iter()
                .with_min_len(64)
                .map(|i| fw.run_filter_with_nominated_pods(state, pod, &nodes[(start + i) % n]))
                .collect();
            for (i, s) in (offset..end).zip(statuses) {
                if feasible.len() >= to_find {
                    break;
                }
                let node = &nodes[(start + i) % n];
                if s.is_success() {
                    feasible.push(node.clone());
                } else {
                    diagnosis.unschedulable_plugins.insert(s.plugin);
                    diagnosis
                        .node_to_status
                        .statuses
                        .insert(node.name().to_owned(), s);
                }
            }
            offset = end;
        }
        feasible
    }
}

/// The profile a pod asks for.
pub fn profile_of<'a>(
    profiles: &'a HashMap<String, Arc<Framework>>,
    pod: &Pod,
) -> Option<&'a Arc<Framework>> {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
    profiles.get(name)
}

/// The highest-scored node, ties broken uniformly at random (upstream's reservoir
/// sampling in `selectHost`).
pub fn select_host(scores: &[crate::framework::NodeScore]) -> String {
    let mut rng = rand::rng();
    let mut best: Option<&crate::framework::NodeScore> = None;
    let mut ties = 0u32;
    for s in scores {
        match best {
            None => {
                best = Some(s);
                ties = 1;
            }
            Some(b) if s.score > b.score => {
                best = Some(s);
                ties = 1;
            }
            Some(b) if s.score == b.score => {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some(s);
                }
            }
            Some(_) => {}
        }
    }
    best.map(|b| b.name.clone()).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn bind_cycle(
    shared: Arc<Shared>,
    fw: Arc<Framework>,
    mut state: CycleState,
    qpi: QueuedPodInfo,
    assumed: Arc<PodInfo>,
    host: String,
    cycle: u64,
    start: Instant,
) {
    let uid = assumed.uid().to_owned();
    // the binding tasks do not need the cycle's snapshot: let the cache reuse it
    state.snapshot = Default::default();
    let mut s = fw.run_pre_bind(&state, &assumed, &host).await;
    let point = if s.is_success() {
        s = fw.run_bind(&state, &assumed, &host).await;
        "Bind"
    } else {
        "PreBind"
    };
    if s.is_success() {
        shared.cache().finish_binding(&uid);
        fw.nominator().delete(&uid);
        shared.queue.done(&uid);
        shared
            .metrics
            .attempt("scheduled", &fw.profile_name, start.elapsed().as_secs_f64());
        fw.run_post_bind(&state, &assumed, &host);
        if let Some(recorder) = &shared.recorder {
            recorder.event(
                &*qpi.pod_info.pod,
                "Normal",
                "Scheduled",
                format!(
                    "Successfully assigned {}/{} to {host}",
                    assumed.namespace(),
                    assumed.name()
                ),
                &fw.profile_name,
            );
        }
        return;
    }
    fw.run_unreserve(&mut state, &assumed, &host);
    if let Err(e) = shared.cache().forget_pod(&uid) {
        tracing::error!(error = %e, "scheduler cache ForgetPod failed");
    }
    shared
        .metrics
        .attempt("error", &fw.profile_name, start.elapsed().as_secs_f64());
    let message = if s.plugin.is_empty() {
        format!("running {point} plugins: {}", s.message())
    } else {
        format!("running {point} plugin {:?}: {}", s.plugin, s.message())
    };
    let unschedulable = s.is_rejected();
    failure(&shared, &fw, qpi, cycle, unschedulable, message, None);
}

/// Upstream's `handleSchedulingFailure`: back to the queue, a `FailedScheduling`
/// event, and the PodScheduled condition False with the reason and message (and the
/// nominated node, after preemption).
fn failure(
    shared: &Arc<Shared>,
    fw: &Framework,
    qpi: QueuedPodInfo,
    cycle: u64,
    unschedulable: bool,
    message: String,
    nominated: Option<Option<String>>,
) {
    let pod = qpi.pod_info.pod.clone();
    shared.queue.requeue_failed(qpi, cycle, unschedulable);
    tracing::debug!(pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")), %message, "unable to schedule pod");
    if let Some(recorder) = &shared.recorder {
        recorder.event(
            &*pod,
            "Warning",
            "FailedScheduling",
            message.clone(),
            &fw.profile_name,
        );
    }
    let Some(client) = shared.client.clone() else {
        return;
    };
    let reason = if unschedulable {
        "Unschedulable"
    } else {
        "SchedulerError"
    };
    shared.runtime.spawn(update_pod_scheduled_condition(
        client, pod, reason, message, nominated,
    ));
}

/// Sets PodScheduled=False with `reason` and `message` unless it already says so
/// (upstream's `updatePod` skips unchanged conditions).
async fn update_pod_scheduled_condition(
    client: kube::Client,
    pod: Arc<Pod>,
    reason: &'static str,
    message: String,
    nominated: Option<Option<String>>,
) {
    let status = pod.status.as_ref();
    let current = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message.as_str())
    });
    let nominated_now = status
        .and_then(|s| s.nominated_node_name.clone())
        .filter(|n| !n.is_empty());
    if same && nominated.as_ref().is_none_or(|n| *n == nominated_now) {
        return;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .unwrap_or_else(|| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())
    });
    let mut status_patch = serde_json::json!({
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]
    });
    match nominated {
        Some(Some(node)) => status_patch["nominatedNodeName"] = serde_json::Value::String(node),
        Some(None) => status_patch["nominatedNodeName"] = serde_json::Value::Null,
        None => {}
    }
    let patch = serde_json::json!({"status": status_patch});
    let api: kube::Api<Pod> = kube::Api::namespaced(
        client,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if let Err(e) = api
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
    {
        // the pod may be gone; the next attempt writes it again
        tracing::debug!(error = %e, pod = name, "updating PodScheduled condition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_percentage_of_nodes_to_score() {
        // upstream's TestNumFeasibleNodesToFind cases
        assert_eq!(num_feasible_nodes_to_find(0, 10), 10);
        assert_eq!(num_feasible_nodes_to_find(40, 10), 10);
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(40, 1000), 400);
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
        assert_eq!(num_feasible_nodes_to_find(40, 6000), 2400);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(1, 1000), 100);
    }

    fn status(code: Code, reason: &str) -> Status {
        Status::new(code, reason)
    }

    #[test]
    fn fit_errors_count_and_sort_reasons_as_upstream() {
        let mut d = Diagnosis {
            node_to_status: NodeToStatus::new(),
            ..Diagnosis::default()
        };
        d.node_to_status
            .statuses
            .insert("a".into(), status(Code::Unschedulable, "Insufficient cpu"));
        for n in ["b", "c"] {
            d.node_to_status.statuses.insert(
                n.into(),
                status(
                    Code::UnschedulableAndUnresolvable,
                    "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
                ),
            );
        }
        assert_eq!(
            fit_error_message(3, &d),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
        d.post_filter_msg =
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                .into();
        assert!(fit_error_message(3, &d).ends_with(
            "}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ));
        let pre = Diagnosis {
            pre_filter_msg: "node(s) didn't match Pod's node affinity/selector".into(),
            ..Diagnosis::default()
        };
        assert_eq!(
            fit_error_message(5, &pre),
            "0/5 nodes are available: node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn the_best_score_wins_and_ties_are_shared() {
        let scores = |v: &[(&str, i64)]| {
            v.iter()
                .map(|(n, s)| crate::framework::NodeScore {
                    name: (*n).into(),
                    score: *s,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(select_host(&scores(&[("a", 1), ("b", 9), ("c", 3)])), "b");
        let tied = scores(&[("a", 5), ("b", 5), ("c", 1)]);
        let picks: BTreeSet<String> = (0..200).map(|_| select_host(&tied)).collect();
        assert_eq!(picks, ["a".to_owned(), "b".to_owned()].into());
    }
}
