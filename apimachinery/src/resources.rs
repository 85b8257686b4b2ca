//! The resource table: every built-in resource that an upstream v1.33 kube-apiserver serves
//! by default, with the facts discovery publishes about it (kind, names, scope, verbs,
//! subresources) and the etcd key it is stored under.
//!
//! It mirrors what upstream spreads over `pkg/registry/*/rest/storage_*.go` (which resources
//! a group serves), the discovery documents (`/api/v1`, `/apis/<group>/<version>`, the
//! aggregated `apidiscovery.k8s.io/v2` document) and `pkg/kubeapiserver/
//! default_storage_factory_builder.go` (etcd prefixes). The names here equal what
//! `kubectl api-resources -o wide` prints against upstream v1.33.
//!
//! Beta and alpha groups are off by default upstream, so they are absent here: in v1.33 that
//! leaves out `resource.k8s.io` (DRA is beta, served only when enabled), `storage.k8s.io/
//! v1beta1` volumeattributesclasses, `certificates.k8s.io/v1beta1` clustertrustbundles,
//! `coordination.k8s.io/v1beta1` leasecandidates and every `v1alpha*` version.

use std::fmt;

/// The verbs of a normal stored resource, as discovery lists them (sorted).
const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces have no `deletecollection`: upstream's namespace REST does not offer it,
/// since deleting every namespace at once would be a foot-gun.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Virtual resources that only accept a POST (reviews, bindings, evictions, tokens).
const CREATE: &[&str] = &["create"];
/// ComponentStatus is computed on read and can be neither written nor watched.
const GET_LIST: &[&str] = &["get", "list"];
/// The verbs of `status`, `scale`, `approval`, `resize` and `ephemeralcontainers`.
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
/// The verbs of the proxy subresources (any HTTP method is forwarded).
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
/// The verbs of the streaming subresources (attach, exec, portforward): GET or POST upgrade.
const CONNECT: &[&str] = &["create", "get"];
/// `pods/log` is read-only.
const GET: &[&str] = &["get"];
/// `namespaces/finalize` only takes a PUT.
const UPDATE: &[&str] = &["update"];

/// The category `kubectl get all` expands to.
const ALL: &[&str] = &["all"];
/// The category of the resources that extend the API (`kubectl get api-extensions`).
const API_EXTENSIONS: &[&str] = &["api-extensions"];

/// The default root of every key upstream writes to etcd (`--etcd-prefix`).
pub const DEFAULT_ETCD_PREFIX: &str = "/registry";

/// A subresource of a resource, such as `pods/status` or `deployments/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The subresource name, without the parent (`status`, `scale`, `log`...).
    pub name: &'static str,
    /// The kind the subresource takes and returns (`Scale`, `Eviction`, `PodExecOptions`...).
    pub kind: &'static str,
    /// The group and version of `kind` when they differ from the parent's (`Scale` is
    /// `autoscaling/v1`, `Eviction` is `policy/v1`); `None` means the parent's.
    pub kind_group_version: Option<(&'static str, &'static str)>,
    /// The verbs discovery lists for `<parent>/<name>`.
    pub verbs: &'static [&'static str],
}

impl Subresource {
    /// A subresource whose kind lives in the parent's group version.
    const fn new(name: &'static str, kind: &'static str, verbs: &'static [&'static str]) -> Self {
        Self {
            name,
            kind,
            kind_group_version: None,
            verbs,
        }
    }

    /// A subresource whose kind lives in another group version.
    const fn foreign(
        name: &'static str,
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        verbs: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            kind,
            kind_group_version: Some((group, version)),
            verbs,
        }
    }

    /// Whether discovery lists `verb` for this subresource.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// The `status` subresource: same kind as the parent, get/patch/update.
pub const fn status(kind: &'static str) -> Subresource {
    Subresource::new("status", kind, GET_PATCH_UPDATE)
}

/// The `scale` subresource: an `autoscaling/v1` Scale, get/patch/update.
pub const SCALE: Subresource =
    Subresource::foreign("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE);

/// One built-in resource in one group version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// The API group; empty for the core (legacy) group.
    pub group: &'static str,
    /// The version this entry is served at.
    pub version: &'static str,
    /// The kind of the objects (`Pod`, `Deployment`...).
    pub kind: &'static str,
    /// The resource name used in URLs and RBAC (`pods`, `deployments`...).
    pub plural: &'static str,
    /// The singular name discovery reports (`pod`; `endpoints` for Endpoints).
    pub singular: &'static str,
    /// The short names discovery reports (`po`, `deploy`...), in discovery order.
    pub short_names: &'static [&'static str],
    /// The categories discovery reports (`all`, `api-extensions`).
    pub categories: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// The verbs discovery lists, sorted as upstream sorts them.
    pub verbs: &'static [&'static str],
    /// The subresources, sorted by name as discovery lists them.
    pub subresources: &'static [Subresource],
    /// Where objects live under the etcd root (`pods`, `services/specs`, `minions`...);
    /// `None` for virtual resources that are never stored (reviews, bindings).
    pub storage_prefix: Option<&'static str>,
    /// Whether a CustomResourceDefinition defines the resource (the apiserver then
    /// validates it against the CRD's schema instead of a built-in strategy).
    pub custom: bool,
}

