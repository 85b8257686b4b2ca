//! kube-apiserver benchmark: pod create / get throughput and p50/p99 at several
//! concurrencies through HTTPS and a real client (kube-rs), over the embedded store and
//! over etcd; LIST of 10,000 pods as JSON and as Table; RSS with 10,000 stored pods.
//! In the same run it measures raw etcd put at the same concurrency and prints the
//! ratios. It prints figures; it is never a timed test.
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-apiserver` (see `--help`).

use anyhow::{Context, Result};
use apiserver::storage::testing::etcd_cluster::EtcdCluster;
use apiserver::{Server, ServerOptions};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
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

/// Starts an in-process kube-apiserver and returns a kube client for it.
async fn start(options: ServerOptions) -> Result<(kube::Client, tokio::sync::oneshot::Sender<()>)> {
    let server = Server::bind(&options).await.context("bind the apiserver")?;
    let kubeconfig = server
        .admin_kubeconfig()
        .context("generated admin kubeconfig")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok((kube::Client::try_from(config)?, stop))
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
    let api = listed.clone();
    let want = args.list_pods;
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
        "{name:<9} LIST {} pods as JSON   p50 {:.1} ms  p99 {:.1} ms",
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
    let (client, stop_embedded) = start(embedded).await?;
    bench_server("embedded", client, &args, &raw_put).await?;
    let _ = stop_embedded.send(());

    let mut on_etcd = ServerOptions::defaults();
    on_etcd.secure_port = 0;
    on_etcd.bind_address = [127, 0, 0, 1].into();
    on_etcd.etcd_servers = cluster.endpoints();
    on_etcd.cert_dir = dir.path().join("pki-etcd");
    let (client, stop_etcd) = start(on_etcd).await?;
    bench_server("etcd", client, &args, &raw_put).await?;
    let _ = stop_etcd.send(());
    Ok(())
}
