//! Upstream's `ReplicaCalculator`: from the per-pod metrics and the pods a target's
//! selector picks, the replica count that brings the average back to the target.
//!
//! Pods being deleted or failed are ignored; pending pods, and (for CPU) pods not yet
//! ready or still inside their CPU initialization period with a sample from before
//! they became ready, count as unready; running pods without a sample are missing.
//! When the plain ratio would scale, missing pods are assumed to use 100% of their
//! request (on a scale-down) or nothing (on a scale-up), and unready pods nothing on a
//! scale-up; if that flips the direction or lands within the tolerance, the count
//! stays.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// One pod's sample (upstream's `PodMetric`), in milli-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodMetric {
    /// The usage.
    pub value: i64,
    /// When it was measured.
    pub timestamp: jiff::Timestamp,
    /// Over how long.
    pub window: Duration,
}

/// Samples by pod name (upstream's `PodMetricsInfo`).
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// The calculator's settings (the controller manager's flags).
#[derive(Debug, Clone, Copy)]
pub struct Calculator {
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub delay_of_initial_readiness_status: Duration,
}

/// A resource-utilization proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utilization {
    /// The proposed replica count.
    pub replicas: i32,
    /// The current average utilization (percent of requests).
    pub utilization: i32,
    /// The current average usage (milli-units).
    pub raw: i64,
}

fn after(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// The pods sorted as upstream's `groupPods`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Pods whose samples count.
    pub ready: usize,
    /// Pending or not yet ready pods.
    pub unready: BTreeSet<String>,
    /// Running pods without a sample.
    pub missing: BTreeSet<String>,
    /// Deleted or failed pods.
    pub ignored: BTreeSet<String>,
}

impl Calculator {
    /// Upstream's `groupPods`.
    pub fn group_pods(
        &self,
        pods: &[Arc<Pod>],
        metrics: &PodMetricsInfo,
        resource: &str,
        now: jiff::Timestamp,
    ) -> Groups {
        let mut groups = Groups::default();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
                groups.ignored.insert(name);
                continue;
            }
            if phase == "Pending" {
                groups.unready.insert(name);
                continue;
            }
            let Some(metric) = metrics.get(&name) else {
                groups.missing.insert(name);
                continue;
            };
            if resource == "cpu" {
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
                let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
                let unready = match (ready, start) {
                    (Some(ready), Some(start)) => {
                        let transition = ready
                            .last_transition_time
                            .as_ref()
                            .map_or(jiff::Timestamp::MIN, |t| t.0);
                        if after(start, self.cpu_initialization_period) > now {
                            // still initializing: skip a sample from before it was ready
                            // for a whole window
                            ready.status == "False"
                                || metric.timestamp < after(transition, metric.window)
                        } else {
                            // unready and never been ready since it started
                            ready.status == "False"
                                && after(start, self.delay_of_initial_readiness_status) > transition
                        }
                    }
                    _ => true,
                };
                if unready {
                    groups.unready.insert(name);
                    continue;
                }
            }
            groups.ready += 1;
        }
        groups
    }

    /// Upstream's `isWithin`: a range check, so a ratio of exactly 1 + tolerance (55%
    /// against 50%) holds in floating point as it does there.
    fn within_tolerance(&self, ratio: f64) -> bool {
        1.0 - self.tolerance <= ratio && ratio <= 1.0 + self.tolerance
    }

    /// Upstream's `GetResourceReplicas` after the metrics were fetched: a target
    /// utilization (percent of requests) of `resource`, optionally of one container.
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current: i32,
        target_utilization: i32,
        resource: &str,
        container: &str,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: jiff::Timestamp,
    ) -> Result<Utilization, String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let groups = self.group_pods(pods, &metrics, resource, now);
        for name in groups.ignored.iter().chain(&groups.unready) {
            metrics.remove(name);
        }
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let requests = pod_requests(pods, container, resource)?;
        let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;
        let result = |replicas| Utilization {
            replicas,
            utilization,
            raw,
        };
        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok(result(current));
            }
            return Ok(result(ceil_replicas(ratio, groups.ready)));
        }
        if !groups.missing.is_empty() {
            if ratio < 1.0 {
                // on a scale-down, missing pods use their whole request (or the target
                // when it is above 100%)
                let fallback = i64::from(target_utilization.max(100));
                for name in &groups.missing {
                    let request = requests.get(name).copied().unwrap_or(0);
                    metrics.insert(name.clone(), sample(request.saturating_mul(fallback) / 100));
                }
            } else if ratio > 1.0 {
                for name in &groups.missing {
                    metrics.insert(name.clone(), sample(0));
                }
            }
        }
        if scale_up_with_unready {
            for name in &groups.unready {
                metrics.insert(name.clone(), sample(0));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
        Ok(result(self.rebalanced(
            current,
            ratio,
            new_ratio,
            metrics.len(),
        )))
    }

    /// Upstream's `calcPlainMetricReplicas` (an average-value target, milli-units).
    pub fn plain_replicas(
        &self,
        current: i32,
        target_usage: i64,
        resource: &str,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: jiff::Timestamp,
    ) -> Result<(i32, i64), String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let groups = self.group_pods(pods, &metrics, resource, now);
        for name in groups.ignored.iter().chain(&groups.unready) {
            metrics.remove(name);
        }
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, usage) = usage_ratio(&metrics, target_usage);
        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok((current, usage));
            }
            return Ok((ceil_replicas(ratio, groups.ready), usage));
        }
        if !groups.missing.is_empty() {
            // on a scale-down missing pods use exactly the target, on a scale-up nothing
            let assumed = if ratio < 1.0 {
                Some(target_usage)
            } else if ratio > 1.0 {
                Some(0)
            } else {
                None
            };
            if let Some(value) = assumed {
                for name in &groups.missing {
                    metrics.insert(name.clone(), sample(value));
                }
            }
        }
        if scale_up_with_unready {
            for name in &groups.unready {
                metrics.insert(name.clone(), sample(0));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target_usage);
        Ok((
            self.rebalanced(current, ratio, new_ratio, metrics.len()),
            usage,
        ))
    }

    /// The count after missing and unready pods were given assumed samples: unchanged
    /// when within tolerance or when the assumption flips the direction.
    fn rebalanced(&self, current: i32, ratio: f64, new_ratio: f64, counted: usize) -> i32 {
        if self.within_tolerance(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return current;
        }
        let replicas = ceil_replicas(new_ratio, counted);
        if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
            return current;
        }
        replicas
    }
}

