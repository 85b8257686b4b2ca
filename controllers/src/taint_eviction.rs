//! The taint eviction controller (upstream's `tainteviction` package, the "taint
//! manager"): pods bound to a node with `NoExecute` taints they do not tolerate are
//! deleted at once; pods that tolerate them for `tolerationSeconds` are deleted when
//! that time has passed since the controller first saw them so exposed; removing the
//! taint (or the pod's node changing, or the pod going) cancels a pending deletion.
//! Before deleting, the pod gets the `DisruptionTarget` condition, as upstream's.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::events::Recorder;
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, Pod, PodCondition, PodStatus, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::time::Instant;

use crate::informers::{Change, Informer};
use crate::workqueue::WorkQueue;

/// The controller's name (`--controllers`), also its events' source component.
pub const NAME: &str = "taint-eviction-controller";
/// Its service account: upstream's taint manager reuses the node controller's role.
pub const SERVICE_ACCOUNT: &str = "node-controller";
/// The `NoExecute` effect.
pub const NO_EXECUTE: &str = "NoExecute";

/// Deletion attempts per pod (upstream's `retries`), 10 ms apart.
const RETRIES: u32 = 5;

/// Errors from evicting a pod.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about the pod failed.
    #[error("pod {pod}: {source}")]
    Pod {
        /// `namespace/name`.
        pod: String,
        /// The cause.
        source: kube::Error,
    },
}

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`): the
/// effect matches or is empty, the key matches or is empty, and the operator is
/// `Exists` or the values are equal.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// For each taint, the first toleration tolerating it (upstream's
/// `GetMatchingTolerations`); `None` when some taint is not tolerated.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// When a pod exposed to some `NoExecute` taints is to be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates them all forever.
    Never,
    /// Some taint is not tolerated: at once, dropping any deletion scheduled.
    Now,
    /// This long after the controller first saw it exposed (zero: at once).
    After(Duration),
}

/// The eviction of a pod with `tolerations` on a node tainted `taints` (all
/// `NoExecute`), as upstream's `processPodOnNode`: at once when some taint is not
/// tolerated, else after the least `tolerationSeconds` of the tolerations used (zero or
/// negative meaning at once), never when none of them is bounded.
pub fn eviction(taints: &[Taint], tolerations: &[Toleration]) -> Eviction {
    let Some(used) = matching_tolerations(taints, tolerations) else {
        return Eviction::Now;
    };
    if used.is_empty() {
        // no taint at all: upstream's getMinTolerationTime says "now", but its callers
        // never ask without taints; nothing threatens such a pod
        return Eviction::Never;
    }
    match used.iter().filter_map(|t| t.toleration_seconds).min() {
        None => Eviction::Never,
        Some(seconds) => Eviction::After(Duration::from_secs(seconds.max(0).unsigned_abs())),
    }
}

/// The `NoExecute` taints of `node`.
pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|taints| {
            taints
                .iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `condition` in `status` as upstream's `UpdatePodCondition`: the transition time
/// is now unless the status is unchanged; returns whether anything changed.
pub(crate) fn set_pod_condition(status: &mut PodStatus, mut condition: PodCondition) -> bool {
    condition.last_transition_time = Some(Time(jiff::Timestamp::now()));
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let Some(old) = conditions.iter_mut().find(|c| c.type_ == condition.type_) else {
        conditions.push(condition);
        return true;
    };
    if condition.status == old.status {
        condition.last_transition_time = old.last_transition_time.clone();
    }
    let unchanged = condition.status == old.status
        && condition.reason == old.reason
        && condition.message == old.message
        && condition.last_probe_time == old.last_probe_time
        && condition.last_transition_time == old.last_transition_time;
    *old = condition;
    !unchanged
}

/// The pods of each node by `namespace/name`, kept by an informer handler (upstream's
/// `spec.nodeName` pod index).
#[derive(Clone, Default)]
pub(crate) struct PodsByNode(Arc<Mutex<HashMap<String, BTreeSet<PodName>>>>);

/// A pod's namespace and name.
type PodName = (String, String);

impl PodsByNode {
    /// Follows one change of a pod.
    pub(crate) fn observe(&self, change: &Change<'_, Pod>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (old, new) = match change {
            Change::Added(p) => (None, Some(p)),
            Change::Updated { old, new } => (Some(old), Some(new)),
            Change::Deleted(p) => (Some(p), None),
        };
        if let Some((node, key)) = old.and_then(|p| node_and_key(p)) {
            if let Some(pods) = map.get_mut(&node) {
                pods.remove(&key);
                if pods.is_empty() {
                    map.remove(&node);
                }
            }
        }
        if let Some((node, key)) = new.and_then(|p| node_and_key(p)) {
            map.entry(node).or_default().insert(key);
        }
    }

    /// The cached pods bound to `node`.
    pub(crate) fn pods(&self, node: &str, pods: &Informer<Pod>) -> Vec<Arc<Pod>> {
        let keys: Vec<PodName> = {
            let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.get(node)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        keys.iter()
            .filter_map(|(ns, name)| pods.get(ns, name))
            .filter(|p| node_name(p) == node)
            .collect()
    }
}

fn node_and_key(pod: &Pod) -> Option<(String, PodName)> {
    let node = node_name(pod);
    if node.is_empty() {
        return None;
    }
    Some((
        node.to_owned(),
        (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ))
}

/// The node a pod is bound to ("" when none).
pub(crate) fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// A unit of work: a node whose `NoExecute` taints changed, or a pod whose node or
/// tolerations did (with the node it was seen on).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    Node(String),
    Pod {
        node: String,
        namespace: String,
        name: String,
    },
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Node(name) => write!(f, "node {name}"),
            Item::Pod {
                namespace, name, ..
            } => write!(f, "pod {namespace}/{name}"),
        }
    }
}

/// A deletion scheduled or done (upstream's `TimedWorkerQueue` entry; a done one stays
/// until cancelled so a pod being deleted is not deleted again).
enum Scheduled {
    Pending {
        id: u64,
        created: Instant,
        task: tokio::task::AbortHandle,
        fired: Arc<std::sync::atomic::AtomicBool>,
    },
    Done,
}

struct Controller {
    client: kube::Client,
    recorder: Recorder,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    by_node: PodsByNode,
    /// The `NoExecute` taints of each tainted node, as last handled.
    tainted: Mutex<HashMap<String, Vec<Taint>>>,
    /// Deletions by `namespace/name`.
    scheduled: Mutex<HashMap<String, Scheduled>>,
    next_id: AtomicU64,
}

/// Starts the controller (the manager's `start` for it).
pub fn start(cx: crate::Context) -> futures::future::BoxFuture<'static, ()> {
    let pods = cx.informers.informer::<Pod>();
    let nodes = cx.informers.informer::<Node>();
    let queue: Arc<WorkQueue<Item>> = WorkQueue::new();
    let controller = Arc::new(Controller {
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        pods: pods.clone(),
        nodes: nodes.clone(),
        by_node: PodsByNode::default(),
        tainted: Mutex::default(),
        scheduled: Mutex::default(),
        next_id: AtomicU64::new(0),
    });
    let by_node = controller.by_node.clone();
    let q = queue.clone();
    pods.add_handler(move |change: &Change<'_, Pod>| {
        by_node.observe(change);
        let (old, new) = match change {
            Change::Added(p) => (None, Some(p)),
            Change::Updated { old, new } => (Some(old), Some(new)),
            Change::Deleted(p) => (Some(p), None),
        };
        // only a change of node or tolerations matters, as upstream's PodUpdated
        if let (Some(old), Some(new)) = (old, new) {
            if node_name(old) == node_name(new) && tolerations(old) == tolerations(new) {
                return;
            }
        }
        let Some(pod) = new.or(old) else { return };
        q.add(Item::Pod {
            node: node_name(pod).to_owned(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        });
    });
    let q = queue.clone();
    nodes.add_handler(move |change: &Change<'_, Node>| {
        let node = match change {
            Change::Added(n) | Change::Deleted(n) => n,
            Change::Updated { old, new } => {
                if no_execute_taints(old) == no_execute_taints(new) {
                    return;
                }
                new
            }
        };
        q.add(Item::Node(node.metadata.name.clone().unwrap_or_default()));
    });
    Box::pin(async move {
        pods.wait_synced().await;
        nodes.wait_synced().await;
        // one worker: node and pod items of the same node must not race (upstream
        // shards both by node name for the same reason); handling them makes no request
        queue
            .run(1, None, NAME, move |item| {
                let controller = controller.clone();
                async move {
                    match item {
                        Item::Node(name) => controller.handle_node(&name),
                        Item::Pod {
                            node,
                            namespace,
                            name,
                        } => controller.handle_pod(&node, &namespace, &name),
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .await;
    })
}

impl Controller {
    fn handle_node(self: &Arc<Self>, name: &str) {
        let Some(node) = self.nodes.get("", name) else {
            self.tainted_lock().remove(name);
            return;
        };
        let taints = no_execute_taints(&node);
        {
            let mut tainted = self.tainted_lock();
            if taints.is_empty() {
                tainted.remove(name);
            } else {
                tainted.insert(name.to_owned(), taints.clone());
            }
        }
        let now = Instant::now();
        for pod in self.by_node.pods(name, &self.pods) {
            let key = crate::informers::key_of(pod.as_ref());
            if taints.is_empty() {
                self.cancel(&key);
            } else {
                self.process(&key, tolerations(&pod), &taints, now);
            }
        }
    }

    fn handle_pod(self: &Arc<Self>, node: &str, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        let Some(pod) = self.pods.get(namespace, name) else {
            self.cancel(&key);
            return;
        };
        // a later item (keyed by the new node) handles a pod that moved
        if node_name(&pod) != node || node.is_empty() {
            return;
        }
        let Some(taints) = self.tainted_lock().get(node).cloned() else {
            return;
        };
        self.process(&key, tolerations(&pod), &taints, Instant::now());
    }

    /// Schedules, keeps or cancels the deletion of the pod `key`, as upstream's
    /// `processPodOnNode`.
    fn process(
        self: &Arc<Self>,
        key: &str,
        tolerations: &[Toleration],
        taints: &[Taint],
        now: Instant,
    ) {
        match eviction(taints, tolerations) {
            Eviction::Never => self.cancel(key),
            Eviction::Now => {
                self.cancel(key);
                self.schedule(key, now, now);
            }
            Eviction::After(delay) => {
                let mut created = now;
                let existing = match self.scheduled_lock().get(key) {
                    Some(Scheduled::Pending { created, .. }) => Some(*created),
                    _ => None,
                };
                if let Some(earlier) = existing {
                    // as upstream, an eviction scheduled from an earlier start stands
                    // (with its own deadline)
                    if earlier < now {
                        return;
                    }
                    self.cancel(key);
                    created = earlier;
                }
                // a toleration too long to express as an instant never ends
                if let Some(at) = created.checked_add(delay) {
                    self.schedule(key, created, at);
                }
            }
        }
    }

    /// Cancels the deletion of `key`, with an event when one was pending.
    fn cancel(&self, key: &str) {
        let removed = self.scheduled_lock().remove(key);
        if let Some(Scheduled::Pending { task, fired, .. }) = removed {
            // a deletion under way finishes; one still waiting is dropped
            if !fired.load(Ordering::Acquire) {
                task.abort();
            }
            self.event(key, format!("Cancelling deletion of Pod {key}"));
        }
    }

    fn schedule(self: &Arc<Self>, key: &str, created: Instant, at: Instant) {
        let mut scheduled = self.scheduled_lock();
        if scheduled.contains_key(key) {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let controller = self.clone();
        let owned = key.to_owned();
        let flag = fired.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            flag.store(true, Ordering::Release);
            controller.fire(id, &owned).await;
        });
        scheduled.insert(
            key.to_owned(),
            Scheduled::Pending {
                id,
                created,
                task: task.abort_handle(),
                fired,
            },
        );
    }

    /// Deletes the pod `key` now (upstream's `deletePodHandler`).
    async fn fire(&self, id: u64, key: &str) {
        tracing::info!(controller = NAME, pod = %key, "deleting pod");
        self.event(key, format!("Marking for deletion Pod {key}"));
        let (namespace, name) = crate::informers::split_key(key);
        let mut result = Ok(());
        for _ in 0..RETRIES {
            result = self.condition_and_delete(namespace, name).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut scheduled = self.scheduled_lock();
        let ours = matches!(scheduled.get(key), Some(Scheduled::Pending { id: current, .. }) if *current == id);
        match result {
            Ok(()) if ours => {
                scheduled.insert(key.to_owned(), Scheduled::Done);
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(controller = NAME, error = %e, "evicting pod failed");
                if ours {
                    scheduled.remove(key);
                }
            }
        }
    }

    /// Marks the pod a disruption target, then deletes it; a pod already gone is done.
    async fn condition_and_delete(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let fail = |source| Error::Pod {
            pod: format!("{namespace}/{name}"),
            source,
        };
        let Some(mut pod) = api.get_opt(name).await.map_err(fail)? else {
            return Ok(());
        };
        let changed = set_pod_condition(
            pod.status.get_or_insert_with(PodStatus::default),
            PodCondition {
                type_: "DisruptionTarget".to_owned(),
                status: "True".to_owned(),
                reason: Some("DeletionByTaintManager".to_owned()),
                message: Some("Taint manager: deleting due to NoExecute taint".to_owned()),
                ..PodCondition::default()
            },
        );
        if changed {
            match api.replace_status(name, &PostParams::default(), &pod).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(fail(e)),
            }
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(fail(e)),
        }
    }

    fn event(&self, key: &str, message: String) {
        let (namespace, name) = crate::informers::split_key(key);
        let uid = self
            .pods
            .get(namespace, name)
            .and_then(|p| p.metadata.uid.clone());
        self.recorder.event_about(
            ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                uid,
                ..ObjectReference::default()
            },
            "Normal",
            "TaintManagerEviction",
            message,
            NAME,
        );
    }

    fn tainted_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Taint>>> {
        self.tainted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scheduled_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Scheduled>> {
        self.scheduled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: effect.to_owned(),
            time_added: None,
        }
    }

    fn toleration(
        key: &str,
        operator: &str,
        value: Option<&str>,
        effect: &str,
        seconds: Option<i64>,
    ) -> Toleration {
        Toleration {
            key: Some(key.to_owned()).filter(|k| !k.is_empty()),
            operator: Some(operator.to_owned()).filter(|o| !o.is_empty()),
            value: value.map(str::to_owned),
            effect: Some(effect.to_owned()).filter(|e| !e.is_empty()),
            toleration_seconds: seconds,
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    const NOT_READY: &str = "node.kubernetes.io/not-ready";

    #[test]
    fn tolerations_match_on_key_effect_and_operator() {
        let t = taint("dedicated", Some("gpu"), NO_EXECUTE);
        assert!(tolerates(
            &toleration("dedicated", "Equal", Some("gpu"), NO_EXECUTE, None),
            &t
        ));
        assert!(tolerates(
            &toleration("dedicated", "", Some("gpu"), "", None),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Equal", Some("cpu"), NO_EXECUTE, None),
            &t
        ));
        assert!(tolerates(
            &toleration("dedicated", "Exists", None, NO_EXECUTE, None),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Exists", None, "NoSchedule", None),
            &t
        ));
        assert!(!tolerates(
            &toleration("other", "Exists", None, "", None),
            &t
        ));
        // an empty key with Exists tolerates every taint
        assert!(tolerates(&toleration("", "Exists", None, "", None), &t));
        assert!(!tolerates(
            &toleration("dedicated", "Gt", Some("gpu"), "", None),
            &t
        ));
    }

    #[test]
    fn an_untolerated_taint_evicts_at_once() {
        let taints = [
            taint(UNREACHABLE, None, NO_EXECUTE),
            taint("x", None, NO_EXECUTE),
        ];
        let tolerations = [toleration(
            UNREACHABLE,
            "Exists",
            None,
            NO_EXECUTE,
            Some(300),
        )];
        assert!(matching_tolerations(&taints, &tolerations).is_none());
        assert_eq!(eviction(&taints, &tolerations), Eviction::Now);
        assert_eq!(eviction(&taints, &[]), Eviction::Now);
    }

    #[test]
    fn the_delay_is_the_least_toleration_seconds_of_the_tolerations_used() {
        // upstream getMinTolerationTime over GetMatchingTolerations
        let taints = [
            taint(UNREACHABLE, None, NO_EXECUTE),
            taint(NOT_READY, None, NO_EXECUTE),
        ];
        let tolerations = [
            toleration(UNREACHABLE, "Exists", None, NO_EXECUTE, Some(30)),
            toleration(NOT_READY, "Exists", None, NO_EXECUTE, Some(10)),
            // matches both but comes after: not used
            toleration("", "Exists", None, "", Some(1)),
        ];
        assert_eq!(
            eviction(&taints, &tolerations),
            Eviction::After(Duration::from_secs(10))
        );
        // a bounded one beside an unbounded one bounds the stay
        let tolerations = [
            toleration(UNREACHABLE, "Exists", None, NO_EXECUTE, None),
            toleration(NOT_READY, "Exists", None, NO_EXECUTE, Some(7)),
        ];
        assert_eq!(
            eviction(&taints, &tolerations),
            Eviction::After(Duration::from_secs(7))
        );
        // zero or negative seconds mean now
        let tolerations = [toleration("", "Exists", None, "", Some(-5))];
        assert_eq!(
            eviction(&taints, &tolerations),
            Eviction::After(Duration::ZERO)
        );
    }

    #[test]
    fn tolerations_without_seconds_tolerate_forever() {
        let taints = [taint(UNREACHABLE, None, NO_EXECUTE)];
        let tolerations = [toleration(UNREACHABLE, "Exists", None, NO_EXECUTE, None)];
        assert_eq!(eviction(&taints, &tolerations), Eviction::Never);
        assert_eq!(eviction(&[], &tolerations), Eviction::Never);
    }

    #[test]
    fn only_no_execute_taints_count() {
        let node = Node {
            spec: Some(k8s_openapi::api::core::v1::NodeSpec {
                taints: Some(vec![
                    taint(NOT_READY, None, "NoSchedule"),
                    taint(UNREACHABLE, None, NO_EXECUTE),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            no_execute_taints(&node),
            [taint(UNREACHABLE, None, NO_EXECUTE)]
        );
    }

    #[test]
    fn a_pod_condition_changes_only_when_it_differs() {
        let mut status = PodStatus::default();
        let cond = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            ..Default::default()
        };
        assert!(set_pod_condition(&mut status, cond.clone()));
        let first = status.conditions.as_ref().unwrap()[0]
            .last_transition_time
            .clone();
        assert!(!set_pod_condition(&mut status, cond.clone()));
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].last_transition_time,
            first
        );
        assert!(set_pod_condition(
            &mut status,
            PodCondition {
                status: "False".into(),
                ..cond
            }
        ));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn pods_are_found_by_node() {
        let informer = Informer::<Pod>::default();
        let index = PodsByNode::default();
        let pod = |name: &str, node: &str| Pod {
            metadata: kube::api::ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: Some(node.into()).filter(|n: &String| !n.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = Arc::new(pod("a", "n1"));
        let b = Arc::new(pod("b", ""));
        let b2 = Arc::new(pod("b", "n1"));
        index.observe(&Change::Added(&a));
        index.observe(&Change::Added(&b));
        index.observe(&Change::Updated { old: &b, new: &b2 });
        let map = index.0.lock().unwrap().clone();
        assert_eq!(map["n1"].len(), 2);
        index.observe(&Change::Deleted(&a));
        index.observe(&Change::Deleted(&b2));
        assert!(index.0.lock().unwrap().is_empty());
        assert!(index.pods("n1", &informer).is_empty());
    }
}
