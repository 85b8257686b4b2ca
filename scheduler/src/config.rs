//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): the file `--config`
//! names, with upstream's defaults — one `default-scheduler` profile whose plugins are
//! the default multiPoint set, merged with what a profile enables and disables
//! (upstream's `apis/config/v1/defaults.go` and `default_plugins.go`).

use serde::Deserialize;

/// The API version this file format is read in.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// The default profile's scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Upstream's default multiPoint plugins for v1.33 with their score weights, in order.
/// Plugins not built yet are left out by [`default_plugins`].
const DEFAULT_MULTI_POINT: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("VolumeZone", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a KubeSchedulerConfiguration.
    #[error("decoding config: {0}")]
    Decode(String),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// One plugin in a set, with its Score weight.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    /// The plugin's name (`*` in `disabled` means all).
    pub name: String,
    /// Its Score weight (0 or unset: 1).
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginSet {
    /// Enabled, in order.
    pub enabled: Vec<PluginRef>,
    /// Disabled (`*` for all defaults).
    pub disabled: Vec<PluginRef>,
}

/// A profile's plugins per extension point, and multiPoint.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct Plugins {
    pub pre_enqueue: PluginSet,
    pub queue_sort: PluginSet,
    pub pre_filter: PluginSet,
    pub filter: PluginSet,
    pub post_filter: PluginSet,
    pub pre_score: PluginSet,
    pub score: PluginSet,
    pub reserve: PluginSet,
    pub permit: PluginSet,
    pub pre_bind: PluginSet,
    pub bind: PluginSet,
    pub post_bind: PluginSet,
    pub multi_point: PluginSet,
}

/// A plugin's arguments.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfig {
    /// The plugin.
    pub name: String,
    /// Its arguments (`*Args` of kubescheduler.config.k8s.io/v1).
    #[serde(default)]
    pub args: serde_json::Value,
}

/// A scheduling profile: pods name it in `spec.schedulerName`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    /// The name pods ask for.
    pub scheduler_name: String,
    /// Overrides the top-level `percentageOfNodesToScore`.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugins, merged with the defaults.
    pub plugins: Plugins,
    /// Plugin arguments.
    pub plugin_config: Vec<PluginConfig>,
}

/// Leader election settings (component-base's `LeaderElectionConfiguration`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaderElection {
    /// Whether to elect a leader before scheduling.
    pub leader_elect: bool,
    /// How long a lease lasts without renewal (Go duration).
    pub lease_duration: String,
    /// How long the leader keeps trying to renew before it gives up (Go duration).
    pub renew_deadline: String,
    /// How often candidates retry (Go duration).
    pub retry_period: String,
    /// Only `leases` is supported.
    pub resource_lock: String,
    /// The Lease's name.
    pub resource_name: String,
    /// The Lease's namespace.
    pub resource_namespace: String,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            leader_elect: true,
            lease_duration: "15s".to_owned(),
            renew_deadline: "10s".to_owned(),
            retry_period: "2s".to_owned(),
            resource_lock: "leases".to_owned(),
            resource_name: "kube-scheduler".to_owned(),
            resource_namespace: "kube-system".to_owned(),
        }
    }
}

/// How the scheduler reaches the apiserver.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientConnection {
    /// The kubeconfig file.
    pub kubeconfig: String,
}

/// The whole file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeSchedulerConfiguration {
    /// `kubescheduler.config.k8s.io/v1`.
    pub api_version: String,
    /// `KubeSchedulerConfiguration`.
    pub kind: String,
    /// How many nodes are filtered and scored at once (default 16).
    pub parallelism: i32,
    /// Leader election.
    pub leader_election: LeaderElection,
    /// The client.
    pub client_connection: ClientConnection,
    /// Percentage of nodes to find feasible before scoring (0: upstream's adaptive
    /// default).
    pub percentage_of_nodes_to_score: Option<i32>,
    /// The first backoff of a pod that failed (seconds).
    pub pod_initial_backoff_seconds: i64,
    /// The longest backoff (seconds).
    pub pod_max_backoff_seconds: i64,
    /// The profiles.
    pub profiles: Vec<Profile>,
    /// Scheduler extenders (not supported: must be empty).
    pub extenders: Vec<serde_json::Value>,
}

