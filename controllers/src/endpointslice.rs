//! The EndpointSlice controller: for every Service with a selector, EndpointSlices
//! listing the pods it selects, as upstream's `endpointslice` controller and its
//! reconciler do.
//!
//! Each pod with an IP becomes an endpoint: its address, `ready` (ready and not
//! terminating, or always with `publishNotReadyAddresses`), `serving` (ready),
//! `terminating`, its node and the node's zone, and a reference to the pod. Endpoints
//! are grouped by address type (the Service's IP families) and by the ports they
//! resolve (a named `targetPort` may resolve differently per pod); each group is
//! spread over slices of at most 100 endpoints. The reconcile keeps endpoints where
//! they are when they did not change, fills existing slices before creating new ones,
//! and deletes slices left empty; a Service selecting nothing keeps one empty
//! placeholder slice. Slices carry `kubernetes.io/service-name`,
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, the
//! Service's own labels, and the Service as their controller owner.
//!
//! The informer cache may lag behind this controller's own writes; as upstream's
//! `EndpointSliceTracker`, the controller remembers the resource versions it wrote and
//! waits for the cache to catch up before reconciling that Service again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use apimachinery::labels::Selector;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name (and its service account's, `endpointslice-controller`).
pub const NAME: &str = "endpointslice-controller";
/// The `managed-by` label value of the slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What went wrong in one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The cache has not seen this controller's last writes yet.
    #[error("the EndpointSlice cache is out of date for service {0}")]
    Stale(String),
}

/// The ports an endpoint group resolves, in the Service's order.
type PortKey = Vec<(String, String, i32, Option<String>)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect()
}

/// The address family of an IP.
fn family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// Resolves one Service port against a pod: a numbered target port as is, a named one
/// by the pod's container ports of the same protocol (`None` when the pod has none).
pub(crate) fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// Whether `pod` belongs in EndpointSlices at all (upstream's `ShouldPodBeInEndpoints`
/// with terminating pods included).
fn in_slices(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    !pod_ips(pod).is_empty()
}

fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone().filter(|ip| !ip.is_empty()));
    }
    ips
}

/// The endpoint of `pod` at `ip` for `service`.
fn endpoint(service: &Service, pod: &Pod, ip: &str, zone: Option<String>) -> Endpoint {
    let ready = crate::controller_utils::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let spec = pod.spec.as_ref();
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == Some(service_name))
        .and_then(|s| s.hostname.clone());
    Endpoint {
        addresses: vec![ip.to_owned()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (ready && !terminating)),
            serving: Some(ready),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        zone,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    }
}

/// The identity of an endpoint across syncs: its pod and address.
fn endpoint_id(e: &Endpoint) -> (String, String) {
    (
        e.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
        e.addresses.first().cloned().unwrap_or_default(),
    )
}

/// The endpoints a Service wants, by (address type, ports).
type Desired = BTreeMap<(String, PortKey), (Vec<EndpointPort>, Vec<Endpoint>)>;

/// Computes a Service's endpoints from the pods it selects.
fn desired(
    service: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Desired {
    let spec = service.spec.clone().unwrap_or_default();
    let families: Vec<String> = spec
        .ip_families
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| vec!["IPv4".to_owned()]);
    let mut out: Desired = BTreeMap::new();
    for pod in pods.iter().filter(|p| in_slices(p)) {
        let ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                Some(EndpointPort {
                    name: Some(port.name.clone().unwrap_or_default()),
                    port: Some(resolve_port(port, pod)?),
                    protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                    app_protocol: port.app_protocol.clone(),
                })
            })
            .collect();
        let key = port_key(&ports);
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(zone_of);
        for ip in pod_ips(pod) {
            let address_type = family(&ip);
            if !families.iter().any(|f| f == address_type) {
                continue;
            }
            let entry = out
                .entry((address_type.to_owned(), key.clone()))
                .or_insert_with(|| (ports.clone(), Vec::new()));
            entry.1.push(endpoint(service, pod, &ip, zone.clone()));
        }
    }
    out
}

