//! The RollingUpdate strategy (upstream's `deployment/rolling.go`): scale the new
//! ReplicaSet up as far as maxSurge allows, scale old ones down as far as
//! maxUnavailable allows (unhealthy replicas first), one step per sync.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::progress;
use super::util::{self, rs_available, rs_replicas};
use super::{Controller, Error};

/// The size the new ReplicaSet should move to, `None` when it stays (upstream's
/// `reconcileNewReplicaSet` arithmetic): down to the Deployment's replicas when above
/// them, else up as far as maxSurge leaves room.
pub(crate) fn new_replica_set_target(
    d: &Deployment,
    all: &[ReplicaSet],
    new: &ReplicaSet,
) -> Result<Option<i32>, util::UtilError> {
    let want = util::replicas(d);
    let have = rs_replicas(new);
    if have == want {
        return Ok(None);
    }
    if have > want {
        return Ok(Some(want));
    }
    let target = util::new_rs_new_replicas(d, all, new)?;
    Ok((target != have).then_some(target))
}

/// How many old replicas may go at most this step (upstream's `maxScaledDown` in
/// `reconcileOldReplicaSets`): what the total exceeds minAvailable by, less what the new
/// ReplicaSet has not yet made available.
pub(crate) fn max_scaled_down(d: &Deployment, all: &[ReplicaSet], new: &ReplicaSet) -> i32 {
    let min_available = util::replicas(d) - util::max_unavailable(d);
    let new_unavailable = rs_replicas(new) - rs_available(new);
    util::replica_count(all) - min_available - new_unavailable
}

