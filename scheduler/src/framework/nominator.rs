//! Pods nominated to a node (upstream's `nominator`): a preemptor waits for its
//! victims to leave, and meanwhile the node's room is kept for it — other pods of
//! lower or equal priority are filtered as if the nominated pods already ran there.
//! Filled from `status.nominatedNodeName` of pending pods and by preemption itself.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::PodInfo;

#[derive(Default)]
struct Inner {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<String, String>,
}

/// The nominated pods, shared by the queue, the informers and the frameworks.
#[derive(Default)]
pub struct Nominator {
    inner: RwLock<Inner>,
}

impl Nominator {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `pod` as nominated to `node`, or to its `status.nominatedNodeName`
    /// when `node` is `None`. With neither, a nomination made by this scheduler and not
    /// yet in the status is kept (with the newer pod), as upstream's
    /// `updateNominatedPodUnlocked`; [`Nominator::delete`] is what clears one.
    pub fn add(&self, pod: Arc<PodInfo>, node: Option<&str>) {
        let node = node.map(str::to_owned).or_else(|| {
            pod.pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty())
        });
        let uid = pod.uid().to_owned();
        let mut inner = self.write();
        let node = node.or_else(|| inner.node_of.get(&uid).cloned());
        remove(&mut inner, &uid);
        if let Some(node) = node {
            inner.node_of.insert(uid, node.clone());
            inner.by_node.entry(node).or_default().push(pod);
        }
    }

    /// Forgets the pod (bound, deleted, or no longer nominated).
    pub fn delete(&self, uid: &str) {
        remove(&mut self.write(), uid);
    }

    /// The pods nominated to `node`.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<PodInfo>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_node
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// The node `uid` is nominated to.
    pub fn node_of(&self, uid: &str) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .node_of
            .get(uid)
            .cloned()
    }

    /// Whether any pod is nominated anywhere (the common case is none: filtering skips
    /// the lookups).
    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .node_of
            .is_empty()
    }
}

fn remove(inner: &mut Inner, uid: &str) {
    if let Some(node) = inner.node_of.remove(uid) {
        if let Some(pods) = inner.by_node.get_mut(&node) {
            pods.retain(|p| p.uid() != uid);
            if pods.is_empty() {
                inner.by_node.remove(&node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, nominated: Option<&str>) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": uid, "namespace": "ns", "uid": uid},
                "status": {"nominatedNodeName": nominated}
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn nominations_follow_the_status_and_explicit_nodes() {
        let n = Nominator::default();
        assert!(n.is_empty());
        n.add(pod("a", Some("n1")), None);
        n.add(pod("b", None), Some("n1"));
        assert_eq!(n.pods_on("n1").len(), 2);
        n.add(pod("a", Some("n2")), None);
        assert_eq!(n.pods_on("n1").len(), 1);
        assert_eq!(n.node_of("a").as_deref(), Some("n2"));
        // an update without the status field keeps the nomination made in memory
        n.add(pod("b", None), None);
        assert_eq!(n.node_of("b").as_deref(), Some("n1"));
        n.delete("b");
        n.delete("a");
        assert!(n.is_empty());
        assert!(n.pods_on("n1").is_empty());
    }
}