/// The labels of a Service's slices: its own, then the two reserved ones (and the
/// headless marker), as upstream's `setEndpointSliceLabels`.
fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            k != SERVICE_NAME_LABEL
                && k != MANAGED_BY_LABEL
                && k != "service.kubernetes.io/headless"
        })
        .collect();
    // upstream's `!IsServiceIPSet`: no cluster IP, or `None`
    if matches!(
        service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        None | Some("" | "None")
    ) {
        labels.insert("service.kubernetes.io/headless".to_owned(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.to_owned(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels
}

fn owner(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn new_slice(
    service: &Service,
    address_type: &str,
    ports: Option<Vec<EndpointPort>>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![owner(service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Vec::new(),
        ports,
    }
}

/// The writes one reconcile makes.
#[derive(Debug, Default)]
struct Plan {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
}

/// Upstream's reconciler, per (address type, ports) group: keeps unchanged endpoints
/// in place, updates changed ones where they are, drops gone ones, fills slices with
/// room, then creates new ones; empty slices are deleted, except that a Service with
/// no endpoints at all keeps (or gets) one placeholder slice.
fn plan(service: &Service, mut want: Desired, existing: &[Arc<EndpointSlice>]) -> Plan {
    let mut plan = Plan::default();
    let labels = slice_labels(service);
    let owner_uid = service.metadata.uid.clone().unwrap_or_default();
    let mut kept_any = false;
    let mut by_group: HashMap<(String, PortKey), Vec<EndpointSlice>> = HashMap::new();
    for slice in existing {
        let key = (
            slice.address_type.clone(),
            port_key(slice.ports.as_deref().unwrap_or_default()),
        );
        by_group.entry(key).or_default().push((**slice).clone());
    }
    for (key, slices) in by_group {
        let Some((_, endpoints)) = want.remove(&key) else {
            // a group nobody wants any more (the placeholder is decided below)
            plan.delete.extend(slices);
            continue;
        };
        let mut pending: HashMap<(String, String), Endpoint> = endpoints
            .into_iter()
            .map(|e| (endpoint_id(&e), e))
            .collect();
        let mut with_room: Vec<EndpointSlice> = Vec::new();
        for mut slice in slices {
            let before = slice.endpoints.clone();
            slice.endpoints = before
                .iter()
                .filter_map(|e| pending.remove(&endpoint_id(e)))
                .collect();
            let metadata_stale = slice.metadata.labels.as_ref() != Some(&labels)
                || !slice
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == owner_uid && o.controller == Some(true));
            if metadata_stale {
                slice.metadata.labels = Some(labels.clone());
                slice.metadata.owner_references = Some(vec![owner(service)]);
            }
            if slice.endpoints.is_empty() {
                plan.delete.push(slice);
            } else if slice.endpoints != before || metadata_stale {
                if slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                    with_room.push(slice);
                } else {
                    plan.update.push(slice);
                }
            } else if slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                // unchanged: filled only when new endpoints need room
                with_room.push(slice);
            } else {
                kept_any = true;
            }
        }
        // new endpoints, in a stable order, into slices already being updated, then
        // unchanged ones with room, then new slices
        let mut new: Vec<Endpoint> = pending.into_values().collect();
        new.sort_by_key(endpoint_id);
        with_room.sort_by_key(|s| {
            let untouched = existing
                .iter()
                .any(|e| e.metadata.name == s.metadata.name && e.endpoints == s.endpoints);
            untouched
        });
        let mut new = new.into_iter().peekable();
        for mut slice in with_room {
            let untouched = existing.iter().any(|e| {
                e.metadata.name == slice.metadata.name
                    && e.endpoints == slice.endpoints
                    && e.metadata.labels == slice.metadata.labels
            });
            let mut grew = false;
            while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                match new.next() {
                    Some(e) => {
                        slice.endpoints.push(e);
                        grew = true;
                    }
                    None => break,
                }
            }
            if grew || !untouched {
                plan.update.push(slice);
            } else {
                kept_any = true;
            }
        }
        let rest: Vec<Endpoint> = new.collect();
        let ports = existing
            .iter()
            .find(|s| {
                s.address_type == key.0 && port_key(s.ports.as_deref().unwrap_or_default()) == key.1
            })
            .and_then(|s| s.ports.clone());
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            let mut slice = new_slice(service, &key.0, ports.clone());
            slice.endpoints = chunk.to_vec();
            plan.create.push(slice);
        }
    }
    for ((address_type, _), (ports, endpoints)) in want {
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            let mut slice = new_slice(service, &address_type, Some(ports.clone()));
            slice.endpoints = chunk.to_vec();
            plan.create.push(slice);
        }
    }
    // a Service with no endpoints keeps one placeholder slice
    if plan.create.is_empty() && plan.update.is_empty() && !kept_any {
        let placeholder = |s: &EndpointSlice| {
            s.endpoints.is_empty() && s.ports.as_ref().is_none_or(|p| p.is_empty())
        };
        if let Some(i) = plan.delete.iter().position(placeholder) {
            let mut keep = plan.delete.remove(i);
            if keep.metadata.labels.as_ref() != Some(&labels) {
                keep.metadata.labels = Some(labels.clone());
                plan.update.push(keep);
            }
        } else {
            let family = service
                .spec
                .as_ref()
                .and_then(|s| s.ip_families.as_ref())
                .and_then(|f| f.first().cloned())
                .unwrap_or_else(|| "IPv4".to_owned());
            plan.create.push(new_slice(service, &family, None));
        }
    }
    plan
}

