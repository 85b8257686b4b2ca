//! The DaemonSet controller's pure helpers (upstream's `pkg/controller/daemon/util` and
//! the predicates of `daemon_controller.go`): which nodes should run a daemon pod
//! (node name, node selector and required node affinity, NoSchedule/NoExecute taints
//! against the pod's tolerations), the tolerations every daemon pod gets, the node
//! affinity binding a pod to its node, the revision hash and labels, the
//! maxSurge/maxUnavailable arithmetic, the order of pods on a node and the backoff
//! of failed pods.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use apimachinery::labels::{Labels, Operator, Requirement};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::taint_eviction::tolerates;

pub use crate::controller_utils::compute_hash;

/// The label carrying the hash of the ControllerRevision a pod was made from
/// (upstream's `DefaultDaemonSetUniqueLabelKey`, `controller-revision-hash`).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying the template generation, for pods of DaemonSets that still
/// carry the deprecated annotation (upstream's `DaemonSetTemplateGenerationKey`).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation the apps/v1 DaemonSet keeps its template generation in (upstream's
/// `DeprecatedTemplateGeneration`).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The field a `matchFields` requirement may select nodes on.
pub const OBJECT_NAME_FIELD: &str = "metadata.name";

const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// The strategy replacing pods as soon as the template changes.
pub const ROLLING_UPDATE: &str = "RollingUpdate";

// ---- tolerations ----

/// Upstream's `Toleration.MatchToleration`: the same key, operator, value and effect.
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    a.key == b.key && a.operator == b.operator && a.value == b.value && a.effect == b.effect
}

