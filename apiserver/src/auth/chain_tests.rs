//! The security chain through the router, no socket: a server with upstream's
//! bootstrap policy, RBAC and Node authorization, bearer tokens (token file,
//! service-account JWTs, bootstrap tokens), impersonation, the review APIs and
//! admission, each answering as upstream does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::UserInfo;
use super::admission::{Chain, Context};
use super::authn::Authenticator;
use super::authn::service_account::{DEFAULT_ISSUER, ServiceAccountKeys};
use super::authn::token_file::TokenFile;
use super::authz::node::NodeAuthorizer;
use super::authz::rbac::{Rbac, RbacAuthorizer};
use super::authz::{Authorize, Authorizer, bootstrap_policy};
use super::filter::Security;
use crate::http::{AppState, router};
use crate::registry::Registry;
use crate::registry::informer::Informer;
use crate::storage::memory::MemoryStore;

const TOKENS: &str = "jane-token,jane,1001,\"dev\"\nbob-token,bob,1002\n";

/// A secured server over memory: bootstrap policy, Node,RBAC, tokens, default
/// admission (without ServiceAccount, whose accounts a controller would create).
async fn secured() -> AppState {
    let storage = Arc::new(MemoryStore::new());
    let base = Registry::new(storage.clone());
    base.ensure_system_namespaces().await.unwrap();
    bootstrap_policy::reconcile(&base).await.unwrap();
    let rbac = Rbac::start(&base);
    assert!(rbac.wait_synced(Duration::from_secs(10)).await);
    let pods = Informer::start(
        base.clone(),
        apimachinery::resources::find("", "v1", "pods").unwrap(),
    );
    let claims = Informer::start(
        base.clone(),
        apimachinery::resources::find("", "v1", "persistentvolumeclaims").unwrap(),
    );
    let modes: Vec<Arc<dyn Authorize>> = vec![
        Arc::new(NodeAuthorizer::new(pods, claims)),
        Arc::new(RbacAuthorizer::new(rbac.clone())),
    ];
    let authorizer = Authorizer::new(modes);
    let keys = Arc::new(
        ServiceAccountKeys::new(
            DEFAULT_ISSUER,
            &super::authn::service_account::tests::test_keys().private_pem,
            None,
        )
        .unwrap(),
    );
    let mut authenticator = Authenticator::new(base.clone());
    authenticator.token_file = Some(Arc::new(TokenFile::parse(TOKENS).unwrap()));
    authenticator.service_accounts = Some(keys.clone());
    authenticator.api_audiences = vec![DEFAULT_ISSUER.to_owned()];
    authenticator.bootstrap_tokens = true;
    let chain = Chain::from_flags(
        &[],
        &["ServiceAccount".to_owned()],
        Context {
            registry: base.clone(),
            authorizer: authorizer.clone(),
            rbac: Some(rbac.clone()),
        },
    )
    .unwrap();
    let registry = base.with_admission(chain);
    let security = Security {
        authenticator,
        authorizer,
        rbac: Some(rbac),
        service_account_keys: Some(keys),
    };
    AppState::with_security(
        registry,
        storage,
        "127.0.0.1:6443".parse().unwrap(),
        security,
    )
}

fn admin() -> UserInfo {
    UserInfo::new("kubernetes-admin", &["system:masters"])
}

/// Who sends a request.
enum As<'a> {
    Certificate(UserInfo),
    Token(&'a str),
    Anonymous,
}

async fn call(
    state: &AppState,
    who: As<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, value, _) = call_for_headers(state, who, method, path, headers, body).await;
    (status, value)
}

/// [`call`], with the response's headers.
async fn call_for_headers(
    state: &AppState,
    who: As<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut builder = Request::builder().method(method).uri(path);
    if let As::Token(token) = who {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).unwrap();
    if let As::Certificate(user) = who {
        request
            .extensions_mut()
            .insert(super::filter::CertificateUser(user));
    }
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, headers)
}

