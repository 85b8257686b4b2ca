//! A stand-in for kubelets, for tests and benchmarks only: [`create_node`] registers a
//! fake Node (Ready, with capacity) and [`FakeKubelet`] plays the kubelets of a set of
//! such nodes: it renews their Leases and Ready heartbeats, marks every pod bound to
//! them Running and Ready (with a pod IP), and finishes the deletion of pods being
//! deleted gracefully, as a kubelet does once their containers stopped. No container
//! runs anywhere. Dropping the [`FakeKubelet`] stops it, like killing the kubelets: the
//! nodes stop heartbeating.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
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

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
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
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
            _ => continue,
        };
        if !ours(&nodes, &pod) {
            continue;
        }
        let client = client.clone();
        let ip = ip.clone();
        let started = started.clone();
        tokio::spawn(async move {
            if let Err(e) = play(&client, &pod, &ip, &started).await {
                tracing::debug!(error = %e, "fake kubelet");
            }
        });
    }
}

/// What a kubelet would do with `pod` now.
async fn play(
    client: &kube::Client,
    pod: &Pod,
    ip: &AtomicU32,
    started: &AtomicU32,
) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        // the containers "stopped": the kubelet removes the pod for good
        let mut params = DeleteParams::default().grace_period(0);
        params.preconditions = pod
            .metadata
            .uid
            .clone()
            .map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            });
        return api.delete(name, &params).await.map(|_| ());
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase != "Pending" {
        return Ok(());
    }
    let n = ip.fetch_add(1, Ordering::Relaxed);
    let pod_ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2);
    let at = now();
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": true, "started": true, "restartCount": 0,
                "containerID": format!("fake://{}", c.name),
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
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
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
