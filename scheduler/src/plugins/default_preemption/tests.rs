//! DefaultPreemption without an API server: candidates, victims, the chosen node and
//! the messages, over a snapshot filtered by NodeResourcesFit.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

use super::candidates::{self, Candidate};
use super::*;
use crate::config::{PluginRef, PluginSet, Plugins, Profile};
use crate::framework::registry::in_tree;
use crate::framework::{NodeInfo, Snapshot};

fn node(name: &str, cpu: &str) -> NodeInfo {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}
    }))
    .unwrap();
    NodeInfo::new(n)
}

fn pod(name: &str, priority: i32, cpu: &str, extra: serde_json::Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {
            "priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]
        }
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Puts a running pod on a node.
fn run_on(n: &mut NodeInfo, p: Pod) {
    let mut p = p;
    p.spec.as_mut().unwrap().node_name = Some(n.name().to_owned());
    n.add_pod(Arc::new(PodInfo::new(p)));
}

fn profile() -> Profile {
    let enabled = ["PrioritySort", "NodeResourcesFit", "DefaultBinder", NAME]
        .iter()
        .map(|n| PluginRef {
            name: (*n).to_owned(),
            weight: None,
        })
        .collect();
    Profile {
        scheduler_name: "default-scheduler".to_owned(),
        plugins: Plugins {
            multi_point: PluginSet {
                enabled,
                disabled: Vec::new(),
            },
            ..Plugins::default()
        },
        ..Profile::default()
    }
}

fn framework(handle: &Handle) -> Framework {
    Framework::new(&profile(), &in_tree(), handle).unwrap()
}

/// Filters every node as a cycle would and runs PostFilter.
fn preempt(
    fw: &Framework,
    nodes: Vec<NodeInfo>,
    preemptor: Pod,
) -> (Option<PostFilterResult>, Status) {
    let snapshot = Arc::new(Snapshot::from_nodes(nodes));
    let mut state = CycleState::new(snapshot.clone());
    let pod = PodInfo::new(preemptor);
    let (_, s, _) = fw.run_pre_filter(&mut state, &pod);
    assert!(s.is_success(), "{s:?}");
    let mut statuses = NodeToStatus::new();
    for n in snapshot.nodes.iter() {
        let s = fw.run_filter_with_nominated_pods(&state, &pod, n);
        if !s.is_success() {
            statuses.statuses.insert(n.name().to_owned(), s);
        }
    }
    fw.run_post_filter(&state, &pod, &statuses)
}

fn nominated(r: &Option<PostFilterResult>) -> Option<&str> {
    r.as_ref().and_then(|r| r.nominated_node_name.as_deref())
}

#[test]
fn the_plugin_is_a_post_filter_of_the_profile() {
    let fw = framework(&Handle::default());
    assert_eq!(fw.plugin_names("PostFilter"), vec![NAME]);
}

#[test]
fn args_default_and_validate_as_upstream() {
    let a: DefaultPreemptionArgs = decode_args(NAME, None).unwrap();
    assert_eq!(a, DefaultPreemptionArgs::default());
    assert_eq!(a.min_candidate_nodes_percentage, 10);
    assert_eq!(a.min_candidate_nodes_absolute, 100);
    let a: DefaultPreemptionArgs =
        decode_args(NAME, Some(&json!({"minCandidateNodesPercentage": 50}))).unwrap();
    assert_eq!(a.min_candidate_nodes_absolute, 100);
    assert!(a.validate().is_ok());
    let bad = DefaultPreemptionArgs {
        min_candidate_nodes_percentage: 101,
        min_candidate_nodes_absolute: -1,
    };
    assert_eq!(
        bad.validate().unwrap_err(),
        "[minCandidateNodesPercentage: Invalid value: 101: not in valid range [0, 100], \
         minCandidateNodesAbsolute: Invalid value: -1: not in valid range [0, inf)]"
    );
    let zeros = DefaultPreemptionArgs {
        min_candidate_nodes_percentage: 0,
        min_candidate_nodes_absolute: 0,
    };
    assert_eq!(
        zeros.validate().unwrap_err(),
        "[minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time as minCandidateNodesAbsolute, \
         minCandidateNodesAbsolute: Invalid value: 0: cannot be zero at the same time as minCandidateNodesPercentage]"
    );
    let err = new(
        Some(&json!({"minCandidateNodesPercentage": -1})),
        &Handle::default(),
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        "minCandidateNodesPercentage: Invalid value: -1: not in valid range [0, 100]"
    );
}

#[test]
fn num_candidates_as_upstream() {
    // upstream's TestCalculateNumCandidates-style cases
    assert_eq!(candidates::num_candidates(10, 10, 100), 10);
    assert_eq!(candidates::num_candidates(1000, 10, 1), 100);
    assert_eq!(candidates::num_candidates(1000, 0, 10), 10);
    assert_eq!(candidates::num_candidates(1000, 40, 1), 400);
    assert_eq!(candidates::num_candidates(5, 100, 0), 5);
}

#[test]
fn lower_priority_victims_on_the_node_needing_the_fewest() {
    let fw = framework(&Handle::default());
    // n1: two 1-CPU pods of priority 10 must both go for a 2-CPU pod
    let mut n1 = node("n1", "2");
    run_on(&mut n1, pod("a", 10, "1", json!({})));
    run_on(&mut n1, pod("b", 10, "1", json!({})));
    // n2: one 2-CPU pod of priority 10 is enough
    let mut n2 = node("n2", "2");
    run_on(&mut n2, pod("c", 10, "2", json!({})));
    // n3: only a higher-priority pod: not a candidate
    let mut n3 = node("n3", "2");
    run_on(&mut n3, pod("d", 1000, "2", json!({})));
    let (r, s) = preempt(&fw, vec![n1, n2, n3], pod("p", 100, "2", json!({})));
    assert_eq!(s.code, Code::Success, "{s:?}");
    assert_eq!(s.plugin, NAME);
    assert_eq!(nominated(&r), Some("n2"));
}

#[test]
fn victims_are_the_fewest_and_least_important_pods_of_a_node() {
    let fw = framework(&Handle::default());
    let mut n = node("n1", "4");
    run_on(&mut n, pod("low", 1, "1", json!({})));
    run_on(&mut n, pod("mid", 5, "1", json!({})));
    run_on(&mut n, pod("big", 5, "2", json!({})));
    let snapshot = Arc::new(Snapshot::from_nodes(vec![n]));
    let mut state = CycleState::new(snapshot.clone());
    let p = PodInfo::new(pod("p", 100, "2", json!({})));
    let (_, s, _) = fw.run_pre_filter(&mut state, &p);
    assert!(s.is_success());
    let mut info = (*snapshot.nodes[0]).clone();
    let (victims, violations) =
        candidates::select_victims_on_node(&fw, &mut state, &p, &mut info, &[]).unwrap();
    // reprieved most important first: "mid" fits back, then "big" does not (p needs
    // 2 of the 4 CPUs), then "low" fits in what "big" leaves
    let names: Vec<&str> = victims.iter().map(|v| v.name()).collect();
    assert_eq!(names, vec!["big"]);
    assert_eq!(violations, 0);
    // the original snapshot is untouched
    assert_eq!(snapshot.nodes[0].pods.len(), 3);
}

#[test]
fn a_node_with_only_higher_priority_pods_is_not_helpful() {
    let fw = framework(&Handle::default());
    let mut n1 = node("n1", "2");
    run_on(&mut n1, pod("d", 1000, "2", json!({})));
    let mut n2 = node("n2", "2");
    run_on(&mut n2, pod("e", 100, "2", json!({})));
    let (r, s) = preempt(&fw, vec![n1, n2], pod("p", 100, "2", json!({})));
    assert_eq!(r, None);
    assert_eq!(s.code, Code::Unschedulable);
    assert_eq!(
        s.message(),
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
}

#[test]
fn preemption_policy_never_is_not_eligible() {
    let fw = framework(&Handle::default());
    let mut n1 = node("n1", "2");
    run_on(&mut n1, pod("a", 1, "2", json!({})));
    let (r, s) = preempt(
        &fw,
        vec![n1],
        pod(
            "p",
            100,
            "2",
            json!({"spec": {"preemptionPolicy": "Never"}}),
        ),
    );
    assert_eq!(r, None);
    assert_eq!(s.code, Code::Unschedulable);
    assert_eq!(
        s.message(),
        "preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[test]
fn a_terminating_victim_on_the_nominated_node_makes_the_pod_wait() {
    let fw = framework(&Handle::default());
    let mut n1 = node("n1", "2");
    run_on(
        &mut n1,
        pod(
            "going",
            1,
            "2",
            json!({
                "metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"},
                "status": {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}
            }),
        ),
    );
    let (r, s) = preempt(
        &fw,
        vec![n1],
        pod(
            "p",
            100,
            "2",
            json!({"status": {"nominatedNodeName": "n1"}}),
        ),
    );
    assert_eq!(r, None);
    assert_eq!(
        s.message(),
        "preemption: not eligible due to a terminating pod on the nominated node."
    );
}

#[test]
fn pdb_protected_victims_are_avoided_when_another_node_works() {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "pdb", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
    }))
    .unwrap();
    let handle = Handle::default();
    handle.pdbs.write().unwrap().push(Arc::new(pdb));
    let fw = framework(&handle);
    // n1's victim would be cheaper (priority 1) but its budget allows no disruption
    let mut n1 = node("n1", "2");
    run_on(
        &mut n1,
        pod("db", 1, "2", json!({"metadata": {"labels": {"app": "db"}}})),
    );
    let mut n2 = node("n2", "2");
    run_on(
        &mut n2,
        pod(
            "web",
            50,
            "2",
            json!({"metadata": {"labels": {"app": "web"}}}),
        ),
    );
    for _ in 0..10 {
        let (r, s) = preempt(
            &fw,
            vec![n1.clone(), n2.clone()],
            pod("p", 100, "2", json!({})),
        );
        assert!(s.is_success(), "{s:?}");
        assert_eq!(nominated(&r), Some("n2"));
    }
    // without the other node, the budget is broken rather than not preempting
    let (r, s) = preempt(&fw, vec![n1], pod("p", 100, "2", json!({})));
    assert!(s.is_success());
    assert_eq!(nominated(&r), Some("n1"));
}

