//! kube-apiserver benchmark: pod create / get throughput and p50/p99 at several
//! concurrencies through HTTPS and a real client (kube-rs), over the embedded store and
//! over etcd; LIST of 10,000 pods as JSON (bytes as served, and decoded by kube-rs) and
//! as Table; watch fan-out (1,000 watchers, 1,000 events/s, delivery p50/p99); RSS per
//! stored pod between 10,000 and 100,000 stored pods.
//! In the same run it measures raw etcd put at the same concurrency and prints the
//! ratios. It prints figures; it is never a timed test.
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-apiserver` (see `--help`).

use anyhow::{Context, Result};
use apiserver::ServerOptions;
use apiserver::storage::testing::etcd_cluster::EtcdCluster;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use rkube_bench::{Figure, measure};

#[derive(Parser, Debug)]
#[command(about = "kube-apiserver over the embedded store and etcd, beside raw etcd")]
struct Args {
    /// Pods created per concurrency level.
    #[arg(long, default_value_t = 2000)]
    creates: usize,
    /// Pods in the listed collection.
    #[arg(long, default_value_t = 10000)]
    list_pods: usize,
    /// Watchers of the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Events (ConfigMap creates) the watchers receive, at --event-rate per second.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Events per second in the fan-out figure.
    #[arg(long, default_value_t = 1000)]
    event_rate: usize,
    /// Stored pods for the second RSS figure (embedded store only; 0 skips it).
    #[arg(long, default_value_t = 100_000)]
    rss_pods: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
}

/// A pod of about 2 KiB, as a small real pod is.
fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench"}, "annotations": {"bench/padding": "x".repeat(1200)}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}],
                 "env": [{"name": "MODE", "value": "bench"}], "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }))
    .expect("a valid pod")
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn bench_server(
    name: &str,
    client: kube::Client,
    args: &Args,
    raw_put: &[(usize, Figure)],
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for &c in &args.concurrency {
        let api = pods.clone();
        let create = measure(c, args.creates, move |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod(&format!("c{c}-{i}")))
                    .await?;
                Ok(())
            }
        })
        .await?;
        let raw = raw_put
            .iter()
            .find(|(rc, _)| *rc == c)
            .map_or(0.0, |(_, f)| f.ops_per_sec);
        println!(
            "{name:<9} c{c:<3} create {create}   {:.2}x of raw etcd put",
            create.ops_per_sec / raw.max(1e-9)
        );
        let api = pods.clone();
        let n = args.creates;
        let get = measure(c, args.creates, move |i| {
            let api = api.clone();
            async move {
                api.get(&format!("c{c}-{}", (i * 7919) % n)).await?;
                Ok(())
            }
        })
        .await?;
        println!("{name:<9} c{c:<3} get    {get}");
    }

    // The listed collection: its own namespace holding `list_pods` pods.
    let ns = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bench-list"}}))?;
    ns.create(&PostParams::default(), &namespace).await?;
    let listed: Api<Pod> = Api::namespaced(client.clone(), "bench-list");
    let api = listed.clone();
    measure(64, args.list_pods, move |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &pod(&format!("l{i}")))
                .await?;
            Ok(())
        }
    })
    .await?;
    println!(
        "{name:<9} RSS with {} pods stored (apiserver and bench in one process): {:.0} MiB",
        args.list_pods + args.creates * args.concurrency.len(),
        rss_mib()
    );
    let bytes_client = client.clone();
    let want = args.list_pods;
    let raw = measure(1, 5, move |_| {
        let client = bytes_client.clone();
        async move {
            let request = http::Request::get("/api/v1/namespaces/bench-list/pods")
                .header("Accept", "application/json")
                .body(Vec::new())?;
            let text = client.request_text(request).await?;
            let items = text.matches("\"uid\":").count();
            anyhow::ensure!(items == want, "listed {items} of {want}");
            Ok(())
        }
    })
    .await?;
    println!(
        "{name:<9} LIST {} pods as JSON   p50 {:.1} ms  p99 {:.1} ms  (bytes as served, read by the client)",
        args.list_pods, raw.p50_ms, raw.p99_ms
    );
    let api = listed.clone();
    let json = measure(1, 5, move |_| {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await?;
            anyhow::ensure!(
                list.items.len() == want,
                "listed {} of {want}",
                list.items.len()
            );
            Ok(())
        }
    })
    .await?;
    println!(
        "{name:<9} LIST {} pods as JSON   p50 {:.1} ms  p99 {:.1} ms  (decoded into k8s-openapi Pods by kube-rs)",
        args.list_pods, json.p50_ms, json.p99_ms
    );
    let table_client = client.clone();
    let table = measure(1, 5, move |_| {
        let client = table_client.clone();
        async move {
            let request = http::Request::get("/api/v1/namespaces/bench-list/pods")
                .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .body(Vec::new())?;
            let text = client.request_text(request).await?;
            anyhow::ensure!(text.contains("\"kind\":\"Table\""), "not a Table");
            Ok(())
        }
    })
    .await?;
    println!(
        "{name:<9} LIST {} pods as Table  p50 {:.1} ms  p99 {:.1} ms",
        args.list_pods, table.p50_ms, table.p99_ms
    );
    watch_fan_out(name, &client, args).await?;
    Ok(())
}

/// `watchers` watches of one namespace's ConfigMaps, each on its own connection; then
/// `events` creates paced at `event_rate` per second. Delivery latency runs from the
/// moment a create is sent to the moment a watcher reads its event.
async fn watch_fan_out(name: &str, client: &kube::Client, args: &Args) -> Result<()> {
    use futures::{AsyncBufReadExt, StreamExt};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    let namespace = format!("bench-watch-{name}");
    let ns = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
    )
    .await?;
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &namespace);
    let configmap = |name: &str| -> Result<k8s_openapi::api::core::v1::ConfigMap> {
        Ok(serde_json::from_value(
            serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}),
        )?)
    };

    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..args.events).map(|_| OnceLock::new()).collect());
    let latencies = Arc::new(Mutex::new(rkube_bench::histogram()));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let (client, sent, latencies, connected) = (
            client.clone(),
            sent.clone(),
            latencies.clone(),
            connected.clone(),
        );
        let path = format!("/api/v1/namespaces/{namespace}/configmaps?watch=true");
        let events = args.events;
        watchers.push(tokio::spawn(async move {
            let request = http::Request::get(path).body(Vec::new())?;
            let mut lines = client.request_stream(request).await?.lines();
            let mut seen = 0;
            while let Some(line) = lines.next().await {
                let line = line?;
                let now = Instant::now();
                if line.contains("\"name\":\"ready\"") {
                    connected.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Some(index) = line
                    .split("\"name\":\"e")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                if let Some(at) = sent.get(index).and_then(OnceLock::get) {
                    let micros = now.duration_since(*at).as_micros().max(1) as u64;
                    let _ = latencies.lock().unwrap().record(micros);
                }
                seen += 1;
                if seen == events {
                    break;
                }
            }
            anyhow::Ok(seen)
        }));
    }
    // Every watcher is connected once it has seen the `ready` ConfigMap.
    configmaps
        .create(&PostParams::default(), &configmap("ready")?)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while connected.load(Ordering::SeqCst) < args.watchers {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} watchers connected",
            connected.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let mut writes = Vec::new();
    for i in 0..args.events {
        let due = start + Duration::from_secs_f64(i as f64 / args.event_rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (api, sent, object) = (
            configmaps.clone(),
            sent.clone(),
            configmap(&format!("e{i}"))?,
        );
        writes.push(tokio::spawn(async move {
            let _ = sent[i].set(Instant::now());
            api.create(&PostParams::default(), &object).await?;
            anyhow::Ok(())
        }));
    }
    for write in writes {
        write.await??;
    }
    let produced = start.elapsed();
    let mut delivered = 0;
    for watcher in watchers {
        delivered += tokio::time::timeout(Duration::from_secs(120), watcher).await???;
    }
    let latencies = latencies.lock().unwrap();
    println!(
        "{name:<9} watch fan-out: {} watchers x {} events at {:.0} events/s: {delivered} delivered, delivery p50 {:.1} ms  p99 {:.1} ms",
        args.watchers,
        args.events,
        args.events as f64 / produced.as_secs_f64(),
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
    );
    Ok(())
}

/// RSS per stored pod: the process's RSS with `from` pods stored, then with `to`.
async fn rss_per_pod(client: &kube::Client, from: usize, to: usize) -> Result<()> {
    let ns = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "bench-rss"}}))?,
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench-rss");
    let mut rss = Vec::new();
    let mut stored = 0;
    for target in [from, to] {
        let api = pods.clone();
        let offset = stored;
        measure(64, target - stored, move |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod(&format!("r{}", offset + i)))
                    .await?;
                Ok(())
            }
        })
        .await?;
        stored = target;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        rss.push(rss_mib());
        println!(
            "embedded  RSS with {target} pods in bench-rss (apiserver and bench in one process): {:.0} MiB",
            rss_mib()
        );
    }
    println!(
        "embedded  RSS per stored pod between {from} and {to}: {:.2} KiB (pod JSON as stored: {} bytes)",
        (rss[1] - rss[0]) * 1024.0 / (to - from) as f64,
        serde_json::to_vec(&pod("r00000"))?.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    println!(
        "# apiserver benchmark: {} pod creates per level, LIST of {} pods, concurrency {:?}",
        args.creates, args.list_pods, args.concurrency
    );
    let cluster = EtcdCluster::start(1)
        .await
        .context("starting etcd (run hack/install-deps.sh)")?;

    // Raw etcd put of pod-sized values at each concurrency, the yardstick.
    let raw_client = etcd_client::Client::connect(cluster.endpoints(), None).await?;
    let mut raw_put = Vec::new();
    for &c in &args.concurrency {
        let client = raw_client.clone();
        let value = serde_json::to_vec(&pod("raw"))?;
        let figure = measure(c, args.creates, move |i| {
            let (mut kv, value) = (client.kv_client(), value.clone());
            async move {
                kv.put(format!("/raw/c{c}/{i}"), value, None).await?;
                Ok(())
            }
        })
        .await?;
        println!("raw-etcd  c{c:<3} put    {figure}");
        raw_put.push((c, figure));
    }

    let dir = tempfile::tempdir()?;
    let mut embedded = ServerOptions::defaults();
    embedded.secure_port = 0;
    embedded.bind_address = [127, 0, 0, 1].into();
    embedded.storage_url = Some(format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ));
    embedded.cert_dir = dir.path().join("pki-embedded");
    // no controller manager runs here to create the default service account
    embedded.disable_admission_plugins = vec!["ServiceAccount".into()];
    let (client, stop_embedded) = rkube_bench::start_apiserver(embedded).await?;
    bench_server("embedded", client.clone(), &args, &raw_put).await?;
    if args.rss_pods > args.list_pods {
        rss_per_pod(&client, args.list_pods, args.rss_pods).await?;
    }
    let _ = stop_embedded.send(());

    let mut on_etcd = ServerOptions::defaults();
    on_etcd.secure_port = 0;
    on_etcd.bind_address = [127, 0, 0, 1].into();
    on_etcd.etcd_servers = cluster.endpoints();
    on_etcd.cert_dir = dir.path().join("pki-etcd");
    on_etcd.disable_admission_plugins = vec!["ServiceAccount".into()];
    let (client, stop_etcd) = rkube_bench::start_apiserver(on_etcd).await?;
    bench_server("etcd", client, &args, &raw_put).await?;
    let _ = stop_etcd.send(());
    Ok(())
}
