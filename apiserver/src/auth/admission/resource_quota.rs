//! The ResourceQuota admission plugin, as upstream's (apiserver's
//! `admission/plugin/resourcequota`): a write in a namespace with ResourceQuotas is
//! charged to every quota that limits something it uses (object counts, pods' CPU and
//! memory requests and limits, services' node ports and load balancers, claims'
//! storage) and whose scopes it is in, and refused with upstream's
//! `exceeded quota: ...` when a limit would be passed. Creates are charged what the
//! object uses; updates of services and claims what the new object uses beyond the
//! old one (other kinds' updates, subresources, events and virtual resources are not
//! charged). What an object uses and which quotas it matches come from
//! `apimachinery::quota`, which the quota controller shares, so the two agree.
//!
//! As upstream, a quota enforces what its `status.hard` says, so it limits nothing
//! until the quota controller has first synced it, and a limited resource the status
//! has no usage for yet refuses with `status unknown for quota`. Every matching quota
//! is checked before any is charged; charging is then a compare-and-swap on each
//! quota's `status.used` that checks again, so parallel writes are serialized on the
//! quota and cannot overshoot it, and when that late check refuses, what was already
//! charged to the other quotas is given back. A quota deleted meanwhile is skipped.
//! Usage going down (deletes) is the quota controller's to recompute, as upstream.

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::quantity::Quantity;
use apimachinery::quota::{self, Evaluator, ResourceList};
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{ListParams, Registry, meta};

/// `ResourceQuota`.
pub struct ResourceQuota {
    registry: Registry,
    quotas: Arc<Informer>,
}

fn quotas_resource() -> &'static ResourceInfo {
    resources::find("", "v1", "resourcequotas").expect("served")
}

