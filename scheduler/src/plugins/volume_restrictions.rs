//! VolumeRestrictions: upstream's `volumerestrictions` plugin. Two pods may not share a
//! GCE PD, AWS EBS, RBD or iSCSI inline disk on one node unless both mount it read-only
//! (EBS: never), and a claim with the ReadWriteOncePod access mode may be used by one
//! pod only, cluster-wide. PreFilter skips pods with neither kind of volume.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Volume};

use crate::framework::events::EventObject;
use crate::framework::registry::{Handle, VolumeListers};
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin, NodeInfo,
    Plugin, PodInfo, PreFilterPlugin, PreFilterResult, QueueingHint, Status,
};

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";

/// The cycle-state key of the PreFilter state.
const PRE_FILTER_STATE_KEY: &str = "PreFilterVolumeRestrictions";

/// The reason for a node where another pod holds one of the pod's disks (upstream's
/// `ErrReasonDiskConflict`).
pub const ERR_REASON_DISK_CONFLICT: &str = "node(s) had no available disk";
/// The reason when a ReadWriteOncePod claim of the pod is in use (upstream's
/// `ErrReasonReadWriteOncePodConflict`).
pub const ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// Checks disk conflicts and ReadWriteOncePod claims.
pub struct VolumeRestrictions {
    volumes: VolumeListers,
}

/// What PreFilter found: the pod's ReadWriteOncePod claims (names in its namespace)
/// and how many scheduled pods use them.
#[derive(Clone, Debug, Default)]
struct PreFilterState {
    namespace: String,
    read_write_once_pod_claims: HashSet<String>,
    conflicting_claim_refs: i64,
}

impl PreFilterState {
    /// How many of the state's claims `pod` uses.
    fn refs_of(&self, pod: &Pod) -> i64 {
        if pod.metadata.namespace.as_deref().unwrap_or("default") != self.namespace {
            return 0;
        }
        let n = volumes_of(pod)
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .filter(|c| self.read_write_once_pod_claims.contains(&c.claim_name))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

fn volumes_of(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[])
}

/// Whether a volume is of a kind checked for disk conflicts (upstream's
/// `needsRestrictionsCheck`).
fn needs_restrictions_check(v: &Volume) -> bool {
    v.gce_persistent_disk.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.rbd.is_some()
        || v.iscsi.is_some()
}

/// Whether `volume` conflicts with a volume of `existing` (upstream's
/// `isVolumeConflict`).
fn is_volume_conflict(volume: &Volume, existing: &Pod) -> bool {
    let ro = |r: Option<bool>| r.unwrap_or(false);
    volumes_of(existing).iter().any(|ev| {
        if let (Some(d), Some(e)) = (&volume.gce_persistent_disk, &ev.gce_persistent_disk) {
            if d.pd_name == e.pd_name && !(ro(d.read_only) && ro(e.read_only)) {
                return true;
            }
        }
        if let (Some(d), Some(e)) = (&volume.aws_elastic_block_store, &ev.aws_elastic_block_store) {
            if d.volume_id == e.volume_id {
                return true;
            }
        }
        if let (Some(d), Some(e)) = (&volume.iscsi, &ev.iscsi) {
            if d.iqn == e.iqn && !(ro(d.read_only) && ro(e.read_only)) {
                return true;
            }
        }
        if let (Some(d), Some(e)) = (&volume.rbd, &ev.rbd) {
            let overlap = d.monitors.iter().any(|m| e.monitors.contains(m));
            if overlap
                && d.pool == e.pool
                && d.image == e.image
                && !(ro(d.read_only) && ro(e.read_only))
            {
                return true;
            }
        }
        false
    })
}

/// Whether `pod`'s disks conflict with none of `pods` (upstream's
/// `satisfyVolumeConflicts`).
fn satisfies_volume_conflicts<'a>(pod: &Pod, mut pods: impl Iterator<Item = &'a Pod>) -> bool {
    let checked: Vec<&Volume> = volumes_of(pod)
        .iter()
        .filter(|v| needs_restrictions_check(v))
        .collect();
    if checked.is_empty() {
        return true;
    }
    !pods.any(|existing| checked.iter().any(|v| is_volume_conflict(v, existing)))
}

