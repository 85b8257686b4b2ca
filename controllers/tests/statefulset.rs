//! The StatefulSet controller against a real in-process apiserver, scheduler and fake
//! kubelet: an OrderedReady set creates its pods one at a time in ordinal order, each
//! after its predecessor is Ready, rolls a template change only down to the
//! partition (highest ordinal first), and scales down highest ordinal first, one pod
//! at a time; a Parallel set makes one claim per volumeClaimTemplate and pod before
//! the pod, and the retention policy's owners let the garbage collector delete the
//! claims of scaled-down pods.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use support::{controlled_by, events_about, ready_cluster, wait_for};

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What the pod watch saw, in the apiserver's order.
#[derive(Debug, Clone)]
enum Seen {
    /// A pod appeared; whether each pod seen so far was ready at that moment.
    Added(String, HashMap<String, bool>),
    /// A pod started being deleted (first seen with a deletionTimestamp); the pods
    /// still present then.
    Deleting(String, Vec<String>),
    /// A pod was removed.
    Deleted(String),
}

/// Records the pod events of `app` in `default` from now on.
async fn watch_pods(admin: &Client, app: &str) -> Arc<Mutex<Vec<Seen>>> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let version = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default()
        .labels(&format!("app={app}"))
        .timeout(290);
    let mut stream = pods.watch(&params, &version).await.unwrap().boxed();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        let mut state: HashMap<String, Pod> = HashMap::new();
        while let Ok(Some(event)) = stream.try_next().await {
            let mut log = sink.lock().unwrap();
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    let name = pod.name_any();
                    let was_deleting = state
                        .get(&name)
                        .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
                    if !state.contains_key(&name) {
                        let readiness = state.iter().map(|(n, p)| (n.clone(), ready(p))).collect();
                        log.push(Seen::Added(name.clone(), readiness));
                    }
                    if pod.metadata.deletion_timestamp.is_some() && !was_deleting {
                        let present = state.keys().filter(|n| **n != name).cloned().collect();
                        log.push(Seen::Deleting(name.clone(), present));
                    }
                    state.insert(name, pod);
                }
                WatchEvent::Deleted(pod) => {
                    let name = pod.name_any();
                    state.remove(&name);
                    log.push(Seen::Deleted(name));
                }
                _ => {}
            }
        }
    });
    log
}

fn stateful_set(name: &str, app: &str, spec: serde_json::Value) -> StatefulSet {
    let mut base = json!({
        "replicas": 3,
        "serviceName": name,
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        }
    });
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": base})).unwrap()
}

/// The pods of the set with `uid`, by name, not being deleted.
async fn set_pods(pods: &Api<Pod>, uid: &str) -> HashMap<String, Pod> {
    controlled_by(pods, uid)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p))
        .collect()
}

