//! scheduling.k8s.io/v1 PriorityClasses: upstream's pkg/apis/scheduling/validation:
//! the `system-` prefix is reserved for the two classes the apiserver creates
//! ([`SYSTEM_PRIORITY_CLASSES`]), user classes stay at or below one billion, and
//! neither value nor preemptionPolicy changes after creation.

use apimachinery::errors::FieldError;
use serde_json::Value;

/// The classes upstream's apiserver creates at start (name, value, description).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The highest value a user-defined class may have.
const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// A new or updated PriorityClass.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "priorityclasses" {
        return errors;
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = object.get("value").and_then(Value::as_i64).unwrap_or(0);
    if name.starts_with("system-") {
        let why = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, expected, _)) if *expected != value => {
                Some(format!("value of {name} PriorityClass must be {expected}"))
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            errors.push(FieldError::forbidden(
                "metadata.name",
                format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {why}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errors.push(FieldError::forbidden(
            "value",
            format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    if let Some(policy) = object.get("preemptionPolicy").and_then(Value::as_str)
        && !["Never", "PreemptLowerPriority"].contains(&policy)
    {
        errors.push(FieldError::not_supported(
            "preemptionPolicy",
            policy,
            &["Never", "PreemptLowerPriority"],
        ));
    }
    errors
}

/// What a PriorityClass may not change.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "priorityclasses" {
        return errors;
    }
    if new.get("value") != old.get("value") {
        errors.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    if new.get("preemptionPolicy") != old.get("preemptionPolicy") {
        errors.push(FieldError::invalid(
            "preemptionPolicy",
            new.get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or(""),
            "field is immutable",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn priority_classes() {
        let t = Tester::new("scheduling.k8s.io", "v1", "priorityclasses").await;
        let created = t
            .create_valid(
                json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}),
            )
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "system-mine"}, "value": 5}),
            r#"PriorityClass.scheduling.k8s.io "system-mine" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "huge"}, "value": 2_000_000_000_i64}),
            r#"PriorityClass.scheduling.k8s.io "huge" is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000"#,
        )
        .await;
        assert_eq!(
            t.create_valid(json!({"metadata": {"name": "low"}, "value": 1}))
                .await["preemptionPolicy"],
            "PreemptLowerPriority"
        );
        // The system classes are created once, and again is a no-op.
        t.registry.ensure_system_priority_classes().await.unwrap();
        t.registry.ensure_system_priority_classes().await.unwrap();
        let critical = t
            .registry
            .get(t.resource, None, "system-cluster-critical")
            .await
            .unwrap();
        assert_eq!(critical["value"], 2_000_000_000_i64);
        let mut raised = created.clone();
        raised["value"] = json!(2000);
        t.update_invalid(
            raised,
            r#"PriorityClass.scheduling.k8s.io "high" is invalid: value: Forbidden: may not be changed in an update."#,
        )
        .await;
    }
}
