//! Service IPs and node ports, as upstream's service REST storage
//! (pkg/registry/core/service/storage and ipallocator / portallocator):
//!
//! - a ClusterIP is claimed by creating the `networking.k8s.io/v1` IPAddress object
//!   named after it (v1.33's allocator): the store's create-if-absent makes two
//!   apiservers unable to hand out one address twice, and the claim survives restarts;
//! - node ports are bits in upstream's RangeAllocation object
//!   (`/registry/ranges/servicenodeports`), updated with compare-and-swap;
//! - both are released when the Service goes (or its create fails).
//!
//! Also the Service defaults (`SetDefaults_Service`) and the `kubernetes` Service in
//! `default` pointing at the apiserver.

use std::net::Ipv4Addr;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::resources::{GroupKind, ResourceInfo};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};

use crate::storage::{Preconditions, Storage, StorageError};

/// Upstream's `--service-node-port-range` default.
pub const DEFAULT_NODE_PORT_RANGE: (u16, u16) = (30000, 32767);
/// kubeadm's (and rkube's) default `--service-cluster-ip-range`.
pub const DEFAULT_SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);

const NODE_PORTS_KEY: &str = "/registry/ranges/servicenodeports";

/// The service network of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// `--service-cluster-ip-range` (IPv4).
    pub cidr: (Ipv4Addr, u8),
    /// `--service-node-port-range`, inclusive.
    pub node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            cidr: DEFAULT_SERVICE_CIDR,
            node_ports: DEFAULT_NODE_PORT_RANGE,
        }
    }
}

impl ServiceNetwork {
    fn base(&self) -> u32 {
        u32::from(self.cidr.0) & self.mask()
    }

    fn mask(&self) -> u32 {
        if self.cidr.1 == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.cidr.1.min(32)))
        }
    }

    /// Addresses usable for Services: the range without its network and broadcast addresses.
    fn size(&self) -> u32 {
        (!self.mask()).saturating_sub(1)
    }

    /// The first usable address: the `kubernetes` Service's, as upstream.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip & self.mask() == self.base() && ip != self.base() && ip != self.base() | !self.mask()
    }

    /// Parses `10.96.0.0/12`.
    pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
        let (ip, bits) = text.split_once('/')?;
        let bits: u8 = bits.parse().ok().filter(|b| (8..=30).contains(b))?;
        Some((ip.parse().ok()?, bits))
    }

    /// Parses `30000-32767`.
    pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
        let (low, high) = text.split_once('-')?;
        let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        (low <= high).then_some((low, high))
    }
}

fn is_services(resource: &ResourceInfo) -> bool {
    resource.group.is_empty() && resource.plural == "services"
}

/// Upstream's Service defaults, applied on create.
pub fn set_defaults(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("type").or_insert_with(|| json!("ClusterIP"));
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    let external = spec.get("type").and_then(Value::as_str) != Some("ExternalName");
    if external {
        spec.entry("internalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert_with(|| json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                port.entry("targetPort").or_insert(number);
            }
        }
    }
}

/// Service-specific validation (a subset of upstream's `ValidateService`).
pub fn validate(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported("spec.type", kind, TYPES));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && kind != "ExternalName" && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    for (i, port) in ports.iter().enumerate() {
        match port["port"].as_i64() {
            Some(p) if (1..=65535).contains(&p) => {}
            Some(p) => errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                p,
                "must be between 1 and 65535, inclusive",
            )),
            None => errors.push(FieldError::required(format!("spec.ports[{i}].port"), "")),
        }
        if ports.len() > 1 && port["name"].as_str().is_none_or(str::is_empty) {
            errors.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
    }
    errors
}

/// What a Service create claimed, to give back if the create fails.
#[derive(Default)]
pub struct Claims {
    ip: Option<Ipv4Addr>,
    ports: Vec<u16>,
}

fn invalid(name: &str, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(&GroupKind::core("Service"), name, errors)
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("/registry/ipaddresses/{ip}")
}

