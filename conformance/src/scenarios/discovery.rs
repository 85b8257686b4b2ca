//! As upstream's test/e2e/apimachinery/discovery.go: the discovery documents kubectl and
//! every client library read to learn what the server serves.

use super::fail;
use crate::Cluster;

/// Group versions every v1.33 cluster serves, with one resource each, as the upstream
/// test's expectation table.
const EXPECTED: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
    ),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions"),
    ("apiregistration.k8s.io/v1", "apiservices"),
    ("apps/v1", "deployments"),
    ("authentication.k8s.io/v1", "tokenreviews"),
    ("authorization.k8s.io/v1", "selfsubjectaccessreviews"),
    ("autoscaling/v1", "horizontalpodautoscalers"),
    ("autoscaling/v2", "horizontalpodautoscalers"),
    ("batch/v1", "jobs"),
    ("certificates.k8s.io/v1", "certificatesigningrequests"),
    ("coordination.k8s.io/v1", "leases"),
    ("discovery.k8s.io/v1", "endpointslices"),
    ("events.k8s.io/v1", "events"),
    ("flowcontrol.apiserver.k8s.io/v1", "flowschemas"),
    ("networking.k8s.io/v1", "ingresses"),
    ("node.k8s.io/v1", "runtimeclasses"),
    ("policy/v1", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io/v1", "roles"),
    ("scheduling.k8s.io/v1", "priorityclasses"),
    ("storage.k8s.io/v1", "storageclasses"),
];

fn groups(cluster: &Cluster) -> Result<Vec<serde_json::Value>, String> {
    let list = cluster.get_json("/apis").map_err(fail)?;
    if list["kind"] != "APIGroupList" {
        return Err(format!("/apis is not an APIGroupList: {}", list["kind"]));
    }
    list["groups"]
        .as_array()
        .cloned()
        .ok_or_else(|| "/apis has no groups".to_owned())
}

/// "Discovery should validate PreferredVersion for each APIGroup": each group's own
/// document names the same preferred version as `/apis`, and that version is served.
pub fn preferred_version_for_each_group(cluster: &Cluster) -> Result<(), String> {
    for group in groups(cluster)? {
        let name = group["name"].as_str().unwrap_or_default();
        let preferred = &group["preferredVersion"]["groupVersion"];
        let own = cluster.get_json(&format!("/apis/{name}")).map_err(fail)?;
        if own["kind"] != "APIGroup" || &own["preferredVersion"]["groupVersion"] != preferred {
            return Err(format!(
                "/apis/{name} prefers {}, /apis says {preferred}",
                own["preferredVersion"]
            ));
        }
        let served = group["versions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| &v["groupVersion"] == preferred));
        if !served {
            return Err(format!(
                "group {name}: preferred version {preferred} is not among its versions"
            ));
        }
    }
    Ok(())
}

/// "Discovery should locate the groupVersion and a resource within each APIGroup":
/// every expected group version is listed and its resource list holds the resource.
pub fn group_version_and_a_resource_in_each_group(cluster: &Cluster) -> Result<(), String> {
    let groups = groups(cluster)?;
    for (group_version, resource) in EXPECTED {
        let listed = groups.iter().any(|g| {
            g["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["groupVersion"] == *group_version))
        });
        if !listed {
            return Err(format!("{group_version} is not in /apis"));
        }
        let list = cluster
            .get_json(&format!("/apis/{group_version}"))
            .map_err(fail)?;
        if list["groupVersion"] != *group_version {
            return Err(format!(
                "/apis/{group_version} says groupVersion {}",
                list["groupVersion"]
            ));
        }
        let found = list["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == *resource));
        if !found {
            return Err(format!("{group_version} does not list {resource}"));
        }
    }
    let core = cluster.get_json("/api/v1").map_err(fail)?;
    if core["groupVersion"] != "v1"
        || !core["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "pods"))
    {
        return Err("/api/v1 does not list pods".into());
    }
    Ok(())
}
