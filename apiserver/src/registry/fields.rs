//! The fields each resource supports in field selectors, as upstream's per-resource
//! `GetAttrs`/`SelectableFields` (e.g. pkg/registry/core/pod/strategy.go `PodToSelectableFields`):
//! every resource has `metadata.name` and `metadata.namespace`; some add their own.

use apimachinery::fields::Fields;
use apimachinery::resources::ResourceInfo;
use serde_json::Value;

/// Extra selectable fields per (group, resource): the selector name and where the value
/// lives in the object (a dotted path).
const EXTRA_FIELDS: &[(&str, &str, &[(&str, &str)])] = &[
    (
        "",
        "pods",
        &[
            ("spec.nodeName", "spec.nodeName"),
            ("spec.restartPolicy", "spec.restartPolicy"),
            ("spec.schedulerName", "spec.schedulerName"),
            ("spec.serviceAccountName", "spec.serviceAccountName"),
            ("spec.hostNetwork", "spec.hostNetwork"),
            ("status.phase", "status.phase"),
            ("status.podIP", "status.podIP"),
            ("status.nominatedNodeName", "status.nominatedNodeName"),
        ],
    ),
    (
        "",
        "events",
        &[
            ("involvedObject.kind", "involvedObject.kind"),
            ("involvedObject.namespace", "involvedObject.namespace"),
            ("involvedObject.name", "involvedObject.name"),
            ("involvedObject.uid", "involvedObject.uid"),
            ("involvedObject.apiVersion", "involvedObject.apiVersion"),
            (
                "involvedObject.resourceVersion",
                "involvedObject.resourceVersion",
            ),
            ("involvedObject.fieldPath", "involvedObject.fieldPath"),
            ("reason", "reason"),
            ("reportingComponent", "reportingComponent"),
            ("source", "source.component"),
            ("type", "type"),
        ],
    ),
    ("", "secrets", &[("type", "type")]),
    ("", "namespaces", &[("status.phase", "status.phase")]),
    ("", "nodes", &[("spec.unschedulable", "spec.unschedulable")]),
    (
        "",
        "replicationcontrollers",
        &[("status.replicas", "status.replicas")],
    ),
    (
        "",
        "services",
        &[
            ("spec.clusterIP", "spec.clusterIP"),
            ("spec.type", "spec.type"),
        ],
    ),
    (
        "apps",
        "replicasets",
        &[("status.replicas", "status.replicas")],
    ),
    (
        "batch",
        "jobs",
        &[("status.successful", "status.successful")],
    ),
    (
        "certificates.k8s.io",
        "certificatesigningrequests",
        &[("spec.signerName", "spec.signerName")],
    ),
];

fn extra_fields(resource: &ResourceInfo) -> &'static [(&'static str, &'static str)] {
    EXTRA_FIELDS
        .iter()
        .find(|(group, plural, _)| *group == resource.group && *plural == resource.plural)
        .map_or(&[], |(_, _, fields)| fields)
}

/// Whether `field` can be used in a field selector on `resource`.
pub fn is_supported(resource: &ResourceInfo, field: &str) -> bool {
    field == "metadata.name"
        || (resource.namespaced && field == "metadata.namespace")
        || extra_fields(resource)
            .iter()
            .any(|(name, _)| *name == field)
}

/// The scalar at a dotted path of `object` as a field selector sees it; `None` when
/// absent or not a scalar.
pub fn text_at(object: &Value, path: &str) -> Option<String> {
    let mut value = object;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The selectable field set of `object`.
pub fn field_set(resource: &ResourceInfo, object: &Value) -> Fields {
    let mut fields = Fields::new();
    let text = |path: &str| text_at(object, path);
    fields.insert(
        "metadata.name".into(),
        text("metadata.name").unwrap_or_default(),
    );
    if resource.namespaced {
        fields.insert(
            "metadata.namespace".into(),
            text("metadata.namespace").unwrap_or_default(),
        );
    }
    for (name, path) in extra_fields(resource) {
        // Upstream's pod attrs render a missing boolean as "false", strings as "".
        let default = if *name == "spec.hostNetwork" || *name == "spec.unschedulable" {
            "false"
        } else {
            ""
        };
        fields.insert(
            (*name).to_owned(),
            text(path).unwrap_or_else(|| default.to_owned()),
        );
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;
    use serde_json::json;

    #[test]
    fn pods_select_on_node_and_phase() {
        let pods = find("", "v1", "pods").unwrap();
        assert!(is_supported(pods, "spec.nodeName"));
        assert!(!is_supported(pods, "spec.containers"));
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let fields = field_set(pods, &pod);
        assert_eq!(fields["spec.nodeName"], "n1");
        assert_eq!(fields["status.phase"], "Running");
        assert_eq!(fields["spec.hostNetwork"], "false");
        assert_eq!(fields["metadata.namespace"], "d");
    }

    #[test]
    fn cluster_scoped_resources_have_no_namespace_field() {
        let nodes = find("", "v1", "nodes").unwrap();
        assert!(!is_supported(nodes, "metadata.namespace"));
        assert!(is_supported(nodes, "spec.unschedulable"));
    }
}