/// Upstream's `AddOrUpdateTolerationInPodSpec`: a toleration matching `toleration`
/// is replaced by it (dropping its tolerationSeconds, say), otherwise it is appended.
fn add_or_update_toleration(spec: &mut PodSpec, toleration: Toleration) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    match tolerations
        .iter_mut()
        .find(|t| same_toleration(t, &toleration))
    {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some(effect.to_owned()),
        ..Toleration::default()
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods outlive a node going not
/// ready or unreachable (NoExecute, forever) and tolerate the taints
/// TaintNodesByCondition puts on nodes under pressure or cordoned (NoSchedule), and
/// host-network pods a node without its network. The `not-ready` NoSchedule taint of
/// a node that has not yet become ready is not tolerated.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(spec, exists(TAINT_NOT_READY, "NoExecute"));
    add_or_update_toleration(spec, exists(TAINT_UNREACHABLE, "NoExecute"));
    add_or_update_toleration(spec, exists(TAINT_DISK_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(TAINT_MEMORY_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(TAINT_PID_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(TAINT_UNSCHEDULABLE, "NoSchedule"));
    if spec.host_network == Some(true) {
        add_or_update_toleration(spec, exists(TAINT_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
}

/// The first of `taints` that `filter` picks and no toleration tolerates (upstream's
/// `FindMatchingUntoleratedTaint`).
fn untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

// ---- node selection ----

fn node_labels(node: &Node) -> Labels {
    node.metadata.labels.clone().unwrap_or_default()
}

/// One `matchExpressions` requirement as a label requirement (upstream's
/// `NodeSelectorRequirementsAsSelector`); `None` when it does not parse.
fn label_requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let operator = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    Requirement::new(
        r.key.clone(),
        operator,
        r.values.clone().unwrap_or_default(),
    )
    .ok()
}

/// Whether `node` matches one node selector term: its label and field requirements
/// ANDed. An empty term, or one that does not parse, matches nothing (upstream's
/// `nodeaffinity` package, parse errors ignored as the DaemonSet controller does).
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let labels_match = expressions
        .iter()
        .all(|r| label_requirement(r).is_some_and(|req| req.matches(&labels)));
    let fields_match = fields.iter().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        if r.key != OBJECT_NAME_FIELD || values.len() != 1 {
            return false;
        }
        match r.operator.as_str() {
            "In" => values[0] == name,
            "NotIn" => values[0] != name,
            _ => false,
        }
    });
    labels_match && fields_match
}

/// Whether `node` meets the pod spec's `nodeSelector` and required node affinity
/// (upstream's `GetRequiredNodeAffinity(pod).Match(node)`).
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node_labels(node);
    let selector_fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selector_fits {
        return false;
    }
    match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
        Some(required) => required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

/// The pod `ds` would run on `node` (upstream's `NewPod`): its template with the
/// daemon tolerations, on that node.
pub fn new_pod_spec(ds: &DaemonSet, node_name: &str) -> PodSpec {
    let mut spec = template(ds).spec.unwrap_or_default();
    spec.node_name = Some(node_name.to_owned());
    add_daemon_tolerations(&mut spec);
    spec
}

/// Upstream's `NodeShouldRunDaemonPod`: `(should_run, should_continue_running)`. A
/// node the pod's node name, selector or affinity rules out runs nothing; one with a
/// NoSchedule or NoExecute taint the pod does not tolerate gets no new pod, and keeps
/// a running one unless the untolerated taint is NoExecute.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let template_node = template(ds)
        .spec
        .and_then(|s| s.node_name)
        .unwrap_or_default();
    if !template_node.is_empty() && template_node != name {
        return (false, false);
    }
    let spec = new_pod_spec(ds, name);
    if !fits_node_affinity(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let fits_taints = untolerated_taint(taints, tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    })
    .is_none();
    if fits_taints {
        return (true, true);
    }
    let evicting = untolerated_taint(taints, tolerations, |t| t.effect == "NoExecute");
    (false, evicting.is_none())
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity
/// becomes the single term `metadata.name In [node]`, so the scheduler binds the pod
/// to its node; preferred terms and pod (anti-)affinity are kept.
pub fn bind_to_node(affinity: Option<Affinity>, node_name: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: OBJECT_NAME_FIELD.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![node_name.to_owned()]),
        }]),
        match_expressions: None,
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// The node a daemon pod is for (upstream's `GetTargetNodeName`): its node name once
/// bound, before that the `metadata.name In [node]` term of its required affinity.
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for r in term.match_fields.iter().flatten() {
            if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                // a name that is not unique names no node
                return match r.values.as_deref() {
                    Some([one]) => Some(one.clone()),
                    _ => None,
                };
            }
        }
    }
    None
}

// ---- templates, hashes, revisions ----

/// The DaemonSet's pod template.
pub fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Upstream's `GetTemplateGeneration`: the deprecated annotation, if present and a
/// number.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// The template daemon pods are made from (upstream's `CreatePodTemplate`): the
/// DaemonSet's, with the daemon tolerations, the template-generation label when the
/// DaemonSet has one and the revision hash label.
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = template(ds);
    add_daemon_tolerations(t.spec.get_or_insert_with(PodSpec::default));
    let labels = t
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    if let Some(generation) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.to_owned(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(REVISION_HASH_LABEL.to_owned(), hash.to_owned());
    }
    t
}

/// Whether `pod` was made from the current revision (upstream's `IsPodUpdated`). Only
/// the hash decides: upstream also compares the template-generation label, but with
/// the generation formatted as a pointer, so that comparison never matches.
pub fn is_pod_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty()
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .is_some_and(|h| h == hash)
}

/// What a ControllerRevision of the DaemonSet stores (upstream's `getPatch`): a
/// strategic merge patch replacing `spec.template` with the current one.
pub fn revision_patch(ds: &DaemonSet) -> Value {
    let mut template = serde_json::to_value(template(ds)).unwrap_or(Value::Null);
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".to_owned(), Value::String("replace".to_owned()));
    }
    serde_json::json!({"spec": {"template": template}})
}

