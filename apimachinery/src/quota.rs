//! ResourceQuota accounting shared by the apiserver's `ResourceQuota` admission plugin
//! (which charges creates) and the controller manager's quota controller (which
//! recomputes `status.used`), so both agree on what an object uses and which quotas
//! it counts against: upstream's quota evaluators (`pkg/quota/v1/evaluator/core`)
//! and their generic helpers (`apiserver/pkg/quota/v1/generic`).
//!
//! Objects are handled as JSON values, as the apiserver's registry holds them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::quantity::{Format, Quantity};

/// Quota resource names and their amounts (upstream's `ResourceList`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// The resources whose quota names predate `count/<resource>` and still work
/// (upstream's legacy object-count aliases and the core evaluators' names).
const LEGACY_COUNTS: &[&str] = &[
    "configmaps",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "services",
];

/// What the pod evaluator tracks besides prefixed and extended resources.
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// The names a pod must state for every container when a quota limits them
/// (upstream's backward-compatible `validationSet`).
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SERVICE_RESOURCES: &[&str] = &[
    "services",
    "count/services",
    "services.loadbalancers",
    "services.nodeports",
];

const CLAIM_RESOURCES: &[&str] = &[
    "persistentvolumeclaims",
    "count/persistentvolumeclaims",
    "requests.storage",
];

/// The suffix of per-storage-class quota names (`gold.storageclass.storage.k8s.io/...`).
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The resources quota never charges nor counts (upstream's `DefaultIgnoredResources`):
/// virtual resources that are not stored, and events, which were never quota-ed.
const IGNORED: &[(&str, &str)] = &[
    ("", "bindings"),
    ("", "componentstatuses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("", "events"),
    ("events.k8s.io", "events"),
];

/// Whether quota ignores `group`/`resource` altogether: nothing is charged when one is
/// written, and no quota name measures it.
pub fn is_ignored(group: &str, resource: &str) -> bool {
    IGNORED.contains(&(group, resource))
}

/// How objects of one resource are measured (upstream's evaluator kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evaluator {
    /// Pods: object counts and compute resources, with scopes.
    Pods,
    /// Services: counts, load balancers and node ports.
    Services,
    /// PersistentVolumeClaims: counts and storage, per storage class too.
    Claims,
    /// Any other resource: `count/<resource>[.<group>]` (and a legacy alias).
    ObjectCount,
}

/// The evaluator of `group`/`resource`.
pub fn evaluator(group: &str, resource: &str) -> Evaluator {
    match (group, resource) {
        ("", "pods") => Evaluator::Pods,
        ("", "services") => Evaluator::Services,
        ("", "persistentvolumeclaims") => Evaluator::Claims,
        _ => Evaluator::ObjectCount,
    }
}

/// `count/<resource>` or `count/<resource>.<group>` (upstream's
/// `ObjectCountQuotaResourceNameFor`).
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// Whether `name` is a native resource name (no domain, or a `kubernetes.io` one).
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// An extended resource a container may request (`example.com/gpu`).
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// A quota name for an extended resource (`requests.example.com/gpu`).
fn is_extended_for_quota(name: &str) -> bool {
    !is_native(name) && name.starts_with("requests.")
}

/// Which of `names` objects of `group`/`resource` are charged for (upstream's
/// `MatchingResources`); none for an ignored resource, which has no evaluator.
pub fn matching_resources<'a>(
    group: &str,
    resource: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    if is_ignored(group, resource) {
        return Vec::new();
    }
    let count = object_count_name(group, resource);
    names
        .into_iter()
        .filter(|name| match evaluator(group, resource) {
            Evaluator::Pods => {
                POD_RESOURCES.contains(name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || is_extended_for_quota(name)
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(name),
            Evaluator::Claims => {
                CLAIM_RESOURCES.contains(name)
                    || name.split_once(STORAGE_CLASS_SUFFIX).is_some_and(|(_, r)| {
                        matches!(r, "requests.storage" | "persistentvolumeclaims")
                    })
            }
            Evaluator::ObjectCount => {
                *name == count
                    || (group.is_empty() && *name == resource && LEGACY_COUNTS.contains(name))
            }
        })
        .map(str::to_owned)
        .collect()
}

/// The resource (`group`, `resource`) whose objects a quota name measures, the
/// inverse of [`matching_resources`]; `None` for names no evaluator tracks (those of
/// ignored resources too).
pub fn resource_for(name: &str) -> Option<(String, String)> {
    if let Some(counted) = name.strip_prefix("count/") {
        let (resource, group) = counted.split_once('.').unwrap_or((counted, ""));
        return (!resource.is_empty() && !is_ignored(group, resource))
            .then(|| (group.to_owned(), resource.to_owned()));
    }
    if LEGACY_COUNTS.contains(&name) {
        return Some((String::new(), name.to_owned()));
    }
    for resource in ["pods", "services", "persistentvolumeclaims"] {
        if !matching_resources("", resource, [name]).is_empty() {
            return Some((String::new(), resource.to_owned()));
        }
    }
    None
}

/// A quantity written as a string or a number.
pub fn quantity(value: &Value) -> Option<Quantity> {
    match value {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => n.as_i64().map(|v| Quantity::new(v, Format::DecimalSI)),
        _ => None,
    }
}

/// A JSON map of quantities (`spec.hard`, `status.used`); unparsable entries are left
/// out.
pub fn resource_list(value: &Value) -> ResourceList {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), quantity(v)?)))
        .collect()
}

