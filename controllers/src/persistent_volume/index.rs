//! Which volume a claim gets, as upstream's `persistentVolumeOrderedIndex` and
//! component-helpers' `FindMatchingVolume`: volumes are grouped by their set of access
//! modes; the groups holding every mode the claim asks for are tried from the fewest
//! modes up, and in the first group with a match, a volume pre-bound to the claim wins,
//! else the smallest Available one of the claim's class, volume mode, size and selector.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::controller_utils::label_selector;

/// On claims: the controller has finished binding once (upstream's `AnnBindCompleted`).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On volumes and claims: the controller made the binding, not the user.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On claims: the node the scheduler picked for a WaitForFirstConsumer claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On volumes: the plugin or external provisioner that created the volume.
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// On claims: the provisioner asked to create a volume for it.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling, still written as upstream does.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On claims and volumes: the CSI driver an in-tree plugin migrated to.
pub const ANN_MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";
/// The beta annotation naming a class, read before `storageClassName`.
const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const ANN_BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn annotation<'a>(annotations: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    annotations.as_ref()?.get(key).map(String::as_str)
}

/// Whether an object carries the annotation (any value).
pub fn has_annotation(annotations: &Option<BTreeMap<String, String>>, key: &str) -> bool {
    annotation(annotations, key).is_some()
}

/// A claim's class: the beta annotation, else `storageClassName`, else "".
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    if let Some(class) = annotation(&claim.metadata.annotations, ANN_BETA_STORAGE_CLASS) {
        return class.to_owned();
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// Whether the claim names a class at all (even ""), as upstream's
/// `PersistentVolumeClaimHasClass`: only a claim without one gets the default class.
pub fn claim_has_class(claim: &PersistentVolumeClaim) -> bool {
    has_annotation(&claim.metadata.annotations, ANN_BETA_STORAGE_CLASS)
        || claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_some())
}

/// A volume's class, read as a claim's.
pub fn volume_class(volume: &PersistentVolume) -> String {
    if let Some(class) = annotation(&volume.metadata.annotations, ANN_BETA_STORAGE_CLASS) {
        return class.to_owned();
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

fn storage_of(
    resources: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Quantity {
    resources
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_default()
}

/// The storage a claim requests (zero when it names none).
pub fn requested(claim: &PersistentVolumeClaim) -> Quantity {
    storage_of(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

/// A volume's storage capacity (zero when it has none).
pub fn capacity(volume: &PersistentVolume) -> Quantity {
    storage_of(volume.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

fn claim_ref_uid(volume: &PersistentVolume) -> Option<&str> {
    volume
        .spec
        .as_ref()?
        .claim_ref
        .as_ref()
        .map(|r| r.uid.as_deref().unwrap_or_default())
}

/// Whether the volume is pre-bound or bound to this claim: same namespace and name,
/// and the same uid when the volume's `claimRef` has one.
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if claim_ref.name.as_deref() != claim.metadata.name.as_deref()
        || claim_ref.namespace.as_deref() != claim.metadata.namespace.as_deref()
    {
        return false;
    }
    match claim_ref.uid.as_deref() {
        None | Some("") => true,
        Some(uid) => claim.metadata.uid.as_deref() == Some(uid),
    }
}

/// Whether claim and volume differ in volume mode (unset meaning Filesystem).
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let wanted = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let has = volume
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    wanted != has
}

fn claim_modes(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

fn volume_modes(volume: &PersistentVolume) -> Vec<String> {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

/// Whether the volume offers every access mode the claim asks for.
pub fn access_modes_satisfied(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume_modes(volume);
    claim_modes(claim).iter().all(|m| offered.contains(m))
}

/// Why a volume the claim names cannot be bound to it, as upstream's
/// `checkVolumeSatisfyClaim`.
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    if capacity(volume) < requested(claim) {
        return Err("requested PV is too small".to_owned());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".to_owned());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".to_owned());
    }
    if !access_modes_satisfied(claim, volume) {
        return Err("incompatible accessMode".to_owned());
    }
    Ok(())
}

/// Upstream's `FindMatchingVolume` on the controller's path (no node): a volume
/// pre-bound to the claim wins; with delayed binding nothing else does; otherwise the
/// smallest Available volume of the claim's class whose labels the selector matches.
pub fn find_matching_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let requested_qty = requested(claim);
    let requested_class = claim_class(claim);
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(s) => Some(label_selector(Some(s)).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}/{}: {e}",
                claim.metadata.namespace.as_deref().unwrap_or_default(),
                claim.metadata.name.as_deref().unwrap_or_default()
            )
        })?),
        None => None,
    };
    let mut smallest: Option<(&Arc<PersistentVolume>, Quantity)> = None;
    for volume in volumes {
        let bound_elsewhere =
            claim_ref_uid(volume).is_some() && !is_volume_bound_to_claim(volume, claim);
        if bound_elsewhere {
            continue;
        }
        let qty = capacity(volume);
        if qty < requested_qty
            || volume_mode_mismatch(claim, volume)
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        if is_volume_bound_to_claim(volume, claim) {
            return Ok(Some(volume.clone()));
        }
        if delay_binding {
            // the scheduler binds unbound volumes for such claims
            continue;
        }
        let available =
            volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        if !available {
            continue;
        }
        if let Some(selector) = &selector {
            let labels = volume.metadata.labels.clone().unwrap_or_default();
            if !selector.matches(&labels) {
                continue;
            }
        }
        if volume_class(volume) != requested_class {
            continue;
        }
        if smallest.as_ref().is_none_or(|(_, best)| *best > qty) {
            smallest = Some((volume, qty));
        }
    }
    Ok(smallest.map(|(v, _)| v.clone()))
}

