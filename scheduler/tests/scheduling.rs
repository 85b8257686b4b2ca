//! The scheduler against a real in-process kube-apiserver (embedded store, RBAC, the
//! scheduler's own client certificate) with fake Node objects and no kubelet: pods are
//! bound where upstream's default profile would put them, with upstream's events and
//! PodScheduled condition, and a second replica takes over when the leader dies.

use std::time::{Duration, Instant};

use apiserver::{Server, ServerOptions};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use scheduler::config::KubeSchedulerConfiguration;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

struct Cluster {
    admin: Client,
    scheduler: Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn client_of(kubeconfig: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn cluster() -> Cluster {
    // RUST_LOG=scheduler=debug shows the scheduler's side when a test fails
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::defaults();
    options.secure_port = 0;
    options.bind_address = [127, 0, 0, 1].into();
    options.storage_url = Some(format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ));
    options.cert_dir = dir.path().join("pki");
    options.authorization_mode = vec!["Node".into(), "RBAC".into()];
    // no controller manager here to create default service accounts
    options.disable_admission_plugins = vec!["ServiceAccount".into()];
    let server = Server::bind(&options).await.unwrap();
    let admin = client_of(&server.admin_kubeconfig().unwrap()).await;
    let scheduler = client_of(
        &server
            .pki()
            .unwrap()
            .client_kubeconfig("scheduler", &server.client_url())
            .unwrap(),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Cluster {
        admin,
        scheduler,
        _dir: dir,
        _stop: stop,
    }
}

fn config(text: &str) -> KubeSchedulerConfiguration {
    let mut full =
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n".to_owned();
    full.push_str(text);
    KubeSchedulerConfiguration::parse(&full, &scheduler::registered).unwrap()
}

fn no_leader_election() -> KubeSchedulerConfiguration {
    config("leaderElection:\n  leaderElect: false\n")
}

/// Starts a scheduler; dropping the sender stops it (as a kill: no lease release).
fn start_scheduler(
    client: Client,
    config: KubeSchedulerConfiguration,
) -> tokio::task::JoinHandle<Result<(), scheduler::Error>> {
    tokio::spawn(scheduler::run_with_client(
        client,
        config,
        None,
        std::future::pending(),
    ))
}

async fn create_node(admin: &Client, name: &str, cpu: &str, extra: Value) {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut node, extra);
    let taints = node["spec"]["taints"].clone();
    let node: Node = serde_json::from_value(node).unwrap();
    let api = Api::<Node>::all(admin.clone());
    api.create(&PostParams::default(), &node).await.unwrap();
    // the TaintNodesByCondition admission plugin marks new nodes not-ready; with no
    // kubelet and no node-lifecycle controller here, the test does what they would
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"taints": taints}})),
    )
    .await
    .unwrap();
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn create_pod(admin: &Client, name: &str, cpu: &str, extra: Value) {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu}}}]}
    });
    merge(&mut pod, extra);
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Waits until `check` holds for the pod.
async fn wait_pod(admin: &Client, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let api = Api::<Pod>::namespaced(admin.clone(), "default");
    let start = Instant::now();
    loop {
        let pod = api.get(name).await.unwrap();
        if check(&pod) {
            return pod;
        }
        assert!(start.elapsed() < DEADLINE, "pod {name}: {what}: {pod:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_bound(admin: &Client, name: &str) -> String {
    let pod = wait_pod(admin, name, "not bound", |p| node_of(p).is_some()).await;
    node_of(&pod).unwrap()
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

/// Waits for an event about `pod` with `reason`, returning its message and source.
async fn wait_event(admin: &Client, pod: &str, reason: &str, message: Option<&str>) -> Event {
    let api = Api::<Event>::namespaced(admin.clone(), "default");
    let start = Instant::now();
    loop {
        let events = api
            .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
            .await
            .unwrap();
        if let Some(e) = events.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && message.is_none_or(|m| e.message.as_deref() == Some(m))
        }) {
            return e;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {reason} event {message:?} for {pod}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scheduled_events(admin: &Client, pod: &str) -> usize {
    Api::<Event>::namespaced(admin.clone(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_go_where_resources_fit_with_upstreams_events_and_conditions() {
    let c = cluster().await;
    create_node(&c.admin, "small", "2", json!({})).await;
    create_node(&c.admin, "large", "4", json!({})).await;
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());

    create_pod(&c.admin, "needs-three", "3", json!({})).await;
    assert_eq!(wait_bound(&c.admin, "needs-three").await, "large");
    let e = wait_event(&c.admin, "needs-three", "Scheduled", None).await;
    assert_eq!(
        e.message.as_deref(),
        Some("Successfully assigned default/needs-three to large")
    );
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.source.and_then(|s| s.component).as_deref(),
        Some("default-scheduler")
    );
    let pod = wait_pod(&c.admin, "needs-three", "PodScheduled", |p| {
        scheduled_condition(p).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert!(pod.status.is_some());

    // nothing has 8 CPUs left: upstream's message, event and condition
    create_pod(&c.admin, "needs-eight", "8", json!({})).await;
    // preemption finds no lower-priority pod to evict
    let message = "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    let e = wait_event(&c.admin, "needs-eight", "FailedScheduling", Some(message)).await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let pod = wait_pod(&c.admin, "needs-eight", "Unschedulable condition", |p| {
        scheduled_condition(p).is_some_and(|c| c.1 == "Unschedulable")
    })
    .await;
    assert_eq!(
        scheduled_condition(&pod),
        Some(("False".into(), "Unschedulable".into(), message.into()))
    );
    assert!(node_of(&pod).is_none());

    // a big node arrives: the NodeAdd event moves the pod back and it is bound
    create_node(&c.admin, "huge", "16", json!({})).await;
    assert_eq!(wait_bound(&c.admin, "needs-eight").await, "huge");

    // the assumed pod counted: with "large" holding 3 of 4 CPUs, 2 CPUs go elsewhere
    create_pod(&c.admin, "needs-two", "2", json!({})).await;
    assert_ne!(wait_bound(&c.admin, "needs-two").await, "large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_repel_pods_that_do_not_tolerate_them() {
    let c = cluster().await;
    create_node(
        &c.admin,
        "control-plane",
        "4",
        json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
    )
    .await;
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());
    create_pod(&c.admin, "intolerant", "100m", json!({})).await;
    wait_event(
        &c.admin,
        "intolerant",
        "FailedScheduling",
        Some("0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."),
    )
    .await;
    create_pod(
        &c.admin,
        "tolerant",
        "100m",
        json!({"spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}),
    )
    .await;
    assert_eq!(wait_bound(&c.admin, "tolerant").await, "control-plane");
    // removing the taint (a node update) lets the first pod in
    Api::<Node>::all(c.admin.clone())
        .patch(
            "control-plane",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": null}})),
        )
        .await
        .unwrap();
    assert_eq!(wait_bound(&c.admin, "intolerant").await, "control-plane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_affinity_and_selectors_pick_the_labelled_nodes() {
    let c = cluster().await;
    for (name, zone) in [("a1", "zone-a"), ("b1", "zone-b"), ("b2", "zone-b")] {
        create_node(
            &c.admin,
            name,
            "4",
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
        )
        .await;
    }
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());
    create_pod(
        &c.admin,
        "wants-a",
        "100m",
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a"]}]}]
        }}}}}),
    )
    .await;
    assert_eq!(wait_bound(&c.admin, "wants-a").await, "a1");
    create_pod(
        &c.admin,
        "prefers-b2",
        "100m",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b2"]}]}}
        ]}}}}),
    )
    .await;
    assert_eq!(wait_bound(&c.admin, "prefers-b2").await, "b2");
    create_pod(
        &c.admin,
        "wants-c",
        "100m",
        json!({"spec": {"nodeSelector": {"topology.kubernetes.io/zone": "zone-c"}}}),
    )
    .await;
    wait_event(
        &c.admin,
        "wants-c",
        "FailedScheduling",
        Some("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_pod_waits_until_its_gates_are_removed() {
    let c = cluster().await;
    create_node(&c.admin, "n1", "4", json!({})).await;
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());
    create_pod(
        &c.admin,
        "gated",
        "100m",
        json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}]}}),
    )
    .await;
    let pod = wait_pod(&c.admin, "gated", "SchedulingGated", |p| {
        scheduled_condition(p).is_some_and(|c| c.1 == "SchedulingGated")
    })
    .await;
    assert_eq!(
        scheduled_condition(&pod).unwrap().2,
        "Scheduling is blocked due to non-empty scheduling gates"
    );
    // an ungated pod created after it is bound while the gated one waits
    create_pod(&c.admin, "free", "100m", json!({})).await;
    wait_bound(&c.admin, "free").await;
    assert!(
        node_of(
            &Api::<Pod>::namespaced(c.admin.clone(), "default")
                .get("gated")
                .await
                .unwrap()
        )
        .is_none()
    );
    Api::<Pod>::namespaced(c.admin.clone(), "default")
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedulingGates": null}})),
        )
        .await
        .unwrap();
    assert_eq!(wait_bound(&c.admin, "gated").await, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_profile_schedules_the_pods_that_name_it() {
    let c = cluster().await;
    create_node(&c.admin, "empty", "8", json!({})).await;
    create_node(&c.admin, "busy", "8", json!({})).await;
    create_pod(
        &c.admin,
        "filler",
        "4",
        json!({"spec": {"nodeName": "busy"}}),
    )
    .await;
    let text = r#"leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
"#;
    let _s = start_scheduler(c.scheduler.clone(), config(text));
    // MostAllocated packs onto the busier node; the default spreads onto the empty one
    create_pod(
        &c.admin,
        "packed",
        "1",
        json!({"spec": {"schedulerName": "bin-packer"}}),
    )
    .await;
    assert_eq!(wait_bound(&c.admin, "packed").await, "busy");
    let e = wait_event(&c.admin, "packed", "Scheduled", None).await;
    assert_eq!(
        e.source.and_then(|s| s.component).as_deref(),
        Some("bin-packer")
    );
    create_pod(&c.admin, "spread", "1", json!({})).await;
    assert_eq!(wait_bound(&c.admin, "spread").await, "empty");
    // nobody schedules for an unknown profile
    create_pod(
        &c.admin,
        "orphan",
        "1",
        json!({"spec": {"schedulerName": "nobody"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod = Api::<Pod>::namespaced(c.admin.clone(), "default")
        .get("orphan")
        .await
        .unwrap();
    assert!(node_of(&pod).is_none());
    assert_eq!(scheduled_condition(&pod), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_scheduler_takes_over_when_the_leader_dies() {
    let c = cluster().await;
    create_node(&c.admin, "n1", "64", json!({})).await;
    let fast = || {
        config(
            "leaderElection:\n  leaderElect: true\n  leaseDuration: 3s\n  renewDeadline: 2s\n  retryPeriod: 500ms\n",
        )
    };
    let first = start_scheduler(c.scheduler.clone(), fast());
    let leases = Api::<Lease>::namespaced(c.admin.clone(), "kube-system");
    let start = Instant::now();
    let first_holder = loop {
        if let Ok(l) = leases.get("kube-scheduler").await {
            if let Some(h) = l.spec.and_then(|s| s.holder_identity) {
                break h;
            }
        }
        assert!(start.elapsed() < DEADLINE, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let second = start_scheduler(c.scheduler.clone(), fast());
    for i in 0..5 {
        create_pod(&c.admin, &format!("before-{i}"), "100m", json!({})).await;
    }
    for i in 0..5 {
        wait_bound(&c.admin, &format!("before-{i}")).await;
    }
    // kill the leader: no release, the standby waits out the lease
    first.abort();
    let killed = Instant::now();
    for i in 0..5 {
        create_pod(&c.admin, &format!("after-{i}"), "100m", json!({})).await;
    }
    for i in 0..5 {
        wait_bound(&c.admin, &format!("after-{i}")).await;
    }
    let took = killed.elapsed();
    let lease = leases.get("kube-scheduler").await.unwrap().spec.unwrap();
    assert_ne!(
        lease.holder_identity.as_deref(),
        Some(first_holder.as_str())
    );
    assert_eq!(lease.lease_transitions, Some(1));
    assert!(
        took < Duration::from_secs(3) + Duration::from_secs(5),
        "took over after {took:?}"
    );
    // no pod was bound twice
    for name in (0..5).flat_map(|i| [format!("before-{i}"), format!("after-{i}")]) {
        wait_event(&c.admin, &name, "Scheduled", None).await;
        assert_eq!(scheduled_events(&c.admin, &name).await, 1, "{name}");
    }
    assert!(!second.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_preempts_a_lower_priority_one() {
    let c = cluster().await;
    create_node(&c.admin, "only", "4", json!({})).await;
    for (name, value) in [("low", 100), ("high", 1000)] {
        let pc: k8s_openapi::api::scheduling::v1::PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(c.admin.clone())
            .create(&PostParams::default(), &pc)
            .await
            .unwrap();
    }
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());
    for name in ["low-a", "low-b"] {
        create_pod(
            &c.admin,
            name,
            "2",
            json!({"spec": {"priorityClassName": "low"}}),
        )
        .await;
        wait_bound(&c.admin, name).await;
    }
    create_pod(
        &c.admin,
        "important",
        "2",
        json!({"spec": {"priorityClassName": "high"}}),
    )
    .await;
    // the preemptor is nominated to the node while a victim terminates
    let pod = wait_pod(&c.admin, "important", "nominatedNodeName", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            == Some("only")
    })
    .await;
    assert!(node_of(&pod).is_none());
    let pods = Api::<Pod>::namespaced(c.admin.clone(), "default");
    let start = Instant::now();
    let victim = loop {
        let mut terminating = Vec::new();
        for name in ["low-a", "low-b"] {
            let p = pods.get(name).await.unwrap();
            if p.metadata.deletion_timestamp.is_some() {
                terminating.push(p);
            }
        }
        if let Some(p) = terminating.pop() {
            assert!(terminating.is_empty(), "one victim is enough");
            break p;
        }
        assert!(start.elapsed() < DEADLINE, "no victim is being deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let name = victim.metadata.name.clone().unwrap();
    // upstream's DisruptionTarget condition and Preempted event on the victim
    let target = victim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
        .cloned()
        .expect("DisruptionTarget condition");
    assert_eq!(target.status, "True");
    assert_eq!(target.reason.as_deref(), Some("PreemptionByScheduler"));
    let uid = pod.metadata.uid.clone().unwrap();
    wait_event(
        &c.admin,
        &name,
        "Preempted",
        Some(&format!("Preempted by pod {uid} on node only")),
    )
    .await;
    // no kubelet: finish the graceful deletion as one would
    pods.delete(&name, &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(wait_bound(&c.admin, "important").await, "only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_a_local_volume_goes_to_the_volumes_node() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let c = cluster().await;
    // "a" is the roomier node: without the volume the scoring plugins would pick it
    create_node(&c.admin, "a", "8", json!({})).await;
    create_node(&c.admin, "b", "2", json!({})).await;
    let _s = start_scheduler(c.scheduler.clone(), no_leader_election());
    create_pod(
        &c.admin,
        "uses-local",
        "100m",
        json!({"spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "local-claim"}}]}}),
    )
    .await;
    // the claim does not exist yet: upstream's VolumeRestrictions/VolumeBinding words
    let e = wait_event(&c.admin, "uses-local", "FailedScheduling", None).await;
    let message = e.message.unwrap_or_default();
    assert!(
        message.contains(r#"persistentvolumeclaim "local-claim" not found"#),
        "{message}"
    );
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "local-b"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local",
            "local": {"path": "/mnt/disks/b"},
            "claimRef": {"namespace": "default", "name": "local-claim"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}
        }
    }))
    .unwrap();
    Api::<PersistentVolume>::all(c.admin.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap();
    // bound as the PV controller leaves a claim (no controller runs here)
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "local-claim", "namespace": "default",
            "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local",
            "volumeName": "local-b",
            "resources": {"requests": {"storage": "1Gi"}}
        }
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(c.admin.clone(), "default")
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    // the claim's creation requeues the pod; the volume's node affinity picks "b"
    assert_eq!(wait_bound(&c.admin, "uses-local").await, "b");
    // a pod without volumes still prefers the roomier node
    create_pod(&c.admin, "no-volumes", "100m", json!({})).await;
    assert_eq!(wait_bound(&c.admin, "no-volumes").await, "a");
}
