//! The EndpointSlice mirroring controller: for Services without a selector, whose
//! Endpoints someone else writes, EndpointSlices mirroring those Endpoints, as
//! upstream's `pkg/controller/endpointslicemirroring`.
//!
//! Each subset's addresses (at most 1000 per subset; invalid IPs skipped with an
//! `InvalidIPAddress` event, the excess with `TooManyAddressesToMirror`) are grouped
//! by address type and ports, one slice per group. Slices carry the Endpoints' labels
//! and annotations (less the trigger-time and last-applied ones),
//! `kubernetes.io/service-name`,
//! `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`,
//! and the Endpoints as their controller owner. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` or holding a leader-election
//! record are not mirrored; nor are those of a Service with a selector (the
//! EndpointSlice controller writes its slices), and mirrored slices are deleted when
//! mirroring stops.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The controller's name (and its service account's).
pub const NAME: &str = "endpointslicemirroring-controller";
/// The `managed-by` label value of mirrored slices.
pub const MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";
/// The label that keeps an Endpoints object from being mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Upstream's `--mirroring-max-endpoints-per-subset` default.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Upstream's `maxRetries`.
const MAX_RETRIES: u32 = 15;
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What went wrong in one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("{action} EndpointSlice for Endpoints {key}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The Endpoints.
        key: String,
        /// The cause.
        source: kube::Error,
    },
}

/// Upstream's `shouldMirror`.
fn should_mirror(endpoints: &Endpoints) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    let leader = endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    !skip && !leader
}

fn has_selector(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// A group's identity: address type and ports.
type GroupKey = (String, Vec<(String, i32, String, String)>);

fn group_key(address_type: &str, ports: &[EndpointPort]) -> GroupKey {
    let mut ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    ports.sort();
    (address_type.to_owned(), ports)
}

fn to_endpoint(address: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..EndpointConditions::default()
        }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone().filter(|n| !n.is_empty()),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Endpoint::default()
    }
}

/// The endpoints wanted per group, with counts of what was skipped.
#[derive(Debug, Default)]
pub(crate) struct Desired {
    groups: BTreeMap<GroupKey, (Vec<EndpointPort>, Vec<Endpoint>)>,
    invalid: usize,
    skipped: usize,
}

/// Computes the mirrored endpoints of `endpoints`.
pub(crate) fn desired(endpoints: &Endpoints) -> Desired {
    let mut out = Desired::default();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let listed: Vec<(&EndpointAddress, bool)> = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| (a, false)),
            )
            .collect();
        let mut added = 0usize;
        for (address, ready) in &listed {
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                break;
            }
            let Ok(ip) = address.ip.parse::<IpAddr>() else {
                out.invalid += 1;
                continue;
            };
            let address_type = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            let group = out
                .groups
                .entry(group_key(address_type, &ports))
                .or_insert_with(|| (ports.clone(), Vec::new()));
            let endpoint = to_endpoint(address, *ready);
            // the same address listed twice is mirrored once
            if !group.1.iter().any(|e| e.addresses == endpoint.addresses) {
                group.1.push(endpoint);
            }
            added += 1;
        }
        out.skipped += listed.len().saturating_sub(added);
    }
    for (_, endpoints) in out.groups.values_mut() {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    out
}

fn slice_meta(endpoints: &Endpoints) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), name);
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    let annotations = endpoints
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != TRIGGER_TIME_ANNOTATION && k != LAST_APPLIED_ANNOTATION)
        .collect();
    (labels, annotations)
}

fn owner(endpoints: &Endpoints) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Endpoints".to_owned(),
        name: endpoints.metadata.name.clone().unwrap_or_default(),
        uid: endpoints.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The writes one reconcile makes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<String>,
}

