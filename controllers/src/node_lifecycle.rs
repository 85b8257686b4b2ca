//! The node lifecycle controller (upstream's `nodelifecycle` package, in its
//! taint-based mode, the only one left in v1.33):
//!
//! - taints nodes by condition: `NoSchedule` taints follow the Ready, pressure and
//!   network conditions and `spec.unschedulable` (so the `not-ready` taint the
//!   apiserver puts on new nodes goes once the kubelet reports Ready);
//! - watches node health every `--node-monitor-period`: a node whose Ready heartbeat
//!   and Lease are older than the grace period gets its conditions set to Unknown,
//!   then the `unreachable` (or, when Ready is False, `not-ready`) `NoExecute` taint,
//!   added at a per-zone rate (taint eviction then evicts its pods), and its pods are
//!   marked not Ready; a node Ready again loses those taints;
//! - zones: as upstream, tainting slows down in a partly disrupted zone and stops
//!   altogether when every zone is fully disrupted (the control plane, not the
//!   nodes, is then the likely culprit).
//!
//! Upstream's flags `--node-eviction-rate`, `--secondary-node-eviction-rate`,
//! `--large-cluster-size-threshold` and `--unhealthy-zone-threshold` are fixed at their
//! defaults here; the beta OS/arch label reconciliation is left out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_base::events::Recorder;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod, PodStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::Settings;
use crate::informers::{Change, Informer};
use crate::taint_eviction::{PodsByNode, node_name, set_pod_condition};
use crate::workqueue::WorkQueue;

/// The controller's name (`--controllers`).
pub const NAME: &str = "node-lifecycle-controller";
/// Its service account.
pub const SERVICE_ACCOUNT: &str = "node-controller";
/// Its events' source component (upstream's recorder says `node-controller`).
const COMPONENT: &str = "node-controller";

/// The taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node under memory pressure.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The taint of a node under disk pressure.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The taint of a node running out of process ids.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The taint of a node whose network is not set up.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = crate::taint_eviction::NO_EXECUTE;

/// How often queued nodes are tainted `NoExecute` (upstream's `NodeEvictionPeriod`).
const TAINTING_PERIOD: Duration = Duration::from_millis(100);
/// Taints per second and zone normally (`--node-eviction-rate`).
const EVICTION_RATE: f64 = 0.1;
/// ... in a partly disrupted large zone (`--secondary-node-eviction-rate`).
const SECONDARY_EVICTION_RATE: f64 = 0.01;
/// Zones up to this size stop tainting when partly disrupted
/// (`--large-cluster-size-threshold`).
const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// The share of not-Ready nodes (of more than two) that makes a zone partly disrupted
/// (`--unhealthy-zone-threshold`).
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Health updates of one node per pass (upstream's `NodeHealthUpdateRetry`), 20 ms apart.
const HEALTH_RETRIES: u32 = 5;
/// Conflicting taint updates retried (upstream's `UpdateTaintBackoff` steps).
const TAINT_RETRIES: u32 = 5;
/// Nodes whose health is updated at once (upstream's `nodeUpdateWorkerSize`).
const WORKERS: usize = 8;
/// A label that keeps a node out of the zone disruption counts.
const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// Errors from the controller's writes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about a node failed.
    #[error("node {node}: {source}")]
    Node {
        /// The node.
        node: String,
        /// The cause.
        source: kube::Error,
    },
    /// A request about a pod failed.
    #[error("pod {pod}: {source}")]
    Pod {
        /// `namespace/name`.
        pod: String,
        /// The cause.
        source: kube::Error,
    },
}

// ---- taints by condition ----

