//! The scheduler's throughput, modelled on upstream's scheduler_perf
//! (`test/integration/scheduler_perf`, its `performance-config.yaml` files and
//! `templates/`): fake Nodes (`node-default.yaml`: 110 pods, 4 CPU, 32Gi, Ready) are
//! created through an in-process kube-apiserver on the embedded store, then init pods,
//! then the measured pods, created concurrently while an in-process kube-scheduler
//! (`scheduler::run_with_client`, default profile, no leader election) binds them. A
//! pod watch records when each pod is first seen bound; the figures are the end-to-end
//! rate (measured pods bound ÷ time from the first measured pod's creation to the last
//! binding), upstream's `SchedulingThroughput` (pods bound per 1 s window: Average,
//! Perc50, Perc90, Perc99) and creation → binding latency, beside upstream's CI floors
//! (the `threshold:` of the matching workload) as ratios. The scheduling cycle alone
//! (snapshot, `schedule_pod`, assume) is then timed in-process against a cache holding
//! the same nodes and pods, with no apiserver.
//!
//! Every workload starts on a fresh apiserver and scheduler (fresh tempdir) and stops
//! them afterwards. The apiserver, the scheduler and the load generator share this
//! process (and its cores). It prints figures; it is never a timed test.
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-scheduler` (see `--help`); a
//! quick run: `--workloads basic --nodes 500 --pods 1000`.

/// The allocator the rkube binaries use, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rkube_bench::{Figure, histogram, measure};
use scheduler::cache::Cache;
use scheduler::config::KubeSchedulerConfiguration;
use scheduler::framework::registry::Handle;
use scheduler::framework::{CycleState, PodInfo};
use scheduler::metrics::Metrics;
use scheduler::queue::SchedulingQueue;
use scheduler::schedule_one::{Scheduler, Shared};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "kube-scheduler throughput, modelled on upstream's scheduler_perf")]
struct Args {
    /// Workloads to run: basic, spreading, anti-affinity, preemption.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "basic,spreading,anti-affinity,preemption"
    )]
    workloads: Vec<String>,
    /// Nodes of every workload (default: upstream's size for each).
    #[arg(long)]
    nodes: Option<usize>,
    /// Init pods of every workload (default: upstream's size for each).
    #[arg(long)]
    init_pods: Option<usize>,
    /// Measured pods of every workload (default: upstream's size for each).
    #[arg(long)]
    pods: Option<usize>,
    /// Creations in flight (nodes and pods).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long init or measured pods may take to be bound before the workload gives up.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Skip the in-process scheduling-cycle measurement.
    #[arg(long)]
    skip_cycle: bool,
    /// Skip the end-to-end measurement through the apiserver.
    #[arg(long)]
    skip_e2e: bool,
    /// Skip SchedulingBasic's backlog drain (pending pods bound by a scheduler started
    /// after them).
    #[arg(long)]
    skip_backlog: bool,
}

/// The pod templates (upstream's `templates/*.yaml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Template {
    /// `pod-default.yaml`: 100m CPU, 500Mi.
    Default,
    /// `pod-with-topology-spreading.yaml`: label color=blue, maxSkew 5 over zones,
    /// DoNotSchedule.
    Spreading,
    /// `pod-with-pod-anti-affinity.yaml`: label color=green, required anti-affinity to
    /// color=green by hostname in sched-0 and sched-1.
    AntiAffinity,
    /// `pod-low-priority.yaml`: 900m CPU, priority 0, terminationGracePeriodSeconds 0.
    LowPriority,
    /// `pod-high-priority.yaml`: 3000m CPU, priority 10.
    HighPriority,
}

struct Workload {
    /// Upstream's test case name.
    name: &'static str,
    /// The `--workloads` flag value.
    flag: &'static str,
    /// Upstream's workload (sizes) this mirrors.
    upstream: &'static str,
    nodes: usize,
    init: usize,
    measured: usize,
    /// Nodes labelled `topology.kubernetes.io/zone` round-robin over three zones.
    zones: bool,
    init_template: Template,
    measured_template: Template,
    init_ns: &'static str,
    measured_ns: &'static str,
    /// Upstream's CI floor in pods/s, if it has one.
    threshold: Option<(f64, &'static str)>,
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "SchedulingBasic",
            flag: "basic",
            upstream: "misc/SchedulingBasic/5000Nodes_10000Pods",
            nodes: 5000,
            init: 1000,
            measured: 10000,
            zones: false,
            init_template: Template::Default,
            measured_template: Template::Default,
            init_ns: "default",
            measured_ns: "default",
            threshold: Some((680.0, "SchedulingBasic/5000Nodes_10000Pods")),
        },
        Workload {
            name: "TopologySpreading",
            flag: "spreading",
            upstream: "topology_spreading/TopologySpreading/5000Nodes_5000Pods",
            nodes: 5000,
            init: 5000,
            measured: 5000,
            zones: true,
            init_template: Template::Default,
            measured_template: Template::Spreading,
            init_ns: "default",
            measured_ns: "default",
            threshold: Some((460.0, "TopologySpreading/5000Nodes_5000Pods")),
        },
        Workload {
            name: "SchedulingPodAntiAffinity",
            flag: "anti-affinity",
            upstream: "affinity/SchedulingPodAntiAffinity/5000Nodes_2000Pods",
            nodes: 5000,
            init: 1000,
            measured: 2000,
            zones: false,
            init_template: Template::AntiAffinity,
            measured_template: Template::AntiAffinity,
            init_ns: "sched-0",
            measured_ns: "sched-1",
            threshold: Some((60.0, "SchedulingPodAntiAffinity/5000Nodes_2000Pods")),
        },
        Workload {
            name: "PreemptionBasic",
            flag: "preemption",
            upstream: "misc/PreemptionBasic/500Nodes (an earlier upstream size)",
            nodes: 500,
            init: 2000,
            measured: 500,
            zones: false,
            init_template: Template::LowPriority,
            measured_template: Template::HighPriority,
            init_ns: "default",
            measured_ns: "default",
            // upstream has no floor for PreemptionBasic; PreemptionAsync's 570 measures
            // default pods scheduled beside preemptors, not the preemptors
            threshold: None,
        },
    ]
}

const ZONES: [&str; 3] = ["moon-1", "moon-2", "moon-3"];

fn node_name(i: usize) -> String {
    format!("scheduler-perf-{i:05}")
}

/// `node-default.yaml` (with allocatable = capacity, as the API defaults it, and the
/// hostname label a kubelet sets).
fn node_json(i: usize, zones: bool) -> Value {
    let name = node_name(i);
    let mut labels = json!({"kubernetes.io/hostname": name});
    if zones {
        labels["topology.kubernetes.io/zone"] = json!(ZONES[i % ZONES.len()]);
    }
    let resources = json!({"pods": "110", "cpu": "4", "memory": "32Gi"});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running",
        },
    })
}

fn pod_json(name: &str, namespace: &str, template: Template) -> Value {
    let (cpu, image) = match template {
        Template::LowPriority => ("900m", "registry.k8s.io/pause:3.10"),
        Template::HighPriority => ("3000m", "registry.k8s.io/pause:3.10"),
        _ => ("100m", "registry.k8s.io/pause:3.10.1"),
    };
    let resources = json!({"cpu": cpu, "memory": "500Mi"});
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{
            "name": "pause", "image": image,
            "ports": [{"containerPort": 80}],
            "resources": {"limits": resources, "requests": resources},
        }]},
    });
    match template {
        Template::Default => {}
        Template::Spreading => {
            pod["metadata"]["labels"] = json!({"color": "blue"});
            pod["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"color": "blue"}},
            }]);
        }
        Template::AntiAffinity => {
            pod["metadata"]["labels"] = json!({"color": "green"});
            pod["spec"]["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"color": "green"}},
                    "topologyKey": "kubernetes.io/hostname",
                    "namespaces": ["sched-1", "sched-0"],
                }],
            }});
        }
        Template::LowPriority => {
            pod["spec"]["terminationGracePeriodSeconds"] = json!(0);
        }
        Template::HighPriority => {
            pod["spec"]["priority"] = json!(10);
        }
    }
    pod
}

fn config() -> Result<KubeSchedulerConfiguration> {
    Ok(KubeSchedulerConfiguration::parse(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection:\n  leaderElect: false\n",
        &scheduler::registered,
    )?)
}

/// When each pod was first seen bound, from a watch on all pods.
#[derive(Default)]
struct Bound {
    at: Mutex<HashMap<String, Instant>>,
    init: AtomicUsize,
    measured: AtomicUsize,
    backlog: AtomicUsize,
    synced: AtomicBool,
}

impl Bound {
    fn record(&self, pod: &Pod) {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
        {
            return;
        }
        let now = Instant::now();
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let key = format!("{}/{name}", pod.metadata.namespace.as_deref().unwrap_or(""));
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if at.contains_key(&key) {
            return;
        }
        at.insert(key, now);
        if name.starts_with("init-") {
            self.init.fetch_add(1, Ordering::SeqCst);
        } else if name.starts_with("pod-") {
            self.measured.fetch_add(1, Ordering::SeqCst);
        } else if name.starts_with("backlog-") {
            self.backlog.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn get(&self, key: &str) -> Option<Instant> {
        self.at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }
}

fn track(client: kube::Client, bound: Arc<Bound>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    bound.record(&pod)
                }
                Ok(watcher::Event::InitDone) => bound.synced.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(e) => eprintln!("# pod watch: {e}"),
            }
        }
    })
}

/// A fresh apiserver (own tempdir) and scheduler.
struct Cluster {
    client: kube::Client,
    stop_apiserver: tokio::sync::oneshot::Sender<()>,
    stop_scheduler: tokio::sync::oneshot::Sender<()>,
    scheduler: tokio::task::JoinHandle<Result<(), scheduler::Error>>,
    watch: tokio::task::JoinHandle<()>,
    bound: Arc<Bound>,
    _dir: tempfile::TempDir,
}

async fn start_cluster() -> Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let mut options = rkube_bench::embedded_options(dir.path());
    // as upstream's integration apiserver: the templates set `priority` themselves
    options.disable_admission_plugins.push("Priority".into());
    let (client, stop_apiserver) = rkube_bench::start_apiserver(options).await?;
    let bound = Arc::new(Bound::default());
    let watch = track(client.clone(), bound.clone());
    let (stop_scheduler, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(scheduler::run_with_client(
        client.clone(),
        config()?,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bound.synced.load(Ordering::SeqCst) {
        anyhow::ensure!(Instant::now() < deadline, "the pod watch does not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Cluster {
        client,
        stop_apiserver,
        stop_scheduler,
        scheduler,
        watch,
        bound,
        _dir: dir,
    })
}

impl Cluster {
    async fn stop(self) -> Result<()> {
        let _ = self.stop_scheduler.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.scheduler).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("# the scheduler stopped with: {e}"),
            Ok(Err(e)) => eprintln!("# the scheduler task: {e}"),
            Err(_) => eprintln!("# the scheduler did not stop within 10 s"),
        }
        self.watch.abort();
        let _ = self.stop_apiserver.send(());
        Ok(())
    }
}

/// Creates `n` pods `{prefix}-{i}` with `concurrency` in flight; the instant each
/// creation started goes in `started`.
async fn create_pods(
    client: &kube::Client,
    namespace: &'static str,
    prefix: &'static str,
    template: Template,
    n: usize,
    concurrency: usize,
    started: Arc<Vec<OnceLock<Instant>>>,
) -> Result<Figure> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    measure(concurrency, n, move |i| {
        let (api, started) = (api.clone(), started.clone());
        async move {
            let pod: Pod =
                serde_json::from_value(pod_json(&format!("{prefix}-{i}"), namespace, template))?;
            let _ = started[i].set(Instant::now());
            api.create(&PostParams::default(), &pod)
                .await
                .with_context(|| format!("creating pod {prefix}-{i}"))?;
            Ok(())
        }
    })
    .await
}

/// Waits until `count` reaches `n`; false on timeout.
async fn wait_count(count: &AtomicUsize, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while count.load(Ordering::SeqCst) < n {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or("?".to_owned(), |kb| format!("{:.0} MiB", kb / 1024.0))
    };
    format!(
        "VmRSS {}  VmHWM (peak) {}",
        field("VmRSS:"),
        field("VmHWM:")
    )
}

fn ratio(rate: f64, threshold: Option<(f64, &str)>) -> String {
    match threshold {
        Some((floor, case)) => format!(
            "  {:.2}x of upstream's CI floor {floor:.0} pods/s ({case})",
            rate / floor
        ),
        None => "  (upstream has no CI floor for this workload)".to_owned(),
    }
}

/// The end-to-end run through the apiserver; returns the measured rate.
async fn run_e2e(w: &Workload, args: &Args) -> Result<()> {
    let tag = w.flag;
    let timeout = Duration::from_secs(args.timeout_secs);
    let c = args.concurrency;
    let cluster = start_cluster().await?;
    let client = cluster.client.clone();
    for ns in [w.init_ns, w.measured_ns] {
        if ns != "default" {
            let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
            let api: Api<Namespace> = Api::all(client.clone());
            if api.get_opt(ns).await?.is_none() {
                api.create(&PostParams::default(), &namespace).await?;
            }
        }
    }

    // nodes, each created then untainted (TaintNodesByCondition marks new nodes
    // not-ready; no kubelet or node-lifecycle controller runs here)
    let nodes: Api<Node> = Api::all(client.clone());
    let zones = w.zones;
    let started = Instant::now();
    let figure = measure(c, w.nodes, move |i| {
        let api = nodes.clone();
        async move {
            let node: Node = serde_json::from_value(node_json(i, zones))?;
            let created = api.create(&PostParams::default(), &node).await?;
            let tainted = created
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| !t.is_empty());
            if tainted {
                api.patch(
                    &node_name(i),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"taints": null}})),
                )
                .await?;
            }
            Ok(())
        }
    })
    .await?;
    println!(
        "{tag:<13} nodes create+untaint {figure}  ({} nodes in {:.1} s)",
        w.nodes,
        started.elapsed().as_secs_f64()
    );
    // let the scheduler's node informer catch up before pods arrive
    tokio::time::sleep(Duration::from_secs(2)).await;

    if w.init > 0 {
        let started = Instant::now();
        let times = Arc::new((0..w.init).map(|_| OnceLock::new()).collect::<Vec<_>>());
        let figure = create_pods(
            &client,
            w.init_ns,
            "init",
            w.init_template,
            w.init,
            c,
            times,
        )
        .await?;
        let all = wait_count(&cluster.bound.init, w.init, timeout).await;
        println!(
            "{tag:<13} init pods create     {figure}  ({} of {} bound {:.1} s after the first creation)",
            cluster.bound.init.load(Ordering::SeqCst),
            w.init,
            started.elapsed().as_secs_f64()
        );
        if !all {
            println!("{tag:<13} init pods were not all bound within {timeout:?}; giving up");
            cluster.stop().await?;
            return Ok(());
        }
    }

    let n = w.measured;
    let times = Arc::new((0..n).map(|_| OnceLock::new()).collect::<Vec<_>>());
    let t0 = Instant::now();
    let figure = create_pods(
        &client,
        w.measured_ns,
        "pod",
        w.measured_template,
        n,
        c,
        times.clone(),
    )
    .await?;
    let created_in = t0.elapsed();
    let all = wait_count(&cluster.bound.measured, n, timeout).await;
    println!(
        "{tag:<13} measured pods create {figure}  (all {n} created in {:.1} s)",
        created_in.as_secs_f64()
    );
    if !all {
        println!(
            "{tag:<13} only {} of {n} measured pods bound within {timeout:?}",
            cluster.bound.measured.load(Ordering::SeqCst)
        );
    }

    let mut latency = histogram();
    let mut binds = Vec::with_capacity(n);
    for (i, created) in times.iter().enumerate() {
        let key = format!("{}/pod-{i}", w.measured_ns);
        if let (Some(created), Some(bound)) = (created.get(), cluster.bound.get(&key)) {
            latency.record(bound.saturating_duration_since(*created).as_micros().max(1) as u64)?;
            binds.push(bound.saturating_duration_since(t0).as_secs_f64());
        }
    }
    binds.sort_by(f64::total_cmp);
    let last = binds.last().copied().unwrap_or(0.0);
    let rate = binds.len() as f64 / last.max(1e-9);
    println!(
        "{tag:<13} e2e throughput       {rate:>10.0} pods/s  ({} pods bound {last:.2} s after the first measured creation){}",
        binds.len(),
        ratio(rate, w.threshold)
    );
    // upstream's SchedulingThroughput: pods bound per 1 s window (a last partial
    // window counts when at least half a second long, scaled to its length)
    let windows = last.ceil().max(1.0) as usize;
    let mut counts = vec![0f64; windows];
    for b in &binds {
        counts[((*b) as usize).min(windows - 1)] += 1.0;
    }
    let tail = last - (windows - 1) as f64;
    if windows > 1 && tail < 0.5 {
        counts.pop();
    } else if let Some(c) = counts.last_mut() {
        *c /= tail.max(1e-3).min(1.0);
    }
    let average = counts.iter().sum::<f64>() / counts.len().max(1) as f64;
    counts.sort_by(f64::total_cmp);
    println!(
        "{tag:<13} SchedulingThroughput Average {average:.0}  Perc50 {:.0}  Perc90 {:.0}  Perc99 {:.0} pods/s  ({} windows of 1 s){}",
        percentile(&counts, 0.5),
        percentile(&counts, 0.9),
        percentile(&counts, 0.99),
        counts.len(),
        ratio(average, w.threshold)
    );
    println!(
        "{tag:<13} create→bind latency p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    if w.flag == "basic" && !args.skip_backlog {
        backlog_drain(&cluster, w, args).await?;
    }
    if w.flag == "basic" {
        println!(
            "{tag:<13} process memory       {}  (apiserver + scheduler + bench in one process, {} nodes and {} pods stored)",
            rss(),
            w.nodes,
            w.init + n + if args.skip_backlog { 0 } else { n }
        );
    }
    cluster.stop().await
}

/// The scheduler and apiserver without the load of creating pods: `n` pods for a
/// profile nobody serves yet pile up, then a second scheduler serving that profile
/// starts and binds them all; the rate counts from its first binding to its last.
async fn backlog_drain(cluster: &Cluster, w: &Workload, args: &Args) -> Result<()> {
    const PROFILE: &str = "backlog-scheduler";
    let tag = w.flag;
    let n = w.measured;
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), w.measured_ns);
    let ns = w.measured_ns;
    let template = w.measured_template;
    measure(args.concurrency, n, move |i| {
        let api = api.clone();
        async move {
            let mut pod = pod_json(&format!("backlog-{i}"), ns, template);
            pod["spec"]["schedulerName"] = json!(PROFILE);
            let pod: Pod = serde_json::from_value(pod)?;
            api.create(&PostParams::default(), &pod).await?;
            Ok(())
        }
    })
    .await?;
    let config = KubeSchedulerConfiguration::parse(
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection:\n  leaderElect: false\nprofiles:\n- schedulerName: {PROFILE}\n"
        ),
        &scheduler::registered,
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(scheduler::run_with_client(
        cluster.client.clone(),
        config,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    let all = wait_count(
        &cluster.bound.backlog,
        n,
        Duration::from_secs(args.timeout_secs),
    )
    .await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), second).await;
    let mut binds: Vec<Instant> = (0..n)
        .filter_map(|i| cluster.bound.get(&format!("{ns}/backlog-{i}")))
        .collect();
    binds.sort();
    if !all || binds.len() < 2 {
        println!("{tag:<13} backlog drain: only {} of {n} bound", binds.len());
        return Ok(());
    }
    let span = binds[binds.len() - 1]
        .saturating_duration_since(binds[0])
        .as_secs_f64();
    let rate = (binds.len() - 1) as f64 / span.max(1e-9);
    println!(
        "{tag:<13} backlog drain        {rate:>10.0} pods/s  ({n} pending pods bound by a scheduler started after them, {span:.2} s from its first binding to its last){}",
        ratio(rate, w.threshold)
    );
    Ok(())
}

/// The scheduling cycle alone: snapshot, `schedule_pod`, assume, against a cache with
/// the workload's nodes; init pods are placed the same way first (untimed).
fn run_cycles(w: &Workload) -> Result<()> {
    let tag = w.flag;
    let config = config()?;
    let profiles = scheduler::build_profiles(&config, &Handle::default())?;
    let fw = profiles
        .get(scheduler::config::DEFAULT_SCHEDULER_NAME)
        .context("the default profile")?
        .clone();
    let cache = Arc::new(Mutex::new(Cache::new()));
    {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..w.nodes {
            let node: Node = serde_json::from_value(node_json(i, w.zones))?;
            c.add_or_update_node(Arc::new(node));
        }
    }
    let shared = Arc::new(Shared {
        cache: cache.clone(),
        queue: Arc::new(SchedulingQueue::new(
            profiles.clone(),
            Duration::from_secs(1),
            Duration::from_secs(10),
        )),
        client: None,
        recorder: None,
        metrics: Arc::new(Metrics::new()),
        runtime: tokio::runtime::Handle::current(),
    });
    let mut scheduler = Scheduler::new(
        shared,
        profiles,
        config.percentage_of_nodes_to_score.unwrap_or(0),
    );
    let mut hist = histogram();
    let mut busy = Duration::ZERO;
    let (mut failed, mut measured) = (0usize, 0usize);
    let pods = (0..w.init)
        .map(|i| (false, format!("init-{i}"), w.init_ns, w.init_template))
        .chain(
            (0..w.measured).map(|i| (true, format!("pod-{i}"), w.measured_ns, w.measured_template)),
        );
    for (timed, name, ns, template) in pods {
        let mut pod: Pod = serde_json::from_value(pod_json(&name, ns, template))?;
        pod.metadata.uid = Some(format!("{ns}-{name}"));
        let info = PodInfo::new(pod.clone());
        let t = Instant::now();
        let snapshot = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update_snapshot();
        let mut state = CycleState::new(snapshot);
        let result = scheduler.schedule_pod(&fw, &mut state, &info);
        drop(state);
        match result {
            Ok(r) => {
                pod.spec.get_or_insert_with(Default::default).node_name = Some(r.host);
                cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .assume_pod(Arc::new(PodInfo::new(pod)))?;
            }
            Err(_) => failed += 1,
        }
        let elapsed = t.elapsed();
        if timed {
            measured += 1;
            busy += elapsed;
            hist.record(elapsed.as_micros().max(1) as u64)?;
        }
    }
    println!(
        "{tag:<13} cycle in-process     {:>10.0} cycles/s  p50 {:>8.3} ms  p99 {:>8.3} ms  ({measured} cycles: snapshot + schedule_pod + assume, {} nodes, {} pods placed first{})",
        measured as f64 / busy.as_secs_f64().max(1e-9),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        w.nodes,
        w.init,
        if failed > 0 {
            format!(", {failed} found no node")
        } else {
            String::new()
        }
    );
    if w.flag == "basic" {
        println!(
            "{tag:<13} cycle memory         {}  (the scheduler's cache, snapshot and profiles with {} nodes and {} pods; the scheduler's own footprint when run with --skip-e2e)",
            rss(),
            w.nodes,
            w.init + measured
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let known: Vec<&str> = workloads().iter().map(|w| w.flag).collect();
    for flag in &args.workloads {
        anyhow::ensure!(
            known.contains(&flag.as_str()),
            "unknown workload {flag:?}; known: {known:?}"
        );
    }
    let config = config()?;
    let profiles = scheduler::build_profiles(&config, &Handle::default())?;
    let fw = &profiles[scheduler::config::DEFAULT_SCHEDULER_NAME];
    println!(
        "# scheduler benchmark: workloads {:?}, {} creations in flight; in-process kube-apiserver (embedded sqlite store) and kube-scheduler (default profile), fresh for each workload",
        args.workloads, args.concurrency
    );
    println!("# cores: {cores}");
    println!(
        "# default profile: Filter {:?}; Score {:?}; PostFilter {:?}",
        fw.plugin_names("Filter"),
        fw.plugin_names("Score"),
        fw.plugin_names("PostFilter")
    );
    println!(
        "# e2e: pods/s = measured pods bound (seen by a pod watch) / time from the first measured creation to the last binding; the apiserver, the scheduler and the load share this process"
    );

    for mut w in workloads() {
        if !args.workloads.iter().any(|f| f == w.flag) {
            continue;
        }
        if w.flag == "preemption"
            && !scheduler::plugins::registry().contains_key("DefaultPreemption")
        {
            println!("preemption: skipped, DefaultPreemption not built yet");
            continue;
        }
        let resized = args.nodes.is_some() || args.init_pods.is_some() || args.pods.is_some();
        w.nodes = args.nodes.unwrap_or(w.nodes);
        w.init = args.init_pods.unwrap_or(w.init);
        w.measured = args.pods.unwrap_or(w.measured);
        if w.measured_template == Template::AntiAffinity && w.init + w.measured > w.nodes {
            // one green pod per node: keep the workload feasible
            w.init = w.init.min(w.nodes / 5);
            w.measured = w.measured.min(w.nodes - w.init);
        }
        if resized {
            // the floors are for upstream's sizes only
            w.threshold = w
                .threshold
                .map(|(floor, _)| (floor, "upstream's size differs: indicative only"));
        }
        println!(
            "## {} ({} nodes, {} init pods, {} measured pods; upstream {})",
            w.name, w.nodes, w.init, w.measured, w.upstream
        );
        if !args.skip_e2e {
            run_e2e(&w, &args).await?;
        }
        if !args.skip_cycle && w.flag != "preemption" {
            tokio::task::block_in_place(|| run_cycles(&w))?;
        }
    }
    Ok(())
}
