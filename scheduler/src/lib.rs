//! kube-scheduler: upstream's scheduling framework ([`framework`]), its default
//! plugins ([`plugins`]), the scheduling [`queue`] and [`cache`], the watches feeding
//! them ([`informers`]), and the loop that binds each pending pod to the best node
//! ([`schedule_one`]). [`run`] is the whole component: the secure port with health and
//! metrics, Lease leader election, then scheduling while leading.

pub mod cache;
pub mod config;
pub mod framework;
pub mod informers;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod schedule_one;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::KubeSchedulerConfiguration;
use framework::registry::Handle;
use framework::runtime::{Framework, FrameworkError};
use metrics::Metrics;
use queue::SchedulingQueue;
use schedule_one::{Scheduler, Shared};

/// Why the scheduler stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A profile could not be built.
    #[error("initializing profiles: {0}")]
    Profile(#[from] FrameworkError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The secure port could not be served.
    #[error(transparent)]
    Serving(#[from] component_base::serving::ServingError),
    /// Another replica took over.
    #[error(transparent)]
    Lost(#[from] component_base::leader_election::Lost),
}

/// Whether the in-tree registry has a plugin (for the default profile).
pub fn registered(name: &str) -> bool {
    plugins::registry().contains_key(name)
}

/// Builds each profile's framework.
pub fn build_profiles(
    config: &KubeSchedulerConfiguration,
    handle: &Handle,
) -> Result<HashMap<String, Arc<Framework>>, Error> {
    let registry = framework::registry::in_tree();
    let mut profiles = HashMap::new();
    for p in &config.profiles {
        let fw = Framework::new(p, &registry, handle)?;
        profiles.insert(p.scheduler_name.clone(), Arc::new(fw));
    }
    Ok(profiles)
}

/// The component's state visible to the secure port.
#[derive(Clone, Default)]
pub struct Status {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The informers have listed everything (ready).
    pub synced: Arc<AtomicBool>,
}

/// Runs the scheduler with `client` until `shutdown` completes (or leadership is
/// lost): the secure port on `serve` when given; the profiles are built and the
/// informers started at once, as upstream does, so a standby replica is ready and a bad
/// profile fails before any election; the scheduling loop runs only while leading when
/// the configuration asks for leader election.
pub async fn run_with_client(
    client: kube::Client,
    config: KubeSchedulerConfiguration,
    serve: Option<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let status = Status::default();
    let prepared = prepare(client.clone(), &config, &status)?;
    let server = match serve {
        Some(address) => {
            let port = component_base::serving::SecurePort::bind(address, "kube-scheduler").await?;
            tracing::info!(address = ?port.local_addr(), "serving securely");
            Some(tokio::spawn(port.serve(router(status.clone()))))
        }
        None => None,
    };
    let result = if config.leader_election.leader_elect {
        let le = &config.leader_election;
        let parse = |s: &str, default: u64| {
            config::parse_duration(s).unwrap_or(Duration::from_secs(default))
        };
        let elector = component_base::leader_election::LeaderElector::new(
            client.clone(),
            component_base::leader_election::Config {
                namespace: le.resource_namespace.clone(),
                name: le.resource_name.clone(),
                identity: identity(),
                lease_duration: parse(&le.lease_duration, 15),
                renew_deadline: parse(&le.renew_deadline, 10),
                retry_period: parse(&le.retry_period, 2),
            },
        );
        match elector
            .run(prepared.schedule(status.clone()), shutdown)
            .await
        {
            Ok(()) => Ok(()),
            Err(lost) => Err(Error::Lost(lost)),
        }
    } else {
        tokio::select! {
            () = prepared.schedule(status.clone()) => Ok(()),
            () = shutdown => Ok(()),
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// Upstream's leader-election identity: `<hostname>_<uuid>`.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

fn router(status: Status) -> axum::Router {
    use axum::routing::get;
    let ready = status.synced.clone();
    let metrics = status.metrics.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "[-]sched-handler-sync failed: reason withheld\nreadyz check failed",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { text }
            }),
        )
}

/// Stops the scheduling thread and the watches when scheduling ends (shutdown, lost
/// leadership, or the future being dropped).
struct StopGuard {
    queue: Arc<SchedulingQueue>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.queue.close();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Everything but the scheduling loop: profiles, queue, cache, events and the
/// informers feeding them (running from here on).
struct Prepared {
    shared: Arc<Shared>,
    profiles: HashMap<String, Arc<Framework>>,
    percentage_of_nodes_to_score: i32,
    synced: Arc<AtomicUsize>,
    guard: StopGuard,
}

/// Builds the profiles (failing on bad plugin configuration) and starts the informers
/// and the queue's timers.
fn prepare(
    client: kube::Client,
    config: &KubeSchedulerConfiguration,
    status: &Status,
) -> Result<Prepared, Error> {
    let handle = Handle {
        client: Some(client.clone()),
        ..Handle::default()
    };
    let profiles = build_profiles(config, &handle)?;
    let queue = Arc::new(SchedulingQueue::new(
        profiles.clone(),
        Duration::from_secs(u64::try_from(config.pod_initial_backoff_seconds).unwrap_or(1)),
        Duration::from_secs(u64::try_from(config.pod_max_backoff_seconds).unwrap_or(10)),
    ));
    let host = identity();
    let shared = Arc::new(Shared {
        cache: Arc::new(Mutex::new(cache::Cache::new())),
        queue: queue.clone(),
        client: Some(client.clone()),
        recorder: Some(component_base::events::Recorder::start_counting_only(
            client.clone(),
            host.split('_').next().unwrap_or("").to_owned(),
        )),
        metrics: status.metrics.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let synced = Arc::new(AtomicUsize::new(0));
    let mut guard = StopGuard {
        queue: queue.clone(),
        tasks: Vec::new(),
    };
    guard.tasks.push(tokio::spawn(informers::run(
        client,
        shared.clone(),
        Arc::new(profiles.clone()),
        handle,
        synced.clone(),
    )));
    let ticking = queue;
    let gauges = status.metrics.clone();
    let ready = status.synced.clone();
    let informers_synced = synced.clone();
    guard.tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            if informers_synced.load(Ordering::SeqCst) >= informers::INFORMERS {
                ready.store(true, Ordering::SeqCst);
            }
            ticking.flush_backoff_completed();
            n += 1;
            if n % 30 == 0 {
                ticking.flush_unschedulable_leftover();
            }
            let l = ticking.lengths();
            for (queue, len) in [
                ("active", l.active),
                ("backoff", l.backoff),
                ("unschedulable", l.unschedulable),
                ("gated", l.gated),
            ] {
                gauges
                    .pending_pods
                    .with_label_values(&[queue])
                    .set(len as f64);
            }
        }
    }));
    Ok(Prepared {
        shared,
        profiles,
        percentage_of_nodes_to_score: config.percentage_of_nodes_to_score.unwrap_or(0),
        synced,
        guard,
    })
}

impl Prepared {
    /// Schedules pods until the future is dropped (which stops the scheduling thread
    /// and the informers).
    async fn schedule(self, status: Status) {
        let Prepared {
            shared,
            profiles,
            percentage_of_nodes_to_score,
            synced,
            guard,
        } = self;
        let _guard = guard;
        // upstream's WaitForCacheSync: no cycle before every informer has listed
        while synced.load(Ordering::SeqCst) < informers::INFORMERS {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status.synced.store(true, Ordering::SeqCst);
        tracing::info!("scheduler caches synced; scheduling");
        let scheduler = Scheduler::new(shared, profiles, percentage_of_nodes_to_score);
        let thread = match std::thread::Builder::new()
            .name("scheduling-cycle".to_owned())
            .spawn(move || scheduler.run())
        {
            Ok(thread) => thread,
            Err(e) => {
                tracing::error!(error = %e, "starting the scheduling thread");
                return;
            }
        };
        // the thread runs until the guard closes the queue; wait here meanwhile
        while !thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
