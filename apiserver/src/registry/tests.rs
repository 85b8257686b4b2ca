//! The registry against the in-memory store: upstream's generic semantics, one behaviour
//! per test, with upstream's messages where it returns errors.

use std::sync::Arc;

use apimachinery::resources::{ResourceInfo, find};
use serde_json::{Value, json};

use super::validation::tester::registry;
use super::*;
use crate::storage::memory::MemoryStore;

fn res(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    find(group, version, plural).expect("resource in the table")
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name}}, "data": {"k": "v"}})
}

fn message(e: &StatusError) -> String {
    e.status().message.clone()
}

#[tokio::test]
async fn create_fills_system_metadata_and_refuses_duplicates() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let created = r
        .create(cms, Some("default"), configmap("web"), false)
        .await
        .unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(created["metadata"]["resourceVersion"].is_string());
    assert!(
        created["metadata"].get("generation").is_none(),
        "configmaps carry no generation"
    );
    let err = r
        .create(cms, Some("default"), configmap("web"), false)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert_eq!(message(&err), r#"configmaps "web" already exists"#);
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    r.create(cms, Some("default"), configmap("web"), true)
        .await
        .unwrap();
    assert!(
        r.get(cms, Some("default"), "web")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn generate_name_makes_a_unique_name() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let body = json!({"metadata": {"generateName": "cfg-"}});
    let a = r
        .create(cms, Some("default"), body.clone(), false)
        .await
        .unwrap();
    let b = r.create(cms, Some("default"), body, false).await.unwrap();
    let (a, b) = (
        a["metadata"]["name"].as_str().unwrap(),
        b["metadata"]["name"].as_str().unwrap(),
    );
    assert!(a.starts_with("cfg-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn namespace_lifecycle_guards_creation() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let err = r
        .create(cms, Some("nowhere"), configmap("a"), false)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 404);
    assert_eq!(message(&err), r#"namespaces "nowhere" not found"#);

    let ns = res("", "v1", "namespaces");
    r.create(ns, None, json!({"metadata": {"name": "going"}}), false)
        .await
        .unwrap();
    let deleted = r
        .delete(ns, None, "going", &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(deleted["status"]["phase"], "Terminating");
    assert!(deleted["metadata"]["deletionTimestamp"].is_string());
    let err = r
        .create(cms, Some("going"), configmap("a"), false)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 403);
    assert!(
        message(&err).contains(
            "unable to create new content in namespace going because it is being terminated"
        ),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn namespaces_carry_their_name_label_and_finalize_through_their_subresource() {
    let r = registry().await;
    let ns = res("", "v1", "namespaces");
    let created = r
        .create(ns, None, json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "other"}}}), false)
        .await
        .unwrap();
    assert_eq!(
        created["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));

    // a PUT cannot change spec.finalizers or drop the name label
    let mut body = created.clone();
    body["spec"]["finalizers"] = json!([]);
    body["metadata"]["labels"] = json!({"a": "b"});
    let updated = r
        .update(ns, None, "team", body, Part::Main, false)
        .await
        .unwrap();
    assert_eq!(updated["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        updated["metadata"]["labels"],
        json!({"a": "b", "kubernetes.io/metadata.name": "team"})
    );

    // the status subresource keeps the spec but takes metadata changes
    let mut body = updated.clone();
    body["metadata"]["annotations"] = json!({"noted": "yes"});
    body["spec"]["finalizers"] = json!(["x.io/y"]);
    body["status"]["conditions"] =
        json!([{"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}]);
    let status = r
        .update(ns, None, "team", body, Part::Status, false)
        .await
        .unwrap();
    assert_eq!(status["metadata"]["annotations"]["noted"], "yes");
    assert_eq!(status["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(status["status"]["conditions"][0]["status"], "False");

    // finalize changes spec.finalizers only; a terminating namespace whose last
    // finalizer goes is removed
    let deleted = r
        .delete(ns, None, "team", &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(status["status"]["phase"], "Active");
    let mut body = deleted.clone();
    body["spec"]["finalizers"] = json!([]);
    body["metadata"]["labels"] = json!({"ignored": "yes"});
    let finalized = r
        .update(ns, None, "team", body, Part::Finalize, false)
        .await
        .unwrap();
    assert_eq!(finalized["spec"]["finalizers"], json!([]));
    assert!(finalized["metadata"]["labels"].get("ignored").is_none());
    let err = r.get(ns, None, "team").await.unwrap_err();
    assert_eq!(err.http_status(), 404);
}

#[tokio::test]
async fn bad_bodies_are_refused_with_upstream_messages() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let err = r
        .create(
            cms,
            Some("default"),
            json!({"apiVersion": "apps/v1", "metadata": {"name": "a"}}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    let err = r
        .create(
            cms,
            Some("default"),
            json!({"metadata": {"name": "a", "namespace": "other"}}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let err = r
        .create(
            cms,
            Some("default"),
            json!({"metadata": {"name": "Bad_Name"}}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 422);
    assert!(message(&err).starts_with(r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#), "{}", message(&err));
    let long = "x".repeat(64);
    let err = r
        .create(
            cms,
            Some("default"),
            json!({"metadata": {"name": "a", "labels": {"k": long}}}),
            false,
        )
        .await
        .unwrap_err();
    assert!(
        message(&err).contains("must be no more than 63 characters"),
        "{}",
        message(&err)
    );
    assert!(
        r.list(cms, Some("default"), &ListParams::default())
            .await
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn lists_filter_and_page_consistently() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    for i in 0..7 {
        let mut cm = configmap(&format!("cm-{i}"));
        cm["metadata"]["labels"]["parity"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        r.create(cms, Some("default"), cm, false).await.unwrap();
    }
    let list = r
        .list(cms, Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 7);
    assert!(
        list["items"][0].get("kind").is_none(),
        "typed list items carry no kind"
    );

    let even = ListParams {
        label_selector: Some("parity=even".into()),
        limit: Some(2),
        ..Default::default()
    };
    let first = r.list(cms, Some("default"), &even).await.unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("more to come")
        .to_owned();
    assert!(
        first["metadata"].get("remainingItemCount").is_none(),
        "no count with selectors"
    );
    let rest = r
        .list(
            cms,
            Some("default"),
            &ListParams {
                continue_token: Some(token),
                ..even.clone()
            },
        )
        .await
        .unwrap();
    let names: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cm-4", "cm-6"]);

    let by_name = ListParams {
        field_selector: Some("metadata.name=cm-3".into()),
        ..Default::default()
    };
    assert_eq!(
        r.list(cms, None, &by_name).await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = r
        .list(
            cms,
            None,
            &ListParams {
                field_selector: Some("spec.x=1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(message(&err), "field label not supported: spec.x");
    let err = r
        .list(
            cms,
            None,
            &ListParams {
                label_selector: Some("a in (".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[tokio::test]
async fn updates_use_optimistic_concurrency() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let created = r
        .create(cms, Some("default"), configmap("web"), false)
        .await
        .unwrap();
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh["data"]["k"] = json!("v2");
    let updated = r
        .update(cms, Some("default"), "web", fresh, Part::Main, false)
        .await
        .unwrap();
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    stale["data"]["k"] = json!("lost");
    let err = r
        .update(cms, Some("default"), "web", stale, Part::Main, false)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        message(&err),
        r#"Operation cannot be fulfilled on configmaps "web": the object has been modified; please apply your changes to the latest version and try again"#
    );
    let err = r
        .update(
            cms,
            Some("default"),
            "other",
            configmap("web"),
            Part::Main,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "the name of the object (web) does not match the name on the URL (other)"
    );
    let err = r
        .update(
            cms,
            Some("default"),
            "missing",
            configmap("missing"),
            Part::Main,
            false,
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn status_and_main_updates_keep_to_their_part() {
    let r = registry().await;
    let deployments = res("apps", "v1", "deployments");
    let body = json!({
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
        "status": {"replicas": 5},
    });
    let created = r
        .create(deployments, Some("default"), body, false)
        .await
        .unwrap();
    assert!(
        created.get("status").is_none(),
        "clients do not set status on create"
    );
    assert_eq!(created["metadata"]["generation"], 1);
    let mut status = created.clone();
    status["status"] = json!({"readyReplicas": 1});
    status["spec"]["replicas"] = json!(9);
    let after = r
        .update(
            deployments,
            Some("default"),
            "d",
            status,
            Part::Status,
            false,
        )
        .await
        .unwrap();
    assert_eq!(after["status"]["readyReplicas"], 1);
    assert_eq!(
        after["spec"]["replicas"], 1,
        "status updates leave spec alone"
    );
    let mut scale = after.clone();
    scale["spec"]["replicas"] = json!(3);
    let scaled = r
        .update(deployments, Some("default"), "d", scale, Part::Main, false)
        .await
        .unwrap();
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(
        scaled["status"]["readyReplicas"], 1,
        "main updates leave status alone"
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    let mut cm = configmap("held");
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    r.create(cms, Some("default"), cm, false).await.unwrap();
    let marked = r
        .delete(cms, Some("default"), "held", &Default::default(), false)
        .await
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert!(
        r.get(cms, Some("default"), "held").await.is_ok(),
        "still there while finalizers remain"
    );
    let mut release = marked.clone();
    release["metadata"]["finalizers"] = json!([]);
    r.update(cms, Some("default"), "held", release, Part::Main, false)
        .await
        .unwrap();
    assert!(
        r.get(cms, Some("default"), "held")
            .await
            .unwrap_err()
            .is_not_found(),
        "gone with the last finalizer"
    );
}

#[tokio::test]
async fn delete_honours_preconditions() {
    let r = registry().await;
    let cms = res("", "v1", "configmaps");
    r.create(cms, Some("default"), configmap("web"), false)
        .await
        .unwrap();
    let wrong = DeleteOptions {
        preconditions: crate::storage::Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        },
        ..Default::default()
    };
    let err = r
        .delete(cms, Some("default"), "web", &wrong, false)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert!(
        message(&err).contains("Precondition failed: UID in precondition: nope"),
        "{}",
        message(&err)
    );
    let gone = r
        .delete(cms, Some("default"), "web", &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(gone["metadata"]["name"], "web");
    assert!(
        r.delete(cms, Some("default"), "web", &Default::default(), false)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn services_get_a_cluster_ip_that_deletion_frees() {
    let r = registry().await;
    let services = res("", "v1", "services");
    let ips = res("networking.k8s.io", "v1", "ipaddresses");
    let body =
        json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    let created = r
        .create(services, Some("default"), body, false)
        .await
        .unwrap();
    let ip = created["spec"]["clusterIP"]
        .as_str()
        .expect("allocated")
        .to_owned();
    assert!(ip.starts_with("10."), "{ip}");
    assert_eq!(created["spec"]["ports"][0]["protocol"], "TCP");
    assert!(
        created["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .is_some_and(|p| (30000..=32767).contains(&p))
    );
    let claimed = r
        .get(ips, None, &ip)
        .await
        .expect("the IPAddress object records the claim");
    assert_eq!(claimed["spec"]["parentRef"]["name"], "web");

    let mut changed = created.clone();
    changed["spec"]["clusterIP"] = json!("10.96.0.77");
    let err = r
        .update(services, Some("default"), "web", changed, Part::Main, false)
        .await
        .unwrap_err();
    assert!(
        message(&err).contains("may not change once set"),
        "{}",
        message(&err)
    );

    r.delete(services, Some("default"), "web", &Default::default(), false)
        .await
        .unwrap();
    assert!(
        r.get(ips, None, &ip).await.unwrap_err().is_not_found(),
        "the address is free again"
    );
    let err = r
        .create(
            services,
            Some("default"),
            json!({"metadata": {"name": "noports"}, "spec": {}}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        r#"Service "noports" is invalid: spec.ports: Required value"#
    );
}

#[tokio::test]
async fn lists_from_the_watch_cache_match_lists_from_the_store() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let cache = WatchCache::start(store.clone());
    assert!(
        cache
            .wait_until_ready(std::time::Duration::from_secs(5))
            .await
    );
    let cached = Registry::new(store.clone()).with_cache(cache);
    let direct = Registry::new(store);
    cached.ensure_system_namespaces().await.unwrap();
    let cms = res("", "v1", "configmaps");
    for name in ["a", "b", "c"] {
        cached
            .create(cms, Some("default"), configmap(name), false)
            .await
            .unwrap();
    }
    let everything = ListParams::default();
    // A consistent list sees every acknowledged write, and equals the store's answer.
    let from_cache = cached
        .list(cms, Some("default"), &everything)
        .await
        .unwrap();
    let from_store = direct
        .list(cms, Some("default"), &everything)
        .await
        .unwrap();
    assert_eq!(from_cache, from_store);
    assert_eq!(from_cache["items"].as_array().unwrap().len(), 3);

    // The bytes path writes the same list without decoding the objects.
    let bytes = cached
        .list_json_bytes(cms, Some("default"), &everything)
        .await
        .unwrap()
        .expect("served from the cache");
    let decoded: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(decoded, from_store);

    // Selectors and pages are not for the bytes path; selectors still use the cache.
    let selected = ListParams {
        label_selector: Some("app=b".into()),
        ..Default::default()
    };
    assert!(
        cached
            .list_json_bytes(cms, Some("default"), &selected)
            .await
            .unwrap()
            .is_none()
    );
    let items = cached.list(cms, Some("default"), &selected).await.unwrap();
    assert_eq!(items["items"][0]["metadata"]["name"], "b");
    assert_eq!(items["items"].as_array().unwrap().len(), 1);
}

#[test]
fn served_bytes_stamp_the_resource_version_and_drop_type_meta_in_lists() {
    let kv = KeyValue {
        key: "/registry/configmaps/default/x".into(),
        value: Bytes::from_static(
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"b"}},"data":{"k":"v \"quoted\""}}"#,
        ),
        create_revision: 5,
        mod_revision: 7,
    };
    let mut item = Vec::new();
    write_versioned(&kv, false, &mut item).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&item).unwrap(),
        json!({"metadata": {"name": "x", "labels": {"a": "b"}, "resourceVersion": "7"}, "data": {"k": "v \"quoted\""}})
    );
    let mut whole = Vec::new();
    write_versioned(&kv, true, &mut whole).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&whole).unwrap()["kind"],
        "ConfigMap"
    );
    let broken = KeyValue {
        value: Bytes::from_static(b"{not json"),
        ..kv
    };
    assert_eq!(
        write_versioned(&broken, false, &mut Vec::new())
            .unwrap_err()
            .http_status(),
        500
    );
}
