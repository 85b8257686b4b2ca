//! The Endpoints controller: for every Service with a selector, the legacy `Endpoints`
//! object of the same name listing the pods it selects, as upstream's
//! `pkg/controller/endpoint`.
//!
//! Each selected pod with an IP of the Service's first family contributes one address
//! per Service port it resolves: ready pods (or all, with `publishNotReadyAddresses`)
//! in `addresses`, the others in `notReadyAddresses`; terminal pods are left out, and
//! terminating ones too unless not-ready addresses are published. The addresses are
//! then regrouped into subsets sharing the same ports (upstream's
//! `endpoints.RepackSubsets`), at most 1000 addresses are kept (marked
//! `endpoints.kubernetes.io/over-capacity: truncated`), and the object carries the
//! Service's labels (plus `service.kubernetes.io/headless` for a headless Service) and
//! the `endpoints.kubernetes.io/last-change-trigger-time` annotation. Endpoints whose
//! Service is gone are deleted; Services without a selector are left to whoever writes
//! their Endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::controller_utils::is_pod_ready;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name.
pub const NAME: &str = "endpoints-controller";
/// Its service account in kube-system.
pub const SERVICE_ACCOUNT: &str = "endpoint-controller";
/// The annotation with the time of the change that triggered the last update.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The annotation marking an Endpoints object cut down to [`MAX_CAPACITY`] addresses.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The label of a headless Service's Endpoints.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// How many addresses one Endpoints object holds at most.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation of leader-election records kept in Endpoints (never cleaned up).
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Upstream's `maxRetries`.
const MAX_RETRIES: u32 = 15;

/// What went wrong in one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The cache still shows an Endpoints version this controller already replaced.
    #[error(
        "endpoints informer cache is out of date, resource version {0} already processed for endpoints {1}"
    )]
    Stale(String, String),
}

/// Whether `service` has a selector this controller acts on (upstream: a non-nil
/// selector; an empty one is not stored, so it reads back as none).
fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, with an IP, and not terminating
/// unless terminating pods are included.
pub(crate) fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// Upstream's `podToEndpointAddressForService`: the pod's IP of the Service's first
/// family, its node and a reference to it.
fn pod_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = service.spec.as_ref();
    let status = pod.status.as_ref()?;
    let want_v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family == "IPv6",
        None => match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some(ip) if !ip.is_empty() && ip != "None" => is_ipv6(ip),
            _ => status.pod_ip.as_deref().is_some_and(is_ipv6),
        },
    };
    let ip = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .find(|ip| !ip.is_empty() && is_ipv6(ip) == want_v6)?;
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let pod_spec = pod.spec.as_ref();
    // upstream's ShouldSetHostname
    let hostname = pod_spec
        .filter(|s| {
            s.subdomain.as_deref() == Some(service_name)
                && service.metadata.namespace == pod.metadata.namespace
        })
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    Some(EndpointAddress {
        ip: ip.to_owned(),
        hostname,
        node_name: Some(
            pod_spec
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    })
}

fn one_subset(address: EndpointAddress, port: Option<EndpointPort>, ready: bool) -> EndpointSubset {
    let (addresses, not_ready) = if ready {
        (Some(vec![address]), None)
    } else {
        (None, Some(vec![address]))
    };
    EndpointSubset {
        addresses,
        not_ready_addresses: not_ready,
        ports: port.map(|p| vec![p]),
    }
}

/// The subsets a Service wants from the pods it selects, repacked.
pub(crate) fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(address) = pod_address(service, pod) else {
            continue;
        };
        let ready = publish || is_pod_ready(pod);
        if ports.is_empty() {
            // a headless Service may have no ports
            if spec.cluster_ip.as_deref() == Some("None") {
                subsets.push(one_subset(address, None, ready));
            }
            continue;
        }
        for port in &ports {
            let Some(number) = crate::endpointslice::resolve_port(port, pod) else {
                continue;
            };
            let port = EndpointPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: port.protocol.clone(),
                app_protocol: port.app_protocol.clone(),
            };
            subsets.push(one_subset(address.clone(), Some(port), ready));
        }
    }
    repack_subsets(subsets)
}

