//! The resource quota controller against a real apiserver (with its ResourceQuota
//! admission plugin): a quota's status is calculated after it is created, creates
//! raise its usage (admission) and deletes lower it (the controller), scopes pick the
//! pods a quota counts, a full quota refuses creates until objects go, updates of
//! services are charged, and a write one quota refuses charges none.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::{Spec, cluster, create, wait_for};

/// A namespace of its own: `default` holds the `kubernetes` service.
const NS: &str = "quota";

fn spec() -> Spec {
    Spec {
        scheduler: false,
        ..Spec::new(&["resourcequota"])
    }
}

/// `status.used` of a quota, by name, as strings.
async fn used(quotas: &Api<ResourceQuota>, name: &str) -> BTreeMap<String, String> {
    quotas
        .get(name)
        .await
        .ok()
        .and_then(|q| q.status)
        .and_then(|s| s.used)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Waits until the quota's `status.used` holds `want` (other entries aside).
async fn wait_used(quotas: &Api<ResourceQuota>, name: &str, want: &[(&str, &str)]) {
    let what = format!("quota {name} to use {want:?}");
    wait_for(&what, || async {
        let used = used(quotas, name).await;
        want.iter()
            .all(|(k, v)| used.get(*k).map(String::as_str) == Some(*v))
            .then_some(())
    })
    .await;
}

fn pod(name: &str, resources: Value, deadline: Option<i64>) -> Value {
    let mut p = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}
    });
    if let Some(d) = deadline {
        p["spec"]["activeDeadlineSeconds"] = json!(d);
    }
    p
}