impl ResourceInfo {
    /// An entry with no short names, categories or subresources, stored under its plural
    /// (upstream's default etcd prefix is the resource name).
    const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        namespaced: bool,
        verbs: &'static [&'static str],
    ) -> Self {
        Self {
            group,
            version,
            kind,
            plural,
            singular,
            short_names: &[],
            categories: &[],
            namespaced,
            verbs,
            subresources: &[],
            storage_prefix: Some(plural),
            custom: false,
        }
    }

    /// A custom resource of a CustomResourceDefinition (its strings leaked by the
    /// caller, which keeps one entry per distinct definition): every verb, stored under
    /// `<group>/<plural>` as upstream's apiextensions-apiserver stores them.
    #[allow(clippy::too_many_arguments)]
    pub fn custom(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        namespaced: bool,
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
        verbs: &'static [&'static str],
        subresources: &'static [Subresource],
        storage_prefix: &'static str,
    ) -> Self {
        Self {
            group,
            version,
            kind,
            plural,
            singular,
            short_names,
            categories,
            namespaced,
            verbs,
            subresources,
            storage_prefix: Some(storage_prefix),
            custom: true,
        }
    }

    const fn short(self, short_names: &'static [&'static str]) -> Self {
        Self {
            short_names,
            ..self
        }
    }

    const fn categories(self, categories: &'static [&'static str]) -> Self {
        Self { categories, ..self }
    }

    const fn subs(self, subresources: &'static [Subresource]) -> Self {
        Self {
            subresources,
            ..self
        }
    }

    const fn stored_at(self, prefix: &'static str) -> Self {
        Self {
            storage_prefix: Some(prefix),
            ..self
        }
    }

    const fn virtual_resource(self) -> Self {
        Self {
            storage_prefix: None,
            ..self
        }
    }

    /// The `apiVersion` of the objects: `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    /// The group-qualified resource, as errors and RBAC name it.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.plural)
    }

    /// The group-qualified kind, as validation errors name it.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group, self.kind)
    }

    /// Whether discovery lists `verb` for the resource itself.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The named subresource, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether objects are stored at all (virtual resources such as reviews are not).
    pub fn is_stored(&self) -> bool {
        self.storage_prefix.is_some()
    }

    /// The etcd key prefix under the default root, e.g. `/registry/services/specs`.
    pub fn etcd_key_prefix(&self) -> Option<String> {
        self.etcd_key_prefix_under(DEFAULT_ETCD_PREFIX)
    }

    /// The etcd key prefix under another root (upstream's `--etcd-prefix`).
    pub fn etcd_key_prefix_under(&self, root: &str) -> Option<String> {
        let root = root.trim_end_matches('/');
        self.storage_prefix.map(|p| format!("{root}/{p}"))
    }

    /// The etcd key of one object under the default root: `/registry/pods/<ns>/<name>`
    /// for namespaced resources, `/registry/minions/<name>` for cluster-scoped ones.
    /// `None` for virtual resources, or when the namespace is missing or superfluous.
    pub fn etcd_key(&self, namespace: Option<&str>, name: &str) -> Option<String> {
        let prefix = self.etcd_key_prefix()?;
        match (self.namespaced, namespace) {
            (true, Some(ns)) if !ns.is_empty() => Some(format!("{prefix}/{ns}/{name}")),
            (false, None) => Some(format!("{prefix}/{name}")),
            (false, Some("")) => Some(format!("{prefix}/{name}")),
            _ => None,
        }
    }

    /// Whether `token` (already lower-cased) names this resource: its plural, singular or a
    /// short name, as kubectl resolves them.
    fn is_named(&self, token: &str) -> bool {
        self.plural == token || self.singular == token || self.short_names.contains(&token)
    }
}

/// `apiVersion` for a group and version: bare version for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// A resource qualified by its group, as upstream's `schema.GroupResource`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupResource {
    /// The API group; empty for core.
    pub group: String,
    /// The resource (plural) name.
    pub resource: String,
}

impl GroupResource {
    /// A group resource from its parts.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// A resource of the core group.
    pub fn core(resource: impl Into<String>) -> Self {
        Self::new("", resource)
    }

    /// Whether both parts are empty (upstream's `Empty()`).
    pub fn is_empty(&self) -> bool {
        self.group.is_empty() && self.resource.is_empty()
    }
}

/// Formats as upstream's `String()`: `pods` for core, `deployments.apps` otherwise.
impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind qualified by its group, as upstream's `schema.GroupKind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupKind {
    /// The API group; empty for core.
    pub group: String,
    /// The kind.
    pub kind: String,
}

impl GroupKind {
    /// A group kind from its parts.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
        }
    }

    /// A kind of the core group.
    pub fn core(kind: impl Into<String>) -> Self {
        Self::new("", kind)
    }
}

/// Formats as upstream's `String()`: `Pod` for core, `Deployment.apps` otherwise.
impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// An API group and the versions served by default, preferred version first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiGroup {
    /// The group name; empty for the core group served at `/api`.
    pub name: &'static str,
    /// The served versions, preferred first (discovery's order).
    pub versions: &'static [&'static str],
}

impl ApiGroup {
    /// The preferred version (what `kubectl` uses unless told otherwise).
    pub fn preferred_version(&self) -> &'static str {
        // Every entry in GROUPS lists at least one version; the test suite checks it.
        self.versions.first().copied().unwrap_or("v1")
    }
}

