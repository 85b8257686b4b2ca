//! The CSR approving controller (`csrapproving`), as upstream's `sarapprove.go`:
//! kubelet client requests (`kubernetes.io/kube-apiserver-client-kubelet`, subject
//! `system:node:<name>` in `system:nodes`) are approved when a SubjectAccessReview
//! lets their requester create `certificatesigningrequests/selfnodeclient` (a node
//! renewing its own certificate) or `certificatesigningrequests/nodeclient` (a
//! bootstrap token asking for a first one). Anything else is left to humans.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::{Api, PostParams};

use super::{Error, KUBELET_CLIENT_SIGNER, Request, approval, parse_request, usages_of};
use crate::Context;

/// The controller's name.
pub const NAME: &str = "certificatesigningrequest-approving-controller";
const WORKERS: usize = 5;

/// One kind of request this approver recognizes.
struct Recognizer {
    recognize: fn(&CertificateSigningRequest, &Request) -> bool,
    subresource: &'static str,
    message: &'static str,
}

const RECOGNIZERS: [Recognizer; 2] = [
    Recognizer {
        recognize: is_self_node_client,
        subresource: "selfnodeclient",
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
    },
    Recognizer {
        recognize: is_node_client,
        subresource: "nodeclient",
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
    },
];

const KUBELET_CLIENT_USAGES: [&str; 3] = ["client auth", "digital signature", "key encipherment"];
const KUBELET_CLIENT_USAGES_NO_RSA: [&str; 2] = ["client auth", "digital signature"];

/// Upstream's `ValidateKubeletClientCSR`, with its messages.
pub fn validate_kubelet_client(request: &Request, usages: &BTreeSet<String>) -> Result<(), String> {
    if request.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !request.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !request.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    if !same_set(usages, &KUBELET_CLIENT_USAGES) && !same_set(usages, &KUBELET_CLIENT_USAGES_NO_RSA)
    {
        return Err(format!(
            "usages did not match [{}]",
            KUBELET_CLIENT_USAGES.join(" ")
        ));
    }
    Ok(())
}

pub(crate) fn same_set(usages: &BTreeSet<String>, wanted: &[&str]) -> bool {
    usages.len() == wanted.len() && wanted.iter().all(|w| usages.contains(*w))
}

fn is_node_client(csr: &CertificateSigningRequest, request: &Request) -> bool {
    csr.spec.signer_name == KUBELET_CLIENT_SIGNER
        && validate_kubelet_client(request, &usages_of(csr)).is_ok()
}

fn is_self_node_client(csr: &CertificateSigningRequest, request: &Request) -> bool {
    csr.spec.username.as_deref().unwrap_or_default() == request.common_name
        && is_node_client(csr, request)
}

/// Which recognizers match `csr` (their subresources and messages), in upstream's order.
fn recognized(
    csr: &CertificateSigningRequest,
    request: &Request,
) -> Vec<(&'static str, &'static str)> {
    RECOGNIZERS
        .iter()
        .filter(|r| (r.recognize)(csr, request))
        .map(|r| (r.subresource, r.message))
        .collect()
}

struct Approver {
    client: kube::Client,
}

impl Approver {
    async fn handle(&self, csr: Arc<CertificateSigningRequest>) -> Result<(), Error> {
        let (approved, denied) = approval(&csr);
        if approved || denied {
            return Ok(());
        }
        let name = csr.metadata.name.clone().unwrap_or_default();
        let request = parse_request(&csr.spec.request.0).map_err(|reason| Error::Parse {
            name: name.clone(),
            reason,
        })?;
        let mut tried = Vec::new();
        for (subresource, message) in recognized(&csr, &request) {
            tried.push(subresource);
            if !self.authorize(&csr, subresource).await? {
                continue;
            }
            let mut updated = (*csr).clone();
            let now = super::now();
            updated
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new)
                .push(CertificateSigningRequestCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    reason: Some("AutoApproved".into()),
                    message: Some(message.into()),
                    last_update_time: Some(now.clone()),
                    last_transition_time: Some(now),
                });
            let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
            return match api
                .replace_subresource("approval", &name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => Ok(()),
                // changed or gone meanwhile: the change brings a new sync
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if tried.is_empty() {
            Ok(())
        } else {
            Err(Error::NotAuthorized { name, tried })
        }
    }

