//! storage.k8s.io/v1 StorageClasses: upstream's pkg/apis/storage/validation
//! `ValidateStorageClass` and `ValidateStorageClassUpdate`: a provisioner that is a
//! qualified name, known reclaim policy and binding mode, and none of provisioner,
//! parameters, reclaimPolicy or volumeBindingMode changing once created.

use apimachinery::errors::FieldError;
use apimachinery::labels;
use serde_json::Value;

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A new or updated StorageClass.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "storageclasses" {
        return errors;
    }
    let provisioner = text(object, "provisioner");
    if provisioner.is_empty() {
        errors.push(FieldError::required("provisioner", ""));
    } else {
        for message in labels::is_qualified_name(&provisioner.to_ascii_lowercase()) {
            errors.push(FieldError::invalid("provisioner", provisioner, message));
        }
    }
    if let Some(policy) = object.get("reclaimPolicy").and_then(Value::as_str)
        && !["Delete", "Retain"].contains(&policy)
    {
        errors.push(FieldError::not_supported(
            "reclaimPolicy",
            policy,
            &["Delete", "Retain"],
        ));
    }
    if let Some(mode) = object.get("volumeBindingMode").and_then(Value::as_str)
        && !["Immediate", "WaitForFirstConsumer"].contains(&mode)
    {
        errors.push(FieldError::not_supported(
            "volumeBindingMode",
            mode,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    errors
}

/// What a StorageClass may not change.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "storageclasses" {
        return errors;
    }
    let absent_is_empty = |v: &Value, f: &str| {
        v.get(f)
            .filter(|p| !p.is_null() && p.as_object().is_none_or(|m| !m.is_empty()))
            .cloned()
    };
    if absent_is_empty(new, "parameters") != absent_is_empty(old, "parameters") {
        errors.push(FieldError::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    if text(new, "provisioner") != text(old, "provisioner") {
        errors.push(FieldError::forbidden(
            "provisioner",
            "updates to provisioner are forbidden.",
        ));
    }
    if text(new, "reclaimPolicy") != text(old, "reclaimPolicy") {
        errors.push(FieldError::forbidden(
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    if text(new, "volumeBindingMode") != text(old, "volumeBindingMode") {
        errors.push(FieldError::invalid(
            "volumeBindingMode",
            text(new, "volumeBindingMode"),
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
    async fn storage_classes() {
        let t = Tester::new("storage.k8s.io", "v1", "storageclasses").await;
        let created = t
            .create_valid(json!({"metadata": {"name": "fast"}, "provisioner": "csi.example.com", "parameters": {"type": "ssd"}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "s1"}}),
            r#"StorageClass.storage.k8s.io "s1" is invalid: provisioner: Required value"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "s2"}, "provisioner": "x", "reclaimPolicy": "Recycle"}),
            r#"StorageClass.storage.k8s.io "s2" is invalid: reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#,
        )
        .await;
        let mut changed = created.clone();
        changed["parameters"] = json!({"type": "hdd"});
        t.update_invalid(
            changed,
            r#"StorageClass.storage.k8s.io "fast" is invalid: parameters: Forbidden: updates to parameters are forbidden."#,
        )
        .await;
        let mut labelled = created.clone();
        labelled["metadata"]["labels"] = json!({"tier": "gold"});
        t.update_valid(labelled).await;
    }
}
