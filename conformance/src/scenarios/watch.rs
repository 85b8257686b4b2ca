//! As upstream's test/e2e/apimachinery/watch.go, through raw watch requests that end
//! after `timeoutSeconds`.

use serde_json::{Value, json};

use super::fail;
use crate::Cluster;

/// The events of a watch that runs for one second.
fn watch_events(cluster: &Cluster, path: &str) -> Result<Vec<(String, Value)>, String> {
    let body = cluster.kubectl(&["get", "--raw", path]).map_err(fail)?;
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let event: Value = serde_json::from_str(l)
                .map_err(|e| format!("watch line is not JSON ({e}): {l}"))?;
            Ok((
                event["type"].as_str().unwrap_or("").to_owned(),
                event["object"].clone(),
            ))
        })
        .collect()
}

/// The resourceVersion of a list of the ConfigMaps in `ns`: where a watch of what
/// follows starts.
fn configmaps_version(cluster: &Cluster, ns: &str) -> Result<String, String> {
    let list = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}/configmaps"))
        .map_err(fail)?;
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned())
}

/// A merge patch of ConfigMap `name` in `ns`; the patched object as JSON.
fn patch_configmap(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<String, String> {
    cluster
        .kubectl(&[
            "patch",
            "-n",
            ns,
            "configmap",
            name,
            "--type=merge",
            "-o",
            "json",
            "-p",
            &patch.to_string(),
        ])
        .map_err(fail)
}

fn delete_configmap(cluster: &Cluster, ns: &str, name: &str) -> Result<(), String> {
    cluster
        .kubectl(&["delete", "-n", ns, "configmap", name])
        .map(drop)
        .map_err(fail)
}

/// `{"data": {"mutation": n}}`, the change upstream's watch tests make.
fn mutation(n: u32) -> Value {
    json!({"data": {"mutation": n.to_string()}})
}

fn resource_version(object: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(object).map_err(fail)?;
    value["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no resourceVersion".into())
}

/// "Watchers should be able to start watching from a specific resource version": a
/// watch from the first update's version sees the second update and the deletion.
pub fn from_a_specific_resource_version(cluster: &Cluster) -> Result<(), String> {
    const NAME: &str = "e2e-watch-test-resource-version";
    let ns = cluster.namespace("watch-rv").map_err(fail)?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "labels": {"watch-this-configmap": "from-resource-version"}}});
    cluster.create(&ns, &cm).map_err(fail)?;
    let first = resource_version(&patch_configmap(cluster, &ns, NAME, &mutation(1))?)?;
    patch_configmap(cluster, &ns, NAME, &mutation(2))?;
    delete_configmap(cluster, &ns, NAME)?;
    let events = watch_events(
        cluster,
        &format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={first}&timeoutSeconds=1&labelSelector=watch-this-configmap%3Dfrom-resource-version"
        ),
    )?;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    if kinds != ["MODIFIED", "DELETED"] || events[0].1["data"]["mutation"] != "2" {
        return Err(format!(
            "expected MODIFIED (mutation 2) then DELETED, got {kinds:?}"
        ));
    }
    Ok(())
}

/// "Watchers should observe add, update, and delete watch notifications on configmaps":
/// a watch from the list's version sees ADDED, MODIFIED twice and DELETED, in order.
pub fn add_update_delete_notifications(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("watch-aud").map_err(fail)?;
    let start = configmaps_version(cluster, &ns)?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e2e-watch-test-configmap-a", "labels": {"watch-this-configmap": "multiple-watchers-A"}}});
    cluster.create(&ns, &cm).map_err(fail)?;
    for n in 1..=2 {
        patch_configmap(cluster, &ns, "e2e-watch-test-configmap-a", &mutation(n))?;
    }
    delete_configmap(cluster, &ns, "e2e-watch-test-configmap-a")?;
    let events = watch_events(
        cluster,
        &format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={start}&timeoutSeconds=1"
        ),
    )?;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    if kinds != ["ADDED", "MODIFIED", "MODIFIED", "DELETED"] {
        return Err(format!(
            "expected ADDED, MODIFIED, MODIFIED, DELETED; got {kinds:?}"
        ));
    }
    Ok(())
}

/// "Watchers should observe an object deletion if it stops meeting the requirements of
/// the selector": a label-selected watch sees the ConfigMap ADDED, MODIFIED, DELETED
/// when its label changes, nothing while it stays outside the selector, ADDED again
/// when the label is restored, then MODIFIED and DELETED.
pub fn deletion_when_the_selector_stops_matching(cluster: &Cluster) -> Result<(), String> {
    const NAME: &str = "e2e-watch-test-label-changed";
    let ns = cluster.namespace("watch-label").map_err(fail)?;
    let start = configmaps_version(cluster, &ns)?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "labels": {"watch-this-configmap": "label-changed-and-restored"}}});
    cluster.create(&ns, &cm).map_err(fail)?;
    let patch = |patch: Value| patch_configmap(cluster, &ns, NAME, &patch);
    let label = |value: &str| json!({"metadata": {"labels": {"watch-this-configmap": value}}});
    patch(mutation(1))?;
    patch(label("wrong-value"))?;
    patch(mutation(2))?;
    patch(label("label-changed-and-restored"))?;
    patch(mutation(3))?;
    delete_configmap(cluster, &ns, NAME)?;
    let events = watch_events(
        cluster,
        &format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={start}&timeoutSeconds=1&labelSelector=watch-this-configmap%3Dlabel-changed-and-restored"
        ),
    )?;
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|(kind, object)| {
            (
                kind.as_str(),
                object["data"]["mutation"].as_str().unwrap_or(""),
                object["metadata"]["labels"]["watch-this-configmap"]
                    .as_str()
                    .unwrap_or(""),
            )
        })
        .collect();
    let wanted = [
        ("ADDED", "", "label-changed-and-restored"),
        ("MODIFIED", "1", "label-changed-and-restored"),
        // upstream's cacheWatcher: the object as it last matched, at the change's version
        ("DELETED", "1", "label-changed-and-restored"),
        // mutation 2 happened outside the selection: no event
        ("ADDED", "2", "label-changed-and-restored"),
        ("MODIFIED", "3", "label-changed-and-restored"),
        ("DELETED", "3", "label-changed-and-restored"),
    ];
    if seen != wanted {
        return Err(format!(
            "expected (type, mutation, label) {wanted:?}, got {seen:?}"
        ));
    }
    Ok(())
}
