//! The horizontal pod autoscaler controller, as upstream's `podautoscaler`
//! (`horizontal-pod-autoscaler-controller`, autoscaling/v2): every sync period each
//! HorizontalPodAutoscaler's target is read through its `scale` subresource, the pods
//! its `status.selector` picks are measured against the autoscaler's metrics, and the
//! target's `spec.replicas` is set to the count the metrics ask for, bounded by
//! `minReplicas`/`maxReplicas` and stabilized and rate-limited by `behavior`
//! ([`normalize`]).
//!
//! Resource and ContainerResource metrics (Utilization and AverageValue targets) come
//! from `metrics.k8s.io/v1beta1` PodMetrics ([`metrics`]); the replica arithmetic is
//! upstream's ([`replica_calculator`]). Custom (Pods, Object) and External metrics
//! need adapters this controller does not speak to, and count as failed metrics.
//!
//! As upstream, the queue is a fixed-interval one: a key is looked at again a sync
//! period after each look, failed or not, and new or changed autoscalers wait for
//! their next period.

pub mod metrics;
pub mod normalize;
pub mod replica_calculator;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apimachinery::labels::Selector;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricSource, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};

use crate::Context;
use crate::informers::{Change, Informer, key_of, split_key};
use crate::workqueue::WorkQueue;
use normalize::History;
use replica_calculator::Calculator;

/// The controller's name.
pub const NAME: &str = "horizontal-pod-autoscaler-controller";
/// Its service account (`system:controller:horizontal-pod-autoscaler`).
pub const SERVICE_ACCOUNT: &str = "horizontal-pod-autoscaler";
/// The events' source component, as upstream's recorder.
const COMPONENT: &str = "horizontal-pod-autoscaler";

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The autoscaler could not be brought up to date; the message is upstream's.
    #[error("{0}")]
    Reconcile(String),
}

/// Why metrics gave no count: the `ScalingActive` condition's reason and the error.
struct MetricFailure {
    reason: &'static str,
    error: String,
}

/// What one metric proposes.
struct Proposal {
    replicas: i32,
    metric: String,
    status: MetricStatus,
}

struct Controller {
    cx: Context,
    queue: Arc<WorkQueue<String>>,
    autoscalers: Informer<HorizontalPodAutoscaler>,
    pods: Informer<Pod>,
    calculator: Calculator,
    sync_period: Duration,
    downscale_window: Duration,
    /// Recommendations and scale events per autoscaler key.
    history: Mutex<HashMap<String, History>>,
    /// Each autoscaler's last selector (`None`: not known yet, selects nothing), to
    /// find pods two autoscalers claim (upstream's `hpaSelectors`).
    selectors: Mutex<HashMap<String, Option<Selector>>>,
}

/// The working copy of an autoscaler's status during one reconcile.
struct Working {
    hpa: Arc<HorizontalPodAutoscaler>,
    status: HorizontalPodAutoscalerStatus,
}

impl Working {
    /// Upstream's `setCondition`: the transition time moves only when the status does.
    fn set_condition(&mut self, type_: &str, status: &str, reason: &str, message: String) {
        let conditions = self.status.conditions.get_or_insert_with(Vec::new);
        let index = match conditions.iter().position(|c| c.type_ == type_) {
            Some(i) => i,
            None => {
                conditions.push(HorizontalPodAutoscalerCondition {
                    type_: type_.to_owned(),
                    ..Default::default()
                });
                conditions.len() - 1
            }
        };
        let condition = &mut conditions[index];
        if condition.status != status {
            condition.last_transition_time = Some(Time(jiff::Timestamp::now()));
        }
        condition.status = status.to_owned();
        condition.reason = Some(reason.to_owned());
        condition.message = Some(message);
    }

    /// Upstream's `setStatus`.
    fn set_status(
        &mut self,
        current: i32,
        desired: i32,
        metrics: Option<Vec<MetricStatus>>,
        rescaled: bool,
    ) {
        self.status = HorizontalPodAutoscalerStatus {
            // omitted when zero, as upstream's `omitempty`
            current_replicas: (current != 0).then_some(current),
            desired_replicas: desired,
            last_scale_time: if rescaled {
                Some(Time(jiff::Timestamp::now()))
            } else {
                self.status.last_scale_time.clone()
            },
            current_metrics: metrics.filter(|m| !m.is_empty()),
            conditions: self.status.conditions.take(),
            observed_generation: None,
        };
    }
}

