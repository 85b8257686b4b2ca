//! A profile's plugins, instantiated and run in upstream's order (upstream's
//! `frameworkruntime.frameworkImpl`): PreFilter merges results and collects Skips,
//! Filter stops at the first rejection, Score runs every plugin over every node in
//! parallel, normalizes and weights, Reserve rolls back on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use super::registry::{Handle, PluginFactory};
use super::{
    ClusterEventWithHint, Code, CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, NodeToStatus,
    Plugin, PodInfo, PostFilterResult, PreFilterResult, QueuedPodInfo, Status,
};
use crate::config::{Plugins, Profile};

/// A profile's instantiated plugins, per extension point.
pub struct Framework {
    /// The profile's `schedulerName`.
    pub profile_name: String,
    /// `percentageOfNodesToScore` of the profile, if set.
    pub percentage_of_nodes_to_score: Option<i32>,
    pre_enqueue: Vec<Arc<dyn Plugin>>,
    queue_sort: Option<Arc<dyn Plugin>>,
    pre_filter: Vec<Arc<dyn Plugin>>,
    filter: Vec<Arc<dyn Plugin>>,
    post_filter: Vec<Arc<dyn Plugin>>,
    pre_score: Vec<Arc<dyn Plugin>>,
    score: Vec<(Arc<dyn Plugin>, i64)>,
    reserve: Vec<Arc<dyn Plugin>>,
    permit: Vec<Arc<dyn Plugin>>,
    pre_bind: Vec<Arc<dyn Plugin>>,
    bind: Vec<Arc<dyn Plugin>>,
    post_bind: Vec<Arc<dyn Plugin>>,
    /// Each plugin's registered events.
    events: Vec<(&'static str, ClusterEventWithHint)>,
    /// Pods nominated to nodes, which filtering keeps room for.
    nominator: Arc<super::nominator::Nominator>,
}

/// A profile that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameworkError {
    /// A plugin named in the profile is not in the registry.
    #[error("plugin {0:?} does not exist")]
    UnknownPlugin(String),
    /// A plugin's constructor refused its arguments.
    #[error("initializing plugin {plugin:?}: {reason}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A plugin is enabled at an extension point it does not implement.
    #[error("plugin {plugin:?} does not extend {point} plugin")]
    NotAnExtension {
        /// The plugin.
        plugin: String,
        /// The extension point.
        point: &'static str,
    },
    /// Not exactly one QueueSort or no Bind plugin.
    #[error("{0}")]
    Invalid(String),
}

