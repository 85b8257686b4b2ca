//! Per-resource rules on top of the generic registry, as upstream's per-resource
//! `strategy.go` files (`PrepareForCreate`, `PrepareForUpdate`, `Validate`,
//! graceful deletion): what a create defaults, how names are validated, what the main
//! resource and the status subresource may change, and how deletion proceeds.
//!
//! Kind-specific validation lives in [`super::validation`] (one file per API group),
//! [`super::workloads`] (pod templates) and [`super::services`].

use apimachinery::errors::FieldError;
use apimachinery::resources::ResourceInfo;
use serde_json::{Map, Value, json};

use super::Part;
use super::meta::{self, NameRule};

/// Kinds whose `metadata.generation` tracks spec changes (their strategies set it).
const GENERATION_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "CustomResourceDefinition",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

fn tracks_generation(resource: &ResourceInfo) -> bool {
    resource.custom || GENERATION_KINDS.contains(&resource.kind)
}

fn is_crd(resource: &ResourceInfo) -> bool {
    is(
        resource,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    )
}

pub(crate) fn has_status(resource: &ResourceInfo) -> bool {
    resource.subresource("status").is_some()
}

fn is(resource: &ResourceInfo, group: &str, plural: &str) -> bool {
    resource.group == group && resource.plural == plural
}

/// How `resource` validates names (upstream's per-resource `ValidateXName`).
pub fn name_rule(resource: &ResourceInfo) -> NameRule {
    match (resource.group, resource.plural) {
        ("", "namespaces") | ("", "services") | ("", "replicationcontrollers") => NameRule::Label,
        ("rbac.authorization.k8s.io", _) | ("", "events") | ("events.k8s.io", _) => {
            NameRule::PathSegment
        }
        _ => NameRule::Subdomain,
    }
}

/// Upstream's scheme defaults, applied to every object written (create and update).
pub fn set_defaults(resource: &ResourceInfo, object: &mut Value) {
    super::workloads::set_defaults(resource, object);
    if is(resource, "", "services") {
        super::services::set_defaults(object);
    }
    if is(resource, "", "secrets") {
        fold_secret_string_data(object);
    }
    super::validation::set_defaults(resource, object);
    set_storage_defaults(resource, object);
}

/// Upstream's v1 defaults for the storage objects: a StorageClass reclaims with
/// Delete and binds Immediately; a PersistentVolume is retained and, with its claims,
/// a Filesystem in phase Pending.
fn set_storage_defaults(resource: &ResourceInfo, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    // Go's defaulters see a null or empty string as unset
    fn default(map: &mut Map<String, Value>, key: &str, value: &str) {
        let unset = map
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        if unset {
            map.insert(key.to_owned(), json!(value));
        }
    }
    if is(resource, "storage.k8s.io", "storageclasses") {
        default(map, "reclaimPolicy", "Delete");
        default(map, "volumeBindingMode", "Immediate");
        return;
    }
    let volume = is(resource, "", "persistentvolumes");
    if !volume && !is(resource, "", "persistentvolumeclaims") {
        return;
    }
    if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
        if volume {
            default(spec, "persistentVolumeReclaimPolicy", "Retain");
        }
        default(spec, "volumeMode", "Filesystem");
    }
    if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
        default(status, "phase", "Pending");
    }
}

/// A Secret's write-only `stringData` is merged into `data` (base64, overriding keys
/// also in `data`) and dropped, and `type` defaults to Opaque, as upstream's v1
/// conversion and defaulting do.
fn fold_secret_string_data(object: &mut Value) {
    use base64::Engine as _;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in strings {
                let text = value.as_str().unwrap_or_default();
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                data.insert(key, Value::String(encoded));
            }
        }
    }
    if map
        .get("type")
        .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
    {
        map.insert("type".into(), json!("Opaque"));
    }
}

