//! A StatefulSet's status (upstream's `computeReplicaStatus`, `completeRollingUpdate`
//! and `inconsistentStatus`): how many of its pods exist, are ready and available, and
//! are at the current and the update revision.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::identity::{
    Strategy, is_available, is_created, is_running_and_ready, is_terminating, replicas,
    revision_of, strategy,
};

/// The pod counts of a status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Pods that exist.
    pub replicas: i32,
    /// Running and ready.
    pub ready: i32,
    /// Ready for `minReadySeconds`.
    pub available: i32,
    /// Not terminating, at the current revision.
    pub current: i32,
    /// Not terminating, at the update revision.
    pub updated: i32,
}

/// Counts `pods` against the current and update revisions' names.
pub fn count<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready_seconds: i32,
    current_revision: &str,
    update_revision: &str,
    now: jiff::Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for pod in pods {
        let created = is_created(pod);
        if created {
            c.replicas += 1;
        }
        if is_running_and_ready(pod) {
            c.ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if created && !is_terminating(pod) {
            let revision = revision_of(pod);
            if revision == current_revision {
                c.current += 1;
            }
            if revision == update_revision {
                c.updated += 1;
            }
        }
    }
    c
}

fn non_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Writes the counts into `status` (zero counts omitted, as Go's `omitempty`).
pub fn apply(status: &mut StatefulSetStatus, c: Counts) {
    status.replicas = c.replicas;
    status.ready_replicas = non_zero(c.ready);
    status.available_replicas = Some(c.available);
    status.current_replicas = non_zero(c.current);
    status.updated_replicas = non_zero(c.updated);
}

/// Once every wanted pod is updated and ready, the update revision becomes the
/// current one (upstream's `completeRollingUpdate`).
pub fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let wanted = replicas(set);
    if matches!(strategy(set), Strategy::RollingUpdate { .. })
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.ready_replicas.unwrap_or(0) == wanted
        && status.replicas == wanted
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// Whether `status` says something the set's status does not (upstream's
/// `inconsistentStatus`).
pub fn inconsistent(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let old = set.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    status.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || status.replicas != old.replicas
        || n(status.current_replicas) != n(old.current_replicas)
        || n(status.ready_replicas) != n(old.ready_replicas)
        || n(status.updated_replicas) != n(old.updated_replicas)
        || s(&status.current_revision) != s(&old.current_revision)
        || n(status.available_replicas) != n(old.available_replicas)
        || s(&status.update_revision) != s(&old.update_revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::tests::set;
    use serde_json::json;

    fn pod(revision: &str, phase: &str, ready_since: Option<i64>, deleting: bool) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "labels": {"controller-revision-hash": revision}},
            "status": {"phase": phase}
        }))
        .unwrap();
        if let Some(at) = ready_since {
            p.status.as_mut().unwrap().conditions = Some(vec![
                serde_json::from_value(json!({
                    "type": "Ready", "status": "True",
                    "lastTransitionTime": jiff::Timestamp::from_second(at).unwrap().to_string()
                }))
                .unwrap(),
            ]);
        }
        if deleting {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::from_second(1).unwrap(),
                ));
        }
        p
    }

    #[test]
    fn counts_follow_phase_readiness_and_revision() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let pods = [
            pod("a", "Running", Some(900), false),
            pod("a", "Running", Some(995), false),
            pod("b", "Pending", None, false),
            pod("b", "Running", Some(100), true),
            pod("b", "", None, false),
        ];
        let c = count(&pods, 10, "a", "b", now);
        assert_eq!(
            c,
            Counts {
                replicas: 4,
                ready: 3,
                available: 2,
                current: 2,
                updated: 1
            }
        );
    }

    #[test]
    fn a_rolling_update_completes_when_all_wanted_pods_are_updated_and_ready() {
        let s = set(json!({"replicas": 2}));
        let mut status = StatefulSetStatus {
            replicas: 2,
            ready_replicas: Some(2),
            updated_replicas: Some(2),
            current_replicas: Some(0),
            current_revision: Some("old".into()),
            update_revision: Some("new".into()),
            ..Default::default()
        };
        complete_rolling_update(&s, &mut status);
        assert_eq!(status.current_revision.as_deref(), Some("new"));
        assert_eq!(status.current_replicas, Some(2));

        let mut partial = StatefulSetStatus {
            ready_replicas: Some(1),
            current_revision: Some("old".into()),
            ..status.clone()
        };
        complete_rolling_update(&s, &mut partial);
        assert_eq!(partial.current_revision.as_deref(), Some("old"));

        let on_delete = set(json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}));
        let mut status = StatefulSetStatus {
            current_revision: Some("old".into()),
            ..status
        };
        complete_rolling_update(&on_delete, &mut status);
        assert_eq!(status.current_revision.as_deref(), Some("old"));
    }

    #[test]
    fn only_changed_fields_or_a_newer_generation_need_a_write() {
        let mut s = set(json!({}));
        let status = StatefulSetStatus {
            observed_generation: Some(2),
            replicas: 3,
            ready_replicas: Some(3),
            available_replicas: Some(3),
            current_revision: Some("r".into()),
            update_revision: Some("r".into()),
            collision_count: Some(0),
            ..Default::default()
        };
        assert!(inconsistent(&s, &status));
        s.status = Some(status.clone());
        assert!(!inconsistent(&s, &status));
        let newer = StatefulSetStatus {
            observed_generation: Some(3),
            ..status.clone()
        };
        assert!(inconsistent(&s, &newer));
        let fewer = StatefulSetStatus {
            available_replicas: Some(2),
            ..status
        };
        assert!(inconsistent(&s, &fewer));
    }
}
