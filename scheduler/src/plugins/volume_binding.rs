//! VolumeBinding: upstream's `volumebinding` plugin with its `SchedulerVolumeBinder`.
//! A pod's bound claims must have volumes whose node affinity admits the node; its
//! unbound claims of a `WaitForFirstConsumer` class need, on the node, an available
//! volume that matches them or a class that can provision there. Reserve assumes the
//! chosen bindings in an in-memory overlay (upstream's assume cache) so later cycles
//! do not pick the same volume; PreBind writes them (the volume's `claimRef`, the
//! claim's `volume.kubernetes.io/selected-node`) and waits until the claims are bound.
//! Pods without claims skip the plugin in PreFilter.
//!
//! Not done here: storage capacity (`CSIStorageCapacity`) checks before provisioning,
//! in-tree to CSI volume translation, and the alpha StorageCapacityScoring Score.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::quantity::Quantity as ParsedQuantity;
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::framework::registry::{Handle, VolumeListers, decode_args};
use crate::framework::{
    ActionType, ClusterEventWithHint, CycleState, EventResource, FilterPlugin, NodeInfo, Plugin,
    PodInfo, PreBindPlugin, PreFilterPlugin, PreFilterResult, ReservePlugin, Status,
};
use crate::plugins::node_affinity::NodeSelector;

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";

/// The cycle-state key of the plugin's state.
const STATE_KEY: &str = "VolumeBinding";

/// A bound claim's volume does not admit the node (upstream's `ErrReasonNodeConflict`).
pub const ERR_REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume on the node matches an unbound claim, and none can be provisioned
/// (upstream's `ErrReasonBindConflict`).
pub const ERR_REASON_BIND_CONFLICT: &str =
    "node(s) didn't find available persistent volumes to bind";
/// Not enough capacity to provision (upstream's `ErrReasonNotEnoughSpace`).
pub const ERR_REASON_NOT_ENOUGH_SPACE: &str = "node(s) did not have enough free storage";
/// A bound claim's volume does not exist (upstream's `ErrReasonPVNotExist`).
pub const ERR_REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// The PreFilter reason for claims waiting for the PV controller.
pub const ERR_REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The claim annotation naming the node a volume is provisioned for (upstream's
/// `AnnSelectedNode`).
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the PV controller once a claim's binding is complete (`AnnBindCompleted`).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Marks a volume bound by a controller rather than a user (`AnnBoundByController`).
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The deprecated class annotation, read before `storageClassName` (upstream).
const ANN_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// A class provisioner meaning "no dynamic provisioning" (`NotSupportedProvisioner`).
const NOT_SUPPORTED_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The class a claim asks for: the beta annotation, else `storageClassName` (upstream's
/// `GetPersistentVolumeClaimClass`).
pub fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    if let Some(class) = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_STORAGE_CLASS))
    {
        return class;
    }
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The class of a volume, as [`claim_class`] (upstream's `GetPersistentVolumeClass`).
pub fn volume_class(pv: &PersistentVolume) -> &str {
    if let Some(class) = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_STORAGE_CLASS))
    {
        return class;
    }
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// Whether `pv`'s required node affinity admits a node with `node`'s labels (upstream's
/// `CheckNodeAffinity`, which matches the labels only: field selectors see no name).
/// Terms that do not parse match nothing.
pub fn volume_admits_node(pv: &PersistentVolume, node: &Node) -> bool {
    let Some(required) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let labels_only = Node {
        metadata: ObjectMeta {
            labels: node.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    NodeSelector::lazy(required).matches(&labels_only)
}

/// The claim a volume stands for: a claim's name, or an ephemeral volume's generated
/// claim `<pod>-<volume>`; `None` for other volumes.
pub fn claim_name_of(pod: &Pod, v: &Volume) -> Option<(String, bool)> {
    if let Some(c) = v.persistent_volume_claim.as_ref() {
        return Some((c.claim_name.clone(), false));
    }
    v.ephemeral.as_ref().map(|_| {
        let pod_name = pod.metadata.name.as_deref().unwrap_or("");
        (format!("{pod_name}-{}", v.name), true)
    })
}

/// Upstream's `ephemeral.VolumeIsForPod`: the generated claim must be controlled by the
/// pod.
pub fn ephemeral_claim_is_for_pod(pod: &Pod, pvc: &PersistentVolumeClaim) -> Result<(), String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let owned = pvc
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid);
    if owned {
        Ok(())
    } else {
        Err(format!(
            "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
            pvc.metadata.namespace.as_deref().unwrap_or(""),
            pvc.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        ))
    }
}

fn volumes_of(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[])
}

fn resource_version<K: kube::Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().unwrap_or_default()
}

/// An object the scheduler changed in memory before the API did, and the version of
/// the informer's copy it was derived from.
#[derive(Clone, Debug)]
struct Assumed<K> {
    based_on: String,
    object: Arc<K>,
}

/// Upstream's assume cache for volumes and claims: the informers' objects overlaid with
/// what Reserve assumed, until the informer delivers a newer version.
#[derive(Default)]
struct AssumeCache {
    pvs: Mutex<HashMap<String, Assumed<PersistentVolume>>>,
    pvcs: Mutex<HashMap<String, Assumed<PersistentVolumeClaim>>>,
}