/// A new CertificateSigningRequest names who asked, whatever the client wrote, and
/// starts with no conditions (upstream's csr strategy `PrepareForCreate`): approvers
/// trust `spec.username` and `spec.groups`, so only the server may set them.
pub fn stamp_csr_requester(object: &mut Value, user: Option<&crate::auth::UserInfo>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    map.insert("status".into(), json!({}));
    let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    let Some(user) = user else {
        return;
    };
    if !user.name.is_empty() {
        spec.insert("username".into(), json!(user.name));
    }
    if !user.uid.is_empty() {
        spec.insert("uid".into(), json!(user.uid));
    }
    if !user.groups.is_empty() {
        spec.insert("groups".into(), json!(user.groups));
    }
    if !user.extra.is_empty() {
        spec.insert("extra".into(), json!(user.extra));
    }
}

/// Defaults and resets of a create, before validation.
pub fn prepare_for_create(resource: &ResourceInfo, object: &mut Value) {
    set_defaults(resource, object);
    if tracks_generation(resource) {
        meta::set_meta(object, "generation", 1);
    } else {
        meta::remove_meta(object, "generation");
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if is(resource, "", "namespaces") {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
        }
        map.insert("status".into(), json!({"phase": "Active"}));
    } else if is(resource, "", "pods") {
        let gated = map
            .get("spec")
            .and_then(|s| s.get("schedulingGates"))
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        let status = if gated {
            // upstream's applySchedulingGatedCondition: kubectl shows SchedulingGated
            json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
                "lastProbeTime": null,
                "lastTransitionTime": meta::now_rfc3339(),
            }]})
        } else {
            json!({"phase": "Pending"})
        };
        map.insert("status".into(), status);
    } else if is(resource, "", "services") {
        map.insert("status".into(), json!({"loadBalancer": {}}));
    } else if is(resource, "", "nodes") {
        // Nodes are the exception: a kubelet registers itself with its status at once.
        let status = map.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = status.as_object_mut()
            && status.get("allocatable").is_none_or(Value::is_null)
            && let Some(capacity) = status.get("capacity").cloned()
        {
            // Upstream's SetDefaults_NodeStatus: allocatable defaults to capacity.
            status.insert("allocatable".into(), capacity);
        }
    } else if is(resource, "apps", "daemonsets") {
        map.remove("status");
        set_template_generation(object, 1);
    } else if is(resource, "", "persistentvolumes") {
        // upstream's PV strategy: Pending, with the time it became so
        map.insert(
            "status".into(),
            json!({"phase": "Pending", "lastPhaseTransitionTime": meta::now_rfc3339()}),
        );
    } else if is(resource, "", "persistentvolumeclaims") {
        map.insert("status".into(), json!({"phase": "Pending"}));
    } else if is_crd(resource) {
        crate::crd::strategy::prepare_for_create(object);
    } else if has_status(resource) {
        // A client may not set status on create; the controllers report it.
        map.remove("status");
    }
}

/// What a create settles once the object has its name and uid, just before validation:
/// a namespace's `kubernetes.io/metadata.name` label; a Job without `manualSelector`
/// gets its generated selector (upstream does this in the Job strategy's `Validate`,
/// `generateSelector` in pkg/registry/batch/job/strategy.go).
pub fn prepare_named(resource: &ResourceInfo, object: &mut Value) {
    if is(resource, "", "namespaces") {
        label_namespace_name(object);
        return;
    }
    if !is(resource, "batch", "jobs")
        || object.pointer("/spec/manualSelector") == Some(&Value::Bool(true))
    {
        return;
    }
    let name = meta::name(object).to_owned();
    let uid = meta::meta_str(object, "uid").unwrap_or("").to_owned();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // The pods carry the job's name (readable) and uid (unique), each under the
    // legacy and the batch.kubernetes.io key; labels the user set are kept (a
    // conflict is validation's to report).
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(template) = template.as_object_mut() {
        let metadata = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            if let Some(labels) = labels.as_object_mut() {
                for (key, value) in [
                    ("job-name", &name),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("batch.kubernetes.io/controller-uid", &uid),
                ] {
                    labels
                        .entry(key)
                        .or_insert_with(|| Value::String(value.clone()));
                }
            }
        }
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if !selector.is_object() {
        *selector = json!({});
    }
    if let Some(selector) = selector.as_object_mut() {
        let match_labels = selector.entry("matchLabels").or_insert_with(|| json!({}));
        if !match_labels.is_object() {
            *match_labels = json!({});
        }
        if let Some(match_labels) = match_labels.as_object_mut() {
            match_labels
                .entry("batch.kubernetes.io/controller-uid")
                .or_insert_with(|| Value::String(uid.clone()));
        }
    }
}

