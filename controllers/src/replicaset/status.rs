//! The status a sync writes (upstream's `calculateStatus` and the condition helpers
//! of `replica_set_utils.go`): counts of the owned active pods, and a
//! `ReplicaFailure` condition while creating or deleting pods fails.

use std::sync::Arc;

use apimachinery::labels::Selector;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::kind::{ReplicaCondition, ReplicaStatus};
use crate::controller_utils::{is_pod_available, is_pod_ready, labels_of};

/// The condition type reporting failed creates or deletes.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What `calculate` needs of the owner.
pub struct Owner<'a> {
    /// Its current status.
    pub status: ReplicaStatus,
    /// `spec.replicas`.
    pub desired: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// The template's labels.
    pub template_labels: &'a apimachinery::labels::Labels,
}

/// The new status from the owned active pods `pods` and the error of this sync's
/// creates or deletes, if any. A failure condition, once set, keeps its first
/// message until a sync succeeds (as upstream, which sets it only when absent).
pub fn calculate(
    owner: &Owner<'_>,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: jiff::Timestamp,
) -> ReplicaStatus {
    let mut status = owner.status.clone();
    // the template's labels are a superset of the selector's, so a pod carrying all
    // of them is one of the selected pods
    let template = Selector::from_set(owner.template_labels);
    let fully_labeled = pods
        .iter()
        .filter(|p| template.matches(&labels_of(&p.metadata)))
        .count();
    let ready: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_pod_ready(p)).collect();
    let available = ready
        .iter()
        .filter(|p| is_pod_available(p, owner.min_ready_seconds, now))
        .count();

    let has_failure = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let diff = i64::try_from(pods.len()).unwrap_or(i64::MAX) - i64::from(owner.desired);
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status.conditions.push(ReplicaCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: "True".to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }

    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.replicas = count(pods.len());
    status.fully_labeled_replicas = count(fully_labeled);
    status.ready_replicas = count(ready.len());
    status.available_replicas = count(available);
    status
}

/// Whether `new` differs from `current` in what upstream's `updateReplicaSetStatus`
/// compares, or `generation` has not been observed yet.
pub fn needs_update(current: &ReplicaStatus, new: &ReplicaStatus, generation: i64) -> bool {
    current.replicas != new.replicas
        || current.fully_labeled_replicas != new.fully_labeled_replicas
        || current.ready_replicas != new.ready_replicas
        || current.available_replicas != new.available_replicas
        || current.observed_generation != generation
        || current.conditions != new.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn pod(labels: &[(&str, &str)], ready_since: Option<i64>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready_since.map(|at| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(at))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn counts_fully_labeled_ready_and_available_pods() {
        let template = BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]);
        let owner = Owner {
            status: ReplicaStatus::default(),
            desired: 4,
            min_ready_seconds: 60,
            template_labels: &template,
        };
        let pods = [
            pod(&[("app", "web"), ("tier", "front")], Some(1_000)),
            pod(
                &[("app", "web"), ("tier", "front"), ("x", "y")],
                Some(1_990),
            ),
            pod(&[("app", "web")], Some(1_000)),
            pod(&[("app", "web")], None),
        ];
        let status = calculate(&owner, &pods, None, ts(2_000));
        assert_eq!(
            (
                status.replicas,
                status.fully_labeled_replicas,
                status.ready_replicas,
                status.available_replicas
            ),
            (4, 2, 3, 2)
        );
        assert!(status.conditions.is_empty());
    }

    #[test]
    fn a_failure_condition_is_set_once_and_cleared_by_success() {
        let template = BTreeMap::new();
        let mut owner = Owner {
            status: ReplicaStatus::default(),
            desired: 3,
            min_ready_seconds: 0,
            template_labels: &template,
        };
        let pods = [pod(&[], None)];
        let failed = calculate(&owner, &pods, Some("quota exceeded"), ts(10));
        let condition = &failed.conditions[0];
        assert_eq!(condition.type_, REPLICA_FAILURE);
        assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(condition.message.as_deref(), Some("quota exceeded"));

        owner.status = failed.clone();
        let again = calculate(&owner, &pods, Some("another error"), ts(20));
        assert_eq!(again.conditions, failed.conditions, "kept as first set");
        assert!(!needs_update(&failed, &again, 0));

        owner.status = again;
        let healed = calculate(&owner, &pods, None, ts(30));
        assert!(healed.conditions.is_empty());

        owner.desired = 0;
        owner.status = ReplicaStatus::default();
        let failed_delete = calculate(&owner, &pods, Some("nope"), ts(40));
        assert_eq!(
            failed_delete.conditions[0].reason.as_deref(),
            Some("FailedDelete")
        );
    }

    #[test]
    fn an_unobserved_generation_needs_an_update() {
        let status = ReplicaStatus {
            observed_generation: 1,
            ..Default::default()
        };
        assert!(!needs_update(&status, &status, 1));
        assert!(needs_update(&status, &status, 2));
        let more = ReplicaStatus {
            ready_replicas: 1,
            ..status.clone()
        };
        assert!(needs_update(&status, &more, 1));
    }
}
