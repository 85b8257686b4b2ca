//! The deployment controller's pure helpers (upstream's `deployment/util`): the
//! pod-template-hash, revision and replica annotations, maxSurge/maxUnavailable
//! resolution, which ReplicaSet is new and which are old, replica sums and the
//! proportions a mid-rollout scale gives each ReplicaSet.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// The label the controller adds to a ReplicaSet's selector, template and labels.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and, copied, of its Deployment).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions a ReplicaSet that became new again once had.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled by it.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The extensions/v1beta1 rollbackTo, kept as an annotation in apps/v1.
pub const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// kubectl apply's record, never copied to ReplicaSets.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream's cap on the revision-history annotation's length.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Errors of the pure helpers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UtilError {
    /// An IntOrString is neither an integer nor a percentage.
    #[error("invalid value for IntOrString: {0:?}")]
    IntOrString(String),
    /// The strategy is neither RollingUpdate nor Recreate.
    #[error("deployment type {0:?} isn't supported")]
    Strategy(String),
}

// ---------------------------------------------------------------------------------
// pod-template-hash

pub use crate::controller_utils::compute_hash;

/// Drops nulls, empty objects and empty arrays, as upstream's semantic equality treats
/// nil and empty maps and slices alike.
fn normalized(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| normalized(v).map(|v| (k, v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Array(items) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|v| normalized(v).unwrap_or(Value::Null))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => Some(other),
    }
}

/// Whether two templates are equal but for the pod-template-hash label (upstream's
/// `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut()
            && let Some(labels) = meta.labels.as_mut()
        {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        normalized(serde_json::to_value(t).unwrap_or(Value::Null))
    };
    strip(a) == strip(b)
}

// ---------------------------------------------------------------------------------
// IntOrString and fenceposts

/// Upstream's `GetScaledValueFromIntOrPercent`: an integer as is, a percentage of
/// `total` rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, UtilError> {
    match value {
        IntOrString::Int(v) => Ok(*v),
        IntOrString::String(s) => {
            let (digits, percent) = match s.strip_suffix('%') {
                Some(d) => (d, true),
                None => (s.as_str(), false),
            };
            let v: i64 = digits
                .parse()
                .map_err(|_| UtilError::IntOrString(s.clone()))?;
            if !percent {
                return i32::try_from(v).map_err(|_| UtilError::IntOrString(s.clone()));
            }
            // validation bounds maxUnavailable at 100% but not maxSurge: a huge
            // percentage is an error here, not an overflow
            let scaled = v
                .checked_mul(i64::from(total))
                .ok_or_else(|| UtilError::IntOrString(s.clone()))?;
            let result = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(result).map_err(|_| UtilError::IntOrString(s.clone()))
        }
    }
}

/// Resolves maxSurge (rounded up) and maxUnavailable (rounded down) against `desired`;
/// when both come to zero maxUnavailable is 1, as upstream's `ResolveFenceposts`, so a
/// rollout can always move.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), UtilError> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// The Deployment's spec.replicas (defaulted to 1 by the apiserver).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's spec.replicas (defaulted to 1 by the apiserver).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets a ReplicaSet's spec.replicas.
pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// The strategy type, `RollingUpdate` when unset (the apiserver's default).
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// Whether the Deployment rolls (upstream's `IsRollingUpdate`).
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".to_owned());
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&default);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    // validation refuses bad values; should one slip through, move one pod at a time
    resolve_fenceposts(Some(surge), Some(unavailable), replicas(d)).unwrap_or((0, 1))
}

/// The surge a rolling Deployment may take (upstream's `MaxSurge`); 0 for Recreate.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

/// The pods a rolling Deployment may have unavailable, at most its replicas (upstream's
/// `MaxUnavailable`); 0 for Recreate or zero replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

// ---------------------------------------------------------------------------------
// revisions and annotations

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision of an object: 0 without the annotation, an error for a bad one
/// (upstream's `Revision`).
pub fn revision(meta: &ObjectMeta) -> Result<i64, std::num::ParseIntError> {
    match annotation(meta, REVISION_ANNOTATION) {
        None => Ok(0),
        Some(v) => v.parse(),
    }
}

