//! NodeAffinity: upstream's `nodeaffinity` plugin, and the node-selector matching of
//! component-helpers' `scheduling/corev1/nodeaffinity` that other places reuse
//! (PodTopologySpread's node inclusion, DaemonSets, the kubelet's admission).
//!
//! Filter requires `spec.nodeSelector` and the required node affinity terms (ORed; the
//! requirements inside a term ANDed); Score sums the weights of matching preferred terms.
//! The scheduler profile may add affinity of its own (`NodeAffinityArgs.addedAffinity`)
//! that every pod of the profile must meet as well.
//!
//! Terms are parsed once (per pod per cycle, or once per plugin for the added affinity)
//! because Filter and Score run for every node. A term that does not parse matches no
//! node, as upstream's "lazy error" selector does for the pod's own terms.

use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::labels::{Labels, Operator, Requirement};
use k8s_openapi::api::core::v1::{
    Node, NodeAffinity as NodeAffinitySpec, NodeSelector as NodeSelectorSpec,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PreferredSchedulingTerm,
};
use serde::Deserialize;

use crate::framework::events::EventObject;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ActionType, ClusterEventWithHint, Code, CycleState, EventResource, FilterPlugin,
    MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, PodInfo, PreFilterPlugin, PreFilterResult,
    PreScorePlugin, QueueingHint, ScorePlugin, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";

const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeAffinity";
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeAffinity";

/// The reason for a node that fails the pod's node selector or required affinity
/// (upstream's `ErrReasonPod`).
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// The reason for a node that fails the profile's added affinity.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
/// The reason when the required terms pin the pod to no node name at all.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

/// The field a `matchFields` requirement may select on.
const OBJECT_NAME_FIELD: &str = "metadata.name";

// ---- node selector matching (component-helpers nodeaffinity) ----

/// Appends a child to a field path as upstream's `field.Path` prints it.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Upstream's `utilerrors.Aggregate` message: one error alone, several in brackets.
fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

/// Quotes a list of strings as Go's `%q` of a `[]string` in `field.Invalid`.
fn go_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// One `matchFields` requirement: the field equals (or not) a single value.
#[derive(Clone, Debug)]
struct FieldRequirement {
    key: String,
    value: String,
    equal: bool,
}

/// A parsed `NodeSelectorTerm`: label requirements and field requirements, ANDed, or
/// the reasons it did not parse.
#[derive(Clone, Debug)]
struct ParsedTerm {
    labels: Option<Vec<Requirement>>,
    fields: Option<Vec<FieldRequirement>>,
    errors: Vec<String>,
}

fn is_empty_term(term: &NodeSelectorTerm) -> bool {
    term.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        && term.match_fields.as_ref().is_none_or(|f| f.is_empty())
}

