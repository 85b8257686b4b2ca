//! TaintToleration: upstream's `tainttoleration` plugin. Filter rejects nodes with a
//! `NoSchedule` or `NoExecute` taint the pod does not tolerate; Score prefers nodes with
//! fewer untolerated `PreferNoSchedule` taints.
//!
//! The toleration matching here ([`tolerates`], [`find_untolerated_taint`]) is
//! upstream's `Toleration.ToleratesTaint` and component-helpers'
//! `FindMatchingUntoleratedTaint`, exported for the other places that need them
//! (NodeUnschedulable, PodTopologySpread's node inclusion policy, DaemonSets).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::node_affinity::default_normalize_score;
use crate::framework::events::EventObject;
use crate::framework::registry::Handle;
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin,
    MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, PodInfo, PreScorePlugin, QueueingHint,
    ScorePlugin, Status,
};

/// The plugin's name.
pub const NAME: &str = "TaintToleration";

/// The cycle-state key of the tolerations Score looks at.
const PRE_SCORE_STATE_KEY: &str = "PreScoreTaintToleration";

/// `NoSchedule`: new pods that do not tolerate the taint are not scheduled.
pub const EFFECT_NO_SCHEDULE: &str = "NoSchedule";
/// `PreferNoSchedule`: the scheduler avoids the node for pods that do not tolerate it.
pub const EFFECT_PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
/// `NoExecute`: pods that do not tolerate the taint are not scheduled and are evicted.
pub const EFFECT_NO_EXECUTE: &str = "NoExecute";

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`): an
/// empty effect matches every effect, an empty key matches every key, and the operator
/// `Exists` matches any value while `Equal` (or none) needs the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        // an operator this version does not know tolerates nothing
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint` (upstream's
/// `TolerationsTolerateTaint`).
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` that `filter` selects and no toleration tolerates (upstream's
/// `FindMatchingUntoleratedTaint`), or `None` when the pod tolerates them all.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations_tolerate_taint(tolerations, t))
}

/// Selects the taints that keep pods off a node: `NoSchedule` and `NoExecute`
/// (upstream's `DoNotScheduleTaintsFilterFunc`).
pub fn is_do_not_schedule_taint(taint: &Taint) -> bool {
    taint.effect == EFFECT_NO_SCHEDULE || taint.effect == EFFECT_NO_EXECUTE
}

/// The taints of a node (none when it has no spec).
fn node_taints(node: &k8s_openapi::api::core::v1::Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The tolerations of a pod.
fn pod_tolerations(pod: &k8s_openapi::api::core::v1::Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Filters on `NoSchedule`/`NoExecute` taints and scores on `PreferNoSchedule` ones.
#[derive(Debug, Default)]
pub struct TaintToleration;

/// What PreScore keeps for Score: the pod's tolerations that can tolerate a
/// `PreferNoSchedule` taint.
#[derive(Clone, Debug)]
struct PreScoreState {
    tolerations_prefer_no_schedule: Vec<Toleration>,
}

/// Requeues a pod after a node change only when a taint that rejected it is gone
/// (upstream's `isSchedulableAfterNodeChange`).
fn schedulable_after_node_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Node(modified)) = new else {
        // not a node: upstream answers Queue on a type error
        return QueueingHint::Queue;
    };
    let tolerations = pod_tolerations(&pod.pod);
    let was_untolerated = match old {
        Some(EventObject::Node(original)) => {
            find_untolerated_taint(node_taints(original), tolerations, is_do_not_schedule_taint)
                .is_some()
        }
        // an added node: nothing tolerated it before
        _ => true,
    };
    let is_untolerated =
        find_untolerated_taint(node_taints(modified), tolerations, is_do_not_schedule_taint)
            .is_some();
    if was_untolerated && !is_untolerated {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

/// Requeues a pod when its own tolerations changed (upstream's
/// `isSchedulableAfterPodTolerationChange`).
fn schedulable_after_pod_toleration_change(
    pod: &PodInfo,
    _old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    match new {
        Some(EventObject::Pod(modified)) => {
            if modified.metadata.uid.as_deref().unwrap_or("") == pod.uid() {
                QueueingHint::Queue
            } else {
                QueueingHint::Skip
            }
        }
        _ => QueueingHint::Queue,
    }
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registrations with queueing hints enabled: a node added or its
        // taints changed, and the pod's own tolerations changed.
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT),
                schedulable_after_node_change,
            ),
            ClusterEventWithHint::with_hint(
                EventResource::UnscheduledPod,
                ActionType::UPDATE_POD_TOLERATION,
                schedulable_after_pod_toleration_change,
            ),
        ]
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match find_untolerated_taint(
            node_taints(node.node()),
            pod_tolerations(&pod.pod),
            is_do_not_schedule_taint,
        ) {
            None => Status::success(),
            // Upstream formats `{%s: %s}` with the key and value, so a taint without a
            // value reads `{key: }`.
            Some(taint) => Status::new(
                Code::UnschedulableAndUnresolvable,
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    taint.key,
                    taint.value.as_deref().unwrap_or("")
                ),
            ),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>]) -> Status {
        // An empty effect covers every effect, PreferNoSchedule included.
        let tolerations_prefer_no_schedule = pod_tolerations(&pod.pod)
            .iter()
            .filter(|t| {
                let effect = t.effect.as_deref().unwrap_or("");
                effect.is_empty() || effect == EFFECT_PREFER_NO_SCHEDULE
            })
            .cloned()
            .collect();
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                tolerations_prefer_no_schedule,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return (
                0,
                Status::error(format!(
                    "failed to read {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
                )),
            );
        };
        // The raw score counts what the pod would rather avoid; normalization reverses it.
        let intolerable = node_taints(node.node())
            .iter()
            .filter(|t| t.effect == EFFECT_PREFER_NO_SCHEDULE)
            .filter(|t| !tolerations_tolerate_taint(&s.tolerations_prefer_no_schedule, t))
            .count();
        (intolerable as i64, Status::success())
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(TaintToleration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn pod(tolerations: serde_json::Value) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-p"},
            "spec": {"containers": [], "tolerations": tolerations}
        }))
        .unwrap();
        PodInfo::new(p)
    }

    fn node_obj(name: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"taints": taints}}))
            .unwrap()
    }

    fn node(name: &str, taints: serde_json::Value) -> NodeInfo {
        NodeInfo::new(node_obj(name, taints))
    }

    fn taint(v: serde_json::Value) -> Taint {
        serde_json::from_value(v).unwrap()
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let t = taint(json!({"key": "foo", "value": "bar", "effect": "NoSchedule"}));
        let cases = [
            (
                json!({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "foo", "value": "bar", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "foo", "operator": "Equal", "value": "baz", "effect": "NoSchedule"}),
                false,
            ),
            (
                json!({"key": "foo", "operator": "Exists", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "foo", "operator": "Exists"}), true),
            (
                json!({"key": "foo", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            // empty key with Exists tolerates everything
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), true),
            (
                json!({"operator": "Exists", "effect": "PreferNoSchedule"}),
                false,
            ),
            (
                json!({"key": "foo", "operator": "Gt", "value": "bar"}),
                false,
            ),
        ];
        for (tol, want) in cases {
            assert_eq!(tolerates(&toleration(tol.clone()), &t), want, "{tol}");
        }
        // a taint without value matches an Equal toleration without value
        let novalue = taint(json!({"key": "foo", "effect": "NoSchedule"}));
        assert!(tolerates(
            &toleration(json!({"key": "foo", "operator": "Equal"})),
            &novalue
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "foo", "operator": "Equal", "value": "x"})),
            &novalue
        ));
    }

    #[test]
    fn find_untolerated_taint_returns_the_first_selected() {
        let taints = vec![
            taint(json!({"key": "soft", "effect": "PreferNoSchedule"})),
            taint(json!({"key": "a", "value": "1", "effect": "NoSchedule"})),
            taint(json!({"key": "b", "value": "2", "effect": "NoExecute"})),
        ];
        let tols = vec![toleration(json!({"key": "a", "operator": "Exists"}))];
        let got = find_untolerated_taint(&taints, &tols, is_do_not_schedule_taint).unwrap();
        assert_eq!(got.key, "b");
        assert_eq!(
            find_untolerated_taint(&taints, &tols, |_| true)
                .unwrap()
                .key,
            "soft"
        );
        assert!(
            find_untolerated_taint(
                &taints,
                &[toleration(json!({"operator": "Exists"}))],
                |_| true
            )
            .is_none()
        );
    }

    fn filter(p: &PodInfo, n: &NodeInfo) -> Status {
        TaintToleration.filter(&CycleState::default(), p, n)
    }

    #[test]
    fn filter_cases_from_upstream() {
        // a pod without tolerations on a tainted node
        let s = filter(
            &pod(json!([])),
            &node(
                "n",
                json!([{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]),
            ),
        );
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.message(),
            "node(s) had untolerated taint {dedicated: user1}"
        );
        // tolerated by key and value
        let p = pod(json!([{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]));
        assert!(
            filter(
                &p,
                &node(
                    "n",
                    json!([{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}])
                )
            )
            .is_success()
        );
        // value differs
        let s = filter(
            &pod(
                json!([{"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"}]),
            ),
            &node(
                "n",
                json!([{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]),
            ),
        );
        assert_eq!(
            s.message(),
            "node(s) had untolerated taint {dedicated: user1}"
        );
        // Exists operator
        assert!(
            filter(
                &pod(json!([{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}])),
                &node(
                    "n",
                    json!([{"key": "foo", "value": "bar", "effect": "NoSchedule"}])
                )
            )
            .is_success()
        );
        // several taints, all tolerated
        let p = pod(json!([
            {"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"},
            {"key": "foo", "operator": "Exists", "effect": "NoSchedule"}
        ]));
        assert!(
            filter(
                &p,
                &node(
                    "n",
                    json!([
                        {"key": "dedicated", "value": "user2", "effect": "NoSchedule"},
                        {"key": "foo", "value": "bar", "effect": "NoSchedule"}
                    ])
                )
            )
            .is_success()
        );
        // effect differs
        let s = filter(
            &pod(
                json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]),
            ),
            &node(
                "n",
                json!([{"key": "foo", "value": "bar", "effect": "NoSchedule"}]),
            ),
        );
        assert_eq!(s.message(), "node(s) had untolerated taint {foo: bar}");
        // PreferNoSchedule taints never filter
        assert!(
            filter(
                &pod(json!([])),
                &node(
                    "n",
                    json!([{"key": "foo", "value": "bar", "effect": "PreferNoSchedule"}])
                )
            )
            .is_success()
        );
        // NoExecute taints filter; a valueless taint prints an empty value
        let s = filter(
            &pod(json!([])),
            &node(
                "n",
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute"}]),
            ),
        );
        assert_eq!(
            s.message(),
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        );
        // empty-effect toleration tolerates every effect
        assert!(
            filter(
                &pod(json!([{"key": "foo", "operator": "Exists"}])),
                &node(
                    "n",
                    json!([{"key": "foo", "value": "bar", "effect": "NoExecute"}])
                )
            )
            .is_success()
        );
        // an untainted node
        assert!(
            filter(
                &pod(json!([])),
                &NodeInfo::new(serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap())
            )
            .is_success()
        );
    }

    fn scores(p: &PodInfo, nodes: Vec<NodeInfo>) -> Vec<i64> {
        let pl = TaintToleration;
        let nodes: Vec<Arc<NodeInfo>> = nodes.into_iter().map(Arc::new).collect();
        let mut state = CycleState::default();
        assert!(pl.pre_score(&mut state, p, &nodes).is_success());
        let mut list: Vec<NodeScore> = nodes
            .iter()
            .map(|n| {
                let (score, status) = pl.score(&state, p, n);
                assert!(status.is_success());
                NodeScore {
                    name: n.name().to_owned(),
                    score,
                }
            })
            .collect();
        assert!(pl.normalize_score(&state, p, &mut list).is_success());
        list.into_iter().map(|s| s.score).collect()
    }

    #[test]
    fn score_cases_from_upstream() {
        // the pod tolerates the taint of the first node only
        let p = pod(
            json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(
            scores(
                &p,
                vec![
                    node(
                        "n1",
                        json!([{"key": "foo", "value": "bar", "effect": "PreferNoSchedule"}])
                    ),
                    node(
                        "n2",
                        json!([{"key": "foo", "value": "blah", "effect": "PreferNoSchedule"}])
                    ),
                ]
            ),
            vec![100, 0]
        );
        // all taints tolerated, or none present: everyone gets the max
        let p = pod(json!([
            {"key": "cpu-type", "operator": "Equal", "value": "arm64", "effect": "PreferNoSchedule"},
            {"key": "disk-type", "operator": "Equal", "value": "ssd", "effect": "PreferNoSchedule"}
        ]));
        assert_eq!(
            scores(
                &p,
                vec![
                    node("n1", json!([])),
                    node(
                        "n2",
                        json!([{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}])
                    ),
                    node(
                        "n3",
                        json!([
                            {"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"},
                            {"key": "disk-type", "value": "ssd", "effect": "PreferNoSchedule"}
                        ])
                    ),
                ]
            ),
            vec![100, 100, 100]
        );
        // more intolerable taints, lower score
        let p = pod(
            json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(
            scores(
                &p,
                vec![
                    node("n1", json!([])),
                    node(
                        "n2",
                        json!([{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}])
                    ),
                    node(
                        "n3",
                        json!([
                            {"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"},
                            {"key": "disk-type", "value": "ssd", "effect": "PreferNoSchedule"}
                        ])
                    ),
                ]
            ),
            vec![100, 50, 0]
        );
        // only PreferNoSchedule taints count; a NoSchedule toleration does not help scoring
        let p = pod(
            json!([{"key": "cpu-type", "operator": "Equal", "value": "arm64", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            scores(
                &p,
                vec![
                    node("n1", json!([])),
                    node(
                        "n2",
                        json!([{"key": "cpu-type", "value": "arm64", "effect": "NoSchedule"}])
                    ),
                    node(
                        "n3",
                        json!([{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}])
                    ),
                ]
            ),
            vec![100, 100, 0]
        );
        // an empty-effect toleration counts for PreferNoSchedule
        let p = pod(json!([{"key": "cpu-type", "operator": "Exists"}]));
        assert_eq!(
            scores(
                &p,
                vec![
                    node(
                        "n1",
                        json!([{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}])
                    ),
                    node(
                        "n2",
                        json!([{"key": "other", "effect": "PreferNoSchedule"}])
                    ),
                ]
            ),
            vec![100, 0]
        );
    }

    #[test]
    fn score_without_pre_score_is_an_error() {
        let (_, status) = TaintToleration.score(
            &CycleState::default(),
            &pod(json!([])),
            &node("n", json!([])),
        );
        assert_eq!(status.code, Code::Error);
    }

    #[test]
    fn node_change_hint_queues_only_when_a_rejecting_taint_goes() {
        let p = pod(json!([{"key": "ok", "operator": "Exists"}]));
        let ev = |taints: serde_json::Value| EventObject::Node(Arc::new(node_obj("n", taints)));
        let bad = ev(json!([{"key": "bad", "effect": "NoSchedule"}]));
        let good = ev(json!([{"key": "ok", "effect": "NoSchedule"}]));
        let soft = ev(json!([{"key": "bad", "effect": "PreferNoSchedule"}]));
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&good)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&bad)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&bad), Some(&soft)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&good), Some(&soft)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&good), Some(&bad)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn toleration_change_hint_queues_only_the_pod_itself() {
        let p = pod(json!([]));
        let same = EventObject::Pod(p.pod.clone());
        let other: Pod =
            serde_json::from_value(json!({"metadata": {"name": "o", "uid": "uid-o"}})).unwrap();
        let other = EventObject::Pod(Arc::new(other));
        assert_eq!(
            schedulable_after_pod_toleration_change(&p, Some(&same), Some(&same)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_pod_toleration_change(&p, Some(&other), Some(&other)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn constructor_and_registrations() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_filter().is_some() && pl.as_pre_score().is_some() && pl.as_score().is_some());
        assert!(pl.as_pre_filter().is_none());
        let events = pl.events_to_register();
        assert_eq!(events[0].event.resource, EventResource::Node);
        assert_eq!(
            events[0].event.action,
            ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT)
        );
        assert_eq!(events[1].event.action, ActionType::UPDATE_POD_TOLERATION);
    }
}
