//! A StatefulSet's ControllerRevisions (upstream's `pkg/controller/history` as the
//! StatefulSet controller uses it): each revision stores the pod template as a patch
//! that restores it (`{"spec":{"template":{..., "$patch":"replace"}}}`), is named
//! `<set>-<hash>` after a hash of that data (and the collision count), carries the
//! template's labels plus `controller.kubernetes.io/hash`, and is numbered in order.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::Value;

use crate::controller_utils::controller_ref;

/// The label holding a revision's hash (upstream's `ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// FNV-1 (32 bits), Go's `fnv.New32`, continuing from `hash`.
fn fnv1_32(data: &[u8], mut hash: u32) -> u32 {
    for b in data {
        hash = hash.wrapping_mul(0x0100_0193);
        hash ^= u32::from(*b);
    }
    hash
}

/// The hash of a revision's data and collision count (upstream's
/// `HashControllerRevision`): FNV-1 over the data, then the count in decimal, the sum
/// printed in decimal and safe-encoded. Not Go's bits (Go hashes its own encoding),
/// but a function of the template alone.
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let text = crate::controller_utils::canonical_json(data);
    let mut h = fnv1_32(text.as_bytes(), 0x811c_9dc5);
    if let Some(count) = collision_count {
        h = fnv1_32(count.to_string().as_bytes(), h);
    }
    crate::controller_utils::safe_encode(&h.to_string())
}

/// `<prefix>-<hash>`, the prefix cut to 223 bytes so the name stays valid
/// (upstream's `ControllerRevisionName`).
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// The data of a revision restoring `template` (upstream's `getPatch`).
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut template {
        map.insert("$patch".to_owned(), Value::String("replace".to_owned()));
    }
    serde_json::json!({"spec": {"template": template}})
}

