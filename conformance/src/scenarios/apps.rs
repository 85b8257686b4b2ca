//! As upstream's test/e2e/apps/replica_set.go, rc.go, deployment.go and disruption.go:
//! what the workload controllers do with pods, replica sets and budgets, checked on the
//! objects through kubectl. No container runs: the node's kubelet may be a stand-in
//! that only reports pods Running and Ready, which is all these tests look at.

use serde_json::{Value, json};

use super::{fail, poll, token};
use crate::{Cluster, ClusterError};

/// Upstream's `WebserverImage` and its container name.
const WEBSERVER: (&str, &str) = ("httpd", "registry.k8s.io/e2e-test-images/httpd:2.4.38-4");
/// Upstream's `AgnhostImage` and its container name.
const AGNHOST: (&str, &str) = ("agnhost", "registry.k8s.io/e2e-test-images/agnhost:2.53");
/// Upstream's pause image.
const PAUSE: &str = "registry.k8s.io/pause:3.10";

/// The revision annotation of deployments and their replica sets.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Runs `body` in a fresh namespace, which is deleted afterwards whatever the outcome.
fn in_namespace(
    cluster: &Cluster,
    prefix: &str,
    body: impl FnOnce(&str) -> Result<(), String>,
) -> Result<(), String> {
    let ns = cluster.namespace(prefix).map_err(fail)?;
    let result = body(&ns);
    let cleanup = cluster
        .kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .map_err(fail);
    result.and(cleanup.map(|_| ()))
}

/// GETs `path`; `None` when the server answers 404.
fn get_opt(cluster: &Cluster, path: &str) -> Result<Option<Value>, String> {
    match cluster.get_json(path) {
        Ok(v) => Ok(Some(v)),
        Err(ClusterError::Failed { stderr, .. }) if stderr.contains("NotFound") => Ok(None),
        Err(e) => Err(fail(e)),
    }
}

fn get(cluster: &Cluster, path: &str) -> Result<Value, String> {
    cluster.get_json(path).map_err(fail)
}

/// The items of a list at `path`.
fn items(cluster: &Cluster, path: &str) -> Result<Vec<Value>, String> {
    let list = get(cluster, path)?;
    list["items"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no items in the list at {path}: {list}"))
}

/// `key=value,...` of a label map, URL-encoded for a query.
fn selector_query(labels: &Value) -> String {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}%3D{}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("%2C")
        })
        .unwrap_or_default()
}

fn pods_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods")
}

fn terminating(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

fn obj_name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `obj`'s controller reference names the object of `owner_uid`.
fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["controller"] == true && r["uid"] == owner_uid)
}

/// A pod template with one container.
fn template(labels: &Value, (container, image): (&str, &str)) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": container, "image": image}]
        }
    })
}

/// Upstream's `newRS`: labels, selector and template labels all `labels`.
fn replica_set(name: &str, replicas: i32, labels: &Value, container: (&str, &str)) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template(labels, container)
        }
    })
}

/// Upstream's `newRC`.
fn replication_controller(name: &str, replicas: i32, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": labels,
            "template": template(labels, (name, WEBSERVER.1))
        }
    })
}

/// Upstream's `e2edeployment.NewDeployment` with the RollingUpdate strategy.
fn deployment(name: &str, replicas: i32, labels: &Value, container: (&str, &str)) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate"},
            "template": template(labels, container)
        }
    })
}

/// A bare pod named `name` labelled `labels`.
fn pod(name: &str, labels: &Value, (container, image): (&str, &str)) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": container, "image": image}]}
    })
}

fn create(cluster: &Cluster, ns: &str, manifest: &Value) -> Result<Value, String> {
    let out = cluster.create(ns, manifest).map_err(fail)?;
    serde_json::from_str(&out).map_err(fail)
}

