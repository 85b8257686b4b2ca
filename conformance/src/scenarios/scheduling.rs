//! As upstream's test/e2e/scheduling/predicates.go, for what needs no kubelet: a pod
//! whose nodeSelector matches no node is reported unschedulable and stays unbound.

use serde_json::{Value, json};

use super::{fail, poll};
use crate::Cluster;

/// "SchedulerPredicates validates that NodeSelector is respected if not matching": a
/// FailedScheduling event for the pod, the PodScheduled condition False with reason
/// Unschedulable (upstream's `WaitForPodNameUnschedulableInNamespace`), and no node.
pub fn node_selector_not_matching(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("sched-pred").map_err(fail)?;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "restricted-pod", "labels": {"name": "restricted"}},
        "spec": {
            "nodeSelector": {"label": "nonempty"},
            "containers": [{"name": "restricted-pod", "image": "registry.k8s.io/pause:3.10"}]
        }
    });
    cluster.create(&ns, &pod).map_err(fail)?;
    poll(|| {
        let out = cluster
            .kubectl(&[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector",
                "involvedObject.name=restricted-pod,reason=FailedScheduling",
                "-o",
                "json",
            ])
            .map_err(fail)?;
        let events: Value = serde_json::from_str(&out).map_err(fail)?;
        match events["items"].as_array() {
            Some(items) if !items.is_empty() => Ok(()),
            _ => Err("no FailedScheduling event for restricted-pod".to_owned()),
        }
    })?;
    poll(|| {
        let got = cluster
            .get_json(&format!("/api/v1/namespaces/{ns}/pods/restricted-pod"))
            .map_err(fail)?;
        if got["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(format!(
                "the pod was scheduled: {}",
                got["spec"]["nodeName"]
            ));
        }
        let conditions = got["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let scheduled = conditions.iter().find(|c| c["type"] == "PodScheduled");
        match scheduled {
            Some(c) if c["status"] == "False" && c["reason"] == "Unschedulable" => Ok(()),
            other => Err(format!(
                "PodScheduled is not False/Unschedulable: {other:?}"
            )),
        }
    })?;
    cluster
        .kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .map_err(fail)?;
    Ok(())
}
