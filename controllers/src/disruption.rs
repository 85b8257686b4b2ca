//! The disruption controller: keeps each PodDisruptionBudget's status, which the
//! eviction API (`kubectl drain`) reads to decide whether a pod may go, as upstream's
//! `disruption` controller.
//!
//! For a budget, the pods its selector picks in its namespace are counted: those
//! ready and not being deleted are healthy, except pods the eviction API recorded in
//! `status.disruptedPods` less than two minutes ago. With `minAvailable` as a number,
//! the expected count is the number of pods and the desired healthy count that
//! number; with a percentage or `maxUnavailable`, the expected count is the sum of the
//! scale of the pods' controllers (Deployments through their ReplicaSets, ReplicaSets,
//! ReplicationControllers, StatefulSets), and percentages round up. Then
//! `disruptionsAllowed = max(0, currentHealthy - desiredHealthy)` and the
//! `DisruptionAllowed` condition says `SufficientPods`, `InsufficientPods` or
//! `SyncFailed`. Budgets are looked at again every 30 seconds, as upstream's resync,
//! so a controller scaled without pod changes is noticed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};

use crate::Context;
use crate::controller_utils::{controller_of, is_pod_ready, label_selector};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name (its service account is `disruption-controller`).
pub const NAME: &str = "disruption-controller";
/// How long an eviction recorded in `disruptedPods` keeps its pod out of the count.
const DISRUPTED_TTL: Duration = Duration::from_secs(120);
/// Upstream's informer resync for budgets.
const RESYNC: Duration = Duration::from_secs(30);
const WORKERS: usize = 1;

/// Why a budget's counts could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The counts of one budget.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    expected: i32,
    desired_healthy: i32,
    current_healthy: i32,
}

/// A percentage or number of `total`, rounding up as upstream's
/// `GetScaledValueFromIntOrPercent(.., true)`.
fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let product = percent * i64::from(total);
            Ok(i32::try_from((product + 99).div_euclid(100)).unwrap_or(i32::MAX))
        }
    }
}

struct Controller {
    cx: Context,
    queue: Arc<WorkQueue<String>>,
    budgets: Informer<PodDisruptionBudget>,
    pods: Informer<Pod>,
    replica_sets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    stateful_sets: Informer<StatefulSet>,
    replication_controllers: Informer<ReplicationController>,
}

