//! The namespace controller against a real apiserver: deleting a namespace deletes
//! everything in it, custom resources included, reports what remains in upstream's
//! conditions, and lets the namespace go once its content is gone.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

fn widgets() -> ApiResource {
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&["namespace"])
    })
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.admin.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    c.namespace("doomed").await;
    let widgets_api: Api<DynamicObject> =
        Api::namespaced_with(c.admin.clone(), "doomed", &widgets());
    wait_for("the custom resource to be served", || {
        let api = widgets_api.clone();
        async move { api.list(&Default::default()).await.ok().map(|_| ()) }
    })
    .await;
    let widget = |name: &str, finalizers: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "finalizers": finalizers}
        }))
        .unwrap()
    };
    widgets_api
        .create(&PostParams::default(), &widget("plain", json!([])))
        .await
        .unwrap();
    widgets_api
        .create(
            &PostParams::default(),
            &widget("held", json!(["example.com/keep"])),
        )
        .await
        .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "doomed");
    for i in 0..3 {
        let map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }

    let namespaces: Api<Namespace> = Api::all(c.admin.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // the held widget keeps the namespace, and the conditions say why
    let conditions = wait_for("the finalizers condition", || {
        let namespaces = namespaces.clone();
        async move {
            let ns = namespaces.get("doomed").await.unwrap();
            let conditions = ns.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
                .then_some(conditions)
        }
    })
    .await;
    let message = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.message.clone())
            .unwrap()
    };
    assert_eq!(
        message("NamespaceFinalizersRemaining"),
        "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
    );
    assert_eq!(
        message("NamespaceContentRemaining"),
        "Some resources are remaining: widgets.example.com has 1 resource instances"
    );
    assert!(
        maps.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(widgets_api.get_opt("plain").await.unwrap().is_none());
    assert!(
        namespaces
            .get("doomed")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref()
            == Some("Terminating")
    );

    // the last finalizer goes: the widget, then the namespace
    widgets_api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_for("the namespace to go", || {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt("doomed")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}