fn label_requirements(
    exprs: &[NodeSelectorRequirement],
    path: &str,
) -> Result<Vec<Requirement>, Vec<String>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    for (i, expr) in exprs.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let op = match expr.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::GreaterThan,
            "Lt" => Operator::LessThan,
            other => {
                errs.push(format!(
                    "{}: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\", \"Gt\", \"Lt\"",
                    child(&p, "operator")
                ));
                continue;
            }
        };
        match Requirement::new(
            expr.key.clone(),
            op,
            expr.values.clone().unwrap_or_default(),
        ) {
            Ok(r) => out.push(r),
            Err(e) => errs.push(format!("{p}: {e}")),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn field_requirements(
    exprs: &[NodeSelectorRequirement],
    path: &str,
) -> Result<Vec<FieldRequirement>, Vec<String>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    for (i, expr) in exprs.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let equal = match expr.operator.as_str() {
            "In" => true,
            "NotIn" => false,
            other => {
                errs.push(format!(
                    "{}: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\"",
                    child(&p, "operator")
                ));
                continue;
            }
        };
        // A field selector compares with one value only.
        let values = expr.values.as_deref().unwrap_or(&[]);
        if values.len() != 1 {
            errs.push(format!(
                "{}: Invalid value: {}: must have one element",
                child(&p, "values"),
                go_list(values)
            ));
            continue;
        }
        out.push(FieldRequirement {
            key: expr.key.clone(),
            value: values[0].clone(),
            equal,
        });
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

impl ParsedTerm {
    fn new(term: &NodeSelectorTerm, path: &str) -> ParsedTerm {
        let mut parsed = ParsedTerm {
            labels: None,
            fields: None,
            errors: Vec::new(),
        };
        if let Some(exprs) = term.match_expressions.as_deref().filter(|e| !e.is_empty()) {
            match label_requirements(exprs, &child(path, "matchExpressions")) {
                Ok(r) => parsed.labels = Some(r),
                Err(e) => parsed.errors.extend(e),
            }
        }
        if let Some(exprs) = term.match_fields.as_deref().filter(|e| !e.is_empty()) {
            match field_requirements(exprs, &child(path, "matchFields")) {
                Ok(r) => parsed.fields = Some(r),
                Err(e) => parsed.errors.extend(e),
            }
        }
        parsed
    }

    /// Whether the node's labels and name meet the term; the parse errors instead when
    /// it has any.
    fn matches(&self, labels: &Labels, name: &str) -> Result<bool, &[String]> {
        if !self.errors.is_empty() {
            return Err(&self.errors);
        }
        if let Some(reqs) = &self.labels {
            if !reqs.iter().all(|r| r.matches(labels)) {
                return Ok(false);
            }
        }
        // A node without a name has no fields, and field requirements are then not
        // checked (upstream's `len(nodeFields) > 0`).
        if let Some(reqs) = &self.fields {
            if !name.is_empty() {
                let ok = reqs.iter().all(|r| {
                    let have = if r.key == OBJECT_NAME_FIELD { name } else { "" };
                    (have == r.value) == r.equal
                });
                if !ok {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

fn node_labels(node: &Node) -> &Labels {
    static EMPTY: Labels = Labels::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// A parsed `v1.NodeSelector`: its non-empty terms, ORed (upstream's
/// `LazyErrorNodeSelector`; [`NodeSelector::new`] is the strict `NodeSelector`).
#[derive(Clone, Debug)]
pub struct NodeSelector {
    terms: Vec<ParsedTerm>,
}

impl NodeSelector {
    /// Parses `selector`, keeping each term's parse errors to itself: a term that does
    /// not parse matches nothing while the others still may.
    pub fn lazy(selector: &NodeSelectorSpec) -> NodeSelector {
        NodeSelector::lazy_at(selector, "")
    }

    fn lazy_at(selector: &NodeSelectorSpec, path: &str) -> NodeSelector {
        let path = child(path, "nodeSelectorTerms");
        let terms = selector
            .node_selector_terms
            .iter()
            .enumerate()
            // an empty term selects no node: leaving it out is the same
            .filter(|(_, t)| !is_empty_term(t))
            .map(|(i, t)| ParsedTerm::new(t, &format!("{path}[{i}]")))
            .collect();
        NodeSelector { terms }
    }

    /// Parses `selector`, failing on any term that does not parse.
    pub fn new(selector: &NodeSelectorSpec) -> Result<NodeSelector, String> {
        NodeSelector::new_at(selector, "")
    }

    fn new_at(selector: &NodeSelectorSpec, path: &str) -> Result<NodeSelector, String> {
        let parsed = NodeSelector::lazy_at(selector, path);
        let errs: Vec<String> = parsed.terms.iter().flat_map(|t| t.errors.clone()).collect();
        if errs.is_empty() {
            Ok(parsed)
        } else {
            Err(aggregate(&errs))
        }
    }

    /// Whether any term matches `node`; when none does, the parse errors met, if any
    /// (upstream's `LazyErrorNodeSelector.Match`).
    pub fn match_lazy(&self, node: &Node) -> Result<bool, String> {
        let (labels, name) = (node_labels(node), node_name(node));
        let mut errs = Vec::new();
        for term in &self.terms {
            match term.matches(labels, name) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => errs.extend_from_slice(e),
            }
        }
        if errs.is_empty() {
            Ok(false)
        } else {
            Err(aggregate(&errs))
        }
    }

    /// Whether any term matches `node`; terms that did not parse match nothing.
    pub fn matches(&self, node: &Node) -> bool {
        self.match_lazy(node).unwrap_or(false)
    }
}

/// Parsed preferred terms with their weights (upstream's `PreferredSchedulingTerms`).
#[derive(Clone, Debug)]
pub struct PreferredSchedulingTerms {
    terms: Vec<(ParsedTerm, i64)>,
}

impl PreferredSchedulingTerms {
    /// Parses `terms`; terms of weight 0 or without requirements are left out, and any
    /// term that does not parse fails the whole list.
    pub fn new(terms: &[PreferredSchedulingTerm]) -> Result<PreferredSchedulingTerms, String> {
        PreferredSchedulingTerms::new_at(terms, "")
    }

    fn new_at(
        terms: &[PreferredSchedulingTerm],
        path: &str,
    ) -> Result<PreferredSchedulingTerms, String> {
        let mut errs = Vec::new();
        let mut parsed = Vec::new();
        for (i, term) in terms.iter().enumerate() {
            if term.weight == 0 || is_empty_term(&term.preference) {
                continue;
            }
            let t = ParsedTerm::new(&term.preference, &format!("{path}[{i}]"));
            if t.errors.is_empty() {
                parsed.push((t, i64::from(term.weight)));
            } else {
                errs.extend(t.errors);
            }
        }
        if errs.is_empty() {
            Ok(PreferredSchedulingTerms { terms: parsed })
        } else {
            Err(aggregate(&errs))
        }
    }

    /// The sum of the weights of the terms `node` matches.
    pub fn score(&self, node: &Node) -> i64 {
        let (labels, name) = (node_labels(node), node_name(node));
        self.terms
            .iter()
            .filter(|(t, _)| t.matches(labels, name) == Ok(true))
            .map(|(_, w)| w)
            .sum()
    }
}

/// A pod's `spec.nodeSelector` and required node affinity, parsed (upstream's
/// `RequiredNodeAffinity`).
#[derive(Clone, Debug)]
pub struct RequiredNodeAffinity {
    /// `spec.nodeSelector` as label=value pairs; `None` when empty.
    label_selector: Option<Vec<(String, String)>>,
    /// The required terms; `None` when the pod has none.
    node_selector: Option<NodeSelector>,
}

/// The pod's required node affinity, if any.
fn required_affinity(pod: &Pod) -> Option<&NodeSelectorSpec> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// The pod's preferred node affinity terms, if the field is set.
fn preferred_affinity(pod: &Pod) -> Option<&[PreferredSchedulingTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .preferred_during_scheduling_ignored_during_execution
        .as_deref()
}

impl RequiredNodeAffinity {
    /// Parses what `pod` requires of a node (upstream's `GetRequiredNodeAffinity`).
    pub fn of(pod: &Pod) -> RequiredNodeAffinity {
        let label_selector = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .filter(|m| !m.is_empty())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        RequiredNodeAffinity {
            label_selector,
            node_selector: required_affinity(pod).map(NodeSelector::lazy),
        }
    }

    /// Whether `node` meets both the node selector and the required terms; when the
    /// terms decide, the parse errors met if none matched.
    pub fn match_lazy(&self, node: &Node) -> Result<bool, String> {
        if let Some(selector) = &self.label_selector {
            let labels = node_labels(node);
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return Ok(false);
            }
        }
        match &self.node_selector {
            Some(ns) => ns.match_lazy(node),
            None => Ok(true),
        }
    }

    /// Whether `node` meets both; terms that did not parse match nothing.
    pub fn matches(&self, node: &Node) -> bool {
        self.match_lazy(node).unwrap_or(false)
    }
}

/// Whether `node` matches one term: its label and field requirements ANDed. An empty
/// term, or one that does not parse, matches nothing.
pub fn node_matches_selector_term(term: &NodeSelectorTerm, node: &Node) -> bool {
    !is_empty_term(term)
        && ParsedTerm::new(term, "").matches(node_labels(node), node_name(node)) == Ok(true)
}

/// Whether `node` matches any of `terms` (ORed), as a required node affinity does.
pub fn node_matches_selector_terms(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    terms.iter().any(|t| node_matches_selector_term(t, node))
}

/// Whether `node` meets `pod`'s `spec.nodeSelector` and required node affinity
/// (upstream's `GetRequiredNodeAffinity(pod).Match(node)`, parse errors as no match).
pub fn pod_matches_node_selector_and_affinity(pod: &Pod, node: &Node) -> bool {
    RequiredNodeAffinity::of(pod).matches(node)
}

/// Maps scores in [0, max(scores)] onto [0, `max_priority`], reversed (`max_priority -
/// score`) when `reverse` (upstream's `helper.DefaultNormalizeScore`). All zeros stay
/// zeros, or all become `max_priority` when reversed. Scores are assumed non-negative.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max_count = scores.iter().map(|s| s.score).max().unwrap_or(0).max(0);
    if max_count == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let score = max_priority * s.score / max_count;
        s.score = if reverse { max_priority - score } else { score };
    }
}

// ---- the plugin ----

/// The plugin's arguments (upstream's `NodeAffinityArgs`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAffinityArgs {
    /// Affinity every pod of the profile gets on top of its own.
    pub added_affinity: Option<NodeAffinitySpec>,
}

/// Filters on the pod's node selector and required affinity, scores on its preferred
/// affinity.
#[derive(Debug, Default)]
pub struct NodeAffinity {
    /// The profile's added required terms.
    added_node_selector: Option<NodeSelector>,
    /// The profile's added preferred terms.
    added_pref_sched_terms: Option<PreferredSchedulingTerms>,
}

#[derive(Clone, Debug)]
struct PreFilterState(RequiredNodeAffinity);

#[derive(Clone, Debug)]
struct PreScoreState(Option<PreferredSchedulingTerms>);

/// Requeues after a node was added, or updated so that it now meets the pod's required
/// affinity (upstream's `isSchedulableAfterNodeChange`, without the added-affinity
/// check: a hint is a plain function here and cannot see the plugin's arguments, so a
/// node failing only the added affinity requeues the pod once more than upstream).
fn schedulable_after_node_change(
    pod: &PodInfo,
    old: Option<&EventObject>,
    new: Option<&EventObject>,
) -> QueueingHint {
    let Some(EventObject::Node(modified)) = new else {
        return QueueingHint::Queue;
    };
    let required = RequiredNodeAffinity::of(&pod.pod);
    match required.match_lazy(modified) {
        Err(_) => return QueueingHint::Queue,
        Ok(false) => return QueueingHint::Skip,
        Ok(true) => {}
    }
    let Some(EventObject::Node(original)) = old else {
        // an added node that matches
        return QueueingHint::Queue;
    };
    match required.match_lazy(original) {
        // it matched before: the update changed nothing for this pod
        Ok(true) => QueueingHint::Skip,
        _ => QueueingHint::Queue,
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        // Upstream's registration with queueing hints enabled: only added nodes and
        // label changes can make a node match.
        vec![ClusterEventWithHint::with_hint(
            EventResource::Node,
            ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
            schedulable_after_node_change,
        )]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let required = required_affinity(&pod.pod);
        // As upstream, an empty but present nodeSelector map still runs Filter.
        let has_node_selector = pod
            .pod
            .spec
            .as_ref()
            .is_some_and(|s| s.node_selector.is_some());
        if required.is_none() && self.added_node_selector.is_none() && !has_node_selector {
            return (None, Status::skip());
        }
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState(RequiredNodeAffinity::of(&pod.pod)),
        );
        let Some(required) = required.filter(|r| !r.node_selector_terms.is_empty()) else {
            return (None, Status::success());
        };
        // When every term pins metadata.name with `In`, only those nodes can fit: the
        // union over the (ORed) terms of the intersection within each (ANDed) term.
        let mut node_names: Option<BTreeSet<String>> = None;
        for term in &required.node_selector_terms {
            let mut term_names: Option<BTreeSet<String>> = None;
            for r in term.match_fields.iter().flatten() {
                if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                    let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                    term_names = Some(match term_names {
                        None => values,
                        Some(names) => names.intersection(&values).cloned().collect(),
                    });
                }
            }
            let Some(term_names) = term_names else {
                // a term not pinning a name lets any node through
                return (None, Status::success());
            };
            node_names
                .get_or_insert_with(BTreeSet::new)
                .extend(term_names);
        }
        match node_names {
            Some(names) if names.is_empty() => (
                None,
                Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_CONFLICT),
            ),
            Some(names) => (
                Some(PreFilterResult {
                    node_names: Some(names),
                }),
                Status::success(),
            ),
            None => (None, Status::success()),
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let node = node.node();
        if let Some(added) = &self.added_node_selector {
            if !added.matches(node) {
                return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_ENFORCED);
            }
        }
        // Without PreFilter (disabled in the profile) the pod's terms are parsed here.
        let matched = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(s) => s.0.matches(node),
            None => pod_matches_node_selector_and_affinity(&pod.pod, node),
        };
        if matched {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>]) -> Status {
        let preferred = match preferred_affinity(&pod.pod).map(PreferredSchedulingTerms::new) {
            None => None,
            Some(Ok(terms)) => Some(terms),
            Some(Err(e)) => return Status::error(e),
        };
        if preferred.is_none() && self.added_pref_sched_terms.is_none() {
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState(preferred));
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let node = node.node();
        let mut count = self
            .added_pref_sched_terms
            .as_ref()
            .map_or(0, |t| t.score(node));
        match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => count += s.0.as_ref().map_or(0, |t| t.score(node)),
            // Without PreScore (disabled in the profile) the terms are parsed here.
            None => match preferred_affinity(&pod.pod).map(PreferredSchedulingTerms::new) {
                None => {}
                Some(Ok(terms)) => count += terms.score(node),
                Some(Err(e)) => return (0, Status::error(e)),
            },
        }
        (count, Status::success())
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