/// Waits until pod `name` is Running (upstream's `CreateSync`).
fn wait_running(cluster: &Cluster, ns: &str, name: &str) -> Result<(), String> {
    poll(|| {
        let pod = get(cluster, &format!("{}/{name}", pods_path(ns)))?;
        match pod["status"]["phase"].as_str() {
            Some("Running") => Ok(()),
            phase => Err(format!("pod {name} is {phase:?}, not Running")),
        }
    })
}

/// Upstream's `VerifyPodsRunning(ns, name, false, replicas)`: `replicas` pods labelled
/// `name=<name>` exist (not counting terminating ones) and all run.
fn wait_pods_running(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    replicas: usize,
) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    poll(|| {
        let pods: Vec<Value> = items(
            cluster,
            &format!("{}?labelSelector=name%3D{name}", pods_path(ns)),
        )?
        .into_iter()
        .filter(|p| !terminating(p))
        .collect();
        let running = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        if pods.len() == replicas && running == replicas {
            found = pods;
            Ok(())
        } else {
            Err(format!(
                "{} pods labelled name={name}, {running} running; want {replicas}",
                pods.len()
            ))
        }
    })?;
    Ok(found)
}

/// Changes pod `pod_name`'s labels to `name=not-matching-name` with a PUT of the pod
/// (upstream's Update, retried on conflict).
fn relabel_not_matching(cluster: &Cluster, ns: &str, pod_name: &str) -> Result<(), String> {
    poll(|| {
        let mut pod = get(cluster, &format!("{}/{pod_name}", pods_path(ns)))?;
        pod["metadata"]["labels"] = json!({"name": "not-matching-name"});
        cluster
            .kubectl_stdin(
                &["replace", "--validate=false", "-n", ns, "-f", "-"],
                &pod.to_string(),
            )
            .map(|_| ())
            .map_err(fail)
    })
}

/// Waits until pod `pod_name` no longer has the object of `owner_uid` as controller.
fn wait_released(
    cluster: &Cluster,
    ns: &str,
    pod_name: &str,
    owner_uid: &str,
) -> Result<(), String> {
    poll(|| {
        let pod = get(cluster, &format!("{}/{pod_name}", pods_path(ns)))?;
        if controlled_by(&pod, owner_uid) {
            Err(format!(
                "pod {pod_name} is still controlled by its owner: {}",
                pod["metadata"]["ownerReferences"]
            ))
        } else {
            Ok(())
        }
    })
}

/// Waits until the orphan pod `pod_name` is adopted by the object of `owner_uid`, or
/// deleted (upstream accepts either).
fn wait_adopted(
    cluster: &Cluster,
    ns: &str,
    pod_name: &str,
    owner_uid: &str,
) -> Result<(), String> {
    poll(
        || match get_opt(cluster, &format!("{}/{pod_name}", pods_path(ns)))? {
            None => Ok(()),
            Some(pod) if controlled_by(&pod, owner_uid) => Ok(()),
            Some(pod) => Err(format!(
                "pod {pod_name} is not adopted: ownerReferences {}",
                pod["metadata"]["ownerReferences"]
            )),
        },
    )
}

/// "ReplicaSet should adopt matching pods on creation and release no longer matching
/// pods".
pub fn rs_adopt_and_release(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "replicaset", |ns| {
        let name = "pod-adoption-release";
        let labels = json!({"name": name});
        create(cluster, ns, &pod(name, &labels, (name, WEBSERVER.1)))?;
        wait_running(cluster, ns, name)?;
        let rs = create(
            cluster,
            ns,
            &replica_set(name, 1, &labels, (name, WEBSERVER.1)),
        )?;
        wait_adopted(cluster, ns, name, uid(&rs))?;
        let pods = wait_pods_running(cluster, ns, name, 1)?;
        let pod_name = pods
            .first()
            .map(|p| obj_name(p).to_owned())
            .unwrap_or_default();
        relabel_not_matching(cluster, ns, &pod_name)?;
        wait_released(cluster, ns, &pod_name, uid(&rs))
    })
}