/// An address's identity: its IP and the UID of what it points to.
type AddressKey = (String, Option<String>);
/// A port's identity; `None` stands for "no ports" (upstream's `-1` sentinel).
type PortKey = Option<(String, i32, String, String)>;

fn address_key(a: &EndpointAddress) -> AddressKey {
    (
        a.ip.clone(),
        a.target_ref.as_ref().and_then(|r| r.uid.clone()),
    )
}

fn port_key(p: &EndpointPort) -> PortKey {
    Some((
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    ))
}

/// Upstream's `RepackSubsets`: regroups addresses so that each subset holds every
/// address serving exactly the same ports; an address not ready on a port stays not
/// ready there even if listed ready elsewhere. Addresses are sorted by IP then UID;
/// subsets and ports come in a stable order (upstream orders them by hash).
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, EndpointPort> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    for subset in subsets {
        let subset_ports: Vec<PortKey> = match subset.ports.as_deref() {
            None | Some([]) => vec![None],
            Some(list) => list
                .iter()
                .map(|p| {
                    let key = port_key(p);
                    ports.entry(key.clone()).or_insert_with(|| p.clone());
                    key
                })
                .collect(),
        };
        let listed = subset
            .addresses
            .into_iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .into_iter()
                    .flatten()
                    .map(|a| (a, false)),
            );
        for (address, ready) in listed {
            let key = address_key(&address);
            addresses.entry(key.clone()).or_insert(address);
            for port in &subset_ports {
                let set = by_port.entry(port.clone()).or_default();
                // not ready wins over ready
                let entry = set.entry(key.clone()).or_insert(ready);
                *entry = *entry && ready;
            }
        }
    }
    // the ports each distinct (address, readiness) set serves
    let mut by_set: BTreeMap<Vec<(AddressKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (port, set) in by_port {
        let set: Vec<(AddressKey, bool)> = set.into_iter().collect();
        let served = by_set.entry(set).or_default();
        if let Some(p) = port.as_ref().and_then(|_| ports.get(&port)) {
            served.push(p.clone());
        }
    }
    by_set
        .into_iter()
        .map(|(set, mut served)| {
            served.sort_by_key(port_key);
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let list: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .filter_map(|(key, _)| addresses.get(key).cloned())
                    .collect();
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!served.is_empty()).then_some(served),
            }
        })
        .collect()
}

/// Upstream's `truncateEndpoints`: past [`MAX_CAPACITY`] addresses, keeps ready ones
/// before not-ready ones, each subset keeping its share (rounded up) of what is kept.
/// Returns whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready.saturating_add(total_not_ready) <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            count(&subset.addresses)
        } else {
            count(&subset.not_ready_addresses)
        };
        // ceil(in_subset / total * max), in integers
        let share = if total == 0 {
            0
        } else {
            (in_subset.saturating_mul(max)).div_ceil(total)
        };
        let keep = share.min(can_be_added);
        if truncate_ready {
            if let Some(list) = subset.addresses.as_mut() {
                list.truncate(keep);
                can_be_added -= list.len();
            }
            subset.not_ready_addresses = None;
        } else if let Some(list) = subset.not_ready_addresses.as_mut() {
            list.truncate(keep);
            can_be_added -= list.len();
        }
    }
    true
}

/// Upstream's `capacityAnnotationSetCorrectly`.
fn capacity_annotation_correct(endpoints: &Endpoints) -> bool {
    let total: usize = endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if total > MAX_CAPACITY {
        return false;
    }
    !endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OVER_CAPACITY))
}

