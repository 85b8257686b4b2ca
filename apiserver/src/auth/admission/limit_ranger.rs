//! The LimitRanger admission plugin: a new pod's containers get their namespace's
//! LimitRange defaults (`default` limits, `defaultRequest` requests, themselves
//! defaulting from `max` and `default` as upstream's LimitRange defaults do), and pods,
//! containers and claims are refused when they pass a range's `min`, `max` or
//! `maxLimitRequestRatio`, with upstream's messages.

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::quantity::Quantity;
use apimachinery::resources;
use serde_json::{Map, Value, json};

use super::resource_quota::quantity;
use super::{Attributes, Operation, Plugin};
use crate::registry::Registry;
use crate::registry::informer::Informer;

/// `LimitRanger`.
pub struct LimitRanger {
    ranges: Arc<Informer>,
}

impl LimitRanger {
    /// Follows the LimitRanges through `registry`.
    pub fn new(registry: &Registry) -> Self {
        let resource = resources::find("", "v1", "limitranges").expect("served");
        LimitRanger {
            ranges: Informer::start(registry.clone(), resource),
        }
    }
}

/// The items of the given type among `ranges`.
fn items<'a>(ranges: &'a [Arc<Value>], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .filter(move |item| item["type"].as_str() == Some(kind))
}

/// A Container item's effective defaults: `default` (else `max`) for limits,
/// `defaultRequest` (else the effective default) for requests.
fn container_defaults(item: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut limits = item["max"].as_object().cloned().unwrap_or_default();
    for (k, v) in item["default"].as_object().into_iter().flatten() {
        limits.insert(k.clone(), v.clone());
    }
    let mut requests = limits.clone();
    for (k, v) in item["defaultRequest"].as_object().into_iter().flatten() {
        requests.insert(k.clone(), v.clone());
    }
    (limits, requests)
}

/// Fills a container's missing requests and limits from `defaults`.
fn apply_defaults(
    container: &mut Value,
    limits: &Map<String, Value>,
    requests: &Map<String, Value>,
) {
    if !container.is_object() {
        return;
    }
    if !container["resources"].is_object() {
        container["resources"] = json!({});
    }
    let own_limits = container["resources"]["limits"].clone();
    for (kind, defaults) in [("limits", limits), ("requests", requests)] {
        for (name, value) in defaults {
            if container["resources"][kind].get(name).is_some() {
                continue;
            }
            // a container that sets a limit but no request gets its limit as request
            // (upstream's API defaulting), not the range's default request
            let value = match own_limits.get(name) {
                Some(own) if kind == "requests" => own.clone(),
                _ => value.clone(),
            };
            if !container["resources"][kind].is_object() {
                container["resources"][kind] = json!({});
            }
            container["resources"][kind][name] = value;
        }
    }
}

/// The violations of one item by `requests` and `limits` of a `what` (Container, Pod,
/// PersistentVolumeClaim).
fn check(
    item: &Value,
    what: &str,
    requests: &Map<String, Value>,
    limits: &Map<String, Value>,
    errors: &mut Vec<String>,
) {
    for (name, min) in item["min"].as_object().into_iter().flatten() {
        let Some(min) = quantity(min) else { continue };
        match requests.get(name).and_then(quantity) {
            Some(request) if request < min => errors.push(format!(
                "minimum {name} usage per {what} is {min}, but request is {request}"
            )),
            Some(_) => {}
            None => errors.push(format!(
                "minimum {name} usage per {what} is {min}.  No request is specified"
            )),
        }
    }
    for (name, max) in item["max"].as_object().into_iter().flatten() {
        let Some(max) = quantity(max) else { continue };
        match limits.get(name).and_then(quantity) {
            Some(limit) if limit > max => errors.push(format!(
                "maximum {name} usage per {what} is {max}, but limit is {limit}"
            )),
            Some(_) => {}
            None => errors.push(format!(
                "maximum {name} usage per {what} is {max}.  No limit is specified"
            )),
        }
    }
    for (name, ratio) in item["maxLimitRequestRatio"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let Some(ratio) = quantity(ratio) else {
            continue;
        };
        let request = requests.get(name).and_then(quantity);
        let limit = limits.get(name).and_then(quantity);
        match (request, limit.clone()) {
            (Some(request), Some(limit)) if !request.is_zero() => {
                let provided = limit.milli_value() as f64 / request.milli_value() as f64;
                if provided > ratio.milli_value() as f64 / 1000.0 {
                    errors.push(format!(
                        "{name} max limit to request ratio per {what} is {ratio}, but provided ratio is {provided:.6}"
                    ));
                }
            }
            (None, _) | (Some(_), None) => {
                let missing = if limit.is_none() { "limit" } else { "request" };
                errors.push(format!(
                    "{name} max limit to request ratio per {what} is {ratio}, but no {missing} is specified"
                ));
            }
            _ => {}
        }
    }
}

