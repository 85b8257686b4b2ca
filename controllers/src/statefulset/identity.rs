//! A StatefulSet's view of its pods (upstream's `stateful_set_utils.go`): the set's
//! settings with upstream's defaults, each pod's ordinal parsed from its name
//! (`<set>-<ordinal>`), the identity (name, labels, hostname, subdomain) and storage
//! (one claim per volumeClaimTemplate) a member must have, and the pod a set creates
//! for an ordinal at its current or update revision.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};

use crate::controller_utils::{controller_ref, is_pod_available, is_pod_ready, pod_from_template};

/// The label naming a pod after itself, so a Service can select one member
/// (upstream's `StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a pod's ordinal (upstream's `PodIndexLabel`, on since 1.32).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision a pod was made from (upstream's
/// `StatefulSetRevisionLabel`).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// How a set replaces pods whose revision is not the update revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Delete, highest ordinal first, every pod at or above this index.
    RollingUpdate {
        /// The partition (an index from the first ordinal).
        partition: i32,
    },
    /// Only pods the user deletes are replaced.
    OnDelete,
}

/// `spec.replicas` (the apiserver defaults it to 1), never negative.
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// The first ordinal (`spec.ordinals.start`, default 0).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// Whether `ordinal` is one the set keeps (upstream's `podInOrdinalRange`).
pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = i64::from(start_ordinal(set));
    let ordinal = i64::from(ordinal);
    ordinal >= start && ordinal < start + i64::from(replicas(set))
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Whether pods are managed in parallel (`podManagementPolicy: Parallel`, upstream's
/// `allowsBurst`) rather than one at a time in order.
pub fn is_parallel(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

/// The update strategy; a RollingUpdate without a partition has partition 0, as the
/// apiserver defaults it.
pub fn strategy(set: &StatefulSet) -> Strategy {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    match strategy.and_then(|s| s.type_.as_deref()) {
        Some("OnDelete") => Strategy::OnDelete,
        _ => Strategy::RollingUpdate {
            partition: strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
        },
    }
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

fn set_namespace(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or_default()
}

fn service_name(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.as_deref())
        .unwrap_or_default()
}

/// Splits `<parent>-<digits>` as upstream's `(.*)-([0-9]+)$`.
fn split_name(name: &str) -> Option<(&str, &str)> {
    let (parent, digits) = name.rsplit_once('-')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some((parent, digits))
}

/// The ordinal in a pod's name, if it has a valid one (upstream's `getOrdinal`, -1
/// being `None`).
pub fn ordinal(pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    split_name(name)?.1.parse().ok()
}

/// Whether the pod's name makes it a member of `set` (upstream's `isMemberOf`).
pub fn is_member(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(split_name)
        .is_some_and(|(parent, _)| parent == set_name(set))
}

/// The name of the set's pod with `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// The claim of `template` for the pod with `ordinal`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!(
        "{}-{}-{ordinal}",
        template.metadata.name.as_deref().unwrap_or_default(),
        set_name(set)
    )
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// The claims the pod with `ordinal` needs, with the name of the template (the
/// volume) each comes from (upstream's `getPersistentVolumeClaims`): the template
/// renamed, in the set's namespace, labelled with the template's labels and the
/// selector's `matchLabels`.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|template| {
            let mut claim = template.clone();
            claim.metadata.name = Some(claim_name(set, template, ordinal));
            claim.metadata.namespace = Some(set_namespace(set).to_owned());
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(match_labels.clone());
            claim.metadata.labels = (!labels.is_empty()).then_some(labels);
            claim.status = None;
            (template.metadata.name.clone().unwrap_or_default(), claim)
        })
        .collect()
}

/// Whether the pod's name, namespace and name label are those of a member of `set`
/// (upstream's `identityMatches`).
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal(pod) else {
        return false;
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    is_member(set, pod)
        && name == pod_name(set, ordinal)
        && pod.metadata.namespace.as_deref().unwrap_or_default() == set_namespace(set)
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str)
            == Some(name)
}

