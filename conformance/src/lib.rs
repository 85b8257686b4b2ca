//! Compatibility scenarios named after upstream conformance tests (their codenames, as
//! in `shared/conformance/`), runnable against any cluster given a kubeconfig: ours or
//! a real one. Scenarios talk to the cluster through stock kubectl, the client users
//! have, so a scenario passing here means kubectl sees what it sees upstream.
//!
//! Run them with `conformance run --kubeconfig FILE [--focus REGEX]`.

mod cluster;
mod scenarios;

pub use cluster::{Cluster, ClusterError, Response};
pub use scenarios::{SCENARIOS, Scenario};

/// The outcome of one scenario.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's upstream codename.
    pub codename: &'static str,
    /// `Ok` when it passed; otherwise what went wrong.
    pub result: Result<(), String>,
}

/// Runs every scenario whose codename matches `focus` (all when `None`), in order.
pub fn run(cluster: &Cluster, focus: Option<&regex::Regex>) -> Vec<Outcome> {
    SCENARIOS
        .iter()
        .filter(|s| focus.is_none_or(|f| f.is_match(s.codename)))
        .map(|s| Outcome {
            codename: s.codename,
            result: (s.run)(cluster),
        })
        .collect()
}