/// `a + b`, name by name (upstream's `quota.Add`).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut sum = a.clone();
    for (name, amount) in b {
        *sum.entry(name.clone()).or_default() += amount;
    }
    sum
}

/// `a - b`, name by name over the names of either, never below zero (upstream's
/// `SubtractWithNonNegativeResult`): what an update adds to what the old object used.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut result = ResourceList::new();
    for (name, amount) in a {
        let mut left = amount.clone();
        if let Some(other) = b.get(name) {
            left -= other;
        }
        let zero = Quantity::default();
        result.insert(name.clone(), if left > zero { left } else { zero });
    }
    for name in b.keys() {
        result.entry(name.clone()).or_default();
    }
    result
}

/// The entries of `list` named in `names` (upstream's `quota.Mask`).
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a str>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| Some((n.to_owned(), list.get(n)?.clone())))
        .collect()
}

/// One scope requirement of a quota (upstream's `ScopedResourceSelectorRequirement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    /// `Terminating`, `NotTerminating`, `BestEffort`, `NotBestEffort`,
    /// `PriorityClass`, `CrossNamespacePodAffinity`.
    pub scope_name: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// The values of `In`/`NotIn`.
    pub values: Vec<String>,
}

/// The quota's scopes: each of `spec.scopes` as an `Exists` requirement, then
/// `spec.scopeSelector.matchExpressions` (upstream's `getScopeSelectorsFromQuota`).
pub fn scope_selectors(quota: &Value) -> Vec<ScopeRequirement> {
    let mut selectors: Vec<ScopeRequirement> = quota["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| ScopeRequirement {
            scope_name: scope.to_owned(),
            operator: "Exists".to_owned(),
            values: Vec::new(),
        })
        .collect();
    for expression in quota["spec"]["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        selectors.push(ScopeRequirement {
            scope_name: expression["scopeName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            operator: expression["operator"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            values: expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        });
    }
    selectors
}

/// Whether an object of `group`/`resource` is in every scope of `selectors`; only pods
/// have scopes, so any other object is outside a scoped quota (upstream's
/// `MatchesNoScopeFunc`).
pub fn matches_scopes(
    group: &str,
    resource: &str,
    selectors: &[ScopeRequirement],
    object: &Value,
) -> bool {
    if selectors.is_empty() {
        return true;
    }
    match evaluator(group, resource) {
        Evaluator::Pods => selectors.iter().all(|s| pod_matches_scope(s, object)),
        _ => false,
    }
}

/// Whether `quota` limits an object of `group`/`resource`: one of its `hard` names is
/// charged for such objects and the object is in the quota's scopes (upstream's
/// `generic.Matches`).
pub fn quota_matches(
    group: &str,
    resource: &str,
    hard: &ResourceList,
    quota: &Value,
    object: &Value,
) -> bool {
    !matching_resources(group, resource, hard.keys().map(String::as_str)).is_empty()
        && matches_scopes(group, resource, &scope_selectors(quota), object)
}

