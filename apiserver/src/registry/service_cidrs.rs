//! ServiceCIDRs (`networking.k8s.io/v1`, GA in v1.33): their validation, as upstream's
//! `ValidateServiceCIDR` / `ValidateServiceCIDRUpdate`, the lookup the ClusterIP
//! allocator makes to accept addresses of ServiceCIDRs other than
//! `--service-cluster-ip-range`, and upstream's `kubernetes-service-cidr-controller`
//! (pkg/controlplane/controller/defaultservicecidr): the apiserver keeps the ServiceCIDR
//! named `kubernetes` holding the configured range, creating it again when it is gone
//! and marking it `Ready` when nobody has said otherwise. Its deletion protection is
//! the controller-manager's `service-cidr-controller`, as upstream splits it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use apimachinery::errors::{BadValue, FieldError, StatusError, go_quote};
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::{Registry, meta};
use crate::storage::{ListOptions, Storage};

/// The name of the ServiceCIDR made from `--service-cluster-ip-range`.
pub const DEFAULT_NAME: &str = "kubernetes";
/// Upstream's resync of the default ServiceCIDR ("same as
/// DefaultEndpointReconcilerInterval").
const INTERVAL: Duration = Duration::from_secs(10);
/// The message upstream's controller sets with `Ready=True` (and no reason).
pub const READY_MESSAGE: &str = "Kubernetes default Service CIDR is ready";
const CIDRS_PREFIX: &str = "/registry/servicecidrs/";

/// A CIDR as Go's sloppy parser reads it: the address, the prefix length, and
/// whether the text also passes `netip.ParsePrefix` (no leading zeros).
struct Sloppy {
    ip: IpAddr,
    bits: u8,
    strict: bool,
}

/// An IPv4 address allowing leading zeros in its octets, as `ParseIPSloppy`.
fn sloppy_v4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

fn parse_sloppy(value: &str) -> Option<Sloppy> {
    let (ip_text, bits_text) = value.split_once('/')?;
    if bits_text.is_empty() || !bits_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits_text.trim_start_matches('0').parse().unwrap_or(0);
    if bits_text.len() > 3 {
        return None;
    }
    let mut strict = !(bits_text.len() > 1 && bits_text.starts_with('0'));
    let ip = match ip_text.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            // Go's sloppy parser takes leading zeros in IPv4 octets (in both families)
            strict = false;
            match sloppy_v4(ip_text) {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let (head, tail) = ip_text.rsplit_once(':')?;
                    let v4 = sloppy_v4(tail)?;
                    let [a, b, c, d] = v4.octets();
                    let rebuilt = format!("{head}:{:x}{:02x}:{:x}{:02x}", a, b, c, d);
                    IpAddr::V6(rebuilt.parse::<Ipv6Addr>().ok()?)
                }
            }
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(Sloppy { ip, bits, strict })
}

