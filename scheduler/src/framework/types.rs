//! What plugins look at: a pod with its requests computed once ([`PodInfo`]), a node
//! with the pods on it and their sums ([`NodeInfo`]), and the cycle's [`Snapshot`] of
//! all nodes (upstream's `framework/types.go`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use apimachinery::labels::{LabelSelectorError, Selector};
use apimachinery::quantity::Quantity as ParsedQuantity;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The CPU a container without a CPU request counts for when scoring (upstream's
/// `DefaultMilliCPURequest`, 0.1 core).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts for when scoring (upstream's
/// `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of compute resources (upstream's `framework.Resource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// The `pods` resource: how many pods a node takes.
    pub allowed_pod_number: i64,
    /// Extended resources, hugepages and attachable volumes, by name.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether a resource name is counted as a scalar (upstream's `IsScalarResourceName`:
/// extended resources, hugepages, prefixed native resources, attachable volumes).
pub fn is_scalar_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("requests."))
}

/// A quantity's value in the unit the scheduler counts `name` in: millicores for CPU,
/// whole units (rounded up) for the rest; 0 when it does not parse (validation keeps
/// such quantities out of the API).
pub fn quantity_value(name: &str, quantity: &Quantity) -> i64 {
    match ParsedQuantity::parse(&quantity.0) {
        Ok(q) if name == "cpu" => q.milli_value(),
        Ok(q) => q.value(),
        Err(_) => 0,
    }
}

