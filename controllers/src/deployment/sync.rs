//! The parts of a Deployment sync every strategy shares (upstream's
//! `deployment/sync.go`): finding or creating the new ReplicaSet and keeping revisions
//! in step, scaling ReplicaSets with their events, proportional scaling when the
//! Deployment is resized mid-rollout, history cleanup and status writes.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use super::progress::{self, PROGRESSING};
use super::util::{self, rs_replicas};
use super::{Controller, Error, NAME};
use crate::controller_utils;

/// Upstream's revisionHistoryLimit default, when the field is somehow unset.
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// The sizes the active ReplicaSets get when the Deployment is resized mid-rollout
/// (the arithmetic of upstream's `scale`): extra (or surplus) replicas spread by each
/// ReplicaSet's share, leftovers to the first (largest) one. Returns (ReplicaSet,
/// size) in the order they are written, and "up" or "down" ("" when nothing changes).
pub(crate) fn proportional_sizes(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> (Vec<(ReplicaSet, i32)>, &'static str) {
    let mut all: Vec<ReplicaSet> = old.to_vec();
    all.extend(new.cloned());
    let mut all = util::active(&all);
    let total = util::replica_count(&all);
    let allowed = if util::replicas(d) > 0 {
        util::replicas(d).saturating_add(util::max_surge(d))
    } else {
        0
    };
    let to_add = allowed - total;
    let operation = match to_add.cmp(&0) {
        std::cmp::Ordering::Greater => {
            util::sort_by_size_newer(&mut all);
            "up"
        }
        std::cmp::Ordering::Less => {
            util::sort_by_size_older(&mut all);
            "down"
        }
        std::cmp::Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
    for rs in &all {
        if to_add != 0 {
            let proportion = util::replica_set_proportion(rs, d, to_add, added);
            sizes.push(rs_replicas(rs) + proportion);
            added += proportion;
        } else {
            sizes.push(rs_replicas(rs));
        }
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = (*first + to_add - added).max(0);
    }
    (all.into_iter().zip(sizes).collect(), operation)
}

/// The old ReplicaSets history cleanup deletes (upstream's `cleanupDeployment`): the
/// lowest revisions beyond revisionHistoryLimit, skipping any with replicas, not yet
/// observed by their controller, or being deleted.
pub(crate) fn history_to_delete(d: &Deployment, old: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
    if limit == i32::MAX {
        return Vec::new();
    }
    let mut cleanable: Vec<ReplicaSet> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
    if diff <= 0 {
        return Vec::new();
    }
    util::sort_by_revision(&mut cleanable);
    cleanable
        .into_iter()
        .take(usize::try_from(diff).unwrap_or(0))
        .filter(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            status.replicas == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0)
        })
        .collect()
}

