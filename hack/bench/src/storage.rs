//! Storage benchmark: create / get / list / watch-delivery throughput and p50/p99
//! latency for every backend at several concurrencies, and in the same run raw etcd
//! put and range through etcd-client on the same etcd, same value size and concurrency.
//! Each figure is printed with its ratio to the raw etcd figure.
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-storage` (see `--help`).
//! This prints figures; it is never a timed test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apiserver::storage::embedded::{Durability, EmbeddedConfig, EmbeddedStore};
use apiserver::storage::etcd::{EtcdConfig, EtcdStore};
use apiserver::storage::memory::MemoryStore;
use apiserver::storage::testing::etcd_cluster::EtcdCluster;
use apiserver::storage::{ListOptions, Storage, WatchEvent, WatchOptions};
use bytes::Bytes;
use clap::Parser;
use etcd_client::GetOptions;
use futures::StreamExt;
use rkube_bench::{Figure, histogram, measure};

#[derive(Parser, Debug)]
#[command(about = "Storage backends against raw etcd, side by side")]
struct Args {
    /// Writes per create phase (per concurrency level).
    #[arg(long, default_value_t = 3000)]
    creates: usize,
    /// Reads per get phase.
    #[arg(long, default_value_t = 10000)]
    gets: usize,
    /// Objects in the listed collection.
    #[arg(long, default_value_t = 10000)]
    list_objects: usize,
    /// Value size in bytes (a pod is about 2 KiB).
    #[arg(long, default_value_t = 2048)]
    value_size: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Backends to measure besides raw etcd.
    #[arg(long, value_delimiter = ',', default_value = "embedded,etcd,memory")]
    backends: Vec<String>,
    /// Embedded store fsync policy: `full` (every commit, the default) or `normal`.
    #[arg(long, default_value = "full")]
    embedded_durability: String,
}

/// A pod-sized value whose first 20 bytes carry the write's start time (µs since `epoch`),
/// so a watcher can measure delivery latency.
fn value(size: usize, epoch: Instant) -> Bytes {
    let mut v = format!("{:020}", epoch.elapsed().as_micros()).into_bytes();
    v.resize(size.max(20), b'x');
    Bytes::from(v)
}

fn written_at(value: &[u8]) -> Option<u128> {
    std::str::from_utf8(value.get(..20)?).ok()?.parse().ok()
}

/// Raw etcd figures at one concurrency: put, single-key get, full-collection range.
struct RawEtcd {
    put: Figure,
    /// A create as upstream's etcd3 store issues it: a transaction comparing mod revision 0.
    txn: Figure,
    get: Figure,
    range: Figure,
}

async fn bench_raw_etcd(
    client: &etcd_client::Client,
    args: &Args,
    c: usize,
    epoch: Instant,
) -> Result<RawEtcd> {
    let run = format!("/raw-etcd/c{c}/");
    let size = args.value_size;
    let put = {
        let (client, run) = (client.clone(), run.clone());
        measure(c, args.creates, move |i| {
            let (mut kv, key) = (client.kv_client(), format!("{run}put/{i:08}"));
            async move {
                kv.put(key, value(size, epoch).to_vec(), None).await?;
                Ok(())
            }
        })
        .await?
    };
    let txn = {
        let (client, run) = (client.clone(), run.clone());
        measure(c, args.creates, move |i| {
            let (mut kv, key) = (client.kv_client(), format!("{run}txn/{i:08}"));
            async move {
                let txn = etcd_client::Txn::new()
                    .when([etcd_client::Compare::mod_revision(
                        key.clone(),
                        etcd_client::CompareOp::Equal,
                        0,
                    )])
                    .and_then([etcd_client::TxnOp::put(
                        key,
                        value(size, epoch).to_vec(),
                        None,
                    )]);
                anyhow::ensure!(kv.txn(txn).await?.succeeded(), "raw txn create failed");
                Ok(())
            }
        })
        .await?
    };
    let get = {
        let (client, run, n) = (client.clone(), run.clone(), args.creates);
        measure(c, args.gets, move |i| {
            let (mut kv, key) = (
                client.kv_client(),
                format!("{run}put/{:08}", (i * 7919) % n),
            );
            async move {
                kv.get(key, None).await?;
                Ok(())
            }
        })
        .await?
    };
    let range = {
        let client = client.clone();
        measure(c, c.max(8), move |_| {
            let mut kv = client
                .kv_client()
                .max_decoding_message_size(i32::MAX as usize);
            async move {
                let r = kv
                    .get("/raw-etcd/list/", Some(GetOptions::new().with_prefix()))
                    .await?;
                anyhow::ensure!(!r.kvs().is_empty(), "raw range returned nothing");
                Ok(())
            }
        })
        .await?
    };
    Ok(RawEtcd {
        put,
        txn,
        get,
        range,
    })
}

struct BackendFigures {
    create: Figure,
    get: Figure,
    list: Figure,
    watch: Figure,
}

async fn bench_backend(
    store: Arc<dyn Storage>,
    args: &Args,
    c: usize,
    epoch: Instant,
) -> Result<BackendFigures> {
    let run = format!("/registry/pods/bench-c{c}/");
    let size = args.value_size;

    let create = {
        let (store, run) = (store.clone(), run.clone());
        measure(c, args.creates, move |i| {
            let (store, key) = (store.clone(), format!("{run}{i:08}"));
            async move {
                store.create(&key, value(size, epoch)).await?;
                Ok(())
            }
        })
        .await?
    };
    let get = {
        let (store, run, n) = (store.clone(), run.clone(), args.creates);
        measure(c, args.gets, move |i| {
            let (store, key) = (store.clone(), format!("{run}{:08}", (i * 7919) % n));
            async move {
                store.get(&key, None).await?;
                Ok(())
            }
        })
        .await?
    };
    let list = {
        let (store, want) = (store.clone(), args.list_objects);
        measure(c, c.max(8), move |_| {
            let store = store.clone();
            async move {
                let r = store
                    .list("/registry/pods/bench-list/", &ListOptions::default())
                    .await?;
                anyhow::ensure!(r.items.len() == want, "listed {} of {want}", r.items.len());
                Ok(())
            }
        })
        .await?
    };
    // Watch delivery, measured apart from the create figures: a watcher sees a second
    // round of creates; its figure is events delivered per
    // second and write-start-to-delivery latency.
    let watched = format!("{run}watched/");
    let start_rev = store.current_revision().await?;
    let mut watch = store
        .watch(&watched, start_rev, WatchOptions::default())
        .await?;
    let expected = args.creates;
    let watcher = tokio::spawn(async move {
        let mut hist = histogram();
        let mut first: Option<Instant> = None;
        let mut seen = 0;
        while seen < expected {
            match tokio::time::timeout(Duration::from_secs(60), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Added(kv)))) => {
                    first.get_or_insert_with(Instant::now);
                    if let Some(t) = written_at(&kv.value) {
                        let now = epoch.elapsed().as_micros();
                        hist.record(now.saturating_sub(t).max(1) as u64)?;
                    }
                    seen += 1;
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => anyhow::bail!("watch failed: {e}"),
                Ok(None) | Err(_) => anyhow::bail!("watch stalled after {seen} events"),
            }
        }
        let elapsed = first.map_or(1.0, |f| f.elapsed().as_secs_f64().max(1e-6));
        Ok(Figure {
            ops_per_sec: seen as f64 / elapsed,
            p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        })
    });

    {
        let (store, watched) = (store.clone(), watched.clone());
        measure(c, args.creates, move |i| {
            let (store, key) = (store.clone(), format!("{watched}{i:08}"));
            async move {
                store.create(&key, value(size, epoch)).await?;
                Ok(())
            }
        })
        .await?;
    }
    let watch = watcher.await??;
    Ok(BackendFigures {
        create,
        get,
        list,
        watch,
    })
}

/// Fills the listed collection: `n` pod-sized objects.
async fn preload(store: Arc<dyn Storage>, n: usize, size: usize, epoch: Instant) -> Result<()> {
    measure(64, n, move |i| {
        let store = store.clone();
        async move {
            store
                .create(
                    &format!("/registry/pods/bench-list/{i:08}"),
                    value(size, epoch),
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

async fn preload_raw(
    client: &etcd_client::Client,
    n: usize,
    size: usize,
    epoch: Instant,
) -> Result<()> {
    let client = client.clone();
    measure(64, n, move |i| {
        let mut kv = client.kv_client();
        async move {
            kv.put(
                format!("/raw-etcd/list/{i:08}"),
                value(size, epoch).to_vec(),
                None,
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let epoch = Instant::now();
    println!(
        "# storage benchmark: {} creates, {} gets, list of {} objects, {} B values, concurrency {:?}",
        args.creates, args.gets, args.list_objects, args.value_size, args.concurrency
    );
    println!(
        "# cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // One real etcd (fsync on, as in production) serves both raw etcd and the etcd backend.
    let cluster = EtcdCluster::start(1)
        .await
        .context("starting etcd (run hack/install-deps.sh)")?;
    let raw_client = etcd_client::Client::connect(cluster.endpoints(), None).await?;
    let dir = tempfile::tempdir()?;

    let mut stores: Vec<(String, Arc<dyn Storage>)> = Vec::new();
    for backend in &args.backends {
        let store: Arc<dyn Storage> = match backend.as_str() {
            "embedded" => {
                let durability = match args.embedded_durability.as_str() {
                    "full" => Durability::Full,
                    "normal" => Durability::Normal,
                    other => anyhow::bail!("unknown durability {other}"),
                };
                let config = EmbeddedConfig {
                    durability,
                    ..Default::default()
                };
                Arc::new(EmbeddedStore::open(dir.path().join("bench.db"), config)?)
            }
            "memory" => Arc::new(MemoryStore::new()),
            "etcd" => Arc::new(
                EtcdStore::connect(EtcdConfig {
                    endpoints: cluster.endpoints(),
                    ..Default::default()
                })
                .await?,
            ),
            other => anyhow::bail!("unknown backend {other}"),
        };
        stores.push((backend.clone(), store));
    }

    preload_raw(&raw_client, args.list_objects, args.value_size, epoch).await?;
    for (_, store) in &stores {
        preload(store.clone(), args.list_objects, args.value_size, epoch).await?;
    }

    for &c in &args.concurrency {
        println!("\n## concurrency {c}");
        let raw = bench_raw_etcd(&raw_client, &args, c, epoch).await?;
        println!("{:<10} {:<6} {}", "raw-etcd", "put", raw.put);
        println!(
            "{:<10} {:<6} {}   {} of raw put",
            "raw-etcd",
            "txn",
            raw.txn,
            ratio(raw.txn.ops_per_sec, raw.put.ops_per_sec)
        );
        println!("{:<10} {:<6} {}", "raw-etcd", "get", raw.get);
        println!(
            "{:<10} {:<6} {}   ({} objects per range)",
            "raw-etcd", "range", raw.range, args.list_objects
        );
        for (name, store) in &stores {
            let f = bench_backend(store.clone(), &args, c, epoch).await?;
            println!(
                "{name:<10} {:<6} {}   {} of raw put",
                "create",
                f.create,
                ratio(f.create.ops_per_sec, raw.put.ops_per_sec)
            );
            println!(
                "{name:<10} {:<6} {}   {} of raw get",
                "get",
                f.get,
                ratio(f.get.ops_per_sec, raw.get.ops_per_sec)
            );
            println!(
                "{name:<10} {:<6} {}   {} of raw range",
                "list",
                f.list,
                ratio(f.list.ops_per_sec, raw.range.ops_per_sec)
            );
            println!(
                "{name:<10} {:<6} {}   (events delivered; latency from write start)",
                "watch", f.watch
            );
        }
    }
    Ok(())
}