fn masked(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

fn is_v4_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Upstream's strict `IsValidCIDR` (apimachinery `validation/ip.go`) for `path`.
fn validate_cidr(path: &str, value: &str) -> Vec<FieldError> {
    let invalid = |detail: String| vec![FieldError::invalid(path, value, detail)];
    let Some(parsed) = parse_sloppy(value) else {
        return invalid("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into());
    };
    if !parsed.strict {
        return invalid("must not have leading 0s in IP or prefix length".into());
    }
    if is_v4_mapped(parsed.ip) {
        return invalid("must not have an IPv4-mapped IPv6 address".into());
    }
    let network = masked(parsed.ip, parsed.bits);
    if network != parsed.ip {
        return invalid("must not have bits set beyond the prefix length".into());
    }
    let canonical = format!("{network}/{}", parsed.bits);
    if canonical != value {
        return invalid(format!(
            "must be in canonical form ({})",
            go_quote(&canonical)
        ));
    }
    Vec::new()
}

/// Go's `%#v` of a `[]string`.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn cidrs_of(object: &Value) -> Vec<String> {
    object
        .pointer("/spec/cidrs")
        .and_then(Value::as_array)
        .map(|cidrs| {
            cidrs
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's `ValidateServiceCIDR` (the ObjectMeta part is the registry's).
pub fn validate(object: &Value) -> Vec<FieldError> {
    const PATH: &str = "spec.cidrs";
    let cidrs = cidrs_of(object);
    let spec = || {
        BadValue::Display(format!(
            "networking.ServiceCIDRSpec{{CIDRs:{}}}",
            go_strings(&cidrs)
        ))
    };
    match cidrs.len() {
        0 => return vec![FieldError::required(PATH, "at least one CIDR required")],
        1 => {}
        2 => {
            // IsDualStackCIDRStrings: both parse, one of each family
            let families: Vec<Option<bool>> = cidrs
                .iter()
                .map(|c| parse_sloppy(c).map(|p| p.ip.is_ipv4() || is_v4_mapped(p.ip)))
                .collect();
            let dual = matches!(families.as_slice(), [Some(a), Some(b)] if a != b);
            if !dual {
                return vec![FieldError::invalid(
                    PATH,
                    spec(),
                    "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64",
                )];
            }
        }
        _ => {
            return vec![FieldError::invalid(
                PATH,
                spec(),
                "may only hold up to 2 values",
            )];
        }
    }
    cidrs
        .iter()
        .enumerate()
        .flat_map(|(i, c)| validate_cidr(&format!("{PATH}[{i}]"), c))
        .collect()
}

/// Upstream's `ValidateServiceCIDRUpdate`: the CIDRs may not change.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (new_cidrs, old_cidrs) = (cidrs_of(new), cidrs_of(old));
    if new_cidrs == old_cidrs {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.cidrs",
        BadValue::Display(go_strings(&new_cidrs)),
        "field is immutable",
    )]
}

/// Upstream's `PrefixContainsIP`: inside the prefix, but not its network address nor,
/// for IPv4, its broadcast address (a ServiceCIDR never hands those out).
pub fn prefix_contains_ip(network: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let base = masked(network, bits);
    if ip == base || masked(ip, bits) != base || ip.is_ipv4() != base.is_ipv4() {
        return false;
    }
    match (ip, base) {
        (IpAddr::V4(ip), IpAddr::V4(base)) => {
            let host = u32::MAX.checked_shr(u32::from(bits)).unwrap_or(0);
            u32::from(ip) != u32::from(base) | host
        }
        _ => true,
    }
}

/// Whether the ServiceCIDR's Ready condition lets the allocator use it, as upstream's
/// `isReady`: without the condition it is taken as ready (no controller-manager yet).
fn is_ready(cidr: &Value) -> bool {
    let conditions = cidr.pointer("/status/conditions").and_then(Value::as_array);
    match conditions.and_then(|c| c.iter().find(|c| c["type"] == "Ready")) {
        Some(ready) => ready["status"] == "True",
        None => true,
    }
}

/// Whether a ServiceCIDR that is ready and not being deleted holds `ip`, so the
/// ClusterIP allocator may hand it out (upstream's MetaAllocator keeps an allocator
/// per such ServiceCIDR).
pub async fn ready_cidr_contains(storage: &dyn Storage, ip: IpAddr) -> bool {
    let page = match storage.list(CIDRS_PREFIX, &ListOptions::default()).await {
        Ok(page) => page,
        Err(e) => {
            tracing::warn!(error = %e, "listing ServiceCIDRs failed");
            return false;
        }
    };
    page.items.iter().any(|kv| {
        let Ok(cidr) = serde_json::from_slice::<Value>(&kv.value) else {
            return false;
        };
        let deleting = cidr
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        !deleting
            && is_ready(&cidr)
            && cidrs_of(&cidr)
                .iter()
                .any(|c| parse_sloppy(c).is_some_and(|p| prefix_contains_ip(p.ip, p.bits, ip)))
    })
}

fn service_cidrs() -> Result<&'static ResourceInfo, StatusError> {
    resources::find("networking.k8s.io", "v1", "servicecidrs")
        .ok_or_else(|| StatusError::internal_error("the resource table lacks servicecidrs"))
}

impl Registry {
    /// `--service-cluster-ip-range` as the default ServiceCIDR's `spec.cidrs`.
    fn default_service_cidrs(&self) -> Vec<String> {
        let (ip, bits) = self.network.cidr;
        vec![format!("{}/{bits}", masked(IpAddr::V4(ip), bits))]
    }
}

