//! The resource quota controller: keeps every ResourceQuota's `status.hard` (its
//! `spec.hard`) and `status.used` (what the namespace's objects in the quota's scopes
//! use of each limited resource), as upstream's `resourcequota` controller.
//!
//! The apiserver's ResourceQuota admission plugin only ever charges usage up (on
//! creates, and on updates of services and claims), and enforces only once this
//! controller has written `status.hard`; this controller brings usage back down. A quota is recalculated when it is
//! created or its `spec.hard` changes, when an object it counts is deleted (or a pod
//! finishes, or a service's type changes, or a claim's storage changes), and every
//! `--resource-quota-sync-period` for all quotas. What an object uses and which quotas
//! it is in come from `apimachinery::quota`, shared with the admission plugin, so the
//! two agree (upstream's quota evaluators).
//!
//! Pods, services, claims, config maps, secrets, replication controllers, quotas and
//! the apps and batch workloads are read from shared informers; other `count/...`
//! resources (custom ones too) are listed from the apiserver when a quota asks for
//! them, so their deletions are only seen at the full resync. Events and virtual
//! resources are never counted (`quota::is_ignored`). A resource that cannot be
//! listed keeps its last usage while the rest of the status is written, and the
//! quota is retried.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::quota;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota,
    ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name.
pub const NAME: &str = "resourcequota-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "resourcequota-controller";

/// Why a quota could not be recalculated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed (the quota's status write, or listing a resource).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A resource's informer has not listed everything yet.
    #[error("{0} not yet synced")]
    NotSynced(String),
}

/// The cached objects of one namespace as JSON, `None` before the first list.
type Lister = Arc<dyn Fn(&str) -> Option<Vec<Value>> + Send + Sync>;

/// A resource read from a shared informer.
struct Source {
    group: &'static str,
    resource: &'static str,
    list: Lister,
}

struct Controller {
    cx: Context,
    queue: Arc<WorkQueue<String>>,
    quotas: Informer<ResourceQuota>,
    sources: Vec<Source>,
}

/// Now, in Unix seconds.
fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A typed object as the JSON the shared evaluators read.
fn to_json<K: Serialize>(object: &K) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The limits a quota's status says it enforces (its spec's until first synced), as
/// upstream's replenishment reads `status.hard`.
fn tracked_names(quota: &ResourceQuota) -> Vec<String> {
    let status_hard = quota.status.as_ref().and_then(|s| s.hard.as_ref());
    let spec_hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    status_hard
        .or(spec_hard)
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default()
}

/// Queues the quotas of `namespace` that count objects of `group`/`resource`
/// (upstream's `replenishQuota`).
fn replenish(
    quotas: &Informer<ResourceQuota>,
    queue: &WorkQueue<String>,
    group: &str,
    resource: &str,
    namespace: &str,
) {
    for rq in quotas.list_namespace(namespace) {
        let names = tracked_names(&rq);
        if !quota::matching_resources(group, resource, names.iter().map(String::as_str)).is_empty()
        {
            queue.add(key_of(&*rq));
        }
    }
}

/// Reads `K` from its shared informer and replenishes quotas when one is deleted or
/// `update_matters` says an update changed what it uses.
fn watch<K>(
    cx: &Context,
    quotas: &Informer<ResourceQuota>,
    queue: &Arc<WorkQueue<String>>,
    group: &'static str,
    resource: &'static str,
    update_matters: fn(&K, &K) -> bool,
) -> Source
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let informer = cx.informers.informer::<K>();
    let (q, rqs) = (queue.clone(), quotas.clone());
    informer.add_handler(move |change| {
        let object = match change {
            // creates are charged by admission
            Change::Added(_) => return,
            Change::Updated { old, new } if update_matters(old, new) => new,
            Change::Updated { .. } => return,
            Change::Deleted(object) => object,
        };
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        replenish(&rqs, &q, group, resource, &namespace);
    });
    Source {
        group,
        resource,
        list: Arc::new(move |namespace| {
            informer.has_synced().then(|| {
                informer
                    .list_namespace(namespace)
                    .iter()
                    .map(|o| to_json(&**o))
                    .collect()
            })
        }),
    }
}

fn never<K>(_: &K, _: &K) -> bool {
    false
}

/// A pod that stopped using its compute quota: it finished, or its deletion passed
/// its grace period (upstream's update filter for pods).
fn pod_released(old: &Pod, new: &Pod) -> bool {
    let now = now();
    quota::pod_is_charged(&to_json(old), now) && !quota::pod_is_charged(&to_json(new), now)
}

/// A service whose quota type (NodePort, LoadBalancer or neither) changed.
fn service_type_changed(old: &Service, new: &Service) -> bool {
    let quota_type = |s: &Service| match s.spec.as_ref().and_then(|s| s.type_.as_deref()) {
        Some(t @ ("NodePort" | "LoadBalancer")) => t.to_owned(),
        _ => String::new(),
    };
    quota_type(old) != quota_type(new)
}