fn sample(value: i64) -> PodMetric {
    PodMetric {
        value,
        timestamp: jiff::Timestamp::UNIX_EPOCH,
        window: Duration::ZERO,
    }
}

/// `ceil(ratio × pods)`, saturating at the bounds of an i32.
fn ceil_replicas(ratio: f64, pods: usize) -> i32 {
    (ratio * pods as f64).ceil() as i32
}

/// Each pod's request of `resource` (milli-units): the sum over its containers and
/// restartable init containers, or the one container named (upstream's
/// `calculatePodRequests`).
pub fn pod_requests(
    pods: &[Arc<Pod>],
    container: &str,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(spec) = pod.spec.as_ref() else {
            requests.insert(name, 0);
            continue;
        };
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        for c in spec.containers.iter().chain(sidecars) {
            if !container.is_empty() && container != c.name {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok());
            let Some(request) = request else {
                return Err(format!(
                    "missing request for {resource} in container {} of Pod {name}",
                    c.name
                ));
            };
            sum = sum.saturating_add(request.milli_value());
        }
        requests.insert(name, sum);
    }
    Ok(requests)
}

/// Upstream's `GetResourceUtilizationRatio`: the ratio of the current utilization
/// (integer percent of requests) to the target, the utilization, and the average raw
/// usage.
pub fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let mut usage = 0i64;
    let mut requested = 0i64;
    let mut entries = 0i64;
    for (name, metric) in metrics {
        // metrics for pods without requests are extraneous
        let Some(request) = requests.get(name) else {
            continue;
        };
        usage = usage.saturating_add(metric.value);
        requested = requested.saturating_add(*request);
        entries += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(usage.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        usage.checked_div(entries).unwrap_or(0),
    ))
}