fn overlay<K: kube::Resource>(
    assumed: &Mutex<HashMap<String, Assumed<K>>>,
    key: &str,
    informed: Option<Arc<K>>,
) -> Option<Arc<K>> {
    let informed = informed?;
    let mut map = assumed.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(key) {
        Some(a) if a.based_on == resource_version(&*informed) => Some(a.object.clone()),
        Some(_) => {
            // the informer caught up (or someone else wrote): its copy wins
            map.remove(key);
            Some(informed)
        }
        None => Some(informed),
    }
}

/// A claim and the volume chosen for it.
#[derive(Clone, Debug)]
struct Binding {
    pv: Arc<PersistentVolume>,
    pvc: Arc<PersistentVolumeClaim>,
}

/// What one node needs for the pod (upstream's `PodVolumes`).
#[derive(Clone, Debug, Default)]
struct PodVolumes {
    static_bindings: Vec<Binding>,
    dynamic_provisions: Vec<Arc<PersistentVolumeClaim>>,
}

/// The pod's claims sorted out in PreFilter (upstream's `PodVolumeClaims`).
#[derive(Debug, Default)]
struct PodVolumeClaims {
    bound: Vec<Arc<PersistentVolumeClaim>>,
    unbound_delay_binding: Vec<Arc<PersistentVolumeClaim>>,
    unbound_immediate: usize,
    /// Per class of the delayed claims, the volumes of that class.
    volumes_by_class: HashMap<String, Vec<Arc<PersistentVolume>>>,
}

/// The cycle's state. Filter runs on many nodes at once through a shared `&CycleState`:
/// the per-node results sit behind a lock, shared by clones as upstream's pointer is.
#[derive(Clone, Debug)]
struct StateData {
    claims: Arc<PodVolumeClaims>,
    by_node: Arc<Mutex<HashMap<String, PodVolumes>>>,
    /// What Reserve assumed, for PreBind to write; `None` when all was bound.
    reserved: Option<PodVolumes>,
}

/// Binds the pod's claims to volumes on the chosen node.
pub struct VolumeBinding {
    volumes: VolumeListers,
    client: Option<kube::Client>,
    assumed: AssumeCache,
    bind_timeout: Duration,
}

/// `VolumeBindingArgs` (kubescheduler.config.k8s.io/v1); `shape` belongs to the alpha
/// scoring and is accepted but unused.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct VolumeBindingArgs {
    bind_timeout_seconds: i64,
}

impl Default for VolumeBindingArgs {
    fn default() -> Self {
        // upstream's default
        VolumeBindingArgs {
            bind_timeout_seconds: 600,
        }
    }
}

/// Whether a claim waits for its first consumer (upstream's `IsDelayBindingMode`): a
/// class that does not exist counts as immediate.
fn is_delay_binding(volumes: &VolumeListers, pvc: &PersistentVolumeClaim) -> Result<bool, String> {
    let class = claim_class(pvc);
    if class.is_empty() {
        return Ok(false);
    }
    let Some(sc) = volumes.storage_class(class) else {
        return Ok(false);
    };
    match sc.volume_binding_mode.as_deref() {
        None => Err(format!(
            "VolumeBindingMode not set for StorageClass {class:?}"
        )),
        Some(mode) => Ok(mode == "WaitForFirstConsumer"),
    }
}

fn is_fully_bound(pvc: &PersistentVolumeClaim) -> bool {
    let named = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    named
        && pvc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED))
}

fn volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn requested_storage(pvc: &PersistentVolumeClaim) -> ParsedQuantity {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        .unwrap_or_default()
}

fn capacity(pv: &PersistentVolume) -> ParsedQuantity {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        .unwrap_or_default()
}

/// Whether `pv`'s claimRef names `pvc` (upstream's `IsVolumeBoundToClaim`).
fn is_volume_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name == pvc.metadata.name
        && r.namespace == pvc.metadata.namespace
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref())
}

