//! As upstream's test/e2e/apimachinery/namespace.go.

use serde_json::json;

use super::fail;
use crate::Cluster;

/// "Namespaces should patch a Namespace": a merge patch adds a label.
pub fn patch_a_namespace(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("nspatchtest").map_err(fail)?;
    let patch = json!({"metadata": {"labels": {"testLabel": "testValue"}}});
    cluster
        .kubectl(&[
            "patch",
            "namespace",
            &ns,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .map_err(fail)?;
    let got = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}"))
        .map_err(fail)?;
    if got["metadata"]["labels"]["testLabel"] != "testValue" {
        return Err(format!("namespace not patched: {got}"));
    }
    Ok(())
}
