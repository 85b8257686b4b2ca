//! `kube-controller-manager`: parses upstream's flags and runs [`controllers::run`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// mimalloc, as the other binaries (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Upstream's kube-controller-manager flags (the ones this manager reads).
#[derive(Debug, Parser)]
#[command(
    name = "kube-controller-manager",
    version,
    about = "The Kubernetes controller manager"
)]
struct Flags {
    /// Path to a kubeconfig file with the manager's credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Controllers to enable: `*` for the default ones, `foo` to enable, `-foo` to
    /// disable.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Elect a leader before running the controllers.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    leader_elect: bool,
    /// Lease duration.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// Renew deadline.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: Duration,
    /// Retry period.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: Duration,
    /// Only `leases`.
    #[arg(long, default_value = "leases")]
    leader_elect_resource_lock: String,
    /// The Lease's name.
    #[arg(long, default_value = "kube-controller-manager")]
    leader_elect_resource_name: String,
    /// The Lease's namespace.
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
    /// ReplicaSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    /// ReplicationControllers synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_rc_syncs: usize,
    /// Deployments synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// StatefulSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_statefulset_syncs: usize,
    /// DaemonSets synced at once.
    #[arg(long, default_value_t = 2)]
    concurrent_daemonset_syncs: usize,
    /// Jobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_job_syncs: usize,
    /// CronJobs synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_cron_job_syncs: usize,
    /// Services whose Endpoints are synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    /// Services whose Endpoints are mirrored into EndpointSlices at once.
    #[arg(long, default_value_t = 5)]
    mirroring_concurrent_service_endpoint_syncs: usize,
    /// Garbage collector workers (for each of its two queues).
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: usize,
    /// Namespaces deleted at once.
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: usize,
    /// Service accounts and token Secrets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_serviceaccount_token_syncs: usize,
    /// Finished Jobs whose time to live is checked at once.
    #[arg(long, default_value_t = 5)]
    concurrent_ttl_after_finished_syncs: usize,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may go without a heartbeat before it is unhealthy.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// The same for a node that never reported.
    #[arg(long, default_value = "1m0s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// How often each horizontal pod autoscaler is looked at.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_sync_period: Duration,
    /// How far the metrics' ratio to their targets may stray before scaling.
    #[arg(long, default_value_t = 0.1)]
    horizontal_pod_autoscaler_tolerance: f64,
    /// How far back a higher recommendation holds a scale-down.
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// After a pod starts, how long its readiness changes count as initial.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    /// After a pod starts, how long its CPU samples are skipped unless taken while ready.
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// Horizontal pod autoscalers synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_horizontal_pod_autoscaler_syncs: usize,
    /// Terminated pods allowed before the pod garbage collector deletes the oldest
    /// (0 or less disables it).
    #[arg(long, default_value_t = 12500, allow_negative_numbers = true)]
    terminated_pod_gc_threshold: i32,
    /// How often every ResourceQuota's usage is recalculated.
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    resource_quota_sync_period: Duration,
    /// ResourceQuotas synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_resource_quota_syncs: usize,
    /// How often the PersistentVolume binder re-examines every claim and volume.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pvclaimbinder_sync_period: Duration,
    /// Give nodes pod CIDRs out of `--cluster-cidr` (the node IPAM controller).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    allocate_node_cidrs: bool,
    /// How pod CIDRs are allocated: only `RangeAllocator`.
    #[arg(long, default_value = "RangeAllocator")]
    cidr_allocator_type: String,
    /// The pods' CIDR range(s), comma-separated (one per IP family).
    #[arg(long, default_value = "")]
    cluster_cidr: String,
    /// The services' CIDR range(s), kept out of nodes' pod CIDRs.
    #[arg(long, default_value = "")]
    service_cluster_ip_range: String,
    /// Mask size of a node's pod CIDR (single-stack clusters; default 24 or 64).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    node_cidr_mask_size: i32,
    /// Mask size of a node's IPv4 pod CIDR (default 24).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    node_cidr_mask_size_ipv4: i32,
    /// Mask size of a node's IPv6 pod CIDR (default 64).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    node_cidr_mask_size_ipv6: i32,
    /// The CA bundle published as `kube-root-ca.crt` in every namespace.
    #[arg(long)]
    root_ca_file: Option<PathBuf>,
    /// How long an auto-generated legacy service-account token may go unused before
    /// it is marked invalid, and then deleted.
    #[arg(long, default_value = "8760h0m0s", value_parser = parse_duration)]
    legacy_service_account_token_clean_up_period: Duration,
    /// The PEM RSA private key that signs legacy service-account tokens (without it
    /// the service-account token controller does not run).
    #[arg(long)]
    service_account_private_key_file: Option<PathBuf>,
    /// The PEM CA certificate that signs certificates for the built-in signers.
    #[arg(long)]
    cluster_signing_cert_file: Option<PathBuf>,
    /// The CA's PEM private key.
    #[arg(long)]
    cluster_signing_key_file: Option<PathBuf>,
    /// The longest lifetime of signed certificates.
    #[arg(long, default_value = "8760h0m0s", value_parser = parse_duration)]
    cluster_signing_duration: Duration,
    /// The CA certificate for `kubernetes.io/kubelet-serving` (instead of the cluster one).
    #[arg(long)]
    cluster_signing_kubelet_serving_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long)]
    cluster_signing_kubelet_serving_key_file: Option<PathBuf>,
    /// The CA certificate for `kubernetes.io/kube-apiserver-client-kubelet`.
    #[arg(long)]
    cluster_signing_kubelet_client_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long)]
    cluster_signing_kubelet_client_key_file: Option<PathBuf>,
    /// The CA certificate for `kubernetes.io/kube-apiserver-client`.
    #[arg(long)]
    cluster_signing_kube_apiserver_client_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long)]
    cluster_signing_kube_apiserver_client_key_file: Option<PathBuf>,
    /// The CA certificate for `kubernetes.io/legacy-unknown`.
    #[arg(long)]
    cluster_signing_legacy_unknown_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long)]
    cluster_signing_legacy_unknown_key_file: Option<PathBuf>,
    /// Where the controllers' service-account tokens are kept.
    #[arg(long, default_value = "/var/lib/kube-controller-manager/tokens")]
    controller_token_dir: PathBuf,
    /// Accepted for compatibility: controllers always act as their service accounts.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    use_service_account_credentials: Option<bool>,
    /// The HTTPS port for /healthz, /readyz and /livez (0 disables it).
    #[arg(long, default_value_t = 10257)]
    secure_port: u16,
    /// The address of the secure port.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Log verbosity (accepted for compatibility; RUST_LOG sets the filter).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    verbosity: u8,
}