fn revision_label(pod: &Pod) -> String {
    pod.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

/// Merge-patches the set.
async fn patch_set(sets: &Api<StatefulSet>, name: &str, patch: serde_json::Value) {
    sets.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Waits until the set's status satisfies `check`, returning it.
async fn wait_status(
    sets: &Api<StatefulSet>,
    name: &str,
    what: &str,
    check: impl Fn(&StatefulSet) -> bool,
) -> StatefulSet {
    wait_for(what, || {
        let sets = sets.clone();
        let name = name.to_owned();
        let check = &check;
        async move {
            let set = sets.get(&name).await.unwrap();
            (set.status.is_some() && check(&set)).then_some(set)
        }
    })
    .await
}

fn counts(set: &StatefulSet) -> (i32, i32, i32, i32, i32) {
    let s = set.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.current_replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_set_creates_in_order_rolls_to_the_partition_and_scales_down_in_reverse() {
    let c = ready_cluster(&["statefulset"], 1).await;
    let sets: Api<StatefulSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let log = watch_pods(&c.admin, "web").await;

    let set = sets
        .create(
            &PostParams::default(),
            &stateful_set("web", "web", json!({})),
        )
        .await
        .unwrap();
    let uid = set.uid().unwrap();

    // --- created one at a time, in order, each after its predecessors are ready
    let set = wait_status(
        &sets,
        "web",
        "3 ready, current and available replicas",
        |s| {
            counts(s) == (3, 3, 3, 3, 3)
                && s.status.as_ref().unwrap().observed_generation == s.metadata.generation
        },
    )
    .await;
    let status = set.status.clone().unwrap();
    let first_revision = status.current_revision.clone().unwrap();
    assert_eq!(
        status.update_revision.as_deref(),
        Some(first_revision.as_str())
    );
    assert_eq!(status.collision_count, Some(0));

    let added: Vec<(String, HashMap<String, bool>)> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| match s {
            Seen::Added(name, readiness) => Some((name.clone(), readiness.clone())),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["web-0", "web-1", "web-2"],
        "created in ordinal order"
    );
    assert_eq!(
        added[1].1.get("web-0"),
        Some(&true),
        "web-0 ready before web-1 exists"
    );
    assert_eq!(added[2].1.get("web-0"), Some(&true));
    assert_eq!(
        added[2].1.get("web-1"),
        Some(&true),
        "web-1 ready before web-2 exists"
    );

    let current = set_pods(&pods, &uid).await;
    for (ordinal, name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        let pod = &current[*name];
        let labels = pod.labels();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], *name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ordinal.to_string());
        assert_eq!(labels["controller-revision-hash"], first_revision);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(*name));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("StatefulSet", "web")
        );
    }
    let revisions: Api<ControllerRevision> = Api::namespaced(c.admin.clone(), "default");
    let revision = revisions.get(&first_revision).await.unwrap();
    assert_eq!(revision.revision, 1);
    assert!(first_revision.starts_with("web-"));
    assert_eq!(
        revision
            .labels()
            .get("controller.kubernetes.io/hash")
            .map(|h| format!("web-{h}")),
        Some(first_revision.clone())
    );
    assert_eq!(revision.owner_references()[0].uid, uid);

    let created = wait_for("SuccessfulCreate events for the three pods", || {
        let admin = c.admin.clone();
        let uid = uid.clone();
        async move {
            let found = events(&admin, &uid, "SuccessfulCreate").await;
            (found.len() >= 3).then_some(found)
        }
    })
    .await;
    assert!(
        created
            .iter()
            .any(|m| m == "create Pod web-0 in StatefulSet web successful"),
        "{created:?}"
    );

    // --- a template change with partition 2 replaces only web-2
    let before = set_pods(&pods, &uid).await;
    patch_set(
        &sets,
        "web",
        json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
        }}),
    )
    .await;
    let set = wait_status(&sets, "web", "web-2 updated, web-0 and web-1 kept", |s| {
        let st = s.status.as_ref().unwrap();
        counts(s) == (3, 3, 2, 1, 3)
            && st.update_revision != st.current_revision
            && st.observed_generation == s.metadata.generation
    })
    .await;
    let status = set.status.clone().unwrap();
    let second_revision = status.update_revision.clone().unwrap();
    assert_eq!(
        status.current_revision.as_deref(),
        Some(first_revision.as_str())
    );
    let after = set_pods(&pods, &uid).await;
    for name in ["web-0", "web-1"] {
        assert_eq!(
            after[name].uid(),
            before[name].uid(),
            "{name} was not replaced"
        );
        assert_eq!(revision_label(&after[name]), first_revision);
    }
    assert_ne!(after["web-2"].uid(), before["web-2"].uid());
    assert_eq!(revision_label(&after["web-2"]), second_revision);
    let image = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image(&after["web-2"]), "nginx:2");
    assert_eq!(image(&after["web-0"]), "nginx:1");
    assert_eq!(revisions.get(&second_revision).await.unwrap().revision, 2);

    let deleting = |log: &[Seen]| -> Vec<String> {
        log.iter()
            .filter_map(|s| match s {
                Seen::Deleting(n, _) => Some(n.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        deleting(&log.lock().unwrap()),
        ["web-2"],
        "only the pod at or above the partition was replaced"
    );

    // --- partition 0: the rest roll, web-1 before web-0, and the update completes
    patch_set(
        &sets,
        "web",
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
    )
    .await;
    wait_status(&sets, "web", "every pod at the second revision", |s| {
        let st = s.status.as_ref().unwrap();
        counts(s) == (3, 3, 3, 3, 3)
            && st.current_revision.as_deref() == Some(second_revision.as_str())
            && st.update_revision.as_deref() == Some(second_revision.as_str())
    })
    .await;
    let rolled = set_pods(&pods, &uid).await;
    assert!(
        rolled
            .values()
            .all(|p| revision_label(p) == second_revision)
    );
    assert_eq!(deleting(&log.lock().unwrap()), ["web-2", "web-1", "web-0"]);

    // --- scale down to 1: web-2 goes first, and web-1 only once web-2 is gone
    log.lock().unwrap().clear();
    patch_set(&sets, "web", json!({"spec": {"replicas": 1}})).await;
    wait_status(&sets, "web", "one replica left", |s| {
        counts(s) == (1, 1, 1, 1, 1)
    })
    .await;
    let left = set_pods(&pods, &uid).await;
    assert_eq!(left.keys().collect::<Vec<_>>(), ["web-0"]);
    let log = log.lock().unwrap().clone();
    assert_eq!(deleting(&log), ["web-2", "web-1"]);
    let web1 = log
        .iter()
        .find_map(|s| match s {
            Seen::Deleting(n, present) if n == "web-1" => Some(present.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        !web1.contains(&"web-2".to_owned()),
        "web-1 was deleted while web-2 still existed: {log:?}"
    );
    let position = |wanted: &dyn Fn(&Seen) -> bool| log.iter().position(wanted).unwrap();
    assert!(
        position(&|s| matches!(s, Seen::Deleted(n) if n == "web-2"))
            < position(&|s| matches!(s, Seen::Deleting(n, _) if n == "web-1")),
        "web-2 was removed before web-1's deletion began: {log:?}"
    );
    let deleted = events(&c.admin, &uid, "SuccessfulDelete").await;
    assert!(
        deleted
            .iter()
            .any(|m| m == "delete Pod web-2 in StatefulSet web successful"),
        "{deleted:?}"
    );

    // --- a failed pod is deleted and made again under the same name
    let failed_uid = left["web-0"].uid().unwrap();
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    wait_for("web-0 replaced and ready", || {
        let pods = pods.clone();
        let uid = uid.clone();
        let failed_uid = failed_uid.clone();
        async move {
            let found = set_pods(&pods, &uid).await;
            let pod = found.get("web-0")?;
            (pod.uid().as_deref() != Some(failed_uid.as_str()) && ready(pod)).then_some(())
        }
    })
    .await;
    wait_status(&sets, "web", "the replacement counted", |s| {
        counts(s) == (1, 1, 1, 1, 1)
    })
    .await;
}

/// The messages of the events with `reason` about the object with `uid`.
async fn events(admin: &Client, uid: &str, reason: &str) -> Vec<String> {
    let found = events_about(admin, uid, reason).await;
    found.into_iter().filter_map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_templates_make_claims_and_the_retention_policy_owns_them() {
    let c = ready_cluster(&["statefulset", "garbagecollector"], 1).await;
    let sets: Api<StatefulSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    // Parallel: the pods need not become ready (nothing binds their claims here)
    let set = sets
        .create(
            &PostParams::default(),
            &stateful_set(
                "db",
                "db",
                json!({
                    "replicas": 2,
                    "podManagementPolicy": "Parallel",
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
                    "volumeClaimTemplates": [{
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                    }]
                }),
            ),
        )
        .await
        .unwrap();
    let uid = set.uid().unwrap();

    let made = wait_for("both pods, mounting their claims", || {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            let found = set_pods(&pods, &uid).await;
            (found.len() == 2).then_some(found)
        }
    })
    .await;
    for ordinal in 0..2 {
        let pod = &made[&format!("db-{ordinal}")];
        let volume = pod
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "data")
            .unwrap();
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            format!("data-db-{ordinal}")
        );
        let claim = claims.get(&format!("data-db-{ordinal}")).await.unwrap();
        assert_eq!(claim.labels().get("app").map(String::as_str), Some("db"));
        // the claim existed before its pod
        assert!(claim.creation_timestamp().unwrap().0 <= pod.creation_timestamp().unwrap().0);
    }
    let created = events(&c.admin, &uid, "SuccessfulCreate").await;
    assert!(
        created
            .iter()
            .any(|m| m == "create Claim data-db-1 Pod db-1 in StatefulSet db success"),
        "{created:?}"
    );

    // whenDeleted: Delete: the set owns the claims of the pods it keeps
    wait_for("the set owning both claims", || {
        let claims = claims.clone();
        let uid = uid.clone();
        async move {
            for ordinal in 0..2 {
                let claim = claims.get(&format!("data-db-{ordinal}")).await.unwrap();
                let owners = claim.owner_references();
                if !(owners.len() == 1
                    && owners[0].uid == uid
                    && owners[0].kind == "StatefulSet"
                    && owners[0].controller == Some(true))
                {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;

    // whenScaled: Delete: the claim of db-1 goes with it, db-0's stays
    patch_set(&sets, "db", json!({"spec": {"replicas": 1}})).await;
    wait_for("the claim of the scaled-down pod deleted", || {
        let claims = claims.clone();
        async move {
            let gone = claims
                .get_opt("data-db-1")
                .await
                .unwrap()
                .is_none_or(|c| c.metadata.deletion_timestamp.is_some());
            gone.then_some(())
        }
    })
    .await;
    let kept = claims.get("data-db-0").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert_eq!(kept.owner_references()[0].uid, uid);
    assert_eq!(set_pods(&pods, &uid).await.len(), 1);
}