/// "ReplicationController should adopt matching pods on creation".
pub fn rc_adopt(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "replication-controller", |ns| {
        let name = "pod-adoption";
        let labels = json!({"name": name});
        create(cluster, ns, &pod(name, &labels, (name, WEBSERVER.1)))?;
        wait_running(cluster, ns, name)?;
        let rc = create(cluster, ns, &replication_controller(name, 1, &labels))?;
        wait_adopted(cluster, ns, name, uid(&rc))
    })
}

/// "ReplicationController should release no longer matching pods".
pub fn rc_release(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "replication-controller", |ns| {
        let name = "pod-release";
        let labels = json!({"name": name});
        let rc = create(cluster, ns, &replication_controller(name, 1, &labels))?;
        // upstream's PodsCreated: the controller made its one pod
        let mut pod_name = String::new();
        poll(|| {
            let pods: Vec<Value> = items(
                cluster,
                &format!("{}?labelSelector=name%3D{name}", pods_path(ns)),
            )?
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
            match pods.as_slice() {
                [one] => {
                    pod_name = obj_name(one).to_owned();
                    Ok(())
                }
                other => Err(format!("{} pods labelled name={name}, want 1", other.len())),
            }
        })?;
        relabel_not_matching(cluster, ns, &pod_name)?;
        wait_released(cluster, ns, &pod_name, uid(&rc))
    })
}

/// A pod template without the `pod-template-hash` label the deployment controller adds.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    t
}

/// The replica sets a deployment controls: (the new one, the old ones), as upstream's
/// `GetNewReplicaSet` / `GetOldReplicaSets` (all old ones, scaled down or not).
fn replica_sets_of(
    cluster: &Cluster,
    ns: &str,
    deployment: &Value,
) -> Result<(Option<Value>, Vec<Value>), String> {
    let selector = selector_query(&deployment["spec"]["selector"]["matchLabels"]);
    let owned: Vec<Value> = items(
        cluster,
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector={selector}"),
    )?
    .into_iter()
    .filter(|rs| controlled_by(rs, uid(deployment)))
    .collect();
    let wanted = without_hash(&deployment["spec"]["template"]);
    let (new, old): (Vec<Value>, Vec<Value>) = owned
        .into_iter()
        .partition(|rs| without_hash(&rs["spec"]["template"]) == wanted);
    Ok((new.into_iter().next(), old))
}

fn deployment_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