impl Controller {
    /// The scale of a pod's controller, by its uid (upstream's finders); `None` for a
    /// pod no controller owns.
    fn controller_scale(&self, pod: &Pod) -> Result<Option<(String, i32)>, String> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let no_controller = || {
            format!(
                "found no controllers for pod {:?}",
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        };
        let Some(owner) = controller_of(&pod.metadata) else {
            return Ok(None);
        };
        let group = owner.api_version.split('/').next().unwrap_or_default();
        match (group, owner.kind.as_str()) {
            ("apps", "ReplicaSet") => {
                let rs = self
                    .replica_sets
                    .get(namespace, &owner.name)
                    .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .ok_or_else(no_controller)?;
                // a ReplicaSet of a Deployment counts as the Deployment
                if let Some(d) = controller_of(&rs.metadata).filter(|d| d.kind == "Deployment") {
                    if let Some(deployment) = self
                        .deployments
                        .get(namespace, &d.name)
                        .filter(|x| x.metadata.uid.as_deref() == Some(d.uid.as_str()))
                    {
                        let replicas = deployment
                            .spec
                            .as_ref()
                            .and_then(|s| s.replicas)
                            .unwrap_or(1);
                        return Ok(Some((d.uid.clone(), replicas)));
                    }
                }
                let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                Ok(Some((owner.uid.clone(), replicas)))
            }
            ("apps", "StatefulSet") => {
                let ss = self
                    .stateful_sets
                    .get(namespace, &owner.name)
                    .filter(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .ok_or_else(no_controller)?;
                Ok(Some((
                    owner.uid.clone(),
                    ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )))
            }
            ("v1", "ReplicationController") => {
                let rc = self
                    .replication_controllers
                    .get(namespace, &owner.name)
                    .filter(|r| r.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .ok_or_else(no_controller)?;
                Ok(Some((
                    owner.uid.clone(),
                    rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )))
            }
            _ => Err(no_controller()),
        }
    }

    /// Upstream's `getExpectedPodCount` and `countHealthyPods`.
    /// Pods no controller owns are named in `unmanaged` and left out of the expected
    /// count, as upstream's.
    fn counts(
        &self,
        budget: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
        disrupted: &BTreeMap<String, Time>,
        unmanaged: &mut Vec<String>,
    ) -> Result<Counts, String> {
        let spec = budget.spec.clone().unwrap_or_default();
        let mut expected_from_controllers = || -> Result<i32, String> {
            let mut seen = HashSet::new();
            let mut total = 0i32;
            for pod in pods {
                let Some((uid, replicas)) = self.controller_scale(pod)? else {
                    unmanaged.push(pod.metadata.name.clone().unwrap_or_default());
                    continue;
                };
                if seen.insert(uid) {
                    total = total.saturating_add(replicas);
                }
            }
            Ok(total)
        };
        let (expected, desired_healthy) = match (&spec.max_unavailable, &spec.min_available) {
            (Some(max), _) => {
                let expected = expected_from_controllers()?;
                let max = scaled(max, expected)?;
                (expected, expected.saturating_sub(max).max(0))
            }
            (None, Some(IntOrString::Int(min))) => (pods.len() as i32, *min),
            (None, Some(min)) => {
                let expected = expected_from_controllers()?;
                (expected, scaled(min, expected)?)
            }
            (None, None) => (0, 0),
        };
        let current_healthy = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
            .filter(|p| is_pod_ready(p))
            .count() as i32;
        Ok(Counts {
            expected,
            desired_healthy,
            current_healthy,
        })
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(budget) = self.budgets.get(namespace, name) else {
            return Ok(());
        };
        let now = jiff::Timestamp::now();
        // in policy/v1 a missing selector selects nothing, an empty one every pod
        let selector = label_selector(budget.spec.as_ref().and_then(|s| s.selector.as_ref()));
        let pods: Vec<Arc<Pod>> = match &selector {
            Ok(selector) => self
                .pods
                .list_namespace(namespace)
                .into_iter()
                .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
                .collect(),
            Err(_) => Vec::new(),
        };
        if pods.is_empty() {
            self.cx.recorder.event(
                &*budget,
                "Normal",
                "NoPods",
                "No matching pods found".to_owned(),
                self.cx.name,
            );
        }
        let Disruptions {
            current: disrupted,
            recheck,
            not_deleted,
        } = current_disruptions(&budget, &pods, now);
        for pod in not_deleted {
            self.cx.recorder.event(
                &*pod,
                "Warning",
                "NotDeleted",
                format!("Pod was expected by PDB {namespace}/{name} to be deleted but it wasn't"),
                self.cx.name,
            );
        }
        let mut unmanaged = Vec::new();
        let counts = match selector {
            Err(e) => Err(e.to_string()),
            Ok(_) => self.counts(&budget, &pods, &disrupted, &mut unmanaged),
        };
        match &counts {
            Err(e) => self.cx.recorder.event(
                &*budget,
                "Warning",
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
                self.cx.name,
            ),
            Ok(_) if !unmanaged.is_empty() => {
                tracing::debug!(budget = %key, pods = ?unmanaged, "found unmanaged pods associated with this PDB");
                self.cx.recorder.event(
                    &*budget,
                    "Warning",
                    "UnmanagedPods",
                    format!(
                        "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                        selector_text(&budget)
                    ),
                    self.cx.name,
                );
            }
            Ok(_) => {}
        }
        if let Some(at) = recheck {
            // an eviction's pod should be gone by then; if not, it counts again
            let after = at.duration_since(now).unsigned_abs();
            self.queue.add_after(key.to_owned(), after);
        }
        let status = new_status(&budget, counts, disrupted, now);
        if budget
            .status
            .as_ref()
            .is_some_and(|s| same_status(s, &status))
        {
            return Ok(());
        }
        let mut updated = (*budget).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.cx.client.clone(), namespace);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            // gone, or changed meanwhile: the change brings a new sync
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// When an eviction recorded at `at` should have deleted its pod.
fn expected_deletion(at: &Time) -> Option<jiff::Timestamp> {
    at.0.checked_add(jiff::SignedDuration::from_secs(
        DISRUPTED_TTL.as_secs() as i64
    ))
    .ok()
}

/// The evictions still in force (upstream's `buildDisruptedPodMap`): those in
/// `status.disruptedPods` whose pods exist, are not yet being deleted and were evicted
/// less than two minutes ago; with when the earliest of them expires, and the pods
/// whose eviction expired without them going (they count again).
struct Disruptions {
    current: BTreeMap<String, Time>,
    recheck: Option<jiff::Timestamp>,
    not_deleted: Vec<Arc<Pod>>,
}

fn current_disruptions(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Disruptions {
    let mut out = Disruptions {
        current: BTreeMap::new(),
        recheck: None,
        not_deleted: Vec::new(),
    };
    let Some(recorded) = budget
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.as_ref())
    else {
        return out;
    };
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        match expected_deletion(at) {
            Some(until) if until > now => {
                out.recheck = Some(out.recheck.map_or(until, |r| r.min(until)));
                out.current.insert(name, at.clone());
            }
            _ => out.not_deleted.push(pod.clone()),
        }
    }
    out
}

/// The budget's selector as upstream's message prints it (Go's `%v` of a
/// `*LabelSelector`).
fn selector_text(budget: &PodDisruptionBudget) -> String {
    let Some(selector) = budget.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return "nil".to_owned();
    };
    let labels: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: Vec<String> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
        labels.join(""),
        expressions.join("")
    )
}

