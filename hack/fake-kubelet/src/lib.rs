//! A stand-in for kubelets, for tests and benchmarks only: [`create_node`] registers a
//! fake Node (Ready, with capacity) and [`FakeKubelet`] plays the kubelets of a set of
//! such nodes: it renews their Leases and Ready heartbeats, marks every pod bound to
//! them Running and Ready (with a pod IP), and finishes the deletion of pods being
//! deleted gracefully, as a kubelet does once their containers stopped. No container
//! runs anywhere. Dropping the [`FakeKubelet`] stops it, like killing the kubelets: the
//! nodes stop heartbeating.
//!
//! Pods that should finish (a Job's) opt in with annotations, a test-only convention:
//!
//! - [`EXIT_CODE_ANNOTATION`] (`fake-kubelet.rkube.io/exit-code: "<n>"`): once Running,
//!   the pod's containers "exit" with code `n`. With `restartPolicy: Never` (or code 0
//!   and `OnFailure`) the pod moves to phase `Succeeded` (0) or `Failed` (non-zero),
//!   every container `terminated` with that `exitCode` and reason `Completed` or
//!   `Error`, and the `Ready` condition turns `False`. With `OnFailure` and a non-zero
//!   code (or `Always`) the containers are "restarted" instead: the pod stays Running
//!   and each container's `restartCount` grows by one per run, its `lastState`
//!   terminated with the code.
//! - [`RUN_SECONDS_ANNOTATION`] (`fake-kubelet.rkube.io/run-seconds: "<s>"`, default 0,
//!   at least 1 between restarts): how long the containers run first.
//!
//! A pod being deleted that still carries finalizers (which would keep it around) is
//! first moved to phase `Failed` with its containers terminated (exit code 137), as a
//! kubelet reports a pod it killed, then deleted. Pods without these annotations and
//! finalizers are handled exactly as before.
//!
//! Each pod is acted on at most once per state (started, finished, the n-th restart,
//! deleted): the watch may show a pod again before our own patch is visible, and two
//! concurrent patches of one pod would race.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

/// How often the fake kubelets heartbeat (node status and Lease).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The annotation asking the fake kubelet to end the pod's containers with this exit
/// code (see the crate documentation).
pub const EXIT_CODE_ANNOTATION: &str = "fake-kubelet.rkube.io/exit-code";

/// The annotation saying how many seconds the containers run before they exit.
pub const RUN_SECONDS_ANNOTATION: &str = "fake-kubelet.rkube.io/run-seconds";

/// The exit code of a container killed because its pod was deleted (SIGKILL).
const KILLED_EXIT_CODE: i32 = 137;

/// Now, truncated to the second as metav1.Time is written (rounding could put a
/// transition up to half a second in the future, ahead of samples taken after it).
fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Creates a fake node `name` with `cpu` and `memory` allocatable, Ready, with the
/// usual labels plus `labels`; `extra_spec` is merged into its spec (taints...).
pub async fn create_node(
    client: &kube::Client,
    name: &str,
    cpu: &str,
    memory: &str,
    labels: Value,
) -> Result<Node, kube::Error> {
    let mut all_labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    });
    if let (Some(all), Some(extra)) = (all_labels.as_object_mut(), labels.as_object()) {
        for (k, v) in extra {
            all.insert(k.clone(), v.clone());
        }
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": ready_conditions(),
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "fake", "containerRuntimeVersion": "fake://0", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
            }
        }
    }))
    .map_err(kube::Error::SerdeError)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let created = nodes.create(&PostParams::default(), &node).await?;
    // the status given on create is dropped by the apiserver, as upstream's; a kubelet
    // posts it afterwards
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node.status})),
        )
        .await
        .or(Ok::<Node, kube::Error>(created))
}

fn ready_conditions() -> Value {
    let at = now();
    json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": at, "lastTransitionTime": at},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": at, "lastTransitionTime": at},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": at, "lastTransitionTime": at},
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": at, "lastTransitionTime": at},
    ])
}

/// The fake kubelets of some nodes; dropping it stops them.
pub struct FakeKubelet {
    nodes: Arc<RwLock<BTreeSet<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Arc<AtomicU32>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeKubelet {
    /// Plays the kubelets of `nodes` through `client` (an admin client).
    pub fn start(client: kube::Client, nodes: &[&str]) -> FakeKubelet {
        let names: Arc<RwLock<BTreeSet<String>>> =
            Arc::new(RwLock::new(nodes.iter().map(|n| (*n).to_owned()).collect()));
        let started = Arc::new(AtomicU32::new(0));
        let tasks = vec![
            tokio::spawn(run_pods(client.clone(), names.clone(), started.clone())),
            tokio::spawn(heartbeat(client, names.clone())),
        ];
        FakeKubelet {
            nodes: names,
            tasks,
            started,
        }
    }

    /// Plays the kubelet of one more node.
    pub fn add_node(&self, name: &str) {
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned());
    }