/// Upstream's reconciler: one slice per group; the first existing slice of a group is
/// rewritten when its endpoints or metadata differ, the others deleted; groups no
/// longer wanted lose their slices. Deletions are recycled into would-be creations.
pub(crate) fn plan(endpoints: &Endpoints, want: Desired, existing: &[Arc<EndpointSlice>]) -> Plan {
    let (labels, annotations) = slice_meta(endpoints);
    let mut by_group: BTreeMap<GroupKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        by_group
            .entry(group_key(
                &slice.address_type,
                slice.ports.as_deref().unwrap_or_default(),
            ))
            .or_default()
            .push(slice);
    }
    for slices in by_group.values_mut() {
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let mut plan = Plan::default();
    for (key, (ports, wanted)) in &want.groups {
        let slices = by_group.remove(key).unwrap_or_default();
        let mut wanted = wanted.clone();
        wanted.truncate(MAX_ENDPOINTS_PER_SUBSET);
        let build = |name: Option<String>| EndpointSlice {
            metadata: ObjectMeta {
                name: name.clone(),
                generate_name: name.is_none().then(|| {
                    format!(
                        "{}-",
                        endpoints.metadata.name.as_deref().unwrap_or_default()
                    )
                }),
                namespace: endpoints.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                owner_references: Some(vec![owner(endpoints)]),
                ..ObjectMeta::default()
            },
            address_type: key.0.clone(),
            endpoints: wanted.clone(),
            ports: Some(ports.clone()),
        };
        match slices.split_first() {
            None => plan.create.push(build(None)),
            Some((first, rest)) => {
                plan.delete
                    .extend(rest.iter().filter_map(|s| s.metadata.name.clone()));
                let same = first.endpoints == wanted
                    && first.metadata.labels.as_ref() == Some(&labels)
                    && first.metadata.annotations.clone().unwrap_or_default() == annotations
                    && first
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == owner(endpoints).uid && o.controller == Some(true));
                if !same {
                    let mut slice = build(first.metadata.name.clone());
                    slice.metadata.resource_version = first.metadata.resource_version.clone();
                    plan.update.push(slice);
                }
            }
        }
    }
    for slices in by_group.into_values() {
        plan.delete
            .extend(slices.iter().filter_map(|s| s.metadata.name.clone()));
    }
    // upstream's recycleSlices: turn a create and a delete into an update
    while !plan.create.is_empty() && !plan.delete.is_empty() {
        let (Some(mut slice), Some(name)) = (plan.create.pop(), plan.delete.pop()) else {
            break;
        };
        slice.metadata.generate_name = None;
        slice.metadata.name = Some(name);
        plan.update.push(slice);
    }
    plan
}

struct Controller {
    cx: Context,
    services: Informer<Service>,
    endpoints: Informer<Endpoints>,
    slices: Informer<EndpointSlice>,
}

