//! The PVC and PV protection controllers: finalizers that keep a claim from going away
//! while a pod uses it and a volume while it is bound, as upstream's
//! `pkg/controller/volume/pvcprotection` and `pvprotection`.
//!
//! Every live PersistentVolumeClaim gets `kubernetes.io/pvc-protection`; once it is
//! being deleted, the finalizer is removed when no scheduled, non-terminated pod names
//! it (the informer is asked first, then, as upstream, a live list of the namespace's
//! pods, since the cache may not show a pod just created). Every live
//! PersistentVolume gets `kubernetes.io/pv-protection`, removed once it is being
//! deleted and not `Bound`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The PVC protection controller's name.
pub const PVC_NAME: &str = "persistentvolumeclaim-protection-controller";
/// Its service account.
pub const PVC_SERVICE_ACCOUNT: &str = "pvc-protection-controller";
/// The PV protection controller's name.
pub const PV_NAME: &str = "persistentvolume-protection-controller";
/// Its service account.
pub const PV_SERVICE_ACCOUNT: &str = "pv-protection-controller";
/// The finalizer on claims.
pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
/// The finalizer on volumes.
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";
/// Upstream runs one worker for each.
const WORKERS: usize = 1;

fn has_finalizer(finalizers: &Option<Vec<String>>, finalizer: &str) -> bool {
    finalizers.iter().flatten().any(|f| f == finalizer)
}

/// What protection asks of an object: a finalizer to add, to remove, or nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Add,
    Remove,
    None,
}

/// Whether a claim's finalizer should be added or removed, given whether a pod uses it.
pub(crate) fn pvc_action(pvc: &PersistentVolumeClaim, in_use: impl FnOnce() -> bool) -> Action {
    let has = has_finalizer(&pvc.metadata.finalizers, PVC_FINALIZER);
    match (pvc.metadata.deletion_timestamp.is_some(), has) {
        (false, false) => Action::Add,
        (true, true) if !in_use() => Action::Remove,
        _ => Action::None,
    }
}

/// Whether a volume's finalizer should be added or removed.
pub(crate) fn pv_action(pv: &PersistentVolume) -> Action {
    let has = has_finalizer(&pv.metadata.finalizers, PV_FINALIZER);
    let bound = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    match (pv.metadata.deletion_timestamp.is_some(), has) {
        (false, false) => Action::Add,
        (true, true) if !bound => Action::Remove,
        _ => Action::None,
    }
}

/// Whether `pod` keeps `claim` (in the pod's namespace) in use, as upstream's
/// `podUsesPVC`: scheduled (a kubelet only sees scheduled pods, and refuses a claim
/// being deleted) and naming the claim directly, whatever its phase (a finished pod
/// may still have it mounted), or as its generic ephemeral volume (`<pod>-<volume>`)
/// unless the pod is shut down (deleted with no grace left: waiting only for its
/// finalizers, which may themselves wait for the claim).
pub(crate) fn pod_uses_claim(pod: &Pod, claim: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.node_name.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    let shut_down = pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0);
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    spec.volumes.iter().flatten().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == claim)
            || (!shut_down && v.ephemeral.is_some() && format!("{pod_name}-{}", v.name) == claim)
    })
}

fn claims_of(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| format!("{pod_name}-{}", v.name))
            }
        })
        .collect()
}

fn with_finalizer(finalizers: &Option<Vec<String>>, finalizer: &str, add: bool) -> Vec<String> {
    let mut list: Vec<String> = finalizers
        .iter()
        .flatten()
        .filter(|f| f.as_str() != finalizer)
        .cloned()
        .collect();
    if add {
        list.push(finalizer.to_owned());
    }
    list
}

struct PvcController {
    cx: Context,
    claims: Informer<PersistentVolumeClaim>,
    pods: Informer<Pod>,
}