/// Upstream's access-mode order for index keys.
const MODE_ORDER: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// A volume's access modes as a set in upstream's order (its index key).
fn mode_set(modes: &[String]) -> Vec<String> {
    let mut set: Vec<String> = MODE_ORDER
        .iter()
        .filter(|m| modes.iter().any(|x| x == *m))
        .map(|m| (*m).to_owned())
        .collect();
    // modes validation would refuse, kept in a stable order after the known ones
    let mut unknown: Vec<String> = modes
        .iter()
        .filter(|m| !MODE_ORDER.contains(&m.as_str()))
        .cloned()
        .collect();
    unknown.sort();
    unknown.dedup();
    set.extend(unknown);
    set
}

/// Upstream's `findBestMatchForClaim`: the access-mode groups that hold every mode the
/// claim asks for, fewest modes first, each searched with [`find_matching_volume`].
pub fn find_best_match(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let mut groups: BTreeMap<Vec<String>, Vec<Arc<PersistentVolume>>> = BTreeMap::new();
    for volume in volumes {
        groups
            .entry(mode_set(&volume_modes(volume)))
            .or_default()
            .push(volume.clone());
    }
    let wanted = claim_modes(claim);
    let mut candidates: Vec<(&Vec<String>, &Vec<Arc<PersistentVolume>>)> = groups
        .iter()
        .filter(|(modes, _)| wanted.iter().all(|m| modes.contains(m)))
        .collect();
    candidates.sort_by_key(|(modes, _)| modes.len());
    for (_, group) in candidates {
        if let Some(volume) = find_matching_volume(claim, group, delay_binding)? {
            return Ok(Some(volume));
        }
    }
    Ok(None)
}

