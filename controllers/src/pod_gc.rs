//! The pod garbage collector: removes pods no kubelet will ever clean up, as
//! upstream's `podgc` controller. Every 20 seconds it force-deletes
//!
//! - terminated pods (neither Pending, Running nor Unknown) beyond
//!   `--terminated-pod-gc-threshold`, evicted ones first, then the oldest;
//! - terminating pods on a node that is not ready and carries the
//!   `node.kubernetes.io/out-of-service` taint;
//! - pods bound to a node that no longer exists: a node missing from the cache is
//!   quarantined for 40 seconds and then looked up in the apiserver, and only if it is
//!   really gone are its pods marked with the `DisruptionTarget` condition (reason
//!   `DeletionByPodGC`);
//! - terminating pods never bound to a node.
//!
//! A pod not yet Succeeded or Failed is first patched to Failed (there may be no
//! kubelet left to do it), then deleted with a zero grace period.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::Context;
use crate::informers::Informer;

/// The controller's name.
pub const NAME: &str = "pod-garbage-collector-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "pod-garbage-collector";
/// How often the collector runs (upstream's `gcCheckPeriod`).
const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a node missing from the cache waits before it is looked up (upstream's
/// `quarantineTime`).
const QUARANTINE_TIME: Duration = Duration::from_secs(40);
/// The taint that lets terminating pods on a dead node go.
const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Upstream's `isPodTerminated`: any phase but Pending, Running and Unknown.
fn is_pod_terminated(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default();
    !matches!(phase, "Pending" | "Running" | "Unknown")
}

/// The kubelet's `PodIsEvicted`: Failed with reason Evicted.
fn is_evicted(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Failed") && s.reason.as_deref() == Some("Evicted")
    })
}

/// Evicted pods first, then the oldest, names breaking ties (upstream's
/// `byEvictionAndCreationTimestamp`).
fn by_eviction_and_creation(a: &Pod, b: &Pod) -> Ordering {
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The terminated pods beyond `threshold`, in the order they go.
fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut terminated: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| is_pod_terminated(p))
        .cloned()
        .collect();
    let excess = terminated.len().saturating_sub(threshold);
    if excess == 0 {
        return Vec::new();
    }
    terminated.sort_by(|a, b| by_eviction_and_creation(a, b));
    terminated.truncate(excess);
    terminated
}

/// Upstream's `nodeutil.IsNodeReady`.
fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn has_taint(node: &Node, key: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key))
}

/// The status patch that marks `pod` Failed, with `condition` set as upstream's
/// `UpdatePodCondition` (its transition time kept when its status does not change).
fn failed_status_patch(pod: &Pod, condition: Option<PodCondition>) -> serde_json::Value {
    let mut status = json!({"phase": "Failed"});
    if let Some(mut condition) = condition {
        let existing = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == condition.type_));
        condition.last_transition_time = match existing {
            Some(old) if old.status == condition.status => old.last_transition_time.clone(),
            _ => Some(Time(jiff::Timestamp::now())),
        };
        status["conditions"] = json!([condition]);
    }
    json!({"metadata": {"uid": pod.metadata.uid}, "status": status})
}

struct Controller {
    cx: Context,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// Nodes missing from the cache, with when they may be looked up.
    quarantine: Mutex<HashMap<String, Instant>>,
}

impl Controller {
    async fn gc(&self) {
        let pods = self.pods.list();
        let nodes = self.nodes.list();
        if let Ok(threshold) = usize::try_from(self.cx.settings.terminated_pod_gc_threshold)
            && threshold > 0
        {
            self.gc_terminated(&pods, threshold).await;
        }
        self.gc_terminating(&pods).await;
        self.gc_orphaned(&pods, &nodes).await;
        self.gc_unscheduled_terminating(&pods).await;
    }

    async fn gc_terminated(&self, pods: &[Arc<Pod>], threshold: usize) {
        let doomed = terminated_to_delete(pods, threshold);
        if doomed.is_empty() {
            return;
        }
        tracing::info!(pods = doomed.len(), "garbage collecting terminated pods");
        futures::future::join_all(doomed.iter().map(|p| self.mark_failed_and_delete(p, None)))
            .await;
    }

