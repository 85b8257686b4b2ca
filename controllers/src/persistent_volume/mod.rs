//! The PersistentVolume binder (upstream's `persistentvolume-binder-controller`,
//! pkg/controller/volume/persistentvolume): binds claims to volumes both ways
//! (`claim.spec.volumeName` and `volume.spec.claimRef`), keeps both phases, asks
//! external provisioners for volumes, and reclaims volumes whose claim is gone.
//!
//! As upstream, binding writes the volume first (claimRef, then status Bound) and the
//! claim second (volumeName and annotations, then status Bound with capacity and
//! access modes); every write carries the resourceVersion read, so two writers conflict
//! and the loser retries from the newer state. Claims and volumes each have a queue
//! with one worker; both are re-queued every `--pvclaimbinder-sync-period`. What the
//! controller wrote is remembered until the informers catch up (upstream's own caches),
//! so it does not act on its older view of an object it just changed.

mod index;
mod plugins;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;
use index::*;
use plugins::{Deleter, Provisioning};

/// The controller's name.
pub const NAME: &str = "persistentvolume-binder-controller";
/// Its service account.
pub const SERVICE_ACCOUNT: &str = "persistent-volume-binder";
/// The component its events name, as upstream's.
const COMPONENT: &str = "persistentvolume-controller";
/// Failed syncs are retried with backoff this many times; the periodic resync
/// retries after that, as upstream's controller only retries on resync.
const MAX_RETRIES: u32 = 15;
/// Upstream's annotation naming the capacity a volume had before a resize.
const ANN_PRE_RESIZE_CAPACITY: &str = "volume.alpha.kubernetes.io/pre-resize-capacity";

/// A sync's outcome for the queue: a state the controller cannot settle is logged and
/// left to the periodic resync, as upstream's queues do not retry (a retry would only
/// repeat its events); a failed request is retried with backoff.
fn not_retried_when_invalid(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(Error::Invalid(why)) => {
            tracing::info!(controller = NAME, error = %why, "could not sync; waiting for the resync");
            Ok(())
        }
        other => other,
    }
}

/// Why a sync failed (a failed request is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The objects are in a state the controller cannot settle now.
    #[error("{0}")]
    Invalid(String),
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn resource_version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

/// The newer of the informer's and the controller's own copy of an object.
fn newest<K: Resource>(cached: Arc<K>, written: Option<&Arc<K>>) -> Arc<K> {
    match written {
        Some(w) if resource_version(&**w) > resource_version(&*cached) => w.clone(),
        _ => cached,
    }
}

fn phase_of_volume(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn phase_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn claim_ref(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref()?.claim_ref.as_ref()
}

fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

fn name_of<K: Resource>(object: &K) -> &str {
    object.meta().name.as_deref().unwrap_or_default()
}

fn set_annotation<K: Resource>(object: &mut K, key: &str, value: &str) {
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
}

/// Pods that name the claim, directly or as their generic ephemeral volume.
fn pod_uses_claim(pod: &Pod, claim: &str) -> bool {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
                || (v.ephemeral.is_some() && format!("{pod_name}-{}", v.name) == claim)
        })
}

fn pod_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The WaitForFirstConsumer claim's event, as upstream's
/// `emitEventForUnboundDelayBindingClaim`: which unscheduled pods use it, if any.
fn delay_binding_event(unscheduled: &[String]) -> (&'static str, String) {
    match unscheduled {
        [] => (
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".to_owned(),
        ),
        [one] => (
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => (
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    }
}

/// The claim's status after `phase` with `volume` (upstream's `updateClaimStatus`), or
/// `None` when nothing changes.
fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<Option<PersistentVolumeClaimStatus>, String> {
    let old = claim.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.phase = Some(phase.to_owned());
    match volume {
        None => {
            new.access_modes = None;
            new.capacity = None;
        }
        Some(volume) => {
            let spec = volume.spec.clone().unwrap_or_default();
            new.access_modes = spec.access_modes.clone();
            // capacity is set as the claim becomes Bound, not after: a difference may
            // be intended (a filesystem smaller than its block device)
            if old.phase.as_deref() != Some(phase) {
                let Some(cap) = spec.capacity.as_ref().and_then(|c| c.get("storage")) else {
                    return Err(format!(
                        "PersistentVolume {:?} is without a storage capacity",
                        name_of(volume)
                    ));
                };
                let pre_resize = volume
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANN_PRE_RESIZE_CAPACITY));
                if let Some(pre) = pre_resize {
                    let qty = if apimachinery::quantity::Quantity::parse(pre).is_ok() {
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity(pre.clone())
                    } else {
                        cap.clone()
                    };
                    new.capacity
                        .get_or_insert_with(Default::default)
                        .insert("storage".to_owned(), qty);
                } else {
                    let same = old
                        .capacity
                        .as_ref()
                        .and_then(|c| c.get("storage"))
                        .is_some_and(|q| {
                            apimachinery::quantity::Quantity::parse(&q.0).ok()
                                == apimachinery::quantity::Quantity::parse(&cap.0).ok()
                        });
                    if !same {
                        new.capacity = spec.capacity.clone();
                    }
                }
            }
        }
    }
    Ok((new != old).then_some(new))
}