/// A claim whose requested or allocated storage changed.
fn claim_storage_changed(old: &PersistentVolumeClaim, new: &PersistentVolumeClaim) -> bool {
    let storage = |c: &PersistentVolumeClaim| {
        (
            c.spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage").cloned()),
            c.status
                .as_ref()
                .and_then(|s| s.allocated_resources.as_ref())
                .and_then(|r| r.get("storage").cloned()),
        )
    };
    storage(old) != storage(new)
}

/// Whether two quota maps hold the same values (`1Gi` equals `1024Mi`).
fn same_hard(
    a: Option<&BTreeMap<String, ApiQuantity>>,
    b: Option<&BTreeMap<String, ApiQuantity>>,
) -> bool {
    let parse = |m: Option<&BTreeMap<String, ApiQuantity>>| {
        quota::resource_list(&serde_json::to_value(m).unwrap_or(Value::Null))
    };
    match (a, b) {
        (None, None) => true,
        (Some(_), None) | (None, Some(_)) => false,
        (a, b) => parse(a) == parse(b) && a.map(BTreeMap::len) == b.map(BTreeMap::len),
    }
}

impl Controller {
    /// The objects of `group`/`resource` in `namespace`: from an informer, or listed
    /// live through discovery; `None` for a resource the apiserver does not serve.
    async fn objects(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<Option<Vec<Value>>, Error> {
        if let Some(source) = self
            .sources
            .iter()
            .find(|s| s.group == group && s.resource == resource)
        {
            return (source.list)(namespace)
                .map(Some)
                .ok_or_else(|| Error::NotSynced(quota::object_count_name(group, resource)));
        }
        let Some(ar) = self.discover(group, resource).await? else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.cx.reader.clone(), namespace, &ar);
        let list = api.list(&ListParams::default()).await?;
        Ok(Some(list.items.iter().map(to_json).collect()))
    }

