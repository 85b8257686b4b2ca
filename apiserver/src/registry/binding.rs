//! Binding a pod to a node: `POST .../pods/{name}/binding` and the legacy
//! `POST .../bindings`, as upstream's BindingREST (pkg/registry/core/pod/storage).
//! The scheduler's last step: it sets `spec.nodeName` once, copies the Binding's
//! annotations and marks the pod's PodScheduled condition True.

use apimachinery::errors::{FieldError, Status, StatusError};
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::{Registry, meta};

fn pods() -> &'static ResourceInfo {
    resources::find("", "v1", "pods").expect("pods are in the resource table")
}

/// Upstream's `ValidatePodBinding`: the target must name a Node.
fn validate(binding: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errors.push(FieldError::not_supported(
            "target.kind",
            kind,
            &["Node", "<empty>"],
        ));
    }
    if binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        errors.push(FieldError::required("target.name", ""));
    }
    errors
}

/// The pod as bound to `node`: nodeName set, the Binding's annotations added and the
/// PodScheduled condition True; or upstream's Conflict when it cannot be bound.
fn bound_pod(pod: &Value, binding: &Value, node: &str) -> Result<Value, StatusError> {
    let name = meta::name(pod);
    let conflict = |why: String| StatusError::conflict(&pods().group_resource(), name, why);
    if let Some(uid) = meta::meta_str(binding, "uid").filter(|u| !u.is_empty())
        && meta::meta_str(pod, "uid") != Some(uid)
    {
        return Err(conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta::meta_str(pod, "uid").unwrap_or("")
        )));
    }
    if let Some(rv) = meta::meta_str(binding, "resourceVersion").filter(|r| !r.is_empty())
        && meta::meta_str(pod, "resourceVersion") != Some(rv)
    {
        return Err(conflict(
            apimachinery::errors::OPTIMISTIC_LOCK_ERROR_MSG.to_owned(),
        ));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(current) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} is already assigned to node {current:?}"
        )));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| !gates.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    let mut pod = pod.clone();
    pod["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        && let Some(metadata) = meta::metadata_mut(&mut pod)
    {
        let target = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(target) = target.as_object_mut() {
            for (key, value) in annotations {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    set_scheduled(&mut pod);
    Ok(pod)
}

/// Adds or updates the PodScheduled condition to True.
fn set_scheduled(pod: &mut Value) {
    let now = meta::now_rfc3339();
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let conditions = pod["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conditions)) = conditions else {
        return;
    };
    match conditions.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(condition) => {
            if condition["status"] != "True" {
                condition["status"] = json!("True");
                condition["lastTransitionTime"] = json!(now);
            }
            if let Some(c) = condition.as_object_mut() {
                c.remove("reason");
                c.remove("message");
            }
        }
        None => conditions.push(json!({
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": now,
        })),
    }
}

impl Registry {
    /// Binds the pod `name` (the URL's; for the legacy `bindings` resource, the
    /// Binding's own) to the Binding's target node. Returns upstream's Success Status.
    pub async fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        binding: &Value,
        dry_run: bool,
    ) -> Result<Status, StatusError> {
        if binding.get("kind").and_then(Value::as_str) != Some("Binding") {
            return Err(StatusError::bad_request(format!(
                "not a Binding object: {binding}"
            )));
        }
        if meta::name(binding) != name {
            return Err(StatusError::bad_request(
                "name in URL does not match name in Binding object",
            ));
        }
        let errors = validate(binding);
        if !errors.is_empty() {
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(StatusError::internal_error(messages.join(", ")));
        }
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.write(pods(), Some(namespace), name, dry_run, |pod| {
            bound_pod(pod, binding, &node)
        })
        .await?;
        let mut status = Status::success(None);
        status.code = 201;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use std::sync::Arc;

    fn binding(pod: &str, node: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod, "annotations": {"scheduled-by": "test"}}, "target": {"kind": "Node", "name": node}})
    }

    async fn registry_with_pod() -> Registry {
        let registry = Registry::new(Arc::new(MemoryStore::new()));
        registry.ensure_system_namespaces().await.unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        registry
            .create(pods(), Some("default"), pod, false)
            .await
            .unwrap();
        registry
    }

    #[tokio::test]
    async fn binding_sets_the_node_once_and_marks_the_pod_scheduled() {
        let registry = registry_with_pod().await;
        let status = registry
            .bind_pod("default", "web", &binding("web", "node-a"), false)
            .await
            .unwrap();
        assert_eq!(status.status, "Success");
        assert_eq!(status.code, 201);
        let pod = registry.get(pods(), Some("default"), "web").await.unwrap();
        assert_eq!(pod["spec"]["nodeName"], "node-a");
        assert_eq!(pod["metadata"]["annotations"]["scheduled-by"], "test");
        assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
        assert_eq!(pod["status"]["conditions"][0]["status"], "True");

        let again = registry
            .bind_pod("default", "web", &binding("web", "node-b"), false)
            .await
            .unwrap_err();
        assert_eq!(again.http_status(), 409);
        assert_eq!(
            again.status().message,
            r#"Operation cannot be fulfilled on pods "web": pod web is already assigned to node "node-a""#
        );
    }

    #[tokio::test]
    async fn bad_bindings_change_nothing() {
        let registry = registry_with_pod().await;
        let mismatch = registry
            .bind_pod("default", "web", &binding("other", "node-a"), false)
            .await
            .unwrap_err();
        assert_eq!(mismatch.http_status(), 400);
        assert_eq!(
            mismatch.status().message,
            "name in URL does not match name in Binding object"
        );
        let no_target = json!({"kind": "Binding", "metadata": {"name": "web"}, "target": {}});
        let err = registry
            .bind_pod("default", "web", &no_target, false)
            .await
            .unwrap_err();
        assert!(err.status().message.contains("target.name: Required value"));
        let missing = registry
            .bind_pod("default", "ghost", &binding("ghost", "node-a"), false)
            .await
            .unwrap_err();
        assert_eq!(missing.http_status(), 404);
        let dry = registry
            .bind_pod("default", "web", &binding("web", "node-a"), true)
            .await
            .unwrap();
        assert_eq!(dry.code, 201);
        let pod = registry.get(pods(), Some("default"), "web").await.unwrap();
        assert!(pod["spec"].get("nodeName").is_none(), "{pod}");
    }
}