/// Whether a pod is in one scope (upstream's `podMatchesScopeFunc`).
pub fn pod_matches_scope(selector: &ScopeRequirement, pod: &Value) -> bool {
    match selector.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod["spec"]["priorityClassName"]
                .as_str()
                .unwrap_or_default();
            // as a label selector over {PriorityClass: class}, the key absent when empty
            match selector.operator.as_str() {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && selector.values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !selector.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// A pod with a non-negative `activeDeadlineSeconds`.
pub fn is_terminating(pod: &Value) -> bool {
    pod["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|d| d >= 0)
}

/// Whether a pod's QoS class is BestEffort: `status.qosClass` when set, else no
/// container or init container requests or limits CPU or memory (upstream's
/// `GetPodQOS`).
pub fn is_best_effort(pod: &Value) -> bool {
    if let Some(class) = pod["status"]["qosClass"].as_str().filter(|c| !c.is_empty()) {
        return class == "BestEffort";
    }
    let containers = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        );
    for container in containers {
        for kind in ["requests", "limits"] {
            for name in ["cpu", "memory"] {
                if quantity(&container["resources"][kind][name]).is_some_and(|q| !q.is_zero()) {
                    return false;
                }
            }
        }
    }
    true
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |term: &Value| {
        term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
            || !term["namespaceSelector"].is_null()
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let affinity = &pod["spec"]["affinity"][*kind];
        affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .any(cross)
            || affinity["preferredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|w| cross(&w["podAffinityTerm"]))
    })
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp as the API writes them
/// (`2024-05-01T10:00:00Z`, fractions and offsets allowed).
pub fn parse_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.get(..1), Some("+" | "-"))
            && rest.get(3..4) == Some(":") =>
        {
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            let seconds = hours * 3600 + minutes * 60;
            if rest.starts_with('-') {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    // days from the civil date (Howard Hinnant's algorithm)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Whether a pod still uses its compute quota at `now` (Unix seconds): not
/// Succeeded or Failed, and not being deleted past its grace period (upstream's
/// `QuotaV1Pod`).
pub fn pod_is_charged(pod: &Value, now: i64) -> bool {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted_at = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(parse_time);
    let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if let (Some(at), Some(grace)) = (deleted_at, grace)
        && now > at.saturating_add(grace)
    {
        return false;
    }
    true
}

/// The quantities a container's `resources.<kind>` names.
fn container_list(container: &Value, kind: &str) -> ResourceList {
    resource_list(&container["resources"][kind])
}

/// `list[name] = max(list[name], other[name])` for each name of `other`.
fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (name, amount) in other {
        match list.get(name) {
            Some(current) if current >= amount => {}
            _ => {
                list.insert(name.clone(), amount.clone());
            }
        }
    }
}

/// A pod's effective requests or limits: its containers and sidecars summed, or any
/// one init container with the sidecars started before it if larger (upstream's
/// `PodRequests`/`PodLimits`); the overhead is added to requests, and to limits that
/// are set.
fn pod_resources(pod: &Value, kind: &str) -> ResourceList {
    let mut total = ResourceList::new();
    for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
        total = add(&total, &container_list(container, kind));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for container in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let own = container_list(container, kind);
        if container["restartPolicy"].as_str() == Some("Always") {
            // a sidecar runs beside everything started after it
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            max_into(&mut init, &sidecars);
        } else {
            max_into(&mut init, &add(&own, &sidecars));
        }
    }
    max_into(&mut total, &init);
    let overhead = resource_list(&pod["spec"]["overhead"]);
    for (name, amount) in overhead {
        if kind == "requests" {
            *total.entry(name).or_default() += &amount;
        } else if let Some(limit) = total.get_mut(&name) {
            *limit += &amount;
        }
    }
    total
}

/// The pod's requests and limits under their quota names (upstream's
/// `podComputeUsageHelper`), `pods` included.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("pods".to_owned(), Quantity::new(1, Format::DecimalSI));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(name) {
            usage.insert(name.to_owned(), request.clone());
            usage.insert(format!("requests.{name}"), request.clone());
        }
        if let Some(limit) = limits.get(name) {
            usage.insert(format!("limits.{name}"), limit.clone());
        }
    }
    for (name, request) in requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), request.clone());
            usage.insert(format!("requests.{name}"), request.clone());
        }
        if is_extended(name) {
            usage.insert(format!("requests.{name}"), request.clone());
        }
    }
    usage
}

