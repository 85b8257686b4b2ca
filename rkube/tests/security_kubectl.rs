//! The cluster's security through stock kubectl against `rkube up`: service-account
//! tokens from `kubectl create token` limited by RBAC, refused when expired, for
//! another audience, forged or bound to a deleted pod; `kubectl auth can-i`, `--as`
//! and `auth whoami`; the kubelet's credentials confined by the Node authorizer; and
//! PodSecurity's restricted level refusing a privileged pod with upstream's message.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use apiserver::auth::authn::service_account::{
    Claims, DEFAULT_ISSUER, KubernetesClaim, ObjectRef, ServiceAccountKeys,
};
use common::{RkubeUp, kubectl, stdout_of};

const NS: &str = "team";

/// kubectl with only a bearer token (no client certificate).
fn with_token(up: &RkubeUp, token: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(["--kubeconfig", "/dev/null"])
        .arg(format!("--server=https://127.0.0.1:{}", up.port))
        .arg(format!(
            "--certificate-authority={}",
            up.data_dir.join("pki/ca.crt").display()
        ))
        .arg(format!("--token={token}"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl must be on PATH")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Retries `check` for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 30s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn apply(kubeconfig: &Path, manifest: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";

#[test]
fn tokens_rbac_node_authorizer_and_pod_security_through_kubectl() {
    let up = RkubeUp::start();
    let admin = up.kubeconfig.as_path();
    stdout_of(admin, &["create", "namespace", NS]);
    stdout_of(admin, &["create", "serviceaccount", "ci", "-n", NS]);
    eventually("the default service account", || {
        kubectl(admin, &["get", "serviceaccount", "default", "-n", NS])
            .status
            .success()
    });

    // a token from `kubectl create token` is its service account, limited by RBAC
    let token = stdout_of(admin, &["create", "token", "ci", "-n", NS])
        .trim()
        .to_owned();
    let whoami = with_token(
        &up,
        &token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        stdout(&whoami),
        "system:serviceaccount:team:ci",
        "{}",
        stderr(&whoami)
    );
    let refused = with_token(&up, &token, &["get", "pods", "-n", NS]);
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused),
        r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:team:ci" cannot list resource "pods" in API group "" in the namespace "team""#
    );
    stdout_of(
        admin,
        &[
            "create",
            "rolebinding",
            "ci-view",
            "-n",
            NS,
            "--clusterrole=view",
            "--serviceaccount=team:ci",
        ],
    );
    eventually("the view binding", || {
        with_token(&up, &token, &["get", "pods", "-n", NS])
            .status
            .success()
    });
    let can_create = with_token(&up, &token, &["auth", "can-i", "create", "pods", "-n", NS]);
    assert_eq!(stdout(&can_create), "no");
    let can_list = with_token(&up, &token, &["auth", "can-i", "list", "pods", "-n", NS]);
    assert_eq!(stdout(&can_list), "yes");
    // the admin asks for others with --as (impersonation)
    let as_ci = kubectl(
        admin,
        &[
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            NS,
            "--as=system:serviceaccount:team:ci",
        ],
    );
    assert_eq!(stdout(&as_ci), "yes");
    let as_jane = kubectl(
        admin,
        &["auth", "can-i", "list", "pods", "-n", NS, "--as=jane"],
    );
    assert_eq!(stdout(&as_jane), "no");
    let listed = kubectl(
        admin,
        &[
            "auth",
            "can-i",
            "--list",
            "-n",
            NS,
            "--as=system:serviceaccount:team:ci",
        ],
    );
    assert!(stdout(&listed).contains("pods"), "{}", stdout(&listed));
    // the service account may not impersonate
    let escalate = with_token(
        &up,
        &token,
        &["get", "pods", "-n", NS, "--as=kubernetes-admin"],
    );
    assert_eq!(
        stderr(&escalate),
        r#"Error from server (Forbidden): users "kubernetes-admin" is forbidden: User "system:serviceaccount:team:ci" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );

    // a token for another audience, a forged one and an expired one are refused
    let vault = stdout_of(
        admin,
        &["create", "token", "ci", "-n", NS, "--audience=vault"],
    );
    assert_eq!(
        stderr(&with_token(&up, vault.trim(), &["get", "pods", "-n", NS])),
        UNAUTHORIZED
    );
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        stderr(&with_token(&up, &forged, &["get", "pods", "-n", NS])),
        UNAUTHORIZED
    );
    let keys =
        ServiceAccountKeys::load(DEFAULT_ISSUER, &up.data_dir.join("pki/sa.key"), &[]).unwrap();
    let account_uid = stdout_of(
        admin,
        &[
            "get",
            "sa",
            "ci",
            "-n",
            NS,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    let now = 1_700_000_000;
    let expired = keys
        .sign(&Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:team:ci".into(),
            aud: vec![DEFAULT_ISSUER.into()],
            exp: now + 3600,
            iat: now,
            nbf: now,
            jti: "expired".into(),
            kubernetes: KubernetesClaim {
                namespace: NS.into(),
                serviceaccount: ObjectRef {
                    name: "ci".into(),
                    uid: account_uid.trim().into(),
                },
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(
        stderr(&with_token(&up, &expired, &["get", "pods", "-n", NS])),
        UNAUTHORIZED
    );

    // a token bound to a pod dies with it
    stdout_of(
        admin,
        &[
            "run",
            "p",
            "-n",
            NS,
            "--image=nginx",
            "--overrides",
            r#"{"spec":{"serviceAccountName":"ci"}}"#,
        ],
    );
    let bound = stdout_of(
        admin,
        &[
            "create",
            "token",
            "ci",
            "-n",
            NS,
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ],
    );
    assert!(
        with_token(&up, bound.trim(), &["get", "pods", "-n", NS])
            .status
            .success()
    );
    stdout_of(admin, &["delete", "pod", "p", "-n", NS, "--wait=false"]);
    eventually("the pod's deletion", || {
        !kubectl(admin, &["get", "pod", "p", "-n", NS])
            .status
            .success()
    });
    // (a token that authenticated is remembered for 10 s, as upstream)
    eventually("the bound token's refusal", || {
        stderr(&with_token(&up, bound.trim(), &["get", "pods", "-n", NS])) == UNAUTHORIZED
    });

    // the kubelet reads its own pods' secrets, not another node's
    let kubelet = up.data_dir.join("kubelet.kubeconfig");
    let node_user = stdout_of(
        &kubelet,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    let node = node_user
        .trim()
        .strip_prefix("system:node:")
        .expect("a node user")
        .to_owned();
    for secret in ["mine", "theirs"] {
        stdout_of(
            admin,
            &[
                "create",
                "secret",
                "generic",
                secret,
                "-n",
                NS,
                "--from-literal=k=v",
            ],
        );
    }
    for (pod, on, secret) in [("a", node.as_str(), "mine"), ("b", "elsewhere", "theirs")] {
        let manifest = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{pod}","namespace":"{NS}"}},
            "spec":{{"nodeName":"{on}","containers":[{{"name":"c","image":"nginx",
            "env":[{{"name":"S","valueFrom":{{"secretKeyRef":{{"name":"{secret}","key":"k"}}}}}}]}}]}}}}"#
        );
        let output = apply(admin, &manifest);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    eventually("the kubelet's view of its pod", || {
        kubectl(&kubelet, &["get", "secret", "mine", "-n", NS])
            .status
            .success()
    });
    let theirs = kubectl(&kubelet, &["get", "secret", "theirs", "-n", NS]);
    assert_eq!(
        stderr(&theirs),
        format!(
            r#"Error from server (Forbidden): secrets "theirs" is forbidden: User "system:node:{node}" cannot get resource "secrets" in API group "" in the namespace "team": no relationship found between node '{node}' and this object"#
        )
    );

    // certificate signing requests: no system:masters through the apiserver-client
    // signer; approving needs `approve` on the signer, not only the approval subresource
    let csr = |name: &str, organization: &str, signer: &str| {
        let request = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .args([
                "-keyout",
                "/dev/null",
                "-subj",
                &format!("/CN=jane/O={organization}"),
            ])
            .output()
            .expect("openssl (hack/install-deps.sh)");
        assert!(request.status.success(), "{}", stderr(&request));
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&request.stdout);
        format!(
            r#"{{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{{"name":"{name}"}},
            "spec":{{"request":"{encoded}","signerName":"{signer}","usages":["client auth"]}}}}"#
        )
    };
    let masters = apply(
        admin,
        &csr(
            "masters",
            "system:masters",
            "kubernetes.io/kube-apiserver-client",
        ),
    );
    assert_eq!(
        stderr(&masters),
        r#"Error from server (Forbidden): error when creating "STDIN": certificatesigningrequests.certificates.k8s.io "masters" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"#
    );
    let created = apply(admin, &csr("dev", "dev", "example.com/signer"));
    assert!(created.status.success(), "{}", stderr(&created));
    stdout_of(
        admin,
        &[
            "create",
            "clusterrole",
            "csr-approver",
            "--verb=get,list,update",
            "--resource=certificatesigningrequests,certificatesigningrequests/approval",
        ],
    );
    stdout_of(
        admin,
        &[
            "create",
            "clusterrolebinding",
            "csr-approver",
            "--clusterrole=csr-approver",
            "--user=jane",
        ],
    );
    let mut refused = String::new();
    eventually("jane's binding", || {
        let output = kubectl(admin, &["certificate", "approve", "dev", "--as=jane"]);
        refused = stderr(&output);
        refused.contains("not permitted")
    });
    assert!(
        refused.contains(r#"certificatesigningrequests.certificates.k8s.io "dev" is forbidden: user not permitted to approve requests with signerName "example.com/signer""#),
        "{refused}"
    );
    stdout_of(admin, &["certificate", "approve", "dev"]);
    let conditions = stdout_of(
        admin,
        &[
            "get",
            "csr",
            "dev",
            "-o",
            "jsonpath={.status.conditions[*].type}",
        ],
    );
    assert_eq!(conditions.trim(), "Approved");

    // PodSecurity restricted refuses a privileged pod with upstream's message
    stdout_of(
        admin,
        &[
            "label",
            "namespace",
            NS,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    );
    let privileged = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"priv","namespace":"{NS}"}},
        "spec":{{"containers":[{{"name":"c","image":"nginx","securityContext":{{"privileged":true}}}}]}}}}"#
    );
    let mut refused = String::new();
    eventually("PodSecurity to see the label", || {
        let output = apply(admin, &privileged);
        refused = stderr(&output);
        !output.status.success()
    });
    assert_eq!(
        refused,
        r#"Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
}
