//! Preemption's what-if evaluation (upstream's `preemption.Evaluator` with
//! DefaultPreemption's `SelectVictimsOnNode`): on copies of each potential node and
//! of the cycle state, remove every lower-priority pod, check the preemptor fits, then
//! give back as many pods as still let it fit — budget-violating ones first, the most
//! important first — and pick the node whose victims hurt least
//! (`pickOneNodeForPreemption`).

use std::cmp::Ordering as CmpOrdering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rayon::prelude::*;

use crate::framework::runtime::Framework;
use crate::framework::types::label_selector;
use crate::framework::{CycleState, NodeInfo, NodeToStatus, PodInfo, Status};

/// A node the preemptor fits on once `victims` are gone (upstream's `Candidate`).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub name: String,
    /// The pods to evict, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// How many of the victims break a PodDisruptionBudget.
    pub num_pdb_violations: usize,
}

/// When a pod started, or `now` when it has not (upstream's `GetPodStartTime`: assumed
/// and bound pods that have not started count as starting now).
fn start_time(pod: &PodInfo, now: Timestamp) -> Timestamp {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
}

/// Upstream's `util.MoreImportantPod` as an ordering: higher priority first, then the
/// pod that started earlier (it has run longer and is costlier to lose).
pub fn importance_order(a: &PodInfo, b: &PodInfo, now: Timestamp) -> CmpOrdering {
    b.priority()
        .cmp(&a.priority())
        .then_with(|| start_time(a, now).cmp(&start_time(b, now)))
}

/// Splits `pods` (order kept) into those whose eviction would break a PDB and the
/// rest (upstream's `filterPodsWithPDBViolation`). Each matching budget's
/// `disruptionsAllowed` is spent as pods are taken, so only the pods beyond the budget
/// count as violating; pods the API server already recorded in `disruptedPods` are not
/// charged again.
pub fn split_by_pdb_violation(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    // an invalid selector matches nothing, as upstream skips it
    let selectors: Vec<Option<apimachinery::labels::Selector>> = pdbs
        .iter()
        .map(|p| label_selector(p.spec.as_ref().and_then(|s| s.selector.as_ref())).ok())
        .collect();
    let mut violating = Vec::new();
    let mut non_violating = Vec::new();
    for pod in pods {
        let mut violated = false;
        let labels = pod.pod.metadata.labels.as_ref();
        // a pod without labels matches no budget
        if let Some(labels) = labels.filter(|l| !l.is_empty()) {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace.as_deref().unwrap_or("default") != pod.namespace() {
                    continue;
                }
                let Some(selector) = &selectors[i] else {
                    continue;
                };
                // an empty selector matches nothing for budgets
                if selector.is_empty() || !selector.matches(labels) {
                    continue;
                }
                let already_disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(pod.name()));
                if already_disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod);
        } else {
            non_violating.push(pod);
        }
    }
    (violating, non_violating)
}

/// An internal failure of a what-if step, as upstream's `AsStatus(status.AsError())`.
fn as_error(s: Status) -> Status {
    Status::error(s.message())
}

/// Upstream's `SelectVictimsOnNode`: the fewest lower-priority pods whose removal lets
/// `pod` fit on `node`, and how many of them break a PDB. `state` and `node` are the
/// caller's copies and are changed. Err is the node's status when preemption does not
/// help there (or an internal error).
pub fn select_victims_on_node(
    fw: &Framework,
    state: &mut CycleState,
    pod: &PodInfo,
    node: &mut NodeInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let preemptor_priority = pod.priority();
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority() < preemptor_priority)
        .cloned()
        .collect();
    for victim in &potential {
        remove(fw, state, pod, node, victim)?;
    }
    if potential.is_empty() {
        // nothing changed on the node, so filtering it again would fail as before
        return Err(Status::unresolvable(
            "No preemption victims found for incoming pod",
        ));
    }
    // affinity of the preemptor to a victim is deliberately not considered (as
    // upstream: too costly, and not a recommended configuration)
    let s = fw.run_filter_with_nominated_pods(state, pod, node);
    if !s.is_success() {
        return Err(s);
    }
    let now = Timestamp::now();
    potential.sort_by(|a, b| importance_order(a, b, now));
    let (violating, non_violating) = split_by_pdb_violation(potential, pdbs);
    let mixed = !violating.is_empty() && !non_violating.is_empty();
    let mut victims = Vec::new();
    let mut num_violating = 0;
    // reprieve budget-protected pods first: a victim set without them is preferable
    for (protected, candidate) in violating
        .into_iter()
        .map(|p| (true, p))
        .chain(non_violating.into_iter().map(|p| (false, p)))
    {
        node.add_pod(candidate.clone());
        let s = fw.run_pre_filter_add_pod(state, pod, &candidate, node);
        if !s.is_success() {
            return Err(as_error(s));
        }
        if !fw
            .run_filter_with_nominated_pods(state, pod, node)
            .is_success()
        {
            remove(fw, state, pod, node, &candidate)?;
            if protected {
                num_violating += 1;
            }
            victims.push(candidate);
        }
    }
    if mixed {
        // the two groups were each in order; keep the whole list most important first
        victims.sort_by(|a, b| importance_order(a, b, now));
    }
    Ok((victims, num_violating))
}