impl Framework {
    /// Builds `profile` from `registry` (upstream's `NewFramework`).
    pub fn new(
        profile: &Profile,
        registry: &BTreeMap<&'static str, PluginFactory>,
        handle: &Handle,
    ) -> Result<Framework, FrameworkError> {
        let plugins: &Plugins = &profile.plugins;
        let mut instances: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
        let mut instance = |name: &str| -> Result<Arc<dyn Plugin>, FrameworkError> {
            if let Some(p) = instances.get(name) {
                return Ok(p.clone());
            }
            let factory = registry
                .get(name)
                .ok_or_else(|| FrameworkError::UnknownPlugin(name.to_owned()))?;
            let args = profile
                .plugin_config
                .iter()
                .find(|c| c.name == name)
                .map(|c| &c.args);
            let p = factory(args, handle).map_err(|reason| FrameworkError::Plugin {
                plugin: name.to_owned(),
                reason,
            })?;
            instances.insert(name.to_owned(), p.clone());
            Ok(p)
        };
        let mut fw = Framework {
            profile_name: profile.scheduler_name.clone(),
            percentage_of_nodes_to_score: profile.percentage_of_nodes_to_score,
            pre_enqueue: Vec::new(),
            queue_sort: None,
            pre_filter: Vec::new(),
            filter: Vec::new(),
            post_filter: Vec::new(),
            pre_score: Vec::new(),
            score: Vec::new(),
            reserve: Vec::new(),
            permit: Vec::new(),
            pre_bind: Vec::new(),
            bind: Vec::new(),
            post_bind: Vec::new(),
            events: Vec::new(),
            nominator: handle.nominator.clone(),
        };
        // (point, its explicit set, whether the plugin implements it)
        type Implements = fn(&dyn Plugin) -> bool;
        let points: [(&'static str, &crate::config::PluginSet, Implements); 12] = [
            ("PreEnqueue", &plugins.pre_enqueue, |p| {
                p.as_pre_enqueue().is_some()
            }),
            ("QueueSort", &plugins.queue_sort, |p| {
                p.as_queue_sort().is_some()
            }),
            ("PreFilter", &plugins.pre_filter, |p| {
                p.as_pre_filter().is_some()
            }),
            ("Filter", &plugins.filter, |p| p.as_filter().is_some()),
            ("PostFilter", &plugins.post_filter, |p| {
                p.as_post_filter().is_some()
            }),
            ("PreScore", &plugins.pre_score, |p| {
                p.as_pre_score().is_some()
            }),
            ("Score", &plugins.score, |p| p.as_score().is_some()),
            ("Reserve", &plugins.reserve, |p| p.as_reserve().is_some()),
            ("Permit", &plugins.permit, |p| p.as_permit().is_some()),
            ("PreBind", &plugins.pre_bind, |p| p.as_pre_bind().is_some()),
            ("Bind", &plugins.bind, |p| p.as_bind().is_some()),
            ("PostBind", &plugins.post_bind, |p| {
                p.as_post_bind().is_some()
            }),
        ];
        let mut all_used: BTreeSet<String> = BTreeSet::new();
        for (point, explicit, implements) in points {
            // upstream's expandMultiPointPlugins: plugins enabled at this point come
            // first, in their order; then multiPoint plugins that implement the point,
            // unless disabled here (or named here already, which overrides them)
            let disabled_all = explicit.disabled.iter().any(|d| d.name == "*");
            let mut chosen: Vec<(String, i64)> = Vec::new();
            for e in &explicit.enabled {
                let p = instance(&e.name)?;
                if !implements(p.as_ref()) {
                    return Err(FrameworkError::NotAnExtension {
                        plugin: e.name.clone(),
                        point,
                    });
                }
                if !chosen.iter().any(|(n, _)| *n == e.name) {
                    chosen.push((e.name.clone(), e.weight.unwrap_or(0)));
                }
            }
            for e in &plugins.multi_point.enabled {
                if disabled_all
                    || explicit.disabled.iter().any(|d| d.name == e.name)
                    || chosen.iter().any(|(n, _)| *n == e.name)
                {
                    continue;
                }
                let p = instance(&e.name)?;
                if implements(p.as_ref()) {
                    chosen.push((e.name.clone(), e.weight.unwrap_or(0)));
                }
            }
            for (name, weight) in chosen {
                let p = instance(&name)?;
                all_used.insert(name);
                match point {
                    "PreEnqueue" => fw.pre_enqueue.push(p),
                    "QueueSort" => {
                        if fw.queue_sort.is_some() {
                            return Err(FrameworkError::Invalid(
                                "only one queue sort plugin can be enabled".to_owned(),
                            ));
                        }
                        fw.queue_sort = Some(p)
                    }
                    "PreFilter" => fw.pre_filter.push(p),
                    "Filter" => fw.filter.push(p),
                    "PostFilter" => fw.post_filter.push(p),
                    "PreScore" => fw.pre_score.push(p),
                    "Score" => {
                        // upstream: weight 0 means 1; the weighted sum must fit an i64
                        let weight = if weight == 0 { 1 } else { weight };
                        let total: i64 = fw.score.iter().map(|(_, w)| w * MAX_NODE_SCORE).sum();
                        if weight < 0 || weight.saturating_mul(MAX_NODE_SCORE) > i64::MAX - total {
                            return Err(FrameworkError::Invalid(
                                "total score of Score plugins could overflow".to_owned(),
                            ));
                        }
                        fw.score.push((p, weight))
                    }
                    "Reserve" => fw.reserve.push(p),
                    "Permit" => fw.permit.push(p),
                    "PreBind" => fw.pre_bind.push(p),
                    "Bind" => fw.bind.push(p),
                    _ => fw.post_bind.push(p),
                }
            }
        }
        if fw.queue_sort.is_none() {
            return Err(FrameworkError::Invalid(
                "queue sort plugin needed but not found".to_owned(),
            ));
        }
        if fw.bind.is_empty() {
            return Err(FrameworkError::Invalid(
                "at least one bind plugin is needed".to_owned(),
            ));
        }
        for name in all_used {
            let p = instance(&name)?;
            let registered = p.events_to_register();
            if registered.is_empty() {
                // no registration: any event may help (upstream's wildcard)
                fw.events.push((
                    p.name(),
                    ClusterEventWithHint::on(
                        super::EventResource::Wildcard,
                        super::ActionType::ALL,
                    ),
                ));
            }
            fw.events
                .extend(registered.into_iter().map(|e| (p.name(), e)));
        }
        Ok(fw)
    }

    /// The events each plugin's rejections wait on.
    pub fn registered_events(&self) -> &[(&'static str, ClusterEventWithHint)] {
        &self.events
    }

    /// Names of the plugins per extension point (tests and logs).
    pub fn plugin_names(&self, point: &str) -> Vec<&'static str> {
        let names = |v: &Vec<Arc<dyn Plugin>>| v.iter().map(|p| p.name()).collect();
        match point {
            "PreEnqueue" => names(&self.pre_enqueue),
            "QueueSort" => self.queue_sort.iter().map(|p| p.name()).collect(),
            "PreFilter" => names(&self.pre_filter),
            "Filter" => names(&self.filter),
            "PostFilter" => names(&self.post_filter),
            "PreScore" => names(&self.pre_score),
            "Score" => self.score.iter().map(|(p, _)| p.name()).collect(),
            "Reserve" => names(&self.reserve),
            "Permit" => names(&self.permit),
            "PreBind" => names(&self.pre_bind),
            "Bind" => names(&self.bind),
            "PostBind" => names(&self.post_bind),
            _ => Vec::new(),
        }
    }

    /// The weight of a Score plugin (tests).
    pub fn score_weight(&self, name: &str) -> Option<i64> {
        self.score
            .iter()
            .find(|(p, _)| p.name() == name)
            .map(|(_, w)| *w)
    }

    /// Runs PreEnqueue plugins; the first rejection keeps the pod gated.
    pub fn run_pre_enqueue(&self, pod: &PodInfo) -> Status {
        for p in &self.pre_enqueue {
            if let Some(pe) = p.as_pre_enqueue() {
                let s = pe.pre_enqueue(pod);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// The queue order of the profile's QueueSort plugin.
    pub fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        match self.queue_sort.as_ref().and_then(|p| p.as_queue_sort()) {
            Some(sort) => sort.less(a, b),
            None => a.timestamp < b.timestamp,
        }
    }

    /// Runs PreFilter plugins: merged result, the status of the first rejection, and
    /// the plugins that narrowed the nodes. Plugins returning Skip have their Filter
    /// skipped for this pod.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
    ) -> (PreFilterResult, Status, Vec<&'static str>) {
        let nodes = state.snapshot.nodes.clone();
        let mut result = PreFilterResult::default();
        let mut narrowed_by: Vec<&'static str> = Vec::new();
        for p in &self.pre_filter {
            let Some(pf) = p.as_pre_filter() else {
                continue;
            };
            let (r, s) = pf.pre_filter(state, pod, &nodes);
            if s.is_skip() {
                state.skip_filter_plugins.insert(p.name());
                continue;
            }
            if !s.is_success() {
                let s = s.with_plugin(p.name());
                return (result, s, narrowed_by);
            }
            if let Some(r) = r.filter(|r| !r.all_nodes()) {
                narrowed_by.push(p.name());
                result = result.merge(r);
                if result.node_names.as_ref().is_some_and(|n| n.is_empty()) {
                    // upstream's message when the PreFilter results leave no node
                    let message = if narrowed_by.len() == 1 {
                        format!("node(s) didn't satisfy plugin {}", narrowed_by[0])
                    } else {
                        format!(
                            "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                            narrowed_by.join(" ")
                        )
                    };
                    return (
                        result,
                        Status::unresolvable(message).with_plugin(p.name()),
                        narrowed_by,
                    );
                }
            }
        }
        (result, Status::success(), narrowed_by)
    }

    /// Runs Filter plugins on one node; the first rejection wins.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for p in &self.filter {
            if state.skip_filter_plugins.contains(p.name()) {
                continue;
            }
            let Some(f) = p.as_filter() else { continue };
            let s = f.filter(state, pod, node);
            if !s.is_success() {
                let mut s = s.with_plugin(p.name());
                if !s.is_rejected() && s.code != Code::Error {
                    s.code = Code::Error;
                }
                return s;
            }
        }
        Status::success()
    }

