//! The PersistentVolume binder against a real apiserver: claims and volumes bound both
//! ways with upstream's annotations and phases, the smallest fitting volume chosen,
//! unmatched and pre-bound claims, release and reclaim when a claim goes, lost claims,
//! and WaitForFirstConsumer classes waiting for the scheduler's node.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{Spec, cluster, wait_for};

fn spec() -> Spec {
    // the protection controllers too: admission gives every claim and volume their
    // finalizers, so a deleted claim is only gone once pvc-protection lets it go
    let mut spec = Spec::new(&["persistentvolume-binder", "pvc-protection", "pv-protection"]);
    spec.scheduler = false;
    // a short resync: a claim waiting for a volume is looked at again this often
    spec.settings.pvclaimbinder_sync_period = Duration::from_secs(1);
    spec
}

async fn create_volume(client: &Client, name: &str, size: &str, extra: Value) {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": format!("/data/{name}")}
        }
    });
    merge(&mut body, extra);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume: PersistentVolume = serde_json::from_value(body).unwrap();
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
}

async fn create_claim(client: &Client, name: &str, size: &str, extra: Value) {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    });
    merge(&mut body, extra);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(body).unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                _ => {
                    a.insert(k, v);
                }
            }
        }
    }
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn volume_phase(v: &PersistentVolume) -> Option<&str> {
    v.status.as_ref()?.phase.as_deref()
}

fn claim_phase(c: &PersistentVolumeClaim) -> Option<&str> {
    c.status.as_ref()?.phase.as_deref()
}

async fn wait_volume_phase(client: &Client, name: &str, phase: &str) -> PersistentVolume {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    wait_for(&format!("volume {name} {phase}"), || {
        let volumes = volumes.clone();
        async move {
            let v = volumes.get(name).await.unwrap();
            (volume_phase(&v) == Some(phase)).then_some(v)
        }
    })
    .await
}

async fn wait_claim_phase(client: &Client, name: &str, phase: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("claim {name} {phase}"), || {
        let claims = claims.clone();
        async move {
            let c = claims.get(name).await.unwrap();
            (claim_phase(&c) == Some(phase)).then_some(c)
        }
    })
    .await
}