    /// Asks whether the requester may create `certificatesigningrequests/<subresource>`.
    async fn authorize(
        &self,
        csr: &CertificateSigningRequest,
        subresource: &str,
    ) -> Result<bool, Error> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: csr.spec.username.clone(),
                uid: csr.spec.uid.clone(),
                groups: csr.spec.groups.clone(),
                extra: csr.spec.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("certificates.k8s.io".into()),
                    resource: Some("certificatesigningrequests".into()),
                    verb: Some("create".into()),
                    subresource: Some(subresource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

/// Starts the approver.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let approver = Arc::new(Approver {
        client: cx.client.clone(),
    });
    super::run_csr_controller(&cx, NAME, WORKERS, move |csr| {
        let approver = approver.clone();
        async move { approver.handle(csr).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::tests::csr_pem;

    fn usages(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn csr(username: &str, signer: &str, pem: &str, u: &[&str]) -> CertificateSigningRequest {
        use base64::Engine;
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": signer, "username": username, "usages": u}
        }))
        .unwrap()
    }

    // upstream's TestValidateKubeletClientCSR cases
    #[test]
    fn a_kubelet_client_request_is_checked_as_upstream() {
        let ok = usages(&["digital signature", "key encipherment", "client auth"]);
        let parse = |cn, orgs: &[&str], sans: &[&str]| {
            parse_request(csr_pem(cn, orgs, sans).as_bytes()).unwrap()
        };
        let good = parse("system:node:n1", &["system:nodes"], &[]);
        assert_eq!(validate_kubelet_client(&good, &ok), Ok(()));
        assert_eq!(
            validate_kubelet_client(&good, &usages(&["digital signature", "client auth"])),
            Ok(())
        );
        assert_eq!(
            validate_kubelet_client(&parse("system:node:n1", &["other"], &[]), &ok).unwrap_err(),
            "subject organization is not system:nodes"
        );
        assert_eq!(
            validate_kubelet_client(&parse("system:node:n1", &["system:nodes", "x"], &[]), &ok)
                .unwrap_err(),
            "subject organization is not system:nodes"
        );
        assert_eq!(
            validate_kubelet_client(&parse("system:node:n1", &["system:nodes"], &["a.b"]), &ok)
                .unwrap_err(),
            "DNS subjectAltNames are not allowed"
        );
        assert_eq!(
            validate_kubelet_client(
                &parse("system:node:n1", &["system:nodes"], &["1.2.3.4"]),
                &ok
            )
            .unwrap_err(),
            "IP subjectAltNames are not allowed"
        );
        assert_eq!(
            validate_kubelet_client(&parse("bob", &["system:nodes"], &[]), &ok).unwrap_err(),
            "subject common name does not begin with system:node:"
        );
        assert_eq!(
            validate_kubelet_client(&good, &usages(&["client auth", "server auth"])).unwrap_err(),
            "usages did not match [client auth digital signature key encipherment]"
        );
    }

    #[test]
    fn self_node_client_needs_the_requester_to_be_the_subject() {
        let pem = csr_pem("system:node:n1", &["system:nodes"], &[]);
        let u = ["digital signature", "key encipherment", "client auth"];
        let own = csr("system:node:n1", KUBELET_CLIENT_SIGNER, &pem, &u);
        let request = parse_request(pem.as_bytes()).unwrap();
        let found: Vec<_> = recognized(&own, &request).iter().map(|r| r.0).collect();
        assert_eq!(found, ["selfnodeclient", "nodeclient"]);
        let bootstrap = csr("system:bootstrap:abcdef", KUBELET_CLIENT_SIGNER, &pem, &u);
        let found: Vec<_> = recognized(&bootstrap, &request)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(found, ["nodeclient"]);
        let other_signer = csr("system:node:n1", "example.com/x", &pem, &u);
        assert!(recognized(&other_signer, &request).is_empty());
    }
}
