//! Shared by the benchmarks: a closed-loop load generator with latency percentiles, and
//! an in-process kube-apiserver with a kube-rs client of it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use apiserver::{Server, ServerOptions};
use hdrhistogram::Histogram;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Throughput and latency of one phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figure {
    /// Completed operations per second.
    pub ops_per_sec: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>10.0} op/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
            self.ops_per_sec, self.p50_ms, self.p99_ms
        )
    }
}

/// A histogram of microseconds, up to ten minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `total` operations over `concurrency` workers, timing each.
pub async fn measure<F, Fut>(concurrency: usize, total: usize, op: F) -> Result<Figure>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut hist = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(hist);
                }
                let t = Instant::now();
                op(i).await?;
                hist.record(t.elapsed().as_micros().max(1) as u64)?;
            }
        }));
    }
    let mut all = histogram();
    for worker in workers {
        all.add(worker.await??)?;
    }
    Ok(Figure {
        ops_per_sec: total as f64 / started.elapsed().as_secs_f64(),
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// Starts an in-process kube-apiserver with `options`; returns a client of it (as the
/// generated admin) and the sender that stops it.
pub async fn start_apiserver(
    options: ServerOptions,
) -> Result<(kube::Client, tokio::sync::oneshot::Sender<()>)> {
    let server = Server::bind(&options).await.context("bind the apiserver")?;
    let kubeconfig = server
        .admin_kubeconfig()
        .context("generated admin kubeconfig")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Ok((client_of(&kubeconfig).await?, stop))
}

/// Options for an in-process apiserver on the embedded store in `dir`, on a free
/// loopback port, with the ServiceAccount admission plugin off (no controller manager
/// runs beside the benchmarks to create default service accounts).
pub fn embedded_options(dir: &std::path::Path) -> ServerOptions {
    let mut options = ServerOptions::defaults();
    options.secure_port = 0;
    options.bind_address = [127, 0, 0, 1].into();
    options.storage_url = Some(format!("sqlite://{}", dir.join("store.db").display()));
    options.cert_dir = dir.join("pki");
    options.disable_admission_plugins = vec!["ServiceAccount".into()];
    options
}

/// A kube-rs client from a kubeconfig's text.
pub async fn client_of(kubeconfig: &str) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(component_base::client::client(config)?)
}