/// The old ReplicaSets' unhealthy replicas to remove, oldest ReplicaSet first, at most
/// `max` (upstream's `cleanupUnhealthyReplicas`): (index into `old` sorted by creation,
/// new size). `old` is sorted in place.
pub(crate) fn plan_unhealthy_cleanup(old: &mut [ReplicaSet], max: i32) -> Vec<(usize, i32)> {
    util::sort_by_creation(old);
    let mut plan = Vec::new();
    let mut total = 0;
    for (i, rs) in old.iter().enumerate() {
        if total >= max {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 || replicas == rs_available(rs) {
            continue;
        }
        let down = (max - total).min(replicas - rs_available(rs));
        // availableReplicas above spec.replicas would make this a scale up
        if down <= 0 {
            continue;
        }
        plan.push((i, replicas - down));
        total += down;
    }
    plan
}

/// The old ReplicaSets' scale-down that keeps minAvailable available, oldest first
/// (upstream's `scaleDownOldReplicaSetsForRollingUpdate`): (index into `old` sorted by
/// creation, new size).
pub(crate) fn plan_old_scale_down(
    d: &Deployment,
    all: &[ReplicaSet],
    old: &mut [ReplicaSet],
) -> Vec<(usize, i32)> {
    let min_available = util::replicas(d) - util::max_unavailable(d);
    let available = util::available_replica_count(all);
    if available <= min_available {
        return Vec::new();
    }
    util::sort_by_creation(old);
    let wanted = available - min_available;
    let mut total = 0;
    let mut plan = Vec::new();
    for (i, rs) in old.iter().enumerate() {
        if total >= wanted {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 {
            continue;
        }
        let down = replicas.min(wanted - total);
        plan.push((i, replicas - down));
        total += down;
    }
    plan
}

impl Controller {
    /// One RollingUpdate step (upstream's `rolloutRolling`).
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
    ) -> Result<(), Error> {
        let (new, old) = self.replica_sets_and_sync_revision(d, rss, true).await?;
        let mut all = old.clone();
        all.extend(new.clone());
        if let Some(new) = &new {
            if self.reconcile_new_replica_set(&all, new, d).await? {
                return self.sync_rollout_status(&all, Some(new), d).await;
            }
            if self
                .reconcile_old_replica_sets(&all, &util::active(&old), new, d)
                .await?
            {
                return self.sync_rollout_status(&all, Some(new), d).await;
            }
        }
        let status = d.status.clone().unwrap_or_default();
        if progress::deployment_complete(d, &status) {
            self.cleanup_deployment(&old, d).await?;
        }
        self.sync_rollout_status(&all, new.as_ref(), d).await
    }

    async fn reconcile_new_replica_set(
        &self,
        all: &[ReplicaSet],
        new: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, Error> {
        let Some(target) = new_replica_set_target(d, all, new)? else {
            return Ok(false);
        };
        Ok(self.scale_and_record(new, target, d).await?.0)
    }

    async fn reconcile_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        old: &[ReplicaSet],
        new: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, Error> {
        if util::replica_count(old) == 0 {
            return Ok(false);
        }
        let max = max_scaled_down(d, all, new);
        if max <= 0 {
            return Ok(false);
        }
        let mut old = old.to_vec();
        let mut scaled = 0;
        for (i, size) in plan_unhealthy_cleanup(&mut old, max) {
            let before = rs_replicas(&old[i]);
            match self.scale_and_record(&old[i], size, d).await {
                Ok((_, written)) => {
                    // the written object has the new size but the same availability
                    let status = old[i].status.clone();
                    old[i] = written;
                    old[i].status = status;
                    scaled += before - size;
                }
                // upstream reports no scale-down and waits for the next sync
                Err(e) => {
                    tracing::debug!(error = %e, "cleaning up unhealthy replicas failed");
                    return Ok(false);
                }
            }
        }
        let mut all = old.clone();
        all.push(new.clone());
        for (i, size) in plan_old_scale_down(d, &all, &mut old) {
            let before = rs_replicas(&old[i]);
            match self.scale_and_record(&old[i], size, d).await {
                Ok(_) => scaled += before - size,
                Err(e) => {
                    tracing::debug!(error = %e, "scaling down old replica sets failed");
                    return Ok(scaled > 0);
                }
            }
        }
        Ok(scaled > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("foo".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
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

    fn rs(name: &str, replicas: i32, available: i32, created: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
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
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    // upstream's TestDeploymentController_reconcileNewReplicaSet
    #[test]
    fn reconcile_new_replica_set_table() {
        // (deployment replicas, maxSurge, old replicas, new replicas, expected new)
        let cases = [
            (10, 0, 10, 0, None),
            (10, 2, 10, 0, Some(2)),
            (10, 2, 5, 0, Some(7)),
            (10, 2, 10, 2, None),
            (2, 2, 2, 4, Some(2)),
        ];
        for (replicas, surge, old_n, new_n, want) in cases {
            let d = deployment(replicas, surge, 1);
            let old = rs("old", old_n, old_n, 0);
            let new = rs("new", new_n, new_n, 1);
            let got = new_replica_set_target(&d, &[old, new.clone()], &new).unwrap();
            assert_eq!(got, want, "case {replicas} {surge} {old_n} {new_n}");
        }
    }

    /// Runs both halves of `reconcileOldReplicaSets` on (old, new) and returns the old
    /// ReplicaSet's final size, `None` when nothing is scaled.
    fn reconcile_old(d: &Deployment, old: ReplicaSet, new: ReplicaSet) -> Option<i32> {
        let all = [old.clone(), new.clone()];
        if util::replica_count(std::slice::from_ref(&old)) == 0 {
            return None;
        }
        let max = max_scaled_down(d, &all, &new);
        if max <= 0 {
            return None;
        }
        let mut olds = vec![old];
        let mut changed = false;
        for (i, size) in plan_unhealthy_cleanup(&mut olds, max) {
            util::set_rs_replicas(&mut olds[i], size);
            changed = true;
        }
        let mut all = olds.clone();
        all.push(new);
        for (i, size) in plan_old_scale_down(d, &all, &mut olds) {
            util::set_rs_replicas(&mut olds[i], size);
            changed = true;
        }
        changed.then(|| rs_replicas(&olds[0]))
    }

    // upstream's TestDeploymentController_reconcileOldReplicaSets
    #[test]
    fn reconcile_old_replica_sets_table() {
        // (deployment replicas, maxUnavailable, old, new, ready old, ready new, expected old)
        let cases = [
            (10, 0, 10, 0, 10, 0, Some(9)),
            (10, 2, 10, 0, 10, 0, Some(8)),
            (10, 2, 10, 0, 8, 0, Some(8)),
            (10, 2, 10, 0, 9, 0, Some(8)),
            (10, 2, 8, 2, 8, 0, None),
        ];
        for (replicas, unavailable, old_n, new_n, old_ready, new_ready, want) in cases {
            let d = deployment(replicas, 0, unavailable);
            let old = rs("old", old_n, old_ready, 0);
            let new = rs("new", new_n, new_ready, 1);
            assert_eq!(
                reconcile_old(&d, old, new),
                want,
                "case {replicas} {unavailable} {old_n} {new_n} {old_ready} {new_ready}"
            );
        }
    }

    // upstream's TestDeploymentController_cleanupUnhealthyReplicas
    #[test]
    fn unhealthy_cleanup_table() {
        // (old replicas, ready, max cleanup, expected cleaned)
        let cases = [(10, 8, 1, 1), (10, 8, 3, 2), (10, 8, 0, 0), (10, 10, 3, 0)];
        for (replicas, ready, max, want) in cases {
            let mut old = vec![rs("old", replicas, ready, 0)];
            let cleaned: i32 = plan_unhealthy_cleanup(&mut old, max)
                .into_iter()
                .map(|(i, size)| rs_replicas(&old[i]) - size)
                .sum();
            assert_eq!(cleaned, want, "case {replicas} {ready} {max}");
        }
    }

    // upstream's TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate
    #[test]
    fn old_scale_down_table() {
        // (deployment replicas, maxUnavailable, ready, old replicas, expected old)
        let cases = [
            (10, 0, 10, 10, Some(9)),
            (10, 2, 10, 10, Some(8)),
            (10, 2, 8, 10, None),
            (10, 2, 9, 10, Some(9)),
        ];
        for (replicas, unavailable, ready, old_n, want) in cases {
            let d = deployment(replicas, 0, unavailable);
            let mut old = vec![rs("old", old_n, ready, 0)];
            let all = old.clone();
            let plan = plan_old_scale_down(&d, &all, &mut old);
            assert_eq!(
                plan.first().map(|p| p.1),
                want,
                "case {replicas} {unavailable} {ready}"
            );
        }
    }

    #[test]
    fn old_replica_sets_go_down_oldest_first() {
        let d = deployment(4, 0, 2);
        let mut old = vec![rs("newer", 2, 2, 5), rs("oldest", 2, 2, 1)];
        let mut all = old.clone();
        all.push(rs("new", 2, 2, 9));
        // 6 available, min 2: 4 may go, oldest first
        let plan = plan_old_scale_down(&d, &all, &mut old);
        assert_eq!(old[0].metadata.name.as_deref(), Some("oldest"));
        assert_eq!(plan, [(0, 0), (1, 0)]);
    }
}