/// Whether the pod mounts the claim of each of the set's templates under the
/// template's name (upstream's `storageMatches`).
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal(pod) else {
        return false;
    };
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claim_templates(set).iter().all(|template| {
        let wanted = claim_name(set, template, ordinal);
        volumes
            .iter()
            .find(|v| Some(v.name.as_str()) == template.metadata.name.as_deref())
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == wanted)
    })
}

/// Makes the pod's volumes mount the set's claims, replacing volumes of the same
/// names (upstream's `updateStorage`).
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let Some(ordinal) = ordinal(pod) else {
        return;
    };
    let claims = claims_for(set, ordinal);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(volume, claim)| Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    for volume in spec.volumes.take().unwrap_or_default() {
        if !claims.iter().any(|(name, _)| *name == volume.name) {
            volumes.push(volume);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
}

/// Gives the pod its member name, namespace, name and index labels (upstream's
/// `updateIdentity`).
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let Some(ordinal) = ordinal(pod) else {
        return;
    };
    let name = pod_name(set, ordinal);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = Some(set_namespace(set).to_owned());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.to_owned(), name);
    labels.insert(POD_INDEX_LABEL.to_owned(), ordinal.to_string());
}

/// The set's pod for `ordinal` (upstream's `newStatefulSetPod`): the template with
/// the set as controller, the member identity, hostname and subdomain (set only at
/// creation, being immutable), and the claims mounted.
pub fn new_pod(set: &StatefulSet, ordinal: i32) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(
        &template,
        set_namespace(set),
        set_name(set),
        Some(controller_ref(set)),
    );
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(pod_name(set, ordinal));
    let subdomain = service_name(set);
    spec.subdomain = (!subdomain.is_empty()).then(|| subdomain.to_owned());
    update_storage(set, &mut pod);
    pod
}

/// The pod to create for `ordinal` (upstream's `newVersionedStatefulSetPod`): below
/// the partition of a rolling update it is made from the current revision, otherwise
/// from the update revision; it is labelled with the revision's name.
pub fn versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i32,
) -> Pod {
    let below_partition = match strategy(current_set) {
        Strategy::RollingUpdate { partition } => {
            i64::from(ordinal) < i64::from(start_ordinal(current_set)) + i64::from(partition)
        }
        Strategy::OnDelete => false,
    };
    let (set, revision) = if below_partition {
        (current_set, current_revision)
    } else {
        (update_set, update_revision)
    };
    let mut pod = new_pod(set, ordinal);
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_LABEL.to_owned(), revision.to_owned());
    pod
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Whether the pod exists in the apiserver (has a phase), rather than being one this
/// sync would create (upstream's `isCreated`).
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

/// Whether the pod is `Pending`.
pub fn is_pending(pod: &Pod) -> bool {
    phase(pod) == "Pending"
}

/// Whether the pod finished (`Failed` or `Succeeded`): a member must be replaced.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running with its Ready condition true (upstream's `isRunningAndReady`).
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// Ready for `min_ready_seconds` (upstream's `isRunningAndAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    is_pod_available(pod, min_ready_seconds, now)
}