impl ResourceQuota {
    /// Charges quotas through `registry` (one without admission).
    pub fn new(registry: Registry) -> Self {
        ResourceQuota {
            quotas: Informer::start(registry.clone(), quotas_resource()),
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

/// `name=amount,...` in name order (upstream's `prettyPrint`).
fn describe(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The limits a quota enforces: its status's, set by the quota controller (upstream
/// admission never reads `spec.hard`).
fn status_hard(quota: &Value) -> ResourceList {
    quota::resource_list(&quota["status"]["hard"])
}

/// Whether the operation changes what objects of `evaluator`'s kind use (upstream's
/// evaluators' `Handles`): every create, and updates of services and claims, whose
/// type, ports or storage may change.
fn handles(operation: Operation, evaluator: Evaluator) -> bool {
    match operation {
        Operation::Create => true,
        Operation::Update => matches!(evaluator, Evaluator::Services | Evaluator::Claims),
        Operation::Delete => false,
    }
}

/// Why a quota cannot be charged yet: one of the `restricted` names it limits has no
/// usage in its status (upstream's `hasUsageStats`), as `status unknown for quota`.
fn status_unknown(quota: &Value, restricted: &[String]) -> Option<String> {
    let used = &quota["status"]["used"];
    if restricted.iter().all(|name| !used[name].is_null()) {
        return None;
    }
    let mut names = restricted.to_vec();
    names.sort();
    Some(format!(
        "status unknown for quota: {}, resources: {}",
        meta::name(quota),
        names.join(",")
    ))
}

/// Charges `delta` to `quota` as it stands: the quota with its new `status.used` and
/// what was charged (the delta's names the quota limits), `None` when it limits none
/// of them, or upstream's `exceeded quota` message when a limit would be passed.
fn charge(quota: &Value, delta: &ResourceList) -> Result<Option<(Value, ResourceList)>, String> {
    let hard = status_hard(quota);
    let requested = quota::mask(delta, hard.keys().map(String::as_str));
    if requested.is_empty() {
        return Ok(None);
    }
    let used = quota::resource_list(&quota["status"]["used"]);
    let new_used = quota::add(&used, &requested);
    let exceeded: Vec<&str> = requested
        .keys()
        .filter(|name| new_used.get(*name) > hard.get(*name))
        .map(String::as_str)
        .collect();
    if !exceeded.is_empty() {
        return Err(format!(
            "exceeded quota: {}, requested: {}, used: {}, limited: {}",
            meta::name(quota),
            describe(&quota::mask(&requested, exceeded.iter().copied())),
            describe(&quota::mask(&used, exceeded.iter().copied())),
            describe(&quota::mask(&hard, exceeded.iter().copied())),
        ));
    }
    let mut updated = quota.clone();
    set_used(&mut updated, &new_used);
    Ok(Some((updated, requested)))
}

/// Writes `used` into the quota's `status.used`.
fn set_used(quota: &mut Value, used: &ResourceList) {
    if !quota["status"].is_object() {
        quota["status"] = json!({});
    }
    quota["status"]["used"] = used
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into();
}

impl ResourceQuota {
    /// The namespace's quotas as stored now, by name. The informer only says whether
    /// there are any: a limit the quota controller just synced must count at once.
    async fn current_quotas(&self, namespace: &str) -> Result<Vec<Value>, StatusError> {
        if self.quotas.list_namespace(namespace).is_empty() {
            return Ok(Vec::new());
        }
        let mut list = self
            .registry
            .list(quotas_resource(), Some(namespace), &ListParams::default())
            .await?;
        let mut quotas = match list["items"].take() {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        quotas.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        Ok(quotas)
    }

    /// Gives back what `charged` lists, after a later quota refused the write (best
    /// effort: the quota controller's next full sync corrects what this misses).
    async fn release(&self, namespace: &str, charged: &[(String, ResourceList)]) {
        for (name, amount) in charged {
            let give_back = |current: &Value| -> Result<Value, StatusError> {
                let mut used = quota::resource_list(&current["status"]["used"]);
                for (resource_name, charged) in amount {
                    if let Some(total) = used.get_mut(resource_name) {
                        *total -= charged;
                        if *total < Quantity::default() {
                            *total = Quantity::default();
                        }
                    }
                }
                let mut updated = current.clone();
                set_used(&mut updated, &used);
                Ok(updated)
            };
            let released = self
                .registry
                .write(quotas_resource(), Some(namespace), name, false, give_back)
                .await;
            if let Err(e) = released
                && !e.is_not_found()
            {
                tracing::warn!(quota = %name, %namespace, error = %e, "could not give back a quota charge");
            }
        }
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
        let (group, plural) = (attributes.resource.group, attributes.resource.plural);
        let evaluator = quota::evaluator(group, plural);
        if !attributes.subresource.is_empty()
            || attributes.namespace.is_empty()
            || quota::is_ignored(group, plural)
            || !handles(attributes.operation, evaluator)
        {
            return Ok(());
        }
        let namespace = attributes.namespace;
        let quotas = self.current_quotas(namespace).await?;
        if quotas.is_empty() {
            return Ok(());
        }
        let now = now();
        let usage = quota::usage(group, plural, object, now);
        let old = attributes
            .old
            .filter(|_| attributes.operation == Operation::Update);
        let old_usage = old.map(|o| quota::usage(group, plural, o, now));
        // the quotas limiting something this object uses, in whose scopes it is
        // (upstream's evaluator `Matches`), with what each is to be charged
        let mut plan: Vec<(&Value, ResourceList)> = Vec::new();
        for quota in &quotas {
            let hard = status_hard(quota);
            if !quota::quota_matches(group, plural, &hard, quota, object) {
                continue;
            }
            let restricted =
                quota::matching_resources(group, plural, hard.keys().map(String::as_str));
            // a pod must state what the quota limits
            if evaluator == Evaluator::Pods
                && let Err(why) =
                    quota::pod_constraints(object, restricted.iter().map(String::as_str))
            {
                return Err(
                    attributes.forbidden(format!("failed quota: {}: {why}", meta::name(quota)))
                );
            }
            if let Some(why) = status_unknown(quota, &restricted) {
                return Err(attributes.forbidden(why));
            }
            // an update is charged what it adds to an old object the quota counted
            let mut delta = match (old, &old_usage) {
                (Some(old), Some(old_usage))
                    if quota::quota_matches(group, plural, &hard, quota, old) =>
                {
                    quota::subtract_non_negative(&usage, old_usage)
                }
                _ => usage.clone(),
            };
            // nothing is charged for what the object does not use
            delta.retain(|_, amount| !amount.is_zero());
            if !delta.is_empty() {
                plan.push((quota, delta));
            }
        }
        // every quota is checked before any is charged
        for (quota, delta) in &plan {
            charge(quota, delta).map_err(|why| attributes.forbidden(why))?;
        }
        if attributes.dry_run {
            return Ok(());
        }
        let mut charged: Vec<(String, ResourceList)> = Vec::new();
        for (quota, delta) in &plan {
            let name = meta::name(quota);
            // checked again against what is stored now: parallel writes may have used
            // what was left
            let write = |current: &Value| -> Result<Value, StatusError> {
                match charge(current, delta) {
                    Ok(Some((updated, _))) => Ok(updated),
                    Ok(None) => Ok(current.clone()),
                    Err(why) => Err(attributes.forbidden(why)),
                }
            };
            match self
                .registry
                .write(quotas_resource(), Some(namespace), name, false, write)
                .await
            {
                Ok(updated) => {
                    let hard = status_hard(&updated);
                    charged.push((
                        name.to_owned(),
                        quota::mask(delta, hard.keys().map(String::as_str)),
                    ));
                }
                // deleted meanwhile: it limits nothing any more
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    self.release(namespace, &charged).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity::parse(v).unwrap()))
            .collect()
    }

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
        let scoped = json!({"spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]},
            "status": {"hard": {"pods": "1"}, "used": {"pods": "0"}}});
        let hard = status_hard(&scoped);
        assert!(!quota::quota_matches("", "pods", &hard, &scoped, &pod));
        assert!(quota::quota_matches(
            "",
            "pods",
            &hard,
            &scoped,
            &json!({"spec": {"containers": [{"name": "a"}]}})
        ));
    }

    #[test]
    fn only_the_status_limits_count() {
        // not yet synced by the controller: the quota limits nothing
        let unsynced = json!({"metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "0"}}});
        let hard = status_hard(&unsynced);
        assert!(!quota::quota_matches(
            "",
            "configmaps",
            &hard,
            &unsynced,
            &json!({})
        ));
        assert_eq!(charge(&unsynced, &list(&[("configmaps", "1")])), Ok(None));
        // synced limits without usage yet: status unknown, names sorted
        let unknown = json!({"metadata": {"name": "q"},
            "status": {"hard": {"services": "1", "count/services": "1", "services.nodeports": "1"},
                "used": {"services": "0"}}});
        let restricted = quota::matching_resources(
            "",
            "services",
            ["services.nodeports", "services", "count/services"],
        );
        assert_eq!(
            status_unknown(&unknown, &restricted).as_deref(),
            Some(
                "status unknown for quota: q, resources: count/services,services,services.nodeports"
            )
        );
        assert_eq!(status_unknown(&unknown, &["services".to_owned()]), None);
    }

    #[test]
    fn charges_add_to_the_status_or_name_what_they_exceed() {
        let q = json!({"metadata": {"name": "few"},
            "spec": {"hard": {"configmaps": "100"}},
            "status": {"hard": {"configmaps": "3", "secrets": "1"}, "used": {"configmaps": "2", "secrets": "1"}}});
        let (updated, charged) =
            charge(&q, &list(&[("configmaps", "1"), ("count/configmaps", "1")]))
                .unwrap()
                .unwrap();
        assert_eq!(updated["status"]["used"]["configmaps"], "3");
        assert_eq!(updated["status"]["used"]["secrets"], "1");
        assert_eq!(charged, list(&[("configmaps", "1")]));
        assert_eq!(
            charge(&updated, &list(&[("configmaps", "1")])),
            Err("exceeded quota: few, requested: configmaps=1, used: configmaps=3, limited: configmaps=3".to_owned())
        );
        assert_eq!(charge(&q, &list(&[("pods", "1")])), Ok(None));
    }

    #[test]
    fn only_creates_and_service_and_claim_updates_are_charged() {
        assert!(handles(Operation::Create, Evaluator::ObjectCount));
        assert!(handles(Operation::Create, Evaluator::Pods));
        assert!(handles(Operation::Update, Evaluator::Services));
        assert!(handles(Operation::Update, Evaluator::Claims));
        assert!(!handles(Operation::Update, Evaluator::Pods));
        assert!(!handles(Operation::Update, Evaluator::ObjectCount));
        assert!(!handles(Operation::Delete, Evaluator::Services));
    }
}
