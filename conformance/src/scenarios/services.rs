//! As upstream's test/e2e/network/service.go (the API parts).

use serde_json::json;

use super::fail;
use crate::Cluster;

fn service(name: &str, label: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"e2e-test-service": label}}, "spec": {"ports": [{"port": 80, "targetPort": 80}]}})
}

/// "Services should find a service from listing all namespaces".
pub fn find_from_all_namespaces(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("services-all").map_err(fail)?;
    cluster
        .create(&ns, &service("test-service", "find"))
        .map_err(fail)?;
    let all = cluster.get_json("/api/v1/services").map_err(fail)?;
    let found = all["items"].as_array().is_some_and(|items| {
        items.iter().any(|s| {
            s["metadata"]["name"] == "test-service" && s["metadata"]["namespace"] == ns.as_str()
        })
    });
    if found {
        Ok(())
    } else {
        Err("the service is not in the list across all namespaces".into())
    }
}

/// "Services should delete a collection of services".
pub fn delete_a_collection(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("services-collection").map_err(fail)?;
    for name in ["e2e-svc-a", "e2e-svc-b", "e2e-svc-c"] {
        cluster
            .create(&ns, &service(name, "delete-collection"))
            .map_err(fail)?;
    }
    let selector = "e2e-test-service%3Ddelete-collection";
    cluster
        .kubectl(&[
            "delete",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/services?labelSelector={selector}"),
        ])
        .map_err(fail)?;
    let after = cluster
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/services?labelSelector={selector}"
        ))
        .map_err(fail)?;
    match after["items"].as_array() {
        Some(items) if items.is_empty() => Ok(()),
        _ => Err(format!("services left after deletecollection: {after}")),
    }
}