    /// The served, namespaced, listable resource `group`/`resource`.
    async fn discover(&self, group: &str, resource: &str) -> Result<Option<ApiResource>, Error> {
        let client = &self.cx.reader;
        let found = if group.is_empty() {
            kube::discovery::pinned_group(client, &kube::core::GroupVersion::gv("", "v1")).await
        } else {
            kube::discovery::group(client, group).await
        };
        let api_group = match found {
            Ok(g) => g,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Discovery(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(api_group
            .recommended_resources()
            .into_iter()
            .find(|(ar, caps)| {
                ar.plural == resource
                    && caps.scope == kube::discovery::Scope::Namespaced
                    && caps.supports_operation(kube::discovery::verbs::LIST)
            })
            .map(|(ar, _)| ar))
    }

    /// Upstream's `syncResourceQuota`: recompute what the quota tracks and write the
    /// status when hard or used changed.
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(rq) = self.quotas.get(namespace, name) else {
            return Ok(());
        };
        let quota_json = to_json(&*rq);
        let spec_hard = rq.spec.as_ref().and_then(|s| s.hard.clone());
        let status = rq.status.clone().unwrap_or_default();
        let hard = quota::resource_list(&quota_json["spec"]["hard"]);
        let old_used = quota::resource_list(&quota_json["status"]["used"]);
        let scopes = quota::scope_selectors(&quota_json);
        // the limited names, by the resource whose objects measure them
        let mut by_resource: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for limited in hard.keys() {
            if let Some(gr) = quota::resource_for(limited) {
                by_resource.entry(gr).or_default().push(limited.clone());
            }
        }
        let now = now();
        let mut used = old_used.clone();
        // a resource that cannot be listed keeps its last usage while the others and
        // the limits are still written; its error retries the quota (upstream's
        // `CalculateUsage` goes on past a failing evaluator)
        let mut failed = None;
        for ((group, resource), names) in &by_resource {
            let names =
                quota::matching_resources(group, resource, names.iter().map(String::as_str));
            let objects = match self.objects(group, resource, namespace).await {
                Ok(Some(objects)) => objects,
                Ok(None) => continue,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            used.extend(quota::usage_stats(
                group, resource, &names, &scopes, &objects, now,
            ));
        }
        // only what the quota limits
        let used = quota::mask(&used, hard.keys().map(String::as_str));
        let dirty = status.hard.is_none()
            || status.used.is_none()
            || !same_hard(spec_hard.as_ref(), status.hard.as_ref())
            || used != old_used;
        if !dirty {
            return failed.map_or(Ok(()), Err);
        }
        let mut updated = (*rq).clone();
        updated.status = Some(ResourceQuotaStatus {
            hard: Some(spec_hard.unwrap_or_default()),
            used: Some(
                used.iter()
                    .map(|(k, v)| (k.clone(), ApiQuantity(v.to_string())))
                    .collect(),
            ),
        });
        let api: Api<ResourceQuota> = Api::namespaced(self.cx.client.clone(), namespace);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => failed.map_or(Ok(()), Err),
            // gone: nothing to keep
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            // a conflict (admission charged it meanwhile) retries from the new state
            Err(e) => Err(e.into()),
        }
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let queue = WorkQueue::<String>::new();
    let quotas = cx.informers.informer::<ResourceQuota>();
    let sources = vec![
        watch::<Pod>(&cx, &quotas, &queue, "", "pods", pod_released),
        watch::<Service>(&cx, &quotas, &queue, "", "services", service_type_changed),
        watch::<PersistentVolumeClaim>(
            &cx,
            &quotas,
            &queue,
            "",
            "persistentvolumeclaims",
            claim_storage_changed,
        ),
        watch::<ConfigMap>(&cx, &quotas, &queue, "", "configmaps", never),
        watch::<Secret>(&cx, &quotas, &queue, "", "secrets", never),
        watch::<ReplicationController>(&cx, &quotas, &queue, "", "replicationcontrollers", never),
        watch::<ResourceQuota>(&cx, &quotas, &queue, "", "resourcequotas", never),
        watch::<Deployment>(&cx, &quotas, &queue, "apps", "deployments", never),
        watch::<ReplicaSet>(&cx, &quotas, &queue, "apps", "replicasets", never),
        watch::<StatefulSet>(&cx, &quotas, &queue, "apps", "statefulsets", never),
        watch::<DaemonSet>(&cx, &quotas, &queue, "apps", "daemonsets", never),
        watch::<Job>(&cx, &quotas, &queue, "batch", "jobs", never),
        watch::<CronJob>(&cx, &quotas, &queue, "batch", "cronjobs", never),
    ];
    let q = queue.clone();
    quotas.add_handler(move |change| match change {
        Change::Added(rq) | Change::Deleted(rq) => q.add(key_of(&***rq)),
        // status writes (ours and admission's) do not bring a recalculation; a new
        // limit does (upstream's update handler)
        Change::Updated { old, new } => {
            let hard = |rq: &ResourceQuota| rq.spec.as_ref().and_then(|s| s.hard.clone());
            let status_behind = !same_hard(
                hard(new).as_ref(),
                new.status.as_ref().and_then(|s| s.hard.as_ref()),
            );
            if !same_hard(hard(old).as_ref(), hard(new).as_ref()) || status_behind {
                q.add(key_of(&***new));
            }
        }
    });
    let controller = Arc::new(Controller {
        queue: queue.clone(),
        quotas,
        sources,
        cx,
    });
    Box::pin(async move {
        controller.quotas.wait_synced().await;
        for source in &controller.sources {
            while (source.list)("").is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        let period = controller
            .cx
            .settings
            .resource_quota_sync_period
            .max(std::time::Duration::from_secs(1));
        let resync = {
            let controller = controller.clone();
            async move {
                let mut ticks = tokio::time::interval(period);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    // upstream's enqueueAll: a full recalculation of every quota
                    for rq in controller.quotas.list() {
                        controller.queue.add(key_of(&*rq));
                    }
                }
            }
        };
        let workers = controller.cx.settings.concurrent_resource_quota_syncs;
        let c = controller.clone();
        let run = queue.run(workers, None, NAME, move |key: String| {
            let c = c.clone();
            async move { c.sync(&key).await }
        });
        tokio::select! {
            () = run => {}
            () = resync => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceQuotaSpec, ServiceSpec};
    use kube::api::ObjectMeta;

    #[test]
    fn only_pods_leaving_their_quota_replenish_it() {
        let running = Pod {
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut done = running.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(pod_released(&running, &done));
        assert!(!pod_released(&done, &done));
        assert!(!pod_released(&running, &running));
    }

    #[test]
    fn only_service_type_changes_that_matter_replenish() {
        let svc = |t: Option<&str>| Service {
            spec: Some(ServiceSpec {
                type_: t.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(service_type_changed(
            &svc(Some("NodePort")),
            &svc(Some("ClusterIP"))
        ));
        assert!(!service_type_changed(&svc(None), &svc(Some("ClusterIP"))));
        assert!(service_type_changed(
            &svc(Some("NodePort")),
            &svc(Some("LoadBalancer"))
        ));
    }

    #[test]
    fn hard_limits_compare_by_value() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, ApiQuantity> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ApiQuantity((*v).to_owned())))
                .collect()
        };
        assert!(same_hard(
            Some(&map(&[("memory", "1Gi")])),
            Some(&map(&[("memory", "1024Mi")]))
        ));
        assert!(!same_hard(
            Some(&map(&[("pods", "1")])),
            Some(&map(&[("pods", "2")]))
        ));
        assert!(!same_hard(Some(&map(&[("pods", "1")])), None));
        assert!(!same_hard(
            Some(&map(&[("pods", "1")])),
            Some(&map(&[("pods", "1"), ("secrets", "1")]))
        ));
    }

    #[test]
    fn replenishment_reads_the_status_limits_then_the_spec() {
        let mut rq = ResourceQuota {
            metadata: ObjectMeta::default(),
            spec: Some(ResourceQuotaSpec {
                hard: Some(
                    [("pods".to_owned(), ApiQuantity("1".into()))]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(tracked_names(&rq), ["pods"]);
        rq.status = Some(ResourceQuotaStatus {
            hard: Some(
                [("secrets".to_owned(), ApiQuantity("1".into()))]
                    .into_iter()
                    .collect(),
            ),
            used: None,
        });
        assert_eq!(tracked_names(&rq), ["secrets"]);
    }
}
