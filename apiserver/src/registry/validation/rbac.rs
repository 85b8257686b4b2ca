//! rbac.authorization.k8s.io/v1: upstream's pkg/apis/rbac/validation and the v1
//! defaults (pkg/apis/rbac/v1/defaults.go). Roles need verbs and resources (or, for
//! ClusterRoles only, non-resource URLs); bindings name a role of the right kind in the
//! RBAC group, and their roleRef never changes.

use apimachinery::errors::{BadValue, FieldError};
use apimachinery::labels;
use serde_json::{Value, json};

const GROUP: &str = "rbac.authorization.k8s.io";

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A Go `[]string` as `%#v` prints it in an error.
fn go_string_slice(values: &[&str]) -> BadValue {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| apimachinery::errors::go_quote(v))
        .collect();
    BadValue::Display(format!("[]string{{{}}}", quoted.join(", ")))
}

/// The v1 defaults: a roleRef and User/Group subjects default to the RBAC group.
pub fn set_defaults(plural: &str, object: &mut Value) {
    if !plural.ends_with("bindings") {
        return;
    }
    if let Some(role_ref) = object.get_mut("roleRef").and_then(Value::as_object_mut)
        && role_ref
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        role_ref.insert("apiGroup".into(), json!(GROUP));
    }
    for subject in object
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(subject) = subject.as_object_mut() else {
            continue;
        };
        let empty = subject
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        if empty && (kind == "User" || kind == "Group") {
            subject.insert("apiGroup".into(), json!(GROUP));
        }
    }
}

fn validate_rule(rule: &Value, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    if strings(&rule["verbs"]).is_empty() {
        errors.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = strings(&rule["nonResourceURLs"]);
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    let names = strings(&rule["resourceNames"]);
    if !urls.is_empty() {
        if namespaced {
            errors.push(FieldError::invalid(
                format!("{path}.nonResourceURLs"),
                go_string_slice(&urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.nonResourceURLs"),
                go_string_slice(&urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    // An empty list is written by clients as `[""]` for the core group, so only a
    // missing or empty list counts as none.
    if rule["apiGroups"].as_array().is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if resources.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !names.is_empty() && resources.len() > 1 {
        errors.push(FieldError::required(
            format!("{path}.resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    let text = |field: &str| subject.get(field).and_then(Value::as_str).unwrap_or("");
    let name = text("name");
    if name.is_empty() {
        errors.push(FieldError::required(format!("{path}.name"), ""));
    }
    match text("kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for message in labels::is_dns1123_subdomain(name) {
                    errors.push(FieldError::invalid(format!("{path}.name"), name, message));
                }
            }
            if !text("apiGroup").is_empty() {
                errors.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    text("apiGroup"),
                    &[""],
                ));
            }
            if !namespaced && text("namespace").is_empty() {
                errors.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    name,
                    format!("{what} name cannot be empty"),
                ));
            }
            if text("apiGroup") != GROUP {
                errors.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    text("apiGroup"),
                    &[GROUP],
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// A new Role, ClusterRole, RoleBinding or ClusterRoleBinding.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match plural {
        "roles" | "clusterroles" => {
            for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
                validate_rule(rule, plural == "roles", &format!("rules[{i}]"), &mut errors);
            }
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &object["roleRef"];
            let text = |field: &str| role_ref.get(field).and_then(Value::as_str).unwrap_or("");
            if text("apiGroup") != GROUP {
                errors.push(FieldError::not_supported(
                    "roleRef.apiGroup",
                    text("apiGroup"),
                    &[GROUP],
                ));
            }
            let kinds: &[&str] = if plural == "rolebindings" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            if !kinds.contains(&text("kind")) {
                errors.push(FieldError::not_supported(
                    "roleRef.kind",
                    text("kind"),
                    kinds,
                ));
            }
            let name = text("name");
            if name.is_empty() {
                errors.push(FieldError::required("roleRef.name", ""));
            } else {
                for message in super::super::meta::validate_name(
                    name,
                    super::super::meta::NameRule::PathSegment,
                ) {
                    errors.push(FieldError::invalid("roleRef.name", name, message));
                }
            }
            for (i, subject) in object["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                validate_subject(
                    subject,
                    plural == "rolebindings",
                    &format!("subjects[{i}]"),
                    &mut errors,
                );
            }
        }
        _ => {}
    }
    errors
}

/// An update: a binding's roleRef is fixed once created.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    if !plural.ends_with("bindings") || new["roleRef"] == old["roleRef"] {
        return Vec::new();
    }
    let text = |field: &str| {
        new["roleRef"]
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    vec![FieldError::invalid(
        "roleRef",
        BadValue::Display(format!(
            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
            apimachinery::errors::go_quote(text("apiGroup")),
            apimachinery::errors::go_quote(text("kind")),
            apimachinery::errors::go_quote(text("name"))
        )),
        "cannot change roleRef",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn roles() {
        let t = Tester::new("rbac.authorization.k8s.io", "v1", "roles").await;
        t.create_valid(json!({"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "r1"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            r#"Role.rbac.authorization.k8s.io "r1" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "r2"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
            r#"Role.rbac.authorization.k8s.io "r2" is invalid: rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "r3"}, "rules": [{"verbs": ["get"], "resources": ["pods"]}]}),
            r#"Role.rbac.authorization.k8s.io "r3" is invalid: rules[0].apiGroups: Required value: resource rules must supply at least one api group"#,
        )
        .await;
        let cluster = Tester::new("rbac.authorization.k8s.io", "v1", "clusterroles").await;
        cluster
            .create_valid(json!({"metadata": {"name": "health"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}))
            .await;
    }

    #[tokio::test]
    async fn bindings() {
        let t = Tester::new("rbac.authorization.k8s.io", "v1", "rolebindings").await;
        let created = t
            .create_valid(json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "reader"},
                "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}))
            .await;
        assert_eq!(created["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(
            created["subjects"][0]["apiGroup"],
            "rbac.authorization.k8s.io"
        );
        t.create_invalid(
            json!({"metadata": {"name": "b1"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Secret", "name": "x"}}),
            r#"RoleBinding.rbac.authorization.k8s.io "b1" is invalid: roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole""#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "b2"}, "roleRef": {"kind": "Role", "name": ""}, "subjects": [{"kind": "Robot", "name": "r"}]}),
            r#"RoleBinding.rbac.authorization.k8s.io "b2" is invalid: [roleRef.name: Required value, subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"]"#,
        )
        .await;
        let mut changed = created.clone();
        changed["roleRef"]["name"] = json!("writer");
        t.update_invalid(
            changed,
            r#"RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"writer"}: cannot change roleRef"#,
        )
        .await;
        let cluster = Tester::new("rbac.authorization.k8s.io", "v1", "clusterrolebindings").await;
        cluster
            .create_invalid(
                json!({"metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
                r#"ClusterRoleBinding.rbac.authorization.k8s.io "c" is invalid: subjects[0].namespace: Required value"#,
            )
            .await;
    }
}