/// The resource versions this controller wrote per Service (`None`: deleted), until
/// the cache shows them (upstream's `EndpointSliceTracker`).
#[derive(Default)]
struct Tracker {
    written: Mutex<HashMap<String, HashMap<String, Option<String>>>>,
}

fn newer_or_same(cached: &str, written: &str) -> bool {
    match (cached.parse::<u64>(), written.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => cached == written,
    }
}

impl Tracker {
    fn caught_up(&self, service: &str, slices: &Informer<EndpointSlice>, namespace: &str) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let Some(expected) = written.get(service) else {
            return true;
        };
        let done = expected.iter().all(|(name, rv)| {
            let cached = slices.get(namespace, name);
            match (rv, cached) {
                (None, None) => true,
                (Some(rv), Some(c)) => c
                    .metadata
                    .resource_version
                    .as_deref()
                    .is_some_and(|c| newer_or_same(c, rv)),
                _ => false,
            }
        });
        if done {
            written.remove(service);
        }
        done
    }

    fn wrote(&self, service: &str, name: String, rv: Option<String>) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(service.to_owned())
            .or_default()
            .insert(name, rv);
    }

    /// A slice went away: unless this controller deleted it, what was written is
    /// moot (someone else deleted the slice) and the Service must be synced afresh.
    fn deleted(&self, service: &str, name: &str) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(expected) = written.get_mut(service) {
            if matches!(expected.get(name), Some(Some(_))) {
                expected.remove(name);
            }
        }
    }

    fn forget(&self, service: &str) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service);
    }
}

struct Controller {
    cx: Context,
    services: Informer<Service>,
    pods: Informer<Pod>,
    slices: Informer<EndpointSlice>,
    nodes: Informer<Node>,
    tracker: Arc<Tracker>,
}

fn selector_of(service: &Service) -> Option<Selector> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().map(Selector::from_set)
}

