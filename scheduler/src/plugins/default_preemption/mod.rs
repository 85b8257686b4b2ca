//! DefaultPreemption: the PostFilter plugin of upstream's default profile
//! (`defaultpreemption` over `framework/preemption`). When no node fits a pod, it looks
//! for nodes where evicting lower-priority pods would make room, picks the one whose
//! evictions hurt least, nominates the pod to it and evicts the victims
//! asynchronously (upstream's async preemption, on by default in v1.33): the victims
//! get the `DisruptionTarget` condition, are deleted and get a `Preempted` event, and
//! lower-priority pods nominated to the same node lose their nomination.

pub mod candidates;

use std::sync::{Arc, RwLock};

use apimachinery::errors::{FieldError, FieldPath, aggregate_message};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand::Rng;
use serde::Deserialize;

use crate::framework::registry::{Handle, decode_args};
use crate::framework::runtime::Framework;
use crate::framework::{
    Code, CycleState, NodeToStatus, Plugin, PodInfo, PostFilterPlugin, PostFilterResult, Status,
};
use crate::schedule_one::{Diagnosis, fit_error_message};

use candidates::Candidate;

/// The plugin's name.
pub const NAME: &str = "DefaultPreemption";

/// The absent nodes' reason when no candidate is found (upstream's FitError over the
/// dry run).
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// The plugin's arguments (upstream's `DefaultPreemptionArgs`): how many candidate
/// nodes the dry run looks for, as a share of the potential nodes and as a floor.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DefaultPreemptionArgs {
    /// Percentage of the potential nodes to find candidates on (0..=100).
    pub min_candidate_nodes_percentage: i32,
    /// At least this many candidates (>= 0).
    pub min_candidate_nodes_absolute: i32,
}