/// Drops nulls, as Go's encoder writes some empty fields as `null` and ours omits them.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Whether a revision's data is the DaemonSet's current template (upstream's `Match`,
/// compared as JSON rather than bytes).
pub fn revision_matches(ds: &DaemonSet, data: Option<&Value>) -> bool {
    data.is_some_and(|d| without_nulls(d) == without_nulls(&revision_patch(ds)))
}

// ---- update strategy arithmetic ----

/// Upstream's `GetScaledValueFromIntOrPercent`: a number, or a percentage of `total`
/// rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%') else {
                return Err(format!("invalid type: string is not a percentage: {s:?}"));
            };
            let percent: i64 = percent
                .parse()
                .map_err(|e| format!("invalid value {s:?}: {e}"))?;
            let product = percent.saturating_mul(i64::from(total));
            let scaled = if round_up {
                product.saturating_add(99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(scaled).unwrap_or(if scaled < 0 { i32::MIN } else { i32::MAX }))
        }
    }
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or(ROLLING_UPDATE) != ROLLING_UPDATE {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// Upstream's `SurgeCount`: how many extra pods a rolling update may run, out of
/// `number_to_schedule`; 0 without a maxSurge.
pub fn surge_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    match rolling(ds).and_then(|r| r.max_surge.as_ref()) {
        Some(surge) => scaled_value(surge, number_to_schedule, true),
        None => Ok(0),
    }
}

/// Upstream's `UnavailableCount`: how many pods a rolling update may take down.
pub fn unavailable_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    let Some(r) = rolling(ds) else {
        return Ok(0);
    };
    match &r.max_unavailable {
        Some(value) => scaled_value(value, number_to_schedule, true),
        None => Err("nil value for IntOrString".to_owned()),
    }
}

/// Upstream's `AllowsSurge`.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n > 0)
}

// ---- pods on a node ----

