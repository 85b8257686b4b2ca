//! policy/v1 PodDisruptionBudgets: upstream's pkg/apis/policy/validation
//! `ValidatePodDisruptionBudgetSpec`: minAvailable or maxUnavailable (not both), each a
//! non-negative count or a percentage up to 100%, a valid selector, a known
//! unhealthyPodEvictionPolicy.

use apimachinery::errors::{BadValue, FieldError};
use serde_json::Value;

/// Upstream's `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
pub(super) fn validate_int_or_percent(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Number(n) => {
            if n.as_i64().is_some_and(|n| n < 0) {
                errors.push(FieldError::invalid(
                    path,
                    n.as_i64().unwrap_or(0),
                    "must be greater than or equal to 0",
                ));
            }
        }
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits {
                None => errors.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
                Some(d) if d.parse::<u64>().map_or(true, |p| p > 100) => {
                    errors.push(FieldError::invalid(
                        path,
                        s.as_str(),
                        "must not be greater than 100%",
                    ));
                }
                Some(_) => {}
            }
        }
        _ => {}
    }
}

/// A new or updated PodDisruptionBudget.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "poddisruptionbudgets" {
        return errors;
    }
    let spec = &object["spec"];
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errors.push(FieldError::invalid(
            "spec",
            BadValue::Display("policy.PodDisruptionBudgetSpec{...}".into()),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(min) = min {
        validate_int_or_percent(min, "spec.minAvailable", &mut errors);
    }
    if let Some(max) = max {
        validate_int_or_percent(max, "spec.maxUnavailable", &mut errors);
    }
    if let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) {
        let parsed =
            serde_json::from_value::<apimachinery::labels::LabelSelector>(selector.clone())
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    apimachinery::labels::Selector::from_label_selector(Some(&s))
                        .map_err(|e| e.to_string())
                });
        if let Err(why) = parsed {
            errors.push(FieldError::invalid("spec.selector", BadValue::Omitted, why));
        }
    }
    if let Some(policy) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
    {
        const POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];
        if !POLICIES.contains(&policy) {
            errors.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                policy,
                POLICIES,
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn pod_disruption_budgets() {
        let t = Tester::new("policy", "v1", "poddisruptionbudgets").await;
        t.create_valid(json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "p1"}, "spec": {"minAvailable": -1}}),
            r#"PodDisruptionBudget.policy "p1" is invalid: spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "p2"}, "spec": {"maxUnavailable": "150%"}}),
            r#"PodDisruptionBudget.policy "p2" is invalid: spec.maxUnavailable: Invalid value: "150%": must not be greater than 100%"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "p3"}, "spec": {"minAvailable": "half"}}),
            r#"PodDisruptionBudget.policy "p3" is invalid: spec.minAvailable: Invalid value: "half": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "p4"}, "spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            r#"PodDisruptionBudget.policy "p4" is invalid: spec: Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both set"#,
        )
        .await;
    }
}
