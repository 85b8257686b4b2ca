//! Upstream's default RBAC policy (the `rbac/bootstrap-roles` post-start hook): the
//! ClusterRoles, ClusterRoleBindings and kube-system/kube-public Roles and RoleBindings
//! every cluster starts with, read from `bootstrap_policy.txt` (our own line format,
//! described at its top) and reconciled at start: a missing object is created, and one
//! still annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` gets back the
//! rules or subjects it lacks. Objects a user changed and un-annotated are left alone.

use apimachinery::errors::StatusError;
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Map, Value, json};

use super::rbac::{PolicyRule, uncovered};
use crate::registry::{Registry, meta};

/// The policy, in the line format its header describes.
const POLICY: &str = include_str!("bootstrap_policy.txt");

const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The policy's objects, in file order: RBAC v1 objects with apiVersion and kind.
pub fn objects() -> Vec<Value> {
    parse(POLICY).unwrap_or_else(|e| panic!("bootstrap_policy.txt: {e}"))
}

/// The rules of the ClusterRole `name` in the policy (the Node authorizer uses
/// `system:node`'s).
pub fn cluster_role_rules(name: &str) -> Vec<PolicyRule> {
    objects()
        .into_iter()
        .find(|o| o["kind"] == "ClusterRole" && meta::name(o) == name)
        .map(|o| serde_json::from_value(o["rules"].clone()).unwrap_or_default())
        .unwrap_or_default()
}

fn parse(text: &str) -> Result<Vec<Value>, String> {
    let mut objects: Vec<Value> = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", number + 1);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens[0] {
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => {
                objects.push(header(&tokens).map_err(at)?);
            }
            "rule" | "url" | "aggregate" | "subject" => {
                let object = objects
                    .last_mut()
                    .ok_or_else(|| at("a body line before any object".into()))?;
                body_line(object, &tokens).map_err(at)?;
            }
            other => return Err(at(format!("unknown line kind {other:?}"))),
        }
    }
    Ok(objects)
}

fn list(text: &str) -> Vec<Value> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Value::from(if s == "core" { "" } else { s }))
        .collect()
}

fn header(tokens: &[&str]) -> Result<Value, String> {
    let kind = tokens[0];
    let full_name = tokens.get(1).ok_or("a name is required")?;
    let (namespace, name) = match kind {
        "Role" | "RoleBinding" => full_name
            .split_once('/')
            .ok_or("a namespaced object is written <namespace>/<name>")?,
        _ => ("", *full_name),
    };
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut rest = &tokens[2..];
    let mut role_ref = None;
    if kind.ends_with("Binding") {
        let target = rest.first().ok_or("a binding names its role")?;
        let (ref_kind, ref_name) = match target.split_once(':') {
            Some((k @ ("Role" | "ClusterRole"), n)) => (k, n),
            _ => ("ClusterRole", *target),
        };
        role_ref = Some(json!({
            "apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name
        }));
        rest = &rest[1..];
    }
    let mut bootstrapping = true;
    let mut autoupdate = true;
    let mut aggregated = false;
    for token in rest {
        if let Some(label) = token.strip_prefix("label:") {
            let (k, v) = label.split_once('=').ok_or("label:<key>=<value>")?;
            labels.insert(k.into(), v.into());
        } else if let Some(annotation) = token.strip_prefix("annotation:") {
            let (k, v) = annotation
                .split_once('=')
                .ok_or("annotation:<key>=<value>")?;
            annotations.insert(k.into(), v.into());
        } else if *token == "nolabel" {
            bootstrapping = false;
        } else if *token == "noautoupdate" {
            autoupdate = false;
        } else if *token == "aggregated" {
            aggregated = true;
        } else {
            return Err(format!("unknown header token {token:?}"));
        }
    }
    if bootstrapping {
        labels.insert(BOOTSTRAPPING_LABEL.into(), "rbac-defaults".into());
    }
    if autoupdate {
        annotations.insert(AUTOUPDATE_ANNOTATION.into(), "true".into());
    }
    let mut metadata = json!({ "name": name });
    if !namespace.is_empty() {
        metadata["namespace"] = namespace.into();
    }
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    let mut object = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
    });
    match role_ref {
        Some(role_ref) => object["roleRef"] = role_ref,
        None => object["rules"] = json!([]),
    }
    if aggregated {
        object["aggregationRule"] = json!({ "clusterRoleSelectors": [] });
    }
    Ok(object)
}