/// Not available, or going away (upstream's `isUnavailable`).
pub fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    !is_available(pod, min_ready_seconds, now) || is_terminating(pod)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn set(spec: serde_json::Value) -> StatefulSet {
        let mut base = json!({
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": base
        }))
        .unwrap()
    }

    fn named(name: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"}})).unwrap()
    }

    #[test]
    fn ordinals_are_parsed_from_the_last_dash_like_upstreams_regex() {
        assert_eq!(ordinal(&named("web-0")), Some(0));
        assert_eq!(ordinal(&named("web-12")), Some(12));
        assert_eq!(ordinal(&named("my-web-3")), Some(3));
        assert_eq!(ordinal(&named("web")), None);
        assert_eq!(ordinal(&named("web-")), None);
        assert_eq!(ordinal(&named("web-1a")), None);
        // too large for 32 bits: no ordinal, as Go's ParseInt(.., 32) fails
        assert_eq!(ordinal(&named("web-99999999999")), None);
        let s = set(json!({}));
        assert!(is_member(&s, &named("web-4")));
        assert!(!is_member(&s, &named("my-web-4")));
        assert!(!is_member(&s, &named("web-x")));
    }

    #[test]
    fn ranges_start_at_the_first_ordinal() {
        let s = set(json!({"replicas": 2, "ordinals": {"start": 5}}));
        assert!(!in_range(&s, 4));
        assert!(in_range(&s, 5));
        assert!(in_range(&s, 6));
        assert!(!in_range(&s, 7));
        let empty = set(json!({"replicas": 0}));
        assert!(!in_range(&empty, 0));
    }

    #[test]
    fn new_pods_carry_identity_storage_and_revision() {
        let s = set(json!({
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                "spec": {"accessModes": ["ReadWriteOnce"]}}],
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}
            }
        }));
        let pod = versioned_pod(&s, &s, "web-a", "web-b", 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        assert_eq!(pod.metadata.generate_name, None);
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[REVISION_LABEL], "web-b");
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!(
            volumes.len(),
            2,
            "the template's own data volume is replaced"
        );
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-web-2"
        );
        assert_eq!(volumes[1].name, "cache");
        assert!(identity_matches(&s, &pod));
        assert!(storage_matches(&s, &pod));
        let reference = crate::controller_utils::controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (reference.kind.as_str(), reference.uid.as_str()),
            ("StatefulSet", "set-uid")
        );

        let claims = claims_for(&s, 2);
        assert_eq!(claims.len(), 1);
        let (volume, claim) = &claims[0];
        assert_eq!(volume, "data");
        assert_eq!(claim.metadata.name.as_deref(), Some("data-web-2"));
        assert_eq!(claim.metadata.namespace.as_deref(), Some("ns"));
        let claim_labels = claim.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (claim_labels["tier"].as_str(), claim_labels["app"].as_str()),
            ("db", "web")
        );
    }

    #[test]
    fn identity_and_storage_mismatches_are_detected_and_repaired() {
        let s = set(json!({
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]
        }));
        let mut pod = new_pod(&s, 1);
        pod.metadata.labels.as_mut().unwrap().remove(POD_NAME_LABEL);
        pod.spec.as_mut().unwrap().volumes = None;
        assert!(!identity_matches(&s, &pod));
        assert!(!storage_matches(&s, &pod));
        update_identity(&s, &mut pod);
        update_storage(&s, &mut pod);
        assert!(identity_matches(&s, &pod));
        assert!(storage_matches(&s, &pod));
        let mut elsewhere = new_pod(&s, 1);
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!identity_matches(&s, &elsewhere));
    }

    #[test]
    fn pods_below_the_partition_are_made_from_the_current_revision() {
        let current = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        );
        let mut update = current.clone();
        update
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        let image = |p: &Pod| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        };
        let low = versioned_pod(&current, &update, "cur", "upd", 1);
        let high = versioned_pod(&current, &update, "cur", "upd", 2);
        assert_eq!((revision_of(&low), image(&low).as_str()), ("cur", "nginx"));
        assert_eq!(
            (revision_of(&high), image(&high).as_str()),
            ("upd", "nginx:2")
        );
        let on_delete = set(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert_eq!(
            revision_of(&versioned_pod(&on_delete, &update, "cur", "upd", 0)),
            "upd"
        );
        // the partition counts from the first ordinal
        let shifted = set(json!({"ordinals": {"start": 10},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}));
        assert_eq!(
            revision_of(&versioned_pod(&shifted, &update, "cur", "upd", 10)),
            "cur"
        );
        assert_eq!(
            revision_of(&versioned_pod(&shifted, &update, "cur", "upd", 11)),
            "upd"
        );
    }
}
