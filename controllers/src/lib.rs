//! kube-controller-manager: one module per controller, each keeping some part of the
//! cluster where its objects declare it should be.
//!
//! The shape is upstream's: shared informers ([`informers`]) cache every resource a
//! controller reads, handlers turn changes into keys on the controller's rate-limited
//! [`workqueue`], and a few workers per controller run its idempotent `sync` of one key.
//! [`run`] is the whole component: under one Lease (`kube-controller-manager` in
//! kube-system) it starts every controller that `--controllers` enables.
//!
//! As upstream with `--use-service-account-credentials`, informers read with the
//! manager's own identity (`system:kube-controller-manager` may list and watch
//! everything) and each controller writes as its own service account in kube-system,
//! bound by the bootstrap policy to its `system:controller:<name>` role
//! ([`credentials`]).

pub mod bootstrap;
pub mod certificates;
pub mod clusterrole_aggregation;
pub mod controller_utils;
pub mod credentials;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod garbage_collector;
pub mod informers;
pub mod job;
pub mod legacy_token_cleaner;
pub mod metrics;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod persistent_volume;
pub mod pod_gc;
pub mod podautoscaler;
pub mod replicaset;
pub mod resource_quota;
pub mod root_ca_publisher;
pub mod service_accounts;
pub mod service_cidrs;
pub mod serviceaccount_tokens;
pub mod statefulset;
pub mod taint_eviction;
pub mod ttl_after_finished;
pub mod volume_protection;
pub mod workqueue;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use component_base::events::Recorder;
use futures::future::BoxFuture;

