//! The `scale` subresource (autoscaling/v1 `Scale`) of deployments, replicasets,
//! statefulsets and replicationcontrollers, as upstream's per-resource `ScaleREST`:
//! a view of `spec.replicas`, `status.replicas` and the label selector; writing it
//! changes only the parent's `spec.replicas`, under the parent's resourceVersion.
//! Custom resources have the same view over the paths their CRD names
//! (`specReplicasPath`, `statusReplicasPath`, `labelSelectorPath`), as upstream's
//! apiextensions scale subresource.

use std::collections::HashMap;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::labels::{LabelSelector, Selector};
use apimachinery::patch::{PatchType, apply_patch};
use apimachinery::resources::{GroupKind, ResourceInfo};
use axum::http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use crate::registry::{self, Part, Registry, ownership};

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

/// Where a custom resource keeps what its Scale shows (its CRD's `subresources.scale`).
#[derive(Debug, Clone)]
pub struct CustomScale {
    /// `specReplicasPath`, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// `statusReplicasPath`, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// `labelSelectorPath`: a string selector (`app=web`), when set.
    pub label_selector: Option<String>,
}

impl CustomScale {
    /// The paths of a CRD version's `subresources.scale`.
    pub fn of(scale: &Value) -> Self {
        let path = |name: &str| scale[name].as_str().map(str::to_owned);
        CustomScale {
            spec_replicas: path("specReplicasPath").unwrap_or_else(|| ".spec.replicas".into()),
            status_replicas: path("statusReplicasPath")
                .unwrap_or_else(|| ".status.replicas".into()),
            label_selector: path("labelSelectorPath"),
        }
    }
}

/// A simple JSON path (`.spec.replicas`) as a JSON pointer (`/spec/replicas`).
fn pointer(path: &str) -> String {
    path.split('.')
        .filter(|s| !s.is_empty())
        .fold(String::new(), |mut p, s| {
            p.push('/');
            p.push_str(s);
            p
        })
}

/// The Scale view of a custom resource; upstream's 500 when its spec has no replicas.
fn custom_scale(paths: &CustomScale, object: &Value) -> Result<Value, StatusError> {
    let Some(replicas) = object
        .pointer(&pointer(&paths.spec_replicas))
        .and_then(Value::as_i64)
    else {
        return Err(StatusError::internal_error(format!(
            "the spec replicas field {:?} does not exist",
            paths.spec_replicas
        )));
    };
    let mut scale = scale_object(object, replicas);
    scale["status"]["replicas"] = json!(
        object
            .pointer(&pointer(&paths.status_replicas))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    );
    if let Some(selector) = paths
        .label_selector
        .as_deref()
        .and_then(|p| object.pointer(&pointer(p)))
        .and_then(Value::as_str)
    {
        scale["status"]["selector"] = json!(selector);
    }
    Ok(scale)
}

/// A Scale with the parent's identity and `replicas` wanted; its status left empty.
fn scale_object(object: &Value, replicas: i64) -> Value {
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
        "spec": {"replicas": replicas},
        "status": {"replicas": 0},
    })
}

/// The Scale view of a parent object.
pub fn to_scale(resource: &ResourceInfo, object: &Value) -> Value {
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut scale = scale_object(object, replicas);
    scale["status"] = json!({
        "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
        "selector": selector_string(resource, object),
    });
    scale
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
    params: &HashMap<String, String>,
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
    let custom = registry
        .custom()
        .of(resource)
        .and_then(|s| s.scale.as_ref().map(CustomScale::of));
    let view = |object: &Value| match &custom {
        Some(paths) => custom_scale(paths, object),
        None => Ok(to_scale(resource, object)),
    };
    if verb == "get" {
        return view(&registry.get(resource, namespace, name).await?);
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
    // whoever scales owns the parent's replicas, through the scale subresource
    let writer = match verb {
        "get" => None,
        _ => Some(ownership::writer(resource, verb, "scale", params, headers)?),
    };
    let schema = registry.kind_schema(resource);
    let reset = ownership::reset_fields(resource, Part::Main);
    let updated = registry
        .write(resource, namespace, name, dry_run, |current| {
            let scale = match &custom {
                // a custom resource without replicas yet is scaled from zero
                Some(paths) => custom_scale(paths, current).unwrap_or_else(|_| {
                    let mut scale = scale_object(current, 0);
                    scale["spec"] = json!({});
                    scale
                }),
                None => to_scale(resource, current),
            };
            let wanted = match (&requested, patch_type) {
                (Some(body), _) => body.clone(),
                (None, Some(patch_type)) => {
                    // Scale has no merge lists, so the parent's kind serves for strategic merge.
                    apply_patch(patch_type, &scale, body, &parent_kind)
                        .map_err(|e| e.to_status_error())?
                }
                (None, None) => scale.clone(),
            };
            let requested_replicas = wanted.pointer("/spec/replicas").and_then(Value::as_i64);
            if let Some(paths) = &custom
                && requested_replicas.is_none()
                && custom_scale(paths, current).is_err()
            {
                return Err(StatusError::bad_request(format!(
                    "the spec replicas field {:?} cannot be empty",
                    paths.spec_replicas
                )));
            }
            let replicas = requested_replicas.unwrap_or(0);
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
            match &custom {
                Some(paths) => set_path(&mut parent, &paths.spec_replicas, json!(replicas)),
                None => {
                    if let Some(spec) = parent.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.insert("replicas".into(), json!(replicas));
                    }
                }
            }
            // The Scale's resourceVersion, when given, is a precondition on the parent.
            if let Some(rv) = wanted.pointer("/metadata/resourceVersion") {
                registry::meta::set_meta(&mut parent, "resourceVersion", rv.clone());
            }
            let mut updated =
                registry::prepare_update(resource, name, current, &parent, Part::Main)?;
            ownership::track(
                schema.as_ref(),
                writer.as_ref(),
                &reset,
                Some(current),
                current,
                &mut updated,
            );
            Ok(updated)
        })
        .await?;
    view(&updated)
}

/// Sets the value at a simple JSON path, creating the objects on the way.
fn set_path(object: &mut Value, path: &str, value: Value) {
    let mut current = object;
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    for (i, segment) in segments.iter().enumerate() {
        if !current.is_object() {
            *current = json!({});
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if i + 1 == segments.len() {
            map.insert((*segment).to_owned(), value);
            return;
        }
        current = map.entry(*segment).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn custom_resources_scale_at_their_crds_paths() {
        let paths = CustomScale::of(&json!({"specReplicasPath": ".spec.size",
            "statusReplicasPath": ".status.ready", "labelSelectorPath": ".status.selector"}));
        let object = json!({"metadata": {"name": "c", "resourceVersion": "3"},
            "spec": {"size": 4}, "status": {"ready": 2, "selector": "app=c"}});
        let scale = custom_scale(&paths, &object).unwrap();
        assert_eq!(scale["spec"]["replicas"], 4);
        assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=c"}));
        let err = custom_scale(&paths, &json!({"metadata": {"name": "c"}})).unwrap_err();
        assert_eq!(
            err.0.message,
            "Internal error occurred: the spec replicas field \".spec.size\" does not exist"
        );
        let mut empty = json!({"metadata": {}});
        set_path(&mut empty, ".spec.size", json!(2));
        assert_eq!(empty["spec"]["size"], 2);
    }

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