/// A Go duration (`15s`, `1m0s`, `500ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    component_base::parse_duration(text).ok_or_else(|| format!("invalid duration {text:?}"))
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
    if flags.leader_elect_resource_lock != "leases" {
        anyhow::bail!(
            "leader-elect-resource-lock {:?} is not supported: only \"leases\"",
            flags.leader_elect_resource_lock
        );
    }
    // refuse unknown controllers before connecting anywhere
    let enabled = controllers::enabled(&flags.controllers)?;
    // as upstream, bad node IPAM flags stop the manager (when that controller runs)
    if flags.allocate_node_cidrs
        && enabled
            .iter()
            .any(|d| d.name == controllers::node_ipam::NAME)
    {
        let ipam = controllers::Settings {
            allocate_node_cidrs: true,
            cidr_allocator_type: flags.cidr_allocator_type.clone(),
            cluster_cidr: flags.cluster_cidr.clone(),
            service_cluster_ip_range: flags.service_cluster_ip_range.clone(),
            node_cidr_mask_size: flags.node_cidr_mask_size,
            node_cidr_mask_size_ipv4: flags.node_cidr_mask_size_ipv4,
            node_cidr_mask_size_ipv6: flags.node_cidr_mask_size_ipv6,
            ..controllers::Settings::default()
        };
        controllers::node_ipam::cidr_sets(&ipam)
            .map_err(|e| anyhow::anyhow!("node-ipam-controller: {e}"))?;
    }
    let client_config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let root_ca_pem = match &flags.root_ca_file {
        Some(path) => std::fs::read_to_string(path)?,
        // upstream publishes the client's CA when no root CA file is given
        None => client_config
            .root_cert
            .iter()
            .flatten()
            .map(|der| certificate_pem(der))
            .collect(),
    };
    let mut options = controllers::Options::new(
        client_config,
        flags.controller_token_dir.clone(),
        root_ca_pem,
    );
    options.controllers = flags.controllers.clone();
    options.settings.concurrent_replicaset_syncs = flags.concurrent_replicaset_syncs;
    options.settings.concurrent_rc_syncs = flags.concurrent_rc_syncs;
    options.settings.concurrent_deployment_syncs = flags.concurrent_deployment_syncs;
    options.settings.concurrent_statefulset_syncs = flags.concurrent_statefulset_syncs;
    options.settings.concurrent_daemonset_syncs = flags.concurrent_daemonset_syncs;
    options.settings.concurrent_job_syncs = flags.concurrent_job_syncs;
    options.settings.concurrent_cron_job_syncs = flags.concurrent_cron_job_syncs;
    options.settings.concurrent_endpoint_syncs = flags.concurrent_endpoint_syncs;
    options.settings.concurrent_service_endpoint_syncs = flags.concurrent_service_endpoint_syncs;
    options.settings.mirroring_concurrent_service_endpoint_syncs =
        flags.mirroring_concurrent_service_endpoint_syncs;
    options.settings.concurrent_gc_syncs = flags.concurrent_gc_syncs;
    options.settings.concurrent_namespace_syncs = flags.concurrent_namespace_syncs;
    options.settings.concurrent_serviceaccount_token_syncs =
        flags.concurrent_serviceaccount_token_syncs;
    options.settings.concurrent_ttl_after_finished_syncs =
        flags.concurrent_ttl_after_finished_syncs;
    options.settings.node_monitor_period = flags.node_monitor_period;
    options.settings.node_monitor_grace_period = flags.node_monitor_grace_period;
    options.settings.node_startup_grace_period = flags.node_startup_grace_period;
    options.settings.terminated_pod_gc_threshold = flags.terminated_pod_gc_threshold;
    options.settings.resource_quota_sync_period = flags.resource_quota_sync_period;
    options.settings.concurrent_resource_quota_syncs = flags.concurrent_resource_quota_syncs;
    options
        .settings
        .legacy_service_account_token_clean_up_period =
        flags.legacy_service_account_token_clean_up_period;
    if let Some(path) = &flags.service_account_private_key_file {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("error reading key for service account token controller: {e}")
        })?;
        // as upstream, a key that is not one stops the manager rather than the controller
        controllers::serviceaccount_tokens::TokenSigner::new(&pem).map_err(|e| {
            anyhow::anyhow!("error reading key for service account token controller: {e}")
        })?;
        options.settings.service_account_private_key_pem = pem;
    }
    options.settings.horizontal_pod_autoscaler_sync_period =
        flags.horizontal_pod_autoscaler_sync_period;
    options.settings.horizontal_pod_autoscaler_tolerance =
        flags.horizontal_pod_autoscaler_tolerance;
    options
        .settings
        .horizontal_pod_autoscaler_downscale_stabilization =
        flags.horizontal_pod_autoscaler_downscale_stabilization;
    options
        .settings
        .horizontal_pod_autoscaler_initial_readiness_delay =
        flags.horizontal_pod_autoscaler_initial_readiness_delay;
    options
        .settings
        .horizontal_pod_autoscaler_cpu_initialization_period =
        flags.horizontal_pod_autoscaler_cpu_initialization_period;
    options.settings.concurrent_horizontal_pod_autoscaler_syncs =
        flags.concurrent_horizontal_pod_autoscaler_syncs;
    options.settings.pvclaimbinder_sync_period = flags.pvclaimbinder_sync_period;
    options.settings.allocate_node_cidrs = flags.allocate_node_cidrs;
    options.settings.cidr_allocator_type = flags.cidr_allocator_type.clone();
    options.settings.cluster_cidr = flags.cluster_cidr.clone();
    options.settings.service_cluster_ip_range = flags.service_cluster_ip_range.clone();
    options.settings.node_cidr_mask_size = flags.node_cidr_mask_size;
    options.settings.node_cidr_mask_size_ipv4 = flags.node_cidr_mask_size_ipv4;
    options.settings.node_cidr_mask_size_ipv6 = flags.node_cidr_mask_size_ipv6;
    let pair = |cert: &Option<PathBuf>, key: &Option<PathBuf>| {
        controllers::certificates::signer::SigningFiles {
            cert_file: cert.clone(),
            key_file: key.clone(),
        }
    };
    options.settings.csr_signing = controllers::certificates::signer::SigningConfig {
        cluster: pair(
            &flags.cluster_signing_cert_file,
            &flags.cluster_signing_key_file,
        ),
        kubelet_serving: pair(
            &flags.cluster_signing_kubelet_serving_cert_file,
            &flags.cluster_signing_kubelet_serving_key_file,
        ),
        kubelet_client: pair(
            &flags.cluster_signing_kubelet_client_cert_file,
            &flags.cluster_signing_kubelet_client_key_file,
        ),
        kube_apiserver_client: pair(
            &flags.cluster_signing_kube_apiserver_client_cert_file,
            &flags.cluster_signing_kube_apiserver_client_key_file,
        ),
        legacy_unknown: pair(
            &flags.cluster_signing_legacy_unknown_cert_file,
            &flags.cluster_signing_legacy_unknown_key_file,
        ),
        duration: flags.cluster_signing_duration,
    };
    options.leader_election = flags.leader_elect.then(|| {
        let mut config = controllers::lease_config(controllers::identity());
        config.name = flags.leader_elect_resource_name.clone();
        config.namespace = flags.leader_elect_resource_namespace.clone();
        config.lease_duration = flags.leader_elect_lease_duration;
        config.renew_deadline = flags.leader_elect_renew_deadline;
        config.retry_period = flags.leader_elect_retry_period;
        controllers::LeaderElection { config }
    });
    options.serve =
        (flags.secure_port != 0).then(|| SocketAddr::new(flags.bind_address, flags.secure_port));
    // SIGINT or SIGTERM stops it cleanly, releasing the lease
    controllers::run(options, async {
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

/// A DER certificate as a PEM block (the kubeconfig's CA, published as the root CA).
fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