impl Controller {
    fn mirrored(&self, namespace: &str, name: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .list_namespace(namespace)
            .into_iter()
            .filter(|s| {
                let labels = s.metadata.labels.as_ref();
                labels
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .map(String::as_str)
                    == Some(name)
                    && labels
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str)
                        == Some(MANAGED_BY)
            })
            .collect()
    }

    async fn delete_all(&self, key: &str, slices: &[Arc<EndpointSlice>]) -> Result<(), Error> {
        let (namespace, _) = split_key(key);
        let api: Api<EndpointSlice> = Api::namespaced(self.cx.client.clone(), namespace);
        for slice in slices {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        action: "failed to delete",
                        key: key.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let existing = self.mirrored(namespace, name);
        let service = self.services.get(namespace, name);
        let endpoints = self.endpoints.get(namespace, name);
        let mirror = match (&service, &endpoints) {
            (Some(service), Some(endpoints)) => !has_selector(service) && should_mirror(endpoints),
            _ => false,
        };
        let (true, Some(endpoints)) = (mirror, endpoints) else {
            return self.delete_all(key, &existing).await;
        };
        if endpoints.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let want = desired(&endpoints);
        if want.invalid > 0 {
            self.cx.recorder.event(
                &*endpoints,
                "Warning",
                "InvalidIPAddress",
                format!(
                    "Skipped {} invalid IP addresses when mirroring to EndpointSlices",
                    want.invalid
                ),
                NAME,
            );
        }
        let skipped = want.skipped;
        if skipped > want.invalid {
            self.cx.recorder.event(
                &*endpoints,
                "Warning",
                "TooManyAddressesToMirror",
                format!(
                    "A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to EndpointSlices per Endpoints subset. {skipped} addresses were skipped"
                ),
                NAME,
            );
        }
        let plan = plan(&endpoints, want, &existing);
        let api: Api<EndpointSlice> = Api::namespaced(self.cx.client.clone(), namespace);
        let fail = |action: &'static str| {
            let key = key.to_owned();
            move |source| Error::Kube {
                action,
                key,
                source,
            }
        };
        for slice in plan.create {
            match api.create(&PostParams::default(), &slice).await {
                Ok(_) => {}
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains("being terminated") =>
                {
                    return Ok(());
                }
                Err(e) => return Err(fail("failed to create")(e)),
            }
        }
        for slice in plan.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let mut slice = slice;
            // a recycled slice is replaced at whatever version it has now
            slice.metadata.resource_version = None;
            api.replace(&name, &PostParams::default(), &slice)
                .await
                .map_err(fail("failed to update"))?;
        }
        for name in plan.delete {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(fail("failed to delete")(e)),
            }
        }
        Ok(())
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.mirroring_concurrent_service_endpoint_syncs;
    let controller = Arc::new(Controller {
        services: cx.informers.informer::<Service>(),
        endpoints: cx.informers.informer::<Endpoints>(),
        slices: cx.informers.informer::<EndpointSlice>(),
        cx,
    });
    let queue = WorkQueue::<String>::new();
    let q = queue.clone();
    controller.services.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        q.add(key_of(&***s));
    });
    let q = queue.clone();
    controller.endpoints.add_handler(move |change| {
        let (Change::Added(e) | Change::Updated { new: e, .. } | Change::Deleted(e)) = change;
        q.add(key_of(&***e));
    });
    let q = queue.clone();
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
            q.add(format!("{namespace}/{service}"));
        }
    });
    Box::pin(async move {
        controller.services.wait_synced().await;
        controller.endpoints.wait_synced().await;
        controller.slices.wait_synced().await;
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

    fn endpoints(subsets: serde_json::Value, labels: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "default", "uid": "ep-uid", "labels": labels,
                "annotations": {"note": "x", "endpoints.kubernetes.io/last-change-trigger-time": "t"}},
            "subsets": subsets
        }))
        .unwrap()
    }

    #[test]
    fn subsets_become_one_slice_per_address_type_and_ports() {
        let ep = endpoints(
            json!([
                {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1", "nodeName": "n1"}],
                 "notReadyAddresses": [{"ip": "10.0.0.3"}, {"ip": "not-an-ip"}],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
            ]),
            json!({"team": "a"}),
        );
        let want = desired(&ep);
        assert_eq!(want.invalid, 1);
        assert_eq!(want.skipped, 1);
        let plan = plan(&ep, want, &[]);
        assert_eq!(plan.create.len(), 2);
        let v4 = plan
            .create
            .iter()
            .find(|s| s.address_type == "IPv4")
            .unwrap();
        let addrs: Vec<(&str, Option<bool>)> = v4
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.addresses[0].as_str(),
                    e.conditions.as_ref().unwrap().ready,
                )
            })
            .collect();
        assert_eq!(
            addrs,
            [
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", Some(true)),
                ("10.0.0.3", Some(false))
            ]
        );
        assert_eq!(v4.endpoints[0].node_name.as_deref(), Some("n1"));
        let labels = v4.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels[SERVICE_NAME_LABEL], "ext");
        assert_eq!(labels["team"], "a");
        let annotations = v4.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.get("note").map(String::as_str), Some("x"));
        assert!(!annotations.contains_key(TRIGGER_TIME_ANNOTATION));
        let owner = &v4.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Endpoints", "ep-uid")
        );
    }

    #[test]
    fn at_most_1000_addresses_per_subset_are_mirrored() {
        let addresses: Vec<serde_json::Value> = (0..1200)
            .map(|i| json!({"ip": format!("10.0.{}.{}", i / 250, i % 250 + 1)}))
            .collect();
        let ep = endpoints(
            json!([{"addresses": addresses, "ports": [{"port": 80}]}]),
            json!({}),
        );
        let want = desired(&ep);
        assert_eq!(want.skipped, 200);
        let plan = plan(&ep, want, &[]);
        assert_eq!(plan.create[0].endpoints.len(), 1000);
    }

    #[test]
    fn unchanged_slices_are_kept_and_stale_ones_rewritten_or_deleted() {
        let ep = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]),
            json!({}),
        );
        let mut stored = plan(&ep, desired(&ep), &[]).create.remove(0);
        stored.metadata.name = Some("ext-abc".into());
        let stored = Arc::new(stored);
        let again = plan(&ep, desired(&ep), std::slice::from_ref(&stored));
        assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
        // the port changes: the old group's slice is recycled for the new one
        let moved = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 81}]}]),
            json!({}),
        );
        let recycled = plan(&moved, desired(&moved), std::slice::from_ref(&stored));
        assert!(recycled.create.is_empty() && recycled.delete.is_empty());
        assert_eq!(recycled.update[0].metadata.name.as_deref(), Some("ext-abc"));
        // no addresses left: the slice goes
        let empty = endpoints(json!([]), json!({}));
        let gone = plan(&empty, desired(&empty), &[stored]);
        assert_eq!(gone.delete, ["ext-abc"]);
    }

    #[test]
    fn skip_mirror_and_leader_records_are_not_mirrored() {
        let skip = endpoints(json!([]), json!({SKIP_MIRROR_LABEL: "true"}));
        assert!(!should_mirror(&skip));
        let plain = endpoints(json!([]), json!({}));
        assert!(should_mirror(&plain));
        let mut leader = plain.clone();
        leader
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(LEADER_ANNOTATION.into(), "{}".into());
        assert!(!should_mirror(&leader));
    }
}
