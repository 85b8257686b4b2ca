//! Plugin names to constructors (upstream's `frameworkruntime.Registry` and
//! `plugins.NewInTreeRegistry`), and what constructors get: their typed arguments from
//! `pluginConfig` and a [`Handle`] on the world outside the cycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, StorageClass};

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
    /// PersistentVolumeClaims, PersistentVolumes, StorageClasses, CSINodes and
    /// CSIDrivers (the volume plugins' listers).
    pub volumes: VolumeListers,
}

/// Objects by key (`namespace/name` for namespaced kinds, `name` otherwise), kept
/// current by one informer.
pub type Store<K> = Arc<RwLock<HashMap<String, Arc<K>>>>;

/// The storage objects upstream's volume plugins read through listers. Empty in unit
/// tests unless a test fills them.
#[derive(Clone, Default)]
pub struct VolumeListers {
    /// PersistentVolumeClaims by `namespace/name`.
    pub pvcs: Store<PersistentVolumeClaim>,
    /// PersistentVolumes by name.
    pub pvs: Store<PersistentVolume>,
    /// StorageClasses by name.
    pub storage_classes: Store<StorageClass>,
    /// CSINodes by name (the node's name).
    pub csi_nodes: Store<CSINode>,
    /// CSIDrivers by name.
    pub csi_drivers: Store<CSIDriver>,
}

fn get<K>(store: &Store<K>, key: &str) -> Option<Arc<K>> {
    store
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
}

fn put<K>(store: &Store<K>, key: String, object: K) {
    store
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::new(object));
}

impl VolumeListers {
    /// The claim `namespace/name`.
    pub fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        get(&self.pvcs, &format!("{namespace}/{name}"))
    }

    /// The volume `name`.
    pub fn pv(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        get(&self.pvs, name)
    }

    /// Every volume.
    pub fn all_pvs(&self) -> Vec<Arc<PersistentVolume>> {
        self.pvs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The StorageClass `name`.
    pub fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        get(&self.storage_classes, name)
    }

    /// The CSINode of node `name`.
    pub fn csi_node(&self, name: &str) -> Option<Arc<CSINode>> {
        get(&self.csi_nodes, name)
    }

    /// The CSIDriver `name`.
    pub fn csi_driver(&self, name: &str) -> Option<Arc<CSIDriver>> {
        get(&self.csi_drivers, name)
    }

    /// Stores a claim (tests and the informer).
    pub fn put_pvc(&self, pvc: PersistentVolumeClaim) {
        let key = format!(
            "{}/{}",
            pvc.metadata.namespace.as_deref().unwrap_or("default"),
            pvc.metadata.name.as_deref().unwrap_or("")
        );
        put(&self.pvcs, key, pvc);
    }

    /// Stores a volume.
    pub fn put_pv(&self, pv: PersistentVolume) {
        let key = pv.metadata.name.clone().unwrap_or_default();
        put(&self.pvs, key, pv);
    }

    /// Stores a StorageClass.
    pub fn put_storage_class(&self, class: StorageClass) {
        let key = class.metadata.name.clone().unwrap_or_default();
        put(&self.storage_classes, key, class);
    }

    /// Stores a CSINode.
    pub fn put_csi_node(&self, csi_node: CSINode) {
        let key = csi_node.metadata.name.clone().unwrap_or_default();
        put(&self.csi_nodes, key, csi_node);
    }
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
