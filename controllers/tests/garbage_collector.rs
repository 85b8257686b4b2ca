//! The garbage collector against a real apiserver: owners and dependents made by hand
//! (ConfigMaps, Secrets, a custom resource), deleted with each propagation policy;
//! and a Deployment's ReplicaSet and pods deleted through stock kubectl's `--cascade`.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use support::{
    Cluster, Spec, cluster, controlled_by, controller_uid, create, kubectl, ready_cluster, wait_for,
};

const NS: &str = "gc";

async fn gc_cluster() -> Cluster {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["garbagecollector"])
    })
    .await;
    c.namespace(NS).await;
    c
}

fn reference<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        block_owner_deletion: block.then_some(true),
        controller: None,
    }
}

fn ghost_reference(name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: name.into(),
        uid: "5a0e4e77-0000-4000-8000-000000000000".into(),
        block_owner_deletion: None,
        controller: None,
    }
}

async fn config_map(
    client: &Client,
    ns: &str,
    name: &str,
    owners: Vec<OwnerReference>,
) -> ConfigMap {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners},
        "data": {"k": "v"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap()
}

async fn secret(
    client: &Client,
    name: &str,
    owners: Vec<OwnerReference>,
    finalizers: &[&str],
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    let s = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
        "stringData": {"k": "v"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &s).await.unwrap()
}

async fn delete_with(client: &Client, name: &str, policy: PropagationPolicy) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let params = DeleteParams {
        propagation_policy: Some(policy),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await.unwrap();
}

