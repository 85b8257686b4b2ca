//! As upstream's test/e2e/apimachinery/namespace.go.

use serde_json::{Value, json};

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

/// Runs `attempt` again while it fails on a write conflict (as upstream's
/// `retry.RetryOnConflict`), at most five times.
fn retry_on_conflict<T>(mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(why) if tries < 4 && why.contains("the object has been modified") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100 * tries));
            }
            outcome => return outcome,
        }
    }
}

/// Decodes kubectl's JSON output.
fn json_of(out: &str) -> Result<Value, String> {
    serde_json::from_str(out).map_err(|e| format!("not JSON ({e}): {out}"))
}

/// "Namespaces should apply an update to a Namespace": a read-modify-write update
/// (PUT) adds a label.
pub fn update_a_namespace(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("nsupdate").map_err(fail)?;
    let updated = retry_on_conflict(|| {
        let mut current = json_of(
            &cluster
                .kubectl(&["get", "namespace", &ns, "-o", "json"])
                .map_err(fail)?,
        )?;
        current["metadata"]["labels"][&ns] = json!("updated");
        let out = cluster
            .kubectl_stdin(&["replace", "-f", "-", "-o", "json"], &current.to_string())
            .map_err(fail)?;
        json_of(&out)
    })?;
    if updated["metadata"]["labels"][&ns] != "updated" {
        return Err(format!(
            "the update did not set label {ns}=updated: {updated}"
        ));
    }
    let got = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}"))
        .map_err(fail)?;
    if got["metadata"]["labels"][&ns] != "updated" {
        return Err(format!("the label is not stored: {got}"));
    }
    Ok(())
}
