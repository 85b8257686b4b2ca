//! The Recreate strategy (upstream's `deployment/recreate.go`): every old pod goes
//! before the new ReplicaSet is created or scaled up.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::PodMap;
use super::util::{self, rs_replicas};
use super::{Controller, Error, progress};

/// Whether old pods may still run: an old ReplicaSet reports replicas, or a pod of
/// another ReplicaSet is not finished (upstream's `oldPodsRunning`; a pod of unknown
/// phase counts as running).
pub(crate) fn old_pods_running(
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    pods: &PodMap,
) -> bool {
    if util::actual_replica_count(old) > 0 {
        return true;
    }
    let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .flat_map(|(_, pods)| pods.iter())
        .any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed" | "Succeeded"))
        })
}

impl Controller {
    /// One Recreate step (upstream's `rolloutRecreate`).
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        pods: &PodMap,
    ) -> Result<(), Error> {
        // no new ReplicaSet yet: creating it now would scale up before old pods are gone
        let (mut new, mut old) = self.replica_sets_and_sync_revision(d, rss, false).await?;
        let mut all = old.clone();
        all.extend(new.clone());
        let mut scaled_down = false;
        for rs in util::active(&old) {
            if rs_replicas(&rs) == 0 {
                continue;
            }
            if self.scale_and_record(&rs, 0, d).await?.0 {
                scaled_down = true;
            }
        }
        if scaled_down {
            return self.sync_rollout_status(&all, new.as_ref(), d).await;
        }
        if old_pods_running(new.as_ref(), &old, pods) {
            return self.sync_rollout_status(&all, new.as_ref(), d).await;
        }
        if new.is_none() {
            (new, old) = self.replica_sets_and_sync_revision(d, rss, true).await?;
            all = old.clone();
            all.extend(new.clone());
        }
        if let Some(rs) = &new {
            self.scale_and_record(rs, util::replicas(d), d).await?;
        }
        let status = d.status.clone().unwrap_or_default();
        if progress::deployment_complete(d, &status) {
            self.cleanup_deployment(&old, d).await?;
        }
        self.sync_rollout_status(&all, new.as_ref(), d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use k8s_openapi::api::core::v1::{Pod, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(uid: &str, status_replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            status: Some(ReplicaSetStatus {
                replicas: status_replicas,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(phase: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            status: Some(PodStatus {
                phase: phase.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    // upstream's TestOldPodsRunning cases
    #[test]
    fn old_pods_block_the_new_replica_set() {
        let new = rs("new", 0);
        let old = rs("old", 0);
        let map = |entries: Vec<(&str, Vec<Arc<Pod>>)>| -> PodMap {
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        };
        assert!(!old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map(vec![])
        ));
        assert!(
            old_pods_running(Some(&new), &[rs("old", 1)], &map(vec![])),
            "old RS reports replicas"
        );
        assert!(!old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map(vec![("new", vec![pod(Some("Running"))])])
        ));
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map(vec![("old", vec![pod(Some("Running"))])])
        ));
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map(vec![("old", vec![pod(Some("Unknown"))])])
        ));
        assert!(
            old_pods_running(
                Some(&new),
                std::slice::from_ref(&old),
                &map(vec![("old", vec![pod(None)])])
            ),
            "pending"
        );
        assert!(!old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map(vec![(
                "old",
                vec![pod(Some("Failed")), pod(Some("Succeeded"))]
            )])
        ));
        assert!(old_pods_running(
            None,
            &[old],
            &map(vec![("x", vec![pod(Some("Running"))])])
        ));
    }
}