/// The budget's new status from its counts (or why they are unknown).
fn new_status(
    budget: &PodDisruptionBudget,
    counts: Result<Counts, String>,
    disrupted: BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> PodDisruptionBudgetStatus {
    let old = budget.status.clone().unwrap_or_default();
    let generation = budget.metadata.generation;
    let (status, reason, message, counts) = match counts {
        Ok(c) => {
            // a budget that expects no pods allows nothing: its first pods may appear
            // before it is looked at again
            let allowed = if c.expected <= 0 {
                0
            } else {
                c.current_healthy.saturating_sub(c.desired_healthy).max(0)
            };
            let (status, reason) = if allowed > 0 {
                ("True", "SufficientPods")
            } else {
                ("False", "InsufficientPods")
            };
            (status, reason, String::new(), Some((c, allowed)))
        }
        Err(e) => ("False", "SyncFailed", e, None),
    };
    let previous = old
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let condition = Condition {
        type_: "DisruptionAllowed".to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(now),
        },
    };
    let mut conditions: Vec<Condition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "DisruptionAllowed")
        .collect();
    conditions.push(condition);
    match counts {
        Some((c, allowed)) => PodDisruptionBudgetStatus {
            conditions: Some(conditions),
            current_healthy: c.current_healthy,
            desired_healthy: c.desired_healthy,
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            disruptions_allowed: allowed,
            expected_pods: c.expected,
            observed_generation: generation,
        },
        // upstream's failSafe: no disruption allowed until the counts are known
        None => PodDisruptionBudgetStatus {
            conditions: Some(conditions),
            disruptions_allowed: 0,
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            observed_generation: generation,
            ..old
        },
    }
}

