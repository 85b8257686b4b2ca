//! When a Job's pod failures count and when the Job is done: the pod failure policy
//! (upstream's `pod_failure_policy.go`), the success policy (`success_policy.go`),
//! the exponential delay before failed pods are replaced (`backoff_utils.go`), the
//! `OnFailure` restart limit and the Job conditions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, PodFailurePolicy, SuccessPolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::indexed::Intervals;

/// The first delay before a failed pod is replaced (upstream's
/// `DefaultJobPodFailureBackOff`).
pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest such delay (upstream's `MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// What a pod failure policy rule does with a failed pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The Job fails.
    FailJob,
    /// The pod's index fails (Indexed Jobs with backoffLimitPerIndex).
    FailIndex,
    /// The failure does not count towards the backoff limit.
    Ignore,
    /// The failure counts, as without a policy.
    Count,
}

impl Action {
    fn parse(action: &str) -> Option<Action> {
        match action {
            "FailJob" => Some(Action::FailJob),
            "FailIndex" => Some(Action::FailIndex),
            "Ignore" => Some(Action::Ignore),
            "Count" => Some(Action::Count),
            _ => None,
        }
    }
}

/// How the pod failure policy judges one failed pod (upstream's
/// `matchPodFailurePolicy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMatch {
    /// Why the Job fails, when a FailJob rule matched.
    pub fail_job_message: Option<String>,
    /// Whether the failure counts towards the backoff limit.
    pub count_failed: bool,
    /// The action of the rule that matched.
    pub action: Option<Action>,
}

/// Matches `pod` against the rules in order; the first matching rule decides. An
/// unknown action (from a newer API) makes its rule skip, as upstream's switch does.
pub fn match_pod_failure_policy(policy: &PodFailurePolicy, pod: &Pod) -> PolicyMatch {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(action) = Action::parse(&rule.action) else {
            continue;
        };
        let fail_message = if let Some(requirement) = &rule.on_exit_codes {
            let regular = status.container_statuses.as_deref().unwrap_or_default();
            let init = status
                .init_container_statuses
                .as_deref()
                .unwrap_or_default();
            let Some((container, code)) = regular
                .iter()
                .chain(init.iter())
                .find_map(|c| matching_exit_code(c, requirement))
            else {
                continue;
            };
            format!(
                "Container {container} for pod {namespace}/{name} failed with exit code {code} matching {} rule at index {index}",
                rule.action
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let Some(condition) = status.conditions.iter().flatten().find(|c| {
                patterns
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status)
            }) else {
                continue;
            };
            format!(
                "Pod {namespace}/{name} has condition {} matching {} rule at index {index}",
                condition.type_, rule.action
            )
        } else {
            continue;
        };
        return match action {
            Action::FailJob => PolicyMatch {
                fail_job_message: Some(fail_message),
                count_failed: true,
                action: Some(action),
            },
            Action::Ignore => PolicyMatch {
                fail_job_message: None,
                count_failed: false,
                action: Some(action),
            },
            Action::Count | Action::FailIndex => PolicyMatch {
                fail_job_message: None,
                count_failed: true,
                action: Some(action),
            },
        };
    }
    PolicyMatch {
        fail_job_message: None,
        count_failed: true,
        action: None,
    }
}

/// The container and exit code when `status` is a non-zero termination the
/// requirement matches (upstream's `getMatchingContainerFromList`).
fn matching_exit_code(
    status: &ContainerStatus,
    requirement: &k8s_openapi::api::batch::v1::PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    let terminated = status.state.as_ref()?.terminated.as_ref()?;
    if requirement
        .container_name
        .as_ref()
        .is_some_and(|n| *n != status.name)
    {
        return None;
    }
    let code = terminated.exit_code;
    if code == 0 {
        return None;
    }
    let listed = requirement.values.contains(&code);
    let matches = match requirement.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    };
    matches.then(|| (status.name.clone(), code))
}

