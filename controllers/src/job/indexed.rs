//! Indexed completion mode (upstream's `indexed_job_utils.go`): each pod carries a
//! completion index in `batch.kubernetes.io/job-completion-index` (annotation and
//! label), indexes are reported as compressed interval lists (`"1,3-5"`) in
//! `status.completedIndexes` and `status.failedIndexes`, and with
//! `backoffLimitPerIndex` each index counts its own failures in
//! `batch.kubernetes.io/job-index-failure-count`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::policy::{Action, finished_time, match_pod_failure_policy};
use super::tracking::{has_tracking_finalizer, is_pod_failed};

/// The completion index of a pod (annotation and, since PodIndexLabel, label).
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The failures counted so far in the pod's index.
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// The failures of the pod's index the pod failure policy ignored.
pub const INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";
/// The environment variable carrying the index into the containers.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Upstream's `names.MaxGeneratedNameLength` (63 minus the random suffix).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// Whether the Job uses Indexed completion mode.
pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// Whether the Job limits failures per index.
pub fn has_backoff_limit_per_index(job: &Job) -> bool {
    job.spec
        .as_ref()
        .is_some_and(|s| s.backoff_limit_per_index.is_some())
}

/// `spec.completions`, which Indexed Jobs always have (0 when missing).
pub fn completions(job: &Job) -> i64 {
    job.spec
        .as_ref()
        .and_then(|s| s.completions)
        .map_or(0, i64::from)
}

/// A sorted list of disjoint, non-adjacent closed intervals of indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(pub Vec<(i64, i64)>);

impl Intervals {
    /// Parses `"1,3-5"`, keeping only indexes below `completions`; malformed parts are
    /// skipped, as upstream's `parseIndexesFromString`.
    pub fn parse(text: &str, completions: i64) -> Intervals {
        let mut result: Vec<(i64, i64)> = Vec::new();
        if text.is_empty() {
            return Intervals(result);
        }
        for part in text.split(',') {
            let mut limits = part.split('-');
            let Some(first) = limits.next().and_then(|f| f.parse::<i64>().ok()) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i64>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match result.last_mut() {
                Some(previous) if previous.1.checked_add(1) == Some(first) => previous.1 = last,
                _ => result.push((first, last)),
            }
        }
        Intervals(result)
    }

    /// This list merged with `other`.
    pub fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<(i64, i64)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_unstable();
        let mut result: Vec<(i64, i64)> = Vec::with_capacity(all.len());
        for (first, last) in all {
            match result.last_mut() {
                Some(previous) if first <= previous.1.saturating_add(1) => {
                    previous.1 = previous.1.max(last);
                }
                _ => result.push((first, last)),
            }
        }
        Intervals(result)
    }

    /// This list with `indexes` added.
    pub fn with_indexes(&self, indexes: impl IntoIterator<Item = i64>) -> Intervals {
        self.merge(&Intervals(indexes.into_iter().map(|i| (i, i)).collect()))
    }

    /// How many indexes the list holds.
    pub fn total(&self) -> i64 {
        self.0
            .iter()
            .map(|(first, last)| last.saturating_sub(*first).saturating_add(1))
            .fold(0i64, i64::saturating_add)
    }

    /// Whether `index` is in the list.
    pub fn has(&self, index: i64) -> bool {
        let at = self.0.partition_point(|(_, last)| *last < index);
        self.0.get(at).is_some_and(|(first, _)| *first <= index)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Intervals {
    /// Upstream's compressed form: two adjacent indexes are listed (`"3,4"`), longer
    /// runs are ranges (`"3-5"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                let separator = if *last == first + 1 { ',' } else { '-' };
                write!(f, "{separator}{last}")?;
            }
        }
        Ok(())
    }
}

/// The completion index of `pod`, if it carries a valid one.
pub fn completion_index(pod: &Pod) -> Option<i64> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
}

/// The index of `pod` when it is valid for `job` (below `completions`).
pub fn valid_index(job: &Job, pod: &Pod) -> Option<i64> {
    completion_index(pod).filter(|i| *i < completions(job))
}

/// The previous completed indexes (from status) and those with newly succeeded pods
/// added (upstream's `calculateSucceededIndexes`).
pub fn succeeded_indexes(job: &Job, pods: &[Arc<Pod>]) -> (Intervals, Intervals) {
    let completed = job
        .status
        .as_ref()
        .and_then(|s| s.completed_indexes.as_deref())
        .unwrap_or_default();
    let previous = Intervals::parse(completed, completions(job));
    let new: BTreeSet<i64> = pods
        .iter()
        .filter(|p| phase(p) == Some("Succeeded") && has_tracking_finalizer(p))
        .filter_map(|p| valid_index(job, p))
        .collect();
    let result = previous.with_indexes(new);
    (previous, result)
}

