//! The node IPAM controller with upstream's `RangeAllocator`: gives each node a pod
//! CIDR out of the cluster CIDRs, as upstream's `node-ipam-controller`.
//!
//! It runs only with `--allocate-node-cidrs`. `--cluster-cidr` holds one CIDR, or two
//! of different families (dual-stack); each is cut into blocks of
//! `--node-cidr-mask-size` bits (`-ipv4`/`-ipv6` per family; 24 and 64 by default).
//! At start the blocks of nodes that already have `spec.podCIDRs` are marked used, and
//! so are those overlapping `--service-cluster-ip-range`. A node without pod CIDRs
//! then gets the next free block of each cluster CIDR (searching on from the last one
//! handed out, wrapping around), written with a patch of `spec.podCIDR` and
//! `spec.podCIDRs`; a deleted node's blocks are free again. With no free block left,
//! the node gets a `CIDRNotAvailable` Warning event (`Node <name> status is now:
//! CIDRNotAvailable`) and is retried with back-off; a patch failing three times gives
//! `CIDRAssignmentFailed`. As upstream's range allocator, it sets no node condition
//! (`NetworkUnavailable` is the cloud route controller's).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};

use crate::informers::{Change, Informer};
use crate::workqueue::WorkQueue;
use crate::{Context, Settings};

/// The controller's name.
pub const NAME: &str = "node-ipam-controller";
/// Its service account (upstream's `ClientOrDie("node-controller")`).
pub const SERVICE_ACCOUNT: &str = "node-controller";
/// Upstream's `cidrUpdateWorkers`.
const WORKERS: usize = 30;
/// Upstream's `cidrUpdateRetries`.
const UPDATE_RETRIES: usize = 3;
const DEFAULT_MASK_IPV4: u8 = 24;
const DEFAULT_MASK_IPV6: u8 = 64;
/// Upstream's `clusterSubnetMaxDiff`: an IPv6 cluster CIDR is cut into at most 2^16
/// blocks.
const MAX_DIFF_IPV6: u8 = 16;
/// The most blocks an IPv4 cluster CIDR is cut into here (2^24, a 2 MiB bitmap);
/// upstream has no limit for IPv4 but a bitmap of 2^32 blocks is not worth keeping.
const MAX_DIFF_IPV4: u8 = 24;
/// Upstream's `ErrCIDRRangeNoCIDRsRemaining`.
const NO_CIDRS_REMAINING: &str =
    "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range";
/// Upstream's `ErrCIDRSetSubNetTooBig`.
const SUBNET_TOO_BIG: &str = "New CIDR set failed; the node CIDR size is too big";

/// An IPv4 or IPv6 network: its address (host bits cleared), prefix length and
/// family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: u128,
    prefix: u8,
    v6: bool,
}

