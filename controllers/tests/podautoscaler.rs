//! The horizontal pod autoscaler against a real apiserver. The apiserver does not
//! serve `metrics.k8s.io` itself, so the tests stand in for metrics-server with a
//! CustomResourceDefinition of the same group, version and resource (`pods`, kind
//! `PodMetrics`) and write the samples themselves.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
};
use k8s_openapi::api::core::v1::{Event, Pod, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use support::{Cluster, Spec, cluster, wait_for};

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

/// A cluster with one schedulable node, the deployment, replicaset and autoscaler
/// controllers, and autoscalers looked at every second.
async fn start() -> Cluster {
    let mut spec = Spec::new(&["deployment", "replicaset", "horizontalpodautoscaling"]);
    spec.settings.horizontal_pod_autoscaler_sync_period = Duration::from_secs(1);
    let c = cluster(spec).await;
    let nodes = c.add_nodes("node", 1).await;
    c.untaint(&nodes[0]).await;
    wait_for("the default service account", || {
        let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "default");
        async move { accounts.get_opt("default").await.unwrap() }
    })
    .await;
    c
}

/// Serves `metrics.k8s.io/v1beta1` PodMetrics as a custom resource. PodMetrics keep
/// their data at the top level (`timestamp`, `window`, `containers`), so the schema
/// keeps unknown fields at the root.
async fn serve_pod_metrics(c: &Cluster) {
    let crds: Api<DynamicObject> = Api::all_with(
        c.admin.clone(),
        &ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        },
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pods.metrics.k8s.io"},
        "spec": {
            "group": "metrics.k8s.io",
            "scope": "Namespaced",
            "names": {"plural": "pods", "singular": "podmetrics", "kind": "PodMetrics", "listKind": "PodMetricsList"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    wait_for("PodMetrics to be served", || {
        let api: Api<DynamicObject> =
            Api::namespaced_with(c.admin.clone(), "default", &pod_metrics_resource());
        async move { api.list(&ListParams::default()).await.ok() }
    })
    .await;
}

/// Writes (or rewrites) each running pod's sample: `cpu` used by its one container,
/// measured now. The labels are the pod's, as metrics-server's.
async fn set_usage(c: &Cluster, pods: &[Pod], cpu: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(c.admin.clone(), "default", &pod_metrics_resource());
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap();
        let mut sample: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": name, "labels": pod.metadata.labels},
            "timestamp": jiff::Timestamp::now().to_string(),
            "window": "0s",
            "containers": [{"name": "c", "usage": {"cpu": cpu, "memory": "10Mi"}}]
        }))
        .unwrap();
        match api.get_opt(&name).await.unwrap() {
            Some(existing) => {
                sample.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &sample)
                    .await
                    .unwrap();
            }
            None => {
                api.create(&PostParams::default(), &sample).await.unwrap();
            }
        }
        // the schema keeps the top-level fields the controller reads
        let stored = api.get(&name).await.unwrap();
        assert_eq!(stored.data["window"], "0s", "{stored:?}");
        assert_eq!(
            stored.data["containers"][0]["usage"]["cpu"], cpu,
            "{stored:?}"
        );
    }
}

async fn create_deployment(c: &Cluster, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                    "resources": {"requests": {"cpu": "100m"}}}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn create_autoscaler(c: &Cluster, max: i32, behavior: Value) {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.admin.clone(), "default");
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": max,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]
    });
    if !behavior.is_null() {
        spec["behavior"] = behavior;
    }
    let hpa: HorizontalPodAutoscaler =
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
}

/// The running, ready pods of the deployment once there are `count` of them.
async fn ready_pods(c: &Cluster, count: usize) -> Vec<Pod> {
    wait_for(&format!("{count} ready pods"), || {
        let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
        async move {
            let ready: Vec<Pod> = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .collect();
            (ready.len() == count).then_some(ready)
        }
    })
    .await
}

fn condition<'a>(
    hpa: &'a HorizontalPodAutoscaler,
    type_: &str,
) -> Option<&'a HorizontalPodAutoscalerCondition> {
    hpa.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

async fn autoscaler_events(c: &Cluster) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("HorizontalPodAutoscaler"))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn deployment_replicas(c: &Cluster) -> i32 {
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    deployments
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas
        .unwrap()
}