fn now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_calculated_and_follows_creates_and_deletes() {
    let c = cluster(spec()).await;
    c.namespace(NS).await;
    c.wait_default_account(NS).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(c.admin.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), NS);
    let services: Api<Service> = Api::namespaced(c.admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), NS);
    // there before the quota: only the controller's calculation can count it
    let before: ConfigMap = create(
        &config_maps,
        json!({"metadata": {"name": "before"}, "data": {"a": "b"}}),
    )
    .await;
    let existing = config_maps
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    let hard = json!({
        "pods": "10", "configmaps": "10", "count/configmaps": "10", "secrets": "10",
        "services": "10", "services.nodeports": "5", "requests.cpu": "2", "requests.memory": "1Gi",
        "count/deployments.apps": "3"
    });
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "quota"}, "spec": {"hard": hard}}),
    )
    .await;
    let existing = existing.to_string();
    wait_for("the quota's status to be calculated", || async {
        let q = quotas.get("quota").await.ok()?;
        let status = q.status?;
        let status_hard: BTreeMap<String, String> =
            status.hard?.into_iter().map(|(k, v)| (k, v.0)).collect();
        let spec_hard: BTreeMap<String, String> = serde_json::from_value(hard.clone()).unwrap();
        let used: BTreeMap<String, String> =
            status.used?.into_iter().map(|(k, v)| (k, v.0)).collect();
        let want: BTreeMap<String, String> = [
            ("pods", "0"),
            ("configmaps", existing.as_str()),
            ("count/configmaps", existing.as_str()),
            ("secrets", "0"),
            ("services", "0"),
            ("services.nodeports", "0"),
            ("requests.cpu", "0"),
            ("requests.memory", "0"),
            ("count/deployments.apps", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        (status_hard == spec_hard && used == want).then_some(())
    })
    .await;

    // creates are charged by admission
    let _: Pod = create(
        &pods,
        pod(
            "p",
            json!({"requests": {"cpu": "100m", "memory": "64Mi"}}),
            None,
        ),
    )
    .await;
    let _: Secret = create(&secrets, json!({"metadata": {"name": "s"}})).await;
    let _: Service = create(
        &services,
        json!({"metadata": {"name": "svc"}, "spec": {"type": "NodePort", "selector": {"a": "b"},
            "ports": [{"port": 80}]}}),
    )
    .await;
    wait_used(
        &quotas,
        "quota",
        &[
            ("pods", "1"),
            ("requests.cpu", "100m"),
            ("requests.memory", "64Mi"),
            ("secrets", "1"),
            ("services", "1"),
            ("services.nodeports", "1"),
        ],
    )
    .await;

    // a pod not stating what the quota limits is refused, as upstream
    let err = pods
        .create(
            &Default::default(),
            &serde_json::from_value(pod("bare", json!({}), None)).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("unexpected {err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.ends_with(
            "failed quota: quota: must specify requests.cpu for: c; requests.memory for: c"
        ),
        "{}",
        status.message
    );

    // deletes are the controller's to take back
    pods.delete("p", &now()).await.unwrap();
    secrets.delete("s", &now()).await.unwrap();
    services.delete("svc", &now()).await.unwrap();
    config_maps
        .delete(before.metadata.name.as_deref().unwrap(), &now())
        .await
        .unwrap();
    let fewer = (existing.parse::<usize>().unwrap() - 1).to_string();
    wait_used(
        &quotas,
        "quota",
        &[
            ("pods", "0"),
            ("requests.cpu", "0"),
            ("requests.memory", "0"),
            ("secrets", "0"),
            ("services", "0"),
            ("services.nodeports", "0"),
            ("configmaps", fewer.as_str()),
        ],
    )
    .await;

    // a new limit is taken into the status promptly
    quotas
        .patch(
            "quota",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"secrets": "3", "pods": null}}})),
        )
        .await
        .unwrap();
    wait_for("the new limits in the status", || async {
        let status = quotas.get("quota").await.ok()?.status?;
        let hard = status.hard?;
        let used = status.used?;
        (hard.get("secrets").map(|q| q.0.as_str()) == Some("3")
            && !hard.contains_key("pods")
            && !used.contains_key("pods"))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_quotas_count_only_the_pods_in_their_scopes() {
    let c = cluster(spec()).await;
    c.namespace(NS).await;
    c.wait_default_account(NS).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), NS);
    for (name, scope) in [
        ("best-effort", "BestEffort"),
        ("not-best-effort", "NotBestEffort"),
        ("terminating", "Terminating"),
        ("not-terminating", "NotTerminating"),
    ] {
        let _: ResourceQuota = create(
            &quotas,
            json!({"metadata": {"name": name}, "spec": {"hard": {"pods": "5"}, "scopes": [scope]}}),
        )
        .await;
        wait_used(&quotas, name, &[("pods", "0")]).await;
    }
    let burstable = json!({"requests": {"memory": "1Mi"}});
    let _: Pod = create(&pods, pod("be", json!({}), None)).await;
    let _: Pod = create(&pods, pod("be-deadline", json!({}), Some(600))).await;
    let _: Pod = create(&pods, pod("burstable", burstable.clone(), Some(600))).await;
    wait_used(&quotas, "best-effort", &[("pods", "2")]).await;
    wait_used(&quotas, "not-best-effort", &[("pods", "1")]).await;
    wait_used(&quotas, "terminating", &[("pods", "2")]).await;
    wait_used(&quotas, "not-terminating", &[("pods", "1")]).await;

    pods.delete("be-deadline", &now()).await.unwrap();
    wait_used(&quotas, "best-effort", &[("pods", "1")]).await;
    wait_used(&quotas, "terminating", &[("pods", "1")]).await;
    wait_used(&quotas, "not-best-effort", &[("pods", "1")]).await;
    wait_used(&quotas, "not-terminating", &[("pods", "1")]).await;

    // a quota on a priority class counts only pods of that class
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "no-class"}, "spec": {"hard": {"pods": "5"},
            "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}}}),
    )
    .await;
    wait_used(&quotas, "no-class", &[("pods", "2")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_quota_refuses_creates_until_objects_go() {
    let c = cluster(spec()).await;
    c.namespace(NS).await;
    c.wait_default_account(NS).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(c.admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), NS);
    let existing = config_maps
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    let limit = existing + 2;
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "few"}, "spec": {"hard": {"configmaps": limit.to_string(), "pods": "1"}}}),
    )
    .await;
    wait_used(
        &quotas,
        "few",
        &[("configmaps", &existing.to_string()), ("pods", "0")],
    )
    .await;
    for name in ["one", "two"] {
        let _: ConfigMap = create(&config_maps, json!({"metadata": {"name": name}})).await;
    }
    let refused = |name: &'static str| {
        let config_maps = config_maps.clone();
        async move {
            let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            config_maps.create(&Default::default(), &cm).await
        }
    };
    let Err(kube::Error::Api(status)) = refused("three").await else {
        panic!("a third config map was allowed")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        format!(
            "configmaps \"three\" is forbidden: exceeded quota: few, requested: configmaps=1, used: configmaps={limit}, limited: configmaps={limit}"
        )
    );
    config_maps.delete("one", &now()).await.unwrap();
    wait_used(&quotas, "few", &[("configmaps", &(limit - 1).to_string())]).await;
    refused("three").await.unwrap();

    // a finished pod no longer uses its quota
    let _: Pod = create(&pods, pod("done", json!({}), None)).await;
    wait_used(&quotas, "few", &[("pods", "1")]).await;
    assert!(
        refused_pod(&pods, "next").await,
        "a second pod passed a quota of one"
    );
    pods.patch_status(
        "done",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    wait_used(&quotas, "few", &[("pods", "0")]).await;
    assert!(!refused_pod(&pods, "next").await);
}