impl Resource {
    /// A resource list (requests, allocatable) as amounts.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let mut r = Resource::default();
        r.add_list(list);
        r
    }

    /// Adds a resource list.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            self.add_named(name, quantity_value(name, q));
        }
    }

    /// Adds `value` of the resource `name`.
    pub fn add_named(&mut self, name: &str, value: i64) {
        match name {
            "cpu" => self.milli_cpu = self.milli_cpu.saturating_add(value),
            "memory" => self.memory = self.memory.saturating_add(value),
            "ephemeral-storage" => {
                self.ephemeral_storage = self.ephemeral_storage.saturating_add(value)
            }
            "pods" => self.allowed_pod_number = self.allowed_pod_number.saturating_add(value),
            _ if is_scalar_resource_name(name) => {
                let e = self.scalar.entry(name.to_owned()).or_default();
                *e = e.saturating_add(value);
            }
            _ => {}
        }
    }

    /// The amount of `name` (0 for unknown names).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            _ => self.scalar.get(name).copied().unwrap_or(0),
        }
    }

    /// Adds `other` (saturating: quantities come from users and may be absurd).
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.allowed_pod_number = self
            .allowed_pod_number
            .saturating_add(other.allowed_pod_number);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` (saturating).
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.allowed_pod_number = self
            .allowed_pod_number
            .saturating_sub(other.allowed_pod_number);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
        }
    }

    /// Keeps, per resource, the larger of the two.
    pub fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(other.allowed_pod_number);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// Whether any amount of `self` is below the same amount of `other`.
    pub fn less_in_any(&self, other: &Resource) -> bool {
        self.milli_cpu < other.milli_cpu
            || self.memory < other.memory
            || self.ephemeral_storage < other.ephemeral_storage
            || other
                .scalar
                .iter()
                .any(|(k, v)| self.scalar.get(k).copied().unwrap_or(0) < *v)
    }
}

/// A k8s-openapi label selector in apimachinery's shape (the two crates each have
/// `metav1.LabelSelector`).
pub fn api_label_selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> apimachinery::labels::LabelSelector {
    apimachinery::labels::LabelSelector {
        match_labels: s.match_labels.clone(),
        match_expressions: s.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| apimachinery::labels::LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone(),
                })
                .collect()
        }),
    }
}

/// Parses a label selector: `None` selects nothing, empty selects everything (upstream's
/// `LabelSelectorAsSelector`).
pub fn label_selector(
    s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Selector, LabelSelectorError> {
    Selector::from_label_selector(s.map(api_label_selector).as_ref())
}

/// A pod as the scheduler sees it, with what plugins need computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// What the pod asks of a node (upstream's `PodRequests`: containers, init
    /// containers and sidecars, overhead).
    pub requests: Resource,
    /// The same with 100m CPU and 200 MiB memory for containers that request none
    /// (upstream's non-zero requests, used by scoring).
    pub non_zero_requests: Resource,
    /// The host ports the pod takes: (host IP, protocol, port).
    pub host_ports: Vec<(String, String, i32)>,
    /// Whether the pod has any pod affinity or anti-affinity.
    pub has_affinity: bool,
    /// Whether the pod has required pod anti-affinity.
    pub has_required_anti_affinity: bool,
}

fn requests_list(c: &Container) -> Option<&BTreeMap<String, Quantity>> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

impl PodInfo {
    /// Computes what plugins need of `pod`.
    pub fn new(pod: Pod) -> PodInfo {
        PodInfo::from_arc(Arc::new(pod))
    }

    /// As [`PodInfo::new`], sharing `pod`.
    pub fn from_arc(pod: Arc<Pod>) -> PodInfo {
        let requests = PodInfo::requests_of(&pod);
        let non_zero_requests = pod_requests(&pod, true);
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        if let Some(spec) = spec {
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                for p in c.ports.iter().flatten() {
                    if let Some(port) = p.host_port.filter(|p| *p > 0) {
                        host_ports.push((
                            p.host_ip
                                .clone()
                                .filter(|ip| !ip.is_empty())
                                .unwrap_or_else(|| "0.0.0.0".to_owned()),
                            p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                            port,
                        ));
                    }
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let has_affinity =
            affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let has_required_anti_affinity = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty());
        PodInfo {
            pod,
            requests,
            non_zero_requests,
            host_ports,
            has_affinity,
            has_required_anti_affinity,
        }
    }

    /// The pod's requests as upstream's `resource.PodRequests` computes them.
    pub fn requests_of(pod: &Pod) -> Resource {
        pod_requests(pod, false)
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    /// The pod's uid.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    /// The pod's priority (0 when unset, as upstream's `corev1helpers.PodPriority`).
    pub fn priority(&self) -> i32 {
        self.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
    }

    /// The node the pod is bound or nominated to: `spec.nodeName`.
    pub fn node_name(&self) -> Option<&str> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace(), self.name())
    }
}

/// Upstream's `resource.PodRequests`: containers summed; each init container at its
/// turn (with the sidecars started before it), sidecars summed into the total; the
/// larger of the two; plus overhead. With `non_zero`, containers missing a CPU or
/// memory request count the defaults.
fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let container_requests = |c: &Container| {
        let mut r = requests_list(c)
            .map(Resource::from_list)
            .unwrap_or_default();
        if non_zero {
            let list = requests_list(c);
            if !list.is_some_and(|l| l.contains_key("cpu")) {
                r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
            }
            if !list.is_some_and(|l| l.contains_key("memory")) {
                r.memory = DEFAULT_MEMORY_REQUEST;
            }
        }
        r
    };
    let mut total = Resource::default();
    for c in &spec.containers {
        total.add(&container_requests(c));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let at_its_turn = if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_max.max_with(&at_its_turn);
    }
    total.max_with(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add_list(overhead);
    }
    total
}

/// Host ports in use on a node: per host IP, the (protocol, port) pairs (upstream's
/// `HostPortInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPorts(pub HashMap<String, BTreeMap<(String, i32), usize>>);

impl HostPorts {
    /// Records one use.
    pub fn add(&mut self, ip: &str, protocol: &str, port: i32) {
        *self
            .0
            .entry(ip.to_owned())
            .or_default()
            .entry((protocol.to_owned(), port))
            .or_default() += 1;
    }

    /// Forgets one use.
    pub fn remove(&mut self, ip: &str, protocol: &str, port: i32) {
        if let Some(ports) = self.0.get_mut(ip) {
            let key = (protocol.to_owned(), port);
            if let Some(n) = ports.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    ports.remove(&key);
                }
            }
            if ports.is_empty() {
                self.0.remove(ip);
            }
        }
    }

    /// Whether a pod wanting `port` on `ip` collides with a use: `0.0.0.0` collides
    /// with every address.
    pub fn conflicts(&self, ip: &str, protocol: &str, port: i32) -> bool {
        let key = (protocol.to_owned(), port);
        if ip == "0.0.0.0" {
            return self.0.values().any(|ports| ports.contains_key(&key));
        }
        [ip, "0.0.0.0"]
            .iter()
            .any(|i| self.0.get(*i).is_some_and(|ports| ports.contains_key(&key)))
    }
}

