//! `bench-controllers`: how fast kube-controller-manager turns Deployments into
//! running pods, measured end to end through an in-process kube-apiserver (embedded
//! store) and kube-scheduler, with the controller manager as its own process (the
//! `kube-controller-manager` binary beside this one) so its memory can be read, and
//! fake nodes whose kubelets `fake-kubelet` plays (bound pods become Running and
//! Ready at once; no container runs).
//!
//! Phases: one Deployment of 1,000 replicas (create → pods created, bound, ready); a
//! Service over its pods (create → 1,000 ready endpoints in EndpointSlices, then pods
//! deleted one at a time → their endpoints gone); a rolling update of the Deployment;
//! 100 Deployments of 10 replicas created at once; then the big Deployment scaled until
//! the cluster holds 10,000 pods, and the manager's RSS.
//! Build first: `cargo build --release -p rkube-bench -p controllers`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apiserver::Server;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACE: &str = "bench";
/// Pods deleted one at a time to time their endpoints' removal.
const ENDPOINT_PROBES: usize = 100;

#[derive(Debug, Parser)]
#[command(name = "bench-controllers")]
struct Args {
    /// Fake nodes (110 pods each).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Replicas of the big Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Small Deployments created at once.
    #[arg(long, default_value_t = 100)]
    deployments: usize,
    /// Replicas of each small Deployment.
    #[arg(long, default_value_t = 10)]
    small_replicas: usize,
    /// Pods in the cluster when the manager's memory is read.
    #[arg(long, default_value_t = 10_000)]
    total_pods: usize,
    /// How long a phase may take before the benchmark gives up.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// When each pod was first seen created, bound and ready.
#[derive(Default, Clone, Copy)]
struct PodTimes {
    created: Option<Instant>,
    bound: Option<Instant>,
    ready: Option<Instant>,
}

/// Pod times by uid, with the pod's `app` label.
#[derive(Default)]
struct Tracker {
    pods: Mutex<HashMap<String, (String, PodTimes)>>,
}

impl Tracker {
    fn record(&self, pod: &Pod) {
        let now = Instant::now();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let app = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .cloned()
            .unwrap_or_default();
        let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let (_, times) = pods
            .entry(uid)
            .or_insert_with(|| (app, PodTimes::default()));
        times.created.get_or_insert(now);
        if bound {
            times.bound.get_or_insert(now);
        }
        if ready {
            times.ready.get_or_insert(now);
        }
    }

    /// The times of the pods whose `app` label passes `wanted`.
    fn times(&self, wanted: impl Fn(&str) -> bool) -> Vec<PodTimes> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.values()
            .filter(|(app, _)| wanted(app))
            .map(|(_, t)| *t)
            .collect()
    }
}

fn track(client: kube::Client, tracker: Arc<Tracker>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => tracker.record(&pod),
                Ok(_) => {}
                Err(e) => eprintln!("# pod watch: {e}"),
            }
        }
    })
}

/// The endpoints of one Service's EndpointSlices as a watch sees them: per slice, its
/// pods and whether each is ready.
#[derive(Default)]
struct SliceView {
    slices: Mutex<HashMap<String, HashMap<String, bool>>>,
}

impl SliceView {
    fn ready(&self) -> usize {
        let slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        slices
            .values()
            .flat_map(|s| s.values())
            .filter(|r| **r)
            .count()
    }

    fn contains(&self, pod: &str) -> bool {
        let slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        slices.values().any(|s| s.contains_key(pod))
    }
}

fn watch_slices(
    client: kube::Client,
    service: &str,
    view: Arc<SliceView>,
) -> tokio::task::JoinHandle<()> {
    let config =
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    tokio::spawn(async move {
        let api: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let mut slices = view.slices.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Ok(Event::Apply(slice) | Event::InitApply(slice)) => {
                    let pods = slice
                        .endpoints
                        .iter()
                        .filter_map(|e| {
                            let pod = e.target_ref.as_ref()?.name.clone()?;
                            let ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                            Some((pod, ready))
                        })
                        .collect();
                    slices.insert(slice.metadata.name.clone().unwrap_or_default(), pods);
                }
                Ok(Event::Delete(slice)) => {
                    slices.remove(slice.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(_) => {}
                Err(e) => eprintln!("# slice watch: {e}"),
            }
        }
    })
}