/// Upstream's `podByCreationTimestampAndPhase`: bound pods first, then older, then by
/// name.
pub fn pod_order(a: &Pod, b: &Pod) -> Ordering {
    let bound = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    bound(b)
        .cmp(&bound(a))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Whether a node update cannot change where daemon pods run (upstream's
/// `shouldIgnoreNodeUpdate`): the set of true conditions is the same and nothing but
/// the conditions and the resourceVersion changed (heartbeats).
pub fn node_update_ignorable(old: &Node, new: &Node) -> bool {
    let true_conditions = |n: &Node| -> HashSet<String> {
        n.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .filter(|c| c.status == "True")
            .map(|c| c.type_.clone())
            .collect()
    };
    if true_conditions(old) != true_conditions(new) {
        return false;
    }
    let strip = |n: &Node| {
        let mut n = n.clone();
        n.metadata.resource_version = None;
        n.metadata.managed_fields = None;
        if let Some(status) = n.status.as_mut() {
            status.conditions = None;
        }
        n
    };
    strip(old) == strip(new)
}

// ---- backoff of failed pods ----

/// The initial delay before a failed daemon pod on a node is deleted again
/// (kube-controller-manager's `flowcontrol.NewBackOff(1s, 15m)`).
pub const FAILED_POD_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// The longest such delay.
pub const FAILED_POD_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Per-key exponential backoff (client-go's `flowcontrol.Backoff`): each `next`
/// doubles the key's delay up to the maximum, starting over once the key has been
/// quiet for twice the maximum.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, (Duration, Instant)>,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, last: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last) > self.max.saturating_mul(2)
    }

    /// The key's current delay (zero when unknown).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |(d, _)| *d)
    }

    /// Records one more failure of `key` at `now`.
    pub fn next(&mut self, key: &str, now: Instant) {
        let delay = match self.entries.get(key) {
            Some((d, last)) if !self.expired(*last, now) => d.saturating_mul(2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(key.to_owned(), (delay, now));
    }

    /// Whether `key` is still waiting out its delay since its last failure (upstream's
    /// `IsInBackOffSinceUpdate`).
    pub fn in_backoff_since_update(&self, key: &str, now: Instant) -> bool {
        match self.entries.get(key) {
            Some((d, last)) if !self.expired(*last, now) => {
                now.saturating_duration_since(*last) < *d
            }
            _ => false,
        }
    }

    /// Forgets keys quiet for long enough (upstream's `GC`).
    pub fn gc(&mut self, now: Instant) {
        let max = self.max.saturating_mul(2);
        self.entries
            .retain(|_, (_, last)| now.saturating_duration_since(*last) <= max);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn ds(spec: Value) -> DaemonSet {
        let mut spec = spec;
        let base = json!({
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
        });
        if let (Some(s), Some(b)) = (spec.as_object_mut(), base.as_object()) {
            for (k, v) in b {
                s.entry(k.clone()).or_insert(v.clone());
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid"},
            "spec": spec
        }))
        .unwrap()
    }

    fn ds_with_template_spec(pod_spec: Value) -> DaemonSet {
        let mut pod_spec = pod_spec;
        pod_spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        ds(json!({"template": {"metadata": {"labels": {"app": "d"}}, "spec": pod_spec}}))
    }

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    #[test]
    fn daemon_pods_get_upstreams_tolerations() {
        let mut spec: PodSpec = serde_json::from_value(json!({
            "containers": [],
            "tolerations": [
                // the user's finite not-ready toleration becomes the infinite one
                {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "custom", "operator": "Equal", "value": "x", "effect": "NoSchedule"}
            ]
        }))
        .unwrap();
        add_daemon_tolerations(&mut spec);
        let tolerations = spec.tolerations.clone().unwrap();
        let keys: Vec<(&str, &str)> = tolerations
            .iter()
            .map(|t| {
                (
                    t.key.as_deref().unwrap(),
                    t.effect.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (TAINT_NOT_READY, "NoExecute"),
                ("custom", "NoSchedule"),
                (TAINT_UNREACHABLE, "NoExecute"),
                (TAINT_DISK_PRESSURE, "NoSchedule"),
                (TAINT_MEMORY_PRESSURE, "NoSchedule"),
                (TAINT_PID_PRESSURE, "NoSchedule"),
                (TAINT_UNSCHEDULABLE, "NoSchedule"),
            ]
        );
        assert_eq!(tolerations[0].toleration_seconds, None);
        // applying twice changes nothing
        let mut again = spec.clone();
        add_daemon_tolerations(&mut again);
        assert_eq!(again, spec);
        // host-network pods also tolerate a node without its network
        let mut host: PodSpec =
            serde_json::from_value(json!({"containers": [], "hostNetwork": true})).unwrap();
        add_daemon_tolerations(&mut host);
        assert!(
            host.tolerations
                .unwrap()
                .iter()
                .any(|t| t.key.as_deref() == Some(TAINT_NETWORK_UNAVAILABLE))
        );
    }

    #[test]
    fn should_run_follows_selector_affinity_and_taints() {
        let plain = ds(json!({}));
        let n = node("n1", json!({"disk": "ssd"}), json!([]));
        assert_eq!(node_should_run(&n, &plain), (true, true));

        // a node that has not become ready: not tolerated, but a running pod stays
        let not_ready = node(
            "n1",
            json!({}),
            json!([{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]),
        );
        assert_eq!(node_should_run(&not_ready, &plain), (false, true));
        // cordoned or under pressure: tolerated
        let cordoned = node(
            "n1",
            json!({}),
            json!([{"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"},
                   {"key": TAINT_MEMORY_PRESSURE, "effect": "NoSchedule"},
                   {"key": TAINT_NOT_READY, "effect": "NoExecute"}]),
        );
        assert_eq!(node_should_run(&cordoned, &plain), (true, true));
        // an untolerated NoExecute taint evicts
        let dedicated = node(
            "n1",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
        );
        assert_eq!(node_should_run(&dedicated, &plain), (false, false));
        // PreferNoSchedule does not count
        let soft = node(
            "n1",
            json!({}),
            json!([{"key": "x", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(node_should_run(&soft, &plain), (true, true));

        let selecting = ds_with_template_spec(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(node_should_run(&n, &selecting), (true, true));
        let hdd = node("n2", json!({"disk": "hdd"}), json!([]));
        assert_eq!(node_should_run(&hdd, &selecting), (false, false));

        let affinity = ds_with_template_spec(json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
        ]}}}}));
        assert_eq!(node_should_run(&n, &affinity), (true, true));
        assert_eq!(node_should_run(&hdd, &affinity), (true, true));
        let other = node("n3", json!({"disk": "ssd"}), json!([]));
        assert_eq!(node_should_run(&other, &affinity), (false, false));

        let named = ds_with_template_spec(json!({"nodeName": "n2"}));
        assert_eq!(node_should_run(&n, &named), (false, false));
        assert_eq!(node_should_run(&hdd, &named), (true, true));
    }

    #[test]
    fn node_selector_terms_parse_like_upstream() {
        let n = node("n1", json!({"cpus": "8", "zone": "a"}), json!([]));
        let term = |t: Value| -> NodeSelectorTerm { serde_json::from_value(t).unwrap() };
        assert!(term_matches(
            &term(
                json!({"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]})
            ),
            &n
        ));
        assert!(!term_matches(
            &term(
                json!({"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]})
            ),
            &n
        ));
        assert!(term_matches(
            &term(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})),
            &n
        ));
        // empty terms, unknown operators and unknown fields match nothing
        assert!(!term_matches(&term(json!({})), &n));
        assert!(!term_matches(
            &term(
                json!({"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]})
            ),
            &n
        ));
        assert!(!term_matches(
            &term(
                json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]})
            ),
            &n
        ));
        assert!(term_matches(
            &term(
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]})
            ),
            &n
        ));
    }

    #[test]
    fn pods_are_bound_through_a_node_name_term() {
        // no affinity at all
        let a = bind_to_node(None, "n1");
        let terms = &a
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(
            terms[0].match_fields.as_ref().unwrap()[0].values,
            Some(vec!["n1".to_owned()])
        );
        // existing required terms are replaced, preferred ones kept
        let existing: Affinity = serde_json::from_value(json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}]
        }}))
        .unwrap();
        let replaced = bind_to_node(Some(existing), "n2");
        let na = replaced.node_affinity.unwrap();
        let terms = na
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert!(terms[0].match_expressions.is_none());
        assert_eq!(
            na.preferred_during_scheduling_ignored_during_execution
                .unwrap()
                .len(),
            1
        );

        // the target node of an unbound pod comes from the term
        let mut pod = Pod {
            spec: Some(PodSpec {
                affinity: Some(bind_to_node(None, "n7")),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        assert_eq!(target_node_name(&pod).as_deref(), Some("n7"));
        pod.spec.as_mut().unwrap().node_name = Some("n8".into());
        assert_eq!(target_node_name(&pod).as_deref(), Some("n8"));
        assert_eq!(target_node_name(&Pod::default()), None);
    }

    #[test]
    fn pod_templates_carry_hash_generation_and_tolerations() {
        let mut d = ds(json!({}));
        let t = pod_template(&d, "abc");
        let labels = t.metadata.unwrap().labels.unwrap();
        assert_eq!(
            labels.get(REVISION_HASH_LABEL).map(String::as_str),
            Some("abc")
        );
        assert!(!labels.contains_key(TEMPLATE_GENERATION_LABEL));
        assert!(t.spec.unwrap().tolerations.unwrap().len() >= 6);
        d.metadata.annotations = Some(BTreeMap::from([(
            TEMPLATE_GENERATION_ANNOTATION.to_owned(),
            "3".to_owned(),
        )]));
        let labels = pod_template(&d, "abc").metadata.unwrap().labels.unwrap();
        assert_eq!(
            labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str),
            Some("3")
        );
    }

    #[test]
    fn hashes_and_revision_data_follow_the_template() {
        let a = ds(json!({}));
        let mut b = a.clone();
        b.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("busybox:2".into());
        let ta = template(&a);
        assert_eq!(compute_hash(&ta, None), compute_hash(&ta, None));
        assert_ne!(compute_hash(&ta, None), compute_hash(&template(&b), None));
        assert_ne!(compute_hash(&ta, None), compute_hash(&ta, Some(1)));
        let data = revision_patch(&a);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert!(revision_matches(&a, Some(&data)));
        assert!(!revision_matches(&b, Some(&data)));
        // Go's `null`s for empty fields do not make a revision differ
        let mut with_null = data.clone();
        with_null["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
        assert!(revision_matches(&a, Some(&with_null)));
        assert!(!revision_matches(&a, None));
    }

    #[test]
    fn surge_and_unavailability_scale_up() {
        let d = ds(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": "25%"}}}));
        assert_eq!(unavailable_count(&d, 15), Ok(2));
        assert_eq!(surge_count(&d, 3), Ok(1));
        assert!(allows_surge(&d));
        let on_delete = ds(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert_eq!(unavailable_count(&on_delete, 10), Ok(0));
        assert!(!allows_surge(&on_delete));
        assert!(scaled_value(&IntOrString::String("ten".into()), 10, true).is_err());
        assert_eq!(
            scaled_value(&IntOrString::String("50%".into()), 3, false),
            Ok(1)
        );
    }

    #[test]
    fn pods_order_bound_then_oldest_then_name() {
        let pod = |name: &str, node: Option<&str>, created: i64| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": jiff::Timestamp::from_second(created).unwrap().to_string()},
                "spec": {"containers": [], "nodeName": node}
            }))
            .unwrap()
        };
        let mut pods = [
            pod("c", Some("n"), 20),
            pod("unbound", None, 1),
            pod("b", Some("n"), 10),
            pod("a", Some("n"), 10),
        ];
        pods.sort_by(pod_order);
        let names: Vec<&str> = pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "unbound"]);
    }

    #[test]
    fn heartbeats_are_ignored_but_taints_and_readiness_are_not() {
        let base: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "resourceVersion": "1"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let mut beat = base.clone();
        beat.metadata.resource_version = Some("2".into());
        beat.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time = None;
        assert!(node_update_ignorable(&base, &beat));
        let mut not_ready = beat.clone();
        not_ready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert!(!node_update_ignorable(&base, &not_ready));
        let mut tainted = beat.clone();
        tainted.spec = Some(
            serde_json::from_value(json!({"taints": [{"key": "k", "effect": "NoSchedule"}]}))
                .unwrap(),
        );
        assert!(!node_update_ignorable(&base, &tainted));
    }

    #[test]
    fn failed_pod_backoff_doubles_and_expires() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let t0 = Instant::now();
        assert!(!b.in_backoff_since_update("k", t0));
        b.next("k", t0);
        assert_eq!(b.get("k"), Duration::from_secs(1));
        assert!(b.in_backoff_since_update("k", t0 + Duration::from_millis(500)));
        assert!(!b.in_backoff_since_update("k", t0 + Duration::from_secs(2)));
        for i in 1..6 {
            b.next("k", t0 + Duration::from_secs(i));
        }
        assert_eq!(b.get("k"), Duration::from_secs(8), "capped at the maximum");
        // quiet for more than twice the maximum: starts over
        let later = t0 + Duration::from_secs(60);
        assert!(!b.in_backoff_since_update("k", later));
        b.next("k", later);
        assert_eq!(b.get("k"), Duration::from_secs(1));
        b.gc(later + Duration::from_secs(100));
        assert_eq!(b.get("k"), Duration::ZERO);
    }
}