impl Default for DefaultPreemptionArgs {
    fn default() -> Self {
        DefaultPreemptionArgs {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

impl DefaultPreemptionArgs {
    /// Upstream's `ValidateDefaultPreemptionArgs`, with its messages.
    pub fn validate(&self) -> Result<(), String> {
        let root = FieldPath::default();
        let percentage_path = root.child("minCandidateNodesPercentage");
        let absolute_path = root.child("minCandidateNodesAbsolute");
        let (percentage, absolute) = (
            self.min_candidate_nodes_percentage,
            self.min_candidate_nodes_absolute,
        );
        let mut errs = Vec::new();
        if !(0..=100).contains(&percentage) {
            errs.push(FieldError::invalid(
                &percentage_path,
                i64::from(percentage),
                "not in valid range [0, 100]",
            ));
        }
        if absolute < 0 {
            errs.push(FieldError::invalid(
                &absolute_path,
                i64::from(absolute),
                "not in valid range [0, inf)",
            ));
        }
        if percentage == 0 && absolute == 0 {
            errs.push(FieldError::invalid(
                &percentage_path,
                0i64,
                "cannot be zero at the same time as minCandidateNodesAbsolute",
            ));
            errs.push(FieldError::invalid(
                &absolute_path,
                0i64,
                "cannot be zero at the same time as minCandidateNodesPercentage",
            ));
        }
        match aggregate_message(&errs) {
            None => Ok(()),
            Some(msg) => Err(msg),
        }
    }
}

/// Preempts lower-priority pods to make room.
pub struct DefaultPreemption {
    args: DefaultPreemptionArgs,
    /// PodDisruptionBudgets, kept current by the informers.
    pdbs: Arc<RwLock<Vec<Arc<PodDisruptionBudget>>>>,
    /// For the evictions; `None` in unit tests (no API work then).
    client: Option<kube::Client>,
    /// Where the evictions run: PostFilter is called on the scheduler's own thread,
    /// outside the runtime, so the runtime is remembered at construction.
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for DefaultPreemption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultPreemption")
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

/// The constructor: decodes and validates `DefaultPreemptionArgs`.
pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let args: DefaultPreemptionArgs = decode_args(NAME, args)?;
    args.validate()?;
    Ok(Arc::new(DefaultPreemption {
        args,
        pdbs: handle.pdbs.clone(),
        client: handle.client.clone(),
        runtime: tokio::runtime::Handle::try_current().ok(),
    }))
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let (result, mut status) = self.preempt(fw, state, pod, statuses);
        // upstream's PostFilter says where its message comes from
        let message = status.message();
        if !message.is_empty() {
            status.reasons = vec![format!("preemption: {message}")];
        }
        (result, status)
    }
}

impl DefaultPreemption {
    /// Upstream's `Evaluator.Preempt`.
    fn preempt(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        // upstream re-reads the pod from its lister; the nominator holds the nomination
        // schedule_one made before the status update lands
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| fw.nominator().node_of(pod.uid()));
        if let Err(reason) = eligible_to_preempt_others(state, pod, nominated.as_deref(), statuses)
        {
            return (None, Status::unschedulable(reason));
        }

        let all_nodes = state.snapshot.nodes.clone();
        if all_nodes.is_empty() {
            return (None, Status::error("no nodes available"));
        }
        // only nodes rejected as Unschedulable may be helped by evictions
        let potential: Vec<_> = all_nodes
            .iter()
            .filter(|n| statuses.get(n.name()).code == Code::Unschedulable)
            .cloned()
            .collect();
        let dry_run = if potential.is_empty() {
            candidates::DryRun {
                statuses: NodeToStatus::new(),
                ..Default::default()
            }
        } else {
            let pdbs: Vec<Arc<PodDisruptionBudget>> =
                self.pdbs.read().unwrap_or_else(|e| e.into_inner()).clone();
            let offset = rand::rng().random_range(0..potential.len());
            let wanted = candidates::num_candidates(
                potential.len(),
                self.args.min_candidate_nodes_percentage,
                self.args.min_candidate_nodes_absolute,
            );
            candidates::dry_run(fw, state, pod, &potential, &pdbs, offset, wanted)
        };
        if dry_run.candidates.is_empty() {
            if !dry_run.errors.is_empty() {
                return (None, Status::error(aggregate(&dry_run.errors)));
            }
            let mut node_to_status = dry_run.statuses;
            node_to_status.absent = Status::unresolvable(NOT_HELPFUL);
            let diagnosis = Diagnosis {
                node_to_status,
                ..Diagnosis::default()
            };
            // upstream also asks to clear the pod's nomination here (an empty
            // nominated node); schedule_one keeps a nomination only on Success, so
            // nothing is returned
            return (
                None,
                Status::unschedulable(fit_error_message(all_nodes.len(), &diagnosis)),
            );
        }
        let Some(best) = candidates::pick_one(&dry_run.candidates) else {
            return (
                None,
                Status::unschedulable("no candidate node for preemption"),
            );
        };
        tracing::debug!(pod = %pod.key(), node = %best.name, victims = best.victims.len(), "the target node for the preemption is determined");
        self.prepare_candidate(fw, pod, best);
        (
            Some(PostFilterResult {
                nominated_node_name: Some(best.name.clone()),
            }),
            Status::success(),
        )
    }

    /// Upstream's `prepareCandidateAsync`: lower-priority pods nominated to the node
    /// lose their nomination (they may no longer fit; the scheduler should look
    /// elsewhere for them soon), and the victims are evicted, all off the scheduling
    /// thread.
    fn prepare_candidate(&self, fw: &Framework, pod: &PodInfo, c: &Candidate) {
        let lower_nominated: Vec<Arc<PodInfo>> = fw
            .nominator()
            .pods_on(&c.name)
            .into_iter()
            .filter(|p| p.priority() < pod.priority())
            .collect();
        // the nominator mirrors the status change at once so that the next cycles
        // stop keeping room for them on this node
        for p in &lower_nominated {
            fw.nominator().delete(p.uid());
        }
        let (Some(client), Some(runtime)) = (self.client.clone(), self.runtime.as_ref()) else {
            return;
        };
        // victims already terminating need no further API call
        let victims: Vec<Arc<Pod>> = c
            .victims
            .iter()
            .filter(|v| v.pod.metadata.deletion_timestamp.is_none())
            .map(|v| v.pod.clone())
            .collect();
        let preemptor = pod.pod.clone();
        let node = c.name.clone();
        let component = fw.profile_name.clone();
        let lower_nominated: Vec<Arc<Pod>> =
            lower_nominated.into_iter().map(|p| p.pod.clone()).collect();
        runtime.spawn(async move {
            for p in &lower_nominated {
                if let Err(e) = clear_nominated_node_name(&client, p).await {
                    tracing::warn!(error = %e, pod = ?p.metadata.name, "cannot clear 'NominatedNodeName' field from a lower priority pod on the target node");
                }
            }
            // all victims at once; the preemptor is retried when their deletions show
            let evictions = victims.iter().map(|v| {
                preempt_pod(&client, &preemptor, v, &node, &component)
            });
            for (v, r) in victims.iter().zip(futures::future::join_all(evictions).await) {
                if let Err(e) = r {
                    tracing::warn!(error = %e, victim = ?v.metadata.name, "error occurred during async preemption");
                }
            }
        });
    }
}

/// Joins error messages as upstream's `utilerrors.NewAggregate`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Upstream's `PodEligibleToPreemptOthers`: a pod with `preemptionPolicy: Never` does
/// not preempt, and a pod that already preempted waits while its victims on the
/// nominated node terminate — unless that node no longer suits it at all.
fn eligible_to_preempt_others(
    state: &CycleState,
    pod: &PodInfo,
    nominated: Option<&str>,
    statuses: &NodeToStatus,
) -> Result<(), &'static str> {
    let policy = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.");
    }
    let Some(nominated) = nominated else {
        return Ok(());
    };
    if statuses.get(nominated).code == Code::UnschedulableAndUnresolvable {
        return Ok(());
    }
    if let Some(node) = state.snapshot.get(nominated) {
        let terminating = node
            .pods
            .iter()
            .any(|p| p.priority() < pod.priority() && terminating_by_preemption(&p.pod));
        if terminating {
            return Err("not eligible due to a terminating pod on the nominated node.");
        }
    }
    Ok(())
}