/// Polls `check` every 5 ms until it holds.
async fn wait_until(check: impl Fn() -> bool, timeout: Duration, what: &str) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn deployment(name: &str, replicas: usize, image: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": image}]
                }
            }
        }
    }))?)
}

/// Waits until `done` holds for the tracked pods passing `wanted`.
async fn wait_pods(
    tracker: &Tracker,
    wanted: impl Fn(&str) -> bool,
    done: impl Fn(&[PodTimes]) -> bool,
    timeout: Duration,
    what: &str,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&tracker.times(&wanted)) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `BENCH_MARKS` set, prints the monotonic clock (the one `perf` stamps samples
/// with) at a phase boundary, so a system-wide profile can be cut to that phase.
fn mark(what: &str) {
    if std::env::var_os("BENCH_MARKS").is_some() {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9);
        eprintln!("# mark {now:.6} {} {what}", jiff::Timestamp::now());
    }
}

/// With `BENCH_MARKS` set, prints how many pods were created, bound and ready in each
/// 100 ms after `start`: where the time between create and bound went.
fn timeline(start: Instant, times: &[PodTimes]) {
    if std::env::var_os("BENCH_MARKS").is_none() {
        return;
    }
    let bucket = |t: Option<Instant>| {
        t.map(|t| (t.saturating_duration_since(start).as_millis() / 100) as usize)
    };
    let mut rows: Vec<[usize; 3]> = Vec::new();
    for t in times {
        for (column, at) in [t.created, t.bound, t.ready].into_iter().enumerate() {
            if let Some(b) = bucket(at) {
                if rows.len() <= b {
                    rows.resize(b + 1, [0; 3]);
                }
                rows[b][column] += 1;
            }
        }
    }
    for (i, [created, bound, ready]) in rows.iter().enumerate() {
        eprintln!(
            "# {:>5.1} s  created {created:>4}  bound {bound:>4}  ready {ready:>4}",
            i as f64 / 10.0
        );
    }
}

