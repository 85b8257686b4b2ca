//! VolumeZone: upstream's `volumezone` plugin. A pod's bound volumes labelled with a
//! zone or region (`topology.kubernetes.io/*` or the deprecated `failure-domain.beta.
//! kubernetes.io/*`) fit only nodes in that zone or region; nodes without any such label
//! take every volume. Unbound `WaitForFirstConsumer` claims are VolumeBinding's concern.
//! PreFilter skips pods whose volumes carry no such labels.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume};

use crate::framework::registry::{Handle, VolumeListers};
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, NodeInfo,
    Plugin, PodInfo, PreFilterPlugin, PreFilterResult, Status,
};
use crate::plugins::volume_binding::claim_class;

/// The plugin's name.
pub const NAME: &str = "VolumeZone";

/// The cycle-state key of the pod's volume topologies.
const PRE_FILTER_STATE_KEY: &str = "PreFilterVolumeZone";

/// The reason for a node outside a volume's zone (upstream's `ErrReasonConflict`).
pub const ERR_REASON_CONFLICT: &str = "node(s) had no available volume zone";

const ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
const REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";

/// The labels compared, in upstream's order (`topologyLabels`).
const TOPOLOGY_LABELS: [&str; 4] = [ZONE_BETA, REGION_BETA, ZONE, REGION];

/// Checks that nodes are in the zones and regions of the pod's volumes.
pub struct VolumeZone {
    volumes: VolumeListers,
}

/// One volume label: its key and the zones it allows (upstream's `pvTopology`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Topology {
    key: &'static str,
    values: BTreeSet<String>,
}

/// The pod's volume topologies, as PreFilter found them.
#[derive(Clone, Debug)]
struct PreFilterState(Vec<Topology>);

/// A multi-zone label value `a__b` as its zones (upstream's `LabelZonesToSet`); `None`
/// when a zone is empty.
fn zones_of(value: &str) -> Option<BTreeSet<String>> {
    let zones: BTreeSet<String> = value.split("__").map(str::to_owned).collect();
    (!zones.iter().any(String::is_empty)).then_some(zones)
}

fn topologies_of(pv: &PersistentVolume) -> Vec<Topology> {
    let Some(labels) = pv.metadata.labels.as_ref() else {
        return Vec::new();
    };
    TOPOLOGY_LABELS
        .iter()
        .filter_map(|key| {
            let values = zones_of(labels.get(*key)?)?;
            Some(Topology { key, values })
        })
        .collect()
}

/// The GA key for a beta one (upstream's `translateToGALabel`).
fn ga_label(key: &str) -> &str {
    match key {
        ZONE_BETA => ZONE,
        REGION_BETA => REGION,
        other => other,
    }
}

/// Whether `node` is in every volume topology (upstream's Filter after its state).
fn node_fits(topologies: &[Topology], node: &Node) -> bool {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return true;
    };
    // a node with no zone or region labels takes any volume
    if !TOPOLOGY_LABELS.iter().any(|k| labels.contains_key(*k)) {
        return true;
    }
    topologies.iter().all(|t| {
        labels
            .get(t.key)
            .or_else(|| labels.get(ga_label(t.key)))
            .is_some_and(|v| t.values.contains(v))
    })
}

impl VolumeZone {
    /// A plugin reading claims, volumes and classes from `volumes`.
    pub fn new(volumes: VolumeListers) -> VolumeZone {
        VolumeZone { volumes }
    }