/// Waits for an event about `object` with this reason and returns its message.
async fn wait_event(client: &Client, namespace: &str, object: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    wait_for(&format!("a {reason} event about {object}"), || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.unwrap();
            list.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some(object)
                    && e.reason.as_deref() == Some(reason)
            })
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_binds_the_smallest_fitting_volume_and_releases_it_when_deleted() {
    let c = cluster(spec()).await;
    for (name, size) in [("small", "1Gi"), ("big", "10Gi"), ("fits", "5Gi")] {
        create_volume(&c.admin, name, size, json!({})).await;
    }
    // the apiserver defaults: Pending, Retain, Filesystem
    let volumes: Api<PersistentVolume> = Api::all(c.admin.clone());
    let fresh = volumes.get("fits").await.unwrap();
    let spec = fresh.spec.as_ref().unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    for name in ["small", "big", "fits"] {
        wait_volume_phase(&c.admin, name, "Available").await;
    }
    create_claim(&c.admin, "data", "2Gi", json!({})).await;
    let claim = wait_claim_phase(&c.admin, "data", "Bound").await;
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.volume_name.as_deref(), Some("fits"));
    assert_eq!(claim_spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(
        annotation(&claim.metadata, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&claim.metadata, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    let status = claim.status.as_ref().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["storage"].0, "5Gi");
    assert_eq!(
        status.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_owned()][..])
    );
    let volume = wait_volume_phase(&c.admin, "fits", "Bound").await;
    let claim_ref = volume.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(claim_ref.name.as_deref(), Some("data"));
    assert_eq!(claim_ref.namespace.as_deref(), Some("default"));
    assert_eq!(claim_ref.uid, claim.metadata.uid);
    assert_eq!(claim_ref.kind.as_deref(), Some("PersistentVolumeClaim"));
    assert!(claim_ref.resource_version.is_some());
    assert_eq!(
        annotation(&volume.metadata, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    // the other volumes stay Available
    for name in ["small", "big"] {
        let v = volumes.get(name).await.unwrap();
        assert_eq!(volume_phase(&v), Some("Available"));
        assert!(v.spec.as_ref().unwrap().claim_ref.is_none());
    }

    // Retain: the volume is Released and keeps its claimRef
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let released = wait_volume_phase(&c.admin, "fits", "Released").await;
    assert!(released.spec.as_ref().unwrap().claim_ref.is_some());
    // a Released volume is not given to a new claim
    create_claim(&c.admin, "again", "4Gi", json!({})).await;
    let again = wait_claim_phase(&c.admin, "again", "Bound").await;
    assert_eq!(
        again.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("big")
    );

    // Delete with a hostPath under /tmp: the directory and the volume go
    let dir = tempfile::Builder::new()
        .prefix("pv-binder-")
        .tempdir_in("/tmp")
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), b"x").unwrap();
    create_volume(
        &c.admin,
        "scratch",
        "3Gi",
        json!({"spec": {
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": data.display().to_string()},
            "claimRef": {"namespace": "default", "name": "scratch"}
        }}),
    )
    .await;
    // the claim could fit "small" too: it must find its pre-bound volume in the cache
    wait_volume_phase(&c.admin, "scratch", "Available").await;
    create_claim(&c.admin, "scratch", "1Gi", json!({})).await;
    let scratch = wait_claim_phase(&c.admin, "scratch", "Bound").await;
    assert_eq!(
        scratch.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("scratch")
    );
    claims
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the Delete volume gone", || {
        let volumes = volumes.clone();
        async move {
            volumes
                .get_opt("scratch")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(!data.exists(), "the hostPath deleter removes the directory");

    // Delete without a deleter: Failed, with upstream's event
    create_volume(
        &c.admin,
        "shared",
        "3Gi",
        json!({"spec": {
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": null,
            "nfs": {"server": "nfs.example", "path": "/export"},
            "claimRef": {"namespace": "default", "name": "shared"}
        }}),
    )
    .await;
    wait_volume_phase(&c.admin, "shared", "Available").await;
    create_claim(&c.admin, "shared", "1Gi", json!({})).await;
    wait_claim_phase(&c.admin, "shared", "Bound").await;
    claims
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    let failed = wait_volume_phase(&c.admin, "shared", "Failed").await;
    let message = "error getting deleter volume plugin for volume \"shared\": no deletable volume plugin matched";
    assert_eq!(
        failed.status.as_ref().unwrap().message.as_deref(),
        Some(message)
    );
    let event = wait_event(&c.admin, "default", "shared", "VolumeFailedDelete").await;
    assert_eq!(event.message.as_deref(), Some(message));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_and_pre_bound_claims_wait_for_their_volume() {
    let c = cluster(spec()).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    create_claim(&c.admin, "waiting", "1Gi", json!({})).await;
    let event = wait_event(&c.admin, "default", "waiting", "FailedBinding").await;
    assert_eq!(
        event.message.as_deref(),
        Some("no persistent volumes available for this claim and no storage class is set")
    );
    assert_eq!(
        event.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("persistentvolume-controller")
    );
    let pending = claims.get("waiting").await.unwrap();
    assert_eq!(claim_phase(&pending), Some("Pending"));
    assert!(pending.spec.as_ref().unwrap().volume_name.is_none());
    // a volume appearing is found at the next resync
    create_volume(&c.admin, "late", "1Gi", json!({})).await;
    let bound = wait_claim_phase(&c.admin, "waiting", "Bound").await;
    assert_eq!(
        bound.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("late")
    );

    // a claim naming a volume that does not exist yet waits for it
    create_claim(
        &c.admin,
        "named",
        "1Gi",
        json!({"spec": {"volumeName": "wanted"}}),
    )
    .await;
    create_volume(&c.admin, "decoy", "1Gi", json!({})).await;
    wait_volume_phase(&c.admin, "decoy", "Available").await;
    let still = claims.get("named").await.unwrap();
    assert_eq!(claim_phase(&still), Some("Pending"));
    create_volume(&c.admin, "wanted", "2Gi", json!({})).await;
    let named = wait_claim_phase(&c.admin, "named", "Bound").await;
    assert_eq!(
        named.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("wanted")
    );
    assert_eq!(
        annotation(&named.metadata, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    // the user bound the claim, not the controller
    assert_eq!(
        annotation(&named.metadata, "pv.kubernetes.io/bound-by-controller"),
        None
    );
    let wanted = wait_volume_phase(&c.admin, "wanted", "Bound").await;
    assert_eq!(
        annotation(&wanted.metadata, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );

    // a volume reserved for a claim (claimRef without uid) goes to it, not a smaller one
    create_volume(
        &c.admin,
        "reserved",
        "8Gi",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "owner"}}}),
    )
    .await;
    wait_volume_phase(&c.admin, "reserved", "Available").await;
    create_claim(&c.admin, "owner", "1Gi", json!({})).await;
    let owner = wait_claim_phase(&c.admin, "owner", "Bound").await;
    assert_eq!(
        owner.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("reserved")
    );
    let reserved = wait_volume_phase(&c.admin, "reserved", "Bound").await;
    assert_eq!(
        reserved
            .spec
            .as_ref()
            .unwrap()
            .claim_ref
            .as_ref()
            .unwrap()
            .uid,
        owner.metadata.uid
    );
    assert_eq!(
        annotation(&reserved.metadata, "pv.kubernetes.io/bound-by-controller"),
        None
    );
    let decoy: Api<PersistentVolume> = Api::all(c.admin.clone());
    assert_eq!(
        volume_phase(&decoy.get("decoy").await.unwrap()),
        Some("Available")
    );

    // a bound claim whose volume disappears is Lost
    let volumes: Api<PersistentVolume> = Api::all(c.admin.clone());
    volumes
        .delete("wanted", &DeleteParams::default())
        .await
        .unwrap();
    // pv-protection keeps a Bound volume: its finalizer is taken off by hand, as a
    // forced removal would
    let unprotect = json!({"metadata": {"finalizers": null}});
    volumes
        .patch("wanted", &PatchParams::default(), &Patch::Merge(&unprotect))
        .await
        .unwrap();
    wait_claim_phase(&c.admin, "named", "Lost").await;
    let event = wait_event(&c.admin, "default", "named", "ClaimLost").await;
    assert_eq!(
        event.message.as_deref(),
        Some("Bound claim has lost its PersistentVolume. Data on the volume is lost!")
    );
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_first_consumer_claims_wait_for_the_selected_node() {
    let c = cluster(spec()).await;
    let classes: Api<StorageClass> = Api::all(c.admin.clone());
    let plain: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "plain"}, "provisioner": "example.com/plain"
    }))
    .unwrap();
    let plain = classes
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();
    // the apiserver's defaults, as upstream's
    assert_eq!(plain.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(plain.volume_binding_mode.as_deref(), Some("Immediate"));
    let lazy: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "lazy"},
        "provisioner": "example.com/lazy",
        "volumeBindingMode": "WaitForFirstConsumer"
    }))
    .unwrap();
    classes.create(&PostParams::default(), &lazy).await.unwrap();
    create_claim(
        &c.admin,
        "late",
        "1Gi",
        json!({"spec": {"storageClassName": "lazy"}}),
    )
    .await;
    // (the event also shows the binder knows the class: a class it has not seen yet
    // counts as Immediate, as upstream's)
    let event = wait_event(&c.admin, "default", "late", "WaitForFirstConsumer").await;
    // an available volume of the class is not bound by the controller
    create_volume(
        &c.admin,
        "local",
        "1Gi",
        json!({"spec": {"storageClassName": "lazy"}}),
    )
    .await;
    assert_eq!(
        event.message.as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    let waiting = claims.get("late").await.unwrap();
    assert_eq!(claim_phase(&waiting), Some("Pending"));
    assert!(
        annotation(
            &waiting.metadata,
            "volume.kubernetes.io/storage-provisioner"
        )
        .is_none()
    );
    wait_volume_phase(&c.admin, "local", "Available").await;

    // the scheduler picks a node: the external provisioner is asked
    let patch =
        json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node-0"}}});
    claims
        .patch("late", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let asked = wait_for("the provisioner annotations", || {
        let claims = claims.clone();
        async move {
            let c = claims.get("late").await.unwrap();
            annotation(&c.metadata, "volume.kubernetes.io/storage-provisioner")
                .is_some()
                .then_some(c)
        }
    })
    .await;
    assert_eq!(
        annotation(&asked.metadata, "volume.kubernetes.io/storage-provisioner"),
        Some("example.com/lazy")
    );
    assert_eq!(
        annotation(
            &asked.metadata,
            "volume.beta.kubernetes.io/storage-provisioner"
        ),
        Some("example.com/lazy")
    );
    let event = wait_event(&c.admin, "default", "late", "ExternalProvisioning").await;
    assert_eq!(
        event.message.as_deref(),
        Some(
            "Waiting for a volume to be created either by the external provisioner 'example.com/lazy' \
             or manually by the system administrator. If volume creation is delayed, please verify \
             that the provisioner is running and correctly registered."
        )
    );
    assert_eq!(
        claim_phase(&claims.get("late").await.unwrap()),
        Some("Pending")
    );

    // the provisioner creates a volume bound to the claim: the controller finishes
    create_volume(
        &c.admin,
        "provisioned",
        "1Gi",
        json!({
            "metadata": {"annotations": {"pv.kubernetes.io/provisioned-by": "example.com/lazy"}},
            "spec": {
                "storageClassName": "lazy",
                "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"namespace": "default", "name": "late", "uid": asked.metadata.uid.clone().unwrap()}
            }
        }),
    )
    .await;
    let bound = wait_claim_phase(&c.admin, "late", "Bound").await;
    assert_eq!(
        bound.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("provisioned")
    );
    wait_volume_phase(&c.admin, "provisioned", "Bound").await;
    let volumes: Api<PersistentVolume> = Api::all(c.admin.clone());
    assert_eq!(
        volume_phase(&volumes.get("local").await.unwrap()),
        Some("Available")
    );

    // the claim goes: the external provisioner deletes the volume, not the controller
    claims
        .delete("late", &DeleteParams::default())
        .await
        .unwrap();
    wait_volume_phase(&c.admin, "provisioned", "Released").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = volumes.get("provisioned").await.unwrap();
    assert_eq!(volume_phase(&kept), Some("Released"));

    // an Immediate class with an external provisioner asks at once
    create_claim(
        &c.admin,
        "eager",
        "1Gi",
        json!({"spec": {"storageClassName": "plain"}}),
    )
    .await;
    wait_event(&c.admin, "default", "eager", "ExternalProvisioning").await;
}
