//! The Deployment controller (upstream's `pkg/controller/deployment`): each Deployment
//! owns ReplicaSets, one per pod template it has had, told apart by the
//! `pod-template-hash` label. A sync adopts matching orphan ReplicaSets, then either
//! only scales (paused, or the Deployment's replicas changed mid-rollout) or rolls out
//! by its strategy (RollingUpdate within maxSurge/maxUnavailable, or Recreate), keeps
//! revisionHistoryLimit old ReplicaSets, and reports status and conditions. The pods
//! themselves are the ReplicaSet controller's.

mod progress;
mod recreate;
mod rollback;
mod rolling;
mod sync;
mod util;

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::labels::Selector;
use component_base::events::Recorder;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::Context;
use crate::controller_utils::{
    OwnerLookup, RecheckError, controller_of, controller_ref, recheck_owner, status_code,
};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name and event source.
pub const NAME: &str = "deployment-controller";
/// Upstream's `maxRetries`: a Deployment failing this often is dropped until it changes.
const MAX_RETRIES: u32 = 15;

/// Errors of a Deployment sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The Deployment's spec cannot be acted on.
    #[error(transparent)]
    Spec(#[from] util::UtilError),
    /// The Deployment's selector does not parse.
    #[error("deployment {key} has invalid label selector: {reason}")]
    Selector {
        /// The Deployment.
        key: String,
        /// Why.
        reason: String,
    },
    /// The Deployment was deleted or replaced while ReplicaSets were being adopted.
    #[error("original Deployment {0} is gone or being deleted")]
    Gone(String),
}

/// What a sync works with: clients, caches and the queue.
pub(crate) struct Controller {
    client: kube::Client,
    recorder: Recorder,
    deployments: Informer<Deployment>,
    replica_sets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue<String>>,
}

/// Starts the controller: handlers on Deployments, ReplicaSets and Pods, then
/// `concurrent_deployment_syncs` workers.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let controller = Arc::new(Controller {
        client: cx.client.clone(),
        recorder: cx.recorder.clone(),
        deployments: cx.informers.informer::<Deployment>(),
        replica_sets: cx.informers.informer::<ReplicaSet>(),
        pods: cx.informers.informer::<Pod>(),
        queue: WorkQueue::new(),
    });
    let c = controller.clone();
    controller
        .deployments
        .add_handler(move |change: &Change<'_, Deployment>| match change {
            Change::Added(d) | Change::Deleted(d) => c.enqueue(d),
            Change::Updated { new, .. } => c.enqueue(new),
        });
    let c = controller.clone();
    controller
        .replica_sets
        .add_handler(move |change: &Change<'_, ReplicaSet>| c.on_replica_set(change));
    let c = controller.clone();
    controller
        .pods
        .add_handler(move |change: &Change<'_, Pod>| {
            if let Change::Deleted(pod) = change {
                c.on_pod_deleted(pod);
            }
        });
    let workers = cx.settings.concurrent_deployment_syncs;
    Box::pin(async move {
        controller.deployments.wait_synced().await;
        controller.replica_sets.wait_synced().await;
        controller.pods.wait_synced().await;
        let queue = controller.queue.clone();
        queue
            .run(workers, Some(MAX_RETRIES), NAME, move |key| {
                let c = controller.clone();
                async move { c.sync_deployment(&key).await }
            })
            .await;
    })
}