/// Requeues after a pod in the same namespace was deleted when it held one of the
/// pod's disks or used one of its claims (upstream's `isSchedulableAfterPodDeleted`).
fn schedulable_after_pod_deleted(
    pod: &PodInfo,
    old: Option<&EventObject>,
    _new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Pod(deleted)) = old else {
        return QueueingHint::Queue;
    };
    if deleted.metadata.namespace.as_deref().unwrap_or("default") != pod.namespace() {
        return QueueingHint::Skip;
    }
    if !satisfies_volume_conflicts(&pod.pod, std::iter::once(&**deleted)) {
        return QueueingHint::Queue;
    }
    // upstream does not look the claims up here (too costly in a hint): any shared
    // claim name may have been the ReadWriteOncePod conflict
    let claims: HashSet<&str> = volumes_of(deleted)
        .iter()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    let shares = volumes_of(&pod.pod)
        .iter()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .any(|c| claims.contains(c.claim_name.as_str()));
    if shares {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

impl VolumeRestrictions {
    /// A plugin reading claims from `volumes`.
    pub fn new(volumes: VolumeListers) -> VolumeRestrictions {
        VolumeRestrictions { volumes }
    }

    /// The pod's claims with the ReadWriteOncePod access mode; a missing claim is
    /// `Err` with upstream's NotFound message.
    fn read_write_once_pod_claims(&self, pod: &PodInfo) -> Result<HashSet<String>, String> {
        let mut claims = HashSet::new();
        for v in volumes_of(&pod.pod) {
            let Some(source) = v.persistent_volume_claim.as_ref() else {
                continue;
            };
            let Some(pvc) = self.volumes.pvc(pod.namespace(), &source.claim_name) else {
                return Err(format!(
                    "persistentvolumeclaim {:?} not found",
                    source.claim_name
                ));
            };
            let rwop = pvc
                .spec
                .as_ref()
                .and_then(|s| s.access_modes.as_ref())
                .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"));
            if rwop {
                claims.insert(source.claim_name.clone());
            }
        }
        Ok(claims)
    }
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // upstream's registrations with queueing hints on; the claim-add hint needs the
        // claim, which our storage events do not carry, so every claim add requeues
        vec![
            ClusterEventWithHint::with_hint(
                EventResource::Pod,
                ActionType::DELETE,
                schedulable_after_pod_deleted,
            ),
            ClusterEventWithHint::on(EventResource::Node, ActionType::ADD),
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

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let volumes = volumes_of(&pod.pod);
        // the hot path: pods with neither disks nor claims have nothing to check
        let needs_check = volumes.iter().any(needs_restrictions_check);
        if !needs_check && !volumes.iter().any(|v| v.persistent_volume_claim.is_some()) {
            return (None, Status::skip());
        }
        let claims = match self.read_write_once_pod_claims(pod) {
            Ok(claims) => claims,
            Err(not_found) => return (None, Status::unresolvable(not_found)),
        };
        let mut s = PreFilterState {
            namespace: pod.namespace().to_owned(),
            read_write_once_pod_claims: claims,
            conflicting_claim_refs: 0,
        };
        if !s.read_write_once_pod_claims.is_empty() {
            // upstream's IsPVCUsedByPods over the snapshot: one user at most
            let used: HashSet<&str> = state
                .snapshot
                .nodes
                .iter()
                .flat_map(|n| n.pods.iter())
                .filter(|p| p.namespace() == s.namespace)
                .flat_map(|p| volumes_of(&p.pod).iter())
                .filter_map(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.as_str())
                .collect();
            s.conflicting_claim_refs = s
                .read_write_once_pod_claims
                .iter()
                .filter(|c| used.contains(c.as_str()))
                .count() as i64;
        }
        if !needs_check && s.conflicting_claim_refs == 0 {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, s);
        (None, Status::success())
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        added: &Arc<PodInfo>,
        _node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        s.conflicting_claim_refs += s.refs_of(&added.pod);
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        s.conflicting_claim_refs -= s.refs_of(&removed.pod);
        Status::success()
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !satisfies_volume_conflicts(&pod.pod, node.pods.iter().map(|p| &*p.pod)) {
            return Status::new(Code::Unschedulable, ERR_REASON_DISK_CONFLICT);
        }
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        // Unschedulable, not unresolvable: preempting the claim's user may help
        if s.conflicting_claim_refs > 0 {
            return Status::new(Code::Unschedulable, ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT);
        }
        Status::success()
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(VolumeRestrictions::new(handle.volumes.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Snapshot;
    use serde_json::{Value, json};

    fn pod(name: &str, volumes: Value, node: Option<&str>) -> PodInfo {
        let mut spec = json!({"containers": [{"name": "c"}], "volumes": volumes});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": spec
            }))
            .unwrap(),
        )
    }

    fn node(pods: &[PodInfo]) -> NodeInfo {
        let mut n =
            NodeInfo::new(serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap());
        for p in pods {
            n.add_pod(Arc::new(p.clone()));
        }
        n
    }

    fn plugin(pvcs: &[(&str, &str)]) -> VolumeRestrictions {
        let volumes = VolumeListers::default();
        for (name, mode) in pvcs {
            volumes.put_pvc(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"accessModes": [mode]}
                }))
                .unwrap(),
            );
        }
        VolumeRestrictions::new(volumes)
    }

    /// PreFilter over a snapshot holding `node`, then Filter on it.
    fn run(pl: &VolumeRestrictions, p: &PodInfo, n: NodeInfo) -> Status {
        let snapshot = Arc::new(Snapshot::from_nodes(vec![n]));
        let n = snapshot.nodes[0].clone();
        let mut state = CycleState::new(snapshot);
        let (_, s) = pl.pre_filter(&mut state, p, &[]);
        if !s.is_success() {
            return s;
        }
        pl.filter(&state, p, &n)
    }

    fn gce(pd: &str, ro: bool) -> Value {
        json!([{"name": "v", "gcePersistentDisk": {"pdName": pd, "readOnly": ro}}])
    }

    #[test]
    fn pods_without_disks_or_claims_skip() {
        let pl = plugin(&[]);
        let p = pod("p", json!([{"name": "e", "emptyDir": {}}]), None);
        assert!(run(&pl, &p, node(&[])).is_skip());
        let p = pod("p", json!([]), None);
        assert!(run(&pl, &p, node(&[])).is_skip());
    }

    #[test]
    fn gce_pd_conflicts_unless_both_read_only() {
        // upstream's TestGCEDiskConflicts
        let pl = plugin(&[]);
        let existing = pod("e", gce("foo", false), Some("n"));
        assert!(
            run(
                &pl,
                &pod("p", gce("bar", false), None),
                node(std::slice::from_ref(&existing))
            )
            .is_success()
        );
        let s = run(&pl, &pod("p", gce("foo", false), None), node(&[existing]));
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.message(), ERR_REASON_DISK_CONFLICT);
        let ro = pod("e", gce("foo", true), Some("n"));
        assert!(run(&pl, &pod("p", gce("foo", true), None), node(&[ro])).is_success());
    }

    #[test]
    fn aws_ebs_conflicts_even_read_only() {
        let pl = plugin(&[]);
        let ebs = |id: &str| json!([{"name": "v", "awsElasticBlockStore": {"volumeID": id, "readOnly": true}}]);
        let existing = pod("e", ebs("foo"), Some("n"));
        assert!(
            run(
                &pl,
                &pod("p", ebs("bar"), None),
                node(std::slice::from_ref(&existing))
            )
            .is_success()
        );
        assert_eq!(
            run(&pl, &pod("p", ebs("foo"), None), node(&[existing])).code,
            Code::Unschedulable
        );
    }

    #[test]
    fn rbd_conflicts_on_shared_monitor_pool_and_image() {
        let pl = plugin(&[]);
        let rbd = |mons: &[&str], image: &str| json!([{"name": "v", "rbd": {"monitors": mons, "pool": "p", "image": image}}]);
        let existing = pod("e", rbd(&["a", "b"], "foo"), Some("n"));
        assert_eq!(
            run(
                &pl,
                &pod("p", rbd(&["b", "c"], "foo"), None),
                node(std::slice::from_ref(&existing))
            )
            .code,
            Code::Unschedulable
        );
        assert!(
            run(
                &pl,
                &pod("p", rbd(&["c", "d"], "foo"), None),
                node(std::slice::from_ref(&existing))
            )
            .is_success()
        );
        assert!(run(&pl, &pod("p", rbd(&["a"], "bar"), None), node(&[existing])).is_success());
    }

    #[test]
    fn iscsi_conflicts_on_the_same_iqn() {
        let pl = plugin(&[]);
        let iscsi = |iqn: &str| json!([{"name": "v", "iscsi": {"targetPortal": "127.0.0.1:3260", "iqn": iqn, "lun": 0}}]);
        let existing = pod("e", iscsi("iqn.2016-12.server:storage.target01"), Some("n"));
        assert_eq!(
            run(
                &pl,
                &pod("p", iscsi("iqn.2016-12.server:storage.target01"), None),
                node(std::slice::from_ref(&existing))
            )
            .code,
            Code::Unschedulable
        );
        assert!(
            run(
                &pl,
                &pod("p", iscsi("iqn.2017-12.server:storage.target01"), None),
                node(&[existing])
            )
            .is_success()
        );
    }

    #[test]
    fn read_write_once_pod_claims_may_have_one_user() {
        // upstream's TestAccessModeConflicts
        let pl = plugin(&[("rwop", "ReadWriteOncePod"), ("rwo", "ReadWriteOnce")]);
        let claim = |c: &str| json!([{"name": "v", "persistentVolumeClaim": {"claimName": c}}]);
        let user = pod("user", claim("rwop"), Some("other"));
        // the claim's user is on another node: still a conflict, on every node
        let s = run(&pl, &pod("p", claim("rwop"), None), {
            let mut n = node(&[]);
            n.add_pod(Arc::new(user.clone()));
            n
        });
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.message(), ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT);
        // nobody uses it
        assert!(run(&pl, &pod("p", claim("rwop"), None), node(&[])).is_skip());
        // other modes never conflict
        assert!(
            run(
                &pl,
                &pod("p", claim("rwo"), None),
                node(&[pod("u", claim("rwo"), Some("n"))])
            )
            .is_skip()
        );
    }

    #[test]
    fn a_missing_claim_is_unresolvable() {
        let pl = plugin(&[]);
        let p = pod(
            "p",
            json!([{"name": "v", "persistentVolumeClaim": {"claimName": "gone"}}]),
            None,
        );
        let s = run(&pl, &p, node(&[]));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), r#"persistentvolumeclaim "gone" not found"#);
    }

    #[test]
    fn preemption_what_ifs_count_the_claims_users() {
        let pl = plugin(&[("rwop", "ReadWriteOncePod")]);
        let claim = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "rwop"}}]);
        let user = pod("user", claim.clone(), Some("n"));
        let snapshot = Arc::new(Snapshot::from_nodes(vec![node(std::slice::from_ref(
            &user,
        ))]));
        let n = snapshot.nodes[0].clone();
        let mut state = CycleState::new(snapshot);
        let p = pod("p", claim, None);
        assert!(pl.pre_filter(&mut state, &p, &[]).1.is_success());
        assert_eq!(pl.filter(&state, &p, &n).code, Code::Unschedulable);
        assert!(pl.remove_pod(&mut state, &p, &user, &n).is_success());
        assert!(pl.filter(&state, &p, &n).is_success());
        assert!(pl.add_pod(&mut state, &p, &Arc::new(user), &n).is_success());
        assert_eq!(pl.filter(&state, &p, &n).code, Code::Unschedulable);
    }

    #[test]
    fn pod_deleted_hint() {
        let target = pod("p", gce("foo", false), None);
        let ev = |p: PodInfo| EventObject::Pod(p.pod);
        let holder = ev(pod("d", gce("foo", false), Some("n")));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&holder), None),
            QueueingHint::Queue
        );
        let other = ev(pod("d", gce("bar", false), Some("n")));
        assert_eq!(
            schedulable_after_pod_deleted(&target, Some(&other), None),
            QueueingHint::Skip
        );
        let claim = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]);
        let claimer = pod("p2", claim.clone(), None);
        assert_eq!(
            schedulable_after_pod_deleted(&claimer, Some(&ev(pod("d", claim, Some("n")))), None),
            QueueingHint::Queue
        );
    }
}