/// The `NoSchedule` taint key a node condition in a status calls for.
fn condition_taint(type_: &str, status: &str) -> Option<&'static str> {
    match (type_, status) {
        ("Ready", "False") => Some(TAINT_NOT_READY),
        ("Ready", "Unknown") => Some(TAINT_UNREACHABLE),
        ("MemoryPressure", "True") => Some(TAINT_MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(TAINT_DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(TAINT_NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(TAINT_PID_PRESSURE),
        _ => None,
    }
}

/// Whether this controller owns the `NoSchedule` taint `key`.
fn is_condition_taint(key: &str) -> bool {
    [
        TAINT_NOT_READY,
        TAINT_UNREACHABLE,
        TAINT_MEMORY_PRESSURE,
        TAINT_DISK_PRESSURE,
        TAINT_NETWORK_UNAVAILABLE,
        TAINT_PID_PRESSURE,
        TAINT_UNSCHEDULABLE,
    ]
    .contains(&key)
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_owned(),
        effect: effect.to_owned(),
        value: None,
        time_added: None,
    }
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// Whether `taints` holds one with the key and effect of `wanted` (upstream's
/// `TaintExists`).
fn has_taint(taints: &[Taint], wanted: &Taint) -> bool {
    taints
        .iter()
        .any(|t| t.key == wanted.key && t.effect == wanted.effect)
}

/// The `NoSchedule` taints `node`'s conditions and `spec.unschedulable` call for
/// (upstream's `doNoScheduleTaintingPass`).
pub fn wanted_no_schedule_taints(node: &Node) -> Vec<Taint> {
    let mut wanted: Vec<Taint> = conditions(node)
        .iter()
        .filter_map(|c| condition_taint(&c.type_, &c.status))
        .map(|key| taint(key, NO_SCHEDULE))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    wanted
}

/// The `NoSchedule` taints to add to and remove from `node` so its condition taints
/// match its conditions; other taints are left alone.
pub fn no_schedule_changes(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let wanted = wanted_no_schedule_taints(node);
    let present: Vec<&Taint> = taints(node)
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE && is_condition_taint(&t.key))
        .collect();
    let add = wanted
        .iter()
        .filter(|w| !present.iter().any(|p| p.key == w.key))
        .cloned()
        .collect();
    let remove = present
        .into_iter()
        .filter(|p| !has_taint(&wanted, p))
        .cloned()
        .collect();
    (add, remove)
}

/// `current` with `add` added (replacing one of the same key and effect) and `remove`
/// removed (by key and effect); `None` when nothing changes.
fn changed_taints(current: &[Taint], add: &[Taint], remove: &[Taint]) -> Option<Vec<Taint>> {
    let mut next: Vec<Taint> = current.to_vec();
    for new in add {
        match next
            .iter_mut()
            .find(|t| t.key == new.key && t.effect == new.effect)
        {
            Some(old) => *old = new.clone(),
            None => next.push(new.clone()),
        }
    }
    next.retain(|t| !has_taint(remove, t));
    (next != current).then_some(next)
}

// ---- node health ----

fn conditions(node: &Node) -> &[NodeCondition] {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    conditions(node).iter().find(|c| c.type_ == type_)
}

fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// What the controller remembers of a node's health (upstream's `nodeHealthData`).
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// The node's Ready condition when last seen.
    ready: Option<NodeCondition>,
    /// When the controller last saw the node alive: a new heartbeat or Lease renewal.
    probe: Timestamp,
    /// The renew time of the node's Lease when last seen (`Some(None)`: a Lease
    /// without one).
    lease: Option<Option<Timestamp>>,
}

/// The outcome of one health check of a node.
#[derive(Debug)]
pub struct Check {
    /// What to remember.
    pub health: Health,
    /// The Ready condition as read (upstream's observed condition; a node that never
    /// reported has an Unknown one).
    pub observed_ready: NodeCondition,
    /// The node with its conditions set to Unknown, when its status must be written.
    pub update: Option<Node>,
}

