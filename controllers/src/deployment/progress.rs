//! Deployment status and conditions (upstream's `deployment/progress.go` and the
//! status half of `sync.go`): the replica counts `kubectl rollout status` reads, the
//! Available condition, the Progressing condition with its reasons, and when a
//! Deployment without progress must be looked at again for its deadline.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::util;

/// Progressing: a new ReplicaSet was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: the new ReplicaSet already existed.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: the rollout moved.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing: the rollout completed.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing: no progress within progressDeadlineSeconds.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing: spec.paused was set.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing: spec.paused was cleared.
pub const RESUMED: &str = "DeploymentResumed";
/// Progressing (False): the new ReplicaSet could not be created.
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
/// Available: enough replicas are available.
pub const MIN_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available (False): too few replicas are available.
pub const MIN_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// The Progressing condition type.
pub const PROGRESSING: &str = "Progressing";
/// The Available condition type.
pub const AVAILABLE: &str = "Available";
/// The ReplicaFailure condition type.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Now, to the second, as metav1.Time serializes it (so a written condition compares
/// equal to itself read back).
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// A condition stamped `now` (upstream's `NewDeploymentCondition`).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets `condition` (upstream's `SetDeploymentCondition`): nothing when status and
/// reason are unchanged; the transition time kept when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_.clone());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// A status with zero counts as absent, as Go's omitempty writes them, so a computed
/// status compares equal to the one read back.
pub fn normalize(status: &DeploymentStatus) -> DeploymentStatus {
    let mut s = status.clone();
    for field in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        *field = field.and_then(nonzero);
    }
    s.observed_generation = s.observed_generation.filter(|g| *g != 0);
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// Whether a Deployment's progress deadline is set and finite (upstream's
/// `HasProgressDeadline`).
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|p| p != i32::MAX)
}

fn status_of(d: &Deployment) -> DeploymentStatus {
    d.status.clone().unwrap_or_default()
}

/// The status the ReplicaSets give (upstream's `calculateStatus`), with the Available
/// condition set.
pub fn calculate_status(
    all: &[ReplicaSet],
    new: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = util::available_replica_count(all);
    let total = util::replica_count(all);
    let unavailable = (total - available).max(0);
    let old = status_of(d);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(util::actual_replica_count(all)),
        updated_replicas: Some(util::actual_replica_count(
            new.map(std::slice::from_ref).unwrap_or(&[]),
        )),
        ready_replicas: Some(util::ready_replica_count(all)),
        available_replicas: Some(available),
        unavailable_replicas: Some(unavailable),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    if available >= util::replicas(d) - util::max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MIN_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".to_owned(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".to_owned(),
                now,
            ),
        );
    }
    normalize(&status)
}

/// Whether every desired replica is updated and available and no old one remains
/// (upstream's `DeploymentComplete`).
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = util::replicas(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over the Deployment's recorded status (upstream's
/// `DeploymentProgressing`).
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = status_of(d);
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn deadline(d: &Deployment) -> Duration {
    let seconds = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn last_update(c: &DeploymentCondition) -> Option<Timestamp> {
    c.last_update_time.as_ref().map(|t| t.0)
}

/// Whether the Deployment went without progress past its deadline (upstream's
/// `DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(new, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = last_update(c) else {
        return false;
    };
    let Ok(delta) = jiff::SignedDuration::try_from(deadline(d)) else {
        return false;
    };
    from.checked_add(delta).is_ok_and(|end| end < now)
}

/// A ReplicaSet's ReplicaFailure as the Deployment's.
fn from_rs_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

fn replica_failure(all: &[ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(from_rs_condition)
    };
    new.and_then(failure)
        .or_else(|| all.iter().find_map(failure))
}

/// The status a rollout step leaves (upstream's `syncRolloutStatus` without the
/// write): counts, Available, Progressing by how the rollout goes, ReplicaFailure
/// copied from the ReplicaSets.
pub fn rollout_status(
    all: &[ReplicaSet],
    new: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new, d, now);
    let name = d.metadata.name.clone().unwrap_or_default();
    let new_name = new.and_then(|rs| rs.metadata.name.clone());
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = get_condition(&status_of(d), PROGRESSING).cloned();
    let complete_before = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    if has_progress_deadline(d) && !complete_before {
        if deployment_complete(d, &status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                None => format!("Deployment {name:?} has successfully progressed."),
            };
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
            );
        } else if deployment_progressing(d, &status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet {n:?} is progressing."),
                None => format!("Deployment {name:?} is progressing."),
            };
            let mut condition = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now);
            // progress refreshes lastUpdateTime even with an unchanged reason
            if let Some(current) = &current {
                if current.status == "True" {
                    condition.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, condition);
        } else if deployment_timed_out(d, &status, now) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                None => format!("Deployment {name:?} has timed out progressing."),
            };
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, msg, now),
            );
        }
    }
    match replica_failure(all, new) {
        Some(c) => set_condition(&mut status, c),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    normalize(&status)
}