/// The volume bound to the claim (upstream's `GetBindVolumeToClaim`), or `None` when
/// it already is.
fn bind_volume(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Option<PersistentVolume> {
    let mut updated = volume.clone();
    let mut dirty = false;
    let set_by_controller = !is_volume_bound_to_claim(volume, claim);
    let current = claim_ref(volume);
    let same = current.is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace == claim.metadata.namespace
            && r.uid.as_deref().unwrap_or_default()
                == claim.metadata.uid.as_deref().unwrap_or_default()
    });
    if !same {
        updated.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("PersistentVolumeClaim".to_owned()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        });
        dirty = true;
    }
    if set_by_controller && !has_annotation(&updated.metadata.annotations, ANN_BOUND_BY_CONTROLLER)
    {
        set_annotation(&mut updated, ANN_BOUND_BY_CONTROLLER, "yes");
        dirty = true;
    }
    dirty.then_some(updated)
}

/// The claim bound to the volume (upstream's `bindClaimToVolume`), or `None` when it
/// already is.
fn bind_claim(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Option<PersistentVolumeClaim> {
    let mut updated = claim.clone();
    let mut dirty = false;
    if volume_name(claim) != name_of(volume) {
        updated
            .spec
            .get_or_insert_with(Default::default)
            .volume_name = Some(name_of(volume).to_owned());
        if !has_annotation(&updated.metadata.annotations, ANN_BOUND_BY_CONTROLLER) {
            set_annotation(&mut updated, ANN_BOUND_BY_CONTROLLER, "yes");
        }
        dirty = true;
    }
    if !has_annotation(&updated.metadata.annotations, ANN_BIND_COMPLETED) {
        set_annotation(&mut updated, ANN_BIND_COMPLETED, "yes");
        dirty = true;
    }
    dirty.then_some(updated)
}

struct Controller {
    cx: Context,
    volumes: Informer<PersistentVolume>,
    claims: Informer<PersistentVolumeClaim>,
    classes: Informer<StorageClass>,
    pods: Informer<Pod>,
    claim_queue: Arc<WorkQueue<String>>,
    volume_queue: Arc<WorkQueue<String>>,
    written_volumes: Mutex<HashMap<String, Arc<PersistentVolume>>>,
    written_claims: Mutex<HashMap<String, Arc<PersistentVolumeClaim>>>,
}

impl Controller {
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        let cached = self.volumes.get("", name)?;
        let written = self
            .written_volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(newest(cached, written.get(name)))
    }

    fn all_volumes(&self) -> Vec<Arc<PersistentVolume>> {
        let written = self
            .written_volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.volumes
            .list()
            .into_iter()
            .map(|v| {
                let w = written.get(name_of(&*v));
                newest(v, w)
            })
            .collect()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        let cached = self.claims.get(namespace, name)?;
        let written = self
            .written_claims
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(newest(cached, written.get(&format!("{namespace}/{name}"))))
    }

    fn remember_volume(&self, volume: PersistentVolume) -> Arc<PersistentVolume> {
        let volume = Arc::new(volume);
        self.written_volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name_of(&*volume).to_owned(), volume.clone());
        volume
    }

    fn remember_claim(&self, claim: PersistentVolumeClaim) -> Arc<PersistentVolumeClaim> {
        let claim = Arc::new(claim);
        self.written_claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_of(&*claim), claim.clone());
        claim
    }

    fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.cx
            .recorder
            .event(object, type_, reason, message, COMPONENT);
    }

    fn volume_api(&self) -> Api<PersistentVolume> {
        Api::all(self.cx.client.clone())
    }

    fn claim_api(&self, namespace: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.cx.client.clone(), namespace)
    }

    // ---- claims ----

    async fn sync_claim(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(claim) = self.claim(namespace, name) else {
            return Ok(());
        };
        if !has_annotation(&claim.metadata.annotations, ANN_BIND_COMPLETED) {
            self.sync_unbound_claim(claim).await
        } else {
            self.sync_bound_claim(claim).await
        }
    }

    /// Upstream's `IsDelayBindingMode`.
    fn delay_binding(&self, claim: &PersistentVolumeClaim) -> Result<bool, Error> {
        let class = claim_class(claim);
        if class.is_empty() {
            return Ok(false);
        }
        let Some(class_object) = self.classes.get("", &class) else {
            return Ok(false);
        };
        match class_object.volume_binding_mode.as_deref() {
            None => Err(Error::Invalid(format!(
                "VolumeBindingMode not set for StorageClass {class:?}"
            ))),
            Some(mode) => Ok(mode == "WaitForFirstConsumer"),
        }
    }

    async fn sync_unbound_claim(&self, claim: Arc<PersistentVolumeClaim>) -> Result<(), Error> {
        let wanted = volume_name(&claim).to_owned();
        if wanted.is_empty() {
            let delay = self.delay_binding(&claim)?;
            let found = find_best_match(&claim, &self.all_volumes(), delay).map_err(|e| {
                Error::Invalid(format!(
                    "error finding PV for claim {:?}: {e}",
                    key_of(&*claim)
                ))
            })?;
            let Some(volume) = found else {
                if self.assign_default_class(&claim).await? {
                    // the update brings the claim back
                    return Ok(());
                }
                if delay && !has_annotation(&claim.metadata.annotations, ANN_SELECTED_NODE) {
                    let (reason, message) = delay_binding_event(&self.unscheduled_users(&claim));
                    self.event(&*claim, "Normal", reason, message);
                } else if !claim_class(&claim).is_empty() {
                    return self.provision_claim(&claim).await;
                } else {
                    self.event(
                        &*claim,
                        "Normal",
                        "FailedBinding",
                        "no persistent volumes available for this claim and no storage class is set"
                            .to_owned(),
                    );
                }
                self.update_claim_status(&claim, "Pending", None).await?;
                return Ok(());
            };
            return self.bind(&volume, &claim).await;
        }
        let Some(volume) = self.volume(&wanted) else {
            // the user named a volume that does not exist (yet)
            self.update_claim_status(&claim, "Pending", None).await?;
            return Ok(());
        };
        if claim_ref(&volume).is_none() {
            if let Err(e) = check_volume_satisfies_claim(&volume, &claim) {
                self.event(
                    &*claim,
                    "Warning",
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume {wanted:?}: {e}"),
                );
                self.update_claim_status(&claim, "Pending", None).await?;
                return Ok(());
            }
            return self.bind(&volume, &claim).await;
        }
        if is_volume_bound_to_claim(&volume, &claim) {
            return self.bind(&volume, &claim).await;
        }
        self.event(
            &*claim,
            "Warning",
            "FailedBinding",
            format!("volume {wanted:?} already bound to a different claim."),
        );
        if !has_annotation(&claim.metadata.annotations, ANN_BOUND_BY_CONTROLLER) {
            self.update_claim_status(&claim, "Pending", None).await?;
            return Ok(());
        }
        let other = claim_ref(&volume)
            .map(|r| {
                format!(
                    "{}/{}",
                    r.namespace.as_deref().unwrap_or_default(),
                    r.name.as_deref().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        Err(Error::Invalid(format!(
            "invalid binding of claim {:?} to volume {wanted:?}: volume already claimed by {other:?}",
            key_of(&*claim)
        )))
    }

    async fn sync_bound_claim(&self, claim: Arc<PersistentVolumeClaim>) -> Result<(), Error> {
        let wanted = volume_name(&claim).to_owned();
        if wanted.is_empty() {
            return self
                .claim_status_with_event(
                    &claim,
                    "Lost",
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                )
                .await;
        }
        let Some(volume) = self.volume(&wanted) else {
            return self
                .claim_status_with_event(
                    &claim,
                    "Lost",
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
                .await;
        };
        match claim_ref(&volume) {
            // unbound since, or the controller has not seen its own write yet: bind
            None => self.bind(&volume, &claim).await,
            Some(r)
                if r.uid.as_deref().unwrap_or_default()
                    == claim.metadata.uid.as_deref().unwrap_or_default() =>
            {
                self.bind(&volume, &claim).await
            }
            Some(_) => {
                self.claim_status_with_event(
                    &claim,
                    "Lost",
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                )
                .await
            }
        }
    }

    async fn claim_status_with_event(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), Error> {
        if phase_of_claim(claim) == phase {
            return Ok(());
        }
        let updated = self.update_claim_status(claim, phase, None).await?;
        self.event(&*updated, "Warning", reason, message.to_owned());
        Ok(())
    }

    /// Saves the claim's status; returns the claim as saved.
    async fn update_claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<Arc<PersistentVolumeClaim>, Error> {
        let Some(status) = claim_status(claim, phase, volume).map_err(Error::Invalid)? else {
            return Ok(Arc::new(claim.clone()));
        };
        let mut updated = claim.clone();
        updated.status = Some(status);
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let saved = self
            .claim_api(namespace)
            .replace_status(name_of(claim), &PostParams::default(), &updated)
            .await?;
        tracing::debug!(claim = %key_of(claim), phase, "claim entered phase");
        Ok(self.remember_claim(saved))
    }

    /// Upstream's `assignDefaultStorageClass`: a claim with no class at all gets the
    /// default one, retroactively.
    async fn assign_default_class(&self, claim: &PersistentVolumeClaim) -> Result<bool, Error> {
        if claim_has_class(claim) {
            return Ok(false);
        }
        let Some(class) = default_class(&self.classes.list()) else {
            return Ok(false);
        };
        let mut updated = claim.clone();
        updated
            .spec
            .get_or_insert_with(Default::default)
            .storage_class_name = class.metadata.name.clone();
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let saved = self
            .claim_api(namespace)
            .replace(name_of(claim), &PostParams::default(), &updated)
            .await?;
        self.remember_claim(saved);
        Ok(true)
    }

    fn unscheduled_users(&self, claim: &PersistentVolumeClaim) -> Vec<String> {
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let mut names: Vec<String> = self
            .pods
            .list_namespace(namespace)
            .iter()
            .filter(|p| pod_uses_claim(p, name_of(claim)) && !pod_terminated(p))
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
            })
            .map(|p| name_of(&**p).to_owned())
            .collect();
        names.sort();
        names
    }

    /// Upstream's `provisionClaim` for the provisioners this manager knows: external
    /// ones are told through the claim's annotations.
    async fn provision_claim(&self, claim: &PersistentVolumeClaim) -> Result<(), Error> {
        let class_name = claim_class(claim);
        let Some(class) = self.classes.get("", &class_name) else {
            self.event(
                claim,
                "Warning",
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io {class_name:?} not found"),
            );
            return Ok(());
        };
        match plugins::provisioning(&class.provisioner) {
            Provisioning::Failed(message) => {
                self.event(claim, "Warning", "ProvisioningFailed", message);
                Ok(())
            }
            Provisioning::HostPathDisabled => {
                let claim = self
                    .set_claim_provisioner(claim, plugins::HOST_PATH_PLUGIN, None)
                    .await?;
                self.event(
                    &*claim,
                    "Warning",
                    "ProvisioningFailed",
                    format!(
                        "Failed to create provisioner: provisioning in volume plugin {:?} is disabled",
                        plugins::HOST_PATH_PLUGIN
                    ),
                );
                Ok(())
            }
            Provisioning::External(provisioner) => {
                let migrated = plugins::migrated_driver(&class.provisioner);
                let claim = self
                    .set_claim_provisioner(claim, &provisioner, migrated)
                    .await?;
                self.event(
                    &*claim,
                    "Normal",
                    "ExternalProvisioning",
                    format!(
                        "Waiting for a volume to be created either by the external provisioner '{provisioner}' \
                         or manually by the system administrator. If volume creation is delayed, please verify \
                         that the provisioner is running and correctly registered."
                    ),
                );
                Ok(())
            }
        }
    }

    /// Upstream's `setClaimProvisioner`: both provisioner annotations (and the CSI
    /// driver of a migrated in-tree plugin).
    async fn set_claim_provisioner(
        &self,
        claim: &PersistentVolumeClaim,
        provisioner: &str,
        migrated_to: Option<&str>,
    ) -> Result<Arc<PersistentVolumeClaim>, Error> {
        let annotations = claim.metadata.annotations.clone().unwrap_or_default();
        let done = annotations.get(ANN_STORAGE_PROVISIONER).map(String::as_str)
            == Some(provisioner)
            && migrated_to
                .is_none_or(|d| annotations.get(ANN_MIGRATED_TO).map(String::as_str) == Some(d));
        if done {
            return Ok(Arc::new(claim.clone()));
        }
        let mut updated = claim.clone();
        set_annotation(&mut updated, ANN_BETA_STORAGE_PROVISIONER, provisioner);
        set_annotation(&mut updated, ANN_STORAGE_PROVISIONER, provisioner);
        if let Some(driver) = migrated_to {
            set_annotation(&mut updated, ANN_MIGRATED_TO, driver);
        }
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let saved = self
            .claim_api(namespace)
            .replace(name_of(claim), &PostParams::default(), &updated)
            .await?;
        Ok(self.remember_claim(saved))
    }

    // ---- binding ----

    /// Upstream's `bind`: the volume (claimRef, then phase), then the claim
    /// (volumeName and annotations, then status).
    async fn bind(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), Error> {
        let mut volume = Arc::new(volume.clone());
        if let Some(updated) = bind_volume(&volume, claim) {
            let saved = self
                .volume_api()
                .replace(name_of(&updated), &PostParams::default(), &updated)
                .await?;
            tracing::debug!(claim = %key_of(claim), volume = name_of(&saved), "claim bound to volume");
            volume = self.remember_volume(saved);
        }
        let volume = self.update_volume_phase(&volume, "Bound", None).await?;
        let mut claim = Arc::new(claim.clone());
        if let Some(updated) = bind_claim(&claim, &volume) {
            let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
            let saved = self
                .claim_api(namespace)
                .replace(name_of(&updated), &PostParams::default(), &updated)
                .await?;
            claim = self.remember_claim(saved);
        }
        self.update_claim_status(&claim, "Bound", Some(&volume))
            .await?;
        Ok(())
    }

    /// Saves a volume's phase (and message); returns the volume as saved.
    async fn update_volume_phase(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
        message: Option<String>,
    ) -> Result<Arc<PersistentVolume>, Error> {
        if phase_of_volume(volume) == phase {
            return Ok(volume.clone());
        }
        let mut updated = (**volume).clone();
        let status = updated
            .status
            .get_or_insert_with(PersistentVolumeStatus::default);
        status.phase = Some(phase.to_owned());
        status.message = message;
        let saved = self
            .volume_api()
            .replace_status(name_of(&updated), &PostParams::default(), &updated)
            .await?;
        tracing::debug!(volume = name_of(&saved), phase, "volume entered phase");
        Ok(self.remember_volume(saved))
    }

    async fn volume_phase_with_event(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
        reason: &'static str,
        message: String,
    ) -> Result<(), Error> {
        if phase_of_volume(volume) == phase {
            return Ok(());
        }
        let saved = self
            .update_volume_phase(volume, phase, Some(message.clone()))
            .await?;
        self.event(&*saved, "Warning", reason, message);
        Ok(())
    }

    /// Upstream's `unbindVolume`: a binding the controller made is removed; a user's
    /// pre-binding keeps its name and loses the uid.
    async fn unbind_volume(&self, volume: &PersistentVolume) -> Result<(), Error> {
        let mut updated = volume.clone();
        if has_annotation(&volume.metadata.annotations, ANN_BOUND_BY_CONTROLLER) {
            if let Some(spec) = updated.spec.as_mut() {
                spec.claim_ref = None;
            }
            if let Some(annotations) = updated.metadata.annotations.as_mut() {
                annotations.remove(ANN_BOUND_BY_CONTROLLER);
                if annotations.is_empty() {
                    updated.metadata.annotations = None;
                }
            }
        } else if let Some(r) = updated.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = None;
        }
        let saved = self
            .volume_api()
            .replace(name_of(volume), &PostParams::default(), &updated)
            .await?;
        let saved = self.remember_volume(saved);
        self.update_volume_phase(&saved, "Available", None).await?;
        Ok(())
    }

    // ---- volumes ----

    async fn sync_volume(&self, name: &str) -> Result<(), Error> {
        let Some(volume) = self.volume(name) else {
            return Ok(());
        };
        let Some(reference) = claim_ref(&volume).cloned() else {
            self.update_volume_phase(&volume, "Available", None).await?;
            return Ok(());
        };
        let ref_uid = reference.uid.clone().unwrap_or_default();
        if ref_uid.is_empty() {
            // pre-bound by the user: the claim's sync binds it
            self.update_volume_phase(&volume, "Available", None).await?;
            return Ok(());
        }
        let namespace = reference.namespace.clone().unwrap_or_default();
        let claim_name = reference.name.clone().unwrap_or_default();
        let phase = phase_of_volume(&volume).to_owned();
        let mut claim = self.claim(&namespace, &claim_name);
        if claim.is_none() && phase != "Released" && phase != "Failed" {
            // the cache may not have a claim just created by someone else: ask
            claim = self
                .claim_api(&namespace)
                .get_opt(&claim_name)
                .await?
                .map(Arc::new);
        }
        if let Some(c) = &claim
            && c.metadata.uid.as_deref().unwrap_or_default() != ref_uid
        {
            // perhaps a newer claim of the same name; the apiserver decides
            claim = self
                .claim_api(&namespace)
                .get_opt(&claim_name)
                .await?
                .filter(|c| c.metadata.uid.as_deref().unwrap_or_default() == ref_uid)
                .map(Arc::new);
        }
        let Some(claim) = claim else {
            let volume = if phase != "Released" && phase != "Failed" {
                tracing::info!(
                    volume = name,
                    "volume is released and reclaim policy will be executed"
                );
                self.update_volume_phase(&volume, "Released", None).await?
            } else {
                volume
            };
            return self.reclaim_volume(&volume).await;
        };
        let bound_to = volume_name(&claim).to_owned();
        if bound_to.is_empty() {
            if volume_mode_mismatch(&claim, &volume) {
                self.event(
                    &*volume,
                    "Warning",
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume to requested PersistentVolumeClaim {:?} due to incompatible volumeMode.",
                        claim_name
                    ),
                );
                self.event(
                    &*claim,
                    "Warning",
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume {name:?} to requested PersistentVolumeClaim due to incompatible volumeMode."
                    ),
                );
                return Ok(());
            }
            // the binding is half done (or the user unbound the claim): the claim's
            // sync finishes it
            self.claim_queue.add(key_of(&*claim));
            return Ok(());
        }
        if bound_to == name {
            self.update_volume_phase(&volume, "Bound", None).await?;
            return Ok(());
        }
        // the claim is bound to another volume
        let provisioned = has_annotation(&volume.metadata.annotations, ANN_DYNAMICALLY_PROVISIONED);
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or_default();
        if provisioned && policy == "Delete" {
            let volume = if phase != "Released" && phase != "Failed" {
                self.update_volume_phase(&volume, "Released", None).await?
            } else {
                volume
            };
            return self.reclaim_volume(&volume).await;
        }
        self.unbind_volume(&volume).await
    }

    /// Upstream's `isVolumeReleased`: bound to a claim that is gone or bound elsewhere.
    fn is_volume_released(&self, volume: &PersistentVolume) -> bool {
        let Some(reference) = claim_ref(volume) else {
            return false;
        };
        let uid = reference.uid.as_deref().unwrap_or_default();
        if uid.is_empty() {
            return false;
        }
        let claim = self.claim(
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default(),
        );
        match claim {
            Some(c) if c.metadata.uid.as_deref() == Some(uid) => {
                let bound_to = volume_name(&c);
                !bound_to.is_empty() && bound_to != name_of(volume)
            }
            _ => true,
        }
    }

    /// Upstream's `reclaimVolume`.
    async fn reclaim_volume(&self, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
        let migrated = volume
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_MIGRATED_TO))
            .is_some_and(|d| !d.is_empty());
        if migrated {
            return Ok(());
        }
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.clone())
            .unwrap_or_default();
        match policy.as_str() {
            "Retain" => Ok(()),
            "Recycle" => self.recycle_volume(volume).await,
            "Delete" => self.delete_volume(volume).await,
            _ => {
                self.volume_phase_with_event(
                    volume,
                    "Failed",
                    "VolumeUnknownReclaimPolicy",
                    "Volume has unrecognized PersistentVolumeReclaimPolicy".to_owned(),
                )
                .await
            }
        }
    }

    /// The deprecated Recycle policy: upstream scrubs hostPath and NFS volumes with a
    /// recycler pod, which is not built here; others have no recycler.
    async fn recycle_volume(&self, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
        let Some(fresh) = self.volume_api().get_opt(name_of(&**volume)).await? else {
            return Ok(());
        };
        if !self.is_volume_released(&fresh) {
            return Ok(());
        }
        if plugins::has_recycler(&fresh) {
            tracing::warn!(
                volume = name_of(&fresh),
                "recycling volumes is not supported; the volume stays Released"
            );
            return Ok(());
        }
        self.volume_phase_with_event(
            &Arc::new(fresh),
            "Failed",
            "VolumeFailedRecycle",
            "No recycler plugin found for the volume!".to_owned(),
        )
        .await
    }

    /// Upstream's `deleteVolumeOperation`: the storage first (by its plugin), then the
    /// volume object. A failure marks the volume Failed; the next resync tries again.
    async fn delete_volume(&self, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
        let Some(fresh) = self.volume_api().get_opt(name_of(&**volume)).await? else {
            return Ok(());
        };
        if !self.is_volume_released(&fresh) {
            return Ok(());
        }
        let fresh = Arc::new(fresh);
        let deleted = match plugins::find_deleter(&fresh) {
            Err(message) => Err(message),
            Ok(Deleter::External) => return Ok(()),
            Ok(Deleter::HostPath(path)) => match plugins::host_path_deletable(&path) {
                Err(message) => Err(message),
                Ok(()) => remove_path(path).await,
            },
        };
        if let Err(message) = deleted {
            tracing::info!(volume = name_of(&*fresh), %message, "deletion of volume failed");
            return self
                .volume_phase_with_event(&fresh, "Failed", "VolumeFailedDelete", message)
                .await;
        }
        match self
            .volume_api()
            .delete(name_of(&*fresh), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Removes a file or directory tree, as Go's `os.RemoveAll` (gone already is fine).
async fn remove_path(path: String) -> Result<(), String> {
    let result = tokio::task::spawn_blocking(move || {
        let p = std::path::Path::new(&path);
        let removed = match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
            Ok(_) => std::fs::remove_file(p),
        };
        removed.map_err(|e| format!("unlinkat {path}: {e}"))
    })
    .await;
    result.unwrap_or_else(|e| Err(e.to_string()))
}

/// Starts the binder.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(Controller {
        volumes: cx.informers.informer::<PersistentVolume>(),
        claims: cx.informers.informer::<PersistentVolumeClaim>(),
        classes: cx.informers.informer::<StorageClass>(),
        pods: cx.informers.informer::<Pod>(),
        claim_queue: WorkQueue::new(),
        volume_queue: WorkQueue::new(),
        written_volumes: Mutex::new(HashMap::new()),
        written_claims: Mutex::new(HashMap::new()),
        cx,
    });
    let weak = Arc::downgrade(&controller);
    controller.volumes.add_handler(move |change| {
        let Some(c) = weak.upgrade() else {
            return;
        };
        match change {
            Change::Added(v) | Change::Updated { new: v, .. } => {
                c.volume_queue.add(name_of(&***v).to_owned());
            }
            Change::Deleted(v) => {
                let name = name_of(&***v);
                c.written_volumes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                // the claim of a deleted volume is Lost now, not at the next resync
                if let Some(r) = claim_ref(v) {
                    c.claim_queue.add(format!(
                        "{}/{}",
                        r.namespace.as_deref().unwrap_or_default(),
                        r.name.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
    });
    let weak = Arc::downgrade(&controller);
    controller.claims.add_handler(move |change| {
        let Some(c) = weak.upgrade() else {
            return;
        };
        match change {
            Change::Added(claim) | Change::Updated { new: claim, .. } => {
                c.claim_queue.add(key_of(&***claim));
            }
            Change::Deleted(claim) => {
                c.written_claims
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key_of(&***claim));
                // its volume is released now, not at the next resync
                let volume = volume_name(claim);
                if !volume.is_empty() {
                    c.volume_queue.add(volume.to_owned());
                }
            }
        }
    });
    Box::pin(async move {
        controller.volumes.wait_synced().await;
        controller.claims.wait_synced().await;
        controller.classes.wait_synced().await;
        controller.pods.wait_synced().await;
        let period = controller.cx.settings.pvclaimbinder_sync_period;
        let resync = {
            let c = controller.clone();
            async move {
                let mut ticker =
                    tokio::time::interval(period.max(std::time::Duration::from_millis(100)));
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    for claim in c.claims.list() {
                        c.claim_queue.add(key_of(&*claim));
                    }
                    for volume in c.volumes.list() {
                        c.volume_queue.add(name_of(&*volume).to_owned());
                    }
                }
            }
        };
        let claims = {
            let c = controller.clone();
            controller
                .claim_queue
                .clone()
                .run(1, Some(MAX_RETRIES), NAME, move |key: String| {
                    let c = c.clone();
                    async move { not_retried_when_invalid(c.sync_claim(&key).await) }
                })
        };
        let volumes = {
            let c = controller.clone();
            controller
                .volume_queue
                .clone()
                .run(1, Some(MAX_RETRIES), NAME, move |name: String| {
                    let c = c.clone();
                    async move { not_retried_when_invalid(c.sync_volume(&name).await) }
                })
        };
        tokio::select! {
            () = resync => {}
            _ = futures::future::join(claims, volumes) => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(value: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(value).unwrap()
    }

    fn volume(value: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn binding_a_volume_records_the_claim_and_who_bound_it() {
        let c = claim(
            json!({"metadata": {"name": "data", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}}),
        );
        let v = volume(json!({"metadata": {"name": "pv1"}, "spec": {}}));
        let bound = bind_volume(&v, &c).unwrap();
        let r = bound.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
        assert_eq!(r.uid.as_deref(), Some("u1"));
        assert_eq!(r.kind.as_deref(), Some("PersistentVolumeClaim"));
        assert_eq!(r.resource_version.as_deref(), Some("7"));
        assert!(has_annotation(
            &bound.metadata.annotations,
            ANN_BOUND_BY_CONTROLLER
        ));
        assert!(bind_volume(&bound, &c).is_none(), "binding is idempotent");
        // a user's pre-binding gets the uid but not the controller's annotation
        let pre = volume(
            json!({"metadata": {"name": "pv1"}, "spec": {"claimRef": {"namespace": "ns", "name": "data"}}}),
        );
        let bound = bind_volume(&pre, &c).unwrap();
        assert_eq!(
            bound
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .as_ref()
                .unwrap()
                .uid
                .as_deref(),
            Some("u1")
        );
        assert!(!has_annotation(
            &bound.metadata.annotations,
            ANN_BOUND_BY_CONTROLLER
        ));
    }

    #[test]
    fn binding_a_claim_sets_its_volume_and_annotations() {
        let c = claim(json!({"metadata": {"name": "data", "namespace": "ns"}, "spec": {}}));
        let v = volume(json!({"metadata": {"name": "pv1"}}));
        let bound = bind_claim(&c, &v).unwrap();
        assert_eq!(
            bound.spec.as_ref().unwrap().volume_name.as_deref(),
            Some("pv1")
        );
        assert!(has_annotation(
            &bound.metadata.annotations,
            ANN_BIND_COMPLETED
        ));
        assert!(has_annotation(
            &bound.metadata.annotations,
            ANN_BOUND_BY_CONTROLLER
        ));
        assert!(bind_claim(&bound, &v).is_none());
        // a claim naming the volume itself is not marked as bound by the controller
        let named = claim(
            json!({"metadata": {"name": "data", "namespace": "ns"}, "spec": {"volumeName": "pv1"}}),
        );
        let bound = bind_claim(&named, &v).unwrap();
        assert!(has_annotation(
            &bound.metadata.annotations,
            ANN_BIND_COMPLETED
        ));
        assert!(!has_annotation(
            &bound.metadata.annotations,
            ANN_BOUND_BY_CONTROLLER
        ));
    }

    #[test]
    fn a_bound_claims_status_copies_the_volumes_capacity_once() {
        let c = claim(json!({"metadata": {"name": "data"}, "status": {"phase": "Pending"}}));
        let v = volume(
            json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        );
        let status = claim_status(&c, "Bound", Some(&v)).unwrap().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Bound"));
        assert_eq!(status.capacity.unwrap()["storage"].0, "5Gi");
        assert_eq!(status.access_modes.unwrap(), ["ReadWriteOnce"]);
        // already Bound with another capacity (resized filesystem): left alone
        let bound = claim(
            json!({"metadata": {"name": "data"}, "status": {"phase": "Bound", "capacity": {"storage": "4Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        );
        assert!(claim_status(&bound, "Bound", Some(&v)).unwrap().is_none());
        // Pending clears what a volume gave
        let status = claim_status(&bound, "Pending", None).unwrap().unwrap();
        assert!(status.capacity.is_none() && status.access_modes.is_none());
        let no_capacity = volume(json!({"metadata": {"name": "pv1"}, "spec": {}}));
        assert_eq!(
            claim_status(&c, "Bound", Some(&no_capacity)),
            Err("PersistentVolume \"pv1\" is without a storage capacity".to_owned())
        );
    }

    #[test]
    fn delayed_claims_name_their_unscheduled_pods() {
        assert_eq!(
            delay_binding_event(&[]),
            (
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".to_owned()
            )
        );
        assert_eq!(
            delay_binding_event(&["a".to_owned()]),
            (
                "WaitForPodScheduled",
                "waiting for pod a to be scheduled".to_owned()
            )
        );
        assert_eq!(
            delay_binding_event(&["a".to_owned(), "b".to_owned()]),
            (
                "WaitForPodScheduled",
                "waiting for pods a,b to be scheduled".to_owned()
            )
        );
    }
}