fn resources_of(container: &Value, kind: &str) -> Map<String, Value> {
    container["resources"][kind]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The sum over a pod's containers of one kind of resources.
fn pod_totals(pod: &Value, kind: &str) -> Map<String, Value> {
    let mut totals: std::collections::BTreeMap<String, Quantity> = Default::default();
    for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (name, value) in resources_of(container, kind) {
            if let Some(q) = quantity(&value) {
                *totals.entry(name).or_default() += &q;
            }
        }
    }
    totals
        .into_iter()
        .map(|(k, v)| (k, Value::from(v.to_string())))
        .collect()
}

fn refuse(attributes: &Attributes<'_>, errors: Vec<String>) -> Result<(), StatusError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(attributes.forbidden(&errors[0])),
        _ => Err(attributes.forbidden(format!("[{}]", errors.join(", ")))),
    }
}

#[async_trait::async_trait]
impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        pod: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create || !attributes.is("", "pods", "") {
            return Ok(());
        }
        let ranges = self.ranges.list_namespace(attributes.namespace);
        for item in items(&ranges, "Container") {
            let (limits, requests) = container_defaults(item);
            for list in ["initContainers", "containers"] {
                for container in pod["spec"][list].as_array_mut().into_iter().flatten() {
                    apply_defaults(container, &limits, &requests);
                }
            }
        }
        Ok(())
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        if attributes.operation == Operation::Delete || !attributes.subresource.is_empty() {
            return Ok(());
        }
        let claim = attributes.is("", "persistentvolumeclaims", "");
        let pod = attributes.is("", "pods", "") && attributes.operation == Operation::Create;
        if !claim && !pod {
            return Ok(());
        }
        let ranges = self.ranges.list_namespace(attributes.namespace);
        if ranges.is_empty() {
            return Ok(());
        }
        let mut errors = Vec::new();
        if pod {
            for item in items(&ranges, "Container") {
                for list in ["initContainers", "containers"] {
                    for container in object["spec"][list].as_array().into_iter().flatten() {
                        check(
                            item,
                            "Container",
                            &resources_of(container, "requests"),
                            &resources_of(container, "limits"),
                            &mut errors,
                        );
                    }
                }
            }
            for item in items(&ranges, "Pod") {
                check(
                    item,
                    "Pod",
                    &pod_totals(object, "requests"),
                    &pod_totals(object, "limits"),
                    &mut errors,
                );
            }
        } else {
            let requests = object["spec"]["resources"]["requests"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let limits = object["spec"]["resources"]["limits"]
                .as_object()
                .cloned()
                .unwrap_or_else(|| requests.clone());
            for item in items(&ranges, "PersistentVolumeClaim") {
                check(
                    item,
                    "PersistentVolumeClaim",
                    &requests,
                    &limits,
                    &mut errors,
                );
            }
        }
        refuse(attributes, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester::registry;
    use std::time::Duration;

    #[tokio::test]
    async fn containers_get_defaults_and_ranges_are_enforced() {
        let registry = registry().await;
        let ranges = resources::find("", "v1", "limitranges").unwrap();
        let range = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
            "spec": {"limits": [{"type": "Container",
                "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                "min": {"cpu": "50m"}, "max": {"cpu": "1"}}]}});
        registry
            .create(ranges, Some("default"), range, false)
            .await
            .unwrap();
        let plugin = LimitRanger::new(&registry);
        assert!(plugin.ranges.wait_synced(Duration::from_secs(5)).await);
        let user = UserInfo::new("jane", &[]);
        let attributes = Attributes {
            operation: Operation::Create,
            resource: resources::find("", "v1", "pods").unwrap(),
            subresource: "",
            namespace: "default",
            name: "web",
            old: None,
            user: &user,
            dry_run: false,
        };
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        plugin.mutate(&attributes, &mut pod).await.unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}})
        );
        plugin.validate(&attributes, &pod).await.unwrap();

        let big = json!({"spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "10m"}}}]}});
        let err = plugin.validate(&attributes, &big).await.unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.status().message,
            r#"pods "web" is forbidden: [minimum cpu usage per Container is 50m, but request is 10m, maximum cpu usage per Container is 1, but limit is 2]"#
        );
    }
}