// upstream test/e2e/autoscaling: a CPU-bound deployment is scaled up to maxReplicas,
// and down again once idle
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_utilization_scales_a_deployment_up_to_max_and_back_down() {
    let c = start().await;
    serve_pod_metrics(&c).await;
    create_deployment(&c, 1).await;
    let pods = ready_pods(&c, 1).await;
    // 200m of a 100m request: 200% against a 50% target asks for 4 pods
    set_usage(&c, &pods, "200m").await;
    // scale-downs apply at once; scale-ups keep the default policies
    create_autoscaler(
        &c,
        3,
        json!({"scaleDown": {"stabilizationWindowSeconds": 0}}),
    )
    .await;

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.admin.clone(), "default");
    let hpa = wait_for("the autoscaler to scale to its maximum", || {
        let hpas = hpas.clone();
        async move {
            let hpa = hpas.get("web").await.unwrap();
            (hpa.status.as_ref()?.desired_replicas == 3).then_some(hpa)
        }
    })
    .await;
    assert_eq!(deployment_replicas(&c).await, 3);
    let status = hpa.status.clone().unwrap();
    assert!(status.last_scale_time.is_some());
    let limited = condition(&hpa, "ScalingLimited").unwrap();
    assert_eq!(limited.status, "True");
    assert_eq!(limited.reason.as_deref(), Some("TooManyReplicas"));
    assert_eq!(
        limited.message.as_deref(),
        Some("the desired replica count is more than the maximum replica count")
    );
    let active = condition(&hpa, "ScalingActive").unwrap();
    assert_eq!(active.status, "True");
    assert_eq!(active.reason.as_deref(), Some("ValidMetricFound"));
    assert_eq!(
        active.message.as_deref(),
        Some(
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
        )
    );
    assert_eq!(condition(&hpa, "AbleToScale").unwrap().status, "True");
    let current = status.current_metrics.unwrap()[0].resource.clone().unwrap();
    assert_eq!(current.name, "cpu");
    assert_eq!(current.current.average_utilization, Some(200));
    assert_eq!(current.current.average_value.unwrap().0, "200m");
    let events = wait_for("the rescale event", || {
        let c = &c;
        async move {
            let events = autoscaler_events(c).await;
            events
                .iter()
                .any(|(reason, _)| reason == "SuccessfulRescale")
                .then_some(events)
        }
    })
    .await;
    assert!(
        events.contains(&(
            "SuccessfulRescale".to_owned(),
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
                .to_owned()
        )),
        "{events:?}"
    );

    // every pod idles at 10%: ceil(0.2 × 3) = 1
    let pods = ready_pods(&c, 3).await;
    set_usage(&c, &pods, "10m").await;
    wait_for("the scale-down", || {
        let c = &c;
        async move { (deployment_replicas(c).await == 1).then_some(()) }
    })
    .await;
    let events = wait_for("the scale-down event", || {
        let c = &c;
        async move {
            let events = autoscaler_events(c).await;
            events
                .iter()
                .any(|(_, message)| message == "New size: 1; reason: All metrics below target")
                .then_some(events)
        }
    })
    .await;
    assert_eq!(
        events
            .iter()
            .filter(|(reason, _)| reason == "SuccessfulRescale")
            .count(),
        2,
        "{events:?}"
    );
}

// without a metrics API the autoscaler reports why and leaves the target alone
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_scaling_is_inactive_and_the_scale_untouched() {
    let c = start().await;
    create_deployment(&c, 2).await;
    ready_pods(&c, 2).await;
    create_autoscaler(&c, 5, Value::Null).await;

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.admin.clone(), "default");
    let hpa = wait_for("the failed metrics condition", || {
        let hpas = hpas.clone();
        async move {
            let hpa = hpas.get("web").await.unwrap();
            (condition(&hpa, "ScalingActive")?.status == "False").then_some(hpa)
        }
    })
    .await;
    let active = condition(&hpa, "ScalingActive").unwrap();
    assert_eq!(active.reason.as_deref(), Some("FailedGetResourceMetric"));
    let message = active.message.clone().unwrap();
    assert!(
        message.starts_with(
            "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API:"
        ),
        "{message}"
    );
    let able = condition(&hpa, "AbleToScale").unwrap();
    assert_eq!(able.status, "True");
    assert_eq!(able.reason.as_deref(), Some("SucceededGetScale"));
    let status = hpa.status.clone().unwrap();
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(status.desired_replicas, 0);
    assert!(status.last_scale_time.is_none());

    let events = wait_for("the failure events", || {
        let c = &c;
        async move {
            let events = autoscaler_events(c).await;
            let has = |r: &str| events.iter().any(|(reason, _)| reason == r);
            (has("FailedGetResourceMetric") && has("FailedComputeMetricsReplicas"))
                .then_some(events)
        }
    })
    .await;
    let computed = events
        .iter()
        .find(|(reason, _)| reason == "FailedComputeMetricsReplicas")
        .unwrap();
    assert!(
        computed.1.starts_with(
            "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization:"
        ),
        "{computed:?}"
    );
    // a few more syncs later the target is still where it was
    let hpa_rv = hpa.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(deployment_replicas(&c).await, 2);
    assert!(
        !autoscaler_events(&c)
            .await
            .iter()
            .any(|(reason, _)| reason == "SuccessfulRescale")
    );
    // nothing new to say: the status is not rewritten every sync
    assert_eq!(
        hpas.get("web").await.unwrap().metadata.resource_version,
        hpa_rv
    );
}

// upstream's reconcileAutoscaler: a target scaled to zero (with minReplicas above zero)
// disables autoscaling; it is left at zero and the status says why
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_at_zero_replicas_disables_scaling() {
    let c = start().await;
    serve_pod_metrics(&c).await;
    create_deployment(&c, 0).await;
    create_autoscaler(&c, 5, Value::Null).await;

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.admin.clone(), "default");
    let hpa = wait_for("the disabled condition", || {
        let hpas = hpas.clone();
        async move {
            let hpa = hpas.get("web").await.unwrap();
            (condition(&hpa, "ScalingActive")?.reason.as_deref() == Some("ScalingDisabled"))
                .then_some(hpa)
        }
    })
    .await;
    let active = condition(&hpa, "ScalingActive").unwrap();
    assert_eq!(active.status, "False");
    assert_eq!(
        active.message.as_deref(),
        Some("scaling is disabled since the replica count of the target is zero")
    );
    let status = hpa.status.clone().unwrap();
    assert_eq!(status.desired_replicas, 0);
    assert!(status.current_metrics.is_none_or(|m| m.is_empty()));
    assert!(status.last_scale_time.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deployment_replicas(&c).await, 0);
}