impl Controller {
    fn managed_slices(&self, namespace: &str, service: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .list_namespace(namespace)
            .into_iter()
            .filter(|s| {
                let labels = s.metadata.labels.as_ref();
                labels
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .map(String::as_str)
                    == Some(service)
                    && labels
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str)
                        == Some(MANAGED_BY)
            })
            .collect()
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(service) = self.services.get(namespace, name) else {
            // the garbage collector deletes the slices with their owner
            self.tracker.forget(key);
            return Ok(());
        };
        let Some(selector) = selector_of(&service) else {
            // no selector: the slices are someone else's to write
            return Ok(());
        };
        if service.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        if !self.tracker.caught_up(key, &self.slices, namespace) {
            return Err(Error::Stale(key.to_owned()));
        }
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(namespace)
            .into_iter()
            .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
            .collect();
        let nodes = &self.nodes;
        let zone_of = |node: &str| {
            nodes.get("", node).and_then(|n| {
                n.metadata
                    .labels
                    .as_ref()?
                    .get("topology.kubernetes.io/zone")
                    .cloned()
            })
        };
        let want = desired(&service, &pods, &zone_of);
        let existing = self.managed_slices(namespace, name);
        let plan = plan(&service, want, &existing);
        let result = self.apply(namespace, key, plan).await;
        if let Err(e) = &result {
            self.cx.recorder.event(
                &*service,
                "Warning",
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {key}: {e}"),
                NAME,
            );
        }
        result
    }

    async fn apply(&self, namespace: &str, key: &str, plan: Plan) -> Result<(), Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.cx.client.clone(), namespace);
        for slice in plan.create {
            match api.create(&PostParams::default(), &slice).await {
                Ok(created) => self.tracker.wrote(
                    key,
                    created.metadata.name.clone().unwrap_or_default(),
                    created.metadata.resource_version.clone(),
                ),
                // a namespace being deleted refuses new objects: nothing to publish there
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains("being terminated") => {}
                Err(e) => return Err(e.into()),
            }
        }
        for slice in plan.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let updated = api.replace(&name, &PostParams::default(), &slice).await?;
            self.tracker
                .wrote(key, name, updated.metadata.resource_version.clone());
        }
        for slice in plan.delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            self.tracker.wrote(key, name, None);
        }
        Ok(())
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_service_endpoint_syncs;
    let controller = Arc::new(Controller {
        services: cx.informers.informer::<Service>(),
        pods: cx.informers.informer::<Pod>(),
        slices: cx.informers.informer::<EndpointSlice>(),
        nodes: cx.informers.informer::<Node>(),
        tracker: Arc::default(),
        cx,
    });
    let queue = WorkQueue::<String>::new();
    let q = queue.clone();
    controller.services.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        q.add(key_of(&***s));
    });
    let q = queue.clone();
    let services = controller.services.clone();
    controller.pods.add_handler(move |change| {
        // every Service selecting the pod, before or after the change
        let (old, new) = match change {
            Change::Added(p) | Change::Deleted(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
        };
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        for service in services.list_namespace(&namespace) {
            let Some(selector) = selector_of(&service) else {
                continue;
            };
            let selects =
                |p: &Pod| selector.matches(&p.metadata.labels.clone().unwrap_or_default());
            if selects(new) || old.is_some_and(|o| selects(o)) {
                q.add(key_of(&*service));
            }
        }
    });
    let q = queue.clone();
    let tracker = controller.tracker.clone();
    controller.slices.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        let labels = s.metadata.labels.as_ref();
        if labels
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map(String::as_str)
            != Some(MANAGED_BY)
        {
            return;
        }
        if let (Some(service), Some(namespace)) = (
            labels.and_then(|l| l.get(SERVICE_NAME_LABEL)),
            s.metadata.namespace.as_deref(),
        ) {
            let key = format!("{namespace}/{service}");
            if let (Change::Deleted(_), Some(name)) = (change, s.metadata.name.as_deref()) {
                tracker.deleted(&key, name);
            }
            q.add(key);
        }
    });
    Box::pin(async move {
        controller.services.wait_synced().await;
        controller.pods.wait_synced().await;
        controller.slices.wait_synced().await;
        controller.nodes.wait_synced().await;
        queue
            .run(worker_count, None, NAME, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(selector: serde_json::Value, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": selector, "ports": ports, "ipFamilies": ["IPv4"]}
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i",
                "ports": [{"name": port_name, "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap())
    }

    fn zone(_: &str) -> Option<String> {
        Some("zone-a".to_owned())
    }

    fn slices_of(plan: &Plan) -> Vec<&EndpointSlice> {
        plan.create.iter().chain(plan.update.iter()).collect()
    }

    #[test]
    fn endpoints_carry_conditions_node_zone_and_the_pod() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        );
        let want = desired(
            &svc,
            &[
                pod("a", "10.0.0.1", true, "http"),
                pod("b", "10.0.0.2", false, "http"),
            ],
            &zone,
        );
        assert_eq!(want.len(), 1);
        let (ports, endpoints) = want.values().next().unwrap();
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        let b = endpoints
            .iter()
            .find(|e| e.addresses == ["10.0.0.2"])
            .unwrap();
        let c = b.conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(b.zone.as_deref(), Some("zone-a"));
        assert_eq!(b.node_name.as_deref(), Some("node-1"));
        assert_eq!(b.target_ref.as_ref().unwrap().name.as_deref(), Some("b"));
    }

    #[test]
    fn pods_resolving_a_named_port_differently_get_separate_slices() {
        let svc = service(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        );
        let mut other = (*pod("b", "10.0.0.2", true, "http")).clone();
        other.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 9090;
        let want = desired(
            &svc,
            &[
                pod("a", "10.0.0.1", true, "http"),
                Arc::new(other),
                pod("c", "10.0.0.3", true, "other"),
            ],
            &zone,
        );
        // c has no port named http: it is listed without that port
        assert_eq!(want.len(), 3);
        let plan = plan(&svc, want, &[]);
        assert_eq!(plan.create.len(), 3);
        let labels = plan.create[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/service-name"], "web");
        assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], MANAGED_BY);
        assert_eq!(labels["team"], "a");
        assert_eq!(
            plan.create[0].metadata.generate_name.as_deref(),
            Some("web-")
        );
        assert_eq!(
            plan.create[0].metadata.owner_references.as_ref().unwrap()[0].uid,
            "svc-uid"
        );
    }

    #[test]
    fn slices_hold_at_most_100_endpoints() {
        let svc = service(json!({"app": "web"}), json!([{"port": 80}]));
        let pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    "x",
                )
            })
            .collect();
        let plan = plan(&svc, desired(&svc, &pods, &zone), &[]);
        let sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn unchanged_slices_are_left_alone_and_changes_stay_in_place() {
        let svc = service(json!({"app": "web"}), json!([{"port": 80}]));
        let pods = [
            pod("a", "10.0.0.1", true, "x"),
            pod("b", "10.0.0.2", true, "x"),
        ];
        let first = plan(&svc, desired(&svc, &pods, &zone), &[]);
        let mut stored = first.create[0].clone();
        stored.metadata.name = Some("web-abcde".into());
        let stored = [Arc::new(stored)];
        let again = plan(&svc, desired(&svc, &pods, &zone), &stored);
        assert!(
            again.create.is_empty() && again.update.is_empty() && again.delete.is_empty(),
            "{again:?}"
        );
        // b becomes unready: the same slice is updated
        let changed = [
            pod("a", "10.0.0.1", true, "x"),
            pod("b", "10.0.0.2", false, "x"),
        ];
        let update = plan(&svc, desired(&svc, &changed, &zone), &stored);
        assert!(update.create.is_empty() && update.delete.is_empty());
        assert_eq!(update.update.len(), 1);
        assert_eq!(update.update[0].metadata.name.as_deref(), Some("web-abcde"));
        // a new pod fills the slice that has room
        let grown = [
            pod("a", "10.0.0.1", true, "x"),
            pod("b", "10.0.0.2", true, "x"),
            pod("c", "10.0.0.3", true, "x"),
        ];
        let fill = plan(&svc, desired(&svc, &grown, &zone), &stored);
        assert!(fill.create.is_empty());
        assert_eq!(fill.update[0].endpoints.len(), 3);
    }

    #[test]
    fn a_service_selecting_nothing_keeps_one_placeholder() {
        let svc = service(json!({"app": "web"}), json!([{"port": 80}]));
        let first = plan(&svc, desired(&svc, &[], &zone), &[]);
        assert_eq!(first.create.len(), 1);
        assert!(first.create[0].endpoints.is_empty());
        assert_eq!(first.create[0].address_type, "IPv4");
        let mut stored = first.create[0].clone();
        stored.metadata.name = Some("web-xyz".into());
        let again = plan(&svc, desired(&svc, &[], &zone), &[Arc::new(stored.clone())]);
        assert!(
            slices_of(&again).is_empty() && again.delete.is_empty(),
            "{again:?}"
        );
        // once pods come, the placeholder goes
        let with_pod = plan(
            &svc,
            desired(&svc, &[pod("a", "10.0.0.1", true, "x")], &zone),
            &[Arc::new(stored)],
        );
        assert_eq!(with_pod.create.len(), 1);
        assert_eq!(with_pod.delete.len(), 1);
    }

    #[test]
    fn terminal_and_ipless_pods_are_left_out_and_terminating_ones_marked() {
        let svc = service(json!({"app": "web"}), json!([{"port": 80}]));
        let mut done = (*pod("done", "10.0.0.9", false, "x")).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut pending = (*pod("pending", "", false, "x")).clone();
        pending.status.as_mut().unwrap().pod_ips = None;
        pending.status.as_mut().unwrap().pod_ip = None;
        let mut leaving = (*pod("leaving", "10.0.0.5", true, "x")).clone();
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let want = desired(
            &svc,
            &[Arc::new(done), Arc::new(pending), Arc::new(leaving)],
            &zone,
        );
        let endpoints = &want.values().next().unwrap().1;
        assert_eq!(endpoints.len(), 1);
        let c = endpoints[0].conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }
}
