//! `pods/eviction`, as upstream's `EvictionREST` (pkg/registry/core/pod/storage/
//! eviction.go): deleting a pod only when its PodDisruptionBudget allows a disruption,
//! which is what `kubectl drain` relies on.
//!
//! A pod that is not running (Pending, Succeeded, Failed) or already terminating is
//! deleted at once; otherwise the one PDB selecting it must have `disruptionsAllowed`
//! left (and be observed by the disruption controller at its generation). The
//! eviction then takes one disruption (`disruptionsAllowed - 1`, the pod recorded in
//! `disruptedPods`) with compare-and-swap on the PDB's status before deleting the pod,
//! so two concurrent evictions cannot spend the same disruption. An unhealthy pod is
//! evicted without spending one when the budget's `unhealthyPodEvictionPolicy` allows.

use apimachinery::errors::{Status, StatusCause, StatusError};
use apimachinery::labels::{LabelSelector, Selector};
use apimachinery::resources::{self, GroupResource};
use serde_json::{Value, json};

use super::{DeleteOptions, ListParams, Part, Registry, meta};

/// The cause type upstream sets on eviction refusals (`policyv1.DisruptionBudgetCause`).
const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

/// Upstream's cap on `disruptedPods` (`MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// Whether the pod's PDB does not apply: it is not running, or already going.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || meta::meta_str(pod, "deletionTimestamp").is_some()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether the budget `pdb` selects `pod` (policy/v1: an empty selector selects every
/// pod in the namespace, a missing one none).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let selector: Option<LabelSelector> = pdb
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    Selector::from_label_selector(selector.as_ref())
        .map(|s| s.matches(&meta::labels(pod)))
        .unwrap_or(false)
}

