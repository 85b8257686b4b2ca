//! The ServiceCIDR controller: protects ServiceCIDRs from being deleted while Services
//! still hold addresses only they cover, as upstream's `service-cidr-controller`
//! (pkg/controller/servicecidrs).
//!
//! Every live ServiceCIDR gets the `networking.k8s.io/service-cidr-finalizer` and the
//! `Ready=True` condition. Once one is being deleted, its finalizer stays while an
//! IPAddress the apiserver's allocator made (`ipaddress.kubernetes.io/managed-by:
//! ipallocator.k8s.io`) lies in it and in no other ServiceCIDR: it is then marked
//! `Ready=False`/`Terminating`, and looked at again when an IPAddress or a ServiceCIDR
//! changes. A ServiceCIDR whose ranges another ServiceCIDR contains may always go. As
//! upstream, the finalizer is only removed ten seconds after the deletion began, so
//! the apiservers' allocators have stopped handing out its addresses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::{IPAddress, ServiceCIDR};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::Context;
use crate::informers::{Change, Informer};
use crate::workqueue::WorkQueue;

/// The controller's name.
pub const NAME: &str = "service-cidr-controller";
/// Its service account (`system:controller:service-cidrs-controller`).
pub const SERVICE_ACCOUNT: &str = "service-cidrs-controller";
/// The finalizer that holds a ServiceCIDR while addresses depend on it.
pub const FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";
/// How long after its deletion began a ServiceCIDR keeps its finalizer, so the
/// allocators have seen the deletion before it goes.
const DELETION_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Upstream runs five workers and drops a key after fifteen failures.
const WORKERS: usize = 5;
const MAX_RETRIES: u32 = 15;
const READY: &str = "Ready";
const READY_MESSAGE: &str = "Kubernetes Service CIDR is ready";
const TERMINATING: &str = "Terminating";
const TERMINATING_MESSAGE: &str = "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR";
const LABEL_IP_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";
const LABEL_MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
/// The `managed-by` value of the apiserver's ClusterIP allocator.
const ALLOCATOR: &str = "ipallocator.k8s.io";

/// One CIDR of a ServiceCIDR, as Go's `netip.Prefix` (the address masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    network: IpAddr,
    bits: u8,
}

fn masked(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl Prefix {
    /// Parses `10.0.0.0/24` or `2001:db8::/64` strictly, as `netip.ParsePrefix`.
    pub(crate) fn parse(text: &str) -> Option<Prefix> {
        let (ip, bits) = text.split_once('/')?;
        if bits.is_empty()
            || !bits.bytes().all(|b| b.is_ascii_digit())
            || (bits.len() > 1 && bits.starts_with('0'))
        {
            return None;
        }
        let ip: IpAddr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (bits <= max).then(|| Prefix {
            network: masked(ip, bits),
            bits,
        })
    }

    /// Upstream's `PrefixContainsIP`: in the prefix, but neither its network address
    /// nor, for IPv4, its broadcast address (a ServiceCIDR never hands those out).
    pub(crate) fn contains_ip(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.network.is_ipv4()
            || ip == self.network
            || masked(ip, self.bits) != self.network
        {
            return false;
        }
        match (ip, self.network) {
            (IpAddr::V4(ip), IpAddr::V4(network)) => {
                let host = u32::MAX.checked_shr(u32::from(self.bits)).unwrap_or(0);
                u32::from(ip) != u32::from(network) | host
            }
            _ => true,
        }
    }

    /// Whether the two share an address (`netip.Prefix.Overlaps`).
    pub(crate) fn overlaps(&self, other: &Prefix) -> bool {
        self.network.is_ipv4() == other.network.is_ipv4()
            && masked(self.network, other.bits.min(self.bits))
                == masked(other.network, other.bits.min(self.bits))
    }

    /// Whether `other` lies within this prefix (upstream's `ContainsPrefix` test).
    pub(crate) fn contains_prefix(&self, other: &Prefix) -> bool {
        self.overlaps(other) && self.bits <= other.bits
    }
}

fn prefixes(cidr: &ServiceCIDR) -> Vec<Prefix> {
    cidr.spec
        .as_ref()
        .and_then(|s| s.cidrs.as_ref())
        .map(|c| c.iter().filter_map(|c| Prefix::parse(c)).collect())
        .unwrap_or_default()
}

fn name_of(cidr: &ServiceCIDR) -> &str {
    cidr.metadata.name.as_deref().unwrap_or_default()
}

/// The ServiceCIDRs (by name, once per matching CIDR as upstream) whose prefixes pass
/// `test`.
fn matching<'a>(cidrs: &'a [Arc<ServiceCIDR>], test: impl Fn(&Prefix) -> bool) -> Vec<&'a str> {
    let mut names = Vec::new();
    for cidr in cidrs {
        for prefix in prefixes(cidr) {
            if test(&prefix) {
                names.push(name_of(cidr));
            }
        }
    }
    names
}

