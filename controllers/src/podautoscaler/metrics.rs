//! The resource metrics client (upstream's `resourceMetricsClient`): pod samples from
//! `metrics.k8s.io/v1beta1` PodMetrics, as metrics-server serves them, summed over a
//! pod's containers or taken from one container.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use super::replica_calculator::{PodMetric, PodMetricsInfo};

/// The window of a sample that does not say (upstream reads the zero duration).
const DEFAULT_WINDOW: Duration = Duration::ZERO;

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".to_owned(),
        version: "v1beta1".to_owned(),
        api_version: "metrics.k8s.io/v1beta1".to_owned(),
        kind: "PodMetrics".to_owned(),
        plural: "pods".to_owned(),
    }
}

/// Upstream's `GetResourceMetric`: the samples of `resource` for the pods `selector`
/// picks in `namespace`, and the first sample's time.
pub async fn resource_metric(
    client: &kube::Client,
    resource: &str,
    namespace: &str,
    selector: &str,
    container: &str,
) -> Result<(PodMetricsInfo, jiff::Timestamp), String> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &pod_metrics_resource());
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| {
            let cause = match e {
                kube::Error::Api(s) => s.message,
                e => e.to_string(),
            };
            format!("unable to fetch metrics from resource metrics API: {cause}")
        })?;
    let items: Vec<Value> = list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    samples(&items, resource, container)
}

/// The samples of PodMetrics objects (upstream's `getPodMetrics` and
/// `getContainerMetrics`).
pub fn samples(
    items: &[Value],
    resource: &str,
    container: &str,
) -> Result<(PodMetricsInfo, jiff::Timestamp), String> {
    let Some(first) = items.first() else {
        return Err("no metrics returned from resource metrics API".into());
    };
    let mut out = PodMetricsInfo::new();
    for item in items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let timestamp = timestamp_of(item);
        let window = item
            .get("window")
            .and_then(Value::as_str)
            .and_then(component_base::parse_duration)
            .unwrap_or(DEFAULT_WINDOW);
        let containers = item
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let usage_of = |c: &Value| {
            c.pointer(&format!("/usage/{resource}"))
                .and_then(Value::as_str)
                .and_then(|q| apimachinery::quantity::Quantity::parse(q).ok())
                .map(|q| q.milli_value())
        };
        let value = if container.is_empty() {
            // a pod with no containers or one without the resource has no sample
            let values: Option<Vec<i64>> = containers.iter().map(usage_of).collect();
            match values {
                Some(v) if !v.is_empty() => {
                    Some(v.into_iter().fold(0i64, |sum, x| sum.saturating_add(x)))
                }
                _ => None,
            }
        } else {
            let Some(c) = containers
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
            else {
                // as upstream's getContainerMetrics: that pod counts as missing
                tracing::debug!(
                    pod = name,
                    container,
                    "container not present in the pod's metrics"
                );
                continue;
            };
            usage_of(c)
        };
        if let Some(value) = value {
            out.insert(
                name.to_owned(),
                PodMetric {
                    value,
                    timestamp,
                    window,
                },
            );
        }
    }
    Ok((out, timestamp_of(first)))
}

fn timestamp_of(item: &Value) -> jiff::Timestamp {
    item.get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(name: &str, containers: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"},
            "timestamp": "2025-01-01T00:00:00Z", "window": "30s", "containers": containers})
    }

    #[test]
    fn sums_containers_and_skips_incomplete_pods() {
        let items = [
            item(
                "a",
                json!([{"name": "x", "usage": {"cpu": "250m", "memory": "10Mi"}},
                    {"name": "y", "usage": {"cpu": "1"}}]),
            ),
            item("b", json!([{"name": "x", "usage": {"memory": "1Mi"}}])),
            item("c", json!([])),
        ];
        let (m, at) = samples(&items, "cpu", "").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"].value, 1250);
        assert_eq!(m["a"].window, Duration::from_secs(30));
        assert_eq!(
            at,
            "2025-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let (m, _) = samples(&items[..1], "cpu", "y").unwrap();
        assert_eq!(m["a"].value, 1000);
        // pods without the container count as missing, as upstream's getContainerMetrics
        let (m, _) = samples(&items, "cpu", "y").unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            samples(&[], "cpu", "").unwrap_err(),
            "no metrics returned from resource metrics API"
        );
    }
}