impl PvcController {
    async fn in_use(&self, namespace: &str, claim: &str) -> Result<bool, kube::Error> {
        if self
            .pods
            .list_namespace(namespace)
            .iter()
            .any(|p| pod_uses_claim(p, claim))
        {
            return Ok(true);
        }
        // the cache may lag behind a pod just created: ask the apiserver too
        let pods: Api<Pod> = Api::namespaced(self.cx.client.clone(), namespace);
        let live = pods.list(&ListParams::default()).await?;
        Ok(live.items.iter().any(|p| pod_uses_claim(p, claim)))
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = split_key(key);
        let Some(pvc) = self.claims.get(namespace, name) else {
            return Ok(());
        };
        let needs_check = pvc.metadata.deletion_timestamp.is_some()
            && has_finalizer(&pvc.metadata.finalizers, PVC_FINALIZER);
        let in_use = if needs_check {
            self.in_use(namespace, name).await?
        } else {
            false
        };
        let add = match pvc_action(&pvc, || in_use) {
            Action::Add => true,
            Action::Remove => false,
            Action::None => return Ok(()),
        };
        let mut updated = (*pvc).clone();
        updated.metadata.finalizers =
            Some(with_finalizer(&pvc.metadata.finalizers, PVC_FINALIZER, add));
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.cx.client.clone(), namespace);
        match api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(()),
            // gone, or changed since: a new event comes
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Starts the PVC protection controller.
pub fn start_pvc(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(PvcController {
        claims: cx.informers.informer::<PersistentVolumeClaim>(),
        pods: cx.informers.informer::<Pod>(),
        cx,
    });
    let queue = WorkQueue::<String>::new();
    let q = queue.clone();
    controller.claims.add_handler(move |change| {
        if let Change::Added(c) | Change::Updated { new: c, .. } = change {
            q.add(key_of(&***c));
        }
    });
    let q = queue.clone();
    controller.pods.add_handler(move |change| {
        // a pod going away or finishing may free its claims
        let (Change::Added(p) | Change::Updated { new: p, .. } | Change::Deleted(p)) = change;
        let namespace = p.metadata.namespace.as_deref().unwrap_or_default();
        for claim in claims_of(p) {
            q.add(format!("{namespace}/{claim}"));
        }
    });
    Box::pin(async move {
        controller.claims.wait_synced().await;
        controller.pods.wait_synced().await;
        queue
            .run(WORKERS, None, PVC_NAME, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

struct PvController {
    cx: Context,
    volumes: Informer<PersistentVolume>,
}

impl PvController {
    async fn sync(&self, name: &str) -> Result<(), kube::Error> {
        let Some(pv) = self.volumes.get("", name) else {
            return Ok(());
        };
        let add = match pv_action(&pv) {
            Action::Add => true,
            Action::Remove => false,
            Action::None => return Ok(()),
        };
        let mut updated = (*pv).clone();
        updated.metadata.finalizers =
            Some(with_finalizer(&pv.metadata.finalizers, PV_FINALIZER, add));
        let api: Api<PersistentVolume> = Api::all(self.cx.client.clone());
        match api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Starts the PV protection controller.
pub fn start_pv(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(PvController {
        volumes: cx.informers.informer::<PersistentVolume>(),
        cx,
    });
    let queue = WorkQueue::<String>::new();
    let q = queue.clone();
    controller.volumes.add_handler(move |change| {
        if let Change::Added(v) | Change::Updated { new: v, .. } = change {
            q.add(v.metadata.name.clone().unwrap_or_default());
        }
    });
    Box::pin(async move {
        controller.volumes.wait_synced().await;
        queue
            .run(WORKERS, None, PV_NAME, move |name: String| {
                let controller = controller.clone();
                async move { controller.sync(&name).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pvc(deleting: bool, finalizers: serde_json::Value) -> PersistentVolumeClaim {
        let mut meta = json!({"name": "data", "namespace": "default", "finalizers": finalizers});
        if deleting {
            meta["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({"metadata": meta, "spec": {}})).unwrap()
    }

    fn pod(node: Option<&str>, phase: &str, volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [], "volumes": volumes},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn claims_get_the_finalizer_and_lose_it_once_deleted_and_unused() {
        assert_eq!(pvc_action(&pvc(false, json!([])), || true), Action::Add);
        assert_eq!(
            pvc_action(&pvc(false, json!([PVC_FINALIZER])), || false),
            Action::None
        );
        assert_eq!(
            pvc_action(&pvc(true, json!([PVC_FINALIZER])), || true),
            Action::None
        );
        assert_eq!(
            pvc_action(&pvc(true, json!([PVC_FINALIZER])), || false),
            Action::Remove
        );
        // a claim being deleted without the finalizer is not given one
        assert_eq!(pvc_action(&pvc(true, json!([])), || false), Action::None);
        assert_eq!(
            with_finalizer(
                &Some(vec!["a".into(), PVC_FINALIZER.into()]),
                PVC_FINALIZER,
                false
            ),
            ["a"]
        );
    }

    #[test]
    fn only_scheduled_running_pods_naming_the_claim_use_it() {
        let direct = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]);
        assert!(pod_uses_claim(
            &pod(Some("n"), "Running", direct.clone()),
            "data"
        ));
        assert!(!pod_uses_claim(
            &pod(Some("n"), "Running", direct.clone()),
            "other"
        ));
        assert!(!pod_uses_claim(
            &pod(None, "Pending", direct.clone()),
            "data"
        ));
        // a finished pod may still have the claim mounted
        assert!(pod_uses_claim(&pod(Some("n"), "Succeeded", direct), "data"));
        let ephemeral =
            json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]);
        assert!(pod_uses_claim(
            &pod(Some("n"), "Running", ephemeral.clone()),
            "p-scratch"
        ));
        // a pod shut down (no grace left) frees its ephemeral claim
        let mut gone = pod(Some("n"), "Running", ephemeral);
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        gone.metadata.deletion_grace_period_seconds = Some(0);
        assert!(!pod_uses_claim(&gone, "p-scratch"));
    }

    #[test]
    fn volumes_keep_the_finalizer_while_bound() {
        let pv = |deleting: bool, phase: &str, finalizers: serde_json::Value| -> PersistentVolume {
            let mut meta = json!({"name": "pv1", "finalizers": finalizers});
            if deleting {
                meta["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            }
            serde_json::from_value(
                json!({"metadata": meta, "spec": {}, "status": {"phase": phase}}),
            )
            .unwrap()
        };
        assert_eq!(pv_action(&pv(false, "Available", json!([]))), Action::Add);
        assert_eq!(
            pv_action(&pv(true, "Bound", json!([PV_FINALIZER]))),
            Action::None
        );
        assert_eq!(
            pv_action(&pv(true, "Released", json!([PV_FINALIZER]))),
            Action::Remove
        );
    }
}