/// Upstream's `ContainsAddress`.
fn containing_address<'a>(cidrs: &'a [Arc<ServiceCIDR>], ip: IpAddr) -> Vec<&'a str> {
    matching(cidrs, |p| p.contains_ip(ip))
}

/// The address of an IPAddress the apiserver's allocator made; other IPAddresses
/// neither block nor free a ServiceCIDR.
fn allocated_address(ip: &IPAddress) -> Option<IpAddr> {
    let labels = ip.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(ALLOCATOR) {
        return None;
    }
    ip.metadata.name.as_deref()?.parse().ok()
}

/// Upstream's `canDeleteCIDR`: whether removing `cidr` leaves no allocated address
/// outside every ServiceCIDR.
pub(crate) fn can_delete(
    cidr: &ServiceCIDR,
    cidrs: &[Arc<ServiceCIDR>],
    addresses: &[Arc<IPAddress>],
) -> bool {
    let name = name_of(cidr);
    let own = prefixes(cidr);
    // every range of it inside another ServiceCIDR (or one with the same range): all
    // its addresses stay covered
    let has_parent = own.iter().all(|prefix| {
        let parents = matching(cidrs, |p| p.contains_prefix(prefix));
        !(parents.is_empty() || parents == [name])
    });
    if has_parent {
        return true;
    }
    for prefix in &own {
        let family = if prefix.network.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        for ip in addresses {
            let same_family = ip
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_IP_FAMILY))
                .is_some_and(|f| f == family);
            let Some(address) = allocated_address(ip).filter(|_| same_family) else {
                continue;
            };
            if containing_address(cidrs, address) == [name] {
                tracing::info!(%address, servicecidr = name, "Deleting ServiceCIDR blocked by IP address");
                return false;
            }
        }
    }
    true
}

