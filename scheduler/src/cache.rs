//! The scheduler's view of nodes and the pods on them (upstream's
//! `internal/cache`): pods the informer reports as bound, plus pods the scheduler has
//! *assumed* onto a node before their binding lands, so the next cycle already counts
//! them. Each cycle takes a [`Snapshot`] that is updated incrementally: only nodes
//! whose generation moved are copied.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NodeInfo, PodInfo, Snapshot};

/// Where the cache has a pod.
#[derive(Clone, Debug)]
struct PodState {
    pod: Arc<PodInfo>,
    node: String,
    /// Placed by the scheduler, not yet seen bound by the informer.
    assumed: bool,
    /// The binding request finished (successfully).
    binding_finished: bool,
}

/// Nodes and their pods.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    /// Nodes changed since the last snapshot.
    dirty: HashSet<String>,
    /// The node set changed (added or removed) since the last snapshot.
    nodes_changed: bool,
    /// Node images changed since the last snapshot.
    images_changed: bool,
    snapshot: Snapshot,
}

/// The cache was asked something inconsistent (logged by the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The pod is already in the cache.
    #[error("pod {0} is in the cache, so can't be assumed")]
    AlreadyCached(String),
    /// The pod was not assumed.
    #[error("pod {0} wasn't assumed so cannot be forgotten")]
    NotAssumed(String),
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    fn node_entry(&mut self, name: &str) -> &mut NodeInfo {
        self.dirty.insert(name.to_owned());
        self.nodes.entry(name.to_owned()).or_default()
    }

    fn add_to_node(&mut self, node: &str, pod: Arc<PodInfo>) {
        self.node_entry(node).add_pod(pod);
    }

    fn remove_from_node(&mut self, node: &str, uid: &str) {
        if let Some(info) = self.nodes.get_mut(node) {
            info.remove_pod(uid);
            self.dirty.insert(node.to_owned());
            // a deleted node's entry stays while pods remain on it (upstream)
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    /// Places `pod` (with `spec.nodeName` set to its chosen node) before binding.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>) -> Result<(), CacheError> {
        let uid = pod.uid().to_owned();
        if self.pods.contains_key(&uid) {
            return Err(CacheError::AlreadyCached(pod.key()));
        }
        let node = pod.node_name().unwrap_or_default().to_owned();
        self.add_to_node(&node, pod.clone());
        self.pods.insert(
            uid,
            PodState {
                pod,
                node,
                assumed: true,
                binding_finished: false,
            },
        );
        Ok(())
    }

    /// Records that the pod's binding request succeeded.
    pub fn finish_binding(&mut self, uid: &str) {
        if let Some(state) = self.pods.get_mut(uid) {
            state.binding_finished = true;
        }
    }

    /// Undoes [`Cache::assume_pod`] (binding failed).
    pub fn forget_pod(&mut self, uid: &str) -> Result<(), CacheError> {
        match self.pods.get(uid) {
            Some(state) if state.assumed => {
                let node = state.node.clone();
                self.pods.remove(uid);
                self.remove_from_node(&node, uid);
                Ok(())
            }
            Some(state) => Err(CacheError::NotAssumed(state.pod.key())),
            None => Err(CacheError::NotAssumed(uid.to_owned())),
        }
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// A bound pod reported by the informer: confirms an assumed pod or adds it.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let info = Arc::new(PodInfo::from_arc(pod));
        let uid = info.uid().to_owned();
        let node = info.node_name().unwrap_or_default().to_owned();
        if let Some(old) = self.pods.get(&uid).cloned() {
            // the assumed pod is confirmed, possibly elsewhere than assumed
            self.remove_from_node(&old.node, &uid);
        }
        self.add_to_node(&node, info.clone());
        self.pods.insert(
            uid,
            PodState {
                pod: info,
                node,
                assumed: false,
                binding_finished: true,
            },
        );
    }

    /// A bound pod changed.
    pub fn update_pod(&mut self, pod: Arc<Pod>) {
        self.add_pod(pod);
    }

    /// A bound pod went away.
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(state) = self.pods.remove(uid) {
            self.remove_from_node(&state.node, uid);
        }
    }

    /// A node was added or changed.
    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let existed = self.nodes.get(&name).is_some_and(|n| n.node.is_some());
        let entry = self.node_entry(&name);
        let old_images = std::mem::take(&mut entry.images);
        entry.set_node(node);
        if entry.images != old_images {
            self.images_changed = true;
        }
        if !existed {
            self.nodes_changed = true;
        }
    }

    /// A node was deleted; its pods stay counted until they are deleted too.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            if !info.images.is_empty() {
                self.images_changed = true;
            }
            info.node = None;
            info.generation += 1;
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
            self.nodes_changed = true;
            self.dirty.insert(name.to_owned());
        }
    }

    /// How many nodes (with a Node object) and pods the cache has.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.nodes.values().filter(|n| n.node.is_some()).count(),
            self.pods.len(),
        )
    }

    /// The node as the cache has it (tests and preemption).
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The snapshot for the next cycle: only nodes changed since the last one are
    /// copied; the node list is rebuilt only when nodes came or went.
    pub fn update_snapshot(&mut self) -> Arc<Snapshot> {
        if self.nodes_changed {
            let mut names: Vec<&String> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.node.is_some())
                .map(|(name, _)| name)
                .collect();
            names.sort();
            let nodes: Vec<Arc<NodeInfo>> = names
                .iter()
                .map(|name| Arc::new(self.nodes[*name].clone()))
                .collect();
            let index = names
                .into_iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect();
            self.snapshot.nodes = Arc::new(nodes);
            self.snapshot.index = Arc::new(index);
        } else if !self.dirty.is_empty() {
            let nodes = Arc::make_mut(&mut self.snapshot.nodes);
            for name in &self.dirty {
                if let (Some(i), Some(info)) = (self.snapshot.index.get(name), self.nodes.get(name))
                {
                    nodes[*i] = Arc::new(info.clone());
                }
            }
        }
        if self.images_changed || self.nodes_changed {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for n in self.snapshot.nodes.iter() {
                for image in n.images.keys() {
                    *counts.entry(image.clone()).or_default() += 1;
                }
            }
            self.snapshot.image_node_counts = Arc::new(counts);
        }
        self.dirty.clear();
        self.nodes_changed = false;
        self.images_changed = false;
        Arc::new(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "pods": "10"}}})).unwrap())
    }

    fn pod(uid: &str, node: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "ns", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn an_assumed_pod_counts_until_forgotten_or_confirmed() {
        let mut cache = Cache::new();
        cache.add_or_update_node(node("n1", "4"));
        cache.add_or_update_node(node("n2", "4"));
        let s = cache.update_snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("n1").unwrap().requested.milli_cpu, 0);

        cache
            .assume_pod(Arc::new(PodInfo::new(pod("a", "n1", "1"))))
            .unwrap();
        assert_eq!(
            cache.assume_pod(Arc::new(PodInfo::new(pod("a", "n1", "1")))),
            Err(CacheError::AlreadyCached("ns/a".into()))
        );
        let s2 = cache.update_snapshot();
        assert_eq!(s2.get("n1").unwrap().requested.milli_cpu, 1000);
        // the earlier snapshot is unchanged (cycles in flight keep theirs)
        assert_eq!(s.get("n1").unwrap().requested.milli_cpu, 0);

        cache.forget_pod("a").unwrap();
        assert_eq!(
            cache
                .update_snapshot()
                .get("n1")
                .unwrap()
                .requested
                .milli_cpu,
            0
        );

        // assumed on n1, confirmed by the informer on n2
        cache
            .assume_pod(Arc::new(PodInfo::new(pod("b", "n1", "1"))))
            .unwrap();
        cache.finish_binding("b");
        cache.add_pod(Arc::new(pod("b", "n2", "1")));
        assert!(!cache.is_assumed("b"));
        let s = cache.update_snapshot();
        assert_eq!(s.get("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(s.get("n2").unwrap().requested.milli_cpu, 1000);
        assert!(
            cache.forget_pod("b").is_err(),
            "confirmed pods are not forgotten"
        );
    }

    #[test]
    fn a_deleted_node_leaves_the_snapshot_but_its_pods_stay_counted() {
        let mut cache = Cache::new();
        cache.add_or_update_node(node("n1", "4"));
        cache.add_pod(Arc::new(pod("a", "n1", "1")));
        cache.remove_node("n1");
        assert!(cache.update_snapshot().get("n1").is_none());
        assert_eq!(cache.node("n1").unwrap().pods.len(), 1);
        // the node comes back: its pod is still there
        cache.add_or_update_node(node("n1", "4"));
        assert_eq!(
            cache
                .update_snapshot()
                .get("n1")
                .unwrap()
                .requested
                .milli_cpu,
            1000
        );
        cache.remove_pod("a");
        cache.remove_node("n1");
        assert!(cache.node("n1").is_none());
        assert_eq!(cache.counts(), (0, 0));
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut cache = Cache::new();
        cache.add_pod(Arc::new(pod("a", "later", "2")));
        assert!(cache.update_snapshot().is_empty());
        cache.add_or_update_node(node("later", "4"));
        assert_eq!(
            cache
                .update_snapshot()
                .get("later")
                .unwrap()
                .requested
                .milli_cpu,
            2000
        );
    }
}