/// Creates `object` at `path` as the cluster admin; the created object.
async fn create_as_admin(state: &AppState, path: &str, object: Value) -> Value {
    let admin = As::Certificate(admin());
    let (status, body) = call(state, admin, "POST", path, &[], Some(object)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// A SelfSubjectReview sent with bearer `token`: who the server says it is.
async fn whoami(state: &AppState, token: &str) -> (StatusCode, Value, axum::http::HeaderMap) {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    call_for_headers(state, As::Token(token), "POST", path, &[], Some(review)).await
}

/// Retries `check` for up to 5 s: RBAC follows the store through a watch, as upstream's
/// informer-fed authorizer does.
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 5s");
}

#[tokio::test]
async fn anonymous_reads_public_info_only() {
    let state = secured().await;
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (status, _) = call(&state, As::Anonymous, "GET", path, &[], None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = call(&state, As::Anonymous, "GET", "/metrics", &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&state, As::Anonymous, "GET", "/api", &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/api""#
    );
    let (status, body) = call(
        &state,
        As::Anonymous,
        "GET",
        "/api/v1/namespaces/default/pods",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    assert_eq!(body["details"]["kind"], "pods");
}

#[tokio::test]
async fn refused_tokens_are_401_and_known_tokens_are_their_users() {
    let state = secured().await;
    let (status, body) = call(&state, As::Token("nobody"), "GET", "/version", &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["message"], "Unauthorized");
    // jane may discover the API (system:basic-user, system:discovery) but not list pods
    let (status, _) = call(&state, As::Token("jane-token"), "GET", "/api", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[],
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "jane", "uid": "1001", "groups": ["dev", "system:authenticated"]})
    );
}

#[tokio::test]
async fn rbac_grants_through_bindings_and_can_i_sees_it() {
    let state = secured().await;
    let can_i = |namespace: &'static str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": "list", "resource": "pods"}}})
    };
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[],
        Some(can_i("default")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"]["allowed"], false);

    // the admin binds view to group dev in default
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dev-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}]});
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &[],
        Some(binding),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    eventually(|| async {
        call(
            &state,
            As::Token("jane-token"),
            "GET",
            "/api/v1/namespaces/default/pods",
            &[],
            None,
        )
        .await
        .0 == StatusCode::OK
    })
    .await;
    let (_, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[],
        Some(can_i("default")),
    )
    .await;
    assert_eq!(body["status"]["allowed"], true);
    // only in default, and view does not write
    let (status, _) = call(
        &state,
        As::Token("jane-token"),
        "GET",
        "/api/v1/namespaces/kube-system/pods",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[],
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "default""#
    );

    // SelfSubjectRulesReview lists what view grants
    let (_, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        &[],
        Some(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "default"}}),
        ),
    )
    .await;
    let rules = body["status"]["resourceRules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["resources"].as_array().unwrap().contains(&json!("pods")))
    );
    assert_eq!(body["status"]["incomplete"], false);

    // SubjectAccessReview about bob, by the admin
    let (_, body) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        Some(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "bob", "groups": ["dev"], "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}})),
    )
    .await;
    assert_eq!(body["status"]["allowed"], true);
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        Some(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "bob"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn no_one_grants_what_they_do_not_hold() {
    let state = secured().await;
    // jane may write roles and bindings in default (admin there) but holds no secrets
    // access cluster-wide
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "jane-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]});
    let (status, _) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &[],
        Some(binding),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let role = |verbs: Value, resources: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]})
    };
    eventually(|| async {
        call(
            &state,
            As::Token("jane-token"),
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles?dryRun=All",
            &[],
            Some(role(json!(["get"]), json!(["pods"]))),
        )
        .await
        .0 == StatusCode::CREATED
    })
    .await;
    // admin does not include nodes (cluster-scoped) nor the escalate verb
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        &[],
        Some(role(json!(["get", "list"]), json!(["pods", "nodes"]))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"jane\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\" \"list\"]}"
    );
    // upstream checks escalation before the role's own validation: an escalating role
    // that is also invalid is forbidden, not invalid
    let mut bad_name = role(json!(["get"]), json!(["nodes"]));
    bad_name["metadata"]["name"] = json!("Bad_Name");
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        &[],
        Some(bad_name),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // binding cluster-admin in her namespace is binding rules she does not hold
    let grab = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "grab"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]});
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &[],
        Some(grab),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{body}"
    );
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb() {
    let state = secured().await;
    let (status, body) = call(
        &state,
        As::Token("jane-token"),
        "GET",
        "/api/v1/namespaces",
        &[
            ("Impersonate-User", "kubernetes-admin"),
            ("Impersonate-Group", "system:masters"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"users "kubernetes-admin" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    // the admin may: and is then bob, who may not list namespaces
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "GET",
        "/api/v1/namespaces",
        &[("Impersonate-User", "bob")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"namespaces is forbidden: User "bob" cannot list resource "namespaces" in API group "" at the cluster scope"#
    );
}

#[tokio::test]
async fn service_account_tokens_live_and_die_with_their_objects() {
    let state = secured().await;
    let admin = || As::Certificate(admin());
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}});
    create_as_admin(&state, "/api/v1/namespaces/default/serviceaccounts", sa).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "nginx"}]}});
    let pod = create_as_admin(&state, "/api/v1/namespaces/default/pods", pod).await;

    // too short a lifetime is refused as upstream
    let (status, body) = call(
        &state,
        admin(),
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/builder/token",
        &[],
        Some(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 10}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        r#"TokenRequest.authentication.k8s.io "builder" is invalid: spec.expirationSeconds: Invalid value: 10: may not specify a duration less than 10 minutes"#
    );

    let (status, body) = call(
        &state,
        admin(),
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/builder/token",
        &[],
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["status"]["token"].as_str().unwrap().to_owned();
    assert!(body["status"]["expirationTimestamp"].is_string());

    let (status, body, _) = whoami(&state, &token).await;
    assert_eq!(status, StatusCode::CREATED);
    let user = &body["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:builder");
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["p"])
    );

    // TokenReview: the token is valid for the API, not for another audience
    let review = |audiences: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}})
    };
    let (_, body) = call(
        &state,
        admin(),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        Some(review(json!([]))),
    )
    .await;
    assert_eq!(body["status"]["authenticated"], true);
    let (_, body) = call(
        &state,
        admin(),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        Some(review(json!(["vault"]))),
    )
    .await;
    assert_eq!(body["status"]["authenticated"], false);

    // a forged token is refused
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = call(&state, As::Token(&forged), "GET", "/version", &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // the token dies with its pod
    let (status, _) = call(
        &state,
        admin(),
        "DELETE",
        "/api/v1/namespaces/default/pods/p",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // (a token that authenticated is remembered for 10 s, as upstream)
    for _ in 0..60 {
        let (status, _, _) = whoami(&state, &token).await;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the token outlived its pod by more than 15 s");
}

#[tokio::test]
async fn an_auto_generated_legacy_token_is_warned_about_on_every_answer() {
    use super::authn::service_account::tests::{legacy_claims, legacy_token, test_keys};
    use base64::Engine;
    let state = secured().await;
    let admin = || As::Certificate(admin());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}});
    create_as_admin(&state, "/api/v1/namespaces", namespace).await;
    // the account lists the Secret: the token controller generated it
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "builder"}, "secrets": [{"name": "builder-token"}]});
    let account = create_as_admin(&state, "/api/v1/namespaces/dev/serviceaccounts", account).await;
    let uid = account["metadata"]["uid"].as_str().unwrap();
    let keys = ServiceAccountKeys::new(DEFAULT_ISSUER, &test_keys().private_pem, None).unwrap();
    let token = legacy_token(&keys, &legacy_claims(uid));
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "builder-token", "annotations": {
            "kubernetes.io/service-account.name": "builder",
            "kubernetes.io/service-account.uid": uid}},
        "type": "kubernetes.io/service-account-token",
        "data": {"token": base64::engine::general_purpose::STANDARD.encode(&token)}});
    create_as_admin(&state, "/api/v1/namespaces/dev/secrets", secret).await;
    let warning = "299 - \"Use tokens from the TokenRequest API or manually created secret-based tokens instead of auto-generated secret-based tokens.\"";
    let warnings = |headers: &axum::http::HeaderMap| -> Vec<String> {
        headers
            .get_all(header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let (status, body, headers) = whoami(&state, &token).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["status"]["userInfo"]["username"],
        "system:serviceaccount:dev:builder"
    );
    assert_eq!(warnings(&headers), [warning]);
    // a refusal carries it too, and a cached authentication replays it
    let (status, _, headers) = call_for_headers(
        &state,
        As::Token(&token),
        "GET",
        "/api/v1/namespaces/kube-system/secrets",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(warnings(&headers), [warning]);
    // a TokenReview of the token passes the warning on to the reviewer
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}});
    let (status, body, headers) = call_for_headers(
        &state,
        admin(),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        Some(review),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"]["authenticated"], true);
    assert_eq!(warnings(&headers), [warning]);
    // the admin's own requests carry none
    let (_, _, headers) = call_for_headers(&state, admin(), "GET", "/version", &[], None).await;
    assert!(warnings(&headers).is_empty());
}

