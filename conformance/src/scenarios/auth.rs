//! As upstream's test/e2e/auth/subjectreviews.go and service_accounts.go (the API
//! parts: what the pods would observe is checked on the objects the server returns).

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::fail;
use crate::Cluster;

/// Retries `check` for up to 30 s (controllers and authorizers follow the store).
fn eventually(what: &str, mut check: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within 30s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// POSTs `body` to `path` (`kubectl create --raw`), decoded as JSON.
fn post(cluster: &Cluster, path: &str, body: &Value) -> Result<Value, String> {
    let answer = cluster
        .kubectl_stdin(&["create", "--raw", path, "-f", "-"], &body.to_string())
        .map_err(fail)?;
    serde_json::from_str(&answer).map_err(fail)
}

/// "SubjectReview should support SubjectReview API operations": a user without
/// bindings is refused by SubjectAccessReview and LocalSubjectAccessReview alike, and
/// allowed once a Role binding grants the verb.
pub fn subject_review(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("subjectreview").map_err(fail)?;
    let user = Cluster::unique_name("e2e-user");
    let attributes = json!({"namespace": ns, "verb": "list", "resource": "configmaps"});
    let review = |local: bool| -> Result<bool, String> {
        let (path, kind) = if local {
            (
                format!("/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews"),
                "LocalSubjectAccessReview",
            )
        } else {
            (
                "/apis/authorization.k8s.io/v1/subjectaccessreviews".to_owned(),
                "SubjectAccessReview",
            )
        };
        let mut body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind,
            "spec": {"user": user, "resourceAttributes": attributes}});
        if local {
            body["metadata"] = json!({"namespace": ns});
        }
        let answer = post(cluster, &path, &body)?;
        answer["status"]["allowed"]
            .as_bool()
            .ok_or_else(|| format!("no status.allowed in {answer}"))
    };
    if review(false)? || review(true)? {
        return Err(format!(
            "{user} is allowed to list configmaps without any binding"
        ));
    }
    cluster
        .kubectl(&[
            "create",
            "role",
            "cm-reader",
            "-n",
            &ns,
            "--verb=list",
            "--resource=configmaps",
        ])
        .map_err(fail)?;
    cluster
        .kubectl(&[
            "create",
            "rolebinding",
            "cm-reader",
            "-n",
            &ns,
            "--role=cm-reader",
            &format!("--user={user}"),
        ])
        .map_err(fail)?;
    eventually("the binding to take effect", || {
        Ok(review(false)? && review(true)?)
    })?;
    // kubectl auth can-i --as asks the same through impersonation
    let can = cluster
        .kubectl(&[
            "auth",
            "can-i",
            "list",
            "configmaps",
            "-n",
            &ns,
            &format!("--as={user}"),
        ])
        .map_err(fail)?;
    if can.trim() != "yes" {
        return Err(format!("kubectl auth can-i --as said {can:?}"));
    }
    Ok(())
}

/// "ServiceAccounts should guarantee kube-root-ca.crt exist in any namespace": the
/// ConfigMap appears in a new namespace and comes back after being deleted or changed.
pub fn root_ca_configmap(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("root-ca").map_err(fail)?;
    let path = format!("/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt");
    let present = || {
        cluster
            .get_json(&path)
            .map(|m| m["data"]["ca.crt"].is_string())
            .or(Ok(false))
    };
    eventually("kube-root-ca.crt in a new namespace", present)?;
    cluster
        .kubectl(&["delete", "configmap", "kube-root-ca.crt", "-n", &ns])
        .map_err(fail)?;
    eventually("kube-root-ca.crt recreated", present)?;
    cluster
        .kubectl(&[
            "patch",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"data":{"ca.crt":"changed"}}"#,
        ])
        .map_err(fail)?;
    eventually("kube-root-ca.crt reconciled", || {
        Ok(cluster
            .get_json(&path)
            .map(|m| {
                m["data"]["ca.crt"]
                    .as_str()
                    .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
            })
            .unwrap_or(false))
    })
}

/// "ServiceAccounts ServiceAccountIssuerDiscovery should support OIDC discovery of
/// service account issuer": the discovery document names the issuer tokens carry, and
/// the key set holds the key that signed them.
pub fn oidc_discovery(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("oidc").map_err(fail)?;
    eventually("the default service account", || {
        Ok(cluster
            .get_json(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default"))
            .is_ok())
    })?;
    let token = cluster
        .kubectl(&["create", "token", "default", "-n", &ns])
        .map_err(fail)?;
    let parts: Vec<&str> = token.trim().split('.').collect();
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(fail)?;
        serde_json::from_slice(&bytes).map_err(fail)
    };
    let [header, payload, _] = parts.as_slice() else {
        return Err(format!("not a JWT: {token}"));
    };
    let (header, payload) = (decode(header)?, decode(payload)?);
    let config = cluster
        .get_json("/.well-known/openid-configuration")
        .map_err(fail)?;
    if config["issuer"] != payload["iss"] {
        return Err(format!(
            "issuer {} but tokens say {}",
            config["issuer"], payload["iss"]
        ));
    }
    let jwks = cluster.get_json("/openid/v1/jwks").map_err(fail)?;
    let kid = &header["kid"];
    let found = jwks["keys"]
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| &k["kid"] == kid && k["alg"] == "RS256"));
    if !found {
        return Err(format!("the signing key {kid} is not in {jwks}"));
    }
    Ok(())
}

/// "ServiceAccounts should allow opting out of API token automount": the token volume
/// is mounted unless the pod, or else its account, opts out.
pub fn automount_opt_out(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("automount").map_err(fail)?;
    eventually("the default service account", || {
        Ok(cluster
            .get_json(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default"))
            .is_ok())
    })?;
    for (name, automount) in [("mount", json!(true)), ("nomount", json!(false))] {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name}, "automountServiceAccountToken": automount});
        cluster.create(&ns, &account).map_err(fail)?;
    }
    let cases = [
        ("default", Value::Null, true),
        ("mount", Value::Null, true),
        ("nomount", Value::Null, false),
        ("default", json!(true), true),
        ("mount", json!(true), true),
        ("nomount", json!(true), true),
        ("default", json!(false), false),
        ("mount", json!(false), false),
        ("nomount", json!(false), false),
    ];
    for (i, (account, pod_setting, mounted)) in cases.into_iter().enumerate() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}")},
            "spec": {"serviceAccountName": account, "containers": [{"name": "token-test", "image": "busybox"}]}});
        if !pod_setting.is_null() {
            pod["spec"]["automountServiceAccountToken"] = pod_setting.clone();
        }
        let created: Value =
            serde_json::from_str(&cluster.create(&ns, &pod).map_err(fail)?).map_err(fail)?;
        let has_mount = created["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .is_some_and(|m| {
                m.iter()
                    .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
            });
        if has_mount != mounted {
            return Err(format!(
                "account {account}, pod automount {pod_setting}: mounted {has_mount}, want {mounted}"
            ));
        }
    }
    Ok(())
}