    /// Upstream's `getPVbyPod`: the topologies of the pod's bound volumes, or why the
    /// pod cannot be scheduled.
    fn topologies_for(&self, pod: &PodInfo) -> Result<Vec<Topology>, Status> {
        let mut out = Vec::new();
        let volumes = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or(&[]);
        for v in volumes {
            let Some(source) = v.persistent_volume_claim.as_ref() else {
                continue;
            };
            let claim = &source.claim_name;
            if claim.is_empty() {
                return Err(Status::unresolvable("PersistentVolumeClaim had no name"));
            }
            let Some(pvc) = self.volumes.pvc(pod.namespace(), claim) else {
                return Err(Status::unresolvable(format!(
                    "persistentvolumeclaim {claim:?} not found"
                )));
            };
            let pv_name = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or("");
            if pv_name.is_empty() {
                let class = claim_class(&pvc);
                if class.is_empty() {
                    return Err(Status::unresolvable(
                        "PersistentVolumeClaim had no pv name and storageClass name",
                    ));
                }
                let Some(sc) = self.volumes.storage_class(class) else {
                    return Err(Status::unresolvable(format!(
                        "storageclass.storage.k8s.io {class:?} not found"
                    )));
                };
                match sc.volume_binding_mode.as_deref() {
                    None => {
                        return Err(Status::unresolvable(format!(
                            "VolumeBindingMode not set for StorageClass {class:?}"
                        )));
                    }
                    // bound later, on the node chosen: VolumeBinding checks it then
                    Some("WaitForFirstConsumer") => continue,
                    Some(_) => return Err(Status::unresolvable("PersistentVolume had no name")),
                }
            }
            let Some(pv) = self.volumes.pv(pv_name) else {
                return Err(Status::unresolvable(format!(
                    "persistentvolume {pv_name:?} not found"
                )));
            };
            out.extend(topologies_of(&pv));
        }
        Ok(out)
    }
}