/// Upstream's `GetMetricUsageRatio`: the average usage over the target, and the average.
pub fn usage_ratio(metrics: &PodMetricsInfo, target_usage: i64) -> (f64, i64) {
    let total = metrics
        .values()
        .fold(0i64, |sum, m| sum.saturating_add(m.value));
    let average = total
        .checked_div(i64::try_from(metrics.len()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    (average as f64 / target_usage as f64, average)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2025-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn calc() -> Calculator {
        // upstream's test defaults
        Calculator {
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(120),
            delay_of_initial_readiness_status: Duration::from_secs(10),
        }
    }

    /// A pod requesting `request` CPU (milli), started and ready long ago unless
    /// told otherwise.
    fn pod(name: &str, request: i64, phase: &str, ready: &str, started_ago: i64) -> Arc<Pod> {
        let start = now() - jiff::SignedDuration::from_secs(started_ago);
        let transition = start + jiff::SignedDuration::from_secs(5);
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": format!("{request}m")}}}]},
                "status": {"phase": phase, "startTime": start.to_string(),
                    "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": transition.to_string()}]}
            }))
            .unwrap(),
        )
    }

    fn metrics(values: &[(&str, i64)]) -> PodMetricsInfo {
        values
            .iter()
            .map(|(n, v)| {
                (
                    (*n).to_owned(),
                    PodMetric {
                        value: *v,
                        timestamp: now() - jiff::SignedDuration::from_secs(10),
                        window: Duration::from_secs(30),
                    },
                )
            })
            .collect()
    }

    fn running(names: &[&str]) -> Vec<Arc<Pod>> {
        names
            .iter()
            .map(|n| pod(n, 1000, "Running", "True", 3600))
            .collect()
    }

    // upstream TestReplicaCalcScaleUp: 3 pods at 300/500/700 of 1000m, target 30%
    #[test]
    fn scales_up_to_bring_utilization_to_target() {
        let pods = running(&["a", "b", "c"]);
        let u = calc()
            .resource_replicas(
                3,
                30,
                "cpu",
                "",
                &pods,
                metrics(&[("a", 300), ("b", 500), ("c", 700)]),
                now(),
            )
            .unwrap();
        assert_eq!(
            u,
            Utilization {
                replicas: 5,
                utilization: 50,
                raw: 500
            }
        );
    }

    // upstream TestReplicaCalcScaleDown: 5 pods, target 50%, usage 100..500 of 1000m
    #[test]
    fn scales_down() {
        let pods = running(&["a", "b", "c", "d", "e"]);
        let m = metrics(&[("a", 100), ("b", 300), ("c", 500), ("d", 250), ("e", 250)]);
        let u = calc()
            .resource_replicas(5, 50, "cpu", "", &pods, m, now())
            .unwrap();
        assert_eq!((u.replicas, u.utilization), (3, 28));
    }

    // upstream TestReplicaCalcTolerance
    #[test]
    fn stays_within_tolerance() {
        let pods = running(&["a", "b", "c"]);
        let m = metrics(&[("a", 1010), ("b", 1030), ("c", 1020)]);
        let u = calc()
            .resource_replicas(3, 100, "cpu", "", &pods, m, now())
            .unwrap();
        assert_eq!(u.replicas, 3);
    }

    // 55% against a 50% target is a ratio of exactly 1.1: within upstream's range check
    #[test]
    fn the_tolerance_boundary_holds() {
        let pods = running(&["a", "b"]);
        let m = metrics(&[("a", 550), ("b", 550)]);
        let u = calc()
            .resource_replicas(2, 50, "cpu", "", &pods, m, now())
            .unwrap();
        assert_eq!(u.replicas, 2);
    }

    // upstream TestReplicaCalcScaleUpUnreadyLessScale: an unready pod counts as 0%
    #[test]
    fn unready_pods_count_as_idle_on_scale_up() {
        let mut pods = running(&["a", "b"]);
        pods.push(pod("c", 1000, "Running", "False", 3600));
        let m = metrics(&[("a", 300), ("b", 500), ("c", 700)]);
        let u = calc()
            .resource_replicas(3, 30, "cpu", "", &pods, m, now())
            .unwrap();
        // (300+500+0)/3000 = 26% < 30%: the direction flips, so no change
        assert_eq!(u.replicas, 3);
        assert_eq!(u.utilization, 40);
        // with higher usage of the ready ones it still scales
        let m = metrics(&[("a", 900), ("b", 900), ("c", 700)]);
        let u = calc()
            .resource_replicas(3, 30, "cpu", "", &pods, m, now())
            .unwrap();
        // (900+900+0)/3000 = 60% → ceil(2 × 3) = 6
        assert_eq!(u.replicas, 6);
    }

    // upstream TestReplicaCalcScaleUpPending / ScaleUpHotCpuNoScale
    #[test]
    fn pending_and_initializing_pods_are_unready() {
        let c = calc();
        let pods = vec![
            pod("a", 1000, "Running", "True", 3600),
            pod("p", 1000, "Pending", "False", 3600),
            // started 20 s ago and became ready 5 s after: its sample of 10 s ago
            // (window 30 s) overlaps the readiness transition
            pod("i", 1000, "Running", "True", 20),
            pod("d", 1000, "Failed", "False", 3600),
        ];
        let m = metrics(&[("a", 500), ("i", 900)]);
        let g = c.group_pods(&pods, &m, "cpu", now());
        assert_eq!(g.ready, 1);
        assert_eq!(
            g.unready,
            ["i", "p"].iter().map(|s| (*s).to_owned()).collect()
        );
        assert_eq!(g.ignored.len(), 1);
        // memory has no initialization rule
        assert_eq!(c.group_pods(&pods, &m, "memory", now()).ready, 2);
    }

    // upstream TestReplicaCalcMissingMetricsNoChangeEq / ScaleDownMissing
    #[test]
    fn missing_pods_count_as_full_on_scale_down() {
        let pods = running(&["a", "b", "c", "d"]);
        let m = metrics(&[("a", 100), ("b", 100), ("c", 100)]);
        let u = calc()
            .resource_replicas(4, 50, "cpu", "", &pods, m, now())
            .unwrap();
        // (100×3 + 1000)/4000 = 32% of 50% → ceil(0.64 × 4) = 3
        assert_eq!(u.replicas, 3);
        assert_eq!(u.utilization, 10);
    }

    #[test]
    fn missing_request_is_an_error() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "startTime": "2025-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"}]}
        }))
        .unwrap();
        let err = calc()
            .resource_replicas(
                1,
                50,
                "cpu",
                "",
                &[Arc::new(p)],
                metrics(&[("x", 10)]),
                now(),
            )
            .unwrap_err();
        assert_eq!(err, "missing request for cpu in container web of Pod x");
    }

    #[test]
    fn no_pods_or_no_metrics_are_errors() {
        let err = calc()
            .resource_replicas(1, 50, "cpu", "", &[], PodMetricsInfo::new(), now())
            .unwrap_err();
        assert_eq!(
            err,
            "no pods returned by selector while calculating replica count"
        );
        let pods = vec![pod("p", 1000, "Pending", "False", 10)];
        let err = calc()
            .resource_replicas(1, 50, "cpu", "", &pods, metrics(&[("p", 1)]), now())
            .unwrap_err();
        assert_eq!(
            err,
            "did not receive metrics for targeted pods (pods might be unready)"
        );
    }

    // upstream TestReplicaCalcScaleUpCMRaw-style average value targets
    #[test]
    fn average_value_targets() {
        let pods = running(&["a", "b", "c"]);
        let m = metrics(&[("a", 300), ("b", 500), ("c", 700)]);
        let (replicas, usage) = calc()
            .plain_replicas(3, 300, "cpu", &pods, m, now())
            .unwrap();
        assert_eq!((replicas, usage), (5, 500));
        let m = metrics(&[("a", 300), ("b", 300), ("c", 300)]);
        assert_eq!(
            calc()
                .plain_replicas(3, 300, "cpu", &pods, m, now())
                .unwrap(),
            (3, 300)
        );
    }

    #[test]
    fn container_requests_and_sidecars() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "init", "resources": {}}
                ],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
                ]
            }
        }))
        .unwrap();
        let pods = [Arc::new(p)];
        assert_eq!(pod_requests(&pods, "", "cpu").unwrap()["x"], 1350);
        assert_eq!(pod_requests(&pods, "b", "cpu").unwrap()["x"], 250);
    }
}
