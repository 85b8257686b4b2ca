//! The ResourceQuota admission plugin: a create in a namespace with ResourceQuotas is
//! charged to every quota that limits something it uses (object counts, pods' CPU and
//! memory requests and limits, claims' storage) and whose scopes it is in, and refused
//! with upstream's `exceeded quota: ...` when a limit would be passed. What an object
//! uses and which quotas it matches come from `apimachinery::quota`, which the quota
//! controller shares, so the two agree.
//!
//! Charging is a compare-and-swap on the quota's `status.used`, so parallel creates
//! are serialized on the quota and cannot overshoot it. A quota whose status does not
//! track a resource yet starts from the objects the store holds. Usage going down
//! (deletes) is the quota controller's to recompute, as upstream.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::quantity::Quantity;
use apimachinery::quota;
use apimachinery::resources;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{ListParams, Registry, meta};

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

/// A quantity written as a string or a number.
pub(super) fn quantity(value: &Value) -> Option<Quantity> {
    quota::quantity(value)
}

/// Now, in Unix seconds (for pods being deleted past their grace period).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn describe(items: &[(String, Quantity)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl ResourceQuota {
    /// What the store holds of `resource_name` in `namespace` within the quota's
    /// `scopes`, for a quota whose status does not track it yet (as the quota
    /// controller would compute it).
    async fn observed(
        &self,
        namespace: &str,
        resource_name: &str,
        scopes: &[quota::ScopeRequirement],
    ) -> Result<Quantity, StatusError> {
        let Some((group, plural)) = quota::resource_for(resource_name) else {
            return Ok(Quantity::default());
        };
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
        let items = list["items"].as_array().map_or(&[][..], Vec::as_slice);
        let names = [resource_name.to_owned()];
        Ok(
            quota::usage_stats(&group, &plural, &names, scopes, items, now())
                .remove(resource_name)
                .unwrap_or_default(),
        )
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
        let hard = quota::resource_list(&quota["spec"]["hard"]);
        let relevant: Vec<String> = hard
            .keys()
            .filter(|k| delta.contains_key(*k))
            .cloned()
            .collect();
        if relevant.is_empty() {
            return Ok(());
        }
        // starting points for what the status does not track yet
        let scopes = quota::scope_selectors(quota);
        let mut observed = BTreeMap::new();
        for resource_name in &relevant {
            if quantity(&quota["status"]["used"][resource_name]).is_none() {
                observed.insert(
                    resource_name.clone(),
                    self.observed(namespace, resource_name, &scopes).await?,
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
        let (group, plural) = (attributes.resource.group, attributes.resource.plural);
        // only the quotas limiting something this object uses, in whose scopes it is
        // (upstream's evaluator `Matches`); a pod must state what they limit
        let mut interesting = Vec::new();
        for quota in &quotas {
            let hard = quota::resource_list(&quota["spec"]["hard"]);
            if !quota::quota_matches(group, plural, &hard, quota, object) {
                continue;
            }
            if quota::evaluator(group, plural) == quota::Evaluator::Pods {
                let restricted =
                    quota::matching_resources(group, plural, hard.keys().map(String::as_str));
                if let Err(why) =
                    quota::pod_constraints(object, restricted.iter().map(String::as_str))
                {
                    return Err(
                        attributes.forbidden(format!("failed quota: {}: {why}", meta::name(quota)))
                    );
                }
            }
            interesting.push(quota);
        }
        let mut delta = quota::usage(group, plural, object, now());
        // nothing is charged for what the object does not use
        delta.retain(|_, amount| !amount.is_zero());
        if interesting.is_empty() || delta.is_empty() {
            return Ok(());
        }
        for quota in interesting {
            self.charge(attributes, quota, &delta).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_charges_what_the_shared_evaluators_say() {
        let pods = resources::find("", "v1", "pods").unwrap();
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}
        ]}});
        let usage = quota::usage(pods.group, pods.plural, &pod, now());
        assert_eq!(usage["requests.cpu"].to_string(), "100m");
        assert_eq!(usage["pods"].to_string(), "1");
        // a BestEffort quota does not limit a pod with requests
        let scoped = json!({"spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}});
        let hard = quota::resource_list(&scoped["spec"]["hard"]);
        assert!(!quota::quota_matches("", "pods", &hard, &scoped, &pod));
        assert!(quota::quota_matches(
            "",
            "pods",
            &hard,
            &scoped,
            &json!({"spec": {"containers": [{"name": "a"}]}})
        ));
    }
}