/// When an unchanged, unfinished Deployment must be synced again to check its deadline
/// (upstream's `requeueStuckDeployment`): `None` for never, zero for now.
pub fn requeue_after(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let before = status_of(d);
    let current = get_condition(&before, PROGRESSING)?;
    if !has_progress_deadline(d)
        || deployment_complete(d, new)
        || current.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let updated = last_update(current)?;
    let delta = jiff::SignedDuration::try_from(deadline(d)).ok()?;
    let remaining = updated.checked_add(delta).ok()?.duration_since(now);
    if remaining < jiff::SignedDuration::from_secs(1) {
        return Some(Duration::ZERO);
    }
    // a second more, so the check lands after the deadline
    Duration::try_from(remaining)
        .ok()
        .map(|r| r + Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn d(replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, spec: i32, status: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: status,
                ready_replicas: Some(available),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn status_counts_and_availability() {
        let new = rs("web-new", 3, 3, 1);
        let old = rs("web-old", 2, 2, 2);
        let all = [old, new.clone()];
        let s = calculate_status(&all, Some(&new), &d(4), t(0));
        assert_eq!(s.replicas, Some(5));
        assert_eq!(s.updated_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(2));
        // maxUnavailable 25% of 4 = 1: 3 available suffices
        let c = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("True", Some(MIN_REPLICAS_AVAILABLE))
        );
        assert_eq!(
            c.message.as_deref(),
            Some("Deployment has minimum availability.")
        );
        let s = calculate_status(&all, Some(&new), &d(6), t(0));
        let c = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(c.reason.as_deref(), Some(MIN_REPLICAS_UNAVAILABLE));
        assert_eq!(
            c.message.as_deref(),
            Some("Deployment does not have minimum availability.")
        );
    }

    #[test]
    fn setting_a_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", NEW_RS_CREATED, "a".into(), t(0)),
        );
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", NEW_RS_CREATED, "b".into(), t(5)),
        );
        assert_eq!(
            get_condition(&s, PROGRESSING).unwrap().message.as_deref(),
            Some("a"),
            "same reason: untouched"
        );
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", RS_UPDATED, "c".into(), t(9)),
        );
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t(0))));
        assert_eq!(c.last_update_time, Some(Time(t(9))));
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "False", TIMED_OUT, "d".into(), t(20)),
        );
        assert_eq!(
            get_condition(&s, PROGRESSING).unwrap().last_transition_time,
            Some(Time(t(20)))
        );
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_finished_rollout_reports_new_replica_set_available() {
        let new = rs("web-abc", 3, 3, 3);
        let s = rollout_status(std::slice::from_ref(&new), Some(&new), &d(3), t(0));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
    }

    #[test]
    fn progress_refreshes_the_update_time_and_keeps_the_transition() {
        let mut dep = d(3);
        let mut before = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            ..Default::default()
        };
        set_condition(
            &mut before,
            new_condition(PROGRESSING, "True", NEW_RS_CREATED, "x".into(), t(0)),
        );
        dep.status = Some(before);
        let new = rs("web-abc", 2, 2, 0);
        let old = rs("web-old", 2, 2, 2);
        let s = rollout_status(&[old, new.clone()], Some(&new), &dep, t(30));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-abc\" is progressing.")
        );
        assert_eq!(c.last_transition_time, Some(Time(t(0))));
        assert_eq!(c.last_update_time, Some(Time(t(30))));
    }

    #[test]
    fn no_progress_past_the_deadline_times_out_and_requeues_before() {
        let mut dep = d(3);
        let mut before = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            ready_replicas: Some(2),
            available_replicas: Some(2),
            observed_generation: Some(2),
            ..Default::default()
        };
        set_condition(
            &mut before,
            new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), t(0)),
        );
        dep.status = Some(before);
        let new = rs("web-abc", 1, 1, 0);
        let old = rs("web-old", 2, 2, 2);
        let all = [old, new.clone()];
        let early = rollout_status(&all, Some(&new), &dep, t(100));
        assert_eq!(
            get_condition(&early, PROGRESSING)
                .unwrap()
                .reason
                .as_deref(),
            Some(RS_UPDATED)
        );
        assert_eq!(
            requeue_after(&dep, &early, t(100)),
            Some(Duration::from_secs(501))
        );
        let late = rollout_status(&all, Some(&new), &dep, t(601));
        let c = get_condition(&late, PROGRESSING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has timed out progressing.")
        );
        assert_eq!(requeue_after(&dep, &late, t(601)), Some(Duration::ZERO));
    }

    #[test]
    fn without_a_deadline_there_is_no_progressing_condition() {
        let mut dep = d(1);
        dep.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        let mut before = DeploymentStatus::default();
        set_condition(
            &mut before,
            new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), t(0)),
        );
        dep.status = Some(before);
        let new = rs("web-abc", 1, 1, 1);
        let s = rollout_status(std::slice::from_ref(&new), Some(&new), &dep, t(1));
        assert!(get_condition(&s, PROGRESSING).is_none());
        assert!(requeue_after(&dep, &s, t(1)).is_none());
    }

    #[test]
    fn normalized_statuses_compare_equal_to_what_is_read_back() {
        let s = DeploymentStatus {
            replicas: Some(0),
            conditions: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(normalize(&s), DeploymentStatus::default());
    }
}