/// The default class, as upstream's `GetDefaultClass`: of the classes annotated as
/// default, the newest, then the first by name.
pub fn default_class(classes: &[Arc<StorageClass>]) -> Option<Arc<StorageClass>> {
    let mut defaults: Vec<&Arc<StorageClass>> = classes
        .iter()
        .filter(|c| {
            annotation(&c.metadata.annotations, ANN_DEFAULT_CLASS) == Some("true")
                || annotation(&c.metadata.annotations, ANN_BETA_DEFAULT_CLASS) == Some("true")
        })
        .collect();
    defaults.sort_by(|a, b| {
        let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(b)
            .cmp(&created(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    defaults.first().map(|c| (*c).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pv(name: &str, size: &str, modes: Value, extra: Value) -> Arc<PersistentVolume> {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": modes},
            "status": {"phase": "Available"}
        });
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pvc(size: &str, modes: Value, extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "data", "namespace": "default", "uid": "uid-1"},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
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

    fn best(claim: &PersistentVolumeClaim, volumes: &[Arc<PersistentVolume>]) -> Option<String> {
        find_best_match(claim, volumes, false)
            .unwrap()
            .and_then(|v| v.metadata.name.clone())
    }

    #[test]
    fn the_smallest_volume_that_fits_wins() {
        let volumes = [
            pv("big", "10Gi", json!(["ReadWriteOnce"]), json!({})),
            pv("small", "1Gi", json!(["ReadWriteOnce"]), json!({})),
            pv("fits", "5Gi", json!(["ReadWriteOnce"]), json!({})),
            pv("tiny", "500Mi", json!(["ReadWriteOnce"]), json!({})),
        ];
        let claim = pvc("2Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(best(&claim, &volumes).as_deref(), Some("fits"));
        let huge = pvc("20Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(best(&huge, &volumes), None);
    }

    #[test]
    fn access_modes_must_be_a_superset_and_the_fewest_modes_win() {
        let volumes = [
            pv("rwo", "10Gi", json!(["ReadWriteOnce"]), json!({})),
            pv(
                "rwo-rox",
                "1Gi",
                json!(["ReadWriteOnce", "ReadOnlyMany"]),
                json!({}),
            ),
        ];
        // RWO: the group with only RWO is tried first, even though its volume is larger
        let claim = pvc("1Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(best(&claim, &volumes).as_deref(), Some("rwo"));
        let rox = pvc("1Gi", json!(["ReadOnlyMany"]), json!({}));
        assert_eq!(best(&rox, &volumes).as_deref(), Some("rwo-rox"));
        let rwx = pvc("1Gi", json!(["ReadWriteMany"]), json!({}));
        assert_eq!(best(&rwx, &volumes), None);
    }

    #[test]
    fn classes_must_match_and_no_class_matches_no_class() {
        let volumes = [
            pv("plain", "1Gi", json!(["ReadWriteOnce"]), json!({})),
            pv(
                "fast",
                "2Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"storageClassName": "fast"}}),
            ),
        ];
        let none = pvc("1Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(best(&none, &volumes).as_deref(), Some("plain"));
        let empty = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"storageClassName": ""}}),
        );
        assert_eq!(best(&empty, &volumes).as_deref(), Some("plain"));
        let fast = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"storageClassName": "fast"}}),
        );
        assert_eq!(best(&fast, &volumes).as_deref(), Some("fast"));
        let beta = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "fast"}}}),
        );
        assert_eq!(best(&beta, &volumes).as_deref(), Some("fast"));
        let slow = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"storageClassName": "slow"}}),
        );
        assert_eq!(best(&slow, &volumes), None);
    }

    #[test]
    fn the_selector_volume_mode_and_phase_filter_volumes() {
        let volumes = [
            pv(
                "a",
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"metadata": {"labels": {"tier": "gold"}}}),
            ),
            pv(
                "b",
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"spec": {"volumeMode": "Block"}}),
            ),
            pv(
                "c",
                "1Gi",
                json!(["ReadWriteOnce"]),
                json!({"status": {"phase": "Released"}}),
            ),
            pv(
                "d",
                "2Gi",
                json!(["ReadWriteOnce"]),
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
            ),
        ];
        let gold = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"selector": {"matchLabels": {"tier": "gold"}}}}),
        );
        assert_eq!(best(&gold, &volumes).as_deref(), Some("a"));
        let silver = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"selector": {"matchLabels": {"tier": "silver"}}}}),
        );
        assert_eq!(best(&silver, &volumes), None);
        let block = pvc(
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"volumeMode": "Block"}}),
        );
        assert_eq!(best(&block, &volumes).as_deref(), Some("b"));
        // Released, deleted and Block volumes are never picked for a filesystem claim
        let only = [volumes[1].clone(), volumes[2].clone(), volumes[3].clone()];
        let claim = pvc("1Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(best(&claim, &only), None);
    }

    #[test]
    fn a_pre_bound_volume_wins_and_volumes_bound_elsewhere_are_skipped() {
        let mine = pv(
            "mine",
            "10Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"claimRef": {"namespace": "default", "name": "data"}}, "status": {"phase": "Available"}}),
        );
        let theirs = pv(
            "theirs",
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"claimRef": {"namespace": "default", "name": "other", "uid": "x"}}, "status": {"phase": "Bound"}}),
        );
        let free = pv("free", "1Gi", json!(["ReadWriteOnce"]), json!({}));
        let claim = pvc("1Gi", json!(["ReadWriteOnce"]), json!({}));
        let volumes = [free.clone(), theirs.clone(), mine.clone()];
        assert_eq!(best(&claim, &volumes).as_deref(), Some("mine"));
        assert_eq!(best(&claim, &[theirs.clone()]), None);
        // with delayed binding only the pre-bound volume is taken
        let got = find_best_match(&claim, &[free.clone()], true).unwrap();
        assert!(got.is_none());
        let got = find_best_match(&claim, &[free, mine], true).unwrap();
        assert_eq!(
            got.and_then(|v| v.metadata.name.clone()).as_deref(),
            Some("mine")
        );
        // a claimRef with another uid is another claim of the same name
        let stale = pv(
            "stale",
            "1Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "old"}}}),
        );
        assert!(!is_volume_bound_to_claim(&stale, &claim));
        assert_eq!(best(&claim, &[stale]), None);
    }

    #[test]
    fn a_named_volume_is_checked_against_the_claim() {
        let claim = pvc("2Gi", json!(["ReadWriteOnce"]), json!({}));
        let small = pv("v", "1Gi", json!(["ReadWriteOnce"]), json!({}));
        assert_eq!(
            check_volume_satisfies_claim(&small, &claim),
            Err("requested PV is too small".into())
        );
        let classy = pv(
            "v",
            "2Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"storageClassName": "x"}}),
        );
        assert_eq!(
            check_volume_satisfies_claim(&classy, &claim),
            Err("storageClassName does not match".into())
        );
        let rox = pv("v", "2Gi", json!(["ReadOnlyMany"]), json!({}));
        assert_eq!(
            check_volume_satisfies_claim(&rox, &claim),
            Err("incompatible accessMode".into())
        );
        let block = pv(
            "v",
            "2Gi",
            json!(["ReadWriteOnce"]),
            json!({"spec": {"volumeMode": "Block"}}),
        );
        assert_eq!(
            check_volume_satisfies_claim(&block, &claim),
            Err("incompatible volumeMode".into())
        );
        let ok = pv(
            "v",
            "3Gi",
            json!(["ReadWriteOnce", "ReadOnlyMany"]),
            json!({}),
        );
        assert_eq!(check_volume_satisfies_claim(&ok, &claim), Ok(()));
    }

    #[test]
    fn the_newest_default_class_is_the_default() {
        let class = |name: &str, created: &str, default: Option<&str>| -> Arc<StorageClass> {
            let mut meta = json!({"name": name, "creationTimestamp": created});
            if let Some(value) = default {
                meta["annotations"] = json!({"storageclass.kubernetes.io/is-default-class": value});
            }
            Arc::new(serde_json::from_value(json!({"metadata": meta, "provisioner": "x"})).unwrap())
        };
        let classes = [
            class("old", "2024-01-01T00:00:00Z", Some("true")),
            class("new", "2024-06-01T00:00:00Z", Some("true")),
            class(
                "newest-but-not-default",
                "2024-09-01T00:00:00Z",
                Some("false"),
            ),
            class("plain", "2024-09-01T00:00:00Z", None),
        ];
        assert_eq!(
            default_class(&classes)
                .and_then(|c| c.metadata.name.clone())
                .as_deref(),
            Some("new")
        );
        assert!(default_class(&classes[2..]).is_none());
        let tie = [
            class("b", "2024-01-01T00:00:00Z", Some("true")),
            class("a", "2024-01-01T00:00:00Z", Some("true")),
        ];
        assert_eq!(
            default_class(&tie)
                .and_then(|c| c.metadata.name.clone())
                .as_deref(),
            Some("a")
        );
    }
}