fn body_line(object: &mut Value, tokens: &[&str]) -> Result<(), String> {
    let field = |i: usize| {
        tokens
            .get(i)
            .copied()
            .ok_or_else(|| format!("{} needs more fields", tokens[0]))
    };
    match tokens[0] {
        "rule" => {
            let mut rule = json!({
                "verbs": list(field(1)?),
                "apiGroups": list(field(2)?),
                "resources": list(field(3)?),
            });
            if let Some(names) = tokens.get(4) {
                let names = names
                    .strip_prefix("names:")
                    .ok_or("the 5th field is names:")?;
                rule["resourceNames"] = list(names).into();
            }
            push(object, "rules", rule)
        }
        "url" => push(
            object,
            "rules",
            json!({ "verbs": list(field(1)?), "nonResourceURLs": list(field(2)?) }),
        ),
        "aggregate" => {
            let mut labels = Map::new();
            for pair in field(1)?.split(',') {
                let (k, v) = pair.split_once('=').ok_or("aggregate <key>=<value>")?;
                labels.insert(k.into(), v.into());
            }
            if object.get("aggregationRule").is_none() {
                object["aggregationRule"] = json!({ "clusterRoleSelectors": [] });
            }
            let selectors = &mut object["aggregationRule"]["clusterRoleSelectors"];
            match selectors.as_array_mut() {
                Some(list) => list.push(json!({ "matchLabels": labels })),
                None => return Err("aggregate on an object without aggregationRule".into()),
            }
            Ok(())
        }
        "subject" => {
            let kind = field(1)?;
            let name = field(2)?;
            let subject = match kind {
                "ServiceAccount" => {
                    let (namespace, name) = name
                        .split_once('/')
                        .ok_or("subject ServiceAccount <namespace>/<name>")?;
                    json!({ "kind": kind, "name": name, "namespace": namespace })
                }
                "User" | "Group" => json!({
                    "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name
                }),
                other => return Err(format!("unknown subject kind {other:?}")),
            };
            push(object, "subjects", subject)
        }
        _ => unreachable!("only body lines reach body_line"),
    }
}

fn push(object: &mut Value, field: &str, item: Value) -> Result<(), String> {
    if object.get(field).is_none() {
        object[field] = json!([]);
    }
    object[field]
        .as_array_mut()
        .ok_or_else(|| format!("{field} is not a list"))?
        .push(item);
    Ok(())
}

fn resource_of(kind: &str) -> &'static ResourceInfo {
    let plural = match kind {
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        _ => "rolebindings",
    };
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC kinds are served")
}

