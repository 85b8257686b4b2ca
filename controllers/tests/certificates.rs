//! The CSR approving and signing controllers against a real apiserver, with the
//! cluster CA as signing CA (as `rkube up` runs them): kubelet client requests from a
//! node or a bootstrap token are approved after a SubjectAccessReview and signed; a
//! client request an admin approves through `/approval` is signed for the lifetime it
//! asks; one with usages its signer forbids fails.

mod support;

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{Cluster, Spec, cluster, wait_for};

/// A cluster whose manager runs the CSR approver and signer with the cluster CA.
async fn signing_cluster() -> Cluster {
    let mut spec = Spec::new(&[]);
    spec.scheduler = false;
    let c = cluster(spec).await;
    let (cert, key) = c.ca_files();
    let mut settings = controllers::Settings::default();
    settings.csr_signing.cluster = controllers::certificates::signer::SigningFiles {
        cert_file: Some(cert),
        key_file: Some(key),
    };
    // the handle is dropped, not the task: it runs until the test's runtime stops
    drop(c.start_manager(
        vec!["csrsigning".into(), "csrapproving".into()],
        settings,
        None,
    ));
    c
}

/// Binds a ClusterRole to a group (kubeadm's auto-approval bindings).
async fn bind(c: &Cluster, name: &str, role: &str, group: &str) {
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(c.admin.clone());
    let binding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
    }))
    .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// A PEM request for `cn` in `orgs`.