/// Every group served by default, core first, then in the order upstream's aggregator lists
/// `/apis` (its group priorities); `kubectl` resolves ambiguous names in this order.
pub static GROUPS: &[ApiGroup] = &[
    ApiGroup {
        name: "",
        versions: &["v1"],
    },
    ApiGroup {
        name: "apiregistration.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "apps",
        versions: &["v1"],
    },
    ApiGroup {
        name: "events.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "authentication.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "authorization.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "autoscaling",
        versions: &["v2", "v1"],
    },
    ApiGroup {
        name: "batch",
        versions: &["v1"],
    },
    ApiGroup {
        name: "certificates.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "networking.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "policy",
        versions: &["v1"],
    },
    ApiGroup {
        name: "rbac.authorization.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "storage.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "admissionregistration.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "apiextensions.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "scheduling.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "coordination.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "node.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "discovery.k8s.io",
        versions: &["v1"],
    },
    ApiGroup {
        name: "flowcontrol.apiserver.k8s.io",
        versions: &["v1"],
    },
];

const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo::new(group, version, kind, plural, singular, namespaced, verbs)
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Every built-in resource served by default, ordered as [`GROUPS`] (preferred version
/// first within a group) and by plural within a group version, as discovery lists them.
// kept unformatted so that each resource opens with one line, readable as a table
#[rustfmt::skip]
pub static RESOURCES: &[ResourceInfo] = &[
    // ---- core/v1 (pkg/registry/core/rest/storage_core.go)
    r("", "v1", "Binding", "bindings", "binding", NS, CREATE).virtual_resource(),
    r("", "v1", "ComponentStatus", "componentstatuses", "componentstatus", CLUSTER, GET_LIST)
        .short(&["cs"])
        .virtual_resource(),
    r("", "v1", "ConfigMap", "configmaps", "configmap", NS, CRUD).short(&["cm"]),
    // upstream keeps Endpoints beside Services in etcd (SpecialDefaultResourcePrefixes)
    r("", "v1", "Endpoints", "endpoints", "endpoints", NS, CRUD)
        .short(&["ep"])
        .stored_at("services/endpoints"),
    r("", "v1", "Event", "events", "event", NS, CRUD).short(&["ev"]),
    r("", "v1", "LimitRange", "limitranges", "limitrange", NS, CRUD)
        .short(&["limits"]),
    r("", "v1", "Namespace", "namespaces", "namespace", CLUSTER, NAMESPACE_VERBS)
        .short(&["ns"])
        .subs(&[
            Subresource::new("finalize", "Namespace", UPDATE),
            status("Namespace"),
        ]),
    // nodes were once "minions"; the etcd prefix never changed
    r("", "v1", "Node", "nodes", "node", CLUSTER, CRUD)
        .short(&["no"])
        .subs(&[
            Subresource::new("proxy", "NodeProxyOptions", PROXY),
            status("Node"),
        ])
        .stored_at("minions"),
    r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", NS, CRUD)
        .short(&["pvc"])
        .subs(&[status("PersistentVolumeClaim")]),
    r("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", CLUSTER, CRUD)
        .short(&["pv"])
        .subs(&[status("PersistentVolume")]),
    r("", "v1", "Pod", "pods", "pod", NS, CRUD)
        .short(&["po"])
        .categories(ALL)
        .subs(&[
            Subresource::new("attach", "PodAttachOptions", CONNECT),
            Subresource::new("binding", "Binding", CREATE),
            Subresource::new("ephemeralcontainers", "Pod", GET_PATCH_UPDATE),
            Subresource::foreign("eviction", "policy", "v1", "Eviction", CREATE),
            Subresource::new("exec", "PodExecOptions", CONNECT),
            Subresource::new("log", "Pod", GET),
            Subresource::new("portforward", "PodPortForwardOptions", CONNECT),
            Subresource::new("proxy", "PodProxyOptions", PROXY),
            // new in v1.33 with in-place pod resize (beta)
            Subresource::new("resize", "Pod", GET_PATCH_UPDATE),
            status("Pod"),
        ]),
    r("", "v1", "PodTemplate", "podtemplates", "podtemplate", NS, CRUD),
    r("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", NS, CRUD)
        .short(&["rc"])
        .categories(ALL)
        .subs(&[SCALE, status("ReplicationController")])
        .stored_at("controllers"),
    r("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", NS, CRUD)
        .short(&["quota"])
        .subs(&[status("ResourceQuota")]),
    r("", "v1", "Secret", "secrets", "secret", NS, CRUD),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", NS, CRUD)
        .short(&["sa"])
        .subs(&[Subresource::foreign(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            CREATE,
        )]),
    r("", "v1", "Service", "services", "service", NS, CRUD)
        .short(&["svc"])
        .categories(ALL)
        .subs(&[
            Subresource::new("proxy", "ServiceProxyOptions", PROXY),
            status("Service"),
        ])
        .stored_at("services/specs"),
    // ---- apiregistration.k8s.io/v1 (kube-aggregator; its keys carry the group)
    r("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", CLUSTER, CRUD)
        .categories(API_EXTENSIONS)
        .subs(&[status("APIService")])
        .stored_at("apiregistration.k8s.io/apiservices"),
    // ---- apps/v1
    r("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", NS, CRUD),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", NS, CRUD)
        .short(&["ds"])
        .categories(ALL)
        .subs(&[status("DaemonSet")]),
    r("apps", "v1", "Deployment", "deployments", "deployment", NS, CRUD)
        .short(&["deploy"])
        .categories(ALL)
        .subs(&[SCALE, status("Deployment")]),
    r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", NS, CRUD)
        .short(&["rs"])
        .categories(ALL)
        .subs(&[SCALE, status("ReplicaSet")]),
    r("apps", "v1", "StatefulSet", "statefulsets", "statefulset", NS, CRUD)
        .short(&["sts"])
        .categories(ALL)
        .subs(&[SCALE, status("StatefulSet")]),
    // ---- events.k8s.io/v1: the same objects as core events, so the same etcd prefix
    // (upstream registers the two as cohabitating resources)
    r("events.k8s.io", "v1", "Event", "events", "event", NS, CRUD).short(&["ev"]),
    // ---- authentication.k8s.io/v1
    r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", CLUSTER, CREATE)
        .virtual_resource(),
    r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", CLUSTER, CREATE)
        .virtual_resource(),
    // ---- authorization.k8s.io/v1
    r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", NS, CREATE)
        .virtual_resource(),
    r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", CLUSTER, CREATE)
        .virtual_resource(),
    r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", CLUSTER, CREATE)
        .virtual_resource(),
    r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", CLUSTER, CREATE)
        .virtual_resource(),
    // ---- autoscaling/v2 (preferred) and v1: one stored resource served at two versions
    r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", NS, CRUD)
        .short(&["hpa"])
        .categories(ALL)
        .subs(&[status("HorizontalPodAutoscaler")]),
    r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", NS, CRUD)
        .short(&["hpa"])
        .categories(ALL)
        .subs(&[status("HorizontalPodAutoscaler")]),
    // ---- batch/v1
    r("batch", "v1", "CronJob", "cronjobs", "cronjob", NS, CRUD)
        .short(&["cj"])
        .categories(ALL)
        .subs(&[status("CronJob")]),
    r("batch", "v1", "Job", "jobs", "job", NS, CRUD)
        .categories(ALL)
        .subs(&[status("Job")]),
    // ---- certificates.k8s.io/v1
    r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", CLUSTER, CRUD)
        .short(&["csr"])
        .subs(&[
            Subresource::new("approval", "CertificateSigningRequest", GET_PATCH_UPDATE),
            status("CertificateSigningRequest"),
        ]),
    // ---- networking.k8s.io/v1 (IPAddress and ServiceCIDR went GA in v1.33)
    r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", CLUSTER, CRUD),
    // upstream stores ingresses under the singular "ingress" (SpecialDefaultResourcePrefixes)
    r("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", NS, CRUD)
        .short(&["ing"])
        .subs(&[status("Ingress")])
        .stored_at("ingress"),
    r("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", CLUSTER, CRUD)
        .short(&["ip"]),
    r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", NS, CRUD)
        .short(&["netpol"]),
    r("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", CLUSTER, CRUD)
        .subs(&[status("ServiceCIDR")]),
    // ---- policy/v1
    r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", NS, CRUD)
        .short(&["pdb"])
        .subs(&[status("PodDisruptionBudget")]),
    // ---- rbac.authorization.k8s.io/v1
    r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", CLUSTER, CRUD),
    r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", CLUSTER, CRUD),
    r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", NS, CRUD),
    r("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", NS, CRUD),
    // ---- storage.k8s.io/v1
    r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", CLUSTER, CRUD),
    r("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", CLUSTER, CRUD),
    r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", NS, CRUD),
    r("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", CLUSTER, CRUD)
        .short(&["sc"]),
    r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", CLUSTER, CRUD)
        .subs(&[status("VolumeAttachment")]),
    // ---- admissionregistration.k8s.io/v1
    r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", CLUSTER, CRUD)
        .categories(API_EXTENSIONS),
    r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", CLUSTER, CRUD)
        .categories(API_EXTENSIONS)
        .subs(&[status("ValidatingAdmissionPolicy")]),
    r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", CLUSTER, CRUD)
        .categories(API_EXTENSIONS),
    r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", CLUSTER, CRUD)
        .categories(API_EXTENSIONS),
    // ---- apiextensions.k8s.io/v1 (apiextensions-apiserver; its keys carry the group)
    r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", CLUSTER, CRUD)
        .short(&["crd", "crds"])
        .categories(API_EXTENSIONS)
        .subs(&[status("CustomResourceDefinition")])
        .stored_at("apiextensions.k8s.io/customresourcedefinitions"),
    // ---- scheduling.k8s.io/v1
    r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", CLUSTER, CRUD)
        .short(&["pc"]),
    // ---- coordination.k8s.io/v1
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", NS, CRUD),
    // ---- node.k8s.io/v1
    r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", CLUSTER, CRUD),
    // ---- discovery.k8s.io/v1
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", NS, CRUD),
    // ---- flowcontrol.apiserver.k8s.io/v1
    r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", "flowschema", CLUSTER, CRUD)
        .subs(&[status("FlowSchema")]),
    r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", "prioritylevelconfiguration", CLUSTER, CRUD)
        .subs(&[status("PriorityLevelConfiguration")]),
];

/// The group served under `name`, if any.
pub fn group(name: &str) -> Option<&'static ApiGroup> {
    GROUPS.iter().find(|g| g.name == name)
}

