//! autoscaling/v1 and v2 HorizontalPodAutoscalers: upstream's
//! pkg/apis/autoscaling/validation `validateHorizontalPodAutoscalerSpec` (bounds on the
//! replica counts, a complete scale target).

use apimachinery::errors::FieldError;
use serde_json::Value;

/// A new or updated HorizontalPodAutoscaler (either served version).
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "horizontalpodautoscalers" {
        return errors;
    }
    let spec = &object["spec"];
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    // A missing maxReplicas is Go's zero.
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(min) = min
        && min < 1
    {
        errors.push(FieldError::invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|min| max < min) {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for field in ["kind", "name"] {
        let value = spec
            .pointer(&format!("/scaleTargetRef/{field}"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if value.is_empty() {
            errors.push(FieldError::required(
                format!("spec.scaleTargetRef.{field}"),
                "",
            ));
        } else {
            for message in
                super::super::meta::validate_name(value, super::super::meta::NameRule::PathSegment)
            {
                errors.push(FieldError::invalid(
                    format!("spec.scaleTargetRef.{field}"),
                    value,
                    message,
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn horizontal_pod_autoscalers() {
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        for version in ["v1", "v2"] {
            let t = Tester::new("autoscaling", version, "horizontalpodautoscalers").await;
            t.create_valid(json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 5}}))
                .await;
            t.create_invalid(
                json!({"metadata": {"name": "h1"}, "spec": {"scaleTargetRef": target, "minReplicas": 7, "maxReplicas": 5}}),
                r#"HorizontalPodAutoscaler.autoscaling "h1" is invalid: spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`"#,
            )
            .await;
            t.create_invalid(
                json!({"metadata": {"name": "h2"}, "spec": {"scaleTargetRef": {"kind": "Deployment"}, "minReplicas": 0, "maxReplicas": 5}}),
                r#"HorizontalPodAutoscaler.autoscaling "h2" is invalid: [spec.minReplicas: Invalid value: 0: must be greater than or equal to 1, spec.scaleTargetRef.name: Required value]"#,
            )
            .await;
        }
    }
}
