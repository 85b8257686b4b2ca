//! Watches of pods, nodes and namespaces feeding the cache and the queue (upstream's
//! `eventhandlers.go`): bound pods go to the cache, pending pods of our profiles to the
//! queue, and every change that may help a rejected pod becomes a cluster event for
//! the queue. Pods that finished are not watched (`status.phase` selector, as upstream).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apimachinery::labels::Selector;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, StorageClass};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::framework::events::{node_update_actions, pod_update_actions};
use crate::framework::nominator::Nominator;
use crate::framework::registry::{Handle, Store, WorkloadSelector};
use crate::framework::runtime::Framework;
use crate::framework::{ActionType, ClusterEvent, EventObject, EventResource, PodInfo};
use crate::schedule_one::Shared;

/// How many informers report their first full list (pods, nodes, namespaces,
/// PodDisruptionBudgets, the four workload kinds whose selectors PodTopologySpread's
/// defaults use, and the five storage kinds the volume plugins read).
pub const INFORMERS: usize = 13;

/// Keeps the local copies each watch needs to tell adds from updates and to find
/// objects that vanished across a relist.
struct Known<K> {
    objects: HashMap<String, Arc<K>>,
    relisting: Option<HashSet<String>>,
}

impl<K> Known<K> {
    fn new() -> Self {
        Known {
            objects: HashMap::new(),
            relisting: None,
        }
    }
}

/// Runs the three watches until the task is dropped; `synced` counts those that
/// delivered their first full list.
pub async fn run(
    client: kube::Client,
    shared: Arc<Shared>,
    profiles: Arc<HashMap<String, Arc<Framework>>>,
    handle: Handle,
    synced: Arc<AtomicUsize>,
) {
    let selectors = handle.workload_selectors.clone();
    let pdbs = handle.pdbs.clone();
    let volumes = handle.volumes.clone();
    let (storage_client, storage_shared, storage_synced) =
        (client.clone(), shared.clone(), synced.clone());
    let storage = async move {
        let (client, shared, synced) = (storage_client, storage_shared, storage_synced);
        futures::join!(
            watch_store::<PersistentVolumeClaim>(
                client.clone(),
                volumes.pvcs,
                shared.clone(),
                synced.clone(),
                Some((
                    EventResource::PersistentVolumeClaim,
                    "PersistentVolumeClaim"
                )),
            ),
            watch_store::<PersistentVolume>(
                client.clone(),
                volumes.pvs,
                shared.clone(),
                synced.clone(),
                Some((EventResource::PersistentVolume, "PersistentVolume")),
            ),
            watch_store::<StorageClass>(
                client.clone(),
                volumes.storage_classes,
                shared.clone(),
                synced.clone(),
                Some((EventResource::StorageClass, "StorageClass")),
            ),
            watch_store::<CSINode>(
                client.clone(),
                volumes.csi_nodes,
                shared.clone(),
                synced.clone(),
                Some((EventResource::CsiNode, "CSINode")),
            ),
            // no CSIDriver event resource: NodeVolumeLimits and VolumeBinding only read it
            watch_store::<CSIDriver>(
                client.clone(),
                volumes.csi_drivers,
                shared.clone(),
                synced.clone(),
                None,
            ),
        )
    };
    futures::join!(
        storage,
        watch_pods(
            client.clone(),
            shared.clone(),
            profiles,
            handle.nominator.clone(),
            synced.clone()
        ),
        watch_pdbs(client.clone(), pdbs, synced.clone()),
        watch_nodes(client.clone(), shared.clone(), synced.clone()),
        watch_namespaces(client.clone(), shared, handle, synced.clone()),
        watch_workloads::<Service>(
            client.clone(),
            selectors.clone(),
            synced.clone(),
            "Service",
            |s| {
                // a Service without a selector selects nothing (upstream)
                s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .map(Selector::from_set)
            }
        ),
        watch_workloads::<ReplicationController>(
            client.clone(),
            selectors.clone(),
            synced.clone(),
            "ReplicationController",
            |rc| {
                rc.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .map(Selector::from_set)
            },
        ),
        watch_workloads::<ReplicaSet>(
            client.clone(),
            selectors.clone(),
            synced.clone(),
            "ReplicaSet",
            |rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| crate::framework::types::label_selector(Some(&s.selector)).ok())
            }
        ),
        watch_workloads::<StatefulSet>(client, selectors, synced, "StatefulSet", |ss| {
            ss.spec
                .as_ref()
                .and_then(|s| crate::framework::types::label_selector(Some(&s.selector)).ok())
        }),
    );
}