impl Plugin for VolumeZone {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // upstream's registrations; their hints need the storage objects, which our
        // storage events do not carry
        let add_or_update = ActionType::ADD.or(ActionType::UPDATE);
        vec![
            ClusterEventWithHint::on(EventResource::StorageClass, ActionType::ADD),
            ClusterEventWithHint::on(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
            ),
            ClusterEventWithHint::on(EventResource::PersistentVolumeClaim, add_or_update),
            ClusterEventWithHint::on(EventResource::PersistentVolume, add_or_update),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeZone {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        match self.topologies_for(pod) {
            Err(s) => (None, s),
            Ok(t) if t.is_empty() => (None, Status::skip()),
            Ok(t) => {
                state.write(PRE_FILTER_STATE_KEY, PreFilterState(t));
                (None, Status::success())
            }
        }
    }
}

impl FilterPlugin for VolumeZone {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let fallback;
        let topologies = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(s) => &s.0,
            // upstream computes them here when PreFilter did not run
            None => match self.topologies_for(pod) {
                Ok(t) => {
                    fallback = t;
                    &fallback
                }
                Err(s) => return s,
            },
        };
        if node_fits(topologies, node.node()) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_CONFLICT)
        }
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(VolumeZone::new(handle.volumes.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn listers() -> VolumeListers {
        let v = VolumeListers::default();
        let pv = |name: &str, labels: Value| {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
        };
        v.put_pv(pv("Vol_1", json!({ZONE_BETA: "us-west1-a"})));
        v.put_pv(pv(
            "Vol_2",
            json!({REGION_BETA: "us-west1", "uselessLabel": "none"}),
        ));
        v.put_pv(pv("Vol_3", json!({REGION_BETA: "us-west1"})));
        v.put_pv(pv("Vol_Stable_1", json!({ZONE: "us-west1-a"})));
        v.put_pv(pv("Vol_Multi", json!({ZONE: "us-west1-a__us-west1-b"})));
        v.put_pv(pv("Vol_None", json!({})));
        for (claim, vol) in [
            ("PVC_1", "Vol_1"),
            ("PVC_2", "Vol_2"),
            ("PVC_3", "Vol_3"),
            ("PVC_Stable_1", "Vol_Stable_1"),
            ("PVC_Multi", "Vol_Multi"),
            ("PVC_None", "Vol_None"),
            ("PVC_NoPV", "Vol_Missing"),
        ] {
            v.put_pvc(
                serde_json::from_value(json!({"metadata": {"name": claim, "namespace": "default"}, "spec": {"volumeName": vol}}))
                    .unwrap(),
            );
        }
        v.put_pvc(serde_json::from_value(json!({"metadata": {"name": "PVC_WFFC", "namespace": "default"}, "spec": {"storageClassName": "wffc"}})).unwrap());
        v.put_pvc(serde_json::from_value(json!({"metadata": {"name": "PVC_Immediate", "namespace": "default"}, "spec": {"storageClassName": "immediate"}})).unwrap());
        v.put_pvc(
            serde_json::from_value(
                json!({"metadata": {"name": "PVC_NoClass", "namespace": "default"}, "spec": {}}),
            )
            .unwrap(),
        );
        v.put_storage_class(serde_json::from_value(json!({"metadata": {"name": "wffc"}, "provisioner": "p", "volumeBindingMode": "WaitForFirstConsumer"})).unwrap());
        v.put_storage_class(serde_json::from_value(json!({"metadata": {"name": "immediate"}, "provisioner": "p", "volumeBindingMode": "Immediate"})).unwrap());
        v
    }

    fn pod(claims: &[&str]) -> PodInfo {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "c"}], "volumes": volumes}
            }))
            .unwrap(),
        )
    }

    fn node(labels: Value) -> NodeInfo {
        NodeInfo::new(
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap(),
        )
    }

    fn run(claims: &[&str], labels: Value) -> Status {
        let pl = VolumeZone::new(listers());
        let p = pod(claims);
        let mut state = CycleState::default();
        let (_, s) = pl.pre_filter(&mut state, &p, &[]);
        if !s.is_success() {
            return s;
        }
        pl.filter(&state, &p, &node(labels))
    }

    fn conflict(s: Status) {
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_CONFLICT);
    }

    #[test]
    fn pods_without_labelled_volumes_skip() {
        assert!(run(&[], json!({ZONE: "us-west1-a"})).is_skip());
        assert!(run(&["PVC_None"], json!({ZONE: "x"})).is_skip());
        assert!(run(&["PVC_WFFC"], json!({ZONE: "x"})).is_skip());
    }

    #[test]
    fn filter_cases_from_upstream() {
        // node without zone labels takes anything
        assert!(run(&["PVC_1"], json!({"uselessLabel": "none"})).is_success());
        // beta zone label matches
        assert!(
            run(
                &["PVC_1"],
                json!({ZONE_BETA: "us-west1-a", "uselessLabel": "none"})
            )
            .is_success()
        );
        // beta region label matches
        assert!(run(&["PVC_2"], json!({REGION_BETA: "us-west1"})).is_success());
        // beta zone mismatch
        conflict(run(&["PVC_1"], json!({ZONE_BETA: "no_us-west1-a"})));
        // beta region mismatch
        conflict(run(&["PVC_2"], json!({REGION_BETA: "no_us-west1"})));
        // beta volume label against a GA node label
        assert!(run(&["PVC_1"], json!({ZONE: "us-west1-a"})).is_success());
        conflict(run(&["PVC_1"], json!({ZONE: "us-west1-b"})));
        // GA volume label against a beta-only node: no GA key on the node
        conflict(run(&["PVC_Stable_1"], json!({ZONE_BETA: "us-west1-a"})));
        assert!(run(&["PVC_Stable_1"], json!({ZONE: "us-west1-a"})).is_success());
        // multi-zone values
        assert!(run(&["PVC_Multi"], json!({ZONE: "us-west1-b"})).is_success());
        conflict(run(&["PVC_Multi"], json!({ZONE: "us-west1-c"})));
        // two volumes: both must fit
        conflict(run(
            &["PVC_1", "PVC_2"],
            json!({ZONE_BETA: "us-west1-a", REGION_BETA: "other"}),
        ));
        assert!(
            run(
                &["PVC_1", "PVC_3"],
                json!({ZONE_BETA: "us-west1-a", REGION_BETA: "us-west1"})
            )
            .is_success()
        );
    }

    #[test]
    fn unresolvable_claims() {
        let unresolvable = |s: Status, msg: &str| {
            assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
            assert_eq!(s.message(), msg);
        };
        unresolvable(
            run(&["missing"], json!({})),
            r#"persistentvolumeclaim "missing" not found"#,
        );
        unresolvable(
            run(&["PVC_NoPV"], json!({})),
            r#"persistentvolume "Vol_Missing" not found"#,
        );
        unresolvable(
            run(&["PVC_Immediate"], json!({})),
            "PersistentVolume had no name",
        );
        unresolvable(
            run(&["PVC_NoClass"], json!({})),
            "PersistentVolumeClaim had no pv name and storageClass name",
        );
    }

    #[test]
    fn multi_zone_values_parse() {
        assert_eq!(zones_of("a__b").unwrap().len(), 2);
        assert!(zones_of("a____b").is_none());
    }
}
