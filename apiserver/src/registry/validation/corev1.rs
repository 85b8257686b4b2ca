//! core/v1 kinds beyond pods, Services and ConfigMap/Secret keys: upstream's
//! pkg/apis/core/validation for PersistentVolumeClaims (`ValidatePersistentVolumeClaimSpec`:
//! access modes and a storage request) and Secrets of the built-in types (the keys each
//! type requires, `ValidateSecret`, and a type that never changes).

use apimachinery::errors::FieldError;
use serde_json::Value;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_claim_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let modes: Vec<&str> = spec["accessModes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if modes.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for mode in &modes {
        if !ACCESS_MODES.contains(mode) {
            errors.push(FieldError::not_supported(
                format!("{path}.accessModes"),
                *mode,
                ACCESS_MODES,
            ));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.len() > 1 {
        errors.push(FieldError::forbidden(
            format!("{path}.accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    // A claim bound to a data source may size itself from it; otherwise it asks.
    if spec.pointer("/resources/requests/storage").is_none() {
        errors.push(FieldError::required(
            format!("{path}.resources[storage]"),
            "",
        ));
    }
}

/// The keys a Secret of a built-in type must carry (after `stringData` is folded in).
fn validate_secret(secret: &Value, errors: &mut Vec<FieldError>) {
    let has = |key: &str| {
        secret
            .pointer(&format!(
                "/data/{}",
                key.replace('~', "~0").replace('/', "~1")
            ))
            .is_some()
    };
    let required: &[&str] = match secret.get("type").and_then(Value::as_str).unwrap_or("") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/service-account-token" => {
            let annotated = secret
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !annotated {
                errors.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
            &[]
        }
        _ => &[],
    };
    for key in required {
        if !has(key) {
            errors.push(FieldError::required(format!("data[{key}]"), ""));
        }
    }
}

/// A new or updated core/v1 object.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match plural {
        "persistentvolumeclaims" => validate_claim_spec(&object["spec"], "spec", &mut errors),
        "secrets" => validate_secret(object, &mut errors),
        _ => {}
    }
    errors
}

/// What may not change.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural == "secrets" && new.get("type") != old.get("type") {
        errors.push(FieldError::invalid(
            "type",
            new.get("type").and_then(Value::as_str).unwrap_or(""),
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
    async fn persistent_volume_claims() {
        let t = Tester::new("", "v1", "persistentvolumeclaims").await;
        t.create_valid(json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "c1"}, "spec": {}}),
            r#"PersistentVolumeClaim "c1" is invalid: [spec.accessModes: Required value: at least 1 access mode is required, spec.resources[storage]: Required value]"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "c2"}, "spec": {"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "1Gi"}}}}),
            r#"PersistentVolumeClaim "c2" is invalid: spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#,
        )
        .await;
    }

    #[tokio::test]
    async fn typed_secrets() {
        let t = Tester::new("", "v1", "secrets").await;
        let created = t
            .create_valid(json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c", "tls.key": "k"}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "s1"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Yw=="}}),
            r#"Secret "s1" is invalid: data[tls.key]: Required value"#,
        )
        .await;
        let mut retyped = created.clone();
        retyped["type"] = json!("Opaque");
        t.update_invalid(
            retyped,
            r#"Secret "tls" is invalid: type: Invalid value: "Opaque": field is immutable"#,
        )
        .await;
    }
}