/// The smallest volume among `candidates` that can serve `pvc` on `node`, or the one
/// pre-bound to it (upstream's `FindMatchingVolume` on the scheduler's path).
fn find_matching_volume(
    pvc: &PersistentVolumeClaim,
    candidates: &[Arc<PersistentVolume>],
    node: &Node,
    excluded: &BTreeSet<String>,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let requested = requested_storage(pvc);
    let class = claim_class(pvc);
    let spec = pvc.spec.as_ref();
    let selector = match spec.and_then(|s| s.selector.as_ref()) {
        Some(s) => Some(
            crate::framework::types::label_selector(Some(s)).map_err(|e| {
                format!(
                    "error creating internal label selector for claim: {}/{}: {e}",
                    pvc.metadata.namespace.as_deref().unwrap_or(""),
                    pvc.metadata.name.as_deref().unwrap_or("")
                )
            })?,
        ),
        None => None,
    };
    let claim_mode = spec
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let claim_access: Vec<&str> = spec
        .and_then(|s| s.access_modes.as_ref())
        .map(|m| m.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut smallest: Option<(Arc<PersistentVolume>, ParsedQuantity)> = None;
    for pv in candidates {
        let name = pv.metadata.name.as_deref().unwrap_or("");
        if excluded.contains(name) {
            continue;
        }
        let Some(pv_spec) = pv.spec.as_ref() else {
            continue;
        };
        if pv_spec.claim_ref.is_some() && !is_volume_bound_to_claim(pv, pvc) {
            continue;
        }
        let size = capacity(pv);
        if size < requested {
            continue;
        }
        if pv_spec.volume_mode.as_deref().unwrap_or("Filesystem") != claim_mode {
            continue;
        }
        if pv.metadata.deletion_timestamp.is_some() {
            continue;
        }
        // the costliest check, as upstream notes; the cheaper ones ran first
        let affinity_ok = volume_admits_node(pv, node);
        if is_volume_bound_to_claim(pv, pvc) {
            // a pre-bound volume is the only candidate: on this node or nowhere
            return Ok(affinity_ok.then(|| pv.clone()));
        }
        let available = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        if !available {
            continue;
        }
        if let Some(sel) = &selector {
            let labels = pv.metadata.labels.clone().unwrap_or_default();
            if !sel.matches(&labels) {
                continue;
            }
        }
        if volume_class(pv) != class || !affinity_ok {
            continue;
        }
        let pv_access = pv_spec.access_modes.as_deref().unwrap_or(&[]);
        if !claim_access
            .iter()
            .all(|m| pv_access.iter().any(|p| p == m))
        {
            continue;
        }
        if smallest.as_ref().is_none_or(|(_, s)| *s > size) {
            smallest = Some((pv.clone(), size));
        }
    }
    Ok(smallest.map(|(pv, _)| pv))
}

/// Whether `labels` meet a class's `allowedTopologies` (upstream's
/// `MatchTopologySelectorTerms`): no terms means anywhere.
fn matches_allowed_topologies(class: &StorageClass, node: &Node) -> bool {
    let Some(terms) = class.allowed_topologies.as_ref().filter(|t| !t.is_empty()) else {
        return true;
    };
    let labels = node.metadata.labels.as_ref();
    terms.iter().any(|term| {
        term.match_label_expressions.iter().flatten().all(|req| {
            labels
                .and_then(|l| l.get(&req.key))
                .is_some_and(|v| req.values.contains(v))
        })
    })
}

impl VolumeBinding {
    /// A plugin over `volumes`, binding through `client` (none in unit tests).
    pub fn new(
        volumes: VolumeListers,
        client: Option<kube::Client>,
        bind_timeout: Duration,
    ) -> VolumeBinding {
        VolumeBinding {
            volumes,
            client,
            assumed: AssumeCache::default(),
            bind_timeout,
        }
    }

    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        let key = format!("{namespace}/{name}");
        overlay(&self.assumed.pvcs, &key, self.volumes.pvc(namespace, name))
    }

    fn pv(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        overlay(&self.assumed.pvs, name, self.volumes.pv(name))
    }

    /// Upstream's `podHasPVCs`: whether the pod uses claims, and why it cannot be
    /// scheduled yet when one is missing, lost, being deleted or not the pod's own.
    fn pod_has_pvcs(&self, pod: &PodInfo) -> Result<bool, String> {
        let mut has = false;
        for v in volumes_of(&pod.pod) {
            let Some((name, ephemeral)) = claim_name_of(&pod.pod, v) else {
                continue;
            };
            has = true;
            let Some(pvc) = self.pvc(pod.namespace(), &name) else {
                return Err(if ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                    )
                } else {
                    format!("persistentvolumeclaim {name:?} not found")
                });
            };
            if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
                return Err(format!(
                    "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                    volume_name(&pvc)
                ));
            }
            if pvc.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            if ephemeral {
                ephemeral_claim_is_for_pod(&pod.pod, &pvc)?;
            }
        }
        Ok(has)
    }

    /// Upstream's `GetPodVolumeClaims`.
    fn pod_volume_claims(&self, pod: &PodInfo) -> Result<PodVolumeClaims, String> {
        let mut claims = PodVolumeClaims::default();
        for v in volumes_of(&pod.pod) {
            let Some((name, _)) = claim_name_of(&pod.pod, v) else {
                continue;
            };
            let Some(pvc) = self.pvc(pod.namespace(), &name) else {
                return Err(format!(
                    "error getting PVC {:?}: not found",
                    format!("{}/{name}", pod.namespace())
                ));
            };
            if is_fully_bound(&pvc) {
                claims.bound.push(pvc);
            } else if is_delay_binding(&self.volumes, &pvc)? && volume_name(&pvc).is_empty() {
                claims.unbound_delay_binding.push(pvc);
            } else {
                // immediate claims, and pre-bound ones, are the PV controller's to bind
                claims.unbound_immediate += 1;
            }
        }
        if !claims.unbound_delay_binding.is_empty() {
            let all: Vec<Arc<PersistentVolume>> = self
                .volumes
                .all_pvs()
                .into_iter()
                .filter_map(|pv| self.pv(pv.metadata.name.as_deref().unwrap_or("")))
                .collect();
            for pvc in &claims.unbound_delay_binding {
                let class = claim_class(pvc).to_owned();
                if claims.volumes_by_class.contains_key(&class) {
                    continue;
                }
                let of_class = all
                    .iter()
                    .filter(|pv| volume_class(pv) == class)
                    .cloned()
                    .collect();
                claims.volumes_by_class.insert(class, of_class);
            }
        }
        Ok(claims)
    }

    /// The nodes named by the hostname affinity of the bound claims' local volumes
    /// (upstream's `GetEligibleNodes`): `None` when that does not narrow anything.
    fn eligible_nodes(&self, bound: &[Arc<PersistentVolumeClaim>]) -> Option<BTreeSet<String>> {
        let mut eligible: Option<BTreeSet<String>> = None;
        for pvc in bound {
            // a volume missing from the cache: do not narrow (Filter reports it)
            let pv = self.pv(volume_name(pvc))?;
            if let Some(names) = local_volume_node_names(&pv) {
                eligible = Some(match eligible {
                    None => names,
                    Some(e) => e.intersection(&names).cloned().collect(),
                });
            }
        }
        eligible
    }

    /// Upstream's `FindPodVolumes` for one node: the reasons it cannot serve the pod's
    /// claims, or what it would take.
    fn find_pod_volumes(
        &self,
        claims: &PodVolumeClaims,
        node: &Node,
    ) -> Result<(PodVolumes, Vec<&'static str>), String> {
        let mut volumes = PodVolumes::default();
        let mut reasons = Vec::new();
        let node_name = node.metadata.name.as_deref().unwrap_or("");
        for pvc in &claims.bound {
            let Some(pv) = self.pv(volume_name(pvc)) else {
                reasons.push(ERR_REASON_PV_NOT_EXIST);
                return Ok((volumes, reasons));
            };
            if !volume_admits_node(&pv, node) {
                reasons.push(ERR_REASON_NODE_CONFLICT);
                return Ok((volumes, reasons));
            }
        }
        if claims.unbound_delay_binding.is_empty() {
            return Ok((volumes, reasons));
        }
        let mut to_match = Vec::new();
        let mut to_provision = Vec::new();
        for pvc in &claims.unbound_delay_binding {
            match pvc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_SELECTED_NODE))
            {
                // provisioning for another node is under way
                Some(selected) if selected != node_name => {
                    reasons.push(ERR_REASON_BIND_CONFLICT);
                    return Ok((volumes, reasons));
                }
                Some(_) => to_provision.push(pvc.clone()),
                None => to_match.push(pvc.clone()),
            }
        }
        let mut satisfied = true;
        // smallest requests first, so each gets the smallest volume that fits
        to_match.sort_by_key(|pvc| requested_storage(pvc));
        let mut chosen = BTreeSet::new();
        let empty = Vec::new();
        for pvc in to_match {
            let candidates = claims
                .volumes_by_class
                .get(claim_class(&pvc))
                .unwrap_or(&empty);
            match find_matching_volume(&pvc, candidates, node, &chosen)? {
                Some(pv) => {
                    chosen.insert(pv.metadata.name.clone().unwrap_or_default());
                    volumes.static_bindings.push(Binding { pv, pvc });
                }
                None => {
                    satisfied = false;
                    to_provision.push(pvc);
                }
            }
        }
        if !to_provision.is_empty() {
            // upstream's checkVolumeProvisions
            satisfied = true;
            for pvc in to_provision {
                let class_name = claim_class(&pvc);
                if class_name.is_empty() {
                    return Err(format!(
                        "no class for claim {:?}",
                        pvc.metadata.name.as_deref().unwrap_or("")
                    ));
                }
                let Some(class) = self.volumes.storage_class(class_name) else {
                    return Err(format!("failed to find storage class {class_name:?}"));
                };
                if class.provisioner.is_empty()
                    || class.provisioner == NOT_SUPPORTED_PROVISIONER
                    || !matches_allowed_topologies(&class, node)
                {
                    satisfied = false;
                    break;
                }
                volumes.dynamic_provisions.push(pvc);
            }
        }
        if !satisfied {
            reasons.push(ERR_REASON_BIND_CONFLICT);
        }
        Ok((volumes, reasons))
    }

    /// Upstream's `AssumePodVolumes`: the bindings as they will be, in the overlay.
    fn assume(&self, pod: &PodInfo, node: &str, volumes: &PodVolumes) -> PodVolumes {
        let mut assumed = PodVolumes::default();
        for b in &volumes.static_bindings {
            if is_volume_bound_to_claim(&b.pv, &b.pvc) {
                continue;
            }
            let mut pv = (*b.pv).clone();
            let based_on = resource_version(&pv);
            if let Some(spec) = pv.spec.as_mut() {
                spec.claim_ref = Some(ObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("PersistentVolumeClaim".to_owned()),
                    namespace: b.pvc.metadata.namespace.clone(),
                    name: b.pvc.metadata.name.clone(),
                    uid: b.pvc.metadata.uid.clone(),
                    resource_version: b.pvc.metadata.resource_version.clone(),
                    ..ObjectReference::default()
                });
            }
            pv.metadata
                .annotations
                .get_or_insert_default()
                .insert(ANN_BOUND_BY_CONTROLLER.to_owned(), "yes".to_owned());
            let pv = Arc::new(pv);
            self.assumed
                .pvs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    pv.metadata.name.clone().unwrap_or_default(),
                    Assumed {
                        based_on,
                        object: pv.clone(),
                    },
                );
            assumed.static_bindings.push(Binding {
                pv,
                pvc: b.pvc.clone(),
            });
        }
        for pvc in &volumes.dynamic_provisions {
            let mut claim = (**pvc).clone();
            let based_on = resource_version(&claim);
            claim
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(ANN_SELECTED_NODE.to_owned(), node.to_owned());
            let claim = Arc::new(claim);
            let key = format!(
                "{}/{}",
                pod.namespace(),
                claim.metadata.name.as_deref().unwrap_or("")
            );
            self.assumed
                .pvcs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    key,
                    Assumed {
                        based_on,
                        object: claim.clone(),
                    },
                );
            assumed.dynamic_provisions.push(claim);
        }
        assumed
    }

    /// Upstream's `RevertAssumedPodVolumes`.
    fn revert(&self, volumes: &PodVolumes) {
        let mut pvs = self.assumed.pvs.lock().unwrap_or_else(|e| e.into_inner());
        for b in &volumes.static_bindings {
            pvs.remove(b.pv.metadata.name.as_deref().unwrap_or(""));
        }
        drop(pvs);
        let mut pvcs = self.assumed.pvcs.lock().unwrap_or_else(|e| e.into_inner());
        for c in &volumes.dynamic_provisions {
            pvcs.remove(&format!(
                "{}/{}",
                c.metadata.namespace.as_deref().unwrap_or("default"),
                c.metadata.name.as_deref().unwrap_or("")
            ));
        }
    }

    /// Upstream's `checkBindings`: `Ok(true)` once every claim is bound, an error when
    /// a binding can no longer happen.
    fn bindings_done(
        &self,
        pod: &PodInfo,
        node: &str,
        volumes: &PodVolumes,
    ) -> Result<bool, String> {
        let mut done = true;
        for b in &volumes.static_bindings {
            let pv_name = b.pv.metadata.name.as_deref().unwrap_or("");
            let Some(pv) = self.volumes.pv(pv_name) else {
                return Err(format!("failed to get pv {pv_name:?} from cache"));
            };
            let reset = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_none_or(|r| r.uid.as_deref().unwrap_or("").is_empty());
            if reset && resource_version(&*pv) != resource_version(&*b.pv) {
                return Err(format!("ClaimRef got reset for pv {pv_name:?}"));
            }
            let claim = b.pvc.metadata.name.as_deref().unwrap_or("");
            match self.volumes.pvc(pod.namespace(), claim) {
                None => {
                    return Err(format!(
                        "failed to get pvc {:?}",
                        format!("{}/{claim}", pod.namespace())
                    ));
                }
                Some(pvc) => done &= is_fully_bound(&pvc),
            }
        }
        for c in &volumes.dynamic_provisions {
            let claim = c.metadata.name.as_deref().unwrap_or("");
            let Some(pvc) = self.volumes.pvc(pod.namespace(), claim) else {
                return Err(format!(
                    "failed to get pvc {:?}",
                    format!("{}/{claim}", pod.namespace())
                ));
            };
            match pvc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_SELECTED_NODE))
            {
                None => return Err(format!("selectedNode annotation reset for PVC {claim:?}")),
                Some(selected) if selected != node => {
                    return Err(format!(
                        "selectedNode annotation value {selected:?} not set to scheduled node {node:?}"
                    ));
                }
                Some(_) => done &= is_fully_bound(&pvc),
            }
        }
        Ok(done)
    }

    /// Upstream's `BindPodVolumes`: writes the assumed objects, then waits for the PV
    /// controller to finish the bindings.
    async fn bind_pod_volumes(
        &self,
        pod: &PodInfo,
        node: &str,
        volumes: &PodVolumes,
    ) -> Result<(), String> {
        let Some(client) = self.client.clone() else {
            return Err("no API client to bind volumes with".to_owned());
        };
        let pvs = kube::Api::<PersistentVolume>::all(client.clone());
        for b in &volumes.static_bindings {
            let name = b.pv.metadata.name.as_deref().unwrap_or("");
            pvs.replace(name, &kube::api::PostParams::default(), &b.pv)
                .await
                .map_err(|e| format!("binding volumes: {e}"))?;
        }
        let pvcs = kube::Api::<PersistentVolumeClaim>::namespaced(client, pod.namespace());
        for c in &volumes.dynamic_provisions {
            let name = c.metadata.name.as_deref().unwrap_or("");
            pvcs.replace(name, &kube::api::PostParams::default(), c)
                .await
                .map_err(|e| format!("binding volumes: {e}"))?;
        }
        let deadline = tokio::time::Instant::now() + self.bind_timeout;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.bindings_done(pod, node, volumes) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(format!("binding volumes: {e}")),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("binding volumes: context deadline exceeded".to_owned());
            }
        }
    }
}

