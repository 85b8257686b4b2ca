//! As upstream's test/e2e/apimachinery/custom_resource_definition.go.

use serde_json::{Value, json};

use super::fail;
use crate::Cluster;

/// A CRD of a group no other run uses (`e2e-test-<unique>-crd.example.com`), with a
/// schema that keeps whatever its objects hold, as upstream's fixture does.
fn random_crd() -> (String, String, Value) {
    let unique = Cluster::unique_name("e2e")
        .to_ascii_lowercase()
        .replace('-', "");
    let group = format!("crd-{unique}.example.com");
    let plural = format!("e2e{unique}s");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": format!("e2e{unique}"),
                      "kind": format!("E2e{unique}"), "listKind": format!("E2e{unique}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    (group, plural, crd)
}

/// Creates `crd` and waits until it is Established.
pub(super) fn create_established(cluster: &Cluster, crd: &Value) -> Result<String, String> {
    let name = crd["metadata"]["name"].as_str().unwrap_or("").to_owned();
    cluster
        .kubectl_stdin(&["create", "-f", "-"], &crd.to_string())
        .map_err(fail)?;
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=30s",
        ])
        .map_err(fail)?;
    Ok(name)
}

/// "Simple CustomResourceDefinition creating/deleting custom resource definition
/// objects works".
pub fn create_and_delete(cluster: &Cluster) -> Result<(), String> {
    let (_, _, crd) = random_crd();
    let name = create_established(cluster, &crd)?;
    cluster
        .kubectl(&["delete", "crd", &name, "--timeout=60s"])
        .map_err(fail)?;
    match cluster.kubectl(&["get", "crd", &name]) {
        Ok(out) => Err(format!("the deleted CRD is still there: {out}")),
        Err(crate::ClusterError::Failed { stderr, .. }) if stderr.contains("NotFound") => Ok(()),
        Err(e) => Err(format!("unexpected error after the delete: {e}")),
    }
}

/// "should include custom resource definition resources in discovery documents".
pub fn in_discovery(cluster: &Cluster) -> Result<(), String> {
    let apis = cluster.get_json("/apis").map_err(fail)?;
    let extensions = apis["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "apiextensions.k8s.io")
        .ok_or("apiextensions.k8s.io is not in /apis")?;
    if extensions["preferredVersion"]["groupVersion"] != "apiextensions.k8s.io/v1" {
        return Err(format!("apiextensions.k8s.io prefers {extensions}"));
    }
    let group = cluster
        .get_json("/apis/apiextensions.k8s.io")
        .map_err(fail)?;
    if group["preferredVersion"]["version"] != "v1" {
        return Err(format!("/apis/apiextensions.k8s.io: {group}"));
    }
    let resources = cluster
        .get_json("/apis/apiextensions.k8s.io/v1")
        .map_err(fail)?;
    let listed = |list: &Value, name: &str| {
        list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == name)
    };
    if !listed(&resources, "customresourcedefinitions") {
        return Err(format!("no customresourcedefinitions in {resources}"));
    }
    // a new CRD's group and resource appear too (upstream checks the fixed group; a
    // created one shows that discovery follows CRDs)
    let (crd_group, plural, crd) = random_crd();
    let name = create_established(cluster, &crd)?;
    let outcome = (|| {
        let served = cluster
            .get_json(&format!("/apis/{crd_group}/v1"))
            .map_err(fail)?;
        if !listed(&served, &plural) {
            return Err(format!("{plural} is not in /apis/{crd_group}/v1: {served}"));
        }
        Ok(())
    })();
    cluster.kubectl(&["delete", "crd", &name]).map_err(fail)?;
    outcome
}
