//! NodeVolumeLimits: upstream's `nodevolumelimits` plugin (its CSI limits). Per CSI
//! driver, the unique volumes of the node's pods plus the pod's new ones may not exceed
//! the count the node's CSINode allows for that driver. Claims are counted through their
//! bound volume's CSI source, or, unbound, through their class's provisioner. PreFilter
//! skips pods without claims or ephemeral volumes.
//!
//! Not done: in-tree volumes migrated to CSI drivers (upstream translates them), and the
//! VolumeAttachments counted besides the pods' volumes.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::CSINode;

use crate::framework::events::EventObject;
use crate::framework::registry::{Handle, VolumeListers};
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, NodeInfo,
    Plugin, PodInfo, PreFilterPlugin, PreFilterResult, QueueingHint, Status,
};
use crate::plugins::volume_binding::{claim_class, claim_name_of, ephemeral_claim_is_for_pod};

/// The plugin's name.
pub const NAME: &str = "NodeVolumeLimits";

/// The reason for a node over a driver's limit (upstream's
/// `ErrReasonMaxVolumeCountExceeded`).
pub const ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED: &str = "node(s) exceed max volume count";

/// Counts CSI volumes per driver against the CSINode's allocatable counts.
pub struct CsiLimits {
    volumes: VolumeListers,
    /// Prefixes the handles made up for unbound claims so they collide with no real
    /// volume handle (upstream's `randomVolumeIDPrefix`).
    random_prefix: String,
}

/// Whether the pod has volumes this plugin counts.
fn counts_any(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| {
            vs.iter()
                .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        })
}