fn first_image(template: &Value) -> &str {
    template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

/// Upstream's `WaitForDeploymentRevisionAndImage`: the deployment and its new replica
/// set carry `revision` and run `image`.
fn wait_revision_and_image(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    revision: &str,
    image: &str,
) -> Result<(), String> {
    poll(|| {
        let d = get(cluster, &deployment_path(ns, name))?;
        let (new, _) = replica_sets_of(cluster, ns, &d)?;
        let Some(new) = new else {
            return Err(format!("deployment {name} has no new replica set"));
        };
        let d_revision = d["metadata"]["annotations"][REVISION].as_str();
        let rs_revision = new["metadata"]["annotations"][REVISION].as_str();
        if d_revision != Some(revision) || rs_revision != Some(revision) {
            return Err(format!(
                "revision of deployment {name} is {d_revision:?}, of its new replica set \
                 {rs_revision:?}; want {revision}"
            ));
        }
        let (d_image, rs_image) = (
            first_image(&d["spec"]["template"]),
            first_image(&new["spec"]["template"]),
        );
        if d_image != image || rs_image != image {
            return Err(format!(
                "image of deployment {name} is {d_image}, of its new replica set {rs_image}"
            ));
        }
        Ok(())
    })
}

/// Upstream's `WaitForDeploymentComplete`: every replica updated and available, the
/// latest generation observed.
fn wait_complete(cluster: &Cluster, ns: &str, name: &str) -> Result<Value, String> {
    let mut done = Value::Null;
    poll(|| {
        let d = get(cluster, &deployment_path(ns, name))?;
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = &d["status"];
        let count = |field: &str| status[field].as_i64().unwrap_or(0);
        let observed =
            count("observedGeneration") >= d["metadata"]["generation"].as_i64().unwrap_or(i64::MAX);
        if observed
            && count("updatedReplicas") == want
            && count("replicas") == want
            && count("availableReplicas") == want
        {
            done = d;
            Ok(())
        } else {
            Err(format!(
                "deployment {name} is not complete (want {want} replicas): {status}"
            ))
        }
    })?;
    Ok(done)
}

/// "Deployment deployment should delete old replica sets": a deployment with
/// `revisionHistoryLimit: 0` adopts a matching replica set, replaces its pod with one
/// new pod and deletes it.
pub fn deployment_deletes_old_replica_sets(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "deployment", |ns| {
        let rs_labels = json!({"name": "cleanup-pod", "pod": WEBSERVER.0});
        let rs_name = "test-cleanup-controller";
        create(cluster, ns, &replica_set(rs_name, 1, &rs_labels, WEBSERVER))?;
        wait_pods_running(cluster, ns, "cleanup-pod", 1)?;
        // every pod created from here on: upstream watches for exactly one, the new one
        let before = get(cluster, &pods_path(ns))?;
        let resource_version = before["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = "test-cleanup-deployment";
        let mut d = deployment(name, 1, &json!({"name": "cleanup-pod"}), AGNHOST);
        d["spec"]["revisionHistoryLimit"] = json!(0);
        create(cluster, ns, &d)?;
        poll(|| {
            let d = get(cluster, &deployment_path(ns, name))?;
            let (_, old) = replica_sets_of(cluster, ns, &d)?;
            if !old.is_empty() {
                let names: Vec<&str> = old.iter().map(obj_name).collect();
                return Err(format!("old replica sets left: {names:?}"));
            }
            // the adopted replica set itself is gone, not merely released
            match get_opt(
                cluster,
                &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{rs_name}"),
            )? {
                None => Ok(()),
                Some(rs) => Err(format!(
                    "replica set {rs_name} still exists, ownerReferences {}",
                    rs["metadata"]["ownerReferences"]
                )),
            }
        })?;
        // replay the pod events since then: one pod was created, running agnhost
        let events = cluster
            .kubectl(&[
                "get",
                "--raw",
                &format!(
                    "{}?watch=1&resourceVersion={resource_version}&timeoutSeconds=1",
                    pods_path(ns)
                ),
            ])
            .map_err(fail)?;
        let added: Vec<Value> = events
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["type"] == "ADDED")
            .collect();
        match added.as_slice() {
            [one] if one["object"]["spec"]["containers"][0]["name"] == AGNHOST.0 => Ok(()),
            _ => Err(format!(
                "want exactly one pod created, with container {}; created: {:?}",
                AGNHOST.0,
                added
                    .iter()
                    .map(|e| (
                        obj_name(&e["object"]).to_owned(),
                        e["object"]["spec"]["containers"][0]["name"].clone()
                    ))
                    .collect::<Vec<_>>()
            )),
        }
    })
}

/// "Deployment RollingUpdateDeployment should delete old pods and create new ones": a
/// deployment adopts a replica set at revision 3546343826724305832, rolls out the next
/// revision and keeps the adopted one as its only old replica set.
pub fn rolling_update_deployment(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "deployment", |ns| {
        let rs_labels = json!({"name": "sample-pod", "pod": WEBSERVER.0});
        let mut rs = replica_set("test-rolling-update-controller", 1, &rs_labels, WEBSERVER);
        rs["metadata"]["annotations"] = json!({REVISION: "3546343826724305832"});
        create(cluster, ns, &rs)?;
        wait_pods_running(cluster, ns, "sample-pod", 1)?;
        let name = "test-rolling-update-deployment";
        create(
            cluster,
            ns,
            &deployment(name, 1, &json!({"name": "sample-pod"}), AGNHOST),
        )?;
        wait_revision_and_image(cluster, ns, name, "3546343826724305833", AGNHOST.1)?;
        let d = wait_complete(cluster, ns, name)?;
        let (_, old) = replica_sets_of(cluster, ns, &d)?;
        match old.as_slice() {
            [one] if obj_name(one) == "test-rolling-update-controller" => Ok(()),
            _ => Err(format!(
                "want the adopted replica set as the one old replica set, got {:?}",
                old.iter().map(obj_name).collect::<Vec<_>>()
            )),
        }
    })
}