/// The node names a volume's required affinity pins it to through `kubernetes.io/
/// hostname In` (upstream's `GetLocalPersistentVolumeNodeNames`, which takes the
/// hostname label for the node's name). `None` when some term does not pin the host:
/// upstream drops such a term, which would wrongly exclude the nodes it admits.
fn local_volume_node_names(pv: &PersistentVolume) -> Option<BTreeSet<String>> {
    let required = pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?;
    let mut result = BTreeSet::new();
    for term in &required.node_selector_terms {
        let mut nodes: Option<BTreeSet<String>> = None;
        for e in term.match_expressions.iter().flatten() {
            if e.key == "kubernetes.io/hostname" && e.operator == "In" {
                let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
                nodes = Some(match nodes {
                    None => values,
                    Some(n) => n.intersection(&values).cloned().collect(),
                });
            }
        }
        result.extend(nodes?);
    }
    Some(result)
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // upstream's registrations with queueing hints on, without the hints: our
        // storage events do not carry their objects. CSIDriver and CSIStorageCapacity
        // events are not produced here.
        let add_or_update = ActionType::ADD.or(ActionType::UPDATE);
        vec![
            ClusterEventWithHint::on(EventResource::StorageClass, add_or_update),
            ClusterEventWithHint::on(EventResource::PersistentVolumeClaim, add_or_update),
            ClusterEventWithHint::on(EventResource::PersistentVolume, add_or_update),
            ClusterEventWithHint::on(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
            ),
            ClusterEventWithHint::on(EventResource::CsiNode, add_or_update),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        Some(self)
    }

    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        // the hot path: no state is written, Reserve and PreBind find none and pass
        match self.pod_has_pvcs(pod) {
            Ok(false) => return (None, Status::skip()),
            Ok(true) => {}
            Err(e) => return (None, Status::unresolvable(e)),
        }
        let claims = match self.pod_volume_claims(pod) {
            Ok(c) => c,
            Err(e) => return (None, Status::error(e)),
        };
        if claims.unbound_immediate > 0 {
            // the PV controller binds them; its claim updates requeue the pod
            return (None, Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE));
        }
        let result = self
            .eligible_nodes(&claims.bound)
            .map(|names| PreFilterResult {
                node_names: Some(names),
            });
        state.write(
            STATE_KEY,
            StateData {
                claims: Arc::new(claims),
                by_node: Arc::default(),
                reserved: None,
            },
        );
        (result, Status::success())
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<StateData>(STATE_KEY) else {
            return Status::error(format!("reading {STATE_KEY:?} from cycleState: not found"));
        };
        let (volumes, reasons) = match self.find_pod_volumes(&s.claims, node.node()) {
            Ok(found) => found,
            Err(e) => return Status::error(e),
        };
        if !reasons.is_empty() {
            return Status {
                code: crate::framework::Code::UnschedulableAndUnresolvable,
                reasons: reasons.into_iter().map(str::to_owned).collect(),
                plugin: "",
            };
        }
        s.by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.name().to_owned(), volumes);
        Status::success()
    }
}