/// Errors from running the controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A credential file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--controllers` names a controller that does not exist.
    #[error("{0:?} is not in the list of known controllers")]
    UnknownController(String),
    /// The secure port could not be served.
    #[error(transparent)]
    Serving(#[from] component_base::serving::ServingError),
    /// Another replica took over.
    #[error(transparent)]
    Lost(#[from] component_base::leader_election::Lost),
}

/// Settings the controllers read (upstream's per-controller flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--concurrent-replicaset-syncs`.
    pub concurrent_replicaset_syncs: usize,
    /// `--concurrent-rc-syncs`.
    pub concurrent_rc_syncs: usize,
    /// `--concurrent-deployment-syncs`.
    pub concurrent_deployment_syncs: usize,
    /// `--concurrent-statefulset-syncs`.
    pub concurrent_statefulset_syncs: usize,
    /// `--concurrent-daemonset-syncs`.
    pub concurrent_daemonset_syncs: usize,
    /// `--concurrent-job-syncs`.
    pub concurrent_job_syncs: usize,
    /// `--concurrent-cron-job-syncs`.
    pub concurrent_cron_job_syncs: usize,
    /// `--concurrent-endpoint-syncs`.
    pub concurrent_endpoint_syncs: usize,
    /// `--concurrent-service-endpoint-syncs`.
    pub concurrent_service_endpoint_syncs: usize,
    /// `--mirroring-concurrent-service-endpoint-syncs`.
    pub mirroring_concurrent_service_endpoint_syncs: usize,
    /// `--concurrent-gc-syncs`.
    pub concurrent_gc_syncs: usize,
    /// `--concurrent-namespace-syncs`.
    pub concurrent_namespace_syncs: usize,
    /// `--concurrent-serviceaccount-token-syncs`.
    pub concurrent_serviceaccount_token_syncs: usize,
    /// `--concurrent-ttl-after-finished-syncs`.
    pub concurrent_ttl_after_finished_syncs: usize,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go without a heartbeat before
    /// it is considered unhealthy.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never reported.
    pub node_startup_grace_period: Duration,
    /// The cluster CA bundle (PEM) the root CA publisher publishes (`--root-ca-file`).
    pub root_ca_pem: String,
    /// The CSR signing controller's CA files and `--cluster-signing-duration`
    /// (`--cluster-signing-{cert,key}-file` and the per-signer pairs); without files
    /// the controller does not run.
    pub csr_signing: certificates::signer::SigningConfig,
    /// `--horizontal-pod-autoscaler-sync-period`: how often each autoscaler is looked at.
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`: how far the metrics' ratio to their
    /// targets may stray from 1 before the autoscaler scales.
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`: how far back the
    /// autoscaler looks for a higher recommendation before scaling down.
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`: after a pod starts, how
    /// long its readiness changes count as its initial readiness.
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`: after a pod starts, how
    /// long its CPU samples are skipped unless taken while it was ready.
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// `--concurrent-horizontal-pod-autoscaler-syncs`.
    pub concurrent_horizontal_pod_autoscaler_syncs: usize,
    /// The RSA private key (PEM) of `--service-account-private-key-file`, which signs
    /// the legacy tokens the service-account token controller puts in Secrets (empty:
    /// that controller does not run).
    pub service_account_private_key_pem: String,
    /// `--legacy-service-account-token-clean-up-period`: how long an auto-generated
    /// legacy token may go unused before it is marked invalid, and then deleted.
    pub legacy_service_account_token_clean_up_period: Duration,
    /// `--terminated-pod-gc-threshold`: how many terminated pods may exist before the
    /// pod garbage collector deletes the oldest (0 or less: never).
    pub terminated_pod_gc_threshold: i32,
    /// `--allocate-node-cidrs`: whether the node IPAM controller gives nodes pod CIDRs
    /// (off: it does not run).
    pub allocate_node_cidrs: bool,
    /// `--cidr-allocator-type`: only `RangeAllocator` (the default) is built.
    pub cidr_allocator_type: String,
    /// `--cluster-cidr`: the pod CIDRs, comma-separated (one per IP family).
    pub cluster_cidr: String,
    /// `--service-cluster-ip-range`: the service CIDRs (comma-separated), kept out of
    /// the nodes' pod CIDRs.
    pub service_cluster_ip_range: String,
    /// `--node-cidr-mask-size` (0: unset; single-stack only).
    pub node_cidr_mask_size: i32,
    /// `--node-cidr-mask-size-ipv4` (0: unset, meaning 24).
    pub node_cidr_mask_size_ipv4: i32,
    /// `--node-cidr-mask-size-ipv6` (0: unset, meaning 64).
    pub node_cidr_mask_size_ipv6: i32,
    /// `--resource-quota-sync-period`: how often every quota's usage is recalculated.
    pub resource_quota_sync_period: Duration,
    /// `--concurrent-resource-quota-syncs`.
    pub concurrent_resource_quota_syncs: usize,
    /// `--pvclaimbinder-sync-period`: how often the PersistentVolume binder looks at
    /// every claim and volume again.
    pub pvclaimbinder_sync_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_deployment_syncs: 5,
            concurrent_statefulset_syncs: 5,
            concurrent_daemonset_syncs: 2,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_endpoint_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            mirroring_concurrent_service_endpoint_syncs: 5,
            concurrent_gc_syncs: 20,
            concurrent_namespace_syncs: 10,
            concurrent_serviceaccount_token_syncs: 5,
            concurrent_ttl_after_finished_syncs: 5,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            root_ca_pem: String::new(),
            csr_signing: certificates::signer::SigningConfig::default(),
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            horizontal_pod_autoscaler_tolerance: 0.1,
            horizontal_pod_autoscaler_downscale_stabilization: Duration::from_secs(300),
            horizontal_pod_autoscaler_initial_readiness_delay: Duration::from_secs(30),
            horizontal_pod_autoscaler_cpu_initialization_period: Duration::from_secs(300),
            concurrent_horizontal_pod_autoscaler_syncs: 5,
            service_account_private_key_pem: String::new(),
            legacy_service_account_token_clean_up_period: Duration::from_secs(365 * 24 * 3600),
            terminated_pod_gc_threshold: 12500,
            allocate_node_cidrs: false,
            cidr_allocator_type: "RangeAllocator".to_owned(),
            cluster_cidr: String::new(),
            service_cluster_ip_range: String::new(),
            node_cidr_mask_size: 0,
            node_cidr_mask_size_ipv4: 0,
            node_cidr_mask_size_ipv6: 0,
            resource_quota_sync_period: Duration::from_secs(300),
            concurrent_resource_quota_syncs: 5,
            pvclaimbinder_sync_period: Duration::from_secs(15),
        }
    }
}

/// What one controller is given.
#[derive(Clone)]
pub struct Context {
    /// The controller's name (its events' component).
    pub name: &'static str,
    /// The shared informers; a controller asks for the ones it reads before it returns
    /// its future, so they start together.
    pub informers: informers::Factory,
    /// The manager's own client (reads).
    pub reader: kube::Client,
    /// The manager's identity again, on a client with a connection per request, for
    /// watches of every resource the cluster serves (the garbage collector's monitors).
    /// On the HTTP/2 `reader` they would share one connection, and a server allows 250
    /// streams on one (a cluster with a couple of hundred CRDs would pass that, and
    /// every later request of the manager would wait behind them). client-go opens
    /// another connection at the limit; hyper's client does not.
    pub monitor_reader: kube::Client,
    /// The controller's client, as its service account (writes).
    pub client: kube::Client,
    /// Events, written as the controller's service account.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Arc<Settings>,
}