/// Every group version served, as `(group, version)`, groups in [`GROUPS`] order and the
/// preferred version first.
pub fn group_versions() -> impl Iterator<Item = (&'static str, &'static str)> {
    GROUPS
        .iter()
        .flat_map(|g| g.versions.iter().map(move |v| (g.name, *v)))
}

/// The preferred version of a group, if the group is served.
pub fn preferred_version(group_name: &str) -> Option<&'static str> {
    group(group_name).map(ApiGroup::preferred_version)
}

/// Every resource served at one group version, in discovery order.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceInfo> {
    let (group, version) = (group.to_string(), version.to_string());
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resource at `(group, version, plural)`, as a request path names it.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource and subresource a request path names (`pods` + `status`); `subresource`
/// `None` asks for the resource itself. `None` if either is unknown.
pub fn find_with_subresource(
    group: &str,
    version: &str,
    plural: &str,
    subresource: Option<&str>,
) -> Option<(&'static ResourceInfo, Option<&'static Subresource>)> {
    let info = find(group, version, plural)?;
    match subresource {
        None => Some((info, None)),
        Some(name) => info.subresource(name).map(|s| (info, Some(s))),
    }
}

/// The resource serving kind `kind` at `(group, version)`.
pub fn find_by_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The resource serving `kind` of `group` at the group's preferred version (falling back to
/// any served version).
pub fn find_by_group_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    // RESOURCES lists the preferred version first, so the first hit is the preferred one
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The group resource of a kind, as upstream's RESTMapper maps `Deployment.apps` to
/// `deployments.apps`.
pub fn resource_for_kind(group: &str, kind: &str) -> Option<GroupResource> {
    find_by_group_kind(group, kind).map(ResourceInfo::group_resource)
}

