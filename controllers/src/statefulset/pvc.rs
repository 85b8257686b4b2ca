//! The PersistentVolumeClaim retention policy (`persistentVolumeClaimRetentionPolicy`,
//! upstream's StatefulSetAutoDeletePVC, GA in 1.32) as ownerReferences on the claims,
//! which the garbage collector then acts on: `whenDeleted: Delete` makes the set a
//! controller owner of the claims of the pods it keeps, `whenScaled: Delete` makes a
//! scaled-down pod the controller owner of its claims. Claims left in a state the
//! controller did not make (another controller, stale owners) are not touched.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::identity::{in_range, ordinal};

/// What happens to claims when their pod or set goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `whenDeleted: Delete`.
    pub delete_with_set: bool,
    /// `whenScaled: Delete`.
    pub delete_when_scaled: bool,
}

/// The set's policy; missing means Retain, and values upstream does not know count
/// as Retain for both.
pub fn retention(set: &StatefulSet) -> Retention {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let parse = |v: Option<&str>| match v {
        None | Some("Retain") => Some(false),
        Some("Delete") => Some(true),
        Some(_) => None,
    };
    match (
        parse(policy.and_then(|p| p.when_deleted.as_deref())),
        parse(policy.and_then(|p| p.when_scaled.as_deref())),
    ) {
        (Some(delete_with_set), Some(delete_when_scaled)) => Retention {
            delete_with_set,
            delete_when_scaled,
        },
        _ => Retention {
            delete_with_set: false,
            delete_when_scaled: false,
        },
    }
}