/// A node with the pods on it (bound or assumed) and their sums.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// The node; `None` while pods are known on a node the cache has not seen (or no
    /// longer has).
    pub node: Option<Arc<Node>>,
    /// The pods on the node.
    pub pods: Vec<Arc<PodInfo>>,
    /// Those with pod affinity or anti-affinity.
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    /// Those with required pod anti-affinity.
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// Host ports in use.
    pub used_ports: HostPorts,
    /// The pods' summed requests.
    pub requested: Resource,
    /// The pods' summed non-zero requests (for scoring).
    pub non_zero_requested: Resource,
    /// The node's allocatable resources.
    pub allocatable: Resource,
    /// Images on the node: name → size in bytes.
    pub images: HashMap<String, i64>,
    /// PersistentVolumeClaims used by the pods (`namespace/name` → pods).
    pub pvc_ref_counts: HashMap<String, usize>,
    /// Bumped on every change (the cache's snapshot follows it).
    pub generation: u64,
}

impl NodeInfo {
    /// A node without pods.
    pub fn new(node: Node) -> NodeInfo {
        let mut info = NodeInfo::default();
        info.set_node(Arc::new(node));
        info
    }

    /// The node's name ("" before a node is set).
    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or("")
    }

    /// The node object; panics-free: an empty node while none is set.
    pub fn node(&self) -> &Node {
        static EMPTY: std::sync::OnceLock<Node> = std::sync::OnceLock::new();
        self.node
            .as_deref()
            .unwrap_or_else(|| EMPTY.get_or_init(Node::default))
    }

    /// Sets (or replaces) the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resource::from_list)
            .unwrap_or_default();
        self.images = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|image| {
                let size = image.size_bytes.unwrap_or(0);
                image
                    .names
                    .iter()
                    .flatten()
                    .map(move |name| (normalized_image_name(name), size))
            })
            .collect();
        self.node = Some(node);
        self.generation += 1;
    }

    /// Adds a pod's usage.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        for (ip, protocol, port) in &pod.host_ports {
            self.used_ports.add(ip, protocol, *port);
        }
        for claim in pvc_names(&pod) {
            *self.pvc_ref_counts.entry(claim).or_default() += 1;
        }
        if pod.has_affinity {
            self.pods_with_affinity.push(pod.clone());
        }
        if pod.has_required_anti_affinity {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        self.pods.push(pod);
        self.generation += 1;
    }

    /// Removes the pod with `uid`; false when it was not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(at) = self.pods.iter().position(|p| p.uid() == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(at);
        self.pods_with_affinity.retain(|p| p.uid() != uid);
        self.pods_with_required_anti_affinity
            .retain(|p| p.uid() != uid);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for (ip, protocol, port) in &pod.host_ports {
            self.used_ports.remove(ip, protocol, *port);
        }
        for claim in pvc_names(&pod) {
            if let Some(n) = self.pvc_ref_counts.get_mut(&claim) {
                *n -= 1;
                if *n == 0 {
                    self.pvc_ref_counts.remove(&claim);
                }
            }
        }
        self.generation += 1;
        true
    }
}

/// `namespace/claim` of each PersistentVolumeClaim the pod mounts.
fn pvc_names(pod: &PodInfo) -> Vec<String> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| format!("{}/{}", pod.namespace(), c.claim_name))
        .collect()
}

/// An image name as ImageLocality compares them: with `:latest` when it has no tag or
/// digest (upstream's `normalizedImageName`).
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// The cluster at the start of a cycle: every node with its pods.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The nodes, in a stable order.
    pub nodes: Arc<Vec<Arc<NodeInfo>>>,
    /// Node name → index into `nodes`.
    pub index: Arc<HashMap<String, usize>>,
    /// Image name → how many nodes have it (ImageLocality's spread).
    pub image_node_counts: Arc<HashMap<String, usize>>,
}

