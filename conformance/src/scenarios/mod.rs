//! The scenarios, one module per upstream test file (test/e2e/apimachinery/*.go).

mod discovery;
mod server_version;

use crate::Cluster;

/// One scenario: an upstream conformance test's codename and our check of it.
pub struct Scenario {
    /// The upstream codename, e.g. `[sig-api-machinery] server version should find the server version [Conformance]`.
    pub codename: &'static str,
    /// Runs the scenario; `Err` says what differs from upstream.
    pub run: fn(&Cluster) -> Result<(), String>,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        codename: "[sig-api-machinery] server version should find the server version [Conformance]",
        run: server_version::find_the_server_version,
    },
    Scenario {
        codename: "[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance]",
        run: discovery::preferred_version_for_each_group,
    },
    Scenario {
        codename: "[sig-api-machinery] Discovery should locate the groupVersion and a resource within each APIGroup [Conformance]",
        run: discovery::group_version_and_a_resource_in_each_group,
    },
];

/// Turns any displayable error into a scenario failure.
fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}