fn remove(
    fw: &Framework,
    state: &mut CycleState,
    pod: &PodInfo,
    node: &mut NodeInfo,
    victim: &PodInfo,
) -> Result<(), Status> {
    if !node.remove_pod(victim.uid()) {
        return Err(Status::error(format!(
            "no corresponding pod {} in pods of node {}",
            victim.name(),
            node.name()
        )));
    }
    let s = fw.run_pre_filter_remove_pod(state, pod, victim, node);
    if !s.is_success() {
        return Err(as_error(s));
    }
    Ok(())
}

/// What a dry run found: candidates (non-violating ones first), the statuses of the
/// nodes where preemption does not help, and internal errors.
#[derive(Debug, Default)]
pub struct DryRun {
    /// Nodes the preemptor fits on after evictions.
    pub candidates: Vec<Candidate>,
    /// Nodes where it does not, with why.
    pub statuses: NodeToStatus,
    /// Messages of internal errors.
    pub errors: Vec<String>,
}

/// Upstream's `DryRunPreemption`: evaluates `potential` nodes in parallel, starting at
/// `offset` and wrapping, until `wanted` candidates are found of which at least one
/// breaks no PDB. Each list keeps at most `wanted` candidates.
pub fn dry_run(
    fw: &Framework,
    state: &CycleState,
    pod: &PodInfo,
    potential: &[Arc<NodeInfo>],
    pdbs: &[Arc<PodDisruptionBudget>],
    offset: usize,
    wanted: usize,
) -> DryRun {
    let n = potential.len();
    let non_violating_found = AtomicUsize::new(0);
    let violating_found = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let results: Vec<Option<(String, Result<(Vec<Arc<PodInfo>>, usize), Status>)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            if done.load(Ordering::Relaxed) {
                return None;
            }
            let mut node = (*potential[(offset + i) % n]).clone();
            let mut state = state.clone();
            let name = node.name().to_owned();
            let r = select_victims_on_node(fw, &mut state, pod, &mut node, pdbs);
            if let Ok((victims, violations)) = &r {
                if !victims.is_empty() {
                    let counter = if *violations == 0 {
                        &non_violating_found
                    } else {
                        &violating_found
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let nv = non_violating_found.load(Ordering::Relaxed);
                    let v = violating_found.load(Ordering::Relaxed);
                    if nv > 0 && nv + v >= wanted {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            }
            Some((name, r))
        })
        .collect();
    let mut out = DryRun {
        statuses: NodeToStatus::new(),
        ..DryRun::default()
    };
    let mut non_violating = Vec::new();
    let mut violating = Vec::new();
    for (name, r) in results.into_iter().flatten() {
        let status = match r {
            Ok((victims, num_pdb_violations)) if !victims.is_empty() => {
                let c = Candidate {
                    name,
                    victims,
                    num_pdb_violations,
                };
                if num_pdb_violations == 0 {
                    non_violating.push(c);
                } else {
                    violating.push(c);
                }
                continue;
            }
            Ok(_) => Status::error(format!("expected at least one victim pod on node {name:?}")),
            Err(s) => s,
        };
        if status.code == crate::framework::Code::Error {
            out.errors.push(status.message());
        }
        out.statuses.statuses.insert(name, status);
    }
    non_violating.truncate(wanted);
    violating.truncate(wanted);
    out.candidates = non_violating;
    out.candidates.extend(violating);
    out
}

/// Upstream's `pickOneNodeForPreemption`: the candidate with the fewest PDB
/// violations, then the lowest highest-priority victim, then the smallest sum of
/// victim priorities, then the fewest victims, then the latest start among the
/// highest-priority victims, then the first.
pub fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    let now = Timestamp::now();
    type Score = fn(&Candidate, Timestamp) -> i128;
    let scores: [Score; 5] = [
        |c, _| -(c.num_pdb_violations as i128),
        |c, _| -i128::from(c.victims.first().map_or(0, |p| p.priority())),
        |c, _| {
            // shifted by 2^31 so every priority counts positive: a few negative-priority
            // victims must not beat fewer victims of the same priority
            -c.victims
                .iter()
                .map(|p| i128::from(p.priority()) + (1i128 << 31))
                .sum::<i128>()
        },
        |c, _| -(c.victims.len() as i128),
        |c, now| {
            earliest_start_of_highest_priority(c, now).map_or(i128::MIN, |t| t.as_nanosecond())
        },
    ];
    let mut remaining: Vec<&Candidate> = candidates.iter().collect();
    for score in scores {
        if remaining.len() <= 1 {
            break;
        }
        let best = remaining.iter().map(|c| score(c, now)).max()?;
        remaining.retain(|c| score(c, now) == best);
    }
    remaining.first().copied()
}

/// Upstream's `GetEarliestPodStartTime`: the earliest start among the victims of the
/// highest priority.
fn earliest_start_of_highest_priority(c: &Candidate, now: Timestamp) -> Option<Timestamp> {
    let highest = c.victims.iter().map(|p| p.priority()).max()?;
    c.victims
        .iter()
        .filter(|p| p.priority() == highest)
        .map(|p| start_time(p, now))
        .min()
}

/// How many candidates the dry run looks for (upstream's `calculateNumCandidates`):
/// the percentage of the potential nodes, at least the absolute number, at most all.
pub fn num_candidates(num_nodes: usize, percentage: i32, absolute: i32) -> usize {
    let n = num_nodes as i64 * i64::from(percentage) / 100;
    let n = n.max(i64::from(absolute));
    (n.max(0) as usize).min(num_nodes)
}