/// The highest revision among `rss`, skipping unparseable ones (upstream's
/// `MaxRevision`).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(&rs.metadata).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// The second-highest revision (upstream's `LastRevision`: the one before the current).
pub fn last_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    let (mut max, mut second) = (0, 0);
    for v in rss.into_iter().filter_map(|rs| revision(&rs.metadata).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(&rs.metadata, key)?.parse().ok()
}

/// The desired-replicas annotation.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The max-replicas annotation.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Annotations the Deployment keeps to itself (upstream's `annotationsToSkip`).
pub fn is_controller_annotation(key: &str) -> bool {
    skip_copy(key)
}

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// Copies the Deployment's annotations onto the ReplicaSet, but for the controller's
/// own and kubectl's apply record; whether anything changed.
pub fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let target = rs.metadata.annotations.get_or_insert_with(Default::default);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets desired-replicas and max-replicas; whether either changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(Default::default);
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_owned(), value);
            changed = true;
        }
    }
    changed
}

/// Whether desired-replicas or max-replicas differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Brings the new ReplicaSet's annotations up to date (upstream's
/// `SetNewReplicaSetAnnotations`): the Deployment's annotations, the revision raised to
/// `new_revision` (a ReplicaSet that had a lower revision is being rolled back to, so
/// its old revision joins the revision history), and for a ReplicaSet about to be
/// created the replica annotations. Whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(Default::default);
    let old = annotations.get(REVISION_ANNOTATION).cloned();
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(v) => v,
            // upstream leaves a ReplicaSet with a garbled revision alone
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_owned(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_owned(), old);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_LENGTH_IN_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS {
                    revisions.drain(..start);
                    revisions.push(&old);
                    let joined = revisions.join(",");
                    annotations.insert(REVISION_HISTORY_ANNOTATION.to_owned(), joined);
                }
            }
        }
    }
    if !exists
        && set_replicas_annotations(rs, replicas(d), replicas(d).saturating_add(max_surge(d)))
    {
        changed = true;
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(Default::default);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.to_owned(), revision.to_owned());
    true
}

// ---------------------------------------------------------------------------------
// which ReplicaSets

/// Oldest first, ties by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn sort_by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Lowest revision first, ties oldest first (upstream's `ReplicaSetsByRevision`).
pub fn sort_by_revision(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let ra = revision(&a.metadata).unwrap_or(0);
        let rb = revision(&b.metadata).unwrap_or(0);
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ra.cmp(&rb)
            .then_with(|| ta.cmp(&tb))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Largest first, ties newer first (upstream's `ReplicaSetsBySizeNewer`, for scaling up).
pub fn sort_by_size_newer(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| tb.cmp(&ta))
            .then_with(|| b.metadata.name.cmp(&a.metadata.name))
    });
}

/// Largest first, ties older first (upstream's `ReplicaSetsBySizeOlder`, for scaling
/// down).
pub fn sort_by_size_older(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| ta.cmp(&tb))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// The ReplicaSet whose template is the Deployment's, the oldest if several
/// (upstream's `FindNewReplicaSet`).
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    let mut sorted = rss.to_vec();
    sort_by_creation(&mut sorted);
    let wanted = template(d);
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs_template(rs), &wanted))
}

/// Every ReplicaSet but the new one (upstream's `FindOldReplicaSets`, all of them).
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_uid = find_new_replica_set(d, rss).and_then(|rs| rs.metadata.uid);
    rss.iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .cloned()
        .collect()
}

/// ReplicaSets with spec.replicas above 0 (upstream's `FilterActiveReplicaSets`).
pub fn active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect()
}

/// Sum of spec.replicas.
pub fn replica_count(rss: &[ReplicaSet]) -> i32 {
    // saturating: a user may give many ReplicaSets huge sizes
    rss.iter().map(rs_replicas).fold(0, i32::saturating_add)
}

/// Sum of status.replicas.
pub fn actual_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter()
        .filter_map(|rs| rs.status.as_ref())
        .map(|s| s.replicas)
        .fold(0, i32::saturating_add)
}

/// Sum of status.readyReplicas.
pub fn ready_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter()
        .filter_map(|rs| rs.status.as_ref())
        .map(|s| s.ready_replicas.unwrap_or(0))
        .fold(0, i32::saturating_add)
}

