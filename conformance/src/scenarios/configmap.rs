//! As upstream's test/e2e/common/node/configmap.go (the API parts).

use serde_json::json;

use super::fail;
use crate::Cluster;

/// "ConfigMap should run through a ConfigMap lifecycle": create, get, patch, find it by
/// label across namespaces, delete the collection by label.
pub fn lifecycle(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("cm-lifecycle").map_err(fail)?;
    let label = format!("test-configmap-static={}", Cluster::unique_name("v"));
    let (key, value) = label.split_once('=').unwrap_or_default();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-configmap", "labels": {key: value}}, "data": {"valueName": "value"}});
    cluster.create(&ns, &cm).map_err(fail)?;
    let got = cluster
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/configmaps/test-configmap"
        ))
        .map_err(fail)?;
    if got["data"]["valueName"] != "value" {
        return Err(format!("created ConfigMap reads back as {got}"));
    }
    let patch = json!({"metadata": {"labels": {"test-configmap": "patched"}}, "data": {"valueName": "value1"}});
    cluster
        .kubectl(&[
            "patch",
            "-n",
            &ns,
            "configmap",
            "test-configmap",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .map_err(fail)?;
    let listed = cluster
        .get_json(&format!("/api/v1/configmaps?labelSelector={label}"))
        .map_err(fail)?;
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    if items.len() != 1
        || items[0]["data"]["valueName"] != "value1"
        || items[0]["metadata"]["labels"]["test-configmap"] != "patched"
    {
        return Err(format!(
            "the patched ConfigMap is not found by label across namespaces: {listed}"
        ));
    }
    cluster
        .kubectl(&["delete", "-n", &ns, "configmaps", "-l", &label])
        .map_err(fail)?;
    let after = cluster
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/configmaps?labelSelector={label}"
        ))
        .map_err(fail)?;
    if after["items"].as_array().is_some_and(|i| !i.is_empty()) {
        return Err(format!("delete by label left {after}"));
    }
    Ok(())
}

/// "ConfigMap should fail to create ConfigMap with empty key".
pub fn empty_key_is_refused(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("cm-empty-key").map_err(fail)?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "configmap-test-emptykey"}, "data": {"": "value-1"}});
    match cluster.create(&ns, &cm) {
        Ok(_) => Err("a ConfigMap with an empty key was created".into()),
        Err(crate::ClusterError::Failed { stderr, .. })
            if stderr.contains("a valid config key must consist of") =>
        {
            Ok(())
        }
        Err(e) => Err(format!("unexpected refusal: {e}")),
    }
}