/// The message of the first success policy rule the succeeded indexes meet
/// (upstream's `matchSuccessPolicy`).
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: i64,
    succeeded: &Intervals,
) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let count = rule.succeeded_count.map(i64::from);
        let met = match &rule.succeeded_indexes {
            Some(required) => {
                let required = Intervals::parse(required, completions);
                if required.is_empty() {
                    continue;
                }
                let contained = overlap(&required, succeeded);
                contained == required.total() || count.is_some_and(|c| contained >= c)
            }
            None => count.is_some_and(|c| succeeded.total() >= c),
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// How many indexes two interval lists share, walking both in order (each list is
/// disjoint; a user may write a long one, so not one against the other).
fn overlap(a: &Intervals, b: &Intervals) -> i64 {
    let mut a = a.0.clone();
    let mut b = b.0.clone();
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j) = (0, 0);
    let mut total = 0i64;
    while let (Some(&(af, al)), Some(&(bf, bl))) = (a.get(i), b.get(j)) {
        let n = al.min(bl).saturating_sub(af.max(bf)).saturating_add(1);
        if n > 0 {
            total = total.saturating_add(n);
        }
        // the interval ending first cannot meet anything further in the other list
        if al < bl {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

/// Whether the containers of the `OnFailure` pods still running restarted at least
/// `backoffLimit` times in all (upstream's `pastBackoffLimitOnFailure`).
pub fn past_backoff_limit_on_failure(
    job: &Job,
    backoff_limit: i32,
    pods: &[std::sync::Arc<Pod>],
) -> bool {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let mut restarts = 0i64;
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        if !matches!(status.phase.as_deref(), Some("Running" | "Pending")) {
            continue;
        }
        for c in status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
        {
            restarts = restarts.saturating_add(i64::from(c.restart_count));
        }
    }
    if backoff_limit == 0 {
        return restarts > 0;
    }
    restarts >= i64::from(backoff_limit)
}

/// When a pod finished (upstream's `getFinishedTime`): the last container
/// termination if every container terminated, else when Ready turned False, else
/// when its deletion began, else its creation.
pub fn finished_time(pod: &Pod) -> jiff::Timestamp {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let mut latest: Option<jiff::Timestamp> = None;
    let mut all_terminated = true;
    for c in containers {
        match c
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            Some(Time(at)) => latest = Some(latest.map_or(*at, |l| l.max(*at))),
            None => all_terminated = false,
        }
    }
    if all_terminated && let Some(at) = latest {
        return at;
    }
    if let Some(Time(at)) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "False"))
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return *at;
    }
    if let Some(Time(at)) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return at
            .checked_sub(jiff::SignedDuration::from_secs(grace))
            .unwrap_or(*at);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0)
}

/// Failures since the last success, for the pod replacement delay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Consecutive failures after the last success.
    pub failures_after_last_success: i32,
    /// When the last of them happened.
    pub last_failure: Option<jiff::Timestamp>,
}

impl BackoffRecord {
    /// How long pod creation still waits at `now`.
    pub fn remaining(&self, now: jiff::Timestamp, base: Duration, max: Duration) -> Duration {
        remaining_for_failures(
            self.failures_after_last_success,
            self.last_failure,
            now,
            base,
            max,
        )
    }
}

