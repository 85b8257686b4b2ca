//! kube-rs, the Rust client, against `rkube up`: typed create/get/list, the three patch
//! types, and a reflector fed by a watcher that must see every object.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::RkubeUp;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};

fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".to_owned(), "kube-rs".to_owned())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_lists_watches_and_patches() {
    // kube's rustls needs a process-wide crypto provider; ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let up = tokio::task::spawn_blocking(RkubeUp::start).await.unwrap();
    let kubeconfig = Kubeconfig::read_from(&up.kubeconfig).expect("read the kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A reflector started first must end up holding every object created after it.
    let (reader, writer) = reflector::store();
    // (only this test's objects: the cluster's controllers add kube-root-ca.crt)
    let mine = || watcher::Config::default().labels("app=kube-rs");
    let stream = reflector(writer, watcher(api.clone(), mine())).applied_objects();
    let watch_task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    // The watch-list protocol (sendInitialEvents, ended by a bookmark) ...
    let (streamed, writer) = reflector::store();
    let config = mine().streaming_lists();
    let stream = reflector(writer, watcher(api.clone(), config)).applied_objects();
    let streaming_task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    // ... and metadata only (PartialObjectMetadata lists and watches).
    let (metadata, writer) = reflector::store::<PartialObjectMeta<ConfigMap>>();
    let metadata_api: Api<PartialObjectMeta<ConfigMap>> =
        Api::namespaced(client.clone(), "default");
    let stream = reflector(writer, watcher(metadata_api, mine())).applied_objects();
    let metadata_task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));

    for i in 0..5 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .expect("create");
    }
    let got = api.get("cm-0").await.expect("get");
    assert_eq!(got.data.unwrap()["k"], "v");
    let listed = api
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 5);
    let paged = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("paged list");
    assert_eq!(paged.items.len(), 2);
    assert!(paged.metadata.continue_.is_some());

    let merge = serde_json::json!({"data": {"merged": "yes"}});
    api.patch("cm-1", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("merge patch");
    let strategic = serde_json::json!({"metadata": {"labels": {"strategic": "yes"}}});
    api.patch(
        "cm-1",
        &PatchParams::default(),
        &Patch::Strategic(&strategic),
    )
    .await
    .expect("strategic patch");
    // kube's JSON patch type, decoded from the RFC 6902 document (the type is inferred).
    let ops = serde_json::from_value(
        serde_json::json!([{"op": "add", "path": "/data/json", "value": "yes"}]),
    )
    .unwrap();
    let patched = api
        .patch("cm-1", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    let data = patched.data.unwrap();
    assert_eq!(
        (data["merged"].as_str(), data["json"].as_str()),
        ("yes", "yes")
    );
    assert_eq!(patched.metadata.labels.unwrap()["strategic"], "yes");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let counts = || {
        [
            reader.state().len(),
            streamed.state().len(),
            metadata.state().len(),
        ]
    };
    while counts() != [5, 5, 5] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reflectors (plain, streaming, metadata) hold {:?} of 5",
            counts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let labels = metadata.state()[0]
        .metadata
        .labels
        .clone()
        .unwrap_or_default();
    assert_eq!(labels["app"], "kube-rs", "metadata carries the labels");
    api.delete("cm-4", &Default::default())
        .await
        .expect("delete");
    while counts() != [4, 4, 4] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reflectors (plain, streaming, metadata) hold {:?} after the deletion",
            counts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch_task.abort();
    streaming_task.abort();
    metadata_task.abort();
}