/// The top `prefix` of `bits` bits set.
fn mask_of(prefix: u8, bits: u8) -> u128 {
    let all = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let host = all.checked_shr(u32::from(prefix)).unwrap_or(0);
    all & !host
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x:y::/n` as Go's `net.ParseCIDR` (host bits are
    /// dropped).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let invalid = || format!("invalid CIDR address: {text}");
        let (ip, len) = text.split_once('/').ok_or_else(invalid)?;
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = len.parse().map_err(|_| invalid())?;
        let (addr, v6) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        let cidr = Cidr { addr, prefix, v6 };
        if prefix > cidr.bits() {
            return Err(invalid());
        }
        Ok(Cidr {
            addr: addr & cidr.mask(),
            ..cidr
        })
    }

    /// Whether it is an IPv6 network.
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    fn bits(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn mask(&self) -> u128 {
        mask_of(self.prefix, self.bits())
    }

    /// The last address.
    fn last(&self) -> u128 {
        self.addr | (mask_of(self.bits(), self.bits()) & !self.mask())
    }

    fn contains(&self, addr: u128) -> bool {
        addr & self.mask() == self.addr
    }

    /// Whether the two networks share an address (one holds the other).
    fn overlaps(&self, other: &Cidr) -> bool {
        self.v6 == other.v6 && (self.contains(other.addr) || other.contains(self.addr))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.prefix)
        } else {
            // an IPv4 address is the low 32 bits
            let v4 = u32::try_from(self.addr).unwrap_or_default();
            write!(f, "{}/{}", Ipv4Addr::from(v4), self.prefix)
        }
    }
}

/// The blocks of one cluster CIDR and which are used (upstream's `cidrset.CidrSet`).
#[derive(Debug)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    /// How many blocks there are.
    max: u64,
    /// How many are used.
    allocated: u64,
    /// Where the search for a free block starts.
    next: u64,
    /// One bit a block.
    used: Vec<u64>,
}

impl CidrSet {
    /// Blocks of `/node_prefix` in `cluster`.
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, String> {
        if node_prefix > cluster.bits() {
            return Err(format!(
                "node CIDR mask size {node_prefix} is longer than an {} address",
                if cluster.v6 { "IPv6" } else { "IPv4" }
            ));
        }
        let Some(diff) = node_prefix.checked_sub(cluster.prefix) else {
            return Err("Controller: Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size configured for CIDR family".to_owned());
        };
        if (cluster.v6 && diff > MAX_DIFF_IPV6) || (!cluster.v6 && diff > MAX_DIFF_IPV4) {
            return Err(SUBNET_TOO_BIG.to_owned());
        }
        let max = 1u64 << diff;
        let words = usize::try_from(max.div_ceil(64)).map_err(|_| SUBNET_TOO_BIG.to_owned())?;
        Ok(CidrSet {
            cluster,
            node_prefix,
            max,
            allocated: 0,
            next: 0,
            used: vec![0; words],
        })
    }

    /// How many blocks are used.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    fn host_bits(&self) -> u32 {
        u32::from(self.cluster.bits() - self.node_prefix)
    }

    fn is_used(&self, index: u64) -> bool {
        let word = usize::try_from(index / 64).unwrap_or(usize::MAX);
        self.used
            .get(word)
            .is_some_and(|w| w & (1u64 << (index % 64)) != 0)
    }

    /// Marks a block; true when it changed.
    fn set(&mut self, index: u64, on: bool) -> bool {
        let word = usize::try_from(index / 64).unwrap_or(usize::MAX);
        let Some(w) = self.used.get_mut(word) else {
            return false;
        };
        let bit = 1u64 << (index % 64);
        let was = *w & bit != 0;
        if was == on {
            return false;
        }
        if on {
            *w |= bit;
            self.allocated += 1;
        } else {
            *w &= !bit;
            self.allocated -= 1;
        }
        true
    }

    fn block(&self, index: u64) -> Cidr {
        let offset = u128::from(index).checked_shl(self.host_bits()).unwrap_or(0);
        Cidr {
            addr: self.cluster.addr | offset,
            prefix: self.node_prefix,
            v6: self.cluster.v6,
        }
    }

    /// The block holding `addr`.
    fn index_of(&self, addr: u128) -> Result<u64, String> {
        let index = (self.cluster.addr ^ addr)
            .checked_shr(self.host_bits())
            .unwrap_or(0);
        u64::try_from(index)
            .ok()
            .filter(|i| *i < self.max)
            .ok_or_else(|| {
                let ip = Cidr {
                    addr,
                    prefix: self.node_prefix,
                    v6: self.cluster.v6,
                };
                format!("CIDR: {ip} is out of the range of CIDR allocator")
            })
    }

    /// The first and last block `cidr` covers.
    fn range(&self, cidr: &Cidr) -> Result<(u64, u64), String> {
        if !self.cluster.overlaps(cidr) {
            return Err(format!(
                "cidr {cidr} is out the range of cluster cidr {}",
                self.cluster
            ));
        }
        if self.cluster.prefix < cidr.prefix {
            Ok((self.index_of(cidr.addr)?, self.index_of(cidr.last())?))
        } else {
            Ok((0, self.max - 1))
        }
    }

    /// Takes the next free block.
    pub fn allocate_next(&mut self) -> Result<Cidr, String> {
        if self.allocated >= self.max {
            return Err(NO_CIDRS_REMAINING.to_owned());
        }
        let mut candidate = self.next;
        for _ in 0..self.max {
            if !self.is_used(candidate) {
                break;
            }
            candidate = (candidate + 1) % self.max;
        }
        self.next = (candidate + 1) % self.max;
        self.set(candidate, true);
        Ok(self.block(candidate))
    }

    /// Marks the blocks `cidr` covers as used (used ones stay so).
    pub fn occupy(&mut self, cidr: &Cidr) -> Result<(), String> {
        let (begin, end) = self.range(cidr)?;
        for i in begin..=end {
            self.set(i, true);
        }
        Ok(())
    }

    /// Frees the blocks `cidr` covers.
    pub fn release(&mut self, cidr: &Cidr) -> Result<(), String> {
        let (begin, end) = self.range(cidr)?;
        for i in begin..=end {
            self.set(i, false);
        }
        Ok(())
    }
}

/// Parses a comma-separated CIDR list as upstream's `netutils.ParseCIDRs`.
fn parse_cidrs(list: &str) -> Result<Vec<Cidr>, String> {
    list.trim()
        .split(',')
        .map(|c| {
            Cidr::parse(c).map_err(|e| format!("failed to parse cidr value:{c:?} with error:{e}"))
        })
        .collect()
}

/// A mask-size flag: 0 is unset.
fn mask_flag(flag: &str, value: i32) -> Result<Option<u8>, String> {
    match value {
        0 => Ok(None),
        1..=128 => Ok(u8::try_from(value).ok()),
        _ => Err(format!("--{flag} {value} is not a valid mask size")),
    }
}

/// The CIDR sets `settings` describe, with the service ranges marked used: upstream's
/// flag checks (`validateCIDRs`, `setNodeCIDRMaskSizes`, `NewNodeIpamController`,
/// `NewCIDRSet`); an error says which flag is wrong.
pub fn cidr_sets(settings: &Settings) -> Result<Vec<CidrSet>, String> {
    match settings.cidr_allocator_type.as_str() {
        "RangeAllocator" => {}
        "CloudAllocator" => {
            return Err("--cidr-allocator-type is set to 'CloudAllocator' but cloud provider is not configured".to_owned());
        }
        other => return Err(format!("invalid CIDR allocator type: {other}")),
    }
    if settings.cluster_cidr.trim().is_empty() {
        return Err(
            "Controller: Must specify --cluster-cidr if --allocate-node-cidrs is set".to_owned(),
        );
    }
    let clusters = parse_cidrs(&settings.cluster_cidr)?;
    let dual_stack = clusters.iter().any(|c| c.v6) && clusters.iter().any(|c| !c.v6);
    if clusters.len() > 1 && !dual_stack {
        return Err(format!(
            "len of ClusterCIDRs=={} and they are not configured as dual stack (at least one from each IPFamily",
            clusters.len()
        ));
    }
    if clusters.len() > 2 {
        return Err(format!(
            "length of clusterCIDRs is:{} more than max allowed of 2",
            clusters.len()
        ));
    }
    let mask = mask_flag("node-cidr-mask-size", settings.node_cidr_mask_size)?;
    let mask_v4 = mask_flag(
        "node-cidr-mask-size-ipv4",
        settings.node_cidr_mask_size_ipv4,
    )?;
    let mask_v6 = mask_flag(
        "node-cidr-mask-size-ipv6",
        settings.node_cidr_mask_size_ipv6,
    )?;
    let (v4, v6) = if dual_stack {
        if mask.is_some() {
            return Err(
                "usage of --node-cidr-mask-size is not allowed with dual-stack clusters".to_owned(),
            );
        }
        (
            mask_v4.unwrap_or(DEFAULT_MASK_IPV4),
            mask_v6.unwrap_or(DEFAULT_MASK_IPV6),
        )
    } else if let Some(mask) = mask {
        if mask_v4.is_some() || mask_v6.is_some() {
            return Err("usage of --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 is not allowed if --node-cidr-mask-size is set. For dual-stack clusters please unset it and use IPFamily specific flags".to_owned());
        }
        (mask, mask)
    } else {
        let single_v6 = clusters.first().is_some_and(|c| c.v6);
        if mask_v4.is_some() && single_v6 {
            return Err(
                "usage of --node-cidr-mask-size-ipv4 is not allowed for a single-stack IPv6 cluster"
                    .to_owned(),
            );
        }
        if mask_v6.is_some() && !single_v6 {
            return Err(
                "usage of --node-cidr-mask-size-ipv6 is not allowed for a single-stack IPv4 cluster"
                    .to_owned(),
            );
        }
        (
            mask_v4.unwrap_or(DEFAULT_MASK_IPV4),
            mask_v6.unwrap_or(DEFAULT_MASK_IPV6),
        )
    };
    let mut sets = clusters
        .iter()
        .map(|c| CidrSet::new(*c, if c.v6 { v6 } else { v4 }))
        .collect::<Result<Vec<_>, _>>()?;
    // the service ranges: as upstream, one that does not parse is only warned about
    let services: Vec<Cidr> = settings
        .service_cluster_ip_range
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(2)
        .filter_map(|s| match Cidr::parse(s) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(cidr = s, error = %e, "unsuccessful parsing of service CIDR");
                None
            }
        })
        .collect();
    if let [a, b] = services.as_slice() {
        if a.v6 == b.v6 {
            return Err(
                "serviceCIDR and secondaryServiceCIDR are not dualstack (from different IPfamiles)"
                    .to_owned(),
            );
        }
    }
    for service in &services {
        for set in sets.iter_mut() {
            if set.cluster.overlaps(service) {
                if let Err(e) = set.occupy(service) {
                    tracing::error!(error = %e, service = %service, "error filtering out service cidr out cluster cidr");
                }
            }
        }
    }
    Ok(sets)
}

/// A node's pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`).
fn pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match (&spec.pod_cidrs, &spec.pod_cidr) {
        (Some(list), _) if !list.is_empty() => list.clone(),
        (_, Some(one)) if !one.is_empty() => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The CIDR sets and the allocations written but not yet seen in the cache.
struct State {
    sets: Vec<CidrSet>,
    /// Nodes patched whose update the watch has not brought yet, with their CIDRs: a
    /// sync meanwhile (a status heartbeat) must not allocate again.
    pending: HashMap<String, Vec<Cidr>>,
}

impl State {
    /// Marks a node's CIDRs used (upstream's `occupyCIDRs`).
    fn occupy(&mut self, name: &str, cidrs: &[String]) -> Result<(), String> {
        for (idx, text) in cidrs.iter().enumerate() {
            let cidr = Cidr::parse(text)
                .map_err(|_| format!("failed to parse node {name}, CIDR {text}"))?;
            let set = self.sets.get_mut(idx).ok_or_else(|| {
                format!("node:{name} has an allocated cidr: {text} at index:{idx} that does not exist in cluster cidrs configuration")
            })?;
            set.occupy(&cidr).map_err(|e| {
                format!(
                    "failed to mark cidr[{cidr}] at idx [{idx}] as occupied for node: {name}: {e}"
                )
            })?;
        }
        Ok(())
    }

    /// Frees CIDRs by family index.
    fn release(&mut self, name: &str, cidrs: &[Cidr]) {
        for (idx, cidr) in cidrs.iter().enumerate() {
            match self.sets.get_mut(idx) {
                Some(set) => {
                    if let Err(e) = set.release(cidr) {
                        tracing::error!(node = name, %cidr, error = %e, "error when releasing CIDR");
                    }
                }
                None => {
                    tracing::error!(node = name, %cidr, idx, "node has an allocated cidr that does not exist in cluster cidrs configuration")
                }
            }
        }
    }

    /// Frees a node that is gone: its CIDRs and any allocation still pending.
    fn release_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let pending = self.pending.remove(&name);
        let mut cidrs = Vec::new();
        for text in pod_cidrs(node) {
            match Cidr::parse(&text) {
                Ok(c) => cidrs.push(c),
                Err(e) => {
                    tracing::error!(node = %name, cidr = %text, error = %e, "failed to parse CIDR");
                    cidrs.clear();
                    break;
                }
            }
        }
        self.release(&name, &cidrs);
        if let Some(pending) = pending.filter(|p| *p != cidrs) {
            self.release(&name, &pending);
        }
    }
}