impl ReservePlugin for VolumeBinding {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(s) = state.read_mut::<StateData>(STATE_KEY) else {
            // PreFilter skipped: the pod has no claims
            return Status::success();
        };
        let found = s
            .by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned();
        if let Some(volumes) = found {
            let assumed = self.assume(pod, node, &volumes);
            let all_bound =
                assumed.static_bindings.is_empty() && assumed.dynamic_provisions.is_empty();
            s.reserved = (!all_bound).then_some(assumed);
        }
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, _pod: &PodInfo, _node: &str) {
        if let Some(s) = state.read_mut::<StateData>(STATE_KEY) {
            if let Some(reserved) = s.reserved.take() {
                self.revert(&reserved);
            }
        }
    }
}

#[async_trait::async_trait]
impl PreBindPlugin for VolumeBinding {
    async fn pre_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(reserved) = state
            .read::<StateData>(STATE_KEY)
            .and_then(|s| s.reserved.as_ref())
        else {
            // every claim was bound already (or the pod has none)
            return Status::success();
        };
        match self.bind_pod_volumes(pod, node, reserved).await {
            Ok(()) => Status::success(),
            Err(e) => {
                tracing::debug!(pod = %pod.key(), error = %e, "failed to bind volumes for pod");
                Status::error(e)
            }
        }
    }
}