/// The ReplicaSet a Deployment creates for its template (upstream's part of
/// `getNewReplicaSet`): named `<deployment>-<hash>`, the hash label added to its
/// labels, selector and template, controlled by the Deployment, with zero replicas
/// (the caller sets them).
pub(crate) fn new_replica_set(d: &Deployment) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = util::compute_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(util::POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    let labels = meta.labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(util::POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                d.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![controller_utils::controller_ref(d)]),
            labels,
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds.filter(|m| *m != 0),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

impl Controller {
    fn rs_api(&self, d: &Deployment) -> Api<ReplicaSet> {
        Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        )
    }

    /// The new ReplicaSet (created when `create` and missing) and the old ones, with
    /// revisions in step (upstream's `getAllReplicaSetsAndSyncRevision`).
    pub(super) async fn replica_sets_and_sync_revision(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let old = util::find_old_replica_sets(d, rss);
        let new = self.get_new_replica_set(d, rss, &old, create).await?;
        Ok((new, old))
    }

    /// Upstream's `getNewReplicaSet`: an existing new ReplicaSet gets the Deployment's
    /// annotations and a revision above every old one (a rollback makes an old
    /// template's ReplicaSet new again at max+1); a missing one is created when asked.
    async fn get_new_replica_set(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let existing = util::find_new_replica_set(d, rss);
        let new_revision = util::max_revision(old).saturating_add(1);
        let has_deadline = progress::has_progress_deadline(d);
        if let Some(existing) = existing {
            let mut rs = existing.clone();
            let annotations_changed =
                util::set_new_replica_set_annotations(d, &mut rs, new_revision, true);
            let want_min_ready = d
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            let has_min_ready = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if annotations_changed || want_min_ready != has_min_ready {
                rs.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = Some(want_min_ready).filter(|m| *m != 0);
                let name = rs.metadata.name.clone().unwrap_or_default();
                let written = self
                    .rs_api(d)
                    .replace(&name, &PostParams::default(), &rs)
                    .await?;
                return Ok(Some(written));
            }
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(util::REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            if util::set_deployment_revision(d, &revision) {
                self.update_deployment(d).await?;
            }
            let status = d.status.get_or_insert_with(Default::default);
            if has_deadline && progress::get_condition(status, PROGRESSING).is_none() {
                let msg = format!(
                    "Found new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                );
                progress::set_condition(
                    status,
                    progress::new_condition(
                        PROGRESSING,
                        "True",
                        progress::FOUND_NEW_RS,
                        msg,
                        progress::now(),
                    ),
                );
                self.update_status(d).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let mut rs = new_replica_set(d);
        let mut all: Vec<ReplicaSet> = old.to_vec();
        all.push(rs.clone());
        let count = util::new_rs_new_replicas(d, &all, &rs)?;
        util::set_rs_replicas(&mut rs, count);
        util::set_new_replica_set_annotations(d, &mut rs, new_revision, false);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let api = self.rs_api(d);
        let mut already_exists = false;
        let created = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                already_exists = true;
                let found = api.get(&name).await?;
                let ours = controller_utils::controller_of(&found.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .zip(d.spec.as_ref().map(|s| &s.template))
                    .is_some_and(|(a, b)| util::equal_ignore_hash(a, b));
                if ours && same {
                    found
                } else {
                    // a hash collision: the next hash includes a bumped collisionCount
                    let status = d.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    if self.update_status(d).await.is_ok() {
                        tracing::debug!(deployment = %super::key_of(d), "found a hash collision; bumped collisionCount");
                    }
                    return Err(kube::Error::Api(s).into());
                }
            }
            // the namespace is going away: every create fails, nothing to report
            Err(e)
                if crate::controller_utils::has_status_cause(
                    &e,
                    crate::controller_utils::NAMESPACE_TERMINATING_CAUSE,
                ) =>
            {
                return Err(e.into());
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {name:?}: {e}");
                if has_deadline {
                    let status = d.status.get_or_insert_with(Default::default);
                    progress::set_condition(
                        status,
                        progress::new_condition(
                            PROGRESSING,
                            "False",
                            progress::FAILED_RS_CREATE,
                            msg.clone(),
                            progress::now(),
                        ),
                    );
                    let _ = self.update_status(d).await;
                }
                self.recorder
                    .event(d, "Warning", progress::FAILED_RS_CREATE, msg, NAME);
                return Err(e.into());
            }
        };
        if !already_exists && count > 0 {
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
                NAME,
            );
        }
        if util::set_deployment_revision(d, &new_revision.to_string()) {
            self.update_deployment(d).await?;
        }
        if !already_exists && has_deadline {
            let status = d.status.get_or_insert_with(Default::default);
            progress::set_condition(
                status,
                progress::new_condition(
                    PROGRESSING,
                    "True",
                    progress::NEW_RS_CREATED,
                    format!("Created new replica set {name:?}"),
                    progress::now(),
                ),
            );
            self.update_status(d).await?;
        }
        Ok(Some(created))
    }

    /// Scales `rs` to `scale` with a ScalingReplicaSet event (upstream's
    /// `scaleReplicaSetAndRecordEvent`); the ReplicaSet as written.
    pub(super) async fn scale_and_record(
        &self,
        rs: &ReplicaSet,
        scale: i32,
        d: &Deployment,
    ) -> Result<(bool, ReplicaSet), Error> {
        if rs_replicas(rs) == scale {
            return Ok((false, rs.clone()));
        }
        let operation = if rs_replicas(rs) < scale {
            "up"
        } else {
            "down"
        };
        self.scale_replica_set(rs, scale, d, operation).await
    }

    /// Writes `rs` with `scale` replicas and the Deployment's replica annotations
    /// (upstream's `scaleReplicaSet`).
    async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        scale: i32,
        d: &Deployment,
        operation: &str,
    ) -> Result<(bool, ReplicaSet), Error> {
        let size_changes = rs_replicas(rs) != scale;
        let desired = util::replicas(d);
        let max = desired.saturating_add(util::max_surge(d));
        if !size_changes && !util::replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let before = rs_replicas(rs);
        let mut copy = rs.clone();
        util::set_rs_replicas(&mut copy, scale);
        util::set_replicas_annotations(&mut copy, desired, max);
        let name = copy.metadata.name.clone().unwrap_or_default();
        let written = self
            .rs_api(d)
            .replace(&name, &PostParams::default(), &copy)
            .await?;
        if size_changes {
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {operation} replica set {name} from {before} to {scale}"),
                NAME,
            );
        }
        Ok((size_changes, written))
    }

    /// Scales without rolling out (upstream's `scale`): the one active ReplicaSet to
    /// the Deployment's size, old ones to zero under a saturated new one, or every
    /// active one proportionally.
    async fn scale(
        &self,
        d: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        if let Some(target) = util::find_active_or_latest(new, old) {
            if rs_replicas(&target) == util::replicas(d) {
                return Ok(());
            }
            self.scale_and_record(&target, util::replicas(d), d).await?;
            return Ok(());
        }
        if util::is_saturated(d, new) {
            for rs in util::active(old) {
                self.scale_and_record(&rs, 0, d).await?;
            }
            return Ok(());
        }
        if util::is_rolling_update(d) {
            let (sizes, operation) = proportional_sizes(d, new, old);
            for (rs, size) in sizes {
                self.scale_replica_set(&rs, size, d, operation).await?;
            }
        }
        Ok(())
    }

    /// Deletes old ReplicaSets beyond revisionHistoryLimit.
    pub(super) async fn cleanup_deployment(
        &self,
        old: &[ReplicaSet],
        d: &Deployment,
    ) -> Result<(), Error> {
        let api = self.rs_api(d);
        for rs in history_to_delete(d, old) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            tracing::debug!(replicaset = %name, "deleting old replica set beyond the revision history");
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the status the ReplicaSets give, if it changed (upstream's
    /// `syncDeploymentStatus`).
    async fn sync_deployment_status(
        &self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), Error> {
        let status = progress::calculate_status(all, new, d, progress::now());
        if d.status.as_ref().map(progress::normalize) == Some(status.clone()) {
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    /// Writes the status a rollout step leaves (upstream's `syncRolloutStatus`); an
    /// unchanged, unfinished Deployment is queued again for its progress deadline.
    pub(super) async fn sync_rollout_status(
        &self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), Error> {
        let now = progress::now();
        let status = progress::rollout_status(all, new, d, now);
        if d.status.as_ref().map(progress::normalize) == Some(status.clone()) {
            match progress::requeue_after(d, &status, now) {
                Some(Duration::ZERO) => self.queue.add_rate_limited(super::key_of(d)),
                Some(after) => self.queue.add_after(super::key_of(d), after),
                None => {}
            }
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    /// Only status (a Deployment being deleted).
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
    ) -> Result<(), Error> {
        let (new, old) = self.replica_sets_and_sync_revision(d, rss, false).await?;
        let mut all = old;
        all.extend(new.clone());
        self.sync_deployment_status(&all, new.as_ref(), d).await
    }

    /// Scaling without rollout: paused Deployments and resizes (upstream's `sync`).
    pub(super) async fn sync(&self, d: &mut Deployment, rss: &[ReplicaSet]) -> Result<(), Error> {
        let (new, old) = self.replica_sets_and_sync_revision(d, rss, false).await?;
        self.scale(d, new.as_ref(), &old).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused && super::rollback::rollback_to(d).is_none() {
            self.cleanup_deployment(&old, d).await?;
        }
        // the status counts what the ReplicaSets report; the scale shows on the next sync
        let mut all = old;
        all.extend(new.clone());
        self.sync_deployment_status(&all, new.as_ref(), d).await
    }

    /// Records pause and resume in the Progressing condition, so the time spent paused
    /// does not count against the deadline (upstream's `checkPausedConditions`).
    pub(super) async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), Error> {
        if !progress::has_progress_deadline(d) {
            return Ok(());
        }
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let status = d.status.get_or_insert_with(Default::default);
        let reason = progress::get_condition(status, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(progress::TIMED_OUT) {
            return Ok(());
        }
        let paused_recorded = reason.as_deref() == Some(progress::PAUSED);
        let condition = if paused && !paused_recorded {
            progress::new_condition(
                PROGRESSING,
                "Unknown",
                progress::PAUSED,
                "Deployment is paused".to_owned(),
                progress::now(),
            )
        } else if !paused && paused_recorded {
            progress::new_condition(
                PROGRESSING,
                "Unknown",
                progress::RESUMED,
                "Deployment is resumed".to_owned(),
                progress::now(),
            )
        } else {
            return Ok(());
        };
        progress::set_condition(status, condition);
        self.update_status(d).await
    }

    /// Whether the Deployment's replicas differ from what an active ReplicaSet was last
    /// scaled for (upstream's `isScalingEvent`).
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let (new, old) = self.replica_sets_and_sync_revision(d, rss, false).await?;
        let mut all = old;
        all.extend(new);
        Ok(util::active(&all).iter().any(|rs| {
            util::desired_replicas_annotation(rs)
                .is_some_and(|desired| desired != util::replicas(d))
        }))
    }
}

/// The owned pods by ReplicaSet uid, as the Recreate strategy reads them.
pub(crate) type PodMap = HashMap<String, Vec<std::sync::Arc<k8s_openapi::api::core::v1::Pod>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("d-uid".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                    ..Default::default()
                },
                template: super::super::util::tests_support::template("nginx"),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, replicas: i32, created: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
                )),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                ..Default::default()
            }),
        }
    }

    fn sizes(v: &[(ReplicaSet, i32)]) -> Vec<(String, i32)> {
        v.iter()
            .map(|(rs, n)| (rs.metadata.name.clone().unwrap(), *n))
            .collect()
    }

    // upstream's TestScale "proportional scaling: 5 -> 10" / "10 -> 5" style cases
    #[test]
    fn a_resize_mid_rollout_is_spread_proportionally() {
        let d = deployment(20, 0, 1);
        let mut new = rs("new", 5, 2);
        let mut old = rs("old", 5, 1);
        util::set_replicas_annotations(&mut new, 10, 10);
        util::set_replicas_annotations(&mut old, 10, 10);
        let (out, op) = proportional_sizes(&d, Some(&new), &[old.clone()]);
        assert_eq!(op, "up");
        // equal sizes: newer first when scaling up
        assert_eq!(sizes(&out), [("new".into(), 10), ("old".into(), 10)]);

        let d = deployment(5, 0, 1);
        let (out, op) = proportional_sizes(&d, Some(&new), &[old]);
        assert_eq!(op, "down");
        // older first when scaling down; the leftover goes to the first
        let total: i32 = out.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 5);
        assert_eq!(sizes(&out)[0].0, "old");
    }

    #[test]
    fn leftovers_go_to_the_largest() {
        // 3 RSs of 2/2/1 at 5 (max 5), scaled to 8: proportions 3,3,2 -> leftover fits
        let d = deployment(8, 0, 1);
        let mut a = rs("a", 2, 1);
        let mut b = rs("b", 2, 2);
        let mut c = rs("c", 1, 3);
        for x in [&mut a, &mut b, &mut c] {
            util::set_replicas_annotations(x, 5, 5);
        }
        let (out, _) = proportional_sizes(&d, Some(&c), &[a, b]);
        let total: i32 = out.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 8);
        assert_eq!(sizes(&out)[0].0, "b", "largest, newer first");
    }

    #[test]
    fn history_cleanup_deletes_the_oldest_revisions_beyond_the_limit() {
        let mut d = deployment(1, 1, 0);
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let with_rev = |name: &str, rev: &str, replicas: i32| {
            let mut x = rs(name, replicas, 0);
            x.metadata.annotations =
                Some([(util::REVISION_ANNOTATION.to_owned(), rev.to_owned())].into());
            x
        };
        let old = [
            with_rev("r3", "3", 0),
            with_rev("r1", "1", 0),
            with_rev("r2", "2", 1),
        ];
        let doomed: Vec<String> = history_to_delete(&d, &old)
            .into_iter()
            .map(|r| r.metadata.name.unwrap())
            .collect();
        // r1 and r2 are beyond the limit, but r2 still has a replica
        assert_eq!(doomed, ["r1"]);
        d.spec.as_mut().unwrap().revision_history_limit = None;
        assert!(history_to_delete(&d, &old).is_empty(), "default keeps 10");
        d.spec.as_mut().unwrap().revision_history_limit = Some(0);
        assert_eq!(history_to_delete(&d, &old).len(), 2);
    }

    #[test]
    fn the_new_replica_set_carries_the_hash_everywhere() {
        let d = deployment(3, 1, 0);
        let rs = new_replica_set(&d);
        let hash = util::compute_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(
            rs.metadata.labels.as_ref().unwrap()[util::POD_TEMPLATE_HASH_LABEL],
            hash
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[util::POD_TEMPLATE_HASH_LABEL],
            hash
        );
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()["app"], "web");
        let t = spec.template.as_ref().unwrap();
        assert_eq!(
            t.metadata.as_ref().unwrap().labels.as_ref().unwrap()[util::POD_TEMPLATE_HASH_LABEL],
            hash
        );
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Deployment", "d-uid", Some(true))
        );
        // its template still equals the Deployment's, and a collision renames it
        assert!(util::equal_ignore_hash(
            t,
            &d.spec.as_ref().unwrap().template
        ));
        let mut collided = d.clone();
        collided.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
            collision_count: Some(1),
            ..Default::default()
        });
        assert_ne!(new_replica_set(&collided).metadata.name, rs.metadata.name);
    }
}