    /// Runs the PreFilter extensions' `add_pod` (preemption's what-ifs).
    pub fn run_pre_filter_add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &Arc<PodInfo>,
        node: &NodeInfo,
    ) -> Status {
        self.run_pre_filter_extension(state, |pf, state| pf.add_pod(state, pod, added, node))
    }

    /// Runs the PreFilter extensions' `remove_pod`.
    pub fn run_pre_filter_remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.run_pre_filter_extension(state, |pf, state| pf.remove_pod(state, pod, removed, node))
    }

    /// Runs `extension` on every PreFilter plugin that did not Skip this pod; the
    /// first failure stops.
    fn run_pre_filter_extension(
        &self,
        state: &mut CycleState,
        extension: impl Fn(&dyn super::PreFilterPlugin, &mut CycleState) -> Status,
    ) -> Status {
        for p in &self.pre_filter {
            if state.skip_filter_plugins.contains(p.name()) {
                continue;
            }
            let Some(pf) = p.as_pre_filter() else {
                continue;
            };
            let s = extension(pf, state);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// The nominated pods filtering keeps room for.
    pub fn nominator(&self) -> &Arc<super::nominator::Nominator> {
        &self.nominator
    }

    /// Filter with room kept for pods nominated to the node with at least the pod's
    /// priority (upstream's `RunFilterPluginsWithNominatedPods`): the pod must fit both
    /// with them (as if they ran there) and without them (they may not land after all).
    pub fn run_filter_with_nominated_pods(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        if self.nominator.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let nominated: Vec<Arc<PodInfo>> = self
            .nominator
            .pods_on(node.name())
            .into_iter()
            .filter(|p| p.uid() != pod.uid() && p.priority() >= pod.priority())
            .collect();
        if nominated.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let mut with_state = state.clone();
        let mut with_node = node.clone();
        for p in &nominated {
            with_node.add_pod(p.clone());
            let s = self.run_pre_filter_add_pod(&mut with_state, pod, p, &with_node);
            if !s.is_success() {
                return s;
            }
        }
        let s = self.run_filter(&with_state, pod, &with_node);
        if !s.is_success() {
            return s;
        }
        self.run_filter(state, pod, node)
    }

    /// Whether any PostFilter plugin is configured.
    pub fn has_post_filter(&self) -> bool {
        !self.post_filter.is_empty()
    }

    /// Runs PostFilter plugins until one succeeds (upstream: the first Success wins; an
    /// Unschedulable lets the next try).
    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let mut messages = Vec::new();
        for p in &self.post_filter {
            let Some(pf) = p.as_post_filter() else {
                continue;
            };
            let (r, s) = pf.post_filter(self, state, pod, statuses);
            if s.is_success() {
                return (r, s.with_plugin(p.name()));
            }
            if s.code == Code::Error {
                return (None, s.with_plugin(p.name()));
            }
            messages.extend(s.reasons.clone());
        }
        (
            None,
            Status {
                code: Code::Unschedulable,
                reasons: messages,
                plugin: "",
            },
        )
    }

    /// Runs PreScore plugins over the feasible nodes; Skips leave Score plugins out.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Status {
        for p in &self.pre_score {
            let Some(ps) = p.as_pre_score() else { continue };
            let s = ps.pre_score(state, pod, nodes);
            if s.is_skip() {
                state.skip_score_plugins.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Runs Score plugins over `nodes` in parallel, normalizes and weights; returns each
    /// node's total. One score list (with the node names) is reused by every plugin.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<NodeScore>, Status> {
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_owned(),
                score: 0,
            })
            .collect();
        let mut totals = vec![0i64; nodes.len()];
        for (p, weight) in &self.score {
            if state.skip_score_plugins.contains(p.name()) {
                continue;
            }
            let Some(scorer) = p.as_score() else { continue };
            let raw: Vec<Result<i64, Status>> = nodes
                .par_iter()
                .with_min_len(128)
                .map(|n| {
                    let (score, s) = scorer.score(state, pod, n);
                    if s.is_success() {
                        Ok(score)
                    } else {
                        Err(s.with_plugin(p.name()))
                    }
                })
                .collect();
            for (slot, r) in scores.iter_mut().zip(raw) {
                slot.score = r?;
            }
            let s = scorer.normalize_score(state, pod, &mut scores);
            if !s.is_success() {
                return Err(s.with_plugin(p.name()));
            }
            for (total, s) in totals.iter_mut().zip(&scores) {
                if !(0..=MAX_NODE_SCORE).contains(&s.score) {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [{}, {}] after normalizing",
                        p.name(),
                        s.score,
                        super::MIN_NODE_SCORE,
                        MAX_NODE_SCORE
                    ))
                    .with_plugin(p.name()));
                }
                *total += s.score * weight;
            }
        }
        for (slot, total) in scores.iter_mut().zip(totals) {
            slot.score = total;
        }
        Ok(scores)
    }

    /// Runs Reserve plugins; on a failure, Unreserve runs on all of them in reverse.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.reserve {
            let Some(r) = p.as_reserve() else { continue };
            let s = r.reserve(state, pod, node);
            if !s.is_success() {
                self.run_unreserve(state, pod, node);
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Runs Unreserve on every Reserve plugin, in reverse order.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for p in self.reserve.iter().rev() {
            if let Some(r) = p.as_reserve() {
                r.unreserve(state, pod, node);
            }
        }
    }

    /// Runs Permit plugins: a rejection stops; waits are collected (the longest wins).
    pub fn run_permit(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> (Status, Duration) {
        let mut wait = None::<Duration>;
        for p in &self.permit {
            let Some(pm) = p.as_permit() else { continue };
            let (s, d) = pm.permit(state, pod, node);
            match s.code {
                Code::Success => {}
                Code::Wait => wait = Some(wait.map_or(d, |w| w.max(d))),
                _ => return (s.with_plugin(p.name()), Duration::ZERO),
            }
        }
        match wait {
            Some(d) => (
                Status {
                    code: Code::Wait,
                    reasons: Vec::new(),
                    plugin: "",
                },
                d,
            ),
            None => (Status::success(), Duration::ZERO),
        }
    }

    /// Runs PreBind plugins.
    pub async fn run_pre_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.pre_bind {
            let Some(pb) = p.as_pre_bind() else { continue };
            let s = pb.pre_bind(state, pod, node).await;
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Runs Bind plugins until one does not Skip.
    pub async fn run_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.bind {
            let Some(b) = p.as_bind() else { continue };
            let s = b.bind(state, pod, node).await;
            if s.is_skip() {
                continue;
            }
            return s.with_plugin(p.name());
        }
        Status::skip()
    }

    /// Runs PostBind plugins.
    pub fn run_post_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        for p in &self.post_bind {
            if let Some(pb) = p.as_post_bind() {
                pb.post_bind(state, pod, node);
            }
        }
    }
}