/// Creates what is missing of the policy and restores what an auto-updated object
/// lacks (upstream's reconciliation at start-up).
pub async fn reconcile(registry: &Registry) -> Result<(), StatusError> {
    for wanted in objects() {
        let resource = resource_of(wanted["kind"].as_str().unwrap_or_default());
        let namespace = meta::namespace(&wanted).to_owned();
        let namespace = (!namespace.is_empty()).then_some(namespace.as_str());
        let name = meta::name(&wanted).to_owned();
        let existing = match registry.get(resource, namespace, &name).await {
            Ok(existing) => existing,
            Err(e) if e.is_not_found() => {
                match registry.create(resource, namespace, wanted, false).await {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if meta::annotation(&existing, AUTOUPDATE_ANNOTATION) != Some("true") {
            continue;
        }
        if let Some(updated) = restored(&existing, &wanted) {
            match registry
                .update(
                    resource,
                    namespace,
                    &name,
                    updated,
                    crate::registry::Part::Main,
                    false,
                )
                .await
            {
                Ok(_) => {}
                // someone else changed it meanwhile: the next start tries again
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// `existing` with the rules or subjects of `wanted` it lacks, or None when it lacks
/// nothing.
fn restored(existing: &Value, wanted: &Value) -> Option<Value> {
    let mut updated = existing.clone();
    let mut changed = false;
    if let Some(wanted_rules) = wanted.get("rules") {
        let have: Vec<PolicyRule> =
            serde_json::from_value(existing["rules"].clone()).unwrap_or_default();
        let want: Vec<PolicyRule> =
            serde_json::from_value(wanted_rules.clone()).unwrap_or_default();
        if !uncovered(&have, &want).is_empty() {
            let mut rules = existing["rules"].as_array().cloned().unwrap_or_default();
            for (rule, value) in want
                .iter()
                .zip(wanted_rules.as_array().into_iter().flatten())
            {
                if !uncovered(&have, std::slice::from_ref(rule)).is_empty() {
                    rules.push(value.clone());
                }
            }
            updated["rules"] = rules.into();
            changed = true;
        }
    }
    if let Some(wanted_subjects) = wanted.get("subjects").and_then(Value::as_array) {
        let mut subjects = existing["subjects"].as_array().cloned().unwrap_or_default();
        for subject in wanted_subjects {
            if !subjects.contains(subject) {
                subjects.push(subject.clone());
                changed = true;
            }
        }
        updated["subjects"] = subjects.into();
    }
    changed.then_some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_parses_into_upstream_objects() {
        let objects = objects();
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && meta::name(o) == name)
                .unwrap_or_else(|| panic!("{kind} {name}"))
        };
        let admin = find("ClusterRole", "cluster-admin");
        assert_eq!(admin["rules"][0]["verbs"], json!(["*"]));
        assert_eq!(
            admin["metadata"]["labels"][BOOTSTRAPPING_LABEL],
            "rbac-defaults"
        );
        let binding = find("ClusterRoleBinding", "cluster-admin");
        assert_eq!(binding["roleRef"]["name"], "cluster-admin");
        assert_eq!(binding["subjects"][0]["name"], "system:masters");
        assert_eq!(binding["subjects"][0]["kind"], "Group");
        let public = find("ClusterRole", "system:public-info-viewer");
        let urls = public["rules"][0]["nonResourceURLs"].as_array().unwrap();
        assert!(urls.contains(&json!("/healthz")));
        let edit = find("ClusterRole", "edit");
        assert!(edit["aggregationRule"]["clusterRoleSelectors"].is_array());
        for object in &objects {
            let kind = object["kind"].as_str().unwrap();
            if kind.ends_with("Binding") {
                assert!(object["roleRef"]["name"].is_string(), "{object}");
            }
        }
        // every object validates as upstream would
        for object in objects {
            let resource = resource_of(object["kind"].as_str().unwrap());
            let errors = crate::registry::strategy::validate(resource, &object);
            assert!(errors.is_empty(), "{object}: {errors:?}");
        }
        assert!(!cluster_role_rules("system:node").is_empty());
    }

    #[test]
    fn restoring_adds_missing_rules_and_subjects_only() {
        let wanted = json!({"rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]}]});
        let existing = json!({"metadata": {"name": "r"}, "rules": [
            {"verbs": ["get", "watch"], "apiGroups": [""], "resources": ["pods"]}]});
        let updated = restored(&existing, &wanted).unwrap();
        assert_eq!(updated["rules"].as_array().unwrap().len(), 2);
        assert_eq!(updated["rules"][1]["resources"], json!(["nodes"]));
        assert_eq!(restored(&updated, &wanted), None);
    }
}
