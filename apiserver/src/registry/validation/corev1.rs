//! core/v1 kinds beyond pods, Services and ConfigMap/Secret keys: upstream's
//! pkg/apis/core/validation for PersistentVolumeClaims (`ValidatePersistentVolumeClaimSpec`:
//! access modes and a storage request) and Secrets of the built-in types (the keys each
//! type requires, `ValidateSecret`, and a type that never changes).

use apimachinery::errors::{BadValue, FieldError};
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
    if plural == "persistentvolumeclaims" {
        validate_claim_update(new, old, &mut errors);
    }
    if plural == "persistentvolumes" {
        validate_volume_update(new, old, &mut errors);
    }
    errors
}

/// Upstream's `ValidateImmutableField` of an optional string (`volumeMode`).
fn immutable_string(new: &Value, old: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if new != old {
        errors.push(FieldError::invalid(
            path,
            new.as_str().map(str::to_owned),
            "field is immutable",
        ));
    }
}

/// The part of `spec` that must stay as it was: all of it but `keep` (the fields an
/// update may change, put back from `old`).
fn spec_without(spec: &Value, old_spec: &Value, keep: &[&str]) -> Value {
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        for key in keep {
            match old_spec.get(*key) {
                Some(v) => map.insert((*key).to_owned(), v.clone()),
                None => map.remove(*key),
            };
        }
    }
    spec
}

/// Upstream's `ValidatePersistentVolumeClaimUpdate`: a claim's spec is fixed once made,
/// but for its `volumeName` (set once, by the binder), a class given to a claim that
/// had none (the retroactive default), the storage request of a bound claim (which
/// may only grow) and its `volumeAttributesClassName`.
fn validate_claim_update(new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    let mut changeable = vec!["volumeAttributesClassName"];
    if old_spec["volumeName"].as_str().unwrap_or("").is_empty() {
        changeable.push("volumeName");
    }
    let old_beta = old
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_CLASS));
    let new_beta = new
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_CLASS));
    if old_beta.is_some()
        && new_beta == old_beta
        && old_spec["storageClassName"].is_null()
        && new_spec["storageClassName"] == *old_beta.unwrap_or(&Value::Null)
    {
        // the beta annotation's class moved into the field
        changeable.push("storageClassName");
    } else {
        if new_beta != old_beta {
            errors.push(FieldError::invalid(
                "metadata.annotations.volume.beta.kubernetes.io/storage-class",
                new_beta.and_then(Value::as_str).unwrap_or(""),
                "field is immutable",
            ));
        }
        if old_beta.is_none()
            && old_spec["storageClassName"].is_null()
            && !new_spec["storageClassName"].is_null()
        {
            // the retroactive default class
            changeable.push("storageClassName");
        }
    }
    let mut compared_new = spec_without(new_spec, old_spec, &changeable);
    let compared_old = spec_without(old_spec, old_spec, &changeable);
    if new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound")
        && let Some(requests) = compared_new
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
    {
        match old_spec.pointer("/resources/requests/storage") {
            Some(size) => requests.insert("storage".to_owned(), size.clone()),
            None => requests.remove("storage"),
        };
    }
    if compared_new != compared_old {
        errors.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |spec: &Value| {
        spec.pointer("/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(|q| apimachinery::quantity::Quantity::parse(q).ok())
    };
    if let (Some(new_size), Some(old_size)) = (size(new_spec), size(old_spec))
        && new_size < old_size
    {
        errors.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
    immutable_string(
        &new_spec["volumeMode"],
        &old_spec["volumeMode"],
        "volumeMode",
        errors,
    );
}

/// Upstream's `ValidatePersistentVolumeUpdate`: a volume's source and mode are fixed
/// once made, and its node affinity once set.
fn validate_volume_update(new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    // what is not the volume source (upstream's PersistentVolumeSource is inline)
    const NOT_SOURCE: &[&str] = &[
        "accessModes",
        "capacity",
        "claimRef",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "mountOptions",
        "volumeMode",
        "nodeAffinity",
        "volumeAttributesClassName",
    ];
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    if spec_without(new_spec, old_spec, NOT_SOURCE) != spec_without(old_spec, old_spec, NOT_SOURCE)
    {
        errors.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    immutable_string(
        &new_spec["volumeMode"],
        &old_spec["volumeMode"],
        "volumeMode",
        errors,
    );
    if !old_spec["nodeAffinity"].is_null() && new_spec["nodeAffinity"] != old_spec["nodeAffinity"] {
        errors.push(FieldError::invalid(
            "nodeAffinity",
            BadValue::Omitted,
            "field is immutable",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn claims_and_volumes_keep_their_specs() {
        let claims = Tester::new("", "v1", "persistentvolumeclaims").await;
        let claim = claims
            .create_valid(json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
            .await;
        // the binder's volumeName and the retroactive default class are allowed once
        let mut bound = claim.clone();
        bound["spec"]["volumeName"] = json!("pv-1");
        bound["spec"]["storageClassName"] = json!("standard");
        let bound = claims.update_valid(bound).await;
        let mut moved = bound.clone();
        moved["spec"]["volumeName"] = json!("pv-2");
        claims
            .update_invalid(
                moved,
                r#"PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"#,
            )
            .await;
        // a pending claim's request is part of its fixed spec
        let mut grown = bound.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        claims
            .update_invalid(
                grown,
                r#"PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"#,
            )
            .await;

        let volumes = Tester::new("", "v1", "persistentvolumes").await;
        let volume = volumes
            .create_valid(json!({"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/tmp/a"}}}))
            .await;
        let mut retained = volume.clone();
        retained["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        let retained = volumes.update_valid(retained).await;
        let mut moved = retained.clone();
        moved["spec"]["hostPath"]["path"] = json!("/tmp/b");
        moved["spec"]["volumeMode"] = json!("Block");
        volumes
            .update_invalid(
                moved,
                r#"PersistentVolume "pv" is invalid: [spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation, volumeMode: Invalid value: "Block": field is immutable]"#,
            )
            .await;
    }

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