/// The constructor: `VolumeBindingArgs` with upstream's validation.
pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let args: VolumeBindingArgs = decode_args(NAME, args)?;
    if args.bind_timeout_seconds < 0 {
        return Err(
            "bindTimeoutSeconds: Invalid value: invalid BindTimeoutSeconds, should not be a negative value"
                .to_owned(),
        );
    }
    Ok(Arc::new(VolumeBinding::new(
        handle.volumes.clone(),
        handle.client.clone(),
        Duration::from_secs(args.bind_timeout_seconds.unsigned_abs()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use serde_json::{Value, json};

    fn node(name: &str, labels: Value) -> NodeInfo {
        NodeInfo::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn pod(claims: &[&str]) -> PodInfo {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default", "uid": "p-uid"},
                "spec": {"containers": [{"name": "c"}], "volumes": volumes}
            }))
            .unwrap(),
        )
    }

    /// A claim: `volume` bound (with bind-completed) when given.
    fn pvc(name: &str, class: &str, volume: Option<&str>, size: &str) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}}}
        });
        if let Some(pv) = volume {
            v["spec"]["volumeName"] = json!(pv);
            v["metadata"]["annotations"] = json!({ANN_BIND_COMPLETED: "yes"});
        }
        serde_json::from_value(v).unwrap()
    }

    /// A volume of `class` pinned to `host` (when given), Available unless `claim`.
    fn pv(
        name: &str,
        class: &str,
        host: Option<&str>,
        size: &str,
        claim: Option<&str>,
    ) -> PersistentVolume {
        let mut v = json!({
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": size}, "local": {"path": "/mnt"}},
            "status": {"phase": if claim.is_some() {"Bound"} else {"Available"}}
        });
        if let Some(h) = host {
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [h]}]}]}});
        }
        if let Some(c) = claim {
            v["spec"]["claimRef"] =
                json!({"namespace": "default", "name": c, "uid": format!("{c}-uid")});
        }
        serde_json::from_value(v).unwrap()
    }

    fn class(name: &str, mode: &str, provisioner: &str) -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode})).unwrap()
    }

    fn plugin(volumes: &VolumeListers) -> VolumeBinding {
        VolumeBinding::new(volumes.clone(), None, Duration::from_secs(1))
    }

    fn host(name: &str) -> NodeInfo {
        node(name, json!({"kubernetes.io/hostname": name}))
    }

    #[test]
    fn pods_without_claims_skip() {
        let pl = plugin(&VolumeListers::default());
        let mut state = CycleState::default();
        let p = PodInfo::new(serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "e", "emptyDir": {}}]}})).unwrap());
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_skip());
        // Reserve and PreBind pass without state
        assert!(pl.reserve(&mut state, &p, "n").is_success());
    }

    #[test]
    fn missing_lost_and_deleted_claims_are_unresolvable() {
        let volumes = VolumeListers::default();
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let (_, s) = pl.pre_filter(&mut state, &pod(&["x"]), &[]);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), r#"persistentvolumeclaim "x" not found"#);
        let mut deleting = pvc("x", "", Some("pv"), "1Gi");
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap());
        volumes.put_pvc(deleting);
        let (_, s) = pl.pre_filter(&mut state, &pod(&["x"]), &[]);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), r#"persistentvolumeclaim "x" is being deleted"#);
        let mut lost = pvc("x", "", Some("pv"), "1Gi");
        lost.status = Some(serde_json::from_value(json!({"phase": "Lost"})).unwrap());
        volumes.put_pvc(lost);
        let (_, s) = pl.pre_filter(&mut state, &pod(&["x"]), &[]);
        assert_eq!(
            s.message(),
            r#"persistentvolumeclaim "x" bound to non-existent persistentvolume "pv""#
        );
    }

    #[test]
    fn unbound_immediate_claims_are_unresolvable() {
        let volumes = VolumeListers::default();
        volumes.put_storage_class(class("fast", "Immediate", "example.com/csi"));
        volumes.put_pvc(pvc("c", "fast", None, "1Gi"));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let (_, s) = pl.pre_filter(&mut state, &pod(&["c"]), &[]);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_UNBOUND_IMMEDIATE);
    }

    #[test]
    fn bound_claims_need_volume_node_affinity_and_narrow_prefilter() {
        let volumes = VolumeListers::default();
        volumes.put_pvc(pvc("c", "local", Some("pv-b"), "1Gi"));
        volumes.put_pv(pv("pv-b", "local", Some("b"), "1Gi", Some("c")));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let (result, s) = pl.pre_filter(&mut state, &pod(&["c"]), &[]);
        assert!(s.is_success());
        assert_eq!(
            result.unwrap().node_names,
            Some(BTreeSet::from(["b".to_owned()]))
        );
        let s = pl.filter(&state, &pod(&["c"]), &host("a"));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_NODE_CONFLICT);
        assert!(pl.filter(&state, &pod(&["c"]), &host("b")).is_success());
        // nothing to bind: Reserve marks all bound, PreBind has nothing to do
        assert!(pl.reserve(&mut state, &pod(&["c"]), "b").is_success());
        assert!(
            state
                .read::<StateData>(STATE_KEY)
                .unwrap()
                .reserved
                .is_none()
        );
    }

    #[test]
    fn a_bound_claim_whose_volume_is_gone() {
        let volumes = VolumeListers::default();
        volumes.put_pvc(pvc("c", "", Some("gone"), "1Gi"));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let (result, s) = pl.pre_filter(&mut state, &pod(&["c"]), &[]);
        assert!(s.is_success() && result.is_none());
        let s = pl.filter(&state, &pod(&["c"]), &host("a"));
        assert_eq!(s.message(), ERR_REASON_PV_NOT_EXIST);
    }

    #[test]
    fn wait_for_first_consumer_claims_find_the_smallest_local_volume() {
        let volumes = VolumeListers::default();
        volumes.put_storage_class(class(
            "local",
            "WaitForFirstConsumer",
            NOT_SUPPORTED_PROVISIONER,
        ));
        volumes.put_pvc(pvc("c", "local", None, "5Gi"));
        volumes.put_pv(pv("big-a", "local", Some("a"), "100Gi", None));
        volumes.put_pv(pv("small-a", "local", Some("a"), "10Gi", None));
        volumes.put_pv(pv("tiny-a", "local", Some("a"), "1Gi", None));
        volumes.put_pv(pv("taken-b", "local", Some("b"), "10Gi", Some("other")));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let p = pod(&["c"]);
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_success());
        let s = pl.filter(&state, &p, &host("b"));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_BIND_CONFLICT);
        assert!(pl.filter(&state, &p, &host("a")).is_success());
        assert!(pl.reserve(&mut state, &p, "a").is_success());
        let reserved = state
            .read::<StateData>(STATE_KEY)
            .unwrap()
            .reserved
            .clone()
            .unwrap();
        assert_eq!(
            reserved.static_bindings[0].pv.metadata.name.as_deref(),
            Some("small-a")
        );
        // the assumed claimRef hides the volume from the next pod's cycle
        let assumed = pl.pv("small-a").unwrap();
        assert_eq!(
            assumed
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("c")
        );
        // Unreserve forgets it
        pl.unreserve(&mut state, &p, "a");
        assert!(
            pl.pv("small-a")
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .is_none()
        );
    }

    #[test]
    fn delayed_claims_without_volumes_are_provisioned_where_the_class_allows() {
        let volumes = VolumeListers::default();
        let mut sc = class("csi", "WaitForFirstConsumer", "example.com/csi");
        sc.allowed_topologies = Some(vec![
            serde_json::from_value(json!({"matchLabelExpressions": [
            {"key": "topology.kubernetes.io/zone", "values": ["z1"]}]}))
            .unwrap(),
        ]);
        volumes.put_storage_class(sc);
        volumes.put_pvc(pvc("c", "csi", None, "1Gi"));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let p = pod(&["c"]);
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_success());
        let z2 = node("n2", json!({"topology.kubernetes.io/zone": "z2"}));
        assert_eq!(
            pl.filter(&state, &p, &z2).message(),
            ERR_REASON_BIND_CONFLICT
        );
        let z1 = node("n1", json!({"topology.kubernetes.io/zone": "z1"}));
        assert!(pl.filter(&state, &p, &z1).is_success());
        assert!(pl.reserve(&mut state, &p, "n1").is_success());
        let claim = pl.pvc("default", "c").unwrap();
        assert_eq!(
            claim
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(ANN_SELECTED_NODE)
                .map(String::as_str),
            Some("n1")
        );
        // a claim being provisioned for n1 fits no other node
        let mut state = CycleState::default();
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_success());
        let other_z1 = node("n3", json!({"topology.kubernetes.io/zone": "z1"}));
        assert_eq!(
            pl.filter(&state, &p, &other_z1).message(),
            ERR_REASON_BIND_CONFLICT
        );
    }

    #[test]
    fn a_class_that_cannot_provision_leaves_the_claim_unbindable() {
        let volumes = VolumeListers::default();
        volumes.put_storage_class(class(
            "local",
            "WaitForFirstConsumer",
            NOT_SUPPORTED_PROVISIONER,
        ));
        volumes.put_pvc(pvc("c", "local", None, "1Gi"));
        let pl = plugin(&volumes);
        let mut state = CycleState::default();
        let p = pod(&["c"]);
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_success());
        assert_eq!(
            pl.filter(&state, &p, &host("a")).message(),
            ERR_REASON_BIND_CONFLICT
        );
    }

    #[test]
    fn pre_bound_volumes_are_the_only_candidate() {
        let volumes = VolumeListers::default();
        let pvc_ = pvc("c", "local", None, "1Gi");
        let prebound = pv("mine", "local", Some("b"), "1Gi", Some("c"));
        let free = pv("free", "local", Some("a"), "1Gi", None);
        let excluded = BTreeSet::new();
        let candidates = vec![Arc::new(free), Arc::new(prebound)];
        let on_a = find_matching_volume(&pvc_, &candidates, host("a").node(), &excluded).unwrap();
        assert!(on_a.is_none(), "the pre-bound volume is not on a");
        let on_b = find_matching_volume(&pvc_, &candidates, host("b").node(), &excluded).unwrap();
        assert_eq!(on_b.unwrap().metadata.name.as_deref(), Some("mine"));
        let _ = &volumes;
    }

    #[test]
    fn local_volume_node_names_follow_hostname_terms() {
        let one = pv("x", "", Some("b"), "1Gi", None);
        assert_eq!(
            local_volume_node_names(&one),
            Some(BTreeSet::from(["b".to_owned()]))
        );
        let none = pv("x", "", None, "1Gi", None);
        assert_eq!(local_volume_node_names(&none), None);
        let mut zone: PersistentVolume = pv("x", "", None, "1Gi", None);
        zone.spec.as_mut().unwrap().node_affinity = Some(serde_json::from_value(json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z"]}]}]}})).unwrap());
        assert_eq!(local_volume_node_names(&zone), None);
    }

    #[test]
    fn pre_bind_waits_for_the_claims_and_fails_when_provisioning_is_reset() {
        let volumes = VolumeListers::default();
        let pl = plugin(&volumes);
        let p = pod(&["c"]);
        let mut selected = pvc("c", "csi", None, "1Gi");
        selected
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ANN_SELECTED_NODE.to_owned(), "n1".to_owned());
        let provisions = PodVolumes {
            static_bindings: Vec::new(),
            dynamic_provisions: vec![Arc::new(selected.clone())],
        };
        // the claim is missing
        assert!(
            pl.bindings_done(&p, "n1", &provisions)
                .unwrap_err()
                .contains("failed to get pvc")
        );
        // provisioning under way
        volumes.put_pvc(selected.clone());
        assert_eq!(pl.bindings_done(&p, "n1", &provisions), Ok(false));
        // the provisioner gave up and reset the annotation
        volumes.put_pvc(pvc("c", "csi", None, "1Gi"));
        assert_eq!(
            pl.bindings_done(&p, "n1", &provisions),
            Err(r#"selectedNode annotation reset for PVC "c""#.to_owned())
        );
        // bound by the PV controller
        let mut bound = pvc("c", "csi", Some("pv"), "1Gi");
        bound
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ANN_SELECTED_NODE.to_owned(), "n1".to_owned());
        volumes.put_pvc(bound);
        assert_eq!(pl.bindings_done(&p, "n1", &provisions), Ok(true));
    }

    #[test]
    fn negative_bind_timeout_is_rejected() {
        assert!(new(Some(&json!({"bindTimeoutSeconds": -1})), &Handle::default()).is_err());
        let pl = new(
            Some(&json!({"bindTimeoutSeconds": 30, "shape": []})),
            &Handle::default(),
        )
        .unwrap();
        assert_eq!(pl.name(), NAME);
    }
}
