//! Bad requests never panic the server and never leave a half-made object: a bounded,
//! deterministic fuzz over paths, methods, query strings and bodies (mutations of valid
//! objects, truncations, wrong types), each sent through the real router over the
//! in-memory store. Every answer must be a valid HTTP response; every error answer a
//! `metav1.Status` carrying its own code.

use std::sync::Arc;

use apiserver::auth::UserInfo;
use apiserver::http::{AppState, router};
use apiserver::storage::memory::MemoryStore;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/web",
    "/api/v1/namespaces/default/pods/p/status",
    "/api/v1/namespaces/missing/secrets",
    "/api/v1/namespaces/default/services",
    "/api/v1/namespaces/default",
    "/api/v1/namespaces/default/status",
    "/api/v1/nodes/n1",
    "/api/v1/configmaps",
    "/api/v1/watch/namespaces/default/configmaps",
    "/apis/apps/v1/namespaces/default/deployments/d",
    "/apis/apps/v1/namespaces/default/deployments/d/scale",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/x",
    "/apis/nope/v1/things",
    "/api/v1/namespaces/default/configmaps/a/b/c/d",
    "/api/v1/%ff%fe",
    "/api/v1//",
];
const QUERIES: &[&str] = &[
    "",
    "?labelSelector=a%3Db",
    "?labelSelector=a+in+(",
    "?fieldSelector=metadata.name%3Dweb",
    "?fieldSelector=spec.bogus%3D1",
    "?limit=1",
    "?limit=-5",
    "?continue=garbage",
    "?resourceVersion=abc",
    "?resourceVersion=999999&resourceVersionMatch=Exact",
    "?dryRun=All",
    "?watch=true&timeoutSeconds=0",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn bodies(rng: &mut Rng) -> Vec<u8> {
    let valid = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "type": "NodePort"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/b"]}, "spec": {"nodeName": "n1"}}),
    ];
    let mut body = rng.pick(&valid).clone();
    let junk: &[Value] = &[
        json!(null),
        json!(7),
        json!("x"),
        json!([1, 2]),
        json!({"a": {}}),
        json!(-1),
        json!(true),
    ];
    match rng.next() % 9 {
        0 => body["metadata"] = rng.pick(junk).clone(),
        1 => body["metadata"]["name"] = rng.pick(junk).clone(),
        2 => body["metadata"]["labels"] = json!({"k": "x".repeat(70)}),
        3 => body["kind"] = rng.pick(junk).clone(),
        4 => body["spec"] = rng.pick(junk).clone(),
        5 => body["metadata"]["namespace"] = json!("other"),
        6 => body["spec"]["ports"] = json!([{"port": "eighty"}, {"nodePort": 99999, "port": 1}]),
        7 => body["metadata"]["resourceVersion"] = rng.pick(junk).clone(),
        _ => {}
    }
    let mut bytes = serde_json::to_vec(&body).unwrap();
    match rng.next() % 40 {
        0..=5 => bytes.truncate((rng.next() % (bytes.len() as u64 + 1)) as usize),
        6..=11 => bytes = b"[]".to_vec(),
        12..=17 => bytes = vec![0xff, 0xfe, b'{'],
        18 => bytes = vec![b' '; 4 << 20],
        _ => {}
    }
    bytes
}

#[tokio::test]
async fn no_request_panics_or_answers_without_a_status() {
    let state = AppState::new(
        Arc::new(MemoryStore::new()),
        "127.0.0.1:6443".parse().unwrap(),
    );
    state.registry().ensure_system_namespaces().await.unwrap();
    let admin = UserInfo::new("admin", &["system:masters"]);

    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let path = format!("{}{}", rng.pick(PATHS), rng.pick(QUERIES));
        let method = *rng.pick(METHODS);
        let body = bodies(&mut rng);
        let content_type = *rng.pick(&[
            "application/json",
            "application/merge-patch+json",
            "application/json-patch+json",
            "application/strategic-merge-patch+json",
            "application/vnd.kubernetes.protobuf",
            "text/plain",
        ]);
        let Ok(mut request) = Request::builder()
            .method(method)
            .uri(&path)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.clone()))
        else {
            continue;
        };
        request.extensions_mut().insert(admin.clone());
        let response = router(state.clone())
            .oneshot(request)
            .await
            .expect("the router always answers");
        let status = response.status();
        let watch = path.contains("watch");
        if watch && status.is_success() {
            continue; // a stream; timeoutSeconds=0 or selectors end it
        }
        let bytes = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            axum::body::to_bytes(response.into_body(), 64 << 20),
        )
        .await
        .expect("a non-watch body completes")
        .expect("a body");
        if !status.is_success() {
            let status_body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: error body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert_eq!(
                status_body["kind"], "Status",
                "{method} {path}: {status_body}"
            );
            assert_eq!(
                status_body["code"],
                status.as_u16(),
                "{method} {path}: {status_body}"
            );
        }
    }
}