/// The label selector of a Deployment as our selector type.
fn deployment_selector(d: &Deployment) -> Result<Selector, Error> {
    let key = key_of(d);
    let api = d
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.selector))
        .transpose()
        .and_then(|v| v.map(serde_json::from_value).transpose())
        .map_err(|e| Error::Selector {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    Selector::from_label_selector(api.as_ref()).map_err(|e| Error::Selector {
        key,
        reason: e.to_string(),
    })
}

impl Controller {
    fn enqueue(&self, d: &Deployment) {
        self.queue.add(key_of(d));
    }

    /// The Deployments as owners of ReplicaSets.
    fn lookup(&self) -> OwnerLookup<'_, Deployment> {
        OwnerLookup {
            owners: &self.deployments,
            selector: |d| deployment_selector(d).ok(),
        }
    }

    fn on_replica_set(&self, change: &Change<'_, ReplicaSet>) {
        let concerned = match change {
            Change::Added(rs) => self.lookup().added(&rs.metadata),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                self.lookup().updated(&old.metadata, &new.metadata)
            }
            Change::Deleted(rs) => {
                if let Some(d) = self.lookup().controller(&rs.metadata) {
                    self.enqueue(&d);
                }
                return;
            }
        };
        for d in concerned.all() {
            self.enqueue(d);
        }
    }

    /// A Recreate Deployment waits for its old pods to go; the last one going wakes it
    /// (upstream's `deletePod`).
    fn on_pod_deleted(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(r) = controller_of(&pod.metadata) else {
            return;
        };
        if r.kind != "ReplicaSet" {
            return;
        }
        let Some(rs) = self.replica_sets.get(&namespace, &r.name) else {
            return;
        };
        if rs.metadata.uid.as_deref() != Some(r.uid.as_str()) {
            return;
        }
        let Some(d) = self.lookup().controller(&rs.metadata) else {
            return;
        };
        if util::strategy_type(&d) != "Recreate" {
            return;
        }
        let owned: Vec<ReplicaSet> = self
            .replica_sets
            .list_namespace(&namespace)
            .into_iter()
            .filter(|rs| {
                controller_of(&rs.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
            })
            .map(|rs| (*rs).clone())
            .collect();
        let remaining: usize = self
            .pod_map(&d, &owned)
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0);
        if remaining == 0 {
            self.enqueue(&d);
        }
    }

    /// The Deployment's pods grouped by the owned ReplicaSet that controls them
    /// (upstream's `getPodMapForDeployment`), terminal ones included.
    fn pod_map(
        &self,
        d: &Deployment,
        rss: &[ReplicaSet],
    ) -> Result<HashMap<String, Vec<Arc<Pod>>>, Error> {
        let selector = deployment_selector(d)?;
        let mut map: HashMap<String, Vec<Arc<Pod>>> = rss
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .map(|uid| (uid, Vec::new()))
            .collect();
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        for pod in self.pods.list_namespace(&namespace) {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if !selector.matches(&labels) {
                continue;
            }
            let Some(uid) = controller_of(&pod.metadata).map(|r| r.uid.clone()) else {
                continue;
            };
            if let Some(list) = map.get_mut(&uid) {
                list.push(pod);
            }
        }
        Ok(map)
    }

    /// The ReplicaSets the Deployment owns, adopting matching orphans and releasing
    /// owned ones that no longer match (upstream's `ReplicaSetControllerRefManager`).
    async fn claim_replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
        let key = key_of(d);
        let selector = deployment_selector(d)?;
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        let mut can_adopt: Option<bool> = None;
        let mut claimed = Vec::new();
        for rs in self.replica_sets.list_namespace(&namespace) {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let matches = selector.matches(&labels);
            let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
            let name = rs.metadata.name.clone().unwrap_or_default();
            if let Some(r) = controller_of(&rs.metadata) {
                if r.uid != uid {
                    continue;
                }
                if matches {
                    claimed.push((*rs).clone());
                    continue;
                }
                if d.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let patch = serde_json::json!({
                    "metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": rs_uid,
                    }
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                {
                    Ok(_) => {}
                    // gone, or already changed so the uid precondition fails (422)
                    Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 422 => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            if d.metadata.deletion_timestamp.is_some()
                || !matches
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            // a fresh read: the cached Deployment may already be gone (upstream's
            // RecheckDeletionTimestamp)
            let allowed = match can_adopt {
                Some(allowed) => allowed,
                None => {
                    let deployments: Api<Deployment> =
                        Api::namespaced(self.client.clone(), &namespace);
                    let allowed = match recheck_owner(
                        &deployments,
                        d.metadata.name.as_deref().unwrap_or_default(),
                        Some(&uid),
                    )
                    .await
                    {
                        Ok(()) => true,
                        Err(RecheckError::Get(e)) if status_code(&e) != Some(404) => {
                            return Err(e.into());
                        }
                        Err(_) => false,
                    };
                    can_adopt = Some(allowed);
                    allowed
                }
            };
            if !allowed {
                return Err(Error::Gone(key));
            }
            let owner = controller_ref(d);
            let patch = serde_json::json!({
                "metadata": {
                    "ownerReferences": [owner],
                    "uid": rs_uid,
                }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(adopted) => claimed.push(adopted),
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(claimed)
    }

    /// Writes the Deployment's status, keeping the returned resourceVersion so a later
    /// write of the same sync does not conflict with this one.
    async fn update_status(&self, d: &mut Deployment) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = d.metadata.name.clone().unwrap_or_default();
        let written = api.replace_status(&name, &PostParams::default(), d).await?;
        d.metadata.resource_version = written.metadata.resource_version;
        Ok(())
    }

    /// Writes the Deployment's metadata (its revision annotation, the cleared rollback
    /// annotation) or template (a rollback). Upstream sets the revision annotation
    /// through UpdateStatus, whose strategy keeps annotation changes; ours keeps only
    /// status, so the main resource is written.
    async fn update_deployment(&self, d: &mut Deployment) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = d.metadata.name.clone().unwrap_or_default();
        let written = api.replace(&name, &PostParams::default(), d).await?;
        d.metadata.resource_version = written.metadata.resource_version;
        d.metadata.generation = written.metadata.generation;
        Ok(())
    }

    /// One sync of the Deployment `key` (upstream's `syncDeployment`).
    async fn sync_deployment(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(cached) = self.deployments.get(namespace, name) else {
            tracing::debug!(%key, "deployment has been deleted");
            return Ok(());
        };
        let mut d = (*cached).clone();
        let selects_all = d.spec.as_ref().is_some_and(|s| {
            s.selector
                .match_labels
                .as_ref()
                .is_none_or(|m| m.is_empty())
                && s.selector
                    .match_expressions
                    .as_ref()
                    .is_none_or(|m| m.is_empty())
        });
        if selects_all {
            self.recorder.event(
                &d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required."
                    .to_owned(),
                NAME,
            );
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                status.observed_generation = d.metadata.generation;
                self.update_status(&mut d).await?;
            }
            return Ok(());
        }
        let rss = self.claim_replica_sets(&d).await?;
        let pods = self.pod_map(&d, &rss)?;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut d, &rss).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            return self.sync(&mut d, &rss).await;
        }
        if rollback::rollback_to(&d).is_some() {
            return self.rollback(&mut d, &rss).await;
        }
        if self.is_scaling_event(&mut d, &rss).await? {
            return self.sync(&mut d, &rss).await;
        }
        match util::strategy_type(&d) {
            "Recreate" => self.rollout_recreate(&mut d, &rss, &pods).await,
            "RollingUpdate" => self.rollout_rolling(&mut d, &rss).await,
            other => Err(util::UtilError::Strategy(other.to_owned()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, ObjectMeta,
    };

    fn with_selector(selector: LabelSelector) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("d".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                selector,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn deployment_selectors_convert_with_labels_and_expressions() {
        let d = with_selector(LabelSelector {
            match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into(), "edge".into()]),
            }]),
        });
        let s = deployment_selector(&d).unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!s.matches(&labels(&[("tier", "front")])));
    }

    #[test]
    fn a_bad_operator_is_an_invalid_selector() {
        let d = with_selector(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        });
        let err = deployment_selector(&d).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("deployment ns/d has invalid label selector"),
            "{err}"
        );
    }
}