/// The key a [`Store`] keeps an object under: `namespace/name`, or `name` for
/// cluster-scoped kinds.
fn store_key<K: kube::Resource>(obj: &K) -> String {
    let name = obj.meta().name.as_deref().unwrap_or("");
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// Keeps every object of one storage kind in `store` and, when `event` names a
/// resource, tells the queue of adds and updates (upstream's storage event handlers:
/// a new or changed claim, volume, class or CSINode may help a pod the volume plugins
/// rejected). The objects travel as [`EventObject::Other`]: the volume plugins'
/// registrations for these kinds carry no queueing hints.
async fn watch_store<K>(
    client: kube::Client,
    store: Store<K>,
    shared: Arc<Shared>,
    synced: Arc<AtomicUsize>,
    event: Option<(EventResource, &'static str)>,
) where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    let deleting = store.clone();
    drive(
        kube::Api::<K>::all(client),
        watcher::Config::default(),
        synced,
        |old: Option<Arc<K>>, obj: Arc<K>| {
            store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(store_key(&*obj), obj);
            if let Some((resource, label)) = event {
                let action = if old.is_some() {
                    ActionType::UPDATE
                } else {
                    ActionType::ADD
                };
                shared.queue.on_event(
                    ClusterEvent {
                        resource,
                        action,
                        label,
                    },
                    old.as_ref().map(|_| &EventObject::Other),
                    Some(&EventObject::Other),
                );
            }
        },
        |obj: Arc<K>| {
            deleting
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&store_key(&*obj));
        },
    )
    .await;
}

/// Keeps the PodDisruptionBudgets for preemption.
async fn watch_pdbs(
    client: kube::Client,
    pdbs: Arc<std::sync::RwLock<Vec<Arc<PodDisruptionBudget>>>>,
    synced: Arc<AtomicUsize>,
) {
    let uid_of = |p: &PodDisruptionBudget| p.metadata.uid.clone().unwrap_or_default();
    let deleting = pdbs.clone();
    drive(
        kube::Api::<PodDisruptionBudget>::all(client),
        watcher::Config::default(),
        synced,
        |_old: Option<Arc<PodDisruptionBudget>>, pdb: Arc<PodDisruptionBudget>| {
            let mut list = pdbs.write().unwrap_or_else(|e| e.into_inner());
            let uid = uid_of(&pdb);
            list.retain(|p| uid_of(p) != uid);
            list.push(pdb);
        },
        |pdb: Arc<PodDisruptionBudget>| {
            let uid = uid_of(&pdb);
            deleting
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| uid_of(p) != uid);
        },
    )
    .await;
}

type WorkloadSelectors = Arc<std::sync::RwLock<HashMap<String, Vec<WorkloadSelector>>>>;

/// Keeps `kind`'s selectors per namespace in `selectors`.
async fn watch_workloads<K>(
    client: kube::Client,
    selectors: WorkloadSelectors,
    synced: Arc<AtomicUsize>,
    kind: &'static str,
    selector_of: fn(&K) -> Option<Selector>,
) where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let remove = |map: &mut HashMap<String, Vec<WorkloadSelector>>, ns: &str, name: &str| {
        if let Some(list) = map.get_mut(ns) {
            list.retain(|w| !(w.kind == kind && w.name == name));
            if list.is_empty() {
                map.remove(ns);
            }
        }
    };
    let deleting = selectors.clone();
    drive(
        kube::Api::<K>::all(client),
        watcher::Config::default(),
        synced,
        |_old: Option<Arc<K>>, obj: Arc<K>| {
            let ns = obj.meta().namespace.clone().unwrap_or_default();
            let name = obj.meta().name.clone().unwrap_or_default();
            let mut map = selectors.write().unwrap_or_else(|e| e.into_inner());
            remove(&mut map, &ns, &name);
            if let Some(selector) = selector_of(&obj) {
                map.entry(ns).or_default().push(WorkloadSelector {
                    kind,
                    name,
                    selector,
                });
            }
        },
        |obj: Arc<K>| {
            let mut map = deleting.write().unwrap_or_else(|e| e.into_inner());
            remove(
                &mut map,
                obj.meta().namespace.as_deref().unwrap_or(""),
                obj.meta().name.as_deref().unwrap_or(""),
            );
        },
    )
    .await;
}

