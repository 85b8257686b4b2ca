//! Router tests through `tower::ServiceExt::oneshot`, no socket: each endpoint's
//! status, content type and JSON shape against upstream's.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};
use crate::auth::UserInfo;
use crate::storage::memory::MemoryStore;

fn state() -> AppState {
    AppState::new(
        Arc::new(MemoryStore::new()),
        "127.0.0.1:6443".parse().unwrap(),
    )
}

fn admin() -> UserInfo {
    UserInfo::new(
        "kubernetes-admin",
        &["system:masters", "system:authenticated"],
    )
}

async fn send(
    state: &AppState,
    method: &str,
    path: &str,
    user: Option<UserInfo>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get_json(path: &str) -> (StatusCode, Value) {
    let (status, content_type, body) = send(&state(), "GET", path, Some(admin())).await;
    assert_eq!(content_type, "application/json", "{path}");
    (status, serde_json::from_str(&body).unwrap())
}

fn resource<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[tokio::test]
async fn version_has_upstream_shape() {
    let (status, body) = get_json("/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["major"], "1");
    assert_eq!(body["minor"], "33");
    assert_eq!(body["gitVersion"], "v1.33.0-rkube");
    for key in [
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ] {
        assert!(body[key].is_string(), "{key} missing from {body}");
    }
    assert!(body["platform"].as_str().unwrap().starts_with("linux/"));
}

#[tokio::test]
async fn health_endpoints_say_ok() {
    let state = state();
    for path in [
        "/healthz",
        "/livez",
        "/readyz",
        "/readyz/etcd",
        "/livez/ping",
    ] {
        let (status, content_type, body) = send(&state, "GET", path, None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "{path}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
    }
}

#[tokio::test]
async fn verbose_readyz_lists_every_check() {
    let (status, _, body) = send(&state(), "GET", "/readyz?verbose", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "[+]ping ok\n[+]etcd ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    let (_, _, body) = send(&state(), "GET", "/livez?verbose&exclude=etcd", None).await;
    assert_eq!(
        body,
        "[+]ping ok\n[+]etcd excluded: ok\nlivez check passed\n"
    );
}

#[tokio::test]
async fn readyz_fails_once_shutdown_begins_but_livez_does_not() {
    let state = state();
    state.begin_shutdown();
    let (status, _, body) = send(&state, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "[+]ping ok\n[+]etcd ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n"
    );
    let (status, _, _) = send(&state, "GET", "/livez", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_health_check_is_not_found() {
    let (status, _, _) = send(&state(), "GET", "/healthz/no-such-check", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_lists_v1_with_the_advertised_address() {
    let (status, body) = get_json("/api").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
        })
    );
}

#[tokio::test]
async fn core_v1_resource_list_has_upstream_shape() {
    let (status, body) = get_json("/api/v1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "APIResourceList");
    assert_eq!(body["groupVersion"], "v1");
    // upstream writes the legacy list without apiVersion
    assert!(body.get("apiVersion").is_none(), "{body}");
    let pods = resource(&body, "pods");
    assert_eq!(pods["singularName"], "pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let verbs: Vec<&str> = pods["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        assert!(verbs.contains(&verb), "pods lacks {verb}: {verbs:?}");
    }
    let status_sub = resource(&body, "pods/status");
    assert_eq!(status_sub["singularName"], "");
    assert_eq!(status_sub["kind"], "Pod");
    let namespaces = resource(&body, "namespaces");
    assert_eq!(namespaces["namespaced"], false);
    assert_eq!(namespaces["shortNames"], json!(["ns"]));
}

#[tokio::test]
async fn group_list_has_preferred_versions_and_no_core_group() {
    let (status, body) = get_json("/apis").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "APIGroupList");
    assert_eq!(body["apiVersion"], "v1");
    let groups = body["groups"].as_array().unwrap();
    assert!(
        groups.iter().all(|g| g["name"] != ""),
        "the core group is served at /api, not /apis"
    );
    let apps = groups.iter().find(|g| g["name"] == "apps").expect("apps");
    assert_eq!(
        apps["preferredVersion"],
        json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    assert!(
        apps["versions"]
            .as_array()
            .unwrap()
            .contains(&json!({"groupVersion": "apps/v1", "version": "v1"}))
    );
    for group in groups {
        let preferred = &group["preferredVersion"];
        assert!(
            group["versions"].as_array().unwrap().contains(preferred),
            "{group}"
        );
    }
}

#[tokio::test]
async fn one_group_is_an_api_group_document() {
    let (status, body) = get_json("/apis/apps").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "APIGroup");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["name"], "apps");
    assert_eq!(body["preferredVersion"]["groupVersion"], "apps/v1");
}

#[tokio::test]
async fn group_version_resource_list_has_upstream_shape() {
    let (status, body) = get_json("/apis/apps/v1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "APIResourceList");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["groupVersion"], "apps/v1");
    let deployments = resource(&body, "deployments");
    assert_eq!(deployments["kind"], "Deployment");
    assert_eq!(deployments["singularName"], "deployment");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(deployments["namespaced"], true);
}

#[tokio::test]
async fn every_served_group_version_lists_its_resources() {
    let (_, groups) = get_json("/apis").await;
    for group in groups["groups"].as_array().unwrap() {
        for version in group["versions"].as_array().unwrap() {
            let path = format!("/apis/{}", version["groupVersion"].as_str().unwrap());
            let (status, body) = get_json(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(body["groupVersion"], version["groupVersion"]);
            for resource in body["resources"].as_array().unwrap() {
                assert!(
                    resource["kind"].as_str().is_some_and(|k| !k.is_empty()),
                    "{path}: {resource}"
                );
                assert!(resource["verbs"].is_array(), "{path}: {resource}");
            }
        }
    }
}

/// Upstream's NotFoundHandler body for any path nothing serves.
#[tokio::test]
async fn unknown_paths_get_a_not_found_status() {
    for path in [
        "/no/such/path",
        "/apis/no.such.group/v1",
        "/apis/no.such.group",
        "/api/v2",
        "/apis/apps/v9",
    ] {
        let (status, body) = get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound",
                "details": {},
                "code": 404
            }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn wrong_method_is_a_method_not_allowed_status() {
    let (status, _, body) = send(&state(), "POST", "/version", Some(admin())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reason"], "MethodNotAllowed");
}

async fn send_body(
    state: &AppState,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::ACCEPT,
            "application/vnd.kubernetes.protobuf, application/json",
        )
        .body(Body::from(body))
        .unwrap();
    request.extensions_mut().insert(admin());
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// `object` in client-go's protobuf encoding: the `k8s\0` magic and a `runtime.Unknown`.
fn protobuf_body(api_version: &str, kind: &str, object: &impl protobuf::Message) -> Vec<u8> {
    use k8s_rs_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let envelope = Unknown {
        typeMeta: protobuf::MessageField::some(TypeMeta {
            apiVersion: Some(api_version.into()),
            kind: Some(kind.into()),
            ..Default::default()
        }),
        raw: Some(object.write_to_bytes().unwrap()),
        ..Default::default()
    };
    let mut body = b"k8s\x00".to_vec();
    body.extend(protobuf::Message::write_to_bytes(&envelope).unwrap());
    body
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// What kubectl's `create configmap` sends: a protobuf body, answered in JSON.
#[tokio::test]
async fn protobuf_bodies_are_created_like_json_ones() {
    use k8s_rs_pb::api::core::v1::{ConfigMap, Namespace, NamespaceSpec, NamespaceStatus};
    use k8s_rs_pb::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Time};
    let state = state();
    let namespace = Namespace {
        metadata: protobuf::MessageField::some(ObjectMeta {
            name: Some("default".into()),
            ..Default::default()
        }),
        spec: protobuf::MessageField::some(NamespaceSpec::default()),
        status: protobuf::MessageField::some(NamespaceStatus {
            phase: Some(String::new()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (status, created) = send_body(
        &state,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        protobuf_body("v1", "Namespace", &namespace),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"]["phase"], "Active", "{created}");
    let configmap = ConfigMap {
        metadata: protobuf::MessageField::some(ObjectMeta {
            name: Some("a".into()),
            namespace: Some(String::new()),
            uid: Some(String::new()),
            creationTimestamp: protobuf::MessageField::some(Time::default()),
            ..Default::default()
        }),
        data: [("k".to_owned(), "v".to_owned())].into(),
        ..Default::default()
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let (status, created) = send_body(
        &state,
        "POST",
        path,
        PROTOBUF,
        protobuf_body("v1", "ConfigMap", &configmap),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["name"], "a");
    assert_eq!(created["data"], json!({"k": "v"}));
    let (status, _, read) = send(&state, "GET", &format!("{path}/a"), Some(admin())).await;
    assert_eq!(status, StatusCode::OK);
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["kind"], "ConfigMap");
    assert_eq!(read["data"], json!({"k": "v"}));
    assert_eq!(read["metadata"]["uid"], created["metadata"]["uid"]);

    // typed clients send DeleteOptions in protobuf too, under the resource's version
    let options = DeleteOptions {
        gracePeriodSeconds: Some(0),
        ..Default::default()
    };
    let (status, _) = send_body(
        &state,
        "DELETE",
        &format!("{path}/a"),
        PROTOBUF,
        protobuf_body("v1", "DeleteOptions", &options),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&state, "GET", &format!("{path}/a"), Some(admin())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Upstream's transformDecodeError: 400 naming the kind the body had to be.
#[tokio::test]
async fn undecodable_protobuf_bodies_are_bad_requests() {
    let (status, body) = send_body(
        &state(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        PROTOBUF,
        b"k8s\x00\x0a\xff".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("the object provided is unrecognized (must be of type ConfigMap): "),
        "{body}"
    );
}

/// The codec's tables (inlined structs, renamed fields) checked against the OpenAPI
/// schemas of the same types: every schema's properties are what its message decodes to.
#[tokio::test]
async fn protobuf_field_names_match_the_openapi_schemas() {
    let (status, document) = get_json("/openapi/v2").await;
    assert_eq!(status, StatusCode::OK);
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (name, schema) in document["definitions"].as_object().unwrap() {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        let Some(message) = name.strip_prefix("io.k8s.") else {
            continue;
        };
        let message = message
            .replace("apiextensions-apiserver", "apiextensions_apiserver")
            .replace("kube-aggregator", "kube_aggregator");
        let Some(ours) = apimachinery::protobuf::json_properties(&message) else {
            continue;
        };
        checked += 1;
        let ours: std::collections::BTreeSet<&str> = ours.iter().map(String::as_str).collect();
        // a kind's TypeMeta is the envelope's, not a field of its message
        let theirs: std::collections::BTreeSet<&str> = properties
            .keys()
            .map(String::as_str)
            .filter(|p| ours.contains(p) || !matches!(*p, "apiVersion" | "kind"))
            .collect();
        if ours != theirs {
            mismatches.push(format!(
                "{name}: only in proto {:?}, only in schema {:?}",
                ours.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&ours).collect::<Vec<_>>()
            ));
        }
    }
    assert!(checked > 300, "checked only {checked} schemas");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A state whose store has the system namespaces, for tests that create objects.
async fn namespaced_state() -> AppState {
    let state = state();
    state.registry().ensure_system_namespaces().await.unwrap();
    state
}

/// One request with the given headers and body; the answer's status, headers and bytes.
async fn exchange(
    state: &AppState,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(body.to_owned())).unwrap();
    request.extensions_mut().insert(admin());
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

fn content_type(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn yaml_bodies_and_answers() {
    let state = namespaced_state().await;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  color: blue\n";
    let (status, headers, body) = exchange(
        &state,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[
            ("content-type", "application/yaml"),
            ("accept", "application/yaml"),
        ],
        yaml,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(content_type(&headers), "application/yaml");
    let created: Value = serde_yaml_ng::from_slice(&body).unwrap();
    assert_eq!(created["data"]["color"], "blue");
    assert!(created["metadata"]["uid"].is_string());
    // Broken YAML is a 400 and stores nothing; a watch cannot be YAML.
    let (status, _, _) = exchange(
        &state,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/yaml")],
        "metadata: [unclosed\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true",
        &[("accept", "application/yaml")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["reason"], "NotAcceptable");
}

#[tokio::test]
async fn partial_object_metadata_for_metadata_clients() {
    let state = namespaced_state().await;
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","labels":{"a":"b"}},"data":{"k":"v"}}"#;
    let (status, _, _) = exchange(
        &state,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[],
        cm,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, body) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        )],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type(&headers),
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    );
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["a"], "b");
    assert!(list["items"][0].get("data").is_none());
    let (_, _, body) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/web",
        &[(
            "accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )],
        "",
    )
    .await;
    let object: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["name"], "web");
    // Only protobuf accepted: nothing the server writes.
    let (status, _, _) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/web",
        &[("accept", "application/vnd.kubernetes.protobuf")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn aggregated_discovery_for_clients_that_ask() {
    let state = namespaced_state().await;
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for path in ["/api", "/apis"] {
        let (status, headers, body) =
            exchange(&state, "GET", path, &[("accept", accept)], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type(&headers),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert!(headers.get(header::ETAG).is_some());
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        assert!(!body["items"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn metrics_count_resource_requests() {
    let state = namespaced_state().await;
    exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        "",
    )
    .await;
    exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/missing",
        &[],
        "",
    )
    .await;
    let (status, headers, body) = exchange(&state, "GET", "/metrics", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type(&headers).starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 1"#), "{text}");
    assert!(text.contains(r#"apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 1"#), "{text}");
    assert!(text.contains("apiserver_request_duration_seconds_bucket{"));
}

/// A pod bound to a node and running, as its kubelet reports it.
async fn running_pod(state: &AppState, name: &str) {
    use crate::registry::Part;
    let pods = apimachinery::resources::find("", "v1", "pods").unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}});
    let created = state
        .registry()
        .create(pods, Some("default"), pod, false)
        .await
        .unwrap();
    let mut running = created.clone();
    running["status"] =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    state
        .registry()
        .update(pods, Some("default"), name, running, Part::Status, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn eviction_honours_the_disruption_budget() {
    use crate::registry::Part;
    let state = namespaced_state().await;
    running_pod(&state, "web-1").await;
    let pdbs = apimachinery::resources::find("policy", "v1", "poddisruptionbudgets").unwrap();
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let created = state
        .registry()
        .create(pdbs, Some("default"), pdb, false)
        .await
        .unwrap();
    let mut observed = created.clone();
    observed["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1});
    state
        .registry()
        .update(
            pdbs,
            Some("default"),
            "web",
            observed.clone(),
            Part::Status,
            false,
        )
        .await
        .unwrap();
    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"web-1","namespace":"default"}}"#;
    let path = "/api/v1/namespaces/default/pods/web-1/eviction";
    let (status, _, body) = exchange(&state, "POST", path, &[], eviction).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget web needs 1 healthy pods and has 1 currently"
    );
    // The disruption controller allows one: the eviction spends it and the pod goes
    // gracefully (it is bound to a node).
    let mut current = state
        .registry()
        .get(pdbs, Some("default"), "web")
        .await
        .unwrap();
    current["status"]["disruptionsAllowed"] = json!(1);
    current["status"]["currentHealthy"] = json!(2);
    state
        .registry()
        .update(pdbs, Some("default"), "web", current, Part::Status, false)
        .await
        .unwrap();
    let (status, _, body) = exchange(&state, "POST", path, &[], eviction).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "Success");
    let pdb = state
        .registry()
        .get(pdbs, Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"]["web-1"].is_string());
    let pods = apimachinery::resources::find("", "v1", "pods").unwrap();
    let pod = state
        .registry()
        .get(pods, Some("default"), "web-1")
        .await
        .unwrap();
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    // A name that does not match the URL's.
    let (status, _, _) = exchange(
        &state,
        "POST",
        "/api/v1/namespaces/default/pods/other/eviction",
        &[],
        eviction,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delete_options_shape_the_deletion() {
    let state = namespaced_state().await;
    running_pod(&state, "web-1").await;
    let path = "/api/v1/namespaces/default/pods/web-1";
    let (status, _, body) =
        exchange(&state, "DELETE", path, &[], r#"{"gracePeriodSeconds":10}"#).await;
    assert_eq!(status, StatusCode::OK);
    let marked: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 10);
    // Force: the pod goes at once.
    let (status, _, _) = exchange(
        &state,
        "DELETE",
        &format!("{path}?gracePeriodSeconds=0"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = exchange(&state, "GET", path, &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Orphan propagation leaves the object to the garbage collector's finalizer.
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#;
    exchange(
        &state,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[],
        cm,
    )
    .await;
    let (status, _, body) = exchange(
        &state,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c?propagationPolicy=Orphan",
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let held: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(held["metadata"]["finalizers"], json!(["orphan"]));
    let (status, _, body) = exchange(
        &state,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        &[],
        r#"{"propagationPolicy":"Sometimes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["details"]["kind"], "DeleteOptions");
}

#[tokio::test]
async fn selector_watches_see_only_what_matched_and_a_departure_as_the_last_match() {
    let state = namespaced_state().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let (_, _, list) = exchange(&state, "GET", base, &[], "").await;
    let list: Value = serde_json::from_slice(&list).unwrap();
    let start = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, labels) in [("picked", r#"{"pick":"yes"}"#), ("plain", "{}")] {
        let cm = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{labels}}}}}"#
        );
        exchange(&state, "POST", base, &[], &cm).await;
    }
    let (status, _, patched) = exchange(
        &state,
        "PATCH",
        &format!("{base}/picked"),
        &[("content-type", "application/merge-patch+json")],
        r#"{"metadata":{"labels":{"pick":"no"}},"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let patched: Value = serde_json::from_slice(&patched).unwrap();
    let (status, _, _) = exchange(&state, "DELETE", &format!("{base}/plain"), &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, body) = exchange(
        &state,
        "GET",
        &format!(
            "{base}?watch=true&timeoutSeconds=1&resourceVersion={start}&labelSelector=pick%3Dyes"
        ),
        &[],
        "",
    )
    .await;
    let events: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let object = &e["object"]["metadata"];
            (
                e["type"].as_str().unwrap(),
                object["name"].as_str().unwrap(),
            )
        })
        .collect();
    // "plain" never matched: neither its creation nor its deletion is sent
    assert_eq!(
        seen,
        [("ADDED", "picked"), ("DELETED", "picked")],
        "{events:?}"
    );
    let departed = &events[1]["object"];
    assert_eq!(
        departed["metadata"]["labels"]["pick"], "yes",
        "as it last matched"
    );
    assert!(departed.get("data").is_none(), "{departed}");
    assert_eq!(
        departed["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"],
        "at the change's version"
    );
}

#[tokio::test]
async fn watch_list_sends_the_state_then_a_bookmark_ending_it() {
    let state = namespaced_state().await;
    for name in ["a", "b"] {
        let cm =
            format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#);
        exchange(
            &state,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[],
            &cm,
        )
        .await;
    }
    let base = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1";
    let (status, _, body) = exchange(
        &state,
        "GET",
        &format!("{base}&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[..3], ["ADDED", "ADDED", "BOOKMARK"], "{events:?}");
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // Without initial events, a watch from now sees nothing of the past.
    let (_, _, body) = exchange(
        &state,
        "GET",
        &format!("{base}&sendInitialEvents=false&resourceVersionMatch=NotOlderThan"),
        &[],
        "",
    )
    .await;
    assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    // upstream's ValidateListOptions
    for (query, message) in [
        (
            format!("{base}&sendInitialEvents=true"),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"#,
        ),
        (
            format!("{base}&resourceVersionMatch=NotOlderThan"),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"#,
        ),
        (
            "/api/v1/namespaces/default/configmaps?sendInitialEvents=true".to_owned(),
            r#"ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"#,
        ),
        (
            "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact".to_owned(),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"#,
        ),
    ] {
        let (status, _, body) = exchange(&state, "GET", &query, &[], "").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["message"], message);
    }
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let state = namespaced_state().await;
    let padding = "x".repeat(4096);
    for i in 0..40 {
        let cm = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}"}},"data":{{"pad":"{padding}"}}}}"#
        );
        exchange(
            &state,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[],
            &cm,
        )
        .await;
    }
    let gzip = [("accept-encoding", "gzip")];
    let (status, headers, body) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &gzip,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(body[..2], [0x1f, 0x8b], "a gzip stream");
    assert!(body.len() < 40 * 4096, "compressed: {} bytes", body.len());
    // Small answers, and clients that do not ask, get plain JSON.
    let (_, headers, _) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/cm-1",
        &gzip,
        "",
    )
    .await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    let (_, headers, body) = exchange(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        "",
    )
    .await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body[0], b'{');
}

/// A server-side apply of a YAML body, with the query's parameters.
async fn apply_yaml(state: &AppState, path: &str, query: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = exchange(
        state,
        "PATCH",
        &format!("{path}?{query}"),
        &[("content-type", "application/apply-patch+yaml")],
        body,
    )
    .await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn server_side_apply_requests_are_checked_as_upstream_checks_them() {
    let state = namespaced_state().await;
    let path = "/api/v1/namespaces/default/configmaps/cfg";
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n";

    // no field manager: 422 on PatchOptions
    let (status, body) = apply_yaml(&state, path, "", config).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
    // force on a merge patch
    let (status, _, bytes) = exchange(
        &state,
        "PATCH",
        &format!("{path}?force=true"),
        &[("content-type", "application/merge-patch+json")],
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
    );

    // the wrong kind, managedFields in the body, and a body that fits no schema
    let (status, body) = apply_yaml(
        &state,
        path,
        "fieldManager=m",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: cfg\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "invalid object type: /v1, Kind=Pod");
    let (status, body) = apply_yaml(
        &state,
        path,
        "fieldManager=m",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  managedFields: []\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "metadata.managedFields must be nil");
    let (status, body) = apply_yaml(
        &state,
        path,
        "fieldManager=m",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\nbogus: 1\n",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body["message"],
        "failed to create typed patch object (default/cfg; /v1, Kind=ConfigMap): .bogus: field not declared in schema"
    );
    // nothing of that was stored
    let (status, _, _) = exchange(&state, "GET", path, &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // a dry run creates nothing, then the apply creates (201) and re-applies (200)
    let (status, body) = apply_yaml(&state, path, "fieldManager=m&dryRun=All", config).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["managedFields"][0]["manager"], "m");
    let (status, _, _) = exchange(&state, "GET", path, &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = apply_yaml(&state, path, "fieldManager=m", config).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let entry = &body["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    let (status, body) = apply_yaml(&state, path, "fieldManager=m", config).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // a JSON merge patch by a named manager takes the field it changes, and then
    // the applier conflicts with it (409, one cause per field)
    let (status, _, _) = exchange(
        &state,
        "PATCH",
        &format!("{path}?fieldManager=editor"),
        &[("content-type", "application/merge-patch+json")],
        r#"{"data":{"a":"2"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = apply_yaml(&state, path, "fieldManager=m", config).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["message"],
        r#"Apply failed with 1 conflict: conflict with "editor" using v1: .data.a"#
    );
    assert_eq!(
        body["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"editor\" using v1", "field": ".data.a"}])
    );
    let (status, body) = apply_yaml(&state, path, "fieldManager=m&force=true", config).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["a"], "1");
    let managers: Vec<&str> = body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["m"]);
}
