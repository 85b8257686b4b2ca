//! The ClusterRole aggregation controller, as upstream's `clusterroleaggregation`: a
//! ClusterRole with an `aggregationRule` gets as its rules those of every other
//! ClusterRole its selectors pick (per selector, roles by name; a rule already taken
//! is not repeated), written by server-side apply as the field manager
//! `clusterrole-aggregation-controller`. The set of roles is small and who depends on
//! whom unknown, so any ClusterRole change queues every aggregated role.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};

use crate::Context;
use crate::controller_utils::label_selector;
use crate::informers::{Informer, key_of};
use crate::workqueue::WorkQueue;

/// The controller's name.
pub const NAME: &str = "clusterrole-aggregation-controller";
/// Its service account.
pub const SERVICE_ACCOUNT: &str = "clusterrole-aggregation-controller";
const WORKERS: usize = 5;

/// Why a role could not be aggregated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A selector of the aggregation rule does not parse.
    #[error("{0}")]
    Selector(String),
}

/// Semantic equality of rules: a missing list equals an empty one.
fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

/// The rules `role` aggregates from `roles` (upstream's `syncClusterRole`), or `None`
/// when it has no aggregation rule.
pub fn aggregated_rules(
    role: &ClusterRole,
    roles: &[Arc<ClusterRole>],
) -> Result<Option<Vec<PolicyRule>>, Error> {
    let Some(rule) = &role.aggregation_rule else {
        return Ok(None);
    };
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let selector =
            label_selector(Some(selector)).map_err(|e| Error::Selector(e.to_string()))?;
        let mut matching: Vec<&Arc<ClusterRole>> = roles
            .iter()
            .filter(|r| selector.matches(&r.metadata.labels.clone().unwrap_or_default()))
            .collect();
        matching.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for other in matching {
            if other.metadata.name == role.metadata.name {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !rules.iter().any(|have| same_rule(have, r)) {
                    rules.push(r.clone());
                }
            }
        }
    }
    Ok(Some(rules))
}

struct Controller {
    client: kube::Client,
    roles: Informer<ClusterRole>,
}

impl Controller {
    async fn sync(&self, name: &str) -> Result<(), Error> {
        let Some(role) = self.roles.get("", name) else {
            return Ok(());
        };
        let Some(rules) = aggregated_rules(&role, &self.roles.list())? else {
            return Ok(());
        };
        let current = role.rules.clone().unwrap_or_default();
        if current.len() == rules.len() && current.iter().zip(&rules).all(|(a, b)| same_rule(a, b))
        {
            return Ok(());
        }
        let apply = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        });
        let api: Api<ClusterRole> = Api::all(self.client.clone());
        api.patch(
            name,
            &PatchParams::apply(NAME).force(),
            &Patch::Apply(apply),
        )
        .await?;
        Ok(())
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(Controller {
        client: cx.client.clone(),
        roles: cx.informers.informer::<ClusterRole>(),
    });
    let queue = WorkQueue::<String>::new();
    let (q, roles) = (queue.clone(), controller.roles.clone());
    controller.roles.add_handler(move |_change| {
        for role in roles.list() {
            if role.aggregation_rule.is_some() {
                q.add(key_of(&*role));
            }
        }
    });
    Box::pin(async move {
        controller.roles.wait_synced().await;
        queue
            .run(WORKERS, None, NAME, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, labels: serde_json::Value, rules: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "labels": labels}, "rules": rules}),
            )
            .unwrap(),
        )
    }

    // upstream's TestSyncClusterRole cases
    #[test]
    fn rules_are_gathered_by_selector_then_name_without_repeats() {
        let a = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let b = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let c = json!({"verbs": ["watch"], "apiGroups": [""], "resources": ["secrets"]});
        let roles = vec![
            role("zeta", json!({"agg": "yes"}), json!([a.clone()])),
            role(
                "alpha",
                json!({"agg": "yes"}),
                json!([b.clone(), a.clone()]),
            ),
            role(
                "other",
                json!({"agg": "no", "extra": "x"}),
                json!([c.clone()]),
            ),
        ];
        let aggregated: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": "target", "labels": {"agg": "yes"}},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"agg": "yes"}},
                {"matchLabels": {"extra": "x"}},
                {"matchLabels": {"agg": "yes"}}
            ]}
        }))
        .unwrap();
        let mut all = roles.clone();
        // the aggregated role itself matches its selector and is skipped
        all.push(Arc::new(aggregated.clone()));
        let rules = aggregated_rules(&aggregated, &all).unwrap().unwrap();
        let got = serde_json::to_value(&rules).unwrap();
        assert_eq!(got, json!([b, a, c]));
        assert!(aggregated_rules(&roles[0], &all).unwrap().is_none());
    }

    #[test]
    fn missing_and_empty_lists_are_the_same_rule() {
        let a: PolicyRule =
            serde_json::from_value(json!({"verbs": ["get"], "resources": ["pods"]})).unwrap();
        let b: PolicyRule = serde_json::from_value(
            json!({"verbs": ["get"], "resources": ["pods"], "apiGroups": [], "resourceNames": []}),
        )
        .unwrap();
        assert!(same_rule(&a, &b));
        let c: PolicyRule = serde_json::from_value(
            json!({"verbs": ["get"], "resources": ["pods"], "apiGroups": [""]}),
        )
        .unwrap();
        assert!(!same_rule(&a, &c));
    }
}
