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

/// "Namespaces should apply changes to a namespace status": the status subresource
/// reads Active, a merge patch through it adds a condition and an annotation (both
/// kept), and a PUT through it replaces the condition.
pub fn apply_changes_to_namespace_status(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("nsstatus").map_err(fail)?;
    let path = format!("/api/v1/namespaces/{ns}/status");
    let status = cluster.get_json(&path).map_err(fail)?;
    if status["status"]["phase"] != "Active" {
        return Err(format!("a new namespace's status: {status}"));
    }
    let patch = json!({
        "metadata": {"annotations": {"e2e-patched-ns-status": ns}},
        "status": {"conditions": [{"type": "StatusPatch", "status": "True",
                                   "reason": "E2E", "message": "Patched by an e2e test"}]},
    });
    let answer = cluster
        .request(
            "PATCH",
            &path,
            "application/merge-patch+json",
            &patch.to_string(),
        )
        .map_err(fail)?;
    let patched = answer.json();
    if answer.status != 200
        || patched["metadata"]["annotations"]["e2e-patched-ns-status"] != ns.as_str()
        || patched["status"]["conditions"][0]["type"] != "StatusPatch"
    {
        return Err(format!("status patch: {} {}", answer.status, answer.body));
    }
    let updated = retry_on_conflict(|| {
        let mut current = cluster.get_json(&path).map_err(fail)?;
        current["status"]["conditions"] = json!([{"type": "StatusUpdate", "status": "True",
            "reason": "E2E", "message": "Updated by an e2e test"}]);
        let answer = cluster
            .request("PUT", &path, "application/json", &current.to_string())
            .map_err(fail)?;
        match answer.status {
            200 => Ok(answer.json()),
            _ => Err(answer.body),
        }
    })?;
    let conditions = &updated["status"]["conditions"];
    if conditions.as_array().map(Vec::len) != Some(1) || conditions[0]["type"] != "StatusUpdate" {
        return Err(format!("status update: {updated}"));
    }
    Ok(())
}

/// "Namespaces should apply a finalizer to a Namespace": a PUT on `finalize` adds a
/// finalizer to `spec.finalizers`, which a later read shows.
pub fn apply_a_finalizer_to_a_namespace(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("nsfinalize").map_err(fail)?;
    let finalizer = "e2e.example.com/fakeFinalizer";
    let updated = retry_on_conflict(|| {
        let mut current = cluster
            .get_json(&format!("/api/v1/namespaces/{ns}"))
            .map_err(fail)?;
        let mut finalizers = current["spec"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        finalizers.push(json!(finalizer));
        current["spec"]["finalizers"] = json!(finalizers);
        let answer = cluster
            .request(
                "PUT",
                &format!("/api/v1/namespaces/{ns}/finalize"),
                "application/json",
                &current.to_string(),
            )
            .map_err(fail)?;
        match answer.status {
            200 => Ok(answer.json()),
            _ => Err(answer.body),
        }
    })?;
    let has = |ns: &Value| {
        ns["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    };
    if !has(&updated) {
        return Err(format!("finalize did not add {finalizer}: {updated}"));
    }
    let read = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}"))
        .map_err(fail)?;
    if !has(&read) {
        return Err(format!(
            "{finalizer} is not in the namespace read back: {read}"
        ));
    }
    Ok(())
}