/// Resolves a name as `kubectl get <arg>` does and returns the best match: plural,
/// singular, short name or kind (any case), optionally qualified as `<name>.<group>` or
/// `<name>.<version>.<group>`. Ambiguous names go to the core group first, then to groups in
/// [`GROUPS`] order at their preferred version, as kubectl's priority RESTMapper does
/// (`ev` and `events` are core events, `hpa` is `autoscaling/v2`).
pub fn resolve(arg: &str) -> Option<&'static ResourceInfo> {
    resolve_all(arg).into_iter().next()
}

/// Every resource `arg` may name, best first (see [`resolve`]).
pub fn resolve_all(arg: &str) -> Vec<&'static ResourceInfo> {
    // the RESTMapper lower-cases what it matches, which also lets a Kind name its resource
    let arg = arg.trim().to_ascii_lowercase();
    if arg.is_empty() {
        return Vec::new();
    }
    let Some((name, rest)) = arg.split_once('.') else {
        return matching(&arg, None, None);
    };
    // like schema.ParseResourceArg: with two or more dots, try resource.version.group first
    if let Some((version, group)) = rest.split_once('.') {
        let hits = matching(name, Some(group), Some(version));
        if !hits.is_empty() {
            return hits;
        }
    }
    matching(name, Some(rest), None)
}

fn matching(token: &str, group: Option<&str>, version: Option<&str>) -> Vec<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .filter(|r| group.is_none_or(|g| r.group == g))
        .filter(|r| version.is_none_or(|v| r.version == v))
        .filter(|r| r.is_named(token))
        .collect()
}

