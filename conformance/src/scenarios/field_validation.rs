//! As upstream's test/e2e/apimachinery/field_validation.go (the typed-object tests):
//! `fieldValidation=Strict` refuses unknown and duplicate fields with upstream's strict
//! decoding error. The bodies are posted as written (`kubectl create --raw`), since
//! kubectl's own decoding would drop the duplicates before the server saw them.

use super::fail;
use crate::Cluster;

/// Posts `body` to the namespace's Deployments with upstream's parameters; the error
/// kubectl printed, or why the request unexpectedly succeeded.
fn post_strict(cluster: &Cluster, ns: &str, body: &str) -> Result<String, String> {
    let path = format!(
        "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
    );
    match cluster.kubectl_stdin(&["create", "--raw", &path, "-f", "-"], body) {
        Ok(created) => Err(format!("the invalid Deployment was created: {created}")),
        Err(e) => Ok(e.to_string()),
    }
}

/// "FieldValidation should detect unknown and duplicate fields of a typed object".
pub fn unknown_and_duplicate_fields(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("field-validation").map_err(fail)?;
    let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {
            "unknownField": "foo",
            "replicas": 2,
            "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
    let said = post_strict(cluster, &ns, body)?;
    let expected = r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#;
    if !said.contains(expected) {
        return Err(format!("expected {expected:?}, got: {said}"));
    }
    Ok(())
}

/// "FieldValidation should detect unknown metadata fields of a typed object".
pub fn unknown_metadata_fields(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("field-validation").map_err(fail)?;
    let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "unknownMeta": "foo", "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
    let said = post_strict(cluster, &ns, body)?;
    let expected = r#"strict decoding error: unknown field "metadata.unknownMeta""#;
    if !said.contains(expected) {
        return Err(format!("expected {expected:?}, got: {said}"));
    }
    Ok(())
}
