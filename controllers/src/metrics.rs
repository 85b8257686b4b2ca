//! The controller manager's Prometheus metrics, with client-go's workqueue names
//! (`workqueue_adds_total`, `workqueue_depth`, `workqueue_retries_total`,
//! `workqueue_work_duration_seconds`, labelled by the queue's controller name) and
//! `leader_election_master_status`, served on `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};

/// The metrics, in their own registry.
pub struct Metrics {
    registry: prometheus::Registry,
    /// `workqueue_adds_total{name}`.
    pub adds: IntCounterVec,
    /// `workqueue_depth{name}`.
    pub depth: IntGaugeVec,
    /// `workqueue_retries_total{name}`.
    pub retries: IntCounterVec,
    /// `workqueue_work_duration_seconds{name}`.
    pub work_duration: HistogramVec,
    /// `leader_election_master_status{name}`.
    pub leader: IntGaugeVec,
}

/// The process's metrics (one manager per process, as upstream's global registry).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let registry = prometheus::Registry::new();
        let adds = IntCounterVec::new(
            Opts::new(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
            ),
            &["name"],
        )
        .expect("static metric definition");
        let depth = IntGaugeVec::new(
            Opts::new("workqueue_depth", "Current depth of workqueue"),
            &["name"],
        )
        .expect("static metric definition");
        let retries = IntCounterVec::new(
            Opts::new(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
            ),
            &["name"],
        )
        .expect("static metric definition");
        let work_duration = HistogramVec::new(
            HistogramOpts::new(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
            )
            .buckets(prometheus::exponential_buckets(1e-8, 10.0, 10).expect("static buckets")),
            &["name"],
        )
        .expect("static metric definition");
        let leader = IntGaugeVec::new(
            Opts::new(
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            ),
            &["name"],
        )
        .expect("static metric definition");
        for m in [
            Box::new(adds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(depth.clone()),
            Box::new(retries.clone()),
            Box::new(work_duration.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Metrics {
            registry,
            adds,
            depth,
            retries,
            work_duration,
            leader,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