    async fn gc_terminating(&self, pods: &[Arc<Pod>]) {
        let mut doomed: Vec<Arc<Pod>> = Vec::new();
        for pod in pods
            .iter()
            // upstream's isPodTerminating: being deleted and not yet finished
            .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_pod_terminated(p))
        {
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or_default();
            let Some(node) = self.nodes.get("", node_name) else {
                tracing::debug!(node = %node_name, "failed to get node of a terminating pod");
                continue;
            };
            if !is_node_ready(&node) && has_taint(&node, OUT_OF_SERVICE_TAINT) {
                doomed.push(pod.clone());
            }
        }
        if doomed.is_empty() {
            return;
        }
        doomed.sort_by(|a, b| by_eviction_and_creation(a, b));
        futures::future::join_all(doomed.iter().map(|p| self.mark_failed_and_delete(p, None)))
            .await;
    }

    async fn gc_orphaned(&self, pods: &[Arc<Pod>], nodes: &[Arc<Node>]) {
        let existing: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        let now = Instant::now();
        let due: Vec<String> = {
            let mut quarantine = self.quarantine.lock().unwrap_or_else(|e| e.into_inner());
            for pod in pods {
                if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                    && !node.is_empty()
                    && !existing.contains(node)
                {
                    quarantine
                        .entry(node.to_owned())
                        .or_insert(now + QUARANTINE_TIME);
                }
            }
            let due: Vec<String> = quarantine
                .iter()
                .filter(|(_, ready)| **ready <= now)
                .map(|(name, _)| name.clone())
                .collect();
            for name in &due {
                quarantine.remove(name);
            }
            due
        };
        // still missing after the quarantine: ask the apiserver
        let nodes_api: Api<Node> = Api::all(self.cx.client.clone());
        let mut deleted = HashSet::new();
        for name in due.into_iter().filter(|n| !existing.contains(n.as_str())) {
            match nodes_api.get_opt(&name).await {
                Ok(None) => {
                    deleted.insert(name);
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::info!(node = %name, error = %e, "error while getting node"),
            }
        }
        if deleted.is_empty() {
            return;
        }
        for pod in pods {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or_default();
            if !deleted.contains(node) {
                continue;
            }
            let condition = PodCondition {
                type_: "DisruptionTarget".to_owned(),
                status: "True".to_owned(),
                reason: Some("DeletionByPodGC".to_owned()),
                message: Some("PodGC: node no longer exists".to_owned()),
                ..PodCondition::default()
            };
            if self.mark_failed_and_delete(pod, Some(condition)).await {
                tracing::info!(pod = %crate::controller_utils::pod_key(pod), node, "forced deletion of orphaned pod succeeded");
            }
        }
    }

    async fn gc_unscheduled_terminating(&self, pods: &[Arc<Pod>]) {
        for pod in pods {
            let unscheduled = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty);
            if pod.metadata.deletion_timestamp.is_none() || !unscheduled {
                continue;
            }
            if self.mark_failed_and_delete(pod, None).await {
                tracing::info!(pod = %crate::controller_utils::pod_key(pod), "forced deletion of unscheduled terminating pod succeeded");
            }
        }
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`; whether it succeeded.
    async fn mark_failed_and_delete(&self, pod: &Pod, condition: Option<PodCondition>) -> bool {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.cx.client.clone(), namespace);
        tracing::info!(pod = %format!("{namespace}/{name}"), "PodGC is force deleting pod");
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !matches!(phase, Some("Succeeded" | "Failed")) {
            let patch = failed_status_patch(pod, condition);
            if let Err(e) = api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::info!(pod = %name, error = %e, "marking pod failed");
                return false;
            }
        }
        match api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::info!(pod = %name, error = %e, "deleting pod");
                false
            }
        }
    }
}

/// Starts the collector.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(Controller {
        pods: cx.informers.informer::<Pod>(),
        nodes: cx.informers.informer::<Node>(),
        quarantine: Mutex::new(HashMap::new()),
        cx,
    });
    Box::pin(async move {
        controller.pods.wait_synced().await;
        controller.nodes.wait_synced().await;
        loop {
            controller.gc().await;
            tokio::time::sleep(GC_CHECK_PERIOD).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: &str, phase: &str, reason: Option<&str>) -> Arc<Pod> {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "creationTimestamp": created},
            "status": {"phase": phase}
        });
        if let Some(r) = reason {
            p["status"]["reason"] = json!(r);
        }
        Arc::new(serde_json::from_value(p).unwrap())
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_evicted_then_oldest_first() {
        let pods = [
            pod("new", "2024-05-01T10:03:00Z", "Succeeded", None),
            pod("running", "2024-05-01T10:00:00Z", "Running", None),
            pod("old", "2024-05-01T10:01:00Z", "Failed", None),
            pod("b-same", "2024-05-01T10:02:00Z", "Succeeded", None),
            pod("a-same", "2024-05-01T10:02:00Z", "Succeeded", None),
            pod("evicted", "2024-05-01T10:04:00Z", "Failed", Some("Evicted")),
        ];
        assert_eq!(
            names(&terminated_to_delete(&pods, 2)),
            ["evicted", "old", "a-same"]
        );
        assert!(terminated_to_delete(&pods, 5).is_empty());
        assert!(!is_pod_terminated(&pods[1]));
        for phase in ["Pending", "Unknown"] {
            assert!(!is_pod_terminated(&pod(
                "p",
                "2024-05-01T10:00:00Z",
                phase,
                None
            )));
        }
    }

    #[test]
    fn the_failed_patch_sets_the_phase_and_condition_with_the_uid() {
        let p = pod("p", "2024-05-01T10:00:00Z", "Running", None);
        let condition = PodCondition {
            type_: "DisruptionTarget".to_owned(),
            status: "True".to_owned(),
            reason: Some("DeletionByPodGC".to_owned()),
            message: Some("PodGC: node no longer exists".to_owned()),
            ..PodCondition::default()
        };
        let patch = failed_status_patch(&p, Some(condition));
        assert_eq!(patch["metadata"]["uid"], "uid-p");
        assert_eq!(patch["status"]["phase"], "Failed");
        let c = &patch["status"]["conditions"][0];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "DeletionByPodGC");
        assert!(c["lastTransitionTime"].is_string());
        let plain = failed_status_patch(&p, None);
        assert!(plain["status"].get("conditions").is_none());
    }

    #[test]
    fn out_of_service_needs_the_taint_and_an_unready_node() {
        let node = |ready: &str, taint: bool| -> Node {
            let mut n = json!({"metadata": {"name": "n"}, "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}});
            if taint {
                n["spec"]["taints"] = json!([{"key": OUT_OF_SERVICE_TAINT, "value": "nodeshutdown", "effect": "NoExecute"}]);
            }
            serde_json::from_value(n).unwrap()
        };
        let down = node("False", true);
        assert!(!is_node_ready(&down) && has_taint(&down, OUT_OF_SERVICE_TAINT));
        assert!(is_node_ready(&node("True", true)));
        assert!(!has_taint(&node("False", false), OUT_OF_SERVICE_TAINT));
    }
}
