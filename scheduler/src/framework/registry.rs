//! Plugin names to constructors (upstream's `frameworkruntime.Registry` and
//! `plugins.NewInTreeRegistry`), and what constructors get: their typed arguments from
//! `pluginConfig` and a [`Handle`] on the world outside the cycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use super::Plugin;
use crate::plugins;

/// What plugins may reach beyond the cycle state: the API client (binding, preemption)
/// and listers the informers keep current.
#[derive(Clone, Default)]
pub struct Handle {
    /// The scheduler's client; `None` in unit tests.
    pub client: Option<kube::Client>,
    /// Namespace name → its labels (InterPodAffinity's namespace selectors).
    pub namespace_labels: Arc<RwLock<HashMap<String, BTreeMap<String, String>>>>,
    /// Per namespace, the selectors of Services, ReplicationControllers, ReplicaSets
    /// and StatefulSets (PodTopologySpread's system default constraints select the
    /// pods of the same workloads, upstream's `helper.DefaultSelector`).
    pub workload_selectors: Arc<RwLock<HashMap<String, Vec<WorkloadSelector>>>>,
    /// PodDisruptionBudgets (preemption prefers victims whose budgets allow it).
    pub pdbs: Arc<RwLock<Vec<Arc<k8s_openapi::api::policy::v1::PodDisruptionBudget>>>>,
    /// Pods nominated to nodes by preemption.
    pub nominator: Arc<super::nominator::Nominator>,
}

/// One workload's pod selector.
#[derive(Clone, Debug)]
pub struct WorkloadSelector {
    /// `Service`, `ReplicationController`, `ReplicaSet` or `StatefulSet`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its selector (a Service's or ReplicationController's map as equality
    /// requirements).
    pub selector: apimachinery::labels::Selector,
}

/// A constructor: `args` is the plugin's `pluginConfig[].args` (JSON), if any.
pub type PluginFactory =
    fn(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String>;

/// Decodes a plugin's arguments into `T`, starting from `T::default()` (upstream's
/// defaulted `*Args` types), with upstream-style messages on bad input.
pub fn decode_args<T>(name: &str, args: Option<&serde_json::Value>) -> Result<T, String>
where
    T: serde::de::DeserializeOwned + Default,
{
    match args {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(value) => {
            let mut value = value.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            serde_json::from_value(value).map_err(|e| format!("decoding args of {name}: {e}"))
        }
    }
}

/// Every in-tree plugin by name.
pub fn in_tree() -> BTreeMap<&'static str, PluginFactory> {
    plugins::registry()
}