/// Starts a controller: registers its informer handlers, then returns the future that
/// runs it.
pub type Start = fn(Context) -> BoxFuture<'static, ()>;

/// One controller the manager knows (upstream's `ControllerDescriptor`).
pub struct Descriptor {
    /// The canonical name (`replicaset-controller`).
    pub name: &'static str,
    /// The older names `--controllers` also accepts (`replicaset`).
    pub aliases: &'static [&'static str],
    /// The service account it acts as in kube-system.
    pub service_account: &'static str,
    /// Off unless named in `--controllers`.
    pub disabled_by_default: bool,
    /// How it starts.
    pub start: Start,
}

/// Every controller built, in upstream's order.
pub fn descriptors() -> Vec<Descriptor> {
    vec![
        Descriptor {
            // upstream starts it before the others, with the manager's own credentials:
            // it writes with `cx.reader`, never as the account named here
            name: serviceaccount_tokens::NAME,
            aliases: &["serviceaccount-token"],
            service_account: service_accounts::NAME,
            disabled_by_default: false,
            start: serviceaccount_tokens::start,
        },
        Descriptor {
            name: "serviceaccount-controller",
            aliases: &["serviceaccount"],
            service_account: service_accounts::NAME,
            disabled_by_default: false,
            start: |cx| Box::pin(service_accounts::run(cx.reader, cx.client)),
        },
        Descriptor {
            name: "root-ca-certificate-publisher-controller",
            aliases: &["root-ca-cert-publisher"],
            service_account: root_ca_publisher::NAME,
            disabled_by_default: false,
            start: |cx| {
                Box::pin(root_ca_publisher::run(
                    cx.reader,
                    cx.client,
                    cx.settings.root_ca_pem.clone(),
                ))
            },
        },
        Descriptor {
            // upstream registers it just before node-lifecycle
            name: node_ipam::NAME,
            aliases: &["nodeipam"],
            service_account: node_ipam::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: node_ipam::start,
        },
        Descriptor {
            name: node_lifecycle::NAME,
            aliases: &["nodelifecycle"],
            service_account: node_lifecycle::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: node_lifecycle::start,
        },
        Descriptor {
            // on by default: upstream's SeparateTaintEvictionController gate is on
            name: taint_eviction::NAME,
            aliases: &[],
            service_account: taint_eviction::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: taint_eviction::start,
        },
        Descriptor {
            name: "replicaset-controller",
            aliases: &["replicaset"],
            service_account: "replicaset-controller",
            disabled_by_default: false,
            start: replicaset::start_replicaset,
        },
        Descriptor {
            name: "replicationcontroller-controller",
            aliases: &["replicationcontroller"],
            service_account: "replication-controller",
            disabled_by_default: false,
            start: replicaset::start_replication_controller,
        },
        Descriptor {
            name: statefulset::NAME,
            aliases: &["statefulset"],
            service_account: statefulset::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: statefulset::start,
        },
        Descriptor {
            name: pod_gc::NAME,
            aliases: &["podgc"],
            service_account: pod_gc::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: pod_gc::start,
        },
        Descriptor {
            name: endpoints::NAME,
            aliases: &["endpoint"],
            service_account: endpoints::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: endpoints::start,
        },
        Descriptor {
            name: endpointslice::NAME,
            aliases: &["endpointslice"],
            service_account: "endpointslice-controller",
            disabled_by_default: false,
            start: endpointslice::start,
        },
        Descriptor {
            name: endpointslice_mirroring::NAME,
            aliases: &["endpointslicemirroring"],
            service_account: endpointslice_mirroring::NAME,
            disabled_by_default: false,
            start: endpointslice_mirroring::start,
        },
        Descriptor {
            name: podautoscaler::NAME,
            aliases: &["horizontalpodautoscaling"],
            service_account: podautoscaler::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: podautoscaler::start,
        },
        Descriptor {
            name: disruption::NAME,
            aliases: &["disruption"],
            service_account: "disruption-controller",
            disabled_by_default: false,
            start: disruption::start,
        },
        Descriptor {
            name: cronjob::NAME,
            aliases: &["cronjob"],
            service_account: cronjob::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: cronjob::start,
        },
        Descriptor {
            name: ttl_after_finished::NAME,
            aliases: &["ttl-after-finished"],
            service_account: ttl_after_finished::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: ttl_after_finished::start,
        },
        Descriptor {
            name: resource_quota::NAME,
            aliases: &["resourcequota"],
            service_account: resource_quota::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: resource_quota::start,
        },
        Descriptor {
            name: namespace::NAME,
            aliases: &["namespace"],
            service_account: "namespace-controller",
            disabled_by_default: false,
            start: namespace::start,
        },
        Descriptor {
            name: garbage_collector::NAME,
            aliases: &["garbagecollector"],
            service_account: garbage_collector::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: garbage_collector::start,
        },
        Descriptor {
            name: job::NAME,
            aliases: &["job"],
            service_account: job::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: job::start,
        },
        Descriptor {
            name: deployment::NAME,
            aliases: &["deployment"],
            service_account: "deployment-controller",
            disabled_by_default: false,
            start: deployment::start,
        },
        Descriptor {
            name: daemonset::NAME,
            aliases: &["daemonset"],
            service_account: daemonset::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: daemonset::start,
        },
        Descriptor {
            name: certificates::signer::NAME,
            aliases: &["csrsigning"],
            service_account: certificates::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: certificates::signer::start,
        },
        Descriptor {
            name: certificates::approver::NAME,
            aliases: &["csrapproving"],
            service_account: certificates::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: certificates::approver::start,
        },
        Descriptor {
            name: certificates::cleaner::NAME,
            aliases: &["csrcleaner"],
            service_account: certificates::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: certificates::cleaner::start,
        },
        Descriptor {
            name: bootstrap::SIGNER_NAME,
            aliases: &["bootstrapsigner"],
            service_account: bootstrap::SIGNER_SERVICE_ACCOUNT,
            disabled_by_default: true,
            start: bootstrap::start_signer,
        },
        Descriptor {
            name: bootstrap::CLEANER_NAME,
            aliases: &["tokencleaner"],
            service_account: bootstrap::CLEANER_SERVICE_ACCOUNT,
            disabled_by_default: true,
            start: bootstrap::start_cleaner,
        },
        Descriptor {
            name: persistent_volume::NAME,
            aliases: &["persistentvolume-binder"],
            service_account: persistent_volume::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: persistent_volume::start,
        },
        Descriptor {
            name: clusterrole_aggregation::NAME,
            aliases: &["clusterrole-aggregation"],
            service_account: clusterrole_aggregation::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: clusterrole_aggregation::start,
        },
        Descriptor {
            name: volume_protection::PVC_NAME,
            aliases: &["pvc-protection"],
            service_account: volume_protection::PVC_SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: volume_protection::start_pvc,
        },
        Descriptor {
            name: volume_protection::PV_NAME,
            aliases: &["pv-protection"],
            service_account: volume_protection::PV_SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: volume_protection::start_pv,
        },
        Descriptor {
            name: legacy_token_cleaner::NAME,
            aliases: &["legacy-service-account-token-cleaner"],
            service_account: legacy_token_cleaner::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: legacy_token_cleaner::start,
        },
        Descriptor {
            // on by default: MultiCIDRServiceAllocator is GA in v1.33 (upstream has no
            // alias; `service-cidr` is rkube's shorthand)
            name: service_cidrs::NAME,
            aliases: &["service-cidr"],
            service_account: service_cidrs::SERVICE_ACCOUNT,
            disabled_by_default: false,
            start: service_cidrs::start,
        },
    ]
}