/// An owner as the claim's references name it.
struct Owner<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl<'a> Owner<'a> {
    fn of_set(set: &'a StatefulSet) -> Owner<'a> {
        Owner {
            api_version: "apps/v1",
            kind: "StatefulSet",
            name: set.metadata.name.as_deref().unwrap_or_default(),
            uid: set.metadata.uid.as_deref().unwrap_or_default(),
        }
    }

    fn of_pod(pod: &'a Pod) -> Owner<'a> {
        Owner {
            api_version: "v1",
            kind: "Pod",
            name: pod.metadata.name.as_deref().unwrap_or_default(),
            uid: pod.metadata.uid.as_deref().unwrap_or_default(),
        }
    }

    /// Same kind and name (upstream's `matchesRef`), whatever the uid.
    fn named_by(&self, r: &OwnerReference) -> bool {
        r.api_version == self.api_version && r.kind == self.kind && r.name == self.name
    }

    fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_owned(),
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            uid: self.uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

/// Whether the claim has a reference with the owner's uid.
fn has_owner_ref(claim: &PersistentVolumeClaim, owner: &Owner<'_>) -> bool {
    refs(claim).iter().any(|r| r.uid == owner.uid)
}

/// Whether the claim names the owner but with another uid: it belongs to an earlier
/// object of that name (upstream's `hasStaleOwnerRef`).
fn has_stale_owner_ref(claim: &PersistentVolumeClaim, owner: &Owner<'_>) -> bool {
    refs(claim)
        .iter()
        .find(|r| owner.named_by(r))
        .is_some_and(|r| r.uid != owner.uid)
}

/// Upstream's `hasUnexpectedController`: with a Delete policy, a controller other
/// than the set or pod (or a stale reference to either) means hands off.
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let policy = retention(set);
    if !policy.delete_with_set && !policy.delete_when_scaled {
        return false;
    }
    let (set_owner, pod_owner) = (Owner::of_set(set), Owner::of_pod(pod));
    for r in refs(claim) {
        if set_owner.named_by(r) {
            if r.uid != set_owner.uid {
                return true;
            }
            continue;
        }
        if pod_owner.named_by(r) {
            if r.uid != pod_owner.uid {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

/// Whether the set or pod owns the claim without being its controller.
fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let set_uid = set.metadata.uid.as_deref().unwrap_or_default();
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
    refs(claim)
        .iter()
        .any(|r| (r.uid == set_uid || r.uid == pod_uid) && r.controller != Some(true))
}

fn scaled_down(set: &StatefulSet, pod: &Pod) -> bool {
    !ordinal(pod).is_some_and(|o| in_range(set, o))
}

/// Whether the claim's owners already say what the policy wants (upstream's
/// `isClaimOwnerUpToDate`): no owner for Retain/Retain; the set for a kept pod's
/// claim under `whenDeleted: Delete`; the pod for a scaled-down pod's claim under
/// `whenScaled: Delete`. Claims owned by an earlier set or pod of the same name count
/// as up to date, to be left to the garbage collector.
pub fn claim_owner_up_to_date(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (set_owner, pod_owner) = (Owner::of_set(set), Owner::of_pod(pod));
    if has_stale_owner_ref(claim, &set_owner) || has_stale_owner_ref(claim, &pod_owner) {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        // our references must go; otherwise leave the other controller to it
        return !(has_owner_ref(claim, &set_owner) || has_owner_ref(claim, &pod_owner));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let policy = retention(set);
    let by_set = has_owner_ref(claim, &set_owner);
    let by_pod = has_owner_ref(claim, &pod_owner);
    let down = scaled_down(set, pod);
    match (policy.delete_with_set, policy.delete_when_scaled) {
        (false, false) => !by_set && !by_pod,
        (true, false) => by_set && !by_pod,
        (false, true) => !by_set && down == by_pod,
        (true, true) => down != by_set && down == by_pod,
    }
}

/// Rewrites the claim's references to the set and pod as the policy wants (upstream's
/// `updateClaimOwnerRefForSetAndPod`); other owners are kept.
pub fn update_claim_owner_refs(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let (set_owner, pod_owner) = (Owner::of_set(set), Owner::of_pod(pod));
    let mut kept: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !set_owner.named_by(r) && !pod_owner.named_by(r))
        .cloned()
        .collect();
    if !unexpected {
        let policy = retention(set);
        let down = scaled_down(set, pod);
        let mut add = |owner: &Owner<'_>| {
            if !kept.iter().any(|r| r.uid == owner.uid) {
                kept.push(owner.controller_ref());
            }
        };
        if policy.delete_when_scaled && down {
            add(&pod_owner);
        }
        if policy.delete_with_set && !(policy.delete_when_scaled && down) {
            add(&set_owner);
        }
    }
    claim.metadata.owner_references = (!kept.is_empty()).then_some(kept);
}

/// Whether an existing claim of a pod not yet created belongs to an earlier pod of
/// that name, which the garbage collector is to delete first (upstream's
/// `PodClaimIsStale`, only with `whenScaled: Delete`).
pub fn claim_is_stale(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    retention(set).delete_when_scaled && has_stale_owner_ref(claim, &Owner::of_pod(pod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::tests::set;
    use serde_json::json;

    fn with_policy(when_deleted: &str, when_scaled: &str) -> StatefulSet {
        set(
            json!({"replicas": 2, "persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": when_deleted, "whenScaled": when_scaled}}),
        )
    }

    fn pod(name: &str, uid: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "uid": uid}}))
            .unwrap()
    }

    fn claim(refs: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "data-web-0", "ownerReferences": refs}}))
            .unwrap()
    }

    fn owners(c: &PersistentVolumeClaim) -> Vec<(String, String)> {
        refs(c)
            .iter()
            .map(|r| (r.kind.clone(), r.uid.clone()))
            .collect()
    }

    fn settle(s: &StatefulSet, p: &Pod, c: &mut PersistentVolumeClaim) {
        if !claim_owner_up_to_date(c, s, p) {
            update_claim_owner_refs(c, s, p);
        }
        assert!(
            claim_owner_up_to_date(c, s, p),
            "updating makes the claim up to date"
        );
    }

    #[test]
    fn each_policy_puts_the_owners_upstream_does() {
        let kept = pod("web-1", "pod-1");
        let condemned = pod("web-5", "pod-5");
        let cases = [
            ("Retain", "Retain", vec![], vec![]),
            (
                "Delete",
                "Retain",
                vec![("StatefulSet", "set-uid")],
                vec![("StatefulSet", "set-uid")],
            ),
            ("Retain", "Delete", vec![], vec![("Pod", "pod-5")]),
            (
                "Delete",
                "Delete",
                vec![("StatefulSet", "set-uid")],
                vec![("Pod", "pod-5")],
            ),
        ];
        for (deleted, scaled, for_kept, for_condemned) in cases {
            let s = with_policy(deleted, scaled);
            let expect = |v: &[(&str, &str)]| -> Vec<(String, String)> {
                v.iter()
                    .map(|(k, u)| ((*k).to_owned(), (*u).to_owned()))
                    .collect()
            };
            let mut c = claim(json!([]));
            settle(&s, &kept, &mut c);
            assert_eq!(owners(&c), expect(&for_kept), "{deleted}/{scaled} kept pod");
            let mut c = claim(json!([]));
            settle(&s, &condemned, &mut c);
            assert_eq!(
                owners(&c),
                expect(&for_condemned),
                "{deleted}/{scaled} condemned pod"
            );
        }
    }

    #[test]
    fn switching_back_to_retain_removes_our_owners_but_keeps_others() {
        let s = with_policy("Retain", "Retain");
        let p = pod("web-0", "pod-0");
        let mut c = claim(json!([
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid", "controller": true},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"}
        ]));
        assert!(!claim_owner_up_to_date(&c, &s, &p));
        update_claim_owner_refs(&mut c, &s, &p);
        assert_eq!(owners(&c), vec![("ConfigMap".to_owned(), "cm".to_owned())]);
    }

    #[test]
    fn stale_and_foreign_owners_are_left_alone() {
        let s = with_policy("Delete", "Delete");
        let p = pod("web-0", "pod-0");
        // an earlier pod web-0 owns it: leave it for the garbage collector
        let stale =
            claim(json!([{"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "old"}]));
        assert!(claim_owner_up_to_date(&stale, &s, &p));
        assert!(claim_is_stale(&stale, &s, &p));
        assert!(!claim_is_stale(
            &stale,
            &with_policy("Delete", "Retain"),
            &p
        ));
        // another controller: no owners of ours are added
        let foreign = claim(
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "rs", "controller": true}]),
        );
        assert!(has_unexpected_controller(&foreign, &s, &p));
        assert!(claim_owner_up_to_date(&foreign, &s, &p));
        // a non-controller reference to the set is fixed
        let loose = claim(
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid"}]),
        );
        assert!(!claim_owner_up_to_date(&loose, &s, &p));
        let mut fixed = loose.clone();
        update_claim_owner_refs(&mut fixed, &s, &p);
        assert_eq!(refs(&fixed)[0].controller, Some(true));
    }

    #[test]
    fn unknown_policies_count_as_retain() {
        let s = with_policy("Sometimes", "Delete");
        assert_eq!(
            retention(&s),
            Retention {
                delete_with_set: false,
                delete_when_scaled: false
            }
        );
    }
}
