//! The ResourceQuota admission plugin: a create in a namespace with ResourceQuotas is
//! charged to every quota that limits something it uses (object counts, pods' CPU and
//! memory requests and limits, claims' storage), and refused with upstream's
//! `exceeded quota: ...` when a limit would be passed.
//!
//! Charging is a compare-and-swap on the quota's `status.used`, so parallel creates
//! are serialized on the quota and cannot overshoot it. A quota whose status does not
//! track a resource yet starts from the objects the store holds. Usage going down
//! (deletes) is the quota controller's to recompute, as upstream.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::quantity::Quantity;
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{ListParams, Registry, meta};

/// Resources a pod's containers request or limit.
const COMPUTE: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// `ResourceQuota`.
pub struct ResourceQuota {
    registry: Registry,
    quotas: Arc<Informer>,
}

impl ResourceQuota {
    /// Charges quotas through `registry` (one without admission).
    pub fn new(registry: Registry) -> Self {
        let resource = resources::find("", "v1", "resourcequotas").expect("served");
        ResourceQuota {
            quotas: Informer::start(registry.clone(), resource),
            registry,
        }
    }
}

/// The quota resource names an object of `resource` counts against, with amounts.
pub fn usage(resource: &ResourceInfo, object: &Value) -> BTreeMap<String, Quantity> {
    let mut usage = BTreeMap::new();
    let one = Quantity::new(1, apimachinery::quantity::Format::DecimalSI);
    let count_name = if resource.group.is_empty() {
        format!("count/{}", resource.plural)
    } else {
        format!("count/{}.{}", resource.plural, resource.group)
    };
    usage.insert(count_name, one.clone());
    if !resource.group.is_empty() {
        return usage;
    }
    match resource.plural {
        "pods"
        | "services"
        | "replicationcontrollers"
        | "resourcequotas"
        | "secrets"
        | "configmaps"
        | "persistentvolumeclaims" => {
            usage.insert(resource.plural.to_owned(), one.clone());
        }
        _ => {}
    }
    match resource.plural {
        "pods" => pod_usage(object, &mut usage),
        "services" => {
            let kind = object["spec"]["type"].as_str().unwrap_or("ClusterIP");
            if kind == "LoadBalancer" {
                usage.insert("services.loadbalancers".into(), one.clone());
            }
            if matches!(kind, "NodePort" | "LoadBalancer") {
                let ports = object["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
                usage.insert(
                    "services.nodeports".into(),
                    Quantity::new(ports, apimachinery::quantity::Format::DecimalSI),
                );
            }
        }
        "persistentvolumeclaims" => {
            if let Some(storage) = object["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .and_then(|s| Quantity::parse(s).ok())
            {
                usage.insert("requests.storage".into(), storage.clone());
                if let Some(class) = object["spec"]["storageClassName"].as_str() {
                    usage.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        storage,
                    );
                    usage.insert(
                        format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                        one,
                    );
                }
            }
        }
        _ => {}
    }
    usage
}

/// A pod's requests and limits: the larger of its containers' sum and any one init
/// container, plus its overhead (upstream's `PodRequests`/`PodLimits`).
fn pod_usage(pod: &Value, usage: &mut BTreeMap<String, Quantity>) {
    for kind in ["requests", "limits"] {
        for name in COMPUTE {
            let read = |container: &Value| {
                container["resources"][kind][*name]
                    .as_str()
                    .and_then(|s| Quantity::parse(s).ok())
                    .or_else(|| {
                        container["resources"][kind][*name]
                            .as_i64()
                            .map(|v| Quantity::new(v, apimachinery::quantity::Format::DecimalSI))
                    })
            };
            let mut sum: Option<Quantity> = None;
            for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
                if let Some(q) = read(container) {
                    *sum.get_or_insert_with(Quantity::default) += &q;
                }
            }
            for container in pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(q) = read(container)
                    && sum.as_ref().is_none_or(|s| q > *s)
                {
                    sum = Some(q);
                }
            }
            if let Some(overhead) = pod["spec"]["overhead"][*name]
                .as_str()
                .and_then(|s| Quantity::parse(s).ok())
                && let Some(sum) = &mut sum
            {
                *sum += &overhead;
            }
            if let Some(total) = sum {
                usage.insert(format!("{kind}.{name}"), total.clone());
                if kind == "requests" && *name != "ephemeral-storage" {
                    usage.insert((*name).to_owned(), total);
                }
            }
        }
    }
}