async fn wait_gone<K>(what: &str, api: &Api<K>, name: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(what, || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// Waits until the collector's graph holds every Secret created so far. The dependents
/// of an owner deleted in the foreground or orphaning come from the graph: an owner
/// deleted before its dependents reach it would wait for none or orphan none (as
/// upstream's). A probe Secret naming an owner that never existed, created after them,
/// is collected only once the graph has it, and the Secrets' watch and the graph's
/// changes are applied in order.
async fn wait_graph_has_secrets(client: &Client, probe: &str) {
    secret(client, probe, vec![ghost_reference("nobody")], &[]).await;
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    wait_gone("the graph caught up with the Secrets", &api, probe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_and_dangling_references() {
    let c = gc_cluster().await;
    let admin = &c.admin;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);

    // an owner with two dependents, deleted in the background: both go
    let owner = config_map(admin, NS, "owner", vec![]).await;
    secret(admin, "dep-a", vec![reference(&owner, false)], &[]).await;
    config_map(admin, NS, "dep-b", vec![reference(&owner, true)]).await;
    // a dependent of two owners, one of which is deleted: it stays, naming the other
    let other = config_map(admin, NS, "other", vec![]).await;
    secret(
        admin,
        "shared",
        vec![reference(&owner, false), reference(&other, false)],
        &[],
    )
    .await;
    delete_with(admin, "owner", PropagationPolicy::Background).await;
    wait_gone("dep-a deleted with its owner", &secrets, "dep-a").await;
    wait_gone("dep-b deleted with its owner", &config_maps, "dep-b").await;
    let other_uid = other.uid().unwrap();
    wait_for(
        "shared keeps only the reference to its remaining owner",
        || async {
            let s = secrets.get("shared").await.unwrap();
            let refs = s.metadata.owner_references.unwrap_or_default();
            (refs.len() == 1 && refs[0].uid == other_uid).then_some(())
        },
    )
    .await;

    // an owner uid that never existed: by a name nobody has, and by the name of an
    // object with another uid
    secret(
        admin,
        "orphan-by-name",
        vec![ghost_reference("nobody")],
        &[],
    )
    .await;
    secret(admin, "orphan-by-uid", vec![ghost_reference("other")], &[]).await;
    wait_gone(
        "a dependent of a missing owner deleted",
        &secrets,
        "orphan-by-name",
    )
    .await;
    wait_gone(
        "a dependent of an owner uid mismatch deleted",
        &secrets,
        "orphan-by-uid",
    )
    .await;

    // an owner in another namespace is no owner: its dependent goes
    c.namespace("elsewhere").await;
    let far = config_map(admin, "elsewhere", "far-owner", vec![]).await;
    secret(admin, "cross-namespace", vec![reference(&far, false)], &[]).await;
    wait_gone(
        "a dependent of an owner in another namespace deleted",
        &secrets,
        "cross-namespace",
    )
    .await;

    // the live owner and the dependent it still owns were left alone
    assert!(config_maps.get_opt("other").await.unwrap().is_some());
    assert!(secrets.get_opt("shared").await.unwrap().is_some());
    let far_api: Api<ConfigMap> = Api::namespaced(admin.clone(), "elsewhere");
    assert!(far_api.get_opt("far-owner").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let c = gc_cluster().await;
    let admin = &c.admin;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);

    let owner = config_map(admin, NS, "owner", vec![]).await;
    // the blocking dependent holds a finalizer of its own, so it lingers once deleted
    secret(
        admin,
        "blocker",
        vec![reference(&owner, true)],
        &["example.com/hold"],
    )
    .await;
    secret(admin, "plain", vec![reference(&owner, false)], &[]).await;
    wait_graph_has_secrets(admin, "probe").await;
    delete_with(admin, "owner", PropagationPolicy::Foreground).await;

    wait_for("the blocking dependent being deleted", || async {
        let s = secrets.get("blocker").await.unwrap();
        s.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    wait_gone("the non-blocking dependent deleted", &secrets, "plain").await;
    // the owner waits, marked, with the foregroundDeletion finalizer
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let waiting = config_maps.get("owner").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{:?}",
        waiting.finalizers()
    );

    // the dependent finally goes: so does its owner
    secrets
        .patch(
            "blocker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_gone("the blocking dependent gone", &secrets, "blocker").await;
    wait_gone(
        "the owner deleted once its dependents are",
        &config_maps,
        "owner",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_leaves_dependents_without_the_reference() {
    let c = gc_cluster().await;
    let admin = &c.admin;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);

    let owner = config_map(admin, NS, "owner", vec![]).await;
    let keeper = config_map(admin, NS, "keeper", vec![]).await;
    secret(admin, "a", vec![reference(&owner, true)], &[]).await;
    secret(
        admin,
        "b",
        vec![reference(&owner, false), reference(&keeper, false)],
        &[],
    )
    .await;
    wait_graph_has_secrets(admin, "probe").await;
    delete_with(admin, "owner", PropagationPolicy::Orphan).await;
    wait_gone("the orphaning owner deleted", &config_maps, "owner").await;

    let a = secrets.get("a").await.unwrap();
    assert!(a.metadata.owner_references.unwrap_or_default().is_empty());
    let b = secrets.get("b").await.unwrap();
    let refs = b.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].uid, keeper.uid().unwrap());
    // and they stay
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(secrets.get_opt("a").await.unwrap().is_some());
    assert!(secrets.get_opt("b").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_as_owners_and_dependents() {
    let c = gc_cluster().await;
    let admin = &c.admin;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &ar);
    let widget = |name: &str, owners: Vec<OwnerReference>| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name, "ownerReferences": owners},
            "spec": {"size": 1},
        }))
        .unwrap()
    };
    wait_for("the Widget resource served", || async {
        widgets.list(&Default::default()).await.ok().map(|_| ())
    })
    .await;

    // a custom resource dependent of a ConfigMap
    let owner = config_map(admin, NS, "owner", vec![]).await;
    widgets
        .create(
            &PostParams::default(),
            &widget("dependent", vec![reference(&owner, false)]),
        )
        .await
        .unwrap();
    // a ConfigMap dependent of a custom resource deleted in the foreground
    let parent = widgets
        .create(&PostParams::default(), &widget("parent", vec![]))
        .await
        .unwrap();
    let parent_ref = OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        name: "parent".into(),
        uid: parent.uid().unwrap(),
        block_owner_deletion: Some(true),
        controller: None,
    };
    config_map(admin, NS, "child", vec![parent_ref]).await;

    delete_with(admin, "owner", PropagationPolicy::Background).await;
    wait_gone(
        "the custom resource deleted with its ConfigMap owner",
        &widgets,
        "dependent",
    )
    .await;

    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    widgets.delete("parent", &params).await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    wait_gone(
        "the ConfigMap deleted before its custom resource owner",
        &config_maps,
        "child",
    )
    .await;
    wait_gone(
        "the custom resource owner deleted after its dependent",
        &widgets,
        "parent",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_cascades_through_dependents_with_dependents() {
    let c = gc_cluster().await;
    let admin = &c.admin;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);

    // top <- middle <- leaf, all blocking; the leaf lingers on a finalizer
    let top = config_map(admin, NS, "top", vec![]).await;
    let middle = config_map(admin, NS, "middle", vec![reference(&top, true)]).await;
    secret(
        admin,
        "leaf",
        vec![reference(&middle, true)],
        &["example.com/hold"],
    )
    .await;
    wait_graph_has_secrets(admin, "probe").await;
    delete_with(admin, "top", PropagationPolicy::Foreground).await;

    // the middle object, waited for and with a dependent of its own, is deleted in the
    // foreground too
    wait_for("the middle dependent deleted in the foreground", || async {
        let m = config_maps.get("middle").await.unwrap();
        (m.metadata.deletion_timestamp.is_some()
            && m.finalizers().iter().any(|f| f == "foregroundDeletion"))
        .then_some(())
    })
    .await;
    wait_for("the leaf being deleted", || async {
        let s = secrets.get("leaf").await.unwrap();
        s.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    assert!(config_maps.get_opt("top").await.unwrap().is_some());

    secrets
        .patch(
            "leaf",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_gone(
        "the middle object gone after the leaf",
        &config_maps,
        "middle",
    )
    .await;
    wait_gone("the top object gone last", &config_maps, "top").await;
}

/// A Deployment of two pods, and once the controllers have made them, its ReplicaSet
/// and the pods.
async fn deployment_with_pods(c: &Cluster, name: &str) -> (ReplicaSet, Vec<Pod>) {
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let d: Deployment = create(
        &deployments,
        json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }),
    )
    .await;
    let uid = d.uid().unwrap();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    wait_for(&format!("the ReplicaSet and pods of {name}"), || {
        let (replica_sets, pods, uid) = (replica_sets.clone(), pods.clone(), uid.clone());
        async move {
            let rs = controlled_by(&replica_sets, &uid)
                .await
                .into_iter()
                .next()?;
            let owned = controlled_by(&pods, &rs.uid()?).await;
            (owned.len() == 2).then_some((rs, owned))
        }
    })
    .await
}

/// Runs `kubectl delete deployment <name> --cascade=<mode>` without waiting for the
/// deletion to finish (so a foreground deletion can be watched on its way).
fn kubectl_delete(kubeconfig: &std::path::Path, name: &str, mode: &str) {
    let cascade = format!("--cascade={mode}");
    let output = kubectl(
        kubeconfig,
        &[
            "delete",
            "deployment",
            name,
            "--namespace=default",
            &cascade,
            "--wait=false",
        ],
    );
    assert!(
        output.status.success(),
        "kubectl delete {cascade} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("deployment.apps \"{name}\" deleted")),
        "{stdout}"
    );
}

