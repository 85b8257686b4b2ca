//! apps/v1 beyond the pod template and selector checks of [`super::super::workloads`]:
//! upstream's pkg/apis/apps/validation for update strategies, history and deadline
//! fields, the StatefulSet pod management policy, templates whose pods always restart,
//! and selectors that never change after creation.

use apimachinery::errors::{BadValue, FieldError};
use serde_json::Value;

use super::policy::validate_int_or_percent;

fn non_negative(spec: &Value, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(n) = spec.get(field).and_then(Value::as_i64)
        && n < 0
    {
        errors.push(FieldError::invalid(
            format!("spec.{field}"),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

fn is_zero(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s == "0%" || s == "0",
        _ => false,
    }
}

fn validate_deployment(spec: &Value, errors: &mut Vec<FieldError>) {
    let strategy = &spec["strategy"];
    let kind = strategy.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Recreate" => {
            if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                errors.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let rolling = &strategy["rollingUpdate"];
            let surge = rolling.get("maxSurge");
            let unavailable = rolling.get("maxUnavailable");
            if let Some(surge) = surge {
                validate_int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge", errors);
            }
            if let Some(unavailable) = unavailable {
                validate_int_or_percent(
                    unavailable,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    errors,
                );
            }
            if is_zero(surge) && is_zero(unavailable) {
                let shown = match unavailable {
                    Some(Value::String(s)) => BadValue::String(s.clone()),
                    _ => BadValue::Int(0),
                };
                errors.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    shown,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    for field in [
        "revisionHistoryLimit",
        "minReadySeconds",
        "progressDeadlineSeconds",
    ] {
        non_negative(spec, field, errors);
    }
    if let (Some(deadline), Some(min_ready)) = (
        spec.get("progressDeadlineSeconds").and_then(Value::as_i64),
        spec.get("minReadySeconds").and_then(Value::as_i64),
    ) && deadline <= min_ready
    {
        errors.push(FieldError::invalid(
            "spec.progressDeadlineSeconds",
            deadline,
            "must be greater than minReadySeconds",
        ));
    }
}

fn one_of(
    spec: &Value,
    pointer: &str,
    field: &str,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) {
    if let Some(value) = spec.pointer(pointer).and_then(Value::as_str)
        && !allowed.contains(&value)
    {
        errors.push(FieldError::not_supported(field, value, allowed));
    }
}

/// A new or updated workload of apps/v1.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    match plural {
        "deployments" => validate_deployment(spec, &mut errors),
        "statefulsets" => {
            one_of(
                spec,
                "/podManagementPolicy",
                "spec.podManagementPolicy",
                &["OrderedReady", "Parallel"],
                &mut errors,
            );
            one_of(
                spec,
                "/updateStrategy/type",
                "spec.updateStrategy.type",
                &["OnDelete", "RollingUpdate"],
                &mut errors,
            );
            non_negative(spec, "revisionHistoryLimit", &mut errors);
            non_negative(spec, "minReadySeconds", &mut errors);
        }
        "daemonsets" => {
            one_of(
                spec,
                "/updateStrategy/type",
                "spec.updateStrategy.type",
                &["OnDelete", "RollingUpdate"],
                &mut errors,
            );
            non_negative(spec, "revisionHistoryLimit", &mut errors);
            non_negative(spec, "minReadySeconds", &mut errors);
        }
        "replicasets" => non_negative(spec, "minReadySeconds", &mut errors),
        _ => return errors,
    }
    // These controllers keep their pods running: the template restarts them Always.
    if let Some(restart) = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        && restart != "Always"
    {
        errors.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            restart,
            &["Always"],
        ));
    }
    errors
}

/// A selector as Go's `%#v` prints a `*metav1.LabelSelector` in "field is immutable".
fn selector_display(selector: &Value) -> BadValue {
    let labels: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                apimachinery::errors::go_quote(k),
                apimachinery::errors::go_quote(v.as_str().unwrap_or(""))
            )
        })
        .collect();
    let expressions = if selector["matchExpressions"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        "[]v1.LabelSelectorRequirement{...}"
    } else {
        "[]v1.LabelSelectorRequirement(nil)"
    };
    BadValue::Display(format!(
        "&v1.LabelSelector{{MatchLabels:map[string]string{{{}}}, MatchExpressions:{expressions}}}",
        labels.join(", ")
    ))
}

/// What an apps/v1 workload may not change: its selector.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    if !["deployments", "replicasets", "statefulsets", "daemonsets"].contains(&plural) {
        return Vec::new();
    }
    let selector = |o: &Value| o.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
    if selector(new) == selector(old) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.selector",
        selector_display(&selector(new)),
        "field is immutable",
    )]
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    fn template() -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[tokio::test]
    async fn deployments() {
        let t = Tester::new("apps", "v1", "deployments").await;
        let created = t
            .create_valid(json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "d1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
            r#"Deployment.apps "d1" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "d2"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
                "strategy": {"type": "BlueGreen"}}}),
            r#"Deployment.apps "d2" is invalid: spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate""#,
        )
        .await;
        let mut moved = created.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "api"}});
        moved["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
        t.update_invalid(
            moved,
            r#"Deployment.apps "web" is invalid: spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:map[string]string{"app":"api"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
        )
        .await;
    }

    #[tokio::test]
    async fn stateful_sets_and_daemon_sets() {
        let t = Tester::new("apps", "v1", "statefulsets").await;
        let mut never = template();
        never["spec"]["restartPolicy"] = json!("Never");
        t.create_invalid(
            json!({"metadata": {"name": "s1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": never, "podManagementPolicy": "Random"}}),
            r#"StatefulSet.apps "s1" is invalid: [spec.podManagementPolicy: Unsupported value: "Random": supported values: "OrderedReady", "Parallel", spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"]"#,
        )
        .await;
        let d = Tester::new("apps", "v1", "daemonsets").await;
        d.create_valid(json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}))
            .await;
    }
}