/// Claims the ClusterIP and node ports of a new Service, filling them in.
pub async fn allocate(
    storage: &dyn Storage,
    network: &ServiceNetwork,
    resource: &ResourceInfo,
    object: &mut Value,
) -> Result<Claims, StatusError> {
    let mut claims = Claims::default();
    if !is_services(resource) {
        return Ok(claims);
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let kind = object
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if kind != "ExternalName" {
        let requested = object
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if requested != "None" {
            let ip = match claim_ip(storage, network, &requested, &namespace, &name).await {
                Ok(ip) => ip,
                Err(e) => return Err(e),
            };
            claims.ip = Some(ip);
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("clusterIP".into(), json!(ip.to_string()));
                spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                spec.insert("ipFamilies".into(), json!(["IPv4"]));
                spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
            }
        }
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        let ports_len = object
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..ports_len {
            let pointer = format!("/spec/ports/{i}/nodePort");
            let wanted = object
                .pointer(&pointer)
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            match claim_node_port(storage, network, wanted, &name, i).await {
                Ok(port) => {
                    claims.ports.push(port);
                    if let Some(p) = object
                        .pointer_mut(&format!("/spec/ports/{i}"))
                        .and_then(Value::as_object_mut)
                    {
                        p.insert("nodePort".into(), json!(port));
                    }
                }
                Err(e) => {
                    release(storage, network, &claims).await;
                    return Err(e);
                }
            }
        }
    }
    Ok(claims)
}

async fn claim_ip(
    storage: &dyn Storage,
    network: &ServiceNetwork,
    requested: &str,
    namespace: &str,
    name: &str,
) -> Result<Ipv4Addr, StatusError> {
    let record = |ip: Ipv4Addr| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {
                "name": ip.to_string(),
                "labels": {"ipaddress.kubernetes.io/ip-family": "IPv4", "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"},
                "uid": super::meta::new_uid(),
                "creationTimestamp": super::meta::now_rfc3339(),
            },
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": namespace, "name": name}},
        })
    };
    if !requested.is_empty() {
        let field_error = |detail: String| {
            invalid(
                name,
                &[FieldError::invalid(
                    "spec.clusterIPs",
                    format!("[]string{{\"{requested}\"}}"),
                    detail,
                )],
            )
        };
        let ip: Ipv4Addr = requested
            .parse()
            .map_err(|_| field_error("must be a valid IP address".into()))?;
        // an address of another ready ServiceCIDR is as good (upstream's MetaAllocator)
        if !network.contains(ip)
            && !super::service_cidrs::ready_cidr_contains(storage, ip.into()).await
        {
            return Err(field_error(format!(
                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}/{}",
                Ipv4Addr::from(network.base()),
                network.cidr.1
            )));
        }
        return match storage
            .create(&ip_key(ip), Bytes::from(record(ip).to_string()))
            .await
        {
            Ok(_) => Ok(ip),
            Err(StorageError::AlreadyExists { .. }) => Err(field_error(format!(
                "failed to allocate IP {ip}: provided IP is already allocated"
            ))),
            Err(e) => Err(StatusError::internal_error(e)),
        };
    }
    let size = network.size();
    for _ in 0..64 {
        // The first address is the kubernetes Service's; random picks start after it.
        let offset = if size > 1 {
            rand::rng().random_range(2..=size)
        } else {
            1
        };
        let ip = Ipv4Addr::from(network.base() + offset);
        match storage
            .create(&ip_key(ip), Bytes::from(record(ip).to_string()))
            .await
        {
            Ok(_) => return Ok(ip),
            Err(StorageError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(StatusError::internal_error(e)),
        }
    }
    Err(StatusError::internal_error(
        "failed to allocate a serviceIP: range is full",
    ))
}