/// Subsets as compared: empty lists as absent, target references without resource
/// versions (a pod's updates that do not matter here must not cause writes).
fn normalized(subsets: &Option<Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    let addresses = |list: &Option<Vec<EndpointAddress>>| {
        list.as_ref().filter(|l| !l.is_empty()).map(|l| {
            l.iter()
                .cloned()
                .map(|mut a| {
                    if let Some(r) = a.target_ref.as_mut() {
                        r.resource_version = None;
                    }
                    if a.hostname.as_deref() == Some("") {
                        a.hostname = None;
                    }
                    a
                })
                .collect()
        })
    };
    subsets
        .iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: addresses(&s.addresses),
            not_ready_addresses: addresses(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()).map(|ports| {
                ports
                    .into_iter()
                    .map(|mut p| {
                        if p.name.as_deref() == Some("") {
                            p.name = None;
                        }
                        p
                    })
                    .collect()
            }),
        })
        .collect()
}

/// Whether the Service has a cluster IP (upstream's `IsServiceIPSet`).
fn has_cluster_ip(service: &Service) -> bool {
    !matches!(
        service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        None | Some("" | "None")
    )
}

/// Upstream's `TriggerTimeTracker`: per Service, the trigger times (a pod's Ready
/// transition, the Service's creation) seen at the last sync; the annotation is the
/// earliest of those that changed since.
#[derive(Default)]
struct TriggerTimes {
    state: Mutex<HashMap<String, ServiceTriggers>>,
}

/// The trigger times of one Service's pods (by name) and of the Service itself.
type ServiceTriggers = (HashMap<String, Timestamp>, Option<Timestamp>);

fn ready_transition(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|Time(t)| *t)
}

impl TriggerTimes {
    /// The earliest trigger time that changed since the last call for `key`, and the
    /// state before this call (for [`Self::restore`] when the write fails).
    fn compute(
        &self,
        key: &str,
        service: &Service,
        pods: &[Arc<Pod>],
    ) -> (Option<Timestamp>, ServiceTriggers) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_pods, last_service) = state.entry(key.to_owned()).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            let Some(t) = ready_transition(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if last_pods.get(&name).is_none_or(|last| t > *last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            seen.insert(name, t);
        }
        let created = service
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|Time(t)| *t);
        if let Some(t) = created {
            if last_service.is_none_or(|last| t > last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        let before = (
            std::mem::replace(last_pods, seen),
            std::mem::replace(last_service, created),
        );
        (earliest, before)
    }

    /// Puts back the state [`Self::compute`] replaced, when what it computed was not
    /// written.
    fn restore(&self, key: &str, before: ServiceTriggers) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), before);
    }

    fn forget(&self, key: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The Endpoints wanted for `service`, starting from what exists (`current`), or
/// `None` when what exists is already right.
pub(crate) fn desired_endpoints(
    service: &Service,
    subsets: Vec<EndpointSubset>,
    current: Option<&Endpoints>,
    trigger: Option<Timestamp>,
) -> Option<Endpoints> {
    let service_labels = service.metadata.labels.clone().unwrap_or_default();
    if let Some(current) = current {
        let mut compare_labels = current.metadata.labels.clone().unwrap_or_default();
        compare_labels.remove(HEADLESS_LABEL);
        let wanted = Some(subsets.clone());
        if normalized(&current.subsets) == normalized(&wanted)
            && compare_labels == service_labels
            && capacity_annotation_correct(current)
        {
            return None;
        }
    }
    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        subsets: None,
    });
    let mut subsets = subsets;
    let mut annotations = endpoints.metadata.annotations.take().unwrap_or_default();
    match trigger {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_owned(), t.to_string());
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if truncate(&mut subsets) {
        annotations.insert(OVER_CAPACITY.to_owned(), "truncated".to_owned());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let mut labels = service_labels;
    if has_cluster_ip(service) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    }
    endpoints.metadata.annotations = Some(annotations);
    endpoints.metadata.labels = Some(labels);
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    Some(endpoints)
}

