//! The two kinds one controller serves: apps/v1 ReplicaSet and v1
//! ReplicationController. Upstream runs the ReplicaSet controller over a conversion
//! adapter for ReplicationControllers; here both implement [`ReplicaKind`], which
//! gives the controller the few fields it reads and a common status shape.

use apimachinery::labels::{LabelSelector, LabelSelectorError, Selector};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One condition of a replica controller's status (`ReplicaSetCondition` or
/// `ReplicationControllerCondition`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaCondition {
    /// The condition's type (`ReplicaFailure`).
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A machine-readable reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
    /// When the condition last changed status.
    pub last_transition_time: Option<Time>,
}

/// The status of a ReplicaSet or ReplicationController, with Go's zero values for
/// fields the API omits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStatus {
    /// Active pods owned.
    pub replicas: i32,
    /// Of those, the ones carrying every label of the template.
    pub fully_labeled_replicas: i32,
    /// Of those, the ready ones.
    pub ready_replicas: i32,
    /// Of those, the ones ready for at least `minReadySeconds`.
    pub available_replicas: i32,
    /// The generation the status describes.
    pub observed_generation: i64,
    /// The conditions.
    pub conditions: Vec<ReplicaCondition>,
}

/// Go's `omitempty` for the optional counters: zero is not written.
fn non_zero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

/// A kind of object that keeps a number of pods from a template running.
pub trait ReplicaKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The component its events are reported by (upstream's event source).
    const EVENT_SOURCE: &'static str;

    /// The pod selector; an invalid one selects nothing and is reported.
    fn selector(&self) -> Result<Selector, LabelSelectorError>;
    /// `spec.replicas`, 1 when unset.
    fn desired_replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status in the common shape.
    fn replica_status(&self) -> ReplicaStatus;
    /// Replaces the status (fields outside the common shape are kept).
    fn set_replica_status(&mut self, status: ReplicaStatus);
}

impl ReplicaKind for ReplicaSet {
    const EVENT_SOURCE: &'static str = "replicaset-controller";

    fn selector(&self) -> Result<Selector, LabelSelectorError> {
        crate::controller_utils::label_selector(self.spec.as_ref().map(|s| &s.selector))
    }

    fn desired_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let Some(s) = self.status.as_ref() else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| ReplicaCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }

    fn set_replica_status(&mut self, status: ReplicaStatus) {
        let terminating_replicas = self.status.as_ref().and_then(|s| s.terminating_replicas);
        self.status = Some(ReplicaSetStatus {
            replicas: status.replicas,
            fully_labeled_replicas: non_zero(status.fully_labeled_replicas),
            ready_replicas: non_zero(status.ready_replicas),
            available_replicas: non_zero(status.available_replicas),
            observed_generation: non_zero(status.observed_generation),
            terminating_replicas,
            conditions: non_zero(
                status
                    .conditions
                    .into_iter()
                    .map(|c| ReplicaSetCondition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect(),
            ),
        });
    }
}

impl ReplicaKind for ReplicationController {
    // upstream's NewReplicationManager names its event source so
    const EVENT_SOURCE: &'static str = "replication-controller";

    fn selector(&self) -> Result<Selector, LabelSelectorError> {
        // as upstream's conversion to a ReplicaSet: the map becomes matchLabels, and
        // no map selects nothing
        let selector = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .map(|labels| LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            });
        Selector::from_label_selector(selector.as_ref())
    }

    fn desired_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let Some(s) = self.status.as_ref() else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| ReplicaCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }

    fn set_replica_status(&mut self, status: ReplicaStatus) {
        self.status = Some(ReplicationControllerStatus {
            replicas: status.replicas,
            fully_labeled_replicas: non_zero(status.fully_labeled_replicas),
            ready_replicas: non_zero(status.ready_replicas),
            available_replicas: non_zero(status.available_replicas),
            observed_generation: non_zero(status.observed_generation),
            conditions: non_zero(
                status
                    .conditions
                    .into_iter()
                    .map(|c| ReplicationControllerCondition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect(),
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::ReplicationControllerSpec;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn both_kinds_select_pods_and_default_to_one_replica() {
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    match_expressions: Some(vec![
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                            key: "tier".into(),
                            operator: "NotIn".into(),
                            values: Some(vec!["db".into()]),
                        },
                    ]),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let selector = rs.selector().unwrap();
        assert!(selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert_eq!(rs.desired_replicas(), 1);

        let rc = ReplicationController {
            spec: Some(ReplicationControllerSpec {
                selector: Some(labels(&[("app", "web")])),
                replicas: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            rc.selector()
                .unwrap()
                .matches(&labels(&[("app", "web"), ("x", "y")]))
        );
        assert!(!rc.selector().unwrap().matches(&labels(&[("app", "db")])));
        assert_eq!(rc.desired_replicas(), 0);
        assert!(
            ReplicationController::default()
                .selector()
                .unwrap()
                .matches_nothing()
        );
    }

    #[test]
    fn statuses_round_trip_with_zero_counters_omitted() {
        let status = ReplicaStatus {
            replicas: 3,
            fully_labeled_replicas: 3,
            ready_replicas: 0,
            available_replicas: 0,
            observed_generation: 2,
            conditions: vec![ReplicaCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some("quota".into()),
                last_transition_time: None,
            }],
        };
        let mut rs = ReplicaSet::default();
        rs.set_replica_status(status.clone());
        assert_eq!(rs.status.as_ref().unwrap().ready_replicas, None);
        assert_eq!(rs.replica_status(), status);
        let mut rc = ReplicationController::default();
        rc.set_replica_status(status.clone());
        assert_eq!(rc.replica_status(), status);
    }
}