/// Stock kubectl's `--cascade` modes on a Deployment, with the Deployment and
/// ReplicaSet controllers making the dependents: background deletes the Deployment at
/// once and its ReplicaSet and pods after it; foreground keeps the Deployment, marked
/// with the `foregroundDeletion` finalizer, until its dependents are gone; orphan
/// leaves the ReplicaSet and its pods running without the reference to the Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascading_deletion_of_a_deployment_in_each_mode() {
    let c = ready_cluster(&["deployment", "replicaset", "garbagecollector"], 1).await;
    let kubeconfig = c.admin_kubeconfig_file();
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");

    // --- background: the Deployment goes first, then its ReplicaSet and pods
    let (rs, owned) = deployment_with_pods(&c, "bg").await;
    kubectl_delete(&kubeconfig, "bg", "background");
    wait_gone("the Deployment deleted at once", &deployments, "bg").await;
    wait_gone("its ReplicaSet collected", &replica_sets, &rs.name_any()).await;
    for pod in &owned {
        wait_gone("its pods collected", &pods, &pod.name_any()).await;
    }

    // --- foreground: the Deployment waits for its dependents; a pod held by a
    // finalizer of its own holds the whole chain
    let (rs, owned) = deployment_with_pods(&c, "fg").await;
    let held = owned[0].name_any();
    pods.patch(
        &held,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    kubectl_delete(&kubeconfig, "fg", "foreground");
    wait_for("the held pod being deleted", || async {
        let pod = pods.get_opt(&held).await.unwrap()?;
        pod.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    let waiting = deployments.get("fg").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{:?}",
        waiting.finalizers()
    );
    let waiting_rs = replica_sets.get(&rs.name_any()).await.unwrap();
    assert!(waiting_rs.metadata.deletion_timestamp.is_some());
    pods.patch(
        &held,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    for pod in &owned {
        wait_gone("the pods gone", &pods, &pod.name_any()).await;
    }
    wait_gone("the ReplicaSet gone", &replica_sets, &rs.name_any()).await;
    wait_gone(
        "the Deployment gone after its dependents",
        &deployments,
        "fg",
    )
    .await;

    // --- orphan: the Deployment goes; its ReplicaSet stays without the reference and
    // keeps its pods
    let (rs, owned) = deployment_with_pods(&c, "or").await;
    kubectl_delete(&kubeconfig, "or", "orphan");
    wait_gone("the orphaning Deployment deleted", &deployments, "or").await;
    let orphan = replica_sets.get(&rs.name_any()).await.unwrap();
    assert!(orphan.metadata.deletion_timestamp.is_none());
    assert!(
        orphan.owner_references().is_empty(),
        "{:?}",
        orphan.owner_references()
    );
    let rs_uid = rs.uid().unwrap();
    for pod in &owned {
        let pod = pods.get(&pod.name_any()).await.unwrap();
        assert!(pod.metadata.deletion_timestamp.is_none());
        assert_eq!(controller_uid(&pod), Some(rs_uid.as_str()));
    }
}