/// Sum of status.availableReplicas.
pub fn available_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter()
        .filter_map(|rs| rs.status.as_ref())
        .map(|s| s.available_replicas.unwrap_or(0))
        .fold(0, i32::saturating_add)
}

/// A ReplicaSet's status.availableReplicas.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The only active ReplicaSet, or the newest when none is active; `None` when several
/// are active and proportional scaling is needed (upstream's `FindActiveOrLatest`).
pub fn find_active_or_latest(new: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Option<ReplicaSet> {
    if new.is_none() && old.is_empty() {
        return None;
    }
    let mut old = old.to_vec();
    sort_by_creation(&mut old);
    old.reverse();
    let mut all = old.clone();
    all.extend(new.cloned());
    let mut active = active(&all);
    match active.len() {
        0 => new.cloned().or_else(|| old.first().cloned()),
        1 => active.pop(),
        _ => None,
    }
}

/// The replicas the new ReplicaSet should have now (upstream's `NewRSNewReplicas`):
/// for RollingUpdate as many as maxSurge leaves room for, never above the Deployment's
/// replicas; for Recreate all of them.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all: &[ReplicaSet],
    new: &ReplicaSet,
) -> Result<i32, UtilError> {
    match strategy_type(d) {
        "RollingUpdate" => {
            let surge = max_surge(d);
            let current = replica_count(all);
            let max_total = replicas(d).saturating_add(surge);
            if current >= max_total {
                return Ok(rs_replicas(new));
            }
            let up = max_total
                .saturating_sub(current)
                .min(replicas(d).saturating_sub(rs_replicas(new)));
            Ok(rs_replicas(new).saturating_add(up))
        }
        "Recreate" => Ok(replicas(d)),
        other => Err(UtilError::Strategy(other.to_owned())),
    }
}

/// Whether the new ReplicaSet holds every replica and both sides agree on it (upstream's
/// `IsSaturated`).
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    rs_replicas(rs) == replicas(d) && desired == replicas(d) && rs_available(rs) == replicas(d)
}

/// The replicas `rs` gains (or loses, negative) when the Deployment is scaled
/// mid-rollout (upstream's `GetReplicaSetProportion`).
pub fn replica_set_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let max_now = replicas(d).saturating_add(max_surge(d));
    let before = match max_replicas_annotation(rs) {
        Some(v) if v != 0 => v,
        // edited by hand: fall back to the Deployment's current size
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if before == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max_now) / f64::from(before);
    // Go's math.Round rounds half away from zero, as Rust's f64::round
    size.round() as i32 - rs_replicas(rs)
}

