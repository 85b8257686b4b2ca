//! ObjectMeta on JSON objects: reading and writing the fields the registry owns (uid,
//! timestamps, resourceVersion, generation), generateName, and upstream's generic
//! ObjectMeta validation (`ValidateObjectMeta` in k8s.io/apimachinery/pkg/api/validation).

use apimachinery::errors::FieldError;
use apimachinery::labels;
use rand::Rng;
use serde_json::{Map, Value};

/// Upstream's limit on the total size of annotations (256 KiB).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The characters upstream's `SimpleNameGenerator` draws from (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Random characters appended to generateName.
const NAME_SUFFIX_LEN: usize = 5;
/// Longest base kept from generateName, so the name fits 63 characters.
const MAX_GENERATED_BASE: usize = 63 - NAME_SUFFIX_LEN;

/// The object's `metadata` map, created when missing (or replaced when not a map);
/// `None` when the object itself is not a JSON object.
pub fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata.as_object_mut()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name` (empty when absent).
pub fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

/// `metadata.namespace` (empty when absent).
pub fn namespace(object: &Value) -> &str {
    meta_str(object, "namespace").unwrap_or("")
}

/// One annotation's value.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

/// One label's value.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["labels"][key].as_str()
}

/// Sets a field of `metadata` (no-op on a non-object, which callers reject first).
pub fn set_meta(object: &mut Value, field: &str, value: impl Into<Value>) {
    if let Some(metadata) = metadata_mut(object) {
        metadata.insert(field.to_owned(), value.into());
    }
}

/// Removes a field of `metadata`.
pub fn remove_meta(object: &mut Value, field: &str) {
    if let Some(metadata) = metadata_mut(object) {
        metadata.remove(field);
    }
}

/// `metadata.labels` as a label set (non-string values are ignored; validation reports them).
pub fn labels(object: &Value) -> labels::Labels {
    string_map(object.get("metadata").and_then(|m| m.get("labels")))
}

fn string_map(value: Option<&Value>) -> labels::Labels {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Now, as upstream writes metav1.Time: RFC 3339 in UTC with second precision.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `seconds` from now (negative: ago), written as [`now_rfc3339`] writes.
pub fn rfc3339_in(seconds: i64) -> String {
    let now = jiff::Timestamp::now();
    now.checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(now)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Shifts an RFC 3339 timestamp by `seconds`; `None` when it does not parse.
pub fn shift_rfc3339(timestamp: &str, seconds: i64) -> Option<String> {
    let at: jiff::Timestamp = timestamp.parse().ok()?;
    Some(
        at.checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    )
}

/// A new object UID (a random UUID, as upstream).
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A name from `generateName`: the base (trimmed to fit) and five random characters.
pub fn generate_name(base: &str) -> String {
    let base: String = base.chars().take(MAX_GENERATED_BASE).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..NAME_SUFFIX_LEN)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// How a resource's names are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most resources).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// Any name that is a valid path segment (RBAC roles, events, ...).
    PathSegment,
}

/// Upstream's `ValidateObjectMeta`: name (or generateName), namespace presence, labels,
/// annotations, finalizers. `namespaced` says whether a namespace is required.
pub fn validate_object_meta(object: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = name(object);
    let generate = meta_str(object, "generateName").unwrap_or("");
    if name.is_empty() {
        if generate.is_empty() {
            errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for message in validate_name(name, rule) {
            errors.push(FieldError::invalid("metadata.name", name, message));
        }
    }
    let namespace = namespace(object);
    if namespaced && namespace.is_empty() {
        errors.push(FieldError::required("metadata.namespace", ""));
    } else if !namespaced && !namespace.is_empty() {
        errors.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    } else if !namespace.is_empty() {
        for message in labels::is_dns1123_label(namespace) {
            errors.push(FieldError::invalid(
                "metadata.namespace",
                namespace,
                message,
            ));
        }
    }
    let metadata = object.get("metadata");
    if let Some(labels) = metadata.and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(map) => {
                for (key, value) in map {
                    for message in labels::is_qualified_name(key) {
                        errors.push(FieldError::invalid(
                            "metadata.labels",
                            key.as_str(),
                            message,
                        ));
                    }
                    match value.as_str() {
                        Some(v) => {
                            for message in labels::is_valid_label_value(v) {
                                errors.push(FieldError::invalid("metadata.labels", v, message));
                            }
                        }
                        None => errors.push(FieldError::invalid(
                            "metadata.labels",
                            key.as_str(),
                            "must be a string",
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => errors.push(FieldError::invalid(
                "metadata.labels",
                "",
                "must be a map of strings",
            )),
        }
    }
    if let Some(annotations) = metadata.and_then(|m| m.get("annotations")) {
        match annotations.as_object() {
            Some(map) => {
                let mut total = 0;
                for (key, value) in map {
                    for message in labels::is_qualified_name(&key.to_ascii_lowercase()) {
                        errors.push(FieldError::invalid(
                            "metadata.annotations",
                            key.as_str(),
                            message,
                        ));
                    }
                    total += key.len() + value.as_str().map_or(0, str::len);
                }
                if total > TOTAL_ANNOTATION_SIZE_LIMIT {
                    errors.push(FieldError::too_long(
                        "metadata.annotations",
                        TOTAL_ANNOTATION_SIZE_LIMIT as i64,
                    ));
                }
            }
            None if annotations.is_null() => {}
            None => errors.push(FieldError::invalid(
                "metadata.annotations",
                "",
                "must be a map of strings",
            )),
        }
    }
    for (i, finalizer) in finalizers(object).iter().enumerate() {
        for message in labels::is_qualified_name(finalizer) {
            errors.push(FieldError::invalid(
                format!("metadata.finalizers[{i}]"),
                finalizer.as_str(),
                message,
            ));
        }
    }
    if let Some(references) = metadata
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
    {
        errors.extend(validate_owner_references(references));
    }
    errors
}

/// Upstream's `ValidateOwnerReferences`: every reference names its owner fully, an
/// Event owns nothing, and at most one reference is the controller. Errors carry the
/// list's path, without an index, as upstream's do.
fn validate_owner_references(references: &[Value]) -> Vec<FieldError> {
    const PATH: &str = "metadata.ownerReferences";
    let mut errors = Vec::new();
    let mut controller: Option<String> = None;
    for reference in references {
        let text = |field: &str| reference.get(field).and_then(Value::as_str).unwrap_or("");
        let api_version = text("apiVersion");
        // The version is what follows the group's slash ("v1" alone is the core group).
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errors.push(FieldError::invalid(
                format!("{PATH}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if text(field).is_empty() {
                errors.push(FieldError::invalid(
                    format!("{PATH}.{field}"),
                    text(field),
                    format!("{what} must not be empty"),
                ));
            }
        }
        if api_version == "v1" && text("kind") == "Event" {
            errors.push(FieldError::invalid(
                PATH,
                reference_display(reference),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", text("kind"), text("name"));
            match &controller {
                Some(first) => errors.push(FieldError::invalid(
                    PATH,
                    apimachinery::errors::BadValue::Omitted,
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => controller = Some(current),
            }
        }
    }
    errors
}

/// An owner reference shown as upstream's generated `String()` prints it.
fn reference_display(reference: &Value) -> apimachinery::errors::BadValue {
    let text = |field: &str| reference.get(field).and_then(Value::as_str).unwrap_or("");
    let flag = |field: &str| match reference.get(field).and_then(Value::as_bool) {
        Some(b) => format!("*{b}"),
        None => "nil".to_owned(),
    };
    apimachinery::errors::BadValue::Display(format!(
        "&OwnerReference{{Kind:{},Name:{},UID:{},APIVersion:{},Controller:{},BlockOwnerDeletion:{},}}",
        text("kind"),
        text("name"),
        text("uid"),
        text("apiVersion"),
        flag("controller"),
        flag("blockOwnerDeletion")
    ))
}

/// Messages for an invalid name under `rule` (empty when valid).
pub fn validate_name(name: &str, rule: NameRule) -> Vec<String> {
    match rule {
        NameRule::Subdomain => labels::is_dns1123_subdomain(name),
        NameRule::Label => labels::is_dns1123_label(name),
        NameRule::PathSegment => {
            let mut errors = Vec::new();
            if name == "." || name == ".." {
                errors.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errors.push(format!("may not contain '{bad}'"));
                }
            }
            errors
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_references_are_validated_as_upstream() {
        let object = |refs: Value| json!({"metadata": {"name": "x", "ownerReferences": refs}});
        let messages = |refs: Value| -> Vec<String> {
            validate_object_meta(&object(refs), false, NameRule::Subdomain)
                .iter()
                .map(FieldError::to_string)
                .collect()
        };
        assert!(messages(json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}])).is_empty());
        assert_eq!(
            messages(json!([{"apiVersion": "apps/", "kind": "", "name": "rs", "uid": "u"}])),
            [
                r#"metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty"#,
                r#"metadata.ownerReferences.kind: Invalid value: "": kind must not be empty"#,
            ]
        );
        assert_eq!(
            messages(json!([
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true},
            ])),
            [
                r#"metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true. Found "true" in references for ReplicaSet/a and ReplicaSet/b"#
            ]
        );
    }
    use serde_json::json;

    #[test]
    fn generated_names_keep_the_base_and_add_five_characters() {
        let name = generate_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert!(name[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn object_meta_validation_matches_upstream_messages() {
        let missing = validate_object_meta(&json!({"metadata": {}}), true, NameRule::Subdomain);
        let bodies: Vec<String> = missing
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert!(
            bodies.contains(
                &"metadata.name: Required value: name or generateName is required".to_owned()
            ),
            "{bodies:?}"
        );
        assert!(
            bodies.contains(&"metadata.namespace: Required value".to_owned()),
            "{bodies:?}"
        );

        let bad = json!({"metadata": {"name": "Bad_Name", "namespace": "ns", "labels": {"a": "x".repeat(64)}}});
        let errors = validate_object_meta(&bad, true, NameRule::Subdomain);
        assert!(
            errors.iter().any(|e| e.field == "metadata.name"),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.field == "metadata.labels" && e.body().contains("63")),
            "{errors:?}"
        );

        let ok =
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}});
        assert!(validate_object_meta(&ok, true, NameRule::Subdomain).is_empty());
        let cluster = json!({"metadata": {"name": "n", "namespace": "default"}});
        assert!(!validate_object_meta(&cluster, false, NameRule::Label).is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }
}