    /// How many pods it has marked running so far.
    pub fn pods_started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }
}

fn ours(nodes: &RwLock<BTreeSet<String>>, pod: &Pod) -> bool {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
        return false;
    };
    nodes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(node)
}

/// What the fake kubelet does next with a pod, once per pod and step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Pending: start it (Running and Ready).
    Start,
    /// Running with an exit code: its containers exit and the pod ends.
    Finish,
    /// Running with an exit code and a restarting policy: the containers restart
    /// (the step carries the restart count it starts from).
    Restart(i32),
    /// Being deleted: finish the deletion.
    Delete,
}

/// The exit code the pod asks for, if any (an unparsable value asks for nothing).
fn exit_code(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(EXIT_CODE_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

/// How long the containers run before they exit.
fn run_time(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RUN_SECONDS_ANNOTATION))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(0.0)
        .min(3600.0);
    Duration::from_secs_f64(seconds)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The highest restart count among the pod's containers.
fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// The step a kubelet would take with `pod` now, if any.
fn next_step(pod: &Pod) -> Option<Step> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(Step::Delete);
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    match phase {
        "Pending" => Some(Step::Start),
        "Running" => {
            let code = exit_code(pod)?;
            let restarting = match restart_policy(pod) {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            };
            Some(if restarting {
                Step::Restart(restarts(pod))
            } else {
                Step::Finish
            })
        }
        _ => None,
    }
}

/// The (pod uid, step) pairs taken or under way.
type Handled = Arc<Mutex<HashSet<(String, Step)>>>;

fn lock(handled: &Handled) -> std::sync::MutexGuard<'_, HashSet<(String, Step)>> {
    handled.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches pods; those bound to our nodes are started or finished.
async fn run_pods(
    client: kube::Client,
    nodes: Arc<RwLock<BTreeSet<String>>>,
    started: Arc<AtomicU32>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default().fields("spec.nodeName!="))
        .default_backoff()
        .boxed();
    let ip = Arc::new(AtomicU32::new(0));
    let handled: Handled = Arc::default();
    // A kubelet's status manager writes one pod status at a time: so does each fake
    // node, rather than every pod bound to it at once (which would also open as many
    // HTTP/1.1 connections).
    let mut in_flight: HashMap<String, Arc<tokio::sync::Semaphore>> = HashMap::new();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
            Ok(Event::Delete(pod)) => {
                // gone: forget its steps
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                lock(&handled).retain(|(u, _)| *u != uid);
                continue;
            }
            _ => continue,
        };
        if !ours(&nodes, &pod) {
            continue;
        }
        let Some(step) = next_step(&pod) else {
            continue;
        };
        let key = (pod.metadata.uid.clone().unwrap_or_default(), step.clone());
        if !lock(&handled).insert(key.clone()) {
            continue;
        }
        let client = client.clone();
        let ip = ip.clone();
        let started = started.clone();
        let handled = handled.clone();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let in_flight = in_flight
            .entry(node)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
            .clone();
        tokio::spawn(async move {
            // the containers run side by side; only the status writes take turns
            tokio::time::sleep(running_time(&step, &pod)).await;
            // never closed; without a permit the step goes ahead anyway
            let _permit = in_flight.acquire_owned().await.ok();
            let result = match step {
                Step::Start => start(&client, &pod, &ip, &started).await,
                Step::Finish => finish(&client, &pod).await,
                Step::Restart(_) => restart(&client, &pod).await,
                Step::Delete => delete(&client, &pod).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "fake kubelet");
                // a later event of the same state may try again
                lock(&handled).remove(&key);
            }
        });
    }
}