/// Validation of a new object.
pub fn validate(resource: &ResourceInfo, object: &Value) -> Vec<FieldError> {
    let mut errors = meta::validate_object_meta(object, resource.namespaced, name_rule(resource));
    if is(resource, "", "services") {
        errors.extend(super::services::validate(object));
    }
    if is(resource, "networking.k8s.io", "servicecidrs") {
        errors.extend(super::service_cidrs::validate(object));
    }
    errors.extend(super::workloads::validate(resource, object));
    if is(resource, "", "configmaps") || is(resource, "", "secrets") {
        errors.extend(validate_config_keys(object));
    }
    errors.extend(super::validation::validate(resource, object));
    if is_crd(resource) {
        errors.extend(crate::crd::strategy::validate(object));
    }
    errors
}

/// Upstream's `IsConfigMapKey` messages.
fn config_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        errors.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_owned());
    }
    match key {
        "." => errors.push("must not be '.'".to_owned()),
        ".." => errors.push("must not be '..'".to_owned()),
        k if k.starts_with("..") => errors.push("must not start with '..'".to_owned()),
        _ => {}
    }
    errors
}

/// The keys of ConfigMap and Secret data, as upstream's `ValidateConfigMap` / `ValidateSecret`.
fn validate_config_keys(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let keys = |field: &str| -> Vec<String> {
        object
            .get(field)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let binary = keys("binaryData");
    for field in ["data", "binaryData", "stringData"] {
        for key in keys(field) {
            for message in config_key_errors(&key) {
                errors.push(FieldError::invalid(
                    format!("{field}[{key}]"),
                    key.as_str(),
                    message,
                ));
            }
            if field == "data" && binary.contains(&key) {
                errors.push(FieldError::invalid(
                    format!("data[{key}]"),
                    key.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
        }
    }
    errors
}

/// Validation of an update: the new object's own rules plus immutable fields.
pub fn validate_update(resource: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = validate(resource, new);
    errors.extend(super::validation::validate_update(resource, new, old));
    if is(resource, "networking.k8s.io", "servicecidrs") {
        errors.extend(super::service_cidrs::validate_update(new, old));
    }
    if is_crd(resource) {
        errors.extend(crate::crd::strategy::validate_update_only(new, old));
    }
    if old.get("immutable") == Some(&Value::Bool(true))
        && (is(resource, "", "configmaps") || is(resource, "", "secrets"))
    {
        for field in ["data", "binaryData", "stringData"] {
            if new.get(field) != old.get(field) {
                errors.push(FieldError::forbidden(
                    field,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errors.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errors
}

/// What only one endpoint forbids (the others cannot change that part at all): the
/// status endpoint of a CertificateSigningRequest may not approve or deny it.
pub fn validate_part(
    resource: &ResourceInfo,
    new: &Value,
    old: &Value,
    part: Part,
) -> Vec<FieldError> {
    if part == Part::Status
        && is(
            resource,
            "certificates.k8s.io",
            "certificatesigningrequests",
        )
    {
        return super::validation::certificates::validate_status_update(new, old);
    }
    Vec::new()
}

/// The object an update stores: the body, with the system fields kept from the
/// current object, and for resources with a status subresource the part the request
/// may not change kept as it was (upstream's `PrepareForUpdate` of the resource's
/// strategy and of its status strategy).
pub fn merge_update(resource: &ResourceInfo, current: &Value, body: &Value, part: Part) -> Value {
    let mut updated = match part {
        Part::Main => {
            let mut updated = body.clone();
            if has_status(resource)
                && let Some(map) = updated.as_object_mut()
            {
                match current.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
            }
            updated
        }
        // a namespace's status strategy keeps only the spec; metadata changes stand
        Part::Status if is(resource, "", "namespaces") => {
            let mut updated = body.clone();
            if let Some(map) = updated.as_object_mut() {
                match current.get("spec") {
                    Some(spec) => map.insert("spec".into(), spec.clone()),
                    None => map.remove("spec"),
                };
            }
            updated
        }
        Part::Status => {
            let mut updated = current.clone();
            if let Some(map) = updated.as_object_mut() {
                match body.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
            }
            updated
        }
        // upstream's finalize strategy: only the namespace's spec.finalizers change
        Part::Finalize => {
            let mut updated = current.clone();
            if !updated["spec"].is_object() {
                updated["spec"] = Value::Object(Default::default());
            }
            match body.pointer("/spec/finalizers") {
                Some(finalizers) => updated["spec"]["finalizers"] = finalizers.clone(),
                None => {
                    if let Some(spec) = updated["spec"].as_object_mut() {
                        spec.remove("finalizers");
                    }
                }
            }
            updated
        }
        // upstream's approval strategy: only the conditions change
        Part::Approval => {
            let mut updated = current.clone();
            if !updated["status"].is_object() {
                updated["status"] = Value::Object(Default::default());
            }
            match body["status"].get("conditions") {
                Some(conditions) => updated["status"]["conditions"] = conditions.clone(),
                None => {
                    if let Some(status) = updated["status"].as_object_mut() {
                        status.remove("conditions");
                    }
                }
            }
            updated
        }
    };
    if matches!(part, Part::Status | Part::Approval)
        && is(
            resource,
            "certificates.k8s.io",
            "certificatesigningrequests",
        )
        && let Some(metadata) = body.get("metadata")
    {
        // upstream's CSR status and approval strategies keep the request's metadata
        // (annotations and labels change there too); the system fields follow
        updated["metadata"] = metadata.clone();
    }
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match current.get("metadata").and_then(|m| m.get(field)) {
            Some(value) => meta::set_meta(&mut updated, field, value.clone()),
            None => meta::remove_meta(&mut updated, field),
        }
    }
    if part == Part::Main && is_crd(resource) {
        crate::crd::strategy::prepare_for_update(&mut updated);
    }
    if part == Part::Main
        && is(
            resource,
            "certificates.k8s.io",
            "certificatesigningrequests",
        )
        && let Some(map) = updated.as_object_mut()
    {
        // upstream's CSR strategy: a request never changes once made
        match current.get("spec") {
            Some(spec) => map.insert("spec".into(), spec.clone()),
            None => map.remove("spec"),
        };
    }
    if part == Part::Status
        && is(resource, "", "persistentvolumes")
        && current.pointer("/status/phase") != updated.pointer("/status/phase")
        && let Some(status) = updated.get_mut("status").and_then(Value::as_object_mut)
    {
        // upstream's PV status strategy stamps every phase change
        status.insert("lastPhaseTransitionTime".into(), json!(meta::now_rfc3339()));
    }
    if is(resource, "", "namespaces") {
        // spec.finalizers change through the finalize subresource only
        if part == Part::Main {
            match current.pointer("/spec/finalizers") {
                Some(finalizers) => {
                    if !updated["spec"].is_object() {
                        updated["spec"] = Value::Object(Default::default());
                    }
                    updated["spec"]["finalizers"] = finalizers.clone();
                }
                None => {
                    if let Some(spec) = updated["spec"].as_object_mut() {
                        spec.remove("finalizers");
                    }
                }
            }
        }
        label_namespace_name(&mut updated);
    }
    if is(resource, "apps", "daemonsets") {
        // a client cannot set the template generation: it is the stored one, one more
        // when a main update changes the template
        let stored = template_generation(current);
        let changed = part == Part::Main
            && current.pointer("/spec/template") != updated.pointer("/spec/template");
        set_template_generation(&mut updated, stored + i64::from(changed));
    }
    if part == Part::Main && tracks_generation(resource) && spec_changed(current, &updated) {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::set_meta(&mut updated, "generation", generation + 1);
    }
    updated
}

/// Where an apps/v1 DaemonSet keeps its template generation (upstream's internal
/// `spec.templateGeneration`, carried in this annotation by the v1 conversion); the
/// DaemonSet controller labels its pods with it.
const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// The stored template generation of a DaemonSet (0 when it has none, as upstream's
/// zero value).
fn template_generation(daemon_set: &Value) -> i64 {
    meta::annotation(daemon_set, DAEMONSET_TEMPLATE_GENERATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(daemon_set: &mut Value, generation: i64) {
    let Some(metadata) = meta::metadata_mut(daemon_set) else {
        return;
    };
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[DAEMONSET_TEMPLATE_GENERATION] = json!(generation.to_string());
}

/// Whether anything but metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "metadata" && *k != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

/// The label every namespace carries with its own name (upstream's
/// `kubernetes.io/metadata.name`, set on create and update whatever the request says).
fn label_namespace_name(namespace: &mut Value) {
    let name = meta::name(namespace).to_owned();
    if name.is_empty() {
        return;
    }
    let Some(metadata) = namespace.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = Value::String(name);
}

/// Whether an object marked for deletion may now be removed from storage: no
/// finalizers left, a namespace's own finalizers done, a pod's grace period over.
pub fn ready_to_delete(resource: &ResourceInfo, object: &Value) -> bool {
    if meta::meta_str(object, "deletionTimestamp").is_none() || !meta::finalizers(object).is_empty()
    {
        return false;
    }
    if is(resource, "", "namespaces") {
        return object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    }
    if is(resource, "", "pods") {
        return object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn a_csr_names_its_requester_whatever_the_client_claims() {
        let mut csr = json!({"spec": {"request": "x", "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "username": "system:node:victim", "groups": ["system:nodes"], "uid": "forged", "extra": {"a": ["b"]}},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let user = crate::auth::UserInfo::new("mallory", &["system:authenticated"]);
        stamp_csr_requester(&mut csr, Some(&user));
        assert_eq!(csr["spec"]["username"], "mallory");
        assert_eq!(csr["spec"]["groups"], json!(["system:authenticated"]));
        assert!(csr["spec"].get("uid").is_none());
        assert!(csr["spec"].get("extra").is_none());
        assert_eq!(csr["status"], json!({}));
        assert_eq!(csr["spec"]["request"], "x");
    }

    #[test]
    fn namespaces_default_their_finalizer_and_phase() {
        let ns = find("", "v1", "namespaces").unwrap();
        let mut object = json!({"metadata": {"name": "a"}});
        prepare_for_create(ns, &mut object);
        assert_eq!(object["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(object["status"]["phase"], "Active");
        assert!(object["metadata"].get("generation").is_none());
    }

    #[test]
    fn main_updates_keep_status_and_bump_generation_on_spec_change() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let current = json!({"metadata": {"name": "d", "uid": "u", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let body = json!({"metadata": {"name": "d", "uid": "other"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let updated = merge_update(deployments, &current, &body, Part::Main);
        assert_eq!(updated["status"]["replicas"], 1, "status kept");
        assert_eq!(updated["metadata"]["uid"], "u", "uid kept");
        assert_eq!(updated["metadata"]["generation"], 2);
        let labels_only =
            json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        assert_eq!(
            merge_update(deployments, &current, &labels_only, Part::Main)["metadata"]["generation"],
            1
        );
    }

    #[test]
    fn daemon_sets_count_template_generations_in_their_annotation() {
        let daemon_sets = find("apps", "v1", "daemonsets").unwrap();
        let key = DAEMONSET_TEMPLATE_GENERATION;
        let template = json!({"metadata": {"labels": {"a": "b"}}});
        let mut created = json!({"metadata": {"name": "d", "annotations": {key: "7"}},
            "spec": {"template": template}});
        prepare_for_create(daemon_sets, &mut created);
        assert_eq!(
            created["metadata"]["annotations"][key], "1",
            "a client cannot set it"
        );

        // a spec change outside the template keeps it; a client cannot change it
        let mut body = created.clone();
        body["spec"]["minReadySeconds"] = json!(5);
        body["metadata"]["annotations"][key] = json!("9");
        let updated = merge_update(daemon_sets, &created, &body, Part::Main);
        assert_eq!(updated["metadata"]["annotations"][key], "1");
        assert_eq!(updated["metadata"]["generation"], 2);

        // a template change counts one more
        let mut body = updated.clone();
        body["spec"]["template"]["metadata"]["labels"]["a"] = json!("c");
        let changed = merge_update(daemon_sets, &updated, &body, Part::Main);
        assert_eq!(changed["metadata"]["annotations"][key], "2");
        assert_eq!(changed["metadata"]["generation"], 3);
        // a status update leaves it
        let status = merge_update(daemon_sets, &changed, &json!({"status": {}}), Part::Status);
        assert_eq!(status["metadata"]["annotations"][key], "2");
    }

    #[test]
    fn storage_defaults_fill_null_and_empty_values() {
        let classes = find("storage.k8s.io", "v1", "storageclasses").unwrap();
        let mut class = json!({"metadata": {"name": "c"}, "provisioner": "x",
            "volumeBindingMode": null, "reclaimPolicy": ""});
        set_defaults(classes, &mut class);
        assert_eq!(class["volumeBindingMode"], "Immediate");
        assert_eq!(class["reclaimPolicy"], "Delete");
        let volumes = find("", "v1", "persistentvolumes").unwrap();
        let mut volume = json!({"metadata": {"name": "v"},
            "spec": {"persistentVolumeReclaimPolicy": "", "volumeMode": "Block"}});
        set_defaults(volumes, &mut volume);
        assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(volume["spec"]["volumeMode"], "Block", "a set value stays");
    }

    #[test]
    fn status_updates_change_status_only() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let current =
            json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        let body = json!({"metadata": {"name": "d"}, "spec": {"replicas": 5}, "status": {"readyReplicas": 1}});
        let updated = merge_update(deployments, &current, &body, Part::Status);
        assert_eq!(updated["spec"]["replicas"], 1);
        assert_eq!(updated["status"]["readyReplicas"], 1);
        assert_eq!(updated["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn config_keys_follow_upstream() {
        let cms = find("", "v1", "configmaps").unwrap();
        let errors = validate(
            cms,
            &json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"": "x", "ok.key": "y", "..x": "z"}}),
        );
        let fields: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("data[]: Invalid value: \"\": a valid config key")),
            "{fields:?}"
        );
        assert!(
            fields
                .iter()
                .any(|f| f.contains("must not start with '..'")),
            "{fields:?}"
        );
        assert_eq!(errors.len(), 2, "{fields:?}");
    }

    #[test]
    fn nodes_keep_their_status_on_create_with_allocatable_defaulted() {
        let nodes = find("", "v1", "nodes").unwrap();
        let mut node = json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}});
        prepare_for_create(nodes, &mut node);
        assert_eq!(node["status"]["capacity"], json!({"cpu": "2"}));
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let secrets = find("", "v1", "secrets").unwrap();
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new", "c": "hunter2"}});
        set_defaults(secrets, &mut secret);
        assert_eq!(
            secret,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "bmV3", "b": "Yg==", "c": "aHVudGVyMg=="}})
        );
    }

    #[test]
    fn jobs_get_upstreams_generated_selector() {
        let jobs = find("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}});
        prepare_named(jobs, &mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"})
        );
        let mut manual = json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        let before = manual.clone();
        prepare_named(jobs, &mut manual);
        assert_eq!(manual, before);
    }

    #[test]
    fn marked_objects_go_once_nothing_holds_them() {
        let pods = find("", "v1", "pods").unwrap();
        let cms = find("", "v1", "configmaps").unwrap();
        let mut pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
        assert!(
            !ready_to_delete(pods, &pod),
            "its kubelet has not stopped it"
        );
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        assert!(ready_to_delete(pods, &pod));
        let mut cm = json!({"metadata": {"name": "c", "finalizers": ["x/y"], "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(!ready_to_delete(cms, &cm));
        cm["metadata"]["finalizers"] = json!([]);
        assert!(ready_to_delete(cms, &cm));
        assert!(!ready_to_delete(cms, &json!({"metadata": {"name": "c"}})));
    }
}