/// The scale subresource of `path` (an object's path): GET shows 1 replica in spec and
/// status, a PUT without resourceVersion sets 2, a strategic-merge PATCH sets 4; each
/// visible in the object's `spec.replicas`.
fn check_scale_subresource(
    cluster: &Cluster,
    ns: &str,
    kind: &str,
    name: &str,
    path: &str,
) -> Result<(), String> {
    let scale_path = format!("{path}/scale");
    let mut scale = Value::Null;
    // status.replicas follows the pods the controller made
    poll(|| {
        scale = get(cluster, &scale_path)?;
        if scale["spec"]["replicas"] == 1 && scale["status"]["replicas"] == 1 {
            Ok(())
        } else {
            Err(format!("scale of {kind} {name}: {scale}"))
        }
    })?;
    if scale["kind"] != "Scale" || scale["apiVersion"] != "autoscaling/v1" {
        return Err(format!("not an autoscaling/v1 Scale: {scale}"));
    }
    scale["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    scale["spec"]["replicas"] = json!(2);
    let answer = cluster
        .kubectl_stdin(
            &["replace", "--raw", &scale_path, "-f", "-"],
            &scale.to_string(),
        )
        .map_err(fail)?;
    let updated: Value = serde_json::from_str(&answer).map_err(fail)?;
    if updated["spec"]["replicas"] != 2 {
        return Err(format!("PUT scale answered {updated}"));
    }
    let object = get(cluster, path)?;
    if object["spec"]["replicas"] != 2 {
        return Err(format!(
            "{kind} spec.replicas is {} after the scale update, want 2",
            object["spec"]["replicas"]
        ));
    }
    cluster
        .kubectl(&[
            "patch",
            kind,
            name,
            "-n",
            ns,
            "--subresource=scale",
            "--type=strategic",
            "-p",
            r#"{"spec":{"replicas":4}}"#,
        ])
        .map_err(fail)?;
    let object = get(cluster, path)?;
    if object["spec"]["replicas"] != 4 {
        return Err(format!(
            "{kind} spec.replicas is {} after the scale patch, want 4",
            object["spec"]["replicas"]
        ));
    }
    Ok(())
}

/// "Deployment Deployment should have a working scale subresource".
pub fn deployment_scale_subresource(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "deployment", |ns| {
        let name = "test-new-deployment";
        create(
            cluster,
            ns,
            &deployment(name, 1, &json!({"name": WEBSERVER.0}), WEBSERVER),
        )?;
        wait_revision_and_image(cluster, ns, name, "1", WEBSERVER.1)?;
        wait_complete(cluster, ns, name)?;
        check_scale_subresource(cluster, ns, "deployment", name, &deployment_path(ns, name))
    })
}

/// "ReplicaSet Replicaset should have a working scale subresource".
pub fn rs_scale_subresource(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "replicaset", |ns| {
        let name = "test-rs";
        let labels = json!({"name": "sample-pod", "pod": WEBSERVER.0});
        create(cluster, ns, &replica_set(name, 1, &labels, WEBSERVER))?;
        wait_pods_running(cluster, ns, "sample-pod", 1)?;
        check_scale_subresource(
            cluster,
            ns,
            "replicaset",
            name,
            &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}"),
        )
    })
}