/// Whether creating pod `name` is refused for quota.
async fn refused_pod(pods: &Api<Pod>, name: &str) -> bool {
    let p = serde_json::from_value(pod(name, json!({}), None)).unwrap();
    match pods.create(&Default::default(), &p).await {
        Ok(_) => false,
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota: few") => {
            true
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_charged_and_a_refusal_charges_no_quota() {
    let c = cluster(spec()).await;
    c.namespace(NS).await;
    c.wait_default_account(NS).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.admin.clone(), NS);
    let services: Api<Service> = Api::namespaced(c.admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), NS);
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "ports"}, "spec": {"hard": {"services": "5", "services.nodeports": "1"}}}),
    )
    .await;
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "cpu"}, "spec": {"hard": {"pods": "5", "requests.cpu": "1"}}}),
    )
    .await;
    // made before the pods it counts, so admission charges it: the controller's count
    // of a quota made later could miss a pod its informer has not seen yet
    let _: ResourceQuota = create(
        &quotas,
        json!({"metadata": {"name": "a-pods"}, "spec": {"hard": {"pods": "5"}}}),
    )
    .await;
    wait_used(&quotas, "a-pods", &[("pods", "0")]).await;
    wait_used(
        &quotas,
        "ports",
        &[("services", "0"), ("services.nodeports", "0")],
    )
    .await;
    wait_used(&quotas, "cpu", &[("pods", "0"), ("requests.cpu", "0")]).await;

    // a service turning NodePort past the quota's node ports is refused
    let _: Service = create(
        &services,
        json!({"metadata": {"name": "svc"}, "spec": {"selector": {"a": "b"},
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}),
    )
    .await;
    wait_used(&quotas, "ports", &[("services", "1")]).await;
    let err = services
        .patch(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "NodePort"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("unexpected {err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.ends_with(
            "exceeded quota: ports, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
        ),
        "{}",
        status.message
    );
    // dropping a port first, the update fits and is charged
    services
        .patch(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}]}}),
            ),
        )
        .await
        .unwrap();
    wait_used(&quotas, "ports", &[("services.nodeports", "1")]).await;

    // a pod limiting CPU requests it (SetDefaults_Pod); the second passes the cpu
    // quota, which refuses it, and the pods quota that allowed it is not charged
    let limited = |name: &str, cpu: &str| {
        let mut p = pod(name, json!({"limits": {"cpu": cpu}}), None);
        p["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("1Mi");
        p
    };
    let first: Pod = create(&pods, limited("first", "600m")).await;
    let requests = first.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .requests
        .unwrap();
    assert_eq!(requests["cpu"].0, "600m");
    assert_eq!(requests["memory"].0, "1Mi");
    wait_used(&quotas, "cpu", &[("pods", "1"), ("requests.cpu", "600m")]).await;
    wait_used(&quotas, "a-pods", &[("pods", "1")]).await;
    let p = serde_json::from_value(limited("second", "600m")).unwrap();
    let Err(kube::Error::Api(status)) = pods.create(&Default::default(), &p).await else {
        panic!("a pod passing the cpu quota was created")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("exceeded quota: cpu"),
        "{}",
        status.message
    );
    assert_eq!(used(&quotas, "a-pods").await["pods"], "1");
    assert_eq!(used(&quotas, "cpu").await["pods"], "1");
}