struct Controller {
    cx: Context,
    services: Informer<Service>,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
    triggers: TriggerTimes,
    /// Per Service, the Endpoints resource version this controller replaced
    /// (upstream's `staleEndpointsTracker`).
    stale: Mutex<HashMap<String, String>>,
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.cx.client.clone(), namespace);
        let Some(service) = self.services.get(namespace, name) else {
            // the Service is gone: so are its Endpoints
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            self.triggers.forget(key);
            self.stale
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
            return Ok(());
        };
        let Some(selector) = selector(&service) else {
            // no selector (or ExternalName): the Endpoints are written out of band
            return Ok(());
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(namespace)
            .into_iter()
            .filter(|p| selects(selector, p))
            .collect();
        let current = self.endpoints.get(namespace, name);
        if let Some(current) = &current {
            let rv = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let stale = self.stale.lock().unwrap_or_else(|e| e.into_inner());
            if stale.get(key) == Some(&rv) {
                // before the tracker moves on, so the retry still carries the trigger
                return Err(Error::Stale(rv, key.to_owned()));
            }
        }
        // computed before the no-op check so the tracker's state moves on anyway
        let (trigger, before) = self.triggers.compute(key, &service, &pods);
        let subsets = desired_subsets(&service, &pods);
        let Some(wanted) = desired_endpoints(&service, subsets, current.as_deref(), trigger) else {
            return Ok(());
        };
        let result = match &current {
            None => api.create(&PostParams::default(), &wanted).await,
            Some(_) => api.replace(name, &PostParams::default(), &wanted).await,
        };
        match result {
            Ok(written) => {
                if let Some(current) = &current {
                    let old = current
                        .metadata
                        .resource_version
                        .clone()
                        .unwrap_or_default();
                    if written.metadata.resource_version.as_deref() != Some(old.as_str()) {
                        self.stale
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key.to_owned(), old);
                    }
                }
                Ok(())
            }
            // a namespace being deleted refuses new objects: nothing to publish there
            Err(kube::Error::Api(s))
                if current.is_none() && s.code == 403 && s.message.contains("being terminated") =>
            {
                Ok(())
            }
            Err(e) => {
                // the retry publishes the same changes: it must carry their trigger time
                self.triggers.restore(key, before);
                let (reason, message) = if current.is_none() {
                    (
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {namespace}/{name}: {e}"),
                    )
                } else {
                    (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {namespace}/{name}: {e}"),
                    )
                };
                self.cx
                    .recorder
                    .event(&wanted, "Warning", reason, message, NAME);
                Err(e.into())
            }
        }
    }
}