/// "ReplicaSet should list and delete a collection of ReplicaSets".
pub fn rs_list_and_delete_collection(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "replicaset", |ns| {
        let e2e = token();
        let labels = json!({"name": "sample-pod", "pod": WEBSERVER.0, "e2e": e2e});
        create(cluster, ns, &replica_set("test-rs", 3, &labels, WEBSERVER))?;
        wait_pods_running(cluster, ns, "sample-pod", 3)?;
        let across = format!("/apis/apps/v1/replicasets?labelSelector=e2e%3D{e2e}");
        let listed = items(cluster, &across)?;
        if listed.len() != 1 {
            return Err(format!(
                "{} replica sets labelled e2e={e2e} across namespaces, want 1",
                listed.len()
            ));
        }
        cluster
            .kubectl(&[
                "delete",
                "--raw",
                &format!(
                    "/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=e2e%3D{e2e}&gracePeriodSeconds=1"
                ),
            ])
            .map_err(fail)?;
        let left = items(cluster, &across)?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "replica sets left after deletecollection: {:?}",
                left.iter().map(obj_name).collect::<Vec<_>>()
            ))
        }
    })
}

fn pdb_path(ns: &str) -> String {
    format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/foo")
}

/// Upstream's `createPDBMinAvailableOrDie(.., "foo", minAvailable, {foo: bar})`, then
/// `waitForPdbToBeProcessed`.
fn create_pdb(cluster: &Cluster, ns: &str, min_available: i32) -> Result<(), String> {
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "foo", "labels": {"foo": "bar"}},
        "spec": {"selector": {"matchLabels": {"foo": "bar"}}, "minAvailable": min_available}
    });
    create(cluster, ns, &pdb)?;
    wait_pdb_processed(cluster, ns)
}

/// Upstream's `waitForPdbToBeProcessed`: the controller observed the latest generation.
fn wait_pdb_processed(cluster: &Cluster, ns: &str) -> Result<(), String> {
    poll(|| {
        let pdb = get(cluster, &pdb_path(ns))?;
        let observed = pdb["status"]["observedGeneration"].as_i64().unwrap_or(0);
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
        if observed >= generation {
            Ok(())
        } else {
            Err(format!(
                "PDB observedGeneration {observed} < generation {generation}"
            ))
        }
    })
}

/// The pods labelled foo=bar that are Ready and not terminating.
fn ready_pods(cluster: &Cluster, ns: &str) -> Result<Vec<Value>, String> {
    Ok(items(
        cluster,
        &format!("{}?labelSelector=foo%3Dbar", pods_path(ns)),
    )?
    .into_iter()
    .filter(|p| is_ready(p) && !terminating(p))
    .collect())
}

/// Upstream's `waitForPodsOrDie`: at least `n` pods labelled foo=bar are Ready.
fn wait_ready_pods(cluster: &Cluster, ns: &str, n: usize) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    poll(|| {
        found = ready_pods(cluster, ns)?;
        if found.len() >= n {
            Ok(())
        } else {
            Err(format!(
                "{} ready pods labelled foo=bar, want {n}",
                found.len()
            ))
        }
    })?;
    Ok(found)
}

/// "DisruptionController should observe PodDisruptionBudget status updated".
pub fn pdb_status_updated(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "disruption", |ns| {
        create_pdb(cluster, ns, 1)?;
        for i in 0..3 {
            let mut p = pod(
                &format!("pod-{i}"),
                &json!({"foo": "bar"}),
                ("donothing", PAUSE),
            );
            p["spec"]["restartPolicy"] = json!("Always");
            create(cluster, ns, &p)?;
        }
        wait_ready_pods(cluster, ns, 3)?;
        poll(|| {
            let pdb = get(cluster, &pdb_path(ns))?;
            match pdb["status"]["disruptionsAllowed"].as_i64() {
                Some(n) if n > 0 => Ok(()),
                _ => Err(format!(
                    "PDB status allows no disruption: {}",
                    pdb["status"]
                )),
            }
        })
    })
}

/// POSTs a policy/v1 Eviction of `pod_name`; the server's answer.
fn evict(cluster: &Cluster, ns: &str, pod_name: &str) -> Result<crate::Response, String> {
    let eviction = json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod_name, "namespace": ns}
    });
    cluster
        .request(
            "POST",
            &format!("{}/{pod_name}/eviction", pods_path(ns)),
            "application/json",
            &eviction.to_string(),
        )
        .map_err(fail)
}