/// The revision number `number` of the set's current template (upstream's
/// `newRevision`): owned by the set, with the template's labels, the hash label and
/// the set's annotations, named after the hash.
pub fn new_revision(set: &StatefulSet, number: i64, collision_count: i32) -> ControllerRevision {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = revision_data(&template);
    let hash = hash(&data, Some(collision_count));
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.to_owned(), hash.clone());
    let annotations = set.metadata.annotations.clone().unwrap_or_default();
    ControllerRevision {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(revision_name(
                set.metadata.name.as_deref().unwrap_or_default(),
                &hash,
            )),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

fn data_of(revision: &ControllerRevision) -> Option<&Value> {
    revision.data.as_ref().map(|d| &d.0)
}

/// Whether two revisions hold the same data (upstream's `EqualRevision`; the hash
/// labels, not being numbers, never decide).
pub fn equal(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    data_of(a) == data_of(b)
}

/// Sorts revisions by number, then creation time, then name (upstream's
/// `SortControllerRevisions`).
pub fn sort(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let at =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
                at(a).cmp(&at(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The number after the last of sorted `revisions`, 1 for none (upstream's
/// `nextRevision`).
pub fn next_revision(sorted: &[Arc<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| r.revision.saturating_add(1))
}

/// The set as `revision` records it (upstream's `ApplyRevision`): its template
/// replaced by the revision's.
pub fn apply_revision(
    set: &StatefulSet,
    revision: &ControllerRevision,
) -> Result<StatefulSet, String> {
    let name = revision.metadata.name.as_deref().unwrap_or_default();
    let mut template = data_of(revision)
        .and_then(|d| d.pointer("/spec/template"))
        .cloned()
        .ok_or_else(|| format!("ControllerRevision {name} has no spec.template"))?;
    if let Value::Object(map) = &mut template {
        map.remove("$patch");
    }
    let template: PodTemplateSpec = serde_json::from_value(template)
        .map_err(|e| format!("ControllerRevision {name} holds an invalid template: {e}"))?;
    let mut restored = set.clone();
    restored.spec.get_or_insert_with(Default::default).template = template;
    Ok(restored)
}

/// The revisions to delete to keep `limit` of those no longer live (upstream's
/// `truncateHistory`): the current and update revisions and any a pod was made from
/// are live; the oldest of the rest go first. A negative limit keeps everything.
pub fn to_truncate<'a>(
    sorted: &'a [Arc<ControllerRevision>],
    live: &HashSet<&str>,
    limit: i32,
) -> Vec<&'a Arc<ControllerRevision>> {
    let history: Vec<&Arc<ControllerRevision>> = sorted
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let Ok(limit) = usize::try_from(limit) else {
        return Vec::new();
    };
    if history.len() <= limit {
        return Vec::new();
    }
    let excess = history.len() - limit;
    history.into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::tests::set;
    use serde_json::json;

    #[test]
    fn fnv1_matches_gos_test_vectors() {
        // Go's hash/fnv tests: New32 of "a" is 0x050c5d7e
        assert_eq!(fnv1_32(b"", 0x811c_9dc5), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a", 0x811c_9dc5), 0x050c_5d7e);
        assert_eq!(fnv1_32(b"ab", 0x811c_9dc5), 0x70772d38);
    }

    #[test]
    fn revisions_are_named_after_a_hash_of_the_template_and_collisions() {
        let s = set(json!({}));
        let r1 = new_revision(&s, 1, 0);
        let again = new_revision(&s, 7, 0);
        let name = r1.metadata.name.clone().unwrap();
        assert_eq!(
            name,
            again.metadata.name.clone().unwrap(),
            "the number is not hashed"
        );
        let hash = &r1.metadata.labels.as_ref().unwrap()[HASH_LABEL];
        assert_eq!(name, format!("web-{hash}"));
        assert!(
            hash.bytes()
                .all(|b| crate::controller_utils::SAFE_ALPHABET.contains(&b))
        );
        assert_eq!(r1.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_ne!(new_revision(&s, 1, 1).metadata.name.unwrap(), name);
        let mut changed = s.clone();
        changed
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        let r2 = new_revision(&changed, 2, 0);
        assert_ne!(r2.metadata.name.clone().unwrap(), name);
        assert!(equal(&r1, &again));
        assert!(!equal(&r1, &r2));
        let data = &r1.data.as_ref().unwrap().0;
        assert_eq!(
            data.pointer("/spec/template/$patch"),
            Some(&json!("replace"))
        );
        let owner = &r1.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StatefulSet", Some(true))
        );
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn applying_a_revision_restores_its_template() {
        let s = set(json!({}));
        let old = new_revision(&s, 1, 0);
        let mut changed = s.clone();
        changed
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        let restored = apply_revision(&changed, &old).unwrap();
        assert_eq!(
            restored.spec.as_ref().unwrap().template,
            s.spec.as_ref().unwrap().template
        );
        let mut broken = old.clone();
        broken.data = Some(RawExtension(json!({"spec": {}})));
        assert!(apply_revision(&s, &broken).is_err());
    }

    fn numbered(name: &str, number: i64) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: None,
            revision: number,
        })
    }

    #[test]
    fn history_keeps_live_revisions_and_the_newest_within_the_limit() {
        let mut revisions = vec![
            numbered("r4", 4),
            numbered("r1", 1),
            numbered("r3", 3),
            numbered("r2", 2),
            numbered("r5", 5),
        ];
        sort(&mut revisions);
        let names: Vec<&str> = revisions
            .iter()
            .map(|r| r.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["r1", "r2", "r3", "r4", "r5"]);
        assert_eq!(next_revision(&revisions), 6);
        assert_eq!(next_revision(&[]), 1);
        let live: HashSet<&str> = ["r5", "r1"].into();
        let gone: Vec<&str> = to_truncate(&revisions, &live, 1)
            .iter()
            .map(|r| r.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(gone, ["r2", "r3"]);
        assert!(to_truncate(&revisions, &live, 3).is_empty());
        assert!(to_truncate(&revisions, &live, -1).is_empty());
        assert_eq!(to_truncate(&revisions, &live, 0).len(), 3);
    }
}