fn has_finalizer(cidr: &ServiceCIDR) -> bool {
    cidr.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// The conditions with `Ready` as wanted, or `None` when it already is (its time is
/// kept unless its status changes).
fn with_ready(
    cidr: &ServiceCIDR,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Option<Vec<Condition>> {
    let mut conditions = cidr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let current = conditions.iter().position(|c| c.type_ == READY);
    if let Some(i) = current {
        let c = &conditions[i];
        if c.status == status && c.reason == reason && c.message == message {
            return None;
        }
    }
    let wanted = Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: match current.map(|i| &conditions[i]) {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Time(now),
        },
        observed_generation: None,
    };
    match current {
        Some(i) => conditions[i] = wanted,
        None => conditions.push(wanted),
    }
    Some(conditions)
}

struct Controller {
    cx: Context,
    queue: Arc<WorkQueue<String>>,
    cidrs: Informer<ServiceCIDR>,
    addresses: Informer<IPAddress>,
}

fn gone_or_changed(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Controller {
    fn api(&self) -> Api<ServiceCIDR> {
        Api::all(self.cx.client.clone())
    }

    async fn set_ready(
        &self,
        cidr: &ServiceCIDR,
        status: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let Some(conditions) = with_ready(cidr, status, reason, message, jiff::Timestamp::now())
        else {
            return Ok(());
        };
        let patch = json!({"status": {"conditions": conditions}});
        match self
            .api()
            .patch_status(
                name_of(cidr),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if gone_or_changed(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes the finalizers with the resourceVersion they were computed from, so a
    /// concurrent change makes this fail (409) and the key is retried.
    async fn write_finalizers(&self, cidr: &ServiceCIDR, add: bool) -> Result<(), kube::Error> {
        let mut finalizers: Vec<String> = cidr
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| f.as_str() != FINALIZER)
            .cloned()
            .collect();
        if add {
            finalizers.push(FINALIZER.to_owned());
        }
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": cidr.metadata.resource_version,
        }});
        match self
            .api()
            .patch(
                name_of(cidr),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if gone_or_changed(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let Some(cidr) = self.cidrs.get("", key) else {
            return Ok(());
        };
        if let Some(deleted) = &cidr.metadata.deletion_timestamp {
            let cidrs = self.cidrs.list();
            let addresses = self.addresses.list();
            if !can_delete(&cidr, &cidrs, &addresses) {
                // an IPAddress or ServiceCIDR event brings it back
                return self
                    .set_ready(&cidr, "False", TERMINATING, TERMINATING_MESSAGE)
                    .await;
            }
            let since = jiff::Timestamp::now().duration_since(deleted.0);
            let since = Duration::try_from(since).unwrap_or_default();
            if let Some(left) = DELETION_GRACE_PERIOD
                .checked_sub(since)
                .filter(|d| !d.is_zero())
            {
                self.queue.add_after(key.to_owned(), left);
                return Ok(());
            }
            if has_finalizer(&cidr) {
                tracing::info!(
                    servicecidr = key,
                    "removing the ServiceCIDR protection finalizer"
                );
                self.write_finalizers(&cidr, false).await?;
            }
            return Ok(());
        }
        if !has_finalizer(&cidr) {
            self.write_finalizers(&cidr, true).await?;
        }
        if let Err(e) = self.set_ready(&cidr, "True", "", READY_MESSAGE).await {
            self.cx.recorder.event(
                &*cidr,
                "Warning",
                "KubernetesServiceCIDRError",
                "The ServiceCIDR Status can not be set to Ready=True".to_owned(),
                self.cx.name,
            );
            return Err(e);
        }
        Ok(())
    }
}

/// Queues the ServiceCIDRs holding an IPAddress the allocator made.
fn queue_containing(queue: &WorkQueue<String>, cidrs: &Informer<ServiceCIDR>, ip: &IPAddress) {
    let Some(address) = allocated_address(ip) else {
        return;
    };
    let all = cidrs.list();
    for name in containing_address(&all, address) {
        queue.add(name.to_owned());
    }
}

/// Starts the ServiceCIDR controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let queue = WorkQueue::<String>::new();
    let controller = Arc::new(Controller {
        cidrs: cx.informers.informer::<ServiceCIDR>(),
        addresses: cx.informers.informer::<IPAddress>(),
        queue: queue.clone(),
        cx,
    });
    let (q, all) = (queue.clone(), controller.cidrs.clone());
    controller.cidrs.add_handler(move |change| match change {
        Change::Added(cidr) => {
            q.add(name_of(cidr).to_owned());
            // a new range may free (or cover) the addresses of overlapping ones
            let cidrs = all.list();
            for prefix in prefixes(cidr) {
                for name in matching(&cidrs, |p| p.overlaps(&prefix)) {
                    q.add(name.to_owned());
                }
            }
        }
        Change::Updated { new: cidr, .. } | Change::Deleted(cidr) => {
            q.add(name_of(cidr).to_owned());
        }
    });
    let (q, cidrs) = (queue.clone(), controller.cidrs.clone());
    controller
        .addresses
        .add_handler(move |change| match change {
            Change::Added(ip) | Change::Deleted(ip) => queue_containing(&q, &cidrs, ip),
            Change::Updated { .. } => {}
        });
    Box::pin(async move {
        controller.cidrs.wait_synced().await;
        controller.addresses.wait_synced().await;
        queue
            .run(WORKERS, Some(MAX_RETRIES), NAME, move |key: String| {
                let controller = controller.clone();
                async move { controller.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Prefix {
        Prefix::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(name: &str, cidrs: &[&str], deleting: bool) -> Arc<ServiceCIDR> {
        let mut meta = json!({"name": name, "finalizers": [FINALIZER]});
        if deleting {
            meta["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        Arc::new(
            serde_json::from_value(json!({"metadata": meta, "spec": {"cidrs": cidrs}})).unwrap(),
        )
    }

    fn address(name: &str, family: &str, managed_by: &str) -> Arc<IPAddress> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"ipaddress.kubernetes.io/ip-family": family, "ipaddress.kubernetes.io/managed-by": managed_by}},
                "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "s"}}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn prefixes_parse_strictly() {
        assert_eq!(prefix("10.0.0.0/24").bits, 24);
        assert_eq!(prefix("10.0.0.7/24").network, ip("10.0.0.0"));
        assert_eq!(prefix("2001:db8::/64").network, ip("2001:db8::"));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/024",
            "010.0.0.0/24",
            "x/8",
            "::/129",
            "10.0.0.0/",
        ] {
            assert!(Prefix::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ipv4_containment_leaves_out_network_and_broadcast() {
        let p = prefix("10.0.0.0/24");
        assert!(p.contains_ip(ip("10.0.0.1")));
        assert!(p.contains_ip(ip("10.0.0.254")));
        assert!(!p.contains_ip(ip("10.0.0.0")));
        assert!(!p.contains_ip(ip("10.0.0.255")));
        assert!(!p.contains_ip(ip("10.0.1.1")));
        assert!(!p.contains_ip(ip("::ffff:10.0.0.1")), "IPv4-mapped is IPv6");
        assert!(!prefix("10.0.0.1/32").contains_ip(ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_containment_leaves_out_the_network_address_only() {
        let p = prefix("2001:db8::/64");
        assert!(p.contains_ip(ip("2001:db8::1")));
        assert!(p.contains_ip(ip("2001:db8::ffff:ffff:ffff:ffff")));
        assert!(!p.contains_ip(ip("2001:db8::")));
        assert!(!p.contains_ip(ip("2001:db8:0:1::1")));
        assert!(!p.contains_ip(ip("10.0.0.1")));
    }

    #[test]
    fn prefixes_overlap_and_contain_within_a_family() {
        let big = prefix("10.0.0.0/16");
        let small = prefix("10.0.3.0/24");
        assert!(big.overlaps(&small) && small.overlaps(&big));
        assert!(big.contains_prefix(&small));
        assert!(!small.contains_prefix(&big));
        assert!(big.contains_prefix(&big));
        assert!(!prefix("10.1.0.0/16").overlaps(&small));
        assert!(!prefix("::/0").overlaps(&small));
        assert!(prefix("2001:db8::/32").contains_prefix(&prefix("2001:db8:1::/48")));
    }

    #[test]
    fn a_cidr_inside_another_may_always_go() {
        let child = cidr("child", &["10.0.3.0/24"], true);
        let all = vec![cidr("parent", &["10.0.0.0/16"], false), child.clone()];
        let ips = vec![address("10.0.3.5", "IPv4", ALLOCATOR)];
        assert!(can_delete(&child, &all, &ips));
        // a twin with the same range covers it too
        let twin = cidr("twin", &["10.0.3.0/24"], false);
        assert!(can_delete(&child, &[child.clone(), twin], &ips));
    }

    #[test]
    fn an_address_only_it_holds_blocks_the_deletion() {
        let v4 = cidr("v4", &["10.0.3.0/24"], true);
        let other = cidr("other", &["10.1.0.0/16"], false);
        let all = vec![v4.clone(), other];
        assert!(!can_delete(
            &v4,
            &all,
            &[address("10.0.3.5", "IPv4", ALLOCATOR)]
        ));
        // addresses elsewhere, the network and broadcast addresses, other managers'
        // and wrongly labelled ones do not count
        for ip in [
            address("10.1.0.5", "IPv4", ALLOCATOR),
            address("10.0.3.0", "IPv4", ALLOCATOR),
            address("10.0.3.255", "IPv4", ALLOCATOR),
            address("10.0.3.5", "IPv4", "someone-else"),
            address("10.0.3.5", "IPv6", ALLOCATOR),
        ] {
            assert!(
                can_delete(&v4, &all, &[ip.clone()]),
                "{:?}",
                ip.metadata.name
            );
        }
        assert!(can_delete(&v4, &all, &[]));
    }

    #[test]
    fn dual_stack_cidrs_are_held_by_either_family() {
        let dual = cidr("dual", &["10.0.3.0/24", "2001:db8::/64"], true);
        // the IPv4 range has a parent, the IPv6 one not: addresses decide
        let all = vec![dual.clone(), cidr("v4-parent", &["10.0.0.0/16"], false)];
        assert!(can_delete(
            &dual,
            &all,
            &[address("10.0.3.5", "IPv4", ALLOCATOR)]
        ));
        assert!(!can_delete(
            &dual,
            &all,
            &[address("2001:db8::5", "IPv6", ALLOCATOR)]
        ));
        // an address another ServiceCIDR also holds does not block
        let all = vec![dual.clone(), cidr("v6", &["2001:db8::/48"], false)];
        assert!(can_delete(
            &dual,
            &all,
            &[address("2001:db8::5", "IPv6", ALLOCATOR)]
        ));
    }

    #[test]
    fn ready_is_written_only_when_it_changes() {
        let now = jiff::Timestamp::now();
        let fresh = cidr("c", &["10.0.0.0/24"], false);
        let conditions = with_ready(&fresh, "True", "", READY_MESSAGE, now).unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, READY);
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].message, READY_MESSAGE);
        let mut ready = (*fresh).clone();
        ready.status = Some(k8s_openapi::api::networking::v1::ServiceCIDRStatus {
            conditions: Some(conditions),
        });
        assert!(with_ready(&ready, "True", "", READY_MESSAGE, now).is_none());
        let terminating =
            with_ready(&ready, "False", TERMINATING, TERMINATING_MESSAGE, now).unwrap();
        assert_eq!(terminating.len(), 1);
        assert_eq!(terminating[0].reason, TERMINATING);
        assert_eq!(terminating[0].status, "False");
    }
}