/// One round of upstream's `sync`: the `kubernetes` ServiceCIDR exists (made again when
/// deleted), and gets `Ready=True` when it has no Ready condition and holds this
/// apiserver's range.
async fn sync(registry: &Registry, cidrs: &[String]) -> Result<(), StatusError> {
    let resource = service_cidrs()?;
    let current = match registry.get(resource, None, DEFAULT_NAME).await {
        Ok(current) => current,
        Err(e) if e.is_not_found() => {
            tracing::info!(?cidrs, "creating the default ServiceCIDR");
            let object = json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "ServiceCIDR",
                "metadata": {"name": DEFAULT_NAME},
                "spec": {"cidrs": cidrs},
            });
            match registry.create(resource, None, object, false).await {
                Ok(created) => created,
                Err(e) if e.is_already_exists() => {
                    registry.get(resource, None, DEFAULT_NAME).await?
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    sync_status(registry, resource, &current, cidrs).await;
    Ok(())
}

/// What the default ServiceCIDR's status needs from this apiserver.
#[derive(Debug, PartialEq, Eq)]
enum StatusAction {
    /// Nothing: ready already, being deleted, or someone else's call.
    Nothing,
    /// Its CIDRs are not this apiserver's range (an administrator must act).
    Mismatch,
    /// Another component set Ready=False; left alone.
    NotReady,
    /// Set Ready=True.
    SetReady,
}

fn status_action(cidr: &Value, cidrs: &[String]) -> StatusAction {
    if meta::meta_str(cidr, "deletionTimestamp").is_some() {
        // deletion is the controller-manager's business
        return StatusAction::Nothing;
    }
    if cidrs_of(cidr) != cidrs {
        return StatusAction::Mismatch;
    }
    let ready = cidr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match ready.and_then(|r| r["status"].as_str()) {
        Some("True") => StatusAction::Nothing,
        Some("False") => StatusAction::NotReady,
        _ => StatusAction::SetReady,
    }
}

async fn sync_status(
    registry: &Registry,
    resource: &'static ResourceInfo,
    cidr: &Value,
    cidrs: &[String],
) {
    match status_action(cidr, cidrs) {
        StatusAction::Nothing => {}
        StatusAction::Mismatch => tracing::info!(
            configured = ?cidrs,
            current = ?cidrs_of(cidr),
            "Inconsistent ServiceCIDR status for kubernetes: configure the flags to match current ServiceCIDR or manually delete it"
        ),
        StatusAction::NotReady => tracing::debug!(
            "default ServiceCIDR condition Ready is False, but controller configuration matches"
        ),
        StatusAction::SetReady => {
            tracing::info!("Setting default ServiceCIDR condition Ready to True");
            let condition = json!({
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": meta::now_rfc3339(),
                "reason": "",
                "message": READY_MESSAGE,
            });
            let written = registry
                .write(resource, None, DEFAULT_NAME, false, move |current| {
                    let mut updated = current.clone();
                    if !updated["status"].is_object() {
                        updated["status"] = json!({});
                    }
                    let mut conditions: Vec<Value> = updated["status"]["conditions"]
                        .as_array()
                        .map(|c| c.iter().filter(|c| c["type"] != "Ready").cloned().collect())
                        .unwrap_or_default();
                    conditions.push(condition.clone());
                    updated["status"]["conditions"] = Value::Array(conditions);
                    Ok(updated)
                })
                .await;
            if let Err(e) = written {
                tracing::info!(error = %e.0.message, "error updating default ServiceCIDR status");
            }
        }
    }
}

/// Starts upstream's `kubernetes-service-cidr-controller`: the first round is awaited
/// (upstream blocks the apiserver's start on it, retrying every 100 ms), then a round
/// runs every ten seconds for the life of the runtime.
pub async fn start(registry: Registry) {
    let cidrs = registry.default_service_cidrs();
    for attempt in 1..=50 {
        match sync(&registry, &cidrs).await {
            Ok(()) => break,
            Err(e) if attempt == 50 => {
                tracing::info!(error = %e.0.message, "error initializing the default ServiceCIDR");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            if let Err(e) = sync(&registry, &cidrs).await {
                tracing::info!(error = %e.0.message, "error trying to sync the default ServiceCIDR");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::validation::tester::Tester;
    use super::*;
    use crate::storage::memory::MemoryStore;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn containment_leaves_out_network_and_ipv4_broadcast() {
        let v4 = ip("10.0.0.0");
        assert!(prefix_contains_ip(v4, 24, ip("10.0.0.1")));
        assert!(prefix_contains_ip(v4, 24, ip("10.0.0.254")));
        assert!(!prefix_contains_ip(v4, 24, ip("10.0.0.0")), "network");
        assert!(!prefix_contains_ip(v4, 24, ip("10.0.0.255")), "broadcast");
        assert!(!prefix_contains_ip(v4, 24, ip("10.0.1.1")));
        assert!(!prefix_contains_ip(v4, 24, ip("::1")), "other family");
        let v6 = ip("2001:db8::");
        assert!(prefix_contains_ip(v6, 64, ip("2001:db8::1")));
        // IPv6 has no broadcast address
        assert!(prefix_contains_ip(
            v6,
            64,
            ip("2001:db8::ffff:ffff:ffff:ffff")
        ));
        assert!(!prefix_contains_ip(v6, 64, ip("2001:db8::")), "network");
        assert!(!prefix_contains_ip(v6, 64, ip("2001:db9::1")));
        assert!(!prefix_contains_ip(ip("0.0.0.0"), 0, ip("0.0.0.0")));
        assert!(prefix_contains_ip(ip("0.0.0.0"), 0, ip("1.2.3.4")));
    }

    #[test]
    fn cidrs_are_validated_strictly_as_upstream() {
        let message = |value: &str| {
            validate_cidr("f", value)
                .first()
                .map(|e| e.detail.clone())
                .unwrap_or_default()
        };
        assert_eq!(message("10.0.0.0/24"), "");
        assert_eq!(message("2001:db8::/64"), "");
        assert_eq!(
            message("10.0.0.0"),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        );
        assert_eq!(
            message("10.0.0.0/33"),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        );
        assert_eq!(
            message("010.0.0.0/24"),
            "must not have leading 0s in IP or prefix length"
        );
        assert_eq!(
            message("10.0.0.0/024"),
            "must not have leading 0s in IP or prefix length"
        );
        assert_eq!(
            message("::ffff:10.0.0.0/120"),
            "must not have an IPv4-mapped IPv6 address"
        );
        assert_eq!(
            message("10.0.0.1/24"),
            "must not have bits set beyond the prefix length"
        );
        assert_eq!(
            message("2001:DB8::/64"),
            r#"must be in canonical form ("2001:db8::/64")"#
        );
    }

    #[tokio::test]
    async fn service_cidrs_follow_upstreams_validation() {
        let t = Tester::new("networking.k8s.io", "v1", "servicecidrs").await;
        let cidr = |name: &str, cidrs: Value| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                "metadata": {"name": name}, "spec": {"cidrs": cidrs}})
        };
        t.create_invalid(
            cidr("none", json!([])),
            r#"ServiceCIDR.networking.k8s.io "none" is invalid: spec.cidrs: Required value: at least one CIDR required"#,
        )
        .await;
        t.create_invalid(
            cidr("three", json!(["10.0.0.0/24", "2001:db8::/64", "10.1.0.0/24"])),
            r#"ServiceCIDR.networking.k8s.io "three" is invalid: spec.cidrs: Invalid value: networking.ServiceCIDRSpec{CIDRs:[]string{"10.0.0.0/24", "2001:db8::/64", "10.1.0.0/24"}}: may only hold up to 2 values"#,
        )
        .await;
        t.create_invalid(
            cidr("same-family", json!(["10.0.0.0/24", "10.1.0.0/24"])),
            r#"ServiceCIDR.networking.k8s.io "same-family" is invalid: spec.cidrs: Invalid value: networking.ServiceCIDRSpec{CIDRs:[]string{"10.0.0.0/24", "10.1.0.0/24"}}: may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"#,
        )
        .await;
        t.create_invalid(
            cidr("bits", json!(["10.0.0.5/24"])),
            r#"ServiceCIDR.networking.k8s.io "bits" is invalid: spec.cidrs[0]: Invalid value: "10.0.0.5/24": must not have bits set beyond the prefix length"#,
        )
        .await;
        let created = t
            .create_valid(cidr("dual", json!(["10.0.0.0/24", "2001:db8::/64"])))
            .await;
        assert!(
            created.get("status").is_none(),
            "status is not set on create"
        );
        let mut changed = created.clone();
        changed["spec"]["cidrs"] = json!(["10.0.1.0/24", "2001:db8::/64"]);
        t.update_invalid(
            changed,
            r#"ServiceCIDR.networking.k8s.io "dual" is invalid: spec.cidrs: Invalid value: []string{"10.0.1.0/24", "2001:db8::/64"}: field is immutable"#,
        )
        .await;
        // the main resource keeps status as it was
        let mut with_status = created.clone();
        with_status["status"] = json!({"conditions": [{"type": "Ready", "status": "True",
            "reason": "", "message": "m", "lastTransitionTime": "2025-01-01T00:00:00Z"}]});
        let updated = t.update_valid(with_status).await;
        assert!(updated.pointer("/status/conditions").is_none());
    }

    #[tokio::test]
    async fn the_default_service_cidr_is_made_ready_and_made_again() {
        let registry = Registry::new(Arc::new(MemoryStore::new()));
        let resource = service_cidrs().unwrap();
        let cidrs = registry.default_service_cidrs();
        assert_eq!(cidrs, vec!["10.96.0.0/12".to_owned()]);
        sync(&registry, &cidrs).await.unwrap();
        let cidr = registry.get(resource, None, DEFAULT_NAME).await.unwrap();
        assert_eq!(cidr["spec"]["cidrs"], json!(["10.96.0.0/12"]));
        let ready = &cidr["status"]["conditions"][0];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["message"], READY_MESSAGE);
        assert_eq!(status_action(&cidr, &cidrs), StatusAction::Nothing);

        // a Ready=False set by the controller-manager is left alone
        let mut terminating = cidr.clone();
        terminating["status"]["conditions"][0]["status"] = json!("False");
        assert_eq!(status_action(&terminating, &cidrs), StatusAction::NotReady);
        // other CIDRs than this apiserver's are reported, not changed
        assert_eq!(
            status_action(&cidr, &["10.0.0.0/16".to_owned()]),
            StatusAction::Mismatch
        );

        // deleted: made again at the next round
        registry
            .delete(resource, None, DEFAULT_NAME, &Default::default(), false)
            .await
            .unwrap();
        assert!(registry.get(resource, None, DEFAULT_NAME).await.is_err());
        sync(&registry, &cidrs).await.unwrap();
        let again = registry.get(resource, None, DEFAULT_NAME).await.unwrap();
        assert_eq!(again["spec"]["cidrs"], json!(["10.96.0.0/12"]));
        assert_eq!(again["status"]["conditions"][0]["status"], "True");
    }

    #[tokio::test]
    async fn the_allocator_accepts_ips_of_ready_service_cidrs_only() {
        let store = MemoryStore::new();
        let put = |name: &str, object: Value| {
            let object = object.to_string();
            let key = format!("{CIDRS_PREFIX}{name}");
            let store = &store;
            async move {
                store
                    .create(&key, bytes::Bytes::from(object))
                    .await
                    .unwrap();
            }
        };
        put(
            "ready",
            json!({"metadata": {"name": "ready"}, "spec": {"cidrs": ["10.200.0.0/24"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .await;
        put(
            "fresh",
            json!({"metadata": {"name": "fresh"}, "spec": {"cidrs": ["10.201.0.0/24"]}}),
        )
        .await;
        put("down", json!({"metadata": {"name": "down"}, "spec": {"cidrs": ["10.202.0.0/24"]},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Terminating"}]}}))
        .await;
        put(
            "going",
            json!({"metadata": {"name": "going", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"cidrs": ["10.203.0.0/24"]}}),
        )
        .await;
        assert!(ready_cidr_contains(&store, ip("10.200.0.10")).await);
        assert!(ready_cidr_contains(&store, ip("10.201.0.10")).await);
        assert!(!ready_cidr_contains(&store, ip("10.200.0.255")).await);
        assert!(!ready_cidr_contains(&store, ip("10.202.0.10")).await);
        assert!(!ready_cidr_contains(&store, ip("10.203.0.10")).await);
        assert!(!ready_cidr_contains(&store, ip("10.204.0.10")).await);
    }
}