/// What of a pod its Endpoints can show: labels (which Services select it), IPs,
/// readiness, deletion, phase, hostname, subdomain and node.
#[allow(clippy::type_complexity)]
fn endpoint_view(
    pod: &Pod,
) -> (
    Option<&std::collections::BTreeMap<String, String>>,
    bool,
    bool,
    Option<&str>,
    Option<&str>,
    Option<&Vec<k8s_openapi::api::core::v1::PodIP>>,
    Option<&str>,
    Option<&str>,
    Option<&str>,
) {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    (
        pod.metadata.labels.as_ref(),
        pod.metadata.deletion_timestamp.is_some(),
        crate::controller_utils::is_pod_ready(pod),
        status.and_then(|s| s.phase.as_deref()),
        status.and_then(|s| s.pod_ip.as_deref()),
        status.and_then(|s| s.pod_ips.as_ref()),
        spec.and_then(|s| s.hostname.as_deref()),
        spec.and_then(|s| s.subdomain.as_deref()),
        spec.and_then(|s| s.node_name.as_deref()),
    )
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_endpoint_syncs;
    let controller = Arc::new(Controller {
        services: cx.informers.informer::<Service>(),
        pods: cx.informers.informer::<Pod>(),
        endpoints: cx.informers.informer::<Endpoints>(),
        triggers: TriggerTimes::default(),
        stale: Mutex::default(),
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
        // every Service selecting the pod before or after the change
        let (old, new) = match change {
            Change::Added(p) | Change::Deleted(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
        };
        // a change Endpoints cannot show (status churn, annotations, a relist) syncs
        // nothing, as upstream's `podEndpointsChanged`
        if old.is_some_and(|o| endpoint_view(o) == endpoint_view(new)) {
            return;
        }
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        for service in services.list_namespace(&namespace) {
            let Some(selector) = selector(&service) else {
                continue;
            };
            if selects(selector, new) || old.is_some_and(|o| selects(selector, o)) {
                q.add(key_of(&*service));
            }
        }
    });
    let q = queue.clone();
    controller.endpoints.add_handler(move |change| {
        // a deleted Endpoints object is recreated when its Service still wants it
        if let Change::Deleted(e) = change {
            q.add(key_of(&***e));
        }
    });
    Box::pin(async move {
        controller.services.wait_synced().await;
        controller.pods.wait_synced().await;
        controller.endpoints.wait_synced().await;
        // upstream's checkLeftoverEndpoints: Endpoints whose Service went away while
        // the controller was down are found once at start
        for endpoints in controller.endpoints.list() {
            let leader = endpoints
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
            if !leader {
                queue.add(key_of(&*endpoints));
            }
        }
        queue
            .run(worker_count, Some(MAX_RETRIES), NAME, move |key: String| {
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

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"},
                "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "node-1", "hostname": name, "subdomain": "web",
                    "containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "lastTransitionTime": "2024-01-02T00:00:00Z"}]}
            }))
            .unwrap(),
        )
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_share_one_subset_per_port_set() {
        let svc = service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}),
        );
        let subsets = desired_subsets(
            &svc,
            &[
                pod("b", "10.0.0.2", true),
                pod("a", "10.0.0.1", true),
                pod("c", "10.0.0.3", false),
            ],
        );
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
        let a = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.hostname.as_deref(), Some("a"));
        assert_eq!(a.node_name.as_deref(), Some("node-1"));
        assert_eq!(a.target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-a"));
    }

    #[test]
    fn publish_not_ready_lists_all_as_ready_and_keeps_terminating_pods() {
        let mut leaving = (*pod("d", "10.0.0.4", true)).clone();
        leaving.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let pods = [pod("c", "10.0.0.3", false), Arc::new(leaving)];
        let publish = service(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"port": 80, "targetPort": 80}]}),
        );
        let subsets = desired_subsets(&publish, &pods);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.3", "10.0.0.4"]);
        assert!(subsets[0].not_ready_addresses.is_none());
        let plain =
            service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}));
        let subsets = desired_subsets(&plain, &pods);
        assert!(subsets[0].addresses.is_none());
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    }

    #[test]
    fn terminal_pods_and_unresolved_ports_are_left_out() {
        let mut done = (*pod("done", "10.0.0.9", false)).clone();
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        let svc = service(json!({"selector": {"app": "web"},
            "ports": [{"name": "x", "port": 81, "targetPort": "missing"}]}));
        assert!(desired_subsets(&svc, &[Arc::new(done)]).is_empty());
        assert!(desired_subsets(&svc, &[pod("a", "10.0.0.1", true)]).is_empty());
    }

    #[test]
    fn headless_service_without_ports_lists_addresses_only() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let subsets = desired_subsets(&svc, &[pod("a", "10.0.0.1", true)]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        let wanted = desired_endpoints(&svc, subsets, None, None).unwrap();
        assert_eq!(
            wanted.metadata.labels.as_ref().unwrap().get(HEADLESS_LABEL),
            Some(&String::new())
        );
    }

    #[test]
    fn repack_groups_addresses_by_the_ports_they_serve() {
        let addr = |ip: &str| EndpointAddress {
            ip: ip.into(),
            ..EndpointAddress::default()
        };
        let port = |n: i32| EndpointPort {
            port: n,
            ..EndpointPort::default()
        };
        let raw = vec![
            one_subset(addr("10.0.0.1"), Some(port(80)), true),
            one_subset(addr("10.0.0.1"), Some(port(443)), true),
            one_subset(addr("10.0.0.2"), Some(port(80)), true),
            // ready on 80, not ready on 80 elsewhere: not ready wins
            one_subset(addr("10.0.0.3"), Some(port(80)), true),
            one_subset(addr("10.0.0.3"), Some(port(80)), false),
        ];
        let packed = repack_subsets(raw);
        assert_eq!(packed.len(), 2);
        let on_80 = packed
            .iter()
            .find(|s| {
                s.ports.as_ref().unwrap().len() == 1 && s.ports.as_ref().unwrap()[0].port == 80
            })
            .unwrap();
        assert_eq!(ips(&on_80.addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&on_80.not_ready_addresses), ["10.0.0.3"]);
        let on_443 = packed.iter().find(|s| !std::ptr::eq(*s, on_80)).unwrap();
        assert_eq!(ips(&on_443.addresses), ["10.0.0.1"]);
    }

    #[test]
    fn over_capacity_keeps_ready_addresses_first_and_marks_truncation() {
        let addr = |i: usize| EndpointAddress {
            ip: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            ..EndpointAddress::default()
        };
        let mut subsets = vec![EndpointSubset {
            addresses: Some((0..800).map(addr).collect()),
            not_ready_addresses: Some((800..1300).map(addr).collect()),
            ports: None,
        }];
        assert!(truncate(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 800);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 200);
        let mut ready_only = vec![EndpointSubset {
            addresses: Some((0..1500).map(addr).collect()),
            not_ready_addresses: Some((1500..1510).map(addr).collect()),
            ports: None,
        }];
        assert!(truncate(&mut ready_only));
        assert_eq!(ready_only[0].addresses.as_ref().unwrap().len(), 1000);
        assert!(ready_only[0].not_ready_addresses.is_none());
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.1"}));
        let big = vec![EndpointSubset {
            addresses: Some((0..1001).map(addr).collect()),
            not_ready_addresses: None,
            ports: None,
        }];
        let wanted = desired_endpoints(&svc, big, None, None).unwrap();
        assert_eq!(
            wanted.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY],
            "truncated"
        );
        assert!(
            !wanted
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .contains_key(HEADLESS_LABEL)
        );
    }

    #[test]
    fn unchanged_endpoints_are_not_rewritten_and_carry_the_trigger_time() {
        let svc = service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "targetPort": 8080}]}),
        );
        let pods = [pod("a", "10.0.0.1", true)];
        let triggers = TriggerTimes::default();
        let first = triggers.compute("default/web", &svc, &pods).0;
        assert_eq!(
            first.map(|t| t.to_string()).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        let wanted = desired_endpoints(&svc, desired_subsets(&svc, &pods), None, first).unwrap();
        assert_eq!(
            wanted.metadata.annotations.as_ref().unwrap()[LAST_CHANGE_TRIGGER_TIME],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(wanted.metadata.labels.as_ref().unwrap()["team"], "a");
        // nothing changed since: no trigger time, and nothing to write
        let (none, before) = triggers.compute("default/web", &svc, &pods);
        assert_eq!(none, None);
        // a failed write puts the state back: the retry carries the trigger again
        triggers.restore("default/web", (HashMap::new(), None));
        assert_eq!(triggers.compute("default/web", &svc, &pods).0, first);
        triggers.restore("default/web", before);
        assert_eq!(triggers.compute("default/web", &svc, &pods).0, None);
        let mut stored = wanted.clone();
        stored.metadata.resource_version = Some("5".into());
        assert!(
            desired_endpoints(&svc, desired_subsets(&svc, &pods), Some(&stored), None).is_none()
        );
        // a pod becoming unready is written
        let changed = [pod("a", "10.0.0.1", false)];
        let update =
            desired_endpoints(&svc, desired_subsets(&svc, &changed), Some(&stored), None).unwrap();
        let subsets = update.subsets.unwrap();
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.1"]);
        assert!(
            !update
                .metadata
                .annotations
                .unwrap()
                .contains_key(LAST_CHANGE_TRIGGER_TIME)
        );
    }
}