fn pod_api(client: &kube::Client, pod: &Pod) -> (Api<Pod>, String) {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    (
        Api::namespaced(client.clone(), namespace),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The pod's containers (name, image).
fn containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// When the pod's containers started, as reported (or now).
fn started_at(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_else(now)
}

/// The containers terminate with `code`; the pod ends in its terminal phase.
async fn terminate(client: &kube::Client, pod: &Pod, code: i32) -> Result<(), kube::Error> {
    let (api, name) = pod_api(client, pod);
    let at = now();
    let since = started_at(pod);
    let reason = if code == 0 { "Completed" } else { "Error" };
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(c, image)| {
            json!({
                "name": c, "image": image, "imageID": "",
                "ready": false, "started": false, "restartCount": restarts(pod),
                "containerID": format!("fake://{c}"),
                "state": {"terminated": {"exitCode": code, "reason": reason,
                                         "startedAt": since, "finishedAt": at,
                                         "containerID": format!("fake://{c}")}}
            })
        })
        .collect();
    let ready_reason = if code == 0 {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    let patch = json!({"status": {
        "phase": phase,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": at},
            {"type": "Initialized", "status": "True", "lastTransitionTime": since},
            {"type": "Ready", "status": "False", "reason": ready_reason, "lastTransitionTime": at},
            {"type": "ContainersReady", "status": "False", "reason": ready_reason, "lastTransitionTime": at},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": since},
        ],
        "containerStatuses": statuses,
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
}

/// How long the pod's containers run before `step` reports them exited (a restart
/// takes at least a second, so a crash loop does not spin).
fn running_time(step: &Step, pod: &Pod) -> Duration {
    match step {
        Step::Finish if exit_code(pod).is_some() => run_time(pod),
        Step::Restart(_) if exit_code(pod).is_some() => run_time(pod).max(Duration::from_secs(1)),
        _ => Duration::ZERO,
    }
}

/// The pod's containers ran their time and exited with the code it asked for.
async fn finish(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let Some(code) = exit_code(pod) else {
        return Ok(());
    };
    // it may have been deleted (and reported killed) meanwhile
    let (api, name) = pod_api(client, pod);
    let Some(current) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let phase = current.status.as_ref().and_then(|s| s.phase.as_deref());
    if current.metadata.uid != pod.metadata.uid
        || current.metadata.deletion_timestamp.is_some()
        || phase != Some("Running")
    {
        return Ok(());
    }
    terminate(client, &current, code).await
}

/// The pod's containers exited with the code it asked for and were restarted.
async fn restart(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let Some(code) = exit_code(pod) else {
        return Ok(());
    };
    let (api, name) = pod_api(client, pod);
    let at = now();
    let count = restarts(pod).saturating_add(1);
    let reason = if code == 0 { "Completed" } else { "Error" };
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(c, image)| {
            json!({
                "name": c, "image": image, "imageID": "",
                "ready": true, "started": true, "restartCount": count,
                "containerID": format!("fake://{c}"),
                "state": {"running": {"startedAt": at}},
                "lastState": {"terminated": {"exitCode": code, "reason": reason,
                                             "startedAt": started_at(pod), "finishedAt": at}}
            })
        })
        .collect();
    let patch = json!({"status": {"containerStatuses": statuses}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
}

/// The containers "stopped": the kubelet removes the pod for good. A pod kept by
/// finalizers is first reported Failed, as a kubelet reports the pods it killed.
async fn delete(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let (api, name) = pod_api(client, pod);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let has_finalizers = pod
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers && !matches!(phase, Some("Succeeded" | "Failed")) {
        terminate(client, pod, KILLED_EXIT_CODE).await?;
    }
    let mut params = DeleteParams::default().grace_period(0);
    params.preconditions = pod
        .metadata
        .uid
        .clone()
        .map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        });
    api.delete(&name, &params).await.map(|_| ())
}

/// Starts `pod`: Running and Ready, with a pod IP.
async fn start(
    client: &kube::Client,
    pod: &Pod,
    ip: &AtomicU32,
    started: &AtomicU32,
) -> Result<(), kube::Error> {
    let (api, name) = pod_api(client, pod);
    let n = ip.fetch_add(1, Ordering::Relaxed);
    let pod_ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2);
    let at = now();
    let containers: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(c, image)| {
            json!({
                "name": c, "image": image, "imageID": "",
                "ready": true, "started": true, "restartCount": 0,
                "containerID": format!("fake://{c}"),
                "state": {"running": {"startedAt": at}}
            })
        })
        .collect();
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": at,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": at},
            {"type": "Initialized", "status": "True", "lastTransitionTime": at},
            {"type": "Ready", "status": "True", "lastTransitionTime": at},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": at},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
        ],
        "containerStatuses": containers,
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    started.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Renews each node's Lease and Ready heartbeat every [`HEARTBEAT`].
async fn heartbeat(client: kube::Client, nodes: Arc<RwLock<BTreeSet<String>>>) {
    let node_api: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let names: Vec<String> = nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for name in names {
            let patch = json!({"status": {"conditions": ready_conditions()}});
            if let Err(e) = node_api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::debug!(error = %e, node = %name, "fake kubelet heartbeat");
            }
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": jiff::Timestamp::now().to_string()}
            });
            let params = PatchParams::apply("fake-kubelet").force();
            if let Err(e) = leases.patch(&name, &params, &Patch::Apply(lease)).await {
                tracing::debug!(error = %e, node = %name, "fake kubelet lease");
            }
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