struct Controller {
    cx: Context,
    nodes: Informer<Node>,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    fn status_event(&self, node: &Node, reason: &'static str) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        self.cx.recorder.event(
            node,
            "Warning",
            reason,
            format!("Node {name} status is now: {reason}"),
            self.cx.name,
        );
    }

    /// Upstream's `syncNode` and `AllocateOrOccupyCIDR`.
    async fn sync(&self, name: &str) -> Result<(), String> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        if node.metadata.deletion_timestamp.is_some() {
            // its CIDRs are freed when it is gone (the delete handler), once: freeing
            // them here too could free a block handed out meanwhile
            return Ok(());
        }
        let existing = pod_cidrs(&node);
        if !existing.is_empty() {
            let mut state = lock(&self.state);
            state.pending.remove(name);
            return state.occupy(name, &existing);
        }
        let allocated = {
            let mut state = lock(&self.state);
            if state.pending.contains_key(name) {
                return Ok(());
            }
            let mut allocated = Vec::new();
            for idx in 0..state.sets.len() {
                match state.sets[idx].allocate_next() {
                    Ok(cidr) => allocated.push(cidr),
                    Err(e) => {
                        // what the other family gave back
                        state.release(name, &allocated);
                        drop(state);
                        self.status_event(&node, "CIDRNotAvailable");
                        return Err(format!(
                            "failed to allocate cidr from cluster cidr at idx:{idx}: {e}"
                        ));
                    }
                }
            }
            state.pending.insert(name.to_owned(), allocated.clone());
            allocated
        };
        let texts: Vec<String> = allocated.iter().map(Cidr::to_string).collect();
        let patch = serde_json::json!({
            "spec": {"podCIDR": texts.first(), "podCIDRs": texts}
        });
        let api: Api<Node> = Api::all(self.cx.client.clone());
        let mut error = None;
        for _ in 0..UPDATE_RETRIES {
            match api
                .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = name, pod_cidrs = ?texts, "set node PodCIDR");
                    return Ok(());
                }
                Err(e) => error = Some(e),
            }
        }
        let timeout = matches!(&error, Some(kube::Error::Api(s)) if s.reason == "ServerTimeout");
        let error = error.map(|e| e.to_string()).unwrap_or_default();
        tracing::error!(node = name, pod_cidrs = ?texts, %error, "failed to update node PodCIDR after multiple attempts");
        self.status_event(&node, "CIDRAssignmentFailed");
        let mut state = lock(&self.state);
        // unless the node went away meanwhile (and its allocation with it); after a
        // timeout the write may have happened, so the CIDRs stay used as upstream's
        if state.pending.get(name) == Some(&allocated) {
            state.pending.remove(name);
            if !timeout {
                state.release(name, &allocated);
            }
        }
        Err(format!("patching node {name}: {error}"))
    }
}