/// Upstream's `schema.ParseGroupVersion`.
fn parse_group_version(api_version: &str) -> Result<(String, String), String> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => Ok((String::new(), String::new())),
        [version] => Ok((String::new(), (*version).to_owned())),
        [group, version] => Ok(((*group).to_owned(), (*version).to_owned())),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

fn api_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        e => e.to_string(),
    }
}

fn milli_quantity(value: i64) -> Quantity {
    Quantity(
        apimachinery::quantity::Quantity::new_milli(
            value,
            apimachinery::quantity::Format::DecimalSI,
        )
        .to_string(),
    )
}

/// Upstream's default metric (from the API's defaulting): 80% CPU utilization.
fn default_metrics() -> Vec<MetricSpec> {
    vec![MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(80),
                ..Default::default()
            },
        }),
        ..Default::default()
    }]
}

impl Controller {
    /// The API resource serving the target's kind (upstream's RESTMapper): the built-in
    /// table, else discovery (custom resources with a scale subresource).
    async fn target_resource(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<ApiResource, String> {
        if let Some(info) = apimachinery::resources::find_by_group_kind(group, kind) {
            return Ok(ApiResource {
                group: info.group.to_owned(),
                version: info.version.to_owned(),
                api_version: info.api_version(),
                kind: info.kind.to_owned(),
                plural: info.plural.to_owned(),
            });
        }
        let no_match = || format!("no matches for kind {kind:?} in group {group:?}");
        if version.is_empty() {
            return Err(no_match());
        }
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        kube::discovery::pinned_kind(&self.cx.reader, &gvk)
            .await
            .map(|(resource, _)| resource)
            .map_err(|_| no_match())
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (namespace, name) = split_key(key);
        let Some(hpa) = self.autoscalers.get(namespace, name) else {
            tracing::info!(hpa = %key, "horizontal pod autoscaler has been deleted");
            self.history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
            return Ok(());
        };
        let result = self.reconcile(hpa, key).await;
        if let Err(e) = &result {
            tracing::info!(hpa = %key, error = %e, "failed to reconcile horizontal pod autoscaler");
        }
        // as upstream's fixed-interval queue: looked at again a full period after this
        // look ended, failed or not
        self.queue.add_after(key.to_owned(), self.sync_period);
        Ok(())
    }

    fn event(
        &self,
        hpa: &HorizontalPodAutoscaler,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.cx
            .recorder
            .event(hpa, type_, reason, message, COMPONENT);
    }

    /// Upstream's `updateStatusIfNeeded`.
    async fn update_status_if_needed(
        &self,
        original: &HorizontalPodAutoscalerStatus,
        working: &Working,
    ) -> Result<(), Error> {
        if *original == working.status {
            return Ok(());
        }
        let mut updated = (*working.hpa).clone();
        updated.status = Some(working.status.clone());
        let namespace = updated.metadata.namespace.clone().unwrap_or_default();
        let name = updated.metadata.name.clone().unwrap_or_default();
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.cx.client.clone(), &namespace);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = api_error(e);
                self.event(
                    &working.hpa,
                    "Warning",
                    "FailedUpdateStatus",
                    message.clone(),
                );
                Err(Error::Reconcile(format!(
                    "failed to update status for {name}: {message}"
                )))
            }
        }
    }

    /// Writes the status, logging a failure (the reconcile's own error wins).
    async fn update_status_quietly(
        &self,
        original: &HorizontalPodAutoscalerStatus,
        working: &Working,
    ) {
        if let Err(e) = self.update_status_if_needed(original, working).await {
            tracing::info!(error = %e, "failed to update horizontal pod autoscaler status");
        }
    }

    /// Upstream's `reconcileAutoscaler`.
    async fn reconcile(&self, hpa: Arc<HorizontalPodAutoscaler>, key: &str) -> Result<(), Error> {
        let original = hpa.status.clone().unwrap_or_default();
        let mut working = Working {
            status: original.clone(),
            hpa: hpa.clone(),
        };
        let spec = hpa.spec.clone().unwrap_or_default();
        let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{}/{}", target.kind, namespace, target.name);

        let scale_failed = |working: &mut Working, message: String| {
            self.event(&hpa, "Warning", "FailedGetScale", message.clone());
            working.set_condition(
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!(
                    "the HPA controller was unable to get the target's current scale: {message}"
                ),
            );
        };
        let (group, version) =
            match parse_group_version(target.api_version.as_deref().unwrap_or_default()) {
                Ok(gv) => gv,
                Err(e) => {
                    scale_failed(&mut working, e.clone());
                    self.update_status_quietly(&original, &working).await;
                    return Err(Error::Reconcile(format!(
                        "invalid API version in scale target reference: {e}"
                    )));
                }
            };
        let resource = match self.target_resource(&group, &version, &target.kind).await {
            Ok(r) => r,
            Err(e) => {
                scale_failed(&mut working, e.clone());
                self.update_status_quietly(&original, &working).await;
                return Err(Error::Reconcile(format!(
                    "unable to determine resource for scale target reference: {e}"
                )));
            }
        };
        let scales: Api<DynamicObject> =
            Api::namespaced_with(self.cx.client.clone(), &namespace, &resource);
        let mut scale: Scale = match scales.get_scale(&target.name).await {
            Ok(s) => s,
            Err(e) => {
                let e = api_error(e);
                scale_failed(&mut working, e.clone());
                self.update_status_quietly(&original, &working).await;
                return Err(Error::Reconcile(format!(
                    "failed to query scale subresource for {reference}: {e}"
                )));
            }
        };
        working.set_condition(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".to_owned(),
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let now = Instant::now();
        self.with_history(key, |h| normalize::record_initial(h, current, now));

        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut desired = 0i32;
        let mut reason = String::new();
        let mut metric_statuses = None;
        let mut partial_error = None;
        let rescale;
        if current == 0 && min != 0 {
            rescale = false;
            working.set_condition(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".to_owned(),
            );
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".to_owned();
            desired = max;
            rescale = desired != current;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".to_owned();
            desired = min;
            rescale = desired != current;
        } else {
            let metric_specs = match spec.metrics.as_deref() {
                Some(m) if !m.is_empty() => m.to_vec(),
                _ => default_metrics(),
            };
            match self
                .replicas_for_metrics(&mut working, &namespace, &scale, &metric_specs, key)
                .await
            {
                Err((statuses, e)) => {
                    let previous_desired = working.status.desired_replicas;
                    working.set_status(current, previous_desired, statuses, false);
                    self.update_status_quietly(&original, &working).await;
                    self.event(&hpa, "Warning", "FailedComputeMetricsReplicas", e.clone());
                    return Err(Error::Reconcile(format!(
                        "failed to compute desired number of replicas based on listed metrics for {reference}: {e}"
                    )));
                }
                Ok((replicas, metric, statuses, partial)) => {
                    metric_statuses = Some(statuses);
                    partial_error = partial;
                    let mut rescale_metric = String::new();
                    if replicas > desired {
                        desired = replicas;
                        rescale_metric = metric;
                    }
                    if desired > current {
                        reason = format!("{rescale_metric} above target");
                    }
                    if desired < current {
                        reason = "All metrics below target".to_owned();
                    }
                    let normalized = self.with_history(key, |h| match &spec.behavior {
                        None => normalize::normalize(
                            h,
                            current,
                            desired,
                            min,
                            max,
                            self.downscale_window,
                            now,
                        ),
                        Some(behavior) => normalize::normalize_with_behaviors(
                            h,
                            behavior,
                            current,
                            desired,
                            min,
                            max,
                            self.downscale_window,
                            now,
                        ),
                    });
                    working.set_condition(
                        "AbleToScale",
                        "True",
                        normalized.able.0,
                        normalized.able.1.to_owned(),
                    );
                    let (limited, why, message) = normalized.limited;
                    working.set_condition(
                        "ScalingLimited",
                        if limited { "True" } else { "False" },
                        why,
                        message.to_owned(),
                    );
                    desired = normalized.replicas;
                    rescale = desired != current;
                }
            }
        }

        if rescale {
            let mut scale_spec = scale.spec.clone().unwrap_or_default();
            scale_spec.replicas = Some(desired);
            scale.spec = Some(scale_spec);
            if let Err(e) = scales
                .replace_scale(&target.name, &PostParams::default(), &scale)
                .await
            {
                let e = api_error(e);
                self.event(
                    &hpa,
                    "Warning",
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e}"),
                );
                working.set_condition(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                let previous_desired = working.status.desired_replicas;
                working.set_status(current, previous_desired, metric_statuses, false);
                self.update_status_quietly(&original, &working).await;
                return Err(Error::Reconcile(format!(
                    "failed to rescale {reference}: {e}"
                )));
            }
            working.set_condition(
                "AbleToScale",
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.event(
                &hpa,
                "Normal",
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            self.with_history(key, |h| {
                normalize::store_scale_event(
                    h,
                    spec.behavior.as_ref(),
                    self.downscale_window,
                    current,
                    desired,
                    now,
                )
            });
            tracing::info!(hpa = %key, current, desired, %reason, "successfully rescaled");
        } else {
            desired = current;
        }
        working.set_status(current, desired, metric_statuses, rescale);
        self.update_status_if_needed(&original, &working).await?;
        match partial_error {
            Some(e) => Err(Error::Reconcile(e)),
            None => Ok(()),
        }
    }

    fn with_history<T>(&self, key: &str, f: impl FnOnce(&mut History) -> T) -> T {
        let mut all = self.history.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(key.to_owned()).or_default())
    }

    /// Upstream's `validateAndParseSelector`.
    fn selector(
        &self,
        working: &mut Working,
        namespace: &str,
        key: &str,
        text: &str,
    ) -> Result<Selector, String> {
        if text.is_empty() {
            let message = "selector is required".to_owned();
            self.event(&working.hpa, "Warning", "SelectorRequired", message.clone());
            working.set_condition(
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector".to_owned(),
            );
            return Err(message);
        }
        let selector = match Selector::parse(text) {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                self.event(&working.hpa, "Warning", "InvalidSelector", message.clone());
                working.set_condition("ScalingActive", "False", "InvalidSelector", message.clone());
                return Err(message);
            }
        };
        let claimants: BTreeSet<(String, String)> = {
            let mut selectors = self.selectors.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = selectors.get_mut(key) {
                *entry = Some(selector.clone());
            }
            let mut claimants = BTreeSet::new();
            for pod in self.selected_pods(namespace, &selector) {
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                for (other, s) in selectors.iter() {
                    let (other_namespace, other_name) = split_key(other);
                    if other_namespace == namespace
                        && s.as_ref().is_some_and(|s| s.matches(&labels))
                    {
                        claimants.insert((other_name.to_owned(), other_namespace.to_owned()));
                    }
                }
            }
            claimants
        };
        if claimants.len() > 1 {
            let list: Vec<String> = claimants
                .iter()
                .map(|(name, namespace)| format!("{namespace}/{name}"))
                .collect();
            let message = format!(
                "pods by selector {text} are controlled by multiple HPAs: [{}]",
                list.join(" ")
            );
            self.event(
                &working.hpa,
                "Warning",
                "AmbiguousSelector",
                message.clone(),
            );
            working.set_condition(
                "ScalingActive",
                "False",
                "AmbiguousSelector",
                message.clone(),
            );
            return Err(message);
        }
        Ok(selector)
    }

    fn selected_pods(&self, namespace: &str, selector: &Selector) -> Vec<Arc<Pod>> {
        self.pods
            .list_namespace(namespace)
            .into_iter()
            .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
            .collect()
    }

    /// Upstream's `computeReplicasForMetrics`: the highest proposal; an error (with the
    /// statuses so far) when every metric failed, or some did and the rest would
    /// scale down. A partial failure otherwise comes back beside the count.
    #[allow(clippy::type_complexity)]
    async fn replicas_for_metrics(
        &self,
        working: &mut Working,
        namespace: &str,
        scale: &Scale,
        specs: &[MetricSpec],
        key: &str,
    ) -> Result<(i32, String, Vec<MetricStatus>, Option<String>), (Option<Vec<MetricStatus>>, String)>
    {
        let selector_text = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let selector = self
            .selector(working, namespace, key, &selector_text)
            .map_err(|e| (None, e))?;
        let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut statuses = Vec::with_capacity(specs.len());
        let mut replicas = 0i32;
        let mut metric = String::new();
        let mut invalid = 0usize;
        let mut first_failure: Option<MetricFailure> = None;
        for spec in specs {
            match self
                .replicas_for_metric(spec, namespace, spec_replicas, &selector_text, &selector)
                .await
            {
                Ok(p) => {
                    statuses.push(p.status);
                    if replicas == 0 || p.replicas > replicas {
                        replicas = p.replicas;
                        metric = p.metric;
                    }
                }
                Err(failure) => {
                    // as upstream: the failed metric's slot stays an empty status
                    statuses.push(MetricStatus::default());
                    self.event(
                        &working.hpa,
                        "Warning",
                        failure.reason,
                        failure.error.clone(),
                    );
                    invalid += 1;
                    if first_failure.is_none() {
                        first_failure = Some(failure);
                    }
                }
            }
        }
        let error = first_failure.as_ref().map(|f| {
            format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                specs.len(),
                wrapped(f, specs, &statuses)
            )
        });
        if let Some(failure) = &first_failure {
            if invalid >= specs.len() || replicas < spec_replicas {
                working.set_condition(
                    "ScalingActive",
                    "False",
                    failure.reason,
                    format!(
                        "the HPA was unable to compute the replica count: {}",
                        failure.error
                    ),
                );
                return Err((Some(statuses), error.unwrap_or_default()));
            }
        }
        working.set_condition(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Ok((replicas, metric, statuses, error))
    }

    /// Upstream's `computeReplicasForMetric` for one metric.
    async fn replicas_for_metric(
        &self,
        spec: &MetricSpec,
        namespace: &str,
        spec_replicas: i32,
        selector_text: &str,
        selector: &Selector,
    ) -> Result<Proposal, MetricFailure> {
        match spec.type_.as_str() {
            "Resource" => {
                let source = spec.resource.as_ref().ok_or_else(|| MetricFailure {
                    reason: "FailedGetResourceMetric",
                    error: "invalid resource metric source: the resource field is not set".into(),
                })?;
                let (replicas, current, metric) = self
                    .resource_proposal(
                        namespace,
                        spec_replicas,
                        &source.target,
                        &source.name,
                        "",
                        selector_text,
                        selector,
                    )
                    .await
                    .map_err(|error| MetricFailure {
                        reason: "FailedGetResourceMetric",
                        error,
                    })?;
                Ok(Proposal {
                    replicas,
                    metric,
                    status: MetricStatus {
                        type_: "Resource".to_owned(),
                        resource: Some(ResourceMetricStatus {
                            name: source.name.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                })
            }
            "ContainerResource" => {
                let source = spec.container_resource.as_ref().ok_or_else(|| MetricFailure {
                    reason: "FailedGetContainerResourceMetric",
                    error: "invalid container resource metric source: the containerResource field is not set".into(),
                })?;
                let (replicas, current, metric) = self
                    .resource_proposal(
                        namespace,
                        spec_replicas,
                        &source.target,
                        &source.name,
                        &source.container,
                        selector_text,
                        selector,
                    )
                    .await
                    .map_err(|error| MetricFailure {
                        reason: "FailedGetContainerResourceMetric",
                        error,
                    })?;
                Ok(Proposal {
                    replicas,
                    metric,
                    status: MetricStatus {
                        type_: "ContainerResource".to_owned(),
                        container_resource: Some(ContainerResourceMetricStatus {
                            name: source.name.clone(),
                            container: source.container.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                })
            }
            // custom and external metrics need their adapters' APIs
            "Pods" => Err(MetricFailure {
                reason: "FailedGetPodsMetric",
                error: format!(
                    "unable to get metric {}: the custom metrics API is not supported",
                    spec.pods
                        .as_ref()
                        .map(|p| p.metric.name.as_str())
                        .unwrap_or_default()
                ),
            }),
            "Object" => Err(MetricFailure {
                reason: "FailedGetObjectMetric",
                error: format!(
                    "unable to get metric {}: the custom metrics API is not supported",
                    spec.object
                        .as_ref()
                        .map(|o| o.metric.name.as_str())
                        .unwrap_or_default()
                ),
            }),
            "External" => Err(MetricFailure {
                reason: "FailedGetExternalMetric",
                error: format!(
                    "unable to get external metric {}: the external metrics API is not supported",
                    spec.external
                        .as_ref()
                        .map(|e| e.metric.name.as_str())
                        .unwrap_or_default()
                ),
            }),
            other => Err(MetricFailure {
                reason: "InvalidMetricSourceType",
                error: format!("unknown metric source type {other:?}"),
            }),
        }
    }

    /// Upstream's `computeStatusForResourceMetricGeneric`.
    #[allow(clippy::too_many_arguments)]
    async fn resource_proposal(
        &self,
        namespace: &str,
        current: i32,
        target: &MetricTarget,
        resource: &str,
        container: &str,
        selector_text: &str,
        selector: &Selector,
    ) -> Result<(i32, MetricValueStatus, String), String> {
        let fetch = || async {
            metrics::resource_metric(
                &self.cx.client,
                resource,
                namespace,
                selector_text,
                container,
            )
            .await
            .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"))
        };
        let pods = self.selected_pods(namespace, selector);
        let now = jiff::Timestamp::now();
        if let Some(average) = &target.average_value {
            let target_usage = apimachinery::quantity::Quantity::parse(&average.0)
                .map(|q| q.milli_value())
                .map_err(|e| {
                    format!("failed to get {resource} usage: invalid average value: {e}")
                })?;
            let result = async {
                let (samples, _) = fetch().await?;
                self.calculator
                    .plain_replicas(current, target_usage, resource, &pods, samples, now)
            }
            .await
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            return Ok((
                result.0,
                MetricValueStatus {
                    average_value: Some(milli_quantity(result.1)),
                    ..Default::default()
                },
                format!("{resource} resource"),
            ));
        }
        let Some(target_utilization) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let u = async {
            let (samples, _) = fetch().await?;
            tracing::debug!(?samples, pods = pods.len(), "resource samples");
            self.calculator.resource_replicas(
                current,
                target_utilization,
                resource,
                container,
                &pods,
                samples,
                now,
            )
        }
        .await
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let metric = if container.is_empty() {
            format!("{resource} resource utilization (percentage of request)")
        } else {
            format!("{resource} container resource utilization (percentage of request)")
        };
        Ok((
            u.replicas,
            MetricValueStatus {
                average_utilization: Some(u.utilization),
                average_value: Some(milli_quantity(u.raw)),
                value: None,
            },
            metric,
        ))
    }
}

/// The first failure as upstream's `computeReplicasForMetric` wraps it.
fn wrapped(failure: &MetricFailure, specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    // the failed metric is the first whose slot stayed empty
    let spec = statuses
        .iter()
        .position(|s| s.type_.is_empty())
        .and_then(|i| specs.get(i));
    match spec {
        Some(s) if s.type_ == "Resource" => format!(
            "failed to get {} resource metric value: {}",
            s.resource
                .as_ref()
                .map(|r| r.name.as_str())
                .unwrap_or_default(),
            failure.error
        ),
        Some(s) if s.type_ == "ContainerResource" => format!(
            "failed to get {} container metric value: {}",
            s.container_resource
                .as_ref()
                .map(|r| r.container.as_str())
                .unwrap_or_default(),
            failure.error
        ),
        Some(s) if s.type_ == "Pods" => {
            format!("failed to get pods metric value: {}", failure.error)
        }
        Some(s) if s.type_ == "Object" => {
            format!("failed to get object metric value: {}", failure.error)
        }
        Some(s) if s.type_ == "External" => format!(
            "failed to get {} external metric value: {}",
            s.external
                .as_ref()
                .map(|e| e.metric.name.as_str())
                .unwrap_or_default(),
            failure.error
        ),
        _ => failure.error.clone(),
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let queue = WorkQueue::<String>::new();
    let settings = cx.settings.clone();
    let controller = Arc::new(Controller {
        queue: queue.clone(),
        autoscalers: cx.informers.informer::<HorizontalPodAutoscaler>(),
        pods: cx.informers.informer::<Pod>(),
        calculator: Calculator {
            tolerance: settings.horizontal_pod_autoscaler_tolerance,
            cpu_initialization_period: settings.horizontal_pod_autoscaler_cpu_initialization_period,
            delay_of_initial_readiness_status: settings
                .horizontal_pod_autoscaler_initial_readiness_delay,
        },
        sync_period: settings.horizontal_pod_autoscaler_sync_period,
        downscale_window: settings.horizontal_pod_autoscaler_downscale_stabilization,
        history: Mutex::default(),
        selectors: Mutex::default(),
        cx,
    });
    let weak = Arc::downgrade(&controller);
    controller.autoscalers.add_handler(move |change| {
        let Some(c) = weak.upgrade() else {
            return;
        };
        match change {
            Change::Added(h) | Change::Updated { new: h, .. } => {
                let key = key_of(&***h);
                // as upstream's enqueueHPA: registered with a selector of nothing until
                // its target's selector is known
                c.selectors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key.clone())
                    .or_insert(None);
                c.queue.add_after(key, c.sync_period);
            }
            Change::Deleted(h) => {
                let key = key_of(&***h);
                c.selectors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                c.queue.forget(&key);
                // the sync finds it gone and drops its history
                c.queue.add(key);
            }
        }
    });
    let workers = settings.concurrent_horizontal_pod_autoscaler_syncs;
    Box::pin(async move {
        controller.autoscalers.wait_synced().await;
        controller.pods.wait_synced().await;
        let c = controller.clone();
        queue
            .run(workers, None, NAME, move |key: String| {
                let c = c.clone();
                async move { c.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions_parse_as_upstream() {
        assert_eq!(
            parse_group_version("apps/v1").unwrap(),
            ("apps".to_owned(), "v1".to_owned())
        );
        assert_eq!(
            parse_group_version("v1").unwrap(),
            (String::new(), "v1".to_owned())
        );
        assert_eq!(
            parse_group_version("a/b/c").unwrap_err(),
            "unexpected GroupVersion string: a/b/c"
        );
    }

    #[test]
    fn conditions_move_their_transition_time_only_on_a_status_change() {
        let mut w = Working {
            hpa: Arc::new(HorizontalPodAutoscaler::default()),
            status: HorizontalPodAutoscalerStatus::default(),
        };
        w.set_condition("AbleToScale", "True", "SucceededGetScale", "m".into());
        let first = w.status.conditions.as_ref().unwrap()[0].clone();
        assert!(first.last_transition_time.is_some());
        let old = Time("2020-01-01T00:00:00Z".parse().unwrap());
        w.status.conditions.as_mut().unwrap()[0].last_transition_time = Some(old.clone());
        w.set_condition("AbleToScale", "True", "ReadyForNewScale", "n".into());
        let c = &w.status.conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time, Some(old.clone()));
        assert_eq!(c.reason.as_deref(), Some("ReadyForNewScale"));
        w.set_condition("AbleToScale", "False", "FailedGetScale", "x".into());
        assert_ne!(
            w.status.conditions.as_ref().unwrap()[0].last_transition_time,
            Some(old)
        );
        w.set_condition("ScalingActive", "True", "ValidMetricFound", "y".into());
        assert_eq!(w.status.conditions.as_ref().unwrap().len(), 2);
        w.set_status(0, 3, Some(vec![]), false);
        assert_eq!(w.status.current_replicas, None);
        assert_eq!(w.status.current_metrics, None);
        assert_eq!(w.status.conditions.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(2000).0, "2");
    }
}