/// The eviction must be refused with a `DisruptionBudget` cause.
fn expect_refused(cluster: &Cluster, ns: &str, pod_name: &str) -> Result<(), String> {
    let answer = evict(cluster, ns, pod_name)?;
    let body = answer.json();
    let has_cause = body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["reason"] == "DisruptionBudget");
    if answer.status == 429 && has_cause {
        Ok(())
    } else {
        Err(format!(
            "evicting {pod_name}: want 429 with a DisruptionBudget cause, got {}: {}",
            answer.status, answer.body
        ))
    }
}

fn expect_allowed(cluster: &Cluster, ns: &str, pod_name: &str) -> Result<(), String> {
    let answer = evict(cluster, ns, pod_name)?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(format!(
            "evicting {pod_name}: want it allowed, got {}: {}",
            answer.status, answer.body
        ))
    }
}

/// "DisruptionController should block an eviction until the PDB is updated to allow it".
pub fn pdb_blocks_eviction_until_updated(cluster: &Cluster) -> Result<(), String> {
    in_namespace(cluster, "disruption", |ns| {
        create_pdb(cluster, ns, 3)?;
        let labels = json!({"foo": "bar"});
        let mut rs = replica_set("rs", 3, &labels, ("donothing", PAUSE));
        rs["metadata"].as_object_mut().map(|m| m.remove("labels"));
        rs["spec"]["template"]["spec"]
            .as_object_mut()
            .map(|s| s.remove("terminationGracePeriodSeconds"));
        create(cluster, ns, &rs)?;
        let pods = wait_ready_pods(cluster, ns, 3)?;
        let first = pods
            .first()
            .map(|p| obj_name(p).to_owned())
            .unwrap_or_default();
        expect_refused(cluster, ns, &first)?;

        // an update (GET, then PUT, retried on conflict) to minAvailable 2
        poll(|| {
            let mut pdb = get(cluster, &pdb_path(ns))?;
            pdb["spec"]["minAvailable"] = json!(2);
            cluster
                .kubectl_stdin(
                    &["replace", "--validate=false", "-n", ns, "-f", "-"],
                    &pdb.to_string(),
                )
                .map(|_| ())
                .map_err(fail)
        })?;
        wait_pdb_processed(cluster, ns)?;
        wait_ready_pods(cluster, ns, 3)?;
        // upstream's waitForPdbToObserveHealthyPods(3, 2)
        poll(|| {
            let pdb = get(cluster, &pdb_path(ns))?;
            let status = &pdb["status"];
            if status["currentHealthy"] == 3 && status["desiredHealthy"] == 2 {
                Ok(())
            } else {
                Err(format!("PDB status: {status}"))
            }
        })?;
        expect_allowed(cluster, ns, &first)?;

        // a merge patch to maxUnavailable 0
        cluster
            .kubectl(&[
                "patch",
                "poddisruptionbudget",
                "foo",
                "-n",
                ns,
                "--type=merge",
                "-p",
                r#"{"spec":{"minAvailable":null,"maxUnavailable":0}}"#,
            ])
            .map_err(fail)?;
        wait_pdb_processed(cluster, ns)?;
        let pods = wait_ready_pods(cluster, ns, 3)?;
        let second = pods
            .first()
            .map(|p| obj_name(p).to_owned())
            .unwrap_or_default();
        expect_refused(cluster, ns, &second)?;

        cluster
            .kubectl(&["delete", "poddisruptionbudget", "foo", "-n", ns])
            .map_err(fail)?;
        poll(|| match get_opt(cluster, &pdb_path(ns))? {
            None => Ok(()),
            Some(_) => Err("the PDB is still there".into()),
        })?;
        wait_ready_pods(cluster, ns, 3)?;
        expect_allowed(cluster, ns, &second)
    })
}