/// Seconds from `start` to each of `instants`, sorted.
fn since(start: Instant, instants: impl Iterator<Item = Instant>) -> Vec<f64> {
    let mut v: Vec<f64> = instants
        .map(|t| t.saturating_duration_since(start).as_secs_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn rss_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// Waits until the Deployment's status reports a finished rollout of `replicas`.
async fn wait_rolled_out(
    api: &Api<Deployment>,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let d = api.get(name).await?;
        let generation = d.metadata.generation.unwrap_or(0);
        if let Some(s) = &d.status {
            if s.observed_generation.unwrap_or(0) >= generation
                && s.updated_replicas == Some(replicas)
                && s.replicas == Some(replicas)
                && s.available_replicas == Some(replicas)
            {
                return Ok(Instant::now());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for {name} to roll out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let timeout = Duration::from_secs(args.timeout_secs);
    let manager_binary = std::env::current_exe()?
        .parent()
        .context("the benchmark's directory")?
        .join("kube-controller-manager");
    anyhow::ensure!(
        manager_binary.exists(),
        "{} is missing: cargo build --release -p rkube-bench -p controllers",
        manager_binary.display()
    );

    let dir = tempfile::tempdir()?;
    let options = rkube_bench::embedded_options(dir.path());
    let server = Server::bind(&options).await.context("bind the apiserver")?;
    let pki = server.pki().context("the apiserver's PKI")?;
    let url = server.client_url();
    let admin =
        rkube_bench::client_of(&server.admin_kubeconfig().context("admin kubeconfig")?).await?;
    let manager_kubeconfig = dir.path().join("controller-manager.kubeconfig");
    std::fs::write(
        &manager_kubeconfig,
        pki.client_kubeconfig("controller-manager", &url)
            .context("controller-manager kubeconfig")?,
    )?;
    let scheduler_client = rkube_bench::client_of(
        &pki.client_kubeconfig("scheduler", &url)
            .context("scheduler kubeconfig")?,
    )
    .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let mut scheduler_config = scheduler::config::KubeSchedulerConfiguration::default();
    scheduler_config.set_defaults(&scheduler::registered);
    scheduler_config.leader_election.leader_elect = false;
    let scheduler = tokio::spawn(scheduler::run_with_client(
        scheduler_client,
        scheduler_config,
        None,
        std::future::pending(),
    ));
    let mut manager = tokio::process::Command::new(&manager_binary)
        .arg(format!("--kubeconfig={}", manager_kubeconfig.display()))
        .arg("--leader-elect=false")
        .arg("--secure-port=0")
        .arg(format!(
            "--controller-token-dir={}",
            dir.path().join("tokens").display()
        ))
        // warnings only, unless the run asks for more (`BENCH_MANAGER_LOG=controllers=debug`)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_MANAGER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .kill_on_drop(true)
        .spawn()
        .context("starting kube-controller-manager")?;
    let manager_pid = manager.id().context("the manager's pid")?;

    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
    let mut node_names = Vec::new();
    for i in 0..args.nodes {
        let name = format!("node-{i}");
        fake_kubelet::create_node(&admin, &name, "64", "256Gi", json!({})).await?;
        // without the node-lifecycle controller the not-ready taint would stay
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin.clone());
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": null}})),
            )
            .await?;
        node_names.push(name);
    }
    let names: Vec<&str> = node_names.iter().map(String::as_str).collect();
    let kubelet = fake_kubelet::FakeKubelet::start(admin.clone(), &names);
    // As upstream's e2e framework does, the clock starts once the namespace's `default`
    // ServiceAccount exists: the manager is then up and its controllers synced, so its
    // start-up (every informer's first list) is not charged to the first Deployment.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let deadline = Instant::now() + timeout;
    while accounts.get_opt("default").await?.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for the default ServiceAccount"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // and lets the start-up's work (tokens, CA ConfigMaps, node taints) settle
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tracker = Arc::new(Tracker::default());
    let watch = track(admin.clone(), tracker.clone());
    println!(
        "# controllers benchmark: in-process kube-apiserver (embedded store) and kube-scheduler, kube-controller-manager as its own process, {} fake nodes played by fake-kubelet (pods Running and Ready when bound)",
        args.nodes
    );
    println!(
        "# cores: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. one big Deployment
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let n = args.replicas;
    let t0 = Instant::now();
    mark("deployment created");
    deployments
        .create(&PostParams::default(), &deployment("big", n, "app:v1")?)
        .await?;
    let is_big = |app: &str| app == "big";
    let created = wait_pods(&tracker, is_big, |t| t.len() >= n, timeout, "pods created").await?;
    let bound = wait_pods(
        &tracker,
        is_big,
        |t| t.iter().filter(|p| p.bound.is_some()).count() >= n,
        timeout,
        "pods bound",
    )
    .await?;
    let ready = wait_pods(
        &tracker,
        is_big,
        |t| t.iter().filter(|p| p.ready.is_some()).count() >= n,
        timeout,
        "pods ready",
    )
    .await?;
    mark("all ready");
    let times = tracker.times(is_big);
    timeline(t0, &times);
    let to_bound = since(t0, times.iter().filter_map(|t| t.bound));
    let to_ready = since(t0, times.iter().filter_map(|t| t.ready));
    println!("## Deployment of {n} replicas");
    println!(
        "create → {n} pods created {:>6.2} s   → all bound {:>6.2} s   → all ready {:>6.2} s   ({:.0} pods/s created)",
        (created - t0).as_secs_f64(),
        (bound - t0).as_secs_f64(),
        (ready - t0).as_secs_f64(),
        n as f64 / (created - t0).as_secs_f64()
    );
    println!(
        "Deployment create → pod bound  p50 {:.2} s  p99 {:.2} s  (target p99 ≤ 2 s: {:.2}x; upstream's pod-startup SLO p99 ≤ 5 s)",
        percentile(&to_bound, 0.5),
        percentile(&to_bound, 0.99),
        percentile(&to_bound, 0.99) / 2.0
    );
    println!(
        "Deployment create → pod ready  p50 {:.2} s  p99 {:.2} s",
        percentile(&to_ready, 0.5),
        percentile(&to_ready, 0.99)
    );
    wait_rolled_out(&deployments, "big", n as i32, timeout).await?;

    // 1b. a Service over those pods: its EndpointSlices filled, then kept in step
    let view = Arc::new(SliceView::default());
    let slice_watch = watch_slices(admin.clone(), "big-svc", view.clone());
    let services: Api<Service> = Api::namespaced(admin.clone(), NAMESPACE);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "big-svc"},
        "spec": {"selector": {"app": "big"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?;
    let t_svc = Instant::now();
    services.create(&PostParams::default(), &service).await?;
    let filled = wait_until(|| view.ready() >= n, timeout, "ready endpoints").await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let victims: Vec<String> = pods
        .list(&ListParams::default().labels("app=big"))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .take(ENDPOINT_PROBES)
        .collect();
    let mut removal = Vec::new();
    for pod in &victims {
        wait_until(|| view.contains(pod), timeout, "the pod's endpoint").await?;
        let t = Instant::now();
        pods.delete(pod, &DeleteParams::default().grace_period(0))
            .await?;
        let gone = wait_until(|| !view.contains(pod), timeout, "the endpoint removed").await?;
        removal.push((gone - t).as_secs_f64());
    }
    removal.sort_by(f64::total_cmp);
    println!(
        "## EndpointSlices of a {n}-pod Service: create → {n} ready endpoints in {:.2} s; pod deleted → its endpoint gone p50 {:.0} ms  p99 {:.0} ms  ({} pods, one at a time)",
        (filled - t_svc).as_secs_f64(),
        percentile(&removal, 0.5) * 1000.0,
        percentile(&removal, 0.99) * 1000.0,
        removal.len()
    );
    // the later phases are measured without the Service, as before it existed
    services.delete("big-svc", &DeleteParams::default()).await?;
    slice_watch.abort();
    wait_rolled_out(&deployments, "big", n as i32, timeout).await?;

    // 2. a rolling update of it
    let t1 = Instant::now();
    deployments
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}}})),
        )
        .await?;
    let rolled = wait_rolled_out(&deployments, "big", n as i32, timeout).await?;
    println!(
        "## rolling update of {n} replicas (maxSurge 25%, maxUnavailable 25%): {:.2} s until updated = available = replicas = {n}  ({:.0} pods replaced/s)",
        (rolled - t1).as_secs_f64(),
        n as f64 / (rolled - t1).as_secs_f64()
    );

    // 3. many small Deployments at once
    let (count, each) = (args.deployments, args.small_replicas);
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t2 = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let (deployments, created_at) = (deployments.clone(), created_at.clone());
            async move {
                let name = format!("small-{i}");
                created_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), Instant::now());
                deployments
                    .create(&PostParams::default(), &deployment(&name, each, "app:v1")?)
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let is_small = |app: &str| app.starts_with("small-");
    let total = count * each;
    let all_ready = wait_pods(
        &tracker,
        is_small,
        |t| t.iter().filter(|p| p.ready.is_some()).count() >= total,
        timeout,
        "small deployments' pods ready",
    )
    .await?;
    let small_bound: Vec<f64> = {
        let pods = tracker.pods.lock().unwrap_or_else(|e| e.into_inner());
        let created_at = created_at.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<f64> = pods
            .values()
            .filter(|(app, _)| is_small(app))
            .filter_map(|(app, t)| {
                Some(
                    t.bound?
                        .saturating_duration_since(*created_at.get(app)?)
                        .as_secs_f64(),
                )
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    println!(
        "## {count} Deployments × {each} replicas at once: all {total} pods ready in {:.2} s; each Deployment's create → pod bound p50 {:.2} s  p99 {:.2} s",
        (all_ready - t2).as_secs_f64(),
        percentile(&small_bound, 0.5),
        percentile(&small_bound, 0.99)
    );

    // 4. the manager's memory with the cluster full
    let big = args.total_pods.saturating_sub(total).max(n);
    let t3 = Instant::now();
    deployments
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": big}})),
        )
        .await?;
    wait_rolled_out(&deployments, "big", big as i32, timeout).await?;
    println!(
        "## scaled to {} pods in the cluster in {:.2} s; kube-controller-manager {}",
        big + total,
        (Instant::now() - t3).as_secs_f64(),
        rss_of(manager_pid)
    );
    println!("# fake kubelet started {} pods", kubelet.pods_started());

    watch.abort();
    scheduler.abort();
    let _ = manager.kill().await;
    let _ = stop.send(());
    Ok(())
}
