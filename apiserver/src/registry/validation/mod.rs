//! Typed validation of each built-in kind, as upstream's `pkg/apis/<group>/validation`
//! packages: one file per API group, each with a `validate` (a new object) and a
//! `validate_update` (what may not change), reached through [`validate`] and
//! [`validate_update`] by the registry's strategy. Messages and field paths are
//! upstream's, since kubectl users and client libraries match on them.
//!
//! ObjectMeta rules live in [`super::meta`]; Services in [`super::services`]; pod
//! templates and the workloads' selectors in [`super::workloads`].

use apimachinery::errors::FieldError;
use apimachinery::resources::ResourceInfo;
use serde_json::Value;

mod apps;
mod autoscaling;
mod batch;
pub mod certificates;
mod corev1;
mod networking;
mod policy;
mod rbac;
pub mod scheduling;
mod storage;
#[cfg(test)]
pub(crate) mod tester;

/// Kind-specific validation of a new object (after defaulting).
pub fn validate(resource: &ResourceInfo, object: &Value) -> Vec<FieldError> {
    match resource.group {
        "" => corev1::validate(resource.plural, object),
        "apps" => apps::validate(resource.plural, object),
        "rbac.authorization.k8s.io" => rbac::validate(resource.plural, object),
        "policy" => policy::validate(resource.plural, object),
        "batch" => batch::validate(resource.plural, object),
        "certificates.k8s.io" => certificates::validate(resource.plural, object),
        "autoscaling" => autoscaling::validate(resource.plural, object),
        "storage.k8s.io" => storage::validate(resource.plural, object),
        "networking.k8s.io" => networking::validate(resource.plural, object),
        "scheduling.k8s.io" => scheduling::validate(resource.plural, object),
        _ => Vec::new(),
    }
}

/// Kind-specific validation of an update: the new object's rules are checked by the
/// caller; this adds what upstream's `ValidateXUpdate` forbids changing.
pub fn validate_update(resource: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    match resource.group {
        "" => corev1::validate_update(resource.plural, new, old),
        "apps" => apps::validate_update(resource.plural, new, old),
        "rbac.authorization.k8s.io" => rbac::validate_update(resource.plural, new, old),
        "storage.k8s.io" => storage::validate_update(resource.plural, new, old),
        "certificates.k8s.io" => certificates::validate_update(resource.plural, new, old),
        "scheduling.k8s.io" => scheduling::validate_update(resource.plural, new, old),
        _ => Vec::new(),
    }
}

/// Kind-specific defaults of the API groups validated here (upstream's
/// `pkg/apis/<group>/v1/defaults.go`).
pub fn set_defaults(resource: &ResourceInfo, object: &mut Value) {
    if resource.group == "rbac.authorization.k8s.io" {
        rbac::set_defaults(resource.plural, object);
    }
    if resource.group == "scheduling.k8s.io"
        && let Some(map) = object.as_object_mut()
    {
        map.entry("preemptionPolicy")
            .or_insert_with(|| Value::String("PreemptLowerPriority".into()));
    }
}
