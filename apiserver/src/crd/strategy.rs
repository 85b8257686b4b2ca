//! The CustomResourceDefinition kind's own rules, as upstream's
//! apiextensions-apiserver `pkg/registry/customresourcedefinition/strategy.go` and
//! `pkg/apis/apiextensions/validation`: v1 defaults, what a create resets, the
//! validation most CRDs meet (names, group, scope, versions, the storage version), the
//! immutable fields, and the mark of the first DELETE.

use apimachinery::errors::FieldError;
use serde_json::{Value, json};

use super::CLEANUP_FINALIZER;

/// v1 defaults and the resets of a create: status starts empty except for the stored
/// version.
pub fn prepare_for_create(object: &mut Value) {
    set_defaults(object);
    let storage = storage_version(object);
    if let Some(map) = object.as_object_mut() {
        let mut status = json!({
            "acceptedNames": {"kind": "", "plural": ""},
            "conditions": [],
            "storedVersions": [],
        });
        if let Some(storage) = storage {
            status["storedVersions"] = json!([storage]);
        }
        map.insert("status".into(), status);
    }
}

/// An update of the main resource: the new storage version joins `storedVersions`.
pub fn prepare_for_update(object: &mut Value) {
    set_defaults(object);
    let Some(storage) = storage_version(object) else {
        return;
    };
    if !object["status"].is_object() {
        object["status"] = json!({});
    }
    let stored = &mut object["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let Some(stored) = stored.as_array_mut()
        && !stored.iter().any(|v| v.as_str() == Some(storage.as_str()))
    {
        stored.push(json!(storage));
    }
}

/// Upstream's v1 defaulting: `singular` from the kind, `listKind` `<Kind>List`,
/// conversion `None`.
fn set_defaults(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut)
        && let Some(kind) = names.get("kind").and_then(Value::as_str).map(str::to_owned)
        && !kind.is_empty()
    {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("singular".into(), json!(kind.to_ascii_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

/// The version marked `storage: true` (the first, if several are: validation refuses them).
fn storage_version(object: &Value) -> Option<String> {
    object["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"] == Value::Bool(true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_owned)
}

/// The first DELETE: the cleanup finalizer and the Terminating condition.
pub fn mark_for_deletion(object: &mut Value) {
    let mut finalizers: Vec<Value> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(json!(CLEANUP_FINALIZER));
    }
    object["metadata"]["finalizers"] = Value::Array(finalizers);
    set_condition(
        object,
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

/// Sets one status condition as upstream's `SetCRDCondition`: the transition time
/// changes only with the status.
pub fn set_condition(object: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    if !object["status"].is_object() {
        object["status"] = json!({});
    }
    let conditions = &mut object["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    let now = crate::registry::meta::now_rfc3339();
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            if existing["status"] != status {
                existing["lastTransitionTime"] = json!(now);
            }
            existing["status"] = json!(status);
            existing["reason"] = json!(reason);
            existing["message"] = json!(message);
        }
        None => conditions.push(json!({
            "type": kind, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message,
        })),
    }
}

/// A condition's status (`True`, `False`), if the CRD has the condition.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
}

/// Upstream's DNS-1035 label messages (names of versions and resources).
fn dns1035_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    let valid = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.ends_with('-');
    if !valid {
        errors.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_owned());
    }
    errors
}

/// The CRD rules users meet most (upstream's `ValidateCustomResourceDefinition`, in its
/// order: name, spec, stored versions).
pub fn validate(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    match spec["scope"].as_str().unwrap_or("") {
        "" => errors.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let version_name = version["name"].as_str().unwrap_or("");
        for message in dns1035_errors(version_name) {
            errors.push(FieldError::invalid(
                format!("spec.versions[{i}].name"),
                version_name,
                message,
            ));
        }
        if version
            .pointer("/schema/openAPIV3Schema")
            .is_none_or(Value::is_null)
        {
            errors.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
        errors.extend(validate_selectable_fields(
            version,
            &format!("spec.versions[{i}].selectableFields"),
        ));
        seen.push(version_name);
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != seen.len() {
        errors.push(FieldError::invalid(
            "spec.versions",
            apimachinery::errors::BadValue::Display(format!("{versions:?}")),
            "must contain unique version names",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == Value::Bool(true))
        .count();
    if storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            apimachinery::errors::BadValue::Omitted,
            "must have exactly one version marked as storage version",
        ));
    }
    for field in ["plural", "singular", "kind", "listKind"] {
        let value = names[field].as_str().unwrap_or("");
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errors.push(FieldError::required(path, ""));
            continue;
        }
        if matches!(field, "plural" | "singular") {
            for message in dns1035_errors(value) {
                errors.push(FieldError::invalid(path.clone(), value, message));
            }
        } else {
            for message in dns1035_errors(&value.to_ascii_lowercase()) {
                errors.push(FieldError::invalid(
                    path.clone(),
                    value,
                    format!("may have mixed case, but should otherwise match: {message}"),
                ));
            }
        }
    }
    if names["kind"].as_str().is_some() && names["kind"] == names["listKind"] {
        errors.push(FieldError::invalid(
            "spec.names.listKind",
            names["listKind"].as_str().unwrap_or(""),
            "kind and listKind may not be the same",
        ));
    }
    for (i, short) in names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let short = short.as_str().unwrap_or("");
        for message in dns1035_errors(short) {
            errors.push(FieldError::invalid(
                format!("spec.names.shortNames[{i}]"),
                short,
                message,
            ));
        }
    }
    errors
}

