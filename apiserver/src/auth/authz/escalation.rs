//! RBAC's escalation prevention (upstream's policy-based role and binding storage): a
//! user may write a Role or ClusterRole only with rules they already hold, unless
//! RBAC grants them `escalate` on it; and may bind a role only when they hold its
//! rules, unless RBAC grants them `bind` on it. `system:masters`, and the server's
//! own writes, pass.

use apimachinery::errors::{StatusError, go_quote};
use apimachinery::resources::ResourceInfo;
use serde_json::Value;

use super::Authorizer;
use super::rbac::{PolicyRule, Rbac, uncovered};
use crate::auth::request_info::RequestInfo;
use crate::auth::{MASTERS_GROUP, UserInfo};
use crate::registry::meta;

/// Checks a Role, ClusterRole, RoleBinding or ClusterRoleBinding `object` that `user`
/// is about to store (`old`: what it replaces, on update).
pub async fn check(
    authorizer: &Authorizer,
    rbac: &Rbac,
    user: &UserInfo,
    resource: &ResourceInfo,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), StatusError> {
    if resource.group != "rbac.authorization.k8s.io" || user.in_group(MASTERS_GROUP) {
        return Ok(());
    }
    let namespace = meta::namespace(object);
    let name = meta::name(object);
    let gr = resource.group_resource();
    let (rules, verb, target_resource, target_name) = match resource.plural {
        "roles" | "clusterroles" => {
            // `escalate` lets anything through, as upstream's policy-based storage
            let escalate = RequestInfo::resource(
                "escalate",
                "rbac.authorization.k8s.io",
                resource.plural,
                "",
                namespace,
                name,
            );
            if authorizer.allows(user, &escalate).await {
                return Ok(());
            }
            // an aggregation rule can gather anything: setting or changing one takes
            // full authority (an unchanged one rides along with other edits)
            let aggregation =
                |o: &Value| o.get("aggregationRule").filter(|a| !a.is_null()).cloned();
            if resource.plural == "clusterroles"
                && aggregation(object).is_some()
                && old.is_none_or(|old| aggregation(old) != aggregation(object))
            {
                let everything = PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Default::default()
                };
                let (held, _) = rbac.index().rules_for(user, "");
                if !uncovered(&held, &[everything]).is_empty() {
                    return Err(StatusError::forbidden(
                        &gr,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule",
                    ));
                }
            }
            let rules: Vec<PolicyRule> =
                serde_json::from_value(object["rules"].clone()).unwrap_or_default();
            (rules, "", resource.plural, name.to_owned())
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = object["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = object["roleRef"]["name"].as_str().unwrap_or_default();
            let target = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let allowed = authorizer
                .allows(
                    user,
                    &RequestInfo::resource(
                        "bind",
                        "rbac.authorization.k8s.io",
                        target,
                        "",
                        namespace,
                        role_name,
                    ),
                )
                .await;
            if allowed {
                return Ok(());
            }
            let Some(rules) = rbac.index().role_rules(kind, namespace, role_name) else {
                let what = if kind == "Role" {
                    "role"
                } else {
                    "clusterrole"
                };
                return Err(StatusError::forbidden(
                    &gr,
                    name,
                    format!(
                        "{what}.rbac.authorization.k8s.io {} not found",
                        go_quote(role_name)
                    ),
                ));
            };
            (rules, "", target, role_name.to_owned())
        }
        _ => return Ok(()),
    };
    if !verb.is_empty() {
        let request = RequestInfo::resource(
            verb,
            "rbac.authorization.k8s.io",
            target_resource,
            "",
            namespace,
            &target_name,
        );
        if authorizer.allows(user, &request).await {
            return Ok(());
        }
    }
    let (held, _) = rbac.index().rules_for(user, namespace);
    let missing = uncovered(&held, &rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut described: Vec<String> = missing.iter().map(PolicyRule::compact_string).collect();
    described.sort();
    described.dedup();
    let groups: Vec<String> = user.groups.iter().map(|g| go_quote(g)).collect();
    Err(StatusError::forbidden(
        &gr,
        name,
        format!(
            "user {} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            go_quote(&user.name),
            groups.join(" "),
            described.join("\n")
        ),
    ))
}