/// Whether two statuses say the same, transition times aside.
fn same_status(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let queue = WorkQueue::<String>::new();
    let controller = Arc::new(Controller {
        queue: queue.clone(),
        budgets: cx.informers.informer::<PodDisruptionBudget>(),
        pods: cx.informers.informer::<Pod>(),
        replica_sets: cx.informers.informer::<ReplicaSet>(),
        deployments: cx.informers.informer::<Deployment>(),
        stateful_sets: cx.informers.informer::<StatefulSet>(),
        replication_controllers: cx.informers.informer::<ReplicationController>(),
        cx,
    });
    let q = queue.clone();
    controller.budgets.add_handler(move |change| {
        let (Change::Added(b) | Change::Updated { new: b, .. } | Change::Deleted(b)) = change;
        q.add(key_of(&***b));
    });
    let q = queue.clone();
    let budgets = controller.budgets.clone();
    controller.pods.add_handler(move |change| {
        let (old, new) = match change {
            Change::Added(p) | Change::Deleted(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
        };
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        for budget in budgets.list_namespace(&namespace) {
            let Ok(selector) =
                label_selector(budget.spec.as_ref().and_then(|s| s.selector.as_ref()))
            else {
                continue;
            };
            let selects =
                |p: &Pod| selector.matches(&p.metadata.labels.clone().unwrap_or_default());
            if selects(new) || old.is_some_and(|o| selects(o)) {
                q.add(key_of(&*budget));
            }
        }
    });
    Box::pin(async move {
        controller.budgets.wait_synced().await;
        controller.pods.wait_synced().await;
        controller.replica_sets.wait_synced().await;
        controller.deployments.wait_synced().await;
        controller.stateful_sets.wait_synced().await;
        controller.replication_controllers.wait_synced().await;
        let resync = {
            let (queue, budgets) = (queue.clone(), controller.budgets.clone());
            async move {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for budget in budgets.list() {
                        queue.add(key_of(&*budget));
                    }
                }
            }
        };
        let work = queue.run(WORKERS, None, NAME, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync(&key).await }
        });
        tokio::select! {
            () = work => {}
            () = resync => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "default", "generation": 2},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 10), Ok(1));
        assert_eq!(scaled(&IntOrString::Int(4), 10), Ok(4));
        assert!(scaled(&IntOrString::String("half".into()), 10).is_err());
    }

    #[test]
    fn allowed_disruptions_and_the_condition_follow_the_counts() {
        let b = budget(json!({"minAvailable": 2}));
        let now = jiff::Timestamp::now();
        let s = new_status(
            &b,
            Ok(Counts {
                expected: 3,
                desired_healthy: 2,
                current_healthy: 3,
            }),
            BTreeMap::new(),
            now,
        );
        assert_eq!(s.disruptions_allowed, 1);
        assert_eq!(s.expected_pods, 3);
        assert_eq!(s.observed_generation, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );
        let s = new_status(
            &b,
            Ok(Counts {
                expected: 3,
                desired_healthy: 2,
                current_healthy: 1,
            }),
            BTreeMap::new(),
            now,
        );
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.conditions.as_ref().unwrap()[0].reason, "InsufficientPods");
        let failed = new_status(
            &b,
            Err("found no controllers for pod \"x\"".into()),
            BTreeMap::new(),
            now,
        );
        assert_eq!(failed.disruptions_allowed, 0);
        let c = &failed.conditions.as_ref().unwrap()[0];
        assert_eq!(c.reason, "SyncFailed");
        assert_eq!(c.message, "found no controllers for pod \"x\"");
    }

    #[test]
    fn evictions_count_until_their_pods_go_or_two_minutes_pass() {
        let now = jiff::Timestamp::now();
        let long_ago = now - jiff::SignedDuration::from_secs(600);
        let b: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"minAvailable": 1},
            "status": {"disruptedPods": {"old": long_ago.to_string(), "new": now.to_string(),
                    "gone": now.to_string(), "deleting": now.to_string()},
                "currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
        }))
        .unwrap();
        let pod = |name: &str, deleting: bool| -> Arc<Pod> {
            let mut meta = json!({"name": name, "namespace": "default"});
            if deleting {
                meta["deletionTimestamp"] = json!(now.to_string());
            }
            Arc::new(serde_json::from_value(json!({"metadata": meta})).unwrap())
        };
        let pods = [pod("old", false), pod("new", false), pod("deleting", true)];
        let d = current_disruptions(&b, &pods, now);
        let kept: Vec<&String> = d.current.keys().collect();
        assert_eq!(kept, ["new"]);
        let expired: Vec<_> = d
            .not_deleted
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(expired, ["old"]);
        assert_eq!(d.recheck, Some(now + jiff::SignedDuration::from_secs(120)));
        let s = new_status(
            &b,
            Ok(Counts {
                expected: 1,
                desired_healthy: 1,
                current_healthy: 1,
            }),
            d.current,
            now,
        );
        let kept: Vec<&String> = s.disrupted_pods.as_ref().unwrap().keys().collect();
        assert_eq!(kept, ["new"]);
    }

    #[test]
    fn a_budget_expecting_no_pods_allows_nothing() {
        let b = budget(json!({"maxUnavailable": 0}));
        let s = new_status(
            &b,
            Ok(Counts {
                expected: 0,
                desired_healthy: 0,
                current_healthy: 2,
            }),
            BTreeMap::new(),
            jiff::Timestamp::now(),
        );
        assert_eq!(s.disruptions_allowed, 0);
    }
}