/// Starts the controller when `--allocate-node-cidrs` is set (upstream does not start
/// it otherwise).
pub fn start(cx: Context) -> BoxFuture<'static, ()> {
    if !cx.settings.allocate_node_cidrs {
        tracing::info!("--allocate-node-cidrs is not set; the node IPAM controller does nothing");
        return Box::pin(async {});
    }
    let sets = match cidr_sets(&cx.settings) {
        Ok(sets) => sets,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the node IPAM controller");
            return Box::pin(async {});
        }
    };
    let queue = WorkQueue::<String>::new();
    let nodes = cx.informers.informer::<Node>();
    let state = Arc::new(Mutex::new(State {
        sets,
        pending: HashMap::new(),
    }));
    {
        let (q, state, all) = (queue.clone(), state.clone(), nodes.clone());
        nodes.add_handler(move |change| match change {
            Change::Added(n) | Change::Updated { new: n, .. } => {
                q.add(n.metadata.name.clone().unwrap_or_default());
            }
            Change::Deleted(n) => {
                lock(&state).release_node(n);
                // a freed block may be what nodes waiting for one need
                for waiting in all.list() {
                    if pod_cidrs(&waiting).is_empty() {
                        q.add(waiting.metadata.name.clone().unwrap_or_default());
                    }
                }
            }
        });
    }
    let controller = Arc::new(Controller { cx, nodes, state });
    Box::pin(async move {
        controller.nodes.wait_synced().await;
        // the nodes that have CIDRs before any is handed out
        {
            let mut state = lock(&controller.state);
            for node in controller.nodes.list() {
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Err(e) = state.occupy(&name, &pod_cidrs(&node)) {
                    tracing::error!(node = %name, error = %e, "cannot mark the node's CIDRs used");
                }
            }
        }
        queue
            .run(WORKERS, None, NAME, move |name: String| {
                let controller = controller.clone();
                async move { controller.sync(&name).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn settings(cluster: &str) -> Settings {
        Settings {
            allocate_node_cidrs: true,
            cluster_cidr: cluster.to_owned(),
            ..Settings::default()
        }
    }

    #[test]
    fn parses_and_prints_cidrs() {
        assert_eq!(cidr("10.244.1.7/16").to_string(), "10.244.0.0/16");
        assert_eq!(cidr("fd00:10:244::5/48").to_string(), "fd00:10:244::/48");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0/8",
            "::/129",
            "::/99999999999",
            "x/8",
        ] {
            assert_eq!(
                Cidr::parse(bad),
                Err(format!("invalid CIDR address: {bad}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn allocates_blocks_in_order_and_wraps_to_released_ones() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        let got: Vec<String> = (0..3)
            .map(|_| set.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(got, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]);
        set.release(&cidr("10.244.1.0/24")).unwrap();
        // the search goes on from the last block handed out
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.244.3.0/24");
        assert_eq!(set.allocated(), 3);

        let mut small = CidrSet::new(cidr("10.0.0.0/23"), 24).unwrap();
        assert_eq!(small.allocate_next().unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(small.allocate_next().unwrap().to_string(), "10.0.1.0/24");
        assert_eq!(small.allocate_next(), Err(NO_CIDRS_REMAINING.to_owned()));
        small.release(&cidr("10.0.0.0/24")).unwrap();
        assert_eq!(small.allocate_next().unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(small.allocate_next(), Err(NO_CIDRS_REMAINING.to_owned()));
    }

    #[test]
    fn occupies_and_releases_ranges() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        set.occupy(&cidr("10.244.0.0/24")).unwrap();
        // occupying twice counts once
        set.occupy(&cidr("10.244.0.0/24")).unwrap();
        assert_eq!(set.allocated(), 1);
        // a bigger range marks every block in it; a smaller one its block
        set.occupy(&cidr("10.244.4.0/22")).unwrap();
        set.occupy(&cidr("10.244.9.128/25")).unwrap();
        assert_eq!(set.allocated(), 6);
        let next: Vec<String> = (0..5)
            .map(|_| set.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            next,
            [
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24",
                "10.244.8.0/24",
                "10.244.10.0/24"
            ]
        );
        set.release(&cidr("10.244.4.0/22")).unwrap();
        assert_eq!(set.allocated(), 7);
        assert_eq!(
            set.occupy(&cidr("10.245.0.0/24")),
            Err("cidr 10.245.0.0/24 is out the range of cluster cidr 10.244.0.0/16".to_owned())
        );
        assert!(set.occupy(&cidr("fd00::/64")).is_err());
        // a range holding the whole cluster CIDR uses every block
        let mut all = CidrSet::new(cidr("10.96.0.0/20"), 24).unwrap();
        all.occupy(&cidr("10.0.0.0/8")).unwrap();
        assert_eq!(all.allocated(), 16);
        assert_eq!(all.allocate_next(), Err(NO_CIDRS_REMAINING.to_owned()));
    }

    #[test]
    fn mask_sizes_and_ipv6() {
        let mut set = CidrSet::new(cidr("10.0.0.0/8"), 8).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.0.0.0/8");
        assert!(set.allocate_next().is_err());
        let mut set = CidrSet::new(cidr("10.0.0.0/30"), 32).unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| set.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]
        );

        let mut v6 = CidrSet::new(cidr("fd00:10:244::/56"), 64).unwrap();
        assert_eq!(v6.allocate_next().unwrap().to_string(), "fd00:10:244::/64");
        assert_eq!(
            v6.allocate_next().unwrap().to_string(),
            "fd00:10:244:1::/64"
        );
        v6.occupy(&cidr("fd00:10:244:2::/64")).unwrap();
        assert_eq!(
            v6.allocate_next().unwrap().to_string(),
            "fd00:10:244:3::/64"
        );
        // blocks crossing the 64-bit halves
        let mut v6 = CidrSet::new(cidr("2001:db8::/60"), 72).unwrap();
        v6.allocate_next().unwrap();
        assert_eq!(
            v6.allocate_next().unwrap().to_string(),
            "2001:db8:0:0:100::/72"
        );
        assert_eq!(
            CidrSet::new(cidr("fd00::/32"), 64).unwrap_err(),
            SUBNET_TOO_BIG
        );
        assert_eq!(CidrSet::new(cidr("fd00::/48"), 64).unwrap().max, 1 << 16);
        assert!(CidrSet::new(cidr("10.0.0.0/16"), 8).is_err());
        assert!(CidrSet::new(cidr("10.0.0.0/16"), 33).is_err());
        assert!(CidrSet::new(cidr("0.0.0.0/0"), 32).is_err());
    }

    #[test]
    fn flags_give_sets_or_clear_errors() {
        let sets = cidr_sets(&settings("10.244.0.0/16")).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].node_prefix, 24);
        let sets = cidr_sets(&settings("fd00::/48")).unwrap();
        assert_eq!(sets[0].node_prefix, 64);
        let dual = cidr_sets(&Settings {
            node_cidr_mask_size_ipv6: 56,
            ..settings("fd00::/48,10.244.0.0/16")
        })
        .unwrap();
        assert_eq!(
            dual.iter()
                .map(|s| (s.cluster.to_string(), s.node_prefix))
                .collect::<Vec<_>>(),
            [
                ("fd00::/48".to_owned(), 56),
                ("10.244.0.0/16".to_owned(), 24)
            ]
        );
        let single = cidr_sets(&Settings {
            node_cidr_mask_size: 20,
            ..settings("10.244.0.0/16")
        })
        .unwrap();
        assert_eq!(single[0].node_prefix, 20);

        let error = |s: Settings| cidr_sets(&s).unwrap_err();
        assert_eq!(
            error(settings("")),
            "Controller: Must specify --cluster-cidr if --allocate-node-cidrs is set"
        );
        assert_eq!(
            error(settings("10.244.0.0")),
            "failed to parse cidr value:\"10.244.0.0\" with error:invalid CIDR address: 10.244.0.0"
        );
        assert!(error(settings("10.0.0.0/8,10.1.0.0/16")).contains("not configured as dual stack"));
        assert_eq!(
            error(settings("10.0.0.0/8,fd00::/48,10.1.0.0/16")),
            "length of clusterCIDRs is:3 more than max allowed of 2"
        );
        assert!(
            error(Settings {
                node_cidr_mask_size: 24,
                ..settings("10.0.0.0/8,fd00::/48")
            })
            .contains("not allowed with dual-stack")
        );
        assert!(
            error(Settings {
                node_cidr_mask_size: 24,
                node_cidr_mask_size_ipv4: 24,
                ..settings("10.0.0.0/8")
            })
            .contains("is not allowed if --node-cidr-mask-size is set")
        );
        assert!(
            error(Settings {
                node_cidr_mask_size_ipv6: 64,
                ..settings("10.0.0.0/8")
            })
            .contains("single-stack IPv4")
        );
        assert!(
            error(Settings {
                node_cidr_mask_size_ipv4: 24,
                ..settings("fd00::/48")
            })
            .contains("single-stack IPv6")
        );
        assert_eq!(
            error(Settings {
                node_cidr_mask_size: -3,
                ..settings("10.0.0.0/8")
            }),
            "--node-cidr-mask-size -3 is not a valid mask size"
        );
        assert!(
            error(Settings {
                node_cidr_mask_size: i32::MAX,
                ..settings("10.0.0.0/8")
            })
            .contains("not a valid mask size")
        );
        assert!(
            error(Settings {
                node_cidr_mask_size: 8,
                ..settings("10.244.0.0/16")
            })
            .contains("must be less than or equal to --node-cidr-mask-size")
        );
        assert_eq!(
            error(Settings {
                cidr_allocator_type: "CloudAllocator".to_owned(),
                ..settings("10.0.0.0/8")
            }),
            "--cidr-allocator-type is set to 'CloudAllocator' but cloud provider is not configured"
        );
        assert!(
            error(Settings {
                service_cluster_ip_range: "10.96.0.0/12,10.97.0.0/16".to_owned(),
                ..settings("10.0.0.0/8")
            })
            .contains("not dualstack")
        );
    }

    #[test]
    fn service_range_blocks_are_used() {
        let mut sets = cidr_sets(&Settings {
            service_cluster_ip_range: "10.0.1.0/24,fd00::/112".to_owned(),
            ..settings("10.0.0.0/22")
        })
        .unwrap();
        assert_eq!(sets[0].allocated(), 1);
        let got: Vec<String> = (0..3)
            .map(|_| sets[0].allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(got, ["10.0.0.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
        // a service range that does not parse is only warned about
        assert!(
            cidr_sets(&Settings {
                service_cluster_ip_range: "nonsense".to_owned(),
                ..settings("10.0.0.0/22")
            })
            .is_ok()
        );
    }

    #[test]
    fn state_occupies_node_cidrs_and_releases_pending_ones() {
        let mut state = State {
            sets: cidr_sets(&settings("10.244.0.0/16,fd00::/48")).unwrap(),
            pending: HashMap::new(),
        };
        state
            .occupy(
                "a",
                &["10.244.7.0/24".to_owned(), "fd00:0:0:3::/64".to_owned()],
            )
            .unwrap();
        assert_eq!(state.sets[0].allocated(), 1);
        assert_eq!(state.sets[1].allocated(), 1);
        assert!(state.occupy("b", &["garbage".to_owned()]).is_err());
        assert!(
            state
                .occupy(
                    "c",
                    &[
                        "10.244.1.0/24".to_owned(),
                        "fd00::/64".to_owned(),
                        "10.1.0.0/24".to_owned()
                    ]
                )
                .unwrap_err()
                .contains("does not exist in cluster cidrs configuration")
        );
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24", "fd00:0:0:3::/64"]}
        }))
        .unwrap();
        state.pending.insert(
            "a".to_owned(),
            vec![cidr("10.244.9.0/24"), cidr("fd00:0:0:9::/64")],
        );
        state.sets[0].occupy(&cidr("10.244.9.0/24")).unwrap();
        state.release_node(&node);
        assert!(state.pending.is_empty());
        // c's first two were marked before its third failed
        assert_eq!(state.sets[0].allocated(), 1);
    }
}