/// Sets or clears one bit of the node-port bitmap with compare-and-swap.
async fn update_node_ports(
    storage: &dyn Storage,
    network: &ServiceNetwork,
    change: impl Fn(&mut Vec<u8>) -> Result<(), StatusError> + Send + Sync,
) -> Result<(), StatusError> {
    let range = format!("{}-{}", network.node_ports.0, network.node_ports.1);
    let update = |current: Option<&crate::storage::KeyValue>| -> Result<Bytes, StorageError> {
        let object: Value = current
            .and_then(|kv| serde_json::from_slice(&kv.value).ok())
            .unwrap_or_else(|| json!({}));
        let mut bits = object["data"]
            .as_str()
            .and_then(|d| STANDARD.decode(d).ok())
            .unwrap_or_default();
        change(&mut bits).map_err(|e| StorageError::Aborted(Box::new(e)))?;
        let record = json!({"kind": "RangeAllocation", "apiVersion": "v1", "metadata": {}, "range": range, "data": STANDARD.encode(&bits)});
        Ok(Bytes::from(record.to_string()))
    };
    storage
        .guaranteed_update(NODE_PORTS_KEY, &Preconditions::default(), true, &update)
        .await
        .map(|_| ())
        .map_err(|e| {
            super::storage_error(
                e,
                &apimachinery::resources::GroupResource::core("services"),
                "",
            )
        })
}

async fn claim_node_port(
    storage: &dyn Storage,
    network: &ServiceNetwork,
    wanted: Option<u16>,
    name: &str,
    index: usize,
) -> Result<u16, StatusError> {
    let (low, high) = network.node_ports;
    let chosen = std::sync::Mutex::new(0u16);
    let field = format!("spec.ports[{index}].nodePort");
    update_node_ports(storage, network, |bits| {
        let span = usize::from(high - low) + 1;
        bits.resize(span.div_ceil(8), 0);
        let is_set = |bits: &Vec<u8>, i: usize| bits[i / 8] & (1 << (i % 8)) != 0;
        let index = match wanted {
            Some(port) if !(low..=high).contains(&port) => {
                return Err(invalid(name, &[FieldError::invalid(field.clone(), i64::from(port), format!("provided port is not in the valid range. The range of valid ports is {low}-{high}"))]));
            }
            Some(port) => {
                let i = usize::from(port - low);
                if is_set(bits, i) {
                    return Err(invalid(name, &[FieldError::invalid(field.clone(), i64::from(port), "provided port is already allocated")]));
                }
                i
            }
            None => {
                let start = rand::rng().random_range(0..span);
                (0..span)
                    .map(|k| (start + k) % span)
                    .find(|i| !is_set(bits, *i))
                    .ok_or_else(|| StatusError::internal_error("failed to allocate a nodePort: range is full"))?
            }
        };
        bits[index / 8] |= 1 << (index % 8);
        if let Ok(mut c) = chosen.lock() {
            *c = low + index as u16;
        }
        Ok(())
    })
    .await?;
    Ok(chosen.lock().map(|c| *c).unwrap_or(low))
}