fn status_i64(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Upstream's 429 for an eviction the budget does not allow now.
fn too_many_requests(retry_after_seconds: i32, cause: String) -> StatusError {
    let mut err = StatusError::too_many_requests(
        "Cannot evict pod as it would violate the pod's disruption budget.",
        retry_after_seconds,
    );
    if let Some(details) = err.0.details.as_mut() {
        details.causes.push(StatusCause {
            cause_type: DISRUPTION_BUDGET_CAUSE.into(),
            message: cause,
            field: String::new(),
        });
    }
    err
}

/// The PDB after taking one disruption for `pod`, or why it cannot give one
/// (upstream's `checkAndDecrement`).
fn take_disruption(pdb: &Value, pod: &str) -> Result<Value, StatusError> {
    let name = meta::name(pdb);
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_i64(pdb, "observedGeneration") < generation {
        return Err(too_many_requests(
            10,
            format!("The disruption budget {name} is still being processed by the server."),
        ));
    }
    let pdbs = GroupResource::new("policy", "poddisruptionbudget");
    let allowed = status_i64(pdb, "disruptionsAllowed");
    if allowed < 0 {
        return Err(StatusError::forbidden(
            &pdbs,
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(StatusError::forbidden(
            &pdbs,
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            0,
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status_i64(pdb, "desiredHealthy"),
                status_i64(pdb, "currentHealthy")
            ),
        ));
    }
    let mut updated = pdb.clone();
    let status = updated
        .as_object_mut()
        .map(|m| m.entry("status").or_insert_with(|| json!({})));
    if let Some(Value::Object(status)) = status {
        status.insert("disruptionsAllowed".into(), json!(allowed - 1));
        let pods = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !pods.is_object() {
            *pods = json!({});
        }
        pods[pod] = json!(meta::now_rfc3339());
    }
    Ok(updated)
}

impl Registry {
    /// `POST pods/<name>/eviction` with an Eviction body; answers upstream's Success
    /// Status once the pod's deletion has begun.
    pub async fn evict_pod(
        &self,
        namespace: &str,
        name: &str,
        eviction: &Value,
        dry_run: bool,
    ) -> Result<Status, StatusError> {
        if meta::name(eviction) != name {
            return Err(StatusError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let options =
            DeleteOptions::from_json(eviction.get("deleteOptions").unwrap_or(&Value::Null))?;
        let dry_run = dry_run
            || eviction
                .pointer("/deleteOptions/dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let (pods, pdbs) = match (
            resources::find("", "v1", "pods"),
            resources::find("policy", "v1", "poddisruptionbudgets"),
        ) {
            (Some(pods), Some(pdbs)) => (pods, pdbs),
            _ => {
                return Err(StatusError::internal_error(
                    "the resource table lacks pods or PDBs",
                ));
            }
        };
        let pod = self.get(pods, Some(namespace), name).await?;
        if !can_ignore_budget(&pod) {
            let list = self
                .list(pdbs, Some(namespace), &ListParams::default())
                .await?;
            let budgets: Vec<&Value> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|pdb| selects(pdb, &pod))
                .collect();
            if budgets.len() > 1 {
                return Err(StatusError::internal_error(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = budgets.first() {
                let healthy_enough = status_i64(pdb, "currentHealthy")
                    >= status_i64(pdb, "desiredHealthy")
                    && status_i64(pdb, "desiredHealthy") > 0;
                let unhealthy_may_go = !is_ready(&pod)
                    && match pdb
                        .pointer("/spec/unhealthyPodEvictionPolicy")
                        .and_then(Value::as_str)
                    {
                        Some("AlwaysAllow") => true,
                        _ => healthy_enough,
                    };
                if !unhealthy_may_go {
                    // Checked and spent on the version the write sees, so a concurrent
                    // eviction that took the last disruption is noticed.
                    self.write(pdbs, Some(namespace), meta::name(pdb), dry_run, |current| {
                        let mut updated = take_disruption(current, name)?;
                        meta::remove_meta(&mut updated, "resourceVersion");
                        Ok(super::strategy::merge_update(
                            pdbs,
                            current,
                            &updated,
                            Part::Status,
                        ))
                    })
                    .await?;
                }
            }
        }
        self.delete(pods, Some(namespace), name, &options, dry_run)
            .await?;
        let mut status = Status::success(None);
        status.code = 201;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_without_disruptions_refuses_with_upstreams_cause() {
        let pdb = json!({"metadata": {"name": "web", "generation": 1}, "status": {"observedGeneration": 1, "disruptionsAllowed": 0, "desiredHealthy": 2, "currentHealthy": 2}});
        let err = take_disruption(&pdb, "p").unwrap_err();
        assert_eq!(err.http_status(), 429);
        let details = err.status().details.clone().unwrap();
        assert_eq!(
            details.causes[0].message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        assert_eq!(details.causes[0].cause_type, "DisruptionBudget");
        let stale = json!({"metadata": {"name": "web", "generation": 2}, "status": {"observedGeneration": 1, "disruptionsAllowed": 1}});
        let err = take_disruption(&stale, "p").unwrap_err();
        assert_eq!(
            err.status().details.clone().unwrap().retry_after_seconds,
            10
        );
        let open = json!({"metadata": {"name": "web", "generation": 1}, "status": {"observedGeneration": 1, "disruptionsAllowed": 2}});
        let taken = take_disruption(&open, "p").unwrap();
        assert_eq!(taken["status"]["disruptionsAllowed"], 1);
        assert!(taken["status"]["disruptedPods"]["p"].is_string());
        let negative = json!({"metadata": {"name": "web"}, "status": {"disruptionsAllowed": -1}});
        assert_eq!(
            take_disruption(&negative, "p")
                .unwrap_err()
                .status()
                .message,
            r#"poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is negative"#
        );
    }

    #[test]
    fn selection_follows_policy_v1() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        assert!(selects(&json!({"spec": {"selector": {}}}), &pod));
        assert!(selects(
            &json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}}),
            &pod
        ));
        assert!(!selects(
            &json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}}),
            &pod
        ));
        assert!(!selects(&json!({"spec": {}}), &pod));
    }
}
