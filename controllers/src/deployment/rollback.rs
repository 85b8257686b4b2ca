//! Rollback. In apps/v1 `kubectl rollout undo` writes the old ReplicaSet's template
//! (and annotations) into the Deployment itself; the sync then finds that ReplicaSet
//! new again and raises its revision to max+1 ([`super::util::set_new_replica_set_annotations`]),
//! keeping the old number in its revision history. What remains here is upstream's
//! `rollback.go` for the extensions/v1beta1 `rollbackTo`, which apps/v1 round-trips as
//! the `deprecated.deployment.rollback.to` annotation.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::{self, POD_TEMPLATE_HASH_LABEL, ROLLBACK_TO_ANNOTATION};
use super::{Controller, Error, NAME};

/// Event reason: the revision asked for does not exist.
const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
/// Event reason: the revision asked for has the current template.
const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
/// Event reason: rolled back.
const ROLLBACK_DONE: &str = "DeploymentRollback";

/// The revision the rollback annotation asks for (0: the previous one); an unparseable
/// annotation is ignored, as upstream.
pub(crate) fn rollback_to(d: &Deployment) -> Option<i64> {
    d.metadata
        .annotations
        .as_ref()?
        .get(ROLLBACK_TO_ANNOTATION)
        .filter(|v| !v.is_empty())?
        .parse()
        .ok()
}

/// Puts the ReplicaSet's template (without its hash label) and annotations into the
/// Deployment (upstream's `SetFromReplicaSetTemplate` and `SetDeploymentAnnotationsTo`);
/// false when the template is already the Deployment's.
pub(crate) fn apply_template(d: &mut Deployment, rs: &ReplicaSet) -> bool {
    let Some(mut template) = rs.spec.as_ref().and_then(|s| s.template.clone()) else {
        return false;
    };
    let spec = d.spec.get_or_insert_with(Default::default);
    if util::equal_ignore_hash(&spec.template, &template) {
        return false;
    }
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    spec.template = template;
    let kept: std::collections::BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| util::is_controller_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut annotations = kept;
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !util::is_controller_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(annotations);
    true
}

impl Controller {
    /// Upstream's `rollback`: to the asked (or last) revision, clearing the request in
    /// every case.
    pub(super) async fn rollback(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
    ) -> Result<(), Error> {
        let (new, old) = self.replica_sets_and_sync_revision(d, rss, true).await?;
        let mut all = old;
        all.extend(new);
        let mut revision = rollback_to(d).unwrap_or(0);
        if revision == 0 {
            revision = util::last_revision(&all);
            if revision == 0 {
                self.recorder.event(
                    d,
                    "Warning",
                    ROLLBACK_REVISION_NOT_FOUND,
                    "Unable to find last revision.".to_owned(),
                    NAME,
                );
                return self.clear_rollback(d).await;
            }
        }
        let target = all
            .iter()
            .find(|rs| util::revision(&rs.metadata).is_ok_and(|v| v == revision));
        let Some(target) = target else {
            self.recorder.event(
                d,
                "Warning",
                ROLLBACK_REVISION_NOT_FOUND,
                "Unable to find the revision to rollback to.".to_owned(),
                NAME,
            );
            return self.clear_rollback(d).await;
        };
        let name = d.metadata.name.clone().unwrap_or_default();
        if apply_template(d, target) {
            self.clear_rollback(d).await?;
            self.recorder.event(
                d,
                "Normal",
                ROLLBACK_DONE,
                format!("Rolled back deployment {name:?} to revision {revision}"),
                NAME,
            );
            Ok(())
        } else {
            self.recorder.event(
                d,
                "Warning",
                ROLLBACK_TEMPLATE_UNCHANGED,
                format!("The rollback revision contains the same template as current deployment {name:?}"),
                NAME,
            );
            self.clear_rollback(d).await
        }
    }

    async fn clear_rollback(&self, d: &mut Deployment) -> Result<(), Error> {
        if let Some(annotations) = d.metadata.annotations.as_mut() {
            annotations.remove(ROLLBACK_TO_ANNOTATION);
        }
        self.update_deployment(d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::util::tests_support::template;
    use crate::deployment::util::{REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(name: &str, image: &str, revision: &str) -> ReplicaSet {
        let mut t = template(image);
        t.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), format!("h-{name}"));
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                annotations: Some(
                    [
                        (REVISION_ANNOTATION.to_owned(), revision.to_owned()),
                        ("note".to_owned(), format!("from {name}")),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                template: Some(t),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn deployment(image: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                annotations: Some([(REVISION_ANNOTATION.to_owned(), "2".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                template: template(image),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// `kubectl rollout undo` in apps/v1: the template is set back; the old
    /// ReplicaSet is new again and gets revision max+1, its old number kept as history.
    #[test]
    fn setting_the_template_back_makes_the_old_replica_set_current_at_max_plus_one() {
        let v1 = rs("v1", "nginx:1", "1");
        let v2 = rs("v2", "nginx:2", "2");
        let rss = [v1, v2];
        let d = deployment("nginx:1");
        let new = util::find_new_replica_set(&d, &rss).unwrap();
        assert_eq!(new.metadata.name.as_deref(), Some("v1"));
        let old = util::find_old_replica_sets(&d, &rss);
        let next = util::max_revision(&old).saturating_add(1);
        assert_eq!(next, 3);
        let mut new = new;
        assert!(util::set_new_replica_set_annotations(
            &d, &mut new, next, true
        ));
        let a = new.metadata.annotations.unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[REVISION_HISTORY_ANNOTATION], "1");
    }

    #[test]
    fn the_rollback_annotation_copies_template_and_annotations() {
        let mut d = deployment("nginx:2");
        d.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ROLLBACK_TO_ANNOTATION.into(), "1".into());
        assert_eq!(rollback_to(&d), Some(1));
        let target = rs("v1", "nginx:1", "1");
        assert!(apply_template(&mut d, &target));
        let t = &d.spec.as_ref().unwrap().template;
        assert!(util::equal_ignore_hash(t, &template("nginx:1")));
        assert!(
            !t.metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()
                .contains_key(POD_TEMPLATE_HASH_LABEL)
        );
        let a = d.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["note"], "from v1");
        assert_eq!(
            a[REVISION_ANNOTATION], "2",
            "the controller's own annotations stay"
        );
        // same template again: nothing to do
        assert!(!apply_template(&mut d, &target));
    }

    #[test]
    fn a_bad_rollback_annotation_is_ignored() {
        let mut d = deployment("x");
        d.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ROLLBACK_TO_ANNOTATION.into(), "nope".into());
        assert_eq!(rollback_to(&d), None);
    }
}