/// Every resource in a category (`all`, `api-extensions`) at its group's preferred version,
/// as `kubectl get all` expands it.
pub fn in_category(category: &str) -> Vec<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .filter(|r| r.categories.contains(&category))
        .filter(|r| preferred_version(r.group) == Some(r.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    fn get(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        find(group, version, plural).unwrap_or_else(|| panic!("{group}/{version}/{plural} missing"))
    }

    #[test]
    fn no_duplicate_plural_or_kind_per_group_version() {
        let mut plurals = HashSet::new();
        let mut kinds = HashSet::new();
        for r in RESOURCES {
            assert!(
                plurals.insert((r.group, r.version, r.plural)),
                "duplicate plural {}",
                r.plural
            );
            assert!(
                kinds.insert((r.group, r.version, r.kind)),
                "duplicate kind {}",
                r.kind
            );
        }
    }

    #[test]
    fn every_short_name_names_one_group_resource() {
        let mut owners: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
        for r in RESOURCES {
            for s in r.short_names {
                owners.entry(s).or_default().insert((r.group, r.plural));
            }
        }
        for (short, set) in &owners {
            if *short == "ev" {
                // upstream gives both event APIs the same short name; kubectl picks core
                let want: BTreeSet<_> = [("", "events"), ("events.k8s.io", "events")].into();
                assert_eq!(set, &want);
            } else {
                assert_eq!(set.len(), 1, "short name {short} is shared: {set:?}");
            }
        }
        // a short name never shadows another resource's plural or singular
        for r in RESOURCES {
            for s in r.short_names {
                assert!(
                    RESOURCES.iter().all(|o| o.plural != *s && o.singular != *s),
                    "short name {s} collides with a resource name"
                );
            }
        }
    }

    #[test]
    fn every_resource_is_in_a_served_group_version_and_every_version_has_resources() {
        let gvs: Vec<_> = group_versions().collect();
        for r in RESOURCES {
            assert!(
                gvs.contains(&(r.group, r.version)),
                "{}/{} not in GROUPS",
                r.group,
                r.version
            );
        }
        for (g, v) in gvs {
            assert!(
                resources_in(g, v).next().is_some(),
                "{g}/{v} serves nothing"
            );
        }
        assert!(GROUPS.iter().all(|g| !g.versions.is_empty()));
    }

    #[test]
    fn table_is_in_priority_order() {
        // resolve() relies on RESOURCES listing groups in GROUPS order, preferred first
        let rank = |r: &ResourceInfo| {
            let gi = GROUPS.iter().position(|g| g.name == r.group).unwrap();
            let vi = GROUPS[gi]
                .versions
                .iter()
                .position(|v| *v == r.version)
                .unwrap();
            (gi, vi)
        };
        for pair in RESOURCES.windows(2) {
            if (pair[0].group, pair[0].version) == (pair[1].group, pair[1].version) {
                // discovery lists a group version's resources sorted by name
                assert!(
                    pair[0].plural < pair[1].plural,
                    "{} before {}",
                    pair[0].plural,
                    pair[1].plural
                );
            }
            assert!(
                rank(&pair[0]) <= rank(&pair[1]),
                "{} before {}",
                pair[0].plural,
                pair[1].plural
            );
        }
    }

    #[test]
    fn verbs_names_and_subresources_are_well_formed() {
        const KNOWN: &[&str] = &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        for r in RESOURCES {
            assert!(!r.verbs.is_empty());
            assert!(r.verbs.is_sorted(), "{} verbs unsorted", r.plural);
            assert!(r.verbs.iter().all(|v| KNOWN.contains(v)));
            assert_eq!(r.plural, r.plural.to_ascii_lowercase());
            assert_eq!(r.singular, r.singular.to_ascii_lowercase());
            // discovery's singular name is the lower-cased kind for every built-in
            assert_eq!(r.singular, r.kind.to_ascii_lowercase());
            let names: Vec<_> = r.subresources.iter().map(|s| s.name).collect();
            assert!(names.is_sorted(), "{} subresources unsorted", r.plural);
            let unique: HashSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len());
            for s in r.subresources {
                assert!(s.verbs.is_sorted());
                assert!(s.verbs.iter().all(|v| KNOWN.contains(v)));
                // the parent of every subresource resolves through the path lookup
                let (parent, sub) =
                    find_with_subresource(r.group, r.version, r.plural, Some(s.name)).unwrap();
                assert_eq!(parent, r);
                assert_eq!(sub, Some(s));
            }
        }
    }

    #[test]
    fn served_groups_match_upstream_defaults() {
        let names: Vec<_> = GROUPS.iter().map(|g| g.name).collect();
        assert_eq!(names.len(), 20);
        // beta DRA is off by default in v1.33
        assert!(group("resource.k8s.io").is_none());
        assert!(group("storagemigration.k8s.io").is_none());
        assert!(group("internal.apiserver.k8s.io").is_none());
        assert_eq!(preferred_version("autoscaling"), Some("v2"));
        assert_eq!(preferred_version(""), Some("v1"));
        assert_eq!(preferred_version("apps"), Some("v1"));
        assert_eq!(preferred_version("extensions"), None);
        // kubectl api-resources against v1.33 lists 60 resources at preferred versions
        let preferred = RESOURCES
            .iter()
            .filter(|r| preferred_version(r.group) == Some(r.version))
            .count();
        assert_eq!(preferred, 60);
        assert_eq!(RESOURCES.len(), 61);
    }

    #[test]
    fn core_facts() {
        let pods = get("", "v1", "pods");
        assert_eq!(pods.kind, "Pod");
        assert_eq!(pods.short_names, ["po"]);
        assert_eq!(pods.categories, ["all"]);
        assert!(pods.namespaced);
        assert_eq!(
            pods.verbs,
            [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ]
        );
        let subs: Vec<_> = pods.subresources.iter().map(|s| s.name).collect();
        assert_eq!(
            subs,
            [
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status"
            ]
        );
        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!(eviction.kind, "Eviction");
        assert_eq!(eviction.kind_group_version, Some(("policy", "v1")));
        assert_eq!(eviction.verbs, ["create"]);
        assert_eq!(pods.subresource("exec").unwrap().kind, "PodExecOptions");
        assert_eq!(pods.subresource("exec").unwrap().verbs, ["create", "get"]);
        assert_eq!(pods.subresource("log").unwrap().verbs, ["get"]);
        assert_eq!(pods.subresource("binding").unwrap().kind, "Binding");
        assert_eq!(
            pods.subresource("resize").unwrap().verbs,
            ["get", "patch", "update"]
        );
        assert_eq!(
            pods.subresource("proxy").unwrap().verbs,
            ["create", "delete", "get", "patch", "update"]
        );

        let bindings = get("", "v1", "bindings");
        assert_eq!(bindings.verbs, ["create"]);
        assert!(!bindings.is_stored());
        let cs = get("", "v1", "componentstatuses");
        assert_eq!(cs.verbs, ["get", "list"]);
        assert_eq!(cs.short_names, ["cs"]);
        assert!(!cs.namespaced);

        let ns = get("", "v1", "namespaces");
        assert!(!ns.has_verb("deletecollection"));
        assert_eq!(ns.subresource("finalize").unwrap().verbs, ["update"]);
        assert_eq!(get("", "v1", "endpoints").singular, "endpoints");
        assert_eq!(
            get("", "v1", "nodes").subresource("proxy").unwrap().kind,
            "NodeProxyOptions"
        );
        assert_eq!(
            get("", "v1", "services").subresource("proxy").unwrap().kind,
            "ServiceProxyOptions"
        );
        let token = get("", "v1", "serviceaccounts")
            .subresource("token")
            .unwrap();
        assert_eq!(token.kind, "TokenRequest");
        assert_eq!(
            token.kind_group_version,
            Some(("authentication.k8s.io", "v1"))
        );
        let rc_scale = get("", "v1", "replicationcontrollers")
            .subresource("scale")
            .unwrap();
        assert_eq!(rc_scale.kind_group_version, Some(("autoscaling", "v1")));
        assert_eq!(get("", "v1", "limitranges").short_names, ["limits"]);
        assert_eq!(get("", "v1", "resourcequotas").short_names, ["quota"]);
        assert!(get("", "v1", "secrets").short_names.is_empty());
        assert!(get("", "v1", "podtemplates").categories.is_empty());
        assert!(!get("", "v1", "persistentvolumes").namespaced);
        assert!(get("", "v1", "persistentvolumeclaims").namespaced);
    }

    #[test]
    fn group_facts() {
        let deploy = get("apps", "v1", "deployments");
        assert_eq!(deploy.short_names, ["deploy"]);
        assert_eq!(deploy.api_version(), "apps/v1");
        let scale = deploy.subresource("scale").unwrap();
        assert_eq!(
            (scale.kind, scale.kind_group_version),
            ("Scale", Some(("autoscaling", "v1")))
        );
        assert_eq!(deploy.subresource("status").unwrap().kind, "Deployment");
        assert!(
            get("apps", "v1", "daemonsets")
                .subresource("scale")
                .is_none()
        );
        assert_eq!(get("apps", "v1", "statefulsets").short_names, ["sts"]);
        assert_eq!(get("batch", "v1", "cronjobs").short_names, ["cj"]);
        assert!(get("batch", "v1", "jobs").short_names.is_empty());
        assert_eq!(get("batch", "v1", "jobs").categories, ["all"]);
        let hpa1 = get("autoscaling", "v1", "horizontalpodautoscalers");
        let hpa2 = get("autoscaling", "v2", "horizontalpodautoscalers");
        assert_eq!(hpa1.storage_prefix, hpa2.storage_prefix);
        assert_eq!(
            get("policy", "v1", "poddisruptionbudgets").short_names,
            ["pdb"]
        );
        let crd = get("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        assert_eq!(crd.short_names, ["crd", "crds"]);
        assert_eq!(crd.categories, ["api-extensions"]);
        let csr = get("certificates.k8s.io", "v1", "certificatesigningrequests");
        assert_eq!(csr.short_names, ["csr"]);
        assert_eq!(
            csr.subresource("approval").unwrap().verbs,
            ["get", "patch", "update"]
        );
        assert_eq!(
            get("networking.k8s.io", "v1", "ingresses").short_names,
            ["ing"]
        );
        assert_eq!(
            get("networking.k8s.io", "v1", "networkpolicies").short_names,
            ["netpol"]
        );
        assert_eq!(
            get("networking.k8s.io", "v1", "ipaddresses").short_names,
            ["ip"]
        );
        assert!(!get("networking.k8s.io", "v1", "servicecidrs").namespaced);
        assert_eq!(
            get("scheduling.k8s.io", "v1", "priorityclasses").short_names,
            ["pc"]
        );
        assert_eq!(
            get("storage.k8s.io", "v1", "storageclasses").short_names,
            ["sc"]
        );
        assert!(get("storage.k8s.io", "v1", "csistoragecapacities").namespaced);
        assert!(get("coordination.k8s.io", "v1", "leases").namespaced);
        assert!(get("discovery.k8s.io", "v1", "endpointslices").namespaced);
        assert_eq!(
            get("authentication.k8s.io", "v1", "tokenreviews").verbs,
            ["create"]
        );
        assert!(get("authorization.k8s.io", "v1", "localsubjectaccessreviews").namespaced);
        assert!(!get("authorization.k8s.io", "v1", "subjectaccessreviews").namespaced);
        assert!(!get("authentication.k8s.io", "v1", "selfsubjectreviews").is_stored());
        assert!(find("extensions", "v1beta1", "ingresses").is_none());
        assert!(find("storage.k8s.io", "v1", "volumeattributesclasses").is_none());
    }

    #[test]
    fn categories_match_upstream() {
        let all: BTreeSet<_> = in_category("all").iter().map(|r| r.plural).collect();
        let want: BTreeSet<_> = [
            "pods",
            "replicationcontrollers",
            "services",
            "daemonsets",
            "deployments",
            "replicasets",
            "statefulsets",
            "horizontalpodautoscalers",
            "cronjobs",
            "jobs",
        ]
        .into();
        assert_eq!(all, want);
        assert_eq!(in_category("all").len(), 10, "hpa listed once, at v2");
        let ext: BTreeSet<_> = in_category("api-extensions")
            .iter()
            .map(|r| r.plural)
            .collect();
        let want: BTreeSet<_> = [
            "apiservices",
            "customresourcedefinitions",
            "mutatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "validatingwebhookconfigurations",
        ]
        .into();
        assert_eq!(ext, want);
    }

    #[test]
    fn etcd_prefixes_match_upstream() {
        let prefix = |g, v, p| get(g, v, p).etcd_key_prefix();
        assert_eq!(prefix("", "v1", "pods").as_deref(), Some("/registry/pods"));
        assert_eq!(
            prefix("", "v1", "services").as_deref(),
            Some("/registry/services/specs")
        );
        assert_eq!(
            prefix("", "v1", "endpoints").as_deref(),
            Some("/registry/services/endpoints")
        );
        assert_eq!(
            prefix("", "v1", "nodes").as_deref(),
            Some("/registry/minions")
        );
        assert_eq!(
            prefix("", "v1", "replicationcontrollers").as_deref(),
            Some("/registry/controllers")
        );
        assert_eq!(
            prefix("", "v1", "serviceaccounts").as_deref(),
            Some("/registry/serviceaccounts")
        );
        assert_eq!(
            prefix("apps", "v1", "deployments").as_deref(),
            Some("/registry/deployments")
        );
        assert_eq!(
            prefix("networking.k8s.io", "v1", "ingresses").as_deref(),
            Some("/registry/ingress")
        );
        assert_eq!(
            prefix("events.k8s.io", "v1", "events").as_deref(),
            Some("/registry/events")
        );
        assert_eq!(
            prefix("apiextensions.k8s.io", "v1", "customresourcedefinitions").as_deref(),
            Some("/registry/apiextensions.k8s.io/customresourcedefinitions")
        );
        assert_eq!(
            prefix("apiregistration.k8s.io", "v1", "apiservices").as_deref(),
            Some("/registry/apiregistration.k8s.io/apiservices")
        );
        assert_eq!(prefix("", "v1", "bindings"), None);
        assert_eq!(
            prefix("authorization.k8s.io", "v1", "subjectaccessreviews"),
            None
        );
        assert_eq!(
            get("", "v1", "pods")
                .etcd_key_prefix_under("/custom/")
                .as_deref(),
            Some("/custom/pods")
        );
    }

    #[test]
    fn etcd_prefixes_are_shared_only_by_the_same_objects() {
        let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for r in RESOURCES {
            if let Some(p) = r.storage_prefix {
                owners.entry(p).or_default().insert(r.kind);
            }
        }
        for (prefix, kinds) in owners {
            assert_eq!(kinds.len(), 1, "{prefix} holds {kinds:?}");
        }
    }

    #[test]
    fn etcd_object_keys() {
        let pods = get("", "v1", "pods");
        assert_eq!(
            pods.etcd_key(Some("default"), "web").as_deref(),
            Some("/registry/pods/default/web")
        );
        assert_eq!(pods.etcd_key(None, "web"), None);
        let nodes = get("", "v1", "nodes");
        assert_eq!(
            nodes.etcd_key(None, "n1").as_deref(),
            Some("/registry/minions/n1")
        );
        assert_eq!(nodes.etcd_key(Some("default"), "n1"), None);
        assert_eq!(
            get("", "v1", "bindings").etcd_key(Some("default"), "b"),
            None
        );
    }

    #[test]
    fn lookups_by_kind() {
        assert_eq!(
            find_by_kind("apps", "v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(
            find_by_kind("", "v1", "Endpoints").unwrap().plural,
            "endpoints"
        );
        assert_eq!(
            find_by_group_kind("autoscaling", "HorizontalPodAutoscaler")
                .unwrap()
                .version,
            "v2"
        );
        assert_eq!(
            resource_for_kind("networking.k8s.io", "Ingress"),
            Some(GroupResource::new("networking.k8s.io", "ingresses"))
        );
        assert_eq!(
            resource_for_kind("", "Event"),
            Some(GroupResource::core("events"))
        );
        assert!(find_by_kind("apps", "v1", "Pod").is_none());
    }

    #[test]
    fn kubectl_style_resolution() {
        let name = |arg: &str| resolve(arg).map(|r| (r.group, r.version, r.plural));
        assert_eq!(name("po"), Some(("", "v1", "pods")));
        assert_eq!(name("pod"), Some(("", "v1", "pods")));
        assert_eq!(name("pods"), Some(("", "v1", "pods")));
        assert_eq!(name("Pod"), Some(("", "v1", "pods")));
        assert_eq!(name("svc"), Some(("", "v1", "services")));
        assert_eq!(name("deploy"), Some(("apps", "v1", "deployments")));
        assert_eq!(name("Deployment"), Some(("apps", "v1", "deployments")));
        assert_eq!(
            name("deployments.apps"),
            Some(("apps", "v1", "deployments"))
        );
        assert_eq!(
            name("deployments.v1.apps"),
            Some(("apps", "v1", "deployments"))
        );
        assert_eq!(name("deploy.apps"), Some(("apps", "v1", "deployments")));
        assert_eq!(name("ing"), Some(("networking.k8s.io", "v1", "ingresses")));
        assert_eq!(
            name("ingresses.networking.k8s.io"),
            Some(("networking.k8s.io", "v1", "ingresses"))
        );
        assert_eq!(
            name("crds"),
            Some(("apiextensions.k8s.io", "v1", "customresourcedefinitions"))
        );
        assert_eq!(name("no"), Some(("", "v1", "nodes")));
        assert_eq!(name("ns"), Some(("", "v1", "namespaces")));
        assert_eq!(
            name("netpol"),
            Some(("networking.k8s.io", "v1", "networkpolicies"))
        );
        assert_eq!(name("limits"), Some(("", "v1", "limitranges")));
        assert_eq!(name("quota"), Some(("", "v1", "resourcequotas")));
        assert_eq!(name("cj"), Some(("batch", "v1", "cronjobs")));
        // ambiguity goes to core, then to the preferred version
        assert_eq!(name("ev"), Some(("", "v1", "events")));
        assert_eq!(name("events"), Some(("", "v1", "events")));
        assert_eq!(
            name("events.events.k8s.io"),
            Some(("events.k8s.io", "v1", "events"))
        );
        assert_eq!(
            name("hpa"),
            Some(("autoscaling", "v2", "horizontalpodautoscalers"))
        );
        assert_eq!(
            name("hpa.v1.autoscaling"),
            Some(("autoscaling", "v1", "horizontalpodautoscalers"))
        );
        assert_eq!(resolve_all("hpa").len(), 2);
        assert_eq!(resolve_all("ev").len(), 2);
        assert_eq!(name("widgets"), None);
        assert_eq!(name("pods.apps"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn group_resource_and_kind_strings() {
        assert_eq!(GroupResource::core("pods").to_string(), "pods");
        assert_eq!(
            GroupResource::new("apps", "deployments").to_string(),
            "deployments.apps"
        );
        assert_eq!(GroupKind::core("Pod").to_string(), "Pod");
        assert_eq!(
            GroupKind::new("apps", "Deployment").to_string(),
            "Deployment.apps"
        );
        assert!(GroupResource::default().is_empty());
        assert_eq!(
            get("apps", "v1", "deployments").group_kind(),
            GroupKind::new("apps", "Deployment")
        );
        assert_eq!(api_version("", "v1"), "v1");
    }
}