/// The controllers `--controllers` enables, as upstream's `IsControllerEnabled`: a
/// name enables, `-name` disables, `*` enables those on by default; aliases count as
/// their canonical names; unknown names are refused.
pub fn enabled(requested: &[String]) -> Result<Vec<Descriptor>, Error> {
    let all = descriptors();
    let canonical = |name: &str| {
        all.iter()
            .find(|d| d.name == name || d.aliases.contains(&name))
            .map(|d| d.name)
    };
    let mut wanted: Vec<(bool, &str)> = Vec::new();
    let mut star = false;
    for entry in requested.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if entry == "*" {
            star = true;
            continue;
        }
        let (on, name) = match entry.strip_prefix('-') {
            Some(name) => (false, name),
            None => (true, entry),
        };
        let name = canonical(name).ok_or_else(|| Error::UnknownController(name.to_owned()))?;
        wanted.push((on, name));
    }
    Ok(all
        .into_iter()
        .filter(|d| match wanted.iter().find(|(_, name)| *name == d.name) {
            Some((on, _)) => *on,
            None => star && !d.disabled_by_default,
        })
        .collect())
}

/// How the manager elects its leader.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// The Lease (`kube-system/kube-controller-manager`) and timings.
    pub config: component_base::leader_election::Config,
}

