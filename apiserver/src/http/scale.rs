//! The `scale` subresource (autoscaling/v1 `Scale`) of deployments, replicasets,
//! statefulsets and replicationcontrollers, as upstream's per-resource `ScaleREST`:
//! a view of `spec.replicas`, `status.replicas` and the label selector; writing it
//! changes only the parent's `spec.replicas`, under the parent's resourceVersion.

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::labels::{LabelSelector, Selector};
use apimachinery::patch::{PatchType, apply_patch};
use apimachinery::resources::{GroupKind, ResourceInfo};
use axum::http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use crate::registry::{self, Part, Registry};

/// The label selector of the parent in its string form (Scale's `status.selector`).
fn selector_string(resource: &ResourceInfo, object: &Value) -> String {
    let selector = object.pointer("/spec/selector");
    if resource.group.is_empty() {
        // ReplicationController: a plain map.
        let labels = selector.and_then(Value::as_object).map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect::<Vec<_>>()
                .join(",")
        });
        return labels.unwrap_or_default();
    }
    let parsed: Option<LabelSelector> =
        selector.and_then(|s| serde_json::from_value(s.clone()).ok());
    Selector::from_label_selector(parsed.as_ref())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The Scale view of a parent object.
pub fn to_scale(resource: &ResourceInfo, object: &Value) -> Value {
    let meta = &object["metadata"];
    let mut metadata = serde_json::Map::new();
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            metadata.insert(field.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(resource, object),
        },
    })
}

/// GET, PUT or PATCH on `<parent>/scale`.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    dry_run: bool,
) -> Result<Value, StatusError> {
    let scale_kind = GroupKind::new("autoscaling", "Scale");
    let verb = match *method {
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        _ => "",
    };
    if !resource
        .subresource("scale")
        .is_some_and(|s| s.has_verb(verb))
    {
        let action = if verb.is_empty() {
            method.as_str().to_ascii_lowercase()
        } else {
            verb.to_owned()
        };
        return Err(StatusError::method_not_supported(
            &resource.group_resource(),
            &action,
        ));
    }
    if verb == "get" {
        return Ok(to_scale(
            resource,
            &registry.get(resource, namespace, name).await?,
        ));
    }
    let patch_type = if verb == "patch" {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        Some(PatchType::from_content_type(content_type).map_err(|e| e.to_status_error())?)
    } else {
        None
    };
    let requested = if patch_type.is_none() {
        let defaults = apimachinery::protobuf::Defaults {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
        };
        Some(super::resources::decode_request(headers, body, defaults)?)
    } else {
        None
    };
    let parent_kind = resource.group_kind();
    let updated = registry
        .write(resource, namespace, name, dry_run, |current| {
            let scale = to_scale(resource, current);
            let wanted = match (&requested, patch_type) {
                (Some(body), _) => body.clone(),
                (None, Some(patch_type)) => {
                    // Scale has no merge lists, so the parent's kind serves for strategic merge.
                    apply_patch(patch_type, &scale, body, &parent_kind)
                        .map_err(|e| e.to_status_error())?
                }
                (None, None) => scale.clone(),
            };
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(StatusError::invalid(
                    &scale_kind,
                    name,
                    &[FieldError::invalid(
                        "spec.replicas",
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut parent = current.clone();
            if let Some(spec) = parent.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            }
            // The Scale's resourceVersion, when given, is a precondition on the parent.
            if let Some(rv) = wanted.pointer("/metadata/resourceVersion") {
                registry::meta::set_meta(&mut parent, "resourceVersion", rv.clone());
            }
            registry::prepare_update(resource, name, current, &parent, Part::Main)
        })
        .await?;
    Ok(to_scale(resource, &updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn scale_views_replicas_and_selector() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}}, "status": {"replicas": 2}});
        let scale = to_scale(deployments, &d);
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
        assert_eq!(scale["status"]["selector"], "app=web,tier=fe");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        let rcs = find("", "v1", "replicationcontrollers").unwrap();
        let rc =
            json!({"metadata": {"name": "r"}, "spec": {"replicas": 1, "selector": {"app": "r"}}});
        assert_eq!(to_scale(rcs, &rc)["status"]["selector"], "app=r");
    }
}