/// Checks `node`'s health at `now` (upstream's `tryUpdateNodeHealth`): a new Ready
/// heartbeat or Lease renewal since `saved` counts as alive; a node not seen alive for
/// the grace period (the startup one if it never reported) has its Ready and pressure
/// conditions set to Unknown.
pub fn check_health(
    saved: Option<&Health>,
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    settings: &Settings,
) -> Check {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let current = condition(node, "Ready").cloned();
    let (grace, observed_ready) = match &current {
        Some(ready) => (settings.node_monitor_grace_period, ready.clone()),
        None => (
            settings.node_startup_grace_period,
            NodeCondition {
                type_: "Ready".to_owned(),
                status: "Unknown".to_owned(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..NodeCondition::default()
            },
        ),
    };
    let mut health = match saved {
        // first sight: alive now (or, never reported, since its creation)
        None if current.is_none() => Health {
            ready: None,
            probe: created,
            lease: None,
        },
        None => Health {
            ready: current.clone(),
            probe: now,
            lease: None,
        },
        Some(saved) => {
            let heartbeat_changed = match (&saved.ready, &current) {
                (None, None) => false,
                (Some(old), Some(new)) => old.last_heartbeat_time != new.last_heartbeat_time,
                // a Ready condition appeared or vanished
                _ => true,
            };
            Health {
                ready: current.clone(),
                probe: if heartbeat_changed { now } else { saved.probe },
                lease: saved.lease,
            }
        }
    };
    // a renewed Lease counts as a heartbeat
    if let Some(lease) = lease {
        let renewed = lease
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let newer = match (&health.lease, renewed) {
            (None, _) => true,
            (Some(Some(old)), Some(new)) => *old < new,
            _ => false,
        };
        if newer {
            health.lease = Some(renewed);
            health.probe = now;
        }
    }
    let stale = grace_ends(health.probe, grace).is_some_and(|end| now > end);
    if !stale {
        return Check {
            health,
            observed_ready,
            update: None,
        };
    }
    let mut updated = node.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    let list = status.conditions.get_or_insert_with(Vec::new);
    // NetworkUnavailable is left alone: the network plugin, not the kubelet, sets it
    for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        match list.iter_mut().find(|c| c.type_ == type_) {
            None => list.push(NodeCondition {
                type_: type_.to_owned(),
                status: "Unknown".to_owned(),
                reason: Some("NodeStatusNeverUpdated".to_owned()),
                message: Some("Kubelet never posted node status.".to_owned()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".to_owned();
                c.reason = Some("NodeStatusUnknown".to_owned());
                c.message = Some("Kubelet stopped posting node status.".to_owned());
                c.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
    let new_ready = condition(&updated, "Ready").cloned();
    let update = (new_ready.as_ref() != Some(&observed_ready)).then_some(updated);
    Check {
        health,
        observed_ready,
        update,
    }
}

fn grace_ends(probe: Timestamp, grace: Duration) -> Option<Timestamp> {
    let grace = jiff::SignedDuration::try_from(grace).ok()?;
    probe.checked_add(grace).ok()
}

// ---- zones ----

/// A node's zone (upstream's `GetZoneKey`): region and zone from the topology labels
/// (the deprecated beta ones first), "" when it has neither.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let label = |beta: &str, ga: &str| {
        labels
            .and_then(|l| l.get(beta).or_else(|| l.get(ga)))
            .cloned()
            .unwrap_or_default()
    };
    let zone = label(
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/zone",
    );
    let region = label(
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/region",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\u{0}:{zone}")
}

/// A zone's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Not yet assessed.
    Initial,
    /// Mostly Ready.
    Normal,
    /// More than two nodes and at least the threshold share not Ready.
    PartialDisruption,
    /// No node Ready.
    FullDisruption,
}

/// The state of a zone whose nodes' Ready statuses are `ready` (upstream's
/// `ComputeZoneState`; a node without a Ready condition counts as not Ready).
pub fn zone_state(ready: &[Option<String>]) -> ZoneState {
    let up = ready
        .iter()
        .filter(|s| s.as_deref() == Some("True"))
        .count();
    let down = ready.len() - up;
    if up == 0 && down > 0 {
        ZoneState::FullDisruption
    } else if down > 2 && down as f64 / ready.len() as f64 >= UNHEALTHY_ZONE_THRESHOLD {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The tainting rate of a zone of `size` nodes in `state`.
fn zone_rate(state: ZoneState, size: usize) -> f64 {
    match state {
        ZoneState::PartialDisruption if size <= LARGE_CLUSTER_THRESHOLD => 0.0,
        ZoneState::PartialDisruption => SECONDARY_EVICTION_RATE,
        _ => EVICTION_RATE,
    }
}

/// A token bucket of burst one (client-go's passive token bucket as the node
/// controller uses it); a zero rate never admits.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            rate,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    fn try_accept(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The nodes of one zone waiting for their `NoExecute` taint (upstream's
/// `RateLimitedTimedQueue`): a node stays known once tainted until it is Ready again,
/// so it is tainted once per outage.
#[derive(Debug)]
struct Tainter {
    queue: VecDeque<String>,
    known: HashSet<String>,
    bucket: Bucket,
    state: ZoneState,
}

impl Tainter {
    fn new() -> Tainter {
        Tainter {
            queue: VecDeque::new(),
            known: HashSet::new(),
            bucket: Bucket::new(EVICTION_RATE),
            state: ZoneState::Initial,
        }
    }

    fn add(&mut self, node: &str) -> bool {
        if !self.known.insert(node.to_owned()) {
            return false;
        }
        self.queue.push_back(node.to_owned());
        true
    }

    fn remove(&mut self, node: &str) {
        self.known.remove(node);
        self.queue.retain(|n| n != node);
    }

    fn set_rate(&mut self, rate: f64) {
        if self.bucket.rate != rate {
            self.bucket = Bucket::new(rate);
        }
    }
}

// ---- the controller ----

struct Controller {
    client: kube::Client,
    recorder: Recorder,
    settings: Arc<Settings>,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    leases: Informer<Lease>,
    by_node: PodsByNode,
    health: Mutex<HashMap<String, Health>>,
    zones: Mutex<HashMap<String, Tainter>>,
    /// Nodes seen, with their uids (upstream's `knownNodeSet`).
    known: Mutex<HashMap<String, String>>,
    /// Nodes whose pods could not all be marked not Ready.
    retry: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the controller (the manager's `start` for it).
pub fn start(cx: crate::Context) -> futures::future::BoxFuture<'static, ()> {
    let nodes = cx.informers.informer::<Node>();
    let pods = cx.informers.informer::<Pod>();
    let leases = cx.informers.informer::<Lease>();
    let controller = Arc::new(Controller {
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        settings: cx.settings.clone(),
        nodes: nodes.clone(),
        pods: pods.clone(),
        leases: leases.clone(),
        by_node: PodsByNode::default(),
        health: Mutex::default(),
        zones: Mutex::default(),
        known: Mutex::default(),
        retry: Mutex::default(),
    });
    let node_queue: Arc<WorkQueue<String>> = WorkQueue::new();
    let pod_queue: Arc<WorkQueue<String>> = WorkQueue::new();
    let q = node_queue.clone();
    nodes.add_handler(move |change: &Change<'_, Node>| match change {
        Change::Added(n) | Change::Updated { new: n, .. } => {
            q.add(n.metadata.name.clone().unwrap_or_default())
        }
        Change::Deleted(_) => {}
    });
    let q = pod_queue.clone();
    let by_node = controller.by_node.clone();
    pods.add_handler(move |change: &Change<'_, Pod>| {
        by_node.observe(change);
        // a pod newly bound to a node that is not Ready is marked not Ready itself
        let (old, new) = match change {
            Change::Added(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
            Change::Deleted(_) => return,
        };
        let node = node_name(new);
        if !node.is_empty() && old.is_none_or(|o| node_name(o) != node) {
            q.add(crate::informers::key_of(new.as_ref()));
        }
    });
    Box::pin(async move {
        nodes.wait_synced().await;
        pods.wait_synced().await;
        leases.wait_synced().await;
        let c = controller.clone();
        let no_schedule = node_queue.run(WORKERS, None, NAME, move |name| {
            let c = c.clone();
            async move { c.no_schedule_pass(&name).await }
        });
        let c = controller.clone();
        let pod_pass = pod_queue.run(4, None, NAME, move |key| {
            let c = c.clone();
            async move { c.pod_pass(&key).await }
        });
        let c = controller.clone();
        let monitor = async move {
            let mut tick = tokio::time::interval(
                c.settings
                    .node_monitor_period
                    .max(Duration::from_millis(10)),
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                c.monitor().await;
            }
        };
        let c = controller.clone();
        let tainting = async move {
            let mut tick = tokio::time::interval(TAINTING_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                c.no_execute_pass().await;
            }
        };
        futures::join!(no_schedule, pod_pass, monitor, tainting);
    })
}

impl Controller {
    /// Keeps `name`'s condition taints in step with its conditions.
    async fn no_schedule_pass(&self, name: &str) -> Result<(), Error> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        let (add, remove) = no_schedule_changes(&node);
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.swap_taints(&node, add, &remove).await
    }

    /// Adds `add` (stamped now) and removes `remove` on the node, as one patch
    /// conditional on its resourceVersion; conflicts are retried on a fresh read
    /// (upstream's `SwapNodeControllerTaint`).
    async fn swap_taints(
        &self,
        node: &Node,
        mut add: Vec<Taint>,
        remove: &[Taint],
    ) -> Result<(), Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let now = Time(Timestamp::now());
        for t in &mut add {
            t.time_added = Some(now.clone());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let fail = |source| Error::Node {
            node: name.clone(),
            source,
        };
        let mut current = node.clone();
        for attempt in 0..TAINT_RETRIES {
            if attempt > 0 {
                match api.get_opt(&name).await.map_err(fail)? {
                    Some(fresh) => current = fresh,
                    None => return Ok(()),
                }
            }
            let Some(next) = changed_taints(taints(&current), &add, remove) else {
                return Ok(());
            };
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "spec": {"taints": if next.is_empty() { None } else { Some(next) }},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 && attempt + 1 < TAINT_RETRIES => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(())
    }

    /// Marks a pod not Ready when its node is not (upstream's `processPod`).
    async fn pod_pass(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = crate::informers::split_key(key);
        let Some(pod) = self.pods.get(namespace, name) else {
            return Ok(());
        };
        let node = node_name(&pod).to_owned();
        let ready = match lock(&self.health).get(&node) {
            // not yet seen: the next node pass handles it
            None => return Ok(()),
            Some(h) => h.ready.as_ref().map(|c| c.status.clone()),
        };
        if self.nodes.get("", &node).is_none() {
            return Ok(());
        }
        match ready {
            Some(status) if status != "True" => self.mark_pods_not_ready(&[pod], &node).await,
            _ => Ok(()),
        }
    }

    /// Sets the Ready condition of `pods` on `node` to False, with a `NodeNotReady`
    /// event on each (upstream's `MarkPodsNotReady`).
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> Result<(), Error> {
        let mut first_error = None;
        for pod in pods.iter().filter(|p| node_name(p) == node) {
            let mut pod = pod.as_ref().clone();
            let status = pod.status.get_or_insert_with(PodStatus::default);
            let Some(mut ready) = status
                .conditions
                .as_ref()
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .cloned()
            else {
                continue;
            };
            ready.status = "False".to_owned();
            if !set_pod_condition(status, ready) {
                continue;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            match api
                .replace_status(&name, &PostParams::default(), &pod)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => {
                    tracing::info!(controller = NAME, pod = %format!("{namespace}/{name}"), error = %e, "marking pod not ready failed");
                    first_error.get_or_insert(Error::Pod {
                        pod: format!("{namespace}/{name}"),
                        source: e,
                    });
                }
            }
            self.recorder.event(
                &pod,
                "Warning",
                "NodeNotReady",
                "Node is not ready".to_owned(),
                COMPONENT,
            );
        }
        first_error.map_or(Ok(()), Err)
    }

    fn node_event(&self, name: &str, uid: Option<String>, reason: &'static str, message: String) {
        self.recorder.event_about(
            ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(name.to_owned()),
                uid,
                ..ObjectReference::default()
            },
            "Normal",
            reason,
            message,
            COMPONENT,
        );
    }

    /// One health pass over every node (upstream's `monitorNodeHealth`).
    async fn monitor(self: &Arc<Self>) {
        let nodes = self.nodes.list();
        let mut added = Vec::new();
        {
            let mut known = lock(&self.known);
            let present: HashSet<&str> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            let gone: Vec<(String, String)> = known
                .iter()
                .filter(|(name, _)| !present.contains(name.as_str()))
                .map(|(n, u)| (n.clone(), u.clone()))
                .collect();
            for (name, uid) in gone {
                known.remove(&name);
                lock(&self.health).remove(&name);
                self.node_event(
                    &name,
                    Some(uid),
                    "RemovingNode",
                    format!("Node {name} event: Removing Node {name} from Controller"),
                );
            }
            for node in &nodes {
                let name = node.metadata.name.clone().unwrap_or_default();
                if !known.contains_key(&name) {
                    known.insert(name.clone(), node.metadata.uid.clone().unwrap_or_default());
                    added.push(node.clone());
                }
            }
        }
        {
            let mut zones = lock(&self.zones);
            for node in &nodes {
                zones.entry(zone_key(node)).or_insert_with(Tainter::new);
            }
        }
        for node in &added {
            let name = node.metadata.name.clone().unwrap_or_default();
            self.node_event(
                &name,
                node.metadata.uid.clone(),
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            );
            if let Err(e) = self.mark_reachable(node).await {
                tracing::info!(controller = NAME, error = %e, "removing NoExecute taints failed");
            }
        }
        let results: Vec<Option<(String, Option<String>)>> = futures::stream::iter(nodes.clone())
            .map(|node| {
                let c = self.clone();
                async move { c.monitor_node(node).await }
            })
            .buffer_unordered(WORKERS)
            .collect()
            .await;
        let mut by_zone: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for (zone, ready) in results.into_iter().flatten() {
            by_zone.entry(zone).or_default().push(ready);
        }
        self.handle_disruption(&by_zone, &nodes).await;
    }

    /// Checks one node's health; returns its zone and Ready status for the disruption
    /// counts (`None` for a node excluded or not checked).
    async fn monitor_node(&self, node: Arc<Node>) -> Option<(String, Option<String>)> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut node = node.as_ref().clone();
        let api: Api<Node> = Api::all(self.client.clone());
        let mut outcome = None;
        for attempt in 0..HEALTH_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match api.get_opt(&name).await {
                    Ok(Some(fresh)) => node = fresh,
                    _ => return None,
                }
            }
            let saved = lock(&self.health).get(&name).cloned();
            let lease = self.leases.get("kube-node-lease", &name);
            let check = check_health(
                saved.as_ref(),
                &node,
                lease.as_deref(),
                Timestamp::now(),
                &self.settings,
            );
            let Some(updated) = check.update else {
                lock(&self.health).insert(name.clone(), check.health);
                outcome = Some((
                    check.observed_ready,
                    condition(&node, "Ready").cloned(),
                    node.clone(),
                ));
                break;
            };
            lock(&self.health).insert(name.clone(), check.health.clone());
            match api
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                Ok(written) => {
                    let mut health = check.health;
                    health.ready = condition(&written, "Ready").cloned();
                    lock(&self.health).insert(name.clone(), health);
                    outcome = Some((
                        check.observed_ready,
                        condition(&updated, "Ready").cloned(),
                        updated,
                    ));
                    break;
                }
                Err(e) => {
                    tracing::debug!(controller = NAME, node = %name, error = %e, "updating node health failed");
                }
            }
        }
        let Some((observed, current, node)) = outcome else {
            tracing::info!(controller = NAME, node = %name, "node health not updated; no pods will be evicted");
            return None;
        };
        let counted = !node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_DISRUPTION));
        let result = counted.then(|| (zone_key(&node), current.as_ref().map(|c| c.status.clone())));
        let Some(current) = current else {
            return result;
        };
        if let Err(e) = self.taint_by_health(&node, &observed).await {
            tracing::info!(controller = NAME, error = %e, "tainting node failed; retrying next pass");
        }
        let needs_retry = lock(&self.retry).contains(&name);
        let became_not_ready = current.status != "True" && observed.status == "True";
        if became_not_ready {
            self.node_event(
                &name,
                node.metadata.uid.clone(),
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
        if became_not_ready || (needs_retry && observed.status != "True") {
            let pods = self.by_node.pods(&name, &self.pods);
            if let Err(e) = self.mark_pods_not_ready(&pods, &name).await {
                tracing::info!(controller = NAME, error = %e, "marking pods not ready failed; retrying next pass");
                lock(&self.retry).insert(name);
                return result;
            }
        }
        lock(&self.retry).remove(&name);
        result
    }

    /// Queues an unhealthy node for its `NoExecute` taint, swaps one such taint for the
    /// other at once, or removes them from a Ready node (upstream's
    /// `processTaintBaseEviction`; `observed` is the Ready condition as read).
    async fn taint_by_health(&self, node: &Node, observed: &NodeCondition) -> Result<(), Error> {
        let not_ready = taint(TAINT_NOT_READY, NO_EXECUTE);
        let unreachable = taint(TAINT_UNREACHABLE, NO_EXECUTE);
        let (wanted, opposite) = match observed.status.as_str() {
            "False" => (not_ready, unreachable),
            "Unknown" => (unreachable, not_ready),
            "True" => return self.mark_reachable(node).await,
            _ => return Ok(()),
        };
        if has_taint(taints(node), &opposite) {
            return self.swap_taints(node, vec![wanted], &[opposite]).await;
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut zones = lock(&self.zones);
        let tainter = zones.entry(zone_key(node)).or_insert_with(Tainter::new);
        // until tainted, keep it queued (a taint removed by hand comes back)
        if !has_taint(taints(node), &wanted) {
            tainter.remove(&name);
        }
        tainter.add(&name);
        Ok(())
    }

    /// Removes both `NoExecute` health taints and forgets any queued tainting
    /// (upstream's `markNodeAsReachable`).
    async fn mark_reachable(&self, node: &Node) -> Result<(), Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(t) = lock(&self.zones).get_mut(&zone_key(node)) {
            t.remove(&name);
        }
        let remove = [
            taint(TAINT_NOT_READY, NO_EXECUTE),
            taint(TAINT_UNREACHABLE, NO_EXECUTE),
        ];
        if !remove.iter().any(|r| has_taint(taints(node), r)) {
            return Ok(());
        }
        self.swap_taints(node, Vec::new(), &remove).await
    }

    /// Taints queued nodes `NoExecute` as their zones' rates allow (upstream's
    /// `doNoExecuteTaintingPass`).
    async fn no_execute_pass(&self) {
        let due: Vec<String> = {
            let mut zones = lock(&self.zones);
            let mut due = Vec::new();
            for tainter in zones.values_mut() {
                while !tainter.queue.is_empty() && tainter.bucket.try_accept() {
                    if let Some(name) = tainter.queue.pop_front() {
                        due.push(name);
                    }
                }
            }
            due
        };
        for name in due {
            let Some(node) = self.nodes.get("", &name) else {
                continue;
            };
            let (wanted, opposite) = match ready_status(&node) {
                Some("False") => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                Some("Unknown") => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                // Ready again (or no condition to go by): nothing to taint
                _ => continue,
            };
            let result = self
                .swap_taints(
                    &node,
                    vec![taint(wanted, NO_EXECUTE)],
                    &[taint(opposite, NO_EXECUTE)],
                )
                .await;
            if let Err(e) = result {
                tracing::info!(controller = NAME, error = %e, "tainting node failed; retrying");
                // back in the queue, still known
                if let Some(t) = lock(&self.zones).get_mut(&zone_key(&node)) {
                    t.queue.push_back(name);
                }
            }
        }
    }

    /// Adjusts each zone's tainting rate to its state (upstream's `handleDisruption`).
    async fn handle_disruption(
        &self,
        by_zone: &HashMap<String, Vec<Option<String>>>,
        nodes: &[Arc<Node>],
    ) {
        let new_states: HashMap<&String, ZoneState> = by_zone
            .iter()
            .map(|(zone, ready)| (zone, zone_state(ready)))
            .collect();
        let all_now = new_states.values().all(|s| *s == ZoneState::FullDisruption);
        let (all_before, entering) = {
            let mut zones = lock(&self.zones);
            // a zone without counted nodes drops out of the assessment (its queue
            // stays); a new one starts unassessed
            for (zone, t) in zones.iter_mut() {
                if !by_zone.contains_key(zone) {
                    t.state = ZoneState::Initial;
                }
            }
            for zone in by_zone.keys() {
                zones.entry(zone.clone()).or_insert_with(Tainter::new);
            }
            let all_before = by_zone.keys().all(|z| {
                zones
                    .get(z)
                    .is_some_and(|t| t.state == ZoneState::FullDisruption)
            });
            if all_now && all_before {
                return;
            }
            let entering = all_now;
            if entering {
                tracing::info!(
                    controller = NAME,
                    "all nodes are not Ready; entering master disruption mode"
                );
            } else if all_before {
                tracing::info!(
                    controller = NAME,
                    "some nodes are Ready; exiting master disruption mode"
                );
            }
            for (zone, ready) in by_zone {
                let Some(t) = zones.get_mut(zone) else {
                    continue;
                };
                let new = new_states.get(zone).copied().unwrap_or(ZoneState::Normal);
                if entering {
                    t.set_rate(0.0);
                    t.state = ZoneState::FullDisruption;
                } else if all_before || t.state != new {
                    t.set_rate(zone_rate(new, ready.len()));
                    t.state = new;
                }
            }
            (all_before, entering)
        };
        if entering {
            // the control plane, not every node, has likely failed: take no pod away
            for node in nodes {
                if let Err(e) = self.mark_reachable(node).await {
                    tracing::info!(controller = NAME, error = %e, "removing NoExecute taints failed");
                }
            }
        } else if all_before {
            // nodes get a fresh grace period when the outage ends
            let now = Timestamp::now();
            for h in lock(&self.health).values_mut() {
                h.probe = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::ObjectMeta;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn cond(type_: &str, status: &str, heartbeat: i64) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: Some(Time(at(heartbeat))),
            last_transition_time: Some(Time(at(0))),
            ..Default::default()
        }
    }

    fn node(conditions: Vec<NodeCondition>, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                creation_timestamp: Some(Time(at(0))),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
        }
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(at(renew))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn settings() -> Settings {
        Settings {
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            ..Settings::default()
        }
    }

    fn keys(taints: &[Taint]) -> Vec<&str> {
        taints.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn conditions_call_for_no_schedule_taints() {
        let mut n = node(
            vec![
                cond("Ready", "False", 0),
                cond("MemoryPressure", "True", 0),
                cond("DiskPressure", "False", 0),
                cond("PIDPressure", "True", 0),
                cond("NetworkUnavailable", "True", 0),
            ],
            vec![],
        );
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(
            keys(&wanted_no_schedule_taints(&n)),
            [
                TAINT_NOT_READY,
                TAINT_MEMORY_PRESSURE,
                TAINT_PID_PRESSURE,
                TAINT_NETWORK_UNAVAILABLE,
                TAINT_UNSCHEDULABLE
            ]
        );
        let unknown = node(vec![cond("Ready", "Unknown", 0)], vec![]);
        assert_eq!(
            keys(&wanted_no_schedule_taints(&unknown)),
            [TAINT_UNREACHABLE]
        );
        let ready = node(vec![cond("Ready", "True", 0)], vec![]);
        assert!(wanted_no_schedule_taints(&ready).is_empty());
    }

    #[test]
    fn a_ready_node_loses_the_not_ready_taint_admission_gave_it() {
        let n = node(
            vec![cond("Ready", "True", 0)],
            vec![
                taint(TAINT_NOT_READY, NO_SCHEDULE),
                taint("dedicated", NO_SCHEDULE),
                taint(TAINT_UNREACHABLE, NO_EXECUTE),
            ],
        );
        let (add, remove) = no_schedule_changes(&n);
        assert!(add.is_empty());
        assert_eq!(keys(&remove), [TAINT_NOT_READY]);
        // only the NoSchedule condition taint goes; others stay
        let next = changed_taints(taints(&n), &add, &remove).unwrap();
        assert_eq!(keys(&next), ["dedicated", TAINT_UNREACHABLE]);
        // nothing to do once in step
        let n = node(
            vec![cond("Ready", "False", 0)],
            vec![taint(TAINT_NOT_READY, NO_SCHEDULE)],
        );
        assert_eq!(no_schedule_changes(&n), (vec![], vec![]));
        assert!(changed_taints(taints(&n), &[], &[]).is_none());
    }

    #[test]
    fn a_node_heartbeating_stays_healthy() {
        let s = settings();
        let n = node(vec![cond("Ready", "True", 0)], vec![]);
        let first = check_health(None, &n, None, at(0), &s);
        assert!(first.update.is_none());
        // 100 s later with a new heartbeat at 99 s: alive
        let n2 = node(vec![cond("Ready", "True", 99)], vec![]);
        let second = check_health(Some(&first.health), &n2, None, at(100), &s);
        assert!(second.update.is_none());
        assert_eq!(second.health.probe, at(100));
    }

    #[test]
    fn a_silent_node_goes_unknown_after_the_grace_period() {
        let s = settings();
        let n = node(
            vec![
                cond("Ready", "True", 0),
                cond("MemoryPressure", "False", 0),
                cond("NetworkUnavailable", "False", 0),
            ],
            vec![],
        );
        let first = check_health(None, &n, None, at(0), &s);
        let within = check_health(Some(&first.health), &n, None, at(40), &s);
        assert!(within.update.is_none(), "40 s is within the grace period");
        let after = check_health(Some(&within.health), &n, None, at(41), &s);
        assert_eq!(after.observed_ready.status, "True");
        let updated = after.update.expect("status update");
        let ready = condition(&updated, "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_transition_time, Some(Time(at(41))));
        // the heartbeat stays what the kubelet last posted
        assert_eq!(ready.last_heartbeat_time, Some(Time(at(0))));
        assert_eq!(
            condition(&updated, "MemoryPressure").unwrap().status,
            "Unknown"
        );
        // never reported: added as such
        let disk = condition(&updated, "DiskPressure").unwrap();
        assert_eq!(
            (disk.status.as_str(), disk.reason.as_deref()),
            ("Unknown", Some("NodeStatusNeverUpdated"))
        );
        // the network condition is not the kubelet's
        assert_eq!(
            condition(&updated, "NetworkUnavailable").unwrap().status,
            "False"
        );
    }

    #[test]
    fn a_renewed_lease_keeps_a_node_alive() {
        let s = settings();
        let n = node(vec![cond("Ready", "True", 0)], vec![]);
        let first = check_health(None, &n, Some(&lease(0)), at(0), &s);
        let renewed = check_health(Some(&first.health), &n, Some(&lease(30)), at(30), &s);
        let later = check_health(Some(&renewed.health), &n, Some(&lease(30)), at(60), &s);
        assert!(later.update.is_none(), "lease renewed at 30 s");
        let stale = check_health(Some(&later.health), &n, Some(&lease(30)), at(71), &s);
        assert!(stale.update.is_some());
    }

    #[test]
    fn a_node_that_never_reported_gets_the_startup_grace_period() {
        let s = settings();
        let n = node(vec![], vec![]);
        let first = check_health(None, &n, None, at(50), &s);
        assert!(first.update.is_none());
        assert_eq!(first.observed_ready.status, "Unknown");
        let after = check_health(Some(&first.health), &n, None, at(61), &s);
        let updated = after.update.expect("conditions added");
        let ready = condition(&updated, "Ready").unwrap();
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }

    #[test]
    fn an_unknown_node_is_not_written_again() {
        let s = settings();
        let n = node(vec![cond("Ready", "Unknown", 0)], vec![]);
        let first = check_health(None, &n, None, at(0), &s);
        let later = check_health(Some(&first.health), &n, None, at(100), &s);
        assert!(later.update.is_none());
    }

    #[test]
    fn zones_are_disrupted_by_share_of_not_ready_nodes() {
        let s = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        assert_eq!(zone_state(&s(&["True", "Unknown"])), ZoneState::Normal);
        assert_eq!(
            zone_state(&s(&["Unknown", "False"])),
            ZoneState::FullDisruption
        );
        assert_eq!(zone_state(&[None]), ZoneState::FullDisruption);
        assert_eq!(
            zone_state(&s(&["True", "False", "False", "Unknown"])),
            ZoneState::PartialDisruption
        );
        assert_eq!(
            zone_state(&s(&[
                "True", "True", "False", "False", "Unknown", "True", "True"
            ])),
            ZoneState::Normal
        );
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 10), 0.0);
        assert_eq!(
            zone_rate(ZoneState::PartialDisruption, 100),
            SECONDARY_EVICTION_RATE
        );
        assert_eq!(zone_rate(ZoneState::FullDisruption, 10), EVICTION_RATE);
    }

    #[test]
    fn the_zone_key_joins_region_and_zone() {
        let mut n = node(vec![], vec![]);
        assert_eq!(zone_key(&n), "");
        n.metadata.labels = Some(
            [
                ("topology.kubernetes.io/region".to_owned(), "r".to_owned()),
                ("topology.kubernetes.io/zone".to_owned(), "z".to_owned()),
            ]
            .into(),
        );
        assert_eq!(zone_key(&n), "r:\u{0}:z");
    }

    #[test]
    fn a_tainter_taints_a_node_once_per_outage_at_its_rate() {
        let mut t = Tainter::new();
        assert!(t.add("a"));
        assert!(!t.add("a"), "already known");
        assert!(t.add("b"));
        assert!(t.bucket.try_accept(), "burst of one");
        assert!(!t.bucket.try_accept(), "then 0.1 per second");
        t.remove("a");
        assert_eq!(t.queue, ["b"]);
        assert!(t.add("a"));
        t.set_rate(0.0);
        assert!(!t.bucket.try_accept());
    }
}