/// The constructor: parses `addedAffinity`, failing on terms that do not parse (as
/// upstream's `ValidateNodeAffinityArgs`).
pub fn new(args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    let args: NodeAffinityArgs = decode_args(NAME, args)?;
    let mut plugin = NodeAffinity::default();
    if let Some(added) = &args.added_affinity {
        let mut errs = Vec::new();
        if let Some(ns) = &added.required_during_scheduling_ignored_during_execution {
            match NodeSelector::new_at(
                ns,
                "addedAffinity.requiredDuringSchedulingIgnoredDuringExecution",
            ) {
                Ok(s) => plugin.added_node_selector = Some(s),
                Err(e) => errs.push(e),
            }
        }
        if let Some(terms) = added
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            match PreferredSchedulingTerms::new_at(
                terms,
                "addedAffinity.preferredDuringSchedulingIgnoredDuringExecution",
            ) {
                Ok(t) => plugin.added_pref_sched_terms = Some(t),
                Err(e) => errs.push(e),
            }
        }
        if !errs.is_empty() {
            return Err(aggregate(&errs));
        }
    }
    Ok(Arc::new(plugin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod_with(spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([]);
        PodInfo::new(
            serde_json::from_value(
                json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    /// A pod whose required affinity is `terms`.
    fn required(terms: Value) -> PodInfo {
        pod_with(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
        )
    }

    fn node_obj(name: &str, labels: Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn node(name: &str, labels: Value) -> NodeInfo {
        NodeInfo::new(node_obj(name, labels))
    }

    fn plugin(args: Value) -> NodeAffinity {
        let args: NodeAffinityArgs = decode_args(NAME, Some(&args)).unwrap();
        let mut pl = NodeAffinity::default();
        if let Some(added) = args.added_affinity {
            if let Some(ns) = &added.required_during_scheduling_ignored_during_execution {
                pl.added_node_selector = Some(NodeSelector::new(ns).unwrap());
            }
            if let Some(t) = added
                .preferred_during_scheduling_ignored_during_execution
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                pl.added_pref_sched_terms = Some(PreferredSchedulingTerms::new(t).unwrap());
            }
        }
        pl
    }

    /// PreFilter then Filter on one node, as the framework runs them; a PreFilter Skip
    /// means the plugin lets every node through.
    fn run_filter(pl: &NodeAffinity, p: &PodInfo, n: &NodeInfo) -> Status {
        let mut state = CycleState::default();
        let (_, status) = pl.pre_filter(&mut state, p, &[]);
        if status.is_skip() {
            return Status::success();
        }
        if !status.is_success() {
            return status;
        }
        pl.filter(&state, p, n)
    }

    fn fits(p: &PodInfo, labels: Value) -> bool {
        let n = node("node1", labels);
        let s = run_filter(&NodeAffinity::default(), p, &n);
        if !s.is_success() {
            assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
            assert_eq!(s.message(), ERR_REASON_POD);
        }
        // the fallback without PreFilter agrees
        let without = NodeAffinity::default().filter(&CycleState::default(), p, &n);
        assert_eq!(without.is_success(), s.is_success());
        s.is_success()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"key": key, "operator": op, "values": values})
    }

    #[test]
    fn node_selector_cases_from_upstream() {
        assert!(fits(&pod_with(json!({})), json!({})), "no selector");
        assert!(
            !fits(
                &pod_with(json!({"nodeSelector": {"foo": "bar"}})),
                json!({})
            ),
            "missing labels"
        );
        assert!(
            fits(
                &pod_with(json!({"nodeSelector": {"foo": "bar"}})),
                json!({"foo": "bar"})
            ),
            "same labels"
        );
        assert!(
            fits(
                &pod_with(json!({"nodeSelector": {"foo": "bar"}})),
                json!({"foo": "bar", "baz": "blah"})
            ),
            "node labels are a superset"
        );
        assert!(
            !fits(
                &pod_with(json!({"nodeSelector": {"foo": "bar", "baz": "blah"}})),
                json!({"foo": "bar"})
            ),
            "node labels are a subset"
        );
        assert!(
            !fits(
                &pod_with(json!({"nodeSelector": {"foo": "bar"}})),
                json!({"foo": "baz"})
            ),
            "value differs"
        );
    }

    #[test]
    fn match_expression_operators() {
        let t = |e: Value| required(json!([{"matchExpressions": [e]}]));
        assert!(fits(
            &t(expr("foo", "In", &["bar", "value2"])),
            json!({"foo": "bar"})
        ));
        assert!(!fits(
            &t(expr("foo", "In", &["bar", "value2"])),
            json!({"foo": "other"})
        ));
        assert!(!fits(&t(expr("foo", "In", &["bar"])), json!({})));
        assert!(
            fits(&t(expr("foo", "NotIn", &["bar"])), json!({})),
            "NotIn matches absent keys"
        );
        assert!(!fits(
            &t(expr("foo", "NotIn", &["bar"])),
            json!({"foo": "bar"})
        ));
        assert!(fits(
            &t(json!({"key": "foo", "operator": "Exists"})),
            json!({"foo": "x"})
        ));
        assert!(!fits(
            &t(json!({"key": "foo", "operator": "Exists"})),
            json!({})
        ));
        assert!(fits(
            &t(json!({"key": "foo", "operator": "DoesNotExist"})),
            json!({})
        ));
        assert!(!fits(
            &t(json!({"key": "foo", "operator": "DoesNotExist"})),
            json!({"foo": "x"})
        ));
        assert!(fits(
            &t(expr("kernel-version", "Gt", &["0204"])),
            json!({"kernel-version": "0206"})
        ));
        assert!(!fits(
            &t(expr("kernel-version", "Gt", &["0204"])),
            json!({"kernel-version": "0204"})
        ));
        assert!(fits(
            &t(expr("mem-type", "Lt", &["5"])),
            json!({"mem-type": "3"})
        ));
        assert!(
            !fits(
                &t(expr("mem-type", "Lt", &["5"])),
                json!({"mem-type": "DDR3"})
            ),
            "non-integer label"
        );
        assert!(!fits(&t(expr("mem-type", "Lt", &["5"])), json!({})));
        // a requirement that does not parse matches nothing
        assert!(!fits(&t(expr("foo", "Gt", &["a"])), json!({"foo": "1"})));
        assert!(!fits(&t(expr("foo", "Bogus", &["a"])), json!({"foo": "a"})));
        assert!(!fits(&t(expr("foo", "In", &[])), json!({"foo": "a"})));
    }

    #[test]
    fn terms_are_ored_and_expressions_anded() {
        // expressions within a term are ANDed
        let p = required(
            json!([{"matchExpressions": [expr("foo", "In", &["bar"]), json!({"key": "diffkey", "operator": "Exists"})]}]),
        );
        assert!(!fits(&p, json!({"foo": "bar"})));
        assert!(fits(&p, json!({"foo": "bar", "diffkey": "x"})));
        // terms are ORed
        let p = required(json!([
            {"matchExpressions": [expr("foo", "In", &["bar"])]},
            {"matchExpressions": [expr("diffkey", "In", &["wrong", "value2"])]}
        ]));
        assert!(fits(&p, json!({"foo": "bar"})));
        assert!(fits(&p, json!({"diffkey": "value2"})));
        assert!(!fits(&p, json!({"foo": "baz"})));
        // an empty term selects nothing
        assert!(!fits(&required(json!([{}])), json!({"foo": "bar"})));
        assert!(!fits(
            &required(json!([{"matchExpressions": []}])),
            json!({"foo": "bar"})
        ));
        // an empty list of terms selects nothing
        assert!(!fits(&required(json!([])), json!({"foo": "bar"})));
        // a bad term does not stop a good one
        let p = required(json!([
            {"matchExpressions": [expr("foo", "Bogus", &["bar"])]},
            {"matchExpressions": [expr("foo", "In", &["bar"])]}
        ]));
        assert!(fits(&p, json!({"foo": "bar"})));
        // nodeSelector and affinity are both required
        let p = pod_with(
            json!({"nodeSelector": {"foo": "bar"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "foo", "operator": "Exists"}]}]}}}}),
        );
        assert!(fits(&p, json!({"foo": "bar"})));
        assert!(!fits(&p, json!({"foo": "baz"})));
        // a pod with an affinity but no required part fits everywhere
        let p = pod_with(json!({"affinity": {"nodeAffinity": {}}}));
        assert!(fits(&p, json!({})));
    }

    #[test]
    fn match_fields_select_the_node_name() {
        let p = required(json!([{"matchFields": [expr("metadata.name", "In", &["node1"])]}]));
        assert!(fits(&p, json!({})));
        assert!(!run_filter(&NodeAffinity::default(), &p, &node("node2", json!({}))).is_success());
        let p = required(json!([{"matchFields": [expr("metadata.name", "NotIn", &["node1"])]}]));
        assert!(!fits(&p, json!({})));
        // fields and labels in one term are ANDed
        let p = required(
            json!([{"matchFields": [expr("metadata.name", "In", &["node1"])], "matchExpressions": [expr("foo", "In", &["bar"])]}]),
        );
        assert!(fits(&p, json!({"foo": "bar"})));
        assert!(!fits(&p, json!({"foo": "baz"})));
        // a field requirement needs exactly one value
        let p =
            required(json!([{"matchFields": [expr("metadata.name", "In", &["node1", "node2"])]}]));
        assert!(!fits(&p, json!({})));
        // other fields are empty
        let p = required(json!([{"matchFields": [expr("metadata.uid", "In", &["x"])]}]));
        assert!(!fits(&p, json!({})));
    }

    fn pre_filter(p: &PodInfo) -> (Option<PreFilterResult>, Status) {
        NodeAffinity::default().pre_filter(&mut CycleState::default(), p, &[])
    }

    fn names(v: &[&str]) -> Option<PreFilterResult> {
        Some(PreFilterResult {
            node_names: Some(v.iter().map(|s| s.to_string()).collect()),
        })
    }

    #[test]
    fn pre_filter_skips_pods_without_requirements() {
        assert!(pre_filter(&pod_with(json!({}))).1.is_skip());
        assert!(pre_filter(&pod_with(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}}))).1.is_skip());
        // present but empty nodeSelector still filters, as upstream's nil check
        assert!(
            pre_filter(&pod_with(json!({"nodeSelector": {}})))
                .1
                .is_success()
        );
        // the profile's added affinity applies to every pod
        let pl = plugin(
            json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr("zone", "In", &["a"])]}]}}}),
        );
        assert!(
            pl.pre_filter(&mut CycleState::default(), &pod_with(json!({})), &[])
                .1
                .is_success()
        );
    }

    #[test]
    fn pre_filter_narrows_to_pinned_node_names() {
        let one =
            |values: &[&str]| json!({"key": "metadata.name", "operator": "In", "values": values});
        // one term, one name
        assert_eq!(
            pre_filter(&required(json!([{"matchFields": [one(&["node1"])]}]))),
            (names(&["node1"]), Status::success())
        );
        // ANDed requirements intersect
        let (r, s) = pre_filter(&required(
            json!([{"matchFields": [one(&["node1", "node2"]), one(&["node2", "node3"])]}]),
        ));
        assert!(s.is_success());
        assert_eq!(r, names(&["node2"]));
        // ORed terms unite
        let (r, _) = pre_filter(&required(
            json!([{"matchFields": [one(&["node1"])]}, {"matchFields": [one(&["node2"])]}]),
        ));
        assert_eq!(r, names(&["node1", "node2"]));
        // a term without a name requirement keeps every node
        let (r, s) = pre_filter(&required(
            json!([{"matchFields": [one(&["node1"])]}, {"matchExpressions": [expr("foo", "Exists", &[])]}]),
        ));
        assert!(r.is_none() && s.is_success());
        // NotIn does not narrow
        let (r, _) = pre_filter(&required(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node1"]}]}]),
        ));
        assert!(r.is_none());
        // disjoint requirements in every term: nothing can fit
        let (r, s) = pre_filter(&required(
            json!([{"matchFields": [one(&["node1"]), one(&["node2"])]}]),
        ));
        assert!(r.is_none());
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "pod affinity terms conflict");
        // only the nodeSelector: no narrowing
        let (r, s) = pre_filter(&pod_with(json!({"nodeSelector": {"a": "b"}})));
        assert!(r.is_none() && s.is_success());
    }

    #[test]
    fn added_affinity_is_enforced_first() {
        let pl = plugin(
            json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr("zone", "In", &["foo"])]}]}}}),
        );
        let p = pod_with(json!({"nodeSelector": {"foo": "bar"}}));
        let s = run_filter(&pl, &p, &node("n", json!({"foo": "bar"})));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.message(),
            "node(s) didn't match scheduler-enforced node affinity"
        );
        let s = run_filter(&pl, &p, &node("n", json!({"zone": "foo"})));
        assert_eq!(s.message(), ERR_REASON_POD);
        assert!(run_filter(&pl, &p, &node("n", json!({"zone": "foo", "foo": "bar"}))).is_success());
        assert!(
            run_filter(
                &pl,
                &pod_with(json!({})),
                &node("n", json!({"zone": "foo"}))
            )
            .is_success()
        );
    }

    fn scores(pl: &NodeAffinity, p: &PodInfo, nodes: Vec<NodeInfo>) -> Option<Vec<i64>> {
        let nodes: Vec<Arc<NodeInfo>> = nodes.into_iter().map(Arc::new).collect();
        let mut state = CycleState::default();
        let status = pl.pre_score(&mut state, p, &nodes);
        if status.is_skip() {
            return None;
        }
        assert!(status.is_success(), "{status:?}");
        let mut list: Vec<NodeScore> = nodes
            .iter()
            .map(|n| {
                let (score, status) = pl.score(&state, p, n);
                assert!(status.is_success());
                NodeScore {
                    name: n.name().to_owned(),
                    score,
                }
            })
            .collect();
        assert!(pl.normalize_score(&state, p, &mut list).is_success());
        Some(list.into_iter().map(|s| s.score).collect())
    }

    fn preferred(terms: Value) -> PodInfo {
        pod_with(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}}}),
        )
    }

    fn upstream_nodes() -> Vec<NodeInfo> {
        vec![
            node("node1", json!({"foo": "bar"})),
            node("node2", json!({"key": "value"})),
            node("node3", json!({"az": "az1"})),
            node("node5", json!({"foo": "bar", "key": "value", "az": "az1"})),
        ]
    }

    #[test]
    fn score_cases_from_upstream() {
        let pl = NodeAffinity::default();
        // no preferred terms: PreScore skips
        assert_eq!(scores(&pl, &pod_with(json!({})), upstream_nodes()), None);
        // an empty preferred list still scores (all zeros), as upstream's nil check
        assert_eq!(
            scores(&pl, &preferred(json!([])), upstream_nodes()),
            Some(vec![0, 0, 0, 0])
        );
        let affinity1 = json!([{"weight": 2, "preference": {"matchExpressions": [expr("foo", "In", &["bar"])]}}]);
        let affinity2 = json!([
            {"weight": 2, "preference": {"matchExpressions": [expr("foo", "In", &["bar"])]}},
            {"weight": 4, "preference": {"matchExpressions": [expr("key", "In", &["value"])]}},
            {"weight": 5, "preference": {"matchExpressions": [expr("foo", "In", &["bar"]), expr("key", "In", &["value"]), expr("az", "In", &["az1"])]}}
        ]);
        // no node matches
        assert_eq!(
            scores(
                &pl,
                &preferred(affinity1.clone()),
                vec![node("a", json!({})), node("b", json!({"x": "y"}))]
            ),
            Some(vec![0, 0])
        );
        // only node1 matches
        assert_eq!(
            scores(&pl, &preferred(affinity1), upstream_nodes()),
            Some(vec![100, 0, 0, 100])
        );
        // raw 2, 4, 0, 11 → 18, 36, 0, 100
        assert_eq!(
            scores(&pl, &preferred(affinity2), upstream_nodes()),
            Some(vec![18, 36, 0, 100])
        );
        // weight-0 and empty terms count for nothing
        let zero = json!([{"weight": 0, "preference": {"matchExpressions": [expr("foo", "In", &["bar"])]}}, {"weight": 3, "preference": {}}]);
        assert_eq!(
            scores(&pl, &preferred(zero), upstream_nodes()),
            Some(vec![0, 0, 0, 0])
        );
        // matchFields in a preferred term
        let by_name = json!([{"weight": 7, "preference": {"matchFields": [expr("metadata.name", "In", &["node2"])]}}]);
        assert_eq!(
            scores(&pl, &preferred(by_name), upstream_nodes()),
            Some(vec![0, 100, 0, 0])
        );
    }

    #[test]
    fn added_preferred_terms_score_every_pod() {
        let pl = plugin(
            json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 3, "preference": {"matchExpressions": [expr("az", "In", &["az1"])]}}
            ]}}),
        );
        // the pod has no preferences of its own: added terms alone (raw 0, 0, 3, 3)
        assert_eq!(
            scores(&pl, &pod_with(json!({})), upstream_nodes()),
            Some(vec![0, 0, 100, 100])
        );
        // with the pod's own: raw 2, 0, 3, 5
        let p = preferred(
            json!([{"weight": 2, "preference": {"matchExpressions": [expr("foo", "In", &["bar"])]}}]),
        );
        assert_eq!(
            scores(&pl, &p, upstream_nodes()),
            Some(vec![40, 0, 60, 100])
        );
    }

    #[test]
    fn bad_preferred_terms_are_an_error() {
        let p = preferred(
            json!([{"weight": 2, "preference": {"matchExpressions": [expr("foo", "Bogus", &["bar"])]}}]),
        );
        let s = NodeAffinity::default().pre_score(&mut CycleState::default(), &p, &[]);
        assert_eq!(s.code, Code::Error);
        assert!(
            s.message().contains("Unsupported value: \"Bogus\""),
            "{}",
            s.message()
        );
    }

    #[test]
    fn score_without_pre_score_parses_the_pod() {
        let pl = NodeAffinity::default();
        let p = preferred(
            json!([{"weight": 2, "preference": {"matchExpressions": [expr("foo", "In", &["bar"])]}}]),
        );
        let (score, status) = pl.score(
            &CycleState::default(),
            &p,
            &node("n", json!({"foo": "bar"})),
        );
        assert!(status.is_success());
        assert_eq!(score, 2);
    }

    #[test]
    fn default_normalize_score_as_upstream() {
        let mk = |v: &[i64]| {
            v.iter()
                .map(|s| NodeScore {
                    name: String::new(),
                    score: *s,
                })
                .collect::<Vec<_>>()
        };
        let get = |v: Vec<NodeScore>| v.into_iter().map(|s| s.score).collect::<Vec<_>>();
        let mut s = mk(&[10, 2, 0, 5]);
        default_normalize_score(100, false, &mut s);
        assert_eq!(get(s), vec![100, 20, 0, 50]);
        let mut s = mk(&[10, 2, 0, 5]);
        default_normalize_score(100, true, &mut s);
        assert_eq!(get(s), vec![0, 80, 100, 50]);
        let mut s = mk(&[0, 0]);
        default_normalize_score(100, false, &mut s);
        assert_eq!(get(s), vec![0, 0]);
        let mut s = mk(&[0, 0]);
        default_normalize_score(100, true, &mut s);
        assert_eq!(get(s), vec![100, 100]);
        let mut s = mk(&[3]);
        default_normalize_score(10, false, &mut s);
        assert_eq!(get(s), vec![10]);
        let mut empty: Vec<NodeScore> = Vec::new();
        default_normalize_score(100, true, &mut empty);
    }

    #[test]
    fn shared_helpers() {
        let n = node_obj("node1", json!({"zone": "a"}));
        let terms: Vec<NodeSelectorTerm> = serde_json::from_value(json!([
            {"matchExpressions": [expr("zone", "In", &["b"])]},
            {"matchFields": [expr("metadata.name", "In", &["node1"])]}
        ]))
        .unwrap();
        assert!(!node_matches_selector_term(&terms[0], &n));
        assert!(node_matches_selector_term(&terms[1], &n));
        assert!(node_matches_selector_terms(&terms, &n));
        assert!(!node_matches_selector_terms(&[], &n));
        assert!(!node_matches_selector_term(
            &NodeSelectorTerm::default(),
            &n
        ));
        let p = pod_with(json!({"nodeSelector": {"zone": "a"}}));
        assert!(pod_matches_node_selector_and_affinity(&p.pod, &n));
        assert!(!pod_matches_node_selector_and_affinity(
            &p.pod,
            &node_obj("node1", json!({}))
        ));
    }

    #[test]
    fn node_change_hint() {
        let p = required(json!([{"matchExpressions": [expr("foo", "In", &["bar"])]}]));
        let ev = |labels: Value| EventObject::Node(Arc::new(node_obj("n", labels)));
        let matching = ev(json!({"foo": "bar"}));
        let other = ev(json!({"foo": "baz"}));
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&matching)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, None, Some(&other)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&other), Some(&matching)),
            QueueingHint::Queue
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&matching), Some(&matching)),
            QueueingHint::Skip
        );
        assert_eq!(
            schedulable_after_node_change(&p, Some(&matching), Some(&other)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn constructor_validates_added_affinity() {
        let h = Handle::default();
        let pl = new(None, &h).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(
            pl.as_pre_filter().is_some()
                && pl.as_filter().is_some()
                && pl.as_pre_score().is_some()
                && pl.as_score().is_some()
        );
        let events = pl.events_to_register();
        assert_eq!(events[0].event.resource, EventResource::Node);
        assert_eq!(
            events[0].event.action,
            ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL)
        );
        let ok = json!({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "NodeAffinityArgs", "addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr("zone", "In", &["a"])]}]}}});
        assert!(new(Some(&ok), &h).is_ok());
        let bad = json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr("zone", "Bogus", &["a"])]}]}}});
        let err = new(Some(&bad), &h).err().unwrap();
        assert!(err.starts_with("addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: \"Bogus\""), "{err}");
        let bad = json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchFields": [expr("metadata.name", "In", &["a", "b"])]}}]}});
        let err = new(Some(&bad), &h).err().unwrap();
        assert!(err.contains("must have one element"), "{err}");
        assert!(new(Some(&json!({"addedAffinity": 3})), &h).is_err());
    }
}