/// What the controller manager needs.
pub struct Options {
    /// The manager's own client configuration (its kubeconfig).
    pub config: kube::Config,
    /// Where the controllers' service-account tokens are kept (0600 files).
    pub token_dir: PathBuf,
    /// `--controllers` (default `*`).
    pub controllers: Vec<String>,
    /// Per-controller settings.
    pub settings: Settings,
    /// Leader election, unless `--leader-elect=false`.
    pub leader_election: Option<LeaderElection>,
    /// The secure port's address, when served.
    pub serve: Option<SocketAddr>,
}

impl Options {
    /// Every default controller, leader-elected under `kube-system/kube-controller-manager`
    /// with upstream's timings, no secure port.
    pub fn new(config: kube::Config, token_dir: PathBuf, root_ca_pem: String) -> Options {
        Options {
            config,
            token_dir,
            controllers: vec!["*".to_owned()],
            settings: Settings {
                root_ca_pem,
                ..Settings::default()
            },
            leader_election: Some(LeaderElection {
                config: lease_config(identity()),
            }),
            serve: None,
        }
    }
}

/// Upstream's default Lease for the manager: 15 s lease, 10 s renew deadline, 2 s retry.
pub fn lease_config(identity: String) -> component_base::leader_election::Config {
    component_base::leader_election::Config {
        namespace: "kube-system".to_owned(),
        name: "kube-controller-manager".to_owned(),
        identity,
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

/// Upstream's leader-election identity: `<hostname>_<uuid>`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Retries `attempt` every second until it succeeds (the apiserver may still be
/// starting).
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => {
                tracing::info!(error = %e, "controller credentials not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs the controller manager until `shutdown` completes (Ok, releasing the lease)
/// or leadership is lost (Err: a standalone manager exits then, as upstream's).
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let enabled = enabled(&options.controllers)?;
    let manager = component_base::client::client(options.config.clone())?;
    let monitor_reader = kube::Client::try_from(options.config.clone())?;
    let server = match options.serve {
        Some(address) => {
            let port =
                component_base::serving::SecurePort::bind(address, "kube-controller-manager")
                    .await?;
            tracing::info!(address = ?port.local_addr(), "serving securely");
            Some(tokio::spawn(port.serve(router())))
        }
        None => None,
    };
    let leader_election = options.leader_election.clone();
    let lead = run_controllers(options, manager.clone(), monitor_reader, enabled);
    let result = match leader_election {
        Some(le) => {
            let gauge = metrics::METRICS
                .leader
                .with_label_values(&[le.config.name.as_str()]);
            gauge.set(0);
            let leading = async {
                gauge.set(1);
                lead.await
            };
            let result = component_base::leader_election::LeaderElector::new(manager, le.config)
                .run(leading, shutdown)
                .await
                .map_err(Error::from);
            gauge.set(0);
            result
        }
        None => {
            tokio::select! {
                () = lead => Ok(()),
                () = shutdown => Ok(()),
            }
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// Aborts a task when dropped (leadership lost or the manager stopped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the enabled controllers over one informer factory and runs them; dropping
/// the future stops the watches, the workers and the token renewal.
async fn run_controllers(
    options: Options,
    manager: kube::Client,
    monitor_reader: kube::Client,
    enabled: Vec<Descriptor>,
) {
    let credentials =
        credentials::Credentials::new(options.config, manager.clone(), options.token_dir);
    let factory = informers::Factory::new(manager.clone());
    let settings = Arc::new(options.settings);
    let host = identity().split('_').next().unwrap_or_default().to_owned();
    let mut running = Vec::new();
    for descriptor in enabled {
        let client = with_retries(|| credentials.client_for(descriptor.service_account)).await;
        let cx = Context {
            name: descriptor.name,
            informers: factory.clone(),
            reader: manager.clone(),
            monitor_reader: monitor_reader.clone(),
            recorder: Recorder::start(client.clone(), host.clone()),
            client,
            settings: settings.clone(),
        };
        // each controller on its own task: a panic (a bug) then stops that controller,
        // not the whole manager; the handles abort them all when leadership ends
        running.push((
            descriptor.name,
            AbortOnDrop(tokio::spawn((descriptor.start)(cx))),
        ));
        tracing::info!(controller = descriptor.name, "started controller");
    }
    let _refresher = AbortOnDrop(tokio::spawn(credentials.keep_fresh()));
    let _watches = factory.start();
    let waits = running.iter_mut().map(|(name, task)| async move {
        if let Err(e) = (&mut task.0).await {
            if e.is_panic() {
                tracing::error!(controller = *name, "controller panicked and stopped");
            }
        }
    });
    futures::future::join_all(waits).await;
}

fn router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { metrics::METRICS.render() }))
}