/// The delay for `failures` consecutive failures, `base * 2^(failures-1)` capped at
/// `max`, minus the time since the last one (upstream's
/// `getRemainingTimeForFailuresCount`).
pub fn remaining_for_failures(
    failures: i32,
    last_failure: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    base: Duration,
    max: Duration,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    if failures <= 0 {
        return Duration::ZERO;
    }
    let mut delay = base;
    for _ in 1..failures {
        delay = delay.saturating_mul(2);
        if delay >= max {
            delay = max;
            break;
        }
    }
    let elapsed = now
        .duration_since(last)
        .try_into()
        .unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// The backoff records of the Jobs, by key (upstream's `backoffStore`).
#[derive(Default)]
pub struct BackoffStore(Mutex<HashMap<String, BackoffRecord>>);

impl BackoffStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BackoffRecord>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `key` updated with the newly finished pods (upstream's
    /// `newBackoffRecord`): a success resets the count to the failures after it.
    pub fn new_record(&self, key: &str, succeeded: &[&Pod], failed: &[&Pod]) -> BackoffRecord {
        let mut record = self.lock().get(key).cloned().unwrap_or_default();
        let mut failed_times: Vec<jiff::Timestamp> =
            failed.iter().map(|p| finished_time(p)).collect();
        failed_times.sort();
        let last_success = succeeded.iter().map(|p| finished_time(p)).max();
        match last_success {
            None => {
                if let Some(last) = failed_times.last() {
                    record.failures_after_last_success = record
                        .failures_after_last_success
                        .saturating_add(i32::try_from(failed_times.len()).unwrap_or(i32::MAX));
                    record.last_failure = Some(*last);
                }
            }
            Some(success) => {
                record.failures_after_last_success = 0;
                record.last_failure = None;
                for at in failed_times.iter().rev() {
                    if *at <= success {
                        break;
                    }
                    if record.last_failure.is_none() {
                        record.last_failure = Some(*at);
                    }
                    record.failures_after_last_success += 1;
                }
            }
        }
        record
    }

    /// Keeps `record` for `key`.
    pub fn update(&self, key: &str, record: BackoffRecord) {
        self.lock().insert(key.to_owned(), record);
    }

    /// Forgets `key` (finished or deleted Job).
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }
}

// ---- conditions ----

/// Job condition types.
pub const COMPLETE: &str = "Complete";
/// The Job failed.
pub const FAILED: &str = "Failed";
/// The Job will fail once its pods are gone.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// The Job will complete once its pods are gone.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The Job is suspended.
pub const SUSPENDED: &str = "Suspended";

/// A new condition at `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        message: (!message.is_empty()).then(|| message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_` in `conditions`.
pub fn find_condition<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The condition of `type_` when it is True.
pub fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    let conditions = job.status.as_ref()?.conditions.as_deref()?;
    find_condition(conditions, type_).filter(|c| c.status == "True")
}

