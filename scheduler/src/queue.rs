//! The scheduling queue (upstream's `PriorityQueue`): an *active* heap ordered by the
//! profile's QueueSort plugin, a *backoff* heap of pods that failed recently (1 s
//! doubling to 10 s), and the *unschedulable* pods, which stay until a cluster event
//! that one of the plugins that rejected them registered for (filtered by its queueing
//! hint) moves them back, or until they have waited five minutes. Pods held by a
//! PreEnqueue plugin (scheduling gates) wait with the unschedulable ones, *gated*.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::framework::runtime::Framework;
use crate::framework::{ClusterEvent, EventObject, PodInfo, QueuedPodInfo, QueueingHint};

/// How long a pod stays unschedulable before it is retried anyway (upstream's
/// `podMaxInUnschedulablePodsDuration`).
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
}

struct Slot {
    qpi: QueuedPodInfo,
    place: Place,
    /// Bumped on every move, so stale heap entries are skipped.
    seq: u64,
    /// When it entered the unschedulable pods.
    since: Instant,
}

/// A pod popped and being scheduled; updates that arrive meanwhile are kept.
struct InFlight {
    latest: Option<Arc<PodInfo>>,
    deleted: bool,
}

struct State {
    pods: HashMap<String, Slot>,
    active: Vec<(u64, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    in_flight: HashMap<String, InFlight>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

/// The queue, shared by the informers (producers) and the scheduling loop (consumer).
pub struct SchedulingQueue {
    state: Mutex<State>,
    ready: Condvar,
    profiles: HashMap<String, Arc<Framework>>,
    /// The QueueSort every profile shares.
    sorter: Arc<Framework>,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// Queue lengths, for the `scheduler_pending_pods` gauge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lengths {
    /// In the active heap.
    pub active: usize,
    /// Backing off.
    pub backoff: usize,
    /// Unschedulable.
    pub unschedulable: usize,
    /// Held by a PreEnqueue plugin.
    pub gated: usize,
}

impl SchedulingQueue {
    /// A queue for `profiles` (by scheduler name); the first profile's QueueSort orders
    /// the active heap (upstream requires all profiles to share it).
    pub fn new(
        profiles: HashMap<String, Arc<Framework>>,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> SchedulingQueue {
        let mut names: Vec<&String> = profiles.keys().collect();
        names.sort();
        let sorter = profiles[names[0]].clone();
        SchedulingQueue {
            state: Mutex::new(State {
                pods: HashMap::new(),
                active: Vec::new(),
                backoff: BinaryHeap::new(),
                in_flight: HashMap::new(),
                seq: 0,
                scheduling_cycle: 0,
                move_request_cycle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            profiles,
            sorter,
            initial_backoff,
            max_backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // a panic elsewhere while holding the lock leaves the data usable
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn framework_of(&self, pod: &PodInfo) -> Option<&Arc<Framework>> {
        let name = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
        self.profiles.get(name)
    }

    /// How long `qpi` backs off after its attempts (upstream's
    /// `calculateBackoffDuration`).
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d *= 2;
            if d > self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn backoff_expiry(&self, qpi: &QueuedPodInfo) -> Instant {
        qpi.timestamp + self.backoff_duration(qpi.attempts)
    }

    /// Where a pod leaving the unschedulable pods goes: backoff while its backoff
    /// lasts, else active.
    fn active_or_backoff(&self, qpi: &QueuedPodInfo, now: Instant) -> Place {
        if now < self.backoff_expiry(qpi) {
            Place::Backoff
        } else {
            Place::Active
        }
    }

    // ---- the active heap, ordered by the QueueSort plugin ----

    fn heap_less(&self, state: &State, a: &(u64, String), b: &(u64, String)) -> bool {
        match (state.pods.get(&a.1), state.pods.get(&b.1)) {
            (Some(x), Some(y)) => self.sorter.less(&x.qpi, &y.qpi),
            _ => a.0 < b.0,
        }
    }

    fn heap_push(&self, state: &mut State, entry: (u64, String)) {
        state.active.push(entry);
        let mut i = state.active.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap_less(state, &state.active[i], &state.active[parent]) {
                state.active.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn heap_pop(&self, state: &mut State) -> Option<(u64, String)> {
        if state.active.is_empty() {
            return None;
        }
        let last = state.active.len() - 1;
        state.active.swap(0, last);
        let top = state.active.pop();
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < state.active.len()
                && self.heap_less(state, &state.active[l], &state.active[best])
            {
                best = l;
            }
            if r < state.active.len()
                && self.heap_less(state, &state.active[r], &state.active[best])
            {
                best = r;
            }
            if best == i {
                break;
            }
            state.active.swap(i, best);
            i = best;
        }
        top
    }

    fn place(&self, state: &mut State, mut qpi: QueuedPodInfo, place: Place) {
        let uid = qpi.pod_info.uid().to_owned();
        state.seq += 1;
        let seq = state.seq;
        if place != Place::Unschedulable {
            qpi.gated_by = None;
        }
        match place {
            Place::Active => {
                state.pods.insert(
                    uid.clone(),
                    Slot {
                        qpi,
                        place,
                        seq,
                        since: Instant::now(),
                    },
                );
                self.heap_push(state, (seq, uid));
                self.ready.notify_one();
            }
            Place::Backoff => {
                let expiry = self.backoff_expiry(&qpi);
                state.pods.insert(
                    uid.clone(),
                    Slot {
                        qpi,
                        place,
                        seq,
                        since: Instant::now(),
                    },
                );
                state.backoff.push(Reverse((expiry, seq, uid)));
            }
            Place::Unschedulable => {
                state.pods.insert(
                    uid,
                    Slot {
                        qpi,
                        place,
                        seq,
                        since: Instant::now(),
                    },
                );
            }
        }
    }

    /// Runs PreEnqueue: active when it passes, else gated among the unschedulable.
    fn enqueue(&self, state: &mut State, mut qpi: QueuedPodInfo) {
        let status = match self.framework_of(&qpi.pod_info) {
            Some(fw) => fw.run_pre_enqueue(&qpi.pod_info),
            None => return,
        };
        if status.is_success() {
            self.place(state, qpi, Place::Active);
        } else {
            qpi.gated_by = Some(status.plugin);
            self.place(state, qpi, Place::Unschedulable);
        }
    }

    /// A new pending pod.
    pub fn add(&self, pod: Arc<PodInfo>) {
        let mut state = self.lock();
        let uid = pod.uid().to_owned();
        if let Some(f) = state.in_flight.get_mut(&uid) {
            f.latest = Some(pod);
            return;
        }
        if state.pods.contains_key(&uid) {
            drop(state);
            return self.update(pod);
        }
        self.enqueue(&mut state, QueuedPodInfo::new(pod));
    }

    /// A pending pod changed (upstream's `Update`): in the active or backoff queue it is
    /// updated in place; a gated pod runs PreEnqueue again; an unschedulable pod whose
    /// scheduling-relevant fields changed goes back to the active or backoff queue.
    pub fn update(&self, pod: Arc<PodInfo>) {
        let mut state = self.lock();
        let uid = pod.uid().to_owned();
        if let Some(f) = state.in_flight.get_mut(&uid) {
            f.latest = Some(pod);
            return;
        }
        let Some(slot) = state.pods.get_mut(&uid) else {
            drop(state);
            return self.add(pod);
        };
        let changed = scheduling_relevant_change(&slot.qpi.pod_info, &pod);
        slot.qpi.pod_info = pod;
        match slot.place {
            Place::Active | Place::Backoff => {}
            Place::Unschedulable => {
                let qpi = slot.qpi.clone();
                if qpi.gated_by.is_some() {
                    state.pods.remove(&uid);
                    self.enqueue(&mut state, qpi);
                } else if changed {
                    let place = self.active_or_backoff(&qpi, Instant::now());
                    self.place(&mut state, qpi, place);
                }
            }
        }
    }

    /// A pending pod was deleted (or got bound by someone else).
    pub fn delete(&self, uid: &str) {
        let mut state = self.lock();
        state.pods.remove(uid);
        if let Some(f) = state.in_flight.get_mut(uid) {
            f.deleted = true;
        }
    }

    /// The next pod to schedule; blocks until one is active or the queue closes
    /// (`None`).
    pub fn pop(&self) -> Option<QueuedPodInfo> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            while let Some((seq, uid)) = self.heap_pop(&mut state) {
                let fresh = state
                    .pods
                    .get(&uid)
                    .is_some_and(|s| s.seq == seq && s.place == Place::Active);
                if !fresh {
                    continue;
                }
                let mut qpi = state.pods.remove(&uid).map(|s| s.qpi)?;
                qpi.attempts += 1;
                qpi.initial_attempt.get_or_insert_with(Instant::now);
                state.scheduling_cycle += 1;
                state.in_flight.insert(
                    uid,
                    InFlight {
                        latest: None,
                        deleted: false,
                    },
                );
                return Some(qpi);
            }
            state = self
                .ready
                .wait_timeout(state, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The current scheduling cycle (the count of pops).
    pub fn scheduling_cycle(&self) -> u64 {
        self.lock().scheduling_cycle
    }

    /// The pod's cycle is over and it was bound (or dropped): forget it.
    pub fn done(&self, uid: &str) {
        self.lock().in_flight.remove(uid);
    }

    /// A pod failed in the cycle `cycle`: back to the unschedulable pods, or to the
    /// backoff queue when a move request arrived meanwhile or it failed with an error
    /// (upstream's `AddUnschedulableIfNotPresent`). Deleted pods are dropped; updates
    /// that arrived while it was in flight are applied.
    pub fn requeue_failed(&self, mut qpi: QueuedPodInfo, cycle: u64, unschedulable: bool) {
        let mut state = self.lock();
        let uid = qpi.pod_info.uid().to_owned();
        let flight = state.in_flight.remove(&uid);
        if flight.as_ref().is_some_and(|f| f.deleted) || state.pods.contains_key(&uid) {
            return;
        }
        let mut updated = false;
        if let Some(latest) = flight.and_then(|f| f.latest) {
            // a change made while the pod was being scheduled may have fixed it
            updated = scheduling_relevant_change(&qpi.pod_info, &latest);
            qpi.pod_info = latest;
        }
        qpi.timestamp = Instant::now();
        tracing::debug!(pod = %qpi.pod_info.key(), plugins = ?qpi.unschedulable_plugins, cycle, move_cycle = state.move_request_cycle, "requeue");
        let place = if !unschedulable || updated || state.move_request_cycle >= cycle {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        self.place(&mut state, qpi, place);
    }

    /// Moves the unschedulable pods that `event` may help (by the rejecting plugins'
    /// registrations and hints) to the active or backoff queue.
    pub fn on_event(
        &self,
        event: ClusterEvent,
        old: Option<&EventObject>,
        new: Option<&EventObject>,
    ) {
        let mut state = self.lock();
        state.move_request_cycle = state.scheduling_cycle;
        let candidates: Vec<String> = state
            .pods
            .iter()
            .filter(|(_, s)| s.place == Place::Unschedulable && s.qpi.gated_by.is_none())
            .filter(|(_, s)| self.worth_requeuing(&s.qpi, &event, old, new))
            .map(|(uid, _)| uid.clone())
            .collect();
        let now = Instant::now();
        tracing::debug!(
            event = event.label,
            action = event.action.0,
            moved = candidates.len(),
            "cluster event"
        );
        for uid in candidates {
            if let Some(slot) = state.pods.remove(&uid) {
                let place = self.active_or_backoff(&slot.qpi, now);
                self.place(&mut state, slot.qpi, place);
            }
        }
    }

    fn worth_requeuing(
        &self,
        qpi: &QueuedPodInfo,
        event: &ClusterEvent,
        old: Option<&EventObject>,
        new: Option<&EventObject>,
    ) -> bool {
        if qpi.unschedulable_plugins.is_empty() {
            return true;
        }
        let Some(fw) = self.framework_of(&qpi.pod_info) else {
            return false;
        };
        fw.registered_events().iter().any(|(plugin, reg)| {
            qpi.unschedulable_plugins.contains(plugin)
                && reg.event.covers(event)
                && reg
                    .hint
                    .is_none_or(|hint| hint(&qpi.pod_info, old, new) == QueueingHint::Queue)
        })
    }

    /// Moves pods whose backoff has expired to the active queue (every second).
    pub fn flush_backoff_completed(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        while let Some(Reverse((expiry, seq, uid))) = state.backoff.peek().cloned() {
            if expiry > now {
                break;
            }
            state.backoff.pop();
            let fresh = state
                .pods
                .get(&uid)
                .is_some_and(|s| s.seq == seq && s.place == Place::Backoff);
            if fresh {
                if let Some(slot) = state.pods.remove(&uid) {
                    self.place(&mut state, slot.qpi, Place::Active);
                }
            }
        }
    }

    /// Retries pods that stayed unschedulable longer than [`MAX_IN_UNSCHEDULABLE`]
    /// (every 30 seconds).
    pub fn flush_unschedulable_leftover(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let stale: Vec<String> = state
            .pods
            .iter()
            .filter(|(_, s)| {
                s.place == Place::Unschedulable
                    && s.qpi.gated_by.is_none()
                    && now.duration_since(s.since) >= MAX_IN_UNSCHEDULABLE
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            if let Some(slot) = state.pods.remove(&uid) {
                let place = self.active_or_backoff(&slot.qpi, now);
                self.place(&mut state, slot.qpi, place);
            }
        }
    }

    /// Wakes the scheduling loop and makes `pop` return `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Queue lengths.
    pub fn lengths(&self) -> Lengths {
        let state = self.lock();
        let mut l = Lengths::default();
        for s in state.pods.values() {
            match s.place {
                Place::Active => l.active += 1,
                Place::Backoff => l.backoff += 1,
                Place::Unschedulable if s.qpi.gated_by.is_some() => l.gated += 1,
                Place::Unschedulable => l.unschedulable += 1,
            }
        }
        l
    }

    /// Whether the pod is waiting (in any queue) or in flight.
    pub fn contains(&self, uid: &str) -> bool {
        let state = self.lock();
        state.pods.contains_key(uid) || state.in_flight.contains_key(uid)
    }
}

/// Whether an update may change the pod's scheduling (upstream's `isPodUpdated`: any
/// change but status, resourceVersion, generation and managedFields).
fn scheduling_relevant_change(old: &PodInfo, new: &PodInfo) -> bool {
    let strip = |p: &k8s_openapi::api::core::v1::Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.generation = None;
        p.metadata.managed_fields = None;
        p
    };
    strip(&old.pod) != strip(&new.pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{ActionType, EventResource};
    use serde_json::json;

    fn queue() -> SchedulingQueue {
        let mut config = crate::config::KubeSchedulerConfiguration::default();
        config.set_defaults(&crate::registered);
        let profiles = crate::build_profiles(&config, &Default::default()).unwrap();
        SchedulingQueue::new(profiles, Duration::from_secs(1), Duration::from_secs(10))
    }

    fn pod(uid: &str, priority: i32, spec: serde_json::Value) -> Arc<PodInfo> {
        let mut spec = spec;
        spec["priority"] = json!(priority);
        spec["containers"] = json!([{"name": "c"}]);
        Arc::new(PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "ns", "uid": uid},
                "spec": spec
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn backoff_doubles_from_one_second_to_ten() {
        let q = queue();
        let secs: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn higher_priority_pods_pop_first_then_the_oldest() {
        let q = queue();
        // distinct timestamps: PrioritySort breaks priority ties by them
        for (uid, priority) in [("low", 1), ("high", 100), ("low-later", 1)] {
            q.add(pod(uid, priority, json!({})));
            std::thread::sleep(Duration::from_millis(2));
        }
        let order: Vec<String> = (0..3)
            .map(|_| q.pop().unwrap().pod_info.uid().to_owned())
            .collect();
        assert_eq!(order, ["high", "low", "low-later"]);
    }

    #[test]
    fn a_gated_pod_waits_until_an_update_removes_its_gates() {
        let q = queue();
        q.add(pod("g", 0, json!({"schedulingGates": [{"name": "wait"}]})));
        assert_eq!(q.lengths().gated, 1);
        q.update(pod("g", 0, json!({})));
        assert_eq!(q.lengths().active, 1);
        assert_eq!(q.pop().unwrap().pod_info.uid(), "g");
    }

    #[test]
    fn an_unschedulable_pod_returns_only_on_an_event_its_plugins_registered() {
        let q = queue();
        q.add(pod("p", 0, json!({})));
        let mut qpi = q.pop().unwrap();
        // it asks for 2 CPUs
        let mut wants: k8s_openapi::api::core::v1::Pod = (*qpi.pod_info.pod).clone();
        wants.spec.as_mut().unwrap().containers[0].resources =
            Some(serde_json::from_value(json!({"requests": {"cpu": "2"}})).unwrap());
        qpi.pod_info = Arc::new(PodInfo::new(wants));
        let cycle = q.scheduling_cycle();
        qpi.unschedulable_plugins = ["NodeResourcesFit"].into();
        q.requeue_failed(qpi, cycle, true);
        assert_eq!(q.lengths().unschedulable, 1);
        // a namespace change does not help a pod NodeResourcesFit rejected
        q.on_event(
            ClusterEvent::of(EventResource::Namespace, ActionType::ADD),
            None,
            None,
        );
        assert_eq!(q.lengths().unschedulable, 1);
        // a node's allocatable growing to fit it may: back to backoff (its 1 s is not
        // over); NodeResourcesFit's hint compares the two versions of the node
        let node = |cpu: &str| {
            EventObject::Node(Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "n"},
                    "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}
                }))
                .unwrap(),
            ))
        };
        q.on_event(
            ClusterEvent::of(EventResource::Node, ActionType::UPDATE_NODE_ALLOCATABLE),
            Some(&node("1")),
            Some(&node("8")),
        );
        assert_eq!(q.lengths().unschedulable, 0);
        assert_eq!(q.lengths().backoff, 1);
    }

    #[test]
    fn a_pod_deleted_or_changed_while_in_flight_is_handled_on_requeue() {
        let q = queue();
        q.add(pod("gone", 0, json!({})));
        let qpi = q.pop().unwrap();
        let cycle = q.scheduling_cycle();
        q.delete("gone");
        q.requeue_failed(qpi, cycle, true);
        assert!(!q.contains("gone"), "a deleted pod is not requeued");

        q.add(pod("fixed", 0, json!({})));
        let qpi = q.pop().unwrap();
        let cycle = q.scheduling_cycle();
        // an informer add while in flight is kept as the latest version, not queued
        q.add(pod("fixed", 0, json!({"nodeSelector": {"disk": "ssd"}})));
        assert_eq!(q.lengths(), Lengths::default());
        q.requeue_failed(qpi, cycle, true);
        // the change may have fixed it: backoff, not unschedulable
        assert_eq!(q.lengths().backoff, 1);
    }
}