/// Drives one watch: `apply(old, new)` for adds and updates, `delete(old)` for
/// deletions (including objects missing from a relist).
async fn drive<K, A, D>(
    api: kube::Api<K>,
    config: watcher::Config,
    synced: Arc<AtomicUsize>,
    mut apply: A,
    mut delete: D,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    A: FnMut(Option<Arc<K>>, Arc<K>),
    D: FnMut(Arc<K>),
{
    let mut known: Known<K> = Known::new();
    let mut first_sync = true;
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let uid = |k: &K| k.meta().uid.clone().unwrap_or_default();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::info!(error = %e, "watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => known.relisting = Some(HashSet::new()),
            Event::InitApply(obj) | Event::Apply(obj) => {
                let obj = Arc::new(obj);
                let id = uid(&obj);
                if let Some(seen) = known.relisting.as_mut() {
                    seen.insert(id.clone());
                }
                let old = known.objects.insert(id, obj.clone());
                apply(old, obj);
            }
            Event::Delete(obj) => {
                let id = uid(&obj);
                let old = known.objects.remove(&id).unwrap_or_else(|| Arc::new(obj));
                delete(old);
            }
            Event::InitDone => {
                if let Some(seen) = known.relisting.take() {
                    let gone: Vec<String> = known
                        .objects
                        .keys()
                        .filter(|id| !seen.contains(*id))
                        .cloned()
                        .collect();
                    for id in gone {
                        if let Some(old) = known.objects.remove(&id) {
                            delete(old);
                        }
                    }
                }
                if first_sync {
                    first_sync = false;
                    synced.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

async fn watch_pods(
    client: kube::Client,
    shared: Arc<Shared>,
    profiles: Arc<HashMap<String, Arc<Framework>>>,
    nominator: Arc<Nominator>,
    synced: Arc<AtomicUsize>,
) {
    let deleting = nominator.clone();
    let responsible = |pod: &Pod| crate::schedule_one::profile_of(&profiles, pod).is_some();
    let config = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let apply_shared = shared.clone();
    drive(
        kube::Api::<Pod>::all(client),
        config,
        synced,
        |old: Option<Arc<Pod>>, pod: Arc<Pod>| {
            let shared = &apply_shared;
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if node_name(&pod).is_some() {
                let was_bound = old.as_deref().is_some_and(|o| node_name(o).is_some());
                shared.queue.delete(&uid);
                nominator.delete(&uid);
                shared.cache().add_pod(pod.clone());
                match old.filter(|_| was_bound) {
                    Some(old) => {
                        let actions = pod_update_actions(&old, &pod);
                        shared.queue.on_event(
                            ClusterEvent {
                                resource: EventResource::AssignedPod,
                                action: actions,
                                label: "AssignedPodUpdate",
                            },
                            Some(&EventObject::Pod(old)),
                            Some(&EventObject::Pod(pod)),
                        );
                    }
                    None => shared.queue.on_event(
                        ClusterEvent {
                            resource: EventResource::AssignedPod,
                            action: ActionType::ADD,
                            label: "AssignedPodAdd",
                        },
                        None,
                        Some(&EventObject::Pod(pod)),
                    ),
                }
                return;
            }
            if !responsible(&pod) {
                return;
            }
            if pod.metadata.deletion_timestamp.is_some() {
                shared.queue.delete(&uid);
                nominator.delete(&uid);
                return;
            }
            let assumed = shared.cache().is_assumed(&uid);
            if assumed {
                return;
            }
            let info = Arc::new(PodInfo::from_arc(pod));
            // a pending pod's status.nominatedNodeName (set after preemption)
            nominator.add(info.clone(), None);
            if old.is_some() {
                shared.queue.update(info);
            } else {
                shared.queue.add(info);
            }
        },
        |pod: Arc<Pod>| {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            shared.queue.delete(&uid);
            deleting.delete(&uid);
            let bound = node_name(&pod).is_some();
            shared.cache().remove_pod(&uid);
            if bound {
                shared.queue.on_event(
                    ClusterEvent {
                        resource: EventResource::AssignedPod,
                        action: ActionType::DELETE,
                        label: "AssignedPodDelete",
                    },
                    Some(&EventObject::Pod(pod)),
                    None,
                );
            }
        },
    )
    .await;
}

async fn watch_nodes(client: kube::Client, shared: Arc<Shared>, synced: Arc<AtomicUsize>) {
    let apply_shared = shared.clone();
    drive(
        kube::Api::<Node>::all(client),
        watcher::Config::default(),
        synced,
        |old: Option<Arc<Node>>, node: Arc<Node>| {
            let shared = &apply_shared;
            shared.cache().add_or_update_node(node.clone());
            let (action, label) = match &old {
                None => (ActionType::ADD, "NodeAdd"),
                Some(old) => (node_update_actions(old, &node), "NodeUpdate"),
            };
            if action.0 == 0 {
                return;
            }
            shared.queue.on_event(
                ClusterEvent {
                    resource: EventResource::Node,
                    action,
                    label,
                },
                old.map(EventObject::Node).as_ref(),
                Some(&EventObject::Node(node)),
            );
        },
        |node: Arc<Node>| {
            shared
                .cache()
                .remove_node(node.metadata.name.as_deref().unwrap_or(""));
        },
    )
    .await;
}

async fn watch_namespaces(
    client: kube::Client,
    shared: Arc<Shared>,
    handle: Handle,
    synced: Arc<AtomicUsize>,
) {
    let labels = handle.namespace_labels.clone();
    drive(
        kube::Api::<Namespace>::all(client),
        watcher::Config::default(),
        synced,
        |old: Option<Arc<Namespace>>, ns: Arc<Namespace>| {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let new_labels = ns.metadata.labels.clone().unwrap_or_default();
            labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, new_labels);
            let changed = old
                .as_ref()
                .is_none_or(|o| o.metadata.labels != ns.metadata.labels);
            if changed {
                let action = if old.is_some() {
                    ActionType::UPDATE
                } else {
                    ActionType::ADD
                };
                shared.queue.on_event(
                    ClusterEvent {
                        resource: EventResource::Namespace,
                        action,
                        label: "NamespaceChange",
                    },
                    None,
                    None,
                );
            }
        },
        |ns: Arc<Namespace>| {
            labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(ns.metadata.name.as_deref().unwrap_or(""));
        },
    )
    .await;
}