/// What one object of `group`/`resource` uses, by quota name, at `now` (Unix
/// seconds; finished pods keep only their `count/pods`), as upstream's evaluators'
/// `Usage`; nothing for an ignored resource.
pub fn usage(group: &str, resource: &str, object: &Value, now: i64) -> ResourceList {
    let one = || Quantity::new(1, Format::DecimalSI);
    let mut usage = ResourceList::new();
    if is_ignored(group, resource) {
        return usage;
    }
    usage.insert(object_count_name(group, resource), one());
    match evaluator(group, resource) {
        Evaluator::Pods => {
            if pod_is_charged(object, now) {
                let requests = pod_resources(object, "requests");
                let limits = pod_resources(object, "limits");
                usage.extend(compute_usage(&requests, &limits));
            }
        }
        Evaluator::Services => {
            usage.insert("services".to_owned(), one());
            let spec = &object["spec"];
            let ports = spec["ports"].as_array().map_or(&[][..], Vec::as_slice);
            let all_ports = Quantity::new(ports.len() as i64, Format::DecimalSI);
            match spec["type"].as_str() {
                Some("NodePort") => {
                    usage.insert("services.nodeports".to_owned(), all_ports);
                }
                Some("LoadBalancer") => {
                    usage.insert("services.loadbalancers".to_owned(), one());
                    // without allocated node ports only the ports naming one count
                    let node_ports = if spec["allocateLoadBalancerNodePorts"] == Value::Bool(false)
                    {
                        let named = ports
                            .iter()
                            .filter(|p| p["nodePort"].as_i64().unwrap_or(0) != 0);
                        Quantity::new(named.count() as i64, Format::DecimalSI)
                    } else {
                        all_ports
                    };
                    usage.insert("services.nodeports".to_owned(), node_ports);
                }
                _ => {}
            }
        }
        Evaluator::Claims => {
            usage.insert("persistentvolumeclaims".to_owned(), one());
            // the beta annotation, even empty, wins over the field (upstream's
            // `GetPersistentVolumeClaimClass`)
            let class =
                object["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
                    .as_str()
                    .or_else(|| object["spec"]["storageClassName"].as_str())
                    .unwrap_or_default();
            if !class.is_empty() {
                usage.insert(
                    format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
                    one(),
                );
            }
            if let Some(storage) = claim_storage(object) {
                if !class.is_empty() {
                    usage.insert(
                        format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                        storage.clone(),
                    );
                }
                usage.insert("requests.storage".to_owned(), storage);
            }
        }
        Evaluator::ObjectCount => {
            if group.is_empty() && LEGACY_COUNTS.contains(&resource) {
                usage.insert(resource.to_owned(), one());
            }
        }
    }
    usage
}

/// A claim's storage: its request rounded up to whole bytes, or what was allocated
/// if more (upstream's `getStorageUsage` with RecoverVolumeExpansionFailure).
fn claim_storage(claim: &Value) -> Option<Quantity> {
    let round_up = |q: Quantity| {
        let bytes = q.value();
        if q.cmp_i64(bytes).is_eq() {
            q
        } else {
            Quantity::new(bytes, q.format())
        }
    };
    let requested = quantity(&claim["spec"]["resources"]["requests"]["storage"]).map(round_up);
    let allocated = quantity(&claim["status"]["allocatedResources"]["storage"]);
    match (requested, allocated) {
        (Some(r), Some(a)) if a > r => Some(a),
        (None, Some(a)) => Some(a),
        (r, _) => r,
    }
}

/// Why a pod may not be created under a quota limiting `required`: containers that
/// do not state CPU or memory the quota limits (upstream's pod `Constraints`).
pub fn pod_constraints<'a>(
    pod: &Value,
    required: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let required: BTreeSet<&str> = required
        .into_iter()
        .filter(|r| MUST_SPECIFY.contains(r))
        .collect();
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let containers = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        );
    for container in containers {
        let stated = compute_usage(
            &container_list(container, "requests"),
            &container_list(container, "limits"),
        );
        for name in &required {
            if !stated.contains_key(*name) {
                missing
                    .entry(name)
                    .or_default()
                    .insert(container["name"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, containers)| {
            format!(
                "{name} for: {}",
                containers.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// The usage of `names` (those objects of `group`/`resource` are charged for) over
/// `objects`, counting only objects in the quota's `scopes`; every tracked name starts
/// at zero (upstream's `CalculateUsageStats`).
pub fn usage_stats<'a>(
    group: &str,
    resource: &str,
    names: &[String],
    scopes: &[ScopeRequirement],
    objects: impl IntoIterator<Item = &'a Value>,
    now: i64,
) -> ResourceList {
    let mut used: ResourceList = names
        .iter()
        .map(|n| (n.clone(), Quantity::default()))
        .collect();
    for object in objects {
        if matches_scopes(group, resource, scopes, object) {
            used = add(&used, &usage(group, resource, object, now));
        }
    }
    mask(&used, names.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &ResourceList) -> Vec<&str> {
        list.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_pod_uses_its_containers_requests_and_limits() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "2", "hugepages-2Mi": "4Mi"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}]
        }});
        let u = usage("", "pods", &pod, 0);
        assert_eq!(u["pods"].to_string(), "1");
        assert_eq!(u["count/pods"].to_string(), "1");
        assert_eq!(u["requests.cpu"].to_string(), "500m");
        assert_eq!(u["cpu"].to_string(), "500m");
        assert_eq!(u["requests.memory"].to_string(), "64Mi");
        assert_eq!(u["memory"].to_string(), "64Mi");
        assert_eq!(u["limits.cpu"].to_string(), "1");
        assert_eq!(u["requests.example.com/gpu"].to_string(), "2");
        assert_eq!(u["hugepages-2Mi"].to_string(), "4Mi");
        assert_eq!(u["requests.hugepages-2Mi"].to_string(), "4Mi");
        assert!(!u.contains_key("limits.memory"));
    }

    #[test]
    fn sidecars_add_to_the_containers_and_overhead_to_requests() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "100m"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }});
        let u = usage("", "pods", &pod, 0);
        // max(100m + 50m, 100m + 50m) + 10m
        assert_eq!(u["requests.cpu"].to_string(), "160m");
        assert_eq!(u["requests.memory"].to_string(), "1Mi");
        assert_eq!(u["limits.cpu"].to_string(), "1010m");
        assert!(!u.contains_key("limits.memory"));
    }

    #[test]
    fn finished_or_long_deleted_pods_only_count_as_objects() {
        let base = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        let mut done = base.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(names(&usage("", "pods", &done, 0)), ["count/pods"]);
        let mut failed = base.clone();
        failed["status"]["phase"] = json!("Failed");
        assert_eq!(names(&usage("", "pods", &failed, 0)), ["count/pods"]);
        let mut deleting = base.clone();
        deleting["metadata"] =
            json!({"deletionTimestamp": "2024-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30});
        let at = parse_time("2024-01-01T00:00:00Z").unwrap();
        assert!(usage("", "pods", &deleting, at + 30).contains_key("requests.cpu"));
        assert_eq!(
            names(&usage("", "pods", &deleting, at + 31)),
            ["count/pods"]
        );
    }

    #[test]
    fn services_count_load_balancers_and_node_ports() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &lb, 0);
        assert_eq!(u["services"].to_string(), "1");
        assert_eq!(u["count/services"].to_string(), "1");
        assert_eq!(u["services.loadbalancers"].to_string(), "1");
        assert_eq!(u["services.nodeports"].to_string(), "2");
        let no_alloc = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 443}]}});
        assert_eq!(
            usage("", "services", &no_alloc, 0)["services.nodeports"].to_string(),
            "1"
        );
        let np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let u = usage("", "services", &np, 0);
        assert_eq!(u["services.nodeports"].to_string(), "1");
        assert!(!u.contains_key("services.loadbalancers"));
        let cluster_ip = usage(
            "",
            "services",
            &json!({"spec": {"ports": [{"port": 80}]}}),
            0,
        );
        assert_eq!(names(&cluster_ip), ["count/services", "services"]);
    }

    #[test]
    fn claims_use_storage_overall_and_per_class() {
        let claim = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"allocatedResources": {"storage": "2Gi"}}});
        let u = usage("", "persistentvolumeclaims", &claim, 0);
        assert_eq!(u["persistentvolumeclaims"].to_string(), "1");
        assert_eq!(u["requests.storage"].to_string(), "2Gi");
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "2Gi"
        );
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"].to_string(),
            "1"
        );
        // a fractional byte request counts as the next whole byte
        let odd = json!({"spec": {"resources": {"requests": {"storage": "1500m"}}}});
        assert_eq!(
            usage("", "persistentvolumeclaims", &odd, 0)["requests.storage"].to_string(),
            "2"
        );
    }

    #[test]
    fn other_objects_count_under_count_and_legacy_names() {
        assert_eq!(
            names(&usage("", "configmaps", &json!({}), 0)),
            ["configmaps", "count/configmaps"]
        );
        assert_eq!(
            names(&usage("apps", "deployments", &json!({}), 0)),
            ["count/deployments.apps"]
        );
    }

    #[test]
    fn events_and_virtual_resources_are_ignored() {
        for (group, resource) in [
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "bindings"),
            ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ] {
            assert!(is_ignored(group, resource));
            assert!(usage(group, resource, &json!({}), 0).is_empty());
            let count = object_count_name(group, resource);
            assert!(matching_resources(group, resource, [count.as_str()]).is_empty());
            assert_eq!(resource_for(&count), None);
        }
        assert!(!is_ignored("", "configmaps"));
    }

    #[test]
    fn the_storage_class_annotation_wins_over_the_field() {
        let claim = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "silver"}},
            "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &claim, 0);
        assert!(u.contains_key("silver.storageclass.storage.k8s.io/requests.storage"));
        assert!(!u.contains_key("gold.storageclass.storage.k8s.io/requests.storage"));
        // an empty annotation means no class
        let mut empty = claim.clone();
        empty["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"] = json!("");
        let u = usage("", "persistentvolumeclaims", &empty, 0);
        assert_eq!(
            names(&u),
            [
                "count/persistentvolumeclaims",
                "persistentvolumeclaims",
                "requests.storage"
            ]
        );
    }

    #[test]
    fn subtraction_never_goes_below_zero() {
        let list = |pairs: &[(&str, &str)]| -> ResourceList {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity::parse(v).unwrap()))
                .collect()
        };
        let delta = subtract_non_negative(
            &list(&[("services.nodeports", "3"), ("services", "1")]),
            &list(&[
                ("services.nodeports", "1"),
                ("services", "1"),
                ("services.loadbalancers", "1"),
            ]),
        );
        assert_eq!(delta["services.nodeports"].to_string(), "2");
        assert!(delta["services"].is_zero());
        assert!(delta["services.loadbalancers"].is_zero());
    }

    #[test]
    fn quota_names_map_back_to_their_resources() {
        let r = |n: &str| resource_for(n).map(|(g, r)| format!("{g}/{r}"));
        assert_eq!(
            r("count/deployments.apps").as_deref(),
            Some("apps/deployments")
        );
        assert_eq!(
            r("count/foo.example.com").as_deref(),
            Some("example.com/foo")
        );
        assert_eq!(r("secrets").as_deref(), Some("/secrets"));
        assert_eq!(r("requests.cpu").as_deref(), Some("/pods"));
        assert_eq!(r("requests.example.com/gpu").as_deref(), Some("/pods"));
        assert_eq!(r("services.nodeports").as_deref(), Some("/services"));
        assert_eq!(
            r("gold.storageclass.storage.k8s.io/requests.storage").as_deref(),
            Some("/persistentvolumeclaims")
        );
        assert_eq!(
            r("requests.storage").as_deref(),
            Some("/persistentvolumeclaims")
        );
        assert_eq!(r("nonsense"), None);
        assert_eq!(
            matching_resources("", "configmaps", ["configmaps", "pods", "count/configmaps"]),
            ["configmaps", "count/configmaps"]
        );
        assert!(matching_resources("apps", "deployments", ["deployments"]).is_empty());
    }

    #[test]
    fn pod_scopes_follow_deadline_qos_and_priority() {
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"activeDeadlineSeconds": 30, "priorityClassName": "high",
            "containers": [{"name": "a", "resources": {"requests": {"memory": "1Mi"}}}]}});
        let scope = |name: &str, op: &str, values: &[&str]| ScopeRequirement {
            scope_name: name.into(),
            operator: op.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        assert!(pod_matches_scope(
            &scope("BestEffort", "Exists", &[]),
            &best_effort
        ));
        assert!(!pod_matches_scope(
            &scope("BestEffort", "Exists", &[]),
            &burstable
        ));
        assert!(pod_matches_scope(
            &scope("NotBestEffort", "Exists", &[]),
            &burstable
        ));
        assert!(pod_matches_scope(
            &scope("Terminating", "Exists", &[]),
            &burstable
        ));
        assert!(pod_matches_scope(
            &scope("NotTerminating", "Exists", &[]),
            &best_effort
        ));
        assert!(pod_matches_scope(
            &scope("PriorityClass", "In", &["high"]),
            &burstable
        ));
        assert!(!pod_matches_scope(
            &scope("PriorityClass", "In", &["high"]),
            &best_effort
        ));
        assert!(pod_matches_scope(
            &scope("PriorityClass", "NotIn", &["high"]),
            &best_effort
        ));
        assert!(pod_matches_scope(
            &scope("PriorityClass", "DoesNotExist", &[]),
            &best_effort
        ));
        assert!(pod_matches_scope(
            &scope("PriorityClass", "Exists", &[]),
            &burstable
        ));
        // the status's class wins over the spec
        let mut said = best_effort.clone();
        said["status"]["qosClass"] = json!("Burstable");
        assert!(!is_best_effort(&said));
    }

    #[test]
    fn scoped_quotas_match_only_pods_in_scope() {
        let quota = json!({"spec": {"hard": {"pods": "5", "count/configmaps": "5"}, "scopes": ["BestEffort"],
            "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]}}});
        let hard = resource_list(&quota["spec"]["hard"]);
        assert_eq!(scope_selectors(&quota).len(), 2);
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(quota_matches("", "pods", &hard, &quota, &pod));
        let mut high = pod.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(!quota_matches("", "pods", &hard, &quota, &high));
        // only pods have scopes
        assert!(!quota_matches("", "configmaps", &hard, &quota, &json!({})));
        let unscoped = json!({"spec": {"hard": {"pods": "5"}}});
        assert!(!quota_matches(
            "",
            "configmaps",
            &resource_list(&unscoped["spec"]["hard"]),
            &unscoped,
            &json!({})
        ));
    }

    #[test]
    fn usage_stats_sum_objects_in_scope_from_zero() {
        let pods = [
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}}),
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"}}),
        ];
        let names: Vec<String> = ["pods", "count/pods", "requests.cpu"]
            .map(String::from)
            .to_vec();
        let all = usage_stats("", "pods", &names, &[], &pods, 0);
        assert_eq!(all["pods"].to_string(), "2");
        assert_eq!(all["count/pods"].to_string(), "3");
        assert_eq!(all["requests.cpu"].to_string(), "1");
        let best_effort = [ScopeRequirement {
            scope_name: "BestEffort".into(),
            operator: "Exists".into(),
            values: vec![],
        }];
        let some = usage_stats("", "pods", &names, &best_effort, &pods, 0);
        assert_eq!(some["pods"].to_string(), "1");
        assert_eq!(some["requests.cpu"].to_string(), "0");
        let none = usage_stats(
            "",
            "configmaps",
            &["configmaps".to_owned()],
            &best_effort,
            &[json!({})],
            0,
        );
        assert_eq!(none["configmaps"].to_string(), "0");
    }

    #[test]
    fn pods_must_state_limited_cpu_and_memory() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "b", "resources": {"requests": {"cpu": "1"}}},
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}
            ],
            "initContainers": [{"name": "i"}]
        }});
        assert_eq!(
            pod_constraints(
                &pod,
                [
                    "requests.memory",
                    "requests.cpu",
                    "requests.storage",
                    "pods"
                ]
            ),
            Err("must specify requests.cpu for: i; requests.memory for: b,i".to_owned())
        );
        assert_eq!(pod_constraints(&pod, ["pods", "count/pods"]), Ok(()));
    }

    #[test]
    fn times_parse_as_the_api_writes_them() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2024-03-01T12:30:05Z"), Some(1_709_296_205));
        assert_eq!(
            parse_time("2024-03-01T12:30:05.123456Z"),
            Some(1_709_296_205)
        );
        assert_eq!(parse_time("2024-03-01T14:30:05+02:00"), Some(1_709_296_205));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
    }
}