#[test]
fn all_nodes_unresolvable_is_not_helpful() {
    let fw = framework(&Handle::default());
    let n1 = node("n1", "2");
    let n2 = node("n2", "2");
    let n3 = node("n3", "2");
    let snapshot = Arc::new(Snapshot::from_nodes(vec![n1, n2, n3]));
    let state = CycleState::new(snapshot);
    let p = PodInfo::new(pod("p", 100, "1", json!({})));
    let mut statuses = NodeToStatus::new();
    for n in ["n1", "n2"] {
        statuses.statuses.insert(
            n.to_owned(),
            Status::unresolvable("node(s) didn't match Pod's node affinity/selector"),
        );
    }
    // n3 is absent: unresolvable by default
    let (r, s) = fw.run_post_filter(&state, &p, &statuses);
    assert_eq!(r, None);
    assert_eq!(s.code, Code::Unschedulable);
    assert_eq!(
        s.message(),
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn lower_priority_nominations_on_the_chosen_node_are_dropped() {
    let fw = framework(&Handle::default());
    let mut n1 = node("n1", "2");
    run_on(&mut n1, pod("a", 1, "2", json!({})));
    let low = Arc::new(PodInfo::new(pod("waiting", 5, "1", json!({}))));
    let high = Arc::new(PodInfo::new(pod("vip", 500, "0", json!({}))));
    fw.nominator().add(low, Some("n1"));
    fw.nominator().add(high, Some("n1"));
    let (r, s) = preempt(&fw, vec![n1], pod("p", 100, "2", json!({})));
    assert!(s.is_success(), "{s:?}");
    assert_eq!(nominated(&r), Some("n1"));
    assert_eq!(fw.nominator().node_of("uid-waiting"), None);
    assert_eq!(fw.nominator().node_of("uid-vip").as_deref(), Some("n1"));
}

fn candidate(name: &str, violations: usize, victims: &[(i32, Option<&str>)]) -> Candidate {
    Candidate {
        name: name.to_owned(),
        num_pdb_violations: violations,
        victims: victims
            .iter()
            .enumerate()
            .map(|(i, (prio, start))| {
                let extra = match start {
                    Some(t) => json!({"status": {"startTime": t}}),
                    None => json!({}),
                };
                Arc::new(PodInfo::new(pod(&format!("{name}-{i}"), *prio, "1", extra)))
            })
            .collect(),
    }
}

#[test]
fn pick_one_node_follows_upstreams_criteria_in_order() {
    let t0 = Some("2025-01-01T00:00:00Z");
    let t1 = Some("2025-01-02T00:00:00Z");
    let pick = |cs: Vec<Candidate>| candidates::pick_one(&cs).unwrap().name.clone();
    // fewest PDB violations
    assert_eq!(
        pick(vec![
            candidate("a", 1, &[(1, t0)]),
            candidate("b", 0, &[(9, t0)])
        ]),
        "b"
    );
    // lowest highest-priority victim
    assert_eq!(
        pick(vec![
            candidate("a", 0, &[(9, t0)]),
            candidate("b", 0, &[(5, t0), (5, t0), (5, t0)])
        ]),
        "b"
    );
    // smallest sum of priorities (negative priorities count positive)
    assert_eq!(
        pick(vec![
            candidate("a", 0, &[(-5, t0), (-5, t0)]),
            candidate("b", 0, &[(-5, t0)])
        ]),
        "b"
    );
    assert_eq!(
        pick(vec![
            candidate("a", 0, &[(5, t0), (4, t0)]),
            candidate("b", 0, &[(5, t0), (3, t0)])
        ]),
        "b"
    );
    // latest start of the highest-priority victims
    assert_eq!(
        pick(vec![
            candidate("a", 0, &[(5, t0)]),
            candidate("b", 0, &[(5, t1)])
        ]),
        "b"
    );
    // then the first
    assert_eq!(
        pick(vec![
            candidate("a", 0, &[(5, t0)]),
            candidate("b", 0, &[(5, t0)])
        ]),
        "a"
    );
}

#[test]
fn pdb_budgets_are_spent_in_order_and_disrupted_pods_are_not_charged() {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "pdb", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 1, "disruptedPods": {"db-0": "2025-01-01T00:00:00Z"},
                   "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}
    }))
    .unwrap();
    let pods: Vec<Arc<PodInfo>> = ["db-0", "db-1", "db-2", "other"]
        .iter()
        .map(|n| {
            let labels = if *n == "other" {
                json!({"app": "web"})
            } else {
                json!({"app": "db"})
            };
            Arc::new(PodInfo::new(pod(
                n,
                1,
                "1",
                json!({"metadata": {"labels": labels}}),
            )))
        })
        .collect();
    let (violating, ok) = candidates::split_by_pdb_violation(pods, &[Arc::new(pdb)]);
    let names = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&violating), vec!["db-2"]);
    assert_eq!(names(&ok), vec!["db-0", "db-1", "other"]);
}
