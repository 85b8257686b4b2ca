//! As upstream's test/e2e/apimachinery/resource_quota.go: a quota's status is
//! calculated by the quota controller, creates are charged by admission and deletes
//! released by the controller.

use serde_json::{Value, json};

use super::{fail, poll};
use crate::Cluster;

/// How many `resource` objects `ns` holds.
fn count(cluster: &Cluster, ns: &str, resource: &str) -> Result<usize, String> {
    let list = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}/{resource}"))
        .map_err(fail)?;
    Ok(list["items"].as_array().map_or(0, Vec::len))
}

/// Waits until the quota's `status.used` holds each of `want` (compared by value as
/// written: the controller writes canonical quantities).
fn wait_used(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    want: &[(&str, String)],
) -> Result<(), String> {
    poll(|| {
        let quota = cluster
            .get_json(&format!("/api/v1/namespaces/{ns}/resourcequotas/{name}"))
            .map_err(fail)?;
        let used = &quota["status"]["used"];
        for (resource, amount) in want {
            if used[*resource].as_str() != Some(amount.as_str()) {
                return Err(format!("quota {name} uses {used}, not {resource}={amount}"));
            }
        }
        Ok(())
    })
}

fn create_quota(cluster: &Cluster, ns: &str, name: &str, hard: Value) -> Result<(), String> {
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
        "spec": {"hard": hard}});
    cluster.create(ns, &quota).map_err(fail).map(|_| ())
}

/// Upstream's `newTestResourceQuota` limits, the ones the scenarios read.
fn test_hard() -> Value {
    json!({
        "pods": "5", "requests.cpu": "1", "requests.memory": "500Mi",
        "services": "10", "services.nodeports": "1", "services.loadbalancers": "1",
        "replicationcontrollers": "10", "resourcequotas": "1", "configmaps": "10",
        "secrets": "10", "persistentvolumeclaims": "10", "requests.storage": "10Gi"
    })
}

/// "ResourceQuota should create a ResourceQuota and ensure its status is promptly
/// calculated": the quota counts itself.
pub fn status_promptly_calculated(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("rq-status").map_err(fail)?;
    let existing = count(cluster, &ns, "resourcequotas")?;
    create_quota(cluster, &ns, "test-quota", test_hard())?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[("resourcequotas", (existing + 1).to_string())],
    )
}

/// The shared shape of "capture the life of a configMap/secret": count what is
/// there, create the quota, create one object (used goes up), delete it (used goes
/// back down).
fn object_life(
    cluster: &Cluster,
    prefix: &str,
    resource: &str,
    object: Value,
) -> Result<(), String> {
    let ns = cluster.namespace(prefix).map_err(fail)?;
    // the namespace's own objects (kube-root-ca.crt) appear shortly after it
    if resource == "configmaps" {
        poll(|| match count(cluster, &ns, resource)? {
            0 => Err("no kube-root-ca.crt yet".into()),
            _ => Ok(()),
        })
        .ok();
    }
    let existing = count(cluster, &ns, resource)?;
    create_quota(cluster, &ns, "test-quota", test_hard())?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[
            (resource, existing.to_string()),
            ("resourcequotas", "1".into()),
        ],
    )?;
    cluster.create(&ns, &object).map_err(fail)?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[(resource, (existing + 1).to_string())],
    )?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    cluster
        .kubectl(&["delete", resource, name, "-n", &ns])
        .map_err(fail)?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[(resource, existing.to_string())],
    )
}

/// "ResourceQuota should create a ResourceQuota and capture the life of a configMap."
pub fn life_of_a_config_map(cluster: &Cluster) -> Result<(), String> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-configmap"},
        "data": {"a": "b"}});
    object_life(cluster, "rq-configmap", "configmaps", cm)
}

/// "ResourceQuota should create a ResourceQuota and capture the life of a secret."
pub fn life_of_a_secret(cluster: &Cluster) -> Result<(), String> {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "test-secret"},
        "data": {"a": "Yg=="}});
    object_life(cluster, "rq-secret", "secrets", secret)
}

fn pod(name: &str, cpu: &str, memory: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": memory},
                "limits": {"cpu": cpu, "memory": memory}}}]}})
}

/// "ResourceQuota should create a ResourceQuota and capture the life of a pod.": the
/// pod's requests are charged, a pod passing what is left is refused, and deleting the
/// pod releases its usage.
pub fn life_of_a_pod(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("rq-pod").map_err(fail)?;
    create_quota(cluster, &ns, "test-quota", test_hard())?;
    let zero = || "0".to_owned();
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[
            ("pods", zero()),
            ("requests.cpu", zero()),
            ("requests.memory", zero()),
        ],
    )?;
    // the namespace's default service account may still be on its way
    poll(|| {
        cluster
            .create(&ns, &pod("test-pod", "500m", "252Mi"))
            .map(|_| ())
            .map_err(fail)
    })?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[
            ("pods", "1".into()),
            ("requests.cpu", "500m".into()),
            ("requests.memory", "252Mi".into()),
        ],
    )?;
    match cluster.create(&ns, &pod("fail-pod", "600m", "100Mi")) {
        Ok(_) => return Err("a pod passing the quota's cpu was created".into()),
        Err(crate::ClusterError::Failed { stderr, .. })
            if stderr.contains("exceeded quota: test-quota") => {}
        Err(e) => return Err(format!("unexpected refusal: {e}")),
    }
    cluster
        .kubectl(&[
            "delete",
            "pod",
            "test-pod",
            "-n",
            &ns,
            "--grace-period=0",
            "--force",
        ])
        .map_err(fail)?;
    wait_used(
        cluster,
        &ns,
        "test-quota",
        &[
            ("pods", zero()),
            ("requests.cpu", zero()),
            ("requests.memory", zero()),
        ],
    )
}