impl Snapshot {
    /// A snapshot of `nodes` (tests and the cache).
    pub fn from_nodes(nodes: Vec<NodeInfo>) -> Snapshot {
        let nodes: Vec<Arc<NodeInfo>> = nodes.into_iter().map(Arc::new).collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_owned(), i))
            .collect();
        let mut images: HashMap<String, usize> = HashMap::new();
        for n in &nodes {
            for image in n.images.keys() {
                *images.entry(image.clone()).or_default() += 1;
            }
        }
        Snapshot {
            nodes: Arc::new(nodes),
            index: Arc::new(index),
            image_node_counts: Arc::new(images),
        }
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).and_then(|i| self.nodes.get(*i))
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A pod waiting in the scheduling queue.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    /// The pod.
    pub pod_info: Arc<PodInfo>,
    /// When it was last added to the queue (PrioritySort's tie-breaker).
    pub timestamp: Instant,
    /// When it was first tried.
    pub initial_attempt: Option<Instant>,
    /// How many times it was tried.
    pub attempts: u32,
    /// The plugins that rejected it in its last attempt.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// The PreEnqueue plugin keeping it out of the active queue, if any.
    pub gated_by: Option<&'static str>,
}

impl QueuedPodInfo {
    /// A pod just added.
    pub fn new(pod_info: Arc<PodInfo>) -> QueuedPodInfo {
        QueuedPodInfo {
            pod_info,
            timestamp: Instant::now(),
            initial_attempt: None,
            attempts: 0,
            unschedulable_plugins: BTreeSet::new(),
            gated_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn requests_take_the_larger_of_containers_and_init_containers_with_sidecars_and_overhead() {
        // upstream's PodRequests: app containers 1 CPU; a sidecar (0.5) runs beside them;
        // a plain init container (2 CPU) runs beside the sidecars started before it
        let p = PodInfo::new(pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "example.com/gpu": "1"}}}
            ],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "512Mi"}}}
            ],
            "overhead": {"cpu": "100m"}
        })));
        // containers + sidecar = 1500m; init at its turn = 2000m + 500m = 2500m
        assert_eq!(p.requests.milli_cpu, 2600);
        assert_eq!(p.requests.memory, 1 << 30);
        assert_eq!(p.requests.scalar.get("example.com/gpu"), Some(&1));
        // non-zero: container b and the sidecar have no memory request: 200 MiB each
        assert_eq!(
            p.non_zero_requests.memory,
            (1 << 30) + 2 * DEFAULT_MEMORY_REQUEST
        );
    }

    #[test]
    fn containers_without_requests_count_defaults_only_for_scoring() {
        let p = PodInfo::new(pod(json!({"containers": [{"name": "a"}]})));
        assert_eq!(p.requests, Resource::default());
        assert_eq!(p.non_zero_requests.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(p.non_zero_requests.memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn node_info_sums_pods_and_forgets_them() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})).unwrap();
        let mut info = NodeInfo::new(node);
        assert_eq!(info.allocatable.milli_cpu, 4000);
        assert_eq!(info.allocatable.allowed_pod_number, 110);
        let p = Arc::new(PodInfo::new(pod(
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}], "resources": {"requests": {"cpu": "1"}}}]}),
        )));
        info.add_pod(p.clone());
        assert_eq!(info.requested.milli_cpu, 1000);
        assert!(info.used_ports.conflicts("0.0.0.0", "TCP", 8080));
        assert!(info.used_ports.conflicts("10.0.0.1", "TCP", 8080));
        assert!(!info.used_ports.conflicts("0.0.0.0", "UDP", 8080));
        assert!(info.remove_pod("u1"));
        assert!(!info.remove_pod("u1"));
        assert_eq!(info.requested, Resource::default());
        assert!(!info.used_ports.conflicts("0.0.0.0", "TCP", 8080));
    }

    #[test]
    fn image_names_without_a_tag_mean_latest() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(
            normalized_image_name("registry:5000/nginx"),
            "registry:5000/nginx:latest"
        );
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(normalized_image_name("nginx@sha256:ab"), "nginx@sha256:ab");
    }
}