impl Default for KubeSchedulerConfiguration {
    fn default() -> Self {
        KubeSchedulerConfiguration {
            api_version: API_VERSION.to_owned(),
            kind: "KubeSchedulerConfiguration".to_owned(),
            parallelism: 16,
            leader_election: LeaderElection::default(),
            client_connection: ClientConnection::default(),
            percentage_of_nodes_to_score: None,
            pod_initial_backoff_seconds: 1,
            pod_max_backoff_seconds: 10,
            profiles: Vec::new(),
            extenders: Vec::new(),
        }
    }
}

/// Upstream's default plugins, limited to those in `registered`.
pub fn default_plugins(registered: &dyn Fn(&str) -> bool) -> Plugins {
    Plugins {
        multi_point: PluginSet {
            enabled: DEFAULT_MULTI_POINT
                .iter()
                .filter(|(name, _)| registered(name))
                .map(|(name, weight)| PluginRef {
                    name: (*name).to_owned(),
                    weight: (*weight != 0).then_some(*weight),
                })
                .collect(),
            disabled: Vec::new(),
        },
        ..Plugins::default()
    }
}

/// Upstream's `mergePluginSet`: defaults minus the disabled (all with `*`), a default
/// re-enabled by the user replaced in place, then the user's other plugins.
fn merge_set(defaults: &PluginSet, custom: &PluginSet) -> PluginSet {
    let disabled_all = custom.disabled.iter().any(|d| d.name == "*");
    let mut replaced = vec![false; custom.enabled.len()];
    let mut enabled = Vec::new();
    if !disabled_all {
        for d in &defaults.enabled {
            if custom.disabled.iter().any(|x| x.name == d.name) {
                continue;
            }
            match custom.enabled.iter().position(|c| c.name == d.name) {
                Some(i) => {
                    replaced[i] = true;
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(d.clone()),
            }
        }
    }
    for (i, c) in custom.enabled.iter().enumerate() {
        if !replaced[i] {
            enabled.push(c.clone());
        }
    }
    PluginSet {
        enabled,
        disabled: custom.disabled.clone(),
    }
}

fn merge_plugins(defaults: &Plugins, custom: &Plugins) -> Plugins {
    Plugins {
        pre_enqueue: merge_set(&defaults.pre_enqueue, &custom.pre_enqueue),
        queue_sort: merge_set(&defaults.queue_sort, &custom.queue_sort),
        pre_filter: merge_set(&defaults.pre_filter, &custom.pre_filter),
        filter: merge_set(&defaults.filter, &custom.filter),
        post_filter: merge_set(&defaults.post_filter, &custom.post_filter),
        pre_score: merge_set(&defaults.pre_score, &custom.pre_score),
        score: merge_set(&defaults.score, &custom.score),
        reserve: merge_set(&defaults.reserve, &custom.reserve),
        permit: merge_set(&defaults.permit, &custom.permit),
        pre_bind: merge_set(&defaults.pre_bind, &custom.pre_bind),
        bind: merge_set(&defaults.bind, &custom.bind),
        post_bind: merge_set(&defaults.post_bind, &custom.post_bind),
        multi_point: merge_set(&defaults.multi_point, &custom.multi_point),
    }
}

impl KubeSchedulerConfiguration {
    /// Reads and defaults a configuration file (YAML or JSON).
    pub fn load(path: &str, registered: &dyn Fn(&str) -> bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, registered)
    }

    /// Parses and defaults a configuration.
    pub fn parse(text: &str, registered: &dyn Fn(&str) -> bool) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?;
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        if kind != "KubeSchedulerConfiguration" {
            return Err(ConfigError::Decode(format!(
                "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/scheduler/apis/config/scheme/scheme.go:30\""
            )));
        }
        if api_version != API_VERSION {
            return Err(ConfigError::Decode(format!(
                "no kind \"KubeSchedulerConfiguration\" is registered for version \"{api_version}\" in scheme \"pkg/scheduler/apis/config/scheme/scheme.go:30\""
            )));
        }
        let mut config: KubeSchedulerConfiguration =
            serde_json::from_value(value).map_err(|e| ConfigError::Decode(e.to_string()))?;
        config.set_defaults(registered);
        config.validate()?;
        Ok(config)
    }

    /// Upstream's defaults: one profile when none, each profile named and its plugins
    /// merged with the default set.
    pub fn set_defaults(&mut self, registered: &dyn Fn(&str) -> bool) {
        if self.parallelism == 0 {
            self.parallelism = 16;
        }
        if self.pod_initial_backoff_seconds == 0 {
            self.pod_initial_backoff_seconds = 1;
        }
        if self.pod_max_backoff_seconds == 0 {
            self.pod_max_backoff_seconds = 10;
        }
        if self.profiles.is_empty() {
            self.profiles.push(Profile::default());
        }
        let defaults = default_plugins(registered);
        for p in &mut self.profiles {
            if p.scheduler_name.is_empty() {
                p.scheduler_name = DEFAULT_SCHEDULER_NAME.to_owned();
            }
            p.plugins = merge_plugins(&defaults, &p.plugins);
        }
    }

    /// Upstream's `ValidateKubeSchedulerConfiguration`, for the fields read here.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if self.parallelism <= 0 {
            errs.push(format!(
                "parallelism: Invalid value: {}: should be an integer value greater than zero",
                self.parallelism
            ));
        }
        let check_percentage = |field: &str, p: Option<i32>, errs: &mut Vec<String>| {
            if let Some(p) = p.filter(|p| !(0..=100).contains(p)) {
                errs.push(format!(
                    "{field}: Invalid value: {p}: not in valid range [0-100]"
                ));
            }
        };
        check_percentage(
            "percentageOfNodesToScore",
            self.percentage_of_nodes_to_score,
            &mut errs,
        );
        if self.pod_initial_backoff_seconds <= 0 {
            errs.push(format!(
                "podInitialBackoffSeconds: Invalid value: {}: must be greater than 0",
                self.pod_initial_backoff_seconds
            ));
        }
        if self.pod_max_backoff_seconds < self.pod_initial_backoff_seconds {
            errs.push(format!(
                "podMaxBackoffSeconds: Invalid value: {}: must be greater than or equal to PodInitialBackoffSeconds",
                self.pod_max_backoff_seconds
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.profiles.iter().enumerate() {
            if !names.insert(p.scheduler_name.as_str()) {
                errs.push(format!(
                    "profiles[{i}].schedulerName: Duplicate value: \"{}\"",
                    p.scheduler_name
                ));
            }
            check_percentage(
                &format!("profiles[{i}].percentageOfNodesToScore"),
                p.percentage_of_nodes_to_score,
                &mut errs,
            );
            let mut configs = std::collections::BTreeSet::new();
            for (j, c) in p.plugin_config.iter().enumerate() {
                if !configs.insert(c.name.as_str()) {
                    errs.push(format!(
                        "profiles[{i}].pluginConfig[{j}]: Duplicate value: \"{}\"",
                        c.name
                    ));
                }
            }
        }
        if !self.extenders.is_empty() {
            errs.push(
                "extenders: Unsupported value: scheduler extenders are not supported".to_owned(),
            );
        }
        if self.leader_election.leader_elect && self.leader_election.resource_lock != "leases" {
            errs.push(format!(
                "leaderElection.resourceLock: Invalid value: \"{}\": only \"leases\" is supported",
                self.leader_election.resource_lock
            ));
        }
        if self.leader_election.leader_elect {
            let le = &self.leader_election;
            if let (Some(lease), Some(renew), Some(retry)) = (
                parse_duration(&le.lease_duration),
                parse_duration(&le.renew_deadline),
                parse_duration(&le.retry_period),
            ) {
                // client-go's NewLeaderElector checks
                if lease <= renew {
                    errs.push("leaderElection.leaseDuration: Invalid value: leaseDuration must be greater than renewDeadline".to_owned());
                }
                if renew <= retry.mul_f64(1.2) {
                    errs.push("leaderElection.renewDeadline: Invalid value: renewDeadline must be greater than retryPeriod*JitterFactor".to_owned());
                }
                if retry.is_zero() {
                    errs.push("leaderElection.retryPeriod: Invalid value: retryPeriod must be greater than zero".to_owned());
                }
            }
        }
        for (field, value) in [
            ("leaseDuration", &self.leader_election.lease_duration),
            ("renewDeadline", &self.leader_election.renew_deadline),
            ("retryPeriod", &self.leader_election.retry_period),
        ] {
            if parse_duration(value).is_none() {
                errs.push(format!(
                    "leaderElection.{field}: Invalid value: \"{value}\": not a duration"
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs.join(", ")))
        }
    }
}

pub use component_base::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn an_empty_file_gets_the_default_profile() {
        let c = KubeSchedulerConfiguration::parse(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n",
            &all,
        )
        .unwrap();
        assert_eq!(c.profiles.len(), 1);
        assert_eq!(c.profiles[0].scheduler_name, "default-scheduler");
        let mp = &c.profiles[0].plugins.multi_point.enabled;
        assert_eq!(mp.len(), DEFAULT_MULTI_POINT.len());
        assert_eq!(mp[4].name, "TaintToleration");
        assert_eq!(mp[4].weight, Some(3));
        assert!(c.leader_election.leader_elect);
        assert_eq!(c.pod_max_backoff_seconds, 10);
    }

    #[test]
    fn every_default_plugin_is_built_in_upstreams_order() {
        // upstream's getDefaultPlugins (apis/config/v1/default_plugins.go), v1.33
        let upstream = [
            "SchedulingGates",
            "PrioritySort",
            "NodeUnschedulable",
            "NodeName",
            "TaintToleration",
            "NodeAffinity",
            "NodePorts",
            "NodeResourcesFit",
            "VolumeRestrictions",
            "NodeVolumeLimits",
            "VolumeBinding",
            "VolumeZone",
            "PodTopologySpread",
            "InterPodAffinity",
            "DefaultPreemption",
            "NodeResourcesBalancedAllocation",
            "ImageLocality",
            "DefaultBinder",
        ];
        // with the real registry nothing is left out any more
        let defaults = default_plugins(&crate::registered);
        let names: Vec<&str> = defaults
            .multi_point
            .enabled
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, upstream);
        let weight = |name: &str| {
            defaults
                .multi_point
                .enabled
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.weight)
        };
        // the volume plugins score nothing by default (StorageCapacityScoring is alpha)
        for name in [
            "VolumeRestrictions",
            "NodeVolumeLimits",
            "VolumeBinding",
            "VolumeZone",
        ] {
            assert_eq!(weight(name), None, "{name}");
        }
    }

    #[test]
    fn profiles_merge_with_defaults_as_upstream() {
        let text = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: no-scoring
  plugins:
    multiPoint:
      enabled:
      - name: NodeAffinity
        weight: 5
      disabled:
      - name: ImageLocality
    score:
      disabled:
      - name: "*"
"#;
        let c = KubeSchedulerConfiguration::parse(text, &all).unwrap();
        let p = &c.profiles[1].plugins;
        let names: Vec<_> = p
            .multi_point
            .enabled
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(!names.contains(&"ImageLocality"));
        // re-enabled default keeps its place with the new weight
        let affinity = p
            .multi_point
            .enabled
            .iter()
            .position(|e| e.name == "NodeAffinity");
        assert_eq!(affinity, Some(5));
        assert_eq!(p.multi_point.enabled[5].weight, Some(5));
        assert_eq!(p.score.disabled[0].name, "*");
    }

    #[test]
    fn bad_files_are_refused_with_upstreams_words() {
        let wrong_version =
            "apiVersion: kubescheduler.config.k8s.io/v1beta9\nkind: KubeSchedulerConfiguration\n";
        let e = KubeSchedulerConfiguration::parse(wrong_version, &all).unwrap_err();
        assert!(e.to_string().contains("no kind \"KubeSchedulerConfiguration\" is registered for version \"kubescheduler.config.k8s.io/v1beta9\""), "{e}");
        let dup = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: 120\nprofiles:\n- schedulerName: a\n- schedulerName: a\n";
        let e = KubeSchedulerConfiguration::parse(dup, &all)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profiles[1].schedulerName: Duplicate value: \"a\""),
            "{e}"
        );
        assert!(
            e.contains("percentageOfNodesToScore: Invalid value: 120: not in valid range [0-100]"),
            "{e}"
        );
        assert!(KubeSchedulerConfiguration::parse("{not yaml", &all).is_err());
    }

    #[test]
    fn leader_election_timings_are_checked_as_client_go_does() {
        let text = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection:\n  leaseDuration: 5s\n  renewDeadline: 10s\n  retryPeriod: 0s\n";
        let e = KubeSchedulerConfiguration::parse(text, &all)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("leaseDuration must be greater than renewDeadline"),
            "{e}"
        );
        assert!(e.contains("retryPeriod must be greater than zero"), "{e}");
        // absurd durations are refused, not overflowed
        assert_eq!(parse_duration("99999999999999999999999h"), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("abc"), None);
    }
}