/// The containers of a pod that do not set `kind.name` (for `must specify`).
fn missing(pod: &Value, resource_name: &str) -> Vec<String> {
    let (kind, name) = match resource_name.split_once('.') {
        Some((kind @ ("requests" | "limits"), name)) => (kind, name),
        _ => ("requests", resource_name),
    };
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["resources"][kind][name].is_null())
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// A quantity written as a string or a number.
pub(super) fn quantity(value: &Value) -> Option<Quantity> {
    match value {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => n
            .as_i64()
            .map(|v| Quantity::new(v, apimachinery::quantity::Format::DecimalSI)),
        _ => None,
    }
}

fn describe(items: &[(String, Quantity)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl ResourceQuota {
    /// What the store holds of `resource_name` in `namespace`, for a quota that does
    /// not track it yet.
    async fn observed(
        &self,
        namespace: &str,
        resource_name: &str,
    ) -> Result<Quantity, StatusError> {
        let counted = resource_name
            .strip_prefix("count/")
            .map(|r| match r.split_once('.') {
                Some((plural, group)) => (group.to_owned(), plural.to_owned()),
                None => (String::new(), r.to_owned()),
            })
            .or_else(|| {
                matches!(
                    resource_name,
                    "pods"
                        | "services"
                        | "replicationcontrollers"
                        | "resourcequotas"
                        | "secrets"
                        | "configmaps"
                        | "persistentvolumeclaims"
                )
                .then(|| (String::new(), resource_name.to_owned()))
            });
        let (group, plural) = counted.unwrap_or_else(|| {
            let plural = if resource_name.contains("storage")
                || resource_name.contains("persistentvolumeclaims")
            {
                "persistentvolumeclaims"
            } else if resource_name.starts_with("services.") {
                "services"
            } else {
                "pods"
            };
            (String::new(), plural.to_owned())
        });
        let Some(resource) = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural && r.is_stored())
        else {
            return Ok(Quantity::default());
        };
        let list = self
            .registry
            .list(resource, Some(namespace), &ListParams::default())
            .await?;
        let mut total = Quantity::default();
        for item in list["items"].as_array().into_iter().flatten() {
            // finished pods no longer use their quota
            if resource.plural == "pods"
                && matches!(
                    item["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                )
            {
                continue;
            }
            if let Some(amount) = usage(resource, item).get(resource_name) {
                total += amount;
            }
        }
        Ok(total)
    }

    /// Charges `delta` to `quota`, or refuses when it would pass a limit.
    async fn charge(
        &self,
        attributes: &Attributes<'_>,
        quota: &Value,
        delta: &BTreeMap<String, Quantity>,
    ) -> Result<(), StatusError> {
        let name = meta::name(quota).to_owned();
        let namespace = attributes.namespace;
        let hard: BTreeMap<String, Quantity> = quota["spec"]["hard"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), quantity(v)?)))
            .collect();
        let relevant: Vec<String> = hard
            .keys()
            .filter(|k| delta.contains_key(*k))
            .cloned()
            .collect();
        if relevant.is_empty() {
            return Ok(());
        }
        // starting points for what the status does not track yet
        let mut observed = BTreeMap::new();
        for resource_name in &relevant {
            if quantity(&quota["status"]["used"][resource_name]).is_none() {
                observed.insert(
                    resource_name.clone(),
                    self.observed(namespace, resource_name).await?,
                );
            }
        }
        let quotas = resources::find("", "v1", "resourcequotas").expect("served");
        let gr = attributes.resource.group_resource();
        let object_name = attributes.name.to_owned();
        let check = |current: &Value| -> Result<Value, StatusError> {
            let mut updated = current.clone();
            let mut exceeded = Vec::new();
            let mut used_now = Vec::new();
            for resource_name in &relevant {
                let used = quantity(&current["status"]["used"][resource_name])
                    .or_else(|| observed.get(resource_name).cloned())
                    .unwrap_or_default();
                let limit = hard.get(resource_name).cloned().unwrap_or_default();
                let wanted = delta.get(resource_name).cloned().unwrap_or_default();
                let total = used.clone() + wanted.clone();
                if total > limit {
                    exceeded.push((resource_name.clone(), wanted, used, limit));
                } else {
                    used_now.push((resource_name.clone(), total));
                }
            }
            if !exceeded.is_empty() {
                let requested: Vec<(String, Quantity)> = exceeded
                    .iter()
                    .map(|e| (e.0.clone(), e.1.clone()))
                    .collect();
                let used: Vec<(String, Quantity)> = exceeded
                    .iter()
                    .map(|e| (e.0.clone(), e.2.clone()))
                    .collect();
                let limited: Vec<(String, Quantity)> = exceeded
                    .iter()
                    .map(|e| (e.0.clone(), e.3.clone()))
                    .collect();
                return Err(StatusError::forbidden(
                    &gr,
                    &object_name,
                    format!(
                        "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                        meta::name(current),
                        describe(&requested),
                        describe(&used),
                        describe(&limited)
                    ),
                ));
            }
            if !updated["status"].is_object() {
                updated["status"] = json!({});
            }
            if !updated["status"]["hard"].is_object() {
                updated["status"]["hard"] = quota["spec"]["hard"].clone();
            }
            if !updated["status"]["used"].is_object() {
                updated["status"]["used"] = json!({});
            }
            for (resource_name, total) in used_now {
                updated["status"]["used"][resource_name] = total.to_string().into();
            }
            Ok(updated)
        };
        if attributes.dry_run {
            let current = self.registry.get(quotas, Some(namespace), &name).await?;
            return check(&current).map(|_| ());
        }
        self.registry
            .write(quotas, Some(namespace), &name, false, check)
            .await
            .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create
            || !attributes.subresource.is_empty()
            || attributes.namespace.is_empty()
        {
            return Ok(());
        }
        let mut quotas = self.quotas.list_namespace(attributes.namespace);
        if quotas.is_empty() {
            return Ok(());
        }
        quotas.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let delta = usage(attributes.resource, object);
        // a pod must state what a quota limits
        if attributes.is("", "pods", "") {
            for quota in &quotas {
                let mut unspecified = Vec::new();
                for resource_name in quota["spec"]["hard"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let compute = [
                        "cpu",
                        "memory",
                        "requests.cpu",
                        "requests.memory",
                        "limits.cpu",
                        "limits.memory",
                    ];
                    if compute.contains(&resource_name.as_str()) {
                        let containers = missing(object, resource_name);
                        if !containers.is_empty() {
                            unspecified
                                .push(format!("{resource_name} for: {}", containers.join(",")));
                        }
                    }
                }
                if !unspecified.is_empty() {
                    return Err(attributes.forbidden(format!(
                        "failed quota: {}: must specify {}",
                        meta::name(quota),
                        unspecified.join("; ")
                    )));
                }
            }
        }
        for quota in &quotas {
            self.charge(attributes, quota, &delta).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_uses_its_containers_requests_and_limits() {
        let pods = resources::find("", "v1", "pods").unwrap();
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}]
        }});
        let pod_usage = usage(pods, &pod);
        assert_eq!(pod_usage["pods"].to_string(), "1");
        assert_eq!(pod_usage["count/pods"].to_string(), "1");
        assert_eq!(pod_usage["requests.cpu"].to_string(), "500m");
        assert_eq!(pod_usage["cpu"].to_string(), "500m");
        assert_eq!(pod_usage["requests.memory"].to_string(), "64Mi");
        assert_eq!(pod_usage["limits.cpu"].to_string(), "1");
        assert_eq!(missing(&pod, "limits.cpu"), ["b"]);
        let deployments = resources::find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            usage(deployments, &json!({})).keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
    }
}