/// Sets the condition `type_` (upstream's `ensureJobConditionStatus`): an existing
/// one is replaced when status, reason or message differ; a missing one is added
/// unless its status would be False. Returns whether anything changed.
pub fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status
            || existing.reason.as_deref().unwrap_or_default() != reason
            || existing.message.as_deref().unwrap_or_default() != message
        {
            *existing = new_condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        conditions.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// Whether the Job finished: Complete or Failed is True (upstream's `IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    true_condition(job, COMPLETE).is_some() || true_condition(job, FAILED).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
        PodFailurePolicyRule, SuccessPolicyRule,
    };

    #[test]
    fn overlapping_interval_lists_count_shared_indexes() {
        let a = Intervals(vec![(0, 0), (2, 5), (8, 10)]);
        let b = Intervals(vec![(1, 3), (5, 9)]);
        // 2, 3, 5, 8, 9
        assert_eq!(overlap(&a, &b), 5);
        assert_eq!(overlap(&b, &a), 5);
        assert_eq!(overlap(&a, &Intervals(Vec::new())), 0);
        let evens = Intervals((0..20_000).map(|i| (2 * i, 2 * i)).collect());
        let all = Intervals(vec![(0, 39_999)]);
        assert_eq!(overlap(&evens, &all), 20_000);
    }
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    fn failed_pod(code: i32, finished: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: code,
                            finished_at: Some(Time(ts(finished))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                conditions: Some(vec![PodCondition {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn exit_rule(action: &str, op: &str, values: Vec<i32>) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values,
            }),
            on_pod_conditions: None,
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = PodFailurePolicy {
            rules: vec![
                exit_rule("Ignore", "In", vec![1, 2]),
                exit_rule("FailJob", "NotIn", vec![0, 1, 2]),
            ],
        };
        let m = match_pod_failure_policy(&policy, &failed_pod(2, 0));
        assert_eq!(m.action, Some(Action::Ignore));
        assert!(!m.count_failed);
        let m = match_pod_failure_policy(&policy, &failed_pod(42, 0));
        assert_eq!(m.action, Some(Action::FailJob));
        assert_eq!(
            m.fail_job_message.as_deref(),
            Some(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
            )
        );
    }

    #[test]
    fn pod_conditions_match_by_type_and_status() {
        let policy = PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
            }],
        };
        let m = match_pod_failure_policy(&policy, &failed_pod(1, 0));
        assert_eq!(
            m.fail_job_message.as_deref(),
            Some("Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0")
        );
        // no rule matches: counted, no action
        let none = PodFailurePolicy {
            rules: vec![exit_rule("Ignore", "In", vec![5])],
        };
        let m = match_pod_failure_policy(&none, &failed_pod(1, 0));
        assert_eq!((m.action, m.count_failed), (None, true));
    }

    #[test]
    fn success_policy_by_indexes_or_count() {
        let policy = SuccessPolicy {
            rules: vec![
                SuccessPolicyRule {
                    succeeded_indexes: Some("0-2".into()),
                    succeeded_count: None,
                },
                SuccessPolicyRule {
                    succeeded_indexes: None,
                    succeeded_count: Some(2),
                },
            ],
        };
        let s = Intervals(vec![(0, 1)]);
        assert_eq!(
            match_success_policy(Some(&policy), 5, &s).as_deref(),
            Some("Matched rules at index 1")
        );
        let s = Intervals(vec![(0, 2)]);
        assert_eq!(
            match_success_policy(Some(&policy), 5, &s).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(
            match_success_policy(Some(&policy), 5, &Intervals(vec![(4, 4)])),
            None
        );
        assert_eq!(match_success_policy(None, 5, &s), None);
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_is_capped() {
        let base = DEFAULT_POD_FAILURE_BACKOFF;
        let max = MAX_POD_FAILURE_BACKOFF;
        let at = ts(1000);
        assert_eq!(
            remaining_for_failures(0, Some(at), at, base, max),
            Duration::ZERO
        );
        assert_eq!(
            remaining_for_failures(1, Some(at), at, base, max),
            Duration::from_secs(10)
        );
        assert_eq!(
            remaining_for_failures(3, Some(at), at, base, max),
            Duration::from_secs(40)
        );
        assert_eq!(remaining_for_failures(30, Some(at), at, base, max), max);
        assert_eq!(
            remaining_for_failures(2, Some(at), ts(1005), base, max),
            Duration::from_secs(15)
        );
        assert_eq!(
            remaining_for_failures(1, Some(at), ts(2000), base, max),
            Duration::ZERO
        );
        assert_eq!(
            remaining_for_failures(i32::MAX, Some(at), at, base, max),
            max
        );
    }

    #[test]
    fn a_success_resets_the_backoff_to_later_failures() {
        let store = BackoffStore::default();
        let f1 = failed_pod(1, 100);
        let f2 = failed_pod(1, 200);
        let record = store.new_record("k", &[], &[&f1, &f2]);
        assert_eq!(record.failures_after_last_success, 2);
        assert_eq!(record.last_failure, Some(ts(200)));
        store.update("k", record);
        let mut ok = failed_pod(0, 150);
        ok.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let f3 = failed_pod(1, 300);
        let record = store.new_record("k", &[&ok], &[&f2, &f3]);
        assert_eq!(record.failures_after_last_success, 2);
        assert_eq!(record.last_failure, Some(ts(300)));
        store.remove("k");
        assert_eq!(store.new_record("k", &[], &[]), BackoffRecord::default());
    }

    #[test]
    fn conditions_are_added_and_replaced_as_upstream() {
        let mut list = Vec::new();
        assert!(!ensure_condition(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            ts(1)
        ));
        assert!(list.is_empty());
        assert!(ensure_condition(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            ts(1)
        ));
        assert!(!ensure_condition(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            ts(2)
        ));
        assert!(ensure_condition(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            ts(3)
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "False");
        assert_eq!(list[0].last_transition_time, Some(Time(ts(3))));
    }
}