#[tokio::test]
async fn bootstrap_tokens_authenticate_while_valid() {
    let state = secured().await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-abcdef"},
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true"}});
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/api/v1/namespaces/kube-system/secrets",
        &[],
        Some(secret),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &state,
        As::Token("abcdef.0123456789abcdef"),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[],
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    let (status, _) = call(
        &state,
        As::Token("abcdef.0123456789abcdee"),
        "GET",
        "/version",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_kubelet_reads_only_its_own_pods_secrets() {
    let state = secured().await;
    for name in ["mine", "theirs"] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}});
        create_as_admin(&state, "/api/v1/namespaces/default/secrets", secret).await;
    }
    for (pod, node, secret) in [("a", "n1", "mine"), ("b", "n2", "theirs")] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx",
                "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}});
        create_as_admin(&state, "/api/v1/namespaces/default/pods", pod).await;
    }
    let kubelet = || As::Certificate(UserInfo::new("system:node:n1", &["system:nodes"]));
    eventually(|| async {
        call(
            &state,
            kubelet(),
            "GET",
            "/api/v1/namespaces/default/secrets/mine",
            &[],
            None,
        )
        .await
        .0 == StatusCode::OK
    })
    .await;
    let (status, body) = call(
        &state,
        kubelet(),
        "GET",
        "/api/v1/namespaces/default/secrets/theirs",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"secrets "theirs" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#
    );
    // listing secrets is never a kubelet's business
    let (status, _) = call(
        &state,
        kubelet(),
        "GET",
        "/api/v1/namespaces/default/secrets",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // pods it may read (system:node's rules), other nodes' objects it may not write
    let (status, _) = call(
        &state,
        kubelet(),
        "GET",
        "/api/v1/namespaces/default/pods/b",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oidc_discovery_serves_the_issuer_and_keys() {
    let state = secured().await;
    // anonymous may not read them (only service accounts, by upstream's policy)
    let (status, _) = call(&state, As::Anonymous, "GET", "/openid/v1/jwks", &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "GET",
        "/.well-known/openid-configuration",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], DEFAULT_ISSUER);
    let (_, body) = call(
        &state,
        As::Certificate(admin()),
        "GET",
        "/openid/v1/jwks",
        &[],
        None,
    )
    .await;
    assert_eq!(body["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn admission_sets_priority_and_tolerations_on_pods() {
    let state = secured().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"priorityClassName": "system-node-critical", "containers": [{"name": "c", "image": "nginx"}]}});
    state
        .registry()
        .ensure_system_priority_classes()
        .await
        .unwrap();
    // the Priority plugin's informer may not have the classes yet: retry
    let mut created = Value::Null;
    for _ in 0..250 {
        let (status, body) = call(
            &state,
            As::Certificate(admin()),
            "POST",
            "/api/v1/namespaces/default/pods",
            &[],
            Some(pod.clone()),
        )
        .await;
        created = body;
        if status == StatusCode::CREATED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(created["spec"]["priority"], 2000001000);
    let tolerations = created["spec"]["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0]["tolerationSeconds"], 300);
}

#[tokio::test]
async fn parallel_creates_cannot_overshoot_a_quota() {
    let state = secured().await;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "few"},
        "spec": {"hard": {"configmaps": "3"}}});
    // a quota enforces its status's limits, which the quota controller (not running
    // here) would set: the test writes them, as upstream's integration tests do
    let create_synced = |quota: Value, used: Value| {
        let state = state.clone();
        async move {
            let (status, mut body) = call(
                &state,
                As::Certificate(admin()),
                "POST",
                "/api/v1/namespaces/default/resourcequotas",
                &[],
                Some(quota),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["status"] = json!({"hard": body["spec"]["hard"].clone(), "used": used});
            let name = body["metadata"]["name"].as_str().unwrap().to_owned();
            let (status, body) = call(
                &state,
                As::Certificate(admin()),
                "PUT",
                &format!("/api/v1/namespaces/default/resourcequotas/{name}/status"),
                &[],
                Some(body),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    create_synced(quota, json!({"configmaps": "0"})).await;
    // the plugin's informer must see the quota first: a second quota allowing no
    // secrets, created after it, refusing a (dry-run) secret shows it has both
    let probe = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "probe"},
        "spec": {"hard": {"secrets": "0"}}});
    create_synced(probe, json!({"secrets": "0"})).await;
    eventually(|| async {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        call(
            &state,
            As::Certificate(admin()),
            "POST",
            "/api/v1/namespaces/default/secrets?dryRun=All",
            &[],
            Some(secret),
        )
        .await
        .0 == StatusCode::FORBIDDEN
    })
    .await;
    let mut creates = Vec::new();
    for i in 0..10 {
        let state = state.clone();
        creates.push(tokio::spawn(async move {
            let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("m{i}")}});
            call(&state, As::Certificate(admin()), "POST", "/api/v1/namespaces/default/configmaps", &[], Some(map)).await
        }));
    }
    let mut created = 0;
    let mut refusal = Value::Null;
    for create in creates {
        let (status, body) = create.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => refusal = body,
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 3);
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.ends_with("is forbidden: exceeded quota: few, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"),
        "{message}"
    );
}

#[tokio::test]
async fn aggregation_rules_are_accepted_from_cluster_admins_only() {
    let state = secured().await;
    let aggregated = |name: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}})
    };
    let (status, body) = call(
        &state,
        As::Certificate(admin()),
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        &[],
        Some(aggregated("monitoring")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["aggregationRule"]["clusterRoleSelectors"].is_array());
    // jane may write ClusterRoles (bound below) but is no cluster admin
    let writer = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "jane-roles"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jane-roles"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]});
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "jane-roles"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}]});
    for (path, object) in [
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            writer,
        ),
    ] {
        let (status, body) = call(
            &state,
            As::Certificate(admin()),
            "POST",
            path,
            &[],
            Some(object),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // (RBAC follows the store: retry until jane's binding is seen)
    let mut refused = Value::Null;
    for _ in 0..250 {
        let (status, body) = call(
            &state,
            As::Token("jane-token"),
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &[],
            Some(aggregated("sneaky")),
        )
        .await;
        refused = body;
        if status == StatusCode::FORBIDDEN
            && refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("aggregationRule"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        refused["message"],
        r#"clusterroles.rbac.authorization.k8s.io "sneaky" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );
}