/// Gives back what a Service held (on delete, or after a failed create).
pub async fn release(storage: &dyn Storage, network: &ServiceNetwork, claims: &Claims) {
    if let Some(ip) = claims.ip
        && let Err(e) = storage.delete(&ip_key(ip), &Preconditions::default()).await
        && !matches!(e, StorageError::NotFound { .. })
    {
        tracing::warn!(%ip, error = %e, "releasing a service IP failed");
    }
    if claims.ports.is_empty() {
        return;
    }
    let ports = claims.ports.clone();
    let low = network.node_ports.0;
    let result = update_node_ports(storage, network, move |bits| {
        for port in &ports {
            if let Some(i) = port.checked_sub(low).map(usize::from)
                && let Some(byte) = bits.get_mut(i / 8)
            {
                *byte &= !(1 << (i % 8));
            }
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e.0.message, "releasing node ports failed");
    }
}

/// What a stored Service holds, for release on delete.
pub fn claims_of(resource: &ResourceInfo, object: &Value) -> Claims {
    if !is_services(resource) {
        return Claims::default();
    }
    Claims {
        ip: object
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok()),
        ports: object
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| p["nodePort"].as_u64())
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Keeps what a Service update may not change (clusterIP, node ports), as upstream.
pub fn keep_allocations(
    resource: &ResourceInfo,
    current: &Value,
    updated: &mut Value,
) -> Vec<FieldError> {
    if !is_services(resource) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let old_ip = current.pointer("/spec/clusterIP").cloned();
    let new_ip = updated.pointer("/spec/clusterIP").cloned();
    match (&old_ip, &new_ip) {
        (Some(old), Some(new)) if old != new && new != "" => {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                new.as_str().unwrap_or(""),
                "may not change once set",
            ));
        }
        _ => {
            if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
                for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                    if let Some(v) = current.pointer(&format!("/spec/{field}")) {
                        spec.insert(field.into(), v.clone());
                    }
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use apimachinery::resources::find;

    fn service(name: &str, kind: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"type": kind, "ports": [{"port": 80}]}})
    }

    #[test]
    fn ranges_parse_and_exclude_network_and_broadcast() {
        let net = ServiceNetwork {
            cidr: ServiceNetwork::parse_cidr("10.0.0.0/24").unwrap(),
            node_ports: ServiceNetwork::parse_port_range("30000-30002").unwrap(),
        };
        assert_eq!(net.first_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert!(net.contains(Ipv4Addr::new(10, 0, 0, 254)));
        assert!(
            !net.contains(Ipv4Addr::new(10, 0, 0, 255))
                && !net.contains(Ipv4Addr::new(10, 0, 0, 0))
        );
        assert!(!net.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(net.size(), 254);
        assert!(ServiceNetwork::parse_cidr("nonsense").is_none());
    }

    #[tokio::test]
    async fn ips_and_node_ports_are_never_handed_out_twice() {
        let store = MemoryStore::new();
        let services = find("", "v1", "services").unwrap();
        let net = ServiceNetwork {
            cidr: (Ipv4Addr::new(10, 0, 0, 0), 29),
            node_ports: (30000, 30003),
        };
        let mut seen_ips = std::collections::HashSet::new();
        let mut seen_ports = std::collections::HashSet::new();
        for i in 0..4 {
            let mut svc = service(&format!("s{i}"), "NodePort");
            set_defaults(&mut svc);
            allocate(&store, &net, services, &mut svc).await.unwrap();
            assert!(seen_ips.insert(svc["spec"]["clusterIP"].as_str().unwrap().to_owned()));
            assert!(seen_ports.insert(svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap()));
            assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        }
        // Four node ports in the range, all taken now.
        let mut full = service("full", "NodePort");
        let err = allocate(&store, &net, services, &mut full)
            .await
            .err()
            .expect("range full");
        assert!(err.0.message.contains("range is full"), "{}", err.0.message);
        // Asking for a taken IP is refused with upstream's message.
        let taken = seen_ips.iter().next().unwrap().clone();
        let mut dup = json!({"metadata": {"name": "dup", "namespace": "default"}, "spec": {"clusterIP": taken, "ports": [{"port": 1}]}});
        let err = allocate(&store, &net, services, &mut dup)
            .await
            .err()
            .expect("taken");
        assert!(
            err.0.message.contains("provided IP is already allocated"),
            "{}",
            err.0.message
        );
    }

    #[tokio::test]
    async fn releasing_frees_the_ip() {
        let store = MemoryStore::new();
        let services = find("", "v1", "services").unwrap();
        let net = ServiceNetwork::default();
        let mut svc = json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 1}]}});
        let claims = allocate(&store, &net, services, &mut svc).await.unwrap();
        release(&store, &net, &claims).await;
        let mut again = svc.clone();
        allocate(&store, &net, services, &mut again)
            .await
            .expect("the address is free again");
    }

    #[test]
    fn validation_requires_ports() {
        let errors = validate(&json!({"spec": {"type": "ClusterIP"}}));
        assert_eq!(errors[0].field, "spec.ports");
        let errors = validate(&json!({"spec": {"type": "Weird", "ports": [{"port": 70000}]}}));
        assert!(errors.iter().any(|e| e.field == "spec.type"));
        assert!(errors.iter().any(|e| e.field == "spec.ports[0].port"));
    }
}