/// Fixtures shared by the module's tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A template labelled app=web running `image`.
    pub(crate) fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::template as tpl;
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };

    fn ios(s: &str) -> IntOrString {
        IntOrString::String(s.to_owned())
    }

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("d".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                template: tpl("nginx"),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
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

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(scaled_value(&ios("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&ios("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&ios("7"), 10, false), Ok(7));
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, true), Ok(4));
        assert!(scaled_value(&ios("x%"), 10, true).is_err());
    }

    // upstream's TestResolveFenceposts cases
    #[test]
    fn fenceposts_resolve_as_upstream() {
        let cases = [
            ("0", "0", 0, Ok((0, 1))),
            ("39%", "39%", 10, Ok((4, 3))),
            ("oops", "1", 10, Err(())),
            ("55%", "urg", 10, Err(())),
            ("5", "1", 10, Ok((5, 1))),
            ("1%", "0", 100, Ok((1, 0))),
            ("0", "0%", 100, Ok((0, 1))),
        ];
        for (surge, unavailable, desired, want) in cases {
            let got = resolve_fenceposts(Some(&ios(surge)), Some(&ios(unavailable)), desired)
                .map_err(|_| ());
            assert_eq!(got, want, "surge {surge} unavailable {unavailable}");
        }
        assert_eq!(resolve_fenceposts(None, None, 5), Ok((0, 1)));
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_for_recreate_or_no_replicas() {
        assert_eq!(max_unavailable(&deployment(10, ios("25%"), ios("25%"))), 2);
        assert_eq!(max_surge(&deployment(10, ios("25%"), ios("25%"))), 3);
        assert_eq!(
            max_unavailable(&deployment(2, ios("0"), IntOrString::Int(5))),
            2
        );
        assert_eq!(max_unavailable(&deployment(0, ios("1"), ios("1"))), 0);
        let mut recreate = deployment(3, ios("1"), ios("1"));
        recreate.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!(max_unavailable(&recreate), 0);
        assert_eq!(max_surge(&recreate), 0);
    }

    #[test]
    fn hash_is_stable_changes_with_template_and_collisions() {
        let a = compute_hash(&tpl("nginx:1"), None);
        assert_eq!(a, compute_hash(&tpl("nginx:1"), None));
        assert_ne!(a, compute_hash(&tpl("nginx:2"), None));
        assert_ne!(a, compute_hash(&tpl("nginx:1"), Some(1)));
        assert_ne!(
            compute_hash(&tpl("nginx:1"), Some(1)),
            compute_hash(&tpl("nginx:1"), Some(2))
        );
        assert!(
            a.bytes()
                .all(|b| crate::controller_utils::SAFE_ALPHABET.contains(&b)),
            "{a}"
        );
        assert!(!a.is_empty() && a.len() <= 10);
    }

    #[test]
    fn safe_encode_maps_each_byte_into_the_alphabet() {
        // '0' is 48: 48 % 27 = 21 -> '4'; '9' is 57: 57 % 27 = 3 -> 'f'
        assert_eq!(crate::controller_utils::safe_encode("0"), "4");
        assert_eq!(crate::controller_utils::safe_encode("09"), "4f");
    }

    #[test]
    fn templates_compare_ignoring_the_hash_label_and_empty_maps() {
        let mut with_hash = tpl("nginx");
        with_hash
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&with_hash, &tpl("nginx")));
        assert!(!equal_ignore_hash(&with_hash, &tpl("nginx:2")));
        let mut empty_annotations = tpl("nginx");
        empty_annotations.metadata.as_mut().unwrap().annotations = Some(Default::default());
        assert!(equal_ignore_hash(&empty_annotations, &tpl("nginx")));
    }

    #[test]
    fn new_replica_set_annotations_bump_revision_and_keep_history() {
        let mut d = deployment(3, ios("1"), ios("0"));
        d.metadata.annotations = Some(
            [
                ("team".to_owned(), "a".to_owned()),
                (LAST_APPLIED_ANNOTATION.to_owned(), "{}".to_owned()),
                (REVISION_ANNOTATION.to_owned(), "9".to_owned()),
            ]
            .into(),
        );
        let mut fresh = rs("x", 0, 0);
        assert!(set_new_replica_set_annotations(&d, &mut fresh, 1, false));
        let a = fresh.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "1");
        assert_eq!(a["team"], "a");
        assert_eq!(a[DESIRED_REPLICAS_ANNOTATION], "3");
        assert_eq!(a[MAX_REPLICAS_ANNOTATION], "4");
        assert!(!a.contains_key(LAST_APPLIED_ANNOTATION));
        assert!(!a.contains_key(REVISION_HISTORY_ANNOTATION));
        // nothing new: unchanged
        assert!(!set_new_replica_set_annotations(&d, &mut fresh, 1, true));
        // rolled back to: revision 3, history keeps 1
        assert!(set_new_replica_set_annotations(&d, &mut fresh, 3, true));
        let a = fresh.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[REVISION_HISTORY_ANNOTATION], "1");
        assert!(set_new_replica_set_annotations(&d, &mut fresh, 5, true));
        assert_eq!(
            fresh.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
            "1,3"
        );
        // a lower revision never lowers it
        assert!(!set_new_replica_set_annotations(&d, &mut fresh, 2, true));
        assert_eq!(
            fresh.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION],
            "5"
        );
    }

    #[test]
    fn revisions_max_and_last() {
        let with_rev = |name: &str, r: &str| {
            let mut x = rs(name, 0, 0);
            x.metadata.annotations = Some([(REVISION_ANNOTATION.to_owned(), r.to_owned())].into());
            x
        };
        let rss = [
            with_rev("a", "1"),
            with_rev("b", "4"),
            with_rev("c", "junk"),
            with_rev("d", "2"),
        ];
        assert_eq!(max_revision(&rss), 4);
        assert_eq!(last_revision(&rss), 2);
        assert_eq!(max_revision(&[]), 0);
    }

    #[test]
    fn new_and_old_replica_sets_are_told_apart_by_template() {
        let d = deployment(3, ios("1"), ios("0"));
        let mut current = rs("current", 1, 1);
        current.spec.as_mut().unwrap().template = Some(tpl("nginx"));
        let mut old = rs("old", 1, 1);
        old.spec.as_mut().unwrap().template = Some(tpl("nginx:old"));
        let rss = vec![old.clone(), current.clone()];
        assert_eq!(
            find_new_replica_set(&d, &rss).and_then(|r| r.metadata.name),
            Some("current".into())
        );
        let olds = find_old_replica_sets(&d, &rss);
        assert_eq!(olds.len(), 1);
        assert_eq!(olds[0].metadata.name.as_deref(), Some("old"));
        assert_eq!(find_old_replica_sets(&d, &[old]).len(), 1);
    }

    // upstream's TestNewRSNewReplicas
    #[test]
    fn new_rs_replicas_respect_surge() {
        let d = deployment(1, IntOrString::Int(1), IntOrString::Int(1));
        let new = rs("new", 0, 0);
        let old = rs("old", 1, 1);
        assert_eq!(
            new_rs_new_replicas(&d, &[new.clone(), old.clone()], &new),
            Ok(1)
        );
        let d = deployment(5, IntOrString::Int(1), IntOrString::Int(1));
        let new = rs("new", 1, 1);
        let old = rs("old", 5, 5);
        assert_eq!(new_rs_new_replicas(&d, &[new.clone(), old], &new), Ok(1));
        let old = rs("old", 3, 3);
        assert_eq!(new_rs_new_replicas(&d, &[new.clone(), old], &new), Ok(3));
        let mut recreate = deployment(5, ios("1"), ios("1"));
        recreate.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!(
            new_rs_new_replicas(&recreate, std::slice::from_ref(&new), &new),
            Ok(5)
        );
    }

    #[test]
    fn active_or_latest_needs_at_most_one_active() {
        let a = rs("a", 0, 0);
        let b = rs("b", 2, 2);
        let c = rs("c", 1, 1);
        assert_eq!(
            find_active_or_latest(Some(&a), std::slice::from_ref(&b)).and_then(|r| r.metadata.name),
            Some("b".into())
        );
        assert!(find_active_or_latest(Some(&c), &[b]).is_none());
        assert_eq!(
            find_active_or_latest(Some(&a), &[rs("z", 0, 0)]).and_then(|r| r.metadata.name),
            Some("a".into())
        );
        assert!(find_active_or_latest(None, &[]).is_none());
    }

    #[test]
    fn saturation_needs_the_annotation_and_availability() {
        let d = deployment(3, ios("1"), ios("0"));
        let mut full = rs("n", 3, 3);
        assert!(!is_saturated(&d, Some(&full)), "no annotation");
        set_replicas_annotations(&mut full, 3, 4);
        assert!(is_saturated(&d, Some(&full)));
        let mut unavailable = full.clone();
        unavailable.status.as_mut().unwrap().available_replicas = Some(2);
        assert!(!is_saturated(&d, Some(&unavailable)));
        assert!(!is_saturated(&d, None));
    }

    #[test]
    fn proportions_follow_max_replicas_before_the_scale() {
        // deployment scaled 10 -> 20 with surge 0: an RS holding 5 of 10 gets 5 more
        let d = deployment(20, IntOrString::Int(0), IntOrString::Int(1));
        let mut half = rs("h", 5, 5);
        set_replicas_annotations(&mut half, 10, 10);
        assert_eq!(replica_set_proportion(&half, &d, 10, 0), 5);
        // never more than what is left to add
        assert_eq!(replica_set_proportion(&half, &d, 10, 8), 2);
        // scaling to zero removes everything
        let zero = deployment(0, IntOrString::Int(0), IntOrString::Int(1));
        assert_eq!(replica_set_proportion(&half, &zero, -5, 0), -5);
        assert_eq!(replica_set_proportion(&rs("e", 0, 0), &d, 10, 0), 0);
    }
}
