//! `kube-scheduler`: parses upstream's flags and runs [`scheduler::run_with_client`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use scheduler::config::KubeSchedulerConfiguration;

/// mimalloc: per-thread free lists make the many small allocations of request
/// handling and scheduling cheaper than glibc's malloc (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Upstream's kube-scheduler flags (the ones this scheduler reads).
#[derive(Debug, Parser)]
#[command(name = "kube-scheduler", version, about = "The Kubernetes scheduler")]
struct Flags {
    /// The path to the KubeSchedulerConfiguration file.
    #[arg(long)]
    config: Option<String>,
    /// Path to a kubeconfig file (overrides clientConnection.kubeconfig).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader before scheduling.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    leader_elect: Option<bool>,
    /// Lease duration.
    #[arg(long)]
    leader_elect_lease_duration: Option<String>,
    /// Renew deadline.
    #[arg(long)]
    leader_elect_renew_deadline: Option<String>,
    /// Retry period.
    #[arg(long)]
    leader_elect_retry_period: Option<String>,
    /// Only `leases`.
    #[arg(long)]
    leader_elect_resource_lock: Option<String>,
    /// The Lease's name.
    #[arg(long)]
    leader_elect_resource_name: Option<String>,
    /// The Lease's namespace.
    #[arg(long)]
    leader_elect_resource_namespace: Option<String>,
    /// The HTTPS port for /healthz, /readyz, /livez and /metrics (0 disables it).
    #[arg(long, default_value_t = 10259)]
    secure_port: u16,
    /// The address of the secure port.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Log verbosity (accepted for compatibility; RUST_LOG sets the filter).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    verbosity: u8,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let flags = Flags::parse();
    let mut config = match &flags.config {
        Some(path) => KubeSchedulerConfiguration::load(path, &scheduler::registered)?,
        None => {
            let mut c = KubeSchedulerConfiguration::default();
            c.set_defaults(&scheduler::registered);
            c
        }
    };
    let le = &mut config.leader_election;
    if let Some(v) = flags.leader_elect {
        le.leader_elect = v;
    }
    for (flag, field) in [
        (&flags.leader_elect_lease_duration, &mut le.lease_duration),
        (&flags.leader_elect_renew_deadline, &mut le.renew_deadline),
        (&flags.leader_elect_retry_period, &mut le.retry_period),
        (&flags.leader_elect_resource_lock, &mut le.resource_lock),
        (&flags.leader_elect_resource_name, &mut le.resource_name),
        (
            &flags.leader_elect_resource_namespace,
            &mut le.resource_namespace,
        ),
    ] {
        if let Some(v) = flag {
            *field = v.clone();
        }
    }
    config.validate()?;
    let kubeconfig = flags.kubeconfig.clone().or_else(|| {
        (!config.client_connection.kubeconfig.is_empty())
            .then(|| PathBuf::from(&config.client_connection.kubeconfig))
    });
    let client_config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = component_base::client::client(client_config)?;
    let serve =
        (flags.secure_port != 0).then(|| SocketAddr::new(flags.bind_address, flags.secure_port));
    // SIGINT or SIGTERM stops it cleanly, releasing the lease
    scheduler::run_with_client(client, config, serve, async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    })
    .await?;
    Ok(())
}