/// Whether the pod is terminating because the scheduler preempted it (upstream's
/// `podTerminatingByPreemption`).
fn terminating_by_preemption(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_none() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
        .is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some(PREEMPTION_REASON))
}

/// The DisruptionTarget reason of victims (upstream's `PodReasonPreemptionByScheduler`).
pub const PREEMPTION_REASON: &str = "PreemptionByScheduler";

/// The message of the DisruptionTarget condition upstream writes on a victim.
pub fn disruption_message(scheduler_name: &str) -> String {
    format!("{scheduler_name}: preempting to accommodate a higher priority pod")
}

/// Whether a kube error is the API's NotFound (the pod is gone already: fine).
fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Upstream's `PreemptPod`: marks the victim with the DisruptionTarget condition (so
/// controllers and the next cycles know why it goes), deletes it with its default
/// grace period, and records a `Preempted` event on it.
async fn preempt_pod(
    client: &kube::Client,
    preemptor: &Pod,
    victim: &Pod,
    node: &str,
    component: &str,
) -> Result<(), kube::Error> {
    let namespace = victim.metadata.namespace.as_deref().unwrap_or("default");
    let name = victim.metadata.name.as_deref().unwrap_or("");
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
    let scheduler_name = preemptor
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
    let message = disruption_message(scheduler_name);
    let current = victim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"));
    let unchanged = current.is_some_and(|c| {
        c.status == "True"
            && c.reason.as_deref() == Some(PREEMPTION_REASON)
            && c.message.as_deref() == Some(message.as_str())
    });
    if !unchanged {
        // the transition time moves only when the condition's status changes
        let transition = current
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(jiff::Timestamp::now()));
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": PREEMPTION_REASON,
            "message": message,
            "lastTransitionTime": transition,
        }]}});
        match api
            .patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    match api.delete(name, &kube::api::DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    record_preempted_event(client, preemptor, victim, node, component).await;
    Ok(())
}

/// Writes the `Preempted` event on the victim (best effort, as events are).
async fn record_preempted_event(
    client: &kube::Client,
    preemptor: &Pod,
    victim: &Pod,
    node: &str,
    component: &str,
) {
    let namespace = victim.metadata.namespace.clone().unwrap_or_default();
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let reference = |p: &Pod| ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: p.metadata.name.clone(),
        namespace: p.metadata.namespace.clone(),
        uid: p.metadata.uid.clone(),
        resource_version: p.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{victim_name}.{:x}",
                jiff::Timestamp::now().as_nanosecond()
            )),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: reference(victim),
        related: Some(reference(preemptor)),
        action: Some("Preempting".to_owned()),
        reason: Some("Preempted".to_owned()),
        message: Some(format!(
            "Preempted by pod {} on node {node}",
            preemptor.metadata.uid.as_deref().unwrap_or("")
        )),
        type_: Some("Normal".to_owned()),
        source: Some(EventSource {
            component: Some(component.to_owned()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some(component.to_owned()),
        ..Event::default()
    };
    let api: kube::Api<Event> = kube::Api::namespaced(client.clone(), &namespace);
    if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
        tracing::debug!(error = %e, "writing Preempted event");
    }
}

/// Clears `status.nominatedNodeName` of a pod (upstream's `clearNominatedNodeName`).
async fn clear_nominated_node_name(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    if nominated.is_empty() {
        return Ok(());
    }
    let api: kube::Api<Pod> = kube::Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let patch = serde_json::json!({"status": {"nominatedNodeName": null}});
    match api
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