/// The failed indexes from status plus those failing now (upstream's
/// `calculateFailedIndexes`).
pub fn failed_indexes(job: &Job, pods: &[Arc<Pod>]) -> Intervals {
    let previous = job
        .status
        .as_ref()
        .and_then(|s| s.failed_indexes.as_deref())
        .map(|f| Intervals::parse(f, completions(job)))
        .unwrap_or_default();
    let new: BTreeSet<i64> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p) && is_index_failed(job, p))
        .filter_map(|p| valid_index(job, p))
        .collect();
    previous.with_indexes(new)
}

/// Whether the failure of `pod` fails its whole index: the policy says FailIndex, or
/// the index has used up `backoffLimitPerIndex`.
fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !is_pod_failed(pod, job) {
        return false;
    }
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    let counted = match policy {
        Some(policy) => {
            let matched = match_pod_failure_policy(policy, pod);
            if matched.action == Some(Action::FailIndex) {
                return true;
            }
            matched.count_failed
        }
        None => true,
    };
    let limit = job
        .spec
        .as_ref()
        .and_then(|s| s.backoff_limit_per_index)
        .unwrap_or(0);
    counted && index_failure_count(pod) >= limit
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// An annotation holding a count: missing, unparsable or out of range counts as 0.
fn count_annotation(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// `batch.kubernetes.io/job-index-failure-count` of the pod.
pub fn index_failure_count(pod: &Pod) -> i32 {
    count_annotation(pod, INDEX_FAILURE_COUNT_ANNOTATION)
}

/// Counted plus ignored failures of the pod's index.
pub fn index_absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod).saturating_add(count_annotation(
        pod,
        INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
    ))
}

/// The failure counts a replacement of `replaced` starts with (upstream's
/// `getNewIndexFailureCounts`): counted and ignored.
pub fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (i32, i32) {
    let Some(replaced) = replaced else {
        return (0, 0);
    };
    let mut counted = index_failure_count(replaced);
    let mut ignored = count_annotation(replaced, INDEX_IGNORED_FAILURE_COUNT_ANNOTATION);
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    let count_failed = policy.is_none_or(|p| match_pod_failure_policy(p, replaced).count_failed);
    if count_failed {
        counted = counted.saturating_add(1);
    } else {
        ignored = ignored.saturating_add(1);
    }
    (counted, ignored)
}

/// The first `count` indexes below `completions` that have no active pod and are
/// neither succeeded nor failed (nor, when only failed pods are replaced, held by a
/// terminating pod), as upstream's `firstPendingIndexes`.
pub fn first_pending_indexes(
    active: &[Arc<Pod>],
    terminating: &[Arc<Pod>],
    succeeded: &Intervals,
    failed: Option<&Intervals>,
    count: usize,
    completions: i64,
) -> Vec<i64> {
    let mut taken = succeeded
        .with_indexes(active.iter().filter_map(|p| completion_index(p)))
        .with_indexes(terminating.iter().filter_map(|p| completion_index(p)));
    if let Some(failed) = failed {
        taken = taken.merge(failed);
    }
    let mut result = Vec::with_capacity(count.min(1024));
    let mut candidate = 0i64;
    let mut next_taken = taken.0.iter().peekable();
    while candidate < completions && result.len() < count {
        match next_taken.peek() {
            Some((first, last)) if candidate >= *first => {
                candidate = candidate.max(last.saturating_add(1));
                next_taken.next();
            }
            _ => {
                result.push(candidate);
                candidate += 1;
            }
        }
    }
    result
}

/// The active pods to remove because their index repeats (all but one per index),
/// is out of range or is missing (upstream's `appendDuplicatedIndexPodsForRemoval`);
/// returns those to remove and those left.
pub fn duplicated_index_pods(
    pods: &[Arc<Pod>],
    completions: i64,
    order: impl Fn(&mut Vec<Arc<Pod>>),
) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
    let mut remove = Vec::new();
    let mut left = Vec::new();
    let mut by_index: std::collections::BTreeMap<i64, Vec<Arc<Pod>>> = Default::default();
    for pod in pods {
        match completion_index(pod) {
            Some(i) if i < completions => by_index.entry(i).or_default().push(pod.clone()),
            _ => remove.push(pod.clone()),
        }
    }
    for (_, mut same) in by_index {
        // keep the one that would be deleted last
        order(&mut same);
        if let Some(keep) = same.pop() {
            remove.extend(same);
            left.push(keep);
        }
    }
    (remove, left)
}

/// For each index with no active, succeeded or failed state, the failed pod whose
/// finalizer stays until its replacement exists, so the replacement can inherit its
/// failure count (upstream's `getPodsWithDelayedDeletionPerIndex`). `counted` are
/// the pods not yet accounted (with the tracking finalizer).
pub fn pods_with_delayed_deletion(
    job: &Job,
    counted: &[Arc<Pod>],
    active: &[Arc<Pod>],
    succeeded: &Intervals,
    failed: Option<&Intervals>,
) -> HashMap<i64, Arc<Pod>> {
    let active_indexes: BTreeSet<i64> = active.iter().filter_map(|p| completion_index(p)).collect();
    let mut result: HashMap<i64, Arc<Pod>> = HashMap::new();
    for pod in counted {
        if !is_pod_failed(pod, job) {
            continue;
        }
        let Some(index) = valid_index(job, pod) else {
            continue;
        };
        if succeeded.has(index)
            || failed.is_some_and(|f| f.has(index))
            || active_indexes.contains(&index)
        {
            continue;
        }
        match result.get(&index) {
            Some(last)
                if !(index_absolute_failure_count(last) <= index_absolute_failure_count(pod)
                    && finished_time(pod) >= finished_time(last)) => {}
            _ => {
                result.insert(index, pod.clone());
            }
        }
    }
    result
}