/// The per-driver limits of a CSINode (upstream's `getVolumeLimits`).
fn volume_limits(csi_node: Option<&CSINode>) -> HashMap<&str, i64> {
    csi_node
        .map(|n| {
            n.spec
                .drivers
                .iter()
                .filter_map(|d| {
                    let count = d.allocatable.as_ref()?.count?;
                    Some((d.name.as_str(), i64::from(count)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Requeues after a pod with counted volumes was deleted (upstream's
/// `isSchedulableAfterPodDeleted`, which also checks the node has a CSINode).
fn schedulable_after_pod_deleted(
    _pod: &PodInfo,
    old: Option<&EventObject>,
    _new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Pod(deleted)) = old else {
        return QueueingHint::Queue;
    };
    let bound = deleted
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if bound && counts_any(deleted) {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

impl CsiLimits {
    /// A plugin reading storage objects from `volumes`.
    pub fn new(volumes: VolumeListers) -> CsiLimits {
        CsiLimits {
            volumes,
            random_prefix: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The (driver, handle) a claim's volume counts as (upstream's `getCSIDriverInfo`):
    /// the bound volume's CSI source, else the class's provisioner with a made-up
    /// handle; `None` for non-CSI volumes and claims without a class.
    fn driver_info(&self, pvc: &PersistentVolumeClaim) -> Option<(String, String)> {
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .unwrap_or("");
        if !pv_name.is_empty() {
            if let Some(pv) = self.volumes.pv(pv_name) {
                // non-CSI volumes are not counted (in-tree migration is not done here)
                let csi = pv.spec.as_ref()?.csi.as_ref()?;
                return Some((csi.driver.clone(), csi.volume_handle.clone()));
            }
            // the volume is gone or not created yet: count by class, as upstream
        }
        let class = claim_class(pvc);
        if class.is_empty() {
            // immediate binding: the claim is bound before scheduling, or never
            return None;
        }
        let sc = self.volumes.storage_class(class)?;
        let handle = format!(
            "{}-{}/{}",
            self.random_prefix,
            pvc.metadata.namespace.as_deref().unwrap_or(""),
            pvc.metadata.name.as_deref().unwrap_or("")
        );
        Some((sc.provisioner.clone(), handle))
    }

    /// Adds `pod`'s CSI volumes to `out` as unique name → driver (upstream's
    /// `filterAttachableVolumes`). For the new pod a missing claim is an error; for
    /// pods already on the node it is not counted.
    fn attachable_volumes(
        &self,
        pod: &Pod,
        new_pod: bool,
        out: &mut HashMap<String, String>,
    ) -> Result<(), Status> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or(&[]);
        for v in volumes {
            let Some((name, ephemeral)) = claim_name_of(pod, v) else {
                // inline volumes count only when migrated to CSI, which is not done here
                continue;
            };
            if name.is_empty() {
                return Err(Status::error("PersistentVolumeClaim had no name"));
            }
            let Some(pvc) = self.volumes.pvc(namespace, &name) else {
                if new_pod {
                    return Err(Status::unresolvable(format!(
                        "looking up PVC {namespace}/{name}: persistentvolumeclaim {name:?} not found"
                    )));
                }
                continue;
            };
            if ephemeral {
                ephemeral_claim_is_for_pod(pod, &pvc).map_err(Status::error)?;
            }
            let Some((driver, handle)) = self.driver_info(&pvc) else {
                continue;
            };
            if driver.is_empty() || handle.is_empty() {
                continue;
            }
            out.insert(format!("{driver}/{handle}"), driver);
        }
        Ok(())
    }
}

impl Plugin for CsiLimits {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // upstream's registrations; the CSINode and claim hints need the objects, which
        // our storage events do not carry, and VolumeAttachment events are not produced
        vec![
            ClusterEventWithHint::on(
                EventResource::CsiNode,
                ActionType::ADD.or(ActionType::UPDATE),
            ),
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::DELETE,
                schedulable_after_pod_deleted,
            ),
            ClusterEventWithHint::on(EventResource::PersistentVolumeClaim, ActionType::ADD),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for CsiLimits {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        if counts_any(&pod.pod) {
            (None, Status::success())
        } else {
            (None, Status::skip())
        }
    }
}

impl FilterPlugin for CsiLimits {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let csi_node = self.volumes.csi_node(node.name());
        let mut new_volumes = HashMap::new();
        if let Err(s) = self.attachable_volumes(&pod.pod, true, &mut new_volumes) {
            return s;
        }
        if new_volumes.is_empty() {
            return Status::success();
        }
        let limits = volume_limits(csi_node.as_deref());
        if limits.is_empty() {
            return Status::success();
        }
        let mut attached = HashMap::new();
        for existing in &node.pods {
            if let Err(s) = self.attachable_volumes(&existing.pod, false, &mut attached) {
                return Status::error(s.message());
            }
        }
        let mut attached_count: HashMap<&str, i64> = HashMap::new();
        for (unique, driver) in &attached {
            // a volume the node already has costs nothing more
            new_volumes.remove(unique);
            *attached_count.entry(driver.as_str()).or_default() += 1;
        }
        let mut new_count: HashMap<&str, i64> = HashMap::new();
        for driver in new_volumes.values() {
            *new_count.entry(driver.as_str()).or_default() += 1;
        }
        for (driver, count) in new_count {
            if let Some(limit) = limits.get(driver) {
                let current = attached_count.get(driver).copied().unwrap_or(0);
                if current + count > *limit {
                    return Status::new(Code::Unschedulable, ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
                }
            }
        }
        Status::success()
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(CsiLimits::new(handle.volumes.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const DRIVER: &str = "ebs.csi.aws.com";

    fn listers(limit: Option<i32>) -> VolumeListers {
        let v = VolumeListers::default();
        for i in 0..4 {
            v.put_pv(
                serde_json::from_value(
                    json!({"metadata": {"name": format!("csi-ebs.csi.aws.com-{i}")},
                "spec": {"csi": {"driver": DRIVER, "volumeHandle": format!("vol-{i}")}}}),
                )
                .unwrap(),
            );
            v.put_pvc(serde_json::from_value(json!({"metadata": {"name": format!("csi-ebs.csi.aws.com-{i}"), "namespace": "default"},
                "spec": {"volumeName": format!("csi-ebs.csi.aws.com-{i}")}})).unwrap());
        }
        // a non-CSI volume
        v.put_pv(
            serde_json::from_value(
                json!({"metadata": {"name": "host"}, "spec": {"hostPath": {"path": "/x"}}}),
            )
            .unwrap(),
        );
        v.put_pvc(serde_json::from_value(json!({"metadata": {"name": "host", "namespace": "default"}, "spec": {"volumeName": "host"}})).unwrap());
        // unbound claims of a CSI class: counted through the provisioner
        v.put_storage_class(serde_json::from_value(json!({"metadata": {"name": "csi-sc"}, "provisioner": DRIVER, "volumeBindingMode": "WaitForFirstConsumer"})).unwrap());
        for name in ["unbound-0", "unbound-1"] {
            v.put_pvc(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"storageClassName": "csi-sc"}})).unwrap());
        }
        let mut drivers = vec![json!({"name": DRIVER, "nodeID": "n"})];
        if let Some(l) = limit {
            drivers[0]["allocatable"] = json!({"count": l});
        }
        v.put_csi_node(
            serde_json::from_value(
                json!({"metadata": {"name": "n"}, "spec": {"drivers": drivers}}),
            )
            .unwrap(),
        );
        v
    }

    fn pod(name: &str, claims: &[&str], node: Option<&str>) -> PodInfo {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        let mut spec = json!({"containers": [{"name": "c"}], "volumes": volumes});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        PodInfo::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": spec})).unwrap())
    }

    fn run(limit: Option<i32>, new: &[&str], existing: &[&[&str]]) -> Status {
        let pl = CsiLimits::new(listers(limit));
        let p = pod("p", new, None);
        let mut state = CycleState::default();
        let (_, s) = pl.pre_filter(&mut state, &p, &[]);
        if !s.is_success() {
            return s;
        }
        let mut n =
            NodeInfo::new(serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap());
        for (i, claims) in existing.iter().enumerate() {
            n.add_pod(Arc::new(pod(&format!("e{i}"), claims, Some("n"))));
        }
        pl.filter(&state, &p, &n)
    }

    fn exceeded(s: Status) {
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.message(), ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
    }

    #[test]
    fn pods_without_claims_skip() {
        assert!(run(Some(1), &[], &[]).is_skip());
    }

    #[test]
    fn counts_unique_csi_volumes_against_the_csinode_limit() {
        // upstream's TestCSILimits cases, by shape
        let c = |i: usize| {
            [
                "csi-ebs.csi.aws.com-0",
                "csi-ebs.csi.aws.com-1",
                "csi-ebs.csi.aws.com-2",
                "csi-ebs.csi.aws.com-3",
            ][i]
        };
        // fits: 2 new + 0 attached under 4
        assert!(run(Some(4), &[c(0), c(1)], &[]).is_success());
        // exceeds: 2 new + 2 attached over 3
        exceeded(run(Some(3), &[c(0), c(1)], &[&[c(2), c(3)]]));
        // a volume already on the node is not counted twice
        assert!(run(Some(2), &[c(0), c(1)], &[&[c(0), c(1)]]).is_success());
        assert!(run(Some(2), &[c(0)], &[&[c(0)], &[c(1)]]).is_success());
        exceeded(run(Some(2), &[c(2)], &[&[c(0)], &[c(1)]]));
        // no limit on the CSINode
        assert!(run(None, &[c(0), c(1)], &[&[c(2), c(3)]]).is_success());
        // non-CSI volumes are not counted
        assert!(run(Some(1), &["host", c(0)], &[]).is_success());
        // unbound claims count through their class's provisioner
        exceeded(run(Some(2), &["unbound-0", "unbound-1"], &[&[c(0)]]));
        assert!(run(Some(3), &["unbound-0", "unbound-1"], &[&[c(0)]]).is_success());
    }

    #[test]
    fn a_missing_claim_of_the_new_pod_is_unresolvable() {
        let s = run(Some(1), &["missing"], &[]);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.message(),
            r#"looking up PVC default/missing: persistentvolumeclaim "missing" not found"#
        );
        // a missing claim of a pod already there is not counted
        assert!(run(Some(1), &["csi-ebs.csi.aws.com-0"], &[&["missing"]]).is_success());
    }

    #[test]
    fn pod_deleted_hint_needs_counted_volumes() {
        let target = pod("p", &["csi-ebs.csi.aws.com-0"], None);
        let with = EventObject::Pod(pod("d", &["x"], Some("n")).pod);
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&with), None),
            QueueingHint::Queue
        );
        let without = EventObject::Pod(pod("d", &[], Some("n")).pod);
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&without), None),
            QueueingHint::Skip
        );
    }
}