fn request(cn: &str, orgs: &[&str]) -> String {
    let mut params = rcgen::CertificateParams::default();
    for o in orgs {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// Creates a CSR as `client`. spec.username and groups are the requester's: the
/// apiserver's own strategy sets them as upstream's, so they are sent to match.
#[allow(clippy::too_many_arguments)]
async fn create_csr(
    client: &Client,
    name: &str,
    pem: &str,
    signer: &str,
    usages: &[&str],
    user: &str,
    groups: &[&str],
    expiration_seconds: Option<i32>,
) {
    use base64::Engine;
    let mut spec = json!({
        "request": base64::engine::general_purpose::STANDARD.encode(pem),
        "signerName": signer,
        "usages": usages,
        "username": user,
        "groups": groups,
    });
    if let Some(s) = expiration_seconds {
        spec["expirationSeconds"] = s.into();
    }
    let csr: CertificateSigningRequest =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await
        .unwrap();
}

/// Waits for the CSR to hold a certificate; returns it with the CSR.
async fn issued(c: &Cluster, name: &str) -> (CertificateSigningRequest, Vec<u8>) {
    let api: Api<CertificateSigningRequest> = Api::all(c.admin.clone());
    wait_for(&format!("a certificate for {name}"), || {
        let api = api.clone();
        async move {
            let csr = api.get(name).await.unwrap();
            let pem = csr.status.as_ref()?.certificate.as_ref()?.0.clone();
            let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
            Some((csr, der))
        }
    })
    .await
}

fn condition<'a>(
    csr: &'a CertificateSigningRequest,
    kind: &str,
) -> Option<&'a k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// The subject's CN and O values, after checking the CA signed it.
fn subject_signed_by_ca(c: &Cluster, der: &[u8]) -> (String, Vec<String>) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let ca_der = x509_parser::pem::parse_x509_pem(c.ca_pem().as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the cluster CA");
    assert_eq!(cert.issuer(), ca.subject());
    let cn = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(",");
    let orgs = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    (cn, orgs)
}

/// Approves as `kubectl certificate approve` does, through the approval subresource.
async fn kubectl_approve(c: &Cluster, name: &str) {
    let api: Api<CertificateSigningRequest> = Api::all(c.admin.clone());
    let mut csr = api.get(name).await.unwrap();
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(
            serde_json::from_value(json!({
                "type": "Approved", "status": "True", "reason": "KubectlApprove",
                "message": "This CSR was approved by kubectl certificate approve.",
                "lastUpdateTime": jiff::Timestamp::now().to_string(),
            }))
            .unwrap(),
        );
    api.replace_subresource("approval", name, &PostParams::default(), &csr)
        .await
        .unwrap();
}

const KUBELET_USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_client_requests_are_auto_approved_and_signed() {
    let c = signing_cluster().await;
    // kubeadm's bindings: nodes renew their own certificates, bootstrap tokens get a
    // first one; both may create CSRs
    for group in ["system:nodes", "system:bootstrappers"] {
        bind(
            &c,
            &format!("{}-csr", group.replace(':', "-")),
            "system:node-bootstrapper",
            group,
        )
        .await;
    }
    bind(
        &c,
        "node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:nodes",
    )
    .await;
    bind(
        &c,
        "node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:bootstrappers",
    )
    .await;

    // a node asking for a certificate for another node is recognized as a node
    // client request, but only bootstrappers may ask for those: it stays pending
    let node_b = c.client_as("system:node:node-b", &["system:nodes"]).await;
    create_csr(
        &node_b,
        "node-b-for-node-c",
        &request("system:node:node-c", &["system:nodes"]),
        "kubernetes.io/kube-apiserver-client-kubelet",
        &KUBELET_USAGES,
        "system:node:node-b",
        &["system:nodes", "system:authenticated"],
        None,
    )
    .await;

    // a node renewing its own client certificate
    let node = c.client_as("system:node:node-a", &["system:nodes"]).await;
    create_csr(
        &node,
        "node-a-renewal",
        &request("system:node:node-a", &["system:nodes"]),
        "kubernetes.io/kube-apiserver-client-kubelet",
        &KUBELET_USAGES,
        "system:node:node-a",
        &["system:nodes", "system:authenticated"],
        None,
    )
    .await;
    let (csr, der) = issued(&c, "node-a-renewal").await;
    let approved = condition(&csr, "Approved").expect("approved");
    assert_eq!(approved.status, "True");
    assert_eq!(approved.reason.as_deref(), Some("AutoApproved"));
    assert_eq!(
        approved.message.as_deref(),
        Some("Auto approving self kubelet client certificate after SubjectAccessReview.")
    );
    let (cn, orgs) = subject_signed_by_ca(&c, &der);
    assert_eq!(cn, "system:node:node-a");
    assert_eq!(orgs, ["system:nodes"]);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    // the default --cluster-signing-duration: a year, starting 5 minutes back
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 365 * 24 * 3600);

    // a bootstrap token asking for a node's first certificate
    let bootstrap = c
        .client_as("system:bootstrap:abcdef", &["system:bootstrappers"])
        .await;
    create_csr(
        &bootstrap,
        "node-d-bootstrap",
        &request("system:node:node-d", &["system:nodes"]),
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
        "system:bootstrap:abcdef",
        &["system:bootstrappers", "system:authenticated"],
        None,
    )
    .await;
    let (csr, der) = issued(&c, "node-d-bootstrap").await;
    assert_eq!(
        condition(&csr, "Approved").and_then(|a| a.message.as_deref()),
        Some("Auto approving kubelet client certificate after SubjectAccessReview.")
    );
    assert_eq!(subject_signed_by_ca(&c, &der).0, "system:node:node-d");

    let api: Api<CertificateSigningRequest> = Api::all(c.admin.clone());
    let pending = api.get("node-b-for-node-c").await.unwrap();
    assert!(condition(&pending, "Approved").is_none());
    assert!(pending.status.and_then(|s| s.certificate).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_client_request_is_signed_for_the_lifetime_it_asks() {
    let c = signing_cluster().await;
    create_csr(
        &c.admin,
        "alice",
        &request("alice", &["devs"]),
        "kubernetes.io/kube-apiserver-client",
        &["digital signature", "client auth"],
        "kubernetes-admin",
        &["system:masters", "system:authenticated"],
        Some(3600),
    )
    .await;
    // not auto-approved: nothing is issued until someone approves
    let api: Api<CertificateSigningRequest> = Api::all(c.admin.clone());
    assert!(
        api.get("alice")
            .await
            .unwrap()
            .status
            .and_then(|s| s.certificate)
            .is_none()
    );
    kubectl_approve(&c, "alice").await;
    let (csr, der) = issued(&c, "alice").await;
    assert_eq!(
        condition(&csr, "Approved").and_then(|a| a.reason.as_deref()),
        Some("KubectlApprove")
    );
    let (cn, orgs) = subject_signed_by_ca(&c, &der);
    assert_eq!(cn, "alice");
    assert_eq!(orgs, ["devs"]);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    // a short certificate starts 5 minutes back and ends exactly an hour on
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, Duration::from_secs(3600 + 300).as_secs() as i64);
    assert!(!cert.is_ca());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_usages_its_signer_forbids_fails() {
    let c = signing_cluster().await;
    create_csr(
        &c.admin,
        "server-for-client-signer",
        &request("bob", &[]),
        "kubernetes.io/kube-apiserver-client",
        &["digital signature", "client auth", "server auth"],
        "kubernetes-admin",
        &["system:masters", "system:authenticated"],
        None,
    )
    .await;
    kubectl_approve(&c, "server-for-client-signer").await;
    let api: Api<CertificateSigningRequest> = Api::all(c.admin.clone());
    let csr = wait_for("the Failed condition", || {
        let api = api.clone();
        async move {
            let csr = api.get("server-for-client-signer").await.unwrap();
            condition(&csr, "Failed").is_some().then_some(csr)
        }
    })
    .await;
    let failed = condition(&csr, "Failed").unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason.as_deref(), Some("SignerValidationFailure"));
    assert_eq!(
        failed.message.as_deref(),
        Some("invalid usage for client certificate: server auth")
    );
    assert!(csr.status.and_then(|s| s.certificate).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_is_signed_by_bootstrap_tokens_and_expired_tokens_go() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let mut spec = Spec::new(&["bootstrapsigner", "tokencleaner"]);
    spec.scheduler = false;
    let c = cluster(spec).await;
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "kube-system");
    let token = |id: &str, expiration: Option<String>| -> Secret {
        let mut data = json!({"token-id": id, "token-secret": "0123456789abcdef",
            "usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true"});
        if let Some(e) = expiration {
            data["expiration"] = e.into();
        }
        serde_json::from_value(json!({
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": data,
        }))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &token("abcdef", None))
        .await
        .unwrap();
    let expired = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
    secrets
        .create(&PostParams::default(), &token("zzz999", Some(expired)))
        .await
        .unwrap();
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n";
    let config_maps: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "kube-public");
    let cm = serde_json::from_value(json!({
        "metadata": {"name": "cluster-info"},
        "data": {"kubeconfig": kubeconfig, "jws-kubeconfig-gone00": "stale"}
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let want = controllers::bootstrap::detached_signature(kubeconfig, "abcdef", "0123456789abcdef")
        .unwrap();
    let data = wait_for("cluster-info signed", || {
        let config_maps = config_maps.clone();
        async move {
            let data = config_maps.get("cluster-info").await.unwrap().data?;
            data.contains_key("jws-kubeconfig-abcdef").then_some(data)
        }
    })
    .await;
    assert_eq!(data["jws-kubeconfig-abcdef"], want);
    // the stale signature is dropped, the expired token signs nothing
    assert_eq!(data.len(), 2, "{data:?}");
    wait_for("the expired token deleted", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("bootstrap-token-zzz999")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        secrets
            .get_opt("bootstrap-token-abcdef")
            .await
            .unwrap()
            .is_some()
    );
}