/// The generateName of a pod of `index` (upstream's `podGenerateNameWithIndex`):
/// `<job>-<index>-`, the job's name cut so the prefix stays a valid generated name.
pub fn generate_name_with_index(job_name: &str, index: i64) -> String {
    let suffix = format!("-{index}-");
    let prefix = format!("{job_name}{suffix}");
    if prefix.len() <= MAX_GENERATED_NAME_LENGTH {
        return prefix;
    }
    let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
    let mut cut = keep.min(job_name.len());
    while !job_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &job_name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod_with_index(name: &str, index: &str) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    [(COMPLETION_INDEX_ANNOTATION.to_owned(), index.to_owned())].into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn intervals_print_in_upstream_compressed_form() {
        let i = Intervals::default().with_indexes([1, 3, 4, 5, 7, 8, 0]);
        assert_eq!(i.to_string(), "0,1,3-5,7,8");
        assert_eq!(i.total(), 7);
        assert!(i.has(4) && i.has(0) && !i.has(2) && !i.has(6) && !i.has(9));
        assert_eq!(
            Intervals::default().with_indexes([0, 1, 2]).to_string(),
            "0-2"
        );
        assert_eq!(Intervals::default().to_string(), "");
    }

    #[test]
    fn parsing_skips_garbage_and_clips_to_completions() {
        let i = Intervals::parse("0,2-4,x,6-9,12", 8);
        assert_eq!(i.0, vec![(0, 0), (2, 4), (6, 7)]);
        // adjacent intervals join
        assert_eq!(Intervals::parse("1,2,3-4", 10).0, vec![(1, 4)]);
        assert_eq!(Intervals::parse("", 3), Intervals::default());
        assert_eq!(Intervals::parse("-5", 3), Intervals::default());
    }

    #[test]
    fn merge_joins_overlapping_and_adjacent() {
        let a = Intervals(vec![(0, 2), (6, 8)]);
        let b = Intervals(vec![(3, 3), (7, 10), (20, 20)]);
        assert_eq!(a.merge(&b).0, vec![(0, 3), (6, 10), (20, 20)]);
    }

    #[test]
    fn pending_indexes_skip_active_succeeded_and_failed() {
        let active = vec![pod_with_index("a", "1")];
        let succeeded = Intervals(vec![(0, 0), (3, 4)]);
        let failed = Intervals(vec![(6, 6)]);
        let got = first_pending_indexes(&active, &[], &succeeded, Some(&failed), 10, 9);
        assert_eq!(got, vec![2, 5, 7, 8]);
        let got = first_pending_indexes(&active, &[], &succeeded, None, 2, 9);
        assert_eq!(got, vec![2, 5]);
        assert!(first_pending_indexes(&[], &[], &Intervals::default(), None, 0, 3).is_empty());
    }

    #[test]
    fn duplicated_and_invalid_indexes_are_removed() {
        let pods = vec![
            pod_with_index("a", "0"),
            pod_with_index("b", "0"),
            pod_with_index("c", "1"),
            pod_with_index("d", "7"),
            pod_with_index("e", "bad"),
        ];
        let (remove, left) = duplicated_index_pods(&pods, 3, |_| {});
        let names = |v: &[Arc<Pod>]| -> Vec<String> {
            v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
        };
        let mut removed = names(&remove);
        removed.sort();
        assert_eq!(removed, vec!["a", "d", "e"]);
        assert_eq!(names(&left), vec!["b", "c"]);
    }

    #[test]
    fn generate_name_keeps_the_index_when_cut() {
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = "x".repeat(70);
        let name = generate_name_with_index(&long, 12);
        assert_eq!(name.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(name.ends_with("-12-"));
    }

    #[test]
    fn failure_count_annotations_parse_defensively() {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(
            [
                (INDEX_FAILURE_COUNT_ANNOTATION.to_owned(), "3".to_owned()),
                (
                    INDEX_IGNORED_FAILURE_COUNT_ANNOTATION.to_owned(),
                    "-1".to_owned(),
                ),
            ]
            .into(),
        );
        assert_eq!(index_failure_count(&pod), 3);
        assert_eq!(index_absolute_failure_count(&pod), 3);
        pod.metadata.annotations = Some(
            [(
                INDEX_FAILURE_COUNT_ANNOTATION.to_owned(),
                "99999999999".to_owned(),
            )]
            .into(),
        );
        assert_eq!(index_failure_count(&pod), 0);
    }
}