/// The most selectable fields a version may declare.
const MAX_SELECTABLE_FIELDS: usize = 8;

/// A version's `selectableFields`: each a simple path (no array notation) to a string,
/// boolean or integer field of the version's schema, outside `metadata`, at most 8.
fn validate_selectable_fields(version: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(fields) = version["selectableFields"].as_array() else {
        return errors;
    };
    let schema = version.pointer("/schema/openAPIV3Schema");
    let mut unique: Vec<String> = Vec::new();
    for (j, field) in fields.iter().enumerate() {
        let at = format!("{path}[{j}].jsonPath");
        let json_path = field["jsonPath"].as_str().unwrap_or("");
        if json_path.is_empty() {
            errors.push(FieldError::required(at, ""));
            continue;
        }
        let steps = match selectable_path(json_path) {
            Ok(steps) => steps,
            Err(why) => {
                errors.push(FieldError::invalid(
                    at,
                    json_path,
                    format!("is an invalid path: {why}"),
                ));
                continue;
            }
        };
        let mut found = schema;
        for step in &steps {
            found = found
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.get(step));
        }
        let Some(found) = found else {
            errors.push(FieldError::invalid(
                at,
                json_path,
                format!(
                    "is an invalid path: does not refer to a valid field: {}",
                    steps.join(".")
                ),
            ));
            continue;
        };
        if steps.first().map(String::as_str) == Some("metadata") {
            errors.push(FieldError::invalid(
                at.clone(),
                json_path,
                "must not point to fields in metadata",
            ));
        }
        let allowed = matches!(
            found["type"].as_str(),
            Some("string" | "boolean" | "integer")
        );
        if !allowed {
            errors.push(FieldError::invalid(
                at.clone(),
                json_path,
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
        }
        let key = steps.join(".");
        if unique.contains(&key) {
            errors.push(FieldError::duplicate(at, json_path));
        } else {
            unique.push(key);
        }
    }
    if unique.len() > MAX_SELECTABLE_FIELDS {
        errors.push(FieldError::too_many(
            path,
            unique.len() as i64,
            MAX_SELECTABLE_FIELDS as i64,
        ));
    }
    errors
}

/// The field names of a selectable field's simple JSON path (`.spec.color`).
pub(crate) fn selectable_path(json_path: &str) -> Result<Vec<String>, String> {
    let Some(rest) = json_path.strip_prefix('.') else {
        return Err(format!("must start with '.': {json_path:?}"));
    };
    let steps: Vec<String> = rest.split('.').map(str::to_owned).collect();
    if let Some(bad) = steps
        .iter()
        .find(|s| s.is_empty() || s.contains(['[', ']', '*', ' ']))
    {
        return Err(format!("unsupported path element {bad:?}"));
    }
    Ok(steps)
}

/// What an update may not change: the group and plural always, the scope and kind once
/// the CRD is established.
pub fn validate_update_only(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let immutable = |errors: &mut Vec<FieldError>, pointer: &str, path: &str| {
        if new.pointer(pointer) != old.pointer(pointer) {
            errors.push(FieldError::invalid(
                path,
                new.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                "field is immutable",
            ));
        }
    };
    immutable(&mut errors, "/spec/group", "spec.group");
    immutable(&mut errors, "/spec/names/plural", "spec.names.plural");
    if condition(old, "Established") == Some("True") {
        immutable(&mut errors, "/spec/scope", "spec.scope");
        immutable(&mut errors, "/spec/names/kind", "spec.names.kind");
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::errors::StatusError;
    use apimachinery::resources::GroupKind;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        })
    }

    fn message(errors: &[FieldError]) -> String {
        StatusError::invalid(
            &GroupKind::new("apiextensions.k8s.io", "CustomResourceDefinition"),
            "crontabs.stable.example.com",
            errors,
        )
        .0
        .message
    }

    #[test]
    fn create_defaults_names_conversion_and_stored_versions() {
        let mut object = crd();
        object["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        prepare_for_create(&mut object);
        assert_eq!(object["spec"]["names"]["singular"], "crontab");
        assert_eq!(object["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(object["spec"]["conversion"], json!({"strategy": "None"}));
        assert_eq!(object["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(object["status"]["conditions"], json!([]));
        assert!(
            validate(&object).is_empty(),
            "{}",
            message(&validate(&object))
        );
    }

    #[test]
    fn selectable_fields_must_be_scalar_fields_outside_metadata() {
        let mut object = crd();
        prepare_for_create(&mut object);
        object["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "color": {"type": "string"}, "size": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}}}}}});
        object["spec"]["versions"][0]["selectableFields"] = json!([
            {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.size"}, {"jsonPath": ".spec.tags"},
            {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.nope"}, {"jsonPath": "spec.color"},
            {"jsonPath": ""}]);
        let errors = validate(&object);
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "spec.versions[0].selectableFields[2].jsonPath: Invalid value: \".spec.tags\": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
                "spec.versions[0].selectableFields[3].jsonPath: Duplicate value: \".spec.color\"",
                "spec.versions[0].selectableFields[4].jsonPath: Invalid value: \".spec.nope\": is an invalid path: does not refer to a valid field: spec.nope",
                "spec.versions[0].selectableFields[5].jsonPath: Invalid value: \"spec.color\": is an invalid path: must start with '.': \"spec.color\"",
                "spec.versions[0].selectableFields[6].jsonPath: Required value",
            ]
        );
    }

    #[test]
    fn names_group_and_versions_are_checked_with_upstreams_messages() {
        let mut object = crd();
        object["metadata"]["name"] = json!("crontab.stable.example.com");
        object["spec"]["versions"][0]["storage"] = json!(false);
        object["spec"]["names"]["kind"] = json!("Cron_Tab");
        prepare_for_create(&mut object);
        let errors = validate(&object);
        let text = message(&errors);
        assert!(
            text.contains(
                "metadata.name: Invalid value: \"crontab.stable.example.com\": must be spec.names.plural+\".\"+spec.group"
            ),
            "{text}"
        );
        assert!(
            text.contains("spec.versions: Invalid value: \"null\": must have exactly one version marked as storage version")
                || text.contains("must have exactly one version marked as storage version"),
            "{text}"
        );
        assert!(
            text.contains("spec.names.kind: Invalid value: \"Cron_Tab\": may have mixed case, but should otherwise match: a DNS-1035 label"),
            "{text}"
        );
    }

    #[test]
    fn the_group_and_plural_are_immutable() {
        let mut old = crd();
        prepare_for_create(&mut old);
        let mut new = old.clone();
        new["spec"]["group"] = json!("other.example.com");
        let text = message(&validate_update_only(&new, &old));
        assert!(
            text.contains("spec.group: Invalid value: \"other.example.com\": field is immutable"),
            "{text}"
        );
    }

    #[test]
    fn the_first_delete_adds_the_cleanup_finalizer_and_terminating() {
        let mut object = crd();
        mark_for_deletion(&mut object);
        assert_eq!(object["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(condition(&object, "Terminating"), Some("True"));
        assert_eq!(
            object["status"]["conditions"][0]["reason"],
            "InstanceDeletionPending"
        );
    }
}
